//! [MS-RPCE] 3.3.1.5.2 the client's NTLM for the bind at packet integrity: the NEGOTIATE of the bind, the
//! AUTHENTICATE of rpc_auth_3, then the verifier of each request made and of each answer checked. No I/O.

use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentityBuffers, ClientRequestFlags, CredentialUse, Ntlm, SecurityBufferRef, Sspi as _,
};

use super::pdu::{self, NTLM_VERIFIER_LEN};
use crate::gateway::auth::{AuthError, GatewayCredentials, ntlm_leg};

/// The client's side of the bind's NTLM.
pub struct BindAuth {
    ntlm: Box<Ntlm>,
    handle: Option<AuthIdentityBuffers>,
    target: String,
    /// Whether the AUTHENTICATE was made: verifiers can be made and checked.
    pub complete: bool,
}

impl core::fmt::Debug for BindAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BindAuth")
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

fn sspi_err(e: sspi::Error) -> AuthError {
    AuthError::Sspi {
        scheme: "NTLM (RPC bind)",
        detail: e.to_string(),
    }
}

impl BindAuth {
    /// For `credentials`, from `workstation`, to the gateway `host`.
    pub fn new(
        credentials: &GatewayCredentials,
        workstation: &str,
        host: &str,
    ) -> Result<BindAuth, AuthError> {
        let identity = credentials.identity()?;
        let mut ntlm = Box::new(Ntlm::with_config(NtlmConfig::new(workstation.to_owned())));
        let handle = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut *ntlm)
            .map_err(sspi_err)?
            .credentials_handle;
        Ok(BindAuth {
            ntlm,
            handle,
            target: format!("HOST/{host}"),
            complete: false,
        })
    }

    /// The next NTLM message: NEGOTIATE without `challenge`, AUTHENTICATE with the bind_ack's CHALLENGE.
    pub fn step(&mut self, challenge: Option<&[u8]>) -> Result<Vec<u8>, AuthError> {
        let (token, complete) = ntlm_leg(
            &mut self.ntlm,
            &mut self.handle,
            &self.target,
            ClientRequestFlags::INTEGRITY
                | ClientRequestFlags::CONFIDENTIALITY
                | ClientRequestFlags::ALLOCATE_MEMORY,
            challenge.map(<[u8]>::to_vec),
        )
        .map_err(sspi_err)?;
        self.complete = complete;
        Ok(token)
    }

    /// Writes the verifier of an encoded PDU (its last 16 bytes).
    pub fn sign(&mut self, bytes: &mut [u8], seq: u32) -> Result<(), AuthError> {
        sign_pdu(&mut self.ntlm, bytes, seq).map_or(Ok(()), |r| r.map_err(sspi_err))
    }

    /// Checks the verifier of a PDU from the gateway (its last 16 bytes).
    pub fn verify(&mut self, bytes: &[u8], seq: u32) -> Result<(), AuthError> {
        verify_pdu(&mut self.ntlm, bytes, seq)
            .ok_or_else(|| AuthError::Sspi {
                scheme: "NTLM (RPC bind)",
                detail: "a PDU shorter than its verifier".to_owned(),
            })?
            .map_err(sspi_err)
    }
}

/// [MS-RPCE] 2.2.2.9 Writes the NTLM verifier of an encoded PDU, its last 16 bytes, over the bytes before
/// them (either side of the bind); `None` when the PDU is shorter than a verifier.
pub fn sign_pdu(ntlm: &mut Ntlm, bytes: &mut [u8], seq: u32) -> Option<sspi::Result<()>> {
    let (data, verifier) = pdu::verifier_split(bytes, NTLM_VERIFIER_LEN)?;
    Some(ntlm.make_signature(
        0,
        &mut [
            SecurityBufferRef::token_buf(verifier),
            SecurityBufferRef::data_buf(data),
        ],
        seq,
    ))
}

/// [MS-RPCE] 2.2.2.9 Checks the NTLM verifier of a PDU, its last 16 bytes (either side of the bind);
/// `None` when the PDU is shorter than a verifier.
pub fn verify_pdu(ntlm: &mut Ntlm, bytes: &[u8], seq: u32) -> Option<sspi::Result<()>> {
    let mut copy = bytes.to_vec();
    let (data, signature) = pdu::verifier_split(&mut copy, NTLM_VERIFIER_LEN)?;
    Some(
        ntlm.verify_signature(
            &mut [
                SecurityBufferRef::token_buf(signature),
                SecurityBufferRef::data_buf(data),
            ],
            seq,
        )
        .map(|_| ()),
    )
}
