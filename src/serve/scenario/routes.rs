//! The scenarios of the routes to a target: through an RD Gateway ([MS-TSGU]) and past a connection broker
//! ([MS-RDPBCGR] 1.3.8). Their gateway and their brokers are built by [`crate::serve::deployment`].

use super::{Expected, Group, KerberosProfile, ProbeProfile, Scenario, ServiceKey, Xfreerdp};
use crate::codes::disc_reason::{DISC_SOCKET_CONNECT_FAILED, EXT_NO_INFO};
use crate::codes::error_info::ERRINFO_CB_DESTINATION_NOT_FOUND;
use crate::gateway::Scheme;
use crate::serve::broker::BrokerProfile;
use crate::serve::gateway::{GatewayFault, GatewayProfile};
use crate::trace::PhaseName;
use crate::verdict::Cause;

/// The collection whose load-balance info the `broker-needs-lb-info` broker requires.
pub const COLLECTION: &str = "tsv://MS Terminal Services Plugin.1.Desktops";

const fn gateway(fault: GatewayFault) -> Option<GatewayProfile> {
    Some(GatewayProfile::with_fault(fault))
}

const fn xf(exit: i32, says: &'static [&'static str]) -> Option<Xfreerdp> {
    Some(Xfreerdp {
        args: Xfreerdp::GATEWAY,
        exit,
        says,
    })
}

/// xfreerdp 2.11's exit code when its gateway refuses (XF_EXIT_CONN_FAILED); it prints the HRESULT's name.
const XF_GATEWAY_REFUSED: i32 = 131;

pub(super) static ROUTES: &[Scenario] = &[
    // ---- RD Gateway ----------------------------------------------------------------------------------------
    Scenario {
        name: "gateway-healthy",
        group: Group::Gateway,
        stands_for: "An RD Gateway that lets the user through to the session host, as RDS deployments and Azure Virtual Desktop put one in front.",
        wire: "the gateway answers HTTPS (a certificate of the test CA), authenticates with NTLM (or Basic), upgrades RDG_OUT_DATA to a WebSocket, creates the tunnel and the channel to the built-in target, which completes the connection.",
        expected: Expected::CONNECTED,
        gateway: Some(GatewayProfile::HEALTHY),
        xfreerdp: xf(0, &[]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-http-transport",
        group: Group::Gateway,
        stands_for: "An RD Gateway without the WebSocket transport (before Windows Server 2016, or behind a proxy that does not pass upgrades): the client uses the HTTP transport.",
        wire: "the gateway answers the WebSocket upgrade with 200 and a 10-byte seed (an RDG_OUT_DATA channel), takes an RDG_IN_DATA channel with a chunked body, and tunnels as the healthy gateway does.",
        expected: Expected::CONNECTED,
        gateway: Some(GatewayProfile {
            websocket: false,
            ..GatewayProfile::HEALTHY
        }),
        xfreerdp: xf(0, &[]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-basic",
        group: Group::Gateway,
        stands_for: "An RD Gateway that accepts Basic authentication only (an RD CAP, or a reverse proxy, that allows no other).",
        wire: "the gateway's 401 offers Basic alone; with the right user and password it tunnels as the healthy gateway does.",
        expected: Expected::CONNECTED,
        gateway: Some(GatewayProfile {
            schemes: &[Scheme::Basic],
            ..GatewayProfile::HEALTHY
        }),
        xfreerdp: xf(133, &["ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-auth-refused",
        group: Group::Gateway,
        stands_for: "An RD Gateway that refuses the user's credentials (a wrong password, an account it does not know).",
        wire: "the gateway answers every request with 401 Unauthorized, also after the NTLM AUTHENTICATE, and closes.",
        expected: Expected::failed(PhaseName::GatewayAuth, Cause::GatewayHttpError)
            .mentioning(&["401"]),
        gateway: gateway(GatewayFault::AuthRefused),
        xfreerdp: xf(155, &["ERRCONNECT_ACCESS_DENIED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-kerberos",
        group: Group::Gateway,
        stands_for: "An RD Gateway in a domain: the client authenticates to it with Kerberos (Negotiate), as a domain-joined mstsc does.",
        wire: "the gateway's 401 offers Negotiate and NTLM; it takes the client's SPNEGO AP-REQ for HTTP/<--host-name>, checks the ticket with the keytab's key and the authenticator's time, and tunnels as the healthy gateway does.",
        expected: Expected::CONNECTED,
        gateway: Some(GatewayProfile {
            schemes: &[Scheme::Negotiate, Scheme::Ntlm],
            kerberos: Some(KerberosProfile::HEALTHY),
            ..GatewayProfile::HEALTHY
        }),
        xfreerdp: xf(0, &[]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-kerberos-key-mismatch",
        group: Group::Gateway,
        stands_for: "An RD Gateway whose service key is not the one the KDC encrypts its tickets with (a stale keytab, a reset computer account, HTTP/<name> registered on another account).",
        wire: "decrypts the client's ticket with a key of the right type that is not the keytab's, fails, and answers 401 with a Negotiate token: a SPNEGO reject carrying KRB-ERROR KRB_AP_ERR_MODIFIED (41), then closes.",
        expected: Expected::failed(PhaseName::GatewayAuth, Cause::GatewayHttpError)
            .mentioning(&["401", "KRB_AP_ERR_MODIFIED"]),
        probe: ProbeProfile::KERBEROS,
        gateway: Some(GatewayProfile {
            schemes: &[Scheme::Negotiate, Scheme::Ntlm],
            kerberos: Some(KerberosProfile {
                key: ServiceKey::NotTheKdcs,
                ..KerberosProfile::HEALTHY
            }),
            ..GatewayProfile::HEALTHY
        }),
        xfreerdp: xf(0, &[]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-kerberos-only",
        group: Group::Gateway,
        stands_for: "An RD Gateway in a domain that blocks NTLM: a client that cannot use Kerberos (no realm, no KDC, the gateway named by address) is refused.",
        wire: "the gateway's 401 offers Negotiate alone; it takes Kerberos as gateway-kerberos does and answers NTLM inside Negotiate with 401, then closes.",
        expected: Expected::failed(PhaseName::GatewayAuth, Cause::GatewayHttpError)
            .mentioning(&["401", "Kerberos"]),
        probe: ProbeProfile::NTLM,
        gateway: Some(GatewayProfile {
            schemes: &[Scheme::Negotiate],
            kerberos: Some(KerberosProfile {
                ntlm: false,
                ..KerberosProfile::HEALTHY
            }),
            ..GatewayProfile::HEALTHY
        }),
        // xfreerdp 2.11 finds no NTLM among the schemes (it has no Negotiate), as against gateway-basic.
        xfreerdp: xf(133, &["ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-cap-denied",
        group: Group::Gateway,
        stands_for: "An RD Gateway whose connection authorization policy (RD CAP) does not allow the user.",
        wire: "the gateway authenticates the user, then answers the tunnel request with E_PROXY_NAP_ACCESSDENIED (0x800759DB) and closes.",
        expected: Expected::failed(PhaseName::GatewayTunnel, Cause::GatewayRefused)
            .mentioning(&["E_PROXY_NAP_ACCESSDENIED", "RD CAP"]),
        gateway: gateway(GatewayFault::CapDenied),
        xfreerdp: xf(XF_GATEWAY_REFUSED, &["E_PROXY_NAP_ACCESSDENIED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-rap-denied",
        group: Group::Gateway,
        stands_for: "An RD Gateway whose resource authorization policy (RD RAP) does not allow the user to this computer (a name the RAP does not list, a farm not named).",
        wire: "the gateway creates and authorizes the tunnel, then answers the channel request with E_PROXY_RAP_ACCESSDENIED (0x800759DA) and closes.",
        expected: Expected::failed(PhaseName::GatewayTunnel, Cause::GatewayRefused)
            .mentioning(&["E_PROXY_RAP_ACCESSDENIED", "RD RAP"]),
        gateway: gateway(GatewayFault::RapDenied),
        xfreerdp: xf(XF_GATEWAY_REFUSED, &["E_PROXY_RAP_ACCESSDENIED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-ts-connect-failed",
        group: Group::Gateway,
        stands_for: "An RD Gateway that cannot reach the session host behind it (the host is down, or a firewall between them).",
        wire: "no target listens behind the gateway: its connection to the target is refused and it answers the channel request with E_PROXY_TS_CONNECTFAILED (0x800759DD), then closes.",
        expected: Expected::failed(PhaseName::GatewayTunnel, Cause::GatewayRefused)
            .mentioning(&["E_PROXY_TS_CONNECTFAILED"]),
        gateway: gateway(GatewayFault::TargetDown),
        xfreerdp: xf(XF_GATEWAY_REFUSED, &["E_PROXY_TS_CONNECTFAILED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-capability-mismatch",
        group: Group::Gateway,
        stands_for: "An RD Gateway that requires what the client does not offer (smart card authentication, a pluggable authentication cookie).",
        wire: "the gateway authenticates the user, then answers the handshake request with E_PROXY_CAPABILITYMISMATCH (0x800759E9) and closes.",
        expected: Expected::failed(PhaseName::GatewayTunnel, Cause::GatewayRefused)
            .mentioning(&["E_PROXY_CAPABILITYMISMATCH"]),
        gateway: gateway(GatewayFault::CapabilityMismatch),
        xfreerdp: xf(XF_GATEWAY_REFUSED, &["E_PROXY_CAPABILITYMISMATCH"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-max-connections",
        group: Group::Gateway,
        stands_for: "An RD Gateway at the maximum number of connections its administrator set.",
        wire: "the gateway authenticates the user, then answers the tunnel request with E_PROXY_MAXCONNECTIONSREACHED (0x800759E6) and closes.",
        expected: Expected::failed(PhaseName::GatewayTunnel, Cause::GatewayRefused)
            .mentioning(&["E_PROXY_MAXCONNECTIONSREACHED"]),
        gateway: gateway(GatewayFault::MaxConnections),
        xfreerdp: xf(XF_GATEWAY_REFUSED, &["E_PROXY_MAXCONNECTIONSREACHED"]),
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-drop",
        group: Group::Gateway,
        stands_for: "An RD Gateway (or a load balancer in front of it) that drops the tunnel in the middle of the RDP handshake.",
        wire: "the gateway tunnels to the target; when the client's second data packet arrives (its TLS ClientHello, after the X.224 exchange) it closes its connection without closing the channel.",
        expected: Expected::failed(PhaseName::Tls, Cause::TunnelDropped).mentioning(&["dropped"]),
        gateway: gateway(GatewayFault::DropMidHandshake),
        xfreerdp: xf(143, &["ERRCONNECT_TLS_CONNECT_FAILED"]),
        ..Scenario::BASE
    },
    // ---- connection broker ---------------------------------------------------------------------------------
    Scenario {
        name: "broker",
        group: Group::Broker,
        stands_for: "An RD Connection Broker in front of a farm: it sends the user to the session host that holds the user's session.",
        wire: "the broker (127.0.0.1) completes licensing, then sends a Server Redirection PDU: target 127.0.0.2 (the same port), session 7 and a routing token (Cookie: msts=...); the session host there checks the routing token, the session in the Client Cluster Data, and completes the connection. A client that comes back to the broker with the token is forwarded to the session host.",
        expected: Expected::CONNECTED.mentioning(&["redirected"]),
        broker: Some(BrokerProfile::Redirect),
        // xfreerdp comes back to the broker with the token (it prefers the load-balance info to the target
        // address), is forwarded, reaches the active state on the session host, and exits when the session
        // host ends the session at its idle limit.
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 131,
            says: &["Network disconnect!"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "broker-unreachable",
        group: Group::Broker,
        stands_for: "A broker that sends the client to a session host the client cannot reach (an address behind NAT, a host that is down).",
        wire: "the broker redirects to 127.0.0.3 (the same port), where nothing listens; a client that comes back to the broker with the token is not forwarded either: the broker cannot reach 127.0.0.3 and closes.",
        expected: Expected::failed(PhaseName::Tcp, Cause::Refused)
            .mstsc(DISC_SOCKET_CONNECT_FAILED, EXT_NO_INFO)
            .mentioning(&["redirected", "127.0.0.3"]),
        broker: Some(BrokerProfile::Unreachable),
        // xfreerdp comes back to the broker with the token, which closes.
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 147,
            says: &["ERRCONNECT_CONNECT_TRANSPORT_FAILED"],
        }),
        ..Scenario::BASE
    },
    Scenario {
        name: "broker-loop",
        group: Group::Broker,
        stands_for: "Two brokers that each think the user's session is on the other.",
        wire: "the broker at 127.0.0.1 redirects to 127.0.0.2, which is a broker too and redirects back to 127.0.0.1, and so on.",
        expected: Expected::failed(PhaseName::Capabilities, Cause::RedirectLoop)
            .mentioning(&["loop"]),
        broker: Some(BrokerProfile::Loop),
        ..Scenario::BASE
    },
    Scenario {
        name: "broker-needs-lb-info",
        group: Group::Broker,
        stands_for: "A broker that needs the collection's load-balance info (the loadbalanceinfo of the .rdp file RD Web Access gives), reached by its name without it: a common misconfiguration.",
        wire: "without the routing token tsv://MS Terminal Services Plugin.1.Desktops in the X.224 Connection Request, sends Set Error Info ERRINFO_CB_DESTINATION_NOT_FOUND (0x400) after the Client Info and closes; with it (--load-balance-info), redirects as the broker scenario does.",
        expected: Expected::error_info(PhaseName::Licensing, ERRINFO_CB_DESTINATION_NOT_FOUND)
            .mentioning(&["load-balance info"]),
        broker: Some(BrokerProfile::NeedsLoadBalanceInfo(COLLECTION)),
        xfreerdp: Some(Xfreerdp {
            args: Xfreerdp::FULL,
            exit: 131,
            says: &["ERRINFO_CB_DESTINATION_NOT_FOUND"],
        }),
        ..Scenario::BASE
    },
];
