//! [5.3.6] One direction of the I/O data stream: encryption and the MAC, with the counts that the salted MAC,
//! the FIPS HMAC and the key updates need.
//!
//! Every encrypted PDU of a direction (slow-path on any channel, fast-path) goes through the same stream in
//! order: RC4 and CBC carry their state from one PDU to the next.

use cbc::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, InOutBuf, KeyIvInit as _};
use des::TdesEde3;
use hmac::{Hmac, KeyInit as _, Mac as _};
use md5::{Digest as _, Md5};
use rc4::{Rc4, StreamCipher as _};
use sha1::Sha1;

use super::keys::{PAD1, PAD2, SessionKeys, update_key};
use super::{Method, Result, SecurityError};

/// [5.3.7.1] The keys change after this many packets.
pub const KEY_UPDATE_INTERVAL: u32 = 4096;

/// [5.3.6.2] The Triple DES initialization vector.
const FIPS_IV: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef];

/// Which way the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// RC4 over `data` with a fresh key schedule.
pub(crate) fn rc4_in_place(key: &[u8], data: &mut [u8]) {
    // INVARIANT: RC4 keys here are 8 or 16 bytes, within the 1..=256 the cipher accepts.
    if let Ok(mut rc4) = Rc4::new_from_slice(key) {
        rc4.apply_keystream(data);
    }
}

/// [5.3.6.1] MACSignature = First64Bits(MD5(MACKeyN + Pad2 + SHA(MACKeyN + Pad1 + DataLength + Data))), with the
/// [5.3.6.1.1] salt (the encryption count) after the data when `count` is given.
pub fn mac(mac_key: &[u8], data: &[u8], count: Option<u32>) -> [u8; 8] {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut sha = Sha1::new()
        .chain_update(mac_key)
        .chain_update(PAD1)
        .chain_update(len.to_le_bytes())
        .chain_update(data);
    if let Some(count) = count {
        sha.update(count.to_le_bytes());
    }
    let md5 = Md5::new()
        .chain_update(mac_key)
        .chain_update(PAD2)
        .chain_update(sha.finalize())
        .finalize();
    md5.first_chunk::<8>().copied().unwrap_or_default()
}

/// [5.3.6.2] MACSignature = First64Bits(HMAC-SHA1(HMACKey, Data + EncryptionCount)).
pub fn fips_mac(hmac_key: &[u8], data: &[u8], count: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    // INVARIANT: HMAC takes keys of any length.
    if let Ok(mut h) = Hmac::<Sha1>::new_from_slice(hmac_key) {
        h.update(data);
        h.update(&count.to_le_bytes());
        out = h
            .finalize()
            .into_bytes()
            .first_chunk::<8>()
            .copied()
            .unwrap_or_default();
    }
    out
}

enum Engine {
    Rc4 {
        initial: Vec<u8>,
        current: Vec<u8>,
        rc4: Box<Rc4>,
        /// Packets since the last key (update).
        uses: u32,
    },
    FipsEncrypt(Box<cbc::Encryptor<TdesEde3>>),
    FipsDecrypt(Box<cbc::Decryptor<TdesEde3>>),
}

/// One direction as its sender (sealing) or its receiver (opening) sees it.
pub struct Stream {
    method: Method,
    mac_key: Vec<u8>,
    engine: Engine,
    /// Encryptions carried out so far (the salted MAC's and the FIPS HMAC's EncryptionCount).
    count: u32,
}

impl core::fmt::Debug for Stream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stream")
            .field("method", &self.method)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// A PDU body encrypted and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub signature: [u8; 8],
    /// Under FIPS, padded to a multiple of 8 before encryption.
    pub data: Vec<u8>,
    /// [2.2.8.1.1.2.3] padlen: the padding bytes under FIPS, 0 otherwise.
    pub pad: u8,
}

/// A PDU body decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub data: Vec<u8>,
    /// Whether the MAC on the wire is the one the data has.
    pub mac_ok: bool,
}

impl Stream {
    /// The sending end of `direction`.
    pub fn sealer(keys: &SessionKeys, direction: Direction) -> Result<Stream> {
        Stream::new(keys, direction, true)
    }

    /// The receiving end of `direction`.
    pub fn opener(keys: &SessionKeys, direction: Direction) -> Result<Stream> {
        Stream::new(keys, direction, false)
    }

    fn new(keys: &SessionKeys, direction: Direction, seal: bool) -> Result<Stream> {
        let key = match direction {
            Direction::ClientToServer => &keys.client_to_server,
            Direction::ServerToClient => &keys.server_to_client,
        };
        let engine = match keys.method {
            Method::Fips => {
                let bad =
                    |_| SecurityError::Crypto("a triple des key of the wrong length".to_owned());
                if seal {
                    Engine::FipsEncrypt(Box::new(
                        cbc::Encryptor::<TdesEde3>::new_from_slices(key, &FIPS_IV).map_err(bad)?,
                    ))
                } else {
                    Engine::FipsDecrypt(Box::new(
                        cbc::Decryptor::<TdesEde3>::new_from_slices(key, &FIPS_IV).map_err(bad)?,
                    ))
                }
            }
            _ => Engine::Rc4 {
                initial: key.clone(),
                current: key.clone(),
                rc4: Box::new(rc4(key)?),
                uses: 0,
            },
        };
        Ok(Stream {
            method: keys.method,
            mac_key: keys.mac_key.clone(),
            engine,
            count: 0,
        })
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// How many PDUs this stream has encrypted or decrypted.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// [5.3.7.1] Before the 4,097th packet under a key, the next key.
    fn rc4_apply(&mut self, data: &mut [u8]) -> Result<()> {
        let method = self.method;
        if let Engine::Rc4 {
            initial,
            current,
            rc4: cipher,
            uses,
        } = &mut self.engine
        {
            if *uses >= KEY_UPDATE_INTERVAL {
                *current = update_key(method, initial, current);
                **cipher = rc4(current)?;
                *uses = 0;
            }
            cipher.apply_keystream(data);
            *uses += 1;
        }
        Ok(())
    }

    /// Encrypts and signs `plain` ([5.3.6.1]; `salted` for the [5.3.6.1.1] salted MAC; FIPS always counts).
    pub fn seal(&mut self, plain: &[u8], salted: bool) -> Result<Sealed> {
        let count = self.count;
        let sealed = match &mut self.engine {
            Engine::Rc4 { .. } => {
                let signature = mac(&self.mac_key, plain, salted.then_some(count));
                let mut data = plain.to_vec();
                self.rc4_apply(&mut data)?;
                Sealed {
                    signature,
                    data,
                    pad: 0,
                }
            }
            Engine::FipsEncrypt(enc) => {
                let signature = fips_mac(&self.mac_key, plain, count);
                let pad = (8 - plain.len() % 8) % 8;
                let mut data = plain.to_vec();
                data.resize(plain.len() + pad, 0);
                let (blocks, _) = InOutBuf::from(data.as_mut_slice()).into_chunks();
                enc.encrypt_blocks_inout(blocks);
                Sealed {
                    signature,
                    data,
                    // INVARIANT: pad < 8.
                    pad: pad as u8,
                }
            }
            Engine::FipsDecrypt(_) => {
                return Err(SecurityError::Crypto(
                    "a receiving stream cannot encrypt".to_owned(),
                ));
            }
        };
        self.count = self.count.wrapping_add(1);
        Ok(sealed)
    }

    /// Decrypts `data` and checks its `signature`; `pad` is the FIPS padding length from the header.
    pub fn open(
        &mut self,
        data: &[u8],
        signature: &[u8; 8],
        salted: bool,
        pad: u8,
    ) -> Result<Opened> {
        let count = self.count;
        let opened = match &mut self.engine {
            Engine::Rc4 { .. } => {
                let mut plain = data.to_vec();
                self.rc4_apply(&mut plain)?;
                let mac_ok = mac(&self.mac_key, &plain, salted.then_some(count)) == *signature;
                Opened {
                    data: plain,
                    mac_ok,
                }
            }
            Engine::FipsDecrypt(dec) => {
                if !data.len().is_multiple_of(8) {
                    return Err(SecurityError::Malformed(format!(
                        "{} bytes of fips data, not a multiple of the 8-byte block",
                        data.len()
                    )));
                }
                let pad = usize::from(pad);
                if pad > 7 || pad > data.len() {
                    return Err(SecurityError::Malformed(format!(
                        "a fips padding of {pad} bytes"
                    )));
                }
                let mut plain = data.to_vec();
                let (blocks, _) = InOutBuf::from(plain.as_mut_slice()).into_chunks();
                dec.decrypt_blocks_inout(blocks);
                plain.truncate(plain.len() - pad);
                let mac_ok = fips_mac(&self.mac_key, &plain, count) == *signature;
                Opened {
                    data: plain,
                    mac_ok,
                }
            }
            Engine::FipsEncrypt(_) => {
                return Err(SecurityError::Crypto(
                    "a sending stream cannot decrypt".to_owned(),
                ));
            }
        };
        self.count = self.count.wrapping_add(1);
        Ok(opened)
    }
}

fn rc4(key: &[u8]) -> Result<Rc4> {
    Rc4::new_from_slice(key)
        .map_err(|_| SecurityError::Crypto("an rc4 key of the wrong length".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdp_security::unhex;

    const DATA: &[u8] = b"rdptrace test vector: the data of one PDU";

    fn keys(method: Method) -> SessionKeys {
        let mut client = [0u8; 32];
        let mut server = [0u8; 32];
        for i in 0..32 {
            client[i] = i as u8;
            server[i] = 0xff - i as u8;
        }
        SessionKeys::derive(method, &client, &server)
    }

    /// [5.3.6.1] and [5.3.6.1.1]: the plain MAC and the salted MAC with counts 0 and 42, and RC4 across two
    /// PDUs. Expected values from an independent implementation of the formulas (Python's hashlib), not this
    /// code.
    #[test]
    fn rc4_seal_vectors() {
        let cases = [
            (
                Method::Rc4Bits128,
                "e30b604871f00872",
                "2db081c32df282fa",
                "55728872f0059a01",
                "b1a29faeb121b8140e9009217f30ffc1e548ebaa3950a2c6f7d9739b94f263f677d579eb31da24835c",
                "5bf638c8d15ff971dd13d51b480382211bfe7cff1794923fde0f7c62a74742bc2b91e7d24e0e9d6a43",
            ),
            (
                Method::Rc4Bits56,
                "435c82f9c608ef59",
                "1961fc89a9dab025",
                "f31dbd88bb12fcc7",
                "a6a6c3c777ef8e5d4a614ea1e8e907d6c4dd59746bcfdea27f02b83ad0ac2eb40ac9178bf0b82116e5",
                "24d63a597c726e57e5258660efeb2bd0fa3c9150195ea268137f1b44c937e18ef8a1d59a77446cf822",
            ),
            (
                Method::Rc4Bits40,
                "51148ece02618006",
                "16c0e98305899a23",
                "e2c5a0139e37e8c5",
                "bf0615fd02acc920f400c61982b286e1d0001d124ecda2c6f650b3f3c44857b872a7edfa78eb3a5aac",
                "d5be9176a1dbcc730209f70f9ac87bec307e1fa2a9034a894070523a7df59093693af86d4453252ccf",
            ),
        ];
        for (method, plain_mac, salted0, salted42, first, second) in cases {
            let keys = keys(method);
            assert_eq!(mac(&keys.mac_key, DATA, None).to_vec(), unhex(plain_mac));
            assert_eq!(mac(&keys.mac_key, DATA, Some(0)).to_vec(), unhex(salted0));
            assert_eq!(mac(&keys.mac_key, DATA, Some(42)).to_vec(), unhex(salted42));

            let mut sealer = Stream::sealer(&keys, Direction::ClientToServer).unwrap();
            let one = sealer.seal(DATA, false).unwrap();
            assert_eq!(one.data, unhex(first), "{method}");
            assert_eq!(one.signature.to_vec(), unhex(plain_mac));
            let two = sealer.seal(DATA, true).unwrap();
            assert_eq!(two.data, unhex(second), "{method}");
            // The second PDU's salt is 1: one encryption before it.
            assert_eq!(two.signature, mac(&keys.mac_key, DATA, Some(1)));

            let mut opener = Stream::opener(&keys, Direction::ClientToServer).unwrap();
            let back = opener.open(&one.data, &one.signature, false, 0).unwrap();
            assert_eq!((back.data.as_slice(), back.mac_ok), (DATA, true));
            let back = opener.open(&two.data, &two.signature, true, 0).unwrap();
            assert_eq!((back.data.as_slice(), back.mac_ok), (DATA, true));
        }
    }

    /// [5.3.7.1] The 4,097th packet is encrypted under the first updated key (independent implementation).
    #[test]
    fn key_update_after_4096_packets() {
        let cases = [
            (
                Method::Rc4Bits128,
                "c167c60ba8a2cd84b05bdefda186763a24149185fcc1535aefe2489648a5234330a5cb35339945dd50",
            ),
            (
                Method::Rc4Bits56,
                "f393d9e4c0c7602c88dee0eaa3997bfd2d0c101f5f81f6acf9b68b471e4cc493b95606a1e5315ad101",
            ),
            (
                Method::Rc4Bits40,
                "d859c0a7c97b9542c71ec75e6eee99c89deac3c72ab587d2275dba21a24b545a8cafacd8765f9d344f",
            ),
        ];
        for (method, expected) in cases {
            let keys = keys(method);
            let mut sealer = Stream::sealer(&keys, Direction::ClientToServer).unwrap();
            let mut opener = Stream::opener(&keys, Direction::ClientToServer).unwrap();
            for _ in 0..KEY_UPDATE_INTERVAL {
                let s = sealer.seal(b"x", true).unwrap();
                assert!(opener.open(&s.data, &s.signature, true, 0).unwrap().mac_ok);
            }
            let s = sealer.seal(DATA, true).unwrap();
            assert_eq!(s.data, unhex(expected), "{method}");
            // The salt keeps counting across the update.
            assert_eq!(s.signature, mac(&keys.mac_key, DATA, Some(4096)));
            let back = opener.open(&s.data, &s.signature, true, 0).unwrap();
            assert_eq!((back.data.as_slice(), back.mac_ok), (DATA, true));
        }
    }

    /// [5.3.6.2] FIPS: padding, the counted HMAC and CBC chained across PDUs (independent implementation with
    /// Python's cryptography package).
    #[test]
    fn fips_seal_vectors() {
        let keys = keys(Method::Fips);
        let pdus: [(&[u8], u8, &str, &str); 3] = [
            (
                DATA,
                7,
                "23bb70b14ce1a321",
                "47ea85a6cacb11f2f3030ddb0073f47037f73fb20f02cbc96a1ead553766ba96ec21725aeaa4a7caf55058465fe44bb1",
            ),
            (
                b"second pdu, exactly 24 b",
                0,
                "9627eaed10cbed90",
                "59f1cbf7375a06a067a79a0ae4d5a50c9480a619f63dc66a",
            ),
            (b"x", 7, "ce7b3178a0488e97", "ca7152939809c90b"),
        ];
        let mut sealer = Stream::sealer(&keys, Direction::ClientToServer).unwrap();
        let mut opener = Stream::opener(&keys, Direction::ClientToServer).unwrap();
        for (plain, pad, sig, data) in pdus {
            let s = sealer.seal(plain, false).unwrap();
            assert_eq!(
                (s.pad, s.signature.to_vec(), s.data.clone()),
                (pad, unhex(sig), unhex(data))
            );
            let back = opener.open(&s.data, &s.signature, false, s.pad).unwrap();
            assert_eq!((back.data.as_slice(), back.mac_ok), (plain, true));
        }
    }

    #[test]
    fn a_wrong_mac_is_reported_and_bad_fips_input_refused() {
        let rc4 = keys(Method::Rc4Bits128);
        let mut sealer = Stream::sealer(&rc4, Direction::ServerToClient).unwrap();
        let mut opener = Stream::opener(&rc4, Direction::ServerToClient).unwrap();
        let s = sealer.seal(DATA, true).unwrap();
        // Checked as a plain MAC, the salted one does not verify; the data still decrypts.
        let back = opener.open(&s.data, &s.signature, false, 0).unwrap();
        assert_eq!((back.data.as_slice(), back.mac_ok), (DATA, false));

        let fips = keys(Method::Fips);
        let mut opener = Stream::opener(&fips, Direction::ServerToClient).unwrap();
        assert!(opener.open(&[0; 7], &[0; 8], false, 0).is_err());
        assert!(opener.open(&[0; 8], &[0; 8], false, 9).is_err());
    }
}
