//! `cargo bench --features synth`: throughput of TCP reassembly and the passive dissector, the replay end to end, and the
//! probe's full handshake against the built-in target. See BENCHMARKS.md (and bench/compare.sh for the
//! comparison with tshark and xfreerdp).
//!
//! The captures come from the generator (`rdptrace::synth`), written under `target/bench/` once per run.

use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rdptrace::dissect::Dissector;
use rdptrace::probe::{Credentials, Password, ProbeConfig};
use rdptrace::replay::capture::{Capture, Item};
use rdptrace::replay::keylog::{KeyLog, Source};
use rdptrace::replay::link::{self, Frame};
use rdptrace::replay::reassembly::Stream;
use rdptrace::replay::tls_decrypt::{Decryptor, Secrets};
use rdptrace::serve::{Target, TargetConfig, scenario};
use rdptrace::synth;
use rdptrace::trace::{Millis, Origin, Side, Trace};

/// Bytes of TCP payload in the capture the replay and dissector benchmarks read.
const CAPTURE_SIZE: u64 = 64 << 20;

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&d).expect("target/bench");
    d
}

/// The benchmark capture and its key log (generated once, seed 1).
fn capture() -> (PathBuf, PathBuf) {
    let d = dir();
    let (pcap, keys) = (d.join("criterion.pcapng"), d.join("criterion.keys"));
    if !pcap.exists() || !keys.exists() {
        let opts = synth::Options {
            size: CAPTURE_SIZE,
            secrets: synth::Secrets::KeyLog(keys.clone()),
            ..synth::Options::default()
        };
        synth::generate(&pcap, &opts).expect("generate the capture");
    }
    (pcap, keys)
}

fn secrets(keys: Option<&Path>) -> Arc<Secrets> {
    let mut log = KeyLog::new();
    if let Some(k) = keys {
        let text = std::fs::read_to_string(k).expect("key log");
        log.add_text(&text, Source::File);
    }
    Arc::new(Secrets::new(log))
}

/// The capture's TCP payloads in file order, per connection: (connection, from the client, payload).
struct Flows {
    chunks: Vec<(usize, bool, Vec<u8>)>,
    flows: usize,
    bytes: u64,
}

fn flows(pcap: &Path) -> Flows {
    let bytes = std::fs::read(pcap).expect("capture");
    let mut cap = Capture::from_reader("bench".into(), Box::new(Cursor::new(bytes))).expect("open");
    let mut ids: HashMap<(SocketAddr, SocketAddr), (usize, bool)> = HashMap::new();
    let mut out = Flows {
        chunks: Vec::new(),
        flows: 0,
        bytes: 0,
    };
    while let Some(item) = cap.next_item() {
        let Ok(Item::Packet(p)) = item else { continue };
        let Frame::Tcp(seg) = link::decode(p.link, &p.data, p.orig_len) else {
            continue;
        };
        let key = (seg.src, seg.dst);
        let (id, client_is_src) = match ids.get(&key) {
            Some(v) => *v,
            None => {
                let v = match ids.get(&(seg.dst, seg.src)) {
                    Some((id, _)) => (*id, false),
                    None => (out.flows, true),
                };
                out.flows = out.flows.max(v.0 + 1);
                ids.insert(key, v);
                v
            }
        };
        if !seg.payload.is_empty() {
            out.bytes += seg.payload.len() as u64;
            out.chunks.push((id, client_is_src, seg.payload.to_vec()));
        }
    }
    out
}

/// TCP reassembly of one direction: in-order full-size segments.
fn reassembly(c: &mut Criterion) {
    const TOTAL: usize = 16 << 20;
    let segment = vec![0x17u8; 1460];
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.bench_function("in_order_1460", |b| {
        b.iter(|| {
            let mut s = Stream::new(rdptrace::replay::session::Limits::default().max_pending);
            s.syn(1000);
            let mut seq = 1001u32;
            let mut out = Vec::new();
            let mut delivered = 0usize;
            for _ in 0..TOTAL / segment.len() {
                let in_place = s.segment(seq, &segment, 0, false, &mut out);
                seq = seq.wrapping_add(segment.len() as u32);
                delivered += out.len() + usize::from(in_place.is_some());
                out.clear();
            }
            delivered
        })
    });
    g.finish();
}

/// The passive dissector over every connection of the capture, fed in order (no reassembly, no file):
/// with the key log (TLS records opened, fast-path PDUs read) and without (records framed and counted).
fn dissect(c: &mut Criterion) {
    let (pcap, keys) = capture();
    let flows = flows(&pcap);
    let mut g = c.benchmark_group("dissect");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(flows.bytes));
    for (name, keys) in [("opaque", None), ("keylog", Some(keys.as_path()))] {
        let secrets = secrets(keys);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut ds: Vec<Dissector> = (0..flows.flows)
                    .map(|_| {
                        let mut d = Dissector::new(Trace::new(
                            "bench",
                            Origin::Replay {
                                file: "bench".into(),
                                session: 0,
                            },
                        ));
                        d.set_tls_sink(Box::new(Decryptor::new(Arc::clone(&secrets))));
                        d
                    })
                    .collect();
                for (id, from_client, data) in &flows.chunks {
                    let side = if *from_client {
                        Side::Client
                    } else {
                        Side::Server
                    };
                    if let Some(d) = ds.get_mut(*id) {
                        d.on_tcp_data(side, Millis::default(), data);
                    }
                }
                ds.len()
            })
        });
    }
    g.finish();
}

/// `rdptrace replay` without printing: the capture read from memory or from the file, every session
/// diagnosed.
fn replay(c: &mut Criterion) {
    let (pcap, keys) = capture();
    let size = std::fs::metadata(&pcap).expect("capture").len();
    let bytes: Arc<[u8]> = std::fs::read(&pcap).expect("capture").into();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size));
    for (name, keys) in [("opaque", None), ("keylog", Some(keys.as_path()))] {
        let secrets = secrets(keys);
        g.bench_function(format!("memory_{name}"), |b| {
            b.iter(|| {
                let cap =
                    Capture::from_reader("bench".into(), Box::new(Cursor::new(Arc::clone(&bytes))))
                        .expect("open");
                let mut n = 0usize;
                rdptrace::replay::run(
                    cap,
                    "bench".into(),
                    Arc::clone(&secrets),
                    Default::default(),
                    &Default::default(),
                    &mut |_| n += 1,
                );
                n
            })
        });
        let opts = rdptrace::replay::Options {
            keylog: keys.map(Path::to_path_buf),
            ..Default::default()
        };
        g.bench_function(format!("file_{name}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                rdptrace::replay::replay_each(&pcap, &opts, &mut |_| n += 1).expect("replay");
                n
            })
        });
    }
    g.finish();
}

/// The probe's full handshake (X.224, TLS, CredSSP with NTLM, to the active state) against the built-in
/// target's healthy scenario, both in this process, over loopback.
fn probe(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let scenario = scenario::find("healthy").expect("healthy");
    let config = TargetConfig::new(scenario);
    let identity = config.identity.clone();
    let target = rt.block_on(Target::bind(config)).expect("bind");
    let mut cfg = ProbeConfig::new(&target.local_addr().to_string()).expect("target");
    cfg.credentials = Some(Credentials {
        user: identity.user.clone(),
        domain: None,
        password: Password::new(identity.password().to_owned()),
    });
    cfg.watch = Duration::from_millis(1);
    let mut g = c.benchmark_group("probe");
    g.sample_size(20);
    g.bench_function("handshake_healthy", |b| {
        b.iter(|| {
            rt.block_on(async {
                let server = target.clone();
                let served = tokio::spawn(async move { server.serve_one().await });
                let trace = rdptrace::probe::probe(&cfg).await;
                let _ = served.await;
                assert!(rdptrace::diagnose::diagnose(&trace).ok);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, reassembly, dissect, replay, probe);
criterion_main!(benches);
