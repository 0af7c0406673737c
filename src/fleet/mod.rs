//! Fleet mode: `rdptrace probe` over many targets, for CI and for inventories.
//!
//! Targets come from the command line, from targets files ([`targets`]), from stdin (`-`) and from .rdp
//! files ([`rdpfile`]), in that order ([`collect`]); `--shard I/N` keeps every N-th of them before anything
//! is probed (`--shard auto` reads I and N from the scheduler's environment: [`shard`]). One target is
//! probed by `probe` itself ([`crate::probe::cli`]); several come here ([`run`]).
//! Probes run as tokio tasks, at most `--concurrency` at once (a semaphore), each bounded by the probe's
//! own deadlines (`--timeout`, `--phase-timeout`). Results stream as they finish.
//!
//! Memory stays bounded whatever the number of targets: a task renders what is printed and what the
//! JUnit report needs as soon as its probe ends and drops the trace, so at most `--concurrency` traces
//! exist at once; the main loop keeps counters and one short line per failing target
//! ([`summary::Summary`]); the JUnit writer spools each case to disk as it comes ([`junit`]).

pub mod junit;
pub mod rdpfile;
pub mod shard;
pub mod summary;
pub mod targets;

use std::io::{BufReader, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use self::junit::{Case, JunitError, JunitWriter};
use self::rdpfile::RdpFileError;
use self::summary::{Entry, Summary};
use self::targets::TargetsError;
pub use self::targets::{Shard, TargetSpec};
use crate::check::Outcome;
use crate::command::{CliError, EXIT_FAILURE};
use crate::probe::ProbeConfig;
use crate::probe::cli::{Probed, Render};
use crate::report::SerializeError;
use crate::verdict::Verdict;

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
    /// Probe only targets I, I+N, I+2N, ... of the input (I from 1 to N), to split a run across jobs;
    /// `auto` takes I from the scheduler (JOB_COMPLETION_INDEX, CI_NODE_INDEX, RDPTRACE_SHARD_INDEX).
    #[arg(long, value_name = "I/N|auto", value_parser = shard::ShardArg::parse)]
    pub shard: Option<shard::ShardArg>,
    /// With --shard auto: how many jobs share the targets (a Kubernetes Job's completions).
    #[arg(long, value_name = "N", env = shard::COUNT_ENV, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub shard_count: Option<u64>,
}

/// Why the targets could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("stdin (-) given more than once")]
    StdinTwice,
    /// A target of the command line that is not `host[:port]`.
    #[error("{0}")]
    Target(String),
    #[error("cannot read {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Targets(#[from] TargetsError),
    #[error(transparent)]
    RdpFile(#[from] RdpFileError),
}

impl From<InputError> for CliError {
    /// A file that cannot be read is a failure; what a file or the command line says, a usage error.
    fn from(e: InputError) -> Self {
        match e {
            InputError::Open { .. }
            | InputError::Targets(TargetsError::Read { .. })
            | InputError::RdpFile(RdpFileError::Read { .. }) => CliError::failure(e),
            _ => CliError::usage(e),
        }
    }
}

/// Collects the targets in input order: `targets` (the command line's), targets files, .rdp files. `-`
/// reads stdin once.
pub fn collect(targets: &[String], fleet: &FleetArgs) -> Result<Vec<TargetSpec>, InputError> {
    let mut out = Vec::new();
    let mut stdin_used = false;
    let mut read_stdin = |out: &mut Vec<TargetSpec>| -> Result<(), InputError> {
        if stdin_used {
            return Err(InputError::StdinTwice);
        }
        stdin_used = true;
        out.extend(targets::read(std::io::stdin().lock(), "stdin")?);
        Ok(())
    };
    for t in targets {
        if t == "-" {
            read_stdin(&mut out)?;
        } else {
            crate::probe::split_target(t).map_err(|e| InputError::Target(e.to_string()))?;
            out.push(TargetSpec::new(t, "argv"));
        }
    }
    for path in &fleet.targets_files {
        if path.as_os_str() == "-" {
            read_stdin(&mut out)?;
            continue;
        }
        let file = std::fs::File::open(path).map_err(|source| InputError::Open {
            path: path.clone(),
            source,
        })?;
        out.extend(targets::read(
            BufReader::new(file),
            &path.display().to_string(),
        )?);
    }
    for path in &fleet.rdp_files {
        out.push(rdpfile::read(path)?);
    }
    Ok(out)
}

/// What a finished task hands to the main loop: text already rendered, the trace already dropped.
struct Done {
    position: usize,
    entry: Entry,
    /// What to print on stdout (a line, a timeline or a JSON document), ending in a newline.
    printed: String,
    case: Option<Case>,
}

impl Done {
    /// What the main loop needs of a probed target at `position`.
    fn new(position: usize, probed: Probed, render: Render) -> Done {
        let case = render.junit.then(|| probed.case());
        let printed = match (&probed.json, &probed.timeline) {
            (Some(json), _) => json.clone(),
            (None, Some(timeline)) if render.timeline => timeline.clone(),
            _ => one_line(
                &probed.spec,
                &probed.verdict,
                &probed.outcomes,
                probed.passed,
            ),
        };
        let Probed {
            spec,
            verdict,
            outcomes,
            passed,
            code,
            ..
        } = probed;
        let entry = Entry {
            position,
            target: spec.target,
            source: spec.source,
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
            s.push_str(&format!("  (mstsc {})", crate::mstsc::pair_text(m)));
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

/// A task's result: the target rendered, or why it could not be.
type Finished = Result<Done, SerializeError>;

/// Why a run over many targets stopped before its summary.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error(transparent)]
    Stdout(#[from] crate::report::stdout::StdoutError),
    #[error(transparent)]
    Serialize(#[from] SerializeError),
}

/// Probes `jobs` (position in the input, configuration, target), at most `--concurrency` at once, printing
/// each result as it finishes, then the summary. The exit code is the first failing target's in input
/// order.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    jobs: Vec<(usize, ProbeConfig, TargetSpec)>,
    fleet: &FleetArgs,
    render: Render,
    mut junit: Option<JunitWriter>,
) -> Result<ExitCode, CliError> {
    let progress = (std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let concurrency = usize::from(fleet.concurrency);
    let mut summary = Summary::default();
    let mut stopped: Option<Stopped> = None;
    // The JUnit report stops at its first error; the run goes on and fails with it at the end.
    let mut junit_error: Option<JunitError> = None;
    let mut detail_separator = false;
    runtime.block_on(async {
        let permits = Arc::new(Semaphore::new(concurrency));
        // Each sender holds a permit until it has sent, so at most `concurrency` results wait here.
        let (tx, mut rx) = mpsc::channel::<Finished>(concurrency);
        let producer = async move {
            for (position, cfg, spec) in jobs {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                if tx.is_closed() {
                    // The main loop stopped: probe nothing more.
                    break;
                }
                let tx = tx.clone();
                tokio::spawn(async move {
                    let target = spec.target.clone();
                    let source = spec.source.clone();
                    let handle = tokio::spawn(crate::probe::cli::probe_target(cfg, spec, render));
                    let done = match handle.await {
                        Ok(probed) => probed.map(|p| Done::new(position, p, render)),
                        Err(e) => Ok(internal_error(
                            position,
                            target,
                            source,
                            e.to_string(),
                            render,
                        )),
                    };
                    let _ = tx.send(done).await;
                    drop(permit);
                });
            }
        };
        let consumer = async {
            while let Some(finished) = rx.recv().await {
                let done = match finished {
                    Ok(done) => done,
                    Err(e) => {
                        // Nothing is printed in its place: the run stops with the error.
                        stopped = Some(e.into());
                        break;
                    }
                };
                let print = || -> Result<(), crate::report::stdout::StdoutError> {
                    if render.timeline && !render.json && detail_separator {
                        crate::report::stdout::print("\n")?;
                    }
                    crate::report::stdout::print(&done.printed)
                };
                let printed = match &progress {
                    Some(bar) => bar.suspend(print),
                    None => print(),
                };
                if let Err(e) = printed {
                    stopped = Some(e.into());
                    break;
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
            // Dropping the receiver ends the producer's tasks' sends: no task waits on a full channel.
            drop(rx);
        };
        tokio::join!(producer, consumer);
    });
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if let Some(e) = stopped {
        return Err(CliError::failure(e));
    }
    let table = summary.render();
    if render.json {
        let _ = write!(std::io::stderr(), "{table}");
    } else {
        crate::report::stdout::print(&format!("\n{table}"))?;
    }
    if let Some(e) = junit_error {
        return Err(CliError::failure(e));
    }
    if let Some(w) = junit {
        w.finish().map_err(CliError::failure)?;
    }
    Ok(ExitCode::from(summary.exit_code()))
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
            code: EXIT_FAILURE,
            unmet: None,
        },
    }
}
