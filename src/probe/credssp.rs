//! [MS-CSSP] CredSSP (NLA) over the TLS session: with sspi's NTLM here, with Kerberos in [`super::kerberos`]
//! when the plan says so.

use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::sspi::credssp::ClientState;
use ironrdp_connector::sspi::generator::GeneratorState;
use ironrdp_connector::{ClientConnector, ConnectorError, ConnectorErrorKind, ServerName};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;

use super::kerberos::Plan;
use super::transport::FrameKind;
use super::{Run, Stop};
use crate::trace::EventKind;

impl Run<'_> {
    /// [MS-CSSP] NLA over the TLS session, stepped one TSRequest at a time.
    pub(super) async fn credssp(
        &mut self,
        connector: &mut ClientConnector,
        selected: SecurityProtocol,
        public_key: Vec<u8>,
    ) -> Result<(), Stop> {
        if let Plan::Kerberos {
            realm,
            spn,
            fallback,
        } = self.plan()
            && let Some(done) = self
                .credssp_kerberos(connector, selected, &public_key, &realm, &spn, fallback)
                .await
        {
            return done;
        }
        let init = CredsspSequence::init(
            connector.config.credentials.clone(),
            connector.config.domain.as_deref(),
            selected,
            ServerName::new(self.cfg.host.clone()),
            public_key,
            None,
        );
        let (mut sequence, mut ts_request) = match init {
            Ok(v) => v,
            Err(e) => {
                self.connector_failed(e).await;
                return Err(Stop);
            }
        };
        let mut buf = WriteBuf::new();
        // INVARIANT: NTLM takes three round trips; each pass reads a frame bounded by the deadlines, and the
        // pass count is bounded too.
        for _ in 0..16 {
            let state = {
                let mut generator = sequence.process_ts_request(ts_request);
                match generator.start() {
                    GeneratorState::Completed(state) => state,
                    GeneratorState::Suspended(_) => {
                        let at = self.at();
                        self.d.trace_mut().record_event(
                            at,
                            EventKind::ClientLimit {
                                detail:
                                    "sspi's NTLM asked to reach the network, which NTLM never needs"
                                        .to_owned(),
                            },
                        );
                        return Err(Stop);
                    }
                }
            };
            let state: ClientState = match state {
                Ok(s) => s,
                Err(e) => {
                    let err = ConnectorError::new("CredSSP", ConnectorErrorKind::Credssp(e));
                    self.connector_failed(err).await;
                    return Err(Stop);
                }
            };
            buf.clear();
            let written = sequence.handle_process_result(state, &mut buf);
            self.after_step(written, &mut buf).await?;
            let Some(hint) = sequence.next_pdu_hint() else {
                break;
            };
            let kind = match hint.find_size(&[0x30, 0x00]) {
                Ok(Some((_, 4))) => FrameKind::Fixed(4),
                _ => FrameKind::Der,
            };
            let waiting = if kind == FrameKind::Der {
                "TSRequest from the server"
            } else {
                "Early User Authorization Result"
            };
            let (frame, _) = self.recv(kind, waiting).await?;
            match sequence.decode_server_message(&frame) {
                Ok(Some(next)) => ts_request = next,
                Ok(None) => break,
                Err(e) => {
                    self.connector_failed(e).await;
                    return Err(Stop);
                }
            }
        }
        connector.mark_credssp_as_done();
        Ok(())
    }
}
