use super::super::rts::*;
use crate::wire::Reader;

fn round_trip(rts: &Rts) -> Rts {
    let mut body = Vec::new();
    rts.encode_body(&mut body);
    Rts::decode_body(&mut Reader::new(&body)).unwrap()
}

#[test]
fn the_connection_pdus_round_trip_and_are_named() {
    let a1 = Rts::conn_a1([1; 16], [2; 16], 0x10000);
    assert_eq!(round_trip(&a1), a1);
    assert_eq!(a1.name(), "CONN/A1");
    let mut body = Vec::new();
    a1.encode_body(&mut body);
    // [MS-RPCH] 2.2.4.2: 76 bytes with the 16-byte common header.
    assert_eq!(body.len() + 16, 76);
    let b1 = Rts::conn_b1([1; 16], [3; 16], 0x4000_0000, 300_000, [4; 16]);
    assert_eq!(round_trip(&b1), b1);
    assert_eq!(b1.name(), "CONN/B1");
    let mut body = Vec::new();
    b1.encode_body(&mut body);
    assert_eq!(body.len() + 16, 104);
    assert_eq!(Rts::conn_a3(120_000).name(), "CONN/A3");
    let c2 = Rts::conn_c2(0x10000, 120_000);
    assert_eq!(round_trip(&c2), c2);
    assert_eq!(c2.receive_window(), Some(0x10000));
    let ack = Rts::flow_control_ack_to(FD_OUT_PROXY, 100, 200, [5; 16]);
    assert_eq!(round_trip(&ack), ack);
    assert_eq!(ack.name(), "FlowControlAckWithDestination");
    assert_eq!(
        Rts::flow_control_ack(1, 2, [0; 16]).name(),
        "FlowControlAck"
    );
    let other = Rts {
        flags: flags::OTHER_CMD,
        commands: vec![
            Command::Padding(3),
            Command::ClientAddress(vec![127, 0, 0, 1]),
            Command::Empty,
            Command::Ance,
            Command::NegativeAnce,
            Command::PingTrafficSentNotify(9),
        ],
    };
    assert_eq!(round_trip(&other), other);
}

#[test]
fn truncated_and_hostile_bodies_are_errors_with_offsets() {
    let mut body = Vec::new();
    Rts::conn_b1([1; 16], [3; 16], 1, 2, [4; 16]).encode_body(&mut body);
    for cut in 0..body.len() {
        assert!(Rts::decode_body(&mut Reader::new(body.get(..cut).unwrap())).is_err());
    }
    // An undefined command type.
    let hostile = [0, 0, 1, 0, 99, 0, 0, 0];
    let e = Rts::decode_body(&mut Reader::with_base(&hostile, 16)).unwrap_err();
    assert_eq!(e.offset, 20);
    // A command count no PDU has.
    let hostile = [0, 0, 0xff, 0xff, 0, 0, 0, 0];
    // Refused where the count is, before any command is read (bounded allocation).
    assert_eq!(
        Rts::decode_body(&mut Reader::new(&hostile))
            .unwrap_err()
            .offset,
        2
    );
    // Padding longer than the PDU.
    let hostile = [0, 0, 1, 0, 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    assert!(Rts::decode_body(&mut Reader::new(&hostile)).is_err());
}
