//! A tunnel over RPC over HTTP in a capture ([MS-TSGU] 3.2 over [MS-RPCH]): the PDUs of its two channels as
//! the probe records them ([`record::rpc_pdu`]: the virtual connection, the bind, the TsProxy calls and
//! their answers, named by the call they answer), the facts of the answers, and, once the receive pipe is
//! set up ([MS-TSGU] 3.2.6.2), the RDP connection: the client's bytes in TsProxySendToServer requests, the
//! target's in the fragments of the TsProxySetupReceivePipe response, its last fragment or a fault the end
//! of the channel.

use std::collections::HashMap;

use super::Tunnel;
use crate::gateway::record;
use crate::gateway::rpc::ndr::{Call, Reply, opnum};
use crate::gateway::rpc::pdu::{Body, Pdu, pfc};
use crate::trace::{EventKind, Fact, Millis, PhaseName, Side, TunnelEnd};

/// Calls awaiting their answer that a tunnel remembers; over it a call is not named in its answer.
const MAX_CALLS: usize = 64;

/// The calls of the association, as far as the capture shows them.
#[derive(Debug, Default)]
pub struct Calls {
    /// The method of each call not answered yet, by call id.
    open: HashMap<u32, u16>,
    /// The call id of TsProxySetupReceivePipe, once requested: the RDP connection flows.
    pipe: Option<u32>,
    /// The tunnel runs over RPC over HTTP (a PDU of it was read).
    pub over_rpc: bool,
}

impl Tunnel {
    /// One PDU of RPC over HTTP from `from`.
    pub(super) fn rpc(&mut self, at: Millis, from: Side, bytes: &[u8]) {
        self.rpc.over_rpc = true;
        let decoded = Pdu::decode(bytes);
        if self.rpc.pipe.is_some() {
            return self.rpc_open(at, from, decoded);
        }
        let (name, opnum) = match &decoded {
            Ok(Pdu {
                body: Body::Rts(rts),
                ..
            }) => (Some(rts.name()), None),
            Ok(Pdu {
                call_id,
                body: Body::Response { .. } | Body::Fault { .. },
                ..
            }) => (None, self.rpc.open.get(call_id).copied()),
            _ => (None, None),
        };
        // [MS-TSGU] 3.2 the channels' CONN/A1 and CONN/B1 belong to their opening (as the probe keeps them);
        // the rest of the virtual connection, the bind and the calls to the tunnel.
        if !matches!(name, Some("CONN/A1" | "CONN/B1")) {
            self.enter(PhaseName::GatewayTunnel, at);
        }
        let pdu = record::rpc_pdu(at, from, bytes, opnum);
        let t = self.trace();
        t.record_pdu(pdu);
        t.count_bytes(from, bytes.len());
        let Ok(pdu) = decoded else { return };
        match (from, pdu.body) {
            (
                Side::Client,
                Body::Request {
                    opnum: op, stub, ..
                },
            ) => {
                if self.rpc.open.len() < MAX_CALLS {
                    self.rpc.open.insert(pdu.call_id, op);
                }
                match Call::decode(op, &stub) {
                    Ok(Call::CreateChannel {
                        resources, port, ..
                    }) => self.channel_target(&resources, port),
                    Ok(Call::SetupReceivePipe { .. }) => self.rpc.pipe = Some(pdu.call_id),
                    _ => {}
                }
            }
            (Side::Server, Body::Response { stub, .. }) => {
                let op = self.rpc.answered(pdu.call_id, pdu.flags);
                let Some(Ok(reply)) = op.map(|op| Reply::decode(op, &stub)) else {
                    return;
                };
                let status = reply.status();
                if crate::codes::gateway::failed(status) {
                    return self.refused(status);
                }
                let t = self.trace();
                match reply {
                    Reply::CreateTunnel {
                        tunnel_id, caps, ..
                    } => {
                        t.fact(Fact::GatewayTunnelId, tunnel_id);
                        if let Some(c) = caps {
                            t.fact(Fact::GatewayCapabilities, format!("0x{c:x}"));
                        }
                    }
                    Reply::AuthorizeTunnel {
                        idle_timeout: Some(m),
                        ..
                    } => t.fact(Fact::GatewayIdleTimeout, format!("{m} min")),
                    Reply::CreateChannel { channel_id, .. } => {
                        t.fact(Fact::GatewayChannelId, channel_id);
                        self.channel = true;
                    }
                    _ => {}
                }
            }
            (Side::Server, Body::Fault { status, .. })
                if self.rpc.answered(pdu.call_id, pfc::LAST_FRAG).is_some() =>
            {
                self.refused(status);
            }
            _ => {}
        }
    }

    /// [MS-TSGU] 3.2.6.1 a TsProxy call refused with `status` (a fault's, or the answer's return value).
    fn refused(&mut self, status: u32) {
        self.trace().fact(
            Fact::GatewayCode,
            crate::codes::Display(crate::codes::Table::Gateway, status).to_string(),
        );
    }

    /// A PDU once the receive pipe is set up: the RDP connection's bytes and how the channel ended, as the
    /// probe's tunnel reads them ([`crate::gateway::rpc::link`]); flow control and other PDUs are not kept.
    fn rpc_open(&mut self, at: Millis, from: Side, decoded: crate::wire::WireResult<Pdu>) {
        let Ok(pdu) = decoded else {
            if from == Side::Server {
                self.trace().record_event(
                    at,
                    EventKind::Anomaly {
                        detail: "a PDU that does not decode in the open tunnel".to_owned(),
                    },
                );
            }
            return;
        };
        let name = pdu.name();
        match (from, pdu.body) {
            (
                Side::Client,
                Body::Request {
                    opnum: op, stub, ..
                },
            ) if op == opnum::SEND_TO_SERVER => {
                if let Ok(Call::SendToServer { buffers, .. }) = Call::decode(op, &stub)
                    && self.channel
                {
                    for b in buffers {
                        self.dissector.on_tcp_data(Side::Client, at, &b);
                    }
                }
            }
            (Side::Server, Body::Response { stub, .. }) if Some(pdu.call_id) == self.rpc.pipe => {
                // [MS-TSGU] 3.2.6.2.2 the last fragment carries the return value alone.
                if pdu.flags & pfc::LAST_FRAG != 0 && stub.len() == 4 {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(stub.get(..4).unwrap_or(&[0; 4]));
                    self.channel_end(at, u32::from_le_bytes(b));
                } else if self.channel {
                    self.dissector.on_tcp_data(Side::Server, at, &stub);
                }
            }
            (Side::Server, Body::Fault { status, .. }) => {
                self.trace().record_event(
                    at,
                    EventKind::Anomaly {
                        detail: format!(
                            "a fault: {}",
                            crate::codes::Display(crate::codes::Table::Gateway, status)
                        ),
                    },
                );
                self.channel_end(at, status);
            }
            (Side::Server, Body::Response { .. } | Body::Rts(_)) | (Side::Client, _) => {}
            (Side::Server, _) => self.trace().record_event(
                at,
                EventKind::Anomaly {
                    detail: format!("a {name} in the open tunnel, ignored"),
                },
            ),
        }
    }

    /// The gateway ended the channel with `status`.
    fn channel_end(&mut self, at: Millis, status: u32) {
        if !self.ended {
            self.ended = true;
            self.trace().record_event(
                at,
                EventKind::TunnelEnded {
                    end: TunnelEnd::ChannelClose { status },
                },
            );
        }
    }
}

impl Calls {
    /// The method of call `call_id`, answered by a fragment with `flags` (forgotten at its last).
    fn answered(&mut self, call_id: u32, flags: u8) -> Option<u16> {
        if flags & pfc::LAST_FRAG != 0 {
            self.open.remove(&call_id)
        } else {
            self.open.get(&call_id).copied()
        }
    }
}
