//! [5.3.3] Server certificates and [5.3.4] the client random.
//!
//! A server sends either a proprietary certificate ([2.2.1.4.3.1.1], signed with the Terminal Services signing
//! key of [5.3.3.1.1]) or an X.509 certificate chain ([MS-RDPELE] 2.2.1.4.2) whose last certificate holds the
//! server's key. Either way the client encrypts its random with that RSA key, little-endian ([5.3.4.1]).

use md5::{Digest as _, Md5};
use rsa::hazmat::{rsa_decrypt, rsa_encrypt};
use rsa::traits::PublicKeyParts as _;
use rsa::{BoxedUint, RsaPrivateKey, RsaPublicKey};

use super::keys::RANDOM_LEN;
use super::{Result, SecurityError};
use crate::wire::Reader;

/// [2.2.1.4.3.1] dwVersion CERT_CHAIN_VERSION_1: a proprietary certificate.
pub const CERT_CHAIN_VERSION_1: u32 = 0x0000_0001;
/// [2.2.1.4.3.1] dwVersion CERT_CHAIN_VERSION_2: an X.509 certificate chain.
pub const CERT_CHAIN_VERSION_2: u32 = 0x0000_0002;
/// [2.2.1.4.3.1] The high bit of dwVersion: the certificate is temporary.
pub const CERT_TEMPORARY: u32 = 0x8000_0000;
/// [2.2.1.4.3.1.1] SIGNATURE_ALG_RSA and KEY_EXCHANGE_ALG_RSA.
const ALG_RSA: u32 = 0x0000_0001;
/// [2.2.1.4.3.1.1] BB_RSA_KEY_BLOB.
const BB_RSA_KEY_BLOB: u16 = 0x0006;
/// [2.2.1.4.3.1.1] BB_RSA_SIGNATURE_BLOB.
const BB_RSA_SIGNATURE_BLOB: u16 = 0x0008;
/// [2.2.1.4.3.1.1.1] RSA_PUBLIC_KEY magic "RSA1".
const RSA1: u32 = 0x3141_5352;
/// A chain longer than this is refused (a license server chain has two or three certificates).
const MAX_CHAIN: u32 = 16;

/// [5.3.3.1.1] The Terminal Services signing key: modulus (little-endian).
const TS_MODULUS: [u8; 64] = [
    0x3d, 0x3a, 0x5e, 0xbd, 0x72, 0x43, 0x3e, 0xc9, 0x4d, 0xbb, 0xc1, 0x1e, 0x4a, 0xba, 0x5f, 0xcb,
    0x3e, 0x88, 0x20, 0x87, 0xef, 0xf5, 0xc1, 0xe2, 0xd7, 0xb7, 0x6b, 0x9a, 0xf2, 0x52, 0x45, 0x95,
    0xce, 0x63, 0x65, 0x6b, 0x58, 0x3a, 0xfe, 0xef, 0x7c, 0xe7, 0xbf, 0xfe, 0x3d, 0xf6, 0x5c, 0x7d,
    0x6c, 0x5e, 0x06, 0x09, 0x1a, 0xf5, 0x61, 0xbb, 0x20, 0x93, 0x09, 0x5f, 0x05, 0x6d, 0xea, 0x87,
];
/// [5.3.3.1.1] The Terminal Services signing key: private exponent (little-endian), published with the key.
const TS_PRIVATE_EXPONENT: [u8; 64] = [
    0x87, 0xa7, 0x19, 0x32, 0xda, 0x11, 0x87, 0x55, 0x58, 0x00, 0x16, 0x16, 0x25, 0x65, 0x68, 0xf8,
    0x24, 0x3e, 0xe6, 0xfa, 0xe9, 0x67, 0x49, 0x94, 0xcf, 0x92, 0xcc, 0x33, 0x99, 0xe8, 0x08, 0x60,
    0x17, 0x9a, 0x12, 0x9f, 0x24, 0xdd, 0xb1, 0x24, 0x99, 0xc7, 0x3a, 0xb8, 0x0a, 0x7b, 0x0d, 0xdd,
    0x35, 0x07, 0x79, 0x17, 0x0b, 0x51, 0x9b, 0xb3, 0xc7, 0x10, 0x01, 0x13, 0xe7, 0x3f, 0xf3, 0x5f,
];
/// [5.3.3.1.1] The Terminal Services signing key: public exponent (little-endian).
const TS_PUBLIC_EXPONENT: [u8; 4] = [0x5b, 0x7b, 0x88, 0xc0];

/// An RSA public key as Standard RDP Security carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The modulus, little-endian, without trailing zero bytes.
    pub modulus: Vec<u8>,
    pub exponent: u32,
}

impl PublicKey {
    /// The modulus length in bits.
    pub fn bits(&self) -> usize {
        let Some((last, rest)) = self.modulus.split_last() else {
            return 0;
        };
        rest.len() * 8 + (8 - last.leading_zeros() as usize)
    }

    /// The modulus length in bytes.
    pub fn len(&self) -> usize {
        self.bits().div_ceil(8)
    }

    pub fn is_empty(&self) -> bool {
        self.modulus.is_empty()
    }

    fn rsa(&self) -> Result<RsaPublicKey> {
        let bits = u32::try_from(self.len() * 8).unwrap_or(u32::MAX);
        let n = BoxedUint::from_le_slice(&self.modulus, bits).map_err(|e| {
            SecurityError::Malformed(format!("the server's rsa modulus does not decode: {e:?}"))
        })?;
        let e = BoxedUint::from(u64::from(self.exponent));
        RsaPublicKey::new(n, e).map_err(|e| {
            SecurityError::Unsupported(format!("the server's rsa key is not usable: {e}"))
        })
    }

    /// The key of an `rsa` crate public key.
    pub fn from_rsa(key: &RsaPublicKey) -> Result<PublicKey> {
        let exponent = key.e().to_le_bytes();
        let (low, high) = exponent.split_at(4.min(exponent.len()));
        let exponent = match <[u8; 4]>::try_from(low) {
            Ok(low) if high.iter().all(|&b| b == 0) => u32::from_le_bytes(low),
            _ => {
                return Err(SecurityError::Unsupported(
                    "an rsa public exponent wider than 32 bits".to_owned(),
                ));
            }
        };
        Ok(PublicKey {
            modulus: trim_le(&key.n().to_le_bytes()),
            exponent,
        })
    }
}

/// Little-endian bytes without their trailing (most significant) zeros.
fn trim_le(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.get(..end).unwrap_or_default().to_vec()
}

/// [2.2.1.4.3.1] The serverCertificate of the Server Security Data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCertificate {
    /// [2.2.1.4.3.1.1] PROPRIETARYSERVERCERTIFICATE.
    Proprietary {
        temporary: bool,
        key: PublicKey,
        /// The bytes the signature covers: dwVersion through PublicKeyBlob ([5.3.3.1.2]).
        signed: Vec<u8>,
        /// SignatureBlob.
        signature: Vec<u8>,
    },
    /// [MS-RDPELE] 2.2.1.4.2 X.509 certificate chain, root first; the last certificate is the server's.
    X509 {
        temporary: bool,
        chain: Vec<Vec<u8>>,
    },
}

impl ServerCertificate {
    pub fn parse(bytes: &[u8]) -> Result<ServerCertificate> {
        let mut r = Reader::new(bytes);
        let version = r.u32_le("dwVersion")?;
        let temporary = version & CERT_TEMPORARY != 0;
        match version & !CERT_TEMPORARY {
            CERT_CHAIN_VERSION_1 => {
                let sig_alg = r.u32_le("dwSigAlgId")?;
                let key_alg = r.u32_le("dwKeyAlgId")?;
                if sig_alg != ALG_RSA || key_alg != ALG_RSA {
                    return Err(SecurityError::Unsupported(format!(
                        "a proprietary certificate with signature algorithm {sig_alg} and key algorithm {key_alg} (only rsa, 1, is defined)"
                    )));
                }
                if r.u16_le("wPublicKeyBlobType")? != BB_RSA_KEY_BLOB {
                    return Err(SecurityError::Malformed(
                        "the proprietary certificate's public key blob is not BB_RSA_KEY_BLOB"
                            .to_owned(),
                    ));
                }
                let blob_len = usize::from(r.u16_le("wPublicKeyBlobLen")?);
                let key = rsa_public_key(r.bytes(blob_len, "PublicKeyBlob")?)?;
                let signed = bytes.get(..r.offset()).unwrap_or_default().to_vec();
                if r.u16_le("wSignatureBlobType")? != BB_RSA_SIGNATURE_BLOB {
                    return Err(SecurityError::Malformed(
                        "the proprietary certificate's signature blob is not BB_RSA_SIGNATURE_BLOB"
                            .to_owned(),
                    ));
                }
                let sig_len = usize::from(r.u16_le("wSignatureBlobLen")?);
                let signature = r.bytes(sig_len, "SignatureBlob")?.to_vec();
                Ok(ServerCertificate::Proprietary {
                    temporary,
                    key,
                    signed,
                    signature,
                })
            }
            CERT_CHAIN_VERSION_2 => {
                let count = r.u32_le("NumCertBlobs")?;
                if count == 0 || count > MAX_CHAIN {
                    return Err(SecurityError::Malformed(format!(
                        "an x.509 chain of {count} certificates"
                    )));
                }
                let mut chain = Vec::new();
                for _ in 0..count {
                    let len = r.u32_le("cbCert")? as usize;
                    chain.push(r.bytes(len, "abCert")?.to_vec());
                }
                Ok(ServerCertificate::X509 { temporary, chain })
            }
            other => Err(SecurityError::Malformed(format!(
                "a server certificate of version {other}"
            ))),
        }
    }

    /// `proprietary`, `x509`, with `(temporary)` when so marked.
    pub fn describe(&self) -> String {
        let (kind, temporary) = match self {
            ServerCertificate::Proprietary { temporary, .. } => ("proprietary", *temporary),
            ServerCertificate::X509 { temporary, chain } => {
                return format!(
                    "x509 chain of {}{}",
                    chain.len(),
                    if *temporary { " (temporary)" } else { "" }
                );
            }
        };
        format!("{kind}{}", if temporary { " (temporary)" } else { "" })
    }

    /// The server's RSA key: the proprietary certificate's, or the last certificate's of the chain.
    pub fn public_key(&self) -> Result<PublicKey> {
        match self {
            ServerCertificate::Proprietary { key, .. } => Ok(key.clone()),
            ServerCertificate::X509 { chain, .. } => {
                let leaf = chain
                    .last()
                    .ok_or_else(|| SecurityError::Malformed("an empty x.509 chain".to_owned()))?;
                x509_public_key(leaf)
            }
        }
    }

    /// [5.3.3.1.3] Whether a proprietary certificate's signature verifies with the Terminal Services key;
    /// `None` for an X.509 chain.
    pub fn signature_valid(&self) -> Option<bool> {
        match self {
            ServerCertificate::Proprietary {
                signed, signature, ..
            } => Some(verify_proprietary(signed, signature)),
            ServerCertificate::X509 { .. } => None,
        }
    }
}

/// [2.2.1.4.3.1.1.1] RSA_PUBLIC_KEY.
fn rsa_public_key(blob: &[u8]) -> Result<PublicKey> {
    let mut r = Reader::new(blob);
    if r.u32_le("magic")? != RSA1 {
        return Err(SecurityError::Malformed(
            "the proprietary certificate's key does not start with RSA1".to_owned(),
        ));
    }
    let keylen = r.u32_le("keylen")? as usize;
    let bitlen = r.u32_le("bitlen")? as usize;
    r.u32_le("datalen")?;
    let exponent = r.u32_le("pubExp")?;
    let modulus = r.bytes(keylen, "modulus")?;
    let len = bitlen.div_ceil(8);
    if len == 0 || len > modulus.len() {
        return Err(SecurityError::Malformed(format!(
            "a {bitlen}-bit key in a {keylen}-byte modulus field"
        )));
    }
    Ok(PublicKey {
        modulus: trim_le(modulus.get(..len).unwrap_or_default()),
        exponent,
    })
}

/// The RSA key of an X.509 certificate.
fn x509_public_key(der: &[u8]) -> Result<PublicKey> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        SecurityError::Malformed(format!(
            "the server's x.509 certificate does not parse: {e}"
        ))
    })?;
    let spki = cert.public_key();
    // Windows license servers label the server's key md5WithRSAEncryption (1.2.840.113549.1.1.4), which X.509
    // parsers refuse as a key algorithm; the bits are a PKCS #1 RSAPublicKey all the same.
    let pkcs1_family = spki
        .algorithm
        .algorithm
        .to_id_string()
        .starts_with("1.2.840.113549.1.1.");
    if pkcs1_family
        && !matches!(
            spki.parsed(),
            Ok(x509_parser::public_key::PublicKey::RSA(_))
        )
    {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        let key = RsaPublicKey::from_pkcs1_der(&spki.subject_public_key.data).map_err(|e| {
            SecurityError::Malformed(format!("the server's x.509 rsa key does not parse: {e}"))
        })?;
        return PublicKey::from_rsa(&key);
    }
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let exponent: Vec<u8> = rsa.exponent.iter().skip_while(|&&b| b == 0).copied().collect();
            if exponent.len() > 4 {
                return Err(SecurityError::Unsupported(
                    "an rsa public exponent wider than 32 bits".to_owned(),
                ));
            }
            // INVARIANT: at most four bytes, so the shifts keep every bit.
            let exponent = exponent
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            let mut modulus: Vec<u8> = rsa.modulus.to_vec();
            modulus.reverse();
            Ok(PublicKey {
                modulus: trim_le(&modulus),
                exponent,
            })
        }
        Ok(_) => Err(SecurityError::Unsupported(
            "the server's x.509 certificate holds a key that is not rsa; standard rdp security encrypts the client random with rsa".to_owned(),
        )),
        Err(e) => Err(SecurityError::Malformed(format!(
            "the server's x.509 public key does not parse: {e}"
        ))),
    }
}

/// Raw RSA: `value` (little-endian) to the power of `exponent` modulo `modulus`, little-endian, `len` bytes.
fn modpow_le(key: &RsaPublicKey, value: &[u8], len: usize) -> Result<Vec<u8>> {
    let bits = key.n().bits_precision();
    let m = BoxedUint::from_le_slice(value, bits)
        .map_err(|e| SecurityError::Crypto(format!("rsa input: {e:?}")))?;
    if m >= *key.n().as_ref() {
        return Err(SecurityError::Crypto(
            "rsa input not below the modulus".to_owned(),
        ));
    }
    let c = rsa_encrypt(key, &m).map_err(|e| SecurityError::Crypto(e.to_string()))?;
    let mut out = c.to_le_bytes().to_vec();
    out.resize(len, 0);
    Ok(out)
}

/// [5.3.4.1] The client random encrypted with the server's key, little-endian, in a zeroed buffer of the
/// modulus length plus 8 bytes.
pub fn encrypt_client_random(key: &PublicKey, random: &[u8; RANDOM_LEN]) -> Result<Vec<u8>> {
    if key.len() <= RANDOM_LEN {
        return Err(SecurityError::Unsupported(format!(
            "a {}-bit rsa key cannot carry the 256-bit client random",
            key.bits()
        )));
    }
    let mut out = modpow_le(&key.rsa()?, random, key.len())?;
    out.resize(key.len() + 8, 0);
    Ok(out)
}

/// [5.3.4.2] The client random from the Security Exchange PDU's encryptedClientRandom.
pub fn decrypt_client_random(key: &RsaPrivateKey, encrypted: &[u8]) -> Result<[u8; RANDOM_LEN]> {
    let len = key.size();
    let (body, padding) = encrypted.split_at(len.min(encrypted.len()));
    if body.len() < len || padding.iter().any(|&b| b != 0) {
        return Err(SecurityError::Malformed(format!(
            "an encrypted client random of {} bytes for a {len}-byte key",
            encrypted.len()
        )));
    }
    let c = BoxedUint::from_le_slice(body, key.n().bits_precision())
        .map_err(|e| SecurityError::Malformed(format!("the encrypted client random: {e:?}")))?;
    if c >= *key.n().as_ref() {
        return Err(SecurityError::Malformed(
            "the encrypted client random is not below the modulus".to_owned(),
        ));
    }
    let mut rng = getrandom::SysRng;
    let m =
        rsa_decrypt(Some(&mut rng), key, &c).map_err(|e| SecurityError::Crypto(e.to_string()))?;
    let bytes = m.to_le_bytes();
    if bytes.iter().skip(RANDOM_LEN).any(|&b| b != 0) {
        return Err(SecurityError::Malformed(
            "the client random decrypts to more than 32 bytes (encrypted with another key?)"
                .to_owned(),
        ));
    }
    let mut out = [0u8; RANDOM_LEN];
    for (o, b) in out.iter_mut().zip(bytes.iter()) {
        *o = *b;
    }
    Ok(out)
}

/// [5.3.3.1.1] The Terminal Services signing key with its public or its (published) private exponent.
fn ts_key(private: bool) -> RsaPublicKey {
    let n = BoxedUint::from_le_slice_vartime(&TS_MODULUS);
    let e = if private {
        BoxedUint::from_le_slice(&TS_PRIVATE_EXPONENT, n.bits_precision())
    } else {
        BoxedUint::from_le_slice(&TS_PUBLIC_EXPONENT, n.bits_precision())
    }
    .unwrap_or_else(|_| BoxedUint::one_with_precision(n.bits_precision()));
    // INVARIANT: the modulus is a published odd constant; the private exponent is only ever used here, as a
    // "public" one, to compute the signature s = m^d mod n of [5.3.3.1.2].
    RsaPublicKey::new_unchecked(n, e)
}

/// [5.3.3.1.2] The 63-byte block a proprietary certificate's signature encrypts: the MD5 hash, 0x00, 0xFF
/// bytes, 0x01.
fn signature_block(signed: &[u8]) -> [u8; 63] {
    let mut block = [0xffu8; 63];
    let hash: [u8; 16] = Md5::digest(signed).into();
    block[..16].copy_from_slice(&hash);
    block[16] = 0x00;
    block[62] = 0x01;
    block
}

/// [5.3.3.1.3] Verifies a proprietary certificate's signature with the Terminal Services public key.
fn verify_proprietary(signed: &[u8], signature: &[u8]) -> bool {
    // The signature is the 64-byte value followed by 8 zero bytes.
    let Some((value, zeros)) = signature.split_first_chunk::<64>() else {
        return false;
    };
    if zeros.len() != 8 || zeros.iter().any(|&b| b != 0) {
        return false;
    }
    match modpow_le(&ts_key(false), value, 64) {
        Ok(m) => m
            .split_last()
            .is_some_and(|(&last, block)| block == signature_block(signed).as_slice() && last == 0),
        Err(_) => false,
    }
}

/// [2.2.1.4.3.1.1] A proprietary certificate for `key`, signed with the Terminal Services key ([5.3.3.1.2]).
pub fn proprietary_certificate(key: &PublicKey) -> Result<Vec<u8>> {
    let len = key.len();
    let keylen = len + 8;
    let mut blob = Vec::with_capacity(20 + keylen);
    blob.extend_from_slice(&RSA1.to_le_bytes());
    blob.extend_from_slice(&u32_of(keylen)?.to_le_bytes());
    blob.extend_from_slice(&u32_of(len * 8)?.to_le_bytes());
    blob.extend_from_slice(&u32_of(len.saturating_sub(1))?.to_le_bytes());
    blob.extend_from_slice(&key.exponent.to_le_bytes());
    let mut modulus = key.modulus.clone();
    modulus.resize(keylen, 0);
    blob.extend_from_slice(&modulus);

    let mut cert = Vec::new();
    cert.extend_from_slice(&CERT_CHAIN_VERSION_1.to_le_bytes());
    cert.extend_from_slice(&ALG_RSA.to_le_bytes());
    cert.extend_from_slice(&ALG_RSA.to_le_bytes());
    cert.extend_from_slice(&BB_RSA_KEY_BLOB.to_le_bytes());
    cert.extend_from_slice(&u16_of(blob.len())?.to_le_bytes());
    cert.extend_from_slice(&blob);
    let mut signature = modpow_le(&ts_key(true), &signature_block(&cert), 64)?;
    signature.resize(72, 0);
    cert.extend_from_slice(&BB_RSA_SIGNATURE_BLOB.to_le_bytes());
    cert.extend_from_slice(&u16_of(signature.len())?.to_le_bytes());
    cert.extend_from_slice(&signature);
    Ok(cert)
}

fn u32_of(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| SecurityError::Unsupported(format!("{n} does not fit 32 bits")))
}

fn u16_of(n: usize) -> Result<u16> {
    u16::try_from(n).map_err(|_| SecurityError::Unsupported(format!("{n} does not fit 16 bits")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rdp_security::unhex;

    /// [4.1.4] The proprietary certificate of the annotated connection sequence (Server Security Data).
    pub(crate) const SPEC_CERTIFICATE: &str = "
        01 00 00 00 01 00 00 00 01 00 00 00 06 00 5c 00
        52 53 41 31 48 00 00 00 00 02 00 00 3f 00 00 00
        01 00 01 00 cb 81 fe ba 6d 61 c3 55 05 d5 5f 2e
        87 f8 71 94 d6 f1 a5 cb f1 5f 0c 3d f8 70 02 96
        c4 fb 9b c8 3c 2d 55 ae e8 ff 32 75 ea 68 79 e5
        a2 01 fd 31 a0 b1 1f 55 a6 1f c1 f6 d1 83 88 63
        26 56 12 bc 00 00 00 00 00 00 00 00 08 00 48 00
        e9 e1 d6 28 46 8b 4e f5 0a df fd ee 21 99 ac b4
        e1 8f 5f 81 57 82 ef 9d 96 52 63 27 18 29 db b3
        4a fd 9a da 42 ad b5 69 21 89 0e 1d c0 4c 1a a8
        aa 71 3e 0f 54 b9 9a e4 99 68 3f 6c d6 76 84 61
        00 00 00 00 00 00 00 00";

    #[test]
    fn the_spec_certificate_parses_and_its_signature_verifies() {
        let cert = ServerCertificate::parse(&unhex(SPEC_CERTIFICATE)).unwrap();
        let key = cert.public_key().unwrap();
        assert_eq!((key.bits(), key.exponent), (512, 0x0001_0001));
        assert_eq!(key.modulus[..4], [0xcb, 0x81, 0xfe, 0xba]);
        assert_eq!(cert.describe(), "proprietary");
        assert_eq!(cert.signature_valid(), Some(true));

        // One bit changed in the key breaks the signature.
        let mut tampered = unhex(SPEC_CERTIFICATE);
        tampered[40] ^= 1;
        let cert = ServerCertificate::parse(&tampered).unwrap();
        assert_eq!(cert.signature_valid(), Some(false));
    }

    #[test]
    fn a_certificate_made_here_verifies_like_a_windows_one() {
        let spec = ServerCertificate::parse(&unhex(SPEC_CERTIFICATE)).unwrap();
        let key = spec.public_key().unwrap();
        let made = proprietary_certificate(&key).unwrap();
        // Same key, same layout: the bytes are the spec's (the signature is deterministic).
        assert_eq!(made, unhex(SPEC_CERTIFICATE));
    }

    /// [4.8] The sample 512-bit key pair and client random: encrypted with the public key, decrypted with the
    /// private one.
    #[test]
    fn the_spec_sample_client_random_round_trips() {
        let modulus = unhex(
            "37a870fe9ab9a854cb9879447ab9eb3806ea26a147ea19705df352887021b59e
             50b4e1f51ad82d514d1aad797c8946b0cc667402d8285d9dd7cafc600f38f9b3",
        );
        let private = unhex(
            "c107e7d4d3388d36f59e8b960d5565082825a32ec768d644852d32f672a89bba
             5e8282f05c0ceb6b126aa74515ce41e003e5e66ddffd58610b07a47bb3f37194",
        );
        let mut random = [0u8; 32];
        random[0] = 0xff;
        random[1] = 0xee;
        random[31] = 0xff;
        let key = PublicKey {
            modulus: modulus.clone(),
            exponent: 0x0001_0001,
        };
        let encrypted = encrypt_client_random(&key, &random).unwrap();
        assert_eq!(encrypted.len(), 72);
        assert!(encrypted[64..].iter().all(|&b| b == 0));
        // c^d mod n gives the random back.
        let d_key = RsaPublicKey::new_unchecked(
            BoxedUint::from_le_slice_vartime(&modulus),
            BoxedUint::from_le_slice(&private, 512).unwrap(),
        );
        let back = modpow_le(&d_key, &encrypted[..64], 64).unwrap();
        assert_eq!(back[..32], random);
        assert!(back[32..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_private_key_decrypts_what_its_public_key_encrypted() {
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let private = RsaPrivateKey::new_unchecked(&mut rng, 512).unwrap();
        let public = PublicKey::from_rsa(&private.to_public_key()).unwrap();
        let random = [7u8; 32];
        let encrypted = encrypt_client_random(&public, &random).unwrap();
        assert_eq!(decrypt_client_random(&private, &encrypted).unwrap(), random);
        assert!(decrypt_client_random(&private, &encrypted[..10]).is_err());
        let cert = proprietary_certificate(&public).unwrap();
        let parsed = ServerCertificate::parse(&cert).unwrap();
        assert_eq!(parsed.public_key().unwrap(), public);
        assert_eq!(parsed.signature_valid(), Some(true));
    }

    #[test]
    fn an_x509_chain_yields_its_last_certificate_key() {
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        // ring (under rcgen) signs with RSA keys of 2048 bits and more.
        let private = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        use rsa::pkcs8::EncodePrivateKey as _;
        let der = private.to_pkcs8_der().unwrap();
        let key_pair = rcgen::KeyPair::try_from(der.as_bytes()).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["leaf".to_owned()])
            .unwrap()
            .self_signed(&key_pair)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let root = rcgen::CertificateParams::new(vec!["root".to_owned()])
            .unwrap()
            .self_signed(&other)
            .unwrap();
        let mut chain = Vec::new();
        chain.extend_from_slice(&(CERT_CHAIN_VERSION_2 | CERT_TEMPORARY).to_le_bytes());
        chain.extend_from_slice(&2u32.to_le_bytes());
        for c in [root.der(), leaf.der()] {
            chain.extend_from_slice(&(c.len() as u32).to_le_bytes());
            chain.extend_from_slice(c);
        }
        chain.extend_from_slice(&[0u8; 16]);
        let cert = ServerCertificate::parse(&chain).unwrap();
        assert_eq!(cert.describe(), "x509 chain of 2 (temporary)");
        assert_eq!(cert.signature_valid(), None);
        let key = cert.public_key().unwrap();
        assert_eq!(key, PublicKey::from_rsa(&private.to_public_key()).unwrap());

        // A Windows license server labels the key md5WithRSAEncryption (1.2.840.113549.1.1.4): the key is read
        // all the same.
        let rsa_encryption = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        let at = chain
            .windows(rsa_encryption.len())
            .rposition(|w| w == rsa_encryption)
            .unwrap();
        chain[at + 8] = 0x04;
        let cert = ServerCertificate::parse(&chain).unwrap();
        assert_eq!(cert.public_key().unwrap(), key);
    }

    #[test]
    fn bad_certificates_are_errors() {
        assert!(ServerCertificate::parse(&[]).is_err());
        assert!(ServerCertificate::parse(&[3, 0, 0, 0]).is_err());
        let mut short = unhex(SPEC_CERTIFICATE);
        short.truncate(50);
        assert!(ServerCertificate::parse(&short).is_err());
        let chain = [2, 0, 0, 0, 0xff, 0xff, 0, 0];
        assert!(ServerCertificate::parse(&chain).is_err());
        let tiny = PublicKey {
            modulus: vec![0xff; 16],
            exponent: 3,
        };
        assert!(encrypt_client_random(&tiny, &[1; 32]).is_err());
    }
}
