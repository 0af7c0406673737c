//! Connection brokers and session hosts of the built-in target ([MS-RDPBCGR] 1.3.8).
//!
//! A broker answers after licensing with an Enhanced Security Server Redirection PDU ([MS-RDPBCGR]
//! 2.2.13.3.1) naming another target of the same process (a loopback address, the same port), with the
//! routing token the client must send next (LoadBalanceInfo), the session to join and a password. A client
//! that comes back to the broker with that token (as FreeRDP does when the PDU has LoadBalanceInfo) is
//! forwarded to the session host, as [MS-RDPBCGR] 1.3.8 describes a broker that redirects the traffic
//! itself. The session host checks that what the client sent is what the broker gave it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ironrdp_acceptor::AcceptorResult;

use super::faults::{self, EncodeError};

/// [2.2.13.1] the session the broker sends clients to.
pub const SESSION_ID: u32 = 7;

/// What a broker scenario builds, as the catalogue describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerProfile {
    /// Redirects to a session host in the same process (the next loopback address, the same port), which
    /// checks the routing token, the session id and the password it gets.
    Redirect,
    /// Redirects to a loopback address where nothing listens.
    Unreachable,
    /// Two brokers, each redirecting to the other.
    Loop,
    /// Redirects only a client whose X.224 Connection Request carries this load-balance info; the others get
    /// ERRINFO_CB_DESTINATION_NOT_FOUND.
    NeedsLoadBalanceInfo(&'static str),
}

/// The broker role of one target.
#[derive(Clone, PartialEq, Eq)]
pub struct Broker {
    /// TargetNetAddress.
    pub redirect_to: IpAddr,
    /// LoadBalanceInfo: the routing token the client sends next (without its CR LF).
    pub token: String,
    /// Password: [2.2.13.1] a cleartext password (UTF-16LE with its NUL), as the broker passes it on.
    pub password: Option<Vec<u8>>,
    /// Where a client that comes back with `token` is forwarded.
    pub forward_to: Option<SocketAddr>,
    /// The load-balance info a client's first connection must carry.
    pub requires: Option<String>,
}

impl core::fmt::Debug for Broker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Broker")
            .field("redirect_to", &self.redirect_to)
            .field("token", &self.token)
            .field("password", &self.password.is_some())
            .field("forward_to", &self.forward_to)
            .field("requires", &self.requires)
            .finish()
    }
}

/// What a session host checks of a redirected client.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionHost {
    /// The routing token of its X.224 Connection Request.
    pub token: String,
    /// The RedirectedSessionID of its Client Cluster Data.
    pub session_id: u32,
    /// The password cookie of its Client Info, when the broker gave one that is not text.
    pub cookie: Option<Vec<u8>>,
}

impl core::fmt::Debug for SessionHost {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionHost")
            .field("token", &self.token)
            .field("session_id", &self.session_id)
            .field("cookie", &self.cookie.is_some())
            .finish()
    }
}

/// [2.2.1.1] a routing token as Windows brokers write it for a redirected session: `Cookie: msts=` then the
/// target's IPv4 address and port as little-endian numbers and a reserved field ([MSFT-SDLBTS], "Routing
/// Token Format").
pub fn msts_token(to: SocketAddr) -> String {
    let ip = match to.ip() {
        IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        IpAddr::V6(_) => 0,
    };
    let port = to.port().swap_bytes();
    format!("Cookie: msts={ip}.{port}.0000")
}

/// Whether two routing tokens are the same: `Cookie: ` and the CR LF are not part of the comparison.
pub fn same_token(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_start_matches("Cookie: ")
            .trim_start_matches("msts=")
            .to_owned()
    };
    norm(a) == norm(b)
}

/// [2.2.13.3.1] the broker's Server Redirection PDU.
pub fn redirection(broker: &Broker) -> Result<Vec<u8>, EncodeError> {
    let mut lb = broker.token.clone().into_bytes();
    lb.extend_from_slice(b"\r\n");
    faults::server_redirection_with(
        SESSION_ID,
        &broker.redirect_to.to_string(),
        Some(lb),
        broker.password.clone(),
    )
}

/// [2.2.1.1] a Connection Request without a routing token that does not start with `Cookie: ` (a
/// collection's `tsv://...` load-balance info), which the acceptor's decoder does not take; other requests as
/// they are.
pub fn strip_opaque_token(frame: &[u8]) -> Vec<u8> {
    // TPKT (4), length indicator (1), CR TPDU fixed part (6), then the token line.
    const TOKEN_AT: usize = 11;
    let Some(rest) = frame.get(TOKEN_AT..) else {
        return frame.to_vec();
    };
    if rest.starts_with(b"Cookie: ") || !rest.first().is_some_and(|b| (0x20..0x7f).contains(b)) {
        return frame.to_vec();
    }
    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
        return frame.to_vec();
    };
    let cut = end + 2;
    let mut out = Vec::with_capacity(frame.len() - cut);
    out.extend_from_slice(frame.get(..TOKEN_AT).unwrap_or_default());
    out.extend_from_slice(rest.get(cut..).unwrap_or_default());
    let total = u16::try_from(out.len()).unwrap_or(u16::MAX);
    if let Some(len) = out.get_mut(2..4) {
        len.copy_from_slice(&total.to_be_bytes());
    }
    if let (Some(li), true) = (out.get(4).copied(), cut <= 255)
        && let Some(b) = out.get_mut(4)
    {
        *b = li.saturating_sub(cut as u8);
    }
    out
}

impl SessionHost {
    /// Whether the client sent what its broker gave it: `Err` says what is missing.
    pub fn check(&self, result: &AcceptorResult) -> Result<(), String> {
        match &result.routing_token {
            Some(t) if same_token(t, &self.token) => {}
            Some(t) => return Err(format!("the routing token {t:?} is not the broker's")),
            None => return Err("no routing token in the X.224 Connection Request".to_owned()),
        }
        let session = result
            .client_cluster_data
            .as_ref()
            .filter(|c| {
                c.flags
                    .contains(ironrdp_pdu::gcc::RedirectionFlags::REDIRECTED_SESSION_FIELD_VALID)
            })
            .map(|c| c.redirected_session_id);
        if session != Some(self.session_id) {
            return Err(format!(
                "the Client Cluster Data asks for session {session:?}, not {}",
                self.session_id
            ));
        }
        if let Some(cookie) = &self.cookie {
            let got = result.password_cookie.as_ref().map(|c| c.0.as_slice());
            if got != Some(cookie.as_slice()) {
                return Err(
                    "the Client Info does not carry the broker's password cookie".to_owned(),
                );
            }
        }
        Ok(())
    }
}

/// The address of the second target of a broker scenario: the loopback address after `ip` (127.0.0.2 after
/// 127.0.0.1); `offset` further for a third.
pub fn next_loopback(ip: IpAddr, offset: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => {
            let [a, b, c, d] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, d.wrapping_add(offset).max(1)))
        }
        _ => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + offset)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = msts_token(SocketAddr::from(([127, 0, 0, 2], 3389)));
        assert_eq!(t, "Cookie: msts=33554559.15629.0000");
        assert!(same_token(&t, "msts=33554559.15629.0000"));
        assert!(!same_token(&t, "msts=1.2.0000"));
        assert_eq!(
            next_loopback(IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
        );
    }

    /// The acceptor's decoder takes a request once its `tsv://` token is cut out.
    #[test]
    fn an_opaque_token_is_cut_out_for_the_acceptor() {
        let mut cr = vec![0x03, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
        cr.extend_from_slice(b"tsv://MS Terminal Services Plugin.1.Desktops\r\n");
        cr.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x0b, 0, 0, 0]);
        let len = cr.len() as u16;
        cr[2..4].copy_from_slice(&len.to_be_bytes());
        cr[4] = (cr.len() - 5) as u8;
        let plain = strip_opaque_token(&cr);
        let decoded = ironrdp_core::decode::<
            ironrdp_pdu::x224::X224<ironrdp_pdu::nego::ConnectionRequest>,
        >(&plain)
        .unwrap();
        assert_eq!(decoded.0.nego_data, None);
        assert_eq!(decoded.0.protocol.bits(), 0x0b);
        // A cookie request is left alone.
        let mut cookie = cr[..11].to_vec();
        cookie.extend_from_slice(b"Cookie: mstshash=u\r\n");
        assert_eq!(strip_opaque_token(&cookie), cookie);
    }
}
