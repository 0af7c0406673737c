//! NLA with Kerberos against real components started here on loopback: an MIT KDC (TCP, UDP, and its
//! MS-KKDCP proxy over HTTPS), FreeRDP 3's shadow server with a keytab. The probe reaches the active state,
//! and every failure produced for real (a wrong password, an unknown user, a service principal that does
//! not exist, a keytab with an old key, the KDC stopped, an IP address) is named with its code.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::kerberos::{
    HOST, Kdc, PASSWORD, REALM, SPN, USER, kdc_available, kdcproxy_available, shadow3_available,
    start_kdcproxy, start_shadow3, test_certificate,
};
use support::*;

/// One probe of `localhost:port` as [`USER`]: its exit code and its JSON document.
fn probe(port: u16, password: &str, args: &[&str], env: &[(&str, &Path)]) -> (i32, Value, Output) {
    let mut cmd = rdptrace();
    cmd.args([
        "probe",
        "--json",
        "--watch",
        "0.3",
        "--phase-timeout",
        "5",
        "--timeout",
        "20",
    ])
    .arg(format!("{HOST}:{port}"))
    .args(["-u", USER, "-d", REALM])
    .args(args)
    .env("RDPTRACE_PASSWORD", password)
    // No KDC from the machine's own configuration unless a test names one.
    .env("KRB5_CONFIG", "/nonexistent")
    .env("RDPTRACE_DNS_SERVER", "127.0.0.1:9");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output(&mut cmd);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc, out)
}

fn credssp(doc: &Value) -> &Value {
    doc["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "credssp"))
        .expect("a credssp phase")
}

/// The messages the client exchanged with the KDC, as `to:as_req`, `from:error:24`.
fn kdc_messages(doc: &Value) -> Vec<String> {
    credssp(doc)["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == "kdc")
        .map(|e| {
            let dir = if e["direction"] == "to_kdc" {
                "to"
            } else {
                "from"
            };
            let msg = e["message"]["msg"].as_str().unwrap_or("?");
            match e["message"]["code"].as_u64() {
                Some(code) => format!("{dir}:{msg}:{code}"),
                None => format!("{dir}:{msg}"),
            }
        })
        .collect()
}

fn events_of(doc: &Value, kind: &str) -> Vec<Value> {
    credssp(doc)["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == kind)
        .cloned()
        .collect()
}

fn verdict(doc: &Value) -> (&str, &str) {
    (
        doc["verdict"]["cause"].as_str().unwrap_or(""),
        doc["verdict"]["detail"].as_str().unwrap_or(""),
    )
}

#[test]
fn kerberos_against_a_real_kdc_and_freerdp_3() {
    if !kdc_available() || !shadow3_available() {
        return;
    }
    let dir = TempDir::new("kerberos");
    let mut kdc = Kdc::start(dir.path()).expect("the KDC starts");
    let keytab = dir.path().join("termsrv.keytab");
    kdc.ktadd(SPN, &keytab).expect("the service key");
    let (port, _shadow) =
        start_shadow3(dir.path(), &kdc, &keytab).expect("freerdp-shadow-cli3 starts");
    let tcp = format!("tcp://127.0.0.1:{}", kdc.port);

    // Healthy, the KDC over TCP: AS (pre-authentication asked for, then given), TGS for the SPN, AP in
    // CredSSP, the active state.
    let (code, doc, _) = probe(port, PASSWORD, &["--auth", "kerberos", "--kdc", &tcp], &[]);
    assert_eq!(code, 0, "{:?}\n{}", verdict(&doc), kdc.log());
    assert_eq!(
        kdc_messages(&doc),
        [
            "to:as_req",
            "from:error:25",
            "to:as_req",
            "from:as_rep",
            "to:tgs_req",
            "from:tgs_rep"
        ]
    );
    let facts = &credssp(&doc)["facts"];
    assert_eq!(facts["spn"], format!("{SPN}@{REALM}"));
    assert_eq!(facts["auth_package"], "Kerberos");
    let chosen = events_of(&doc, "kdc_chosen");
    assert_eq!(chosen[0]["source"]["kind"], "option", "{chosen:?}");
    let ap_req = credssp(&doc)["pdus"]
        .as_array()
        .expect("pdus")
        .iter()
        .find(|p| p["info"]["token"]["krb"]["msg"] == "ap_req")
        .expect("the AP-REQ in CredSSP");
    assert_eq!(
        ap_req["info"]["token"]["krb"]["ticket"]["server"],
        format!("{SPN}@{REALM}")
    );

    // The same KDC over UDP, and found in krb5.conf (KRB5_CONFIG) rather than named.
    let udp = format!("udp://127.0.0.1:{}", kdc.port);
    let (code, doc, _) = probe(port, PASSWORD, &["--auth", "kerberos", "--kdc", &udp], &[]);
    assert_eq!(code, 0, "udp: {:?}", verdict(&doc));
    let (code, doc, _) = probe(
        port,
        PASSWORD,
        &["--auth", "kerberos"],
        &[("KRB5_CONFIG", &kdc.krb5_conf)],
    );
    assert_eq!(code, 0, "krb5.conf: {:?}", verdict(&doc));
    assert_eq!(
        events_of(&doc, "kdc_chosen")[0]["source"]["kind"],
        "krb5_conf"
    );

    // The KDC proxy (MS-KKDCP over HTTPS): trusted through SSL_CERT_FILE, then not trusted at all.
    if kdcproxy_available() {
        let (ca, cert, key) = test_certificate(dir.path()).expect("a test certificate");
        let (url, _proxy) = start_kdcproxy(dir.path(), &kdc, &cert, &key).expect("kdcproxy");
        assert!(wait_listening(
            url.rsplit(':')
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse().ok())
                .expect("a port"),
            std::time::Duration::from_secs(10)
        ));
        let (code, doc, _) = probe(
            port,
            PASSWORD,
            &["--auth", "kerberos", "--kdc", &url],
            &[("SSL_CERT_FILE", &ca)],
        );
        assert_eq!(code, 0, "kdc proxy: {:?}", verdict(&doc));
        assert!(kdc_messages(&doc).contains(&"from:tgs_rep".to_owned()));
        let (code, doc, _) = probe(
            port,
            PASSWORD,
            &["--auth", "kerberos", "--kdc", &url],
            &[("SSL_CERT_FILE", Path::new("/nonexistent"))],
        );
        assert_eq!(code, 13);
        let (cause, detail) = verdict(&doc);
        assert_eq!(cause, "kdc_unreachable", "{detail}");
        assert!(detail.contains("TLS with the KDC proxy failed"), "{detail}");
    }

    // A wrong password: KDC_ERR_PREAUTH_FAILED, and what mstsc shows for a failed logon.
    let (code, doc, _) = probe(port, "not-the-password", &["--kdc", &tcp], &[]);
    assert_eq!(code, 13);
    let (cause, detail) = verdict(&doc);
    assert_eq!(cause, "kerberos_error");
    assert!(detail.contains("24 KDC_ERR_PREAUTH_FAILED"), "{detail}");
    assert_eq!(doc["verdict"]["mstsc"]["disc_reason"]["code"], 0x807);

    // An unknown user: KDC_ERR_C_PRINCIPAL_UNKNOWN.
    let mut cmd = rdptrace();
    cmd.args([
        "probe", "--json", "--watch", "0.3", "--auth", "kerberos", "--kdc", &tcp,
    ])
    .arg(format!("{HOST}:{port}"))
    .args(["-u", &format!("nobody@{REALM}")])
    .env("RDPTRACE_PASSWORD", PASSWORD)
    .env("KRB5_CONFIG", "/nonexistent");
    let out = output(&mut cmd);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (cause, detail) = verdict(&doc);
    assert_eq!(cause, "kerberos_error");
    assert!(detail.contains("6 KDC_ERR_C_PRINCIPAL_UNKNOWN"), "{detail}");

    // An IP address: no SPN, so Negotiate does not try Kerberos, and says so before anything else.
    let mut cmd = rdptrace();
    cmd.args(["probe", "--json", "--watch", "0.3", "--kdc", &tcp])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-u", USER, "-d", REALM])
        .env("RDPTRACE_PASSWORD", PASSWORD);
    let doc: Value = serde_json::from_slice(&output(&mut cmd).stdout).expect("JSON");
    let not_used = events_of(&doc, "kerberos_not_used");
    assert!(
        not_used[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is an IP address")),
        "{not_used:?}"
    );
    assert!(kdc_messages(&doc).is_empty());

    // The KDC has keys of a newer version than the server's keytab: the server cannot read the ticket.
    kdc.ktadd(SPN, &dir.path().join("newer.keytab"))
        .expect("new keys");
    let (code, doc, _) = probe(port, PASSWORD, &["--auth", "kerberos", "--kdc", &tcp], &[]);
    assert_eq!(code, 13);
    let (cause, detail) = verdict(&doc);
    assert_eq!(cause, "credssp_rejected");
    assert!(
        detail.contains("did not accept the Kerberos ticket") && detail.contains("key version 3"),
        "{detail}"
    );

    // No service principal for the name: KDC_ERR_S_PRINCIPAL_UNKNOWN; Negotiate then falls back to NTLM,
    // which this server refuses, and the verdict starts from Kerberos.
    kdc.kadmin(&format!("delprinc -force {SPN}"))
        .expect("the SPN goes");
    let (code, doc, _) = probe(port, PASSWORD, &["--auth", "kerberos", "--kdc", &tcp], &[]);
    assert_eq!(code, 13);
    let (cause, detail) = verdict(&doc);
    assert_eq!(cause, "kerberos_error");
    assert!(detail.contains("7 KDC_ERR_S_PRINCIPAL_UNKNOWN"), "{detail}");
    let (code, doc, _) = probe(port, PASSWORD, &["--kdc", &tcp], &[]);
    assert_eq!(code, 13);
    let (_, detail) = verdict(&doc);
    assert!(
        detail.starts_with("Kerberos failed (the KDC answered 7 KDC_ERR_S_PRINCIPAL_UNKNOWN")
            && detail.contains("then authenticated with NTLM"),
        "{detail}"
    );
    let fallback = events_of(&doc, "auth_fallback");
    assert_eq!(fallback.len(), 1, "the fallback is recorded once");

    // The KDC stopped: refused. --auth kerberos stops there; Negotiate falls back and says why.
    kdc.stop();
    let (code, doc, _) = probe(port, PASSWORD, &["--auth", "kerberos", "--kdc", &tcp], &[]);
    assert_eq!(code, 13);
    let (cause, detail) = verdict(&doc);
    assert_eq!(cause, "kdc_unreachable");
    assert!(detail.contains("connection refused"), "{detail}");
    assert_eq!(doc["verdict"]["mstsc"]["disc_reason"]["code"], 0x1807);
    let (_, doc, _) = probe(port, PASSWORD, &["--kdc", &tcp], &[]);
    let (_, detail) = verdict(&doc);
    assert!(
        detail.contains("could not be used: connection refused") && detail.contains("NTLM"),
        "{detail}"
    );
}

#[test]
fn explain_knows_the_kerberos_codes() {
    let out = output(rdptrace().args(["explain", "--krb", "7"]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("KDC_ERR_S_PRINCIPAL_UNKNOWN"), "{text}");
    assert!(text.contains("RFC 4120 7.5.9"), "{text}");
    assert!(text.contains("TERMSRV/"), "the RDP hint: {text}");
    let out = output(rdptrace().args(["explain", "--krb", "KDC_ERR_PREAUTH_FAILED"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("24"), "{text}");
    assert!(text.contains("0x807"), "what mstsc shows: {text}");
    let out = output(rdptrace().args(["explain", "--krb", "999"]));
    assert_eq!(out.status.code(), Some(1));
    // Kerberos numbers are not among the meanings of an mstsc pair.
    let out = output(rdptrace().args(["explain", "0x904", "0x7"]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("KDC_ERR"));
}
