//! Standard output, for every command: one writer that ends quietly on a closed pipe.
//!
//! When the reader goes away (`rdptrace demo | head -1`: EPIPE), what is left to print is dropped without
//! a word, and the command finishes as it would have: the same work, the same exit code; no panic, no
//! message. Any other error (a full disk behind `>`) is returned, and the command fails with it.
//!
//! Nothing else in rdptrace writes to stdout (`print!` would panic on the closed pipe).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write met a closed pipe: every later write is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writing to stdout failed, for another reason than a reader that went away.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(#[source] pub io::Error);

/// Stdout as an [`io::Write`] (for `io::copy`, `write!`) that never fails on a closed pipe.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdout;

impl Stdout {
    /// Whether the reader went away: what is written is dropped.
    pub fn closed() -> bool {
        CLOSED.load(Ordering::Relaxed)
    }

    /// `Ok` for a closed pipe (and from then on every write is dropped), the error otherwise.
    fn quiet<T>(result: io::Result<T>, dropped: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                CLOSED.store(true, Ordering::Relaxed);
                Ok(dropped)
            }
            other => other,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if Stdout::closed() {
            return Ok(buf.len());
        }
        Stdout::quiet(io::stdout().lock().write(buf), buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if Stdout::closed() {
            return Ok(());
        }
        Stdout::quiet(io::stdout().lock().flush(), ())
    }
}

/// Writes `text` to stdout and flushes it, so that what streams (one line per target, per session, per
/// connection) is seen as it comes.
pub fn print(text: &str) -> Result<(), StdoutError> {
    let mut out = Stdout;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}
