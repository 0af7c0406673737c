//! Code tables: every number a peer or a client can put on a failure, with its name, its meaning and the
//! specification section that defines it. Data, not match arms.
//!
//! A code that rdptrace's own code names (a hint keyed by it, a scenario that sends it) is a constant in its
//! table's file (`neg_failure::HYBRID_REQUIRED_BY_SERVER`), and the table's row uses that constant: the
//! number is written once.

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
    /// [MS-RDPBCGR 2.2.10.2] Early User Authorization Result authorizationResult.
    EarlyAuthResult,
    /// [MS-RDPBCGR 2.2.1.4.3] encryptionMethod (flags in the client's encryptionMethods).
    EncryptionMethod,
    /// [MS-RDPBCGR 2.2.1.4.3] encryptionLevel.
    EncryptionLevel,
    /// [MS-TSGU 2.2.6] the HRESULT of an RD Gateway's answer.
    Gateway,
    /// [RFC 4120 7.5.9] error-code of a KRB-ERROR.
    KerberosError,
    /// [RFC 3961 8] Kerberos encryption types.
    KerberosEtype,
}

impl Table {
    /// Every table, in the order [`collisions`] reports them.
    pub const ALL: [Table; 16] = [
        Table::ErrorInfo,
        Table::ExtendedReason,
        Table::DiscReason,
        Table::NegFailure,
        Table::NtStatus,
        Table::LicenseError,
        Table::LicenseTransition,
        Table::SecurityProtocol,
        Table::TlsAlert,
        Table::DpuReason,
        Table::EarlyAuthResult,
        Table::EncryptionMethod,
        Table::EncryptionLevel,
        Table::Gateway,
        Table::KerberosError,
        Table::KerberosEtype,
    ];

    /// Whether a number of this table is listed among the collisions of a number: the Kerberos tables are
    /// not, their small integers are never what an RDP peer puts in an RDP field.
    pub fn collides(self) -> bool {
        !matches!(self, Table::KerberosError | Table::KerberosEtype)
    }

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
            Table::EarlyAuthResult => early_user_auth::ROWS,
            Table::EncryptionMethod => encryption::METHOD_ROWS,
            Table::EncryptionLevel => encryption::LEVEL_ROWS,
            Table::Gateway => gateway::ROWS,
            Table::KerberosError => kerberos::ERROR_ROWS,
            Table::KerberosEtype => kerberos::ETYPE_ROWS,
        }
    }

    /// What the numbers of this table are, for text: `errorInfo value`.
    pub fn label(self) -> &'static str {
        match self {
            Table::ErrorInfo => "errorInfo value",
            Table::DiscReason => "mstsc disconnect reason",
            Table::ExtendedReason => "mstsc extended disconnect reason",
            Table::NegFailure => "RDP_NEG_FAILURE failureCode",
            Table::NtStatus => "NTSTATUS value",
            Table::LicenseError => "licensing dwErrorCode",
            Table::LicenseTransition => "licensing dwStateTransition",
            Table::SecurityProtocol => "security protocol flag",
            Table::TlsAlert => "TLS alert description",
            Table::DpuReason => "Disconnect Provider Ultimatum reason",
            Table::EarlyAuthResult => "Early User Authorization Result",
            Table::EncryptionMethod => "encryption method",
            Table::EncryptionLevel => "encryption level",
            Table::Gateway => "RD Gateway HRESULT",
            Table::KerberosError => "Kerberos error code",
            Table::KerberosEtype => "Kerberos encryption type",
        }
    }
}

/// Looks a code up.
pub fn lookup(table: Table, code: u32) -> Option<&'static CodeEntry> {
    table.rows().iter().find(|row| row.code == code)
}

/// Looks a constant name up (ASCII case-insensitive): `ERRINFO_SERVER_DENIED_CONNECTION`.
pub fn lookup_name(table: Table, name: &str) -> Option<&'static CodeEntry> {
    table
        .rows()
        .iter()
        .find(|row| row.name.eq_ignore_ascii_case(name))
}

/// Every table in which `code` has a row, with that row. More than one entry means the number alone is
/// ambiguous: 0x7 is ERRINFO_SERVER_DENIED_CONNECTION, exDiscReasonServerDeniedConnection and the
/// licensing STATUS_VALID_CLIENT.
pub fn collisions(code: u32) -> Vec<(Table, &'static CodeEntry)> {
    Table::ALL
        .into_iter()
        .filter(|table| table.collides())
        .filter_map(|table| lookup(table, code).map(|row| (table, row)))
        .collect()
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
    flag_names(Table::SecurityProtocol, value)
}

/// The names of the flags of a flag table set in `value`, joined with `|`; the row whose code is zero
/// names a zero value; bits no row names are shown in hex.
pub fn flag_names(table: Table, value: u32) -> String {
    let rows = table.rows();
    if value == 0 {
        return lookup(table, 0).map_or_else(|| "0x0".to_owned(), |row| row.name.to_owned());
    }
    let mut names: Vec<String> = rows
        .iter()
        .filter(|row| row.code != 0 && value & row.code == row.code)
        .map(|row| row.name.to_owned())
        .collect();
    let known = rows.iter().fold(0, |acc, row| acc | row.code);
    if value & !known != 0 {
        names.push(format!("0x{:x}", value & !known));
    }
    names.join("|")
}

pub mod disc_reason;
pub mod dpu_reason;
pub mod early_user_auth;
pub mod encryption;
pub mod error_info;
pub mod gateway;
pub mod kerberos;
pub mod licensing;
pub mod neg_failure;
pub mod ntstatus;
pub mod security_protocol;
pub mod tls_alert;
