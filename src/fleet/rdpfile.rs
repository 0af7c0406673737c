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
//! | `gatewayhostname:s:GW`           | not followed: recorded in the trace and the output (see below)    |
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
//! A gateway (`gatewayhostname` set and `gatewayusagemethod` not 0) means mstsc would tunnel through
//! RD Gateway ([MS-TSGU]); rdptrace connects to the server directly and says so, since what it sees then
//! may differ from what mstsc sees through the gateway.

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

use super::targets::TargetSpec;
use crate::probe::Security;

/// Decodes the bytes of a .rdp file: UTF-16LE with BOM, UTF-16LE without one (every other byte zero),
/// or UTF-8 with or without BOM.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |body: &[u8]| -> Result<String, String> {
        if !body.len().is_multiple_of(2) {
            return Err("UTF-16 text with an odd number of bytes".to_owned());
        }
        let units = body
            .as_chunks::<2>()
            .0
            .iter()
            .map(|c| u16::from_le_bytes(*c));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| format!("invalid UTF-16: {e}"))
    };
    if let Some(body) = bytes.strip_prefix(&[0xff, 0xfe]) {
        return utf16(body);
    }
    if let Some(body) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8(body.to_vec()).map_err(|e| format!("invalid UTF-8: {e}"));
    }
    if let [first, 0, ..] = bytes
        && *first != 0
    {
        return utf16(bytes);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "neither UTF-16LE nor UTF-8 text".to_owned())
}

/// One `name:type:value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting<'a> {
    name: String,
    kind: char,
    value: &'a str,
    line: usize,
}

fn settings(text: &str) -> Result<Vec<Setting<'_>>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '\0');
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("line {}: not name:type:value: {line}", i + 1));
        };
        let kind = match kind.trim() {
            "s" => 's',
            "i" => 'i',
            "b" => 'b',
            other => {
                return Err(format!(
                    "line {}: unknown type {other} (s, i or b): {line}",
                    i + 1
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

fn integer(s: &Setting<'_>) -> Result<i64, String> {
    if s.kind != 'i' {
        return Err(format!(
            "line {}: {} must be an integer (type i)",
            s.line, s.name
        ));
    }
    s.value
        .parse()
        .map_err(|_| format!("line {}: {} is not an integer: {}", s.line, s.name, s.value))
}

/// Parses the text of a .rdp file into the target mstsc would connect to; `name` is the file's name.
pub fn parse(text: &str, name: &str) -> Result<TargetSpec, String> {
    let settings = settings(text).map_err(|e| format!("{name}: {e}"))?;
    let get = |key: &str| settings.iter().rev().find(|s| s.name == key);
    let int = |key: &str| -> Result<Option<i64>, String> {
        get(key)
            .map(integer)
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    };
    let address = get("full address")
        .map(|s| s.value)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name}: no full address:s: line"))?;
    let (host, port) = crate::probe::split_target(address).map_err(|e| {
        format!(
            "{name}: line {}: {e}",
            get("full address").map_or(0, |s| s.line)
        )
    })?;
    let explicit_port = if address.starts_with('[') {
        address.contains("]:")
    } else {
        address.matches(':').count() == 1
    };
    let port = match int("server port")? {
        Some(p) if !explicit_port => u16::try_from(p)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{name}: server port {p} is not a TCP port"))?,
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
        if usage != Some(0) {
            spec.notes.push(format!(
                "the .rdp file names RD Gateway {gw}{}; rdptrace does not follow gateways and connected to {target} directly",
                usage
                    .map(|u| format!(" (gatewayusagemethod {u})"))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(spec)
}

/// Reads and parses a .rdp file.
pub fn read(path: &std::path::Path) -> Result<TargetSpec, String> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    // A .rdp file is a few kilobytes; refuse anything that is clearly not one.
    if bytes.len() > 1 << 20 {
        return Err(format!("{name}: larger than 1 MiB, not a .rdp file"));
    }
    let text = decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
    parse(&text, &name)
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
        assert!(s.notes[0].contains("gw.example.com"), "{:?}", s.notes);
        let s = parse(
            "full address:s:h\ngatewayhostname:s:gw.example.com\ngatewayusagemethod:i:0\n",
            "e.rdp",
        )
        .unwrap();
        assert!(s.notes.is_empty());
    }

    #[test]
    fn bad_lines_name_their_number() {
        let e = parse("full address:s:h\nscreen mode id\n", "x.rdp").unwrap_err();
        assert_eq!(e, "x.rdp: line 2: not name:type:value: screen mode id");
        let e = parse("full address:s:h\nserver port:q:1\n", "x.rdp").unwrap_err();
        assert!(e.contains("line 2: unknown type q"), "{e}");
        let e = parse("full address:s:h\nenablecredsspsupport:i:yes\n", "x.rdp").unwrap_err();
        assert!(
            e.contains("line 2: enablecredsspsupport is not an integer"),
            "{e}"
        );
        let e = parse("username:s:bob\n", "x.rdp").unwrap_err();
        assert!(e.contains("no full address"), "{e}");
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
