//! Renderers: they print a trace and its verdict, and decide nothing.

pub mod json;
pub mod text;

/// The schema name of the JSON output; bumped when a field changes meaning or goes away.
pub const SCHEMA: &str = "rdptrace/1";
