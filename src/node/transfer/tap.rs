//! What a relay has verified, for the peer it forwards to.
//!
//! The relay's disk thread notes each file as it opens it (its chunk hashes, the bytes already
//! held), each chunk once it is verified and written, and where the file went once placed. The
//! forwarding side reads from the relay's own copy, never from the socket: only verified bytes
//! can go on, memory stays flat, and a peer re-attached to this relay after another one failed
//! gets what it lacks from the start, not only what is still to come.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use blake3::hazmat::ChainingValue;
use tokio::sync::mpsc;

use super::chunks::Layout;
use super::send::{Batch, Chunk};
use super::stream::{CHUNK, SpareRx};
use super::wire::Reason;
use crate::node::lock;

#[derive(Default)]
pub(crate) struct Tap {
    state: Mutex<State>,
    changed: Condvar,
    /// Test hook: flip a byte of the forwarded segment with this number (counted from 0 over
    /// the whole transfer, every peer forwarded to), as a relay with bad memory would.
    corrupt: Option<u64>,
    forwarded: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    files: HashMap<usize, TapFile>,
    /// The relay's own receive is over.
    ended: Option<Ended>,
    /// The forwarding side is gone: stop producing.
    closed: bool,
}

/// How the relay's own receive ended.
enum Ended {
    /// Everything came that was sent.
    Whole,
    /// It ended before everything came (why): the peers behind keep what they have, for the
    /// sender to re-attach them.
    Lost(String),
    /// The sender cancelled the send: so is the stream to the peers behind, and their partial
    /// data goes as ours did.
    Cancelled,
}

struct TapFile {
    cvs: Arc<Vec<ChainingValue>>,
    /// Bytes from the start that are verified and on disk.
    verified: u64,
    copy: Copy,
    failed: Option<String>,
}

enum Copy {
    /// The partial (or earlier placed) file, open.
    Open(Arc<File>),
    /// Placed under its final name (the handle is let go: a transfer of many small files must
    /// not hold a descriptor for each).
    Placed(PathBuf),
}

impl Tap {
    pub fn new(corrupt: Option<u64>) -> Tap {
        Tap { corrupt, ..Tap::default() }
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        f(&mut lock(&self.state));
        self.changed.notify_all();
    }

    /// The relay starts receiving file `index`, holding its first `held` bytes already.
    pub fn open(&self, index: usize, cvs: Arc<Vec<ChainingValue>>, held: u64, file: File) {
        self.with(|s| {
            s.files.insert(
                index,
                TapFile {
                    cvs,
                    verified: held,
                    copy: Copy::Open(Arc::new(file)),
                    failed: None,
                },
            );
        });
    }

    /// Bytes of `index` up to `upto` are verified and written.
    pub fn verified(&self, index: usize, upto: u64) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(&index) {
                f.verified = f.verified.max(upto);
            }
        });
    }

    pub fn placed(&self, index: usize, path: PathBuf) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(&index) {
                f.copy = Copy::Placed(path);
            }
        });
    }

    pub fn failed(&self, index: usize, reason: &str) {
        self.with(|s| {
            if let Some(f) = s.files.get_mut(&index) {
                f.failed = Some(reason.to_string());
            }
        });
    }

    /// The relay's receive is over; `lost` says why if it ended early.
    pub fn end(&self, lost: Option<String>) {
        self.with(|s| s.ended = Some(lost.map_or(Ended::Whole, Ended::Lost)));
    }

    /// The relay's receive ended because its sender cancelled the send.
    pub fn cancelled(&self) {
        self.with(|s| s.ended = Some(Ended::Cancelled));
    }

    /// The forwarding side stopped.
    pub fn close(&self) {
        self.with(|s| s.closed = true);
    }

    /// Produce the segments of `files` (index, size, offset the next peer asked for) in order,
    /// each as soon as it is verified here, in buffers taken from `spares` when it has any.
    /// Runs on a blocking thread until done or closed.
    pub fn produce(&self, files: Vec<(usize, u64, u64)>, tx: mpsc::Sender<Vec<Chunk>>, spares: SpareRx) {
        let mut batch = Batch::new(tx);
        let mut placed = None;
        for (index, size, offset) in files {
            let layout = Layout::of(size);
            // Wait for the file to start here.
            let started = self.wait(&batch, |s| match s.files.get(&index) {
                Some(f) => Some(Ok(f.cvs.clone())),
                None => ended_early(s, "it was not sent to this relay"),
            });
            let cvs = match started {
                Some(Ok(cvs)) => cvs,
                // Never started here: the next peer hears nothing of it ("it was not sent").
                Some(Err(Step::Fail(_))) => continue,
                Some(Err(Step::Abandon(end))) => {
                    let _ = batch.push(end);
                    let _ = batch.send();
                    return;
                }
                None => return,
            };
            if batch.push(Chunk::Start(index, cvs)).is_err() {
                return;
            }
            let mut pos = offset;
            let end = loop {
                if pos >= size {
                    break Chunk::Done;
                }
                let ready = self.wait(&batch, |s| {
                    let f = s.files.get(&index)?;
                    if f.verified > pos {
                        return Some(Ok((f.verified, f.copy.reader())));
                    }
                    if let Some(reason) = &f.failed {
                        return Some(Err(Step::Fail(reason.clone())));
                    }
                    ended_early(s, "it was not sent to this relay")
                });
                let (verified, reader) = match ready {
                    Some(Ok(r)) => r,
                    Some(Err(Step::Fail(reason))) => break Chunk::Failed(index, Reason::Other, reason),
                    Some(Err(Step::Abandon(end))) => {
                        let _ = batch.push(end);
                        let _ = batch.send();
                        return;
                    }
                    None => return,
                };
                // One segment at a time, never across a chunk boundary.
                let chunk_end = (layout.chunk_at(pos) + 1) * layout.chunk_len();
                let want = (verified.min(chunk_end) - pos).min(CHUNK as u64) as usize;
                let mut buf = match spares.try_recv() {
                    Ok(mut b) if b.capacity() >= want => {
                        b.resize(want, 0);
                        b
                    }
                    _ => vec![0u8; want],
                };
                if let Err(e) = reader.read_exact_at(&mut buf, pos, &mut placed) {
                    break Chunk::Failed(index, Reason::DiskError, format!("the relay cannot read its copy: {e}"));
                }
                if self.corrupt == Some(self.forwarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    buf[0] ^= 0xff;
                }
                pos += want as u64;
                if batch.push(Chunk::Data(buf)).is_err() {
                    return;
                }
            };
            if batch.push(end).is_err() {
                return;
            }
        }
        let _ = batch.send();
    }

    /// Wait until `ready` says something (or the forwarding side closed, or the stream that
    /// takes our segments is gone: `None`). The stream going away wakes nobody here, so it is
    /// looked at every [`CONSUMER_CHECK`]: a blocking thread left waiting would hold the
    /// runtime (and the process) at exit.
    fn wait<T>(&self, batch: &Batch, mut ready: impl FnMut(&State) -> Option<Result<T, Step>>) -> Option<Result<T, Step>> {
        let mut s = lock(&self.state);
        loop {
            if s.closed || batch.is_closed() {
                return None;
            }
            if let Some(r) = ready(&s) {
                return Some(r);
            }
            s = self.changed.wait_timeout(s, CONSUMER_CHECK).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// How often a producer waiting for verified bytes looks whether its stream is still there.
const CONSUMER_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// Closes the tap when dropped: however the forwarding side ends (also dropped mid-way, as a
/// runtime that shuts down drops its tasks), no producer is left waiting on it.
pub(crate) struct CloseOnDrop(pub Arc<Tap>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Why a wait ended without data.
enum Step {
    /// This file will not come (failed here, or never sent): the next peer is told so.
    Fail(String),
    /// The relay's own receive ended early: the stream downstream ends too, with this last
    /// chunk (`Chunk::Abandon` keeping what it has, `Chunk::Cancelled` dropping it).
    Abandon(Chunk),
}

fn ended_early<T>(s: &State, not_sent: &str) -> Option<Result<T, Step>> {
    match &s.ended {
        None => None,
        Some(Ended::Whole) => Some(Err(Step::Fail(not_sent.to_string()))),
        Some(Ended::Lost(lost)) => Some(Err(Step::Abandon(Chunk::Abandon(lost.clone())))),
        Some(Ended::Cancelled) => Some(Err(Step::Abandon(Chunk::Cancelled))),
    }
}

/// Something to read a file's verified bytes from.
enum Reader {
    Open(Arc<File>),
    Placed(PathBuf),
}

impl Reader {
    /// Read at `pos`; a placed copy is opened once for all its segments (`placed` keeps it).
    fn read_exact_at(&self, buf: &mut [u8], pos: u64, placed: &mut Option<(PathBuf, File)>) -> std::io::Result<()> {
        match self {
            Reader::Open(file) => file.read_exact_at(buf, pos),
            Reader::Placed(path) => {
                if placed.as_ref().is_none_or(|(p, _)| p != path) {
                    *placed = Some((path.clone(), File::open(path)?));
                }
                match placed {
                    Some((_, file)) => file.read_exact_at(buf, pos),
                    None => Err(std::io::ErrorKind::NotFound.into()),
                }
            }
        }
    }
}

impl Copy {
    fn reader(&self) -> Reader {
        match self {
            Copy::Open(f) => Reader::Open(f.clone()),
            Copy::Placed(p) => Reader::Placed(p.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A producer waiting for bytes the relay has not verified yet, on a thread of its own;
    /// what it returned with comes on the channel returned.
    fn producing(tap: &Arc<Tap>, tx: mpsc::Sender<Vec<Chunk>>) -> std::sync::mpsc::Receiver<()> {
        let (done_tx, done) = std::sync::mpsc::channel();
        let (_spare_tx, spares) = super::super::stream::spares();
        let tap = tap.clone();
        std::thread::spawn(move || {
            tap.produce(vec![(0, 1 << 20, 0)], tx, spares);
            let _ = done_tx.send(());
        });
        done
    }

    // Generous: the producer looks every `CONSUMER_CHECK`, a loaded machine may be slow.
    const ENDS_WITHIN: Duration = Duration::from_secs(30);

    #[test]
    fn a_producer_ends_when_its_stream_goes_though_the_tap_stays_open() {
        let tap = Arc::new(Tap::new(None));
        let (tx, rx) = mpsc::channel(4);
        let done = producing(&tap, tx);
        assert!(done.recv_timeout(CONSUMER_CHECK * 2).is_err(), "it waits while its stream is there");
        drop(rx);
        done.recv_timeout(ENDS_WITHIN)
            .expect("the producer still waits for a stream that is gone");
    }

    #[test]
    fn a_producer_ends_when_the_forwarding_side_is_dropped() {
        let tap = Arc::new(Tap::new(None));
        let (tx, _rx) = mpsc::channel(4);
        let done = producing(&tap, tx);
        drop(CloseOnDrop(tap.clone()));
        done.recv_timeout(ENDS_WITHIN).expect("the producer still waits on a closed tap");
    }
}
