//! The plaintext length of an encrypted TLS record, from its length and the negotiated version and cipher
//! suite: exact for AEAD suites, a range of one block for CBC suites.

use tls_parser::{TlsCipherEncMode, TlsCipherMac, TlsCipherSuite};

/// An inclusive range of plaintext lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub const fn exact(n: u32) -> Span {
        Span { lo: n, hi: n }
    }

    pub const fn new(lo: u32, hi: u32) -> Span {
        Span { lo, hi }
    }

    pub fn plus(self, other: Span) -> Span {
        Span {
            lo: self.lo.saturating_add(other.lo),
            hi: self.hi.saturating_add(other.hi),
        }
    }

    pub fn overlaps(self, other: Span) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    pub fn is_exact(self) -> bool {
        self.lo == self.hi
    }
}

impl core::fmt::Display for Span {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_exact() {
            write!(f, "{} B", self.lo)
        } else {
            write!(f, "{} to {} B", self.lo, self.hi)
        }
    }
}

/// What a record adds to its plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overhead {
    /// [RFC 5246] 6.2.3.3 AEAD (GCM, CCM, ChaCha20-Poly1305) in TLS 1.2: an explicit nonce and a tag.
    Aead { nonce: u32, tag: u32 },
    /// [RFC 8446] 5.2 TLSInnerPlaintext: the content type and the tag (padding aside).
    Tls13 { tag: u32 },
    /// [RFC 5246] 6.2.3.2 CBC: an explicit IV (TLS 1.1 and later), the MAC and 1 to `block` bytes of padding
    /// (implementations pad to the next block; longer padding is allowed and then the range is wrong).
    Cbc { iv: u32, mac: u32, block: u32 },
    /// [RFC 5246] 6.2.3.1 a stream cipher (RC4): the MAC only.
    Stream { mac: u32 },
}

/// TLS protocol versions as they appear on the wire.
pub const TLS10: u16 = 0x0301;
pub const TLS13: u16 = 0x0304;

impl Overhead {
    /// The overhead of `suite` under `version`, or `None` for a suite rdptrace cannot size.
    pub fn of(version: u16, suite: u16) -> Option<Overhead> {
        if version == TLS13 {
            // [RFC 8446] B.4: every TLS 1.3 suite is AEAD with a 16-byte tag but TLS_AES_128_CCM_8_SHA256.
            let tag = if suite == 0x1305 { 8 } else { 16 };
            return Some(Overhead::Tls13 { tag });
        }
        let cs = TlsCipherSuite::from_id(suite)?;
        let mac = u32::from(cs.mac_size) / 8;
        match cs.enc_mode {
            TlsCipherEncMode::Gcm | TlsCipherEncMode::Ccm => Some(Overhead::Aead {
                nonce: 8,
                tag: if cs.name.ends_with("_8") { 8 } else { 16 },
            }),
            TlsCipherEncMode::Cbc => {
                let block = match cs.enc {
                    tls_parser::TlsCipherEnc::TripleDes | tls_parser::TlsCipherEnc::Des => 8,
                    _ => 16,
                };
                let iv = if version > TLS10 { block } else { 0 };
                Some(Overhead::Cbc { iv, mac, block })
            }
            TlsCipherEncMode::Null => match (cs.enc, cs.mac) {
                (tls_parser::TlsCipherEnc::Chacha20_Poly1305, _) => {
                    Some(Overhead::Aead { nonce: 0, tag: 16 })
                }
                (tls_parser::TlsCipherEnc::Rc4, m) if m != TlsCipherMac::Aead => {
                    Some(Overhead::Stream { mac })
                }
                (tls_parser::TlsCipherEnc::Null, _) => Some(Overhead::Stream { mac }),
                _ => None,
            },
        }
    }

    /// The plaintext lengths a record fragment of `fragment` bytes (the record without its 5-byte header)
    /// can hold, or `None` when no plaintext fits (a record of another protocol, or padding rdptrace does not
    /// expect).
    pub fn plaintext(self, fragment: u32) -> Option<Span> {
        match self {
            Overhead::Aead { nonce, tag } => fragment.checked_sub(nonce + tag).map(Span::exact),
            // The inner content type takes one byte.
            Overhead::Tls13 { tag } => fragment.checked_sub(tag + 1).map(Span::exact),
            Overhead::Stream { mac } => fragment.checked_sub(mac).map(Span::exact),
            Overhead::Cbc { iv, mac, block } => {
                if block == 0 || !fragment.is_multiple_of(block) {
                    return None;
                }
                let body = fragment.checked_sub(iv + mac)?;
                // Padding of 1 to `block` bytes, the length byte included.
                let hi = body.checked_sub(1)?;
                let lo = body.saturating_sub(block);
                Some(Span::new(lo, hi))
            }
        }
    }

    /// Whether the plaintext length is exact.
    pub fn exact(self) -> bool {
        !matches!(self, Overhead::Cbc { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aead_is_exact() {
        // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 and TLS_RSA_WITH_AES_256_GCM_SHA384.
        for suite in [0xc030, 0x009d] {
            let o = Overhead::of(0x0303, suite).expect("known suite");
            assert_eq!(o, Overhead::Aead { nonce: 8, tag: 16 });
            assert_eq!(o.plaintext(36 + 24), Some(Span::exact(36)));
        }
        // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: no explicit nonce.
        let o = Overhead::of(0x0303, 0xcca8).expect("known suite");
        assert_eq!(o.plaintext(9 + 16), Some(Span::exact(9)));
        // TLS 1.3: the inner content type and the tag.
        let o = Overhead::of(TLS13, 0x1302).expect("any suite");
        assert_eq!(o.plaintext(36 + 17), Some(Span::exact(36)));
        assert_eq!(o.plaintext(3), None);
    }

    #[test]
    fn cbc_is_a_block() {
        // TLS_RSA_WITH_AES_128_CBC_SHA in TLS 1.0: the MAC (20) and 1 to 16 bytes of padding, no explicit IV.
        let o = Overhead::of(TLS10, 0x002f).expect("known suite");
        assert_eq!(
            o,
            Overhead::Cbc {
                iv: 0,
                mac: 20,
                block: 16
            }
        );
        // 36 + 20 = 56, padded to 64.
        let s = o.plaintext(64).expect("fits");
        assert!(s.lo <= 36 && 36 <= s.hi, "{s:?}");
        assert_eq!(s, Span::new(28, 43));
        assert_eq!(o.plaintext(65), None, "not a whole number of blocks");
        // TLS 1.2 adds an explicit IV of one block.
        let o = Overhead::of(0x0303, 0x0035).expect("known suite");
        assert_eq!(
            o,
            Overhead::Cbc {
                iv: 16,
                mac: 20,
                block: 16
            }
        );
        // RC4 with SHA-1: the MAC only.
        let o = Overhead::of(TLS10, 0x0005).expect("known suite");
        assert_eq!(o.plaintext(9 + 20), Some(Span::exact(9)));
    }
}
