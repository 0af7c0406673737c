//! Framing: where the next frame of a byte stream ends, for every framing RDP uses, in one place.
//!
//! - [`rdp`]: a TPKT ([T.123] 8, [2.2.1.1]) or a fast-path PDU ([2.2.8.1.2], [2.2.9.1.2]), as ironrdp-pdu's
//!   `find_size` frames them; [`tpkt`] the same without fast-path (the answer to a Connection Request);
//! - [`tls_record`]: a TLS record ([RFC 8446] 5.1), and [`looks_like_tls_record`] for a stream that switches
//!   to TLS where RDP framing was expected;
//! - [`tls_handshake_message`]: a handshake message in the handshake bytes of TLS records ([RFC 8446] 4);
//! - [`ts_request`]: a CredSSP TSRequest ([MS-CSSP] 2.2.1), a DER SEQUENCE ([X.690] 8.1);
//! - [`fixed`]: a PDU of a known size (the Early User Authorization Result, [2.2.10.2]).
//!
//! Each looks at the start of a buffer and answers [`Framed::Complete`] (a whole frame of that many bytes is
//! there), [`Framed::NeedMore`] (the frame has begun; more bytes are needed) or [`Framed::Not`] (the bytes
//! are not this framing, with the offset and the reason). None reads past the buffer, allocates or panics.
//! The dissector, the probe's frame reader, the scan, the Standard RDP Security shims, the replay's
//! classifier and the capture generator all frame through here.

use core::fmt;

use ironrdp_pdu::tpdu::TpduCode;
use ironrdp_pdu::tpkt::TpktHeader;

/// [RFC 5246] 6.2.3 / [RFC 8446] 5.2: the longest TLS record fragment (2^14 bytes plus the expansion a
/// cipher may add).
pub const MAX_TLS_FRAGMENT: usize = (1 << 14) + 2048;
/// [RFC 8446] 5.1 A TLS record header: content type, legacy version, length.
pub const TLS_RECORD_HEADER: usize = 5;
/// [RFC 8446] 4 A handshake message header: type and a 24-bit length.
const TLS_HANDSHAKE_HEADER: usize = 4;

/// [RFC 8446] 5.1 The content types a TLS record may carry: ChangeCipherSpec (20) to Heartbeat (24).
const TLS_CONTENT_TYPES: core::ops::RangeInclusive<u8> = 20..=24;
/// [RFC 8446] 5.1 The major version of every SSL 3.0 and TLS legacy_record_version.
const TLS_MAJOR: u8 = 3;
/// [X.690] 8.9 The identifier octet of a constructed SEQUENCE.
const DER_SEQUENCE: u8 = 0x30;

/// The result of looking for one frame at the start of a buffer.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// A whole frame of this many bytes starts the buffer.
    Complete(usize),
    /// The buffer holds the start of a frame, or nothing yet; `total` is the frame's length once its header
    /// says it.
    NeedMore { total: Option<usize> },
    /// The bytes are not a frame of this framing.
    Not(FrameError),
}

impl Framed {
    /// A frame still incomplete after `limit` buffered bytes is refused: a peer that never completes a frame
    /// must not make its reader hold more and more.
    pub fn bounded(self, buffered: usize, limit: usize) -> Framed {
        match self {
            Framed::NeedMore { .. } if buffered > limit => Framed::Not(FrameError {
                offset: 0,
                kind: FrameErrorKind::TooLong,
            }),
            other => other,
        }
    }
}

const NEED_MORE: Framed = Framed::NeedMore { total: None };

/// Why bytes are not a frame, at an offset from the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at offset {offset}")]
pub struct FrameError {
    pub offset: usize,
    pub kind: FrameErrorKind,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameErrorKind {
    /// The first byte is neither a TPKT version (3) nor a fast-path header (action bits 0).
    NotRdp { first: u8 },
    /// The first byte is not a TPKT version (3) where only a TPKT may come.
    NotTpkt { first: u8 },
    /// [T.123] 8 A TPKT length below 7: the TPKT header (4) and the shortest X.224 TPDU header (3).
    TpktTooShort { length: usize },
    /// [2.2.9.1.2] A fast-path length below the size of its own header.
    FastPathTooShort,
    /// Not a TLS record content type, or not major version 3.
    NotTlsRecord { content_type: u8, major: u8 },
    /// [RFC 8446] 5.1 A TLS record longer than [`MAX_TLS_FRAGMENT`].
    TlsRecordTooLong { length: usize },
    /// Not a DER SEQUENCE where a TSRequest belongs.
    NotTsRequest { tag: u8 },
    /// [X.690] 8.1.3 A length in neither the short nor a long form of up to four bytes.
    DerLength,
    /// A TSRequest longer than the reader's limit.
    TsRequestTooLong { total: usize },
    /// More bytes than the reader's limit without a whole frame ([`Framed::bounded`]).
    TooLong,
}

impl fmt::Display for FrameErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FrameErrorKind {}

impl FrameErrorKind {
    /// The reason in words, as traces record it.
    pub fn message(&self) -> &'static str {
        match self {
            FrameErrorKind::NotRdp { .. } => "not a TPKT or fast-path header",
            FrameErrorKind::NotTpkt { .. } => "not a TPKT header",
            FrameErrorKind::TpktTooShort { .. } => {
                "TPKT length shorter than a TPKT header and an X.224 header"
            }
            FrameErrorKind::FastPathTooShort => "fast-path length shorter than its header",
            FrameErrorKind::NotTlsRecord { .. } => "not a TLS record header",
            FrameErrorKind::TlsRecordTooLong { .. } => "TLS record longer than the protocol allows",
            FrameErrorKind::NotTsRequest { .. } => "not a TSRequest",
            FrameErrorKind::DerLength => "a DER length that does not parse",
            FrameErrorKind::TsRequestTooLong { .. } => "a TSRequest longer than rdptrace accepts",
            FrameErrorKind::TooLong => "a frame longer than rdptrace accepts",
        }
    }
}

fn not(offset: usize, kind: FrameErrorKind) -> Framed {
    Framed::Not(FrameError { offset, kind })
}

/// A frame of `total` bytes: whole in `buf`, or waiting for the rest.
fn whole_or_more(buf: &[u8], total: usize) -> Framed {
    if buf.len() >= total {
        Framed::Complete(total)
    } else {
        Framed::NeedMore { total: Some(total) }
    }
}

fn be16_at(buf: &[u8], at: usize) -> Option<usize> {
    let hi = *buf.get(at)?;
    let lo = *buf.get(at.checked_add(1)?)?;
    Some(usize::from(u16::from_be_bytes([hi, lo])))
}

/// [T.123] 8 TPKT ([2.2.1.1]) or [2.2.8.1.2] / [2.2.9.1.2] fast-path framing, as ironrdp's connector and
/// acceptor frame a connection (`ironrdp_pdu::find_size`): a TPKT of version 3 and length 7 or more, or a
/// fast-path PDU (action bits 0) at least as long as its own header.
pub fn rdp(buf: &[u8]) -> Framed {
    let Some(&first) = buf.first() else {
        return NEED_MORE;
    };
    let is_tpkt = first == TpktHeader::VERSION;
    // ironrdp reads the action bits first and waits for a whole TPKT header before it checks the version; a
    // byte that can start neither a TPKT nor a fast-path PDU is refused at once.
    if !is_tpkt && first & 0b11 != 0 {
        return not(0, FrameErrorKind::NotRdp { first });
    }
    match ironrdp_pdu::find_size(buf) {
        Ok(None) => NEED_MORE,
        Ok(Some(info)) => whole_or_more(buf, info.length),
        // INVARIANT: with the version checked, a TPKT header fails only on its length, and a fast-path
        // header only on its length.
        Err(_) if is_tpkt => not(
            2,
            FrameErrorKind::TpktTooShort {
                length: be16_at(buf, 2).unwrap_or(0),
            },
        ),
        Err(_) => not(1, FrameErrorKind::FastPathTooShort),
    }
}

/// [T.123] 8 TPKT framing alone: what answers an X.224 Connection Request ([2.2.1.2]) and what the scan
/// reads before fast-path is possible.
pub fn tpkt(buf: &[u8]) -> Framed {
    match buf.first() {
        Some(&first) if first != TpktHeader::VERSION => not(0, FrameErrorKind::NotTpkt { first }),
        _ => rdp(buf),
    }
}

/// [RFC 8446] 5.1 TLS record framing: a content type from ChangeCipherSpec to Heartbeat, major version 3,
/// and a fragment of at most [`MAX_TLS_FRAGMENT`] bytes.
pub fn tls_record(buf: &[u8]) -> Framed {
    if let Some(&content_type) = buf.first()
        && !TLS_CONTENT_TYPES.contains(&content_type)
    {
        let major = buf.get(1).copied().unwrap_or(0);
        return not(
            0,
            FrameErrorKind::NotTlsRecord {
                content_type,
                major,
            },
        );
    }
    if let Some(&major) = buf.get(1)
        && major != TLS_MAJOR
    {
        let content_type = buf.first().copied().unwrap_or(0);
        return not(
            1,
            FrameErrorKind::NotTlsRecord {
                content_type,
                major,
            },
        );
    }
    let Some(length) = be16_at(buf, 3) else {
        return NEED_MORE;
    };
    if length > MAX_TLS_FRAGMENT {
        return not(3, FrameErrorKind::TlsRecordTooLong { length });
    }
    whole_or_more(buf, TLS_RECORD_HEADER + length)
}

/// Whether `buf` starts with the header of a TLS 1.0 to 1.3 record (ChangeCipherSpec to ApplicationData): what
/// a stream holds where TPKT or fast-path was expected when a peer starts TLS without a negotiation (a
/// capture that begins at the ClientHello).
pub fn looks_like_tls_record(buf: &[u8]) -> bool {
    matches!(buf, [20..=23, TLS_MAJOR, 0x00..=0x04, ..])
}

/// A whole TLS record, cut into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsRecord<'a> {
    pub content_type: u8,
    /// legacy_record_version.
    pub version: u16,
    pub fragment: &'a [u8],
}

impl<'a> TlsRecord<'a> {
    /// The parts of `record`, a frame [`tls_record`] found complete; `None` for fewer bytes than a header.
    pub fn parse(record: &'a [u8]) -> Option<TlsRecord<'a>> {
        let (header, fragment) = record.split_first_chunk::<TLS_RECORD_HEADER>()?;
        let [content_type, major, minor, _, _] = *header;
        Some(TlsRecord {
            content_type,
            version: u16::from_be_bytes([major, minor]),
            fragment,
        })
    }
}

/// [RFC 8446] 4 A handshake message in the handshake bytes of TLS records: its type, a 24-bit length, the
/// body. (Any length is a frame; the caller bounds what it buffers.)
pub fn tls_handshake_message(buf: &[u8]) -> Framed {
    let [_, a, b, c, ..] = *buf else {
        return NEED_MORE;
    };
    let length = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
    whole_or_more(buf, TLS_HANDSHAKE_HEADER + length)
}

/// [MS-CSSP] 2.2.1 A TSRequest: a DER SEQUENCE ([X.690] 8.9) whose length ([X.690] 8.1.3, short form or
/// up to four length bytes) makes a frame of at most `limit` bytes.
pub fn ts_request(buf: &[u8], limit: usize) -> Framed {
    let mut r = super::Reader::new(buf);
    match r.u8("tag") {
        Err(_) => return NEED_MORE,
        Ok(DER_SEQUENCE) => {}
        Ok(tag) => return not(0, FrameErrorKind::NotTsRequest { tag }),
    }
    match r.ber_length("length") {
        Ok(length) => {
            let total = r.offset().saturating_add(length);
            if total > limit {
                not(1, FrameErrorKind::TsRequestTooLong { total })
            } else {
                whole_or_more(buf, total)
            }
        }
        // A tag and the longest length this reads take six bytes: below that the length may be unfinished.
        Err(_) if buf.len() < 6 => NEED_MORE,
        Err(_) => not(1, FrameErrorKind::DerLength),
    }
}

/// A PDU of `len` bytes whatever it holds ([2.2.10.2] the Early User Authorization Result is 4).
pub fn fixed(buf: &[u8], len: usize) -> Framed {
    whole_or_more(buf, len)
}

/// The whole frames at the start of `bytes`, one after the other, each with its offset; [`Split::rest`] is
/// what follows the last of them.
pub fn split(bytes: &[u8], framing: fn(&[u8]) -> Framed) -> Split<'_> {
    Split {
        bytes,
        at: 0,
        framing,
    }
}

/// The iterator of [`split`].
pub struct Split<'a> {
    bytes: &'a [u8],
    at: usize,
    framing: fn(&[u8]) -> Framed,
}

impl<'a> Split<'a> {
    /// The bytes after the frames returned so far.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }
}

impl fmt::Debug for Split<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Split").field("at", &self.at).finish()
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest();
        let Framed::Complete(n) = (self.framing)(rest) else {
            return None;
        };
        // INVARIANT: every framing above completes only frames of at least one byte, so each step moves on.
        let frame = rest.get(..n).filter(|f| !f.is_empty())?;
        let at = self.at;
        self.at += n;
        Some((at, frame))
    }
}

/// What the first bytes of a stream show, when they may not all be there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek<T> {
    /// Too few bytes to tell.
    NeedMore,
    /// The bytes do not start this way.
    Not,
    Found(T),
}

/// [T.123] 8 / [X.224] 13.2 The TPDU code (its high nibble) of the TPKT at the start of `buf`: a TPKT header
/// (version 3, reserved 0), the length indicator, then the code.
pub fn tpdu_code(buf: &[u8]) -> Peek<TpduCode> {
    match buf {
        [TpktHeader::VERSION, 0x00, _, _, _, code, ..] => Peek::Found(TpduCode::from(code & 0xf0)),
        [] | [TpktHeader::VERSION] | [TpktHeader::VERSION, 0x00, ..] => Peek::NeedMore,
        _ => Peek::Not,
    }
}

/// [RFC 8446] 5.1, 4 The handshake type of the first message of the TLS handshake record at the start of
/// `buf` (1 is a ClientHello).
pub fn tls_handshake_type(buf: &[u8]) -> Peek<u8> {
    const HANDSHAKE: u8 = 22;
    match buf {
        [HANDSHAKE, TLS_MAJOR, _, _, _, kind, ..] => Peek::Found(*kind),
        [] | [HANDSHAKE] | [HANDSHAKE, TLS_MAJOR, ..] => Peek::NeedMore,
        _ => Peek::Not,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(f: Framed) -> FrameErrorKind {
        match f {
            Framed::Not(e) => e.kind,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tpkt_and_fast_path() {
        assert_eq!(rdp(&[]), NEED_MORE);
        assert_eq!(rdp(&[0x03, 0x00]), NEED_MORE);
        assert_eq!(
            rdp(&[0x03, 0x00, 0x00, 0x0b, 0, 0]),
            Framed::NeedMore { total: Some(11) }
        );
        assert_eq!(
            rdp(&[0x03, 0x00, 0x00, 0x07, 2, 0xf0, 0x80, 9]),
            Framed::Complete(7)
        );
        assert_eq!(rdp(&[0x00, 0x04, 1, 2]), Framed::Complete(4));
        assert_eq!(
            rdp(&[0x00, 0x81, 0x00]),
            Framed::NeedMore { total: Some(0x100) }
        );
        assert_eq!(rdp(&[0x00, 0x81]), NEED_MORE);
        assert_eq!(kind(rdp(b"ECODH")), FrameErrorKind::NotRdp { first: b'E' });
        // 0x17 has the action bits of a TPKT but is no TPKT version: refused without waiting for four bytes.
        assert_eq!(kind(rdp(&[0x17])), FrameErrorKind::NotRdp { first: 0x17 });
        assert_eq!(kind(rdp(&[0x00, 0x01])), FrameErrorKind::FastPathTooShort);
        // A two-byte length must cover its own three-byte header.
        assert_eq!(
            kind(rdp(&[0x00, 0x80, 0x02])),
            FrameErrorKind::FastPathTooShort
        );
        assert_eq!(rdp(&[0x00, 0x80, 0x03, 0x04]), Framed::Complete(3));
    }

    /// Every TPKT length from 0 to 6 is too short for a TPKT header and an X.224 header: the framers of the
    /// dissector and the probe refused them, the Standard RDP Security shims took lengths 2 to 6.
    #[test]
    fn tpkt_lengths_below_seven_are_not_frames() {
        for length in 0u8..7 {
            let bytes = [0x03, 0x00, 0x00, length, 0x02, 0xf0, 0x80, 0x00];
            let refused = rdp(&bytes);
            assert_eq!(
                refused,
                Framed::Not(FrameError {
                    offset: 2,
                    kind: FrameErrorKind::TpktTooShort {
                        length: usize::from(length)
                    }
                }),
                "length {length}"
            );
            assert_eq!(tpkt(&bytes), refused);
        }
        assert_eq!(
            rdp(&[0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80]),
            Framed::Complete(7)
        );
    }

    /// The framing is ironrdp's: wherever `find_size` gives a length, this frames the same length, and it
    /// refuses whatever `find_size` refuses.
    #[test]
    fn rdp_framing_agrees_with_ironrdp() {
        let seconds = [0x00, 0x01, 0x02, 0x03, 0x07, 0x7f, 0x80, 0x81, 0xff];
        for first in 0..=255u8 {
            for second in seconds {
                for third in [0x00, 0x02, 0x03, 0x07, 0xff] {
                    for fourth in [0x00, 0x06, 0x07, 0x10] {
                        let buf = [first, second, third, fourth, 0, 0, 0, 0];
                        for n in 0..=buf.len() {
                            let buf = &buf[..n];
                            let ours = rdp(buf);
                            match ironrdp_pdu::find_size(buf) {
                                Ok(Some(info)) => {
                                    assert_eq!(ours, whole_or_more(buf, info.length), "{buf:02x?}")
                                }
                                Ok(None) => assert!(
                                    ours == NEED_MORE || (first & 0b11 == 0b11 && first != 3),
                                    "{buf:02x?}: {ours:?}"
                                ),
                                Err(_) => {
                                    assert!(matches!(ours, Framed::Not(_)), "{buf:02x?}")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tpkt_only() {
        assert_eq!(
            kind(tpkt(b"HTTP/1.1 400 Bad Request")),
            FrameErrorKind::NotTpkt { first: b'H' }
        );
        assert_eq!(
            kind(tpkt(&[0x00, 0x04, 1, 2])),
            FrameErrorKind::NotTpkt { first: 0 }
        );
        assert_eq!(tpkt(&[0x03]), NEED_MORE);
    }

    #[test]
    fn tls_records() {
        assert_eq!(tls_record(&[]), NEED_MORE);
        assert_eq!(tls_record(&[0x16]), NEED_MORE);
        assert_eq!(tls_record(&[0x16, 0x03, 0x03, 0x00]), NEED_MORE);
        assert_eq!(
            tls_record(&[0x16, 0x03, 0x03, 0x00, 0x01]),
            Framed::NeedMore { total: Some(6) }
        );
        assert_eq!(
            tls_record(&[0x16, 0x03, 0x03, 0x00, 0x01, 0xff, 0x17]),
            Framed::Complete(6)
        );
        assert_eq!(
            kind(tls_record(&[0x03, 0x00])),
            FrameErrorKind::NotTlsRecord {
                content_type: 3,
                major: 0
            }
        );
        assert_eq!(
            tls_record(&[0x16, 0x02]),
            Framed::Not(FrameError {
                offset: 1,
                kind: FrameErrorKind::NotTlsRecord {
                    content_type: 0x16,
                    major: 2
                }
            })
        );
        assert_eq!(
            kind(tls_record(&[0x17, 0x03, 0x03, 0xff, 0xff])),
            FrameErrorKind::TlsRecordTooLong { length: 0xffff }
        );
        assert_eq!(tls_handshake_message(&[0x01, 0x00, 0x00]), NEED_MORE);
        assert_eq!(
            tls_handshake_message(&[0x01, 0x00, 0x00, 0x02, 0xaa]),
            Framed::NeedMore { total: Some(6) }
        );
        assert_eq!(
            tls_handshake_message(&[0x14, 0x00, 0x00, 0x01, 0xaa, 0x02]),
            Framed::Complete(5)
        );
        assert!(looks_like_tls_record(&[0x16, 0x03, 0x01, 0x00, 0x10]));
        assert!(!looks_like_tls_record(&[0x18, 0x03, 0x01]));
        assert!(!looks_like_tls_record(&[0x16, 0x03]));
        assert_eq!(
            TlsRecord::parse(&[0x15, 0x03, 0x03, 0x00, 0x02, 2, 40]),
            Some(TlsRecord {
                content_type: 0x15,
                version: 0x0303,
                fragment: &[2, 40]
            })
        );
    }

    #[test]
    fn ts_requests() {
        assert_eq!(ts_request(&[], 100), NEED_MORE);
        assert_eq!(ts_request(&[0x30, 0x03, 1, 2, 3], 100), Framed::Complete(5));
        assert_eq!(
            ts_request(&[0x30, 0x82, 0x01], 1000),
            NEED_MORE,
            "a long length still arriving"
        );
        assert_eq!(
            ts_request(&[0x30, 0x82, 0x01, 0x00], 1000),
            Framed::NeedMore { total: Some(0x104) }
        );
        // A TSRequest claiming 2 GiB is refused at once, not waited for.
        assert_eq!(
            kind(ts_request(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff], 1 << 17)),
            FrameErrorKind::TsRequestTooLong {
                total: 0x7fff_ffff + 6
            }
        );
        assert_eq!(
            kind(ts_request(&[0x30, 0x85, 1, 1, 1, 1, 1], 1 << 17)),
            FrameErrorKind::DerLength
        );
        assert_eq!(
            kind(ts_request(&[0x03, 0x00], 100)),
            FrameErrorKind::NotTsRequest { tag: 3 }
        );
        assert_eq!(fixed(&[1, 2, 3], 4), Framed::NeedMore { total: Some(4) });
        assert_eq!(fixed(&[1, 2, 3, 4, 5], 4), Framed::Complete(4));
    }

    #[test]
    fn bounded() {
        assert_eq!(NEED_MORE.bounded(10, 10), NEED_MORE);
        assert_eq!(kind(NEED_MORE.bounded(11, 10)), FrameErrorKind::TooLong);
        assert_eq!(Framed::Complete(11).bounded(11, 10), Framed::Complete(11));
    }

    #[test]
    fn splitting() {
        let bytes = [
            0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80, 0x00, 0x03, 0xaa, 0x03, 0x00,
        ];
        let mut frames = split(&bytes, rdp);
        assert_eq!(frames.next(), Some((0, &bytes[..7])));
        assert_eq!(frames.next(), Some((7, &bytes[7..10])));
        assert_eq!(frames.next(), None);
        assert_eq!(frames.rest(), [0x03, 0x00]);
    }

    #[test]
    fn peeks() {
        assert_eq!(
            tpdu_code(&[0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0]),
            Peek::Found(TpduCode::CONNECTION_REQUEST)
        );
        assert_eq!(
            tpdu_code(&[0x03, 0x00, 0x00, 0x13, 0x0e, 0xd4]),
            Peek::Found(TpduCode::CONNECTION_CONFIRM)
        );
        assert_eq!(tpdu_code(&[0x03, 0x00]), Peek::NeedMore);
        assert_eq!(tpdu_code(&[0x03, 0x01]), Peek::Not);
        assert_eq!(tpdu_code(b"GET / HTTP/1.1"), Peek::Not);
        assert_eq!(
            tls_handshake_type(&[0x16, 0x03, 0x01, 0x00, 0x10, 0x01]),
            Peek::Found(1)
        );
        assert_eq!(tls_handshake_type(&[0x16, 0x03, 0x01]), Peek::NeedMore);
        assert_eq!(tls_handshake_type(&[0x17, 0x03, 0x01]), Peek::Not);
    }
}
