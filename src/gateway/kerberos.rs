//! Negotiate with Kerberos to an RD Gateway ([RFC 4559] 4, [MS-TSGU] 3.3.5.1): an AP-REQ for
//! `HTTP/<gateway host>` in a SPNEGO negTokenInit, in the `Authorization: Negotiate` header of the request the
//! gateway answered with 401. The ticket comes from the KDC through the probe's KDC client
//! ([`crate::probe::kdc::KdcClient`]), so that every message to and from the KDC is evidence in
//! `gateway_auth`.
//!
//! As for NLA ([`crate::probe::kerberos`]): `--auth negotiate` uses Kerberos when the gateway user has a realm
//! and the gateway is named (not an IP address), and goes on with NTLM, recorded, when no KDC is found or
//! the KDC's answer is one Negotiate falls back on; `--auth kerberos` never falls back; `--auth ntlm` never
//! asks the KDC.

use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials, CredentialsBuffers,
    DataRepresentation, Kerberos, SecurityBuffer, SecurityStatus, Sspi as _, SspiImpl as _,
    Username,
};
use tracing::info;
use url::Url;

use super::auth::GatewayCredentials;
use crate::pdu::KrbMessage;
use crate::probe::Clock;
use crate::probe::kdc::KdcClient;
use crate::trace::{EventKind, Fact, PhaseName, Trace};

/// [RFC 4559] 4.1 the service of a web server's principal.
pub const SERVICE: &str = "HTTP";

/// How the client may use Kerberos with a gateway (`--auth`, `--kdc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosChoice {
    /// Kerberos only, no fallback to NTLM (`--auth kerberos`).
    pub only: bool,
    /// `--kdc`; otherwise krb5.conf, then DNS SRV records.
    pub kdc: Option<Url>,
}

/// Kerberos for one gateway: the realm and the service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub realm: String,
    /// `HTTP/<gateway host>`.
    pub spn: String,
    /// Whether NTLM may take over (`--auth negotiate`).
    pub fallback: bool,
    pub kdc: Option<Url>,
}

/// sspi's context, its credentials and the AP-REQ (its GSS-API token).
pub struct Ready {
    pub krb: Kerberos,
    pub handle: Option<CredentialsBuffers>,
    pub token: Vec<u8>,
}

/// What the Kerberos attempt came to.
pub enum Outcome {
    /// The first token is ready.
    Ready(Box<Ready>),
    /// Negotiate goes on with NTLM; the fallback is recorded.
    FallBack,
    /// Kerberos failed and there is no fallback; what happened is recorded.
    Stopped,
}

impl Plan {
    /// The plan for `credentials` at `host` under `choice`; records why Kerberos is not used where the
    /// user would expect it (an IP address under Negotiate), and what `--auth kerberos` cannot do.
    pub fn new(
        trace: &mut Trace,
        at: f64,
        choice: &KerberosChoice,
        credentials: &GatewayCredentials,
        host: &str,
    ) -> Option<Plan> {
        let (user, domain) = credentials.user_and_domain();
        let realm = crate::probe::kerberos::realm_of(&user, domain.as_deref())?;
        let spn = format!("{SERVICE}/{host}");
        if host.parse::<std::net::IpAddr>().is_ok() && !choice.only {
            trace.record_event(
                at,
                EventKind::KerberosNotUsed {
                    reason: format!(
                        "the RD Gateway {host} is an IP address: there is no {SERVICE}/<name> service principal to ask the KDC for, so Negotiate uses NTLM (name the gateway by its DNS name for Kerberos)"
                    ),
                },
            );
            return None;
        }
        Some(Plan {
            realm,
            spn,
            fallback: !choice.only,
            kdc: choice.kdc.clone(),
        })
    }
}

/// The GSS-API Kerberos token (AP-REQ) for the plan's service, asking the KDC as sspi needs; records
/// everything in the current phase of `trace`.
pub(crate) async fn first_token(
    trace: &mut Trace,
    clock: Clock,
    salt: &mut Option<String>,
    plan: &Plan,
    credentials: &GatewayCredentials,
    workstation: &str,
) -> Outcome {
    trace.fact(Fact::Realm, plan.realm.clone());
    trace.fact(Fact::Spn, format!("{}@{}", plan.spn, plan.realm));
    let mut kdc_client = KdcClient {
        trace,
        clock,
        kdc: plan.kdc.clone(),
        password: Some(credentials.password.clone()),
        salt,
    };
    let Some(kdc) = kdc_client.locate(&plan.realm).await else {
        return give_up(
            kdc_client.trace,
            clock,
            plan,
            format!("no KDC was found for {}", plan.realm),
            None,
        );
    };
    kdc_client.trace.fact(Fact::Kdc, kdc.to_string());
    let (mut krb, mut handle) = match client(credentials, kdc, workstation) {
        Ok(k) => k,
        Err(e) => {
            limit(
                kdc_client.trace,
                clock,
                format!("sspi cannot start Kerberos: {e}"),
            );
            return Outcome::Stopped;
        }
    };
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let mut input = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let result = {
        let mut builder = krb
            .initialize_security_context()
            .with_credentials_handle(&mut handle)
            .with_context_requirements(
                ClientRequestFlags::MUTUAL_AUTH | ClientRequestFlags::CONFIDENTIALITY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&plan.spn)
            .with_input(&mut input)
            .with_output(&mut output);
        match krb.initialize_security_context_impl(&mut builder) {
            Err(e) => Err(e),
            Ok(generator) => kdc_client.drive(generator).await.map(|r| r.status),
        }
    };
    let trace = kdc_client.trace;
    match result {
        Ok(SecurityStatus::ContinueNeeded | SecurityStatus::Ok) => {
            let token = output.pop().map(|b| b.buffer).unwrap_or_default();
            info!(spn = %plan.spn, "kerberos token for the gateway");
            Outcome::Ready(Box::new(Ready { krb, handle, token }))
        }
        Ok(status) => {
            limit(
                trace,
                clock,
                format!("sspi's Kerberos did not produce an AP-REQ ({status:?})"),
            );
            Outcome::Stopped
        }
        Err(e) => {
            let reason = last_failure(trace).unwrap_or_else(|| format!("Kerberos failed: {e}"));
            give_up(
                trace,
                clock,
                plan,
                reason,
                Some(crate::probe::kerberos::falls_back(&e)),
            )
        }
    }
}

/// Kerberos cannot go on: Negotiate falls back (recorded, never silent) when the failure is one it falls
/// back on (`fallback_allowed`: `None` for no KDC at all, which always is), else the probe stops.
fn give_up(
    trace: &mut Trace,
    clock: Clock,
    plan: &Plan,
    reason: String,
    fallback_allowed: Option<bool>,
) -> Outcome {
    if plan.fallback && fallback_allowed.unwrap_or(true) {
        let reason = format!("for the RD Gateway: {reason}");
        info!(%reason, "negotiate falls back to ntlm");
        trace.record_event(
            clock.at(),
            EventKind::AuthFallback {
                reason: reason.clone(),
            },
        );
        trace.fact(Fact::AuthFallback, reason);
        return Outcome::FallBack;
    }
    if !explained(trace) {
        limit(
            trace,
            clock,
            format!("the client's Kerberos (sspi) gave up: {reason}"),
        );
    }
    Outcome::Stopped
}

fn limit(trace: &mut Trace, clock: Clock, detail: String) {
    trace.record_event(clock.at(), EventKind::ClientLimit { detail });
}

/// sspi's Kerberos client for `kdc` with the gateway credentials.
fn client(
    credentials: &GatewayCredentials,
    kdc: Url,
    workstation: &str,
) -> sspi::Result<(Kerberos, Option<CredentialsBuffers>)> {
    let (user, domain) = credentials.user_and_domain();
    let identity = Credentials::AuthIdentity(AuthIdentity {
        username: Username::new(&user, domain.as_deref())?,
        password: credentials.password.expose().to_owned().into(),
    });
    let mut krb = Kerberos::new_client_from_config(sspi::KerberosConfig {
        kdc_url: Some(kdc),
        client_computer_name: workstation.to_owned(),
    })?;
    let acquired = krb
        .acquire_credentials_handle()
        .with_credential_use(CredentialUse::Outbound)
        .with_auth_data(&identity)
        .execute(&mut krb)?;
    Ok((krb, acquired.credentials_handle))
}

/// The last thing the KDC refused in `gateway_auth`, in words.
fn last_failure(trace: &Trace) -> Option<String> {
    crate::probe::kerberos::last_kdc_failure(trace.phase(PhaseName::GatewayAuth))
}

/// Whether `gateway_auth` already says why Kerberos stopped (a KDC's KRB-ERROR, a KDC that failed or was
/// not found).
fn explained(trace: &Trace) -> bool {
    trace
        .phase(PhaseName::GatewayAuth)
        .events
        .iter()
        .any(|e| match &e.kind {
            EventKind::Kdc {
                message: KrbMessage::Error(err),
                ..
            } => err.code != crate::codes::kerberos::KDC_ERR_PREAUTH_REQUIRED,
            EventKind::KdcFailed { .. } | EventKind::KdcNotFound { .. } => true,
            _ => false,
        })
}

/// The gateway's final Negotiate token ([RFC 4559] 5, mutual authentication): the AP-REP inside SPNEGO,
/// checked by sspi's context. `Err` says what did not verify.
pub fn mutual(
    krb: &mut Kerberos,
    handle: &mut Option<CredentialsBuffers>,
    spn: &str,
    token: &[u8],
) -> Result<(), String> {
    let inner = match crate::kerberos::spnego::negotiation(token) {
        Some(n) => match n.inner {
            Some(i) => i.to_vec(),
            // An accept-completed without a responseToken: nothing to check.
            None => return Ok(()),
        },
        None => token.to_vec(),
    };
    let mut input = [SecurityBuffer::new(inner, BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let mut builder = krb
        .initialize_security_context()
        .with_credentials_handle(handle)
        .with_context_requirements(
            ClientRequestFlags::MUTUAL_AUTH | ClientRequestFlags::CONFIDENTIALITY,
        )
        .with_target_data_representation(DataRepresentation::Native)
        .with_target_name(spn)
        .with_input(&mut input)
        .with_output(&mut output);
    krb.initialize_security_context_impl(&mut builder)
        .and_then(|mut g| g.resolve_to_result())
        .map(|_| ())
        .map_err(|e| e.to_string())
}
