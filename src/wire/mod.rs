//! A bounds-checked reader for wire data: every read returns an error with its offset, never panics; and
//! [`frame`], where each frame of a byte stream ends.
//!
//! ironrdp-core's `ReadCursor` panics on short input and expects its caller to check sizes first; the
//! dissector reads whatever a peer or a capture holds, so it reads through this instead.

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

pub mod frame;

use core::fmt;

/// Not enough bytes, or a value out of range, at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)
    }
}

impl std::error::Error for WireError {}

pub type WireResult<T> = Result<T, WireError>;

#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the enclosing PDU, so that errors name the offset in the PDU.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// Offset in the enclosing PDU.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn err(&self, what: &'static str) -> WireError {
        WireError {
            offset: self.offset(),
            what,
        }
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> WireResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err(what))?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(out)
    }

    /// A sub-reader over the next `n` bytes, with offsets kept relative to the enclosing PDU.
    pub fn sub(&mut self, n: usize, what: &'static str) -> WireResult<Reader<'a>> {
        let base = self.offset();
        let bytes = self.bytes(n, what)?;
        Ok(Reader::with_base(bytes, base))
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> WireResult<()> {
        self.bytes(n, what).map(|_| ())
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> WireResult<[u8; N]> {
        let at = self.err(what);
        self.bytes(N, what)?.try_into().map_err(|_| at)
    }

    pub fn u8(&mut self, what: &'static str) -> WireResult<u8> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn u16_le(&mut self, what: &'static str) -> WireResult<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u16_be(&mut self, what: &'static str) -> WireResult<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// A 24-bit big-endian length (TLS handshake and certificate lengths).
    pub fn u24_be(&mut self, what: &'static str) -> WireResult<usize> {
        let [a, b, c] = self.array(what)?;
        Ok((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c))
    }

    pub fn u32_le(&mut self, what: &'static str) -> WireResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u32_be(&mut self, what: &'static str) -> WireResult<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// [T.125] / [X.691] PER length determinant (one or two bytes).
    pub fn per_length(&mut self, what: &'static str) -> WireResult<usize> {
        let first = self.u8(what)?;
        if first & 0x80 == 0 {
            Ok(usize::from(first))
        } else {
            let second = self.u8(what)?;
            Ok((usize::from(first & 0x7f) << 8) | usize::from(second))
        }
    }

    /// [X.690] BER length (short or long form, up to four length bytes).
    pub fn ber_length(&mut self, what: &'static str) -> WireResult<usize> {
        let first = self.u8(what)?;
        if first & 0x80 == 0 {
            return Ok(usize::from(first));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(self.err(what));
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = (len << 8) | usize::from(self.u8(what)?);
        }
        Ok(len)
    }
}

/// UTF-16LE bytes to a string, stopping at the first NUL; lossy on bad surrogates.
pub fn utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .as_chunks::<2>()
        .0
        .iter()
        .map(|c| u16::from_le_bytes(*c))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Bytes to a printable ASCII string, stopping at the first NUL.
pub fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_fail_with_offset() {
        let mut r = Reader::with_base(&[1, 2, 3], 10);
        assert_eq!(r.u16_le("a").unwrap(), 0x0201);
        let e = r.u16_le("second field").unwrap_err();
        assert_eq!(
            e,
            WireError {
                offset: 12,
                what: "second field"
            }
        );
        assert_eq!(e.to_string(), "second field at offset 12");
    }

    #[test]
    fn lengths() {
        assert_eq!(Reader::new(&[0x05]).per_length("l").unwrap(), 5);
        assert_eq!(Reader::new(&[0x81, 0x02]).per_length("l").unwrap(), 0x102);
        assert_eq!(
            Reader::new(&[0x82, 0x01, 0x00]).ber_length("l").unwrap(),
            0x100
        );
        assert!(Reader::new(&[0x85, 1, 1, 1, 1, 1]).ber_length("l").is_err());
        assert!(Reader::new(&[0x82, 0x01]).ber_length("l").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(utf16le(&[b'a', 0, b'b', 0, 0, 0, b'c', 0]), "ab");
        assert_eq!(ascii(b"ok\x01\0x"), "ok.");
    }
}
