//! Decryption of TLS records with secrets the user gives: a [`crate::dissect::TlsRecordSink`].

use std::sync::{Arc, Mutex};

use super::keylog::{KeyLog, Source};
use crate::dissect::{Decrypted, TlsRecordSink};
use crate::trace::{FactValue, Side};

/// The secrets of a replay, shared by its sessions.
#[derive(Debug, Default)]
pub struct Secrets {
    keylog: Mutex<KeyLog>,
    /// Server RSA keys with the name of the file each came from.
    rsa: Vec<(String, rsa::RsaPrivateKey)>,
}

impl Secrets {
    pub fn new(keylog: KeyLog) -> Self {
        Secrets {
            keylog: Mutex::new(keylog),
            rsa: Vec::new(),
        }
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

    pub fn rsa_keys(&self) -> usize {
        self.rsa.len()
    }

    /// Adds key log text found in the capture.
    pub fn add_keylog_text(&self, text: &str, source: Source) -> usize {
        match self.keylog.lock() {
            Ok(mut log) => log.add_text(text, source).secrets,
            Err(_) => 0,
        }
    }
}

/// What a session's decryptor did, read when the session ends.
#[derive(Debug, Default)]
pub struct Status {
    pub decrypted_records: u64,
}

pub type StatusHandle = Arc<Mutex<Status>>;

/// The facts a status gives the tls phase.
pub fn facts(status: &StatusHandle) -> Vec<(&'static str, FactValue)> {
    let Ok(s) = status.lock() else {
        return Vec::new();
    };
    if s.decrypted_records > 0 {
        vec![("decrypted", FactValue::from(true))]
    } else {
        vec![("decrypted", FactValue::from(false))]
    }
}

/// The TLS decryptor of one session.
pub struct Decryptor {
    secrets: Arc<Secrets>,
    status: StatusHandle,
}

impl Decryptor {
    pub fn new(secrets: Arc<Secrets>) -> Self {
        Decryptor {
            secrets,
            status: StatusHandle::default(),
        }
    }

    pub fn status(&self) -> StatusHandle {
        Arc::clone(&self.status)
    }
}

impl TlsRecordSink for Decryptor {
    fn record(&mut self, from: Side, record: &[u8]) -> Option<Decrypted> {
        let _ = (&self.secrets, from, record);
        None
    }
}
