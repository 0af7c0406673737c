//! Captures the probe recorded against the built-in target (`fixtures/`), with their TLS secrets embedded:
//! always-on replay tests that need nothing outside the repository.

use std::path::PathBuf;

use rdptrace::replay::{Options, replay};
use rdptrace::trace::{PhaseName, PhaseStatus};
use rdptrace::verdict::Cause;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn denied_connection_capture_replays_to_the_0x904_0x7_verdict() {
    let r = replay(&fixture("denied-connection.pcapng"), &Options::default()).expect("replay");
    assert_eq!(r.sessions.len(), 1);
    let s = &r.sessions[0];
    assert_eq!(s.verdict.phase, Some(PhaseName::Licensing));
    assert_eq!(s.verdict.cause, Cause::ServerErrorInfo);
    assert_eq!(s.verdict.error_info.as_ref().map(|c| c.code), Some(7));
    let mstsc = s.verdict.mstsc.as_ref().expect("mstsc pair");
    assert_eq!(
        (
            mstsc.disc_reason.code,
            mstsc.extended_code().unwrap_or(u32::MAX)
        ),
        (0x904, 0x7)
    );
    // Decrypted with the secrets in the file: the NLA exchange is visible.
    let credssp = s.trace.phase(PhaseName::Credssp);
    assert_eq!(credssp.status, PhaseStatus::Ok);
    assert!(
        credssp
            .pdus
            .iter()
            .filter(|p| p.name == "TSRequest")
            .count()
            >= 5
    );
}

#[test]
fn healthy_capture_replays_to_the_active_state() {
    let r = replay(&fixture("healthy.pcapng"), &Options::default()).expect("replay");
    assert_eq!(r.sessions.len(), 1);
    let s = &r.sessions[0];
    assert!(s.verdict.ok, "{}", s.verdict.detail);
    for phase in PhaseName::ALL {
        assert_eq!(s.trace.phase(phase).status, PhaseStatus::Ok, "{phase}");
    }
    // The password was withheld from the Client Info because the secrets were written.
    let info = s
        .trace
        .phase(PhaseName::SecureSettings)
        .pdus
        .iter()
        .find(|p| p.name == "Client Info")
        .expect("Client Info");
    assert!(
        !info.summary.contains("password present"),
        "{}",
        info.summary
    );
}
