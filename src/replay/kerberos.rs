//! [RFC 4120] 7.2 The clients' Kerberos traffic in a capture: port 88, UDP and TCP, in clear.
//!
//! Every datagram and TCP record to or from port 88 is read with [`crate::kerberos::message::parse`]
//! (names, realms, encryption types, error codes: never a ticket, a key or an encrypted part). The
//! exchanges that can bear on an RDP logon are kept: the AS exchange (the client's ticket-granting
//! ticket and its pre-authentication) and the TGS exchange for a `TERMSRV/` service, with the KRB-ERROR
//! that answers either. Requests for other services (LDAP, cifs, a user-to-user TGT) say nothing about
//! RDP and are only counted.
//!
//! When an RDP session ends, [`KdcTraffic::attach`] puts the kept messages of the same client address,
//! from [`BEFORE`] before the session's first packet to its last, into the session's trace as
//! [`EventKind::Kdc`] events of the `credssp` phase (the evidence the live probe records of its own KDC
//! exchange), after an [`EventKind::KdcChosen`] whose source is the capture.
//!
//! A client's requests to a KDC that the capture shows no answer to, for at least [`SILENT`] after the last
//! of them while the session goes on, become an [`EventKind::KdcFailed`] with [`KdcError::Unanswered`]: the
//! KDC did not answer, or its answers did not reach the client (or the capture).
//!
//! Memory is bounded: at most [`MAX_MESSAGES`] messages are kept (the oldest go first, counted in
//! [`KdcTraffic::dropped`]), at most [`MAX_TCP_FLOWS`] TCP connections to a KDC are reassembled at once, each
//! holding at most one record of [`MAX_RECORD`] bytes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use super::link::{self, Frame};
use super::reassembly::{Delivery, Stream};
use crate::kerberos::message;
use crate::pdu::KrbMessage;
use crate::trace::{EventKind, KdcDirection, KdcError, KdcSource, Millis, PhaseName, Trace};

/// [RFC 4120] 7.2.1, 7.2.2 the KDC's port, UDP and TCP.
pub const KDC_PORT: u16 = 88;
/// How long before an RDP session's first packet a client's KDC exchange still counts as its own: a client
/// asks for the service ticket while it connects, but may have asked for its TGT a little earlier.
pub const BEFORE: Duration = Duration::from_secs(30);
/// How long after a client's last request to a KDC the capture must show the session going on, without an
/// answer, for the KDC to be reported silent: a KDC answers within milliseconds, and a client waits at least
/// a second before it tries again (MIT krb5's first UDP wait).
pub const SILENT: Duration = Duration::from_secs(1);
/// Messages kept for the whole capture.
pub const MAX_MESSAGES: usize = 2048;
/// TCP connections to a KDC reassembled at once.
pub const MAX_TCP_FLOWS: usize = 256;
/// The longest Kerberos message read over TCP (a ticket with a large PAC is a few tens of KiB).
pub const MAX_RECORD: usize = 256 * 1024;
/// Requests waiting for their answer, to tell which KRB-ERROR answers an exchange that is kept.
const MAX_WAITING: usize = 4096;
/// Two copies of one datagram within this time are one datagram (a capture on several interfaces).
const COPY_WINDOW: Duration = Duration::from_millis(5);

/// How the message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// One kept message.
#[derive(Debug, Clone)]
struct Seen {
    ts: Duration,
    client: SocketAddr,
    kdc: SocketAddr,
    transport: Transport,
    direction: KdcDirection,
    message: KrbMessage,
}

/// A client's requests to one KDC since its last answer ([`KdcTraffic::attach`]).
#[derive(Debug)]
struct Waiting {
    kdc: SocketAddr,
    transport: Transport,
    requests: u32,
    /// When the last was captured.
    last: Duration,
}

/// One direction of a TCP connection to a KDC.
#[derive(Debug)]
struct TcpFlow {
    stream: Stream,
    /// Bytes of the record being read (its four-byte length first).
    buf: Vec<u8>,
    last_ts: Duration,
}

/// The Kerberos traffic of a capture, as it is read.
#[derive(Debug, Default)]
pub struct KdcTraffic {
    kept: VecDeque<Seen>,
    /// Per direction of a TCP connection, keyed by (source, destination).
    tcp: HashMap<(SocketAddr, SocketAddr), TcpFlow>,
    /// The request each (client, KDC) pair waits an answer to: whether its exchange is kept.
    waiting: HashMap<(SocketAddr, SocketAddr), bool>,
    /// The last datagram: when, between whom, and a digest of its bytes.
    last_datagram: Option<(Duration, SocketAddr, SocketAddr, u64)>,
    /// Messages read.
    pub messages: u64,
    /// Kept messages dropped to stay within [`MAX_MESSAGES`].
    pub dropped: u64,
    /// Messages on port 88 that are not Kerberos messages rdptrace reads, and TCP connections not followed
    /// (over [`MAX_TCP_FLOWS`], a record over [`MAX_RECORD`], bytes the capture misses).
    pub unreadable: u64,
}

/// One packet of the capture for `kdc`, shared by the reader and the replay's workers: locked only for a
/// packet that may be Kerberos (TCP to or from port 88, or not TCP).
pub fn feed(kdc: &Mutex<KdcTraffic>, ts: Duration, link_type: u32, data: &[u8], frame: &Frame<'_>) {
    if let Frame::Tcp(seg) = frame
        && seg.src.port() != KDC_PORT
        && seg.dst.port() != KDC_PORT
    {
        return;
    }
    if let Ok(mut kdc) = kdc.lock() {
        kdc.packet(ts, link_type, data, frame);
    }
}

impl KdcTraffic {
    pub fn new() -> Self {
        KdcTraffic::default()
    }

    /// One packet of the capture (after the duplicate filter): `frame` as [`link::decode`] gave it, and the
    /// raw bytes with their link type for a UDP datagram.
    pub fn packet(&mut self, ts: Duration, link_type: u32, data: &[u8], frame: &Frame<'_>) {
        match frame {
            Frame::Tcp(seg) if seg.src.port() == KDC_PORT || seg.dst.port() == KDC_PORT => {
                self.segment(ts, seg);
            }
            Frame::Other => {
                if let Some(d) = link::udp(link_type, data)
                    && (d.src.port() == KDC_PORT || d.dst.port() == KDC_PORT)
                {
                    self.datagram(ts, d.src, d.dst, d.payload);
                }
            }
            _ => {}
        }
    }

    fn datagram(&mut self, ts: Duration, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let digest = digest(payload);
        let copy = self.last_datagram.is_some_and(|(t, s, d, h)| {
            s == src && d == dst && h == digest && ts.saturating_sub(t) <= COPY_WINDOW
        });
        self.last_datagram = Some((ts, src, dst, digest));
        if !copy {
            self.message(ts, src, dst, Transport::Udp, payload);
        }
    }

    fn segment(&mut self, ts: Duration, seg: &link::Segment<'_>) {
        let key = (seg.src, seg.dst);
        if seg.rst {
            self.tcp.remove(&key);
            self.tcp.remove(&(seg.dst, seg.src));
            return;
        }
        if !self.tcp.contains_key(&key) {
            if seg.payload.is_empty() && !seg.syn {
                return;
            }
            if self.tcp.len() >= MAX_TCP_FLOWS {
                self.forget_idle(ts);
            }
            if self.tcp.len() >= MAX_TCP_FLOWS {
                self.unreadable += 1;
                return;
            }
            self.tcp.insert(
                key,
                TcpFlow {
                    stream: Stream::new(MAX_RECORD),
                    buf: Vec::new(),
                    last_ts: ts,
                },
            );
        }
        let Some(flow) = self.tcp.get_mut(&key) else {
            return;
        };
        flow.last_ts = ts;
        if seg.syn {
            flow.stream.syn(seg.seq);
        }
        let mut out = Vec::new();
        let in_order = flow
            .stream
            .segment(seg.seq, seg.payload, seg.missing, seg.fin, &mut out)
            .map(<[u8]>::to_vec);
        let mut records = Vec::new();
        let mut broken = false;
        for delivery in in_order.map(Delivery::Data).into_iter().chain(out) {
            match delivery {
                Delivery::Data(bytes) => {
                    flow.buf.extend_from_slice(&bytes);
                    // INVARIANT: each pass takes one whole record off the buffer or leaves the loop; the
                    // count is bounded by the buffer's length.
                    for _ in 0..=flow.buf.len() / 4 {
                        match crate::kerberos::tcp_record(&flow.buf, MAX_RECORD) {
                            Some(Ok(record)) => {
                                let used = record.len() + 4;
                                records.push(record.to_vec());
                                flow.buf.drain(..used.min(flow.buf.len()));
                            }
                            Some(Err(_)) => {
                                broken = true;
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Delivery::Gap(_) => broken = true,
            }
            if broken {
                break;
            }
        }
        if broken || flow.stream.fin_reached() {
            self.tcp.remove(&key);
            if broken {
                self.unreadable += 1;
            }
        }
        for record in records {
            self.message(ts, seg.src, seg.dst, Transport::Tcp, &record);
        }
    }

    /// Forgets the TCP connections that saw nothing for a minute (their end was not captured).
    fn forget_idle(&mut self, now: Duration) {
        self.tcp
            .retain(|_, f| now.saturating_sub(f.last_ts) < Duration::from_secs(60));
    }

    fn message(
        &mut self,
        ts: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        let Ok(message) = message::parse(bytes) else {
            self.unreadable += 1;
            return;
        };
        self.messages += 1;
        let (direction, client, kdc) = if dst.port() == KDC_PORT {
            (KdcDirection::ToKdc, src, dst)
        } else {
            (KdcDirection::FromKdc, dst, src)
        };
        let keep = match (&message, direction) {
            (KrbMessage::AsReq(_) | KrbMessage::TgsReq(_), KdcDirection::ToKdc) => {
                let keep = bears_on_rdp(&message);
                if self.waiting.len() >= MAX_WAITING {
                    self.waiting.clear();
                }
                self.waiting.insert((client, kdc), keep);
                keep
            }
            (KrbMessage::Error(e), KdcDirection::FromKdc) => self
                .waiting
                .remove(&(client, kdc))
                .unwrap_or_else(|| is_tgt(&e.server) || is_termsrv(&e.server)),
            (KrbMessage::AsRep(_) | KrbMessage::TgsRep(_), KdcDirection::FromKdc) => {
                self.waiting.remove(&(client, kdc));
                bears_on_rdp(&message)
            }
            _ => false,
        };
        if !keep {
            return;
        }
        if self.kept.len() >= MAX_MESSAGES {
            self.kept.pop_front();
            self.dropped += 1;
        }
        self.kept.push_back(Seen {
            ts,
            client,
            kdc,
            transport,
            direction,
            message,
        });
    }

    /// Puts the kept messages of the session's client, from [`BEFORE`] its first packet (at `first_ts`) to
    /// its last, into its trace: an [`EventKind::KdcChosen`] per KDC, then an [`EventKind::Kdc`] per
    /// message, in the `credssp` phase, at their time relative to the session's start (negative before
    /// it). Nothing is added to a session of another client, or without NLA.
    pub fn attach(&self, trace: &mut Trace, first_ts: Duration) {
        let Some(client) = trace
            .client_addr
            .as_deref()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.ip())
        else {
            return;
        };
        if !uses_nla(trace) {
            return;
        }
        let from = first_ts.saturating_sub(BEFORE);
        let to = first_ts.saturating_add(Duration::from_secs_f64(
            (session_length_ms(trace) / 1000.0).max(0.0),
        ));
        let mut chosen: Vec<SocketAddr> = Vec::new();
        // Per KDC, the requests since its last answer.
        let mut waiting: Vec<Waiting> = Vec::new();
        for seen in self
            .kept
            .iter()
            .filter(|s| s.client.ip() == client && s.ts >= from && s.ts <= to)
        {
            match seen.direction {
                KdcDirection::ToKdc => match waiting.iter_mut().find(|w| w.kdc == seen.kdc) {
                    Some(w) => {
                        w.requests += 1;
                        w.last = seen.ts;
                    }
                    None => waiting.push(Waiting {
                        kdc: seen.kdc,
                        transport: seen.transport,
                        requests: 1,
                        last: seen.ts,
                    }),
                },
                KdcDirection::FromKdc => waiting.retain(|w| w.kdc != seen.kdc),
            }
            let at = relative_ms(seen.ts, first_ts);
            let url = kdc_url(seen.transport, seen.kdc);
            if !chosen.contains(&seen.kdc) {
                chosen.push(seen.kdc);
                trace.note_event_in(
                    PhaseName::Credssp,
                    at,
                    EventKind::KdcChosen {
                        realm: realm_of(&seen.message).unwrap_or_default(),
                        kdc: url.clone(),
                        source: KdcSource::Capture,
                    },
                );
            }
            let mut message = seen.message.clone();
            if let KrbMessage::Error(e) = &mut message {
                e.clock_offset_s = clock_offset(&e.stime, seen.ts);
            }
            trace.note_event_in(
                PhaseName::Credssp,
                at,
                EventKind::Kdc {
                    kdc: url,
                    addr: Some(seen.client.to_string()),
                    direction: seen.direction,
                    message,
                },
            );
        }
        for w in waiting {
            let waited = to.saturating_sub(w.last);
            if waited < SILENT {
                continue;
            }
            trace.note_event_in(
                PhaseName::Credssp,
                relative_ms(w.last, first_ts),
                EventKind::KdcFailed {
                    kdc: kdc_url(w.transport, w.kdc),
                    error: KdcError::Unanswered {
                        requests: w.requests,
                        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    },
                },
            );
        }
    }

    /// What is worth telling about the capture's Kerberos traffic as a whole.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.dropped > 0 {
            notes.push(format!(
                "{} Kerberos message(s) of the capture were not kept, to stay within {MAX_MESSAGES}: the sessions of their clients may lack that evidence",
                self.dropped
            ));
        }
        notes
    }
}

/// Whether the session negotiated NLA (or got as far as CredSSP): only then did its client need a ticket.
fn uses_nla(trace: &Trace) -> bool {
    use crate::codes::security_protocol::{PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX};
    use crate::pdu::{Negotiation, PduInfo};
    trace.phase(PhaseName::Credssp).start_ms.is_some()
        || trace.phase(PhaseName::X224).pdus.iter().any(|p| {
            matches!(
                p.info,
                PduInfo::X224ConnectionConfirm {
                    negotiation: Negotiation::Response { selected_protocol, .. }
                } if selected_protocol & (PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX) != 0
            )
        })
}

/// The time of the session's last recorded moment, from its start.
fn session_length_ms(trace: &Trace) -> Millis {
    trace
        .phases
        .iter()
        .filter_map(|p| Some(p.start_ms? + p.duration_ms.unwrap_or(0.0)))
        .fold(0.0, f64::max)
}

fn relative_ms(ts: Duration, first_ts: Duration) -> Millis {
    if ts >= first_ts {
        ts.saturating_sub(first_ts).as_secs_f64() * 1000.0
    } else {
        -(first_ts.saturating_sub(ts).as_secs_f64() * 1000.0)
    }
}

/// [RFC 4120] 5.9.1 how far the KDC's clock (stime) is ahead of the capture's at the moment the error was
/// captured. stime counts whole seconds (its susec is not read): the KDC's time lies in the second after
/// it, and the offset is measured from the middle of that second, to within half a second.
fn clock_offset(stime: &str, ts: Duration) -> Option<f64> {
    let theirs =
        time::OffsetDateTime::parse(stime, &time::format_description::well_known::Rfc3339).ok()?;
    let captured =
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(ts.as_secs()).ok()?).ok()?;
    Some((theirs - captured).as_seconds_f64() + 0.5 - f64::from(ts.subsec_nanos()) / 1e9)
}

fn kdc_url(transport: Transport, kdc: SocketAddr) -> String {
    let scheme = match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    match kdc.ip() {
        IpAddr::V4(_) => format!("{scheme}://{kdc}"),
        IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{}", kdc.port()),
    }
}

/// An AS exchange, or a TGS exchange for a `TERMSRV/` service.
fn bears_on_rdp(m: &KrbMessage) -> bool {
    match m {
        KrbMessage::AsReq(_) | KrbMessage::AsRep(_) => true,
        KrbMessage::TgsReq(req) => req.server.as_deref().is_some_and(is_termsrv),
        KrbMessage::TgsRep(rep) => is_termsrv(&rep.ticket.server),
        _ => false,
    }
}

/// [MS-RDPBCGR] 5.4.5.2.1 / [MS-CSSP] 3.1.5 the service class of the RDP server's principal.
fn is_termsrv(principal: &str) -> bool {
    principal
        .split('/')
        .next()
        .is_some_and(|class| class.eq_ignore_ascii_case("TERMSRV"))
}

/// [RFC 4120] 7.3 the ticket-granting service's principal, `krbtgt/REALM`.
fn is_tgt(principal: &str) -> bool {
    principal
        .split('/')
        .next()
        .is_some_and(|class| class.eq_ignore_ascii_case("krbtgt"))
}

/// The realm a message names (the part after `@` of its first principal).
fn realm_of(m: &KrbMessage) -> Option<String> {
    let principal = match m {
        KrbMessage::AsReq(r) | KrbMessage::TgsReq(r) => r.client.as_ref().or(r.server.as_ref())?,
        KrbMessage::AsRep(r) | KrbMessage::TgsRep(r) => &r.client,
        KrbMessage::Error(e) => &e.server,
        _ => return None,
    };
    principal
        .rsplit_once('@')
        .map(|(_, realm)| realm.to_owned())
}

/// FNV-1a, to tell two copies of a datagram apart from two datagrams.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termsrv_and_tgt_are_told_by_their_service_class() {
        assert!(is_termsrv("TERMSRV/rdp01.corp.example@CORP.EXAMPLE"));
        assert!(is_termsrv("termsrv/localhost"));
        assert!(!is_termsrv("LDAP/dc01.corp.example@CORP.EXAMPLE"));
        assert!(is_tgt("krbtgt/CORP.EXAMPLE@CORP.EXAMPLE"));
        assert!(!is_tgt("host/aws.acme.com@ACME.COM"));
    }

    #[test]
    fn times_before_the_session_are_negative() {
        let first = Duration::from_secs(100);
        assert_eq!(relative_ms(Duration::from_millis(99_500), first), -500.0);
        assert_eq!(relative_ms(Duration::from_millis(100_250), first), 250.0);
    }

    /// The `kdc_failed` events [`KdcTraffic::attach`] gives a session of 4 s from 10.0.0.2 that started at
    /// 100 s, with these messages kept: (seconds, to the KDC or from it).
    fn silences(messages: &[(f64, KdcDirection)]) -> Vec<String> {
        use crate::pdu::{KdcRequest, KrbErrorInfo};
        let client: SocketAddr = "10.0.0.2:50000".parse().unwrap();
        let kdc: SocketAddr = "10.0.0.1:88".parse().unwrap();
        let mut traffic = KdcTraffic::new();
        for &(at, direction) in messages {
            let message = match direction {
                KdcDirection::ToKdc => KrbMessage::AsReq(KdcRequest {
                    client: Some("alice@R".to_owned()),
                    server: Some("krbtgt/R@R".to_owned()),
                    etypes: vec![18],
                    pa_types: Vec::new(),
                }),
                KdcDirection::FromKdc => KrbMessage::Error(KrbErrorInfo::about(25, "krbtgt/R@R")),
            };
            traffic.kept.push_back(Seen {
                ts: Duration::from_secs_f64(at),
                client,
                kdc,
                transport: Transport::Udp,
                direction,
                message,
            });
        }
        let origin = crate::trace::Origin::Replay {
            file: "kdc.pcapng".to_owned(),
            session: 1,
        };
        let mut trace = Trace::new("10.0.0.1:3389", origin);
        trace.client_addr = Some(client.to_string());
        trace.enter(PhaseName::Credssp, 0.0);
        trace.phase_mut(PhaseName::Credssp).duration_ms = Some(4000.0);
        traffic.attach(&mut trace, Duration::from_secs(100));
        trace
            .phase(PhaseName::Credssp)
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::KdcFailed { kdc, error } => {
                    Some(format!("{:.0} {kdc}: {error}", e.at_ms))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn requests_the_capture_shows_no_answer_to_are_silent() {
        use KdcDirection::{FromKdc, ToKdc};
        // Two requests, the session going on for 3 s after the last: silent.
        assert_eq!(
            silences(&[(100.0, ToKdc), (101.0, ToKdc)]),
            [
                "1000 udp://10.0.0.1:88: no answer to 2 requests in the 3.0 s the capture shows after the last"
            ]
        );
        // Answered: nothing to say; a request after the answer counts alone.
        assert!(silences(&[(100.0, ToKdc), (100.1, FromKdc)]).is_empty());
        assert_eq!(
            silences(&[(99.0, ToKdc), (99.1, FromKdc), (101.0, ToKdc)]),
            [
                "1000 udp://10.0.0.1:88: no answer to the request in the 3.0 s the capture shows after it"
            ]
        );
        // The session ended too soon after the request to tell.
        assert!(silences(&[(103.5, ToKdc)]).is_empty());
    }

    #[test]
    fn the_kdc_clock_is_measured_against_the_capture() {
        let ts = Duration::from_secs(1_700_000_000);
        let stime = "2023-11-14T22:18:20Z"; // 1_700_000_300
        assert_eq!(clock_offset(stime, ts), Some(300.5));
    }
}
