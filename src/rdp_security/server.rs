//! The server side of Standard RDP Security, between the wire and a server that only knows encryption level
//! NONE (ironrdp's acceptor).
//!
//! - Incoming, the client's encryptionMethods in the MCS Connect Initial decide the method ([5.3.2]); the
//!   Security Exchange PDU ([2.2.1.10]) is consumed here (its client random decrypted with the server's key,
//!   [5.3.4.2]); every PDU after it is decrypted and checked, its security header stripped to what level NONE
//!   carries.
//! - Outgoing, the Server Security Data of the MCS Connect Response gets the method, the level, the server
//!   random and a proprietary certificate ([2.2.1.4.3]); every PDU after the Security Exchange is encrypted and
//!   signed when the level asks for it ([5.3.6]), with the MAC the client uses (plain or salted).

use rsa::RsaPrivateKey;

use super::cert::{PublicKey, decrypt_client_random, proprietary_certificate};
use super::cipher::{Direction, Stream};
use super::client::frames;
use super::keys::{RANDOM_LEN, SessionKeys};
use super::pdu::{
    CS_SECURITY, FASTPATH_ENCRYPTED, FASTPATH_SECURE_CHECKSUM, FastPath, FipsInfo, McsConnect,
    PDU_TYPE_FLAGS, SC_SECURITY, SEC_ENCRYPT, SEC_EXCHANGE_PKT, SEC_LICENSE_ENCRYPT,
    SEC_LICENSE_PKT, SEC_SECURE_CHECKSUM, SecurityHeader, SendData, ServerSecurityData,
    is_fast_path, read_security_exchange, starts_with_security_header,
};
use super::{Level, Method, Negotiated, Result, SecurityError};
use crate::wire::Reader;

struct Secured {
    negotiated: Negotiated,
    sealer: Stream,
    opener: Stream,
    /// The client takes encrypted licensing PDUs (SEC_LICENSE_ENCRYPT_SC in its Security Exchange).
    license_encrypt: bool,
    /// The client signs with the salted MAC: the server answers in kind.
    salted: bool,
}

enum State {
    /// Before the MCS Connect Initial.
    Negotiating,
    /// The method is chosen; the Connect Response and the Security Exchange are to come.
    Selected(Method),
    Secured(Box<Secured>),
}

/// The server side; sans-IO.
pub struct ServerShim {
    level: Level,
    /// The methods the server implements ([2.2.1.3.3] flags).
    offered: u32,
    key: Box<RsaPrivateKey>,
    certificate: Vec<u8>,
    server_random: [u8; RANDOM_LEN],
    state: State,
}

impl core::fmt::Debug for ServerShim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerShim")
            .field("level", &self.level)
            .field("negotiated", &self.negotiated())
            .finish_non_exhaustive()
    }
}

impl ServerShim {
    /// A server at `level` that implements the methods in `offered`, with `key` in its proprietary certificate.
    pub fn new(
        level: Level,
        offered: u32,
        key: RsaPrivateKey,
        server_random: [u8; RANDOM_LEN],
    ) -> Result<ServerShim> {
        if level == Level::None {
            return Err(SecurityError::Unsupported(
                "encryption level none needs no standard rdp security shim".to_owned(),
            ));
        }
        let public = PublicKey::from_rsa(&key.to_public_key())?;
        let certificate = proprietary_certificate(&public)?;
        Ok(ServerShim {
            level,
            offered,
            key: Box::new(key),
            certificate,
            server_random,
            state: State::Negotiating,
        })
    }

    pub fn negotiated(&self) -> Option<Negotiated> {
        match &self.state {
            State::Secured(s) => Some(s.negotiated),
            _ => None,
        }
    }

    /// [5.3.2] The method for a client that offers `methods`, or why there is none ([5.3.2.1]).
    fn select(&self, methods: u32) -> Result<Method> {
        let common = methods & self.offered;
        let method = match self.level {
            Level::Fips => (common & Method::FIPS != 0).then_some(Method::Fips),
            Level::High => (common & Method::BITS_128 != 0).then_some(Method::Rc4Bits128),
            Level::Low | Level::ClientCompatible => match Method::strongest_rc4(methods) {
                Some(m) if self.offered & m.wire() != 0 => Some(m),
                Some(_) => None,
                None => (common & Method::FIPS != 0).then_some(Method::Fips),
            },
            Level::None => None,
        };
        method.ok_or_else(|| {
            SecurityError::Malformed(format!(
                "the client offers encryption methods 0x{methods:08x}, none of which encryption level {:?} with methods 0x{:08x} accepts ([5.3.2.1])",
                self.level, self.offered
            ))
        })
    }

    /// One frame from the client, as the server must read it; `None` when the frame was the Security Exchange.
    pub fn incoming(&mut self, frame: &[u8]) -> Result<Option<Vec<u8>>> {
        match &mut self.state {
            State::Negotiating => {
                if let Some(connect) = McsConnect::parse(frame) {
                    let connect = connect?;
                    let methods = match connect.block(CS_SECURITY) {
                        Some(b) => Reader::new(b).u32_le("encryptionMethods")?,
                        None => 0,
                    };
                    let method = self.select(methods)?;
                    self.state = State::Selected(method);
                }
                Ok(Some(frame.to_vec()))
            }
            State::Selected(method) => {
                let method = *method;
                let Some(send) = SendData::parse(frame) else {
                    return Ok(Some(frame.to_vec()));
                };
                let send = send?;
                let (header, body) = SecurityHeader::read(send.data, false)?;
                if header.flags & SEC_EXCHANGE_PKT == 0 {
                    return Err(SecurityError::Malformed(
                        "the client sent data before the security exchange pdu".to_owned(),
                    ));
                }
                let encrypted = read_security_exchange(body)?;
                let client_random = decrypt_client_random(&self.key, encrypted)?;
                let keys = SessionKeys::derive(method, &client_random, &self.server_random);
                self.state = State::Secured(Box::new(Secured {
                    negotiated: Negotiated {
                        method,
                        level: self.level,
                    },
                    sealer: Stream::sealer(&keys, Direction::ServerToClient)?,
                    opener: Stream::opener(&keys, Direction::ClientToServer)?,
                    license_encrypt: header.flags & SEC_LICENSE_ENCRYPT != 0,
                    salted: false,
                }));
                Ok(None)
            }
            State::Secured(s) => s.incoming(frame).map(Some),
        }
    }

    /// What the server wrote (whole frames), as the wire must carry it.
    pub fn outgoing(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(bytes.len() + 32);
        for frame in frames(bytes)? {
            match &mut self.state {
                State::Selected(method) => match McsConnect::parse(frame) {
                    Some(connect) => {
                        let connect = connect?;
                        let data = ServerSecurityData {
                            method: method.wire(),
                            level: self.level.wire(),
                            server_random: &self.server_random,
                            certificate: &self.certificate,
                        };
                        out.extend_from_slice(&connect.with_block(SC_SECURITY, &data.encode())?);
                    }
                    None => out.extend_from_slice(frame),
                },
                State::Secured(s) => s.outgoing(frame, &mut out)?,
                State::Negotiating => out.extend_from_slice(frame),
            }
        }
        Ok(out)
    }
}

impl Secured {
    fn fips(&self) -> bool {
        self.negotiated.method == Method::Fips
    }

    fn incoming(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        if is_fast_path(frame) {
            let pdu = FastPath::parse(frame, self.fips())?;
            let Some(signature) = pdu.signature else {
                return Ok(frame.to_vec());
            };
            let salted = pdu.flags & FASTPATH_SECURE_CHECKSUM != 0;
            let opened =
                self.opener
                    .open(pdu.data, &signature, salted, pdu.fips.map_or(0, |f| f.pad))?;
            check_mac(opened.mac_ok, salted)?;
            let plain = FastPath {
                header: pdu.header,
                flags: 0,
                fips: None,
                signature: None,
                data: &opened.data,
            };
            return plain.encode();
        }
        let Some(send) = SendData::parse(frame) else {
            return Ok(frame.to_vec());
        };
        let send = send?;
        let (header, body) = SecurityHeader::read(send.data, self.fips())?;
        let flags = header.flags & !(SEC_ENCRYPT | SEC_SECURE_CHECKSUM);
        let plain = match header.signature {
            Some(signature) => {
                let salted = header.flags & SEC_SECURE_CHECKSUM != 0;
                self.salted = salted;
                let opened =
                    self.opener
                        .open(body, &signature, salted, header.fips.map_or(0, |f| f.pad))?;
                check_mac(opened.mac_ok, salted)?;
                opened.data
            }
            None if flags & SEC_LICENSE_PKT != 0 => body.to_vec(),
            None => {
                return Err(SecurityError::Malformed(format!(
                    "an unencrypted client pdu (security flags 0x{:04x}) where encryption is in force ([5.3.6])",
                    header.flags
                )));
            }
        };
        let user_data = if flags & PDU_TYPE_FLAGS != 0 {
            SecurityHeader::basic(flags).write(&plain)
        } else {
            plain
        };
        send.encode(&user_data)
    }

    fn outgoing(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let encrypts = self.negotiated.level.server_encrypts();
        if is_fast_path(frame) {
            if !encrypts {
                out.extend_from_slice(frame);
                return Ok(());
            }
            let pdu = FastPath::parse(frame, false)?;
            let sealed = self.sealer.seal(pdu.data, self.salted)?;
            let mut flags = FASTPATH_ENCRYPTED;
            if self.salted {
                flags |= FASTPATH_SECURE_CHECKSUM;
            }
            let encrypted = FastPath {
                header: pdu.header,
                flags,
                fips: self.fips().then(|| FipsInfo::new(sealed.pad)),
                signature: Some(sealed.signature),
                data: &sealed.data,
            };
            out.extend_from_slice(&encrypted.encode()?);
            return Ok(());
        }
        let Some(send) = SendData::parse(frame) else {
            out.extend_from_slice(frame);
            return Ok(());
        };
        let send = send?;
        let (mut flags, body) = if starts_with_security_header(send.data) {
            let (h, body) = SecurityHeader::read(send.data, false)?;
            (h.flags, body)
        } else {
            (0, send.data)
        };
        let license = flags & SEC_LICENSE_PKT != 0;
        if license {
            // [2.2.8.1.1.2.1] SEC_LICENSE_ENCRYPT_CS: the server takes encrypted licensing PDUs.
            flags |= SEC_LICENSE_ENCRYPT;
        }
        let seal = if license {
            encrypts && self.license_encrypt
        } else {
            encrypts
        };
        let user_data = if seal {
            let sealed = self.sealer.seal(body, self.salted)?;
            let mut flags = flags | SEC_ENCRYPT;
            if self.salted && !self.fips() {
                flags |= SEC_SECURE_CHECKSUM;
            }
            SecurityHeader {
                flags,
                flags_hi: 0,
                fips: self.fips().then(|| FipsInfo::new(sealed.pad)),
                signature: Some(sealed.signature),
            }
            .write(&sealed.data)
        } else {
            // [2.2.8.1.1.2] Level Low: a basic header on everything the server sends.
            SecurityHeader::basic(flags).write(body)
        };
        out.extend_from_slice(&send.encode(&user_data)?);
        Ok(())
    }
}

fn check_mac(ok: bool, salted: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(SecurityError::Malformed(format!(
            "the {} mac of a client pdu does not verify ([5.3.6.1])",
            if salted { "salted" } else { "plain" }
        )))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rdp_security::client::ClientShim;

    /// A Send Data Request frame on the I/O channel.
    pub(crate) fn request(data: &[u8]) -> Vec<u8> {
        let send = SendData {
            head: &[0x03, 0x00, 0x00, 0x00, 0x02, 0xf0, 0x80],
            indication: false,
            initiator: 6,
            channel: 1003,
            control: 0x70,
            data: &[],
        };
        send.encode(data).unwrap()
    }

    pub(crate) fn indication(data: &[u8]) -> Vec<u8> {
        let send = SendData {
            head: &[0x03, 0x00, 0x00, 0x00, 0x02, 0xf0, 0x80],
            indication: true,
            initiator: 1002,
            channel: 1003,
            control: 0x70,
            data: &[],
        };
        send.encode(data).unwrap()
    }

    /// The client shim (client random 0x17...) against the server shim (server random 0x42...), with the
    /// [4.1.4] Connect Response standing for the acceptor's (its security data replaced by the server shim's
    /// own); also the server's key and the Connect Response as it went on the wire.
    pub(crate) fn pair(level: Level, offered: u32) -> (ClientShim, ServerShim) {
        let (client, server, _, _) = pair_on_wire(level, offered, false);
        (client, server)
    }

    pub(crate) fn pair_on_wire(
        level: Level,
        offered: u32,
        salted: bool,
    ) -> (ClientShim, ServerShim, RsaPrivateKey, Vec<u8>) {
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let key = RsaPrivateKey::new_unchecked(&mut rng, 512).unwrap();
        let mut server = ServerShim::new(level, offered, key.clone(), [0x42; 32]).unwrap();
        let mut client = ClientShim::new([0x17; 32]).with_salted_mac(salted);
        // The client's Connect Initial: rdptrace's own client writes encryptionMethods 0; the shim offers all.
        let initial = crate::rdp_security::unhex(CONNECT_INITIAL);
        let wire = client.outgoing(&initial).unwrap();
        let to_acceptor = server.incoming(&wire).unwrap().unwrap();
        assert_eq!(to_acceptor, wire);
        let response =
            crate::rdp_security::unhex(crate::rdp_security::pdu::tests::SPEC_CONNECT_RESPONSE);
        let none = McsConnect::parse(&response)
            .unwrap()
            .unwrap()
            .with_block(SC_SECURITY, &ServerSecurityData::none().encode())
            .unwrap();
        let wire = server.outgoing(&none).unwrap();
        let to_connector = client.incoming(&wire).unwrap();
        assert_eq!(to_connector.frame, none);
        assert!(to_connector.established.is_some());
        (client, server, key, wire)
    }

    /// An MCS Connect Initial with a Client Security Data block (encryptionMethods 0), as ironrdp writes it.
    const CONNECT_INITIAL: &str = "
        03 00 00 3c 02 f0 80 7f 65 32 04 01 01 04 01 01 01 01 ff 30 00 30 00 30 00 04
        21 00 05 00 14 7c 00 01 19 00 08 00 10 00 01 c0 00 44 75 63 61 0c 02 c0 0c 00
        00 00 00 00 00 00 00 00";

    #[test]
    fn client_and_server_shims_talk() {
        for (level, offered, method, salted) in [
            (
                Level::ClientCompatible,
                Method::ALL,
                Method::Rc4Bits128,
                false,
            ),
            (
                Level::ClientCompatible,
                Method::ALL,
                Method::Rc4Bits128,
                true,
            ),
            (Level::High, Method::ALL, Method::Rc4Bits128, false),
            (
                Level::ClientCompatible,
                Method::BITS_56 | Method::BITS_128,
                Method::Rc4Bits128,
                true,
            ),
            (Level::Fips, Method::FIPS, Method::Fips, false),
            (Level::Low, Method::ALL, Method::Rc4Bits128, true),
        ] {
            let (mut client, mut server, _, _) = pair_on_wire(level, offered, salted);
            // Client Info: a basic header SEC_INFO_PKT, then its body.
            let info = request(
                &SecurityHeader::basic(crate::rdp_security::pdu::SEC_INFO_PKT)
                    .write(b"client info body"),
            );
            let wire = client.outgoing(&info).unwrap();
            // Two frames: the Security Exchange, then the encrypted Client Info.
            let parts = frames(&wire).unwrap();
            assert_eq!(parts.len(), 2);
            assert!(server.incoming(parts[0]).unwrap().is_none());
            assert_eq!(
                server.negotiated(),
                Some(Negotiated { method, level }),
                "{level:?}"
            );
            assert_eq!(client.negotiated(), Some(Negotiated { method, level }));
            let sd = SendData::parse(parts[1]).unwrap().unwrap();
            assert_ne!(sd.data, &info[13..], "the client info goes encrypted");
            assert_eq!(server.incoming(parts[1]).unwrap().unwrap(), info);

            // A licensing PDU from the server (the client asked for encrypted ones), then share control PDUs.
            let license = indication(
                &SecurityHeader::basic(SEC_LICENSE_PKT).write(b"\xff\x02\x10\x00licence"),
            );
            let wire = server.outgoing(&license).unwrap();
            let back = client.incoming(&wire).unwrap();
            assert!(!back.mac_failed);
            assert_eq!(back.frame, license);
            // The server said it takes encrypted licensing PDUs (SEC_LICENSE_ENCRYPT_CS): the client's go
            // encrypted, at every level (client-to-server data is encrypted from Low up).
            let answer =
                request(&SecurityHeader::basic(SEC_LICENSE_PKT).write(b"\x13\x03\x08\x00answer"));
            let wire = client.outgoing(&answer).unwrap();
            let sd = SendData::parse(&wire).unwrap().unwrap();
            let (h, _) = SecurityHeader::read(sd.data, method == Method::Fips).unwrap();
            assert_ne!(h.flags & SEC_ENCRYPT, 0, "{level:?}");
            assert_eq!(server.incoming(&wire).unwrap().unwrap(), answer);
            for n in 0..20u8 {
                let demand = indication(&[0x20, 0x00, 0x11, 0x00, 0xea, 0x03, n, n, n]);
                let wire = server.outgoing(&demand).unwrap();
                // The server answers with the MAC kind the client uses.
                let sd = SendData::parse(&wire).unwrap().unwrap();
                let (h, _) = SecurityHeader::read(sd.data, method == Method::Fips).unwrap();
                let encrypted = level.server_encrypts();
                assert_eq!(h.flags & SEC_ENCRYPT != 0, encrypted, "{level:?}");
                assert_eq!(
                    h.flags & SEC_SECURE_CHECKSUM != 0,
                    encrypted && salted && method != Method::Fips
                );
                let back = client.incoming(&wire).unwrap();
                assert!(!back.mac_failed);
                assert_eq!(back.frame, demand);
                let confirm = request(&[0x20, 0x00, 0x13, 0x00, 0xef, 0x03, n]);
                let wire = client.outgoing(&confirm).unwrap();
                assert_eq!(server.incoming(&wire).unwrap().unwrap(), confirm);
            }
            // Fast-path output.
            let fast = FastPath {
                header: 0,
                flags: 0,
                fips: None,
                signature: None,
                data: b"update",
            }
            .encode()
            .unwrap();
            let wire = server.outgoing(&fast).unwrap();
            assert_eq!(client.incoming(&wire).unwrap().frame, fast);
        }
    }

    #[test]
    fn a_tampered_pdu_is_refused_and_no_common_method_is_an_error() {
        let (mut client, mut server) = pair(Level::ClientCompatible, Method::ALL);
        let info = request(
            &SecurityHeader::basic(crate::rdp_security::pdu::SEC_INFO_PKT).write(b"client info"),
        );
        let wire = client.outgoing(&info).unwrap();
        let parts = frames(&wire).unwrap();
        assert!(server.incoming(parts[0]).unwrap().is_none());
        let mut tampered = parts[1].to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert!(server.incoming(&tampered).is_err());

        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let key = RsaPrivateKey::new_unchecked(&mut rng, 512).unwrap();
        let server = ServerShim::new(Level::Fips, Method::FIPS, key, [0; 32]).unwrap();
        assert!(server.select(Method::BITS_128).is_err());
        assert_eq!(server.select(Method::ALL).unwrap(), Method::Fips);
    }
}
