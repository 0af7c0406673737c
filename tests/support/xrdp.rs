//! Debian's xrdp, started from a private copy of its configuration.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{ChildGuard, has_program, is_root, require, wait_listening};

/// Starts `xrdp --nodaemon` on 127.0.0.1:`port` with these [Globals] settings; `None` when it does not
/// come up.
pub fn start_xrdp(dir: &Path, port: u16, settings: &[(&str, &str)]) -> Option<ChildGuard> {
    let ini = std::fs::read_to_string("/etc/xrdp/xrdp.ini").ok()?;
    let mut out = String::new();
    let mut in_globals = false;
    let mut port_done = false;
    for line in ini.lines() {
        if line.starts_with('[') {
            in_globals = line.trim() == "[Globals]";
        }
        let key = line.split('=').next().unwrap_or("").trim();
        if in_globals && key == "port" && !port_done {
            out.push_str(&format!("port=tcp://127.0.0.1:{port}\n"));
            port_done = true;
            continue;
        }
        if in_globals && settings.iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if in_globals && line.trim() == "[Globals]" {
            for (k, v) in settings {
                out.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    let path = dir.join(format!("xrdp-{port}.ini"));
    std::fs::write(&path, out).ok()?;
    let child = Command::new("xrdp")
        .args(["--nodaemon", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = ChildGuard(child);
    wait_listening(port, Duration::from_secs(20)).then_some(guard)
}

/// Whether xrdp can run here (skips or fails by the rule of `require`).
pub fn xrdp_available() -> bool {
    require(
        has_program("xrdp") && Path::new("/etc/xrdp/xrdp.ini").is_file() && is_root(),
        "xrdp (Debian package xrdp, run as root)",
    )
}
