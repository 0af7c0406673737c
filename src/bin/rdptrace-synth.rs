//! `rdptrace-synth`: writes a large synthetic capture for the benchmarks (`bench/compare.sh`,
//! BENCHMARKS.md) with [`rdptrace::synth`]. Built only with the `synth` feature
//! (`cargo build --release --features synth --bin rdptrace-synth`): the generator, its recorded sessions
//! and the TLS sealing it needs are not in the `rdptrace` binary.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rdptrace::synth::{self, Options, Secrets};

#[derive(Debug, Parser)]
#[command(
    name = "rdptrace-synth",
    version,
    about = "Writes a large synthetic capture for the benchmarks"
)]
struct Args {
    /// The capture to write (pcapng).
    out: PathBuf,
    /// Bytes of TCP payload to plan for (suffixes K, M, G: powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the sessions' TLS secrets to this NSS key log file.
    #[arg(long, value_name = "FILE", conflicts_with = "embed_secrets")]
    keylog: Option<PathBuf>,
    /// Put the sessions' TLS secrets into the capture (a Decryption Secrets Block before each session).
    #[arg(long)]
    embed_secrets: bool,
    /// Sessions in progress at once.
    #[arg(long, default_value_t = 64)]
    concurrent: usize,
    /// Bulk bytes of an active session, drawn between MIN and MAX (suffixes K, M, G); 0-0 for none.
    #[arg(long, value_name = "MIN-MAX", default_value = "1M-4M", value_parser = parse_range)]
    bulk: (u64, u64),
    /// Only sessions of this template (repeatable): healthy, nla-logon-failure, refused, ...
    #[arg(long = "template", value_name = "NAME")]
    templates: Vec<String>,
    /// Stop after this many sessions, whatever their size (instead of --size).
    #[arg(long, value_name = "N")]
    sessions: Option<u64>,
    /// Add N SYNs to 10.0.0.1:3389 from N sources, never answered (a scan or a flood).
    #[arg(long, value_name = "N", default_value_t = 0)]
    flood: u64,
    /// Every session to one server (192.168.0.1:3389), as a brute force would be.
    #[arg(long)]
    one_server: bool,
}

/// Why no capture was written.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Synth(#[from] synth::SynthError),
    #[error(transparent)]
    Serialize(#[from] rdptrace::report::SerializeError),
    #[error(transparent)]
    Stdout(#[from] rdptrace::report::stdout::StdoutError),
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (s.get(..i), 1u64 << 10),
        Some((i, 'M' | 'm')) => (s.get(..i), 1 << 20),
        Some((i, 'G' | 'g')) => (s.get(..i), 1 << 30),
        _ => (Some(s), 1),
    };
    num.and_then(|n| n.trim().parse::<u64>().ok())
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("not a size: {s}"))
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("not MIN-MAX: {s}"))?;
    Ok((parse_size(lo)?, parse_size(hi)?))
}

/// Writes the capture, then its manifest (what it holds) as one JSON line on stdout.
fn run(args: Args) -> Result<(), Error> {
    let secrets = match (&args.keylog, args.embed_secrets) {
        (Some(p), _) => Secrets::KeyLog(p.clone()),
        (None, true) => Secrets::Embedded,
        (None, false) => Secrets::None,
    };
    let opts = Options {
        size: args.size,
        seed: args.seed,
        secrets,
        concurrent: args.concurrent,
        bulk: args.bulk,
        templates: args.templates,
        sessions: args.sessions,
        flood: args.flood,
        one_server: args.one_server,
    };
    let manifest = synth::generate(&args.out, &opts)?;
    rdptrace::report::stdout::print(&rdptrace::report::json_line(&manifest)?)?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "rdptrace-synth: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("12"), Ok(12));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_range("1M-4M"), Ok((1 << 20, 4 << 20)));
        assert!(parse_range("1M").is_err());
    }
}
