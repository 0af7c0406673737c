//! `rdptrace check`: arguments and output.

use std::path::PathBuf;
use std::process::ExitCode;

use super::policy::Policy;
use super::{Expectation, Outcome};
use crate::fleet::junit::{Case, JunitWriter};
use crate::probe::cli::ProbeOptions;

/// Exit code when an expectation does not hold.
pub const EXIT_UNMET: u8 = 1;

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

pub fn run(args: CheckArgs) -> ExitCode {
    let mut cli_expect = Vec::new();
    for e in &args.expect {
        match Expectation::parse_list(e) {
            Ok(list) => cli_expect.extend(list),
            Err(e) => return crate::cli::usage(e),
        }
    }
    let policy = match &args.policy {
        Some(p) => match Policy::read(p) {
            Ok(p) => Some(p),
            Err(e) => return crate::cli::usage(e),
        },
        None => None,
    };
    let targets = if args.targets.is_empty() {
        policy
            .as_ref()
            .map(Policy::target_names)
            .unwrap_or_default()
    } else {
        args.targets.clone()
    };
    if targets.is_empty() {
        return crate::cli::usage(
            "no targets: name them, or use a policy with [targets.\"host\"] sections",
        );
    }
    let mut plan = Vec::new();
    for t in &targets {
        let mut list = policy.as_ref().map(|p| p.for_target(t)).unwrap_or_default();
        // --expect replaces the policy's expectations of the same key, and keeps all of its own.
        list.retain(|x| !cli_expect.iter().any(|e| e.key() == x.key()));
        list.extend(cli_expect.iter().cloned());
        if list.is_empty() {
            return crate::cli::usage(format!("no expectations for {t}: use --expect or --policy"));
        }
        plan.push((t.clone(), list));
    }
    let password = match crate::probe::cli::read_password(
        args.options.user.as_deref(),
        args.options.password_file.as_ref(),
    ) {
        Ok(p) => p,
        Err(e) => return crate::cli::usage(e),
    };
    let mut configs = Vec::new();
    for (t, list) in plan {
        match args.options.config(&t, password.as_ref()) {
            Ok(c) => configs.push((c, list)),
            Err(e) => return crate::cli::usage(e),
        }
    }
    let mut junit = match &args.junit {
        Some(path) => match JunitWriter::create(path, "rdptrace check") {
            Ok(w) => Some(w),
            Err(e) => return crate::cli::error(format!("cannot write {}: {e}", path.display())),
        },
        None => None,
    };
    let runtime = match crate::cli::runtime() {
        Ok(r) => r,
        Err(e) => return crate::cli::error(e),
    };
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
            crate::fleet::stdout(&format!(
                "{}\n",
                serde_json::to_string(&doc).unwrap_or_default()
            ));
        } else {
            crate::fleet::stdout(&super::render(&cfg.target, &outcomes));
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
                if let Err(e) = w.add(order, &case) {
                    return crate::cli::error(format!("cannot write the JUnit report: {e}"));
                }
                order += 1;
            }
        }
    }
    if let Some(w) = junit
        && let Err(e) = w.finish()
    {
        return crate::cli::error(format!("cannot write the JUnit report: {e}"));
    }
    if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNMET)
    }
}
