//! The exporter's modules: a TOML file of named probe settings, in the style of blackbox_exporter's
//! modules.
//!
//! ```toml
//! [modules.rdp_tls]
//! security = "tls"                 # auto, rdp, tls, nla, nla-ex
//! timeout = 10                     # seconds for the whole probe (a scrape's own timeout lowers it)
//! phase-timeout = 5                # seconds for each answer of the server
//! watch = 1                        # seconds to watch the session once it is active
//! strict-cert = false
//! expect = ["active", "tls-min=1.2"]
//!
//! [modules.rdp_nla]
//! security = "nla-ex"
//! user = "monitor"
//! domain = "CORP"
//! password-env = "RDP_MONITOR_PASSWORD"   # or password-file = "/etc/rdptrace/monitor.pw"
//! allowed-targets = ["*.corp.example.com", "*.corp.example.com:*"]
//! expect = ["active", "nla-required", "cert-days=14"]
//! ```
//!
//! A password comes from an environment variable or a file, read once at start; never from the URL. A
//! module with a user must list the targets it may log on to (`allowed-targets`): otherwise anyone who can
//! reach the exporter could have it send the account's NTLM response to a host of their choosing.

// A file from the user: no panics (see ARCHITECTURE.md, Hostile input).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::check::Expectation;
use crate::command::{PasswordError, given_password};
use crate::probe::{Credentials, Password, ProbeConfig, Security};

/// The most modules a file may define (each is a label value of the exporter's own metrics).
pub const MAX_MODULES: usize = 256;

/// A configuration that cannot be read, or says something that is not a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {error}")]
    Toml {
        file: String,
        #[source]
        error: toml::de::Error,
    },
    #[error("{file}: no modules: add a [modules.NAME] section")]
    NoModules { file: String },
    #[error("{file}: more than {MAX_MODULES} modules")]
    TooManyModules { file: String },
    #[error("{file}: [modules.{module}]: {error}")]
    Module {
        file: String,
        module: String,
        #[source]
        error: ModuleError,
    },
}

/// What is wrong with one module.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("a module name is letters, digits, '_' and '-'")]
    Name,
    #[error("unknown security {0} (auto, rdp, tls, nla, nla-ex)")]
    Security(String),
    #[error("{key} must be above 0 and at most 3600 seconds")]
    Seconds { key: &'static str },
    #[error("expect: {0}")]
    Expectation(String),
    #[error("password-env and password-file are both given: choose one")]
    TwoPasswords,
    #[error("a password needs a user")]
    PasswordWithoutUser,
    #[error("user {0} needs a password: password-env = \"VAR\" or password-file = \"FILE\"")]
    NoPassword(String),
    #[error("the password variable {0} is not set, or empty")]
    PasswordEnvUnset(String),
    #[error(transparent)]
    PasswordFile(#[from] PasswordError),
    #[error(
        "a module with a user must list allowed-targets, the hosts it may send the account's credentials to"
    )]
    NoAllowedTargets,
    #[error("security {0} needs a user (and a password)")]
    NlaWithoutUser(&'static str),
}

/// A module as the file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawModule {
    security: Option<String>,
    user: Option<String>,
    domain: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    timeout: Option<f64>,
    phase_timeout: Option<f64>,
    watch: Option<f64>,
    strict_cert: Option<bool>,
    #[serde(default)]
    expect: Vec<String>,
    allowed_targets: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    modules: BTreeMap<String, RawModule>,
}

/// One module, ready to probe with.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub security: Security,
    pub credentials: Option<Credentials>,
    /// `env:VAR` or `file:PATH`: where the password came from, for the status page (never the password).
    pub password_source: Option<String>,
    pub timeout: Duration,
    pub phase_timeout: Duration,
    pub watch: Duration,
    pub strict_cert: bool,
    pub expect: Vec<Expectation>,
    /// Patterns of `host:port` (`*` matches any text); `None`: any target.
    pub allowed_targets: Option<Vec<String>>,
}

/// The modules, by name.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub modules: BTreeMap<String, Module>,
}

/// The module defaults: a probe that fits a 15 s scrape.
const DEFAULT_TIMEOUT: f64 = 10.0;
const DEFAULT_PHASE_TIMEOUT: f64 = 5.0;
const DEFAULT_WATCH: f64 = 1.0;

impl Config {
    /// Reads the file at `path`, its passwords from the process environment and the files it names.
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(
            &text,
            &path.display().to_string(),
            &crate::fleet::targets::process_env,
        )
    }

    /// Parses a configuration; `env` gives the environment variables that hold passwords.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Toml {
            file: file.to_owned(),
            error,
        })?;
        if raw.modules.is_empty() {
            return Err(ConfigError::NoModules {
                file: file.to_owned(),
            });
        }
        if raw.modules.len() > MAX_MODULES {
            return Err(ConfigError::TooManyModules {
                file: file.to_owned(),
            });
        }
        let mut modules = BTreeMap::new();
        for (name, m) in raw.modules {
            let module = Module::new(&name, m, env).map_err(|error| ConfigError::Module {
                file: file.to_owned(),
                module: name.clone(),
                error,
            })?;
            modules.insert(name, module);
        }
        Ok(Config { modules })
    }
}

fn seconds(value: Option<f64>, default: f64, key: &'static str) -> Result<Duration, ModuleError> {
    let v = value.unwrap_or(default);
    if !v.is_finite() || v <= 0.0 || v > 3600.0 {
        return Err(ModuleError::Seconds { key });
    }
    Ok(Duration::from_secs_f64(v))
}

/// `security = "nla-ex"`: the values of `--security`.
fn security(s: &str) -> Result<Security, ModuleError> {
    <Security as clap::ValueEnum>::from_str(s.trim(), true)
        .map_err(|_| ModuleError::Security(s.to_owned()))
}

impl Module {
    fn new(
        name: &str,
        m: RawModule,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Module, ModuleError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ModuleError::Name);
        }
        let security = match &m.security {
            Some(s) => security(s)?,
            None => Security::Auto,
        };
        let (password, password_source) = match (&m.password_env, &m.password_file) {
            (Some(_), Some(_)) => return Err(ModuleError::TwoPasswords),
            (Some(var), None) => (
                Some(Password::new(
                    env(var)
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| ModuleError::PasswordEnvUnset(var.clone()))?,
                )),
                Some(format!("env:{var}")),
            ),
            (None, Some(path)) => (
                given_password(Some(path), &|_| None)?,
                Some(format!("file:{}", path.display())),
            ),
            (None, None) => (None, None),
        };
        let credentials = match (&m.user, password) {
            (Some(user), Some(password)) => Some(Credentials {
                user: user.clone(),
                domain: m.domain.clone(),
                password,
            }),
            (Some(user), None) => return Err(ModuleError::NoPassword(user.clone())),
            (None, Some(_)) => return Err(ModuleError::PasswordWithoutUser),
            (None, None) => None,
        };
        if credentials.is_some() && m.allowed_targets.is_none() {
            return Err(ModuleError::NoAllowedTargets);
        }
        match security {
            Security::Nla if credentials.is_none() => {
                return Err(ModuleError::NlaWithoutUser("nla"));
            }
            Security::NlaEx if credentials.is_none() => {
                return Err(ModuleError::NlaWithoutUser("nla-ex"));
            }
            _ => {}
        }
        let expect = m
            .expect
            .iter()
            .map(|e| Expectation::parse(e).map_err(ModuleError::Expectation))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Module {
            name: name.to_owned(),
            security,
            credentials,
            password_source,
            timeout: seconds(m.timeout, DEFAULT_TIMEOUT, "timeout")?,
            phase_timeout: seconds(m.phase_timeout, DEFAULT_PHASE_TIMEOUT, "phase-timeout")?,
            watch: seconds(m.watch, DEFAULT_WATCH, "watch")?,
            strict_cert: m.strict_cert.unwrap_or(false),
            expect,
            allowed_targets: m.allowed_targets,
        })
    }

    /// Whether this module may probe `host:port` (as [`canonical_target`] writes it).
    pub fn allows(&self, target: &str) -> bool {
        match &self.allowed_targets {
            None => true,
            Some(patterns) => patterns.iter().any(|p| glob(p, target)),
        }
    }

    /// The probe configuration for `target` within `deadline` (the scrape's, when shorter than the
    /// module's own timeout).
    pub fn probe_config(&self, target: &str, deadline: Duration) -> Result<ProbeConfig, String> {
        let mut cfg = ProbeConfig::new(target)?;
        cfg.credentials = self.credentials.clone();
        cfg.security = self.security;
        cfg.timeout = self.timeout.min(deadline);
        cfg.phase_timeout = self.phase_timeout.min(cfg.timeout);
        cfg.watch = self.watch.min(cfg.timeout);
        cfg.strict_cert = self.strict_cert;
        Ok(cfg)
    }
}

/// `host:port` (`[v6]:port`) of a target as the URL gives it, the port 3389 when it has none: what
/// `allowed-targets` patterns are matched against.
pub fn canonical_target(target: &str) -> Result<String, String> {
    let (host, port) = crate::probe::split_target(target)?;
    if host.is_empty() {
        return Err(format!("no host in {target}"));
    }
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (ASCII case-insensitive,
/// as host names compare).
pub fn glob(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "MONITOR_PW").then(|| "s3cret".to_owned())
    }

    #[test]
    fn modules_parse_with_defaults() {
        let text = r#"
[modules.tls]
security = "tls"
expect = ["active", "tls-min=1.2"]

[modules.nla]
security = "nla-ex"
user = "monitor"
domain = "CORP"
password-env = "MONITOR_PW"
allowed-targets = ["*.corp.example.com:*"]
timeout = 4
"#;
        let c = Config::parse(text, "m.toml", &env).unwrap();
        let tls = &c.modules["tls"];
        assert_eq!(tls.security, Security::Tls);
        assert_eq!(tls.timeout, Duration::from_secs(10));
        assert_eq!(tls.expect.len(), 2);
        let nla = &c.modules["nla"];
        assert_eq!(
            nla.credentials.as_ref().unwrap().password.expose(),
            "s3cret"
        );
        assert_eq!(nla.password_source.as_deref(), Some("env:MONITOR_PW"));
        assert!(nla.allows("rdp1.corp.example.com:3389"));
        assert!(!nla.allows("attacker.example.net:3389"));
        let cfg = nla
            .probe_config("rdp1.corp.example.com", Duration::from_secs(2))
            .unwrap();
        assert_eq!(cfg.timeout, Duration::from_secs(2));
        assert_eq!(cfg.phase_timeout, Duration::from_secs(2));
    }

    #[test]
    fn what_is_refused() {
        let cases = [
            ("[modules.a]\nuser = \"u\"\n", "needs a password"),
            (
                "[modules.a]\nuser = \"u\"\npassword-env = \"MONITOR_PW\"\n",
                "allowed-targets",
            ),
            ("[modules.a]\npassword = \"x\"\n", "unknown field"),
            ("[modules.a]\nsecurity = \"nla\"\n", "needs a user"),
            ("[modules.a]\nsecurity = \"ssl\"\n", "unknown security ssl"),
            ("[modules.a]\nexpect = [\"tls-min=9\"]\n", "expect"),
            ("[modules.a]\ntimeout = 0\n", "timeout must be above 0"),
            (
                "[modules.a]\nuser = \"u\"\npassword-env = \"UNSET\"\nallowed-targets = []\n",
                "UNSET is not set",
            ),
            ("[modules.\"a b\"]\n", "module name"),
            ("", "no modules"),
        ];
        for (text, want) in cases {
            let e = Config::parse(text, "m.toml", &env).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn globs_and_canonical_targets() {
        assert!(glob("*.corp.example.com:*", "a.corp.example.com:3389"));
        assert!(!glob("*.corp.example.com:*", "corp.example.com.evil:3389"));
        assert!(glob("127.0.0.1:*", "127.0.0.1:40000"));
        assert!(glob("host:3389", "HOST:3389"));
        assert!(!glob("host:3389", "host:33890"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "abxbc"));
        assert!(!glob("a*b*c", "acb"));
        assert_eq!(canonical_target("h").unwrap(), "h:3389");
        assert_eq!(canonical_target("[::1]:3390").unwrap(), "[::1]:3390");
        assert_eq!(canonical_target("::1").unwrap(), "[::1]:3389");
        assert!(canonical_target("h:x").is_err());
    }
}
