//! A reader that goes away (`rdptrace demo | head -1`) ends the output quietly: every command finishes as
//! it would have, with the same exit code and the same stderr, and never panics.

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rdptrace::serve::TestIdentity;
use support::{ChildGuard, TempDir, free_port, rdptrace};

/// The longest any of these commands runs.
const LIMIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Waits for `child` at most [`LIMIT`]; kills it (by the guard) past that.
fn wait(mut child: ChildGuard, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("wait for rdptrace") {
            return status;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what}: still running after {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run of `args`: its exit status, its stdout (empty when closed) and its stderr.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `args` with stdout read to the end (`closed` false) or with stdout a pipe whose read end is already
/// closed (`closed` true), stderr to a file.
fn run(dir: &Path, args: &[&str], closed: bool) -> Run {
    let tag = if closed { "closed" } else { "read" };
    let out_path = dir.join(format!("{}.{tag}.out", args.join("_").replace('/', "_")));
    let err_path = out_path.with_extension("err");
    let mut cmd = rdptrace();
    cmd.args(args)
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    if closed {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        cmd.stdout(writer);
    } else {
        cmd.stdout(std::fs::File::create(&out_path).expect("stdout file"));
    }
    let child = ChildGuard(cmd.spawn().expect("run rdptrace"));
    // The parent's copy of the write end closes with `cmd`, so that only the child holds it.
    drop(cmd);
    let status = wait(child, &args.join(" "));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Run {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// `args` ends the same way whether its output is read or the reader is gone.
fn ends_quietly(dir: &Path, args: &[&str]) {
    let read = run(dir, args, false);
    assert!(
        !read.stdout.is_empty(),
        "{args:?} prints something: {}",
        read.stderr
    );
    let closed = run(dir, args, true);
    assert!(
        !closed.stderr.contains("panicked"),
        "{args:?} panicked on a closed pipe:\n{}",
        closed.stderr
    );
    assert_eq!(
        closed.status.code(),
        read.status.code(),
        "{args:?}: the exit code as if the output had been read\n{}",
        closed.stderr
    );
    assert_eq!(
        closed.stderr, read.stderr,
        "{args:?}: no message about the pipe"
    );
}

#[test]
fn demo_and_explain_end_quietly() {
    let dir = TempDir::new("closed-pipe-demo");
    for args in [
        &["demo"][..],
        &["demo", "--json"],
        &["demo", "healthy", "--watch", "0.1"],
        &["explain", "0x904", "0x7"],
        &["explain", "--errinfo", "0x7"],
        &["scenarios"],
        &["scenarios", "--json"],
    ] {
        ends_quietly(dir.path(), args);
    }
}

#[test]
fn probe_check_and_scan_end_quietly() {
    let dir = TempDir::new("closed-pipe-probe");
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    for args in [
        &["probe", &a][..],
        &["probe", "--json", &a],
        &["probe", &a, &b],
        &["probe", "--json", "--detail", &a, &b],
        &["check", &a, "-e", "active"],
        &["check", "--json", &a, "-e", "active"],
        &["scan", &a],
        &["scan", "--json", &a],
    ] {
        ends_quietly(dir.path(), args);
    }
}

#[test]
fn replay_ends_quietly() {
    let dir = TempDir::new("closed-pipe-replay");
    let capture = fixture("denied-connection.pcapng");
    let capture = capture.to_str().expect("a UTF-8 path");
    for args in [&["replay", capture][..], &["replay", "--json", capture]] {
        ends_quietly(dir.path(), args);
    }
}

/// `rdptrace serve ... | head -1`: the target keeps serving and ends as it would have.
#[test]
fn serve_ends_quietly() {
    let dir = TempDir::new("closed-pipe-serve");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let err_path = dir.path().join("serve.err");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut cmd = rdptrace();
    cmd.args(["serve", "--once", "--listen", &listen])
        .stdout(writer)
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let serve = ChildGuard(cmd.spawn().expect("run rdptrace serve"));
    drop(cmd);
    // Its one connection is a probe: tried again while nothing listens yet (exit 10), at most 20 s.
    let start = Instant::now();
    let probe = loop {
        let probe = rdptrace()
            .args(["probe", &listen, "--watch", "0.1", "--timeout", "20"])
            .args(["--user", TestIdentity::DEFAULT_USER])
            .env("RDPTRACE_PASSWORD", TestIdentity::DEFAULT_PASSWORD)
            .output()
            .expect("run rdptrace probe");
        if probe.status.code() != Some(10) || start.elapsed() > Duration::from_secs(20) {
            break probe;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        probe.status.code(),
        Some(0),
        "the probe reaches the built-in target: {}",
        String::from_utf8_lossy(&probe.stdout)
    );
    let status = wait(serve, "serve --once");
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("rdptrace:"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}
