//! Standard RDP Security ([MS-RDPBCGR] 5.3) between the socket and the connector.

use tracing::info;

use super::{Run, Stop};
use crate::rdp_security::SecurityError;
use crate::rdp_security::client::ClientShim;
use crate::rdp_security::sink::SessionSink;
use crate::trace::{EventKind, Side};

impl Run<'_> {
    /// Sets up Standard RDP Security: the client random, the shim that encrypts for the connector, and the
    /// dissector's sink that decrypts what goes by ([5.3.4]).
    pub(super) fn enable_standard_security(&mut self) -> Result<(), Stop> {
        let mut random = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut random) {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: format!("no random numbers for the client random: {e}"),
                },
            );
            return Err(Stop);
        }
        self.d
            .set_security_sink(Box::new(SessionSink::with_client_random(random)));
        // Beside the TLS secrets, so that a capture of this session replays decrypted.
        let line = format!(
            "{} {}\n",
            crate::replay::keylog::RDP_CLIENT_RANDOM,
            hex::encode(random)
        );
        if self.cfg.embed_secrets
            && let Ok(mut kept) = self.secrets.lock()
        {
            kept.push_str(&line);
        }
        if let Some(path) = &self.cfg.keylog {
            use std::io::Write as _;
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::Anomaly {
                        detail: format!("cannot write the key log {}: {e}", path.display()),
                    },
                );
            }
        }
        self.rdp_security = Some(ClientShim::new(random).with_salted_mac(self.cfg.salted_mac));
        Ok(())
    }

    /// A frame from the server as the connector must read it: decrypted, its security header stripped, under
    /// Standard RDP Security.
    pub(super) async fn unsecure(&mut self, frame: Vec<u8>) -> Result<Vec<u8>, Stop> {
        let Some(shim) = self.rdp_security.as_mut() else {
            return Ok(frame);
        };
        match shim.incoming(&frame) {
            Ok(incoming) if incoming.mac_failed => {
                // The dissector recorded the anomaly; a client drops the connection here ([5.3.6.1]).
                let at = self.at();
                let last = self.last_server_pdu();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: last,
                        offset: None,
                        detail: "its MAC does not verify with the session keys: the server derived other keys from the client random, or the data was altered ([MS-RDPBCGR] 5.3.6)".to_owned(),
                    },
                );
                self.drain_after_error().await;
                Err(Stop)
            }
            Ok(incoming) => {
                if let Some(established) = &incoming.established {
                    info!(
                        method = %established.negotiated.method,
                        level = ?established.negotiated.level,
                        certificate = %established.certificate,
                        "standard rdp security"
                    );
                }
                Ok(incoming.frame)
            }
            Err(e) => {
                self.security_failed(e, Side::Server).await;
                Err(Stop)
            }
        }
    }

    pub(super) fn last_server_pdu(&self) -> String {
        self.d
            .trace()
            .last_pdu_from(Side::Server)
            .map(|(_, p)| p.name.clone())
            .unwrap_or_else(|| "PDU".to_owned())
    }

    /// Standard RDP Security cannot go on: what the server sent is wrong, or beyond rdptrace.
    pub(super) async fn security_failed(&mut self, e: SecurityError, from: Side) {
        info!(error = %e, "standard rdp security stopped");
        let at = self.at();
        let kind = match e {
            SecurityError::Malformed(detail) if from == Side::Server => EventKind::ProtocolError {
                from,
                pdu: self.last_server_pdu(),
                offset: None,
                detail,
            },
            SecurityError::Malformed(detail)
            | SecurityError::Unsupported(detail)
            | SecurityError::Crypto(detail) => EventKind::ClientLimit {
                detail: format!("Standard RDP Security: {detail}"),
            },
        };
        self.d.trace_mut().record_event(at, kind);
        self.drain_after_error().await;
    }
}
