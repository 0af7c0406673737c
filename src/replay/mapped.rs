//! Reading a capture file through memory maps: the packets the replay reads are the page cache's bytes, not
//! copies of them, and a worker thread reads a packet's payload where the reader found it.
//!
//! The file is mapped a window at a time ([`WINDOW`] bytes, more when one record needs it). A window is
//! shared ([`Arc`]) by the reader and by every batch that holds a packet of it, and unmapped when the last
//! of them lets it go: memory stays bounded by the windows in flight, whatever the file's size.
//!
//! A window's pages are mapped when it is ([`MmapOptions::populate`]), in one call. A reader feeding worker
//! threads ([`Mapped::for_workers`]) maps them instead as it first reads them (the kernel maps a few
//! pages around each that faults), so that the worker reading for all does not hold up the others through
//! a whole window's mapping; and it lets its windows grow while their records are long: mapping and
//! unmapping a window costs more in a process whose threads run on several cores (unmapping has the
//! kernel flush the other cores' address caches), and a window of long records is done with sooner. A
//! window then holds about [`RECORDS`] records, so a file of short records (a scan, a flood) keeps the
//! least windows, and the least memory.
//!
//! Only plain pcap and pcapng files are read this way ([`super::capture`]); a gzip-compressed file, a
//! stream and a Network Monitor file are read through a buffer.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

/// Bytes mapped at once (a record longer than this gets a window of its own size).
pub const WINDOW: usize = 2 << 20;
/// A growing window ([`Mapped::for_workers`]) is long enough for about this many records like those of the
/// window before it: mapping and unmapping it then costs a few percent of the work on its records.
pub const RECORDS: usize = 8192;
/// How far ahead of the read position the reader has the CPU fetch the file's bytes into its cache: a few
/// records, so that reading a record's header does not wait for memory.
pub const PREFETCH_AHEAD: usize = 8 << 10;
/// A cache line.
const LINE: usize = 64;

/// A stretch of the file mapped into memory.
#[derive(Debug)]
pub struct Window {
    map: Mmap,
}

impl Window {
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Asks the CPU to bring the window's bytes from `from` for `len` bytes into its cache before they
    /// are read: a hint, which changes no byte and no result.
    pub fn prefetch(&self, from: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let bytes = self.bytes();
            let end = from.saturating_add(len).min(bytes.len());
            let mut at = from;
            while let Some(byte) = bytes.get(at).filter(|_| at < end) {
                // SAFETY: the address is inside the map, and a prefetch reads nothing into the program and
                // cannot fault.
                unsafe {
                    core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                        std::ptr::from_ref(byte).cast(),
                    );
                }
                at += LINE;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (from, len);
    }

    /// Where `part` lies in this window, when it does.
    pub fn range_of(&self, part: &[u8]) -> Option<(usize, usize)> {
        let base = self.map.as_ptr() as usize;
        let from = (part.as_ptr() as usize).checked_sub(base)?;
        let to = from.checked_add(part.len())?;
        (to <= self.map.len()).then_some((from, to))
    }
}

/// A capture file read front to back through windows.
#[derive(Debug)]
pub struct Mapped {
    file: File,
    /// The file's length when it was opened: what is appended later is not read.
    len: u64,
    window: Arc<Window>,
    /// The file offset of the window's first byte.
    start: u64,
    /// The read position in the window.
    pos: usize,
    /// The longest record taken.
    max_record: usize,
    /// The longest window mapped for records that fit in less ([`Mapped::for_workers`]).
    most: usize,
    /// Whether a window's pages are mapped with it, or as they are first read.
    populate: bool,
    /// Records made ready in the window.
    records: usize,
}

impl Mapped {
    /// Maps the start of `file`; `None` when it is not a regular file of at least one byte (a pipe, a
    /// character device), which is then read as a stream.
    pub fn open(file: File, max_record: usize) -> io::Result<Option<Mapped>> {
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() == 0 {
            return Ok(None);
        }
        let len = meta.len();
        let window = map(&file, 0, window_len(len, 0, WINDOW), true)?;
        Ok(Some(Mapped {
            file,
            len,
            window: Arc::new(window),
            start: 0,
            pos: 0,
            max_record,
            most: WINDOW,
            populate: true,
            records: 0,
        }))
    }

    /// Reads for worker threads from the next window on: its pages are mapped as they are first read, and
    /// the windows grow up to `most` bytes while the records are long ([`RECORDS`]).
    pub fn for_workers(&mut self, most: usize) {
        self.most = most.max(WINDOW);
        self.populate = false;
    }

    /// The bytes from the read position to the end of the window.
    pub fn rest(&self) -> &[u8] {
        self.window.bytes().get(self.pos..).unwrap_or_default()
    }

    /// The file offset of the read position.
    pub fn offset(&self) -> u64 {
        self.start + self.pos as u64
    }

    /// The window and the read position, borrowed apart: a record read from the one while the other moves.
    pub fn parts(&mut self) -> (&Arc<Window>, &mut usize) {
        (&self.window, &mut self.pos)
    }

    /// Makes the next record readable in one slice: `header` bytes tell its length (`length` of them).
    /// `Ok(false)` at the end of the file. A record the file ends inside, or one longer than the reader
    /// takes, gets what there is of it (up to that bound): the parser then says what is wrong with it,
    /// as it does for a buffered reader, whose buffer holds no more.
    pub fn ready(&mut self, header: usize, length: impl Fn(&[u8]) -> usize) -> io::Result<bool> {
        let left = usize::try_from(self.len.saturating_sub(self.offset())).unwrap_or(usize::MAX);
        if left == 0 {
            return Ok(false);
        }
        let most = left.min(self.max_record);
        self.ensure(header.min(most))?;
        let need = length(self.rest()).max(header).min(most);
        self.ensure(need)?;
        self.records += 1;
        Ok(true)
    }

    /// Makes the next `need` bytes readable in one slice (as many as the file has), mapping the next
    /// window when they are not.
    fn ensure(&mut self, need: usize) -> io::Result<()> {
        if self.rest().len() >= need {
            return Ok(());
        }
        let at = self.offset();
        if self.rest().len() as u64 >= self.len.saturating_sub(at) {
            // The window already holds the rest of the file.
            return Ok(());
        }
        let len = window_len(self.len, at, self.next_window().max(need));
        self.window = Arc::new(map(&self.file, at, len, self.populate)?);
        self.start = at;
        self.pos = 0;
        self.records = 0;
        Ok(())
    }

    /// The length of the next window: [`RECORDS`] records as long on average as those read from this one,
    /// between [`WINDOW`] and [`Self::most`].
    fn next_window(&self) -> usize {
        let per_record = self.pos / self.records.max(1);
        per_record.saturating_mul(RECORDS).clamp(WINDOW, self.most)
    }
}

/// The length of a window at `at`: `want` bytes, or what is left of the file.
fn window_len(len: u64, at: u64, want: usize) -> usize {
    usize::try_from(len.saturating_sub(at)).map_or(want, |left| left.min(want))
}

fn map(file: &File, offset: u64, len: usize, populate: bool) -> io::Result<Window> {
    // SAFETY: the map is read only, and the bytes are only read as bytes (no type is laid over them). What
    // the mapping cannot rule out is another process truncating the file while it is read, which would
    // stop rdptrace with SIGBUS, as any reader of mapped files; a capture being appended to is read up
    // to its length when it was opened.
    let mut options = MmapOptions::new();
    options.offset(offset).len(len);
    if populate {
        options.populate();
    }
    let map = unsafe { options.map(file)? };
    Ok(Window { map })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file holding `bytes`, already unlinked.
    fn file(bytes: &[u8]) -> File {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rdptrace-mapped-{}-{n}", std::process::id()));
        let mut f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    /// Records of a byte holding their length, then that many bytes.
    fn records(m: &mut Mapped) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        loop {
            match m.ready(1, |h| usize::from(h.first().copied().unwrap_or(0))) {
                Ok(false) => return Ok(out),
                Ok(true) => {}
                Err(e) => return Err(e.to_string()),
            }
            let n = usize::from(m.rest()[0]);
            if m.rest().len() < n {
                // What a parser says of a record the slice does not hold whole.
                return Err(format!("{} of {n} bytes", m.rest().len()));
            }
            out.push(m.rest()[..n].to_vec());
            *m.parts().1 += n;
        }
    }

    #[test]
    fn records_across_windows_are_whole() {
        // Records of 200 bytes: the window's edge falls inside one of them.
        let mut bytes = Vec::new();
        let n = WINDOW / 200 + 10;
        for i in 0..n {
            bytes.push(200u8);
            bytes.extend(std::iter::repeat_n(i as u8, 199));
        }
        let mut m = Mapped::open(file(&bytes), 1 << 20).unwrap().unwrap();
        let got = records(&mut m).unwrap();
        assert_eq!(got.len(), n);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, r)| r.len() == 200 && r[1..].iter().all(|b| *b == i as u8))
        );
    }

    #[test]
    fn a_cut_record_and_a_long_one_get_what_there_is() {
        let mut m = Mapped::open(file(&[3, 1, 1, 9, 1]), 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(records(&mut m).unwrap_err(), "2 of 9 bytes");
        let mut long = vec![200; 150];
        long.push(1);
        let mut m = Mapped::open(file(&long), 100).unwrap().unwrap();
        // Not whole: the parser is given at least the bound's worth and says so.
        assert_eq!(records(&mut m).unwrap_err(), "151 of 200 bytes");
        assert!(Mapped::open(file(&[]), 100).unwrap().is_none());
    }

    /// The lengths of the windows mapped to read a file of `n` records of `len` bytes (each its length in
    /// its first two bytes), with windows growing up to `most`.
    fn windows_for(len: u16, n: usize, most: usize) -> Vec<usize> {
        let mut bytes = Vec::with_capacity(usize::from(len) * n);
        for _ in 0..n {
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend(std::iter::repeat_n(7u8, usize::from(len) - 2));
        }
        let mut m = Mapped::open(file(&bytes), 1 << 20).unwrap().unwrap();
        m.for_workers(most);
        let mut windows = vec![m.window.bytes().len()];
        let length = |h: &[u8]| usize::from(u16::from_le_bytes([h[0], h[1]]));
        while m.ready(2, length).unwrap() {
            if m.start > 0 && m.pos == 0 {
                windows.push(m.window.bytes().len());
            }
            *m.parts().1 += usize::from(len);
        }
        windows
    }

    #[test]
    fn windows_grow_for_long_records_only() {
        // Records of 1,024 bytes: a window of the least length holds 2,048 of them, and the next ones are
        // let grow to the bound.
        let long = windows_for(1024, 10 * WINDOW / 1024, 4 * WINDOW);
        assert_eq!(long[..3], [WINDOW, 4 * WINDOW, 4 * WINDOW], "{long:?}");
        // Records of 64 bytes: a window of the least length holds more than enough of them.
        let short = windows_for(64, 4 * WINDOW / 64, 4 * WINDOW);
        assert!(short.len() >= 4, "{short:?}");
        assert!(short.iter().all(|&w| w <= WINDOW), "{short:?}");
        // Without growing (one thread), long records keep the least windows too.
        let fixed = windows_for(1024, 4 * WINDOW / 1024, WINDOW);
        assert!(fixed.len() >= 4, "{fixed:?}");
        assert!(fixed.iter().all(|&w| w <= WINDOW), "{fixed:?}");
    }

    #[test]
    fn a_window_knows_its_parts() {
        let m = Mapped::open(file(&[1, 2, 3, 4]), 100).unwrap().unwrap();
        let w = Arc::clone(&m.window);
        assert_eq!(w.range_of(&w.bytes()[1..3]), Some((1, 3)));
        assert_eq!(w.range_of(&[1, 2][..]), None);
    }
}
