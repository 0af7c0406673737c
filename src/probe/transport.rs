//! The probe's I/O edge: a tap that copies every byte on the socket for the dissector, a connection that
//! is plain TCP or TLS, and a framer that never drops a frame.

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

use core::pin::Pin;
use core::task::{Context, Poll};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::dissect::credssp::TS_REQUEST_TAG;
use crate::dissect::x224::NOT_A_CONFIRM;
use crate::trace::{CloseKind, Side};
use crate::wire::frame::{self, FrameError, FrameErrorKind, Framed};

/// Bytes copied off the socket, in the order they went by.
#[derive(Debug, Default)]
pub struct TapLog {
    chunks: Vec<(Side, f64, Vec<u8>)>,
    /// A write failed with ECONNRESET: the server had reset the connection. The socket reports a reset
    /// once; a TLS stack that writes a last alert after a failed handshake takes that report, and the
    /// next read only sees the end of the stream.
    reset_on_write: bool,
    /// The bytes in `chunks`, kept as they are pushed: a peer that trickles one byte at a time must not
    /// make every push walk the whole log.
    bytes: usize,
}

/// The most bytes a tap holds before the probe drains it; a peer that floods is cut off past this.
pub const TAP_LIMIT: usize = 4 << 20;

impl TapLog {
    pub fn drain(&mut self) -> Vec<(Side, f64, Vec<u8>)> {
        self.bytes = 0;
        std::mem::take(&mut self.chunks)
    }

    /// Whether a write saw the server's reset.
    pub fn reset_on_write(&self) -> bool {
        self.reset_on_write
    }

    fn len(&self) -> usize {
        self.bytes
    }
}

/// A stream that copies what it reads (from the server) and writes (from the client) into a [`TapLog`].
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    log: Arc<Mutex<TapLog>>,
    start: Instant,
}

impl<S> Tap<S> {
    pub fn new(inner: S, log: Arc<Mutex<TapLog>>, start: Instant) -> Self {
        Tap { inner, log, start }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn push(&self, side: Side, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let at = self.start.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut log) = self.log.lock()
            && log.len() < TAP_LIMIT
        {
            log.bytes = log.bytes.saturating_add(bytes.len());
            log.chunks.push((side, at, bytes.to_vec()));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = buf.filled().get(before..).unwrap_or(&[]).to_vec();
            self.push(Side::Server, &new);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        match &res {
            Poll::Ready(Ok(n)) => self.push(Side::Client, buf.get(..*n).unwrap_or(&[])),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                if let Ok(mut log) = self.log.lock() {
                    log.reset_on_write = true;
                }
            }
            _ => {}
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the RDP connection runs on: a TCP connection to the target, or the tunnel of an RD Gateway. The
/// probe's every byte goes through here; nothing above it knows which.
pub enum Edge {
    Tcp(TcpStream),
    Tunnel(Box<crate::gateway::tunnel::Tunnel>),
}

impl AsyncRead for Edge {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Edge::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Edge::Tunnel(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Edge {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Edge::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Edge::Tunnel(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Edge::Tcp(s) => Pin::new(s).poll_flush(cx),
            Edge::Tunnel(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Edge::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Edge::Tunnel(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connection: plain until the security upgrade, TLS after it, on a TCP connection or a gateway's
/// tunnel.
pub enum Conn {
    Plain(Tap<Edge>),
    Tls(Box<TlsStream<Tap<Edge>>>),
    /// Moved out during the TLS handshake.
    Gone,
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Gone => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection is gone",
            )),
        }
    }

    /// Reads what is there (TLS plaintext once TLS is up), as the socket gives it.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Gone => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection is gone",
            )),
        }
    }

    /// Ends the connection: TLS close_notify when in TLS, then FIN.
    pub async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
            Conn::Gone => Ok(()),
        };
    }
}

/// How to cut the next frame out of the byte stream ([`crate::wire::frame`] finds where it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// TPKT or fast-path.
    Rdp,
    /// [2.2.1.2] TPKT only: the answer to the X.224 Connection Request.
    Tpkt,
    /// A DER TSRequest.
    Der,
    /// A fixed number of bytes (the Early User Authorization Result).
    Fixed(usize),
}

/// Why no frame came.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed or reset the connection.
    Closed(CloseKind),
    /// The deadline passed.
    TimedOut,
    /// The bytes cannot be framed.
    Garbage(&'static str),
    Io(io::Error),
}

/// The most bytes of one frame the probe accepts (a TPKT is at most 65535 bytes).
pub const MAX_FRAME: usize = crate::dissect::MAX_FRAME;

/// Cuts frames out of the stream. Every byte it reads is kept until a frame is returned.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Bytes read but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes out the bytes read and not yet returned as a frame.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Bytes read off the connection, to be framed.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame of `kind` among the bytes pushed so far: `Ok(None)` when more bytes are
    /// needed, an error when the bytes cannot be framed or the frame would be longer than [`MAX_FRAME`].
    pub fn next_frame(&mut self, kind: FrameKind) -> Result<Option<Vec<u8>>, &'static str> {
        match frame_len(&self.buf, kind)? {
            Some(n) => {
                // INVARIANT: `frame_len` returns a length only when that many bytes are buffered.
                let n = n.min(self.buf.len());
                Ok(Some(self.buf.drain(..n).collect()))
            }
            None => Ok(None),
        }
    }

    /// Reads one frame, waiting until `deadline`.
    pub async fn read_frame(
        &mut self,
        conn: &mut Conn,
        kind: FrameKind,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, ReadError> {
        let mut chunk = vec![0u8; 16 * 1024];
        // INVARIANT: each pass either returns or reads at least one byte; the deadline bounds it in time,
        // `next_frame` bounds the bytes held.
        loop {
            match self.next_frame(kind) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(what) => return Err(ReadError::Garbage(what)),
            }
            let n = match tokio::time::timeout_at(deadline, conn.read(&mut chunk)).await {
                Err(_) => return Err(ReadError::TimedOut),
                Ok(Ok(0)) => return Err(ReadError::Closed(CloseKind::Fin)),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(classify(e)),
            };
            self.push(chunk.get(..n).unwrap_or(&[]));
        }
    }
}

/// An I/O error as a close, when it is one.
pub fn classify(e: io::Error) -> ReadError {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ReadError::Closed(CloseKind::Rst),
        // tokio-rustls: the peer closed the TCP stream without a TLS close_notify.
        io::ErrorKind::UnexpectedEof => ReadError::Closed(CloseKind::Fin),
        _ => ReadError::Io(e),
    }
}

fn frame_len(buf: &[u8], kind: FrameKind) -> Result<Option<usize>, &'static str> {
    let framed = match kind {
        FrameKind::Fixed(n) => frame::fixed(buf, n),
        // Not a TSRequest: maybe an RDP frame after all (the server moved on).
        FrameKind::Der => match buf {
            [] | [_] => return Ok(None),
            [TS_REQUEST_TAG, ..] => frame::ts_request(buf, MAX_FRAME),
            _ => frame::rdp(buf),
        },
        FrameKind::Tpkt => match frame::tpkt(buf) {
            Framed::Not(FrameError {
                kind: FrameErrorKind::NotTpkt { .. },
                ..
            }) => return Err(NOT_A_CONFIRM),
            other => other,
        },
        FrameKind::Rdp => frame::rdp(buf),
    };
    match framed.bounded(buf.len(), MAX_FRAME) {
        Framed::Complete(n) => Ok(Some(n)),
        Framed::NeedMore { .. } => Ok(None),
        Framed::Not(e) => Err(e.kind.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_whole_and_only_of_the_kind_waited_for() {
        let mut f = Framer::default();
        f.push(&[0x03, 0x00, 0x00, 0x07, 0x02]);
        assert_eq!(f.next_frame(FrameKind::Tpkt), Ok(None));
        f.push(&[0xf0, 0x80, 0x30]);
        assert_eq!(
            f.next_frame(FrameKind::Tpkt),
            Ok(Some(vec![0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80]))
        );
        assert_eq!(f.pending(), 1);
        // A fast-path header is not an answer to the Connection Request.
        let mut f = Framer::default();
        f.push(b"HTTP/1.1 400 Bad Request");
        assert!(f.next_frame(FrameKind::Tpkt).is_err());
        assert_eq!(f.next_frame(FrameKind::Rdp), Ok(None));
        // A TSRequest claiming 2 GiB is refused at once, not waited for.
        let mut f = Framer::default();
        f.push(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]);
        assert!(f.next_frame(FrameKind::Der).is_err());
    }
}
