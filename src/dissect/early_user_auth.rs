//! `early_user_auth` phase: [2.2.10.2] Early User Authorization Result PDU (PROTOCOL_HYBRID_EX).

use super::Dissector;
use crate::codes::{self, Table};
use crate::pdu::PduInfo;
use crate::trace::Fact;
use crate::trace::{PhaseName, Side};

/// [2.2.10.2] authorizationResult AUTHZ_SUCCESS.
pub const SUCCESS: u32 = 0x0000_0000;
/// [2.2.10.2] authorizationResult AUTHZ_ACCESS_DENIED.
pub const ACCESS_DENIED: u32 = 0x0000_0005;

/// The name of an authorizationResult: `AUTHZ_ACCESS_DENIED`.
pub fn result_name(result: u32) -> String {
    codes::name(Table::EarlyAuthResult, result)
}

pub(super) fn result(d: &mut Dissector, from: Side, frame: &[u8]) {
    d.enter(PhaseName::EarlyUserAuth);
    let value = match frame {
        [a, b, c, e] => u32::from_le_bytes([*a, *b, *c, *e]),
        _ => return,
    };
    d.trace.fact(Fact::AuthorizationResult, result_name(value));
    d.pdu(
        from,
        frame.len(),
        "Early User Authorization Result",
        result_name(value),
        PduInfo::EarlyUserAuthResult { result: value },
    );
}
