//! Policy files: the expectations in TOML, for every target and per target.
//!
//! ```toml
//! # every target
//! active = true
//! tls-min = "1.2"
//! cert-days = 30
//! tls.tls_version = "TLS 1.3"          # a fact: PHASE.FACT = VALUE
//! expect = ["tls.cert_subject~CN=", "!tls.cert_problems"]
//!
//! # one target: its keys replace the same keys above; false removes one
//! [targets."legacy.example.com:3389"]
//! active = false
//! phase = "licensing"
//! errinfo = "0x7"
//! ```
//!
//! A key is an expectation of [`crate::check::expect`]: `true` turns on one that takes no value, `false`
//! turns one off, a string or a number is its value. A table named after a phase holds facts of that
//! phase (`tls.tls_version` above). `expect` is a list (or a comma-separated string) of expectations as
//! `--expect` writes them, for the `~` and `!` forms.

use std::path::{Path, PathBuf};

use super::Expectation;

/// The entries of one table: (key, expectation, or `None` when turned off).
pub type Entries = Vec<(String, Option<Expectation>)>;

/// A policy file that cannot be read, or says something that is not a policy; each names the file, and
/// the section where there is one (TOML syntax errors name the line and column).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
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
    #[error("{file}: targets must be a table of [targets.\"host\"] sections")]
    TargetsNotTable { file: String },
    #[error("{file}: targets.\"{target}\" must be a section")]
    NotSection { file: String, target: String },
    #[error("{file}: [targets.\"{target}\"]: {error}")]
    Target {
        file: String,
        target: String,
        error: String,
    },
    /// A key of the top of the file (`section` `None`) or of a target's section.
    #[error("{file}{}: {error}", section.as_ref().map(|t| format!(": [targets.\"{t}\"]")).unwrap_or_default())]
    Entry {
        file: String,
        section: Option<String>,
        #[source]
        error: EntryError,
    },
}

/// What is wrong with one key of a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("unknown expectation {0} (known: {keys})", keys = super::expect::KEYS)]
    UnknownKey(String),
    #[error("{key} must be true, false, a string or a number, not a {kind}")]
    NotAValue { key: String, kind: &'static str },
    #[error("expect must be a list of strings, not a {0}")]
    ExpectNotStrings(&'static str),
    /// The expectation language refused it.
    #[error("{0}")]
    Expectation(String),
}

/// A parsed policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// For every target.
    pub global: Entries,
    /// Per target, in file order.
    pub targets: Vec<(String, Entries)>,
}

fn entry(key: &str, value: &toml::Value) -> Result<(String, Option<Expectation>), EntryError> {
    let text = match value {
        toml::Value::Boolean(false) => {
            let known = super::expect::normalize_key(key)
                .ok_or_else(|| EntryError::UnknownKey(key.to_owned()))?;
            return Ok((known, None));
        }
        toml::Value::Boolean(true) => key.to_owned(),
        toml::Value::String(s) => format!("{key}={s}"),
        toml::Value::Integer(n) => format!("{key}={n}"),
        toml::Value::Float(f) => format!("{key}={f:.1}"),
        other => {
            return Err(EntryError::NotAValue {
                key: key.to_owned(),
                kind: other.type_str(),
            });
        }
    };
    let e = Expectation::parse(&text).map_err(EntryError::Expectation)?;
    Ok((e.key(), Some(e)))
}

/// The entries of one table: the top of the file or a target's section (`targets` excluded).
fn entries(table: &toml::Table) -> Result<Entries, EntryError> {
    let mut out = Entries::new();
    for (key, value) in table {
        match value {
            toml::Value::Array(items) if key == "expect" => {
                for item in items {
                    let toml::Value::String(text) = item else {
                        return Err(EntryError::ExpectNotStrings(item.type_str()));
                    };
                    for e in Expectation::parse_list(text).map_err(EntryError::Expectation)? {
                        out.push((e.key(), Some(e)));
                    }
                }
            }
            toml::Value::String(text) if key == "expect" => {
                for e in Expectation::parse_list(text).map_err(EntryError::Expectation)? {
                    out.push((e.key(), Some(e)));
                }
            }
            toml::Value::Table(facts) if crate::trace::PhaseName::parse(key).is_some() => {
                for (fact, v) in facts {
                    out.push(entry(&format!("{key}.{fact}"), v)?);
                }
            }
            _ => out.push(entry(key, value)?),
        }
    }
    Ok(out)
}

impl Policy {
    /// Parses the text of a policy file; `name` is for error messages.
    pub fn parse(text: &str, name: &str) -> Result<Policy, PolicyError> {
        let file = || name.to_owned();
        let table: toml::Table = toml::from_str(text).map_err(|error| PolicyError::Toml {
            file: file(),
            error,
        })?;
        let mut policy = Policy::default();
        let mut top = toml::Table::new();
        for (key, value) in &table {
            if key == "targets" {
                let toml::Value::Table(targets) = value else {
                    return Err(PolicyError::TargetsNotTable { file: file() });
                };
                for (target, section) in targets {
                    crate::probe::split_target(target).map_err(|e| PolicyError::Target {
                        file: file(),
                        target: target.clone(),
                        error: e.to_string(),
                    })?;
                    let toml::Value::Table(section) = section else {
                        return Err(PolicyError::NotSection {
                            file: file(),
                            target: target.clone(),
                        });
                    };
                    let entries = entries(section).map_err(|error| PolicyError::Entry {
                        file: file(),
                        section: Some(target.clone()),
                        error,
                    })?;
                    policy.targets.push((target.clone(), entries));
                }
                continue;
            }
            top.insert(key.clone(), value.clone());
        }
        policy.global = entries(&top).map_err(|error| PolicyError::Entry {
            file: file(),
            section: None,
            error,
        })?;
        Ok(policy)
    }

    /// Reads a policy file.
    pub fn read(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// The expectations for `target`: the global ones, with the target's section applied.
    pub fn for_target(&self, target: &str) -> Vec<Expectation> {
        let mut list: Entries = self.global.clone();
        let normalized = crate::probe::split_target(target).ok();
        for (t, entries) in &self.targets {
            let same = t == target
                || (normalized.is_some() && crate::probe::split_target(t).ok() == normalized);
            if !same {
                continue;
            }
            list.retain(|(key, _)| !entries.iter().any(|(k, _)| k == key));
            list.extend(entries.iter().cloned());
        }
        list.into_iter().filter_map(|(_, e)| e).collect()
    }

    /// The targets named by sections, in file order.
    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|(t, _)| t.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::PhaseName;

    const POLICY: &str = r#"
active = true
tls-min = "1.2"
cert-days = 30

[targets."legacy.example.com"]
active = false
phase = "licensing"
errinfo = "0x7"
"#;

    #[test]
    fn sections_replace_and_remove() {
        let p = Policy::parse(POLICY, "p.toml").unwrap();
        assert_eq!(
            p.for_target("other:3389"),
            vec![
                Expectation::Active,
                Expectation::TlsMin(0x0303),
                Expectation::CertDays(30)
            ]
        );
        assert_eq!(
            p.for_target("legacy.example.com:3389"),
            vec![
                Expectation::TlsMin(0x0303),
                Expectation::CertDays(30),
                Expectation::Phase(PhaseName::Licensing),
                Expectation::ErrInfo(7)
            ]
        );
        assert_eq!(p.target_names(), ["legacy.example.com"]);
    }

    #[test]
    fn facts_and_expect_lists() {
        let p = Policy::parse(
            r#"
ok = "no"
tls.tls_version = "TLS 1.3"
expect = ["tls.cert_subject~CN=", "!tls.cert_problems", "closed=server-fin"]

[targets."h"]
"tls.tls_version" = false
expect = "closed=client,pdu~NTLM"
credssp = "skipped"
"#,
            "p.toml",
        )
        .unwrap();
        let all: Vec<String> = p
            .for_target("other")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "ok=no",
                "tls.tls_version=TLS 1.3",
                "tls.cert_subject~CN=",
                "!tls.cert_problems",
                "closed=server-fin"
            ]
        );
        let h: Vec<String> = p
            .for_target("h:3389")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            h,
            [
                "ok=no",
                "tls.cert_subject~CN=",
                "!tls.cert_problems",
                "closed=client",
                "pdu~NTLM",
                "credssp=skipped"
            ]
        );
        let e = Policy::parse("expect = [1]\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("list of strings"), "{e}");
        let e = Policy::parse("tls.tls_version = [1]\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml: tls.tls_version must be"), "{e}");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let parse_err = |text: &str| Policy::parse(text, "p.toml").unwrap_err().to_string();
        let e = parse_err("speed = 3\n");
        assert!(e.starts_with("p.toml: unknown expectation speed"), "{e}");
        let e = parse_err("[targets.\"h\"]\nphase = \"nowhere\"\n");
        assert!(
            e.starts_with("p.toml: [targets.\"h\"]: unknown phase nowhere"),
            "{e}"
        );
        let e = parse_err("active = [1]\n");
        assert!(e.contains("must be true, false"), "{e}");
        // A TOML syntax error names its line.
        let e = Policy::parse("active = true\nactive = \n", "p.toml").unwrap_err();
        assert!(matches!(e, PolicyError::Toml { .. }), "{e}");
        let e = e.to_string();
        assert!(e.starts_with("p.toml: "), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = parse_err("colour = false\n");
        assert!(e.contains("unknown expectation colour"), "{e}");
        let e = Policy::read(Path::new("/nonexistent/p.toml")).unwrap_err();
        assert!(matches!(e, PolicyError::Read { .. }), "{e}");
        // 1.2 as a TOML float still means TLS 1.2.
        assert_eq!(
            Policy::parse("tls-min = 1.2\n", "p.toml")
                .unwrap()
                .for_target("h"),
            vec![Expectation::TlsMin(0x0303)]
        );
    }
}
