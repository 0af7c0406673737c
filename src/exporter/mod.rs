//! `rdptrace exporter`: a Prometheus exporter in the style of blackbox_exporter. Each
//! `GET /probe?target=HOST[:PORT]&module=NAME` runs one probe with the module's settings ([`config`]) and
//! answers with its metrics ([`metrics`]); `/metrics` has the exporter's own ([`state`]); `/` a status page
//! ([`page`]); `/results` the last probes as `rdptrace/1` JSON lines, for `rdptrace report`.
//!
//! The probe is the library's ([`crate::probe::probe`]), judged by [`crate::diagnose`] and the
//! expectation language of [`crate::check`]. Its deadline is the module's timeout, or the scrape's
//! (`X-Prometheus-Scrape-Timeout-Seconds` less `--timeout-offset`) when shorter.

pub mod config;
pub mod metrics;
pub mod page;
pub mod server;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::command::CliError;

#[derive(Debug, clap::Args)]
pub struct ExporterArgs {
    /// The address to listen on (port 0: any free port, printed on start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9834")]
    pub listen: SocketAddr,
    /// The modules (TOML): security, user, where the password comes from, expectations, timeouts.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Probes that may run at once; a probe request beyond that is answered 503 at once.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub max_probes: u16,
    /// Seconds taken off Prometheus's scrape timeout, for the answer to arrive in time.
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_offset)]
    pub timeout_offset: Duration,
    /// How many finished probes to keep for the status page and /results.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=10000))]
    pub keep: u16,
}

fn parse_offset(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s}"))?;
    if !v.is_finite() || !(0.0..=60.0).contains(&v) {
        return Err(format!("the offset must be from 0 to 60 seconds: {s}"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// `rdptrace exporter`: serves until SIGINT or SIGTERM.
pub fn run(args: ExporterArgs) -> Result<ExitCode, CliError> {
    let config = config::Config::read(&args.config).map_err(|e| match e {
        config::ConfigError::Read { .. } => CliError::failure(e),
        _ => CliError::usage(e),
    })?;
    let max_probes = usize::from(args.max_probes);
    let exporter = Arc::new(server::Exporter {
        own: state::Own::new(config.modules.len(), max_probes),
        config,
        probes: Arc::new(tokio::sync::Semaphore::new(max_probes)),
        max_probes,
        timeout_offset: args.timeout_offset,
        recent: state::Recents::new(usize::from(args.keep)),
    });
    let runtime = crate::command::runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|source| {
                CliError::failure(ListenError {
                    addr: args.listen,
                    source,
                })
            })?;
        let local = listener.local_addr().unwrap_or(args.listen);
        crate::report::stdout::print(&format!(
            "listening on {local}, {} modules: {}\n",
            exporter.config.modules.len(),
            exporter
                .config
                .modules
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        server::serve(listener, exporter, shutdown()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
