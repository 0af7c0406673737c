//! The expectation language: what a host must do, written `active`, `tls-min=1.2`, `phase=licensing`,
//! `tls.tls_version=TLS 1.3`, `closed=server-fin`. `rdptrace check --expect`, policy files, the `expect=`
//! of a targets file and the lab suite all read it.
//!
//! A list is comma-separated (`phase=licensing,errinfo=0x7`); a value cannot hold a comma (match a part
//! of it with `~`). Keys are case-insensitive and `_` stands for `-` (`tls_min` is `tls-min`); fact
//! names are written as the trace spells them.
//!
//! Most expectations are judged on the trace of one ordinary probe ([`crate::check::judge`]). Three need
//! connections of their own, made by the scan's primitives ([`crate::scan`]):
//!
//! | expectation                         | holds when                                                 | connections |
//! | ----------------------------------- | ---------------------------------------------------------- | ----------- |
//! | `active`, `ok=yes`                  | the connection reaches the active state                    | the probe   |
//! | `ok=no`                             | it does not                                                | the probe   |
//! | `phase=NAME`, `phase=none`          | the verdict's failed phase is NAME / no phase failed       | the probe   |
//! | `cause=CAUSE`                       | the verdict's cause (`negotiation_failure`, ...)           | the probe   |
//! | `detail=TEXT`, `detail~TEXT`        | the verdict's sentence is / contains TEXT                  | the probe   |
//! | `mstsc=0xDISC/0xEXT`, `mstsc=none`  | the pair mstsc would show                                  | the probe   |
//! | `errinfo=CODE`                      | [2.2.5.1.1] the server sends Set Error Info CODE           | the probe   |
//! | `neg-failure=CODE`                  | [2.2.1.2.2] the server answers RDP_NEG_FAILURE CODE        | the probe   |
//! | `ntstatus=CODE`                     | [MS-CSSP] 2.2.1 the server's TSRequest errorCode is CODE   | the probe   |
//! | `cert-days=N`                       | the certificate is valid N more days                       | the probe   |
//! | `cert-name`                         | the certificate names the target                           | the probe   |
//! | `PHASE=ok\|failed\|skipped\|not_reached` | that phase's status                                   | the probe   |
//! | `PHASE.FACT=V`, `PHASE.FACT~T`, `!PHASE.FACT` | a fact of the phase is V / contains T / is absent | the probe   |
//! | `closed=server-fin\|server-rst\|client\|none` | who ended the connection first, and how          | the probe   |
//! | `closed-after=PDU`, `closed-after~T`| the last PDU before that close                             | the probe   |
//! | `timed-out=phase\|total`            | the probe's own deadline ended a wait                      | the probe   |
//! | `waiting-for=T`, `waiting-for~T`    | what the probe waited for then                             | the probe   |
//! | `pdu=NAME`, `pdu~TEXT`              | some PDU of the trace, by name or by text in "NAME: SUMMARY" | the probe |
//! | `nla-required`                      | PROTOCOL_SSL alone is refused ([2.2.1.1.1])                | one X.224 exchange |
//! | `no-standard-security`              | PROTOCOL_RDP alone is refused ([5.3])                      | one X.224 exchange |
//! | `tls-min=V`                         | no TLS version below V is accepted, one at or above is     | one ClientHello per version |

use core::fmt;

use crate::codes::{self, Table};
use crate::trace::{CloseKind, PhaseName, PhaseStatus, Side};
use crate::verdict::Cause;

/// One thing a host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// The connection reaches the active state.
    Active,
    /// A request for PROTOCOL_SSL alone is refused: the server insists on CredSSP.
    NlaRequired,
    /// A request for PROTOCOL_RDP alone is refused: Standard RDP Security ([5.3]) is off.
    NoStandardSecurity,
    /// No TLS version below this one (0x0301 TLS 1.0 ... 0x0304 TLS 1.3) is accepted, and one at or above
    /// it is.
    TlsMin(u16),
    /// The server certificate is valid for at least this many more days.
    CertDays(u32),
    /// The server certificate names the target.
    CertName,
    /// The connection fails in this phase.
    Phase(PhaseName),
    /// `phase=none`: no phase failed.
    NoFailedPhase,
    /// [2.2.5.1.1] The server sends Set Error Info with this errorInfo.
    ErrInfo(u32),
    /// [2.2.1.2.2] The server answers with RDP_NEG_FAILURE and this failureCode.
    NegFailure(u32),
    /// [MS-CSSP] 2.2.1 The server's TSRequest carries this errorCode (an NTSTATUS).
    NtStatus(u32),
    /// `ok=yes|no`: whether the connection reaches the active state.
    Ok(bool),
    /// The verdict's cause.
    Cause(Cause),
    /// `PHASE=STATUS`: what became of a phase.
    Status(PhaseName, PhaseStatus),
    /// `PHASE.FACT=VALUE`, `PHASE.FACT~TEXT`, `!PHASE.FACT`: a fact the phase recorded.
    Fact(PhaseName, String, Match),
    /// `detail=TEXT`, `detail~TEXT`: the verdict's sentence.
    Detail(Match),
    /// Who ended the connection, and how.
    Closed(Closed),
    /// The last PDU before the connection was closed: by name, or by text in "NAME: SUMMARY".
    ClosedAfter(Match),
    /// The probe's own deadline ended a wait.
    TimedOut(DeadlineKind),
    /// What the probe waited for when its deadline expired.
    WaitingFor(Match),
    /// `mstsc=0xDISC/0xEXT`, `mstsc=none`: the pair mstsc would show.
    Mstsc(Option<(u32, u32)>),
    /// Some PDU of the trace, by name or by text in "NAME: SUMMARY".
    Pdu(Match),
}

/// How a text is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `=`: the whole text.
    Equals(String),
    /// `~`: a part of the text.
    Contains(String),
    /// `!`: no such value at all.
    Absent,
}

impl Match {
    /// Whether `value` (`None`: there is none) matches.
    pub fn test(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Match::Equals(want), Some(v)) => v == want,
            (Match::Contains(want), Some(v)) => v.contains(want.as_str()),
            (Match::Absent, None) => true,
            _ => false,
        }
    }

    /// `is "TEXT"`, `contains "TEXT"`, `is absent`.
    pub fn words(&self) -> String {
        match self {
            Match::Equals(v) => format!("is {v:?}"),
            Match::Contains(v) => format!("contains {v:?}"),
            Match::Absent => "is absent".to_owned(),
        }
    }
}

/// Who ended the connection first, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// `server-fin`, `server-rst`, `client-fin`, `client-rst`: a peer closed the TCP connection.
    By(Side, CloseKind),
    /// `client`: the server never closed; the probe ended the connection itself.
    Client,
    /// `none`: nobody closed (the connection never opened).
    None,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::By(Side::Server, CloseKind::Fin) => "server-fin",
            Closed::By(Side::Server, CloseKind::Rst) => "server-rst",
            Closed::By(Side::Client, CloseKind::Fin) => "client-fin",
            Closed::By(Side::Client, CloseKind::Rst) => "client-rst",
            Closed::Client => "client",
            Closed::None => "none",
        }
    }

    /// In words.
    pub fn words(self) -> &'static str {
        match self {
            Closed::By(Side::Server, CloseKind::Fin) => "the server closed the connection (FIN)",
            Closed::By(Side::Server, CloseKind::Rst) => "the server reset the connection (RST)",
            Closed::By(Side::Client, CloseKind::Fin) => "the client closed the connection (FIN)",
            Closed::By(Side::Client, CloseKind::Rst) => "the client reset the connection (RST)",
            Closed::Client => "the server never closed; the probe ended the connection",
            Closed::None => "nobody closed (the connection never opened)",
        }
    }
}

/// Which of the probe's deadlines expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineKind {
    /// `--phase-timeout`.
    Phase,
    /// `--timeout`.
    Total,
}

impl DeadlineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineKind::Phase => "phase",
            DeadlineKind::Total => "total",
        }
    }
}

/// Which connections an expectation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The ordinary probe's trace.
    Probe,
    /// One X.224 exchange with these requestedProtocols.
    Negotiation(u32),
    /// The TLS versions the server accepts.
    TlsVersions,
}

/// Every expectation, for error messages.
pub const KEYS: &str = "active, ok=yes|no, phase=NAME|none, cause=CAUSE, detail~TEXT, mstsc=0xDISC/0xEXT|none, errinfo=CODE, neg-failure=CODE, ntstatus=CODE, cert-days=N, cert-name, PHASE=STATUS, PHASE.FACT=VALUE, PHASE.FACT~TEXT, !PHASE.FACT, closed=WHO, closed-after=PDU, timed-out=phase|total, waiting-for~TEXT, pdu=NAME, pdu~TEXT, nla-required, no-standard-security, tls-min=V";

/// The keywords of the language, in canonical spelling.
const KEYWORDS: [&str; 19] = [
    "active",
    "nla-required",
    "no-standard-security",
    "tls-min",
    "cert-days",
    "cert-name",
    "phase",
    "errinfo",
    "neg-failure",
    "ntstatus",
    "ok",
    "cause",
    "detail",
    "closed",
    "closed-after",
    "timed-out",
    "waiting-for",
    "mstsc",
    "pdu",
];

/// A phase status as written: `ok`, `failed`, `skipped`, `not_reached`.
pub fn status_word(s: PhaseStatus) -> &'static str {
    match s {
        PhaseStatus::Ok => "ok",
        PhaseStatus::Failed => "failed",
        PhaseStatus::Skipped => "skipped",
        PhaseStatus::NotReached => "not_reached",
    }
}

fn parse_status(s: &str) -> Option<PhaseStatus> {
    match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "ok" => Some(PhaseStatus::Ok),
        "failed" => Some(PhaseStatus::Failed),
        "skipped" => Some(PhaseStatus::Skipped),
        "not_reached" => Some(PhaseStatus::NotReached),
        _ => None,
    }
}

fn parse_phase(s: &str) -> Result<PhaseName, String> {
    PhaseName::parse(s).ok_or_else(|| {
        let names: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown phase {s} (phases: {})", names.join(", "))
    })
}

/// The canonical spelling of an expectation's key (`tls_min` and `TLS-MIN` are `tls-min`,
/// `TLS.tls_version` is `tls.tls_version`), if it is one; the key of [`Expectation::key`].
pub fn normalize_key(key: &str) -> Option<String> {
    let key = key.trim();
    let k = key.to_ascii_lowercase().replace('_', "-");
    if let Some(known) = KEYWORDS.into_iter().find(|known| *known == k) {
        return Some(known.to_owned());
    }
    if let Some((p, fact)) = key.split_once('.') {
        let p = PhaseName::parse(p)?;
        let fact = fact.trim();
        return (!fact.is_empty()).then(|| format!("{p}.{fact}"));
    }
    PhaseName::parse(key).map(|p| p.as_str().to_owned())
}

impl Expectation {
    /// Parses one expectation: `key`, `key=value`, `key~text` or `!phase.fact`.
    pub fn parse(s: &str) -> Result<Expectation, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty expectation".to_owned());
        }
        if let Some(rest) = s.strip_prefix('!') {
            let (p, fact) = rest.split_once('.').ok_or_else(|| {
                format!("!{rest}: only a fact (PHASE.FACT) can be required absent")
            })?;
            let fact = fact.trim();
            if fact.is_empty() || fact.contains(['=', '~']) {
                return Err(format!("!{rest}: write !PHASE.FACT alone"));
            }
            return Ok(Expectation::Fact(
                parse_phase(p)?,
                fact.to_owned(),
                Match::Absent,
            ));
        }
        let (key, op, value) = match s.split_once(['=', '~']) {
            Some((k, v)) => (
                k.trim(),
                s.get(k.len()..).and_then(|r| r.chars().next()),
                Some(v.trim()),
            ),
            None => (s, None, None),
        };
        let contains = op == Some('~');
        let k = key.to_ascii_lowercase().replace('_', "-");
        let exact = || -> Result<(), String> {
            if contains {
                Err(format!("{k} takes =, not ~"))
            } else {
                Ok(())
            }
        };
        let need_value = |example: &str| -> Result<&str, String> {
            match value {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{k} needs a value: {k}={example}")),
            }
        };
        let text = |example: &str| -> Result<Match, String> {
            let v = need_value(example)?.to_owned();
            Ok(if contains {
                Match::Contains(v)
            } else {
                Match::Equals(v)
            })
        };
        let flag = |e: Expectation| -> Result<Expectation, String> {
            exact()?;
            match value.map(str::to_ascii_lowercase).as_deref() {
                None | Some("true") | Some("yes") => Ok(e),
                Some(v) => Err(format!("{k} takes no value (got {k}={v})")),
            }
        };
        match k.as_str() {
            "active" => match value.and_then(parse_status) {
                Some(status) if !contains => Ok(Expectation::Status(PhaseName::Active, status)),
                _ => match value.map(str::to_ascii_lowercase).as_deref() {
                    Some("no") | Some("false") => {
                        Err("active=no: write ok=no to expect a failure".to_owned())
                    }
                    _ => flag(Expectation::Active),
                },
            },
            "nla-required" => flag(Expectation::NlaRequired),
            "no-standard-security" => flag(Expectation::NoStandardSecurity),
            "cert-name" => flag(Expectation::CertName),
            "tls-min" => {
                exact()?;
                parse_tls_version(need_value("1.2")?).map(Expectation::TlsMin)
            }
            "cert-days" => {
                exact()?;
                let v = need_value("30")?;
                v.parse()
                    .map(Expectation::CertDays)
                    .map_err(|_| format!("cert-days must be a number of days: {v}"))
            }
            "phase" => {
                exact()?;
                let v = need_value("licensing")?;
                if v.eq_ignore_ascii_case("none") {
                    Ok(Expectation::NoFailedPhase)
                } else {
                    parse_phase(v).map(Expectation::Phase)
                }
            }
            "errinfo" => {
                exact()?;
                parse_code(Table::ErrorInfo, need_value("0x7")?).map(Expectation::ErrInfo)
            }
            "neg-failure" => {
                exact()?;
                parse_code(Table::NegFailure, need_value("HYBRID_REQUIRED_BY_SERVER")?)
                    .map(Expectation::NegFailure)
            }
            "ntstatus" => {
                exact()?;
                parse_code(Table::NtStatus, need_value("0xc000006d")?).map(Expectation::NtStatus)
            }
            "ok" => {
                exact()?;
                match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("yes") | Some("true") => Ok(Expectation::Ok(true)),
                    Some("no") | Some("false") => Ok(Expectation::Ok(false)),
                    Some(v) => Err(format!("ok={v}: yes or no")),
                }
            }
            "cause" => {
                exact()?;
                let v = need_value("negotiation_failure")?;
                Cause::parse(v).map(Expectation::Cause).ok_or_else(|| {
                    let all: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
                    format!("unknown cause {v} (causes: {})", all.join(", "))
                })
            }
            "detail" => text("TEXT").map(Expectation::Detail),
            "closed" => {
                exact()?;
                let v = need_value("server-fin")?;
                let closed = match v.to_ascii_lowercase().replace('_', "-").as_str() {
                    "server-fin" => Closed::By(Side::Server, CloseKind::Fin),
                    "server-rst" => Closed::By(Side::Server, CloseKind::Rst),
                    "client-fin" => Closed::By(Side::Client, CloseKind::Fin),
                    "client-rst" => Closed::By(Side::Client, CloseKind::Rst),
                    "client" => Closed::Client,
                    "none" => Closed::None,
                    _ => {
                        return Err(format!(
                            "closed={v}: server-fin, server-rst, client-fin, client-rst, client or none"
                        ));
                    }
                };
                Ok(Expectation::Closed(closed))
            }
            "closed-after" => {
                text("MCS Disconnect Provider Ultimatum").map(Expectation::ClosedAfter)
            }
            "timed-out" => {
                exact()?;
                match need_value("phase")?.to_ascii_lowercase().as_str() {
                    "phase" => Ok(Expectation::TimedOut(DeadlineKind::Phase)),
                    "total" => Ok(Expectation::TimedOut(DeadlineKind::Total)),
                    v => Err(format!("timed-out={v}: phase or total")),
                }
            }
            "waiting-for" => text("X.224 Connection Confirm").map(Expectation::WaitingFor),
            "mstsc" => {
                exact()?;
                let v = need_value("0x904/0x7")?;
                if v.eq_ignore_ascii_case("none") {
                    return Ok(Expectation::Mstsc(None));
                }
                let (d, e) = v
                    .split_once('/')
                    .ok_or_else(|| format!("mstsc={v}: 0xDISC/0xEXT or none"))?;
                let d = parse_code(Table::DiscReason, d)?;
                let e = parse_code(Table::ErrorInfo, e)?;
                Ok(Expectation::Mstsc(Some((d, e))))
            }
            "pdu" => text("MCS Disconnect Provider Ultimatum").map(Expectation::Pdu),
            _ => {
                if let Some((p, fact)) = key.split_once('.') {
                    let fact = fact.trim();
                    if fact.is_empty() {
                        return Err(format!("{key}: PHASE.FACT needs a fact name"));
                    }
                    let phase = parse_phase(p)?;
                    if op.is_none() {
                        return Err(format!("{key}: write {key}=VALUE, {key}~TEXT or !{key}"));
                    }
                    return Ok(Expectation::Fact(phase, fact.to_owned(), text("VALUE")?));
                }
                match PhaseName::parse(key) {
                    Some(phase) => {
                        exact()?;
                        let v = need_value("ok")?;
                        let status = parse_status(v).ok_or_else(|| {
                            format!("{key}={v}: ok, failed, skipped or not_reached")
                        })?;
                        Ok(Expectation::Status(phase, status))
                    }
                    None => Err(format!("unknown expectation {key} (known: {KEYS})")),
                }
            }
        }
    }

    /// Parses a comma-separated list: `phase=licensing,errinfo=0x7`.
    pub fn parse_list(s: &str) -> Result<Vec<Expectation>, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Expectation::parse)
            .collect()
    }

    /// What the expectation is about, as [`normalize_key`] spells it: `tls-min`, `credssp` (a phase's
    /// status), `tls.tls_version` (a fact). A policy section replaces the expectations of the same key.
    pub fn key(&self) -> String {
        match self {
            Expectation::Active => "active",
            Expectation::NlaRequired => "nla-required",
            Expectation::NoStandardSecurity => "no-standard-security",
            Expectation::TlsMin(_) => "tls-min",
            Expectation::CertDays(_) => "cert-days",
            Expectation::CertName => "cert-name",
            Expectation::Phase(_) | Expectation::NoFailedPhase => "phase",
            Expectation::ErrInfo(_) => "errinfo",
            Expectation::NegFailure(_) => "neg-failure",
            Expectation::NtStatus(_) => "ntstatus",
            Expectation::Ok(_) => "ok",
            Expectation::Cause(_) => "cause",
            Expectation::Status(p, _) => p.as_str(),
            Expectation::Fact(p, fact, _) => return format!("{p}.{fact}"),
            Expectation::Detail(_) => "detail",
            Expectation::Closed(_) => "closed",
            Expectation::ClosedAfter(_) => "closed-after",
            Expectation::TimedOut(_) => "timed-out",
            Expectation::WaitingFor(_) => "waiting-for",
            Expectation::Mstsc(_) => "mstsc",
            Expectation::Pdu(_) => "pdu",
        }
        .to_owned()
    }

    /// What the expectation needs to be judged.
    pub fn need(&self) -> Need {
        match self {
            Expectation::NlaRequired => Need::Negotiation(crate::dissect::x224::PROTOCOL_SSL),
            Expectation::NoStandardSecurity => {
                Need::Negotiation(crate::dissect::x224::PROTOCOL_RDP)
            }
            Expectation::TlsMin(_) => Need::TlsVersions,
            _ => Need::Probe,
        }
    }

    /// What it asks for, in words.
    pub fn expected(&self) -> String {
        match self {
            Expectation::Active | Expectation::Ok(true) => {
                "the connection reaches the active state".to_owned()
            }
            Expectation::Ok(false) => "the connection fails before the active state".to_owned(),
            Expectation::NlaRequired => {
                "a request for PROTOCOL_SSL alone is refused with HYBRID_REQUIRED_BY_SERVER"
                    .to_owned()
            }
            Expectation::NoStandardSecurity => {
                "a request for PROTOCOL_RDP alone (Standard RDP Security) is refused".to_owned()
            }
            Expectation::TlsMin(v) => format!(
                "every TLS version below {} refused, and one at or above it accepted",
                crate::dissect::tls::version_name(*v)
            ),
            Expectation::CertDays(n) => {
                format!("the certificate is valid for at least {n} more days")
            }
            Expectation::CertName => "the certificate names the target".to_owned(),
            Expectation::Phase(p) => format!("the connection fails in the {p} phase"),
            Expectation::NoFailedPhase => "no phase fails".to_owned(),
            Expectation::ErrInfo(c) => {
                format!("Set Error Info {}", codes::Display(Table::ErrorInfo, *c))
            }
            Expectation::NegFailure(c) => {
                format!("RDP_NEG_FAILURE {}", codes::Display(Table::NegFailure, *c))
            }
            Expectation::NtStatus(c) => {
                format!(
                    "TSRequest errorCode {}",
                    codes::Display(Table::NtStatus, *c)
                )
            }
            Expectation::Cause(c) => format!("the cause is {}", c.as_str()),
            Expectation::Status(p, s) => format!("the {p} phase is {}", status_word(*s)),
            Expectation::Fact(p, fact, m) => format!("the fact {p}.{fact} {}", m.words()),
            Expectation::Detail(m) => format!("the verdict's detail {}", m.words()),
            Expectation::Closed(c) => c.words().to_owned(),
            Expectation::ClosedAfter(m) => {
                format!("the last PDU before the close {}", m.words())
            }
            Expectation::TimedOut(k) => format!(
                "the probe's {} deadline expires",
                match k {
                    DeadlineKind::Phase => "phase (--phase-timeout)",
                    DeadlineKind::Total => "total (--timeout)",
                }
            ),
            Expectation::WaitingFor(m) => {
                format!(
                    "a deadline expires while the probe waits for what {}",
                    m.words()
                )
            }
            Expectation::Mstsc(Some((d, e))) => {
                format!("mstsc shows error code 0x{d:x}, extended error code 0x{e:x}")
            }
            Expectation::Mstsc(None) => "no mstsc error code pair".to_owned(),
            Expectation::Pdu(m) => format!("a PDU whose \"NAME: SUMMARY\" {}", pdu_words(m)),
        }
    }
}

/// For `pdu=` and `closed-after=`: `=` compares the PDU's name, `~` looks in "NAME: SUMMARY".
fn pdu_words(m: &Match) -> String {
    match m {
        Match::Equals(v) => format!("has the name {v:?}"),
        other => other.words(),
    }
}

fn write_match(f: &mut fmt::Formatter<'_>, key: &str, m: &Match) -> fmt::Result {
    match m {
        Match::Equals(v) => write!(f, "{key}={v}"),
        Match::Contains(v) => write!(f, "{key}~{v}"),
        Match::Absent => write!(f, "!{key}"),
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::TlsMin(v) => write!(f, "tls-min={}", tls_short(*v)),
            Expectation::CertDays(n) => write!(f, "cert-days={n}"),
            Expectation::Phase(p) => write!(f, "phase={p}"),
            Expectation::NoFailedPhase => f.write_str("phase=none"),
            Expectation::ErrInfo(c) => write!(f, "errinfo=0x{c:x}"),
            Expectation::NegFailure(c) => {
                write!(f, "neg-failure={}", codes::name(Table::NegFailure, *c))
            }
            Expectation::NtStatus(c) => write!(f, "ntstatus=0x{c:08x}"),
            Expectation::Ok(b) => write!(f, "ok={}", if *b { "yes" } else { "no" }),
            Expectation::Cause(c) => write!(f, "cause={}", c.as_str()),
            Expectation::Status(p, s) => write!(f, "{p}={}", status_word(*s)),
            Expectation::Fact(p, fact, m) => write_match(f, &format!("{p}.{fact}"), m),
            Expectation::Detail(m) => write_match(f, "detail", m),
            Expectation::Closed(c) => write!(f, "closed={}", c.as_str()),
            Expectation::ClosedAfter(m) => write_match(f, "closed-after", m),
            Expectation::TimedOut(k) => write!(f, "timed-out={}", k.as_str()),
            Expectation::WaitingFor(m) => write_match(f, "waiting-for", m),
            Expectation::Mstsc(Some((d, e))) => write!(f, "mstsc=0x{d:x}/0x{e:x}"),
            Expectation::Mstsc(None) => f.write_str("mstsc=none"),
            Expectation::Pdu(m) => write_match(f, "pdu", m),
            Expectation::Active
            | Expectation::NlaRequired
            | Expectation::NoStandardSecurity
            | Expectation::CertName => f.write_str(&self.key()),
        }
    }
}

/// `1.2` for 0x0303.
pub fn tls_short(v: u16) -> String {
    match v {
        0x0300 => "ssl3".to_owned(),
        0x0301..=0x0304 => format!("1.{}", v - 0x0301),
        other => format!("0x{other:04x}"),
    }
}

/// `1.2`, `TLS1.2`, `tlsv1.2`, `TLSv1.2` to 0x0303.
pub fn parse_tls_version(s: &str) -> Result<u16, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_start_matches("tls").trim_start_matches('v').trim();
    match t {
        "1.0" | "1" | "10" => Ok(0x0301),
        "1.1" | "11" => Ok(0x0302),
        "1.2" | "12" => Ok(0x0303),
        "1.3" | "13" => Ok(0x0304),
        _ => Err(format!("unknown TLS version {s} (1.0, 1.1, 1.2 or 1.3)")),
    }
}

/// A code by number (`0x7`, `7`) or by its constant name in `table`.
pub fn parse_code(table: Table, s: &str) -> Result<u32, String> {
    let s = s.trim();
    let number = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    };
    if let Some(n) = number {
        return Ok(n);
    }
    codes::lookup_name(table, s)
        .map(|row| row.code)
        .ok_or_else(|| format!("{s} is neither a number nor a {} name", table.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expectation {
        Expectation::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match Expectation::parse(s) {
            Ok(e) => panic!("{s} parsed as {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_every_key() {
        assert_eq!(p("active"), Expectation::Active);
        assert_eq!(p("active=yes"), Expectation::Active);
        assert_eq!(p("nla-required"), Expectation::NlaRequired);
        assert_eq!(p("no_standard_security"), Expectation::NoStandardSecurity);
        assert_eq!(p("cert-name"), Expectation::CertName);
        assert_eq!(p("tls-min=1.2"), Expectation::TlsMin(0x0303));
        assert_eq!(p("TLS_MIN=TLSv1.3"), Expectation::TlsMin(0x0304));
        assert_eq!(p("cert-days=30"), Expectation::CertDays(30));
        assert_eq!(
            p("phase=licensing"),
            Expectation::Phase(PhaseName::Licensing)
        );
        assert_eq!(p("phase=none"), Expectation::NoFailedPhase);
        assert_eq!(p("errinfo=0x7"), Expectation::ErrInfo(7));
        assert_eq!(
            p("errinfo=ERRINFO_SERVER_DENIED_CONNECTION"),
            Expectation::ErrInfo(7)
        );
        assert_eq!(
            p("neg-failure=hybrid_required_by_server"),
            Expectation::NegFailure(5)
        );
        assert_eq!(p("neg-failure=5"), Expectation::NegFailure(5));
        assert_eq!(
            p("ntstatus=STATUS_LOGON_FAILURE"),
            Expectation::NtStatus(0xc000_006d)
        );
        assert_eq!(p("ok"), Expectation::Ok(true));
        assert_eq!(p("ok=no"), Expectation::Ok(false));
        assert_eq!(
            p("cause=credssp_rejected"),
            Expectation::Cause(Cause::CredsspRejected)
        );
        assert_eq!(
            p("credssp=skipped"),
            Expectation::Status(PhaseName::Credssp, PhaseStatus::Skipped)
        );
        assert_eq!(
            p("active=ok"),
            Expectation::Status(PhaseName::Active, PhaseStatus::Ok)
        );
        assert_eq!(
            p("mcs_connect=not_reached"),
            Expectation::Status(PhaseName::McsConnect, PhaseStatus::NotReached)
        );
        assert_eq!(
            p("tls.tls_version=TLS 1.3"),
            Expectation::Fact(
                PhaseName::Tls,
                "tls_version".to_owned(),
                Match::Equals("TLS 1.3".to_owned())
            )
        );
        assert_eq!(
            p("tls.cert_subject~CN="),
            Expectation::Fact(
                PhaseName::Tls,
                "cert_subject".to_owned(),
                Match::Contains("CN=".to_owned())
            )
        );
        assert_eq!(
            p("!tls.tls_version"),
            Expectation::Fact(PhaseName::Tls, "tls_version".to_owned(), Match::Absent)
        );
        assert_eq!(
            p("detail~a=b"),
            Expectation::Detail(Match::Contains("a=b".to_owned()))
        );
        assert_eq!(
            p("closed=server-fin"),
            Expectation::Closed(Closed::By(Side::Server, CloseKind::Fin))
        );
        assert_eq!(p("closed=client"), Expectation::Closed(Closed::Client));
        assert_eq!(p("closed=none"), Expectation::Closed(Closed::None));
        assert_eq!(
            p("closed-after~NTLM AUTHENTICATE"),
            Expectation::ClosedAfter(Match::Contains("NTLM AUTHENTICATE".to_owned()))
        );
        assert_eq!(
            p("timed-out=phase"),
            Expectation::TimedOut(DeadlineKind::Phase)
        );
        assert_eq!(
            p("waiting-for=X.224 Connection Confirm"),
            Expectation::WaitingFor(Match::Equals("X.224 Connection Confirm".to_owned()))
        );
        assert_eq!(p("mstsc=0x904/0x7"), Expectation::Mstsc(Some((0x904, 7))));
        assert_eq!(p("mstsc=none"), Expectation::Mstsc(None));
        assert_eq!(
            p("pdu=MCS Disconnect Provider Ultimatum"),
            Expectation::Pdu(Match::Equals(
                "MCS Disconnect Provider Ultimatum".to_owned()
            ))
        );
        assert_eq!(
            Expectation::parse_list("phase=licensing,errinfo=0x7,").unwrap(),
            vec![
                Expectation::Phase(PhaseName::Licensing),
                Expectation::ErrInfo(7)
            ]
        );
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        assert!(err("fast").contains("unknown expectation fast"));
        assert!(err("phase=nowhere").contains("unknown phase"));
        assert!(err("tls-min").contains("needs a value"));
        assert!(err("active=maybe").contains("takes no value"));
        assert!(err("active=no").contains("ok=no"));
        assert!(err("errinfo=NOT_A_CODE").contains("neither a number"));
        assert!(err("cause=no_such_cause").contains("unknown cause"));
        assert!(err("ok=maybe").contains("yes or no"));
        assert!(err("phase~lic").contains("takes =, not ~"));
        assert!(err("closed=someone").contains("server-fin"));
        assert!(err("timed-out=soon").contains("phase or total"));
        assert!(err("mstsc=0x904").contains("0xDISC/0xEXT"));
        assert!(err("credssp=done").contains("ok, failed, skipped or not_reached"));
        assert!(err("tls.tls_version").contains("!tls.tls_version"));
        assert!(err("!tls").contains("PHASE.FACT"));
        assert!(err("nowhere.fact=1").contains("unknown phase nowhere"));
        assert!(err("detail~").contains("needs a value"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn labels_round_trip() {
        for s in [
            "active",
            "nla-required",
            "no-standard-security",
            "cert-name",
            "tls-min=1.2",
            "cert-days=30",
            "phase=licensing",
            "phase=none",
            "errinfo=0x7",
            "neg-failure=HYBRID_REQUIRED_BY_SERVER",
            "ntstatus=0xc000006d",
            "ok=yes",
            "ok=no",
            "cause=negotiation_failure",
            "credssp=skipped",
            "active=ok",
            "early_user_auth=not_reached",
            "tls.tls_version=TLS 1.3",
            "tls.cert_subject~CN=",
            "!tls.tls_version",
            "detail~does not",
            "detail=exactly this",
            "closed=server-rst",
            "closed=client",
            "closed-after=TLS ClientHello",
            "timed-out=total",
            "waiting-for~SYN-ACK",
            "mstsc=0x904/0x7",
            "mstsc=none",
            "pdu~NTLM",
        ] {
            let e = p(s);
            assert_eq!(e.to_string(), s);
            assert_eq!(p(&e.to_string()), e);
            assert_eq!(normalize_key(&e.key()).as_deref(), Some(e.key().as_str()));
            assert!(!e.expected().is_empty());
        }
    }

    #[test]
    fn keys_are_normalized() {
        assert_eq!(normalize_key("TLS_MIN").as_deref(), Some("tls-min"));
        assert_eq!(normalize_key("mcs-connect").as_deref(), Some("mcs_connect"));
        assert_eq!(
            normalize_key("TLS.tls_version").as_deref(),
            Some("tls.tls_version")
        );
        assert_eq!(normalize_key("colour"), None);
        assert_eq!(normalize_key("tls."), None);
    }

    #[test]
    fn needs() {
        assert_eq!(p("ok=no").need(), Need::Probe);
        assert_eq!(p("tls.tls_version=TLS 1.2").need(), Need::Probe);
        assert_eq!(p("tls-min=1.2").need(), Need::TlsVersions);
        assert!(matches!(p("nla-required").need(), Need::Negotiation(_)));
    }
}
