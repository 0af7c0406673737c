//! The threaded replay reads every capture as the replay on one thread does: the same sessions, in the
//! same order, with the same traces, verdicts and notes, on two workers and on three (more than this
//! machine's cores, as a rule): a plain file read through memory maps, and the same file compressed,
//! read through a buffer.
//!
//! The captures: a flood with two real sessions in it, the public captures of `../shared` with their
//! published keys, and, with the `synth` feature (`cargo test --features synth --test threads`),
//! generated ones: sessions of every template with their TLS secrets in the file (the workers wait at
//! each Decryption Secrets Block), the same without secrets, and with a flood among them.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use rdptrace::fuzzing;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rdptrace-threads-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Everything a replay says, as one text ([`fuzzing::replay_reading`]).
fn reading(path: &Path, threads: usize, rsa_keys: &[PathBuf]) -> String {
    fuzzing::replay_reading(path, threads, rsa_keys).expect("replay")
}

/// `path` compressed with gzip, in the tests' own directory.
fn gzipped(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir().join(format!("copy-{n}.gz"));
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&out).expect("create"),
        flate2::Compression::fast(),
    );
    gz.write_all(&std::fs::read(path).expect("read"))
        .expect("compress");
    gz.finish().expect("finish");
    out
}

/// One thread, and two and three workers, read `path` alike; and two workers its compressed copy.
fn reads_alike(path: &Path, rsa_keys: &[PathBuf]) {
    let one = reading(path, 1, rsa_keys);
    for workers in [2, 3] {
        let several = reading(path, workers, rsa_keys);
        assert!(
            one == several,
            "{}: one thread and {workers} workers differ:\n{}",
            path.display(),
            fuzzing::first_difference(&one, &several)
        );
    }
    if path.extension().is_some_and(|e| e == "gz" || e == "cap") {
        // Compressed, or a Network Monitor file: read through a buffer already.
        return;
    }
    let compressed = gzipped(path);
    let fed = reading(&compressed, 2, rsa_keys);
    let _ = std::fs::remove_file(&compressed);
    // The compressed copy has its own name.
    let fed = fed.replace(
        &compressed.display().to_string(),
        &path.display().to_string(),
    );
    assert!(
        one == fed,
        "{}: one thread and two workers reading it compressed differ:\n{}",
        path.display(),
        fuzzing::first_difference(&one, &fed)
    );
}

#[test]
fn a_flood_reads_alike_on_one_thread_and_on_several() {
    let d = dir();
    let path = d.join("flood.pcap");
    support::flood::flood(&path, 20_000, false, 50, true);
    reads_alike(&path, &[]);
    let backwards = d.join("backwards.pcap");
    support::flood::flood(&backwards, 20_000, true, 50, false);
    reads_alike(&backwards, &[]);
}

#[cfg(feature = "synth")]
#[test]
fn generated_captures_read_alike_on_one_thread_and_on_several() {
    use rdptrace::synth::{self, Secrets};
    let d = dir();
    // The long one is read through windows grown past their least length by the workers' reader
    // (`Mapped::for_workers`), with records across their edges.
    for (name, secrets, flood, size) in [
        ("embedded", Secrets::Embedded, 0, 3 << 20),
        ("opaque", Secrets::None, 0, 3 << 20),
        ("flood", Secrets::Embedded, 3_000, 3 << 20),
        ("long", Secrets::Embedded, 0, 14 << 20),
    ] {
        let path = d.join(format!("{name}.pcapng"));
        let manifest = synth::generate(
            &path,
            &synth::Options {
                size,
                seed: 11,
                secrets,
                concurrent: 12,
                bulk: (16 << 10, 64 << 10),
                flood,
                ..synth::Options::default()
            },
        )
        .expect("generate");
        assert!(manifest.total_sessions() > 20, "{manifest:?}");
        reads_alike(&path, &[]);
    }
}

#[test]
fn public_captures_read_alike_on_one_thread_and_on_several() {
    let Some(shared) = support::shared_dir() else {
        support::require(false, "../shared (the public captures)");
        return;
    };
    let public = shared.join("captures/public");
    let mut files = Vec::new();
    let mut stack = vec![public.clone()];
    // INVARIANT: a directory tree of a few dozen files, read once.
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let p = entry.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if p.is_dir() {
                stack.push(p);
            } else if [".pcap", ".pcapng", ".cap", ".pcap.gz"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let relative = file
            .strip_prefix(&public)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or_default()
            .to_owned();
        let keys: Vec<PathBuf> = support::PUBLIC_KEYS
            .iter()
            .filter(|(capture, _)| *capture == relative)
            .map(|(_, key)| public.join("keys").join(key))
            .collect();
        reads_alike(&file, &keys);
    }
}
