//! `credssp` phase: [MS-CSSP] 2.2.1 TSRequests, decoded with sspi, and the NTLM or Kerberos token inside.
//!
//! The NTLM messages are read by hand: sspi keeps its NTLM message decoders private, and a diagnostic needs
//! only the CHALLENGE's target information and the AUTHENTICATE's user and domain ([MS-NLMP] 2.2.1).

use sspi::credssp::TsRequest;

use super::Dissector;
use crate::codes::{self, Table};
use crate::kerberos::{message, spnego};
use crate::pdu::{AuthToken, KrbMessage, NtlmChallengeInfo, PduInfo, SpnegoInfo};
use crate::trace::Fact;
use crate::trace::{PhaseName, Side};
use crate::wire::{Reader, WireError, utf16le};

/// [MS-CSSP] 2.2.1 A TSRequest is a DER SEQUENCE: its first byte.
pub const TS_REQUEST_TAG: u8 = 0x30;

const NTLMSSP: &[u8] = b"NTLMSSP\0";
/// [MS-NLMP] 2.2.2.5 NTLMSSP_NEGOTIATE_UNICODE.
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
/// [MS-NLMP] 2.2.2.5 NTLMSSP_NEGOTIATE_VERSION.
const NEGOTIATE_VERSION: u32 = 0x0200_0000;

/// [RFC 4120] 1.2.840.113554.1.2.2, Kerberos V5.
const KRB5_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// 1.2.840.48018.1.2.2, the Microsoft variant of the Kerberos OID.
const MS_KRB5_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// 1.3.6.1.4.1.311.2.2.10, NTLM.
const NTLM_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];

pub(super) fn ts_request(d: &mut Dissector, from: Side, frame: &[u8]) {
    if d.trace.current() < PhaseName::Credssp {
        d.enter(PhaseName::Credssp);
    }
    let req = match TsRequest::from_buffer(frame) {
        Ok(req) => req,
        Err(e) => {
            d.pdu(
                from,
                frame.len(),
                "TSRequest",
                format!("does not decode: {e}"),
                PduInfo::Undecoded {
                    detail: format!("TSRequest: {e}"),
                    offset: None,
                },
            );
            d.trace.record_event(
                d.now,
                crate::trace::EventKind::ProtocolError {
                    from,
                    pdu: "TSRequest".to_owned(),
                    offset: None,
                    detail: e.to_string(),
                },
            );
            return;
        }
    };
    if let (Some(sink), Some(t)) = (d.credssp_sink.as_mut(), req.nego_tokens.as_deref()) {
        sink.nego_token(from, t);
    }
    // [MS-CSSP] 3.1.5 the credential type, when a sink can open authInfo; never the credentials.
    let cred_type = match (from, req.auth_info.as_deref(), d.credssp_sink.as_mut()) {
        (Side::Client, Some(a), Some(sink)) => Some(sink.auth_info(a)),
        _ => None,
    };
    let token = req.nego_tokens.as_deref().map(auth_token);
    let error_code = req.error_code.map(|c| c.0);
    let mut summary = vec![format!("version {}", req.version)];
    if let Some(t) = &token {
        summary.push(token_summary(t));
    }
    if req.pub_key_auth.is_some() {
        summary.push("pubKeyAuth".to_owned());
    }
    match &cred_type {
        Some(Ok(kind)) => {
            let name = crate::kerberos::tscred::cred_type_name(*kind);
            summary.push(format!("authInfo: {name} (credentials not shown)"));
            d.trace.fact(Fact::CredentialType, name);
        }
        Some(Err(crate::kerberos::unwrap::UnwrapError::NoApReq)) => {
            // Not a Kerberos exchange (NTLM): nothing for a keytab to open.
            summary.push("authInfo (credentials, not shown)".to_owned());
        }
        Some(Err(e)) => {
            summary.push("authInfo (credentials, not shown)".to_owned());
            d.trace.record_event(
                d.now,
                crate::trace::EventKind::Anomaly {
                    detail: format!("the keytab does not open authInfo: {e}"),
                },
            );
        }
        None if req.auth_info.is_some() => {
            summary.push("authInfo (credentials, not shown)".to_owned());
        }
        None => {}
    }
    if req.client_nonce.is_some() {
        summary.push("clientNonce".to_owned());
    }
    if let Some(code) = error_code {
        summary.push(format!(
            "errorCode {}",
            codes::Display(Table::NtStatus, code)
        ));
        d.trace.fact(
            Fact::ErrorCode,
            codes::Display(Table::NtStatus, code).to_string(),
        );
    }
    let key = match from {
        Side::Client => Fact::ClientTsRequestVersion,
        Side::Server => Fact::ServerTsRequestVersion,
    };
    if d.trace.phase(PhaseName::Credssp).facts.get(key).is_none() {
        d.trace.fact(key, req.version);
    }
    match &token {
        Some(AuthToken::NtlmChallenge(info)) => {
            d.trace.fact(Fact::AuthPackage, "NTLM");
            for (k, v) in [
                (Fact::NtlmTargetName, &info.target_name),
                (Fact::NtlmNetbiosComputer, &info.netbios_computer),
                (Fact::NtlmNetbiosDomain, &info.netbios_domain),
                (Fact::NtlmDnsComputer, &info.dns_computer),
                (Fact::NtlmDnsDomain, &info.dns_domain),
                (Fact::NtlmDnsTree, &info.dns_tree),
                (Fact::NtlmOsVersion, &info.os_version),
            ] {
                if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                    d.trace.fact(k, v.clone());
                }
            }
        }
        Some(AuthToken::NtlmNegotiate) => d.trace.fact(Fact::AuthPackage, "NTLM"),
        Some(AuthToken::Kerberos { spnego, krb, .. }) => {
            d.trace.fact(Fact::AuthPackage, "Kerberos");
            note_spnego(d, from, spnego.as_ref());
            note_kerberos(d, krb.as_ref());
        }
        Some(AuthToken::Spnego {
            mechanism, spnego, ..
        }) => {
            if let Some(m) = mechanism {
                d.trace.fact(Fact::AuthPackage, format!("Negotiate ({m})"));
            }
            note_spnego(d, from, spnego.as_ref());
        }
        _ => {}
    }
    let auth_info = req.auth_info.is_some();
    d.pdu(
        from,
        frame.len(),
        "TSRequest",
        summary.join(", "),
        PduInfo::TsRequest {
            version: req.version,
            token,
            auth_info,
            pub_key_auth: req.pub_key_auth.is_some(),
            client_nonce: req.client_nonce.is_some(),
            error_code,
        },
    );
    if from == Side::Client && auth_info {
        d.credssp_done_by_client();
    }
}

/// The client's SPNEGO offer and the server's choice, as facts.
fn note_spnego(d: &mut Dissector, from: Side, spnego: Option<&SpnegoInfo>) {
    let Some(info) = spnego else { return };
    if from == Side::Client && !info.mech_types.is_empty() {
        d.trace.fact(Fact::SpnegoMechs, info.mech_types.join(", "));
    }
    if let Some(mech) = &info.supported_mech {
        d.trace.fact(Fact::SpnegoSelected, mech.clone());
    }
}

/// What a Kerberos token inside CredSSP names: the service principal of the client's ticket, the error.
fn note_kerberos(d: &mut Dissector, krb: Option<&KrbMessage>) {
    match krb {
        Some(KrbMessage::ApReq { ticket, .. }) => d.trace.fact(Fact::Spn, ticket.server.clone()),
        Some(KrbMessage::Error(e)) => d
            .trace
            .fact(Fact::KerberosError, message::error_name(e.code)),
        _ => {}
    }
}

fn spnego_summary(info: &SpnegoInfo) -> String {
    let mut s = format!("SPNEGO {}", info.token);
    if !info.mech_types.is_empty() {
        s.push_str(&format!(" [{}]", info.mech_types.join(", ")));
    }
    if let Some(state) = &info.neg_state {
        s.push_str(&format!(" {state}"));
    }
    if let Some(mech) = &info.supported_mech {
        s.push_str(&format!(" ({mech})"));
    }
    s
}

fn token_summary(t: &AuthToken) -> String {
    match t {
        AuthToken::NtlmNegotiate => "NTLM NEGOTIATE".to_owned(),
        AuthToken::NtlmChallenge(info) => format!(
            "NTLM CHALLENGE{}",
            info.dns_computer
                .as_ref()
                .filter(|c| !c.is_empty())
                .or(info.netbios_computer.as_ref().filter(|c| !c.is_empty()))
                .map(|c| format!(" from {c}"))
                .unwrap_or_default()
        ),
        AuthToken::NtlmAuthenticate { user, domain, .. } => format!(
            "NTLM AUTHENTICATE for {}{}",
            domain
                .as_ref()
                .filter(|d| !d.is_empty())
                .map(|d| format!("{d}\\"))
                .unwrap_or_default(),
            user.as_deref().unwrap_or("?")
        ),
        AuthToken::Spnego {
            mechanism,
            spnego: None,
        } => format!(
            "SPNEGO{}",
            mechanism
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        AuthToken::Spnego {
            spnego: Some(info), ..
        } => spnego_summary(info),
        AuthToken::Kerberos {
            message,
            spnego,
            krb,
        } => {
            let inner = match krb {
                Some(m) => format!("Kerberos {}", message::summary(m)),
                None => format!("Kerberos {message}"),
            };
            match spnego {
                Some(info) => format!("{}, {inner}", spnego_summary(info)),
                None => inner,
            }
        }
        AuthToken::Unknown { len } => format!("{len}-byte token"),
    }
}

/// Classifies a negoToken: a bare NTLM message, SPNEGO around NTLM or Kerberos, or a Kerberos token.
pub fn auth_token(token: &[u8]) -> AuthToken {
    if token.starts_with(NTLMSSP) {
        return ntlm(token).unwrap_or(AuthToken::Unknown { len: token.len() });
    }
    if let Some(neg) = spnego::negotiation(token) {
        match neg.inner {
            Some(inner) if inner.starts_with(NTLMSSP) => {
                return ntlm(inner).unwrap_or(AuthToken::Spnego {
                    mechanism: Some("NTLM".to_owned()),
                    spnego: Some(neg.info),
                });
            }
            Some(inner) => {
                if let Some(AuthToken::Kerberos { message, krb, .. }) = kerberos(inner) {
                    return AuthToken::Kerberos {
                        message,
                        spnego: Some(neg.info),
                        krb,
                    };
                }
            }
            None => {}
        }
        let mechanism = neg
            .info
            .supported_mech
            .clone()
            .or_else(|| neg.info.mech_types.first().cloned());
        return AuthToken::Spnego {
            mechanism,
            spnego: Some(neg.info),
        };
    }
    if let Some(k) = kerberos(token) {
        return k;
    }
    if let Some(ntlm_message) = find(token, NTLMSSP).and_then(|pos| token.get(pos..)) {
        return ntlm(ntlm_message).unwrap_or(AuthToken::Spnego {
            mechanism: Some("NTLM".to_owned()),
            spnego: None,
        });
    }
    if find(token, KRB5_OID).is_some()
        || find(token, MS_KRB5_OID).is_some()
        || token.first() == Some(&0x6e)
        || token.first() == Some(&0x6f)
    {
        return AuthToken::Kerberos {
            message: kerberos_message(token).to_owned(),
            spnego: None,
            krb: None,
        };
    }
    if matches!(token.first(), Some(0x60 | 0xa0 | 0xa1)) {
        let mechanism = if find(token, NTLM_OID).is_some() {
            Some("NTLM".to_owned())
        } else {
            None
        };
        return AuthToken::Spnego {
            mechanism,
            spnego: None,
        };
    }
    AuthToken::Unknown { len: token.len() }
}

/// A Kerberos GSS-API token ([RFC 4121] 4.1) or a bare Kerberos message, decoded as far as it goes.
fn kerberos(token: &[u8]) -> Option<AuthToken> {
    let (message_bytes, tok_name) = match spnego::krb_token(token) {
        Some(t) => (t.message, spnego::tok_id_name(t.tok_id)),
        None if message::looks_like_message(token) => (token, None),
        None => return None,
    };
    let krb = message::parse(message_bytes).ok();
    let name = match &krb {
        Some(m) => message::name(m),
        None => tok_name.unwrap_or("token"),
    };
    Some(AuthToken::Kerberos {
        message: name.to_owned(),
        spnego: None,
        krb,
    })
}

/// The Kerberos message in a token, told by the first application tag after the mechanism OID.
fn kerberos_message(token: &[u8]) -> &'static str {
    // [RFC 4121] 4.1: after the OID comes a two-byte TOK_ID, then the Kerberos message.
    for oid in [KRB5_OID, MS_KRB5_OID] {
        if let Some(pos) = find(token, oid) {
            let after = pos + oid.len();
            match token.get(after..after + 2) {
                Some([0x01, 0x00]) => return "AP-REQ",
                Some([0x02, 0x00]) => return "AP-REP",
                Some([0x03, 0x00]) => return "KRB-ERROR",
                _ => {}
            }
        }
    }
    match token.first() {
        Some(0x6e) => "AP-REQ",
        Some(0x6f) => "AP-REP",
        Some(0x7e) => "KRB-ERROR",
        _ => "token",
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// [MS-NLMP] 2.2.1 NEGOTIATE, CHALLENGE or AUTHENTICATE.
fn ntlm(msg: &[u8]) -> Result<AuthToken, WireError> {
    let mut r = Reader::new(msg);
    r.skip(8, "NTLM signature")?;
    match r.u32_le("NTLM MessageType")? {
        1 => Ok(AuthToken::NtlmNegotiate),
        2 => ntlm_challenge(msg).map(AuthToken::NtlmChallenge),
        3 => {
            let flags = Reader::with_base(msg.get(60..64).unwrap_or(&[0, 0, 0, 0]), 60)
                .u32_le("NegotiateFlags")?;
            let unicode = flags & NEGOTIATE_UNICODE != 0;
            let domain = field(msg, 28, unicode);
            let user = field(msg, 36, unicode);
            let workstation = field(msg, 44, unicode);
            Ok(AuthToken::NtlmAuthenticate {
                user,
                domain,
                workstation,
            })
        }
        _ => Ok(AuthToken::Unknown { len: msg.len() }),
    }
}

/// A string field described by (len u16, maxlen u16, offset u32) at `at`.
fn field(msg: &[u8], at: usize, unicode: bool) -> Option<String> {
    let mut r = Reader::with_base(msg.get(at..at + 8)?, at);
    let len = usize::from(r.u16_le("len").ok()?);
    r.u16_le("maxlen").ok()?;
    let off = r.u32_le("offset").ok()? as usize;
    let bytes = msg.get(off..off.checked_add(len)?)?;
    Some(if unicode {
        utf16le(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    })
}

/// [MS-NLMP] 2.2.1.2 CHALLENGE_MESSAGE: target name, target info AV pairs ([2.2.2.1]) and version ([2.2.2.10]).
pub fn ntlm_challenge(msg: &[u8]) -> Result<NtlmChallengeInfo, WireError> {
    let mut r = Reader::new(msg);
    r.skip(12, "NTLM header")?;
    r.skip(8, "TargetNameFields")?;
    let flags = r.u32_le("NegotiateFlags")?;
    r.skip(16, "ServerChallenge and Reserved")?;
    let ti_len = usize::from(r.u16_le("TargetInfoLen")?);
    r.u16_le("TargetInfoMaxLen")?;
    let ti_off = r.u32_le("TargetInfoBufferOffset")? as usize;
    let unicode = flags & NEGOTIATE_UNICODE != 0;
    let mut info = NtlmChallengeInfo {
        target_name: field(msg, 12, unicode),
        ..NtlmChallengeInfo::default()
    };
    if flags & NEGOTIATE_VERSION != 0 && ti_off >= 56 {
        let mut v = r.sub(8, "Version")?;
        let major = v.u8("ProductMajorVersion")?;
        let minor = v.u8("ProductMinorVersion")?;
        let build = v.u16_le("ProductBuild")?;
        info.os_version = Some(format!("{major}.{minor}.{build}"));
    }
    if let Some(ti) = msg.get(ti_off..ti_off.saturating_add(ti_len)) {
        let mut av = Reader::with_base(ti, ti_off);
        // INVARIANT: each pass consumes at least four bytes or stops.
        while av.remaining() >= 4 {
            let id = av.u16_le("AvId")?;
            let len = usize::from(av.u16_le("AvLen")?);
            let value = av.bytes(len, "AV_PAIR value")?;
            let text = || Some(utf16le(value));
            match id {
                0 => break,
                1 => info.netbios_computer = text(),
                2 => info.netbios_domain = text(),
                3 => info.dns_computer = text(),
                4 => info.dns_domain = text(),
                5 => info.dns_tree = text(),
                _ => {}
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn challenge_target_info() {
        let mut ti = Vec::new();
        for (id, v) in [
            (1u16, "SRV"),
            (2, "CORP"),
            (3, "srv.corp.example"),
            (4, "corp.example"),
        ] {
            let b = utf16(v);
            ti.extend_from_slice(&id.to_le_bytes());
            ti.extend_from_slice(&(b.len() as u16).to_le_bytes());
            ti.extend_from_slice(&b);
        }
        ti.extend_from_slice(&[0, 0, 0, 0]);
        let mut msg = Vec::new();
        msg.extend_from_slice(NTLMSSP);
        msg.extend_from_slice(&2u32.to_le_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0, 56, 0, 0, 0]); // empty target name at 56
        msg.extend_from_slice(&(NEGOTIATE_UNICODE | NEGOTIATE_VERSION).to_le_bytes());
        msg.extend_from_slice(&[0; 16]);
        msg.extend_from_slice(&(ti.len() as u16).to_le_bytes());
        msg.extend_from_slice(&(ti.len() as u16).to_le_bytes());
        msg.extend_from_slice(&56u32.to_le_bytes());
        msg.extend_from_slice(&[10, 0, 0x63, 0x45, 0, 0, 0, 15]); // 10.0.17763
        msg.extend_from_slice(&ti);
        let AuthToken::NtlmChallenge(info) = auth_token(&msg) else {
            panic!("not a challenge");
        };
        assert_eq!(info.netbios_computer.as_deref(), Some("SRV"));
        assert_eq!(info.netbios_domain.as_deref(), Some("CORP"));
        assert_eq!(info.dns_computer.as_deref(), Some("srv.corp.example"));
        assert_eq!(info.dns_domain.as_deref(), Some("corp.example"));
        assert_eq!(info.os_version.as_deref(), Some("10.0.17763"));
        // Truncated target info never panics.
        for cut in 0..msg.len() {
            let _ = auth_token(&msg[..cut]);
        }
    }
}
