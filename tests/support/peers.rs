//! Real RDP servers for the fleet, check and scan tests: Debian's xrdp from a private copy of its
//! configuration, FreeRDP's shadow server with NLA on a private Xvfb display, and the built-in target.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{ChildGuard, has_program, require, wait_listening, wait_or_kill};

#[allow(unused_imports)]
pub use super::xrdp::{start_xrdp, xrdp_available};

/// Whether FreeRDP's shadow server and Xvfb can run here.
pub fn shadow_available() -> bool {
    require(
        has_program("freerdp-shadow-cli") && has_program("Xvfb"),
        "freerdp-shadow-cli and Xvfb (Debian packages freerdp2-shadow-x11, xvfb)",
    )
}

/// Starts Xvfb on a free display and freerdp-shadow-cli with `/sec:nla` on a free port; returns the port.
/// The SAM file holds one user whose hashes are zeros: the tests only go as far as the server's NTLM
/// CHALLENGE. On failure, the error holds what the servers wrote.
pub fn start_shadow_nla(dir: &Path) -> Result<(u16, (ChildGuard, ChildGuard)), String> {
    let sam = dir.join("sam");
    std::fs::write(
        &sam,
        "u:::00000000000000000000000000000000:00000000000000000000000000000000:::\n",
    )
    .map_err(|e| e.to_string())?;
    let sam_file = format!("/sam-file:{}", sam.display());
    start_shadow(dir, "freerdp-shadow-cli", &["/sec:nla", &sam_file], &[])
}

/// Runs an X client (`command`, as built by the caller) on an Xvfb display of its own, bounded; its own
/// exit status (`None` when it had to be killed, as the leader of a process group of its own). Not
/// xvfb-run: when its cleanup of a temporary directory fails, it exits 5 in place of the client's code.
pub fn on_xvfb(command: &mut Command) -> Option<ExitStatus> {
    let (xvfb, display) = start_xvfb().expect("Xvfb starts");
    let mut child = command
        .env("DISPLAY", format!(":{display}"))
        .process_group(0)
        .spawn()
        .expect("the X client starts");
    let status = wait_or_kill(&mut child);
    drop(xvfb);
    status
}

/// Starts Xvfb on a free display; its guard and the display number.
pub fn start_xvfb() -> Result<(ChildGuard, u32), String> {
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1024x768x24",
            // A server reset after a client's last connection closes would leave the shadow server
            // without a screen (see lab/lab).
            "-noreset",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start Xvfb: {e}"))?;
    let stdout = xvfb.stdout.take().ok_or("no stdout from Xvfb")?;
    let guard = ChildGuard(xvfb);
    let mut line = String::new();
    // Xvfb writes the display number once it is ready.
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("Xvfb: {e}"))?;
    let display = line
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("Xvfb wrote no display number: {line:?}"))?;
    Ok((guard, display))
}

/// Starts Xvfb on a free display and the shadow server `program` (freerdp-shadow-cli, or
/// freerdp-shadow-cli3 of FreeRDP 3) on a free port with `args` and the environment variables `env`;
/// returns the port. On failure, the error holds what the server wrote.
pub fn start_shadow(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> Result<(u16, (ChildGuard, ChildGuard)), String> {
    let (xvfb, display) = start_xvfb()?;
    let home = dir.join(format!("{program}-home"));
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let mut logs = String::new();
    // A port found free can be taken by another process before the server binds it: try a second one.
    for attempt in 0..2 {
        let port = super::free_port();
        let log_path = dir.join(format!("{program}-{attempt}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let shadow = Command::new(program)
            .arg(format!("/port:{port}"))
            .args(args)
            .env("DISPLAY", format!(":{display}"))
            .env("HOME", &home)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let shadow = ChildGuard(shadow);
        if wait_listening(port, Duration::from_secs(20)) {
            return Ok((port, (xvfb, shadow)));
        }
        drop(shadow);
        logs.push_str(&std::fs::read_to_string(&log_path).unwrap_or_default());
    }
    Err(format!("{program} did not listen; it wrote:\n{logs}"))
}

/// The built-in target playing each of `scenarios` on its own loopback port, for as long as the returned
/// runtime lives; the user and password it accepts.
pub fn built_in_targets(
    scenarios: &[&str],
) -> (
    tokio::runtime::Runtime,
    Vec<std::net::SocketAddr>,
    (String, String),
) {
    use rdptrace::serve::{Target, TargetConfig, scenario};
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut addrs = Vec::new();
    let mut identity = None;
    for name in scenarios {
        let config = TargetConfig::new(scenario::find(name).expect("a scenario"));
        identity = Some((
            config.identity.user.clone(),
            config.identity.password().to_owned(),
        ));
        let target = runtime
            .block_on(Target::bind(config))
            .expect("the target binds");
        addrs.push(target.local_addr());
        runtime.spawn(async move { target.run(std::future::pending(), None).await });
    }
    (runtime, addrs, identity.expect("one scenario at least"))
}
