//! A connection that starts with a TLS ClientHello and is not RDP: read as a possible RD Gateway's
//! ([`crate::replay::gateway`]); what it reads goes to its tunnel, which is one session.

use std::time::Duration;

use super::flows::{Conn, End};
use super::settle::Handshake;
use super::{Content, Gateway, Piece, Shared};
use crate::replay::gateway::{GatewayConn, Verdict};
use crate::trace::PhaseName;

/// Makes the connection a possible gateway connection, and feeds it what was held.
pub(super) fn start(conn: &mut Conn, shared: &mut Shared) {
    let client_end = conn.client.unwrap_or(End::A);
    conn.client = Some(client_end);
    let server = conn.ends[client_end.other()];
    let held = match std::mem::replace(&mut conn.content, Content::NotRdp) {
        Content::Undecided { chunks, .. } => chunks,
        _ => Vec::new(),
    };
    conn.content = Content::Gateway(Box::new(Gateway {
        conn: GatewayConn::new(
            server.to_string(),
            &shared.file,
            shared.secrets.as_ref(),
            &shared.position,
            conn.first_ts,
        ),
        joined: None,
        primary: false,
    }));
    for (end, at, d) in &held {
        let ts = conn.first_ts + Duration::from_secs_f64(at.max(0.0) / 1000.0);
        feed(conn, *end, ts, d.into(), shared);
    }
}

/// Feeds one delivery to a connection that may be an RD Gateway's; hands what it read to its tunnel.
pub(super) fn feed(conn: &mut Conn, end: End, ts: Duration, d: Piece<'_>, shared: &mut Shared) {
    let side = conn.side_of(end);
    let at = conn.at(ts);
    let Content::Gateway(g) = &mut conn.content else {
        return;
    };
    match d {
        Piece::Data(v) => g.conn.on_tcp_data(side, at, v),
        Piece::Gap(_) => g.conn.gap(ts),
    }
    match g.conn.verdict {
        Verdict::Waiting => {}
        Verdict::Other => conn.content = Content::NotRdp,
        // A connection nobody could open is a tunnel too, until the sizes of its records say whether it is a
        // gateway's (`Tunnels` counts it as opaque TLS otherwise).
        Verdict::Gateway | Verdict::Opaque => join(conn, shared, false),
    }
}

/// A connection that may be an RD Gateway's ends: a channel of RPC over HTTP that never named its virtual
/// connection (refused before its CONN/A1 or CONN/B1) becomes a tunnel of its own.
pub(super) fn ending(conn: &mut Conn, shared: &mut Shared) {
    if let Content::Gateway(g) = &conn.content
        && g.joined.is_none()
        && g.conn.id_pending()
    {
        join(conn, shared, true);
    }
}

/// Joins the connection to its tunnel (made when it is the first), then hands the tunnel what it read; a
/// channel of RPC over HTTP waits for its virtual connection unless `now`.
fn join(conn: &mut Conn, shared: &mut Shared, now: bool) {
    let client_end = conn.client.unwrap_or(End::A);
    let (client, server) = (conn.ends[client_end], conn.ends[client_end.other()]);
    let handshake = Handshake::of(conn);
    let (first_ts, order) = (conn.first_ts, conn.order);
    let Content::Gateway(g) = &mut conn.content else {
        return;
    };
    if g.joined.is_none() {
        if g.conn.id_pending() && !now {
            return;
        }
        let id = g.conn.id.clone().unwrap_or_else(|| format!("#{order}"));
        let fresh = !shared.tunnels.has(&id);
        let joined = if fresh {
            let trace = handshake.trace(&shared.file, PhaseName::GatewayConnect);
            shared.tunnels.create(
                &id,
                trace,
                &mut g.conn,
                first_ts,
                order,
                shared.secrets.as_ref().map(|s| (s, &shared.position)),
            )
        } else {
            shared.tunnels.join(&id)
        };
        if !joined {
            if g.conn.verdict == Verdict::Opaque {
                let at = (shared.position.now(), order);
                shared.tunnels.opaque(at, format!("{client} -> {server}"));
            }
            conn.content = Content::NotRdp;
            return;
        }
        g.primary = g.conn.primary(fresh);
        g.joined = Some(id);
    }
    if let Some(id) = &g.joined {
        let items = g.conn.take_items();
        shared.tunnels.apply(id, items);
    }
}
