//! The tls phase ([MS-RDPBCGR] 5.4.5.1): the probe's TLS client (rustls with the ring provider, a verifier
//! that records the server's chain and leaves the judgement to rdptrace: certificate problems are facts,
//! not fatal, unless `--strict-cert`), an optional key log the user asks for, and the upgrade of the
//! socket the X.224 exchange used.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::transport::{self, Conn, ReadError};
use super::{Run, Stop};
use crate::trace::{CertificateFailure, CloseKind, EventKind, Fact, PhaseName, Side, TlsError};

/// Accepts any chain (the probe judges it afterwards) but checks the handshake signatures for real, so
/// the session is a genuine TLS session with the holder of the certificate's key. ring refuses RSA keys
/// below 2048 bits; the signatures of such a key (a weak key is a certificate problem, not a reason to give
/// up) are checked with the `rsa` crate instead.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
        .or_else(|e| verify_weak_rsa(message, cert, dss).unwrap_or(Err(e)))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
        .or_else(|e| verify_weak_rsa(message, cert, dss).unwrap_or(Err(e)))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// [RFC 8446] 4.4.3 / [RFC 5246] 7.4.8 a handshake signature by an RSA key of fewer than 2048 bits, checked
/// with the `rsa` crate: `None` when the certificate's key is not such a key or the scheme is not an RSA one.
fn verify_weak_rsa(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Option<Result<HandshakeSignatureValid, rustls::Error>> {
    use rsa::BoxedUint;
    use rsa::sha2::{Sha256, Sha384, Sha512};
    use rsa::signature::Verifier as _;
    use x509_parser::prelude::FromDer as _;
    let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).ok()?;
    let Ok(x509_parser::public_key::PublicKey::RSA(key)) = x509.public_key().parsed() else {
        return None;
    };
    if key.key_size() >= crate::cert::WEAK_RSA_BITS as usize {
        return None;
    }
    // DER integers carry a leading zero when the top bit is set; the key's size (and so the signature's) is
    // that of the modulus without it.
    let unsigned =
        |bytes: &'_ [u8]| -> Vec<u8> { bytes.iter().copied().skip_while(|b| *b == 0).collect() };
    let key = rsa::RsaPublicKey::new(
        BoxedUint::from_be_slice_vartime(&unsigned(key.modulus)),
        BoxedUint::from_be_slice_vartime(&unsigned(key.exponent)),
    )
    .ok()?;
    let sig = dss.signature();
    let pkcs1 = || rsa::pkcs1v15::Signature::try_from(sig);
    let pss = || rsa::pss::Signature::try_from(sig);
    let checked = match dss.scheme {
        SignatureScheme::RSA_PKCS1_SHA256 => pkcs1()
            .and_then(|s| rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(message, &s)),
        SignatureScheme::RSA_PKCS1_SHA384 => pkcs1()
            .and_then(|s| rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key).verify(message, &s)),
        SignatureScheme::RSA_PKCS1_SHA512 => pkcs1()
            .and_then(|s| rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key).verify(message, &s)),
        SignatureScheme::RSA_PSS_SHA256 => {
            pss().and_then(|s| rsa::pss::VerifyingKey::<Sha256>::new(key).verify(message, &s))
        }
        SignatureScheme::RSA_PSS_SHA384 => {
            pss().and_then(|s| rsa::pss::VerifyingKey::<Sha384>::new(key).verify(message, &s))
        }
        SignatureScheme::RSA_PSS_SHA512 => {
            pss().and_then(|s| rsa::pss::VerifyingKey::<Sha512>::new(key).verify(message, &s))
        }
        _ => return None,
    };
    Some(
        checked
            .map(|()| HandshakeSignatureValid::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)),
    )
}

/// Writes TLS secrets in the NSS key log format to a file the user named, and keeps them for a capture's
/// Decryption Secrets Block when asked.
#[derive(Debug)]
struct KeyLogTo {
    file: Option<Mutex<std::fs::File>>,
    keep: Option<Arc<Mutex<String>>>,
}

impl rustls::KeyLog for KeyLogTo {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        );
        if let Some(Ok(mut f)) = self.file.as_ref().map(Mutex::lock) {
            let _ = f.write_all(line.as_bytes());
        }
        if let Some(Ok(mut kept)) = self.keep.as_ref().map(|k| k.lock()) {
            kept.push_str(&line);
        }
    }
}

/// The client configuration. `keylog` appends the session's secrets to that file; `keep` collects them.
pub fn client_config(
    keylog: Option<&PathBuf>,
    keep: Option<Arc<Mutex<String>>>,
    tls_max: super::TlsMax,
) -> std::io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls_max {
        super::TlsMax::Tls13 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        super::TlsMax::Tls12 => &[&rustls::version::TLS12],
    };
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier { provider }))
        .with_no_client_auth();
    // [MS-RDPBCGR] 5.4.5.1: RDP uses TLS without session resumption; a fresh handshake every time shows the
    // certificate every time.
    config.resumption = rustls::client::Resumption::disabled();
    let file = match keylog {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => None,
    };
    if file.is_some() || keep.is_some() {
        config.key_log = Arc::new(KeyLogTo { file, keep });
    }
    Ok(config)
}

/// The rustls name for the target: an IP address or a DNS name.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).ok()
}

/// `TLS 1.3` for a negotiated version.
pub fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_owned(),
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_owned(),
        other => format!("{other:?}"),
    }
}
impl Run<'_> {
    /// TLS handshake; returns the server's public key bits for CredSSP.
    pub(super) async fn tls_upgrade(&mut self) -> Result<Vec<u8>, Stop> {
        if self.framer.pending() > 0 {
            let at = self.at();
            let n = self.framer.pending();
            self.d.trace_mut().record_event(
                at,
                EventKind::Anomaly {
                    detail: format!(
                        "{n} bytes from the server after the Connection Confirm, before TLS"
                    ),
                },
            );
        }
        let keep = self.cfg.embed_secrets.then(|| self.secrets.clone());
        let config = match client_config(self.cfg.keylog.as_ref(), keep, self.cfg.tls_max) {
            Ok(c) => c,
            Err(e) => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ClientLimit {
                        detail: format!("cannot set up TLS: {e}"),
                    },
                );
                return Err(Stop);
            }
        };
        let Some(name) = server_name(&self.cfg.host) else {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: format!("{} is not a valid TLS server name", self.cfg.host),
                },
            );
            return Err(Stop);
        };
        let Conn::Plain(tap) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(Stop);
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (deadline, which) = self.deadline();
        // Fallible: a failed handshake hands the socket back, so that what the server does next (its
        // close) is in the trace too.
        let res =
            tokio::time::timeout_at(deadline, connector.connect(name, tap).into_fallible()).await;
        self.drain_tap();
        let at = self.at();
        let stream = match res {
            Err(_) => {
                self.d
                    .on_timeout(at, which, "TLS handshake from the server");
                return Err(Stop);
            }
            Ok(Err((e, tap))) => {
                self.conn = Conn::Plain(tap);
                match self.tls_failed(e) {
                    // The connection ended under the handshake's reads or writes.
                    Some(how) => self.connection_ended(how).await,
                    None => self.drain_after_error().await,
                }
                return Err(Stop);
            }
            Ok(Ok(stream)) => stream,
        };
        let (_, session) = stream.get_ref();
        let version = session
            .protocol_version()
            .map(version_name)
            .unwrap_or_default();
        let suite = session
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let chain: Vec<Vec<u8>> = session
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let tls13 = session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        self.conn = Conn::Tls(Box::new(stream));
        let trace = self.d.trace_mut();
        trace.record_event_in(
            PhaseName::Tls,
            at,
            EventKind::TlsEstablished {
                version: version.clone(),
                cipher_suite: suite.clone(),
            },
        );
        trace.fact_in(PhaseName::Tls, Fact::TlsVersion, version);
        trace.fact_in(PhaseName::Tls, Fact::CipherSuite, suite);
        if tls13 {
            // TLS 1.3 encrypts the Certificate message; the client's TLS stack has it.
            let infos = chain
                .iter()
                .map(|c| crate::cert::cert_info(c).unwrap_or_default())
                .collect();
            let len = chain.iter().map(Vec::len).sum();
            crate::dissect::tls::record_certificates(
                &mut self.d,
                Side::Server,
                len,
                infos,
                "from the client's TLS session",
            );
        }
        let Some(leaf) = chain.first() else {
            self.d.trace_mut().record_event(
                at,
                EventKind::ProtocolError {
                    from: Side::Server,
                    pdu: "TLS Certificate".to_owned(),
                    offset: None,
                    detail: "the server sent no certificate".to_owned(),
                },
            );
            return Err(Stop);
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let problems = crate::cert::problems(leaf, &self.cfg.host, now);
        if !problems.is_empty() {
            let list: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
            self.d
                .trace_mut()
                .fact_in(PhaseName::Tls, Fact::CertProblems, list.join(", "));
        }
        for (problem, detail) in &problems {
            self.d.trace_mut().record_event_in(
                PhaseName::Tls,
                at,
                EventKind::CertificateProblem {
                    problem: problem.clone(),
                    detail: detail.clone(),
                },
            );
        }
        if self.cfg.strict_cert && !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|(_, d)| d.clone()).collect();
            self.d.trace_mut().record_event_in(
                PhaseName::Tls,
                at,
                EventKind::TlsFailed {
                    error: TlsError::Certificate(CertificateFailure::Strict(list)),
                },
            );
            self.leave("certificate rejected").await;
            return Err(Stop);
        }
        Ok(crate::cert::subject_public_key(leaf).unwrap_or_default())
    }

    /// The handshake failed: records an alert from the server, what rustls refused, or what the socket said.
    /// When the connection ended under the handshake, records nothing and returns how it ended.
    fn tls_failed(&mut self, e: std::io::Error) -> Option<CloseKind> {
        let at = self.at();
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        let error = match rustls_error {
            // The dissector recorded the alert from the raw bytes.
            Some(alert @ rustls::Error::AlertReceived(_)) => TlsError::from(alert),
            Some(err) => {
                if let Some(v) = self.d.state().tls_version.filter(|v| *v < 0x0303) {
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ClientLimit {
                            detail: crate::dissect::tls::old_version_limit(v),
                        },
                    );
                    return None;
                }
                TlsError::from(err)
            }
            None => {
                let (kind, detail) = (e.kind(), e.to_string());
                if let ReadError::Closed(how) = transport::classify(e) {
                    return Some(how);
                }
                TlsError::Io { kind, detail }
            }
        };
        self.d
            .trace_mut()
            .record_event(at, EventKind::TlsFailed { error });
        None
    }
}
