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
use super::names::check_relative;
use super::progress::Meter;
use super::source::{Manifest, Opener};
use super::wire::{
    HASHES_PER_FRAME, Hop, ITEM_OVERHEAD, ITEMS_FRAME_BYTES, Item, MAX_TRANSFER_FRAME, Reason, Report, TransferMsg, bounded,
};
use super::{Ctx, Direction, Fault, Outcome, TransferError, msg_name, mtime_ns, top_of};
use crate::limits::{ANSWER_GRACE, FINISH_WRITE, LAST_VERDICTS_WAIT};
use crate::net::frame::FrameError;
use crate::net::secure::{SecureConn, SecureReader, SecureWriter};
use crate::node::slots::{Pool, Refusal};
use crate::text::printable;

pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket (and written behind it on the other side).
pub(crate) const PIPE_DEPTH: usize = 4;

/// Why one of the two halves stopped.
pub(crate) enum Stop {
    /// We cancelled: tell the peer; partial data goes.
    CancelledHere,
    /// The peer cancelled (its words, if any); partial data goes. Whatever code it gave, a
    /// cancel from the peer is its own end's: it cannot pass one off as ours.
    CancelledByPeer(Option<String>),
    /// This node stops (quit, Ctrl-C, SIGTERM): told to the peer; partial data is kept.
    StoppedHere,
    /// Stopped because the other half stopped; the other half has the reason.
    Quiet,
    Failed(String),
    /// The peer broke the protocol (told, then the connection ends).
    Protocol(String),
    /// Data failed its hash (told to the peer; what was verified before it is kept).
    Corrupt(String),
    /// A record failed authentication: the stream was altered on the way.
    Tampered,
    /// Our disk refused (full, permission, …): told to the peer; partial data is kept.
    Disk(Reason, String),
    /// The connection broke under us: the peer quit or crashed, or the network failed. Nothing
    /// can be told to it; a person hears who stopped and that a resume is possible.
    Lost,
    /// The peer reported why it cannot go on (its code, its words if any): nothing to tell it.
    PeerFailed(Reason, Option<String>),
    /// The peer did not take our offer (its code, its words if any).
    Rejected(Reason, Option<String>),
    /// We did not take the peer's offer (told to it already), and why, in our words.
    Refused(Reason, String),
    /// Nothing moved for the stall limit: told to the peer; partial data is kept.
    Stalled,
    /// Our slot was given to a known peer (we are a newcomer's connection): told to the peer.
    Evicted,
    /// Another peer of a relay chain took this receive over: partial data is kept for it.
    Superseded,
}

impl Stop {
    pub(crate) fn into_error(self, ctx: &Ctx) -> TransferError {
        let who = who(ctx);
        match self {
            Stop::CancelledHere => TransferError::Cancelled(cancel_code(ctx.direction), "cancelled".into()),
            Stop::CancelledByPeer(text) => TransferError::Cancelled(
                cancel_code(ctx.direction.other()),
                format!("{who} cancelled {}{}", what(ctx), words(ctx, &text)),
            ),
            Stop::StoppedHere => TransferError::Stopped("stopped: this lanyard is quitting".into()),
            Stop::Quiet => TransferError::Failed(Reason::Other, "stopped".into()),
            Stop::Failed(m) => TransferError::Failed(Reason::Other, m),
            Stop::Protocol(m) => TransferError::Protocol(Reason::Protocol, m),
            Stop::Corrupt(m) => TransferError::Protocol(Reason::BadData, m),
            Stop::Tampered => TransferError::Protocol(
                Reason::Tampered,
                format!("data from {who} failed authentication: it was altered on the way (possible tampering)"),
            ),
            Stop::Disk(code, m) => TransferError::Disk(code, m),
            Stop::Lost => TransferError::PeerLost(
                Reason::ConnectionLost,
                match ctx.direction {
                    Direction::Send => format!("{who} stopped receiving (connection lost); sending again resumes"),
                    // The receiving end says what it keeps itself (`receive::run`).
                    Direction::Receive => format!("{who} stopped sending (connection lost)"),
                },
            ),
            Stop::PeerFailed(code, text) => peer_failed(ctx, code, &text),
            Stop::Rejected(code, text) => {
                // An expiry in the peer's own words already says how long it waited.
                let said = words(ctx, &text);
                let plain = if code == Reason::Expired && !said.is_empty() {
                    "expired"
                } else {
                    refused_text(code)
                };
                TransferError::Rejected(code, format!("{plain}{said}"))
            }
            Stop::Refused(code, why) if why.is_empty() => TransferError::Rejected(code, refused_text(code).into()),
            Stop::Refused(code, why) => {
                let said = if code == Reason::Expired { "expired" } else { "rejected" };
                TransferError::Rejected(code, format!("{said}: {why}"))
            }
            Stop::Stalled => TransferError::PeerLost(
                Reason::Stalled,
                match ctx.direction {
                    Direction::Send => format!("{}; {who} stopped receiving; sending again resumes", stalled_text(ctx)),
                    // The receiving end says what it keeps itself (`receive::run`).
                    Direction::Receive => format!("{}; {who} stopped sending", stalled_text(ctx)),
                },
            ),
            Stop::Superseded => TransferError::PeerLost(
                Reason::Superseded,
                format!("{who} stopped sending; another peer of the relay chain continues this transfer"),
            ),
            Stop::Evicted => TransferError::Failed(
                Reason::Busy,
                format!("ended to make room for a known peer ({})", Refusal::Full(Pool::Transfer).reason()),
            ),
        }
    }

    /// Our own end interrupted the transfer (not the peer, not the other half).
    fn is_ours(&self) -> bool {
        matches!(
            self,
            Stop::CancelledHere | Stop::StoppedHere | Stop::Evicted | Stop::Superseded | Stop::Stalled
        )
    }
}

/// The code of a cancel made at this end.
pub(crate) fn cancel_code(direction: Direction) -> Reason {
    match direction {
        Direction::Send => Reason::CancelledBySender,
        Direction::Receive => Reason::CancelledByReceiver,
    }
}

/// What an offer that was not taken says, by its code.
pub(crate) fn refused_text(code: Reason) -> &'static str {
    match code {
        Reason::Expired => "expired: nobody answered in time",
        Reason::NoSpace => "rejected: not enough free space",
        Reason::Busy => "rejected: busy",
        Reason::Unconfirmed => "not confirmed with the sender",
        _ => "rejected",
    }
}

/// The peer's own words, attributed to it: ` (bob: "…")`, or nothing.
pub(crate) fn words(ctx: &Ctx, text: &Option<String>) -> String {
    match text {
        Some(t) if !t.trim().is_empty() => format!(" ({}: \"{}\")", who(ctx), printable(&bounded(t))),
        _ => String::new(),
    }
}

/// What the transfer is moving, for a sentence: the file (or top-level folder) at hand.
fn what(ctx: &Ctx) -> String {
    let file = ctx.view().file;
    if file.is_empty() {
        "the transfer".into()
    } else {
        printable(top_of(&file)).into_owned()
    }
}

/// The peer said why it cannot go on: in plain words by its code, its own words beside them.
fn peer_failed(ctx: &Ctx, code: Reason, text: &Option<String>) -> TransferError {
    let who = who(ctx);
    let said = words(ctx, text);
    match code {
        Reason::Stopped => TransferError::Stopped(match ctx.direction {
            Direction::Send => format!("{who}'s lanyard stopped; sending again resumes"),
            // The receiving end says what it keeps itself (`receive::run`).
            Direction::Receive => format!("{who}'s lanyard stopped"),
        }),
        Reason::Stalled => TransferError::PeerLost(code, format!("{who} saw nothing move for too long{said}")),
        Reason::Superseded => TransferError::PeerLost(code, format!("{who} went on with another peer of the relay chain{said}")),
        Reason::DiskFull => TransferError::Failed(code, format!("{who}'s disk is full{said}")),
        Reason::DiskError => TransferError::Failed(code, format!("{who} cannot write the files{said}")),
        Reason::Busy => TransferError::Failed(code, format!("{who} is busy{said}")),
        Reason::BadData => TransferError::Protocol(code, format!("data failed verification at {who}{said}")),
        Reason::Tampered => TransferError::Protocol(
            code,
            format!("data failed authentication at {who}: it was altered on the way (possible tampering)"),
        ),
        Reason::Protocol => TransferError::Protocol(code, format!("{who} reports a protocol error{said}")),
        _ if said.is_empty() => TransferError::Failed(code, format!("{who} could not go on ({code})")),
        _ => TransferError::Failed(code, format!("{who} could not go on{said}")),
    }
}

/// What both ends say of a stalled transfer.
pub(crate) fn stalled_text(ctx: &Ctx) -> String {
    format!("nothing moved for {} s", ctx.deadline.limit().as_secs())
}

/// The peer as a person knows it: its nick, neutralised, or its short id when it has none.
pub(crate) fn who(ctx: &Ctx) -> String {
    if ctx.nick.is_empty() {
        ctx.peer.short().to_string()
    } else {
        printable(&ctx.nick).into_owned()
    }
}

/// A failed read or write on the transfer connection. The ways a vanished peer shows up (end of
/// stream, reset, broken pipe, a frame cut short, the kernel's keepalive giving up) are one
/// thing to a person: [`Stop::Lost`]. A record that fails authentication is [`Stop::Tampered`]
/// (our own writes never tear a stream: see `SecureWriter`). Anything else is reported as it is.
pub(crate) fn io_stop(e: impl Into<FrameError>) -> Stop {
    use std::io::ErrorKind::*;
    match e.into() {
        FrameError::Truncated => Stop::Lost,
        FrameError::Io(e)
            if matches!(
                e.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | TimedOut | NotConnected
            ) =>
        {
            Stop::Lost
        }
        FrameError::Io(e) if e.kind() == InvalidData => Stop::Tampered,
        FrameError::Io(e) => Stop::Failed(format!("connection failed: {e}")),
        e @ (FrameError::TooLarge { .. } | FrameError::Malformed(_)) => Stop::Protocol(format!("protocol error: {e}")),
    }
}

/// The next frame, unless we are cancelled, the transfer stalls, or the node shuts down first.
pub(crate) async fn next(ctx: &Ctx, reader: &mut SecureReader, also: Option<&CancellationToken>) -> Result<TransferMsg, Stop> {
    let never = CancellationToken::new();
    let also = also.unwrap_or(&never);
    let r = tokio::select! {
        r = reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME) => r,
        _ = also.cancelled() => return Err(Stop::Quiet),
        stop = interrupted(ctx) => return Err(stop),
    };
    ctx.deadline.moved();
    match r {
        Ok(Some(TransferMsg::Cancel { text, .. })) => Err(Stop::CancelledByPeer(text.map(|t| bounded(&t)))),
        Ok(Some(TransferMsg::Error { code, text })) => Err(Stop::PeerFailed(code, text.map(|t| bounded(&t)))),
        Ok(Some(msg)) => Ok(msg),
        Ok(None) => Err(Stop::Lost),
        Err(e) => Err(io_stop(e)),
    }
}

/// What ends any wait of a transfer besides the thing waited for: a cancel here, the node
/// shutting down, our slot given to a known peer, or nothing moving for the stall limit.
pub(crate) async fn interrupted(ctx: &Ctx) -> Stop {
    tokio::select! {
        _ = ctx.cancel.cancelled() => Stop::CancelledHere,
        _ = ctx.shared.cancel.cancelled() => Stop::StoppedHere,
        _ = ctx.evict.cancelled() => Stop::Evicted,
        _ = ctx.supersede.cancelled() => Stop::Superseded,
        _ = ctx.deadline.passed() => Stop::Stalled,
    }
}

/// A write (or other step that moves bytes), unless the transfer is interrupted first. A write
/// under way is not dropped for a cancel or a stop: it finishes (for at most
/// [`FINISH_WRITE`]) so that the reason can still be said between frames, where the peer reads
/// it, instead of tearing a record (see `SecureWriter`). A stalled peer reads nothing: its
/// write is given up at once.
pub(crate) async fn moving<T>(ctx: &Ctx, step: impl Future<Output = Result<T, Stop>>) -> Result<T, Stop> {
    let mut step = std::pin::pin!(step);
    let r = tokio::select! {
        r = &mut step => r,
        stop = interrupted(ctx) => {
            if !matches!(stop, Stop::Stalled) {
                let _ = tokio::time::timeout(FINISH_WRITE, step).await;
            }
            Err(stop)
        }
    };
    ctx.deadline.moved();
    r
}

/// A wait that moves nothing itself (no write to finish), unless the transfer is interrupted.
pub(crate) async fn waiting<T>(ctx: &Ctx, step: impl Future<Output = T>) -> Result<T, Stop> {
    tokio::select! {
        r = step => Ok(r),
        stop = interrupted(ctx) => Err(stop),
    }
}

/// Tell the peer why we stop, where it needs telling (bounded: a peer that stopped reading
/// must not hold us here). Nothing is said on a torn connection: the peer sees it end.
pub(crate) async fn say_stop(ctx: &Ctx, writer: &mut SecureWriter, stop: &Stop) {
    let (code, text) = match stop {
        Stop::CancelledHere => {
            let msg = TransferMsg::Cancel {
                code: cancel_code(ctx.direction),
                text: None,
            };
            let _ = tokio::time::timeout(SAY_STOP_LIMIT, writer.send(&msg)).await;
            return;
        }
        Stop::StoppedHere => (Reason::Stopped, None),
        Stop::Failed(m) => (Reason::Other, Some(bounded(m))),
        Stop::Protocol(m) => (Reason::Protocol, Some(bounded(m))),
        Stop::Corrupt(m) => (Reason::BadData, Some(bounded(m))),
        Stop::Tampered => (Reason::Tampered, None),
        Stop::Disk(code, m) => (*code, Some(bounded(m))),
        Stop::Stalled => (Reason::Stalled, Some(stalled_text(ctx))),
        Stop::Evicted => (Reason::Busy, Some(Refusal::Full(Pool::Transfer).reason().into())),
        Stop::Superseded => (Reason::Superseded, None),
        _ => return,
    };
    let _ = tokio::time::timeout(SAY_STOP_LIMIT, writer.send(&TransferMsg::Error { code, text })).await;
}

/// How long telling the peer why we stop may take.
const SAY_STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What one outgoing stream carries besides the files: the rest of a relayed send's chain, where
/// the receiver's reports on it go, and where the data comes from.
pub(crate) struct Outgoing {
    pub relay: Vec<Hop>,
    /// On an offer a relay passes on: who started the send (and vouched for it).
    pub origin: Option<String>,
    /// Reports on the peers of `relay`, as (peer id, report).
    pub reports: Option<mpsc::UnboundedSender<(String, Report)>>,
    pub producer: Producer,
}

impl Outgoing {
    /// A plain send of local (or shared) files.
    pub fn plain() -> Outgoing {
        Outgoing {
            relay: Vec::new(),
            origin: None,
            reports: None,
            producer: Producer::Files,
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
/// channel (runs on a blocking thread).
pub(crate) type Produce = Box<dyn FnOnce(Vec<u64>, mpsc::Sender<Vec<Chunk>>) + Send>;

/// A file to read and send.
struct SourceFile {
    index: usize,
    path: PathBuf,
    item: Item,
    offset: u64,
    cvs: Arc<Vec<ChainingValue>>,
}

pub(crate) async fn run(ctx: &Ctx, conn: SecureConn, m: &Manifest, out: Outgoing) -> Result<Outcome, TransferError> {
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

async fn exchange(ctx: &Ctx, reader: &mut SecureReader, writer: &mut SecureWriter, m: &Manifest, out: Outgoing) -> Result<Outcome, Stop> {
    let n = m.items.len();
    let Outgoing {
        relay,
        origin,
        reports,
        producer,
    } = out;
    let relay_ids: Vec<String> = relay.iter().map(|h| h.id.clone()).collect();
    writer
        .queue_frame(&TransferMsg::Offer {
            transfer: ctx.wire_id(),
            items: n as u32,
            bytes: m.bytes,
            relay,
            origin,
        })
        .map_err(io_stop)?;
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
    ctx.deadline.hold(super::OFFER_ANSWER_TIMEOUT + ANSWER_GRACE);
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
            let r = collect(ctx, reader, n, &relay_ids, reports.as_ref(), &stop).await;
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
            Err(reason) => outcome.failed.push((item.path.clone(), reason)),
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

/// Renamed top-level items an outcome lists at most: enough to tell a person, bounded whatever
/// the receiver sends.
const MAX_SAVED_AS: usize = 100;

/// Note that the receiver saved `offered` as `saved`, by top-level name (a folder that became
/// `proj (1)` is one entry, not one per file). `saved` comes from the peer: it is only kept if
/// it passes the checks a received name must pass.
pub(crate) fn note_saved_as(list: &mut Vec<(String, String)>, offered: &str, saved: &str) {
    if check_relative(saved).is_err() {
        return;
    }
    let (offered, saved) = (top_of(offered), top_of(saved));
    if offered == saved || list.len() >= MAX_SAVED_AS || list.iter().any(|(o, _)| o == offered) {
        return;
    }
    list.push((offered.to_string(), saved.to_string()));
}

/// The receiver's verdict on one item: where it was saved if not as offered, or why not.
type Verdict = Result<Option<String>, String>;

/// Why the receiver says a file did not arrive: its words when it gave some (about that one
/// file, which a person reads in the list of failures), else the code.
fn file_failure(code: Reason, text: Option<String>) -> String {
    match text {
        Some(t) if !t.trim().is_empty() => bounded(&t),
        _ => code.code().replace('_', " "),
    }
}

/// The receiver's verdict on every item, and from a relay its reports on the peers behind it
/// until it says they are all done.
async fn collect(
    ctx: &Ctx,
    reader: &mut SecureReader,
    n: usize,
    relay: &[String],
    reports: Option<&mpsc::UnboundedSender<(String, Report)>>,
    stop: &CancellationToken,
) -> Result<Vec<Verdict>, Stop> {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; n];
    let mut count = 0;
    let mut relay_done = relay.is_empty();
    while count < n || !relay_done {
        let (index, verdict) = match next(ctx, reader, Some(stop)).await? {
            TransferMsg::FileOk { index, saved_as } => (index, Ok(saved_as)),
            TransferMsg::FileFailed { index, code, text } => (index, Err(file_failure(code, text))),
            TransferMsg::Relayed { peer, report } if relay.contains(&peer) => {
                if let Some(reports) = reports {
                    let _ = reports.send((peer, super::relay::bounded_report(report)));
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
    }
    Ok(verdicts.into_iter().map(|v| v.unwrap_or(Ok(None))).collect())
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
    m: &Manifest,
    offsets: &[u64],
    producer: Producer,
    stop: &CancellationToken,
    meter: &mut Meter,
) -> Result<(), Stop> {
    let fault = ctx.shared.transfers.take_fault();
    // One producing thread for the whole transfer works ahead across files: small files cost
    // no thread start each, and the next file is read while this one is on the wire.
    let (tx, mut rx) = mpsc::channel(PIPE_DEPTH);
    let (free_tx, free_rx) = std::sync::mpsc::channel();
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
            tokio::task::spawn_blocking(move || produce(offsets, tx));
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
fn sent_item(m: &Manifest, i: usize) -> Result<&Item, Stop> {
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
    free_tx: &std::sync::mpsc::Sender<Vec<u8>>,
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
        let _ = free_tx.send(buf);
    }
    Ok(())
}

/// Read every source file in order, each from the offset the receiver asked for (the hashes
/// were made before the offer). Stops when the async side goes away.
fn read_sources(
    files: Vec<SourceFile>,
    confine: Option<Vec<PathBuf>>,
    tx: mpsc::Sender<Vec<Chunk>>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
) {
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
    free: &std::sync::mpsc::Receiver<Vec<u8>>,
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

    #[test]
    fn renamed_items_are_noted_once_by_top_level_name_and_bounded() {
        let mut list = Vec::new();
        note_saved_as(&mut list, "report.pdf", "report (1).pdf");
        note_saved_as(&mut list, "proj/a.txt", "proj (1)/a.txt");
        note_saved_as(&mut list, "proj/b/c.txt", "proj (1)/b/c.txt");
        note_saved_as(&mut list, "same.txt", "same.txt");
        // What a hostile receiver might claim is not shown.
        for bad in ["../../etc/passwd", "/abs", "x\u{1b}[2J", "ok\u{202e}fdp.exe", ""] {
            note_saved_as(&mut list, "evil.txt", bad);
        }
        assert_eq!(
            list,
            vec![
                ("report.pdf".to_string(), "report (1).pdf".to_string()),
                ("proj".to_string(), "proj (1)".to_string())
            ]
        );
        for i in 0..2 * MAX_SAVED_AS {
            note_saved_as(&mut list, &format!("f{i}"), &format!("f{i} (1)"));
        }
        assert_eq!(list.len(), MAX_SAVED_AS);
    }

    fn read(path: &Path, confine: Option<&[PathBuf]>) -> Result<(), String> {
        let meta = std::fs::metadata(path).unwrap();
        let item = Item {
            path: "f".into(),
            size: meta.len(),
            mtime: super::super::mtime_ns(&meta),
            dir: false,
            root: serde_bytes::ByteBuf::new(),
        };
        let (tx, mut rx) = mpsc::channel(64);
        let (_free_tx, free) = std::sync::mpsc::channel();
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
