//! The client side of Standard RDP Security, between the wire and a client that only knows encryption level
//! NONE (ironrdp's connector).
//!
//! - Outgoing, the MCS Connect Initial advertises every method rdptrace implements ([2.2.1.3.3]); before the
//!   first PDU on a channel (the Client Info) goes the Security Exchange PDU ([2.2.1.10]); every Send Data
//!   Request after it is encrypted and signed ([5.3.6], [5.3.8]).
//! - Incoming, the server's Security Data in the MCS Connect Response ([2.2.1.4.3]) is replaced by "none" (the
//!   original bytes stay on the wire for the dissector), and every PDU is decrypted and checked, its security
//!   header stripped to what level NONE carries: nothing, or a basic header for the PDUs that always have one
//!   (licensing and the like, [5.3.8]).

use super::cert::{ServerCertificate, encrypt_client_random};
use super::cipher::{Direction, Stream};
use super::keys::{RANDOM_LEN, SessionKeys};
use super::pdu::{
    CS_SECURITY, FASTPATH_ENCRYPTED, FASTPATH_SECURE_CHECKSUM, FastPath, FipsInfo, McsConnect,
    PDU_TYPE_FLAGS, SC_SECURITY, SEC_ENCRYPT, SEC_LICENSE_ENCRYPT, SEC_LICENSE_PKT,
    SEC_SECURE_CHECKSUM, SecurityHeader, SendData, ServerSecurityData, is_fast_path,
    license_request_with_certificate, security_exchange, starts_with_security_header,
};
use super::{Level, Method, Negotiated, Result, SecurityError};
use crate::wire::frame;

/// What the server's certificate and choice were, once the Connect Response is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    pub negotiated: Negotiated,
    /// `proprietary`, `x509 chain of 2`, ...
    pub certificate: String,
    pub key_bits: usize,
    /// [5.3.3.1.3] For a proprietary certificate, whether its signature verifies.
    pub signature_valid: Option<bool>,
}

/// One frame from the server as the client must read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub frame: Vec<u8>,
    /// Set on the MCS Connect Response that turned encryption on.
    pub established: Option<Established>,
    /// The frame was encrypted and its MAC did not verify.
    pub mac_failed: bool,
}

struct Secured {
    negotiated: Negotiated,
    salted: bool,
    /// The Server Security Data's certificate, for a License Request that comes without one.
    certificate: Vec<u8>,
    encrypted_random: Vec<u8>,
    exchange_sent: bool,
    sealer: Stream,
    opener: Stream,
    /// The server takes encrypted licensing PDUs (SEC_LICENSE_ENCRYPT_CS on its own, [2.2.8.1.1.2.1]).
    license_encrypt: bool,
}

enum State {
    /// Before the MCS Connect Response.
    Negotiating,
    /// The server chose no encryption: every byte passes unchanged.
    Plain,
    Secured(Box<Secured>),
}

/// The client side; sans-IO.
pub struct ClientShim {
    client_random: [u8; RANDOM_LEN],
    /// Sign with the salted MAC ([5.3.6.1.1]) rather than the plain one.
    salted: bool,
    state: State,
}

impl core::fmt::Debug for ClientShim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientShim")
            .field("negotiated", &self.negotiated())
            .finish_non_exhaustive()
    }
}

/// Cuts `bytes` (what a peer wrote, whole frames) into TPKT and fast-path frames.
pub(crate) fn frames(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut split = frame::split(bytes, frame::rdp);
    let out: Vec<&[u8]> = split.by_ref().map(|(_, f)| f).collect();
    if !split.rest().is_empty() {
        return Err(SecurityError::Malformed(format!(
            "{} bytes that do not frame as tpkt or fast-path",
            split.rest().len()
        )));
    }
    Ok(out)
}

impl ClientShim {
    /// A client that will send `client_random` ([5.3.4]) if the server turns encryption on.
    pub fn new(client_random: [u8; RANDOM_LEN]) -> ClientShim {
        ClientShim {
            client_random,
            salted: false,
            state: State::Negotiating,
        }
    }

    /// Signs with the salted MAC ([5.3.6.1.1], SEC_SECURE_CHECKSUM) from the Client Info on, as FreeRDP does,
    /// instead of the plain MAC ([5.3.6.1]). The salted MAC is meant for peers whose General Capability Sets
    /// both carry ENC_SALTED_CHECKSUM, which are exchanged after the Client Info; some servers check the plain
    /// MAC only (Debian's xrdp 0.9.21 since its 2026 security update drops the connection otherwise).
    pub fn with_salted_mac(mut self, salted: bool) -> ClientShim {
        self.salted = salted;
        self
    }

    /// The method and level in force, once the server turned encryption on.
    pub fn negotiated(&self) -> Option<Negotiated> {
        match &self.state {
            State::Secured(s) => Some(s.negotiated),
            _ => None,
        }
    }

    /// Bytes the client wrote (whole frames), as the wire must carry them.
    pub fn outgoing(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(bytes.len() + 32);
        for frame in frames(bytes)? {
            self.outgoing_frame(frame, &mut out)?;
        }
        Ok(out)
    }

    fn outgoing_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &mut self.state {
            State::Negotiating => match McsConnect::parse(frame) {
                Some(connect) => {
                    let connect = connect?;
                    // [2.2.1.3.3] encryptionMethods: every method rdptrace implements; extEncryptionMethods kept.
                    let ext = connect
                        .block(CS_SECURITY)
                        .and_then(|b| b.get(4..8))
                        .unwrap_or(&[0; 4])
                        .to_vec();
                    let mut body = Method::ALL.to_le_bytes().to_vec();
                    body.extend_from_slice(&ext);
                    if connect.block(CS_SECURITY).is_some() {
                        out.extend_from_slice(&connect.with_block(CS_SECURITY, &body)?);
                    } else {
                        out.extend_from_slice(frame);
                    }
                }
                None => out.extend_from_slice(frame),
            },
            State::Plain => out.extend_from_slice(frame),
            State::Secured(s) => s.outgoing(frame, out)?,
        }
        Ok(())
    }

    /// One frame from the server, as the client must read it.
    pub fn incoming(&mut self, frame: &[u8]) -> Result<Incoming> {
        let mut incoming = Incoming {
            frame: Vec::new(),
            established: None,
            mac_failed: false,
        };
        match &mut self.state {
            State::Negotiating => match McsConnect::parse(frame) {
                Some(connect) => {
                    let connect = connect?;
                    let Some(block) = connect.block(SC_SECURITY) else {
                        incoming.frame = frame.to_vec();
                        self.state = State::Plain;
                        return Ok(incoming);
                    };
                    let data = ServerSecurityData::parse(block)?;
                    if data.method == 0 && data.level == 0 {
                        incoming.frame = frame.to_vec();
                        self.state = State::Plain;
                        return Ok(incoming);
                    }
                    let (mut secured, established) = Secured::new(&data, &self.client_random)?;
                    secured.salted = self.salted;
                    incoming.frame =
                        connect.with_block(SC_SECURITY, &ServerSecurityData::none().encode())?;
                    incoming.established = Some(established);
                    self.state = State::Secured(Box::new(secured));
                }
                None => incoming.frame = frame.to_vec(),
            },
            State::Plain => incoming.frame = frame.to_vec(),
            State::Secured(s) => s.incoming(frame, &mut incoming)?,
        }
        Ok(incoming)
    }
}

impl Secured {
    fn new(
        data: &ServerSecurityData<'_>,
        client_random: &[u8; 32],
    ) -> Result<(Secured, Established)> {
        let method = Method::from_wire(data.method).ok_or_else(|| {
            SecurityError::Malformed(format!(
                "the server selected encryptionMethod 0x{:08x}, which is none of the methods the client offered",
                data.method
            ))
        })?;
        let level = Level::from_wire(data.level).ok_or_else(|| {
            SecurityError::Malformed(format!(
                "the server selected encryptionLevel {}",
                data.level
            ))
        })?;
        if level == Level::None {
            return Err(SecurityError::Malformed(format!(
                "the server selected {method} at encryption level none ([5.3.2]: both are zero or neither)"
            )));
        }
        let server_random: &[u8; RANDOM_LEN] = data.server_random.try_into().map_err(|_| {
            SecurityError::Malformed(format!(
                "a server random of {} bytes (32 expected)",
                data.server_random.len()
            ))
        })?;
        let certificate = ServerCertificate::parse(data.certificate)?;
        let key = certificate.public_key()?;
        let encrypted_random = encrypt_client_random(&key, client_random)?;
        let keys = SessionKeys::derive(method, client_random, server_random);
        let negotiated = Negotiated { method, level };
        let established = Established {
            negotiated,
            certificate: certificate.describe(),
            key_bits: key.bits(),
            signature_valid: certificate.signature_valid(),
        };
        Ok((
            Secured {
                negotiated,
                salted: false,
                certificate: data.certificate.to_vec(),
                encrypted_random,
                exchange_sent: false,
                sealer: Stream::sealer(&keys, Direction::ClientToServer)?,
                opener: Stream::opener(&keys, Direction::ServerToClient)?,
                license_encrypt: false,
            },
            established,
        ))
    }

    fn fips(&self) -> bool {
        self.negotiated.method == Method::Fips
    }

    /// The security header of a sealed PDU.
    fn header(&self, flags: u16, sealed: &super::cipher::Sealed) -> SecurityHeader {
        let checksum = if self.salted && !self.fips() {
            SEC_SECURE_CHECKSUM
        } else {
            0
        };
        SecurityHeader {
            flags: flags | SEC_ENCRYPT | checksum,
            flags_hi: 0,
            fips: self.fips().then(|| FipsInfo::new(sealed.pad)),
            signature: Some(sealed.signature),
        }
    }

    fn outgoing(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if is_fast_path(frame) {
            let pdu = FastPath::parse(frame, false)?;
            let sealed = self.sealer.seal(pdu.data, self.salted)?;
            let fips = self.fips().then(|| FipsInfo::new(sealed.pad));
            let mut flags = FASTPATH_ENCRYPTED;
            if self.salted && !self.fips() {
                flags |= FASTPATH_SECURE_CHECKSUM;
            }
            let encrypted = FastPath {
                header: pdu.header,
                flags,
                fips,
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
        if !self.exchange_sent {
            // [2.2.1.10] The Security Exchange goes before the Client Info, on the same channel.
            out.extend_from_slice(&send.encode(&security_exchange(&self.encrypted_random))?);
            self.exchange_sent = true;
        }
        let (flags, body) = if starts_with_security_header(send.data) {
            let (h, body) = SecurityHeader::read(send.data, false)?;
            (h.flags, body)
        } else {
            (0, send.data)
        };
        if flags & SEC_LICENSE_PKT != 0 && !self.license_encrypt {
            // [5.4.2.4] Licensing PDUs are encrypted only for a server that said it takes them encrypted.
            out.extend_from_slice(frame);
            return Ok(());
        }
        // [5.3.6.1.1] The salted MAC is chosen by capability flags exchanged after the Client Info; the plain
        // MAC ([5.3.6.1]) is what a header without SEC_SECURE_CHECKSUM announces, and every server checks it
        // (see `with_salted_mac`).
        let sealed = self.sealer.seal(body, self.salted)?;
        let user_data = self.header(flags, &sealed).write(&sealed.data);
        out.extend_from_slice(&send.encode(&user_data)?);
        Ok(())
    }

    fn incoming(&mut self, frame: &[u8], incoming: &mut Incoming) -> Result<()> {
        if is_fast_path(frame) {
            let pdu = FastPath::parse(frame, self.fips())?;
            let Some(signature) = pdu.signature else {
                incoming.frame = frame.to_vec();
                return Ok(());
            };
            let salted = pdu.flags & FASTPATH_SECURE_CHECKSUM != 0;
            let pad = pdu.fips.map_or(0, |f| f.pad);
            let opened = self.opener.open(pdu.data, &signature, salted, pad)?;
            incoming.mac_failed = !opened.mac_ok;
            let plain = FastPath {
                header: pdu.header,
                flags: 0,
                fips: None,
                signature: None,
                data: &opened.data,
            };
            incoming.frame = plain.encode()?;
            return Ok(());
        }
        let Some(send) = SendData::parse(frame) else {
            incoming.frame = frame.to_vec();
            return Ok(());
        };
        let send = send?;
        // [2.2.8.1.1.2] Above level NONE every PDU of the server has a security header (flagsHi may hold
        // anything: xrdp puts the licensing wMsgSize there).
        let (header, body) = SecurityHeader::read(send.data, self.fips())?;
        // What only means something under Standard RDP Security goes; the PDU type flags stay.
        let flags = header.flags & !(SEC_ENCRYPT | SEC_SECURE_CHECKSUM | SEC_LICENSE_ENCRYPT);
        if header.flags & SEC_LICENSE_PKT != 0 && header.flags & SEC_LICENSE_ENCRYPT != 0 {
            self.license_encrypt = true;
        }
        let plain = match header.signature {
            Some(signature) => {
                let salted = header.flags & SEC_SECURE_CHECKSUM != 0;
                let pad = header.fips.map_or(0, |f| f.pad);
                let opened = self.opener.open(body, &signature, salted, pad)?;
                incoming.mac_failed = !opened.mac_ok;
                opened.data
            }
            None => body.to_vec(),
        };
        let plain = if flags & SEC_LICENSE_PKT != 0 {
            // One that does not parse goes on as it came: the client reports what is wrong with it.
            match license_request_with_certificate(&plain, &self.certificate) {
                Ok(Some(filled)) => filled,
                _ => plain,
            }
        } else {
            plain
        };
        let user_data = if flags & PDU_TYPE_FLAGS != 0 {
            SecurityHeader::basic(flags).write(&plain)
        } else {
            plain
        };
        incoming.frame = send.encode(&user_data)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_refuse_garbage() {
        let bytes = [
            0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80, 0x00, 0x03, 0xaa, 0x03, 0x00, 0x00, 0x07,
            0x02, 0xf0, 0x80,
        ];
        let f = frames(&bytes).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[1], [0x00, 0x03, 0xaa]);
        assert!(frames(&[0x03, 0x00, 0x00, 0x09, 0x02]).is_err());
        assert!(frames(&[0xff, 0x01]).is_err());
    }

    /// A TPKT length from 2 to 6 cannot hold a TPKT header and an X.224 header: this framer took such a
    /// "frame" (and cut the stream there) where the dissector and the probe refuse it.
    #[test]
    fn tpkt_lengths_below_seven_do_not_frame() {
        for length in 2u8..7 {
            let mut bytes = vec![0x03, 0x00, 0x00, length];
            bytes.resize(usize::from(length).max(4), 0);
            bytes.extend_from_slice(&[0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80]);
            assert!(frames(&bytes).is_err(), "length {length}");
        }
        // A fast-path length must cover its own header, here three bytes.
        assert!(frames(&[0x00, 0x80, 0x02, 0x00, 0x02]).is_err());
    }

    /// A server whose X.509 certificate holds an ECDSA key: Standard RDP Security has no use for it ([5.3.4]
    /// encrypts the client random with RSA), which is what the client says.
    #[test]
    fn a_certificate_without_an_rsa_key_is_unsupported() {
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["server".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut chain = Vec::new();
        chain.extend_from_slice(&2u32.to_le_bytes());
        chain.extend_from_slice(&1u32.to_le_bytes());
        chain.extend_from_slice(&(leaf.der().len() as u32).to_le_bytes());
        chain.extend_from_slice(leaf.der());
        chain.extend_from_slice(&[0; 12]);
        let random = [0x33; 32];
        let data = ServerSecurityData {
            method: Method::BITS_128,
            level: Level::ClientCompatible.wire(),
            server_random: &random,
            certificate: &chain,
        };
        let response =
            crate::rdp_security::unhex(crate::rdp_security::pdu::tests::SPEC_CONNECT_RESPONSE);
        let frame = McsConnect::parse(&response)
            .unwrap()
            .unwrap()
            .with_block(SC_SECURITY, &data.encode())
            .unwrap();
        let mut client = ClientShim::new([1; 32]);
        match client.incoming(&frame) {
            Err(SecurityError::Unsupported(why)) => assert!(why.contains("not rsa"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A server random of the wrong length is the server's fault.
        let data = ServerSecurityData {
            server_random: &random[..16],
            ..data
        };
        let frame = McsConnect::parse(&response)
            .unwrap()
            .unwrap()
            .with_block(SC_SECURITY, &data.encode())
            .unwrap();
        assert!(matches!(
            ClientShim::new([1; 32]).incoming(&frame),
            Err(SecurityError::Malformed(_))
        ));
    }
}
