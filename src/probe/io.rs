//! The probe's side of the socket: writes, frame reads, what the server sends after an error, the close.

use std::time::Duration;

use tracing::debug;

use super::transport::{self, Conn, FrameKind, ReadError};
use super::{Run, Stop};
use crate::pdu::PduInfo;
use crate::trace::{CloseKind, EventKind, PhaseName, Side};

/// How long the probe reads what the server sent before the connection ended under a write.
const LEFT_GRACE: Duration = Duration::from_millis(1500);
/// The most bytes it reads then (the socket's receive buffer holds less).
const LEFT_BYTES: usize = transport::TAP_LIMIT;

impl Run<'_> {
    /// Writes bytes to the server (TLS plaintext once TLS is up), through Standard RDP Security when in force.
    pub(super) async fn send(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let secured;
        let bytes = match self.rdp_security.as_mut().map(|shim| shim.outgoing(bytes)) {
            Some(Ok(wire)) => {
                secured = wire;
                &secured[..]
            }
            Some(Err(e)) => {
                self.security_failed(e, Side::Client).await;
                return Err(Stop);
            }
            None => bytes,
        };
        let at = self.at();
        self.write(at, bytes).await
    }

    /// Writes bytes as they go on the connection (TLS plaintext once TLS is up) and records them as sent at
    /// `at`. Every write of the probe comes here, so that a write the connection ended under is settled in
    /// one way: see [`Run::connection_ended`].
    async fn write(&mut self, at: f64, bytes: &[u8]) -> Result<(), Stop> {
        let written = self.conn.write_all(bytes).await;
        // Only what left: a PDU whose write failed never reached the server (nor a capture).
        if written.is_ok() && self.conn.is_tls() {
            self.d.on_plaintext(Side::Client, at, bytes);
        }
        self.drain_tap();
        let Err(e) = written else {
            return Ok(());
        };
        let detail = e.to_string();
        match transport::classify(e) {
            ReadError::Closed(how) => self.connection_ended(how).await,
            _ => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ClientLimit {
                        detail: format!("writing to the socket failed: {detail}"),
                    },
                );
            }
        }
        Err(Stop)
    }

    /// The connection ended (`how`) under one of the client's writes, or under its TLS handshake. What the
    /// server sent before the end is still there to read: in the framer and the TLS session, and in the
    /// socket's receive buffer, which the kernel keeps past a reset. It is read first (for
    /// [`LEFT_GRACE`], at most [`LEFT_BYTES`]) and fed to the dissector, and only then is the end
    /// recorded, so that a Set Error Info followed by a reset reads the same whether the client was
    /// reading or writing when the reset came.
    pub(super) async fn connection_ended(&mut self, how: CloseKind) {
        let tls = self.conn.is_tls();
        // TLS plaintext the framer holds was never fed; on a plain connection the tap fed it when it was read.
        let held = self.framer.take_pending();
        if tls && !held.is_empty() {
            let at = self.at();
            self.d.on_plaintext(Side::Server, at, &held);
        }
        let total = self.tokio_start + self.cfg.timeout;
        let deadline = (tokio::time::Instant::now() + LEFT_GRACE).min(total);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut read = 0usize;
        // INVARIANT: each pass reads at least one byte or ends; `deadline` and LEFT_BYTES bound the loop.
        while read < LEFT_BYTES {
            let n = match tokio::time::timeout_at(deadline, self.conn.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => n,
                // The end of the stream, the error that ended it, or the deadline.
                _ => break,
            };
            read = read.saturating_add(n);
            if tls {
                let at = self.at();
                self.d
                    .on_plaintext(Side::Server, at, chunk.get(..n).unwrap_or_default());
            }
            self.drain_tap();
        }
        self.drain_tap();
        self.read_failed(ReadError::Closed(how), "the end of the connection");
    }

    /// Reads one frame and feeds it to the dissector. Returns the frame and what the dissector made of it.
    pub(super) async fn recv(
        &mut self,
        kind: FrameKind,
        waiting_for: &str,
    ) -> Result<(Vec<u8>, Vec<PduInfo>), Stop> {
        let (deadline, which) = self.deadline();
        let res = self.framer.read_frame(&mut self.conn, kind, deadline).await;
        let _ = self.d.take_recent();
        if let Ok(frame) = &res {
            // Plaintext first, so that the TLS records that carried it count in the phase it belongs to.
            let at = self.at();
            if self.conn.is_tls() {
                self.d.on_plaintext(Side::Server, at, frame);
            }
        }
        self.drain_tap();
        match res {
            Ok(frame) => {
                let recent = self.d.take_recent();
                let frame = if kind == FrameKind::Rdp {
                    self.unsecure(frame).await?
                } else {
                    frame
                };
                Ok((frame, recent))
            }
            Err(ReadError::TimedOut) => {
                let at = self.at();
                self.d.on_timeout(at, which, waiting_for);
                Err(Stop)
            }
            Err(e) => {
                self.read_failed(e, waiting_for);
                Err(Stop)
            }
        }
    }

    /// Feeds what the tap copied off the socket (or the gateway's tunnel) to the dissector; a capture gets
    /// the bytes of the socket, or those of the gateway's connections.
    pub(super) fn drain_tap(&mut self) {
        let chunks = match self.tap.lock() {
            Ok(mut log) => log.drain(),
            Err(_) => Vec::new(),
        };
        for (side, at, bytes) in chunks {
            if let Some(r) = self.recorder.as_mut() {
                r.data(side, at, &bytes);
            }
            self.d.on_tcp_data(side, at, &bytes);
        }
        self.drain_gateway();
    }

    /// Feeds a frame read off the connection to the dissector (plaintext first), then the raw bytes.
    pub(super) fn feed_read(&mut self, res: &Result<Vec<u8>, ReadError>) {
        if let Ok(frame) = res {
            let at = self.at();
            if self.conn.is_tls() {
                self.d.on_plaintext(Side::Server, at, frame);
            }
        }
        self.drain_tap();
    }

    /// The server closed or reset the connection.
    pub(super) fn server_closed(&mut self, how: CloseKind, at: f64) {
        self.d.on_close(Side::Server, how, at);
        if let Some(r) = self.recorder.as_mut() {
            r.close(Side::Server, how, at);
        }
    }

    pub(super) fn read_failed(&mut self, e: ReadError, waiting_for: &str) {
        let at = self.at();
        match e {
            ReadError::Closed(mut how) => {
                if how == CloseKind::Fin && self.tap.lock().is_ok_and(|log| log.reset_on_write()) {
                    // The end of the stream came after a write had seen the server's reset.
                    how = CloseKind::Rst;
                }
                debug!(?how, waiting_for, "server closed");
                self.server_closed(how, at);
            }
            ReadError::TimedOut => {}
            ReadError::Garbage(what) => {
                let pending = self.framer.pending();
                if self.conn.is_tls() {
                    // The dissector saw the same bytes as plaintext only if they framed; report them here.
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ProtocolError {
                            from: Side::Server,
                            pdu: waiting_for.to_owned(),
                            offset: Some(0),
                            detail: format!("{what} ({pending} bytes)"),
                        },
                    );
                } else if !self
                    .d
                    .trace()
                    .events()
                    .any(|(_, e)| matches!(e.kind, EventKind::ProtocolError { .. }))
                {
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ProtocolError {
                            from: Side::Server,
                            pdu: waiting_for.to_owned(),
                            offset: Some(0),
                            detail: what.to_owned(),
                        },
                    );
                }
            }
            ReadError::Io(e) => {
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ClientLimit {
                        detail: format!("reading from the socket failed: {e}"),
                    },
                );
            }
        }
    }

    /// After an error, keeps reading (into the dissector only) until the server closes, for a short while.
    pub(super) async fn drain_after_error(&mut self) {
        let grace = Duration::from_millis(1500);
        let total = self.tokio_start + self.cfg.timeout;
        let deadline = (tokio::time::Instant::now() + grace).min(total);
        // INVARIANT: bounded by `deadline`.
        loop {
            let res = self
                .framer
                .read_frame(&mut self.conn, FrameKind::Rdp, deadline)
                .await;
            self.feed_read(&res);
            match res {
                Ok(_) => {}
                Err(ReadError::TimedOut) => {
                    self.leave("the client gave up after the error").await;
                    return;
                }
                Err(e) => {
                    self.read_failed(e, "next PDU from the server");
                    return;
                }
            }
        }
    }

    /// The client leaves: a Disconnect Provider Ultimatum when the MCS domain is up, then close.
    pub(super) async fn leave(&mut self, reason: &str) {
        let at = self.at();
        self.d.trace_mut().record_event(
            at,
            EventKind::ClientClosed {
                reason: reason.to_owned(),
            },
        );
        if self
            .d
            .trace()
            .phase(PhaseName::ChannelJoin)
            .start_ms
            .is_some()
        {
            // [2.2.2.3] MCS Disconnect Provider Ultimatum, reason rn-user-requested. The client leaves either
            // way: the end a write meets is recorded in it, a write that blocks is given up.
            let dpu = [0x03, 0x00, 0x00, 0x09, 0x02, 0xf0, 0x80, 0x21, 0x80];
            let sent = tokio::time::timeout(Duration::from_millis(500), self.write(at, &dpu)).await;
            if sent.is_err() {
                debug!("the disconnect provider ultimatum did not leave within 500 ms");
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.conn.shutdown()).await;
        self.drain_tap();
        let at = self.at();
        if let Some(r) = self.recorder.as_mut() {
            r.close(Side::Client, CloseKind::Fin, at);
        }
        self.conn = Conn::Gone;
    }
}
