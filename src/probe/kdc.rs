//! The KDC as the probe reaches it: where it is (`--kdc`, krb5.conf, DNS SRV records) and one exchange at a
//! time over TCP ([RFC 4120] 7.2.2), UDP (7.2.1) or an [MS-KKDCP] KDC proxy over HTTPS, under the probe's
//! deadlines. sspi's Kerberos hands out the requests ([`NetworkRequest`]); this is the network client that
//! answers them, and records each message, each failure and the time it took.
//!
//! Kerberos traffic never goes into `--pcap`: an AS-REP or a pre-authentication timestamp is material for an
//! offline guess of the password.

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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ironrdp_connector::sspi::network_client::NetworkProtocol;
use ironrdp_connector::sspi::{self, NetworkRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{debug, info};
use url::Url;

use super::{Clock, Password, Run};
use crate::kerberos::{self, dns, message};
use crate::pdu::KrbMessage;
use crate::trace::{EventKind, KdcDirection, KdcError, KdcSource, Trace};

/// The largest KDC reply the probe reads (a ticket with a large PAC is tens of kilobytes).
const MAX_REPLY: usize = 1 << 20;
/// The environment variable that names the DNS server for the SRV lookup (`ip` or `ip:port`).
pub const DNS_SERVER_ENV: &str = "RDPTRACE_DNS_SERVER";

/// `--kdc`: `tcp://host[:88]`, `udp://host[:88]`, `https://host/KdcProxy` ([MS-KKDCP]); a bare `host[:port]`
/// is TCP.
pub fn parse_kdc_url(s: &str) -> Result<Url, String> {
    let text = s.trim();
    let text = if text.contains("://") {
        text.to_owned()
    } else {
        format!("tcp://{text}")
    };
    let url = Url::parse(&text).map_err(|e| format!("not a KDC URL: {s}: {e}"))?;
    match url.scheme() {
        "tcp" | "udp" | "http" | "https" => {}
        other => {
            return Err(format!(
                "a KDC URL is tcp://, udp:// or https:// (a KDC proxy), not {other}://"
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the KDC URL names no host: {s}"));
    }
    Ok(url)
}

/// The krb5.conf files the probe reads: `KRB5_CONFIG` (colon-separated), else `/etc/krb5.conf`.
fn krb5_conf_paths() -> Vec<PathBuf> {
    match std::env::var("KRB5_CONFIG") {
        Ok(list) if !list.trim().is_empty() => list
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        _ => vec![PathBuf::from("/etc/krb5.conf")],
    }
}

/// The `kdc` entries of `[realms] REALM = { ... }` in a krb5.conf, in order.
pub fn krb5_conf_kdcs(text: &str, realm: &str) -> Vec<String> {
    let mut in_realms = false;
    let mut depth = 0usize;
    let mut in_realm = false;
    let mut kdcs = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            in_realms = line.trim_end_matches('*').eq_ignore_ascii_case("[realms]");
            depth = 0;
            in_realm = false;
            continue;
        }
        if !in_realms {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let (key, value) = (key.trim(), value.trim());
            if value.starts_with('{') {
                if depth == 0 {
                    in_realm = key == realm;
                }
                depth += 1;
                continue;
            }
            if in_realm && depth == 1 && key.eq_ignore_ascii_case("kdc") && !value.is_empty() {
                kdcs.push(value.to_owned());
            }
        } else if line.starts_with('}') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                in_realm = false;
            }
        }
    }
    kdcs
}

/// A `kdc = ...` value as a URL: `host[:port]` is TCP (sspi's choice, and what a large ticket needs),
/// `https://...` a KDC proxy.
fn krb5_conf_url(value: &str) -> Option<Url> {
    let v = value.trim();
    let v = v
        .strip_prefix("tcp/")
        .map(|h| format!("tcp://{h}"))
        .or_else(|| v.strip_prefix("udp/").map(|h| format!("udp://{h}")))
        .unwrap_or_else(|| v.to_owned());
    parse_kdc_url(&v).ok()
}

/// The name server for the SRV lookup: [`DNS_SERVER_ENV`], else the first `nameserver` of /etc/resolv.conf.
fn dns_server() -> Option<SocketAddr> {
    let parse = |s: &str| {
        s.parse::<SocketAddr>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(|ip| (ip, 53).into()))
    };
    if let Ok(s) = std::env::var(DNS_SERVER_ENV) {
        return parse(s.trim());
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next().and_then(parse))
            .flatten()
    })
}

/// The message inside what sspi sends: a TCP record, a UDP datagram, or the kerb-message of an [MS-KKDCP]
/// 2.2.2 KDC-PROXY-MESSAGE (which carries the TCP record).
fn request_message(protocol: NetworkProtocol, bytes: &[u8]) -> Option<&[u8]> {
    match protocol {
        NetworkProtocol::Tcp => kerberos::tcp_record(bytes, MAX_REPLY)?.ok(),
        NetworkProtocol::Udp => Some(bytes),
        NetworkProtocol::Http | NetworkProtocol::Https => {
            kerberos::tcp_record(kerberos::kkdcp_message(bytes)?, MAX_REPLY)?.ok()
        }
    }
}

/// The message inside what sspi gets back: a TCP record (the UDP answer too, framed for sspi), or a
/// KDC-PROXY-MESSAGE.
fn reply_message(protocol: NetworkProtocol, bytes: &[u8]) -> Option<&[u8]> {
    match protocol {
        NetworkProtocol::Tcp | NetworkProtocol::Udp => kerberos::tcp_record(bytes, MAX_REPLY)?.ok(),
        NetworkProtocol::Http | NetworkProtocol::Https => {
            kerberos::tcp_record(kerberos::kkdcp_message(bytes)?, MAX_REPLY)?.ok()
        }
    }
}

impl Run<'_> {
    /// The KDC client of this run: its trace, clock, `--kdc` and the user's password.
    pub(super) fn kdc_client(&mut self) -> KdcClient<'_> {
        let clock = self.clock();
        KdcClient {
            trace: self.d.trace_mut(),
            clock,
            kdc: self.cfg.kdc.clone(),
            password: self.cfg.credentials.as_ref().map(|c| c.password.clone()),
            salt: &mut self.krb_salt,
        }
    }

    /// See [`KdcClient::locate`].
    pub(super) async fn locate_kdc(&mut self, realm: &str) -> Option<Url> {
        self.kdc_client().locate(realm).await
    }
}

/// The probe's KDC client: finds the KDC, answers sspi's requests, and records every message and failure in
/// the current phase of `trace` (`credssp` for NLA, `gateway_auth` for an RD Gateway's Negotiate).
pub(crate) struct KdcClient<'a> {
    pub trace: &'a mut Trace,
    pub clock: Clock,
    /// `--kdc`.
    pub kdc: Option<Url>,
    /// The user's password: sspi reads an MIT AS-REP only once it is re-tagged with the user's key.
    pub password: Option<Password>,
    /// The salt of the user's key, from the KDC's KDC_ERR_PREAUTH_REQUIRED.
    pub salt: &'a mut Option<String>,
}

impl KdcClient<'_> {
    /// Finds the KDC of `realm`: `--kdc`, else a `kdc` of the realm in krb5.conf, else DNS SRV records.
    /// Records where it came from, or where the probe looked.
    pub async fn locate(&mut self, realm: &str) -> Option<Url> {
        let mut tried = Vec::new();
        let found = match self.kdc.clone() {
            Some(url) => Some((url, KdcSource::Option)),
            None => {
                tried.push("--kdc (not given)".to_owned());
                let mut found = None;
                for path in krb5_conf_paths() {
                    tried.push(format!("krb5.conf ({})", path.display()));
                    let Ok(text) = std::fs::read_to_string(&path) else {
                        continue;
                    };
                    if let Some(url) = krb5_conf_kdcs(&text, realm)
                        .iter()
                        .find_map(|v| krb5_conf_url(v))
                    {
                        found = Some((
                            url,
                            KdcSource::Krb5Conf {
                                path: path.display().to_string(),
                            },
                        ));
                        break;
                    }
                }
                match found {
                    Some(found) => Some(found),
                    None => self.srv_lookup(realm, &mut tried).await,
                }
            }
        };
        let at = self.clock.at();
        match found {
            Some((url, source)) => {
                info!(%realm, kdc = %url, "kdc");
                self.trace.record_event(
                    at,
                    EventKind::KdcChosen {
                        realm: realm.to_owned(),
                        kdc: url.to_string(),
                        source,
                    },
                );
                Some(url)
            }
            None => {
                self.trace.record_event(
                    at,
                    EventKind::KdcNotFound {
                        realm: realm.to_owned(),
                        tried,
                    },
                );
                None
            }
        }
    }

    /// [RFC 4120] 7.2.3.2 `_kerberos._tcp.REALM`, then `_kerberos._udp.REALM`.
    async fn srv_lookup(
        &mut self,
        realm: &str,
        tried: &mut Vec<String>,
    ) -> Option<(Url, KdcSource)> {
        let Some(server) = dns_server() else {
            tried.push("DNS SRV (no name server in /etc/resolv.conf)".to_owned());
            return None;
        };
        for (proto, scheme) in [("tcp", "tcp"), ("udp", "udp")] {
            let name = format!("_kerberos._{proto}.{realm}");
            tried.push(format!("DNS SRV {name} (from {server})"));
            let (deadline, _) = self.clock.deadline();
            let answer =
                tokio::time::timeout_at(deadline, srv_exchange(server, &name, self.clock.start))
                    .await;
            match answer {
                Ok(Ok(dns::Answer::Records(records))) => {
                    if let Some(best) = records.first() {
                        let url = Url::parse(&format!("{scheme}://{}:{}", best.target, best.port))
                            .ok()?;
                        return Some((
                            url,
                            KdcSource::DnsSrv {
                                name,
                                server: server.to_string(),
                            },
                        ));
                    }
                }
                Ok(Ok(dns::Answer::Error(rcode))) => debug!(%name, rcode, "srv lookup"),
                Ok(Err(e)) => debug!(%name, error = %e, "srv lookup"),
                Err(_) => debug!(%name, "srv lookup timed out"),
            }
        }
        None
    }

    /// Runs sspi's Kerberos step to its end, carrying each request it suspends on to the KDC
    /// ([`KdcClient::exchange`]).
    pub async fn drive(
        &mut self,
        mut generator: sspi::generator::GeneratorInitSecurityContext<'_>,
    ) -> sspi::Result<sspi::InitializeSecurityContextResult> {
        let mut state = generator.start();
        // INVARIANT: sspi asks the KDC a bounded number of times (AS without and with pre-authentication,
        // a skew retry, TGS and its referrals); the count and the deadlines of each answer bound the loop.
        let mut asked = 0;
        loop {
            match state {
                sspi::generator::GeneratorState::Completed(result) => return result,
                sspi::generator::GeneratorState::Suspended(request) => {
                    asked += 1;
                    if asked > 32 {
                        return Err(sspi::Error::new(
                            sspi::ErrorKind::InternalError,
                            "too many requests to the KDC",
                        ));
                    }
                    let answer = self.exchange(&request).await;
                    state = generator.resume(answer);
                }
            }
        }
    }

    /// Sends one request of sspi's Kerberos to the KDC and returns the answer in the form sspi reads; records
    /// both messages and any failure. A failure is sspi's `NoAuthenticatingAuthority`, the error on which
    /// Negotiate falls back to NTLM (as Windows does when no KDC answers).
    pub async fn exchange(&mut self, request: &NetworkRequest) -> sspi::Result<Vec<u8>> {
        let kdc = request.url.to_string();
        let protocol = request.protocol;
        let sent = request_message(protocol, &request.data).and_then(|m| message::parse(m).ok());
        let (deadline, _) = self.clock.deadline();
        let started = self.clock.at();
        let result =
            tokio::time::timeout_at(deadline, exchange(protocol, &request.url, &request.data))
                .await
                .unwrap_or(Err((KdcError::TimedOut, None)));
        let addr = match &result {
            Ok((_, addr)) => Some(*addr),
            Err((_, addr)) => *addr,
        };
        if let Some(m) = sent {
            self.record_kdc(started, &kdc, addr, KdcDirection::ToKdc, m);
        }
        match result {
            Ok((reply, addr)) => {
                let at = self.clock.at();
                let reply = self.compatible(protocol, reply);
                match reply_message(protocol, &reply).map(message::parse) {
                    Some(Ok(mut m)) => {
                        if let KrbMessage::Error(e) = &mut m {
                            e.clock_offset_s = clock_offset(&e.stime);
                        }
                        self.record_kdc(at, &kdc, Some(addr), KdcDirection::FromKdc, m);
                    }
                    Some(Err(e)) => self.kdc_failed(&kdc, KdcError::Malformed(e.to_string())),
                    None => self.kdc_failed(
                        &kdc,
                        KdcError::Malformed("no Kerberos message in the answer".to_owned()),
                    ),
                }
                Ok(reply)
            }
            Err((error, _)) => {
                let text = error.to_string();
                self.kdc_failed(&kdc, error);
                Err(sspi::Error::new(
                    sspi::ErrorKind::NoAuthenticatingAuthority,
                    format!("KDC {kdc}: {text}"),
                ))
            }
        }
    }

    /// The answer as sspi can read it (see [`super::krb_compat`]); the salt of a KDC_ERR_PREAUTH_REQUIRED
    /// kept for it.
    fn compatible(&mut self, protocol: NetworkProtocol, reply: Vec<u8>) -> Vec<u8> {
        let Some(msg) = reply_message(protocol, &reply) else {
            return reply;
        };
        match msg.first() {
            Some(&0x7e) => {
                if let Some(salt) = super::krb_compat::error_salt(msg) {
                    *self.salt = Some(salt);
                }
                reply
            }
            Some(&0x6b) => {
                let Some(password) = self.password.clone() else {
                    return reply;
                };
                let Some(fixed) =
                    super::krb_compat::retag_as_rep(msg, password.expose(), self.salt.as_deref())
                else {
                    return reply;
                };
                debug!("as-rep enc-part re-tagged for sspi");
                let framed = kerberos::tcp_frame(&fixed);
                match protocol {
                    NetworkProtocol::Tcp | NetworkProtocol::Udp => framed,
                    NetworkProtocol::Http | NetworkProtocol::Https => {
                        picky_krb::messages::KdcProxyMessage::from_raw_kerb_message(&framed)
                            .and_then(|m| m.to_vec())
                            .unwrap_or(reply)
                    }
                }
            }
            _ => reply,
        }
    }

    fn record_kdc(
        &mut self,
        at: f64,
        kdc: &str,
        addr: Option<SocketAddr>,
        direction: KdcDirection,
        message: KrbMessage,
    ) {
        info!(%kdc, msg = message::name(&message), ?direction, "kdc");
        self.trace.record_event(
            at,
            EventKind::Kdc {
                kdc: kdc.to_owned(),
                addr: addr.map(|a| a.to_string()),
                direction,
                message,
            },
        );
    }

    fn kdc_failed(&mut self, kdc: &str, error: KdcError) {
        info!(%kdc, %error, "kdc failed");
        let at = self.clock.at();
        self.trace.record_event(
            at,
            EventKind::KdcFailed {
                kdc: kdc.to_owned(),
                error,
            },
        );
    }
}

/// How far the sender's clock is ahead of this one, from an RFC 3339 `stime`.
fn clock_offset(stime: &str) -> Option<f64> {
    let theirs =
        time::OffsetDateTime::parse(stime, &time::format_description::well_known::Rfc3339).ok()?;
    let ours = time::OffsetDateTime::now_utc();
    Some((theirs - ours).as_seconds_f64())
}

type Failure = (KdcError, Option<SocketAddr>);

/// One request and its answer, and the address that answered.
async fn exchange(
    protocol: NetworkProtocol,
    url: &Url,
    data: &[u8],
) -> Result<(Vec<u8>, SocketAddr), Failure> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let default_port = match protocol {
        NetworkProtocol::Tcp | NetworkProtocol::Udp => 88,
        NetworkProtocol::Http => 80,
        NetworkProtocol::Https => 443,
    };
    let port = url.port().unwrap_or(default_port);
    let host_for_lookup = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_for_lookup.as_str(), port))
        .await
        .map_err(|e| (KdcError::ResolveFailed(e.to_string()), None))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err((KdcError::ResolveFailed("no addresses".to_owned()), None));
    };
    match protocol {
        NetworkProtocol::Udp => udp(first, data).await,
        NetworkProtocol::Tcp => {
            let mut stream = connect(&addrs).await?;
            let addr = stream.peer_addr().unwrap_or(first);
            let fail = |e: std::io::Error| (io_error(&e), Some(addr));
            stream.write_all(data).await.map_err(fail)?;
            let mut len = [0u8; 4];
            match stream.read_exact(&mut len).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err((KdcError::Closed, Some(addr)));
                }
                Err(e) => return Err(fail(e)),
            }
            let n = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
            if n > MAX_REPLY {
                return Err((
                    KdcError::Malformed(format!("a {n}-byte answer")),
                    Some(addr),
                ));
            }
            let mut reply = vec![0u8; n];
            stream.read_exact(&mut reply).await.map_err(fail)?;
            Ok((kerberos::tcp_frame(&reply), addr))
        }
        NetworkProtocol::Http | NetworkProtocol::Https => {
            let stream = connect(&addrs).await?;
            let addr = stream.peer_addr().unwrap_or(first);
            let body = super::kkdcp::post(stream, url, &host, data)
                .await
                .map_err(|e| (e, Some(addr)))?;
            Ok((body, addr))
        }
    }
}

async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = (KdcError::Refused, None);
    for addr in addrs.iter().take(8) {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = (io_error(&e), Some(*addr)),
        }
    }
    Err(last)
}

/// [RFC 4120] 7.2.1 one datagram, one answer (sspi sends the message without the TCP length).
async fn udp(addr: SocketAddr, data: &[u8]) -> Result<(Vec<u8>, SocketAddr), Failure> {
    let local: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let fail = |e: std::io::Error| (io_error(&e), Some(addr));
    let socket = UdpSocket::bind(local).await.map_err(fail)?;
    socket.connect(addr).await.map_err(fail)?;
    socket.send(data).await.map_err(fail)?;
    let mut buf = vec![0u8; 65_536];
    let n = socket.recv(&mut buf).await.map_err(fail)?;
    buf.truncate(n);
    Ok((kerberos::tcp_frame(&buf), addr))
}

fn io_error(e: &std::io::Error) -> KdcError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => KdcError::Refused,
        std::io::ErrorKind::TimedOut => KdcError::TimedOut,
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            KdcError::Unreachable(e.to_string())
        }
        _ => match e.raw_os_error() {
            // EHOSTUNREACH, ENETUNREACH
            Some(113 | 101) => KdcError::Unreachable(e.to_string()),
            _ => KdcError::Io(e.to_string()),
        },
    }
}

/// One SRV query over UDP and its answer.
async fn srv_exchange(
    server: SocketAddr,
    name: &str,
    start: std::time::Instant,
) -> Result<dns::Answer, String> {
    let local: SocketAddr = if server.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    // Any 16 bits will do; the elapsed time differs from one query to the next.
    let id = u16::try_from(start.elapsed().as_nanos() & 0xffff).unwrap_or(0x5a5a);
    socket
        .send(&dns::srv_query(id, name))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    // INVARIANT: a datagram that is not the answer is dropped; the caller's deadline bounds the loop.
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        if let Ok(answer) = dns::srv_answer(id, buf.get(..n).unwrap_or_default()) {
            return Ok(answer);
        }
    }
}

/// The shared TLS configuration of the KDC proxy client: the roots of `SSL_CERT_FILE`, else the system's.
pub(super) fn kdc_proxy_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let path = std::env::var("SSL_CERT_FILE")
        .unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".to_owned());
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdc_urls() {
        assert_eq!(
            parse_kdc_url("dc01.corp.example").unwrap().as_str(),
            "tcp://dc01.corp.example"
        );
        assert_eq!(parse_kdc_url("udp://dc01:88").unwrap().port(), Some(88));
        assert!(parse_kdc_url("https://kdcproxy.corp.example/KdcProxy").is_ok());
        assert!(parse_kdc_url("ldap://dc01").is_err());
        assert!(parse_kdc_url("tcp://").is_err());
    }

    #[test]
    fn krb5_conf() {
        let conf = "[libdefaults]\n default_realm = CORP.EXAMPLE\n[realms]\n OTHER = {\n  kdc = other:88\n }\n CORP.EXAMPLE = {\n  kdc = dc01.corp.example:88 # first\n  kdc = dc02.corp.example\n  admin_server = dc01\n  auth_to_local = {\n   kdc = not-this\n  }\n }\n[domain_realm]\n kdc = nope\n";
        assert_eq!(
            krb5_conf_kdcs(conf, "CORP.EXAMPLE"),
            vec!["dc01.corp.example:88", "dc02.corp.example"]
        );
        assert_eq!(krb5_conf_kdcs(conf, "OTHER"), vec!["other:88"]);
        assert!(krb5_conf_kdcs(conf, "corp.example").is_empty());
        assert_eq!(
            krb5_conf_url("dc01.corp.example:88").unwrap().as_str(),
            "tcp://dc01.corp.example:88"
        );
        assert_eq!(
            krb5_conf_url("https://proxy/KdcProxy").unwrap().scheme(),
            "https"
        );
    }
}
