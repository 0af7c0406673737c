//! The scan's renderers: text for people, `rdptrace-scan/1` JSON for programs. They decide nothing.

use core::fmt::Write as _;

use super::ScanReport;

fn yes_no(accepted: bool) -> &'static str {
    if accepted { "accepted" } else { "not accepted" }
}

/// The text report.
pub fn text(r: &ScanReport) -> String {
    let mut out = String::new();
    let _ = write!(out, "rdptrace scan {}", r.target);
    if let Some(a) = &r.address
        && *a != r.target
    {
        let _ = write!(out, " ({a})");
    }
    let _ = writeln!(out);
    if let Some(e) = &r.error {
        let _ = writeln!(out, "\nscan failed: {e}");
        return out;
    }

    let _ = writeln!(out, "\nsecurity protocols, each requested alone");
    for p in &r.protocols {
        let _ = writeln!(
            out,
            "  {:<20} {:<13} {}",
            p.protocol,
            yes_no(p.accepted),
            p.answer
        );
        if !p.accepted && p.raw.negotiation().is_some() {
            let _ = writeln!(out, "  {:<20} {:<13} {}", "", "", p.judgement);
        }
    }
    if let Some(nla) = r.nla_required {
        let _ = writeln!(out, "  NLA required: {}", if nla { "yes" } else { "no" });
    }

    let _ = writeln!(out, "\nStandard RDP Security");
    if r.rdp_security.tested {
        if let Some(level) = &r.rdp_security.level {
            let _ = writeln!(out, "  level {level}");
        }
        if let Some(c) = &r.rdp_security.server_certificate {
            let _ = writeln!(out, "  server certificate {c}");
        }
        for m in &r.rdp_security.methods {
            let _ = writeln!(
                out,
                "  {:<24} {:<13} {}",
                m.method,
                yes_no(m.accepted),
                m.answer
            );
        }
    } else {
        let _ = writeln!(out, "  not tested: PROTOCOL_RDP is not accepted");
    }

    let _ = writeln!(out, "\nTLS");
    if r.tls.tested {
        if let Some(via) = &r.tls.via {
            let _ = writeln!(out, "  after an X.224 exchange selecting {via}");
        }
        for v in &r.tls.versions {
            let _ = writeln!(
                out,
                "  {:<8} {:<13} {}",
                v.version,
                if v.accepted { "accepted" } else { "refused" },
                v.answer
            );
            for s in &v.cipher_suites {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<13}   {} {}{}",
                    "",
                    "",
                    s.id,
                    s.name,
                    if s.weak { " (weak)" } else { "" }
                );
            }
        }
        if let Some(s) = &r.tls.session {
            let _ = writeln!(out, "  rustls session: {s}");
        }
    } else {
        let _ = writeln!(
            out,
            "  not tested: no protocol that runs over TLS is accepted"
        );
    }

    if let Some(c) = &r.certificate {
        let _ = writeln!(out, "\ncertificate ({})", c.source);
        let _ = writeln!(out, "  subject  {}", c.info.subject);
        let _ = writeln!(out, "  issuer   {}", c.info.issuer);
        if !c.info.sans.is_empty() {
            let _ = writeln!(out, "  names    {}", c.info.sans.join(", "));
        }
        let _ = writeln!(
            out,
            "  valid    {} to {}{}",
            c.info.not_before,
            c.info.not_after,
            c.days_left
                .map(|d| format!(" ({d} days left)"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  key      {}{}",
            c.info.key_type,
            c.info
                .key_bits
                .map(|b| format!(" {b} bits"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "  sha256   {}", c.info.sha256);
        if !c.problems.is_empty() {
            let _ = writeln!(out, "  problems {}", c.problems.join(", "));
        }
    }

    let _ = writeln!(out, "\nNTLM");
    if r.ntlm.tested {
        match &r.ntlm.info {
            Some(i) => {
                for (k, v) in [
                    ("target name", &i.target_name),
                    ("NetBIOS computer", &i.netbios_computer),
                    ("NetBIOS domain", &i.netbios_domain),
                    ("DNS computer", &i.dns_computer),
                    ("DNS domain", &i.dns_domain),
                    ("DNS tree", &i.dns_tree),
                    ("OS version", &i.os_version),
                ] {
                    if let Some(v) = v {
                        let _ = writeln!(out, "  {k:<17} {v}");
                    }
                }
            }
            None => {
                let _ = writeln!(out, "  no target information: {}", r.ntlm.answer);
            }
        }
    } else {
        let _ = writeln!(
            out,
            "  not tested: neither PROTOCOL_HYBRID nor PROTOCOL_HYBRID_EX is accepted"
        );
    }

    let _ = writeln!(out, "\nfindings");
    if r.findings.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for f in &r.findings {
        let _ = writeln!(out, "  [{}] {}: {}", f.severity.as_str(), f.id, f.detail);
    }
    let _ = writeln!(out, "\n{} connections", r.connections);
    out
}

/// The JSON document, one line.
pub fn json(r: &ScanReport) -> String {
    serde_json::to_string(r).unwrap_or_else(|e| {
        serde_json::json!({ "schema": super::SCHEMA, "error": e.to_string() }).to_string()
    })
}
