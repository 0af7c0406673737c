//! `rdptrace scan` beside nmap (rdp-enum-encryption, rdp-ntlm-info) and `sslscan --rdp`, on the same lab
//! hosts: where the three must agree (the answers to the same requests, TLS versions, cipher suites, the
//! encryption level and methods, NTLM names, the certificate), and that every difference is one that
//! lab/SCAN-COMPARISON.md documents with its wire evidence.
//!
//! The lab is found as in tests/lab.rs (tests/support/lab.rs); without it, or without nmap and sslscan,
//! the test skips, and with CI set it fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdptrace::pdu::Negotiation;
use support::lab::{lab, skip};
use support::*;

/// How long one run of a tool may take (nmap takes about 3 s per host, sslscan 1 s).
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// A difference between the tools that lab/SCAN-COMPARISON.md explains, section by section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Difference {
    /// nmap prints SUCCESS for any RDP_NEG_RSP, whatever protocol the server selected; its "CredSSP
    /// (NLA)" request is PROTOCOL_SSL|PROTOCOL_HYBRID. rdptrace accepts a protocol only when the server
    /// selects exactly it.
    NmapCountsAnyResponse,
    /// nmap's script throws on a TLS-only xrdp: its encryption probe gets a Disconnect Provider Ultimatum
    /// where it parses an MCS Connect Response.
    NmapFailsOnTlsOnlyXrdp,
    /// nmap prints no encryption level when the server's is ENCRYPTION_LEVEL_NONE.
    NmapSilentOnNoEncryption,
    /// nmap's rdp-ntlm-info and sslscan go on after RDP_NEG_FAILURE; FreeRDP's shadow server does TLS and
    /// NTLM all the same. rdptrace stops at the refusal.
    OthersGoOnAfterRefusal,
    /// sslscan's "preferred" suite is the first of its own offer that the server takes, and rdptrace's
    /// first suite the first of its offer: the servers follow the client's order.
    PreferredFollowsClientOrder,
}

use Difference::*;

/// A lab host and the differences documented for it.
struct Host {
    name: &'static str,
    var: &'static str,
    expected: &'static [Difference],
}

const HOSTS: &[Host] = &[
    Host {
        name: "xrdp-negotiate",
        var: "RDPTRACE_LAB_XRDP_NEGOTIATE",
        expected: &[NmapCountsAnyResponse, PreferredFollowsClientOrder],
    },
    Host {
        name: "xrdp-rdp-high",
        var: "RDPTRACE_LAB_XRDP_RDP_HIGH",
        expected: &[NmapCountsAnyResponse],
    },
    Host {
        name: "xrdp-rdp-none",
        var: "RDPTRACE_LAB_XRDP_RDP_NONE",
        expected: &[NmapCountsAnyResponse, NmapSilentOnNoEncryption],
    },
    Host {
        name: "xrdp-tls",
        var: "RDPTRACE_LAB_XRDP_TLS",
        expected: &[NmapFailsOnTlsOnlyXrdp, PreferredFollowsClientOrder],
    },
    Host {
        name: "xrdp-tls13",
        var: "RDPTRACE_LAB_XRDP_TLS13",
        expected: &[NmapFailsOnTlsOnlyXrdp],
    },
    Host {
        name: "shadow-nla",
        var: "RDPTRACE_LAB_SHADOW_NLA",
        expected: &[PreferredFollowsClientOrder],
    },
    Host {
        name: "shadow-rdp",
        var: "RDPTRACE_LAB_SHADOW_RDP",
        expected: &[NmapSilentOnNoEncryption, OthersGoOnAfterRefusal],
    },
    Host {
        name: "weston-tls",
        var: "RDPTRACE_LAB_WESTON_TLS",
        expected: &[
            NmapCountsAnyResponse,
            NmapSilentOnNoEncryption,
            PreferredFollowsClientOrder,
        ],
    },
];

/// [2.2.1.1.1] requestedProtocols values.
const PROTOCOL_SSL: u32 = 0x1;
const PROTOCOL_HYBRID: u32 = 0x2;
const PROTOCOL_HYBRID_EX: u32 = 0x8;

/// The lines of rdp-enum-encryption's "Security layer" and the requestedProtocols each one sends
/// (its PROTOCOLS table).
const NMAP_PROTOCOLS: [(&str, u32); 5] = [
    ("Native RDP", 0x0),
    ("SSL", PROTOCOL_SSL),
    ("CredSSP (NLA)", PROTOCOL_SSL | PROTOCOL_HYBRID),
    ("RDSTLS", 0x4),
    ("CredSSP with Early User Auth", PROTOCOL_HYBRID_EX),
];

/// What the server must select for nmap's SUCCESS to mean what its line says.
fn nmap_meaning(requested: u32) -> u32 {
    if requested == PROTOCOL_SSL | PROTOCOL_HYBRID {
        PROTOCOL_HYBRID
    } else {
        requested
    }
}

/// rdp-enum-encryption's cipher lines and their [2.2.1.3.2] encryptionMethods.
const NMAP_METHODS: [(&str, u64); 4] = [
    ("40-bit RC4", 0x1),
    ("56-bit RC4", 0x8),
    ("128-bit RC4", 0x2),
    ("FIPS 140-1", 0x10),
];

/// rdp-enum-encryption's level names and the [2.2.1.4.3] encryptionLevel names rdptrace writes.
const NMAP_LEVELS: [(&str, &str); 5] = [
    ("None", "ENCRYPTION_LEVEL_NONE"),
    ("Low", "ENCRYPTION_LEVEL_LOW"),
    ("Client Compatible", "ENCRYPTION_LEVEL_CLIENT_COMPATIBLE"),
    ("High", "ENCRYPTION_LEVEL_HIGH"),
    ("FIPS Compliant", "ENCRYPTION_LEVEL_FIPS"),
];

/// rdp-ntlm-info's keys and rdptrace's.
const NMAP_NTLM: [(&str, &str); 7] = [
    ("Target_Name", "target_name"),
    ("NetBIOS_Domain_Name", "netbios_domain"),
    ("NetBIOS_Computer_Name", "netbios_computer"),
    ("DNS_Domain_Name", "dns_domain"),
    ("DNS_Computer_Name", "dns_computer"),
    ("DNS_Tree_Name", "dns_tree"),
    ("Product_Version", "os_version"),
];

const TLS_VERSIONS: [&str; 4] = ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// Runs a program to its end within [`TOOL_LIMIT`]; its stdout, or why not. On timeout the child is
/// killed by its id.
fn run_bounded(program: &str, args: &[String]) -> Result<String, String> {
    let dir = TempDir::new("scan-compare");
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut guard = ChildGuard(child);
    let start = Instant::now();
    // INVARIANT: polls every 50 ms, ends at TOOL_LIMIT.
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < TOOL_LIMIT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => break None,
        }
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(_) => Ok(text),
        None => Err(format!(
            "{program} {} did not finish within {TOOL_LIMIT:?}",
            args.join(" ")
        )),
    }
}

// --- nmap ----------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Nmap {
    /// `ERROR: ...` of rdp-enum-encryption.
    error: Option<String>,
    /// The requestedProtocols of the "Security layer" lines that say SUCCESS.
    protocols: BTreeSet<u32>,
    /// "RDP Encryption level: High".
    level: Option<String>,
    /// The encryptionMethods of the cipher lines that say SUCCESS.
    methods: BTreeSet<u64>,
    /// rdp-ntlm-info.
    ntlm: BTreeMap<String, String>,
}

/// Reads nmap's normal output for one port.
fn parse_nmap(text: &str) -> Nmap {
    let mut out = Nmap::default();
    let mut script = "";
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('|') else {
            continue;
        };
        let item = rest.trim_start_matches('_').trim();
        if let Some(after) = item.strip_prefix("rdp-enum-encryption:") {
            script = "enum";
            let after = after.trim();
            if let Some(e) = after.strip_prefix("ERROR:") {
                out.error = Some(e.trim().to_owned());
            }
            continue;
        }
        if item.starts_with("rdp-ntlm-info:") {
            script = "ntlm";
            continue;
        }
        let Some((key, value)) = item.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match script {
            "enum" => {
                if key == "RDP Encryption level" {
                    out.level = Some(value.to_owned());
                } else if value == "SUCCESS" {
                    if let Some((_, v)) = NMAP_PROTOCOLS.iter().find(|(n, _)| *n == key) {
                        out.protocols.insert(*v);
                    }
                    if let Some((_, v)) = NMAP_METHODS.iter().find(|(n, _)| *n == key) {
                        out.methods.insert(*v);
                    }
                }
            }
            "ntlm" => {
                out.ntlm.insert(key.to_owned(), value.to_owned());
            }
            _ => {}
        }
    }
    out
}

// --- sslscan -------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Sslscan {
    /// `TLS 1.2`, ...
    enabled: BTreeSet<String>,
    /// The suites of each version, in sslscan's order.
    suites: BTreeMap<String, Vec<u16>>,
    preferred: BTreeMap<String, u16>,
    subject: Option<String>,
    key_bits: Option<u64>,
    /// RFC 3339.
    not_after: Option<String>,
}

fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = element.get(start..)?.find('"')?;
    element.get(start..start + len)
}

fn element_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = xml.get(start..)?.find(&format!("</{tag}>"))?;
    let text = xml.get(start..start + len)?;
    Some(
        text.strip_prefix("<![CDATA[")
            .and_then(|t| t.strip_suffix("]]>"))
            .unwrap_or(text),
    )
}

/// `Nov 18 08:46:47 2036 GMT` as `2036-11-18T08:46:47Z`.
fn openssl_date(s: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let words: Vec<&str> = s.split_whitespace().collect();
    let [month, day, clock, year, ..] = words.as_slice() else {
        return None;
    };
    let m = MONTHS.iter().position(|n| n == month)? + 1;
    let d: u32 = day.parse().ok()?;
    Some(format!("{year}-{m:02}-{d:02}T{clock}Z"))
}

/// Reads sslscan's XML (`--xml=-`).
fn parse_sslscan(text: &str) -> Sslscan {
    let mut out = Sslscan::default();
    let xml = text.find("<?xml").and_then(|i| text.get(i..)).unwrap_or("");
    for element in xml.split('<') {
        if element.starts_with("protocol ") {
            if attr(element, "type") == Some("tls")
                && attr(element, "enabled") == Some("1")
                && let Some(v) = attr(element, "version")
            {
                out.enabled.insert(format!("TLS {v}"));
            }
        } else if element.starts_with("cipher ") {
            let version = attr(element, "sslversion")
                .map(|v| v.replace("TLSv", "TLS "))
                .unwrap_or_default();
            let Some(id) = attr(element, "id")
                .and_then(|h| h.strip_prefix("0x"))
                .and_then(|h| u16::from_str_radix(h, 16).ok())
            else {
                continue;
            };
            if attr(element, "status") == Some("preferred") {
                out.preferred.insert(version.clone(), id);
            }
            out.suites.entry(version).or_default().push(id);
        } else if element.starts_with("pk ") {
            out.key_bits = attr(element, "bits").and_then(|b| b.parse().ok());
        }
    }
    out.subject = element_text(xml, "subject").map(str::to_owned);
    out.not_after = element_text(xml, "not-valid-after").and_then(openssl_date);
    out
}

// --- rdptrace ------------------------------------------------------------------------------------

fn suite_id(s: &serde_json::Value) -> Option<u16> {
    s["id"]
        .as_str()
        .and_then(|h| h.strip_prefix("0x"))
        .and_then(|h| u16::from_str_radix(h, 16).ok())
}

/// The scan's answer to one protocol requested alone.
fn scan_protocol(scan: &serde_json::Value, value: u32) -> Option<&serde_json::Value> {
    scan["protocols"]
        .as_array()?
        .iter()
        .find(|p| p["value"] == value)
}

fn refused(scan: &serde_json::Value, value: u32) -> bool {
    scan_protocol(scan, value).is_some_and(|p| p["raw"]["negotiation"]["kind"] == "failure")
}

/// The CN of an RFC 4514-like subject (`O=rdptrace-lab, CN=xrdp-tls`).
fn common_name(subject: &str) -> Option<&str> {
    subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
}

// --- the comparison ------------------------------------------------------------------------------

/// What one host shows: the documented differences found (with what was seen), and what must agree but
/// does not.
#[derive(Default)]
struct Findings {
    differences: BTreeMap<Difference, Vec<String>>,
    disagreements: Vec<String>,
}

impl Findings {
    fn difference(&mut self, d: Difference, seen: String) {
        self.differences.entry(d).or_default().push(seen);
    }
}

fn negotiation_text(n: Option<Negotiation>) -> String {
    match n {
        Some(n) => rdptrace::check::judge::negotiation_text(n),
        None => "no Connection Confirm".to_owned(),
    }
}

/// nmap's security layer: the same requests, made with rdptrace's own code, must get the answers nmap
/// counted; SUCCESS where the server selected something else is the documented difference.
fn compare_nmap_protocols(
    f: &mut Findings,
    nmap: &Nmap,
    scan: &serde_json::Value,
    answers: &[(u32, Option<Negotiation>)],
) {
    if let Some(error) = &nmap.error {
        // xrdp with security_layer=tls: PROTOCOL_RDP refused with SSL_REQUIRED_BY_SERVER.
        let tls_only = scan_protocol(scan, 0).is_some_and(|p| p["raw"]["negotiation"]["code"] == 1)
            && scan["tls"]["tested"] == true;
        if tls_only {
            f.difference(
                NmapFailsOnTlsOnlyXrdp,
                format!("rdp-enum-encryption: ERROR: {error}"),
            );
        } else {
            f.disagreements
                .push(format!("rdp-enum-encryption failed: {error}"));
        }
        return;
    }
    for (name, requested) in NMAP_PROTOCOLS {
        let answer = answers
            .iter()
            .find(|(v, _)| *v == requested)
            .and_then(|(_, n)| *n);
        let selected = match answer {
            Some(Negotiation::Response {
                selected_protocol, ..
            }) => Some(selected_protocol),
            _ => None,
        };
        let success = nmap.protocols.contains(&requested);
        if success != selected.is_some() {
            f.disagreements.push(format!(
                "nmap says {name}: {} for requestedProtocols 0x{requested:x}; the same request got {}",
                if success { "SUCCESS" } else { "nothing" },
                negotiation_text(answer)
            ));
        }
        if success && selected.is_some_and(|s| s != nmap_meaning(requested)) {
            f.difference(
                NmapCountsAnyResponse,
                format!(
                    "{name}: SUCCESS; requestedProtocols 0x{requested:x} got {}",
                    negotiation_text(answer)
                ),
            );
        }
        // The scan's own report of the same request (for the values it requests alone).
        if let Some(p) = scan_protocol(scan, requested) {
            let accepted = selected == Some(requested);
            if p["accepted"] != accepted {
                f.disagreements.push(format!(
                    "rdptrace scan says {} accepted={}; the same request got {}",
                    p["protocol"],
                    p["accepted"],
                    negotiation_text(answer)
                ));
            }
        }
    }
}

/// nmap's encryption level and methods against the scan's Standard RDP Security.
fn compare_nmap_encryption(f: &mut Findings, nmap: &Nmap, scan: &serde_json::Value) {
    if nmap.error.is_some() {
        return;
    }
    let rdp = &scan["rdp_security"];
    let level = rdp["level"].as_str();
    let accepted: BTreeSet<u64> = rdp["methods"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["accepted"] == true)
                .filter_map(|m| m["value"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    match (&nmap.level, rdp["tested"] == true) {
        (Some(nmap_level), true) => {
            let mapped = NMAP_LEVELS
                .iter()
                .find(|(n, _)| n == nmap_level)
                .map(|(_, r)| *r);
            if mapped != level {
                f.disagreements.push(format!(
                    "encryption level: nmap {nmap_level}, rdptrace {level:?}"
                ));
            }
            if nmap.methods != accepted {
                f.disagreements.push(format!(
                    "encryption methods: nmap {:?}, rdptrace {accepted:?}",
                    nmap.methods
                ));
            }
        }
        (None, true) if level == Some("ENCRYPTION_LEVEL_NONE") && accepted.is_empty() => f
            .difference(
                NmapSilentOnNoEncryption,
                "no \"RDP Encryption level\"; rdptrace: ENCRYPTION_LEVEL_NONE, no method accepted"
                    .to_owned(),
            ),
        (None, false) => {}
        (nmap_level, tested) => f.disagreements.push(format!(
            "encryption: nmap level {nmap_level:?}, rdptrace tested {tested} level {level:?}"
        )),
    }
}

/// nmap's rdp-ntlm-info against the scan's NTLM CHALLENGE.
fn compare_ntlm(f: &mut Findings, nmap: &Nmap, scan: &serde_json::Value) {
    let info = &scan["ntlm"]["info"];
    match (nmap.ntlm.is_empty(), info.is_object()) {
        (false, true) => {
            for (nmap_key, key) in NMAP_NTLM {
                let theirs = nmap.ntlm.get(nmap_key).map(String::as_str);
                let ours = info[key].as_str().filter(|s| !s.is_empty());
                if theirs != ours {
                    f.disagreements.push(format!(
                        "NTLM {nmap_key}: nmap {theirs:?}, rdptrace {key} {ours:?}"
                    ));
                }
            }
        }
        (false, false) if refused(scan, PROTOCOL_HYBRID) && refused(scan, PROTOCOL_HYBRID_EX) => f
            .difference(
                OthersGoOnAfterRefusal,
                format!(
                    "rdp-ntlm-info read an NTLM CHALLENGE ({}); rdptrace: {}",
                    nmap.ntlm
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    scan_protocol(scan, PROTOCOL_HYBRID)
                        .and_then(|p| p["answer"].as_str())
                        .unwrap_or("?")
                ),
            ),
        (false, false) => f.disagreements.push(format!(
            "NTLM: nmap read {:?}, rdptrace did not test it",
            nmap.ntlm
        )),
        (true, true) => f
            .disagreements
            .push(format!("NTLM: rdptrace read {info}, nmap nothing")),
        (true, false) => {}
    }
}

/// sslscan against the scan's TLS results and certificate.
fn compare_sslscan(f: &mut Findings, ss: &Sslscan, scan: &serde_json::Value) {
    let tls = &scan["tls"];
    if tls["tested"] != true {
        if ss.enabled.is_empty() {
            return;
        }
        if refused(scan, PROTOCOL_SSL) && refused(scan, PROTOCOL_HYBRID) {
            f.difference(
                OthersGoOnAfterRefusal,
                format!(
                    "sslscan --rdp: {} enabled; rdptrace: PROTOCOL_SSL {}",
                    ss.enabled.iter().cloned().collect::<Vec<_>>().join(", "),
                    scan_protocol(scan, PROTOCOL_SSL)
                        .and_then(|p| p["answer"].as_str())
                        .unwrap_or("?")
                ),
            );
        } else {
            f.disagreements.push(format!(
                "sslscan finds {:?}; rdptrace did not test TLS",
                ss.enabled
            ));
        }
        return;
    }
    let versions: Vec<&serde_json::Value> = tls["versions"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    for name in TLS_VERSIONS {
        let ours = versions.iter().find(|v| v["version"] == name);
        let accepted = ours.is_some_and(|v| v["accepted"] == true);
        if accepted != ss.enabled.contains(name) {
            f.disagreements.push(format!(
                "{name}: sslscan {}, rdptrace {}",
                if ss.enabled.contains(name) {
                    "enabled"
                } else {
                    "disabled"
                },
                ours.and_then(|v| v["answer"].as_str())
                    .unwrap_or("not tried")
            ));
        }
        let Some(ours) = ours.filter(|_| accepted) else {
            continue;
        };
        let our_suites: Vec<u16> = ours["cipher_suites"]
            .as_array()
            .map(|s| s.iter().filter_map(suite_id).collect())
            .unwrap_or_default();
        let their_suites = ss.suites.get(name).cloned().unwrap_or_default();
        let a: BTreeSet<u16> = our_suites.iter().copied().collect();
        let b: BTreeSet<u16> = their_suites.iter().copied().collect();
        if a != b {
            f.disagreements.push(format!(
                "{name} suites: only rdptrace {:04x?}, only sslscan {:04x?}",
                a.difference(&b).collect::<Vec<_>>(),
                b.difference(&a).collect::<Vec<_>>()
            ));
            continue;
        }
        let (Some(first), Some(preferred)) = (our_suites.first(), ss.preferred.get(name)) else {
            continue;
        };
        if first == preferred {
            continue;
        }
        // The server follows the client's order when rdptrace's elimination found the suites in the
        // order of its own offer.
        let offer: &[u16] = if name == "TLS 1.3" {
            &rdptrace::scan::tls::TLS13_SUITES
        } else {
            &rdptrace::scan::tls::LEGACY_SUITES
        };
        let in_offer_order: Vec<u16> = offer.iter().copied().filter(|s| a.contains(s)).collect();
        if in_offer_order == our_suites {
            f.difference(
                PreferredFollowsClientOrder,
                format!(
                    "{name}: sslscan preferred 0x{preferred:04x}, rdptrace's first 0x{first:04x}; rdptrace found the {} suites in the order it offered them",
                    our_suites.len()
                ),
            );
        } else {
            f.disagreements.push(format!(
                "{name}: sslscan preferred 0x{preferred:04x}, rdptrace's first 0x{first:04x}, and the server has an order of its own: {our_suites:04x?}"
            ));
        }
    }
    let cert = &scan["certificate"];
    if let (Some(subject), Some(theirs)) = (cert["subject"].as_str(), &ss.subject) {
        if common_name(subject) != Some(theirs.as_str()) {
            f.disagreements.push(format!(
                "certificate subject: sslscan {theirs}, rdptrace {subject}"
            ));
        }
        if cert["key_bits"].as_u64() != ss.key_bits {
            f.disagreements.push(format!(
                "key bits: sslscan {:?}, rdptrace {}",
                ss.key_bits, cert["key_bits"]
            ));
        }
        if cert["not_after"].as_str() != ss.not_after.as_deref() {
            f.disagreements.push(format!(
                "not after: sslscan {:?}, rdptrace {}",
                ss.not_after, cert["not_after"]
            ));
        }
    }
}

/// The three tools against one host.
fn compare(host: &Host, addr: &str) -> Result<Findings, String> {
    let (ip, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr} is not ADDR:PORT"))?;
    let scan_text = run_bounded(
        support::RDPTRACE,
        &["scan".to_owned(), "--json".to_owned(), addr.to_owned()],
    )?;
    let scan: serde_json::Value = serde_json::from_str(&scan_text)
        .map_err(|e| format!("rdptrace scan --json: {e}: {scan_text}"))?;
    if !scan["error"].is_null() {
        return Err(format!("rdptrace scan: {}", scan["error"]));
    }
    // The lab's ports are not 3389: `+` runs the scripts whatever their port rule says.
    let nmap_text = run_bounded(
        "nmap",
        &[
            "-Pn".to_owned(),
            "-p".to_owned(),
            port.to_owned(),
            "--script".to_owned(),
            "+rdp-enum-encryption,+rdp-ntlm-info".to_owned(),
            ip.to_owned(),
        ],
    )?;
    let nmap = parse_nmap(&nmap_text);
    let sslscan_text = run_bounded(
        "sslscan",
        &[
            "--rdp",
            "--no-colour",
            "--no-groups",
            "--no-heartbleed",
            "--no-fallback",
            "--no-renegotiation",
            "--no-compression",
            "--xml=-",
            addr,
        ]
        .map(str::to_owned),
    )?;
    let ss = parse_sslscan(&sslscan_text);
    // nmap's requests, made with rdptrace's own code.
    let port_number: u16 = port.parse().map_err(|_| format!("bad port in {addr}"))?;
    let answers = block_on(async {
        let ep =
            rdptrace::scan::Endpoint::resolve(ip, port_number, Duration::from_secs(10), 1).await?;
        let mut out = Vec::new();
        for (_, requested) in NMAP_PROTOCOLS {
            let r = rdptrace::scan::protocol(&ep, requested).await;
            out.push((requested, r.raw.negotiation()));
        }
        Ok::<_, String>(out)
    })?;
    eprintln!(
        "{}: nmap {:?}; sslscan {} TLS versions",
        host.name,
        nmap,
        ss.enabled.len()
    );
    let mut f = Findings::default();
    compare_nmap_protocols(&mut f, &nmap, &scan, &answers);
    compare_nmap_encryption(&mut f, &nmap, &scan);
    compare_ntlm(&mut f, &nmap, &scan);
    compare_sslscan(&mut f, &ss, &scan);
    Ok(f)
}

/// The first line of `program --version`, without terminal colours.
fn version(program: &str) -> String {
    let text = run_bounded(program, &["--version".to_owned()]).unwrap_or_default();
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
        .map(|re| re.replace_all(&text, "").into_owned())
        .unwrap_or(text);
    let first = plain.lines().map(str::trim).find(|l| !l.is_empty());
    format!("{program} {}", first.unwrap_or("(no version)"))
}

#[test]
fn scan_beside_nmap_and_sslscan() {
    let tools = has_program("nmap")
        && has_program("sslscan")
        && Path::new("/usr/share/nmap/scripts/rdp-enum-encryption.nse").is_file();
    if !tools {
        skip(
            "nmap (with its rdp scripts) and sslscan are needed: Debian packages nmap and sslscan",
        );
        return;
    }
    let Some(lab) = lab() else {
        return;
    };
    eprintln!("{}; {}", version("nmap"), version("sslscan"));
    let mut failed = Vec::new();
    let mut compared = 0;
    for host in HOSTS {
        let Some(addr) = lab.var(host.var) else {
            skip(&format!(
                "{}: {} is not set: the host is not up",
                host.name, host.var
            ));
            continue;
        };
        let f = match compare(host, &addr) {
            Ok(f) => f,
            Err(e) => {
                failed.push(format!("{}: {e}", host.name));
                continue;
            }
        };
        compared += 1;
        for (d, seen) in &f.differences {
            for s in seen {
                eprintln!("{}: {d:?}: {s}", host.name);
            }
        }
        let found: Vec<Difference> = f.differences.keys().copied().collect();
        let mut expected = host.expected.to_vec();
        expected.sort();
        if !f.disagreements.is_empty() || found != expected {
            failed.push(format!(
                "{} ({addr}):\n  must agree but do not: {:#?}\n  differences found: {:#?}\n  documented in lab/SCAN-COMPARISON.md: {expected:?}",
                host.name, f.disagreements, f.differences
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    assert!(compared > 0, "no host compared");
}

#[test]
fn the_parsers_read_the_tools_output() {
    let nmap = parse_nmap(
        "PORT      STATE SERVICE\n24704/tcp open  unknown\n| rdp-enum-encryption: \n|   Security layer\n|     CredSSP (NLA): SUCCESS\n|     Native RDP: SUCCESS\n|   RDP Encryption level: High\n|     128-bit RC4: SUCCESS\n|_  RDP Protocol Version:  RDP 5.x, 6.x, 7.x, or 8.x server\n| rdp-ntlm-info: \n|   Target_Name: VM\n|_  Product_Version: 6.1.7601\n",
    );
    assert_eq!(nmap.error, None);
    assert_eq!(nmap.protocols, BTreeSet::from([0, 3]));
    assert_eq!(nmap.level.as_deref(), Some("High"));
    assert_eq!(nmap.methods, BTreeSet::from([2]));
    assert_eq!(nmap.ntlm.get("Target_Name").map(String::as_str), Some("VM"));
    let failed =
        parse_nmap("|_rdp-enum-encryption: ERROR: Script execution failed (use -d to debug)\n");
    assert_eq!(
        failed.error.as_deref(),
        Some("Script execution failed (use -d to debug)")
    );
    let ss = parse_sslscan(
        "<?xml version=\"1.0\"?>\n<document>\n <ssltest host=\"127.0.0.1\" port=\"1\">\n  <protocol type=\"tls\" version=\"1.1\" enabled=\"0\" />\n  <protocol type=\"tls\" version=\"1.2\" enabled=\"1\" />\n  <cipher status=\"preferred\" sslversion=\"TLSv1.2\" bits=\"256\" cipher=\"ECDHE-RSA-AES256-GCM-SHA384\" id=\"0xC030\" />\n  <cipher status=\"accepted\" sslversion=\"TLSv1.2\" bits=\"128\" cipher=\"AES128-SHA\" id=\"0x002F\" />\n  <certificate type=\"short\">\n   <pk error=\"false\" type=\"RSA\" bits=\"2048\" />\n   <subject><![CDATA[xrdp-tls]]></subject>\n   <not-valid-after>Nov  8 08:46:47 2036 GMT</not-valid-after>\n  </certificate>\n </ssltest>\n</document>\n",
    );
    assert_eq!(ss.enabled, BTreeSet::from(["TLS 1.2".to_owned()]));
    assert_eq!(ss.suites["TLS 1.2"], [0xc030, 0x002f]);
    assert_eq!(ss.preferred["TLS 1.2"], 0xc030);
    assert_eq!(ss.subject.as_deref(), Some("xrdp-tls"));
    assert_eq!(ss.key_bits, Some(2048));
    assert_eq!(ss.not_after.as_deref(), Some("2036-11-08T08:46:47Z"));
    assert_eq!(common_name("O=rdptrace-lab, CN=xrdp-tls"), Some("xrdp-tls"));
}
