//! `capabilities` phase: [2.2.1.13.1] Server Demand Active and [2.2.1.13.2] Client Confirm Active, with the
//! list of capability sets ([2.2.7]).

use super::Dissector;
use crate::pdu::PduInfo;
use crate::trace::{Fact, PhaseName, Side};
use crate::wire::{Reader, WireError};

/// [2.2.1.13.1.1.1] capabilitySetType values and the section of each set.
pub static CAPABILITY_SETS: &[(u16, &str, &str)] = &[
    (0x0001, "General", "2.2.7.1.1"),
    (0x0002, "Bitmap", "2.2.7.1.2"),
    (0x0003, "Order", "2.2.7.1.3"),
    (0x0004, "BitmapCache", "2.2.7.1.4"),
    (0x0005, "Control", "2.2.7.2.2"),
    (0x0007, "Activation", "2.2.7.2.3"),
    (0x0008, "Pointer", "2.2.7.1.5"),
    (0x0009, "Share", "2.2.7.2.4"),
    (0x000a, "ColorCache", "2.2.7.2.1"),
    (0x000c, "Sound", "2.2.7.1.11"),
    (0x000d, "Input", "2.2.7.1.6"),
    (0x000e, "Font", "2.2.7.2.5"),
    (0x000f, "Brush", "2.2.7.1.7"),
    (0x0010, "GlyphCache", "2.2.7.1.8"),
    (0x0011, "OffscreenCache", "2.2.7.1.9"),
    (0x0012, "BitmapCacheHostSupport", "2.2.7.2.1"),
    (0x0013, "BitmapCacheRev2", "2.2.7.1.4.2"),
    (0x0014, "VirtualChannel", "2.2.7.1.10"),
    (0x0015, "DrawNineGridCache", "MS-RDPEGDI 2.2.1.2"),
    (0x0016, "DrawGdiPlus", "MS-RDPEGDI 2.2.1.3"),
    (0x0017, "Rail", "MS-RDPERP 2.2.1.1.1"),
    (0x0018, "Window", "MS-RDPERP 2.2.1.1.2"),
    (0x0019, "CompDesk", "2.2.7.2.8"),
    (0x001a, "MultifragmentUpdate", "2.2.7.2.6"),
    (0x001b, "LargePointer", "2.2.7.2.7"),
    (0x001c, "SurfaceCommands", "2.2.7.2.9"),
    (0x001d, "BitmapCodecs", "2.2.7.2.10"),
    (0x001e, "FrameAcknowledge", "MS-RDPRFX 2.2.1.3"),
];

pub fn capability_set_name(t: u16) -> String {
    CAPABILITY_SETS
        .iter()
        .find(|(c, _, _)| *c == t)
        .map_or_else(|| format!("0x{t:04x}"), |(_, n, _)| (*n).to_owned())
}

/// Most capability set types rdptrace keeps of one PDU (there are 30 types); the rest are only checked.
const MAX_SETS: usize = 64;

/// What a Demand Active or Confirm Active says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub share_id: u32,
    /// The types of the first [`MAX_SETS`] capability sets.
    pub sets: Vec<u16>,
    /// numberCapabilities: the sets the PDU claims, all of which were walked.
    pub count: usize,
}

/// Decodes shareId and the capability set types of a Demand Active (`server`) or Confirm Active PDU,
/// starting after the share control header. Every set numberCapabilities claims is walked, so that a
/// list that runs past the PDU, or a set shorter than its own header, is an error at its offset.
pub fn decode(body: &[u8], server: bool, base: usize) -> Result<Active, WireError> {
    let mut r = Reader::with_base(body, base);
    let share_id = r.u32_le("shareId")?;
    if !server {
        r.u16_le("originatorId")?;
    }
    let source_len = usize::from(r.u16_le("lengthSourceDescriptor")?);
    r.u16_le("lengthCombinedCapabilities")?;
    r.skip(source_len, "sourceDescriptor")?;
    let count = usize::from(r.u16_le("numberCapabilities")?);
    r.u16_le("pad2Octets")?;
    let mut sets = Vec::new();
    // INVARIANT: each pass consumes at least the 4-byte set header or fails, so the PDU's length bounds
    // the loop whatever numberCapabilities claims.
    for _ in 0..count {
        let t = r.u16_le("capabilitySetType")?;
        let len = usize::from(r.u16_le("lengthCapability")?);
        let Some(data) = len.checked_sub(4) else {
            return Err(r.err("capability set shorter than its header"));
        };
        r.skip(data, "capabilityData")?;
        if sets.len() < MAX_SETS {
            sets.push(t);
        }
    }
    Ok(Active {
        share_id,
        sets,
        count,
    })
}

pub(super) fn active_pdu(
    d: &mut Dissector,
    from: Side,
    frame_len: usize,
    body: &[u8],
    base: usize,
) {
    let server = from == Side::Server;
    let name = if server {
        "Server Demand Active"
    } else {
        "Client Confirm Active"
    };
    if server {
        d.state.demand_active_seen = true;
    }
    if d.trace.current() != PhaseName::Capabilities {
        d.enter(PhaseName::Capabilities);
    }
    match decode(body, server, base) {
        Ok(Active {
            share_id,
            sets,
            count,
        }) => {
            let mut names: Vec<String> = sets.iter().map(|t| capability_set_name(*t)).collect();
            if count > sets.len() {
                names.push(format!("{} more", count - sets.len()));
            }
            d.trace.fact(
                if server {
                    Fact::ServerCapabilitySets
                } else {
                    Fact::ClientCapabilitySets
                },
                names.join(", "),
            );
            d.pdu(
                from,
                frame_len,
                name,
                format!("shareId 0x{share_id:08x}, {count} capability sets"),
                if server {
                    PduInfo::DemandActive {
                        share_id,
                        capability_sets: sets,
                    }
                } else {
                    PduInfo::ConfirmActive {
                        share_id,
                        capability_sets: sets,
                    }
                },
            );
        }
        Err(e) => d.decode_error(from, frame_len, name, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Demand Active body after the share control header: shareId, "RDP\0", `count`, then `sets`.
    fn demand_active(count: u16, sets: &[u8]) -> Vec<u8> {
        let mut body = 0x1234u32.to_le_bytes().to_vec();
        body.extend_from_slice(&4u16.to_le_bytes());
        body.extend_from_slice(&(sets.len() as u16).to_le_bytes());
        body.extend_from_slice(b"RDP\0");
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(sets);
        body
    }

    #[test]
    fn every_claimed_set_is_walked_and_the_first_ones_kept() {
        let set = [0x1a, 0x00, 0x08, 0x00, 0, 0, 0x80, 0];
        let sets: Vec<u8> = set.iter().copied().cycle().take(100 * set.len()).collect();
        let active = decode(&demand_active(100, &sets), true, 0).unwrap();
        assert_eq!(active.share_id, 0x1234);
        assert_eq!(active.count, 100);
        assert_eq!(active.sets.len(), MAX_SETS);
    }

    #[test]
    fn a_list_longer_than_its_pdu_or_a_set_of_length_zero_is_an_error_at_its_offset() {
        let set = [0x1a, 0x00, 0x08, 0x00, 0, 0, 0x80, 0];
        let sets: Vec<u8> = set.iter().copied().cycle().take(100 * set.len()).collect();
        let e = decode(&demand_active(u16::MAX, &sets), true, 0).unwrap_err();
        assert_eq!(e.what, "capabilitySetType");
        assert_eq!(e.offset, 16 + sets.len());

        let mut sets = set.to_vec();
        sets.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0]);
        let e = decode(&demand_active(u16::MAX, &sets), true, 0).unwrap_err();
        assert_eq!(e.what, "capability set shorter than its header");
        assert_eq!(e.offset, 16 + 8 + 4);
    }
}
