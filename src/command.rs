//! What every command shares: the error it returns ([`CliError`]), the exit codes that are not a
//! verdict's, and the runtime it runs on.
//!
//! A command's `run` returns `Result<ExitCode, CliError>`: the exit code of what it found, or why it could
//! not find it. Only `cli::main` prints the error (`rdptrace: <message>` on stderr) and exits with
//! [`CliError::exit_code`]. The exit codes of connections (0, 3, 10 to 21) are the verdict's
//! ([`crate::verdict::Verdict::exit_code`]); README.md, "Exit codes", lists them all, one meaning each.

/// Exit code: rdptrace could not do what was asked (a file it cannot read or write, a port it cannot bind,
/// a code no table documents).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage error (the arguments, or what a file they name says, do not make a request).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: expectations (`check --expect`, a policy, `expect=` in a targets file) did not all hold.
pub const EXIT_UNMET: u8 = 4;

/// A typed error underneath a [`CliError`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a command produced no result: a usage error or a failure to run, each with the typed error that
/// says why.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The request cannot be done as given: the arguments, or the contents of a file they name
    /// ([`EXIT_USAGE`]).
    #[error(transparent)]
    Usage(Source),
    /// rdptrace could not do what was asked ([`EXIT_FAILURE`]).
    #[error(transparent)]
    Failure(Source),
}

impl CliError {
    /// A usage error.
    pub fn usage(e: impl Into<Source>) -> Self {
        CliError::Usage(e.into())
    }

    /// A failure to run.
    pub fn failure(e: impl Into<Source>) -> Self {
        CliError::Failure(e.into())
    }

    /// The exit code `cli::main` ends with.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Failure(_) => EXIT_FAILURE,
        }
    }
}

impl From<crate::report::stdout::StdoutError> for CliError {
    fn from(e: crate::report::stdout::StdoutError) -> Self {
        CliError::failure(e)
    }
}

impl From<crate::report::SerializeError> for CliError {
    fn from(e: crate::report::SerializeError) -> Self {
        CliError::failure(e)
    }
}

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the runtime: {0}")]
pub struct RuntimeError(#[source] std::io::Error);

/// The tokio runtime the commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(RuntimeError(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::PhaseName;
    use crate::verdict::{EXIT_INCOMPLETE, EXIT_OK, phase_exit_code};

    /// README.md, "Exit codes": one meaning per value.
    #[test]
    fn every_exit_code_means_one_thing() {
        let mut codes = vec![
            EXIT_OK,
            EXIT_FAILURE,
            EXIT_USAGE,
            EXIT_INCOMPLETE,
            EXIT_UNMET,
        ];
        codes.extend(PhaseName::ALL.iter().map(|p| phase_exit_code(*p)));
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "{codes:?}");
        assert_eq!(phase_exit_code(PhaseName::Tcp), 10);
        assert_eq!(phase_exit_code(PhaseName::Active), 21);
    }

    #[test]
    fn errors_keep_their_kind() {
        assert_eq!(CliError::usage("no targets").exit_code(), 2);
        let e = CliError::failure(std::io::Error::other("disk full"));
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.to_string(), "disk full");
    }
}
