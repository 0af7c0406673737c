//! The TLS record layer ([RFC 8446] 5): every record of the outer stream, in stream order.
//!
//! A record in clear (the handshake before ChangeCipherSpec or the TLS 1.3 ServerHello, ChangeCipherSpec, a
//! clear alert) is read here; an encrypted one goes to the [`TlsRecordSink`](super::TlsRecordSink), which
//! may open it. What comes out opened is read as if it had been sent in clear: handshake messages and
//! alerts here, application data as the inner stream ([`Dissector::on_plaintext`]). What nobody opens is an
//! [`OpaqueRecord`]: its side, its size and its time are all there is of it, and all of them pass through
//! one place, [`Dissector::opaque_record`].

use ironrdp_pdu::nego::SecurityProtocol;

use super::{Dissector, MAX_HANDSHAKE, tls};
use crate::pdu::PduInfo;
use crate::trace::{Fact, Millis, PhaseName, Side};
use crate::wire::frame::TlsRecord;

/// A TLS record that stayed encrypted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpaqueRecord {
    pub from: Side,
    pub at: Millis,
    /// The outer content type (23 for every TLS 1.3 record after the ServerHello but ChangeCipherSpec).
    pub content_type: u8,
    /// Its length on the wire, the 5-byte header included.
    pub len: usize,
}

impl Dissector {
    /// One whole TLS record from `from` (header included), as [`crate::wire::frame::tls_record`] framed it.
    pub(super) fn tls_record(&mut self, from: Side, record: &[u8]) {
        let Some(TlsRecord {
            content_type,
            fragment,
            ..
        }) = TlsRecord::parse(record)
        else {
            return;
        };
        if self.trace.current() < PhaseName::Tls && content_type == tls::HANDSHAKE {
            self.enter(PhaseName::Tls);
        }
        // [RFC 8446] D.4 a ChangeCipherSpec is always in clear, also after a TLS 1.3 ServerHello.
        let encrypted = self.dir(from).encrypted && content_type != tls::CHANGE_CIPHER_SPEC;
        if encrypted || content_type == tls::APPLICATION_DATA {
            let opened = self
                .sink
                .as_mut()
                .and_then(|sink| sink.record(from, record));
            match opened {
                Some(plain) => self.clear_record(from, plain.content_type, &plain.data, true),
                None => self.opaque_record(OpaqueRecord {
                    from,
                    at: self.now,
                    content_type,
                    len: record.len(),
                }),
            }
            return;
        }
        if let Some(sink) = self.sink.as_mut() {
            // The decryptor reads the cleartext handshake too (randoms, suite, key exchange); a record in clear
            // needs no opening, so what it answers adds nothing to the fragment read below.
            sink.record(from, record);
        }
        self.clear_record(from, content_type, fragment, false);
    }

    /// Whether a record of `content_type` from `from` goes to [`Self::opaque_record`] whatever its bytes
    /// hold: [`Self::tls_record`] would hand it to nobody that reads them. Its bytes can then go by as
    /// they arrive ([`Self::skipped_record`] once it is whole) instead of being gathered.
    pub(super) fn record_body_unused(&mut self, from: Side, content_type: u8) -> bool {
        let encrypted = self.dir(from).encrypted && content_type != tls::CHANGE_CIPHER_SPEC;
        (encrypted || content_type == tls::APPLICATION_DATA)
            && self
                .sink
                .as_ref()
                .is_none_or(|sink| !sink.wants_body(from, content_type))
    }

    /// A whole record of `len` bytes (header included) whose bytes went by ([`Self::record_body_unused`]):
    /// what [`Self::tls_record`] does with such a record.
    pub(super) fn skipped_record(&mut self, from: Side, content_type: u8, len: usize) {
        if self.trace.current() < PhaseName::Tls && content_type == tls::HANDSHAKE {
            self.enter(PhaseName::Tls);
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.skipped(from, content_type);
        }
        self.opaque_record(OpaqueRecord {
            from,
            at: self.now,
            content_type,
            len,
        });
    }

    /// A record read in clear, or opened (`decrypted`).
    fn clear_record(&mut self, from: Side, content_type: u8, payload: &[u8], decrypted: bool) {
        match content_type {
            tls::HANDSHAKE => {
                let dir = self.dir(from);
                if dir.handshake.len() + payload.len() > MAX_HANDSHAKE {
                    dir.handshake.clear();
                    self.stream_error(
                        from,
                        "TLS handshake",
                        0,
                        "a handshake message longer than rdptrace accepts",
                    );
                    return;
                }
                dir.handshake.extend_from_slice(payload);
                tls::drain_handshake(self, from, decrypted);
            }
            tls::CHANGE_CIPHER_SPEC => {
                self.dir(from).encrypted = true;
                self.trace
                    .tally("TLS ChangeCipherSpec", payload.len(), self.now);
            }
            tls::ALERT => tls::alert(self, from, payload, decrypted),
            // INVARIANT: application data comes here opened only (`tls_record` sends every application data
            // record to the sink).
            tls::APPLICATION_DATA => match self.plaintext.as_mut() {
                Some(out) => out.push((from, self.now, payload.to_vec())),
                None => self.on_plaintext(from, self.now, payload),
            },
            other => {
                self.pdu(
                    from,
                    payload.len(),
                    "TLS record",
                    format!("unknown content type {other}"),
                    PduInfo::Undecoded {
                        detail: format!("TLS content type {other}"),
                        offset: Some(0),
                    },
                );
            }
        }
    }

    /// A record nobody opened. Every one of them comes through here, in stream order.
    pub(super) fn opaque_record(&mut self, record: OpaqueRecord) {
        self.infer_record(record);
        let OpaqueRecord {
            from,
            content_type,
            len,
            ..
        } = record;
        match content_type {
            tls::ALERT => {
                self.pdu(
                    from,
                    len,
                    "TLS Alert",
                    "encrypted alert (close_notify at the end of a session, or an error)"
                        .to_owned(),
                    PduInfo::TlsAlert {
                        level: None,
                        description: None,
                        encrypted: true,
                    },
                );
            }
            tls::HANDSHAKE => self.trace.tally("TLS encrypted handshake", len, self.now),
            _ if self.plaintext_external => {}
            _ => {
                self.tls_done_opaque(from);
                let first = !self
                    .trace
                    .pdus()
                    .any(|(_, p)| matches!(p.info, PduInfo::TlsEncrypted) && p.from == from);
                if first {
                    self.pdu(
                        from,
                        len,
                        "TLS Application Data",
                        "encrypted; the inner protocol needs the TLS secrets".to_owned(),
                        PduInfo::TlsEncrypted,
                    );
                } else {
                    self.trace.tally("TLS Application Data", len, self.now);
                }
            }
        }
    }

    /// Encrypted application data nobody can decrypt: once it flows the TLS handshake is over, and the
    /// first inner phase is known from the negotiation even if its content is not.
    fn tls_done_opaque(&mut self, from: Side) {
        if self.trace.current() != PhaseName::Tls {
            return;
        }
        if self.state.tls_version == Some(tls::TLS13) {
            // [RFC 8446] 2: the server's encrypted handshake flight and the client's Finished look like
            // application data too; the client's second encrypted record is past the handshake.
            if from == Side::Client {
                self.client_opaque_records += 1;
            }
            if self.client_opaque_records < 2 {
                return;
            }
        }
        self.leave_tls();
        self.trace.fact(
            Fact::Encrypted,
            "TLS application data without the secrets to decrypt it (--keylog, --rsa-key)",
        );
        // Without the Connection Confirm (a capture that starts later) the inner protocol is unknown.
        let Some(selected) = self.state.selected_protocol else {
            return;
        };
        let next = if selected.intersects(SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX) {
            PhaseName::Credssp
        } else if selected.intersects(SecurityProtocol::RDSTLS | SecurityProtocol::RDSAAD) {
            return;
        } else {
            PhaseName::McsConnect
        };
        self.enter(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testing::{negotiate, record};
    use crate::trace::Trace;

    #[test]
    fn opaque_application_data_ends_the_tls_phase() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        negotiate(&mut d, SecurityProtocol::HYBRID);
        // A handshake message nobody parses, then ChangeCipherSpec both ways.
        d.on_tcp_data(
            Side::Client,
            3.0,
            &record(tls::HANDSHAKE, &[0x10, 0, 0, 1, 0]),
        );
        assert_eq!(d.trace().current(), PhaseName::Tls);
        d.on_tcp_data(Side::Client, 4.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        d.on_tcp_data(Side::Server, 5.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        // Encrypted Finished (a handshake record after ChangeCipherSpec): still the handshake.
        d.on_tcp_data(Side::Server, 6.0, &record(tls::HANDSHAKE, &[9; 40]));
        assert_eq!(d.trace().current(), PhaseName::Tls);
        // Application data: the handshake is over and NLA comes next.
        d.on_tcp_data(Side::Client, 7.0, &record(tls::APPLICATION_DATA, &[7; 40]));
        assert_eq!(d.trace().current(), PhaseName::Credssp);
        assert_eq!(
            d.trace().phase(PhaseName::Tls).status,
            crate::trace::PhaseStatus::Ok
        );
        assert!(
            d.trace()
                .phase(PhaseName::Tls)
                .facts
                .get(Fact::Encrypted)
                .is_some()
        );

        // TLS only: MCS comes next.
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        negotiate(&mut d, SecurityProtocol::SSL);
        d.on_tcp_data(
            Side::Client,
            3.0,
            &record(tls::HANDSHAKE, &[0x10, 0, 0, 1, 0]),
        );
        d.on_tcp_data(Side::Server, 7.0, &record(tls::APPLICATION_DATA, &[7; 40]));
        assert_eq!(d.trace().current(), PhaseName::McsConnect);
    }

    #[test]
    fn tls13_change_cipher_spec_is_clear_and_the_handshake_ends_after_the_client_finished() {
        let mut d = Dissector::new(Trace::new("t", crate::trace::Origin::Probe));
        negotiate(&mut d, SecurityProtocol::HYBRID);
        d.on_tcp_data(
            Side::Client,
            3.0,
            &record(tls::HANDSHAKE, &[0x10, 0, 0, 1, 0]),
        );
        // As after a TLS 1.3 ServerHello.
        d.state.tls_version = Some(tls::TLS13);
        d.dirs[Side::Client].encrypted = true;
        d.dirs[Side::Server].encrypted = true;
        d.on_tcp_data(Side::Server, 4.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        d.on_tcp_data(Side::Server, 5.0, &record(tls::APPLICATION_DATA, &[1; 60]));
        d.on_tcp_data(Side::Client, 6.0, &record(tls::CHANGE_CIPHER_SPEC, &[1]));
        assert!(
            !d.trace()
                .pdus()
                .any(|(_, p)| p.from == Side::Client && matches!(p.info, PduInfo::TlsEncrypted)),
            "a ChangeCipherSpec is not application data"
        );
        // The client's Finished, then its first application data.
        d.on_tcp_data(Side::Client, 7.0, &record(tls::APPLICATION_DATA, &[2; 60]));
        assert_eq!(d.trace().current(), PhaseName::Tls);
        d.on_tcp_data(Side::Client, 8.0, &record(tls::APPLICATION_DATA, &[3; 60]));
        assert_eq!(d.trace().current(), PhaseName::Credssp);
    }
}
