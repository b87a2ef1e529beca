//! Hashing what is to be sent, on a few threads, while the walk is still finding it: the roots
//! go into the offer, so a send waits for the last file to be hashed — for a tree of many small
//! files the walk and the hashing then overlap instead of adding up.
//!
//! Each file is measured by the thread that takes it, from the open descriptor it hashes (the
//! walk only lists names: a stat per file on the walking thread was what a tree of small files
//! waited for). A small file is then one piece of work; a big one is split into pieces of
//! [`PART_CHUNKS`] chunks that any thread may take (chunks hash independently). No file stays
//! open beyond its piece: a tree of 100,000 files needs a few descriptors, not 100,000. Files
//! are handed over [`HAND_OVER`] at a time, so the threads are not woken once per file.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use blake3::hazmat::ChainingValue;

use super::chunks::{ChunkHasher, Layout};
use super::opener::Opener;
use super::wire::MAX_FILE_BYTES;
use crate::node::lock;
use crate::text::io_reason;

/// Files up to this size are one piece of work.
const WHOLE_BYTES: u64 = 16 << 20;
/// Chunks one piece of a big file covers.
const PART_CHUNKS: u64 = 16;
/// Files gathered before the threads are given them.
const HAND_OVER: usize = 64;

/// What a piece of work found: the hashes of item `i`'s chunks from `first` on, and (once per
/// file, from the thread that measured it) its layout and time.
pub(crate) struct Hashed {
    pub i: usize,
    pub first: u64,
    pub cvs: Vec<ChainingValue>,
    pub measured: Option<(Layout, u64)>,
}

struct Job {
    i: usize,
    path: Arc<PathBuf>,
    piece: Piece,
}

/// Why item `i` could not be hashed (the caller names it: it holds the names).
pub(crate) enum HashFailure {
    Unreadable(usize, String),
    TooBig(usize),
    Abandoned,
}

enum Piece {
    /// A whole file, not yet measured: small ones are hashed whole, big ones split.
    File,
    Part {
        layout: Layout,
        first: u64,
        n: u64,
    },
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// No more files will be added.
    closed: bool,
    /// Pieces taken and not finished: a big file's splitting adds more.
    busy: usize,
    done: Vec<Hashed>,
    failed: Option<HashFailure>,
}

struct Pipe {
    queue: Mutex<Queue>,
    changed: Condvar,
    confine: Option<Vec<PathBuf>>,
    /// Nobody waits for the result any more: take no more work.
    abandoned: Arc<AtomicBool>,
}

pub(crate) struct Hashing {
    pipe: Arc<Pipe>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Files not yet handed over.
    gathered: Vec<Job>,
}

impl Hashing {
    pub fn start(confine: Option<Vec<PathBuf>>, abandoned: Arc<AtomicBool>) -> Hashing {
        let pipe = Arc::new(Pipe {
            queue: Mutex::default(),
            changed: Condvar::new(),
            confine,
            abandoned,
        });
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        let workers = (0..threads)
            .filter_map(|_| {
                let pipe = pipe.clone();
                std::thread::Builder::new()
                    .name("lanyard-hash".into())
                    .spawn(move || pipe.work())
                    .ok()
            })
            .collect();
        Hashing {
            pipe,
            workers,
            gathered: Vec::with_capacity(HAND_OVER),
        }
    }

    /// Measure and hash item `i`, read from `path`.
    pub fn add(&mut self, i: usize, path: PathBuf) {
        self.gathered.push(Job {
            i,
            path: Arc::new(path),
            piece: Piece::File,
        });
        if self.gathered.len() >= HAND_OVER {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        if self.gathered.is_empty() {
            return;
        }
        lock(&self.pipe.queue).jobs.extend(self.gathered.drain(..));
        self.pipe.changed.notify_all();
    }

    /// Wait for every piece; the first failure fails the whole.
    pub fn finish(mut self) -> Result<Vec<Hashed>, HashFailure> {
        self.hand_over();
        self.close();
        let workers = std::mem::take(&mut self.workers);
        if workers.is_empty() {
            // No thread could be started: do the work here.
            self.pipe.work();
        }
        for w in workers {
            let _ = w.join();
        }
        let mut q = lock(&self.pipe.queue);
        match q.failed.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut q.done)),
        }
    }
}

impl Hashing {
    fn close(&self) {
        lock(&self.pipe.queue).closed = true;
        self.pipe.changed.notify_all();
    }
}

/// A walk that failed drops its hashing unfinished: the threads finish what was added and end.
impl Drop for Hashing {
    fn drop(&mut self) {
        self.close();
    }
}

impl Pipe {
    fn work(&self) {
        let mut buf = Vec::new();
        let mut opener = Opener::default();
        loop {
            let job = {
                let mut q = lock(&self.queue);
                loop {
                    if q.failed.is_some() {
                        return;
                    }
                    if self.abandoned.load(Ordering::Relaxed) {
                        q.failed.get_or_insert(HashFailure::Abandoned);
                        self.changed.notify_all();
                        return;
                    }
                    if let Some(job) = q.jobs.pop_front() {
                        q.busy += 1;
                        break job;
                    }
                    if q.closed && q.busy == 0 {
                        self.changed.notify_all();
                        return;
                    }
                    q = self.changed.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let result = self.run(job, &mut buf, &mut opener);
            let mut q = lock(&self.queue);
            q.busy -= 1;
            let failed = result.is_err();
            match result {
                Ok(h) => q.done.push(h),
                Err(e) => {
                    q.failed.get_or_insert(e);
                }
            }
            // Only an end wakes the others (waiting for work, they would find none): a wake-up
            // per file cost more than hashing 4 KiB.
            let end = failed || (q.closed && q.busy == 0 && q.jobs.is_empty());
            drop(q);
            if end {
                self.changed.notify_all();
            }
        }
    }

    fn run(&self, job: Job, buf: &mut Vec<u8>, opener: &mut Opener) -> Result<Hashed, HashFailure> {
        let cannot = |why: String| HashFailure::Unreadable(job.i, why);
        let file = opener.open(&job.path, self.confine.as_deref()).map_err(cannot)?;
        let (layout, first, n, measured) = match job.piece {
            Piece::File => {
                let meta = file.metadata().map_err(|e| cannot(io_reason(&e)))?;
                if meta.len() > MAX_FILE_BYTES {
                    return Err(HashFailure::TooBig(job.i));
                }
                let layout = Layout::of(meta.len());
                let n = layout.count().min(PART_CHUNKS);
                if meta.len() > WHOLE_BYTES {
                    // Big: the pieces after the first go back to the queue for any thread.
                    let mut first = n;
                    let mut q = lock(&self.queue);
                    while first < layout.count() {
                        let part = (layout.count() - first).min(PART_CHUNKS);
                        q.jobs.push_back(Job {
                            i: job.i,
                            path: job.path.clone(),
                            piece: Piece::Part { layout, first, n: part },
                        });
                        first += part;
                    }
                    drop(q);
                    self.changed.notify_all();
                    (layout, 0, n, Some((layout, mtime_ns(&meta))))
                } else {
                    (layout, 0, layout.count(), Some((layout, mtime_ns(&meta))))
                }
            }
            Piece::Part { layout, first, n } => (layout, first, n, None),
        };
        let cvs = hash_chunks(&file, &layout, first, n, buf).map_err(|e| {
            cannot(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "it shrank while being read".to_string(),
                _ => io_reason(&e),
            })
        })?;
        Ok(Hashed {
            i: job.i,
            first,
            cvs,
            measured,
        })
    }
}

fn hash_chunks(file: &File, layout: &Layout, first: u64, n: u64, buf: &mut Vec<u8>) -> std::io::Result<Vec<ChainingValue>> {
    let mut cvs = Vec::with_capacity(n as usize);
    for c in first..first + n {
        buf.resize(layout.len_of(c) as usize, 0);
        file.read_exact_at(buf, c * layout.chunk_len())?;
        let mut h = ChunkHasher::new(layout, c);
        h.update(buf);
        cvs.push(h.finish());
    }
    Ok(cvs)
}

/// Unix nanoseconds of a file's modification time (0 when the platform has none).
pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
