//! What a node reports, in order. Every event carries a sequence number; a face that falls
//! behind (the stream is bounded) is told so and takes a fresh [`Snapshot`](super::Snapshot)
//! instead of drawing a wrong picture.
//!
//! Events carry state, not deltas (a transfer's whole view, a conversation's unread count), so
//! a face that applies an event its snapshot already reflects draws the same picture: a face
//! subscribes first, then takes the snapshot, and applies every event after it.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::lock;
use super::transfer::{Direction, OfferView, Reason, TransferView};
use crate::identity::PeerId;

/// Enough for a 10,000-line chat burst to reach a `serve --json` reader without lagging.
const EVENT_BUFFER: usize = 16 * 1024;

/// One received file, in a [`Event::FilesReceived`] batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedFile {
    /// Where it now is (absolute).
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Listening {
        id: PeerId,
        nick: String,
        addr: String,
    },
    /// Seen (by mDNS) but not connected yet; its id is unproven until a handshake.
    PeerDiscovered {
        id: PeerId,
        nick: String,
        host: String,
    },
    /// Its mDNS record went away (its connection, if any, decides whether it is online).
    PeerLost {
        id: PeerId,
    },
    PeerUp {
        id: PeerId,
        nick: String,
        host: String,
        addr: String,
    },
    PeerDown {
        id: PeerId,
        nick: String,
        reason: String,
    },
    PeerRenamed {
        id: PeerId,
        old: String,
        new: String,
    },
    /// Its record and pinned key were dropped (`forget`).
    PeerForgotten {
        id: PeerId,
    },
    TrustChanged {
        id: PeerId,
        trusted: bool,
    },
    /// Something a user should know that concerns no single operation (a refused spoofer, an
    /// unreachable --peer).
    Warning {
        message: String,
    },
    /// The locker: a copy of deposit `deposit` (named `name`) changed. `change`: `held` (this
    /// node now holds it for `peer`, its owner), `dropped` (it no longer does: its owner dropped
    /// it, it expired, or it failed its check), `placed` (one of ours now has a verified copy on
    /// `peer`), `copied` (one of ours was copied to `peer` from another holder: a repair).
    Deposit {
        deposit: String,
        name: String,
        change: String,
        peer: PeerId,
    },
    /// Our deposits as recorded now (whole, as in the snapshot): sent when any of them, or a
    /// holder's copy of one, changed.
    Deposits {
        deposits: Vec<super::locker::DepositView>,
    },
    /// A LocalSend device was heard of, or said something new about itself.
    LocalSendDevice {
        device: super::localsend::Device,
    },
    /// A peer's chat line, shown once (a resend of the same id is not reported again).
    ChatReceived {
        id: String,
        from: PeerId,
        nick: String,
        /// For `#all` rather than for us alone.
        room: bool,
        text: String,
        /// The sender's clock, Unix milliseconds.
        sent_ms: u64,
        /// Unread lines in its conversation, this one included.
        unread: u32,
    },
    /// One of our lines is stored and on its way (so every face shows lines said elsewhere).
    ChatQueued {
        id: String,
        /// A peer id, or `#all`.
        to: String,
        recipients: Vec<PeerId>,
        text: String,
        sent_ms: u64,
    },
    /// These lines of ours went out to `to` (in this order) and await its acknowledgement.
    ChatSent {
        to: PeerId,
        ids: Vec<String>,
    },
    /// The connection to `to` ended before it acknowledged these lines: queued again, resent on
    /// the next connection.
    ChatRequeued {
        to: PeerId,
        ids: Vec<String>,
    },
    /// A recipient acknowledged one of our lines.
    ChatDelivered {
        id: String,
        to: PeerId,
    },
    /// A recipient would not store one of our lines (over one of its budgets): final, it is not
    /// resent. `reason` is the recipient's words ("too many messages, try later").
    ChatRefused {
        id: String,
        to: PeerId,
        reason: String,
    },
    /// A conversation was read up to its last line (its unread count is 0).
    ChatRead {
        conversation: String,
    },
    /// A peer offers files and someone must answer (`accept` / `reject`).
    Offer(OfferView),
    /// An offer is no longer waiting for an answer: answered here or elsewhere, timed out, or
    /// withdrawn by its sender.
    OfferClosed {
        transfer: String,
        /// `accepted`, `rejected`, `expired`, `withdrawn`.
        reason: String,
    },
    /// A transfer began (its view, state `connecting` or `waiting`).
    TransferStarted(TransferView),
    /// A transfer's view changed: at most a few times a second while bytes move, and at every
    /// change of state.
    Progress(TransferView),
    /// Files of a receive were verified and placed; one event per batch, not per file, so a
    /// 100,000-file receive does not flood the stream.
    FilesReceived {
        transfer: String,
        peer: PeerId,
        files: Vec<ReceivedFile>,
    },
    /// A transfer finished; `failed` files did not arrive (0: every file verified).
    Done {
        transfer: String,
        peer: PeerId,
        direction: Direction,
        files: u32,
        bytes: u64,
        failed: u32,
    },
    /// A transfer ended early: refused, failed, or stopped (`code` says which; a stopped one
    /// keeps its partial data and resumes).
    Error {
        transfer: String,
        peer: PeerId,
        direction: Direction,
        message: String,
        code: Reason,
    },
    /// Cancelled by either end (`code`): partial data is gone on both.
    Cancelled {
        transfer: String,
        peer: PeerId,
        direction: Direction,
        /// What happened, in words for a person.
        reason: String,
        code: Reason,
    },
}

/// An event and its place in the node's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The sending side: numbers events in the order subscribers receive them.
pub(crate) struct Emitter {
    tx: broadcast::Sender<Envelope>,
    /// The last number given out; held while sending so numbers and channel order agree.
    seq: Mutex<u64>,
}

impl Emitter {
    pub fn new() -> Emitter {
        Emitter::with_capacity(EVENT_BUFFER)
    }

    fn with_capacity(events: usize) -> Emitter {
        Emitter {
            tx: broadcast::channel(events).0,
            seq: Mutex::new(0),
        }
    }

    pub fn emit(&self, event: Event) {
        let mut seq = lock(&self.seq);
        *seq += 1;
        let _ = self.tx.send(Envelope { seq: *seq, event });
    }

    /// The number of the last event sent.
    pub fn seq(&self) -> u64 {
        *lock(&self.seq)
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription { rx: self.tx.subscribe() }
    }
}

/// A face fell behind: `missed` events were dropped. Take a snapshot and carry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{missed} events were missed (take a new snapshot)")]
pub struct Lagged {
    pub missed: u64,
}

/// Why the next event isn't there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    #[error(transparent)]
    Lagged(#[from] Lagged),
    /// The node shut down.
    #[error("the node stopped")]
    Closed,
}

/// A face's view of the event stream.
pub struct Subscription {
    rx: broadcast::Receiver<Envelope>,
}

impl Subscription {
    /// The next event with its sequence number.
    pub async fn next(&mut self) -> Result<Envelope, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(missed) => RecvError::Lagged(Lagged { missed }),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The next event (for faces that don't track sequence numbers).
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        self.next().await.map(|e| e.event)
    }

    /// An event already waiting, if any (`Ok(None)`: nothing yet).
    pub fn try_next(&mut self) -> Result<Option<Envelope>, RecvError> {
        match self.rx.try_recv() {
            Ok(e) => Ok(Some(e)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(Lagged { missed })),
            Err(broadcast::error::TryRecvError::Closed) => Err(RecvError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(n: u64) -> Event {
        Event::Warning { message: n.to_string() }
    }

    #[tokio::test]
    async fn a_face_that_falls_behind_is_told_how_far_and_resumes_in_order() {
        let emitter = Emitter::with_capacity(4);
        let mut sub = emitter.subscribe();
        for n in 1..=10 {
            emitter.emit(warning(n));
        }
        assert_eq!(sub.next().await, Err(RecvError::Lagged(Lagged { missed: 6 })));
        let seqs: Vec<u64> = std::iter::from_fn(|| sub.try_next().ok().flatten().map(|e| e.seq)).collect();
        assert_eq!(seqs, [7, 8, 9, 10]);
        assert_eq!(emitter.seq(), 10);
        assert_eq!(sub.try_next(), Ok(None));
    }
}
