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

use super::Expectation;

/// The entries of one table: (key, expectation, or `None` when turned off).
pub type Entries = Vec<(String, Option<Expectation>)>;

/// A parsed policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// For every target.
    pub global: Entries,
    /// Per target, in file order.
    pub targets: Vec<(String, Entries)>,
}

fn entry(
    key: &str,
    value: &toml::Value,
    place: &str,
) -> Result<(String, Option<Expectation>), String> {
    let text = match value {
        toml::Value::Boolean(false) => {
            let known = super::expect::normalize_key(key).ok_or_else(|| {
                format!(
                    "{place}: unknown expectation {key} (known: {})",
                    super::expect::KEYS
                )
            })?;
            return Ok((known, None));
        }
        toml::Value::Boolean(true) => key.to_owned(),
        toml::Value::String(s) => format!("{key}={s}"),
        toml::Value::Integer(n) => format!("{key}={n}"),
        toml::Value::Float(f) => format!("{key}={f:.1}"),
        other => {
            return Err(format!(
                "{place}: {key} must be true, false, a string or a number, not a {}",
                other.type_str()
            ));
        }
    };
    let e = Expectation::parse(&text).map_err(|e| format!("{place}: {e}"))?;
    Ok((e.key(), Some(e)))
}

/// The entries of one table: the top of the file or a target's section (`targets` excluded).
fn entries(table: &toml::Table, place: &str) -> Result<Entries, String> {
    let mut out = Entries::new();
    for (key, value) in table {
        match value {
            toml::Value::Array(items) if key == "expect" => {
                for item in items {
                    let toml::Value::String(text) = item else {
                        return Err(format!(
                            "{place}: expect must be a list of strings, not a {}",
                            item.type_str()
                        ));
                    };
                    for e in Expectation::parse_list(text).map_err(|e| format!("{place}: {e}"))? {
                        out.push((e.key(), Some(e)));
                    }
                }
            }
            toml::Value::String(text) if key == "expect" => {
                for e in Expectation::parse_list(text).map_err(|e| format!("{place}: {e}"))? {
                    out.push((e.key(), Some(e)));
                }
            }
            toml::Value::Table(facts) if crate::trace::PhaseName::parse(key).is_some() => {
                for (fact, v) in facts {
                    out.push(entry(&format!("{key}.{fact}"), v, place)?);
                }
            }
            _ => out.push(entry(key, value, place)?),
        }
    }
    Ok(out)
}

impl Policy {
    /// Parses the text of a policy file; `name` is for error messages.
    pub fn parse(text: &str, name: &str) -> Result<Policy, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let mut policy = Policy::default();
        let mut top = toml::Table::new();
        for (key, value) in &table {
            if key == "targets" {
                let toml::Value::Table(targets) = value else {
                    return Err(format!(
                        "{name}: targets must be a table of [targets.\"host\"] sections"
                    ));
                };
                for (target, section) in targets {
                    crate::probe::split_target(target)
                        .map_err(|e| format!("{name}: [targets.\"{target}\"]: {e}"))?;
                    let toml::Value::Table(section) = section else {
                        return Err(format!("{name}: targets.\"{target}\" must be a section"));
                    };
                    let place = format!("{name}: [targets.\"{target}\"]");
                    policy
                        .targets
                        .push((target.clone(), entries(section, &place)?));
                }
                continue;
            }
            top.insert(key.clone(), value.clone());
        }
        policy.global = entries(&top, name)?;
        Ok(policy)
    }

    /// Reads a policy file.
    pub fn read(path: &std::path::Path) -> Result<Policy, String> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        Policy::parse(&text, &name)
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
        let e = Policy::parse("expect = [1]\n", "p.toml").unwrap_err();
        assert!(e.contains("list of strings"), "{e}");
        let e = Policy::parse("tls.tls_version = [1]\n", "p.toml").unwrap_err();
        assert!(e.starts_with("p.toml: tls.tls_version must be"), "{e}");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = Policy::parse("speed = 3\n", "p.toml").unwrap_err();
        assert!(e.starts_with("p.toml: unknown expectation speed"), "{e}");
        let e = Policy::parse("[targets.\"h\"]\nphase = \"nowhere\"\n", "p.toml").unwrap_err();
        assert!(e.contains("[targets.\"h\"]: unknown phase nowhere"), "{e}");
        let e = Policy::parse("active = [1]\n", "p.toml").unwrap_err();
        assert!(e.contains("must be true, false"), "{e}");
        let e = Policy::parse("active = \n", "p.toml").unwrap_err();
        assert!(e.starts_with("p.toml: "), "{e}");
        let e = Policy::parse("colour = false\n", "p.toml").unwrap_err();
        assert!(e.contains("unknown expectation colour"), "{e}");
        // 1.2 as a TOML float still means TLS 1.2.
        assert_eq!(
            Policy::parse("tls-min = 1.2\n", "p.toml")
                .unwrap()
                .for_target("h"),
            vec![Expectation::TlsMin(0x0303)]
        );
    }
}
