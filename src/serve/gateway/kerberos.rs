//! The built-in gateway's Kerberos ([RFC 4559] Negotiate, [MS-TSGU] 3.3.5.1): the service key of
//! `HTTP/<gateway host name>` from an MIT keytab (`serve --keytab FILE --realm REALM`) and the acceptor's
//! checks of the client's AP-REQ ([RFC 4120] 3.2.3, [`crate::kerberos::acceptor`]): the ticket decrypts with
//! the service key, the authenticator with the ticket's session key, and its time is within five minutes of
//! the gateway's clock. A ticket that fails gets the KRB-ERROR a Windows gateway sends, in a SPNEGO reject in
//! the 401's `WWW-Authenticate: Negotiate` header.
//!
//! Any client of the realm with a valid ticket is let in, as a gateway whose RD CAP allows Domain Users. The
//! final response carries the AP-REP ([RFC 4559] 5, [RFC 4120] 5.5.2) in a SPNEGO accept-completed, as IIS
//! sends it: the client's proof that the gateway holds the service key.
//!
//! The keys never print ([`crate::kerberos::keytab::Key`]).

use std::path::Path;

use tracing::{info, warn};

use crate::codes::kerberos::{KRB_AP_ERR_BAD_INTEGRITY, KRB_AP_ERR_NOKEY};
use crate::gateway::kerberos::SERVICE;
use crate::kerberos::acceptor::{self, KRB_AP_ERR_MODIFIED, KRB_AP_ERR_SKEW, MAX_SKEW_S};
use crate::kerberos::keytab::Entry;
use crate::kerberos::{der, spnego};
use crate::serve::ServeError;
use crate::serve::scenario::{KerberosProfile, ServiceKey};
use picky_krb::constants::key_usages::AP_REP_ENC;
use picky_krb::crypto::CipherSuite;

/// The service keys of `HTTP/<host_name>@<realm>`.
#[derive(Debug, Clone)]
pub struct GatewayKerberos {
    pub realm: String,
    pub host_name: String,
    keys: Vec<Entry>,
}

/// What the gateway does with a client's Negotiate token.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Checked {
    /// Not an AP-REQ: NTLM inside SPNEGO, for the NTLM side to judge.
    NotKerberos,
    /// The ticket and the authenticator are good: the SPNEGO token with the AP-REP.
    Accepted(Vec<u8>),
    /// Refused: the SPNEGO token with the KRB-ERROR, and the code.
    Refused { token: Vec<u8>, code: u32 },
}

impl GatewayKerberos {
    /// The keys of `HTTP/<host_name>@<realm>` in the keytab at `path`; `Ok(None)` when it has none.
    pub fn from_keytab(
        path: &Path,
        realm: &str,
        host_name: &str,
    ) -> Result<Option<GatewayKerberos>, ServeError> {
        let keys = crate::serve::kerberos::service_keys(path, realm, SERVICE, host_name)?;
        if keys.is_empty() {
            return Ok(None);
        }
        info!(principal = %format!("{SERVICE}/{host_name}@{realm}"), keys = keys.len(), "gateway service keys");
        Ok(Some(GatewayKerberos {
            realm: realm.to_owned(),
            host_name: host_name.to_owned(),
            keys,
        }))
    }

    /// The principal, `HTTP/host@REALM`.
    pub fn principal(&self) -> String {
        format!("{SERVICE}/{}@{}", self.host_name, self.realm)
    }

    /// [RFC 4120] 3.2.3 the acceptor's checks of the AP-REQ in `token` (SPNEGO or a bare GSS token), with
    /// the service key as `profile` has it.
    pub(super) fn check(&self, token: &[u8], profile: &KerberosProfile) -> Checked {
        let Some(ap_req) = acceptor::ap_req_of(token) else {
            return Checked::NotKerberos;
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp() + profile.clock_offset_s;
        let Ok(names) = acceptor::names(ap_req) else {
            return Checked::NotKerberos;
        };
        let refuse = |code: u32, client_time: Option<(i64, u32)>| Checked::Refused {
            token: acceptor::reject_token(&acceptor::krb_error(
                code,
                now,
                client_time,
                &names.realm,
                &names.service,
            )),
            code,
        };
        let Some(entry) = acceptor::key_for(&self.keys, names.etype) else {
            warn!(
                etype = names.etype,
                "no gateway key of the ticket's encryption type"
            );
            return refuse(KRB_AP_ERR_NOKEY, None);
        };
        let key: Vec<u8> = match profile.key {
            ServiceKey::Keytab => entry.key.expose().to_vec(),
            ServiceKey::NotTheKdcs => entry.key.expose().iter().map(|b| !b).collect(),
        };
        match acceptor::open(ap_req, &key) {
            Err(acceptor::OpenError::Ticket) => {
                warn!(kvno = ?names.kvno, keytab_kvno = entry.kvno, "the ticket does not decrypt with the gateway's key");
                refuse(KRB_AP_ERR_MODIFIED, None)
            }
            Err(e) => {
                warn!(error = %e, "the AP-REQ cannot be opened");
                refuse(KRB_AP_ERR_BAD_INTEGRITY, None)
            }
            Ok(opened) if (now - opened.ctime_s).abs() > MAX_SKEW_S => {
                refuse(KRB_AP_ERR_SKEW, Some((opened.ctime_s, opened.cusec)))
            }
            Ok(opened) => match ap_rep_token(&opened, names.etype) {
                Some(token) => Checked::Accepted(token),
                None => refuse(KRB_AP_ERR_BAD_INTEGRITY, None),
            },
        }
    }
}

fn field(n: u8, content: &[u8]) -> Vec<u8> {
    der::write(der::CONTEXT | n, content)
}

/// [RFC 4178] 4.2.2 a negTokenResp accept-completed with the [RFC 4121] 4.1 framed AP-REP ([RFC 4120]
/// 5.5.2): the client's ctime and cusec, a new subkey of the session's type and a sequence number, encrypted
/// with the ticket's session key (key usage 12). The session key's type is the authenticator's subkey's when
/// there is one, else the ticket's.
fn ap_rep_token(opened: &acceptor::Opened, ticket_etype: i32) -> Option<Vec<u8>> {
    let etype = opened.subkey.as_ref().map_or(ticket_etype, |(t, _)| *t);
    let cipher = CipherSuite::try_from(usize::try_from(etype).ok()?)
        .ok()?
        .cipher();
    let subkey: Vec<u8> = (0..cipher.key_size())
        .map(|_| rand::random::<u8>())
        .collect();
    let time = time::OffsetDateTime::from_unix_timestamp(opened.ctime_s).ok()?;
    let ctime = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let etype_int = der::write_integer(u32::try_from(etype).ok()?);
    let mut key = field(0, &etype_int);
    key.extend(field(1, &der::write(der::OCTET_STRING, &subkey)));
    let mut part = field(0, &der::write(der::GENERALIZED_TIME, ctime.as_bytes()));
    part.extend(field(1, &der::write_integer(opened.cusec)));
    part.extend(field(2, &der::write(der::SEQUENCE, &key)));
    part.extend(field(
        3,
        &der::write_integer(rand::random::<u32>() & 0x7fff_ffff),
    ));
    let plain = der::write(der::APPLICATION | 27, &der::write(der::SEQUENCE, &part));
    let sealed = cipher
        .encrypt(opened.session_key.expose(), AP_REP_ENC, &plain)
        .ok()?;
    let mut enc = field(0, &etype_int);
    enc.extend(field(2, &der::write(der::OCTET_STRING, &sealed)));
    let mut body = field(0, &der::write_integer(5));
    body.extend(field(1, &der::write_integer(15)));
    body.extend(field(2, &der::write(der::SEQUENCE, &enc)));
    let ap_rep = der::write(der::APPLICATION | 15, &der::write(der::SEQUENCE, &body));
    let mut framed = der::write(der::OID, spnego::KRB5_OID_BYTES);
    framed.extend_from_slice(&[0x02, 0x00]);
    framed.extend(ap_rep);
    let gss = der::write(der::APPLICATION, &framed);
    let mut fields = field(0, &der::write(der::ENUMERATED, &[0]));
    fields.extend(field(1, &der::write(der::OID, spnego::KRB5_OID_BYTES)));
    fields.extend(field(2, &der::write(der::OCTET_STRING, &gss)));
    Some(field(1, &der::write(der::SEQUENCE, &fields)))
}
