//! [MS-KKDCP] 3.2.5 the KDC proxy client: one HTTP POST of a KDC-PROXY-MESSAGE, over TLS for `https://`,
//! and the answer's body (or the HTTP status that replaced it). The proxy's certificate is checked against
//! the roots of `SSL_CERT_FILE`, else the system's, as a Windows client checks it.

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

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use url::Url;

use crate::trace::KdcError;

/// The most the probe reads of a KDC proxy's answer.
const MAX_RESPONSE: usize = (1 << 20) + (16 << 10);

/// Posts `body` to the proxy at `url` on `stream`; the answer's body when the status is 200.
pub(super) async fn post(
    stream: TcpStream,
    url: &Url,
    host: &str,
    body: &[u8],
) -> Result<Vec<u8>, KdcError> {
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/kerberos\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nUser-Agent: rdptrace\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let response = if url.scheme() == "https" {
        let config = super::kdc::kdc_proxy_tls().map_err(KdcError::Tls)?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| KdcError::Tls(format!("{host} is not a server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| KdcError::Tls(e.to_string()))?;
        round_trip(tls, &request).await?
    } else {
        round_trip(stream, &request).await?
    };
    let (status, body) = parse_response(&response).map_err(KdcError::Malformed)?;
    if status != 200 {
        return Err(KdcError::HttpStatus(status));
    }
    Ok(body)
}

async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<Vec<u8>, KdcError> {
    let io = |e: std::io::Error| KdcError::Io(e.to_string());
    stream.write_all(request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    // INVARIANT: each pass appends what one read returned or ends; the size is bounded.
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            // A server that closes without close_notify has sent all it will send.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) => return Err(io(e)),
        }
        if out.len() > MAX_RESPONSE {
            return Err(KdcError::Malformed(
                "the KDC proxy's answer is too long".to_owned(),
            ));
        }
    }
    if out.is_empty() {
        return Err(KdcError::Closed);
    }
    Ok(out)
}

/// [RFC 9112] the status and body of an HTTP/1.x response (Content-Length, chunked, or to the end).
pub fn parse_response(bytes: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the HTTP header")?;
    let head = String::from_utf8_lossy(bytes.get(..split).unwrap_or_default()).into_owned();
    let body = bytes.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split_whitespace();
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("not an HTTP response: {status_line}"));
    }
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {status_line}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or_else(|| format!("the body is shorter than its {n}-byte Content-Length"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// [RFC 9112] 7.1 chunked transfer coding.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // INVARIANT: each pass consumes a chunk header and its data, or ends; the input is finite.
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk without its size line")?;
        let size_text = String::from_utf8_lossy(rest.get(..eol).unwrap_or_default()).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = rest.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        let data = rest.get(..size).ok_or("a chunk cut short")?;
        out.extend_from_slice(data);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/kerberos\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_response(ok).unwrap(), (200, b"abc".to_vec()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, b"abcde".to_vec()));
        let refused = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(parse_response(refused).unwrap().0, 503);
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        for cut in 0..ok.len() {
            let _ = parse_response(&ok[..cut]);
        }
    }
}
