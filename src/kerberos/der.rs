//! [X.690] DER, as far as Kerberos and SPNEGO need it: a TLV walker over [`Reader`], bounded by its input.
//!
//! Every read names what it reads and where, never panics, and never allocates more than its input.

use crate::wire::{Reader, WireError, WireResult};

/// [X.690] 8.1.2 universal tags, and the class bits.
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const ENUMERATED: u8 = 0x0a;
pub const GENERAL_STRING: u8 = 0x1b;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;
/// Context-specific, constructed: `[n]` is `CONTEXT | n`.
pub const CONTEXT: u8 = 0xa0;
/// Application, constructed: `[APPLICATION n]` is `APPLICATION | n` (n < 31).
pub const APPLICATION: u8 = 0x60;

/// One element: its tag byte and its content.
#[derive(Debug, Clone)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: Reader<'a>,
}

/// Reads the next element (single-byte tags only: Kerberos and SPNEGO use no others).
pub fn tlv<'a>(r: &mut Reader<'a>, what: &'static str) -> WireResult<Tlv<'a>> {
    let tag = r.u8(what)?;
    if tag & 0x1f == 0x1f {
        return Err(r.err(what));
    }
    let len = r.ber_length(what)?;
    let content = r.sub(len, what)?;
    Ok(Tlv { tag, content })
}

/// Reads the next element, which must carry `tag`.
pub fn expect<'a>(r: &mut Reader<'a>, tag: u8, what: &'static str) -> WireResult<Reader<'a>> {
    let at = r.err(what);
    let t = tlv(r, what)?;
    if t.tag != tag {
        return Err(at);
    }
    Ok(t.content)
}

/// The fields of a SEQUENCE whose members are `[n]` explicitly tagged, by tag number. A member that is
/// missing reads as `None`; unknown members are skipped.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a> {
    fields: Vec<(u8, Reader<'a>)>,
}

impl<'a> Fields<'a> {
    /// The members of the SEQUENCE `r` holds (its content, not the SEQUENCE element itself).
    pub fn read(mut r: Reader<'a>, what: &'static str) -> WireResult<Self> {
        let mut fields = Vec::new();
        // INVARIANT: each pass consumes one element (at least two bytes) or fails.
        while r.remaining() > 0 {
            let t = tlv(&mut r, what)?;
            if t.tag & 0xe0 == CONTEXT {
                fields.push((t.tag & 0x1f, t.content));
            }
        }
        Ok(Fields { fields })
    }

    /// The content of member `[n]`, if present.
    pub fn get(&self, n: u8) -> Option<Reader<'a>> {
        self.fields
            .iter()
            .find(|(tag, _)| *tag == n)
            .map(|(_, r)| r.clone())
    }

    /// The content of member `[n]`, which must be present.
    pub fn need(&self, n: u8, what: &'static str) -> WireResult<Reader<'a>> {
        self.get(n).ok_or(WireError { offset: 0, what })
    }
}

/// The members of a SEQUENCE `[n]` explicitly tagged: `r` is positioned at the SEQUENCE element.
pub fn sequence<'a>(r: &mut Reader<'a>, what: &'static str) -> WireResult<Fields<'a>> {
    Fields::read(expect(r, SEQUENCE, what)?, what)
}

/// An INTEGER that fits in an `i64`.
pub fn integer(r: &mut Reader<'_>, what: &'static str) -> WireResult<i64> {
    let at = r.err(what);
    let mut c = expect(r, INTEGER, what)?;
    let bytes = c.bytes(c.remaining(), what)?;
    if bytes.is_empty() || bytes.len() > 8 {
        return Err(at);
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut v: i64 = if negative { -1 } else { 0 };
    for b in bytes {
        v = (v << 8) | i64::from(*b);
    }
    Ok(v)
}

/// An INTEGER that must fit in an `i32` (Kerberos Int32).
pub fn int32(r: &mut Reader<'_>, what: &'static str) -> WireResult<i32> {
    let at = r.err(what);
    i32::try_from(integer(r, what)?).map_err(|_| at)
}

/// An INTEGER that must fit in a `u32` (Kerberos UInt32, error codes).
pub fn uint32(r: &mut Reader<'_>, what: &'static str) -> WireResult<u32> {
    let at = r.err(what);
    u32::try_from(integer(r, what)?).map_err(|_| at)
}

/// An ENUMERATED value of one byte.
pub fn enumerated(r: &mut Reader<'_>, what: &'static str) -> WireResult<u8> {
    let mut c = expect(r, ENUMERATED, what)?;
    c.u8(what)
}

/// A KerberosString ([RFC 4120] 5.2.1: GeneralString of IA5 characters), printable.
pub fn string(r: &mut Reader<'_>, what: &'static str) -> WireResult<String> {
    let mut c = expect(r, GENERAL_STRING, what)?;
    let bytes = c.bytes(c.remaining(), what)?;
    Ok(printable(bytes))
}

/// An OCTET STRING's bytes.
pub fn octets<'a>(r: &mut Reader<'a>, what: &'static str) -> WireResult<&'a [u8]> {
    let mut c = expect(r, OCTET_STRING, what)?;
    c.bytes(c.remaining(), what)
}

/// A KerberosTime ([RFC 4120] 5.2.3: `YYYYMMDDHHMMSSZ`), as RFC 3339.
pub fn time(r: &mut Reader<'_>, what: &'static str) -> WireResult<String> {
    let at = r.err(what);
    let mut c = expect(r, GENERALIZED_TIME, what)?;
    let bytes = c.bytes(c.remaining(), what)?;
    let Some((b'Z', digits)) = bytes.split_last() else {
        return Err(at);
    };
    if digits.len() != 14 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(at);
    }
    let d = printable(digits);
    let part = |range: core::ops::Range<usize>| d.get(range).unwrap_or_default();
    Ok(format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14)
    ))
}

/// An OBJECT IDENTIFIER, in dotted form.
pub fn oid(r: &mut Reader<'_>, what: &'static str) -> WireResult<String> {
    let at = r.err(what);
    let mut c = expect(r, OID, what)?;
    let bytes = c.bytes(c.remaining(), what)?;
    oid_text(bytes).ok_or(at)
}

/// The dotted form of an OID's content bytes.
pub fn oid_text(bytes: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for b in bytes {
        if value > u64::MAX >> 8 {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let first = *arcs.first()?;
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in arcs.iter().skip(1) {
        out.push('.');
        out.push_str(&arc.to_string());
    }
    Some(out)
}

/// A SEQUENCE OF elements, each handed to `each`; at most `limit` of them.
pub fn sequence_of<'a, T>(
    r: &mut Reader<'a>,
    limit: usize,
    what: &'static str,
    mut each: impl FnMut(&mut Reader<'a>) -> WireResult<T>,
) -> WireResult<Vec<T>> {
    let mut c = expect(r, SEQUENCE, what)?;
    let mut out = Vec::new();
    // INVARIANT: each pass consumes one element or fails; the count is bounded by `limit`.
    while c.remaining() > 0 && out.len() < limit {
        out.push(each(&mut c)?);
    }
    Ok(out)
}

/// [X.690] 8.1 writes one element: its tag, its DER length and its content.
/// A DER INTEGER of a non-negative value.
pub fn write_integer(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    let mut content = bytes.get(skip..).unwrap_or_default().to_vec();
    if content.first().is_some_and(|b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    write(INTEGER, &content)
}

pub fn write(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// Bytes to printable ASCII (anything else becomes `?`), at most 256 characters.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(256)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_times() {
        assert_eq!(integer(&mut Reader::new(&[2, 1, 0x12]), "i").unwrap(), 0x12);
        assert_eq!(integer(&mut Reader::new(&[2, 1, 0xff]), "i").unwrap(), -1);
        assert_eq!(
            integer(&mut Reader::new(&[2, 2, 0x00, 0x80]), "i").unwrap(),
            0x80
        );
        assert!(integer(&mut Reader::new(&[2, 0]), "i").is_err());
        assert!(integer(&mut Reader::new(&[2, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "i").is_err());
        let t = b"\x18\x0f20250520123456Z";
        assert_eq!(
            time(&mut Reader::new(t), "t").unwrap(),
            "2025-05-20T12:34:56Z"
        );
        assert!(time(&mut Reader::new(b"\x18\x0f2025052012345xZ"), "t").is_err());
    }

    #[test]
    fn oids() {
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02]).unwrap(),
            "1.2.840.113554.1.2.2"
        );
        assert_eq!(
            oid_text(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]).unwrap(),
            "1.3.6.1.5.5.2"
        );
        assert!(oid_text(&[]).is_none());
    }

    #[test]
    fn truncated_input_never_panics() {
        let seq = [0x30, 0x06, 0xa0, 0x03, 0x02, 0x01, 0x05, 0xa1];
        for cut in 0..seq.len() {
            let _ = sequence(&mut Reader::new(&seq[..cut]), "s");
        }
        assert!(
            sequence(
                &mut Reader::new(&[0x30, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x05]),
                "s"
            )
            .is_ok()
        );
    }
}
