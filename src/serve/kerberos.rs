//! The target's Kerberos NLA: the service key of `TERMSRV/<host name>` from an MIT keytab (`serve --keytab
//! FILE --realm REALM`), sspi's Kerberos acceptor behind SPNEGO, and the target's own checks of the client's
//! AP-REQ before sspi sees it ([RFC 4120] 3.2.3: the ticket decrypts with the service key, the
//! authenticator's time is within five minutes of the target's clock), so that a refused ticket gets the
//! KRB-ERROR a Windows server sends instead of sspi's bare failure.
//!
//! The keys never print ([`crate::kerberos::keytab::Key`]).

use std::path::Path;

use ironrdp_connector::sspi;
use ironrdp_connector::sspi::credssp::{NStatusCode, TsRequest};
use tracing::{info, warn};

use super::ServeError;
use super::scenario::{KerberosProfile, ServiceKey};
use crate::kerberos::acceptor::{self, KRB_AP_ERR_MODIFIED, KRB_AP_ERR_SKEW, MAX_SKEW_S};
use crate::kerberos::keytab::{self, Entry};

/// The service principal's first component, [MS-RDPBCGR] 5.4.5.2 (the SPN a client asks for).
pub const SERVICE: &str = "TERMSRV";

/// The service keys of `TERMSRV/<host name>@<realm>`.
#[derive(Debug, Clone)]
pub struct KerberosService {
    pub realm: String,
    pub host_name: String,
    keys: Vec<Entry>,
}

/// The keys of `<service>/<host_name>@<realm>` in the keytab at `path` (none is not an error here).
pub(crate) fn service_keys(
    path: &Path,
    realm: &str,
    service: &str,
    host_name: &str,
) -> Result<Vec<Entry>, ServeError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ServeError::Config(format!("cannot read the keytab {}: {e}", path.display()))
    })?;
    let entries = keytab::parse(&bytes).map_err(|e| {
        ServeError::Config(format!("cannot read the keytab {}: {e}", path.display()))
    })?;
    Ok(entries
        .into_iter()
        .filter(|e| {
            e.realm == realm
                && e.components.len() == 2
                && e.components.first().is_some_and(|c| c == service)
                && e.components
                    .get(1)
                    .is_some_and(|h| h.eq_ignore_ascii_case(host_name))
        })
        .collect())
}

impl KerberosService {
    /// The keys of `TERMSRV/<host_name>@<realm>` in the keytab at `path`; an error when there are none.
    pub fn from_keytab(path: &Path, realm: &str, host_name: &str) -> Result<Self, ServeError> {
        let keys = service_keys(path, realm, SERVICE, host_name)?;
        if keys.is_empty() {
            return Err(ServeError::Config(format!(
                "the keytab {} has no key of {SERVICE}/{host_name}@{realm} (the name is --host-name, the realm --realm)",
                path.display()
            )));
        }
        info!(principal = %format!("{SERVICE}/{host_name}@{realm}"), keys = keys.len(), "service keys");
        Ok(KerberosService {
            realm: realm.to_owned(),
            host_name: host_name.to_owned(),
            keys,
        })
    }

    /// The principal, `TERMSRV/host@REALM`.
    pub fn principal(&self) -> String {
        format!("{SERVICE}/{}@{}", self.host_name, self.realm)
    }

    /// What the target does with the client's first CredSSP token under `profile`.
    pub fn first_token(&self, token: &[u8], profile: &KerberosProfile) -> First {
        if !profile.ntlm && acceptor::offers_ntlm_first(token) {
            return First::RefuseNtlm;
        }
        let Some(ap_req) = acceptor::ap_req_of(token) else {
            // NTLM inside SPNEGO, or a token sspi will judge.
            return First::Accept(self.sspi_config(None));
        };
        let Ok(names) = acceptor::names(ap_req) else {
            return First::Accept(self.sspi_config(None));
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp() + profile.clock_offset_s;
        let error = |code: u32, client_time: Option<(i64, u32)>| {
            First::Refuse(acceptor::reject_token(&acceptor::krb_error(
                code,
                now,
                client_time,
                &names.realm,
                &names.service,
            )))
        };
        let Some(entry) = acceptor::key_for(&self.keys, names.etype) else {
            warn!(
                etype = names.etype,
                "no service key of the ticket's encryption type"
            );
            return error(crate::codes::kerberos::KRB_AP_ERR_NOKEY, None);
        };
        let key = match profile.key {
            ServiceKey::Keytab => entry.key.expose().to_vec(),
            ServiceKey::NotTheKdcs => entry.key.expose().iter().map(|b| !b).collect(),
        };
        match acceptor::open(ap_req, &key) {
            Err(acceptor::OpenError::Ticket) => {
                warn!(
                    kvno = ?names.kvno,
                    keytab_kvno = entry.kvno,
                    "the ticket does not decrypt with the service key"
                );
                error(KRB_AP_ERR_MODIFIED, None)
            }
            Err(e) => {
                warn!(error = %e, "the AP-REQ cannot be opened");
                First::Accept(self.sspi_config(Some(key)))
            }
            Ok(opened) if (now - opened.ctime_s).abs() > MAX_SKEW_S => {
                warn!(
                    offset_s = opened.ctime_s - now,
                    "the authenticator's time is too far from the target's clock"
                );
                error(KRB_AP_ERR_SKEW, Some((opened.ctime_s, opened.cusec)))
            }
            Ok(_) => First::Accept(self.sspi_config(Some(key))),
        }
    }

    /// sspi's acceptor configuration with the key the ticket needs. Without a ticket to read yet (a first
    /// token that is not an AP-REQ: FreeRDP 3 opens with a user-to-user TGT-REQ and sends its AP-REQ
    /// next), the newest key of the strongest encryption type, the one a KDC encrypts the service's tickets
    /// with ([RFC 4120] 3.3.1: the strongest type the service's keys have).
    fn sspi_config(&self, key: Option<Vec<u8>>) -> Option<Box<sspi::KerberosServerConfig>> {
        let key = key.or_else(|| {
            self.keys
                .iter()
                .max_by_key(|e| (e.kvno, etype_strength(e.etype)))
                .map(|e| e.key.expose().to_vec())
        })?;
        let skew = std::time::Duration::from_secs(MAX_SKEW_S.unsigned_abs());
        let props = sspi::kerberos::ServerProperties::new(
            &[SERVICE, &self.host_name],
            None,
            skew,
            Some(key.into()),
        )
        .ok()?;
        Some(Box::new(sspi::KerberosServerConfig {
            kerberos_config: sspi::KerberosConfig {
                kdc_url: None,
                client_computer_name: self.host_name.clone(),
            },
            server_properties: props,
        }))
    }
}

/// [RFC 3962] / [RFC 4757] how a KDC ranks the encryption types of a service's keys: AES with the longer
/// key first, RC4 after them.
fn etype_strength(etype: i32) -> u8 {
    use crate::codes::kerberos::{
        ETYPE_AES128_CTS_HMAC_SHA1_96, ETYPE_AES256_CTS_HMAC_SHA1_96, ETYPE_RC4_HMAC,
    };
    match u32::try_from(etype) {
        Ok(ETYPE_AES256_CTS_HMAC_SHA1_96) => 3,
        Ok(ETYPE_AES128_CTS_HMAC_SHA1_96) => 2,
        Ok(ETYPE_RC4_HMAC) => 1,
        _ => 0,
    }
}

/// What the target does with a client's first token.
pub enum First {
    /// Hand it to sspi (with Kerberos when there is a configuration).
    Accept(Option<Box<sspi::KerberosServerConfig>>),
    /// Answer with this SPNEGO token (a KRB-ERROR) and close.
    Refuse(Vec<u8>),
    /// The client offers NTLM, which the target does not take: TSRequest errorCode STATUS_NTLM_BLOCKED
    /// ([`crate::codes::ntstatus::STATUS_NTLM_BLOCKED`]).
    RefuseNtlm,
}

/// [MS-CSSP] 2.2.1 A client's TSRequest whose negoToken is a negTokenResp without negState, with the
/// negState put in ([`crate::kerberos::spnego::with_neg_state`]) so that sspi's acceptor reads the AP-REQ in it; `None`
/// when the TSRequest needs nothing.
pub fn normalised_request(frame: &[u8]) -> Option<Vec<u8>> {
    let mut request = sspi::credssp::TsRequest::from_buffer(frame).ok()?;
    let token = crate::kerberos::spnego::with_neg_state(request.nego_tokens.as_deref()?)?;
    request.nego_tokens = Some(token);
    let mut out = Vec::new();
    request.encode_ts_request(&mut out).ok()?;
    Some(out)
}

/// [MS-CSSP] 2.2.1 the TSRequest that refuses: a negoToken, or an errorCode.
pub fn refusal(version: u32, token: Option<Vec<u8>>, status: Option<u32>) -> Vec<u8> {
    let request = TsRequest {
        version,
        nego_tokens: token,
        error_code: status.map(NStatusCode),
        ..TsRequest::default()
    };
    let mut out = Vec::new();
    let _ = request.encode_ts_request(&mut out);
    out
}
