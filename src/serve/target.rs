//! The target: a TCP listener and, per connection, a driver that steps `ironrdp-acceptor` one state at a time,
//! does TLS and CredSSP itself, and acts on the scenario's faults at their points.

use core::fmt;
use core::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ironrdp_acceptor::credssp::CredsspSequence;
use ironrdp_acceptor::{Acceptor, AcceptorState, DesktopSize};
use ironrdp_connector::sspi::credssp::{EarlyUserAuthResult, ServerState, TsRequest};
use ironrdp_connector::sspi::{AuthIdentity, Username};
use ironrdp_connector::{Sequence as _, ServerName};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::PduHint;
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::capability_sets::{
    Bitmap, BitmapDrawingFlags, CapabilitySet, General, GeneralExtraFlags, Input, InputFlags,
    MultifragmentUpdate, Order, OrderFlags, OrderSupportExFlags, Pointer, VirtualChannel,
    VirtualChannelFlags,
};
use ironrdp_pdu::rdp::client_info::Credentials;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::broker::{self, Broker, SessionHost};
use super::faults;
use super::kerberos::{self as krb, First, KerberosService};
use super::scenario::KerberosProfile;
use super::scenario::{
    Action, Expected, Fault, Protocols, REDIRECT_TARGET, RN_PROVIDER_INITIATED, Scenario,
    ServerPoint,
};
use super::standard_security::{self, StandardSecurity};
use super::tap::{Tap, Tapped};
use super::tls;
use super::{ServeError, TestIdentity};
use crate::codes::error_info::{
    ERRINFO_CB_DESTINATION_NOT_FOUND, ERRINFO_SERVER_DENIED_CONNECTION,
};
use crate::codes::ntstatus::STATUS_NTLM_BLOCKED;
use crate::dissect::MAX_FRAME;
use crate::dissect::x224::PROTOCOL_HYBRID_EX;
use crate::trace::{CloseKind, Deadline, EventKind, Origin, PhaseName, Side, Trace};
use crate::verdict::Verdict;

/// Everything the target needs to run one scenario.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub scenario: Scenario,
    /// The faults in effect: the scenario's, or the ones `--at` / `--errinfo` made of them.
    pub faults: Vec<Fault>,
    /// The verdict a probe must give against this configuration.
    pub expected: Expected,
    /// What the listener binds (port 0 for any free port).
    pub listen: SocketAddr,
    pub identity: TestIdentity,
    /// The name in the certificate and in the NTLM challenge.
    pub host_name: String,
    /// Where to write the TLS secrets (NSS key log format); never on unless asked for.
    pub key_log: Option<PathBuf>,
    /// How long the target waits for each PDU of the connection sequence.
    pub read_timeout: Duration,
    /// How long an active session (or a stall) is kept open with nothing from the client.
    pub idle_limit: Duration,
    /// How long the target keeps reading after its own close, so that the close stays a FIN.
    pub close_linger: Duration,
    /// Connections handled at the same time by [`Target::run`].
    pub max_connections: usize,
    /// The encryption of a scenario that accepts PROTOCOL_RDP alone ([`Protocols::RDP`]).
    pub standard_security: StandardSecurity,
    /// Kerberos NLA: the service keys of `TERMSRV/<host_name>` (`--keytab`, `--realm`).
    pub kerberos: Option<KerberosService>,
    /// The keys of `HTTP/<host_name>` for the gateway in front of the target (`--keytab`, `--realm`).
    pub gateway_kerberos: Option<crate::serve::gateway::GatewayKerberos>,
    /// The target is a connection broker: it redirects its clients after licensing.
    pub broker: Option<Broker>,
    /// The target is the session host of a broker: it checks what redirected clients send.
    pub session_host: Option<SessionHost>,
}

/// How long the target reads what the client sent before the connection ended under one of its writes.
const LEFT_GRACE: Duration = Duration::from_millis(1500);

/// The session a redirection names.
const REDIRECT_SESSION: u32 = 7;

/// [RFC 5246] 6.2.1 frames one TLS record: a 5-byte header with the length last.
#[derive(Debug)]
struct TlsRecordHint;

const TLS_RECORD_HINT: TlsRecordHint = TlsRecordHint;

impl PduHint for TlsRecordHint {
    fn find_size(&self, bytes: &[u8]) -> ironrdp_core::DecodeResult<Option<(bool, usize)>> {
        match bytes {
            [content_type, 0x03, _, hi, lo, ..] if (20..=23).contains(content_type) => Ok(Some((
                true,
                5 + usize::from(u16::from_be_bytes([*hi, *lo])),
            ))),
            [_, _, _, _, _, ..] => Err(ironrdp_core::invalid_field_err(
                "TLS record",
                "header",
                "not a TLS record",
                Some(0),
            )),
            _ => Ok(None),
        }
    }
}

/// [MS-CSSP] 2.2.1 frames one TSRequest (a DER SEQUENCE), before the CredSSP sequence exists.
#[derive(Debug)]
struct CredsspHint;

const CREDSSP_HINT: CredsspHint = CredsspHint;

impl PduHint for CredsspHint {
    fn find_size(&self, bytes: &[u8]) -> ironrdp_core::DecodeResult<Option<(bool, usize)>> {
        match TsRequest::read_length(bytes) {
            Ok(length) => Ok(Some((true, length))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(_) => Err(ironrdp_core::invalid_field_err(
                "TSRequest",
                "length",
                "not a TSRequest",
                Some(0),
            )),
        }
    }
}

/// The host name the target uses when none is given.
pub const DEFAULT_HOST_NAME: &str = "rdptrace-target";

impl TargetConfig {
    /// A scenario on 127.0.0.1, any free port, with the default test identity.
    pub fn new(scenario: &Scenario) -> TargetConfig {
        TargetConfig {
            scenario: *scenario,
            faults: scenario.behaviour.to_vec(),
            expected: scenario.expected,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: TestIdentity::default(),
            host_name: DEFAULT_HOST_NAME.to_owned(),
            key_log: None,
            read_timeout: Duration::from_secs(30),
            idle_limit: Duration::from_secs(600),
            close_linger: Duration::from_secs(5),
            max_connections: 32,
            standard_security: StandardSecurity::DEFAULT,
            kerberos: None,
            gateway_kerberos: None,
            broker: None,
            session_host: None,
        }
    }

    /// `--at PHASE` and `--errinfo CODE`: with a code, the scenario becomes a Set Error Info of that code at
    /// `at` (or where the scenario's first fault acts, or licensing); without one, the scenario's faults move
    /// to `at`.
    pub fn with_overrides(
        mut self,
        at: Option<PhaseName>,
        error_info: Option<u32>,
    ) -> Result<TargetConfig, ServeError> {
        let point = match at {
            Some(phase) => Some(ServerPoint::for_phase(phase).ok_or_else(|| {
                ServeError::Config(format!(
                    "--at {phase} is not possible: a client never waits for the server in {phase} (the TCP handshake is the kernel's, and secure_settings holds only client PDUs); use the phase before or after it"
                ))
            })?),
            None => None,
        };
        match (error_info, point) {
            (Some(code), _) => {
                let point = point
                    .or_else(|| self.faults.first().map(|f| f.at))
                    .unwrap_or(ServerPoint::ClientInfo);
                self.faults = vec![Fault {
                    at: point,
                    action: Action::ErrorInfo(code),
                }];
                self.expected = Expected::error_info(point.phase(PROTOCOL_HYBRID_EX), code);
            }
            (None, Some(point)) => {
                if self.faults.is_empty() {
                    return Err(ServeError::Config(format!(
                        "scenario {} has no fault to move: give --errinfo as well",
                        self.scenario.name
                    )));
                }
                for fault in &mut self.faults {
                    fault.at = point;
                }
                let phase = point.phase(PROTOCOL_HYBRID_EX);
                self.expected.phase = Some(phase);
                if self.expected.error_info.is_none()
                    && self
                        .expected
                        .mstsc
                        .is_some_and(|(disc, _)| disc == crate::mstsc::DISC_SOCKET_CLOSED)
                {
                    // A close without error info: 0x904 / 0x7 while pending, 0x904 / 0x0 once up.
                    self.expected.mstsc = Expected::closed(phase, self.expected.cause).mstsc;
                }
            }
            (None, None) => {}
        }
        self.check()?;
        Ok(self)
    }

    /// Whether every fault can act where it is placed.
    pub fn check(&self) -> Result<(), ServeError> {
        for fault in &self.faults {
            fault.check().map_err(ServeError::Config)?;
        }
        Ok(())
    }

    /// The name traces and logs use: the scenario's, with the overrides when there are some.
    pub fn label(&self) -> String {
        if self.faults.as_slice() == self.scenario.behaviour {
            return self.scenario.name.to_owned();
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|f| match f.action {
                Action::ErrorInfo(code) => format!("error info 0x{code:08x} at {}", f.at),
                other => format!("{} at {}", other.describe(), f.at),
            })
            .collect();
        format!("{} ({})", self.scenario.name, faults.join(", "))
    }
}

/// One connection the target handled.
#[derive(Debug, Clone)]
pub struct Served {
    pub peer: SocketAddr,
    /// The target's own view of the connection, dissected from the bytes it read and wrote.
    pub trace: Trace,
    pub outcome: Outcome,
}

impl Served {
    /// The diagnosis of the target's own view.
    pub fn verdict(&self) -> Verdict {
        crate::diagnose::diagnose(&self.trace)
    }
}

/// How a connection ended, from the target's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A fault of the scenario ended the connection.
    Fault(Fault),
    /// The client closed the connection in this phase.
    ClientClosed { phase: PhaseName, how: CloseKind },
    /// The client sent nothing within the read timeout; the target closed.
    TimedOut { phase: PhaseName },
    /// The session stayed active, silent, until the idle limit; the target closed.
    IdleLimit,
    /// The target could not go on with what the client sent (not a PDU, refused credentials, a TLS
    /// handshake that failed); it sent what a server sends then and closed.
    Refused { phase: PhaseName, reason: String },
    /// A socket error.
    Failed { phase: PhaseName, error: String },
    /// [MS-RDPBCGR] 1.3.8 a broker's client came back with its routing token and was forwarded to the
    /// session host.
    Forwarded { to: SocketAddr },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fault(fault) => write!(f, "fault at {}: {:?}", fault.at, fault.action),
            Outcome::ClientClosed { phase, how } => {
                write!(f, "the client closed in {phase} ({how:?})")
            }
            Outcome::TimedOut { phase } => write!(f, "the client went silent in {phase}"),
            Outcome::IdleLimit => f.write_str("the idle limit passed"),
            Outcome::Refused { phase, reason } => write!(f, "refused in {phase}: {reason}"),
            Outcome::Failed { phase, error } => write!(f, "failed in {phase}: {error}"),
            Outcome::Forwarded { to } => write!(f, "forwarded to the session host {to}"),
        }
    }
}

/// What the connections share.
struct Shared {
    config: TargetConfig,
    label: String,
    tls: Arc<ServerConfig>,
    /// The certificate's SubjectPublicKey, for CredSSP.
    public_key: Vec<u8>,
    /// The certificate chain, for the hand-written TLS 1.0 answer.
    chain: Vec<Vec<u8>>,
    /// The key of the License Request's proprietary certificate.
    license_key: faults::LicenseKey,
    limit: Arc<Semaphore>,
    /// The key of the proprietary certificate under Standard RDP Security with encryption.
    rdp_key: Option<rsa::RsaPrivateKey>,
}

/// The built-in target, listening.
#[derive(Clone)]
pub struct Target {
    listener: Arc<TcpListener>,
    local: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("local", &self.local)
            .field("scenario", &self.shared.label)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Makes the certificate and the TLS configuration, then binds the listener.
    pub async fn bind(config: TargetConfig) -> Result<Target, ServeError> {
        config.check()?;
        let profile = config.scenario.tls;
        let host = config.host_name.clone();
        let listen = Some(config.listen.ip());
        let identity =
            tokio::task::spawn_blocking(move || tls::certificate(&profile.cert, &host, listen))
                .await
                .map_err(|e| ServeError::Certificate(e.to_string()))??;
        let key_log = match &config.key_log {
            Some(path) => Some(Arc::new(tls::KeyLogFile::open(path)?) as Arc<dyn rustls::KeyLog>),
            None => None,
        };
        let tls_config = tls::server_config(&identity, &profile, key_log)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let label = config.label();
        let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let rdp_key = if config.scenario.protocols == Protocols::RDP
            && config.standard_security.level != crate::rdp_security::Level::None
        {
            Some(
                tokio::task::spawn_blocking(standard_security::server_key)
                    .await
                    .map_err(|e| ServeError::Certificate(e.to_string()))??,
            )
        } else {
            None
        };
        Ok(Target {
            listener: Arc::new(listener),
            local,
            shared: Arc::new(Shared {
                config,
                label,
                tls: tls_config,
                public_key: identity.public_key,
                chain: identity.chain.iter().map(|c| c.as_ref().to_vec()).collect(),
                license_key: identity.license_key,
                limit,
                rdp_key,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn config(&self) -> &TargetConfig {
        &self.shared.config
    }

    /// The verdict a probe must give against this target.
    pub fn expected(&self) -> &Expected {
        &self.shared.config.expected
    }

    /// Accepts one connection and handles it to its end.
    pub async fn serve_one(&self) -> Result<Served, ServeError> {
        let (tcp, peer) = self.listener.accept().await.map_err(ServeError::Accept)?;
        Ok(handle(self.shared.clone(), tcp, peer).await)
    }

    /// Serves connections until `shutdown` completes, each in its own task, at most
    /// [`TargetConfig::max_connections`] at a time. Each finished connection goes to `served` when given.
    /// Connections still open at shutdown are dropped.
    pub async fn run<F>(
        &self,
        shutdown: F,
        served: Option<mpsc::UnboundedSender<Served>>,
    ) -> Result<(), ServeError>
    where
        F: Future<Output = ()>,
    {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = self.shared.limit.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            let sink = served.clone();
            tasks.spawn(async move {
                let done = handle(shared, tcp, peer).await;
                drop(permit);
                if let Some(sink) = sink {
                    let _ = sink.send(done);
                }
            });
        }
        tasks.shutdown().await;
        Ok(())
    }
}

/// Why the driver stopped.
#[derive(Debug)]
enum Stop {
    /// A fault acted (it closed, reset or stalled the connection itself).
    Fault(Fault),
    ClientClosed(CloseKind),
    TimedOut,
    IdleLimit,
    Refused(String),
    Failed(String),
    /// The connection was forwarded to a session host, to its end.
    Forwarded(SocketAddr),
}

/// The socket, in clear or under TLS.
enum Io {
    Plain(Tapped),
    Tls(Box<TlsStream<Tapped>>),
    /// Gone: dropped by a failed TLS handshake or a reset.
    Closed,
}

/// One connection.
struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    tap: Tap,
    io: Io,
    /// Bytes read and not yet framed.
    buf: Vec<u8>,
    /// The points already passed (bit = index in [`ServerPoint::ALL`]).
    passed: u32,
    /// Standard RDP Security between the socket and the acceptor, when the scenario encrypts under it.
    rdp_security: Option<crate::rdp_security::server::ServerShim>,
    /// [2.2.1.1] the routing token of the client's Connection Request.
    routing_token: Option<String>,
}

async fn handle(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) -> Served {
    let local = tcp.local_addr().ok();
    info!(%peer, scenario = %shared.label, "connection");
    let mut trace = Trace::new(
        local.map_or_else(|| "built-in target".to_owned(), |a| a.to_string()),
        Origin::Serve {
            scenario: shared.label.clone(),
        },
    );
    trace.set_addrs(Some(peer), local);
    trace.started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .ok();
    let tap = Tap::new(trace);
    // The trace speaks from the client's side (bytes in are the server's): local is the client.
    tap.event(EventKind::Connected {
        local: peer.to_string(),
        remote: local.map(|a| a.to_string()).unwrap_or_default(),
    });
    let _ = tcp.set_nodelay(true);
    let mut rdp_security = None;
    if let Some(key) = &shared.rdp_key {
        match standard_security::connection(&shared.config.standard_security, key) {
            Ok((shim, sink)) => {
                tap.set_security_sink(Box::new(sink));
                rdp_security = Some(shim);
            }
            Err(error) => warn!(%peer, %error, "standard rdp security unavailable"),
        }
    }
    let mut conn = Conn {
        shared: shared.clone(),
        peer,
        tap: tap.clone(),
        io: Io::Plain(Tapped::new(tcp, tap.clone())),
        buf: Vec::new(),
        passed: 0,
        rdp_security,
        routing_token: None,
    };
    let mut acceptor = new_acceptor(&shared.config);
    let stop = match conn.sequence(&mut acceptor).await {
        Ok(()) => conn.idle().await,
        Err(stop) => stop,
    };
    let outcome = conn.end(stop).await;
    let failed = !matches!(
        outcome,
        Outcome::ClientClosed {
            phase: PhaseName::Active,
            ..
        } | Outcome::IdleLimit
    );
    info!(%peer, scenario = %shared.label, %outcome, "connection ended");
    Served {
        peer,
        trace: tap.finish(failed),
        outcome,
    }
}

fn new_acceptor(config: &TargetConfig) -> Acceptor {
    let size = DesktopSize {
        width: 1024,
        height: 768,
    };
    let identity = &config.identity;
    let creds = Credentials {
        username: identity.user.clone(),
        password: identity.password().to_owned(),
        domain: (!identity.domain.is_empty()).then(|| identity.domain.clone()),
    };
    Acceptor::new(
        SecurityProtocol::from_bits_truncate(config.scenario.protocols.0),
        size,
        capabilities(size),
        Some(creds),
    )
}

/// [2.2.1.13.1.1.1] The capability sets of the Demand Active: the mandatory ones and what a client needs to
/// reach the active state.
pub fn capabilities(size: DesktopSize) -> Vec<CapabilitySet> {
    vec![
        CapabilitySet::General(General {
            extra_flags: GeneralExtraFlags::FASTPATH_OUTPUT_SUPPORTED
                | GeneralExtraFlags::NO_BITMAP_COMPRESSION_HDR
                | GeneralExtraFlags::LONG_CREDENTIALS_SUPPORTED,
            ..General::default()
        }),
        CapabilitySet::Bitmap(Bitmap {
            pref_bits_per_pix: 32,
            desktop_width: size.width,
            desktop_height: size.height,
            desktop_resize_flag: false,
            drawing_flags: BitmapDrawingFlags::empty(),
        }),
        CapabilitySet::Order(Order::new(
            OrderFlags::NEGOTIATE_ORDER_SUPPORT | OrderFlags::ZERO_BOUNDS_DELTAS_SUPPORT,
            OrderSupportExFlags::empty(),
            0,
            0,
        )),
        CapabilitySet::Pointer(Pointer {
            color_pointer_cache_size: 0,
            pointer_cache_size: 0,
        }),
        CapabilitySet::Input(Input {
            input_flags: InputFlags::SCANCODES | InputFlags::FASTPATH_INPUT | InputFlags::UNICODE,
            keyboard_layout: 0,
            keyboard_type: None,
            keyboard_subtype: 0,
            keyboard_function_key: 0,
            keyboard_ime_filename: String::new(),
        }),
        CapabilitySet::VirtualChannel(VirtualChannel {
            flags: VirtualChannelFlags::NO_COMPRESSION,
            chunk_size: None,
        }),
        CapabilitySet::MultiFragmentUpdate(MultifragmentUpdate {
            max_request_size: 8 * 1024 * 1024,
        }),
    ]
}

/// The protocol the acceptor selected, once it has.
fn selected_protocol(acceptor: &Acceptor) -> Option<SecurityProtocol> {
    match acceptor.state().as_any().downcast_ref::<AcceptorState>()? {
        AcceptorState::SecurityUpgrade { protocol, .. }
        | AcceptorState::Credssp { protocol, .. }
        | AcceptorState::BasicSettingsWaitInitial { protocol, .. } => Some(*protocol),
        _ => None,
    }
}

/// The point the acceptor has reached after a step of the MCS part of the sequence, if it is one.
fn point_of(acceptor: &Acceptor) -> Option<ServerPoint> {
    match acceptor.state().as_any().downcast_ref::<AcceptorState>()? {
        AcceptorState::BasicSettingsSendResponse { .. } => Some(ServerPoint::ConnectInitial),
        AcceptorState::ChannelConnection { .. } => Some(ServerPoint::ConnectResponse),
        AcceptorState::RdpSecurityCommencement { .. } => Some(ServerPoint::ChannelsJoined),
        AcceptorState::LicensingExchange { .. } => Some(ServerPoint::ClientInfo),
        AcceptorState::MultitransportBootstrapping { .. } => Some(ServerPoint::Licensed),
        AcceptorState::MonitorLayoutSend { .. } | AcceptorState::CapabilitiesWaitConfirm { .. } => {
            Some(ServerPoint::DemandActive)
        }
        AcceptorState::ConnectionFinalization { .. } => Some(ServerPoint::ConfirmActive),
        _ => None,
    }
}

impl Conn {
    fn config(&self) -> &TargetConfig {
        &self.shared.config
    }

    /// The connection sequence up to the active state.
    async fn sequence(&mut self, acceptor: &mut Acceptor) -> Result<(), Stop> {
        self.point(ServerPoint::Accepted).await?;

        // [2.2.1.1] Connection Request, then [2.2.1.2] Connection Confirm (or RDP_NEG_FAILURE).
        let request = self.read_frame(acceptor.next_pdu_hint()).await?;
        self.routing_token = crate::dissect::x224::decode_request(&request)
            .ok()
            .and_then(|r| r.routing_token);
        if let Some(b) = &self.config().broker
            && let (Some(to), Some(token)) = (b.forward_to, &self.routing_token)
            && broker::same_token(token, &b.token)
        {
            return Err(self.forward(&request, to).await);
        }
        let request = broker::strip_opaque_token(&request);
        self.step(acceptor, &request).await?;
        self.point(ServerPoint::ConnectionRequest).await?;
        self.step(acceptor, &[]).await?;
        self.point(ServerPoint::ConnectionConfirm).await?;

        let protocol = selected_protocol(acceptor).unwrap_or_else(SecurityProtocol::empty);
        if acceptor.reached_security_upgrade().is_some() {
            if !protocol.is_empty() {
                // [5.4.5.1] The ClientHello is read here, so that a fault can answer it; rustls reads it again.
                let hello = self.read_frame(Some(&TLS_RECORD_HINT)).await?;
                self.buf.splice(0..0, hello);
                self.point(ServerPoint::ClientHello).await?;
                self.upgrade().await?;
            }
            acceptor.mark_security_upgrade_as_done();
        }
        if !protocol.is_empty() {
            self.point(ServerPoint::TlsEstablished).await?;
        }
        if acceptor.should_perform_credssp() {
            self.credssp(protocol).await?;
            acceptor.mark_credssp_as_done();
            self.point(ServerPoint::CredsspDone).await?;
        }

        // INVARIANT: every step moves the acceptor on or reads a frame (bounded by the read timeout), and
        // the acceptor's sequence is finite, so this loop ends.
        loop {
            if let Some(result) = acceptor.get_result() {
                if let Some(host) = &self.config().session_host
                    && let Err(why) = host.check(&result)
                {
                    info!(peer = %self.peer, %why, "the session host refuses the client");
                    return Err(self
                        .act(Fault {
                            at: ServerPoint::Active,
                            action: Action::ErrorInfo(ERRINFO_SERVER_DENIED_CONNECTION),
                        })
                        .await);
                }
                break;
            }
            let input = match acceptor.next_pdu_hint() {
                Some(hint) => self.read_frame(Some(hint)).await?,
                None => Vec::new(),
            };
            self.step(acceptor, &input).await?;
            if let Some(point) = point_of(acceptor) {
                self.point(point).await?;
            }
        }
        self.point(ServerPoint::Active).await
    }

    /// Steps the acceptor once and sends what it wrote, also when the step failed: in some error paths the
    /// acceptor writes the reply a server sends (RDP_NEG_FAILURE, Set Error Info) and then returns the error.
    async fn step(&mut self, acceptor: &mut Acceptor, input: &[u8]) -> Result<(), Stop> {
        let mut out = WriteBuf::new();
        let result = acceptor.step(input, None, &mut out);
        if !out.filled().is_empty() {
            self.send(out.filled()).await?;
        }
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(Stop::Refused(e.to_string())),
        }
    }

    /// Acts on the faults at `point`, once per point: an action that ends the connection stops the sequence,
    /// the others ([`Action::continues`]) change how it goes on.
    async fn point(&mut self, point: ServerPoint) -> Result<(), Stop> {
        let bit = 1u32 << point.index();
        if self.passed & bit != 0 {
            return Ok(());
        }
        self.passed |= bit;
        debug!(peer = %self.peer, %point, "point");
        if let Some(b) = self.config().broker.clone() {
            let missing = b.requires.as_ref().is_some_and(|r| {
                !self
                    .routing_token
                    .as_ref()
                    .is_some_and(|t| broker::same_token(t, r))
            });
            if point == ServerPoint::ClientInfo && missing {
                return Err(self
                    .act(Fault {
                        at: point,
                        action: Action::ErrorInfo(ERRINFO_CB_DESTINATION_NOT_FOUND),
                    })
                    .await);
            }
            if point == ServerPoint::Licensed {
                return Err(self
                    .act(Fault {
                        at: point,
                        action: Action::Redirect,
                    })
                    .await);
            }
        }
        let faults: Vec<Fault> = self
            .shared
            .config
            .faults
            .iter()
            .filter(|f| f.at == point)
            .copied()
            .collect();
        for fault in faults {
            if fault.action.continues() {
                self.go_on(fault).await?;
            } else {
                return Err(self.act(fault).await);
            }
        }
        Ok(())
    }

    /// An action after which the connection goes on.
    async fn go_on(&mut self, fault: Fault) -> Result<(), Stop> {
        info!(peer = %self.peer, point = %fault.at, action = ?fault.action, "fault");
        match fault.action {
            Action::Slow(ms) => {
                if let Io::Plain(tapped) = &mut self.io {
                    tapped.set_delay(Duration::from_millis(u64::from(ms)));
                }
                Ok(())
            }
            Action::LicenseRequest => {
                // [MS-RDPELE] 3.2.5.1 / 3.3.5.1: the client answers a License Request with a New License Request
                // (or a License Info); the tap records it, and the acceptor goes on with STATUS_VALID_CLIENT.
                let request = faults::license_request(&self.shared.license_key)
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                self.send(&request).await?;
                self.read_frame(Some(&ironrdp_pdu::X224_HINT)).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn act(&mut self, fault: Fault) -> Stop {
        let selected = self.tap.selected_protocol().unwrap_or(0);
        // Where the target has just answered, a close or a reset would race the client's next PDU: the
        // target first reads it, so that the connection ends with the client waiting in that phase.
        if matches!(fault.action, Action::Close | Action::Reset)
            && matches!(
                fault.at,
                ServerPoint::ConnectResponse | ServerPoint::TlsEstablished
            )
        {
            let _ = self.read_frame(None).await;
        }
        self.tap.enter(fault.at.phase(selected));
        info!(peer = %self.peer, point = %fault.at, action = ?fault.action, "fault");
        let early_auth = selected & PROTOCOL_HYBRID_EX != 0;
        let pdus = match fault.action {
            Action::ErrorInfo(code) => faults::set_error_info(code).and_then(|a| {
                Ok(vec![
                    a,
                    faults::disconnect_provider_ultimatum(RN_PROVIDER_INITIATED)?,
                ])
            }),
            Action::NegFailure(code) => faults::negotiation_failure(code).map(|a| vec![a]),
            Action::SelectProtocol(protocol) => {
                faults::negotiation_response(protocol).map(|a| vec![a])
            }
            Action::ConfirmWithoutNegotiation => Ok(vec![faults::confirm_without_negotiation()]),
            Action::TlsAlert(description) => Ok(vec![faults::tls_alert(description)]),
            Action::Tls10ServerHello => {
                let chain: Vec<&[u8]> = self.shared.chain.iter().map(Vec::as_slice).collect();
                faults::tls10_server_flight(&chain).map(|a| vec![a])
            }
            Action::Ultimatum { reason, .. } => {
                faults::disconnect_provider_ultimatum(reason).map(|a| vec![a])
            }
            Action::CredsspError(status) => {
                faults::credssp_error(self.shared.config.scenario.credssp.version, status)
                    .map(|a| vec![a])
            }
            Action::EarlyAuthDenied if early_auth => faults::early_auth_denied().map(|a| vec![a]),
            Action::LicenseError { code, transition } => {
                faults::license_error(code, transition).map(|a| vec![a])
            }
            Action::DeactivateAll => faults::deactivate_all().map(|a| vec![a]),
            Action::Redirect => match &self.shared.config.broker {
                Some(b) => broker::redirection(b).map(|a| vec![a]),
                None => {
                    faults::server_redirection(REDIRECT_SESSION, REDIRECT_TARGET).map(|a| vec![a])
                }
            },
            Action::EarlyAuthDenied
            | Action::LicenseRequest
            | Action::Slow(_)
            | Action::Close
            | Action::Reset
            | Action::Stall => Ok(Vec::new()),
        };
        let pdus = match pdus {
            Ok(pdus) => pdus,
            Err(e) => return Stop::Failed(e.to_string()),
        };
        for pdu in &pdus {
            if let Err(stop) = self.send(pdu).await {
                return stop;
            }
        }
        match fault.action {
            Action::ErrorInfo(_)
            | Action::NegFailure(_)
            | Action::TlsAlert(_)
            | Action::CredsspError(_)
            | Action::EarlyAuthDenied
            | Action::LicenseError { .. }
            | Action::Ultimatum { reset: false, .. }
            | Action::Close => self.close().await,
            Action::Ultimatum { reset: true, .. } | Action::Reset => self.reset(),
            // The client decides what comes next: the target reads until it leaves.
            Action::SelectProtocol(_)
            | Action::ConfirmWithoutNegotiation
            | Action::Tls10ServerHello
            | Action::DeactivateAll
            | Action::Redirect
            | Action::Stall
            | Action::LicenseRequest
            | Action::Slow(_) => {
                let limit = self.config().idle_limit;
                if !self.drain(limit).await {
                    self.close().await;
                }
            }
        }
        Stop::Fault(fault)
    }

    /// [MS-RDPBCGR] 1.3.8 forwards the connection to the session host: the Connection Request, then every
    /// byte both ways, until one side ends or the idle limit passes.
    async fn forward(&mut self, request: &[u8], to: SocketAddr) -> Stop {
        let limit = self.config().read_timeout;
        let mut tcp = match tokio::time::timeout(limit, TcpStream::connect(to)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Stop::Failed(format!("cannot forward to {to}: {e}")),
            Err(_) => return Stop::Failed(format!("cannot forward to {to}: no answer")),
        };
        let _ = tcp.set_nodelay(true);
        info!(peer = %self.peer, %to, "forwarding to the session host");
        let idle = self.config().idle_limit;
        let Io::Plain(tapped) = &mut self.io else {
            return Stop::Failed("forwarding needs the plain connection".to_owned());
        };
        if tcp.write_all(request).await.is_err() {
            return Stop::Failed(format!("{to} went away"));
        }
        let _ = tokio::time::timeout(idle, tokio::io::copy_bidirectional(tapped, &mut tcp)).await;
        self.io = Io::Closed;
        Stop::Forwarded(to)
    }

    // ---- TLS and CredSSP ----------------------------------------------------------------------------------

    /// [5.4.5.1] The TLS handshake, on the socket the X.224 exchange used.
    async fn upgrade(&mut self) -> Result<(), Stop> {
        let Io::Plain(mut tapped) = core::mem::replace(&mut self.io, Io::Closed) else {
            return Err(Stop::Failed("tls started twice".to_owned()));
        };
        if !self.buf.is_empty() {
            tapped.push_back(core::mem::take(&mut self.buf));
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(self.shared.tls.clone());
        let limit = self.config().read_timeout;
        // Fallible: a failed handshake hands the socket back, for what the client sent before it ended.
        match tokio::time::timeout(limit, acceptor.accept(tapped).into_fallible()).await {
            Err(_) => Err(Stop::TimedOut),
            Ok(Err((error, tapped))) => match close_kind(&error) {
                Some(how) => {
                    self.io = Io::Plain(tapped);
                    Err(self.client_ended(how).await)
                }
                None => Err(Stop::Refused(format!("the tls handshake failed: {error}"))),
            },
            Ok(Ok(stream)) => {
                let (_, session) = stream.get_ref();
                let version = match session.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
                    Some(other) => format!("{other:?}"),
                    None => "unknown".to_owned(),
                };
                let suite = session
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default();
                self.tap.tls_established(version, suite);
                self.io = Io::Tls(Box::new(stream));
                Ok(())
            }
        }
    }

    /// [MS-CSSP] The server side of CredSSP with NTLM for the test identity, then (PROTOCOL_HYBRID_EX) the
    /// [2.2.10.2] Early User Authorization Result.
    ///
    /// When authentication fails the client gets the TSRequest errorCode ([MS-CSSP] 2.2.1) and the close, and
    /// no Early User Authorization Result: [2.2.10.2] sends it once the CredSSP handshake has completed.
    async fn credssp(&mut self, protocol: SecurityProtocol) -> Result<(), Stop> {
        let identity = &self.shared.config.identity;
        let domain = (!identity.domain.is_empty()).then_some(identity.domain.as_str());
        let username = Username::new(&identity.user, domain)
            .map_err(|e| Stop::Failed(format!("the test user name is not valid: {e}")))?;
        let auth = AuthIdentity {
            username,
            password: identity.password().to_owned().into(),
        };
        self.credssp_exchange(&auth).await?;
        if protocol.contains(SecurityProtocol::HYBRID_EX) {
            let answer = EarlyUserAuthResult::Success;
            let mut bytes = Vec::with_capacity(answer.buffer_len());
            answer.to_buffer(&mut bytes).map_err(|e| {
                Stop::Failed(format!(
                    "cannot encode the early user authorization result: {e}"
                ))
            })?;
            self.send(&bytes).await?;
        }
        Ok(())
    }

    async fn credssp_exchange(&mut self, auth: &AuthIdentity) -> Result<(), Stop> {
        let shared = self.shared.clone();
        let version = shared.config.scenario.credssp.version;
        let kerberos = shared.config.kerberos.as_ref().map(|service| {
            (
                service,
                shared
                    .config
                    .scenario
                    .kerberos
                    .unwrap_or(KerberosProfile::HEALTHY),
            )
        });
        // [MS-SPNG] 3.2.5.1 sspi's Negotiate acceptor finds the client among the identities it was given by
        // the name the mechanism reports: the ticket's client as a UPN (alice@REALM) for Kerberos, which it
        // looks up when it checks the client's mechListMIC (a client whose first mechanism is not the one
        // chosen, FreeRDP 3 offering user-to-user first, sends one). The test identity in that form.
        let upn = match kerberos {
            Some((service, _)) => Some(AuthIdentity {
                username: Username::new_upn(auth.username.account_name(), &service.realm)
                    .map_err(|e| Stop::Failed(format!("the test user name is not valid: {e}")))?,
                password: auth.password.clone(),
            }),
            None => None,
        };
        fn init<'a>(
            shared: &Shared,
            krb_config: Option<sspi::KerberosServerConfig>,
            identity: &'a AuthIdentity,
        ) -> Result<CredsspSequence<'a>, Stop> {
            CredsspSequence::init(
                identity,
                ServerName::new(shared.config.host_name.clone()),
                shared.public_key.clone(),
                krb_config,
            )
            .map_err(|e| Stop::Failed(e.to_string()))
        }
        // With Kerberos the acceptor is made once the client's first token is read: its checks pick the key
        // of the ticket's encryption type, or refuse.
        let mut sequence = match kerberos {
            Some(_) => None,
            None => Some(init(&shared, None, auth)?),
        };
        // INVARIANT: NTLM takes three client messages, Kerberos two; each pass reads one or stops. The read
        // timeout bounds each read and a peer that keeps talking ends up refused by the sequence.
        loop {
            let hint = match sequence.as_ref().map(|s| s.next_pdu_hint()) {
                None => Some(&CREDSSP_HINT as &dyn PduHint),
                Some(Ok(Some(hint))) => Some(hint),
                Some(Ok(None)) => return Ok(()),
                Some(Err(e)) => return Err(Stop::Refused(e.to_string())),
            };
            let frame = self.read_frame(hint).await?;
            let frame = match kerberos {
                Some(_) => krb::normalised_request(&frame).unwrap_or(frame),
                None => frame,
            };
            let sequence = match (sequence.as_mut(), kerberos) {
                (Some(s), _) => s,
                (None, Some((service, profile))) => {
                    let token = TsRequest::from_buffer(&frame)
                        .ok()
                        .and_then(|r| r.nego_tokens)
                        .unwrap_or_default();
                    match service.first_token(&token, &profile) {
                        First::Accept(config) => {
                            let identity = match &upn {
                                Some(upn)
                                    if !token.is_empty()
                                        && !crate::kerberos::acceptor::offers_ntlm_first(
                                            &token,
                                        ) =>
                                {
                                    upn
                                }
                                _ => auth,
                            };
                            sequence.insert(init(&shared, config.map(|c| *c), identity)?)
                        }
                        First::Refuse(token) => {
                            self.send(&krb::refusal(version, Some(token), None)).await?;
                            return Err(Stop::Refused(
                                "the client's kerberos ticket was refused".to_owned(),
                            ));
                        }
                        First::RefuseNtlm => {
                            self.send(&krb::refusal(version, None, Some(STATUS_NTLM_BLOCKED)))
                                .await?;
                            return Err(Stop::Refused(
                                "the client offered ntlm, which this target does not take"
                                    .to_owned(),
                            ));
                        }
                    }
                }
                (None, None) => return Err(Stop::Failed("no credssp sequence".to_owned())),
            };
            let mut request = match sequence.decode_client_message(&frame) {
                Ok(Some(request)) => request,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Stop::Refused(e.to_string())),
            };
            if request.pub_key_auth.is_some() && request.auth_info.is_none() {
                // [MS-CSSP] 3.1.5 step 3: the client's last NTLM message with its pubKeyAuth.
                self.point(ServerPoint::NtlmAuthenticate).await?;
            }
            if version < request.version {
                // A server of an older version treats the client as one of its own version ([MS-CSSP] 2.2.1).
                request.version = version;
            }
            let result = {
                let mut generator = sequence.process_ts_request(request);
                generator.resolve_to_result()
            };
            let result = match result {
                Ok(ServerState::ReplyNeeded(mut reply)) => {
                    reply.version = version;
                    Ok(ServerState::ReplyNeeded(reply))
                }
                other => other,
            };
            let authenticated = matches!(result, Ok(ServerState::Finished(_)));
            if authenticated {
                self.point(ServerPoint::CredsspAuthenticated).await?;
            }
            let mut out = WriteBuf::new();
            let handled = sequence.handle_process_result(result, &mut out);
            if !out.filled().is_empty() {
                self.send(out.filled()).await?;
            }
            if let Err(e) = handled {
                return Err(Stop::Refused(e.to_string()));
            }
        }
    }

    // ---- reading and writing ------------------------------------------------------------------------------

    /// Reads one frame the hint delimits (any frame when there is no hint: what is buffered, or one read);
    /// under Standard RDP Security, decrypted, the Security Exchange taken here.
    async fn read_frame(&mut self, hint: Option<&dyn PduHint>) -> Result<Vec<u8>, Stop> {
        let limit = self.config().read_timeout;
        // INVARIANT: the shim consumes one Security Exchange; every other pass returns.
        loop {
            let frame = match tokio::time::timeout(limit, self.read_frame_inner(hint)).await {
                Ok(result) => result?,
                Err(_) => return Err(Stop::TimedOut),
            };
            let Some(shim) = self.rdp_security.as_mut() else {
                return Ok(frame);
            };
            match shim.incoming(&frame) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => continue,
                Err(e) => return Err(Stop::Refused(format!("standard rdp security: {e}"))),
            }
        }
    }

    async fn read_frame_inner(&mut self, hint: Option<&dyn PduHint>) -> Result<Vec<u8>, Stop> {
        // INVARIANT: each pass returns a frame, fails, or reads more bytes into a buffer bounded by
        // MAX_FRAME; the caller's timeout bounds the time.
        loop {
            if let Some(hint) = hint {
                match hint.find_size(&self.buf) {
                    Ok(Some((_, len))) if len > MAX_FRAME => {
                        return Err(Stop::Refused(format!(
                            "the client announced a {len}-byte frame"
                        )));
                    }
                    Ok(Some((_, len))) if len <= self.buf.len() => {
                        return Ok(self.buf.drain(..len).collect());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Stop::Refused(format!(
                            "the client sent something that is not the expected pdu: {e}"
                        )));
                    }
                }
            } else if !self.buf.is_empty() {
                return Ok(core::mem::take(&mut self.buf));
            }
            if self.buf.len() > MAX_FRAME {
                return Err(Stop::Refused(
                    "the client sent a frame longer than the target accepts".to_owned(),
                ));
            }
            let chunk = self.read_chunk().await?;
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// One read from the socket (plaintext under TLS): what arrived, or why nothing will.
    async fn read_chunk(&mut self) -> Result<Vec<u8>, Stop> {
        let mut chunk = vec![0u8; 16 * 1024];
        let read = match &mut self.io {
            Io::Plain(stream) => stream.read(&mut chunk).await,
            Io::Tls(stream) => stream.read(&mut chunk).await,
            Io::Closed => return Err(Stop::Failed("the socket is closed".to_owned())),
        };
        match read {
            Ok(0) => Err(Stop::ClientClosed(CloseKind::Fin)),
            Ok(n) => {
                chunk.truncate(n);
                if matches!(self.io, Io::Tls(_)) {
                    self.tap.plaintext(Side::Client, &chunk);
                }
                Ok(chunk)
            }
            Err(error) => match close_kind(&error) {
                Some(how) => Err(Stop::ClientClosed(how)),
                None => Err(Stop::Failed(error.to_string())),
            },
        }
    }

    /// Writes bytes (plaintext under TLS, encrypted under Standard RDP Security) and flushes them.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let secured;
        let bytes = match self.rdp_security.as_mut() {
            Some(shim) => {
                secured = shim
                    .outgoing(bytes)
                    .map_err(|e| Stop::Failed(format!("standard rdp security: {e}")))?;
                &secured[..]
            }
            None => bytes,
        };
        let limit = self.config().read_timeout;
        if matches!(self.io, Io::Tls(_)) {
            self.tap.plaintext(Side::Server, bytes);
        }
        let write = async {
            match &mut self.io {
                Io::Plain(stream) => {
                    stream.write_all(bytes).await?;
                    stream.flush().await
                }
                Io::Tls(stream) => {
                    stream.write_all(bytes).await?;
                    stream.flush().await
                }
                Io::Closed => Err(std::io::Error::from(std::io::ErrorKind::NotConnected)),
            }
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => match close_kind(&error) {
                Some(how) => Err(self.client_ended(how).await),
                None => Err(Stop::Failed(error.to_string())),
            },
            Err(_) => Err(Stop::TimedOut),
        }
    }

    /// The connection ended (`how`) under one of the target's writes or its TLS handshake. What the client
    /// sent before the end is still in the socket's receive buffer (the kernel keeps it past a reset): it is
    /// read into the trace first (for [`LEFT_GRACE`], at most [`MAX_FRAME`] bytes), and the end is
    /// recorded after it, as when the target reads before it writes.
    async fn client_ended(&mut self, how: CloseKind) -> Stop {
        let deadline = tokio::time::Instant::now() + LEFT_GRACE;
        let mut read = 0usize;
        // INVARIANT: each pass reads once; the deadline and the byte count bound the loop.
        while read < MAX_FRAME {
            match tokio::time::timeout_at(deadline, self.read_chunk()).await {
                Ok(Ok(chunk)) => read = read.saturating_add(chunk.len()),
                // The end of the stream, the error that ended it, or the deadline.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Stop::ClientClosed(how)
    }

    /// Reads and discards (the tap still sees it) until the client leaves or `limit` passes. Returns whether
    /// the client left; its close is recorded.
    async fn drain(&mut self, limit: Duration) -> bool {
        self.buf.clear();
        let deadline = tokio::time::Instant::now() + limit;
        // INVARIANT: each pass reads once; the deadline bounds the loop in time.
        loop {
            match tokio::time::timeout_at(deadline, self.read_chunk()).await {
                Err(_) => return false,
                Ok(Ok(_)) => {}
                Ok(Err(Stop::ClientClosed(how))) => {
                    self.tap.close(Side::Client, how);
                    return true;
                }
                Ok(Err(_)) => return true,
            }
        }
    }

    /// An orderly close: TLS close_notify when TLS is up, FIN, then reading on for a moment so that data still
    /// in flight from the client does not turn the close into a reset.
    async fn close(&mut self) {
        self.tap.close(Side::Server, CloseKind::Fin);
        let limit = self.config().close_linger;
        let shutdown = async {
            match &mut self.io {
                Io::Plain(stream) => stream.shutdown().await,
                Io::Tls(stream) => stream.shutdown().await,
                Io::Closed => Ok(()),
            }
        };
        let _ = tokio::time::timeout(limit, shutdown).await;
        if !matches!(self.io, Io::Closed) {
            self.drain(limit).await;
        }
        self.io = Io::Closed;
    }

    /// A reset: SO_LINGER 0, then the socket is dropped.
    fn reset(&mut self) {
        let tcp = match &self.io {
            Io::Plain(stream) => Some(stream.tcp()),
            Io::Tls(stream) => Some(stream.get_ref().0.tcp()),
            Io::Closed => None,
        };
        if let Some(tcp) = tcp
            && let Err(error) = tcp.set_zero_linger()
        {
            warn!(peer = %self.peer, %error, "cannot set SO_LINGER 0");
        }
        self.tap.close(Side::Server, CloseKind::Rst);
        self.io = Io::Closed;
    }

    /// The active state: nothing is sent; what the client sends is read until it leaves or the idle limit.
    async fn idle(&mut self) -> Stop {
        let limit = self.config().idle_limit;
        if self.drain(limit).await {
            Stop::ClientClosed(CloseKind::Fin)
        } else {
            Stop::IdleLimit
        }
    }

    /// Settles how the connection ended, closing it when the target still has to.
    async fn end(&mut self, stop: Stop) -> Outcome {
        let phase = self.tap.current();
        match stop {
            Stop::Fault(fault) => Outcome::Fault(fault),
            Stop::ClientClosed(how) => {
                self.tap.close(Side::Client, how);
                self.io = Io::Closed;
                Outcome::ClientClosed { phase, how }
            }
            Stop::TimedOut => {
                let seconds = self.config().read_timeout.as_secs_f64();
                self.tap.event(EventKind::TimedOut {
                    deadline: Deadline::Phase { seconds },
                    waiting_for: "the client's next pdu".to_owned(),
                });
                self.close().await;
                Outcome::TimedOut { phase }
            }
            Stop::IdleLimit => {
                self.close().await;
                Outcome::IdleLimit
            }
            Stop::Refused(reason) => {
                self.tap.event(EventKind::Anomaly {
                    detail: format!("the target ended the connection: {reason}"),
                });
                self.close().await;
                Outcome::Refused { phase, reason }
            }
            Stop::Failed(error) => {
                self.close().await;
                Outcome::Failed { phase, error }
            }
            Stop::Forwarded(to) => Outcome::Forwarded { to },
        }
    }
}

/// Whether an I/O error means the peer closed: an end of stream (also without TLS close_notify) or a reset.
fn close_kind(error: &std::io::Error) -> Option<CloseKind> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::UnexpectedEof => Some(CloseKind::Fin),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Some(CloseKind::Rst)
        }
        _ => None,
    }
}
