//! [MS-RPCH] 2.2.3, 2.2.4 the RTS PDUs of RPC over HTTP v2: the commands they carry, and the PDUs of the
//! connection establishment (CONN/A1, CONN/A3, CONN/B1, CONN/C2) and of flow control (FlowControlAck),
//! built and recognised. An RTS PDU is a DCE/RPC PDU of type 20 ([`super::pdu`] frames it); this module
//! reads and writes what follows its common header.

use crate::wire::{Reader, WireError, WireResult};

/// [MS-RPCH] 2.2.3.6.1 RTS header flags.
pub mod flags {
    pub const NONE: u16 = 0x0000;
    pub const PING: u16 = 0x0001;
    pub const OTHER_CMD: u16 = 0x0002;
    pub const RECYCLE_CHANNEL: u16 = 0x0004;
    pub const IN_CHANNEL: u16 = 0x0008;
    pub const OUT_CHANNEL: u16 = 0x0010;
    pub const EOF: u16 = 0x0020;
    pub const ECHO: u16 = 0x0040;
}

/// The most commands rdptrace reads in one RTS PDU (the longest defined PDU has 8).
pub const MAX_COMMANDS: usize = 16;

/// [MS-RPCH] 2.2.3.3 the forward destinations.
pub const FD_CLIENT: u32 = 0;
pub const FD_IN_PROXY: u32 = 1;
pub const FD_SERVER: u32 = 2;
pub const FD_OUT_PROXY: u32 = 3;

/// [MS-RPCH] 2.2.3.1 an RTS cookie (a UUID).
pub type Cookie = [u8; 16];

/// [MS-RPCH] 2.2.3.5 one RTS command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 2.2.3.5.1 ReceiveWindowSize.
    ReceiveWindowSize(u32),
    /// 2.2.3.5.2 FlowControlAck with its 2.2.3.4 acknowledgment.
    FlowControlAck {
        bytes_received: u32,
        available_window: u32,
        channel_cookie: Cookie,
    },
    /// 2.2.3.5.3 ConnectionTimeout (ms).
    ConnectionTimeout(u32),
    /// 2.2.3.5.4 Cookie.
    Cookie(Cookie),
    /// 2.2.3.5.5 ChannelLifetime (bytes).
    ChannelLifetime(u32),
    /// 2.2.3.5.6 ClientKeepalive (ms).
    ClientKeepalive(u32),
    /// 2.2.3.5.7 Version.
    Version(u32),
    /// 2.2.3.5.8 Empty.
    Empty,
    /// 2.2.3.5.9 Padding: its length (the bytes are zeros, not kept).
    Padding(u32),
    /// 2.2.3.5.10 NegativeANCE.
    NegativeAnce,
    /// 2.2.3.5.11 ANCE.
    Ance,
    /// 2.2.3.5.12 ClientAddress: the address bytes (4 or 16).
    ClientAddress(Vec<u8>),
    /// 2.2.3.5.13 AssociationGroupId.
    AssociationGroupId(Cookie),
    /// 2.2.3.5.14 Destination.
    Destination(u32),
    /// 2.2.3.5.15 PingTrafficSentNotify.
    PingTrafficSentNotify(u32),
}

impl Command {
    /// [MS-RPCH] 2.2.3.5 CommandType.
    pub fn command_type(&self) -> u32 {
        match self {
            Command::ReceiveWindowSize(_) => 0,
            Command::FlowControlAck { .. } => 1,
            Command::ConnectionTimeout(_) => 2,
            Command::Cookie(_) => 3,
            Command::ChannelLifetime(_) => 4,
            Command::ClientKeepalive(_) => 5,
            Command::Version(_) => 6,
            Command::Empty => 7,
            Command::Padding(_) => 8,
            Command::NegativeAnce => 9,
            Command::Ance => 10,
            Command::ClientAddress(_) => 11,
            Command::AssociationGroupId(_) => 12,
            Command::Destination(_) => 13,
            Command::PingTrafficSentNotify(_) => 14,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.command_type().to_le_bytes());
        match self {
            Command::ReceiveWindowSize(v)
            | Command::ConnectionTimeout(v)
            | Command::ChannelLifetime(v)
            | Command::ClientKeepalive(v)
            | Command::Version(v)
            | Command::Destination(v)
            | Command::PingTrafficSentNotify(v) => out.extend_from_slice(&v.to_le_bytes()),
            Command::FlowControlAck {
                bytes_received,
                available_window,
                channel_cookie,
            } => {
                out.extend_from_slice(&bytes_received.to_le_bytes());
                out.extend_from_slice(&available_window.to_le_bytes());
                out.extend_from_slice(channel_cookie);
            }
            Command::Cookie(c) | Command::AssociationGroupId(c) => out.extend_from_slice(c),
            Command::Empty | Command::NegativeAnce | Command::Ance => {}
            Command::Padding(n) => {
                out.extend_from_slice(&n.to_le_bytes());
                out.resize(out.len().saturating_add(*n as usize), 0);
            }
            Command::ClientAddress(addr) => {
                let kind: u32 = if addr.len() == 16 { 1 } else { 0 };
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(addr);
                out.extend_from_slice(&[0; 12]);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> WireResult<Command> {
        let at = r.offset();
        let kind = r.u32_le("CommandType")?;
        Ok(match kind {
            0 => Command::ReceiveWindowSize(r.u32_le("ReceiveWindowSize")?),
            1 => Command::FlowControlAck {
                bytes_received: r.u32_le("BytesReceived")?,
                available_window: r.u32_le("AvailableWindow")?,
                channel_cookie: r.array("ChannelCookie")?,
            },
            2 => Command::ConnectionTimeout(r.u32_le("ConnectionTimeout")?),
            3 => Command::Cookie(r.array("Cookie")?),
            4 => Command::ChannelLifetime(r.u32_le("ChannelLifetime")?),
            5 => Command::ClientKeepalive(r.u32_le("ClientKeepalive")?),
            6 => Command::Version(r.u32_le("Version")?),
            7 => Command::Empty,
            8 => {
                let n = r.u32_le("ConformanceCount")?;
                r.skip(n as usize, "Padding")?;
                Command::Padding(n)
            }
            9 => Command::NegativeAnce,
            10 => Command::Ance,
            11 => {
                let len = match r.u32_le("AddressType")? {
                    0 => 4,
                    1 => 16,
                    _ => {
                        return Err(WireError {
                            offset: at.saturating_add(4),
                            what: "an AddressType other than IPv4 (0) or IPv6 (1)",
                        });
                    }
                };
                let addr = r.bytes(len, "ClientAddress")?.to_vec();
                r.skip(12, "ClientAddress padding")?;
                Command::ClientAddress(addr)
            }
            12 => Command::AssociationGroupId(r.array("AssociationGroupId")?),
            13 => Command::Destination(r.u32_le("Destination")?),
            14 => Command::PingTrafficSentNotify(r.u32_le("PingTrafficSentNotify")?),
            _ => {
                return Err(WireError {
                    offset: at,
                    what: "an RTS CommandType [MS-RPCH] 2.2.3.5 does not define",
                });
            }
        })
    }
}

/// [MS-RPCH] 2.2.3.6.1 what follows the common header of an RTS PDU: its flags and commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rts {
    pub flags: u16,
    pub commands: Vec<Command>,
}

impl Rts {
    /// The body (after the 16-byte common header).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags.to_le_bytes());
        let count = u16::try_from(self.commands.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for c in &self.commands {
            c.encode(out);
        }
    }

    /// Reads the body; `r` starts after the common header.
    pub fn decode_body(r: &mut Reader<'_>) -> WireResult<Rts> {
        let flags = r.u16_le("RTS Flags")?;
        let at = r.offset();
        let count = usize::from(r.u16_le("NumberOfCommands")?);
        if count > MAX_COMMANDS {
            return Err(WireError {
                offset: at,
                what: "more RTS commands than rdptrace reads",
            });
        }
        let mut commands = Vec::with_capacity(count);
        for _ in 0..count {
            commands.push(Command::decode(r)?);
        }
        Ok(Rts { flags, commands })
    }

    /// [MS-RPCH] 2.2.4.2 CONN/A1: the client opens the OUT channel.
    pub fn conn_a1(connection: Cookie, out_channel: Cookie, receive_window: u32) -> Rts {
        Rts {
            flags: flags::NONE,
            commands: vec![
                Command::Version(1),
                Command::Cookie(connection),
                Command::Cookie(out_channel),
                Command::ReceiveWindowSize(receive_window),
            ],
        }
    }

    /// [MS-RPCH] 2.2.4.4 CONN/A3: the OUT proxy's answer to CONN/A1.
    pub fn conn_a3(connection_timeout: u32) -> Rts {
        Rts {
            flags: flags::NONE,
            commands: vec![Command::ConnectionTimeout(connection_timeout)],
        }
    }

    /// [MS-RPCH] 2.2.4.5 CONN/B1: the client opens the IN channel.
    pub fn conn_b1(
        connection: Cookie,
        in_channel: Cookie,
        lifetime: u32,
        keepalive: u32,
        association: Cookie,
    ) -> Rts {
        Rts {
            flags: flags::NONE,
            commands: vec![
                Command::Version(1),
                Command::Cookie(connection),
                Command::Cookie(in_channel),
                Command::ChannelLifetime(lifetime),
                Command::ClientKeepalive(keepalive),
                Command::AssociationGroupId(association),
            ],
        }
    }

    /// [MS-RPCH] 2.2.4.9 CONN/C2: the virtual connection is open; the IN proxy's receive window.
    pub fn conn_c2(receive_window: u32, connection_timeout: u32) -> Rts {
        Rts {
            flags: flags::NONE,
            commands: vec![
                Command::Version(1),
                Command::ReceiveWindowSize(receive_window),
                Command::ConnectionTimeout(connection_timeout),
            ],
        }
    }

    /// [MS-RPCH] 2.2.4.50 FlowControlAck: what the receiver of a channel has taken.
    pub fn flow_control_ack(bytes_received: u32, available_window: u32, channel: Cookie) -> Rts {
        Rts {
            flags: flags::OTHER_CMD,
            commands: vec![Command::FlowControlAck {
                bytes_received,
                available_window,
                channel_cookie: channel,
            }],
        }
    }

    /// [MS-RPCH] 2.2.4.51 FlowControlAckWithDestination: the client's acknowledgment of the OUT channel,
    /// sent on the IN channel to the OUT proxy.
    pub fn flow_control_ack_to(
        destination: u32,
        bytes_received: u32,
        available_window: u32,
        channel: Cookie,
    ) -> Rts {
        Rts {
            flags: flags::OTHER_CMD,
            commands: vec![
                Command::Destination(destination),
                Command::FlowControlAck {
                    bytes_received,
                    available_window,
                    channel_cookie: channel,
                },
            ],
        }
    }

    fn types(&self) -> Vec<u32> {
        self.commands.iter().map(Command::command_type).collect()
    }

    /// The PDU of [MS-RPCH] 2.2.4 these flags and commands are, by their signature, among those a client and
    /// an RPC proxy exchange; `RTS` when none.
    pub fn name(&self) -> &'static str {
        let t = self.types();
        match (self.flags, t.as_slice()) {
            (flags::NONE, [6, 3, 3, 0]) => "CONN/A1",
            (flags::NONE, [2]) => "CONN/A3",
            (flags::NONE, [6, 3, 3, 4, 5, 12]) => "CONN/B1",
            (flags::NONE, [6, 0, 2]) => "CONN/C2",
            (flags::OTHER_CMD, [1]) => "FlowControlAck",
            (flags::OTHER_CMD, [13, 1]) => "FlowControlAckWithDestination",
            (flags::PING, []) => "Ping",
            (flags::OTHER_CMD, [5]) => "Keep-Alive",
            _ => "RTS",
        }
    }

    /// A one-line summary of the commands, for the trace.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .commands
            .iter()
            .map(|c| match c {
                Command::ReceiveWindowSize(v) => format!("receive window {v}"),
                Command::FlowControlAck {
                    bytes_received,
                    available_window,
                    ..
                } => format!("{bytes_received} bytes received, window {available_window}"),
                Command::ConnectionTimeout(v) => format!("connection timeout {v} ms"),
                Command::Cookie(_) => "cookie".to_owned(),
                Command::ChannelLifetime(v) => format!("channel lifetime {v}"),
                Command::ClientKeepalive(v) => format!("keepalive {v} ms"),
                Command::Version(v) => format!("version {v}"),
                Command::Empty => "empty".to_owned(),
                Command::Padding(n) => format!("{n} bytes of padding"),
                Command::NegativeAnce => "negative ANCE".to_owned(),
                Command::Ance => "ANCE".to_owned(),
                Command::ClientAddress(_) => "client address".to_owned(),
                Command::AssociationGroupId(_) => "association group".to_owned(),
                Command::Destination(d) => format!("destination {d}"),
                Command::PingTrafficSentNotify(v) => format!("ping traffic {v}"),
            })
            .collect();
        parts.join(", ")
    }

    /// The cookies carried, in order (the virtual connection's first, then the channel's).
    pub fn cookies(&self) -> Vec<Cookie> {
        self.commands
            .iter()
            .filter_map(|c| match c {
                Command::Cookie(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// The first ReceiveWindowSize carried.
    pub fn receive_window(&self) -> Option<u32> {
        self.commands.iter().find_map(|c| match c {
            Command::ReceiveWindowSize(v) => Some(*v),
            _ => None,
        })
    }
}
