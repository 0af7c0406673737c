//! The probe's gateway phases over RPC over HTTP ([MS-TSGU] 3.2 over [MS-RPCH] 3.2.2), as FreeRDP and
//! mstsc go through them:
//!
//! - `gateway_auth`: the RPC_IN_DATA and RPC_OUT_DATA channels, each on its own connection with its own
//!   HTTP authentication (anonymous first, then the legs of the scheme; the last request announces the
//!   channel's body: 1 GiB for IN, CONN/A1 for OUT), CONN/B1 on the IN channel, and the OUT channel's 200.
//! - `gateway_tunnel`: CONN/A3 and CONN/C2, the bind with NTLM at packet integrity (bind, bind_ack,
//!   rpc_auth_3), TsProxyCreateTunnel, TsProxyAuthorizeTunnel, TsProxyCreateChannel and
//!   TsProxySetupReceivePipe; each answer's HRESULT checked (a fault's status, a response's return value).
//!
//! Every PDU goes into the trace through [`record::rpc_pdu`].

use super::{Conn, Dialer, Refused};
use crate::gateway::auth::ClientAuth;
use crate::gateway::http::{self, Response};
use crate::gateway::record;
use crate::gateway::rpc::link::{Association, OUT_WINDOW};
use crate::gateway::rpc::ndr::{Call, Reply};
use crate::gateway::rpc::ntlm::BindAuth;
use crate::gateway::rpc::pdu::{
    self, Auth, BTFN_SYNTAX, Body, Context, NDR_SYNTAX, Pdu, TSGU_SYNTAX, pfc,
};
use crate::gateway::rpc::rts::{Cookie, Rts};
use crate::gateway::rpc::{RPC_IN_DATA, RPC_OUT_DATA};
use crate::gateway::tunnel::Tunnel;
use crate::trace::{EventKind, Fact, Side};

/// [MS-RPCH] 2.1.2.1.1 the IN channel request's Content-Length: its body is the channel's lifetime.
const IN_CONTENT_LENGTH: u64 = 0x4000_0000;
/// [MS-RPCH] 2.2.3.5.6 the keepalive interval announced in CONN/B1 (ms).
const KEEPALIVE: u32 = 300_000;
/// The fragment sizes the client offers in its bind.
const MAX_FRAG: u16 = 0x0ff8;
/// [MS-TSGU] 2.2.5.2.21 the NAP capabilities offered: quarantine SoH, idle timeout, consent and service
/// messages, as the HTTP transport offers them.
const NAP_CAPS: u32 = 0x01 | 0x02 | 0x04 | 0x08;
/// The most PDUs read while waiting for one answer.
const MAX_PDUS: usize = 8;

/// The two channels, authenticated, and the OUT channel's cookie.
pub(super) struct Channels {
    in_: Conn,
    out: Conn,
    out_cookie: Cookie,
}

impl Dialer<'_> {
    /// `gateway_auth` over RPC: the IN channel on `first`, the OUT channel on a second connection.
    pub(super) async fn rpc_channels(&mut self, first: Conn) -> Result<Channels, Refused> {
        let connection: Cookie = rand::random();
        let in_cookie: Cookie = rand::random();
        let out_cookie: Cookie = rand::random();
        let association: Cookie = rand::random();
        let (mut in_, _) = self
            .rpc_exchange(first, RPC_IN_DATA, IN_CONTENT_LENGTH, None)
            .await?;
        let b1 = Pdu::rts(Rts::conn_b1(
            connection,
            in_cookie,
            IN_CONTENT_LENGTH as u32,
            KEEPALIVE,
            association,
        ))
        .encode();
        self.write(&mut in_, &b1).await?;
        self.record_rpc(Side::Client, &b1, None);
        let conn = self.dial(false).await?;
        let a1 = Pdu::rts(Rts::conn_a1(connection, out_cookie, OUT_WINDOW)).encode();
        let (out, resp) = self
            .rpc_exchange(conn, RPC_OUT_DATA, a1.len() as u64, Some(&a1))
            .await?;
        if resp.is_none_or(|r| r.status != 200) {
            return Err(Refused);
        }
        self.trace.fact(
            Fact::GatewayTransport,
            "RPC over HTTP (RPC_IN_DATA and RPC_OUT_DATA)",
        );
        Ok(Channels {
            in_,
            out,
            out_cookie,
        })
    }

    /// One channel's request, authenticated as the gateway asks (as [`Dialer::exchange`] does); the last
    /// request announces `body_len` and, on the OUT channel, carries `body`. The IN channel's last request
    /// gets no answer: its body is the stream of the client's PDUs.
    async fn rpc_exchange(
        &mut self,
        mut conn: Conn,
        method: &str,
        body_len: u64,
        body: Option<&[u8]>,
    ) -> Result<(Conn, Option<Response>), Refused> {
        let mut auth: Option<ClientAuth> = None;
        let mut authorization = None;
        if let Some(scheme) = self.cfg.auth {
            let mut a = self.new_auth(scheme).await?;
            authorization = Some(self.step(&mut a, None)?);
            auth = Some(a);
        }
        // INVARIANT: a scheme takes at most three legs; the count bounds a gateway that keeps asking.
        for _ in 0..6 {
            let last = auth.as_ref().is_some_and(|a| a.complete);
            let len = if last { body_len } else { 0 };
            self.send_rpc_request(&mut conn, method, authorization.take(), len)
                .await?;
            if last {
                self.note_scheme(auth.as_ref());
                match body {
                    None => return Ok((conn, None)),
                    Some(b) => {
                        self.write(&mut conn, b).await?;
                        self.record_rpc(Side::Client, b, None);
                    }
                }
            }
            let resp = self.read_response(&mut conn).await?;
            self.trace
                .fact(Fact::HttpStatus, format!("{} {}", resp.status, resp.reason));
            if resp.status != 401 || last {
                return Ok((conn, Some(resp)));
            }
            let offered = http::challenges(&resp.headers);
            if auth.is_none() {
                let names: Vec<&str> = offered.iter().map(|(s, _)| s.as_str()).collect();
                self.trace.fact(Fact::GatewayAuthOffered, names.join(", "));
            }
            let next = match auth.as_mut() {
                None => match self.pick(&offered) {
                    Some(scheme) => {
                        let mut a = self.new_auth(scheme).await?;
                        let header = self.step(&mut a, None)?;
                        auth = Some(a);
                        Some(header)
                    }
                    None => None,
                },
                Some(_) => self.next_leg(&mut auth, &offered)?,
            };
            let Some(next) = next else {
                // The gateway refused the credentials, or there are none.
                self.note_scheme(auth.as_ref());
                return Ok((conn, Some(resp)));
            };
            self.skip_body(&mut conn, &resp).await?;
            if http::has_token(&resp.headers, "Connection", "close") {
                conn = self.dial(false).await?;
            }
            authorization = Some(next);
        }
        Err(Refused)
    }

    /// Writes a channel's request head and records it (its Authorization by scheme only).
    async fn send_rpc_request(
        &mut self,
        conn: &mut Conn,
        method: &str,
        authorization: Option<String>,
        len: u64,
    ) -> Result<(), Refused> {
        let uri = crate::gateway::rpc::uri(&self.cfg.host);
        let mut headers: Vec<(&str, String)> = vec![
            ("Connection", "Keep-Alive".to_owned()),
            ("Content-Type", "application/rpc".to_owned()),
            ("Content-Length", len.to_string()),
        ];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        let mut head = format!("{method} {uri} HTTP/1.1\r\n");
        head.push_str("Cache-Control: no-cache\r\nPragma: no-cache\r\nAccept: application/rpc\r\n");
        head.push_str("User-Agent: MSRPC\r\n");
        head.push_str(&format!("Host: {}\r\n", self.cfg.host));
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.write(conn, head.as_bytes()).await?;
        let at = self.clock.at();
        let req = http::Request {
            method: method.to_owned(),
            uri,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
        };
        self.trace
            .record_pdu(record::request_pdu(at, head.len(), &req));
        Ok(())
    }

    fn record_rpc(&mut self, from: Side, bytes: &[u8], opnum: Option<u16>) {
        let at = self.clock.at();
        self.trace
            .record_pdu(record::rpc_pdu(at, from, bytes, opnum));
    }

    /// The next whole PDU on the OUT channel.
    async fn read_rpc(&mut self, conn: &mut Conn, waiting: &str) -> Result<Vec<u8>, Refused> {
        let (deadline, which) = self.clock.deadline();
        let waiting_for = format!("the gateway's {waiting}");
        let mut chunk = vec![0u8; 16 * 1024];
        // INVARIANT: each pass returns or reads at least one byte; a PDU is at most 64 KiB; the deadline
        // bounds the time.
        loop {
            match pdu::pdu_len(&conn.buf) {
                Ok(Some(len)) if conn.buf.len() >= len => {
                    return Ok(conn.buf.drain(..len).collect());
                }
                Ok(_) => {}
                Err(e) => {
                    self.event(EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: "RPC PDU".to_owned(),
                        offset: Some(e.offset),
                        detail: e.to_string(),
                    });
                    return Err(Refused);
                }
            }
            self.read_more(conn, &mut chunk, (deadline, which), &waiting_for)
                .await?;
        }
    }

    fn protocol_error(&mut self, pdu: &str, detail: String) -> Refused {
        self.event(EventKind::ProtocolError {
            from: Side::Server,
            pdu: pdu.to_owned(),
            offset: None,
            detail,
        });
        Refused
    }

    /// `gateway_tunnel` over RPC: the virtual connection, the bind, the tunnel and the channel; the tunnel
    /// the RDP connection runs in.
    pub(super) async fn rpc_setup(&mut self, channels: Channels) -> Result<Tunnel, Refused> {
        let Channels {
            mut in_,
            mut out,
            out_cookie,
        } = channels;
        self.trace.fact(
            Fact::GatewayTarget,
            format!("{}:{}", self.resource, self.port),
        );
        for expected in ["CONN/A3", "CONN/C2"] {
            let bytes = self.read_rpc(&mut out, expected).await?;
            self.record_rpc(Side::Server, &bytes, None);
            match Pdu::decode(&bytes) {
                Ok(Pdu {
                    body: Body::Rts(rts),
                    ..
                }) if rts.name() == expected => {}
                Ok(other) => {
                    let name = other.name().to_owned();
                    return Err(self.protocol_error(
                        &name,
                        format!("the gateway sent it where its {expected} belongs"),
                    ));
                }
                Err(e) => return Err(self.protocol_error(expected, e.to_string())),
            }
        }
        let Some(credentials) = self.cfg.credentials.clone() else {
            self.event(EventKind::ClientLimit {
                detail: "RPC over HTTP binds with NTLM: it needs a gateway user (--gateway-user or --user)".to_owned(),
            });
            return Err(Refused);
        };
        let client_limit = |d: &mut Self, e: crate::gateway::auth::AuthError| {
            d.event(EventKind::ClientLimit {
                detail: e.to_string(),
            });
            Refused
        };
        let mut auth = match BindAuth::new(&credentials, &self.client_name, &self.cfg.host) {
            Ok(a) => a,
            Err(e) => return Err(client_limit(self, e)),
        };
        let negotiate = match auth.step(None) {
            Ok(t) => t,
            Err(e) => return Err(client_limit(self, e)),
        };
        let contexts = vec![
            Context {
                id: 0,
                abstract_syntax: TSGU_SYNTAX,
                transfer: vec![NDR_SYNTAX],
            },
            Context {
                id: 1,
                abstract_syntax: TSGU_SYNTAX,
                transfer: vec![BTFN_SYNTAX],
            },
        ];
        let bind = Pdu {
            flags: pfc::WHOLE | pfc::SUPPORT_HEADER_SIGN | pfc::CONC_MPX,
            call_id: 1,
            body: Body::Bind {
                max_xmit: MAX_FRAG,
                max_recv: MAX_FRAG,
                assoc_group: 0,
                contexts,
            },
            auth: Some(Auth::ntlm(0, negotiate)),
        }
        .encode();
        self.write(&mut in_, &bind).await?;
        self.record_rpc(Side::Client, &bind, None);
        let bytes = self.read_rpc(&mut out, "bind_ack").await?;
        self.record_rpc(Side::Server, &bytes, None);
        let (max_recv, challenge) = match Pdu::decode(&bytes) {
            Ok(Pdu {
                body: Body::BindAck {
                    max_recv, results, ..
                },
                auth: Some(a),
                ..
            }) if results.first().is_some_and(|r| r.result == 0) => (max_recv, a.value),
            Ok(Pdu {
                body: Body::BindNak { reason },
                ..
            }) => {
                return Err(self.protocol_error(
                    "bind_nak",
                    format!("the gateway refused the bind to TsProxy (reason {reason})"),
                ));
            }
            Ok(other) => {
                let name = other.name().to_owned();
                return Err(self.protocol_error(
                    &name,
                    "not a bind_ack that accepts TsProxy with NDR and carries NTLM's CHALLENGE"
                        .to_owned(),
                ));
            }
            Err(e) => return Err(self.protocol_error("bind_ack", e.to_string())),
        };
        let authenticate = match auth.step(Some(&challenge)) {
            Ok(t) => t,
            Err(e) => return Err(client_limit(self, e)),
        };
        let auth3 = Pdu {
            flags: pfc::WHOLE | pfc::CONC_MPX,
            call_id: 1,
            body: Body::Auth3 {
                max_xmit: MAX_FRAG,
                max_recv: MAX_FRAG,
            },
            auth: Some(Auth::ntlm(0, authenticate)),
        }
        .encode();
        self.write(&mut in_, &auth3).await?;
        self.record_rpc(Side::Client, &auth3, None);
        let mut link = Association::new(auth, 2, max_recv, out_cookie);
        let tunnel = match self
            .rpc_call(
                &mut link,
                &mut in_,
                &mut out,
                Call::CreateTunnel { caps: NAP_CAPS },
            )
            .await?
        {
            Reply::CreateTunnel {
                tunnel,
                tunnel_id,
                caps,
                ..
            } => {
                self.trace.fact(Fact::GatewayTunnelId, tunnel_id);
                if let Some(c) = caps {
                    self.trace
                        .fact(Fact::GatewayCapabilities, format!("0x{c:x}"));
                }
                tunnel
            }
            _ => return Err(Refused),
        };
        let machine = self.client_name.clone();
        if let Reply::AuthorizeTunnel {
            idle_timeout: Some(t),
            ..
        } = self
            .rpc_call(
                &mut link,
                &mut in_,
                &mut out,
                Call::AuthorizeTunnel { tunnel, machine },
            )
            .await?
        {
            self.trace
                .fact(Fact::GatewayIdleTimeout, format!("{t} min"));
        }
        let create = Call::CreateChannel {
            tunnel,
            resources: vec![self.resource.clone()],
            port: self.port,
        };
        let Reply::CreateChannel {
            channel,
            channel_id,
            ..
        } = self.rpc_call(&mut link, &mut in_, &mut out, create).await?
        else {
            return Err(Refused);
        };
        self.trace.fact(Fact::GatewayChannelId, channel_id);
        link.channel = Some(channel);
        // [MS-TSGU] 3.2.6.2.2 the receive pipe: its answer streams the target's bytes, no answer now.
        let pipe = Call::SetupReceivePipe { channel };
        let (call_id, bytes) = match link.request(&pipe) {
            Ok(r) => r,
            Err(e) => return Err(client_limit(self, e)),
        };
        self.write(&mut in_, &bytes).await?;
        self.record_rpc(Side::Client, &bytes, Some(pipe.opnum()));
        link.pipe_call = Some(call_id);
        let Conn { stream, buf } = out;
        Ok(Tunnel::rpc(
            stream,
            &buf,
            in_.stream,
            link,
            self.clock.start,
        ))
    }

    /// One TsProxy call and its answer; a failed HRESULT (a fault's status, the return value) is the
    /// gateway's refusal.
    async fn rpc_call(
        &mut self,
        link: &mut Association,
        in_: &mut Conn,
        out: &mut Conn,
        call: Call,
    ) -> Result<Reply, Refused> {
        let op = call.opnum();
        let (call_id, bytes) = match link.request(&call) {
            Ok(r) => r,
            Err(e) => {
                self.event(EventKind::ClientLimit {
                    detail: e.to_string(),
                });
                return Err(Refused);
            }
        };
        self.write(in_, &bytes).await?;
        self.record_rpc(Side::Client, &bytes, Some(op));
        let waiting = format!("answer to {}", call.name());
        for _ in 0..MAX_PDUS {
            let bytes = self.read_rpc(out, &waiting).await?;
            let pdu = match Pdu::decode(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    self.record_rpc(Side::Server, &bytes, None);
                    return Err(self.protocol_error("RPC PDU", e.to_string()));
                }
            };
            let mine = pdu.call_id == call_id;
            self.record_rpc(Side::Server, &bytes, mine.then_some(op));
            if pdu.auth.is_some()
                && matches!(pdu.body, Body::Response { .. } | Body::Fault { .. })
                && let Err(why) = link.verify(&bytes)
            {
                self.event(EventKind::Anomaly { detail: why });
            }
            match pdu.body {
                Body::Response { stub, .. } if mine => {
                    let reply = match Reply::decode(op, &stub) {
                        Ok(r) => r,
                        Err(e) => {
                            let name = format!("{} response", call.name());
                            return Err(self.protocol_error(&name, e.to_string()));
                        }
                    };
                    if crate::codes::gateway::failed(reply.status()) {
                        self.refused_with(reply.status());
                        return Err(Refused);
                    }
                    return Ok(reply);
                }
                Body::Fault { status, .. } if mine => {
                    self.refused_with(status);
                    return Err(Refused);
                }
                _ => {}
            }
        }
        Err(self.protocol_error(
            "RPC PDU",
            format!("the gateway sent {MAX_PDUS} PDUs and not the {waiting}"),
        ))
    }

    fn refused_with(&mut self, code: u32) {
        self.trace.fact(
            Fact::GatewayCode,
            crate::codes::Display(crate::codes::Table::Gateway, code).to_string(),
        );
    }
}
