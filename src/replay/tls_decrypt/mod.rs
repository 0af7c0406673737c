//! Decryption of TLS records with secrets the user gives: a [`crate::dissect::TlsRecordSink`].
//!
//! The decryptor reads the handshake in clear (randoms, cipher suite, extensions, the ClientKeyExchange),
//! finds the session's secret (a key log entry by client random, or the RSA premaster secret decrypted
//! with a server key), derives the record keys ([`prf`]) and opens the records ([`record`]).

pub mod prf;
pub mod record;
pub mod suites;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions,
    parse_tls_message_handshake,
};
use tracing::debug;

use super::keylog::{KeyLog, Source};
use super::order::{Learned, Position};
use crate::dissect::{Decrypted, TlsRecordSink};
use crate::trace::{Fact, FactValue, PerSide, Side};
use record::RecordCipher;
use suites::{Kx, Suite};

/// Bytes of handshake messages kept for the extended master secret's session hash.
const MAX_TRANSCRIPT: usize = 1 << 18;
/// Bytes of a handshake message buffered across records.
const MAX_HANDSHAKE: usize = 1 << 18;
/// Master secrets remembered by session ID, for abbreviated handshakes later in the capture.
const MAX_SESSIONS: usize = 4096;

/// [RFC 8446] 4.1.3 the ServerHello random of a HelloRetryRequest.
const HELLO_RETRY_REQUEST: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// [RFC 8446] 4 handshake types used here.
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CLIENT_KEY_EXCHANGE: u8 = 16;
const FINISHED: u8 = 20;
const KEY_UPDATE: u8 = 24;
/// [RFC 8446] 5.1 content types.
const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// Session ID to master secret and the source that found it, as of a position in the capture: a session
/// resumed on one worker reads what another one learned before it.
type SessionCache = Learned<Vec<u8>, (Vec<u8>, String)>;

/// The secrets of a replay, shared by its sessions.
pub struct Secrets {
    keylog: Mutex<KeyLog>,
    /// The key log has an entry: read without its lock, as every record of every worker asks before a
    /// session has its keys (and a replay without secrets asks for every record).
    filled: AtomicBool,
    /// Server RSA keys with the name of the file each came from.
    rsa: Vec<(String, rsa::RsaPrivateKey)>,
    /// Master secrets by session ID, with what found them.
    sessions: SessionCache,
    /// Keytab entries for the Kerberos CredSSP exchanges ([`crate::kerberos::unwrap`]).
    keytab: Vec<crate::kerberos::keytab::Entry>,
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets::new(KeyLog::new())
    }
}

impl core::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("Secrets")
            .field(
                "keylog_entries",
                &self.keylog.lock().map(|k| k.len()).unwrap_or(0),
            )
            .field("rsa_keys", &self.rsa.len())
            .finish()
    }
}

impl Secrets {
    /// The Standard RDP Security client randoms known so far.
    pub fn rdp_client_randoms(&self) -> Vec<[u8; 32]> {
        self.keylog
            .lock()
            .map(|k| k.rdp_client_randoms.clone())
            .unwrap_or_default()
    }

    pub fn new(keylog: KeyLog) -> Self {
        Secrets {
            filled: AtomicBool::new(!keylog.is_empty()),
            keylog: Mutex::new(keylog),
            rsa: Vec::new(),
            sessions: Learned::new(MAX_SESSIONS),
            keytab: Vec::new(),
        }
    }

    /// Adds the entries of a keytab.
    pub fn add_keytab(&mut self, entries: Vec<crate::kerberos::keytab::Entry>) {
        self.keytab.extend(entries);
    }

    /// The keytab entries given.
    pub fn keytab(&self) -> &[crate::kerberos::keytab::Entry] {
        &self.keytab
    }

    /// Adds a server RSA private key in PEM (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    pub fn add_rsa_pem(&mut self, pem: &str, label: String) -> Result<(), String> {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
            rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| format!("not a PKCS#1 RSA private key: {e}"))?
        } else if pem.contains("BEGIN PRIVATE KEY") {
            rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| format!("not a PKCS#8 RSA private key: {e}"))?
        } else {
            return Err(
                "no unencrypted PEM private key (RSA PRIVATE KEY or PRIVATE KEY) in this file"
                    .to_owned(),
            );
        };
        self.rsa.push((label, key));
        Ok(())
    }

    /// Whether any key that can open a record is known (key log entries or RSA keys).
    pub fn any(&self) -> bool {
        !self.rsa.is_empty() || self.has_keylog()
    }

    pub fn rsa_keys(&self) -> usize {
        self.rsa.len()
    }

    /// Adds key log text found in the capture; returns the secrets added.
    pub fn add_keylog_text(&self, text: &str, source: Source) -> usize {
        match self.keylog.lock() {
            Ok(mut log) => {
                let added = log.add_text(text, source).secrets;
                if !log.is_empty() {
                    self.filled.store(true, Ordering::Release);
                }
                added
            }
            Err(_) => 0,
        }
    }

    fn keylog_entry(&self, client_random: &[u8; 32]) -> Option<super::keylog::Entry> {
        if !self.has_keylog() {
            return None;
        }
        self.keylog.lock().ok()?.get(client_random).cloned()
    }

    fn has_keylog(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    fn remember_session(&self, at: &Position, id: &[u8], master: &[u8], source: &str) {
        if id.is_empty() {
            return;
        }
        self.sessions
            .learn(at.now(), id.to_vec(), (master.to_vec(), source.to_owned()));
    }

    fn session(&self, at: &Position, id: &[u8]) -> Option<(Vec<u8>, String)> {
        if id.is_empty() {
            return None;
        }
        self.sessions.get(at, &id.to_vec())
    }
}

/// What a session's decryptor did, read when the session ends.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// What opened the records: `key log`, `RSA key server.key`, ...
    pub source: Option<String>,
    pub decrypted: u64,
    /// Records that did not authenticate.
    pub failed: u64,
    /// Why nothing was decrypted, when nothing was.
    pub reason: Option<String>,
}

pub type StatusHandle = Arc<Mutex<Status>>;

/// The facts a status gives the tls phase: `decrypted` (the secret's source, or false) and, when nothing
/// was decrypted, `not_decrypted` with the reason.
pub fn facts(status: &StatusHandle) -> Vec<(Fact, FactValue)> {
    let Ok(s) = status.lock() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if s.decrypted > 0 {
        out.push((
            Fact::Decrypted,
            FactValue::from(s.source.clone().unwrap_or_else(|| "yes".to_owned())),
        ));
        if s.failed > 0 {
            out.push((Fact::DecryptFailures, FactValue::from(s.failed)));
        }
    } else {
        out.push((Fact::Decrypted, FactValue::from(false)));
        let reason = if s.failed > 0 {
            format!(
                "{} records did not authenticate with the secret from the {}: a wrong key, or secrets of another session",
                s.failed,
                s.source.as_deref().unwrap_or("given secrets")
            )
        } else {
            s.reason
                .clone()
                .unwrap_or_else(|| "no encrypted records".to_owned())
        };
        out.push((Fact::NotDecrypted, FactValue::from(reason)));
    }
    out
}

/// The TLS decryptor of one session.
pub struct Decryptor {
    secrets: Arc<Secrets>,
    /// Where the replay is, for the sessions other connections remember.
    position: Arc<Position>,
    status: StatusHandle,
    /// Handshake bytes in clear, per side (client, server), not yet parsed into messages.
    clear: PerSide<Vec<u8>>,
    /// Decrypted handshake bytes per side (TLS 1.3), for Finished and KeyUpdate.
    inner: PerSide<Vec<u8>>,
    transcript: Vec<u8>,
    transcript_complete: bool,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    client_session_id: Vec<u8>,
    server_session_id: Vec<u8>,
    extended_master_secret: PerSide<bool>,
    encrypt_then_mac: PerSide<bool>,
    /// The negotiated version (0x0304 for TLS 1.3).
    version: Option<u16>,
    suite_id: Option<u16>,
    suite: Option<&'static Suite>,
    master: Option<Vec<u8>>,
    rsa_failed: bool,
    key_exchange_seen: bool,
    /// Per side: ChangeCipherSpec seen (TLS 1.2 and older).
    ccs: PerSide<bool>,
    ciphers: PerSide<Option<RecordCipher>>,
    /// TLS 1.3: the current traffic secret of each side, and the application secret that follows its
    /// Finished.
    secret13: PerSide<Option<Vec<u8>>>,
    app13: PerSide<Option<Vec<u8>>>,
    keys13_looked_up: bool,
}

impl Decryptor {
    /// A decryptor for a replay on one thread.
    pub fn new(secrets: Arc<Secrets>) -> Self {
        Decryptor::at(secrets, Position::single())
    }

    /// A decryptor for a session of the worker at `position`.
    pub fn at(secrets: Arc<Secrets>, position: Arc<Position>) -> Self {
        Decryptor {
            secrets,
            position,
            status: StatusHandle::default(),
            clear: PerSide::default(),
            inner: PerSide::default(),
            transcript: Vec::new(),
            transcript_complete: true,
            client_random: None,
            server_random: None,
            client_session_id: Vec::new(),
            server_session_id: Vec::new(),
            extended_master_secret: PerSide::default(),
            encrypt_then_mac: PerSide::default(),
            version: None,
            suite_id: None,
            suite: None,
            master: None,
            rsa_failed: false,
            key_exchange_seen: false,
            ccs: PerSide::default(),
            ciphers: PerSide::default(),
            secret13: PerSide::default(),
            app13: PerSide::default(),
            keys13_looked_up: false,
        }
    }

    pub fn status(&self) -> StatusHandle {
        Arc::clone(&self.status)
    }

    fn tls13(&self) -> bool {
        self.version == Some(0x0304)
    }

    fn set_source(&self, source: &str) {
        if let Ok(mut s) = self.status.lock()
            && s.source.is_none()
        {
            s.source = Some(source.to_owned());
        }
    }

    fn set_reason(&self) {
        let reason = self.why_not();
        if let Ok(mut s) = self.status.lock() {
            s.reason = Some(reason);
        }
    }

    fn count(&self, ok: bool) {
        if let Ok(mut s) = self.status.lock() {
            if ok {
                s.decrypted += 1;
            } else {
                s.failed += 1;
            }
        }
    }

    /// Why this session's records cannot be opened.
    fn why_not(&self) -> String {
        let no_secrets = self.secrets.rsa.is_empty() && !self.secrets.has_keylog();
        if self.client_random.is_none() {
            return "the capture does not hold the ClientHello, whose random names the session's secrets".to_owned();
        }
        let Some(id) = self.suite_id else {
            return "the capture does not hold the ServerHello".to_owned();
        };
        let name = crate::dissect::tls::suite_name(id);
        let Some(suite) = self.suite else {
            return format!("{name} is not among the cipher suites rdptrace decrypts");
        };
        if no_secrets {
            return match suite.kx {
                Kx::Rsa => format!(
                    "no secrets were given: {name} uses RSA key exchange, so the server's private key (--rsa-key) or a key log (--keylog) decrypts it"
                ),
                Kx::Ephemeral | Kx::Tls13 => format!(
                    "no secrets were given: {name} uses an ephemeral key exchange, so only a key log (--keylog) decrypts it"
                ),
            };
        }
        match suite.kx {
            Kx::Rsa if self.rsa_failed => format!(
                "none of the RSA keys given decrypts this session's premaster secret ({name}): the server used another key"
            ),
            Kx::Rsa if !self.key_exchange_seen => {
                "an abbreviated handshake resuming a session whose master secret is not known"
                    .to_owned()
            }
            Kx::Rsa => format!(
                "no key for this session: the key log has no entry for its client random, and no RSA key was given ({name})"
            ),
            Kx::Ephemeral => format!(
                "{name} uses an ephemeral key exchange: only a key log entry for this session's client random decrypts it, and there is none"
            ),
            Kx::Tls13 => format!(
                "TLS 1.3 ({name}): only a key log with this session's traffic secrets decrypts it, and there is none"
            ),
        }
    }

    // ---- the handshake in clear ---------------------------------------------------------------------

    fn clear_handshake(&mut self, i: Side, payload: &[u8]) {
        if self.clear[i].len() + payload.len() > MAX_HANDSHAKE {
            self.clear[i].clear();
            return;
        }
        self.clear[i].extend_from_slice(payload);
        // INVARIANT: each pass drains one whole message or stops.
        loop {
            let Some(len) = handshake_len(&self.clear[i]) else {
                return;
            };
            let msg: Vec<u8> = self.clear[i].drain(..len).collect();
            self.handshake_message(i, &msg);
        }
    }

    fn handshake_message(&mut self, i: Side, msg: &[u8]) {
        let kind = msg.first().copied().unwrap_or(0);
        if kind != 0 && !self.key_exchange_seen {
            if self.transcript.len() + msg.len() <= MAX_TRANSCRIPT {
                self.transcript.extend_from_slice(msg);
            } else {
                self.transcript_complete = false;
            }
        }
        match (kind, i) {
            (CLIENT_HELLO, Side::Client) => self.client_hello(msg),
            (SERVER_HELLO, Side::Server) => self.server_hello(msg),
            (CLIENT_KEY_EXCHANGE, Side::Client) => {
                self.key_exchange_seen = true;
                self.client_key_exchange(msg);
            }
            _ => {}
        }
    }

    fn client_hello(&mut self, msg: &[u8]) {
        let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) =
            parse_tls_message_handshake(msg)
        else {
            return;
        };
        self.client_random = hello.random.try_into().ok();
        self.client_session_id = hello.session_id.map(<[u8]>::to_vec).unwrap_or_default();
        let (ems, etm, _) = extensions(hello.ext);
        self.extended_master_secret[Side::Client] = ems;
        self.encrypt_then_mac[Side::Client] = etm;
    }

    fn server_hello(&mut self, msg: &[u8]) {
        let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(hello)))) =
            parse_tls_message_handshake(msg)
        else {
            return;
        };
        let random: Option<[u8; 32]> = hello.random.try_into().ok();
        let (ems, etm, version) = extensions(hello.ext);
        if random == Some(HELLO_RETRY_REQUEST) {
            // The real ServerHello follows the client's second ClientHello.
            return;
        }
        self.server_random = random;
        self.server_session_id = hello.session_id.map(<[u8]>::to_vec).unwrap_or_default();
        self.extended_master_secret[Side::Server] = ems;
        self.encrypt_then_mac[Side::Server] = etm;
        self.version = Some(version.unwrap_or(hello.version.0));
        self.suite_id = Some(hello.cipher.0);
        self.suite = suites::lookup(hello.cipher.0).filter(|s| {
            // A TLS 1.3 suite only in TLS 1.3, and the other way round.
            (s.kx == Kx::Tls13) == (self.version == Some(0x0304))
        });
        if self.tls13() {
            self.keys13();
        }
    }

    /// [RFC 5246] 7.4.7.1 the RSA-encrypted premaster secret.
    fn client_key_exchange(&mut self, msg: &[u8]) {
        let Some(suite) = self.suite else {
            return;
        };
        if suite.kx != Kx::Rsa || self.master.is_some() || self.secrets.rsa.is_empty() {
            return;
        }
        if self.keylog_master().is_some() {
            return;
        }
        let Ok(encrypted) = encrypted_premaster(msg) else {
            self.rsa_failed = true;
            return;
        };
        for (label, key) in &self.secrets.rsa {
            let Ok(premaster) = key.decrypt(rsa::Pkcs1v15Encrypt, encrypted) else {
                continue;
            };
            if premaster.len() != 48 {
                continue;
            }
            let master = self.master_from_premaster(&premaster);
            if master.is_empty() {
                continue;
            }
            debug!(key = %label, "premaster secret decrypted");
            let source = format!("RSA key {label}");
            self.secrets.remember_session(
                &self.position,
                &self.server_session_id,
                &master,
                &source,
            );
            self.set_source(&source);
            self.master = Some(master);
            return;
        }
        self.rsa_failed = true;
    }

    /// [RFC 5246] 8.1, [RFC 7627] 4.
    fn master_from_premaster(&self, premaster: &[u8]) -> Vec<u8> {
        let (Some(suite), Some(version), Some(cr), Some(sr)) = (
            self.suite,
            self.version,
            self.client_random,
            self.server_random,
        ) else {
            return Vec::new();
        };
        if self.extended_master_secret[Side::Client] && self.extended_master_secret[Side::Server] {
            if !self.transcript_complete {
                return Vec::new();
            }
            let hash = prf::session_hash(version, suite.prf, &self.transcript);
            prf::prf(
                version,
                suite.prf,
                premaster,
                b"extended master secret",
                &hash,
                48,
            )
        } else {
            let mut seed = cr.to_vec();
            seed.extend_from_slice(&sr);
            prf::prf(version, suite.prf, premaster, b"master secret", &seed, 48)
        }
    }

    fn keylog_master(&self) -> Option<(Vec<u8>, Source)> {
        let entry = self.secrets.keylog_entry(&self.client_random?)?;
        Some((entry.master?, entry.source.unwrap_or(Source::File)))
    }

    /// The master secret, from wherever it can be had.
    fn resolve_master(&mut self) -> Option<Vec<u8>> {
        if let Some(m) = &self.master {
            return Some(m.clone());
        }
        if let Some((m, source)) = self.keylog_master() {
            self.set_source(source.as_str());
            self.secrets.remember_session(
                &self.position,
                &self.server_session_id,
                &m,
                source.as_str(),
            );
            self.master = Some(m.clone());
            return Some(m);
        }
        if !self.key_exchange_seen
            && self.server_session_id == self.client_session_id
            && let Some((m, source)) = self
                .secrets
                .session(&self.position, &self.server_session_id)
        {
            self.set_source(&format!("{source}, session resumed"));
            self.master = Some(m.clone());
            return Some(m);
        }
        None
    }

    /// [RFC 5246] 6.3 the key block, into both directions' record ciphers.
    fn derive12(&mut self) {
        let (Some(suite), Some(version), Some(cr), Some(sr)) = (
            self.suite,
            self.version,
            self.client_random,
            self.server_random,
        ) else {
            return;
        };
        let Some(master) = self.resolve_master() else {
            return;
        };
        let mac_len = suite.mac.map_or(0, |h| h.output_len());
        let key_len = suite.bulk.key_len();
        let iv_len = suite.bulk.fixed_iv_len();
        let mut seed = sr.to_vec();
        seed.extend_from_slice(&cr);
        let block = prf::prf(
            version,
            suite.prf,
            &master,
            b"key expansion",
            &seed,
            2 * (mac_len + key_len + iv_len),
        );
        let mut at = 0;
        let mut take = |n: usize| -> Vec<u8> {
            let part = block
                .get(at..at + n)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            at += n;
            part
        };
        let client_mac = take(mac_len);
        let server_mac = take(mac_len);
        let client_key = take(key_len);
        let server_key = take(key_len);
        let client_iv = take(iv_len);
        let server_iv = take(iv_len);
        let etm = suite.bulk.is_cbc()
            && self.encrypt_then_mac[Side::Client]
            && self.encrypt_then_mac[Side::Server];
        self.ciphers[Side::Client] = RecordCipher::tls12(
            version,
            suite.bulk,
            suite.mac,
            &client_mac,
            &client_key,
            &client_iv,
            etm,
        );
        self.ciphers[Side::Server] = RecordCipher::tls12(
            version,
            suite.bulk,
            suite.mac,
            &server_mac,
            &server_key,
            &server_iv,
            etm,
        );
    }

    // ---- TLS 1.3 ------------------------------------------------------------------------------------

    /// The handshake traffic secrets from the key log, looked up once they can be.
    fn keys13(&mut self) {
        if self.keys13_looked_up {
            return;
        }
        let (Some(suite), Some(cr)) = (self.suite, self.client_random) else {
            return;
        };
        let Some(entry) = self.secrets.keylog_entry(&cr) else {
            return;
        };
        self.keys13_looked_up = true;
        let source = entry.source.unwrap_or(Source::File);
        for (i, secret) in [
            (Side::Client, entry.client_handshake),
            (Side::Server, entry.server_handshake),
        ] {
            if let Some(s) = secret {
                self.ciphers[i] = RecordCipher::tls13(suite.bulk, suite.prf, &s);
                self.secret13[i] = Some(s);
            }
        }
        self.app13 = PerSide::new(entry.client_traffic, entry.server_traffic);
        if self.ciphers.iter().any(Option::is_some) {
            self.set_source(source.as_str());
        }
    }

    /// Decrypted handshake messages of TLS 1.3: after a side's Finished its application traffic secret
    /// takes over; a KeyUpdate moves it to the next one ([RFC 8446] 7.2).
    fn inner_handshake(&mut self, i: Side, data: &[u8]) {
        let Some(suite) = self.suite else {
            return;
        };
        if self.inner[i].len() + data.len() > MAX_HANDSHAKE {
            self.inner[i].clear();
            return;
        }
        self.inner[i].extend_from_slice(data);
        // INVARIANT: each pass drains one whole message or stops.
        loop {
            let Some(len) = handshake_len(&self.inner[i]) else {
                return;
            };
            let kind = self.inner[i].first().copied().unwrap_or(0);
            self.inner[i].drain(..len);
            match kind {
                FINISHED => {
                    let next = self.app13[i].take();
                    self.ciphers[i] = next
                        .as_deref()
                        .and_then(|s| RecordCipher::tls13(suite.bulk, suite.prf, s));
                    self.secret13[i] = next;
                }
                KEY_UPDATE => {
                    let next = self.secret13[i].as_deref().and_then(|s| {
                        prf::expand_label(suite.prf, s, "traffic upd", &[], suite.prf.output_len())
                    });
                    self.ciphers[i] = next
                        .as_deref()
                        .and_then(|s| RecordCipher::tls13(suite.bulk, suite.prf, s));
                    self.secret13[i] = next;
                }
                _ => {}
            }
        }
    }

    fn open(&mut self, i: Side, header: [u8; 5], fragment: &[u8]) -> Option<Decrypted> {
        let Some(cipher) = self.ciphers[i].as_mut() else {
            self.set_reason();
            return None;
        };
        match cipher.open(header, fragment) {
            Ok(o) => {
                self.count(true);
                Some(Decrypted {
                    content_type: o.content_type,
                    data: o.data,
                })
            }
            Err(e) => {
                debug!(?e, "a TLS record did not open");
                self.count(false);
                None
            }
        }
    }
}

/// Extended master secret, encrypt-then-MAC, and the supported_versions choice of a hello's extensions.
fn extensions(ext: Option<&[u8]>) -> (bool, bool, Option<u16>) {
    let mut out = (false, false, None);
    let Some(ext) = ext else {
        return out;
    };
    let Ok((_, list)) = parse_tls_extensions(ext) else {
        return out;
    };
    for e in list {
        match e {
            TlsExtension::ExtendedMasterSecret => out.0 = true,
            TlsExtension::EncryptThenMac => out.1 = true,
            TlsExtension::SupportedVersions(v) if v.len() == 1 => out.2 = v.first().map(|v| v.0),
            _ => {}
        }
    }
    out
}

/// The length of the whole handshake message (header included) at the start of `buf`, once all of it is there.
fn handshake_len(buf: &[u8]) -> Option<usize> {
    match crate::wire::frame::tls_handshake_message(buf) {
        crate::wire::frame::Framed::Complete(len) => Some(len),
        _ => None,
    }
}

/// [RFC 5246] 7.4.7.1 The EncryptedPreMasterSecret of a ClientKeyExchange message (header included).
fn encrypted_premaster(msg: &[u8]) -> crate::wire::WireResult<&[u8]> {
    let mut r = crate::wire::Reader::new(msg);
    r.skip(4, "handshake header")?;
    let len = usize::from(r.u16_be("EncryptedPreMasterSecret length")?);
    r.bytes(len, "EncryptedPreMasterSecret")
}

impl TlsRecordSink for Decryptor {
    /// `record` reads a record's bytes only with a cipher for its side; without one, a TLS 1.3 record in
    /// clear (before the keys) and a TLS 1.2 record before ChangeCipherSpec are read too, and a TLS 1.3
    /// application data record when the key log now has this session's secrets.
    fn wants_body(&self, from: Side, content_type: u8) -> bool {
        if self.ciphers[from].is_some() {
            return true;
        }
        if self.tls13() {
            return content_type != APPLICATION_DATA
                || (!self.keys13_looked_up
                    && self.suite.is_some()
                    && self
                        .client_random
                        .is_some_and(|cr| self.secrets.keylog_entry(&cr).is_some()));
        }
        !self.ccs[from]
    }

    /// What `record` does with a record it has no cipher for.
    fn skipped(&mut self, _from: Side, _content_type: u8) {
        self.set_reason();
    }

    fn record(&mut self, from: Side, record: &[u8]) -> Option<Decrypted> {
        let header: [u8; 5] = record.get(..5)?.try_into().ok()?;
        let fragment = record.get(5..)?;
        let [content_type, ..] = header;
        let i = from;
        if self.tls13() {
            if content_type != APPLICATION_DATA {
                // [RFC 8446] 5: ChangeCipherSpec and alerts before the keys are in clear.
                return Some(Decrypted {
                    content_type,
                    data: fragment.to_vec(),
                });
            }
            self.keys13();
            let opened = self.open(i, header, fragment)?;
            if opened.content_type == HANDSHAKE {
                self.inner_handshake(i, &opened.data);
            }
            return Some(opened);
        }
        if self.ccs[i] {
            return self.open(i, header, fragment);
        }
        match content_type {
            HANDSHAKE => self.clear_handshake(i, fragment),
            CHANGE_CIPHER_SPEC => {
                self.ccs[i] = true;
                if self.ciphers[i].is_none() {
                    self.derive12();
                }
                if self.ciphers[i].is_none() {
                    self.set_reason();
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_without_secrets() {
        let d = Decryptor::new(Arc::new(Secrets::default()));
        assert!(d.why_not().contains("ClientHello"));
        let mut d = Decryptor::new(Arc::new(Secrets::default()));
        d.client_random = Some([1; 32]);
        d.suite_id = Some(0xc030);
        d.suite = suites::lookup(0xc030);
        assert!(d.why_not().contains("only a key log"), "{}", d.why_not());
        d.suite_id = Some(0x0005);
        d.suite = None;
        assert!(d.why_not().contains("not among"), "{}", d.why_not());
    }

    #[test]
    fn facts_of_a_status() {
        let s = StatusHandle::default();
        s.lock().unwrap().reason = Some("why".to_owned());
        assert_eq!(
            facts(&s),
            vec![
                (Fact::Decrypted, FactValue::from(false)),
                (Fact::NotDecrypted, FactValue::from("why"))
            ]
        );
        s.lock().unwrap().decrypted = 3;
        s.lock().unwrap().source = Some("key log".to_owned());
        assert_eq!(
            facts(&s),
            vec![(Fact::Decrypted, FactValue::from("key log"))]
        );
    }
}
