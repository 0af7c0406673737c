//! `capabilities` phase: [2.2.1.13.1] Server Demand Active and [2.2.1.13.2] Client Confirm Active, with the
//! list of capability sets ([2.2.7]).

use super::Dissector;
use crate::pdu::PduInfo;
use crate::trace::{PhaseName, Side};
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

/// Most capability sets a PDU may list before rdptrace stops reading (there are 30 types).
const MAX_SETS: usize = 64;

/// Decodes shareId and the capability set types of a Demand Active (`server`) or Confirm Active PDU,
/// starting after the share control header.
pub fn decode(body: &[u8], server: bool, base: usize) -> Result<(u32, Vec<u16>), WireError> {
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
    // INVARIANT: bounded by MAX_SETS and by the PDU's length (each set is at least 4 bytes).
    for _ in 0..count.min(MAX_SETS) {
        let t = r.u16_le("capabilitySetType")?;
        let len = usize::from(r.u16_le("lengthCapability")?);
        if len < 4 {
            return Err(r.err("capability set shorter than its header"));
        }
        r.skip(len - 4, "capabilityData")?;
        sets.push(t);
    }
    Ok((share_id, sets))
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
        Ok((share_id, sets)) => {
            let names: Vec<String> = sets.iter().map(|t| capability_set_name(*t)).collect();
            d.trace.fact(
                if server {
                    "server_capability_sets"
                } else {
                    "client_capability_sets"
                },
                names.join(", "),
            );
            d.pdu(
                from,
                frame_len,
                name,
                format!("shareId 0x{share_id:08x}, {} capability sets", sets.len()),
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
