//! One password intake for every command: the first line of `--password-file` (its line ending removed),
//! else `RDPTRACE_PASSWORD`; an empty file is an error, never an empty password.

mod support;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::{ChildGuard, TempDir, free_port, rdptrace};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `probe`, `check`, `demo` and `serve` refuse an empty password file alike, before connecting anywhere.
#[test]
fn an_empty_password_file_is_a_usage_error_in_every_command() {
    let dir = TempDir::new("password-empty");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write the file");
    let file = empty.to_str().expect("a UTF-8 path");
    let target = format!("127.0.0.1:{}", free_port());
    for args in [
        &["probe", "-u", "alice", "--password-file", file, &target][..],
        &[
            "check",
            &target,
            "-e",
            "active",
            "-u",
            "alice",
            "--password-file",
            file,
        ],
        &["demo", "-u", "alice", "--password-file", file],
        &[
            "serve",
            "--password-file",
            file,
            "--listen",
            "127.0.0.1:0",
            "--once",
        ],
    ] {
        let out = rdptrace().args(args).output().expect("run rdptrace");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim(),
            format!("rdptrace: the password file {file} is empty"),
            "{args:?}"
        );
    }
}

/// The target and the probe read the same file the same way (CRLF or LF, blanks kept): the logon succeeds.
#[test]
fn serve_and_probe_take_the_same_password_from_their_files() {
    let dir = TempDir::new("password-same");
    let served = dir.path().join("served");
    let given = dir.path().join("given");
    std::fs::write(&served, "two words\r\nnot the password\r\n").expect("write the file");
    std::fs::write(&given, "two words\n").expect("write the file");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = ChildGuard(
        rdptrace()
            .args(["serve", "--once", "--listen", &listen, "--password-file"])
            .arg(&served)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run rdptrace serve"),
    );
    // Tried again while nothing listens yet (exit 10), at most 20 s.
    let start = Instant::now();
    let out = loop {
        let out = rdptrace()
            .args(["probe", &listen, "-u", "rdptrace", "--watch", "0.1"])
            .arg("--password-file")
            .arg(&given)
            .output()
            .expect("run rdptrace probe");
        if out.status.code() != Some(10) || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(serve);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("credssp          ok"), "{text}");
}
