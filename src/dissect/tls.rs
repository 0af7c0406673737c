//! `tls` phase: the TLS handshake of Enhanced RDP Security ([5.4.5.1]), read from the records in clear with
//! tls-parser, certificates with x509-parser.

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions,
    parse_tls_message_handshake,
};

use super::Dissector;
use crate::codes::{self, Table};
use crate::pdu::{CertInfo, PduInfo};
use crate::trace::Fact;
use crate::trace::Side;
use crate::wire::frame::{self, Framed};

/// [RFC 8446] 5.1 ContentType.
pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;

/// [RFC 8446] 4.2.1 the supported_versions value of TLS 1.3.
pub const TLS13: u16 = 0x0304;

/// `TLS 1.2` for 0x0303.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301 => "TLS 1.0".to_owned(),
        0x0302 => "TLS 1.1".to_owned(),
        0x0303 => "TLS 1.2".to_owned(),
        0x0304 => "TLS 1.3".to_owned(),
        other => format!("0x{other:04x}"),
    }
}

/// The IANA name of a cipher suite, or its number.
pub fn suite_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id)
        .map_or_else(|| format!("0x{id:04x}"), |s| s.name.to_owned())
}

/// Parses the whole handshake messages buffered for `from`.
pub(super) fn drain_handshake(d: &mut Dissector, from: Side, decrypted: bool) {
    // INVARIANT: each pass takes a whole message (at least its 4-byte header) out of the buffer, or stops.
    loop {
        let Framed::Complete(len) = frame::tls_handshake_message(&d.dir(from).handshake) else {
            return;
        };
        let msg: Vec<u8> = d.dir(from).handshake.drain(..len).collect();
        handshake_message(d, from, &msg, decrypted);
    }
}

fn handshake_message(d: &mut Dissector, from: Side, msg: &[u8], decrypted: bool) {
    let msg_type = msg.first().copied().unwrap_or(0);
    let parsed = parse_tls_message_handshake(msg).ok().map(|(_, m)| m);
    match parsed {
        Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello))) => {
            let mut supported_versions = Vec::new();
            let mut server_name = None;
            if let Some(ext) = hello.ext
                && let Ok((_, exts)) = parse_tls_extensions(ext)
            {
                for e in exts {
                    match e {
                        TlsExtension::SupportedVersions(v) => {
                            supported_versions = v
                                .into_iter()
                                .map(|v| v.0)
                                .filter(|v| v & 0x0f0f != 0x0a0a)
                                .collect();
                        }
                        TlsExtension::SNI(names) => {
                            server_name = names
                                .first()
                                .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
                        }
                        _ => {}
                    }
                }
            }
            let cipher_suites: Vec<u16> = hello.ciphers.iter().map(|c| c.0).collect();
            let max = supported_versions
                .iter()
                .copied()
                .max()
                .unwrap_or(hello.version.0);
            d.trace
                .fact(Fact::ClientHelloVersion, version_name(hello.version.0));
            if !supported_versions.is_empty() {
                d.trace.fact(
                    Fact::ClientSupportedVersions,
                    supported_versions
                        .iter()
                        .map(|v| version_name(*v))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            let summary = format!(
                "up to {}, {} cipher suites{}",
                version_name(max),
                cipher_suites.len(),
                server_name
                    .as_ref()
                    .map(|n| format!(", SNI {n}"))
                    .unwrap_or_default()
            );
            d.pdu(
                from,
                msg.len(),
                "TLS ClientHello",
                summary,
                PduInfo::TlsClientHello {
                    version: hello.version.0,
                    supported_versions,
                    cipher_suites,
                    server_name,
                },
            );
        }
        Some(TlsMessage::Handshake(TlsMessageHandshake::ServerHello(hello))) => {
            let mut version = hello.version.0;
            if let Some(ext) = hello.ext
                && let Ok((_, exts)) = parse_tls_extensions(ext)
            {
                for e in exts {
                    if let TlsExtension::SupportedVersions(v) = e
                        && let Some(v) = v.first()
                    {
                        version = v.0;
                    }
                }
            }
            let suite = hello.cipher.0;
            d.state.tls_version = Some(version);
            d.state.cipher_suite = Some(suite);
            d.trace.fact(Fact::TlsVersion, version_name(version));
            d.trace.fact(Fact::CipherSuite, suite_name(suite));
            if version == TLS13 {
                // Everything the server sends after its ServerHello is encrypted.
                d.dir(from).encrypted = true;
                d.dir(from.other()).encrypted = true;
            }
            d.pdu(
                from,
                msg.len(),
                "TLS ServerHello",
                format!("{}, {}", version_name(version), suite_name(suite)),
                PduInfo::TlsServerHello {
                    version,
                    cipher_suite: suite,
                },
            );
        }
        Some(TlsMessage::Handshake(TlsMessageHandshake::Certificate(cert)))
            if d.state.tls_version != Some(TLS13) =>
        {
            let chain: Vec<CertInfo> = cert
                .cert_chain
                .iter()
                .map(|c| crate::cert::cert_info(c.data).unwrap_or_default())
                .collect();
            record_certificates(
                d,
                from,
                msg.len(),
                chain,
                if decrypted { "decrypted" } else { "" },
            );
        }
        _ if msg_type == 11 && decrypted => {
            // [RFC 8446] 4.4.2: the TLS 1.3 Certificate message has a request context and per-entry
            // extensions, which tls-parser's TLS 1.2 parser does not read.
            let chain = tls13_certificates(msg)
                .iter()
                .map(|c| crate::cert::cert_info(c).unwrap_or_default())
                .collect();
            record_certificates(
                d,
                from,
                msg.len(),
                chain,
                if decrypted { "decrypted" } else { "" },
            );
        }
        _ => {
            let name = handshake_name(msg_type);
            d.pdu(
                from,
                msg.len(),
                &format!("TLS {name}"),
                if decrypted {
                    "decrypted".to_owned()
                } else {
                    String::new()
                },
                PduInfo::TlsHandshake { msg_type },
            );
        }
    }
}

/// Records a certificate chain: the facts of its leaf in the current phase, and a Certificate PDU.
pub fn record_certificates(
    d: &mut Dissector,
    from: Side,
    len: usize,
    chain: Vec<CertInfo>,
    source: &str,
) {
    let (summary, info) = certificate_facts(&mut d.trace, chain, source);
    d.pdu(from, len, "TLS Certificate", summary, info);
}

/// The facts of a chain's leaf, set on the trace's current phase; returns the Certificate PDU's summary and
/// content (the probe's gateway connection records it itself).
pub fn certificate_facts(
    trace: &mut crate::trace::Trace,
    chain: Vec<CertInfo>,
    source: &str,
) -> (String, PduInfo) {
    if let Some(leaf) = chain.first() {
        trace.fact(Fact::CertSubject, leaf.subject.clone());
        trace.fact(Fact::CertIssuer, leaf.issuer.clone());
        trace.fact(Fact::CertNotAfter, leaf.not_after.clone());
        trace.fact(
            Fact::CertKey,
            format!(
                "{} {}",
                leaf.key_type,
                leaf.key_bits
                    .map(|b| format!("{b} bits"))
                    .unwrap_or_default()
            )
            .trim()
            .to_owned(),
        );
        if !leaf.sans.is_empty() {
            trace.fact(Fact::CertSans, leaf.sans.join(", "));
        }
        trace.fact(Fact::CertSelfSigned, leaf.self_signed);
    }
    let summary = format!(
        "{} certificate{}: {}{}",
        chain.len(),
        if chain.len() == 1 { "" } else { "s" },
        chain.first().map(|c| c.subject.as_str()).unwrap_or("none"),
        if source.is_empty() {
            String::new()
        } else {
            format!(" ({source})")
        }
    );
    (summary, PduInfo::TlsCertificate { chain })
}

/// The DER certificates of a TLS 1.3 Certificate message; a list cut short gives the certificates before the
/// cut.
fn tls13_certificates(msg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    // What the error would add is where the list was cut, and the caller reports the chain it gets.
    read_tls13_certificates(&mut crate::wire::Reader::new(msg), &mut out).unwrap_or_default();
    out
}

/// [RFC 8446] 4.4.2 Certificate: the context, then each CertificateEntry (its data and extensions).
fn read_tls13_certificates<'a>(
    r: &mut crate::wire::Reader<'a>,
    out: &mut Vec<&'a [u8]>,
) -> crate::wire::WireResult<()> {
    r.skip(4, "handshake header")?;
    let ctx = usize::from(r.u8("context length")?);
    r.skip(ctx, "context")?;
    let list_len = r.u24_be("list length")?;
    let mut list = r.sub(list_len, "certificate list")?;
    // INVARIANT: each pass reads at least a 3-byte length or fails.
    while list.remaining() > 0 {
        let n = list.u24_be("certificate length")?;
        out.push(list.bytes(n, "certificate")?);
        let ext = usize::from(list.u16_be("extensions length")?);
        list.skip(ext, "extensions")?;
    }
    Ok(())
}

fn handshake_name(t: u8) -> &'static str {
    match t {
        0 => "HelloRequest",
        1 => "ClientHello",
        2 => "ServerHello",
        4 => "NewSessionTicket",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        22 => "CertificateStatus",
        24 => "KeyUpdate",
        _ => "Handshake",
    }
}

/// [RFC 8446] 6 Alert in clear (or decrypted).
pub(super) fn alert(d: &mut Dissector, from: Side, payload: &[u8], decrypted: bool) {
    let (level, description) = match payload {
        [level, description, ..] => (*level, *description),
        _ => {
            d.pdu(
                from,
                payload.len(),
                "TLS Alert",
                "truncated".to_owned(),
                PduInfo::TlsAlert {
                    level: None,
                    description: None,
                    encrypted: decrypted,
                },
            );
            return;
        }
    };
    let level_name = match level {
        1 => "warning",
        2 => "fatal",
        _ => "unknown level",
    };
    d.trace.fact(
        Fact::TlsAlert,
        codes::name(Table::TlsAlert, u32::from(description)),
    );
    d.pdu(
        from,
        payload.len(),
        "TLS Alert",
        format!(
            "{level_name} {} ({description})",
            codes::name(Table::TlsAlert, u32::from(description))
        ),
        PduInfo::TlsAlert {
            level: Some(level),
            description: Some(description),
            encrypted: decrypted,
        },
    );
}

/// The verdict's words for a server that chose a TLS version below 1.2.
pub fn old_version_limit(version: u16) -> String {
    format!(
        "the server chose {}, which the specification allows ([MS-RDPBCGR] 5.4.5.1) but a client with it disabled refuses (rustls speaks TLS 1.2 and 1.3 only): the handshake ends there",
        version_name(version)
    )
}
