//! Which connections are RDP, from their first bytes: an X.224 Connection Request or Confirm, an RDP port,
//! a TLS ClientHello to a server seen speaking RDP, or RDP behind a SOCKS5 handshake; and which are TLS to
//! something else (perhaps an RD Gateway).

use std::net::SocketAddr;

use ironrdp_pdu::tpdu::TpduCode;

use super::flows::{Conn, End, PerEnd};
use super::{RdpPorts, RdpServers};
use crate::trace::Pairing;
use crate::wire::frame::{self, Peek};

const CONNECTION_REQUEST: TpduCode = TpduCode::CONNECTION_REQUEST;
const CONNECTION_CONFIRM: TpduCode = TpduCode::CONNECTION_CONFIRM;
/// [RFC 8446] 4 The ClientHello handshake type.
const CLIENT_HELLO: u8 = 1;

/// Whether `buf` starts with a TPKT holding an X.224 TPDU of `code`.
fn is_tpdu(buf: &[u8], code: TpduCode) -> bool {
    frame::tpdu_code(buf) == Peek::Found(code)
}

/// Whether the client sent an X.224 Connection Request or the server a Connection Confirm: RDP by its bytes,
/// whatever the port.
pub(super) fn speaks_rdp(client: &[u8], server: &[u8]) -> bool {
    is_tpdu(client, CONNECTION_REQUEST) || is_tpdu(server, CONNECTION_CONFIRM)
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// RDP, after `skip[end]` bytes of a tunnel handshake in each end's stream, to `via` through it.
    Rdp {
        skip: PerEnd<u64>,
        via: Option<String>,
    },
    /// TLS to a server not known to speak RDP: an RD Gateway's, when its secrets say so.
    Tls,
    NotRdp,
    Wait,
}

/// [RFC 1928] the length of a SOCKS5 client greeting plus CONNECT request, and of the server's method
/// choice plus reply, when `client` and `server` start with them, and the address the client asked for.
fn socks5(client: &[u8], server: &[u8]) -> Option<(usize, usize, String)> {
    fn request_len(buf: &[u8], at: usize) -> Option<usize> {
        // VER CMD RSV ATYP DST.ADDR DST.PORT
        let atyp = *buf.get(at + 3)?;
        let addr = match atyp {
            1 => 4,
            4 => 16,
            3 => 1 + usize::from(*buf.get(at + 4)?),
            _ => return None,
        };
        Some(4 + addr + 2)
    }
    if client.first() != Some(&5) {
        return None;
    }
    let greeting = 2 + usize::from(*client.get(1)?);
    if client.get(greeting) != Some(&5) || client.get(greeting + 1) != Some(&1) {
        return None;
    }
    let c = greeting + request_len(client, greeting)?;
    let addr = client.get(greeting + 4..c - 2)?;
    let port = u16::from_be_bytes([*client.get(c - 2)?, *client.get(c - 1)?]);
    let target = match (client.get(greeting + 3)?, addr.len()) {
        (1, 4) => {
            let ip: [u8; 4] = addr.try_into().ok()?;
            SocketAddr::from((ip, port)).to_string()
        }
        (4, 16) => {
            let ip: [u8; 16] = addr.try_into().ok()?;
            SocketAddr::from((ip, port)).to_string()
        }
        _ => format!("{}:{port}", String::from_utf8_lossy(addr.get(1..)?)),
    };
    // Method choice (VER METHOD), then the reply: VER REP RSV ATYP BND.ADDR BND.PORT, REP 0 = succeeded.
    if server.first() != Some(&5) || server.get(2) != Some(&5) || server.get(3) != Some(&0) {
        return None;
    }
    let s = 2 + request_len(server, 2)?;
    Some((c, s, target))
}

/// What the first bytes of each end (before any gap) say, and which end is the client.
pub(super) fn classify(
    conn: &Conn,
    data: PerEnd<&[u8]>,
    rdp_servers: &RdpServers,
    ports: &RdpPorts,
) -> (Decision, Option<End>) {
    // Which end is the client: the SYN's sender, else whoever sends an X.224 CR, else the end that did
    // not send an X.224 CC, else the end not on an RDP port.
    let mut client = conn
        .client
        .or_else(|| {
            <End as Pairing>::BOTH
                .into_iter()
                .find(|e| is_tpdu(data[*e], CONNECTION_REQUEST))
        })
        .or_else(|| {
            <End as Pairing>::BOTH
                .into_iter()
                .find(|e| is_tpdu(data[*e], CONNECTION_CONFIRM))
                .map(End::other)
        });
    if client.is_none() {
        if ports.contains(conn.ends[End::B].port()) {
            client = Some(End::A);
        } else if ports.contains(conn.ends[End::A].port()) {
            client = Some(End::B);
        }
    }
    let Some(c) = client else {
        let waiting = data.iter().all(|d| d.len() < 8);
        return (
            if waiting {
                Decision::Wait
            } else {
                Decision::NotRdp
            },
            None,
        );
    };
    let s = c.other();
    let (cd, sd) = (data[c], data[s]);
    let server = conn.ends[s];
    if speaks_rdp(cd, sd) {
        return (
            Decision::Rdp {
                skip: PerEnd::default(),
                via: None,
            },
            Some(c),
        );
    }
    if ports.contains(server.port()) {
        return (
            Decision::Rdp {
                skip: PerEnd::default(),
                via: None,
            },
            Some(c),
        );
    }
    if frame::tls_handshake_type(cd) == Peek::Found(CLIENT_HELLO) && rdp_servers.contains(&server) {
        return (
            Decision::Rdp {
                skip: PerEnd::default(),
                via: None,
            },
            Some(c),
        );
    }
    if let Some((cl, sl, target)) = socks5(cd, sd) {
        match frame::tpdu_code(cd.get(cl..).unwrap_or_default()) {
            Peek::Found(CONNECTION_REQUEST) => {
                let mut skip = PerEnd::default();
                skip[c] = cl as u64;
                skip[s] = sl as u64;
                let via = Some(format!("SOCKS5 CONNECT to {target}"));
                return (Decision::Rdp { skip, via }, Some(c));
            }
            Peek::Found(_) | Peek::Not => return (Decision::NotRdp, Some(c)),
            Peek::NeedMore => return (Decision::Wait, Some(c)),
        }
    }
    if frame::tls_handshake_type(cd) == Peek::Found(CLIENT_HELLO) {
        return (Decision::Tls, Some(c));
    }
    if cd.first() == Some(&5) && cd.len() < 64 {
        // Perhaps a SOCKS5 handshake still under way.
        return (Decision::Wait, Some(c));
    }
    let undecided =
        frame::tpdu_code(cd) == Peek::NeedMore && frame::tpdu_code(sd) == Peek::NeedMore;
    if undecided && cd.len() < 8 && sd.len() < 8 {
        return (Decision::Wait, Some(c));
    }
    (Decision::NotRdp, Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdp_by_its_bytes() {
        let request = [0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0];
        let confirm = [0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0];
        assert!(speaks_rdp(&request, &[]));
        assert!(speaks_rdp(&[], &confirm));
        assert!(!speaks_rdp(&confirm, &request));
        assert!(!speaks_rdp(b"GET / HTTP/1.1", &[0x03, 0x00]));
    }

    #[test]
    fn socks5_lengths() {
        let client = [
            5, 1, 0, // greeting: one method, no authentication
            5, 1, 0, 1, 10, 0, 0, 1, 0x0d, 0x3d, // CONNECT 10.0.0.1:3389
            3, 0, 0, 0x13, 0x0e, 0xe0,
        ];
        let server = [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            socks5(&client, &server),
            Some((13, 12, "10.0.0.1:3389".to_owned()))
        );
        assert_eq!(socks5(&client, &server[..5]), None);
    }
}
