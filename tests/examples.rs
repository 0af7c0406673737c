//! The shipped examples are what they claim: the Prometheus configuration and alerting rules pass
//! `promtool` (with the rules' unit tests), the exporter modules parse, the Kubernetes manifests and the
//! GitHub Actions workflow validate against their schemas (kubernetes-validate's bundled Kubernetes
//! schemas, check-jsonschema's vendored github-workflows schema), and the workflow shards as documented.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path)
}

fn run_ok(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_prometheus_configuration_and_rules_pass_promtool() {
    if !require(
        has_program("promtool"),
        "promtool (Debian package prometheus)",
    ) {
        return;
    }
    run_ok(
        Command::new("promtool")
            .args(["check", "config"])
            .arg(example("monitoring/prometheus.yml")),
    );
    run_ok(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(example("monitoring/rdptrace-alerts.yml")),
    );
    // The rules' unit tests: the failing phase alerts after 5 minutes with its labels, the certificate
    // within 14 days alerts, one valid for a year does not.
    run_ok(
        Command::new("promtool")
            .args(["test", "rules"])
            .arg(example("monitoring/rdptrace-alerts.test.yml")),
    );
}

#[test]
fn the_exporter_modules_parse() {
    let text = std::fs::read_to_string(example("monitoring/rdptrace-exporter.toml")).unwrap();
    let env = |name: &str| (name == "RDP_MONITOR_PASSWORD").then(|| "x".to_owned());
    let config = rdptrace::exporter::config::Config::parse(&text, "example", &env).unwrap();
    let names: Vec<&String> = config.modules.keys().collect();
    assert_eq!(names, ["rdp_nla", "rdp_tls"]);
    assert!(config.modules["rdp_nla"].allows("rdp1.corp.example.com:3389"));
    // The module the Prometheus example scrapes is there.
    let prometheus = std::fs::read_to_string(example("monitoring/prometheus.yml")).unwrap();
    assert!(prometheus.contains("module: [rdp_nla]"));
}

#[test]
fn the_kubernetes_manifests_validate() {
    if !require(
        has_program("kubernetes-validate"),
        "kubernetes-validate (pip install kubernetes-validate)",
    ) {
        return;
    }
    run_ok(
        Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(example("kubernetes/rdptrace-fleet-job.yaml"))
            .arg(example("kubernetes/rdptrace-report-job.yaml")),
    );
    let job = std::fs::read_to_string(example("kubernetes/rdptrace-fleet-job.yaml")).unwrap();
    // The count rdptrace is given is the Job's.
    assert!(job.contains("completions: 4"));
    assert!(job.contains("completionMode: Indexed"));
    assert!(job.contains("name: RDPTRACE_SHARD_COUNT\n              value: \"4\""));
    assert!(job.contains("--shard auto"));
}

#[test]
fn the_github_workflow_validates() {
    if !require(
        has_program("check-jsonschema"),
        "check-jsonschema (pip install check-jsonschema)",
    ) {
        return;
    }
    run_ok(
        Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.github-workflows"])
            .arg(example("github/rdp-fleet.yml")),
    );
    let wf = std::fs::read_to_string(example("github/rdp-fleet.yml")).unwrap();
    assert!(wf.contains("RDPTRACE_SHARD_INDEX: ${{ strategy.job-index }}"));
    assert!(wf.contains("RDPTRACE_SHARD_COUNT: ${{ strategy.job-total }}"));
    assert!(wf.contains("--shard auto"));
    assert!(wf.contains("rdptrace report shard-*.jsonl"));
}
