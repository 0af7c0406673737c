//! The one support module of the integration tests (`mod support;`): the binary under test
//! ([`rdptrace`]), skipping rules, child processes, ports; a test client ([`client`]) and real peers
//! ([`xrdp`], [`peers`], the lab's hosts in [`lab`]).

#![allow(dead_code)]

pub mod agreement;
pub mod client;
pub mod flood;
pub mod gateway;
pub mod kerberos;
pub mod lab;
pub mod peers;
pub mod xrdp;
#[allow(unused_imports)]
pub use client::{BOUND, ClientRun, StopAt, run};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of the binary under test.
pub const RDPTRACE: &str = env!("CARGO_BIN_EXE_rdptrace");

/// The binary under test, with nothing from the environment the tests run in that would change what it
/// does (no `RDPTRACE_PASSWORD`, no `RUST_LOG`) and stdin closed. A test adds what it needs
/// (`.env("RDPTRACE_PASSWORD", ...)`, `.stdin(...)`).
pub fn rdptrace() -> Command {
    let mut cmd = Command::new(RDPTRACE);
    cmd.env_remove("RDPTRACE_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to the end: its exit status, stdout and stderr.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run rdptrace")
}

/// Whether the tests run in CI, where a missing prerequisite is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `../shared` beside the crate, when present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.is_dir().then_some(dir)
}

/// The public captures of `../shared/captures/public` with the RSA key published with each (`keys/`, see
/// its MANIFEST.md).
pub const PUBLIC_KEYS: &[(&str, &str)] = &[
    (
        "wireshark-wiki/win2k19-joined.eth.pcapng",
        "wireshark-wiki-ws-credssp.key",
    ),
    (
        "wireshark-wiki/win2k19-joined.cap",
        "wireshark-wiki-ws-credssp.key",
    ),
    (
        "wireshark-wiki/TSRemoteGuardCreds.eth.pcapng",
        "wireshark-wiki-ws-credssp.key",
    ),
    (
        "wireshark-wiki/TSRemoteGuardCreds.cap",
        "wireshark-wiki-ws-credssp.key",
    ),
    (
        "wireshark-wiki/freerdp-client-krb5.pcapng",
        "wireshark-wiki-ws-credssp.key",
    ),
    (
        "wireshark-wiki/rdp-ssl.pcap.gz",
        "wireshark-wiki-rdp-ssl.key",
    ),
    (
        "freerdp-old/rdp_tls_ntlmssp_access_denied.pcap",
        "freerdp-old-server.key",
    ),
];

/// Skips the test (returns `false`) when `what` is missing, unless CI is set, where it panics.
pub fn require(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    if in_ci() {
        panic!("{what} is missing, and CI is set: install it (see .ci/run)");
    }
    eprintln!("skipped: {what} is missing (set CI to make this a failure)");
    false
}

/// Whether a program is on PATH.
pub fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether this process runs as root (some real servers need it).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Waits for `child`, the leader of a process group of its own, up to [`BOUND`]; past it kills the group
/// and returns `None`.
pub fn wait_or_kill(child: &mut Child) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    // INVARIANT: polls every 50 ms until the bound.
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return Some(status);
        }
        if start.elapsed() > BOUND {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something listens on 127.0.0.1:`port`, at most `limit`.
pub fn wait_listening(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A child process killed (by its PID) when the guard drops.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rdptrace-test-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs an async test body on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Replaces what changes from run to run (times, ports, byte counts that depend on how TCP segments
/// fell, certificate serials and dates) so that a trace can be a snapshot.
pub fn normalize(v: &mut serde_json::Value) {
    use serde_json::Value;
    let ms = regex::Regex::new(r"\d+(\.\d+)? ms").expect("regex");
    let port = regex::Regex::new(r"(127\.0\.0\.1|\[::1\]|::1):\d+").expect("regex");
    let date = regex::Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z").expect("regex");
    fn walk(v: &mut Value, re: &[&regex::Regex; 3]) {
        match v {
            Value::Object(map) => {
                let name = map
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_owned();
                for (k, child) in map.iter_mut() {
                    let redact = k.ends_with("_ms")
                        || matches!(
                            k.as_str(),
                            "bytes_in"
                                | "bytes_out"
                                | "started_at"
                                | "serial"
                                | "sha256"
                                | "not_before"
                                | "not_after"
                                | "bytes"
                        )
                        || (k == "len"
                            && (name.starts_with("TLS") || name.contains("Certificate")));
                    if redact && !child.is_null() {
                        *child = Value::String(format!("[{k}]"));
                    } else {
                        walk(child, re);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, re)),
            Value::String(s) => {
                let t = re[0].replace_all(s, "[t] ms");
                let t = re[1].replace_all(&t, "$1:[port]");
                let t = re[2].replace_all(&t, "[date]");
                *s = t.into_owned();
            }
            _ => {}
        }
    }
    walk(v, &[&ms, &port, &date]);
}

/// The text timeline made stable for a snapshot: times, byte counts and the padding that depends on the
/// width of the times are replaced, and what [`normalize`] replaces in JSON too.
pub fn normalize_timeline(text: &str) -> String {
    let at = regex::Regex::new(r"(?m)^(\s+)\d+\.\d+(\s)").expect("regex");
    let bytes = regex::Regex::new(r"in \d+ B, out \d+ B").expect("regex");
    let text = at.replace_all(text, "$1[t]$2");
    let text = bytes.replace_all(&text, "in [n] B, out [n] B");
    let mut doc = serde_json::Value::String(text.into_owned());
    normalize(&mut doc);
    // Times are right-aligned: the padding before them depends on their width.
    let padding = regex::Regex::new(r" +\[t\]").expect("regex");
    padding
        .replace_all(doc.as_str().unwrap_or_default(), " [t]")
        .into_owned()
}

/// What `rdptrace serve --listen 127.0.0.1:0` says first: the port it listens on. Returns it, that first
/// line, and the rest of the target's stdout, line by line.
pub fn serve_port(
    stdout: std::process::ChildStdout,
) -> (
    u16,
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("rdptrace serve says where it listens")
        .expect("a line of text");
    let port = first
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    (port, first, lines)
}

/// The exit status and resource usage of child `pid` once it has ended (`block` false: `None` while it
/// runs). std's `Child::wait` reaps a child without its resource usage; the memory bounds of the tests
/// are the kernel's measure of it (`ru_maxrss`, KiB).
pub fn wait4(pid: i32, block: bool) -> Option<(i32, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct of integers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: wait4 writes only through the two pointers, which point to live locals of the right types.
    let got = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    (got == pid).then_some((status, usage))
}
