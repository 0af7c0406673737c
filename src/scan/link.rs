//! The scan's I/O edge: one TCP connection with one deadline for everything done on it, and framing for
//! TPKT ([T.123] 8), TLS records ([RFC 8446] 5.1) and DER TSRequests ([MS-CSSP] 2.2.1).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::trace::CloseKind;

/// The most bytes the scan reads for one frame or one handshake flight.
pub const MAX_READ: usize = 256 * 1024;

/// Why a connection gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum LinkError {
    /// The TCP connect failed.
    Connect(String),
    /// The server closed (FIN) or reset (RST) the connection.
    Closed(CloseKind),
    /// The deadline passed.
    TimedOut,
    /// Bytes that do not frame as what was expected.
    Garbage(String),
    Io(String),
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkError::Connect(e) => write!(f, "connect failed: {e}"),
            LinkError::Closed(CloseKind::Fin) => {
                f.write_str("the server closed the connection (FIN)")
            }
            LinkError::Closed(CloseKind::Rst) => {
                f.write_str("the server reset the connection (RST)")
            }
            LinkError::TimedOut => f.write_str("no answer before the deadline"),
            LinkError::Garbage(e) => write!(f, "unexpected bytes: {e}"),
            LinkError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

fn io_error(e: std::io::Error) -> LinkError {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => LinkError::Closed(CloseKind::Rst),
        std::io::ErrorKind::UnexpectedEof => LinkError::Closed(CloseKind::Fin),
        _ => LinkError::Io(e.to_string()),
    }
}

/// A stream with a deadline and a read buffer that keeps bytes read past a frame.
#[derive(Debug)]
pub struct Link<S> {
    pub stream: S,
    pub deadline: Instant,
    buf: Vec<u8>,
}

impl Link<TcpStream> {
    /// Connects to `addr`; everything done on the link must finish within `timeout` from now.
    pub async fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, LinkError> {
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => Err(LinkError::Connect(
                "no answer to the SYN before the deadline".to_owned(),
            )),
            Ok(Err(e)) => Err(LinkError::Connect(e.to_string())),
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(Link {
                    stream,
                    deadline,
                    buf: Vec::new(),
                })
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// Wraps a stream that already has its deadline.
    pub fn wrap(stream: S, deadline: Instant) -> Self {
        Link {
            stream,
            deadline,
            buf: Vec::new(),
        }
    }

    /// Bytes read but not yet returned.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Gives the stream back, with the bytes read past the last frame.
    pub fn into_parts(self) -> (S, Vec<u8>, Instant) {
        (self.stream, self.buf, self.deadline)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout_at(self.deadline, write).await {
            Err(_) => Err(LinkError::TimedOut),
            Ok(Err(e)) => Err(io_error(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads until at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), LinkError> {
        if n > MAX_READ {
            return Err(LinkError::Garbage(format!(
                "a frame of {n} bytes, more than the scan reads"
            )));
        }
        let mut chunk = [0u8; 8192];
        // INVARIANT: each pass reads at least one byte or returns; the deadline bounds it in time.
        while self.buf.len() < n {
            let read = tokio::time::timeout_at(self.deadline, self.stream.read(&mut chunk)).await;
            match read {
                Err(_) => return Err(LinkError::TimedOut),
                Ok(Ok(0)) => return Err(LinkError::Closed(CloseKind::Fin)),
                Ok(Ok(k)) => self.buf.extend_from_slice(chunk.get(..k).unwrap_or(&[])),
                Ok(Err(e)) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n.min(self.buf.len())).collect()
    }

    /// Peeks at the first byte of the next frame.
    pub async fn peek_u8(&mut self) -> Result<u8, LinkError> {
        self.fill(1).await?;
        self.buf
            .first()
            .copied()
            .ok_or_else(|| LinkError::Garbage("empty buffer".to_owned()))
    }

    /// [T.123] 8 One TPKT, header included.
    pub async fn read_tpkt(&mut self) -> Result<Vec<u8>, LinkError> {
        self.fill(4).await?;
        let [version, _, hi, lo, ..] = *self.buf else {
            return Err(LinkError::Garbage("short TPKT header".to_owned()));
        };
        if version != 0x03 {
            return Err(LinkError::Garbage(format!(
                "0x{version:02x} where a TPKT header (0x03) was expected"
            )));
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 7 {
            return Err(LinkError::Garbage(format!("TPKT length {len}")));
        }
        self.fill(len).await?;
        Ok(self.take(len))
    }

    /// [RFC 8446] 5.1 One TLS record: content type, legacy version, fragment.
    pub async fn read_tls_record(&mut self) -> Result<(u8, u16, Vec<u8>), LinkError> {
        self.fill(5).await?;
        let [kind, major, minor, hi, lo, ..] = *self.buf else {
            return Err(LinkError::Garbage("short TLS record header".to_owned()));
        };
        let version = u16::from_be_bytes([major, minor]);
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if !(20..=24).contains(&kind) {
            return Err(LinkError::Garbage(format!(
                "0x{kind:02x} where a TLS record was expected"
            )));
        }
        // [RFC 8446] 5.1: a record is at most 2^14 bytes plus expansion.
        if len > (1 << 14) + 2048 {
            return Err(LinkError::Garbage(format!("a TLS record of {len} bytes")));
        }
        self.fill(5 + len).await?;
        let record = self.take(5 + len);
        let fragment = record.get(5..).unwrap_or_default().to_vec();
        Ok((kind, version, fragment))
    }

    /// [MS-CSSP] 2.2.1 One DER TSRequest, tag and length included.
    pub async fn read_der(&mut self) -> Result<Vec<u8>, LinkError> {
        self.fill(2).await?;
        if self.buf.first() != Some(&0x30) {
            return Err(LinkError::Garbage(format!(
                "0x{:02x} where a TSRequest (0x30) was expected",
                self.buf.first().copied().unwrap_or(0)
            )));
        }
        // INVARIANT: a BER length has at most 4 length bytes after the first; two passes suffice.
        for _ in 0..2 {
            let mut r = crate::wire::Reader::new(&self.buf);
            let _ = r.u8("tag");
            match r.ber_length("length") {
                Ok(len) => {
                    let total = r.offset().saturating_add(len);
                    self.fill(total).await?;
                    return Ok(self.take(total));
                }
                Err(_) if self.buf.len() < 6 => self.fill(6).await?,
                Err(e) => return Err(LinkError::Garbage(e.what.to_owned())),
            }
        }
        Err(LinkError::Garbage(
            "a DER length that does not parse".to_owned(),
        ))
    }

    /// Closes the sending side, ignoring errors.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(300), self.stream.shutdown()).await;
    }
}
