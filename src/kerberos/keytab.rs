//! The MIT keytab file format (version 0x502, as `ktutil`, `kadmin ktadd` and Windows' `ktpass` write it):
//! principals with their keys, for the built-in target's service key (`serve --keytab`) and the replay's
//! decryption of Kerberos inside CredSSP (`replay --keytab`).
//!
//! Keys never print: [`Key`] shows as `<key>`.

use core::fmt;

use crate::wire::{Reader, WireError, WireResult};

/// The file starts with 0x05 then the format version.
const MAGIC: u8 = 0x05;
const VERSION_2: u8 = 0x02;
/// A keytab of more entries than this is not one rdptrace needs to read.
const MAX_ENTRIES: usize = 4096;

/// A key's bytes, which never print.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(bytes: Vec<u8>) -> Key {
        Key(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<key>")
    }
}

/// One keytab entry: a principal's key of one encryption type and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name components: `["TERMSRV", "rdp01.corp.example"]`.
    pub components: Vec<String>,
    pub realm: String,
    /// [RFC 4120] 6.2 name type.
    pub name_type: u32,
    /// The key version number.
    pub kvno: u32,
    /// [RFC 3961] 8 the encryption type.
    pub etype: i32,
    pub key: Key,
}

impl Entry {
    /// `TERMSRV/rdp01.corp.example@CORP.EXAMPLE`.
    pub fn principal(&self) -> String {
        format!("{}@{}", self.components.join("/"), self.realm)
    }
}

/// Why a keytab cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabError {
    #[error("not a keytab file (it does not start with 0x05)")]
    NotKeytab,
    #[error("keytab format version {0} is not supported (only version 2, 0x0502)")]
    Version(u8),
    #[error("the keytab is cut short: {0}")]
    Truncated(WireError),
    #[error("the keytab holds no key")]
    Empty,
}

/// Reads every entry of a keytab file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, KeytabError> {
    let mut r = Reader::new(bytes);
    match r.u8("magic") {
        Ok(MAGIC) => {}
        _ => return Err(KeytabError::NotKeytab),
    }
    match r.u8("version").map_err(KeytabError::Truncated)? {
        VERSION_2 => {}
        other => return Err(KeytabError::Version(other)),
    }
    let mut entries = Vec::new();
    // INVARIANT: each pass consumes at least the four bytes of a size or stops; entries are bounded.
    while r.remaining() >= 4 && entries.len() < MAX_ENTRIES {
        let size = i32::from_be_bytes(r.array("entry size").map_err(KeytabError::Truncated)?);
        let len = usize::try_from(size.unsigned_abs()).unwrap_or(usize::MAX);
        let body = r.sub(len, "keytab entry").map_err(KeytabError::Truncated)?;
        if size <= 0 {
            // A hole left by a removed entry.
            continue;
        }
        entries.push(entry(body).map_err(KeytabError::Truncated)?);
    }
    if entries.is_empty() {
        return Err(KeytabError::Empty);
    }
    Ok(entries)
}

fn counted(r: &mut Reader<'_>, what: &'static str) -> WireResult<String> {
    let len = usize::from(r.u16_be(what)?);
    Ok(String::from_utf8_lossy(r.bytes(len, what)?).into_owned())
}

fn entry(mut r: Reader<'_>) -> WireResult<Entry> {
    let count = r.u16_be("num_components")?;
    let realm = counted(&mut r, "realm")?;
    let mut components = Vec::new();
    for _ in 0..count {
        components.push(counted(&mut r, "component")?);
    }
    let name_type = r.u32_be("name_type")?;
    r.u32_be("timestamp")?;
    let vno8 = r.u8("vno8")?;
    let etype = i32::from(r.u16_be("key type")?);
    let key_len = usize::from(r.u16_be("key length")?);
    let key = Key(r.bytes(key_len, "key")?.to_vec());
    // A 32-bit key version follows when the entry has room for it; it wins over the 8-bit one unless zero.
    let kvno = match r.u32_be("vno") {
        Ok(v) if v != 0 => v,
        _ => u32::from(vno8),
    };
    Ok(Entry {
        components,
        realm,
        name_type,
        kvno,
        etype,
        key,
    })
}

/// Writes entries as a version 2 keytab (for the tests and the lab: a key the KDC does not have).
pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut out = vec![MAGIC, VERSION_2];
    for e in entries {
        let mut body = Vec::new();
        let put = |body: &mut Vec<u8>, s: &[u8]| {
            body.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_be_bytes());
            body.extend_from_slice(s.get(..usize::from(u16::MAX)).unwrap_or(s));
        };
        body.extend_from_slice(
            &u16::try_from(e.components.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        put(&mut body, e.realm.as_bytes());
        for c in &e.components {
            put(&mut body, c.as_bytes());
        }
        body.extend_from_slice(&e.name_type.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.push(u8::try_from(e.kvno).unwrap_or(0));
        body.extend_from_slice(&u16::try_from(e.etype).unwrap_or(0).to_be_bytes());
        put(&mut body, e.key.expose());
        body.extend_from_slice(&e.kvno.to_be_bytes());
        out.extend_from_slice(&i32::try_from(body.len()).unwrap_or(i32::MAX).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry {
                components: vec!["TERMSRV".to_owned(), "rdp01.corp.example".to_owned()],
                realm: "CORP.EXAMPLE".to_owned(),
                name_type: 1,
                kvno: 300,
                etype: 18,
                key: Key::new(vec![7; 32]),
            },
            Entry {
                components: vec!["alice".to_owned()],
                realm: "CORP.EXAMPLE".to_owned(),
                name_type: 1,
                kvno: 2,
                etype: 17,
                key: Key::new(vec![9; 16]),
            },
        ]
    }

    #[test]
    fn round_trip_and_principal() {
        let bytes = write(&sample());
        let entries = parse(&bytes).unwrap();
        assert_eq!(entries, sample());
        assert_eq!(
            entries[0].principal(),
            "TERMSRV/rdp01.corp.example@CORP.EXAMPLE"
        );
        // Keys never print.
        assert!(!format!("{entries:?}").contains("7, 7"));
        assert!(format!("{entries:?}").contains("<key>"));
    }

    #[test]
    fn holes_are_skipped_and_cuts_are_errors() {
        let mut bytes = vec![5, 2];
        bytes.extend_from_slice(&(-6i32).to_be_bytes());
        bytes.extend_from_slice(&[0; 6]);
        bytes.extend_from_slice(&write(&sample())[2..]);
        assert_eq!(parse(&bytes).unwrap().len(), 2);
        let whole = write(&sample());
        for cut in 0..whole.len() - 1 {
            let _ = parse(&whole[..cut]);
        }
        assert_eq!(parse(b"\x05\x01"), Err(KeytabError::Version(1)));
        assert_eq!(parse(b"xx"), Err(KeytabError::NotKeytab));
        assert_eq!(parse(b"\x05\x02"), Err(KeytabError::Empty));
    }
}
