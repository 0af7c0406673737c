//! The replay of a capture without its secrets against the replay with them: the keyed replay is the
//! reference, and the verdict without secrets must reach its answer or leave it among those it names.

use std::path::Path;

use rdptrace::replay::{Options, Replay, Session};
use rdptrace::trace::PhaseName;
use rdptrace::verdict::{Cause, Verdict};

/// Where a verdict says the connection ended: its failed phase, `None` for the active state.
pub fn phases(v: &Verdict) -> Vec<Option<PhaseName>> {
    let mut out = vec![v.phase];
    if let Some(inferred) = &v.inferred {
        out.extend(inferred.phases.iter().map(|p| Some(*p)));
    }
    out
}

/// Why the verdict without secrets does not agree with the one with them; `None` when it agrees.
///
/// Agreeing: the keyed verdict's phase is the unkeyed one's or among the phases its readings leave open;
/// a Set Error Info is claimed without secrets only when the keyed replay read one, and one the keyed
/// replay read is claimed, or left open beside a bare close (`mstsc_either`); a connection that reached
/// the active state is not called failed unless the readings leave it open.
pub fn disagreement(keyed: &Verdict, plain: &Verdict) -> Option<String> {
    let open = phases(plain);
    let why = if !open.contains(&keyed.phase) {
        format!("phase {:?} not among {open:?}", keyed.phase)
    } else if plain.cause == Cause::ServerErrorInfo && keyed.cause != Cause::ServerErrorInfo {
        "a Set Error Info claimed that the keyed replay did not read".to_owned()
    } else if keyed.cause == Cause::ServerErrorInfo
        && plain.cause != Cause::ServerErrorInfo
        && plain.mstsc_either.is_empty()
    {
        "the keyed replay's Set Error Info neither claimed nor left open".to_owned()
    } else if keyed.ok && !plain.ok && open.len() == 1 {
        "a connection that reached the active state called failed".to_owned()
    } else {
        return None;
    };
    Some(format!(
        "{why}\n      keyed: {} in {:?}: {}\n      plain: {} in {:?}: {}",
        keyed.cause.as_str(),
        keyed.phase,
        keyed.detail,
        plain.cause.as_str(),
        plain.phase,
        plain.detail
    ))
}

/// Each session of `with` beside the session of `without` between the same addresses.
fn pairs<'a>(with: &'a Replay, without: &'a Replay) -> Vec<(&'a Session, Option<&'a Session>)> {
    with.sessions
        .iter()
        .map(|k| {
            let same = without.sessions.iter().find(|p| {
                p.trace.client_addr == k.trace.client_addr
                    && p.trace.server_addr == k.trace.server_addr
            });
            (k, same)
        })
        .collect()
}

/// Replays `capture` with `keyed` options and without any secrets; every disagreement, named by `label`.
pub fn compare(label: &str, capture: &Path, keyed: &Options) -> (usize, Vec<String>) {
    let with = rdptrace::replay::replay(capture, keyed).expect("the keyed replay starts");
    let without =
        rdptrace::replay::replay(capture, &Options::default()).expect("the plain replay starts");
    let mut out = Vec::new();
    let mut inferred = 0;
    for (k, p) in pairs(&with, &without) {
        let Some(p) = p else {
            out.push(format!("{label}: a session missing without secrets"));
            continue;
        };
        if p.verdict.inferred.is_some() {
            inferred += 1;
        }
        if let Some(why) = disagreement(&k.verdict, &p.verdict) {
            out.push(format!("{label} session {}: {why}", k.index));
        }
    }
    if with.sessions.is_empty() {
        out.push(format!("{label}: no session in the capture"));
    }
    (inferred, out)
}
