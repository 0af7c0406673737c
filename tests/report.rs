//! `rdptrace report` on real stored results: shards of a fleet run over the built-in target, found by
//! `--shard auto` from each scheduler's variables, merged into the summary of the whole run; the HTML page
//! rendered by headless Chromium; memory that does not grow with the number of results; lines that are
//! not results.

mod support;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::*;

const PASSWORD: &str = "report-test-password";

/// `rdptrace serve --scenario NAME` on a free loopback port.
fn serve(scenario: &str) -> (ChildGuard, SocketAddr) {
    let mut child = rdptrace()
        .args(["serve", "--scenario", scenario, "--listen", "127.0.0.1:0"])
        .env("RDPTRACE_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rdptrace serve");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    (guard, addr)
}

/// The summary's counting lines (not the failing targets, whose sources differ between runs).
fn counts(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            l.starts_with("summary:")
                || l.starts_with("  by phase:")
                || l.starts_with("  by cause:")
        })
        .map(str::to_owned)
        .collect()
}

fn report(args: &[&Path], extra: &[&str]) -> Output {
    output(rdptrace().arg("report").args(args).args(extra))
}

fn junit_names(path: &Path) -> (usize, usize, Vec<String>) {
    let xml = std::fs::read_to_string(path).unwrap();
    let r = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let mut names: Vec<String> = r.test_suites[0]
        .test_cases
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    names.sort();
    (r.tests, r.failures, names)
}

#[test]
fn shards_found_by_each_scheduler_merge_into_the_whole_run() {
    let dir = TempDir::new("report-shards");
    let servers: Vec<(ChildGuard, SocketAddr)> = [
        "healthy",
        "denied-connection",
        "neg-hybrid-required",
        "cert-expired",
        "nla-logon-failure",
    ]
    .iter()
    .map(|s| serve(s))
    .collect();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut targets = String::new();
    for (i, (_, addr)) in servers.iter().enumerate() {
        targets.push_str(&format!("{addr} name=t{i} user=rdptrace\n"));
    }
    targets.push_str(&format!("{dead} name=dead\n"));
    targets.push_str(&format!(
        "{} name=expects user=rdptrace expect=phase=licensing,errinfo=0x7\n",
        servers[1].1
    ));
    let targets_file = dir.path().join("targets.txt");
    std::fs::write(&targets_file, targets).unwrap();
    let probe = |env: &[(&str, &str)], out: &Path| -> Output {
        let mut cmd = rdptrace();
        cmd.args(["probe", "--json", "--watch", "0.2", "--targets"])
            .arg(&targets_file)
            .env("RDPTRACE_PASSWORD", PASSWORD)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("CI_NODE_INDEX")
            .env_remove("CI_NODE_TOTAL")
            .env_remove("RDPTRACE_SHARD_INDEX")
            .env_remove("RDPTRACE_SHARD_COUNT")
            .stdout(std::fs::File::create(out).unwrap());
        if !env.is_empty() {
            cmd.args(["--shard", "auto"]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = output(&mut cmd);
        assert!(
            !matches!(o.status.code(), Some(1 | 2)),
            "{env:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let whole = dir.path().join("whole.jsonl");
    let whole_run = probe(&[], &whole);
    // One shard per scheduler: a Kubernetes Indexed Job, a GitLab parallel job, a GitHub matrix job.
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard-{i}.jsonl")))
        .collect();
    probe(
        &[("JOB_COMPLETION_INDEX", "0"), ("RDPTRACE_SHARD_COUNT", "3")],
        &shards[0],
    );
    probe(
        &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")],
        &shards[1],
    );
    probe(
        &[("RDPTRACE_SHARD_INDEX", "2"), ("RDPTRACE_SHARD_COUNT", "3")],
        &shards[2],
    );
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&whole), 7);
    assert_eq!(
        shards.iter().map(|s| lines(s)).collect::<Vec<_>>(),
        [3, 2, 2],
        "targets 1,4,7 / 2,5 / 3,6"
    );
    // The report of the whole run says what the run said.
    let whole_report = report(&[&whole], &[]);
    let run_summary = String::from_utf8_lossy(&whole_run.stderr).into_owned();
    let whole_summary = String::from_utf8_lossy(&whole_report.stdout).into_owned();
    assert_eq!(
        counts(&whole_summary),
        counts(&run_summary),
        "{whole_summary}"
    );
    // The run's code is its first failing target's in input order (t1, licensing); the report's, which
    // reads results in the order they finished, the smallest failing code (dead, tcp).
    assert_eq!(whole_run.status.code(), Some(18));
    assert_eq!(whole_report.status.code(), Some(10));
    // The merged shards say the same, with one JUnit case per target.
    let junit = dir.path().join("merged.xml");
    let html = dir.path().join("merged.html");
    let shard_paths: Vec<&Path> = shards.iter().map(PathBuf::as_path).collect();
    let merged = report(
        &shard_paths,
        &[
            "--junit",
            junit.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    let merged_summary = String::from_utf8_lossy(&merged.stdout).into_owned();
    assert_eq!(
        counts(&merged_summary),
        counts(&run_summary),
        "{merged_summary}"
    );
    assert!(
        merged_summary.contains("summary: 7 targets, 3 passed, 4 failed"),
        "{merged_summary}"
    );
    for want in [
        "licensing server_error_info",
        "x224 negotiation_failure",
        "credssp credssp_error",
        "tcp refused",
    ] {
        assert!(merged_summary.contains(want), "{want}: {merged_summary}");
    }
    assert_eq!(merged.status.code(), Some(10), "{merged_summary}");
    let whole_junit = dir.path().join("whole.xml");
    report(&[&whole], &["--junit", whole_junit.to_str().unwrap()]);
    let (tests, failures, names) = junit_names(&junit);
    assert_eq!((tests, failures), (7, 4));
    assert_eq!(names, junit_names(&whole_junit).2);
    assert!(names.contains(&"expects".to_owned()), "{names:?}");
    assert!(!dir.path().join("merged.xml.partial").exists());
    assert!(!dir.path().join("merged.html.partial").exists());
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<section").count(), 7);
    assert!(!page.contains(PASSWORD));
}

/// Results of a few kinds, as the files people keep: demo (probe) documents and a replay.
fn sample_results(dir: &Path) -> PathBuf {
    let mut lines = String::new();
    for scenario in ["healthy", "denied-connection", "nla-logon-failure"] {
        let o = output(rdptrace().args(["demo", scenario, "--json"]));
        let text = String::from_utf8_lossy(&o.stdout);
        // demo prints a header line or two before its document.
        let doc = text
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("{text}"));
        lines.push_str(doc);
        lines.push('\n');
    }
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/denied-connection.pcapng");
    let o = output(rdptrace().arg("replay").arg(&capture).arg("--json"));
    lines.push_str(&String::from_utf8_lossy(&o.stdout));
    let path = dir.join("results.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

#[test]
fn the_html_page_renders_in_chromium_with_the_failing_phase_marked() {
    if !require(
        has_program("chromium"),
        "chromium (Debian package chromium)",
    ) {
        return;
    }
    let dir = TempDir::new("report-html");
    let results = sample_results(dir.path());
    let html = dir.path().join("report.html");
    let o = report(&[&results], &["--html", html.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(13),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing to fetch.
    for bad in ["<script", "<link", "src=", "url(", "@import", "https://"] {
        assert!(!page.contains(bad), "the page holds {bad}");
    }
    assert_eq!(page.matches("<svg").count(), 4);
    assert!(page.contains("session 1"), "the replayed session is named");
    let shot = dir.path().join("shot.png");
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let (w, h) = (1000u32, 1200u32);
    let mut chromium = Command::new("chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard(chromium.spawn().expect("start chromium"));
    let start = std::time::Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "chromium hangs");
        std::thread::sleep(Duration::from_millis(100));
    }
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (w, h), "the window's size");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels: Vec<(u8, u8, u8)> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| (p[0], p[1], p[2]))
        .collect();
    let near = |p: &(u8, u8, u8), c: (u8, u8, u8)| {
        p.0.abs_diff(c.0) < 16 && p.1.abs_diff(c.1) < 16 && p.2.abs_diff(c.2) < 16
    };
    let white = pixels.iter().filter(|p| near(p, (255, 255, 255))).count();
    assert!(white < pixels.len() * 98 / 100, "the page rendered blank");
    // The bars: green for the phases that completed, red for the one that failed.
    let green = pixels
        .iter()
        .filter(|p| near(p, (0x43, 0xa0, 0x47)))
        .count();
    let red = pixels
        .iter()
        .filter(|p| near(p, (0xe5, 0x39, 0x35)))
        .count();
    assert!(
        green > 200,
        "{green} green pixels: no completed phase drawn"
    );
    assert!(
        red > 20,
        "{red} red pixels: the failing phase is not marked"
    );
}

/// Memory does not grow with the number of results: 40 times more results, the same peak.
#[test]
// The child is reaped by `wait4`, which std's `Child::wait` cannot do with the resource usage.
#[allow(clippy::zombie_processes)]
fn memory_is_bounded_by_the_summary_not_the_results() {
    let dir = TempDir::new("report-memory");
    let o = output(rdptrace().args(["demo", "healthy", "--json"]));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let doc = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap()
        .to_owned();
    let peak = |n: usize| -> u64 {
        let path = dir.path().join(format!("big-{n}.jsonl"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for _ in 0..n {
            std::io::Write::write_all(&mut f, doc.as_bytes()).unwrap();
            std::io::Write::write_all(&mut f, b"\n").unwrap();
        }
        drop(f);
        let html = dir.path().join(format!("big-{n}.html"));
        let junit = dir.path().join(format!("big-{n}.xml"));
        let child = rdptrace()
            .arg("report")
            .arg(&path)
            .arg("--html")
            .arg(&html)
            .arg("--junit")
            .arg(&junit)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (status, usage) = support::wait4(pid, true).expect("reap rdptrace report");
        assert_eq!(status, 0, "rdptrace report of {n} results");
        std::mem::forget(child);
        u64::try_from(usage.ru_maxrss).unwrap()
    };
    let small = peak(100);
    let large = peak(4000);
    let file_mib = (doc.len() * 4000) / (1024 * 1024);
    assert!(file_mib >= 30, "the large input is {file_mib} MiB");
    assert!(
        large < small + 8 * 1024,
        "peak {large} KiB for 4000 results against {small} KiB for 100 ({file_mib} MiB of input)"
    );
}

#[test]
fn lines_that_are_not_results_are_named() {
    let dir = TempDir::new("report-bad");
    let results = dir.path().join("mixed.jsonl");
    let o = output(rdptrace().args(["demo", "healthy", "--json"]));
    let doc = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap()
        .to_owned();
    std::fs::write(&results, format!("{doc}\n\nnot json\n")).unwrap();
    let o = report(&[&results], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mixed.jsonl:3: not JSON"), "{err}");
    let scan = dir.path().join("scan.jsonl");
    std::fs::write(&scan, "{\"schema\":\"rdptrace-scan/1\"}\n").unwrap();
    let o = report(&[&scan], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("schema rdptrace-scan/1, not rdptrace/1"),
        "{o:?}"
    );
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let o = report(&[&empty], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no results in"));
    let o = report(&[&dir.path().join("missing.jsonl")], &[]);
    assert_eq!(o.status.code(), Some(1));
}
