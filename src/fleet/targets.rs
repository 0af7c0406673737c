//! Targets files: one `host[:port]` per line, then `key=value` settings, `#` comments. `rdptrace probe
//! --targets` reads them, and so does the lab suite (`lab/targets`).
//!
//! ```text
//! # the gateways
//! rdp1.example.com
//! rdp2.example.com:3390   user=alice domain=CORP password-env=RDP2_PASSWORD security=nla expect=active
//! rdp01.corp.example      user=alice@CORP.EXAMPLE auth=kerberos kdc=tcp://dc01.corp.example:88
//! 10.0.0.7                name=old-ts expect=phase=licensing,errinfo=0x7
//! [2001:db8::7]:3389      security=tls strict-cert=yes timeout=10
//! ${EDGE_HOST}            expect="tls.tls_version=TLS 1.3,closed=client"
//! ```
//!
//! Settings, named after `rdptrace probe`'s options (a line's setting wins over the option):
//!
//! | key                     | value                                                                     |
//! | ----------------------- | ------------------------------------------------------------------------- |
//! | `name`                  | a name for the line, unique in the file (reports and JUnit use it)        |
//! | `user`, `domain`        | the account                                                               |
//! | `password-env`          | the environment variable that holds the password (never the password)    |
//! | `security`              | `auto`, `rdp`, `tls`, `nla`, `nla-ex`                                     |
//! | `auth`                  | `negotiate`, `kerberos`, `ntlm` (how NLA authenticates)                   |
//! | `kdc`                   | `tcp://host[:88]`, `udp://host[:88]`, or a KDC proxy `https://host/KdcProxy` |
//! | `strict-cert`           | `yes` or `no`                                                             |
//! | `timeout`, `phase-timeout`, `watch` | seconds                                                       |
//! | `wrong-password`        | `yes`: for negative tests, log on with the password with text appended, which is certainly wrong |
//! | `expect`                | expectations, comma-separated ([`crate::check::expect`])                  |
//!
//! A `#` at the start of a line or after a blank, outside double quotes, starts a comment. Double quotes
//! hold blanks (`name="two words"`, `expect="tls.tls_version=TLS 1.3"`) and are removed. `$VAR` and
//! `${VAR}` are read from the environment in every value but `expect=`; `$$` is a `$`, and a `$` that no
//! name follows stays as it is. `password=` is refused: a password never goes in a file.
//!
//! Reading is in two steps: [`lines`] checks the syntax, the keys and the expectations of every line
//! ([`Line`]); [`Line::resolve`] reads its variables and gives the [`TargetSpec`]. [`read`] does both,
//! with the process environment.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
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

use std::io::BufRead;
use std::time::Duration;

use crate::check::Expectation;
use crate::probe::{Auth, Security};

/// A targets file that cannot be read to the end, or a line of it that is wrong; each names the line.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("{file}:{line}: cannot read: {source}")]
    Read {
        file: String,
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {error}")]
    Line {
        file: String,
        line: usize,
        #[source]
        error: LineError,
    },
    #[error("{file}:{line}: name {name} is already used at {file}:{first}")]
    DuplicateName {
        file: String,
        line: usize,
        name: String,
        /// The line that used it first.
        first: usize,
    },
}

impl TargetsError {
    /// The line the error is on (1-based).
    pub fn line(&self) -> usize {
        match self {
            TargetsError::Read { line, .. }
            | TargetsError::Line { line, .. }
            | TargetsError::DuplicateName { line, .. } => *line,
        }
    }
}

/// What is wrong with one line of a targets file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not `host[:port]`.
    #[error("{0}")]
    Target(String),
    #[error("unclosed double quote")]
    UnclosedQuote,
    #[error("the line starts with an option ({0}), not a target")]
    OptionFirst(String),
    #[error("{0} is not key=value")]
    NotKeyValue(String),
    #[error("expect: {0}")]
    Expect(String),
    #[error(
        "passwords do not go in targets files: name the variable that holds it with password-env=VAR, or use RDPTRACE_PASSWORD or --password-file"
    )]
    Password,
    #[error("unknown option {0} ({keys}, expect)", keys = setting_keys())]
    UnknownOption(String),
    /// A setting's value, its variables read or not.
    #[error("{key}: {error}")]
    Value {
        key: &'static str,
        #[source]
        error: ValueError,
    },
    /// The target's own variables.
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

/// What is wrong with the value of a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0} needs a value")]
    Empty(&'static str),
    #[error("unknown security {0} (auto, rdp, tls, nla, nla-ex)")]
    Security(String),
    #[error("unknown auth {0} (negotiate, kerberos, ntlm)")]
    Auth(String),
    /// Not a KDC URL (the probe's `--kdc` reading of it says why).
    #[error("{0}")]
    Kdc(String),
    #[error("not yes or no: {0}")]
    NotBool(String),
    #[error("{0}")]
    Seconds(String),
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

/// A `$VAR` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unclosed ${{ in {0}")]
    Unclosed(String),
    #[error("${{}} without a variable name in {0}")]
    NoName(String),
    #[error("${0} is not set")]
    Unset(String),
}

/// One target and what its line or file asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSpec {
    /// `host[:port]`, its variables read.
    pub target: String,
    /// Where it came from: `argv`, `hosts.txt:12`, `office.rdp`.
    pub source: String,
    /// `name=`.
    pub name: Option<String>,
    pub user: Option<String>,
    pub domain: Option<String>,
    /// The environment variable that holds the password for this target.
    pub password_env: Option<String>,
    pub security: Option<Security>,
    /// How NLA authenticates (`auth=`, the probe's `--auth`).
    pub auth: Option<Auth>,
    /// The KDC (`kdc=`, the probe's `--kdc`).
    pub kdc: Option<url::Url>,
    pub strict_cert: Option<bool>,
    pub timeout: Option<Duration>,
    pub phase_timeout: Option<Duration>,
    pub watch: Option<Duration>,
    /// Log on with a password that is certainly wrong (a negative test).
    pub wrong_password: bool,
    pub expect: Vec<Expectation>,
    /// Facts to record in the trace (what a .rdp file asks for that the probe does differently).
    pub notes: Vec<String>,
    /// The RD Gateway to go through (a .rdp file's `gatewayhostname`).
    pub gateway: Option<String>,
    /// The gateway authentication a .rdp file asks for (`gatewaycredentialssource`).
    pub gateway_auth: Option<crate::gateway::Scheme>,
    /// The routing token of the X.224 request (a .rdp file's `loadbalanceinfo`).
    pub load_balance_info: Option<String>,
}

impl TargetSpec {
    pub fn new(target: &str, source: &str) -> Self {
        TargetSpec {
            target: target.to_owned(),
            source: source.to_owned(),
            ..TargetSpec::default()
        }
    }

    /// What reports call the target: its name, else `host:port`.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.target)
    }
}

/// A setting of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Name,
    User,
    Domain,
    PasswordEnv,
    Security,
    Auth,
    Kdc,
    StrictCert,
    Timeout,
    PhaseTimeout,
    Watch,
    WrongPassword,
}

/// Every setting by its key.
const SETTINGS: [(&str, Setting); 12] = [
    ("name", Setting::Name),
    ("user", Setting::User),
    ("domain", Setting::Domain),
    ("password-env", Setting::PasswordEnv),
    ("security", Setting::Security),
    ("auth", Setting::Auth),
    ("kdc", Setting::Kdc),
    ("strict-cert", Setting::StrictCert),
    ("timeout", Setting::Timeout),
    ("phase-timeout", Setting::PhaseTimeout),
    ("watch", Setting::Watch),
    ("wrong-password", Setting::WrongPassword),
];

/// The keys of the settings, for error messages.
fn setting_keys() -> String {
    let keys: Vec<&str> = SETTINGS.iter().map(|(k, _)| *k).collect();
    keys.join(", ")
}

impl Setting {
    fn key(self) -> &'static str {
        SETTINGS
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(k, _)| *k)
    }
}

/// `auto`, `rdp`, `tls`, `nla`, `nla-ex`.
pub fn parse_security(s: &str) -> Result<Security, ValueError> {
    <Security as clap::ValueEnum>::from_str(s, true).map_err(|_| ValueError::Security(s.to_owned()))
}

/// `negotiate`, `kerberos`, `ntlm`.
pub fn parse_auth(s: &str) -> Result<Auth, ValueError> {
    <Auth as clap::ValueEnum>::from_str(s, true).map_err(|_| ValueError::Auth(s.to_owned()))
}

/// `yes`, `true`, `1`; `no`, `false`, `0`.
pub fn parse_bool(s: &str) -> Result<bool, ValueError> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(ValueError::NotBool(s.to_owned())),
    }
}

/// Sets one setting of `spec` from its value, variables already read.
fn apply(spec: &mut TargetSpec, setting: Setting, value: &str) -> Result<(), ValueError> {
    let key = setting.key();
    let text = || -> Result<Option<String>, ValueError> {
        if value.is_empty() {
            return Err(ValueError::Empty(key));
        }
        Ok(Some(value.to_owned()))
    };
    let seconds = || {
        crate::probe::cli::parse_seconds(value)
            .map(Some)
            .map_err(ValueError::Seconds)
    };
    match setting {
        Setting::Name => spec.name = text()?,
        Setting::User => spec.user = text()?,
        Setting::Domain => spec.domain = text()?,
        Setting::PasswordEnv => spec.password_env = text()?,
        Setting::Security => spec.security = Some(parse_security(value)?),
        Setting::Auth => spec.auth = Some(parse_auth(value)?),
        Setting::Kdc => {
            text()?;
            spec.kdc = Some(crate::probe::kdc::parse_kdc_url(value).map_err(ValueError::Kdc)?);
        }
        Setting::StrictCert => spec.strict_cert = Some(parse_bool(value)?),
        Setting::Timeout => spec.timeout = seconds()?,
        Setting::PhaseTimeout => spec.phase_timeout = seconds()?,
        Setting::Watch => spec.watch = seconds()?,
        Setting::WrongPassword => spec.wrong_password = parse_bool(value)?,
    }
    Ok(())
}

/// Replaces `$VAR` and `${VAR}` with values from `env`; `$$` is a `$`, a `$` without a name stays.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // INVARIANT: every pass consumes at least the `$` it found.
    while let Some((before, after)) = rest.split_once('$') {
        out.push_str(before);
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            braced
                .split_once('}')
                .ok_or_else(|| ExpandError::Unclosed(s.to_owned()))?
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            // `end` is a char boundary: `find` returns one, and `len` is one.
            after.split_at_checked(end).unwrap_or((after, ""))
        };
        if name.is_empty() {
            if after.starts_with('{') {
                return Err(ExpandError::NoName(s.to_owned()));
            }
            out.push('$');
            rest = after;
            continue;
        }
        let value = env(name).ok_or_else(|| ExpandError::Unset(name.to_owned()))?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// The variables `s` reads, in order.
fn variables_of(s: &str, out: &mut Vec<String>) {
    let names = std::cell::RefCell::new(Vec::new());
    let _ = expand(s, &|n| {
        names.borrow_mut().push(n.to_owned());
        Some(String::new())
    });
    for n in names.into_inner() {
        if !out.contains(&n) {
            out.push(n);
        }
    }
}

/// Splits a line into words at blanks; double quotes hold blanks and are removed.
fn words(line: &str) -> Result<Vec<String>, LineError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err(LineError::UnclosedQuote);
    }
    if started {
        out.push(cur);
    }
    Ok(out)
}

/// Drops a comment: `#` at the start or after a blank, outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut prev_blank = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && prev_blank =>
            // `i` is a char boundary: it comes from `char_indices`.
            {
                return line.get(..i).unwrap_or(line);
            }
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    line
}

/// One line of a targets file: its syntax, keys and expectations checked, its variables not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `file:line`.
    pub source: String,
    /// Its number in the file (1-based).
    pub number: usize,
    /// `host[:port]` as written.
    pub target: String,
    /// The settings as written, in order.
    pub settings: Vec<(Setting, String)>,
    pub expect: Vec<Expectation>,
}

impl Line {
    /// `name=` as written.
    pub fn name(&self) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(s, _)| *s == Setting::Name)
            .map(|(_, v)| v.as_str())
    }

    /// The environment variables the line reads, in order (`password-env=` names one more, read when the
    /// probe is configured).
    pub fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        variables_of(&self.target, &mut out);
        for (_, v) in &self.settings {
            variables_of(v, &mut out);
        }
        out
    }

    /// Reads the line's variables from `env`: the target to probe.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<TargetSpec, LineError> {
        let target = expand(&self.target, env)?;
        crate::probe::split_target(&target).map_err(|e| LineError::Target(e.to_string()))?;
        let mut spec = TargetSpec::new(&target, &self.source);
        for (setting, value) in &self.settings {
            let key = setting.key();
            expand(value, env)
                .map_err(ValueError::from)
                .and_then(|value| apply(&mut spec, *setting, &value))
                .map_err(|error| LineError::Value { key, error })?;
        }
        spec.expect = self.expect.clone();
        Ok(spec)
    }
}

/// Parses line `number` of the file named `file`; `None` for a blank or comment line. Values without
/// variables are checked now.
pub fn parse_line(line: &str, file: &str, number: usize) -> Result<Option<Line>, LineError> {
    let words = words(strip_comment(line))?;
    let Some((target, rest)) = words.split_first() else {
        return Ok(None);
    };
    if target.contains('=') {
        return Err(LineError::OptionFirst(target.clone()));
    }
    if !target.contains('$') {
        crate::probe::split_target(target).map_err(|e| LineError::Target(e.to_string()))?;
    }
    let mut out = Line {
        source: format!("{file}:{number}"),
        number,
        target: target.clone(),
        settings: Vec::new(),
        expect: Vec::new(),
    };
    let mut scratch = TargetSpec::default();
    for word in rest {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| LineError::NotKeyValue(word.clone()))?;
        let key = key.to_ascii_lowercase().replace('_', "-");
        match key.as_str() {
            "expect" => out
                .expect
                .extend(Expectation::parse_list(value).map_err(LineError::Expect)?),
            "password" => return Err(LineError::Password),
            _ => {
                let setting = SETTINGS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, s)| *s)
                    .ok_or(LineError::UnknownOption(key))?;
                if !value.contains('$') {
                    apply(&mut scratch, setting, value).map_err(|error| LineError::Value {
                        key: setting.key(),
                        error,
                    })?;
                }
                out.settings.push((setting, value.to_owned()));
            }
        }
    }
    Ok(Some(out))
}

/// Parses the lines of a targets file named `name`; an error names the line. Names are unique.
pub fn lines(reader: impl BufRead, name: &str) -> Result<Vec<Line>, TargetsError> {
    let mut out: Vec<Line> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|source| TargetsError::Read {
            file: name.to_owned(),
            line: n,
            source,
        })?;
        let parsed = parse_line(&line, name, n).map_err(|error| TargetsError::Line {
            file: name.to_owned(),
            line: n,
            error,
        })?;
        let Some(line) = parsed else { continue };
        if let Some((nm, first)) = line
            .name()
            .and_then(|nm| Some((nm, out.iter().find(|l| l.name() == Some(nm))?)))
        {
            return Err(TargetsError::DuplicateName {
                file: name.to_owned(),
                line: n,
                name: nm.to_owned(),
                first: first.number,
            });
        }
        out.push(line);
    }
    Ok(out)
}

/// The process environment, for [`Line::resolve`] and [`crate::fleet::config`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads a targets file (or stdin) to the end, its variables from the process environment; an error
/// names the line.
pub fn read(reader: impl BufRead, name: &str) -> Result<Vec<TargetSpec>, TargetsError> {
    lines(reader, name)?
        .iter()
        .map(|l| {
            l.resolve(&process_env).map_err(|error| TargetsError::Line {
                file: name.to_owned(),
                line: l.number,
                error,
            })
        })
        .collect()
}

/// `--shard I/N`: 1-based I.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("a shard is I/N, like 1/4: {s}"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("bad shard index: {s}"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("bad shard count: {s}"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("a shard is I/N with 1 <= I <= N: {s}"));
        }
        Ok(Shard { index, count })
    }

    /// Whether the target at `position` (0-based, in input order) belongs to this shard.
    pub fn keeps(self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

impl core::fmt::Display for Shard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::expect::Match;
    use crate::trace::PhaseName;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Vec<TargetSpec>, String> {
        lines(text.as_bytes(), "t.txt")
            .map_err(|e| e.to_string())?
            .iter()
            .map(|l| l.resolve(&no_env).map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn lines_with_options_and_comments() {
        let text = "# gateways\n\nrdp1.example.com\n  rdp2:3390 user=alice domain=CORP security=nla expect=active # the new one\n10.0.0.7 expect=phase=licensing,errinfo=0x7\n[::1]:3389 user=a#b\n";
        let specs = read(text.as_bytes(), "hosts.txt").unwrap();
        assert_eq!(specs.len(), 4);
        assert_eq!(specs[0].target, "rdp1.example.com");
        assert_eq!(specs[0].source, "hosts.txt:3");
        assert_eq!(specs[1].user.as_deref(), Some("alice"));
        assert_eq!(specs[1].domain.as_deref(), Some("CORP"));
        assert_eq!(specs[1].security, Some(Security::Nla));
        assert_eq!(specs[1].expect, vec![Expectation::Active]);
        assert_eq!(
            specs[2].expect,
            vec![
                Expectation::Phase(PhaseName::Licensing),
                Expectation::ErrInfo(7)
            ]
        );
        assert_eq!(specs[3].target, "[::1]:3389");
        assert_eq!(specs[3].user.as_deref(), Some("a#b"));
    }

    #[test]
    fn auth_and_kdc_per_target() {
        let text = "rdp01.corp.example user=alice@CORP.EXAMPLE auth=kerberos kdc=udp://dc01.corp.example\nrdp02 auth=NTLM\nrdp03\n";
        let specs = parse(text).unwrap();
        assert_eq!(specs[0].auth, Some(Auth::Kerberos));
        assert_eq!(
            specs[0].kdc.as_ref().map(url::Url::as_str),
            Some("udp://dc01.corp.example")
        );
        assert_eq!(specs[1].auth, Some(Auth::Ntlm));
        assert_eq!(specs[1].kdc, None);
        assert_eq!((specs[2].auth, specs[2].kdc.as_ref()), (None, None));
        let err = parse("rdp01 auth=basic\n").unwrap_err();
        assert!(
            err.contains("unknown auth basic (negotiate, kerberos, ntlm)"),
            "{err}"
        );
        let err = parse("rdp01 kdc=ftp://dc01\n").unwrap_err();
        assert!(
            err.contains("kdc: a KDC URL is tcp://, udp:// or https://"),
            "{err}"
        );
        let err = parse("rdp01 kdc=\n").unwrap_err();
        assert!(err.contains("kdc needs a value"), "{err}");
    }

    /// The syntax of lab/targets: quotes, names, every setting, the richer expectations.
    #[test]
    fn lab_lines() {
        let text = "  10.0.0.5:3390 security=nla user=alice \"expect=phase=credssp,cause=credssp_rejected\" # why\n\
             host name=\"two words\" password-env=PW timeout=30 phase-timeout=2.5 watch=0.5 strict-cert=no wrong-password=yes expect=ok=yes,\"tls.tls_version=TLS 1.3\",!tls.cert_sans,detail~a=b,closed=server-fin,mstsc=0x904/0x7\n";
        let specs = parse(text).unwrap();
        assert_eq!(specs[0].source, "t.txt:1");
        assert_eq!(specs[0].target, "10.0.0.5:3390");
        assert_eq!(specs[0].name, None);
        assert_eq!(specs[0].label(), "10.0.0.5:3390");
        assert_eq!(specs[0].expect.len(), 2);
        let s = &specs[1];
        assert_eq!(s.name.as_deref(), Some("two words"));
        assert_eq!(s.label(), "two words");
        assert_eq!(s.password_env.as_deref(), Some("PW"));
        assert_eq!(s.timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.phase_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.watch, Some(Duration::from_millis(500)));
        assert_eq!(s.strict_cert, Some(false));
        assert!(s.wrong_password);
        assert_eq!(
            s.expect[1],
            Expectation::Fact(
                PhaseName::Tls,
                "tls_version".to_owned(),
                Match::Equals("TLS 1.3".to_owned())
            )
        );
        assert_eq!(
            s.expect[2],
            Expectation::Fact(PhaseName::Tls, "cert_sans".to_owned(), Match::Absent)
        );
        assert_eq!(s.expect[5], Expectation::Mstsc(Some((0x904, 0x7))));
    }

    #[test]
    fn variables_are_read_when_resolved_and_never_in_expect() {
        let text = "${HOST} user=$USER_NAME domain=${DOM}x name=a$$b expect=detail~$HOME\n";
        let ls = lines(text.as_bytes(), "t.txt").unwrap();
        assert_eq!(ls[0].variables(), ["HOST", "USER_NAME", "DOM"]);
        let env = |n: &str| match n {
            "HOST" => Some("10.1.2.3:3390".to_owned()),
            "USER_NAME" => Some("alice".to_owned()),
            "DOM" => Some("CORP".to_owned()),
            _ => None,
        };
        let s = ls[0].resolve(&env).unwrap();
        assert_eq!(s.target, "10.1.2.3:3390");
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.domain.as_deref(), Some("CORPx"));
        assert_eq!(s.name.as_deref(), Some("a$b"));
        assert_eq!(
            s.expect,
            [Expectation::Detail(Match::Contains("$HOME".to_owned()))]
        );
        let e = ls[0].resolve(&no_env).unwrap_err();
        assert_eq!(e, LineError::Expand(ExpandError::Unset("HOST".to_owned())));
        assert_eq!(e.to_string(), "$HOST is not set");
        // A typed value is checked once its variable is read.
        let ls = lines("h security=$SEC\n".as_bytes(), "t.txt").unwrap();
        let e = ls[0].resolve(&|_| Some("fast".to_owned())).unwrap_err();
        assert!(
            e.to_string().starts_with("security: unknown security fast"),
            "{e}"
        );
    }

    #[test]
    fn expansion() {
        let env = |n: &str| (n == "A").then(|| "1.2.3.4:5".to_owned());
        assert_eq!(
            expand("${A} $A x", &env).as_deref(),
            Ok("1.2.3.4:5 1.2.3.4:5 x")
        );
        assert_eq!(expand("svc$ $$A $-", &env).as_deref(), Ok("svc$ $A $-"));
        assert!(expand("$B", &env).is_err());
        assert!(expand("${A", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn bad_lines_name_their_number() {
        let e = read("ok.example\nhost:x\n".as_bytes(), "t.txt").unwrap_err();
        assert_eq!(e.line(), 2);
        assert!(e.to_string().starts_with("t.txt:2: bad port"), "{e}");
        let e = read("host colour=blue\n".as_bytes(), "t.txt").unwrap_err();
        assert!(matches!(
            &e,
            TargetsError::Line { line: 1, error: LineError::UnknownOption(key), .. } if key == "colour"
        ));
        assert!(
            e.to_string()
                .starts_with("t.txt:1: unknown option colour (name, user,"),
            "{e}"
        );
        let e = read("host password=x\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.to_string().contains("passwords do not go"), "{e}");
        let e = read("host expect=fast\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.to_string().contains("unknown expectation fast"), "{e}");
        let e = read("user=bob\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.to_string().contains("not a target"), "{e}");
        // A variable read after the syntax check still names its line.
        let e = read(
            "ok.example\n\n${RDPTRACE_TEST_NEVER_SET_VAR}\n".as_bytes(),
            "t.txt",
        )
        .unwrap_err();
        assert_eq!(e.line(), 3);
        assert_eq!(
            e.to_string(),
            "t.txt:3: $RDPTRACE_TEST_NEVER_SET_VAR is not set"
        );
        for bad in [
            "host expect=cause=no_such_cause",
            "host expect=phase=nowhere",
            "host expect=ok=maybe",
            "host expect=\"ok=yes",
            "host security=fast",
            "host timeout=0",
            "host watch=soon",
            "host strict-cert=perhaps",
            "host user=",
            "host name=a\nhost name=a",
            "host ${UNSET}x=1",
            "host word",
        ] {
            assert!(lines(bad.as_bytes(), "t.txt").is_err(), "{bad:?} parsed");
        }
        let e = lines("h name=a\nh name=a\n".as_bytes(), "t.txt").unwrap_err();
        assert_eq!(e.to_string(), "t.txt:2: name a is already used at t.txt:1");
    }

    #[test]
    fn shards() {
        assert!(Shard::parse("0/3").is_err());
        assert!(Shard::parse("4/3").is_err());
        assert!(Shard::parse("1/0").is_err());
        let s = Shard::parse("2/3").unwrap();
        let kept: Vec<usize> = (0..10).filter(|i| s.keeps(*i)).collect();
        assert_eq!(kept, [1, 4, 7]);
    }
}
