//! The passive dissector: the bytes of each direction in, a [`Trace`] out. No I/O.
//!
//! The same code explains what the live probe saw (it feeds the socket bytes and the TLS plaintext) and what
//! a capture holds (the replay feeds reassembled TCP payload, and TLS plaintext when it can decrypt).
//!
//! Layers, per direction:
//! - the outer stream: TPKT / fast-path frames before TLS and under Standard RDP Security, TLS records after
//!   a Connection Confirm that selected TLS or CredSSP;
//! - the inner stream (TLS plaintext): CredSSP TSRequests, the Early User Authorization Result, then TPKT /
//!   fast-path frames.
//!
//! One module per phase decodes that phase's PDUs. Around them:
//! - [`streams`] frames both streams of each direction (through [`crate::wire::frame`]);
//! - [`records`] is the TLS record layer: every record, opened by the [`TlsRecordSink`] or counted opaque;
//! - [`routing`] decides which phase module a TPKT, MCS or channel PDU goes to;
//! - this module holds the dissector's state, its inputs (data, closes, gaps, deadlines) and what it records.

// Bytes from the wire and from files: no panics (see ARCHITECTURE.md, Rules).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::unchecked_time_subtraction
)]

pub mod active;
pub mod capabilities;
pub mod channel_join;
pub mod credssp;
pub mod early_user_auth;
pub mod finalization;
mod inference;
pub mod licensing;
pub mod mcs_connect;
mod records;
mod routing;
pub mod secure_settings;
mod streams;
pub mod tls;
pub mod x224;

use ironrdp_pdu::nego::SecurityProtocol;

use self::streams::{Direction, Outer};
use crate::pdu::{Negotiation, PduInfo};
use crate::trace::Fact;
use crate::trace::{CloseKind, EventKind, Millis, PerSide, PhaseName, Side, Trace};
use crate::wire::WireError;

/// Largest frame rdptrace buffers: a TPKT is at most 65535 bytes, a TLS record at most 2^14 + 2048.
/// A TSRequest may be larger in theory; one over this bound is treated as hostile.
pub const MAX_FRAME: usize = 1 << 17;
/// Largest TLS handshake message rdptrace buffers (a certificate chain).
pub const MAX_HANDSHAKE: usize = 1 << 18;

/// A TLS record opened by a key the dissector does not hold: the replay's decryptor implements this.
pub trait TlsRecordSink: Send {
    /// Called with every TLS record of one direction, header included, in stream order. Returns the
    /// content type and plaintext of records it can decrypt.
    fn record(&mut self, from: Side, record: &[u8]) -> Option<Decrypted>;

    /// Whether the sink reads the bytes of the next record from `from` with this content type. When it
    /// does not (it has no cipher for them), the dissector may let the record's bytes go by as they arrive
    /// and calls [`Self::skipped`] instead of [`Self::record`] once the record is whole.
    fn wants_body(&self, _from: Side, _content_type: u8) -> bool {
        true
    }

    /// A whole record whose bytes the sink said it does not read: it does what [`Self::record`] does with
    /// a record it cannot open.
    fn skipped(&mut self, _from: Side, _content_type: u8) {}
}

/// [MS-CSSP] 3.1.5 What the client seals in CredSSP, opened by a party with keys of its own (the replay's
/// keytab, [`crate::kerberos::unwrap::ExchangeKeys`]): it sees every negoToken and is asked for the
/// credential type of the client's authInfo.
pub trait CredsspSink: Send {
    /// A TSRequest's negoToken.
    fn nego_token(&mut self, from: Side, token: &[u8]);
    /// [MS-CSSP] 2.2.1.2 the credType of the TSCredentials in the client's authInfo.
    fn auth_info(&mut self, auth_info: &[u8]) -> Result<i64, crate::kerberos::unwrap::UnwrapError>;
}

/// A decrypted TLS record.
#[derive(Debug, Clone)]
pub struct Decrypted {
    pub content_type: u8,
    pub data: Vec<u8>,
}

/// Standard RDP Security ([5.3]) seen by a party that can decrypt it: the live probe (it chose the client
/// random), the built-in target (it holds the server's key), a replay given a server's key.
/// [`crate::rdp_security::sink::SessionSink`] implements it.
///
/// The dissector calls it in stream order: the server's choice from the MCS Connect Response, the Security
/// Exchange, then every encrypted PDU of each direction (slow-path on every channel and fast-path), so that
/// the cipher state stays in step with the peers'.
pub trait SecuritySink: Send {
    /// [2.2.1.4.3] The server's encryptionMethod, encryptionLevel, serverRandom and serverCertificate.
    fn server_security(
        &mut self,
        method: u32,
        level: u32,
        server_random: &[u8],
        certificate: &[u8],
    );
    /// [2.2.1.10.1] The encrypted client random; an error says why no keys can be made from it.
    fn security_exchange(&mut self, encrypted_random: &[u8]) -> Result<(), String>;
    /// Decrypts one encrypted PDU body from `from`; `None` without keys.
    fn open(&mut self, from: Side, pdu: &Sealed<'_>) -> Option<Unsealed>;
}

/// The encrypted part of a PDU and what its security header says about it ([2.2.8.1.1.2], [2.2.9.1.2]).
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    pub data: &'a [u8],
    pub signature: [u8; 8],
    /// SEC_SECURE_CHECKSUM / FASTPATH_*_SECURE_CHECKSUM: the MAC is salted ([5.3.6.1.1]).
    pub salted: bool,
    /// [2.2.8.1.1.2.3] FIPS padding.
    pub pad: u8,
}

/// A decrypted PDU body.
#[derive(Debug, Clone)]
pub struct Unsealed {
    pub data: Vec<u8>,
    pub mac_ok: bool,
}

/// What the dissector knows of the connection so far.
#[derive(Debug, Default, Clone)]
pub struct ConnState {
    /// The server's selected protocol, once the Connection Confirm is in.
    pub selected_protocol: Option<SecurityProtocol>,
    /// TLS version the ServerHello chose (`0x0303` for 1.2, `0x0304` for 1.3).
    pub tls_version: Option<u16>,
    /// The cipher suite the ServerHello chose.
    pub cipher_suite: Option<u16>,
    pub io_channel: Option<u16>,
    pub message_channel: Option<u16>,
    pub user_channel: Option<u16>,
    /// [2.2.1.4.3] encryptionMethod / encryptionLevel under Standard RDP Security.
    pub encryption_method: u32,
    pub encryption_level: u32,
    /// The client sent its credentials (TSRequest authInfo).
    pub credssp_auth_info_sent: bool,
    pub demand_active_seen: bool,
    pub font_map_seen: bool,
}

impl ConnState {
    /// Standard RDP Security with RC4 or FIPS encryption in effect: every PDU after the MCS Connect Response
    /// has a security header, and those after the Security Exchange are encrypted (readable with a
    /// [`SecuritySink`] that has the keys).
    pub fn standard_security_encrypted(&self) -> bool {
        self.selected_protocol
            .is_none_or(SecurityProtocol::is_standard_rdp_security)
            && self.encryption_level != 0
            && self.encryption_method != 0
    }
}

/// The passive dissector.
pub struct Dissector {
    trace: Trace,
    /// The framing state of what each side sends.
    dirs: PerSide<Direction>,
    state: ConnState,
    sink: Option<Box<dyn TlsRecordSink>>,
    security_sink: Option<Box<dyn SecuritySink>>,
    pub(crate) credssp_sink: Option<Box<dyn CredsspSink>>,
    /// The PDU being recorded was decrypted with the Standard RDP Security keys.
    decrypting: bool,
    /// Per direction: the MAC kind was noted as a fact.
    mac_noted: PerSide<bool>,
    /// Per direction: a MAC that did not verify was reported (once is enough).
    mac_reported: PerSide<bool>,
    /// The time of the PDU being processed.
    now: Millis,
    /// What the last frames decoded to, for a live client that must decide what to hand its state machine.
    recent: Vec<PduInfo>,
    /// The TLS plaintext comes from the client's own TLS stack: encrypted records are only counted.
    plaintext_external: bool,
    /// The phase the client waits in after its last PDU: what the server sends next, or its close,
    /// belongs there (a Set Error Info in answer to the Client Info is a licensing failure).
    awaiting: Option<PhaseName>,
    /// Encrypted records from the client that nobody could decrypt (to tell a TLS 1.3 handshake's end).
    client_opaque_records: u32,
    /// TLS only ([`Dissector::tls_only`]): the decrypted application data, kept for the caller.
    plaintext: Option<Vec<(Side, Millis, Vec<u8>)>>,
    /// The sizes of the records nobody decrypted, read for what they show ([`crate::infer`]).
    inference: Option<crate::infer::Recorder>,
}

impl Dissector {
    pub fn new(trace: Trace) -> Self {
        Dissector {
            inference: None,
            trace,
            dirs: PerSide::new(Direction::new(), Direction::new()),
            state: ConnState::default(),
            sink: None,
            security_sink: None,
            credssp_sink: None,
            decrypting: false,
            mac_noted: PerSide::default(),
            mac_reported: PerSide::default(),
            now: 0.0,
            recent: Vec::new(),
            plaintext_external: false,
            awaiting: None,
            client_opaque_records: 0,
            plaintext: None,
        }
    }

    /// TLS that carries something other than RDP (the HTTPS of an RD Gateway): records are framed from the
    /// first byte, the handshake dissected (in the `tls` phase of `trace`) and, with a sink, decrypted; the
    /// plaintext of the application data waits for [`Dissector::take_plaintext`].
    pub fn tls_only(trace: Trace) -> Self {
        let mut d = Dissector::new(trace);
        for side in [Side::Client, Side::Server] {
            d.dir(side).outer = Outer::Tls;
        }
        d.plaintext = Some(Vec::new());
        d
    }

    /// The application data decrypted since the last call, in stream order (TLS only).
    pub fn take_plaintext(&mut self) -> Vec<(Side, Millis, Vec<u8>)> {
        self.plaintext
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The caller decrypts TLS itself and feeds the plaintext (the live probe and the built-in target):
    /// encrypted application data records are counted, not listed.
    pub fn set_plaintext_external(&mut self, external: bool) {
        self.plaintext_external = external;
    }

    /// What the PDUs recorded since the last call decoded to.
    pub fn take_recent(&mut self) -> Vec<PduInfo> {
        std::mem::take(&mut self.recent)
    }

    /// Hands every TLS record to `sink`, which may decrypt it.
    pub fn set_tls_sink(&mut self, sink: Box<dyn TlsRecordSink>) {
        self.sink = Some(sink);
    }

    /// Hands the Standard RDP Security exchange and every encrypted PDU to `sink`, which may decrypt them; what
    /// it decrypts is dissected as if it had been sent in the clear, marked "decrypted".
    pub fn set_security_sink(&mut self, sink: Box<dyn SecuritySink>) {
        self.security_sink = Some(sink);
    }

    /// Hands every CredSSP negoToken and the client's authInfo to `sink`, which may open the credential
    /// type.
    pub fn set_credssp_sink(&mut self, sink: Box<dyn CredsspSink>) {
        self.credssp_sink = Some(sink);
    }

    /// Decrypts an encrypted PDU body with the security sink, reporting a MAC that does not verify once per
    /// direction; `None` without a sink or keys.
    pub(crate) fn unseal(&mut self, from: Side, sealed: &Sealed<'_>) -> Option<Vec<u8>> {
        let opened = self.security_sink.as_mut()?.open(from, sealed)?;
        if !self.mac_noted[from] {
            self.mac_noted[from] = true;
            let key = match from {
                Side::Client => Fact::ClientMac,
                Side::Server => Fact::ServerMac,
            };
            let kind = if self.fips() {
                "HMAC-SHA1 (FIPS)"
            } else if sealed.salted {
                "salted (SEC_SECURE_CHECKSUM)"
            } else {
                "plain"
            };
            self.trace.fact(key, kind);
        }
        if !opened.mac_ok && !self.mac_reported[from] {
            self.mac_reported[from] = true;
            self.trace.record_event(
                self.now,
                EventKind::Anomaly {
                    detail: format!(
                        "the {} MAC of a {} PDU does not verify ([MS-RDPBCGR] 5.3.6); a peer that checks MACs drops the connection here",
                        if sealed.salted { "salted" } else { "plain" },
                        from.as_str()
                    ),
                },
            );
        }
        Some(opened.data)
    }

    /// [2.2.1.4.3] The server chose FIPS encryption: security headers carry the FIPS fields.
    pub(crate) fn fips(&self) -> bool {
        self.state.encryption_method == crate::rdp_security::Method::FIPS
    }

    /// Passes the server's security choice to the security sink.
    pub(crate) fn server_security(
        &mut self,
        method: u32,
        level: u32,
        server_random: &[u8],
        certificate: &[u8],
    ) {
        if let Some(sink) = self.security_sink.as_mut() {
            sink.server_security(method, level, server_random, certificate);
        }
    }

    /// Passes the encrypted client random to the security sink; an anomaly when no keys come of it.
    pub(crate) fn client_random(&mut self, encrypted: &[u8]) {
        let Some(sink) = self.security_sink.as_mut() else {
            return;
        };
        if let Err(why) = sink.security_exchange(encrypted) {
            self.trace.record_event(
                self.now,
                EventKind::Anomaly {
                    detail: format!("the Standard RDP Security keys are not known: {why}"),
                },
            );
        }
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    pub fn trace_mut(&mut self) -> &mut Trace {
        &mut self.trace
    }

    /// The trace, with what the encrypted records show put into it ([`crate::infer::apply`]).
    pub fn into_trace(mut self) -> Trace {
        if let Some(inference) = self.inference.as_ref().map(|r| r.conclude()) {
            crate::infer::apply::apply(&mut self.trace, &inference);
            self.trace.inference = Some(inference);
        }
        self.trace
    }

    pub fn state(&self) -> &ConnState {
        &self.state
    }

    fn dir(&mut self, side: Side) -> &mut Direction {
        &mut self.dirs[side]
    }

    /// The client waits for the server in `phase` now.
    pub(crate) fn await_server_in(&mut self, phase: PhaseName) {
        self.awaiting = Some(phase);
    }

    /// Moves into the phase the client waits in, if it is ahead.
    pub(crate) fn settle_awaiting(&mut self) {
        if let Some(phase) = self.awaiting.take()
            && phase > self.trace.current()
        {
            self.enter(phase);
        }
    }

    /// A deadline expired while the client waited for the server.
    pub fn on_timeout(&mut self, at: Millis, deadline: crate::trace::Deadline, waiting_for: &str) {
        self.now = at;
        self.settle_awaiting();
        self.trace.record_event(
            at,
            EventKind::TimedOut {
                deadline,
                waiting_for: waiting_for.to_owned(),
            },
        );
        // The client gives up: what the server sent of a frame (a TPKT trickled a byte at a time) is
        // recorded, and framing cannot resume after the bytes dropped.
        let pending = self.dirs[Side::Server].pending() > 0;
        self.flush_incomplete(at);
        if pending {
            self.dirs[Side::Server].stop();
        }
    }

    /// The client sent its X.224 Connection Request and the server has not confirmed it yet.
    fn confirm_due(&self) -> bool {
        self.trace.current() == PhaseName::X224 && self.state.selected_protocol.is_none()
    }

    /// The stream from `by` ended.
    pub fn on_close(&mut self, by: Side, how: CloseKind, at: Millis) {
        self.now = at;
        // Whoever closes, a client that was waiting for the server failed in the phase it waited in.
        self.settle_awaiting();
        self.flush_incomplete(at);
        self.trace.record_event(at, EventKind::Closed { by, how });
    }

    /// The capture ends here with the connection open.
    pub fn on_capture_end(&mut self, at: Millis) {
        self.now = at;
        self.settle_awaiting();
        self.flush_incomplete(at);
        self.trace.record_event(at, EventKind::CaptureEnded);
    }

    /// Records the bytes of each direction that never made a whole frame.
    fn flush_incomplete(&mut self, at: Millis) {
        for side in [Side::Server, Side::Client] {
            let dir = self.dir(side);
            let pending = dir.pending();
            let first = dir.first_pending();
            if pending == 0 {
                continue;
            }
            dir.clear_outer();
            dir.inner_buf.clear();
            self.trace.count_bytes(side, pending);
            self.trace.record_event(
                at,
                EventKind::IncompleteFrame {
                    from: side,
                    bytes: pending as u64,
                    first_byte: first.unwrap_or(0),
                },
            );
        }
    }

    /// Bytes from `from` are missing (a capture lost them): framing cannot resume in that direction.
    pub fn on_gap(&mut self, from: Side, at: Millis, bytes: u64) {
        self.now = at;
        self.trace.record_event(at, EventKind::Gap { from, bytes });
        let dir = self.dir(from);
        dir.stop();
        dir.clear_outer();
        dir.inner_buf.clear();
    }

    // ---- what is recorded ---------------------------------------------------------------------------------

    /// Records a PDU in the current phase.
    pub(crate) fn pdu(
        &mut self,
        from: Side,
        len: usize,
        name: &str,
        summary: String,
        info: PduInfo,
    ) {
        if from == Side::Server
            && !matches!(info, PduInfo::AutoDetect { .. } | PduInfo::TsRequest { .. })
        {
            self.settle_awaiting();
        }
        if self.recent.len() < 64 {
            self.recent.push(info.clone());
        }
        let summary = match (self.decrypting, summary.is_empty()) {
            (false, _) => summary,
            (true, true) => "decrypted".to_owned(),
            (true, false) => format!("{summary} (decrypted)"),
        };
        self.trace.record_pdu(crate::trace::Pdu {
            at_ms: self.now,
            from,
            len,
            name: name.to_owned(),
            summary,
            info,
        });
    }

    fn enter(&mut self, phase: PhaseName) {
        self.trace.enter(phase, self.now);
    }

    fn garbage(&mut self, from: Side, len: usize, what: &str) {
        let phase = self.trace.current();
        self.pdu(
            from,
            len,
            "Undecoded",
            format!("{len} bytes: {what}"),
            PduInfo::Undecoded {
                detail: what.to_owned(),
                offset: Some(0),
            },
        );
        self.trace.record_event(
            self.now,
            EventKind::ProtocolError {
                from,
                pdu: format!("{phase} stream"),
                offset: Some(0),
                detail: what.to_owned(),
            },
        );
    }

    fn stream_error(&mut self, from: Side, pdu: &str, offset: usize, detail: &str) {
        self.trace.record_event(
            self.now,
            EventKind::ProtocolError {
                from,
                pdu: pdu.to_owned(),
                offset: Some(offset),
                detail: detail.to_owned(),
            },
        );
        let dir = self.dir(from);
        dir.outer = Outer::Opaque;
        dir.clear_outer();
    }

    fn decode_error(&mut self, from: Side, len: usize, pdu: &str, err: WireError) {
        self.pdu(
            from,
            len,
            pdu,
            format!("does not decode: {err}"),
            PduInfo::Undecoded {
                detail: err.what.to_owned(),
                offset: Some(err.offset),
            },
        );
        self.trace.record_event(
            self.now,
            EventKind::ProtocolError {
                from,
                pdu: pdu.to_owned(),
                offset: Some(err.offset),
                detail: err.what.to_owned(),
            },
        );
    }
}

/// For callers that need to know what the Connection Confirm said.
pub fn negotiation_of(trace: &Trace) -> Option<Negotiation> {
    trace.pdus().find_map(|(_, pdu)| match pdu.info {
        PduInfo::X224ConnectionConfirm { negotiation } => Some(negotiation),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// TPKT + X.224 Connection Request with an RDP_NEG_REQ for `requested`.
    pub(crate) fn connection_request(requested: u32) -> Vec<u8> {
        let mut cr = vec![0x03, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 0x01, 0, 0x08, 0];
        cr.extend_from_slice(&requested.to_le_bytes());
        cr
    }

    /// A Connection Request for SSL and HYBRID, and a Connection Confirm with an RDP_NEG_RSP selecting
    /// `selected`.
    pub(crate) fn negotiate(d: &mut Dissector, selected: SecurityProtocol) {
        d.on_tcp_data(Side::Client, 1.0, &connection_request(3));
        let mut cc = vec![
            0x03, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0, 0x08, 0,
        ];
        cc.extend_from_slice(&selected.bits().to_le_bytes());
        d.on_tcp_data(Side::Server, 2.0, &cc);
    }

    /// A TLS 1.2 record of `content_type` holding `body` (at most 255 bytes).
    pub(crate) fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 0x03, 0x03, 0, body.len() as u8];
        r.extend_from_slice(body);
        r
    }
}
