//! The built-in target: a real RDP server on ironrdp-acceptor that fails on purpose.

pub mod cli;
pub mod faults;
pub mod scenario;
