//! The code tables checked against the specification text in `../shared/spec` and against themselves.
//!
//! A row whose section names one of the Microsoft documents there must have its constant name and its
//! value on one line (one table row) of that section. The other way round, every constant a section
//! lists must be in its table.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rdptrace::codes::{self, CodeEntry, Table};

/// The documents `../shared/spec` holds, as sections name them.
const DOCS: [&str; 4] = ["MS-RDPBCGR", "MS-RDPELE", "MS-CSSP", "MS-ERREF"];

/// The spec directory, or `None` when it is absent and the test may skip (CI unset).
fn spec_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spec");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing and CI is set",
        dir.display()
    );
    println!("skipped: {} is absent", dir.display());
    None
}

/// The specification documents, loaded once per test.
struct Specs {
    dir: PathBuf,
    docs: HashMap<String, String>,
}

impl Specs {
    fn new(dir: PathBuf) -> Self {
        Specs {
            dir,
            docs: HashMap::new(),
        }
    }

    /// The lines of a section: from its heading to the next heading of any level.
    fn section(&mut self, doc: &str, number: &str) -> Result<Vec<String>, String> {
        if !self.docs.contains_key(doc) {
            let path = self.dir.join(format!("{doc}.md"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            self.docs.insert(doc.to_owned(), text);
        }
        let text = self.docs.get(doc).map(String::as_str).unwrap_or_default();
        let mut lines = text.lines();
        let prefix = format!("{number} ");
        lines
            .by_ref()
            .find(|l| heading(l).is_some_and(|h| h.starts_with(&prefix)))
            .ok_or_else(|| format!("{doc} has no section {number}"))?;
        Ok(lines
            .take_while(|l| heading(l).is_none())
            .map(str::to_owned)
            .collect())
    }
}

/// The title of a markdown heading line (`### 2.3.1 NTSTATUS Values`), not of `#define` lines.
fn heading(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches('#');
    (rest.len() < line.len())
        .then_some(rest)
        .and_then(|r| r.strip_prefix(' '))
}

/// The document and section number of a row whose section is a Microsoft document in `../shared`.
fn ms_section(row: &CodeEntry) -> Option<(&'static str, &'static str)> {
    let (doc, number) = row.section.split_once(' ')?;
    DOCS.contains(&doc).then_some((doc, number))
}

/// The identifier-like words of a line: `| ERRINFO_NONE 0x00000000 |` gives `ERRINFO_NONE`, `0x00000000`.
fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn hex8(code: u32) -> String {
    format!("0x{code:08x}")
}

/// Whether one line of `lines` holds both `name` (as a whole word) and `code` in eight-digit hex.
fn row_in(lines: &[String], name: &str, code: u32) -> bool {
    let value = hex8(code);
    lines.iter().any(|line| {
        let w = words(line);
        w.iter().any(|x| x == name) && w.iter().any(|x| x.eq_ignore_ascii_case(&value))
    })
}

#[test]
fn every_spec_row_matches_its_section() {
    let Some(dir) = spec_dir() else { return };
    let mut specs = Specs::new(dir);
    let mut checked = 0;
    let mut problems = Vec::new();
    for table in Table::ALL {
        for row in table.rows() {
            let Some((doc, number)) = ms_section(row) else {
                continue;
            };
            match specs.section(doc, number) {
                Err(e) => problems.push(format!("{table:?} {}: {e}", row.name)),
                Ok(lines) if !row_in(&lines, row.name, row.code) => problems.push(format!(
                    "{table:?}: {} {} is not one row of {doc} {number}",
                    row.name,
                    hex8(row.code)
                )),
                Ok(_) => checked += 1,
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The tables are meant to be full: a shrinking count means rows were lost.
    assert!(
        checked > 200,
        "only {checked} rows checked against the spec"
    );
}

/// The (name, value) pairs of a section's tables whose name passes `keep`.
fn listed(lines: &[String], keep: impl Fn(&str) -> bool) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| l.starts_with('|')) {
        let w = words(line);
        let value = w.iter().find_map(|x| {
            let digits = x.strip_prefix("0x").or_else(|| x.strip_prefix("0X"))?;
            if digits.len() != 8 {
                return None;
            }
            u32::from_str_radix(digits, 16).ok()
        });
        let name = w.iter().find(|x| {
            x.contains('_')
                && x.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && keep(x)
        });
        if let (Some(name), Some(value)) = (name, value) {
            out.push((name.clone(), value));
        }
    }
    out
}

/// A section of a document, the table that must list its constants, and which constants those are.
type SectionTable = (&'static str, &'static str, Table, fn(&str) -> bool);

#[test]
fn every_constant_of_a_section_is_in_its_table() {
    let Some(dir) = spec_dir() else { return };
    let mut specs = Specs::new(dir);
    let sections: &[SectionTable] = &[
        ("MS-RDPBCGR", "2.2.5.1.1", Table::ErrorInfo, |n| {
            n.starts_with("ERRINFO_")
        }),
        ("MS-RDPBCGR", "2.2.1.2.2", Table::NegFailure, |n| {
            !n.starts_with("TYPE_")
        }),
        ("MS-RDPBCGR", "2.2.1.12.1.3", Table::LicenseError, |n| {
            n.starts_with("ERR_") || n.starts_with("STATUS_")
        }),
        (
            "MS-RDPBCGR",
            "2.2.1.12.1.3",
            Table::LicenseTransition,
            |n| n.starts_with("ST_"),
        ),
        ("MS-RDPBCGR", "2.2.1.1.1", Table::SecurityProtocol, |n| {
            n.starts_with("PROTOCOL_")
        }),
        ("MS-RDPBCGR", "2.2.10.2", Table::EarlyAuthResult, |n| {
            n.starts_with("AUTHZ_")
        }),
        ("MS-RDPBCGR", "2.2.1.4.3", Table::EncryptionMethod, |n| {
            n.starts_with("ENCRYPTION_METHOD_")
        }),
        ("MS-RDPBCGR", "2.2.1.4.3", Table::EncryptionLevel, |n| {
            n.starts_with("ENCRYPTION_LEVEL_")
        }),
    ];
    let mut problems = Vec::new();
    for (doc, number, table, keep) in sections {
        let lines = match specs.section(doc, number) {
            Ok(lines) => lines,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let constants = listed(&lines, keep);
        if constants.is_empty() {
            problems.push(format!("found no constants in {doc} {number}"));
        }
        for (name, value) in constants {
            match codes::lookup_name(*table, &name) {
                Some(row) if row.code == value => {}
                Some(row) => problems.push(format!(
                    "{table:?}: {name} is {} in the table, {} in {doc} {number}",
                    hex8(row.code),
                    hex8(value)
                )),
                None => problems.push(format!(
                    "{table:?} lacks {name} {} of {doc} {number}",
                    hex8(value)
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A phrase that starts a sentence ("The server...") rather than lowercase text; a leading acronym
/// ("DNS name lookup failure", "GDI+ error PDU too short") is fine.
fn capitalized(meaning: &str) -> bool {
    let first = meaning.split(' ').next().unwrap_or_default();
    let mut chars = first.chars();
    let starts_upper = chars.next().is_some_and(char::is_uppercase);
    starts_upper && chars.all(|c| !c.is_alphabetic() || c.is_lowercase())
}

#[test]
fn rows_are_well_formed() {
    let mut problems = Vec::new();
    for table in Table::ALL {
        let mut codes_seen = HashSet::new();
        let mut names_seen = HashSet::new();
        assert!(!table.rows().is_empty(), "{table:?} is empty");
        for row in table.rows() {
            if !codes_seen.insert(row.code) {
                problems.push(format!("{table:?}: code 0x{:x} twice", row.code));
            }
            if !names_seen.insert(row.name) {
                problems.push(format!("{table:?}: name {} twice", row.name));
            }
            if row.name.trim().is_empty() {
                problems.push(format!("{table:?}: 0x{:x} has no name", row.code));
            }
            if row.meaning.trim().is_empty() {
                problems.push(format!("{table:?}: {} has no meaning", row.name));
            }
            if capitalized(row.meaning) {
                problems.push(format!(
                    "{table:?}: {} meaning is capitalized: {}",
                    row.name, row.meaning
                ));
            }
            if row.meaning.ends_with('.') || row.meaning.ends_with(' ') {
                problems.push(format!(
                    "{table:?}: {} meaning ends with punctuation or space",
                    row.name
                ));
            }
            if row.section.trim().is_empty() {
                problems.push(format!("{table:?}: {} cites no section", row.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_capitalization_check_can_fail() {
    assert!(capitalized("The server denied the connection"));
    assert!(!capitalized("server denied the connection"));
    assert!(!capitalized("DNS name lookup failure"));
    assert!(!capitalized("GDI+ error PDU too short"));
}

#[test]
fn tls_alerts_are_the_registered_numbers() {
    // rustls keeps the IANA registry of alert descriptions; every row must be one of them.
    for row in Table::TlsAlert.rows() {
        let code = u8::try_from(row.code).expect("alert descriptions are one byte");
        let alert = rustls::AlertDescription::from(code);
        assert!(
            !matches!(alert, rustls::AlertDescription::Unknown(_)),
            "{} ({}) is not a registered TLS alert",
            row.name,
            row.code
        );
        let registered = format!("{alert:?}").to_lowercase();
        let ours = row.name.trim_end_matches("_RESERVED").replace('_', "");
        // rustls spells two names its own way (UnknownCA, UnrecognisedName).
        assert!(
            registered == ours || (registered == "unrecognisedname" && ours == "unrecognizedname"),
            "{} ({}) is {alert:?} in the registry",
            row.name,
            row.code
        );
    }
}

#[test]
fn the_meanings_the_mstsc_lines_rely_on() {
    assert_eq!(codes::meaning(Table::DiscReason, 0x904), "socket closed");
    assert_eq!(
        codes::meaning(Table::ExtendedReason, 0x7),
        "server denied the connection"
    );
    assert_eq!(
        codes::meaning(Table::ErrorInfo, 0x7),
        "server denied the connection"
    );
    assert_eq!(
        codes::name(Table::ErrorInfo, 0x7),
        "ERRINFO_SERVER_DENIED_CONNECTION"
    );
    assert_eq!(
        codes::name(Table::ExtendedReason, 0x7),
        "exDiscReasonServerDeniedConnection"
    );
}

#[test]
fn extended_reasons_below_the_protocol_range_are_error_info_values() {
    // The ExtendedDisconnectReasonCode values up to 0x10B are the errorInfo values of [2.2.5.1.1] with
    // the same number; the two tables must agree on what they mean.
    let pairs = [
        (0x1, "ERRINFO_RPC_INITIATED_DISCONNECT"),
        (0x3, "ERRINFO_IDLE_TIMEOUT"),
        (0x5, "ERRINFO_DISCONNECTED_BY_OTHERCONNECTION"),
        (0x7, "ERRINFO_SERVER_DENIED_CONNECTION"),
        (0x9, "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES"),
        (0xC, "ERRINFO_LOGOFF_BY_USER"),
        (0x101, "ERRINFO_LICENSE_NO_LICENSE_SERVER"),
        (0x10A, "ERRINFO_LICENSE_NO_REMOTE_CONNECTIONS"),
    ];
    for (code, errinfo) in pairs {
        assert!(codes::lookup(Table::ExtendedReason, code).is_some());
        assert_eq!(codes::name(Table::ErrorInfo, code), errinfo);
    }
}

#[test]
fn collisions_name_every_table_a_number_is_in() {
    let tables: Vec<Table> = codes::collisions(0x7).into_iter().map(|(t, _)| t).collect();
    for t in [Table::ErrorInfo, Table::ExtendedReason, Table::LicenseError] {
        assert!(tables.contains(&t), "0x7 collisions lack {t:?}: {tables:?}");
    }
    let names: Vec<&str> = codes::collisions(0x7).iter().map(|(_, r)| r.name).collect();
    assert!(names.contains(&"STATUS_VALID_CLIENT"), "{names:?}");
    assert!(
        codes::collisions(0xC000_006D)
            .iter()
            .all(|(t, _)| *t == Table::NtStatus)
    );
    assert!(codes::collisions(0xDEAD_BEEF).is_empty());
}

#[test]
fn lookups_by_name_and_flags() {
    assert_eq!(
        codes::lookup_name(Table::ErrorInfo, "errinfo_server_denied_connection").map(|r| r.code),
        Some(7)
    );
    assert!(codes::lookup_name(Table::ErrorInfo, "ERRINFO_NO_SUCH_THING").is_none());
    assert_eq!(codes::protocol_names(0), "PROTOCOL_RDP");
    assert_eq!(codes::protocol_names(0x3), "PROTOCOL_SSL|PROTOCOL_HYBRID");
    assert_eq!(
        codes::protocol_names(0x10b),
        "PROTOCOL_SSL|PROTOCOL_HYBRID|PROTOCOL_HYBRID_EX|0x100"
    );
    assert_eq!(
        codes::flag_names(Table::EncryptionMethod, 0x1b),
        "ENCRYPTION_METHOD_40BIT|ENCRYPTION_METHOD_128BIT|ENCRYPTION_METHOD_56BIT|ENCRYPTION_METHOD_FIPS"
    );
    assert_eq!(
        codes::flag_names(Table::EncryptionMethod, 0),
        "ENCRYPTION_METHOD_NONE"
    );
    assert_eq!(
        codes::Display(Table::NtStatus, 0xC000_006E).to_string(),
        "0xc000006e STATUS_ACCOUNT_RESTRICTION"
    );
    assert_eq!(
        codes::name(Table::ErrorInfo, 0x1234),
        "unknown (0x00001234)"
    );
}
