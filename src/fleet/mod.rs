//! Fleet mode: `rdptrace probe` over many targets, for CI and for inventories.
//!
//! Targets come from the command line, from targets files ([`targets`]), from stdin (`-`) and from .rdp
//! files ([`rdpfile`]), in that order; `--shard I/N` keeps every N-th of them before anything is probed.
//! Probes run as tokio tasks, at most `--concurrency` at once (a semaphore), each bounded by the probe's
//! own deadlines (`--timeout`, `--phase-timeout`). Results stream as they finish.
//!
//! Memory stays bounded whatever the number of targets: a task renders what is printed and what the
//! JUnit report needs as soon as its probe ends and drops the trace, so at most `--concurrency` traces
//! exist at once; the main loop keeps counters and one short line per failing target
//! ([`summary::Summary`]); the JUnit writer spools each case to disk as it comes ([`junit`]).

pub mod junit;
pub mod rdpfile;
pub mod summary;
pub mod targets;

use std::io::{BufReader, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use self::junit::{Case, JunitWriter};
use self::summary::{Entry, Summary};
pub use self::targets::{Shard, TargetSpec};
use crate::check::Outcome;
use crate::probe::ProbeConfig;
use crate::probe::cli::{ProbeArgs, ProbeOptions};
use crate::trace::Fact;
use crate::trace::{EventKind, PhaseName, Trace};
use crate::verdict::Verdict;

/// Exit code of a target whose expectations (targets file `expect=`) did not all hold.
pub const EXIT_UNMET: u8 = 4;

/// The fleet options of `rdptrace probe`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FleetArgs {
    /// Read targets from FILE, one `host[:port] [key=value...]` per line (repeatable; - for stdin).
    #[arg(long = "targets", short = 'T', value_name = "FILE")]
    pub targets_files: Vec<PathBuf>,
    /// Read a target from an .rdp file as mstsc writes it (repeatable).
    #[arg(long = "rdp-file", value_name = "FILE")]
    pub rdp_files: Vec<PathBuf>,
    /// How many targets to probe at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// With several targets, print every full timeline instead of one line per target.
    #[arg(long)]
    pub detail: bool,
    /// Write a JUnit XML report: one test case per target.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Probe only targets I, I+N, I+2N, ... of the input (I from 1 to N), to split a run across jobs.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
}

/// Collects the targets in input order: arguments, targets files, .rdp files. `-` reads stdin once.
pub fn collect(args: &ProbeArgs) -> Result<Vec<TargetSpec>, String> {
    let mut out = Vec::new();
    let mut stdin_used = false;
    let mut read_stdin = |out: &mut Vec<TargetSpec>| -> Result<(), String> {
        if stdin_used {
            return Err("stdin (-) given more than once".to_owned());
        }
        stdin_used = true;
        out.extend(targets::read(std::io::stdin().lock(), "stdin")?);
        Ok(())
    };
    for t in &args.targets {
        if t == "-" {
            read_stdin(&mut out)?;
        } else {
            crate::probe::split_target(t)?;
            out.push(TargetSpec::new(t, "argv"));
        }
    }
    for path in &args.fleet.targets_files {
        if path.as_os_str() == "-" {
            read_stdin(&mut out)?;
            continue;
        }
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        out.extend(targets::read(BufReader::new(file), &name)?);
    }
    for path in &args.fleet.rdp_files {
        out.push(rdpfile::read(path)?);
    }
    Ok(out)
}

/// The probe configuration of one target: the command line's options, with what its line or file says.
///
/// The password is the one in the line's `password-env` variable (read from `env`), else `password` (the
/// command line's). `wrong-password=yes` appends text to it, so that the logon certainly fails.
pub fn config(
    spec: &TargetSpec,
    options: &ProbeOptions,
    password: Option<&crate::probe::Password>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProbeConfig, String> {
    let mut o = options.clone();
    if spec.user.is_some() {
        o.user = spec.user.clone();
        o.domain = spec.domain.clone().or(o.domain);
    } else if spec.domain.is_some() {
        o.domain = spec.domain.clone();
    }
    if let Some(s) = spec.security {
        o.security = s;
    }
    if let Some(s) = spec.strict_cert {
        o.strict_cert = s;
    }
    o.timeout = spec.timeout.unwrap_or(o.timeout);
    o.phase_timeout = spec.phase_timeout.unwrap_or(o.phase_timeout);
    o.watch = spec.watch.unwrap_or(o.watch);
    let mut password = match &spec.password_env {
        Some(var) => Some(crate::probe::Password::new(env(var).ok_or_else(|| {
            format!("the password variable {var} (password-env) is not set")
        })?)),
        None => password.cloned(),
    };
    if o.user.is_some() && password.is_none() {
        return Err(format!(
            "user {} needs a password: password-env=VAR, RDPTRACE_PASSWORD or --password-file",
            o.user.as_deref().unwrap_or_default()
        ));
    }
    if spec.wrong_password {
        let right = match (&o.user, &password) {
            (Some(_), Some(p)) => p.expose(),
            _ => return Err("wrong-password=yes needs a user".to_owned()),
        };
        password = Some(crate::probe::Password::new(format!(
            "{right}-not-the-password"
        )));
    }
    o.config(&spec.target, password.as_ref())
}

/// What a finished task hands to the main loop: text already rendered, the trace already dropped.
struct Done {
    position: usize,
    entry: Entry,
    /// What to print on stdout (a line, a timeline or a JSON document), ending in a newline.
    printed: String,
    case: Option<Case>,
}

/// How a task renders its result.
#[derive(Debug, Clone, Copy)]
struct Render {
    json: bool,
    /// Full timelines rather than one line.
    timeline: bool,
    verbose: bool,
    junit: bool,
}

/// Records a .rdp file's notes (a gateway not followed) in the trace.
fn add_notes(trace: &mut Trace, notes: &[String]) {
    for note in notes {
        trace.record_event_in(
            PhaseName::Tcp,
            0.0,
            EventKind::Anomaly {
                detail: note.clone(),
            },
        );
        trace.fact_in(PhaseName::Tcp, Fact::GatewayNotFollowed, note.clone());
    }
}

/// One line for a finished target.
fn one_line(spec: &TargetSpec, verdict: &Verdict, outcomes: &[Outcome], passed: bool) -> String {
    let mut s = format!("{:<4} {}", if passed { "ok" } else { "FAIL" }, spec.target);
    if let Some(name) = &spec.name {
        s.push_str(&format!(" ({name})"));
    }
    if verdict.ok {
        s.push_str(&format!("  active  {}", verdict.detail));
    } else {
        s.push_str(&format!(
            "  {}  {}  {}",
            verdict.phase.map_or("-", |p| p.as_str()),
            verdict.cause.as_str(),
            verdict.detail
        ));
        if let Some(m) = &verdict.mstsc {
            s.push_str(&format!(
                "  (mstsc 0x{:x}/0x{:x})",
                m.disc_reason.code, m.extended.code
            ));
        }
    }
    if !outcomes.is_empty() {
        let list: Vec<String> = outcomes
            .iter()
            .map(|o| {
                if o.holds {
                    format!("{} holds", o.expectation)
                } else {
                    format!("{} FAILS (seen {})", o.expectation, o.seen)
                }
            })
            .collect();
        s.push_str(&format!("  expect: {}", list.join("; ")));
    }
    for note in &spec.notes {
        s.push_str(&format!("  note: {note}"));
    }
    s.push('\n');
    s
}

async fn run_one(position: usize, cfg: ProbeConfig, spec: TargetSpec, r: Render) -> Done {
    let started = std::time::Instant::now();
    let mut trace = crate::probe::probe(&cfg).await;
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
        (false, true) => crate::cli::exit_code(&verdict),
        (false, false) => EXIT_UNMET,
    };
    let timeline = (r.timeline || r.junit).then(|| {
        let mut t = crate::report::text::render(
            &trace,
            &verdict,
            crate::report::text::Options { verbose: r.verbose },
        );
        if !outcomes.is_empty() {
            t.push('\n');
            t.push_str(&crate::check::render(&spec.target, &outcomes));
        }
        t
    });
    let printed = if r.json {
        let mut doc = crate::report::json::document(&trace, &verdict);
        if let Some(map) = doc.as_object_mut() {
            if let Some(name) = &spec.name {
                map.insert("name".to_owned(), name.clone().into());
            }
            if !outcomes.is_empty() {
                map.insert(
                    "expectations".to_owned(),
                    serde_json::to_value(&outcomes).unwrap_or_default(),
                );
            }
        }
        format!("{doc}\n")
    } else if r.timeline {
        timeline.clone().unwrap_or_default()
    } else {
        one_line(&spec, &verdict, &outcomes, passed)
    };
    let case = r.junit.then(|| Case {
        name: spec.label().to_owned(),
        classname: "rdptrace.probe".to_owned(),
        failure: (!passed).then(|| {
            let unmet: Vec<String> = outcomes
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
                (verdict.detail.clone(), verdict.cause.as_str().to_owned())
            } else {
                (unmet.join("; "), "expectation".to_owned())
            }
        }),
        system_out: timeline,
        seconds: Some(started.elapsed().as_secs_f64()),
    });
    let entry = Entry {
        position,
        target: spec.target.clone(),
        source: spec.source.clone(),
        passed,
        phase: if verdict.ok {
            "active".to_owned()
        } else {
            verdict.phase.map_or("-", |p| p.as_str()).to_owned()
        },
        cause: verdict.cause.as_str().to_owned(),
        code,
        unmet: (!spec.expect.is_empty()).then(|| outcomes.iter().filter(|o| !o.holds).count()),
    };
    Done {
        position,
        entry,
        printed,
        case,
    }
}

/// `rdptrace probe`: one target or many.
pub fn run(args: ProbeArgs) -> ExitCode {
    let specs = match collect(&args) {
        Ok(s) => s,
        Err(e) => return crate::cli::usage(e),
    };
    if specs.is_empty() {
        return crate::cli::usage("no targets: give TARGET, --targets FILE or --rdp-file FILE");
    }
    let total_input = specs.len();
    let specs: Vec<(usize, TargetSpec)> = specs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| args.fleet.shard.is_none_or(|s| s.keeps(*i)))
        .collect();
    if specs.is_empty() {
        eprintln!(
            "rdptrace: shard {} of {total_input} targets is empty",
            args.fleet.shard.map(|s| s.to_string()).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    // The command line's password serves every target with a user and no password-env of its own.
    let first_user = specs
        .iter()
        .filter(|(_, s)| s.password_env.is_none())
        .find_map(|(_, s)| s.user.clone().or_else(|| args.options.user.clone()));
    let password = match crate::probe::cli::read_password(
        first_user.as_deref(),
        args.options.password_file.as_ref(),
    ) {
        Ok(p) => p,
        Err(e) => return crate::cli::usage(e),
    };
    let mut jobs = Vec::with_capacity(specs.len());
    for (position, spec) in specs {
        match config(
            &spec,
            &args.options,
            password.as_ref(),
            &targets::process_env,
        ) {
            Ok(cfg) => jobs.push((position, cfg, spec)),
            Err(e) => return crate::cli::usage(format!("{} ({}): {e}", spec.target, spec.source)),
        }
    }
    let mut junit = match &args.fleet.junit {
        Some(path) => match JunitWriter::create(path, "rdptrace probe") {
            Ok(w) => Some(w),
            Err(e) => return crate::cli::error(format!("cannot write {}: {e}", path.display())),
        },
        None => None,
    };
    let runtime = match crate::cli::runtime() {
        Ok(r) => r,
        Err(e) => return crate::cli::error(e),
    };
    let many = jobs.len() > 1;
    let render = Render {
        json: args.output.json,
        timeline: !many || args.fleet.detail,
        verbose: crate::cli::verbosity() > 0,
        junit: junit.is_some(),
    };
    let progress = (many && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let concurrency = usize::from(args.fleet.concurrency);
    let mut summary = Summary::default();
    let mut junit_error = None;
    let mut detail_separator = false;
    runtime.block_on(async {
        let permits = Arc::new(Semaphore::new(concurrency));
        // Each sender holds a permit until it has sent, so at most `concurrency` results wait here.
        let (tx, mut rx) = mpsc::channel::<Done>(concurrency);
        let producer = async move {
            for (position, cfg, spec) in jobs {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let target = spec.target.clone();
                    let source = spec.source.clone();
                    let handle = tokio::spawn(run_one(position, cfg, spec, render));
                    let done = match handle.await {
                        Ok(done) => done,
                        Err(e) => internal_error(position, target, source, e.to_string(), render),
                    };
                    let _ = tx.send(done).await;
                    drop(permit);
                });
            }
        };
        let consumer = async {
            while let Some(done) = rx.recv().await {
                let print = || {
                    if render.timeline && many && !render.json && detail_separator {
                        stdout("\n");
                    }
                    stdout(&done.printed);
                };
                match &progress {
                    Some(bar) => bar.suspend(print),
                    None => print(),
                }
                detail_separator = true;
                if let Some(bar) = &progress {
                    bar.set_message(done.entry.target.clone());
                    bar.inc(1);
                }
                if let (Some(w), Some(case)) = (junit.as_mut(), &done.case)
                    && junit_error.is_none()
                    && let Err(e) = w.add(done.position as u64, case)
                {
                    junit_error = Some(e);
                }
                tracing::info!(
                    target = %done.entry.target,
                    phase = %done.entry.phase,
                    cause = %done.entry.cause,
                    passed = done.entry.passed,
                    "target finished"
                );
                summary.add(done.entry);
            }
        };
        tokio::join!(producer, consumer);
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if many {
        let table = summary.render();
        if render.json {
            eprint!("{table}");
        } else {
            stdout(&format!("\n{table}"));
        }
    }
    if let Some(e) = junit_error {
        return crate::cli::error(format!("cannot write the JUnit report: {e}"));
    }
    if let Some(w) = junit
        && let Err(e) = w.finish()
    {
        return crate::cli::error(format!("cannot write the JUnit report: {e}"));
    }
    ExitCode::from(summary.exit_code())
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A result for a task that panicked: counted as a failure of rdptrace itself.
fn internal_error(
    position: usize,
    target: String,
    source: String,
    error: String,
    r: Render,
) -> Done {
    let detail = format!("internal error: {error}");
    Done {
        position,
        printed: if r.json {
            format!(
                "{}\n",
                serde_json::json!({ "schema": crate::report::SCHEMA, "target": target, "error": detail })
            )
        } else {
            format!("FAIL {target}  {detail}\n")
        },
        case: r.junit.then(|| Case {
            name: target.clone(),
            classname: "rdptrace.probe".to_owned(),
            failure: Some((detail.clone(), "internal_error".to_owned())),
            system_out: None,
            seconds: None,
        }),
        entry: Entry {
            position,
            target,
            source,
            passed: false,
            phase: "-".to_owned(),
            cause: "internal_error".to_owned(),
            code: crate::cli::EXIT_ERROR,
            unmet: None,
        },
    }
}
