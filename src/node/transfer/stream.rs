//! What the two ends of a stream of files share: why a stream stopped ([`Stop`]) and how
//! that reads to a person, reading the next message unless the transfer is interrupted, moving
//! bytes under the stall limit, and telling the peer why we stop.

use tokio_util::sync::CancellationToken;

use super::ctx::Ctx;
use super::error::{Direction, TransferError};
use super::file_names::top_of;
use super::wire::{MAX_TRANSFER_FRAME, Reason, TransferMsg, bounded};
use crate::limits::{FINISH_WRITE, SPARE_SEGMENTS};
use crate::net::frame::FrameError;
use crate::net::secure::{SecureReader, SecureWriter};
use crate::node::slots::{Pool, Refusal};
use crate::text::printable;

pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket (and written behind it on the other side).
pub(crate) const PIPE_DEPTH: usize = 4;

/// Where written or sent segment buffers go back for reuse, and where they are taken from.
pub(crate) type SpareTx = std::sync::mpsc::SyncSender<Vec<u8>>;
pub(crate) type SpareRx = std::sync::mpsc::Receiver<Vec<u8>>;

/// A list of spare segment buffers that holds [`SPARE_SEGMENTS`] at most: a buffer handed
/// back when it is full (`try_send`) is freed instead, so memory stays bounded however
/// the two ends' pace differs (and whether or not the other end takes buffers at all).
pub(crate) fn spares() -> (SpareTx, SpareRx) {
    std::sync::mpsc::sync_channel(SPARE_SEGMENTS)
}

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
    pub(super) fn is_ours(&self) -> bool {
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
pub(super) fn what(ctx: &Ctx) -> String {
    let file = ctx.view().file;
    if file.is_empty() {
        "the transfer".into()
    } else {
        printable(top_of(&file)).into_owned()
    }
}

/// The peer said why it cannot go on: in plain words by its code, its own words beside them.
pub(super) fn peer_failed(ctx: &Ctx, code: Reason, text: &Option<String>) -> TransferError {
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
        _ = ctx.peer_cancel.cancelled() => Stop::CancelledByPeer(None),
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
pub(super) const SAY_STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);
