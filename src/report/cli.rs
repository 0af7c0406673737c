//! `rdptrace report FILE...`: stored results (`rdptrace/1` JSON lines from `probe --json`, fleet shards,
//! `replay --json`, the exporter's `/results`) turned into the summary, a JUnit report and an HTML page,
//! without probing anything again.
//!
//! The results stream: each line is parsed, counted into the summary ([`Summary`]: counters and one
//! short entry per failing result), its JUnit case and HTML section spooled to disk, and dropped. Memory
//! is bounded by the summary and the longest line ([`MAX_LINE`]), never by the number of results.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::html;
use super::stored::{Stored, StoredError};
use crate::command::CliError;
use crate::fleet::junit::{Case, JunitWriter};
use crate::fleet::summary::Summary;

/// The longest line read: a trace at its bounds (every phase's PDUs and events full) is a few MiB.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Files of rdptrace/1 JSON lines (- reads stdin); several are merged, in the order given.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Write a JUnit XML report: one test case per result.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write one self-contained HTML page: the summary and a waterfall of the phases per result.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Why the results could not be read or the reports written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file}:{line}: {error}")]
    Line {
        file: String,
        line: u64,
        #[source]
        error: StoredError,
    },
    #[error("{file}:{line}: a line longer than {MAX_LINE} bytes")]
    LineTooLong { file: String, line: u64 },
    #[error("no results in {0}")]
    Empty(String),
    #[error("stdin (-) given more than once")]
    StdinTwice,
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<ReportError> for CliError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Read { .. } | ReportError::Write { .. } => CliError::failure(e),
            _ => CliError::usage(e),
        }
    }
}

/// The HTML page being written: sections spooled beside it, assembled at the end behind the summary.
struct HtmlSpool {
    path: PathBuf,
    spool_path: PathBuf,
    spool: BufWriter<File>,
}

impl HtmlSpool {
    fn create(path: &Path) -> io::Result<HtmlSpool> {
        let mut spool_path = path.as_os_str().to_owned();
        spool_path.push(".partial");
        let spool_path = PathBuf::from(spool_path);
        // Fail now, not after reading everything, when the page cannot be written.
        File::create(path)?;
        Ok(HtmlSpool {
            path: path.to_owned(),
            spool: BufWriter::new(File::create(&spool_path)?),
            spool_path,
        })
    }

    fn add(&mut self, section: &str) -> io::Result<()> {
        self.spool.write_all(section.as_bytes())
    }

    fn finish(self, head: &str) -> io::Result<()> {
        let spool = self
            .spool
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        drop(spool);
        let mut out = BufWriter::new(File::create(&self.path)?);
        out.write_all(head.as_bytes())?;
        io::copy(&mut File::open(&self.spool_path)?, &mut out)?;
        out.write_all(html::TAIL.as_bytes())?;
        out.flush()?;
        std::fs::remove_file(&self.spool_path)
    }
}

/// Reads one line (without its newline) into `buf`, at most [`MAX_LINE`] bytes; `Ok(None)` at the end,
/// `Ok(Some(false))` for a longer line.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let n = io::Read::take(&mut *reader, MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Some(true));
    }
    if buf.len() > MAX_LINE {
        return Ok(Some(false));
    }
    Ok(Some(true))
}

/// The seconds a stored result took: the end of its last phase.
fn seconds(s: &Stored) -> f64 {
    s.phases
        .iter()
        .filter_map(|p| Some(p.start_ms? + p.duration_ms?))
        .fold(0.0f64, f64::max)
        / 1000.0
}

/// `rdptrace report`.
pub fn run(args: ReportArgs) -> Result<ExitCode, CliError> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Write { path, source }
    };
    let mut junit = match &args.junit {
        Some(p) => Some(JunitWriter::create(p, "rdptrace report").map_err(CliError::failure)?),
        None => None,
    };
    let mut page = match &args.html {
        Some(p) => Some(HtmlSpool::create(p).map_err(write_error(p))?),
        None => None,
    };
    let mut summary = Summary::default();
    let mut position = 0usize;
    // The exit code: the smallest of the failing results', whatever order the files hold them in (a
    // fleet run writes its results as they finish).
    let mut lowest: Option<u8> = None;
    let mut stdin_used = false;
    let mut names = Vec::with_capacity(args.files.len());
    let mut buf = Vec::new();
    for path in &args.files {
        let name = if path.as_os_str() == "-" {
            if stdin_used {
                return Err(ReportError::StdinTwice.into());
            }
            stdin_used = true;
            "stdin".to_owned()
        } else {
            path.display().to_string()
        };
        let read_error = |source| ReportError::Read {
            file: name.clone(),
            source,
        };
        let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(BufReader::new(File::open(path).map_err(read_error)?))
        };
        let mut line = 0u64;
        while let Some(whole) = read_line(&mut reader, &mut buf).map_err(read_error)? {
            line += 1;
            if !whole {
                return Err(ReportError::LineTooLong { file: name, line }.into());
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let stored = Stored::parse(&buf).map_err(|error| ReportError::Line {
                file: name.clone(),
                line,
                error,
            })?;
            if let Some(w) = junit.as_mut() {
                let kind = stored.origin.as_ref().map_or("probe", |o| o.kind.as_str());
                let case = Case {
                    name: stored.label(),
                    classname: format!(
                        "rdptrace.{}",
                        if kind == "replay" { "replay" } else { "probe" }
                    ),
                    failure: stored.failure(),
                    system_out: Some(stored.text()),
                    seconds: Some(seconds(&stored)),
                };
                w.add(position as u64, &case).map_err(CliError::failure)?;
            }
            if let (Some(p), Some(path)) = (page.as_mut(), &args.html) {
                p.add(&html::section(&stored, position))
                    .map_err(write_error(path))?;
            }
            let entry = stored.entry(position, format!("{name}:{line}"));
            if !entry.passed {
                lowest = Some(lowest.map_or(entry.code, |c: u8| c.min(entry.code)));
            }
            summary.add(entry);
            position += 1;
        }
        names.push(name);
    }
    if position == 0 {
        return Err(ReportError::Empty(names.join(", ")).into());
    }
    crate::report::stdout::print(&summary.render())?;
    if let Some(w) = junit {
        w.finish().map_err(CliError::failure)?;
    }
    if let (Some(p), Some(path)) = (page, &args.html) {
        p.finish(&html::head(&summary, &names))
            .map_err(write_error(path))?;
    }
    Ok(ExitCode::from(lowest.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_and_bounded() {
        let text = b"one\r\ntwo\n\nthree";
        let mut r = io::Cursor::new(&text[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(whole) = read_line(&mut r, &mut buf).unwrap() {
            assert!(whole);
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, ["one", "two", "", "three"]);
    }
}
