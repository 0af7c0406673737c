//! `rdptrace serve`, `demo` and `scenarios`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tracing::info;

use super::deployment::Deployment;
use super::gateway::GatewayOutcome;
use super::{ServeError, Served, TargetConfig, TestIdentity, scenario};
use crate::command::CliError;
use crate::command::{PasswordError, given_password, read_password};
use crate::report::stdout::StdoutError;
use crate::trace::PhaseName;

/// The environment variable the test password is read from.
pub use crate::command::PASSWORD_ENV;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The scenario to play (`rdptrace scenarios` lists them).
    #[arg(long, default_value = "healthy")]
    pub scenario: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3389")]
    pub listen: SocketAddr,
    /// Move the scenario's fault to this phase (x224, tls, credssp, early_user_auth, mcs_connect,
    /// channel_join, licensing, capabilities, finalization, active).
    #[arg(long, value_parser = parse_phase)]
    pub at: Option<PhaseName>,
    /// Send Set Error Info with this errorInfo (0x7 or 7), a Disconnect Provider Ultimatum and close, at
    /// `--at` (licensing by default), instead of the scenario's fault.
    #[arg(long, value_parser = parse_code)]
    pub errinfo: Option<u32>,
    /// The user the target accepts.
    #[arg(long, default_value = TestIdentity::DEFAULT_USER)]
    pub user: String,
    /// The domain of that user (none by default).
    #[arg(long, default_value = "")]
    pub domain: String,
    /// A file whose first line is the password the target accepts (an empty one is an error). Without it,
    /// RDPTRACE_PASSWORD; without that (or empty), the built-in test password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The name in the certificate and the NTLM challenge.
    #[arg(long, default_value = super::DEFAULT_HOST_NAME)]
    pub host_name: String,
    /// Handle one connection, then exit.
    #[arg(long)]
    pub once: bool,
    /// Append the target's TLS secrets to this file (NSS key log format), to decrypt a capture later.
    #[arg(long)]
    pub keylog: Option<PathBuf>,
    /// Write the certificate of the target's test certification authority (PEM) to this file, for a client
    /// that should trust the target's certificates (valid only as long as this process runs).
    #[arg(long, value_name = "FILE")]
    pub write_ca: Option<PathBuf>,
    /// Append each connection's trace, as the target saw it, to this file (JSON lines, schema rdptrace/1).
    #[arg(long)]
    pub trace_json: Option<PathBuf>,
    /// Seconds an active (or stalled) connection is kept with nothing from the client.
    #[arg(long, default_value_t = 600)]
    pub idle_limit: u64,
    /// Seconds the target waits for each PDU of the connection sequence.
    #[arg(long, default_value_t = 30)]
    pub read_timeout: u64,
    /// Accept Kerberos NLA with the service key of TERMSRV/<--host-name> from this MIT keytab (with --realm);
    /// NTLM is still accepted unless the scenario refuses it.
    #[arg(long, value_name = "FILE", requires = "realm")]
    pub keytab: Option<PathBuf>,
    /// The realm of the service principal in --keytab.
    #[arg(long, value_name = "REALM", requires = "keytab")]
    pub realm: Option<String>,
    /// Connections served at the same time; more wait in the listen queue.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,
    /// Put an RD Gateway in front of the target, listening here (HTTPS with a certificate of the target's
    /// test CA; WebSocket and HTTP transports; NTLM and Basic for the target's user). The gateway scenarios
    /// bring their own gateway, on any loopback port unless this names one. It relays to loopback targets only.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct ScenariosArgs {
    /// One JSON document per scenario, one per line, every member of every family included.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The scenario the built-in target plays (`rdptrace scenarios` lists them). A scenario that needs a short
    /// --phase-timeout (a stall, slow replies) brings its own, unless --phase-timeout gives another.
    #[arg(default_value = "denied-connection")]
    pub scenario: String,
    /// Move the scenario's fault to this phase.
    #[arg(long, value_parser = parse_phase)]
    pub at: Option<PhaseName>,
    /// Send Set Error Info with this errorInfo at `--at` instead of the scenario's fault.
    #[arg(long, value_parser = parse_code)]
    pub errinfo: Option<u32>,
    #[command(flatten)]
    pub probe: crate::probe::cli::ProbeOptions,
    #[command(flatten)]
    pub route: crate::probe::cli::RouteArgs,
    #[command(flatten)]
    pub output: crate::probe::cli::OutputArgs,
}

fn parse_phase(s: &str) -> Result<PhaseName, String> {
    PhaseName::parse(s).ok_or_else(|| {
        let names: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown phase {s} (one of {})", names.join(", "))
    })
}

fn parse_code(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("not a 32-bit code: {s}"))
}

/// The password: from the file, else the environment, else the built-in test value.
fn password(file: Option<&Path>) -> Result<String, PasswordError> {
    match given_password(file, &crate::fleet::targets::process_env)? {
        Some(p) => Ok(p.expose().to_owned()),
        None => {
            info!("no password given: the target accepts the built-in test password");
            Ok(TestIdentity::DEFAULT_PASSWORD.to_owned())
        }
    }
}

/// A file `serve` writes cannot be.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What stopped `serve`, once it runs.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Stdout(#[from] StdoutError),
}

fn config(args: &ServeArgs) -> Result<TargetConfig, CliError> {
    let scenario = scenario::find(&args.scenario)
        .ok_or_else(|| CliError::usage(ServeError::UnknownScenario(args.scenario.clone())))?;
    let mut config = TargetConfig::new(scenario)
        .with_overrides(args.at, args.errinfo)
        .map_err(CliError::usage)?;
    config.listen = args.listen;
    config.identity = TestIdentity::new(
        args.user.clone(),
        args.domain.clone(),
        password(args.password_file.as_deref())?,
    );
    config.host_name = args.host_name.clone();
    config.key_log = args.keylog.clone();
    config.idle_limit = Duration::from_secs(args.idle_limit);
    config.read_timeout = Duration::from_secs(args.read_timeout.max(1));
    config.max_connections = usize::from(args.max_connections);
    if let (Some(keytab), Some(realm)) = (&args.keytab, &args.realm) {
        let gateway = super::gateway::GatewayKerberos::from_keytab(keytab, realm, &args.host_name)
            .map_err(CliError::usage)?;
        match super::kerberos::KerberosService::from_keytab(keytab, realm, &args.host_name) {
            Ok(k) => config.kerberos = Some(k),
            // The gateway's key alone: the gateway takes Kerberos, the target NTLM.
            Err(_) if gateway.is_some() && scenario.kerberos.is_none() => {}
            Err(e) => return Err(CliError::usage(e)),
        }
        config.gateway_kerberos = gateway;
    } else if scenario.uses_kerberos() {
        return Err(CliError::usage(needs_kdc(scenario)));
    }
    Ok(config)
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    let config = config(&args)?;
    crate::command::runtime()?
        .block_on(serve_async(config, &args))
        .map_err(CliError::failure)?;
    Ok(ExitCode::SUCCESS)
}

async fn serve_async(config: TargetConfig, args: &ServeArgs) -> Result<(), Stopped> {
    let expected = config.expected.describe();
    let label = config.label();
    let deployment = Deployment::bind(config, args.gateway).await?;
    if let Some(path) = &args.write_ca {
        let pem = super::tls::test_ca_pem()?;
        std::fs::write(path, pem).map_err(|source| FileError::Write {
            path: path.clone(),
            source,
        })?;
    }
    let mut lines = format!(
        "listening on {}, scenario {label}; a probe must find: {expected}\n",
        deployment.address
    );
    for other in &deployment.others {
        lines.push_str(&format!(
            "second target on {} (the broker's redirections go there)\n",
            other.local_addr()
        ));
    }
    if let Some(url) = deployment.gateway_url() {
        lines.push_str(&format!(
            "gateway on {url}: probe with --gateway {url} (the target's user and password)\n"
        ));
    }
    crate::report::stdout::print(&lines)?;
    let trace_json = args.trace_json.clone();
    let (sink, mut served) = tokio::sync::mpsc::unbounded_channel::<Served>();
    let (gw_sink, mut gw_served) =
        tokio::sync::mpsc::unbounded_channel::<(SocketAddr, GatewayOutcome)>();
    // The first connection that cannot be reported ends the target, with that error; with --once, the first
    // connection that ends (at the target, or refused by the gateway) ends it too.
    let (failed, on_failure) = tokio::sync::oneshot::channel::<()>();
    let once = args.once;
    let reporter = tokio::spawn(async move {
        let mut failed = Some(failed);
        // INVARIANT: each pass takes one report; the channels close when the servers stop.
        loop {
            let done = tokio::select! {
                Some(done) = served.recv() => {
                    report(&done, trace_json.as_deref())?;
                    true
                }
                Some((peer, outcome)) = gw_served.recv() => {
                    crate::report::stdout::print(&format!("{peer}: {outcome}\n"))?;
                    !matches!(outcome, GatewayOutcome::Paired | GatewayOutcome::Relayed { .. })
                }
                else => return Ok::<(), Stopped>(()),
            };
            if done
                && once
                && let Some(f) = failed.take()
            {
                let _ = f.send(());
            }
        }
    });
    let shutdown = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = on_failure => {}
        }
    };
    let result = deployment.run(shutdown, Some(sink), Some(gw_sink)).await;
    let reported = reporter.await;
    result?;
    match reported {
        Ok(reported) => reported,
        // The reporter panicked: its connections went unreported, which is no reason to fail the target.
        Err(_) => Ok(()),
    }
}

/// One line per connection on stdout (a reader that went away, `rdptrace serve | head -1`, does not stop
/// the target), and its trace in the JSON lines file when asked for.
fn report(served: &Served, trace_json: Option<&Path>) -> Result<(), Stopped> {
    crate::report::stdout::print(&format!("{}: {}\n", served.peer, served.outcome))?;
    if let Some(path) = trace_json {
        let line = crate::report::json::line(&served.trace, &served.verdict());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| FileError::Open {
                path: path.to_owned(),
                source,
            })?;
        writeln!(file, "{line}").map_err(|source| FileError::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// `rdptrace demo`: the built-in target on an ephemeral loopback port, in this process, and a probe of it
/// with the target's test identity.
pub fn demo(args: DemoArgs) -> Result<ExitCode, CliError> {
    let scenario = scenario::find(&args.scenario)
        .ok_or_else(|| CliError::usage(ServeError::UnknownScenario(args.scenario.clone())))?;
    if scenario.uses_kerberos() {
        return Err(CliError::usage(needs_kdc(scenario)));
    }
    let config = TargetConfig::new(scenario)
        .with_overrides(args.at, args.errinfo)
        .map_err(CliError::usage)?;
    let identity = config.identity.clone();
    let runtime = crate::command::runtime()?;
    runtime.block_on(async move {
        let label = config.label();
        let expected = config.expected.describe();
        let deployment = Deployment::bind(config, None)
            .await
            .map_err(CliError::failure)?;
        let addr = deployment.address;
        let mut options = args.probe.clone();
        // The scenario's own phase timeout (a stall, slow replies), unless --phase-timeout gives another,
        // and the security the client it stands for requires, unless --security gives another.
        if let Some(ms) = scenario.probe.phase_timeout_ms
            && options.phase_timeout == DEFAULT_PHASE_TIMEOUT
        {
            options.phase_timeout = Duration::from_millis(ms);
        }
        if let Some(security) = scenario.probe.security
            && options.security == crate::probe::Security::Auto
        {
            options.security = security;
        }
        let password = if options.user.is_none() {
            options.user = Some(identity.user.clone());
            if !identity.domain.is_empty() {
                options.domain = Some(identity.domain.clone());
            }
            crate::probe::Password::new(identity.password().to_owned())
        } else {
            read_password(options.user.as_deref(), options.password_file.as_deref())?
                .unwrap_or_default()
        };
        let mut probe_config = options
            .config(&addr.to_string(), Some(&password))
            .map_err(CliError::usage)?;
        args.route
            .apply(&mut probe_config, None, None)
            .map_err(CliError::usage)?;
        // The scenario's gateway, with the probe's credentials and the transport and scheme asked for.
        if let Some(mut gw) = deployment
            .probe_config()
            .map_err(CliError::failure)?
            .gateway
            .filter(|_| args.route.gateway.is_none())
        {
            gw.transport = args.route.gateway_transport;
            gw.auth = args.route.gateway_auth;
            gw.credentials =
                probe_config
                    .credentials
                    .as_ref()
                    .map(|c| crate::gateway::GatewayCredentials {
                        user: c.user.clone(),
                        domain: c.domain.clone(),
                        password: c.password.clone(),
                    });
            probe_config.gateway = Some(gw);
        }
        probe_config.follow_redirects &= scenario.probe.follow;
        if !args.output.json {
            let mut header = format!("built-in target on {addr}, scenario {label}\n");
            if let Some(url) = deployment.gateway_url() {
                header.push_str(&format!("  through:    the built-in RD Gateway at {url}\n"));
            }
            if !scenario.stands_for.is_empty() {
                header.push_str(&format!("  stands for: {}\n", scenario.stands_for));
            }
            header.push_str(&format!(
                "  expected:   {expected}{}\n\n",
                scenario.probe.describe()
            ));
            crate::report::stdout::print(&header)?;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let servers = deployment.clone();
        let running = tokio::spawn(async move {
            servers
                .run(
                    async {
                        let _ = stopped.await;
                    },
                    None,
                    None,
                )
                .await
        });
        let trace = crate::probe::probe(&probe_config).await;
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
        let verdict = crate::diagnose::diagnose(&trace);
        crate::probe::cli::print(&trace, &verdict, &args.output)?;
        Ok(ExitCode::from(verdict.exit_code()))
    })
}

/// A Kerberos scenario without its service key, or in `demo`, which has no KDC.
fn needs_kdc(s: &scenario::Scenario) -> ServeError {
    let name = s.name;
    if s.kerberos.is_none() {
        return ServeError::Config(format!(
            "the scenario {name} has an RD Gateway that authenticates with Kerberos: it needs a KDC and the gateway's service key, HTTP/<--host-name> (rdptrace serve --scenario {name} --keytab FILE --realm REALM, then rdptrace probe --gateway https://<--host-name>:PORT --kdc URL)"
        ));
    }
    ServeError::Config(format!(
        "the scenario {name} authenticates with Kerberos: it needs a KDC and the service key of TERMSRV/<--host-name> (rdptrace serve --scenario {name} --keytab FILE --realm REALM, then rdptrace probe --auth kerberos --kdc URL)"
    ))
}

pub fn scenarios(args: ScenariosArgs) -> Result<ExitCode, CliError> {
    if args.json {
        let mut lines = String::new();
        for s in scenario::catalogue() {
            lines.push_str(&format!("{}\n", scenario::to_json(s)));
        }
        crate::report::stdout::print(&lines)?;
    } else {
        crate::report::stdout::print(&scenario::render_catalogue())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The probe's phase timeout when `--phase-timeout` is not given (its default in
/// [`crate::probe::cli::ProbeOptions`]).
const DEFAULT_PHASE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse() {
        assert_eq!(parse_code("0x7"), Ok(7));
        assert_eq!(parse_code("0X0000001a"), Ok(0x1a));
        assert_eq!(parse_code("25"), Ok(25));
        assert!(parse_code("seven").is_err());
        assert_eq!(parse_phase("mcs-connect"), Ok(PhaseName::McsConnect));
        assert!(parse_phase("nowhere").is_err());
    }
}
