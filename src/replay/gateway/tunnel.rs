//! One tunnel through an RD Gateway in a capture, as one session: the gateway's phases from the items its
//! connections read (the TLS of the first connection, the HTTP heads, the transport's packets), then the RDP
//! connection the data packets carry, through the same dissector as a direct connection. Over RPC over HTTP
//! ([`rpc`]) the PDUs of the two channels take the place of the packets.

mod rpc;

use std::time::Duration;

use super::conn::{GatewayConn, Item, Verdict};
use super::shape::{self, Reading, Sized};
use crate::dissect::Dissector;
use crate::gateway::http;
use crate::gateway::packet::{self, Packet};
use crate::gateway::record;
use crate::pdu::PduInfo;
use crate::replay::tls_decrypt::StatusHandle;
use crate::trace::{CloseKind, EventKind, Fact, Millis, Pdu, PhaseName, Side, Trace, TunnelEnd};

/// One tunnel: its trace (in the dissector of the RDP connection it carries) and its connections.
pub struct Tunnel {
    pub first_ts: Duration,
    pub order: u64,
    dissector: Dissector,
    /// The inner TLS's decryption, and the outer's (of the first connection).
    decrypt: Option<StatusHandle>,
    outer_decrypt: Option<StatusHandle>,
    /// Connections of the tunnel still open.
    open: usize,
    /// The channel is open: data packets carry the RDP connection.
    channel: bool,
    /// How the tunnel ended was recorded.
    ended: bool,
    closed_any: bool,
    last_ts: Duration,
    /// The calls of RPC over HTTP.
    rpc: rpc::Calls,
    /// The scheme of the last request that carried credentials.
    scheme: Option<String>,
    /// A connection nobody could open: its addresses and the sizes of its records, which decide whether it
    /// is a gateway's ([`super::shape`]).
    opaque: Option<(String, Vec<Sized>)>,
}

/// Moves what the TLS-only dissector of a connection recorded of its handshake into `gateway_connect`.
fn adopt_tls(trace: &mut Trace, outer: &mut Dissector) {
    let scratch = outer.trace_mut().phase_mut(PhaseName::Tls);
    let pdus = std::mem::take(&mut scratch.pdus);
    let events = std::mem::take(&mut scratch.events);
    let facts = std::mem::take(&mut scratch.facts);
    let (bytes_in, bytes_out) = (scratch.bytes_in, scratch.bytes_out);
    let p = trace.phase_mut(PhaseName::GatewayConnect);
    p.pdus.extend(pdus);
    p.events.extend(events);
    for (k, v) in facts.iter() {
        p.facts.set(k, v.clone());
    }
    p.bytes_in += bytes_in;
    p.bytes_out += bytes_out;
}

impl Tunnel {
    /// A tunnel whose first connection is `conn`; `trace` holds its `gateway_connect` phase (the TCP
    /// handshake) already.
    pub fn new(
        mut trace: Trace,
        conn: &mut GatewayConn,
        first_ts: Duration,
        order: u64,
        inner: Option<(Box<dyn crate::dissect::TlsRecordSink>, StatusHandle)>,
    ) -> Tunnel {
        adopt_tls(&mut trace, &mut conn.outer);
        // The name the client asked for (its Host header), with the port it connected to unless 443.
        let server = trace
            .server_addr
            .clone()
            .unwrap_or_else(|| trace.target.clone());
        let port = server
            .parse::<std::net::SocketAddr>()
            .map(|a| a.port())
            .unwrap_or(443);
        let gateway = match conn.host.as_deref() {
            Some(h) => {
                let has_port = match h.strip_prefix('[') {
                    Some(v6) => v6.contains("]:"),
                    None => h.contains(':'),
                };
                if has_port || port == 443 {
                    format!("https://{h}")
                } else {
                    format!("https://{h}:{port}")
                }
            }
            None => format!("https://{server}"),
        };
        trace.fact_in(PhaseName::GatewayConnect, Fact::Gateway, gateway.clone());
        trace.request.gateway = Some(gateway);
        let opaque = (conn.verdict == Verdict::Opaque).then(|| {
            let addrs = format!(
                "{} -> {}",
                trace.client_addr.as_deref().unwrap_or("?"),
                trace.server_addr.as_deref().unwrap_or(&trace.target)
            );
            (addrs, Vec::new())
        });
        let mut dissector = Dissector::new(trace);
        let decrypt = inner.map(|(sink, status)| {
            dissector.set_tls_sink(sink);
            status
        });
        Tunnel {
            first_ts,
            order,
            dissector,
            decrypt,
            outer_decrypt: conn.decrypt.clone(),
            open: 1,
            channel: false,
            ended: false,
            closed_any: false,
            last_ts: first_ts,
            rpc: rpc::Calls::default(),
            scheme: None,
            opaque,
        }
    }

    /// Another connection of the tunnel (the other channel of the HTTP transport).
    pub fn join(&mut self) {
        self.open += 1;
    }

    fn at(&self, ts: Duration) -> Millis {
        ts.saturating_sub(self.first_ts).as_secs_f64() * 1000.0
    }

    /// The target the client asked the gateway for, its first resource name: the trace's target.
    fn channel_target(&mut self, resources: &[String], port: u16) {
        let target = format!(
            "{}:{port}",
            resources.first().map(String::as_str).unwrap_or_default()
        );
        let t = self.trace();
        t.fact(Fact::GatewayTarget, target.clone());
        t.target = target;
    }

    fn trace(&mut self) -> &mut Trace {
        self.dissector.trace_mut()
    }

    fn enter(&mut self, phase: PhaseName, at: Millis) {
        if self.dissector.trace().current() < phase {
            self.trace().enter(phase, at);
        }
    }

    /// What a connection of the tunnel read.
    pub fn apply(&mut self, items: Vec<Item>) {
        for item in items {
            match item {
                Item::Request { at, len, req } => {
                    self.last_ts = self.last_ts.max(at);
                    let at = self.at(at);
                    self.enter(PhaseName::GatewayAuth, at);
                    if let Some((scheme, _)) =
                        http::header(&req.headers, "Authorization").map(http::authorization)
                    {
                        self.scheme = Some(scheme.to_owned());
                    }
                    let pdu = record::request_pdu(at, len, &req);
                    let t = self.trace();
                    t.record_pdu(pdu);
                    t.count_bytes(Side::Client, len);
                }
                Item::Response { at, len, resp } => {
                    self.last_ts = self.last_ts.max(at);
                    let at = self.at(at);
                    self.enter(PhaseName::GatewayAuth, at);
                    let pdu = record::response_pdu(at, len, &resp);
                    let offered: Vec<String> = http::challenges(&resp.headers)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect();
                    let scheme = self.scheme.clone();
                    let t = self.trace();
                    t.record_pdu(pdu);
                    t.count_bytes(Side::Server, len);
                    t.fact_in(
                        PhaseName::GatewayAuth,
                        Fact::HttpStatus,
                        format!("{} {}", resp.status, resp.reason),
                    );
                    let asked = t
                        .phase(PhaseName::GatewayAuth)
                        .facts
                        .get(Fact::GatewayAuthOffered)
                        .is_some();
                    if resp.status == 401 && !offered.is_empty() && !asked {
                        t.fact_in(
                            PhaseName::GatewayAuth,
                            Fact::GatewayAuthOffered,
                            offered.join(", "),
                        );
                    }
                    if matches!(resp.status, 101 | 200)
                        && let Some(s) = scheme
                    {
                        t.fact_in(PhaseName::GatewayAuth, Fact::GatewayAuthScheme, s);
                    }
                }
                Item::Transport { at, words } => {
                    self.last_ts = self.last_ts.max(at);
                    self.trace()
                        .fact_in(PhaseName::GatewayAuth, Fact::GatewayTransport, words);
                }
                Item::Packet { at, from, bytes } => {
                    self.last_ts = self.last_ts.max(at);
                    let at = self.at(at);
                    self.packet(at, from, &bytes);
                }
                Item::Rpc { at, from, bytes } => {
                    self.last_ts = self.last_ts.max(at);
                    let at = self.at(at);
                    self.rpc(at, from, &bytes);
                }
                Item::WebSocketClose { at, from, code } => {
                    let at = self.at(at);
                    if from == Side::Server && !self.ended {
                        self.ended = true;
                        self.trace().record_event(
                            at,
                            EventKind::TunnelEnded {
                                end: TunnelEnd::WebSocketClose { code },
                            },
                        );
                    }
                }
                Item::Record(r) => {
                    if let Some((_, records)) = self.opaque.as_mut() {
                        records.push(r);
                    }
                }
                Item::Broken { at, from, detail } => {
                    let at = self.at(at);
                    self.trace().record_event(
                        at,
                        EventKind::Anomaly {
                            detail: format!(
                                "the gateway connection from the {}: {detail}",
                                from.as_str()
                            ),
                        },
                    );
                }
            }
        }
    }

    /// One packet of the HTTP transport: data to the RDP dissector, the others recorded.
    fn packet(&mut self, at: Millis, from: Side, bytes: &[u8]) {
        let decoded = Packet::decode(bytes);
        if let Ok(Packet::Data(data)) = &decoded {
            if self.channel {
                self.dissector.on_tcp_data(from, at, data);
            }
            return;
        }
        self.enter(PhaseName::GatewayTunnel, at);
        if let Some(pdu) = record::packet_pdu(at, from, bytes) {
            self.trace().record_pdu(pdu);
        }
        self.trace().count_bytes(from, bytes.len());
        let Ok(p) = decoded else { return };
        if from == Side::Server {
            record::reply_facts(self.trace(), &p);
        }
        if let Some(code) = p.code()
            && from == Side::Server
            && crate::codes::gateway::failed(code)
            && !matches!(p, Packet::CloseChannel { .. })
        {
            self.trace().fact(
                Fact::GatewayCode,
                crate::codes::Display(crate::codes::Table::Gateway, code).to_string(),
            );
        }
        match p {
            Packet::ChannelCreate {
                resources, port, ..
            } => self.channel_target(&resources, port),
            Packet::ChannelResponse { error: 0, .. } => self.channel = true,
            Packet::CloseChannel { status } if from == Side::Server && !self.ended => {
                self.ended = true;
                self.trace().record_event(
                    at,
                    EventKind::TunnelEnded {
                        end: TunnelEnd::ChannelClose { status },
                    },
                );
            }
            Packet::ServiceMessage(m) => self.trace().fact(Fact::GatewayMessage, m),
            _ => {}
        }
    }

    /// A connection of the tunnel closed; `primary` when it carries the gateway's packets (the WebSocket, or
    /// the RDG_OUT_DATA or RPC_OUT_DATA channel).
    pub fn closed(&mut self, by: Side, how: CloseKind, ts: Duration, primary: bool) {
        self.last_ts = self.last_ts.max(ts);
        // Over RPC over HTTP both channels are the gateway's: the first close, by the gateway, of either ends
        // the tunnel (the probe sees it on whichever channel it uses next).
        let rpc_first = self.rpc.over_rpc && !self.closed_any && by == Side::Server;
        if !primary && !rpc_first {
            return;
        }
        let at = self.at(ts);
        let first = !self.closed_any;
        self.closed_any = true;
        let word = match how {
            CloseKind::Fin => "FIN",
            CloseKind::Rst => "RST",
        };
        if by == Side::Server && !self.ended && self.channel {
            self.ended = true;
            self.trace().record_event(
                at,
                EventKind::TunnelEnded {
                    end: TunnelEnd::Dropped { how },
                },
            );
        }
        let key = if first {
            Fact::ClosedBy
        } else {
            Fact::ThenClosedBy
        };
        self.trace().fact(key, format!("{} {word}", by.as_str()));
        self.dissector.on_close(by, how, at);
    }

    /// A connection of the tunnel ended; whether none is left.
    pub fn conn_ended(&mut self, ts: Duration) -> bool {
        self.last_ts = self.last_ts.max(ts);
        self.open = self.open.saturating_sub(1);
        self.open == 0
    }

    /// The tunnel's trace, settled; for a connection nobody could open, `Err` with its addresses when the
    /// sizes of its records do not show a gateway's.
    pub fn settle(mut self) -> Result<Trace, String> {
        let at_end = self.at(self.last_ts);
        if let Some((addrs, records)) = self.opaque.take() {
            let Some(reading) = shape::reading(&records) else {
                return Err(addrs);
            };
            self.sized(&reading);
        }
        if !self.closed_any {
            self.dissector.on_capture_end(at_end);
        }
        let mut trace = self.dissector.into_trace();
        if let Some(status) = &self.outer_decrypt {
            for (k, v) in crate::replay::tls_decrypt::facts(status) {
                trace.fact_in(PhaseName::GatewayConnect, k, v);
            }
        }
        Ok(crate::replay::session::conclude(
            trace,
            self.decrypt,
            at_end,
        ))
    }

    /// What the sizes of a gateway connection nobody could open show, as PDUs of `gateway_tunnel`.
    fn sized(&mut self, reading: &Reading) {
        let (request, response) = reading.handshake;
        self.enter(PhaseName::GatewayAuth, reading.opened);
        self.enter(PhaseName::GatewayTunnel, request.at);
        let t = self.trace();
        t.fact_in(
            PhaseName::GatewayAuth,
            Fact::GatewayTransport,
            "WebSocket (by the sizes of the encrypted records: the gateway's TLS was not decrypted)",
        );
        let pdu = |r: Sized, name: &str, packet_type: u16, what: &str| Pdu {
            at_ms: r.at,
            from: r.from,
            len: usize::try_from(r.plaintext).unwrap_or(0),
            name: name.to_owned(),
            summary: format!("{} ({} B: {what})", record::BY_SIZE, r.plaintext),
            info: PduInfo::GatewayPacket {
                packet_type,
                code: None,
            },
        };
        t.record_pdu(pdu(
            request,
            "HTTP_HANDSHAKE_REQUEST_PACKET",
            packet::kind::HANDSHAKE_REQUEST,
            "the 14-byte packet in a masked WebSocket frame",
        ));
        t.record_pdu(pdu(
            response,
            "HTTP_HANDSHAKE_RESPONSE_PACKET",
            packet::kind::HANDSHAKE_RESPONSE,
            "the 18-byte packet in a WebSocket frame",
        ));
        if let Some(c) = reading.confirm {
            self.enter(PhaseName::X224, c.at);
            let t = self.trace();
            t.record_pdu(pdu(
                c,
                "HTTP_DATA_PACKET",
                packet::kind::DATA,
                "the target's 19-byte X.224 Connection Confirm in a data packet, relayed by the gateway",
            ));
        }
    }
}
