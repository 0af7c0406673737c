//! RD Gateway ([MS-TSGU]): the client side of the gateway phases and the codec both sides share.
//!
//! - [`packet`], [`http`], [`websocket`]: the HTTP transport's packets ([MS-TSGU] 2.2.10), the HTTP heads and
//!   chunked bodies, the WebSocket frames; sans-IO, read by the probe, the built-in gateway and the replay.
//! - [`auth`]: the client's HTTP authentication (NTLM, Negotiate, Basic); [`kerberos`]: Negotiate with
//!   Kerberos, its ticket from the KDC.
//! - [`client`]: the probe's gateway phases, `gateway_connect` (TCP and TLS to the gateway, its certificate),
//!   `gateway_auth` (the HTTP authentication and the transport it grants) and `gateway_tunnel` (handshake,
//!   tunnel, authorization, channel to the target), each recorded in the trace.
//! - [`tunnel`]: the tunnel they end with, a byte stream the probe runs the RDP connection sequence in.
//! - [`record`]: the PDUs of the gateway exchange as the trace keeps them, the same for the probe and the
//!   replay.
//!
//! - [`rpc`]: RPC over HTTP ([MS-TSGU] 3.1, 3.2 over [MS-RPCH]), the third transport, when asked
//!   (`--gateway-transport rpc`): its RTS, DCE/RPC and TsProxy codecs, the bind's NTLM, the open channel.

pub mod auth;
pub mod client;
pub mod http;
pub mod kerberos;
pub mod packet;
pub mod record;
pub mod rpc;
pub mod tunnel;
pub mod websocket;

pub use auth::{GatewayCredentials, Scheme};

/// The default port of an RD Gateway (HTTPS).
pub const DEFAULT_PORT: u16 = 443;

/// The transports a client can try, in the order mstsc tries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportChoice {
    /// The WebSocket transport, then the HTTP transport when the gateway refuses the upgrade.
    #[default]
    Auto,
    /// [MS-TSGU] 3.3.5.1 the WebSocket transport only.
    Websocket,
    /// [MS-TSGU] 3.3.5.1 the HTTP transport only (RDG_OUT_DATA and RDG_IN_DATA).
    Http,
    /// [MS-TSGU] 3.1, 3.2 RPC over HTTP (RPC_IN_DATA and RPC_OUT_DATA), only when asked: mstsc tries the
    /// other two first.
    Rpc,
}

impl TransportChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportChoice::Auto => "auto",
            TransportChoice::Websocket => "websocket",
            TransportChoice::Http => "http",
            TransportChoice::Rpc => "rpc",
        }
    }
}

/// How to reach the target through a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway as the user named it (`https://gw.example`).
    pub url: String,
    pub host: String,
    pub port: u16,
    pub credentials: Option<GatewayCredentials>,
    pub transport: TransportChoice,
    /// The scheme to use; `None` picks the first the gateway offers of Negotiate, NTLM, Basic.
    pub auth: Option<Scheme>,
}

/// Why a gateway address is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayAddressError {
    #[error("the gateway {0} is not https:// (an RD Gateway speaks HTTPS)")]
    Scheme(String),
    #[error("the gateway {0} has no host")]
    NoHost(String),
    #[error("the gateway {0} has a port that is not a number from 1 to 65535")]
    Port(String),
}

impl GatewayConfig {
    /// A gateway at `https://host[:port][/path]`, `host[:port]` or `[v6]:port`, with the defaults.
    pub fn new(url: &str) -> Result<GatewayConfig, GatewayAddressError> {
        let (host, port) = parse_address(url)?;
        Ok(GatewayConfig {
            url: url.trim().to_owned(),
            host,
            port,
            credentials: None,
            transport: TransportChoice::Auto,
            auth: None,
        })
    }

    /// `https://host:port`, as the trace names the gateway.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// The host and port of a gateway address.
pub fn parse_address(url: &str) -> Result<(String, u16), GatewayAddressError> {
    let s = url.trim();
    let rest = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some(_) => return Err(GatewayAddressError::Scheme(s.to_owned())),
        None => s,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // user@ is not part of the host.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(GatewayAddressError::NoHost(s.to_owned()));
    }
    let port = |p: &str| -> Result<u16, GatewayAddressError> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| GatewayAddressError::Port(s.to_owned()))
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| GatewayAddressError::NoHost(s.to_owned()))?;
        let p = match after.strip_prefix(':') {
            Some(p) => port(p)?,
            None => DEFAULT_PORT,
        };
        return Ok((host.to_owned(), p));
    }
    match authority.split_once(':') {
        Some((host, p)) if !host.is_empty() => Ok((host.to_owned(), port(p)?)),
        Some(_) => Err(GatewayAddressError::NoHost(s.to_owned())),
        None => Ok((authority.to_owned(), DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_addresses() {
        assert_eq!(
            parse_address("https://gw.example").unwrap(),
            ("gw.example".to_owned(), 443)
        );
        assert_eq!(
            parse_address("https://gw.example:8443/remoteDesktopGateway/").unwrap(),
            ("gw.example".to_owned(), 8443)
        );
        assert_eq!(
            parse_address("127.0.0.1:4443").unwrap(),
            ("127.0.0.1".to_owned(), 4443)
        );
        assert_eq!(
            parse_address("https://[::1]:4443").unwrap(),
            ("::1".to_owned(), 4443)
        );
        assert!(matches!(
            parse_address("http://gw.example"),
            Err(GatewayAddressError::Scheme(_))
        ));
        assert!(matches!(
            parse_address("https://gw:0"),
            Err(GatewayAddressError::Port(_))
        ));
        assert!(matches!(
            parse_address("https://"),
            Err(GatewayAddressError::NoHost(_))
        ));
    }
}
