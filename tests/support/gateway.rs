//! The RD Gateway tests' helpers (`tests/gateway.rs`, `tests/gateway_rpc.rs`): xfreerdp 2.11 run as a
//! gateway client, `rdptrace serve` with its gateway, the replay's JSON.

use std::path::Path;
use std::process::{Command, Stdio};

use std::net::SocketAddr;

use rdptrace::serve::Served;
use rdptrace::serve::deployment::Deployment;
use rdptrace::serve::gateway::{Gateway, GatewayOutcome};
use rdptrace::trace::Trace;
use tokio::sync::{mpsc, oneshot};

use super::{BOUND, ChildGuard, has_program, rdptrace, require, serve_port};

/// Whether xfreerdp can run here (skipped, or a failure under CI, when not).
pub fn xfreerdp_available() -> bool {
    require(has_program("xfreerdp"), "xfreerdp (freerdp2-x11)")
        && require(has_program("Xvfb"), "Xvfb (xvfb)")
}

/// Runs xfreerdp on a display of its own ([`super::peers::on_xvfb`]) with `args`, bounded; its exit code
/// (`None` when it had to be killed) and its output.
pub fn xfreerdp(home: &Path, args: &[String]) -> (Option<i32>, String) {
    let out_path = home.join("xfreerdp.out");
    let out = std::fs::File::create(&out_path).expect("an output file");
    let err = out.try_clone().expect("the output file twice");
    let code = super::peers::on_xvfb(
        Command::new("xfreerdp")
            .args(args)
            .arg("/log-level:INFO")
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )
    .and_then(|s| s.code());
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    (code, output)
}

/// `rdptrace serve --scenario NAME --gateway 127.0.0.1:0` with the test password `password` (from a file):
/// the target's port, the gateway's URL, the server.
pub fn serve_with_gateway(name: &str, dir: &Path, password: &str) -> (u16, String, ChildGuard) {
    let file = dir.join("serve-password");
    std::fs::write(&file, format!("{password}\n")).expect("the password file");
    let mut server = rdptrace()
        .args(["serve", "--scenario", name, "--listen", "127.0.0.1:0"])
        .args(["--gateway", "127.0.0.1:0", "--password-file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rdptrace serve starts");
    let stdout = server.stdout.take().expect("piped stdout");
    let guard = ChildGuard(server);
    let (port, _, mut lines) = serve_port(stdout);
    let url = lines
        .by_ref()
        .take(3)
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("gateway on ")
                .and_then(|rest| rest.split_once(": "))
                .map(|(url, _)| url.to_owned())
        })
        .expect("rdptrace serve says where the gateway is");
    // The rest of what the server says, read so that it can say it.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (port, url, guard)
}

/// `rdptrace replay --json FILE` with `extra`: one document per session, and stderr.
pub fn replay_json(pcap: &Path, extra: &[&str]) -> (Vec<serde_json::Value>, String) {
    let out = rdptrace()
        .args(["replay", "--json"])
        .args(extra)
        .arg(pcap)
        .output()
        .expect("rdptrace replay runs");
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    (docs, String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn phase<'d>(doc: &'d serde_json::Value, name: &str) -> &'d serde_json::Value {
    doc["phases"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// The verdict's words, for failure messages.
pub fn said(trace: &Trace) -> String {
    let v = rdptrace::diagnose::diagnose(trace);
    format!("{} in {:?}: {}", v.cause.as_str(), v.phase, v.detail)
}

/// A server running on a task until it is stopped.
pub struct Stoppable {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stoppable {
    /// Stops the server and waits for its task (at most [`BOUND`]).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(BOUND, &mut self.task).await;
    }
}

/// Runs `deployment` until stopped, or [`BOUND`] at the most: its sessions to `served`, its gateway's
/// connections to `gateway`.
pub fn run_deployment(
    deployment: Deployment,
    served: Option<mpsc::UnboundedSender<Served>>,
    gateway: Option<mpsc::UnboundedSender<(SocketAddr, GatewayOutcome)>>,
) -> Stoppable {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let limited = async {
            tokio::select! {
                _ = stopped => {}
                () = tokio::time::sleep(BOUND) => {}
            }
        };
        let _ = deployment.run(limited, served, gateway).await;
    });
    Stoppable {
        stop: Some(stop),
        task,
    }
}

/// Runs the standalone gateway `gw` until stopped: its connections to `sink`.
pub fn run_gateway(
    gw: &Gateway,
    sink: Option<mpsc::UnboundedSender<(SocketAddr, GatewayOutcome)>>,
) -> Stoppable {
    let (stop, stopped) = oneshot::channel::<()>();
    let g = gw.clone();
    let task = tokio::spawn(async move {
        let _ = g
            .run(
                async {
                    let _ = stopped.await;
                },
                sink,
            )
            .await;
    });
    Stoppable {
        stop: Some(stop),
        task,
    }
}
