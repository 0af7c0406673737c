//! One TCP connection to an RD Gateway in a capture: its TLS opened with the secrets given, the HTTP heads
//! inside ([MS-TSGU] 3.3.5.1), then the transport's packets: WebSocket frames both ways, or the RDG_OUT_DATA
//! response body (gateway to client, after its seed) and the RDG_IN_DATA request body (client to gateway),
//! or the PDUs of RPC over HTTP ([MS-RPCH] 2.1.2.1): the RPC_IN_DATA request body (client to gateway) and
//! the RPC_OUT_DATA response body (gateway to client), whose CONN/B1 and CONN/A1 name the virtual
//! connection the channel belongs to ([MS-RPCH] 2.2.4.5, 2.2.4.2).
//! What it reads becomes [`Item`]s for the tunnel the connection belongs to.

use std::sync::Arc;
use std::time::Duration;

use super::shape::{Shape, Sized};
use crate::dissect::Dissector;
use crate::gateway::http::{self, Dechunker, RDG_IN_DATA, RDG_OUT_DATA, Request, Response};
use crate::gateway::packet::{self, MAX_SEED, PacketReader};
use crate::gateway::rpc::pdu::{self as rpc_pdu, Body as RpcBody, Pdu as RpcPdu};
use crate::gateway::rpc::{self, RPC_IN_DATA, RPC_OUT_DATA};
use crate::gateway::websocket::{self, FrameReader};
use crate::pdu::PduInfo;
use crate::replay::order::Position;
use crate::replay::tls_decrypt::{Decryptor, Secrets, StatusHandle};
use crate::trace::{Millis, Origin, Side, Trace};

/// What a gateway connection read, in order, for its tunnel.
#[derive(Debug)]
pub enum Item {
    Request {
        at: Duration,
        len: usize,
        req: Request,
    },
    Response {
        at: Duration,
        len: usize,
        resp: Response,
    },
    /// The transport packets flow from here on, in words (`WebSocket`, `HTTP ...`).
    Transport { at: Duration, words: String },
    /// One packet of the HTTP transport.
    Packet {
        at: Duration,
        from: Side,
        bytes: Vec<u8>,
    },
    /// One PDU (one fragment) of RPC over HTTP ([MS-RPCH] 2.2.3.6, [C706] 12.6).
    Rpc {
        at: Duration,
        from: Side,
        bytes: Vec<u8>,
    },
    /// [RFC 6455] 5.5.1 a WebSocket Close frame.
    WebSocketClose {
        at: Duration,
        from: Side,
        code: Option<u16>,
    },
    /// An encrypted record of a connection nobody could open ([`super::shape`]).
    Record(Sized),
    /// The gateway's stream broke (a frame or packet rdptrace cannot read).
    Broken {
        at: Duration,
        from: Side,
        detail: String,
    },
}

/// How far the connection is.
#[derive(Debug)]
enum Stage {
    /// HTTP heads (and the bodies of responses that are not the transport).
    Heads,
    /// After 101 Switching Protocols: WebSocket frames both ways.
    WebSocket { frames: [FrameReader; 2] },
    /// The HTTP transport: the RDG_OUT_DATA body from the gateway, the RDG_IN_DATA body from the client.
    Http,
    /// Nothing more is read (a stream error, or not a gateway).
    Done,
}

/// What the connection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not known yet.
    Waiting,
    /// An RD Gateway connection (its first request is RDG_OUT_DATA, RDG_IN_DATA, RPC_IN_DATA or
    /// RPC_OUT_DATA).
    Gateway,
    /// HTTPS of something else.
    Other,
    /// TLS rdptrace could not decrypt.
    Opaque,
}

/// A body being read: its bytes still to skip, or the transport's stream (chunked or not).
#[derive(Debug)]
enum Body {
    None,
    Skip(usize),
    Stream {
        dechunk: Option<Dechunker>,
        /// Before the first packet of the RDG_OUT_DATA body: the seed, still to find.
        seeking: Option<Vec<u8>>,
    },
    /// The PDUs of a channel of RPC over HTTP (chunked or not).
    Rpc {
        dechunk: Option<Dechunker>,
    },
}

/// [MS-RPCH] 2.1.2.1 which channel of RPC over HTTP a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcChannel {
    In,
    Out,
}

/// One connection to a gateway.
pub struct GatewayConn {
    /// The TLS layer, with a trace of its own (its `tls` phase becomes the tunnel's `gateway_connect`).
    pub outer: Dissector,
    pub decrypt: Option<StatusHandle>,
    first_ts: Duration,
    heads: [Vec<u8>; 2],
    /// Methods of the requests not answered yet.
    asked: Vec<(String, bool)>,
    bodies: [Body; 2],
    packets: [PacketReader; 2],
    stage: Stage,
    pub verdict: Verdict,
    /// RDG-Connection-Id of its first request, or the virtual connection cookie of its CONN/A1 or CONN/B1
    /// (the tunnel it belongs to).
    pub id: Option<String>,
    /// The channel of RPC over HTTP it is, when it is one.
    pub rpc: Option<RpcChannel>,
    /// The RPC PDUs of each side in the making (at most one fragment: a frag_length is a u16).
    rpc_bufs: [Vec<u8>; 2],
    /// The Host header of its first request.
    pub host: Option<String>,
    /// The gateway answered a WebSocket upgrade with 200 (it has the HTTP transport only).
    upgrade_refused: bool,
    items: Vec<Item>,
    /// The sizes of its records, and how many went to the items.
    shape: Shape,
    shaped: usize,
}

fn get<T>(pair: &mut [T; 2], side: Side) -> &mut T {
    let [c, s] = pair;
    match side {
        Side::Client => c,
        Side::Server => s,
    }
}

impl GatewayConn {
    pub fn new(
        server: String,
        file: &str,
        secrets: Option<&Arc<Secrets>>,
        position: &Arc<Position>,
        first_ts: Duration,
    ) -> Self {
        let trace = Trace::new(
            server,
            Origin::Replay {
                file: file.to_owned(),
                session: 0,
            },
        );
        let mut outer = Dissector::tls_only(trace);
        let decrypt = secrets.map(|s| {
            let d = Decryptor::at(Arc::clone(s), Arc::clone(position));
            let status = d.status();
            outer.set_tls_sink(Box::new(d));
            status
        });
        GatewayConn {
            outer,
            decrypt,
            first_ts,
            heads: [Vec::new(), Vec::new()],
            asked: Vec::new(),
            bodies: [Body::None, Body::None],
            packets: [PacketReader::default(), PacketReader::default()],
            stage: Stage::Heads,
            verdict: Verdict::Waiting,
            id: None,
            rpc: None,
            rpc_bufs: [Vec::new(), Vec::new()],
            host: None,
            upgrade_refused: false,
            items: Vec::new(),
            shape: Shape::default(),
            shaped: 0,
        }
    }

    /// What was read since the last call.
    pub fn take_items(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.items)
    }

    /// A channel of RPC over HTTP whose virtual connection is not known yet: it joins its tunnel once its
    /// CONN/A1 or CONN/B1 is read (or, without one, when it ends).
    pub fn id_pending(&self) -> bool {
        self.verdict == Verdict::Gateway && self.rpc.is_some() && self.id.is_none()
    }

    /// Whether the connection carries the gateway's side of the tunnel (the WebSocket, the RDG_OUT_DATA or
    /// RPC_OUT_DATA channel): `made` when it made the tunnel, which decides for the HTTP transport.
    pub fn primary(&self, made: bool) -> bool {
        match self.rpc {
            Some(channel) if self.id.is_some() => channel == RpcChannel::Out,
            _ => made,
        }
    }

    /// Bytes of the TCP stream from `from`, at `at` ms since the connection's start.
    pub fn on_tcp_data(&mut self, from: Side, at: Millis, data: &[u8]) {
        self.outer.on_tcp_data(from, at, data);
        let state = self.outer.state();
        let suite = state.tls_version.zip(state.cipher_suite);
        self.shape.on_tcp_data(from, at, data, suite);
        let opaque = self
            .outer
            .trace()
            .pdus()
            .any(|(_, p)| matches!(p.info, PduInfo::TlsEncrypted));
        if opaque && self.verdict == Verdict::Waiting {
            self.verdict = Verdict::Opaque;
            self.stage = Stage::Done;
        }
        if self.verdict == Verdict::Opaque {
            let records = self.shape.records();
            for r in records.get(self.shaped..).unwrap_or_default() {
                self.items.push(Item::Record(*r));
            }
            self.shaped = records.len();
        }
        for (side, at, plain) in self.outer.take_plaintext() {
            let ts = self.first_ts + Duration::from_secs_f64(at.max(0.0) / 1000.0);
            self.plaintext(side, ts, &plain);
        }
    }

    /// A gap in the capture: TLS cannot be read past it.
    pub fn gap(&mut self, at: Duration) {
        self.shape.gap();
        if self.verdict == Verdict::Waiting {
            self.verdict = Verdict::Opaque;
            self.stage = Stage::Done;
        } else if !matches!(self.stage, Stage::Done) {
            self.broken(
                at,
                Side::Server,
                "a gap in the capture: the TLS stream cannot be read past it".to_owned(),
            );
        }
    }

    fn broken(&mut self, at: Duration, from: Side, detail: String) {
        self.items.push(Item::Broken { at, from, detail });
        self.stage = Stage::Done;
    }

    /// Plaintext of the connection's TLS from `from`, in order (what the TLS layer decrypted).
    pub fn plaintext(&mut self, from: Side, at: Duration, data: &[u8]) {
        match &mut self.stage {
            Stage::Done => {}
            Stage::WebSocket { frames } => {
                let reader = get(frames, from);
                reader.push(data);
                self.frames(from, at);
            }
            Stage::Heads | Stage::Http => {
                get(&mut self.heads, from).extend_from_slice(data);
                self.http(from, at);
            }
        }
    }

    /// WebSocket frames of `from`: binary payloads are packets.
    fn frames(&mut self, from: Side, at: Duration) {
        // INVARIANT: each pass takes a frame off the reader or stops.
        loop {
            let Stage::WebSocket { frames } = &mut self.stage else {
                return;
            };
            let next = get(frames, from).next_frame();
            match next {
                Ok(Some(f)) => match f.opcode {
                    websocket::BINARY | websocket::CONTINUATION => {
                        get(&mut self.packets, from).push(&f.payload);
                        self.packets(from, at);
                    }
                    websocket::CLOSE => {
                        let code = f.close_code();
                        self.items.push(Item::WebSocketClose { at, from, code });
                    }
                    _ => {}
                },
                Ok(None) => return,
                Err(e) => return self.broken(at, from, e.to_string()),
            }
        }
    }

    /// Whole packets of `from`.
    fn packets(&mut self, from: Side, at: Duration) {
        // INVARIANT: each pass takes a packet off the reader or stops.
        loop {
            match get(&mut self.packets, from).next_packet() {
                Ok(Some(bytes)) => self.items.push(Item::Packet { at, from, bytes }),
                Ok(None) => return,
                Err(e) => {
                    return self.broken(at, from, format!("a packet that does not frame: {e}"));
                }
            }
        }
    }

    /// HTTP of `from`: heads, the bodies to skip, the transport's body.
    fn http(&mut self, from: Side, at: Duration) {
        // INVARIANT: each pass takes a head or body bytes off the buffer, or stops.
        loop {
            if matches!(self.stage, Stage::Done | Stage::WebSocket { .. }) {
                return;
            }
            let body = std::mem::replace(get(&mut self.bodies, from), Body::None);
            match body {
                Body::Skip(n) => {
                    let buf = get(&mut self.heads, from);
                    let take = n.min(buf.len());
                    buf.drain(..take);
                    if n > take {
                        *get(&mut self.bodies, from) = Body::Skip(n - take);
                        return;
                    }
                    continue;
                }
                Body::Stream { dechunk, seeking } => {
                    let body = self.stream(from, at, dechunk, seeking);
                    *get(&mut self.bodies, from) = body;
                    return;
                }
                Body::Rpc { dechunk } => {
                    let body = self.rpc_stream(from, at, dechunk);
                    *get(&mut self.bodies, from) = body;
                    return;
                }
                Body::None => {}
            }
            let buf = get(&mut self.heads, from);
            let before = buf.len();
            let head = match from {
                Side::Client => http::take_request(buf).map(|r| r.map(Head::Request)),
                Side::Server => http::take_response(buf).map(|r| r.map(Head::Response)),
            };
            let len = before.saturating_sub(buf.len());
            match head {
                Ok(Some(Head::Request(req))) => self.request(at, len, req),
                Ok(Some(Head::Response(resp))) => self.response(at, len, resp),
                Ok(None) => return,
                Err(e) => {
                    if self.verdict == Verdict::Waiting {
                        self.verdict = Verdict::Other;
                        self.stage = Stage::Done;
                        return;
                    }
                    return self.broken(at, from, format!("not HTTP where HTTP belongs: {e}"));
                }
            }
        }
    }

    /// The transport's body from `from`: dechunked, its seed dropped, cut into packets. Returns the body's
    /// state for the next bytes.
    fn stream(
        &mut self,
        from: Side,
        at: Duration,
        mut dechunk: Option<Dechunker>,
        mut seeking: Option<Vec<u8>>,
    ) -> Body {
        let mut bytes = std::mem::take(get(&mut self.heads, from));
        if let Some(d) = dechunk.as_mut() {
            match d.push(&bytes) {
                Ok(b) => bytes = b,
                Err(e) => {
                    self.broken(at, from, e.to_string());
                    return Body::None;
                }
            }
        }
        if let Some(mut held) = seeking.take() {
            held.extend_from_slice(&bytes);
            match packet::first_packet_at(&held) {
                Some(n) => {
                    bytes = held.split_off(n);
                    let refused = if self.upgrade_refused {
                        ": the gateway answered the WebSocket upgrade with 200"
                    } else {
                        ""
                    };
                    self.items.push(Item::Transport {
                        at,
                        words: format!(
                            "HTTP (RDG_OUT_DATA and RDG_IN_DATA){refused}; a {n}-byte seed before the first packet"
                        ),
                    });
                }
                None if held.len() > MAX_SEED + 4 => {
                    self.broken(
                        at,
                        from,
                        format!(
                            "no packet within the first {MAX_SEED} bytes of the RDG_OUT_DATA body"
                        ),
                    );
                    return Body::None;
                }
                None => {
                    return Body::Stream {
                        dechunk,
                        seeking: Some(held),
                    };
                }
            }
        }
        get(&mut self.packets, from).push(&bytes);
        self.packets(from, at);
        Body::Stream {
            dechunk,
            seeking: None,
        }
    }

    /// The PDUs of a channel of RPC over HTTP from `from`, dechunked; the first CONN/A1 or CONN/B1 names
    /// the tunnel. Returns the body's state for the next bytes.
    fn rpc_stream(&mut self, from: Side, at: Duration, mut dechunk: Option<Dechunker>) -> Body {
        let mut bytes = std::mem::take(get(&mut self.heads, from));
        if let Some(d) = dechunk.as_mut() {
            match d.push(&bytes) {
                Ok(b) => bytes = b,
                Err(e) => {
                    self.broken(at, from, e.to_string());
                    return Body::None;
                }
            }
        }
        let buf = get(&mut self.rpc_bufs, from);
        buf.extend_from_slice(&bytes);
        // INVARIANT: each pass takes one whole PDU off a finite buffer, or stops; what stays is shorter than
        // one fragment (a frag_length is a u16), so the buffer is bounded.
        loop {
            let buf = get(&mut self.rpc_bufs, from);
            let len = match rpc_pdu::pdu_len(buf) {
                Ok(Some(len)) if buf.len() >= len => len,
                Ok(_) => break,
                Err(e) => {
                    buf.clear();
                    self.broken(at, from, format!("an RPC PDU that does not frame: {e}"));
                    return Body::None;
                }
            };
            let whole: Vec<u8> = buf.drain(..len).collect();
            if self.id.is_none()
                && let Ok(RpcPdu {
                    body: RpcBody::Rts(rts),
                    ..
                }) = RpcPdu::decode(&whole)
                && matches!(rts.name(), "CONN/A1" | "CONN/B1")
                && let Some(cookie) = rts.cookies().first()
            {
                let hex: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
                self.id = Some(format!("rpc:{hex}"));
            }
            self.items.push(Item::Rpc {
                at,
                from,
                bytes: whole,
            });
        }
        Body::Rpc { dechunk }
    }

    fn request(&mut self, at: Duration, len: usize, req: Request) {
        let rdg = req.method == RDG_OUT_DATA || req.method == RDG_IN_DATA;
        let rpc = rpc::is_rpc_method(&req.method) && tsproxy_uri(&req.uri);
        if self.verdict == Verdict::Waiting {
            if !rdg && !rpc {
                self.verdict = Verdict::Other;
                self.stage = Stage::Done;
                return;
            }
            self.verdict = Verdict::Gateway;
            if rpc {
                self.rpc = Some(if req.method == RPC_OUT_DATA {
                    RpcChannel::Out
                } else {
                    RpcChannel::In
                });
            } else {
                self.id = http::header(&req.headers, "RDG-Connection-Id").map(str::to_owned);
            }
            self.host = http::header(&req.headers, "Host").map(str::to_owned);
        }
        let upgrade = http::has_token(&req.headers, "Upgrade", "websocket");
        let chunked = http::header(&req.headers, "Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = http::header(&req.headers, "Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        // [MS-TSGU] 3.3.5.1 the body of an RDG_IN_DATA request is the client's packets (chunked, or a length
        // far larger than the tunnel will carry); any other body is skipped.
        let body = if req.method == RDG_IN_DATA && (chunked || length > 0) {
            Body::Stream {
                dechunk: chunked.then(Dechunker::default),
                seeking: None,
            }
        } else if rpc && (chunked || length > 0) {
            // [MS-RPCH] 2.1.2.1.1, 2.1.2.1.2 the body of a channel's last request is its PDUs (CONN/A1 on
            // the OUT channel; on the IN channel the client's PDUs for the channel's lifetime).
            Body::Rpc {
                dechunk: chunked.then(Dechunker::default),
            }
        } else if length > 0 {
            Body::Skip(length)
        } else {
            Body::None
        };
        if matches!(body, Body::Stream { .. } | Body::Rpc { .. }) {
            self.stage = Stage::Http;
        }
        *get(&mut self.bodies, Side::Client) = body;
        self.asked.push((req.method.clone(), upgrade));
        self.items.push(Item::Request { at, len, req });
    }

    fn response(&mut self, at: Duration, len: usize, resp: Response) {
        let (method, upgrade) = if self.asked.is_empty() {
            (String::new(), false)
        } else {
            self.asked.remove(0)
        };
        let chunked = http::header(&resp.headers, "Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = http::header(&resp.headers, "Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        let status = resp.status;
        self.items.push(Item::Response { at, len, resp });
        if status == 101 && upgrade {
            self.items.push(Item::Transport {
                at,
                words: "WebSocket".to_owned(),
            });
            let mut frames = [FrameReader::default(), FrameReader::default()];
            // What followed the heads in either direction is already frames.
            for side in [Side::Client, Side::Server] {
                let rest = std::mem::take(get(&mut self.heads, side));
                get(&mut frames, side).push(&rest);
            }
            self.stage = Stage::WebSocket { frames };
            self.frames(Side::Client, at);
            self.frames(Side::Server, at);
            return;
        }
        if status == 200 && method == RDG_OUT_DATA && upgrade {
            self.upgrade_refused = true;
        }
        // [MS-RPCH] 2.1.2.1.2 the OUT channel's 200: its body is the gateway's PDUs.
        if status == 200 && method == RPC_OUT_DATA {
            self.items.push(Item::Transport {
                at,
                words: format!("RPC over HTTP ({RPC_IN_DATA} and {RPC_OUT_DATA})"),
            });
            self.stage = Stage::Http;
            *get(&mut self.bodies, Side::Server) = Body::Rpc {
                dechunk: chunked.then(Dechunker::default),
            };
            return;
        }
        *get(&mut self.bodies, Side::Server) = if status == 200 && method == RDG_OUT_DATA {
            self.stage = Stage::Http;
            Body::Stream {
                dechunk: chunked.then(Dechunker::default),
                seeking: Some(Vec::new()),
            }
        } else {
            match length {
                Some(n) if n > 0 => Body::Skip(n),
                _ => Body::None,
            }
        };
    }
}

enum Head {
    Request(Request),
    Response(Response),
}

/// [MS-TSGU] 3.2.4 whether a request URI is the RPC proxy's to TsProxy (`/rpc/rpcproxy.dll?host:3388`):
/// RPC over HTTP to other servers (Exchange's, on other ports) is not a gateway's.
fn tsproxy_uri(uri: &str) -> bool {
    rpc::is_rpc_uri(uri)
        && uri
            .split_once('?')
            .and_then(|(_, q)| q.rsplit_once(':'))
            .is_some_and(|(_, port)| port.trim().parse::<u16>() == Ok(rpc::TSPROXY_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> GatewayConn {
        GatewayConn::new(
            "127.0.0.1:443".to_owned(),
            "test",
            None,
            &Position::single(),
            Duration::ZERO,
        )
    }

    #[test]
    fn heads_then_websocket_packets() {
        let mut c = conn();
        let at = Duration::from_millis(1);
        let req = b"RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1\r\nHost: gw\r\nRDG-Connection-Id: {x}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        c.plaintext(Side::Client, at, req);
        c.plaintext(
            Side::Server,
            at,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        );
        let handshake = crate::gateway::packet::Packet::HandshakeRequest {
            major: 1,
            minor: 0,
            client_version: 0,
            extended_auth: 0,
        }
        .encode();
        let framed = websocket::frame(websocket::BINARY, &handshake, Some([1, 2, 3, 4]));
        // Split across two records.
        let (a, b) = framed.split_at(5);
        c.plaintext(Side::Client, at, a);
        c.plaintext(Side::Client, at, b);
        assert_eq!(c.verdict, Verdict::Gateway);
        assert_eq!(c.id.as_deref(), Some("{x}"));
        let items = c.take_items();
        assert!(matches!(items.first(), Some(Item::Request { .. })));
        assert!(
            matches!(items.get(2), Some(Item::Transport { words, .. }) if words == "WebSocket")
        );
        assert!(
            matches!(items.get(3), Some(Item::Packet { from: Side::Client, bytes, .. }) if *bytes == handshake)
        );
    }

    #[test]
    fn the_http_transport_after_its_seed() {
        let mut c = conn();
        let at = Duration::from_millis(1);
        c.plaintext(
            Side::Client,
            at,
            b"RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1\r\nHost: gw\r\n\r\n",
        );
        c.plaintext(
            Side::Server,
            at,
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\nWWW-Authenticate: NTLM\r\n\r\nabc",
        );
        c.plaintext(
            Side::Client,
            at,
            b"RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1\r\nHost: gw\r\n\r\n",
        );
        let response = crate::gateway::packet::Packet::HandshakeResponse {
            error: 0,
            major: 1,
            minor: 0,
            server_version: 0,
            extended_auth: 0,
        }
        .encode();
        let mut body = b"HTTP/1.1 200 OK\r\n\r\n0123456789".to_vec();
        body.extend_from_slice(&response);
        c.plaintext(Side::Server, at, &body);
        let items = c.take_items();
        assert!(
            items.iter().any(
                |i| matches!(i, Item::Transport { words, .. } if words.contains("10-byte seed"))
            ),
            "{items:?}"
        );
        assert!(
            matches!(items.last(), Some(Item::Packet { from: Side::Server, bytes, .. }) if *bytes == response),
            "{items:?}"
        );
    }

    fn rpc_head(method: &str, uri: &str, len: usize) -> Vec<u8> {
        format!("{method} {uri} HTTP/1.1\r\nHost: gw\r\nContent-Length: {len}\r\n\r\n").into_bytes()
    }

    #[test]
    fn an_rpc_channel_joins_by_its_virtual_connection_cookie() {
        use crate::gateway::rpc::rts::Rts;
        let at = Duration::from_millis(1);
        let uri = crate::gateway::rpc::uri("gw");
        let connection = [7u8; 16];
        let b1 = RpcPdu::rts(Rts::conn_b1(
            connection,
            [1; 16],
            0x4000_0000,
            300_000,
            [2; 16],
        ))
        .encode();
        let mut c = conn();
        c.plaintext(Side::Client, at, &rpc_head(RPC_IN_DATA, &uri, 0x4000_0000));
        assert_eq!(c.verdict, Verdict::Gateway);
        assert!(c.id_pending());
        // The CONN/B1 split across two records.
        let (a, b) = b1.split_at(10);
        c.plaintext(Side::Client, at, a);
        assert!(c.id_pending());
        c.plaintext(Side::Client, at, b);
        assert_eq!(
            c.id.as_deref(),
            Some("rpc:07070707070707070707070707070707")
        );
        assert!(!c.primary(true), "the IN channel carries the client's side");
        let items = c.take_items();
        assert!(
            matches!(items.last(), Some(Item::Rpc { from: Side::Client, bytes, .. }) if *bytes == b1),
            "{items:?}"
        );
        // The OUT channel of the same virtual connection: the same tunnel, the gateway's PDUs after its 200.
        let a1 = RpcPdu::rts(Rts::conn_a1(connection, [3; 16], 0x1_0000)).encode();
        let mut out = conn();
        let mut head = rpc_head(RPC_OUT_DATA, &uri, a1.len());
        head.extend_from_slice(&a1);
        out.plaintext(Side::Client, at, &head);
        assert_eq!(out.id, c.id);
        assert!(out.primary(false));
        let a3 = RpcPdu::rts(Rts::conn_a3(120_000)).encode();
        let mut resp = b"HTTP/1.1 200 Success\r\nContent-Length: 1073741824\r\n\r\n".to_vec();
        resp.extend_from_slice(&a3);
        out.plaintext(Side::Server, at, &resp);
        let items = out.take_items();
        assert!(
            items.iter().any(
                |i| matches!(i, Item::Transport { words, .. } if words.starts_with("RPC over HTTP"))
            ),
            "{items:?}"
        );
        assert!(
            matches!(items.last(), Some(Item::Rpc { from: Side::Server, bytes, .. }) if *bytes == a3),
            "{items:?}"
        );
    }

    #[test]
    fn rpc_over_http_to_another_server_is_not_a_gateway() {
        let mut c = conn();
        let head = rpc_head(RPC_IN_DATA, "/rpc/rpcproxy.dll?mail.example:6001", 100);
        c.plaintext(Side::Client, Duration::ZERO, &head);
        assert_eq!(c.verdict, Verdict::Other);
    }

    #[test]
    fn an_rpc_channel_that_does_not_frame_stops_there() {
        let mut c = conn();
        let at = Duration::ZERO;
        let uri = crate::gateway::rpc::uri("gw");
        c.plaintext(Side::Client, at, &rpc_head(RPC_IN_DATA, &uri, 0x4000_0000));
        // Not DCE/RPC version 5: the channel is broken, nothing more is held.
        c.plaintext(Side::Client, at, &[4u8; 64 * 1024]);
        c.plaintext(Side::Client, at, &[4u8; 64 * 1024]);
        let items = c.take_items();
        assert!(
            matches!(items.last(), Some(Item::Broken { .. })),
            "{items:?}"
        );
        assert!(c.rpc_bufs.iter().all(Vec::is_empty));
        assert!(c.heads.iter().all(|h| h.len() < 64 * 1024));
    }

    #[test]
    fn other_https_is_not_a_gateway() {
        let mut c = conn();
        c.plaintext(
            Side::Client,
            Duration::ZERO,
            b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        );
        assert_eq!(c.verdict, Verdict::Other);
        assert!(c.take_items().is_empty());
    }
}
