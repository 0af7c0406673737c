//! [RFC 6455] the WebSocket framing the RD Gateway's WebSocket transport uses ([MS-TSGU] 3.3.5.1): binary
//! frames carrying the HTTP transport's packets, ping, pong and close. No I/O; frames bounded.

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

use sha1::Digest as _;

/// [RFC 6455] 5.2 opcodes.
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The longest frame payload rdptrace accepts (a gateway packet is at most 64 KiB and a bit).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// [RFC 6455] 1.3 the GUID a server appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// [RFC 6455] 4.2.2 the Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
pub fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    let mut h = sha1::Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// [RFC 6455] 4.1 a client key: 16 random bytes in base64.
pub fn client_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// [RFC 6455] 5.2 one frame: FIN set, masked with `mask` when given (a client's frames are).
pub fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | (opcode & 0x0f));
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(masked | n as u8),
        n @ 126..=0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// [RFC 6455] 5.5.1 the status code of a Close frame, when it has one.
    pub fn close_code(&self) -> Option<u16> {
        match self.payload.as_slice() {
            [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }
}

/// Why the bytes are not WebSocket frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a WebSocket frame longer than rdptrace accepts")]
    TooLong,
}

/// Cuts frames out of a byte stream.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held and not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, unmasked; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let [b0, b1, rest @ ..] = self.buf.as_slice() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => match rest {
                [hi, lo, ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), 4),
                _ => return Ok(None),
            },
            127 => match rest.get(..8) {
                Some(b) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    let n = u64::from_be_bytes(a);
                    (usize::try_from(n).unwrap_or(usize::MAX), 10)
                }
                None => return Ok(None),
            },
            n => (usize::from(n), 2),
        };
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLong);
        }
        let mut key = None;
        if masked {
            match self.buf.get(at..at + 4) {
                Some(k) => {
                    let mut a = [0u8; 4];
                    a.copy_from_slice(k);
                    key = Some(a);
                    at += 4;
                }
                None => return Ok(None),
            }
        }
        let Some(payload) = self.buf.get(at..at + len) else {
            return Ok(None);
        };
        let payload: Vec<u8> = match key {
            Some(k) => payload
                .iter()
                .zip(k.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect(),
            None => payload.to_vec(),
        };
        self.buf.drain(..at + len);
        Ok(Some(Frame {
            fin,
            opcode,
            masked,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [RFC 6455] 1.3 the example key and its accept value.
    #[test]
    fn the_rfc_example_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_round_trip_masked_or_not_at_every_length_form() {
        for len in [0usize, 5, 125, 126, 300, 0xffff, 0x10000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let wire = frame(BINARY, &payload, mask);
                let mut r = FrameReader::default();
                // Byte by byte for the short ones: a frame comes out only when whole.
                if len < 200 {
                    for b in &wire {
                        assert!(r.pending() < wire.len());
                        if let Some(f) = r.next_frame().unwrap() {
                            panic!("early frame {f:?}");
                        }
                        r.push(&[*b]);
                    }
                } else {
                    r.push(&wire);
                }
                let f = r.next_frame().unwrap().unwrap();
                assert_eq!(
                    (f.opcode, f.masked, f.payload),
                    (BINARY, mask.is_some(), payload.clone())
                );
                assert_eq!(r.pending(), 0);
            }
        }
        let mut r = FrameReader::default();
        r.push(&[0x82, 127, 0, 0, 0, 0, 0xff, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(FrameError::TooLong));
    }
}
