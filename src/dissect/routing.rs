//! Which phase module an RDP frame goes to: a TPKT by its X.224 TPDU code ([X.224] 13), an X.224 Data TPDU by
//! its MCS PDU ([T.125]), MCS Send Data by its channel ([2.2.8.1.1]); fast-path to [`active`].

use ironrdp_pdu::tpdu::TpduCode;
use ironrdp_pdu::tpkt::TpktHeader;

use super::{Dissector, active, channel_join, mcs_connect, x224};
use crate::pdu::PduInfo;
use crate::trace::{PhaseName, Side};
use crate::wire::{Reader, WireError, WireResult};

/// [T.123] 8 / [X.224] 13.2 What follows a TPKT header: the length indicator and the TPDU code.
struct TpduHeader {
    li: usize,
    code: TpduCode,
}

fn tpdu_header(r: &mut Reader<'_>) -> WireResult<TpduHeader> {
    r.skip(TpktHeader::SIZE, "TPKT header")?;
    let li = usize::from(r.u8("X.224 length indicator")?);
    let code = r.u8("X.224 TPDU code")?;
    Ok(TpduHeader {
        li,
        code: TpduCode::from(code & 0xf0),
    })
}

/// [T.125] 11.32 / 11.33 The header of an MCS Send Data Request or Indication.
struct SendDataHeader {
    channel: u16,
    /// userData length.
    len: usize,
}

fn send_data_header(r: &mut Reader<'_>) -> WireResult<SendDataHeader> {
    r.u8("MCS Send Data choice")?;
    r.u16_be("MCS initiator")?;
    let channel = r.u16_be("MCS channel id")?;
    r.u8("MCS data priority and segmentation")?;
    let len = r.per_length("MCS user data length")?;
    Ok(SendDataHeader { channel, len })
}

impl Dissector {
    /// A whole TPKT or fast-path frame.
    pub(super) fn rdp_frame(&mut self, from: Side, frame: &[u8]) {
        if frame.first() == Some(&TpktHeader::VERSION) {
            self.tpkt(from, frame);
        } else {
            active::fast_path(self, from, frame);
        }
    }

    fn tpkt(&mut self, from: Side, frame: &[u8]) {
        let TpduHeader { li, code } = match tpdu_header(&mut Reader::new(frame)) {
            Ok(header) => header,
            Err(e) => return self.decode_error(from, frame.len(), "X.224 TPDU", e),
        };
        match code {
            TpduCode::CONNECTION_REQUEST => {
                self.enter(PhaseName::X224);
                x224::connection_request(self, from, frame);
            }
            TpduCode::CONNECTION_CONFIRM => {
                self.enter(PhaseName::X224);
                x224::connection_confirm(self, from, frame);
            }
            TpduCode::DISCONNECT_REQUEST => {
                self.pdu(
                    from,
                    frame.len(),
                    "X.224 Disconnect Request",
                    String::new(),
                    PduInfo::X224DisconnectRequest,
                );
            }
            TpduCode::DATA => {
                // TPKT (4) + LI (1) + the LI bytes of the header.
                let start = TpktHeader::SIZE + 1 + li;
                match frame.get(start..) {
                    Some(mcs) if !mcs.is_empty() => self.mcs(from, frame.len(), mcs, start),
                    _ => self.decode_error(
                        from,
                        frame.len(),
                        "X.224 Data",
                        WireError {
                            offset: start,
                            what: "X.224 Data TPDU without MCS payload",
                        },
                    ),
                }
            }
            _ => self.decode_error(
                from,
                frame.len(),
                "X.224 TPDU",
                WireError {
                    offset: 5,
                    what: "unknown X.224 TPDU code",
                },
            ),
        }
    }

    /// [T.125] MCS PDUs.
    fn mcs(&mut self, from: Side, frame_len: usize, mcs: &[u8], base: usize) {
        let send_data = mcs
            .first()
            .is_some_and(|b| b >> 2 == active::SEND_DATA_INDICATION);
        if from == Side::Server && !send_data {
            self.settle_awaiting();
        }
        if let [0x7f, 0x65, ..] = mcs {
            self.enter(PhaseName::McsConnect);
            return mcs_connect::connect_initial(self, from, frame_len, mcs, base);
        }
        if let [0x7f, 0x66, ..] = mcs {
            self.enter(PhaseName::McsConnect);
            return mcs_connect::connect_response(self, from, frame_len, mcs, base);
        }
        let Some(&first) = mcs.first() else {
            return;
        };
        let choice = first >> 2;
        match choice {
            channel_join::ERECT_DOMAIN_REQUEST
            | channel_join::ATTACH_USER_REQUEST
            | channel_join::ATTACH_USER_CONFIRM
            | channel_join::CHANNEL_JOIN_REQUEST
            | channel_join::CHANNEL_JOIN_CONFIRM => {
                if self.trace.current() < PhaseName::ChannelJoin {
                    self.enter(PhaseName::ChannelJoin);
                }
                channel_join::domain_pdu(self, from, frame_len, mcs, base);
            }
            active::DISCONNECT_PROVIDER_ULTIMATUM => {
                active::disconnect_provider_ultimatum(self, from, frame_len, mcs)
            }
            active::SEND_DATA_REQUEST | active::SEND_DATA_INDICATION => {
                let mut r = Reader::with_base(mcs, base);
                match send_data_header(&mut r) {
                    Ok(SendDataHeader { channel, len }) => {
                        let base = r.offset();
                        match r.rest().get(..len) {
                            Some(data) => self.channel_data(from, frame_len, channel, data, base),
                            None => self.decode_error(
                                from,
                                frame_len,
                                "MCS Send Data",
                                WireError {
                                    offset: base,
                                    what: "user data shorter than its length",
                                },
                            ),
                        }
                    }
                    Err(e) => self.decode_error(from, frame_len, "MCS Send Data", e),
                }
            }
            other => {
                self.pdu(
                    from,
                    frame_len,
                    "MCS PDU",
                    format!("DomainMCSPDU choice {other}"),
                    PduInfo::Undecoded {
                        detail: format!("DomainMCSPDU choice {other}"),
                        offset: Some(base),
                    },
                );
            }
        }
    }

    /// Data on an MCS channel: the I/O channel, the message channel, or a virtual channel.
    fn channel_data(
        &mut self,
        from: Side,
        frame_len: usize,
        channel: u16,
        data: &[u8],
        base: usize,
    ) {
        let io = self.state.io_channel.unwrap_or(1003);
        let message = self.state.message_channel;
        if channel != io && Some(channel) != message {
            if self.state.standard_security_encrypted() {
                active::channel_sealed(self, from, data);
            }
            if self.trace.current() >= PhaseName::Capabilities {
                self.trace
                    .tally("Virtual Channel Data", frame_len, self.now);
            } else {
                self.pdu(
                    from,
                    frame_len,
                    "Virtual Channel Data",
                    format!("channel {channel}, {} bytes", data.len()),
                    PduInfo::ChannelData {
                        channel_id: channel,
                    },
                );
            }
            return;
        }
        active::io_data(self, from, frame_len, data, base);
    }
}
