use super::super::pdu::*;
use super::super::rts::Rts;

pub(super) fn samples() -> Vec<Pdu> {
    vec![
        Pdu {
            flags: pfc::WHOLE | pfc::SUPPORT_HEADER_SIGN | pfc::CONC_MPX,
            call_id: 2,
            body: Body::Bind {
                max_xmit: 0x0ff8,
                max_recv: 0x0ff8,
                assoc_group: 0,
                contexts: vec![
                    Context {
                        id: 0,
                        abstract_syntax: TSGU_SYNTAX,
                        transfer: vec![NDR_SYNTAX],
                    },
                    Context {
                        id: 1,
                        abstract_syntax: TSGU_SYNTAX,
                        transfer: vec![BTFN_SYNTAX],
                    },
                ],
            },
            auth: Some(Auth::ntlm(0, vec![0x4e; 40])),
        },
        Pdu {
            flags: pfc::WHOLE,
            call_id: 2,
            body: Body::BindAck {
                max_xmit: 0x0ff8,
                max_recv: 0x0ff8,
                assoc_group: 0x1234,
                sec_addr: b"3388\0".to_vec(),
                results: vec![
                    BindResult {
                        result: 0,
                        reason: 0,
                        transfer: NDR_SYNTAX,
                    },
                    BindResult {
                        result: 3,
                        reason: 3,
                        transfer: SyntaxId {
                            uuid: [0; 16],
                            version: 0,
                        },
                    },
                ],
            },
            auth: Some(Auth::ntlm(0, vec![0x43; 200])),
        },
        Pdu {
            flags: pfc::WHOLE,
            call_id: 2,
            body: Body::BindNak { reason: 9 },
            auth: None,
        },
        Pdu {
            flags: pfc::WHOLE | pfc::CONC_MPX,
            call_id: 2,
            body: Body::Auth3 {
                max_xmit: 0x0ff8,
                max_recv: 0x0ff8,
            },
            auth: Some(Auth::ntlm(0, vec![0x41; 300])),
        },
        Pdu {
            flags: pfc::WHOLE,
            call_id: 3,
            body: Body::Request {
                alloc_hint: 5,
                context_id: 0,
                opnum: 9,
                stub: vec![1, 2, 3, 4, 5],
            },
            auth: Some(Auth::ntlm(0, vec![0; NTLM_VERIFIER_LEN])),
        },
        Pdu {
            flags: pfc::FIRST_FRAG,
            call_id: 7,
            body: Body::Response {
                alloc_hint: 16,
                context_id: 0,
                cancel_count: 0,
                stub: vec![9; 16],
            },
            auth: Some(Auth::ntlm(0, vec![7; NTLM_VERIFIER_LEN])),
        },
        Pdu {
            flags: pfc::WHOLE,
            call_id: 4,
            body: Body::Fault {
                context_id: 0,
                cancel_count: 0,
                status: 0x8007_59da,
            },
            auth: None,
        },
        Pdu::rts(Rts::conn_c2(0x10000, 120_000)),
    ]
}

#[test]
fn every_pdu_round_trips() {
    for pdu in samples() {
        let bytes = pdu.encode();
        assert_eq!(pdu_len(&bytes).unwrap(), Some(bytes.len()), "{pdu:?}");
        assert_eq!(Pdu::decode(&bytes).unwrap(), pdu, "{}", pdu.name());
    }
}

#[test]
fn the_sec_trailer_is_16_byte_aligned_and_the_verifier_is_last() {
    let pdu = samples().remove(4);
    let mut bytes = pdu.encode();
    let trailer_at = bytes.len() - NTLM_VERIFIER_LEN - TRAILER_LEN;
    assert_eq!(trailer_at % 16, 0);
    // 24-byte request header, 5-byte stub, 3 bytes of padding.
    assert_eq!(bytes.get(trailer_at + 2), Some(&3));
    let (signed, verifier) = verifier_split(&mut bytes, NTLM_VERIFIER_LEN).unwrap();
    assert_eq!(signed.len(), trailer_at + TRAILER_LEN);
    verifier.copy_from_slice(&[0xaa; 16]);
    match Pdu::decode(&bytes).unwrap().auth {
        Some(a) => assert_eq!(a.value, vec![0xaa; 16]),
        None => panic!("no auth"),
    }
}

#[test]
fn truncated_and_hostile_fragments_are_errors() {
    for pdu in samples() {
        let bytes = pdu.encode();
        for cut in 0..bytes.len() {
            assert!(
                Pdu::decode(bytes.get(..cut).unwrap()).is_err(),
                "{}",
                pdu.name()
            );
        }
    }
    let mut bytes = samples().remove(4).encode();
    // An auth_length longer than the fragment.
    bytes[10] = 0xff;
    bytes[11] = 0x0f;
    let e = Pdu::decode(&bytes).unwrap_err();
    assert_eq!(e.offset, 10);
    // Big-endian data representation.
    let mut bytes = samples().remove(6).encode();
    bytes[4] = 0x00;
    assert_eq!(Pdu::decode(&bytes).unwrap_err().offset, 4);
    // An unknown type.
    let mut bytes = samples().remove(6).encode();
    bytes[2] = 1;
    assert_eq!(Pdu::decode(&bytes).unwrap_err().offset, 2);
    // A frag_length shorter than a header.
    assert!(pdu_len(&[5, 0, 0, 3, 0x10, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]).is_err());
    assert_eq!(pdu_len(&[5, 0, 0]).unwrap(), None);
    // Too many contexts.
    let mut bind = samples().remove(0).encode();
    bind[24] = 200;
    // Refused where the count is, before any context is read (bounded allocation).
    assert_eq!(Pdu::decode(&bind).unwrap_err().offset, 24);
}
