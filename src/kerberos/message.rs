//! [RFC 4120] 5 Kerberos messages read in clear: who asks whom for what, under which keys, and the errors.
//!
//! What is encrypted stays encrypted here (the replay's keytab decryption is `super::decrypt`); what is
//! read is what a KDC, a client or a server puts in clear on the wire.

use super::der::{self, APPLICATION, Fields};
use crate::codes::{self, Table};
use crate::pdu::{KdcReply, KdcRequest, KrbErrorInfo, KrbMessage, Principal, TicketInfo};
use crate::wire::{Reader, WireError, WireResult};

/// [RFC 4120] 7.5.7 message types (the APPLICATION tag numbers of the messages).
pub const AS_REQ: u8 = 10;
pub const AS_REP: u8 = 11;
pub const TGS_REQ: u8 = 12;
pub const TGS_REP: u8 = 13;
pub const AP_REQ: u8 = 14;
pub const AP_REP: u8 = 15;
pub const KRB_ERROR: u8 = 30;
/// User-to-user TGT request and reply (draft-swift-win2k-krb-user2user): plain SEQUENCEs with these
/// msg-type values.
pub const TGT_REQ: i64 = 16;
pub const TGT_REP: i64 = 17;

/// [RFC 4120] 7.5.2 PA-ENC-TIMESTAMP: the client proves it knows the key.
pub const PA_ENC_TIMESTAMP: i32 = 2;
/// [RFC 4120] 7.5.2 PA-PW-SALT; [MS-KILE] 2.2.1 Windows KDCs carry a KERB-EXT-ERROR in it.
const PA_PW_SALT: i32 = 3;
/// [RFC 4120] 7.5.2 PA-ETYPE-INFO and PA-ETYPE-INFO2.
const PA_ETYPE_INFO: i32 = 11;
const PA_ETYPE_INFO2: i32 = 19;
/// [MS-KILE] 2.2.2 KERB-ERROR-DATA data-type KERB_ERR_TYPE_EXTENDED.
const KERB_ERR_TYPE_EXTENDED: i64 = 3;

/// Bounds on what one message may list.
const MAX_LIST: usize = 64;

/// The first bytes of a Kerberos message: its APPLICATION tag, or a SEQUENCE (user-to-user).
pub fn looks_like_message(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&t) if t == APPLICATION | AS_REQ
        || t == APPLICATION | AS_REP
        || t == APPLICATION | TGS_REQ
        || t == APPLICATION | TGS_REP
        || t == APPLICATION | AP_REQ
        || t == APPLICATION | AP_REP
        || t == APPLICATION | KRB_ERROR)
}

/// Reads one Kerberos message.
pub fn parse(bytes: &[u8]) -> WireResult<KrbMessage> {
    let mut r = Reader::new(bytes);
    let at = r.err("Kerberos message");
    let outer = der::tlv(&mut r, "Kerberos message")?;
    let mut body = outer.content.clone();
    match outer.tag {
        t if t == APPLICATION | AS_REQ => kdc_request(&mut body).map(KrbMessage::AsReq),
        t if t == APPLICATION | TGS_REQ => kdc_request(&mut body).map(KrbMessage::TgsReq),
        t if t == APPLICATION | AS_REP => kdc_reply(&mut body).map(KrbMessage::AsRep),
        t if t == APPLICATION | TGS_REP => kdc_reply(&mut body).map(KrbMessage::TgsRep),
        t if t == APPLICATION | AP_REQ => ap_req(&mut body),
        t if t == APPLICATION | AP_REP => {
            let f = der::sequence(&mut body, "AP-REP")?;
            let (etype, _) = encrypted_data(f.need(2, "AP-REP enc-part")?)?;
            Ok(KrbMessage::ApRep { etype })
        }
        t if t == APPLICATION | KRB_ERROR => krb_error(&mut body).map(KrbMessage::Error),
        der::SEQUENCE => user_to_user(outer.content),
        _ => Err(at),
    }
}

/// [RFC 4120] 5.2.2 PrincipalName with its realm: `name/instance@REALM`.
fn principal(r: Reader<'_>, realm: Option<&str>) -> WireResult<Principal> {
    let mut r = r;
    let f = der::sequence(&mut r, "PrincipalName")?;
    let mut names = f.need(1, "PrincipalName name-string")?;
    let parts = der::sequence_of(&mut names, MAX_LIST, "name-string", |r| {
        der::string(r, "KerberosString")
    })?;
    // As MIT's krb5_unparse_name writes it: a component's own '/', '@' and '\\' escaped, so that an
    // enterprise name ([RFC 6806] 5, `admin@ACME.COM` in one component) reads `admin\@ACME.COM@ACME.COM`.
    let mut out = parts
        .iter()
        .map(|p| escape_component(p))
        .collect::<Vec<_>>()
        .join("/");
    if let Some(realm) = realm {
        out.push('@');
        out.push_str(realm);
    }
    Ok(out)
}

/// A name component with its separators escaped by a backslash.
fn escape_component(part: &str) -> std::borrow::Cow<'_, str> {
    if !part.contains(['/', '@', '\\']) {
        return std::borrow::Cow::Borrowed(part);
    }
    let mut out = String::with_capacity(part.len() + 2);
    for c in part.chars() {
        if matches!(c, '/' | '@' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

fn realm(r: Option<Reader<'_>>) -> WireResult<Option<String>> {
    r.map(|mut r| der::string(&mut r, "Realm")).transpose()
}

/// [RFC 4120] 5.2.9 EncryptedData: its etype and key version (never its cipher).
fn encrypted_data(mut r: Reader<'_>) -> WireResult<(i32, Option<u32>)> {
    let f = der::sequence(&mut r, "EncryptedData")?;
    let etype = der::int32(&mut f.need(0, "EncryptedData etype")?, "etype")?;
    let kvno = f
        .get(1)
        .map(|mut r| der::uint32(&mut r, "kvno"))
        .transpose()?;
    Ok((etype, kvno))
}

/// [RFC 4120] 5.3 Ticket ::= [APPLICATION 1] SEQUENCE.
fn ticket(mut r: Reader<'_>) -> WireResult<TicketInfo> {
    let body = der::expect(&mut r, APPLICATION | 1, "Ticket")?;
    let mut body = body;
    let f = der::sequence(&mut body, "Ticket")?;
    let realm = realm(f.get(1))?;
    let server = principal(f.need(2, "Ticket sname")?, realm.as_deref())?;
    let (etype, kvno) = encrypted_data(f.need(3, "Ticket enc-part")?)?;
    Ok(TicketInfo {
        server,
        etype,
        kvno,
    })
}

/// [RFC 4120] 5.2.7 the padata-types of a SEQUENCE OF PA-DATA.
fn pa_types(mut r: Reader<'_>) -> WireResult<Vec<i32>> {
    der::sequence_of(&mut r, MAX_LIST, "PA-DATA", |r| {
        let f = der::sequence(r, "PA-DATA")?;
        der::int32(&mut f.need(1, "padata-type")?, "padata-type")
    })
}

/// [RFC 4120] 5.4.1 KDC-REQ.
fn kdc_request(r: &mut Reader<'_>) -> WireResult<KdcRequest> {
    let f = der::sequence(r, "KDC-REQ")?;
    let pa_types = f.get(3).map(pa_types).transpose()?.unwrap_or_default();
    let mut body = f.need(4, "KDC-REQ req-body")?;
    let b = der::sequence(&mut body, "KDC-REQ-BODY")?;
    let realm = realm(b.get(2))?;
    let client = b
        .get(1)
        .map(|r| principal(r, realm.as_deref()))
        .transpose()?;
    let server = b
        .get(3)
        .map(|r| principal(r, realm.as_deref()))
        .transpose()?;
    let mut etypes = b.need(8, "KDC-REQ-BODY etype")?;
    let etypes = der::sequence_of(&mut etypes, MAX_LIST, "etype", |r| der::int32(r, "etype"))?;
    Ok(KdcRequest {
        client,
        server,
        etypes,
        pa_types,
    })
}

/// [RFC 4120] 5.4.2 KDC-REP.
fn kdc_reply(r: &mut Reader<'_>) -> WireResult<KdcReply> {
    let f = der::sequence(r, "KDC-REP")?;
    let crealm = realm(f.get(3))?;
    let client = principal(f.need(4, "KDC-REP cname")?, crealm.as_deref())?;
    let ticket = ticket(f.need(5, "KDC-REP ticket")?)?;
    let (etype, _) = encrypted_data(f.need(6, "KDC-REP enc-part")?)?;
    Ok(KdcReply {
        client,
        ticket,
        etype,
    })
}

/// [RFC 4120] 5.5.1 AP-REQ.
fn ap_req(r: &mut Reader<'_>) -> WireResult<KrbMessage> {
    let f = der::sequence(r, "AP-REQ")?;
    let mut options = f.need(2, "AP-REQ ap-options")?;
    let mut bits = der::expect(&mut options, der::BIT_STRING, "APOptions")?;
    bits.u8("APOptions unused bits")?;
    // [RFC 4120] 5.5.1 mutual-required is bit 2, counted from the most significant bit of the first byte.
    let mutual_required = bits.u8("APOptions").is_ok_and(|b| b & 0x20 != 0);
    let ticket = ticket(f.need(3, "AP-REQ ticket")?)?;
    Ok(KrbMessage::ApReq {
        ticket,
        mutual_required,
    })
}

/// [RFC 4120] 5.9.1 KRB-ERROR.
fn krb_error(r: &mut Reader<'_>) -> WireResult<KrbErrorInfo> {
    let f = der::sequence(r, "KRB-ERROR")?;
    let stime = der::time(&mut f.need(4, "KRB-ERROR stime")?, "stime")?;
    let code = der::uint32(&mut f.need(6, "KRB-ERROR error-code")?, "error-code")?;
    let crealm = realm(f.get(7))?;
    let client = f
        .get(8)
        .map(|r| principal(r, crealm.as_deref()))
        .transpose()?;
    let realm = realm(f.get(9))?;
    let server = principal(f.need(10, "KRB-ERROR sname")?, realm.as_deref())?;
    let e_text = f
        .get(11)
        .map(|mut r| der::string(&mut r, "e-text"))
        .transpose()?
        .filter(|t| !t.is_empty());
    let mut info = KrbErrorInfo {
        code,
        server,
        client,
        e_text,
        stime,
        clock_offset_s: None,
        ntstatus: None,
        etypes: Vec::new(),
    };
    if let Some(mut e_data) = f.get(12) {
        // e-data is not needed to name the error: a form rdptrace does not know is left unread.
        if let Ok(bytes) = der::octets(&mut e_data, "e-data") {
            let _ = read_e_data(bytes, &mut info);
        }
    }
    Ok(info)
}

/// [RFC 4120] 5.9.1 e-data: a METHOD-DATA (SEQUENCE OF PA-DATA) or [MS-KILE] 2.2.2 KERB-ERROR-DATA.
fn read_e_data(bytes: &[u8], info: &mut KrbErrorInfo) -> WireResult<()> {
    let mut r = Reader::new(bytes);
    let mut seq = der::expect(&mut r, der::SEQUENCE, "e-data")?;
    match seq.peek_u8() {
        Some(der::SEQUENCE) => {
            // INVARIANT: each pass consumes one PA-DATA or fails; the count is bounded.
            for _ in 0..MAX_LIST {
                if seq.remaining() == 0 {
                    break;
                }
                let f = der::sequence(&mut seq, "PA-DATA")?;
                let kind = der::int32(&mut f.need(1, "padata-type")?, "padata-type")?;
                let value = f
                    .get(2)
                    .map(|mut r| der::octets(&mut r, "padata-value"))
                    .transpose()?
                    .unwrap_or_default();
                match kind {
                    PA_PW_SALT if value.len() == 12 => info.ntstatus = ext_error(value),
                    PA_ETYPE_INFO | PA_ETYPE_INFO2 => info.etypes = etype_info(value)?,
                    _ => {}
                }
            }
            Ok(())
        }
        _ => {
            let f = Fields::read(seq, "KERB-ERROR-DATA")?;
            let kind = der::integer(&mut f.need(1, "data-type")?, "data-type")?;
            if kind == KERB_ERR_TYPE_EXTENDED
                && let Some(mut value) = f.get(2)
            {
                info.ntstatus = ext_error(der::octets(&mut value, "data-value")?);
            }
            Ok(())
        }
    }
}

/// [MS-KILE] 2.2.1 KERB-EXT-ERROR: status, reserved, flags, little-endian.
fn ext_error(bytes: &[u8]) -> Option<u32> {
    Reader::new(bytes)
        .u32_le("KERB-EXT-ERROR status")
        .ok()
        .filter(|s| *s != 0)
}

/// [RFC 4120] 5.2.7.4 / 5.2.7.5 ETYPE-INFO(2): the etypes the KDC offers, in its order.
fn etype_info(bytes: &[u8]) -> WireResult<Vec<i32>> {
    let mut r = Reader::new(bytes);
    der::sequence_of(&mut r, MAX_LIST, "ETYPE-INFO", |r| {
        let f = der::sequence(r, "ETYPE-INFO-ENTRY")?;
        der::int32(&mut f.need(0, "etype")?, "etype")
    })
}

/// draft-swift-win2k-krb-user2user KERB-TGT-REQUEST and KERB-TGT-REPLY.
fn user_to_user(r: Reader<'_>) -> WireResult<KrbMessage> {
    let f = Fields::read(r, "user-to-user message")?;
    let msg_type = der::integer(&mut f.need(1, "msg-type")?, "msg-type")?;
    match msg_type {
        TGT_REQ => Ok(KrbMessage::TgtReq {
            server: f
                .get(2)
                .map(|r| principal(r, None))
                .transpose()
                .ok()
                .flatten(),
        }),
        TGT_REP => Ok(KrbMessage::TgtRep {
            ticket: ticket(f.need(2, "TGT-REP ticket")?)?,
        }),
        _ => Err(WireError {
            offset: 0,
            what: "not a Kerberos message",
        }),
    }
}

/// The message's name as RFC 4120 spells it.
pub fn name(m: &KrbMessage) -> &'static str {
    match m {
        KrbMessage::AsReq(_) => "AS-REQ",
        KrbMessage::AsRep(_) => "AS-REP",
        KrbMessage::TgsReq(_) => "TGS-REQ",
        KrbMessage::TgsRep(_) => "TGS-REP",
        KrbMessage::ApReq { .. } => "AP-REQ",
        KrbMessage::ApRep { .. } => "AP-REP",
        KrbMessage::Error(_) => "KRB-ERROR",
        KrbMessage::TgtReq { .. } => "TGT-REQ",
        KrbMessage::TgtRep { .. } => "TGT-REP",
    }
}

/// An etype by name: `aes256-cts-hmac-sha1-96`, or its number.
pub fn etype_name(etype: i32) -> String {
    u32::try_from(etype)
        .ok()
        .and_then(|e| codes::lookup(Table::KerberosEtype, e))
        .map_or_else(|| format!("etype {etype}"), |row| row.name.to_owned())
}

fn etypes(list: &[i32]) -> String {
    list.iter()
        .map(|e| etype_name(*e))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Kerberos error by number and name: `7 KDC_ERR_S_PRINCIPAL_UNKNOWN`.
pub fn error_name(code: u32) -> String {
    match codes::lookup(Table::KerberosError, code) {
        Some(row) => format!("{code} {}", row.name),
        None => format!("{code} (unknown)"),
    }
}

/// One line: what the message is and what it names.
pub fn summary(m: &KrbMessage) -> String {
    let name = name(m);
    match m {
        KrbMessage::AsReq(req) | KrbMessage::TgsReq(req) => {
            let mut s = name.to_owned();
            if let Some(c) = &req.client {
                s.push_str(&format!(" for {c}"));
            }
            if let Some(srv) = &req.server {
                s.push_str(&format!(" ({srv})"));
            }
            if !req.etypes.is_empty() {
                s.push_str(&format!(", etypes {}", etypes(&req.etypes)));
            }
            if matches!(m, KrbMessage::AsReq(_)) {
                if req.pa_types.contains(&PA_ENC_TIMESTAMP) {
                    s.push_str(", with pre-authentication");
                } else {
                    s.push_str(", without pre-authentication");
                }
            }
            s
        }
        KrbMessage::AsRep(rep) | KrbMessage::TgsRep(rep) => format!(
            "{name} for {}: ticket for {} ({}{})",
            rep.client,
            rep.ticket.server,
            etype_name(rep.ticket.etype),
            rep.ticket
                .kvno
                .map(|k| format!(", key version {k}"))
                .unwrap_or_default()
        ),
        KrbMessage::ApReq {
            ticket,
            mutual_required,
        } => format!(
            "{name} with a ticket for {} ({}{}){}",
            ticket.server,
            etype_name(ticket.etype),
            ticket
                .kvno
                .map(|k| format!(", key version {k}"))
                .unwrap_or_default(),
            if *mutual_required {
                ", mutual authentication required"
            } else {
                ""
            }
        ),
        KrbMessage::ApRep { etype } => format!("{name} ({})", etype_name(*etype)),
        KrbMessage::Error(e) => {
            let mut s = format!("{name} {} for {}", error_name(e.code), e.server);
            if let Some(client) = &e.client {
                s.push_str(&format!(" (client {client})"));
            }
            if let Some(status) = e.ntstatus {
                s.push_str(&format!(
                    ", extended error {}",
                    codes::Display(Table::NtStatus, status)
                ));
            }
            if let Some(t) = &e.e_text {
                s.push_str(&format!(", e-text \"{t}\""));
            }
            if let Some(off) = e.clock_offset_s
                && off.abs() >= 1.0
            {
                s.push_str(&format!(", its clock {}", offset_words(off)));
            }
            s
        }
        KrbMessage::TgtReq { server } => match server {
            Some(s) => format!("{name} (user-to-user) for {s}"),
            None => format!("{name} (user-to-user)"),
        },
        KrbMessage::TgtRep { ticket } => {
            format!(
                "{name} (user-to-user): the server's TGT for {}",
                ticket.server
            )
        }
    }
}

/// "312 s ahead", "2.0 s behind".
pub fn offset_words(seconds: f64) -> String {
    let abs = seconds.abs();
    let amount = if abs >= 10.0 {
        format!("{abs:.0} s")
    } else {
        format!("{abs:.1} s")
    };
    if seconds >= 0.0 {
        format!("{amount} ahead")
    } else {
        format!("{amount} behind")
    }
}

#[cfg(test)]
mod tests;
