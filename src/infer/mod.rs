//! How far an encrypted connection got and how it ended, from what the ciphertext shows: the direction,
//! order, time and plaintext length of each TLS record nobody could decrypt.
//!
//! The connection sequence after the TLS handshake is a lockstep of PDUs with known directions and, for
//! most of them, known or narrow sizes ([MS-RDPBCGR] 1.3.1.1, [MS-CSSP] 3.1.5); an AEAD record shows its
//! plaintext length exactly, a CBC record to within a block. [`Recorder`] reads the records as they go by
//! (sans-IO: the dissector feeds it), [`Recorder::conclude`] says which readings of them remain: the phase
//! where each leaves the connection and how the server ended it.
//!
//! The readings are evidence of a weaker kind than a decrypted PDU: every PDU they name is marked
//! inferred, and where two readings disagree the verdict names both.

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

pub mod apply;
pub mod matcher;
pub mod record;
pub mod script;
pub mod sizes;
#[cfg(test)]
mod tests;

use serde::Serialize;

use self::matcher::{Hypothesis, Matcher, Observed, next_phase};
use self::record::{Overhead, Span, TLS13};
pub use self::script::{Credssp, Inner, Script, Step};
use crate::trace::{Millis, PhaseName, Side};

/// TLS content types ([RFC 5246] 6.2.1).
const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
const APPLICATION_DATA: u8 = 23;

/// The most records kept for the timeline; the rest are counted.
const MAX_STEPS_SHOWN: usize = 64;

/// Reads the encrypted records of one connection.
#[derive(Debug, Clone)]
pub struct Recorder {
    overhead: Overhead,
    tls13: bool,
    /// TLS 1.3: the client's Finished went by (its first encrypted record); before it, the records are the
    /// handshake.
    client_finished: bool,
    /// One matcher per possible inner protocol: one when the Connection Confirm said which, three when the
    /// capture starts after it.
    matchers: Vec<(Inner, Matcher)>,
    /// Records whose length no plaintext fits (padding, a record of another protocol).
    misfits: u32,
    /// Encrypted handshake records after the handshake (renegotiation).
    renegotiations: u32,
    records: u32,
}

impl Recorder {
    /// A recorder for a connection that negotiated `version` and `suite`, with `inner` after the handshake
    /// (`None`: not seen, any of them); `None` for a suite whose record overhead rdptrace does not know.
    pub fn new(inner: Option<Inner>, version: u16, suite: u16) -> Option<Recorder> {
        let overhead = Overhead::of(version, suite)?;
        let tls13 = version == TLS13;
        let inners = match inner {
            Some(i) => vec![i],
            None => vec![Inner::HybridEx, Inner::Hybrid, Inner::Ssl],
        };
        Some(Recorder {
            overhead,
            tls13,
            client_finished: false,
            matchers: inners
                .into_iter()
                .flat_map(|i| {
                    let shapes: &[Credssp] = if !matches!(i, Inner::Hybrid | Inner::HybridEx) {
                        &[Credssp::Other]
                    } else {
                        &[Credssp::Ntlm, Credssp::Other]
                    };
                    shapes
                        .iter()
                        .map(move |c| (i, Matcher::new(Script::new(i, *c, tls13))))
                })
                .collect(),
            misfits: 0,
            renegotiations: 0,
            records: 0,
        })
    }

    /// One encrypted record of `fragment` bytes (without its 5-byte header) from `from`.
    pub fn record(&mut self, from: Side, at: Millis, content_type: u8, fragment: usize) {
        let fragment = u32::try_from(fragment).unwrap_or(u32::MAX);
        if self.tls13 && !self.client_finished {
            // [RFC 8446] 2: the server's encrypted flight, then the client's Finished.
            if from == Side::Client && content_type == APPLICATION_DATA {
                self.client_finished = true;
            }
            return;
        }
        if content_type == HANDSHAKE {
            // TLS 1.2: the Finished of each side is the first encrypted record; later ones renegotiate.
            if self.records() > 0 {
                self.renegotiations = self.renegotiations.saturating_add(1);
            }
            return;
        }
        if content_type != APPLICATION_DATA && content_type != ALERT {
            return;
        }
        let Some(plaintext) = self.overhead.plaintext(fragment) else {
            self.misfits = self.misfits.saturating_add(1);
            return;
        };
        // Under TLS 1.3 an alert is an application data record of two bytes of plaintext; no RDP PDU is as
        // short.
        let alert =
            content_type == ALERT || (self.tls13 && plaintext == Span::exact(sizes::sizes().alert));
        let rec = Observed {
            from,
            at,
            plaintext,
            alert,
            fast_path: false,
        };
        for (_, m) in &mut self.matchers {
            m.push(rec);
        }
        self.records = self.records.saturating_add(1);
    }

    /// A recorder for Standard RDP Security ([5.3]): PDUs framed in the clear with encrypted contents.
    pub fn standard(licensed: bool) -> Recorder {
        let inner = Inner::Standard { licensed };
        Recorder {
            // RC4 adds nothing to the length, FIPS pads visibly: the caller gives exact lengths.
            overhead: Overhead::Stream { mac: 0 },
            tls13: false,
            client_finished: true,
            matchers: vec![(
                inner,
                Matcher::new(Script::new(inner, Credssp::Other, false)),
            )],
            misfits: 0,
            renegotiations: 0,
            records: 0,
        }
    }

    /// An encrypted PDU under Standard RDP Security: its plaintext would be `plaintext` bytes long as a
    /// frame without the security header (the TLS records' measure); `fast_path` for fast-path PDUs.
    pub fn sealed(&mut self, from: Side, at: Millis, plaintext: usize, fast_path: bool) {
        let rec = Observed {
            from,
            at,
            plaintext: Span::exact(u32::try_from(plaintext).unwrap_or(u32::MAX)),
            alert: false,
            fast_path,
        };
        for (_, m) in &mut self.matchers {
            m.push(rec);
        }
        self.records = self.records.saturating_add(1);
    }

    /// A PDU the dissector read in the clear, for the readings to go through.
    pub fn known(&mut self, from: Side, at: Millis, step: Step) {
        for (_, m) in &mut self.matchers {
            m.push_known(from, at, step);
        }
    }

    /// Encrypted records read after the handshake.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// What the records say so far.
    pub fn conclude(&self) -> Inference {
        let records = self.records;
        let basis = Basis {
            records,
            exact: self.overhead.exact(),
            misfits: self.misfits,
            renegotiations: self.renegotiations,
            standard_security: matches!(self.matchers.first(), Some((Inner::Standard { .. }, _))),
        };
        if records == 0 {
            return Inference {
                basis,
                outcome: Outcome::Nothing,
            };
        }
        let settled: Vec<std::borrow::Cow<'_, Matcher>> =
            self.matchers.iter().map(|(_, m)| m.settled()).collect();
        let explaining: Vec<&Matcher> = settled
            .iter()
            .map(|m| m.as_ref())
            .filter(|m| m.unexplained.is_none())
            .collect();
        if explaining.is_empty() {
            // The record that stopped the last matcher to stop.
            let worst = settled
                .iter()
                .filter_map(|m| m.unexplained)
                .max_by_key(|(n, _)| *n);
            if let Some((at, rec)) = worst {
                return Inference {
                    basis,
                    outcome: Outcome::Unexplained {
                        record: at,
                        from: rec.from,
                        plaintext: rec.plaintext,
                        at_ms: rec.at,
                    },
                };
            }
        }
        let cheapest = explaining
            .iter()
            .flat_map(|m| m.hypotheses().iter().map(|h| h.cost))
            .min()
            .unwrap_or(0);
        let mut readings: Vec<Reading> = Vec::new();
        for (m, h) in explaining
            .iter()
            .flat_map(|m| m.hypotheses().iter().map(move |h| (*m, h)))
            .filter(|(_, h)| h.cost == cheapest)
        {
            for r in reading(m, h) {
                if !readings
                    .iter()
                    .any(|k| k.phase == r.phase && k.server_end == r.server_end)
                {
                    readings.push(r);
                }
            }
        }
        // A record the size of a Set Error Info right before one the size of an Ultimatum is read as the pair
        // [2.2.5.1.1] describes, not as session data that happens to have that size.
        let pair = |r: &Reading| r.server_end == ServerEnd::SetErrorInfo { ultimatum: true };
        let paired: Vec<PhaseName> = readings
            .iter()
            .filter(|r| pair(r))
            .map(|r| r.phase)
            .collect();
        readings.retain(|r| {
            pair(r) || !(paired.contains(&r.phase) && r.server_end == ServerEnd::Ultimatum)
        });
        readings.sort_by_key(|r| (r.phase, r.server_end));
        Inference {
            basis,
            outcome: Outcome::Explained { readings },
        }
    }
}

/// How the server's part ended, as far as the sizes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerEnd {
    /// Nothing that ends a connection: the server was in the middle of the sequence.
    None,
    /// A record the size of a TSRequest with only an errorCode ([MS-CSSP] 2.2.1).
    CredsspError,
    /// A record the size of a Set Error Info PDU ([2.2.5.1]), with or without an Ultimatum after it.
    SetErrorInfo { ultimatum: bool },
    /// A record the size of an MCS Disconnect Provider Ultimatum ([2.2.2.3]) and no Set Error Info.
    Ultimatum,
    /// A TLS alert and nothing RDP before it.
    Alert,
}

/// One reading of the records.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// The phase the connection was in when the records end.
    pub phase: PhaseName,
    pub server_end: ServerEnd,
    /// Whether the client sent an Ultimatum of its own.
    pub client_ultimatum: bool,
    /// The PDUs this reading names, oldest first (at most [`MAX_STEPS_SHOWN`]).
    pub steps: Vec<InferredPdu>,
    /// The steps beyond those shown.
    #[serde(skip_serializing_if = "is_zero")]
    pub more: usize,
}

/// A PDU a reading names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferredPdu {
    pub at_ms: Millis,
    pub from: Side,
    pub step: Step,
    /// The record's number among the encrypted records after the handshake (from 1).
    pub record: u32,
    pub plaintext: Span,
    /// The PDU continues in the next record.
    pub split: bool,
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The readings of hypothesis `h`: one, or two where the last PDU means one thing or another.
fn reading(m: &Matcher, h: &Hypothesis) -> Vec<Reading> {
    let script = m.script();
    let all = h.steps();
    let (client, client_may) = next_phase(&script.client, &h.client, h, m, Side::Client);
    let (server, server_may) = next_phase(&script.server, &h.server, h, m, Side::Server);
    let mut phase = match (client_may, server_may) {
        // The client waits for the server: the connection is in the phase of the server's answer.
        (false, true) => server,
        // The client is to speak: until it sends a PDU of the next phase, the connection is in the phase of
        // the last PDU either side sent.
        (true, false) => all
            .iter()
            .filter(|t| !t.step.is_ending() && !t.step.is_extra())
            .map(|t| t.step.phase())
            .max()
            .unwrap_or(client),
        _ => client.min(server),
    };
    let last_server = all
        .iter()
        .rev()
        .find(|t| t.from == Side::Server && !t.step.is_ending())
        .map(|t| (t.step, t.plaintext));
    // The client sent a PDU of `step`'s phase or a later one (its endings aside).
    let client_went_on = |step: Step| {
        all.iter().any(|t| {
            t.from == Side::Client && !t.step.is_ending() && t.step.phase() >= step.phase()
        })
    };
    let mut also = None;
    match last_server {
        // [2.2.10.2] the result, and the client never went on to MCS: the server refused.
        Some((Step::EarlyUserAuth, _)) if !client_went_on(Step::ConnectInitial) => {
            phase = PhaseName::EarlyUserAuth;
        }
        // [2.2.1.12.1.3] a Licensing Error Message is as long with STATUS_VALID_CLIENT as with an error
        // that ends the connection (ERR_NO_LICENSE_SERVER, ERR_INVALID_CLIENT with ST_TOTAL_ABORT): when
        // nothing follows, it is either.
        Some((Step::LicenseFinal, size))
            if size.lo <= sizes::sizes().license_error
                && sizes::sizes().license_error <= size.hi
                && !client_went_on(Step::ConfirmActive)
                && phase == PhaseName::Capabilities =>
        {
            also = Some(PhaseName::Licensing);
        }
        _ => {}
    }
    let server_end = match h.server.ended {
        None => ServerEnd::None,
        Some(Step::TsRequestError) => ServerEnd::CredsspError,
        Some(Step::Alert) => {
            let steps = h.steps();
            let sei = steps
                .iter()
                .any(|t| t.from == Side::Server && t.step == Step::SetErrorInfo);
            let dpu = steps
                .iter()
                .any(|t| t.from == Side::Server && t.step == Step::Ultimatum);
            let credssp = steps
                .iter()
                .any(|t| t.from == Side::Server && t.step == Step::TsRequestError);
            match (sei, dpu, credssp) {
                (true, u, _) => ServerEnd::SetErrorInfo { ultimatum: u },
                (false, true, _) => ServerEnd::Ultimatum,
                (false, false, true) => ServerEnd::CredsspError,
                _ => ServerEnd::Alert,
            }
        }
        Some(Step::SetErrorInfo) => ServerEnd::SetErrorInfo { ultimatum: false },
        Some(Step::Ultimatum) => {
            let sei = h
                .steps()
                .iter()
                .any(|t| t.from == Side::Server && t.step == Step::SetErrorInfo);
            if sei {
                ServerEnd::SetErrorInfo { ultimatum: true }
            } else {
                ServerEnd::Ultimatum
            }
        }
        Some(_) => ServerEnd::None,
    };
    let client_ultimatum = all
        .iter()
        .any(|t| t.from == Side::Client && t.step == Step::Ultimatum);
    let more = all.len().saturating_sub(MAX_STEPS_SHOWN);
    let steps = all
        .iter()
        .take(MAX_STEPS_SHOWN)
        .map(|t| InferredPdu {
            at_ms: t.at,
            from: t.from,
            step: t.step,
            record: t.record,
            plaintext: t.plaintext,
            split: t.split,
        })
        .collect();
    let first = Reading {
        phase,
        server_end,
        client_ultimatum,
        steps,
        more,
    };
    match also {
        Some(p) => vec![
            Reading {
                phase: p,
                ..first.clone()
            },
            first,
        ],
        None => vec![first],
    }
}

/// What the reading rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Basis {
    /// Encrypted records read after the TLS handshake.
    pub records: u32,
    /// Whether the suite shows plaintext lengths exactly (AEAD, stream) or to within a block (CBC).
    pub exact: bool,
    /// Records no plaintext length fits.
    pub misfits: u32,
    /// Encrypted handshake records after the handshake.
    pub renegotiations: u32,
    /// The records are PDUs under Standard RDP Security ([5.3]), framed in the clear, not TLS records.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standard_security: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct Inference {
    pub basis: Basis,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// No encrypted record after the handshake.
    Nothing,
    /// A record no reading explains (a protocol that is not RDP, padding, a capture that starts later):
    /// nothing is inferred.
    Unexplained {
        record: u32,
        from: Side,
        plaintext: Span,
        at_ms: Millis,
    },
    /// The readings that remain, the cheapest ones (fewest optional PDUs and split records).
    Explained { readings: Vec<Reading> },
}

impl Inference {
    /// The phases the readings end in, without repeats, earliest first.
    ///
    /// A reading that stops at a phase boundary right after a PDU of the client, which could have gone on to
    /// the next phase by itself (its Confirm Active, then its Synchronize), ends in the next phase or at the
    /// end of the client's: both are named, as a decrypted trace puts the end in the phase of the last PDU.
    pub fn phases(&self) -> Vec<PhaseName> {
        let mut out: Vec<PhaseName> = match &self.outcome {
            Outcome::Explained { readings } => readings
                .iter()
                .flat_map(|r| {
                    let boundary = r
                        .steps
                        .last()
                        .filter(|_| r.more == 0 && r.server_end == ServerEnd::None)
                        .filter(|s| s.from == Side::Client && !s.step.is_ending())
                        .map(|s| s.step.phase())
                        .filter(|p| *p < r.phase);
                    std::iter::once(r.phase).chain(boundary)
                })
                .collect(),
            _ => Vec::new(),
        };
        out.sort();
        out.dedup();
        out
    }
}
