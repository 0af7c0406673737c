//! A session's trace: started when its connection is found to be RDP (the tcp phase from what the capture
//! holds of the handshake), its closes, and the trace settled when the connection ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::super::tls_decrypt::{Decryptor, StatusHandle};
use super::classify::Decision;
use super::flows::{Conn, End, Syn, millis, round_ms};
use super::{Content, RdpSession, Shared, feed};
use crate::dissect::Dissector;
use crate::pdu::PduInfo;
use crate::trace::{
    CloseKind, ConnectError, EventKind, Fact, Millis, Origin, PhaseName, Side, Trace,
};

/// Starts the trace of a connection found to be RDP, and feeds it what was held.
pub(super) fn start(conn: &mut Conn, decision: Decision, shared: &mut Shared) {
    let Decision::Rdp { skip, via } = decision else {
        return;
    };
    let client_end = conn.client.unwrap_or(End::A);
    conn.client = Some(client_end);
    let handshake = Handshake::of(conn);
    let (client, server) = (handshake.client, handshake.server);
    let mut trace = handshake.trace(&shared.file, PhaseName::Tcp);
    if let Some(via) = via {
        trace.fact_in(PhaseName::Tcp, Fact::Tunnel, via);
        trace.fact_in(
            PhaseName::Tcp,
            Fact::TunnelBytes,
            format!(
                "{} from the client and {} from the proxy before the RDP bytes",
                skip[client_end],
                skip[client_end.other()]
            ),
        );
    }
    let mut dissector = Dissector::new(trace);
    let decrypt = shared.secrets.as_ref().map(|secrets| {
        let d = Decryptor::at(Arc::clone(secrets), Arc::clone(&shared.position));
        let status = d.status();
        dissector.set_tls_sink(Box::new(d));
        if !secrets.keytab().is_empty() {
            dissector.set_credssp_sink(Box::new(crate::kerberos::unwrap::ExchangeKeys::new(
                secrets.keytab().to_vec(),
            )));
        }
        let randoms = secrets.rdp_client_randoms();
        if !randoms.is_empty() {
            dissector.set_security_sink(Box::new(
                crate::rdp_security::sink::SessionSink::with_client_random_candidates(randoms),
            ));
        }
        status
    });
    let mut session = RdpSession {
        dissector,
        decrypt,
        skip,
    };
    let held = match std::mem::replace(&mut conn.content, Content::NotRdp) {
        Content::Undecided { chunks, .. } => chunks,
        _ => Vec::new(),
    };
    for (end, at, d) in &held {
        let side = conn.side_of(*end);
        feed(&mut session, *end, side, *at, d.into());
    }
    // The Connection Request is in: is this where a redirection of the capture sent the client?
    shared
        .redirections
        .started(session.dissector.trace_mut(), client, server);
    conn.content = Content::Rdp(Box::new(session));
}

/// What the capture holds of a connection's handshake and how it ended before carrying anything: the tcp
/// phase is made of it, and a connection that carried no data is nothing more.
#[derive(Debug, Clone)]
pub(super) struct Handshake {
    pub(super) client: SocketAddr,
    pub(super) server: SocketAddr,
    pub(super) first_ts: Duration,
    pub(super) last_ts: Duration,
    pub(super) last_data_ts: Duration,
    pub(super) syn: Option<Syn>,
    pub(super) syn_ack: Option<Duration>,
    pub(super) handshake_ack: Option<Duration>,
    pub(super) syn_settled_early: bool,
    pub(super) refused: Option<Duration>,
    pub(super) unreachable: Option<(Duration, String)>,
}

impl Handshake {
    pub(super) fn of(conn: &Conn) -> Handshake {
        let client_end = conn.client.unwrap_or(End::A);
        Handshake {
            client: conn.ends[client_end],
            server: conn.ends[client_end.other()],
            first_ts: conn.first_ts,
            last_ts: conn.last_ts,
            last_data_ts: conn.last_data_ts,
            syn: conn.syn,
            syn_ack: conn.syn_ack,
            handshake_ack: conn.handshake_ack,
            syn_settled_early: conn.syn_settled_early,
            refused: conn.refused,
            unreachable: conn.unreachable.clone(),
        }
    }

    fn at(&self, ts: Duration) -> crate::trace::Millis {
        millis(ts.saturating_sub(self.first_ts))
    }

    /// The trace of the connection as it starts: addresses, start time, and `phase` (`tcp`, or
    /// `gateway_connect` for a gateway's connection) with what the capture holds of the handshake.
    pub(super) fn trace(&self, file: &str, phase: PhaseName) -> Trace {
        let mut trace = Trace::new(
            self.server.to_string(),
            Origin::Replay {
                file: file.to_owned(),
                session: 0,
            },
        );
        trace.started_at = rfc3339(self.first_ts);
        trace.set_addrs(Some(self.client), Some(self.server));
        self.first_phase(&mut trace, phase);
        trace
    }

    /// The connection's first phase from what the capture holds of the handshake.
    fn first_phase(&self, trace: &mut Trace, phase: PhaseName) {
        let (client, server) = (self.client, self.server);
        trace.enter(phase, 0.0);
        match self.syn {
            Some(syn) => {
                if syn.count > 0 {
                    trace.fact(Fact::SynRetransmissions, syn.count);
                }
                if let Some(syn_ack) = self.syn_ack {
                    // SYN to SYN-ACK is the round trip seen from the client; from anywhere else on the path
                    // the round trip ends with the client's ACK.
                    let syn_ts = syn.last.min(syn_ack);
                    let rtt = self.handshake_ack.unwrap_or(syn_ack).saturating_sub(syn_ts);
                    trace.fact(Fact::RttMs, round_ms(millis(rtt)));
                    let at = self.at(self.handshake_ack.unwrap_or(syn_ack));
                    trace.record_event(
                        at,
                        EventKind::Connected {
                            local: client.to_string(),
                            remote: server.to_string(),
                        },
                    );
                }
            }
            None if self.syn_ack.is_some() => {
                trace.fact(
                    Fact::Handshake,
                    if self.syn_settled_early {
                        "the client's SYN was not followed: the capture starts after it, or it was settled early as an unanswered connection attempt to make room in the flow table (counted in the notes)"
                    } else {
                        "the capture starts after the client's SYN"
                    },
                );
                let at = self.at(self.handshake_ack.or(self.syn_ack).unwrap_or(self.first_ts));
                trace.record_event(
                    at,
                    EventKind::Connected {
                        local: client.to_string(),
                        remote: server.to_string(),
                    },
                );
            }
            None => {
                trace.fact(
                    Fact::Handshake,
                    "not in the capture (it starts in the middle of the connection)",
                );
            }
        }
    }

    /// Whether the connection never got through: refused, unreachable, or a SYN never answered (and no
    /// data seen).
    pub(super) fn never_connected(&self, payload_seen: bool) -> bool {
        self.refused.is_some()
            || self.unreachable.is_some()
            || (self.syn.is_some() && self.syn_ack.is_none() && !payload_seen)
    }

    /// Ends the trace of a connection that never got through; `false` (and the trace untouched) for one
    /// that did.
    pub(super) fn settle_never_connected(&self, trace: &mut Trace, payload_seen: bool) -> bool {
        let addr = self.server.to_string();
        if let Some(at) = self.refused {
            trace.record_event_in(
                PhaseName::Tcp,
                self.at(at),
                EventKind::ConnectFailed {
                    addr,
                    error: ConnectError::Refused,
                },
            );
            trace.finish(true);
            return true;
        }
        if let Some((at, what)) = &self.unreachable {
            trace.record_event_in(
                PhaseName::Tcp,
                self.at(*at),
                EventKind::ConnectFailed {
                    addr,
                    error: ConnectError::Unreachable(what.clone()),
                },
            );
            trace.finish(true);
            return true;
        }
        if let Some(syn) = self.syn
            && self.syn_ack.is_none()
            && !payload_seen
        {
            let waited = round_ms(millis(syn.last.saturating_sub(syn.first)));
            trace.fact_in(PhaseName::Tcp, Fact::SynSent, syn.count + 1);
            trace.fact_in(PhaseName::Tcp, Fact::WaitedMs, waited);
            trace.record_event_in(
                PhaseName::Tcp,
                self.at(syn.last),
                EventKind::ConnectFailed {
                    addr,
                    error: ConnectError::TimedOut,
                },
            );
            trace.finish(true);
            return true;
        }
        false
    }

    /// The idle time at the end of the capture of a connection that did not close, as a fact.
    pub(super) fn idle_at_end(&self, trace: &mut Trace) {
        let idle = round_ms(millis(self.last_ts.saturating_sub(self.last_data_ts)));
        if idle > 0.0 {
            trace.fact(Fact::IdleAtCaptureEndMs, idle);
        }
    }
}

/// Records a close by `end` with the facts around it.
pub(super) fn close(conn: &mut Conn, end: End, how: CloseKind, ts: Duration, shared: &mut Shared) {
    let first = conn.closed.iter().all(Option::is_none);
    conn.closed[end] = Some(how);
    let side = conn.side_of(end);
    let at = conn.at(ts);
    let idle = round_ms(millis(ts.saturating_sub(conn.last_data_ts)));
    super::gateway::ending(conn, shared);
    if let Content::Gateway(g) = &conn.content
        && let Some(id) = &g.joined
    {
        shared.tunnels.closed(id, side, how, ts, g.primary);
        return;
    }
    let Content::Rdp(s) = &mut conn.content else {
        return;
    };
    let how_word = match how {
        CloseKind::Fin => "FIN",
        CloseKind::Rst => "RST",
    };
    let trace = s.dissector.trace_mut();
    if first {
        trace.fact(Fact::ClosedBy, format!("{} {how_word}", side.as_str()));
        if let Some((_, pdu)) = trace.last_pdu() {
            let words = format!("{} from the {}", pdu.name, pdu.from.as_str());
            trace.fact(Fact::CloseAfter, words);
        }
        trace.fact(Fact::IdleBeforeCloseMs, idle);
    } else {
        trace.fact(Fact::ThenClosedBy, format!("{} {how_word}", side.as_str()));
    }
    s.dissector.on_close(side, how, at);
}

/// Settles a connection's trace; `None` for connections that are not RDP.
pub(super) fn settle(mut conn: Conn) -> Option<Trace> {
    let handshake = Handshake::of(&conn);
    let Content::Rdp(session) = std::mem::replace(&mut conn.content, Content::NotRdp) else {
        return None;
    };
    let RdpSession {
        mut dissector,
        decrypt,
        ..
    } = *session;
    let closed_any = conn.closed.iter().any(Option::is_some);
    let never_connected = handshake.never_connected(conn.payload_seen);
    if !closed_any && !never_connected {
        dissector.on_capture_end(millis(conn.last_ts.saturating_sub(conn.first_ts)));
    }
    let mut trace = dissector.into_trace();
    if handshake.settle_never_connected(&mut trace, conn.payload_seen) {
        return Some(trace);
    }

    let at_end = millis(conn.last_ts.saturating_sub(conn.first_ts));
    if !closed_any {
        handshake.idle_at_end(&mut trace);
    }
    Some(conclude(trace, decrypt, at_end))
}

/// The end of an RDP session's trace (a direct connection's, or a gateway tunnel's): the decryption's facts,
/// the client's orderly close after the active state, the trace settled.
pub(in crate::replay) fn conclude(
    mut trace: Trace,
    decrypt: Option<StatusHandle>,
    at_end: Millis,
) -> Trace {
    if let Some(status) = decrypt
        && trace.phase(PhaseName::Tls).start_ms.is_some()
    {
        for (k, v) in super::super::tls_decrypt::facts(&status) {
            trace.fact_in(PhaseName::Tls, k, v);
        }
    }
    let reached_active = trace.phase(PhaseName::Active).start_ms.is_some();
    let first_close = trace.events().find_map(|(_, e)| match e.kind {
        EventKind::Closed { by, how } => Some((by, how)),
        _ => None,
    });
    // The client's Disconnect Provider Ultimatum, read (false) or known by its size (true).
    let client_ultimatum = trace.pdus().find_map(|(_, p)| match p.info {
        _ if p.from != Side::Client => None,
        PduInfo::DisconnectProviderUltimatum { .. } => Some(false),
        PduInfo::Inferred {
            step: crate::infer::Step::Ultimatum,
            ..
        } => Some(true),
        _ => None,
    });
    let client_disconnected = client_ultimatum.is_some();
    let orderly = match first_close {
        None => true,
        Some((Side::Client, CloseKind::Fin)) => true,
        Some(_) => client_disconnected,
    };
    if reached_active && orderly && first_close.is_some() {
        trace.record_event(
            at_end,
            EventKind::ClientClosed {
                reason: match client_ultimatum {
                    Some(false) => "the client disconnected (Disconnect Provider Ultimatum)".to_owned(),
                    Some(true) => "the client disconnected (a record the size of a Disconnect Provider Ultimatum, inferred)".to_owned(),
                    None => "the client closed the connection".to_owned(),
                },
            },
        );
    }
    trace.finish(!(reached_active && orderly) || trace.deactivated_for_good());
    trace
}

/// RFC 3339 of a time since the epoch.
pub(super) fn rfc3339(ts: Duration) -> Option<String> {
    let nanos = i128::try_from(ts.as_nanos()).ok()?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_epoch_time() {
        assert_eq!(
            rfc3339(Duration::from_micros(1_193_369_794_940_913)).as_deref(),
            Some("2007-10-26T03:36:34.940913Z")
        );
    }
}
