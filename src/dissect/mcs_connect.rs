//! `mcs_connect` phase: [2.2.1.3] MCS Connect Initial and [2.2.1.4] MCS Connect Response with their GCC
//! user data blocks.
//!
//! The GCC blocks are found by their H.221 keys ("Duca" and "McDn", [2.2.1.3] / [2.2.1.4]) and walked by
//! their TS_UD_HEADER ([2.2.1.3.1]). Each block is read field by field so that an old client's shorter
//! Client Core Data, or an odd server, still yields every field that is there.

use super::Dissector;
use crate::codes::{self, Table};
use crate::pdu::PduInfo;
use crate::trace::Fact;
use crate::trace::{EventKind, Side};
use crate::wire::{Reader, WireError, WireResult, utf16le};

/// [2.2.1.3.1] TS_UD_HEADER types.
pub const CS_CORE: u16 = 0xc001;
pub const CS_SECURITY: u16 = 0xc002;
pub const CS_NET: u16 = 0xc003;
/// [2.2.1.3.5] Client Cluster Data.
pub const CS_CLUSTER: u16 = 0xc004;
/// [2.2.1.3.5] REDIRECTED_SESSIONID_FIELD_VALID.
const REDIRECTED_SESSIONID_FIELD_VALID: u32 = 0x0000_0002;
pub const SC_CORE: u16 = 0x0c01;
pub const SC_SECURITY: u16 = 0x0c02;
pub const SC_NET: u16 = 0x0c03;
pub const SC_MCS_MSGCHANNEL: u16 = 0x0c04;

/// [2.2.1.4.3] The name of an encryptionMethod, or its value in hex.
pub fn encryption_method_name(v: u32) -> String {
    codes::lookup(Table::EncryptionMethod, v)
        .map_or_else(|| format!("0x{v:08x}"), |row| row.name.to_owned())
}

/// [2.2.1.3.3] The names of the flags in a client's encryptionMethods.
pub fn encryption_methods_names(v: u32) -> String {
    codes::flag_names(Table::EncryptionMethod, v)
}

/// [2.2.1.4.3] The name of an encryptionLevel, or its value.
pub fn encryption_level_name(v: u32) -> String {
    codes::lookup(Table::EncryptionLevel, v)
        .map_or_else(|| format!("{v}"), |row| row.name.to_owned())
}

/// [T.125] 7 Result values of the Connect-Response.
pub fn mcs_result_name(v: u8) -> &'static str {
    match v {
        0 => "rt-successful",
        1 => "rt-domain-merging",
        2 => "rt-domain-not-hierarchical",
        3 => "rt-no-such-channel",
        4 => "rt-no-such-domain",
        5 => "rt-no-such-user",
        6 => "rt-not-admitted",
        7 => "rt-other-user-id",
        8 => "rt-parameters-unacceptable",
        9 => "rt-token-not-available",
        10 => "rt-token-not-possessed",
        11 => "rt-too-many-channels",
        12 => "rt-too-many-tokens",
        13 => "rt-too-many-users",
        14 => "rt-unspecified-failure",
        15 => "rt-user-rejected",
        _ => "unknown result",
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// [2.2.1.3] / [2.2.1.4] The H.221 key of the client's GCC user data ("Duca") and of the server's ("McDn").
pub const CLIENT_H221_KEY: &[u8; 4] = b"Duca";
pub const SERVER_H221_KEY: &[u8; 4] = b"McDn";

/// The most GCC user data blocks one PDU may hold (there are a dozen kinds).
pub const MAX_USER_DATA_BLOCKS: usize = 64;

/// [2.2.1.3.1] One GCC user data block: its TS_UD_HEADER type, and its body after the header (offsets kept
/// relative to the enclosing PDU).
#[derive(Debug, Clone)]
pub struct UserDataBlock<'a> {
    pub kind: u16,
    pub body: Reader<'a>,
}

/// [2.2.1.3.1] The TS_UD_HEADER blocks in `data`, which holds the blocks and nothing else: each block in
/// turn, then an error if a block is shorter than its header or longer than what is left, or past
/// [`MAX_USER_DATA_BLOCKS`]; nothing after an error.
pub fn user_data_blocks(data: Reader<'_>) -> UserDataBlocks<'_> {
    UserDataBlocks {
        data,
        count: 0,
        failed: false,
    }
}

/// The iterator of [`user_data_blocks`].
#[derive(Debug, Clone)]
pub struct UserDataBlocks<'a> {
    data: Reader<'a>,
    count: usize,
    failed: bool,
}

impl<'a> UserDataBlocks<'a> {
    fn block(&mut self) -> WireResult<UserDataBlock<'a>> {
        let start = self.data.offset();
        if self.count == MAX_USER_DATA_BLOCKS {
            return Err(self.data.err("more than 64 GCC user data blocks"));
        }
        let mut header = self.data.clone();
        let kind = header.u16_le("TS_UD_HEADER type")?;
        let len = usize::from(header.u16_le("TS_UD_HEADER length")?);
        if len < 4 {
            return Err(WireError {
                offset: start,
                what: "GCC user data block shorter than its header",
            });
        }
        let mut body = self
            .data
            .sub(len, "GCC user data block longer than the user data")?;
        body.skip(4, "TS_UD_HEADER")?;
        self.count += 1;
        Ok(UserDataBlock { kind, body })
    }
}

impl<'a> Iterator for UserDataBlocks<'a> {
    type Item = WireResult<UserDataBlock<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        // INVARIANT: each block consumes at least its 4-byte header, and an error ends the walk.
        if self.failed || self.data.remaining() < 4 {
            return None;
        }
        let block = self.block();
        self.failed = block.is_err();
        Some(block)
    }
}

/// The GCC user data blocks after the H.221 `key` of an MCS Connect PDU, found by the key: the PER length
/// after it bounds them (the blocks of a PDU cut short are read as far as they go).
fn blocks<'a>(mcs: &'a [u8], key: &[u8], base: usize) -> WireResult<UserDataBlocks<'a>> {
    let pos = find(mcs, key).ok_or(WireError {
        offset: base,
        what: "no GCC user data (H.221 key) in the MCS PDU",
    })?;
    let after = pos + key.len();
    let mut r = Reader::with_base(mcs.get(after..).unwrap_or(&[]), base + after);
    let len = r.per_length("GCC user data length")?;
    let avail = r.remaining();
    Ok(user_data_blocks(r.sub(len.min(avail), "GCC user data")?))
}

#[derive(Debug, Default)]
struct ClientData {
    version: Option<u32>,
    width: Option<u16>,
    height: Option<u16>,
    keyboard_layout: Option<u32>,
    client_build: Option<u32>,
    client_name: Option<String>,
    requested_protocols: Option<u32>,
    encryption_methods: Option<u32>,
    channels: Vec<String>,
    /// [2.2.1.3.5] the session a redirected client asks for.
    redirected_session: Option<u32>,
}

fn client_core(mut r: Reader<'_>, out: &mut ClientData) -> Result<(), WireError> {
    out.version = Some(r.u32_le("version")?);
    out.width = Some(r.u16_le("desktopWidth")?);
    out.height = Some(r.u16_le("desktopHeight")?);
    r.u16_le("colorDepth")?;
    r.u16_le("SASSequence")?;
    out.keyboard_layout = Some(r.u32_le("keyboardLayout")?);
    out.client_build = Some(r.u32_le("clientBuild")?);
    out.client_name = Some(utf16le(r.bytes(32, "clientName")?));
    r.skip(12, "keyboardType, keyboardSubType, keyboardFunctionKey")?;
    r.skip(64, "imeFileName")?;
    // Optional fields: each one present only if all the earlier ones are ([2.2.1.3.2]).
    if r.remaining() < 2 + 2 + 4 + 2 + 2 + 2 + 64 + 1 + 1 + 4 {
        return Ok(());
    }
    r.skip(2 + 2 + 4 + 2 + 2 + 2 + 64 + 1 + 1, "optional core fields")?;
    out.requested_protocols = Some(r.u32_le("serverSelectedProtocol")?);
    Ok(())
}

/// [2.2.1.3] The client's GCC user data blocks of a Connect Initial.
fn client_data(mcs: &[u8], base: usize, data: &mut ClientData) -> WireResult<()> {
    for UserDataBlock { kind, body: mut b } in
        blocks(mcs, CLIENT_H221_KEY, base)?.collect::<WireResult<Vec<_>>>()?
    {
        match kind {
            CS_CORE => client_core(b, data)?,
            CS_SECURITY => data.encryption_methods = Some(b.u32_le("encryptionMethods")?),
            CS_CLUSTER => {
                let flags = b.u32_le("Flags")?;
                let session = b.u32_le("RedirectedSessionID")?;
                if flags & REDIRECTED_SESSIONID_FIELD_VALID != 0 {
                    data.redirected_session = Some(session);
                }
            }
            CS_NET => {
                let count = b.u32_le("channelCount")?;
                for _ in 0..count.min(31) {
                    let name = b.bytes(8, "CHANNEL_DEF name")?;
                    b.u32_le("CHANNEL_DEF options")?;
                    data.channels.push(crate::wire::ascii(name));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn connect_initial(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    mcs: &[u8],
    base: usize,
) {
    let mut data = ClientData::default();
    if let Err(e) = client_data(mcs, base, &mut data) {
        d.trace.record_event(
            d.now,
            EventKind::ProtocolError {
                from,
                pdu: "MCS Connect Initial".to_owned(),
                offset: Some(e.offset),
                detail: e.what.to_owned(),
            },
        );
    }
    let mut summary = Vec::new();
    if let Some(name) = &data.client_name {
        summary.push(format!("client {name}"));
        d.trace.fact(Fact::ClientName, name.clone());
    }
    if let Some(session) = data.redirected_session {
        summary.push(format!("redirected to session {session}"));
        d.trace.fact(Fact::RedirectedSessionId, session);
    }
    if let Some(build) = data.client_build {
        summary.push(format!("build {build}"));
        d.trace.fact(Fact::ClientBuild, build);
    }
    if let Some(v) = data.version {
        d.trace.fact(Fact::ClientRdpVersion, format!("0x{v:08x}"));
    }
    if let (Some(w), Some(h)) = (data.width, data.height) {
        summary.push(format!("{w}x{h}"));
        d.trace.fact(Fact::Desktop, format!("{w}x{h}"));
    }
    if let Some(k) = data.keyboard_layout {
        d.trace.fact(Fact::KeyboardLayout, format!("0x{k:08x}"));
    }
    if let Some(p) = data.requested_protocols {
        // [2.2.1.3.2] serverSelectedProtocol: the client echoes what the server selected in the X.224
        // exchange (or, as legacy clients do, zero).
        d.trace
            .fact(Fact::ServerSelectedProtocol, codes::protocol_names(p));
    }
    if let Some(m) = data.encryption_methods {
        d.trace
            .fact(Fact::ClientEncryptionMethods, encryption_methods_names(m));
    }
    if !data.channels.is_empty() {
        summary.push(format!("channels {}", data.channels.join(",")));
        d.trace.fact(Fact::ClientChannels, data.channels.join(", "));
    }
    d.pdu(
        from,
        frame_len,
        "MCS Connect Initial",
        summary.join(", "),
        PduInfo::McsConnectInitial {
            client_version: data.version,
            desktop_width: data.width,
            desktop_height: data.height,
            keyboard_layout: data.keyboard_layout,
            client_build: data.client_build,
            client_name: data.client_name,
            requested_protocols: data.requested_protocols,
            encryption_methods: data.encryption_methods,
            channels: data.channels,
        },
    );
}

#[derive(Debug, Default)]
struct ServerData {
    result: u8,
    version: Option<u32>,
    client_requested_protocols: Option<u32>,
    encryption_method: Option<u32>,
    encryption_level: Option<u32>,
    server_certificate: Option<String>,
    server_random: Vec<u8>,
    certificate: Vec<u8>,
    io_channel: Option<u16>,
    channel_ids: Vec<u16>,
    message_channel: Option<u16>,
}

/// [2.2.1.4] The result and the server's GCC user data blocks of a Connect Response.
fn server_data(mcs: &[u8], base: usize, data: &mut ServerData) -> WireResult<()> {
    let mut r = Reader::with_base(mcs, base);
    r.skip(2, "Connect-Response tag")?;
    r.ber_length("Connect-Response length")?;
    if r.u8("result tag")? != 0x0a {
        return Err(r.err("Connect-Response result is not an ENUMERATED"));
    }
    let n = r.ber_length("result length")?;
    let result = r.bytes(n, "result")?;
    data.result = result.last().copied().unwrap_or(0);
    if data.result != 0 {
        return Ok(());
    }
    for UserDataBlock { kind, body: mut b } in
        blocks(mcs, SERVER_H221_KEY, base)?.collect::<WireResult<Vec<_>>>()?
    {
        match kind {
            SC_CORE => {
                data.version = Some(b.u32_le("version")?);
                if b.remaining() >= 4 {
                    data.client_requested_protocols = Some(b.u32_le("clientRequestedProtocols")?);
                }
            }
            SC_SECURITY => {
                data.encryption_method = Some(b.u32_le("encryptionMethod")?);
                data.encryption_level = Some(b.u32_le("encryptionLevel")?);
                if b.remaining() >= 8 {
                    let random_len = b.u32_le("serverRandomLen")? as usize;
                    let cert_len = b.u32_le("serverCertLen")? as usize;
                    data.server_random = b.bytes(random_len, "serverRandom")?.to_vec();
                    if let Ok(cert) = b.clone().bytes(cert_len, "serverCertificate") {
                        data.certificate = cert.to_vec();
                    }
                    if cert_len >= 4 {
                        let version = b.u32_le("dwVersion")?;
                        let kind = match version & 0x7fff_ffff {
                            1 => "proprietary",
                            2 => "x509",
                            _ => "unknown",
                        };
                        let temporary = if version & 0x8000_0000 != 0 {
                            " (temporary)"
                        } else {
                            ""
                        };
                        data.server_certificate = Some(format!("{kind}{temporary}"));
                    }
                }
            }
            SC_NET => {
                data.io_channel = Some(b.u16_le("MCSChannelId")?);
                let count = b.u16_le("channelCount")?;
                for _ in 0..count.min(31) {
                    data.channel_ids.push(b.u16_le("channelIdArray")?);
                }
            }
            SC_MCS_MSGCHANNEL => data.message_channel = Some(b.u16_le("MCSChannelID")?),
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn connect_response(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    mcs: &[u8],
    base: usize,
) {
    let mut data = ServerData::default();
    if let Err(e) = server_data(mcs, base, &mut data) {
        d.trace.record_event(
            d.now,
            EventKind::ProtocolError {
                from,
                pdu: "MCS Connect Response".to_owned(),
                offset: Some(e.offset),
                detail: e.what.to_owned(),
            },
        );
    }
    let mut summary = vec![mcs_result_name(data.result).to_owned()];
    if data.result != 0 {
        d.trace.fact(Fact::McsResult, mcs_result_name(data.result));
    }
    if let Some(v) = data.version {
        d.trace.fact(Fact::ServerRdpVersion, format!("0x{v:08x}"));
        summary.push(format!("server version 0x{v:08x}"));
    }
    if let Some(p) = data.client_requested_protocols {
        d.trace
            .fact(Fact::EchoedProtocols, codes::protocol_names(p));
    }
    if let (Some(m), Some(l)) = (data.encryption_method, data.encryption_level) {
        d.state.encryption_method = m;
        d.state.encryption_level = l;
        d.trace
            .fact(Fact::EncryptionMethod, encryption_method_name(m));
        d.trace
            .fact(Fact::EncryptionLevel, encryption_level_name(l));
        summary.push(format!(
            "{}, {}",
            encryption_method_name(m),
            encryption_level_name(l)
        ));
    }
    if let Some(c) = &data.server_certificate {
        d.trace.fact(Fact::ServerCertificate, c.clone());
    }
    if let (Some(m), Some(l)) = (data.encryption_method, data.encryption_level) {
        d.server_security(m, l, &data.server_random, &data.certificate);
    }
    if !data.certificate.is_empty() {
        certificate_facts(d, &data.certificate);
    }
    if let Some(io) = data.io_channel {
        d.state.io_channel = Some(io);
        d.trace.fact(Fact::IoChannel, io);
        summary.push(format!("I/O channel {io}"));
    }
    if !data.channel_ids.is_empty() {
        d.trace.fact(
            Fact::ChannelIds,
            data.channel_ids
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if let Some(m) = data.message_channel {
        d.state.message_channel = Some(m);
        d.trace.fact(Fact::MessageChannel, m);
    }
    d.pdu(
        from,
        frame_len,
        "MCS Connect Response",
        summary.join(", "),
        PduInfo::McsConnectResponse {
            result: data.result,
            server_version: data.version,
            client_requested_protocols: data.client_requested_protocols,
            encryption_method: data.encryption_method,
            encryption_level: data.encryption_level,
            server_certificate: data.server_certificate,
            io_channel: data.io_channel,
            channel_ids: data.channel_ids,
            message_channel: data.message_channel,
        },
    );
}

/// [5.3.3] What the server's certificate says: its key, and for a proprietary certificate whether the Terminal
/// Services signature verifies ([5.3.3.1.3]).
fn certificate_facts(d: &mut Dissector, certificate: &[u8]) {
    use crate::rdp_security::cert::ServerCertificate;
    let cert = match ServerCertificate::parse(certificate) {
        Ok(cert) => cert,
        Err(e) => {
            d.trace.record_event(
                d.now,
                EventKind::ProtocolError {
                    from: Side::Server,
                    pdu: "Server Security Data".to_owned(),
                    offset: None,
                    detail: format!("the server certificate does not parse: {e}"),
                },
            );
            return;
        }
    };
    match cert.public_key() {
        Ok(key) => d
            .trace
            .fact(Fact::ServerKey, format!("RSA {}-bit", key.bits())),
        Err(e) => d.trace.fact(Fact::ServerKey, e.to_string()),
    }
    if let Some(valid) = cert.signature_valid() {
        d.trace.fact(
            Fact::ServerCertificateSignature,
            if valid {
                "valid (Terminal Services signing key)"
            } else {
                "does not verify with the Terminal Services signing key"
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut out = kind.to_le_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u16 + 4).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn blocks_are_walked_by_their_headers() {
        let mut data = block(SC_CORE, &[4, 0, 8, 0]);
        data.extend(block(SC_NET, &[0xeb, 0x03, 0, 0]));
        let blocks: Vec<_> = user_data_blocks(Reader::with_base(&data, 100))
            .collect::<WireResult<_>>()
            .unwrap();
        let kinds: Vec<(u16, &[u8], usize)> = blocks
            .iter()
            .map(|b| (b.kind, b.body.rest(), b.body.offset()))
            .collect();
        assert_eq!(
            kinds,
            [
                (SC_CORE, &[4u8, 0, 8, 0][..], 104),
                (SC_NET, &[0xeb, 0x03, 0, 0][..], 112)
            ]
        );

        // A block shorter than its header, and one longer than the data: errors at the block, then nothing.
        let mut short = block(SC_CORE, &[]);
        short.extend_from_slice(&[0x03, 0x0c, 0x02, 0x00]);
        let walked: Vec<_> = user_data_blocks(Reader::new(&short)).collect();
        assert_eq!(walked.len(), 2);
        assert_eq!(
            walked[1].as_ref().unwrap_err(),
            &WireError {
                offset: 4,
                what: "GCC user data block shorter than its header"
            }
        );
        let long = [0x01, 0x0c, 0x10, 0x00, 0, 0];
        assert!(
            user_data_blocks(Reader::new(&long))
                .next()
                .unwrap()
                .is_err()
        );
    }

    /// Both walkers stopped at 64 blocks: the dissector's quietly took a 65th, the Standard RDP Security
    /// one refused the PDU. The one walker refuses it.
    #[test]
    fn more_than_64_blocks_is_an_error() {
        let data: Vec<u8> = (0..65).flat_map(|_| block(0xc0ff, &[])).collect();
        let walked: Vec<_> = user_data_blocks(Reader::new(&data)).collect();
        assert_eq!(walked.len(), 65);
        assert!(walked[..64].iter().all(Result::is_ok));
        assert_eq!(
            walked[64].as_ref().unwrap_err().what,
            "more than 64 GCC user data blocks"
        );
    }

    #[test]
    fn a_connect_initial_with_more_than_64_blocks_is_a_protocol_error() {
        let blocks: Vec<u8> = (0..65).flat_map(|_| block(0xc0ff, &[])).collect();
        let mut mcs = vec![0x7f, 0x65, 0x82, 0x00, 0x00];
        mcs.extend_from_slice(CLIENT_H221_KEY);
        mcs.extend_from_slice(&(0x8000u16 | blocks.len() as u16).to_be_bytes());
        mcs.extend_from_slice(&blocks);
        let mut frame = vec![0x03, 0x00, 0x00, 0x00, 0x02, 0xf0, 0x80];
        frame.extend_from_slice(&mcs);
        let len = (frame.len() as u16).to_be_bytes();
        frame[2..4].copy_from_slice(&len);
        let mut d = Dissector::new(crate::trace::Trace::new("t", crate::trace::Origin::Probe));
        d.on_tcp_data(Side::Client, 1.0, &frame);
        assert!(d.trace().events().any(|(_, e)| matches!(
            &e.kind,
            EventKind::ProtocolError { pdu, detail, .. }
                if pdu == "MCS Connect Initial" && detail == "more than 64 GCC user data blocks"
        )));
    }
}
