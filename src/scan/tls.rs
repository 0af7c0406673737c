//! TLS versions and cipher suites, after an X.224 exchange that selects a TLS-based protocol
//! ([5.4.5.1]).
//!
//! rustls speaks only TLS 1.2 and 1.3 and offers only its own suites, so the scan writes its own
//! ClientHello ([RFC 5246] 7.4.1.2, [RFC 8446] 4.1.2): one version, a fixed list of well-known suites.
//! The answer is read with tls-parser: a ServerHello (version, suite, and for TLS 1.3 the
//! supported_versions extension) or an alert. The handshake is never completed: the scan closes after the
//! server's first flight. Suites are enumerated by elimination: offer the list, remove what the server
//! chose, offer the rest, until the server refuses; at most one handshake per suite in the list.

use serde::Serialize;
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_message_handshake,
    parse_tls_server_hello_extensions,
};
use tokio::net::TcpStream;

use super::Endpoint;
use super::link::{Link, LinkError};
use super::negotiate;
use crate::codes::{self, Table};
use crate::dissect::tls::{
    ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE, suite_name, version_name,
};
use crate::pdu::Negotiation;

/// The versions the scan tries.
pub const VERSIONS: [u16; 4] = [0x0301, 0x0302, 0x0303, 0x0304];

/// [RFC 8446] B.4 The TLS 1.3 suites.
pub const TLS13_SUITES: [u16; 5] = [0x1301, 0x1302, 0x1303, 0x1304, 0x1305];

/// Well-known suites of TLS 1.0 to 1.2 (IANA TLS Cipher Suites registry): ECDHE, DHE and RSA key exchange
/// with AES-GCM, ChaCha20-Poly1305, AES-CBC, 3DES and RC4. Servers ignore the ones that do not exist in the
/// version offered.
pub const LEGACY_SUITES: [u16; 32] = [
    0xc02b, 0xc02c, 0xcca9, 0xc023, 0xc024, 0xc009, 0xc00a, // ECDHE-ECDSA
    0xc02f, 0xc030, 0xcca8, 0xc027, 0xc028, 0xc013, 0xc014, 0xc012, 0xc011, // ECDHE-RSA
    0x009e, 0x009f, 0xccaa, 0x0067, 0x006b, 0x0033, 0x0039, // DHE-RSA
    0x009c, 0x009d, 0x003c, 0x003d, 0x002f, 0x0035, 0x000a, 0x0005, 0x0004, // RSA
];

/// [RFC 5746] 3.3 TLS_EMPTY_RENEGOTIATION_INFO_SCSV, sent with every pre-1.3 hello.
const RENEGOTIATION_SCSV: u16 = 0x00ff;

/// [RFC 8446] 4.1.3 The ServerHello.random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest".
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// The protocols whose selection means TLS comes next.
pub const TLS_PROTOCOLS: u32 = 0x01 | 0x02 | 0x04 | 0x08 | 0x10;

fn push_u16(v: &mut Vec<u8>, n: u16) {
    v.extend_from_slice(&n.to_be_bytes());
}

/// Appends `body` with a two-byte length.
fn push_vec16(v: &mut Vec<u8>, body: &[u8]) {
    push_u16(v, u16::try_from(body.len()).unwrap_or(u16::MAX));
    v.extend_from_slice(body);
}

fn extension(v: &mut Vec<u8>, kind: u16, body: &[u8]) {
    push_u16(v, kind);
    push_vec16(v, body);
}

/// A ClientHello record offering exactly `version` with `suites`.
pub fn client_hello(version: u16, suites: &[u16], sni: Option<&str>) -> Vec<u8> {
    let tls13 = version >= 0x0304;
    let mut body = Vec::with_capacity(512);
    // [RFC 8446] 4.1.2: TLS 1.3 is offered in supported_versions, with legacy_version TLS 1.2.
    push_u16(&mut body, if tls13 { 0x0303 } else { version });
    body.extend_from_slice(&rand::random::<[u8; 32]>());
    if tls13 {
        body.push(32);
        body.extend_from_slice(&rand::random::<[u8; 32]>());
    } else {
        body.push(0);
    }
    let mut list = Vec::new();
    for s in suites {
        push_u16(&mut list, *s);
    }
    if !tls13 {
        push_u16(&mut list, RENEGOTIATION_SCSV);
    }
    push_vec16(&mut body, &list);
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut ext = Vec::new();
    if let Some(name) = sni {
        // [RFC 6066] 3 server_name: list of (type host_name, name).
        let mut entry = vec![0u8];
        push_vec16(&mut entry, name.as_bytes());
        let mut list = Vec::new();
        push_vec16(&mut list, &entry);
        extension(&mut ext, 0, &list);
    }
    // [RFC 8422] 5.1 supported_groups: x25519, secp256r1, secp384r1, secp521r1, ffdhe2048.
    let mut groups = Vec::new();
    for g in [0x001d_u16, 0x0017, 0x0018, 0x0019, 0x0100] {
        push_u16(&mut groups, g);
    }
    let mut body_groups = Vec::new();
    push_vec16(&mut body_groups, &groups);
    extension(&mut ext, 10, &body_groups);
    // [RFC 8422] 5.1.2 ec_point_formats: uncompressed.
    extension(&mut ext, 11, &[1, 0]);
    if version >= 0x0303 {
        // [RFC 8446] 4.2.3 signature_algorithms ([RFC 5246] 7.4.1.4.1: not offered before TLS 1.2).
        let mut schemes = Vec::new();
        for s in [
            0x0403_u16, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0401, 0x0501, 0x0601,
            0x0201, 0x0203,
        ] {
            push_u16(&mut schemes, s);
        }
        let mut b = Vec::new();
        push_vec16(&mut b, &schemes);
        extension(&mut ext, 13, &b);
    }
    // [RFC 7627] extended_master_secret.
    extension(&mut ext, 23, &[]);
    if tls13 {
        // [RFC 8446] 4.2.1 supported_versions: TLS 1.3 only.
        extension(&mut ext, 43, &[2, 0x03, 0x04]);
        // [RFC 8446] 4.2.9 psk_key_exchange_modes: psk_dhe_ke.
        extension(&mut ext, 45, &[1, 1]);
        // [RFC 8446] 4.2.8 key_share: one x25519 share. The scan never completes the handshake, so any 32
        // bytes will do; a server that prefers another group answers with a HelloRetryRequest, which
        // still shows that it speaks TLS 1.3.
        let mut share = Vec::new();
        push_u16(&mut share, 0x001d);
        push_vec16(&mut share, &rand::random::<[u8; 32]>());
        let mut b = Vec::new();
        push_vec16(&mut b, &share);
        extension(&mut ext, 51, &b);
    }
    push_vec16(&mut body, &ext);
    let mut hs = vec![0x01];
    let len = u32::try_from(body.len()).unwrap_or(0);
    hs.extend_from_slice(&len.to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    // [RFC 8446] 5.1: legacy_record_version 0x0301 for the first ClientHello.
    let mut record = vec![HANDSHAKE, 0x03, 0x01];
    push_vec16(&mut record, &hs);
    record
}

/// The server's answer to one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A ServerHello: the version it chose (from supported_versions for TLS 1.3), the suite, whether it
    /// was a HelloRetryRequest, and the certificates sent in clear (TLS 1.2 and older).
    ServerHello {
        version: u16,
        suite: u16,
        retry: bool,
        chain: Vec<Vec<u8>>,
    },
    /// A TLS alert.
    Alert { level: u8, description: u8 },
    /// No TLS answer.
    None(LinkError),
}

impl Hello {
    pub fn text(&self) -> String {
        match self {
            Hello::ServerHello {
                version,
                suite,
                retry,
                ..
            } => format!(
                "{} {}, {}",
                if *retry {
                    "HelloRetryRequest"
                } else {
                    "ServerHello"
                },
                version_name(*version),
                suite_name(*suite)
            ),
            Hello::Alert { level, description } => format!(
                "{} alert {}",
                if *level == 2 { "fatal" } else { "warning" },
                codes::name(Table::TlsAlert, u32::from(*description))
            ),
            Hello::None(e) => e.to_string(),
        }
    }
}

/// Reads the server's first flight after a ClientHello.
pub async fn read_hello(link: &mut Link<TcpStream>) -> Hello {
    let mut hs: Vec<u8> = Vec::new();
    let mut hello: Option<(u16, u16, bool)> = None;
    let mut chain = Vec::new();
    // INVARIANT: at most 64 records, each bounded in size and by the link's deadline.
    for _ in 0..64 {
        if let Ok(0x03) = link.peek_u8().await {
            return Hello::None(LinkError::Garbage(
                "a TPKT where a TLS record was expected (the server left TLS)".to_owned(),
            ));
        }
        let (kind, _, fragment) = match link.read_tls_record().await {
            Ok(r) => r,
            Err(e) => {
                return match hello {
                    Some((version, suite, retry)) => Hello::ServerHello {
                        version,
                        suite,
                        retry,
                        chain,
                    },
                    None => Hello::None(e),
                };
            }
        };
        match kind {
            ALERT if hello.is_none() => {
                let level = fragment.first().copied().unwrap_or(0);
                let description = fragment.get(1).copied().unwrap_or(0);
                return Hello::Alert { level, description };
            }
            HANDSHAKE => {
                hs.extend_from_slice(&fragment);
                if hs.len() > super::link::MAX_READ {
                    break;
                }
                // INVARIANT: each pass removes one whole handshake message or stops.
                while let [_, a, b, c, ..] = *hs {
                    let len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
                    if hs.len() < 4 + len {
                        break;
                    }
                    let msg: Vec<u8> = hs.drain(..4 + len).collect();
                    match parse_tls_message_handshake(&msg) {
                        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) => {
                            let mut version = sh.version.0;
                            if let Some(ext) = sh.ext
                                && let Ok((_, exts)) = parse_tls_server_hello_extensions(ext)
                            {
                                for e in exts {
                                    if let TlsExtension::SupportedVersions(v) = e
                                        && let Some(v) = v.first()
                                    {
                                        version = v.0;
                                    }
                                }
                            }
                            let retry = sh.random == HELLO_RETRY_RANDOM;
                            hello = Some((version, sh.cipher.0, retry));
                            if version >= 0x0304 {
                                return Hello::ServerHello {
                                    version,
                                    suite: sh.cipher.0,
                                    retry,
                                    chain,
                                };
                            }
                        }
                        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::Certificate(c)))) => {
                            chain = c.cert_chain.iter().map(|c| c.data.to_vec()).collect();
                        }
                        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerDone(_)))) => {
                            if let Some((version, suite, retry)) = hello {
                                return Hello::ServerHello {
                                    version,
                                    suite,
                                    retry,
                                    chain,
                                };
                            }
                        }
                        _ => {}
                    }
                }
            }
            CHANGE_CIPHER_SPEC | APPLICATION_DATA | ALERT => break,
            _ => break,
        }
    }
    match hello {
        Some((version, suite, retry)) => Hello::ServerHello {
            version,
            suite,
            retry,
            chain,
        },
        None => Hello::None(LinkError::Garbage(
            "no ServerHello in the server's first flight".to_owned(),
        )),
    }
}

/// The SNI to send: the host when it is a name, none for an address.
pub fn sni(host: &str) -> Option<&str> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (bare.parse::<std::net::IpAddr>().is_err() && !bare.is_empty()).then_some(bare)
}

/// Why no ClientHello could be sent: the X.224 exchange did not select a TLS-based protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTls(pub String);

/// Opens a connection, negotiates `request` (flags of protocols that run over TLS) and sends one
/// ClientHello.
pub async fn hello(
    ep: &Endpoint,
    request: u32,
    version: u16,
    suites: &[u16],
) -> Result<Hello, NoTls> {
    let _permit = ep.permit().await;
    let (answer, link) = negotiate::negotiate(ep, request).await;
    let Some(mut link) = link else {
        return Err(NoTls(answer.text()));
    };
    match answer.negotiation() {
        Some(Negotiation::Response {
            selected_protocol, ..
        }) if selected_protocol & TLS_PROTOCOLS != 0 && selected_protocol & !request == 0 => {}
        _ => {
            link.close().await;
            return Err(NoTls(answer.text()));
        }
    }
    if let Err(e) = link
        .send(&client_hello(version, suites, sni(&ep.host)))
        .await
    {
        return Ok(Hello::None(e));
    }
    let answer = read_hello(&mut link).await;
    link.close().await;
    tracing::debug!(
        target = %ep.target(),
        version = %version_name(version),
        suites = suites.len(),
        answer = %answer.text(),
        "tls answer"
    );
    Ok(answer)
}

/// One accepted cipher suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// `0xc02f`.
    pub id: String,
    /// The IANA name.
    pub name: String,
    /// RC4, 3DES, DES, NULL, export or anonymous.
    pub weak: bool,
}

impl Suite {
    pub fn new(id: u16) -> Self {
        let name = suite_name(id);
        let weak = ["RC4", "3DES", "_DES_", "NULL", "EXPORT", "_anon_", "MD5"]
            .iter()
            .any(|w| name.contains(w));
        Suite {
            id: format!("0x{id:04x}"),
            name,
            weak,
        }
    }
}

/// What the server did with one TLS version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionResult {
    /// `TLS 1.2`.
    pub version: String,
    pub accepted: bool,
    /// The server's answer to the first ClientHello (every suite offered).
    pub answer: String,
    /// The suites the server accepted, in the order it chose them; empty when not enumerated.
    pub cipher_suites: Vec<Suite>,
    /// The certificates of the answer, when sent in clear.
    #[serde(skip)]
    pub chain: Vec<Vec<u8>>,
    #[serde(skip)]
    pub value: u16,
}

/// Whether an answer accepts `version`: a ServerHello (or, for TLS 1.3, a HelloRetryRequest) for exactly
/// that version.
pub fn accepts(version: u16, hello: &Hello) -> bool {
    matches!(hello, Hello::ServerHello { version: v, .. } if *v == version)
}

/// Tries one version; with `enumerate`, also finds the suites it accepts by elimination.
pub async fn version(
    ep: &Endpoint,
    request: u32,
    version: u16,
    enumerate: bool,
) -> Result<VersionResult, NoTls> {
    let all: Vec<u16> = if version >= 0x0304 {
        TLS13_SUITES.to_vec()
    } else {
        LEGACY_SUITES.to_vec()
    };
    let first = hello(ep, request, version, &all).await?;
    let mut result = VersionResult {
        version: version_name(version),
        accepted: accepts(version, &first),
        answer: first.text(),
        cipher_suites: Vec::new(),
        chain: Vec::new(),
        value: version,
    };
    let Hello::ServerHello { suite, chain, .. } = &first else {
        return Ok(result);
    };
    if !result.accepted {
        return Ok(result);
    }
    result.chain = chain.clone();
    result.cipher_suites.push(Suite::new(*suite));
    if !enumerate {
        return Ok(result);
    }
    let mut left: Vec<u16> = all.into_iter().filter(|s| s != suite).collect();
    // INVARIANT: every pass removes one suite from `left` or stops.
    while !left.is_empty() {
        let Ok(answer) = hello(ep, request, version, &left).await else {
            break;
        };
        match answer {
            Hello::ServerHello {
                version: v, suite, ..
            } if v == version && left.contains(&suite) => {
                result.cipher_suites.push(Suite::new(suite));
                left.retain(|s| *s != suite);
            }
            _ => break,
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tls_parser::parse_tls_plaintext;

    #[test]
    fn hellos_parse_back_as_offered() {
        for v in VERSIONS {
            let suites: &[u16] = if v >= 0x0304 {
                &TLS13_SUITES
            } else {
                &LEGACY_SUITES
            };
            let record = client_hello(v, suites, Some("rdp.example.com"));
            let (rest, plain) = parse_tls_plaintext(&record).unwrap();
            assert!(rest.is_empty());
            let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))) =
                plain.msg.first()
            else {
                panic!("not a ClientHello");
            };
            let offered: Vec<u16> = ch.ciphers.iter().map(|c| c.0).collect();
            assert!(offered.starts_with(suites));
            let exts = tls_parser::parse_tls_client_hello_extensions(ch.ext.unwrap())
                .unwrap()
                .1;
            let versions: Vec<u16> = exts
                .iter()
                .find_map(|e| match e {
                    TlsExtension::SupportedVersions(v) => Some(v.iter().map(|v| v.0).collect()),
                    _ => None,
                })
                .unwrap_or_else(|| vec![ch.version.0]);
            assert_eq!(versions, vec![v]);
            assert!(exts.iter().any(|e| matches!(e, TlsExtension::SNI(_))));
        }
    }

    #[test]
    fn weak_suites_are_named() {
        assert!(Suite::new(0x0005).weak);
        assert!(Suite::new(0x000a).weak);
        assert!(!Suite::new(0xc02f).weak);
        assert!(!Suite::new(0x1301).weak);
    }

    #[test]
    fn no_sni_for_addresses() {
        assert_eq!(sni("127.0.0.1"), None);
        assert_eq!(sni("[::1]"), None);
        assert_eq!(sni("rdp.example.com"), Some("rdp.example.com"));
    }
}
