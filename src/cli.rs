//! The command line: clap definitions, credential intake and exit codes. `main.rs` calls [`main`].
//!
//! Each command's work lives in its module; this file parses, dispatches and maps results to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for usage errors (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when rdptrace itself could not run (a file it cannot read, a port it cannot bind).
pub const EXIT_ERROR: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "rdptrace",
    version,
    about = "Walks the RDP connection sequence phase by phase and says where and why a connection dies"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe an RDP server: walk every phase of the connection sequence and explain where it stops.
    Probe(crate::probe::cli::ProbeArgs),
    /// Start the built-in target in-process and probe it.
    Demo(crate::serve::cli::DemoArgs),
    /// Run the built-in target: a real RDP server that fails on purpose.
    Serve(Box<crate::serve::cli::ServeArgs>),
    /// List the built-in target's scenarios.
    Scenarios(crate::serve::cli::ScenariosArgs),
    /// Explain an mstsc error pair or look up one code.
    Explain(crate::explain::ExplainArgs),
    /// Diagnose the RDP sessions in a pcap or pcapng capture.
    Replay(crate::replay::cli::ReplayArgs),
    /// Assert what a server must do (reach the active state, require NLA, refuse old TLS...).
    Check(crate::check::cli::CheckArgs),
    /// How a server is configured: protocols, RDP encryption, TLS versions and suites, certificate, NTLM.
    Scan(crate::scan::cli::ScanArgs),
    /// Write a large synthetic capture for the benchmarks (bench/, BENCHMARKS.md).
    #[command(hide = true)]
    SynthCapture(crate::synth::SynthArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    VERBOSITY.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    init_tracing(cli.verbose);
    match cli.command {
        Command::Probe(args) => crate::probe::cli::run(args),
        Command::Demo(args) => crate::serve::cli::demo(args),
        Command::Serve(args) => crate::serve::cli::serve(*args),
        Command::Scenarios(args) => crate::serve::cli::scenarios(args),
        Command::Explain(args) => crate::explain::run(args),
        Command::Replay(args) => crate::replay::cli::run(args),
        Command::Check(args) => crate::check::cli::run(args),
        Command::Scan(args) => crate::scan::cli::run(args),
        Command::SynthCapture(args) => crate::synth::run(args),
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "rdptrace=warn",
        1 => "rdptrace=info",
        2 => "rdptrace=debug",
        _ => "rdptrace=trace,ironrdp=debug,sspi=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// How many `-v` were given.
pub fn verbosity() -> u8 {
    VERBOSITY.load(std::sync::atomic::Ordering::Relaxed)
}

/// The tokio runtime the commands run on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// The exit code for a verdict: 0 when the connection reached the active state, otherwise one code per
/// failing phase (see README.md, "Exit codes").
pub fn exit_code(verdict: &crate::verdict::Verdict) -> u8 {
    use crate::trace::PhaseName;
    if verdict.ok {
        return 0;
    }
    match verdict.phase {
        Some(PhaseName::Tcp) => 10,
        Some(PhaseName::X224) => 11,
        Some(PhaseName::Tls) => 12,
        Some(PhaseName::Credssp) => 13,
        Some(PhaseName::EarlyUserAuth) => 14,
        Some(PhaseName::McsConnect) => 15,
        Some(PhaseName::ChannelJoin) => 16,
        Some(PhaseName::SecureSettings) => 17,
        Some(PhaseName::Licensing) => 18,
        Some(PhaseName::Capabilities) => 19,
        Some(PhaseName::Finalization) => 20,
        Some(PhaseName::Active) => 21,
        None => 3,
    }
}

/// A usage error: `rdptrace: <message>` on stderr, exit code 2.
pub fn usage(msg: impl core::fmt::Display) -> ExitCode {
    eprintln!("rdptrace: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Prints an error the way every command does: `rdptrace: <message>` on stderr.
pub fn error(msg: impl core::fmt::Display) -> ExitCode {
    eprintln!("rdptrace: {msg}");
    ExitCode::from(EXIT_ERROR)
}
