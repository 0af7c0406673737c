//! The catalogue rendered: as `rdptrace scenarios` prints it (text, or one JSON document per scenario), and
//! as the Markdown tables of README.md.

use super::{Expected, FAMILIES, Group, Scenario, catalogue};
use crate::codes::{self, Table};

/// The catalogue as `rdptrace scenarios` prints it: by group, one block per hand-written scenario and one
/// line per member of a family.
pub fn render_catalogue() -> String {
    let mut out = String::new();
    for group in Group::ALL {
        out.push_str(&format!("== {} ==\n\n", group.title()));
        for s in catalogue()
            .iter()
            .filter(|s| s.group == group && s.family.is_none())
        {
            out.push_str(&block(s));
            out.push('\n');
        }
        for family in FAMILIES.iter().filter(|f| f.group == group) {
            out.push_str(&format!("{}\n  {}\n", family.pattern, family.summary));
            let members: Vec<&Scenario> = catalogue()
                .iter()
                .filter(|s| s.family == Some(family.pattern))
                .collect();
            let width = members.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for s in members {
                out.push_str(&format!(
                    "  {:width$}  {}{}\n",
                    s.name,
                    s.expected.describe(),
                    s.probe.describe()
                ));
            }
            out.push('\n');
        }
    }
    out
}

/// One scenario as a block of text.
fn block(s: &Scenario) -> String {
    let mut out = format!(
        "{}\n  stands for: {}\n  wire:       {}\n  expected:   {}{}\n",
        s.name,
        s.stands_for,
        s.wire,
        s.expected.describe(),
        s.probe.describe()
    );
    if let Some(x) = &s.xfreerdp {
        out.push_str(&format!("  xfreerdp:   {}\n", x.describe()));
    }
    if s.kerberos.is_some() {
        out.push_str("  kerberos:   serve --keytab FILE --realm REALM, a probe with --kdc\n");
    } else if s.uses_kerberos() {
        out.push_str("  kerberos:   serve --keytab FILE (with HTTP/<--host-name>) --realm REALM, a probe with --gateway https://<--host-name>:PORT --kdc\n");
    }
    out
}

/// One scenario as JSON (`rdptrace scenarios --json` prints one per line).
pub fn to_json(s: &Scenario) -> serde_json::Value {
    let code = |table: Table, code: u32| serde_json::json!({ "code": code, "name": codes::name(table, code) });
    let expected = |e: &Expected| {
        serde_json::json!({
            "ok": e.phase.is_none(),
            "phase": e.phase,
            "cause": e.cause,
            "error_info": e.error_info.map(|c| code(Table::ErrorInfo, c)),
            "mstsc": e.mstsc.map(|(d, x)| serde_json::json!({ "disc_reason": d, "extended": x })),
            "cert_problems": e.cert_problems,
            "mentions": e.mentions,
        })
    };
    let faults: Vec<serde_json::Value> = s
        .behaviour
        .iter()
        .map(|f| serde_json::json!({ "at": f.at.as_str(), "action": f.action.describe() }))
        .collect();
    serde_json::json!({
        "name": s.name,
        "group": s.group.as_str(),
        "family": s.family,
        "stands_for": s.stands_for,
        "wire": s.wire,
        "expected": expected(&s.expected),
        "expected_strict_cert": expected(&s.expected.strict()),
        "probe": {
            "phase_timeout_ms": s.probe.phase_timeout_ms,
            "security": s.probe.security.and_then(|v| clap::ValueEnum::to_possible_value(&v)).map(|v| v.get_name().to_owned()),
            "auth": s.probe.auth.and_then(|v| clap::ValueEnum::to_possible_value(&v)).map(|v| v.get_name().to_owned()),
        },
        "kerberos": s.kerberos.map(|k| serde_json::json!({
            "ntlm": k.ntlm,
            "service_key": match k.key {
                super::ServiceKey::Keytab => "keytab",
                super::ServiceKey::NotTheKdcs => "not_the_kdcs",
            },
            "clock_offset_s": k.clock_offset_s,
        })),
        "faults": faults,
        "protocols": codes::protocol_names(s.protocols.0),
        "credssp_version": s.credssp.version,
        "xfreerdp": s.xfreerdp.map(|x| serde_json::json!({
            "args": x.args,
            "exit": x.exit,
            "says": x.says,
        })),
    })
}

/// The catalogue as the Markdown tables of README.md (between `<!-- catalogue -->` and `<!-- /catalogue -->`):
/// one table per group, one row per scenario.
pub fn markdown_table() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    for group in Group::ALL {
        out.push_str(&format!("\n#### {}\n\n", group.title()));
        for family in FAMILIES.iter().filter(|f| f.group == group) {
            out.push_str(&format!(
                "`{}`: {}\n\n",
                family.pattern,
                cell(family.summary)
            ));
        }
        out.push_str(
            "| scenario | stands for | the target does | rdptrace finds | xfreerdp 2.11 |\n",
        );
        out.push_str("|---|---|---|---|---|\n");
        for s in catalogue().iter().filter(|s| s.group == group) {
            let xfreerdp = s
                .xfreerdp
                .map_or_else(|| "–".to_owned(), |x| cell(&x.describe()));
            out.push_str(&format!(
                "| `{}` | {} | {} | {}{} | {} |\n",
                s.name,
                cell(s.stands_for),
                cell(s.wire),
                cell(&s.expected.describe()),
                cell(&s.probe.describe()),
                xfreerdp
            ));
        }
    }
    out
}
