//! The lab of `lab/lab` (lab/README.md) as the lab tests find it.
//!
//! The `RDPTRACE_LAB_*` variables of `lab/lab env` come from the environment, else from the env file in
//! the lab's state directory (`RDPTRACE_LAB_STATE`, default /run/rdptrace-lab). When hosts are missing and
//! the tests run as root, `lab/lab up` runs once (idempotent; the lab stays up, `lab/lab down` ends it).
//! Without root the tests skip and say how to run them; with CI set, a lab that is not there or does not
//! come up is a failure.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdptrace::fleet::targets::{self, Line};

use super::{ChildGuard, TempDir, in_ci, is_root};

/// How long `lab/lab up` may take here (it waits up to 20 s per host, all at once; the first run makes
/// certificates).
const LAB_UP_LIMIT: Duration = Duration::from_secs(180);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn builtin_targets() -> PathBuf {
    manifest_dir().join("lab/targets")
}

/// The lines of lab/targets.
pub fn builtin_lines() -> Vec<Line> {
    let file = std::fs::File::open(builtin_targets()).expect("read lab/targets");
    targets::lines(std::io::BufReader::new(file), "lab/targets").unwrap_or_else(|e| panic!("{e}"))
}

/// Skips a test with a message that says why and what to do; with CI set, fails it.
pub fn skip(why: &str) {
    if in_ci() {
        panic!("{why} (CI is set: the lab tests must run; see .ci/run)");
    }
    eprintln!("skipped: {why}");
}

fn how_to_run() -> &'static str {
    "run `sudo lab/lab up`, then `cargo test --test lab` (see lab/README.md)"
}

/// The lab as the suite found it.
pub struct Lab {
    /// `RDPTRACE_LAB_*` from the lab's env file.
    pub vars: HashMap<String, String>,
    pub lines: Vec<Line>,
}

impl Lab {
    pub fn var(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.vars.get(name).cloned())
    }

    pub fn line(&self, name: &str) -> &Line {
        self.lines
            .iter()
            .find(|l| l.name() == Some(name))
            .unwrap_or_else(|| panic!("lab/targets has no line name={name}"))
    }
}

/// `KEY=VALUE` lines (values maybe in double quotes) of an env file.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

fn state_dir() -> PathBuf {
    std::env::var_os("RDPTRACE_LAB_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/rdptrace-lab"))
}

/// The lab's variables: its env file (the full one when readable, else the one without the password).
fn read_lab_env() -> HashMap<String, String> {
    let dir = state_dir();
    ["env", "env.public"]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map(|t| parse_env(&t))
        .unwrap_or_default()
}

/// The `RDPTRACE_LAB_<HOST>` variables the lab's lines use.
fn host_vars(lines: &[Line]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        let names = std::cell::RefCell::new(Vec::new());
        let _ = targets::expand(&l.target, &|n| {
            names.borrow_mut().push(n.to_owned());
            Some(String::new())
        });
        let names = names.into_inner();
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Runs `lab/lab up`, bounded in time; its output on failure.
fn lab_up() -> Result<(), String> {
    let log = TempDir::new("lab-up");
    let out_path = log.path().join("out");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    eprintln!("lab: bringing the lab up (lab/lab up); it stays up, `lab/lab down` ends it");
    let child = Command::new(manifest_dir().join("lab/lab"))
        .arg("up")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run lab/lab: {e}"))?;
    let mut guard = ChildGuard(child);
    let start = Instant::now();
    // INVARIANT: polls every 100 ms, ends at LAB_UP_LIMIT.
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < LAB_UP_LIMIT => {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => break None,
        }
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("lab/lab up failed ({s}):\n{text}")),
        None => Err(format!(
            "lab/lab up did not finish within {LAB_UP_LIMIT:?}:\n{text}"
        )),
    }
}

/// Finds the lab, bringing it up when that is needed and possible; `None` when the lab tests skip.
fn find_lab() -> Option<Lab> {
    if let Some(file) = std::env::var_os("RDPTRACE_LAB_TARGETS") {
        let file = PathBuf::from(file);
        let same =
            std::fs::canonicalize(&file).ok() == std::fs::canonicalize(builtin_targets()).ok();
        if !same {
            eprintln!(
                "skipped: RDPTRACE_LAB_TARGETS={} names your own targets; the built-in lab tests do not run (targets_file runs yours)",
                file.display()
            );
            return None;
        }
    }
    let lines = builtin_lines();
    let wanted = host_vars(&lines);
    let mut vars = read_lab_env();
    let missing = |vars: &HashMap<String, String>| -> Vec<String> {
        wanted
            .iter()
            .filter(|n| std::env::var_os(n).is_none() && !vars.contains_key(*n))
            .cloned()
            .collect()
    };
    let absent = missing(&vars);
    if !absent.is_empty() {
        if !is_root() {
            skip(&format!(
                "the lab is not up ({} of its hosts are unknown) and bringing it up needs root: {}",
                absent.len(),
                how_to_run()
            ));
            return None;
        }
        if let Err(e) = lab_up() {
            // Some hosts may be up all the same; each test says whether its own is.
            skip(&format!("the lab did not come up: {e}"));
        }
        vars = read_lab_env();
        if missing(&vars).len() == wanted.len() {
            skip(&format!("no lab host is up; {}", how_to_run()));
            return None;
        }
    }
    Some(Lab { vars, lines })
}

/// The lab, found once per test binary; `None` when the lab tests skip.
pub fn lab() -> Option<&'static Lab> {
    static LAB: OnceLock<Option<Lab>> = OnceLock::new();
    LAB.get_or_init(find_lab).as_ref()
}
