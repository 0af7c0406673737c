//! The rules of [`super::super::kerberos`], one test each, in the order of the table.

use super::{Build, explained, ntlm_authenticate};
use crate::codes::kerberos::{
    KDC_ERR_PREAUTH_FAILED, KDC_ERR_PREAUTH_REQUIRED, KDC_ERR_S_PRINCIPAL_UNKNOWN,
    KRB_AP_ERR_MODIFIED, KRB_AP_ERR_SKEW,
};
use crate::codes::ntstatus::STATUS_LOGON_FAILURE;
use crate::pdu::{AuthToken, KrbErrorInfo, KrbMessage, PduInfo, SpnegoInfo, TicketInfo};
use crate::trace::{CloseKind, EventKind, KdcDirection, KdcError, PhaseName, Side};
use crate::verdict::Cause;

fn krb_error(code: u32, server: &str) -> KrbErrorInfo {
    KrbErrorInfo::about(code, server)
}

fn from_kdc(error: KrbErrorInfo) -> EventKind {
    EventKind::Kdc {
        kdc: "tcp://dc01.corp.example:88".to_owned(),
        addr: None,
        direction: KdcDirection::FromKdc,
        message: KrbMessage::Error(error),
    }
}

fn ticket() -> TicketInfo {
    TicketInfo {
        server: "TERMSRV/rdp01.corp.example@CORP.EXAMPLE".to_owned(),
        etype: 18,
        kvno: Some(3),
    }
}

fn ap_req() -> AuthToken {
    AuthToken::Kerberos {
        message: "AP-REQ".to_owned(),
        spnego: None,
        krb: Some(KrbMessage::ApReq {
            ticket: ticket(),
            mutual_required: true,
        }),
    }
}

const SPN: &str = "TERMSRV/rdp01.corp.example@CORP.EXAMPLE";

#[test]
fn connected_after_fallback() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .event(from_kdc(krb_error(KDC_ERR_S_PRINCIPAL_UNKNOWN, SPN)))
        .event(EventKind::AuthFallback {
            reason: "the KDC answered 7 KDC_ERR_S_PRINCIPAL_UNKNOWN".to_owned(),
        })
        .ts_request(Side::Client, Some(AuthToken::NtlmNegotiate), false, None)
        .enter(PhaseName::Active)
        .server("Font Map", PduInfo::FontMap)
        .finished();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "connected_after_fallback");
    assert_eq!(e.cause, Cause::Connected);
    assert!(
        e.detail.contains("with NTLM after Kerberos failed"),
        "{}",
        e.detail
    );
    assert!(
        e.hints.iter().any(|h| h.contains("setspn")),
        "{:?}",
        e.hints
    );
}

#[test]
fn kerberos_fallback_refused() {
    // As a capture shows it: the KDC's error, then NTLM in CredSSP, then the server's errorCode.
    let trace = Build::new()
        .event(from_kdc(krb_error(KDC_ERR_S_PRINCIPAL_UNKNOWN, SPN)))
        .enter(PhaseName::Credssp)
        .ts_request(Side::Client, Some(ntlm_authenticate()), false, None)
        .ts_request(Side::Server, None, false, Some(STATUS_LOGON_FAILURE))
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "kerberos_fallback_refused");
    assert_eq!(e.cause, Cause::CredsspError);
    assert!(
        e.detail.starts_with(
            "Kerberos failed (the KDC answered 7 KDC_ERR_S_PRINCIPAL_UNKNOWN for TERMSRV/rdp01"
        ) && e.detail.contains("STATUS_LOGON_FAILURE"),
        "{}",
        e.detail
    );
}

#[test]
fn kerberos_error_from_the_kdc() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .event(from_kdc(krb_error(
            KDC_ERR_PREAUTH_REQUIRED,
            "krbtgt/CORP.EXAMPLE@CORP.EXAMPLE",
        )))
        .event(from_kdc(krb_error(
            KDC_ERR_PREAUTH_FAILED,
            "krbtgt/CORP.EXAMPLE@CORP.EXAMPLE",
        )))
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "kerberos_error");
    assert_eq!(e.cause, Cause::KerberosError);
    assert!(
        e.detail.contains("24 KDC_ERR_PREAUTH_FAILED"),
        "{}",
        e.detail
    );
    assert!(e.hints[0].contains("password"), "{:?}", e.hints);
}

#[test]
fn kerberos_error_from_the_server_with_its_clock() {
    let mut skew = krb_error(KRB_AP_ERR_SKEW, SPN);
    skew.clock_offset_s = Some(-600.0);
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Client, Some(ap_req()), false, None)
        .ts_request(
            Side::Server,
            Some(AuthToken::Kerberos {
                message: "KRB-ERROR".to_owned(),
                spnego: None,
                krb: Some(KrbMessage::Error(skew)),
            }),
            false,
            None,
        )
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "kerberos_error");
    assert!(
        e.detail
            .starts_with("the server refused the client's Kerberos ticket")
            && e.detail.contains("37 KRB_AP_ERR_SKEW")
            && e.detail.contains("600 s behind"),
        "{}",
        e.detail
    );
    let modified = krb_error(KRB_AP_ERR_MODIFIED, SPN);
    assert!(modified.code == KRB_AP_ERR_MODIFIED);
}

#[test]
fn kdc_unreachable() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .event(EventKind::KdcFailed {
            kdc: "tcp://dc01.corp.example:88".to_owned(),
            error: KdcError::TimedOut,
        })
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "kdc_unreachable");
    assert_eq!(e.cause, Cause::KdcUnreachable);
    assert!(e.detail.contains("no answer"), "{}", e.detail);
    let not_found = Build::new()
        .enter(PhaseName::Credssp)
        .event(EventKind::KdcNotFound {
            realm: "CORP.EXAMPLE".to_owned(),
            tried: vec!["--kdc".to_owned()],
        })
        .failed();
    let (rule, e) = explained(&not_found);
    assert_eq!(rule, "kdc_unreachable");
    assert!(
        e.detail.contains("no KDC was found for CORP.EXAMPLE"),
        "{}",
        e.detail
    );
}

#[test]
fn ticket_not_accepted() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Client, Some(ap_req()), false, None)
        .ts_request(
            Side::Server,
            Some(AuthToken::Unknown { len: 12256 }),
            false,
            None,
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "ticket_not_accepted");
    assert_eq!(e.cause, Cause::CredsspRejected);
    assert!(
        e.detail.contains("key version 3") && e.detail.contains("12256-byte token"),
        "{}",
        e.detail
    );
}

#[test]
fn kerberos_rejected() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Client, Some(ap_req()), false, None)
        .ts_request(
            Side::Server,
            Some(AuthToken::Spnego {
                mechanism: None,
                spnego: Some(SpnegoInfo {
                    token: "negTokenResp".to_owned(),
                    mech_types: Vec::new(),
                    neg_state: Some("reject".to_owned()),
                    supported_mech: None,
                }),
            }),
            false,
            None,
        )
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "kerberos_rejected");
    assert!(e.detail.contains("negState reject"), "{}", e.detail);
}
