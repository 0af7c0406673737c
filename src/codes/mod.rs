//! Code tables: every number a peer or a client can put on a failure, with its name, its meaning and the
//! specification section that defines it. Data, not match arms.

use core::fmt;

/// One row of a code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeEntry {
    pub code: u32,
    /// The constant's name as the specification spells it.
    pub name: &'static str,
    /// A short lowercase phrase, as mstsc-style text uses it: "server denied the connection".
    pub meaning: &'static str,
    /// Where it is defined: "MS-RDPBCGR 2.2.5.1.1".
    pub section: &'static str,
}

/// The tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// [MS-RDPBCGR 2.2.5.1.1] errorInfo of the Set Error Info PDU.
    ErrorInfo,
    /// The mstsc disconnect reason (IMsTscAxEvents::OnDisconnected discReason).
    DiscReason,
    /// The mstsc extended disconnect reason (ExtendedDisconnectReasonCode).
    ExtendedReason,
    /// [MS-RDPBCGR 2.2.1.2.2] RDP_NEG_FAILURE failureCode.
    NegFailure,
    /// [MS-ERREF 2.3] NTSTATUS values servers put in TSRequest.errorCode.
    NtStatus,
    /// [MS-RDPBCGR 2.2.1.12.1.3] licensing dwErrorCode.
    LicenseError,
    /// [MS-RDPBCGR 2.2.1.12.1.3] licensing dwStateTransition.
    LicenseTransition,
    /// [MS-RDPBCGR 2.2.1.1.1] requestedProtocols / selectedProtocol flags.
    SecurityProtocol,
    /// [RFC 8446 6] TLS AlertDescription.
    TlsAlert,
    /// [T.125 7] Disconnect Provider Ultimatum reason.
    DpuReason,
}

impl Table {
    pub fn rows(self) -> &'static [CodeEntry] {
        match self {
            Table::ErrorInfo => error_info::ROWS,
            Table::DiscReason => disc_reason::ROWS,
            Table::ExtendedReason => disc_reason::EXTENDED_ROWS,
            Table::NegFailure => neg_failure::ROWS,
            Table::NtStatus => ntstatus::ROWS,
            Table::LicenseError => licensing::ERROR_ROWS,
            Table::LicenseTransition => licensing::TRANSITION_ROWS,
            Table::SecurityProtocol => security_protocol::ROWS,
            Table::TlsAlert => tls_alert::ROWS,
            Table::DpuReason => dpu_reason::ROWS,
        }
    }
}

/// Looks a code up.
pub fn lookup(table: Table, code: u32) -> Option<&'static CodeEntry> {
    table.rows().iter().find(|row| row.code == code)
}

/// `ERRINFO_SERVER_DENIED_CONNECTION`, or `unknown (0x0000abcd)` for a code the table lacks.
pub fn name(table: Table, code: u32) -> String {
    match lookup(table, code) {
        Some(row) => row.name.to_owned(),
        None => format!("unknown (0x{code:08x})"),
    }
}

/// `server denied the connection`, or `unknown code` for a code the table lacks.
pub fn meaning(table: Table, code: u32) -> &'static str {
    lookup(table, code).map_or("unknown code", |row| row.meaning)
}

/// A code with its name for display: `0x00000007 ERRINFO_SERVER_DENIED_CONNECTION`.
pub struct Display(pub Table, pub u32);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x} {}", self.1, name(self.0, self.1))
    }
}

/// The names of the flags set in a `requestedProtocols` / `selectedProtocol` value
/// (`PROTOCOL_RDP` for zero).
pub fn protocol_names(value: u32) -> String {
    if value == 0 {
        return "PROTOCOL_RDP".to_owned();
    }
    let mut names: Vec<String> = security_protocol::ROWS
        .iter()
        .filter(|row| row.code != 0 && value & row.code == row.code)
        .map(|row| row.name.to_owned())
        .collect();
    let known = security_protocol::ROWS
        .iter()
        .fold(0, |acc, row| acc | row.code);
    if value & !known != 0 {
        names.push(format!("0x{:x}", value & !known));
    }
    names.join("|")
}

pub mod disc_reason;
pub mod dpu_reason;
pub mod error_info;
pub mod licensing;
pub mod neg_failure;
pub mod ntstatus;
pub mod security_protocol;
pub mod tls_alert;
