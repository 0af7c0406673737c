//! One virtual connection after CONN/C2: the bind, the TsProxy calls and the relay ([MS-TSGU] 3.2.6).

use std::io;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tracing::debug;

use super::super::channel::{GatewayFault, ServerTls};
use super::super::{GatewayOutcome, Shared};
use super::security::Security;
use super::{IN_WINDOW, MAX_PDU, MAX_STUB, linger};
use crate::codes::gateway::{
    E_PROXY_CAPABILITYMISMATCH, E_PROXY_MAXCONNECTIONSREACHED, E_PROXY_NAP_ACCESSDENIED,
    E_PROXY_RAP_ACCESSDENIED, E_PROXY_TS_CONNECTFAILED, ERROR_ACCESS_DENIED, ERROR_SUCCESS,
};
use crate::codes::{self, Table};
use crate::gateway::rpc::ndr::{Call, Handle, Reply};
use crate::gateway::rpc::pdu::{self, Auth, Body, NTLM_VERIFIER_LEN, Pdu, pfc};
use crate::gateway::rpc::rts::{Cookie, Rts};

/// [C706] Appendix E nca_s_proto_error: a request the gateway cannot read.
const NCA_S_PROTO_ERROR: u32 = 0x1c01_000b;
/// [MS-TSGU] 2.2.5.2.21 TSG_NAP_CAPABILITY_IDLE_TIMEOUT, the one NAP capability the gateway takes.
const NAP_IDLE_TIMEOUT: u32 = 0x02;

/// What one PDU from the client leads to.
enum Next {
    Go,
    End(GatewayOutcome),
}

/// One virtual connection after CONN/C2.
pub(super) struct Session<'a> {
    shared: &'a Shared,
    out: ServerTls,
    in_: ServerTls,
    in_buf: Vec<u8>,
    ntlm: Option<Security>,
    /// [MS-RPCE] 3.3.1.5.2 the auth_context_id of the bind, and the signature sequence numbers.
    send_seq: u32,
    recv_seq: u32,
    /// [MS-RPCH] 3.2.3.5.5 the IN channel's flow control: its cookie, the request bytes taken and acked.
    in_cookie: Cookie,
    in_received: u32,
    in_acked: u32,
    /// The client's receive window on the OUT channel (CONN/A1), the response bytes sent and acked.
    out_window: u32,
    out_sent: u32,
    out_acked: u32,
    tunnel: Option<Handle>,
    channel: Option<Handle>,
    /// The call id of TsProxySetupReceivePipe, while its answer streams.
    pipe: Option<u32>,
    pipe_started: bool,
    target: Option<TcpStream>,
    target_name: String,
    data_calls: u32,
    /// Why the tunnel ends, once it does on the gateway's side: the client is left time to close the
    /// channel and the tunnel ([MS-TSGU] 3.2.6.3).
    closing: Option<&'static str>,
}

/// A context handle: its type (0) and a random UUID.
fn new_handle() -> Handle {
    let mut h = [0u8; 20];
    let uuid: [u8; 16] = rand::random();
    if let Some(tail) = h.get_mut(4..) {
        tail.copy_from_slice(&uuid);
    }
    h
}

/// A response fragment of `call_id` with `flags`, holding `stub`.
fn response(call_id: u32, flags: u8, stub: Vec<u8>) -> Pdu {
    Pdu {
        flags,
        call_id,
        body: Body::Response {
            alloc_hint: u32::try_from(stub.len()).unwrap_or(0),
            context_id: 0,
            cancel_count: 0,
            stub,
        },
        auth: None,
    }
}

/// Whether the target closed right behind the bytes just read from it: one more read that does not wait;
/// what it brings is added to `data`.
fn closed_behind(target: Option<&TcpStream>, data: &mut Vec<u8>, chunk: &mut [u8]) -> bool {
    let Some(t) = target else {
        return false;
    };
    match t.try_read(chunk) {
        Ok(0) => true,
        Ok(n) => {
            data.extend_from_slice(chunk.get(..n).unwrap_or_default());
            false
        }
        Err(_) => false,
    }
}

/// Reads from the target once there is one; never completes before.
async fn read_target(target: &mut Option<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match target {
        Some(t) => t.read(buf).await,
        None => std::future::pending().await,
    }
}

impl<'a> Session<'a> {
    pub(super) fn new(
        shared: &'a Shared,
        out: ServerTls,
        in_: ServerTls,
        in_buf: Vec<u8>,
        in_cookie: Cookie,
        out_window: u32,
    ) -> Session<'a> {
        Session {
            shared,
            out,
            in_,
            in_buf,
            ntlm: None,
            send_seq: 0,
            recv_seq: 0,
            in_cookie,
            in_received: 0,
            in_acked: 0,
            out_window,
            out_sent: 0,
            out_acked: 0,
            tunnel: None,
            channel: None,
            pipe: None,
            pipe_started: false,
            target: None,
            target_name: String::new(),
            data_calls: 0,
            closing: None,
        }
    }

    pub(super) async fn run(mut self) -> GatewayOutcome {
        let config = &self.shared.config;
        let mut chunk = vec![0u8; 16 * 1024];
        let mut from_target = vec![0u8; 16 * 1024];
        // INVARIANT: each pass handles one PDU, one read or ends; the read timeout (before the channel) and
        // the idle limit (after) bound a silent tunnel.
        loop {
            match pdu::pdu_len(&self.in_buf) {
                Ok(Some(len)) if self.in_buf.len() >= len => {
                    let bytes: Vec<u8> = self.in_buf.drain(..len).collect();
                    match self.on_pdu(&bytes).await {
                        Next::Go => continue,
                        Next::End(o) => return o,
                    }
                }
                Ok(_) => {}
                Err(e) => return self.fail(format!("a PDU that does not frame: {e}")).await,
            }
            if self.in_buf.len() > MAX_PDU {
                return self.fail("a PDU longer than a fragment".to_owned()).await;
            }
            let window_open = self.out_sent.wrapping_sub(self.out_acked) < self.out_window;
            let waiting = if self.closing.is_some() {
                config.read_timeout.min(super::LINGER)
            } else if self.target.is_some() {
                config.idle_limit
            } else {
                config.read_timeout
            };
            tokio::select! {
                read = self.in_.read(&mut chunk) => match read {
                    Ok(n) if n > 0 => self.in_buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                    _ => return self.ended("the client left").await,
                },
                read = read_target(&mut self.target, &mut from_target), if self.pipe.is_some() && window_open => match read {
                    Ok(n) if n > 0 => {
                        let mut data = from_target.get(..n).unwrap_or_default().to_vec();
                        let sent = if closed_behind(self.target.as_ref(), &mut data, &mut from_target) {
                            self.target_closed(&data).await
                        } else if self.pipe_data(&data, None).await.is_err() {
                            Err(self.ended("the client went away").await)
                        } else {
                            Ok(())
                        };
                        if let Err(ended) = sent {
                            return ended;
                        }
                    }
                    _ => {
                        if let Err(ended) = self.target_closed(&[]).await {
                            return ended;
                        }
                    }
                },
                () = tokio::time::sleep(waiting) => return self.ended("the idle limit passed").await,
            }
        }
    }

    /// [MS-TSGU] 3.2.6.2.2 the target closed: its `last` bytes and the receive pipe's end, in one write (a
    /// FreeRDP 2 client that reads the target's TLS close_notify before the pipe's end reports a transport
    /// error); the client then closes the channel and the tunnel. `closing` is set once the pipe's end is
    /// written, and the tunnel's end then says so.
    async fn target_closed(&mut self, last: &[u8]) -> Result<(), GatewayOutcome> {
        self.target = None;
        if self.pipe_data(last, Some(ERROR_SUCCESS)).await.is_err() {
            return Err(self
                .ended("the target closed and the client went away")
                .await);
        }
        self.closing = Some("the target closed");
        Ok(())
    }

    async fn on_pdu(&mut self, bytes: &[u8]) -> Next {
        let pdu = match Pdu::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                return Next::End(self.fail(format!("a PDU that does not decode: {e}")).await);
            }
        };
        match pdu.body {
            Body::Rts(rts) => {
                for c in &rts.commands {
                    if let crate::gateway::rpc::rts::Command::FlowControlAck {
                        bytes_received,
                        ..
                    } = c
                    {
                        self.out_acked = *bytes_received;
                    }
                }
                Next::Go
            }
            Body::Bind { ref contexts, .. } => {
                let contexts = contexts.clone();
                self.bind(pdu.call_id, pdu.flags, &contexts, pdu.auth).await
            }
            Body::Auth3 { .. } => {
                let outcome = match (self.ntlm.as_mut(), pdu.auth) {
                    (Some(sec), Some(auth)) => sec.accept(&auth.value).map(|_| ()),
                    _ => Err("an rpc_auth_3 without a bind".to_owned()),
                };
                if let Err(why) = outcome {
                    debug!(%why, "the bind's NTLM failed");
                    self.ntlm = None;
                }
                Next::Go
            }
            Body::Request {
                opnum, ref stub, ..
            } => {
                self.in_received = self
                    .in_received
                    .wrapping_add(u32::try_from(bytes.len()).unwrap_or(0));
                if self.in_received.wrapping_sub(self.in_acked) >= IN_WINDOW / 2 {
                    let ack = Rts::flow_control_ack(self.in_received, IN_WINDOW, self.in_cookie);
                    if self.write(&Pdu::rts(ack).encode()).await.is_err() {
                        return Next::End(self.ended("the client went away").await);
                    }
                    self.in_acked = self.in_received;
                }
                if let Err(why) = self.verify(bytes, pdu.auth.as_ref()) {
                    debug!(%why, "a request refused");
                    return self.refuse(pdu.call_id, ERROR_ACCESS_DENIED, &why).await;
                }
                match Call::decode(opnum, stub) {
                    Ok(call) => self.call(pdu.call_id, call).await,
                    Err(e) => {
                        let why = format!(
                            "a {} that does not decode: {e}",
                            crate::gateway::rpc::ndr::method(opnum)
                        );
                        self.refuse(pdu.call_id, NCA_S_PROTO_ERROR, &why).await
                    }
                }
            }
            _ => Next::End(self.fail(format!("a {} from the client", pdu.name())).await),
        }
    }

    /// [C706] 12.6.4.4 the bind_ack: NDR accepted, bind time feature negotiation acknowledged, the NTLM
    /// CHALLENGE in its auth value.
    async fn bind(
        &mut self,
        call_id: u32,
        flags: u8,
        contexts: &[pdu::Context],
        auth: Option<Auth>,
    ) -> Next {
        let Some(auth) = auth.filter(|a| a.auth_type == pdu::AUTH_TYPE_WINNT) else {
            let nak = Pdu {
                flags: pfc::WHOLE,
                call_id,
                body: Body::BindNak { reason: 0 },
                auth: None,
            };
            let _ = self.write(&nak.encode()).await;
            return Next::End(GatewayOutcome::Refused(
                "a bind without NTLM (bind_nak)".to_owned(),
            ));
        };
        let token = match Security::new(self.shared).and_then(|mut s| {
            let t = s.accept(&auth.value)?;
            self.ntlm = Some(s);
            Ok(t)
        }) {
            Ok(t) => t,
            Err(why) => return Next::End(self.fail(why).await),
        };
        let ack = super::security::bind_ack(call_id, flags, contexts, &auth, token);
        match self.write(&ack.encode()).await {
            Ok(()) => Next::Go,
            Err(_) => Next::End(self.ended("the client went away").await),
        }
    }

    /// Checks a request's verifier ([MS-RPCE] 3.3.1.5.2.2: the signature over the PDU up to it).
    fn verify(&mut self, bytes: &[u8], auth: Option<&Auth>) -> Result<(), String> {
        let Some(sec) = self.ntlm.as_mut().filter(|s| s.complete) else {
            return Err("a request on an association the bind did not authenticate".to_owned());
        };
        if auth.is_none_or(|a| a.value.len() != NTLM_VERIFIER_LEN) {
            return Err("a request without an NTLM verifier".to_owned());
        }
        let seq = self.recv_seq;
        self.recv_seq = self.recv_seq.wrapping_add(1);
        sec.verify(bytes, seq)
    }

    /// Signs and sends one PDU ([MS-RPCE] 3.3.1.5.2.2); without an authenticated bind, its verifier is
    /// zeros.
    async fn send_signed(&mut self, pdu: Pdu) -> io::Result<()> {
        let bytes = self.seal(pdu)?;
        self.write(&bytes).await
    }

    /// One PDU's bytes, signed, counted against the OUT channel's window: sent by the caller, in order.
    fn seal(&mut self, mut pdu: Pdu) -> io::Result<Vec<u8>> {
        pdu.auth = Some(Auth::ntlm(0, vec![0; NTLM_VERIFIER_LEN]));
        let mut bytes = pdu.encode();
        if let Some(sec) = self.ntlm.as_mut().filter(|s| s.complete) {
            let seq = self.send_seq;
            self.send_seq = self.send_seq.wrapping_add(1);
            sec.sign(&mut bytes, seq).map_err(io::Error::other)?;
        }
        if matches!(pdu.body, Body::Response { .. }) {
            self.out_sent = self
                .out_sent
                .wrapping_add(u32::try_from(bytes.len()).unwrap_or(0));
        }
        Ok(bytes)
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes).await?;
        self.out.flush().await
    }

    async fn reply(&mut self, call_id: u32, reply: &Reply) -> io::Result<()> {
        self.respond(call_id, pfc::WHOLE, reply.encode()).await
    }

    /// A response fragment of `call_id` with `flags`, holding `stub`, signed and sent.
    async fn respond(&mut self, call_id: u32, flags: u8, stub: Vec<u8>) -> io::Result<()> {
        self.send_signed(response(call_id, flags, stub)).await
    }

    /// [MS-TSGU] 3.2.6.2.2 the target's bytes as fragments of the receive pipe's answer; with `last`, the
    /// pipe's end follows in the same write.
    async fn pipe_data(&mut self, data: &[u8], last: Option<u32>) -> io::Result<()> {
        let Some(call_id) = self.pipe else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(data.len() + 64);
        for part in data.chunks(MAX_STUB) {
            let pdu = response(call_id, self.first_frag(), part.to_vec());
            bytes.extend_from_slice(&self.seal(pdu)?);
        }
        // [MS-TSGU] 2.2.9.4.3 the receive pipe's last fragment: its HRESULT.
        if let Some(status) = last {
            self.pipe = None;
            let flags = pfc::LAST_FRAG | self.first_frag();
            let end = response(call_id, flags, Reply::Status(status).encode());
            bytes.extend_from_slice(&self.seal(end)?);
        }
        self.write(&bytes).await
    }

    /// The receive pipe's end, with its HRESULT (nothing when there is no pipe or it has ended).
    async fn end_pipe(&mut self, status: u32) -> io::Result<()> {
        self.pipe_data(&[], Some(status)).await
    }

    /// PFC_FIRST_FRAG for the receive pipe's first fragment, else nothing.
    fn first_frag(&mut self) -> u8 {
        let first = !self.pipe_started;
        self.pipe_started = true;
        if first { pfc::FIRST_FRAG } else { 0 }
    }

    /// One TsProxy call, answered or refused as the scenario's fault says.
    async fn call(&mut self, call_id: u32, call: Call) -> Next {
        let fault = self.shared.config.profile.fault;
        let name = call.name();
        let answered = match call {
            Call::CreateTunnel { caps } => {
                if fault == Some(GatewayFault::CapabilityMismatch) {
                    return self.refuse(call_id, E_PROXY_CAPABILITYMISMATCH, "").await;
                }
                if fault == Some(GatewayFault::MaxConnections) {
                    return self
                        .refuse(call_id, E_PROXY_MAXCONNECTIONSREACHED, "")
                        .await;
                }
                let tunnel = new_handle();
                self.tunnel = Some(tunnel);
                let reply = Reply::CreateTunnel {
                    tunnel,
                    tunnel_id: 1,
                    caps: Some(caps & NAP_IDLE_TIMEOUT),
                    status: ERROR_SUCCESS,
                };
                self.reply(call_id, &reply).await
            }
            Call::AuthorizeTunnel { .. } => {
                if fault == Some(GatewayFault::CapDenied) {
                    return self.refuse(call_id, E_PROXY_NAP_ACCESSDENIED, "").await;
                }
                let reply = Reply::AuthorizeTunnel {
                    idle_timeout: Some(0),
                    status: ERROR_SUCCESS,
                };
                self.reply(call_id, &reply).await
            }
            // [MS-TSGU] 3.2.6.1.3 the asynchronous message request stays pending: the gateway has no
            // message. Its cancel is not answered either (FreeRDP 2 reads an answer to it as another
            // call's).
            Call::MakeTunnelCall { .. } => Ok(()),
            Call::CreateChannel {
                resources, port, ..
            } => return self.create_channel(call_id, resources, port).await,
            Call::SetupReceivePipe { .. } => {
                self.pipe = Some(call_id);
                Ok(())
            }
            Call::SendToServer { buffers, .. } => {
                self.data_calls = self.data_calls.saturating_add(1);
                if fault == Some(GatewayFault::DropMidHandshake) && self.data_calls == 2 {
                    // Dropped: the sockets close without TLS close_notify, a pipe's end or a fault.
                    return Next::End(GatewayOutcome::Relayed {
                        target: self.target_name.clone(),
                        transport: "RPC",
                        end: "dropped by the gateway (fault)".to_owned(),
                    });
                }
                let mut written = true;
                if let Some(t) = self.target.as_mut() {
                    for b in &buffers {
                        if t.write_all(b).await.is_err() {
                            written = false;
                            break;
                        }
                    }
                }
                if !written {
                    let _ = self.end_pipe(ERROR_SUCCESS).await;
                    return Next::End(self.ended("the target went away").await);
                }
                self.reply(call_id, &Reply::Status(ERROR_SUCCESS)).await
            }
            Call::CloseChannel { channel } => {
                let _ = self.end_pipe(ERROR_SUCCESS).await;
                if let Some(mut t) = self.target.take() {
                    let _ = t.shutdown().await;
                }
                self.reply(
                    call_id,
                    &Reply::Closed {
                        handle: channel,
                        status: ERROR_SUCCESS,
                    },
                )
                .await
            }
            Call::CloseTunnel { tunnel } => {
                let _ = self
                    .reply(
                        call_id,
                        &Reply::Closed {
                            handle: tunnel,
                            status: ERROR_SUCCESS,
                        },
                    )
                    .await;
                return Next::End(self.ended("the client closed the tunnel").await);
            }
        };
        debug!(call = name, "answered");
        match answered {
            Ok(()) => Next::Go,
            Err(_) => Next::End(self.ended("the client went away").await),
        }
    }

    /// [MS-TSGU] 3.2.6.1.4 the channel: the resource policy, then the connection to the target.
    async fn create_channel(&mut self, call_id: u32, resources: Vec<String>, port: u16) -> Next {
        let resource = resources.into_iter().next().unwrap_or_default();
        self.target_name = format!("{resource}:{port}");
        let fault = self.shared.config.profile.fault;
        if fault == Some(GatewayFault::RapDenied) || !super::super::allowed(&resource) {
            let why = format!(" for {}", self.target_name);
            return self.refuse(call_id, E_PROXY_RAP_ACCESSDENIED, &why).await;
        }
        let host = resource.trim_matches(['[', ']']).to_owned();
        let connected = tokio::time::timeout(
            self.shared.config.read_timeout,
            TcpStream::connect((host.as_str(), port)),
        )
        .await;
        let tcp = match connected {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                let why = format!(" ({}: {e})", self.target_name);
                return self.refuse(call_id, E_PROXY_TS_CONNECTFAILED, &why).await;
            }
            Err(_) => {
                let why = format!(" ({} did not answer)", self.target_name);
                return self.refuse(call_id, E_PROXY_TS_CONNECTFAILED, &why).await;
            }
        };
        let _ = tcp.set_nodelay(true);
        self.target = Some(tcp);
        let channel = new_handle();
        self.channel = Some(channel);
        let reply = Reply::CreateChannel {
            channel,
            channel_id: 1,
            status: ERROR_SUCCESS,
        };
        match self.reply(call_id, &reply).await {
            Ok(()) => Next::Go,
            Err(_) => Next::End(self.ended("the client went away").await),
        }
    }

    /// [MS-TSGU] 3.2.6 a call refused: a fault PDU whose status is the HRESULT, as a Windows gateway
    /// raises it, then the end of both channels.
    async fn refuse(&mut self, call_id: u32, code: u32, detail: &str) -> Next {
        let fault = Pdu {
            flags: pfc::WHOLE,
            call_id,
            body: Body::Fault {
                context_id: 0,
                cancel_count: 0,
                status: code,
            },
            auth: None,
        };
        let _ = self.send_signed(fault).await;
        // The client reads the fault and leaves; the gateway closes after it (or after a while).
        let _ = self.out.flush().await;
        linger(&mut self.in_, self.shared.config.read_timeout).await;
        self.close().await;
        let name = codes::Display(Table::Gateway, code);
        Next::End(GatewayOutcome::Refused(format!("{name}{detail}")))
    }

    /// An orderly end of both channels: TLS close_notify and FIN.
    async fn close(&mut self) {
        if let Some(mut t) = self.target.take() {
            let _ = t.shutdown().await;
        }
        let _ = self.out.shutdown().await;
        let _ = self.in_.shutdown().await;
    }

    async fn ended(&mut self, why: &str) -> GatewayOutcome {
        self.close().await;
        let why = self.closing.unwrap_or(why);
        if self.channel.is_some() {
            GatewayOutcome::Relayed {
                target: self.target_name.clone(),
                transport: "RPC",
                end: why.to_owned(),
            }
        } else {
            GatewayOutcome::Failed(format!("{why} before the channel"))
        }
    }

    async fn fail(&mut self, why: String) -> GatewayOutcome {
        self.close().await;
        GatewayOutcome::Failed(why)
    }
}
