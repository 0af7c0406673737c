//! TLS AlertDescription values: [RFC 8446] 6 for TLS 1.3 and those still in use, [RFC 5246] 7.2 and
//! [RFC 6066] 9 for those only TLS 1.2 and earlier send. Windows servers still speak TLS 1.0 to 1.2.

use super::CodeEntry;

// [RFC 8446] 6 the AlertDescription values rdptrace names in its own code (a description is one byte on the wire).
pub const HANDSHAKE_FAILURE: u8 = 40;
pub const PROTOCOL_VERSION: u8 = 70;
pub const INTERNAL_ERROR: u8 = 80;

pub static ROWS: &[CodeEntry] = &[
    CodeEntry {
        code: 0,
        name: "close_notify",
        meaning: "the peer is closing the connection",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 10,
        name: "unexpected_message",
        meaning: "a message arrived that was not expected",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 20,
        name: "bad_record_mac",
        meaning: "a record failed its integrity check",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 21,
        name: "decryption_failed_RESERVED",
        meaning: "a record did not decrypt (TLS 1.0 only)",
        section: "RFC 5246 7.2",
    },
    CodeEntry {
        code: 22,
        name: "record_overflow",
        meaning: "a record was too long",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 30,
        name: "decompression_failure",
        meaning: "a record did not decompress (TLS 1.2 and earlier)",
        section: "RFC 5246 7.2",
    },
    CodeEntry {
        code: HANDSHAKE_FAILURE as u32,
        name: "handshake_failure",
        meaning: "no acceptable set of security parameters",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 41,
        name: "no_certificate_RESERVED",
        meaning: "no certificate (SSL 3.0 only)",
        section: "RFC 5246 7.2",
    },
    CodeEntry {
        code: 42,
        name: "bad_certificate",
        meaning: "a certificate was corrupt or its signature did not verify",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 43,
        name: "unsupported_certificate",
        meaning: "a certificate of an unsupported type",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 44,
        name: "certificate_revoked",
        meaning: "a certificate was revoked",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 45,
        name: "certificate_expired",
        meaning: "a certificate has expired or is not yet valid",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 46,
        name: "certificate_unknown",
        meaning: "a certificate was unacceptable for another reason",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 47,
        name: "illegal_parameter",
        meaning: "a handshake field was out of range or inconsistent",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 48,
        name: "unknown_ca",
        meaning: "the certificate chain does not lead to a trusted CA",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 49,
        name: "access_denied",
        meaning: "valid certificate but access refused by policy",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 50,
        name: "decode_error",
        meaning: "a message did not decode",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 51,
        name: "decrypt_error",
        meaning: "a handshake cryptographic operation failed",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 60,
        name: "export_restriction_RESERVED",
        meaning: "export restriction (TLS 1.0 only)",
        section: "RFC 5246 7.2",
    },
    CodeEntry {
        code: PROTOCOL_VERSION as u32,
        name: "protocol_version",
        meaning: "the peer does not support the offered TLS version",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 71,
        name: "insufficient_security",
        meaning: "the peer requires stronger ciphers than offered",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: INTERNAL_ERROR as u32,
        name: "internal_error",
        meaning: "an internal error in the peer",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 86,
        name: "inappropriate_fallback",
        meaning: "a version fallback the server refuses",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 90,
        name: "user_canceled",
        meaning: "the handshake was cancelled",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 100,
        name: "no_renegotiation",
        meaning: "renegotiation refused (TLS 1.2 and earlier)",
        section: "RFC 5246 7.2",
    },
    CodeEntry {
        code: 109,
        name: "missing_extension",
        meaning: "a required extension is missing",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 110,
        name: "unsupported_extension",
        meaning: "an extension the peer did not offer",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 111,
        name: "certificate_unobtainable",
        meaning: "a certificate could not be fetched from its URL (TLS 1.2 and earlier)",
        section: "RFC 6066 9",
    },
    CodeEntry {
        code: 112,
        name: "unrecognized_name",
        meaning: "no server for the requested name (SNI)",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 113,
        name: "bad_certificate_status_response",
        meaning: "invalid certificate status (OCSP) response",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 114,
        name: "bad_certificate_hash_value",
        meaning: "a certificate hash did not match (TLS 1.2 and earlier)",
        section: "RFC 6066 9",
    },
    CodeEntry {
        code: 115,
        name: "unknown_psk_identity",
        meaning: "unknown pre-shared key identity",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 116,
        name: "certificate_required",
        meaning: "a client certificate is required",
        section: "RFC 8446 6",
    },
    CodeEntry {
        code: 120,
        name: "no_application_protocol",
        meaning: "no common application protocol (ALPN)",
        section: "RFC 8446 6",
    },
];
