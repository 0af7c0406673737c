//! Redirections inside one capture ([MS-RDPBCGR] 1.3.8, 3.2.5.13.1): a session that ended with a Server
//! Redirection PDU is held back until the client's next connection shows up (to the redirection's target, or
//! with its routing token), so that both sessions name each other (`followed_by`, `redirected_from`). A
//! session nobody follows is handed on when the capture moves on or ends.

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

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::session::Ended;
use crate::pdu::PduInfo;
use crate::trace::{Fact, PhaseName, Side, Trace};

/// How long (capture time) a redirected session waits for the connection it sent the client to.
pub const WAIT: Duration = Duration::from_secs(60);
/// Redirected sessions held at once; over it the oldest is handed on unlinked.
const MAX_HELD: usize = 1024;

/// A redirected session waiting for the client's next connection.
#[derive(Debug)]
struct Held {
    finished: Ended,
    client: IpAddr,
    /// The session's addresses, in words.
    addrs: String,
    /// TargetNetAddress (or TargetFQDN) of the redirection.
    target: Option<String>,
    /// Its LoadBalanceInfo.
    token: Option<String>,
    ended: Duration,
}

/// A session that started, as a follower of a redirection would: its client and server, the routing token
/// of its Connection Request.
#[derive(Debug)]
struct Started {
    client: SocketAddr,
    server: SocketAddr,
    token: Option<String>,
    addrs: String,
}

/// The redirected sessions of a capture, until their follower shows up; the sessions that started, for a
/// redirected session that ends after its follower started.
#[derive(Debug, Default)]
pub struct Pending {
    held: Vec<Held>,
    started: Vec<Started>,
    /// Sessions ready to be handed on (linked, or waited for long enough).
    pub released: Vec<Ended>,
}

/// Whether a connection from `client` to `server` with routing token `sent` is where a redirection to
/// `target` with `token`, of a session of `from`, sent the client.
fn follows(
    from: IpAddr,
    target: Option<&str>,
    token: Option<&str>,
    client: SocketAddr,
    server: SocketAddr,
    sent: Option<&str>,
) -> bool {
    from == client.ip()
        && match (token, sent) {
            (Some(want), Some(got)) => bare(want) == bare(got),
            (None, _) => target.map(str::trim) == Some(server.ip().to_string().as_str()),
            (Some(_), None) => false,
        }
}

/// The words of the two facts: the follower's `followed_by`, the redirected one's `redirected_from`.
fn followed_by(here: &str) -> String {
    format!("{here}, the client's next connection in this capture")
}

fn redirected_from(there: &str) -> String {
    format!("{there}, a session of this capture, redirected the client here")
}

/// The phase of a trace's Server Redirection PDU.
fn redirection_phase(trace: &Trace) -> PhaseName {
    trace
        .pdus()
        .find(|(_, p)| matches!(p.info, PduInfo::ServerRedirection { .. }))
        .map_or(PhaseName::Licensing, |(phase, _)| phase)
}

/// A routing token as compared: without `Cookie: ` and the line end, case kept.
fn bare(token: &str) -> &str {
    let t = token.trim_end_matches(['\r', '\n', '\0']).trim();
    t.strip_prefix("Cookie: ").unwrap_or(t)
}

/// The Server Redirection PDU a session ended with: its target and routing token.
fn redirection(trace: &Trace) -> Option<(Option<String>, Option<String>)> {
    trace.pdus().find_map(|(_, p)| match &p.info {
        PduInfo::ServerRedirection {
            target,
            fqdn,
            load_balance_info,
            ..
        } if p.from == Side::Server => Some((
            target.clone().or_else(|| fqdn.clone()),
            load_balance_info.clone(),
        )),
        _ => None,
    })
}

fn addrs(trace: &Trace) -> String {
    match trace.client_addr.as_deref() {
        Some(c) => format!("{c} -> {}", trace.target),
        None => trace.target.clone(),
    }
}

impl Pending {
    /// Takes a finished session: linked to the session it sent the client to when that one already started
    /// (returned: its client and server, and the words of its `redirected_from`), held when it ended with a
    /// redirection nobody followed yet, else ready at once.
    pub fn finished(
        &mut self,
        mut f: Ended,
        ended: Duration,
    ) -> Option<(SocketAddr, SocketAddr, String)> {
        let Some(trace) = f.trace() else {
            self.released.push(f);
            return None;
        };
        let client = trace
            .client_addr
            .as_deref()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.ip());
        let (Some((target, token)), Some(client)) = (redirection(trace), client) else {
            self.released.push(f);
            return None;
        };
        let there = addrs(trace);
        let found = self.started.iter().position(|s| {
            follows(
                client,
                target.as_deref(),
                token.as_deref(),
                s.client,
                s.server,
                s.token.as_deref(),
            )
        });
        if let Some(i) = found {
            let s = self.started.remove(i);
            if let Some(trace) = f.trace_mut() {
                let phase = redirection_phase(trace);
                trace.fact_in(phase, Fact::FollowedBy, followed_by(&s.addrs));
            }
            self.released.push(f);
            return Some((s.client, s.server, redirected_from(&there)));
        }
        if self.held.len() >= MAX_HELD {
            let oldest = self.held.remove(0);
            self.released.push(oldest.finished);
        }
        self.held.push(Held {
            addrs: there,
            finished: f,
            client,
            target,
            token,
            ended,
        });
        None
    }

    /// A new RDP session of the capture, from `client` to `server`: when it is where a held session sent the
    /// client (the same client, and the redirection's routing token, or its target address), both name
    /// each other and the held one is released; else it is remembered, for a session still open.
    pub fn started(&mut self, trace: &mut Trace, client: SocketAddr, server: SocketAddr) {
        let sent = trace.pdus().find_map(|(_, p)| match &p.info {
            PduInfo::X224ConnectionRequest { routing_token, .. } => Some(routing_token.clone()),
            _ => None,
        });
        let Some(sent) = sent else { return };
        let here = addrs(trace);
        let found = self.held.iter().rposition(|h| {
            follows(
                h.client,
                h.target.as_deref(),
                h.token.as_deref(),
                client,
                server,
                sent.as_deref(),
            )
        });
        let Some(i) = found else {
            if self.started.len() >= MAX_HELD {
                self.started.remove(0);
            }
            self.started.push(Started {
                client,
                server,
                token: sent,
                addrs: here,
            });
            return;
        };
        let mut h = self.held.remove(i);
        if let Some(t) = h.finished.trace_mut() {
            let phase = redirection_phase(t);
            t.fact_in(phase, Fact::FollowedBy, followed_by(&here));
        }
        trace.fact_in(
            PhaseName::X224,
            Fact::RedirectedFrom,
            redirected_from(&h.addrs),
        );
        self.released.push(h.finished);
    }

    /// Releases the sessions that waited longer than [`WAIT`] at capture time `now`.
    pub fn expire(&mut self, now: Duration) {
        let mut i = 0;
        // INVARIANT: each pass removes an element or moves past one.
        while i < self.held.len() {
            let old = self
                .held
                .get(i)
                .is_some_and(|h| now.saturating_sub(h.ended) > WAIT);
            if old {
                let h = self.held.remove(i);
                self.released.push(h.finished);
            } else {
                i += 1;
            }
        }
    }

    /// The capture is over: every held session is released.
    pub fn release_all(&mut self) {
        for h in self.held.drain(..) {
            self.released.push(h.finished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_without_their_cookie_prefix() {
        assert_eq!(
            bare("Cookie: msts=33554559.15629.0000\r\n"),
            "msts=33554559.15629.0000"
        );
        assert_eq!(bare("msts=33554559.15629.0000"), "msts=33554559.15629.0000");
        assert_eq!(
            bare("tsv://MS Terminal Services Plugin.1.Desktops"),
            "tsv://MS Terminal Services Plugin.1.Desktops"
        );
    }
}
