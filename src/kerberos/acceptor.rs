//! The checks a Kerberos acceptor makes on an AP-REQ before anything else ([RFC 4120] 3.2.3), and the
//! KRB-ERROR it answers with: the built-in target's own, so that the error a client gets names what went
//! wrong (sspi's acceptor fails the same tickets but returns no KRB-ERROR), and the replay's `--keytab`,
//! which opens the ticket and the authenticator to find the keys of the CredSSP exchange.
//!
//! Keys and the decrypted parts never print: what leaves this module is names, times and the outcome.

use picky_krb::constants::key_usages::{AP_REQ_AUTHENTICATOR, TICKET_REP};
use picky_krb::crypto::CipherSuite;
use picky_krb::data_types::{Authenticator, EncTicketPart};
use picky_krb::messages::ApReq;
use time::OffsetDateTime;

use super::der::{self, CONTEXT};
use super::keytab::{Entry, Key};
use super::spnego;

pub use crate::codes::kerberos::{KRB_AP_ERR_MODIFIED, KRB_AP_ERR_SKEW};

/// [RFC 4120] 1.2 the usual clock skew an acceptor tolerates: five minutes.
pub const MAX_SKEW_S: i64 = 300;

/// The AP-REQ inside a client's first CredSSP token: SPNEGO's mechToken, or a bare Kerberos GSS token.
pub fn ap_req_of(nego_token: &[u8]) -> Option<&[u8]> {
    let inner = match spnego::negotiation(nego_token) {
        Some(n) => n.inner?,
        None => nego_token,
    };
    let token = spnego::krb_token(inner)?;
    (token.tok_id == [0x01, 0x00]).then_some(token.message)
}

/// Whether a client's first CredSSP token offers NTLM rather than Kerberos: a raw NTLMSSP message, or
/// SPNEGO whose preferred mechanism is NTLM.
pub fn offers_ntlm_first(nego_token: &[u8]) -> bool {
    if nego_token.starts_with(b"NTLMSSP\0") {
        return true;
    }
    match spnego::negotiation(nego_token) {
        Some(n) => n
            .info
            .mech_types
            .first()
            .is_some_and(|m| !spnego::is_kerberos(m)),
        None => false,
    }
}

/// What an AP-REQ names in clear: the service and its realm, the ticket's encryption type and key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApReqNames {
    /// The service principal's name components: `["TERMSRV", "host"]`.
    pub service: Vec<String>,
    pub realm: String,
    pub etype: i32,
    pub kvno: Option<u32>,
}

/// What an opened AP-REQ says: the client's time, and the keys of the exchange.
pub struct Opened {
    /// The authenticator's ctime, seconds since the Unix epoch.
    pub ctime_s: i64,
    /// The authenticator's cusec.
    pub cusec: u32,
    /// The ticket's session key, and its encryption type.
    pub session_key: Key,
    pub session_etype: i32,
    /// The authenticator's subkey, when the client sent one ([RFC 4121] 2).
    pub subkey: Option<(i32, Key)>,
}

impl core::fmt::Debug for Opened {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opened")
            .field("ctime_s", &self.ctime_s)
            .finish_non_exhaustive()
    }
}

/// Why an AP-REQ could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the token is not an AP-REQ")]
    NotApReq,
    #[error("no service key of encryption type {0}")]
    NoKey(i32),
    /// [RFC 4120] 3.2.3 the ticket does not decrypt with the service key: KRB_AP_ERR_MODIFIED.
    #[error("the ticket does not decrypt with the service key")]
    Ticket,
    #[error("the authenticator does not decrypt with the ticket's session key")]
    Authenticator,
}

/// The names of an AP-REQ, read with picky's types.
pub fn names(ap_req: &[u8]) -> Result<ApReqNames, OpenError> {
    let ap: ApReq = picky_asn1_der::from_bytes(ap_req).map_err(|_| OpenError::NotApReq)?;
    let ticket = &ap.0.ticket.0.0;
    let enc = &ticket.enc_part.0;
    Ok(ApReqNames {
        service: ticket
            .sname
            .0
            .name_string
            .0
            .0
            .iter()
            .map(|s| s.to_string())
            .collect(),
        realm: ticket.realm.0.to_string(),
        etype: int(&enc.etype.0.0),
        kvno: enc
            .kvno
            .0
            .as_ref()
            .map(|k| u32::try_from(int(&k.0.0)).unwrap_or_default()),
    })
}

/// A DER INTEGER's content as an i32 (0 when it does not fit).
fn int(bytes: &[u8]) -> i32 {
    if bytes.len() > 4 {
        return 0;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut v: i64 = if negative { -1 } else { 0 };
    for b in bytes {
        v = (v << 8) | i64::from(*b);
    }
    i32::try_from(v).unwrap_or(0)
}

/// The service key of `etype` among `keys` (the highest key version first).
pub fn key_for(keys: &[Entry], etype: i32) -> Option<&Entry> {
    keys.iter()
        .filter(|e| e.etype == etype)
        .max_by_key(|e| e.kvno)
}

/// [RFC 4120] 3.2.3 decrypts the ticket with the service key and the authenticator with the ticket's session
/// key.
pub fn open(ap_req: &[u8], service_key: &[u8]) -> Result<Opened, OpenError> {
    let ap: ApReq = picky_asn1_der::from_bytes(ap_req).map_err(|_| OpenError::NotApReq)?;
    let enc = &ap.0.ticket.0.0.enc_part.0;
    let cipher = CipherSuite::try_from(enc.etype.0.0.as_slice())
        .map_err(|_| OpenError::NoKey(int(&enc.etype.0.0)))?
        .cipher();
    let plain = cipher
        .decrypt(service_key, TICKET_REP, &enc.cipher.0.0)
        .map_err(|_| OpenError::Ticket)?;
    let ticket: EncTicketPart =
        picky_asn1_der::from_bytes(&plain).map_err(|_| OpenError::Ticket)?;
    let session_key = ticket.0.key.0.key_value.0.0.clone();
    let session_etype = int(&ticket.0.key.0.key_type.0.0);
    let auth = &ap.0.authenticator.0;
    let cipher = CipherSuite::try_from(auth.etype.0.0.as_slice())
        .map_err(|_| OpenError::Authenticator)?
        .cipher();
    let plain = cipher
        .decrypt(&session_key, AP_REQ_AUTHENTICATOR, &auth.cipher.0.0)
        .map_err(|_| OpenError::Authenticator)?;
    let authenticator: Authenticator =
        picky_asn1_der::from_bytes(&plain).map_err(|_| OpenError::Authenticator)?;
    let a = &authenticator.0;
    let ctime =
        OffsetDateTime::try_from(a.ctime.0.0.clone()).map_err(|_| OpenError::Authenticator)?;
    let cusec = u32::try_from(int(&a.cusec.0.0)).unwrap_or_default();
    let subkey = a
        .subkey
        .0
        .as_ref()
        .map(|k| (int(&k.0.key_type.0.0), Key::new(k.0.key_value.0.0.clone())));
    Ok(Opened {
        ctime_s: ctime.unix_timestamp(),
        cusec,
        session_key: Key::new(session_key),
        session_etype,
        subkey,
    })
}

/// [RFC 4120] 5.2.3 KerberosTime: `YYYYMMDDHHMMSSZ`.
fn kerberos_time(unix_s: i64) -> Vec<u8> {
    let t = OffsetDateTime::from_unix_timestamp(unix_s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
    .into_bytes()
}

fn field(n: u8, content: &[u8]) -> Vec<u8> {
    der::write(CONTEXT | n, content)
}

/// [RFC 4120] 5.9.1 a KRB-ERROR from an acceptor for `service@realm`, with the client's ctime and cusec
/// (from its authenticator) when the acceptor read them.
pub fn krb_error(
    code: u32,
    stime_s: i64,
    client_time: Option<(i64, u32)>,
    realm: &str,
    service: &[String],
) -> Vec<u8> {
    let time = |s: i64| der::write(der::GENERALIZED_TIME, &kerberos_time(s));
    let mut body = field(0, &der::write_integer(5));
    body.extend(field(1, &der::write_integer(30)));
    if let Some((ctime, cusec)) = client_time {
        body.extend(field(2, &time(ctime)));
        body.extend(field(3, &der::write_integer(cusec)));
    }
    body.extend(field(4, &time(stime_s)));
    body.extend(field(5, &der::write_integer(0)));
    body.extend(field(6, &der::write_integer(code)));
    body.extend(field(9, &der::write(der::GENERAL_STRING, realm.as_bytes())));
    let names: Vec<u8> = service
        .iter()
        .flat_map(|s| der::write(der::GENERAL_STRING, s.as_bytes()))
        .collect();
    let mut sname = field(0, &der::write_integer(2));
    sname.extend(field(1, &der::write(der::SEQUENCE, &names)));
    body.extend(field(10, &der::write(der::SEQUENCE, &sname)));
    der::write(der::APPLICATION | 30, &der::write(der::SEQUENCE, &body))
}

/// [RFC 4178] 4.2.2 a negTokenResp that rejects, carrying `krb_error` in its [RFC 4121] 4.1 token framing
/// (TOK_ID 03 00), as a Kerberos acceptor answers an AP-REQ it refuses.
pub fn reject_token(krb_error: &[u8]) -> Vec<u8> {
    let mut framed = der::write(der::OID, spnego::KRB5_OID_BYTES);
    framed.extend_from_slice(&[0x03, 0x00]);
    framed.extend_from_slice(krb_error);
    let gss = der::write(der::APPLICATION, &framed);
    let mut fields = field(0, &der::write(der::ENUMERATED, &[2]));
    fields.extend(field(1, &der::write(der::OID, spnego::KRB5_OID_BYTES)));
    fields.extend(field(2, &der::write(der::OCTET_STRING, &gss)));
    field(1, &der::write(der::SEQUENCE, &fields))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pdu::KrbMessage;

    #[test]
    fn the_krb_error_reads_back() {
        let service = vec!["TERMSRV".to_owned(), "host.example".to_owned()];
        let error = krb_error(
            KRB_AP_ERR_SKEW,
            1_700_003_600,
            Some((1_700_000_000, 7)),
            "EXAMPLE",
            &service,
        );
        let token = reject_token(&error);
        let n = spnego::negotiation(&token).expect("SPNEGO");
        assert_eq!(n.info.neg_state.as_deref(), Some("reject"));
        let krb = spnego::krb_token(n.inner.expect("a responseToken")).expect("GSS framing");
        assert_eq!(krb.tok_id, [0x03, 0x00]);
        match crate::kerberos::message::parse(krb.message).expect("a KRB-ERROR") {
            KrbMessage::Error(e) => {
                assert_eq!(e.code, KRB_AP_ERR_SKEW);
                assert_eq!(e.server, "TERMSRV/host.example@EXAMPLE");
                assert_eq!(e.stime, "2023-11-14T23:13:20Z");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ntlm_first() {
        assert!(offers_ntlm_first(b"NTLMSSP\0\x01\0\0\0"));
        let krb = spnego::init_token(&[0x60, 0x00]);
        assert!(!offers_ntlm_first(&krb));
        assert_eq!(ap_req_of(&krb), None);
    }
}
