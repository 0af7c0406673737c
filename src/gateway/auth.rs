//! The client's HTTP authentication to an RD Gateway ([MS-TSGU] 3.3.5.1): NTLM ([MS-NLMP]) and Negotiate
//! ([RFC 4559]: SPNEGO with NTLM inside, or with a Kerberos AP-REQ made by [`super::kerberos`]) through sspi,
//! and Basic ([RFC 7617]). Each token goes into an
//! `Authorization` header of the next request; the headers are never recorded, only their scheme.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse, Credentials,
    CredentialsBuffers, DataRepresentation, Negotiate, NegotiateConfig, Ntlm, SecurityBuffer,
    SecurityStatus, Sspi as _, SspiImpl as _, Username,
};

use crate::probe::Password;

/// An HTTP authentication scheme a gateway offers and the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// [RFC 4559] SPNEGO: Kerberos as --auth allows (a realm, a KDC), else NTLM inside it.
    Negotiate,
    /// [MS-NLMP] NTLM over HTTP.
    Ntlm,
    /// [RFC 7617] Basic: the password in the clear inside TLS.
    Basic,
}

impl Scheme {
    /// The scheme's name in HTTP headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Negotiate => "Negotiate",
            Scheme::Ntlm => "NTLM",
            Scheme::Basic => "Basic",
        }
    }

    /// The scheme of this name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Scheme> {
        [Scheme::Negotiate, Scheme::Ntlm, Scheme::Basic]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

/// Why the client cannot authenticate.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the gateway user name is not valid: {0}")]
    User(String),
    #[error("{scheme} authentication failed in the client: {detail}")]
    Sspi {
        scheme: &'static str,
        detail: String,
    },
    #[error("the gateway's {0} challenge is not base64")]
    Challenge(&'static str),
}

/// The gateway credentials: a user (`DOMAIN\user` or `user@domain` accepted) and a password.
#[derive(Debug, Clone)]
pub struct GatewayCredentials {
    pub user: String,
    pub domain: Option<String>,
    pub password: Password,
}

impl GatewayCredentials {
    /// The user and its domain: `DOMAIN\user` split, `user@domain` kept whole.
    pub fn user_and_domain(&self) -> (String, Option<String>) {
        match (&self.domain, self.user.split_once('\\')) {
            (None, Some((d, u))) => (u.to_owned(), Some(d.to_owned())),
            _ => (self.user.clone(), self.domain.clone()),
        }
    }

    pub(crate) fn identity(&self) -> Result<AuthIdentity, AuthError> {
        let (user, domain) = self.user_and_domain();
        let username =
            Username::new(&user, domain.as_deref()).map_err(|e| AuthError::User(e.to_string()))?;
        Ok(AuthIdentity {
            username,
            password: self.password.expose().to_owned().into(),
        })
    }
}

enum Backend {
    Ntlm {
        ntlm: Box<Ntlm>,
        handle: Option<AuthIdentityBuffers>,
    },
    Negotiate {
        negotiate: Box<Negotiate>,
        handle: Option<CredentialsBuffers>,
    },
    Basic {
        value: String,
        sent: bool,
    },
    /// Negotiate with Kerberos: the AP-REQ made before the first leg ([`super::kerberos`]), then the
    /// gateway's AP-REP checked.
    Kerberos {
        krb: Box<sspi::Kerberos>,
        handle: Option<CredentialsBuffers>,
        first: Option<Vec<u8>>,
    },
}

/// One client's authentication, leg by leg.
pub struct ClientAuth {
    scheme: Scheme,
    backend: Backend,
    /// The service principal: `HTTP/gateway-host`.
    target: String,
    /// The last token completed the exchange on the client's side.
    pub complete: bool,
}

impl core::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("scheme", &self.scheme)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

fn sspi_err(scheme: Scheme) -> impl Fn(sspi::Error) -> AuthError {
    move |e| AuthError::Sspi {
        scheme: scheme.as_str(),
        detail: e.to_string(),
    }
}

/// One NTLM leg of a client to `target`: NEGOTIATE without `input`, AUTHENTICATE with the CHALLENGE in
/// it. Returns the token and whether the context is complete. The gateway's HTTP authentication and the
/// RPC bind ([`super::rpc::ntlm`]) both take their legs here.
pub(crate) fn ntlm_leg(
    ntlm: &mut Ntlm,
    handle: &mut Option<AuthIdentityBuffers>,
    target: &str,
    flags: ClientRequestFlags,
    input: Option<Vec<u8>>,
) -> sspi::Result<(Vec<u8>, bool)> {
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let mut input = input
        .map(|i| vec![SecurityBuffer::new(i, BufferType::Token)])
        .unwrap_or_default();
    let mut builder = ntlm
        .initialize_security_context()
        .with_credentials_handle(handle)
        .with_context_requirements(flags)
        .with_target_data_representation(DataRepresentation::Native)
        .with_target_name(target)
        .with_output(&mut output);
    if !input.is_empty() {
        builder = builder.with_input(&mut input);
    }
    let result = ntlm
        .initialize_security_context_impl(&mut builder)?
        .resolve_to_result()?;
    if matches!(
        result.status,
        SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
    ) {
        ntlm.complete_auth_token(&mut output)?;
    }
    let complete = !matches!(
        result.status,
        SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue
    );
    let token = output
        .into_iter()
        .next()
        .map(|b| b.buffer)
        .unwrap_or_default();
    Ok((token, complete))
}

impl ClientAuth {
    /// The authentication of `credentials` to the gateway `host` with `scheme`.
    pub fn new(
        scheme: Scheme,
        credentials: &GatewayCredentials,
        host: &str,
        workstation: &str,
    ) -> Result<ClientAuth, AuthError> {
        let backend = match scheme {
            Scheme::Basic => {
                let user = match &credentials.domain {
                    Some(d) => format!("{d}\\{}", credentials.user),
                    None => credentials.user.clone(),
                };
                Backend::Basic {
                    value: crate::gateway::http::basic(&user, credentials.password.expose()),
                    sent: false,
                }
            }
            Scheme::Ntlm => {
                let identity = credentials.identity()?;
                let mut ntlm = Box::new(Ntlm::with_config(NtlmConfig::new(workstation.to_owned())));
                let handle = ntlm
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&identity)
                    .execute(&mut *ntlm)
                    .map_err(sspi_err(scheme))?
                    .credentials_handle;
                Backend::Ntlm { ntlm, handle }
            }
            Scheme::Negotiate => {
                let identity = credentials.identity()?;
                let config = NegotiateConfig {
                    protocol_config: Box::new(NtlmConfig::new(workstation.to_owned())),
                    // No KDC is contacted: SPNEGO with NTLM alone.
                    package_list: Some("!kerberos,ntlm".to_owned()),
                    client_computer_name: workstation.to_owned(),
                };
                let mut negotiate =
                    Box::new(Negotiate::new_client(config).map_err(sspi_err(scheme))?);
                let handle = negotiate
                    .acquire_credentials_handle()
                    .with_credential_use(CredentialUse::Outbound)
                    .with_auth_data(&Credentials::AuthIdentity(identity))
                    .execute(&mut *negotiate)
                    .map_err(sspi_err(scheme))?
                    .credentials_handle;
                Backend::Negotiate { negotiate, handle }
            }
        };
        Ok(ClientAuth {
            scheme,
            backend,
            target: format!("HTTP/{host}"),
            complete: false,
        })
    }

    /// Negotiate with Kerberos for `spn`, from the AP-REQ (a GSS-API token) sspi made.
    pub fn kerberos(
        krb: Box<sspi::Kerberos>,
        handle: Option<CredentialsBuffers>,
        first: Vec<u8>,
        spn: String,
    ) -> ClientAuth {
        ClientAuth {
            scheme: Scheme::Negotiate,
            backend: Backend::Kerberos {
                krb,
                handle,
                first: Some(first),
            },
            target: spn,
            complete: false,
        }
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The service principal, `HTTP/gateway-host`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether this is Negotiate with Kerberos.
    pub fn is_kerberos(&self) -> bool {
        matches!(self.backend, Backend::Kerberos { .. })
    }

    /// [RFC 4559] 5 the gateway's last Negotiate token (its AP-REP), checked; `Ok` for any other scheme.
    pub fn finish(&mut self, token: &str) -> Result<(), AuthError> {
        let Backend::Kerberos { krb, handle, .. } = &mut self.backend else {
            return Ok(());
        };
        let bytes = STANDARD
            .decode(token.trim())
            .map_err(|_| AuthError::Challenge("Negotiate"))?;
        super::kerberos::mutual(krb, handle, &self.target, &bytes).map_err(|detail| {
            AuthError::Sspi {
                scheme: "Negotiate (Kerberos)",
                detail,
            }
        })?;
        self.complete = true;
        Ok(())
    }

    /// The next `Authorization` header value, from the gateway's challenge token (base64) when there is one.
    pub fn step(&mut self, challenge: Option<&str>) -> Result<String, AuthError> {
        let scheme = self.scheme;
        let input = match challenge.filter(|c| !c.is_empty()) {
            Some(c) => Some(
                STANDARD
                    .decode(c.trim())
                    .map_err(|_| AuthError::Challenge(scheme.as_str()))?,
            ),
            None => None,
        };
        let token = match &mut self.backend {
            Backend::Kerberos { first, .. } => {
                // The AP-REQ goes once; the gateway's answer to it is read by `finish`.
                let Some(first) = first.take() else {
                    return Err(AuthError::Sspi {
                        scheme: "Negotiate (Kerberos)",
                        detail: "the gateway asked for another leg after the AP-REQ".to_owned(),
                    });
                };
                crate::kerberos::spnego::init_token(&first)
            }
            Backend::Basic { value, sent } => {
                *sent = true;
                self.complete = true;
                return Ok(format!("Basic {value}"));
            }
            Backend::Ntlm { ntlm, handle } => {
                let (token, complete) = ntlm_leg(
                    ntlm,
                    handle,
                    &self.target,
                    ClientRequestFlags::CONFIDENTIALITY | ClientRequestFlags::ALLOCATE_MEMORY,
                    input,
                )
                .map_err(sspi_err(scheme))?;
                self.complete = complete;
                token
            }
            Backend::Negotiate { negotiate, handle } => {
                let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
                let mut input_buffers = input
                    .map(|i| vec![SecurityBuffer::new(i, BufferType::Token)])
                    .unwrap_or_default();
                let mut builder = negotiate
                    .initialize_security_context()
                    .with_credentials_handle(handle)
                    .with_context_requirements(
                        ClientRequestFlags::CONFIDENTIALITY
                            | ClientRequestFlags::ALLOCATE_MEMORY
                            | ClientRequestFlags::MUTUAL_AUTH,
                    )
                    .with_target_data_representation(DataRepresentation::Native)
                    .with_target_name(&self.target)
                    .with_output(&mut output);
                if !input_buffers.is_empty() {
                    builder = builder.with_input(&mut input_buffers);
                }
                let result = negotiate
                    .initialize_security_context_impl(&mut builder)
                    .map_err(sspi_err(scheme))?
                    .resolve_to_result()
                    .map_err(sspi_err(scheme))?;
                self.complete = !matches!(
                    result.status,
                    SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue
                );
                output
                    .into_iter()
                    .next()
                    .map(|b| b.buffer)
                    .unwrap_or_default()
            }
        };
        Ok(format!("{} {}", scheme.as_str(), STANDARD.encode(token)))
    }
}
