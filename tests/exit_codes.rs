//! One table of exit codes (README.md, "Exit codes"), one meaning per value, the same in every command.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use support::{TempDir, free_port, output, rdptrace};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing listens there: every probe of it fails in tcp.
fn refused() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// README.md's table lists every code once, and no other.
#[test]
fn the_readme_table_gives_each_code_one_meaning() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("### Exit codes")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has an exit code section");
    let mut seen = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let Some(code) = row
            .trim_start_matches('|')
            .split('|')
            .next()
            .and_then(|c| c.trim().parse::<u8>().ok())
        else {
            continue;
        };
        assert!(seen.insert(code), "exit code {code} has two rows: {row}");
    }
    let expected: BTreeSet<u8> = [0, 1, 2, 3, 4].into_iter().chain(7..=21).collect();
    assert_eq!(seen, expected);
}

/// An expectation that does not hold is 4; 1 is kept for a check that could not run.
#[test]
fn check_tells_an_unmet_expectation_from_a_failure_to_run() {
    let dir = TempDir::new("exit-codes-check");
    let target = refused();
    let out = output(rdptrace().args(["check", &target, "-e", "active"]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("FAIL "));

    let junit = dir.path().join("no-such-dir").join("check.xml");
    let junit = junit.to_str().expect("a UTF-8 path");
    let out = output(rdptrace().args(["check", &target, "-e", "active", "--junit", junit]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("rdptrace: cannot write "),
        "{}",
        stderr(&out)
    );

    let out = output(rdptrace().args(["check", &target, "--policy", "/nonexistent/policy.toml"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("rdptrace: cannot read /nonexistent/policy.toml"));

    // What a policy says wrongly is a usage error.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "speed = 3\n").expect("write the policy");
    let out = output(rdptrace().args([
        "check",
        &target,
        "--policy",
        policy.to_str().expect("UTF-8"),
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown expectation speed"),
        "{}",
        stderr(&out)
    );
}

/// A scenario that does not exist, or a fault where none can be, is a usage error in `serve` as in `demo`.
#[test]
fn an_unknown_scenario_is_a_usage_error_everywhere() {
    for args in [
        &[
            "serve",
            "--scenario",
            "no-such-scenario",
            "--listen",
            "127.0.0.1:0",
        ][..],
        &["demo", "no-such-scenario"],
        &["serve", "--at", "tcp", "--listen", "127.0.0.1:0", "--once"],
        &["demo", "--at", "tcp"],
    ] {
        let out = output(rdptrace().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("rdptrace: unknown scenario no-such-scenario")
                || err.starts_with("rdptrace: --at tcp is not possible"),
            "{args:?}: {err}"
        );
    }
}

/// A file rdptrace cannot read is a failure (1); what a readable file says wrongly is a usage error (2).
#[test]
fn a_file_that_cannot_be_read_is_a_failure_to_run() {
    let target = refused();
    for args in [
        &["probe", "--targets", "/nonexistent/targets.txt"][..],
        &["probe", "--rdp-file", "/nonexistent/office.rdp"],
        &[
            "probe",
            "-u",
            "alice",
            "--password-file",
            "/nonexistent/password",
            &target,
        ],
        &["replay", "/nonexistent/capture.pcap"],
    ] {
        let out = output(rdptrace().args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("/nonexistent/"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let dir = TempDir::new("exit-codes-files");
    let targets = dir.path().join("targets.txt");
    std::fs::write(&targets, "host colour=blue\n").expect("write the targets");
    let out = output(rdptrace().args(["probe", "--targets", targets.to_str().expect("UTF-8")]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("targets.txt:1: unknown option colour"));
}
