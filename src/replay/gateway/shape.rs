//! An RD Gateway connection whose TLS nobody could open, told by the sizes of its records: the [MS-TSGU]
//! handshake and the RDP connection's first answer inside the WebSocket transport.
//!
//! The sizes are the protocol's, not an implementation's: [MS-TSGU] 2.2.10.10 the HTTP_HANDSHAKE_REQUEST_PACKET
//! is 14 bytes and 2.2.10.11 the HTTP_HANDSHAKE_RESPONSE_PACKET 18; [RFC 6455] 5.2 a client's frame of fewer
//! than 126 bytes adds 6 (its header and mask), a server's 2; [MS-TSGU] 2.2.10.6 an HTTP_DATA_PACKET adds 10
//! to what it carries, and [MS-RDPBCGR] 2.2.1.2 the X.224 Connection Confirm with its RDP_NEG_RSP is 19. So a
//! client record of 20 bytes of plaintext answered by a server record of 20 is the handshake, and the fifth
//! server record from there (after the tunnel, authorization and channel responses) of 31 bytes is the
//! target's Connection Confirm relayed by the gateway. The HTTP transport's two channels are two connections
//! that nothing in clear ties together: they are not read here.

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

use crate::infer::record::Overhead;
use crate::trace::{Millis, Side};
use crate::wire::frame::{self, Framed};

/// The records a connection keeps at most: the gateway exchange and the first RDP PDUs are in the first few
/// dozen.
const MAX_RECORDS: usize = 256;
/// The longest TLS record ([RFC 8446] 5.2) and its header.
const MAX_RECORD: usize = (1 << 14) + 256 + 5;
/// [RFC 8446] 5.1 application data.
const APPLICATION_DATA: u8 = 23;

/// [MS-TSGU] 2.2.10.10, 2.2.10.11 the handshake packets, in WebSocket frames ([RFC 6455] 5.2).
const WS_HANDSHAKE_REQUEST: u32 = 6 + 14;
const WS_HANDSHAKE_RESPONSE: u32 = 2 + 18;
/// [MS-RDPBCGR] 2.2.1.2 the Connection Confirm in an HTTP_DATA_PACKET in a server frame.
const WS_CONNECTION_CONFIRM: u32 = 2 + 10 + 19;
/// The Connection Confirm is the gateway's fifth answer: after the handshake, tunnel, authorization and
/// channel responses.
const CONFIRM_AFTER: usize = 4;

/// One encrypted application data record: its side, time and plaintext length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sized {
    pub from: Side,
    pub at: Millis,
    pub plaintext: u32,
}

/// What the sizes show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When the first encrypted record went (the HTTP exchange starts there, unreadable).
    pub opened: Millis,
    /// The handshake request and response records.
    pub handshake: (Sized, Sized),
    /// The record that carries the target's X.224 Connection Confirm, when it came.
    pub confirm: Option<Sized>,
}

/// The records of one connection, framed from its TCP streams.
#[derive(Debug, Default)]
pub struct Shape {
    bufs: [Vec<u8>; 2],
    records: Vec<Sized>,
    broken: bool,
}

impl Shape {
    /// Bytes from `from`; `suite` is the outer TLS's version and suite once the ServerHello said them.
    pub fn on_tcp_data(&mut self, from: Side, at: Millis, data: &[u8], suite: Option<(u16, u16)>) {
        if self.broken || self.records.len() >= MAX_RECORDS {
            return;
        }
        let overhead = suite.and_then(|(v, s)| Overhead::of(v, s));
        let [client, server] = &mut self.bufs;
        let buf = match from {
            Side::Client => client,
            Side::Server => server,
        };
        buf.extend_from_slice(data);
        // INVARIANT: each pass removes one whole record or leaves the loop.
        loop {
            match frame::tls_record(buf).bounded(buf.len(), MAX_RECORD) {
                Framed::Complete(n) => {
                    let content_type = buf.first().copied();
                    if content_type == Some(APPLICATION_DATA)
                        && let Some(o) = overhead.filter(|o| o.exact())
                        && let Some(span) = u32::try_from(n.saturating_sub(5))
                            .ok()
                            .and_then(|f| o.plaintext(f))
                        && self.records.len() < MAX_RECORDS
                    {
                        self.records.push(Sized {
                            from,
                            at,
                            plaintext: span.lo,
                        });
                    }
                    buf.drain(..n.min(buf.len()));
                }
                Framed::NeedMore { .. } => break,
                Framed::Not(_) => {
                    self.broken = true;
                    buf.clear();
                    break;
                }
            }
        }
    }

    /// A gap in the capture: records cannot be framed past it.
    pub fn gap(&mut self) {
        self.broken = true;
    }

    /// The records framed so far.
    pub fn records(&self) -> &[Sized] {
        &self.records
    }
}

/// The gateway exchange, when the sizes of `records` show it.
pub fn reading(records: &[Sized]) -> Option<Reading> {
    records.iter().enumerate().find_map(|(i, r)| {
        if r.from != Side::Client || r.plaintext != WS_HANDSHAKE_REQUEST {
            return None;
        }
        let mut answers = records
            .iter()
            .skip(i + 1)
            .filter(|a| a.from == Side::Server);
        let response = *answers.next()?;
        if response.plaintext != WS_HANDSHAKE_RESPONSE {
            return None;
        }
        let confirm = answers
            .nth(CONFIRM_AFTER - 1)
            .filter(|a| a.plaintext == WS_CONNECTION_CONFIRM)
            .copied();
        Some(Reading {
            opened: records.first().map_or(r.at, |f| f.at),
            handshake: (*r, response),
            confirm,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.3 application data record of `plaintext` bytes (AES-GCM: a 16-byte tag and the content type).
    fn record(plaintext: usize) -> Vec<u8> {
        let len = u16::try_from(plaintext + 17).unwrap_or(u16::MAX);
        let mut r = vec![23, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.resize(5 + plaintext + 17, 0);
        r
    }

    const TLS13: Option<(u16, u16)> = Some((0x0304, 0x1302));

    fn shape(records: &[(Side, usize)]) -> Shape {
        let mut s = Shape::default();
        for (i, (side, n)) in records.iter().enumerate() {
            s.on_tcp_data(*side, i as f64, &record(*n), TLS13);
        }
        s
    }

    #[test]
    fn the_websocket_handshake_and_the_confirm_by_their_sizes() {
        use Side::{Client as C, Server as S};
        // Sizes of a session through the built-in gateway: the HTTP heads, the handshake, tunnel,
        // authorization, channel, then the X.224 request and confirm.
        let s = shape(&[
            (C, 342),
            (S, 193),
            (C, 20),
            (S, 20),
            (C, 22),
            (S, 28),
            (C, 36),
            (S, 26),
            (C, 42),
            (S, 22),
            (C, 62),
            (S, 31),
            (C, 232),
        ]);
        let r = reading(&s.records).expect("a reading");
        assert_eq!(r.handshake.0.plaintext, 20);
        assert_eq!(r.handshake.1.at, 3.0);
        assert_eq!(r.confirm.map(|c| c.at), Some(11.0));
        // Another server answer where the confirm belongs: the handshake alone.
        let s = shape(&[(C, 20), (S, 20), (S, 28), (S, 26), (S, 22), (S, 40)]);
        assert_eq!(reading(&s.records).and_then(|r| r.confirm), None);
        assert!(reading(&s.records).is_some());
        // No handshake-sized pair: nothing.
        assert!(reading(shape(&[(C, 20), (S, 21), (C, 20)]).records()).is_none());
        assert!(reading(shape(&[(C, 342), (S, 20)]).records()).is_none());
    }

    #[test]
    fn records_split_across_segments_are_framed() {
        let mut s = Shape::default();
        let mut bytes = record(20);
        bytes.extend(record(5));
        let (a, b) = bytes.split_at(7);
        s.on_tcp_data(Side::Client, 0.0, a, TLS13);
        s.on_tcp_data(Side::Client, 1.0, b, TLS13);
        s.on_tcp_data(Side::Server, 2.0, &record(20), TLS13);
        assert_eq!(s.records.len(), 3);
        assert!(reading(&s.records).is_some());
        // Not TLS: nothing more is kept.
        s.on_tcp_data(Side::Client, 3.0, b"GET / HTTP/1.1\r\n", TLS13);
        assert!(s.broken);
    }
}
