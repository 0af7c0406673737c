//! The live probe: drives ironrdp-connector state by state over tokio, reads every frame before the
//! connector does, and feeds both directions to the dissector.
//!
//! The connector decides what the client sends; the dissector records what went by; the probe adds what
//! only a live client knows (connect errors, deadlines, the TLS session's certificate) and keeps reading
//! after the connector gives up, so that the Disconnect Provider Ultimatum and the close that follow an
//! error are in the trace too.

pub mod cli;
pub mod pcap;
pub mod tls;
pub mod transport;

use core::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::sspi::credssp::ClientState;
use ironrdp_connector::sspi::generator::GeneratorState;
use ironrdp_connector::{
    ClientConnector, ClientConnectorState, ConnectorError, ConnectorErrorKind, Sequence as _,
    ServerName, State as _,
};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;
use tokio::net::TcpStream;
use tracing::{debug, info};

use self::transport::{Conn, FrameKind, Framer, ReadError, Tap, TapLog};
use crate::dissect::Dissector;
use crate::pdu::PduInfo;
use crate::rdp_security::SecurityError;
use crate::rdp_security::client::ClientShim;
use crate::rdp_security::sink::SessionSink;
use crate::trace::Fact;
use crate::trace::{CloseKind, ConnectError, Deadline, EventKind, Origin, PhaseName, Side, Trace};

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

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The target as the user wrote it.
    pub target: String,
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    pub security: Security,
    /// The whole probe.
    pub timeout: Duration,
    /// Each wait for the server.
    pub phase_timeout: Duration,
    /// How long to watch the session once it is active.
    pub watch: Duration,
    pub strict_cert: bool,
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
            timeout: Duration::from_secs(20),
            phase_timeout: Duration::from_secs(5),
            watch: Duration::from_secs(2),
            strict_cert: false,
            keylog: None,
            pcap: None,
            embed_secrets: false,
            client_name: "rdptrace".to_owned(),
            salted_mac: false,
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

/// Probes one target. Never fails: whatever happens is in the trace.
pub async fn probe(config: &ProbeConfig) -> Trace {
    let start = Instant::now();
    let started_wall = std::time::SystemTime::now();
    let mut trace = Trace::new(format!("{}:{}", config.host, config.port), Origin::Probe);
    trace.started_at = Some(now_rfc3339());
    trace.request.credentials = config.credentials.is_some();
    trace.request.user = config.credentials.as_ref().map(|c| c.user.clone());
    trace.request.domain = config.credentials.as_ref().and_then(|c| c.domain.clone());
    trace.request.strict_cert = config.strict_cert;
    trace.request.requested_protocols = Some(config.requested_protocols().bits());
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
    };
    let failed = run.run().await;
    run.drain_tap();
    // The socket closes when the run ends; a capture shows it as the client's FIN.
    let at = run.at();
    if let Some(r) = run.recorder.as_mut() {
        r.close(Side::Client, CloseKind::Fin, at);
    }
    run.write_capture();
    let mut trace = run.d.into_trace();
    trace.finish(failed);
    trace
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Why the run stopped early; what happened is already recorded.
#[derive(Debug)]
struct Stop;

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
}

impl Run<'_> {
    /// The Client Info PDU carries the password inside TLS. When the TLS secrets are written (a key log, or a
    /// capture with embedded secrets), anyone with the file could read it: the probe sends the Client Info
    /// without it. Under NLA the server already has the credentials from CredSSP and logs on with them;
    /// under TLS alone it shows its logon screen, which is as far as a probe needs to go.
    fn withhold_password_if_secrets_are_written(
        &mut self,
        connector: &mut ClientConnector,
        nla: bool,
    ) {
        let secrets_written =
            self.cfg.keylog.is_some() || (self.cfg.pcap.is_some() && self.cfg.embed_secrets);
        if !secrets_written || self.cfg.credentials.is_none() {
            return;
        }
        if let ironrdp_connector::Credentials::UsernamePassword { password, .. } =
            &mut connector.config.credentials
        {
            password.clear();
        }
        if !nla {
            connector.config.autologon = false;
        }
        self.d.trace_mut().fact_in(
            PhaseName::SecureSettings,
            Fact::ClientInfoPassword,
            "withheld: the TLS secrets are being written",
        );
    }

    /// Writes `--pcap`; a failure is recorded in the trace.
    fn write_capture(&mut self) {
        let (Some(path), Some(recorder)) = (&self.cfg.pcap, &self.recorder) else {
            return;
        };
        let secrets = if self.cfg.embed_secrets {
            self.secrets.lock().map(|s| s.clone()).ok()
        } else {
            None
        };
        let at = self.at();
        let truncated = recorder.truncated;
        let written = recorder.write(path, secrets.as_deref());
        if truncated {
            self.d.trace_mut().record_event(
                at,
                EventKind::Anomaly {
                    detail: format!("the capture was cut at {} MB", pcap::MAX_CAPTURE >> 20),
                },
            );
        }
        if let Err(e) = written {
            self.d
                .trace_mut()
                .record_event(at, EventKind::Anomaly { detail: e });
        }
    }

    /// The server closed or reset the connection.
    fn server_closed(&mut self, how: CloseKind, at: f64) {
        self.d.on_close(Side::Server, how, at);
        if let Some(r) = self.recorder.as_mut() {
            r.close(Side::Server, how, at);
        }
    }

    fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// The deadline for the next wait, and which one it is.
    fn deadline(&self) -> (tokio::time::Instant, Deadline) {
        let total = self.tokio_start + self.cfg.timeout;
        let phase = tokio::time::Instant::now() + self.cfg.phase_timeout;
        if phase <= total {
            (
                phase,
                Deadline::Phase {
                    seconds: self.cfg.phase_timeout.as_secs_f64(),
                },
            )
        } else {
            (
                total,
                Deadline::Total {
                    seconds: self.cfg.timeout.as_secs_f64(),
                },
            )
        }
    }

    /// Feeds what the tap copied off the socket to the dissector.
    fn drain_tap(&mut self) {
        let chunks = match self.tap.lock() {
            Ok(mut log) => log.drain(),
            Err(_) => Vec::new(),
        };
        for (side, at, bytes) in chunks {
            if let Some(r) = self.recorder.as_mut() {
                r.data(side, at, &bytes);
            }
            self.d.on_tcp_data(side, at, &bytes);
        }
    }

    /// Feeds a frame read off the connection to the dissector (plaintext first), then the raw bytes.
    fn feed_read(&mut self, res: &Result<Vec<u8>, ReadError>) {
        if let Ok(frame) = res {
            let at = self.at();
            if self.conn.is_tls() {
                self.d.on_plaintext(Side::Server, at, frame);
            }
        }
        self.drain_tap();
    }

    /// Runs the probe; returns whether the connection failed.
    async fn run(&mut self) -> bool {
        match self.sequence().await {
            Ok(()) => false,
            Err(Stop) => true,
        }
    }

    /// Sets up Standard RDP Security: the client random, the shim that encrypts for the connector, and the
    /// dissector's sink that decrypts what goes by ([5.3.4]).
    fn enable_standard_security(&mut self) -> Result<(), Stop> {
        let mut random = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut random) {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: format!("no random numbers for the client random: {e}"),
                },
            );
            return Err(Stop);
        }
        self.d
            .set_security_sink(Box::new(SessionSink::with_client_random(random)));
        // Beside the TLS secrets, so that a capture of this session replays decrypted.
        let line = format!(
            "{} {}\n",
            crate::replay::keylog::RDP_CLIENT_RANDOM,
            hex::encode(random)
        );
        if self.cfg.embed_secrets
            && let Ok(mut kept) = self.secrets.lock()
        {
            kept.push_str(&line);
        }
        if let Some(path) = &self.cfg.keylog {
            use std::io::Write as _;
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::Anomaly {
                        detail: format!("cannot write the key log {}: {e}", path.display()),
                    },
                );
            }
        }
        self.rdp_security = Some(ClientShim::new(random).with_salted_mac(self.cfg.salted_mac));
        Ok(())
    }

    /// In `auto` mode, a server that answers TLS and NLA with Standard RDP Security ([MS-RDPBCGR]
    /// 3.3.5.3.2 allows it) is followed there, as mstsc and xfreerdp do: the connector is remade to accept
    /// PROTOCOL_RDP before it reads the Connection Confirm.
    fn follow_fallback_to_standard_security(
        &mut self,
        connector: &mut ClientConnector,
    ) -> Result<(), Stop> {
        let fallback = matches!(
            crate::dissect::negotiation_of(self.d.trace()),
            Some(crate::pdu::Negotiation::Response {
                selected_protocol: 0,
                ..
            })
        );
        if !fallback
            || self.cfg.security != Security::Auto
            || self.rdp_security.is_some()
            || !matches!(
                connector.state,
                ClientConnectorState::ConnectionInitiationWaitConfirm { .. }
            )
        {
            return Ok(());
        }
        self.enable_standard_security()?;
        let mut config = self.connector_config();
        config.enable_standard_rdp_security = true;
        let local = self
            .client_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut fresh = ClientConnector::new(config, local);
        // The request this connector would send is already on the wire; only its state matters.
        let mut scratch = WriteBuf::new();
        if let Err(e) =
            fresh.initiate_with_security_protocol(SecurityProtocol::empty(), &mut scratch)
        {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: format!("cannot follow the fallback to Standard RDP Security: {e}"),
                },
            );
            return Err(Stop);
        }
        *connector = fresh;
        self.d.trace_mut().fact_in(
            PhaseName::X224,
            Fact::Fallback,
            "the server chose Standard RDP Security; the probe follows it, as mstsc does",
        );
        Ok(())
    }

    async fn sequence(&mut self) -> Result<(), Stop> {
        if self.cfg.security == Security::Rdp {
            self.enable_standard_security()?;
        }
        let (stream, local, remote) = self.connect().await?;
        self.client_addr = Some(local);
        self.conn = Conn::Plain(Tap::new(stream, self.tap.clone(), self.start));

        let mut connector = ClientConnector::new(self.connector_config(), local);
        let mut buf = WriteBuf::new();
        let requested = self.cfg.requested_protocols();
        let written = connector.initiate_with_security_protocol(requested, &mut buf);
        self.after_step(written, &mut buf).await?;
        let _ = remote;

        // X.224 Connection Confirm.
        self.step_once(&mut connector, &mut buf).await?;

        // The security upgrade.
        if connector.should_perform_security_upgrade() {
            let selected = match connector.state {
                ClientConnectorState::EnhancedSecurityUpgrade { selected_protocol } => {
                    selected_protocol
                }
                _ => SecurityProtocol::empty(),
            };
            let mut public_key = Vec::new();
            if !selected.is_standard_rdp_security() {
                public_key = self.tls_upgrade().await?;
            }
            connector.mark_security_upgrade_as_done();
            let nla = connector.should_perform_credssp();
            if nla {
                self.credssp(&mut connector, selected, public_key).await?;
            }
            if !selected.is_standard_rdp_security() {
                self.withhold_password_if_secrets_are_written(&mut connector, nla);
            }
        }

        // MCS, channels, Client Info, licensing, capabilities, finalization.
        // INVARIANT: every pass either reads a frame (bounded by the deadlines) or lets the connector take a
        // step; the total deadline ends it.
        loop {
            if let ClientConnectorState::Connected { .. } = connector.state {
                break;
            }
            if let ClientConnectorState::Redirected { .. } = connector.state {
                // The dissector recorded the Server Redirection PDU.
                self.leave("the server redirected the client").await;
                return Err(Stop);
            }
            if connector.should_perform_multitransport() {
                buf.clear();
                let written = connector.skip_multitransport(&mut buf);
                self.after_step(written, &mut buf).await?;
                continue;
            }
            self.step_once(&mut connector, &mut buf).await?;
        }
        info!(target = %self.cfg.target, "connected");
        self.watch().await
    }

    /// Resolves and connects; records the tcp phase.
    async fn connect(&mut self) -> Result<(TcpStream, SocketAddr, SocketAddr), Stop> {
        let host = self.cfg.host.clone();
        let at = self.at();
        self.d.trace_mut().enter(PhaseName::Tcp, at);
        let (deadline, which) = self.deadline();
        let lookup = tokio::time::timeout_at(
            deadline,
            tokio::net::lookup_host((host.clone(), self.cfg.port)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match lookup {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ResolveFailed {
                        host,
                        error: e.to_string(),
                    },
                );
                return Err(Stop);
            }
            Err(_) => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::TimedOut {
                        deadline: which,
                        waiting_for: "name resolution".to_owned(),
                    },
                );
                return Err(Stop);
            }
        };
        if host.parse::<std::net::IpAddr>().is_err() {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::Resolved {
                    host: host.clone(),
                    addrs: addrs.iter().map(|a| a.ip().to_string()).collect(),
                },
            );
        }
        if addrs.is_empty() {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ResolveFailed {
                    host,
                    error: "no addresses".to_owned(),
                },
            );
            return Err(Stop);
        }
        for addr in addrs.iter().take(8) {
            let (deadline, which) = self.deadline();
            let res = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await;
            let error = match res {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    let at = self.at();
                    if self.cfg.pcap.is_some() {
                        let mut recorder = pcap::Recorder::new(local, *addr, self.started_wall);
                        recorder.handshake(at);
                        self.recorder = Some(recorder);
                    }
                    let trace = self.d.trace_mut();
                    trace.set_addrs(Some(local), Some(*addr));
                    trace.record_event(
                        at,
                        EventKind::Connected {
                            local: local.to_string(),
                            remote: addr.to_string(),
                        },
                    );
                    info!(%addr, "tcp connected");
                    return Ok((stream, local, *addr));
                }
                Ok(Err(e)) => match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
                    std::io::ErrorKind::TimedOut => ConnectError::TimedOut,
                    std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable => {
                        ConnectError::Unreachable(e.to_string())
                    }
                    _ => match e.raw_os_error() {
                        // EHOSTUNREACH, ENETUNREACH
                        Some(113) | Some(101) => ConnectError::Unreachable(e.to_string()),
                        _ => ConnectError::Other(e.to_string()),
                    },
                },
                Err(_) => {
                    // The probe's own deadline, not the kernel's (which gives up after minutes).
                    let at = self.at();
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::TimedOut {
                            deadline: which,
                            waiting_for: format!("SYN-ACK from {addr}"),
                        },
                    );
                    ConnectError::TimedOut
                }
            };
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ConnectFailed {
                    addr: addr.to_string(),
                    error,
                },
            );
        }
        Err(Stop)
    }

    fn connector_config(&self) -> ironrdp_connector::Config {
        let (username, password, domain) = match &self.cfg.credentials {
            Some(c) => (
                c.user.clone(),
                c.password.expose().to_owned(),
                c.domain.clone(),
            ),
            None => (String::new(), String::new(), None),
        };
        ironrdp_connector::Config {
            desktop_size: ironrdp_connector::DesktopSize {
                width: 1024,
                height: 768,
            },
            monitor_layout: None,
            desktop_scale_factor: 0,
            desktop_physical_size: None,
            desktop_orientation: None,
            device_scale_factor: None,
            monitor_extended_layout: None,
            relative_mouse_input: false,
            enable_tls: matches!(self.cfg.security, Security::Auto | Security::Tls),
            enable_credssp: matches!(
                self.cfg.security,
                Security::Auto | Security::Nla | Security::NlaEx
            ),
            enable_standard_rdp_security: self.cfg.security == Security::Rdp,
            credentials: ironrdp_connector::Credentials::UsernamePassword { username, password },
            domain,
            client_build: 0,
            client_name: self.cfg.client_name.clone(),
            keyboard_type: ironrdp_pdu::gcc::KeyboardType::IBM_ENHANCED,
            keyboard_subtype: 0,
            keyboard_functional_keys_count: 12,
            keyboard_layout: 0x0409,
            connection_type: ironrdp_pdu::gcc::ConnectionType::Lan,
            ime_file_name: String::new(),
            // [2.2.7.2.9] Surface Commands and [2.2.7.2.10] Bitmap Codecs, as mstsc and xfreerdp advertise
            // them: some servers (weston's RDP backend) end the connection right after the Font Map when
            // the client lacks Surface Commands. ironrdp advertises them only with a codec list.
            bitmap: ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities(&[])
                .ok()
                .map(|codecs| ironrdp_connector::BitmapConfig {
                    lossy_compression: false,
                    color_depth: 32,
                    codecs,
                }),
            dig_product_id: String::new(),
            client_dir: String::new(),
            alternate_shell: String::new(),
            work_dir: String::new(),
            remote_application_mode: false,
            rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
            platform: ironrdp_pdu::rdp::capability_sets::MajorPlatformType::UNIX,
            hardware_id: None,
            request_data: None,
            autologon: self.cfg.credentials.is_some(),
            enable_audio_playback: false,
            enable_audio_capture: false,
            performance_flags: ironrdp_pdu::rdp::client_info::PerformanceFlags::default(),
            license_cache: None,
            timezone_info: ironrdp_pdu::rdp::client_info::TimezoneInfo::default(),
            compression_type: None,
            enable_server_pointer: false,
            pointer_software_rendering: true,
            multitransport_flags: None,
            support_dyn_vc_gfx_protocol: false,
        }
    }

    /// Sends what the connector wrote.
    async fn after_step(
        &mut self,
        written: Result<ironrdp_connector::Written, ConnectorError>,
        buf: &mut WriteBuf,
    ) -> Result<(), Stop> {
        match written {
            Ok(written) => {
                if let Some(n) = written.size() {
                    let bytes = buf.filled().get(..n).unwrap_or(&[]).to_vec();
                    self.send(&bytes).await?;
                }
                buf.clear();
                Ok(())
            }
            Err(e) => {
                self.connector_failed(e).await;
                Err(Stop)
            }
        }
    }

    /// Writes bytes to the server (TLS plaintext once TLS is up), through Standard RDP Security when in force.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let secured;
        let bytes = match self.rdp_security.as_mut().map(|shim| shim.outgoing(bytes)) {
            Some(Ok(wire)) => {
                secured = wire;
                &secured[..]
            }
            Some(Err(e)) => {
                self.security_failed(e, Side::Client).await;
                return Err(Stop);
            }
            None => bytes,
        };
        let at = self.at();
        let res = self.conn.write_all(bytes).await;
        // Only what left: a PDU whose write failed never reached the server (nor a capture).
        if res.is_ok() && self.conn.is_tls() {
            self.d.on_plaintext(Side::Client, at, bytes);
        }
        self.drain_tap();
        if let Err(e) = res {
            self.read_failed(transport::classify(e), "to send");
            return Err(Stop);
        }
        Ok(())
    }

    /// Reads one frame and feeds it to the dissector. Returns the frame and what the dissector made of it.
    async fn recv(
        &mut self,
        kind: FrameKind,
        waiting_for: &str,
    ) -> Result<(Vec<u8>, Vec<PduInfo>), Stop> {
        let (deadline, which) = self.deadline();
        let res = self.framer.read_frame(&mut self.conn, kind, deadline).await;
        let _ = self.d.take_recent();
        if let Ok(frame) = &res {
            // Plaintext first, so that the TLS records that carried it count in the phase it belongs to.
            let at = self.at();
            if self.conn.is_tls() {
                self.d.on_plaintext(Side::Server, at, frame);
            }
        }
        self.drain_tap();
        match res {
            Ok(frame) => {
                let recent = self.d.take_recent();
                let frame = if kind == FrameKind::Rdp {
                    self.unsecure(frame).await?
                } else {
                    frame
                };
                Ok((frame, recent))
            }
            Err(ReadError::TimedOut) => {
                let at = self.at();
                self.d.on_timeout(at, which, waiting_for);
                Err(Stop)
            }
            Err(e) => {
                self.read_failed(e, waiting_for);
                Err(Stop)
            }
        }
    }

    /// A frame from the server as the connector must read it: decrypted, its security header stripped, under
    /// Standard RDP Security.
    async fn unsecure(&mut self, frame: Vec<u8>) -> Result<Vec<u8>, Stop> {
        let Some(shim) = self.rdp_security.as_mut() else {
            return Ok(frame);
        };
        match shim.incoming(&frame) {
            Ok(incoming) if incoming.mac_failed => {
                // The dissector recorded the anomaly; a client drops the connection here ([5.3.6.1]).
                let at = self.at();
                let last = self.last_server_pdu();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: last,
                        offset: None,
                        detail: "its MAC does not verify with the session keys: the server derived other keys from the client random, or the data was altered ([MS-RDPBCGR] 5.3.6)".to_owned(),
                    },
                );
                self.drain_after_error().await;
                Err(Stop)
            }
            Ok(incoming) => {
                if let Some(established) = &incoming.established {
                    info!(
                        method = %established.negotiated.method,
                        level = ?established.negotiated.level,
                        certificate = %established.certificate,
                        "standard rdp security"
                    );
                }
                Ok(incoming.frame)
            }
            Err(e) => {
                self.security_failed(e, Side::Server).await;
                Err(Stop)
            }
        }
    }

    fn last_server_pdu(&self) -> String {
        self.d
            .trace()
            .last_pdu_from(Side::Server)
            .map(|(_, p)| p.name.clone())
            .unwrap_or_else(|| "PDU".to_owned())
    }

    /// Standard RDP Security cannot go on: what the server sent is wrong, or beyond rdptrace.
    async fn security_failed(&mut self, e: SecurityError, from: Side) {
        info!(error = %e, "standard rdp security stopped");
        let at = self.at();
        let kind = match e {
            SecurityError::Malformed(detail) if from == Side::Server => EventKind::ProtocolError {
                from,
                pdu: self.last_server_pdu(),
                offset: None,
                detail,
            },
            SecurityError::Malformed(detail)
            | SecurityError::Unsupported(detail)
            | SecurityError::Crypto(detail) => EventKind::ClientLimit {
                detail: format!("Standard RDP Security: {detail}"),
            },
        };
        self.d.trace_mut().record_event(at, kind);
        self.drain_after_error().await;
    }

    fn read_failed(&mut self, e: ReadError, waiting_for: &str) {
        let at = self.at();
        match e {
            ReadError::Closed(mut how) => {
                if how == CloseKind::Fin && self.tap.lock().is_ok_and(|log| log.reset_on_write()) {
                    // The end of the stream came after a write had seen the server's reset.
                    how = CloseKind::Rst;
                }
                debug!(?how, waiting_for, "server closed");
                self.server_closed(how, at);
            }
            ReadError::TimedOut => {}
            ReadError::Garbage(what) => {
                let pending = self.framer.pending();
                if self.conn.is_tls() {
                    // The dissector saw the same bytes as plaintext only if they framed; report them here.
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ProtocolError {
                            from: Side::Server,
                            pdu: waiting_for.to_owned(),
                            offset: Some(0),
                            detail: format!("{what} ({pending} bytes)"),
                        },
                    );
                } else if !self
                    .d
                    .trace()
                    .events()
                    .any(|(_, e)| matches!(e.kind, EventKind::ProtocolError { .. }))
                {
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ProtocolError {
                            from: Side::Server,
                            pdu: waiting_for.to_owned(),
                            offset: Some(0),
                            detail: what.to_owned(),
                        },
                    );
                }
            }
            ReadError::Io(e) => {
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ClientLimit {
                        detail: format!("reading from the socket failed: {e}"),
                    },
                );
            }
        }
    }

    /// One connector step: read the frame it waits for (if any), step, send what it wrote.
    async fn step_once(
        &mut self,
        connector: &mut ClientConnector,
        buf: &mut WriteBuf,
    ) -> Result<(), Stop> {
        buf.clear();
        let Some(hint) = connector.next_pdu_hint() else {
            let written = connector.step_no_input(buf);
            return self.after_step(written, buf).await;
        };
        let waiting_for = waiting_for(connector.state.name());
        let kind = if connector.state.name() == "ConnectionInitiationWaitConfirm" {
            FrameKind::Tpkt
        } else {
            FrameKind::Rdp
        };
        // Frames the connector cannot take here (a Set Error Info, a Disconnect Provider Ultimatum, a frame
        // of the other kind) are recorded by the dissector and not handed to the connector.
        // INVARIANT: bounded by the deadlines inside `recv`.
        loop {
            let (frame, recent) = self.recv(kind, waiting_for).await?;
            let matches_hint = matches!(hint.find_size(&frame), Ok(Some((true, _))));
            let interjection = !recent.is_empty()
                && recent.iter().all(|info| {
                    matches!(
                        info,
                        PduInfo::SetErrorInfo { .. }
                            | PduInfo::DisconnectProviderUltimatum { .. }
                            | PduInfo::SaveSessionInfo { .. }
                            | PduInfo::FastPath { .. }
                    )
                });
            if recent
                .iter()
                .any(|i| matches!(i, PduInfo::DisconnectProviderUltimatum { .. }))
            {
                // The server is leaving: read what follows (the close) and stop.
                self.drain_after_error().await;
                return Err(Stop);
            }
            if !matches_hint || interjection {
                debug!(
                    state = connector.state.name(),
                    len = frame.len(),
                    "frame not for the connector"
                );
                continue;
            }
            self.follow_fallback_to_standard_security(connector)?;
            let at_state = connector.state.name();
            let written = connector.step(&frame, None, buf);
            debug!(
                from = at_state,
                to = connector.state.name(),
                "connector step"
            );
            return self.after_step(written, buf).await;
        }
    }

    /// The connector gave up: record why, unless the dissector already has the server's reason, then read
    /// what the server does next.
    async fn connector_failed(&mut self, e: ConnectorError) {
        let report = e.report().to_string();
        info!(error = %report, "connector stopped");
        let explained = match e.kind() {
            ConnectorErrorKind::Negotiation(_) => true,
            ConnectorErrorKind::AccessDenied => true,
            ConnectorErrorKind::Credssp(err) if err.nstatus.is_some() => true,
            _ => false,
        };
        if !explained {
            let at = self.at();
            if self.negotiation_mismatch() {
                // diagnose explains a selected protocol the client did not ask for.
            } else {
                let last = self
                    .d
                    .trace()
                    .last_pdu_from(Side::Server)
                    .map(|(_, p)| p.name.clone())
                    .unwrap_or_else(|| "PDU".to_owned());
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: last,
                        offset: None,
                        detail: format!("the client (ironrdp) rejected it: {report}"),
                    },
                );
            }
        }
        self.drain_after_error().await;
    }

    fn negotiation_mismatch(&self) -> bool {
        let requested = self.cfg.requested_protocols().bits();
        match crate::dissect::negotiation_of(self.d.trace()) {
            Some(crate::pdu::Negotiation::Response {
                selected_protocol, ..
            }) => {
                if selected_protocol == 0 {
                    requested != 0
                } else {
                    selected_protocol & requested != selected_protocol
                }
            }
            Some(crate::pdu::Negotiation::None) => requested != 0,
            _ => false,
        }
    }

    /// After an error, keeps reading (into the dissector only) until the server closes, for a short while.
    async fn drain_after_error(&mut self) {
        let grace = Duration::from_millis(1500);
        let total = self.tokio_start + self.cfg.timeout;
        let deadline = (tokio::time::Instant::now() + grace).min(total);
        // INVARIANT: bounded by `deadline`.
        loop {
            let res = self
                .framer
                .read_frame(&mut self.conn, FrameKind::Rdp, deadline)
                .await;
            self.feed_read(&res);
            match res {
                Ok(_) => {}
                Err(ReadError::TimedOut) => {
                    self.leave("the client gave up after the error").await;
                    return;
                }
                Err(e) => {
                    self.read_failed(e, "next PDU from the server");
                    return;
                }
            }
        }
    }

    /// The client leaves: a Disconnect Provider Ultimatum when the MCS domain is up, then close.
    async fn leave(&mut self, reason: &str) {
        let at = self.at();
        self.d.trace_mut().record_event(
            at,
            EventKind::ClientClosed {
                reason: reason.to_owned(),
            },
        );
        if self
            .d
            .trace()
            .phase(PhaseName::ChannelJoin)
            .start_ms
            .is_some()
        {
            // [2.2.2.3] MCS Disconnect Provider Ultimatum, reason rn-user-requested.
            let dpu = [0x03, 0x00, 0x00, 0x09, 0x02, 0xf0, 0x80, 0x21, 0x80];
            if self.conn.is_tls() {
                self.d.on_plaintext(Side::Client, at, &dpu);
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(500), self.conn.write_all(&dpu)).await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.conn.shutdown()).await;
        self.drain_tap();
        let at = self.at();
        if let Some(r) = self.recorder.as_mut() {
            r.close(Side::Client, CloseKind::Fin, at);
        }
        self.conn = Conn::Gone;
    }

    /// TLS handshake; returns the server's public key bits for CredSSP.
    async fn tls_upgrade(&mut self) -> Result<Vec<u8>, Stop> {
        if self.framer.pending() > 0 {
            let at = self.at();
            let n = self.framer.pending();
            self.d.trace_mut().record_event(
                at,
                EventKind::Anomaly {
                    detail: format!(
                        "{n} bytes from the server after the Connection Confirm, before TLS"
                    ),
                },
            );
        }
        let keep = self.cfg.embed_secrets.then(|| self.secrets.clone());
        let config = match tls::client_config(self.cfg.keylog.as_ref(), keep) {
            Ok(c) => c,
            Err(e) => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ClientLimit {
                        detail: format!("cannot set up TLS: {e}"),
                    },
                );
                return Err(Stop);
            }
        };
        let Some(name) = tls::server_name(&self.cfg.host) else {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: format!("{} is not a valid TLS server name", self.cfg.host),
                },
            );
            return Err(Stop);
        };
        let Conn::Plain(tap) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(Stop);
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (deadline, which) = self.deadline();
        // Fallible: a failed handshake hands the socket back, so that what the server does next (its
        // close) is in the trace too.
        let res =
            tokio::time::timeout_at(deadline, connector.connect(name, tap).into_fallible()).await;
        self.drain_tap();
        let at = self.at();
        let stream = match res {
            Err(_) => {
                self.d
                    .on_timeout(at, which, "TLS handshake from the server");
                return Err(Stop);
            }
            Ok(Err((e, tap))) => {
                self.tls_failed(e);
                let closed = self
                    .d
                    .trace()
                    .events()
                    .any(|(_, e)| matches!(e.kind, EventKind::Closed { .. }));
                if !closed {
                    self.conn = Conn::Plain(tap);
                    self.drain_after_error().await;
                }
                return Err(Stop);
            }
            Ok(Ok(stream)) => stream,
        };
        let (_, session) = stream.get_ref();
        let version = session
            .protocol_version()
            .map(tls::version_name)
            .unwrap_or_default();
        let suite = session
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let chain: Vec<Vec<u8>> = session
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let tls13 = session.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        self.conn = Conn::Tls(Box::new(stream));
        let trace = self.d.trace_mut();
        trace.record_event_in(
            PhaseName::Tls,
            at,
            EventKind::TlsEstablished {
                version: version.clone(),
                cipher_suite: suite.clone(),
            },
        );
        trace.fact_in(PhaseName::Tls, Fact::TlsVersion, version);
        trace.fact_in(PhaseName::Tls, Fact::CipherSuite, suite);
        if tls13 {
            // TLS 1.3 encrypts the Certificate message; the client's TLS stack has it.
            let infos = chain
                .iter()
                .map(|c| crate::cert::cert_info(c).unwrap_or_default())
                .collect();
            let len = chain.iter().map(Vec::len).sum();
            crate::dissect::tls::record_certificates(
                &mut self.d,
                Side::Server,
                len,
                infos,
                "from the client's TLS session",
            );
        }
        let Some(leaf) = chain.first() else {
            self.d.trace_mut().record_event(
                at,
                EventKind::ProtocolError {
                    from: Side::Server,
                    pdu: "TLS Certificate".to_owned(),
                    offset: None,
                    detail: "the server sent no certificate".to_owned(),
                },
            );
            return Err(Stop);
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let problems = crate::cert::problems(leaf, &self.cfg.host, now);
        if !problems.is_empty() {
            let list: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
            self.d
                .trace_mut()
                .fact_in(PhaseName::Tls, Fact::CertProblems, list.join(", "));
        }
        for (problem, detail) in &problems {
            self.d.trace_mut().record_event_in(
                PhaseName::Tls,
                at,
                EventKind::CertificateProblem {
                    problem: problem.clone(),
                    detail: detail.clone(),
                },
            );
        }
        if self.cfg.strict_cert && !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|(_, d)| d.clone()).collect();
            self.d.trace_mut().record_event_in(
                PhaseName::Tls,
                at,
                EventKind::TlsFailed {
                    error: format!("certificate rejected (--strict-cert): {}", list.join("; ")),
                },
            );
            self.leave("certificate rejected").await;
            return Err(Stop);
        }
        Ok(crate::cert::subject_public_key(leaf).unwrap_or_default())
    }

    fn tls_failed(&mut self, e: std::io::Error) {
        let at = self.at();
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        match rustls_error {
            Some(rustls::Error::AlertReceived(alert)) => {
                // The dissector recorded the alert from the raw bytes.
                self.d.trace_mut().record_event(
                    at,
                    EventKind::TlsFailed {
                        error: format!("the server sent alert {alert:?}"),
                    },
                );
            }
            Some(err) => {
                let old = self.d.state().tls_version.is_some_and(|v| v < 0x0303);
                if old {
                    let v = self.d.state().tls_version.unwrap_or(0);
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ClientLimit {
                            detail: crate::dissect::tls::old_version_limit(v),
                        },
                    );
                } else {
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::TlsFailed {
                            error: err.to_string(),
                        },
                    );
                }
            }
            None => match transport::classify(e) {
                ReadError::Closed(how) => self.server_closed(how, at),
                other => {
                    let detail = match other {
                        ReadError::Io(e) => e.to_string(),
                        _ => "the TLS handshake failed".to_owned(),
                    };
                    self.d
                        .trace_mut()
                        .record_event(at, EventKind::TlsFailed { error: detail });
                }
            },
        }
    }

    /// [MS-CSSP] NLA over the TLS session, stepped one TSRequest at a time.
    async fn credssp(
        &mut self,
        connector: &mut ClientConnector,
        selected: SecurityProtocol,
        public_key: Vec<u8>,
    ) -> Result<(), Stop> {
        let init = CredsspSequence::init(
            connector.config.credentials.clone(),
            connector.config.domain.as_deref(),
            selected,
            ServerName::new(self.cfg.host.clone()),
            public_key,
            None,
        );
        let (mut sequence, mut ts_request) = match init {
            Ok(v) => v,
            Err(e) => {
                self.connector_failed(e).await;
                return Err(Stop);
            }
        };
        let mut buf = WriteBuf::new();
        // INVARIANT: NTLM takes three round trips; each pass reads a frame bounded by the deadlines, and the
        // pass count is bounded too.
        for _ in 0..16 {
            let state = {
                let mut generator = sequence.process_ts_request(ts_request);
                match generator.start() {
                    GeneratorState::Completed(state) => state,
                    GeneratorState::Suspended(_) => {
                        let at = self.at();
                        self.d.trace_mut().record_event(
                            at,
                            EventKind::ClientLimit {
                                detail: "Kerberos needs a KDC, which rdptrace does not contact; use NTLM (a local or domain account name with the server's or the domain's name as --domain)".to_owned(),
                            },
                        );
                        return Err(Stop);
                    }
                }
            };
            let state: ClientState = match state {
                Ok(s) => s,
                Err(e) => {
                    let err = ConnectorError::new("CredSSP", ConnectorErrorKind::Credssp(e));
                    self.connector_failed(err).await;
                    return Err(Stop);
                }
            };
            buf.clear();
            let written = sequence.handle_process_result(state, &mut buf);
            self.after_step(written, &mut buf).await?;
            let Some(hint) = sequence.next_pdu_hint() else {
                break;
            };
            let kind = match hint.find_size(&[0x30, 0x00]) {
                Ok(Some((_, 4))) => FrameKind::Fixed(4),
                _ => FrameKind::Der,
            };
            let waiting = if kind == FrameKind::Der {
                "TSRequest from the server"
            } else {
                "Early User Authorization Result"
            };
            let (frame, _) = self.recv(kind, waiting).await?;
            match sequence.decode_server_message(&frame) {
                Ok(Some(next)) => ts_request = next,
                Ok(None) => break,
                Err(e) => {
                    self.connector_failed(e).await;
                    return Err(Stop);
                }
            }
        }
        connector.mark_credssp_as_done();
        Ok(())
    }

    /// Watches the active session for `watch`, recording what the server does; then leaves politely.
    async fn watch(&mut self) -> Result<(), Stop> {
        let end =
            (tokio::time::Instant::now() + self.cfg.watch).min(self.tokio_start + self.cfg.timeout);
        // INVARIANT: bounded by `end`.
        loop {
            let res = self
                .framer
                .read_frame(&mut self.conn, FrameKind::Rdp, end)
                .await;
            self.feed_read(&res);
            match res {
                Ok(_) => {}
                Err(ReadError::TimedOut) => {
                    let secs = self.cfg.watch.as_secs_f64();
                    if deactivated(self.d.trace()) {
                        // [2.2.3.1] A Deactivate All with no Demand Active after it: the session is frozen.
                        self.leave(&format!(
                            "the session stayed deactivated to the end of the {secs} s watch"
                        ))
                        .await;
                        return Err(Stop);
                    }
                    self.leave(&format!("end of the {secs} s watch")).await;
                    return Ok(());
                }
                Err(e) => {
                    self.read_failed(e, "next PDU from the server");
                    return Err(Stop);
                }
            }
        }
    }
}

/// Whether the server's last Deactivate All ([2.2.3.1]) has no Demand Active after it.
fn deactivated(trace: &Trace) -> bool {
    let mut deactivated = false;
    for (_, pdu) in trace.pdus() {
        match pdu.info {
            PduInfo::DeactivateAll => deactivated = true,
            PduInfo::DemandActive { .. } => deactivated = false,
            _ => {}
        }
    }
    deactivated
}

/// What the connector waits for, by its state name.
fn waiting_for(state: &str) -> &'static str {
    match state {
        "ConnectionInitiationWaitResponse" | "ConnectionInitiationWaitConfirm" => {
            "the X.224 Connection Confirm"
        }
        "BasicSettingsExchangeWaitResponse" => "the MCS Connect Response",
        "ChannelConnection" => "the MCS Attach User Confirm or a Channel Join Confirm",
        "ConnectTimeAutoDetection" | "LicensingExchange" => "a licensing PDU",
        "MultitransportBootstrapping" => "the Server Demand Active",
        "ConnectionFinalization" => "the server's finalization PDUs",
        s if s.contains("Capabilities") => "the Server Demand Active",
        _ => "the server's next PDU",
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
