//! Renderers: they print a trace and its verdict, and decide nothing. [`stdout`] is the one writer to
//! standard output.
//!
//! Stored results read back ([`stored`]) become the summary, JUnit and the HTML page ([`html`]) of
//! `rdptrace report` ([`cli`], the one part of this module that reads and writes files).

pub mod cli;
pub mod html;
pub mod json;
pub mod stdout;
pub mod stored;
pub mod text;

/// The schema name of the JSON output; bumped when a field changes meaning or goes away.
pub const SCHEMA: &str = "rdptrace/1";

/// A document could not be serialised.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the JSON document: {0}")]
pub struct SerializeError(#[source] pub serde_json::Error);

/// `value` as one line of JSON, newline included; an error, never an empty line, when it cannot be one.
pub fn json_line<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, SerializeError> {
    let mut line = serde_json::to_string(value).map_err(SerializeError)?;
    line.push('\n');
    Ok(line)
}

/// `value` as a JSON value, or the error that kept it from becoming one.
pub fn json_value<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<serde_json::Value, SerializeError> {
    serde_json::to_value(value).map_err(SerializeError)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that cannot become JSON.
    struct Broken;

    impl serde::Serialize for Broken {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("not serialisable"))
        }
    }

    /// A document that cannot be serialised is an error, not an empty line.
    #[test]
    fn a_document_that_cannot_be_serialised_is_an_error() {
        let e = json_line(&Broken).unwrap_err();
        assert!(e.to_string().contains("not serialisable"), "{e}");
        assert!(json_value(&[Broken]).is_err());
        assert_eq!(json_line(&[1, 2]).unwrap(), "[1,2]\n");
    }
}
