//! The codec's unit tests: decode(encode(x)) == x, truncated and hostile input, the layouts peers read.

mod ndr;
mod pdu;
mod rts;

use super::link::Association;
use super::ndr::{Call, Reply, opnum};
use super::ntlm::BindAuth;
use super::pdu::Pdu;
use crate::gateway::GatewayCredentials;

/// Bytes flipped at random in valid PDUs and stubs, and random bytes: the decoders and the open tunnel's
/// reader return errors or events, never panic, and hold what they are given at most.
#[test]
fn hostile_bytes_never_panic() {
    let pdus: Vec<Vec<u8>> = pdu::samples().iter().map(Pdu::encode).collect();
    let stubs: Vec<(u16, Vec<u8>)> = ndr::calls()
        .iter()
        .map(|c| (c.opnum(), c.encode()))
        .chain(ndr::replies().iter().map(|(op, r)| (*op, r.encode())))
        .collect();
    let credentials = GatewayCredentials {
        user: "u".to_owned(),
        domain: None,
        password: crate::probe::Password::new("p".to_owned()),
    };
    let auth = BindAuth::new(&credentials, "ws", "gw").unwrap();
    let mut link = Association::new(auth, 2, 0x0ff8, [0; 16]);
    link.pipe_call = Some(7);
    for round in 0..4000u32 {
        let mut bytes = pdus[round as usize % pdus.len()].clone();
        for _ in 0..1 + round % 4 {
            let at = rand::random::<u32>() as usize % bytes.len();
            bytes[at] = rand::random();
        }
        let _ = Pdu::decode(&bytes);
        let _ = super::pdu::pdu_len(&bytes);
        let _ = link.feed(&bytes);
        let (op, stub) = &stubs[round as usize % stubs.len()];
        let mut stub = stub.clone();
        if !stub.is_empty() {
            let at = rand::random::<u32>() as usize % stub.len();
            stub[at] = rand::random();
        }
        let _ = Call::decode(*op, &stub);
        let _ = Reply::decode(*op, &stub);
        let noise: Vec<u8> = (0..round % 64).map(|_| rand::random()).collect();
        let _ = Pdu::decode(&noise);
        let _ = Call::decode(opnum::SEND_TO_SERVER, &noise);
        let _ = Reply::decode(opnum::CREATE_TUNNEL, &noise);
    }
}
