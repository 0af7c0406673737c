//! `licensing` phase: [2.2.1.12] licensing PDUs ([MS-RDPELE] 2.2.2) and the [2.2.1.12.1.3] Licensing Error
//! Message, whose dwErrorCode and dwStateTransition say how licensing ended.

use super::Dissector;
use crate::codes::{self, Table};
use crate::pdu::{LicenseMessage, PduInfo};
use crate::trace::Fact;
use crate::trace::{PhaseName, Side};
use crate::wire::{Reader, WireError};

/// [2.2.1.12.1.1] bMsgType values.
pub const LICENSE_REQUEST: u8 = 0x01;
pub const PLATFORM_CHALLENGE: u8 = 0x02;
pub const NEW_LICENSE: u8 = 0x03;
pub const UPGRADE_LICENSE: u8 = 0x04;
pub const LICENSE_INFO: u8 = 0x12;
pub const NEW_LICENSE_REQUEST: u8 = 0x13;
pub const PLATFORM_CHALLENGE_RESPONSE: u8 = 0x15;
pub const ERROR_ALERT: u8 = 0xff;

/// [2.2.1.12.1.3] STATUS_VALID_CLIENT: the server's "no license needed" answer.
pub const STATUS_VALID_CLIENT: u32 = 0x0000_0007;
/// [2.2.1.12.1.3] ST_NO_TRANSITION.
pub const ST_NO_TRANSITION: u32 = 0x0000_0002;
/// [2.2.1.12.1.3] ST_TOTAL_ABORT.
pub const ST_TOTAL_ABORT: u32 = 0x0000_0001;

/// Decodes a licensing PDU body (after the security header).
pub fn decode(body: &[u8]) -> Result<LicenseMessage, WireError> {
    let mut r = Reader::new(body);
    let msg_type = r.u8("bMsgType")?;
    r.u8("flags")?;
    r.u16_le("wMsgSize")?;
    Ok(match msg_type {
        LICENSE_REQUEST => LicenseMessage::LicenseRequest,
        PLATFORM_CHALLENGE => LicenseMessage::PlatformChallenge,
        NEW_LICENSE => LicenseMessage::NewLicense,
        UPGRADE_LICENSE => LicenseMessage::UpgradeLicense,
        LICENSE_INFO => LicenseMessage::LicenseInfo,
        NEW_LICENSE_REQUEST => LicenseMessage::NewLicenseRequest,
        PLATFORM_CHALLENGE_RESPONSE => LicenseMessage::PlatformChallengeResponse,
        ERROR_ALERT => {
            let code = r.u32_le("dwErrorCode")?;
            let transition = r.u32_le("dwStateTransition")?;
            LicenseMessage::ErrorAlert { code, transition }
        }
        other => LicenseMessage::Other { msg_type: other },
    })
}

pub fn message_name(m: &LicenseMessage) -> &'static str {
    match m {
        LicenseMessage::LicenseRequest => "Server License Request",
        LicenseMessage::PlatformChallenge => "Server Platform Challenge",
        LicenseMessage::NewLicense => "Server New License",
        LicenseMessage::UpgradeLicense => "Server Upgrade License",
        LicenseMessage::LicenseInfo => "Client License Information",
        LicenseMessage::NewLicenseRequest => "Client New License Request",
        LicenseMessage::PlatformChallengeResponse => "Client Platform Challenge Response",
        LicenseMessage::ErrorAlert { .. } => "Licensing Error Message",
        LicenseMessage::Other { .. } => "Licensing PDU",
    }
}

/// The step of the encrypted-record inference a licensing message read in the clear is.
fn known_step(m: &LicenseMessage) -> Option<crate::infer::Step> {
    use crate::infer::Step;
    match m {
        LicenseMessage::LicenseRequest => Some(Step::LicenseRequest),
        LicenseMessage::PlatformChallenge => Some(Step::PlatformChallenge),
        LicenseMessage::NewLicense | LicenseMessage::UpgradeLicense => Some(Step::LicenseFinal),
        LicenseMessage::ErrorAlert { .. } => Some(Step::LicenseFinal),
        LicenseMessage::LicenseInfo
        | LicenseMessage::NewLicenseRequest
        | LicenseMessage::PlatformChallengeResponse => Some(Step::LicenseClient),
        LicenseMessage::Other { .. } => None,
    }
}

/// `body` is the licensing PDU, or `None` when it was encrypted.
pub(super) fn license(d: &mut Dissector, from: Side, frame_len: usize, body: Option<&[u8]>) {
    if d.trace.current() < PhaseName::Licensing {
        d.enter(PhaseName::Licensing);
    }
    let Some(body) = body else {
        d.pdu(
            from,
            frame_len,
            "Licensing PDU",
            "encrypted".to_owned(),
            PduInfo::Encrypted,
        );
        return;
    };
    let message = match decode(body) {
        Ok(m) => m,
        Err(e) => return d.decode_error(from, frame_len, "Licensing PDU", e),
    };
    let summary = match &message {
        LicenseMessage::ErrorAlert { code, transition } => {
            let text = format!(
                "{}, {}",
                codes::Display(Table::LicenseError, *code),
                codes::name(Table::LicenseTransition, *transition)
            );
            d.trace.fact(Fact::LicenseResult, text.clone());
            text
        }
        LicenseMessage::Other { msg_type } => format!("bMsgType 0x{msg_type:02x}"),
        _ => String::new(),
    };
    let exchange = d.trace.current_facts_list(Fact::LicenseExchange);
    let name = message_name(&message);
    d.trace.fact(
        Fact::LicenseExchange,
        if exchange.is_empty() {
            name.to_owned()
        } else {
            format!("{exchange}, {name}")
        },
    );
    // Licensing is over when the server grants or waives the license ([MS-RDPELE] 3.3.5.1): the client waits
    // for the Demand Active next, so a close from here on belongs to the capabilities phase.
    let over = from == Side::Server
        && matches!(
            message,
            LicenseMessage::NewLicense
                | LicenseMessage::UpgradeLicense
                | LicenseMessage::ErrorAlert {
                    code: STATUS_VALID_CLIENT,
                    ..
                }
        );
    d.infer_known(from, known_step(&message));
    d.pdu(from, frame_len, name, summary, PduInfo::License { message });
    if over {
        d.await_server_in(PhaseName::Capabilities);
    }
}
