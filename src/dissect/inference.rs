//! What the dissector hands the encrypted-record inference ([`crate::infer`]): every TLS record nobody
//! could decrypt, every Standard RDP Security PDU no key opened, and the licensing PDUs it read in the clear
//! among them.

use ironrdp_pdu::nego::SecurityProtocol;

use super::Dissector;
use super::records::OpaqueRecord;
use crate::infer::{Inference, Inner, Recorder, Step};
use crate::trace::{Fact, PhaseName, Side};

impl Dissector {
    /// An encrypted TLS record, for the inference; started at the first one once the suite is known.
    pub(super) fn infer_record(&mut self, record: OpaqueRecord) {
        if self.plaintext_external {
            // The probe holds the TLS session: it reads the plaintext itself.
            return;
        }
        if self.inference.is_none() {
            let (Some(version), Some(suite)) = (self.state.tls_version, self.state.cipher_suite)
            else {
                return;
            };
            let inner = match self.state.selected_protocol {
                // A capture that starts after the Connection Confirm: any of them.
                None => None,
                Some(p) if p.intersects(SecurityProtocol::RDSTLS | SecurityProtocol::RDSAAD) => {
                    return;
                }
                Some(p) if p.contains(SecurityProtocol::HYBRID_EX) => Some(Inner::HybridEx),
                Some(p) if p.contains(SecurityProtocol::HYBRID) => Some(Inner::Hybrid),
                Some(_) => Some(Inner::Ssl),
            };
            self.inference = Recorder::new(inner, version, suite);
        }
        if let Some(r) = self.inference.as_mut() {
            r.record(
                record.from,
                record.at,
                record.content_type,
                record.len.saturating_sub(5),
            );
        }
    }

    /// An encrypted PDU under Standard RDP Security that no key opened: `plaintext` bytes as a frame without
    /// its security header.
    pub(crate) fn infer_sealed(&mut self, from: Side, plaintext: usize, fast_path: bool) {
        if self.plaintext_external || !self.state.standard_security_encrypted() {
            return;
        }
        if self.inference.is_none() {
            let licensed = self
                .trace
                .phase(PhaseName::Licensing)
                .facts
                .get(Fact::LicenseResult)
                .is_some();
            self.inference = Some(Recorder::standard(licensed));
        }
        if let Some(r) = self.inference.as_mut() {
            r.sealed(from, self.now, plaintext, fast_path);
        }
    }

    /// A PDU read in the clear that the inference, once started, goes through.
    pub(crate) fn infer_known(&mut self, from: Side, step: Option<Step>) {
        if let (Some(r), Some(step)) = (self.inference.as_mut(), step) {
            r.known(from, self.now, step);
        }
    }

    /// What the encrypted records show so far, when some went by undecrypted.
    pub fn inference(&self) -> Option<Inference> {
        self.inference.as_ref().map(Recorder::conclude)
    }
}
