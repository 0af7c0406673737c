//! What a trace says about Kerberos: the KDC and what it answered, the server's Kerberos tokens in
//! CredSSP, Negotiate's fallback to NTLM.

use crate::codes::kerberos::KDC_ERR_PREAUTH_REQUIRED;
use crate::pdu::{AuthToken, KrbErrorInfo, KrbMessage, PduInfo, SpnegoInfo, TicketInfo};
use crate::trace::{EventKind, KdcDirection, KdcError, KdcSource, Millis, Pdu, Side};

/// Where a KRB-ERROR came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KrbFrom {
    /// A KDC, answering a request of the client.
    Kdc,
    /// The RDP server, in a TSRequest ([RFC 4121] 4.1 a KRB-ERROR token).
    Server,
}

/// A KRB-ERROR that counts: any but KDC_ERR_PREAUTH_REQUIRED, the normal first answer to an AS-REQ.
#[derive(Debug, Clone, Copy)]
pub struct KrbFailure<'t> {
    pub at_ms: Millis,
    pub from: KrbFrom,
    pub error: &'t KrbErrorInfo,
}

/// A KDC that could not be used.
#[derive(Debug, Clone, Copy)]
pub struct KdcFailure<'t> {
    pub at_ms: Millis,
    pub kdc: &'t str,
    pub error: &'t KdcError,
}

/// No KDC found for a realm.
#[derive(Debug, Clone, Copy)]
pub struct KdcNotFound<'t> {
    pub at_ms: Millis,
    pub realm: &'t str,
    pub tried: &'t [String],
}

/// What the trace says about Kerberos.
#[derive(Debug, Clone, Default)]
pub struct Kerberos<'t> {
    /// The last KRB-ERROR that counts.
    pub error: Option<KrbFailure<'t>>,
    /// The last KDC that could not be used.
    pub kdc_failure: Option<KdcFailure<'t>>,
    pub kdc_not_found: Option<KdcNotFound<'t>>,
    /// Negotiate went on with NTLM: when, and why.
    pub fallback: Option<(Millis, &'t str)>,
    /// Why Kerberos was not used for this target (an IP address).
    pub not_used: Option<&'t str>,
    /// The server's SPNEGO answer with negState reject.
    pub spnego_reject: Option<(Millis, &'t SpnegoInfo)>,
    /// When the client sent NTLM in CredSSP (its first NTLM message).
    pub ntlm_at: Option<Millis>,
    /// When the client sent a Kerberos token in CredSSP.
    pub kerberos_at: Option<Millis>,
    /// The service principal a TGS-REQ asked for, when one was seen.
    pub tgs_server: Option<&'t str>,
    /// The client principal of the last AS-REQ, when one was seen.
    pub as_client: Option<&'t str>,
    /// The KDC exchange comes from a capture (the client's traffic on port 88), not from rdptrace itself.
    pub from_capture: bool,
    /// The client's AP-REQ in CredSSP: when, and the ticket it carried.
    pub ap_req: Option<(Millis, &'t TicketInfo)>,
    /// The server's AP-REP came.
    pub ap_rep: bool,
    /// The server's first token after the AP-REQ, when it was neither SPNEGO nor Kerberos: when, and its
    /// length.
    pub odd_answer: Option<(Millis, usize)>,
}

impl<'t> Kerberos<'t> {
    pub(super) fn note_pdu(&mut self, pdu: &'t Pdu) {
        let token = match &pdu.info {
            PduInfo::TsRequest {
                token: Some(token), ..
            } => token,
            // [RFC 4559] Negotiate to an RD Gateway: the AP-REQ, and the gateway's AP-REP or KRB-ERROR.
            PduInfo::HttpRequest {
                kerberos: Some(token),
                ..
            }
            | PduInfo::HttpResponse {
                kerberos: Some(token),
                ..
            } => token,
            _ => return,
        };
        match (pdu.from, token) {
            (
                Side::Client,
                AuthToken::NtlmNegotiate
                | AuthToken::NtlmAuthenticate { .. }
                | AuthToken::NtlmChallenge(_),
            ) => {
                self.ntlm_at.get_or_insert(pdu.at_ms);
            }
            (Side::Client, AuthToken::Kerberos { krb, .. }) => {
                self.kerberos_at.get_or_insert(pdu.at_ms);
                if let Some(KrbMessage::ApReq { ticket, .. }) = krb {
                    self.ap_req = Some((pdu.at_ms, ticket));
                }
            }
            (Side::Server, AuthToken::Unknown { len }) if self.ap_req.is_some() => {
                self.odd_answer.get_or_insert((pdu.at_ms, *len));
            }
            (Side::Server, AuthToken::Kerberos { krb, spnego, .. }) => {
                if let Some(KrbMessage::ApRep { .. }) = krb {
                    self.ap_rep = true;
                }
                if let Some(KrbMessage::Error(error)) = krb {
                    self.keep(KrbFailure {
                        at_ms: pdu.at_ms,
                        from: KrbFrom::Server,
                        error,
                    });
                }
                self.note_reject(pdu.at_ms, spnego.as_ref());
            }
            (Side::Server, AuthToken::Spnego { spnego, .. }) => {
                self.note_reject(pdu.at_ms, spnego.as_ref());
            }
            _ => {}
        }
    }

    fn note_reject(&mut self, at_ms: Millis, spnego: Option<&'t SpnegoInfo>) {
        if let Some(info) = spnego.filter(|i| i.neg_state.as_deref() == Some("reject")) {
            self.spnego_reject = Some((at_ms, info));
        }
    }

    pub(super) fn note_event(&mut self, at_ms: Millis, kind: &'t EventKind) {
        match kind {
            EventKind::Kdc {
                direction: KdcDirection::FromKdc,
                message: KrbMessage::Error(error),
                ..
            } if error.code != KDC_ERR_PREAUTH_REQUIRED => self.keep(KrbFailure {
                at_ms,
                from: KrbFrom::Kdc,
                error,
            }),
            EventKind::Kdc {
                direction: KdcDirection::ToKdc,
                message: KrbMessage::TgsReq(req),
                ..
            } => {
                if let Some(server) = &req.server {
                    self.tgs_server = Some(server);
                }
            }
            EventKind::Kdc {
                direction: KdcDirection::ToKdc,
                message: KrbMessage::AsReq(req),
                ..
            } => {
                if let Some(client) = &req.client {
                    self.as_client = Some(client);
                }
            }
            EventKind::KdcChosen {
                source: KdcSource::Capture,
                ..
            } => self.from_capture = true,
            EventKind::KdcFailed { kdc, error } => {
                self.kdc_failure = Some(KdcFailure { at_ms, kdc, error });
            }
            EventKind::KdcNotFound { realm, tried } => {
                self.kdc_not_found = Some(KdcNotFound {
                    at_ms,
                    realm,
                    tried,
                });
            }
            EventKind::AuthFallback { reason } => self.fallback = Some((at_ms, reason)),
            EventKind::KerberosNotUsed { reason } => self.not_used = Some(reason),
            _ => {}
        }
    }

    /// Keeps the later of two failures (by time).
    fn keep(&mut self, failure: KrbFailure<'t>) {
        if self
            .error
            .is_none_or(|e| failure.at_ms.total_cmp(&e.at_ms).is_ge())
        {
            self.error = Some(failure);
        }
    }

    /// Kerberos failed and the client then used NTLM: Negotiate's fallback, as the probe records it or as a
    /// capture shows it (a KDC's error or an unreachable KDC, then NTLM in CredSSP).
    pub fn fell_back(&self) -> bool {
        if self.fallback.is_some() {
            return true;
        }
        let Some(ntlm) = self.ntlm_at else {
            return false;
        };
        let failed_at = self
            .error
            .filter(|e| e.from == KrbFrom::Kdc)
            .map(|e| e.at_ms)
            .or(self.kdc_failure.map(|k| k.at_ms));
        failed_at.is_some_and(|at| at <= ntlm)
    }

    /// What Kerberos failed on, in words, for a verdict.
    pub fn failure_words(&self) -> Option<String> {
        if let Some(e) = self.error {
            let who = match e.from {
                KrbFrom::Kdc => "the KDC",
                KrbFrom::Server => "the server",
            };
            return Some(format!(
                "{who} answered {} for {}",
                crate::kerberos::message::error_name(e.error.code),
                e.error.server
            ));
        }
        if let Some(k) = self.kdc_failure {
            return Some(format!("the KDC {} could not be used: {}", k.kdc, k.error));
        }
        if let Some(n) = self.kdc_not_found {
            return Some(format!("no KDC was found for {}", n.realm));
        }
        self.fallback.map(|(_, reason)| reason.to_owned())
    }
}
