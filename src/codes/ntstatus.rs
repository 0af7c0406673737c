//! [MS-ERREF 2.3.1] NTSTATUS values that servers put in TSRequest.errorCode.

use super::CodeEntry;

pub static ROWS: &[CodeEntry] = &[CodeEntry {
    code: 0xC000_006D,
    name: "STATUS_LOGON_FAILURE",
    meaning: "logon failure: unknown user name or bad password",
    section: "MS-ERREF 2.3.1",
}];
