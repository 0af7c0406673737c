//! The fuzz targets' inputs as ordinary tests.
//!
//! - `fixtures/fuzz-regressions/<target>/`: every input that once crashed, hung or blew up a fuzz target,
//!   replayed through the same entry point of `rdptrace::fuzzing`.
//! - `fixtures/fuzz-seeds/<target>/`: the seed corpora derived from the captures in `fixtures/`, checked
//!   to still mean what they meant (a seed replays to the capture's verdict). Regenerate them with
//!   `RDPTRACE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_regressions`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rdptrace::dissect::{Decrypted, Dissector, TlsRecordSink};
use rdptrace::fuzzing::{self, chunk, dissect_tag, tcp_tag, tls_tag};
use rdptrace::replay::capture::{Capture, Item, SECRETS_TLS_KEY_LOG};
use rdptrace::replay::keylog::{KeyLog, Source};
use rdptrace::replay::link::{self, Frame};
use rdptrace::replay::tls_decrypt::{Decryptor, Secrets};
use rdptrace::trace::{CloseKind, Origin, PhaseName, Side, Trace};

/// A fuzz target's entry point.
type Entry = fn(&[u8]);

/// Every fuzz target (the names of `fuzz/fuzz_targets/*.rs`) and its entry point.
const TARGETS: &[(&str, Entry)] = &[
    ("dissect", |d| drop(fuzzing::dissect(d))),
    ("capture", |d| drop(fuzzing::capture(d))),
    ("capture_readings", |d| {
        if let Err(e) = fuzzing::capture_readings(d) {
            panic!("{e}");
        }
    }),
    ("replay_threads", |d| {
        if let Err(e) = fuzzing::replay_threads(d) {
            panic!("{e}");
        }
    }),
    ("tcp", |d| drop(fuzzing::tcp(d))),
    ("tls_records", |d| drop(fuzzing::tls_records(d))),
    ("keylog", |d| {
        let _ = fuzzing::keylog(d);
    }),
    ("probe_frames", |d| drop(fuzzing::probe_frames(d))),
    ("rdp_file", |d| drop(fuzzing::rdp_file(d))),
    ("targets_file", |d| drop(fuzzing::targets_file(d))),
    ("policy", |d| drop(fuzzing::policy(d))),
    ("gateway", |d| drop(fuzzing::gateway(d))),
    ("rpc", |d| {
        let _ = fuzzing::rpc(d);
    }),
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn every_fuzz_target_has_an_entry_point_here() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut names: Vec<String> = files(&dir)
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    let mut known: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    known.sort();
    assert_eq!(names, known);
}

#[test]
fn every_regression_input_runs_through_its_target() {
    let root = fixtures().join("fuzz-regressions");
    let mut ran = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/fuzz-regressions")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for dir in entries {
        assert!(
            dir.is_dir(),
            "{}: regression inputs go in a directory named after their target",
            dir.display()
        );
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some((_, entry)) = TARGETS.iter().find(|(n, _)| *n == name) else {
            panic!("{}: no fuzz target is called {name}", dir.display());
        };
        for file in files(&dir) {
            let data = std::fs::read(&file).expect("read the regression input");
            eprintln!("{}", file.display());
            entry(&data);
            ran += 1;
        }
    }
    assert!(ran > 0, "no regression inputs under {}", root.display());
}

/// Runs every seed through its target too: the seeds are the best-known inputs, they must never fail.
#[test]
fn every_seed_runs_through_its_target() {
    let mut ran = 0;
    for (name, entry) in TARGETS {
        let dirs = match *name {
            "rdp_file" => vec![fixtures().join("rdp")],
            "targets_file" => vec![fixtures().join("targets")],
            "policy" => vec![fixtures().join("policy")],
            "capture" => vec![fixtures()],
            "capture_readings" | "replay_threads" => {
                vec![fixtures(), fixtures().join("fuzz-seeds").join("capture")]
            }
            other => vec![fixtures().join("fuzz-seeds").join(other)],
        };
        for dir in dirs {
            for file in files(&dir) {
                entry(&std::fs::read(&file).expect("read the seed"));
                ran += 1;
            }
        }
    }
    assert!(ran >= 10, "{ran} seeds");
}

// ---- seeds from the fixture captures ---------------------------------------------------------------------

/// One TCP segment of a capture, as the fuzz inputs need it.
struct Seg {
    from_server: bool,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    ms: u64,
    payload: Vec<u8>,
}

/// The segments and the embedded key log of a fixture capture (one connection on loopback, in order).
fn read_fixture(path: &Path) -> (Vec<Seg>, String) {
    let mut capture = Capture::open(path, None).expect("open the fixture");
    let mut segs = Vec::new();
    let mut keylog = String::new();
    let mut client = None;
    while let Some(item) = capture.next_item() {
        match item.expect("the fixture reads") {
            Item::Secrets { kind, data } if kind == SECRETS_TLS_KEY_LOG => {
                keylog.push_str(&String::from_utf8_lossy(&data));
            }
            Item::Secrets { .. } | Item::Other => {}
            Item::Packet(p) => {
                let Frame::Tcp(s) = link::decode(p.link, &p.data, p.orig_len) else {
                    continue;
                };
                let client = *client.get_or_insert(s.src);
                segs.push(Seg {
                    from_server: s.src != client,
                    syn: s.syn,
                    ack: s.ack_flag,
                    fin: s.fin,
                    rst: s.rst,
                    seq: s.seq,
                    ms: u64::try_from(p.ts.as_millis()).unwrap_or(0),
                    payload: s.payload.to_vec(),
                });
            }
        }
    }
    (segs, keylog)
}

/// Every call a sink got: the side, the record, and the answer.
type Calls = Arc<Mutex<Vec<(Side, Vec<u8>, Option<Decrypted>)>>>;

/// A sink that decrypts with the real decryptor and writes down every call.
struct Recording {
    inner: Decryptor,
    calls: Calls,
}

impl TlsRecordSink for Recording {
    fn record(&mut self, from: Side, record: &[u8]) -> Option<Decrypted> {
        let out = self.inner.record(from, record);
        self.calls
            .lock()
            .unwrap()
            .push((from, record.to_vec(), out.clone()));
        out
    }
}

fn side_bit(side: Side) -> u8 {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

/// The dissect target's seed of a capture whose records nobody decrypts (`fixtures/fuzz-seeds/dissect/
/// <capture>-opaque`), which takes the fuzzer into the inference from record sizes.
const OPAQUE: &str = "dissect-opaque";

/// The seeds of every target derived from one fixture capture.
fn seeds_of(path: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let (segs, keylog_text) = read_fixture(path);
    let mut log = KeyLog::new();
    assert!(log.add_text(&keylog_text, Source::Capture).secrets > 0);
    let calls: Calls = Arc::default();
    let mut d = Dissector::new(Trace::new("seed", Origin::Probe));
    d.set_tls_sink(Box::new(Recording {
        inner: Decryptor::new(Arc::new(Secrets::new(log))),
        calls: Arc::clone(&calls),
    }));

    let mut dissect = Vec::new();
    // The same session with every record left undecrypted: the inference from record sizes reads it.
    let mut opaque = Vec::new();
    let mut tcp = Vec::new();
    let mut tls = chunk(tls_tag::KEYLOG, keylog_text.as_bytes());
    let mut frames = Vec::new();
    let mut last_ms = segs.first().map(|s| s.ms).unwrap_or(0);
    for s in &segs {
        let side = if s.from_server {
            Side::Server
        } else {
            Side::Client
        };
        let mut tag = 0;
        for (set, bit) in [
            (s.from_server, tcp_tag::FROM_SERVER),
            (s.syn, tcp_tag::SYN),
            (s.ack, tcp_tag::ACK),
            (s.fin, tcp_tag::FIN),
            (s.rst, tcp_tag::RST),
        ] {
            if set {
                tag |= bit;
            }
        }
        let step = i8::try_from(s.ms.saturating_sub(last_ms)).unwrap_or(i8::MAX);
        last_ms = s.ms;
        let mut body = s.seq.to_le_bytes().to_vec();
        body.extend([0, 0, step.to_le_bytes()[0]]);
        body.extend_from_slice(&s.payload);
        tcp.extend(chunk(tag, &body));

        if !s.payload.is_empty() {
            let before = calls.lock().unwrap().len();
            d.on_tcp_data(side, 0.0, &s.payload);
            let new: Vec<_> = calls.lock().unwrap()[before..].to_vec();
            for (from, record, answer) in &new {
                let bit = side_bit(*from);
                let answer_bytes = answer
                    .as_ref()
                    .map(|a| {
                        let mut v = vec![a.content_type];
                        v.extend_from_slice(&a.data);
                        v
                    })
                    .unwrap_or_default();
                dissect.extend(chunk(dissect_tag::SINK | bit, &answer_bytes));
                opaque.extend(chunk(dissect_tag::SINK | bit, &[]));
                tls.extend(chunk(
                    if *from == Side::Client {
                        tls_tag::CLIENT
                    } else {
                        tls_tag::SERVER
                    },
                    record,
                ));
                if *from == Side::Server
                    && let Some(a) = answer
                    && a.content_type == 23
                {
                    let kind = match (a.data.first(), a.data.len()) {
                        (Some(0x30), _) => 1,
                        (_, 4) => 2,
                        _ => 0,
                    };
                    frames.extend(chunk(kind, &a.data));
                }
            }
            dissect.extend(chunk(dissect_tag::TCP | side_bit(side), &s.payload));
            opaque.extend(chunk(dissect_tag::TCP | side_bit(side), &s.payload));
            if new.is_empty() && s.from_server {
                // Bytes in clear before TLS: the Connection Confirm, a TPKT alone.
                frames.extend(chunk(3, &s.payload));
            }
        }
        if s.fin || s.rst {
            for seed in [&mut dissect, &mut opaque] {
                seed.extend(chunk(
                    dissect_tag::EVENT | side_bit(side),
                    &[if s.rst { 1 } else { 0 }],
                ));
            }
            d.on_close(
                side,
                if s.rst {
                    CloseKind::Rst
                } else {
                    CloseKind::Fin
                },
                0.0,
            );
        }
    }
    vec![
        ("dissect", dissect),
        (OPAQUE, opaque),
        ("tcp", tcp),
        ("tls_records", tls),
        ("keylog", keylog_text.into_bytes()),
        ("probe_frames", frames),
    ]
}

/// The seeds derived from the fixture captures replay to what the captures say; with
/// `RDPTRACE_WRITE_FUZZ_SEEDS` set, they are (re)written to `fixtures/fuzz-seeds/`.
#[test]
fn seeds_derived_from_the_fixture_captures_mean_what_the_captures_mean() {
    let write = std::env::var_os("RDPTRACE_WRITE_FUZZ_SEEDS").is_some();
    let captures: Vec<PathBuf> = files(&fixtures())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    assert!(captures.len() >= 2);
    for path in &captures {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("seed");
        let replay = rdptrace::replay::replay(path, &Default::default()).expect("replay");
        let expected = &replay.sessions[0].verdict;
        for (target, seed) in seeds_of(path) {
            let file = match target {
                OPAQUE => fixtures()
                    .join("fuzz-seeds/dissect")
                    .join(format!("{stem}-opaque")),
                _ => fixtures().join("fuzz-seeds").join(target).join(stem),
            };
            if write {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, &seed).unwrap();
            }
            let committed = std::fs::read(&file).unwrap_or_else(|_| {
                panic!(
                    "{} is missing: RDPTRACE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_regressions",
                    file.display()
                )
            });
            match target {
                "dissect" => {
                    // The seed alone (the plaintext in it, no secrets) replays to what the capture
                    // says: the failed phase and its cause, or the active phase reached.
                    for input in [&seed, &committed] {
                        let (trace, verdict) = fuzzing::dissect(input);
                        if expected.ok {
                            assert!(
                                trace.phase(PhaseName::Active).start_ms.is_some(),
                                "{stem}: {}",
                                verdict.detail
                            );
                        } else {
                            assert_eq!(
                                (verdict.phase, verdict.cause),
                                (expected.phase, expected.cause),
                                "{stem}: {}",
                                verdict.detail
                            );
                        }
                    }
                }
                OPAQUE => {
                    // Without secrets, the sizes of the records give the capture's answer.
                    for input in [&seed, &committed] {
                        let (trace, verdict) = fuzzing::dissect(input);
                        assert!(
                            trace
                                .inference
                                .as_ref()
                                .is_some_and(|i| i.basis.records > 5),
                            "{stem}: {:?}",
                            trace.inference
                        );
                        // As for the keyed seed: the fuzz target settles no close as the replay does,
                        // so a healthy session is one that reached the active state.
                        if expected.ok {
                            assert!(
                                trace.phase(PhaseName::Active).start_ms.is_some(),
                                "{stem}: {}",
                                verdict.detail
                            );
                        } else if let Some(why) =
                            support::agreement::disagreement(expected, &verdict)
                        {
                            panic!("{stem}: {why}");
                        }
                    }
                }
                "tcp" => {
                    let traces = fuzzing::tcp(&committed);
                    assert_eq!(traces.len(), 1, "{stem}");
                    assert!(traces[0].pdus().count() > 5, "{stem}: the session is RDP");
                }
                "tls_records" => {
                    let (opened, facts) = fuzzing::tls_records(&committed);
                    assert!(opened.len() > 5, "{stem}: {facts:?}");
                }
                "keylog" => {
                    let (secrets, bad) = fuzzing::keylog(&committed);
                    assert!(secrets > 0 && bad == 0, "{stem}: {secrets} {bad}");
                }
                "probe_frames" => {
                    let (frames, errors) = fuzzing::probe_frames(&committed);
                    assert!(errors.is_empty(), "{stem}: {errors:?}");
                    assert!(frames.len() > 3, "{stem}");
                }
                _ => unreachable!(),
            }
        }
    }
}

/// The regression inputs that stand for a bug still mean what the fix made of them.
#[test]
fn regression_inputs_keep_their_meaning() {
    let root = fixtures().join("fuzz-regressions");

    // An HTTP server on 3389: its answer is no fast-path header announcing 84 bytes but garbage where a
    // Connection Confirm belongs.
    let data = std::fs::read(root.join("dissect/http-answer-to-connection-request"))
        .expect("read the HTTP input");
    let (_, verdict) = fuzzing::dissect(&data);
    assert_eq!(verdict.phase, Some(PhaseName::X224), "{verdict:?}");
    assert_eq!(
        verdict.cause,
        rdptrace::verdict::Cause::ProtocolError,
        "{verdict:?}"
    );

    // A TPKT header claiming 65535 bytes, trickled: no frame and no error before the bytes come.
    let data = std::fs::read(root.join("probe_frames/tpkt-65535-trickled"))
        .expect("read the trickled TPKT");
    let (frames, errors) = fuzzing::probe_frames(&data);
    assert!(
        frames.is_empty() && errors.is_empty(),
        "{frames:?} {errors:?}"
    );

    // HTTP where a TPKT alone may answer is an error, not a wait for 84 bytes.
    let data = std::fs::read(root.join("probe_frames/http-where-fast-path-may-come"))
        .expect("read the HTTP frames");
    let (_, errors) = fuzzing::probe_frames(&data);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

/// The gateway seeds (a WebSocket tunnel, the HTTP transport with its seed) reach the gateway's answer.
#[test]
fn the_gateway_seeds_reach_the_handshake_response() {
    let seeds = files(&fixtures().join("fuzz-seeds").join("gateway"));
    assert!(seeds.len() >= 2);
    for file in seeds {
        let trace = fuzzing::gateway(&std::fs::read(&file).expect("read the seed"));
        assert!(
            trace
                .pdus()
                .any(|(_, p)| p.name == "HTTP_HANDSHAKE_RESPONSE_PACKET"),
            "{}",
            file.display()
        );
    }
}
