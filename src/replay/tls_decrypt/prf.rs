//! Key schedules: the TLS 1.0/1.1 and TLS 1.2 PRF ([RFC 2246] 5, [RFC 5246] 5) and the TLS 1.3
//! HKDF-Expand-Label ([RFC 8446] 7.1), over RustCrypto's HMAC and hashes.

use hmac::Hmac;
use sha2::Digest as _;

use super::suites::Hash;

/// HMAC of `parts` concatenated, with the MAC type `M`.
fn hmac<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // INVARIANT: HMAC accepts keys of any length, so new_from_slice cannot fail.
    let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC with the hash named by `hash`.
pub fn hmac_with(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match hash {
        Hash::Sha1 => hmac::<Hmac<sha1::Sha1>>(key, parts),
        Hash::Sha256 => hmac::<Hmac<sha2::Sha256>>(key, parts),
        Hash::Sha384 => hmac::<Hmac<sha2::Sha384>>(key, parts),
    }
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac::<Hmac<md5::Md5>>(key, parts)
}

/// [RFC 5246] 5 P_hash(secret, seed), `len` bytes.
fn p_hash(
    mac: impl Fn(&[u8], &[&[u8]]) -> Vec<u8>,
    secret: &[u8],
    seed: &[u8],
    len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut a = mac(secret, &[seed]);
    // INVARIANT: every pass adds one HMAC output (at least 16 bytes), so the loop ends.
    while out.len() < len && !a.is_empty() {
        out.extend_from_slice(&mac(secret, &[&a, seed]));
        a = mac(secret, &[&a]);
    }
    out.truncate(len);
    out
}

/// [RFC 5246] 5 the TLS 1.2 PRF with the suite's hash.
pub fn prf12(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mut ls = label.to_vec();
    ls.extend_from_slice(seed);
    p_hash(|k, p| hmac_with(hash, k, p), secret, &ls, len)
}

/// [RFC 2246] 5 the TLS 1.0 and 1.1 PRF: P_MD5 over the first half of the secret XOR P_SHA-1 over the
/// second half (the halves share a byte when the length is odd).
pub fn prf10(secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mut ls = label.to_vec();
    ls.extend_from_slice(seed);
    let half = secret.len().div_ceil(2);
    let s1 = secret.get(..half).unwrap_or_default();
    let s2 = secret.get(secret.len() - half..).unwrap_or_default();
    let md5 = p_hash(hmac_md5, s1, &ls, len);
    let sha = p_hash(|k, p| hmac_with(Hash::Sha1, k, p), s2, &ls, len);
    md5.iter().zip(sha.iter()).map(|(a, b)| a ^ b).collect()
}

/// The PRF of a protocol version (`0x0301`, `0x0302`: TLS 1.0/1.1; else TLS 1.2).
pub fn prf(
    version: u16,
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    len: usize,
) -> Vec<u8> {
    if version < 0x0303 {
        prf10(secret, label, seed, len)
    } else {
        prf12(hash, secret, label, seed, len)
    }
}

/// The session hash of the extended master secret ([RFC 7627] 3): the suite's hash over the handshake
/// messages for TLS 1.2, MD5 and SHA-1 side by side before.
pub fn session_hash(version: u16, hash: Hash, transcript: &[u8]) -> Vec<u8> {
    if version < 0x0303 {
        let mut out = md5::Md5::digest(transcript).to_vec();
        out.extend_from_slice(&sha1::Sha1::digest(transcript));
        out
    } else {
        match hash {
            Hash::Sha1 => sha1::Sha1::digest(transcript).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(transcript).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(transcript).to_vec(),
        }
    }
}

/// [RFC 8446] 7.1 HKDF-Expand-Label(secret, label, context, len).
pub fn expand_label(
    hash: Hash,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len() + context.len());
    info.extend_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
    info.push(u8::try_from(full.len()).ok()?);
    info.extend_from_slice(full.as_bytes());
    info.push(u8::try_from(context.len()).ok()?);
    info.extend_from_slice(context);
    let mut out = vec![0u8; len];
    match hash {
        Hash::Sha256 => hkdf::Hkdf::<sha2::Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        Hash::Sha384 => hkdf::Hkdf::<sha2::Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        Hash::Sha1 => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS 1.2 PRF test vector of the IETF TLS working group (P_SHA256, 100 bytes).
    #[test]
    fn prf12_sha256_vector() {
        let secret = hex::decode("9bbe436ba940f017b17652849a71db35").unwrap();
        let seed = hex::decode("a0ba9f936cda311827a6f796ffd5198c").unwrap();
        let out = prf12(Hash::Sha256, &secret, b"test label", &seed, 100);
        assert_eq!(
            hex::encode(out),
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
        );
    }

    /// [RFC 8448] 3: the server handshake traffic key and IV of the simple 1-RTT handshake.
    #[test]
    fn hkdf_expand_label_rfc8448() {
        let secret =
            hex::decode("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
                .unwrap();
        assert_eq!(
            hex::encode(expand_label(Hash::Sha256, &secret, "key", &[], 16).unwrap()),
            "3fce516009c21727d0f2e4e86ee403bc"
        );
        assert_eq!(
            hex::encode(expand_label(Hash::Sha256, &secret, "iv", &[], 12).unwrap()),
            "5d313eb2671276ee13000b30"
        );
    }

    #[test]
    fn prf10_halves_share_a_byte_for_odd_secrets() {
        // Two computations that differ only in the shared middle byte differ in both halves.
        let a = prf10(&[1, 2, 3], b"l", b"s", 20);
        let b = prf10(&[1, 9, 3], b"l", b"s", 20);
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
