//! Targets files: one RDP server per line with the verdict rdptrace must reach on it.
//!
//! ```text
//! # comment
//! host[:port] key=value ... expect=CHECK,CHECK,...
//! ```
//!
//! The line syntax is `rdptrace probe --targets`' (`host[:port] key=value ...`, `#` comments); the probe
//! settings are named after its options (`security`, `user`, `domain`, `password-env`, `timeout`,
//! `phase-timeout`, `watch`, `strict-cert`). The suite adds `name=` and `expect=` (see lab/targets for the
//! list of checks) and `wrong-password=yes`. A value may be put in double quotes to hold spaces; `$VAR` and
//! `${VAR}` are read from the environment everywhere but in `expect=`.

use std::time::Duration;

use rdptrace::pdu::PduInfo;
use rdptrace::probe::{Credentials, Password, ProbeConfig, Security};
use rdptrace::trace::{CloseKind, EventKind, PhaseName, PhaseStatus, Side, Trace};
use rdptrace::verdict::Verdict;

/// Settings of the suite when a line does not give them: long enough for a loaded machine, short enough
/// to bound every wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_PHASE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WATCH: Duration = Duration::from_millis(500);

/// One line of a targets file, as written (variables not yet read).
#[derive(Debug, Clone)]
pub struct Line {
    /// 1-based line number in its file.
    pub number: usize,
    pub target: String,
    /// `key=value` settings in order, `expect=` and `name=` excluded.
    pub settings: Vec<(String, String)>,
    pub name: String,
    pub checks: Vec<Check>,
}

/// One expectation on the trace and verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `ok=yes|no`
    Ok(bool),
    /// `phase=PHASE|none`: the failed phase of the verdict.
    Phase(Option<PhaseName>),
    /// `cause=CAUSE` (as `Cause::as_str`).
    Cause(String),
    /// `PHASE=ok|failed|skipped|not_reached`
    Status(PhaseName, PhaseStatus),
    /// `PHASE.FACT=VALUE`, `PHASE.FACT~TEXT`, `!PHASE.FACT`
    Fact(PhaseName, String, Match),
    /// `detail~TEXT`, `detail=TEXT`
    Detail(Match),
    /// `closed=server-fin|server-rst|client|none`: who ended the connection, and how.
    Closed(Closed),
    /// `closed-after=NAME` / `closed-after~TEXT`: the last PDU before the close, by name, or by text in
    /// "NAME: SUMMARY".
    ClosedAfter(Match),
    /// `timed-out=phase|total`: the probe's own deadline ended a wait.
    TimedOut(String),
    /// `waiting-for=TEXT` / `waiting-for~TEXT`: what the probe waited for when the deadline expired.
    WaitingFor(Match),
    /// `mstsc=0xDISC/0xEXT|none`
    Mstsc(Option<(u32, u32)>),
    /// `pdu=NAME` / `pdu~TEXT`: some PDU of the trace, by name or by text in "NAME: SUMMARY".
    Pdu(Match),
}

/// How a text is compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Equals(String),
    Contains(String),
    Absent,
}

impl Match {
    fn test(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Match::Equals(want), Some(v)) => v == want,
            (Match::Contains(want), Some(v)) => v.contains(want.as_str()),
            (Match::Absent, None) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    By(Side, CloseKind),
    /// The server never closed; the client ended the connection.
    Client,
    /// Nobody closed (a connect failure).
    None,
}

/// Splits a line into tokens at blanks; double quotes hold blanks and are removed.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err("unclosed double quote".to_owned());
    }
    if started {
        out.push(cur);
    }
    Ok(out)
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return line.get(..i).unwrap_or(line),
            _ => {}
        }
    }
    line
}

fn phase(s: &str) -> Result<PhaseName, String> {
    PhaseName::parse(s).ok_or_else(|| format!("unknown phase {s}"))
}

fn status(s: &str) -> Result<PhaseStatus, String> {
    Ok(match s {
        "ok" => PhaseStatus::Ok,
        "failed" => PhaseStatus::Failed,
        "skipped" => PhaseStatus::Skipped,
        "not_reached" | "not-reached" => PhaseStatus::NotReached,
        _ => return Err(format!("unknown phase status {s}")),
    })
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, not {s}")),
    }
}

fn code(s: &str) -> Result<u32, String> {
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("expected a hex code like 0x904, not {s}"))?;
    u32::from_str_radix(hex, 16).map_err(|_| format!("bad hex code {s}"))
}

/// The causes a line may name (`Cause::as_str`).
pub const CAUSES: &[&str] = &[
    "connected",
    "resolve_failed",
    "refused",
    "unreachable",
    "timed_out",
    "closed_by_server",
    "reset_by_server",
    "negotiation_failure",
    "negotiation_mismatch",
    "tls_alert",
    "tls_failed",
    "certificate_rejected",
    "credssp_error",
    "credssp_rejected",
    "early_auth_denied",
    "server_error_info",
    "license_error",
    "disconnected_by_server",
    "redirected",
    "deactivated",
    "protocol_error",
    "client_limit",
    "capture_ended",
];

/// Parses one check of an `expect=` list.
pub fn check(item: &str) -> Result<Check, String> {
    let item = item.trim();
    if let Some(rest) = item.strip_prefix('!') {
        let (p, fact) = rest
            .split_once('.')
            .ok_or_else(|| format!("!{rest}: only facts (PHASE.FACT) can be required absent"))?;
        return Ok(Check::Fact(phase(p)?, fact.to_owned(), Match::Absent));
    }
    let (key, op, value) = match (item.find('='), item.find('~')) {
        (Some(e), Some(t)) if t < e => (&item[..t], '~', &item[t + 1..]),
        (Some(e), _) => (&item[..e], '=', &item[e + 1..]),
        (None, Some(t)) => (&item[..t], '~', &item[t + 1..]),
        (None, None) => return Err(format!("{item}: expected KEY=VALUE or KEY~TEXT")),
    };
    let text = || match op {
        '~' => Match::Contains(value.to_owned()),
        _ => Match::Equals(value.to_owned()),
    };
    let exact = |what: &str| {
        if op == '~' {
            Err(format!("{key}: use {key}=, not ~ ({what})"))
        } else {
            Ok(())
        }
    };
    Ok(match key {
        "ok" => {
            exact("yes or no")?;
            Check::Ok(yes_no(value)?)
        }
        "phase" => {
            exact("a phase name")?;
            Check::Phase(if value == "none" {
                None
            } else {
                Some(phase(value)?)
            })
        }
        "cause" => {
            exact("a cause")?;
            if !CAUSES.contains(&value) {
                return Err(format!("unknown cause {value}"));
            }
            Check::Cause(value.to_owned())
        }
        "detail" => Check::Detail(text()),
        "closed" => {
            exact("who closed")?;
            Check::Closed(match value {
                "server-fin" => Closed::By(Side::Server, CloseKind::Fin),
                "server-rst" => Closed::By(Side::Server, CloseKind::Rst),
                "client-fin" => Closed::By(Side::Client, CloseKind::Fin),
                "client-rst" => Closed::By(Side::Client, CloseKind::Rst),
                "client" => Closed::Client,
                "none" => Closed::None,
                _ => {
                    return Err(format!(
                        "closed={value}: server-fin, server-rst, client or none"
                    ));
                }
            })
        }
        "closed-after" => Check::ClosedAfter(text()),
        "timed-out" => {
            exact("phase or total")?;
            if value != "phase" && value != "total" {
                return Err(format!("timed-out={value}: phase or total"));
            }
            Check::TimedOut(value.to_owned())
        }
        "waiting-for" => Check::WaitingFor(text()),
        "mstsc" => {
            exact("0xDISC/0xEXT or none")?;
            Check::Mstsc(if value == "none" {
                None
            } else {
                let (d, e) = value
                    .split_once('/')
                    .ok_or_else(|| format!("mstsc={value}: 0xDISC/0xEXT or none"))?;
                Some((code(d)?, code(e)?))
            })
        }
        "pdu" => Check::Pdu(text()),
        _ => match key.split_once('.') {
            Some((p, fact)) => Check::Fact(phase(p)?, fact.to_owned(), text()),
            None => {
                exact("a phase status")?;
                Check::Status(phase(key)?, status(value)?)
            }
        },
    })
}

/// The settings a line may give; anything else is a typo.
const SETTINGS: &[&str] = &[
    "security",
    "user",
    "domain",
    "password-env",
    "timeout",
    "phase-timeout",
    "watch",
    "strict-cert",
    "wrong-password",
];

/// Parses a targets file. `name=` defaults to the target followed by its settings.
pub fn parse(text: &str) -> Result<Vec<Line>, String> {
    let mut out: Vec<Line> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let err = |e: String| format!("line {number}: {e}");
        let words = tokens(strip_comment(raw)).map_err(err)?;
        let Some((target, rest)) = words.split_first() else {
            continue;
        };
        if target.contains('=') {
            return Err(err(format!(
                "{target}: a line starts with host[:port], then key=value settings"
            )));
        }
        let mut line = Line {
            number,
            target: target.clone(),
            settings: Vec::new(),
            name: String::new(),
            checks: Vec::new(),
        };
        for w in rest {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| err(format!("{w}: expected key=value")))?;
            match k {
                "name" => line.name = v.to_owned(),
                "expect" => {
                    for item in v.split(',').filter(|s| !s.trim().is_empty()) {
                        line.checks.push(check(item).map_err(err)?);
                    }
                }
                k if SETTINGS.contains(&k) => line.settings.push((k.to_owned(), v.to_owned())),
                _ => return Err(err(format!("unknown key {k}"))),
            }
        }
        if line.name.is_empty() {
            line.name = rest
                .iter()
                .filter(|w| !w.starts_with("expect="))
                .fold(target.clone(), |acc, w| format!("{acc} {w}"));
        }
        if line.checks.is_empty() {
            return Err(err("no expect= checks".to_owned()));
        }
        if out.iter().any(|l| l.name == line.name) {
            return Err(err(format!("name {} is used twice", line.name)));
        }
        out.push(line);
    }
    Ok(out)
}

/// Replaces `$VAR` and `${VAR}` with values from `lookup`.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    // INVARIANT: every pass consumes at least the `$` it found.
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            return Err(format!("a $ without a variable name in {s}"));
        }
        let value = lookup(name).ok_or_else(|| format!("${name} is not set"))?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

fn seconds(key: &str, v: &str) -> Result<Duration, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("{key}={v}: not a number of seconds"))?;
    if !(s > 0.0 && s <= 3600.0) {
        return Err(format!("{key}={v}: out of range"));
    }
    Ok(Duration::from_secs_f64(s))
}

/// The probe configuration of a line; variables and the password come from `lookup`.
pub fn config(line: &Line, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ProbeConfig, String> {
    let target = expand(&line.target, lookup)?;
    let mut cfg = ProbeConfig::new(&target)?;
    cfg.timeout = DEFAULT_TIMEOUT;
    cfg.phase_timeout = DEFAULT_PHASE_TIMEOUT;
    cfg.watch = DEFAULT_WATCH;
    let mut user = None;
    let mut domain = None;
    let mut password_env = None;
    let mut wrong = false;
    for (k, v) in &line.settings {
        let v = expand(v, lookup)?;
        match k.as_str() {
            "security" => {
                cfg.security = <Security as clap::ValueEnum>::from_str(&v, true)
                    .map_err(|_| format!("security={v}: auto, rdp, tls, nla or nla-ex"))?;
            }
            "user" => user = Some(v),
            "domain" => domain = Some(v),
            "password-env" => password_env = Some(v),
            "timeout" => cfg.timeout = seconds(k, &v)?,
            "phase-timeout" => cfg.phase_timeout = seconds(k, &v)?,
            "watch" => cfg.watch = seconds(k, &v)?,
            "strict-cert" => cfg.strict_cert = yes_no(&v)?,
            "wrong-password" => wrong = yes_no(&v)?,
            _ => return Err(format!("unknown setting {k}")),
        }
    }
    if let Some(user) = user {
        let var = password_env.unwrap_or_else(|| "RDPTRACE_PASSWORD".to_owned());
        let mut password =
            lookup(&var).ok_or_else(|| format!("the password variable {var} is not set"))?;
        if wrong {
            // A password that is certainly not the account's: the right one with something appended.
            password.push_str("-not-the-password");
        }
        cfg.credentials = Some(Credentials {
            user,
            domain,
            password: Password::new(password),
        });
    }
    Ok(cfg)
}

/// The first close the trace records: who and how.
fn first_close(trace: &Trace) -> Option<(f64, Side, CloseKind)> {
    trace.events().find_map(|(_, e)| match e.kind {
        EventKind::Closed { by, how } => Some((e.at_ms, by, how)),
        _ => None,
    })
}

fn pdu_text(name: &str, summary: &str) -> String {
    if summary.is_empty() {
        name.to_owned()
    } else {
        format!("{name}: {summary}")
    }
}

fn fact_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every check of `line` that does not hold, each as one sentence.
pub fn failures(line: &Line, trace: &Trace, verdict: &Verdict) -> Vec<String> {
    let mut out = Vec::new();
    for c in &line.checks {
        let problem = match c {
            Check::Ok(want) => (verdict.ok != *want).then(|| format!("ok is {}", verdict.ok)),
            Check::Phase(want) => {
                (verdict.phase != *want).then(|| format!("phase is {:?}", verdict.phase))
            }
            Check::Cause(want) => (verdict.cause.as_str() != want)
                .then(|| format!("cause is {}", verdict.cause.as_str())),
            Check::Status(p, want) => {
                let got = trace.phase(*p).status;
                (got != *want).then(|| format!("{p} is {}", got.as_str()))
            }
            Check::Fact(p, key, m) => {
                let got = trace.phase(*p).facts.get(key).map(fact_text);
                (!m.test(got.as_deref())).then(|| format!("{p}.{key} is {got:?}"))
            }
            Check::Detail(m) => {
                (!m.test(Some(&verdict.detail))).then(|| format!("detail is {:?}", verdict.detail))
            }
            Check::Closed(want) => {
                let close = first_close(trace);
                let client = trace
                    .events()
                    .any(|(_, e)| matches!(e.kind, EventKind::ClientClosed { .. }));
                let got = match close {
                    Some((_, by, how)) => Closed::By(by, how),
                    None if client => Closed::Client,
                    None => Closed::None,
                };
                (got != *want).then(|| format!("closed is {got:?}"))
            }
            Check::ClosedAfter(m) => {
                let before = first_close(trace).map(|(at, _, _)| at);
                let last = before.and_then(|at| {
                    trace
                        .pdus()
                        .filter(|(_, p)| p.at_ms <= at)
                        .max_by(|a, b| a.1.at_ms.total_cmp(&b.1.at_ms))
                        .map(|(_, p)| p)
                });
                let ok = match (m, last) {
                    (Match::Equals(want), Some(p)) => &p.name == want,
                    (Match::Contains(want), Some(p)) => {
                        pdu_text(&p.name, &p.summary).contains(want.as_str())
                    }
                    _ => false,
                };
                (!ok).then(|| {
                    format!(
                        "the last PDU before the close is {:?}",
                        last.map(|p| pdu_text(&p.name, &p.summary))
                    )
                })
            }
            Check::TimedOut(want) => {
                let got = trace.events().find_map(|(_, e)| match &e.kind {
                    EventKind::TimedOut { deadline, .. } => Some(*deadline),
                    _ => None,
                });
                let kind = got.map(|d| match d {
                    rdptrace::trace::Deadline::Phase { .. } => "phase",
                    rdptrace::trace::Deadline::Total { .. } => "total",
                });
                (kind != Some(want.as_str()))
                    .then(|| format!("the deadline that expired is {got:?}"))
            }
            Check::WaitingFor(m) => {
                let got = trace.events().find_map(|(_, e)| match &e.kind {
                    EventKind::TimedOut { waiting_for, .. } => Some(waiting_for.clone()),
                    _ => None,
                });
                (!m.test(got.as_deref())).then(|| format!("waiting_for is {got:?}"))
            }
            Check::Mstsc(want) => {
                let got = verdict
                    .mstsc
                    .as_ref()
                    .map(|m| (m.disc_reason.code, m.extended.code));
                (got != *want).then(|| format!("mstsc is {got:x?}"))
            }
            Check::Pdu(m) => {
                let found = trace.pdus().any(|(_, p)| match m {
                    Match::Equals(want) => &p.name == want,
                    Match::Contains(want) => pdu_text(&p.name, &p.summary).contains(want.as_str()),
                    Match::Absent => false,
                });
                (!found).then(|| format!("no PDU matches {m:?}"))
            }
        };
        if let Some(p) = problem {
            out.push(format!("expected {c:?}: {p}"));
        }
    }
    out
}

/// Whether any PDU of `phase` sent by `from` satisfies `f`.
pub fn has_pdu(trace: &Trace, phase: PhaseName, from: Side, f: impl Fn(&PduInfo) -> bool) -> bool {
    trace
        .phase(phase)
        .pdus
        .iter()
        .any(|p| p.from == from && f(&p.info))
}
