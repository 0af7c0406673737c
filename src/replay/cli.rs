//! `rdptrace replay`.

use std::fs::File;
use std::io::{Seek as _, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{End, Options, Session};
use crate::command::CliError;
use crate::report;
use crate::report::stdout::{Stdout, StdoutError};
use crate::trace::PhaseName;

/// Rendered timelines kept in memory before they go to a temporary file.
const SPOOL_MEMORY: usize = 8 << 20;

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
    #[arg(long, value_name = "N")]
    pub session: Option<usize>,
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
        ..Options::default()
    };
    let mut out = Output::new(args.json, args.session, args.verbose > 0);
    let end = super::replay_each(&args.file, &opts, &mut |s| out.session(s))
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

/// What `replay` prints, built as the sessions end.
struct Output {
    json: bool,
    only: Option<usize>,
    verbose: bool,
    summaries: Vec<String>,
    timelines: Spool,
    selected: usize,
    /// The exit code of the first session that did not reach the active state.
    failed: Option<u8>,
    /// The first error writing to stdout; nothing more is written after it.
    error: Option<StdoutError>,
}

impl Output {
    fn new(json: bool, only: Option<usize>, verbose: bool) -> Self {
        Output {
            json,
            only,
            verbose,
            summaries: Vec::new(),
            timelines: Spool::default(),
            selected: 0,
            failed: None,
            error: None,
        }
    }

    fn session(&mut self, s: Session) {
        let selected = self.only.is_none_or(|n| n == s.index);
        if !self.json {
            self.summaries.push(summary_line(&s));
        }
        if !selected {
            return;
        }
        self.selected += 1;
        if !s.verdict.ok && self.failed.is_none() {
            self.failed = Some(s.verdict.exit_code());
        }
        if self.json {
            if self.error.is_none() {
                let line = format!("{}\n", report::json::line(&s.trace, &s.verdict));
                self.error = report::stdout::print(&line).err();
            }
        } else {
            self.timelines.write("\n");
            self.timelines.write(&report::text::render(
                &s.trace,
                &s.verdict,
                report::text::Options {
                    verbose: self.verbose,
                },
            ));
        }
    }

    /// Prints what waited and the notes; returns the exit code, or the error that stopped the replay.
    fn finish(&mut self, end: End) -> Result<u8, CliError> {
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

    /// The summary lines, then the timelines that waited.
    fn print_text(&mut self, end: &End) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(Stdout);
        if end.sessions == 0 {
            writeln!(
                out,
                "no RDP session in {} ({} packets)",
                end.file, end.packets
            )?;
        }
        for line in &self.summaries {
            writeln!(out, "{line}")?;
        }
        if end.duplicates > 0 {
            writeln!(out, "{}", duplicates_line(end.duplicates))?;
        }
        self.timelines.drain_to(&mut out)?;
        out.flush()
    }
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
