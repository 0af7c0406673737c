//! A reading into the trace: the PDUs it names go into the phases they belong to, each marked inferred, and
//! the events the dissector recorded while it waited in one phase (a close, the end of the capture) move to
//! where the reading puts them. The producer calls [`apply`] once the connection ended; diagnosis then reads
//! the trace as it reads any other.

use super::{Inference, Outcome, Step};
use crate::pdu::PduInfo;
use crate::trace::{Event, EventKind, Fact, Millis, Pdu, PhaseName, Trace};

/// Puts the first reading of `inference` (the earliest phase) into `trace`.
pub fn apply(trace: &mut Trace, inference: &Inference) {
    let Outcome::Explained { readings } = &inference.outcome else {
        return;
    };
    let Some(reading) = readings.first() else {
        return;
    };
    let Some(first) = reading.steps.first() else {
        return;
    };
    // The events the dissector recorded from the first encrypted record on, in the phase it waited in.
    let parked = trace.current();
    let since = first.at_ms;
    let moved: Vec<Event> = {
        let events = &mut trace.phase_mut(parked).events;
        let (keep, later): (Vec<Event>, Vec<Event>) =
            events.drain(..).partition(|e| e.at_ms < since);
        *events = keep;
        later
    };
    let basis = basis_text(inference);
    let mut where_at: Vec<(Millis, PhaseName)> = Vec::new();
    let mut noted: Vec<PhaseName> = Vec::new();
    for step in &reading.steps {
        if step.step == Step::Alert {
            // Alerts are in the trace already, as the dissector read them (encrypted or not).
            continue;
        }
        // A PDU that ends the connection belongs to the phase the reading ends in.
        let target = if step.step.is_ending() || step.step == Step::TsRequestError {
            reading.phase
        } else {
            step.step.phase()
        };
        if target > trace.current() {
            trace.enter(target, step.at_ms);
        }
        let phase = trace.current();
        where_at.push((step.at_ms, phase));
        if !noted.contains(&phase) {
            noted.push(phase);
            trace.fact_in(phase, Fact::Inferred, basis.clone());
        }
        trace.record_pdu(Pdu {
            at_ms: step.at_ms,
            from: step.from,
            len: step.plaintext.lo as usize,
            name: step.step.name().to_owned(),
            summary: summary(step.plaintext, step.split),
            info: PduInfo::Inferred {
                step: step.step,
                record: step.record,
                plaintext: step.plaintext,
                split: step.split,
            },
        });
    }
    let last = where_at.last().map_or(since, |(at, _)| *at);
    if reading.phase > trace.current() {
        // The reading ends waiting for the next phase: what ended the connection belongs there.
        let at = moved.first().map_or(last, |e| e.at_ms);
        trace.enter(reading.phase, at);
    }
    for e in moved {
        let phase = if e.at_ms >= last {
            trace.current()
        } else {
            where_at
                .iter()
                .rev()
                .find(|(at, _)| *at <= e.at_ms)
                .map_or(parked, |(_, p)| *p)
        };
        if matches!(e.kind, EventKind::Closed { .. }) && phase != parked {
            move_close_facts(trace, parked, phase, e.at_ms);
        }
        trace.record_event_in(phase, e.at_ms, e.kind);
    }
}

/// The facts the producer wrote about the close in the phase it waited in go with the close, and the PDU
/// the close came after is the last one the reading names before it.
fn move_close_facts(trace: &mut Trace, from: PhaseName, to: PhaseName, at_ms: Millis) {
    for key in [Fact::ClosedBy, Fact::ThenClosedBy, Fact::IdleBeforeCloseMs] {
        if let Some(value) = trace.phase_mut(from).facts.take(key) {
            trace.fact_in(to, key, value);
        }
    }
    if trace.phase_mut(from).facts.take(Fact::CloseAfter).is_some() {
        let last = trace
            .pdus()
            .filter(|(_, p)| p.at_ms <= at_ms)
            .last()
            .map(|(_, p)| {
                let inferred = if matches!(p.info, PduInfo::Inferred { .. }) {
                    " (inferred)"
                } else {
                    ""
                };
                format!("{} from the {}{inferred}", p.name, p.from.as_str())
            });
        if let Some(words) = last {
            trace.fact_in(to, Fact::CloseAfter, words);
        }
    }
}

fn summary(plaintext: super::record::Span, split: bool) -> String {
    let mut s = format!("inferred from an encrypted record of {plaintext}");
    if split {
        s.push_str(" (it goes on in the next record)");
    }
    s
}

/// What the readings rest on, as the timeline shows it.
pub fn basis_text(inference: &Inference) -> String {
    let b = &inference.basis;
    if b.standard_security {
        return format!(
            "from the sizes, directions and order of {} PDUs encrypted with Standard RDP Security: each one's length exactly (framed in the clear)",
            b.records
        );
    }
    let how = if b.exact {
        "each record's plaintext length exactly (AEAD)"
    } else {
        "each record's plaintext length to within a cipher block (CBC)"
    };
    format!(
        "from the sizes, directions and order of {} encrypted records: {how}",
        b.records
    )
}
