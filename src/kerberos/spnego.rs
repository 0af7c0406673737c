//! [RFC 4178] SPNEGO and [RFC 4121] 4.1 the Kerberos GSS-API token framing, as CredSSP carries them in
//! TSRequest negoTokens ([MS-CSSP] 2.2.1.1, [MS-SPNG]).

use super::der::{self, APPLICATION, CONTEXT};
use crate::pdu::SpnegoInfo;
use crate::wire::{Reader, WireResult};

/// [RFC 4178] 1.3.6.1.5.5.2, SPNEGO.
pub const SPNEGO_OID: &str = "1.3.6.1.5.5.2";
/// [RFC 4121] 1.2.840.113554.1.2.2, Kerberos V5.
pub const KRB5_OID: &str = "1.2.840.113554.1.2.2";
/// [MS-KILE] 1.2.840.48018.1.2.2, Microsoft's Kerberos OID.
pub const MS_KRB5_OID: &str = "1.2.840.48018.1.2.2";
/// draft-swift-win2k-krb-user2user 1.2.840.113554.1.2.2.3, Kerberos user-to-user.
pub const KRB5_U2U_OID: &str = "1.2.840.113554.1.2.2.3";
/// [MS-NLMP] 1.3.6.1.4.1.311.2.2.10, NTLM.
pub const NTLM_OID: &str = "1.3.6.1.4.1.311.2.2.10";
/// [MS-NEGOEX] 1.3.6.1.4.1.311.2.2.30, NEGOEX.
pub const NEGOEX_OID: &str = "1.3.6.1.4.1.311.2.2.30";

/// The content bytes of the OIDs the probe offers ([X.690] 8.19).
const SPNEGO_OID_BYTES: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
const MS_KRB5_OID_BYTES: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];
pub const KRB5_OID_BYTES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// [RFC 4178] 4.2.2 A negTokenResp without negState, given negState accept-incomplete; `None` for any other
/// token (a negTokenInit, a negTokenResp that has its negState, bytes that are not SPNEGO).
///
/// Every field of a negTokenResp is OPTIONAL and an initiator may leave negState out of its own (FreeRDP 3
/// sends its AP-REQ so: responseToken alone); sspi 0.23's acceptor (picky-krb 0.12) then reads the
/// responseToken with its OCTET STRING header still on and refuses the AP-REQ as an invalid token. The
/// built-in target gives such a token the negState it means before its acceptor reads it.
pub fn with_neg_state(token: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::new(token);
    let outer = der::tlv(&mut r, "NegotiationToken").ok()?;
    if outer.tag != CONTEXT | 1 || r.remaining() != 0 {
        return None;
    }
    let mut content = outer.content;
    let mut fields = der::expect(&mut content, der::SEQUENCE, "NegTokenResp").ok()?;
    if content.remaining() != 0 || fields.peek_u8() == Some(CONTEXT) {
        return None;
    }
    // [RFC 4178] 4.2.2 negState [0] ENUMERATED, accept-incomplete (1).
    let mut body = der::write(CONTEXT, &der::write(der::ENUMERATED, &[1]));
    body.extend_from_slice(fields.bytes(fields.remaining(), "NegTokenResp").ok()?);
    Some(der::write(CONTEXT | 1, &der::write(der::SEQUENCE, &body)))
}

/// [RFC 4178] 4.2.1 an InitialContextToken with a negTokenInit that offers the Kerberos mechanisms (the
/// Microsoft OID first, as Windows clients order them) and carries the first Kerberos token.
pub fn init_token(mech_token: &[u8]) -> Vec<u8> {
    let oid = |bytes: &[u8]| der::write(der::OID, bytes);
    let mut list = oid(MS_KRB5_OID_BYTES);
    list.extend(oid(KRB5_OID_BYTES));
    let mut fields = der::write(CONTEXT, &der::write(der::SEQUENCE, &list));
    fields.extend(der::write(
        CONTEXT | 2,
        &der::write(der::OCTET_STRING, mech_token),
    ));
    let mut body = oid(SPNEGO_OID_BYTES);
    body.extend(der::write(CONTEXT, &der::write(der::SEQUENCE, &fields)));
    der::write(APPLICATION, &body)
}

/// A mechanism OID by name.
pub fn mech_name(oid: &str) -> String {
    match oid {
        KRB5_OID => "Kerberos".to_owned(),
        MS_KRB5_OID => "MS Kerberos".to_owned(),
        KRB5_U2U_OID => "Kerberos user-to-user".to_owned(),
        NTLM_OID => "NTLM".to_owned(),
        NEGOEX_OID => "NEGOEX".to_owned(),
        other => other.to_owned(),
    }
}

/// Whether a mechanism name is one of the Kerberos ones.
pub fn is_kerberos(mech: &str) -> bool {
    mech.contains("Kerberos")
}

/// A SPNEGO token and the mechanism token inside it (mechToken or responseToken).
#[derive(Debug, Clone)]
pub struct Negotiation<'a> {
    pub info: SpnegoInfo,
    pub inner: Option<&'a [u8]>,
}

/// [RFC 4178] 4.2 reads a SPNEGO token: an InitialContextToken around a negTokenInit (or, from some
/// acceptors, a negTokenResp), or a bare negTokenResp. `None` when `token` is not SPNEGO.
pub fn negotiation(token: &[u8]) -> Option<Negotiation<'_>> {
    let mut r = Reader::new(token);
    let first = der::tlv(&mut r, "SPNEGO").ok()?;
    let choice = match first.tag {
        t if t == APPLICATION => {
            let mut body = first.content;
            if der::oid(&mut body, "thisMech").ok()? != SPNEGO_OID {
                return None;
            }
            der::tlv(&mut body, "NegotiationToken").ok()?
        }
        t if t == CONTEXT | 1 => first,
        _ => return None,
    };
    match choice.tag {
        t if t == CONTEXT => init(choice.content).ok(),
        t if t == CONTEXT | 1 => resp(choice.content).ok(),
        _ => None,
    }
}

/// [RFC 4178] 4.2.1 NegTokenInit.
fn init(mut r: Reader<'_>) -> WireResult<Negotiation<'_>> {
    let f = der::sequence(&mut r, "NegTokenInit")?;
    let mech_types = match f.get(0) {
        Some(mut list) => der::sequence_of(&mut list, 32, "MechTypeList", |r| {
            der::oid(r, "MechType").map(|o| mech_name(&o))
        })?,
        None => Vec::new(),
    };
    let inner = f
        .get(2)
        .map(|mut r| der::octets(&mut r, "mechToken"))
        .transpose()?;
    Ok(Negotiation {
        info: SpnegoInfo {
            token: "negTokenInit".to_owned(),
            mech_types,
            neg_state: None,
            supported_mech: None,
        },
        inner,
    })
}

/// [RFC 4178] 4.2.2 NegTokenResp.
fn resp(mut r: Reader<'_>) -> WireResult<Negotiation<'_>> {
    let f = der::sequence(&mut r, "NegTokenResp")?;
    let neg_state = f
        .get(0)
        .map(|mut r| der::enumerated(&mut r, "negState"))
        .transpose()?
        .map(|s| {
            match s {
                0 => "accept-completed",
                1 => "accept-incomplete",
                2 => "reject",
                3 => "request-mic",
                _ => "unknown",
            }
            .to_owned()
        });
    let supported_mech = f
        .get(1)
        .map(|mut r| der::oid(&mut r, "supportedMech"))
        .transpose()?
        .map(|o| mech_name(&o));
    let inner = f
        .get(2)
        .map(|mut r| der::octets(&mut r, "responseToken"))
        .transpose()?;
    Ok(Negotiation {
        info: SpnegoInfo {
            token: "negTokenResp".to_owned(),
            mech_types: Vec::new(),
            neg_state,
            supported_mech,
        },
        inner,
    })
}

/// [RFC 4121] 4.1 a Kerberos GSS-API token: its mechanism, its TOK_ID and the message after it.
#[derive(Debug, Clone, Copy)]
pub struct KrbToken<'a> {
    pub mech: &'static str,
    pub tok_id: [u8; 2],
    pub message: &'a [u8],
}

/// [RFC 4121] 4.1 reads the framing of an initial context token of a Kerberos mechanism; `None` when
/// `token` is not one.
pub fn krb_token(token: &[u8]) -> Option<KrbToken<'_>> {
    let mut r = Reader::new(token);
    let mut body = der::expect(&mut r, APPLICATION, "InitialContextToken").ok()?;
    let mech = match der::oid(&mut body, "thisMech").ok()?.as_str() {
        KRB5_OID => "Kerberos",
        MS_KRB5_OID => "MS Kerberos",
        KRB5_U2U_OID => "Kerberos user-to-user",
        _ => return None,
    };
    let tok_id = body.array::<2>("TOK_ID").ok()?;
    Some(KrbToken {
        mech,
        tok_id,
        message: body.rest(),
    })
}

/// [RFC 4121] 4.1 TOK_ID values by name.
pub fn tok_id_name(tok_id: [u8; 2]) -> Option<&'static str> {
    Some(match tok_id {
        [0x01, 0x00] => "AP-REQ",
        [0x02, 0x00] => "AP-REP",
        [0x03, 0x00] => "KRB-ERROR",
        [0x04, 0x00] => "TGT-REQ",
        [0x04, 0x01] => "TGT-REP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A negTokenResp as FreeRDP 3.10 sends its AP-REQ: responseToken [2] alone.
    fn response_token_alone(mech_token: &[u8]) -> Vec<u8> {
        let field = der::write(CONTEXT | 2, &der::write(der::OCTET_STRING, mech_token));
        der::write(CONTEXT | 1, &der::write(der::SEQUENCE, &field))
    }

    #[test]
    fn a_response_without_neg_state_gets_accept_incomplete_and_keeps_its_token() {
        let mech_token = der::write(APPLICATION, &[0x06, 0x01, 0x2a, 0x01, 0x00, 0x6e, 0x00]);
        let token = response_token_alone(&mech_token);
        let fixed = with_neg_state(&token).unwrap();
        // The token as sspi's acceptor reads it (picky-krb): before, the responseToken still holds its OCTET
        // STRING header; after, exactly the mechanism's token.
        let read = |bytes: &[u8]| -> Vec<u8> {
            let t: picky_krb::gss_api::NegTokenTarg1 = picky_asn1_der::from_bytes(bytes).unwrap();
            t.0.response_token.0.unwrap().0.0
        };
        assert_ne!(read(&token), mech_token);
        assert_eq!(read(&fixed), mech_token);
        let t: picky_krb::gss_api::NegTokenTarg1 = picky_asn1_der::from_bytes(&fixed).unwrap();
        // picky keeps negState as its whole ENUMERATED element: accept-incomplete (1).
        assert_eq!(t.0.neg_result.0.unwrap().0.0, vec![der::ENUMERATED, 1, 1]);
        // A response that has its negState, and a negTokenInit, are left alone.
        assert_eq!(with_neg_state(&fixed), None);
        assert_eq!(with_neg_state(&init_token(&mech_token)), None);
        assert_eq!(with_neg_state(b"\xa1\x02\x30\x00junk"), None);
    }
}
