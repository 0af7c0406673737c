//! Captures at scale: a flood of unanswered SYNs, many connections open at once, time going backwards, a
//! capture of resets only. Each capture is written here, with real RDP sessions (the fixtures) inside
//! some; `rdptrace replay` runs as a child whose peak resident memory the kernel measures (`wait4`), so
//! that the bounds hold for the program a user runs. The full-size flood (1,000,000 SYNs) is in `bench/`.

mod support;

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::flood::{Flags, Pcap, SERVER, flood, source, tcp};
use support::rdptrace;

/// The replay is killed past this (it takes a few seconds unoptimised).
const SAFETY: Duration = Duration::from_secs(240);
/// The bound on the replay's peak resident memory for the captures of these tests, in KiB.
const MAX_RSS_KIB: u64 = 64 * 1024;

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scale");
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

// ---- running the replay ------------------------------------------------------------------------------

/// How a replay ended.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    killed: bool,
    /// stdout's lines; with `keep`, only those that contain one of its words, else all.
    lines: Vec<String>,
    line_count: u64,
    stderr: String,
    /// ru_maxrss: the peak resident set, in KiB.
    peak_rss_kib: u64,
}

/// Runs `rdptrace replay ARGS`; stdout is read as it comes (counted, and the lines with one of `keep`
/// kept, or all of them when `keep` is empty), so that a large output is never held.
// The child is reaped by `wait4`, which std's `Child::wait` cannot do with the resource usage.
#[allow(clippy::zombie_processes)]
fn replay(args: &[&str], keep: &[&str]) -> Run {
    let err_path = dir().join(format!("stderr-{}", std::process::id()));
    let mut child = rdptrace()
        .arg("replay")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start rdptrace replay");
    let pid = i32::try_from(child.id()).expect("pid");
    let stdout = child.stdout.take().expect("stdout");
    let keep: Vec<String> = keep.iter().map(|s| (*s).to_owned()).collect();
    let reader = std::thread::spawn(move || {
        let (mut lines, mut count) = (Vec::new(), 0u64);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            count += 1;
            if keep.is_empty() || keep.iter().any(|k| line.contains(k.as_str())) {
                lines.push(line);
            }
        }
        (lines, count)
    });
    let end = Instant::now() + SAFETY;
    let mut killed = false;
    // INVARIANT: bounded by SAFETY, then the child is killed and reaped.
    let (status, usage) = loop {
        if let Some(done) = support::wait4(pid, false) {
            break done;
        }
        if Instant::now() > end {
            // Not reaped yet, so the PID is still this child's.
            let _ = child.kill();
            killed = true;
            break support::wait4(pid, true).expect("reap the killed replay");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (lines, line_count) = reader.join().expect("stdout reader");
    Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        killed,
        lines,
        line_count,
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(u64::MAX),
    }
}

fn bounded(run: &Run, what: &str) {
    bounded_by(run, what, MAX_RSS_KIB);
}

fn bounded_by(run: &Run, what: &str, max_kib: u64) {
    assert!(
        !run.killed,
        "{what}: the replay did not end within {SAFETY:?}"
    );
    assert!(
        run.code.is_some(),
        "{what}: the replay ended by a signal: {}",
        run.stderr
    );
    assert!(
        run.peak_rss_kib < max_kib,
        "{what}: peak resident memory {} KiB, over {max_kib} KiB",
        run.peak_rss_kib
    );
}

// ---- the tests ---------------------------------------------------------------------------------------

/// A flood of 200,000 SYNs with two real sessions in it: one line says what the flood was, the two
/// sessions are reported whole, the text is short, and memory stays small, on one thread and on several.
#[test]
fn a_flood_is_one_line_and_the_sessions_in_it_are_whole() {
    let path = dir().join("flood.pcap");
    flood(&path, 200_000, false, 0, false);
    let file = path.to_str().expect("path");
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let run = replay(&[file, "--threads", threads], &[]);
        bounded(&run, "text");
        let text = run.lines.join("\n");
        assert!(
            text.contains(
                "200,000 connection attempts from 200,000 sources to 10.0.0.1:3389, none answered while rdptrace followed them (a scan or a flood)"
            ),
            "{text}"
        );
        assert!(run.line_count < 400, "{} lines:\n{text}", run.line_count);
        // The denied session failed: its timeline is printed; the healthy one has its summary line.
        assert!(
            text.contains("verdict: failed in licensing: the server reported an error"),
            "{text}"
        );
        assert!(text.contains("active           connected"), "{text}");
        outputs.push(text);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "one thread and two report the same, in the same order"
    );
}

/// The same flood as JSON: one document per connection, streamed, with the two sessions whole.
#[test]
fn a_flood_as_json_is_a_document_per_connection() {
    let path = dir().join("flood-json.pcap");
    flood(&path, 200_000, false, 0, false);
    let run = replay(&[path.to_str().expect("path"), "--json"], &["\"pdus\":[{"]);
    bounded(&run, "json");
    assert_eq!(run.line_count, 200_002, "{}", run.stderr);
    let sessions: Vec<serde_json::Value> = run
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON document"))
        .filter(|v: &serde_json::Value| {
            v["phases"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["bytes_in"].as_u64() > Some(0)))
        })
        .collect();
    let verdicts: Vec<(bool, String)> = sessions
        .iter()
        .map(|s| {
            (
                s["verdict"]["ok"].as_bool().unwrap_or(false),
                s["verdict"]["cause"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(verdicts.iter().any(|(ok, _)| *ok), "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .any(|(ok, c)| !ok && c == "server_error_info"),
        "{verdicts:?}"
    );
}

/// Time that goes backwards: every other SYN an hour older than the one before. The replay ends, says the
/// capture is not in time order, and still reports the sessions whole.
#[test]
fn time_going_backwards_is_noted_and_changes_nothing_else() {
    let path = dir().join("backwards.pcap");
    flood(&path, 20_000, true, 0, false);
    let run = replay(&[path.to_str().expect("path")], &[]);
    bounded(&run, "backwards");
    let text = run.lines.join("\n");
    assert!(
        run.stderr.contains("the capture is not in time order"),
        "{}",
        run.stderr
    );
    assert!(
        text.contains("20,000 connection attempts from 20,000 sources to 10.0.0.1:3389"),
        "{text}"
    );
    assert!(
        text.contains("verdict: failed in licensing: the server reported an error"),
        "{text}"
    );
}

/// 100,000 connections open at once, each sending a byte now and then: bounded time and memory, and the
/// summary says what was dropped to stay within the flow table.
#[test]
fn many_open_connections_trickling_bytes_stay_bounded() {
    let path = dir().join("trickle.pcap");
    let mut pcap = Pcap::create(&path);
    let n = 100_000u32;
    let mut t = Duration::from_secs(1_700_000_000);
    for i in 0..n {
        let c = source(i);
        pcap.packet(t, &tcp(c, SERVER, 1000, 0, Flags::Syn, &[]));
        pcap.packet(t, &tcp(SERVER, c, 5000, 1001, Flags::SynAck, &[]));
        pcap.packet(t, &tcp(c, SERVER, 1001, 5001, Flags::Ack, &[]));
        t += Duration::from_micros(20);
    }
    // A TPKT header, a byte at a time, round after round.
    for (round, byte) in [3u8, 0, 0].into_iter().enumerate() {
        for i in 0..n {
            let seq = 1001 + u32::try_from(round).expect("round");
            pcap.packet(t, &tcp(source(i), SERVER, seq, 5001, Flags::Ack, &[byte]));
            t += Duration::from_micros(20);
        }
    }
    pcap.finish();
    let run = replay(&[path.to_str().expect("path"), "--threads", "1"], &[]);
    // The flow table's bound: 65,536 open sessions, a few KiB each.
    bounded_by(&run, "trickle", 512 * 1024);
    let text = run.lines.join("\n");
    // Those that made room before carrying data, and the sessions: each connection once.
    assert!(
        text.starts_with("34,464 connection attempts from 34,464 sources to 10.0.0.1:3389, connected and carried no data"),
        "{text}"
    );
    assert!(
        text.contains("\n65,536 sessions from 65,536 sources to 10.0.0.1:3389 failed in tcp"),
        "{text}"
    );
    assert!(
        run.stderr.contains("34464 connection(s) that carried no data were settled early to stay within 65536 open connections"),
        "the drops are said: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("103392 later packet(s) of the connections settled early were not read"),
        "{}",
        run.stderr
    );
    assert!(run.line_count < 400, "{} lines:\n{text}", run.line_count);
}

/// A capture of resets only (of connections that started before it): nothing to report, said plainly.
#[test]
fn a_capture_of_resets_only_says_there_is_no_session() {
    let path = dir().join("resets.pcap");
    let mut pcap = Pcap::create(&path);
    let mut t = Duration::from_secs(1_700_000_000);
    for i in 0..100_000u32 {
        pcap.packet(t, &tcp(SERVER, source(i), i, 0, Flags::Rst, &[]));
        t += Duration::from_micros(10);
    }
    pcap.finish();
    let run = replay(&[path.to_str().expect("path")], &[]);
    bounded(&run, "resets");
    let text = run.lines.join("\n");
    assert!(text.contains("no RDP"), "{text}\n{}", run.stderr);
    assert!(run.line_count < 20, "{text}");
}
