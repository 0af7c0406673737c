//! The built-in target under Standard RDP Security ([5.3]): the server side of the Security Exchange and of
//! RC4 or FIPS encryption, between the socket and ironrdp's acceptor (which speaks level NONE only).
//!
//! A scenario that accepts PROTOCOL_RDP alone ([`super::scenario::Protocols::RDP`]) runs under the
//! [`StandardSecurity`] of its [`super::TargetConfig`]: by default RC4 at ENCRYPTION_LEVEL_CLIENT_COMPATIBLE,
//! with a proprietary certificate ([2.2.1.4.3.1.1]) holding the target's own RSA key.

use std::sync::OnceLock;

use rsa::RsaPrivateKey;

use super::ServeError;
use crate::rdp_security::server::ServerShim;
use crate::rdp_security::sink::SessionSink;
use crate::rdp_security::{Level, Method};

/// The encryption a target under Standard RDP Security asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardSecurity {
    /// [5.3.1] The encryption level; [`Level::None`] leaves the connection in the clear.
    pub level: Level,
    /// The methods the target implements ([2.2.1.3.3] flags); it selects among them as [5.3.2] says.
    pub methods: u32,
}

impl StandardSecurity {
    /// RC4 at the client's strongest key length (128-bit for current clients), both directions encrypted.
    pub const DEFAULT: StandardSecurity = StandardSecurity {
        level: Level::ClientCompatible,
        methods: Method::BITS_40 | Method::BITS_56 | Method::BITS_128,
    };

    /// FIPS: Triple DES and HMAC-SHA1.
    pub const FIPS: StandardSecurity = StandardSecurity {
        level: Level::Fips,
        methods: Method::FIPS,
    };
}

/// The key of the target's proprietary certificate: RSA 512-bit, as Windows makes it, once per process.
pub fn server_key() -> Result<RsaPrivateKey, ServeError> {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key.clone());
    }
    // The operating system's generator; it does not fail on the systems rdptrace runs on.
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let key = RsaPrivateKey::new_unchecked(&mut rng, 512)
        .map_err(|e| ServeError::Certificate(format!("cannot generate an rsa key: {e}")))?;
    Ok(KEY.get_or_init(|| key).clone())
}

/// One connection's server side, with a fresh server random ([5.3.4]), and the dissector's sink that decrypts
/// the same connection with the same key.
pub fn connection(
    config: &StandardSecurity,
    key: &RsaPrivateKey,
) -> Result<(ServerShim, SessionSink), ServeError> {
    let mut server_random = [0u8; 32];
    getrandom::fill(&mut server_random)
        .map_err(|e| ServeError::Config(format!("no random numbers for the server random: {e}")))?;
    let shim = ServerShim::new(config.level, config.methods, key.clone(), server_random)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    Ok((shim, SessionSink::with_server_key(key.clone())))
}
