//! [MS-ERREF] 2.3.1 NTSTATUS values that a server puts in TSRequest.errorCode ([MS-CSSP] 2.2.1,
//! 3.1.5): the logon, account, domain and smart card failures of the authentication behind CredSSP.

use super::CodeEntry;

// [MS-ERREF] 2.3.1 the NTSTATUS values rdptrace names in its own code (the target's scenarios, the mstsc rules).
pub const STATUS_NO_SUCH_USER: u32 = 0xC000_0064;
pub const STATUS_LOGON_FAILURE: u32 = 0xC000_006D;
pub const STATUS_ACCOUNT_RESTRICTION: u32 = 0xC000_006E;
pub const STATUS_PASSWORD_EXPIRED: u32 = 0xC000_0071;
pub const STATUS_ACCOUNT_DISABLED: u32 = 0xC000_0072;
pub const STATUS_LOGON_TYPE_NOT_GRANTED: u32 = 0xC000_015B;
pub const STATUS_ACCOUNT_EXPIRED: u32 = 0xC000_0193;
pub const STATUS_PASSWORD_MUST_CHANGE: u32 = 0xC000_0224;
pub const STATUS_ACCOUNT_LOCKED_OUT: u32 = 0xC000_0234;
pub const STATUS_SMARTCARD_WRONG_PIN: u32 = 0xC000_0380;
pub const STATUS_SMARTCARD_CARD_BLOCKED: u32 = 0xC000_0381;
pub const STATUS_NTLM_BLOCKED: u32 = 0xC000_0418;

const S: &str = "MS-ERREF 2.3.1";

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0x0000_0000,
        name: "STATUS_SUCCESS",
        meaning: "success",
        section: S,
    },
    CodeEntry {
        code: 0xC000_000D,
        name: "STATUS_INVALID_PARAMETER",
        meaning: "invalid parameter",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0022,
        name: "STATUS_ACCESS_DENIED",
        meaning: "access denied",
        section: S,
    },
    CodeEntry {
        code: 0xC000_005E,
        name: "STATUS_NO_LOGON_SERVERS",
        meaning: "no logon server (domain controller) available",
        section: S,
    },
    CodeEntry {
        code: 0xC000_005F,
        name: "STATUS_NO_SUCH_LOGON_SESSION",
        meaning: "the logon session does not exist",
        section: S,
    },
    CodeEntry {
        code: STATUS_NO_SUCH_USER,
        name: "STATUS_NO_SUCH_USER",
        meaning: "the account does not exist",
        section: S,
    },
    CodeEntry {
        code: 0xC000_006A,
        name: "STATUS_WRONG_PASSWORD",
        meaning: "wrong current password in a password change",
        section: S,
    },
    CodeEntry {
        code: 0xC000_006C,
        name: "STATUS_PASSWORD_RESTRICTION",
        meaning: "the new password breaks a password rule",
        section: S,
    },
    CodeEntry {
        code: STATUS_LOGON_FAILURE,
        name: "STATUS_LOGON_FAILURE",
        meaning: "logon failure: unknown user name or bad password",
        section: S,
    },
    CodeEntry {
        code: STATUS_ACCOUNT_RESTRICTION,
        name: "STATUS_ACCOUNT_RESTRICTION",
        meaning: "credentials valid but an account restriction forbids the logon",
        section: S,
    },
    CodeEntry {
        code: 0xC000_006F,
        name: "STATUS_INVALID_LOGON_HOURS",
        meaning: "the account may not log on at this time",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0070,
        name: "STATUS_INVALID_WORKSTATION",
        meaning: "the account may not log on from this workstation",
        section: S,
    },
    CodeEntry {
        code: STATUS_PASSWORD_EXPIRED,
        name: "STATUS_PASSWORD_EXPIRED",
        meaning: "the password has expired",
        section: S,
    },
    CodeEntry {
        code: STATUS_ACCOUNT_DISABLED,
        name: "STATUS_ACCOUNT_DISABLED",
        meaning: "the account is disabled",
        section: S,
    },
    CodeEntry {
        code: 0xC000_009A,
        name: "STATUS_INSUFFICIENT_RESOURCES",
        meaning: "insufficient system resources",
        section: S,
    },
    CodeEntry {
        code: 0xC000_00BB,
        name: "STATUS_NOT_SUPPORTED",
        meaning: "not supported (for CredSSP: the requested version)",
        section: S,
    },
    CodeEntry {
        code: 0xC000_00DF,
        name: "STATUS_NO_SUCH_DOMAIN",
        meaning: "the domain does not exist",
        section: S,
    },
    CodeEntry {
        code: 0xC000_00E5,
        name: "STATUS_INTERNAL_ERROR",
        meaning: "internal error",
        section: S,
    },
    CodeEntry {
        code: 0xC000_00FE,
        name: "STATUS_NO_SUCH_PACKAGE",
        meaning: "unknown authentication package",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0133,
        name: "STATUS_TIME_DIFFERENCE_AT_DC",
        meaning: "clock difference with the domain controller too large",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0155,
        name: "STATUS_LOGON_NOT_GRANTED",
        meaning: "local policy does not grant this logon type",
        section: S,
    },
    CodeEntry {
        code: STATUS_LOGON_TYPE_NOT_GRANTED,
        name: "STATUS_LOGON_TYPE_NOT_GRANTED",
        meaning: "the user is not granted this logon type (remote desktop logon right)",
        section: S,
    },
    CodeEntry {
        code: 0xC000_018C,
        name: "STATUS_TRUSTED_DOMAIN_FAILURE",
        meaning: "trust between the primary and the trusted domain failed",
        section: S,
    },
    CodeEntry {
        code: 0xC000_018D,
        name: "STATUS_TRUSTED_RELATIONSHIP_FAILURE",
        meaning: "trust between this workstation and the domain failed",
        section: S,
    },
    CodeEntry {
        code: STATUS_ACCOUNT_EXPIRED,
        name: "STATUS_ACCOUNT_EXPIRED",
        meaning: "the account has expired",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0198,
        name: "STATUS_NOLOGON_INTERDOMAIN_TRUST_ACCOUNT",
        meaning: "an interdomain trust account cannot log on",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0199,
        name: "STATUS_NOLOGON_WORKSTATION_TRUST_ACCOUNT",
        meaning: "a computer account cannot log on",
        section: S,
    },
    CodeEntry {
        code: 0xC000_019A,
        name: "STATUS_NOLOGON_SERVER_TRUST_ACCOUNT",
        meaning: "a server trust account cannot log on",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0203,
        name: "STATUS_USER_SESSION_DELETED",
        meaning: "the remote user session was deleted",
        section: S,
    },
    CodeEntry {
        code: STATUS_PASSWORD_MUST_CHANGE,
        name: "STATUS_PASSWORD_MUST_CHANGE",
        meaning: "the password must be changed before the first logon",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0233,
        name: "STATUS_DOMAIN_CONTROLLER_NOT_FOUND",
        meaning: "no domain controller found for the domain",
        section: S,
    },
    CodeEntry {
        code: STATUS_ACCOUNT_LOCKED_OUT,
        name: "STATUS_ACCOUNT_LOCKED_OUT",
        meaning: "the account is locked out after too many failed attempts",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02C3,
        name: "STATUS_MUTUAL_AUTHENTICATION_FAILED",
        meaning: "mutual authentication failed (server password out of date at the domain controller)",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02EE,
        name: "STATUS_UNFINISHED_CONTEXT_DELETED",
        meaning: "security context deleted before completion",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02EF,
        name: "STATUS_NO_TGT_REPLY",
        meaning: "the server requires user-to-user but sent no TGT reply",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02F2,
        name: "STATUS_WRONG_CREDENTIAL_HANDLE",
        meaning: "credential handle does not match the security context",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02F9,
        name: "STATUS_PKINIT_NAME_MISMATCH",
        meaning: "the client certificate does not match the user name",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02FA,
        name: "STATUS_SMARTCARD_LOGON_REQUIRED",
        meaning: "smart card logon is required",
        section: S,
    },
    CodeEntry {
        code: 0xC000_02FD,
        name: "STATUS_KDC_UNKNOWN_ETYPE",
        meaning: "encryption type not supported by the KDC",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0320,
        name: "STATUS_PKINIT_FAILURE",
        meaning: "KDC certificate validation failed during smart card logon",
        section: S,
    },
    CodeEntry {
        code: STATUS_SMARTCARD_WRONG_PIN,
        name: "STATUS_SMARTCARD_WRONG_PIN",
        meaning: "wrong smart card PIN",
        section: S,
    },
    CodeEntry {
        code: STATUS_SMARTCARD_CARD_BLOCKED,
        name: "STATUS_SMARTCARD_CARD_BLOCKED",
        meaning: "the smart card is blocked",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0383,
        name: "STATUS_SMARTCARD_NO_CARD",
        meaning: "no smart card available",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0388,
        name: "STATUS_DOWNGRADE_DETECTED",
        meaning: "possible security downgrade attempt detected",
        section: S,
    },
    CodeEntry {
        code: 0xC000_038A,
        name: "STATUS_ISSUING_CA_UNTRUSTED",
        meaning: "untrusted certificate authority for the smart card certificate",
        section: S,
    },
    CodeEntry {
        code: 0xC000_038B,
        name: "STATUS_REVOCATION_OFFLINE_C",
        meaning: "revocation status of the smart card certificate unknown",
        section: S,
    },
    CodeEntry {
        code: 0xC000_040E,
        name: "STATUS_KDC_CERT_EXPIRED",
        meaning: "the domain controller certificate has expired",
        section: S,
    },
    CodeEntry {
        code: 0xC000_040F,
        name: "STATUS_KDC_CERT_REVOKED",
        meaning: "the domain controller certificate was revoked",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0413,
        name: "STATUS_AUTHENTICATION_FIREWALL_FAILED",
        meaning: "an authentication firewall does not allow this account",
        section: S,
    },
    CodeEntry {
        code: STATUS_NTLM_BLOCKED,
        name: "STATUS_NTLM_BLOCKED",
        meaning: "NTLM is blocked (a \"Restrict NTLM\" policy): the logon needs Kerberos",
        section: S,
    },
    CodeEntry {
        code: 0xC000_0714,
        name: "STATUS_CERTIFICATE_MAPPING_NOT_UNIQUE",
        meaning: "the client certificate maps to more than one account",
        section: S,
    },
];
