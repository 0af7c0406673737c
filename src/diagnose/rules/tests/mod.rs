//! The rules' unit tests: a minimal trace for each rule, which that rule explains and no rule before it in
//! the table takes. Traces are built the way a producer fills them ([`Build`]).

mod captured_kerberos;
mod endings;
mod gateway;
mod handshake;
mod inferred;
mod kerberos;
mod redirect;
mod reports;

use super::{Basis, RULES};
use crate::diagnose::Explained;
use crate::diagnose::findings::Findings;
use crate::diagnose::rules;
use crate::pdu::{AuthToken, Negotiation, PduInfo};
use crate::trace::{CloseKind, EventKind, Origin, Pdu, PhaseName, Side, Trace};

/// Builds a trace the way a producer fills one: phases entered in order, PDUs and events recorded in
/// the current phase, each a millisecond after the last unless [`Build::wait`] says otherwise.
pub struct Build {
    trace: Trace,
    at_ms: f64,
}

impl Build {
    /// A trace in the tcp phase.
    pub fn new() -> Self {
        let mut trace = Trace::new("192.0.2.1:3389", Origin::Probe);
        trace.enter(PhaseName::Tcp, 0.0);
        Build { trace, at_ms: 0.0 }
    }

    /// A trace of a connection through the RD Gateway at `url`, in its first phase.
    pub fn through(url: &str) -> Self {
        let mut trace = Trace::new("127.0.0.1:3389", Origin::Probe);
        trace.request.gateway = Some(url.to_owned());
        trace.enter(PhaseName::GatewayConnect, 0.0);
        Build { trace, at_ms: 0.0 }
    }

    /// A trace of the connection that follows `hops` (the earlier connections, each redirected), to `target`.
    pub fn after(hops: Vec<Trace>, target: &str) -> Self {
        let mut trace = Trace::new(target, Origin::Probe);
        trace.hops = hops;
        trace.enter(PhaseName::Tcp, 0.0);
        Build { trace, at_ms: 0.0 }
    }

    /// With the client's requestedProtocols.
    pub fn requesting(mut self, protocols: u32) -> Self {
        self.trace.request.requested_protocols = Some(protocols);
        self
    }

    fn tick(&mut self) -> f64 {
        self.at_ms += 1.0;
        self.at_ms
    }

    /// Lets `ms` milliseconds pass.
    pub fn wait(mut self, ms: f64) -> Self {
        self.at_ms += ms;
        self
    }

    /// Moves into `phase`.
    pub fn enter(mut self, phase: PhaseName) -> Self {
        let at = self.tick();
        self.trace.enter(phase, at);
        self
    }

    pub fn pdu(mut self, from: Side, name: &str, info: PduInfo) -> Self {
        let at_ms = self.tick();
        self.trace.record_pdu(Pdu {
            at_ms,
            from,
            len: 19,
            name: name.to_owned(),
            summary: String::new(),
            info,
        });
        self
    }

    pub fn server(self, name: &str, info: PduInfo) -> Self {
        self.pdu(Side::Server, name, info)
    }

    pub fn client(self, name: &str, info: PduInfo) -> Self {
        self.pdu(Side::Client, name, info)
    }

    pub fn event(mut self, kind: EventKind) -> Self {
        let at = self.tick();
        self.trace.record_event(at, kind);
        self
    }

    pub fn closed(self, by: Side, how: CloseKind) -> Self {
        self.event(EventKind::Closed { by, how })
    }

    /// The client's X.224 Connection Request, then the server's Connection Confirm with `negotiation`.
    pub fn x224(self, negotiation: Negotiation) -> Self {
        self.enter(PhaseName::X224)
            .client(
                "X.224 Connection Request",
                PduInfo::X224ConnectionRequest {
                    cookie: None,
                    routing_token: None,
                    requested_protocols: None,
                    flags: 0,
                },
            )
            .server(
                "X.224 Connection Confirm",
                PduInfo::X224ConnectionConfirm { negotiation },
            )
    }

    /// A TSRequest.
    pub fn ts_request(
        self,
        from: Side,
        token: Option<AuthToken>,
        auth_info: bool,
        error_code: Option<u32>,
    ) -> Self {
        self.pdu(
            from,
            "TSRequest",
            PduInfo::TsRequest {
                version: 6,
                token,
                auth_info,
                pub_key_auth: false,
                client_nonce: false,
                error_code,
            },
        )
    }

    /// The trace of a connection that failed in its current phase.
    pub fn failed(mut self) -> Trace {
        self.trace.finish(true);
        self.trace
    }

    /// The trace of a connection that ended as it should.
    pub fn finished(mut self) -> Trace {
        self.trace.finish(false);
        self.trace
    }

    /// The trace as it is, not settled.
    pub fn open(self) -> Trace {
        self.trace
    }
}

/// The rule that explains `trace` (the first in the table that speaks), and what it says.
pub fn explained(trace: &Trace) -> (&'static str, Explained) {
    let f = Findings::gather(trace);
    match rules::first(&f) {
        Some((rule, e)) => (rule.name, e),
        None => ("unrecorded", rules::explain(&f)),
    }
}

/// The AUTHENTICATE message of NTLM.
pub fn ntlm_authenticate() -> AuthToken {
    AuthToken::NtlmAuthenticate {
        user: Some("user".to_owned()),
        domain: None,
        workstation: None,
    }
}

#[test]
fn names_are_unique_and_specified_rules_cite_their_section() {
    for (i, rule) in RULES.iter().enumerate() {
        assert!(
            RULES[..i].iter().all(|r| r.name != rule.name),
            "{} twice",
            rule.name
        );
        if rule.basis == Basis::Specified {
            assert!(rule.spec.starts_with('['), "{}: {:?}", rule.name, rule.spec);
        }
    }
}
