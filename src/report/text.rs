//! The human timeline.

use core::fmt::Write as _;

use crate::mstsc::mstsc_line;
use crate::trace::{EventKind, Phase, PhaseStatus, Side, Trace};
use crate::verdict::{Basis, Verdict};

/// How much to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Print every fact, including the less important ones, and the tallies.
    pub verbose: bool,
}

/// The timeline of one trace, then its verdict.
pub fn render(trace: &Trace, verdict: &Verdict, opts: Options) -> String {
    let mut out = String::new();
    // A connection that followed redirections: every hop, each with its own phases, then the last one.
    let hops = trace.hops.len() + 1;
    for (i, hop) in trace.hops.iter().enumerate() {
        let _ = writeln!(out, "hop {} of {hops}: {}", i + 1, header(hop));
        let _ = writeln!(out);
        for phase in hop.shown_phases() {
            render_phase(&mut out, phase, opts);
        }
        let _ = writeln!(out);
    }
    if hops > 1 {
        let _ = write!(out, "hop {hops} of {hops}: ");
    }
    let _ = writeln!(out, "{}", header(trace));
    let _ = writeln!(out);
    for phase in trace.shown_phases() {
        render_phase(&mut out, phase, opts);
    }
    let _ = writeln!(out);
    render_verdict(&mut out, verdict);
    out
}

fn header(trace: &Trace) -> String {
    let mut s = format!("rdptrace {} {}", env!("CARGO_PKG_VERSION"), trace.target);
    match &trace.origin {
        crate::trace::Origin::Probe => {}
        crate::trace::Origin::Replay { file, session } => {
            let _ = write!(s, " (replay of {file}, session {session})");
        }
        crate::trace::Origin::Serve { scenario } => {
            let _ = write!(s, " (built-in target, scenario {scenario})");
        }
    }
    if let (Some(c), Some(srv)) = (&trace.client_addr, &trace.server_addr) {
        let _ = write!(s, "\n  {c} -> {srv}");
    }
    s
}

fn status_word(s: PhaseStatus) -> &'static str {
    match s {
        PhaseStatus::Ok => "ok",
        PhaseStatus::Failed => "FAILED",
        PhaseStatus::Skipped => "skipped",
        PhaseStatus::NotReached => "not reached",
    }
}

fn render_phase(out: &mut String, phase: &Phase, opts: Options) {
    let timing = match (phase.start_ms, phase.duration_ms) {
        (Some(start), Some(d)) => format!("{start:>8.1} ms +{d:.1} ms"),
        _ => String::new(),
    };
    let bytes = if phase.bytes_in + phase.bytes_out > 0 {
        format!("  in {} B, out {} B", phase.bytes_in, phase.bytes_out)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{:<16} {:<12}{timing}{bytes}",
        phase.name.as_str(),
        status_word(phase.status)
    );
    if matches!(phase.status, PhaseStatus::Skipped | PhaseStatus::NotReached)
        && phase.pdus.is_empty()
    {
        return;
    }
    // PDUs and events interleaved by time.
    let mut lines: Vec<(f64, String)> = Vec::new();
    for pdu in &phase.pdus {
        let arrow = match pdu.from {
            Side::Client => "->",
            Side::Server => "<-",
        };
        let summary = if pdu.summary.is_empty() {
            String::new()
        } else {
            format!(": {}", pdu.summary)
        };
        lines.push((
            pdu.at_ms,
            format!("{:>8.1}  {arrow} {}{summary}", pdu.at_ms, pdu.name),
        ));
    }
    for e in &phase.events {
        if let Some(text) = event_text(&e.kind) {
            lines.push((e.at_ms, format!("{:>8.1}  {text}", e.at_ms)));
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, l) in lines {
        let _ = writeln!(out, "    {l}");
    }
    for (k, v) in phase.facts.iter() {
        if !opts.verbose && !k.shown() {
            continue;
        }
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "              {k}: {v}");
    }
    if opts.verbose {
        for t in &phase.tallies {
            let _ = writeln!(out, "              {} x{} ({} B)", t.name, t.count, t.bytes);
        }
    } else if !phase.tallies.is_empty() {
        let total: u64 = phase.tallies.iter().map(|t| t.count).sum();
        let bytes: u64 = phase.tallies.iter().map(|t| t.bytes).sum();
        let _ = writeln!(out, "              ... and {total} more PDUs ({bytes} B)");
    }
}

fn event_text(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Resolved { host, addrs } => {
            format!("   {host} resolved to {}", addrs.join(", "))
        }
        EventKind::ResolveFailed { host, error } => format!("!! {host} did not resolve: {error}"),
        EventKind::ConnectFailed { addr, error } => format!(
            "!! connect to {addr} failed: {}",
            match error {
                crate::trace::ConnectError::Refused => "refused (RST)".to_owned(),
                crate::trace::ConnectError::TimedOut => "timed out (no answer to SYN)".to_owned(),
                crate::trace::ConnectError::Unreachable(w) => format!("unreachable ({w})"),
                crate::trace::ConnectError::Other(w) => w.clone(),
            }
        ),
        EventKind::Connected { local, remote } => format!("   connected {local} -> {remote}"),
        EventKind::TlsEstablished {
            version,
            cipher_suite,
        } => format!("   TLS established: {version}, {cipher_suite}"),
        EventKind::TlsFailed { error } => format!("!! TLS handshake failed: {error}"),
        EventKind::CertificateProblem { problem, detail } => {
            format!("!  certificate {}: {detail}", problem.as_str())
        }
        EventKind::Closed { by, how } => format!(
            "xx {} {}",
            by.as_str(),
            match how {
                crate::trace::CloseKind::Fin => "closed the connection (FIN)",
                crate::trace::CloseKind::Rst => "reset the connection (RST)",
            }
        ),
        EventKind::TimedOut {
            deadline,
            waiting_for,
        } => {
            format!("!! no {waiting_for} within {} s", deadline.seconds())
        }
        EventKind::ProtocolError {
            from,
            pdu,
            offset,
            detail,
        } => format!(
            "!! {} {pdu} does not decode: {detail}{}",
            from.as_str(),
            offset.map(|o| format!(" (offset {o})")).unwrap_or_default()
        ),
        EventKind::ClientLimit { detail } => format!("!! client limit: {detail}"),
        EventKind::Redirected { detail } => format!("!! redirected: {detail}"),
        EventKind::TunnelEnded { end } => format!("xx {end}"),
        EventKind::Gap { from, bytes } => format!(
            "!! {bytes} bytes from the {} missing from the capture",
            from.as_str()
        ),
        EventKind::IncompleteFrame {
            from,
            bytes,
            first_byte,
        } => format!(
            "!! the {}'s last {bytes} bytes never made a whole frame (first byte 0x{first_byte:02x})",
            from.as_str()
        ),
        EventKind::CaptureEnded => "   the capture ends here".to_owned(),
        EventKind::ClientClosed { reason } => format!("   client closed: {reason}"),
        EventKind::Anomaly { detail } => format!("!  {detail}"),
        EventKind::KdcChosen { realm, kdc, source } => {
            format!("   KDC for {realm}: {kdc} (from {source})")
        }
        EventKind::KdcNotFound { realm, tried } => {
            format!("!! no KDC found for {realm} (tried {})", tried.join(", "))
        }
        EventKind::Kdc {
            kdc,
            addr,
            direction,
            message,
        } => {
            let marker = match (direction, message) {
                (_, crate::pdu::KrbMessage::Error(e))
                    if e.code != crate::codes::kerberos::KDC_ERR_PREAUTH_REQUIRED =>
                {
                    "!!"
                }
                (crate::trace::KdcDirection::ToKdc, _) => ">>",
                (crate::trace::KdcDirection::FromKdc, _) => "<<",
            };
            // The address only when the URL names the KDC by name.
            let via = addr
                .as_ref()
                .filter(|a| !kdc.contains(a.as_str()))
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            format!(
                "{marker} KDC {kdc}{via}: {}",
                crate::kerberos::message::summary(message)
            )
        }
        EventKind::KdcFailed { kdc, error } => format!("!! KDC {kdc}: {error}"),
        EventKind::AuthFallback { reason } => format!("!  Negotiate falls back to NTLM: {reason}"),
        EventKind::KerberosNotUsed { reason } => format!("!  Kerberos not used: {reason}"),
    })
}

fn render_verdict(out: &mut String, v: &Verdict) {
    if v.ok {
        let _ = writeln!(out, "verdict: ok: {}", v.detail);
    } else {
        let _ = writeln!(
            out,
            "verdict: failed in {}: {}",
            v.phase.map(|p| p.as_str()).unwrap_or("?"),
            v.detail
        );
        let _ = writeln!(out, "cause: {}", v.cause.as_str());
    }
    for e in &v.evidence {
        let _ = writeln!(out, "  evidence: {e}");
    }
    match &v.mstsc {
        Some(m) => {
            let _ = writeln!(out, "mstsc would show: {}", mstsc_line(m));
            let _ = writeln!(out, "  basis: {}: {}", basis_word(m.basis), m.why);
        }
        None if !v.mstsc_either.is_empty() => {
            let _ = writeln!(out, "mstsc would show one of (the evidence fits each):");
            for m in &v.mstsc_either {
                let _ = writeln!(out, "  {}", mstsc_line(m));
                let _ = writeln!(out, "    basis: {}: {}", basis_word(m.basis), m.why);
            }
        }
        None if !v.ok => {
            let _ = writeln!(
                out,
                "mstsc would show: no documented disconnect code for this failure"
            );
        }
        None => {}
    }
    for h in &v.hints {
        let _ = writeln!(out, "hint: {h}");
    }
}

fn basis_word(basis: Basis) -> &'static str {
    match basis {
        Basis::Specified => "specified",
        Basis::Inferred => "inferred",
        Basis::Reported => "reported",
    }
}
