//! The dissector's view of Standard RDP Security: both directions decrypted, given the client random (the
//! client that chose it) or the server's private key (the server, or a replay that holds its key).

use rsa::RsaPrivateKey;

use super::cert::{ServerCertificate, decrypt_client_random, encrypt_client_random};
use super::cipher::{Direction, Stream};
use super::keys::{RANDOM_LEN, SessionKeys};
use super::{Level, Method};
use crate::dissect::{Sealed, SecuritySink, Unsealed};
use crate::trace::Side;

/// Where the client random comes from.
enum Source {
    ClientRandom([u8; RANDOM_LEN]),
    ServerKey(Box<RsaPrivateKey>),
    /// Client randoms from a key log: the one whose encryption under the server's public key is the
    /// Security Exchange on the wire ([5.3.4.1] uses raw RSA, so the match is exact).
    Candidates(Vec<[u8; RANDOM_LEN]>),
}

/// A [`SecuritySink`] that derives the session keys ([5.3.5]) and opens every encrypted PDU of both
/// directions.
pub struct SessionSink {
    source: Source,
    server: Option<(Method, [u8; RANDOM_LEN])>,
    /// The server certificate, to find a candidate client random by.
    certificate: Vec<u8>,
    /// Client to server, server to client.
    streams: Option<(Stream, Stream)>,
}

impl core::fmt::Debug for SessionSink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionSink")
            .field("keys", &self.streams.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionSink {
    /// The sink of the client that sends `client_random`.
    pub fn with_client_random(client_random: [u8; RANDOM_LEN]) -> SessionSink {
        SessionSink {
            source: Source::ClientRandom(client_random),
            server: None,
            certificate: Vec::new(),
            streams: None,
        }
    }

    /// The sink of a replay that knows some client randoms (from a key log) and finds this session's.
    pub fn with_client_random_candidates(candidates: Vec<[u8; RANDOM_LEN]>) -> SessionSink {
        SessionSink {
            source: Source::Candidates(candidates),
            server: None,
            certificate: Vec::new(),
            streams: None,
        }
    }

    /// The sink of a party that holds the server's private key (the key of its certificate).
    pub fn with_server_key(key: RsaPrivateKey) -> SessionSink {
        SessionSink {
            source: Source::ServerKey(Box::new(key)),
            server: None,
            certificate: Vec::new(),
            streams: None,
        }
    }
}

impl SecuritySink for SessionSink {
    fn server_security(
        &mut self,
        method: u32,
        level: u32,
        server_random: &[u8],
        certificate: &[u8],
    ) {
        self.certificate = certificate.to_vec();
        let method = Method::from_wire(method);
        let level = Level::from_wire(level);
        let random: Option<[u8; RANDOM_LEN]> = server_random.try_into().ok();
        self.server = match (method, level, random) {
            (Some(method), Some(level), Some(random)) if level != Level::None => {
                Some((method, random))
            }
            _ => None,
        };
    }

    fn security_exchange(&mut self, encrypted_random: &[u8]) -> Result<(), String> {
        let Some((method, server_random)) = self.server else {
            return Err(
                "the server's security data did not select an encryption method".to_owned(),
            );
        };
        let client_random = match &self.source {
            Source::ClientRandom(random) => *random,
            Source::ServerKey(key) => {
                decrypt_client_random(key, encrypted_random).map_err(|e| e.to_string())?
            }
            Source::Candidates(candidates) => {
                let key = ServerCertificate::parse(&self.certificate)
                    .and_then(|c| c.public_key())
                    .map_err(|e| e.to_string())?;
                let trimmed = |b: &[u8]| -> Vec<u8> {
                    let end = b.iter().rposition(|x| *x != 0).map_or(0, |i| i + 1);
                    b.get(..end).unwrap_or_default().to_vec()
                };
                let wire = trimmed(encrypted_random);
                *candidates
                    .iter()
                    .find(|random| {
                        encrypt_client_random(&key, random).is_ok_and(|e| trimmed(&e) == wire)
                    })
                    .ok_or_else(|| {
                        format!(
                            "none of the {} client randoms in the key log is this session's",
                            candidates.len()
                        )
                    })?
            }
        };
        let keys = SessionKeys::derive(method, &client_random, &server_random);
        let c2s = Stream::opener(&keys, Direction::ClientToServer).map_err(|e| e.to_string())?;
        let s2c = Stream::opener(&keys, Direction::ServerToClient).map_err(|e| e.to_string())?;
        self.streams = Some((c2s, s2c));
        Ok(())
    }

    fn open(&mut self, from: Side, pdu: &Sealed<'_>) -> Option<Unsealed> {
        let (c2s, s2c) = self.streams.as_mut()?;
        let stream = match from {
            Side::Client => c2s,
            Side::Server => s2c,
        };
        let opened = stream
            .open(pdu.data, &pdu.signature, pdu.salted, pdu.pad)
            .ok()?;
        Some(Unsealed {
            data: opened.data,
            mac_ok: opened.mac_ok,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::Dissector;
    use crate::pdu::PduInfo;
    use crate::rdp_security::pdu::{SEC_INFO_PKT, SEC_LICENSE_PKT, SecurityHeader};
    use crate::rdp_security::server::tests::{indication, pair_on_wire, request};
    use crate::trace::{Origin, PhaseName, Trace};

    /// [2.2.1.11.1.1] A TS_INFO_PACKET for user "user", no domain, no password (the dissector reads no
    /// further).
    fn client_info() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&0u32.to_le_bytes()); // CodePage
        body.extend_from_slice(&0x10u32.to_le_bytes()); // INFO_UNICODE
        for cb in [0u16, 8, 0, 0, 0] {
            body.extend_from_slice(&cb.to_le_bytes());
        }
        body.extend_from_slice(&[0, 0]); // Domain
        body.extend_from_slice(&[b'u', 0, b's', 0, b'e', 0, b'r', 0, 0, 0]);
        body.extend_from_slice(&[0; 6]); // Password, AlternateShell, WorkingDir
        SecurityHeader::basic(SEC_INFO_PKT).write(&body)
    }

    /// The dissector fed a secured exchange (made by the client and server shims) with `sink`.
    fn dissect(level: Level, offered: u32, server_key: bool) -> Trace {
        let (mut client, mut server, key, response) = pair_on_wire(level, offered, server_key);
        let mut d = Dissector::new(Trace::new("target".to_owned(), Origin::Probe));
        let sink = if server_key {
            SessionSink::with_server_key(key)
        } else {
            SessionSink::with_client_random([0x17; 32])
        };
        d.set_security_sink(Box::new(sink));
        d.on_tcp_data(Side::Server, 1.0, &response);
        let wire = client.outgoing(&request(&client_info())).unwrap();
        d.on_tcp_data(Side::Client, 2.0, &wire);
        for frame in super::super::client::frames(&wire).unwrap() {
            let _ = server.incoming(frame).unwrap();
        }
        // [2.2.1.12.1.3] A licensing Error Alert, STATUS_VALID_CLIENT.
        let mut alert = vec![0xff, 0x03, 0x10, 0x00];
        alert.extend_from_slice(&7u32.to_le_bytes());
        alert.extend_from_slice(&2u32.to_le_bytes());
        alert.extend_from_slice(&[0x04, 0x00, 0x00, 0x00]);
        let license = indication(&SecurityHeader::basic(SEC_LICENSE_PKT).write(&alert));
        d.on_tcp_data(Side::Server, 3.0, &server.outgoing(&license).unwrap());
        // [2.2.5.1.1] Set Error Info 0x7 in a share data PDU.
        let mut share = vec![0u8; 6 + 12 + 4];
        let total = share.len() as u16;
        share[0..2].copy_from_slice(&total.to_le_bytes());
        share[2..4].copy_from_slice(&0x17u16.to_le_bytes()); // PDUTYPE_DATAPDU, version 1
        share[4..6].copy_from_slice(&1002u16.to_le_bytes());
        share[14] = 47; // pduType2 PDUTYPE2_SET_ERROR_INFO_PDU
        share[18..22].copy_from_slice(&7u32.to_le_bytes());
        d.on_tcp_data(
            Side::Server,
            4.0,
            &server.outgoing(&indication(&share)).unwrap(),
        );
        d.into_trace()
    }

    #[test]
    fn the_dissector_sees_the_decrypted_pdus_and_that_they_were_encrypted() {
        for (level, offered, server_key, method) in [
            (Level::ClientCompatible, Method::ALL, false, "RC4 128-bit"),
            (Level::ClientCompatible, Method::ALL, true, "RC4 128-bit"),
            // Level Low: the server's PDUs go in the clear with a basic security header.
            (Level::Low, Method::ALL, true, "RC4 128-bit"),
            (Level::Fips, Method::FIPS, false, "FIPS (3DES, HMAC-SHA1)"),
        ] {
            let trace = dissect(level, offered, server_key);
            let secure = trace.phase(PhaseName::SecureSettings);
            assert_eq!(
                secure
                    .facts
                    .get(crate::trace::Fact::Encryption)
                    .and_then(|v| v.as_str()),
                Some(method)
            );
            let info = secure
                .pdus
                .iter()
                .find(|p| p.name == "Client Info")
                .expect("client info");
            assert!(info.summary.ends_with("(decrypted)"), "{}", info.summary);
            assert!(
                matches!(
                    &info.info,
                    PduInfo::ClientInfo { encrypted: true, user: Some(u), .. } if u == "user"
                ),
                "{:?}",
                info.info
            );
            let licensing = trace.phase(PhaseName::Licensing);
            assert_eq!(
                licensing
                    .facts
                    .get(crate::trace::Fact::LicenseResult)
                    .and_then(|v| v.as_str())
                    .map(|s| s.starts_with("0x00000007 STATUS_VALID_CLIENT")),
                Some(true),
                "{:?}",
                licensing.facts
            );
            assert!(
                trace
                    .pdus()
                    .any(|(_, p)| matches!(p.info, PduInfo::SetErrorInfo { code: 7 })),
                "the set error info decrypts"
            );
            assert!(
                trace
                    .events()
                    .all(|(_, e)| !matches!(e.kind, crate::trace::EventKind::Anomaly { .. })),
                "no MAC failure"
            );
        }
    }

    #[test]
    fn without_keys_the_pdus_stay_encrypted() {
        let (mut client, _, _, response) = pair_on_wire(Level::High, Method::ALL, false);
        let mut d = Dissector::new(Trace::new("target".to_owned(), Origin::Probe));
        // Another client random: the keys are wrong, the MAC says so once.
        d.set_security_sink(Box::new(SessionSink::with_client_random([0x18; 32])));
        d.on_tcp_data(Side::Server, 1.0, &response);
        let wire = client.outgoing(&request(&client_info())).unwrap();
        d.on_tcp_data(Side::Client, 2.0, &wire);
        let trace = d.into_trace();
        assert!(trace.events().any(|(_, e)| matches!(
            &e.kind,
            crate::trace::EventKind::Anomaly { detail } if detail.contains("MAC of a client PDU does not verify")
        )));

        let (mut client, _, _, response) = pair_on_wire(Level::High, Method::ALL, false);
        let mut d = Dissector::new(Trace::new("target".to_owned(), Origin::Probe));
        d.on_tcp_data(Side::Server, 1.0, &response);
        d.on_tcp_data(
            Side::Client,
            2.0,
            &client.outgoing(&request(&client_info())).unwrap(),
        );
        let trace = d.into_trace();
        assert!(trace.pdus().any(|(_, p)| matches!(
            p.info,
            PduInfo::ClientInfo {
                encrypted: true,
                user: None,
                ..
            }
        )));
    }
}
