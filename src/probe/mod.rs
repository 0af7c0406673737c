//! The live probe: drives ironrdp-connector state by state over tokio, reads every frame before the
//! connector does, and feeds both directions to the dissector.

pub mod cli;
