//! `.rdp` files as mstsc writes them: UTF-16LE with a byte order mark (or UTF-8), one `name:type:value`
//! per line, type `s` (string), `i` (integer) or `b` (binary, hex). Unknown names are ignored.
//!
//! The settings rdptrace reads, and the request it makes from them (the request mstsc would make):
//!
//! | setting                          | rdptrace                                                          |
//! | -------------------------------- | ----------------------------------------------------------------- |
//! | `full address:s:host[:port]`     | the target; a port here wins over `server port`                   |
//! | `server port:i:N`                | the port when `full address` has none (else 3389)                 |
//! | `username:s:DOMAIN\user`         | user and domain; `user@domain` stays a UPN in the user name       |
//! | `domain:s:NAME`                  | the domain, unless `username` already named one                   |
//! | `enablecredsspsupport:i:0`       | no PROTOCOL_HYBRID: request PROTOCOL_SSL alone (`--security tls`) |
//! | `negotiate security layer:i:0`   | no negotiation of the security layer (see below)                  |
//! | `authentication level:i:1`       | `--strict-cert`: do not connect when the server is not authenticated |
//! | `authentication level:i:0,2,3`   | certificate problems recorded, not fatal (mstsc connects or warns) |
//! | `gatewayhostname:s:GW[:port]`    | the RD Gateway to go through (`--gateway`), unless `gatewayusagemethod` says not to |
//! | `gatewayusagemethod:i:N`         | 0 and 4: no gateway; 1, 2, 3 (or absent): through the gateway      |
//! | `gatewaycredentialssource:i:N`   | 0: NTLM, 2: Negotiate, 3: Basic (`--gateway-auth`); 4 (or absent): what the gateway offers |
//! | `loadbalanceinfo:s:TOKEN`        | the routing token of the X.224 request (`--load-balance-info`)    |
//!
//! `enablecredsspsupport` and `negotiate security layer` together decide the X.224 request:
//!
//! | credssp | negotiate | request                          | why                                                  |
//! | ------- | --------- | -------------------------------- | ---------------------------------------------------- |
//! | 1       | 1         | as `--security auto`             | mstsc offers SSL and HYBRID (HYBRID_EX on newer builds); rdptrace offers them when it has credentials, SSL alone without |
//! | 0       | 1         | PROTOCOL_SSL (`tls`)             | CredSSP is off, TLS is still negotiated              |
//! | 1       | 0         | PROTOCOL_HYBRID (`nla`)          | the client does not negotiate and uses NLA (the NegotiateSecurityLayer property of the Remote Desktop ActiveX control) |
//! | 0       | 0         | PROTOCOL_RDP (`rdp`)             | neither NLA nor a negotiated TLS layer: Standard RDP Security ([MS-RDPBCGR] 5.3) |
//!
//! A gateway (`gatewayhostname` set and `gatewayusagemethod` not 0 or 4) means mstsc tunnels through RD
//! Gateway ([MS-TSGU]), and so does rdptrace, with the gateway credentials of the command line or, as mstsc
//! uses them by default, the credentials of the connection. With `gatewayusagemethod:i:2` mstsc tries a
//! direct connection first; rdptrace goes through the gateway and notes it. Smart card (1) and cookie (5)
//! credential sources are not rdptrace's: it uses what the gateway offers and notes it.

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

use std::path::{Path, PathBuf};

use super::targets::TargetSpec;
use crate::probe::Security;

/// The largest .rdp file read: one is a few kilobytes; anything larger is clearly not one.
const MAX_SIZE: usize = 1 << 20;

/// A .rdp file that cannot be read, or does not say which server to connect to; each names the file, and
/// the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum RdpFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: larger than 1 MiB, not a .rdp file")]
    TooLarge { file: String },
    #[error("{file}: {error}")]
    Text {
        file: String,
        #[source]
        error: DecodeError,
    },
    #[error("{file}: line {line}: {error}")]
    Line {
        file: String,
        line: usize,
        #[source]
        error: LineError,
    },
    #[error("{file}: no full address:s: line")]
    NoAddress { file: String },
    #[error("{file}: server port {port} is not a TCP port")]
    Port { file: String, port: i64 },
}

impl RdpFileError {
    /// The line the error is on (1-based), when it is on one.
    pub fn line(&self) -> Option<usize> {
        match self {
            RdpFileError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Bytes that are not the text of a .rdp file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("UTF-16 text with an odd number of bytes")]
    OddLength,
    #[error("invalid UTF-16: {0}")]
    Utf16(#[source] core::char::DecodeUtf16Error),
    #[error("invalid UTF-8: {0}")]
    Utf8(#[source] std::string::FromUtf8Error),
    #[error("neither UTF-16LE nor UTF-8 text")]
    NotText,
}

/// What is wrong with one line of a .rdp file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not name:type:value: {0}")]
    NotSetting(String),
    #[error("unknown type {kind} (s, i or b): {line}")]
    UnknownType { kind: String, line: String },
    #[error("{0} must be an integer (type i)")]
    NotIntegerType(String),
    #[error("{name} is not an integer: {value}")]
    NotInteger { name: String, value: String },
    /// `full address` is not `host[:port]`.
    #[error("{0}")]
    Target(String),
}

/// Decodes the bytes of a .rdp file: UTF-16LE with BOM, UTF-16LE without one (every other byte zero),
/// or UTF-8 with or without BOM.
pub fn decode(bytes: &[u8]) -> Result<String, DecodeError> {
    if let Some(body) = bytes.strip_prefix(&[0xff, 0xfe]) {
        return utf16(body);
    }
    if let Some(body) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8(body.to_vec()).map_err(DecodeError::Utf8);
    }
    if let [first, 0, ..] = bytes
        && *first != 0
    {
        return utf16(bytes);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotText)
}

/// UTF-16LE text.
fn utf16(body: &[u8]) -> Result<String, DecodeError> {
    if !body.len().is_multiple_of(2) {
        return Err(DecodeError::OddLength);
    }
    let units = body
        .as_chunks::<2>()
        .0
        .iter()
        .map(|c| u16::from_le_bytes(*c));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(DecodeError::Utf16)
}

/// One `name:type:value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting<'a> {
    name: String,
    kind: char,
    value: &'a str,
    line: usize,
}

/// The settings of the file, or the first line that is not one: (line, error).
fn settings(text: &str) -> Result<Vec<Setting<'_>>, (usize, LineError)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '\0');
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err((i + 1, LineError::NotSetting(line.to_owned())));
        };
        let kind = match kind.trim() {
            "s" => 's',
            "i" => 'i',
            "b" => 'b',
            other => {
                return Err((
                    i + 1,
                    LineError::UnknownType {
                        kind: other.to_owned(),
                        line: line.to_owned(),
                    },
                ));
            }
        };
        out.push(Setting {
            name: name.trim().to_ascii_lowercase(),
            kind,
            value: value.trim(),
            line: i + 1,
        });
    }
    Ok(out)
}

fn integer(s: &Setting<'_>) -> Result<i64, LineError> {
    if s.kind != 'i' {
        return Err(LineError::NotIntegerType(s.name.clone()));
    }
    s.value.parse().map_err(|_| LineError::NotInteger {
        name: s.name.clone(),
        value: s.value.to_owned(),
    })
}

/// Parses the text of a .rdp file into the target mstsc would connect to; `name` is the file's name.
pub fn parse(text: &str, name: &str) -> Result<TargetSpec, RdpFileError> {
    let at = |line: usize, error: LineError| RdpFileError::Line {
        file: name.to_owned(),
        line,
        error,
    };
    let settings = settings(text).map_err(|(line, error)| at(line, error))?;
    let get = |key: &str| settings.iter().rev().find(|s| s.name == key);
    let int = |key: &str| -> Result<Option<i64>, RdpFileError> {
        get(key)
            .map(|s| integer(s).map_err(|error| at(s.line, error)))
            .transpose()
    };
    let full_address = get("full address").filter(|s| !s.value.is_empty());
    let Some(Setting {
        value: address,
        line,
        ..
    }) = full_address
    else {
        return Err(RdpFileError::NoAddress {
            file: name.to_owned(),
        });
    };
    let (host, port) = crate::probe::split_target(address)
        .map_err(|e| at(*line, LineError::Target(e.to_string())))?;
    let explicit_port = if address.starts_with('[') {
        address.contains("]:")
    } else {
        address.matches(':').count() == 1
    };
    let port = match int("server port")? {
        Some(p) if !explicit_port => {
            u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| RdpFileError::Port {
                    file: name.to_owned(),
                    port: p,
                })?
        }
        _ => port,
    };
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut spec = TargetSpec::new(&target, name);
    if let Some(u) = get("username").map(|s| s.value).filter(|v| !v.is_empty()) {
        match u.split_once('\\') {
            Some((domain, user)) => {
                spec.domain = Some(domain.to_owned()).filter(|d| !d.is_empty());
                spec.user = Some(user.to_owned());
            }
            None => spec.user = Some(u.to_owned()),
        }
    }
    if spec.domain.is_none() {
        spec.domain = get("domain")
            .map(|s| s.value.to_owned())
            .filter(|v| !v.is_empty());
    }
    let credssp = int("enablecredsspsupport")?.unwrap_or(1) != 0;
    let negotiate = int("negotiate security layer")?.unwrap_or(1) != 0;
    spec.security = match (credssp, negotiate) {
        (true, true) => None,
        (false, true) => Some(Security::Tls),
        (true, false) => Some(Security::Nla),
        (false, false) => Some(Security::Rdp),
    };
    if let Some(level) = int("authentication level")? {
        spec.strict_cert = Some(level == 1);
    }
    if let Some(gw) = get("gatewayhostname")
        .map(|s| s.value)
        .filter(|v| !v.is_empty())
    {
        let usage = int("gatewayusagemethod")?;
        if !matches!(usage, Some(0) | Some(4)) {
            spec.gateway = Some(gw.to_owned());
            if usage == Some(2) {
                spec.notes.push(format!(
                    "the .rdp file says to use RD Gateway {gw} when a direct connection cannot be made (gatewayusagemethod 2); rdptrace went through the gateway"
                ));
            }
            match int("gatewaycredentialssource")? {
                Some(0) => spec.gateway_auth = Some(crate::gateway::Scheme::Ntlm),
                Some(2) => spec.gateway_auth = Some(crate::gateway::Scheme::Negotiate),
                Some(3) => spec.gateway_auth = Some(crate::gateway::Scheme::Basic),
                Some(source @ (1 | 5)) => spec.notes.push(format!(
                    "the .rdp file asks for {} gateway credentials (gatewaycredentialssource {source}), which rdptrace does not have; it used what the gateway offers",
                    if source == 1 { "smart card" } else { "cookie-based" }
                )),
                _ => {}
            }
        }
    }
    if let Some(lb) = get("loadbalanceinfo")
        .map(|s| s.value)
        .filter(|v| !v.is_empty())
    {
        spec.load_balance_info = Some(lb.to_owned());
    }
    Ok(spec)
}

/// Reads and parses a .rdp file.
pub fn read(path: &Path) -> Result<TargetSpec, RdpFileError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| RdpFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_bytes(&bytes, &file)
}

/// Decodes and parses the bytes of a .rdp file named `name`.
pub fn parse_bytes(bytes: &[u8], name: &str) -> Result<TargetSpec, RdpFileError> {
    if bytes.len() > MAX_SIZE {
        return Err(RdpFileError::TooLarge {
            file: name.to_owned(),
        });
    }
    let text = decode(bytes).map_err(|error| RdpFileError::Text {
        file: name.to_owned(),
        error,
    })?;
    parse(&text, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16_with_bom(s: &str) -> Vec<u8> {
        let mut v = vec![0xff, 0xfe];
        for u in s.encode_utf16() {
            v.extend_from_slice(&u.to_le_bytes());
        }
        v
    }

    #[test]
    fn decodes_both_encodings() {
        let text = "full address:s:host\r\n";
        assert_eq!(decode(&utf16_with_bom(text)).unwrap(), text);
        assert_eq!(decode(&utf16_with_bom(text)[2..]).unwrap(), text);
        assert_eq!(decode(text.as_bytes()).unwrap(), text);
        let mut bom = vec![0xef, 0xbb, 0xbf];
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom).unwrap(), text);
        assert!(decode(&[0xff, 0xfe, 0x41]).is_err());
    }

    #[test]
    fn the_security_table() {
        let spec = |c: u8, n: u8| {
            parse(
                &format!(
                    "full address:s:h\nenablecredsspsupport:i:{c}\nnegotiate security layer:i:{n}\n"
                ),
                "x.rdp",
            )
            .unwrap()
            .security
        };
        assert_eq!(spec(1, 1), None);
        assert_eq!(spec(0, 1), Some(Security::Tls));
        assert_eq!(spec(1, 0), Some(Security::Nla));
        assert_eq!(spec(0, 0), Some(Security::Rdp));
    }

    #[test]
    fn ports_users_and_gateways() {
        let s = parse(
            "full address:s:rdp.example.com\nserver port:i:3390\nusername:s:CORP\\alice\n",
            "a.rdp",
        )
        .unwrap();
        assert_eq!(s.target, "rdp.example.com:3390");
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.domain.as_deref(), Some("CORP"));
        let s = parse("full address:s:rdp.example.com:4000\nserver port:i:3390\nusername:s:alice@corp.example\ndomain:s:OTHER\n", "b.rdp").unwrap();
        assert_eq!(s.target, "rdp.example.com:4000");
        assert_eq!(s.user.as_deref(), Some("alice@corp.example"));
        assert_eq!(s.domain.as_deref(), Some("OTHER"));
        let s = parse(
            "full address:s:[2001:db8::1]\nserver port:i:3390\n",
            "c.rdp",
        )
        .unwrap();
        assert_eq!(s.target, "[2001:db8::1]:3390");
        let s = parse("full address:s:h\ngatewayhostname:s:gw.example.com\ngatewayusagemethod:i:1\nauthentication level:i:1\n", "d.rdp").unwrap();
        assert_eq!(s.strict_cert, Some(true));
        assert_eq!(s.gateway.as_deref(), Some("gw.example.com"));
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        let s = parse(
            "full address:s:h\ngatewayhostname:s:gw.example.com\ngatewayusagemethod:i:0\n",
            "e.rdp",
        )
        .unwrap();
        assert!(s.notes.is_empty());
        assert_eq!(s.gateway, None);
    }

    /// The gateway settings of a farm's .rdp file, as RD Web Access writes them.
    #[test]
    fn gateways_credential_sources_and_load_balance_info() {
        let s = parse(
            "full address:s:broker.corp.example\ngatewayhostname:s:rdg.corp.example:8443\ngatewayusagemethod:i:2\ngatewaycredentialssource:i:3\nloadbalanceinfo:s:tsv://MS Terminal Services Plugin.1.Desktops\n",
            "farm.rdp",
        )
        .unwrap();
        assert_eq!(s.gateway.as_deref(), Some("rdg.corp.example:8443"));
        assert_eq!(s.gateway_auth, Some(crate::gateway::Scheme::Basic));
        assert_eq!(
            s.load_balance_info.as_deref(),
            Some("tsv://MS Terminal Services Plugin.1.Desktops")
        );
        assert!(s.notes[0].contains("gatewayusagemethod 2"), "{:?}", s.notes);
        for (source, scheme) in [
            (0, Some(crate::gateway::Scheme::Ntlm)),
            (2, Some(crate::gateway::Scheme::Negotiate)),
            (4, None),
        ] {
            let s = parse(
                &format!(
                    "full address:s:h\ngatewayhostname:s:gw\ngatewaycredentialssource:i:{source}\n"
                ),
                "g.rdp",
            )
            .unwrap();
            assert_eq!(s.gateway_auth, scheme, "{source}");
        }
        let s = parse(
            "full address:s:h\ngatewayhostname:s:gw\ngatewayusagemethod:i:4\n",
            "h.rdp",
        )
        .unwrap();
        assert_eq!(s.gateway, None);
    }

    #[test]
    fn bad_lines_name_their_number() {
        let e = parse("full address:s:h\nscreen mode id\n", "x.rdp").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(
            e.to_string(),
            "x.rdp: line 2: not name:type:value: screen mode id"
        );
        let e = parse("full address:s:h\nserver port:q:1\n", "x.rdp").unwrap_err();
        assert!(e.to_string().contains("line 2: unknown type q"), "{e}");
        let e = parse("full address:s:h\nenablecredsspsupport:i:yes\n", "x.rdp").unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: enablecredsspsupport is not an integer"),
            "{e}"
        );
        let e = parse("\nfull address:s:host:x\n", "x.rdp").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().starts_with("x.rdp: line 2: "), "{e}");
        let e = parse("username:s:bob\n", "x.rdp").unwrap_err();
        assert_eq!(e.line(), None);
        assert_eq!(e.to_string(), "x.rdp: no full address:s: line");
        let e = parse("full address:s:h\nserver port:i:70000\n", "x.rdp").unwrap_err();
        assert_eq!(e.to_string(), "x.rdp: server port 70000 is not a TCP port");
        // Unknown names are ignored.
        assert!(
            parse(
                "full address:s:h\nsmart sizing:i:1\nfuture thing:s:x\n",
                "x.rdp"
            )
            .is_ok()
        );
    }
}
