//! The scenarios of the routes to a target: through an RD Gateway ([MS-TSGU]) and past a connection broker
//! ([MS-RDPBCGR] 1.3.8). Their gateway and their brokers are built by [`crate::serve::deployment`].

use super::{Expected, Group, Scenario, Xfreerdp};
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

/// xfreerdp through the gateway: WebSocket first (`/gt:http` tries the upgrade), NLA, any certificate.
const GATEWAY_FULL: &[&str] = &["/cert:ignore", "/sec:nla", "/gt:http"];

pub(super) static ROUTES: &[Scenario] = &[
    // ---- RD Gateway ----------------------------------------------------------------------------------------
    Scenario {
        name: "gateway-healthy",
        group: Group::Gateway,
        stands_for: "An RD Gateway that lets the user through to the session host, as RDS deployments and Azure Virtual Desktop put one in front.",
        wire: "the gateway answers HTTPS (a certificate of the test CA), authenticates with NTLM (or Basic), upgrades RDG_OUT_DATA to a WebSocket, creates the tunnel and the channel to the built-in target, which completes the connection.",
        expected: Expected::CONNECTED,
        gateway: Some(GatewayProfile::HEALTHY),
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
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-auth-refused",
        group: Group::Gateway,
        stands_for: "An RD Gateway that refuses the user's credentials (a wrong password, an account it does not know).",
        wire: "the gateway answers every request with 401 Unauthorized, also after the NTLM AUTHENTICATE, and closes.",
        expected: Expected::failed(PhaseName::GatewayAuth, Cause::GatewayHttpError).mentioning(&["401"]),
        gateway: gateway(GatewayFault::AuthRefused),
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
        ..Scenario::BASE
    },
    Scenario {
        name: "gateway-drop",
        group: Group::Gateway,
        stands_for: "An RD Gateway (or a load balancer in front of it) that drops the tunnel in the middle of the RDP handshake.",
        wire: "the gateway tunnels to the target; when the client's second data packet arrives (its TLS ClientHello, after the X.224 exchange) it closes its connection without closing the channel.",
        expected: Expected::failed(PhaseName::Tls, Cause::TunnelDropped).mentioning(&["dropped"]),
        gateway: gateway(GatewayFault::DropMidHandshake),
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
        ..Scenario::BASE
    },
    Scenario {
        name: "broker-unreachable",
        group: Group::Broker,
        stands_for: "A broker that sends the client to a session host the client cannot reach (an address behind NAT, a host that is down).",
        wire: "the broker redirects to 127.0.0.3 (the same port), where nothing listens.",
        expected: Expected::failed(PhaseName::Tcp, Cause::Refused)
            .mstsc(DISC_SOCKET_CONNECT_FAILED, EXT_NO_INFO)
            .mentioning(&["redirected", "127.0.0.3"]),
        broker: Some(BrokerProfile::Unreachable),
        ..Scenario::BASE
    },
    Scenario {
        name: "broker-loop",
        group: Group::Broker,
        stands_for: "Two brokers that each think the user's session is on the other.",
        wire: "the broker at 127.0.0.1 redirects to 127.0.0.2, which is a broker too and redirects back to 127.0.0.1, and so on.",
        expected: Expected::failed(PhaseName::Capabilities, Cause::RedirectLoop).mentioning(&["loop"]),
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
        ..Scenario::BASE
    },
];

/// xfreerdp's arguments for a gateway scenario, before the harness adds `/g:`, `/gu:` and `/gp:`.
pub const XFREERDP_GATEWAY: &[&str] = GATEWAY_FULL;

#[allow(dead_code)]
const _: Option<Xfreerdp> = None;
