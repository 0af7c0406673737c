//! `active` phase, and the I/O channel PDUs that can come in any phase: [2.2.5.1.1] Set Error Info,
//! [2.2.3.1] Deactivate All, [2.2.10.1] Save Session Info, [2.2.2.3] Disconnect Provider Ultimatum,
//! [2.2.13] Server Redirection, and the fast-path and slow-path traffic of a running session.
//!
//! This module also routes I/O channel data ([2.2.8.1.1]) by its security header and share control header
//! to the phase modules.

use super::{Dissector, Sealed, capabilities, finalization, licensing, secure_settings};
use crate::codes::{self, Table};
use crate::pdu::PduInfo;
use crate::rdp_security::pdu::{
    BASIC_SECURITY_HEADER_LEN, FASTPATH_ENCRYPTED, FASTPATH_SECURE_CHECKSUM, FastPath,
    SEC_AUTODETECT_REQ, SEC_AUTODETECT_RSP, SEC_ENCRYPT, SEC_EXCHANGE_PKT, SEC_HEARTBEAT,
    SEC_INFO_PKT, SEC_LICENSE_PKT, SEC_REDIRECTION_PKT, SEC_SECURE_CHECKSUM, SEC_TRANSPORT_REQ,
    SEC_TRANSPORT_RSP, SecurityHeader,
};
use crate::trace::Fact;
use crate::trace::{EventKind, PhaseName, Side};
use crate::wire::{Reader, WireError, WireResult, utf16le};

/// [T.125] DomainMCSPDU choices used here.
pub const DISCONNECT_PROVIDER_ULTIMATUM: u8 = 8;
pub const SEND_DATA_REQUEST: u8 = 25;
pub const SEND_DATA_INDICATION: u8 = 26;

/// [2.2.8.1.1.1.1] pduType values.
pub const PDUTYPE_DEMANDACTIVEPDU: u16 = 0x1;
pub const PDUTYPE_CONFIRMACTIVEPDU: u16 = 0x3;
pub const PDUTYPE_DEACTIVATEALLPDU: u16 = 0x6;
pub const PDUTYPE_DATAPDU: u16 = 0x7;
pub const PDUTYPE_SERVER_REDIR_PKT: u16 = 0xa;

/// [2.2.8.1.1.1.2] pduType2 values handled here.
pub const PDUTYPE2_UPDATE: u8 = 2;
pub const PDUTYPE2_POINTER: u8 = 27;
pub const PDUTYPE2_INPUT: u8 = 28;
pub const PDUTYPE2_SHUTDOWN_REQUEST: u8 = 36;
pub const PDUTYPE2_SHUTDOWN_DENIED: u8 = 37;
pub const PDUTYPE2_SAVE_SESSION_INFO: u8 = 38;
pub const PDUTYPE2_SET_ERROR_INFO_PDU: u8 = 47;
pub const PDUTYPE2_MONITOR_LAYOUT_PDU: u8 = 55;

/// [2.2.2.3] / [T.125] Disconnect Provider Ultimatum: the reason is three bits across two bytes.
pub(super) fn disconnect_provider_ultimatum(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    mcs: &[u8],
) {
    let reason = match mcs {
        [b1, b2, ..] => ((b1 & 0x03) << 1) | (b2 >> 7),
        _ => {
            return d.decode_error(
                from,
                frame_len,
                "MCS Disconnect Provider Ultimatum",
                WireError {
                    offset: 7,
                    what: "Disconnect Provider Ultimatum without its reason",
                },
            );
        }
    };
    let name = codes::name(Table::DpuReason, u32::from(reason));
    let key = match from {
        Side::Server => Fact::DisconnectReason,
        Side::Client => Fact::ClientDisconnectReason,
    };
    d.trace.fact(key, name.clone());
    d.pdu(
        from,
        frame_len,
        "MCS Disconnect Provider Ultimatum",
        format!("reason {name} ({reason})"),
        PduInfo::DisconnectProviderUltimatum { reason },
    );
}

/// [2.2.9.1.2] fast-path output (server) and [2.2.8.1.2] fast-path input (client).
pub(super) fn fast_path(d: &mut Dissector, from: Side, frame: &[u8]) {
    // [2.2.9.1.2] The flags are the two high bits of fpOutputHeader (fpInputHeader).
    let flags = frame.first().map_or(0, |b| b >> 6);
    let encrypted = flags & FASTPATH_ENCRYPTED != 0;
    let decrypted = encrypted && fast_path_unseal(d, from, frame);
    if encrypted && !decrypted {
        // The header and the MAC aside, its size does not matter: only session data is fast-path.
        d.infer_sealed(from, frame.len().saturating_sub(8).max(1), true);
    }
    let name = match (from, encrypted) {
        (Side::Server, false) => "Fast-Path Output",
        (Side::Server, true) => "Fast-Path Output (encrypted)",
        (Side::Client, false) => "Fast-Path Input",
        (Side::Client, true) => "Fast-Path Input (encrypted)",
    };
    if from == Side::Server
        && encrypted
        && d.state.standard_security_encrypted()
        && d.state.demand_active_seen
        && d.trace.current() < PhaseName::Finalization
    {
        // [2.2.9.1.2] The server sends fast-path output only to an active session: under Standard RDP
        // Security the capability exchange and finalization are encrypted, and this is the first sign that
        // they completed.
        d.enter(PhaseName::Finalization);
        d.trace.fact(
            Fact::Finalization,
            "encrypted (Standard RDP Security); inferred complete from the server's fast-path output",
        );
        d.enter(PhaseName::Active);
    }
    if d.trace.current() >= PhaseName::Finalization {
        d.trace.tally(name, frame.len(), d.now);
    } else {
        d.decrypting = decrypted;
        d.pdu(
            from,
            frame.len(),
            name,
            String::new(),
            PduInfo::FastPath { encrypted },
        );
        d.decrypting = false;
    }
}

/// [2.2.9.1.2] / [2.2.8.1.2] An encrypted fast-path PDU through the security sink (which keeps the cipher in
/// step); whether it decrypted.
fn fast_path_unseal(d: &mut Dissector, from: Side, frame: &[u8]) -> bool {
    let Ok(pdu) = FastPath::parse(frame, d.fips()) else {
        return false;
    };
    let Some(signature) = pdu.signature else {
        return false;
    };
    let sealed = Sealed {
        data: pdu.data,
        signature,
        salted: pdu.flags & FASTPATH_SECURE_CHECKSUM != 0,
        pad: pdu.fips.map_or(0, |f| f.pad),
    };
    d.unseal(from, &sealed).is_some()
}

/// Data on the I/O or message channel: security header, then share control PDUs.
pub(super) fn io_data(d: &mut Dissector, from: Side, frame_len: usize, data: &[u8], base: usize) {
    // Under Standard RDP Security with encryption every PDU has a security header, whose flagsHi may hold
    // anything (xrdp puts the licensing wMsgSize there).
    if !d.state.standard_security_encrypted() && starts_share_control(data) {
        if from == Side::Server {
            d.settle_awaiting();
        }
        return share_controls(d, from, frame_len, data, base);
    }
    let (header, body) = match SecurityHeader::read(data, d.fips()) {
        Ok(read) => read,
        Err(e) => {
            let what = if e.offset < BASIC_SECURITY_HEADER_LEN {
                "I/O channel data shorter than a security header"
            } else {
                "encrypted data shorter than its security header"
            };
            return d.decode_error(
                from,
                frame_len,
                "I/O channel data",
                WireError { offset: base, what },
            );
        }
    };
    let flags = header.flags;
    let encrypted = flags & SEC_ENCRYPT != 0;
    let decrypted = sealed(&header, body).and_then(|s| d.unseal(from, &s));
    if from == Side::Server && flags & SEC_AUTODETECT_REQ == 0 {
        d.settle_awaiting();
    }
    let body_base = base + (data.len() - body.len());
    let body: &[u8] = decrypted.as_deref().unwrap_or(body);
    let plain = (!encrypted || decrypted.is_some()).then_some(body);
    if plain.is_none() && flags & SEALED_BY_FLAGS == 0 {
        // The plaintext length: the frame without the security header and the FIPS padding.
        let pad = header.fips.map_or(0, |f| usize::from(f.pad));
        let header_len = data.len() - body.len();
        d.infer_sealed(from, frame_len.saturating_sub(header_len + pad), false);
    }
    d.decrypting = decrypted.is_some();
    security_pdu(d, from, frame_len, flags, body, body_base, plain);
    d.decrypting = false;
}

/// Security header flags that say what an encrypted PDU is without opening it: those are not share control
/// PDUs of the connection sequence, and the inference does not read them.
const SEALED_BY_FLAGS: u16 = SEC_INFO_PKT
    | SEC_LICENSE_PKT
    | SEC_AUTODETECT_REQ
    | SEC_AUTODETECT_RSP
    | SEC_TRANSPORT_REQ
    | SEC_TRANSPORT_RSP
    | SEC_HEARTBEAT
    | SEC_REDIRECTION_PKT;

/// [2.2.8.1.1.2.2] / [2.2.8.1.1.2.3] The encrypted part of a PDU whose security header says it is encrypted.
fn sealed<'a>(header: &SecurityHeader, body: &'a [u8]) -> Option<Sealed<'a>> {
    Some(Sealed {
        data: body,
        signature: header.signature?,
        salted: header.flags & SEC_SECURE_CHECKSUM != 0,
        pad: header.fips.map_or(0, |f| f.pad),
    })
}

/// Virtual channel data under Standard RDP Security: decrypted (to keep the cipher in step) and counted.
pub(super) fn channel_sealed(d: &mut Dissector, from: Side, data: &[u8]) {
    if let Ok((header, body)) = SecurityHeader::read(data, d.fips())
        && let Some(sealed) = sealed(&header, body)
    {
        // Virtual channel contents are not dissected: opening them only keeps the cipher in step.
        d.unseal(from, &sealed);
    }
}

/// What a security header's flags say the body is; `plain` is `None` when the body stayed encrypted.
fn security_pdu(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    flags: u16,
    body: &[u8],
    body_base: usize,
    plain: Option<&[u8]>,
) {
    let encrypted = flags & SEC_ENCRYPT != 0;
    if flags & SEC_EXCHANGE_PKT != 0 {
        secure_settings::security_exchange(d, from, frame_len, body);
    } else if flags & SEC_INFO_PKT != 0 {
        secure_settings::client_info(d, from, frame_len, plain, encrypted);
    } else if flags & SEC_LICENSE_PKT != 0 {
        licensing::license(d, from, frame_len, plain);
    } else if flags & (SEC_AUTODETECT_REQ | SEC_AUTODETECT_RSP) != 0 && plain.is_some() {
        secure_settings::auto_detect(d, from, frame_len, body);
    } else if flags & SEC_TRANSPORT_REQ != 0 && plain.is_some() {
        let protocol = Reader::new(body)
            .bytes(4, "requestId")
            .and_then(|_| Reader::new(body.get(4..).unwrap_or(&[])).u16_le("requestedProtocol"))
            .unwrap_or(0);
        d.pdu(
            from,
            frame_len,
            "Initiate Multitransport Request",
            format!("requestedProtocol 0x{protocol:04x}"),
            PduInfo::MultitransportRequest {
                protocol: u32::from(protocol),
            },
        );
    } else if flags & SEC_TRANSPORT_RSP != 0 && plain.is_some() {
        d.trace
            .tally("Initiate Multitransport Response", frame_len, d.now);
    } else if flags & SEC_HEARTBEAT != 0 {
        d.trace.tally("Heartbeat", frame_len, d.now);
    } else if flags & SEC_REDIRECTION_PKT != 0 && plain.is_some() {
        // [2.2.13.2.1] Standard Security Server Redirection: the packet right after the security header.
        redirection_packet(d, from, frame_len, Reader::with_base(body, body_base));
    } else if flags & SEC_REDIRECTION_PKT != 0 {
        d.pdu(
            from,
            frame_len,
            "Standard Security Server Redirection",
            "encrypted".to_owned(),
            PduInfo::ServerRedirection {
                session_id: 0,
                target: None,
                flags: 0,
                load_balance_info: None,
                fqdn: None,
                user: None,
                password_cookie: false,
            },
        );
        d.trace.record_event(
            d.now,
            EventKind::Redirected {
                detail: "Standard Security Server Redirection PDU (encrypted)".to_owned(),
            },
        );
    } else if plain.is_none() {
        encrypted_pdu(d, from, frame_len);
    } else if starts_share_control(body) {
        share_controls(d, from, frame_len, body, body_base);
    } else {
        d.decode_error(
            from,
            frame_len,
            "I/O channel data",
            WireError {
                offset: body_base.saturating_sub(4),
                what: "neither a share control header nor a known security header",
            },
        );
    }
}

fn encrypted_pdu(d: &mut Dissector, from: Side, frame_len: usize) {
    if d.trace.current() >= PhaseName::Finalization {
        d.trace.tally("Encrypted PDU", frame_len, d.now);
    } else {
        let name = match (from, d.state.demand_active_seen) {
            (Side::Server, false) => "Server Demand Active (encrypted)",
            (Side::Client, false) => "Client PDU (encrypted)",
            (Side::Server, true) => "Server PDU (encrypted)",
            (Side::Client, true) => "Client PDU (encrypted)",
        };
        if from == Side::Server
            && !d.state.demand_active_seen
            && d.trace.current() < PhaseName::Capabilities
        {
            d.state.demand_active_seen = true;
            d.enter(PhaseName::Capabilities);
        }
        d.pdu(
            from,
            frame_len,
            name,
            "Standard RDP Security encryption".to_owned(),
            PduInfo::Encrypted,
        );
    }
}

/// [2.2.8.1.1.1.1] Whether `data` starts with a share control header (totalLength within the data, the
/// protocol version 1 in pduType) or a flow PDU (flowMarker 0x8000). [2.2.13.3.1] The Enhanced Security
/// Server Redirection PDU is a share control header with the version 0.
fn starts_share_control(data: &[u8]) -> bool {
    let [t0, t1, p0, p1, _, _, ..] = *data else {
        return false;
    };
    let total = usize::from(u16::from_le_bytes([t0, t1]));
    let pdu_type = u16::from_le_bytes([p0, p1]);
    let version_ok = pdu_type & 0xfff0 == 0x0010 || pdu_type == PDUTYPE_SERVER_REDIR_PKT;
    (total >= 6 && total <= data.len() && version_ok) || total == 0x8000
}

/// One or more share control PDUs in one MCS data PDU.
fn share_controls(d: &mut Dissector, from: Side, frame_len: usize, data: &[u8], base: usize) {
    let mut r = Reader::with_base(data, base);
    // INVARIANT: each pass consumes at least six bytes or stops.
    while r.remaining() >= 6 {
        let start = r.offset();
        let mut peek = r.clone();
        let Ok(total) = peek.u16_le("totalLength") else {
            break;
        };
        if total == 0x8000 {
            // [2.2.8.1.1.1.1] flow control PDUs (flowMarker), 8 bytes, not used by current servers.
            d.trace.tally("Flow PDU", 8, d.now);
            // INVARIANT: at most what remains, so this moves on by six bytes at least.
            if r.skip(8.min(r.remaining()), "flow PDU").is_err() {
                break;
            }
            continue;
        }
        let total = usize::from(total);
        if total < 6 || total > r.remaining() {
            d.decode_error(
                from,
                frame_len,
                "Share Control",
                WireError {
                    offset: start,
                    what: "share control totalLength outside the PDU",
                },
            );
            return;
        }
        let Ok(mut pdu) = r.sub(total, "share control PDU") else {
            return;
        };
        match share_control_header(&mut pdu) {
            Ok(pdu_type) => share_control(d, from, frame_len, pdu_type & 0x0f, pdu),
            Err(e) => return d.decode_error(from, frame_len, "Share Control", e),
        }
    }
}

/// [2.2.8.1.1.1.1] A share control header: totalLength, pduType, pduSource; the pduType.
fn share_control_header(r: &mut Reader<'_>) -> WireResult<u16> {
    r.u16_le("totalLength")?;
    let pdu_type = r.u16_le("pduType")?;
    r.u16_le("pduSource")?;
    Ok(pdu_type)
}

/// [2.2.8.1.1.1.2] A share data header after the share control header: pduType2 and compressedType.
fn share_data_header(r: &mut Reader<'_>) -> WireResult<(u8, u8)> {
    r.u32_le("shareId")?;
    r.u8("pad1")?;
    r.u8("streamId")?;
    r.u16_le("uncompressedLength")?;
    let pdu_type2 = r.u8("pduType2")?;
    let compressed = r.u8("compressedType")?;
    r.u16_le("compressedLength")?;
    Ok((pdu_type2, compressed))
}

fn share_control(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    pdu_type: u16,
    mut r: Reader<'_>,
) {
    let base = r.offset();
    match pdu_type {
        PDUTYPE_DEMANDACTIVEPDU | PDUTYPE_CONFIRMACTIVEPDU => {
            capabilities::active_pdu(d, from, frame_len, r.rest(), base);
        }
        PDUTYPE_DEACTIVATEALLPDU => {
            let share_id = r.u32_le("shareId").unwrap_or(0);
            d.trace.fact(Fact::DeactivateAll, true);
            d.pdu(
                from,
                frame_len,
                "Deactivate All",
                format!("shareId 0x{share_id:08x}"),
                PduInfo::DeactivateAll,
            );
        }
        PDUTYPE_SERVER_REDIR_PKT => redirection(d, from, frame_len, r),
        PDUTYPE_DATAPDU => {
            match share_data_header(&mut r) {
                Ok((pdu_type2, compressed)) => {
                    if compressed & 0x20 != 0 {
                        // [2.2.8.1.1.1.2] PACKET_COMPRESSED: the body needs the bulk decompressor.
                        d.trace.tally("Share Data (compressed)", frame_len, d.now);
                        return;
                    }
                    share_data(d, from, frame_len, pdu_type2, r.rest());
                }
                Err(e) => d.decode_error(from, frame_len, "Share Data", e),
            }
        }
        other => d.pdu(
            from,
            frame_len,
            "Share Control",
            format!("pduType {other}"),
            PduInfo::ShareControl { pdu_type: other },
        ),
    }
}

fn share_data(d: &mut Dissector, from: Side, frame_len: usize, pdu_type2: u8, body: &[u8]) {
    match pdu_type2 {
        finalization::PDUTYPE2_SYNCHRONIZE
        | finalization::PDUTYPE2_CONTROL
        | finalization::PDUTYPE2_FONTLIST
        | finalization::PDUTYPE2_FONTMAP
        | finalization::PDUTYPE2_BITMAPCACHE_PERSISTENT_LIST => {
            if d.trace.current() >= PhaseName::Active {
                d.trace
                    .tally("Finalization PDU after activation", frame_len, d.now);
            } else {
                finalization::share_data(d, from, frame_len, pdu_type2, body);
            }
        }
        PDUTYPE2_SET_ERROR_INFO_PDU => match Reader::new(body).u32_le("errorInfo") {
            Ok(code) => {
                d.trace.fact(
                    Fact::ErrorInfo,
                    codes::Display(Table::ErrorInfo, code).to_string(),
                );
                d.pdu(
                    from,
                    frame_len,
                    "Set Error Info",
                    codes::Display(Table::ErrorInfo, code).to_string(),
                    PduInfo::SetErrorInfo { code },
                );
            }
            Err(e) => d.decode_error(from, frame_len, "Set Error Info", e),
        },
        PDUTYPE2_SAVE_SESSION_INFO => {
            let info_type = Reader::new(body).u32_le("infoType").unwrap_or(u32::MAX);
            let name = match info_type {
                0 => "INFOTYPE_LOGON",
                1 => "INFOTYPE_LOGON_LONG",
                2 => "INFOTYPE_LOGON_PLAINNOTIFY",
                3 => "INFOTYPE_LOGON_EXTENDED_INFO",
                _ => "unknown infoType",
            };
            d.trace.fact(Fact::SaveSessionInfo, name);
            d.pdu(
                from,
                frame_len,
                "Save Session Info",
                name.to_owned(),
                PduInfo::SaveSessionInfo { info_type },
            );
        }
        PDUTYPE2_MONITOR_LAYOUT_PDU => d.pdu(
            from,
            frame_len,
            "Monitor Layout",
            String::new(),
            PduInfo::MonitorLayout,
        ),
        PDUTYPE2_UPDATE => d.trace.tally("Slow-Path Update", frame_len, d.now),
        PDUTYPE2_POINTER => d.trace.tally("Slow-Path Pointer", frame_len, d.now),
        PDUTYPE2_INPUT => d.trace.tally("Slow-Path Input", frame_len, d.now),
        PDUTYPE2_SHUTDOWN_REQUEST => d.pdu(
            from,
            frame_len,
            "Shutdown Request",
            String::new(),
            PduInfo::ShareData { pdu_type2 },
        ),
        PDUTYPE2_SHUTDOWN_DENIED => d.pdu(
            from,
            frame_len,
            "Shutdown Request Denied",
            String::new(),
            PduInfo::ShareData { pdu_type2 },
        ),
        other => {
            if d.trace.current() >= PhaseName::Active {
                d.trace
                    .tally(&format!("Share Data pduType2 {other}"), frame_len, d.now);
            } else {
                d.pdu(
                    from,
                    frame_len,
                    "Share Data",
                    format!("pduType2 {other}"),
                    PduInfo::ShareData { pdu_type2: other },
                );
            }
        }
    }
}

/// [2.2.13.3.1] Enhanced Security Server Redirection: pad, then [2.2.13.1] RDP_SERVER_REDIRECTION_PACKET.
fn redirection(d: &mut Dissector, from: Side, frame_len: usize, mut r: Reader<'_>) {
    if r.u16_le("pad2Octets").is_err() {
        return d.decode_error(from, frame_len, "Server Redirection", r.err("pad2Octets"));
    }
    redirection_packet(d, from, frame_len, r);
}

/// [2.2.13.1] RDP_SERVER_REDIRECTION_PACKET: the target, the routing token of the next connection, the user;
/// of the password (a cookie for the target) only whether it was there.
fn redirection_packet(d: &mut Dissector, from: Side, frame_len: usize, mut r: Reader<'_>) {
    let parsed = (|| {
        r.u16_le("Flags")?;
        r.u16_le("Length")?;
        let session_id = r.u32_le("SessionID")?;
        let flags = r.u32_le("RedirFlags")?;
        let mut info = Redirect {
            session_id,
            flags,
            ..Redirect::default()
        };
        // [2.2.13.1] the optional fields, in this order, each a 32-bit length and its bytes.
        let mut field = |bit: u32, what: &'static str| -> Result<Option<&[u8]>, WireError> {
            if flags & bit == 0 {
                return Ok(None);
            }
            let len = r.u32_le(what)? as usize;
            r.bytes(len, what).map(Some)
        };
        info.target = field(LB_TARGET_NET_ADDRESS, "TargetNetAddress")?.map(utf16le);
        info.load_balance_info = field(LB_LOAD_BALANCE_INFO, "LoadBalanceInfo")?.map(lb_text);
        let user = field(LB_USERNAME, "UserName")?.map(utf16le);
        let domain = field(LB_DOMAIN, "Domain")?.map(utf16le);
        info.password_cookie = field(LB_PASSWORD, "Password")?.is_some();
        info.fqdn = field(LB_TARGET_FQDN, "TargetFQDN")?.map(utf16le);
        info.user = match (domain, user) {
            (Some(d), Some(u)) if !d.is_empty() => Some(format!("{d}\\{u}")),
            (_, u) => u,
        };
        Ok::<_, WireError>(info)
    })();
    match parsed {
        Ok(info) => {
            let mut detail = format!("session {}", info.session_id);
            if let Some(t) = info.target.as_ref().or(info.fqdn.as_ref()) {
                detail.push_str(&format!(", target {t}"));
            }
            d.trace.fact(Fact::RedirectedTo, detail.clone());
            let mut summary = detail.clone();
            if let Some(lb) = &info.load_balance_info {
                d.trace.fact(Fact::RedirectLoadBalanceInfo, lb.clone());
                summary.push_str(&format!(", routing token {lb}"));
            }
            if info.password_cookie {
                summary.push_str(", password cookie (not shown)");
            }
            if info.flags & LB_NOREDIRECT != 0 {
                summary.push_str(", informational (LB_NOREDIRECT)");
            }
            d.pdu(
                from,
                frame_len,
                "Server Redirection",
                summary,
                PduInfo::ServerRedirection {
                    session_id: info.session_id,
                    target: info.target,
                    flags: info.flags,
                    load_balance_info: info.load_balance_info,
                    fqdn: info.fqdn,
                    user: info.user,
                    password_cookie: info.password_cookie,
                },
            );
            d.trace
                .record_event(d.now, EventKind::Redirected { detail });
        }
        Err(e) => d.decode_error(from, frame_len, "Server Redirection", e),
    }
}

// [2.2.13.1] RedirFlags.
const LB_TARGET_NET_ADDRESS: u32 = 0x0000_0001;
const LB_LOAD_BALANCE_INFO: u32 = 0x0000_0002;
const LB_USERNAME: u32 = 0x0000_0004;
const LB_DOMAIN: u32 = 0x0000_0008;
const LB_PASSWORD: u32 = 0x0000_0010;
const LB_NOREDIRECT: u32 = 0x0000_0080;
const LB_TARGET_FQDN: u32 = 0x0000_0100;

/// What a Server Redirection Packet says, as the trace keeps it.
#[derive(Default)]
struct Redirect {
    session_id: u32,
    flags: u32,
    target: Option<String>,
    load_balance_info: Option<String>,
    fqdn: Option<String>,
    user: Option<String>,
    password_cookie: bool,
}

/// LoadBalanceInfo as text: its printable bytes without the CR LF that ends a routing token, else hex.
fn lb_text(bytes: &[u8]) -> String {
    match super::x224::routing_token(bytes) {
        Some(t) => t,
        None => format!("0x{}", hex::encode(bytes)),
    }
}
