//! The text report's summary: the sessions grouped by outcome, so that a capture of a million connection
//! attempts reads in a few lines.
//!
//! A group is the sessions that ended alike: connection attempts that carried no data by how they ended
//! (never answered, refused, unreachable, connected and left), the others by their verdict (reached the
//! active state, or failed in a phase for a cause). A group of a few sessions lists them one per line as
//! they always were (`#1   client -> server  start  phase  cause`); a larger one is one line: how many,
//! from how many sources, to which server, the first and the last. Memory is bounded whatever the number
//! of sessions: a few lines per group, and the distinct sources up to [`MAX_SOURCES`] per group.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::session::AttemptKind;
use crate::trace::PhaseName;
use crate::verdict::Cause;

/// A group of at most this many sessions is listed one line per session.
pub const LIST: usize = 10;
/// Distinct client addresses counted per group; past it the count is a lower bound.
pub const MAX_SOURCES: usize = 1 << 21;
/// Distinct servers named per group.
const MAX_SERVERS: usize = 16;

/// What sessions are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A connection attempt that carried no data.
    Attempt(AttemptKind),
    /// A session that carried data (or at least a close), by its verdict.
    Session {
        ok: bool,
        phase: PhaseName,
        cause: Cause,
    },
}

/// When a session started.
#[derive(Debug, Clone)]
pub enum Started {
    /// RFC 3339, as the trace has it.
    Text(Option<String>),
    /// Since the Unix epoch (written out only if the summary shows it).
    Time(Duration),
}

impl Started {
    fn text(&self) -> String {
        match self {
            Started::Text(t) => t.clone(),
            Started::Time(d) => super::session::started_at(*d),
        }
        .unwrap_or_else(|| "?".to_owned())
    }
}

/// One session, as the summary sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub index: usize,
    pub client: Option<SocketAddr>,
    pub server: Option<SocketAddr>,
    pub started: Started,
}

/// Distinct client addresses, kept sorted and deduplicated now and then.
#[derive(Debug, Default)]
struct Sources {
    v4: Vec<u32>,
    v6: Vec<u128>,
    /// Lengths after the last deduplication.
    compact: usize,
    /// Some were not counted (the bound was reached).
    more: bool,
}

impl Sources {
    fn add(&mut self, ip: IpAddr) {
        if self.more {
            return;
        }
        match ip {
            IpAddr::V4(v4) => self.v4.push(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.push(u128::from(v6)),
        }
        let len = self.v4.len() + self.v6.len();
        if len >= 2 * self.compact.max(1024) {
            self.dedup();
            if self.v4.len() + self.v6.len() >= MAX_SOURCES {
                self.more = true;
            }
        }
    }

    fn dedup(&mut self) {
        self.v4.sort_unstable();
        self.v4.dedup();
        self.v6.sort_unstable();
        self.v6.dedup();
        self.compact = self.v4.len() + self.v6.len();
    }

    fn count(&mut self) -> (usize, bool) {
        self.dedup();
        (self.compact, self.more)
    }
}

/// Sessions that ended alike.
#[derive(Debug)]
struct Group {
    outcome: Outcome,
    count: u64,
    first: Member,
    last: Member,
    /// The first [`LIST`] members' summary lines.
    lines: Vec<(usize, String)>,
    servers: Vec<SocketAddr>,
    more_servers: bool,
    sources: Sources,
    /// Timelines of the group printed.
    shown: usize,
}

/// The groups of a replay, in the order their first session came.
#[derive(Debug, Default)]
pub struct Summary {
    groups: Vec<Group>,
    by_outcome: HashMap<Outcome, usize>,
}

impl Summary {
    /// Adds a session; `line` makes its summary line, asked for only while its group is listed. Returns
    /// its group.
    pub fn add(
        &mut self,
        outcome: Outcome,
        member: Member,
        line: impl FnOnce() -> String,
    ) -> usize {
        let i = match self.by_outcome.get(&outcome) {
            Some(&i) => i,
            None => {
                self.groups.push(Group {
                    outcome,
                    count: 0,
                    first: member.clone(),
                    last: member.clone(),
                    lines: Vec::new(),
                    servers: Vec::new(),
                    more_servers: false,
                    sources: Sources::default(),
                    shown: 0,
                });
                let i = self.groups.len() - 1;
                self.by_outcome.insert(outcome, i);
                i
            }
        };
        let Some(g) = self.groups.get_mut(i) else {
            return i;
        };
        g.count += 1;
        if g.lines.len() < LIST {
            g.lines.push((member.index, line()));
        }
        if let Some(c) = member.client {
            g.sources.add(c.ip());
        }
        if let Some(s) = member.server
            && !g.servers.contains(&s)
        {
            if g.servers.len() < MAX_SERVERS {
                g.servers.push(s);
            } else {
                g.more_servers = true;
            }
        }
        g.last = member;
        i
    }

    /// Timelines of group `g` printed so far.
    pub fn shown(&self, g: usize) -> usize {
        self.groups.get(g).map_or(0, |g| g.shown)
    }

    /// One more timeline of group `g` printed.
    pub fn count_shown(&mut self, g: usize) {
        if let Some(g) = self.groups.get_mut(g) {
            g.shown += 1;
        }
    }

    /// The summary's lines, in the order of the sessions: the sessions of small groups one per line, a large
    /// group in one line where its first session is.
    pub fn lines(&mut self) -> Vec<String> {
        let mut out: Vec<(usize, String)> = Vec::new();
        for g in &mut self.groups {
            if g.count as usize <= LIST {
                out.append(&mut g.lines);
            } else {
                out.push((g.first.index, group_line(g)));
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, l)| l).collect()
    }
}

/// One line for a large group.
fn group_line(g: &mut Group) -> String {
    let (sources, more) = g.sources.count();
    let mut s = String::new();
    let (noun, what) = match g.outcome {
        Outcome::Attempt(kind) => (
            "connection attempt",
            format!(
                ", {}",
                match kind {
                    AttemptKind::Unanswered => {
                        "none answered while rdptrace followed them (a scan or a flood)"
                    }
                    AttemptKind::Refused => "refused (the server answered with a reset)",
                    AttemptKind::Unreachable => "unreachable (an ICMP error answered)",
                    AttemptKind::NoData => "connected and carried no data",
                }
            ),
        ),
        Outcome::Session {
            ok: true, cause, ..
        } => (
            "session",
            format!(" reached the active state ({})", cause.as_str()),
        ),
        Outcome::Session {
            ok: false,
            phase,
            cause,
        } => (
            "session",
            format!(" failed in {}: {}", phase.as_str(), cause.as_str()),
        ),
    };
    let _ = write!(
        s,
        "{} {noun}{} from {}{} source{} to {}{what}",
        thousands(g.count),
        plural(g.count),
        if more { "at least " } else { "" },
        thousands(sources as u64),
        plural(sources as u64),
        servers(g),
    );
    let _ = write!(
        s,
        ", first at {} (#{}), last at {} (#{})",
        g.first.started.text(),
        g.first.index,
        g.last.started.text(),
        g.last.index
    );
    s
}

fn servers(g: &Group) -> String {
    match (g.servers.as_slice(), g.more_servers) {
        ([one], false) => one.to_string(),
        ([], _) => "?".to_owned(),
        (many, false) => format!("{} servers", many.len()),
        (_, true) => format!("more than {MAX_SERVERS} servers"),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(index: usize, client: &str) -> Member {
        Member {
            index,
            client: client.parse().ok(),
            server: "10.0.0.1:3389".parse().ok(),
            started: Started::Text(Some(format!("t{index}"))),
        }
    }

    #[test]
    fn numbers_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999_998), "999,998");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn small_groups_are_listed_large_ones_summed_up() {
        let mut s = Summary::default();
        let flood = Outcome::Attempt(AttemptKind::Unanswered);
        let failed = Outcome::Session {
            ok: false,
            phase: PhaseName::Credssp,
            cause: Cause::CredsspError,
        };
        s.add(failed, member(1, "10.1.0.1:5000"), || "#1 line".to_owned());
        for i in 2..=5000 {
            let client = format!("11.0.{}.{}:1024", i / 256, i % 256);
            s.add(flood, member(i, &client), || format!("#{i} line"));
        }
        // The same source twice.
        s.add(flood, member(5001, "11.0.0.2:2000"), String::new);
        let lines = s.lines();
        assert_eq!(
            lines,
            vec![
                "#1 line".to_owned(),
                "5,000 connection attempts from 4,999 sources to 10.0.0.1:3389, none answered while rdptrace followed them (a scan or a flood), first at t2 (#2), last at t5001 (#5001)".to_owned(),
            ]
        );
    }
}
