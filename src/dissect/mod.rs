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
//! One module per phase decodes that phase's PDUs; this module frames the streams and decides which phase
//! a PDU belongs to.

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
pub mod licensing;
pub mod mcs_connect;
pub mod secure_settings;
pub mod tls;
pub mod x224;

use crate::pdu::{Negotiation, PduInfo};
use crate::trace::Fact;
use crate::trace::{CloseKind, EventKind, Millis, PhaseName, Side, Trace};
use crate::wire::{Reader, WireError};

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

/// How the outer stream of one direction is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outer {
    /// TPKT and fast-path frames.
    Rdp,
    /// TLS records.
    Tls,
    /// Nothing more can be framed (garbage, a gap, or a hostile length): bytes are only counted.
    Opaque,
}

/// How the inner (TLS plaintext) stream of one direction is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    /// DER TSRequests.
    Credssp,
    /// The 4-byte Early User Authorization Result, then RDP.
    EarlyAuth,
    /// TPKT and fast-path frames.
    Rdp,
    /// An inner protocol rdptrace does not dissect (RDSTLS, RDS AAD), or garbage.
    Opaque,
}

#[derive(Debug)]
struct Direction {
    outer: Outer,
    outer_buf: Vec<u8>,
    inner: Inner,
    inner_buf: Vec<u8>,
    /// TLS handshake bytes not yet parsed into messages.
    handshake: Vec<u8>,
    /// This direction's TLS records are encrypted (after ChangeCipherSpec, or a TLS 1.3 ServerHello).
    encrypted: bool,
}

impl Direction {
    fn new() -> Self {
        Direction {
            outer: Outer::Rdp,
            outer_buf: Vec::new(),
            inner: Inner::Rdp,
            inner_buf: Vec::new(),
            handshake: Vec::new(),
            encrypted: false,
        }
    }
}

/// What the dissector knows of the connection so far.
#[derive(Debug, Default, Clone)]
pub struct ConnState {
    /// The server's selected protocol, once the Connection Confirm is in.
    pub selected_protocol: Option<u32>,
    /// TLS version the ServerHello chose (`0x0303` for 1.2, `0x0304` for 1.3).
    pub tls_version: Option<u16>,
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
        self.selected_protocol.unwrap_or(0) == 0
            && self.encryption_level != 0
            && self.encryption_method != 0
    }
}

/// The passive dissector.
pub struct Dissector {
    trace: Trace,
    client: Direction,
    server: Direction,
    state: ConnState,
    sink: Option<Box<dyn TlsRecordSink>>,
    security_sink: Option<Box<dyn SecuritySink>>,
    /// The PDU being recorded was decrypted with the Standard RDP Security keys.
    decrypting: bool,
    /// Per direction (client, server): the MAC kind was noted as a fact.
    mac_noted: [bool; 2],
    /// Per direction: a MAC that did not verify was reported (once is enough).
    mac_reported: [bool; 2],
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
}

impl Dissector {
    pub fn new(trace: Trace) -> Self {
        Dissector {
            trace,
            client: Direction::new(),
            server: Direction::new(),
            state: ConnState::default(),
            sink: None,
            security_sink: None,
            decrypting: false,
            mac_noted: [false; 2],
            mac_reported: [false; 2],
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
        d.client.outer = Outer::Tls;
        d.server.outer = Outer::Tls;
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

    /// Decrypts an encrypted PDU body with the security sink, reporting a MAC that does not verify once per
    /// direction; `None` without a sink or keys.
    pub(crate) fn unseal(&mut self, from: Side, sealed: &Sealed<'_>) -> Option<Vec<u8>> {
        let opened = self.security_sink.as_mut()?.open(from, sealed)?;
        fn side(flags: &mut [bool; 2], from: Side) -> &mut bool {
            let [client, server] = flags;
            match from {
                Side::Client => client,
                Side::Server => server,
            }
        }
        let noted = side(&mut self.mac_noted, from);
        if !*noted {
            *noted = true;
            let key = match from {
                Side::Client => Fact::ClientMac,
                Side::Server => Fact::ServerMac,
            };
            let kind = if self.state.encryption_method == crate::rdp_security::Method::FIPS {
                "HMAC-SHA1 (FIPS)"
            } else if sealed.salted {
                "salted (SEC_SECURE_CHECKSUM)"
            } else {
                "plain"
            };
            self.trace.fact(key, kind);
        }
        let reported = side(&mut self.mac_reported, from);
        if !opened.mac_ok && !*reported {
            *reported = true;
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

    pub fn into_trace(self) -> Trace {
        self.trace
    }

    pub fn state(&self) -> &ConnState {
        &self.state
    }

    fn dir(&mut self, side: Side) -> &mut Direction {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Bytes of the TCP stream from `from`, in order.
    pub fn on_tcp_data(&mut self, from: Side, at: Millis, data: &[u8]) {
        self.now = at;
        let confirm_due = from == Side::Server && self.confirm_due();
        let dir = self.dir(from);
        if dir.outer == Outer::Opaque {
            self.trace.count_bytes(from, data.len());
            return;
        }
        // The frames are read where they lie: the buffer is taken out while they are handled (the handlers need
        // the dissector), and what they used is removed once, at the end.
        let mut buf = std::mem::take(&mut dir.outer_buf);
        buf.extend_from_slice(data);
        let mut pos = 0;
        // INVARIANT: each pass either consumes a whole frame or stops, so this loop ends.
        loop {
            let outer = self.dir(from).outer;
            let rest = buf.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            let framed = match outer {
                // [2.2.1.2] Only a TPKT (or TLS, from a server that skipped the negotiation) answers the
                // Connection Request: a fast-path header there is some other protocol.
                Outer::Rdp if confirm_due && !matches!(rest.first(), Some(0x03 | 0x16)) => {
                    Framed::Garbage("not a TPKT header where the X.224 Connection Confirm belongs")
                }
                Outer::Rdp => rdp_frame_len(rest),
                Outer::Tls => tls_record_len(rest),
                Outer::Opaque => {
                    let n = rest.len();
                    pos = buf.len();
                    self.trace.count_bytes(from, n);
                    break;
                }
            };
            let cleartext = if outer == Outer::Tls {
                rdp_frame_len(rest)
            } else {
                Framed::Need
            };
            match framed {
                Framed::Need => {
                    if rest.len() > MAX_FRAME {
                        self.stream_error(from, "frame", 0, "a frame longer than rdptrace accepts");
                        pos = buf.len();
                    }
                    break;
                }
                Framed::Frame(n) => {
                    let frame = rest.get(..n).unwrap_or_default();
                    match outer {
                        Outer::Rdp => self.rdp_frame(from, frame),
                        Outer::Tls => self.tls_record(from, frame),
                        Outer::Opaque => {}
                    }
                    self.trace.count_bytes(from, n);
                    pos += n;
                    if self.dir(from).outer == Outer::Opaque {
                        // A stream error in the frame: the rest cannot be framed.
                        pos = buf.len();
                    }
                }
                Framed::Tls if outer == Outer::Rdp => {
                    // A TLS record where RDP framing was expected: a capture that starts at the ClientHello,
                    // or a peer that switched to TLS without a negotiation rdptrace saw.
                    self.dir(from).outer = Outer::Tls;
                    self.dir(from.other()).outer = Outer::Tls;
                    if self.state.selected_protocol.is_none() {
                        self.trace.record_event(
                            at,
                            EventKind::Anomaly {
                                detail: format!(
                                    "the {} started TLS without an X.224 negotiation in the stream",
                                    from.as_str()
                                ),
                            },
                        );
                    }
                }
                Framed::Garbage(_) if matches!(cleartext, Framed::Frame(_)) => {
                    // A cleartext RDP PDU where TLS was due: xrdp writes a Disconnect Provider Ultimatum when
                    // its TLS setup fails.
                    let Framed::Frame(n) = cleartext else { break };
                    self.trace.record_event(
                        at,
                        EventKind::Anomaly {
                            detail: format!(
                                "the {} sent a cleartext RDP PDU instead of TLS",
                                from.as_str()
                            ),
                        },
                    );
                    let frame = rest.get(..n).unwrap_or_default();
                    self.rdp_frame(from, frame);
                    self.trace.count_bytes(from, n);
                    pos += n;
                    if self.dir(from).outer == Outer::Opaque {
                        pos = buf.len();
                    }
                }
                Framed::Tls | Framed::Garbage(_) => {
                    let what = match framed {
                        Framed::Garbage(what) => what,
                        _ => "not a TLS record",
                    };
                    let len = rest.len();
                    self.garbage(from, len, what);
                    self.dir(from).outer = Outer::Opaque;
                    pos = buf.len();
                    self.trace.count_bytes(from, len);
                    break;
                }
            }
        }
        buf.drain(..pos.min(buf.len()));
        let dir = self.dir(from);
        let during = std::mem::replace(&mut dir.outer_buf, buf);
        dir.outer_buf.extend_from_slice(&during);
    }

    /// TLS plaintext of the stream from `from` (application data after the handshake), in order.
    pub fn on_plaintext(&mut self, from: Side, at: Millis, data: &[u8]) {
        self.now = at;
        if self.trace.current() <= PhaseName::Tls {
            self.leave_tls();
        }
        let dir = self.dir(from);
        if dir.inner == Inner::Opaque {
            return;
        }
        // As for the outer frames: read in place, the used bytes removed once.
        let mut buf = std::mem::take(&mut dir.inner_buf);
        let whole = buf.is_empty();
        if !whole {
            buf.extend_from_slice(data);
        }
        // A record that holds whole frames (the usual case) is read without a copy.
        let src: &[u8] = if whole { data } else { &buf };
        let mut pos = 0;
        loop {
            let inner = self.dir(from).inner;
            let rest = src.get(pos..).unwrap_or_default();
            let Some(&first) = rest.first() else {
                break;
            };
            let framed = match inner {
                Inner::Credssp => {
                    if first == 0x30 {
                        der_len(rest)
                    } else {
                        // The client moves on to MCS without a final TSRequest only if rdptrace missed it.
                        rdp_frame_len(rest)
                    }
                }
                Inner::EarlyAuth => {
                    if first == 0x30 {
                        der_len(rest)
                    } else if let [0x03, _, hi, lo, ..] = *rest
                        && u16::from_be_bytes([hi, lo]) != 4
                    {
                        rdp_frame_len(rest)
                    } else if rest.len() >= 4 {
                        Framed::Frame(4)
                    } else {
                        Framed::Need
                    }
                }
                Inner::Rdp => {
                    if first == 0x30 {
                        der_len(rest)
                    } else {
                        rdp_frame_len(rest)
                    }
                }
                Inner::Opaque => break,
            };
            match framed {
                Framed::Need => {
                    if rest.len() > MAX_FRAME {
                        self.stream_error(from, "frame", 0, "a frame longer than rdptrace accepts");
                        self.dir(from).inner = Inner::Opaque;
                    }
                    break;
                }
                Framed::Frame(n) => {
                    let frame = rest.get(..n).unwrap_or_default();
                    self.inner_frame(from, inner, frame);
                    pos += n;
                }
                Framed::Tls | Framed::Garbage(_) => {
                    let what = match framed {
                        Framed::Garbage(what) => what,
                        _ => "a TLS record inside TLS",
                    };
                    let len = rest.len();
                    self.garbage(from, len, what);
                    self.dir(from).inner = Inner::Opaque;
                    pos = src.len();
                    break;
                }
            }
        }
        // What is left waits for the next record.
        let left = src.get(pos..).unwrap_or_default();
        let kept = if whole {
            left.to_vec()
        } else {
            let n = buf.len() - left.len();
            buf.drain(..n);
            buf
        };
        let dir = self.dir(from);
        let during = std::mem::replace(&mut dir.inner_buf, kept);
        dir.inner_buf.extend_from_slice(&during);
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
        let server = self.dir(Side::Server);
        let pending = !server.outer_buf.is_empty() || !server.inner_buf.is_empty();
        self.flush_incomplete(at);
        if pending {
            let server = self.dir(Side::Server);
            server.outer = Outer::Opaque;
            server.inner = Inner::Opaque;
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
            let pending = dir.outer_buf.len() + dir.inner_buf.len();
            let first = dir.outer_buf.first().or(dir.inner_buf.first()).copied();
            if pending == 0 {
                continue;
            }
            dir.outer_buf.clear();
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
        dir.outer = Outer::Opaque;
        dir.outer_buf.clear();
        dir.inner = Inner::Opaque;
        dir.inner_buf.clear();
    }

    /// The TLS handshake is over: the client reports it (probe) or plaintext appears (replay).
    pub fn leave_tls(&mut self) {
        if self.trace.current() > PhaseName::Tls {
            return;
        }
        let selected = self.state.selected_protocol.unwrap_or(0);
        let (client, server) = if selected & (x224::PROTOCOL_HYBRID | x224::PROTOCOL_HYBRID_EX) != 0
        {
            (Inner::Credssp, Inner::Credssp)
        } else if selected & (x224::PROTOCOL_RDSTLS | x224::PROTOCOL_RDSAAD) != 0 {
            (Inner::Opaque, Inner::Opaque)
        } else {
            (Inner::Rdp, Inner::Rdp)
        };
        self.client.inner = client;
        self.server.inner = server;
        if client == Inner::Opaque {
            self.trace.record_event(
                self.now,
                EventKind::Anomaly {
                    detail: format!(
                        "{} is not dissected; the rest of the connection is opaque",
                        crate::codes::protocol_names(selected)
                    ),
                },
            );
        }
    }

    // ---- records ------------------------------------------------------------------------------------------

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
        dir.outer_buf.clear();
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

    // ---- outer TLS ----------------------------------------------------------------------------------------

    fn tls_record(&mut self, from: Side, record: &[u8]) {
        let content_type = record.first().copied().unwrap_or(0);
        let payload = record.get(5..).unwrap_or(&[]);
        if self.trace.current() < PhaseName::Tls && content_type == tls::HANDSHAKE {
            self.enter(PhaseName::Tls);
        }
        // [RFC 8446] D.4 a ChangeCipherSpec is always in clear, also after a TLS 1.3 ServerHello.
        let encrypted = self.dir(from).encrypted && content_type != tls::CHANGE_CIPHER_SPEC;
        if encrypted || content_type == tls::APPLICATION_DATA {
            let decrypted = self
                .sink
                .as_mut()
                .and_then(|sink| sink.record(from, record));
            match decrypted {
                Some(plain) => {
                    self.tls_plaintext_record(from, plain.content_type, &plain.data, true)
                }
                None => self.tls_opaque_record(from, content_type, record.len()),
            }
            return;
        }
        if let Some(sink) = self.sink.as_mut() {
            // The decryptor reads the cleartext handshake (randoms, suite) as well.
            let _ = sink.record(from, record);
        }
        self.tls_plaintext_record(from, content_type, payload, false);
    }

    fn tls_plaintext_record(
        &mut self,
        from: Side,
        content_type: u8,
        payload: &[u8],
        decrypted: bool,
    ) {
        match content_type {
            tls::HANDSHAKE => {
                let dir = self.dir(from);
                if dir.handshake.len() + payload.len() > MAX_HANDSHAKE {
                    dir.handshake.clear();
                    self.stream_error(
                        from,
                        "TLS handshake",
                        0,
                        "a handshake message longer than rdptrace accepts",
                    );
                    return;
                }
                dir.handshake.extend_from_slice(payload);
                tls::drain_handshake(self, from, decrypted);
            }
            tls::CHANGE_CIPHER_SPEC => {
                self.dir(from).encrypted = true;
                self.trace
                    .tally("TLS ChangeCipherSpec", payload.len(), self.now);
            }
            tls::ALERT => tls::alert(self, from, payload, decrypted),
            tls::APPLICATION_DATA => {
                if decrypted && let Some(out) = self.plaintext.as_mut() {
                    out.push((from, self.now, payload.to_vec()));
                } else if decrypted {
                    self.on_plaintext(from, self.now, payload);
                } else {
                    self.tls_opaque_record(from, content_type, payload.len());
                }
            }
            other => {
                self.pdu(
                    from,
                    payload.len(),
                    "TLS record",
                    format!("unknown content type {other}"),
                    PduInfo::Undecoded {
                        detail: format!("TLS content type {other}"),
                        offset: Some(0),
                    },
                );
            }
        }
    }

    fn tls_opaque_record(&mut self, from: Side, content_type: u8, len: usize) {
        match content_type {
            tls::ALERT => {
                self.pdu(
                    from,
                    len,
                    "TLS Alert",
                    "encrypted alert (close_notify at the end of a session, or an error)"
                        .to_owned(),
                    PduInfo::TlsAlert {
                        level: None,
                        description: None,
                        encrypted: true,
                    },
                );
            }
            tls::HANDSHAKE => self.trace.tally("TLS encrypted handshake", len, self.now),
            _ if self.plaintext_external => {}
            _ => {
                self.tls_done_opaque(from);
                let first = !self
                    .trace
                    .pdus()
                    .any(|(_, p)| matches!(p.info, PduInfo::TlsEncrypted) && p.from == from);
                if first {
                    self.pdu(
                        from,
                        len,
                        "TLS Application Data",
                        "encrypted; the inner protocol needs the TLS secrets".to_owned(),
                        PduInfo::TlsEncrypted,
                    );
                } else {
                    self.trace.tally("TLS Application Data", len, self.now);
                }
            }
        }
    }

    /// Encrypted application data nobody can decrypt: once it flows the TLS handshake is over, and the
    /// first inner phase is known from the negotiation even if its content is not.
    fn tls_done_opaque(&mut self, from: Side) {
        if self.trace.current() != PhaseName::Tls {
            return;
        }
        if self.state.tls_version == Some(tls::TLS13) {
            // [RFC 8446] 2: the server's encrypted handshake flight and the client's Finished look like
            // application data too; the client's second encrypted record is past the handshake.
            if from == Side::Client {
                self.client_opaque_records += 1;
            }
            if self.client_opaque_records < 2 {
                return;
            }
        }
        self.leave_tls();
        self.trace.fact(
            Fact::Encrypted,
            "TLS application data without the secrets to decrypt it (--keylog, --rsa-key)",
        );
        // Without the Connection Confirm (a capture that starts later) the inner protocol is unknown.
        let Some(selected) = self.state.selected_protocol else {
            return;
        };
        let next = if selected & (x224::PROTOCOL_HYBRID | x224::PROTOCOL_HYBRID_EX) != 0 {
            PhaseName::Credssp
        } else if selected & (x224::PROTOCOL_RDSTLS | x224::PROTOCOL_RDSAAD) != 0 {
            return;
        } else {
            PhaseName::McsConnect
        };
        self.enter(next);
    }

    // ---- inner --------------------------------------------------------------------------------------------

    fn inner_frame(&mut self, from: Side, inner: Inner, frame: &[u8]) {
        if frame.first() == Some(&0x30) {
            credssp::ts_request(self, from, frame);
            return;
        }
        if inner == Inner::EarlyAuth && frame.len() == 4 {
            early_user_auth::result(self, from, frame);
            self.dir(from).inner = Inner::Rdp;
            return;
        }
        if inner == Inner::Credssp {
            // RDP after CredSSP without the final messages rdptrace expected.
            self.dir(from).inner = Inner::Rdp;
        }
        self.rdp_frame(from, frame);
    }

    /// The client sent its credentials: the server answers with the Early User Authorization Result
    /// (HYBRID_EX) or goes on to MCS.
    pub(crate) fn credssp_done_by_client(&mut self) {
        self.state.credssp_auth_info_sent = true;
        self.client.inner = Inner::Rdp;
        let selected = self.state.selected_protocol.unwrap_or(0);
        self.server.inner = if selected & x224::PROTOCOL_HYBRID_EX != 0 {
            self.await_server_in(PhaseName::EarlyUserAuth);
            Inner::EarlyAuth
        } else {
            Inner::Rdp
        };
    }

    // ---- RDP frames ---------------------------------------------------------------------------------------

    fn rdp_frame(&mut self, from: Side, frame: &[u8]) {
        if frame.first() == Some(&0x03) {
            self.tpkt(from, frame);
        } else {
            active::fast_path(self, from, frame);
        }
    }

    fn tpkt(&mut self, from: Side, frame: &[u8]) {
        let mut r = Reader::new(frame);
        let parsed = (|| {
            r.skip(4, "TPKT header")?;
            let li = usize::from(r.u8("X.224 length indicator")?);
            let code = r.u8("X.224 TPDU code")?;
            Ok::<_, WireError>((li, code))
        })();
        let (li, code) = match parsed {
            Ok(v) => v,
            Err(e) => return self.decode_error(from, frame.len(), "X.224 TPDU", e),
        };
        match code & 0xf0 {
            x224::CR => {
                self.enter(PhaseName::X224);
                x224::connection_request(self, from, frame);
            }
            x224::CC => {
                self.enter(PhaseName::X224);
                x224::connection_confirm(self, from, frame);
            }
            x224::DR => {
                self.pdu(
                    from,
                    frame.len(),
                    "X.224 Disconnect Request",
                    String::new(),
                    PduInfo::X224DisconnectRequest,
                );
            }
            x224::DT => {
                // TPKT (4) + LI (1) + the LI bytes of the header.
                let start = 5 + li;
                match frame.get(start..) {
                    Some(mcs) if !mcs.is_empty() => self.mcs(from, frame.len(), mcs, start),
                    _ => self.decode_error(
                        from,
                        frame.len(),
                        "X.224 Data",
                        WireError {
                            offset: start,
                            what: "X.224 Data TPDU without MCS payload",
                        },
                    ),
                }
            }
            _ => self.decode_error(
                from,
                frame.len(),
                "X.224 TPDU",
                WireError {
                    offset: 5,
                    what: "unknown X.224 TPDU code",
                },
            ),
        }
    }

    /// [T.125] MCS PDUs.
    fn mcs(&mut self, from: Side, frame_len: usize, mcs: &[u8], base: usize) {
        let send_data = mcs
            .first()
            .is_some_and(|b| b >> 2 == active::SEND_DATA_INDICATION);
        if from == Side::Server && !send_data {
            self.settle_awaiting();
        }
        if let [0x7f, 0x65, ..] = mcs {
            self.enter(PhaseName::McsConnect);
            return mcs_connect::connect_initial(self, from, frame_len, mcs, base);
        }
        if let [0x7f, 0x66, ..] = mcs {
            self.enter(PhaseName::McsConnect);
            return mcs_connect::connect_response(self, from, frame_len, mcs, base);
        }
        let Some(&first) = mcs.first() else {
            return;
        };
        let choice = first >> 2;
        match choice {
            channel_join::ERECT_DOMAIN_REQUEST
            | channel_join::ATTACH_USER_REQUEST
            | channel_join::ATTACH_USER_CONFIRM
            | channel_join::CHANNEL_JOIN_REQUEST
            | channel_join::CHANNEL_JOIN_CONFIRM => {
                if self.trace.current() < PhaseName::ChannelJoin {
                    self.enter(PhaseName::ChannelJoin);
                }
                channel_join::domain_pdu(self, from, frame_len, mcs, base);
            }
            active::DISCONNECT_PROVIDER_ULTIMATUM => {
                active::disconnect_provider_ultimatum(self, from, frame_len, mcs)
            }
            active::SEND_DATA_REQUEST | active::SEND_DATA_INDICATION => {
                let mut r = Reader::with_base(mcs, base);
                let header = (|| {
                    r.u8("MCS Send Data choice")?;
                    let initiator = r.u16_be("MCS initiator")?;
                    let channel = r.u16_be("MCS channel id")?;
                    r.u8("MCS data priority and segmentation")?;
                    let len = r.per_length("MCS user data length")?;
                    Ok::<_, WireError>((initiator, channel, len))
                })();
                match header {
                    Ok((_initiator, channel, len)) => {
                        let base = r.offset();
                        match r.rest().get(..len) {
                            Some(data) => self.channel_data(from, frame_len, channel, data, base),
                            None => self.decode_error(
                                from,
                                frame_len,
                                "MCS Send Data",
                                WireError {
                                    offset: base,
                                    what: "user data shorter than its length",
                                },
                            ),
                        }
                    }
                    Err(e) => self.decode_error(from, frame_len, "MCS Send Data", e),
                }
            }
            other => {
                self.pdu(
                    from,
                    frame_len,
                    "MCS PDU",
                    format!("DomainMCSPDU choice {other}"),
                    PduInfo::Undecoded {
                        detail: format!("DomainMCSPDU choice {other}"),
                        offset: Some(base),
                    },
                );
            }
        }
    }

    /// Data on an MCS channel: the I/O channel, the message channel, or a virtual channel.
    fn channel_data(
        &mut self,
        from: Side,
        frame_len: usize,
        channel: u16,
        data: &[u8],
        base: usize,
    ) {
        let io = self.state.io_channel.unwrap_or(1003);
        let message = self.state.message_channel;
        if channel != io && Some(channel) != message {
            if self.state.standard_security_encrypted() {
                active::channel_sealed(self, from, data);
            }
            if self.trace.current() >= PhaseName::Capabilities {
                self.trace
                    .tally("Virtual Channel Data", frame_len, self.now);
            } else {
                self.pdu(
                    from,
                    frame_len,
                    "Virtual Channel Data",
                    format!("channel {channel}, {} bytes", data.len()),
                    PduInfo::ChannelData {
                        channel_id: channel,
                    },
                );
            }
            return;
        }
        active::io_data(self, from, frame_len, data, base);
    }
}

/// The result of looking for one frame at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framed {
    /// Not enough bytes yet.
    Need,
    /// A whole frame of this many bytes.
    Frame(usize),
    /// The bytes start a TLS record.
    Tls,
    /// The bytes cannot start a frame.
    Garbage(&'static str),
}

/// Whether `buf` starts a TLS record header (content type 20..=23, major version 3).
fn looks_like_tls(buf: &[u8]) -> bool {
    matches!(buf, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// [T.123] TPKT ([2.2.1.1]) or [2.2.9.1.2] fast-path framing.
fn rdp_frame_len(buf: &[u8]) -> Framed {
    let Some(&first) = buf.first() else {
        return Framed::Need;
    };
    if looks_like_tls(buf) {
        return Framed::Tls;
    }
    if buf.len() < 3 && first == 0x16 {
        return Framed::Need;
    }
    if first == 0x03 {
        let [_, _, hi, lo, ..] = *buf else {
            return Framed::Need;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 7 {
            return Framed::Garbage("TPKT length shorter than a TPKT header and an X.224 header");
        }
        return if buf.len() >= len {
            Framed::Frame(len)
        } else {
            Framed::Need
        };
    }
    if first & 0x03 == 0 {
        let Some(&b1) = buf.get(1) else {
            return Framed::Need;
        };
        let len = if b1 & 0x80 != 0 {
            let Some(&b2) = buf.get(2) else {
                return Framed::Need;
            };
            (usize::from(b1 & 0x7f) << 8) | usize::from(b2)
        } else {
            usize::from(b1)
        };
        if len < 2 {
            return Framed::Garbage("fast-path length shorter than its header");
        }
        return if buf.len() >= len {
            Framed::Frame(len)
        } else {
            Framed::Need
        };
    }
    Framed::Garbage("not a TPKT, fast-path or TLS record header")
}

/// [RFC 8446] 5.1 TLS record framing.
fn tls_record_len(buf: &[u8]) -> Framed {
    let len = match *buf {
        [0x14..=0x18, 0x03, _, hi, lo, ..] => usize::from(u16::from_be_bytes([hi, lo])),
        [0x14..=0x18, 0x03, ..] | [0x14..=0x18] | [] => return Framed::Need,
        _ => return Framed::Garbage("not a TLS record header"),
    };
    if len > (1 << 14) + 2048 {
        return Framed::Garbage("TLS record longer than the protocol allows");
    }
    if buf.len() >= 5 + len {
        Framed::Frame(5 + len)
    } else {
        Framed::Need
    }
}

/// [X.690] DER framing of a TSRequest (SEQUENCE).
fn der_len(buf: &[u8]) -> Framed {
    let mut r = Reader::new(buf);
    if r.u8("tag").is_err() {
        return Framed::Need;
    }
    match r.ber_length("length") {
        Ok(len) => {
            let total = r.offset().saturating_add(len);
            if total > MAX_FRAME {
                Framed::Garbage("a TSRequest longer than rdptrace accepts")
            } else if buf.len() >= total {
                Framed::Frame(total)
            } else {
                Framed::Need
            }
        }
        Err(_) if buf.len() < 6 => Framed::Need,
        Err(_) => Framed::Garbage("a DER length that does not parse"),
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
mod tests {
    use super::*;
    use crate::trace::PhaseStatus;

    #[test]
    fn framing() {
        assert_eq!(rdp_frame_len(&[0x03, 0x00]), Framed::Need);
        assert_eq!(
            rdp_frame_len(&[0x03, 0x00, 0x00, 0x0b, 0, 0, 0, 0, 0, 0, 0]),
            Framed::Frame(11)
        );
        assert_eq!(
            rdp_frame_len(&[0x03, 0x00, 0x00, 0x02]),
            Framed::Garbage("TPKT length shorter than a TPKT header and an X.224 header")
        );
        assert_eq!(rdp_frame_len(&[0x00, 0x04, 1, 2]), Framed::Frame(4));
        assert_eq!(rdp_frame_len(&[0x00, 0x81, 0x00]), Framed::Need);
        assert_eq!(rdp_frame_len(&[0x16, 0x03, 0x01, 0x00, 0x10]), Framed::Tls);
        assert!(matches!(rdp_frame_len(b"ECODH"), Framed::Garbage(_)));
        assert_eq!(
            tls_record_len(&[0x16, 0x03, 0x03, 0x00, 0x01, 0xff]),
            Framed::Frame(6)
        );
        assert!(matches!(
            tls_record_len(&[0x16, 0x03, 0x03, 0xff, 0xff]),
            Framed::Garbage(_)
        ));
        assert_eq!(der_len(&[0x30, 0x03, 1, 2, 3]), Framed::Frame(5));
        assert_eq!(der_len(&[0x30, 0x82, 0x01]), Framed::Need);
    }

    /// TPKT + X.224 CR with an RDP_NEG_REQ, and a CC with an RDP_NEG_RSP selecting `selected`.
    fn negotiate(d: &mut Dissector, selected: u32) {
        let mut cr = vec![0x03, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 0x01, 0, 0x08, 0];
        cr.extend_from_slice(&3u32.to_le_bytes());
        d.on_tcp_data(Side::Client, 1.0, &cr);
        let mut cc = vec![
            0x03, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0, 0x08, 0,
        ];
        cc.extend_from_slice(&selected.to_le_bytes());
        d.on_tcp_data(Side::Server, 2.0, &cc);
    }

    fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 0x03, 0x03, 0, body.len() as u8];
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn opaque_application_data_ends_the_tls_phase() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        negotiate(&mut d, x224::PROTOCOL_HYBRID);
        // A handshake message nobody parses, then ChangeCipherSpec both ways.
        d.on_tcp_data(
            Side::Client,
            3.0,
            &record(tls::HANDSHAKE, &[0x10, 0, 0, 1, 0]),
        );
        assert_eq!(d.trace().current(), PhaseName::Tls);
        d.on_tcp_data(Side::Client, 4.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        d.on_tcp_data(Side::Server, 5.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        // Encrypted Finished (a handshake record after ChangeCipherSpec): still the handshake.
        d.on_tcp_data(Side::Server, 6.0, &record(tls::HANDSHAKE, &[9; 40]));
        assert_eq!(d.trace().current(), PhaseName::Tls);
        // Application data: the handshake is over and NLA comes next.
        d.on_tcp_data(Side::Client, 7.0, &record(tls::APPLICATION_DATA, &[7; 40]));
        assert_eq!(d.trace().current(), PhaseName::Credssp);
        assert_eq!(d.trace().phase(PhaseName::Tls).status, PhaseStatus::Ok);
        assert!(
            d.trace()
                .phase(PhaseName::Tls)
                .facts
                .get(Fact::Encrypted)
                .is_some()
        );

        // TLS only: MCS comes next.
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        negotiate(&mut d, x224::PROTOCOL_SSL);
        d.on_tcp_data(
            Side::Client,
            3.0,
            &record(tls::HANDSHAKE, &[0x10, 0, 0, 1, 0]),
        );
        d.on_tcp_data(Side::Server, 7.0, &record(tls::APPLICATION_DATA, &[7; 40]));
        assert_eq!(d.trace().current(), PhaseName::McsConnect);
    }

    #[test]
    fn tls13_change_cipher_spec_is_clear_and_the_handshake_ends_after_the_client_finished() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        negotiate(&mut d, x224::PROTOCOL_HYBRID);
        d.on_tcp_data(
            Side::Client,
            3.0,
            &record(tls::HANDSHAKE, &[0x10, 0, 0, 1, 0]),
        );
        // As after a TLS 1.3 ServerHello.
        d.state.tls_version = Some(tls::TLS13);
        d.client.encrypted = true;
        d.server.encrypted = true;
        d.on_tcp_data(Side::Server, 4.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        d.on_tcp_data(Side::Server, 5.0, &record(tls::APPLICATION_DATA, &[1; 60]));
        d.on_tcp_data(Side::Client, 6.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        assert!(
            !d.trace()
                .pdus()
                .any(|(_, p)| p.from == Side::Client && matches!(p.info, PduInfo::TlsEncrypted)),
            "a ChangeCipherSpec is not application data"
        );
        // The client's Finished, then its first application data.
        d.on_tcp_data(Side::Client, 7.0, &record(tls::APPLICATION_DATA, &[2; 60]));
        assert_eq!(d.trace().current(), PhaseName::Tls);
        d.on_tcp_data(Side::Client, 8.0, &record(tls::APPLICATION_DATA, &[3; 60]));
        assert_eq!(d.trace().current(), PhaseName::Credssp);
    }

    #[test]
    fn a_fast_path_header_where_the_connection_confirm_belongs_is_garbage() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        let mut cr = vec![0x03, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 0x01, 0, 0x08, 0];
        cr.extend_from_slice(&1u32.to_le_bytes());
        d.on_tcp_data(Side::Client, 1.0, &cr);
        // "HTTP/1.1 400": 'H' would frame as fast-path of 0x54 bytes and wait for them.
        d.on_tcp_data(Side::Server, 2.0, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let error = d.trace().events().find_map(|(phase, e)| match &e.kind {
            EventKind::ProtocolError { from, detail, .. } => Some((phase, *from, detail.clone())),
            _ => None,
        });
        assert_eq!(
            error,
            Some((
                PhaseName::X224,
                Side::Server,
                "not a TPKT header where the X.224 Connection Confirm belongs".to_owned()
            ))
        );
    }

    #[test]
    fn a_deadline_records_the_bytes_of_a_frame_that_never_completed() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        let mut cr = vec![0x03, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 0x01, 0, 0x08, 0];
        cr.extend_from_slice(&1u32.to_le_bytes());
        d.on_tcp_data(Side::Client, 1.0, &cr);
        d.on_tcp_data(Side::Server, 2.0, &[0x03, 0x00, 0xff]);
        d.on_timeout(3.0, crate::trace::Deadline::Phase { seconds: 5.0 }, "it");
        assert!(d.trace().events().any(|(_, e)| matches!(
            e.kind,
            EventKind::IncompleteFrame {
                from: Side::Server,
                bytes: 3,
                first_byte: 0x03
            }
        )));
        // Framing does not resume in the middle of the lost frame.
        d.on_tcp_data(Side::Server, 4.0, &[0xff, 0x02, 0xf0, 0x80]);
        assert!(
            !d.trace()
                .events()
                .any(|(_, e)| matches!(e.kind, EventKind::ProtocolError { .. }))
        );
    }
}
