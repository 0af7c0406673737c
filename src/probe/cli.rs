//! `rdptrace probe`: arguments, password intake, and one target probed, judged and printed.
//!
//! Several targets (more than one on the command line, in targets files or .rdp files) go to
//! [`crate::fleet`], which runs [`probe_target`] for each of them at once.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{Auth, Credentials, Password, ProbeConfig, Security};
use crate::check::Outcome;
use crate::command::{CliError, EXIT_UNMET, PASSWORD_ENV, read_gateway_password, read_password};
use crate::fleet::TargetSpec;
use crate::fleet::junit::{Case, JunitWriter};
use crate::gateway::{GatewayConfig, GatewayCredentials, Scheme, TransportChoice};
use crate::report::SerializeError;
use crate::trace::{EventKind, Fact, PhaseName, Trace};
use crate::verdict::Verdict;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Targets: host, host:port, [v6addr]:port (port 3389 by default); - reads a targets list from stdin.
    #[arg(value_name = "TARGET", required_unless_present_any = ["targets_files", "rdp_files"])]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub options: ProbeOptions,
    #[command(flatten)]
    pub route: RouteArgs,
    #[command(flatten)]
    pub fleet: crate::fleet::FleetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How to connect: shared by `probe` and `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeOptions {
    /// User name for NLA and the Client Info PDU. The password comes from RDPTRACE_PASSWORD,
    /// --password-file, or a prompt on a terminal; never from the command line.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Domain of the user (for NTLM: the domain, or the server's name for a local account).
    #[arg(long, short = 'd')]
    pub domain: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// What the client requests in the X.224 negotiation.
    #[arg(long, value_enum, default_value_t = Security::Auto)]
    pub security: Security,
    /// How NLA authenticates: negotiate (as mstsc: Kerberos when the user has a realm, user@REALM or
    /// --domain, and a KDC is found; then NTLM), kerberos (no fallback), ntlm.
    #[arg(long, value_enum, default_value_t = Auth::Negotiate)]
    pub auth: Auth,
    /// The KDC: tcp://host[:88], udp://host[:88], or an MS-KKDCP KDC proxy https://host/KdcProxy.
    /// Default: the realm's kdc in krb5.conf (KRB5_CONFIG), then DNS SRV records (_kerberos._tcp.REALM).
    #[arg(long, value_name = "URL", value_parser = super::kdc::parse_kdc_url)]
    pub kdc: Option<url::Url>,
    /// Seconds for the whole probe.
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Seconds to wait for each answer of the server.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub phase_timeout: Duration,
    /// Seconds to watch the session once it is active.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = parse_seconds)]
    pub watch: Duration,
    /// Fail the TLS phase when the certificate has a problem (expired, self-signed, wrong name, weak key).
    #[arg(long)]
    pub strict_cert: bool,
    /// The highest TLS version to offer: 1.2 tries the server as a client without TLS 1.3 does.
    #[arg(long, value_name = "VERSION", default_value = "1.3")]
    pub tls_max: crate::probe::TlsMax,
    /// Append the TLS secrets of the session to this file (NSS key log format, for Wireshark). The
    /// password is then kept out of the Client Info PDU.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Write the session as a pcapng capture (the real bytes in synthesized IP and TCP headers).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Put the TLS secrets into the --pcap file, so that Wireshark and `rdptrace replay` open it decrypted.
    /// The password is then kept out of the Client Info PDU.
    #[arg(long, requires = "pcap")]
    pub embed_secrets: bool,
}

/// How to reach the target: through an RD Gateway, with a load balancer's routing token, following
/// redirections or not. Shared by `probe` and `demo`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RouteArgs {
    /// Go through this RD Gateway ([MS-TSGU]): https://gw.example[:port] (port 443 by default). A .rdp file's
    /// gatewayhostname sets it too.
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// The gateway user (DOMAIN\user or user@domain). Its password comes from RDPTRACE_GATEWAY_PASSWORD,
    /// --gateway-password-file, or a prompt on a terminal; never from the command line. Without it, the
    /// gateway gets --user and its password, as mstsc uses them by default.
    #[arg(long, value_name = "USER")]
    pub gateway_user: Option<String>,
    /// Read the gateway password from this file (first line).
    #[arg(long, value_name = "FILE")]
    pub gateway_password_file: Option<PathBuf>,
    /// The gateway transport: auto tries WebSocket, then HTTP (RDG_OUT_DATA and RDG_IN_DATA), as mstsc
    /// does; rpc is RPC over HTTP (RPC_IN_DATA and RPC_OUT_DATA), only when asked.
    #[arg(long, value_enum, value_name = "TRANSPORT", default_value_t = TransportChoice::Auto)]
    pub gateway_transport: TransportChoice,
    /// The gateway authentication; by default the first the gateway offers of Negotiate, NTLM, Basic (a
    /// .rdp file's gatewaycredentialssource sets it too).
    #[arg(long, value_enum, value_name = "SCHEME")]
    pub gateway_auth: Option<Scheme>,
    /// The routing token of the X.224 Connection Request, in place of the cookie: a farm's load-balance info
    /// (tsv://MS Terminal Services Plugin.1.<collection>); a .rdp file's loadbalanceinfo sets it too.
    #[arg(long, value_name = "TOKEN")]
    pub load_balance_info: Option<String>,
    /// Stop at a Server Redirection PDU instead of following it (the probe follows at most 3 connections).
    #[arg(long)]
    pub no_follow: bool,
}

/// Why a route cannot be taken as given.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayAddressError),
    #[error("--load-balance-info {0:?} is not printable ASCII text of 1 to 238 characters")]
    LoadBalanceInfo(String),
}

impl RouteArgs {
    /// Whether a gateway password is needed: a gateway user, and a gateway (given, or from a .rdp file).
    pub fn gateway_password_needed(&self, specs: &[TargetSpec]) -> Option<&str> {
        let gateway = self.gateway.is_some() || specs.iter().any(|s| s.gateway.is_some());
        self.gateway_user.as_deref().filter(|_| gateway)
    }

    /// Applies the route to a configuration: the command line's settings over those of the target's .rdp
    /// file. `gateway_password` goes with `--gateway-user`; without a gateway user the gateway gets the
    /// connection's credentials.
    pub fn apply(
        &self,
        cfg: &mut ProbeConfig,
        spec: Option<&TargetSpec>,
        gateway_password: Option<&Password>,
    ) -> Result<(), RouteError> {
        let gateway = self
            .gateway
            .as_deref()
            .or_else(|| spec.and_then(|s| s.gateway.as_deref()));
        if let Some(url) = gateway {
            let mut gw = GatewayConfig::new(url)?;
            gw.transport = self.gateway_transport;
            gw.auth = self
                .gateway_auth
                .or_else(|| spec.and_then(|s| s.gateway_auth));
            gw.credentials = match (&self.gateway_user, gateway_password) {
                (Some(user), Some(p)) => Some(GatewayCredentials {
                    user: user.clone(),
                    domain: None,
                    password: p.clone(),
                }),
                _ => cfg.credentials.as_ref().map(|c| GatewayCredentials {
                    user: c.user.clone(),
                    domain: c.domain.clone(),
                    password: c.password.clone(),
                }),
            };
            cfg.gateway = Some(gw);
        }
        let lb = self
            .load_balance_info
            .clone()
            .or_else(|| spec.and_then(|s| s.load_balance_info.clone()));
        if let Some(token) = &lb {
            let printable = !token.is_empty()
                && token.len() <= 238
                && token.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !printable {
                return Err(RouteError::LoadBalanceInfo(token.clone()));
            }
        }
        cfg.load_balance_info = lb;
        cfg.follow_redirects = !self.no_follow;
        Ok(())
    }
}

/// How to print: shared by the commands that print traces.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// One JSON document (schema rdptrace/1) per line instead of the timeline.
    #[arg(long)]
    pub json: bool,
    /// `-v` given: timelines show more.
    #[arg(from_global)]
    pub verbose: u8,
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s}"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!("seconds must be above 0 and at most 86400: {s}"));
    }
    Ok(Duration::from_secs_f64(v))
}

// ---- one target's configuration ----------------------------------------------------------------------

/// Why a target cannot be probed as configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not `host[:port]`.
    #[error("{0}")]
    Target(String),
    #[error("--security nla needs --user (and a password)")]
    NlaWithoutUser,
    #[error("the password variable {0} (password-env) is not set")]
    PasswordEnvUnset(String),
    #[error("user {0} needs a password: password-env=VAR, {PASSWORD_ENV} or --password-file")]
    NoPassword(String),
    #[error("wrong-password=yes needs a user")]
    WrongPasswordWithoutUser,
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("--auth kerberos needs a realm: a user name user@REALM, or --domain")]
    KerberosWithoutRealm,
}

/// [`ConfigError`] of the target of a line or file.
#[derive(Debug, thiserror::Error)]
#[error("{target} ({origin}): {error}")]
pub struct TargetConfigError {
    pub target: String,
    /// Where the target came from (`argv`, `hosts.txt:12`).
    pub origin: String,
    #[source]
    pub error: ConfigError,
}

impl ProbeOptions {
    /// A probe configuration for one target.
    pub fn config(
        &self,
        target: &str,
        password: Option<&Password>,
    ) -> Result<ProbeConfig, ConfigError> {
        let mut cfg = ProbeConfig::new(target).map_err(|e| ConfigError::Target(e.to_string()))?;
        cfg.credentials = match (&self.user, password) {
            (Some(user), Some(p)) => Some(Credentials {
                user: user.clone(),
                domain: self.domain.clone(),
                password: p.clone(),
            }),
            _ => None,
        };
        if matches!(self.security, Security::Nla | Security::NlaEx) && cfg.credentials.is_none() {
            return Err(ConfigError::NlaWithoutUser);
        }
        cfg.security = self.security;
        cfg.auth = self.auth;
        cfg.kdc = self.kdc.clone();
        if self.auth == Auth::Kerberos
            && let Some(c) = &cfg.credentials
            && super::kerberos::realm_of(&c.user, c.domain.as_deref()).is_none()
        {
            return Err(ConfigError::KerberosWithoutRealm);
        }
        cfg.timeout = self.timeout;
        cfg.phase_timeout = self.phase_timeout;
        cfg.watch = self.watch;
        cfg.strict_cert = self.strict_cert;
        cfg.tls_max = self.tls_max;
        cfg.keylog = self.keylog.clone();
        cfg.pcap = self.pcap.clone();
        cfg.embed_secrets = self.embed_secrets;
        Ok(cfg)
    }

    /// The probe configuration of `spec`: these options, with what its line or file says.
    ///
    /// The password is the one in the line's `password-env` variable (read from `env`), else `password` (the
    /// command line's). `wrong-password=yes` appends text to it, so that the logon certainly fails.
    pub fn for_target(
        &self,
        spec: &TargetSpec,
        password: Option<&Password>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProbeConfig, ConfigError> {
        let mut o = self.clone();
        if spec.user.is_some() {
            o.user = spec.user.clone();
            o.domain = spec.domain.clone().or(o.domain);
        } else if spec.domain.is_some() {
            o.domain = spec.domain.clone();
        }
        if let Some(s) = spec.security {
            o.security = s;
        }
        if let Some(a) = spec.auth {
            o.auth = a;
        }
        if spec.kdc.is_some() {
            o.kdc = spec.kdc.clone();
        }
        if let Some(s) = spec.strict_cert {
            o.strict_cert = s;
        }
        o.timeout = spec.timeout.unwrap_or(o.timeout);
        o.phase_timeout = spec.phase_timeout.unwrap_or(o.phase_timeout);
        o.watch = spec.watch.unwrap_or(o.watch);
        let mut password = match &spec.password_env {
            Some(var) => Some(Password::new(
                env(var).ok_or_else(|| ConfigError::PasswordEnvUnset(var.clone()))?,
            )),
            None => password.cloned(),
        };
        if let Some(user) = &o.user
            && password.is_none()
        {
            return Err(ConfigError::NoPassword(user.clone()));
        }
        if spec.wrong_password {
            let right = match (&o.user, &password) {
                (Some(_), Some(p)) => p.expose(),
                _ => return Err(ConfigError::WrongPasswordWithoutUser),
            };
            password = Some(Password::new(format!("{right}-not-the-password")));
        }
        o.config(&spec.target, password.as_ref())
    }
}

// ---- one target probed, judged and rendered -----------------------------------------------------------

/// How a probed target is rendered.
#[derive(Debug, Clone, Copy)]
pub struct Render {
    /// The JSON document rather than text.
    pub json: bool,
    /// The full timeline (rather than the one line of a fleet run).
    pub timeline: bool,
    pub verbose: bool,
    /// A JUnit case is wanted (it holds the timeline).
    pub junit: bool,
}

/// A target probed and judged, its trace already rendered and dropped.
#[derive(Debug)]
pub struct Probed {
    pub spec: TargetSpec,
    pub verdict: Verdict,
    pub outcomes: Vec<Outcome>,
    /// It reached the active state or, with expectations, they all hold.
    pub passed: bool,
    /// 0 when it passed; else [`EXIT_UNMET`] with expectations, the verdict's code without.
    pub code: u8,
    /// The timeline and the expectations' judgement, when [`Render::timeline`] or [`Render::junit`].
    pub timeline: Option<String>,
    /// The `rdptrace/1` document, with `name` and `expectations`, when [`Render::json`].
    pub json: Option<String>,
    pub seconds: f64,
}

/// Probes the target of `cfg`, records the notes of its line or file, judges its expectations and renders
/// what `render` asks for.
pub async fn probe_target(
    cfg: ProbeConfig,
    spec: TargetSpec,
    render: Render,
) -> Result<Probed, SerializeError> {
    let started = std::time::Instant::now();
    let mut trace = super::probe(&cfg).await;
    add_notes(&mut trace, &spec.notes);
    let verdict = crate::diagnose::diagnose(&trace);
    let outcomes = if spec.expect.is_empty() {
        Vec::new()
    } else {
        crate::check::evaluate(&cfg, &spec.expect, Some((&trace, &verdict))).await
    };
    let passed = if spec.expect.is_empty() {
        verdict.ok
    } else {
        crate::check::all_hold(&outcomes)
    };
    let code = match (passed, spec.expect.is_empty()) {
        (true, _) => 0,
        (false, true) => verdict.exit_code(),
        (false, false) => EXIT_UNMET,
    };
    let timeline = (render.timeline || render.junit).then(|| {
        let mut t = crate::report::text::render(
            &trace,
            &verdict,
            crate::report::text::Options {
                verbose: render.verbose,
            },
        );
        if !outcomes.is_empty() {
            t.push('\n');
            t.push_str(&crate::check::render(&spec.target, &outcomes));
        }
        t
    });
    let json = if render.json {
        Some(json_document(&trace, &verdict, &spec, &outcomes)?)
    } else {
        None
    };
    Ok(Probed {
        spec,
        verdict,
        outcomes,
        passed,
        code,
        timeline,
        json,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Records a .rdp file's notes (what it asks for that the probe does otherwise) in the trace.
fn add_notes(trace: &mut Trace, notes: &[String]) {
    for note in notes {
        trace.record_event_in(
            PhaseName::Tcp,
            0.0,
            EventKind::Anomaly {
                detail: note.clone(),
            },
        );
        trace.fact_in(PhaseName::Tcp, Fact::RdpFileNote, note.clone());
    }
}

/// The `rdptrace/1` document of a target, with its `name` and its `expectations`, as one line.
fn json_document(
    trace: &Trace,
    verdict: &Verdict,
    spec: &TargetSpec,
    outcomes: &[Outcome],
) -> Result<String, SerializeError> {
    let mut doc = crate::report::json::document(trace, verdict);
    if let Some(map) = doc.as_object_mut() {
        if let Some(name) = &spec.name {
            map.insert("name".to_owned(), name.clone().into());
        }
        if !outcomes.is_empty() {
            map.insert(
                "expectations".to_owned(),
                crate::report::json_value(outcomes)?,
            );
        }
    }
    Ok(format!("{doc}\n"))
}

impl Probed {
    /// The target's JUnit case: the verdict's detail, or the expectations that do not hold, as its failure.
    pub fn case(&self) -> Case {
        Case {
            name: self.spec.label().to_owned(),
            classname: "rdptrace.probe".to_owned(),
            failure: (!self.passed).then(|| {
                let unmet: Vec<String> = self
                    .outcomes
                    .iter()
                    .filter(|o| !o.holds)
                    .map(|o| {
                        format!(
                            "{}: expected {}; seen {}",
                            o.expectation, o.expected, o.seen
                        )
                    })
                    .collect();
                if unmet.is_empty() {
                    (
                        self.verdict.detail.clone(),
                        self.verdict.cause.as_str().to_owned(),
                    )
                } else {
                    (unmet.join("; "), "expectation".to_owned())
                }
            }),
            system_out: self.timeline.clone(),
            seconds: Some(self.seconds),
        }
    }
}

// ---- the command -------------------------------------------------------------------------------------

/// No target was given.
#[derive(Debug, thiserror::Error)]
#[error("no targets: give TARGET, --targets FILE or --rdp-file FILE")]
pub struct NoTargets;

/// `rdptrace probe`: one target here, several in [`crate::fleet::run`].
pub fn run(args: ProbeArgs) -> Result<ExitCode, CliError> {
    let specs = crate::fleet::collect(&args.targets, &args.fleet)?;
    if specs.is_empty() {
        return Err(CliError::usage(NoTargets));
    }
    let total_input = specs.len();
    let shard = crate::fleet::shard::resolve(
        args.fleet.shard,
        args.fleet.shard_count,
        &crate::fleet::targets::process_env,
    )
    .map_err(CliError::usage)?;
    let specs: Vec<(usize, TargetSpec)> = specs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.keeps(*i)))
        .collect();
    if specs.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "rdptrace: shard {} of {total_input} targets is empty",
            shard.map(|s| s.to_string()).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The command line's password serves every target with a user and no password-env of its own.
    let first_user = specs
        .iter()
        .filter(|(_, s)| s.password_env.is_none())
        .find_map(|(_, s)| s.user.clone().or_else(|| args.options.user.clone()));
    let password = read_password(first_user.as_deref(), args.options.password_file.as_deref())?;
    let just_specs: Vec<TargetSpec> = specs.iter().map(|(_, s)| s.clone()).collect();
    let gateway_password = read_gateway_password(
        args.route.gateway_password_needed(&just_specs),
        args.route.gateway_password_file.as_deref(),
    )?;
    let mut jobs = Vec::with_capacity(specs.len());
    for (position, spec) in specs {
        let config_error = |error: ConfigError| {
            CliError::usage(TargetConfigError {
                target: spec.target.clone(),
                origin: spec.source.clone(),
                error,
            })
        };
        let mut cfg = args
            .options
            .for_target(
                &spec,
                password.as_ref(),
                &crate::fleet::targets::process_env,
            )
            .map_err(config_error)?;
        args.route
            .apply(&mut cfg, Some(&spec), gateway_password.as_ref())
            .map_err(|e| config_error(e.into()))?;
        jobs.push((position, cfg, spec));
    }
    let junit = match &args.fleet.junit {
        Some(path) => Some(JunitWriter::create(path, "rdptrace probe").map_err(CliError::failure)?),
        None => None,
    };
    let runtime = crate::command::runtime()?;
    let render = Render {
        json: args.output.json,
        timeline: jobs.len() == 1 || args.fleet.detail,
        verbose: args.output.verbose > 0,
        junit: junit.is_some(),
    };
    match <[_; 1]>::try_from(jobs) {
        Ok([(position, cfg, spec)]) => {
            // A task of its own, as in a fleet run: a panic in it is this command's failure, not a crash.
            let probed = runtime
                .block_on(runtime.spawn(probe_target(cfg, spec, render)))
                .map_err(CliError::failure)??;
            if let Some(text) = probed.json.as_ref().or(probed.timeline.as_ref()) {
                crate::report::stdout::print(text)?;
            }
            if let Some(mut w) = junit {
                w.add(position as u64, &probed.case())
                    .map_err(CliError::failure)?;
                w.finish().map_err(CliError::failure)?;
            }
            Ok(ExitCode::from(probed.code))
        }
        Err(jobs) => crate::fleet::run(&runtime, jobs, &args.fleet, render, junit),
    }
}

/// Prints one trace and its verdict (`demo`).
pub fn print(trace: &Trace, verdict: &Verdict, output: &OutputArgs) -> Result<(), CliError> {
    if output.json {
        crate::report::stdout::print(&format!("{}\n", crate::report::json::line(trace, verdict)))?;
    } else {
        crate::report::stdout::print(&crate::report::text::render(
            trace,
            verdict,
            crate::report::text::Options {
                verbose: output.verbose > 0,
            },
        ))?;
    }
    Ok(())
}
