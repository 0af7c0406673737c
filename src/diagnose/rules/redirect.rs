//! Rules on connection brokers and redirection ([MS-RDPBCGR] 1.3.8, 3.2.5.13.1): a broker that found no
//! destination for a client without load-balance info, a redirection to a target that cannot be reached,
//! and redirections without end.

use crate::codes::{self, Table};
use crate::diagnose::Explained;
use crate::diagnose::findings::Findings;
use crate::probe::redirect::MAX_HOPS;
use crate::trace::{ConnectError, PhaseName};
use crate::verdict::Cause;

/// [2.2.5.1.1] the errorInfo values of a connection broker (ERRINFO_CB_*).
const CB_CODES: core::ops::RangeInclusive<u32> = 0x0000_0400..=0x0000_0411;

/// The chain of connections, in words: `127.0.0.1:3389 -> 127.0.0.2:3389 -> 127.0.0.1:3389`.
fn chain(f: &Findings) -> String {
    let mut parts: Vec<&str> = f.hops.iter().map(|h| h.server.as_str()).collect();
    parts.push(f.target);
    parts.join(" -> ")
}

/// [2.2.5.1.1] a broker's ERRINFO_CB_* to a client whose X.224 Connection Request had no routing token: the
/// broker found no destination because the client did not say which collection it wants.
pub fn broker_without_load_balance_info(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let e = f.error_info.filter(|e| CB_CODES.contains(&e.code))?;
    if f.routing_token_sent {
        return None;
    }
    Some(
        Explained::failed(
            Cause::ServerErrorInfo,
            phase,
            format!(
                "the server is a connection broker and found no destination for the connection ({}); the client sent no load-balance info, so the broker does not know which collection it wants",
                codes::Display(Table::ErrorInfo, e.code)
            ),
        )
        .evidence([
            format!(
                "{:.1} ms: server Set Error Info {}",
                e.at_ms,
                codes::Display(Table::ErrorInfo, e.code)
            ),
            "the X.224 Connection Request carried a cookie, not a routing token".to_owned(),
        ])
        .hint(["give the collection's load-balance info: --load-balance-info 'tsv://MS Terminal Services Plugin.1.<collection>', or the loadbalanceinfo line of the .rdp file RD Web Access gives (connecting to a broker's name without it is a common misconfiguration)".to_owned()]),
    )
}

/// The client was redirected as many times as it follows and then redirected again.
pub fn redirect_loop(f: &Findings) -> Option<Explained> {
    let phase = f.failed?;
    let r = f.redirection.as_ref()?;
    if f.hops.len() + 1 < MAX_HOPS {
        return None;
    }
    let again = r.target.as_deref().unwrap_or("the same place");
    let seen: Vec<&str> = f.hops.iter().filter_map(|h| h.to.as_deref()).collect();
    let looped = seen.contains(&again)
        || f.hops
            .iter()
            .any(|h| h.server.split(':').next() == Some(again));
    let detail = if looped {
        format!(
            "the redirections loop: {} redirects the client to {again} again, where it has been; rdptrace followed {MAX_HOPS} connections ({})",
            f.target,
            chain(f)
        )
    } else {
        format!(
            "the client was redirected {MAX_HOPS} times and then again, to {again}; rdptrace follows at most {MAX_HOPS} connections ({})",
            chain(f)
        )
    };
    Some(
        Explained::failed(Cause::RedirectLoop, phase, detail)
            .evidence([format!("{:.1} ms: server redirection to {}", r.at_ms, r.to)])
            .hint(["the brokers disagree on where the user's session is (a broker that redirects to a host that is itself a broker, or to a stale session); look at the RD Connection Broker's records of the user's session".to_owned()]),
    )
}

/// The client followed a redirection to a target it could not reach.
pub fn redirect_target_unreachable(f: &Findings) -> Option<Explained> {
    let phase = f.failed.filter(|p| *p == PhaseName::Tcp)?;
    let from = f.hops.last()?;
    let to = from.to.as_deref().unwrap_or("the target");
    let (cause, words) = match (f.connect_failure, f.resolve_failure) {
        (_, Some(r)) => (
            Cause::ResolveFailed,
            format!("its name {} does not resolve ({})", r.host, r.error),
        ),
        (Some(c), None) => match &c.error {
            ConnectError::Refused => (
                Cause::Refused,
                format!("{} refused the TCP connection (RST to the SYN)", c.addr),
            ),
            ConnectError::TimedOut => (
                Cause::TimedOut,
                format!("{} did not answer the TCP SYN", c.addr),
            ),
            ConnectError::Unreachable(why) | ConnectError::Other(why) => (
                Cause::Unreachable,
                format!("{} is unreachable: {why}", c.addr),
            ),
        },
        (None, None) => return None,
    };
    Some(
        Explained::failed(
            cause,
            phase,
            format!(
                "{} redirected the client to {to}, and {words}",
                from.server
            ),
        )
        .evidence([format!(
            "{} redirected to {to}{}",
            from.server,
            from.token
                .as_deref()
                .map(|t| format!(" with routing token {t}"))
                .unwrap_or_default()
        )])
        .hint(["the broker sends clients to the session host by the address or name it has for it: the client must reach that address directly (a session host address behind NAT, or a name the client cannot resolve, fails here); mstsc shows the failure of that connection".to_owned()]),
    )
}
