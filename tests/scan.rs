//! `rdptrace scan` against real servers configured in known ways.

mod support;

use std::time::Duration;

use rdptrace::scan::negotiate::Answer;
use rdptrace::scan::{ScanConfig, ScanReport, Severity};
use support::peers::*;
use support::*;

fn scan(port: u16) -> ScanReport {
    let cfg = ScanConfig {
        host: "127.0.0.1".to_owned(),
        port,
        timeout: Duration::from_secs(10),
        concurrency: 4,
        suites: true,
    };
    block_on(rdptrace::scan::scan(&cfg))
}

fn protocol<'a>(r: &'a ScanReport, name: &str) -> &'a rdptrace::scan::ProtocolResult {
    r.protocols
        .iter()
        .find(|p| p.protocol == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.protocols))
}

fn version<'a>(r: &'a ScanReport, name: &str) -> &'a rdptrace::scan::tls::VersionResult {
    r.tls
        .versions
        .iter()
        .find(|v| v.version == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.tls.versions))
}

fn finding_ids(r: &ScanReport) -> Vec<&str> {
    r.findings.iter().map(|f| f.id).collect()
}

/// The parts of a report that do not depend on the TLS library's choices, for a snapshot.
fn shape(r: &ScanReport) -> serde_json::Value {
    serde_json::json!({
        "protocols": r.protocols.iter().map(|p| serde_json::json!({
            "protocol": p.protocol, "accepted": p.accepted, "answer": p.answer, "judgement": p.judgement,
        })).collect::<Vec<_>>(),
        "nla_required": r.nla_required,
        "rdp_security": r.rdp_security,
        "tls": r.tls.versions.iter().map(|v| serde_json::json!({
            "version": v.version, "accepted": v.accepted,
        })).collect::<Vec<_>>(),
        "ntlm_tested": r.ntlm.tested,
        "findings": r.findings.iter().map(|f| format!("{} {}", f.severity.as_str(), f.id)).collect::<Vec<_>>(),
    })
}

#[test]
fn xrdp_negotiating_with_high_rdp_encryption() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("scan-negotiate");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[("security_layer", "negotiate"), ("crypt_level", "high")],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let r = scan(port);
    assert_eq!(r.error, None);
    assert!(protocol(&r, "PROTOCOL_RDP").accepted);
    assert!(protocol(&r, "PROTOCOL_SSL").accepted);
    // xrdp answers a request for CredSSP alone with an RDP_NEG_RSP for another protocol: an answer, not an
    // acceptance.
    let hybrid = protocol(&r, "PROTOCOL_HYBRID");
    assert!(!hybrid.accepted);
    assert!(matches!(
        hybrid.raw,
        Answer::Confirm {
            negotiation: rdptrace::pdu::Negotiation::Response { selected_protocol, .. }
        } if selected_protocol != 2
    ));
    assert_eq!(r.nla_required, Some(false));

    assert!(r.rdp_security.tested);
    assert_eq!(
        r.rdp_security.level.as_deref(),
        Some("ENCRYPTION_LEVEL_HIGH")
    );
    let accepted: Vec<&str> = r
        .rdp_security
        .methods
        .iter()
        .filter(|m| m.accepted)
        .map(|m| m.method.as_str())
        .collect();
    assert_eq!(accepted, ["ENCRYPTION_METHOD_128BIT"]);

    assert_eq!(r.tls.via.as_deref(), Some("PROTOCOL_SSL"));
    for old in ["TLS 1.0", "TLS 1.1"] {
        let v = version(&r, old);
        assert!(!v.accepted);
        assert_eq!(v.answer, "fatal alert protocol_version", "{old}");
    }
    assert!(version(&r, "TLS 1.2").accepted);
    assert!(version(&r, "TLS 1.3").accepted);
    assert!(
        version(&r, "TLS 1.2").cipher_suites.len() > 1,
        "suites enumerated"
    );
    let cert = r.certificate.as_ref().expect("a certificate");
    assert!(cert.problems.iter().any(|p| p == "self-signed"));

    let ids = finding_ids(&r);
    for id in [
        "nla-not-required",
        "standard-rdp-security",
        "weak-rdp-encryption",
        "certificate-self-signed",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(!ids.contains(&"tls-1.0-enabled"), "{ids:?}");
    let weak = r
        .findings
        .iter()
        .find(|f| f.id == "weak-rdp-encryption")
        .unwrap();
    assert_eq!(weak.severity, Severity::Medium, "128-bit RC4 only");
    insta::assert_json_snapshot!("xrdp_negotiate_high", shape(&r));
}

#[test]
fn xrdp_with_tls_only_and_tls_1_2_or_1_3() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("scan-tls12");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[
            ("security_layer", "tls"),
            ("ssl_protocols", "TLSv1.2, TLSv1.3"),
        ],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let r = scan(port);
    let rdp = protocol(&r, "PROTOCOL_RDP");
    assert!(!rdp.accepted);
    assert_eq!(
        rdp.answer,
        "RDP_NEG_FAILURE 0x00000001 SSL_REQUIRED_BY_SERVER"
    );
    assert!(protocol(&r, "PROTOCOL_SSL").accepted);
    assert!(!r.rdp_security.tested);
    assert!(r.rdp_security.methods.is_empty());
    assert!(!version(&r, "TLS 1.0").accepted);
    assert!(!version(&r, "TLS 1.1").accepted);
    assert!(version(&r, "TLS 1.2").accepted);
    assert!(version(&r, "TLS 1.3").accepted);
    assert!(!version(&r, "TLS 1.3").cipher_suites.is_empty());
    assert!(!r.ntlm.tested, "xrdp never selects CredSSP");
    let ids = finding_ids(&r);
    assert!(ids.contains(&"nla-not-required"), "{ids:?}");
    assert!(!ids.contains(&"standard-rdp-security"), "{ids:?}");
    assert!(!ids.contains(&"weak-rdp-encryption"), "{ids:?}");
    insta::assert_json_snapshot!("xrdp_tls12_tls13", shape(&r));
}

#[test]
fn xrdp_with_tls_1_3_only() {
    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("scan-tls13");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(
        dir.path(),
        port,
        &[("security_layer", "tls"), ("ssl_protocols", "TLSv1.3")],
    ) else {
        panic!("xrdp did not start on port {port}");
    };
    let r = scan(port);
    for old in ["TLS 1.0", "TLS 1.1", "TLS 1.2"] {
        let v = version(&r, old);
        assert!(!v.accepted, "{old}");
        assert_eq!(v.answer, "fatal alert protocol_version", "{old}");
    }
    let v13 = version(&r, "TLS 1.3");
    assert!(v13.accepted);
    // TLS 1.3 encrypts the Certificate: it comes from the rustls session.
    let cert = r.certificate.as_ref().expect("a certificate");
    assert_eq!(cert.source, "rustls session");
    assert!(
        r.tls
            .session
            .as_deref()
            .is_some_and(|s| s.starts_with("TLS 1.3"))
    );
}

#[test]
fn the_ntlm_challenge_of_a_freerdp_server_with_nla() {
    if !shadow_available() {
        return;
    }
    let dir = TempDir::new("scan-shadow");
    let (port, _servers) = start_shadow_nla(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let r = scan(port);
    assert_eq!(r.nla_required, Some(true));
    assert!(protocol(&r, "PROTOCOL_HYBRID").accepted);
    let ssl = protocol(&r, "PROTOCOL_SSL");
    assert_eq!(
        ssl.answer,
        "RDP_NEG_FAILURE 0x00000005 HYBRID_REQUIRED_BY_SERVER"
    );
    assert_eq!(r.tls.via.as_deref(), Some("PROTOCOL_HYBRID"));
    assert!(r.ntlm.tested);
    let info = r.ntlm.info.as_ref().expect("NTLM target information");
    assert!(
        info.netbios_computer
            .as_deref()
            .is_some_and(|c| !c.is_empty()),
        "{info:?}"
    );
    assert!(info.dns_computer.is_some(), "{info:?}");
    let ids = finding_ids(&r);
    assert!(!ids.contains(&"nla-not-required"), "{ids:?}");
}

#[test]
fn the_command_prints_json_and_exits_by_reachability() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = rdptrace()
        .args([
            "scan",
            &format!("127.0.0.1:{dead}"),
            "--json",
            "--timeout",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "rdptrace-scan/1");
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("no X.224 Connection Confirm")),
        "{doc}"
    );
    assert_eq!(doc["protocols"].as_array().map(Vec::len), Some(6));

    if !xrdp_available() {
        return;
    }
    let dir = TempDir::new("scan-cli");
    let port = free_port();
    let Some(_xrdp) = start_xrdp(dir.path(), port, &[("security_layer", "tls")]) else {
        panic!("xrdp did not start on port {port}");
    };
    let out = rdptrace()
        .args(["scan", &format!("127.0.0.1:{port}"), "--no-suites"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PROTOCOL_SSL         accepted"), "{text}");
    assert!(text.contains("[high] nla-not-required"), "{text}");
}
