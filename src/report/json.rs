//! The JSON document (`--json`), schema `rdptrace/1`: see README.md, "JSON output".

use serde::Serialize;

use super::SCHEMA;
use crate::trace::Trace;
use crate::verdict::Verdict;

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(flatten)]
    trace: &'a Trace,
    verdict: &'a Verdict,
}

/// The document for one trace.
pub fn document(trace: &Trace, verdict: &Verdict) -> serde_json::Value {
    serde_json::to_value(Document {
        schema: SCHEMA,
        trace,
        verdict,
    })
    .unwrap_or_else(|e| serde_json::json!({ "schema": SCHEMA, "error": e.to_string() }))
}

/// One line of JSON (for JSON lines output): the same text as [`document`]'s, written straight from the
/// trace rather than through a `serde_json::Value`.
pub fn line(trace: &Trace, verdict: &Verdict) -> String {
    serde_json::to_string(&Document {
        schema: SCHEMA,
        trace,
        verdict,
    })
    .unwrap_or_else(|_| document(trace, verdict).to_string())
}

/// Indented JSON.
pub fn pretty(trace: &Trace, verdict: &Verdict) -> String {
    serde_json::to_string_pretty(&document(trace, verdict)).unwrap_or_default()
}
