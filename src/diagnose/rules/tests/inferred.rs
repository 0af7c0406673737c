//! The rules of [`super::super::inferred`], one test each, in the order of the table: traces of a replay
//! without secrets, with the PDUs the inference named and the readings it kept.

use super::{Build, explained};
use crate::infer::record::Span;
use crate::infer::{Basis as InferBasis, Inference, Outcome, Reading, ServerEnd, Step};
use crate::pdu::PduInfo;
use crate::trace::{CloseKind, PhaseName, Side, Trace};
use crate::verdict::Cause;

/// A record of `len` bytes of plaintext that the inference named `step`.
fn record(step: Step, record: u32, len: u32) -> PduInfo {
    PduInfo::Inferred {
        step,
        record,
        plaintext: Span::exact(len),
        split: false,
    }
}

/// What the inference concluded from `records` TLS records with exact plaintext lengths.
fn concluded(trace: &mut Trace, records: u32, outcome: Outcome) {
    trace.inference = Some(Inference {
        basis: InferBasis {
            records,
            exact: true,
            misfits: u32::from(matches!(outcome, Outcome::Unexplained { .. })),
            renegotiations: 0,
            standard_security: false,
        },
        outcome,
    });
}

/// The readings the inference kept: where each ends and how the server ended.
fn readings(trace: &mut Trace, ends: &[(PhaseName, ServerEnd)]) {
    concluded(
        trace,
        12,
        Outcome::Explained {
            readings: ends
                .iter()
                .map(|(phase, server_end)| Reading {
                    phase: *phase,
                    server_end: *server_end,
                    client_ultimatum: false,
                    steps: Vec::new(),
                    more: 0,
                })
                .collect(),
        },
    );
}

#[test]
fn inferred_credssp_error() {
    let mut trace = Build::new()
        .enter(PhaseName::Credssp)
        .client("TSRequest", record(Step::NtlmAuthenticate, 3, 540))
        .server("TSRequest", record(Step::TsRequestError, 4, 16))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    readings(&mut trace, &[(PhaseName::Credssp, ServerEnd::CredsspError)]);
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_credssp_error");
    assert_eq!(e.cause, Cause::CredsspError);
    assert!(e.detail.contains("inside the encryption"), "{}", e.detail);
}

#[test]
fn inferred_early_auth_denied() {
    let mut trace = Build::new()
        .enter(PhaseName::EarlyUserAuth)
        .server(
            "Early User Authorization Result",
            record(Step::EarlyUserAuth, 6, 4),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    readings(&mut trace, &[(PhaseName::EarlyUserAuth, ServerEnd::None)]);
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_early_auth_denied");
    assert_eq!(e.cause, Cause::EarlyAuthDenied);
}

#[test]
fn inferred_server_error_info() {
    let mut trace = Build::new()
        .enter(PhaseName::Licensing)
        .server("Set Error Info PDU", record(Step::SetErrorInfo, 14, 36))
        .server(
            "Disconnect Provider Ultimatum",
            record(Step::Ultimatum, 15, 9),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    readings(
        &mut trace,
        &[(
            PhaseName::Licensing,
            ServerEnd::SetErrorInfo { ultimatum: true },
        )],
    );
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_server_error_info");
    assert_eq!(e.cause, Cause::ServerErrorInfo);
    assert!(e.either.is_empty(), "{:?}", e.either);
}

#[test]
fn inferred_report_unsure() {
    let mut trace = Build::new()
        .enter(PhaseName::Licensing)
        .server("Set Error Info PDU", record(Step::SetErrorInfo, 14, 36))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    readings(
        &mut trace,
        &[
            (
                PhaseName::Licensing,
                ServerEnd::SetErrorInfo { ultimatum: false },
            ),
            (PhaseName::Licensing, ServerEnd::None),
        ],
    );
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_report_unsure");
    assert_eq!(e.cause, Cause::ClosedByServer);
    assert_eq!(e.either.len(), 2, "{:?}", e.either);
    assert!(
        e.detail.contains("either the server reported"),
        "{}",
        e.detail
    );
}

#[test]
fn inferred_license_then_close() {
    let mut trace = Build::new()
        .enter(PhaseName::Licensing)
        .server(
            "Licensing Error Message",
            record(Step::LicenseFinal, 13, 34),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    readings(
        &mut trace,
        &[
            (PhaseName::Licensing, ServerEnd::None),
            (PhaseName::Capabilities, ServerEnd::None),
        ],
    );
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_license_then_close");
    assert_eq!(e.phase, Some(PhaseName::Licensing));
    assert_eq!(e.either.len(), 2, "{:?}", e.either);
}

#[test]
fn inferred_ultimatum() {
    let mut trace = Build::new()
        .enter(PhaseName::Capabilities)
        .server(
            "Disconnect Provider Ultimatum",
            record(Step::Ultimatum, 15, 9),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    readings(
        &mut trace,
        &[(PhaseName::Capabilities, ServerEnd::Ultimatum)],
    );
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_ultimatum");
    assert_eq!(e.cause, Cause::DisconnectedByServer);
}

#[test]
fn inferred_unexplained() {
    let mut trace = Build::new()
        .enter(PhaseName::Credssp)
        .closed(Side::Server, CloseKind::Rst)
        .failed();
    concluded(
        &mut trace,
        1,
        Outcome::Unexplained {
            record: 1,
            from: Side::Client,
            plaintext: Span::exact(3),
            at_ms: 4.0,
        },
    );
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "inferred_unexplained");
    assert_eq!(e.cause, Cause::ResetByServer);
    assert!(e.detail.contains("is not known"), "{}", e.detail);
}
