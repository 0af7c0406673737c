//! Windows captures as they arrive: Network Monitor `.cap` files read natively, pktmon's pcapng (the same
//! packet once per stack component) and other captures that hold a packet twice, and `--port` for RDP on
//! a port other than 3389.

mod support;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::opt_common::CommonOption;
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::pcapng::blocks::unknown::UnknownBlock;
use pcap_file::pcapng::{Block, PcapNgWriter};
use rdptrace::probe::{Credentials, Password, ProbeConfig};
use rdptrace::replay::capture::{Capture, Item};
use rdptrace::replay::{self, Options, Replay};
use rdptrace::serve::{Target, TargetConfig, scenario};
use rdptrace::trace::{EventKind, Fact, PhaseName};
use rdptrace::verdict::Cause;
use support::{TempDir, block_on, rdptrace};

// ---- helpers ------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// `../shared/captures/public`, or `None` (the test then skips) when it is absent and CI is unset.
fn public() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/public");
    support::require(dir.is_dir(), "../shared/captures/public").then_some(dir)
}

fn read(path: &Path, opts: &Options) -> Replay {
    replay::replay(path, opts).unwrap_or_else(|e| panic!("{e}"))
}

/// Every session's timeline (verbose) and JSON document, with the file's name taken out: what must not
/// change from one container of the same packets to another.
fn essence(r: &Replay) -> String {
    let mut out = String::new();
    for s in &r.sessions {
        let text = rdptrace::report::text::render(
            &s.trace,
            &s.verdict,
            rdptrace::report::text::Options { verbose: true },
        );
        out.push_str(&text);
        out.push_str(&rdptrace::report::json::line(&s.trace, &s.verdict));
        out.push('\n');
    }
    out.replace(&r.file, "[file]")
}

/// Asserts `got == want`, showing the first line that differs.
fn same(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let diff = got
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| format!("line {}:\n got: {g}\nwant: {w}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".to_owned());
    panic!("{what}: {diff}");
}

/// One packet of a capture: time, LINKTYPE_, bytes.
#[derive(Debug, Clone)]
struct Packet {
    ts: Duration,
    link: u32,
    data: Vec<u8>,
}

/// The packets of a capture and the key log text of its Decryption Secrets Blocks.
fn packets_of(path: &Path) -> (Vec<Packet>, String) {
    let mut capture = Capture::open(path, None).expect("open the capture");
    let mut packets = Vec::new();
    let mut keys = String::new();
    while let Some(item) = capture.next_item() {
        match item.expect("a readable capture") {
            Item::Packet(p) => packets.push(Packet {
                ts: p.ts,
                link: p.link,
                data: p.data.to_vec(),
            }),
            Item::Secrets { data, .. } => keys.push_str(&String::from_utf8_lossy(&data)),
            Item::Other => {}
        }
    }
    (packets, keys)
}

/// An IP packet in an Ethernet frame.
fn ether(ip: &[u8]) -> Vec<u8> {
    let ether_type: u16 = if ip.first().is_some_and(|b| b >> 4 == 6) {
        0x86dd
    } else {
        0x0800
    };
    let mut out = vec![
        0x00, 0x15, 0x5d, 0x01, 0x02, 0x03, 0x00, 0x15, 0x5d, 0x0a, 0x0b, 0x0c,
    ];
    out.extend_from_slice(&ether_type.to_be_bytes());
    out.extend_from_slice(ip);
    out
}

// ---- Network Monitor files -----------------------------------------------------------------------------

/// A frame of a Network Monitor file: its media type, time and bytes.
struct NmFrame {
    media: u16,
    ts: Duration,
    data: Vec<u8>,
}

/// A Network Monitor 2.`minor` file as Network Monitor 3.x writes it: a 72-byte header (the start time as
/// a SYSTEMTIME, here the first frame's time to the millisecond, as UTC), the frames, the frame table.
/// Returns the file and where each frame starts and ends.
fn netmon(minor: u8, header_media: u16, frames: &[NmFrame]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let first = frames.first().map(|f| f.ts).unwrap_or_default();
    let start = Duration::from_millis(first.as_millis() as u64);
    let when = time::OffsetDateTime::from_unix_timestamp_nanos(start.as_nanos() as i128).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(b"GMBU");
    out.extend_from_slice(&[minor, 2]);
    out.extend_from_slice(&header_media.to_le_bytes());
    for v in [
        when.year() as u16,
        u8::from(when.month()).into(),
        when.weekday().number_days_from_sunday().into(),
        when.day().into(),
        when.hour().into(),
        when.minute().into(),
        when.second().into(),
        when.millisecond(),
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.resize(72, 0);
    let mut spans = Vec::new();
    for f in frames {
        let at = out.len();
        let delta = (f.ts - start).as_micros() as u64;
        out.extend_from_slice(&delta.to_le_bytes());
        out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&f.data);
        if minor >= 1 {
            out.extend_from_slice(&f.media.to_le_bytes());
        }
        if minor >= 2 {
            out.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        if minor >= 3 {
            let filetime = 116_444_736_000_000_000u64 + (f.ts.as_nanos() / 100) as u64;
            out.extend_from_slice(&filetime.to_le_bytes());
            out.push(0);
        }
        spans.push((at, out.len()));
    }
    let table = out.len() as u32;
    for (at, _) in &spans {
        out.extend_from_slice(&(*at as u32).to_le_bytes());
    }
    out[24..28].copy_from_slice(&table.to_le_bytes());
    out[28..32].copy_from_slice(&((spans.len() * 4) as u32).to_le_bytes());
    (out, spans)
}

/// Network Monitor's own frames at the start of a capture, as Network Monitor writes them: the capture
/// filter and the list of network adapters.
fn metadata(ts: Duration) -> Vec<NmFrame> {
    vec![
        NmFrame {
            media: 0xffff,
            ts,
            data: b"\x00\x00\x00\x00no filter".to_vec(),
        },
        NmFrame {
            media: 0xfffb,
            ts,
            data: vec![1, 0, 0, 0, 0x45, 0x74, 0x68],
        },
    ]
}

/// A capture written as a Network Monitor file: the version, the file, where each frame starts and
/// ends, how many frames precede the packets.
type Version = (&'static str, Vec<u8>, Vec<(usize, usize)>, usize);

/// The Network Monitor versions a capture of raw IP packets (`packets`) is written in here: 2.0 (the
/// header's media type, raw IP), 2.1 (a converted pcap's media type, 0xE000 + LINKTYPE_RAW), 2.2 (raw IP
/// frames in their own media type), 2.3 (Ethernet frames after Network Monitor's own frames, each frame
/// with its UTC time). Returns (name, file, the frame spans, how many frames precede the packets).
fn netmon_versions(packets: &[Packet]) -> Vec<Version> {
    assert!(packets.iter().all(|p| p.link == 101), "raw IP expected");
    let plain = |media: u16| -> Vec<NmFrame> {
        packets
            .iter()
            .map(|p| NmFrame {
                media,
                ts: p.ts,
                data: p.data.clone(),
            })
            .collect()
    };
    let mut v23 = metadata(packets[0].ts);
    v23.extend(packets.iter().map(|p| NmFrame {
        media: 1,
        ts: p.ts,
        data: ether(&p.data),
    }));
    let (f20, s20) = netmon(0, 9, &plain(9));
    let (f21, s21) = netmon(1, 1, &plain(0xe065));
    let (f22, s22) = netmon(2, 1, &plain(9));
    let (f23, s23) = netmon(3, 1, &v23);
    vec![
        ("2.0", f20, s20, 0),
        ("2.1", f21, s21, 0),
        ("2.2", f22, s22, 0),
        ("2.3", f23, s23, 2),
    ]
}

/// The public Network Monitor files give, byte for byte apart from the file's name, what their
/// pcapng copies give (text and JSON, without and with the published key); only a note on stderr tells
/// of the metadata frames the copies dropped.
#[test]
fn public_netmon_files_replay_like_their_pcapng_copies() {
    let Some(dir) = public() else { return };
    let key = dir.join("keys/wireshark-wiki-ws-credssp.key");
    for name in ["win2k19-joined", "TSRemoteGuardCreds"] {
        let cap = dir.join(format!("wireshark-wiki/{name}.cap"));
        let eth = dir.join(format!("wireshark-wiki/{name}.eth.pcapng"));
        for keyed in [false, true] {
            for json in [false, true] {
                let run = |file: &Path| {
                    let mut cmd = rdptrace();
                    cmd.arg("replay").arg(file);
                    if keyed {
                        cmd.arg("--rsa-key").arg(&key);
                    }
                    if json {
                        cmd.arg("--json");
                    }
                    let out = support::output(&mut cmd);
                    let stdout = String::from_utf8_lossy(&out.stdout)
                        .replace(&file.display().to_string(), "[file]");
                    (
                        out.status.code(),
                        stdout,
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )
                };
                let (cap_code, cap_out, cap_err) = run(&cap);
                let (eth_code, eth_out, _) = run(&eth);
                let what = format!("{name} keyed={keyed} json={json}");
                assert_eq!(cap_code, eth_code, "{what}: {cap_err}");
                assert_eq!(cap_out, eth_out, "{what}");
                assert!(cap_out.contains("192.168.122.140:"), "{what}: {cap_out}");
                assert!(
                    cap_err.contains(
                        "rdptrace: note: 2 frame(s) skipped, the first is frame 1: Network Monitor's own records (the capture filter, the list of network adapters)"
                    ),
                    "{what}: {cap_err}"
                );
            }
        }
        // The keyed replay opens the sessions: the Windows server's CredSSP error and the full session.
        let r = read(
            &cap,
            &Options {
                rsa_keys: vec![key.clone()],
                ..Options::default()
            },
        );
        assert_eq!(r.error, None);
        let causes: Vec<Cause> = r.sessions.iter().map(|s| s.verdict.cause).collect();
        assert_eq!(
            causes,
            vec![Cause::CredsspError, Cause::Connected],
            "{name}"
        );
    }
}

/// Network Monitor files of every 2.x version, made from a recorded session, replay as the pcapng it was
/// recorded in does.
#[test]
fn generated_netmon_files_of_every_version_replay_like_the_pcapng() {
    let dir = TempDir::new("netmon-versions");
    for fixture_name in ["healthy.pcapng", "denied-connection.pcapng"] {
        let pcapng = fixture(fixture_name);
        let (packets, keys) = packets_of(&pcapng);
        assert!(!keys.is_empty(), "{fixture_name}: the secrets block");
        let keylog = dir.path().join("keys.log");
        std::fs::write(&keylog, &keys).unwrap();
        // The Network Monitor files take the secrets from a key log file, the pcapng from its block.
        let expected = essence(&read(&pcapng, &Options::default()))
            .replace("pcapng decryption secrets", "key log");
        assert!(expected.contains("Set Error Info") || expected.contains("active"));
        for (version, file, _, _) in netmon_versions(&packets) {
            let path = dir.path().join(format!("{version}.cap"));
            std::fs::write(&path, &file).unwrap();
            let r = read(
                &path,
                &Options {
                    keylog: Some(keylog.clone()),
                    ..Options::default()
                },
            );
            assert_eq!(r.error, None, "{fixture_name} {version}");
            assert_eq!(r.packets, packets.len() as u64, "{fixture_name} {version}");
            same(
                &essence(&r),
                &expected,
                &format!("{fixture_name} {version}"),
            );
            let local = r.notes.iter().any(|n| n.contains("local time"));
            assert_eq!(
                local,
                version != "2.3",
                "{fixture_name} {version}: {:?}",
                r.notes
            );
        }
    }
}

/// A Network Monitor file cut anywhere: a cut inside frame N is an error naming frame N, with the sessions
/// read until then; a cut between frames or in the frame table loses the table, and the frames before
/// the cut are read in file order. Never a panic.
#[test]
fn a_netmon_file_cut_anywhere_names_the_frame_and_keeps_the_sessions() {
    let dir = TempDir::new("netmon-cut");
    let (packets, _) = packets_of(&fixture("denied-connection.pcapng"));
    let versions = netmon_versions(&packets);
    let (_, whole, spans, _) = versions.iter().find(|v| v.0 == "2.3").unwrap();
    let table = spans.last().unwrap().1;
    let path = dir.path().join("cut.cap");
    let full = {
        std::fs::write(&path, whole).unwrap();
        read(&path, &Options::default())
    };
    assert_eq!(full.sessions.len(), 1);
    let mut cut_in_frames = 0;
    for cut in (0..80).chain((80..whole.len()).step_by(5)) {
        std::fs::write(&path, &whole[..cut]).unwrap();
        let r = replay::replay(&path, &Options::default());
        let in_frame = spans.iter().position(|&(a, b)| a < cut && cut < b);
        match r {
            Err(e) => {
                // Too short to be anything, or cut in the header.
                assert!(cut < 64, "cut at {cut}: {e}");
                continue;
            }
            Ok(r) => {
                assert!(r.sessions.len() <= 1, "cut at {cut}");
                match in_frame {
                    Some(k) => {
                        cut_in_frames += 1;
                        let e = r.error.as_ref().unwrap_or_else(|| panic!("cut at {cut}"));
                        assert_eq!(e.packet, Some(k as u64 + 1), "cut at {cut}: {e}");
                        assert!(
                            e.to_string().ends_with(&format!(
                                "cut.cap: packet {}: the file ends in the middle of this frame (truncated capture)",
                                k + 1
                            )),
                            "cut at {cut}: {e}"
                        );
                        // The frames before the cut were read.
                        let whole_before = spans
                            .iter()
                            .filter(|&&(_, b)| b <= cut)
                            .count()
                            .saturating_sub(2);
                        assert_eq!(r.packets, whole_before as u64, "cut at {cut}");
                    }
                    None if cut > spans[0].0 => {
                        assert_eq!(r.error, None, "cut at {cut}");
                        assert!(
                            r.notes.iter().any(|n| n.contains("frame table is missing")),
                            "cut at {cut}: {:?}",
                            r.notes
                        );
                    }
                    None => {}
                }
                if cut >= table {
                    // Every frame is there: the same session.
                    same(&essence(&r), &essence(&full), &format!("cut at {cut}"));
                }
            }
        }
    }
    assert!(cut_in_frames > 100, "{cut_in_frames}");
}

/// Hostile lengths and offsets are errors that name the frame, read in bounded memory.
#[test]
fn hostile_netmon_lengths_are_errors_naming_the_frame() {
    let dir = TempDir::new("netmon-hostile");
    let (packets, _) = packets_of(&fixture("denied-connection.pcapng"));
    let versions = netmon_versions(&packets);
    let (_, whole, spans, _) = versions.iter().find(|v| v.0 == "2.3").unwrap();
    let path = dir.path().join("hostile.cap");
    let check = |bytes: &[u8], frame: u64, detail: &str| {
        std::fs::write(&path, bytes).unwrap();
        let r = read(&path, &Options::default());
        let e = r.error.unwrap_or_else(|| panic!("no error for {detail}"));
        assert_eq!(e.packet, Some(frame), "{e}");
        assert!(e.detail.contains(detail), "{e}");
    };
    // The fifth frame claims 4 GiB.
    let mut big = whole.clone();
    let at = spans[4].0 + 12;
    big[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&big, 5, "a frame of 4294967295 bytes");
    // The sixth frame table entry points past the end of the file.
    let mut outside = whole.clone();
    let entry = spans.last().unwrap().1 + 5 * 4;
    outside[entry..entry + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    check(&outside, 6, "past the end of the file");
    // A frame table of a billion frames does not fit in the file: the frames are read in file order.
    let mut huge = whole.clone();
    huge[28..32].copy_from_slice(&0xffff_fffcu32.to_le_bytes());
    std::fs::write(&path, &huge).unwrap();
    let r = read(&path, &Options::default());
    assert_eq!(r.error, None);
    assert_eq!(r.sessions.len(), 1);
    // Not a Network Monitor version rdptrace reads.
    let mut v3 = whole.clone();
    v3[5] = 3;
    std::fs::write(&path, &v3).unwrap();
    let e = replay::replay(&path, &Options::default()).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("Network Monitor format version 3.3 is not supported (2.0 to 2.3 are)"),
        "{e}"
    );
}

/// The capture fuzz target's Network Monitor seeds (fixtures/fuzz-seeds/capture/) are the fixture
/// captures as Network Monitor 2.3 files, and replay to what the captures say. With
/// `RDPTRACE_WRITE_FUZZ_SEEDS` set they are (re)written.
#[test]
fn netmon_fuzz_seeds_mean_what_the_fixtures_mean() {
    let write = std::env::var_os("RDPTRACE_WRITE_FUZZ_SEEDS").is_some();
    for name in ["healthy", "denied-connection"] {
        let pcapng = fixture(&format!("{name}.pcapng"));
        let (packets, _) = packets_of(&pcapng);
        let versions = netmon_versions(&packets);
        let (_, seed, _, _) = versions.iter().find(|v| v.0 == "2.3").unwrap();
        let file = fixture(&format!("fuzz-seeds/capture/{name}.cap"));
        if write {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, seed).unwrap();
        }
        let committed = std::fs::read(&file).unwrap_or_else(|_| {
            panic!(
                "{} is missing: RDPTRACE_WRITE_FUZZ_SEEDS=1 cargo test --test windows_captures",
                file.display()
            )
        });
        assert_eq!(&committed, seed, "{}: regenerate it", file.display());
        assert!(seed.len() < 65536, "the fuzzer's -max_len");
        let expected = read(&pcapng, &Options::default());
        let (traces, error) = rdptrace::fuzzing::capture(seed);
        assert_eq!(error, None);
        assert_eq!(traces.len(), 1);
        // No secrets in a Network Monitor file: the verdict without them, from the sizes of the records,
        // agrees with the one the key log of the pcapng gives.
        let blind = rdptrace::diagnose::diagnose(&traces[0]);
        assert!(blind.inferred.is_some(), "{name}: {}", blind.detail);
        if let Some(why) = support::agreement::disagreement(&expected.sessions[0].verdict, &blind) {
            panic!("{name}: {why}");
        }
        assert_eq!(
            expected.sessions[0].trace.client_addr,
            traces[0].client_addr
        );
    }
}

// ---- pktmon and other captures that hold a packet twice -------------------------------------------------

/// Probes a scenario of the built-in target and returns the pcapng the probe wrote (secrets embedded).
fn record(scenario_name: &str, dir: &Path) -> PathBuf {
    let s = scenario::find(scenario_name).expect("the scenario");
    let path = dir.join(format!("{scenario_name}.pcapng"));
    block_on(async {
        let config = TargetConfig::new(s);
        let identity = config.identity.clone();
        let target = Target::bind(config).await.expect("bind the target");
        let addr = target.local_addr();
        let server = target.clone();
        let served = tokio::spawn(async move { server.serve_one().await });
        let mut cfg = ProbeConfig::new(&addr.to_string()).expect("the target address");
        cfg.credentials = Some(Credentials {
            user: identity.user.clone(),
            domain: None,
            password: Password::new(identity.password().to_owned()),
        });
        cfg.timeout = Duration::from_secs(20);
        cfg.phase_timeout = Duration::from_secs(3);
        s.probe.apply(&mut cfg);
        cfg.watch = Duration::from_millis(200);
        cfg.pcap = Some(path.clone());
        cfg.embed_secrets = true;
        let _ = rdptrace::probe::probe(&cfg).await;
        served.abort();
    });
    path
}

/// The stack components a packet passes on its way, as pktmon names them (one interface each in the
/// pcapng that `pktmon etl2pcap` writes).
const COMPONENTS: [&str; 4] = [
    "Microsoft Hyper-V Network Adapter",
    "WFP Native MAC Layer LightWeight Filter",
    "Hyper-V Virtual Switch Extension Adapter",
    "TCPIP",
];

/// What pktmon writes for a session: one Ethernet interface per component; each packet logged on two to
/// four of them (outbound from TCPIP down, inbound from the adapter up) with the same timestamp or a
/// microsecond or two apart, the copies of packets logged in the same microsecond interleaved; each
/// logged packet with pktmon's comment. `extra` packets (real retransmissions) are merged in by time,
/// and logged like the others. Returns the file's bytes and how many copies beyond the first it holds.
fn pktmon(packets: &[Packet], keys: &str, extra: &[Packet]) -> (Vec<u8>, u64) {
    let client_port = src_port(&packets[0]);
    let section = SectionHeaderBlock {
        endianness: pcap_file::Endianness::Little,
        ..SectionHeaderBlock::default()
    };
    let mut w = PcapNgWriter::with_section_header(Vec::new(), section).unwrap();
    for (i, name) in COMPONENTS.iter().enumerate() {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(format!("{i}"))),
                InterfaceDescriptionOption::IfDescription(Cow::Borrowed(name)),
            ],
        })
        .unwrap();
    }
    let mut value = Vec::new();
    value.extend_from_slice(&0x544c_534bu32.to_le_bytes());
    value.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    value.extend_from_slice(keys.as_bytes());
    while value.len() % 4 != 0 {
        value.push(0);
    }
    w.write_block(&Block::Unknown(UnknownBlock {
        type_: 0x0a,
        length: (value.len() + 12) as u32,
        value: Cow::Owned(value),
    }))
    .unwrap();

    let mut all: Vec<(usize, &Packet)> = packets.iter().chain(extra).enumerate().collect();
    all.sort_by_key(|(i, p)| (p.ts, *i));
    // Packets logged in the same microsecond pass the components together: their copies interleave.
    let mut copies = 0;
    let mut group: Vec<(usize, &Packet)> = Vec::new();
    let mut flush = |group: &mut Vec<(usize, &Packet)>, w: &mut PcapNgWriter<Vec<u8>>| {
        let seen: Vec<usize> = group.iter().map(|(i, _)| 2 + i % 3).collect();
        let most = seen.iter().copied().max().unwrap_or(0);
        for step in 0..most {
            for ((i, p), n) in group.iter().zip(&seen) {
                if step >= *n {
                    continue;
                }
                // The client's packets go down from TCPIP, the server's come up from the adapter.
                let outbound = src_port(p) == client_port;
                let component = if outbound { 3 - step } else { step };
                let frame = ether(&p.data);
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: component as u32,
                    timestamp: p.ts + Duration::from_micros((step as u64).div_ceil(2)),
                    original_len: frame.len() as u32,
                    data: Cow::Owned(frame.clone()),
                    options: vec![EnhancedPacketOption::Common(CommonOption::Comment(Cow::Owned(format!(
                        "PktGroupId {}, PktNumber 1, Appearance {}, Direction {}, Type Ethernet, Component {component}, Edge 1, Filter 1, OriginalSize {len}, LoggedSize {len}",
                        0x1000 + i,
                        step + 1,
                        if outbound { "Tx" } else { "Rx" },
                        len = frame.len()
                    ))))],
                })
                .unwrap();
                if step > 0 {
                    copies += 1;
                }
            }
        }
        group.clear();
    };
    for (i, p) in all {
        if group.last().is_some_and(|(_, q)| q.ts != p.ts) {
            flush(&mut group, &mut w);
        }
        group.push((i, p));
    }
    flush(&mut group, &mut w);
    (w.into_inner(), copies)
}

/// The TCP source port of a raw IPv4 packet.
fn src_port(p: &Packet) -> u16 {
    u16::from_be_bytes([p.data[20], p.data[21]])
}

/// The same raw IPv4 packet with another identification (what a real retransmission gets) at `ts`.
fn retransmitted(p: &Packet, ts: Duration) -> Packet {
    let mut data = p.data.clone();
    let id = u16::from_be_bytes([data[4], data[5]]).wrapping_add(0x101);
    data[4..6].copy_from_slice(&id.to_be_bytes());
    // The IPv4 header checksum, again.
    data[10..12].copy_from_slice(&[0, 0]);
    let mut sum = 0u32;
    for pair in data[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    data[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    Packet {
        ts,
        link: p.link,
        data,
    }
}

/// A session recorded by the probe against the built-in target, written again as pktmon would have logged
/// it, replays to the same verdict; the copies are counted and dropped, a real retransmission (the same
/// SYN a second after an unanswered first one, the client's first data again 300 ms later) is not.
#[test]
fn a_pktmon_capture_replays_like_the_session_it_logged() {
    let dir = TempDir::new("pktmon");
    for scenario_name in ["healthy", "denied-connection"] {
        let original = record(scenario_name, dir.path());
        let (packets, keys) = packets_of(&original);
        let expected = read(&original, &Options::default());
        assert_eq!(expected.sessions.len(), 1, "{scenario_name}");
        assert_eq!(expected.duplicates, 0);

        let (bytes, copies) = pktmon(&packets, &keys, &[]);
        let path = dir.path().join(format!("{scenario_name}-pktmon.pcapng"));
        std::fs::write(&path, &bytes).unwrap();
        let r = read(&path, &Options::default());
        assert!(copies > packets.len() as u64, "{copies}");
        assert_eq!(r.duplicates, copies, "{scenario_name}");
        assert_eq!(r.sessions.len(), 1);
        // The first copy of each packet is logged at the packet's time: with the copies dropped, the
        // same timeline to the microsecond, the same facts, the same verdict.
        same(&essence(&r), &essence(&expected), scenario_name);
        let (got, want) = (&r.sessions[0], &expected.sessions[0]);
        let pdus = |s: &replay::Session| -> Vec<String> {
            s.trace
                .pdus()
                .map(|(_, p)| format!("{:?} {}", p.from, p.name))
                .collect()
        };
        assert_eq!(pdus(got), pdus(want), "{scenario_name}");
        assert!(
            got.trace
                .events()
                .all(|(_, e)| !matches!(e.kind, EventKind::Gap { .. }))
        );

        // Real retransmissions: the SYN a second before (unanswered, another IPv4 identification); the
        // client's first data again 300 ms after it was sent, with the same identification (stacks that
        // set it to 0 do that); the server's first data again 2 ms after it was sent (a fast
        // retransmission), with a new identification.
        let syn = &packets[0];
        let data_from = |port: u16| {
            packets
                .iter()
                .find(|p| src_port(p) == port && p.data.len() > 40)
                .unwrap()
        };
        let early_syn = Packet {
            ts: syn.ts - Duration::from_secs(1),
            ..retransmitted(syn, syn.ts)
        };
        let client_data = data_from(src_port(syn));
        let late = Packet {
            ts: client_data.ts + Duration::from_millis(300),
            ..client_data.clone()
        };
        let server_data = data_from(u16::from_be_bytes([syn.data[22], syn.data[23]]));
        let fast = retransmitted(server_data, server_data.ts + Duration::from_millis(2));
        let (bytes, copies) = pktmon(&packets, &keys, &[early_syn, late, fast]);
        std::fs::write(&path, &bytes).unwrap();
        let r = read(&path, &Options::default());
        assert_eq!(
            r.duplicates, copies,
            "{scenario_name}: only the copies are dropped"
        );
        let s = &r.sessions[0];
        assert_eq!(
            s.trace
                .phase(PhaseName::Tcp)
                .facts
                .get(Fact::SynRetransmissions),
            Some(&serde_json::Value::from(1)),
            "{scenario_name}"
        );
        assert_eq!(s.verdict.cause, want.verdict.cause, "{scenario_name}");
        assert_eq!(pdus(s), pdus(want), "{scenario_name}");
    }
}

/// Linux captures that hold every packet twice: the copies are dropped and counted; the four real
/// retransmissions of freerdp-client-krb5.pcapng (20 ms later, new IPv4 identifications) are not.
#[test]
fn linux_captures_with_every_packet_twice() {
    let Some(dir) = public() else { return };
    let r = read(
        &dir.join("zeek/rdp-no-cookie-mstshash.pcap"),
        &Options::default(),
    );
    // 20 TCP packets, each captured twice.
    assert_eq!(r.duplicates, 10);
    assert_eq!(r.sessions.len(), 1);
    let r = read(
        &dir.join("wireshark-wiki/freerdp-client-krb5.pcapng"),
        &Options {
            rsa_keys: vec![dir.join("keys/wireshark-wiki-ws-credssp.key")],
            ..Options::default()
        },
    );
    // 2755 TCP packets: 1377 of them seen twice, 4 of those retransmitted rather than copied.
    assert_eq!(r.duplicates, 1373);
    assert_eq!(r.sessions.len(), 1);
    let out = support::output(
        rdptrace()
            .arg("replay")
            .arg(dir.join("zeek/rdp-no-cookie-mstshash.pcap")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("10 duplicate packet(s) dropped: the same packet (addresses, sequence numbers, IP identification, payload) captured again within 5 ms"),
        "{text}"
    );
}

// ---- --port ---------------------------------------------------------------------------------------------

/// A classic pcap (microseconds) of Ethernet frames.
fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    buf.extend_from_slice(&2u16.to_le_bytes());
    buf.extend_from_slice(&4u16.to_le_bytes());
    buf.extend_from_slice(&[0; 8]);
    buf.extend_from_slice(&65535u32.to_le_bytes());
    buf.extend_from_slice(&1u32.to_le_bytes());
    for (us, data) in frames {
        let ts = 1_700_000_000_000_000 + us;
        buf.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        buf.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        buf.extend_from_slice(data);
    }
    buf
}

/// An Ethernet / IPv4 / TCP frame; `flags` from "S", "SA", "A", "FA", "RA".
fn tcp(src: &str, dst: &str, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src.parse().unwrap(), dst.parse().unwrap())
    else {
        panic!("IPv4 only");
    };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// [2.2.1.1] X.224 Connection Request and [2.2.1.2] Connection Confirm (RDP_NEG_FAILURE
/// SSL_REQUIRED_BY_SERVER), in TPKTs.
fn x224(request: bool) -> Vec<u8> {
    let body: Vec<u8> = if request {
        let mut b = vec![0xe0, 0, 0, 0, 0, 0];
        b.extend_from_slice(b"Cookie: mstshash=port\r\n");
        b.extend_from_slice(&[1, 0, 8, 0, 0, 0, 0, 0]);
        b
    } else {
        vec![0xd0, 0, 0, 0x12, 0x34, 0, 3, 0, 8, 0, 1, 0, 0, 0]
    };
    let len = 5 + body.len();
    let mut out = vec![3, 0, (len >> 8) as u8, len as u8, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// A SYN answered by a RST on port 3390, the same on 3391, and an RDP session on 3390 that carries data.
fn port_capture() -> Vec<u8> {
    let server = "10.0.0.2:3390";
    let cr = x224(true);
    let cc = x224(false);
    pcap(&[
        (0, tcp("10.0.0.1:40001", server, 100, 0, "S", &[])),
        (300, tcp(server, "10.0.0.1:40001", 0, 101, "RA", &[])),
        (
            1_000,
            tcp("10.0.0.1:40002", "10.0.0.2:3391", 200, 0, "S", &[]),
        ),
        (
            1_300,
            tcp("10.0.0.2:3391", "10.0.0.1:40002", 0, 201, "RA", &[]),
        ),
        (2_000_000, tcp("10.0.0.1:40003", server, 1000, 0, "S", &[])),
        (
            2_001_000,
            tcp(server, "10.0.0.1:40003", 5000, 1001, "SA", &[]),
        ),
        (
            2_001_100,
            tcp("10.0.0.1:40003", server, 1001, 5001, "A", &[]),
        ),
        (
            2_002_000,
            tcp("10.0.0.1:40003", server, 1001, 5001, "A", &cr),
        ),
        (
            2_003_000,
            tcp(
                server,
                "10.0.0.1:40003",
                5001,
                1001 + cr.len() as u32,
                "A",
                &cc,
            ),
        ),
        (
            2_004_000,
            tcp(
                server,
                "10.0.0.1:40003",
                5001 + cc.len() as u32,
                1001 + cr.len() as u32,
                "FA",
                &[],
            ),
        ),
    ])
}

/// `--port 3390`: the refused connection to 3390 is an RDP session too; 3391, not named, is not.
#[test]
fn named_ports_make_a_refused_connection_an_rdp_session() {
    let dir = TempDir::new("ports");
    let path = dir.path().join("port-3390.pcap");
    std::fs::write(&path, port_capture()).unwrap();

    let r = read(&path, &Options::default());
    assert_eq!(r.sessions.len(), 1, "only the session that carried data");
    assert_eq!(r.sessions[0].trace.target, "10.0.0.2:3390");
    assert_eq!(r.sessions[0].verdict.cause, Cause::NegotiationFailure);

    let r = read(
        &path,
        &Options {
            ports: vec![3390],
            ..Options::default()
        },
    );
    assert_eq!(r.sessions.len(), 2);
    let refused = &r.sessions[0];
    assert_eq!(refused.trace.client_addr.as_deref(), Some("10.0.0.1:40001"));
    assert_eq!(refused.trace.target, "10.0.0.2:3390");
    assert_eq!(refused.verdict.cause, Cause::Refused);
    assert_eq!(refused.verdict.phase, Some(PhaseName::Tcp));
    assert_eq!(r.sessions[1].verdict.cause, Cause::NegotiationFailure);

    // On the command line, repeatable.
    let out = support::output(
        rdptrace()
            .args(["replay", "--port", "3390", "--port", "5000"])
            .arg(&path),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    assert_eq!(summary.len(), 2, "{text}");
    assert!(
        summary[0].contains("10.0.0.1:40001 -> 10.0.0.2:3390") && summary[0].ends_with("refused"),
        "{text}"
    );
    let out = support::output(rdptrace().args(["replay", "--port", "0"]).arg(&path));
    assert_eq!(out.status.code(), Some(2));
}
