//! Verified chunks: what lets a receiver — and a relay, before it forwards anything — check each
//! piece of a file as it arrives instead of at the file's end.
//!
//! A file is cut into chunks of `2^k` bytes (1 MiB, larger only for files over 64 GiB so that
//! one file's hash list stays small). Each chunk is a subtree of BLAKE3's own tree, so its
//! chaining value (CV) can be computed on its own (`blake3::hazmat`), and the CVs of all chunks
//! merge into the file's ordinary BLAKE3 hash — the root the offer carries. The sender sends the
//! CVs before a file's data; the receiver checks them against the root once, then each chunk
//! against its CV as it comes. A file of one chunk needs no list: the chunk is checked against
//! the root itself.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};

use crate::limits::{MAX_CHUNK_LOG, MIN_CHUNK_LOG, TARGET_CHUNKS};

/// How a file of a given size is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub size: u64,
    log: u32,
}

impl Layout {
    pub fn of(size: u64) -> Layout {
        let mut log = MIN_CHUNK_LOG;
        while log < MAX_CHUNK_LOG && size.div_ceil(1 << log) > TARGET_CHUNKS {
            log += 1;
        }
        Layout { size, log }
    }

    pub fn chunk_len(&self) -> u64 {
        1 << self.log
    }

    /// Chunks in the file (0 for an empty file).
    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.chunk_len())
    }

    /// Bytes of chunk `i`.
    pub fn len_of(&self, i: u64) -> u64 {
        let start = i * self.chunk_len();
        self.size.saturating_sub(start).min(self.chunk_len())
    }

    /// The chunk an offset falls in.
    pub fn chunk_at(&self, offset: u64) -> u64 {
        offset >> self.log
    }

    /// `offset` rounded down to a chunk boundary: what a resume may start from.
    pub fn floor(&self, offset: u64) -> u64 {
        offset.min(self.size) >> self.log << self.log
    }

    /// Whether the file has a CV list to send (more than one chunk).
    pub fn has_list(&self) -> bool {
        self.count() > 1
    }
}

/// Hashes one chunk as its bytes go by.
pub(crate) struct ChunkHasher {
    hasher: blake3::Hasher,
    single: bool,
}

impl ChunkHasher {
    pub fn new(layout: &Layout, i: u64) -> ChunkHasher {
        let mut hasher = blake3::Hasher::new();
        if i > 0 {
            hasher.set_input_offset(i * layout.chunk_len());
        }
        ChunkHasher {
            hasher,
            single: !layout.has_list(),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// The chunk's CV, or for a file of one chunk the file's root.
    pub fn finish(&self) -> ChainingValue {
        if self.single {
            *self.hasher.finalize().as_bytes()
        } else {
            self.hasher.finalize_non_root()
        }
    }
}

/// The file's BLAKE3 hash from the CVs of all its chunks (`cvs.len() == layout.count()`).
pub(crate) fn root_of(layout: &Layout, cvs: &[ChainingValue]) -> Option<[u8; 32]> {
    if cvs.len() as u64 != layout.count() {
        return None;
    }
    match cvs {
        [] => Some(*blake3::hash(b"").as_bytes()),
        // One chunk: its "CV" is the root (see `ChunkHasher::finish`).
        [one] => Some(*one),
        _ => {
            let split = largest_power_of_two_below(cvs.len());
            let (l, r) = (merge(&cvs[..split]), merge(&cvs[split..]));
            Some(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
        }
    }
}

fn merge(cvs: &[ChainingValue]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    // BLAKE3's tree is left-full: the left subtree holds the largest power of two of chunks
    // below the total, and with power-of-two chunks that split falls on a chunk boundary.
    let split = largest_power_of_two_below(cvs.len());
    merge_subtrees_non_root(&merge(&cvs[..split]), &merge(&cvs[split..]), Mode::Hash)
}

fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// A CV list as it travels: 32 bytes per chunk, back to back.
pub(crate) fn cvs_from_bytes(bytes: &[u8]) -> Option<Vec<ChainingValue>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(bytes.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
}

/// Every chunk's CV of `data` (a whole file in memory: for tests and the fuzzers).
#[cfg(test)]
pub(crate) fn cvs_of(data: &[u8]) -> Vec<ChainingValue> {
    let layout = Layout::of(data.len() as u64);
    (0..layout.count())
        .map(|i| {
            let start = (i * layout.chunk_len()) as usize;
            let mut h = ChunkHasher::new(&layout, i);
            h.update(&data[start..start + layout.len_of(i) as usize]);
            h.finish()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    #[test]
    fn the_cvs_merge_into_the_files_blake3() {
        let mib = 1 << 20;
        for len in [
            0,
            1,
            1024,
            1025,
            mib - 1,
            mib,
            mib + 1,
            2 * mib,
            3 * mib + 17,
            5 * mib,
            8 * mib + 1024,
        ] {
            let d = data(len);
            let layout = Layout::of(len as u64);
            let cvs = cvs_of(&d);
            assert_eq!(cvs.len() as u64, layout.count(), "{len}");
            assert_eq!(root_of(&layout, &cvs), Some(*blake3::hash(&d).as_bytes()), "{len}");
        }
    }

    #[test]
    fn a_changed_chunk_changes_its_cv_and_nothing_else() {
        let mut d = data(3 << 20);
        let before = cvs_of(&d);
        d[(1 << 20) + 5] ^= 1;
        let after = cvs_of(&d);
        assert_eq!(before[0], after[0]);
        assert_ne!(before[1], after[1]);
        assert_eq!(before[2], after[2]);
        // A list with one CV swapped for the bad chunk's does not merge into the root.
        let layout = Layout::of(d.len() as u64);
        let mut forged = before.clone();
        forged[1] = after[1];
        assert_ne!(root_of(&layout, &forged), root_of(&layout, &before));
        assert_eq!(root_of(&layout, &before[..2]), None);
    }

    #[test]
    fn big_files_get_bigger_chunks_and_short_lists() {
        assert_eq!(Layout::of(4 << 30).chunk_len(), 1 << 20);
        let huge = Layout::of(1 << 40);
        assert!(huge.count() <= TARGET_CHUNKS && huge.chunk_len() == 1 << 24);
        assert_eq!(Layout::of(u64::MAX).chunk_len(), 1 << MAX_CHUNK_LOG);
        let l = Layout::of(5 << 20);
        assert_eq!(
            (l.floor(3 << 20), l.floor((3 << 20) + 9), l.floor(u64::MAX)),
            (3 << 20, 3 << 20, 5 << 20)
        );
        assert_eq!((l.len_of(4), l.len_of(5)), (1 << 20, 0));
    }

    #[test]
    fn powers_of_two_below() {
        for (n, p) in [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512), (1025, 1024)] {
            assert_eq!(largest_power_of_two_below(n), p, "{n}");
        }
    }
}
