//! The scan's I/O edge: one TCP connection with one deadline for everything done on it, reading TPKTs
//! ([T.123] 8), TLS records ([RFC 8446] 5.1) and DER TSRequests ([MS-CSSP] 2.2.1) as
//! [`crate::wire::frame`] frames them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use ironrdp_pdu::tpkt::TpktHeader;

use crate::trace::CloseKind;
use crate::wire::frame::{self, FrameError, FrameErrorKind, Framed, TlsRecord};

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

/// Why bytes are not the frame the scan waited for, in the scan's words.
fn garbage(e: FrameError) -> String {
    match e.kind {
        FrameErrorKind::NotTpkt { first } | FrameErrorKind::NotRdp { first } => {
            format!("0x{first:02x} where a TPKT header (0x03) was expected")
        }
        FrameErrorKind::TpktTooShort { length } => format!("TPKT length {length}"),
        // The content type is at offset 0, the major version at 1.
        FrameErrorKind::NotTlsRecord { content_type, .. } if e.offset == 0 => {
            format!("0x{content_type:02x} where a TLS record was expected")
        }
        FrameErrorKind::NotTlsRecord { major, .. } => {
            format!("a TLS record header with major version 0x{major:02x}")
        }
        FrameErrorKind::TlsRecordTooLong { length } => format!("a TLS record of {length} bytes"),
        FrameErrorKind::NotTsRequest { tag } => {
            format!("0x{tag:02x} where a TSRequest (0x30) was expected")
        }
        FrameErrorKind::TsRequestTooLong { total } => {
            format!("a frame of {total} bytes, more than the scan reads")
        }
        other => other.message().to_owned(),
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

    /// Reads one frame: at least `header` bytes first, then as many as `framing` says the frame holds.
    async fn read_framed(
        &mut self,
        header: usize,
        framing: impl Fn(&[u8]) -> Framed,
    ) -> Result<Vec<u8>, LinkError> {
        self.fill(header).await?;
        // INVARIANT: each pass returns or reads at least one byte more (`fill` fails otherwise); `fill` bounds
        // the bytes by MAX_READ and the deadline bounds the time.
        loop {
            match framing(&self.buf) {
                Framed::Complete(n) => return Ok(self.take(n)),
                Framed::NeedMore { total } => {
                    let want = total.unwrap_or(self.buf.len().saturating_add(1));
                    self.fill(want.max(self.buf.len().saturating_add(1)))
                        .await?;
                }
                Framed::Not(e) => return Err(LinkError::Garbage(garbage(e))),
            }
        }
    }

    /// [T.123] 8 One TPKT, header included.
    pub async fn read_tpkt(&mut self) -> Result<Vec<u8>, LinkError> {
        self.read_framed(TpktHeader::SIZE, frame::tpkt).await
    }

    /// [RFC 8446] 5.1 One TLS record: content type, legacy version, fragment.
    pub async fn read_tls_record(&mut self) -> Result<(u8, u16, Vec<u8>), LinkError> {
        let record = self
            .read_framed(frame::TLS_RECORD_HEADER, frame::tls_record)
            .await?;
        let TlsRecord {
            content_type,
            version,
            fragment,
        } = TlsRecord::parse(&record)
            .ok_or_else(|| LinkError::Garbage("short TLS record header".to_owned()))?;
        Ok((content_type, version, fragment.to_vec()))
    }

    /// [MS-CSSP] 2.2.1 One DER TSRequest, tag and length included.
    pub async fn read_der(&mut self) -> Result<Vec<u8>, LinkError> {
        self.read_framed(2, |buf| frame::ts_request(buf, MAX_READ))
            .await
    }

    /// Closes the sending side, ignoring errors.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(300), self.stream.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that reads `bytes` and then the end of the stream.
    async fn link_over(bytes: &[u8]) -> Link<tokio::io::DuplexStream> {
        let (mut server, client) = tokio::io::duplex(4096);
        server.write_all(bytes).await.unwrap();
        drop(server);
        Link::wrap(client, Instant::now() + Duration::from_secs(5))
    }

    #[tokio::test]
    async fn frames_come_whole() {
        let mut bytes = vec![0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80];
        bytes.extend_from_slice(&[0x16, 0x03, 0x03, 0x00, 0x02, 0x0e, 0x00]);
        bytes.extend_from_slice(&[0x30, 0x81, 0x01, 0xaa]);
        let mut link = link_over(&bytes).await;
        assert_eq!(link.read_tpkt().await.unwrap(), bytes[..7]);
        assert_eq!(
            link.read_tls_record().await.unwrap(),
            (0x16, 0x0303, vec![0x0e, 0x00])
        );
        assert_eq!(link.read_der().await.unwrap(), bytes[14..]);
        assert_eq!(
            link.read_der().await,
            Err(LinkError::Closed(CloseKind::Fin))
        );
    }

    /// The scan frames as the dissector does, and says so in its words: a DER length that does not parse is
    /// named as such (it said "length"), and a record header whose major version is not 3 is not TLS (it was
    /// read as a TLS record).
    #[tokio::test]
    async fn garbage_is_named() {
        let cases: [(&[u8], &str); 6] = [
            (b"SSH-2.0-", "0x53 where a TPKT header (0x03) was expected"),
            (&[0x03, 0x00, 0x00, 0x05, 0x02], "TPKT length 5"),
            (
                &[0x48, 0x03, 0x01, 0x00, 0x01],
                "0x48 where a TLS record was expected",
            ),
            (
                &[0x16, 0x02, 0x00, 0x00, 0x01, 0x00],
                "a TLS record header with major version 0x02",
            ),
            (
                &[0x30, 0x85, 1, 1, 1, 1, 1],
                "a DER length that does not parse",
            ),
            (
                &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
                "a frame of 2147483653 bytes, more than the scan reads",
            ),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            let mut link = link_over(bytes).await;
            let got = match i {
                0 | 1 => link.read_tpkt().await.map(drop),
                2 | 3 => link.read_tls_record().await.map(drop),
                _ => link.read_der().await.map(drop),
            };
            assert_eq!(
                got,
                Err(LinkError::Garbage(want.to_owned())),
                "{bytes:02x?}"
            );
        }
    }
}
