//! The TLS record layer, receive side: one direction's keys and sequence number, records in, plaintext out.
//!
//! TLS 1.0-1.2 CBC with HMAC ([RFC 5246] 6.2.3.2, [RFC 2246] 6.2.3.2 for the chained IV of TLS 1.0,
//! [RFC 7366] encrypt-then-MAC), TLS 1.2 AEAD ([RFC 5246] 6.2.3.3, [RFC 5288] 3 for GCM's nonce, [RFC 7905]
//! 2 for ChaCha20-Poly1305's), and TLS 1.3 ([RFC 8446] 5.2, 5.3).

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use cbc::cipher::{BlockModeDecrypt as _, KeyIvInit as _, block_padding::NoPadding};

use super::prf::hmac_with;
use super::suites::{Bulk, Hash};

/// An AEAD with its key.
enum AeadKey {
    Aes128Gcm(Box<aes_gcm::Aes128Gcm>),
    Aes256Gcm(Box<aes_gcm::Aes256Gcm>),
    ChaCha(Box<chacha20poly1305::ChaCha20Poly1305>),
    Aes128Ccm(Box<ccm::Ccm<aes::Aes128, ccm::consts::U16, ccm::consts::U12>>),
    Aes128Ccm8(Box<ccm::Ccm<aes::Aes128, ccm::consts::U8, ccm::consts::U12>>),
}

impl AeadKey {
    fn new(bulk: Bulk, key: &[u8]) -> Option<AeadKey> {
        Some(match bulk {
            Bulk::Aes128Gcm => {
                AeadKey::Aes128Gcm(Box::new(aes_gcm::Aes128Gcm::new_from_slice(key).ok()?))
            }
            Bulk::Aes256Gcm => {
                AeadKey::Aes256Gcm(Box::new(aes_gcm::Aes256Gcm::new_from_slice(key).ok()?))
            }
            Bulk::ChaCha20Poly1305 => AeadKey::ChaCha(Box::new(
                chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).ok()?,
            )),
            Bulk::Aes128Ccm => AeadKey::Aes128Ccm(Box::new(ccm::Ccm::new_from_slice(key).ok()?)),
            Bulk::Aes128Ccm8 => AeadKey::Aes128Ccm8(Box::new(ccm::Ccm::new_from_slice(key).ok()?)),
            Bulk::Aes128Cbc | Bulk::Aes256Cbc => return None,
        })
    }

    fn tag_len(&self) -> usize {
        match self {
            AeadKey::Aes128Ccm8(_) => 8,
            _ => 16,
        }
    }

    /// Seals `plain` (tag appended) with a 12-byte nonce.
    #[cfg(feature = "synth")]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload { msg: plain, aad };
        match self {
            AeadKey::Aes128Gcm(k) => k.encrypt(&(*nonce).into(), payload).ok(),
            AeadKey::Aes256Gcm(k) => k.encrypt(&(*nonce).into(), payload).ok(),
            AeadKey::ChaCha(k) => k.encrypt(&(*nonce).into(), payload).ok(),
            AeadKey::Aes128Ccm(k) => k.encrypt(&(*nonce).into(), payload).ok(),
            AeadKey::Aes128Ccm8(k) => k.encrypt(&(*nonce).into(), payload).ok(),
        }
    }

    /// Opens `ciphertext` (tag at the end) with a 12-byte nonce.
    fn open(&self, nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        match self {
            AeadKey::Aes128Gcm(k) => k.decrypt(&(*nonce).into(), payload).ok(),
            AeadKey::Aes256Gcm(k) => k.decrypt(&(*nonce).into(), payload).ok(),
            AeadKey::ChaCha(k) => k.decrypt(&(*nonce).into(), payload).ok(),
            AeadKey::Aes128Ccm(k) => k.decrypt(&(*nonce).into(), payload).ok(),
            AeadKey::Aes128Ccm8(k) => k.decrypt(&(*nonce).into(), payload).ok(),
        }
    }
}

enum Protection {
    Cbc {
        bulk: Bulk,
        key: Vec<u8>,
        mac: Hash,
        mac_key: Vec<u8>,
        /// TLS 1.0: the IV of the next record (the last ciphertext block of the previous one).
        chained_iv: Option<Vec<u8>>,
        encrypt_then_mac: bool,
    },
    /// TLS 1.2 AEAD: a 4-byte salt and an explicit 8-byte nonce per record (GCM, CCM), or a 12-byte IV
    /// XORed with the sequence number (ChaCha20-Poly1305).
    Aead12 {
        key: AeadKey,
        iv: Vec<u8>,
        explicit_nonce: bool,
    },
    /// TLS 1.3: the 12-byte IV XORed with the sequence number; the real content type inside.
    Aead13 { key: AeadKey, iv: [u8; 12] },
}

/// One direction's record protection.
pub struct RecordCipher {
    protection: Protection,
    seq: u64,
}

/// A record opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub content_type: u8,
    pub data: Vec<u8>,
}

/// Why a record did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The record is too short for its protection.
    Short,
    /// The MAC or tag does not match: the wrong secret, or a record that is not this session's.
    Authentication,
}

/// The 12-byte nonce of TLS 1.3 and of ChaCha20-Poly1305 in TLS 1.2: the IV XOR the sequence number.
fn xor_nonce(iv: &[u8], seq: u64) -> Option<[u8; 12]> {
    let mut n: [u8; 12] = iv.try_into().ok()?;
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    Some(n)
}

impl RecordCipher {
    /// TLS 1.2 and older, from the key block's parts for this direction.
    pub fn tls12(
        version: u16,
        bulk: Bulk,
        mac: Option<Hash>,
        mac_key: &[u8],
        key: &[u8],
        iv: &[u8],
        encrypt_then_mac: bool,
    ) -> Option<RecordCipher> {
        let protection = match mac {
            Some(mac) if bulk.is_cbc() => Protection::Cbc {
                bulk,
                key: key.to_vec(),
                mac,
                mac_key: mac_key.to_vec(),
                // [RFC 2246] 6.2.3.2 TLS 1.0 chains each IV from the record before; 1.1 and later carry it.
                chained_iv: (version < 0x0302).then(|| iv.to_vec()),
                encrypt_then_mac,
            },
            None if !bulk.is_cbc() => Protection::Aead12 {
                key: AeadKey::new(bulk, key)?,
                iv: iv.to_vec(),
                explicit_nonce: bulk != Bulk::ChaCha20Poly1305,
            },
            _ => return None,
        };
        Some(RecordCipher { protection, seq: 0 })
    }

    /// TLS 1.3, from a traffic secret.
    pub fn tls13(bulk: Bulk, hash: Hash, secret: &[u8]) -> Option<RecordCipher> {
        let key = super::prf::expand_label(hash, secret, "key", &[], bulk.key_len())?;
        let iv = super::prf::expand_label(hash, secret, "iv", &[], 12)?;
        Some(RecordCipher {
            protection: Protection::Aead13 {
                key: AeadKey::new(bulk, &key)?,
                iv: iv.try_into().ok()?,
            },
            seq: 0,
        })
    }

    /// Opens one record (`header` is its 5-byte header, `fragment` what follows).
    pub fn open(&mut self, header: [u8; 5], fragment: &[u8]) -> Result<Opened, OpenError> {
        let outer_type = header[0];
        let seq = self.seq;
        let opened = match &mut self.protection {
            Protection::Cbc {
                bulk,
                key,
                mac,
                mac_key,
                chained_iv,
                encrypt_then_mac,
            } => open_cbc(
                seq,
                header,
                fragment,
                *bulk,
                key,
                *mac,
                mac_key,
                chained_iv,
                *encrypt_then_mac,
            )?,
            Protection::Aead12 {
                key,
                iv,
                explicit_nonce,
            } => {
                let (nonce, ciphertext) = if *explicit_nonce {
                    let explicit = fragment.get(..8).ok_or(OpenError::Short)?;
                    let mut n = [0u8; 12];
                    n[..4].copy_from_slice(iv.get(..4).ok_or(OpenError::Short)?);
                    n[4..].copy_from_slice(explicit);
                    (n, fragment.get(8..).ok_or(OpenError::Short)?)
                } else {
                    (xor_nonce(iv, seq).ok_or(OpenError::Short)?, fragment)
                };
                let plain_len = ciphertext
                    .len()
                    .checked_sub(key.tag_len())
                    .ok_or(OpenError::Short)?;
                let aad = aad12(seq, outer_type, [header[1], header[2]], plain_len);
                let data = key
                    .open(&nonce, &aad, ciphertext)
                    .ok_or(OpenError::Authentication)?;
                Opened {
                    content_type: outer_type,
                    data,
                }
            }
            Protection::Aead13 { key, iv } => {
                let nonce = xor_nonce(iv, seq).ok_or(OpenError::Short)?;
                let mut plain = key
                    .open(&nonce, &header, fragment)
                    .ok_or(OpenError::Authentication)?;
                // [RFC 8446] 5.2 TLSInnerPlaintext: content, the real type, zero padding.
                let end = plain
                    .iter()
                    .rposition(|b| *b != 0)
                    .ok_or(OpenError::Authentication)?;
                let content_type = plain.get(end).copied().ok_or(OpenError::Authentication)?;
                plain.truncate(end);
                Opened {
                    content_type,
                    data: plain,
                }
            }
        };
        self.seq += 1;
        Ok(opened)
    }
}

impl RecordCipher {
    /// The sequence number of the next record.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves to another sequence number (a record inserted or removed before the next one).
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// TLS 1.3 only ([RFC 8446] 5.2): seals `content` of `content_type` as the next record, header included.
    /// The send side of [`RecordCipher::open`], for the synthetic captures of the benchmarks (the `synth`
    /// feature only); `None` for older versions or a record over 2^14 bytes.
    #[cfg(feature = "synth")]
    pub fn seal13(&mut self, content_type: u8, content: &[u8]) -> Option<Vec<u8>> {
        let Protection::Aead13 { key, iv } = &self.protection else {
            return None;
        };
        if content.len() > 1 << 14 {
            return None;
        }
        let len = u16::try_from(content.len() + 1 + key.tag_len()).ok()?;
        let [hi, lo] = len.to_be_bytes();
        let header = [23, 3, 3, hi, lo];
        let mut inner = Vec::with_capacity(content.len() + 1);
        inner.extend_from_slice(content);
        inner.push(content_type);
        let nonce = xor_nonce(iv, self.seq)?;
        let sealed = key.seal(&nonce, &header, &inner)?;
        self.seq += 1;
        let mut record = Vec::with_capacity(5 + sealed.len());
        record.extend_from_slice(&header);
        record.extend_from_slice(&sealed);
        Some(record)
    }
}

/// [RFC 5246] 6.2.3.3 additional data: seq_num, type, version, length of the plaintext.
fn aad12(seq: u64, content_type: u8, version: [u8; 2], len: usize) -> Vec<u8> {
    let mut aad = Vec::with_capacity(13);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.push(content_type);
    aad.extend_from_slice(&version);
    aad.extend_from_slice(&(len as u16).to_be_bytes());
    aad
}

#[allow(clippy::too_many_arguments)]
fn open_cbc(
    seq: u64,
    header: [u8; 5],
    fragment: &[u8],
    bulk: Bulk,
    key: &[u8],
    mac: Hash,
    mac_key: &[u8],
    chained_iv: &mut Option<Vec<u8>>,
    encrypt_then_mac: bool,
) -> Result<Opened, OpenError> {
    let mac_len = mac.output_len();
    // [RFC 5246] 6.2.3.1 the MAC covers the record's type and version.
    let [content_type, major, minor, _, _] = header;
    let type_and_version = [content_type, major, minor];
    let (body, etm_tag) = if encrypt_then_mac {
        let split = fragment
            .len()
            .checked_sub(mac_len)
            .ok_or(OpenError::Short)?;
        let (body, tag) = fragment.split_at_checked(split).ok_or(OpenError::Short)?;
        (body, Some(tag))
    } else {
        (fragment, None)
    };
    if let Some(tag) = etm_tag {
        // [RFC 7366] 3: the MAC covers the IV and ciphertext.
        let want = hmac_with(
            mac,
            mac_key,
            &[
                &seq.to_be_bytes(),
                &type_and_version,
                &(body.len() as u16).to_be_bytes(),
                body,
            ],
        );
        if want != tag {
            return Err(OpenError::Authentication);
        }
    }
    let (iv, ciphertext) = match chained_iv {
        Some(iv) => (iv.clone(), body),
        None => (
            body.get(..16).ok_or(OpenError::Short)?.to_vec(),
            body.get(16..).ok_or(OpenError::Short)?,
        ),
    };
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(OpenError::Short);
    }
    let mut buf = ciphertext.to_vec();
    let plain = match bulk {
        Bulk::Aes128Cbc => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .map_err(|_| OpenError::Short)?
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| OpenError::Short)?
            .to_vec(),
        Bulk::Aes256Cbc => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .map_err(|_| OpenError::Short)?
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| OpenError::Short)?
            .to_vec(),
        _ => return Err(OpenError::Short),
    };
    if let Some(next) = chained_iv.as_mut() {
        let last = ciphertext.len().saturating_sub(16);
        *next = ciphertext.get(last..).unwrap_or_default().to_vec();
    }
    // [RFC 5246] 6.2.3.2 padding: padding_length + 1 bytes, each equal to padding_length.
    let pad = usize::from(*plain.last().ok_or(OpenError::Short)?);
    let unpadded = plain
        .len()
        .checked_sub(pad + 1)
        .ok_or(OpenError::Authentication)?;
    let (content, padding) = plain
        .split_at_checked(unpadded)
        .ok_or(OpenError::Authentication)?;
    if padding.iter().any(|b| usize::from(*b) != pad) {
        return Err(OpenError::Authentication);
    }
    let data = if encrypt_then_mac {
        content.to_vec()
    } else {
        let len = unpadded
            .checked_sub(mac_len)
            .ok_or(OpenError::Authentication)?;
        let (data, tag) = content
            .split_at_checked(len)
            .ok_or(OpenError::Authentication)?;
        let want = hmac_with(
            mac,
            mac_key,
            &[
                &seq.to_be_bytes(),
                &type_and_version,
                &(len as u16).to_be_bytes(),
                data,
            ],
        );
        if want != tag {
            return Err(OpenError::Authentication);
        }
        data.to_vec()
    };
    Ok(Opened {
        content_type: header[0],
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::{BlockModeEncrypt as _, block_padding::NoPadding as NoPad};

    fn seal_cbc(
        key: &[u8],
        iv: &[u8],
        mac_key: &[u8],
        seq: u64,
        content_type: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let mut plain = data.to_vec();
        let tag = hmac_with(
            Hash::Sha1,
            mac_key,
            &[
                &seq.to_be_bytes(),
                &[content_type, 3, 3],
                &(data.len() as u16).to_be_bytes(),
                data,
            ],
        );
        plain.extend_from_slice(&tag);
        let pad = 15 - plain.len() % 16;
        plain.extend(std::iter::repeat_n(pad as u8, pad + 1));
        let len = plain.len();
        let mut buf = plain;
        cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .unwrap()
            .encrypt_padded::<NoPad>(&mut buf, len)
            .unwrap();
        let mut out = iv.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    #[test]
    fn cbc_records_with_mac_check() {
        let (key, mac_key) = ([7u8; 16], [9u8; 20]);
        let mut rc = RecordCipher::tls12(
            0x0303,
            Bulk::Aes128Cbc,
            Some(Hash::Sha1),
            &mac_key,
            &key,
            &[],
            false,
        )
        .unwrap();
        for seq in 0..3u64 {
            let frag = seal_cbc(&key, &[seq as u8; 16], &mac_key, seq, 23, b"hello");
            let header = [23, 3, 3, 0, frag.len() as u8];
            assert_eq!(
                rc.open(header, &frag),
                Ok(Opened {
                    content_type: 23,
                    data: b"hello".to_vec()
                })
            );
        }
        // A record sealed for another sequence number does not authenticate.
        let frag = seal_cbc(&key, &[1; 16], &mac_key, 0, 23, b"hello");
        assert_eq!(
            rc.open([23, 3, 3, 0, frag.len() as u8], &frag),
            Err(OpenError::Authentication)
        );
    }

    #[test]
    fn tls13_ccm_round_trip() {
        let secret = [6u8; 32];
        let mut rc = RecordCipher::tls13(Bulk::Aes128Ccm, Hash::Sha256, &secret).unwrap();
        let key = super::super::prf::expand_label(Hash::Sha256, &secret, "key", &[], 16).unwrap();
        let iv = super::super::prf::expand_label(Hash::Sha256, &secret, "iv", &[], 12).unwrap();
        let sealer =
            ccm::Ccm::<aes::Aes128, ccm::consts::U16, ccm::consts::U12>::new_from_slice(&key)
                .unwrap();
        let inner = [b'x', b'y', 23];
        let header = [23, 3, 3, 0, (inner.len() + 16) as u8];
        let nonce: [u8; 12] = iv.try_into().unwrap();
        let sealed = sealer
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &inner,
                    aad: &header,
                },
            )
            .unwrap();
        assert_eq!(
            rc.open(header, &sealed),
            Ok(Opened {
                content_type: 23,
                data: b"xy".to_vec()
            })
        );
        // The next record uses the next sequence number: the same bytes no longer authenticate.
        assert_eq!(rc.open(header, &sealed), Err(OpenError::Authentication));
    }

    #[test]
    fn tls13_ccm8_round_trip() {
        let secret = [5u8; 32];
        let mut rc = RecordCipher::tls13(Bulk::Aes128Ccm8, Hash::Sha256, &secret).unwrap();
        let key = super::super::prf::expand_label(Hash::Sha256, &secret, "key", &[], 16).unwrap();
        let iv = super::super::prf::expand_label(Hash::Sha256, &secret, "iv", &[], 12).unwrap();
        let sealer =
            ccm::Ccm::<aes::Aes128, ccm::consts::U8, ccm::consts::U12>::new_from_slice(&key)
                .unwrap();
        let mut inner = b"abc".to_vec();
        inner.push(22);
        inner.extend_from_slice(&[0, 0]);
        let len = inner.len() + 8;
        let header = [23, 3, 3, 0, len as u8];
        let nonce: [u8; 12] = iv.try_into().unwrap();
        let sealed = sealer
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &inner,
                    aad: &header,
                },
            )
            .unwrap();
        assert_eq!(
            rc.open(header, &sealed),
            Ok(Opened {
                content_type: 22,
                data: b"abc".to_vec()
            })
        );
    }
}
