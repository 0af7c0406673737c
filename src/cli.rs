//! The command line: clap definitions, and the one place that prints an error and maps it to an exit code.
//! `main.rs` calls [`main`].
//!
//! Each command's work lives in its module, whose `run` returns `Result<ExitCode, CliError>`
//! ([`crate::command`]); nothing but `main.rs` imports from this file.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::command::{CliError, EXIT_USAGE};

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
    /// A Prometheus exporter: GET /probe?target=HOST&module=NAME runs a probe and answers with metrics.
    Exporter(crate::exporter::ExporterArgs),
    /// Summarise stored results (rdptrace/1 JSON lines): merge shards, write JUnit and an HTML report.
    Report(crate::report::cli::ReportArgs),
}

/// Parses the command line, runs the command, prints its error if it has one (`rdptrace: <message>` on
/// stderr) and returns the exit code.
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
    init_tracing(cli.verbose);
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            // A closed stderr is no reason to panic either.
            let _ = writeln!(std::io::stderr(), "rdptrace: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Probe(args) => crate::probe::cli::run(args),
        Command::Demo(args) => crate::serve::cli::demo(args),
        Command::Serve(args) => crate::serve::cli::serve(*args),
        Command::Scenarios(args) => crate::serve::cli::scenarios(args),
        Command::Explain(args) => crate::explain::run(args),
        Command::Replay(args) => crate::replay::cli::run(args),
        Command::Check(args) => crate::check::cli::run(args),
        Command::Scan(args) => crate::scan::cli::run(args),
        Command::Exporter(args) => crate::exporter::run(args),
        Command::Report(args) => crate::report::cli::run(args),
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
    // sspi and the CredSSP steps of ironrdp log what must never be logged at debug and trace level (the
    // TSCredentials with the password, session keys, tickets): never above info, whatever RUST_LOG says.
    let filter = [
        "sspi=info",
        "ironrdp_connector::credssp=info",
        "ironrdp_acceptor::credssp=info",
    ]
    .iter()
    .filter_map(|d| d.parse().ok())
    .fold(filter, EnvFilter::add_directive);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
