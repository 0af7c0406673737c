//! The exporter's status page (`GET /`): its modules and the last probes.

use core::fmt::Write as _;

use super::config::Config;
use super::state::Recent;
use crate::probe::Security;
use crate::report::html::escape;

/// `nla-ex`, as `--security` and the modules write it.
fn security(s: Security) -> String {
    clap::ValueEnum::to_possible_value(&s)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// The page.
pub fn render(config: &Config, recent: &[Recent]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rdptrace exporter</title>\n\
         <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}.fail{color:#b00020}</style>\n\
         </head><body>\n<h1>rdptrace exporter</h1>\n\
         <p><a href=\"/metrics\">/metrics</a> (the exporter's own metrics) &middot; \
         <a href=\"/results\">/results</a> (the last probes, rdptrace/1 JSON lines, for \
         <code>rdptrace report</code>) &middot; probe with \
         <code>/probe?target=HOST[:PORT]&amp;module=NAME</code> (<code>&amp;debug=true</code> for the \
         timeline)</p>\n<h2>Modules</h2>\n<table><tr><th>module</th><th>security</th><th>user</th>\
         <th>password</th><th>timeout</th><th>expect</th><th>allowed targets</th></tr>\n",
    );
    for m in config.modules.values() {
        let user = m
            .credentials
            .as_ref()
            .map(|c| match &c.domain {
                Some(d) => format!("{d}\\{}", c.user),
                None => c.user.clone(),
            })
            .unwrap_or_default();
        let expect: Vec<String> = m.expect.iter().map(|e| e.to_string()).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} s</td><td>{}</td><td>{}</td></tr>",
            escape(&m.name),
            security(m.security),
            escape(&user),
            escape(m.password_source.as_deref().unwrap_or("")),
            m.timeout.as_secs_f64(),
            escape(&expect.join(", ")),
            escape(
                &m.allowed_targets
                    .as_ref()
                    .map_or_else(|| "any".to_owned(), |t| t.join(", "))
            ),
        );
    }
    out.push_str(
        "</table>\n<h2>Last probes</h2>\n<table><tr><th>at</th><th>target</th><th>module</th>\
         <th>result</th><th>phase</th><th>cause</th><th>seconds</th><th>detail</th></tr>\n",
    );
    for r in recent.iter().rev() {
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
            if r.success { "" } else { " class=\"fail\"" },
            escape(&r.at),
            escape(&r.target),
            escape(&r.module),
            if r.success { "success" } else { "failure" },
            escape(&r.phase),
            escape(&r.cause),
            r.seconds,
            escape(&r.detail),
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}
