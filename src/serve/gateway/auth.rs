//! The gateway's side of the HTTP authentication ([MS-TSGU] 3.3.5.1): NTLM ([MS-NLMP]) and Negotiate (SPNEGO
//! with NTLM) through sspi, Basic ([RFC 7617]), for the one test identity. NTLM and Negotiate authenticate
//! the connection they run on, leg by leg.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, BufferType, CredentialUse, Credentials, DataRepresentation, Negotiate,
    NegotiateConfig, Ntlm, SecurityBuffer, SecurityStatus, ServerRequestFlags, Sspi as _,
    SspiImpl as _, Username,
};

use super::kerberos::{Checked, GatewayKerberos};
use crate::gateway::Scheme;
use crate::serve::TestIdentity;
use crate::serve::scenario::KerberosProfile;

/// What an Authorization header leads to.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Another leg: the WWW-Authenticate value to send with the 401.
    Challenge(String),
    /// The client is who it says; the WWW-Authenticate value of the final response, when the scheme has one
    /// (Kerberos's AP-REP).
    Authenticated(Option<String>),
    /// The credentials are wrong, or the scheme is not offered: the reason, for the log.
    Refused(String),
    /// Refused with a last token for the client (the KRB-ERROR of a refused ticket): the WWW-Authenticate
    /// value, and the reason.
    RefusedWith(String, String),
}

enum Context {
    Ntlm(Box<Ntlm>, Option<sspi::AuthIdentityBuffers>),
    Negotiate(Box<Negotiate>, Option<sspi::CredentialsBuffers>),
}

/// The authentication state of one connection.
#[derive(Default)]
pub(super) struct ServerAuth {
    context: Option<(Scheme, Context)>,
}

pub(super) fn identity(id: &TestIdentity) -> Result<AuthIdentity, String> {
    let domain = (!id.domain.is_empty()).then_some(id.domain.as_str());
    let username = Username::new(&id.user, domain).map_err(|e| e.to_string())?;
    Ok(AuthIdentity {
        username,
        password: id.password().to_owned().into(),
    })
}

impl ServerAuth {
    /// Takes one Authorization header value (`scheme token`), for a gateway that offers `offered`.
    pub(super) fn step(
        &mut self,
        value: &str,
        offered: &[Scheme],
        id: &TestIdentity,
        kerberos: Option<(&GatewayKerberos, KerberosProfile)>,
    ) -> Verdict {
        let (scheme_name, token) = crate::gateway::http::authorization(value);
        let Some(scheme) = Scheme::from_name(scheme_name).filter(|s| offered.contains(s)) else {
            return Verdict::Refused(format!("the scheme {scheme_name} is not offered"));
        };
        match scheme {
            Scheme::Basic => {
                let decoded = STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':'))
                else {
                    return Verdict::Refused("a Basic token that is not user:password".to_owned());
                };
                let user = user.rsplit('\\').next().unwrap_or(user);
                if user.eq_ignore_ascii_case(&id.user) && password == id.password() {
                    Verdict::Authenticated(None)
                } else {
                    Verdict::Refused(format!("wrong Basic credentials for {user}"))
                }
            }
            Scheme::Negotiate if kerberos.is_some() && self.context.is_none() => {
                let Some((keys, profile)) = kerberos else {
                    return Verdict::Refused("no Kerberos keys".to_owned());
                };
                let Ok(bytes) = STANDARD.decode(token) else {
                    return Verdict::Refused("a Negotiate token that is not base64".to_owned());
                };
                match keys.check(&bytes, &profile) {
                    Checked::Accepted(token) => Verdict::Authenticated(Some(format!(
                        "Negotiate {}",
                        STANDARD.encode(token)
                    ))),
                    Checked::Refused { token, code } => Verdict::RefusedWith(
                        format!("Negotiate {}", STANDARD.encode(token)),
                        format!(
                            "Kerberos refused: {}",
                            crate::kerberos::message::error_name(code)
                        ),
                    ),
                    Checked::NotKerberos if !profile.ntlm => Verdict::Refused(
                        "NTLM inside Negotiate, and this gateway takes Kerberos only".to_owned(),
                    ),
                    Checked::NotKerberos => self.leg(scheme, token, id),
                }
            }
            Scheme::Ntlm | Scheme::Negotiate => self.leg(scheme, token, id),
        }
    }

    fn leg(&mut self, scheme: Scheme, token: &str, id: &TestIdentity) -> Verdict {
        let Ok(input) = STANDARD.decode(token) else {
            return Verdict::Refused(format!("a {} token that is not base64", scheme.as_str()));
        };
        let auth = match identity(id) {
            Ok(a) => a,
            Err(e) => return Verdict::Refused(e),
        };
        if self.context.as_ref().is_none_or(|(s, _)| *s != scheme) {
            let context = match scheme {
                Scheme::Negotiate => {
                    let config = NegotiateConfig {
                        protocol_config: Box::new(NtlmConfig::new(
                            super::DEFAULT_HOST_NAME.to_owned(),
                        )),
                        package_list: Some("!kerberos,ntlm".to_owned()),
                        client_computer_name: super::DEFAULT_HOST_NAME.to_owned(),
                    };
                    let mut n = match Negotiate::new_server(config, vec![auth.clone()]) {
                        Ok(n) => Box::new(n),
                        Err(e) => return Verdict::Refused(e.to_string()),
                    };
                    let handle = n
                        .acquire_credentials_handle()
                        .with_credential_use(CredentialUse::Inbound)
                        .with_auth_data(&Credentials::AuthIdentity(auth.clone()))
                        .execute(&mut *n)
                        .map(|r| r.credentials_handle);
                    match handle {
                        Ok(h) => Context::Negotiate(n, h),
                        Err(e) => return Verdict::Refused(e.to_string()),
                    }
                }
                _ => {
                    let mut n = Box::new(Ntlm::new());
                    let handle = n
                        .acquire_credentials_handle()
                        .with_credential_use(CredentialUse::Inbound)
                        .with_auth_data(&auth)
                        .execute(&mut *n)
                        .map(|r| r.credentials_handle);
                    match handle {
                        Ok(h) => Context::Ntlm(n, h),
                        Err(e) => return Verdict::Refused(e.to_string()),
                    }
                }
            };
            self.context = Some((scheme, context));
        }
        let Some((_, context)) = self.context.as_mut() else {
            return Verdict::Refused("no authentication context".to_owned());
        };
        let mut input = vec![SecurityBuffer::new(input, BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let result = match context {
            Context::Ntlm(ntlm, handle) => {
                let builder = ntlm
                    .accept_security_context()
                    .with_credentials_handle(handle)
                    .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
                    .with_target_data_representation(DataRepresentation::Native)
                    .with_input(&mut input)
                    .with_output(&mut output);
                ntlm.accept_security_context_impl(builder)
                    .and_then(|mut g| g.resolve_to_result())
                    .and_then(|r| {
                        if matches!(
                            r.status,
                            SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
                        ) {
                            ntlm.complete_auth_token(&mut output)?;
                        }
                        Ok(r.status)
                    })
            }
            Context::Negotiate(negotiate, handle) => {
                let builder = negotiate
                    .accept_security_context()
                    .with_credentials_handle(handle)
                    .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
                    .with_target_data_representation(DataRepresentation::Native)
                    .with_input(&mut input)
                    .with_output(&mut output);
                negotiate
                    .accept_security_context_impl(builder)
                    .and_then(|mut g| g.resolve_to_result())
                    .map(|r| r.status)
            }
        };
        let token = output
            .into_iter()
            .next()
            .map(|b| b.buffer)
            .unwrap_or_default();
        match result {
            Ok(SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue) => {
                Verdict::Challenge(format!("{} {}", scheme.as_str(), STANDARD.encode(token)))
            }
            Ok(_) => {
                self.context = None;
                Verdict::Authenticated(None)
            }
            Err(e) => {
                self.context = None;
                Verdict::Refused(format!("{} refused: {e}", scheme.as_str()))
            }
        }
    }
}
