//! JUnit XML reports (quick-junit) written case by case, so that a run over many targets never holds
//! every case in memory.
//!
//! Each case is serialized by quick-junit as it comes and appended to a spool file beside the report;
//! memory holds only its position. At the end the report is assembled in input order: the header and
//! counts from quick-junit, then the spooled cases, then the closing tags.

use std::fs::File;
use std::io::{self, BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// The most bytes of system-out kept per case (a timeline is a few kilobytes; this bounds the spool).
pub const MAX_SYSTEM_OUT: usize = 64 * 1024;

/// The report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("cannot write {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the JUnit report: {0}")]
    Write(#[source] io::Error),
}

/// A report being written.
pub struct JunitWriter {
    path: PathBuf,
    spool_path: PathBuf,
    spool: BufWriter<File>,
    /// (order, offset, length) of each spooled case.
    index: Vec<(u64, u64, u64)>,
    offset: u64,
    suite: String,
    tests: usize,
    failures: usize,
    started: Instant,
}

/// One case: name, class, and the failure when it failed.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub classname: String,
    /// `(message, type)` of the failure; `None` for a success.
    pub failure: Option<(String, String)>,
    pub system_out: Option<String>,
    pub seconds: Option<f64>,
}

impl Case {
    fn to_test_case(&self) -> TestCase {
        let status = match &self.failure {
            None => TestCaseStatus::success(),
            Some((message, kind)) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(message.as_str());
                s.set_type(kind.as_str());
                s
            }
        };
        let mut case = TestCase::new(self.name.as_str(), status);
        case.set_classname(self.classname.as_str());
        if let Some(out) = &self.system_out {
            case.set_system_out(truncate(out, MAX_SYSTEM_OUT));
        }
        if let Some(s) = self.seconds
            && s.is_finite()
            && s >= 0.0
        {
            case.set_time(std::time::Duration::from_secs_f64(s));
        }
        case
    }
}

/// At most `max` bytes of `s`, cut on a character boundary, with a note when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[truncated: {} more bytes]", &s[..end], s.len() - end)
}

/// The lines of `xml` from the line holding `start` to the end of the line holding the last `end`.
fn slice_lines<'a>(xml: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let a = xml.find(start)?;
    let a = xml[..a].rfind('\n').map_or(0, |n| n + 1);
    let b = xml.rfind(end)? + end.len();
    let b = xml[b..].find('\n').map_or(xml.len(), |n| b + n + 1);
    xml.get(a..b)
}

fn xml_error(e: quick_junit::SerializeError) -> io::Error {
    io::Error::other(e.to_string())
}

impl JunitWriter {
    /// Starts a report at `path` with one test suite named `suite`.
    pub fn create(path: &Path, suite: &str) -> Result<Self, JunitError> {
        JunitWriter::open(path, suite).map_err(|source| JunitError::Create {
            path: path.to_owned(),
            source,
        })
    }

    fn open(path: &Path, suite: &str) -> io::Result<Self> {
        let mut spool_path = path.as_os_str().to_owned();
        spool_path.push(".partial");
        let spool_path = PathBuf::from(spool_path);
        let spool = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&spool_path)?;
        // Fail now, not after an hour of probing, when the report cannot be written.
        File::create(path)?;
        Ok(JunitWriter {
            path: path.to_owned(),
            spool_path,
            spool: BufWriter::new(spool),
            index: Vec::new(),
            offset: 0,
            suite: suite.to_owned(),
            tests: 0,
            failures: 0,
            started: Instant::now(),
        })
    }

    /// Adds a case; `order` decides its place in the report (input order), whatever the order of arrival.
    pub fn add(&mut self, order: u64, case: &Case) -> Result<(), JunitError> {
        self.spool_case(order, case).map_err(JunitError::Write)
    }

    fn spool_case(&mut self, order: u64, case: &Case) -> io::Result<()> {
        let mut suite = TestSuite::new(self.suite.as_str());
        suite.add_test_case(case.to_test_case());
        let mut report = Report::new("rdptrace");
        report.add_test_suite(suite);
        let xml = report.to_string().map_err(xml_error)?;
        let fragment = slice_lines(&xml, "<testcase", "</testcase>")
            .ok_or_else(|| io::Error::other("quick-junit wrote no testcase element"))?;
        self.spool.write_all(fragment.as_bytes())?;
        let len = fragment.len() as u64;
        self.index.push((order, self.offset, len));
        self.offset += len;
        self.tests += 1;
        if case.failure.is_some() {
            self.failures += 1;
        }
        Ok(())
    }

    /// Writes the report and removes the spool.
    pub fn finish(self) -> Result<(), JunitError> {
        self.write_report().map_err(JunitError::Write)
    }

    fn write_report(mut self) -> io::Result<()> {
        self.spool.flush()?;
        let mut spool = self
            .spool
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut suite = TestSuite::new(self.suite.as_str());
        suite.tests = self.tests;
        suite.failures = self.failures;
        suite.set_time(self.started.elapsed());
        let mut report = Report::new("rdptrace");
        report.tests = self.tests;
        report.failures = self.failures;
        report.set_time(self.started.elapsed());
        report.test_suites.push(suite);
        let xml = report.to_string().map_err(xml_error)?;
        let close = xml
            .rfind("</testsuite>")
            .ok_or_else(|| io::Error::other("quick-junit wrote no testsuite element"))?;
        let close = xml[..close].rfind('\n').map_or(close, |n| n + 1);
        let (head, tail) = xml.split_at(close);
        let mut out = BufWriter::new(File::create(&self.path)?);
        out.write_all(head.as_bytes())?;
        self.index.sort_by_key(|(order, _, _)| *order);
        let mut buf = Vec::new();
        for (_, offset, len) in &self.index {
            spool.seek(SeekFrom::Start(*offset))?;
            buf.clear();
            (&mut spool).take(*len).read_to_end(&mut buf)?;
            out.write_all(&buf)?;
        }
        out.write_all(tail.as_bytes())?;
        out.flush()?;
        drop(spool);
        std::fs::remove_file(&self.spool_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_come_out_in_input_order_and_parse_back() {
        let dir = std::env::temp_dir().join(format!("rdptrace-junit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.xml");
        let mut w = JunitWriter::create(&path, "rdptrace probe").unwrap();
        let case = |name: &str, failed: bool| Case {
            name: name.to_owned(),
            classname: "rdptrace.probe".to_owned(),
            failure: failed.then(|| {
                (
                    "it failed <badly> & \"loudly\"".to_owned(),
                    "refused".to_owned(),
                )
            }),
            system_out: Some(format!("timeline of {name}\n\u{1b}[31m")),
            seconds: Some(0.5),
        };
        w.add(2, &case("c", false)).unwrap();
        w.add(0, &case("a", true)).unwrap();
        w.add(1, &case("b", false)).unwrap();
        w.finish().unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(!dir.join("report.xml.partial").exists());
        let report = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(report.tests, 3);
        assert_eq!(report.failures, 1);
        let suite = &report.test_suites[0];
        let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn long_output_is_cut_on_a_character() {
        let s = "é".repeat(10);
        let t = truncate(&s, 5);
        assert!(t.starts_with("éé"));
        assert!(t.contains("truncated"));
    }
}
