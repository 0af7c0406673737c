//! The target's TLS side: its certificate (issued by a test certification authority, or self-signed, with the
//! key, validity and names a scenario asks for), the rustls server configuration, and the key log.
//!
//! ring (under rcgen and rustls) cannot generate RSA keys, so RSA keys come from the `rsa` crate: the RSA 2048
//! key is handed to rcgen and rustls as PKCS#8. ring also refuses RSA keys below 2048 bits, both to sign with
//! and as a rustls server key: an RSA 1024 certificate is signed by the test CA (whose key is ECDSA), and the
//! TLS handshake is signed with the `rsa` crate behind rustls' [`SigningKey`] trait. Generating RSA keys
//! takes a moment: each key, and the CA, is made once per process.

use std::fs::File;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rsa::pkcs1::EncodeRsaPublicKey as _;
use rsa::pkcs8::EncodePrivateKey as _;
use rsa::signature::SignatureEncoding as _;
use rsa::traits::PublicKeyParts as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{KeyLog, ServerConfig, SignatureAlgorithm, SignatureScheme};
use tracing::warn;

use super::ServeError;
use super::faults::LicenseKey;
use super::scenario::{CertName, CertProfile, Issuer, KeyKind, TlsProfile, TlsVersions, Validity};

/// The subject of the test certification authority.
pub const TEST_CA_NAME: &str = "rdptrace test CA";

/// The certificate and key the target presents.
pub struct ServerIdentity {
    /// The certificate chain, leaf first (the test CA's own certificate is not sent, as servers do not send
    /// their root).
    pub chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
    /// The certificate's SubjectPublicKey bits: [MS-CSSP] 3.1.5 binds CredSSP to them (pubKeyAuth).
    pub public_key: Vec<u8>,
    /// The RSA key a License Request's proprietary certificate carries.
    pub license_key: LicenseKey,
}

impl core::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Makes the certificate a profile describes, in `host`'s name (and the loopback addresses, and `listen` when
/// it is a specific address) unless the profile names another.
pub fn certificate(
    profile: &CertProfile,
    host: &str,
    listen: Option<IpAddr>,
) -> Result<ServerIdentity, ServeError> {
    let cert_err = |e: rcgen::Error| ServeError::Certificate(e.to_string());
    let (cn, names) = match profile.name {
        CertName::Host => {
            let mut names = vec![
                host.to_owned(),
                Ipv4Addr::LOCALHOST.to_string(),
                Ipv6Addr::LOCALHOST.to_string(),
            ];
            // A loopback address other than 127.0.0.1 (a broker's session host at 127.0.0.2) is named too.
            if let Some(ip) = listen.filter(|ip| {
                !ip.is_unspecified()
                    && *ip != IpAddr::V4(Ipv4Addr::LOCALHOST)
                    && *ip != IpAddr::V6(Ipv6Addr::LOCALHOST)
            }) {
                names.push(ip.to_string());
            }
            (host, names)
        }
        CertName::Other(name) => (name, vec![name.to_owned()]),
    };
    let mut params = CertificateParams::new(names).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
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
    params.use_authority_key_identifier_extension = profile.issuer == Issuer::TestCa;

    let provider = rustls::crypto::ring::default_provider();
    let load = |der: Vec<u8>| {
        provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
            .map_err(ServeError::Tls)
    };
    let rsa_2048 = rsa_key(2048)?;
    let (cert, key): (rcgen::Certificate, Arc<dyn SigningKey>) = match profile.key {
        KeyKind::Rsa2048 | KeyKind::EcdsaP256 => {
            let key_pair = match profile.key {
                KeyKind::EcdsaP256 => {
                    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?
                }
                _ => KeyPair::from_pkcs8_der_and_sign_algo(
                    &PrivatePkcs8KeyDer::from(pkcs8(&rsa_2048)?),
                    &rcgen::PKCS_RSA_SHA256,
                )
                .map_err(cert_err)?,
            };
            let cert = match profile.issuer {
                Issuer::SelfSigned => params.self_signed(&key_pair).map_err(cert_err)?,
                Issuer::TestCa => {
                    let ca = test_ca()?;
                    params
                        .signed_by(&key_pair, &ca.issuer())
                        .map_err(cert_err)?
                }
            };
            (cert, load(key_pair.serialize_der())?)
        }
        KeyKind::Rsa1024 => {
            let weak = rsa_key(1024)?;
            let public = RsaSpki::new(&weak)?;
            let cert = match profile.issuer {
                Issuer::TestCa => {
                    let ca = test_ca()?;
                    params.signed_by(&public, &ca.issuer()).map_err(cert_err)?
                }
                Issuer::SelfSigned => {
                    return Err(ServeError::Certificate(
                        "a self-signed RSA 1024 certificate is not made (ring cannot sign with the key)"
                            .to_owned(),
                    ));
                }
            };
            (cert, Arc::new(WeakRsaKey(weak)) as Arc<dyn SigningKey>)
        }
    };
    let der = cert.der().clone();
    let public_key = {
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
            ServeError::Certificate(format!("the new certificate does not parse: {e}"))
        })?;
        parsed.public_key().subject_public_key.data.to_vec()
    };
    Ok(ServerIdentity {
        chain: vec![der],
        key,
        public_key,
        license_key: LicenseKey {
            modulus_be: rsa_2048.n().to_be_bytes_trimmed_vartime().to_vec(),
            exponent: 0x0001_0001,
        },
    })
}

/// The process's RSA key of `bits` bits, made on first use.
fn rsa_key(bits: usize) -> Result<Arc<rsa::RsaPrivateKey>, ServeError> {
    static KEY_2048: OnceLock<Arc<rsa::RsaPrivateKey>> = OnceLock::new();
    static KEY_1024: OnceLock<Arc<rsa::RsaPrivateKey>> = OnceLock::new();
    let slot = if bits >= 2048 { &KEY_2048 } else { &KEY_1024 };
    if let Some(key) = slot.get() {
        return Ok(key.clone());
    }
    // The operating system's generator; it does not fail on the systems rdptrace runs on.
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let key = rsa::RsaPrivateKey::new(&mut rng, bits)
        .map_err(|e| ServeError::Certificate(format!("cannot generate an rsa key: {e}")))?;
    Ok(slot.get_or_init(|| Arc::new(key)).clone())
}

fn pkcs8(key: &rsa::RsaPrivateKey) -> Result<Vec<u8>, ServeError> {
    Ok(key
        .to_pkcs8_der()
        .map_err(|e| ServeError::Certificate(format!("cannot encode the rsa key: {e}")))?
        .as_bytes()
        .to_vec())
}

/// The test certification authority: an ECDSA P-256 key and a CA certificate, valid from a day ago for ten
/// years, made once per process.
struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    /// Its certificate, PEM.
    pem: String,
}

impl TestCa {
    fn issuer(&self) -> rcgen::Issuer<'_, &KeyPair> {
        rcgen::Issuer::from_params(&self.params, &self.key)
    }
}

fn test_ca() -> Result<&'static TestCa, ServeError> {
    static CA: OnceLock<TestCa> = OnceLock::new();
    if let Some(ca) = CA.get() {
        return Ok(ca);
    }
    let cert_err = |e: rcgen::Error| ServeError::Certificate(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, TEST_CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let pem = params.self_signed(&key).map_err(cert_err)?.pem();
    Ok(CA.get_or_init(|| TestCa { params, key, pem }))
}

/// The test certification authority's certificate, PEM: what a client must trust to find no problem with the
/// target's default certificate (`rdptrace serve --write-ca FILE`).
pub fn test_ca_pem() -> Result<String, ServeError> {
    Ok(test_ca()?.pem.clone())
}

/// The public half of an RSA key for rcgen, which signs a certificate for it without holding it.
struct RsaSpki(Vec<u8>);

impl RsaSpki {
    fn new(key: &rsa::RsaPrivateKey) -> Result<RsaSpki, ServeError> {
        let der = key
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| ServeError::Certificate(format!("cannot encode the rsa key: {e}")))?;
        Ok(RsaSpki(der.as_bytes().to_vec()))
    }
}

impl rcgen::PublicKeyData for RsaSpki {
    /// [RFC 8017] A.1.1 RSAPublicKey, the subjectPublicKey of an rsaEncryption key.
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// An RSA key below ring's 2048 bits, signing TLS handshakes with the `rsa` crate: RSASSA-PSS for TLS 1.3 and
/// PKCS#1 v1.5 for TLS 1.2, both with SHA-256 ([RFC 8446] 4.2.3).
#[derive(Debug)]
struct WeakRsaKey(Arc<rsa::RsaPrivateKey>);

impl SigningKey for WeakRsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        [
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]
        .into_iter()
        .find(|s| offered.contains(s))
        .map(|scheme| {
            Box::new(WeakRsaSigner {
                key: self.0.clone(),
                scheme,
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

#[derive(Debug)]
struct WeakRsaSigner {
    key: Arc<rsa::RsaPrivateKey>,
    scheme: SignatureScheme,
}

impl Signer for WeakRsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use rsa::sha2::Sha256;
        use rsa::signature::{RandomizedSigner as _, Signer as _};
        let failed = |e: rsa::signature::Error| {
            rustls::Error::General(format!("cannot sign with the rsa 1024 key: {e}"))
        };
        let key = rsa::RsaPrivateKey::clone(&self.key);
        if self.scheme == SignatureScheme::RSA_PSS_SHA256 {
            let signer = rsa::pss::BlindedSigningKey::<Sha256>::new(key);
            let mut rng = getrandom::SysRng;
            signer
                .try_sign_with_rng(&mut rng, message)
                .map(|s| s.to_vec())
                .map_err(failed)
        } else {
            let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key);
            signer.try_sign(message).map(|s| s.to_vec()).map_err(failed)
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
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
    let certified = CertifiedKey::new(identity.chain.clone(), identity.key.clone());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(ServeError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::CertProblem;

    fn problems(profile: CertProfile) -> Vec<CertProblem> {
        let identity = certificate(&profile, "rdptrace-target", None).expect("a certificate");
        let leaf = identity.chain.first().expect("a leaf");
        crate::cert::problems(
            leaf,
            "127.0.0.1",
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
        .into_iter()
        .map(|(p, _)| p)
        .collect()
    }

    #[test]
    fn each_profile_has_exactly_its_problem() {
        let base = CertProfile::DEFAULT;
        assert_eq!(problems(base), vec![]);
        assert_eq!(
            problems(CertProfile {
                validity: Validity::Expired,
                ..base
            }),
            vec![CertProblem::Expired]
        );
        assert_eq!(
            problems(CertProfile {
                validity: Validity::NotYetValid,
                ..base
            }),
            vec![CertProblem::NotYetValid]
        );
        assert_eq!(
            problems(CertProfile {
                issuer: Issuer::SelfSigned,
                ..base
            }),
            vec![CertProblem::SelfSigned]
        );
        assert_eq!(
            problems(CertProfile {
                name: CertName::Other("rdp.example.com"),
                ..base
            }),
            vec![CertProblem::NameMismatch]
        );
        assert_eq!(
            problems(CertProfile {
                key: KeyKind::Rsa1024,
                ..base
            }),
            vec![CertProblem::WeakKey]
        );
    }
}
