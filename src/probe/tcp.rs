//! The tcp phase: name resolution and the TCP handshake, under the probe's own deadlines. [`dial`] also
//! makes the connections to an RD Gateway.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tracing::info;

use super::{Clock, Run, Stop, pcap};
use crate::trace::{ConnectError, EventKind, PhaseName, Trace};

impl Run<'_> {
    /// Resolves and connects; records the tcp phase. Returns the stream and its local address.
    pub(super) async fn connect(&mut self) -> Result<(TcpStream, SocketAddr), Stop> {
        let host = self.cfg.host.clone();
        let at = self.at();
        self.d.trace_mut().enter(PhaseName::Tcp, at);
        let clock = self.clock();
        let (stream, local, addr) = dial(self.d.trace_mut(), &clock, &host, self.cfg.port)
            .await
            .ok_or(Stop)?;
        if self.cfg.pcap.is_some() {
            let mut recorder = pcap::Recorder::new(local, addr, self.started_wall);
            recorder.handshake(self.at());
            self.recorder = Some(recorder);
        }
        self.d.trace_mut().set_addrs(Some(local), Some(addr));
        Ok((stream, local))
    }
}

/// Resolves `host` and connects to `port`, trying at most eight of its addresses, each under the clock's
/// deadline; records in the trace's current phase what happened (the addresses, each failure, the
/// connection). Returns the stream, its local address and the address it reached.
pub(crate) async fn dial(
    trace: &mut Trace,
    clock: &Clock,
    host: &str,
    port: u16,
) -> Option<(TcpStream, SocketAddr, SocketAddr)> {
    let (deadline, which) = clock.deadline();
    let lookup =
        tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.to_owned(), port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            trace.record_event(
                clock.at(),
                EventKind::ResolveFailed {
                    host: host.to_owned(),
                    error: e.to_string(),
                },
            );
            return None;
        }
        Err(_) => {
            trace.record_event(
                clock.at(),
                EventKind::TimedOut {
                    deadline: which,
                    waiting_for: "name resolution".to_owned(),
                },
            );
            return None;
        }
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        trace.record_event(
            clock.at(),
            EventKind::Resolved {
                host: host.to_owned(),
                addrs: addrs.iter().map(|a| a.ip().to_string()).collect(),
            },
        );
    }
    if addrs.is_empty() {
        trace.record_event(
            clock.at(),
            EventKind::ResolveFailed {
                host: host.to_owned(),
                error: "no addresses".to_owned(),
            },
        );
        return None;
    }
    for addr in addrs.iter().take(8) {
        let (deadline, which) = clock.deadline();
        let res = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await;
        let error = match res {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let local = stream
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                trace.record_event(
                    clock.at(),
                    EventKind::Connected {
                        local: local.to_string(),
                        remote: addr.to_string(),
                    },
                );
                info!(%addr, "tcp connected");
                return Some((stream, local, *addr));
            }
            Ok(Err(e)) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
                std::io::ErrorKind::TimedOut => ConnectError::TimedOut,
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
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
                trace.record_event(
                    clock.at(),
                    EventKind::TimedOut {
                        deadline: which,
                        waiting_for: format!("SYN-ACK from {addr}"),
                    },
                );
                ConnectError::TimedOut
            }
        };
        trace.record_event(
            clock.at(),
            EventKind::ConnectFailed {
                addr: addr.to_string(),
                error,
            },
        );
    }
    None
}
