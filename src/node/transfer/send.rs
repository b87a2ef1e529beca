//! The sending end of a stream of files (a push, the answer to a `Get`, or a relay forwarding
//! what it receives): offer, wait for the answer, then stream each file while a second task
//! collects the receiver's verdicts (and, from a relay, its reports on the peers behind it). A
//! blocking thread produces 1 MiB segments ahead of the socket through a short channel — read
//! from disk, or for a relay taken from what it verified — so memory stays flat whatever the
//! file size.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blake3::hazmat::ChainingValue;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chunks::Layout;
use super::ctx::Ctx;
use super::error::{FileFailure, Outcome, TransferError};
use super::hashing::mtime_ns;
use super::hooks::Fault;
use super::meter::Meter;
use super::opener::Opener;
use super::source::SendManifest;
use super::stream::{CHUNK, PIPE_DEPTH, SAY_STOP_LIMIT, SpareRx, SpareTx, Stop, interrupted, io_stop, moving, next, say_stop, spares};
use super::wire::{HASHES_PER_FRAME, Hop, ITEM_OVERHEAD, ITEMS_FRAME_BYTES, Item, Reason, Report, TransferMsg, bounded};
use super::wire::{file_failure_line, msg_name, note_saved_as};
use crate::limits::{ANSWER_GRACE, LAST_VERDICTS_WAIT};
use crate::net::secure::{SecureConn, SecureReader, SecureWriter};

/// What one outgoing stream carries besides the files: the rest of a relayed send's chain, where
/// the receiver's reports on it go, and where the data comes from.
pub(crate) struct Outgoing {
    pub relay: Vec<Hop>,
    /// On an offer a relay passes on: who started the send (and vouched for it).
    pub origin: Option<String>,
    /// Reports on the peers of `relay`, as (peer id, report).
    pub reports: Option<mpsc::UnboundedSender<(String, Report)>>,
    pub producer: Producer,
    /// A deposit's name: offered as `Deposit`, to keep for its owner (`crate::node::locker`).
    pub deposit: Option<String>,
}

impl Outgoing {
    /// A plain send of local (or shared) files.
    pub fn plain() -> Outgoing {
        Outgoing {
            relay: Vec::new(),
            origin: None,
            reports: None,
            producer: Producer::Files,
            deposit: None,
        }
    }
}

/// Where the segments of an outgoing stream come from.
pub(crate) enum Producer {
    /// The manifest's own source files.
    Files,
    /// Another thread (a relay's tap).
    Custom(Produce),
}

/// Given each item's offset the receiver asked for, produce the segments in order on the
/// channel, in buffers taken from the spares when there are any (runs on a blocking thread).
pub(crate) type Produce = Box<dyn FnOnce(Vec<u64>, mpsc::Sender<Vec<Chunk>>, SpareRx) + Send>;

/// A file to read and send.
struct SourceFile {
    index: usize,
    path: PathBuf,
    item: Item,
    offset: u64,
    cvs: Arc<Vec<ChainingValue>>,
}

pub(crate) async fn run(ctx: &Ctx, conn: SecureConn, m: &SendManifest, out: Outgoing) -> Result<Outcome, TransferError> {
    let SecureConn {
        mut reader, mut writer, ..
    } = conn;
    // The stall clock starts with the connection, not with the wait for the peer to come up.
    ctx.deadline.moved();
    let result = exchange(ctx, &mut reader, &mut writer, m, out).await;
    match result {
        Ok(outcome) => {
            writer.shutdown().await;
            Ok(outcome)
        }
        Err(stop) => {
            say_stop(ctx, &mut writer, &stop).await;
            let _ = tokio::time::timeout(SAY_STOP_LIMIT, writer.shutdown()).await;
            Err(stop.into_error(ctx))
        }
    }
}

async fn exchange(
    ctx: &Ctx,
    reader: &mut SecureReader,
    writer: &mut SecureWriter,
    m: &SendManifest,
    out: Outgoing,
) -> Result<Outcome, Stop> {
    let n = m.items.len();
    let Outgoing {
        relay,
        origin,
        reports,
        producer,
        deposit,
    } = out;
    let relay_ids: Vec<String> = relay.iter().map(|h| h.id.clone()).collect();
    let (transfer, items, bytes) = (ctx.wire_id(), n as u32, m.bytes);
    let first = match deposit {
        Some(name) => TransferMsg::Deposit {
            transfer,
            items,
            bytes,
            relay,
            origin,
            name,
        },
        None => TransferMsg::Offer {
            transfer,
            items,
            bytes,
            relay,
            origin,
        },
    };
    writer.queue_frame(&first).map_err(io_stop)?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for (i, item) in m.items.iter().enumerate() {
        batch_bytes += item.path.len() + ITEM_OVERHEAD;
        batch.push(item.clone());
        if batch_bytes >= ITEMS_FRAME_BYTES || i + 1 == n {
            let items = TransferMsg::Items {
                items: std::mem::take(&mut batch),
            };
            moving(ctx, async { writer.send(&items).await.map_err(io_stop) }).await?;
            batch_bytes = 0;
        }
    }
    moving(ctx, async { writer.flush().await.map_err(io_stop) }).await?;
    tracing::debug!("transfer {}: offer of {n} items sent", ctx.id);
    let name = m.label();
    ctx.update(|v| {
        v.state = super::TransferState::Waiting;
        v.files = n as u32;
        v.total = m.bytes;
        v.name = name;
    });

    // The receiver may ask a person, who has the offer's deadline to answer.
    ctx.deadline.hold(crate::limits::OFFER_ANSWER_TIMEOUT + ANSWER_GRACE);
    let answer = next(ctx, reader, None).await;
    ctx.deadline.release();
    let resume = match answer? {
        TransferMsg::Accept { resume } => {
            tracing::debug!("transfer {}: accepted", ctx.id);
            ctx.set_state(super::TransferState::Running);
            resume
        }
        TransferMsg::Reject { code, text } => return Err(Stop::Rejected(code, text.map(|t| bounded(&t)))),
        other => return Err(Stop::Protocol(format!("protocol error: unexpected {}", msg_name(&other)))),
    };
    let mut offsets = vec![0u64; n];
    for (i, off) in resume {
        // Whole chunks only: a resume starts at a chunk the receiver can verify, or at the end
        // (a file it already has whole, whatever its size).
        match m.items.get(i as usize) {
            Some(item) if !item.dir && off <= item.size && (off == item.size || Layout::of(item.size).floor(off) == off) => {
                offsets[i as usize] = off
            }
            _ => return Err(Stop::Protocol("protocol error: bad resume offset".into())),
        }
    }

    let stop = CancellationToken::new();
    let mut meter = Meter::new(ctx, n as u32, m.bytes);
    let (streamed, verdicts) = tokio::join!(
        async {
            let r = stream(ctx, writer, m, &offsets, producer, &stop, &mut meter).await;
            // A write that finds the connection gone does not stop the reading half: a peer
            // that gave up says why before it closes, and that reason sits ahead of the
            // reset. The reading half ends on its own once it has read it (or by deadline).
            if r.is_err() && !matches!(r, Err(Stop::Lost)) {
                stop.cancel();
            }
            r
        },
        async {
            let r = collect(ctx, reader, m, &relay_ids, reports.as_ref(), &stop).await;
            // An interruption of our own reaches the writing half by itself, which finishes the
            // write under way first; stopping it from here would tear that write.
            if r.as_ref().is_err_and(|e| !e.is_ours()) {
                stop.cancel();
            }
            r
        }
    );
    let verdicts = match (streamed, verdicts) {
        (Ok(()), Ok(v)) => v,
        (Err(e), Ok(_)) | (Ok(()), Err(e)) => return Err(e),
        (Err(a), Err(b)) => return Err(if says(&b) > says(&a) { b } else { a }),
    };
    let mut outcome = Outcome {
        transfer: ctx.id.clone(),
        resumed: offsets.iter().sum(),
        ..Outcome::default()
    };
    for (item, verdict) in m.items.iter().zip(verdicts) {
        match verdict {
            Ok(saved) => {
                if !item.dir {
                    outcome.files += 1;
                    outcome.bytes += item.size;
                }
                if let Some(saved) = saved {
                    note_saved_as(&mut outcome.saved_as, &item.path, &saved);
                }
            }
            Err((code, reason)) => outcome.failed.push(FileFailure {
                path: item.path.clone(),
                reason,
                code,
            }),
        }
    }
    Ok(outcome)
}

/// How much a half's ending tells a person: one that only saw the other half stop nothing, a
/// lost connection little (the peer's own reason may come in on the other half), anything
/// else is the reason.
fn says(stop: &Stop) -> u8 {
    match stop {
        Stop::Quiet => 0,
        Stop::Lost => 1,
        _ => 2,
    }
}

/// The receiver's verdict on one item: where it was saved if not as offered, or why not (its
/// code, and its words or the code's).
type Verdict = Result<Option<String>, (Reason, String)>;

/// Why the receiver says a file did not arrive: its words when it gave some (about that one
/// file, which a person reads in the list of failures), else the code.
fn file_failure(code: Reason, text: Option<String>) -> String {
    match text {
        Some(t) if !t.trim().is_empty() => bounded(&t),
        _ => code.code().replace('_', " "),
    }
}

/// The receiver's verdict on every item, and from a relay its reports on the peers behind it
/// until it says they are all done. A relay's own end goes to `reports` (under its own id) as
/// soon as its last verdict is in: it verified its copy, whatever the peers behind it still do.
async fn collect(
    ctx: &Ctx,
    reader: &mut SecureReader,
    m: &SendManifest,
    relay: &[String],
    reports: Option<&mpsc::UnboundedSender<(String, Report)>>,
    stop: &CancellationToken,
) -> Result<Vec<Verdict>, Stop> {
    let n = m.items.len();
    let mut verdicts: Vec<Option<Verdict>> = vec![None; n];
    let mut count = 0;
    let mut relay_done = relay.is_empty();
    while count < n || !relay_done {
        let (index, verdict) = match next(ctx, reader, Some(stop)).await? {
            TransferMsg::FileOk { index, saved_as } => (index, Ok(saved_as)),
            TransferMsg::FileFailed { index, code, text } => (index, Err((code, file_failure(code, text)))),
            TransferMsg::Relayed { peer, report } if relay.contains(&peer) => {
                if let Some(reports) = reports {
                    let _ = reports.send((peer, super::wire::bounded_report(report)));
                }
                continue;
            }
            TransferMsg::RelayDone if !relay.is_empty() => {
                relay_done = true;
                continue;
            }
            other => return Err(Stop::Protocol(format!("protocol error: unexpected {}", msg_name(&other)))),
        };
        match verdicts.get_mut(index as usize) {
            Some(slot @ None) => *slot = Some(verdict),
            _ => return Err(Stop::Protocol("protocol error: bad file verdict".into())),
        }
        count += 1;
        if count == n
            && !relay_done
            && let Some(reports) = reports
        {
            let _ = reports.send((ctx.peer.as_str().to_string(), own_end(m, &verdicts)));
        }
    }
    Ok(verdicts.into_iter().map(|v| v.unwrap_or(Ok(None))).collect())
}

/// A receiver's end, from its verdicts on every item of `m`.
fn own_end(m: &SendManifest, verdicts: &[Option<Verdict>]) -> Report {
    let (mut files, mut bytes, mut failed, mut reason, mut saved_as) = (0, 0, 0, None, Vec::new());
    for (item, verdict) in m.items.iter().zip(verdicts) {
        match verdict {
            Some(Ok(saved)) => {
                if !item.dir {
                    files += 1;
                    bytes += item.size;
                }
                if let Some(saved) = saved {
                    note_saved_as(&mut saved_as, &item.path, saved);
                }
            }
            Some(Err((_, why))) => {
                failed += 1;
                reason.get_or_insert_with(|| file_failure_line(&item.path, why));
            }
            None => {}
        }
    }
    Report::Finished {
        files,
        bytes,
        failed,
        reason,
        saved_as,
    }
}

/// What the producing thread hands the socket side.
pub(crate) enum Chunk {
    /// File `index` starts; its chunk hashes (sent when it has more than one chunk).
    Start(usize, Arc<Vec<ChainingValue>>),
    /// The next segment of the current file, never across a chunk boundary.
    Data(Vec<u8>),
    Done,
    /// File `index`, of one chunk, whole (all its bytes from its offset): one frame where
    /// `Start`, `Data` and `Done` would take three.
    Whole(usize, Vec<u8>),
    /// File `index` fails alone (its source changed or vanished, a relay's copy is unreadable).
    Failed(usize, Reason, String),
    /// The data stops here for good (a relay lost its own sender): the stream ends with the
    /// reason, the receiver keeps what it has.
    Abandon(String),
    /// The send was cancelled upstream (a relay's sender cancelled it): the stream ends with a
    /// cancel, and the receiver drops what it has.
    Cancelled,
}

/// The next chunk from the reader thread; flushes what is batched before waiting, so a slow
/// disk never holds back bytes already encrypted.
async fn next_chunk(
    ctx: &Ctx,
    writer: &mut SecureWriter,
    rx: &mut mpsc::Receiver<Vec<Chunk>>,
    stop: &CancellationToken,
) -> Result<Option<Vec<Chunk>>, Stop> {
    match rx.try_recv() {
        Ok(c) => return Ok(Some(c)),
        Err(mpsc::error::TryRecvError::Disconnected) => return Ok(None),
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    moving(ctx, async { writer.flush().await.map_err(io_stop) }).await?;
    tokio::select! {
        c = rx.recv() => Ok(c),
        _ = stop.cancelled() => Err(Stop::Quiet),
        stop = interrupted(ctx) => Err(stop),
    }
}

async fn stream(
    ctx: &Ctx,
    writer: &mut SecureWriter,
    m: &SendManifest,
    offsets: &[u64],
    producer: Producer,
    stop: &CancellationToken,
    meter: &mut Meter,
) -> Result<(), Stop> {
    let fault = ctx.shared.transfers.faults.take();
    // One producing thread for the whole transfer works ahead across files: small files cost
    // no thread start each, and the next file is read while this one is on the wire.
    let (tx, mut rx) = mpsc::channel(PIPE_DEPTH);
    let (free_tx, free_rx) = spares();
    match producer {
        Producer::Files => {
            let mut files = Vec::new();
            for (i, item) in m.items.iter().enumerate() {
                match &m.sources[i] {
                    Some(source) => files.push(SourceFile {
                        index: i,
                        path: source.clone(),
                        item: item.clone(),
                        offset: offsets[i],
                        cvs: m.hashes[i].clone(),
                    }),
                    None => meter.end_file(ctx),
                }
            }
            let confine = m.confine.clone();
            tokio::task::spawn_blocking(move || read_sources(files, confine, tx, free_rx));
        }
        Producer::Custom(produce) => {
            for item in &m.items {
                if item.dir {
                    meter.end_file(ctx);
                }
            }
            let offsets = offsets.to_vec();
            tokio::task::spawn_blocking(move || produce(offsets, tx, free_rx));
        }
    }
    // Bytes of the current file sent (what is left of it when it fails; where a test fault cuts).
    let mut sent = 0u64;
    while let Some(batch) = next_chunk(ctx, writer, &mut rx, stop).await? {
        if ctx.cancel.is_cancelled() {
            return Err(Stop::CancelledHere);
        }
        if stop.is_cancelled() {
            return Err(Stop::Quiet);
        }
        for chunk in batch {
            match chunk {
                Chunk::Start(i, cvs) => {
                    let item = sent_item(m, i)?;
                    sent = 0;
                    let offset = offsets[i];
                    meter.start_file(&item.path, item.size, offset);
                    writer
                        .queue_frame(&TransferMsg::FileStart { index: i as u32, offset })
                        .map_err(io_stop)?;
                    if Layout::of(item.size).has_list() {
                        for part in cvs.chunks(HASHES_PER_FRAME) {
                            let cvs = serde_bytes::ByteBuf::from(part.concat());
                            writer.queue_frame(&TransferMsg::Hashes { cvs }).map_err(io_stop)?;
                        }
                    }
                }
                Chunk::Whole(i, buf) => {
                    let item = sent_item(m, i)?;
                    sent = 0;
                    let offset = offsets[i];
                    meter.start_file(&item.path, item.size, offset);
                    let len = buf.len() as u64;
                    writer
                        .queue_frame(&TransferMsg::File {
                            index: i as u32,
                            offset,
                            len,
                        })
                        .map_err(io_stop)?;
                    if len > 0 {
                        put_data(ctx, writer, stop, meter, fault, &mut sent, &free_tx, buf).await?;
                    }
                    meter.end_file(ctx);
                }
                Chunk::Data(buf) => {
                    writer.queue_frame(&TransferMsg::Data { len: buf.len() as u64 }).map_err(io_stop)?;
                    put_data(ctx, writer, stop, meter, fault, &mut sent, &free_tx, buf).await?;
                }
                Chunk::Done => {
                    writer.queue_frame(&TransferMsg::FileEnd).map_err(io_stop)?;
                    meter.end_file(ctx);
                }
                Chunk::Failed(i, code, reason) => {
                    let item = &m.items[i];
                    meter.skip(item.size.saturating_sub(offsets[i] + sent));
                    writer
                        .queue_frame(&TransferMsg::FileAbort {
                            index: i as u32,
                            code,
                            text: Some(bounded(&reason)),
                        })
                        .map_err(io_stop)?;
                    meter.end_file(ctx);
                }
                Chunk::Abandon(reason) => return Err(Stop::Failed(reason)),
                Chunk::Cancelled => return Err(Stop::CancelledHere),
            }
        }
    }
    moving(ctx, async { writer.send(&TransferMsg::Done).await.map_err(io_stop) }).await?;
    tracing::debug!("transfer {}: all data sent", ctx.id);
    // The receiver verifies and places (and syncs) the last files before their verdicts come.
    ctx.deadline.hold(LAST_VERDICTS_WAIT);
    Ok(())
}

/// The file item `i` of the manifest, which the producer just started.
fn sent_item(m: &SendManifest, i: usize) -> Result<&Item, Stop> {
    m.items
        .get(i)
        .filter(|item| !item.dir)
        .ok_or_else(|| Stop::Failed("internal error: a segment for no file".into()))
}

/// A segment's raw bytes, after the frame that announces them; `sent` counts the file's bytes
/// sent (for the test faults, which cut or stall at a byte count).
#[allow(clippy::too_many_arguments)]
async fn put_data(
    ctx: &Ctx,
    writer: &mut SecureWriter,
    stop: &CancellationToken,
    meter: &mut Meter,
    fault: Option<Fault>,
    sent: &mut u64,
    free_tx: &SpareTx,
    mut buf: Vec<u8>,
) -> Result<(), Stop> {
    if let Some(Fault::Corrupt(at)) = fault
        && let Some(byte) = at.checked_sub(*sent).and_then(|i| buf.get_mut(usize::try_from(i).ok()?))
    {
        *byte ^= 0x5a;
    }
    let written = tokio::select! {
        w = moving(ctx, async { writer.write_raw_in_place(&mut buf).await.map_err(io_stop) }) => w,
        _ = stop.cancelled() => return Err(Stop::Quiet),
    };
    written?;
    meter.advance(ctx, buf.len() as u64);
    *sent += buf.len() as u64;
    match fault {
        Some(Fault::Disconnect(limit)) if *sent >= limit => {
            let _ = writer.flush().await;
            return Err(Stop::Quiet);
        }
        Some(Fault::Stall(limit)) if *sent >= limit => {
            writer.flush().await.map_err(io_stop)?;
            tokio::select! {
                _ = stop.cancelled() => return Err(Stop::Quiet),
                stop = interrupted(ctx) => return Err(stop),
            }
        }
        _ => {}
    }
    // Only buffers worth reusing go back to the reader (a small file's would pile up unused:
    // the reader takes one only when it reads).
    if buf.capacity() >= CHUNK / 2 {
        let _ = free_tx.try_send(buf);
    }
    Ok(())
}

/// Read every source file in order, each from the offset the receiver asked for (the hashes
/// were made before the offer). Stops when the async side goes away.
fn read_sources(files: Vec<SourceFile>, confine: Option<Vec<PathBuf>>, tx: mpsc::Sender<Vec<Chunk>>, free: SpareRx) {
    let mut batch = Batch::new(tx);
    let mut opener = Opener::default();
    for f in files {
        // A file of one chunk goes whole; a bigger one as it is read, after its hashes.
        let one = !Layout::of(f.item.size).has_list();
        if !one && batch.push(Chunk::Start(f.index, f.cvs.clone())).is_err() {
            return;
        }
        let end = match read_into(&mut opener, &f.path, confine.as_deref(), &f.item, f.offset, &mut batch, &free) {
            Ok(Some(whole)) => Chunk::Whole(f.index, whole),
            Ok(None) => Chunk::Done,
            Err(reason) => {
                if one && batch.push(Chunk::Start(f.index, f.cvs)).is_err() {
                    return;
                }
                Chunk::Failed(f.index, Reason::SourceChanged, reason)
            }
        };
        if batch.push(end).is_err() {
            return;
        }
    }
    let _ = batch.send();
}

/// Chunks gathered for one hand-over to the async side: many small files per wake-up, a big
/// file's 1 MiB chunks one by one.
pub(crate) struct Batch {
    tx: mpsc::Sender<Vec<Chunk>>,
    chunks: Vec<Chunk>,
    bytes: usize,
}

impl Batch {
    const MAX_CHUNKS: usize = 256;

    pub fn new(tx: mpsc::Sender<Vec<Chunk>>) -> Batch {
        Batch {
            tx,
            chunks: Vec::new(),
            bytes: 0,
        }
    }

    pub fn push(&mut self, chunk: Chunk) -> Result<(), ()> {
        if let Chunk::Data(d) = &chunk {
            self.bytes += d.len();
        }
        self.chunks.push(chunk);
        if self.bytes >= CHUNK || self.chunks.len() >= Self::MAX_CHUNKS {
            return self.send();
        }
        Ok(())
    }

    /// The stream that takes the batches is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn send(&mut self) -> Result<(), ()> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        self.tx.blocking_send(std::mem::take(&mut self.chunks)).map_err(|_| ())
    }
}

/// Read one file from `offset` into segments. The hashes were made when it was offered: a file
/// that changed since (size, time, or gone) fails alone here instead of failing verification.
fn read_into(
    opener: &mut Opener,
    path: &Path,
    confine: Option<&[PathBuf]>,
    item: &Item,
    offset: u64,
    batch: &mut Batch,
    free: &SpareRx,
) -> Result<Option<Vec<u8>>, String> {
    // A file that changed since it was hashed fails alone here, before any of its bytes go: its
    // chunks would no longer match the hashes the receiver checks them against.
    let mut file = opener.open(path, confine)?;
    // A file of one chunk comes back whole instead (its one segment), and needs neither look
    // at its size and time: the receiver checks its one chunk against the root, so any change
    // fails it there ("it changed while being sent"), and two stats per file were a tenth of a
    // small-file send's CPU.
    let checked = Layout::of(item.size).has_list();
    if checked {
        let meta = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
        if meta.len() != item.size || mtime_ns(&meta) != item.mtime {
            return Err("it changed after it was offered".to_string());
        }
    }
    if offset > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(|e| format!("cannot read it: {e}"))?;
    }
    let mut remaining = item.size - offset;
    if !checked && remaining == 0 {
        return Ok(Some(Vec::new()));
    }
    while remaining > 0 {
        let want = remaining.min(CHUNK as u64) as usize;
        // A recycled buffer if it is big enough, else one just as big as needed: a 4 KiB file
        // must not cost a 1 MiB allocation.
        let mut b = match free.try_recv() {
            Ok(b) if b.capacity() >= want => b,
            _ => Vec::with_capacity(want),
        };
        b.clear();
        // Reads into the spare capacity: no zeroing of bytes about to be overwritten.
        let got = (&mut file)
            .take(want as u64)
            .read_to_end(&mut b)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if got < want {
            return Err("it shrank while being sent".into());
        }
        remaining -= want as u64;
        if !checked {
            // All of it: one chunk is at most one segment.
            return Ok(Some(b));
        }
        if batch.push(Chunk::Data(b)).is_err() {
            return Err("stopped".into());
        }
    }
    // The open file's own metadata: no path walk per file; a link count of zero means it was
    // deleted meanwhile.
    match file.metadata() {
        Err(_) => return Err("it vanished while being sent".into()),
        Ok(after) if std::os::unix::fs::MetadataExt::nlink(&after) == 0 => return Err("it vanished while being sent".into()),
        Ok(after) if after.len() != item.size || mtime_ns(&after) != item.mtime => {
            return Err("it changed while being sent".into());
        }
        Ok(_) => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path, confine: Option<&[PathBuf]>) -> Result<(), String> {
        let meta = std::fs::metadata(path).unwrap();
        let item = Item {
            path: "f".into(),
            size: meta.len(),
            mtime: super::super::hashing::mtime_ns(&meta),
            dir: false,
            root: serde_bytes::ByteBuf::new(),
        };
        let (tx, mut rx) = mpsc::channel(64);
        let (_free_tx, free) = spares();
        let mut batch = Batch::new(tx);
        let result = read_into(&mut Opener::default(), path, confine, &item, 0, &mut batch, &free);
        rx.close();
        result.map(drop)
    }

    #[test]
    fn a_file_that_is_no_longer_inside_the_share_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::write(share.join("sub/f"), b"inside").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        let roots = vec![share.canonicalize().unwrap()];
        assert!(read(&share.join("sub/f"), Some(&roots)).is_ok());
        // After the walk, someone swaps the folder for a link to somewhere else.
        std::fs::remove_dir_all(share.join("sub")).unwrap();
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join("elsewhere/f"), b"inside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), share.join("sub")).unwrap();
        let err = read(&share.join("sub/f"), Some(&roots)).unwrap_err();
        assert!(err.contains("no longer inside the share"), "{err}");
        // A local send is not confined.
        assert!(read(&share.join("sub/f"), None).is_ok());
    }
}
