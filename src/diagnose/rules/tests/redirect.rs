//! The rules of [`super::super::redirect`], one test each (or more), in the order of the table.

use super::{Build, explained};
use crate::codes::error_info::ERRINFO_CB_DESTINATION_NOT_FOUND;
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::{CloseKind, ConnectError, EventKind, PhaseName, Side, Trace};
use crate::verdict::Cause;

const TOKEN: &str = "Cookie: msts=33554559.15629.0000";

/// A connection to `server` that a Server Redirection PDU sent on to `to`.
fn redirected_by(server: &str, to: &str) -> Trace {
    Build::after(Vec::new(), server)
        .enter(PhaseName::Licensing)
        .server("Server Redirection", redirection(to))
        .event(EventKind::Redirected {
            detail: format!("to {to}"),
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed()
}

fn redirection(to: &str) -> PduInfo {
    PduInfo::ServerRedirection {
        session_id: 7,
        target: Some(to.to_owned()),
        flags: 0,
        load_balance_info: Some(TOKEN.to_owned()),
        fqdn: None,
        user: None,
        password_cookie: false,
    }
}

/// The X.224 Connection Request, with a routing token or not, and its confirm.
fn connection_request(routing_token: Option<&str>) -> Build {
    Build::after(Vec::new(), "127.0.0.1:3389")
        .enter(PhaseName::X224)
        .client(
            "X.224 Connection Request",
            PduInfo::X224ConnectionRequest {
                cookie: routing_token.is_none().then(|| "rdptrace".to_owned()),
                routing_token: routing_token.map(str::to_owned),
                requested_protocols: None,
                flags: 0,
            },
        )
        .server(
            "X.224 Connection Confirm",
            PduInfo::X224ConnectionConfirm {
                negotiation: Negotiation::None,
            },
        )
}

#[test]
fn redirect_target_unreachable() {
    let trace = Build::after(
        vec![redirected_by("127.0.0.1:3389", "127.0.0.3")],
        "127.0.0.3:3389",
    )
    .event(EventKind::ConnectFailed {
        addr: "127.0.0.3:3389".to_owned(),
        error: ConnectError::Refused,
    })
    .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "redirect_target_unreachable");
    assert_eq!((e.cause, e.phase), (Cause::Refused, Some(PhaseName::Tcp)));
    assert!(
        e.detail
            .starts_with("127.0.0.1:3389 redirected the client to 127.0.0.3"),
        "{}",
        e.detail
    );
    assert!(
        e.evidence.iter().any(|l| l.contains(TOKEN)),
        "{:?}",
        e.evidence
    );
}

#[test]
fn broker_without_load_balance_info() {
    let without = connection_request(None)
        .enter(PhaseName::Licensing)
        .server(
            "Set Error Info",
            PduInfo::SetErrorInfo {
                code: ERRINFO_CB_DESTINATION_NOT_FOUND,
            },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&without);
    assert_eq!(rule, "broker_without_load_balance_info");
    assert_eq!(
        (e.cause, e.phase),
        (Cause::ServerErrorInfo, Some(PhaseName::Licensing))
    );
    assert!(e.hints[0].contains("--load-balance-info"), "{:?}", e.hints);

    // With a routing token the broker's code is its own business: the errorInfo rule explains it.
    let with = connection_request(Some("tsv://MS Terminal Services Plugin.1.Desktops"))
        .enter(PhaseName::Licensing)
        .server(
            "Set Error Info",
            PduInfo::SetErrorInfo {
                code: ERRINFO_CB_DESTINATION_NOT_FOUND,
            },
        )
        .closed(Side::Server, CloseKind::Fin)
        .failed();
    assert_eq!(explained(&with).0, "server_error_info");
}

#[test]
fn redirect_loop() {
    let hops = vec![
        redirected_by("127.0.0.1:3389", "127.0.0.2"),
        redirected_by("127.0.0.2:3389", "127.0.0.1"),
    ];
    let trace = Build::after(hops, "127.0.0.1:3389")
        .enter(PhaseName::Licensing)
        .server("Server Redirection", redirection("127.0.0.2"))
        .event(EventKind::Redirected {
            detail: "to 127.0.0.2".to_owned(),
        })
        .closed(Side::Client, CloseKind::Fin)
        .failed();
    let (rule, e) = explained(&trace);
    assert_eq!(rule, "redirect_loop");
    assert_eq!(e.cause, Cause::RedirectLoop);
    assert!(
        e.detail.starts_with("the redirections loop"),
        "{}",
        e.detail
    );
    assert!(
        e.detail
            .contains("127.0.0.1:3389 -> 127.0.0.2:3389 -> 127.0.0.1:3389"),
        "{}",
        e.detail
    );

    // One redirection followed is no loop.
    let once = Build::after(
        vec![redirected_by("127.0.0.1:3389", "127.0.0.2")],
        "127.0.0.2:3389",
    )
    .enter(PhaseName::Licensing)
    .server("Server Redirection", redirection("127.0.0.4"))
    .closed(Side::Client, CloseKind::Fin)
    .failed();
    assert_eq!(explained(&once).0, "redirected");
}
