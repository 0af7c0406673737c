//! The benchmarks' capture generator (`rdptrace-synth`, behind the `synth` feature: `cargo test --features
//! synth --test synth`): a small capture replays to exactly the sessions it was made of, each with the
//! verdict of the recorded session it copies, and with the key log every bulk record is opened.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rdptrace::replay::{Options, replay};
use rdptrace::synth::{self, Secrets};
use rdptrace::trace::PhaseName;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rdptrace-synth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// (phase, cause) of a replayed session.
fn outcome(s: &rdptrace::replay::Session) -> String {
    format!(
        "{:?} {:?} ok={}",
        s.verdict.phase, s.verdict.cause, s.verdict.ok
    )
}

fn generated_matches_templates(secrets: Secrets, dir: &std::path::Path) {
    let capture = dir.join("small.pcapng");
    let opts = synth::Options {
        size: 2 << 20,
        seed: 7,
        secrets: secrets.clone(),
        concurrent: 8,
        bulk: (32 << 10, 96 << 10),
        ..synth::Options::default()
    };
    let manifest = synth::generate(&capture, &opts).expect("generate");
    assert!(manifest.total_sessions() > 10, "{manifest:?}");
    assert!(manifest.bulk_updates > 0, "{manifest:?}");

    // What each template replays to on its own.
    let mut alone = BTreeMap::new();
    for (name, bytes) in synth::template_files() {
        let path = dir.join(format!("{name}.pcapng"));
        std::fs::write(&path, bytes).expect("write template");
        let r = replay(&path, &Options::default()).expect("replay template");
        assert_eq!(r.sessions.len(), 1, "{name}");
        alone.insert(name.to_owned(), outcome(&r.sessions[0]));
    }
    alone.insert(
        synth::REFUSED.to_owned(),
        "Some(Tcp) Refused ok=false".to_owned(),
    );
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (name, n) in &manifest.sessions {
        if *n > 0 {
            *want.entry(alone[name].clone()).or_default() += n;
        }
    }

    let keylog = match &secrets {
        Secrets::KeyLog(p) => Some(p.clone()),
        _ => None,
    };
    let r = replay(
        &capture,
        &Options {
            keylog,
            ..Options::default()
        },
    )
    .expect("replay");
    assert!(r.error.is_none(), "{:?}", r.error);
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let mut updates = 0;
    for s in &r.sessions {
        *got.entry(outcome(s)).or_default() += 1;
        // The first few are kept as PDUs, the rest tallied.
        for phase in PhaseName::ALL {
            let p = s.trace.phase(phase);
            updates += p
                .tallies
                .iter()
                .filter(|t| t.name == "Fast-Path Output")
                .map(|t| t.count)
                .sum::<u64>();
            updates += p
                .pdus
                .iter()
                .filter(|p| p.name == "Fast-Path Output")
                .count() as u64;
        }
    }
    assert_eq!(got, want);
    // Every bulk record opened with the session's own key log entry, and none else were taken for one.
    assert_eq!(updates, manifest.bulk_updates);
}

#[test]
fn generated_capture_replays_to_its_templates_verdicts_with_a_key_log() {
    let d = dir("keylog");
    generated_matches_templates(Secrets::KeyLog(d.join("small.keys")), &d);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn generated_capture_replays_to_its_templates_verdicts_with_embedded_secrets() {
    let d = dir("embedded");
    generated_matches_templates(Secrets::Embedded, &d);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn generation_is_deterministic() {
    let d = dir("seed");
    let opts = synth::Options {
        size: 1 << 20,
        seed: 3,
        secrets: Secrets::Embedded,
        concurrent: 4,
        bulk: (32 << 10, 64 << 10),
        ..synth::Options::default()
    };
    synth::generate(&d.join("a.pcapng"), &opts).expect("generate");
    synth::generate(&d.join("b.pcapng"), &opts).expect("generate");
    let a = std::fs::read(d.join("a.pcapng")).expect("read");
    let b = std::fs::read(d.join("b.pcapng")).expect("read");
    assert!(a == b, "two captures from one seed differ");
    let _ = std::fs::remove_dir_all(&d);
}
