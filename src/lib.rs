//! rdptrace walks the RDP connection sequence phase by phase and says where and why a connection dies.
//!
//! See ARCHITECTURE.md for the code map.

// One module maps capture files into memory (replay/mapped.rs) and says why that is sound; nothing else may use `unsafe`.
#![deny(unsafe_code)]

pub mod cert;
pub mod check;
pub mod cli;
pub mod codes;
pub mod command;
pub mod diagnose;
pub mod dissect;
pub mod explain;
pub mod exporter;
pub mod fleet;
pub mod fuzzing;
pub mod gateway;
pub mod infer;
pub mod kerberos;
pub mod mstsc;
pub mod pdu;
pub mod probe;
pub mod rdp_security;
pub mod replay;
pub mod report;
pub mod scan;
pub mod serve;
#[cfg(feature = "synth")]
pub mod synth;
pub mod trace;
pub mod verdict;
pub mod wire;
