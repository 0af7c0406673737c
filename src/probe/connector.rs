//! The connection sequence: ironrdp-connector stepped one frame at a time, from the X.224 request to the
//! active state, then the watch.

use std::net::SocketAddr;

use ironrdp_connector::{
    ClientConnector, ClientConnectorState, ConnectorError, ConnectorErrorKind, Sequence as _,
    State as _,
};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::SecurityProtocol;
use tracing::{debug, info};

use super::transport::{Conn, Edge, FrameKind, ReadError, Tap};
use super::{Run, Security, Stop};
use crate::pdu::PduInfo;
use crate::trace::{EventKind, Fact, PhaseName, Side};

impl Run<'_> {
    pub(super) async fn sequence(&mut self) -> Result<(), Stop> {
        if self.cfg.security == Security::Rdp {
            self.enable_standard_security()?;
        }
        let (edge, local) = match self.cfg.gateway.clone() {
            Some(gw) => self.through_gateway(&gw).await?,
            None => {
                let (stream, local) = self.connect().await?;
                (Edge::Tcp(stream), local)
            }
        };
        self.client_addr = Some(local);
        self.conn = Conn::Plain(Tap::new(edge, self.tap.clone(), self.start));

        let mut connector =
            self.redirection_hooks(ClientConnector::new(self.connector_config(), local));
        let mut buf = WriteBuf::new();
        let requested = self.cfg.requested_protocols();
        let written = connector.initiate_with_security_protocol(requested, &mut buf);
        self.after_step(written, &mut buf).await?;

        // X.224 Connection Confirm.
        self.step_once(&mut connector, &mut buf).await?;

        // The security upgrade.
        if connector.should_perform_security_upgrade() {
            let selected = match connector.state {
                ClientConnectorState::EnhancedSecurityUpgrade { selected_protocol } => {
                    selected_protocol
                }
                _ => SecurityProtocol::empty(),
            };
            let mut public_key = Vec::new();
            if !selected.is_standard_rdp_security() {
                public_key = self.tls_upgrade().await?;
            }
            connector.mark_security_upgrade_as_done();
            let nla = connector.should_perform_credssp();
            if nla {
                self.credssp(&mut connector, selected, public_key).await?;
            }
            if !selected.is_standard_rdp_security() {
                self.withhold_password_if_secrets_are_written(&mut connector, nla);
            }
        }

        // MCS, channels, Client Info, licensing, capabilities, finalization.
        // INVARIANT: every pass either reads a frame (bounded by the deadlines) or lets the connector take a
        // step; the total deadline ends it.
        loop {
            if let ClientConnectorState::Connected { .. } = connector.state {
                break;
            }
            if let ClientConnectorState::Redirected { redirection } = &connector.state {
                // The dissector recorded the Server Redirection PDU; the PDU itself (its password cookie
                // included) is kept only for the next connection.
                self.redirection = Some(redirection.clone());
                self.leave("the server redirected the client").await;
                return Err(Stop);
            }
            if connector.should_perform_multitransport() {
                buf.clear();
                let written = connector.skip_multitransport(&mut buf);
                self.after_step(written, &mut buf).await?;
                continue;
            }
            self.step_once(&mut connector, &mut buf).await?;
        }
        info!(target = %self.cfg.target, "connected");
        self.watch().await
    }

    /// [MS-RDPBCGR] 3.2.5.3.1, 2.2.1.3.5, 2.2.1.11.1.1 what the connector sends for load balancing and
    /// redirection: the routing token in place of the cookie, the Client Cluster Data (redirection supported,
    /// as mstsc advertises it; the redirected session on a redirected connection), the password cookie.
    pub(super) fn redirection_hooks(&mut self, mut connector: ClientConnector) -> ClientConnector {
        use ironrdp_pdu::gcc::{ClientClusterData, RedirectionFlags, RedirectionVersion};
        if let Some(token) = &self.cfg.load_balance_info {
            connector = connector.with_load_balance_info(token.clone());
        }
        let redirected = self.cfg.redirected.as_ref();
        if self.cfg.follow_redirects || redirected.is_some() {
            let mut flags = RedirectionFlags::REDIRECTION_SUPPORTED;
            if redirected.is_some() {
                flags |= RedirectionFlags::REDIRECTED_SESSION_FIELD_VALID;
            }
            connector = connector.with_cluster_data(ClientClusterData {
                flags,
                redirection_version: RedirectionVersion::V6,
                redirected_session_id: redirected.map_or(0, |r| r.session_id),
            });
        }
        if let Some(cookie) = redirected.and_then(|r| r.password_cookie.clone()) {
            // The cookie stands for the password: it stays out of a session whose secrets are written.
            if self.secrets_written() {
                self.d.trace_mut().fact_in(
                    PhaseName::SecureSettings,
                    Fact::ClientInfoPassword,
                    "withheld (the redirection's password cookie): the TLS secrets are being written",
                );
            } else {
                connector = connector.with_redirection_password_cookie(cookie);
            }
        }
        connector
    }

    /// Whether the TLS secrets of this connection go to a key log or into the capture.
    pub(super) fn secrets_written(&self) -> bool {
        self.cfg.keylog.is_some() || (self.cfg.pcap.is_some() && self.cfg.embed_secrets)
    }

    pub(super) fn connector_config(&self) -> ironrdp_connector::Config {
        let (username, password, domain) = match &self.cfg.credentials {
            Some(c) => (
                c.user.clone(),
                c.password.expose().to_owned(),
                c.domain.clone(),
            ),
            None => (String::new(), String::new(), None),
        };
        ironrdp_connector::Config {
            desktop_size: ironrdp_connector::DesktopSize {
                width: 1024,
                height: 768,
            },
            monitor_layout: None,
            desktop_scale_factor: 0,
            desktop_physical_size: None,
            desktop_orientation: None,
            device_scale_factor: None,
            monitor_extended_layout: None,
            relative_mouse_input: false,
            enable_tls: matches!(self.cfg.security, Security::Auto | Security::Tls),
            enable_credssp: matches!(
                self.cfg.security,
                Security::Auto | Security::Nla | Security::NlaEx
            ),
            enable_standard_rdp_security: self.cfg.security == Security::Rdp,
            credentials: ironrdp_connector::Credentials::UsernamePassword { username, password },
            domain,
            client_build: 0,
            client_name: self.cfg.client_name.clone(),
            keyboard_type: ironrdp_pdu::gcc::KeyboardType::IBM_ENHANCED,
            keyboard_subtype: 0,
            keyboard_functional_keys_count: 12,
            keyboard_layout: 0x0409,
            connection_type: ironrdp_pdu::gcc::ConnectionType::Lan,
            ime_file_name: String::new(),
            // [2.2.7.2.9] Surface Commands and [2.2.7.2.10] Bitmap Codecs, as mstsc and xfreerdp advertise
            // them: some servers (weston's RDP backend) end the connection right after the Font Map when
            // the client lacks Surface Commands. ironrdp advertises them only with a codec list.
            bitmap: ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities(&[])
                .ok()
                .map(|codecs| ironrdp_connector::BitmapConfig {
                    lossy_compression: false,
                    color_depth: 32,
                    codecs,
                }),
            dig_product_id: String::new(),
            client_dir: String::new(),
            alternate_shell: String::new(),
            work_dir: String::new(),
            remote_application_mode: false,
            rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
            platform: ironrdp_pdu::rdp::capability_sets::MajorPlatformType::UNIX,
            hardware_id: None,
            request_data: None,
            autologon: self.cfg.credentials.is_some(),
            enable_audio_playback: false,
            enable_audio_capture: false,
            performance_flags: ironrdp_pdu::rdp::client_info::PerformanceFlags::default(),
            license_cache: None,
            timezone_info: ironrdp_pdu::rdp::client_info::TimezoneInfo::default(),
            compression_type: None,
            enable_server_pointer: false,
            pointer_software_rendering: true,
            multitransport_flags: None,
            support_dyn_vc_gfx_protocol: false,
        }
    }

    /// The Client Info PDU carries the password inside TLS. When the TLS secrets are written (a key log, or a
    /// capture with embedded secrets), anyone with the file could read it: the probe sends the Client Info
    /// without it. Under NLA the server already has the credentials from CredSSP and logs on with them;
    /// under TLS alone it shows its logon screen, which is as far as a probe needs to go.
    pub(super) fn withhold_password_if_secrets_are_written(
        &mut self,
        connector: &mut ClientConnector,
        nla: bool,
    ) {
        if !self.secrets_written() || self.cfg.credentials.is_none() {
            return;
        }
        if let ironrdp_connector::Credentials::UsernamePassword { password, .. } =
            &mut connector.config.credentials
        {
            password.clear();
        }
        if !nla {
            connector.config.autologon = false;
        }
        let cookie = self
            .cfg
            .redirected
            .as_ref()
            .is_some_and(|r| r.password_cookie.is_some());
        self.d.trace_mut().fact_in(
            PhaseName::SecureSettings,
            Fact::ClientInfoPassword,
            if cookie {
                "withheld (the password and the redirection's password cookie): the TLS secrets are being written"
            } else {
                "withheld: the TLS secrets are being written"
            },
        );
    }

    /// In `auto` mode, a server that answers TLS and NLA with Standard RDP Security ([MS-RDPBCGR]
    /// 3.3.5.3.2 allows it) is followed there, as mstsc and xfreerdp do: the connector is remade to accept
    /// PROTOCOL_RDP before it reads the Connection Confirm.
    pub(super) fn follow_fallback_to_standard_security(
        &mut self,
        connector: &mut ClientConnector,
    ) -> Result<(), Stop> {
        let fallback = matches!(
            crate::dissect::negotiation_of(self.d.trace()),
            Some(crate::pdu::Negotiation::Response {
                selected_protocol: 0,
                ..
            })
        );
        if !fallback
            || self.cfg.security != Security::Auto
            || self.rdp_security.is_some()
            || !matches!(
                connector.state,
                ClientConnectorState::ConnectionInitiationWaitConfirm { .. }
            )
        {
            return Ok(());
        }
        self.enable_standard_security()?;
        let mut config = self.connector_config();
        config.enable_standard_rdp_security = true;
        let local = self
            .client_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut fresh = self.redirection_hooks(ClientConnector::new(config, local));
        // The request this connector would send is already on the wire; only its state matters.
        let mut scratch = WriteBuf::new();
        if let Err(e) =
            fresh.initiate_with_security_protocol(SecurityProtocol::empty(), &mut scratch)
        {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: format!("cannot follow the fallback to Standard RDP Security: {e}"),
                },
            );
            return Err(Stop);
        }
        *connector = fresh;
        self.d.trace_mut().fact_in(
            PhaseName::X224,
            Fact::Fallback,
            "the server chose Standard RDP Security; the probe follows it, as mstsc does",
        );
        Ok(())
    }

    /// Sends what the connector wrote.
    pub(super) async fn after_step(
        &mut self,
        written: Result<ironrdp_connector::Written, ConnectorError>,
        buf: &mut WriteBuf,
    ) -> Result<(), Stop> {
        match written {
            Ok(written) => {
                if let Some(n) = written.size() {
                    let bytes = buf.filled().get(..n).unwrap_or(&[]).to_vec();
                    self.send(&bytes).await?;
                }
                buf.clear();
                Ok(())
            }
            Err(e) => {
                self.connector_failed(e).await;
                Err(Stop)
            }
        }
    }

    /// One connector step: read the frame it waits for (if any), step, send what it wrote.
    pub(super) async fn step_once(
        &mut self,
        connector: &mut ClientConnector,
        buf: &mut WriteBuf,
    ) -> Result<(), Stop> {
        buf.clear();
        let Some(hint) = connector.next_pdu_hint() else {
            let written = connector.step_no_input(buf);
            return self.after_step(written, buf).await;
        };
        let waiting_for = waiting_for(&connector.state);
        let kind = frame_kind(&connector.state);
        // Frames the connector cannot take here (a Set Error Info, a Disconnect Provider Ultimatum, a frame
        // of the other kind) are recorded by the dissector and not handed to the connector.
        // INVARIANT: bounded by the deadlines inside `recv`.
        loop {
            let (frame, recent) = self.recv(kind, waiting_for).await?;
            let matches_hint = matches!(hint.find_size(&frame), Ok(Some((true, _))));
            let interjection = !recent.is_empty()
                && recent.iter().all(|info| {
                    matches!(
                        info,
                        PduInfo::SetErrorInfo { .. }
                            | PduInfo::DisconnectProviderUltimatum { .. }
                            | PduInfo::SaveSessionInfo { .. }
                            | PduInfo::FastPath { .. }
                    )
                });
            if recent
                .iter()
                .any(|i| matches!(i, PduInfo::DisconnectProviderUltimatum { .. }))
            {
                // The server is leaving: read what follows (the close) and stop.
                self.drain_after_error().await;
                return Err(Stop);
            }
            if !matches_hint || interjection {
                debug!(
                    state = connector.state.name(),
                    len = frame.len(),
                    "frame not for the connector"
                );
                continue;
            }
            self.follow_fallback_to_standard_security(connector)?;
            let at_state = connector.state.name();
            let written = connector.step(&frame, None, buf);
            debug!(
                from = at_state,
                to = connector.state.name(),
                "connector step"
            );
            return self.after_step(written, buf).await;
        }
    }

    /// The connector gave up: record why, unless the dissector already has the server's reason, then read
    /// what the server does next.
    pub(super) async fn connector_failed(&mut self, e: ConnectorError) {
        let report = e.report().to_string();
        info!(error = %report, "connector stopped");
        let explained = match e.kind() {
            ConnectorErrorKind::Negotiation(_) => true,
            ConnectorErrorKind::AccessDenied => true,
            ConnectorErrorKind::Credssp(err) if err.nstatus.is_some() => true,
            _ => false,
        };
        if !explained {
            let at = self.at();
            if self.negotiation_mismatch() {
                // diagnose explains a selected protocol the client did not ask for.
            } else {
                let last = self.last_server_pdu();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ProtocolError {
                        from: Side::Server,
                        pdu: last,
                        offset: None,
                        detail: format!("the client (ironrdp) rejected it: {report}"),
                    },
                );
            }
        }
        self.drain_after_error().await;
    }

    pub(super) fn negotiation_mismatch(&self) -> bool {
        let requested = self.cfg.requested_protocols().bits();
        match crate::dissect::negotiation_of(self.d.trace()) {
            Some(crate::pdu::Negotiation::Response {
                selected_protocol, ..
            }) => {
                if selected_protocol == 0 {
                    requested != 0
                } else {
                    selected_protocol & requested != selected_protocol
                }
            }
            Some(crate::pdu::Negotiation::None) => requested != 0,
            _ => false,
        }
    }

    /// Watches the active session for `watch`, recording what the server does; then leaves politely.
    pub(super) async fn watch(&mut self) -> Result<(), Stop> {
        let end =
            (tokio::time::Instant::now() + self.cfg.watch).min(self.tokio_start + self.cfg.timeout);
        // INVARIANT: bounded by `end`.
        loop {
            let res = self
                .framer
                .read_frame(&mut self.conn, FrameKind::Rdp, end)
                .await;
            self.feed_read(&res);
            match res {
                Ok(_) => {}
                Err(ReadError::TimedOut) => {
                    let secs = self.cfg.watch.as_secs_f64();
                    if self.d.trace().deactivated_for_good() {
                        // [2.2.3.1] A Deactivate All with no Demand Active after it: the session is frozen.
                        self.leave(&format!(
                            "the session stayed deactivated to the end of the {secs} s watch"
                        ))
                        .await;
                        return Err(Stop);
                    }
                    self.leave(&format!("end of the {secs} s watch")).await;
                    return Ok(());
                }
                Err(e) => {
                    self.read_failed(e, "next PDU from the server");
                    return Err(Stop);
                }
            }
        }
    }
}

/// What the connector waits for in `state`.
fn waiting_for(state: &ClientConnectorState) -> &'static str {
    match state {
        ClientConnectorState::ConnectionInitiationWaitConfirm { .. } => {
            "the X.224 Connection Confirm"
        }
        ClientConnectorState::BasicSettingsExchangeWaitResponse { .. } => {
            "the MCS Connect Response"
        }
        ClientConnectorState::ChannelConnection { .. } => {
            "the MCS Attach User Confirm or a Channel Join Confirm"
        }
        ClientConnectorState::ConnectTimeAutoDetection { .. }
        | ClientConnectorState::LicensingExchange { .. } => "a licensing PDU",
        ClientConnectorState::MultitransportBootstrapping { .. }
        | ClientConnectorState::CapabilitiesExchange { .. } => "the Server Demand Active",
        ClientConnectorState::ConnectionFinalization { .. } => "the server's finalization PDUs",
        _ => "the server's next PDU",
    }
}

/// How to cut the frame the connector waits for in `state` out of the stream: [2.2.1.2] only a TPKT answers
/// the Connection Request (anything else there, an HTTP answer or an SSH banner, is another protocol);
/// after it, TPKT or fast-path.
fn frame_kind(state: &ClientConnectorState) -> FrameKind {
    match state {
        ClientConnectorState::ConnectionInitiationWaitConfirm { .. } => FrameKind::Tpkt,
        _ => FrameKind::Rdp,
    }
}
