//! The rules of [`super::super::reports`], one test each (or more), in the order of the table.

use super::{Build, explained};
use crate::codes::dpu_reason::RN_USER_REQUESTED;
use crate::codes::early_user_auth::AUTHZ_ACCESS_DENIED;
use crate::codes::error_info::ERRINFO_SERVER_DENIED_CONNECTION;
use crate::codes::licensing::{ERR_INVALID_CLIENT, ST_TOTAL_ABORT, STATUS_VALID_CLIENT};
use crate::codes::ntstatus::STATUS_LOGON_FAILURE;
use crate::pdu::{LicenseMessage, PduInfo};
use crate::trace::{CloseKind, EventKind, PhaseName, Side};
use crate::verdict::Cause;

fn ultimatum(reason: u8) -> PduInfo {
    PduInfo::DisconnectProviderUltimatum { reason }
}

fn license_error(code: u32, transition: u32) -> PduInfo {
    PduInfo::License {
        message: LicenseMessage::ErrorAlert { code, transition },
    }
}

#[test]
fn credssp_error() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Server, None, false, Some(STATUS_LOGON_FAILURE))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "credssp_error");
    assert_eq!(e.cause, Cause::CredsspError);
    assert!(e.detail.contains("STATUS_LOGON_FAILURE"), "{}", e.detail);
    assert!(
        e.hints[0].starts_with("check the user name"),
        "{:?}",
        e.hints
    );
}

#[test]
fn early_auth_denied() {
    let trace = Build::new()
        .enter(PhaseName::EarlyUserAuth)
        .server(
            "Early User Authorization Result",
            PduInfo::EarlyUserAuthResult {
                result: AUTHZ_ACCESS_DENIED,
            },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "early_auth_denied");
    assert!(e.detail.contains("AUTHZ_ACCESS_DENIED"), "{}", e.detail);
}

#[test]
fn server_error_info_then_ultimatum_then_close() {
    let trace = Build::new()
        .enter(PhaseName::Licensing)
        .server(
            "Set Error Info",
            PduInfo::SetErrorInfo {
                code: ERRINFO_SERVER_DENIED_CONNECTION,
            },
        )
        .server("MCS Disconnect Provider Ultimatum", ultimatum(1))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "server_error_info");
    assert_eq!(e.cause, Cause::ServerErrorInfo);
    assert_eq!(e.evidence.len(), 3, "{:?}", e.evidence);
    assert!(e.evidence[1].ends_with("Disconnect Provider Ultimatum rn-provider-initiated"));
    // The verdict does not repeat the Set Error Info line that every verdict gets.
    let v = crate::diagnose::diagnose(&trace);
    assert_eq!(v.evidence, e.evidence);
}

#[test]
fn license_error_that_aborts() {
    let trace = Build::new()
        .enter(PhaseName::Licensing)
        .server(
            "Licensing Error Message",
            license_error(ERR_INVALID_CLIENT, ST_TOTAL_ABORT),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "license_error");
    assert!(
        e.detail.ends_with(", and aborted licensing"),
        "{}",
        e.detail
    );
    // STATUS_VALID_CLIENT is licensing that succeeded: the close explains this one.
    let valid = Build::new()
        .enter(PhaseName::Licensing)
        .server(
            "Licensing Error Message",
            license_error(STATUS_VALID_CLIENT, ST_TOTAL_ABORT),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    assert_eq!(explained(&valid).0, "closed_by_server");
}

#[test]
fn redirected() {
    let trace = Build::new()
        .enter(PhaseName::Licensing)
        .server(
            "Server Redirection",
            PduInfo::ServerRedirection {
                session_id: 3,
                target: Some("127.0.0.4".to_owned()),
                flags: 0,
                load_balance_info: None,
                fqdn: None,
                user: None,
                password_cookie: false,
            },
        )
        .event(EventKind::Redirected {
            detail: "somewhere else".to_owned(),
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "redirected");
    // The PDU, not the event, says where to.
    assert!(
        e.detail
            .starts_with("the server redirected the client to session 3 on 127.0.0.4;"),
        "{}",
        e.detail
    );
}

#[test]
fn deactivated_for_good_fails_the_active_phase() {
    let trace = Build::new()
        .enter(PhaseName::Active)
        .server("Font Map", PduInfo::FontMap)
        .server("Deactivate All", PduInfo::DeactivateAll)
        .closed(Side::Server, CloseKind::Fin)
        .finished();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "deactivated");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::Deactivated, Some(PhaseName::Active))
    );
    assert!(
        e.detail
            .ends_with("; then the server closed the connection (FIN)"),
        "{}",
        e.detail
    );
    // Reactivated by a Demand Active: the session goes on.
    let reactivated = Build::new()
        .enter(PhaseName::Active)
        .server("Deactivate All", PduInfo::DeactivateAll)
        .server(
            "Demand Active",
            PduInfo::DemandActive {
                share_id: 1,
                capability_sets: Vec::new(),
            },
        )
        .finished();
    assert_eq!(explained(&reactivated).0, "connected");
}

#[test]
fn ultimatum_without_error_info() {
    let trace = Build::new()
        .enter(PhaseName::McsConnect)
        .server(
            "MCS Disconnect Provider Ultimatum",
            ultimatum(RN_USER_REQUESTED),
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "ultimatum");
    assert_eq!(e.cause, Cause::DisconnectedByServer);
    assert!(
        e.detail
            .contains("(Disconnect Provider Ultimatum, rn-user-requested)"),
        "{}",
        e.detail
    );
    assert!(
        e.hints[0].contains("as ERRINFO_LOGOFF_BY_USER"),
        "{:?}",
        e.hints
    );
}

#[test]
fn an_ultimatum_once_tls_is_up_is_not_a_cleartext_one() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .event(EventKind::TlsEstablished {
            version: "TLS 1.3".to_owned(),
            cipher_suite: "TLS13_AES_128_GCM_SHA256".to_owned(),
        })
        .server("MCS Disconnect Provider Ultimatum", ultimatum(1))
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "ultimatum");
    assert!(
        e.hints[0].contains("as ERRINFO_RPC_INITIATED_DISCONNECT"),
        "{:?}",
        e.hints
    );
}
