//! The built-in RD Gateway ([MS-TSGU] 3.3): HTTPS with a certificate of the target's test CA, the WebSocket
//! and HTTP transports, NTLM, Negotiate (NTLM inside SPNEGO) and Basic authentication for the test identity,
//! and the faults of the gateway scenarios ([`GatewayFault`]).
//!
//! Its resource authorization policy allows loopback targets only (127.0.0.0/8, ::1, localhost): the test
//! gateway relays to the built-in target, or to a lab server on the same machine, never elsewhere.
//!
//! - `http.rs`: one client connection: its requests, their authentication, the transport it gets.
//! - `auth.rs`: the server side of the HTTP authentication.
//! - `channel.rs`: the tunnel's packets ([MS-TSGU] 3.3.5.2) and the relay to the target.
//! - `rpc.rs`: RPC over HTTP ([MS-TSGU] 3.2 over [MS-RPCH]): the IN and OUT channels, the bind and the
//!   TsProxy calls, the relay through TsProxySendToServer and the receive pipe.

mod auth;
mod channel;
mod http;
mod kerberos;
mod rpc;

use core::fmt;
use core::future::Future;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::scenario::{CertProfile, KerberosProfile, TlsProfile};
use super::{ServeError, TestIdentity};
use crate::gateway::Scheme;

pub use channel::GatewayFault;
pub use kerberos::GatewayKerberos;

/// What the gateway of a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayProfile {
    /// The schemes its 401 responses offer, in order.
    pub schemes: &'static [Scheme],
    /// Whether it answers the WebSocket upgrade (101); without, it answers the upgrade request with 200, as
    /// a gateway that only has the HTTP transport does ([MS-TSGU] 3.3.5.1).
    pub websocket: bool,
    pub fault: Option<GatewayFault>,
    /// Negotiate with Kerberos as this profile says (its key, its clock, whether NTLM is taken too); the
    /// gateway needs the keys of `HTTP/<host name>` ([`GatewayConfig::kerberos`]). Without a profile, a
    /// gateway given those keys accepts Kerberos as [`KerberosProfile::HEALTHY`] does.
    pub kerberos: Option<KerberosProfile>,
}

impl GatewayProfile {
    /// NTLM and Basic, both transports, no fault.
    pub const HEALTHY: GatewayProfile = GatewayProfile {
        schemes: &[Scheme::Ntlm, Scheme::Basic],
        websocket: true,
        fault: None,
        kerberos: None,
    };

    /// The healthy gateway with this fault.
    pub const fn with_fault(fault: GatewayFault) -> GatewayProfile {
        GatewayProfile {
            fault: Some(fault),
            ..GatewayProfile::HEALTHY
        }
    }
}

/// Everything the gateway needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub profile: GatewayProfile,
    pub listen: SocketAddr,
    pub identity: TestIdentity,
    /// The name in the gateway's certificate.
    pub host_name: String,
    /// How long it waits for each request or packet.
    pub read_timeout: Duration,
    /// How long a tunnel stays open with nothing on it.
    pub idle_limit: Duration,
    /// Where to write the gateway's TLS secrets.
    pub key_log: Option<std::path::PathBuf>,
    /// The keys of `HTTP/<host_name>` (`serve --keytab --realm`): the gateway offers Negotiate with Kerberos.
    pub kerberos: Option<GatewayKerberos>,
}

/// The host name the gateway's certificate names when none is given.
pub const DEFAULT_HOST_NAME: &str = "rdptrace-gateway";

impl GatewayConfig {
    pub fn new(profile: GatewayProfile) -> GatewayConfig {
        GatewayConfig {
            profile,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: TestIdentity::default(),
            host_name: DEFAULT_HOST_NAME.to_owned(),
            read_timeout: Duration::from_secs(30),
            idle_limit: Duration::from_secs(600),
            key_log: None,
            kerberos: None,
        }
    }

    /// The schemes the gateway's 401 offers: Negotiate first when it has Kerberos keys, then the profile's.
    pub fn offered(&self) -> Vec<Scheme> {
        let mut schemes = Vec::new();
        if self.kerberos.is_some() && !self.profile.schemes.contains(&Scheme::Negotiate) {
            schemes.push(Scheme::Negotiate);
        }
        schemes.extend_from_slice(self.profile.schemes);
        schemes
    }

    /// The Kerberos the gateway accepts: its keys and how it checks tickets.
    fn kerberos(&self) -> Option<(&GatewayKerberos, KerberosProfile)> {
        let keys = self.kerberos.as_ref()?;
        Some((
            keys,
            self.profile.kerberos.unwrap_or(KerberosProfile::HEALTHY),
        ))
    }
}

/// How one client connection to the gateway ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutcome {
    /// The client was refused (the HTTP status or the HRESULT, in words).
    Refused(String),
    /// The tunnel carried a connection to the target over `transport` (`WebSocket`, `HTTP` or `RPC`), and ended.
    Relayed {
        target: String,
        transport: &'static str,
        end: String,
    },
    /// The connection was one half of the HTTP transport, handed to the other.
    Paired,
    /// The client went away or broke the protocol.
    Failed(String),
}

impl fmt::Display for GatewayOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayOutcome::Refused(why) => write!(f, "gateway refused: {why}"),
            GatewayOutcome::Relayed {
                target,
                transport,
                end,
            } => {
                write!(f, "gateway tunnel ({transport}) to {target} ended: {end}")
            }
            GatewayOutcome::Paired => f.write_str("gateway IN channel joined its OUT channel"),
            GatewayOutcome::Failed(why) => write!(f, "gateway connection failed: {why}"),
        }
    }
}

/// One half of the HTTP transport, waiting for the other: the IN channel's stream and the bytes read past
/// its streaming request's head.
type InHalf = (channel::ServerTls, Vec<u8>);

/// The RDG-Connection-Id of OUT channels waiting for their IN channel.
#[derive(Default)]
struct Pairing {
    waiting: HashMap<String, oneshot::Sender<InHalf>>,
}

impl Shared {
    /// The OUT channel waiting as `key`, taken for its IN channel: polled every 20 ms until the read
    /// timeout, as a client may open the IN channel before the gateway has taken the OUT channel's request
    /// (on a busy machine, before the OUT channel's task has got as far as waiting).
    async fn out_channel_for(&self, key: &str) -> Option<oneshot::Sender<InHalf>> {
        let deadline = tokio::time::Instant::now() + self.config.read_timeout;
        // INVARIANT: polls every 20 ms until the read timeout.
        loop {
            let tx = self
                .pairing
                .lock()
                .ok()
                .and_then(|mut p| p.waiting.remove(key));
            if tx.is_some() || tokio::time::Instant::now() >= deadline {
                return tx;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// What the connections share.
struct Shared {
    config: GatewayConfig,
    tls: Arc<ServerConfig>,
    pairing: Mutex<Pairing>,
}

/// The built-in gateway, listening.
#[derive(Clone)]
pub struct Gateway {
    listener: Arc<TcpListener>,
    local: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Makes the certificate (the test CA issues it) and binds the listener.
    pub async fn bind(config: GatewayConfig) -> Result<Gateway, ServeError> {
        if config.profile.kerberos.is_some() && config.kerberos.is_none() {
            return Err(ServeError::Config(format!(
                "this gateway authenticates with Kerberos: it needs the key of {}/{} (--keytab FILE --realm REALM, the name --host-name)",
                crate::gateway::kerberos::SERVICE,
                config.host_name
            )));
        }
        let host = config.host_name.clone();
        let listen = Some(config.listen.ip());
        let identity = tokio::task::spawn_blocking(move || {
            super::tls::certificate(&CertProfile::DEFAULT, &host, listen)
        })
        .await
        .map_err(|e| ServeError::Certificate(e.to_string()))??;
        let key_log = match &config.key_log {
            Some(path) => {
                Some(Arc::new(super::tls::KeyLogFile::open(path)?) as Arc<dyn rustls::KeyLog>)
            }
            None => None,
        };
        let tls = super::tls::server_config(&identity, &TlsProfile::DEFAULT, key_log)?;
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
        Ok(Gateway {
            listener: Arc::new(listener),
            local,
            shared: Arc::new(Shared {
                config,
                tls,
                pairing: Mutex::new(Pairing::default()),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match self.local {
            SocketAddr::V4(a) => format!("https://{a}"),
            SocketAddr::V6(a) => format!("https://[{}]:{}", a.ip(), a.port()),
        }
    }

    /// Serves connections until `shutdown` completes; each outcome goes to `outcomes` when given.
    pub async fn run<F>(
        &self,
        shutdown: F,
        outcomes: Option<mpsc::UnboundedSender<(SocketAddr, GatewayOutcome)>>,
    ) -> Result<(), ServeError>
    where
        F: Future<Output = ()>,
    {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        // INVARIANT: each pass accepts one connection or ends; shutdown ends it.
        loop {
            while tasks.try_join_next().is_some() {}
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    warn!(%error, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            let sink = outcomes.clone();
            tasks.spawn(async move {
                let outcome = http::connection(shared, tcp, peer).await;
                info!(%peer, %outcome, "gateway connection ended");
                if let Some(sink) = sink {
                    let _ = sink.send((peer, outcome));
                }
            });
        }
        tasks.shutdown().await;
        Ok(())
    }
}

/// The resource authorization policy of the built-in gateway: loopback targets only.
fn allowed(resource: &str) -> bool {
    let host = resource.trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gateway_relays_to_loopback_only() {
        assert!(super::allowed("127.0.0.1"));
        assert!(super::allowed("127.0.0.2"));
        assert!(super::allowed("::1"));
        assert!(super::allowed("localhost"));
        assert!(!super::allowed("0.0.0.0"));
        assert!(!super::allowed("128.0.0.1"));
        assert!(!super::allowed("rdp.example.com"));
    }
}
