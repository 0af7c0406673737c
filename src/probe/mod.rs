//! The live probe: drives ironrdp-connector state by state over tokio, reads every frame before the
//! connector does, and feeds both directions to the dissector.
//!
//! The connector decides what the client sends; the dissector records what went by; the probe adds what
//! only a live client knows (connect errors, deadlines, the TLS session's certificate) and keeps reading
//! after the connector gives up, so that the Disconnect Provider Ultimatum and the close that follow an
//! error are in the trace too.
//!
//! One `Run` per probe, its steps by phase: `tcp` (resolve and connect), `tls` (the upgrade, and the
//! rustls client), `credssp`, `standard_security`, `connector` (ironrdp-connector stepped to the active
//! state, then the watch), and `io` (every write and read of the socket).

pub mod cli;
mod connector;
mod credssp;
mod gateway;
mod io;
pub mod kdc;
pub mod kerberos;
mod kkdcp;
mod krb_compat;
pub mod pcap;
pub mod redirect;
mod standard_security;
pub(crate) mod tcp;
pub mod tls;
pub mod transport;

use core::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironrdp_pdu::nego::SecurityProtocol;

use self::transport::{Conn, Framer, TapLog};
use crate::dissect::Dissector;
use crate::rdp_security::client::ClientShim;
use crate::trace::{CloseKind, Deadline, EventKind, Origin, Side, Trace};

/// A password that never prints.
#[derive(Clone, Default)]
pub struct Password(String);

impl Password {
    pub fn new(s: String) -> Self {
        Password(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<password>")
    }
}

/// The identity the probe logs on with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub domain: Option<String>,
    pub password: Password,
}

/// What the client requests in its RDP_NEG_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Security {
    /// SSL|HYBRID|HYBRID_EX with credentials (as mstsc does), SSL alone without.
    Auto,
    /// PROTOCOL_RDP: Standard RDP Security.
    Rdp,
    /// PROTOCOL_SSL: TLS, then a logon screen.
    Tls,
    /// PROTOCOL_HYBRID: CredSSP.
    Nla,
    /// PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX: CredSSP with Early User Authorization.
    NlaEx,
}

/// How NLA authenticates ([MS-CSSP] over [MS-SPNG]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// As mstsc: Kerberos when the user has a realm and a KDC is found, NTLM when Kerberos cannot be used
    /// or fails in a way Negotiate falls back on.
    Negotiate,
    /// Kerberos only: no fallback to NTLM (SPNEGO package list `kerberos,!ntlm`).
    Kerberos,
    /// NTLM only.
    Ntlm,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Negotiate => "negotiate",
            Auth::Kerberos => "kerberos",
            Auth::Ntlm => "ntlm",
        }
    }
}

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The target as the user wrote it.
    pub target: String,
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    pub security: Security,
    /// How NLA authenticates.
    pub auth: Auth,
    /// The KDC (`--kdc`); otherwise krb5.conf, then DNS SRV records.
    pub kdc: Option<url::Url>,
    /// The whole probe.
    pub timeout: Duration,
    /// Each wait for the server.
    pub phase_timeout: Duration,
    /// How long to watch the session once it is active.
    pub watch: Duration,
    pub strict_cert: bool,
    /// The highest TLS version the client offers.
    pub tls_max: TlsMax,
    /// Append the TLS secrets to this file (NSS key log format).
    pub keylog: Option<PathBuf>,
    /// Write the session as a pcapng file here.
    pub pcap: Option<PathBuf>,
    /// Put the TLS secrets into the pcapng file (a Decryption Secrets Block).
    pub embed_secrets: bool,
    pub client_name: String,
    /// Under Standard RDP Security, sign with the salted MAC ([5.3.6.1.1]) as FreeRDP does, not the plain one
    /// every server checks (see [`ClientShim::with_salted_mac`]).
    pub salted_mac: bool,
    /// Go through this RD Gateway ([MS-TSGU]).
    pub gateway: Option<crate::gateway::GatewayConfig>,
    /// [2.2.1.1] the routing token of the X.224 Connection Request, in place of the cookie: the
    /// collection's load-balance info (`tsv://MS Terminal Services Plugin.1.<collection>`), or the
    /// LoadBalanceInfo of a Server Redirection PDU.
    pub load_balance_info: Option<String>,
    /// What a Server Redirection PDU gave for this connection (the session, the password cookie).
    pub redirected: Option<redirect::Redirected>,
    /// Follow Server Redirection PDUs (at most [`redirect::MAX_HOPS`] connections); `--no-follow` clears it.
    pub follow_redirects: bool,
}

/// The highest TLS version the probe offers (`--tls-max`): a client limited to TLS 1.2 meets a server as
/// older clients and some gateways do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsMax {
    #[value(name = "1.2")]
    Tls12,
    #[default]
    #[value(name = "1.3")]
    Tls13,
}

/// The default RDP port.
pub const DEFAULT_PORT: u16 = 3389;

impl ProbeConfig {
    /// A configuration for `host[:port]` (`[v6addr]:port` for IPv6) with the defaults.
    pub fn new(target: &str) -> Result<Self, String> {
        let (host, port) = split_target(target)?;
        Ok(ProbeConfig {
            target: target.to_owned(),
            host,
            port,
            credentials: None,
            security: Security::Auto,
            auth: Auth::Negotiate,
            kdc: None,
            timeout: Duration::from_secs(20),
            phase_timeout: Duration::from_secs(5),
            watch: Duration::from_secs(2),
            strict_cert: false,
            tls_max: TlsMax::Tls13,
            keylog: None,
            pcap: None,
            embed_secrets: false,
            client_name: "rdptrace".to_owned(),
            salted_mac: false,
            gateway: None,
            load_balance_info: None,
            redirected: None,
            follow_redirects: true,
        })
    }

    /// The requestedProtocols this configuration sends.
    pub fn requested_protocols(&self) -> SecurityProtocol {
        match self.security {
            Security::Auto if self.credentials.is_some() => {
                SecurityProtocol::SSL | SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX
            }
            Security::Auto | Security::Tls => SecurityProtocol::SSL,
            Security::Rdp => SecurityProtocol::empty(),
            Security::Nla => SecurityProtocol::HYBRID,
            Security::NlaEx => SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX,
        }
    }
}

/// Splits `host[:port]`, `[v6]:port` or a bare IPv6 address.
pub fn split_target(target: &str) -> Result<(String, u16), String> {
    let target = target.trim();
    if target.is_empty() {
        return Err("empty target".to_owned());
    }
    if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {target}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in {target}"))?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return Err(format!("unexpected text after ] in {target}")),
        };
        return Ok((host.to_owned(), port));
    }
    if target.matches(':').count() > 1 {
        // A bare IPv6 address.
        return Ok((target.to_owned(), DEFAULT_PORT));
    }
    match target.split_once(':') {
        Some((host, port)) => {
            let port = port.parse().map_err(|_| format!("bad port in {target}"))?;
            Ok((host.to_owned(), port))
        }
        None => Ok((target.to_owned(), DEFAULT_PORT)),
    }
}

/// Probes one target, following Server Redirection PDUs when the configuration says so. Never fails: whatever
/// happens is in the trace.
pub async fn probe(config: &ProbeConfig) -> Trace {
    redirect::follow(config).await
}

/// One connection probed: its trace, the Server Redirection PDU that ended it (when one did), and what
/// `--pcap` gets of it.
pub(crate) struct Once {
    pub trace: Trace,
    pub redirection: Option<Box<ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu>>,
    pub capture: Option<pcap::Recorder>,
    /// The TLS secrets, for `--embed-secrets`.
    pub secrets: String,
    /// When the run ended, ms since its start.
    pub ended_at: f64,
}

/// Probes one connection. Never fails: whatever happens is in the trace.
pub(crate) async fn probe_once(config: &ProbeConfig) -> Once {
    let start = Instant::now();
    let started_wall = std::time::SystemTime::now();
    let mut trace = Trace::new(format!("{}:{}", config.host, config.port), Origin::Probe);
    trace.started_at = Some(now_rfc3339());
    trace.request.credentials = config.credentials.is_some();
    trace.request.user = config.credentials.as_ref().map(|c| c.user.clone());
    trace.request.domain = config.credentials.as_ref().and_then(|c| c.domain.clone());
    trace.request.strict_cert = config.strict_cert;
    trace.request.requested_protocols = Some(config.requested_protocols().bits());
    trace.request.gateway = config.gateway.as_ref().map(|g| g.address());
    trace.request.load_balance_info = config.load_balance_info.clone();
    let mut d = Dissector::new(trace);
    d.set_plaintext_external(true);
    let mut run = Run {
        cfg: config,
        start,
        tokio_start: tokio::time::Instant::now(),
        d,
        tap: Arc::new(Mutex::new(TapLog::default())),
        conn: Conn::Gone,
        framer: Framer::default(),
        started_wall,
        recorder: None,
        secrets: Arc::new(Mutex::new(String::new())),
        rdp_security: None,
        client_addr: None,
        gateway: None,
        redirection: None,
        krb_salt: None,
    };
    let failed = run.run().await;
    run.drain_tap();
    // The socket closes when the run ends; a capture shows it as the client's FIN.
    let at = run.at();
    if let Some(r) = run.recorder.as_mut() {
        r.close(Side::Client, CloseKind::Fin, at);
    }
    if let Some(r) = run.gateway_capture(at) {
        run.recorder = Some(r);
    }
    let secrets = if config.embed_secrets {
        run.secrets.lock().map(|s| s.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    let capture = run.recorder.take();
    let redirection = run.redirection.take();
    let mut trace = run.d.into_trace();
    trace.finish(failed);
    Once {
        trace,
        redirection,
        capture: capture.filter(|_| config.pcap.is_some()),
        secrets,
        ended_at: at,
    }
}

/// Writes `--pcap` (every connection of the probe in one file); a failure is recorded in the trace.
pub(crate) fn write_capture(
    config: &ProbeConfig,
    trace: &mut Trace,
    capture: Option<&pcap::Recorder>,
    secrets: &str,
    at: f64,
) {
    let (Some(path), Some(recorder)) = (&config.pcap, capture) else {
        return;
    };
    let secrets = config.embed_secrets.then_some(secrets);
    let written = recorder.write(path, secrets);
    if recorder.truncated {
        trace.record_event(
            at,
            EventKind::Anomaly {
                detail: format!("the capture was cut at {} MB", pcap::MAX_CAPTURE >> 20),
            },
        );
    }
    if let Err(e) = written {
        trace.record_event(at, EventKind::Anomaly { detail: e });
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A probe's clock: the time of what it records, and the deadline of each wait (`--phase-timeout` for each
/// answer, within `--timeout` for the whole probe).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub start: Instant,
    pub tokio_start: tokio::time::Instant,
    pub timeout: Duration,
    pub phase_timeout: Duration,
}

impl Clock {
    /// Milliseconds since the start.
    pub fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// The end of the whole probe.
    pub fn end(&self) -> tokio::time::Instant {
        self.tokio_start + self.timeout
    }

    /// The deadline for the next wait, and which one it is.
    pub fn deadline(&self) -> (tokio::time::Instant, Deadline) {
        let total = self.end();
        let phase = tokio::time::Instant::now() + self.phase_timeout;
        if phase <= total {
            (
                phase,
                Deadline::Phase {
                    seconds: self.phase_timeout.as_secs_f64(),
                },
            )
        } else {
            (
                total,
                Deadline::Total {
                    seconds: self.timeout.as_secs_f64(),
                },
            )
        }
    }
}

/// Why the run stopped early; what happened is already recorded.
#[derive(Debug)]
struct Stop;

/// One probe: the connection, what records it (the dissector, the tap, the capture) and its deadlines. Its
/// steps are in the module of their phase.
struct Run<'a> {
    cfg: &'a ProbeConfig,
    start: Instant,
    tokio_start: tokio::time::Instant,
    d: Dissector,
    tap: Arc<Mutex<TapLog>>,
    conn: Conn,
    framer: Framer,
    started_wall: std::time::SystemTime,
    /// The session as packets, for `--pcap`.
    recorder: Option<pcap::Recorder>,
    /// The TLS secrets, for `--embed-secrets`.
    secrets: Arc<Mutex<String>>,
    /// Standard RDP Security between the socket and the connector, when the client requests PROTOCOL_RDP
    /// or follows a server that falls back to it.
    rdp_security: Option<ClientShim>,
    client_addr: Option<SocketAddr>,
    /// The gateway's connections, when the run goes through one.
    gateway: Option<gateway::GatewayState>,
    /// The Server Redirection PDU that ended the connection.
    redirection: Option<Box<ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu>>,
    /// The salt of the user's key, from the KDC's KDC_ERR_PREAUTH_REQUIRED.
    krb_salt: Option<String>,
}

impl Run<'_> {
    /// Runs the probe; returns whether the connection failed.
    async fn run(&mut self) -> bool {
        match self.sequence().await {
            Ok(()) => false,
            Err(Stop) => true,
        }
    }

    fn at(&self) -> f64 {
        self.clock().at()
    }

    /// The deadline for the next wait, and which one it is.
    fn deadline(&self) -> (tokio::time::Instant, Deadline) {
        self.clock().deadline()
    }

    /// The run's clock and deadlines.
    fn clock(&self) -> Clock {
        Clock {
            start: self.start,
            tokio_start: self.tokio_start,
            timeout: self.cfg.timeout,
            phase_timeout: self.cfg.phase_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(split_target("host").unwrap(), ("host".to_owned(), 3389));
        assert_eq!(
            split_target("host:3390").unwrap(),
            ("host".to_owned(), 3390)
        );
        assert_eq!(
            split_target("[::1]:3390").unwrap(),
            ("::1".to_owned(), 3390)
        );
        assert_eq!(split_target("::1").unwrap(), ("::1".to_owned(), 3389));
        assert!(split_target("host:x").is_err());
        assert!(split_target("").is_err());
    }

    #[test]
    fn password_never_prints() {
        let p = Password::new("marker-secret".to_owned());
        assert_eq!(format!("{p:?}"), "<password>");
    }
}
