//! One client connection to the built-in gateway ([MS-TSGU] 3.3.5.1): TLS, then requests until the
//! connection is authenticated and becomes a transport: a WebSocket (101), the OUT channel of the HTTP
//! transport (200 and a seed, then the gateway's packets in the response body), or its IN channel (200, then
//! a chunked request whose body carries the client's packets, handed to the OUT channel with the same
//! RDG-Connection-Id).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::auth::{ServerAuth, Verdict};
use super::channel::{self, GatewayFault, Link, ServerTls};
use super::{GatewayOutcome, InHalf, Shared};
use crate::gateway::Scheme;
use crate::gateway::http::{self, Dechunker, RDG_IN_DATA, RDG_OUT_DATA, Request};
use crate::gateway::websocket::{self, FrameReader};

/// Requests one connection may make before it becomes a transport.
const MAX_REQUESTS: usize = 16;
/// The longest request body the gateway reads and drops.
const MAX_BODY: usize = 64 * 1024;
/// [MS-TSGU] 3.3.5.1 the random entity body after the OUT channel's 200 (Windows sends 10 bytes).
const SEED_LEN: usize = 10;

pub(super) struct Conn {
    pub(super) stream: ServerTls,
    pub(super) buf: Vec<u8>,
}

/// Serves one connection to its end.
pub(super) async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    _peer: SocketAddr,
) -> GatewayOutcome {
    let _ = tcp.set_nodelay(true);
    let limit = shared.config.read_timeout;
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.clone());
    let stream = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return GatewayOutcome::Failed(format!("the TLS handshake failed: {e}")),
        Err(_) => return GatewayOutcome::Failed("no TLS handshake".to_owned()),
    };
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    let profile = shared.config.profile;
    let offered = shared.config.offered();
    let mut auth = ServerAuth::default();
    // The authentication's last token (Kerberos's AP-REP), for the response that grants the transport.
    let mut last: Option<String> = None;
    for _ in 0..MAX_REQUESTS {
        let req = match read_request(&mut conn, limit).await {
            Ok(r) => r,
            Err(why) => return GatewayOutcome::Failed(why),
        };
        if crate::gateway::rpc::is_rpc_method(&req.method) {
            return super::rpc::channel(&shared, conn, req, auth).await;
        }
        let out = req.method == RDG_OUT_DATA;
        if !out && req.method != RDG_IN_DATA {
            let _ = respond(&mut conn, 404, "Not Found", &[]).await;
            return GatewayOutcome::Refused(format!("{} is not a gateway method", req.method));
        }
        if let Err(why) = skip_body(&mut conn, &req, limit).await {
            return GatewayOutcome::Failed(why);
        }
        let verdict = http::header(&req.headers, "Authorization").map(|value| {
            auth.step(
                value,
                &offered,
                &shared.config.identity,
                shared.config.kerberos(),
            )
        });
        match verdict {
            None => {
                let _ = unauthorized(&mut conn, &offered, None, false).await;
                continue;
            }
            Some(Verdict::Challenge(value)) => {
                let _ = unauthorized(&mut conn, &offered, Some(value), false).await;
                continue;
            }
            Some(Verdict::Refused(why)) => {
                let _ = unauthorized(&mut conn, &offered, None, true).await;
                return GatewayOutcome::Refused(format!("401: {why}"));
            }
            Some(Verdict::RefusedWith(value, why)) => {
                let _ = unauthorized(&mut conn, &offered, Some(value), true).await;
                return GatewayOutcome::Refused(format!("401: {why}"));
            }
            Some(Verdict::Authenticated(_)) if profile.fault == Some(GatewayFault::AuthRefused) => {
                let _ = unauthorized(&mut conn, &offered, None, true).await;
                return GatewayOutcome::Refused(
                    "401: the gateway refuses these credentials (fault)".to_owned(),
                );
            }
            Some(Verdict::Authenticated(token)) => {
                if token.is_some() {
                    last = token;
                }
            }
        }
        let upgrade = http::has_token(&req.headers, "Upgrade", "websocket");
        let id = http::header(&req.headers, "RDG-Connection-Id")
            .unwrap_or_default()
            .to_owned();
        if out && upgrade && profile.websocket {
            let key = http::header(&req.headers, "Sec-WebSocket-Key").unwrap_or_default();
            let mut headers = vec![
                ("Upgrade", "websocket".to_owned()),
                ("Connection", "Upgrade".to_owned()),
                ("Sec-WebSocket-Accept", websocket::accept_key(key)),
            ];
            if let Some(token) = last.take() {
                headers.push(("WWW-Authenticate", token));
            }
            if respond(&mut conn, 101, "Switching Protocols", &headers)
                .await
                .is_err()
            {
                return GatewayOutcome::Failed("the client went away".to_owned());
            }
            let mut frames = FrameReader::default();
            frames.push(&conn.buf);
            let link = Link::WebSocket {
                stream: Box::new(conn.stream),
                frames,
                pongs: Vec::new(),
            };
            return channel::run(&shared, link).await;
        }
        if out {
            return out_channel(&shared, conn, id, last).await;
        }
        return in_channel(&shared, conn, id, last).await;
    }
    GatewayOutcome::Failed(format!("{MAX_REQUESTS} requests without a transport"))
}

/// The OUT channel of the HTTP transport: 200 and the seed, then, once its IN channel arrived, the tunnel.
async fn out_channel(
    shared: &Shared,
    mut conn: Conn,
    id: String,
    token: Option<String>,
) -> GatewayOutcome {
    // No length: the body is the stream of the gateway's packets, after a random seed.
    let mut headers = vec![("Cache-Control", "no-cache".to_owned())];
    if let Some(t) = token {
        headers.push(("WWW-Authenticate", t));
    }
    let mut head = http::response_head(200, "OK", &headers);
    let seed: [u8; SEED_LEN] = rand::random();
    head.extend_from_slice(&seed);
    if conn.stream.write_all(&head).await.is_err() || conn.stream.flush().await.is_err() {
        return GatewayOutcome::Failed("the client went away".to_owned());
    }
    let (tx, rx) = oneshot::channel::<InHalf>();
    if let Ok(mut p) = shared.pairing.lock() {
        p.waiting.insert(id.clone(), tx);
    }
    let half = tokio::time::timeout(shared.config.read_timeout, rx).await;
    if let Ok(mut p) = shared.pairing.lock() {
        p.waiting.remove(&id);
    }
    let Ok(Ok((in_, pending))) = half else {
        return GatewayOutcome::Failed(
            "no RDG_IN_DATA channel came for this RDG_OUT_DATA channel".to_owned(),
        );
    };
    let link = Link::Http {
        out: Box::new(conn.stream),
        in_: Box::new(in_),
        dechunk: Dechunker::default(),
        pending,
    };
    channel::run(shared, link).await
}

/// The IN channel of the HTTP transport: 200, then the request whose chunked body carries the client's
/// packets, handed to the OUT channel.
async fn in_channel(
    shared: &Shared,
    mut conn: Conn,
    id: String,
    token: Option<String>,
) -> GatewayOutcome {
    let limit = shared.config.read_timeout;
    let mut headers = vec![("Content-Length", "0".to_owned())];
    if let Some(t) = token {
        headers.push(("WWW-Authenticate", t));
    }
    if respond(&mut conn, 200, "OK", &headers).await.is_err() {
        return GatewayOutcome::Failed("the client went away".to_owned());
    }
    let streaming = match read_request(&mut conn, limit).await {
        Ok(r) => r,
        Err(why) => return GatewayOutcome::Failed(why),
    };
    if streaming.method != RDG_IN_DATA {
        return GatewayOutcome::Failed(format!(
            "{} where the RDG_IN_DATA request that carries the packets belongs",
            streaming.method
        ));
    }
    match shared.out_channel_for(&id).await {
        Some(tx) => {
            let _ = tx.send((conn.stream, conn.buf));
            GatewayOutcome::Paired
        }
        None => GatewayOutcome::Failed(format!(
            "no RDG_OUT_DATA channel waits with RDG-Connection-Id {id}"
        )),
    }
}

/// Reads one request head.
pub(super) async fn read_request(
    conn: &mut Conn,
    limit: std::time::Duration,
) -> Result<Request, String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = vec![0u8; 16 * 1024];
    // INVARIANT: each pass returns or reads at least one byte; the head is bounded by MAX_HEAD.
    loop {
        match http::take_request(&mut conn.buf) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match tokio::time::timeout_at(deadline, conn.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err("the client left".to_owned()),
            Ok(Ok(n)) => conn
                .buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the client went silent".to_owned()),
        }
    }
}

/// Reads and drops a request body of `Content-Length` bytes.
pub(super) async fn skip_body(
    conn: &mut Conn,
    req: &Request,
    limit: std::time::Duration,
) -> Result<(), String> {
    let len = http::header(&req.headers, "Content-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(format!("a {len}-byte request body"));
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = vec![0u8; 16 * 1024];
    // INVARIANT: each pass reads at least one byte or returns; `len` is bounded.
    while conn.buf.len() < len {
        match tokio::time::timeout_at(deadline, conn.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => conn
                .buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            _ => return Err("the request body did not come".to_owned()),
        }
    }
    conn.buf.drain(..len);
    Ok(())
}

pub(super) async fn respond(
    conn: &mut Conn,
    status: u16,
    reason: &str,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let head = http::response_head(status, reason, headers);
    conn.stream.write_all(&head).await?;
    conn.stream.flush().await
}

/// 401 Unauthorized: the schemes offered, or the next leg's challenge; `close` ends the connection.
pub(super) async fn unauthorized(
    conn: &mut Conn,
    schemes: &[Scheme],
    challenge: Option<String>,
    close: bool,
) -> std::io::Result<()> {
    let mut headers: Vec<(&str, String)> = match challenge {
        Some(c) => vec![("WWW-Authenticate", c)],
        None => schemes
            .iter()
            .map(|s| {
                let value = match s {
                    Scheme::Basic => "Basic realm=\"rdptrace-gateway\"".to_owned(),
                    other => other.as_str().to_owned(),
                };
                ("WWW-Authenticate", value)
            })
            .collect(),
    };
    headers.push(("Content-Length", "0".to_owned()));
    if close {
        headers.push(("Connection", "close".to_owned()));
    }
    respond(conn, 401, "Unauthorized", &headers).await?;
    if close {
        let _ = conn.stream.shutdown().await;
    }
    Ok(())
}
