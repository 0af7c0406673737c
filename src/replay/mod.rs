//! Offline replay: the RDP sessions of a pcap or pcapng capture, through the same dissector and diagnosis.

pub mod cli;
