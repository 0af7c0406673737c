//! What a server certificate says, and what is wrong with it, read with x509-parser.

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

use x509_parser::prelude::*;

use crate::pdu::CertInfo;
use crate::trace::CertProblem;

/// RSA keys below this many bits are weak ([NIST SP 800-131A]: 2048 bits since 2014).
pub const WEAK_RSA_BITS: u32 = 2048;

/// Reads one DER certificate.
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                    GeneralName::IPAddress(ip) => format!("IP:{}", ip_string(ip)),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let (key_type, key_bits) = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            ("RSA".to_owned(), Some(rsa.key_size() as u32))
        }
        Ok(x509_parser::public_key::PublicKey::EC(point)) => {
            ("EC".to_owned(), Some(point.key_size() as u32))
        }
        Ok(x509_parser::public_key::PublicKey::DSA(_)) => ("DSA".to_owned(), None),
        _ => (cert.public_key().algorithm.algorithm.to_id_string(), None),
    };
    let self_signed = cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok();
    Some(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: rfc3339(cert.validity().not_before),
        not_after: rfc3339(cert.validity().not_after),
        key_type,
        key_bits,
        self_signed,
        serial: cert.raw_serial_as_string(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(der)),
    })
}

/// The public key bits of a certificate (`subjectPublicKey`), as CredSSP binds them ([MS-CSSP] 3.1.5).
pub fn subject_public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// The problems of a leaf certificate for a connection to `host` at `now` (Unix seconds).
pub fn problems(der: &[u8], host: &str, now: i64) -> Vec<(CertProblem, String)> {
    let mut out = Vec::new();
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        out.push((
            CertProblem::Unparsable,
            "the certificate does not parse as X.509".to_owned(),
        ));
        return out;
    };
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        out.push((
            CertProblem::Expired,
            format!("expired on {}", rfc3339(validity.not_after)),
        ));
    }
    if validity.not_before.timestamp() > now {
        out.push((
            CertProblem::NotYetValid,
            format!("not valid before {}", rfc3339(validity.not_before)),
        ));
    }
    if cert.subject() == cert.issuer() {
        out.push((
            CertProblem::SelfSigned,
            format!("issued by itself ({})", cert.subject()),
        ));
    }
    if !name_matches(&cert, host) {
        out.push((
            CertProblem::NameMismatch,
            format!("issued for {}, not for {host}", names_of(&cert).join(", ")),
        ));
    }
    if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = cert.public_key().parsed() {
        let bits = rsa.key_size() as u32;
        if bits < WEAK_RSA_BITS {
            out.push((CertProblem::WeakKey, format!("RSA key of {bits} bits")));
        }
    }
    out
}

/// Whether the certificate names `host` (SAN DNS and IP entries, or the subject CN when there are no SANs).
fn name_matches(cert: &X509Certificate<'_>, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    let sans = cert.subject_alternative_name().ok().flatten();
    if let Some(sans) = sans {
        return sans.value.general_names.iter().any(|name| match name {
            GeneralName::DNSName(dns) => ip.is_none() && dns_matches(dns, &host),
            GeneralName::IPAddress(bytes) => {
                ip.is_some_and(|ip| ip_string(bytes) == ip.to_string())
            }
            _ => false,
        });
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| dns_matches(cn, &host))
}

fn names_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|sans| {
            sans.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    GeneralName::IPAddress(ip) => Some(ip_string(ip)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
    }
    if names.is_empty() {
        names.push("no name".to_owned());
    }
    names
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix);
    }
    pattern == host
}

/// An iPAddress SAN ([RFC 5280] 4.2.1.6): four bytes for IPv4, sixteen for IPv6, hex for anything else.
fn ip_string(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        std::net::Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        std::net::Ipv6Addr::from(v6).to_string()
    } else {
        hex::encode(bytes)
    }
}

fn rfc3339(t: ASN1Time) -> String {
    t.to_datetime()
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(dns_matches("*.example.com", "rdp.example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(dns_matches("RDP.example.com", "rdp.example.com"));
    }
}
