//! [MS-TSGU] 2.2.10 the packets of the HTTP transport of an RD Gateway, both ways: what the client sends and
//! what the gateway answers, encoded and decoded without I/O. The probe's client, the built-in gateway and the
//! replay all read and write them here.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
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

use crate::codes::{self, Table};
use crate::wire::{Reader, WireError, WireResult, utf16le};

/// [MS-TSGU] 2.2.5.3.3 HTTP_PACKET_TYPE.
pub mod kind {
    pub const HANDSHAKE_REQUEST: u16 = 0x01;
    pub const HANDSHAKE_RESPONSE: u16 = 0x02;
    pub const EXTENDED_AUTH_MSG: u16 = 0x03;
    pub const TUNNEL_CREATE: u16 = 0x04;
    pub const TUNNEL_RESPONSE: u16 = 0x05;
    pub const TUNNEL_AUTH: u16 = 0x06;
    pub const TUNNEL_AUTH_RESPONSE: u16 = 0x07;
    pub const CHANNEL_CREATE: u16 = 0x08;
    pub const CHANNEL_RESPONSE: u16 = 0x09;
    pub const DATA: u16 = 0x0A;
    pub const SERVICE_MESSAGE: u16 = 0x0B;
    pub const REAUTH_MESSAGE: u16 = 0x0C;
    pub const KEEPALIVE: u16 = 0x0D;
    pub const CLOSE_CHANNEL: u16 = 0x10;
    pub const CLOSE_CHANNEL_RESPONSE: u16 = 0x11;
}

/// [MS-TSGU] 2.2.10.9 HTTP_PACKET_HEADER: type, reserved, length (of the whole packet).
pub const HEADER_LEN: usize = 8;
/// The longest packet rdptrace reads: a data packet carries at most 65535 bytes ([MS-TSGU] 2.2.10.6); the
/// control packets are far shorter.
pub const MAX_PACKET: usize = HEADER_LEN + 2 + 0xffff;
/// The most data one HTTP_DATA_PACKET carries.
pub const MAX_DATA: usize = 0xffff;

/// [MS-TSGU] 2.2.5.3.9 HTTP_CAPABILITY_TYPE, as the client offers them in its tunnel request.
pub const CAPS_QUAR_SOH: u32 = 0x01;
pub const CAPS_IDLE_TIMEOUT: u32 = 0x02;
pub const CAPS_MESSAGING_CONSENT_SIGN: u32 = 0x04;
pub const CAPS_MESSAGING_SERVICE_MSG: u32 = 0x08;
pub const CAPS_REAUTH: u32 = 0x10;

/// [MS-TSGU] 2.2.5.3.8 HTTP_TUNNEL_RESPONSE_FIELDS_PRESENT_FLAGS.
const TUNNEL_RESPONSE_TUNNEL_ID: u16 = 0x01;
const TUNNEL_RESPONSE_CAPS: u16 = 0x02;
const TUNNEL_RESPONSE_SOH_REQ: u16 = 0x04;
const TUNNEL_RESPONSE_CONSENT_MSG: u16 = 0x10;
/// [MS-TSGU] 2.2.5.3.6 HTTP_TUNNEL_PACKET_FIELDS_PRESENT_FLAGS.
const TUNNEL_PACKET_PAA_COOKIE: u16 = 0x01;
const TUNNEL_PACKET_REAUTH: u16 = 0x02;
/// [MS-TSGU] 2.2.5.3.5 HTTP_TUNNEL_AUTH_RESPONSE_FIELDS_PRESENT_FLAGS.
const AUTH_RESPONSE_REDIR_FLAGS: u16 = 0x01;
const AUTH_RESPONSE_IDLE_TIMEOUT: u16 = 0x02;
const AUTH_RESPONSE_SOH_RESPONSE: u16 = 0x04;
/// [MS-TSGU] 2.2.5.3.4 HTTP_TUNNEL_AUTH_FIELDS_PRESENT_FLAGS.
const TUNNEL_AUTH_SOH: u16 = 0x01;
/// [MS-TSGU] 2.2.5.3.1 HTTP_CHANNEL_RESPONSE_FIELDS_PRESENT_FLAGS.
const CHANNEL_RESPONSE_CHANNEL_ID: u16 = 0x01;
/// [MS-TSGU] 2.2.10.2 protocol: RDP.
pub const PROTOCOL_RDP: u16 = 3;

/// One packet of the HTTP transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// [MS-TSGU] 2.2.10.10 HTTP_HANDSHAKE_REQUEST_PACKET.
    HandshakeRequest {
        major: u8,
        minor: u8,
        client_version: u16,
        /// [MS-TSGU] 2.2.5.3.2 HTTP_EXTENDED_AUTH.
        extended_auth: u16,
    },
    /// [MS-TSGU] 2.2.10.11 HTTP_HANDSHAKE_RESPONSE_PACKET.
    HandshakeResponse {
        error: u32,
        major: u8,
        minor: u8,
        server_version: u16,
        extended_auth: u16,
    },
    /// [MS-TSGU] 2.2.10.7 HTTP_EXTENDED_AUTH_PACKET (its blob is an authentication token, never kept).
    ExtendedAuth { error: u32, blob_len: usize },
    /// [MS-TSGU] 2.2.10.18 HTTP_TUNNEL_PACKET.
    TunnelCreate {
        caps: u32,
        /// [MS-TSGU] 2.2.10.19 a PAA cookie was present (never kept).
        paa_cookie: bool,
        reauth_context: Option<u64>,
    },
    /// [MS-TSGU] 2.2.10.20 HTTP_TUNNEL_RESPONSE and 2.2.10.21 its optional fields.
    TunnelResponse {
        server_version: u16,
        status: u32,
        tunnel_id: Option<u32>,
        caps: Option<u32>,
        consent: Option<String>,
    },
    /// [MS-TSGU] 2.2.10.14 HTTP_TUNNEL_AUTH_PACKET.
    TunnelAuth { client_name: String },
    /// [MS-TSGU] 2.2.10.16 HTTP_TUNNEL_AUTH_RESPONSE and 2.2.10.17 its optional fields.
    TunnelAuthResponse {
        error: u32,
        redirection_flags: Option<u32>,
        idle_timeout: Option<u32>,
    },
    /// [MS-TSGU] 2.2.10.2 HTTP_CHANNEL_PACKET: the target server's names and port.
    ChannelCreate {
        resources: Vec<String>,
        alternates: Vec<String>,
        port: u16,
        protocol: u16,
    },
    /// [MS-TSGU] 2.2.10.4 HTTP_CHANNEL_RESPONSE and 2.2.10.5 its optional fields.
    ChannelResponse { error: u32, channel_id: Option<u32> },
    /// [MS-TSGU] 2.2.10.6 HTTP_DATA_PACKET.
    Data(Vec<u8>),
    /// [MS-TSGU] 2.2.10.13 HTTP_SERVICE_MESSAGE.
    ServiceMessage(String),
    /// [MS-TSGU] 2.2.10.12 HTTP_REAUTH_MESSAGE.
    ReauthMessage(u64),
    /// [MS-TSGU] 2.2.5.3.3 PKT_TYPE_KEEPALIVE: a header alone.
    Keepalive,
    /// [MS-TSGU] 2.2.10.23 HTTP_CLOSE_PACKET as PKT_TYPE_CLOSE_CHANNEL.
    CloseChannel { status: u32 },
    /// [MS-TSGU] 2.2.10.23 HTTP_CLOSE_PACKET as PKT_TYPE_CLOSE_CHANNEL_RESPONSE.
    CloseChannelResponse { status: u32 },
    /// A packet type [MS-TSGU] 2.2.5.3.3 does not define.
    Unknown { packet_type: u16 },
}

/// How long the packet at the start of `buf` is: `Ok(None)` until its header is there; an error when the
/// header's length is shorter than a header or longer than [`MAX_PACKET`].
pub fn packet_len(buf: &[u8]) -> WireResult<Option<usize>> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut r = Reader::new(buf);
    r.skip(4, "packetType and reserved")?;
    let len = r.u32_le("packetLength")? as usize;
    if len < HEADER_LEN {
        return Err(WireError {
            offset: 4,
            what: "packetLength shorter than the packet header",
        });
    }
    if len > MAX_PACKET {
        return Err(WireError {
            offset: 4,
            what: "packetLength longer than rdptrace accepts",
        });
    }
    Ok(Some(len))
}

/// The longest seed a gateway sends before its first packet on the RDG_OUT_DATA channel ([MS-TSGU] 3.3.5.1:
/// a random entity body of limited size; Windows sends 10 bytes).
pub const MAX_SEED: usize = 100;

/// [MS-TSGU] 3.3.5.1 where the gateway's first packet (its HTTP_HANDSHAKE_RESPONSE_PACKET) starts in the
/// body of the RDG_OUT_DATA response, after the seed; `None` while it is not there.
pub fn first_packet_at(body: &[u8]) -> Option<usize> {
    let first = [kind::HANDSHAKE_RESPONSE as u8, 0, 0, 0];
    body.windows(4).position(|w| w == first)
}

/// Cuts packets out of a byte stream; holds at most one packet's bytes beyond what it returned.
#[derive(Debug, Default)]
pub struct PacketReader {
    buf: Vec<u8>,
}

impl PacketReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held and not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole packet's bytes, `Ok(None)` when more are needed.
    pub fn next_packet(&mut self) -> WireResult<Option<Vec<u8>>> {
        match packet_len(&self.buf)? {
            Some(n) if self.buf.len() >= n => Ok(Some(self.buf.drain(..n).collect())),
            _ => Ok(None),
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// [MS-TSGU] 2.2.10.22 HTTP_UNICODE_STRING: a length in bytes, then UTF-16LE with its NUL.
fn put_unicode(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().chain(core::iter::once(0)).collect();
    let len = u16::try_from(units.len().saturating_mul(2)).unwrap_or(u16::MAX);
    put_u16(out, len);
    for u in units.iter().take(usize::from(len / 2)) {
        put_u16(out, *u);
    }
}

fn unicode(r: &mut Reader<'_>, what: &'static str) -> WireResult<String> {
    let len = usize::from(r.u16_le(what)?);
    Ok(utf16le(r.bytes(len, what)?))
}

impl Packet {
    /// [MS-TSGU] 2.2.5.3.3 its type.
    pub fn packet_type(&self) -> u16 {
        match self {
            Packet::HandshakeRequest { .. } => kind::HANDSHAKE_REQUEST,
            Packet::HandshakeResponse { .. } => kind::HANDSHAKE_RESPONSE,
            Packet::ExtendedAuth { .. } => kind::EXTENDED_AUTH_MSG,
            Packet::TunnelCreate { .. } => kind::TUNNEL_CREATE,
            Packet::TunnelResponse { .. } => kind::TUNNEL_RESPONSE,
            Packet::TunnelAuth { .. } => kind::TUNNEL_AUTH,
            Packet::TunnelAuthResponse { .. } => kind::TUNNEL_AUTH_RESPONSE,
            Packet::ChannelCreate { .. } => kind::CHANNEL_CREATE,
            Packet::ChannelResponse { .. } => kind::CHANNEL_RESPONSE,
            Packet::Data(_) => kind::DATA,
            Packet::ServiceMessage(_) => kind::SERVICE_MESSAGE,
            Packet::ReauthMessage(_) => kind::REAUTH_MESSAGE,
            Packet::Keepalive => kind::KEEPALIVE,
            Packet::CloseChannel { .. } => kind::CLOSE_CHANNEL,
            Packet::CloseChannelResponse { .. } => kind::CLOSE_CHANNEL_RESPONSE,
            Packet::Unknown { packet_type } => *packet_type,
        }
    }

    /// The HRESULT the packet carries, for the answers that carry one.
    pub fn code(&self) -> Option<u32> {
        match self {
            Packet::HandshakeResponse { error, .. }
            | Packet::ExtendedAuth { error, .. }
            | Packet::TunnelAuthResponse { error, .. }
            | Packet::ChannelResponse { error, .. } => Some(*error),
            Packet::TunnelResponse { status, .. }
            | Packet::CloseChannel { status }
            | Packet::CloseChannelResponse { status } => Some(*status),
            _ => None,
        }
    }

    /// Its name as [MS-TSGU] 2.2.10 spells it.
    pub fn name(&self) -> &'static str {
        name_of(self.packet_type())
    }

    /// One line of the fields that matter.
    pub fn summary(&self) -> String {
        let code = |c: u32| codes::Display(Table::Gateway, c).to_string();
        match self {
            Packet::HandshakeRequest {
                major,
                minor,
                extended_auth,
                ..
            } => format!("version {major}.{minor}, extended auth 0x{extended_auth:x}"),
            Packet::HandshakeResponse {
                error,
                major,
                minor,
                server_version,
                extended_auth,
            } => format!(
                "{}, version {major}.{minor}, server version {server_version}, extended auth 0x{extended_auth:x}",
                code(*error)
            ),
            Packet::ExtendedAuth { error, blob_len } => {
                format!("{}, {blob_len}-byte token (not shown)", code(*error))
            }
            Packet::TunnelCreate {
                caps,
                paa_cookie,
                reauth_context,
            } => {
                let mut s = format!("capabilities 0x{caps:x}");
                if *paa_cookie {
                    s.push_str(", PAA cookie (not shown)");
                }
                if reauth_context.is_some() {
                    s.push_str(", reauthentication");
                }
                s
            }
            Packet::TunnelResponse {
                status,
                tunnel_id,
                caps,
                consent,
                ..
            } => {
                let mut s = code(*status);
                if let Some(id) = tunnel_id {
                    s.push_str(&format!(", tunnel {id}"));
                }
                if let Some(c) = caps {
                    s.push_str(&format!(", capabilities 0x{c:x}"));
                }
                if consent.is_some() {
                    s.push_str(", consent message");
                }
                s
            }
            Packet::TunnelAuth { client_name } => format!("client {client_name}"),
            Packet::TunnelAuthResponse {
                error,
                redirection_flags,
                idle_timeout,
            } => {
                let mut s = code(*error);
                if let Some(f) = redirection_flags {
                    s.push_str(&format!(", redirection flags 0x{f:08x}"));
                }
                if let Some(t) = idle_timeout {
                    s.push_str(&format!(", idle timeout {t} min"));
                }
                s
            }
            Packet::ChannelCreate {
                resources, port, ..
            } => format!("to {}:{port}", resources.join(", ")),
            Packet::ChannelResponse { error, channel_id } => match channel_id {
                Some(id) => format!("{}, channel {id}", code(*error)),
                None => code(*error),
            },
            Packet::Data(d) => format!("{} bytes", d.len()),
            Packet::ServiceMessage(m) => m.clone(),
            Packet::ReauthMessage(_) => "reauthenticate".to_owned(),
            Packet::Keepalive => String::new(),
            Packet::CloseChannel { status } | Packet::CloseChannelResponse { status } => {
                code(*status)
            }
            Packet::Unknown { packet_type } => format!("type 0x{packet_type:x}"),
        }
    }

    /// The packet on the wire, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Packet::HandshakeRequest {
                major,
                minor,
                client_version,
                extended_auth,
            } => {
                body.push(*major);
                body.push(*minor);
                put_u16(&mut body, *client_version);
                put_u16(&mut body, *extended_auth);
            }
            Packet::HandshakeResponse {
                error,
                major,
                minor,
                server_version,
                extended_auth,
            } => {
                put_u32(&mut body, *error);
                body.push(*major);
                body.push(*minor);
                put_u16(&mut body, *server_version);
                put_u16(&mut body, *extended_auth);
            }
            Packet::ExtendedAuth { error, .. } => {
                put_u32(&mut body, *error);
                put_u16(&mut body, 0);
            }
            Packet::TunnelCreate {
                caps,
                reauth_context,
                ..
            } => {
                put_u32(&mut body, *caps);
                let fields = if reauth_context.is_some() {
                    TUNNEL_PACKET_REAUTH
                } else {
                    0
                };
                put_u16(&mut body, fields);
                put_u16(&mut body, 0);
                if let Some(c) = reauth_context {
                    body.extend_from_slice(&c.to_le_bytes());
                }
            }
            Packet::TunnelResponse {
                server_version,
                status,
                tunnel_id,
                caps,
                consent,
            } => {
                put_u16(&mut body, *server_version);
                put_u32(&mut body, *status);
                let mut fields = 0;
                if tunnel_id.is_some() {
                    fields |= TUNNEL_RESPONSE_TUNNEL_ID;
                }
                if caps.is_some() {
                    fields |= TUNNEL_RESPONSE_CAPS;
                }
                if consent.is_some() {
                    fields |= TUNNEL_RESPONSE_CONSENT_MSG;
                }
                put_u16(&mut body, fields);
                put_u16(&mut body, 0);
                if let Some(id) = tunnel_id {
                    put_u32(&mut body, *id);
                }
                if let Some(c) = caps {
                    put_u32(&mut body, *c);
                }
                if let Some(m) = consent {
                    put_unicode(&mut body, m);
                }
            }
            Packet::TunnelAuth { client_name } => {
                put_u16(&mut body, 0);
                put_unicode(&mut body, client_name);
            }
            Packet::TunnelAuthResponse {
                error,
                redirection_flags,
                idle_timeout,
            } => {
                put_u32(&mut body, *error);
                let mut fields = 0;
                if redirection_flags.is_some() {
                    fields |= AUTH_RESPONSE_REDIR_FLAGS;
                }
                if idle_timeout.is_some() {
                    fields |= AUTH_RESPONSE_IDLE_TIMEOUT;
                }
                put_u16(&mut body, fields);
                put_u16(&mut body, 0);
                if let Some(f) = redirection_flags {
                    put_u32(&mut body, *f);
                }
                if let Some(t) = idle_timeout {
                    put_u32(&mut body, *t);
                }
            }
            Packet::ChannelCreate {
                resources,
                alternates,
                port,
                protocol,
            } => {
                body.push(u8::try_from(resources.len()).unwrap_or(u8::MAX));
                body.push(u8::try_from(alternates.len()).unwrap_or(u8::MAX));
                put_u16(&mut body, *port);
                put_u16(&mut body, *protocol);
                for r in resources.iter().chain(alternates).take(2 * 255) {
                    put_unicode(&mut body, r);
                }
            }
            Packet::ChannelResponse { error, channel_id } => {
                put_u32(&mut body, *error);
                put_u16(
                    &mut body,
                    if channel_id.is_some() {
                        CHANNEL_RESPONSE_CHANNEL_ID
                    } else {
                        0
                    },
                );
                put_u16(&mut body, 0);
                if let Some(id) = channel_id {
                    put_u32(&mut body, *id);
                }
            }
            Packet::Data(d) => {
                let n = d.len().min(MAX_DATA);
                put_u16(&mut body, u16::try_from(n).unwrap_or(u16::MAX));
                body.extend_from_slice(d.get(..n).unwrap_or_default());
            }
            Packet::ServiceMessage(m) => put_unicode(&mut body, m),
            Packet::ReauthMessage(c) => body.extend_from_slice(&c.to_le_bytes()),
            Packet::Keepalive | Packet::Unknown { .. } => {}
            Packet::CloseChannel { status } | Packet::CloseChannelResponse { status } => {
                put_u32(&mut body, *status);
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        put_u16(&mut out, self.packet_type());
        put_u16(&mut out, 0);
        put_u32(
            &mut out,
            u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX),
        );
        out.extend_from_slice(&body);
        out
    }

    /// Decodes one whole packet (as [`packet_len`] cut it).
    pub fn decode(packet: &[u8]) -> WireResult<Packet> {
        let mut r = Reader::new(packet);
        let packet_type = r.u16_le("packetType")?;
        r.skip(2, "reserved")?;
        let len = r.u32_le("packetLength")? as usize;
        let body_len = len.checked_sub(HEADER_LEN).ok_or(WireError {
            offset: 4,
            what: "packetLength shorter than the packet header",
        })?;
        let mut b = Reader::with_base(r.bytes(body_len, "packet body")?, HEADER_LEN);
        let p = match packet_type {
            kind::HANDSHAKE_REQUEST => Packet::HandshakeRequest {
                major: b.u8("verMajor")?,
                minor: b.u8("verMinor")?,
                client_version: b.u16_le("clientVersion")?,
                extended_auth: b.u16_le("extendedAuth")?,
            },
            kind::HANDSHAKE_RESPONSE => Packet::HandshakeResponse {
                error: b.u32_le("errorCode")?,
                major: b.u8("verMajor")?,
                minor: b.u8("verMinor")?,
                server_version: b.u16_le("serverVersion")?,
                extended_auth: b.u16_le("extendedAuth")?,
            },
            kind::EXTENDED_AUTH_MSG => {
                let error = b.u32_le("errorCode")?;
                let blob_len = usize::from(b.u16_le("cbAuthBlob")?);
                b.skip(blob_len, "authBlob")?;
                Packet::ExtendedAuth { error, blob_len }
            }
            kind::TUNNEL_CREATE => {
                let caps = b.u32_le("capsFlags")?;
                let fields = b.u16_le("fieldsPresent")?;
                b.skip(2, "reserved")?;
                let mut reauth_context = None;
                let paa_cookie = fields & TUNNEL_PACKET_PAA_COOKIE != 0;
                if fields & TUNNEL_PACKET_REAUTH != 0 {
                    let bytes = b.array::<8>("reauthTunnelContext")?;
                    reauth_context = Some(u64::from_le_bytes(bytes));
                }
                Packet::TunnelCreate {
                    caps,
                    paa_cookie,
                    reauth_context,
                }
            }
            kind::TUNNEL_RESPONSE => {
                let server_version = b.u16_le("serverVersion")?;
                let status = b.u32_le("statusCode")?;
                let fields = b.u16_le("fieldsPresent")?;
                b.skip(2, "reserved")?;
                let mut p = Packet::TunnelResponse {
                    server_version,
                    status,
                    tunnel_id: None,
                    caps: None,
                    consent: None,
                };
                // The optional fields of a refusal may be missing; the code alone decides.
                if let Packet::TunnelResponse {
                    tunnel_id,
                    caps,
                    consent,
                    ..
                } = &mut p
                {
                    let optional = (|| {
                        if fields & TUNNEL_RESPONSE_TUNNEL_ID != 0 {
                            *tunnel_id = Some(b.u32_le("tunnelId")?);
                        }
                        if fields & TUNNEL_RESPONSE_CAPS != 0 {
                            *caps = Some(b.u32_le("capsFlags")?);
                        }
                        if fields & TUNNEL_RESPONSE_SOH_REQ != 0 {
                            b.skip(20, "nonce")?;
                            unicode(&mut b, "serverCert")?;
                        }
                        if fields & TUNNEL_RESPONSE_CONSENT_MSG != 0 {
                            *consent = Some(unicode(&mut b, "consentMsg")?);
                        }
                        Ok::<_, WireError>(())
                    })();
                    if optional.is_err() && !codes::gateway::failed(status) {
                        optional?;
                    }
                }
                p
            }
            kind::TUNNEL_AUTH => {
                let fields = b.u16_le("fieldsPresent")?;
                let client_name = unicode(&mut b, "clientName")?;
                if fields & TUNNEL_AUTH_SOH != 0 {
                    let n = usize::from(b.u16_le("cbStatementOfHealth")?);
                    b.skip(n, "statementOfHealth")?;
                }
                Packet::TunnelAuth { client_name }
            }
            kind::TUNNEL_AUTH_RESPONSE => {
                let error = b.u32_le("errorCode")?;
                let fields = b.u16_le("fieldsPresent")?;
                b.skip(2, "reserved")?;
                let mut redirection_flags = None;
                let mut idle_timeout = None;
                let optional = (|| {
                    if fields & AUTH_RESPONSE_REDIR_FLAGS != 0 {
                        redirection_flags = Some(b.u32_le("redirFlags")?);
                    }
                    if fields & AUTH_RESPONSE_IDLE_TIMEOUT != 0 {
                        idle_timeout = Some(b.u32_le("idleTimeout")?);
                    }
                    if fields & AUTH_RESPONSE_SOH_RESPONSE != 0 {
                        let n = usize::from(b.u16_le("cbSohResponse")?);
                        b.skip(n, "sohResponse")?;
                    }
                    Ok::<_, WireError>(())
                })();
                if optional.is_err() && !codes::gateway::failed(error) {
                    optional?;
                }
                Packet::TunnelAuthResponse {
                    error,
                    redirection_flags,
                    idle_timeout,
                }
            }
            kind::CHANNEL_CREATE => {
                let n = b.u8("numResources")?;
                let alt = b.u8("numAltResources")?;
                let port = b.u16_le("port")?;
                let protocol = b.u16_le("protocol")?;
                let mut resources = Vec::new();
                for _ in 0..n {
                    resources.push(unicode(&mut b, "resourceName")?);
                }
                let mut alternates = Vec::new();
                for _ in 0..alt {
                    alternates.push(unicode(&mut b, "altResourceName")?);
                }
                Packet::ChannelCreate {
                    resources,
                    alternates,
                    port,
                    protocol,
                }
            }
            kind::CHANNEL_RESPONSE => {
                let error = b.u32_le("errorCode")?;
                let fields = b.u16_le("fieldsPresent")?;
                b.skip(2, "reserved")?;
                let channel_id = if fields & CHANNEL_RESPONSE_CHANNEL_ID != 0 {
                    match b.u32_le("channelId") {
                        Ok(id) => Some(id),
                        Err(_) if codes::gateway::failed(error) => None,
                        Err(e) => return Err(e),
                    }
                } else {
                    None
                };
                Packet::ChannelResponse { error, channel_id }
            }
            kind::DATA => {
                let n = usize::from(b.u16_le("cbDataLen")?);
                Packet::Data(b.bytes(n, "data")?.to_vec())
            }
            kind::SERVICE_MESSAGE => Packet::ServiceMessage(unicode(&mut b, "message")?),
            kind::REAUTH_MESSAGE => {
                Packet::ReauthMessage(u64::from_le_bytes(b.array::<8>("reauthTunnelContext")?))
            }
            kind::KEEPALIVE => Packet::Keepalive,
            kind::CLOSE_CHANNEL => Packet::CloseChannel {
                status: b.u32_le("statusCode")?,
            },
            kind::CLOSE_CHANNEL_RESPONSE => Packet::CloseChannelResponse {
                status: b.u32_le("statusCode")?,
            },
            other => Packet::Unknown { packet_type: other },
        };
        Ok(p)
    }
}

/// [MS-TSGU] 2.2.10 the name of a packet type.
pub fn name_of(packet_type: u16) -> &'static str {
    match packet_type {
        kind::HANDSHAKE_REQUEST => "HTTP_HANDSHAKE_REQUEST_PACKET",
        kind::HANDSHAKE_RESPONSE => "HTTP_HANDSHAKE_RESPONSE_PACKET",
        kind::EXTENDED_AUTH_MSG => "HTTP_EXTENDED_AUTH_PACKET",
        kind::TUNNEL_CREATE => "HTTP_TUNNEL_PACKET",
        kind::TUNNEL_RESPONSE => "HTTP_TUNNEL_RESPONSE",
        kind::TUNNEL_AUTH => "HTTP_TUNNEL_AUTH_PACKET",
        kind::TUNNEL_AUTH_RESPONSE => "HTTP_TUNNEL_AUTH_RESPONSE",
        kind::CHANNEL_CREATE => "HTTP_CHANNEL_PACKET",
        kind::CHANNEL_RESPONSE => "HTTP_CHANNEL_RESPONSE",
        kind::DATA => "HTTP_DATA_PACKET",
        kind::SERVICE_MESSAGE => "HTTP_SERVICE_MESSAGE",
        kind::REAUTH_MESSAGE => "HTTP_REAUTH_MESSAGE",
        kind::KEEPALIVE => "HTTP keepalive",
        kind::CLOSE_CHANNEL => "HTTP_CLOSE_PACKET (close channel)",
        kind::CLOSE_CHANNEL_RESPONSE => "HTTP_CLOSE_PACKET (close channel response)",
        _ => "HTTP transport packet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_round_trips() {
        let packets = [
            Packet::HandshakeRequest {
                major: 1,
                minor: 0,
                client_version: 0,
                extended_auth: 0,
            },
            Packet::HandshakeResponse {
                error: 0,
                major: 1,
                minor: 0,
                server_version: 0,
                extended_auth: 0,
            },
            Packet::TunnelCreate {
                caps: CAPS_QUAR_SOH | CAPS_MESSAGING_CONSENT_SIGN,
                paa_cookie: false,
                reauth_context: Some(7),
            },
            Packet::TunnelResponse {
                server_version: 1,
                status: 0,
                tunnel_id: Some(10),
                caps: Some(CAPS_IDLE_TIMEOUT),
                consent: Some("be nice".to_owned()),
            },
            Packet::TunnelAuth {
                client_name: "rdptrace".to_owned(),
            },
            Packet::TunnelAuthResponse {
                error: 0,
                redirection_flags: Some(0x8000_0000),
                idle_timeout: Some(0),
            },
            Packet::ChannelCreate {
                resources: vec!["127.0.0.1".to_owned()],
                alternates: Vec::new(),
                port: 3389,
                protocol: PROTOCOL_RDP,
            },
            Packet::ChannelResponse {
                error: 0,
                channel_id: Some(1),
            },
            Packet::Data(vec![3, 0, 0, 7, 2, 0xf0, 0x80]),
            Packet::ServiceMessage("maintenance at noon".to_owned()),
            Packet::ReauthMessage(42),
            Packet::Keepalive,
            Packet::CloseChannel { status: 0 },
            Packet::CloseChannelResponse { status: 0 },
        ];
        for p in packets {
            let bytes = p.encode();
            assert_eq!(packet_len(&bytes).unwrap(), Some(bytes.len()), "{p:?}");
            assert_eq!(Packet::decode(&bytes).unwrap(), p);
        }
    }

    /// [MS-TSGU] 2.2.10.10 the handshake request FreeRDP 2.11 writes, byte for byte.
    #[test]
    fn freerdp_handshake_request() {
        let wire = [1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0];
        assert_eq!(
            Packet::decode(&wire).unwrap(),
            Packet::HandshakeRequest {
                major: 1,
                minor: 0,
                client_version: 0,
                extended_auth: 0
            }
        );
        assert_eq!(
            Packet::HandshakeRequest {
                major: 1,
                minor: 0,
                client_version: 0,
                extended_auth: 0
            }
            .encode(),
            wire
        );
    }

    /// A refusal keeps its code though its optional fields are cut; a hostile length is refused at once.
    #[test]
    fn refusals_and_hostile_lengths() {
        let mut refusal = Packet::TunnelResponse {
            server_version: 0,
            status: crate::codes::gateway::E_PROXY_NAP_ACCESSDENIED,
            tunnel_id: None,
            caps: None,
            consent: None,
        }
        .encode();
        // fieldsPresent claims a tunnel id that is not there.
        if let Some(b) = refusal.get_mut(14) {
            *b = 1;
        }
        assert_eq!(
            Packet::decode(&refusal).unwrap().code(),
            Some(crate::codes::gateway::E_PROXY_NAP_ACCESSDENIED)
        );
        assert!(packet_len(&[5, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(packet_len(&[5, 0, 0, 0, 3, 0, 0, 0]).is_err());
        assert!(Packet::decode(&[0x0a, 0, 0, 0, 12, 0, 0, 0, 0xff, 0xff, 1, 2]).is_err());
        let mut r = PacketReader::default();
        r.push(&Packet::Keepalive.encode()[..5]);
        assert_eq!(r.next_packet().unwrap(), None);
        r.push(&Packet::Keepalive.encode()[5..]);
        assert_eq!(r.next_packet().unwrap(), Some(Packet::Keepalive.encode()));
    }
}
