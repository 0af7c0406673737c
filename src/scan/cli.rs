//! `rdptrace scan`: arguments and output.

use std::process::ExitCode;
use std::time::Duration;

use super::{ScanConfig, ScanReport};
use crate::command::CliError;
use crate::trace::PhaseName;
use crate::verdict::phase_exit_code;

/// Exit code when the host cannot be reached (that of a probe failing in `tcp`).
pub const EXIT_UNREACHABLE: u8 = phase_exit_code(PhaseName::Tcp);
/// Exit code when the host answers no X.224 Connection Request (that of a probe failing in `x224`).
pub const EXIT_NOT_RDP: u8 = phase_exit_code(PhaseName::X224);

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// The server: host, host:port, [v6addr]:port (port 3389 by default).
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// Seconds for each connection the scan makes (connect, exchange, close).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = crate::probe::cli::parse_seconds)]
    pub timeout: Duration,
    /// How many connections at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Do not enumerate the cipher suites of each TLS version (one handshake per version only).
    #[arg(long)]
    pub no_suites: bool,
    /// One JSON document (schema rdptrace-scan/1) instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// The exit code of a report: 0 when the scan ran (findings do not change it).
pub fn exit_code(r: &ScanReport) -> u8 {
    match &r.error {
        None => 0,
        Some(_) if r.address.is_none() => EXIT_UNREACHABLE,
        Some(_) => {
            let connected = r.protocols.iter().any(|p| {
                !matches!(
                    &p.raw,
                    super::negotiate::Answer::NoConfirm {
                        error: super::link::LinkError::Connect(_)
                    }
                )
            });
            if connected {
                EXIT_NOT_RDP
            } else {
                EXIT_UNREACHABLE
            }
        }
    }
}

pub fn run(args: ScanArgs) -> Result<ExitCode, CliError> {
    let (host, port) = crate::probe::split_target(&args.target).map_err(CliError::usage)?;
    let cfg = ScanConfig {
        host,
        port,
        timeout: args.timeout,
        concurrency: usize::from(args.concurrency),
        suites: !args.no_suites,
    };
    let report = crate::command::runtime()?.block_on(super::scan(&cfg));
    if args.json {
        crate::report::stdout::print(&format!("{}\n", super::report::json(&report)))?;
    } else {
        crate::report::stdout::print(&super::report::text(&report))?;
    }
    Ok(ExitCode::from(exit_code(&report)))
}
