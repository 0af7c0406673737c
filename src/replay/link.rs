//! From a captured frame to a TCP segment (or an ICMP unreachable about one): the link layers rdptrace
//! reads, then IPv4 / IPv6 and TCP through etherparse.

use std::net::{IpAddr, SocketAddr};

use etherparse::{
    EtherType, Icmpv4Type, Icmpv6Type, LaxNetSlice, LaxSlicedPacket, TransportSlice,
    icmpv4::DestUnreachableHeader, icmpv6::DestUnreachableCode,
};

/// LINKTYPE_ values ([tcpdump.org link-layer header types]).
pub mod linktype {
    /// BSD loopback: a 4-byte address family in the writer's byte order.
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// Raw IP, as some writers store the DLT value instead of the LINKTYPE value.
    pub const DLT_RAW_12: u32 = 12;
    pub const DLT_RAW_14: u32 = 14;
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// Whether rdptrace reads this link type.
pub fn supported(link: u32) -> bool {
    use linktype::*;
    matches!(
        link,
        NULL | ETHERNET
            | DLT_RAW_12
            | DLT_RAW_14
            | RAW
            | LOOP
            | LINUX_SLL
            | IPV4
            | IPV6
            | LINUX_SLL2
    )
}

/// A TCP segment as the capture holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    /// The IPv4 identification (none in IPv6): copies of one packet share it, a retransmission normally
    /// gets a new one.
    pub ip_id: Option<u16>,
    pub payload: &'a [u8],
    /// Payload bytes the capture did not keep (the snapshot length cut the packet).
    pub missing: u32,
}

/// What one frame carries, as far as replay cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Tcp(Segment<'a>),
    /// An ICMP or ICMPv6 destination unreachable quoting a TCP segment from `src` to `dst`.
    Unreachable {
        src: SocketAddr,
        dst: SocketAddr,
        reporter: IpAddr,
        what: String,
    },
    /// Anything else (UDP, ARP, a fragment, a frame that does not parse).
    Other,
}

/// Decodes one frame captured on a link of type `link`.
///
/// The caller checks [`supported`] first; an unsupported type gives [`Frame::Other`].
pub fn decode(link: u32, data: &[u8], orig_len: u32) -> Frame<'_> {
    let sliced = slice(link, data);
    decode_sliced(sliced, data, orig_len)
}

/// What a TCP segment's headers say of where it goes, read without decoding the frame ([`glance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glance {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub syn: bool,
    pub ack: bool,
}

/// The addresses, ports and SYN and ACK flags of a TCP segment over IPv4 or IPv6, in an Ethernet frame
/// with no VLAN tag or on a raw IP link, with no IPv4 fragment and no IPv6 extension header: most of the
/// frames of a capture, read at their fixed offsets. `None` for any other frame, which [`decode`] then reads. Where both read a
/// frame, they read the same ends and flags.
pub fn glance(link: u32, data: &[u8]) -> Option<Glance> {
    /// [IEEE 802.3] destination (6), source (6), EtherType (2).
    const ETHERNET_HEADER: usize = 14;
    /// [RFC 9293] 3.1: the flags are in the 14th byte of the header.
    const TCP_FLAGS: usize = 13;
    const TCP_SYN: u8 = 0x02;
    const TCP_ACK: u8 = 0x10;
    use linktype::*;
    let (ip_version, ip) = match link {
        ETHERNET => (
            match u16::from_be_bytes([*data.get(12)?, *data.get(13)?]) {
                0x0800 => 4,
                0x86dd => 6,
                _ => return None,
            },
            data.get(ETHERNET_HEADER..)?,
        ),
        RAW | DLT_RAW_12 | DLT_RAW_14 | IPV4 | IPV6 => (*data.first()? >> 4, data),
        _ => return None,
    };
    // The TCP bytes captured, and the length the IP header gives them.
    let (src_ip, dst_ip, tcp, length) = match ip_version {
        4 => {
            // [RFC 791] 3.1: version and IHL, protocol at 9, flags and fragment offset at 6.
            let first = *ip.first()?;
            let ihl = usize::from(first & 0x0f) * 4;
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
            if first >> 4 != 4 || ihl < 20 || fragment != 0 || *ip.get(9)? != 6 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                IpAddr::from(src),
                IpAddr::from(dst),
                ip.get(ihl..)?,
                total.checked_sub(ihl)?,
            )
        }
        6 => {
            // [RFC 8200] 3: version, next header at 6 (TCP itself, no extension header), 40 bytes.
            if *ip.first()? >> 4 != 6 || *ip.get(6)? != 6 {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), ip.get(40..)?, payload)
        }
        _ => return None,
    };
    // A header whose data offset is below its minimum, or past the bytes captured, is left to the decoder.
    let header = usize::from(*tcp.get(12)? >> 4) * 4;
    if header < 20 || tcp.len() < header || length < header {
        return None;
    }
    let flags = *tcp.get(TCP_FLAGS)?;
    Some(Glance {
        src: SocketAddr::new(src_ip, u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?])),
        dst: SocketAddr::new(dst_ip, u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?])),
        syn: flags & TCP_SYN != 0,
        ack: flags & TCP_ACK != 0,
    })
}

/// A UDP datagram as the capture holds it (not a fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

/// The UDP datagram of a frame captured on a link of type `link`, if it carries one whole.
pub fn udp(link: u32, data: &[u8]) -> Option<Datagram<'_>> {
    let sliced = slice(link, data)?;
    let (src_ip, dst_ip, fragmented) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.payload().fragmented,
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload().fragmented,
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    match sliced.transport {
        Some(TransportSlice::Udp(udp)) if !fragmented => Some(Datagram {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            payload: udp.payload(),
        }),
        _ => None,
    }
}

/// The frame's headers down to the transport, for the link types rdptrace reads.
fn slice(link: u32, data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    use linktype::*;
    match link {
        ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
        RAW | DLT_RAW_12 | DLT_RAW_14 | IPV4 | IPV6 => LaxSlicedPacket::from_ip(data).ok(),
        NULL | LOOP => loopback(link, data),
        // [LINKTYPE_LINUX_SLL] packet type (2), ARPHRD (2), address length (2), address (8), protocol (2).
        LINUX_SLL => data.get(16..).and_then(|rest| {
            let proto = u16::from_be_bytes([*data.get(14)?, *data.get(15)?]);
            Some(LaxSlicedPacket::from_ether_type(EtherType(proto), rest))
        }),
        // [LINKTYPE_LINUX_SLL2] protocol (2), reserved (2), interface index (4), ARPHRD (2), packet
        // type (1), address length (1), address (8).
        LINUX_SLL2 => data.get(20..).and_then(|rest| {
            let proto = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
            Some(LaxSlicedPacket::from_ether_type(EtherType(proto), rest))
        }),
        _ => None,
    }
}

fn decode_sliced<'a>(
    sliced: Option<LaxSlicedPacket<'a>>,
    data: &'a [u8],
    orig_len: u32,
) -> Frame<'a> {
    let Some(sliced) = sliced else {
        return Frame::Other;
    };
    let Some(net) = &sliced.net else {
        return Frame::Other;
    };
    let (src_ip, dst_ip, payload, ip_id) = match net {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.payload(),
            Some(ip.header().identification()),
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload(),
            None,
        ),
        LaxNetSlice::Arp(_) => return Frame::Other,
    };
    if payload.fragmented {
        return Frame::Other;
    }
    match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let missing = if payload.incomplete {
                orig_len.saturating_sub(u32::try_from(data.len()).unwrap_or(u32::MAX))
            } else {
                0
            };
            Frame::Tcp(Segment {
                src: SocketAddr::new(src_ip, tcp.source_port()),
                dst: SocketAddr::new(dst_ip, tcp.destination_port()),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                syn: tcp.syn(),
                ack_flag: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                ip_id,
                payload: tcp.payload(),
                missing,
            })
        }
        Some(TransportSlice::Icmpv4(icmp)) => match icmp.icmp_type() {
            Icmpv4Type::DestinationUnreachable(h) => {
                quoted(icmp.payload(), src_ip, icmpv4_words(&h)).unwrap_or(Frame::Other)
            }
            _ => Frame::Other,
        },
        Some(TransportSlice::Icmpv6(icmp)) => match icmp.icmp_type() {
            Icmpv6Type::DestinationUnreachable(code) => {
                quoted(icmp.payload(), src_ip, icmpv6_words(code)).unwrap_or(Frame::Other)
            }
            _ => Frame::Other,
        },
        _ => Frame::Other,
    }
}

/// BSD NULL (family in host order of the writer) and LOOP (family in network order).
fn loopback(link: u32, data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    let head: [u8; 4] = data.get(..4)?.try_into().ok()?;
    let family = if link == linktype::LOOP {
        u32::from_be_bytes(head)
    } else {
        let le = u32::from_le_bytes(head);
        if le <= 0xffff {
            le
        } else {
            u32::from_be_bytes(head)
        }
    };
    // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS).
    let ether_type = match family {
        2 => EtherType::IPV4,
        24 | 28 | 30 => EtherType::IPV6,
        _ => return None,
    };
    Some(LaxSlicedPacket::from_ether_type(ether_type, data.get(4..)?))
}

/// The TCP flow an ICMP error quotes: the original IP header and the first 8 bytes of its payload.
fn quoted(payload: &[u8], reporter: IpAddr, what: String) -> Option<Frame<'static>> {
    let inner = LaxSlicedPacket::from_ip(payload).ok()?;
    let net = inner.net.as_ref()?;
    let (src_ip, dst_ip, ip_payload) = match net {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.payload(),
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload(),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    if ip_payload.ip_number != etherparse::IpNumber::TCP {
        return None;
    }
    // The quote holds only 8 bytes of the TCP header, too few for a TCP header parser: the two ports are
    // its first four bytes.
    let mut r = crate::wire::Reader::new(ip_payload.payload);
    let src_port = r.u16_be("quoted source port").ok()?;
    let dst_port = r.u16_be("quoted destination port").ok()?;
    Some(Frame::Unreachable {
        src: SocketAddr::new(src_ip, src_port),
        dst: SocketAddr::new(dst_ip, dst_port),
        reporter,
        what,
    })
}

/// [RFC 792] / [RFC 1812] 5.2.7.1 destination unreachable codes, in words.
fn icmpv4_words(h: &DestUnreachableHeader) -> String {
    let what = match h {
        DestUnreachableHeader::Network | DestUnreachableHeader::NetworkUnknown => {
            "network unreachable"
        }
        DestUnreachableHeader::Host | DestUnreachableHeader::HostUnknown => "host unreachable",
        DestUnreachableHeader::Protocol => "protocol unreachable",
        DestUnreachableHeader::Port => "port unreachable",
        DestUnreachableHeader::FragmentationNeeded { .. } => "fragmentation needed",
        DestUnreachableHeader::NetworkProhibited
        | DestUnreachableHeader::HostProhibited
        | DestUnreachableHeader::FilterProhibited => "administratively prohibited",
        _ => "destination unreachable",
    };
    format!("ICMP {what}")
}

/// [RFC 4443] 3.1 destination unreachable codes, in words.
fn icmpv6_words(code: DestUnreachableCode) -> String {
    let what = match code {
        DestUnreachableCode::NoRoute => "no route to destination",
        DestUnreachableCode::Prohibited | DestUnreachableCode::SourceAddressFailedPolicy => {
            "administratively prohibited"
        }
        DestUnreachableCode::Address => "address unreachable",
        DestUnreachableCode::Port => "port unreachable",
        DestUnreachableCode::RejectRoute => "reject route",
        DestUnreachableCode::BeyondScope => "beyond the scope of the source address",
    };
    format!("ICMPv6 {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(50000, 3389, 1000, 8192)
            .ack(5);
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    /// Wherever [`glance`] reads a frame, [`decode`] reads a TCP segment with the same ends and flags:
    /// frames of each kind the glance reads, and 200,000 of them with bytes changed at random.
    #[test]
    fn a_glance_reads_what_the_decoder_reads() {
        let mut frames = Vec::new();
        for syn in [false, true] {
            let v4 =
                PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(50000, 3389, 7, 8192);
            let v4 = if syn { v4.syn() } else { v4.ack(5) };
            let mut raw = Vec::new();
            v4.write(&mut raw, b"payload").unwrap();
            frames.push((linktype::RAW, raw.clone()));
            frames.push((linktype::IPV4, raw.clone()));
            let mut eth = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
            eth.extend_from_slice(&raw);
            frames.push((linktype::ETHERNET, eth));
            let v6 = PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv6([0xfe; 16], [0x20; 16], 64)
                .tcp(3389, 40000, 9, 1024);
            let v6 = if syn { v6.syn().ack(1) } else { v6.fin() };
            let mut out = Vec::new();
            v6.write(&mut out, b"x").unwrap();
            frames.push((linktype::RAW, out[14..].to_vec()));
            frames.push((linktype::ETHERNET, out));
        }
        let same = |link: u32, data: &[u8]| {
            let Some(g) = glance(link, data) else {
                return true;
            };
            match decode(link, data, u32::try_from(data.len()).unwrap()) {
                Frame::Tcp(seg) => {
                    (seg.src, seg.dst, seg.syn, seg.ack_flag) == (g.src, g.dst, g.syn, g.ack)
                }
                _ => false,
            }
        };
        for (link, data) in &frames {
            assert!(glance(*link, data).is_some(), "{link} {data:02x?}");
            assert!(same(*link, data), "{link} {data:02x?}");
        }
        for start in 1..=5u64 {
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(start);
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            for _ in 0..40_000 {
                let (link, data) = &frames[(next() % frames.len() as u64) as usize];
                let mut data = data.clone();
                for _ in 0..=next() % 3 {
                    // The bytes the two read: the link and IP headers and TCP's first 20.
                    let at = (next() % 74) as usize % data.len();
                    data[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    data.truncate((next() % data.len() as u64) as usize);
                }
                assert!(same(*link, &data), "{link} {data:02x?}");
            }
        }
    }

    #[test]
    fn loopback_both_byte_orders() {
        let ip = tcp_v4(b"abc");
        for head in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut frame = head.to_vec();
            frame.extend_from_slice(&ip);
            let Frame::Tcp(seg) = decode(linktype::NULL, &frame, frame.len() as u32) else {
                panic!("not tcp");
            };
            assert_eq!(seg.payload, b"abc");
            assert_eq!(seg.dst.port(), 3389);
        }
    }

    #[test]
    fn sll2_and_cut_packet() {
        let ip = tcp_v4(b"abcdef");
        let mut frame = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        frame.extend_from_slice(&ip);
        let full = frame.len() as u32;
        frame.truncate(frame.len() - 2);
        let Frame::Tcp(seg) = decode(linktype::LINUX_SLL2, &frame, full) else {
            panic!("not tcp");
        };
        assert_eq!(seg.payload, b"abcd");
        assert_eq!(seg.missing, 2);
    }

    #[test]
    fn garbage_is_other() {
        assert_eq!(decode(linktype::ETHERNET, &[1, 2, 3], 3), Frame::Other);
        assert_eq!(decode(linktype::RAW, &[0x45, 0, 0], 3), Frame::Other);
        assert_eq!(decode(9999, &[0x45, 0, 0], 3), Frame::Other);
    }

    #[test]
    fn qinq_sll_loop_and_raw_ipv6() {
        use etherparse::{LinuxSllPacketType, VlanId};
        let vlan = |v| VlanId::try_new(v).unwrap();
        let mut qinq = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(vlan(100), vlan(77))
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(50000, 3389, 1, 100)
            .write(&mut qinq, b"qinq")
            .unwrap();
        let Frame::Tcp(seg) = decode(linktype::ETHERNET, &qinq, qinq.len() as u32) else {
            panic!("not tcp");
        };
        assert_eq!(seg.payload, b"qinq");

        let mut sll = Vec::new();
        PacketBuilder::linux_sll(LinuxSllPacketType::HOST, 6, [0; 8])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(50000, 3389, 1, 100)
            .write(&mut sll, b"sll")
            .unwrap();
        let Frame::Tcp(seg) = decode(linktype::LINUX_SLL, &sll, sll.len() as u32) else {
            panic!("not tcp");
        };
        assert_eq!(seg.payload, b"sll");

        let mut v6 = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(50000, 3389, 1, 100)
            .write(&mut v6, b"six")
            .unwrap();
        for link in [linktype::RAW, linktype::IPV6] {
            let Frame::Tcp(seg) = decode(link, &v6, v6.len() as u32) else {
                panic!("not tcp");
            };
            assert_eq!(seg.payload, b"six");
            assert!(seg.dst.is_ipv6());
        }
        // OpenBSD LOOP: AF_INET6 (24) in network order.
        let mut lo = vec![0, 0, 0, 24];
        lo.extend_from_slice(&v6);
        assert!(matches!(
            decode(linktype::LOOP, &lo, lo.len() as u32),
            Frame::Tcp(_)
        ));
    }

    #[test]
    fn icmpv6_unreachable_quotes_the_flow() {
        let mut syn = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(50000, 3389, 1, 100)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        let mut icmp = Vec::new();
        PacketBuilder::ipv6([9; 16], [1; 16], 64)
            .icmpv6(Icmpv6Type::DestinationUnreachable(
                DestUnreachableCode::Address,
            ))
            .write(&mut icmp, &syn[..48])
            .unwrap();
        match decode(linktype::RAW, &icmp, icmp.len() as u32) {
            Frame::Unreachable { src, dst, what, .. } => {
                assert_eq!(src.port(), 50000);
                assert_eq!(dst.port(), 3389);
                assert_eq!(what, "ICMPv6 address unreachable");
            }
            other => panic!("{other:?}"),
        }
    }
}
