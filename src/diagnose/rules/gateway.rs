//! Rules on the RD Gateway ([MS-TSGU]): the gateway out of reach or refused at TLS, an HTTP error status, an
//! HRESULT that refuses the tunnel or the channel, and a tunnel that ends while the RDP connection runs in it.
//!
//! The hints name what the gateway logs in its event log (Microsoft-Windows-TerminalServices-Gateway), as
//! Microsoft documents those events; no mstsc pair is given for gateway failures, since none is documented
//! or reported.

use crate::codes::gateway::{
    E_PROXY_CAPABILITYMISMATCH, E_PROXY_INTERNALERROR, E_PROXY_MAXCONNECTIONSREACHED,
    E_PROXY_NAP_ACCESSDENIED, E_PROXY_RAP_ACCESSDENIED, E_PROXY_SESSIONTIMEOUT,
    E_PROXY_TS_CONNECTFAILED, E_PROXY_UNSUPPORTED_AUTHENTICATION_METHOD,
};
use crate::codes::kerberos::{KRB_AP_ERR_MODIFIED, rdp_hint};
use crate::codes::{self, Table};
use crate::diagnose::Explained;
use crate::diagnose::findings::{Findings, KrbFrom};
use crate::gateway::packet::name_of;
use crate::gateway::rpc::ndr::opnum as rpc_op;
use crate::kerberos::message::error_name;
use crate::trace::{CloseKind, ConnectError, PhaseName, Side, TunnelEnd};
use crate::verdict::Cause;

/// The gateway's address, for text.
fn gateway<'f>(f: &'f Findings) -> Option<&'f str> {
    f.gateway.as_ref().map(|g| g.address)
}

/// The RD Gateway does not resolve, refuses the TCP connection, or does not answer it.
pub fn gateway_unreachable(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::GatewayConnect)?;
    let gw = gateway(f)?;
    if let Some(r) = f.resolve_failure {
        return Some(
            Explained::failed(
                Cause::ResolveFailed,
                phase,
                format!(
                    "the RD Gateway's name {} did not resolve ({})",
                    r.host, r.error
                ),
            )
            .evidence([format!("{:.1} ms: {} did not resolve: {}", r.at_ms, r.host, r.error)])
            .hint(["the gateway name comes from --gateway or the .rdp file's gatewayhostname: check it, and the DNS the client uses".to_owned()]),
        );
    }
    let c = f.connect_failure?;
    let (cause, words) = match c.error {
        ConnectError::Refused => (
            Cause::Refused,
            format!(
                "the RD Gateway {gw} refused the TCP connection to {}: nothing listens there (the gateway service, or its port), or a firewall rejects it",
                c.addr
            ),
        ),
        ConnectError::TimedOut => (
            Cause::TimedOut,
            format!(
                "the RD Gateway {gw} did not answer the TCP SYN to {}: a firewall drops it, or the gateway is down",
                c.addr
            ),
        ),
        ConnectError::Unreachable(why) | ConnectError::Other(why) => (
            Cause::Unreachable,
            format!("the RD Gateway {gw} is unreachable at {}: {why}", c.addr),
        ),
    };
    Some(
        Explained::failed(cause, phase, words.clone())
            .evidence([format!("{:.1} ms: connect to {}: {words}", c.at_ms, c.addr)])
            .hint(["the client reaches the gateway over HTTPS (TCP 443 unless the address names a port); a client that cannot reach it never gets to the target".to_owned()]),
    )
}

/// The TLS handshake with the gateway failed: its certificate refused (`--strict-cert`, or a signature that
/// does not verify), an alert, or what rustls refused.
pub fn gateway_tls(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::GatewayConnect)?;
    let gw = gateway(f)?;
    if let Some(t) = f.tls_failure {
        let (cause, hint) = if t.certificate_failure() {
            (
                Cause::CertificateRejected,
                "mstsc refuses an RD Gateway whose certificate it does not trust or whose name is not the gateway's: install a certificate for the gateway's name from a CA the clients trust (RD Gateway Manager, SSL Certificate)",
            )
        } else {
            (
                Cause::TlsFailed,
                "the gateway's HTTPS is broken or not HTTPS at all: check the gateway's certificate binding and TLS settings",
            )
        };
        return Some(
            Explained::failed(
                cause,
                phase,
                format!(
                    "the TLS handshake with the RD Gateway {gw} failed: {}",
                    t.error
                ),
            )
            .evidence([format!(
                "{:.1} ms: TLS to the gateway: {}",
                t.at_ms, t.error
            )])
            .hint([hint.to_owned()]),
        );
    }
    let alert = f.server_alert?;
    let name = alert
        .description
        .map(|d| codes::name(Table::TlsAlert, u32::from(d)))
        .unwrap_or_else(|| "an encrypted alert".to_owned());
    Some(
        Explained::failed(
            Cause::TlsAlert,
            phase,
            format!("the RD Gateway {gw} ended the TLS handshake with {name}"),
        )
        .evidence([format!("{:.1} ms: gateway TLS alert {name}", alert.at_ms)]),
    )
}

/// The gateway answered with an HTTP error status during authentication or the transport's setup.
pub fn gateway_http_error(f: &Findings) -> Option<Explained> {
    let phase = f
        .failed
        .filter(|p| matches!(p, PhaseName::GatewayAuth | PhaseName::GatewayConnect))?;
    // The client's own limit (a scheme it does not speak, or will not use) says more than the status.
    if f.client_limit.is_some() {
        return None;
    }
    let g = f.gateway.as_ref()?;
    // Kerberos stopped in the client before any credentials went (a KDC's error, no KDC): the Kerberos
    // rules say so.
    let k = &f.kerberos;
    if !g.credentials_sent
        && (k.error.is_some() || k.kdc_failure.is_some() || k.kdc_not_found.is_some())
    {
        return None;
    }
    let r = g.last_response.filter(|r| r.status >= 400)?;
    let gw = g.address;
    let offered = g.offered.unwrap_or("no scheme");
    let (detail, hint) = match r.status {
        401 if !g.credentials_sent => (
            format!("the RD Gateway {gw} asks for authentication ({offered}) and the client sent no credentials"),
            "give the gateway credentials: --gateway-user (the password from RDPTRACE_GATEWAY_PASSWORD or --gateway-password-file), or --user, which the gateway gets too".to_owned(),
        ),
        401 => refused_words(f, gw, offered),
        403 => (
            format!("the RD Gateway {gw} forbids the request (403 Forbidden)"),
            "a reverse proxy or web application firewall in front of the gateway may refuse RDG_OUT_DATA and RDG_IN_DATA, which are not standard HTTP methods".to_owned(),
        ),
        404 => (
            format!("there is no RD Gateway at {gw}/remoteDesktopGateway/ (404 Not Found)"),
            "the address answers HTTPS but is not an RD Gateway (or a proxy in front of it does not pass /remoteDesktopGateway/): check --gateway or gatewayhostname".to_owned(),
        ),
        407 => (
            format!("a proxy between the client and the RD Gateway {gw} requires authentication (407)"),
            "the client's HTTP proxy wants credentials; mstsc uses the system's proxy settings".to_owned(),
        ),
        500..=599 => (
            format!("the RD Gateway {gw} failed ({})", r.summary),
            "the gateway (or a load balancer in front of it) is up but failing: look at its event log (Microsoft-Windows-TerminalServices-Gateway/Operational)".to_owned(),
        ),
        _ => (
            format!("the RD Gateway {gw} answered {}", r.summary),
            "check what stands at the gateway's address".to_owned(),
        ),
    };
    Some(
        Explained::failed(Cause::GatewayHttpError, phase, detail)
            .evidence([format!(
                "{:.1} ms: gateway HTTP response {}",
                r.at_ms, r.summary
            )])
            .hint([hint]),
    )
}

/// A 401 after the client authenticated: the gateway's KRB-ERROR when it refused the Kerberos ticket,
/// Negotiate's fallback when Kerberos failed before and the gateway then refused NTLM, else the credentials.
fn refused_words(f: &Findings, gw: &str, offered: &str) -> (String, String) {
    if let Some(e) = f.kerberos.error.filter(|e| e.from == KrbFrom::Server) {
        let name = error_name(e.error.code);
        let hint = if e.error.code == KRB_AP_ERR_MODIFIED {
            format!(
                "{name}: the ticket the KDC issued for {} is encrypted with a key the gateway does not hold: the HTTP/<name> principal is registered on another account (setspn -Q HTTP/<name>), or the gateway's keytab or computer account password is stale",
                e.error.server
            )
        } else {
            rdp_hint(e.error.code)
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!("{name}: the gateway's Kerberos acceptor refused the AP-REQ")
                })
        };
        return (
            format!(
                "the RD Gateway {gw} refused the client's Kerberos ticket for {} with {name} (401 Unauthorized; it offers {offered})",
                e.error.server
            ),
            hint,
        );
    }
    if f.kerberos.fell_back()
        && let Some(why) = f.kerberos.failure_words()
    {
        return (
            format!(
                "the RD Gateway {gw} refused the client's NTLM (401 Unauthorized; it offers {offered}) after Kerberos failed ({why})"
            ),
            "a gateway that refuses NTLM accepts only Kerberos (a domain that blocks NTLM): make Kerberos work first; --auth kerberos tests it alone".to_owned(),
        );
    }
    if f.kerberos.ap_req.is_none() && offered.eq_ignore_ascii_case("Negotiate") {
        return (
            format!(
                "the RD Gateway {gw} refused the credentials (401 Unauthorized after the client authenticated with NTLM inside Negotiate, the only scheme it offers)"
            ),
            "a gateway that offers Negotiate alone may accept only Kerberos: give a user with a realm (user@REALM) and a KDC (--kdc, krb5.conf or DNS) so that Negotiate uses Kerberos; otherwise check the user name, the password, and that the account may log on to the gateway".to_owned(),
        );
    }
    (
        format!("the RD Gateway {gw} refused the credentials (401 Unauthorized after the client authenticated; it offers {offered})"),
        "the gateway logs the failed logon in its Security log; check the user name (DOMAIN\\user), the password, and that the account may log on to the gateway. mstsc asks for the gateway credentials again".to_owned(),
    )
}

/// What a gateway HRESULT means for the user, and what to look at: ([MS-TSGU] 2.2.6; the event IDs as
/// Microsoft documents the RD Gateway's events).
fn refusal_words(code: u32, target: &str) -> (String, String) {
    match code {
        E_PROXY_NAP_ACCESSDENIED => (
            "no connection authorization policy (RD CAP) allows this user or client".to_owned(),
            "the gateway logs event 201 (the user did not meet connection authorization policy requirements): add the user's group to an RD CAP, or check the authentication method the CAP requires".to_owned(),
        ),
        E_PROXY_RAP_ACCESSDENIED => (
            format!("no resource authorization policy (RD RAP) allows this user to {target}"),
            "the gateway logs event 301 (the user did not meet resource authorization policy requirements): add the computer (by the name the client uses, FQDN or NetBIOS) to an RD RAP's computer group, for a group the user is in".to_owned(),
        ),
        E_PROXY_TS_CONNECTFAILED => (
            format!("the gateway could not connect to {target}"),
            "the target is down, its name does not resolve on the gateway, or a firewall between the gateway and the target blocks the RDP port".to_owned(),
        ),
        E_PROXY_MAXCONNECTIONSREACHED => (
            "the gateway has reached its maximum number of connections".to_owned(),
            "the gateway logs event 203 (the number of simultaneous connections reached the maximum the administrator set): raise the limit in RD Gateway Manager, or wait".to_owned(),
        ),
        E_PROXY_CAPABILITYMISMATCH => (
            "the gateway requires a capability or authentication method the client did not offer (a smart card, a pluggable authentication cookie)".to_owned(),
            "the RD CAP may require smart card authentication, or the gateway a pluggable authentication (PAA) cookie; rdptrace offers neither".to_owned(),
        ),
        E_PROXY_UNSUPPORTED_AUTHENTICATION_METHOD => (
            "the gateway does not accept the client's authentication method".to_owned(),
            "check which methods the RD CAP allows (password, smart card)".to_owned(),
        ),
        E_PROXY_SESSIONTIMEOUT => (
            "the gateway's session timeout expired".to_owned(),
            "the gateway ends sessions after the time its RD CAP sets; reconnect".to_owned(),
        ),
        E_PROXY_INTERNALERROR => (
            "the gateway failed inside (or got a packet out of order)".to_owned(),
            "look at the gateway's event log (Microsoft-Windows-TerminalServices-Gateway/Operational)".to_owned(),
        ),
        other => (
            codes::meaning(Table::Gateway, other).to_owned(),
            "look at the gateway's event log (Microsoft-Windows-TerminalServices-Gateway/Operational)".to_owned(),
        ),
    }
}

/// [MS-TSGU] 2.2.10 the gateway refused the handshake, the tunnel, its authorization or the channel with an
/// HRESULT.
pub fn gateway_refused(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| p.is_gateway())?;
    let g = f.gateway.as_ref()?;
    let r = g.refusal?;
    let target = g.target.unwrap_or("the target");
    let (words, hint) = refusal_words(r.code, target);
    let code = codes::Display(Table::Gateway, r.code);
    // Over RPC ([MS-TSGU] 3.2.6) the answer to a TsProxy call carries the code; over HTTP, a packet.
    let (step, answer) = match r.rpc_opnum {
        Some(op) => (
            match op {
                rpc_op::CREATE_TUNNEL => "tunnel",
                rpc_op::AUTHORIZE_TUNNEL => "tunnel's authorization",
                rpc_op::CREATE_CHANNEL => "channel to the target",
                _ => "tunnel",
            },
            format!("answer to {}", crate::gateway::rpc::ndr::method(op)),
        ),
        None => (
            match name_of(r.packet_type) {
                "HTTP_HANDSHAKE_RESPONSE_PACKET" => "handshake",
                "HTTP_TUNNEL_RESPONSE" => "tunnel",
                "HTTP_TUNNEL_AUTH_RESPONSE" => "tunnel's authorization",
                "HTTP_CHANNEL_RESPONSE" => "channel to the target",
                _ => "tunnel",
            },
            name_of(r.packet_type).to_owned(),
        ),
    };
    Some(
        Explained::failed(
            Cause::GatewayRefused,
            phase,
            format!(
                "the RD Gateway {} refused the {step}: {code}: {words}",
                g.address
            ),
        )
        .evidence([format!("{:.1} ms: gateway {answer} {code}", r.at_ms)])
        .hint([hint]),
    )
}

/// A gateway connection nobody could decrypt, named from the sizes of its records: what they show, and that
/// how far the connection got is not known.
pub fn gateway_not_decrypted(f: &Findings) -> Option<Explained> {
    let g = f.gateway.as_ref()?;
    let (at, confirm) = g.by_size?;
    let phase = f.failed.unwrap_or(f.current);
    let cause = f.close_cause(Cause::CaptureEnded);
    let shown = if confirm {
        "the [MS-TSGU] handshake over WebSocket (so the gateway had authenticated the client), then the target's X.224 Connection Confirm relayed through the tunnel (so the gateway authorized the tunnel and reached the target)"
    } else {
        "the [MS-TSGU] handshake over WebSocket (so the gateway had authenticated the client)"
    };
    let ended = f
        .close_words()
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "HTTPS to the RD Gateway {} that was not decrypted: the sizes of its encrypted records show {shown}; what followed is not readable, so how far the RDP connection inside got is not known{ended}",
                g.address
            ),
        )
        .evidence([format!(
            "{at:.1} ms: an encrypted record the size of an HTTP_HANDSHAKE_REQUEST_PACKET in a WebSocket frame, answered by one the size of the response"
        )])
        .evidence(f.close_evidence())
        .hint(["give the gateway's TLS secrets (--keylog with the client's key log, or a capture with a decryption secrets block) to read the gateway exchange and the RDP connection inside".to_owned()]),
    )
}

/// The gateway ended a connection during its own phases without an answer that says why.
pub fn gateway_ended(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| p.is_gateway())?;
    let gw = gateway(f)?;
    if let Some(t) = f.timeout {
        return Some(
            Explained::failed(
                Cause::TimedOut,
                phase,
                format!(
                    "the RD Gateway {gw} did not answer within {} (waiting for {})",
                    t.within(),
                    t.waiting_for
                ),
            )
            .evidence([format!(
                "{:.1} ms: no answer from the gateway: {}",
                t.at_ms, t.waiting_for
            )]),
        );
    }
    // A close by the client is the client's (a later rule says so), not the gateway's.
    let c = f.close.filter(|c| c.by == Side::Server)?;
    let cause = match c.how {
        CloseKind::Fin => Cause::ClosedByServer,
        CloseKind::Rst => Cause::ResetByServer,
    };
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "the RD Gateway {gw} ended the connection ({}) during {phase}, without an answer that says why",
                if c.how == CloseKind::Fin { "FIN" } else { "RST" }
            ),
        )
        .evidence([format!("{:.1} ms: the gateway closed the connection", c.at_ms)]),
    )
}

/// The gateway ended the tunnel while the RDP connection ran in it: dropped (no channel close), or a
/// channel close with a failing code.
pub fn tunnel_ended(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| !p.is_gateway())?;
    let g = f.gateway.as_ref()?;
    let (at, end) = g.tunnel_end?;
    match end {
        TunnelEnd::Dropped { .. } => Some(
            Explained::failed(
                Cause::TunnelDropped,
                phase,
                format!(
                    "the RD Gateway {} dropped the tunnel during {phase}: {end}; what the target did is not known",
                    g.address
                ),
            )
            .evidence([format!("{at:.1} ms: {end}")])
            .hint(["a gateway (or a load balancer or proxy in front of it) that drops tunnels: look at its event log and its idle and session timeouts; probe the target directly, if you can reach it, to tell the gateway from the target".to_owned()]),
        ),
        TunnelEnd::ChannelClose { status } if codes::gateway::failed(status) => {
            let target = g.target.unwrap_or("the target");
            let (words, hint) = refusal_words(status, target);
            Some(
                Explained::failed(
                    Cause::GatewayRefused,
                    phase,
                    format!(
                        "the RD Gateway {} closed the channel during {phase}: {}: {words}",
                        g.address,
                        codes::Display(Table::Gateway, status)
                    ),
                )
                .evidence([format!("{at:.1} ms: {end}")])
                .hint([hint]),
            )
        }
        // A close with ERROR_SUCCESS relays the target's own close; the rules of closes explain it.
        _ => None,
    }
}
