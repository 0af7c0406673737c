//! The recorder on the records of real sessions: sizes as the built-in target and the probe exchanged them
//! (TLS 1.2, AES-256-GCM, HYBRID_EX with NTLM), cut, padded, renegotiated and replaced by another protocol.

use super::{Inference, Inner, Outcome, Recorder, ServerEnd};
use crate::trace::{PhaseName, Side};

const TLS12: u16 = 0x0303;
const TLS13: u16 = 0x0304;
/// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 ([RFC 5289] 3.2).
const ECDHE_RSA_AES_256_GCM: u16 = 0xc030;
/// TLS_AES_256_GCM_SHA384 ([RFC 8446] B.4).
const TLS13_AES_256_GCM: u16 = 0x1302;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

use Side::{Client as C, Server as S};

/// The application data records of a healthy session (fragment lengths, with the 24 bytes of GCM's explicit
/// nonce and tag): CredSSP with NTLM, the Early User Authorization Result, MCS, the Client Info, licensing,
/// capabilities, finalization, then the client's Disconnect Provider Ultimatum.
const HEALTHY: &[(Side, usize)] = &[
    (C, 81),
    (S, 129),
    (C, 368),
    (S, 119),
    (C, 165),
    (S, 28),
    (C, 415),
    (S, 134),
    (C, 36),
    (C, 32),
    (S, 35),
    (C, 295),
    (S, 58),
    (S, 319),
    (S, 80),
    (C, 536),
    (C, 60),
    (C, 64),
    (C, 64),
    (C, 64),
    (S, 60),
    (S, 64),
    (S, 64),
    (S, 64),
    (C, 33),
];

/// The recorder of a TLS 1.2 HYBRID_EX session, fed `records` one millisecond apart.
fn read(records: &[(Side, usize)]) -> Inference {
    let mut r = Recorder::new(Some(Inner::HybridEx), TLS12, ECDHE_RSA_AES_256_GCM)
        .expect("an AEAD suite has a known overhead");
    for (i, (from, len)) in records.iter().enumerate() {
        r.record(*from, i as f64, APPLICATION_DATA, *len);
    }
    r.conclude()
}

fn phases(i: &Inference) -> Vec<PhaseName> {
    i.phases()
}

#[test]
fn a_healthy_session_reaches_the_active_state_and_the_client_leaves() {
    let i = read(HEALTHY);
    let Outcome::Explained { readings } = &i.outcome else {
        panic!("{i:?}");
    };
    assert_eq!(phases(&i), [PhaseName::Active], "{readings:?}");
    assert!(
        readings
            .iter()
            .all(|r| r.client_ultimatum && r.server_end == ServerEnd::None)
    );
    assert_eq!(i.basis.records, HEALTHY.len() as u32);
    assert!(i.basis.exact);
}

#[test]
fn a_capture_cut_short_ends_where_the_records_do() {
    // Through the server's MCS Connect Response: MCS is under way, nothing past it is claimed.
    let i = read(&HEALTHY[..8]);
    let p = phases(&i);
    assert!(!p.is_empty(), "{i:?}");
    assert!(
        p.iter()
            .all(|p| matches!(p, PhaseName::McsConnect | PhaseName::ChannelJoin)),
        "{p:?}"
    );
    // Through the Early User Authorization Result only.
    let p = phases(&read(&HEALTHY[..6]));
    assert!(
        p.iter()
            .all(|p| matches!(p, PhaseName::EarlyUserAuth | PhaseName::McsConnect)),
        "{p:?}"
    );
}

#[test]
fn records_of_another_protocol_fit_no_reading() {
    // An HTTPS exchange on the port: a request, then a response in full-size records.
    let i = read(&[(C, 517), (S, 1400), (S, 1400), (S, 1400), (S, 377), (C, 90)]);
    assert!(matches!(i.outcome, Outcome::Unexplained { .. }), "{i:?}");
}

#[test]
fn renegotiation_is_counted_and_the_reading_goes_on() {
    let mut r = Recorder::new(Some(Inner::HybridEx), TLS12, ECDHE_RSA_AES_256_GCM)
        .expect("an AEAD suite has a known overhead");
    for (i, (from, len)) in HEALTHY.iter().enumerate() {
        if i == 20 {
            r.record(S, i as f64, HANDSHAKE, 40);
        }
        r.record(*from, i as f64, APPLICATION_DATA, *len);
    }
    let i = r.conclude();
    assert_eq!(i.basis.renegotiations, 1);
    assert_eq!(phases(&i), [PhaseName::Active], "{i:?}");
}

#[test]
fn tls13_padding_is_not_read_as_other_pdus() {
    // [RFC 8446] 5.4: records padded to a multiple of 256 bytes. The sizes say nothing any more; a reading
    // that reached the active state or a server report would be a false statement.
    let mut r = Recorder::new(Some(Inner::HybridEx), TLS13, TLS13_AES_256_GCM)
        .expect("a TLS 1.3 suite has a known overhead");
    // The client's Finished ends the handshake.
    r.record(C, 0.0, APPLICATION_DATA, 53);
    for (i, (from, len)) in HEALTHY.iter().enumerate() {
        let padded = (len - 24 + 1).div_ceil(256) * 256 + 16;
        r.record(*from, i as f64, APPLICATION_DATA, padded);
    }
    let i = r.conclude();
    match &i.outcome {
        Outcome::Unexplained { .. } => {}
        Outcome::Explained { readings } => assert!(
            readings
                .iter()
                .all(|r| r.phase != PhaseName::Active && r.server_end == ServerEnd::None),
            "{readings:?}"
        ),
        Outcome::Nothing => panic!("{i:?}"),
    }
}

#[test]
fn a_stop_right_after_the_clients_confirm_active_names_both_phases() {
    // Through the Client Confirm Active: the client could go on to its Synchronize by itself, so the end is
    // in capabilities (where a decrypted trace puts it) or at the start of finalization.
    let p = phases(&read(&HEALTHY[..16]));
    assert!(
        p.contains(&PhaseName::Capabilities) && p.contains(&PhaseName::Finalization),
        "{p:?}"
    );
}
