//! [5.3.5] Session keys from the client and server randoms, and [5.3.7] their updates.

use md5::{Digest as _, Md5};
use sha1::Sha1;

use super::Method;

/// The length of the client and server randoms ([5.3.4]).
pub const RANDOM_LEN: usize = 32;

/// [5.3.6.1] Pad1: 0x36 repeated 40 times.
pub(crate) const PAD1: [u8; 40] = [0x36; 40];
/// [5.3.6.1] Pad2: 0x5C repeated 48 times.
pub(crate) const PAD2: [u8; 48] = [0x5c; 48];

/// [5.3.5.1] The salt that reduces a 64-bit key to 40 bits (three bytes) or 56 bits (the first byte).
const SALT: [u8; 3] = [0xd1, 0x26, 0x9e];

/// The symmetric keys of one connection, both directions.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub method: Method,
    /// [5.3.5.1] MACKeyN (8 or 16 bytes); under FIPS [5.3.5.2] the 20-byte HMAC key.
    pub mac_key: Vec<u8>,
    /// The key of client-to-server data (the client's encryption key, the server's decryption key): 8 or 16
    /// bytes for RC4, 24 for Triple DES.
    pub client_to_server: Vec<u8>,
    /// The key of server-to-client data (the server's encryption key, the client's decryption key).
    pub server_to_client: Vec<u8>,
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// [5.3.5] The keys both ends derive once the client random has gone to the server.
    pub fn derive(
        method: Method,
        client_random: &[u8; RANDOM_LEN],
        server_random: &[u8; RANDOM_LEN],
    ) -> SessionKeys {
        match method {
            Method::Fips => fips(client_random, server_random),
            _ => non_fips(method, client_random, server_random),
        }
    }
}

/// [5.3.5.1] SaltedHash(S, I) = MD5(S + SHA(I + S + ClientRandom + ServerRandom)).
fn salted_hash(s: &[u8], i: &[u8], client_random: &[u8], server_random: &[u8]) -> [u8; 16] {
    let sha = Sha1::new()
        .chain_update(i)
        .chain_update(s)
        .chain_update(client_random)
        .chain_update(server_random)
        .finalize();
    Md5::new()
        .chain_update(s)
        .chain_update(sha)
        .finalize()
        .into()
}

/// [5.3.5.1] The three salted hashes of `secret` with the labels `a`, `bb`, `ccc`, concatenated (384 bits).
fn triple_hash(
    secret: &[u8],
    labels: [&[u8]; 3],
    client_random: &[u8],
    server_random: &[u8],
) -> [u8; 48] {
    let mut out = [0u8; 48];
    for (chunk, label) in out.chunks_exact_mut(16).zip(labels) {
        chunk.copy_from_slice(&salted_hash(secret, label, client_random, server_random));
    }
    out
}

/// [5.3.5.1] FinalHash(K) = MD5(K + ClientRandom + ServerRandom).
fn final_hash(k: &[u8], client_random: &[u8], server_random: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update(k)
        .chain_update(client_random)
        .chain_update(server_random)
        .finalize()
        .into()
}

/// [5.3.5.1] Salts the first 64 bits of a 128-bit key down to 40 or 56 bits of entropy; 128-bit keys stay whole.
fn reduce(method: Method, key: &[u8; 16]) -> Vec<u8> {
    let mut out: Vec<u8> = key.iter().copied().take(method.rc4_key_len()).collect();
    salt(method, &mut out);
    out
}

/// [5.3.5.1] The salt over the first bytes of a 40-bit key (three) or a 56-bit key (one).
fn salt(method: Method, key: &mut [u8]) {
    let salted = match method {
        Method::Rc4Bits40 => 3,
        Method::Rc4Bits56 => 1,
        Method::Rc4Bits128 | Method::Fips => 0,
    };
    for (byte, salt) in key.iter_mut().zip(SALT).take(salted) {
        *byte = salt;
    }
}

fn non_fips(method: Method, client_random: &[u8; 32], server_random: &[u8; 32]) -> SessionKeys {
    let mut pre_master = [0u8; 48];
    pre_master[..24].copy_from_slice(&client_random[..24]);
    pre_master[24..].copy_from_slice(&server_random[..24]);
    let master = triple_hash(
        &pre_master,
        [b"A", b"BB", b"CCC"],
        client_random,
        server_random,
    );
    let blob = triple_hash(&master, [b"X", b"YY", b"ZZZ"], client_random, server_random);
    let mut mac = [0u8; 16];
    mac.copy_from_slice(&blob[..16]);
    // The server encrypts with the second 128 bits and decrypts with the third; the client the other way round.
    let server_to_client = final_hash(&blob[16..32], client_random, server_random);
    let client_to_server = final_hash(&blob[32..48], client_random, server_random);
    SessionKeys {
        method,
        mac_key: reduce(method, &mac),
        client_to_server: reduce(method, &client_to_server),
        server_to_client: reduce(method, &server_to_client),
    }
}

/// [5.3.5.2] FIPS: SHA-1 keys expanded to Triple DES keys, and the HMAC key.
fn fips(client_random: &[u8; 32], server_random: &[u8; 32]) -> SessionKeys {
    let client_encrypt: [u8; 20] = Sha1::new()
        .chain_update(&client_random[16..])
        .chain_update(&server_random[16..])
        .finalize()
        .into();
    let client_decrypt: [u8; 20] = Sha1::new()
        .chain_update(&client_random[..16])
        .chain_update(&server_random[..16])
        .finalize()
        .into();
    let hmac: [u8; 20] = Sha1::new()
        .chain_update(client_decrypt)
        .chain_update(client_encrypt)
        .finalize()
        .into();
    SessionKeys {
        method: Method::Fips,
        mac_key: hmac.to_vec(),
        client_to_server: fips_des_key(&client_encrypt).to_vec(),
        server_to_client: fips_des_key(&client_decrypt).to_vec(),
    }
}

/// [5.3.5.2] A 160-bit key to a 192-bit Triple DES key: the first byte appended (168 bits); every byte's bits
/// reversed, a zero bit inserted after every seven bits, every byte reversed again; then each byte's least
/// significant bit altered for odd parity.
pub(crate) fn fips_des_key(key: &[u8; 20]) -> [u8; 24] {
    let mut bits168 = [0u8; 21];
    bits168[..20].copy_from_slice(key);
    bits168[20] = key[0];
    // With every byte reversed, the stream reads each byte from its least significant bit; after the second
    // reversal the k-th bit of a group of seven is bit k of the output byte, and bit 7 is the inserted zero.
    let mut out = [0u8; 24];
    for (i, byte) in out.iter_mut().enumerate() {
        let mut v = 0u8;
        for k in 0..7 {
            let bit = i * 7 + k;
            // INVARIANT: bit < 24 * 7 = 168 = 21 bytes * 8.
            if bits168
                .get(bit / 8)
                .is_some_and(|b| (b >> (bit % 8)) & 1 != 0)
            {
                v |= 1 << k;
            }
        }
        if v.count_ones().is_multiple_of(2) {
            v ^= 1;
        }
        *byte = v;
    }
    out
}

/// [5.3.7.1] The next RC4 key of one direction after 4,096 packets: from the initial key and the current one.
pub(crate) fn update_key(method: Method, initial: &[u8], current: &[u8]) -> Vec<u8> {
    let len = method.rc4_key_len();
    let initial = initial.get(..len).unwrap_or(initial);
    let current = current.get(..len).unwrap_or(current);
    let sha = Sha1::new()
        .chain_update(initial)
        .chain_update(PAD1)
        .chain_update(current)
        .finalize();
    let temp: [u8; 16] = Md5::new()
        .chain_update(initial)
        .chain_update(PAD2)
        .chain_update(sha)
        .finalize()
        .into();
    // INVARIANT: an RC4 key is at most 16 bytes, the length of an MD5 digest.
    let temp = temp.get(..len).unwrap_or(&temp);
    let mut key = temp.to_vec();
    super::cipher::rc4_in_place(temp, &mut key);
    salt(method, &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdp_security::unhex;

    /// The randoms of the vectors below.
    fn randoms() -> ([u8; 32], [u8; 32]) {
        let mut client = [0u8; 32];
        let mut server = [0u8; 32];
        for i in 0..32 {
            client[i] = i as u8;
            server[i] = 0xff - i as u8;
        }
        (client, server)
    }

    /// [5.3.5.1] Keys of each strength. The expected values come from an independent implementation of the
    /// section's formulas (Python's hashlib), not from this code; the 40 and 56-bit keys show the salt.
    #[test]
    fn session_keys_rc4() {
        let (c, s) = randoms();
        let cases = [
            (
                Method::Rc4Bits128,
                "98743c518de689f33204357332af6c45",
                "df0df137e922fd125af4fb998fb3c7aa",
                "dc02a732b901d857768266dc1cd34492",
            ),
            (
                Method::Rc4Bits56,
                "d1743c518de689f3",
                "d10df137e922fd12",
                "d102a732b901d857",
            ),
            (
                Method::Rc4Bits40,
                "d1269e518de689f3",
                "d1269e37e922fd12",
                "d1269e32b901d857",
            ),
        ];
        for (method, mac, s2c, c2s) in cases {
            let keys = SessionKeys::derive(method, &c, &s);
            assert_eq!(keys.mac_key, unhex(mac), "{method}");
            assert_eq!(keys.server_to_client, unhex(s2c), "{method}");
            assert_eq!(keys.client_to_server, unhex(c2s), "{method}");
        }
    }

    /// [5.3.5.2] The worked example of the key expansion: D1 5E C4 7E DA ... becomes 51 3D 10 76 26 ...
    #[test]
    fn fips_expansion_matches_the_spec_example() {
        let mut key = [0u8; 20];
        key[..5].copy_from_slice(&[0xd1, 0x5e, 0xc4, 0x7e, 0xda]);
        assert_eq!(fips_des_key(&key)[..5], [0x51, 0x3d, 0x10, 0x76, 0x26]);
    }

    /// [5.3.5.2] FIPS keys (independent implementation, as above).
    #[test]
    fn session_keys_fips() {
        let (c, s) = randoms();
        let keys = SessionKeys::derive(Method::Fips, &c, &s);
        assert_eq!(
            keys.mac_key,
            unhex("86b8c32702799b8ab1151e89ccec6313bb09e90f")
        );
        assert_eq!(
            keys.client_to_server,
            unhex("70735d5e267619040b7a0d381f3b322a1f76387a5b6d2f38")
        );
        assert_eq!(
            keys.server_to_client,
            unhex("4f6419495d6b2f1325162f15735b4615754f34012a077626")
        );
    }

    /// [5.3.7.1] Two successive updates of each strength (independent implementation, as above).
    #[test]
    fn key_updates() {
        let (c, s) = randoms();
        let cases = [
            (
                Method::Rc4Bits128,
                "f0e393a3822d2f6b95da60b0373a1925",
                "b25f11d72c2a3e2e1994ecd3d0dac3d4",
            ),
            (Method::Rc4Bits56, "d15874cc7ee8a130", "d1c0a4a3ab7b4938"),
            (Method::Rc4Bits40, "d1269ec94b77193b", "d1269eb6bb092921"),
        ];
        for (method, first, second) in cases {
            let initial = SessionKeys::derive(method, &c, &s).client_to_server;
            let k1 = update_key(method, &initial, &initial);
            assert_eq!(k1, unhex(first), "{method}");
            assert_eq!(update_key(method, &initial, &k1), unhex(second), "{method}");
        }
    }
}
