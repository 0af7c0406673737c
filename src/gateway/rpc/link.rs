//! The client's side of an RPC association to an RD Gateway once bound: the call ids, the verifiers of its
//! requests ([MS-RPCE] 3.3.1.5.2), and, once the channel is open ([MS-TSGU] 3.2.6.2), its bytes as
//! TsProxySendToServer requests and the target's as the fragments of the TsProxySetupReceivePipe answer,
//! with the OUT channel's flow control ([MS-RPCH] 3.2.2.5.5). No I/O: bytes in, events and bytes out.

use super::ndr::{Call, Handle};
use super::ntlm::BindAuth;
use super::pdu::{self, Auth, Body, NTLM_VERIFIER_LEN, Pdu, pfc};
use super::rts::{Cookie, FD_OUT_PROXY, Rts};
use crate::gateway::auth::AuthError;

/// [MS-RPCH] 3.2.2.5.5 the receive window the client announces for its OUT channel (CONN/A1).
pub const OUT_WINDOW: u32 = 0x1_0000;
/// The most bytes of one PDU in the making the link holds.
const MAX_PENDING: usize = 0x1_0000;

/// What the gateway's bytes said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes of the target, from the receive pipe.
    Data(Vec<u8>),
    /// The receive pipe ended with this HRESULT (its last fragment), or a fault with this status.
    End(u32),
    /// Something the trace keeps.
    Note(String),
    /// Bytes to send on the IN channel (a flow control acknowledgment).
    Send(Vec<u8>),
}

/// The association: its security context and counters, and the open channel.
pub struct Association {
    auth: BindAuth,
    next_call: u32,
    send_seq: u32,
    /// The sequence number of the gateway's next signed PDU, and whether a verifier failed already.
    recv_seq: u32,
    unverified: bool,
    /// The largest fragment the gateway takes (its bind_ack's max_recv_frag).
    max_frag: usize,
    /// The channel and the receive pipe's call, once opened.
    pub channel: Option<Handle>,
    pub pipe_call: Option<u32>,
    out_cookie: Cookie,
    buf: Vec<u8>,
    received: u32,
    acked: u32,
}

impl core::fmt::Debug for Association {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Association")
            .field("next_call", &self.next_call)
            .field("pipe_call", &self.pipe_call)
            .finish_non_exhaustive()
    }
}

impl Association {
    /// After rpc_auth_3: `first_call` is the next call id, `max_frag` the gateway's max_recv_frag,
    /// `out_cookie` the OUT channel's cookie (its flow control acknowledgments name it).
    pub fn new(auth: BindAuth, first_call: u32, max_frag: u16, out_cookie: Cookie) -> Association {
        Association {
            auth,
            next_call: first_call,
            send_seq: 0,
            recv_seq: 0,
            unverified: false,
            max_frag: usize::from(max_frag.max(256)),
            channel: None,
            pipe_call: None,
            out_cookie,
            buf: Vec::new(),
            received: 0,
            acked: 0,
        }
    }

    /// One signed request for `call`: its call id and its bytes.
    pub fn request(&mut self, call: &Call) -> Result<(u32, Vec<u8>), AuthError> {
        let call_id = self.next_call;
        self.next_call = self.next_call.wrapping_add(1);
        let stub = call.encode();
        let pdu = Pdu {
            flags: pfc::WHOLE,
            call_id,
            body: Body::Request {
                alloc_hint: u32::try_from(stub.len()).unwrap_or(0),
                context_id: 0,
                opnum: call.opnum(),
                stub,
            },
            auth: Some(Auth::ntlm(0, vec![0; NTLM_VERIFIER_LEN])),
        };
        let mut bytes = pdu.encode();
        let seq = self.send_seq;
        self.send_seq = self.send_seq.wrapping_add(1);
        self.auth.sign(&mut bytes, seq)?;
        Ok((call_id, bytes))
    }

    /// Checks the verifier of a signed PDU from the gateway ([MS-RPCE] 3.3.1.5.2.2); what failed, in words.
    pub fn verify(&mut self, bytes: &[u8]) -> Result<(), String> {
        let seq = self.recv_seq;
        self.recv_seq = self.recv_seq.wrapping_add(1);
        self.auth
            .verify(bytes, seq)
            .map_err(|e| format!("the gateway's verifier does not check: {e}"))
    }

    /// The client's bytes for the target, as TsProxySendToServer requests that fit the gateway's fragment.
    pub fn send_data(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let Some(channel) = self.channel else {
            return Ok(Vec::new());
        };
        // Header, request fields, handle, lengths, padding, trailer and verifier.
        let room = self
            .max_frag
            .saturating_sub(16 + 8 + 32 + 15 + 8 + 16)
            .max(64);
        let mut out = Vec::new();
        for part in data.chunks(room) {
            let call = Call::SendToServer {
                channel,
                buffers: vec![part.to_vec()],
            };
            out.extend_from_slice(&self.request(&call)?.1);
        }
        Ok(out)
    }

    /// [MS-TSGU] 3.2.6.3.1 TsProxyCloseChannel.
    pub fn close_channel(&mut self) -> Result<Vec<u8>, AuthError> {
        let Some(channel) = self.channel.take() else {
            return Ok(Vec::new());
        };
        Ok(self.request(&Call::CloseChannel { channel })?.1)
    }

    /// The gateway's OUT channel bytes while the channel is open.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        self.buf.extend_from_slice(bytes);
        // INVARIANT: each pass takes one whole PDU off a finite buffer, or stops.
        loop {
            let len = match pdu::pdu_len(&self.buf) {
                Ok(Some(len)) if self.buf.len() >= len => len,
                Ok(_) => break,
                Err(e) => {
                    events.push(Event::Note(format!("the OUT channel does not frame: {e}")));
                    events.push(Event::End(0));
                    self.buf.clear();
                    break;
                }
            };
            let whole: Vec<u8> = self.buf.drain(..len).collect();
            let decoded = Pdu::decode(&whole);
            if let Ok(Pdu {
                auth: Some(a),
                body: Body::Response { .. } | Body::Fault { .. },
                ..
            }) = &decoded
                && a.value.len() == NTLM_VERIFIER_LEN
                && let Err(why) = self.verify(&whole)
                && !self.unverified
            {
                // Said once: every later verifier of a broken sequence fails too.
                self.unverified = true;
                events.push(Event::Note(why));
            }
            match decoded {
                Ok(Pdu {
                    flags,
                    call_id,
                    body: Body::Response { stub, .. },
                    ..
                }) => {
                    // [MS-RPCH] 3.2.2.5.5 only RPC PDUs count against the window.
                    self.received = self.received.wrapping_add(u32::try_from(len).unwrap_or(0));
                    if Some(call_id) == self.pipe_call {
                        if flags & pfc::LAST_FRAG != 0 && stub.len() == 4 {
                            let mut status = [0u8; 4];
                            status.copy_from_slice(stub.get(..4).unwrap_or(&[0; 4]));
                            events.push(Event::End(u32::from_le_bytes(status)));
                        } else {
                            events.push(Event::Data(stub));
                        }
                    }
                }
                Ok(Pdu {
                    body: Body::Fault { status, .. },
                    ..
                }) => {
                    events.push(Event::Note(format!(
                        "a fault: {}",
                        crate::codes::Display(crate::codes::Table::Gateway, status)
                    )));
                    events.push(Event::End(status));
                }
                Ok(Pdu {
                    body: Body::Rts(_), ..
                }) => {}
                Ok(other) => events.push(Event::Note(format!(
                    "a {} in the open tunnel, ignored",
                    other.name()
                ))),
                Err(e) => {
                    events.push(Event::Note(format!("a PDU that does not decode: {e}")));
                }
            }
            if self.buf.len() > MAX_PENDING {
                events.push(Event::Note(
                    "a PDU longer than a fragment on the OUT channel".to_owned(),
                ));
                events.push(Event::End(0));
                self.buf.clear();
                break;
            }
        }
        if self.received.wrapping_sub(self.acked) >= OUT_WINDOW / 2 {
            let ack =
                Rts::flow_control_ack_to(FD_OUT_PROXY, self.received, OUT_WINDOW, self.out_cookie);
            events.push(Event::Send(Pdu::rts(ack).encode()));
            self.acked = self.received;
        }
        events
    }
}
