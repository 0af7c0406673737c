use super::super::ndr::*;

pub(super) fn calls() -> Vec<Call> {
    vec![
        Call::CreateTunnel { caps: 0x1f },
        Call::AuthorizeTunnel {
            tunnel: [1; 20],
            machine: "probe-host".to_owned(),
        },
        Call::MakeTunnelCall {
            tunnel: [1; 20],
            proc_id: ASYNC_MSG_REQUEST,
        },
        Call::CreateChannel {
            tunnel: [1; 20],
            resources: vec!["127.0.0.1".to_owned()],
            port: 3389,
        },
        Call::CloseChannel { channel: [2; 20] },
        Call::CloseTunnel { tunnel: [1; 20] },
        Call::SetupReceivePipe { channel: [2; 20] },
        Call::SendToServer {
            channel: [2; 20],
            buffers: vec![vec![3, 0, 0, 19], vec![1; 15]],
        },
    ]
}

pub(super) fn replies() -> Vec<(u16, Reply)> {
    vec![
        (
            opnum::CREATE_TUNNEL,
            Reply::CreateTunnel {
                tunnel: [7; 20],
                tunnel_id: 3,
                caps: Some(0x1f),
                status: 0,
            },
        ),
        (
            opnum::AUTHORIZE_TUNNEL,
            Reply::AuthorizeTunnel {
                idle_timeout: Some(30),
                status: 0,
            },
        ),
        (
            opnum::AUTHORIZE_TUNNEL,
            Reply::AuthorizeTunnel {
                idle_timeout: None,
                status: 0x8007_59db,
            },
        ),
        (
            opnum::CREATE_CHANNEL,
            Reply::CreateChannel {
                channel: [8; 20],
                channel_id: 1,
                status: 0,
            },
        ),
        (
            opnum::CLOSE_CHANNEL,
            Reply::Closed {
                handle: [0; 20],
                status: 0,
            },
        ),
        (opnum::SEND_TO_SERVER, Reply::Status(0)),
    ]
}

#[test]
fn calls_and_replies_round_trip() {
    for call in calls() {
        let stub = call.encode();
        assert_eq!(
            Call::decode(call.opnum(), &stub).unwrap(),
            call,
            "{}",
            call.name()
        );
    }
    for (op, reply) in replies() {
        assert_eq!(
            Reply::decode(op, &reply.encode()).unwrap(),
            reply,
            "{}",
            method(op)
        );
    }
}

#[test]
fn the_stubs_have_the_layout_freerdp_reads() {
    // TsProxyAuthorizeTunnel's answer: at least 68 bytes, the size of the response data where 64 said.
    let stub = replies().remove(1).1.encode();
    assert!(stub.len() >= 68);
    assert_eq!(stub.get(64..68), Some(&4u32.to_le_bytes()[..]));
    // TsProxyCreateChannel's: the handle, the id, the HRESULT.
    assert_eq!(replies().remove(3).1.encode().len(), 28);
    // TsProxySendToServer's lengths are big-endian ([MS-TSGU] 2.2.9.3).
    let stub = calls().remove(7).encode();
    assert_eq!(stub.get(20..24), Some(&[0, 0, 0, 27][..]));
    assert_eq!(stub.get(24..28), Some(&[0, 0, 0, 2][..]));
}

#[test]
fn truncated_and_hostile_stubs_are_errors() {
    for call in calls() {
        let stub = call.encode();
        for cut in 0..stub.len() {
            // A stub cut in what the decoder skips may decode; never into something else.
            if let Ok(c) = Call::decode(call.opnum(), stub.get(..cut).unwrap()) {
                assert_eq!(c, call, "{cut}");
            }
        }
    }
    for (op, reply) in replies() {
        let stub = reply.encode();
        for cut in 0..4.min(stub.len()) {
            assert!(Reply::decode(op, stub.get(..cut).unwrap()).is_err());
        }
    }
    // Four buffers.
    let mut stub = vec![0; 20];
    stub.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4]);
    assert_eq!(
        Call::decode(opnum::SEND_TO_SERVER, &stub)
            .unwrap_err()
            .offset,
        24
    );
    // A buffer longer than the stub.
    let mut stub = vec![0; 20];
    stub.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    assert!(Call::decode(opnum::SEND_TO_SERVER, &stub).is_err());
    // A name longer than rdptrace reads.
    let mut stub = calls().remove(1).encode();
    let at = 20 + 32;
    stub[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    assert!(Call::decode(opnum::AUTHORIZE_TUNNEL, &stub).is_err());
    assert!(Call::decode(5, &[]).is_err());
}
