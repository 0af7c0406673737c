//! The NTLM of the bind ([MS-RPCE] 3.3.1.5.2), the gateway's side: the context that answers the client's
//! NEGOTIATE and AUTHENTICATE, then checks and makes the verifiers of the association's PDUs.

use sspi::{
    BufferType, CredentialUse, DataRepresentation, Ntlm, SecurityBuffer, SecurityStatus,
    ServerRequestFlags, Sspi as _, SspiImpl as _,
};

use super::super::Shared;
use super::MAX_FRAG;
use crate::gateway::rpc::ntlm;
use crate::gateway::rpc::pdu::{self, Auth, BindResult, Body, NDR_SYNTAX, Pdu, SyntaxId, pfc};

/// The NTLM context of the bind ([MS-RPCE] 3.3.1.5.2), server side.
pub(super) struct Security {
    pub(super) ntlm: Box<Ntlm>,
    handle: Option<sspi::AuthIdentityBuffers>,
    /// Whether the AUTHENTICATE was taken: the verifiers can be checked and made.
    pub(super) complete: bool,
}

impl Security {
    pub(super) fn new(shared: &Shared) -> Result<Security, String> {
        let id = super::super::auth::identity(&shared.config.identity)?;
        let mut ntlm = Box::new(Ntlm::new());
        let handle = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&id)
            .execute(&mut *ntlm)
            .map_err(|e| e.to_string())?
            .credentials_handle;
        Ok(Security {
            ntlm,
            handle,
            complete: false,
        })
    }

    /// One NTLM message in; the answer's token out.
    pub(super) fn accept(&mut self, token: &[u8]) -> Result<Vec<u8>, String> {
        let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = self
            .ntlm
            .accept_security_context()
            .with_credentials_handle(&mut self.handle)
            .with_context_requirements(
                ServerRequestFlags::ALLOCATE_MEMORY | ServerRequestFlags::INTEGRITY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let status = self
            .ntlm
            .accept_security_context_impl(builder)
            .and_then(|mut g| g.resolve_to_result())
            .map_err(|e| format!("NTLM refused: {e}"))?
            .status;
        if matches!(
            status,
            SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
        ) {
            self.ntlm
                .complete_auth_token(&mut output)
                .map_err(|e| e.to_string())?;
        }
        if !matches!(
            status,
            SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue
        ) {
            self.complete = true;
        }
        Ok(output
            .into_iter()
            .next()
            .map(|b| b.buffer)
            .unwrap_or_default())
    }

    /// Checks the verifier of a PDU (its last 16 bytes) over the bytes before it ([MS-RPCE] 3.3.1.5.2.2).
    pub(super) fn verify(&mut self, bytes: &[u8], seq: u32) -> Result<(), String> {
        ntlm::verify_pdu(&mut self.ntlm, bytes, seq)
            .ok_or_else(|| "a request shorter than its verifier".to_owned())?
            .map_err(|e| format!("a request whose verifier does not check: {e}"))
    }

    /// Writes the verifier of an encoded PDU (its last 16 bytes, zeros until now).
    pub(super) fn sign(&mut self, bytes: &mut [u8], seq: u32) -> Result<(), String> {
        ntlm::sign_pdu(&mut self.ntlm, bytes, seq)
            .ok_or_else(|| "a PDU shorter than its verifier".to_owned())?
            .map_err(|e| e.to_string())
    }
}

/// [C706] 12.6.4.4 the bind_ack: NDR accepted, bind time feature negotiation acknowledged ([MS-RPCE]
/// 3.3.1.5.3), anything else refused, the NTLM CHALLENGE in its auth value.
pub(super) fn bind_ack(
    call_id: u32,
    flags: u8,
    contexts: &[pdu::Context],
    auth: &Auth,
    token: Vec<u8>,
) -> Pdu {
    let none = SyntaxId {
        uuid: [0; 16],
        version: 0,
    };
    let results = contexts
        .iter()
        .map(|c| {
            let (result, reason, transfer) = if c.transfer.contains(&NDR_SYNTAX) {
                (0, 0, NDR_SYNTAX)
            } else if c.transfer.contains(&pdu::BTFN_SYNTAX) {
                (3, 0, none)
            } else {
                // Provider rejection: proposed transfer syntaxes not supported.
                (2, 2, none)
            };
            BindResult {
                result,
                reason,
                transfer,
            }
        })
        .collect();
    Pdu {
        flags: pfc::WHOLE | (flags & pfc::SUPPORT_HEADER_SIGN),
        call_id,
        body: Body::BindAck {
            max_xmit: MAX_FRAG,
            max_recv: MAX_FRAG,
            assoc_group: 0x0001_2345,
            sec_addr: b"3388\0".to_vec(),
            results,
        },
        auth: Some(Auth {
            auth_type: auth.auth_type,
            level: auth.level,
            context_id: auth.context_id,
            value: token,
        }),
    }
}
