//! What every command shares: the error it returns ([`CliError`]), the exit codes that are not a
//! verdict's, the runtime it runs on, and the password intake ([`given_password`], [`read_password`]).
//!
//! A command's `run` returns `Result<ExitCode, CliError>`: the exit code of what it found, or why it could
//! not find it. Only `cli::main` prints the error (`rdptrace: <message>` on stderr) and exits with
//! [`CliError::exit_code`]. The exit codes of connections (0, 3, 10 to 21) are the verdict's
//! ([`crate::verdict::Verdict::exit_code`]); README.md, "Exit codes", lists them all, one meaning each.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use crate::probe::Password;

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

// ---- password intake ---------------------------------------------------------------------------------

/// The environment variable a password is read from (`probe`, `check`, `demo`, and the password the
/// built-in target accepts in `serve`).
pub const PASSWORD_ENV: &str = "RDPTRACE_PASSWORD";
/// The environment variable the RD Gateway password (`--gateway-user`) is read from.
pub const GATEWAY_PASSWORD_ENV: &str = "RDPTRACE_GATEWAY_PASSWORD";

/// Why there is no password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot read the password file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the password file {} is empty", .0.display())]
    Empty(PathBuf),
    #[error("cannot read the password: {0}")]
    Prompt(#[source] std::io::Error),
    #[error(
        "a password is needed for --user: set {PASSWORD_ENV}, use --password-file FILE, or run on a terminal"
    )]
    Needed,
    #[error(
        "a password is needed for --gateway-user: set {GATEWAY_PASSWORD_ENV}, use --gateway-password-file FILE, or run on a terminal"
    )]
    GatewayNeeded,
}

impl From<PasswordError> for CliError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Read { .. } | PasswordError::Prompt(_) => CliError::failure(e),
            PasswordError::Empty(_) | PasswordError::Needed | PasswordError::GatewayNeeded => {
                CliError::usage(e)
            }
        }
    }
}

/// A password given without a prompt: the first line of `file` (`--password-file`), else
/// `RDPTRACE_PASSWORD` from `env`; `None` when neither gives one. Every command takes its password here.
///
/// The first line is the password, without its line ending (`\n` or `\r\n`); blanks are part of it. An
/// empty file, or an empty first line, is an error, not an empty password: a password file that was never
/// written is a mistake, and servers refuse empty passwords over the network by default. An empty
/// `RDPTRACE_PASSWORD` counts as unset, for the same reason.
pub fn given_password(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Password>, PasswordError> {
    given_secret(file, PASSWORD_ENV, env)
}

/// [`given_password`] for any variable: the first line of `file`, else the variable `var` of `env`.
fn given_secret(
    file: Option<&Path>,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Password>, PasswordError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| PasswordError::Read {
            path: path.to_owned(),
            source,
        })?;
        let first = text.lines().next().unwrap_or_default();
        if first.is_empty() {
            return Err(PasswordError::Empty(path.to_owned()));
        }
        return Ok(Some(Password::new(first.to_owned())));
    }
    Ok(env(var).filter(|p| !p.is_empty()).map(Password::new))
}

/// The RD Gateway password for `user` (`--gateway-user`), by the same rules as [`read_password`]: the first
/// line of `file` (`--gateway-password-file`), else `RDPTRACE_GATEWAY_PASSWORD`, else a prompt on a
/// terminal; `None` without a gateway user.
pub fn read_gateway_password(
    user: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Password>, PasswordError> {
    let Some(user) = user else { return Ok(None) };
    if let Some(p) = given_secret(
        file,
        GATEWAY_PASSWORD_ENV,
        &crate::fleet::targets::process_env,
    )? {
        return Ok(Some(p));
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("gateway password for {user}: "))
            .map_err(PasswordError::Prompt)?;
        return Ok(Some(Password::new(p)));
    }
    Err(PasswordError::GatewayNeeded)
}

/// The password for `user`: [`given_password`] with the process environment, else a prompt on a
/// terminal; `None` without a user.
pub fn read_password(
    user: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Password>, PasswordError> {
    let Some(user) = user else { return Ok(None) };
    if let Some(p) = given_password(file, &crate::fleet::targets::process_env)? {
        return Ok(Some(p));
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("password for {user}: "))
            .map_err(PasswordError::Prompt)?;
        return Ok(Some(Password::new(p)));
    }
    Err(PasswordError::Needed)
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

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("rdptrace-password-{name}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The first line of the file, without its line ending; an empty file or first line is an error.
    #[test]
    fn a_password_file_gives_its_first_line_and_is_never_empty() {
        for (name, text, password) in [
            ("lf", "s3cret\nsecond line\n", "s3cret"),
            ("crlf", "s3cret\r\n", "s3cret"),
            ("no-newline", "s3cret", "s3cret"),
            ("blanks", " two words \n", " two words "),
        ] {
            let path = file(name, text);
            let got = given_password(Some(&path), &no_env).unwrap();
            assert_eq!(got.as_ref().map(Password::expose), Some(password), "{name}");
            std::fs::remove_file(&path).unwrap();
        }
        for (name, text) in [
            ("empty", ""),
            ("empty-line", "\nsecond\n"),
            ("crlf-only", "\r\n"),
        ] {
            let path = file(name, text);
            let e = given_password(Some(&path), &no_env).unwrap_err();
            assert!(matches!(e, PasswordError::Empty(_)), "{name}: {e}");
            assert_eq!(CliError::from(e).exit_code(), 2, "{name}");
            std::fs::remove_file(&path).unwrap();
        }
        let missing = std::env::temp_dir().join("rdptrace-password-never-written");
        let e = given_password(Some(&missing), &no_env).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read the password file"),
            "{e}"
        );
        assert_eq!(CliError::from(e).exit_code(), 1);
    }

    /// The file wins over the environment; an empty variable is no password.
    #[test]
    fn the_environment_comes_after_the_file_and_empty_is_unset() {
        let env =
            |value: &'static str| move |n: &str| (n == PASSWORD_ENV).then(|| value.to_owned());
        let got = given_password(None, &env("from-env")).unwrap();
        assert_eq!(got.as_ref().map(Password::expose), Some("from-env"));
        assert!(given_password(None, &env("")).unwrap().is_none());
        assert!(given_password(None, &no_env).unwrap().is_none());
        let path = file("wins", "from-file\n");
        let got = given_password(Some(&path), &env("from-env")).unwrap();
        assert_eq!(got.as_ref().map(Password::expose), Some("from-file"));
        std::fs::remove_file(&path).unwrap();
    }
}
