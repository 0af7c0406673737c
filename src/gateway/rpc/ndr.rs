//! [MS-TSGU] 2.2.9, 3.2.6 the TsProxy calls an RD Gateway takes over RPC, and their answers, as the NDR
//! stubs of request and response PDUs (little-endian NDR 1.0, [C706] 14), both ways. The data calls are
//! not NDR: TsProxySendToServer's stub is a raw buffer list ([MS-TSGU] 2.2.9.3), and
//! TsProxySetupReceivePipe's answer is a stream of response fragments whose stubs are the target's bytes,
//! the last one carrying the call's HRESULT ([MS-TSGU] 2.2.9.4.3).

use crate::wire::{Reader, WireError, WireResult, utf16le};

/// [MS-TSGU] 3.2.4 the opnums of the TsProxy interface.
pub mod opnum {
    pub const CREATE_TUNNEL: u16 = 1;
    pub const AUTHORIZE_TUNNEL: u16 = 2;
    pub const MAKE_TUNNEL_CALL: u16 = 3;
    pub const CREATE_CHANNEL: u16 = 4;
    pub const CLOSE_CHANNEL: u16 = 6;
    pub const CLOSE_TUNNEL: u16 = 7;
    pub const SETUP_RECEIVE_PIPE: u16 = 8;
    pub const SEND_TO_SERVER: u16 = 9;
}

/// The name of a TsProxy method by its opnum.
pub fn method(opnum: u16) -> &'static str {
    match opnum {
        opnum::CREATE_TUNNEL => "TsProxyCreateTunnel",
        opnum::AUTHORIZE_TUNNEL => "TsProxyAuthorizeTunnel",
        opnum::MAKE_TUNNEL_CALL => "TsProxyMakeTunnelCall",
        opnum::CREATE_CHANNEL => "TsProxyCreateChannel",
        opnum::CLOSE_CHANNEL => "TsProxyCloseChannel",
        opnum::CLOSE_TUNNEL => "TsProxyCloseTunnel",
        opnum::SETUP_RECEIVE_PIPE => "TsProxySetupReceivePipe",
        opnum::SEND_TO_SERVER => "TsProxySendToServer",
        _ => "a TsProxy opnum [MS-TSGU] 3.2.4 does not define",
    }
}

/// [MS-TSGU] 2.2.1 a context handle on the wire: its type and UUID (20 bytes).
pub type Handle = [u8; 20];

/// [MS-TSGU] 2.2.5.2.x the packet ids of TSG_PACKET.
pub mod packet_id {
    pub const VERSIONCAPS: u32 = 0x5643;
    pub const QUARREQUEST: u32 = 0x5152;
    pub const RESPONSE: u32 = 0x5052;
    pub const QUARENC_RESPONSE: u32 = 0x4552;
    pub const CAPS_RESPONSE: u32 = 0x4350;
    pub const MSGREQUEST_PACKET: u32 = 0x4752;
    pub const MESSAGE_PACKET: u32 = 0x4750;
}

/// [MS-TSGU] 2.2.5.2.1 TS_GATEWAY_TRANSPORT, the ComponentId of TSG_PACKET_HEADER.
const TS_GATEWAY_TRANSPORT: u16 = 0x5452;
/// [MS-TSGU] 2.2.5.2.21 TSG_CAPABILITY_TYPE_NAP.
const CAPABILITY_TYPE_NAP: u32 = 1;
/// [MS-TSGU] 2.2.5.2.9 TSG_TUNNEL_CALL_ASYNC_MSG_REQUEST and TSG_TUNNEL_CANCEL_ASYNC_MSG_REQUEST.
pub const ASYNC_MSG_REQUEST: u32 = 1;
pub const CANCEL_ASYNC_MSG_REQUEST: u32 = 2;
/// [MS-TSGU] 2.2.9.2.1.4 the longest machine or resource name rdptrace reads, in UTF-16 units.
pub const MAX_NAME: usize = 1024;
/// The most resource names rdptrace reads in one TSENDPOINTINFO.
pub const MAX_RESOURCES: usize = 16;
/// [MS-TSGU] 2.2.9.3 TsProxySendToServer carries at most three buffers.
pub const MAX_BUFFERS: usize = 3;
/// [MS-TSGU] 2.2.5.1 the RDP protocol id of TSENDPOINTINFO's port.
const PROTOCOL_RDP: u16 = 3;
/// NDR unique pointer referents, as Windows numbers them.
const REF: [u32; 4] = [0x0002_0000, 0x0002_0004, 0x0002_0008, 0x0002_000c];

/// One TsProxy call: what the client's request stub says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// [MS-TSGU] 3.2.6.1.1 with TSG_PACKET_VERSIONCAPS (2.2.9.2.1.2): the NAP capabilities offered.
    CreateTunnel { caps: u32 },
    /// [MS-TSGU] 3.2.6.1.2 with TSG_PACKET_QUARREQUEST (2.2.9.2.1.4): the client's machine name.
    AuthorizeTunnel { tunnel: Handle, machine: String },
    /// [MS-TSGU] 3.2.6.1.3 with TSG_PACKET_MSG_REQUEST (2.2.9.2.1.8).
    MakeTunnelCall { tunnel: Handle, proc_id: u32 },
    /// [MS-TSGU] 3.2.6.1.4 with TSENDPOINTINFO (2.2.9.1).
    CreateChannel {
        tunnel: Handle,
        resources: Vec<String>,
        port: u16,
    },
    /// [MS-TSGU] 3.2.6.3.1.
    CloseChannel { channel: Handle },
    /// [MS-TSGU] 3.2.6.3.2.
    CloseTunnel { tunnel: Handle },
    /// [MS-TSGU] 3.2.6.2.2 (2.2.9.4.1).
    SetupReceivePipe { channel: Handle },
    /// [MS-TSGU] 3.2.6.2.1 (2.2.9.3): the buffers, bytes for the target.
    SendToServer {
        channel: Handle,
        buffers: Vec<Vec<u8>>,
    },
}

/// [MS-TSGU] 2.2.9.2.1.2 TSG_PACKET_VERSIONCAPS after its referent: its header, the capabilities pointer
/// (`caps_ref`), one capability, version 1.1; then the capability array, its MaxCount and one
/// TSG_PACKET_CAPABILITIES (NAP) holding `caps`.
fn put_versioncaps(out: &mut Vec<u8>, caps_ref: u32, caps: u32) {
    put_u16(out, TS_GATEWAY_TRANSPORT);
    put_u16(out, packet_id::VERSIONCAPS as u16);
    put_u32(out, caps_ref);
    put_u32(out, 1);
    put_u16(out, 1);
    put_u16(out, 1);
    put_u16(out, 0);
    align4(out);
    put_u32(out, 1);
    put_u32(out, CAPABILITY_TYPE_NAP);
    put_u32(out, CAPABILITY_TYPE_NAP);
    put_u32(out, caps);
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn align4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// [C706] 14.3.4 a conformant varying string of UTF-16 units with its NUL.
fn put_wstring(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().chain([0]).collect();
    let n = u32::try_from(units.len()).unwrap_or(u32::MAX);
    put_u32(out, n);
    put_u32(out, 0);
    put_u32(out, n);
    for u in units {
        put_u16(out, u);
    }
    align4(out);
}

fn wstring(r: &mut Reader<'_>) -> WireResult<String> {
    let at = r.offset();
    let _max = r.u32_le("MaxCount")?;
    let offset = r.u32_le("Offset")?;
    let n = r.u32_le("ActualCount")? as usize;
    if n > MAX_NAME || offset != 0 {
        return Err(WireError {
            offset: at,
            what: "a name longer than rdptrace reads, or with an offset",
        });
    }
    let bytes = r.bytes(n.saturating_mul(2), "the name's UTF-16 units")?;
    let s = utf16le(bytes).trim_end_matches('\0').to_owned();
    while !r.offset().is_multiple_of(4) && r.remaining() > 0 {
        r.skip(1, "alignment")?;
    }
    Ok(s)
}

fn handle(r: &mut Reader<'_>) -> WireResult<Handle> {
    r.array("context handle")
}

impl Call {
    pub fn opnum(&self) -> u16 {
        match self {
            Call::CreateTunnel { .. } => opnum::CREATE_TUNNEL,
            Call::AuthorizeTunnel { .. } => opnum::AUTHORIZE_TUNNEL,
            Call::MakeTunnelCall { .. } => opnum::MAKE_TUNNEL_CALL,
            Call::CreateChannel { .. } => opnum::CREATE_CHANNEL,
            Call::CloseChannel { .. } => opnum::CLOSE_CHANNEL,
            Call::CloseTunnel { .. } => opnum::CLOSE_TUNNEL,
            Call::SetupReceivePipe { .. } => opnum::SETUP_RECEIVE_PIPE,
            Call::SendToServer { .. } => opnum::SEND_TO_SERVER,
        }
    }

    pub fn name(&self) -> &'static str {
        method(self.opnum())
    }

    /// The request's stub.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Call::CreateTunnel { caps } => {
                put_u32(&mut out, packet_id::VERSIONCAPS);
                put_u32(&mut out, packet_id::VERSIONCAPS);
                put_u32(&mut out, REF[0]);
                put_versioncaps(&mut out, REF[1], *caps);
            }
            Call::AuthorizeTunnel { tunnel, machine } => {
                out.extend_from_slice(tunnel);
                put_u32(&mut out, packet_id::QUARREQUEST);
                put_u32(&mut out, packet_id::QUARREQUEST);
                put_u32(&mut out, REF[0]);
                put_u32(&mut out, 0);
                put_u32(&mut out, REF[1]);
                let units = machine.encode_utf16().count().saturating_add(1);
                put_u32(&mut out, u32::try_from(units).unwrap_or(u32::MAX));
                put_u32(&mut out, REF[2]);
                put_u32(&mut out, 0);
                put_wstring(&mut out, machine);
                // The empty data array: its MaxCount.
                put_u32(&mut out, 0);
            }
            Call::MakeTunnelCall { tunnel, proc_id } => {
                out.extend_from_slice(tunnel);
                put_u32(&mut out, *proc_id);
                put_u32(&mut out, packet_id::MSGREQUEST_PACKET);
                put_u32(&mut out, packet_id::MSGREQUEST_PACKET);
                put_u32(&mut out, REF[0]);
                // maxMessagesPerBatch.
                put_u32(&mut out, 1);
            }
            Call::CreateChannel {
                tunnel,
                resources,
                port,
            } => {
                out.extend_from_slice(tunnel);
                put_u32(&mut out, REF[0]);
                put_u32(&mut out, u32::try_from(resources.len()).unwrap_or(u32::MAX));
                put_u32(&mut out, 0);
                put_u16(&mut out, 0);
                put_u16(&mut out, 0);
                put_u16(&mut out, PROTOCOL_RDP);
                put_u16(&mut out, *port);
                put_u32(&mut out, u32::try_from(resources.len()).unwrap_or(u32::MAX));
                for i in 0..resources.len() {
                    let referent = 0x0002_0004u32.saturating_add(4u32.saturating_mul(i as u32));
                    put_u32(&mut out, referent);
                }
                for r in resources {
                    put_wstring(&mut out, r);
                }
            }
            Call::CloseChannel { channel: h }
            | Call::CloseTunnel { tunnel: h }
            | Call::SetupReceivePipe { channel: h } => out.extend_from_slice(h),
            Call::SendToServer { channel, buffers } => {
                out.extend_from_slice(channel);
                let total: usize = buffers.iter().map(|b| b.len() + 4).sum();
                out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
                let n = u32::try_from(buffers.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                for b in buffers {
                    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_be_bytes());
                }
                for b in buffers {
                    out.extend_from_slice(b);
                }
            }
        }
        out
    }

    /// A request's stub, for the method `opnum`.
    pub fn decode(op: u16, stub: &[u8]) -> WireResult<Call> {
        let mut r = Reader::new(stub);
        Ok(match op {
            opnum::CREATE_TUNNEL => {
                let id = r.u32_le("PacketId")?;
                if id != packet_id::VERSIONCAPS {
                    return Err(WireError {
                        offset: 0,
                        what: "a TsProxyCreateTunnel packet other than TSG_PACKET_VERSIONCAPS",
                    });
                }
                r.skip(8, "SwitchValue and the packet pointer")?;
                r.skip(4, "TSG_PACKET_HEADER")?;
                r.skip(8, "the capabilities pointer and count")?;
                r.skip(8, "the version and quarantine capabilities")?;
                r.skip(4, "MaxCount")?;
                r.skip(8, "the capability type")?;
                Call::CreateTunnel {
                    caps: r.u32_le("capabilities")?,
                }
            }
            opnum::AUTHORIZE_TUNNEL => {
                let tunnel = handle(&mut r)?;
                let at = r.offset();
                if r.u32_le("PacketId")? != packet_id::QUARREQUEST {
                    return Err(WireError {
                        offset: at,
                        what: "a TsProxyAuthorizeTunnel packet other than TSG_PACKET_QUARREQUEST",
                    });
                }
                r.skip(12, "SwitchValue, the packet pointer and flags")?;
                let name_ptr = r.u32_le("machineName pointer")?;
                r.skip(12, "nameLength, the data pointer and dataLen")?;
                let machine = if name_ptr != 0 {
                    wstring(&mut r)?
                } else {
                    String::new()
                };
                Call::AuthorizeTunnel { tunnel, machine }
            }
            opnum::MAKE_TUNNEL_CALL => Call::MakeTunnelCall {
                tunnel: handle(&mut r)?,
                proc_id: r.u32_le("procId")?,
            },
            opnum::CREATE_CHANNEL => {
                let tunnel = handle(&mut r)?;
                let names_ptr = r.u32_le("resourceName pointer")?;
                let at = r.offset();
                let n = r.u32_le("numResourceNames")? as usize;
                if n > MAX_RESOURCES {
                    return Err(WireError {
                        offset: at,
                        what: "more resource names than rdptrace reads",
                    });
                }
                r.skip(4, "alternateResourceNames pointer")?;
                r.skip(4, "numAlternateResourceNames and padding")?;
                r.skip(2, "the protocol")?;
                let port = r.u16_le("the port")?;
                let mut resources = Vec::new();
                if names_ptr != 0 {
                    r.skip(4, "MaxCount")?;
                    let mut present = Vec::with_capacity(n);
                    for _ in 0..n {
                        present.push(r.u32_le("a resource name pointer")? != 0);
                    }
                    for p in present {
                        if p {
                            resources.push(wstring(&mut r)?);
                        }
                    }
                }
                Call::CreateChannel {
                    tunnel,
                    resources,
                    port,
                }
            }
            opnum::CLOSE_CHANNEL => Call::CloseChannel {
                channel: handle(&mut r)?,
            },
            opnum::CLOSE_TUNNEL => Call::CloseTunnel {
                tunnel: handle(&mut r)?,
            },
            opnum::SETUP_RECEIVE_PIPE => Call::SetupReceivePipe {
                channel: handle(&mut r)?,
            },
            opnum::SEND_TO_SERVER => {
                let channel = handle(&mut r)?;
                r.skip(4, "totalDataBytes")?;
                let at = r.offset();
                let n = r.u32_be("numBuffers")? as usize;
                if n > MAX_BUFFERS {
                    return Err(WireError {
                        offset: at,
                        what: "more than three buffers ([MS-TSGU] 2.2.9.3)",
                    });
                }
                let mut lens = Vec::with_capacity(n);
                for _ in 0..n {
                    lens.push(r.u32_be("a buffer length")? as usize);
                }
                let mut buffers = Vec::with_capacity(n);
                for len in lens {
                    buffers.push(r.bytes(len, "a buffer")?.to_vec());
                }
                Call::SendToServer { channel, buffers }
            }
            _ => {
                return Err(WireError {
                    offset: 0,
                    what: "a TsProxy opnum [MS-TSGU] 3.2.4 does not define",
                });
            }
        })
    }
}

/// The answer to one TsProxy call: what the response stub says, with the method's HRESULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// [MS-TSGU] 3.2.6.1.1 with TSG_PACKET_QUARENC_RESPONSE (2.2.9.2.1.6): the tunnel; the NAP capabilities
    /// the gateway answered with, when it sent them.
    CreateTunnel {
        tunnel: Handle,
        tunnel_id: u32,
        caps: Option<u32>,
        status: u32,
    },
    /// [MS-TSGU] 3.2.6.1.2 with TSG_PACKET_RESPONSE (2.2.9.2.1.5): the idle timeout (minutes) when given.
    AuthorizeTunnel {
        idle_timeout: Option<u32>,
        status: u32,
    },
    /// [MS-TSGU] 3.2.6.1.4.
    CreateChannel {
        channel: Handle,
        channel_id: u32,
        status: u32,
    },
    /// [MS-TSGU] 3.2.6.3.1, 3.2.6.3.2: the handle, now closed.
    Closed { handle: Handle, status: u32 },
    /// The HRESULT alone: TsProxySendToServer, the last fragment of TsProxySetupReceivePipe, a
    /// TsProxyMakeTunnelCall without a message.
    Status(u32),
}

impl Reply {
    pub fn status(&self) -> u32 {
        match self {
            Reply::CreateTunnel { status, .. }
            | Reply::AuthorizeTunnel { status, .. }
            | Reply::CreateChannel { status, .. }
            | Reply::Closed { status, .. }
            | Reply::Status(status) => *status,
        }
    }

    /// The response's stub.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::CreateTunnel {
                tunnel,
                tunnel_id,
                caps,
                status,
            } => {
                put_u32(&mut out, REF[0]);
                put_u32(&mut out, packet_id::QUARENC_RESPONSE);
                put_u32(&mut out, packet_id::QUARENC_RESPONSE);
                put_u32(&mut out, REF[1]);
                // flags, certChainLen, certChainData (none), nonce.
                put_u32(&mut out, 0);
                put_u32(&mut out, 0);
                put_u32(&mut out, 0);
                out.extend_from_slice(&[0; 16]);
                put_u32(&mut out, REF[2]);
                put_versioncaps(&mut out, REF[3], caps.unwrap_or(0));
                out.extend_from_slice(tunnel);
                put_u32(&mut out, *tunnel_id);
                put_u32(&mut out, *status);
            }
            Reply::AuthorizeTunnel {
                idle_timeout,
                status,
            } => {
                put_u32(&mut out, REF[0]);
                put_u32(&mut out, packet_id::RESPONSE);
                put_u32(&mut out, packet_id::RESPONSE);
                put_u32(&mut out, REF[1]);
                put_u32(&mut out, packet_id::QUARREQUEST);
                put_u32(&mut out, 0);
                let data_len = if idle_timeout.is_some() { 4 } else { 0 };
                put_u32(&mut out, if idle_timeout.is_some() { REF[2] } else { 0 });
                put_u32(&mut out, data_len);
                // TSG_REDIRECTION_FLAGS (2.2.9.2.1.5.2): everything enabled.
                put_u32(&mut out, 1);
                for _ in 0..7 {
                    put_u32(&mut out, 0);
                }
                put_u32(&mut out, data_len);
                if let Some(t) = idle_timeout {
                    put_u32(&mut out, *t);
                }
                put_u32(&mut out, *status);
            }
            Reply::CreateChannel {
                channel,
                channel_id,
                status,
            } => {
                out.extend_from_slice(channel);
                put_u32(&mut out, *channel_id);
                put_u32(&mut out, *status);
            }
            Reply::Closed { handle, status } => {
                out.extend_from_slice(handle);
                put_u32(&mut out, *status);
            }
            Reply::Status(status) => put_u32(&mut out, *status),
        }
        out
    }

    /// A response's stub, for the method `opnum` of the request it answers.
    pub fn decode(op: u16, stub: &[u8]) -> WireResult<Reply> {
        let len = stub.len();
        // The out parameters end every stub: the HRESULT last, the handles and ids before it.
        let tail = |n: usize, what: &'static str| -> WireResult<Reader<'_>> {
            let at = len.checked_sub(n).ok_or(WireError { offset: 0, what })?;
            Ok(Reader::with_base(stub.get(at..).unwrap_or_default(), at))
        };
        Ok(match op {
            opnum::CREATE_TUNNEL => {
                let mut t = tail(
                    28,
                    "a TsProxyCreateTunnel answer shorter than its out parameters",
                )?;
                let tunnel = handle(&mut t)?;
                let tunnel_id = t.u32_le("tunnelId")?;
                let status = t.u32_le("the HRESULT")?;
                let mut r = Reader::new(stub);
                r.skip(4, "the packet pointer")?;
                let caps = if r.u32_le("PacketId")? == packet_id::QUARENC_RESPONSE {
                    r.skip(4 + 4 + 4 + 4 + 4 + 16 + 4, "TSG_PACKET_QUARENC_RESPONSE")?;
                    let at = r.offset();
                    if r.u16_le("ComponentId")? != TS_GATEWAY_TRANSPORT {
                        return Err(WireError {
                            offset: at,
                            what: "a version caps header other than TS_GATEWAY_TRANSPORT",
                        });
                    }
                    r.skip(2 + 4 + 4 + 6 + 2 + 4 + 8, "TSG_PACKET_VERSIONCAPS")?;
                    Some(r.u32_le("capabilities")?)
                } else {
                    None
                };
                Reply::CreateTunnel {
                    tunnel,
                    tunnel_id,
                    caps,
                    status,
                }
            }
            opnum::AUTHORIZE_TUNNEL => {
                let status = tail(4, "a TsProxyAuthorizeTunnel answer without its HRESULT")?
                    .u32_le("the HRESULT")?;
                let mut r = Reader::new(stub);
                r.skip(4, "the packet pointer")?;
                let at = r.offset();
                if r.u32_le("PacketId")? != packet_id::RESPONSE {
                    return Err(WireError {
                        offset: at,
                        what: "a TsProxyAuthorizeTunnel answer other than TSG_PACKET_RESPONSE",
                    });
                }
                r.skip(4 + 4 + 4 + 4 + 4, "TSG_PACKET_RESPONSE")?;
                let data_len = r.u32_le("responseDataLen")?;
                r.skip(32 + 4, "TSG_REDIRECTION_FLAGS and the data's MaxCount")?;
                let idle_timeout = if data_len == 4 {
                    Some(r.u32_le("the idle timeout")?)
                } else {
                    None
                };
                Reply::AuthorizeTunnel {
                    idle_timeout,
                    status,
                }
            }
            opnum::CREATE_CHANNEL => {
                let mut t = tail(
                    28,
                    "a TsProxyCreateChannel answer shorter than its out parameters",
                )?;
                Reply::CreateChannel {
                    channel: handle(&mut t)?,
                    channel_id: t.u32_le("channelId")?,
                    status: t.u32_le("the HRESULT")?,
                }
            }
            opnum::CLOSE_CHANNEL | opnum::CLOSE_TUNNEL => {
                let mut t = tail(24, "a close answer shorter than its out parameters")?;
                Reply::Closed {
                    handle: handle(&mut t)?,
                    status: t.u32_le("the HRESULT")?,
                }
            }
            _ => Reply::Status(tail(4, "an answer without its HRESULT")?.u32_le("the HRESULT")?),
        })
    }
}
