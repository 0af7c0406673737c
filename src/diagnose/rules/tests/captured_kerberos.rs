//! The rules of [`super::super::captured_kerberos`], one test each, in the order of the table.

use super::{Build, explained, ntlm_authenticate};
use crate::codes::kerberos::{KDC_ERR_PREAUTH_FAILED, KDC_ERR_S_PRINCIPAL_UNKNOWN};
use crate::codes::ntstatus::STATUS_NTLM_BLOCKED;
use crate::infer::record::Span;
use crate::infer::{Basis as InferBasis, Inference, Outcome, Reading, ServerEnd, Step};
use crate::pdu::{KdcRequest, KrbErrorInfo, KrbMessage, PduInfo};
use crate::trace::{CloseKind, EventKind, KdcDirection, KdcError, KdcSource, PhaseName, Side};
use crate::verdict::Cause;

const SPN: &str = "TERMSRV/rdp01.corp.example@CORP.EXAMPLE";
const KDC: &str = "udp://192.0.2.10:88";

/// The client's KDC exchange as the replay links it to a session: the KDC the capture shows, then each
/// message.
fn chosen() -> EventKind {
    EventKind::KdcChosen {
        realm: "CORP.EXAMPLE".to_owned(),
        kdc: KDC.to_owned(),
        source: KdcSource::Capture,
    }
}

fn kdc(direction: KdcDirection, message: KrbMessage) -> EventKind {
    EventKind::Kdc {
        kdc: KDC.to_owned(),
        addr: Some("192.0.2.20:50000".to_owned()),
        direction,
        message,
    }
}

fn krb_error(code: u32, server: &str) -> KrbMessage {
    KrbMessage::Error(KrbErrorInfo::about(code, server))
}

fn request(client: Option<&str>, server: &str) -> KdcRequest {
    KdcRequest {
        client: client.map(str::to_owned),
        server: Some(server.to_owned()),
        etypes: vec![18],
        pa_types: Vec::new(),
    }
}

#[test]
fn captured_kerberos_then_ntlm_refused() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .event(chosen())
        .event(kdc(
            KdcDirection::ToKdc,
            KrbMessage::TgsReq(request(None, SPN)),
        ))
        .event(kdc(
            KdcDirection::FromKdc,
            krb_error(KDC_ERR_S_PRINCIPAL_UNKNOWN, SPN),
        ))
        .ts_request(Side::Client, Some(ntlm_authenticate()), false, None)
        .ts_request(Side::Server, None, false, Some(STATUS_NTLM_BLOCKED))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "captured_kerberos_then_ntlm_refused");
    assert_eq!(e.cause, Cause::CredsspError);
    assert!(
        e.detail.starts_with(
            "the client asked the KDC for a ticket for TERMSRV/rdp01.corp.example@CORP.EXAMPLE and got 7 KDC_ERR_S_PRINCIPAL_UNKNOWN"
        ) && e.detail.contains("then authenticated with NTLM, which the server refused with STATUS_NTLM_BLOCKED"),
        "{}",
        e.detail
    );
}

#[test]
fn captured_kerberos_error() {
    // The CredSSP exchange is encrypted (a replay without secrets): the sizes of its records are all
    // that is read after the KDC's error.
    let tgt = "krbtgt/CORP.EXAMPLE@CORP.EXAMPLE";
    let mut trace = Build::new()
        .enter(PhaseName::Credssp)
        .event(chosen())
        .event(kdc(
            KdcDirection::ToKdc,
            KrbMessage::AsReq(request(Some("alice@CORP.EXAMPLE"), tgt)),
        ))
        .event(kdc(
            KdcDirection::FromKdc,
            krb_error(KDC_ERR_PREAUTH_FAILED, tgt),
        ))
        .server(
            "TSRequest",
            PduInfo::Inferred {
                step: Step::TsRequestError,
                record: 4,
                plaintext: Span::exact(16),
                split: false,
            },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    trace.inference = Some(Inference {
        basis: InferBasis {
            records: 5,
            exact: true,
            misfits: 0,
            renegotiations: 0,
            standard_security: false,
        },
        outcome: Outcome::Explained {
            readings: vec![Reading {
                phase: PhaseName::Credssp,
                server_end: ServerEnd::CredsspError,
                client_ultimatum: false,
                steps: Vec::new(),
                more: 0,
            }],
        },
    });
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "captured_kerberos_error");
    assert_eq!(e.cause, Cause::KerberosError);
    assert!(
        e.detail.starts_with(
            "the client asked the KDC for its ticket-granting ticket as alice@CORP.EXAMPLE and got 24 KDC_ERR_PREAUTH_FAILED"
        ) && e.detail.contains("only an errorCode")
            && e.detail.contains("whether the client then tried NTLM cannot be seen"),
        "{}",
        e.detail
    );
}

/// The replay's word for a KDC the capture shows silent: two requests, 5 s of the session after the last.
fn silent() -> EventKind {
    EventKind::KdcFailed {
        kdc: KDC.to_owned(),
        error: KdcError::Unanswered {
            requests: 2,
            waited_ms: 5_000,
        },
    }
}

/// The client's AS-REQ in the credssp phase, and the replay's word that the KDC never answered it.
fn asked_in_silence() -> Build {
    let tgt = "krbtgt/CORP.EXAMPLE@CORP.EXAMPLE";
    Build::new()
        .enter(PhaseName::Credssp)
        .event(chosen())
        .event(kdc(
            KdcDirection::ToKdc,
            KrbMessage::AsReq(request(Some("alice@CORP.EXAMPLE"), tgt)),
        ))
        .event(silent())
}

#[test]
fn captured_kdc_silent_then_ntlm_refused() {
    let trace = asked_in_silence()
        .ts_request(Side::Client, Some(ntlm_authenticate()), false, None)
        .ts_request(Side::Server, None, false, Some(STATUS_NTLM_BLOCKED))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "captured_kdc_silent_then_ntlm_refused");
    assert_eq!(e.cause, Cause::CredsspError);
    assert!(
        e.detail.starts_with(
            "the client's 2 requests to the KDC at udp://192.0.2.10:88 got no answer in the capture (none in the 5.0 s after the last), then it authenticated with NTLM, which the server refused with STATUS_NTLM_BLOCKED"
        ),
        "{}",
        e.detail
    );
}

#[test]
fn captured_kdc_silent() {
    // The client closes after the KDC's silence, and the CredSSP exchange is in clear (a replay with the
    // secrets): no token of the client in it.
    let trace = asked_in_silence()
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "captured_kdc_silent");
    assert_eq!(e.cause, Cause::KdcUnreachable);
    assert!(
        e.detail.starts_with(
            "the client's 2 requests to the KDC at udp://192.0.2.10:88 got no answer in the capture (none in the 5.0 s after the last): without an answer the client gets no ticket from that KDC; the client sent no NTLM or Kerberos token in CredSSP"
        ),
        "{}",
        e.detail
    );
    // The probe's own failure to reach a KDC is not the capture's silence.
    let probe = Build::new()
        .enter(PhaseName::Credssp)
        .event(EventKind::KdcFailed {
            kdc: KDC.to_owned(),
            error: KdcError::TimedOut,
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    assert_eq!(explained(&probe).0, "kdc_unreachable");
}
