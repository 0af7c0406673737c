//! The tcp phase: name resolution and the TCP handshake, under the probe's own deadlines.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tracing::info;

use super::{Run, Stop, pcap};
use crate::trace::{ConnectError, EventKind, PhaseName};

impl Run<'_> {
    /// Resolves and connects; records the tcp phase. Returns the stream and its local address.
    pub(super) async fn connect(&mut self) -> Result<(TcpStream, SocketAddr), Stop> {
        let host = self.cfg.host.clone();
        let at = self.at();
        self.d.trace_mut().enter(PhaseName::Tcp, at);
        let (deadline, which) = self.deadline();
        let lookup = tokio::time::timeout_at(
            deadline,
            tokio::net::lookup_host((host.clone(), self.cfg.port)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match lookup {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::ResolveFailed {
                        host,
                        error: e.to_string(),
                    },
                );
                return Err(Stop);
            }
            Err(_) => {
                let at = self.at();
                self.d.trace_mut().record_event(
                    at,
                    EventKind::TimedOut {
                        deadline: which,
                        waiting_for: "name resolution".to_owned(),
                    },
                );
                return Err(Stop);
            }
        };
        if host.parse::<std::net::IpAddr>().is_err() {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::Resolved {
                    host: host.clone(),
                    addrs: addrs.iter().map(|a| a.ip().to_string()).collect(),
                },
            );
        }
        if addrs.is_empty() {
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ResolveFailed {
                    host,
                    error: "no addresses".to_owned(),
                },
            );
            return Err(Stop);
        }
        for addr in addrs.iter().take(8) {
            let (deadline, which) = self.deadline();
            let res = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await;
            let error = match res {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    let at = self.at();
                    if self.cfg.pcap.is_some() {
                        let mut recorder = pcap::Recorder::new(local, *addr, self.started_wall);
                        recorder.handshake(at);
                        self.recorder = Some(recorder);
                    }
                    let trace = self.d.trace_mut();
                    trace.set_addrs(Some(local), Some(*addr));
                    trace.record_event(
                        at,
                        EventKind::Connected {
                            local: local.to_string(),
                            remote: addr.to_string(),
                        },
                    );
                    info!(%addr, "tcp connected");
                    return Ok((stream, local));
                }
                Ok(Err(e)) => match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
                    std::io::ErrorKind::TimedOut => ConnectError::TimedOut,
                    std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable => {
                        ConnectError::Unreachable(e.to_string())
                    }
                    _ => match e.raw_os_error() {
                        // EHOSTUNREACH, ENETUNREACH
                        Some(113) | Some(101) => ConnectError::Unreachable(e.to_string()),
                        _ => ConnectError::Other(e.to_string()),
                    },
                },
                Err(_) => {
                    // The probe's own deadline, not the kernel's (which gives up after minutes).
                    let at = self.at();
                    self.d.trace_mut().record_event(
                        at,
                        EventKind::TimedOut {
                            deadline: which,
                            waiting_for: format!("SYN-ACK from {addr}"),
                        },
                    );
                    ConnectError::TimedOut
                }
            };
            let at = self.at();
            self.d.trace_mut().record_event(
                at,
                EventKind::ConnectFailed {
                    addr: addr.to_string(),
                    error,
                },
            );
        }
        Err(Stop)
    }
}
