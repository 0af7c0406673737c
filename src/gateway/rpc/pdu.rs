//! [C706] 12.6 and [MS-RPCE] 2.2.2 the connection-oriented DCE/RPC PDUs RPC over HTTP carries: bind,
//! bind_ack, bind_nak, rpc_auth_3, request, response, fault and RTS ([MS-RPCH] 2.2.3.6.1), with the
//! sec_trailer ([MS-RPCE] 2.2.2.11) and its padding. Encoded and decoded without I/O; a signed PDU's
//! verifier is filled by its caller ([`verifier_split`]), who holds the security context.

use super::rts::Rts;
use crate::wire::{Reader, WireError, WireResult};

/// [C706] 12.6.3.1 the common header.
pub const HEADER_LEN: usize = 16;
/// [MS-RPCE] 2.2.2.11 the sec_trailer before the auth value.
pub const TRAILER_LEN: usize = 8;
/// The longest auth value rdptrace reads (NTLM's AUTHENTICATE stays far below it).
pub const MAX_AUTH: usize = 8 * 1024;
/// The most presentation contexts, transfer syntaxes or results rdptrace reads in one bind or bind_ack.
pub const MAX_CONTEXTS: usize = 16;

/// [C706] 12.6.4 PTYPE.
pub mod ptype {
    pub const REQUEST: u8 = 0;
    pub const RESPONSE: u8 = 2;
    pub const FAULT: u8 = 3;
    pub const BIND: u8 = 11;
    pub const BIND_ACK: u8 = 12;
    pub const BIND_NAK: u8 = 13;
    /// [MS-RPCE] 2.2.2.10.
    pub const RPC_AUTH_3: u8 = 16;
    /// [MS-RPCH] 2.2.3.6.1.
    pub const RTS: u8 = 20;
}

/// [C706] 12.6.3.1 pfc_flags.
pub mod pfc {
    pub const FIRST_FRAG: u8 = 0x01;
    pub const LAST_FRAG: u8 = 0x02;
    /// PFC_PENDING_CANCEL outside binds; [MS-RPCE] 2.2.2.3 PFC_SUPPORT_HEADER_SIGN in them.
    pub const SUPPORT_HEADER_SIGN: u8 = 0x04;
    pub const CONC_MPX: u8 = 0x10;
    pub const WHOLE: u8 = FIRST_FRAG | LAST_FRAG;
}

/// [MS-RPCE] 2.2.1.1.7 RPC_C_AUTHN_WINNT: NTLM.
pub const AUTH_TYPE_WINNT: u8 = 10;
/// [MS-RPCE] 2.2.1.1.8 RPC_C_AUTHN_LEVEL_PKT_INTEGRITY.
pub const AUTH_LEVEL_PKT_INTEGRITY: u8 = 5;
/// An NTLM signature ([MS-NLMP] 2.2.2.9).
pub const NTLM_VERIFIER_LEN: usize = 16;

/// [C706] 12.6.3.1 a presentation syntax: a UUID (as on the wire) and its version (major, then minor, in
/// one little-endian u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxId {
    pub uuid: [u8; 16],
    pub version: u32,
}

/// [MS-TSGU] 3.2.1, Appendix A: the TsProxy interface, 44e265dd-7daf-42cd-8560-3cdb6e7a2729 version 1.3.
pub const TSGU_SYNTAX: SyntaxId = SyntaxId {
    uuid: [
        0xdd, 0x65, 0xe2, 0x44, 0xaf, 0x7d, 0xcd, 0x42, 0x85, 0x60, 0x3c, 0xdb, 0x6e, 0x7a, 0x27,
        0x29,
    ],
    version: 0x0003_0001,
};
/// [C706] 14 NDR, 8a885d04-1ceb-11c9-9fe8-08002b104860 version 2.
pub const NDR_SYNTAX: SyntaxId = SyntaxId {
    uuid: [
        0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48,
        0x60,
    ],
    version: 2,
};
/// [MS-RPCE] 3.3.1.5.3 bind time feature negotiation, 6cb71c2c-9812-4540-0300-000000000000 version 1.
pub const BTFN_SYNTAX: SyntaxId = SyntaxId {
    uuid: [
        0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00,
    ],
    version: 1,
};

/// [C706] 12.6.3.1 p_cont_elem_t.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub id: u16,
    pub abstract_syntax: SyntaxId,
    pub transfer: Vec<SyntaxId>,
}

/// [C706] 12.6.3.1 p_result_t: 0 acceptance, 1 user rejection, 2 provider rejection, 3 negotiate_ack
/// ([MS-RPCE] 2.2.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindResult {
    pub result: u16,
    pub reason: u16,
    pub transfer: SyntaxId,
}

/// [MS-RPCE] 2.2.2.11 sec_trailer and the auth value after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub auth_type: u8,
    pub level: u8,
    pub context_id: u32,
    pub value: Vec<u8>,
}

impl Auth {
    /// NTLM at packet integrity, as FreeRDP and mstsc bind to an RD Gateway.
    pub fn ntlm(context_id: u32, value: Vec<u8>) -> Auth {
        Auth {
            auth_type: AUTH_TYPE_WINNT,
            level: AUTH_LEVEL_PKT_INTEGRITY,
            context_id,
            value,
        }
    }
}

/// What follows the common header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// [C706] 12.6.4.3 bind.
    Bind {
        max_xmit: u16,
        max_recv: u16,
        assoc_group: u32,
        contexts: Vec<Context>,
    },
    /// [C706] 12.6.4.4 bind_ack; `sec_addr` is the secondary address with its NUL, as sent.
    BindAck {
        max_xmit: u16,
        max_recv: u16,
        assoc_group: u32,
        sec_addr: Vec<u8>,
        results: Vec<BindResult>,
    },
    /// [C706] 12.6.4.5 bind_nak: the provider's reason.
    BindNak { reason: u16 },
    /// [MS-RPCE] 2.2.2.10 rpc_auth_3: four bytes before the sec_trailer (FreeRDP and Windows put the
    /// fragment sizes there).
    Auth3 { max_xmit: u16, max_recv: u16 },
    /// [C706] 12.6.4.9 request.
    Request {
        alloc_hint: u32,
        context_id: u16,
        opnum: u16,
        stub: Vec<u8>,
    },
    /// [C706] 12.6.4.10 response.
    Response {
        alloc_hint: u32,
        context_id: u16,
        cancel_count: u8,
        stub: Vec<u8>,
    },
    /// [C706] 12.6.4.7 fault: the status (an nca_s code or, from a gateway, an HRESULT).
    Fault {
        context_id: u16,
        cancel_count: u8,
        status: u32,
    },
    /// [MS-RPCH] 2.2.3.6.1 RTS.
    Rts(Rts),
}

/// One connection-oriented PDU (one fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub flags: u8,
    pub call_id: u32,
    pub body: Body,
    pub auth: Option<Auth>,
}

/// How long the fragment at the start of `buf` is: `Ok(None)` until its header is there.
pub fn pdu_len(buf: &[u8]) -> WireResult<Option<usize>> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut r = Reader::new(buf);
    if r.u8("rpc_vers")? != 5 {
        return Err(WireError {
            offset: 0,
            what: "an rpc_vers other than 5 (connection-oriented DCE/RPC)",
        });
    }
    r.skip(7, "rpc_vers_minor, PTYPE, pfc_flags, packed_drep")?;
    let len = usize::from(r.u16_le("frag_length")?);
    if len < HEADER_LEN {
        return Err(WireError {
            offset: 8,
            what: "a frag_length shorter than the common header",
        });
    }
    Ok(Some(len))
}

/// The signed part and the verifier of an encoded PDU whose auth value is its last `auth_len` bytes
/// ([MS-RPCE] 2.2.2.9: the signature covers the PDU up to the auth value); `None` when it is shorter.
pub fn verifier_split(bytes: &mut [u8], auth_len: usize) -> Option<(&mut [u8], &mut [u8])> {
    let at = bytes.len().checked_sub(auth_len)?;
    Some(bytes.split_at_mut(at))
}

fn put_syntax(out: &mut Vec<u8>, s: &SyntaxId) {
    out.extend_from_slice(&s.uuid);
    out.extend_from_slice(&s.version.to_le_bytes());
}

fn syntax(r: &mut Reader<'_>) -> WireResult<SyntaxId> {
    Ok(SyntaxId {
        uuid: r.array("syntax uuid")?,
        version: r.u32_le("syntax version")?,
    })
}

fn count(r: &mut Reader<'_>, what: &'static str) -> WireResult<usize> {
    let at = r.offset();
    let n = usize::from(r.u8(what)?);
    if n > MAX_CONTEXTS {
        return Err(WireError {
            offset: at,
            what: "more presentation contexts than rdptrace reads",
        });
    }
    Ok(n)
}

impl Pdu {
    pub fn ptype(&self) -> u8 {
        match &self.body {
            Body::Bind { .. } => ptype::BIND,
            Body::BindAck { .. } => ptype::BIND_ACK,
            Body::BindNak { .. } => ptype::BIND_NAK,
            Body::Auth3 { .. } => ptype::RPC_AUTH_3,
            Body::Request { .. } => ptype::REQUEST,
            Body::Response { .. } => ptype::RESPONSE,
            Body::Fault { .. } => ptype::FAULT,
            Body::Rts(_) => ptype::RTS,
        }
    }

    /// The PDU type's name ([C706] 12.6.4, the RTS PDU's own name for RTS).
    pub fn name(&self) -> &'static str {
        match &self.body {
            Body::Bind { .. } => "bind",
            Body::BindAck { .. } => "bind_ack",
            Body::BindNak { .. } => "bind_nak",
            Body::Auth3 { .. } => "rpc_auth_3",
            Body::Request { .. } => "request",
            Body::Response { .. } => "response",
            Body::Fault { .. } => "fault",
            Body::Rts(rts) => rts.name(),
        }
    }

    /// An RTS PDU ([MS-RPCH] 2.2.3.6.1: both fragment flags, call id 0).
    pub fn rts(rts: Rts) -> Pdu {
        Pdu {
            flags: pfc::WHOLE,
            call_id: 0,
            body: Body::Rts(rts),
            auth: None,
        }
    }

    /// The body's bytes, before any auth padding.
    fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.body {
            Body::Bind {
                max_xmit,
                max_recv,
                assoc_group,
                contexts,
            } => {
                out.extend_from_slice(&max_xmit.to_le_bytes());
                out.extend_from_slice(&max_recv.to_le_bytes());
                out.extend_from_slice(&assoc_group.to_le_bytes());
                out.push(u8::try_from(contexts.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(&[0, 0, 0]);
                for c in contexts {
                    out.extend_from_slice(&c.id.to_le_bytes());
                    out.push(u8::try_from(c.transfer.len()).unwrap_or(u8::MAX));
                    out.push(0);
                    put_syntax(&mut out, &c.abstract_syntax);
                    for t in &c.transfer {
                        put_syntax(&mut out, t);
                    }
                }
            }
            Body::BindAck {
                max_xmit,
                max_recv,
                assoc_group,
                sec_addr,
                results,
            } => {
                out.extend_from_slice(&max_xmit.to_le_bytes());
                out.extend_from_slice(&max_recv.to_le_bytes());
                out.extend_from_slice(&assoc_group.to_le_bytes());
                let len = u16::try_from(sec_addr.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(sec_addr);
                // [C706] 12.6.4.4 the result list is 4-byte aligned in the PDU.
                while !(HEADER_LEN + out.len()).is_multiple_of(4) {
                    out.push(0);
                }
                out.push(u8::try_from(results.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(&[0, 0, 0]);
                for r in results {
                    out.extend_from_slice(&r.result.to_le_bytes());
                    out.extend_from_slice(&r.reason.to_le_bytes());
                    put_syntax(&mut out, &r.transfer);
                }
            }
            Body::BindNak { reason } => {
                out.extend_from_slice(&reason.to_le_bytes());
                // p_rt_versions_supported_t: one version, 5.0.
                out.extend_from_slice(&[1, 5, 0]);
            }
            Body::Auth3 { max_xmit, max_recv } => {
                out.extend_from_slice(&max_xmit.to_le_bytes());
                out.extend_from_slice(&max_recv.to_le_bytes());
            }
            Body::Request {
                alloc_hint,
                context_id,
                opnum,
                stub,
            } => {
                out.extend_from_slice(&alloc_hint.to_le_bytes());
                out.extend_from_slice(&context_id.to_le_bytes());
                out.extend_from_slice(&opnum.to_le_bytes());
                out.extend_from_slice(stub);
            }
            Body::Response {
                alloc_hint,
                context_id,
                cancel_count,
                stub,
            } => {
                out.extend_from_slice(&alloc_hint.to_le_bytes());
                out.extend_from_slice(&context_id.to_le_bytes());
                out.push(*cancel_count);
                out.push(0);
                out.extend_from_slice(stub);
            }
            Body::Fault {
                context_id,
                cancel_count,
                status,
            } => {
                out.extend_from_slice(&0u32.to_le_bytes());
                out.extend_from_slice(&context_id.to_le_bytes());
                out.push(*cancel_count);
                out.push(0);
                out.extend_from_slice(&status.to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes());
            }
            Body::Rts(rts) => rts.encode_body(&mut out),
        }
        out
    }

    /// The fragment's bytes. With an auth value, the body is padded so that the sec_trailer starts on a
    /// 16-byte boundary of the PDU ([MS-RPCE] 2.2.2.11); a verifier to be signed is encoded as zeros and
    /// filled through [`verifier_split`].
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.body_bytes();
        let mut pad = 0usize;
        if self.auth.is_some() {
            while !(HEADER_LEN + body.len()).is_multiple_of(16) {
                body.push(0);
                pad += 1;
            }
        }
        let auth_len = self.auth.as_ref().map_or(0, |a| a.value.len());
        let trailer = if self.auth.is_some() { TRAILER_LEN } else { 0 };
        let frag = HEADER_LEN + body.len() + trailer + auth_len;
        let mut out = Vec::with_capacity(frag);
        out.extend_from_slice(&[5, 0, self.ptype(), self.flags, 0x10, 0, 0, 0]);
        out.extend_from_slice(&u16::try_from(frag).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(&u16::try_from(auth_len).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(&self.call_id.to_le_bytes());
        out.extend_from_slice(&body);
        if let Some(a) = &self.auth {
            out.push(a.auth_type);
            out.push(a.level);
            out.push(u8::try_from(pad).unwrap_or(u8::MAX));
            out.push(0);
            out.extend_from_slice(&a.context_id.to_le_bytes());
            out.extend_from_slice(&a.value);
        }
        out
    }

    /// One whole fragment: its length is its frag_length.
    pub fn decode(bytes: &[u8]) -> WireResult<Pdu> {
        let mut r = Reader::new(bytes);
        if r.u8("rpc_vers")? != 5 || r.u8("rpc_vers_minor")? != 0 {
            return Err(WireError {
                offset: 0,
                what: "a DCE/RPC version other than 5.0",
            });
        }
        let kind = r.u8("PTYPE")?;
        let flags = r.u8("pfc_flags")?;
        let drep = r.array::<4>("packed_drep")?;
        if drep.first().is_none_or(|d| d & 0xf0 != 0x10) {
            return Err(WireError {
                offset: 4,
                what: "a big-endian data representation, which rdptrace does not read",
            });
        }
        let frag = usize::from(r.u16_le("frag_length")?);
        if frag != bytes.len() {
            return Err(WireError {
                offset: 8,
                what: "a frag_length other than the fragment's length",
            });
        }
        let auth_len = usize::from(r.u16_le("auth_length")?);
        let call_id = r.u32_le("call_id")?;
        if auth_len > MAX_AUTH {
            return Err(WireError {
                offset: 10,
                what: "an auth value longer than rdptrace reads",
            });
        }
        // Where the body ends: at the sec_trailer's padding when there is an auth value.
        let (body_end, auth) = if auth_len > 0 {
            let trailer_at = frag
                .checked_sub(auth_len + TRAILER_LEN)
                .filter(|t| *t >= HEADER_LEN)
                .ok_or(WireError {
                    offset: 10,
                    what: "an auth_length longer than the fragment",
                })?;
            let tail = bytes.get(trailer_at..).unwrap_or_default();
            let mut t = Reader::with_base(tail, trailer_at);
            let auth_type = t.u8("auth_type")?;
            let level = t.u8("auth_level")?;
            let pad = usize::from(t.u8("auth_pad_length")?);
            t.skip(1, "auth_reserved")?;
            let context_id = t.u32_le("auth_context_id")?;
            let value = t.bytes(auth_len, "auth_value")?.to_vec();
            let end = trailer_at
                .checked_sub(pad)
                .filter(|e| *e >= HEADER_LEN)
                .ok_or(WireError {
                    offset: trailer_at + 2,
                    what: "an auth_pad_length longer than the body",
                })?;
            (
                end,
                Some(Auth {
                    auth_type,
                    level,
                    context_id,
                    value,
                }),
            )
        } else {
            (frag, None)
        };
        let region = bytes.get(HEADER_LEN..body_end).unwrap_or_default();
        let mut b = Reader::with_base(region, HEADER_LEN);
        let body = match kind {
            ptype::BIND => {
                let max_xmit = b.u16_le("max_xmit_frag")?;
                let max_recv = b.u16_le("max_recv_frag")?;
                let assoc_group = b.u32_le("assoc_group_id")?;
                let n = count(&mut b, "n_context_elem")?;
                b.skip(3, "reserved")?;
                let mut contexts = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = b.u16_le("p_cont_id")?;
                    let nt = count(&mut b, "n_transfer_syn")?;
                    b.skip(1, "reserved")?;
                    let abstract_syntax = syntax(&mut b)?;
                    let mut transfer = Vec::with_capacity(nt);
                    for _ in 0..nt {
                        transfer.push(syntax(&mut b)?);
                    }
                    contexts.push(Context {
                        id,
                        abstract_syntax,
                        transfer,
                    });
                }
                Body::Bind {
                    max_xmit,
                    max_recv,
                    assoc_group,
                    contexts,
                }
            }
            ptype::BIND_ACK => {
                let max_xmit = b.u16_le("max_xmit_frag")?;
                let max_recv = b.u16_le("max_recv_frag")?;
                let assoc_group = b.u32_le("assoc_group_id")?;
                let len = usize::from(b.u16_le("sec_addr length")?);
                let sec_addr = b.bytes(len, "sec_addr")?.to_vec();
                while !b.offset().is_multiple_of(4) {
                    b.skip(1, "alignment")?;
                }
                let n = count(&mut b, "n_results")?;
                b.skip(3, "reserved")?;
                let mut results = Vec::with_capacity(n);
                for _ in 0..n {
                    results.push(BindResult {
                        result: b.u16_le("result")?,
                        reason: b.u16_le("reason")?,
                        transfer: syntax(&mut b)?,
                    });
                }
                Body::BindAck {
                    max_xmit,
                    max_recv,
                    assoc_group,
                    sec_addr,
                    results,
                }
            }
            ptype::BIND_NAK => Body::BindNak {
                reason: b.u16_le("provider_reject_reason")?,
            },
            ptype::RPC_AUTH_3 => Body::Auth3 {
                max_xmit: b.u16_le("max_xmit_frag")?,
                max_recv: b.u16_le("max_recv_frag")?,
            },
            ptype::REQUEST => {
                let alloc_hint = b.u32_le("alloc_hint")?;
                let context_id = b.u16_le("p_cont_id")?;
                let opnum = b.u16_le("opnum")?;
                Body::Request {
                    alloc_hint,
                    context_id,
                    opnum,
                    stub: b.rest().to_vec(),
                }
            }
            ptype::RESPONSE => {
                let alloc_hint = b.u32_le("alloc_hint")?;
                let context_id = b.u16_le("p_cont_id")?;
                let cancel_count = b.u8("cancel_count")?;
                b.skip(1, "reserved")?;
                Body::Response {
                    alloc_hint,
                    context_id,
                    cancel_count,
                    stub: b.rest().to_vec(),
                }
            }
            ptype::FAULT => {
                b.skip(4, "alloc_hint")?;
                let context_id = b.u16_le("p_cont_id")?;
                let cancel_count = b.u8("cancel_count")?;
                b.skip(1, "reserved")?;
                Body::Fault {
                    context_id,
                    cancel_count,
                    status: b.u32_le("status")?,
                }
            }
            ptype::RTS => Body::Rts(Rts::decode_body(&mut b)?),
            _ => {
                return Err(WireError {
                    offset: 2,
                    what: "a PTYPE an RD Gateway's RPC does not use",
                });
            }
        };
        Ok(Pdu {
            flags,
            call_id,
            body,
            auth,
        })
    }
}
