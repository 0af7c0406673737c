//! The alignment of the observed records to the scripts of both sides: a set of hypotheses (where each side
//! is in its script), advanced record by record, that keeps every reading the sizes and the order allow.
//! A record may hold several PDUs of its side, and a PDU may run over several records.

use std::sync::Arc;

use super::record::Span;
use super::script::{COUNTERS, Counter, Item, Need, Script, Step};
use crate::trace::{Millis, PhaseName, Side};

/// The most PDUs one record is taken to hold.
const MAX_PDUS_PER_RECORD: usize = 8;
/// How much costlier than the best a reading may be and still be kept.
const COST_MARGIN: u32 = 6;
/// The most hypotheses kept; the cheapest are kept when there are more.
const MAX_HYPOTHESES: usize = 512;
/// What reading a record as more than one PDU costs, per PDU after the first: the implementations write
/// one PDU per record.
const PACKED: u32 = 3;
/// What reading a record as a PDU that tells nothing of the sequence costs: the fewer, the likelier.
const EXTRA: u32 = 1;
/// What reading a PDU as split over records costs.
const SPLIT: u32 = 2;
/// A record this long is a full TLS record ([RFC 5246] 6.2.1): what it holds may go on in the next one.
const FULL_RECORD: u32 = 16384 - 512;

/// A record the matcher reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    pub from: Side,
    pub at: Millis,
    pub plaintext: Span,
    /// The record is a TLS alert (its content type said so, or its plaintext is two bytes under TLS 1.3).
    pub alert: bool,
    /// The record is a fast-path PDU ([2.2.8.1.2], [2.2.9.1.2]), which only the active session carries:
    /// Standard RDP Security frames it in the clear.
    pub fast_path: bool,
}

/// One side's place in its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Place {
    /// The script item the side is at.
    pub idx: u8,
    /// How many of it the side sent.
    pub n: u16,
    /// The bytes still to come of a PDU that a record started.
    pub partial: Option<Span>,
    /// The ending the side took (Set Error Info, Ultimatum, TSRequest errorCode, alert), last one.
    pub ended: Option<Step>,
    pub counters: [u8; COUNTERS],
}

impl Place {
    const START: Place = Place {
        idx: 0,
        n: 0,
        partial: None,
        ended: None,
        counters: [0; COUNTERS],
    };

    fn counter(&self, c: Counter) -> u8 {
        self.counters.get(c as usize).copied().unwrap_or(0)
    }
}

/// A step taken, for the timeline.
#[derive(Debug)]
pub struct Taken {
    pub from: Side,
    pub at: Millis,
    pub step: Step,
    /// The record's number among the encrypted ones (from 1).
    pub record: u32,
    /// The record's plaintext length.
    pub plaintext: Span,
    /// Whether the PDU went on past this record.
    pub split: bool,
    pub prev: Option<Arc<Taken>>,
}

/// One reading of the records so far.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    pub client: Place,
    pub server: Place,
    /// How much the reading had to assume: optional PDUs, PDUs split over records.
    pub cost: u32,
    /// The steps taken, newest first (data steps only once per side).
    pub path: Option<Arc<Taken>>,
}

impl Hypothesis {
    fn place(&self, side: Side) -> &Place {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn place_mut(&mut self, side: Side) -> &mut Place {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// The steps taken, oldest first.
    pub fn steps(&self) -> Vec<&Taken> {
        let mut out = Vec::new();
        let mut at = self.path.as_deref();
        while let Some(t) = at {
            out.push(t);
            at = t.prev.as_deref();
        }
        out.reverse();
        out
    }
}

/// The matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    script: Arc<Script>,
    hypotheses: Vec<Hypothesis>,
    records: u32,
    /// The first record nothing could explain.
    pub unexplained: Option<(u32, Observed)>,
    /// Every reading is in the active session (or ended) on both sides with nothing pending: session data
    /// changes none of them, so only the last records are kept, for the ending ([`Matcher::settled`]).
    frozen: bool,
    tail: std::collections::VecDeque<(u32, Observed)>,
    /// Records from each side since the matcher froze.
    since_frozen: crate::trace::PerSide<u32>,
}

/// The records kept once every reading is in the active session: more than any ending takes.
const TAIL: usize = 8;

/// Whether `place` on its side went past (or through) `step` of `items`.
fn past(items: &[Item], place: &Place, step: Step) -> bool {
    let Some(at) = items.iter().position(|i| i.step == step) else {
        return true;
    };
    let idx = usize::from(place.idx);
    idx > at
        || (idx == at
            && place.partial.is_none()
            && items.get(at).is_some_and(|i| place.n >= i.min.max(1)))
}

impl Matcher {
    pub fn new(script: Script) -> Matcher {
        Matcher {
            script: Arc::new(script),
            hypotheses: vec![Hypothesis {
                client: Place::START,
                server: Place::START,
                cost: 0,
                path: None,
            }],
            records: 0,
            unexplained: None,
            frozen: false,
            tail: std::collections::VecDeque::new(),
            since_frozen: crate::trace::PerSide::new(0, 0),
        }
    }

    pub fn hypotheses(&self) -> &[Hypothesis] {
        &self.hypotheses
    }

    pub fn script(&self) -> &Script {
        &self.script
    }

    pub fn records(&self) -> u32 {
        self.records
    }

    /// Whether every reading is in the active session on both sides: past that, the records only matter for
    /// the ending.
    pub fn all_active(&self) -> bool {
        let last = |items: &[Item]| items.len().saturating_sub(1);
        // A side that ended is as settled as one in the session's data.
        let done =
            |p: &Place, items: &[Item]| p.ended.is_some() || usize::from(p.idx) == last(items);
        self.hypotheses
            .iter()
            .all(|h| done(&h.client, &self.script.client) && done(&h.server, &self.script.server))
    }

    /// Reads one record. Once nothing explains a record, later ones are not read.
    pub fn push(&mut self, rec: Observed) {
        if self.unexplained.is_some() {
            return;
        }
        self.records = self.records.saturating_add(1);
        if self.frozen {
            if self.tail.len() >= TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back((self.records, rec));
            self.since_frozen[rec.from] = self.since_frozen[rec.from].saturating_add(1);
            return;
        }
        self.step(rec);
        // Session data leaves every reading where it is once each side is in the active session (or has
        // ended) with no PDU half read.
        self.frozen = self.unexplained.is_none()
            && self.all_active()
            && self
                .hypotheses
                .iter()
                .all(|h| h.client.partial.is_none() && h.server.partial.is_none());
    }

    /// The matcher with the records kept since it froze read too: what [`Matcher::hypotheses`] would be had
    /// every record been read.
    pub fn settled(&self) -> std::borrow::Cow<'_, Matcher> {
        if self.tail.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut m = self.clone();
        m.frozen = false;
        // A side that ended sends nothing more: a reading in which it ended before records of its that are no
        // longer kept is over.
        let in_tail = |side: Side| self.tail.iter().filter(|(_, r)| r.from == side).count();
        m.hypotheses.retain(|h| {
            [Side::Client, Side::Server].into_iter().all(|side| {
                h.place(side).ended.is_none() || self.since_frozen[side] as usize <= in_tail(side)
            })
        });
        if m.hypotheses.is_empty() {
            // Every reading ended a side that went on: the oldest record kept is what nothing explains.
            if let Some((n, rec)) = self.tail.front() {
                m.unexplained = Some((*n, *rec));
            }
            return std::borrow::Cow::Owned(m);
        }
        let tail = std::mem::take(&mut m.tail);
        for (n, rec) in tail {
            if m.unexplained.is_some() {
                break;
            }
            m.records = n;
            m.step(rec);
        }
        m.records = self.records;
        std::borrow::Cow::Owned(m)
    }

    /// Reads one record into every hypothesis.
    fn step(&mut self, rec: Observed) {
        let mut next: Vec<Hypothesis> = Vec::new();
        for h in &self.hypotheses {
            self.advance(h, &rec, &mut next);
        }
        if next.is_empty() {
            self.unexplained = Some((self.records, rec));
            return;
        }
        next.sort_by_key(|h| h.cost);
        // Readings far costlier than the best are dropped: the verdict reads the cheapest only, and a reading
        // this much costlier would need the best ones to die first, which they do within a few records.
        let best = next.first().map_or(0, |h| h.cost);
        let mut seen: std::collections::HashSet<(Place, Place), foldhash::fast::RandomState> =
            std::collections::HashSet::default();
        let mut kept: Vec<Hypothesis> = Vec::with_capacity(next.len().min(MAX_HYPOTHESES));
        for h in next {
            if kept.len() >= MAX_HYPOTHESES || h.cost > best.saturating_add(COST_MARGIN) {
                break;
            }
            if seen.insert((h.client, h.server)) {
                kept.push(h);
            }
        }
        self.hypotheses = kept;
    }

    /// A PDU the dissector read in the clear: every reading moves its side through that step (past optional
    /// PDUs only); a reading that cannot is dropped.
    pub fn push_known(&mut self, from: Side, at: Millis, step: Step) {
        if self.unexplained.is_some() {
            return;
        }
        let items = self.script.side(from);
        let rec = Observed {
            from,
            at,
            plaintext: Span::exact(0),
            alert: false,
            fast_path: false,
        };
        let mut next = Vec::new();
        for h in &self.hypotheses {
            let place = *h.place(from);
            if place.partial.is_some() || place.ended.is_some() {
                continue;
            }
            let mut idx = usize::from(place.idx);
            let mut n = place.n;
            while let Some(cand) = items.get(idx) {
                if cand.step == step && n < cand.max {
                    let mut moved = h.clone();
                    let p = moved.place_mut(from);
                    p.idx = u8::try_from(idx).unwrap_or(u8::MAX);
                    p.n = n.saturating_add(1);
                    if let Some(c) = cand.counter
                        && let Some(slot) = p.counters.get_mut(c as usize)
                    {
                        *slot = slot.saturating_add(1);
                    }
                    moved.path = Some(self.taken(h.path.clone(), &rec, step, false));
                    next.push(moved);
                    break;
                }
                if n < cand.min {
                    break;
                }
                idx += 1;
                n = 0;
            }
        }
        if !next.is_empty() {
            self.hypotheses = next;
        }
    }

    fn advance(&self, h: &Hypothesis, rec: &Observed, out: &mut Vec<Hypothesis>) {
        let side = rec.from;
        let place = *h.place(side);
        if rec.alert || place.ended == Some(Step::Alert) {
            // After an alert nothing more comes from that side; an alert ends it.
            if place.ended != Some(Step::Alert) && rec.alert {
                let mut n = h.clone();
                n.place_mut(side).ended = Some(Step::Alert);
                n.place_mut(side).partial = None;
                n.path = Some(self.taken(h.path.clone(), rec, Step::Alert, false));
                out.push(n);
            }
            return;
        }
        if !rec.fast_path {
            self.endings(h, rec, out);
        }
        if place.ended.is_some() {
            return;
        }
        let mut acc = Vec::new();
        self.walk(h.clone(), rec, Span::exact(0), 0, &mut acc);
        out.extend(acc);
    }

    /// The readings in which the record ends the side's part: a Set Error Info, an Ultimatum, a TSRequest
    /// with an errorCode, alone or one after the other.
    fn endings(&self, h: &Hypothesis, rec: &Observed, out: &mut Vec<Hypothesis>) {
        let s = super::sizes::sizes();
        let side = rec.from;
        let place = *h.place(side);
        let credssp = self
            .script
            .side(side)
            .get(usize::from(place.idx))
            .is_some_and(|i| i.step.is_credssp());
        let sei = super::script::send_data(s.set_error_info);
        let dpu = Span::exact(s.ultimatum);
        let mut options: Vec<Vec<(Step, Span)>> = Vec::new();
        match (side, place.ended) {
            (Side::Server, None) => {
                options.push(vec![(Step::SetErrorInfo, sei)]);
                options.push(vec![(Step::SetErrorInfo, sei), (Step::Ultimatum, dpu)]);
                options.push(vec![(Step::Ultimatum, dpu)]);
                if credssp
                    && h.client.counter(Counter::Credssp) > h.server.counter(Counter::Credssp)
                {
                    // [MS-CSSP] 2.2.1 version and errorCode only: a few dozen bytes.
                    options.push(vec![(Step::TsRequestError, Span::new(8, 39))]);
                }
            }
            (Side::Server, Some(Step::SetErrorInfo | Step::TsRequestError))
            | (Side::Client, None) => options.push(vec![(Step::Ultimatum, dpu)]),
            _ => {}
        }
        for option in options {
            let total = option
                .iter()
                .fold(Span::exact(0), |acc, (_, size)| acc.plus(*size));
            if !total.overlaps(rec.plaintext) {
                continue;
            }
            let mut n = h.clone();
            let mut path = h.path.clone();
            for (step, _) in &option {
                path = Some(self.taken(path, rec, *step, false));
                n.place_mut(side).ended = Some(*step);
            }
            n.place_mut(side).partial = None;
            n.path = path;
            out.push(n);
        }
    }

    fn taken(
        &self,
        prev: Option<Arc<Taken>>,
        rec: &Observed,
        step: Step,
        split: bool,
    ) -> Arc<Taken> {
        Arc::new(Taken {
            from: rec.from,
            at: rec.at,
            step,
            record: self.records,
            plaintext: rec.plaintext,
            split,
            prev,
        })
    }

    /// Whether the other side allows `item` now.
    fn allowed(&self, side: Side, h: &Hypothesis, item: &Item) -> bool {
        let other = h.place(side.other());
        let mine = h.place(side);
        let other_items = self.script.side(side.other());
        let balanced = |c: Counter, k: u8| other.counter(c) >= mine.counter(c).saturating_add(k);
        match item.need {
            Need::Nothing => true,
            Need::Past(step) => past(other_items, other, step),
            Need::Balanced(c, k) => balanced(c, k),
            Need::PastAndBalanced(step, c, k) => past(other_items, other, step) && balanced(c, k),
        }
    }

    /// Every reading of the rest of the record from hypothesis `h`, `used` bytes of it already taken by
    /// `depth` PDUs.
    fn walk(
        &self,
        h: Hypothesis,
        rec: &Observed,
        used: Span,
        depth: usize,
        out: &mut Vec<Hypothesis>,
    ) {
        let side = rec.from;
        let items = self.script.side(side);
        let place = *h.place(side);
        let want = rec.plaintext;
        if depth >= MAX_PDUS_PER_RECORD || used.lo > want.hi {
            return;
        }
        if let Some(rest) = place.partial {
            // The record goes on with the PDU an earlier record started: it ends it, or all of it is more of it.
            let whole = used.plus(rest);
            let mut done = h.clone();
            done.place_mut(side).partial = None;
            if depth > 0 {
                done.cost = done.cost.saturating_add(PACKED);
            }
            if whole.overlaps(want) {
                out.push(done.clone());
            }
            self.walk(done, rec, whole, depth + 1, out);
            let cut = Span::new(
                rest.lo
                    .saturating_sub(want.hi.saturating_sub(used.lo))
                    .max(1),
                rest.hi.saturating_sub(want.lo.saturating_sub(used.hi)),
            );
            if rest.hi > 1 && cut.lo <= cut.hi && (want.hi < rest.lo || want.lo >= FULL_RECORD) {
                let mut more = h;
                more.place_mut(side).partial = Some(cut);
                more.cost = more.cost.saturating_add(SPLIT);
                out.push(more);
            }
            return;
        }
        // The next items this side may send: the current one again, or a later one past optional ones.
        let mut idx = usize::from(place.idx);
        let mut n = place.n;
        while let Some(cand) = items.get(idx).copied() {
            let fits_kind = !rec.fast_path || cand.step == Step::Data;
            if fits_kind && n < cand.max && self.allowed(side, &h, &cand) {
                self.take(&h, rec, idx, n, &cand, used, depth, out);
            }
            if n < cand.min {
                break;
            }
            idx += 1;
            n = 0;
        }
    }

    /// Reads `cand` (item `idx` of the side's script, its `n`-th) from the record, whole or in part.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        h: &Hypothesis,
        rec: &Observed,
        idx: usize,
        n: u16,
        cand: &Item,
        used: Span,
        depth: usize,
        out: &mut Vec<Hypothesis>,
    ) {
        let side = rec.from;
        let want = rec.plaintext;
        let Ok(idx8) = u8::try_from(idx) else {
            return;
        };
        let mut next = h.clone();
        {
            let p = next.place_mut(side);
            p.idx = idx8;
            // Unbounded items (the session's data) are not counted: their count tells nothing.
            p.n = if cand.max == u16::MAX {
                n
            } else {
                n.saturating_add(1)
            };
            if let Some(c) = cand.counter
                && let Some(slot) = p.counters.get_mut(c as usize)
            {
                *slot = slot.saturating_add(1);
            }
        }
        if depth > 0 {
            next.cost = next.cost.saturating_add(PACKED);
        }
        if matches!(cand.step, Step::ServerExtra | Step::ClientExtra) {
            next.cost = next.cost.saturating_add(EXTRA);
        }
        // The session's data is in the timeline once per side.
        let noted = cand.step != Step::Data || h.place(side).idx != idx8;
        if noted {
            next.path = Some(self.taken(h.path.clone(), rec, cand.step, false));
        }
        // Whole.
        for size in cand.sizes() {
            let whole = used.plus(size);
            if whole.overlaps(want) {
                out.push(next.clone());
            }
            if whole.lo <= want.hi {
                self.walk(next.clone(), rec, whole, depth + 1, out);
            }
        }
        // In part: the record ends inside this PDU, which a later record finishes. Only when the record is
        // too short for it or is a full record.
        let room_lo = want.lo.saturating_sub(used.hi);
        let room_hi = want.hi.saturating_sub(used.lo);
        // The session's data has no PDU boundaries to keep: it is never split.
        if cand.step != Step::Data
            && room_hi >= 1
            && cand.size.hi > 1
            && (room_hi < cand.size.lo || want.lo >= FULL_RECORD)
        {
            let cut = Span::new(
                cand.size.lo.saturating_sub(room_hi).max(1),
                cand.size.hi.saturating_sub(room_lo.max(1)),
            );
            if cut.lo <= cut.hi {
                let mut part = next;
                part.place_mut(side).partial = Some(cut);
                part.cost = part.cost.saturating_add(SPLIT);
                if noted {
                    part.path = Some(self.taken(h.path.clone(), rec, cand.step, true));
                }
                out.push(part);
            }
        }
    }
}

/// Where a side stands: the phase of the next PDU it may send, and whether it may send one now (`false`:
/// it waits for the other side).
pub fn next_phase(
    items: &[Item],
    place: &Place,
    h: &Hypothesis,
    matcher: &Matcher,
    side: Side,
) -> (PhaseName, bool) {
    if place.partial.is_some() {
        let phase = items
            .get(usize::from(place.idx))
            .map_or(PhaseName::Active, |i| i.step.phase());
        return (phase, true);
    }
    let mut idx = usize::from(place.idx);
    let mut n = place.n;
    let mut best: Option<PhaseName> = None;
    let mut blocked = PhaseName::Active;
    while let Some(i) = items.get(idx) {
        // Optional PDUs that tell nothing of the sequence do not hold the connection in their phase.
        if n < i.max && !i.step.is_extra() {
            if matcher.allowed(side, h, i) {
                best = Some(best.map_or(i.step.phase(), |b| b.min(i.step.phase())));
            } else {
                blocked = blocked.min(i.step.phase());
            }
        }
        if n < i.min {
            break;
        }
        idx += 1;
        n = 0;
    }
    match best {
        Some(p) => (p, true),
        None => (blocked, false),
    }
}
