//! RPC over HTTP, the third transport of an RD Gateway ([MS-TSGU] 3.1, 3.2 over [MS-RPCH]): sans-IO codecs
//! both sides share, read by the probe, the built-in gateway and the replay.
//!
//! - [`rts`]: the RTS PDUs that open a virtual connection of an IN and an OUT channel and keep its flow
//!   control ([MS-RPCH] 2.2.3, 2.2.4).
//! - [`pdu`]: the connection-oriented DCE/RPC PDUs ([C706] 12.6, [MS-RPCE] 2.2.2): bind, bind_ack,
//!   bind_nak, rpc_auth_3, request, response, fault, with the sec_trailer and its padding.
//! - [`ndr`]: the TsProxy calls and their answers as NDR stubs ([MS-TSGU] 2.2.9, 3.2.6).

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

pub mod link;
pub mod ndr;
pub mod ntlm;
pub mod pdu;
pub mod rts;
#[cfg(test)]
mod tests;

/// [MS-RPCH] 2.1.2.1 the URI of both channels: the RPC proxy, then the server and port the proxy relays to
/// (3388: the TsProxy endpoint of an RD Gateway, [MS-TSGU] 3.2.4).
pub const RPC_URI_PREFIX: &str = "/rpc/rpcproxy.dll";
/// [MS-RPCH] 2.1.2.1.1 the IN channel's method.
pub const RPC_IN_DATA: &str = "RPC_IN_DATA";
/// [MS-RPCH] 2.1.2.1.2 the OUT channel's method.
pub const RPC_OUT_DATA: &str = "RPC_OUT_DATA";
/// [MS-TSGU] 3.2.4 the port of the TsProxy interface behind the RPC proxy.
pub const TSPROXY_PORT: u16 = 3388;

/// The request URI of both channels for the gateway `host`: `/rpc/rpcproxy.dll?host:3388`.
pub fn uri(host: &str) -> String {
    format!("{RPC_URI_PREFIX}?{host}:{TSPROXY_PORT}")
}

/// Whether an HTTP method opens a channel of RPC over HTTP.
pub fn is_rpc_method(method: &str) -> bool {
    method == RPC_IN_DATA || method == RPC_OUT_DATA
}

/// Whether a request URI is the RPC proxy's.
pub fn is_rpc_uri(uri: &str) -> bool {
    uri.split('?')
        .next()
        .is_some_and(|p| p.eq_ignore_ascii_case(RPC_URI_PREFIX))
}
