//! The target's own view of each connection: every byte it reads and writes goes to a
//! [`Dissector`], which turns them into a [`Trace`].
//!
//! Two taps feed one dissector: [`Tapped`] sits on the TCP socket (the outer stream: X.224, then TLS
//! records) and the driver reports the TLS plaintext of both directions itself.

use core::future::Future as _;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::dissect::Dissector;
use crate::trace::{CloseKind, EventKind, Millis, PhaseName, Side, Trace};

/// A shared handle on the connection's dissector and clock.
#[derive(Clone)]
pub struct Tap(Arc<Mutex<Inner>>);

struct Inner {
    dissector: Dissector,
    start: Instant,
    /// The first close is the one that ended the connection; later ones are not recorded.
    closed: bool,
}

impl Tap {
    pub fn new(trace: Trace) -> Tap {
        Tap(Arc::new(Mutex::new(Inner {
            dissector: Dissector::new(trace),
            start: Instant::now(),
            closed: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes on the TCP stream: read from the client ([`Side::Client`]) or written by the target.
    pub fn tcp(&self, from: Side, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let at = inner.now();
        inner.dissector.on_tcp_data(from, at, data);
    }

    /// TLS plaintext, read from the client or written by the target.
    pub fn plaintext(&self, from: Side, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let at = inner.now();
        inner.dissector.on_plaintext(from, at, data);
    }

    /// Decrypts Standard RDP Security in the target's own trace.
    pub fn set_security_sink(&self, sink: Box<dyn crate::dissect::SecuritySink>) {
        self.lock().dissector.set_security_sink(sink);
    }

    /// The TLS handshake is complete.
    pub fn tls_established(&self, version: String, cipher_suite: String) {
        let mut inner = self.lock();
        let at = inner.now();
        inner.dissector.leave_tls();
        inner.dissector.trace_mut().record_event_in(
            PhaseName::Tls,
            at,
            EventKind::TlsEstablished {
                version,
                cipher_suite,
            },
        );
    }

    /// The connection ended: `by` closed it. Only the first close is recorded.
    pub fn close(&self, by: Side, how: CloseKind) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        inner.closed = true;
        let at = inner.now();
        inner.dissector.on_close(by, how, at);
    }

    /// Moves the trace into a phase (the target knows where it is before the client's next PDU shows it).
    pub fn enter(&self, phase: PhaseName) {
        let mut inner = self.lock();
        let at = inner.now();
        if phase > inner.dissector.trace().current() {
            inner.dissector.trace_mut().enter(phase, at);
        }
    }

    /// Records an event in the current phase.
    pub fn event(&self, kind: EventKind) {
        let mut inner = self.lock();
        let at = inner.now();
        inner.dissector.trace_mut().record_event(at, kind);
    }

    /// The selected security protocol, once the Connection Confirm is out.
    pub fn selected_protocol(&self) -> Option<u32> {
        self.lock()
            .dissector
            .state()
            .selected_protocol
            .map(|p| p.bits())
    }

    /// The phase the connection is in.
    pub fn current(&self) -> PhaseName {
        self.lock().dissector.trace().current()
    }

    /// The trace so far, settled: `failed` says whether the connection failed in its current phase.
    pub fn finish(&self, failed: bool) -> Trace {
        let inner = self.lock();
        let mut trace = inner.dissector.trace().clone();
        trace.finish(failed);
        trace
    }
}

impl Inner {
    fn now(&self) -> Millis {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}

/// A TCP stream whose bytes both ways go to a [`Tap`].
pub struct Tapped {
    tcp: TcpStream,
    tap: Tap,
    /// Bytes read (and tapped) already, handed out again before the socket is read: what was buffered when
    /// the stream changed hands (to TLS), or what is held back by [`Tapped::set_delay`].
    replay: Vec<u8>,
    /// How long what the client sends is held before the target sees it: every reply comes that much later.
    delay: Option<Duration>,
    /// The delay of the bytes in `replay`, running.
    held: Option<Pin<Box<Sleep>>>,
}

impl Tapped {
    pub fn new(tcp: TcpStream, tap: Tap) -> Tapped {
        Tapped {
            tcp,
            tap,
            replay: Vec::new(),
            delay: None,
            held: None,
        }
    }

    /// Holds everything the client sends for `delay` before the target sees it.
    pub fn set_delay(&mut self, delay: Duration) {
        self.delay = Some(delay);
    }

    /// Hands `bytes` out again before reading the socket.
    pub fn push_back(&mut self, bytes: Vec<u8>) {
        let mut bytes = bytes;
        bytes.append(&mut self.replay);
        self.replay = bytes;
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl AsyncRead for Tapped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // INVARIANT: at most two passes: a delayed read is held, then handed out on the next pass.
        loop {
            if let Some(held) = this.held.as_mut() {
                if held.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.held = None;
            }
            if !this.replay.is_empty() {
                let n = this.replay.len().min(buf.remaining());
                buf.put_slice(&this.replay[..n]);
                this.replay.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let Some(delay) = this.delay else {
                let before = buf.filled().len();
                let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
                if let Poll::Ready(Ok(())) = polled {
                    this.tap.tcp(Side::Client, &buf.filled()[before..]);
                }
                return polled;
            };
            let mut scratch = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.tcp).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.tap.tcp(Side::Client, read.filled());
                    this.replay.extend_from_slice(read.filled());
                    this.held = Some(Box::pin(tokio::time::sleep(delay)));
                }
            }
        }
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.tap.tcp(Side::Server, buf.get(..n).unwrap_or(buf));
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
