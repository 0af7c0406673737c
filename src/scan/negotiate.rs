//! [2.2.1.1] / [2.2.1.2] One X.224 Connection Request with one RDP_NEG_REQ, and the server's answer.
//!
//! A server that answers a request for one protocol with an RDP_NEG_RSP selecting another has not
//! accepted the requested protocol: the client asked for that protocol alone and cannot follow. Tools that
//! count any RDP_NEG_RSP as acceptance report such a server as accepting everything; here the raw answer
//! and the judgement are kept apart.

use ironrdp_core::encode_vec;
use ironrdp_pdu::nego::{ConnectionRequest, NegoRequestData, RequestFlags, SecurityProtocol};
use ironrdp_pdu::tpdu::TpduCode;
use ironrdp_pdu::x224::X224;
use serde::Serialize;
use tokio::net::TcpStream;

use super::Endpoint;
use super::link::{Link, LinkError};
use crate::codes::{self, Table};
use crate::pdu::Negotiation;

/// The cookie the scan sends ([2.2.1.1] routingToken or cookie): `Cookie: mstshash=rdptrace`.
pub const COOKIE: &str = "rdptrace";

/// What came back for one Connection Request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Answer {
    /// A Connection Confirm, decoded.
    Confirm { negotiation: Negotiation },
    /// Another PDU where the Connection Confirm was due (xrdp answers a request it cannot serve with an
    /// MCS Disconnect Provider Ultimatum).
    Other { pdu: String },
    /// No Connection Confirm.
    NoConfirm { error: LinkError },
}

impl Answer {
    /// The answer in words: `RDP_NEG_RSP selecting PROTOCOL_SSL`.
    pub fn text(&self) -> String {
        match self {
            Answer::Confirm { negotiation } => crate::check::judge::negotiation_text(*negotiation),
            Answer::Other { pdu } => format!("{pdu} instead of a Connection Confirm"),
            Answer::NoConfirm { error } => error.to_string(),
        }
    }

    pub fn negotiation(&self) -> Option<Negotiation> {
        match self {
            Answer::Confirm { negotiation } => Some(*negotiation),
            Answer::Other { .. } | Answer::NoConfirm { .. } => None,
        }
    }
}

/// Whether the answer accepts `requested` as the only protocol asked for: an RDP_NEG_RSP that selects
/// exactly it, or for PROTOCOL_RDP also a Connection Confirm without negotiation data (a server that
/// predates negotiation, [2.2.1.2]).
pub fn accepts(requested: u32, answer: &Answer) -> bool {
    match answer.negotiation() {
        Some(Negotiation::Response {
            selected_protocol, ..
        }) => selected_protocol == requested,
        Some(Negotiation::None) => requested == crate::dissect::x224::PROTOCOL_RDP,
        Some(Negotiation::Failure { .. }) | None => false,
    }
}

/// The judgement in words.
pub fn judgement(requested: u32, answer: &Answer) -> String {
    let name = codes::protocol_names(requested);
    match answer.negotiation() {
        _ if accepts(requested, answer) => format!("{name} accepted"),
        Some(Negotiation::Response {
            selected_protocol, ..
        }) => format!(
            "{name} not accepted: the server selected {}, which was not requested",
            codes::protocol_names(selected_protocol)
        ),
        Some(Negotiation::Failure { code }) => format!(
            "{name} refused: {}",
            codes::meaning(Table::NegFailure, code)
        ),
        Some(Negotiation::None) => format!(
            "{name} not accepted: the server does not negotiate (Standard RDP Security only)"
        ),
        None if matches!(answer, Answer::Other { .. }) => {
            format!("{name} refused: {}", answer.text())
        }
        None => format!("{name} not judged: {}", answer.text()),
    }
}

/// [2.2.1.1] The Connection Request: TPKT, X.224 CR, cookie, RDP_NEG_REQ with `requested`.
pub fn connection_request(requested: u32) -> Vec<u8> {
    let request = ConnectionRequest {
        nego_data: Some(NegoRequestData::cookie(COOKIE.to_owned())),
        flags: RequestFlags::empty(),
        protocol: SecurityProtocol::from_bits_retain(requested),
        correlation_info: None,
    };
    // Encoding a fixed-size structure into a fresh vector only fails on a bug in the encoder.
    encode_vec(&X224(request)).unwrap_or_default()
}

/// Sends the Connection Request on `link` and reads the Connection Confirm.
pub async fn exchange(link: &mut Link<TcpStream>, requested: u32) -> Answer {
    exchange_raw(link, requested).await.0
}

/// [`exchange`], also returning the Connection Confirm's bytes when one came.
pub async fn exchange_raw(link: &mut Link<TcpStream>, requested: u32) -> (Answer, Option<Vec<u8>>) {
    if let Err(error) = link.send(&connection_request(requested)).await {
        return (Answer::NoConfirm { error }, None);
    }
    let frame = match link.read_tpkt().await {
        Ok(f) => f,
        Err(error) => return (Answer::NoConfirm { error }, None),
    };
    // [X.224] 13.3: the TPDU code is the high nibble of the byte after the length indicator.
    let code = frame.get(5).map(|c| c & 0xf0);
    let answer = if code == Some(u8::from(TpduCode::CONNECTION_CONFIRM)) {
        match crate::dissect::x224::decode_confirm(&frame) {
            Ok(cc) => Answer::Confirm {
                negotiation: cc.negotiation,
            },
            Err(e) => Answer::NoConfirm {
                error: LinkError::Garbage(format!(
                    "the Connection Confirm does not decode: {} (offset {})",
                    e.what, e.offset
                )),
            },
        }
    } else {
        Answer::Other {
            pdu: name_of(requested, &frame),
        }
    };
    (answer, Some(frame))
}

/// What the dissector calls a server frame: `MCS Disconnect Provider Ultimatum (rn-provider-initiated)`.
fn name_of(requested: u32, frame: &[u8]) -> String {
    let mut d = crate::dissect::Dissector::new(crate::trace::Trace::new(
        String::new(),
        crate::trace::Origin::Probe,
    ));
    d.on_tcp_data(
        crate::trace::Side::Client,
        0.0,
        &connection_request(requested),
    );
    d.on_tcp_data(crate::trace::Side::Server, 0.0, frame);
    let trace = d.into_trace();
    trace
        .last_pdu_from(crate::trace::Side::Server)
        .map(|(_, p)| {
            if p.summary.is_empty() {
                p.name.clone()
            } else {
                format!("{} ({})", p.name, p.summary)
            }
        })
        .unwrap_or_else(|| "an unknown TPDU".to_owned())
}

/// Opens a connection and makes one exchange; the link stays open for what follows.
pub async fn negotiate(ep: &Endpoint, requested: u32) -> (Answer, Option<Link<TcpStream>>) {
    let mut link = match ep.open().await {
        Ok(l) => l,
        Err(error) => return (Answer::NoConfirm { error }, None),
    };
    let answer = exchange(&mut link, requested).await;
    (answer, Some(link))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::x224::{PROTOCOL_HYBRID, PROTOCOL_RDP, PROTOCOL_SSL};

    #[test]
    fn the_request_decodes_as_what_was_asked() {
        let cr = connection_request(PROTOCOL_HYBRID);
        let decoded = crate::dissect::x224::decode_request(&cr).unwrap();
        assert_eq!(decoded.requested_protocols, Some(PROTOCOL_HYBRID));
        assert_eq!(decoded.cookie.as_deref(), Some(COOKIE));
        assert!(decoded.anomalies.is_empty(), "{:?}", decoded.anomalies);
    }

    #[test]
    fn another_selection_is_not_acceptance() {
        let ssl = Answer::Confirm {
            negotiation: Negotiation::Response {
                selected_protocol: PROTOCOL_SSL,
                flags: 0,
            },
        };
        assert!(accepts(PROTOCOL_SSL, &ssl));
        assert!(!accepts(PROTOCOL_HYBRID, &ssl));
        assert!(judgement(PROTOCOL_HYBRID, &ssl).contains("not accepted"));
        let legacy = Answer::Confirm {
            negotiation: Negotiation::None,
        };
        assert!(accepts(PROTOCOL_RDP, &legacy));
        assert!(!accepts(PROTOCOL_SSL, &legacy));
        let refused = Answer::Confirm {
            negotiation: Negotiation::Failure { code: 1 },
        };
        assert!(!accepts(PROTOCOL_RDP, &refused));
        assert!(judgement(PROTOCOL_RDP, &refused).contains("refused"));
    }
}
