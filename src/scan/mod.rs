//! `rdptrace scan`: how a server is configured, learned without credentials.
//!
//! Every question is its own short connection, and every connection ends before any logon:
//!
//! 1. Security protocols ([2.2.1.1.1]): one X.224 Connection Request per protocol, each requested alone,
//!    judged by what the server selected ([`negotiate`]).
//! 2. Standard RDP Security ([5.3]): one MCS Connect Initial per encryption method ([`rdp_security`]).
//! 3. TLS ([5.4.5.1]): one hand-made ClientHello per version, suites by elimination ([`tls`]); the
//!    certificate from a rustls session or from the TLS 1.2 handshake in clear.
//! 4. NTLM ([MS-NLMP] 2.2.1.2): the CHALLENGE of an anonymous CredSSP exchange ([`ntlm`]).
//!
//! Each connection has its own deadline (`--timeout`) and at most `--concurrency` run at once; the number
//! of connections is bounded by the lists above (6 + 4 + 4 × the suite lists + 2).

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

pub mod cli;
pub mod link;
pub mod negotiate;
pub mod ntlm;
pub mod rdp_security;
pub mod report;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info};

use self::link::{Link, LinkError};
use self::negotiate::Answer;
use crate::codes;
use crate::dissect::x224::{
    PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX, PROTOCOL_RDP, PROTOCOL_RDSAAD, PROTOCOL_RDSTLS,
    PROTOCOL_SSL,
};
use crate::pdu::CertInfo;

/// The schema name of `rdptrace scan --json`.
pub const SCHEMA: &str = "rdptrace-scan/1";

/// The protocols the scan requests, one at a time.
pub const PROTOCOLS: [u32; 6] = [
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    PROTOCOL_HYBRID,
    PROTOCOL_RDSTLS,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_RDSAAD,
];

/// Certificates that expire within this many days are a finding.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Where the scan connects, with the limits every connection obeys.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub addr: SocketAddr,
    /// For each connection, from the SYN to the last byte read.
    pub timeout: Duration,
    permits: Arc<Semaphore>,
    connections: Arc<AtomicU32>,
}

impl Endpoint {
    /// Resolves `host` (first address) within `timeout`; at most `concurrency` connections at once.
    pub async fn resolve(
        host: &str,
        port: u16,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Endpoint, String> {
        let lookup =
            tokio::time::timeout(timeout, tokio::net::lookup_host((host.to_owned(), port))).await;
        let addr = match lookup {
            Err(_) => return Err(format!("{host} did not resolve within the timeout")),
            Ok(Err(e)) => return Err(format!("{host} did not resolve: {e}")),
            Ok(Ok(mut addrs)) => addrs
                .next()
                .ok_or_else(|| format!("{host} has no addresses"))?,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            addr,
            timeout,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            connections: Arc::new(AtomicU32::new(0)),
        })
    }

    /// `host:port`, `[v6]:port`.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Waits for a connection slot.
    pub async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Opens one connection (the caller holds a permit).
    pub async fn open(&self) -> Result<Link<TcpStream>, LinkError> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Link::open(self.addr, self.timeout).await
    }

    /// How many connections the scan opened.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Enumerate the cipher suites of each accepted TLS version.
    pub suites: bool,
}

/// One security protocol requested alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolResult {
    /// `PROTOCOL_SSL`.
    pub protocol: String,
    pub value: u32,
    /// The server selected exactly this protocol.
    pub accepted: bool,
    /// The raw answer, in words: `RDP_NEG_RSP selecting PROTOCOL_SSL`.
    pub answer: String,
    /// The raw answer, decoded.
    pub raw: Answer,
    /// What the answer means for this protocol.
    pub judgement: String,
}

/// Standard RDP Security.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RdpSecurityResult {
    /// Whether it was tried (the server accepts PROTOCOL_RDP).
    pub tested: bool,
    /// The server's encryptionLevel.
    pub level: Option<String>,
    pub methods: Vec<rdp_security::MethodResult>,
    /// `proprietary` or `x509`.
    pub server_certificate: Option<String>,
}

/// TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsResult {
    /// Whether it was tried (the server accepts a protocol that runs over TLS).
    pub tested: bool,
    /// The protocol the X.224 exchanges requested before each ClientHello.
    pub via: Option<String>,
    pub versions: Vec<tls::VersionResult>,
    /// The session rustls made: `TLS 1.3, TLS13_AES_256_GCM_SHA384`, or why it failed.
    pub session: Option<String>,
}

/// The server certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateResult {
    #[serde(flatten)]
    pub info: CertInfo,
    /// Whole days until notAfter; negative once expired.
    pub days_left: Option<i64>,
    /// `self-signed`, `expired`, `name mismatch`, ...
    pub problems: Vec<String>,
    /// Where it was read: `rustls session` or `TLS 1.2 handshake in clear`.
    pub source: String,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// Something about the configuration worth changing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier: `nla-not-required`, `tls-1.0-enabled`, ...
    pub id: &'static str,
    pub severity: Severity,
    pub detail: String,
}

/// The whole scan: `rdptrace-scan/1` (see README.md, "Scan").
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub schema: &'static str,
    pub target: String,
    pub address: Option<String>,
    pub started_at: String,
    /// Why the scan could not run (no address, nothing answers), or null.
    pub error: Option<String>,
    pub protocols: Vec<ProtocolResult>,
    /// The server refuses PROTOCOL_SSL and PROTOCOL_RDP requested alone and accepts a CredSSP protocol.
    pub nla_required: Option<bool>,
    pub rdp_security: RdpSecurityResult,
    pub tls: TlsResult,
    pub certificate: Option<CertificateResult>,
    pub ntlm: ntlm::NtlmResult,
    pub findings: Vec<Finding>,
    /// How many TCP connections the scan opened.
    pub connections: u32,
}

impl ScanReport {
    fn new(target: String) -> Self {
        ScanReport {
            schema: SCHEMA,
            target,
            address: None,
            started_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            error: None,
            protocols: Vec::new(),
            nla_required: None,
            rdp_security: RdpSecurityResult::default(),
            tls: TlsResult::default(),
            certificate: None,
            ntlm: ntlm::NtlmResult::default(),
            findings: Vec::new(),
            connections: 0,
        }
    }

    /// Whether the server accepted `protocol` requested alone.
    pub fn accepts(&self, protocol: u32) -> bool {
        self.protocols
            .iter()
            .any(|p| p.value == protocol && p.accepted)
    }
}

/// Requests one protocol alone.
pub async fn protocol(ep: &Endpoint, value: u32) -> ProtocolResult {
    let _permit = ep.permit().await;
    let (answer, link) = negotiate::negotiate(ep, value).await;
    if let Some(mut link) = link {
        link.close().await;
    }
    let result = ProtocolResult {
        protocol: codes::protocol_names(value),
        value,
        accepted: negotiate::accepts(value, &answer),
        answer: answer.text(),
        judgement: negotiate::judgement(value, &answer),
        raw: answer,
    };
    debug!(target = %ep.target(), protocol = %result.protocol, answer = %result.answer, "x224 answer");
    result
}

/// Runs the whole scan. Never fails: what could not be learned is said in the report.
pub async fn scan(cfg: &ScanConfig) -> ScanReport {
    let target = if cfg.host.contains(':') {
        format!("[{}]:{}", cfg.host, cfg.port)
    } else {
        format!("{}:{}", cfg.host, cfg.port)
    };
    let mut report = ScanReport::new(target);
    let ep = match Endpoint::resolve(&cfg.host, cfg.port, cfg.timeout, cfg.concurrency).await {
        Ok(ep) => ep,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    report.address = Some(ep.addr.to_string());

    report.protocols = futures_join(PROTOCOLS.iter().map(|p| protocol(&ep, *p))).await;
    if report
        .protocols
        .iter()
        .all(|p| matches!(p.raw, Answer::NoConfirm { .. }))
    {
        let why = report
            .protocols
            .first()
            .map(|p| p.answer.clone())
            .unwrap_or_default();
        report.error = Some(format!("no X.224 Connection Confirm to any request: {why}"));
        report.connections = ep.connections();
        return report;
    }
    let credssp = report.accepts(PROTOCOL_HYBRID) || report.accepts(PROTOCOL_HYBRID_EX);
    report.nla_required =
        Some(!report.accepts(PROTOCOL_SSL) && !report.accepts(PROTOCOL_RDP) && credssp);

    let tls_via = [PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX]
        .into_iter()
        .find(|p| report.accepts(*p));
    let credssp_via = [PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX]
        .into_iter()
        .find(|p| report.accepts(*p));

    let rdp = async {
        if !report.accepts(PROTOCOL_RDP) {
            return RdpSecurityResult::default();
        }
        let methods = futures_join(rdp_security::METHODS.iter().map(|m| async {
            let _permit = ep.permit().await;
            rdp_security::try_method(&ep, *m).await
        }))
        .await;
        RdpSecurityResult {
            tested: true,
            level: methods
                .iter()
                .find_map(|m| m.level)
                .map(crate::dissect::mcs_connect::encryption_level_name),
            server_certificate: methods.iter().find_map(|m| m.server_certificate.clone()),
            methods,
        }
    };
    let versions = async {
        let Some(via) = tls_via else {
            return Vec::new();
        };
        futures_join(
            tls::VERSIONS
                .iter()
                .map(|v| tls::version(&ep, via, *v, cfg.suites)),
        )
        .await
    };
    let session = async {
        let via = tls_via?;
        let _permit = ep.permit().await;
        Some(ntlm::tls_session(&ep, via).await.map(|mut s| {
            let chain = std::mem::take(&mut s.chain);
            let text = format!("{}, {}", s.version, s.suite);
            (text, chain)
        }))
    };
    let ntlm = async {
        match credssp_via {
            Some(via) => ntlm::challenge(&ep, via).await,
            None => ntlm::NtlmResult::default(),
        }
    };
    let (rdp, versions, session, ntlm) = tokio::join!(rdp, versions, session, ntlm);
    report.rdp_security = rdp;
    report.ntlm = ntlm;
    report.tls.tested = tls_via.is_some();
    report.tls.via = tls_via.map(codes::protocol_names);
    let mut chain_source: Option<(Vec<Vec<u8>>, String)> = None;
    match session {
        Some(Ok((text, chain))) => {
            report.tls.session = Some(text);
            if !chain.is_empty() {
                chain_source = Some((chain, "rustls session".to_owned()));
            }
        }
        Some(Err(e)) => report.tls.session = Some(e),
        None => {}
    }
    for v in versions {
        match v {
            Ok(v) => {
                if chain_source.is_none() && !v.chain.is_empty() {
                    chain_source =
                        Some((v.chain.clone(), format!("{} handshake in clear", v.version)));
                }
                report.tls.versions.push(v);
            }
            Err(tls::NoTls(why)) => {
                report.tls.session.get_or_insert(why);
            }
        }
    }
    if let Some((chain, source)) = chain_source
        && let Some(leaf) = chain.first()
    {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(info) = crate::cert::cert_info(leaf) {
            report.certificate = Some(CertificateResult {
                days_left: crate::check::judge::days_left(&info.not_after, now),
                problems: crate::cert::problems(leaf, &cfg.host, now)
                    .into_iter()
                    .map(|(p, _)| p.as_str().to_owned())
                    .collect(),
                info,
                source,
            });
        }
    }
    report.findings = findings(&report);
    report.connections = ep.connections();
    info!(target = %report.target, findings = report.findings.len(), connections = report.connections, "scan done");
    report
}

/// Runs futures concurrently (each waits only for its own connection slot) and collects their outputs
/// in order.
async fn futures_join<F: core::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    join_all(futures.map(Box::pin).collect()).await
}

/// Polls all futures together until every one has finished.
async fn join_all<F: core::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    core::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(outputs.iter_mut()) {
            if slot.is_none() {
                match core::pin::Pin::new(f).poll(cx) {
                    core::task::Poll::Ready(v) => *slot = Some(v),
                    core::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            core::task::Poll::Pending
        } else {
            core::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The findings of a report.
pub fn findings(r: &ScanReport) -> Vec<Finding> {
    let mut out = Vec::new();
    if r.accepts(PROTOCOL_SSL) || r.accepts(PROTOCOL_RDP) {
        let without: Vec<&str> = r
            .protocols
            .iter()
            .filter(|p| p.accepted && (p.value == PROTOCOL_SSL || p.value == PROTOCOL_RDP))
            .map(|p| p.protocol.as_str())
            .collect();
        out.push(Finding {
            id: "nla-not-required",
            severity: Severity::High,
            detail: format!(
                "the server accepts {} requested alone: the logon screen is reachable without Network Level Authentication",
                without.join(" and ")
            ),
        });
    }
    if r.accepts(PROTOCOL_RDP) {
        out.push(Finding {
            id: "standard-rdp-security",
            severity: Severity::Medium,
            detail: "the server accepts Standard RDP Security ([MS-RDPBCGR] 5.3): the server is not authenticated and the keys are exchanged without TLS".to_owned(),
        });
    }
    let accepted: Vec<&rdp_security::MethodResult> = r
        .rdp_security
        .methods
        .iter()
        .filter(|m| m.accepted)
        .collect();
    let weak: Vec<&str> = accepted
        .iter()
        .filter(|m| m.value == 0x01 || m.value == 0x08)
        .map(|m| m.method.as_str())
        .collect();
    let rc4: Vec<&str> = accepted
        .iter()
        .filter(|m| m.value != 0x10)
        .map(|m| m.method.as_str())
        .collect();
    if !weak.is_empty() {
        out.push(Finding {
            id: "weak-rdp-encryption",
            severity: Severity::High,
            detail: format!(
                "Standard RDP Security with {} (RC4 with 40- or 56-bit keys)",
                weak.join(", ")
            ),
        });
    } else if !rc4.is_empty() {
        out.push(Finding {
            id: "weak-rdp-encryption",
            severity: Severity::Medium,
            detail: format!("Standard RDP Security with {} (RC4)", rc4.join(", ")),
        });
    }
    if r.rdp_security.tested
        && matches!(
            r.rdp_security.level.as_deref(),
            Some("ENCRYPTION_LEVEL_NONE") | Some("ENCRYPTION_LEVEL_LOW")
        )
    {
        out.push(Finding {
            id: "rdp-encryption-off",
            severity: Severity::High,
            detail: format!(
                "Standard RDP Security at {}: traffic is not encrypted in both directions",
                r.rdp_security.level.as_deref().unwrap_or_default()
            ),
        });
    }
    for (v, id) in [(0x0301u16, "tls-1.0-enabled"), (0x0302, "tls-1.1-enabled")] {
        if r.tls.versions.iter().any(|x| x.value == v && x.accepted) {
            out.push(Finding {
                id,
                severity: Severity::Medium,
                detail: format!(
                    "the server accepts {} (deprecated by RFC 8996)",
                    crate::dissect::tls::version_name(v)
                ),
            });
        }
    }
    let weak_suites: Vec<String> = r
        .tls
        .versions
        .iter()
        .flat_map(|v| {
            v.cipher_suites
                .iter()
                .filter(|s| s.weak)
                .map(move |s| format!("{} ({})", s.name, v.version))
        })
        .collect();
    if !weak_suites.is_empty() {
        out.push(Finding {
            id: "weak-cipher-suite",
            severity: Severity::Medium,
            detail: format!("the server accepts {}", weak_suites.join(", ")),
        });
    }
    if let Some(c) = &r.certificate {
        let has = |p: &str| c.problems.iter().any(|x| x == p);
        if has("expired") {
            out.push(Finding {
                id: "certificate-expired",
                severity: Severity::High,
                detail: format!("the certificate expired on {}", c.info.not_after),
            });
        } else if let Some(days) = c.days_left
            && days < EXPIRY_WARNING_DAYS
        {
            out.push(Finding {
                id: "certificate-expiring-soon",
                severity: Severity::Medium,
                detail: format!(
                    "the certificate expires in {days} days ({})",
                    c.info.not_after
                ),
            });
        }
        if has("not yet valid") {
            out.push(Finding {
                id: "certificate-not-yet-valid",
                severity: Severity::High,
                detail: format!("the certificate is valid only from {}", c.info.not_before),
            });
        }
        if has("self-signed") {
            out.push(Finding {
                id: "certificate-self-signed",
                severity: Severity::Low,
                detail: format!(
                    "the certificate is self-signed ({}): clients cannot authenticate the server without pinning it",
                    c.info.subject
                ),
            });
        }
        if has("weak key") {
            out.push(Finding {
                id: "certificate-weak-key",
                severity: Severity::Medium,
                detail: format!(
                    "the certificate has a {} key of {} bits",
                    c.info.key_type,
                    c.info.key_bits.unwrap_or(0)
                ),
            });
        }
        if has("name mismatch") {
            out.push(Finding {
                id: "certificate-name-mismatch",
                severity: Severity::Info,
                detail: format!(
                    "the certificate does not name {} ({})",
                    r.target,
                    if c.info.sans.is_empty() {
                        c.info.subject.clone()
                    } else {
                        c.info.sans.join(", ")
                    }
                ),
            });
        }
    }
    out.sort_by_key(|f| f.severity);
    out
}
