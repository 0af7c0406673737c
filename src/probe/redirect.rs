//! Following Server Redirection PDUs as mstsc does ([MS-RDPBCGR] 3.2.5.13.1): the connection ends, and a new
//! one goes to the target the PDU names (its address, else its FQDN, else the same server), on the same port
//! and through the same gateway, with the PDU's LoadBalanceInfo as the routing token of the X.224 Connection
//! Request ([MS-RDPBCGR] 3.2.5.3.1), its session id in the Client Cluster Data ([MS-RDPBCGR] 2.2.1.3.5) and
//! its password cookie in the Client Info ([MS-RDPBCGR] 2.2.1.11.1.1).
//!
//! Every connection is a hop with its own trace; the last one is the trace the verdict is on, the others are
//! its [`Trace::hops`]. At most [`MAX_HOPS`] connections: a broker that keeps redirecting is a loop.

use core::fmt;

use ironrdp_pdu::rdp::server_redirection::ServerRedirectionPdu;

use super::{ProbeConfig, probe_once};
pub use crate::dissect::x224::routing_token;
use crate::trace::{EventKind, Fact, PhaseName, Trace};

/// The most connections one probe makes by following redirections.
pub const MAX_HOPS: usize = 3;

/// What a Server Redirection PDU gives the next connection.
#[derive(Clone)]
pub struct Redirected {
    /// [2.2.13.1] SessionID: goes in the Client Cluster Data's RedirectedSessionID.
    pub session_id: u32,
    /// [2.2.13.1] Password: a cookie for the target server, passed in the Client Info. Never printed.
    pub password_cookie: Option<Vec<u8>>,
    /// The server that redirected, `host:port`.
    pub from: String,
}

impl fmt::Debug for Redirected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redirected")
            .field("session_id", &self.session_id)
            .field("password_cookie", &self.password_cookie.is_some())
            .field("from", &self.from)
            .finish()
    }
}

/// Probes `config`'s target and follows its redirections; the last connection's trace, with the earlier ones
/// as its hops.
pub async fn follow(config: &ProbeConfig) -> Trace {
    let mut cfg = config.clone();
    let mut hops: Vec<Trace> = Vec::new();
    let mut capture: Option<super::pcap::Recorder> = None;
    let mut secrets = String::new();
    // INVARIANT: each pass makes one connection; at most MAX_HOPS passes.
    loop {
        let once = probe_once(&cfg).await;
        let mut trace = once.trace;
        match (capture.as_mut(), once.capture) {
            (Some(all), Some(c)) => all.merge(&c),
            (None, c) => capture = c,
            (Some(_), None) => {}
        }
        secrets.push_str(&once.secrets);
        if let Some(r) = &cfg.redirected {
            trace.fact_in(
                PhaseName::X224,
                Fact::RedirectedFrom,
                format!("{} (hop {}, session {})", r.from, hops.len(), r.session_id),
            );
        }
        let next = match once.redirection {
            Some(r) if cfg.follow_redirects && hops.len() + 1 < MAX_HOPS => {
                next_config(&cfg, &r, &mut trace)
            }
            Some(_) if cfg.follow_redirects => {
                let at = trace.phase(trace.current()).start_ms.unwrap_or(0.0);
                trace.record_event(
                    at,
                    EventKind::Anomaly {
                        detail: format!(
                            "redirected again after {MAX_HOPS} connections: rdptrace follows no further"
                        ),
                    },
                );
                None
            }
            _ => None,
        };
        match next {
            Some(n) => {
                hops.push(trace);
                cfg = n;
            }
            None => {
                trace.hops = hops;
                super::write_capture(
                    config,
                    &mut trace,
                    capture.as_ref(),
                    &secrets,
                    once.ended_at,
                );
                return trace;
            }
        }
    }
}

/// The configuration of the connection a redirection asks for; `None` (recorded) when it cannot be made.
fn next_config(
    cfg: &ProbeConfig,
    r: &ServerRedirectionPdu,
    trace: &mut Trace,
) -> Option<ProbeConfig> {
    let clean = |s: &String| s.trim_end_matches('\0').trim().to_owned();
    let host = r
        .target_net_address
        .as_ref()
        .map(clean)
        .filter(|s| !s.is_empty())
        .or_else(|| r.target_fqdn.as_ref().map(clean).filter(|s| !s.is_empty()))
        .or_else(|| {
            r.target_net_addresses
                .as_ref()
                .and_then(|a| a.first())
                .map(clean)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| cfg.host.clone());
    let mut next = cfg.clone();
    next.load_balance_info = match r.load_balance_info.as_deref() {
        Some(bytes) => match routing_token(bytes) {
            Some(token) => Some(token),
            None => {
                let at = trace.phase(trace.current()).start_ms.unwrap_or(0.0);
                trace.record_event(
                    at,
                    EventKind::ClientLimit {
                        detail: "the redirection's LoadBalanceInfo is not printable text, which the client sends as its routing token: rdptrace cannot follow it".to_owned(),
                    },
                );
                return None;
            }
        },
        None => None,
    };
    next.redirected = Some(Redirected {
        session_id: r.session_id,
        password_cookie: r.password.clone(),
        from: format!("{}:{}", cfg.host, cfg.port),
    });
    next.target = if host.contains(':') {
        format!("[{host}]:{}", cfg.port)
    } else {
        format!("{host}:{}", cfg.port)
    };
    next.host = host;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_tokens_are_printable_text() {
        assert_eq!(
            routing_token(b"Cookie: msts=3640205228.15629.0000\r\n").as_deref(),
            Some("Cookie: msts=3640205228.15629.0000")
        );
        assert_eq!(
            routing_token(b"tsv://MS Terminal Services Plugin.1.Sessions").as_deref(),
            Some("tsv://MS Terminal Services Plugin.1.Sessions")
        );
        assert_eq!(routing_token(b"\x01\x02"), None);
        assert_eq!(routing_token(b"\r\n"), None);
    }

    #[test]
    fn the_password_cookie_never_prints() {
        let r = Redirected {
            session_id: 7,
            password_cookie: Some(b"marker-secret".to_vec()),
            from: "127.0.0.1:3389".to_owned(),
        };
        assert!(!format!("{r:?}").contains("marker"));
    }
}
