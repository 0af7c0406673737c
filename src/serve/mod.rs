//! The built-in target: a real RDP server on ironrdp-acceptor that fails on purpose.
//!
//! A [`Target`] listens, and for each connection walks the server side of the connection sequence
//! ([1.3.1.1]) one acceptor state at a time, over tokio, with its own TLS (rustls, a self-signed RSA 2048
//! certificate) and CredSSP (NTLM for one [`TestIdentity`]). The [`scenario`] decides where it fails and how;
//! every connection also yields the target's own [`crate::trace::Trace`] of what was read and written.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rdptrace::serve::ServeError> {
//! use rdptrace::serve::{Target, TargetConfig, scenario};
//! let scenario = scenario::find("denied-connection").expect("in the catalogue");
//! let target = Target::bind(TargetConfig::new(scenario)).await?;
//! let addr = target.local_addr();
//! let served = target.serve_one().await?; // a client connects to `addr` meanwhile
//! println!("{addr}: {}", served.outcome);
//! # Ok(()) }
//! ```

pub mod broker;
pub mod cli;
pub mod deployment;
pub mod faults;
pub mod gateway;
pub mod kerberos;
pub mod scenario;
pub mod standard_security;
pub mod tap;
pub mod target;
pub mod tls;

use core::fmt;
use std::net::SocketAddr;

pub use target::{DEFAULT_HOST_NAME, Outcome, Served, Target, TargetConfig};

/// The one identity the target accepts (CredSSP, and Client Info under TLS-only security).
#[derive(Clone, PartialEq, Eq)]
pub struct TestIdentity {
    pub user: String,
    /// Empty for none.
    pub domain: String,
    password: String,
}

impl TestIdentity {
    /// The default user name.
    pub const DEFAULT_USER: &str = "rdptrace";
    /// The default password: a published test value, not a secret. The target is a test server; give your
    /// own with `RDPTRACE_PASSWORD` or `--password-file` when that matters.
    pub const DEFAULT_PASSWORD: &str = "rdptrace-test-only";

    pub fn new(
        user: impl Into<String>,
        domain: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        TestIdentity {
            user: user.into(),
            domain: domain.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl Default for TestIdentity {
    fn default() -> Self {
        TestIdentity::new(Self::DEFAULT_USER, "", Self::DEFAULT_PASSWORD)
    }
}

impl fmt::Debug for TestIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIdentity")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Why the target could not start or accept.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("unknown scenario {0} (one of {names})", names = scenario::names())]
    UnknownScenario(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot make the certificate: {0}")]
    Certificate(String),
    #[error("tls configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("cannot open the key log {path}: {source}")]
    KeyLog {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("accept failed: {0}")]
    Accept(#[source] std::io::Error),
}
