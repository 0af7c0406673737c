//! `secure_settings` phase: [2.2.1.10] Client Security Exchange PDU and [2.2.1.11] Client Info PDU.
//! Connect-time auto-detection ([2.2.14]) follows the Client Info and is recorded here too.
//!
//! The Client Info PDU carries the password: it is skipped, never read into a string.

use super::Dissector;
use crate::pdu::PduInfo;
use crate::trace::Fact;
use crate::trace::{PhaseName, Side};
use crate::wire::{Reader, WireResult, utf16le};

/// [2.2.1.11.1.1] INFO_UNICODE.
const INFO_UNICODE: u32 = 0x0000_0010;
/// [2.2.1.11.1.1] INFO_AUTOLOGON.
const INFO_AUTOLOGON: u32 = 0x0000_0008;

pub(super) fn security_exchange(d: &mut Dissector, from: Side, frame_len: usize, body: &[u8]) {
    d.enter(PhaseName::SecureSettings);
    let mut r = Reader::new(body);
    let len = r.u32_le("length").unwrap_or(0);
    let random = r
        .bytes(len as usize, "encryptedClientRandom")
        .unwrap_or(r.rest());
    d.client_random(random);
    d.trace.fact(Fact::SecurityExchange, true);
    if let Some(method) = crate::rdp_security::Method::from_wire(d.state.encryption_method) {
        d.trace.fact(Fact::Encryption, method.name());
    }
    d.pdu(
        from,
        frame_len,
        "Client Security Exchange",
        format!("{len}-byte encrypted client random"),
        PduInfo::SecurityExchange {
            encrypted_random_len: len,
        },
    );
}

/// What rdptrace keeps of a TS_INFO_PACKET: never the password, only whether there was one.
struct ClientInfo {
    flags: u32,
    domain: String,
    user: String,
    password_present: bool,
}

/// [2.2.1.11.1.1] TS_INFO_PACKET up to the user name.
fn client_info_fields(r: &mut Reader<'_>) -> WireResult<ClientInfo> {
    r.u32_le("CodePage")?;
    let flags = r.u32_le("flags")?;
    let unicode = flags & INFO_UNICODE != 0;
    let cb_domain = usize::from(r.u16_le("cbDomain")?);
    let cb_user = usize::from(r.u16_le("cbUserName")?);
    let cb_password = usize::from(r.u16_le("cbPassword")?);
    // The null terminator is not counted in the cb fields: two bytes in Unicode, one in ANSI.
    let nul = if unicode { 2 } else { 1 };
    let text = |b: &[u8]| {
        if unicode {
            utf16le(b)
        } else {
            crate::wire::ascii(b)
        }
    };
    r.skip(4, "cbAlternateShell and cbWorkingDir")?;
    let domain = text(r.bytes(cb_domain + nul, "Domain")?);
    let user = text(r.bytes(cb_user + nul, "UserName")?);
    Ok(ClientInfo {
        flags,
        domain,
        user,
        password_present: cb_password > 0,
    })
}

/// `body` is the TS_INFO_PACKET, or `None` when it stayed encrypted; `encrypted` says whether it went encrypted.
pub(super) fn client_info(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    body: Option<&[u8]>,
    encrypted: bool,
) {
    d.enter(PhaseName::SecureSettings);
    // [1.3.1.1] The server answers the Client Info with licensing.
    d.await_server_in(PhaseName::Licensing);
    let Some(body) = body else {
        d.trace
            .fact(Fact::ClientInfo, "encrypted (Standard RDP Security)");
        d.pdu(
            from,
            frame_len,
            "Client Info",
            "encrypted".to_owned(),
            PduInfo::ClientInfo {
                encrypted: true,
                user: None,
                domain: None,
                flags: None,
                password_present: None,
            },
        );
        return;
    };
    match client_info_fields(&mut Reader::new(body)) {
        Ok(ClientInfo {
            flags,
            domain,
            user,
            password_present,
        }) => {
            let who = if domain.is_empty() {
                user.clone()
            } else {
                format!("{domain}\\{user}")
            };
            d.trace.fact(Fact::ClientInfoUser, who.clone());
            d.trace.fact(Fact::Autologon, flags & INFO_AUTOLOGON != 0);
            d.pdu(
                from,
                frame_len,
                "Client Info",
                format!(
                    "user {}, flags 0x{flags:08x}{}",
                    if who.is_empty() {
                        "(none)".to_owned()
                    } else {
                        who
                    },
                    if password_present {
                        ", password present (not shown)"
                    } else {
                        ""
                    }
                ),
                PduInfo::ClientInfo {
                    encrypted,
                    user: Some(user),
                    domain: Some(domain),
                    flags: Some(flags),
                    password_present: Some(password_present),
                },
            );
        }
        Err(e) => d.decode_error(from, frame_len, "Client Info", e),
    }
}

/// [2.2.14.1] / [2.2.14.2] The requestType (responseType) after the header of an Auto-Detect PDU.
fn request_type(r: &mut Reader<'_>) -> WireResult<u16> {
    r.u8("headerLength")?;
    r.u8("headerTypeId")?;
    r.u16_le("sequenceNumber")?;
    r.u16_le("requestType")
}

/// [2.2.14.1] / [2.2.14.2] Auto-Detect Request / Response: the requestType.
pub(super) fn auto_detect(d: &mut Dissector, from: Side, frame_len: usize, body: &[u8]) {
    let request_type = request_type(&mut Reader::new(body)).unwrap_or(0);
    let name = match from {
        Side::Server => "Auto-Detect Request",
        Side::Client => "Auto-Detect Response",
    };
    if d.trace.current() >= PhaseName::Active {
        // [2.2.14] Servers keep measuring the connection all session long (Windows: several per
        // second); kept one by one they would crowd out the PDUs that explain how the session ended.
        d.trace.tally(name, frame_len, d.now);
        return;
    }
    d.pdu(
        from,
        frame_len,
        name,
        format!("requestType 0x{request_type:04x}"),
        PduInfo::AutoDetect { request_type },
    );
}
