//! The probe's TLS client: rustls with the ring provider, a verifier that records the server's chain and
//! leaves the judgement to rdptrace (certificate problems are facts, not fatal, unless `--strict-cert`),
//! and an optional key log the user asks for.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Accepts any chain (the probe judges it afterwards) but checks the handshake signatures for real, so
/// the session is a genuine TLS session with the holder of the certificate's key.
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
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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
) -> std::io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
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
