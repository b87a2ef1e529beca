//! The receiving end's disk thread: it makes folders, writes each file's segments, verifies
//! every chunk against its hash before keeping it, and syncs and places finished files, one
//! batch of commands from the socket side at a time.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use blake3::hazmat::ChainingValue;
use tokio::sync::mpsc;

use super::chunks::{ChunkHasher, Layout};
use super::placing::Plan;
use super::tap::Tap;
use super::writeback::{self, Writeback};
use crate::reason::Reason;

/// One item's fate, as the disk thread (or the folder step) reports it.
pub(super) struct Verdict {
    pub(super) index: usize,
    /// The path as offered, which the sender and the outcome know it by.
    pub(super) offered: String,
    /// Placed there, or why not (as a code, and in words).
    pub(super) result: Result<PathBuf, (Reason, String)>,
}
/// What the socket side tells the disk thread.
pub(super) enum Cmd {
    /// Make the folder items before this index.
    Dirs {
        below: usize,
    },
    Open {
        index: usize,
        offset: u64,
        size: u64,
        /// The file's chunk hashes, already checked against its root.
        cvs: Arc<Vec<ChainingValue>>,
    },
    Data(Vec<u8>),
    End,
    Abort {
        reason: String,
    },
}

/// Why the disk thread stopped the transfer.
pub(super) enum DiskStop {
    /// Our disk refused (full, permission): for the file with this index.
    Io(usize, std::io::Error),
    /// A chunk did not match its hash: the data is bad, wherever it came from. `kept` bytes of
    /// the file before it are verified and kept.
    Corrupt { index: usize, chunk: u64, kept: u64 },
}

/// A file being written (or, when placed by an earlier attempt, only verified).
pub(super) struct Open {
    index: usize,
    /// `Err`: its folder cannot be made (a file or a link in the way); its bytes are dropped
    /// and it fails alone.
    file: Result<File, (Reason, String)>,
    /// Placed by an earlier attempt (and found to hash to its root when the offer was taken):
    /// nothing to write.
    existing: bool,
    layout: Layout,
    cvs: Arc<Vec<ChainingValue>>,
    /// Bytes from the start that are verified (and written).
    pos: u64,
    /// The segments of the chunk being received, held until the whole chunk is verified.
    pending: Vec<Vec<u8>>,
    pending_len: u64,
    hasher: Option<ChunkHasher>,
    /// Up to where its bytes were handed to the writeback.
    written_back: u64,
}

/// The disk thread: runs until the socket side is done, then hands the plan back. A write
/// error (disk full, permission denied) or a chunk that fails verification ends it.
pub(super) fn disk_loop(
    mut plan: Plan,
    mut rx: mpsc::Receiver<Vec<Cmd>>,
    verdicts: mpsc::UnboundedSender<Verdict>,
    free: super::stream::SpareTx,
    tap: Option<Arc<Tap>>,
    strict: bool,
    from: String,
) -> (Plan, Option<DiskStop>) {
    let mut current: Option<Open> = None;
    // Verified files are synced and placed once per batch of commands, not one by one: a
    // thousand small files cost a few syncs, not two thousand.
    let mut pending = Pending::default();
    let writeback = Writeback::default();
    let out = Out {
        verdicts: &verdicts,
        free: &free,
        tap: tap.as_deref(),
        strict,
        from: &from,
        writeback: &writeback,
    };
    while let Some(batch) = rx.blocking_recv() {
        let done = run_batch(&mut plan, batch, &mut current, &mut pending, &out);
        let synced = settle(&mut plan, &mut pending, &out).map_err(|(i, e)| DiskStop::Io(i, e));
        if let Err(e) = done.and(synced) {
            return (plan, Some(e));
        }
    }
    (plan, None)
}

/// Where the disk thread's results go.
pub(super) struct Out<'a> {
    verdicts: &'a mpsc::UnboundedSender<Verdict>,
    free: &'a super::stream::SpareTx,
    /// A relay's record of what it verified, for the peer it forwards to.
    tap: Option<&'a Tap>,
    /// The data comes from a relay: a chunk that does not match ends the transfer (the relay
    /// is at fault), where from the sender itself only that file fails (it changed).
    strict: bool,
    /// Who the data comes from, as a person knows it.
    from: &'a str,
    writeback: &'a Writeback,
}

/// One hand-over of commands from the socket side.
pub(super) fn run_batch(
    plan: &mut Plan,
    batch: Vec<Cmd>,
    current: &mut Option<Open>,
    pending: &mut Pending,
    out: &Out,
) -> Result<(), DiskStop> {
    for cmd in batch {
        match cmd {
            Cmd::Dirs { below } => {
                for (index, result) in plan.make_dirs(below) {
                    verdict(out, plan, index, result.map_err(|e| (Reason::DiskError, e)));
                }
            }
            Cmd::Open { index, offset, size, cvs } => match open(plan, index, offset, size, cvs) {
                Ok(o) => {
                    if let (Some(tap), Ok(file)) = (out.tap, &o.file) {
                        match file.try_clone() {
                            Ok(copy) => tap.open(index, o.cvs.clone(), o.pos, copy),
                            Err(e) => return Err(DiskStop::Io(index, e)),
                        }
                    }
                    *current = Some(o)
                }
                Err(e) => return Err(DiskStop::Io(index, e)),
            },
            Cmd::Data(buf) => {
                let Some(o) = current else {
                    let _ = out.free.try_send(buf);
                    continue;
                };
                if o.existing {
                    return Err(DiskStop::Io(
                        o.index,
                        std::io::Error::other("data for a file that is already complete"),
                    ));
                }
                take_segment(plan, o, buf, out)?;
            }
            Cmd::End => {
                if let Some(o) = current.take() {
                    match o.file {
                        Err(reason) => verdict(out, plan, o.index, Err(reason)),
                        Ok(file) => pending.verified.push((o.index, file)),
                    }
                }
            }
            Cmd::Abort { reason } => {
                if let Some(o) = current.take() {
                    drop(o.file);
                    plan.discard(o.index);
                    verdict(
                        out,
                        plan,
                        o.index,
                        Err((Reason::SourceChanged, format!("the sender gave up on it: {reason}"))),
                    );
                }
            }
        }
    }
    Ok(())
}

/// One segment of the current file: held until its chunk is whole, then the chunk is checked
/// against its hash and only then written (and offered to the next peer, on a relay).
pub(super) fn take_segment(plan: &mut Plan, o: &mut Open, buf: Vec<u8>, out: &Out) -> Result<(), DiskStop> {
    if o.file.is_err() {
        // Failed already: the rest of its bytes go nowhere.
        let _ = out.free.try_send(buf);
        return Ok(());
    }
    let chunk = o.layout.chunk_at(o.pos);
    o.hasher.get_or_insert_with(|| ChunkHasher::new(&o.layout, chunk)).update(&buf);
    o.pending_len += buf.len() as u64;
    o.pending.push(buf);
    if o.pending_len < o.layout.len_of(chunk) {
        return Ok(());
    }
    let cv = o.hasher.take().map(|h| h.finish());
    if cv.as_ref() != o.cvs.get(chunk as usize) {
        if out.strict {
            return Err(DiskStop::Corrupt {
                index: o.index,
                chunk,
                kept: o.pos,
            });
        }
        // From the sender itself (the channel is authenticated, so nothing was damaged on the
        // way): the file changed while it was read, or the sender's disk or memory (or the
        // sender itself) spoiled it. It fails alone; the transfer goes on.
        let from = out.from;
        o.file = Err((
            Reason::BadData,
            format!(
                "bad data from {from}: chunk {chunk} did not match its hash (the file changed as it was read, or {from}'s disk or memory corrupted it); the received data was discarded"
            ),
        ));
        plan.discard(o.index);
        for seg in o.pending.drain(..) {
            let _ = out.free.try_send(seg);
        }
        o.pending_len = 0;
        return Ok(());
    }
    for seg in o.pending.drain(..) {
        if let Ok(file) = &mut o.file {
            if let Err(e) = file.write_all(&seg) {
                return Err(DiskStop::Io(o.index, e));
            }
            plan.written(seg.len() as u64);
        }
        let _ = out.free.try_send(seg);
    }
    o.pos += o.pending_len;
    o.pending_len = 0;
    if o.pos - o.written_back >= writeback::EVERY
        && let Ok(file) = &o.file
    {
        out.writeback.request(file);
        o.written_back = o.pos;
    }
    if let (Some(tap), Ok(_)) = (out.tap, &o.file) {
        tap.verified(o.index, o.pos);
    }
    Ok(())
}

/// Verified files on their way to their final names, a batch at a time: one sync for the
/// batch's bytes, renames, one sync for the batch's names, then the sender hears of them.
#[derive(Default)]
pub(super) struct Pending {
    verified: Vec<(usize, File)>,
    placed: Vec<(usize, PathBuf)>,
}

/// Make the bytes of verified files durable, give them their names, make those durable,
/// then tell the socket side they arrived.
pub(super) fn settle(plan: &mut Plan, pending: &mut Pending, out: &Out) -> Result<(), (usize, std::io::Error)> {
    if let Some(&(first, _)) = pending.verified.first() {
        plan.sync_files(&pending.verified).map_err(|e| (first, e))?;
        for (i, file) in pending.verified.drain(..) {
            drop(file);
            match plan.place(i) {
                Ok(path) => pending.placed.push((i, path)),
                // Full here means full for every file after it too.
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return Err((i, e)),
                Err(e) => verdict(out, plan, i, Err((Reason::DiskError, format!("cannot place it: {e}")))),
            }
        }
    }
    let Some(&(first, _)) = pending.placed.first() else {
        return Ok(());
    };
    plan.sync_placed().map_err(|e| (first, e))?;
    for (i, path) in pending.placed.drain(..) {
        if let Some(tap) = out.tap {
            tap.placed(i, path.clone());
        }
        verdict(out, plan, i, Ok(path));
    }
    Ok(())
}

/// Tell the socket side how item `index` ended (with its name as offered, for the sender).
pub(super) fn verdict(out: &Out, plan: &Plan, index: usize, result: Result<PathBuf, (Reason, String)>) {
    if let (Some(tap), Err((_, reason))) = (out.tap, &result) {
        tap.failed(index, reason);
    }
    let offered = plan.offered(index);
    let _ = out.verdicts.send(Verdict { index, offered, result });
}

/// Open a file's partial (or its earlier placed copy, which was hashed when the offer was
/// taken; a relay forwards from it). Its folder is made now, as its first byte comes. The
/// `offset` bytes already in a partial were verified when they were written.
pub(super) fn open(plan: &mut Plan, index: usize, offset: u64, size: u64, cvs: Arc<Vec<ChainingValue>>) -> std::io::Result<Open> {
    let mut o = Open {
        index,
        file: Err((Reason::Other, String::new())),
        existing: false,
        layout: Layout::of(size),
        cvs,
        pos: offset,
        pending: Vec::new(),
        pending_len: 0,
        hasher: None,
        written_back: offset,
    };
    if plan.slots[index].existing.is_none()
        && let Err(e) = plan.ready_folder(index)
    {
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Err(e);
        }
        o.file = Err((Reason::DiskError, format!("cannot place it: {e}")));
        return Ok(o);
    }
    if plan.slots[index].existing.is_some() {
        let file = plan.open_existing(index)?;
        o.existing = true;
        o.file = Ok(file);
        return Ok(o);
    }
    // From zero: truncate on open (a stale partial is discarded in the same call).
    let mut file = plan.open_partial(index, offset == 0)?;
    if offset > 0 {
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
    }
    o.file = Ok(file);
    Ok(o)
}
