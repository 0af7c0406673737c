//! TLS secrets in the NSS key log format (SSLKEYLOGFILE): from a file (`--keylog`) or from a pcapng
//! Decryption Secrets Block.
//!
//! Each line is `LABEL <client random, hex> <secret, hex>`; `#` starts a comment. The labels rdptrace uses:
//! `CLIENT_RANDOM` (the TLS 1.2 and older master secret) and the TLS 1.3 traffic secrets
//! `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_TRAFFIC_SECRET_0`,
//! `SERVER_TRAFFIC_SECRET_0`. Other labels are skipped.

use std::collections::HashMap;

/// Entries a key log may hold; a larger one is cut (a key log is per session, a few lines each).
pub const MAX_ENTRIES: usize = 1 << 20;
/// Most Standard RDP Security client randoms kept (each session tries them all).
pub const MAX_RDP_RANDOMS: usize = 4096;

/// Where a secret came from, for the `decrypted` fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--keylog`.
    File,
    /// A pcapng Decryption Secrets Block.
    Capture,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "key log",
            Source::Capture => "pcapng decryption secrets",
        }
    }
}

/// The secrets of one TLS session, by client random.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// TLS 1.2 and older: the 48-byte master secret.
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic: Option<Vec<u8>>,
    pub server_traffic: Option<Vec<u8>>,
    pub source: Option<Source>,
}

/// Secrets by client random.
#[derive(Debug, Clone, Default)]
pub struct KeyLog {
    entries: HashMap<[u8; 32], Entry>,
    /// Standard RDP Security client randoms (`RDP_CLIENT_RANDOM <hex>` lines, which rdptrace's probe
    /// writes beside the TLS secrets; other tools skip the label).
    pub rdp_client_randoms: Vec<[u8; 32]>,
    /// Lines that did not parse.
    pub bad_lines: usize,
}

/// What parsing one text added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    pub secrets: usize,
    pub bad_lines: usize,
}

impl KeyLog {
    pub fn new() -> Self {
        KeyLog::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Entry> {
        self.entries.get(client_random)
    }

    /// Adds the secrets of a key log text.
    pub fn add_text(&mut self, text: &str, source: Source) -> Added {
        let mut added = Added::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match self.add_line(line, source) {
                Some(true) => added.secrets += 1,
                Some(false) => {}
                None => {
                    added.bad_lines += 1;
                    self.bad_lines += 1;
                }
            }
        }
        added
    }

    /// `Some(true)` for a secret kept, `Some(false)` for a well-formed line rdptrace does not use.
    fn add_line(&mut self, line: &str, source: Source) -> Option<bool> {
        let mut parts = line.split_ascii_whitespace();
        let label = parts.next()?;
        let random = parts.next()?;
        if label == RDP_CLIENT_RANDOM {
            let random = <[u8; 32]>::try_from(hex::decode(random).ok()?.as_slice()).ok()?;
            if parts.next().is_some() {
                return None;
            }
            if !self.rdp_client_randoms.contains(&random)
                && self.rdp_client_randoms.len() < MAX_RDP_RANDOMS
            {
                self.rdp_client_randoms.push(random);
            }
            return Some(true);
        }
        let secret = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let random = hex::decode(random).ok()?;
        let secret = hex::decode(secret).ok()?;
        if secret.is_empty() || secret.len() > 64 {
            return None;
        }
        let Ok(random) = <[u8; 32]>::try_from(random.as_slice()) else {
            // `RSA <encrypted premaster prefix> <premaster>` lines and the like: not keyed by client random.
            return Some(false);
        };
        let kept = matches!(
            label,
            "CLIENT_RANDOM"
                | "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
                | "SERVER_HANDSHAKE_TRAFFIC_SECRET"
                | "CLIENT_TRAFFIC_SECRET_0"
                | "SERVER_TRAFFIC_SECRET_0"
        );
        if !kept {
            return Some(false);
        }
        if !self.entries.contains_key(&random) && self.entries.len() >= MAX_ENTRIES {
            return Some(false);
        }
        let entry = self.entries.entry(random).or_default();
        let slot = match label {
            "CLIENT_RANDOM" => {
                if secret.len() != 48 {
                    return None;
                }
                &mut entry.master
            }
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" => &mut entry.client_traffic,
            _ => &mut entry.server_traffic,
        };
        *slot = Some(secret);
        entry.source.get_or_insert(source);
        Some(true)
    }
}

/// The key log label of a Standard RDP Security client random ([MS-RDPBCGR] 5.3.4): `RDP_CLIENT_RANDOM
/// <64 hex digits>`.
pub const RDP_CLIENT_RANDOM: &str = "RDP_CLIENT_RANDOM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tls12_and_tls13_lines() {
        let random = "aa".repeat(32);
        let text = format!(
            "# a comment\n\
             CLIENT_RANDOM {random} {}\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {random} {}\n\
             SERVER_TRAFFIC_SECRET_0 {random} {}\n\
             EXPORTER_SECRET {random} {}\n\
             CLIENT_RANDOM {random} 0011\n\
             nonsense\n",
            "01".repeat(48),
            "02".repeat(32),
            "03".repeat(48),
            "04".repeat(32),
        );
        let mut log = KeyLog::new();
        let added = log.add_text(&text, Source::File);
        assert_eq!(
            added,
            Added {
                secrets: 3,
                bad_lines: 2
            }
        );
        let e = log.get(&[0xaa; 32]).unwrap();
        assert_eq!(e.master.as_deref(), Some(&[1u8; 48][..]));
        assert_eq!(e.client_handshake.as_deref(), Some(&[2u8; 32][..]));
        assert_eq!(e.server_traffic.as_deref(), Some(&[3u8; 48][..]));
        assert!(e.server_handshake.is_none());
        assert_eq!(e.source, Some(Source::File));
    }
}
