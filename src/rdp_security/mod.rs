//! Standard RDP Security ([5.3]): the Security Exchange, RC4 (40, 56 and 128-bit) and FIPS encryption with
//! their MACs, as bytes in and bytes out. No I/O.
//!
//! - [`keys`]: session keys from the client and server randoms ([5.3.5]) and their updates ([5.3.7]);
//! - [`cipher`]: one direction of the I/O data stream, encrypted and signed ([5.3.6]);
//! - [`cert`]: the server certificate (proprietary [5.3.3.1] or X.509 chain [5.3.3.2]), its public key and the
//!   RSA encryption of the client random ([5.3.4]);
//! - [`pdu`]: the security headers ([2.2.8.1.1.2]), MCS Send Data and fast-path framing ([2.2.8.1.2],
//!   [2.2.9.1.2]), the GCC user data of the MCS Connect PDUs and the Security Exchange PDU ([2.2.1.10]);
//! - [`client`] and [`server`]: shims that make a connection under Standard RDP Security look, to
//!   ironrdp's connector and acceptor, like one at encryption level NONE;
//! - [`sink`]: the dissector's view: decrypts both directions given the client random or the server's key.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

pub mod cert;
pub mod cipher;
pub mod client;
pub mod keys;
pub mod pdu;
pub mod server;
pub mod sink;

use core::fmt;

/// [2.2.1.4.3] An encryptionMethod that selects a cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// ENCRYPTION_METHOD_40BIT: RC4 with 40-bit keys.
    Rc4Bits40,
    /// ENCRYPTION_METHOD_56BIT: RC4 with 56-bit keys.
    Rc4Bits56,
    /// ENCRYPTION_METHOD_128BIT: RC4 with 128-bit keys.
    Rc4Bits128,
    /// ENCRYPTION_METHOD_FIPS: Triple DES (CBC) and HMAC-SHA1 ([5.3.5.2], [5.3.6.2]).
    Fips,
}

impl Method {
    /// [2.2.1.3.3] ENCRYPTION_METHOD_40BIT.
    pub const BITS_40: u32 = 0x0000_0001;
    /// [2.2.1.3.3] ENCRYPTION_METHOD_128BIT.
    pub const BITS_128: u32 = 0x0000_0002;
    /// [2.2.1.3.3] ENCRYPTION_METHOD_56BIT.
    pub const BITS_56: u32 = 0x0000_0008;
    /// [2.2.1.3.3] ENCRYPTION_METHOD_FIPS.
    pub const FIPS: u32 = 0x0000_0010;
    /// Every method rdptrace implements, as a client advertises them ([2.2.1.3.3] encryptionMethods).
    pub const ALL: u32 = Self::BITS_40 | Self::BITS_128 | Self::BITS_56 | Self::FIPS;

    /// The method of a server's encryptionMethod; `None` for none (0) or an unknown value.
    pub fn from_wire(v: u32) -> Option<Method> {
        match v {
            Self::BITS_40 => Some(Method::Rc4Bits40),
            Self::BITS_56 => Some(Method::Rc4Bits56),
            Self::BITS_128 => Some(Method::Rc4Bits128),
            Self::FIPS => Some(Method::Fips),
            _ => None,
        }
    }

    pub fn wire(self) -> u32 {
        match self {
            Method::Rc4Bits40 => Self::BITS_40,
            Method::Rc4Bits56 => Self::BITS_56,
            Method::Rc4Bits128 => Self::BITS_128,
            Method::Fips => Self::FIPS,
        }
    }

    /// How traces name it: `RC4 128-bit`, `FIPS (3DES, HMAC-SHA1)`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Rc4Bits40 => "RC4 40-bit",
            Method::Rc4Bits56 => "RC4 56-bit",
            Method::Rc4Bits128 => "RC4 128-bit",
            Method::Fips => "FIPS (3DES, HMAC-SHA1)",
        }
    }

    /// [5.3.5.1] The length of the RC4 and MAC keys: 8 bytes for 40 and 56-bit keys (salted), 16 for 128-bit.
    pub fn rc4_key_len(self) -> usize {
        match self {
            Method::Rc4Bits40 | Method::Rc4Bits56 => 8,
            Method::Rc4Bits128 | Method::Fips => 16,
        }
    }

    /// The strongest method among `methods` (a client's encryptionMethods flags), FIPS aside.
    pub fn strongest_rc4(methods: u32) -> Option<Method> {
        [Self::BITS_128, Self::BITS_56, Self::BITS_40]
            .into_iter()
            .find(|m| methods & m != 0)
            .and_then(Method::from_wire)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// [2.2.1.4.3] encryptionLevel ([5.3.1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    None = 0,
    /// Only client-to-server data is encrypted.
    Low = 1,
    ClientCompatible = 2,
    High = 3,
    Fips = 4,
}

impl Level {
    pub fn from_wire(v: u32) -> Option<Level> {
        match v {
            0 => Some(Level::None),
            1 => Some(Level::Low),
            2 => Some(Level::ClientCompatible),
            3 => Some(Level::High),
            4 => Some(Level::Fips),
            _ => None,
        }
    }

    pub fn wire(self) -> u32 {
        self as u32
    }

    /// [5.3.6] Whether the server encrypts and signs what it sends (every level above Low).
    pub fn server_encrypts(self) -> bool {
        self > Level::Low
    }
}

/// What the two ends agreed on in the Basic Settings Exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub method: Method,
    pub level: Level,
}

/// Why Standard RDP Security cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// The peer sent something that does not follow [MS-RDPBCGR].
    #[error("{0}")]
    Malformed(String),
    /// Valid, but beyond what rdptrace implements.
    #[error("{0}")]
    Unsupported(String),
    /// A cryptographic operation failed.
    #[error("{0}")]
    Crypto(String),
}

impl From<crate::wire::WireError> for SecurityError {
    fn from(e: crate::wire::WireError) -> Self {
        SecurityError::Malformed(e.to_string())
    }
}

pub type Result<T> = core::result::Result<T, SecurityError>;

/// Bytes as lowercase hex, for test vectors and logs.
#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(clean).unwrap_or_default()
}
