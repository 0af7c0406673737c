//! `rdptrace replay`: the text report (the sessions grouped by outcome, then the timelines of the failed
//! ones, [`super::summary`]) or one JSON document per session, streamed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek as _, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::session::{Attempt, Shape};
use super::summary::{self, Member, Started, Summary, thousands};
use super::{AttemptReport, End, Options, Report, Session};
use crate::command::CliError;
use crate::report;
use crate::report::stdout::{Stdout, StdoutError};
use crate::trace::PhaseName;
use crate::verdict::Cause;

/// Rendered timelines kept in memory before they go to a temporary file.
const SPOOL_MEMORY: usize = 8 << 20;
/// Timelines printed at most without `--all` (the failed sessions that carried data)...
pub const TIMELINES: usize = 20;
/// ... and at most this many of one outcome.
pub const TIMELINES_PER_OUTCOME: usize = 5;
/// Attempt reports remembered by shape.
const MEMO: usize = 4096;
/// Streamed JSON reaches stdout at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture: pcap or pcapng (plain or gzip-compressed), or Microsoft Network Monitor (.cap).
    pub file: PathBuf,
    /// TLS secrets in the NSS key log format (SSLKEYLOGFILE).
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// A server's RSA private key (PEM, PKCS#1 or PKCS#8), for sessions with RSA key exchange; repeatable.
    #[arg(long = "rsa-key", value_name = "FILE")]
    pub rsa_keys: Vec<PathBuf>,
    /// An MIT keytab with the server's keys (its service principal's, and krbtgt's for user-to-user
    /// tickets): with the TLS secrets, names the credential type a Kerberos CredSSP exchange delegates
    /// (password, smart card, Remote Credential Guard), never the credentials.
    #[arg(long, value_name = "FILE")]
    pub keytab: Option<PathBuf>,
    /// A port RDP listens on besides 3389, so that a connection to it that carried no data (refused,
    /// unanswered) is reported too; repeatable.
    #[arg(long = "port", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// One `rdptrace/1` JSON document per session, one per line, as each session ends.
    #[arg(long)]
    pub json: bool,
    /// Only this session's timeline (the number in the summary; sessions are numbered as they end).
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub session: Option<usize>,
    /// Every session in the summary and every timeline (by default sessions are grouped by outcome and
    /// only the timelines of some failed sessions that carried data are printed).
    #[arg(long)]
    pub all: bool,
    /// Worker threads (connections are shared among them by their addresses); 1 reads on one thread.
    /// Default: one per core.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    #[arg(from_global)]
    pub verbose: u8,
}

/// `--session N` names a session the capture does not hold.
#[derive(Debug, thiserror::Error)]
#[error("session {n} is not in {file} (it holds {sessions} RDP session{s})", s = if *sessions == 1 { "" } else { "s" })]
pub struct NoSuchSession {
    pub n: usize,
    pub file: String,
    pub sessions: usize,
}

pub fn run(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let opts = Options {
        keylog: args.keylog.clone(),
        rsa_keys: args.rsa_keys.clone(),
        keytab: args.keytab.clone(),
        ports: args.ports.clone(),
        progress: true,
        threads: args.threads.map_or(0, usize::from),
        ..Options::default()
    };
    let mut out = Output::new(&args);
    let end = super::replay_stream(&args.file, &opts, &mut |r| out.report(r))
        .map_err(CliError::failure)?;
    out.finish(end).map(ExitCode::from)
}

/// Where the timelines wait while the summary lines are still being collected: memory, then a
/// temporary file, so that a capture with very many sessions does not fill memory.
#[derive(Default)]
struct Spool {
    memory: String,
    file: Option<(File, PathBuf)>,
}

impl Spool {
    fn write(&mut self, text: &str) {
        if let Some((f, _)) = self.file.as_mut()
            && f.write_all(text.as_bytes()).is_ok()
        {
            return;
        }
        self.memory.push_str(text);
        if self.memory.len() > SPOOL_MEMORY && self.file.is_none() {
            let path = std::env::temp_dir().join(format!(
                "rdptrace-replay-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path);
            if let Ok(mut f) = opened {
                if f.write_all(self.memory.as_bytes()).is_ok() {
                    self.memory.clear();
                    self.file = Some((f, path));
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    fn drain_to(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if let Some((mut f, path)) = self.file.take() {
            let copied = f
                .seek(SeekFrom::Start(0))
                .and_then(|_| std::io::copy(&mut f, out));
            drop(f);
            let _ = std::fs::remove_file(&path);
            copied?;
        }
        let written = out.write_all(self.memory.as_bytes());
        self.memory.clear();
        written
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What an attempt's report comes to, made once for every attempt of the same shape.
#[derive(Debug, Clone)]
struct Rendered {
    ok: bool,
    code: u8,
    cause: Cause,
    /// The JSON document after the fields that tell attempts apart (client, start, number), when it has
    /// been made; `Some(None)` when the document did not start as expected (then it is made every time).
    tail: Option<Option<String>>,
}

/// The first fields of an attempt's JSON document: those that tell attempts of one shape apart. `file` is
/// the capture's name as a JSON string. Addresses and RFC 3339 times need no escaping in JSON.
fn json_head(out: &mut Vec<u8>, file: &str, index: usize, a: &Attempt) {
    let _ = write!(
        out,
        r#"{{"schema":"{}","target":"{}","origin":{{"kind":"replay","file":{file},"session":{index}}},"started_at":"#,
        report::SCHEMA,
        a.server(),
    );
    match a.started_at() {
        Some(t) => {
            let _ = write!(out, r#""{t}""#);
        }
        None => out.extend_from_slice(b"null"),
    }
    let _ = write!(out, r#","client_addr":"{}""#, a.client());
}

/// Attempt reports by shape.
struct Memo {
    map: HashMap<Shape, Rendered, foldhash::fast::RandomState>,
    /// The capture's name as a JSON string.
    file_json: String,
}

impl Memo {
    /// What `a` comes to; with `json`, its document is written to `out`.
    fn get(
        &mut self,
        file: &str,
        a: &AttemptReport,
        json: Option<&mut Vec<u8>>,
    ) -> (bool, u8, Cause) {
        let shape = a.attempt.shape();
        let hit = self.map.get(&shape);
        let ready = hit.is_some_and(|r| json.is_none() || r.tail.is_some());
        if let (true, Some(r)) = (ready, hit) {
            if let Some(out) = json {
                match &r.tail {
                    Some(Some(tail)) => {
                        json_head(out, &self.file_json, a.index, &a.attempt);
                        out.extend_from_slice(tail.as_bytes());
                    }
                    _ => {
                        let s = a.session(file);
                        out.extend_from_slice(report::json::line(&s.trace, &s.verdict).as_bytes());
                    }
                }
            }
            return (r.ok, r.code, r.cause);
        }
        let s = a.session(file);
        let v = &s.verdict;
        let mut r = Rendered {
            ok: v.ok,
            code: v.exit_code(),
            cause: v.cause,
            tail: None,
        };
        if let Some(out) = json {
            let doc = report::json::line(&s.trace, v);
            let mut head = Vec::new();
            json_head(&mut head, &self.file_json, a.index, &a.attempt);
            r.tail = Some(
                doc.as_bytes()
                    .strip_prefix(head.as_slice())
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            );
            out.extend_from_slice(doc.as_bytes());
        }
        if self.map.len() >= MEMO {
            self.map.clear();
        }
        let summary = (r.ok, r.code, r.cause);
        self.map.insert(shape, r);
        summary
    }
}

/// Timelines left out of the text report, by kind.
#[derive(Debug, Default)]
struct Omitted {
    failed: u64,
    ok: u64,
    attempts: u64,
    /// Sessions without data that are not attempts (a close and nothing else).
    no_data: u64,
}

/// Standard output for the JSON lines: buffered, and flushed now and then so that it streams.
struct Lines {
    out: BufWriter<Stdout>,
    flushed: Instant,
    buf: Vec<u8>,
}

impl Lines {
    fn write(&mut self) -> std::io::Result<()> {
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.out.flush()?;
            self.flushed = Instant::now();
        }
        Ok(())
    }
}

/// What `replay` prints, built as the sessions end.
struct Output {
    file: String,
    json: bool,
    all: bool,
    only: Option<usize>,
    verbose: bool,
    lines: Lines,
    memo: Memo,
    summary: Summary,
    /// With `--all`: every summary line.
    flat: Spool,
    timelines: Spool,
    shown: usize,
    omitted: Omitted,
    selected: usize,
    /// The exit code of the first session that did not reach the active state.
    failed: Option<u8>,
    /// The first error writing to stdout; nothing more is written after it.
    error: Option<StdoutError>,
}

impl Output {
    fn new(args: &ReplayArgs) -> Self {
        Output {
            file: args.file.display().to_string(),
            json: args.json,
            all: args.all,
            only: args.session,
            verbose: args.verbose > 0,
            lines: Lines {
                out: BufWriter::with_capacity(1 << 16, Stdout),
                flushed: Instant::now(),
                buf: Vec::new(),
            },
            memo: Memo {
                map: HashMap::default(),
                file_json: serde_json::to_string(&args.file.display().to_string())
                    .unwrap_or_default(),
            },
            summary: Summary::default(),
            flat: Spool::default(),
            timelines: Spool::default(),
            shown: 0,
            omitted: Omitted::default(),
            selected: 0,
            failed: None,
            error: None,
        }
    }

    fn fail(&mut self, ok: bool, code: u8) {
        if !ok && self.failed.is_none() {
            self.failed = Some(code);
        }
    }

    fn report(&mut self, r: Report) {
        let index = r.index();
        let selected = self.only.is_none_or(|n| n == index);
        if self.json {
            if selected {
                self.selected += 1;
                self.json_line(r);
            }
            return;
        }
        if self.all {
            let s = r.into_session(&self.file);
            self.flat.write(&summary_line(&s));
            self.flat.write("\n");
            self.selected += 1;
            self.fail(s.verdict.ok, s.verdict.exit_code());
            self.timeline(&s);
            return;
        }
        let (group, show) = self.group(&r);
        if !selected {
            return;
        }
        self.selected += 1;
        if self.only.is_some() {
            let s = r.into_session(&self.file);
            self.fail(s.verdict.ok, s.verdict.exit_code());
            self.timeline(&s);
            return;
        }
        match r {
            Report::Session(s) => {
                self.fail(s.verdict.ok, s.verdict.exit_code());
                if show
                    && self.shown < TIMELINES
                    && self.summary.shown(group) < TIMELINES_PER_OUTCOME
                {
                    self.shown += 1;
                    self.summary.count_shown(group);
                    self.timeline(&s);
                } else if !s.data {
                    self.omitted.no_data += 1;
                } else if s.verdict.ok {
                    self.omitted.ok += 1;
                } else {
                    self.omitted.failed += 1;
                }
            }
            Report::Attempt(a) => {
                if self.failed.is_none() {
                    let (ok, code, _) = self.memo.get(&self.file, &a, None);
                    self.fail(ok, code);
                }
                self.omitted.attempts += 1;
            }
        }
    }

    /// Adds a session to its group in the summary; its group, and whether its timeline is one shown by
    /// default (a failed session that carried data).
    fn group(&mut self, r: &Report) -> (usize, bool) {
        match r {
            Report::Session(s) => {
                let outcome = summary::Outcome::Session {
                    ok: s.verdict.ok,
                    phase: last_phase(&s.trace),
                    cause: s.verdict.cause,
                };
                let member = Member {
                    index: s.index,
                    client: s.trace.client_addr.as_deref().and_then(|a| a.parse().ok()),
                    server: s.trace.server_addr.as_deref().and_then(|a| a.parse().ok()),
                    started: Started::Text(s.trace.started_at.clone()),
                };
                let g = self.summary.add(outcome, member, || summary_line(s));
                (g, s.data && !s.verdict.ok)
            }
            Report::Attempt(a) => {
                let outcome = summary::Outcome::Attempt(a.attempt.kind());
                let member = Member {
                    index: a.index,
                    client: Some(a.attempt.client()),
                    server: Some(a.attempt.server()),
                    started: Started::Time(a.attempt.first_ts()),
                };
                let (file, memo) = (&self.file, &mut self.memo);
                let g = self.summary.add(outcome, member, || {
                    let (_, _, cause) = memo.get(file, a, None);
                    attempt_line(a, cause)
                });
                (g, false)
            }
        }
    }

    fn json_line(&mut self, r: Report) {
        if self.error.is_some() {
            return;
        }
        let mut buf = std::mem::take(&mut self.lines.buf);
        match r {
            Report::Session(s) => {
                self.fail(s.verdict.ok, s.verdict.exit_code());
                buf.extend_from_slice(report::json::line(&s.trace, &s.verdict).as_bytes());
            }
            Report::Attempt(a) => {
                let (ok, code, _) = self.memo.get(&self.file, &a, Some(&mut buf));
                self.fail(ok, code);
            }
        }
        self.lines.buf = buf;
        if let Err(e) = self.lines.write() {
            self.error = Some(StdoutError(e));
        }
    }

    fn timeline(&mut self, s: &Session) {
        self.timelines.write("\n");
        self.timelines.write(&report::text::render(
            &s.trace,
            &s.verdict,
            report::text::Options {
                verbose: self.verbose,
            },
        ));
    }

    /// Prints what waited and the notes; returns the exit code, or the error that stopped the replay.
    fn finish(&mut self, end: End) -> Result<u8, CliError> {
        if self.json
            && self.error.is_none()
            && let Err(e) = self.lines.out.flush()
        {
            self.error = Some(StdoutError(e));
        }
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        if !self.json {
            self.print_text(&end).map_err(StdoutError)?;
        }
        let mut stderr = std::io::stderr();
        for note in &end.notes {
            let _ = writeln!(stderr, "rdptrace: note: {note}");
        }
        if self.json && end.duplicates > 0 {
            let _ = writeln!(
                stderr,
                "rdptrace: note: {}",
                duplicates_line(end.duplicates)
            );
        }
        if let Some(e) = end.error {
            return Err(CliError::failure(e));
        }
        if let Some(n) = self.only
            && self.selected == 0
        {
            return Err(CliError::usage(NoSuchSession {
                n,
                file: end.file,
                sessions: end.sessions,
            }));
        }
        Ok(self.failed.unwrap_or(0))
    }

    /// The summary, then the timelines that waited.
    fn print_text(&mut self, end: &End) -> std::io::Result<()> {
        let mut out = BufWriter::new(Stdout);
        if end.sessions == 0 {
            writeln!(
                out,
                "no RDP session in {} ({} packets)",
                end.file, end.packets
            )?;
        }
        if self.all {
            self.flat.drain_to(&mut out)?;
        } else {
            for line in self.summary.lines() {
                writeln!(out, "{line}")?;
            }
            if let Some(line) = self.omitted.line() {
                writeln!(out, "{line}")?;
            }
        }
        if end.duplicates > 0 {
            writeln!(out, "{}", duplicates_line(end.duplicates))?;
        }
        self.timelines.drain_to(&mut out)?;
        out.flush()
    }
}

impl Omitted {
    /// What the text report left out, if anything.
    fn line(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut part = |n: u64, one: &str, many: &str| {
            if n > 0 {
                parts.push(format!(
                    "{} {}",
                    thousands(n),
                    if n == 1 { one } else { many }
                ));
            }
        };
        part(self.failed, "more failed session", "more failed sessions");
        part(
            self.ok,
            "session that reached the active state",
            "sessions that reached the active state",
        );
        part(
            self.no_data,
            "session that carried no data",
            "sessions that carried no data",
        );
        part(
            self.attempts,
            "connection attempt that carried no data",
            "connection attempts that carried no data",
        );
        let list = match parts.as_slice() {
            [] => return None,
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        Some(format!(
            "not shown: the timelines of {list} (--session N shows one, --all every one)"
        ))
    }
}

/// The summary line of an attempt, as [`summary_line`] makes it of the attempt's session (whose last phase
/// is always tcp).
fn attempt_line(a: &AttemptReport, cause: Cause) -> String {
    format!(
        "#{:<3} {} -> {}  {}  {:<16} {}",
        a.index,
        a.attempt.client(),
        a.attempt.server(),
        a.attempt.started_at().as_deref().unwrap_or("?"),
        PhaseName::Tcp.as_str(),
        cause.as_str()
    )
}

/// How many copies of packets the duplicate filter dropped.
fn duplicates_line(n: u64) -> String {
    format!(
        "{n} duplicate packet(s) dropped: the same packet (addresses, sequence numbers, IP identification, payload) captured again within {} ms",
        super::dedupe::WINDOW.as_millis()
    )
}

/// `#1   client -> server  start  last phase  cause`.
pub fn summary_line(s: &Session) -> String {
    let t = &s.trace;
    format!(
        "#{:<3} {} -> {}  {}  {:<16} {}",
        s.index,
        t.client_addr.as_deref().unwrap_or("?"),
        t.server_addr.as_deref().unwrap_or("?"),
        t.started_at.as_deref().unwrap_or("?"),
        last_phase(t).as_str(),
        s.verdict.cause.as_str()
    )
}

/// The last phase that saw anything (a gateway's phases included).
pub fn last_phase(t: &crate::trace::Trace) -> PhaseName {
    PhaseName::EVERY
        .into_iter()
        .rev()
        .find(|p| t.phase(*p).start_ms.is_some())
        .unwrap_or(PhaseName::Tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_moves_to_a_file_and_back() {
        let mut spool = Spool::default();
        let chunk = "x".repeat(1 << 20);
        for _ in 0..10 {
            spool.write(&chunk);
        }
        spool.write("end\n");
        let path = spool.file.as_ref().map(|(_, p)| p.clone());
        assert!(path.is_some());
        let mut out = Vec::new();
        spool.drain_to(&mut out).unwrap();
        assert_eq!(out.len(), 10 * (1 << 20) + 4);
        assert!(out.ends_with(b"xend\n"));
        assert!(!path.unwrap().exists());
    }
}
