//! A scenario as a client meets it: the target, and what stands in front of it or beside it (the RD Gateway
//! of a gateway scenario, the session host or second broker of a broker scenario), bound on loopback and run
//! together. `serve`, `demo` and the tests use it.
//!
//! A broker's second target listens on the next loopback address (127.0.0.2 beside 127.0.0.1) on the same
//! port: a Server Redirection PDU names an address, and the client keeps its port.

use core::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::broker::{self, Broker, BrokerProfile, SessionHost};
use super::gateway::{Gateway, GatewayConfig, GatewayFault, GatewayOutcome, GatewayProfile};
use super::scenario::{Protocols, Scenario};
use super::{ServeError, Served, Target, TargetConfig, TestIdentity};
use crate::probe::{Credentials, Password, ProbeConfig};

/// Attempts at finding a port free on two loopback addresses.
const PORT_ATTEMPTS: usize = 32;

/// The servers of one scenario.
#[derive(Debug, Clone)]
pub struct Deployment {
    scenario: Scenario,
    identity: TestIdentity,
    /// The target a client connects to (the first broker of a broker scenario); `None` when the scenario's
    /// target is down.
    pub target: Option<Target>,
    /// The other targets: the session host, or the second broker.
    pub others: Vec<Target>,
    pub gateway: Option<Gateway>,
    /// The address the client asks for, directly or through the gateway.
    pub address: SocketAddr,
}

/// A port free on `first` and on each of `others`, or the port of `first` when it is fixed.
async fn common_port(first: SocketAddr, others: &[IpAddr]) -> Result<u16, ServeError> {
    for _ in 0..PORT_ATTEMPTS {
        let probe = tokio::net::TcpListener::bind(first)
            .await
            .map_err(|source| ServeError::Bind {
                addr: first,
                source,
            })?;
        let port = probe.local_addr().map(|a| a.port()).unwrap_or(first.port());
        let mut free = true;
        for ip in others {
            if tokio::net::TcpListener::bind((*ip, port)).await.is_err() {
                free = false;
            }
        }
        drop(probe);
        if free || first.port() != 0 {
            return Ok(port);
        }
    }
    Err(ServeError::Config(format!(
        "no port free on {} and {others:?} after {PORT_ATTEMPTS} attempts",
        first.ip()
    )))
}

impl Deployment {
    /// Binds what the scenario of `config` needs; the gateway listens on `gateway_listen` (any loopback port
    /// when the scenario needs one and none is given).
    pub async fn bind(
        config: TargetConfig,
        gateway_listen: Option<SocketAddr>,
    ) -> Result<Deployment, ServeError> {
        let scenario = config.scenario;
        let identity = config.identity.clone();
        let gateway_kerberos = config.gateway_kerberos.clone();
        let mut others = Vec::new();
        let gateway_profile = scenario
            .gateway
            .or(gateway_listen.map(|_| GatewayProfile::HEALTHY));
        let target_down =
            gateway_profile.is_some_and(|p| p.fault == Some(GatewayFault::TargetDown));
        let (target, address) = match scenario.broker {
            _ if target_down => {
                // Nothing listens there: the port was free a moment ago and is free again.
                let port = common_port(config.listen, &[]).await?;
                (None, SocketAddr::new(config.listen.ip(), port))
            }
            None => {
                let t = Target::bind(config).await?;
                let a = t.local_addr();
                (Some(t), a)
            }
            Some(profile) => {
                let ip = config.listen.ip();
                let second_ip = broker::next_loopback(ip, 1);
                let third_ip = broker::next_loopback(ip, 2);
                let port = common_port(config.listen, &[second_ip, third_ip]).await?;
                let first = SocketAddr::new(ip, port);
                let second = SocketAddr::new(second_ip, port);
                // No Password: FreeRDP uses the one of a redirection for NLA at the session host, 2.11 without
                // its NUL and 3.10 with it, so that a cleartext password works with one of them only; a client
                // with its own credentials needs none. The tests give a broker a cookie of their own.
                let password: Option<Vec<u8>> = None;
                let mut main = config.clone();
                main.listen = first;
                let mut host = TargetConfig::new(&Scenario {
                    protocols: Protocols::ENHANCED,
                    ..scenario
                });
                host.identity = identity.clone();
                host.listen = second;
                host.read_timeout = config.read_timeout;
                host.idle_limit = config.idle_limit;
                host.faults = Vec::new();
                let token = broker::msts_token(second);
                match profile {
                    BrokerProfile::Redirect | BrokerProfile::NeedsLoadBalanceInfo(_) => {
                        main.broker = Some(Broker {
                            redirect_to: second_ip,
                            token: token.clone(),
                            password,
                            forward_to: Some(second),
                            requires: match profile {
                                BrokerProfile::NeedsLoadBalanceInfo(lb) => Some(lb.to_owned()),
                                _ => None,
                            },
                        });
                        host.session_host = Some(SessionHost {
                            token,
                            session_id: broker::SESSION_ID,
                            cookie: None,
                        });
                        others.push(Target::bind(host).await?);
                    }
                    BrokerProfile::Unreachable => {
                        let third = SocketAddr::new(third_ip, port);
                        main.broker = Some(Broker {
                            redirect_to: third_ip,
                            token: broker::msts_token(third),
                            password,
                            // A client that comes back with the token is forwarded there too, and fails.
                            forward_to: Some(third),
                            requires: None,
                        });
                    }
                    BrokerProfile::Loop => {
                        main.broker = Some(Broker {
                            redirect_to: second_ip,
                            token,
                            password: password.clone(),
                            forward_to: None,
                            requires: None,
                        });
                        host.broker = Some(Broker {
                            redirect_to: ip,
                            token: broker::msts_token(first),
                            password,
                            forward_to: None,
                            requires: None,
                        });
                        others.push(Target::bind(host).await?);
                    }
                }
                let t = Target::bind(main).await?;
                (Some(t), first)
            }
        };
        let gateway = match gateway_profile {
            Some(profile) => {
                let mut gc = GatewayConfig::new(profile);
                gc.identity = identity.clone();
                if let Some(listen) = gateway_listen {
                    gc.listen = listen;
                }
                if let Some(k) = gateway_kerberos {
                    // The certificate names the host whose HTTP/ principal the keys are.
                    gc.host_name = k.host_name.clone();
                    gc.kerberos = Some(k);
                }
                if let Some(t) = &target {
                    gc.read_timeout = t.config().read_timeout;
                    gc.idle_limit = t.config().idle_limit;
                }
                Some(Gateway::bind(gc).await?)
            }
            None => None,
        };
        Ok(Deployment {
            scenario,
            identity,
            target,
            others,
            gateway,
            address,
        })
    }

    /// The configuration a probe of this scenario uses: the target's address, the test identity (for the
    /// gateway too), the gateway, the scenario's probe settings.
    pub fn probe_config(&self) -> Result<ProbeConfig, ServeError> {
        let mut cfg = ProbeConfig::new(&self.address.to_string()).map_err(ServeError::Config)?;
        let password = Password::new(self.identity.password().to_owned());
        cfg.credentials = Some(Credentials {
            user: self.identity.user.clone(),
            domain: (!self.identity.domain.is_empty()).then(|| self.identity.domain.clone()),
            password: password.clone(),
        });
        if let Some(gw) = &self.gateway
            && let Ok(mut g) = crate::gateway::GatewayConfig::new(&gw.url())
        {
            g.credentials = Some(crate::gateway::GatewayCredentials {
                user: self.identity.user.clone(),
                domain: None,
                password,
            });
            cfg.gateway = Some(g);
        }
        self.scenario.probe.apply(&mut cfg);
        Ok(cfg)
    }

    /// The gateway's URL, when there is a gateway.
    pub fn gateway_url(&self) -> Option<String> {
        self.gateway.as_ref().map(Gateway::url)
    }

    /// Runs every server until `shutdown` completes; the targets' connections go to `served`, the gateway's to
    /// `gateway` when given.
    pub async fn run<F>(
        &self,
        shutdown: F,
        served: Option<mpsc::UnboundedSender<Served>>,
        gateway: Option<mpsc::UnboundedSender<(SocketAddr, GatewayOutcome)>>,
    ) -> Result<(), ServeError>
    where
        F: Future<Output = ()>,
    {
        let (stop, stopped) = watch::channel(false);
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let mut tasks = tokio::task::JoinSet::new();
        for t in self.target.iter().chain(&self.others) {
            let t = t.clone();
            let sink = served.clone();
            let rx = stopped.clone();
            tasks.spawn(async move { t.run(until(rx), sink).await });
        }
        if let Some(g) = &self.gateway {
            let g = g.clone();
            let rx = stopped.clone();
            let sink = gateway.clone();
            tasks.spawn(async move { g.run(until(rx), sink).await });
        }
        shutdown.await;
        let _ = stop.send(true);
        let mut result = Ok(());
        // INVARIANT: one join per task spawned above.
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                result = Err(e);
            }
        }
        result
    }

    /// Runs every server for `limit` at most, or until `shutdown`; for tests and `demo`.
    pub async fn run_for<F>(&self, limit: Duration, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()>,
    {
        let stop = async {
            tokio::select! {
                () = shutdown => {}
                () = tokio::time::sleep(limit) => {}
            }
        };
        self.run(stop, None, None).await
    }
}
