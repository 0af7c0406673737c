//! TCP reassembly of one direction: segments in capture order in, the byte stream in order out.
//!
//! Retransmissions and duplicates are dropped, overlaps keep the bytes seen first, out-of-order segments
//! wait (up to a bound) for the hole before them to fill. What never arrives is reported as a gap of a
//! known size, never guessed over.

use std::collections::BTreeMap;

/// Out-of-order bytes one direction may hold while it waits for a hole to fill.
pub const MAX_PENDING: usize = 1 << 20;

/// What the stream delivers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Data(Vec<u8>),
    /// This many bytes of the stream are not in the capture.
    Gap(u64),
}

/// A piece of the stream waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Data(Vec<u8>),
    /// Bytes the capture cut off (snapshot length): known to exist, not known.
    Missing(u64),
}

impl Chunk {
    fn len(&self) -> u64 {
        match self {
            Chunk::Data(d) => d.len() as u64,
            Chunk::Missing(n) => *n,
        }
    }

    /// The part of the chunk from `from` to `to` (offsets relative to the chunk).
    fn slice(&self, from: u64, to: u64) -> Chunk {
        match self {
            Chunk::Data(d) => {
                let a = usize::try_from(from).unwrap_or(usize::MAX).min(d.len());
                let b = usize::try_from(to)
                    .unwrap_or(usize::MAX)
                    .min(d.len())
                    .max(a);
                Chunk::Data(d.get(a..b).map(<[u8]>::to_vec).unwrap_or_default())
            }
            Chunk::Missing(_) => Chunk::Missing(to.saturating_sub(from)),
        }
    }
}

/// One direction of a TCP connection.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The sequence number of the byte at offset `delivered`, once the stream is anchored (by a SYN or by
    /// the first segment seen).
    next_seq: Option<u32>,
    /// Stream offset of the next byte to deliver (bytes delivered plus gaps).
    delivered: u64,
    /// INVARIANT: chunks do not overlap and all start at or after `delivered`.
    pending: BTreeMap<u64, Chunk>,
    pending_bytes: usize,
    max_pending: usize,
    /// Stream offset of the FIN.
    fin: Option<u64>,
    /// Bytes dropped as retransmissions or duplicates.
    pub duplicate_bytes: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Stream::new(MAX_PENDING)
    }
}

impl Stream {
    pub fn new(max_pending: usize) -> Self {
        Stream {
            next_seq: None,
            delivered: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            max_pending,
            fin: None,
            duplicate_bytes: 0,
        }
    }

    /// A SYN with this sequence number: the stream's first byte is the one after it.
    pub fn syn(&mut self, seq: u32) {
        if self.next_seq.is_none() {
            self.next_seq = Some(seq.wrapping_add(1));
        }
    }

    pub fn is_anchored(&self) -> bool {
        self.next_seq.is_some()
    }

    /// Bytes delivered so far, gaps included.
    pub fn offset(&self) -> u64 {
        self.delivered
    }

    /// Whether everything up to the FIN has been delivered.
    pub fn fin_reached(&self) -> bool {
        self.fin.is_some_and(|f| self.delivered >= f)
    }

    /// Whether a FIN was seen (its data may still be missing).
    pub fn fin_seen(&self) -> bool {
        self.fin.is_some()
    }

    /// Whether out-of-order data waits for a hole.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The stream offset of sequence number `seq`, relative to what was delivered.
    fn offset_of(&self, seq: u32) -> Option<i64> {
        let next = self.next_seq?;
        // Sequence numbers wrap; a segment more than 2 GiB away from the next expected byte is not one of
        // this stream's.
        let diff = i64::from(seq.wrapping_sub(next) as i32);
        Some(self.delivered as i64 + diff)
    }

    /// One segment: `payload` at `seq`, followed by `missing` bytes the capture cut off, and a FIN after
    /// them if `fin`. What can be delivered in order is appended to `out`, except in the common case of a
    /// segment that comes in order with nothing held: then `out` is left alone and the payload itself is
    /// returned, to be handed on as it lies in the packet.
    pub fn segment<'a>(
        &mut self,
        seq: u32,
        payload: &'a [u8],
        missing: u32,
        fin: bool,
        out: &mut Vec<Delivery>,
    ) -> Option<&'a [u8]> {
        let len = payload.len() as u64 + u64::from(missing);
        if self.next_seq.is_none() {
            if len == 0 && !fin {
                return None;
            }
            // A capture that starts mid-stream: the first segment with data anchors the stream.
            self.next_seq = Some(seq);
        }
        let start = self.offset_of(seq)?;
        let end = start + len as i64;
        if fin && self.fin.is_none() && end >= 0 {
            self.fin = Some(end as u64);
        }
        let delivered = self.delivered as i64;
        if end <= delivered {
            self.duplicate_bytes += len;
            return None;
        }
        if missing == 0 && start == delivered && self.pending.is_empty() {
            // In order, nothing held: what `insert` and `deliver` would do, without copying the bytes.
            self.delivered += len;
            if let Some(seq) = self.next_seq.as_mut() {
                *seq = seq.wrapping_add(len as u32);
            }
            return Some(payload);
        }
        if missing > 0 {
            // The cut-off tail is its own chunk after the data.
            let tail_start = start + payload.len() as i64;
            let skip = u64::try_from(delivered - tail_start).unwrap_or(0);
            self.insert(
                tail_start.max(delivered) as u64,
                Chunk::Missing(u64::from(missing).saturating_sub(skip)),
            );
        }
        let data_end = start + payload.len() as i64;
        if data_end > delivered {
            let whole = Chunk::Data(payload.to_vec());
            let (at, chunk) = if start < delivered {
                let skip = (delivered - start) as u64;
                self.duplicate_bytes += skip;
                (delivered as u64, whole.slice(skip, whole.len()))
            } else {
                (start as u64, whole)
            };
            self.insert(at, chunk);
        } else {
            self.duplicate_bytes += payload.len() as u64;
        }
        self.deliver(out);
        None
    }

    /// Inserts `chunk` at `at`, keeping only the parts not already held (the bytes seen first win).
    fn insert(&mut self, at: u64, chunk: Chunk) {
        let end = at + chunk.len();
        if chunk.len() == 0 {
            return;
        }
        // The held chunks that overlap [at, end), in order.
        let mut covered: Vec<(u64, u64)> = Vec::new();
        if let Some((&k, c)) = self.pending.range(..at).next_back()
            && k + c.len() > at
        {
            covered.push((k, k + c.len()));
        }
        for (&k, c) in self.pending.range(at..end) {
            covered.push((k, k + c.len()));
        }
        let mut cursor = at;
        let mut pieces = Vec::new();
        for (a, b) in covered {
            if a > cursor {
                pieces.push((cursor, a.min(end)));
            }
            cursor = cursor.max(b);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        let held: u64 = chunk.len() - pieces.iter().map(|(a, b)| b - a).sum::<u64>();
        self.duplicate_bytes += held;
        for (a, b) in pieces {
            let piece = chunk.slice(a - at, b - at);
            self.pending_bytes += usize::try_from(piece.len()).unwrap_or(usize::MAX);
            self.pending.insert(a, piece);
        }
    }

    /// Delivers what is contiguous; over the bound, gives up on the first hole and reports it as a gap.
    fn deliver(&mut self, out: &mut Vec<Delivery>) {
        loop {
            self.deliver_contiguous(out);
            if self.pending_bytes <= self.max_pending {
                return;
            }
            self.skip_hole(out);
        }
    }

    fn deliver_contiguous(&mut self, out: &mut Vec<Delivery>) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.delivered {
                break;
            }
            let chunk = entry.remove();
            self.advance(chunk, out);
        }
    }

    fn advance(&mut self, chunk: Chunk, out: &mut Vec<Delivery>) {
        let n = chunk.len();
        self.pending_bytes = self
            .pending_bytes
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        self.delivered += n;
        if let Some(seq) = self.next_seq.as_mut() {
            *seq = seq.wrapping_add(n as u32);
        }
        match chunk {
            Chunk::Data(d) => match out.last_mut() {
                Some(Delivery::Data(prev)) => prev.extend_from_slice(&d),
                _ => out.push(Delivery::Data(d)),
            },
            Chunk::Missing(m) => push_gap(out, m),
        }
    }

    /// Reports the hole before the first pending chunk as a gap and moves past it.
    fn skip_hole(&mut self, out: &mut Vec<Delivery>) {
        let Some((&first, _)) = self.pending.first_key_value() else {
            return;
        };
        let hole = first.saturating_sub(self.delivered);
        if hole > 0 {
            push_gap(out, hole);
            self.delivered = first;
            if let Some(seq) = self.next_seq.as_mut() {
                *seq = seq.wrapping_add(hole as u32);
            }
        }
    }

    /// The connection is over (or the capture is): delivers everything held, holes as gaps, and a final
    /// gap up to the FIN if data before it never arrived.
    pub fn flush(&mut self, out: &mut Vec<Delivery>) {
        // INVARIANT: each pass removes the first pending chunk, so the loop ends.
        while !self.pending.is_empty() {
            self.skip_hole(out);
            self.deliver_contiguous(out);
        }
        if let Some(fin) = self.fin
            && fin > self.delivered
        {
            push_gap(out, fin - self.delivered);
            self.delivered = fin;
        }
    }
}

fn push_gap(out: &mut Vec<Delivery>, n: u64) {
    if n == 0 {
        return;
    }
    match out.last_mut() {
        Some(Delivery::Gap(prev)) => *prev += n,
        _ => out.push(Delivery::Gap(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `segment`, with what it returns in place appended to `out` as a delivery would be.
    fn seg(
        s: &mut Stream,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        out: &mut Vec<Delivery>,
    ) {
        if let Some(d) = s.segment(seq, payload, missing, fin, out) {
            match out.last_mut() {
                Some(Delivery::Data(prev)) => prev.extend_from_slice(d),
                _ => out.push(Delivery::Data(d.to_vec())),
            }
        }
    }

    fn data(out: &[Delivery]) -> Vec<u8> {
        out.iter()
            .flat_map(|d| match d {
                Delivery::Data(d) => d.clone(),
                Delivery::Gap(_) => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn in_order_duplicates_and_retransmissions() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.syn(99);
        seg(&mut s, 100, b"abc", 0, false, &mut out);
        seg(&mut s, 100, b"abc", 0, false, &mut out);
        seg(&mut s, 103, b"def", 0, false, &mut out);
        seg(&mut s, 101, b"bcdefg", 0, false, &mut out);
        assert_eq!(data(&out), b"abcdefg");
        assert_eq!(s.duplicate_bytes, 3 + 5);
    }

    #[test]
    fn out_of_order_and_overlap_keep_first_bytes() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.syn(0);
        seg(&mut s, 4, b"def", 0, false, &mut out);
        assert!(out.is_empty());
        // Overlaps the held "def" with different bytes: the first ones win.
        seg(&mut s, 1, b"abcXY", 0, false, &mut out);
        assert_eq!(data(&out), b"abcdef");
    }

    #[test]
    fn gap_reported_at_flush_and_fin() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.syn(0);
        seg(&mut s, 1, b"ab", 0, false, &mut out);
        seg(&mut s, 8, b"xy", 0, true, &mut out);
        assert_eq!(out, vec![Delivery::Data(b"ab".to_vec())]);
        assert!(!s.fin_reached());
        s.flush(&mut out);
        assert_eq!(
            out,
            vec![
                Delivery::Data(b"ab".to_vec()),
                Delivery::Gap(5),
                Delivery::Data(b"xy".to_vec())
            ]
        );
        assert!(s.fin_reached());
    }

    #[test]
    fn bound_on_pending_gives_a_gap() {
        let mut s = Stream::new(4);
        let mut out = Vec::new();
        s.syn(0);
        seg(&mut s, 11, b"abc", 0, false, &mut out);
        assert!(out.is_empty());
        seg(&mut s, 14, b"de", 0, false, &mut out);
        assert_eq!(
            out,
            vec![Delivery::Gap(10), Delivery::Data(b"abcde".to_vec())]
        );
        // The late bytes of the hole are old now.
        seg(&mut s, 1, b"0123456789", 0, false, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn cut_packet_is_a_gap() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        seg(&mut s, 500, b"ab", 3, false, &mut out);
        seg(&mut s, 505, b"z", 0, false, &mut out);
        assert_eq!(
            out,
            vec![
                Delivery::Data(b"ab".to_vec()),
                Delivery::Gap(3),
                Delivery::Data(b"z".to_vec())
            ]
        );
    }

    #[test]
    fn mid_stream_anchor_and_wrap() {
        let mut s = Stream::default();
        let mut out = Vec::new();
        seg(&mut s, u32::MAX - 1, b"ab", 0, false, &mut out);
        seg(&mut s, 0, b"cd", 0, false, &mut out);
        assert_eq!(data(&out), b"abcd");
        assert_eq!(s.offset(), 4);
    }
}
