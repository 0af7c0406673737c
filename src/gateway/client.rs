//! The probe's gateway phases, as mstsc goes through an RD Gateway ([MS-TSGU] 3.3.5):
//!
//! - `gateway_connect`: TCP and TLS to the gateway; its certificate is recorded and judged as the target's
//!   is (problems are facts, fatal with `--strict-cert`).
//! - `gateway_auth`: an anonymous request first, to learn the schemes the gateway offers, then the legs of
//!   the chosen one (Negotiate, NTLM, Basic); the WebSocket upgrade first, then, when the gateway refuses
//!   it, the HTTP transport's RDG_OUT_DATA and RDG_IN_DATA channels; RPC over HTTP when asked (`rpc.rs`).
//! - `gateway_tunnel`: the handshake, tunnel creation, tunnel authorization and channel creation to the
//!   target ([MS-TSGU] 3.3.5.2), each answer's HRESULT checked.
//!
//! Everything the gateway says goes into the trace as PDUs, events and facts; the bytes on the gateway's
//! connections are counted in the phase they belong to and kept for `--pcap`.

mod rpc;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::auth::{ClientAuth, GatewayCredentials, Scheme};
use super::http::{self, RDG_IN_DATA, RDG_OUT_DATA, Response};
use super::kerberos::{self as krb, KerberosChoice};
use super::packet::{self, Packet};
use super::record;
use super::tunnel::{GwStream, Tunnel};
use super::websocket;
use super::{GatewayConfig, TransportChoice};
use crate::probe::Clock;
use crate::probe::transport::{Tap, TapLog};
use crate::trace::{CertificateFailure, EventKind, Fact, PhaseName, Side, TlsError, Trace};

/// The gateway phases stopped; what happened is recorded.
#[derive(Debug)]
pub struct Refused;

/// One TCP connection to the gateway.
#[derive(Debug, Clone)]
pub struct OuterConn {
    /// What its tap copied and the probe has not drained yet.
    pub log: Arc<Mutex<TapLog>>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// When it connected, ms since the probe's start.
    pub connected_at: f64,
}

/// A connection to the gateway and the bytes read past the last head.
struct Conn {
    stream: GwStream,
    buf: Vec<u8>,
}

/// What the gateway's WWW-Authenticate headers require of a client without credentials.
const NO_CREDENTIALS: &str =
    "the gateway asks for authentication and no gateway user was given (--gateway-user)";

/// The body of a response rdptrace reads and drops at most.
const MAX_BODY: usize = 64 * 1024;

/// The statuses that refuse the WebSocket upgrade itself, after which mstsc tries the HTTP transport.
const NO_WEBSOCKET: [u16; 5] = [400, 404, 405, 426, 501];

/// Why Basic is not used when the TLS secrets are written.
pub(crate) const BASIC_WITH_SECRETS: &str = "the gateway offers only Basic authentication, which would put the gateway password in the TLS session whose secrets are being written: leave out --keylog and --embed-secrets";

/// Goes through the gateway phases and records them.
pub struct Dialer<'a> {
    trace: &'a mut Trace,
    clock: Clock,
    cfg: &'a GatewayConfig,
    tls: Arc<ClientConfig>,
    strict_cert: bool,
    client_name: String,
    /// The target as the channel names it.
    resource: String,
    port: u16,
    /// [MS-TSGU] 3.3.5.1 RDG-Connection-Id: ties the OUT and IN channels of one tunnel.
    connection_id: String,
    /// Whether Basic may be picked: not when the TLS secrets are written (the password would be in them).
    basic: bool,
    /// Whether Negotiate may use Kerberos, and how (`--auth`, `--kdc`); `None`: NTLM inside Negotiate.
    kerberos: Option<KerberosChoice>,
    /// The salt of the user's key, from the KDC's KDC_ERR_PREAUTH_REQUIRED.
    krb_salt: Option<String>,
    /// Every connection to the gateway, in order.
    pub conns: Vec<OuterConn>,
    /// The bytes of those connections so far: (connection, side, time, bytes).
    pub wire: Vec<(usize, Side, f64, Vec<u8>)>,
}

impl<'a> Dialer<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        trace: &'a mut Trace,
        clock: Clock,
        cfg: &'a GatewayConfig,
        tls: Arc<ClientConfig>,
        strict_cert: bool,
        client_name: &str,
        resource: &str,
        port: u16,
    ) -> Self {
        let id: [u8; 16] = rand::random();
        let hex = hex::encode(id);
        let connection_id = format!(
            "{{{}-{}-{}-{}-{}}}",
            hex.get(0..8).unwrap_or_default(),
            hex.get(8..12).unwrap_or_default(),
            hex.get(12..16).unwrap_or_default(),
            hex.get(16..20).unwrap_or_default(),
            hex.get(20..32).unwrap_or_default()
        );
        Dialer {
            trace,
            clock,
            cfg,
            tls,
            strict_cert,
            client_name: client_name.to_owned(),
            resource: resource.to_owned(),
            port,
            connection_id,
            basic: true,
            kerberos: None,
            krb_salt: None,
            conns: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// The three gateway phases; the tunnel to the target when they all succeed.
    pub async fn run(&mut self) -> Result<Tunnel, Refused> {
        let at = self.clock.at();
        self.trace.enter(PhaseName::GatewayConnect, at);
        self.trace.fact(Fact::Gateway, self.cfg.address());
        let first = self.dial(true).await;
        self.drain();
        let first = first?;
        let at = self.clock.at();
        self.trace.enter(PhaseName::GatewayAuth, at);
        if self.cfg.transport == TransportChoice::Rpc {
            let channels = self.rpc_channels(first).await;
            self.drain();
            let channels = channels?;
            let at = self.clock.at();
            self.trace.enter(PhaseName::GatewayTunnel, at);
            let tunnel = self.rpc_setup(channels).await;
            self.drain();
            return tunnel;
        }
        let tunnel = self.authenticate(first).await;
        self.drain();
        let mut tunnel = tunnel?;
        let at = self.clock.at();
        self.trace.enter(PhaseName::GatewayTunnel, at);
        let setup = self.setup(&mut tunnel).await;
        self.drain();
        setup?;
        Ok(tunnel)
    }

    /// Counts what the taps copied in the current phase and keeps it for the capture.
    fn drain(&mut self) {
        for (i, c) in self.conns.iter().enumerate() {
            let chunks = c.log.lock().map(|mut l| l.drain()).unwrap_or_default();
            for (side, at, bytes) in chunks {
                self.trace.count_bytes(side, bytes.len());
                self.wire.push((i, side, at, bytes));
            }
        }
    }

    fn event(&mut self, kind: EventKind) {
        let at = self.clock.at();
        self.trace.record_event(at, kind);
    }

    /// TCP and TLS to the gateway; the certificate is recorded (and judged) on the first connection.
    async fn dial(&mut self, first: bool) -> Result<Conn, Refused> {
        let host = self.cfg.host.clone();
        let (tcp, local, remote) =
            crate::probe::tcp::dial(self.trace, &self.clock, &host, self.cfg.port)
                .await
                .ok_or(Refused)?;
        let log = Arc::new(Mutex::new(TapLog::default()));
        let connected_at = self.clock.at();
        self.conns.push(OuterConn {
            log: log.clone(),
            local,
            remote,
            connected_at,
        });
        if first {
            self.trace.set_addrs(Some(local), Some(remote));
        }
        let tap = Tap::new(tcp, log, self.clock.start);
        let Some(name) = crate::probe::tls::server_name(&host) else {
            self.event(EventKind::ClientLimit {
                detail: format!("{host} is not a valid TLS server name"),
            });
            return Err(Refused);
        };
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let (deadline, which) = self.clock.deadline();
        let stream = match tokio::time::timeout_at(deadline, connector.connect(name, tap)).await {
            Err(_) => {
                self.event(EventKind::TimedOut {
                    deadline: which,
                    waiting_for: "the gateway's TLS handshake".to_owned(),
                });
                return Err(Refused);
            }
            Ok(Err(e)) => {
                self.tls_failed(e);
                return Err(Refused);
            }
            Ok(Ok(s)) => s,
        };
        if first {
            self.record_tls(&stream, &host)?;
        }
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// The TLS handshake failed: what rustls refused, the gateway's alert, or the end of the connection.
    fn tls_failed(&mut self, e: std::io::Error) {
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        let kind = match rustls_error {
            Some(err) => EventKind::TlsFailed {
                error: TlsError::from(err),
            },
            None => match crate::probe::transport::classify(e) {
                crate::probe::transport::ReadError::Closed(how) => EventKind::Closed {
                    by: Side::Server,
                    how,
                },
                crate::probe::transport::ReadError::Io(e) => EventKind::TlsFailed {
                    error: TlsError::Io {
                        kind: e.kind(),
                        detail: e.to_string(),
                    },
                },
                _ => EventKind::TlsFailed {
                    error: TlsError::Io {
                        kind: std::io::ErrorKind::Other,
                        detail: "the TLS handshake failed".to_owned(),
                    },
                },
            },
        };
        self.event(kind);
    }

    /// The gateway's TLS session and certificate, as facts and a Certificate PDU; its problems, fatal with
    /// `--strict-cert`.
    fn record_tls(&mut self, stream: &GwStream, host: &str) -> Result<(), Refused> {
        let (_, session) = stream.get_ref();
        let version = session
            .protocol_version()
            .map(crate::probe::tls::version_name)
            .unwrap_or_default();
        let suite = session
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let chain: Vec<Vec<u8>> = session
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let at = self.clock.at();
        self.trace.record_event(
            at,
            EventKind::TlsEstablished {
                version: version.clone(),
                cipher_suite: suite.clone(),
            },
        );
        self.trace.fact(Fact::TlsVersion, version);
        self.trace.fact(Fact::CipherSuite, suite);
        let infos = chain
            .iter()
            .map(|c| crate::cert::cert_info(c).unwrap_or_default())
            .collect();
        let len = chain.iter().map(Vec::len).sum();
        let (summary, info) = crate::dissect::tls::certificate_facts(
            self.trace,
            infos,
            "from the client's TLS session",
        );
        self.trace.record_pdu(crate::trace::Pdu {
            at_ms: at,
            from: Side::Server,
            len,
            name: "TLS Certificate".to_owned(),
            summary,
            info,
        });
        let Some(leaf) = chain.first() else {
            self.event(EventKind::TlsFailed {
                error: TlsError::Certificate(CertificateFailure::NonePresented),
            });
            return Err(Refused);
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let problems = crate::cert::problems(leaf, host, now);
        if !problems.is_empty() {
            let list: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
            self.trace.fact(Fact::CertProblems, list.join(", "));
        }
        for (problem, detail) in &problems {
            self.trace.record_event(
                at,
                EventKind::CertificateProblem {
                    problem: problem.clone(),
                    detail: detail.clone(),
                },
            );
        }
        if self.strict_cert && !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|(_, d)| d.clone()).collect();
            self.trace.record_event(
                at,
                EventKind::TlsFailed {
                    error: TlsError::Certificate(CertificateFailure::Strict(list)),
                },
            );
            return Err(Refused);
        }
        Ok(())
    }

    // ---- gateway_auth ------------------------------------------------------------------------------------

    /// The HTTP authentication and the transport: a tunnel whose packets can flow.
    async fn authenticate(&mut self, conn: Conn) -> Result<Tunnel, Refused> {
        let websocket_first = match self.cfg.transport {
            TransportChoice::Auto | TransportChoice::Websocket => true,
            // RPC goes through `rpc_channels` instead.
            TransportChoice::Http | TransportChoice::Rpc => false,
        };
        let (conn, resp) = self.exchange(conn, RDG_OUT_DATA, websocket_first).await?;
        match resp.status {
            101 if websocket_first => {
                self.trace.fact(Fact::GatewayTransport, "WebSocket");
                let Conn { stream, buf } = conn;
                Ok(Tunnel::websocket(stream, &buf, self.clock.start))
            }
            200 => {
                if websocket_first {
                    self.trace.fact(
                        Fact::GatewayTransport,
                        "HTTP (RDG_OUT_DATA and RDG_IN_DATA): the gateway answered the WebSocket upgrade with 200",
                    );
                } else {
                    self.trace.fact(
                        Fact::GatewayTransport,
                        "HTTP (RDG_OUT_DATA and RDG_IN_DATA)",
                    );
                }
                self.http_transport(conn, resp).await
            }
            status
                if websocket_first
                    && self.cfg.transport == TransportChoice::Auto
                    && NO_WEBSOCKET.contains(&status) =>
            {
                self.trace.fact(
                    Fact::GatewayTransport,
                    format!(
                        "HTTP (RDG_OUT_DATA and RDG_IN_DATA): the gateway refused the WebSocket upgrade ({status})"
                    ),
                );
                let conn = self.dial(false).await?;
                let (conn, resp) = self.exchange(conn, RDG_OUT_DATA, false).await?;
                if resp.status != 200 {
                    return Err(Refused);
                }
                self.http_transport(conn, resp).await
            }
            _ => Err(Refused),
        }
    }

    /// The HTTP transport: the OUT channel answered 200; opens the IN channel.
    async fn http_transport(&mut self, out: Conn, resp: Response) -> Result<Tunnel, Refused> {
        let chunked = http::header(&resp.headers, "Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let conn = self.dial(false).await?;
        let (mut in_, in_resp) = self.exchange(conn, RDG_IN_DATA, false).await?;
        if in_resp.status != 200 {
            return Err(Refused);
        }
        self.skip_body(&mut in_, &in_resp).await?;
        // The request whose chunked body carries the client's packets from now on.
        let headers = [
            ("Connection", "Keep-Alive".to_owned()),
            ("RDG-Connection-Id", self.connection_id.clone()),
            ("Transfer-Encoding", "chunked".to_owned()),
        ];
        let head = http::request_head(RDG_IN_DATA, &self.cfg.host, &headers);
        self.write(&mut in_, &head).await?;
        let at = self.clock.at();
        let req = http::Request {
            method: RDG_IN_DATA.to_owned(),
            uri: http::GATEWAY_URI.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
        };
        self.trace
            .record_pdu(record::request_pdu(at, head.len(), &req));
        let Conn { stream, buf } = out;
        let tunnel = Tunnel::http(stream, &buf, chunked, in_.stream, self.clock.start);
        Ok(tunnel)
    }

    /// One request, authenticated as the gateway asks: anonymous first (or the forced scheme's first leg),
    /// then the legs of the scheme until the gateway answers something other than 401 or refuses the
    /// credentials. Returns the last response.
    async fn exchange(
        &mut self,
        mut conn: Conn,
        method: &str,
        upgrade: bool,
    ) -> Result<(Conn, Response), Refused> {
        let mut auth: Option<ClientAuth> = None;
        let mut authorization = None;
        if let Some(scheme) = self.cfg.auth {
            let mut a = self.new_auth(scheme).await?;
            authorization = Some(self.step(&mut a, None)?);
            auth = Some(a);
        }
        // INVARIANT: a scheme takes at most three legs; the count bounds a gateway that keeps asking.
        for _ in 0..6 {
            let key = upgrade.then(websocket::client_key);
            self.send_request(&mut conn, method, key.as_deref(), authorization.take())
                .await?;
            let resp = self.read_response(&mut conn).await?;
            self.trace
                .fact(Fact::HttpStatus, format!("{} {}", resp.status, resp.reason));
            if resp.status == 101 {
                let accept = http::header(&resp.headers, "Sec-WebSocket-Accept");
                let expected = key.as_deref().map(websocket::accept_key);
                if accept.is_none() || accept != expected.as_deref() {
                    self.event(EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: "HTTP response".to_owned(),
                        offset: None,
                        detail: "101 Switching Protocols without the Sec-WebSocket-Accept of the client's key ([RFC 6455] 4.2.2)".to_owned(),
                    });
                    return Err(Refused);
                }
                self.finish(auth.as_mut(), &resp)?;
                self.note_scheme(auth.as_ref());
                return Ok((conn, resp));
            }
            if resp.status != 401 {
                if resp.status < 300 {
                    self.finish(auth.as_mut(), &resp)?;
                }
                self.note_scheme(auth.as_ref());
                return Ok((conn, resp));
            }
            let offered = http::challenges(&resp.headers);
            if auth.is_none() {
                let names: Vec<&str> = offered.iter().map(|(s, _)| s.as_str()).collect();
                self.trace.fact(Fact::GatewayAuthOffered, names.join(", "));
            }
            let next = match auth.as_mut() {
                None => {
                    let Some(scheme) = self.pick(&offered) else {
                        return Ok((conn, resp));
                    };
                    let mut a = self.new_auth(scheme).await?;
                    let header = self.step(&mut a, None)?;
                    auth = Some(a);
                    Some(header)
                }
                Some(a) if a.complete => None,
                // The gateway refused the AP-REQ: its 401 (with a KRB-ERROR, when it sent one) is the answer.
                Some(a) if a.is_kerberos() => None,
                Some(_) => self.next_leg(&mut auth, &offered)?,
            };
            let Some(next) = next else {
                // The gateway refused the credentials.
                self.note_scheme(auth.as_ref());
                return Ok((conn, resp));
            };
            self.skip_body(&mut conn, &resp).await?;
            if http::has_token(&resp.headers, "Connection", "close") {
                conn = self.dial(false).await?;
            }
            authorization = Some(next);
        }
        Err(Refused)
    }

    /// The next leg of the scheme under way, answering the gateway's 401: its token for that scheme,
    /// stepped; `None` when the 401 carries none (the gateway refused the credentials).
    pub(super) fn next_leg(
        &mut self,
        auth: &mut Option<ClientAuth>,
        offered: &[(String, Option<String>)],
    ) -> Result<Option<String>, Refused> {
        let Some(a) = auth.as_mut() else {
            return Ok(None);
        };
        let scheme = a.scheme().as_str();
        let token = offered
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(scheme))
            .and_then(|(_, t)| t.clone());
        match token {
            Some(t) => self.step(a, Some(&t)).map(Some),
            None => Ok(None),
        }
    }

    fn note_scheme(&mut self, auth: Option<&ClientAuth>) {
        if let Some(a) = auth {
            self.trace
                .fact(Fact::GatewayAuthScheme, a.scheme().as_str());
        }
    }

    /// Lets Negotiate use Kerberos as `choice` says.
    pub(crate) fn with_kerberos(mut self, choice: Option<KerberosChoice>) -> Self {
        self.kerberos = choice;
        self
    }

    /// Never picks Basic on its own: the TLS secrets are written, and Basic would put the password in them.
    pub(crate) fn without_basic(mut self) -> Self {
        self.basic = false;
        self
    }

    /// The scheme to answer a 401 with: the forced one, else Negotiate, NTLM, Basic, in that order, of those
    /// offered. Records why there is none.
    fn pick(&mut self, offered: &[(String, Option<String>)]) -> Option<Scheme> {
        if self.cfg.credentials.is_none() {
            self.event(EventKind::Anomaly {
                detail: NO_CREDENTIALS.to_owned(),
            });
            return None;
        }
        let has = |s: Scheme| {
            offered
                .iter()
                .any(|(o, _)| o.eq_ignore_ascii_case(s.as_str()))
        };
        let only_kerberos = self.kerberos.as_ref().is_some_and(|k| k.only);
        let pick = [Scheme::Negotiate, Scheme::Ntlm, Scheme::Basic]
            .into_iter()
            .filter(|s| self.basic || *s != Scheme::Basic)
            .filter(|s| !only_kerberos || *s == Scheme::Negotiate)
            .find(|s| has(*s));
        if pick.is_none() && only_kerberos {
            let names: Vec<&str> = offered.iter().map(|(s, _)| s.as_str()).collect();
            self.event(EventKind::ClientLimit {
                detail: format!(
                    "--auth kerberos: the gateway offers {}, not Negotiate, the scheme Kerberos goes in ([RFC 4559])",
                    if names.is_empty() { "no scheme".to_owned() } else { names.join(", ") }
                ),
            });
            return None;
        }
        if pick.is_none() && has(Scheme::Basic) {
            self.event(EventKind::ClientLimit {
                detail: BASIC_WITH_SECRETS.to_owned(),
            });
        } else if pick.is_none() {
            let names: Vec<&str> = offered.iter().map(|(s, _)| s.as_str()).collect();
            self.event(EventKind::ClientLimit {
                detail: format!(
                    "the gateway offers {} authentication, which rdptrace does not speak (Negotiate, NTLM, Basic)",
                    if names.is_empty() { "no".to_owned() } else { names.join(", ") }
                ),
            });
        }
        pick
    }

    async fn new_auth(&mut self, scheme: Scheme) -> Result<ClientAuth, Refused> {
        let Some(credentials) = self.cfg.credentials.as_ref() else {
            self.event(EventKind::Anomaly {
                detail: NO_CREDENTIALS.to_owned(),
            });
            return Err(Refused);
        };
        let credentials: GatewayCredentials = credentials.clone();
        if scheme == Scheme::Negotiate
            && let Some(a) = self.kerberos_auth(&credentials).await?
        {
            return Ok(a);
        }
        match ClientAuth::new(scheme, &credentials, &self.cfg.host, &self.client_name) {
            Ok(a) => Ok(a),
            Err(e) => {
                self.event(EventKind::ClientLimit {
                    detail: e.to_string(),
                });
                Err(Refused)
            }
        }
    }

    /// Negotiate with Kerberos when the plan allows it: `Some` with the AP-REQ ready, `None` when Negotiate
    /// goes on with NTLM (recorded when it is a fallback).
    async fn kerberos_auth(
        &mut self,
        credentials: &GatewayCredentials,
    ) -> Result<Option<ClientAuth>, Refused> {
        let Some(choice) = self.kerberos.clone() else {
            return Ok(None);
        };
        let at = self.clock.at();
        let Some(plan) = krb::Plan::new(self.trace, at, &choice, credentials, &self.cfg.host)
        else {
            if choice.only {
                self.event(EventKind::ClientLimit {
                    detail: format!(
                        "--auth kerberos: the gateway user {} has no realm (user@REALM or DOMAIN\\user)",
                        credentials.user
                    ),
                });
                return Err(Refused);
            }
            return Ok(None);
        };
        let outcome = krb::first_token(
            self.trace,
            self.clock,
            &mut self.krb_salt,
            &plan,
            credentials,
            &self.client_name,
        )
        .await;
        match outcome {
            krb::Outcome::Ready(ready) => {
                let krb::Ready { krb, handle, token } = *ready;
                Ok(Some(ClientAuth::kerberos(
                    Box::new(krb),
                    handle,
                    token,
                    plan.spn,
                )))
            }
            krb::Outcome::FallBack => Ok(None),
            krb::Outcome::Stopped => Err(Refused),
        }
    }

    /// The gateway accepted: its last Negotiate token (Kerberos's AP-REP) is checked.
    fn finish(&mut self, auth: Option<&mut ClientAuth>, resp: &Response) -> Result<(), Refused> {
        let Some(a) = auth.filter(|a| a.is_kerberos()) else {
            return Ok(());
        };
        let token = http::challenges(&resp.headers)
            .into_iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(Scheme::Negotiate.as_str()))
            .and_then(|(_, t)| t);
        let Some(token) = token else {
            return Ok(());
        };
        if let Err(e) = a.finish(&token) {
            self.event(EventKind::ClientLimit {
                detail: format!(
                    "the gateway's Kerberos answer does not prove it holds the key of {}: {e}",
                    a.target()
                ),
            });
            return Err(Refused);
        }
        Ok(())
    }

    fn step(&mut self, auth: &mut ClientAuth, challenge: Option<&str>) -> Result<String, Refused> {
        match auth.step(challenge) {
            Ok(h) => Ok(h),
            Err(e) => {
                self.event(EventKind::ClientLimit {
                    detail: e.to_string(),
                });
                Err(Refused)
            }
        }
    }

    /// Writes a request head and records it (its Authorization by scheme only).
    async fn send_request(
        &mut self,
        conn: &mut Conn,
        method: &str,
        websocket_key: Option<&str>,
        authorization: Option<String>,
    ) -> Result<(), Refused> {
        let mut headers: Vec<(&str, String)> = Vec::new();
        match websocket_key {
            Some(key) => {
                headers.push(("Connection", "Upgrade".to_owned()));
                headers.push(("Upgrade", "websocket".to_owned()));
                headers.push(("Sec-WebSocket-Version", "13".to_owned()));
                headers.push(("Sec-WebSocket-Key", key.to_owned()));
            }
            None => headers.push(("Connection", "Keep-Alive".to_owned())),
        }
        headers.push(("RDG-Connection-Id", self.connection_id.clone()));
        headers.push(("Content-Length", "0".to_owned()));
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        let head = http::request_head(method, &self.cfg.host, &headers);
        self.write(conn, &head).await?;
        let at = self.clock.at();
        let req = http::Request {
            method: method.to_owned(),
            uri: http::GATEWAY_URI.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
        };
        self.trace
            .record_pdu(record::request_pdu(at, head.len(), &req));
        Ok(())
    }

    async fn write(&mut self, conn: &mut Conn, bytes: &[u8]) -> Result<(), Refused> {
        let (deadline, which) = self.clock.deadline();
        let written = tokio::time::timeout_at(deadline, async {
            conn.stream.write_all(bytes).await?;
            conn.stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.io_failed(e, "writing to the gateway");
                Err(Refused)
            }
            Err(_) => {
                self.event(EventKind::TimedOut {
                    deadline: which,
                    waiting_for: "the gateway to take the request".to_owned(),
                });
                Err(Refused)
            }
        }
    }

    fn io_failed(&mut self, e: std::io::Error, doing: &str) {
        let detail = e.to_string();
        match crate::probe::transport::classify(e) {
            crate::probe::transport::ReadError::Closed(how) => self.event(EventKind::Closed {
                by: Side::Server,
                how,
            }),
            _ => self.event(EventKind::ClientLimit {
                detail: format!("{doing} failed: {detail}"),
            }),
        }
    }

    /// Reads the gateway's next bytes onto `conn.buf` (through `chunk`) by `deadline`; a timeout (while
    /// waiting for `waiting_for`), a close or a failed read is recorded, and refuses.
    async fn read_more(
        &mut self,
        conn: &mut Conn,
        chunk: &mut [u8],
        (deadline, which): (tokio::time::Instant, crate::trace::Deadline),
        waiting_for: &str,
    ) -> Result<(), Refused> {
        match tokio::time::timeout_at(deadline, conn.stream.read(chunk)).await {
            Err(_) => {
                self.event(EventKind::TimedOut {
                    deadline: which,
                    waiting_for: waiting_for.to_owned(),
                });
                Err(Refused)
            }
            Ok(Ok(0)) => {
                self.event(EventKind::Closed {
                    by: Side::Server,
                    how: crate::trace::CloseKind::Fin,
                });
                Err(Refused)
            }
            Ok(Ok(n)) => {
                conn.buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                Ok(())
            }
            Ok(Err(e)) => {
                self.io_failed(e, "reading from the gateway");
                Err(Refused)
            }
        }
    }

    /// Reads a response head and records it.
    async fn read_response(&mut self, conn: &mut Conn) -> Result<Response, Refused> {
        let (deadline, which) = self.clock.deadline();
        let mut chunk = vec![0u8; 16 * 1024];
        // INVARIANT: each pass returns or reads at least one byte; the head is bounded by MAX_HEAD and the
        // deadline bounds the time.
        loop {
            let before = conn.buf.len();
            match http::take_response(&mut conn.buf) {
                Ok(Some(resp)) => {
                    let len = before - conn.buf.len();
                    let at = self.clock.at();
                    self.trace.record_pdu(record::response_pdu(at, len, &resp));
                    return Ok(resp);
                }
                Ok(None) => {}
                Err(e) => {
                    self.event(EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: "HTTP response".to_owned(),
                        offset: Some(0),
                        detail: e.to_string(),
                    });
                    return Err(Refused);
                }
            }
            self.read_more(
                conn,
                &mut chunk,
                (deadline, which),
                "the gateway's HTTP response",
            )
            .await?;
        }
    }

    /// Reads and drops the body a response announced (`Content-Length`), so that the next head is read
    /// where it starts.
    async fn skip_body(&mut self, conn: &mut Conn, resp: &Response) -> Result<(), Refused> {
        let len = http::header(&resp.headers, "Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if len > MAX_BODY {
            self.event(EventKind::ProtocolError {
                from: Side::Server,
                pdu: "HTTP response".to_owned(),
                offset: None,
                detail: format!("a {len}-byte body, more than rdptrace reads"),
            });
            return Err(Refused);
        }
        let (deadline, which) = self.clock.deadline();
        let mut chunk = vec![0u8; 16 * 1024];
        // INVARIANT: each pass reads at least one byte or returns; `len` is bounded.
        while conn.buf.len() < len {
            self.read_more(
                conn,
                &mut chunk,
                (deadline, which),
                "the body of the gateway's HTTP response",
            )
            .await?;
        }
        conn.buf.drain(..len);
        Ok(())
    }

    // ---- gateway_tunnel ----------------------------------------------------------------------------------

    /// [MS-TSGU] 3.3.5.2 the handshake, the tunnel, its authorization and the channel to the target.
    async fn setup(&mut self, tunnel: &mut Tunnel) -> Result<(), Refused> {
        let steps = [
            (
                Packet::HandshakeRequest {
                    major: 1,
                    minor: 0,
                    client_version: 0,
                    extended_auth: 0,
                },
                packet::kind::HANDSHAKE_RESPONSE,
            ),
            (
                Packet::TunnelCreate {
                    caps: packet::CAPS_QUAR_SOH
                        | packet::CAPS_IDLE_TIMEOUT
                        | packet::CAPS_MESSAGING_CONSENT_SIGN
                        | packet::CAPS_MESSAGING_SERVICE_MSG,
                    paa_cookie: false,
                    reauth_context: None,
                },
                packet::kind::TUNNEL_RESPONSE,
            ),
            (
                Packet::TunnelAuth {
                    client_name: self.client_name.clone(),
                },
                packet::kind::TUNNEL_AUTH_RESPONSE,
            ),
            (
                Packet::ChannelCreate {
                    resources: vec![self.resource.clone()],
                    alternates: Vec::new(),
                    port: self.port,
                    protocol: packet::PROTOCOL_RDP,
                },
                packet::kind::CHANNEL_RESPONSE,
            ),
        ];
        self.trace.fact(
            Fact::GatewayTarget,
            format!("{}:{}", self.resource, self.port),
        );
        for (request, answer) in steps {
            let bytes = request.encode();
            let (deadline, which) = self.clock.deadline();
            match tokio::time::timeout_at(deadline, tunnel.send(&request)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.tunnel_ended(tunnel);
                    self.io_failed(e, "writing to the gateway");
                    return Err(Refused);
                }
                Err(_) => {
                    self.event(EventKind::TimedOut {
                        deadline: which,
                        waiting_for: format!("the gateway to take the {}", request.name()),
                    });
                    return Err(Refused);
                }
            }
            let at = self.clock.at();
            if let Some(pdu) = record::packet_pdu(at, Side::Client, &bytes) {
                self.trace.record_pdu(pdu);
            }
            let reply = self.answer(tunnel, answer).await?;
            if answer == packet::kind::HANDSHAKE_RESPONSE
                && let Some(seed) = tunnel.seed()
            {
                let base = self
                    .trace
                    .phase(PhaseName::GatewayAuth)
                    .facts
                    .get(Fact::GatewayTransport)
                    .and_then(|v| v.as_str())
                    .unwrap_or("HTTP (RDG_OUT_DATA and RDG_IN_DATA)")
                    .to_owned();
                self.trace.fact_in(
                    PhaseName::GatewayAuth,
                    Fact::GatewayTransport,
                    format!("{base}; a {seed}-byte seed before the first packet"),
                );
            }
            record::reply_facts(self.trace, &reply);
            if let Some(code) = reply.code()
                && crate::codes::gateway::failed(code)
            {
                self.trace.fact(
                    Fact::GatewayCode,
                    crate::codes::Display(crate::codes::Table::Gateway, code).to_string(),
                );
                return Err(Refused);
            }
        }
        Ok(())
    }

    /// Waits for the packet of type `expected`; records what comes meanwhile (service messages).
    async fn answer(&mut self, tunnel: &mut Tunnel, expected: u16) -> Result<Packet, Refused> {
        let waiting = packet::name_of(expected);
        // INVARIANT: at most eight packets before the answer; each read is bounded by the deadline.
        for _ in 0..8 {
            let (deadline, which) = self.clock.deadline();
            let bytes = match tokio::time::timeout_at(deadline, tunnel.recv()).await {
                Err(_) => {
                    self.event(EventKind::TimedOut {
                        deadline: which,
                        waiting_for: format!("the gateway's {waiting}"),
                    });
                    return Err(Refused);
                }
                Ok(Ok(Some(b))) => b,
                Ok(Ok(None)) => {
                    self.tunnel_ended(tunnel);
                    return Err(Refused);
                }
                Ok(Err(e)) => {
                    self.tunnel_ended(tunnel);
                    self.io_failed(e, "reading from the gateway");
                    return Err(Refused);
                }
            };
            let at = self.clock.at();
            if let Some(pdu) = record::packet_pdu(at, Side::Server, &bytes) {
                self.trace.record_pdu(pdu);
            }
            match Packet::decode(&bytes) {
                Ok(p) if p.packet_type() == expected => return Ok(p),
                Ok(p @ Packet::CloseChannel { .. }) => {
                    // The gateway gave up on the tunnel: its code says why.
                    return Ok(p);
                }
                Ok(Packet::ServiceMessage(m)) => {
                    self.trace.fact(Fact::GatewayMessage, m);
                }
                Ok(Packet::Keepalive) => {}
                Ok(other) => {
                    self.event(EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: other.name().to_owned(),
                        offset: None,
                        detail: format!("the gateway sent it where its {waiting} belongs"),
                    });
                    return Err(Refused);
                }
                Err(e) => {
                    self.event(EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: waiting.to_owned(),
                        offset: Some(e.offset),
                        detail: e.to_string(),
                    });
                    return Err(Refused);
                }
            }
        }
        self.event(EventKind::ProtocolError {
            from: Side::Server,
            pdu: waiting.to_owned(),
            offset: None,
            detail: "the gateway sent eight packets and not this one".to_owned(),
        });
        Err(Refused)
    }

    /// Records the tunnel's end when the gateway ended it during the setup.
    fn tunnel_ended(&mut self, tunnel: &Tunnel) {
        let log = tunnel.log();
        let end = log.lock().ok().and_then(|mut l| l.end.take());
        if let Some((at, end)) = end {
            self.trace.record_event(at, EventKind::TunnelEnded { end });
        }
    }
}
