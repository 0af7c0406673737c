//! The HTML report of `rdptrace report --html`: one self-contained page (inline CSS and SVG, no script, no
//! network resource) with the summary table and, per result, a waterfall of its phases: time on the
//! axis, the failing phase marked, the PDUs and the evidence on hover and the verdict below.
//!
//! The page is written in three parts so that the results stream: [`section`] per result as it is read,
//! then [`head`] (which holds the summary, known only at the end) and [`TAIL`] around them.

use core::fmt::Write as _;

use super::stored::{Phase, Stored};
use crate::fleet::summary::Summary;

/// Text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Geometry of a waterfall, in SVG user units (pixels).
const LABEL_W: f64 = 130.0;
const CHART_W: f64 = 600.0;
const ROW_H: f64 = 18.0;
const AXIS_H: f64 = 22.0;
const WIDTH: f64 = LABEL_W + CHART_W + 70.0;

const STYLE: &str = "body{font:14px system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1b1b1b;\
background:#fff}h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:0 0 6px}\
.summary{display:flex;gap:32px;flex-wrap:wrap;margin-bottom:20px}table{border-collapse:collapse}\
td,th{border:1px solid #d0d0d0;padding:2px 8px;text-align:left}th{background:#f3f3f3}\
.num{text-align:right}.ok{color:#1b5e20}.fail{color:#b71c1c}section{border-top:1px solid #ddd;\
padding:10px 0}section h2 .tag{font-weight:normal;font-size:13px;margin-left:8px}\
svg text{font:11px system-ui,sans-serif;fill:#333}.bar-ok{fill:#43a047}.bar-failed{fill:#e53935}\
.axis{stroke:#999;stroke-width:1}.grid{stroke:#eee;stroke-width:1}.verdict{margin:4px 0 0 0}\
.evidence{margin:2px 0 0 0;padding-left:20px;font:12px ui-monospace,monospace;color:#444}";

/// The page up to the results: title, the summary table, the counts per phase and cause, the failing
/// results.
pub fn head(summary: &Summary, inputs: &[String]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>rdptrace report: {} results, {} failed</title>\n<style>{STYLE}</style></head><body>\n\
         <h1>rdptrace report: {} results, <span class=\"ok\">{} passed</span>, \
         <span class=\"fail\">{} failed</span></h1>\n<p>From {}.</p>\n<div class=\"summary\">\n",
        summary.total,
        summary.total - summary.passed,
        summary.total,
        summary.passed,
        summary.total - summary.passed,
        escape(&inputs.join(", ")),
    );
    let counts = |title: &str, map: &std::collections::BTreeMap<String, usize>| {
        let mut rows: Vec<(&String, &usize)> = map.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut t = format!("<table><tr><th>{title}</th><th class=\"num\">results</th></tr>\n");
        for (k, n) in rows {
            let class = if k == "active" || k == "connected" {
                "ok"
            } else {
                "fail"
            };
            let _ = writeln!(
                t,
                "<tr><td class=\"{class}\">{}</td><td class=\"num\">{n}</td></tr>",
                escape(k)
            );
        }
        t.push_str("</table>\n");
        t
    };
    out.push_str(&counts("phase", &summary.by_phase));
    out.push_str(&counts("cause", &summary.by_cause));
    out.push_str("</div>\n");
    let failing = summary.failing();
    if !failing.is_empty() {
        out.push_str(
            "<h2>Failing</h2>\n<table><tr><th>result</th><th>phase</th><th>cause</th>\
             <th class=\"num\">exit</th><th>from</th></tr>\n",
        );
        for e in failing {
            let what = match e.unmet {
                Some(n) if n > 0 => format!("{} ({n} expectations not met)", e.cause),
                _ => e.cause.clone(),
            };
            let _ = writeln!(
                out,
                "<tr><td><a href=\"#r{}\">{}</a></td><td>{}</td><td class=\"fail\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                e.position,
                escape(&e.target),
                escape(&e.phase),
                escape(&what),
                e.code,
                escape(&e.source)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2 style=\"margin-top:20px\">Results</h2>\n");
    out
}

/// The end of the page.
pub const TAIL: &str = "</body></html>\n";

/// A step of 1, 2 or 5 times a power of ten that cuts `total` into at most about six parts.
fn tick_step(total: f64) -> f64 {
    let raw = (total / 6.0).max(1e-6);
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow)
}

fn ms(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0} ms")
    } else if v >= 1.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// The hover text of a phase: its timing, bytes and first PDUs; for the failing phase the verdict too.
fn phase_title(p: &Phase, result: &Stored, failing: bool) -> String {
    let mut t = format!(
        "{} {}: {} +{} (in {} B, out {} B)",
        p.name,
        p.status,
        ms(p.start_ms.unwrap_or(0.0)),
        ms(p.duration_ms.unwrap_or(0.0)),
        p.bytes_in,
        p.bytes_out
    );
    for pdu in &p.pdus {
        let arrow = if pdu.from == "client" { "->" } else { "<-" };
        let _ = write!(t, "\n{:.1} ms {arrow} {}", pdu.at_ms, pdu.name);
        if !pdu.summary.is_empty() {
            let _ = write!(t, ": {}", pdu.summary);
        }
    }
    if failing && let Some(v) = &result.verdict {
        let _ = write!(t, "\n\n{}", v.detail);
        for e in &v.evidence {
            let _ = write!(t, "\n{e}");
        }
    }
    t
}

/// The section of one result: its title, the waterfall, the verdict and evidence below it.
pub fn section(result: &Stored, position: usize) -> String {
    let passed = result.passed();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section id=\"r{position}\"><h2 class=\"{}\">{}<span class=\"tag\">{} {} {}</span></h2>",
        if passed { "ok" } else { "fail" },
        escape(&result.label()),
        if passed { "passed" } else { "FAILED" },
        escape(&result.phase_word()),
        escape(&result.cause()),
    );
    let reached: Vec<&Phase> = result.phases.iter().filter(|p| p.reached()).collect();
    let end = reached
        .iter()
        .map(|p| p.start_ms.unwrap_or(0.0) + p.duration_ms.unwrap_or(0.0))
        .fold(0.0f64, f64::max)
        .max(0.001);
    if !reached.is_empty() {
        let height = AXIS_H + ROW_H * reached.len() as f64 + 4.0;
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"phases of {}\">",
            escape(&result.label())
        );
        let step = tick_step(end);
        let x = |t: f64| LABEL_W + (t / end).clamp(0.0, 1.0) * CHART_W;
        let mut t = 0.0;
        for _ in 0..12 {
            if t > end * 1.0001 {
                break;
            }
            let _ = writeln!(
                out,
                "<line class=\"grid\" x1=\"{0:.1}\" y1=\"{AXIS_H}\" x2=\"{0:.1}\" y2=\"{height}\"/>\
                 <text x=\"{0:.1}\" y=\"13\" text-anchor=\"middle\">{1}</text>",
                x(t),
                ms(t)
            );
            t += step;
        }
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{LABEL_W}\" y1=\"{AXIS_H}\" x2=\"{}\" y2=\"{AXIS_H}\"/>",
            LABEL_W + CHART_W
        );
        for (i, p) in reached.iter().enumerate() {
            let y = AXIS_H + 2.0 + ROW_H * i as f64;
            let failing = p.status == "failed";
            let start = p.start_ms.unwrap_or(0.0);
            let x0 = x(start);
            let w = (x(start + p.duration_ms.unwrap_or(0.0)) - x0).max(2.0);
            let _ = write!(
                out,
                "<g><title>{}</title><text x=\"4\" y=\"{:.1}\">{}</text>\
                 <rect class=\"bar-{}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\"/>",
                escape(&phase_title(p, result, failing)),
                y + 12.0,
                escape(&p.name),
                if failing { "failed" } else { "ok" },
                y + 2.0,
                ROW_H - 5.0,
            );
            if failing {
                // The mark goes after the bar, or before it when the bar ends near the right edge.
                let (mx, anchor) = if x0 + w < LABEL_W + CHART_W * 0.6 {
                    (x0 + w + 6.0, "start")
                } else {
                    (x0 - 6.0, "end")
                };
                let _ = write!(
                    out,
                    "<text x=\"{mx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" \
                     style=\"fill:#b71c1c;font-weight:bold\">&#x2717; failed: {}</text>",
                    y + 12.0,
                    escape(&result.cause())
                );
            }
            out.push_str("</g>\n");
        }
        out.push_str("</svg>\n");
    }
    let not_reached: Vec<&str> = result
        .phases
        .iter()
        .filter(|p| p.status == "not_reached")
        .map(|p| p.name.as_str())
        .collect();
    if !not_reached.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"verdict\" style=\"color:#777\">not reached: {}</p>",
            escape(&not_reached.join(", "))
        );
    }
    if let Some(v) = &result.verdict {
        let _ = write!(
            out,
            "<p class=\"verdict {}\">{}",
            if v.ok { "ok" } else { "fail" },
            escape(&v.detail)
        );
        if let Some(m) = &v.mstsc {
            let _ = write!(
                out,
                " (mstsc 0x{:x} / 0x{:x})",
                m.disc_reason.code, m.extended.code
            );
        }
        out.push_str("</p>\n");
        if !v.evidence.is_empty() {
            out.push_str("<ul class=\"evidence\">");
            for e in &v.evidence {
                let _ = write!(out, "<li>{}</li>", escape(e));
            }
            out.push_str("</ul>\n");
        }
    }
    if let Some(e) = &result.error {
        let _ = writeln!(out, "<p class=\"verdict fail\">{}</p>", escape(e));
    }
    if !result.expectations.is_empty() {
        out.push_str("<ul class=\"evidence\">");
        for o in &result.expectations {
            let _ = write!(
                out,
                "<li class=\"{}\">{} {}: seen {}</li>",
                if o.holds { "ok" } else { "fail" },
                if o.holds { "PASS" } else { "FAIL" },
                escape(&o.expectation),
                escape(&o.seen)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{fffd}"
        );
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(60.0), 10.0);
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(2500.0), 500.0);
    }
}
