//! Targets files: one `host[:port]` per line, options after it, `#` comments.
//!
//! ```text
//! # the gateways
//! rdp1.example.com
//! rdp2.example.com:3390   user=alice domain=CORP security=nla expect=active
//! 10.0.0.7                expect=phase=licensing,errinfo=0x7
//! [2001:db8::7]:3389      security=tls strict-cert=true
//! ```
//!
//! Options are `key=value` words separated by blanks: `user`, `domain`, `security`
//! (`auto|rdp|tls|nla|nla-ex`), `strict-cert` (`true|false`), `expect` (a comma-separated list of
//! expectations, see [`crate::check::expect`]). A `#` at the start of a line or after a blank starts a
//! comment. Values cannot contain blanks.

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

use crate::check::Expectation;
use crate::probe::Security;

/// One target and what its line or file asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSpec {
    /// `host[:port]` as written.
    pub target: String,
    /// Where it came from: `argv`, `hosts.txt:12`, `office.rdp`.
    pub source: String,
    pub user: Option<String>,
    pub domain: Option<String>,
    pub security: Option<Security>,
    pub strict_cert: Option<bool>,
    pub expect: Vec<Expectation>,
    /// Facts to record in the trace (a gateway the probe does not follow).
    pub notes: Vec<String>,
}

impl TargetSpec {
    pub fn new(target: &str, source: &str) -> Self {
        TargetSpec {
            target: target.to_owned(),
            source: source.to_owned(),
            ..TargetSpec::default()
        }
    }
}

/// `auto`, `rdp`, `tls`, `nla`, `nla-ex`.
pub fn parse_security(s: &str) -> Result<Security, String> {
    <Security as clap::ValueEnum>::from_str(s, true)
        .map_err(|_| format!("unknown security {s} (auto, rdp, tls, nla, nla-ex)"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("not true or false: {s}")),
    }
}

/// Removes a comment: `#` at the start or after a blank.
fn strip_comment(line: &str) -> &str {
    let mut prev_blank = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_blank {
            // `i` is a char boundary: it comes from `char_indices`.
            return line.get(..i).unwrap_or(line);
        }
        prev_blank = c.is_whitespace();
    }
    line
}

/// Parses one line; `None` for a blank or comment line.
pub fn parse_line(line: &str, source: &str) -> Result<Option<TargetSpec>, String> {
    let line = strip_comment(line);
    let mut words = line.split_whitespace();
    let Some(target) = words.next() else {
        return Ok(None);
    };
    if target.contains('=') {
        return Err(format!(
            "the line starts with an option ({target}), not a target"
        ));
    }
    crate::probe::split_target(target)?;
    let mut spec = TargetSpec::new(target, source);
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word} is not key=value"))?;
        match key.to_ascii_lowercase().as_str() {
            "user" => spec.user = Some(value.to_owned()),
            "domain" => spec.domain = Some(value.to_owned()),
            "security" => spec.security = Some(parse_security(value)?),
            "strict-cert" | "strict_cert" => spec.strict_cert = Some(parse_bool(value)?),
            "expect" => spec.expect.extend(Expectation::parse_list(value)?),
            "password" => {
                return Err(
                    "passwords do not go in targets files: use RDPTRACE_PASSWORD or --password-file"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "unknown option {other} (user, domain, security, strict-cert, expect)"
                ));
            }
        }
    }
    Ok(Some(spec))
}

/// Reads a targets file (or stdin) to the end; an error names the line.
pub fn read(reader: impl BufRead, name: &str) -> Result<Vec<TargetSpec>, String> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{name}:{n}: cannot read: {e}"))?;
        let source = format!("{name}:{n}");
        match parse_line(&line, &source) {
            Ok(Some(spec)) => out.push(spec),
            Ok(None) => {}
            Err(e) => return Err(format!("{name}:{n}: {e}")),
        }
    }
    Ok(out)
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
    use crate::trace::PhaseName;

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
    fn bad_lines_name_their_number() {
        let e = read("ok.example\nhost:x\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.starts_with("t.txt:2: bad port"), "{e}");
        let e = read("host colour=blue\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.contains("t.txt:1: unknown option colour"), "{e}");
        let e = read("host password=x\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.contains("passwords do not go"), "{e}");
        let e = read("host expect=fast\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.contains("unknown expectation fast"), "{e}");
        let e = read("user=bob\n".as_bytes(), "t.txt").unwrap_err();
        assert!(e.contains("not a target"), "{e}");
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
