//! Broken captures: truncated anywhere, packets cut by a snap length, interfaces of unknown link types,
//! key logs with garbage lines. Each gets a clear error or a note, and the sessions that can be read are
//! still reported.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdptrace::probe::{Credentials, Password, ProbeConfig};
use rdptrace::replay::{self, Options, Replay};
use rdptrace::serve::{Target, TargetConfig, scenario};
use rdptrace::trace::{EventKind, PhaseName, PhaseStatus};
use rdptrace::verdict::Cause;
use support::{TempDir, block_on};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn replay_bytes(dir: &Path, name: &str, bytes: &[u8], opts: &Options) -> Replay {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the capture");
    replay::replay(&path, opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The blocks of a little-endian pcapng: (type, whole block).
fn blocks(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 12 {
        let kind = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        assert!(
            len >= 12 && len <= rest.len(),
            "a block of {len} bytes in the fixture"
        );
        out.push((kind, rest[..len].to_vec()));
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "bytes after the last block");
    out
}

const IDB: u32 = 1;
const EPB: u32 = 6;
const DSB: u32 = 10;

/// A block of `kind` around `body` (padded to 4 bytes).
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// An Enhanced Packet Block of `epb` with its data cut to `snaplen` bytes (the original length kept).
fn cut_epb(epb: &[u8], snaplen: usize) -> Vec<u8> {
    let caplen = u32::from_le_bytes(epb[20..24].try_into().unwrap()) as usize;
    let keep = caplen.min(snaplen);
    let mut body = epb[8..28].to_vec();
    body[12..16].copy_from_slice(&(keep as u32).to_le_bytes());
    body.extend_from_slice(&epb[28..28 + keep]);
    block(EPB, &body)
}

#[test]
fn a_capture_cut_at_any_byte_is_an_error_or_fewer_sessions_never_a_panic() {
    let dir = TempDir::new("broken-truncated");
    for name in ["healthy.pcapng", "denied-connection.pcapng"] {
        let whole = fixture(name);
        let full = replay_bytes(dir.path(), name, &whole, &Options::default());
        assert!(full.error.is_none(), "{name}: {:?}", full.error);
        assert_eq!(full.sessions.len(), 1, "{name}");
        let mut errors = 0;
        let mut cuts = 0;
        // Every byte of the headers, then every seventh byte (a cut lands in every field of every block).
        for cut in (0..64).chain((64..whole.len()).step_by(7)) {
            cuts += 1;
            let r = replay::replay(
                &{
                    let p = dir.path().join("cut.pcapng");
                    std::fs::write(&p, &whole[..cut]).expect("write the cut capture");
                    p
                },
                &Options::default(),
            );
            match r {
                // Too short to tell what the file is.
                Err(e) => {
                    assert!(cut < 32, "{name} cut at {cut}: {e}");
                    assert!(!e.to_string().is_empty());
                }
                Ok(r) => {
                    assert!(r.sessions.len() <= 1, "{name} cut at {cut}");
                    if let Some(e) = &r.error {
                        errors += 1;
                        assert!(
                            e.to_string().contains("cut.pcapng"),
                            "{name} cut at {cut}: {e}"
                        );
                    }
                }
            }
        }
        // Every cut that is not at a block boundary is reported as an error.
        let boundaries = blocks(&whole).len();
        assert!(
            errors >= cuts - boundaries - 32,
            "{name}: only {errors} of {cuts} cuts were reported"
        );
    }
}

#[test]
fn packets_cut_by_a_snap_length_leave_gaps_and_the_session() {
    let dir = TempDir::new("broken-snaplen");
    let whole = fixture("denied-connection.pcapng");
    let mut cut = Vec::new();
    let mut shortened = 0;
    for (kind, b) in blocks(&whole) {
        if kind == EPB {
            let caplen = u32::from_le_bytes(b[20..24].try_into().unwrap());
            shortened += usize::from(caplen > 80);
            cut.extend_from_slice(&cut_epb(&b, 80));
        } else {
            cut.extend_from_slice(&b);
        }
    }
    assert!(
        shortened > 3,
        "the fixture has few packets longer than 80 bytes"
    );
    let r = replay_bytes(dir.path(), "snaplen.pcapng", &cut, &Options::default());
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.sessions.len(), 1);
    let t = &r.sessions[0].trace;
    let gaps = t
        .events()
        .filter(|(_, e)| matches!(e.kind, EventKind::Gap { .. }))
        .count();
    assert!(gaps > 0, "no gap recorded for the cut packets");
    // The Connection Confirm fits in 80 bytes; what comes after the first gap of a direction is not read,
    // and the verdict says so instead of looking complete.
    assert!(
        t.pdus()
            .any(|(_, p)| matches!(p.info, rdptrace::pdu::PduInfo::X224ConnectionConfirm { .. })),
        "no Connection Confirm"
    );
    let v = &r.sessions[0].verdict;
    assert!(
        v.detail
            .contains("the capture misses bytes from the tcp phase on"),
        "{}",
        v.detail
    );
    assert!(
        v.evidence.iter().any(|e| e.contains("the capture misses")),
        "{:?}",
        v.evidence
    );
    assert!(
        v.hints.iter().any(|h| h.contains("tcpdump -s 0")),
        "{:?}",
        v.hints
    );
}

#[test]
fn an_interface_of_an_unknown_link_type_is_skipped_and_the_others_reported() {
    let dir = TempDir::new("broken-link");
    let whole = fixture("denied-connection.pcapng");
    let original = replay_bytes(dir.path(), "original.pcapng", &whole, &Options::default());
    let mut mixed = Vec::new();
    let mut added = false;
    for (kind, b) in blocks(&whole) {
        mixed.extend_from_slice(&b);
        if kind == IDB && !added {
            added = true;
            // Interface 1: LINKTYPE_USB_LINUX (189), snap length 0, then two of its packets.
            let mut idb = Vec::new();
            idb.extend_from_slice(&189u16.to_le_bytes());
            idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            mixed.extend_from_slice(&block(IDB, &idb));
            for _ in 0..2 {
                let mut epb = Vec::new();
                epb.extend_from_slice(&1u32.to_le_bytes());
                epb.extend_from_slice(&[0; 8]);
                epb.extend_from_slice(&48u32.to_le_bytes());
                epb.extend_from_slice(&48u32.to_le_bytes());
                epb.extend_from_slice(&[0x5a; 48]);
                mixed.extend_from_slice(&block(EPB, &epb));
            }
        }
    }
    assert!(added);
    let r = replay_bytes(dir.path(), "mixed.pcapng", &mixed, &Options::default());
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.sessions.len(), 1);
    assert_eq!(
        r.sessions[0].verdict.cause, original.sessions[0].verdict.cause,
        "{:?}",
        r.sessions[0].verdict
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("2 packet(s) skipped") && n.contains("link type 189")),
        "{:?}",
        r.notes
    );
}

/// Probes the healthy built-in target, writing a capture without secrets and a separate key log.
fn probe_with_keylog(dir: &Path) -> (PathBuf, PathBuf) {
    let s = scenario::find("healthy").expect("the healthy scenario");
    let pcap = dir.join("healthy.pcapng");
    let keylog = dir.join("keys.log");
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
        cfg.watch = Duration::from_millis(200);
        cfg.pcap = Some(pcap.clone());
        cfg.keylog = Some(keylog.clone());
        let trace = rdptrace::probe::probe(&cfg).await;
        served.abort();
        assert!(rdptrace::diagnose::diagnose(&trace).ok, "the probe failed");
    });
    (pcap, keylog)
}

#[test]
fn a_key_log_with_garbage_lines_still_decrypts() {
    let dir = TempDir::new("broken-keylog");
    let (pcap, keylog) = probe_with_keylog(dir.path());
    let good = std::fs::read_to_string(&keylog).expect("read the key log");
    assert!(good.contains("CLIENT_"), "{good}");

    // Without the key log the inside of TLS is known only from the sizes of its records.
    let blind = replay::replay(&pcap, &Options::default()).expect("replay");
    assert_eq!(blind.sessions.len(), 1);
    assert!(
        blind.sessions[0].verdict.inferred.is_some(),
        "{:?}",
        blind.sessions[0].verdict
    );

    let messy = dir.path().join("messy.log");
    let mut text = String::from("# a comment\nCLIENT_RANDOM nothex zz\nnot a key log line\n");
    text.push_str("\u{fffd}\u{1}\u{2} binary\n");
    text.push_str(&good);
    text.push_str("CLIENT_RANDOM 00\n");
    std::fs::write(&messy, text).expect("write the key log");
    let opts = Options {
        keylog: Some(messy.clone()),
        ..Options::default()
    };
    let r = replay::replay(&pcap, &opts).expect("replay with the key log");
    assert_eq!(r.sessions.len(), 1);
    let v = &r.sessions[0].verdict;
    assert!(v.ok, "{v:?}");
    assert_eq!(v.cause, Cause::Connected);
    assert!(v.inferred.is_none(), "decrypted, not inferred: {v:?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("messy.log")
                && n.contains("4 line(s) that are not NSS key log lines")),
        "{:?}",
        r.notes
    );

    // A key log of garbage alone is a clear error before any reading.
    let junk = dir.path().join("junk.log");
    std::fs::write(&junk, "hello\nworld\n").expect("write the junk");
    let opts = Options {
        keylog: Some(junk),
        ..Options::default()
    };
    let e = replay::replay(&pcap, &opts).expect_err("a key log without secrets");
    assert!(
        e.to_string()
            .ends_with("no TLS secrets in this key log (NSS key log format expected)"),
        "{e}"
    );
}

#[test]
fn a_capture_whose_key_log_block_is_garbage_is_replayed_without_it() {
    let dir = TempDir::new("broken-dsb");
    let whole = fixture("healthy.pcapng");
    let mut garbled = Vec::new();
    let mut replaced = 0;
    for (kind, b) in blocks(&whole) {
        if kind == DSB {
            replaced += 1;
            let mut body = b[8..16].to_vec();
            let junk = b"CLIENT_RANDOM zz\n\xff\xfe\x00garbage\n";
            body[4..8].copy_from_slice(&(junk.len() as u32).to_le_bytes());
            body.extend_from_slice(junk);
            garbled.extend_from_slice(&block(DSB, &body));
        } else {
            garbled.extend_from_slice(&b);
        }
    }
    assert_eq!(replaced, 1, "the fixture embeds one key log");
    let r = replay_bytes(dir.path(), "garbled.pcapng", &garbled, &Options::default());
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.sessions.len(), 1);
    // The TLS handshake is still read; what is inside is known only from the sizes of its records.
    let t = &r.sessions[0].trace;
    assert_eq!(t.phase(PhaseName::Tls).status, PhaseStatus::Ok);
    assert!(
        r.sessions[0].verdict.inferred.is_some(),
        "{:?}",
        r.sessions[0].verdict
    );
}

/// The packets of a capture file and the error it ends with.
fn packets(path: &Path) -> (usize, Option<String>) {
    use rdptrace::replay::capture::{Capture, Item};
    let mut capture = Capture::open(path, None).expect("open");
    let mut n = 0;
    while let Some(item) = capture.next_item() {
        match item {
            Ok(Item::Packet(_)) => n += 1,
            Ok(_) => {}
            Err(e) => return (n, Some(e.to_string())),
        }
    }
    (n, None)
}

/// A pcap file of the packets of a pcapng one (Ethernet, microseconds).
fn as_pcap(ng: &Path, out: &Path) {
    use rdptrace::replay::capture::{Capture, Item};
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&65535u32.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    let mut capture = Capture::open(ng, None).expect("open");
    while let Some(item) = capture.next_item() {
        if let Item::Packet(p) = item.expect("a packet") {
            bytes.extend_from_slice(&(p.ts.as_secs() as u32).to_le_bytes());
            bytes.extend_from_slice(&p.ts.subsec_micros().to_le_bytes());
            bytes.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&p.orig_len.to_le_bytes());
            bytes.extend_from_slice(&p.data);
        }
    }
    std::fs::write(out, bytes).expect("write");
}

#[test]
fn mapped_and_buffered_readings_agree_wherever_the_file_is_cut() {
    let dir = TempDir::new("mapped-buffered");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let ng = root.join("healthy.pcapng");
    let pcap = dir.path().join("healthy.pcap");
    as_pcap(&ng, &pcap);
    let mut checked = 0;
    for whole in [ng, pcap] {
        let bytes = std::fs::read(&whole).expect("read");
        let (packets, error) = packets(&whole);
        assert!(packets > 10 && error.is_none(), "{packets} {error:?}");
        // Read through memory maps (`Capture::open`) and through a buffer (as a gzip-compressed or
        // streamed capture is read): the same packets, blocks and error.
        let agree = |bytes: &[u8]| rdptrace::fuzzing::capture_readings(bytes);
        assert_eq!(agree(&bytes), Ok(()), "{}", whole.display());
        // Cut everywhere in the headers, and every 61 bytes after them.
        let cuts = (0..64).chain((64..bytes.len()).step_by(61));
        for cut in cuts {
            assert_eq!(
                agree(&bytes[..cut]),
                Ok(()),
                "{} cut at {cut}",
                whole.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 200);
}
