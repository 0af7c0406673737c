//! [MS-TSGU] 2.2.6 the HRESULT values an RD Gateway returns: in the errorCode or statusCode of the HTTP
//! transport's response packets ([MS-TSGU] 2.2.10.4, 2.2.10.11, 2.2.10.16, 2.2.10.20, 2.2.10.23) and as the
//! return value of the RPC methods ([MS-TSGU] 3.2.6).
//!
//! The gateway sends them in HRESULT form (0x8007xxxx, the Win32 code in the low word) over HTTP; the RPC
//! methods return some as HRESULT_CODE (the low word alone). Both forms are rows, with the same name.

use super::CodeEntry;

// The codes rdptrace names in its own code (the built-in gateway's scenarios, the diagnosis).
pub const ERROR_SUCCESS: u32 = 0x0000_0000;
pub const ERROR_ACCESS_DENIED: u32 = 0x0000_0005;
pub const E_PROXY_INTERNALERROR: u32 = 0x8007_59D8;
pub const E_PROXY_RAP_ACCESSDENIED: u32 = 0x8007_59DA;
pub const E_PROXY_NAP_ACCESSDENIED: u32 = 0x8007_59DB;
pub const E_PROXY_TS_CONNECTFAILED: u32 = 0x8007_59DD;
pub const E_PROXY_MAXCONNECTIONSREACHED: u32 = 0x8007_59E6;
pub const E_PROXY_CAPABILITYMISMATCH: u32 = 0x8007_59E9;
pub const E_PROXY_SESSIONTIMEOUT: u32 = 0x8007_59F6;
pub const E_PROXY_UNSUPPORTED_AUTHENTICATION_METHOD: u32 = 0x8007_59F9;

const S: &str = "MS-TSGU 2.2.6";

/// The low word of an HRESULT of facility Win32: the form the RPC methods return.
const fn code_of(hresult: u32) -> u32 {
    hresult & 0xffff
}

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: ERROR_SUCCESS,
        name: "ERROR_SUCCESS",
        meaning: "success",
        section: S,
    },
    CodeEntry {
        code: ERROR_ACCESS_DENIED,
        name: "ERROR_ACCESS_DENIED",
        meaning: "the gateway denied access (the tunnel was not authorized, or the request came out of order)",
        section: S,
    },
    CodeEntry {
        code: 0x0000_04CA,
        name: "ERROR_GRACEFUL_DISCONNECT",
        meaning: "the gateway ended the connection gracefully",
        section: S,
    },
    CodeEntry {
        code: 0x0000_04D4,
        name: "E_PROXY_CONNECTIONABORTED",
        meaning: "the connection through the gateway was aborted",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_INTERNALERROR,
        name: "E_PROXY_INTERNALERROR",
        meaning: "an unexpected error inside the gateway (or a packet out of sequence)",
        section: S,
    },
    CodeEntry {
        code: code_of(E_PROXY_INTERNALERROR),
        name: "E_PROXY_INTERNALERROR (RPC)",
        meaning: "an unexpected error inside the gateway (or a packet out of sequence)",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_RAP_ACCESSDENIED,
        name: "E_PROXY_RAP_ACCESSDENIED",
        meaning: "the resource authorization policy (RD RAP) does not allow this user to this computer",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_NAP_ACCESSDENIED,
        name: "E_PROXY_NAP_ACCESSDENIED",
        meaning: "the connection authorization policy (RD CAP) does not allow this user or client",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_TS_CONNECTFAILED,
        name: "E_PROXY_TS_CONNECTFAILED",
        meaning: "the gateway could not connect to the target computer",
        section: S,
    },
    CodeEntry {
        code: code_of(E_PROXY_TS_CONNECTFAILED),
        name: "E_PROXY_TS_CONNECTFAILED (RPC)",
        meaning: "the gateway could not connect to the target computer",
        section: S,
    },
    CodeEntry {
        code: 0x8007_59DF,
        name: "E_PROXY_ALREADYDISCONNECTED",
        meaning: "the tunnel or channel was already closed",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_MAXCONNECTIONSREACHED,
        name: "E_PROXY_MAXCONNECTIONSREACHED",
        meaning: "the gateway reached its maximum number of connections",
        section: S,
    },
    CodeEntry {
        code: code_of(E_PROXY_MAXCONNECTIONSREACHED),
        name: "E_PROXY_MAXCONNECTIONSREACHED (RPC)",
        meaning: "the gateway reached its maximum number of connections",
        section: S,
    },
    CodeEntry {
        code: 0x0000_59E8,
        name: "E_PROXY_NOTSUPPORTED",
        meaning: "the gateway does not support the request",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_CAPABILITYMISMATCH,
        name: "E_PROXY_CAPABILITYMISMATCH",
        meaning: "the client and the gateway share no capability or authentication method the gateway requires",
        section: S,
    },
    CodeEntry {
        code: 0x8007_59ED,
        name: "E_PROXY_QUARANTINE_ACCESSDENIED",
        meaning: "the client failed the gateway's health (quarantine) check",
        section: S,
    },
    CodeEntry {
        code: 0x8007_59EE,
        name: "E_PROXY_NOCERTAVAILABLE",
        meaning: "the gateway has no server authentication certificate",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_SESSIONTIMEOUT,
        name: "E_PROXY_SESSIONTIMEOUT",
        meaning: "the gateway's session timeout expired",
        section: S,
    },
    CodeEntry {
        code: code_of(E_PROXY_SESSIONTIMEOUT),
        name: "E_PROXY_SESSIONTIMEOUT (RPC)",
        meaning: "the gateway's session timeout expired",
        section: S,
    },
    CodeEntry {
        code: 0x8007_59F7,
        name: "E_PROXY_COOKIE_BADPACKET",
        meaning: "the pluggable authentication cookie is malformed",
        section: S,
    },
    CodeEntry {
        code: 0x8007_59F8,
        name: "E_PROXY_COOKIE_AUTHENTICATION_ACCESS_DENIED",
        meaning: "the pluggable authentication cookie was refused",
        section: S,
    },
    CodeEntry {
        code: E_PROXY_UNSUPPORTED_AUTHENTICATION_METHOD,
        name: "E_PROXY_UNSUPPORTED_AUTHENTICATION_METHOD",
        meaning: "the gateway does not accept the client's authentication method",
        section: S,
    },
    CodeEntry {
        code: 0x0000_59FA,
        name: "E_PROXY_REAUTH_AUTHN_FAILED",
        meaning: "reauthentication to the gateway failed",
        section: S,
    },
    CodeEntry {
        code: 0x0000_59FB,
        name: "E_PROXY_REAUTH_CAP_FAILED",
        meaning: "reauthentication failed the connection authorization policy",
        section: S,
    },
    CodeEntry {
        code: 0x0000_59FC,
        name: "E_PROXY_REAUTH_RAP_FAILED",
        meaning: "reauthentication failed the resource authorization policy",
        section: S,
    },
    CodeEntry {
        code: 0x0000_59FD,
        name: "E_PROXY_SDR_NOT_SUPPORTED_BY_TS",
        meaning: "the target computer does not support the gateway's session redirection",
        section: S,
    },
    CodeEntry {
        code: 0x0000_5A00,
        name: "E_PROXY_REAUTH_NAP_FAILED",
        meaning: "reauthentication failed the health policy",
        section: S,
    },
];

/// Whether `code` reports a failure: a gateway that goes on answers ERROR_SUCCESS (0); any other value,
/// with the severity bit of an HRESULT or without it (the HRESULT_CODE form), is a refusal.
pub const fn failed(code: u32) -> bool {
    code != ERROR_SUCCESS
}
