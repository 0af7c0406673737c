//! The replay reads the client's Kerberos traffic (port 88) beside the RDP connection, on captures made
//! for real here: in a network namespace the test creates (`unshare -n`), an MIT KDC on 127.0.0.1:88,
//! `rdptrace serve` with Kerberos on 127.0.0.1:3389 and the probe as the client, recorded by dumpcap on the
//! namespace's loopback. The probe's own `--pcap` holds the RDP connection alone, which is why the
//! capture is taken on the interface. Then the public Windows captures of `../shared`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::kerberos::{HOST, Kdc, PASSWORD, REALM, SPN, USER, kdc_available};
use support::*;

/// Whether a network namespace and a capture on its loopback can be had here.
fn namespace_available() -> bool {
    let ok = is_root()
        && has_program("unshare")
        && has_program("dumpcap")
        && has_program("ip")
        && has_program("ss")
        && Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
    require(
        ok,
        "root, unshare (util-linux), ip and ss (iproute2) and dumpcap (wireshark's) for a capture in a network namespace",
    )
}

/// One logon recorded: the serve scenario, the probe's password and KDC URL, and whether a KDC that never
/// answers listens on UDP 127.0.0.2:88 (a socket that reads nothing).
struct Logon<'a> {
    scenario: &'a str,
    password: &'a str,
    kdc_url: &'a str,
    silent_kdc: bool,
}

/// Runs the KDC, `rdptrace serve` and the probe in a new network namespace and captures its loopback; the
/// capture's path, the key log's and the probe's JSON.
fn record(dir: &Path, kdc: &Kdc, keytab: &Path, logon: &Logon) -> (PathBuf, PathBuf, Value) {
    let capture = dir.join(format!("{}.pcapng", logon.scenario));
    let keylog = dir.join(format!("{}.keys", logon.scenario));
    let probe_out = dir.join(format!("{}.json", logon.scenario));
    let kdc_cmd = kdc.command();
    let kdc_program = kdc_cmd.get_program().to_string_lossy().into_owned();
    // Every step bounded: each wait loop counts to 50 (5 s), the whole script to 60 s (timeout).
    let script = format!(
        r#"set -u
ip link set lo up
"$KDC_PROGRAM" -n -r {REALM} & kdc=$!
silent=
if [ "$SILENT_KDC" = 1 ]; then
  python3 -c 'import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.2", 88)); time.sleep(50)' & silent=$!
  for i in $(seq 50); do ss -lnu | grep -q '127.0.0.2:88 ' && break; sleep 0.1; done
fi
dumpcap -q -i lo -f "port 88 or port 3389" -w "$CAPTURE" 2>/dev/null & cap=$!
for i in $(seq 50); do ss -ltnu | grep -q '127.0.0.1:88 ' && break; sleep 0.1; done
for i in $(seq 50); do [ -s "$CAPTURE" ] && break; sleep 0.1; done
sleep 0.5
"$RDPTRACE" serve --once --listen 127.0.0.1:3389 --scenario {scenario} --host-name {HOST} --realm {REALM} --read-timeout 10 --keytab "$KEYTAB" --user {USER} --domain {REALM} >/dev/null 2>&1 & srv=$!
for i in $(seq 50); do ss -ltn | grep -q '127.0.0.1:3389 ' && break; sleep 0.1; done
RDPTRACE_PASSWORD="$PROBE_PASSWORD" KRB5_CONFIG=/nonexistent RDPTRACE_DNS_SERVER=127.0.0.1:9 \
  "$RDPTRACE" probe --json --watch 0.3 --phase-timeout 5 --timeout 20 {HOST}:3389 -u {USER} -d {REALM} \
  --kdc {kdc_url} --keylog "$KEYLOG" >"$PROBE_OUT" 2>/dev/null
sleep 0.5
kill -INT $cap; wait $cap
kill $srv $kdc $silent 2>/dev/null; wait
exit 0
"#,
        scenario = logon.scenario,
        kdc_url = logon.kdc_url,
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", "60", "unshare", "-n", "bash", "-c", &script])
        .env("KDC_PROGRAM", &kdc_program)
        .env("CAPTURE", &capture)
        .env("KEYTAB", keytab)
        .env("KEYLOG", &keylog)
        .env("PROBE_OUT", &probe_out)
        .env("PROBE_PASSWORD", logon.password)
        .env("SILENT_KDC", if logon.silent_kdc { "1" } else { "0" })
        .env("RDPTRACE", RDPTRACE)
        .env_remove("RDPTRACE_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in kdc.env_vars() {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("run the namespace's script");
    assert!(status.success(), "the namespace's script: {status}");
    let text = std::fs::read_to_string(&probe_out).unwrap_or_default();
    let probe: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the probe's JSON ({e}): {text}\nKDC log: {}", kdc.log()));
    (capture, keylog, probe)
}

/// The realm's KDC on 127.0.0.1:88, and the server's keytab for [`SPN`] in `dir`.
fn realm(dir: &Path) -> (Kdc, PathBuf) {
    let kdc = Kdc::prepare(dir, 88).expect("the realm");
    let keytab = dir.join("termsrv.keytab");
    kdc.ktadd(SPN, &keytab).expect("the server's keytab");
    (kdc, keytab)
}

/// `rdptrace replay --json` of `capture` (with `keylog` when given): the first session's document.
fn replay(capture: &Path, keylog: Option<&Path>) -> Value {
    replay_with(capture, keylog, &[])
}

/// [`replay`] with more arguments.
fn replay_with(capture: &Path, keylog: Option<&Path>, more: &[&std::ffi::OsStr]) -> Value {
    let mut cmd = rdptrace();
    cmd.args(["replay", "--json"]).arg(capture).args(more);
    if let Some(k) = keylog {
        cmd.arg("--keylog").arg(k);
    }
    let out = output(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    serde_json::from_str(first).unwrap_or_else(|e| {
        panic!(
            "replay JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The KDC messages the replay put into the session's trace: "as_req", "error 7", ...
fn kdc_messages(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for phase in doc["phases"].as_array().into_iter().flatten() {
        for e in phase["events"].as_array().into_iter().flatten() {
            if e["event"] != "kdc" {
                continue;
            }
            let m = &e["message"];
            let kind = m["msg"].as_str().unwrap_or_default();
            out.push(match m.get("code") {
                Some(code) => format!("{kind} {code}"),
                None => kind.to_owned(),
            });
        }
    }
    out
}

/// The credssp phase's `credential_type` fact.
fn credential_type(doc: &Value) -> Option<String> {
    doc["phases"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "credssp")?["facts"]["credential_type"]
        .as_str()
        .map(str::to_owned)
}

fn verdict_detail(doc: &Value) -> String {
    doc["verdict"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_replay_links_the_clients_kdc_exchange_to_its_rdp_session() {
    if !kdc_available() || !namespace_available() {
        return;
    }
    let dir = TempDir::new("krb-capture");
    let (kdc, keytab) = realm(dir.path());

    // A healthy Kerberos logon over TCP: AS (with the pre-authentication round), TGS for TERMSRV.
    let (capture, _, probe) = record(
        dir.path(),
        &kdc,
        &keytab,
        &Logon {
            scenario: "kerberos",
            password: PASSWORD,
            kdc_url: "tcp://127.0.0.1:88",
            silent_kdc: false,
        },
    );
    assert_eq!(probe["verdict"]["cause"], "connected", "{probe:#}");
    let doc = replay(&capture, None);
    let messages = kdc_messages(&doc);
    let text = doc.to_string();
    assert_eq!(
        messages,
        [
            "as_req", "error 25", "as_req", "as_rep", "tgs_req", "tgs_rep"
        ],
        "{doc:#}"
    );
    assert!(
        text.contains(&format!("\"server\":\"{SPN}@{REALM}\""))
            && text.contains("\"source\":{\"kind\":\"capture\"}"),
        "{doc:#}"
    );
    assert_eq!(doc["verdict"]["cause"], "connected", "{doc:#}");
    // Never a ticket, a key or an encrypted part: the JSON names no cipher.
    assert!(!text.contains("cipher\""), "{doc:#}");
    // With the TLS secrets and the server's keytab, the credential type the probe delegated.
    let (capture, keylog, _) = record(
        dir.path(),
        &kdc,
        &keytab,
        &Logon {
            scenario: "kerberos-early-auth-denied",
            password: PASSWORD,
            kdc_url: "tcp://127.0.0.1:88",
            silent_kdc: false,
        },
    );
    let doc = replay_with(
        &capture,
        Some(&keylog),
        &["--keytab".as_ref(), keytab.as_os_str()],
    );
    assert_eq!(
        credential_type(&doc).as_deref(),
        Some("password (TSPasswordCreds)"),
        "{doc:#}"
    );
    assert!(!doc.to_string().contains(PASSWORD));

    // A wrong password over UDP: KDC_ERR_PREAUTH_FAILED, on which Negotiate does not fall back to NTLM:
    // the replay reads it from port 88 and agrees with the probe.
    let (capture, keylog, probe) = record(
        dir.path(),
        &kdc,
        &keytab,
        &Logon {
            scenario: "kerberos",
            password: "not-alices-password",
            kdc_url: "udp://127.0.0.1:88",
            silent_kdc: false,
        },
    );
    let doc = replay(&capture, Some(&keylog));
    let detail = verdict_detail(&doc);
    assert!(
        detail.starts_with("Kerberos failed at the KDC: it answered 24 KDC_ERR_PREAUTH_FAILED")
            && detail == verdict_detail(&probe),
        "{detail}\nprobe: {}\n{doc:#}",
        verdict_detail(&probe)
    );
    assert_eq!(doc["verdict"]["cause"], "kerberos_error", "{doc:#}");

    // The service principal removed from the realm: KDC_ERR_S_PRINCIPAL_UNKNOWN, then NTLM, refused.
    kdc.kadmin(&format!("delprinc -force {SPN}"))
        .expect("delprinc");
    let (capture, keylog, probe) = record(
        dir.path(),
        &kdc,
        &keytab,
        &Logon {
            scenario: "kerberos-ntlm-refused",
            password: PASSWORD,
            kdc_url: "tcp://127.0.0.1:88",
            silent_kdc: false,
        },
    );
    let doc = replay(&capture, Some(&keylog));
    let detail = verdict_detail(&doc);
    assert!(
        detail.starts_with(&format!(
            "the client asked the KDC for a ticket for {SPN}@{REALM} and got 7 KDC_ERR_S_PRINCIPAL_UNKNOWN"
        )) && detail.contains("then authenticated with NTLM, which the server refused with STATUS_NTLM_BLOCKED"),
        "{detail}\nprobe: {}\n{doc:#}",
        verdict_detail(&probe)
    );
    // Without the key log the CredSSP exchange is encrypted: the KDC's error is what the verdict names.
    let doc = replay(&capture, None);
    let detail = verdict_detail(&doc);
    assert!(
        detail.starts_with(&format!(
            "the client asked the KDC for a ticket for {SPN}@{REALM} and got 7 KDC_ERR_S_PRINCIPAL_UNKNOWN"
        )) && detail.contains("whether the client then tried NTLM cannot be seen"),
        "{detail}\n{doc:#}"
    );
}

/// A KDC that never answers (a socket that reads the client's requests and says nothing): the probe waits
/// for it, falls back to NTLM, and the server refuses NTLM. The replay names the KDC's silence from the
/// capture, with the key log and without.
#[test]
fn a_kdc_that_never_answers_is_named_from_the_capture() {
    if !kdc_available()
        || !namespace_available()
        || !require(
            has_program("python3"),
            "python3, for a KDC that never answers",
        )
    {
        return;
    }
    let dir = TempDir::new("krb-silent");
    let (kdc, keytab) = realm(dir.path());
    let (capture, keylog, probe) = record(
        dir.path(),
        &kdc,
        &keytab,
        &Logon {
            scenario: "kerberos-ntlm-refused",
            password: PASSWORD,
            kdc_url: "udp://127.0.0.2:88",
            silent_kdc: true,
        },
    );
    let silent =
        "the client's request to the KDC at udp://127.0.0.2:88 got no answer in the capture";
    let doc = replay(&capture, Some(&keylog));
    let detail = verdict_detail(&doc);
    assert!(
        detail.starts_with(silent)
            && detail.contains(
                "then it authenticated with NTLM, which the server refused with STATUS_NTLM_BLOCKED"
            ),
        "{detail}\nprobe: {}\n{doc:#}",
        verdict_detail(&probe)
    );
    assert_eq!(doc["verdict"]["cause"], "credssp_error", "{doc:#}");
    // Without the key log: the silence is what can be read, and what came after in CredSSP cannot be.
    let doc = replay(&capture, None);
    let detail = verdict_detail(&doc);
    assert!(
        detail.starts_with(silent)
            && detail.contains("whether the client then tried NTLM cannot be seen"),
        "{detail}\n{doc:#}"
    );
    assert_eq!(doc["verdict"]["cause"], "kdc_unreachable", "{doc:#}");
}

/// The Kerberos evidence of each session of a public capture: the client address and, per KDC message,
/// its type, error code and the principal it names.
fn public_sessions(file: &Path) -> Vec<(String, Vec<String>)> {
    let out = output(rdptrace().args(["replay", "--json"]).arg(file));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d.get("phases").is_some())
        .map(|d| {
            let mut messages = Vec::new();
            for phase in d["phases"].as_array().into_iter().flatten() {
                for e in phase["events"].as_array().into_iter().flatten() {
                    if e["event"] != "kdc" {
                        continue;
                    }
                    let m = &e["message"];
                    let principal = m["server"].as_str().or(m["ticket"]["server"].as_str());
                    let mut line = m["msg"].as_str().unwrap_or_default().to_owned();
                    if let Some(code) = m["code"].as_u64() {
                        line.push_str(&format!(" {code}"));
                    }
                    line.push_str(&format!(" {}", principal.unwrap_or_default()));
                    messages.push(line);
                }
            }
            (
                d["client_addr"].as_str().unwrap_or_default().to_owned(),
                messages,
            )
        })
        .collect()
}

#[test]
fn the_public_windows_and_freerdp_captures_link_what_tshark_shows() {
    let Some(shared) = shared_dir() else {
        require(false, "../shared (the public captures)");
        return;
    };
    let dir = shared.join("captures/public/wireshark-wiki");
    let tgt = "krbtgt/ACME.COM@ACME.COM";
    let termsrv = "TERMSRV/adc.acme.com@ACME.COM";
    // FreeRDP's client: two AS rounds for pre-authentication, then the TGS for TERMSRV over TCP. Its later
    // TGS-REQs for krbtgt (answered KDC_ERR_BADOPTION) are not about RDP and are left out, as the
    // datagrams the capture holds twice are counted once.
    let sessions = public_sessions(&dir.join("freerdp-client-krb5.pcapng"));
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        sessions[0].1,
        [
            format!("as_req {tgt}"),
            format!("error 25 {tgt}"),
            format!("as_req {tgt}"),
            format!("error 25 {tgt}"),
            format!("as_req {tgt}"),
            format!("as_rep {tgt}"),
            format!("tgs_req {termsrv}"),
            format!("tgs_rep {termsrv}"),
        ]
    );
    // Windows with Remote Credential Guard, in both file formats: the NTLM attempt (session 1) has no
    // Kerberos of its own; the Kerberos logon gets its AS exchange, then two TGS exchanges for TERMSRV (the
    // second for the TGT Remote Credential Guard forwards); LDAP, cifs and host tickets are left out.
    for file in ["TSRemoteGuardCreds.eth.pcapng", "TSRemoteGuardCreds.cap"] {
        let sessions = public_sessions(&dir.join(file));
        assert_eq!(sessions.len(), 2, "{file}: {sessions:?}");
        assert!(sessions[0].1.is_empty(), "{file}: {sessions:?}");
        assert_eq!(
            sessions[1].1,
            [
                format!("as_req {tgt}"),
                format!("error 25 {tgt}"),
                format!("as_req {tgt}"),
                format!("as_rep {tgt}"),
                format!("tgs_req {termsrv}"),
                format!("tgs_rep {termsrv}"),
                format!("tgs_req {termsrv}"),
                format!("tgs_rep {termsrv}"),
            ],
            "{file}"
        );
    }
}

/// `replay --keytab` on the public Windows captures, with the server's RSA key and the keytabs published
/// with them: the credential type each Kerberos CredSSP exchange delegates, as tshark shows it decrypted
/// (GROUND_TRUTH.md): a password in win2k19-joined, Remote Credential Guard in TSRemoteGuardCreds (both
/// user-to-user tickets, opened through the server's TGT and the keytab's krbtgt key).
#[test]
fn the_keytab_names_the_credential_type_of_the_public_kerberos_sessions() {
    let Some(shared) = shared_dir() else {
        require(false, "../shared (the public captures)");
        return;
    };
    let public = shared.join("captures/public");
    let rsa = public.join("keys/wireshark-wiki-ws-credssp.key");
    for (file, keytab, expected) in [
        (
            "TSRemoteGuardCreds.eth.pcapng",
            "wireshark-wiki-acme2.keytab",
            "Remote Credential Guard (TSRemoteGuardCreds)",
        ),
        (
            "TSRemoteGuardCreds.cap",
            "wireshark-wiki-acme2.keytab",
            "Remote Credential Guard (TSRemoteGuardCreds)",
        ),
        (
            "win2k19-joined.eth.pcapng",
            "wireshark-wiki-acme.keytab",
            "password (TSPasswordCreds)",
        ),
    ] {
        let keytab = public.join("keys").join(keytab);
        let out = output(
            rdptrace()
                .args(["replay", "--json"])
                .arg(public.join("wireshark-wiki").join(file))
                .arg("--rsa-key")
                .arg(&rsa)
                .arg("--keytab")
                .arg(&keytab),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let types: Vec<Option<String>> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|d| d.get("phases").is_some())
            .map(|d| credential_type(&d))
            .collect();
        // Session 1 is the NTLM attempt the server refused before any authInfo; session 2 is Kerberos.
        assert_eq!(
            types,
            [None, Some(expected.to_owned())],
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
