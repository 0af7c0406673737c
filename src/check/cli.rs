//! `rdptrace check`: arguments and output.

use std::path::PathBuf;
use std::process::ExitCode;

use super::policy::{Policy, PolicyError};
use super::{Expectation, Outcome};
use crate::command::read_password;
use crate::command::{CliError, EXIT_UNMET};
use crate::fleet::junit::{Case, JunitWriter};
use crate::probe::cli::ProbeOptions;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Targets: host, host:port, [v6addr]:port. Without any, the targets of the policy's sections.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// An expectation (repeatable, or comma-separated): active, ok=no, phase=NAME, cause=CAUSE,
    /// errinfo=CODE, tls.tls_version=TLS 1.3, closed=server-fin, nla-required, tls-min=1.2, ... (README
    /// "Targets files and expectations").
    #[arg(long = "expect", short = 'e', value_name = "EXPR")]
    pub expect: Vec<String>,
    /// A TOML policy: the same keys, for every target and in [targets."host"] sections.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write a JUnit XML report: one test case per expectation.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// One JSON document (schema rdptrace-check/1) per target instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: ProbeOptions,
}

/// The schema name of `rdptrace check --json`.
pub const SCHEMA: &str = "rdptrace-check/1";

#[derive(serde::Serialize)]
struct Document<'a> {
    schema: &'static str,
    target: &'a str,
    ok: bool,
    outcomes: &'a [Outcome],
}

/// What the command line and the policy ask for does not make a check.
#[derive(Debug, thiserror::Error)]
pub enum CheckUsage {
    /// An `--expect` the expectation language refuses.
    #[error("{0}")]
    Expectation(String),
    #[error("no targets: name them, or use a policy with [targets.\"host\"] sections")]
    NoTargets,
    #[error("no expectations for {0}: use --expect or --policy")]
    NoExpectations(String),
}

impl From<PolicyError> for CliError {
    /// A policy file that cannot be read is a failure; one that says something wrong, a usage error.
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Read { .. } => CliError::failure(e),
            _ => CliError::usage(e),
        }
    }
}

pub fn run(args: CheckArgs) -> Result<ExitCode, CliError> {
    let mut cli_expect = Vec::new();
    for e in &args.expect {
        let list =
            Expectation::parse_list(e).map_err(|e| CliError::usage(CheckUsage::Expectation(e)))?;
        cli_expect.extend(list);
    }
    let policy = args.policy.as_deref().map(Policy::read).transpose()?;
    let targets = if args.targets.is_empty() {
        policy
            .as_ref()
            .map(Policy::target_names)
            .unwrap_or_default()
    } else {
        args.targets.clone()
    };
    if targets.is_empty() {
        return Err(CliError::usage(CheckUsage::NoTargets));
    }
    let mut plan = Vec::new();
    for t in &targets {
        let mut list = policy.as_ref().map(|p| p.for_target(t)).unwrap_or_default();
        // --expect replaces the policy's expectations of the same key, and keeps all of its own.
        list.retain(|x| !cli_expect.iter().any(|e| e.key() == x.key()));
        list.extend(cli_expect.iter().cloned());
        if list.is_empty() {
            return Err(CliError::usage(CheckUsage::NoExpectations(t.clone())));
        }
        plan.push((t.clone(), list));
    }
    let password = read_password(
        args.options.user.as_deref(),
        args.options.password_file.as_deref(),
    )?;
    let mut configs = Vec::new();
    for (t, list) in plan {
        let cfg = args
            .options
            .config(&t, password.as_ref())
            .map_err(CliError::usage)?;
        configs.push((cfg, list));
    }
    let mut junit = args
        .junit
        .as_deref()
        .map(|path| JunitWriter::create(path, "rdptrace check"))
        .transpose()
        .map_err(CliError::failure)?;
    let runtime = crate::command::runtime()?;
    let mut all = true;
    let mut order = 0u64;
    for (cfg, list) in &configs {
        let outcomes = runtime.block_on(super::evaluate(cfg, list, None));
        let ok = super::all_hold(&outcomes);
        all &= ok;
        if args.json {
            let doc = Document {
                schema: SCHEMA,
                target: &cfg.target,
                ok,
                outcomes: &outcomes,
            };
            crate::report::stdout::print(&crate::report::json_line(&doc)?)?;
        } else {
            crate::report::stdout::print(&super::render(&cfg.target, &outcomes))?;
        }
        if let Some(w) = junit.as_mut() {
            for o in &outcomes {
                let case = Case {
                    name: format!("{} {}", cfg.target, o.expectation),
                    classname: "rdptrace.check".to_owned(),
                    failure: (!o.holds).then(|| {
                        (
                            format!("expected {}; seen {}", o.expected, o.seen),
                            o.expectation.clone(),
                        )
                    }),
                    system_out: Some(o.evidence.join("\n")).filter(|s| !s.is_empty()),
                    seconds: None,
                };
                w.add(order, &case).map_err(CliError::failure)?;
                order += 1;
            }
        }
    }
    if let Some(w) = junit {
        w.finish().map_err(CliError::failure)?;
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNMET)
    })
}
