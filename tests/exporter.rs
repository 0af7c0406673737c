//! `rdptrace exporter` against real peers: Debian's Prometheus server scrapes it in the blackbox
//! relabelling style while it probes `rdptrace serve` scenarios, and the values are read back through
//! Prometheus's HTTP API; the shipped alerting rules run on them. Also: the metric names documented in
//! README.md, the answer when every probe slot is taken, the scrape's deadline, and the password.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdptrace::exporter::metrics::PROBE_METRICS;
use support::*;

/// A password no test data contains, so that any appearance of it is a leak.
const MARKER: &str = "Exporter-Marker-Pw-5b1e";

/// Starts a child whose first stdout line is `listening on ADDR...`; returns it with ADDR.
fn spawn_listening(cmd: &mut Command) -> (ChildGuard, SocketAddr) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start rdptrace");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the first line");
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split([',', ' ']).next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (guard, addr)
}

/// `rdptrace serve --scenario NAME` on a free loopback port, accepting [`MARKER`].
fn serve(scenario: &str) -> (ChildGuard, SocketAddr) {
    spawn_listening(
        rdptrace()
            .args(["serve", "--scenario", scenario, "--listen", "127.0.0.1:0"])
            .env("RDPTRACE_PASSWORD", MARKER)
            .stderr(Stdio::null()),
    )
}

/// The exporter with `config` (TOML) written in `dir`; stderr to `dir/exporter.log`.
fn exporter(dir: &Path, config: &str, extra: &[&str]) -> (ChildGuard, SocketAddr, PathBuf) {
    let path = dir.join("exporter.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.join("exporter.log");
    let (guard, addr) = spawn_listening(
        rdptrace()
            .args(["exporter", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .args(extra)
            .env("RUST_LOG", "rdptrace=trace,sspi=trace,ironrdp=trace")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    (guard, addr, log)
}

/// A module that logs on with [`MARKER`], read from a file in `dir`.
fn nla_module(dir: &Path, extra: &str) -> String {
    let pw = dir.join("monitor.pw");
    std::fs::write(&pw, format!("{MARKER}\n")).unwrap();
    format!(
        "[modules.nla]\nsecurity = \"nla-ex\"\nuser = \"rdptrace\"\npassword-file = \"{}\"\n\
         allowed-targets = [\"127.0.0.1:*\"]\nwatch = 0.2\nexpect = [\"active\"]\n{extra}",
        pw.display()
    )
}

/// An HTTP/1.0 GET (no chunked answers to decode): status and body.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

fn query_path(q: &str) -> String {
    format!(
        "/api/v1/query?query={}",
        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    )
}

/// The result vector of an instant query.
fn query(prom: SocketAddr, q: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(prom, &query_path(q), &[]);
    assert_eq!(status, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of the one series `q` returns.
fn value(prom: SocketAddr, q: &str) -> f64 {
    let r = query(prom, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{q}: {r:?}"))
}

fn prometheus_available() -> bool {
    require(
        has_program("prometheus") && has_program("promtool"),
        "prometheus and promtool (Debian package prometheus)",
    )
}

#[test]
fn prometheus_scrapes_the_exporter_probing_built_in_scenarios() {
    if !prometheus_available() {
        return;
    }
    let dir = TempDir::new("exporter-prometheus");
    let scenarios = [
        "healthy",
        "denied-connection",
        "cert-expired",
        "nla-logon-failure",
    ];
    let targets: Vec<(ChildGuard, SocketAddr)> = scenarios.iter().map(|s| serve(s)).collect();
    let (_exporter, exp, log) = exporter(dir.path(), &nla_module(dir.path(), ""), &[]);
    let instance = |i: usize| targets[i].1.to_string();
    let list: Vec<String> = (0..targets.len())
        .map(|i| format!("\"{}\"", instance(i)))
        .collect();
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitoring/rdptrace-alerts.yml");
    let config = format!(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n\
         \x20 - job_name: rdp\n    metrics_path: /probe\n    params:\n      module: [nla]\n\
         \x20   static_configs:\n      - targets: [{list}]\n\
         \x20   relabel_configs:\n\
         \x20     - source_labels: [__address__]\n        target_label: __param_target\n\
         \x20     - source_labels: [__param_target]\n        target_label: instance\n\
         \x20     - target_label: __address__\n        replacement: {exp}\n\
         \x20 - job_name: rdptrace_exporter\n    static_configs:\n      - targets: [\"{exp}\"]\n",
        rules = rules.display(),
        list = list.join(", "),
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(check.status.success(), "{config}\n{check:?}");
    let port = free_port();
    let prom_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let prom_log = dir.path().join("prometheus.log");
    let _prometheus = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prom_log).unwrap())
            .spawn()
            .expect("start prometheus"),
    );
    // Every target scraped (up == 1) with a result, and the alerts evaluated, within a bounded time.
    let start = Instant::now();
    let ready = loop {
        if start.elapsed() > Duration::from_secs(90) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(prom_addr).is_err() {
            continue;
        }
        let up = query(prom_addr, "up{job=\"rdp\"} == 1").len();
        let results = query(prom_addr, "rdptrace_probe_success").len();
        let alerts = query(
            prom_addr,
            "ALERTS{alertname=~\"RdpPhaseFailing|RdpCertificateExpiringSoon\"}",
        )
        .len();
        // The exporter's own counters, scraped after the probes of the first round.
        let counted = query(prom_addr, "sum(rdptrace_exporter_probes_total) >= 4").len();
        if up == targets.len() && results == targets.len() && alerts >= 3 && counted == 1 {
            break true;
        }
    };
    assert!(
        ready,
        "prometheus did not get every result in time\nprometheus: {}\nexporter: {}",
        std::fs::read_to_string(&prom_log).unwrap_or_default(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let q = |metric: &str, i: usize, more: &str| {
        value(
            prom_addr,
            &format!("{metric}{{job=\"rdp\",instance=\"{}\"{more}}}", instance(i)),
        )
    };
    // healthy
    assert_eq!(q("rdptrace_probe_success", 0, ""), 1.0);
    assert_eq!(q("rdptrace_phase_ok", 0, ",phase=\"active\""), 1.0);
    assert_eq!(
        q("rdptrace_expectation_met", 0, ",expectation=\"active\""),
        1.0
    );
    assert_eq!(
        q(
            "rdptrace_security_protocol_info",
            0,
            ",protocol=\"PROTOCOL_HYBRID_EX\""
        ),
        1.0
    );
    assert_eq!(
        q("rdptrace_tls_version_info", 0, ",version=\"TLS 1.3\""),
        1.0
    );
    assert_eq!(q("rdptrace_cert_problem", 0, ",problem=\"expired\""), 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(q("rdptrace_cert_not_after_seconds", 0, "") > now + 86_400.0);
    assert!(q("rdptrace_probe_duration_seconds", 0, "") < 1.5);
    assert!(
        query(
            prom_addr,
            &format!("rdptrace_failure_info{{instance=\"{}\"}}", instance(0))
        )
        .is_empty()
    );
    // denied-connection: licensing, with the server's code and mstsc's pair.
    assert_eq!(q("rdptrace_probe_success", 1, ""), 0.0);
    assert_eq!(q("rdptrace_phase_ok", 1, ",phase=\"licensing\""), 0.0);
    assert_eq!(
        q(
            "rdptrace_failure_info",
            1,
            ",phase=\"licensing\",cause=\"server_error_info\",\
             error_info=\"ERRINFO_SERVER_DENIED_CONNECTION\",mstsc=\"0x904/0x7\""
        ),
        1.0
    );
    assert_eq!(
        q("rdptrace_expectation_met", 1, ",expectation=\"active\""),
        0.0
    );
    // cert-expired: connected, and the certificate says so.
    assert_eq!(q("rdptrace_probe_success", 2, ""), 1.0);
    assert_eq!(q("rdptrace_cert_problem", 2, ",problem=\"expired\""), 1.0);
    assert!(q("rdptrace_cert_not_after_seconds", 2, "") < now);
    // nla-logon-failure: NLA refused the logon.
    assert_eq!(q("rdptrace_probe_success", 3, ""), 0.0);
    assert_eq!(
        q(
            "rdptrace_failure_info",
            3,
            ",phase=\"credssp\",cause=\"credssp_error\""
        ),
        1.0
    );
    // The exporter's own metrics, scraped as any target.
    assert_eq!(value(prom_addr, "up{job=\"rdptrace_exporter\"}"), 1.0);
    assert!(value(prom_addr, "sum(rdptrace_exporter_probes_total)") >= 4.0);
    assert_eq!(
        value(
            prom_addr,
            "sum(rdptrace_exporter_requests_refused_total) or vector(0)"
        ),
        0.0
    );
    // The shipped alerting rules: the failing phase, and the certificate past its end.
    let alert = |name: &str, i: usize| {
        query(
            prom_addr,
            &format!(
                "ALERTS{{alertname=\"{name}\",instance=\"{}\"}}",
                instance(i)
            ),
        )
    };
    let phase_failing = alert("RdpPhaseFailing", 1);
    assert_eq!(phase_failing.len(), 1, "{phase_failing:?}");
    assert_eq!(phase_failing[0]["metric"]["phase"], "licensing");
    assert_eq!(alert("RdpCertificateExpiringSoon", 2).len(), 1);
    assert!(alert("RdpCertificateExpiringSoon", 0).is_empty());
    assert!(alert("RdpPhaseFailing", 0).is_empty());
    // Nothing the exporter wrote, at trace level, holds the password.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("probed"), "{logged}");
    assert!(
        !logged.contains(MARKER),
        "the password is in the exporter's log"
    );
}

/// What a probe answers, and what the exporter serves, never holds the password; a password in the URL
/// is refused; the text format passes `promtool check metrics`.
#[test]
fn the_password_stays_out_and_the_format_is_prometheus_s() {
    let dir = TempDir::new("exporter-password");
    let (_target, target) = serve("healthy");
    let (_exporter, exp, log) = exporter(dir.path(), &nla_module(dir.path(), ""), &[]);
    let probe = format!("/probe?target={target}&module=nla");
    let (status, metrics) = get(exp, &probe, &[]);
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("rdptrace_probe_success 1"), "{metrics}");
    let (status, debug) = get(exp, &format!("{probe}&debug=true"), &[]);
    assert_eq!(status, 200);
    assert!(
        debug.contains("verdict: connected") || debug.contains("active"),
        "{debug}"
    );
    let mut served = vec![metrics.clone(), debug];
    for path in ["/", "/metrics", "/results"] {
        let (status, body) = get(exp, path, &[]);
        assert_eq!(status, 200, "{path}: {body}");
        served.push(body);
    }
    assert!(served[2].contains("<td>nla</td>"), "{}", served[2]);
    assert!(
        served[4].contains("\"schema\":\"rdptrace/1\""),
        "{}",
        served[4]
    );
    // The last results are what `rdptrace report` reads: the two probes of the healthy target.
    let results = dir.path().join("results.jsonl");
    std::fs::write(&results, &served[4]).unwrap();
    let o = output(rdptrace().arg("report").arg(&results));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{summary}");
    assert!(
        summary.starts_with("summary: 2 targets, 2 passed"),
        "{summary}"
    );
    let (status, body) = get(exp, &format!("{probe}&password={MARKER}x"), &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("never taken from the URL"), "{body}");
    served.push(std::fs::read_to_string(&log).unwrap());
    for text in &served {
        assert!(!text.contains(MARKER), "the password leaked:\n{text}");
    }
    for (path, want) in [
        ("/probe?module=nla", "target is missing"),
        (
            "/probe?target=127.0.0.1:1&module=nope",
            "unknown module nope",
        ),
        (
            "/probe?target=10.1.2.3&module=nla",
            "may not probe 10.1.2.3:3389",
        ),
    ] {
        let (status, body) = get(exp, path, &[]);
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(want), "{path}: {body}");
    }
    if !prometheus_available() {
        return;
    }
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that accepts and never speaks, for as long as the returned listener lives.
fn silent_server() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// With every probe slot taken, a probe request is answered 503 at once; Prometheus's scrape timeout
/// (less the offset) ends a probe the module would let run longer.
#[test]
fn a_full_exporter_answers_at_once_and_the_scrape_timeout_bounds_a_probe() {
    let dir = TempDir::new("exporter-busy");
    let (_silent, silent) = silent_server();
    let config = "[modules.tls]\nsecurity = \"tls\"\ntimeout = 20\nphase-timeout = 20\n";
    let (_exporter, exp, _log) = exporter(dir.path(), config, &["--max-probes", "1"]);
    let probe = format!("/probe?target={silent}&module=tls");
    let first = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = get(
            exp,
            &probe,
            &[("X-Prometheus-Scrape-Timeout-Seconds", "2.5")],
        );
        (answer, started.elapsed())
    });
    // Wait until the first probe holds the slot.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let (_, own) = get(exp, "/metrics", &[]);
        if own.contains("rdptrace_exporter_probes_in_flight 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    let (status, body) = get(exp, &format!("/probe?target={silent}&module=tls"), &[]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let ((status, metrics), took) = first.join().unwrap();
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("rdptrace_probe_success 0"), "{metrics}");
    assert!(
        metrics.contains("cause=\"timed_out\""),
        "the probe should end on its deadline: {metrics}"
    );
    // 2.5 s less the 0.5 s offset: the answer comes well before the module's 20 s, and before 2.5 s.
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let (_, own) = get(exp, "/metrics", &[]);
    assert!(
        own.contains("rdptrace_exporter_requests_refused_total{reason=\"busy\"} 1"),
        "{own}"
    );
}

/// README.md's "Monitoring" section lists every metric of `/probe` with its labels, as the code names them.
#[test]
fn the_readme_documents_every_metric() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Monitoring")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a Monitoring section");
    for m in PROBE_METRICS {
        let written = if m.labels.is_empty() {
            format!("`{}`", m.name)
        } else {
            format!("`{}{{{}}}`", m.name, m.labels.join(","))
        };
        assert!(section.contains(&written), "README.md lacks {written}");
    }
    // And nothing there names a metric the exporter does not write.
    let names = regex::Regex::new(r"`(rdptrace_[a-z_]+)").unwrap();
    for c in names.captures_iter(section) {
        let name = &c[1];
        assert!(
            PROBE_METRICS.iter().any(|m| m.name == name) || name.starts_with("rdptrace_exporter_"),
            "README.md names {name}, which /probe does not write"
        );
    }
}
