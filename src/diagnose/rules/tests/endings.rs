//! The rules of [`super::super::endings`], one test each (or more), in the order of the table.

use super::{Build, explained, ntlm_authenticate};
use crate::pdu::{AuthToken, LicenseMessage, PduInfo};
use crate::trace::{CloseKind, Deadline, EventKind, PhaseName, Side};
use crate::verdict::Cause;

fn protocol_error(from: Side) -> EventKind {
    EventKind::ProtocolError {
        from,
        pdu: "MCS Connect Response".to_owned(),
        offset: Some(7),
        detail: "bad length".to_owned(),
    }
}

fn client_hello() -> PduInfo {
    PduInfo::TlsClientHello {
        version: 0x0303,
        supported_versions: Vec::new(),
        cipher_suites: Vec::new(),
        server_name: None,
    }
}

#[test]
fn protocol_error_from_the_server() {
    let trace = Build::new()
        .enter(PhaseName::McsConnect)
        .event(protocol_error(Side::Server))
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "protocol_error");
    assert_eq!(
        e.detail,
        "the server sent a MCS Connect Response that does not decode: bad length at offset 7"
    );
    assert!(
        e.evidence[0].ends_with("does not decode: bad length (offset 7)"),
        "{:?}",
        e.evidence
    );
    // The client's own bad PDU followed by a close is the close's matter.
    let client = Build::new()
        .enter(PhaseName::McsConnect)
        .event(protocol_error(Side::Client))
        .closed(Side::Server, CloseKind::Rst)
        .failed();
    assert_eq!(explained(&client).0, "closed_by_server");
}

#[test]
fn timed_out_waiting_for_the_server() {
    let trace = Build::new()
        .enter(PhaseName::Licensing)
        .server(
            "Server License Request",
            PduInfo::License {
                message: LicenseMessage::LicenseRequest,
            },
        )
        .event(EventKind::TimedOut {
            deadline: Deadline::Phase { seconds: 1.0 },
            waiting_for: "the next licensing PDU".to_owned(),
        })
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "timed_out");
    assert_eq!(
        e.detail,
        "the server stopped answering in the licensing phase: the next licensing PDU did not come within 1 s (--phase-timeout)"
    );
    assert_eq!(
        e.evidence[1],
        "last PDU from the server: Server License Request (licensing)"
    );
    assert!(e.hints.is_empty());
}

#[test]
fn credssp_rejected_right_after_the_authenticate() {
    let trace = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Client, Some(ntlm_authenticate()), false, None)
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "credssp_rejected");
    assert_eq!(e.cause, Cause::CredsspRejected);
    assert!(e.detail.starts_with("the server closed the connection (FIN) during network level authentication right after the client's NTLM AUTHENTICATE"), "{}", e.detail);
    // Before the client sent anything that authenticates, it is a plain close.
    let early = Build::new()
        .enter(PhaseName::Credssp)
        .ts_request(Side::Client, Some(AuthToken::NtlmNegotiate), false, None)
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    assert_eq!(explained(&early).0, "closed_by_server");
}

#[test]
fn client_gave_up_after_a_silence() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .client("TLS ClientHello", client_hello())
        .wait(3000.0)
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "client_gave_up");
    assert_eq!(e.cause, Cause::TimedOut);
    assert!(
        e.detail
            .contains("after the client's TLS ClientHello, the client waited 3.0 s"),
        "{}",
        e.detail
    );
}

#[test]
fn closed_by_client_without_a_silence() {
    let trace = Build::new()
        .enter(PhaseName::Tls)
        .client("TLS ClientHello", client_hello())
        .server(
            "TLS ServerHello",
            PduInfo::TlsServerHello {
                version: 0x0303,
                cipher_suite: 0x1301,
            },
        )
        .closed(Side::Client, CloseKind::Rst)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "closed_by_client");
    assert_eq!(
        e.detail,
        "the client reset the connection (RST) in the tls phase after the server sent TLS ServerHello, before the server said anything conclusive"
    );
}

#[test]
fn closed_by_server_while_pending() {
    let trace = Build::new()
        .enter(PhaseName::McsConnect)
        .client("MCS Connect Initial", PduInfo::ErectDomainRequest)
        .event(EventKind::IncompleteFrame {
            from: Side::Server,
            bytes: 5,
            first_byte: 0x03,
        })
        .closed(Side::Server, CloseKind::Rst)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "closed_by_server");
    assert_eq!(e.cause, Cause::ResetByServer);
    assert!(e.detail.starts_with("the connection was reset (RST) in the mcs_connect phase after the client sent MCS Connect Initial, with no error report; the server's last 5 bytes start like a TPKT header"), "{}", e.detail);
    assert!(
        e.hints[0].contains("0x904 with extended 0x7"),
        "{:?}",
        e.hints
    );
}

#[test]
fn capture_ended() {
    let trace = Build::new()
        .enter(PhaseName::ChannelJoin)
        .event(EventKind::CaptureEnded)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "capture_ended");
    assert_eq!(
        e.detail,
        "the capture ends in the channel_join phase with the connection still open"
    );
}

#[test]
fn trace_ends_open() {
    let trace = Build::new().enter(PhaseName::Capabilities).open();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "trace_ends_open");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::CaptureEnded, Some(PhaseName::Capabilities))
    );
}

#[test]
fn unrecorded_when_no_rule_speaks() {
    let trace = Build::new().enter(PhaseName::Finalization).failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "unrecorded");
    assert_eq!(
        e.detail,
        "the connection stopped in the finalization phase for a reason rdptrace did not record"
    );
}
