//! The two framed streams of each direction ([`crate::wire::frame`] finds where each frame ends):
//!
//! - the outer stream, the TCP payload: TPKT and fast-path frames before TLS and under Standard RDP Security,
//!   TLS records after a Connection Confirm that selected TLS or CredSSP (handed to [`super::records`]);
//! - the inner stream, the TLS plaintext: CredSSP TSRequests, the Early User Authorization Result, then TPKT
//!   and fast-path frames.
//!
//! Every whole frame goes on to [`super::records`] (TLS records) or [`super::routing`] (RDP frames); bytes that
//! cannot be framed are reported once and the rest of that stream is only counted.

use ironrdp_pdu::nego::SecurityProtocol;

use super::{Dissector, MAX_FRAME, credssp, early_user_auth, tls, x224};
use crate::trace::{EventKind, Millis, PhaseName, Side};
use crate::wire::frame::{self, FrameError, FrameErrorKind, Framed};

/// How the outer stream of one direction is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outer {
    /// TPKT and fast-path frames.
    Rdp,
    /// TLS records.
    Tls,
    /// Nothing more can be framed (garbage, a gap, or a hostile length): bytes are only counted.
    Opaque,
}

/// How the inner (TLS plaintext) stream of one direction is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inner {
    /// DER TSRequests.
    Credssp,
    /// The 4-byte Early User Authorization Result, then RDP.
    EarlyAuth,
    /// TPKT and fast-path frames.
    Rdp,
    /// An inner protocol rdptrace does not dissect (RDSTLS, RDS AAD), or garbage.
    Opaque,
}

/// A TLS record whose bytes go by as they arrive, nobody reading them ([`Dissector::record_body_unused`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Skip {
    content_type: u8,
    /// Its length, the header included.
    len: usize,
    /// Its bytes still to come.
    left: usize,
}

/// The framing state of what one side sends.
#[derive(Debug)]
pub(super) struct Direction {
    pub(super) outer: Outer,
    pub(super) outer_buf: Vec<u8>,
    /// INVARIANT: while a record is skipped, `outer_buf` is empty.
    skip: Option<Skip>,
    pub(super) inner: Inner,
    pub(super) inner_buf: Vec<u8>,
    /// TLS handshake bytes not yet parsed into messages.
    pub(super) handshake: Vec<u8>,
    /// This direction's TLS records are encrypted (after ChangeCipherSpec, or a TLS 1.3 ServerHello).
    pub(super) encrypted: bool,
}

impl Direction {
    pub(super) fn new() -> Self {
        Direction {
            outer: Outer::Rdp,
            outer_buf: Vec::new(),
            skip: None,
            inner: Inner::Rdp,
            inner_buf: Vec::new(),
            handshake: Vec::new(),
            encrypted: false,
        }
    }

    /// Bytes held (or skipped) that have not made a whole frame yet.
    pub(super) fn pending(&self) -> usize {
        let skipped = self.skip.map_or(0, |s| s.len - s.left);
        self.outer_buf.len() + skipped + self.inner_buf.len()
    }

    /// The first byte of what has not made a whole frame yet.
    pub(super) fn first_pending(&self) -> Option<u8> {
        self.skip
            .map(|s| s.content_type)
            .or(self.outer_buf.first().copied())
            .or(self.inner_buf.first().copied())
    }

    /// Drops the outer stream's unframed bytes.
    pub(super) fn clear_outer(&mut self) {
        self.outer_buf.clear();
        self.skip = None;
    }

    /// Framing cannot resume in this direction (bytes were lost): what comes is only counted.
    pub(super) fn stop(&mut self) {
        self.outer = Outer::Opaque;
        self.inner = Inner::Opaque;
    }
}

/// [2.2.10.2] The Early User Authorization Result is a 4-byte value.
const EARLY_AUTH_RESULT_LEN: usize = 4;

/// What a stream where TLS may start holds when it holds neither a TPKT, a fast-path PDU nor a TLS record.
const NOT_RDP_OR_TLS: &str = "not a TPKT, fast-path or TLS record header";

/// One look at the start of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A whole frame of this many bytes.
    Frame(usize),
    /// Not enough bytes yet.
    NeedMore,
    /// A TLS record where TPKT or fast-path was expected.
    Tls,
    /// The bytes cannot start a frame, and why.
    Garbage(&'static str),
}

impl From<Framed> for Step {
    fn from(framed: Framed) -> Step {
        match framed {
            Framed::Complete(n) => Step::Frame(n),
            Framed::NeedMore { .. } => Step::NeedMore,
            // The streams framed here may also start TLS (see `rdp_or_tls`).
            Framed::Not(FrameError {
                kind: FrameErrorKind::NotRdp { .. },
                ..
            }) => Step::Garbage(NOT_RDP_OR_TLS),
            Framed::Not(e) => Step::Garbage(e.kind.message()),
        }
    }
}

/// TPKT or fast-path, or the start of a TLS record (a peer that starts TLS without a negotiation rdptrace saw).
fn rdp_or_tls(buf: &[u8]) -> Step {
    if frame::looks_like_tls_record(buf) {
        return Step::Tls;
    }
    if buf.len() < 3 && buf.first() == Some(&tls::HANDSHAKE) {
        // Perhaps a TLS record header still arriving.
        return Step::NeedMore;
    }
    frame::rdp(buf).into()
}

/// [2.2.1.2] Only a TPKT (or TLS, from a server that skipped the negotiation) answers the Connection Request:
/// a fast-path header there is some other protocol.
fn connection_confirm(buf: &[u8]) -> Step {
    if buf.first() == Some(&tls::HANDSHAKE) {
        return rdp_or_tls(buf);
    }
    match frame::tpkt(buf) {
        Framed::Not(FrameError {
            kind: FrameErrorKind::NotTpkt { .. },
            ..
        }) => Step::Garbage(x224::NOT_A_CONFIRM),
        other => other.into(),
    }
}

/// A TSRequest ([MS-CSSP] 2.2.1).
fn ts_request(buf: &[u8]) -> Step {
    frame::ts_request(buf, MAX_FRAME).into()
}

/// [2.2.10.2] The Early User Authorization Result, or a TPKT of any other length (the server went on without
/// it).
fn early_auth_or_rdp(buf: &[u8]) -> Step {
    match frame::tpkt(buf) {
        Framed::Not(FrameError {
            kind: FrameErrorKind::NotTpkt { .. },
            ..
        }) => frame::fixed(buf, EARLY_AUTH_RESULT_LEN).into(),
        Framed::Not(FrameError {
            kind: FrameErrorKind::TpktTooShort { length },
            ..
        }) if length == EARLY_AUTH_RESULT_LEN => Step::Frame(EARLY_AUTH_RESULT_LEN),
        Framed::NeedMore { total: None } => Step::NeedMore,
        _ => rdp_or_tls(buf),
    }
}

impl Dissector {
    /// Bytes of the TCP stream from `from`, in order.
    pub fn on_tcp_data(&mut self, from: Side, at: Millis, data: &[u8]) {
        self.now = at;
        let confirm_due = from == Side::Server && self.confirm_due();
        let dir = self.dir(from);
        if dir.outer == Outer::Opaque {
            self.trace.count_bytes(from, data.len());
            return;
        }
        let mut data = data;
        if let Some(skip) = dir.skip.as_mut() {
            let n = skip.left.min(data.len());
            skip.left -= n;
            data = data.get(n..).unwrap_or_default();
            if skip.left > 0 {
                return;
            }
            let Skip {
                content_type, len, ..
            } = *skip;
            dir.skip = None;
            self.skipped_record(from, content_type, len);
            self.trace.count_bytes(from, len);
            if data.is_empty() || self.dir(from).outer == Outer::Opaque {
                // As for a frame read whole: after a stream error in it, the rest cannot be framed.
                return;
            }
        }
        // The frames are read where they lie (in `data` itself when nothing was held): the buffer is taken out
        // while they are handled (the handlers need the dissector), and what they used is removed once, at the
        // end.
        let mut buf = std::mem::take(&mut self.dir(from).outer_buf);
        let whole = buf.is_empty();
        if !whole {
            buf.extend_from_slice(data);
        }
        let src: &[u8] = if whole { data } else { &buf };
        let mut pos = 0;
        // INVARIANT: each pass either consumes a whole frame or stops, so this loop ends.
        loop {
            let outer = self.dir(from).outer;
            let rest = src.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            let step = match outer {
                Outer::Rdp if confirm_due => connection_confirm(rest),
                Outer::Rdp => rdp_or_tls(rest),
                Outer::Tls => frame::tls_record(rest).into(),
                Outer::Opaque => {
                    let n = rest.len();
                    pos = src.len();
                    self.trace.count_bytes(from, n);
                    break;
                }
            };
            match step {
                Step::NeedMore => {
                    if outer == Outer::Tls
                        && let Framed::NeedMore { total: Some(len) } = frame::tls_record(rest)
                        && let Some(&content_type) = rest.first()
                        && self.record_body_unused(from, content_type)
                    {
                        // Nobody reads this record's bytes: they go by as they come, not gathered.
                        self.dir(from).skip = Some(Skip {
                            content_type,
                            len,
                            left: len.saturating_sub(rest.len()),
                        });
                        pos = src.len();
                        break;
                    }
                    if rest.len() > MAX_FRAME {
                        self.stream_error(from, "frame", 0, FrameErrorKind::TooLong.message());
                        pos = src.len();
                    }
                    break;
                }
                Step::Frame(n) => {
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
                        pos = src.len();
                    }
                }
                Step::Tls if outer == Outer::Rdp => {
                    // A TLS record where RDP framing was expected: a capture that starts at the ClientHello,
                    // or a peer that switched to TLS without a negotiation rdptrace saw.
                    self.outer_to_tls();
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
                Step::Tls | Step::Garbage(_) => {
                    if outer == Outer::Tls
                        && let Step::Frame(n) = rdp_or_tls(rest)
                    {
                        // A cleartext RDP PDU where TLS was due: xrdp writes a Disconnect Provider Ultimatum
                        // when its TLS setup fails.
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
                            pos = src.len();
                        }
                        continue;
                    }
                    let what = match step {
                        Step::Garbage(what) => what,
                        _ => "not a TLS record",
                    };
                    let len = rest.len();
                    self.garbage(from, len, what);
                    self.dir(from).outer = Outer::Opaque;
                    pos = src.len();
                    self.trace.count_bytes(from, len);
                    break;
                }
            }
        }
        let used = pos.min(src.len());
        if whole {
            buf.extend_from_slice(data.get(used..).unwrap_or_default());
        } else {
            buf.drain(..used);
        }
        let dir = self.dir(from);
        let during = std::mem::replace(&mut dir.outer_buf, buf);
        if !during.is_empty() {
            if dir.skip.is_some() {
                // Bytes the handlers fed meanwhile come after the skipped record's start.
                self.on_tcp_data(from, at, &during);
            } else {
                dir.outer_buf.extend_from_slice(&during);
            }
        }
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
        // INVARIANT: each pass either consumes a whole frame or stops, so this loop ends.
        loop {
            let inner = self.dir(from).inner;
            let rest = src.get(pos..).unwrap_or_default();
            let Some(&first) = rest.first() else {
                break;
            };
            let step = match inner {
                Inner::Opaque => break,
                _ if first == credssp::TS_REQUEST_TAG => ts_request(rest),
                Inner::EarlyAuth => early_auth_or_rdp(rest),
                // After CredSSP: the client moves on to MCS without a final TSRequest only if rdptrace missed it.
                Inner::Credssp | Inner::Rdp => rdp_or_tls(rest),
            };
            match step {
                Step::NeedMore => {
                    if rest.len() > MAX_FRAME {
                        self.stream_error(from, "frame", 0, FrameErrorKind::TooLong.message());
                        self.dir(from).inner = Inner::Opaque;
                    }
                    break;
                }
                Step::Frame(n) => {
                    let frame = rest.get(..n).unwrap_or_default();
                    self.inner_frame(from, inner, frame);
                    pos += n;
                }
                Step::Tls | Step::Garbage(_) => {
                    let what = match step {
                        Step::Garbage(what) => what,
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

    /// Both outer streams carry TLS records from now on (a Connection Confirm selected TLS or CredSSP).
    pub(super) fn outer_to_tls(&mut self) {
        for side in [Side::Client, Side::Server] {
            self.dir(side).outer = Outer::Tls;
        }
    }

    /// The TLS handshake is over: the client reports it (probe) or plaintext appears (replay).
    pub fn leave_tls(&mut self) {
        if self.trace.current() > PhaseName::Tls {
            return;
        }
        let selected = self
            .state
            .selected_protocol
            .unwrap_or_else(SecurityProtocol::empty);
        let inner = if selected.intersects(SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX) {
            Inner::Credssp
        } else if selected.intersects(SecurityProtocol::RDSTLS | SecurityProtocol::RDSAAD) {
            Inner::Opaque
        } else {
            Inner::Rdp
        };
        for side in [Side::Client, Side::Server] {
            self.dir(side).inner = inner;
        }
        if inner == Inner::Opaque {
            self.trace.record_event(
                self.now,
                EventKind::Anomaly {
                    detail: format!(
                        "{} is not dissected; the rest of the connection is opaque",
                        crate::codes::protocol_names(selected.bits())
                    ),
                },
            );
        }
    }

    fn inner_frame(&mut self, from: Side, inner: Inner, frame: &[u8]) {
        if frame.first() == Some(&credssp::TS_REQUEST_TAG) {
            credssp::ts_request(self, from, frame);
            return;
        }
        if inner == Inner::EarlyAuth && frame.len() == EARLY_AUTH_RESULT_LEN {
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
        self.dir(Side::Client).inner = Inner::Rdp;
        let early_auth = self
            .state
            .selected_protocol
            .is_some_and(|p| p.contains(SecurityProtocol::HYBRID_EX));
        self.dir(Side::Server).inner = if early_auth {
            self.await_server_in(PhaseName::EarlyUserAuth);
            Inner::EarlyAuth
        } else {
            Inner::Rdp
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testing::connection_request;
    use crate::trace::Trace;

    #[test]
    fn framing() {
        assert_eq!(rdp_or_tls(&[0x03, 0x00]), Step::NeedMore);
        assert_eq!(
            rdp_or_tls(&[0x03, 0x00, 0x00, 0x0b, 0, 0, 0, 0, 0, 0, 0]),
            Step::Frame(11)
        );
        assert_eq!(
            rdp_or_tls(&[0x03, 0x00, 0x00, 0x02]),
            Step::Garbage("TPKT length shorter than a TPKT header and an X.224 header")
        );
        assert_eq!(rdp_or_tls(&[0x00, 0x04, 1, 2]), Step::Frame(4));
        assert_eq!(rdp_or_tls(&[0x00, 0x81, 0x00]), Step::NeedMore);
        assert_eq!(rdp_or_tls(&[0x16, 0x03, 0x01, 0x00, 0x10]), Step::Tls);
        assert_eq!(rdp_or_tls(&[0x16]), Step::NeedMore);
        assert_eq!(rdp_or_tls(b"ECODH"), Step::Garbage(NOT_RDP_OR_TLS));
        assert_eq!(
            connection_confirm(b"HTTP/1.1 400"),
            Step::Garbage(x224::NOT_A_CONFIRM)
        );
        assert_eq!(ts_request(&[0x30, 0x03, 1, 2, 3]), Step::Frame(5));
        assert_eq!(ts_request(&[0x30, 0x82, 0x01]), Step::NeedMore);
        // The result (0x00000005, ACCESS_DENIED), a TPKT that goes on without it, and one of length 4.
        assert_eq!(early_auth_or_rdp(&[5, 0, 0, 0]), Step::Frame(4));
        assert_eq!(early_auth_or_rdp(&[5, 0, 0]), Step::NeedMore);
        assert_eq!(early_auth_or_rdp(&[0x03, 0, 0]), Step::NeedMore);
        assert_eq!(
            early_auth_or_rdp(&[0x03, 0, 0, 0x07, 2, 0xf0, 0x80]),
            Step::Frame(7)
        );
        assert_eq!(early_auth_or_rdp(&[0x03, 0, 0, 0x04]), Step::Frame(4));
    }

    #[test]
    fn a_fast_path_header_where_the_connection_confirm_belongs_is_garbage() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        d.on_tcp_data(Side::Client, 1.0, &connection_request(1));
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

    /// A sink that reads every record and opens none: what a replay with secrets but none for this session
    /// did before records nobody reads were let go by.
    struct ReadsAll;

    impl crate::dissect::TlsRecordSink for ReadsAll {
        fn record(&mut self, _from: Side, _record: &[u8]) -> Option<crate::dissect::Decrypted> {
            None
        }
    }

    /// Application data records of 200 bytes from the server, in segments cut across records and
    /// headers, and a last record cut short by the capture's end.
    fn opaque_session(sink: bool) -> (Trace, usize) {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        if sink {
            d.set_tls_sink(Box::new(ReadsAll));
        }
        crate::dissect::testing::negotiate(&mut d, SecurityProtocol::SSL);
        let mut stream = Vec::new();
        for i in 0..6u8 {
            stream.extend(crate::dissect::testing::record(23, &[i; 195]));
        }
        stream.extend(&crate::dissect::testing::record(23, &[9; 195])[..60]);
        let mut most_held = 0;
        for (i, piece) in stream.chunks(77).enumerate() {
            d.on_tcp_data(Side::Server, 3.0 + i as f64, piece);
            most_held = most_held.max(d.dir(Side::Server).outer_buf.len());
        }
        d.on_capture_end(20.0);
        (d.trace().clone(), most_held)
    }

    #[test]
    fn records_nobody_reads_go_by_without_being_gathered() {
        let (skipped, held) = opaque_session(false);
        let (read, held_for_the_sink) = opaque_session(true);
        // The bytes are not gathered: at most a record header's worth waits for the rest of the header.
        assert!(held < 5, "{held} bytes held");
        assert!(held_for_the_sink >= 77);
        // And the trace is the same as when every record was gathered whole.
        assert_eq!(
            serde_json::to_value(&skipped).unwrap(),
            serde_json::to_value(&read).unwrap()
        );
        assert!(skipped.events().any(|(_, e)| matches!(
            e.kind,
            EventKind::IncompleteFrame {
                from: Side::Server,
                bytes: 60,
                first_byte: 23
            }
        )));
    }

    #[test]
    fn a_deadline_records_the_bytes_of_a_frame_that_never_completed() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        d.on_tcp_data(Side::Client, 1.0, &connection_request(1));
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
