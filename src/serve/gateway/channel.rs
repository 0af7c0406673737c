//! The gateway's side of the tunnel ([MS-TSGU] 3.3.5.2, 3.3.5.3): the handshake, tunnel creation, tunnel
//! authorization and channel creation answered (or refused, as the scenario's fault says), then the relay of
//! HTTP_DATA_PACKETs to and from the target over TCP.

use std::io;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tracing::debug;

use super::{GatewayOutcome, Shared};
use crate::codes::gateway::{
    E_PROXY_CAPABILITYMISMATCH, E_PROXY_MAXCONNECTIONSREACHED, E_PROXY_NAP_ACCESSDENIED,
    E_PROXY_RAP_ACCESSDENIED, E_PROXY_TS_CONNECTFAILED, ERROR_SUCCESS,
};
use crate::codes::{self, Table};
use crate::gateway::http::Dechunker;
use crate::gateway::packet::{self, Packet, PacketReader};
use crate::gateway::websocket::{self, FrameReader};

/// A TLS connection from a client of the gateway.
pub(super) type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;

/// What the gateway of a scenario does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayFault {
    /// [MS-TSGU] 3.3.5.1 every request gets 401 Unauthorized, whatever the credentials (a user the gateway
    /// does not know, a wrong password, an authentication method it does not accept).
    AuthRefused,
    /// [MS-TSGU] 2.2.10.11 the handshake response carries E_PROXY_CAPABILITYMISMATCH (the gateway requires an
    /// extended authentication, a smart card or a PAA cookie, the client did not offer).
    CapabilityMismatch,
    /// [MS-TSGU] 2.2.10.20 the tunnel response carries E_PROXY_NAP_ACCESSDENIED: no connection authorization
    /// policy (RD CAP) allows the user.
    CapDenied,
    /// [MS-TSGU] 2.2.10.20 the tunnel response carries E_PROXY_MAXCONNECTIONSREACHED.
    MaxConnections,
    /// [MS-TSGU] 2.2.10.4 the channel response carries E_PROXY_RAP_ACCESSDENIED: no resource authorization
    /// policy (RD RAP) allows the user to the target.
    RapDenied,
    /// The target behind the gateway is down: nothing listens where the channel goes, and the channel
    /// response carries E_PROXY_TS_CONNECTFAILED.
    TargetDown,
    /// The gateway ends the tunnel (its TCP connection, without a channel close) when the client's second
    /// data packet arrives: in the middle of the RDP handshake, right after the X.224 exchange.
    DropMidHandshake,
}

/// How the tunnel's packets travel on the gateway's side.
pub(super) enum Link {
    WebSocket {
        stream: Box<ServerTls>,
        frames: FrameReader,
        pongs: Vec<Vec<u8>>,
    },
    /// The OUT channel's response body (raw) and the IN channel's chunked request body (`pending`: what was
    /// read of it with the request's head).
    Http {
        out: Box<ServerTls>,
        in_: Box<ServerTls>,
        dechunk: Dechunker,
        pending: Vec<u8>,
    },
}

impl Link {
    /// The transport's name, as the probe's `gateway_transport` fact begins.
    fn transport(&self) -> &'static str {
        match self {
            Link::WebSocket { .. } => "WebSocket",
            Link::Http { .. } => "HTTP",
        }
    }

    /// The next packet from the client; `None` when it left. Cancel-safe: bytes are kept only once read.
    async fn recv(&mut self, packets: &mut PacketReader) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = vec![0u8; 16 * 1024];
        // INVARIANT: each pass returns or reads at least one byte; packets are bounded by MAX_PACKET.
        loop {
            match packets.next_packet() {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            match self {
                Link::WebSocket {
                    stream,
                    frames,
                    pongs,
                } => {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok(None);
                    }
                    frames.push(chunk.get(..n).unwrap_or_default());
                    // INVARIANT: each pass takes one frame off a finite buffer.
                    loop {
                        match frames.next_frame() {
                            Ok(Some(f)) => match f.opcode {
                                websocket::BINARY | websocket::CONTINUATION => {
                                    packets.push(&f.payload)
                                }
                                websocket::PING => pongs.push(f.payload),
                                websocket::CLOSE => return Ok(None),
                                _ => {}
                            },
                            Ok(None) => break,
                            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                        }
                    }
                }
                Link::Http {
                    in_,
                    dechunk,
                    pending,
                    ..
                } => {
                    let bytes = if pending.is_empty() {
                        let n = in_.read(&mut chunk).await?;
                        if n == 0 {
                            return Ok(None);
                        }
                        chunk.get(..n).unwrap_or_default().to_vec()
                    } else {
                        std::mem::take(pending)
                    };
                    let body = dechunk
                        .push(&bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    packets.push(&body);
                    if dechunk.done {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Sends one packet to the client.
    async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        match self {
            Link::WebSocket { stream, pongs, .. } => {
                for p in std::mem::take(pongs) {
                    stream
                        .write_all(&websocket::frame(websocket::PONG, &p, None))
                        .await?;
                }
                stream
                    .write_all(&websocket::frame(websocket::BINARY, packet, None))
                    .await?;
                stream.flush().await
            }
            Link::Http { out, .. } => {
                out.write_all(packet).await?;
                out.flush().await
            }
        }
    }

    /// An orderly end: TLS close_notify and FIN.
    async fn close(self) {
        match self {
            Link::WebSocket { mut stream, .. } => {
                let _ = stream
                    .write_all(&websocket::frame(
                        websocket::CLOSE,
                        &1000u16.to_be_bytes(),
                        None,
                    ))
                    .await;
                let _ = stream.shutdown().await;
            }
            Link::Http {
                mut out, mut in_, ..
            } => {
                let _ = out.shutdown().await;
                let _ = in_.shutdown().await;
            }
        }
    }
}

/// The answer to one setup packet: its packet, and whether the tunnel ends with it.
fn answer(request: &Packet, fault: Option<GatewayFault>) -> Option<(Packet, bool)> {
    let refuse = |f: GatewayFault| fault == Some(f);
    Some(match request {
        Packet::HandshakeRequest { .. } => {
            let error = if refuse(GatewayFault::CapabilityMismatch) {
                E_PROXY_CAPABILITYMISMATCH
            } else {
                ERROR_SUCCESS
            };
            (
                Packet::HandshakeResponse {
                    error,
                    major: 1,
                    minor: 0,
                    server_version: 0,
                    extended_auth: 0,
                },
                error != ERROR_SUCCESS,
            )
        }
        Packet::TunnelCreate { .. } => {
            let status = if refuse(GatewayFault::CapDenied) {
                E_PROXY_NAP_ACCESSDENIED
            } else if refuse(GatewayFault::MaxConnections) {
                E_PROXY_MAXCONNECTIONSREACHED
            } else {
                ERROR_SUCCESS
            };
            (
                Packet::TunnelResponse {
                    server_version: 0,
                    status,
                    tunnel_id: Some(1),
                    caps: Some(packet::CAPS_IDLE_TIMEOUT),
                    consent: None,
                },
                status != ERROR_SUCCESS,
            )
        }
        Packet::TunnelAuth { .. } => (
            Packet::TunnelAuthResponse {
                error: ERROR_SUCCESS,
                // [MS-TSGU] 2.2.5.3.7 HTTP_TUNNEL_REDIR_ENABLE_ALL.
                redirection_flags: Some(0x8000_0000),
                idle_timeout: Some(0),
            },
            false,
        ),
        _ => return None,
    })
}

/// Runs one tunnel from the handshake to its end.
pub(super) async fn run(shared: &Shared, mut link: Link) -> GatewayOutcome {
    let config = &shared.config;
    let fault = config.profile.fault;
    let mut packets = PacketReader::default();
    // INVARIANT: four setup packets at most before the channel; each read bounded by the read timeout.
    let (resource, port) = loop {
        let bytes = match tokio::time::timeout(config.read_timeout, link.recv(&mut packets)).await {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return GatewayOutcome::Failed("the client left".to_owned()),
            Ok(Err(e)) => return GatewayOutcome::Failed(e.to_string()),
            Err(_) => {
                link.close().await;
                return GatewayOutcome::Failed("the client went silent".to_owned());
            }
        };
        let request = match Packet::decode(&bytes) {
            Ok(p) => p,
            Err(e) => {
                link.close().await;
                return GatewayOutcome::Failed(format!("a packet that does not decode: {e}"));
            }
        };
        if let Packet::ChannelCreate {
            resources, port, ..
        } = &request
        {
            break (resources.first().cloned().unwrap_or_default(), *port);
        }
        let Some((reply, ends)) = answer(&request, fault) else {
            debug!(packet = request.name(), "ignored before the channel");
            continue;
        };
        if let Err(e) = link.send(&reply.encode()).await {
            return GatewayOutcome::Failed(e.to_string());
        }
        if ends {
            link.close().await;
            let code = reply.code().unwrap_or_default();
            return GatewayOutcome::Refused(codes::Display(Table::Gateway, code).to_string());
        }
    };
    let target = format!("{resource}:{port}");
    let refuse = |code: u32| Packet::ChannelResponse {
        error: code,
        channel_id: None,
    };
    if fault == Some(GatewayFault::RapDenied) || !super::allowed(&resource) {
        let _ = link.send(&refuse(E_PROXY_RAP_ACCESSDENIED).encode()).await;
        link.close().await;
        return GatewayOutcome::Refused(format!(
            "{} for {target}",
            codes::Display(Table::Gateway, E_PROXY_RAP_ACCESSDENIED)
        ));
    }
    let host = resource.trim_matches(['[', ']']).to_owned();
    let connected = tokio::time::timeout(
        config.read_timeout,
        TcpStream::connect((host.as_str(), port)),
    )
    .await;
    let tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            let _ = link.send(&refuse(E_PROXY_TS_CONNECTFAILED).encode()).await;
            link.close().await;
            return GatewayOutcome::Refused(format!(
                "{} ({target}: {e})",
                codes::Display(Table::Gateway, E_PROXY_TS_CONNECTFAILED)
            ));
        }
        Err(_) => {
            let _ = link.send(&refuse(E_PROXY_TS_CONNECTFAILED).encode()).await;
            link.close().await;
            return GatewayOutcome::Refused(format!(
                "{} ({target} did not answer)",
                codes::Display(Table::Gateway, E_PROXY_TS_CONNECTFAILED)
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    let ok = Packet::ChannelResponse {
        error: ERROR_SUCCESS,
        channel_id: Some(1),
    };
    if let Err(e) = link.send(&ok.encode()).await {
        return GatewayOutcome::Failed(e.to_string());
    }
    relay(shared, link, packets, tcp, target).await
}

/// Carries data both ways until one side ends; the end of the target becomes a close of the channel.
async fn relay(
    shared: &Shared,
    mut link: Link,
    mut packets: PacketReader,
    mut tcp: TcpStream,
    target: String,
) -> GatewayOutcome {
    let config = &shared.config;
    let transport = link.transport();
    let mut from_target = vec![0u8; packet::MAX_DATA];
    let mut data_packets = 0u32;
    // INVARIANT: each pass moves one packet or one read, or ends; the idle limit bounds a silent tunnel.
    loop {
        tokio::select! {
            got = link.recv(&mut packets) => {
                let bytes = match got {
                    Ok(Some(b)) => b,
                    Ok(None) | Err(_) => {
                        let _ = tcp.shutdown().await;
                        return GatewayOutcome::Relayed { target, transport, end: "the client left".to_owned() };
                    }
                };
                match Packet::decode(&bytes) {
                    Ok(Packet::Data(d)) => {
                        data_packets = data_packets.saturating_add(1);
                        if config.profile.fault == Some(GatewayFault::DropMidHandshake) && data_packets == 2 {
                            // Dropped: the sockets close without TLS close_notify or a channel close.
                            drop(link);
                            drop(tcp);
                            return GatewayOutcome::Relayed { target, transport, end: "dropped by the gateway (fault)".to_owned() };
                        }
                        if tcp.write_all(&d).await.is_err() {
                            let _ = link.send(&Packet::CloseChannel { status: ERROR_SUCCESS }.encode()).await;
                            link.close().await;
                            return GatewayOutcome::Relayed { target, transport, end: "the target went away".to_owned() };
                        }
                    }
                    Ok(Packet::CloseChannel { .. }) => {
                        let _ = link.send(&Packet::CloseChannelResponse { status: ERROR_SUCCESS }.encode()).await;
                        let _ = tcp.shutdown().await;
                        link.close().await;
                        return GatewayOutcome::Relayed { target, transport, end: "the client closed the channel".to_owned() };
                    }
                    Ok(_) => {}
                    Err(e) => {
                        link.close().await;
                        return GatewayOutcome::Failed(format!("a packet that does not decode: {e}"));
                    }
                }
            }
            read = tcp.read(&mut from_target) => {
                match read {
                    Ok(n) if n > 0 => {
                        let data = Packet::Data(from_target.get(..n).unwrap_or_default().to_vec());
                        if link.send(&data.encode()).await.is_err() {
                            return GatewayOutcome::Relayed { target, transport, end: "the client went away".to_owned() };
                        }
                    }
                    _ => {
                        // [MS-TSGU] 3.3.5.3 the target closed: the gateway closes the channel.
                        let _ = link.send(&Packet::CloseChannel { status: ERROR_SUCCESS }.encode()).await;
                        link.close().await;
                        return GatewayOutcome::Relayed { target, transport, end: "the target closed".to_owned() };
                    }
                }
            }
            () = tokio::time::sleep(config.idle_limit) => {
                link.close().await;
                return GatewayOutcome::Relayed { target, transport, end: "the idle limit passed".to_owned() };
            }
        }
    }
}
