//! Kerberos: the error-code of a KRB-ERROR ([RFC 4120] 5.9.1, 7.5.9) and the encryption types ([RFC 3961] 8)
//! that KDC requests, tickets and errors name.
//!
//! Kerberos numbers are small integers that every other table also uses; they are never what an RDP peer
//! puts in an RDP field, so they are not listed among the collisions of a number (see
//! [`super::Table::collides`]).

use super::CodeEntry;

// [RFC 4120] 7.5.9 the error codes rdptrace names in its own code (diagnosis, the target's scenarios).
pub const KDC_ERR_C_PRINCIPAL_UNKNOWN: u32 = 6;
pub const KDC_ERR_S_PRINCIPAL_UNKNOWN: u32 = 7;
pub const KDC_ERR_POLICY: u32 = 12;
pub const KDC_ERR_BADOPTION: u32 = 13;
pub const KDC_ERR_ETYPE_NOSUPP: u32 = 14;
pub const KDC_ERR_CLIENT_REVOKED: u32 = 18;
pub const KDC_ERR_KEY_EXPIRED: u32 = 23;
pub const KDC_ERR_PREAUTH_FAILED: u32 = 24;
pub const KDC_ERR_PREAUTH_REQUIRED: u32 = 25;
pub const KRB_AP_ERR_BAD_INTEGRITY: u32 = 31;
pub const KRB_AP_ERR_TKT_EXPIRED: u32 = 32;
pub const KRB_AP_ERR_SKEW: u32 = 37;
pub const KRB_AP_ERR_MODIFIED: u32 = 41;
pub const KRB_AP_ERR_NOKEY: u32 = 45;
pub const KRB_ERR_RESPONSE_TOO_BIG: u32 = 52;
pub const KRB_ERR_GENERIC: u32 = 60;
pub const KDC_ERR_WRONG_REALM: u32 = 68;

// [RFC 3961] 8 the encryption types rdptrace names in its own code.
pub const ETYPE_AES128_CTS_HMAC_SHA1_96: u32 = 17;
pub const ETYPE_AES256_CTS_HMAC_SHA1_96: u32 = 18;
pub const ETYPE_RC4_HMAC: u32 = 23;

const E: &str = "RFC 4120 7.5.9";

/// [RFC 4120] 7.5.9 error-code values of a KRB-ERROR.
pub static ERROR_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0,
        name: "KDC_ERR_NONE",
        meaning: "no error",
        section: E,
    },
    CodeEntry {
        code: 1,
        name: "KDC_ERR_NAME_EXP",
        meaning: "the client's entry in the KDC database has expired",
        section: E,
    },
    CodeEntry {
        code: 2,
        name: "KDC_ERR_SERVICE_EXP",
        meaning: "the server's entry in the KDC database has expired",
        section: E,
    },
    CodeEntry {
        code: 3,
        name: "KDC_ERR_BAD_PVNO",
        meaning: "requested protocol version number not supported",
        section: E,
    },
    CodeEntry {
        code: 4,
        name: "KDC_ERR_C_OLD_MAST_KVNO",
        meaning: "the client's key is encrypted in an old master key",
        section: E,
    },
    CodeEntry {
        code: 5,
        name: "KDC_ERR_S_OLD_MAST_KVNO",
        meaning: "the server's key is encrypted in an old master key",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_C_PRINCIPAL_UNKNOWN,
        name: "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        meaning: "client not found in the KDC database",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_S_PRINCIPAL_UNKNOWN,
        name: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        meaning: "server not found in the KDC database",
        section: E,
    },
    CodeEntry {
        code: 8,
        name: "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
        meaning: "multiple principal entries in the KDC database",
        section: E,
    },
    CodeEntry {
        code: 9,
        name: "KDC_ERR_NULL_KEY",
        meaning: "the client or server has a null key",
        section: E,
    },
    CodeEntry {
        code: 10,
        name: "KDC_ERR_CANNOT_POSTDATE",
        meaning: "ticket not eligible for postdating",
        section: E,
    },
    CodeEntry {
        code: 11,
        name: "KDC_ERR_NEVER_VALID",
        meaning: "requested start time is later than end time",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_POLICY,
        name: "KDC_ERR_POLICY",
        meaning: "KDC policy rejects the request",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_BADOPTION,
        name: "KDC_ERR_BADOPTION",
        meaning: "KDC cannot accommodate the requested option",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_ETYPE_NOSUPP,
        name: "KDC_ERR_ETYPE_NOSUPP",
        meaning: "KDC has no support for the encryption type",
        section: E,
    },
    CodeEntry {
        code: 15,
        name: "KDC_ERR_SUMTYPE_NOSUPP",
        meaning: "KDC has no support for the checksum type",
        section: E,
    },
    CodeEntry {
        code: 16,
        name: "KDC_ERR_PADATA_TYPE_NOSUPP",
        meaning: "KDC has no support for the padata type",
        section: E,
    },
    CodeEntry {
        code: 17,
        name: "KDC_ERR_TRTYPE_NOSUPP",
        meaning: "KDC has no support for the transited type",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_CLIENT_REVOKED,
        name: "KDC_ERR_CLIENT_REVOKED",
        meaning: "the client's credentials have been revoked: the account is disabled, locked out or expired",
        section: E,
    },
    CodeEntry {
        code: 19,
        name: "KDC_ERR_SERVICE_REVOKED",
        meaning: "credentials for the server have been revoked",
        section: E,
    },
    CodeEntry {
        code: 20,
        name: "KDC_ERR_TGT_REVOKED",
        meaning: "the TGT has been revoked",
        section: E,
    },
    CodeEntry {
        code: 21,
        name: "KDC_ERR_CLIENT_NOTYET",
        meaning: "client not yet valid, try again later",
        section: E,
    },
    CodeEntry {
        code: 22,
        name: "KDC_ERR_SERVICE_NOTYET",
        meaning: "server not yet valid, try again later",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_KEY_EXPIRED,
        name: "KDC_ERR_KEY_EXPIRED",
        meaning: "the password has expired, change it to reset",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_PREAUTH_FAILED,
        name: "KDC_ERR_PREAUTH_FAILED",
        meaning: "pre-authentication information was invalid, usually a wrong password",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_PREAUTH_REQUIRED,
        name: "KDC_ERR_PREAUTH_REQUIRED",
        meaning: "additional pre-authentication required",
        section: E,
    },
    CodeEntry {
        code: 26,
        name: "KDC_ERR_SERVER_NOMATCH",
        meaning: "requested server and ticket do not match",
        section: E,
    },
    CodeEntry {
        code: 27,
        name: "KDC_ERR_MUST_USE_USER2USER",
        meaning: "server principal valid for user-to-user only",
        section: E,
    },
    CodeEntry {
        code: 28,
        name: "KDC_ERR_PATH_NOT_ACCEPTED",
        meaning: "KDC policy rejects the transited path",
        section: E,
    },
    CodeEntry {
        code: 29,
        name: "KDC_ERR_SVC_UNAVAILABLE",
        meaning: "a service is not available",
        section: E,
    },
    CodeEntry {
        code: KRB_AP_ERR_BAD_INTEGRITY,
        name: "KRB_AP_ERR_BAD_INTEGRITY",
        meaning: "integrity check on a decrypted field failed",
        section: E,
    },
    CodeEntry {
        code: KRB_AP_ERR_TKT_EXPIRED,
        name: "KRB_AP_ERR_TKT_EXPIRED",
        meaning: "the ticket expired",
        section: E,
    },
    CodeEntry {
        code: 33,
        name: "KRB_AP_ERR_TKT_NYV",
        meaning: "the ticket is not yet valid",
        section: E,
    },
    CodeEntry {
        code: 34,
        name: "KRB_AP_ERR_REPEAT",
        meaning: "the request is a replay",
        section: E,
    },
    CodeEntry {
        code: 35,
        name: "KRB_AP_ERR_NOT_US",
        meaning: "the ticket is not for this server",
        section: E,
    },
    CodeEntry {
        code: 36,
        name: "KRB_AP_ERR_BADMATCH",
        meaning: "ticket and authenticator do not match",
        section: E,
    },
    CodeEntry {
        code: KRB_AP_ERR_SKEW,
        name: "KRB_AP_ERR_SKEW",
        meaning: "clock skew too great",
        section: E,
    },
    CodeEntry {
        code: 38,
        name: "KRB_AP_ERR_BADADDR",
        meaning: "incorrect network address",
        section: E,
    },
    CodeEntry {
        code: 39,
        name: "KRB_AP_ERR_BADVERSION",
        meaning: "protocol version mismatch",
        section: E,
    },
    CodeEntry {
        code: 40,
        name: "KRB_AP_ERR_MSG_TYPE",
        meaning: "invalid message type",
        section: E,
    },
    CodeEntry {
        code: KRB_AP_ERR_MODIFIED,
        name: "KRB_AP_ERR_MODIFIED",
        meaning: "message stream modified: the ticket does not decrypt with the service's key",
        section: E,
    },
    CodeEntry {
        code: 42,
        name: "KRB_AP_ERR_BADORDER",
        meaning: "message out of order",
        section: E,
    },
    CodeEntry {
        code: 44,
        name: "KRB_AP_ERR_BADKEYVER",
        meaning: "specified version of the key is not available",
        section: E,
    },
    CodeEntry {
        code: KRB_AP_ERR_NOKEY,
        name: "KRB_AP_ERR_NOKEY",
        meaning: "service key not available",
        section: E,
    },
    CodeEntry {
        code: 46,
        name: "KRB_AP_ERR_MUT_FAIL",
        meaning: "mutual authentication failed",
        section: E,
    },
    CodeEntry {
        code: 47,
        name: "KRB_AP_ERR_BADDIRECTION",
        meaning: "incorrect message direction",
        section: E,
    },
    CodeEntry {
        code: 48,
        name: "KRB_AP_ERR_METHOD",
        meaning: "alternative authentication method required",
        section: E,
    },
    CodeEntry {
        code: 49,
        name: "KRB_AP_ERR_BADSEQ",
        meaning: "incorrect sequence number in message",
        section: E,
    },
    CodeEntry {
        code: 50,
        name: "KRB_AP_ERR_INAPP_CKSUM",
        meaning: "inappropriate type of checksum in message",
        section: E,
    },
    CodeEntry {
        code: 51,
        name: "KRB_AP_PATH_NOT_ACCEPTED",
        meaning: "policy rejects the transited path",
        section: E,
    },
    CodeEntry {
        code: KRB_ERR_RESPONSE_TOO_BIG,
        name: "KRB_ERR_RESPONSE_TOO_BIG",
        meaning: "response too big for UDP, retry with TCP",
        section: E,
    },
    CodeEntry {
        code: KRB_ERR_GENERIC,
        name: "KRB_ERR_GENERIC",
        meaning: "generic error, described in e-text",
        section: E,
    },
    CodeEntry {
        code: 61,
        name: "KRB_ERR_FIELD_TOOLONG",
        meaning: "field is too long for this implementation",
        section: E,
    },
    CodeEntry {
        code: 62,
        name: "KDC_ERROR_CLIENT_NOT_TRUSTED",
        meaning: "the client's certificate is not trusted, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 63,
        name: "KDC_ERROR_KDC_NOT_TRUSTED",
        meaning: "the KDC is not trusted, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 64,
        name: "KDC_ERROR_INVALID_SIG",
        meaning: "invalid signature, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 65,
        name: "KDC_ERR_KEY_TOO_WEAK",
        meaning: "the key is too weak",
        section: E,
    },
    CodeEntry {
        code: 66,
        name: "KDC_ERR_CERTIFICATE_MISMATCH",
        meaning: "certificate mismatch, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 67,
        name: "KRB_AP_ERR_NO_TGT",
        meaning: "no TGT available to validate user-to-user",
        section: E,
    },
    CodeEntry {
        code: KDC_ERR_WRONG_REALM,
        name: "KDC_ERR_WRONG_REALM",
        meaning: "wrong realm: the request belongs to another realm's KDC",
        section: E,
    },
    CodeEntry {
        code: 69,
        name: "KRB_AP_ERR_USER_TO_USER_REQUIRED",
        meaning: "the ticket must be for user-to-user",
        section: E,
    },
    CodeEntry {
        code: 70,
        name: "KDC_ERR_CANT_VERIFY_CERTIFICATE",
        meaning: "the certificate cannot be verified, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 71,
        name: "KDC_ERR_INVALID_CERTIFICATE",
        meaning: "invalid certificate, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 72,
        name: "KDC_ERR_REVOKED_CERTIFICATE",
        meaning: "revoked certificate, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 73,
        name: "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
        meaning: "revocation status unknown, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 74,
        name: "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
        meaning: "revocation status unavailable, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 75,
        name: "KDC_ERR_CLIENT_NAME_MISMATCH",
        meaning: "client name mismatch, PKINIT",
        section: E,
    },
    CodeEntry {
        code: 76,
        name: "KDC_ERR_KDC_NAME_MISMATCH",
        meaning: "KDC name mismatch, PKINIT",
        section: E,
    },
];

const T: &str = "RFC 3961 8";

/// [RFC 3961] 8 encryption type numbers (etype), with the AES-SHA2 types of [RFC 8009].
pub static ETYPE_ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 1,
        name: "des-cbc-crc",
        meaning: "single DES with a CRC-32 checksum, broken and disabled by default everywhere",
        section: T,
    },
    CodeEntry {
        code: 2,
        name: "des-cbc-md4",
        meaning: "single DES with MD4, broken",
        section: T,
    },
    CodeEntry {
        code: 3,
        name: "des-cbc-md5",
        meaning: "single DES with MD5, broken and disabled by default everywhere",
        section: T,
    },
    CodeEntry {
        code: 16,
        name: "des3-cbc-sha1-kd",
        meaning: "triple DES with HMAC-SHA1, deprecated",
        section: T,
    },
    CodeEntry {
        code: ETYPE_AES128_CTS_HMAC_SHA1_96,
        name: "aes128-cts-hmac-sha1-96",
        meaning: "AES-128 in CTS mode with HMAC-SHA1",
        section: T,
    },
    CodeEntry {
        code: ETYPE_AES256_CTS_HMAC_SHA1_96,
        name: "aes256-cts-hmac-sha1-96",
        meaning: "AES-256 in CTS mode with HMAC-SHA1",
        section: T,
    },
    CodeEntry {
        code: 19,
        name: "aes128-cts-hmac-sha256-128",
        meaning: "AES-128 in CTS mode with HMAC-SHA256",
        section: "RFC 8009",
    },
    CodeEntry {
        code: 20,
        name: "aes256-cts-hmac-sha384-192",
        meaning: "AES-256 in CTS mode with HMAC-SHA384",
        section: "RFC 8009",
    },
    CodeEntry {
        code: ETYPE_RC4_HMAC,
        name: "rc4-hmac",
        meaning: "RC4 with HMAC-MD5, keyed by the NT hash, deprecated",
        section: T,
    },
    CodeEntry {
        code: 24,
        name: "rc4-hmac-exp",
        meaning: "exportable RC4 with HMAC-MD5, broken",
        section: T,
    },
];

/// What a Kerberos error means for an RDP logon: where to look and what to change. `None` for the codes
/// that are part of a normal exchange or that rdptrace has nothing to add to.
pub fn rdp_hint(code: u32) -> Option<&'static str> {
    Some(match code {
        KDC_ERR_C_PRINCIPAL_UNKNOWN => {
            "the KDC does not know the user: check the user name and the realm (user@REALM or -d), and that the account exists in that domain"
        }
        KDC_ERR_S_PRINCIPAL_UNKNOWN => {
            "the KDC has no service principal TERMSRV/<the name the client connected to>: connect by the server's registered DNS name, or register the SPN on the server's account (setspn -S TERMSRV/name host, or kadmin addprinc for an MIT realm); clients then fall back to NTLM, which domains that block NTLM refuse"
        }
        KDC_ERR_POLICY => {
            "the KDC's policy refuses the request: logon hours, workstation restrictions, an authentication policy or silo, or Protected Users restrictions on the account"
        }
        KDC_ERR_ETYPE_NOSUPP => {
            "the client and the KDC (or the service account) share no encryption type: compare the etypes of the request with msDS-SupportedEncryptionTypes of the accounts and the KDC's permitted types (RC4 and DES are off in current domains)"
        }
        KDC_ERR_CLIENT_REVOKED => {
            "the account is disabled, locked out or expired; the NTSTATUS in the KDC's extended error (if any) says which"
        }
        KDC_ERR_KEY_EXPIRED => {
            "the password has expired: change it (NLA cannot change a password; mstsc shows the same failure)"
        }
        KDC_ERR_PREAUTH_FAILED => {
            "the password is wrong for this account (or the salt the client used is)"
        }
        KRB_AP_ERR_BAD_INTEGRITY => {
            "a ticket or authenticator failed its integrity check: a wrong password or a key mismatch between the KDC and the service"
        }
        KRB_AP_ERR_SKEW => {
            "the clocks differ by more than the allowed skew (5 minutes by default): synchronise the client, the KDC and the server with the same time source"
        }
        KRB_AP_ERR_MODIFIED => {
            "the server could not decrypt its service ticket: the key the KDC used for TERMSRV/<host> is not the server's (a reset computer account password, a duplicate SPN on another account, a stale keytab); check the SPN's account and the key version"
        }
        KRB_AP_ERR_NOKEY => {
            "the server has no key for the service ticket's principal or key version: refresh its keytab (key version numbers must match)"
        }
        KRB_AP_ERR_TKT_EXPIRED => "the service ticket has expired: the client should get a new one",
        KRB_ERR_RESPONSE_TOO_BIG => {
            "the reply does not fit in UDP: use TCP to reach the KDC (tcp://host:88)"
        }
        KDC_ERR_WRONG_REALM => {
            "the KDC is not the one for this realm: check the realm in the user name and which KDC serves it (krb5.conf, DNS SRV records, --kdc)"
        }
        _ => return None,
    })
}
