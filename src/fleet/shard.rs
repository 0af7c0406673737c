//! `--shard auto`: the shard of this job from the environment of the scheduler that runs it.
//!
//! | scheduler | index | count |
//! | --- | --- | --- |
//! | any (and GitHub Actions, which sets none: pass `strategy.job-index` and `strategy.job-total`) | `RDPTRACE_SHARD_INDEX`, from 0 | `--shard-count` or `RDPTRACE_SHARD_COUNT` |
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX`, from 0 | `--shard-count` or `RDPTRACE_SHARD_COUNT` (the Job's `completions`) |
//! | GitLab CI `parallel: N` | `CI_NODE_INDEX`, from 1 | `CI_NODE_TOTAL` (or `--shard-count`) |
//!
//! The first variable of the table that is set decides; the shard is `I/N` as `--shard I/N` takes it.

use super::Shard;

/// The index of this job, from 0, whatever the scheduler (GitHub Actions: `${{ strategy.job-index }}`).
pub const INDEX_ENV: &str = "RDPTRACE_SHARD_INDEX";
/// How many jobs share the targets (GitHub Actions: `${{ strategy.job-total }}`); `--shard-count`.
pub const COUNT_ENV: &str = "RDPTRACE_SHARD_COUNT";
/// Kubernetes Indexed Jobs: the completion index, from 0.
pub const KUBERNETES_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// GitLab CI with `parallel: N`: the job's index, from 1.
pub const GITLAB_INDEX_ENV: &str = "CI_NODE_INDEX";
/// GitLab CI with `parallel: N`: N.
pub const GITLAB_TOTAL_ENV: &str = "CI_NODE_TOTAL";

/// `--shard`: `I/N`, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Fixed(Shard),
    Auto,
}

impl ShardArg {
    pub fn parse(s: &str) -> Result<ShardArg, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            Ok(ShardArg::Auto)
        } else {
            Shard::parse(s).map(ShardArg::Fixed)
        }
    }
}

/// Why `--shard auto` found no shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoShardError {
    #[error(
        "--shard auto: no shard index in the environment ({INDEX_ENV}, {KUBERNETES_INDEX_ENV} or {GITLAB_INDEX_ENV})"
    )]
    NoIndex,
    #[error(
        "--shard auto: {index_var} is set but not the shard count: give --shard-count N or set {COUNT_ENV}"
    )]
    NoCount { index_var: &'static str },
    #[error("--shard auto: {var}={value} is not a whole number")]
    NotANumber { var: &'static str, value: String },
    #[error("--shard auto: {var} gives shard {index} of {count}, outside 1 to {count}")]
    OutOfRange {
        var: &'static str,
        index: u64,
        count: u64,
    },
}

fn number(var: &'static str, value: &str) -> Result<u64, AutoShardError> {
    value
        .trim()
        .parse()
        .map_err(|_| AutoShardError::NotANumber {
            var,
            value: value.to_owned(),
        })
}

/// The shard to probe: `--shard I/N` as given, `--shard auto` from `env`, with `count` from
/// `--shard-count` (or `RDPTRACE_SHARD_COUNT`, which clap reads into it).
pub fn resolve(
    arg: Option<ShardArg>,
    count: Option<u64>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, AutoShardError> {
    match arg {
        None => return Ok(None),
        Some(ShardArg::Fixed(s)) => return Ok(Some(s)),
        Some(ShardArg::Auto) => {}
    }
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    // (variable, index from 1, count)
    let (index_var, index, count) = if let Some(v) = var(INDEX_ENV) {
        let count = count.ok_or(AutoShardError::NoCount {
            index_var: INDEX_ENV,
        })?;
        (INDEX_ENV, number(INDEX_ENV, &v)?.saturating_add(1), count)
    } else if let Some(v) = var(KUBERNETES_INDEX_ENV) {
        let count = count.ok_or(AutoShardError::NoCount {
            index_var: KUBERNETES_INDEX_ENV,
        })?;
        (
            KUBERNETES_INDEX_ENV,
            number(KUBERNETES_INDEX_ENV, &v)?.saturating_add(1),
            count,
        )
    } else if let Some(v) = var(GITLAB_INDEX_ENV) {
        let count = match (count, var(GITLAB_TOTAL_ENV)) {
            (Some(c), _) => c,
            (None, Some(total)) => number(GITLAB_TOTAL_ENV, &total)?,
            (None, None) => {
                return Err(AutoShardError::NoCount {
                    index_var: GITLAB_INDEX_ENV,
                });
            }
        };
        (GITLAB_INDEX_ENV, number(GITLAB_INDEX_ENV, &v)?, count)
    } else {
        return Err(AutoShardError::NoIndex);
    };
    let out_of_range = AutoShardError::OutOfRange {
        var: index_var,
        index,
        count,
    };
    if index == 0 || count == 0 || index > count {
        return Err(out_of_range);
    }
    let (Ok(index), Ok(count)) = (usize::try_from(index), usize::try_from(count)) else {
        return Err(out_of_range);
    };
    tracing::info!(var = index_var, index, count, "shard from the environment");
    Ok(Some(Shard { index, count }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn auto(
        count: Option<u64>,
        pairs: &'static [(&'static str, &'static str)],
    ) -> Result<Option<Shard>, AutoShardError> {
        resolve(Some(ShardArg::Auto), count, &env(pairs))
    }

    #[test]
    fn each_scheduler_gives_its_shard() {
        let s = |i, n| Ok(Some(Shard { index: i, count: n }));
        // Kubernetes: completion index from 0, count from --shard-count.
        assert_eq!(auto(Some(4), &[("JOB_COMPLETION_INDEX", "0")]), s(1, 4));
        assert_eq!(auto(Some(4), &[("JOB_COMPLETION_INDEX", "3")]), s(4, 4));
        // GitLab: from 1, with its total.
        assert_eq!(
            auto(None, &[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]),
            s(2, 3)
        );
        // GitHub Actions, through rdptrace's own variables.
        assert_eq!(auto(Some(5), &[("RDPTRACE_SHARD_INDEX", "4")]), s(5, 5));
        // rdptrace's own variable wins over a scheduler's.
        assert_eq!(
            auto(
                Some(2),
                &[("RDPTRACE_SHARD_INDEX", "1"), ("JOB_COMPLETION_INDEX", "0")]
            ),
            s(2, 2)
        );
        assert_eq!(
            resolve(Some(ShardArg::parse("2/3").unwrap()), None, &env(&[])),
            s(2, 3)
        );
        assert_eq!(
            resolve(None, Some(3), &env(&[("JOB_COMPLETION_INDEX", "1")])),
            Ok(None)
        );
    }

    #[test]
    fn what_cannot_be_a_shard_is_an_error() {
        assert_eq!(auto(Some(2), &[]), Err(AutoShardError::NoIndex));
        assert!(matches!(
            auto(None, &[("JOB_COMPLETION_INDEX", "0")]),
            Err(AutoShardError::NoCount { .. })
        ));
        assert!(matches!(
            auto(Some(2), &[("JOB_COMPLETION_INDEX", "2")]),
            Err(AutoShardError::OutOfRange {
                index: 3,
                count: 2,
                ..
            })
        ));
        assert!(matches!(
            auto(None, &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "2")]),
            Err(AutoShardError::OutOfRange { .. })
        ));
        assert!(matches!(
            auto(Some(2), &[("RDPTRACE_SHARD_INDEX", "x")]),
            Err(AutoShardError::NotANumber { .. })
        ));
        assert_eq!(ShardArg::parse("AUTO"), Ok(ShardArg::Auto));
        assert!(ShardArg::parse("0/2").is_err());
    }
}
