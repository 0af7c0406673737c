//! `rdptrace replay`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Options, Replay, Session};
use crate::cli::{EXIT_ERROR, EXIT_USAGE};
use crate::report;
use crate::trace::PhaseName;

/// Exit code when a session did not reach the active state, until the per-phase codes of the probe apply.
pub const EXIT_SESSION_FAILED: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture: pcap or pcapng, plain or gzip-compressed.
    pub file: PathBuf,
    /// TLS secrets in the NSS key log format (SSLKEYLOGFILE).
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// A server's RSA private key (PEM, PKCS#1 or PKCS#8), for sessions with RSA key exchange; repeatable.
    #[arg(long = "rsa-key", value_name = "FILE")]
    pub rsa_keys: Vec<PathBuf>,
    /// One `rdptrace/1` JSON document per session, one per line.
    #[arg(long)]
    pub json: bool,
    /// Only this session (the number in the summary).
    #[arg(long, value_name = "N")]
    pub session: Option<usize>,
    #[arg(from_global)]
    pub verbose: u8,
}

pub fn run(args: ReplayArgs) -> ExitCode {
    let opts = Options {
        keylog: args.keylog.clone(),
        rsa_keys: args.rsa_keys.clone(),
        progress: true,
        ..Options::default()
    };
    let replay = match super::replay(&args.file, &opts) {
        Ok(r) => r,
        Err(e) => return crate::cli::error(e),
    };
    let (out, code) = render(&replay, args.json, args.session, args.verbose > 0);
    print!("{out}");
    for note in &replay.notes {
        eprintln!("rdptrace: note: {note}");
    }
    if let Some(e) = &replay.error {
        eprintln!("rdptrace: {e}");
    }
    if let Some(msg) = &code.1 {
        eprintln!("rdptrace: {msg}");
    }
    ExitCode::from(code.0)
}

/// The output and exit code (with a message for stderr) of a replay.
pub fn render(
    replay: &Replay,
    json: bool,
    only: Option<usize>,
    verbose: bool,
) -> (String, (u8, Option<String>)) {
    let mut out = String::new();
    let selected: Vec<&Session> = match only {
        Some(n) => replay.sessions.iter().filter(|s| s.index == n).collect(),
        None => replay.sessions.iter().collect(),
    };
    if let Some(n) = only
        && selected.is_empty()
    {
        let msg = format!(
            "session {n} is not in {} (it holds {} RDP session{})",
            replay.file,
            replay.sessions.len(),
            if replay.sessions.len() == 1 { "" } else { "s" }
        );
        let code = if replay.error.is_some() {
            EXIT_ERROR
        } else {
            EXIT_USAGE
        };
        return (out, (code, Some(msg)));
    }
    if json {
        for s in &selected {
            out.push_str(&report::json::line(&s.trace, &s.verdict));
            out.push('\n');
        }
    } else {
        if replay.sessions.is_empty() {
            out.push_str(&format!(
                "no RDP session in {} ({} packets)\n",
                replay.file, replay.packets
            ));
        }
        for s in &selected {
            out.push_str(&summary_line(s));
            out.push('\n');
        }
        for s in &selected {
            out.push('\n');
            out.push_str(&report::text::render(
                &s.trace,
                &s.verdict,
                report::text::Options { verbose },
            ));
        }
    }
    let code = if replay.error.is_some() {
        EXIT_ERROR
    } else {
        selected
            .iter()
            .find(|s| !s.verdict.ok)
            .map_or(0, |_| EXIT_SESSION_FAILED)
    };
    (out, (code, None))
}

/// `#1  client -> server  start  last phase  cause`.
pub fn summary_line(s: &Session) -> String {
    let t = &s.trace;
    let last = last_phase(t);
    format!(
        "#{:<3} {} -> {}  {}  {:<16} {}",
        s.index,
        t.client_addr.as_deref().unwrap_or("?"),
        t.server_addr.as_deref().unwrap_or("?"),
        t.started_at.as_deref().unwrap_or("?"),
        last.as_str(),
        s.verdict.cause.as_str()
    )
}

/// The last phase that saw anything.
pub fn last_phase(t: &crate::trace::Trace) -> PhaseName {
    PhaseName::ALL
        .into_iter()
        .rev()
        .find(|p| t.phase(*p).start_ms.is_some())
        .unwrap_or(PhaseName::Tcp)
}
