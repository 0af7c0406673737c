//! The target's TLS side: its self-signed certificate, the rustls server configuration, and the key log.
//!
//! ring (under rcgen and rustls) cannot generate RSA keys, so the RSA key comes from the `rsa` crate and is
//! handed to rcgen as PKCS#8. Generating an RSA 2048 key takes a moment: one key is made per process and
//! reused for every certificate.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{KeyLog, ServerConfig};
use tracing::warn;

use super::ServeError;
use super::scenario::{CertName, CertProfile, KeyKind, TlsProfile, TlsVersions, Validity};

/// The certificate and key the target presents.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    /// The certificate's SubjectPublicKey bits: [MS-CSSP] 3.1.5 binds CredSSP to them (pubKeyAuth).
    pub public_key: Vec<u8>,
}

impl core::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Makes the self-signed certificate a profile describes, in `host`'s name unless the profile names another.
pub fn certificate(profile: &CertProfile, host: &str) -> Result<ServerIdentity, ServeError> {
    let cert_err = |e: rcgen::Error| ServeError::Certificate(e.to_string());
    let name = match profile.name {
        CertName::Host => host,
        CertName::Other(name) => name,
    };
    let key_pair = match profile.key {
        KeyKind::Rsa2048 => {
            let der = rsa_2048_pkcs8()?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_slice()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .map_err(cert_err)?
        }
        KeyKind::EcdsaP256 => {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?
        }
    };
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    let (not_before, not_after) = match profile.validity {
        Validity::Current => (
            now - time::Duration::days(1),
            now + time::Duration::days(365),
        ),
        Validity::Expired => (
            now - time::Duration::days(730),
            now - time::Duration::days(365),
        ),
        Validity::NotYetValid => (
            now + time::Duration::days(365),
            now + time::Duration::days(730),
        ),
    };
    params.not_before = not_before;
    params.not_after = not_after;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key_pair).map_err(cert_err)?;
    let der = cert.der().clone();
    let public_key = {
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
            ServeError::Certificate(format!("the new certificate does not parse: {e}"))
        })?;
        parsed.public_key().subject_public_key.data.to_vec()
    };
    Ok(ServerIdentity {
        chain: vec![der],
        key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        public_key,
    })
}

/// The process's RSA 2048 key, PKCS#8 DER, made on first use.
fn rsa_2048_pkcs8() -> Result<Vec<u8>, ServeError> {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key.clone());
    }
    use rsa::pkcs8::EncodePrivateKey as _;
    // The operating system's generator; it does not fail on the systems rdptrace runs on.
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
        .map_err(|e| ServeError::Certificate(format!("cannot generate an rsa key: {e}")))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| ServeError::Certificate(format!("cannot encode the rsa key: {e}")))?
        .as_bytes()
        .to_vec();
    Ok(KEY.get_or_init(|| der).clone())
}

/// The rustls server configuration for a TLS profile.
pub fn server_config(
    identity: &ServerIdentity,
    profile: &TlsProfile,
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<Arc<ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match profile.versions {
        TlsVersions::Tls12And13 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersions::Tls12Only => &[&rustls::version::TLS12],
        TlsVersions::Tls13Only => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(ServeError::Tls)?
        .with_no_client_auth()
        .with_single_cert(
            identity.chain.clone(),
            PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        )
        .map_err(ServeError::Tls)?;
    if let Some(key_log) = key_log {
        config.key_log = key_log;
    }
    Ok(Arc::new(config))
}

/// Writes the server's TLS secrets in the NSS key log format to a file the user named, so that a capture of
/// the target's traffic can be decrypted later.
#[derive(Debug)]
pub struct KeyLogFile {
    file: Mutex<File>,
}

impl KeyLogFile {
    /// Opens (appends to) the key log, readable by its owner only.
    pub fn open(path: &Path) -> Result<KeyLogFile, ServeError> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|source| ServeError::KeyLog {
            path: path.display().to_string(),
            source,
        })?;
        Ok(KeyLogFile {
            file: Mutex::new(file),
        })
    }
}

impl KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        );
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = file.write_all(line.as_bytes()) {
            warn!(%error, "cannot write the key log");
        }
    }
}
