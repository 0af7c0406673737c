//! [RFC 9112] the little of HTTP/1.1 an RD Gateway speaks ([MS-TSGU] 3.3.5.1): request and response heads,
//! the chunked body of the RDG_IN_DATA channel, the authentication headers. No I/O; every buffer bounded.

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

/// The longest head (start line and headers) rdptrace reads.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers of one head.
const MAX_HEADERS: usize = 64;

/// [MS-TSGU] 3.3.5.1 the methods of the HTTP transport.
pub const RDG_OUT_DATA: &str = "RDG_OUT_DATA";
pub const RDG_IN_DATA: &str = "RDG_IN_DATA";
/// [MS-TSGU] 3.3.5.1 the URI of the gateway.
pub const GATEWAY_URI: &str = "/remoteDesktopGateway/";

/// Why a head cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("an HTTP head longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("not an HTTP message: {0}")]
    NotHttp(&'static str),
    #[error("a chunked body that does not parse: {0}")]
    Chunk(&'static str),
}

/// A request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

/// The header `name` (case-insensitive), the first of them.
pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a comma-separated header holds `token` (case-insensitive): `Connection: keep-alive, Upgrade`.
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The schemes of the WWW-Authenticate headers, and the token each carries (`NTLM <base64>`).
pub fn challenges(headers: &[(String, String)]) -> Vec<(String, Option<String>)> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
        .flat_map(|(_, v)| {
            // A header may list several schemes: `Negotiate, NTLM`. A Basic challenge's parameters
            // (`realm="x"`) stay with it.
            let mut out: Vec<(String, Option<String>)> = Vec::new();
            for part in v.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (scheme, rest) = match part.split_once(' ') {
                    Some((s, r)) => (s, Some(r.trim())),
                    None => (part, None),
                };
                if scheme.contains('=') {
                    // A parameter of the scheme before: `Basic realm="a", charset="UTF-8"`.
                    continue;
                }
                let token = rest
                    .filter(|r| !r.contains('='))
                    .or_else(|| rest.filter(|r| r.ends_with('=') && !r.contains('"')))
                    .map(str::to_owned);
                out.push((scheme.to_owned(), token));
            }
            out
        })
        .collect()
}

/// Where the head ends (the index after its CR LF CR LF), if it has ended.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn lines(head: &[u8]) -> Result<Vec<String>, HttpError> {
    let text = core::str::from_utf8(head).map_err(|_| HttpError::NotHttp("not text"))?;
    Ok(text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn headers(lines: &[String]) -> Result<Vec<(String, String)>, HttpError> {
    let mut out = Vec::new();
    for line in lines.iter().skip(1).take(MAX_HEADERS) {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::NotHttp("a header line without a colon"))?;
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

/// Takes a request head off the front of `buf`: `Ok(None)` until it is whole.
pub fn take_request(buf: &mut Vec<u8>) -> Result<Option<Request>, HttpError> {
    let Some(end) = head_end(buf) else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::TooLong)
        } else if !buf.is_empty() && !buf.iter().all(|b| b.is_ascii()) {
            Err(HttpError::NotHttp("not ASCII"))
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(HttpError::TooLong);
    }
    let head: Vec<u8> = buf.drain(..end).collect();
    let lines = lines(&head)?;
    let start = lines.first().ok_or(HttpError::NotHttp("no request line"))?;
    let mut parts = start.split(' ');
    let (Some(method), Some(uri), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::NotHttp("a request line without a version"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::NotHttp("not HTTP/1.x"));
    }
    Ok(Some(Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers: headers(&lines)?,
    }))
}

/// Takes a response head off the front of `buf`: `Ok(None)` until it is whole.
pub fn take_response(buf: &mut Vec<u8>) -> Result<Option<Response>, HttpError> {
    if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
        return Err(HttpError::NotHttp("no HTTP status line"));
    }
    let Some(end) = head_end(buf) else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::TooLong)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(HttpError::TooLong);
    }
    let head: Vec<u8> = buf.drain(..end).collect();
    let lines = lines(&head)?;
    let start = lines.first().ok_or(HttpError::NotHttp("no status line"))?;
    let mut parts = start.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::NotHttp("not HTTP/1.x"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HttpError::NotHttp("a status that is not a number"))?;
    Ok(Some(Response {
        status,
        reason: parts.next().unwrap_or_default().to_owned(),
        headers: headers(&lines)?,
    }))
}

/// The head of a request, to write.
pub fn request_head(method: &str, host: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut s = format!("{method} {GATEWAY_URI} HTTP/1.1\r\n");
    s.push_str("Cache-Control: no-cache\r\nPragma: no-cache\r\nAccept: */*\r\n");
    s.push_str("User-Agent: MS-RDGateway/1.0\r\n");
    s.push_str(&format!("Host: {host}\r\n"));
    for (name, value) in headers {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The head of a response, to write.
pub fn response_head(status: u16, reason: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// [RFC 9112] 7.1 one chunk of a chunked body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// [RFC 9112] 7.1 a chunked body, decoded as it arrives.
#[derive(Debug, Default)]
pub struct Dechunker {
    buf: Vec<u8>,
    /// Bytes of the current chunk still to come; `None` between chunks.
    remaining: Option<usize>,
    /// The last chunk (size 0) was read.
    pub done: bool,
}

/// The longest chunk rdptrace accepts.
const MAX_CHUNK: usize = 1 << 20;

impl Dechunker {
    /// Feeds bytes; returns the body bytes they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, HttpError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        // INVARIANT: each pass consumes bytes of `buf` or returns; `buf` is finite.
        loop {
            if self.done {
                self.buf.clear();
                return Ok(out);
            }
            match self.remaining {
                Some(0) => {
                    // The CR LF after the chunk's data.
                    if self.buf.len() < 2 {
                        return Ok(out);
                    }
                    if !self.buf.starts_with(b"\r\n") {
                        return Err(HttpError::Chunk("no CR LF after a chunk"));
                    }
                    self.buf.drain(..2);
                    self.remaining = None;
                }
                Some(n) => {
                    if self.buf.is_empty() {
                        return Ok(out);
                    }
                    let take = n.min(self.buf.len());
                    out.extend(self.buf.drain(..take));
                    self.remaining = Some(n - take);
                }
                None => {
                    let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        if self.buf.len() > 64 {
                            return Err(HttpError::Chunk("a chunk size line too long"));
                        }
                        return Ok(out);
                    };
                    let line = self.buf.get(..eol).unwrap_or_default();
                    let size_text = core::str::from_utf8(line)
                        .map_err(|_| HttpError::Chunk("a chunk size that is not text"))?;
                    let size_text = size_text.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| HttpError::Chunk("a chunk size that is not hex"))?;
                    if size > MAX_CHUNK {
                        return Err(HttpError::Chunk("a chunk longer than rdptrace accepts"));
                    }
                    self.buf.drain(..eol + 2);
                    if size == 0 {
                        self.done = true;
                    } else {
                        self.remaining = Some(size);
                    }
                }
            }
        }
    }
}

/// [RFC 7617] the value of an `Authorization: Basic` header.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// The scheme of an `Authorization` header value and its token.
pub fn authorization(value: &str) -> (&str, &str) {
    match value.trim().split_once(' ') {
        Some((scheme, token)) => (scheme, token.trim()),
        None => (value.trim(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request FreeRDP 2.11 sends first, with its header spellings.
    #[test]
    fn a_freerdp_request_parses() {
        let mut buf = b"RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1\r\nCache-Control: no-cache\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-Websocket-Key: ABCDEFGHIJKLMNO\r\nRDG-Connection-Id: {x}\r\nAuthorization: NTLM TlRMTVNTUAAB\r\nContent-Length: 0\r\n\r\nrest".to_vec();
        let r = take_request(&mut buf).unwrap().unwrap();
        assert_eq!(r.method, RDG_OUT_DATA);
        assert!(has_token(&r.headers, "connection", "upgrade"));
        assert_eq!(
            header(&r.headers, "sec-websocket-key"),
            Some("ABCDEFGHIJKLMNO")
        );
        assert_eq!(
            authorization(header(&r.headers, "Authorization").unwrap()),
            ("NTLM", "TlRMTVNTUAAB")
        );
        assert_eq!(buf, b"rest");
    }

    #[test]
    fn challenges_list_every_scheme() {
        let h = vec![
            ("WWW-Authenticate".to_owned(), "Negotiate".to_owned()),
            (
                "WWW-Authenticate".to_owned(),
                "NTLM TlRMTVNTUAAC".to_owned(),
            ),
            (
                "www-authenticate".to_owned(),
                "Basic realm=\"rdg\", charset=\"UTF-8\"".to_owned(),
            ),
        ];
        let c = challenges(&h);
        let schemes: Vec<&str> = c.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(schemes, ["Negotiate", "NTLM", "Basic"]);
        assert_eq!(c[1].1.as_deref(), Some("TlRMTVNTUAAC"));
        assert_eq!(c[2].1, None);
    }

    #[test]
    fn chunks_come_out_whole_whatever_the_cuts() {
        let mut wire = chunk(b"hello");
        wire.extend(chunk(b" world"));
        wire.extend(b"0\r\n\r\n");
        for cut in 1..wire.len() {
            let mut d = Dechunker::default();
            let mut out = d.push(&wire[..cut]).unwrap();
            out.extend(d.push(&wire[cut..]).unwrap());
            assert_eq!(out, b"hello world");
            assert!(d.done);
        }
        assert!(Dechunker::default().push(b"zz\r\n").is_err());
        assert!(Dechunker::default().push(b"FFFFFFFF\r\n").is_err());
    }

    #[test]
    fn heads_are_bounded() {
        let mut buf = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(take_request(&mut buf), Err(HttpError::TooLong));
        let mut buf = b"SSH-2.0-OpenSSH\r\n".to_vec();
        assert!(take_response(&mut buf).is_err());
        let mut buf = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\n\r\n".to_vec();
        let r = take_response(&mut buf).unwrap().unwrap();
        assert_eq!((r.status, r.reason.as_str()), (401, "Unauthorized"));
    }
}
