//! The probe through an RD Gateway: the gateway phases ([`crate::gateway::client`]) make the tunnel the RDP
//! connection then runs in, as [`super::transport::Edge::Tunnel`]. The connections to the gateway are what
//! `--pcap` records; the bytes inside the tunnel are what the dissector reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::transport::{Edge, TapLog};
use super::{Run, Stop, pcap};
use crate::gateway::client::Dialer;
use crate::gateway::kerberos::KerberosChoice;
use crate::gateway::tunnel::TunnelLog;
use crate::gateway::{GatewayConfig, Scheme};
use crate::trace::{EventKind, Side};

/// The gateway's side of a run: its connections (their taps and recorders) and the tunnel's log.
pub(super) struct GatewayState {
    logs: Vec<Arc<Mutex<TapLog>>>,
    recorders: Vec<pcap::Recorder>,
    tunnel: Option<Arc<Mutex<TunnelLog>>>,
}

impl Run<'_> {
    /// The gateway phases; the tunnel to the target and the local address of the gateway connection.
    pub(super) async fn through_gateway(
        &mut self,
        gw: &GatewayConfig,
    ) -> Result<(Edge, SocketAddr), Stop> {
        let secrets_written = self.secrets_written();
        if secrets_written && gw.auth == Some(Scheme::Basic) {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ClientLimit {
                    detail: "Basic authentication would put the gateway password in the TLS session whose secrets are being written: use Negotiate or NTLM, or leave out --keylog and --embed-secrets".to_owned(),
                },
            );
            return Err(Stop);
        }
        let keep = self.cfg.embed_secrets.then(|| self.secrets.clone());
        // --tls-max is about the RDP server; the gateway's HTTPS offers every version.
        let tls =
            match super::tls::client_config(self.cfg.keylog.as_ref(), keep, super::TlsMax::Tls13) {
                Ok(c) => c,
                Err(e) => {
                    let at = self.at();
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::ClientLimit {
                            detail: format!("cannot set up TLS: {e}"),
                        },
                    );
                    return Err(Stop);
                }
            };
        let clock = self.clock();
        let (result, conns, wire) = {
            let mut dialer = Dialer::new(
                self.d.trace_mut(),
                clock,
                gw,
                Arc::new(tls),
                self.cfg.strict_cert,
                &self.cfg.client_name,
                &self.cfg.host,
                self.cfg.port,
            );
            if secrets_written {
                dialer = dialer.without_basic();
            }
            let kerberos = match self.cfg.auth {
                super::Auth::Ntlm => None,
                auth => Some(KerberosChoice {
                    only: auth == super::Auth::Kerberos,
                    kdc: self.cfg.kdc.clone(),
                }),
            };
            dialer = dialer.with_kerberos(kerberos);
            let result = dialer.run().await;
            (result, dialer.conns, dialer.wire)
        };
        let mut recorders = Vec::new();
        if self.cfg.pcap.is_some() {
            for c in &conns {
                let mut r = pcap::Recorder::new(c.local, c.remote, self.started_wall);
                r.handshake(c.connected_at);
                recorders.push(r);
            }
            for (i, side, at, bytes) in &wire {
                if let Some(r) = recorders.get_mut(*i) {
                    r.data(*side, *at, bytes);
                }
            }
        }
        let local = conns
            .first()
            .map(|c| c.local)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut state = GatewayState {
            logs: conns.iter().map(|c| c.log.clone()).collect(),
            recorders,
            tunnel: None,
        };
        match result {
            Ok(tunnel) => {
                state.tunnel = Some(tunnel.log());
                self.gateway = Some(state);
                Ok((Edge::Tunnel(Box::new(tunnel)), local))
            }
            Err(_) => {
                self.gateway = Some(state);
                Err(Stop)
            }
        }
    }

    /// Records what the gateway's connections carried since the last call, and how the tunnel ended.
    pub(super) fn drain_gateway(&mut self) {
        let Some(state) = self.gateway.as_mut() else {
            return;
        };
        for (i, log) in state.logs.iter().enumerate() {
            let chunks = log.lock().map(|mut l| l.drain()).unwrap_or_default();
            if let Some(r) = state.recorders.get_mut(i) {
                for (side, at, bytes) in chunks {
                    r.data(side, at, &bytes);
                }
            }
        }
        let (end, notes) = match state.tunnel.as_ref().and_then(|t| t.lock().ok()) {
            Some(mut log) => (log.end.take(), std::mem::take(&mut log.notes)),
            None => (None, Vec::new()),
        };
        for (at, note) in notes {
            self.d
                .trace_mut()
                .record_event(at, EventKind::Anomaly { detail: note });
        }
        if let Some((at, end)) = end {
            if let (crate::trace::TunnelEnd::Dropped { how }, Some(r)) =
                (end, state.recorders.first_mut())
            {
                r.close(Side::Server, how, at);
            }
            self.d
                .trace_mut()
                .record_event(at, EventKind::TunnelEnded { end });
        }
    }

    /// The gateway's connections as one capture: the first recorder with the others merged in; the client
    /// closes them when the run ends.
    pub(super) fn gateway_capture(&mut self, at: f64) -> Option<pcap::Recorder> {
        let state = self.gateway.as_mut()?;
        let mut recorders = std::mem::take(&mut state.recorders).into_iter();
        let mut first = recorders.next()?;
        first.close(Side::Client, crate::trace::CloseKind::Fin, at);
        for mut other in recorders {
            other.close(Side::Client, crate::trace::CloseKind::Fin, at);
            first.merge(&other);
        }
        Some(first)
    }
}
