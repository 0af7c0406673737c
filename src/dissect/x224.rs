//! `x224` phase: [2.2.1.1] Client X.224 Connection Request and [2.2.1.2] Server X.224 Connection Confirm.
//!
//! Decoded by hand rather than with `ironrdp_pdu::nego`: its decoders reject malformed negotiation data
//! outright, and a diagnostic must say which field was wrong and still report the rest.

use ironrdp_pdu::nego::SecurityProtocol;

use super::Dissector;
use crate::codes::{self, Table};
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::Fact;
use crate::trace::{EventKind, PhaseName, Side};
use crate::wire::{Reader, WireError, ascii};

/// [2.2.1.1.1] RDP_NEG_REQ type.
pub const TYPE_RDP_NEG_REQ: u8 = 0x01;
/// [2.2.1.2.1] RDP_NEG_RSP type.
pub const TYPE_RDP_NEG_RSP: u8 = 0x02;
/// [2.2.1.2.2] RDP_NEG_FAILURE type.
pub const TYPE_RDP_NEG_FAILURE: u8 = 0x03;
/// [2.2.1.1.2] RDP_NEG_CORRELATION_INFO type.
pub const TYPE_RDP_CORRELATION_INFO: u8 = 0x06;

/// [2.2.1.1.1] requestedProtocols / selectedProtocol as the `u32` the trace keeps, from the code table (the
/// dissector reads them as ironrdp's `SecurityProtocol`).
pub use crate::codes::security_protocol::{
    PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX, PROTOCOL_RDP, PROTOCOL_RDSAAD, PROTOCOL_RDSTLS,
    PROTOCOL_SSL,
};

/// [2.2.1.2] What a stream holds where only a TPKT may answer the Connection Request.
pub const NOT_A_CONFIRM: &str = "not a TPKT header where the X.224 Connection Confirm belongs";

/// [2.2.1.1] the routing token a LoadBalanceInfo makes: its text without the CR LF that ends it, when it is
/// printable ASCII.
pub fn routing_token(bytes: &[u8]) -> Option<String> {
    let text = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
    let text = text.strip_suffix(b"\0").unwrap_or(text);
    (!text.is_empty() && text.iter().all(|b| (0x20..0x7f).contains(b)))
        .then(|| String::from_utf8_lossy(text).into_owned())
}

/// A decoded Connection Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRequest {
    pub cookie: Option<String>,
    pub routing_token: Option<String>,
    pub requested_protocols: Option<u32>,
    pub flags: u8,
    pub correlation_id: Option<String>,
    pub anomalies: Vec<String>,
}

/// [2.2.1.1] Decodes a whole TPKT frame holding a Connection Request.
pub fn decode_request(frame: &[u8]) -> Result<ConnectionRequest, WireError> {
    let mut r = Reader::new(frame);
    r.skip(4, "TPKT header")?;
    let li = usize::from(r.u8("X.224 length indicator")?);
    let mut tpdu = r.sub(
        li,
        "X.224 Connection Request shorter than its length indicator",
    )?;
    tpdu.u8("X.224 TPDU code")?;
    tpdu.skip(2, "X.224 DST-REF")?;
    tpdu.skip(2, "X.224 SRC-REF")?;
    tpdu.u8("X.224 class option")?;
    let mut out = ConnectionRequest {
        cookie: None,
        routing_token: None,
        requested_protocols: None,
        flags: 0,
        correlation_id: None,
        anomalies: Vec::new(),
    };
    let rest = tpdu.rest();
    // [2.2.1.1] routingToken or cookie: "Cookie: mstshash=IDENTIFIER\r\n" or "Cookie: msts=...\r\n",
    // both terminated by CR LF.
    let mut consumed = 0;
    if rest.starts_with(b"Cookie: ") {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(end) => {
                let line = rest.get(8..end).unwrap_or(&[]);
                if let Some(hash) = line.strip_prefix(b"mstshash=") {
                    out.cookie = Some(ascii(hash));
                } else {
                    out.routing_token = Some(ascii(line));
                }
                consumed = end + 2;
            }
            None => {
                out.anomalies
                    .push("cookie without the CR LF that ends it".to_owned());
                consumed = rest.len();
            }
        }
    }
    // [2.2.1.1] a routing token need not start with "Cookie: ": a client passes the load-balance info it was
    // given as it is (`tsv://MS Terminal Services Plugin.1.<collection>`), ended by CR LF.
    if consumed == 0
        && rest.first().is_some_and(|b| (0x20..0x7f).contains(b))
        && let Some(end) = rest.windows(2).position(|w| w == b"\r\n")
        && rest
            .get(..end)
            .is_some_and(|line| line.iter().all(|b| (0x20..0x7f).contains(b)))
    {
        out.routing_token = Some(ascii(rest.get(..end).unwrap_or_default()));
        consumed = end + 2;
    }
    tpdu.skip(consumed, "cookie")?;
    if tpdu.remaining() >= 8 && tpdu.peek_u8() == Some(TYPE_RDP_NEG_REQ) {
        tpdu.u8("RDP_NEG_REQ type")?;
        out.flags = tpdu.u8("RDP_NEG_REQ flags")?;
        let len = tpdu.u16_le("RDP_NEG_REQ length")?;
        if len != 8 {
            out.anomalies
                .push(format!("RDP_NEG_REQ length is {len}, must be 8"));
        }
        out.requested_protocols = Some(tpdu.u32_le("RDP_NEG_REQ requestedProtocols")?);
    }
    if tpdu.remaining() >= 36 && tpdu.peek_u8() == Some(TYPE_RDP_CORRELATION_INFO) {
        tpdu.skip(4, "RDP_NEG_CORRELATION_INFO header")?;
        let id = tpdu.bytes(16, "correlationId")?;
        out.correlation_id = Some(hex::encode(id));
        tpdu.skip(16, "RDP_NEG_CORRELATION_INFO reserved")?;
    }
    if tpdu.remaining() > 0 {
        out.anomalies.push(format!(
            "{} bytes after the negotiation request that rdptrace does not know",
            tpdu.remaining()
        ));
    }
    Ok(out)
}

/// A decoded Connection Confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfirm {
    pub negotiation: Negotiation,
    pub anomalies: Vec<String>,
}

/// [2.2.1.2] Decodes a whole TPKT frame holding a Connection Confirm.
pub fn decode_confirm(frame: &[u8]) -> Result<ConnectionConfirm, WireError> {
    let mut r = Reader::new(frame);
    r.skip(4, "TPKT header")?;
    let li = usize::from(r.u8("X.224 length indicator")?);
    let mut anomalies = Vec::new();
    let available = r.remaining();
    let mut tpdu = if li > available {
        anomalies.push(format!(
            "X.224 length indicator is {li}, but only {available} bytes follow"
        ));
        r.sub(available, "X.224 Connection Confirm")?
    } else {
        r.sub(li, "X.224 Connection Confirm")?
    };
    tpdu.u8("X.224 TPDU code")?;
    tpdu.skip(2, "X.224 DST-REF")?;
    tpdu.skip(2, "X.224 SRC-REF")?;
    tpdu.u8("X.224 class option")?;
    if tpdu.remaining() == 0 {
        return Ok(ConnectionConfirm {
            negotiation: Negotiation::None,
            anomalies,
        });
    }
    let kind = tpdu.u8("negotiation type")?;
    let flags = tpdu.u8("negotiation flags")?;
    let len = tpdu.u16_le("negotiation length")?;
    if len != 8 {
        anomalies.push(format!("negotiation length is {len}, must be 8"));
    }
    let value = tpdu.u32_le("negotiation value")?;
    let negotiation = match kind {
        TYPE_RDP_NEG_RSP => Negotiation::Response {
            selected_protocol: value,
            flags,
        },
        TYPE_RDP_NEG_FAILURE => Negotiation::Failure { code: value },
        other => {
            return Err(WireError {
                offset: tpdu.offset() - 8,
                what: if other == TYPE_RDP_NEG_REQ {
                    "an RDP_NEG_REQ where the server's answer belongs"
                } else {
                    "unknown negotiation type"
                },
            });
        }
    };
    Ok(ConnectionConfirm {
        negotiation,
        anomalies,
    })
}

pub(super) fn connection_request(d: &mut Dissector, from: Side, frame: &[u8]) {
    let req = match decode_request(frame) {
        Ok(req) => req,
        Err(e) => return d.decode_error(from, frame.len(), "X.224 Connection Request", e),
    };
    let mut summary = Vec::new();
    if let Some(cookie) = &req.cookie {
        summary.push(format!("cookie mstshash={cookie}"));
        d.trace.fact(Fact::Cookie, cookie.clone());
    }
    if let Some(token) = &req.routing_token {
        summary.push(format!("routing token {token}"));
        d.trace.fact(Fact::RoutingToken, token.clone());
    }
    match req.requested_protocols {
        Some(p) => {
            summary.push(format!("requested {}", codes::protocol_names(p)));
            d.trace
                .fact(Fact::RequestedProtocols, codes::protocol_names(p));
            if req.flags != 0 {
                summary.push(format!("flags 0x{:02x}", req.flags));
                d.trace
                    .fact(Fact::RequestFlags, format!("0x{:02x}", req.flags));
            }
        }
        None => {
            summary.push("no RDP_NEG_REQ (Standard RDP Security only)".to_owned());
            d.trace
                .fact(Fact::RequestedProtocols, "none (no RDP_NEG_REQ)");
        }
    }
    if let Some(id) = &req.correlation_id {
        d.trace.fact(Fact::CorrelationId, id.clone());
    }
    if d.trace.request.requested_protocols.is_none() {
        d.trace.request.requested_protocols = req.requested_protocols;
    }
    for a in &req.anomalies {
        d.trace
            .record_event(d.now, EventKind::Anomaly { detail: a.clone() });
    }
    d.pdu(
        from,
        frame.len(),
        "X.224 Connection Request",
        summary.join(", "),
        PduInfo::X224ConnectionRequest {
            cookie: req.cookie,
            routing_token: req.routing_token,
            requested_protocols: req.requested_protocols,
            flags: req.flags,
        },
    );
}

pub(super) fn connection_confirm(d: &mut Dissector, from: Side, frame: &[u8]) {
    let cc = match decode_confirm(frame) {
        Ok(cc) => cc,
        Err(e) => return d.decode_error(from, frame.len(), "X.224 Connection Confirm", e),
    };
    for a in &cc.anomalies {
        d.trace
            .record_event(d.now, EventKind::Anomaly { detail: a.clone() });
    }
    let summary = match cc.negotiation {
        Negotiation::Response {
            selected_protocol,
            flags,
        } => {
            let selected = SecurityProtocol::from_bits_retain(selected_protocol);
            d.state.selected_protocol = Some(selected);
            d.trace.fact(
                Fact::SelectedProtocol,
                codes::protocol_names(selected_protocol),
            );
            d.trace.fact(Fact::ResponseFlags, format!("0x{flags:02x}"));
            if !selected.is_standard_rdp_security() {
                d.outer_to_tls();
            } else {
                d.trace.skip(PhaseName::Tls);
                d.trace.skip(PhaseName::Credssp);
                d.trace.skip(PhaseName::EarlyUserAuth);
            }
            format!(
                "RDP_NEG_RSP selected {}, flags 0x{flags:02x}",
                codes::protocol_names(selected_protocol)
            )
        }
        Negotiation::Failure { code } => {
            d.trace.fact(
                Fact::NegFailure,
                codes::Display(Table::NegFailure, code).to_string(),
            );
            format!(
                "RDP_NEG_FAILURE {}",
                codes::Display(Table::NegFailure, code)
            )
        }
        Negotiation::None => {
            d.state.selected_protocol = Some(SecurityProtocol::empty());
            d.trace.fact(
                Fact::SelectedProtocol,
                "PROTOCOL_RDP (no negotiation response)",
            );
            d.trace.skip(PhaseName::Tls);
            d.trace.skip(PhaseName::Credssp);
            d.trace.skip(PhaseName::EarlyUserAuth);
            "no negotiation response: Standard RDP Security".to_owned()
        }
    };
    d.pdu(
        from,
        frame.len(),
        "X.224 Connection Confirm",
        summary,
        PduInfo::X224ConnectionConfirm {
            negotiation: cc.negotiation,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace keeps the flags as `u32`; the dissector reads them as ironrdp's `SecurityProtocol`.
    #[test]
    fn protocol_values_are_ironrdps_flags() {
        for (value, flags) in [
            (PROTOCOL_RDP, SecurityProtocol::empty()),
            (PROTOCOL_SSL, SecurityProtocol::SSL),
            (PROTOCOL_HYBRID, SecurityProtocol::HYBRID),
            (PROTOCOL_RDSTLS, SecurityProtocol::RDSTLS),
            (PROTOCOL_HYBRID_EX, SecurityProtocol::HYBRID_EX),
            (PROTOCOL_RDSAAD, SecurityProtocol::RDSAAD),
        ] {
            assert_eq!(value, flags.bits());
        }
    }

    #[test]
    fn request_with_cookie_and_neg_req() {
        // mstsc: TPKT, X.224 CR, "Cookie: mstshash=eltons\r\n", RDP_NEG_REQ SSL|HYBRID.
        let mut frame = vec![0x03, 0x00, 0x00, 0x00, 0x00, 0xe0, 0, 0, 0, 0, 0];
        frame.extend_from_slice(b"Cookie: mstshash=eltons\r\n");
        frame.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00]);
        let len = frame.len();
        frame[3] = len as u8;
        frame[4] = (len - 5) as u8;
        let req = decode_request(&frame).unwrap();
        assert_eq!(req.cookie.as_deref(), Some("eltons"));
        assert_eq!(req.requested_protocols, Some(3));
        assert!(req.anomalies.is_empty());
    }

    #[test]
    fn confirm_with_failure_and_with_bad_length() {
        let frame = [
            0x03, 0, 0, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x03, 0, 0x08, 0, 0x05, 0, 0, 0,
        ];
        let cc = decode_confirm(&frame).unwrap();
        assert_eq!(cc.negotiation, Negotiation::Failure { code: 5 });
        // zeek rdp-invalid-length: an RDP_NEG_RSP with length 0x0100.
        let frame = [
            0x03, 0, 0, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0x03, 0x00, 0x01, 0x01, 0, 0,
            0,
        ];
        let cc = decode_confirm(&frame).unwrap();
        assert_eq!(
            cc.anomalies,
            vec!["negotiation length is 256, must be 8".to_owned()]
        );
        // Truncated.
        assert!(
            decode_confirm(&[0x03, 0, 0, 0x0b, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02]).is_err()
        );
    }
}
