//! Kerberos as rdptrace reads it, sans-IO: the messages of a KDC exchange and of the AP exchange inside
//! CredSSP ([RFC 4120] 5), SPNEGO and the GSS-API token framing ([RFC 4178], [RFC 4121] 4.1), and MIT
//! keytabs; with a keytab, the credential type a captured CredSSP exchange seals ([`unwrap`]).
//!
//! The live probe records what it sends to and gets from the KDC with [`message::parse`]; the replay reads
//! port 88 with the same; the dissector names the tokens inside CredSSP with [`spnego`]. The Kerberos
//! protocol itself (keys, tickets, authenticators) is sspi's.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

pub mod acceptor;
pub mod der;
pub mod dns;
pub mod keytab;
pub mod message;
pub mod spnego;
pub mod tscred;
pub mod unwrap;

/// [RFC 4120] 7.2.3 a message over TCP is preceded by its length, four bytes big-endian.
pub fn tcp_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 4);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

/// [RFC 4120] 7.2.3 the message of a TCP record: the bytes after the four-byte length, when they are all
/// there. `None` when the record is not complete (or is longer than `limit`).
pub fn tcp_record(bytes: &[u8], limit: usize) -> Option<Result<&[u8], usize>> {
    let len_bytes: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    if len > limit {
        return Some(Err(len));
    }
    bytes.get(4..4 + len).map(Ok)
}

/// [MS-KKDCP] 2.2.2 the kerb-message of a KDC-PROXY-MESSAGE (a Kerberos message with its four-byte TCP
/// length, as [RFC 4120] 7.2.2 frames it).
pub fn kkdcp_message(bytes: &[u8]) -> Option<&[u8]> {
    let mut r = crate::wire::Reader::new(bytes);
    let f = der::sequence(&mut r, "KDC-PROXY-MESSAGE").ok()?;
    let mut inner = f.get(0)?;
    der::octets(&mut inner, "kerb-message").ok()
}
