//! The tunnel through an RD Gateway ([MS-TSGU] 3.3.5.2, 3.3.5.3): packets over a WebSocket, or over the
//! RDG_OUT_DATA response (gateway to client) and the chunked RDG_IN_DATA request (client to gateway). Once
//! the channel is created it is a byte stream (AsyncRead + AsyncWrite) that carries the RDP connection in
//! HTTP_DATA_PACKETs; how the gateway ends it goes to its [`TunnelLog`]. Over RPC ([MS-TSGU] 3.2.6.2) the
//! same stream runs on TsProxySendToServer requests (IN channel) and the receive pipe's answer (OUT
//! channel): [`super::rpc::link`] turns them into the packets this module reads and writes.

// Bytes from the wire: no panics (see ARCHITECTURE.md, Rules).
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

use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::http::{self, Dechunker};
use super::packet::{self, MAX_DATA, MAX_SEED, Packet, PacketReader};
use super::rpc::link::{Association, Event};
use super::websocket::{self, FrameReader};
use crate::probe::transport::Tap;
use crate::trace::{CloseKind, TunnelEnd};

/// A TLS connection to the gateway, its bytes copied by a tap.
pub type GwStream = tokio_rustls::client::TlsStream<Tap<TcpStream>>;

/// The most bytes a tunnel holds decoded and not yet read.
const MAX_INBOUND: usize = 4 << 20;

/// What the gateway did to the tunnel that is not a data packet, for the trace.
#[derive(Debug, Default)]
pub struct TunnelLog {
    /// How the tunnel ended, and when (ms since the probe's start).
    pub end: Option<(f64, TunnelEnd)>,
    /// Service and consent messages, anomalies, at their time.
    pub notes: Vec<(f64, String)>,
}

/// How packets travel.
enum Carrier {
    /// [MS-TSGU] 3.3.5.1 the WebSocket transport: one connection, binary frames both ways.
    WebSocket {
        stream: Box<GwStream>,
        frames: FrameReader,
    },
    /// [MS-TSGU] 3.3.5.1 the HTTP transport: packets come in the body of the RDG_OUT_DATA response and go
    /// in the chunked body of the RDG_IN_DATA request.
    Http {
        out: Box<GwStream>,
        body: OutBody,
        in_: Box<GwStream>,
    },
    /// [MS-TSGU] 3.2 RPC over HTTP: PDUs on the RPC_OUT_DATA response and the RPC_IN_DATA request.
    Rpc {
        out: Box<GwStream>,
        in_: Box<GwStream>,
        link: Box<Association>,
    },
}

/// The body of the RDG_OUT_DATA response.
struct OutBody {
    dechunk: Option<Dechunker>,
    /// Bytes before the first packet (the seed) still to find and drop.
    seeking: Option<Vec<u8>>,
    /// How many seed bytes were dropped.
    pub seed: usize,
}

/// The tunnel: packets while it is set up, then the byte stream of the channel.
pub struct Tunnel {
    carrier: Carrier,
    packets: PacketReader,
    inbound: Vec<u8>,
    inbound_pos: usize,
    outbound: Vec<u8>,
    outbound_pos: usize,
    eof: bool,
    closing: bool,
    log: Arc<Mutex<TunnelLog>>,
    start: Instant,
}

impl core::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tunnel")
            .field(
                "websocket",
                &matches!(self.carrier, Carrier::WebSocket { .. }),
            )
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// A tunnel over a WebSocket; `leftover` are bytes read after the 101 response.
    pub fn websocket(stream: GwStream, leftover: &[u8], start: Instant) -> Tunnel {
        let mut frames = FrameReader::default();
        frames.push(leftover);
        Tunnel::new(
            Carrier::WebSocket {
                stream: Box::new(stream),
                frames,
            },
            start,
        )
    }

    /// A tunnel over the HTTP transport: `out` after its 200 response (`leftover` the body bytes read with
    /// it, `chunked` when the response said so), `in_` after its streaming request head.
    pub fn http(
        out: GwStream,
        leftover: &[u8],
        chunked: bool,
        in_: GwStream,
        start: Instant,
    ) -> Tunnel {
        let mut t = Tunnel::new(
            Carrier::Http {
                out: Box::new(out),
                body: OutBody {
                    dechunk: chunked.then(Dechunker::default),
                    seeking: Some(Vec::new()),
                    seed: 0,
                },
                in_: Box::new(in_),
            },
            start,
        );
        t.feed(leftover);
        t
    }

    /// A tunnel over RPC over HTTP, its channel open and its receive pipe set up: `leftover` are OUT channel
    /// bytes read past the setup's last answer.
    pub fn rpc(
        out: GwStream,
        leftover: &[u8],
        in_: GwStream,
        link: Association,
        start: Instant,
    ) -> Tunnel {
        let mut t = Tunnel::new(
            Carrier::Rpc {
                out: Box::new(out),
                in_: Box::new(in_),
                link: Box::new(link),
            },
            start,
        );
        t.feed(leftover);
        t
    }

    fn new(carrier: Carrier, start: Instant) -> Tunnel {
        Tunnel {
            carrier,
            packets: PacketReader::default(),
            inbound: Vec::new(),
            inbound_pos: 0,
            outbound: Vec::new(),
            outbound_pos: 0,
            eof: false,
            closing: false,
            log: Arc::new(Mutex::new(TunnelLog::default())),
            start,
        }
    }

    /// The log the probe drains into the trace.
    pub fn log(&self) -> Arc<Mutex<TunnelLog>> {
        self.log.clone()
    }

    /// Whether the tunnel uses the WebSocket transport.
    pub fn is_websocket(&self) -> bool {
        matches!(self.carrier, Carrier::WebSocket { .. })
    }

    /// The seed bytes the gateway sent before its first packet (HTTP transport).
    pub fn seed(&self) -> Option<usize> {
        match &self.carrier {
            Carrier::Http { body, .. } => Some(body.seed),
            Carrier::WebSocket { .. } | Carrier::Rpc { .. } => None,
        }
    }

    fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn end(&mut self, end: TunnelEnd) {
        let at = self.at();
        if let Ok(mut log) = self.log.lock()
            && log.end.is_none()
        {
            log.end = Some((at, end));
        }
    }

    fn note(&mut self, note: String) {
        let at = self.at();
        if let Ok(mut log) = self.log.lock()
            && log.notes.len() < 64
        {
            log.notes.push((at, note));
        }
    }

    /// Puts a packet in the outgoing buffer, framed for the transport.
    fn queue(&mut self, packet: &[u8]) {
        let framed = match &mut self.carrier {
            Carrier::WebSocket { .. } => {
                websocket::frame(websocket::BINARY, packet, Some(rand::random()))
            }
            Carrier::Http { .. } => http::chunk(packet),
            // Data becomes TsProxySendToServer, a channel close TsProxyCloseChannel; the rest has no RPC
            // form.
            Carrier::Rpc { link, .. } => {
                let made = match Packet::decode(packet) {
                    Ok(Packet::Data(d)) => link.send_data(&d),
                    Ok(Packet::CloseChannel { .. }) => link.close_channel(),
                    _ => Ok(Vec::new()),
                };
                match made {
                    Ok(b) => b,
                    Err(e) => {
                        self.note(e.to_string());
                        Vec::new()
                    }
                }
            }
        };
        if self.outbound_pos >= self.outbound.len() {
            self.outbound.clear();
            self.outbound_pos = 0;
        }
        self.outbound.extend_from_slice(&framed);
    }

    /// Bytes read from the gateway, unframed into packets.
    fn feed(&mut self, bytes: &[u8]) {
        let mut notes = Vec::new();
        let mut ended = None;
        let mut pongs = Vec::new();
        match &mut self.carrier {
            Carrier::WebSocket { frames, .. } => {
                frames.push(bytes);
                // INVARIANT: each pass takes a frame off a finite buffer, or stops.
                loop {
                    match frames.next_frame() {
                        Ok(Some(f)) => match f.opcode {
                            websocket::BINARY | websocket::CONTINUATION => {
                                self.packets.push(&f.payload)
                            }
                            websocket::PING => pongs.push(f.payload),
                            websocket::CLOSE => {
                                ended = Some(TunnelEnd::WebSocketClose {
                                    code: f.close_code(),
                                });
                                break;
                            }
                            websocket::PONG => {}
                            other => notes.push(format!(
                                "a WebSocket frame with opcode 0x{other:x}, ignored"
                            )),
                        },
                        Ok(None) => break,
                        Err(e) => {
                            notes.push(e.to_string());
                            ended = Some(TunnelEnd::Dropped {
                                how: CloseKind::Fin,
                            });
                            break;
                        }
                    }
                }
            }
            Carrier::Rpc { link, .. } => {
                for event in link.feed(bytes) {
                    match event {
                        Event::Data(d) => {
                            // INVARIANT: a receive pipe fragment is shorter than a data packet's limit.
                            for part in d.chunks(MAX_DATA) {
                                self.packets.push(&Packet::Data(part.to_vec()).encode());
                            }
                        }
                        Event::End(status) => {
                            self.packets.push(&Packet::CloseChannel { status }.encode());
                        }
                        Event::Note(n) => notes.push(n),
                        Event::Send(b) => pongs.push(b),
                    }
                }
            }
            Carrier::Http { body, .. } => {
                let plain = match body.dechunk.as_mut() {
                    Some(d) => match d.push(bytes) {
                        Ok(b) => b,
                        Err(e) => {
                            notes.push(e.to_string());
                            ended = Some(TunnelEnd::Dropped {
                                how: CloseKind::Fin,
                            });
                            Vec::new()
                        }
                    },
                    None => bytes.to_vec(),
                };
                match body.seeking.as_mut() {
                    Some(held) => {
                        held.extend_from_slice(&plain);
                        // The first packet the gateway sends is its HTTP_HANDSHAKE_RESPONSE_PACKET.
                        if let Some(at) = packet::first_packet_at(held) {
                            body.seed = at;
                            let rest = held.split_off(at);
                            self.packets.push(&rest);
                            body.seeking = None;
                        } else if held.len() > MAX_SEED + 4 {
                            notes.push(format!(
                                "no packet within the first {MAX_SEED} bytes of the RDG_OUT_DATA body"
                            ));
                            ended = Some(TunnelEnd::Dropped {
                                how: CloseKind::Fin,
                            });
                        }
                    }
                    None => self.packets.push(&plain),
                }
            }
        }
        for p in pongs {
            let framed = if matches!(self.carrier, Carrier::Rpc { .. }) {
                p
            } else {
                websocket::frame(websocket::PONG, &p, Some(rand::random()))
            };
            self.outbound.extend_from_slice(&framed);
        }
        for n in notes {
            self.note(n);
        }
        if let Some(e) = ended {
            self.end(e);
            self.eof = true;
        }
    }

    /// The stream packets are read from.
    fn reader(&mut self) -> Pin<&mut GwStream> {
        match &mut self.carrier {
            Carrier::WebSocket { stream, .. } => Pin::new(stream),
            Carrier::Http { out, .. } | Carrier::Rpc { out, .. } => Pin::new(out),
        }
    }

    /// The stream packets are written to.
    fn writer(&mut self) -> Pin<&mut GwStream> {
        match &mut self.carrier {
            Carrier::WebSocket { stream, .. } => Pin::new(stream),
            Carrier::Http { in_, .. } | Carrier::Rpc { in_, .. } => Pin::new(in_),
        }
    }

    /// Writes what is queued.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // INVARIANT: each pass writes at least one byte or returns.
        while self.outbound_pos < self.outbound.len() {
            let pending = self
                .outbound
                .get(self.outbound_pos..)
                .unwrap_or_default()
                .to_vec();
            let n = ready!(self.writer().poll_write(cx, &pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)));
            }
            self.outbound_pos += n;
        }
        self.outbound.clear();
        self.outbound_pos = 0;
        self.writer().poll_flush(cx)
    }

    /// The next whole packet from the gateway; `None` once the tunnel has ended.
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>> {
        // INVARIANT: each pass returns a packet, ends, or reads at least one byte; packets are bounded.
        loop {
            match self.packets.next_packet() {
                Ok(Some(p)) => return Poll::Ready(Ok(Some(p))),
                Ok(None) => {}
                Err(e) => {
                    self.note(format!("a packet that does not frame: {e}"));
                    self.end(TunnelEnd::Dropped {
                        how: CloseKind::Fin,
                    });
                    self.eof = true;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            }
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            // Control frames (pongs) go out as they are due.
            if self.outbound_pos < self.outbound.len() {
                let _ = self.poll_flush_out(cx)?;
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match ready!(self.reader().poll_read(cx, &mut rb)) {
                Ok(()) if rb.filled().is_empty() => {
                    self.end(TunnelEnd::Dropped {
                        how: CloseKind::Fin,
                    });
                    self.eof = true;
                }
                Ok(()) => {
                    let filled = rb.filled().to_vec();
                    self.feed(&filled);
                }
                Err(e) => {
                    let how = match e.kind() {
                        io::ErrorKind::UnexpectedEof => CloseKind::Fin,
                        io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe => CloseKind::Rst,
                        _ => return Poll::Ready(Err(e)),
                    };
                    self.end(TunnelEnd::Dropped { how });
                    self.eof = true;
                    if how == CloseKind::Rst {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
    }

    /// Sends one packet (while the tunnel is set up).
    pub async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        self.queue(&packet.encode());
        core::future::poll_fn(|cx| self.poll_flush_out(cx)).await
    }

    /// The next packet's bytes, `None` once the tunnel ended (while it is set up).
    pub async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        core::future::poll_fn(|cx| self.poll_packet(cx)).await
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // INVARIANT: each pass hands out data, ends, or decodes one packet.
        loop {
            if this.inbound_pos < this.inbound.len() {
                let avail = this.inbound.get(this.inbound_pos..).unwrap_or_default();
                let n = avail.len().min(buf.remaining());
                buf.put_slice(avail.get(..n).unwrap_or_default());
                this.inbound_pos += n;
                if this.inbound_pos >= this.inbound.len() {
                    this.inbound.clear();
                    this.inbound_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let Some(bytes) = ready!(this.poll_packet(cx))? else {
                return Poll::Ready(Ok(()));
            };
            match Packet::decode(&bytes) {
                Ok(Packet::Data(d)) => {
                    if this.inbound.len() + d.len() > MAX_INBOUND {
                        return Poll::Ready(Err(io::Error::other(
                            "the gateway sent more than the tunnel holds",
                        )));
                    }
                    this.inbound.extend_from_slice(&d);
                }
                Ok(Packet::CloseChannel { status }) => {
                    this.end(TunnelEnd::ChannelClose { status });
                    this.eof = true;
                    // [MS-TSGU] 3.3.5.3 the client answers a close with a close response.
                    this.queue(&Packet::CloseChannelResponse { status: 0 }.encode());
                    let _ = this.poll_flush_out(cx);
                }
                Ok(Packet::Keepalive) => {}
                Ok(Packet::ServiceMessage(m)) => this.note(format!("service message: {m}")),
                Ok(other) => this.note(format!("{} in the open tunnel, ignored", other.name())),
                Err(e) => {
                    this.note(format!("a packet that does not decode: {e}"));
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            }
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_flush_out(cx))?;
        if this.eof && this.closing {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        let n = buf.len().min(MAX_DATA);
        let packet = Packet::Data(buf.get(..n).unwrap_or_default().to_vec()).encode();
        this.queue(&packet);
        // What does not leave now leaves at the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_out(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.closing {
            this.closing = true;
            if !this.eof {
                // [MS-TSGU] 3.3.5.3 the client closes the channel before it leaves.
                this.queue(&Packet::CloseChannel { status: 0 }.encode());
            }
        }
        ready!(this.poll_flush_out(cx))?;
        this.writer().poll_shutdown(cx)
    }
}
