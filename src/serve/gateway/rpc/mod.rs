//! RPC over HTTP on the built-in gateway ([MS-TSGU] 3.2 over [MS-RPCH] 3.2.3, as a combined RPC proxy and
//! server): the RPC_IN_DATA and RPC_OUT_DATA channels, each authenticated with NTLM on its own connection
//! (`auth.rs`), joined by their virtual connection cookie (CONN/A1 and CONN/B1, answered with CONN/A3 and
//! CONN/C2); then the bind with NTLM at packet integrity, every request's verifier checked and every
//! answer signed; the TsProxy calls answered (or refused with the HRESULT in a fault PDU, as a Windows
//! gateway refuses them, as the scenario's fault says); the client's bytes taken from TsProxySendToServer
//! and the target's sent as the fragments of the TsProxySetupReceivePipe answer, within the client's
//! receive window, with FlowControlAck for the IN channel.

mod security;
mod session;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use super::auth::{ServerAuth, Verdict};
use super::channel::{GatewayFault, ServerTls};
use super::http::{Conn, read_request, respond, unauthorized};
use super::{GatewayOutcome, InHalf, Shared};
use crate::gateway::http;
use crate::gateway::rpc::pdu::{self, Body, Pdu};
use crate::gateway::rpc::rts::{Cookie, Rts};
use crate::gateway::rpc::{RPC_IN_DATA, RPC_OUT_DATA};

/// Requests one connection may make before it becomes a channel.
const MAX_REQUESTS: usize = 16;
/// [MS-RPCH] 2.1.2.1.2 the OUT channel request's body is CONN/A1 (76 bytes); a channel replacement's is
/// 120. Anything longer is not read.
const MAX_OUT_BODY: usize = 120;
/// The receive window of the IN channel the gateway announces in CONN/C2 ([MS-RPCH] 3.2.3.5.5).
const IN_WINDOW: u32 = 0x1_0000;
/// [MS-RPCH] 2.2.3.5.3 the connection timeout announced (ms).
const CONNECTION_TIMEOUT: u32 = 120_000;
/// The largest fragment the gateway sends and takes ([C706] 12.6.3.1 max_xmit_frag, max_recv_frag).
const MAX_FRAG: u16 = 0x0ff8;
/// The stub of one response fragment: it fits MAX_FRAG with the header, padding, trailer and verifier.
const MAX_STUB: usize = 4000;
/// The longest RPC PDU read (a fragment's length is a u16).
const MAX_PDU: usize = 0xffff;

/// One channel's connection: its authentication ([MS-RPCH] 3.2.3.5.1, NTLM per channel), then the OUT
/// channel waits for its IN channel and runs the session, the IN channel joins it.
pub(super) async fn channel(
    shared: &Shared,
    mut conn: Conn,
    first: http::Request,
    mut auth: ServerAuth,
) -> GatewayOutcome {
    let limit = shared.config.read_timeout;
    let offered = shared.config.offered();
    let mut req = first;
    for _ in 0..MAX_REQUESTS {
        let in_channel = req.method == RPC_IN_DATA;
        if !in_channel && req.method != RPC_OUT_DATA {
            let _ = respond(&mut conn, 400, "Bad Request", &[]).await;
            return GatewayOutcome::Failed(format!("{} on an RPC channel", req.method));
        }
        let len = http::header(&req.headers, "Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let verdict = http::header(&req.headers, "Authorization").map(|value| {
            auth.step(
                value,
                &offered,
                &shared.config.identity,
                shared.config.kerberos(),
            )
        });
        match verdict {
            Some(Verdict::Authenticated(_))
                if shared.config.profile.fault == Some(GatewayFault::AuthRefused) =>
            {
                // The 401 on a connection kept open, as an RPC proxy answers each channel: the client
                // reads it on its OUT channel ([MS-RPCH] 3.2.2.5.2) and leaves.
                let _ = unauthorized(&mut conn, &offered, None, false).await;
                linger(&mut conn.stream, limit).await;
                return GatewayOutcome::Refused(
                    "401: the gateway refuses these credentials (fault)".to_owned(),
                );
            }
            Some(Verdict::Authenticated(_)) => {
                return if in_channel {
                    in_half(shared, conn).await
                } else {
                    out_half(shared, conn, len).await
                };
            }
            Some(Verdict::Refused(why)) | Some(Verdict::RefusedWith(_, why)) => {
                let _ = unauthorized(&mut conn, &offered, None, true).await;
                return GatewayOutcome::Refused(format!("401: {why}"));
            }
            challenge => {
                // A leg of the authentication: its body (when short) is dropped; a channel's body is not
                // read before the channel is authenticated ([MS-RPCH] 3.2.3.5.1).
                let close = len > MAX_OUT_BODY as u64;
                if !close {
                    let need = usize::try_from(len).unwrap_or(0);
                    if let Err(why) = fill(&mut conn.stream, &mut conn.buf, need, limit).await {
                        return GatewayOutcome::Failed(why);
                    }
                    conn.buf.drain(..need);
                }
                let value = match challenge {
                    Some(Verdict::Challenge(v)) => Some(v),
                    _ => None,
                };
                let _ = unauthorized(&mut conn, &offered, value, close).await;
                if close {
                    return GatewayOutcome::Refused(
                        "401: an RPC channel's body before its authentication".to_owned(),
                    );
                }
            }
        }
        req = match read_request(&mut conn, limit).await {
            Ok(r) => r,
            Err(why) => return GatewayOutcome::Failed(why),
        };
    }
    GatewayOutcome::Failed(format!("{MAX_REQUESTS} requests without a channel"))
}

/// The longest the gateway waits for a client to leave after it refused it.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what the client still sends until it leaves (or [`LINGER`], at most `limit`, passed).
async fn linger(stream: &mut ServerTls, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit.min(LINGER);
    let mut chunk = vec![0u8; 16 * 1024];
    // INVARIANT: bounded by the deadline.
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
    }
}

/// Reads until `buf` holds `need` bytes.
async fn fill(
    stream: &mut ServerTls,
    buf: &mut Vec<u8>,
    need: usize,
    limit: std::time::Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = vec![0u8; 16 * 1024];
    // INVARIANT: each pass reads at least one byte or returns; `need` is bounded by the callers.
    while buf.len() < need {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            _ => return Err("the client's bytes did not come".to_owned()),
        }
    }
    Ok(())
}

/// The key of a virtual connection in the gateway's pairing table.
fn pairing_key(cookie: &Cookie) -> String {
    format!("rpc:{}", hex::encode(cookie))
}

/// Reads one whole PDU from `buf` and `stream`; `take`: drops its bytes from `buf`, else leaves them.
async fn read_pdu(
    stream: &mut ServerTls,
    buf: &mut Vec<u8>,
    limit: std::time::Duration,
    take: bool,
) -> Result<Pdu, String> {
    fill(stream, buf, pdu::HEADER_LEN, limit).await?;
    let len = match pdu::pdu_len(buf) {
        Ok(Some(l)) => l,
        Ok(None) => return Err("no RPC PDU".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    fill(stream, buf, len, limit).await?;
    let pdu = Pdu::decode(buf.get(..len).unwrap_or_default()).map_err(|e| e.to_string());
    if take {
        buf.drain(..len);
    }
    pdu
}

/// The IN channel: CONN/B1 names its virtual connection; the OUT channel waiting for it takes it.
async fn in_half(shared: &Shared, mut conn: Conn) -> GatewayOutcome {
    let limit = shared.config.read_timeout;
    // The OUT channel reads CONN/B1 again, from the bytes handed to it.
    let b1 = match read_pdu(&mut conn.stream, &mut conn.buf, limit, false).await {
        Ok(p) => p,
        Err(why) => return GatewayOutcome::Failed(format!("no CONN/B1: {why}")),
    };
    let Body::Rts(rts) = &b1.body else {
        return GatewayOutcome::Failed(format!("a {} where CONN/B1 belongs", b1.name()));
    };
    let Some(vc) = rts.cookies().first().copied() else {
        return GatewayOutcome::Failed("a CONN/B1 without a cookie".to_owned());
    };
    match shared.out_channel_for(&pairing_key(&vc)).await {
        Some(tx) => {
            let _ = tx.send((conn.stream, conn.buf));
            GatewayOutcome::Paired
        }
        None => GatewayOutcome::Failed(
            "no RPC_OUT_DATA channel came for this RPC_IN_DATA channel".to_owned(),
        ),
    }
}

/// The OUT channel: CONN/A1, 200, then its IN channel, CONN/A3 and CONN/C2, and the session.
async fn out_half(shared: &Shared, mut conn: Conn, len: u64) -> GatewayOutcome {
    let limit = shared.config.read_timeout;
    if len > MAX_OUT_BODY as u64 || len < pdu::HEADER_LEN as u64 {
        return GatewayOutcome::Failed(format!("an RPC_OUT_DATA body of {len} bytes"));
    }
    let a1 = match read_pdu(&mut conn.stream, &mut conn.buf, limit, true).await {
        Ok(p) => p,
        Err(why) => return GatewayOutcome::Failed(format!("no CONN/A1: {why}")),
    };
    let (vc, window) = match &a1.body {
        Body::Rts(rts) if rts.name() == "CONN/A1" => (
            rts.cookies().first().copied(),
            rts.receive_window().unwrap_or(IN_WINDOW),
        ),
        _ => return GatewayOutcome::Failed(format!("a {} where CONN/A1 belongs", a1.name())),
    };
    let Some(vc) = vc else {
        return GatewayOutcome::Failed("a CONN/A1 without a cookie".to_owned());
    };
    // [MS-RPCH] 3.2.3.5.2 the OUT channel's response: its body is the stream of PDUs.
    let headers = [
        ("Content-Type", "application/rpc".to_owned()),
        ("Content-Length", "1073741824".to_owned()),
    ];
    if respond(&mut conn, 200, "Success", &headers).await.is_err() {
        return GatewayOutcome::Failed("the client went away".to_owned());
    }
    let key = pairing_key(&vc);
    let (tx, rx) = oneshot::channel::<InHalf>();
    if let Ok(mut p) = shared.pairing.lock() {
        p.waiting.insert(key.clone(), tx);
    }
    let half = tokio::time::timeout(limit, rx).await;
    if let Ok(mut p) = shared.pairing.lock() {
        p.waiting.remove(&key);
    }
    let Ok(Ok((mut in_stream, mut in_buf))) = half else {
        return GatewayOutcome::Failed(
            "no RPC_IN_DATA channel came for this RPC_OUT_DATA channel".to_owned(),
        );
    };
    let in_cookie = match read_pdu(&mut in_stream, &mut in_buf, limit, true).await {
        Ok(Pdu {
            body: Body::Rts(rts),
            ..
        }) => rts.cookies().get(1).copied().unwrap_or_default(),
        _ => return GatewayOutcome::Failed("the IN channel's CONN/B1 went away".to_owned()),
    };
    let mut out = conn.stream;
    let mut start = Pdu::rts(Rts::conn_a3(CONNECTION_TIMEOUT)).encode();
    start.extend_from_slice(&Pdu::rts(Rts::conn_c2(IN_WINDOW, CONNECTION_TIMEOUT)).encode());
    if out.write_all(&start).await.is_err() || out.flush().await.is_err() {
        return GatewayOutcome::Failed("the client went away".to_owned());
    }
    session::Session::new(shared, out, in_stream, in_buf, in_cookie, window)
        .run()
        .await
}
