//! NLA as a domain user does it: [MS-CSSP] with Kerberos in SPNEGO ([MS-SPNG]), the Kerberos itself sspi's
//! (AS, TGS, AP-REQ, AP-REP, the GSS wrap of pubKeyAuth and authInfo), the KDC reached by [`super::kdc`],
//! every step in the trace (the KDC and how it was found, each message with its time, each KRB-ERROR,
//! the fallback to NTLM).
//!
//! `--auth negotiate` (the default, as mstsc): Kerberos when the user has a realm and a KDC is found; NTLM
//! when Kerberos cannot be used or fails before the first token goes to the server on the errors Windows'
//! and sspi's Negotiate fall back on (no KDC answers, clock skew, unknown service principal, an untrusted
//! KDC proxy). NTLM then runs as mstsc runs it when Kerberos is not possible: plain NTLM messages in
//! CredSSP. Without a realm, or for a target given as an IP address, the probe uses NTLM at once and says
//! why. `--auth kerberos`: no fallback. `--auth ntlm`: NTLM only.
//!
//! The CredSSP client is rdptrace's own rather than sspi's, which insists on a SPNEGO mechListMIC exchange
//! that an acceptor (FreeRDP's) does not make when the initiator's first mechanism is accepted, as
//! [RFC 4178] 5 allows; the token after the AP-REP is then pubKeyAuth, as Windows and FreeRDP send it.

use ironrdp_connector::ClientConnector;
use ironrdp_connector::sspi::credssp::{EarlyUserAuthResult, TsRequest};
use ironrdp_connector::sspi::{
    self, AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials,
    CredentialsBuffers, DataRepresentation, EncryptionFlags, Kerberos, SecurityBuffer,
    SecurityBufferRef, SecurityStatus, Sspi as _, SspiImpl as _, Username,
};
use ironrdp_pdu::nego::SecurityProtocol;
use sha2::{Digest as _, Sha256};
use tracing::info;
use url::Url;

use super::transport::FrameKind;
use super::{Auth, Run, Stop};
use crate::kerberos::{message, spnego, tscred};
use crate::pdu::KrbMessage;
use crate::trace::{EventKind, Fact, KdcDirection, PhaseName};

/// [MS-CSSP] 2.2.1 the version the probe speaks, as current Windows clients do.
const TS_REQUEST_VERSION: u32 = 6;
/// [MS-CSSP] 3.1.5 the magic strings of the public key hashes (version 5 and later).
const CLIENT_SERVER_MAGIC: &[u8] = b"CredSSP Client-To-Server Binding Hash\0";
const SERVER_CLIENT_MAGIC: &[u8] = b"CredSSP Server-To-Client Binding Hash\0";

/// How the probe authenticates in CredSSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// NTLM alone, as rdptrace always did (no realm, an IP address, `--auth ntlm`).
    Ntlm,
    /// Kerberos for `spn` in `realm`; `fallback`: NTLM may take over.
    Kerberos {
        realm: String,
        spn: String,
        fallback: bool,
    },
}

/// The realm of a user: the suffix of `user@REALM`, else the domain, upper case ([MS-KILE] 3.3.5.6.1;
/// sspi makes the same choice).
pub fn realm_of(user: &str, domain: Option<&str>) -> Option<String> {
    if let Some((_, suffix)) = user.rsplit_once('@')
        && !suffix.is_empty()
    {
        return Some(suffix.to_uppercase());
    }
    domain
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().to_uppercase())
}

/// The errors on which Negotiate falls back to NTLM (sspi's list: no authority reached, a clock skew, an
/// unknown principal, an untrusted certificate).
pub(crate) fn falls_back(e: &sspi::Error) -> bool {
    matches!(
        e.error_type,
        sspi::ErrorKind::NoAuthenticatingAuthority
            | sspi::ErrorKind::TimeSkew
            | sspi::ErrorKind::UnknownCredentials
            | sspi::ErrorKind::CertificateUnknown
    )
}

impl Run<'_> {
    /// What the configuration asks for, and what the target allows; the warnings go into the trace.
    pub(super) fn plan(&mut self) -> Plan {
        let Some(creds) = &self.cfg.credentials else {
            return Plan::Ntlm;
        };
        if self.cfg.auth == Auth::Ntlm {
            return Plan::Ntlm;
        }
        let Some(realm) = realm_of(&creds.user, creds.domain.as_deref()) else {
            // No realm, no Kerberos: a local account, as Windows' Negotiate sees it.
            return Plan::Ntlm;
        };
        let host = self.cfg.host.clone();
        let spn = format!("TERMSRV/{host}");
        let at = self.at();
        let trace = self.d.trace_mut();
        trace.enter(PhaseName::Credssp, at);
        trace.fact(Fact::AuthRequested, self.cfg.auth.as_str());
        trace.fact(Fact::Realm, realm.clone());
        if host.parse::<std::net::IpAddr>().is_ok() {
            if self.cfg.auth == Auth::Negotiate {
                trace.record_event(
                    at,
                    EventKind::KerberosNotUsed {
                        reason: format!(
                            "the target {host} is an IP address: there is no TERMSRV/<name> service principal to ask the KDC for, so Negotiate uses NTLM (connect by the server's DNS name for Kerberos)"
                        ),
                    },
                );
                return Plan::Ntlm;
            }
            trace.record_event(
                at,
                EventKind::KerberosNotUsed {
                    reason: format!(
                        "the target {host} is an IP address: Kerberos works only if {spn} is registered for it (Windows clients ask for such a name only with TryIPSPN); trying it (--auth kerberos)"
                    ),
                },
            );
        }
        trace.fact(Fact::Spn, format!("{spn}@{realm}"));
        Plan::Kerberos {
            realm,
            spn,
            fallback: self.cfg.auth == Auth::Negotiate,
        }
    }

    /// [MS-CSSP] NLA with Kerberos; `None` when Negotiate goes on with NTLM (no KDC found, or Kerberos
    /// failed before anything went to the server).
    pub(super) async fn credssp_kerberos(
        &mut self,
        connector: &mut ClientConnector,
        selected: SecurityProtocol,
        public_key: &[u8],
        realm: &str,
        spn: &str,
        fallback: bool,
    ) -> Option<Result<(), Stop>> {
        let Some(kdc) = self.locate_kdc(realm).await else {
            if fallback {
                self.fall_back(format!("no KDC was found for {realm}"));
                return None;
            }
            return Some(Err(Stop));
        };
        self.d.trace_mut().fact(Fact::Kdc, kdc.to_string());
        let (mut krb, mut handle) = match self.kerberos_client(kdc) {
            Ok(k) => k,
            Err(e) => {
                self.client_limit(format!("sspi cannot start Kerberos: {e}"));
                return Some(Err(Stop));
            }
        };
        // AS, TGS and the AP-REQ: everything before the first TSRequest.
        let first = match self.step(&mut krb, &mut handle, spn, Vec::new()).await {
            Ok((_, token)) => token,
            Err(e) if fallback && falls_back(&e) => {
                let reason = self
                    .last_kerberos_failure()
                    .unwrap_or_else(|| format!("Kerberos failed: {e}"));
                self.fall_back(reason);
                return None;
            }
            Err(e) => {
                self.kerberos_stopped(&e).await;
                return Some(Err(Stop));
            }
        };
        Some(
            self.exchange(
                connector,
                selected,
                public_key,
                &mut krb,
                &mut handle,
                spn,
                first,
            )
            .await,
        )
    }

    /// sspi's Kerberos client for this KDC, with the user's credentials.
    fn kerberos_client(&self, kdc: Url) -> sspi::Result<(Kerberos, Option<CredentialsBuffers>)> {
        let creds =
            self.cfg.credentials.as_ref().ok_or_else(|| {
                sspi::Error::new(sspi::ErrorKind::NoCredentials, "no credentials")
            })?;
        let identity = Credentials::AuthIdentity(AuthIdentity {
            username: Username::new(&creds.user, creds.domain.as_deref())?,
            password: creds.password.expose().to_owned().into(),
        });
        let mut krb = Kerberos::new_client_from_config(sspi::KerberosConfig {
            kdc_url: Some(kdc),
            client_computer_name: self.cfg.client_name.clone(),
        })?;
        let acquired = krb
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut krb)?;
        Ok((krb, acquired.credentials_handle))
    }

    /// One InitializeSecurityContext of sspi's Kerberos, answering its requests to the KDC.
    async fn step(
        &mut self,
        krb: &mut Kerberos,
        handle: &mut Option<CredentialsBuffers>,
        spn: &str,
        input: Vec<u8>,
    ) -> sspi::Result<(SecurityStatus, Vec<u8>)> {
        let mut input = [SecurityBuffer::new(input, BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let status = {
            let mut builder = krb
                .initialize_security_context()
                .with_credentials_handle(handle)
                .with_context_requirements(
                    ClientRequestFlags::MUTUAL_AUTH
                        | ClientRequestFlags::INTEGRITY
                        | ClientRequestFlags::CONFIDENTIALITY,
                )
                .with_target_data_representation(DataRepresentation::Native)
                .with_target_name(spn)
                .with_input(&mut input)
                .with_output(&mut output);
            let generator = krb.initialize_security_context_impl(&mut builder)?;
            self.kdc_client().drive(generator).await?.status
        };
        let token = output.pop().map(|b| b.buffer).unwrap_or_default();
        Ok((status, token))
    }

    /// The TSRequests: the AP-REQ in SPNEGO, the AP-REP, pubKeyAuth both ways, authInfo; then the Early
    /// User Authorization Result under PROTOCOL_HYBRID_EX.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        connector: &mut ClientConnector,
        selected: SecurityProtocol,
        public_key: &[u8],
        krb: &mut Kerberos,
        handle: &mut Option<CredentialsBuffers>,
        spn: &str,
        first: Vec<u8>,
    ) -> Result<(), Stop> {
        let request = TsRequest {
            version: TS_REQUEST_VERSION,
            nego_tokens: Some(spnego::init_token(&first)),
            ..TsRequest::default()
        };
        self.send_ts_request(&request).await?;
        let answer = self.recv_ts_request().await?;
        let version = answer.version;
        let Some(token) = answer.nego_tokens.as_deref() else {
            self.client_limit("the server answered the AP-REQ without a token".to_owned());
            return Err(Stop);
        };
        let reply = match spnego::negotiation(token) {
            Some(n) => n.inner.map(<[u8]>::to_vec).unwrap_or_default(),
            None if spnego::krb_token(token).is_some() => token.to_vec(),
            None => {
                // Neither SPNEGO nor Kerberos: the dissector recorded it, diagnosis names it.
                self.drain_after_error().await;
                return Err(Stop);
            }
        };
        match self.step(krb, handle, spn, reply).await {
            Ok((SecurityStatus::Ok, _)) => {}
            Ok((status, _)) => {
                self.client_limit(format!(
                    "the Kerberos exchange did not complete after the server's answer ({status:?})"
                ));
                return Err(Stop);
            }
            Err(e) => {
                self.kerberos_stopped(&e).await;
                return Err(Stop);
            }
        }
        // [MS-CSSP] 3.1.5 step 3: the public key of the server's certificate, bound to this client.
        let nonce: [u8; 32] = rand::random();
        let hashed = |magic: &[u8]| -> Vec<u8> {
            let mut h = Sha256::new();
            h.update(magic);
            h.update(nonce);
            h.update(public_key);
            h.finalize().to_vec()
        };
        let binding = if version >= 5 {
            hashed(CLIENT_SERVER_MAGIC)
        } else {
            public_key.to_vec()
        };
        let pub_key_auth = match wrap(krb, &binding) {
            Ok(v) => v,
            Err(e) => {
                self.kerberos_stopped(&e).await;
                return Err(Stop);
            }
        };
        let request = TsRequest {
            version: TS_REQUEST_VERSION,
            pub_key_auth: Some(pub_key_auth),
            client_nonce: (version >= 5).then_some(nonce),
            ..TsRequest::default()
        };
        self.send_ts_request(&request).await?;
        let answer = self.recv_ts_request().await?;
        let expected = if version >= 5 {
            hashed(SERVER_CLIENT_MAGIC)
        } else {
            // [MS-CSSP] 3.1.5 step 4, before version 5: the key with its first byte plus one.
            let mut k = public_key.to_vec();
            if let Some(b) = k.first_mut() {
                *b = b.wrapping_add(1);
            }
            k
        };
        let proven = answer
            .pub_key_auth
            .as_deref()
            .map(|p| unwrap(krb, p).is_ok_and(|plain| plain == expected));
        if proven != Some(true) {
            self.client_limit(
                "the server's pubKeyAuth does not prove the key of the TLS certificate (a TLS interceptor between the client and the server, or a server that does not hold the certificate's key)".to_owned(),
            );
            return Err(Stop);
        }
        // [MS-CSSP] 3.1.5 step 5: the credentials.
        let Some(creds) = self.cfg.credentials.clone() else {
            return Err(Stop);
        };
        let ts_credentials = tscred::write_password(
            creds.domain.as_deref().unwrap_or_default(),
            &creds.user,
            creds.password.expose(),
        );
        let auth_info = match wrap(krb, &ts_credentials) {
            Ok(v) => v,
            Err(e) => {
                self.kerberos_stopped(&e).await;
                return Err(Stop);
            }
        };
        drop(ts_credentials);
        let request = TsRequest {
            version: TS_REQUEST_VERSION,
            auth_info: Some(auth_info),
            ..TsRequest::default()
        };
        self.send_ts_request(&request).await?;
        if selected.contains(SecurityProtocol::HYBRID_EX) {
            let (frame, _) = self
                .recv(FrameKind::Fixed(4), "Early User Authorization Result")
                .await?;
            if let Ok(EarlyUserAuthResult::AccessDenied) =
                EarlyUserAuthResult::from_buffer(frame.as_slice())
            {
                self.drain_after_error().await;
                return Err(Stop);
            }
        }
        connector.mark_credssp_as_done();
        Ok(())
    }

    async fn send_ts_request(&mut self, request: &TsRequest) -> Result<(), Stop> {
        let mut bytes = Vec::new();
        if let Err(e) = request.encode_ts_request(&mut bytes) {
            self.client_limit(format!("cannot encode a TSRequest: {e}"));
            return Err(Stop);
        }
        self.send(&bytes).await
    }

    /// The server's next TSRequest; one with an errorCode (recorded by the dissector) ends the exchange.
    async fn recv_ts_request(&mut self) -> Result<TsRequest, Stop> {
        let (frame, _) = self
            .recv(FrameKind::Der, "TSRequest from the server")
            .await?;
        match TsRequest::from_buffer(&frame) {
            Ok(r) if r.error_code.is_some() => {
                self.drain_after_error().await;
                Err(Stop)
            }
            Ok(r) => Ok(r),
            // The dissector recorded what did not decode.
            Err(_) => {
                self.drain_after_error().await;
                Err(Stop)
            }
        }
    }

    /// Negotiate goes on with NTLM: never silently.
    fn fall_back(&mut self, reason: String) {
        info!(%reason, "negotiate falls back to ntlm");
        let at = self.at();
        let trace = self.d.trace_mut();
        trace.record_event(
            at,
            EventKind::AuthFallback {
                reason: reason.clone(),
            },
        );
        trace.fact(Fact::AuthFallback, reason);
    }

    /// The last thing that went wrong with the KDC, in words.
    fn last_kerberos_failure(&self) -> Option<String> {
        last_kdc_failure(self.d.trace().phase(PhaseName::Credssp))
    }

    /// Kerberos stopped: a KDC's error or the server's is in the trace already; otherwise say what sspi
    /// refused.
    async fn kerberos_stopped(&mut self, e: &sspi::Error) {
        info!(error = %e, "kerberos stopped");
        if !self.kerberos_explained() {
            self.client_limit(format!("the client's Kerberos (sspi) gave up: {e}"));
        }
        self.drain_after_error().await;
    }

    /// Whether the trace already says why Kerberos stopped: a KRB-ERROR from the KDC or the server, a KDC
    /// that failed or was not found.
    fn kerberos_explained(&self) -> bool {
        let phase = self.d.trace().phase(PhaseName::Credssp);
        let from_kdc = phase.events.iter().any(|e| match &e.kind {
            EventKind::Kdc {
                message: KrbMessage::Error(err),
                ..
            } => err.code != crate::codes::kerberos::KDC_ERR_PREAUTH_REQUIRED,
            EventKind::KdcFailed { .. } | EventKind::KdcNotFound { .. } => true,
            _ => false,
        });
        let from_server = phase.pdus.iter().any(|p| {
            matches!(
                &p.info,
                crate::pdu::PduInfo::TsRequest {
                    token: Some(crate::pdu::AuthToken::Kerberos {
                        krb: Some(KrbMessage::Error(_)),
                        ..
                    }),
                    ..
                }
            )
        });
        from_kdc || from_server
    }

    fn client_limit(&mut self, detail: String) {
        let at = self.at();
        self.d
            .trace_mut()
            .record_event(at, EventKind::ClientLimit { detail });
    }
}

/// [RFC 4121] 4.2.6.2 a GSS wrap token of `data` (confidentiality), as CredSSP sends pubKeyAuth and
/// authInfo.
fn wrap(krb: &mut Kerberos, data: &[u8]) -> sspi::Result<Vec<u8>> {
    let mut token = [0u8; 1024];
    let mut data = data.to_vec();
    let mut buffers = [
        SecurityBufferRef::token_buf(token.as_mut_slice()),
        SecurityBufferRef::data_buf(data.as_mut_slice()),
    ];
    krb.encrypt_message(EncryptionFlags::empty(), &mut buffers)?;
    let mut out = SecurityBufferRef::find_buffer(&buffers, BufferType::Token)?
        .data()
        .to_vec();
    out.extend_from_slice(SecurityBufferRef::find_buffer(&buffers, BufferType::Data)?.data());
    Ok(out)
}

/// The data of a GSS wrap token from the server.
fn unwrap(krb: &mut Kerberos, token: &[u8]) -> sspi::Result<Vec<u8>> {
    let mut input = token.to_vec();
    let split = input.len().min(16);
    let (signature, data) = input.split_at_mut(split);
    let mut buffers = [
        SecurityBufferRef::data_buf(data),
        SecurityBufferRef::token_buf(signature),
    ];
    krb.decrypt_message(&mut buffers)?;
    Ok(SecurityBufferRef::buf_data(&buffers, BufferType::Data)?.to_vec())
}

/// The last thing that went wrong with the KDC in `phase` (a KRB-ERROR other than the request for
/// pre-authentication, or a KDC that failed), in words.
pub(crate) fn last_kdc_failure(phase: &crate::trace::Phase) -> Option<String> {
    phase.events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Kdc {
            direction: KdcDirection::FromKdc,
            message: KrbMessage::Error(err),
            ..
        } if err.code != crate::codes::kerberos::KDC_ERR_PREAUTH_REQUIRED => Some(format!(
            "the KDC answered {} for {}",
            message::error_name(err.code),
            err.server
        )),
        EventKind::KdcFailed { kdc, error } => Some(format!("the KDC {kdc}: {error}")),
        _ => None,
    })
}
