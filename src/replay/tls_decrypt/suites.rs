//! The cipher suites rdptrace decrypts: data, one row per suite, with the RFC that defines it.

/// How the premaster secret is agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kx {
    /// The client encrypts it to the server's RSA key: a server key decrypts it.
    Rsa,
    /// (EC)DHE: only the session's secrets (a key log) open it.
    Ephemeral,
    /// TLS 1.3: traffic secrets from a key log.
    Tls13,
}

/// The record protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    Aes128Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    Aes128Ccm,
    Aes128Ccm8,
}

impl Bulk {
    pub fn key_len(self) -> usize {
        match self {
            Bulk::Aes128Cbc | Bulk::Aes128Gcm | Bulk::Aes128Ccm | Bulk::Aes128Ccm8 => 16,
            Bulk::Aes256Cbc | Bulk::Aes256Gcm | Bulk::ChaCha20Poly1305 => 32,
        }
    }

    /// [RFC 5246] 6.3 fixed_iv_length for TLS 1.2 and older (TLS 1.0 CBC keeps its first IV there too).
    pub fn fixed_iv_len(self) -> usize {
        match self {
            Bulk::Aes128Cbc | Bulk::Aes256Cbc => 16,
            Bulk::Aes128Gcm | Bulk::Aes256Gcm | Bulk::Aes128Ccm | Bulk::Aes128Ccm8 => 4,
            Bulk::ChaCha20Poly1305 => 12,
        }
    }

    pub fn is_cbc(self) -> bool {
        matches!(self, Bulk::Aes128Cbc | Bulk::Aes256Cbc)
    }
}

/// The hash of the PRF (TLS 1.2), of the HKDF (TLS 1.3), and of the record MAC of CBC suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
}

impl Hash {
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub kx: Kx,
    pub bulk: Bulk,
    /// The record MAC of CBC suites; `None` for AEAD suites.
    pub mac: Option<Hash>,
    /// The TLS 1.2 PRF hash, or the TLS 1.3 HKDF hash.
    pub prf: Hash,
    pub rfc: &'static str,
}

const fn row(
    id: u16,
    kx: Kx,
    bulk: Bulk,
    mac: Option<Hash>,
    prf: Hash,
    rfc: &'static str,
) -> Suite {
    Suite {
        id,
        kx,
        bulk,
        mac,
        prf,
        rfc,
    }
}

use Bulk::*;
use Hash::*;
use Kx::*;

pub static SUITES: &[Suite] = &[
    // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_256_CBC_SHA
    row(0x002f, Rsa, Aes128Cbc, Some(Sha1), Sha256, "RFC 5246 A.5"),
    row(0x0035, Rsa, Aes256Cbc, Some(Sha1), Sha256, "RFC 5246 A.5"),
    // TLS_RSA_WITH_AES_128_CBC_SHA256, TLS_RSA_WITH_AES_256_CBC_SHA256
    row(0x003c, Rsa, Aes128Cbc, Some(Sha256), Sha256, "RFC 5246 A.5"),
    row(0x003d, Rsa, Aes256Cbc, Some(Sha256), Sha256, "RFC 5246 A.5"),
    // TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_256_GCM_SHA384
    row(0x009c, Rsa, Aes128Gcm, None, Sha256, "RFC 5288 3"),
    row(0x009d, Rsa, Aes256Gcm, None, Sha384, "RFC 5288 3"),
    // TLS_DHE_RSA_WITH_AES_128_CBC_SHA, TLS_DHE_RSA_WITH_AES_256_CBC_SHA
    row(
        0x0033,
        Ephemeral,
        Aes128Cbc,
        Some(Sha1),
        Sha256,
        "RFC 5246 A.5",
    ),
    row(
        0x0039,
        Ephemeral,
        Aes256Cbc,
        Some(Sha1),
        Sha256,
        "RFC 5246 A.5",
    ),
    // TLS_DHE_RSA_WITH_AES_128_CBC_SHA256, TLS_DHE_RSA_WITH_AES_256_CBC_SHA256
    row(
        0x0067,
        Ephemeral,
        Aes128Cbc,
        Some(Sha256),
        Sha256,
        "RFC 5246 A.5",
    ),
    row(
        0x006b,
        Ephemeral,
        Aes256Cbc,
        Some(Sha256),
        Sha256,
        "RFC 5246 A.5",
    ),
    // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
    row(0x009e, Ephemeral, Aes128Gcm, None, Sha256, "RFC 5288 3"),
    row(0x009f, Ephemeral, Aes256Gcm, None, Sha384, "RFC 5288 3"),
    // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
    row(
        0xc009,
        Ephemeral,
        Aes128Cbc,
        Some(Sha1),
        Sha256,
        "RFC 8422 6",
    ),
    row(
        0xc00a,
        Ephemeral,
        Aes256Cbc,
        Some(Sha1),
        Sha256,
        "RFC 8422 6",
    ),
    // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
    row(
        0xc013,
        Ephemeral,
        Aes128Cbc,
        Some(Sha1),
        Sha256,
        "RFC 8422 6",
    ),
    row(
        0xc014,
        Ephemeral,
        Aes256Cbc,
        Some(Sha1),
        Sha256,
        "RFC 8422 6",
    ),
    // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
    row(
        0xc023,
        Ephemeral,
        Aes128Cbc,
        Some(Sha256),
        Sha256,
        "RFC 5289 3.1",
    ),
    row(
        0xc024,
        Ephemeral,
        Aes256Cbc,
        Some(Sha384),
        Sha384,
        "RFC 5289 3.1",
    ),
    // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
    row(
        0xc027,
        Ephemeral,
        Aes128Cbc,
        Some(Sha256),
        Sha256,
        "RFC 5289 3.1",
    ),
    row(
        0xc028,
        Ephemeral,
        Aes256Cbc,
        Some(Sha384),
        Sha384,
        "RFC 5289 3.1",
    ),
    // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    row(0xc02b, Ephemeral, Aes128Gcm, None, Sha256, "RFC 5289 3.2"),
    row(0xc02c, Ephemeral, Aes256Gcm, None, Sha384, "RFC 5289 3.2"),
    // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    row(0xc02f, Ephemeral, Aes128Gcm, None, Sha256, "RFC 5289 3.2"),
    row(0xc030, Ephemeral, Aes256Gcm, None, Sha384, "RFC 5289 3.2"),
    // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, ..._ECDSA_..., TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    row(
        0xcca8,
        Ephemeral,
        ChaCha20Poly1305,
        None,
        Sha256,
        "RFC 7905 2",
    ),
    row(
        0xcca9,
        Ephemeral,
        ChaCha20Poly1305,
        None,
        Sha256,
        "RFC 7905 2",
    ),
    row(
        0xccaa,
        Ephemeral,
        ChaCha20Poly1305,
        None,
        Sha256,
        "RFC 7905 2",
    ),
    // TLS 1.3: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,
    // TLS_AES_128_CCM_SHA256, TLS_AES_128_CCM_8_SHA256
    row(0x1301, Tls13, Aes128Gcm, None, Sha256, "RFC 8446 B.4"),
    row(0x1302, Tls13, Aes256Gcm, None, Sha384, "RFC 8446 B.4"),
    row(
        0x1303,
        Tls13,
        ChaCha20Poly1305,
        None,
        Sha256,
        "RFC 8446 B.4",
    ),
    row(0x1304, Tls13, Aes128Ccm, None, Sha256, "RFC 8446 B.4"),
    row(0x1305, Tls13, Aes128Ccm8, None, Sha256, "RFC 8446 B.4"),
];

pub fn lookup(id: u16) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_names_agree_with_tls_parser() {
        for (i, s) in SUITES.iter().enumerate() {
            assert!(
                SUITES[i + 1..].iter().all(|o| o.id != s.id),
                "0x{:04x}",
                s.id
            );
            let name = crate::dissect::tls::suite_name(s.id);
            let aead = s.mac.is_none();
            assert_eq!(
                aead,
                name.contains("GCM") || name.contains("CHACHA") || name.contains("CCM"),
                "{name}"
            );
            assert_eq!(name.starts_with("TLS_RSA_WITH"), s.kx == Kx::Rsa, "{name}");
            assert_eq!(
                name.contains("AES_256"),
                matches!(s.bulk, Bulk::Aes256Cbc | Bulk::Aes256Gcm),
                "{name}"
            );
            assert_eq!(name.ends_with("SHA384"), s.prf == Hash::Sha384, "{name}");
        }
    }
}
