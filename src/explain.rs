//! `rdptrace explain`: an mstsc pair, or one code, explained offline from the tables in [`crate::codes`]
//! and the translation rules in [`crate::mstsc`].
//!
//! The work is done by pure functions that return the text ([`explain_pair`], [`explain_one`]); [`run`]
//! only parses and prints.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::codes::{self, CodeEntry, Table};
use crate::command::CliError;
use crate::mstsc;
use crate::verdict::{Basis, Cause};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The mstsc "Error code" (discReason), then the "Extended error code": `0x904 0x7` or `2308 7`.
    #[arg(value_name = "CODE")]
    pub codes: Vec<String>,
    /// Look up an errorInfo value of the Set Error Info PDU ([MS-RDPBCGR] 2.2.5.1.1).
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub errinfo: Option<String>,
    /// Look up an RDP_NEG_FAILURE failureCode ([MS-RDPBCGR] 2.2.1.2.2).
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub neg_failure: Option<String>,
    /// Look up an NTSTATUS value, as in a TSRequest errorCode ([MS-ERREF] 2.3.1).
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub ntstatus: Option<String>,
    /// Look up a licensing error code ([MS-RDPBCGR] 2.2.1.12.1.3).
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub license: Option<String>,
    /// Look up an mstsc disconnect reason (the "Error code").
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub disc_reason: Option<String>,
    /// Look up an mstsc extended disconnect reason (the "Extended error code").
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub extended: Option<String>,
    /// Look up a TLS alert description.
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub tls_alert: Option<String>,
    /// Look up a Kerberos error code of a KRB-ERROR ([RFC 4120] 7.5.9): `7` or `KDC_ERR_S_PRINCIPAL_UNKNOWN`.
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    pub krb: Option<String>,
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// An mstsc pair (or only its "Error code").
    Pair { disc: u32, ext: Option<u32> },
    /// One code of one table.
    One { table: Table, code: u32 },
}

/// Why a request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The arguments do not make a request (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The request is well formed but names no documented code (exit 1).
    #[error("{0}")]
    Unknown(String),
}

impl From<ExplainError> for CliError {
    fn from(e: ExplainError) -> Self {
        match e {
            ExplainError::Usage(_) => CliError::usage(e),
            ExplainError::Unknown(_) => CliError::failure(e),
        }
    }
}

impl ExplainArgs {
    fn lookups(&self) -> Vec<(Table, &str)> {
        [
            (Table::ErrorInfo, &self.errinfo),
            (Table::NegFailure, &self.neg_failure),
            (Table::NtStatus, &self.ntstatus),
            (Table::LicenseError, &self.license),
            (Table::DiscReason, &self.disc_reason),
            (Table::ExtendedReason, &self.extended),
            (Table::TlsAlert, &self.tls_alert),
            (Table::KerberosError, &self.krb),
        ]
        .into_iter()
        .filter_map(|(table, value)| value.as_deref().map(|v| (table, v)))
        .collect()
    }
}

/// Turns the arguments into a request.
pub fn request(args: &ExplainArgs) -> Result<Request, ExplainError> {
    let lookups = args.lookups();
    match (args.codes.as_slice(), lookups.as_slice()) {
        ([], []) => Err(ExplainError::Usage(
            "give an mstsc pair (explain 0x904 0x7) or one lookup (--errinfo 0x7)".to_owned(),
        )),
        ([], [(table, value)]) => Ok(Request::One {
            table: *table,
            code: resolve(*table, value)?,
        }),
        ([], _) => Err(ExplainError::Usage("give one lookup at a time".to_owned())),
        ([disc], []) => Ok(Request::Pair {
            disc: resolve(Table::DiscReason, disc)?,
            ext: None,
        }),
        ([disc, ext], []) => Ok(Request::Pair {
            disc: resolve(Table::DiscReason, disc)?,
            ext: Some(resolve(Table::ExtendedReason, ext)?),
        }),
        ([_, _, ..], []) => Err(ExplainError::Usage(
            "give at most two codes: the error code and the extended error code".to_owned(),
        )),
        (_, _) => Err(ExplainError::Usage(
            "give either an mstsc pair or a lookup, not both".to_owned(),
        )),
    }
}

/// A code as typed: `0x904`, `2308`, a negative decimal as tools print NTSTATUS (`-1073741714`), or,
/// for one table, a constant name (`ERRINFO_SERVER_DENIED_CONNECTION`).
pub fn resolve(table: Table, text: &str) -> Result<u32, ExplainError> {
    if let Some(code) = parse_number(text)? {
        return Ok(code);
    }
    codes::lookup_name(table, text)
        .map(|row| row.code)
        .ok_or_else(|| {
            ExplainError::Unknown(format!("{text} is not a documented {}", table.label()))
        })
}

/// `Ok(None)` when `text` is not written as a number (it may be a name).
fn parse_number(text: &str) -> Result<Option<u32>, ExplainError> {
    let t = text.trim();
    let bad = || {
        ExplainError::Usage(format!(
            "invalid code {text:?}: expected hex (0x904), decimal (2308) or a constant name"
        ))
    };
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let digits = hex.replace('_', "");
        return u32::from_str_radix(&digits, 16)
            .map(Some)
            .map_err(|_| bad());
    }
    if let Some(negative) = t.strip_prefix('-') {
        if !negative.chars().all(|c| c.is_ascii_digit()) || negative.is_empty() {
            return Err(bad());
        }
        // A 32-bit code printed as a signed integer.
        return t
            .parse::<i32>()
            .map(|v| Some(u32::from_ne_bytes(v.to_ne_bytes())))
            .map_err(|_| bad());
    }
    if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return t.parse::<u32>().map(Some).map_err(|_| bad());
    }
    let is_name = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if is_name { Ok(None) } else { Err(bad()) }
}

/// A code the way its table is read: hex with eight digits for protocol values, mstsc's short hex with the
/// decimal mstsc documentation gives, decimal for TLS alerts and T.125 reasons.
pub fn format_code(table: Table, code: u32) -> String {
    match table {
        Table::DiscReason | Table::ExtendedReason => format!("0x{code:X} ({code})"),
        Table::TlsAlert | Table::DpuReason | Table::KerberosError | Table::KerberosEtype => {
            format!("{code}")
        }
        _ => format!("0x{code:08X}"),
    }
}

fn row_line(table: Table, row: &CodeEntry) -> String {
    format!(
        "{} {} {}: {} [{}]",
        table.label(),
        format_code(table, row.code),
        row.name,
        row.meaning,
        row.section
    )
}

/// The rows of other tables with the same number, under `heading`, one line each.
fn collisions_text(out: &mut String, heading: &str, code: u32, skip: &[Table]) {
    let others: Vec<_> = codes::collisions(code)
        .into_iter()
        .filter(|(t, _)| !skip.contains(t))
        .collect();
    if others.is_empty() {
        return;
    }
    let _ = writeln!(out, "{heading}");
    for (table, row) in others {
        let _ = writeln!(out, "  {}", row_line(table, row));
    }
}

/// One code of one table: its name, meaning, section and the other tables with the same number; `None`
/// when the table does not have it.
pub fn explain_one(table: Table, code: u32) -> Option<String> {
    let Some(row) = codes::lookup(table, code) else {
        return (table == Table::ExtendedReason)
            .then(|| protocol_range(code))
            .flatten();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} {}",
        table.label(),
        format_code(table, code),
        row.name
    );
    let _ = writeln!(out, "  meaning: {}", row.meaning);
    let _ = writeln!(out, "  defined: {}", row.section);
    if table == Table::KerberosError {
        kerberos_notes(&mut out, code);
    }
    if table == Table::ExtendedReason
        && let Some(info) = codes::lookup(Table::ErrorInfo, code).filter(|_| code != 0)
    {
        let _ = writeln!(
            out,
            "  the server's errorInfo with this number: {} ({})",
            info.name, info.meaning
        );
    }
    collisions_text(&mut out, "The same number in other tables:", code, &[table]);
    Some(out)
}

/// For an RDP logon: what the Kerberos error means and what the client shows for it.
fn kerberos_notes(out: &mut String, code: u32) {
    if let Some(hint) = codes::kerberos::rdp_hint(code) {
        let _ = writeln!(out, "  for RDP: {hint}");
    }
    match mstsc::kerberos(code, None) {
        Some(m) => {
            let _ = writeln!(out, "  mstsc would show: {}", mstsc::mstsc_line(&m));
            let _ = writeln!(out, "    basis: {}: {}", basis_word(m.basis), m.why);
        }
        None => {
            let _ = writeln!(
                out,
                "  mstsc would show: no documented disconnect code for this failure"
            );
        }
    }
}

/// An extended code in exDiscReasonProtocolRangeStart..=exDiscReasonProtocolRangeEnd: the server's
/// errorInfo of the same number ([MS-RDPBCGR] 2.2.5.1.1), when that is a documented one.
fn protocol_range(code: u32) -> Option<String> {
    let start = codes::lookup_name(Table::ExtendedReason, "exDiscReasonProtocolRangeStart")?.code;
    let end = codes::lookup_name(Table::ExtendedReason, "exDiscReasonProtocolRangeEnd")?.code;
    if !(start..=end).contains(&code) {
        return None;
    }
    let info = codes::lookup(Table::ErrorInfo, code)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} (protocol range)",
        Table::ExtendedReason.label(),
        format_code(Table::ExtendedReason, code)
    );
    let _ = writeln!(
        out,
        "  in this range the extended code is the server's errorInfo: {} ({}) [{}]",
        info.name, info.meaning, info.section
    );
    collisions_text(
        &mut out,
        "The same number in other tables:",
        code,
        &[Table::ExtendedReason, Table::ErrorInfo],
    );
    Some(out)
}

/// The message for a code a table does not have: `0x00001234 is not a documented errorInfo value`.
pub fn unknown(table: Table, code: u32) -> String {
    format!(
        "{} is not a documented {}",
        format_code(table, code),
        table.label()
    )
}

fn basis_word(basis: Basis) -> &'static str {
    match basis {
        Basis::Specified => "specified",
        Basis::Inferred => "inferred",
        Basis::Reported => "reported",
    }
}

/// An mstsc pair: what each code means, every way the translation rules produce the pair (both, for the
/// ambiguous 0x904 / 0x7), how to tell them apart, and what else the numbers mean.
pub fn explain_pair(disc: u32, ext: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mstsc: Error code 0x{disc:X} ({}), Extended error code 0x{ext:X} ({})",
        codes::meaning(Table::DiscReason, disc),
        mstsc::extended_meaning(ext)
    );
    let _ = writeln!(out);
    match codes::lookup(Table::DiscReason, disc) {
        Some(row) => {
            let _ = writeln!(out, "Error code: {}", row_line(Table::DiscReason, row));
        }
        None => {
            let _ = writeln!(out, "Error code: {}", unknown(Table::DiscReason, disc));
        }
    }
    let error_info = codes::lookup(Table::ErrorInfo, ext).filter(|_| ext != 0);
    match codes::lookup(Table::ExtendedReason, ext) {
        Some(row) => {
            let _ = writeln!(
                out,
                "Extended error code: {}",
                row_line(Table::ExtendedReason, row)
            );
        }
        None if error_info.is_some() => {
            let _ = writeln!(
                out,
                "Extended error code: 0x{ext:X} is in the protocol range, where the extended code is the server's errorInfo"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Extended error code: {}",
                unknown(Table::ExtendedReason, ext)
            );
        }
    }
    if let Some(info) = error_info {
        let _ = writeln!(
            out,
            "  as the server's errorInfo: {}",
            row_line(Table::ErrorInfo, info)
        );
    }

    let paths = mstsc::paths(disc, ext);
    let with_error_info = paths.iter().any(|p| p.from_error_info);
    let _ = writeln!(out);
    match paths.len() {
        0 => {
            let _ = writeln!(
                out,
                "rdptrace has no rule that gives this pair; the meanings above are all it can say."
            );
        }
        1 => {
            let _ = writeln!(out, "How this pair comes about:");
        }
        n if with_error_info => {
            let _ = writeln!(
                out,
                "This pair is ambiguous: {n} different paths produce it."
            );
        }
        n => {
            let _ = writeln!(out, "{n} different paths produce this pair:");
        }
    }
    for (i, path) in paths.iter().enumerate() {
        let causes = path
            .causes
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "  ({}) {}", i + 1, path_text(path, ext, error_info));
        let _ = writeln!(out, "      basis: {}; {}", basis_word(path.basis), path.why);
        let _ = writeln!(out, "      rdptrace verdicts: {causes}");
    }
    if paths.len() > 1 && with_error_info {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "How to tell them apart: whether a Set Error Info PDU was on the wire. `rdptrace probe <host>` walks the connection and shows it; `rdptrace replay <capture>` finds it in a capture of the failing connection (TLS needs the key log or the server key). A Set Error Info with this value is path (1); a close with none is the other path, and the phase it closed in says why."
        );
    } else if paths.len() > 1 {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "How to tell them apart: `rdptrace probe <host>` (or `rdptrace replay <capture>`) names the cause in its verdict."
        );
    }

    // Zero means "nothing" in every table; listing its other meanings says nothing.
    let mut other = String::new();
    if disc != 0 {
        collisions_text(
            &mut other,
            &format!("Error code 0x{disc:X} in other tables:"),
            disc,
            &[Table::DiscReason],
        );
    }
    if ext != 0 {
        collisions_text(
            &mut other,
            &format!("Extended error code 0x{ext:X} in other tables:"),
            ext,
            &[Table::ExtendedReason, Table::ErrorInfo],
        );
    }
    if !other.is_empty() {
        let _ = writeln!(out);
        out.push_str(&other);
    }
    out.trim_end().to_owned() + "\n"
}

/// What happened on the wire for a verdict cause, in words.
fn cause_words(cause: Cause) -> &'static str {
    match cause {
        Cause::ResolveFailed => "the host name did not resolve",
        Cause::Refused => "the TCP connection was refused (RST to the SYN)",
        Cause::Unreachable => "the host was unreachable",
        Cause::TimedOut => "the TCP connect got no answer",
        Cause::NegotiationFailure => "the server answered with an RDP_NEG_FAILURE",
        Cause::CredsspError => "the server sent a TSRequest errorCode",
        Cause::LicenseError => "the server ended licensing with an error",
        Cause::DisconnectedByServer => "the server sent a Disconnect Provider Ultimatum",
        Cause::ClosedByServer => "the server closed the connection (FIN)",
        Cause::ResetByServer => "the connection was reset (RST)",
        Cause::CredsspRejected => "the server closed during network level authentication",
        Cause::KerberosError => "the KDC (or the server) answered Kerberos with a KRB-ERROR",
        Cause::KdcUnreachable => "the client could reach no KDC for its realm",
        Cause::Deactivated => "the server deactivated the session",
        _ => "the connection ended",
    }
}

fn path_text(path: &mstsc::Path, ext: u32, error_info: Option<&CodeEntry>) -> String {
    match (path.from_error_info, error_info) {
        (true, Some(info)) => format!(
            "the server sent a Set Error Info PDU with errorInfo 0x{ext:08X} ({}) and closed the connection; the client shows that errorInfo value as the extended code [MS-RDPBCGR 2.2.5.1.1]",
            info.name
        ),
        _ if path.basis == Basis::Reported && path.pending == Some(true) => format!(
            "the socket closed (FIN or RST) while the connection was still pending and no error info had arrived; the client fills in 0x{ext:X} itself"
        ),
        _ => {
            let words: Vec<&str> = path.causes.iter().map(|c| cause_words(*c)).collect();
            let when = match path.pending {
                Some(true) => " while the connection was pending, with no error info",
                Some(false) => " after the session was up, with no error info",
                None => "",
            };
            format!("{}{when}", words.join(", or "))
        }
    }
}

/// `rdptrace explain`: prints the answer; exit 0, 1 for a code no table documents, 2 for bad arguments.
pub fn run(args: ExplainArgs) -> Result<ExitCode, CliError> {
    let text = match request(&args)? {
        Request::One { table, code } => {
            explain_one(table, code).ok_or_else(|| ExplainError::Unknown(unknown(table, code)))?
        }
        Request::Pair { disc, ext: None } => explain_one(Table::DiscReason, disc)
            .ok_or_else(|| ExplainError::Unknown(unknown(Table::DiscReason, disc)))?,
        Request::Pair {
            disc,
            ext: Some(ext),
        } => {
            let known = codes::lookup(Table::DiscReason, disc).is_some()
                || codes::lookup(Table::ExtendedReason, ext).is_some()
                || codes::lookup(Table::ErrorInfo, ext).is_some();
            if !known {
                return Err(ExplainError::Unknown(format!(
                    "neither error code 0x{disc:X} nor extended error code 0x{ext:X} is documented"
                ))
                .into());
            }
            explain_pair(disc, ext)
        }
    };
    crate::report::stdout::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
