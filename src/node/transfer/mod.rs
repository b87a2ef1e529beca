//! File transfer: push (an offer the receiver accepts) and pull (list and get from a peer's
//! shares), both verified with BLAKE3, resumable, and each on a connection of its own.
//!
//! - [`wire`]: the messages and limits of a transfer connection.
//! - `source`: what a sender offers, built from local paths or from a share.
//! - `send` / `receive`: the two ends of one stream of files, used by push and pull alike (a
//!   `Get` is answered with an offer of exactly the requested files).
//! - `place`: where received bytes live: partial files, resume keys, the final no-overwrite
//!   placement.
//! - `pull`: list and get, both ends.
//! - `chunks`: files cut into chunks checked on arrival against hashes under the file's root.
//! - `relay` / `tap`: relayed sends — a chain of recipients, each forwarding what it verified.
//! - `progress`: what a face sees of a transfer ([`TransferView`]), coalesced.
//! - `offers`: offers waiting for a person's answer, with their (spooled) manifest.
//! - `manifest`: a received manifest, names spooled to disk, one small record per item kept.
//! - `budget`: what received manifests may cost the node in memory, in all and per peer.
//! - [`names`]: checks on names that arrive from the network.

mod budget;
mod chunks;
mod deadline;
mod dirs;
mod expire;
mod hashing;
pub(crate) mod manifest;
pub mod names;
mod offers;
pub(crate) mod place;
mod progress;
mod pull;
mod receive;
mod records;
mod relay;
mod resume;
mod send;
mod source;
mod space;
mod tap;
pub mod wire;
mod writeback;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::identity::PeerId;
use crate::limits::{ANSWER_GRACE, FIRST_FRAME_TIMEOUT, OFFER_ANSWER_TIMEOUT, REFUSAL_DRAIN};
use crate::net::secure::SecureConn;
use crate::net::wire::Purpose;
use crate::node::share::ShareEntry;
use crate::node::slots::{Activity, Pool, Refusal, Slot};
use crate::node::{Event, NodeHandle, Shared, lock};
pub use crate::reason::Reason;
use crate::store::unix_now_ms;
use crate::text::plural;
pub use offers::{OfferItem, OfferView};
pub use progress::{TransferState, TransferView};
pub use pull::PeerListing;
use wire::{MAX_TRANSFER_FRAME, TransferMsg};

/// How long a transfer waits for an offline peer to come online before dialling what it knows.
const PEER_ONLINE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Send,
    Receive,
}

impl Direction {
    /// The peer's end of a transfer this end sees as `self`.
    pub fn other(self) -> Direction {
        match self {
            Direction::Send => Direction::Receive,
            Direction::Receive => Direction::Send,
        }
    }
}

/// How a transfer ended when it did not simply finish. (A file that failed verification does
/// not end a transfer: it is listed in [`Outcome::failed`].) Each carries a [`Reason`] code
/// besides the sentence for a person; faces act on the code, never on the words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The peer could not be reached at all: nothing was offered.
    #[error("{0}")]
    Unreachable(String),
    /// The offer was not taken: said no, nobody answered, no room, busy.
    #[error("{1}")]
    Rejected(Reason, String),
    /// Either end cancelled (the code says which): partial data is gone on both.
    #[error("{1}")]
    Cancelled(Reason, String),
    /// Either end's program stopped (quit, Ctrl-C, SIGTERM): partial data is kept, and the
    /// transfer resumes.
    #[error("{0}")]
    Stopped(String),
    /// The peer went away mid-way (crashed, network gone, stalled): partial data is kept, and
    /// the same transfer again resumes.
    #[error("{1}")]
    PeerLost(Reason, String),
    /// Our disk refused (full, no permission): partial data is kept.
    #[error("{1}")]
    Disk(Reason, String),
    /// The peer broke the protocol, or data failed verification or authentication.
    #[error("{1}")]
    Protocol(Reason, String),
    /// Anything else. Partial data is kept for a resume.
    #[error("{1}")]
    Failed(Reason, String),
}

impl TransferError {
    fn failed(msg: impl std::fmt::Display) -> Self {
        TransferError::Failed(Reason::Other, msg.to_string())
    }

    /// Why, as a code.
    pub fn reason(&self) -> Reason {
        match self {
            TransferError::Unreachable(_) => Reason::Unreachable,
            TransferError::Stopped(_) => Reason::Stopped,
            TransferError::Rejected(r, _)
            | TransferError::Cancelled(r, _)
            | TransferError::PeerLost(r, _)
            | TransferError::Disk(r, _)
            | TransferError::Protocol(r, _)
            | TransferError::Failed(r, _) => *r,
        }
    }
}

/// What a finished transfer did. A transfer "finishes" even if some files failed; `failed`
/// lists them, and only an empty list means every file was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub transfer: String,
    /// Files verified at the receiver.
    pub files: u32,
    pub bytes: u64,
    /// Bytes that did not have to move because the receiver already held them (resume).
    pub resumed: u64,
    /// (path as offered, reason) for files and folders that did not arrive: a bounded list
    /// (receiver: the first `limits::OUTCOME_LISTED`); `failed_omitted` counts the rest.
    pub failed: Vec<(String, String)>,
    /// Failures beyond those listed in `failed`.
    #[serde(default)]
    pub failed_omitted: u32,
    /// Receiver only: where verified files now are (the first `limits::OUTCOME_LISTED`).
    pub saved: Vec<PathBuf>,
    /// Sender only: top-level files and folders the receiver saved under another name (a free
    /// name, as `report (1).pdf`), as (name offered, name saved); a bounded list.
    #[serde(default)]
    pub saved_as: Vec<(String, String)>,
}

impl Outcome {
    pub fn all_ok(&self) -> bool {
        self.failed.is_empty() && self.failed_omitted == 0
    }

    /// Files and folders that did not arrive, listed or not.
    pub fn failed_count(&self) -> usize {
        self.failed.len() + self.failed_omitted as usize
    }

    /// Note a failure: listed while the list has room, counted beyond.
    pub(crate) fn fail(&mut self, path: String, reason: String) {
        if self.failed.len() < crate::limits::OUTCOME_LISTED {
            self.failed.push((path, reason));
        } else {
            self.failed_omitted += 1;
        }
    }
}

/// A transfer started by this node.
pub struct TransferTask {
    pub id: String,
    join: JoinHandle<Result<Outcome, TransferError>>,
}

/// Files and folders read and hashed, ready to offer ([`NodeHandle::prepare_send`]), with the
/// paths they were read from (kept with the transfer, to offer them again after a restart).
pub struct Prepared(source::Manifest, Vec<PathBuf>);

/// A push to several peers ([`NodeHandle::send_group`]).
pub struct GroupTask {
    pub id: String,
    /// One transfer per recipient.
    pub tasks: Vec<(PeerId, TransferTask)>,
}

impl GroupTask {
    /// Every recipient's result, in the order given.
    pub async fn wait(self) -> Vec<(PeerId, Result<Outcome, TransferError>)> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for (peer, task) in self.tasks {
            out.push((peer, task.wait().await));
        }
        out
    }
}

/// The one id among `ids` that `spec` is, or starts with (at least 4 characters): what a person
/// types for an offer or a transfer.
pub(crate) fn find_id<'a>(ids: impl Iterator<Item = &'a String>, spec: &str, what: &str, missing: &str) -> Result<String, String> {
    let mut matches = Vec::new();
    for id in ids {
        if id == spec {
            return Ok(id.clone());
        }
        if spec.len() >= 4 && id.starts_with(spec) {
            matches.push(id);
        }
    }
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no {what} {spec:?} {missing}")),
        _ => Err(format!("{spec:?} matches several {what}s; give more of the id")),
    }
}

/// Read what is to be sent, off the async workers; a path that can't be read names itself.
/// Dropped before it is done (nobody to send to after all), it stops the walk and the hashing
/// instead of reading a whole tree for nothing.
async fn read_sources(paths: &[PathBuf]) -> anyhow::Result<source::Manifest> {
    struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let paths = paths.to_vec();
    let stop = StopOnDrop(Arc::default());
    let abandoned = stop.0.clone();
    tokio::task::spawn_blocking(move || source::from_local(&paths, &abandoned)).await?
}

impl TransferTask {
    pub async fn wait(self) -> Result<Outcome, TransferError> {
        self.join
            .await
            .unwrap_or_else(|e| Err(TransferError::failed(format!("transfer task ended abnormally: {e}"))))
    }
}

struct Active {
    cancel: CancellationToken,
    /// Raised when another peer of a relay chain re-attaches us to this transfer.
    supersede: CancellationToken,
    /// Raised when the transfer's context is gone (its partial files released).
    gone: CancellationToken,
    view: TransferView,
}

/// Finished transfers kept for faces to review.
const RECENT: usize = 200;

/// The node's transfer bookkeeping: running transfers (for cancel and snapshots), recently
/// finished ones, offers awaiting an answer, partial files in use.
#[derive(Default)]
pub(crate) struct Registry {
    active: Mutex<HashMap<String, Active>>,
    recent: Mutex<VecDeque<TransferView>>,
    offers: offers::Offers,
    /// What received manifests cost, against the node's budget for them.
    budget: budget::Budget,
    answerers: AtomicUsize,
    partials: Mutex<HashSet<String>>,
    /// Held while placing a file by rename (where hard links are unavailable).
    placing: Mutex<()>,
    /// Test hook for the next data stream on this node (see `Fault`).
    fault: Mutex<Option<Fault>>,
    /// Raised by the test to end a `Fault::Hold`.
    hold_release: Mutex<Option<CancellationToken>>,
    /// Disk space promised to running receives.
    space: space::Space,
    /// Offers of relayed transfers taken lately, as (transfer id, digest of the offer): the
    /// same offer again (re-attached by another peer of the chain) is taken without asking.
    accepted: Mutex<VecDeque<(String, [u8; 32])>>,
    /// Vouches from senders of relayed transfers, as (sender, transfer id, digest of its offer).
    vouches: Mutex<VecDeque<(PeerId, String, [u8; 32])>>,
    vouched: tokio::sync::Notify,
    /// Relayed sends this node is making now, by transfer id: what they offer, to whom, and
    /// where their recipients' own verdicts go.
    pub(crate) sending: Mutex<HashMap<String, RelayedSend>>,
    /// Paused sends waiting for their peer, by transfer id.
    paused: Mutex<HashMap<String, resume::Paused>>,
}

/// A relayed send this node started, as the control connections see it: a recipient that lost
/// our vouch asks again (and only its recipients get one), and each recipient's verdict comes
/// back over its own connection.
pub(crate) struct RelayedSend {
    pub digest: [u8; 32],
    pub recipients: Vec<PeerId>,
    pub verdicts: tokio::sync::mpsc::Sender<(PeerId, wire::Report)>,
}

/// Relayed offers remembered for a re-attach.
const ACCEPTED_KEPT: usize = 256;

/// What a test makes the next data stream do once this many bytes of one file went by:
/// stand in, deterministically, for a crash or pulled cable (`Disconnect`), a peer that stops
/// moving data (`Stall`: a sender stops sending, a receiver stops reading, until the transfer
/// ends), or a receiver that falls behind for a while (`Hold`: it stops reading until the
/// test lets it go on, so the sender's writes block mid-way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Disconnect(u64),
    Stall(u64),
    Hold(u64),
    /// The sender flips the file's byte at this offset (counted from where it starts sending).
    Corrupt(u64),
}

impl Registry {
    /// Running transfers per peer (for the peers list's busy mark).
    pub fn running_per_peer(&self) -> HashMap<PeerId, u32> {
        let mut out = HashMap::new();
        for a in lock(&self.active).values() {
            *out.entry(a.view.peer.clone()).or_default() += 1;
        }
        out
    }

    fn take_fault(&self) -> Option<Fault> {
        lock(&self.fault).take()
    }

    /// What ends a `Fault::Hold`.
    fn hold_release(&self) -> CancellationToken {
        lock(&self.hold_release).clone().unwrap_or_default()
    }

    fn remember_accepted(&self, id: &str, digest: [u8; 32]) {
        let mut a = lock(&self.accepted);
        if a.iter().any(|(i, d)| i == id && *d == digest) {
            return;
        }
        if a.len() >= ACCEPTED_KEPT {
            a.pop_front();
        }
        a.push_back((id.to_string(), digest));
    }

    /// A peer vouches for the offer of a relayed transfer it started.
    pub(crate) fn vouch(&self, from: &PeerId, transfer: String, digest: &[u8]) {
        let Ok(digest) = <[u8; 32]>::try_from(digest) else {
            return;
        };
        {
            let mut v = lock(&self.vouches);
            if v.len() >= crate::limits::VOUCHES_KEPT {
                v.pop_front();
            }
            v.push_back((from.clone(), transfer, digest));
        }
        self.vouched.notify_waiters();
    }

    /// The digest to vouch for to `asker`: only to a recipient of a relayed send this node is
    /// making now (anyone else asking is a relay trying to bring in a peer of its own).
    pub(crate) fn vouch_for(&self, transfer: &str, asker: &PeerId) -> Option<[u8; 32]> {
        lock(&self.sending)
            .get(transfer)
            .filter(|s| s.recipients.contains(asker))
            .map(|s| s.digest)
    }

    /// A recipient's own word on how our relayed send `transfer` ended with it. Counted only
    /// from a recipient of that send, for the offer we made; one that floods is not heard.
    pub(crate) fn verdict(&self, from: &PeerId, transfer: &str, digest: &[u8], report: wire::Report) {
        let sending = lock(&self.sending);
        let Some(s) = sending.get(transfer) else {
            return;
        };
        if !s.recipients.contains(from) || s.digest.as_slice() != digest {
            tracing::info!(
                "transfer {transfer}: ignored a verdict from {}, not a recipient of this offer",
                from.short()
            );
            return;
        }
        let _ = s.verdicts.try_send((from.clone(), relay::bounded_report(report)));
    }

    /// What `from` vouched for as transfer `transfer`, waiting for it a little (and asking
    /// `from` again when it is not here yet: a vouch can be lost with a replaced connection).
    async fn vouch_of(
        &self,
        from: &PeerId,
        transfer: &str,
        ask: Option<tokio::sync::mpsc::Sender<crate::net::wire::ControlMsg>>,
    ) -> Option<[u8; 32]> {
        let find = || {
            lock(&self.vouches)
                .iter()
                .rev()
                .find(|(f, t, _)| f == from && t == transfer)
                .map(|(_, _, d)| *d)
        };
        if find().is_none()
            && let Some(tx) = ask
        {
            let _ = tx.try_send(crate::net::wire::ControlMsg::VouchRequest {
                transfer: transfer.to_string(),
            });
        }
        let wait = async {
            loop {
                let notified = self.vouched.notified();
                if let Some(d) = find() {
                    return d;
                }
                notified.await;
            }
        };
        tokio::time::timeout(crate::limits::VOUCH_WAIT, wait).await.ok()
    }

    fn was_accepted(&self, id: &str, digest: &[u8; 32]) -> bool {
        lock(&self.accepted).iter().any(|(i, d)| i == id && d == digest)
    }

    /// A receive of `id` already running is told to stop (a re-attach takes its place); the
    /// token is raised once it is gone.
    fn supersede(&self, id: &str) -> Option<CancellationToken> {
        let active = lock(&self.active);
        let a = active.get(id).filter(|a| a.view.direction == Direction::Receive)?;
        a.supersede.cancel();
        Some(a.gone.clone())
    }
}

/// One running transfer as both ends see it: who, which way, and how to stop it.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub id: String,
    pub peer: PeerId,
    pub nick: String,
    pub direction: Direction,
    pub group: Option<String>,
    pub cancel: CancellationToken,
    /// When the transfer counts as stalled.
    pub deadline: Arc<deadline::Deadline>,
    /// Raised when a known peer needs this (newcomer's) connection slot.
    pub evict: CancellationToken,
    /// The incoming connection's slot, set aside while its offer waits for a person.
    pub parking: Option<crate::node::slots::Parking>,
    /// Raised when another peer of a relay chain takes this receive over.
    pub supersede: CancellationToken,
    /// Raised when this context is dropped.
    gone: CancellationToken,
    /// Receive of an offer a relay passed on: who started the send and vouched for the offer
    /// with this digest (it hears our verdict directly).
    pub vouched: std::sync::OnceLock<(PeerId, [u8; 32])>,
    /// An outgoing send of local paths: those paths, stored with it for a resume.
    sources: Mutex<Option<Vec<PathBuf>>>,
    /// A stopped receive: where the partial files it keeps are.
    partials: Mutex<Option<records::Partials>>,
}

impl Ctx {
    fn new(shared: &Arc<Shared>, wanted_id: Option<&str>, peer: PeerId, nick: String, direction: Direction, group: Option<String>) -> Ctx {
        let cancel = CancellationToken::new();
        let (supersede, gone) = (CancellationToken::new(), CancellationToken::new());
        let ctx = {
            let mut active = lock(&shared.transfers.active);
            let usable = wanted_id.filter(|w| valid_id(w) && !active.contains_key(*w)).map(str::to_string);
            let id = usable.unwrap_or_else(|| {
                loop {
                    let candidate = new_id();
                    if !active.contains_key(&candidate) {
                        break candidate;
                    }
                }
            });
            let ctx = Ctx {
                shared: shared.clone(),
                id,
                peer,
                nick,
                direction,
                group,
                cancel: cancel.clone(),
                deadline: Arc::new(deadline::Deadline::new(shared.config.stall_timeout, Activity::new())),
                evict: CancellationToken::new(),
                parking: None,
                supersede: supersede.clone(),
                gone: gone.clone(),
                vouched: std::sync::OnceLock::new(),
                sources: Mutex::new(None),
                partials: Mutex::new(None),
            };
            let mut view = TransferView::new(&ctx, TransferState::Connecting);
            if direction == Direction::Receive {
                view.state = TransferState::Running;
            }
            active.insert(
                ctx.id.clone(),
                Active {
                    cancel,
                    supersede,
                    gone,
                    view,
                },
            );
            ctx
        };
        // A paused transfer that comes back (offered again) is listed once, as running.
        lock(&shared.transfers.recent).retain(|v| v.transfer != ctx.id);
        ctx.emit(Event::TransferStarted(ctx.view()));
        ctx
    }

    fn emit(&self, event: Event) {
        self.shared.emit(event);
    }

    /// The transfer's id on the wire: its group's for a send to several peers, so that every
    /// hop of a relayed send (and every recipient of a parallel one) knows it by one id.
    pub(crate) fn wire_id(&self) -> String {
        self.group.clone().unwrap_or_else(|| self.id.clone())
    }

    /// The transfer's current view.
    pub(crate) fn view(&self) -> TransferView {
        lock(&self.shared.transfers.active)
            .get(&self.id)
            .map(|a| a.view.clone())
            .unwrap_or_else(|| TransferView::new(self, TransferState::Running))
    }

    /// Change the view and tell the faces (the registry and the event agree: both change under
    /// the registry's lock).
    pub(crate) fn update(&self, change: impl FnOnce(&mut TransferView)) {
        let mut active = lock(&self.shared.transfers.active);
        if let Some(a) = active.get_mut(&self.id) {
            change(&mut a.view);
            self.shared.emit(Event::Progress(a.view.clone()));
        }
    }

    /// Change the view even after it ended (then the one among the recent ones): what a relay
    /// says of a recipient may arrive after the recipient's own word ended its row.
    pub(crate) fn amend(&self, change: impl FnOnce(&mut TransferView)) {
        {
            let mut active = lock(&self.shared.transfers.active);
            if let Some(a) = active.get_mut(&self.id) {
                change(&mut a.view);
                self.shared.emit(Event::Progress(a.view.clone()));
                return;
            }
        }
        let mut recent = lock(&self.shared.transfers.recent);
        if let Some(v) = recent.iter_mut().rev().find(|v| v.transfer == self.id) {
            change(v);
            self.shared.emit(Event::Progress(v.clone()));
        }
    }

    /// Change the view without telling the faces now (the next update carries it).
    pub(crate) fn note(&self, change: impl FnOnce(&mut TransferView)) {
        if let Some(a) = lock(&self.shared.transfers.active).get_mut(&self.id) {
            change(&mut a.view);
        }
    }

    pub(crate) fn set_state(&self, state: TransferState) {
        self.update(|v| v.state = state);
    }

    /// A stopped receive keeps these partial files (dropped if it is cancelled for good).
    pub(crate) fn keep_partials(&self, dir: PathBuf, names: Vec<String>) {
        *lock(&self.partials) = Some(records::Partials::new(dir, names));
    }

    /// Whether this transfer, ended this way, waits to be resumed: stopped at either end, or
    /// its peer gone (when this node resumes by itself).
    fn pauses(&self, e: &TransferError) -> bool {
        match e {
            TransferError::Stopped(_) => true,
            TransferError::PeerLost(Reason::ConnectionLost | Reason::Stalled, _) => self.shared.config.resume,
            _ => false,
        }
    }

    /// Report the end of the transfer to subscribers, once, and store it; the view moves to
    /// the recent list. A send that pauses is offered again once its peer is back.
    async fn report(&self, result: &Result<Outcome, TransferError>) {
        self.end_view(result);
        // Ended: listed among the recent ones from now on, before anyone hears of the end (a
        // cancel that follows it at once finds a paused transfer there, not a running one).
        let view = self.view();
        self.retire();
        // The view's peer: on an offer a relay passed on, who started the send, as in its rows.
        let (transfer, peer, direction) = (self.id.clone(), view.peer.clone(), self.direction);
        // Stored before anyone hears of the end: a cancel of the paused transfer, sent on seeing
        // the event, reads its partial files from this record (and must not be overwritten by it).
        self.store(view).await;
        self.emit(match result {
            Ok(o) => Event::Done {
                transfer,
                peer,
                direction,
                files: o.files,
                bytes: o.bytes,
                failed: o.failed_count() as u32,
            },
            Err(e @ TransferError::Cancelled(..)) => Event::Cancelled {
                transfer,
                peer,
                direction,
                reason: e.to_string(),
                code: e.reason(),
            },
            Err(e) => Event::Error {
                transfer,
                peer,
                direction,
                message: e.to_string(),
                code: e.reason(),
            },
        });
    }

    /// Keep the transfer's view (and what a resume needs) in the database; a paused send is
    /// offered again once its peer is back, and a finished one ends paused sends of the same.
    async fn store(&self, view: TransferView) {
        let sources = lock(&self.sources).clone();
        let partials = lock(&self.partials).clone();
        let (shared, saved, paths) = (self.shared.clone(), view.clone(), sources.clone());
        let stored = crate::node::off_thread(move || records::save(&shared.store, &saved, paths.as_deref(), partials.as_ref())).await;
        if let Err(e) | Ok(Err(e)) = stored {
            tracing::warn!("cannot store transfer {}: {e:#}", view.transfer);
        }
        let Some(sources) = sources else { return };
        match view.state {
            TransferState::Paused if self.shared.config.resume && !self.shared.cancel.is_cancelled() => {
                resume::schedule(&self.shared, view, sources);
            }
            TransferState::Done => resume::sent_again(&self.shared, &self.peer, &sources),
            _ => {}
        }
    }
}

impl Ctx {
    /// Show the transfer as it ended: state, why, and what arrived where.
    pub(crate) fn end_view(&self, result: &Result<Outcome, TransferError>) {
        self.update(|v| {
            let (state, message) = match result {
                Ok(o) if o.all_ok() => (TransferState::Done, None),
                Ok(o) => (
                    TransferState::Done,
                    Some(format!(
                        "{} of {} did not arrive",
                        o.failed_count(),
                        o.failed_count() + o.files as usize
                    )),
                ),
                Err(e @ TransferError::Rejected(..)) => (TransferState::Rejected, Some(e.to_string())),
                Err(e @ TransferError::Cancelled(..)) => (TransferState::Cancelled, Some(e.to_string())),
                Err(e) if self.pauses(e) => (TransferState::Paused, Some(e.to_string())),
                Err(e) => (TransferState::Failed, Some(e.to_string())),
            };
            v.state = state;
            v.message = message;
            v.reason = result.as_ref().err().map(TransferError::reason);
            v.ended_ms = Some(unix_now_ms());
            v.eta_secs = None;
            v.rate = if state == TransferState::Done { v.rate } else { 0 };
            if let Ok(o) = result {
                v.failed = o.failed_count() as u32;
                if v.files == 0 {
                    v.files = o.files + v.failed;
                }
                v.files_done = v.files;
                v.bytes = v.bytes.max(o.bytes);
                v.percent = if v.failed == 0 { 100 } else { v.percent };
                v.failures = o.failed.iter().take(progress::FAILURES_SHOWN).cloned().collect();
                v.saved_as = saved_top(v.saved_to.as_deref(), &o.saved);
            }
        });
    }
}

/// Where the one top-level file or folder of a receive was saved, when all of `saved` lies
/// under one name in `dir`.
fn saved_top(dir: Option<&str>, saved: &[PathBuf]) -> Option<String> {
    let dir = std::path::Path::new(dir?);
    let top = |p: &PathBuf| p.strip_prefix(dir).ok()?.components().next().map(|c| c.as_os_str().to_owned());
    let first = top(saved.first()?)?;
    saved
        .iter()
        .all(|p| top(p).as_ref() == Some(&first))
        .then(|| dir.join(first).display().to_string())
}

impl Ctx {
    /// Move the transfer from the running ones to the recent ones (once).
    fn retire(&self) {
        let Some(done) = lock(&self.shared.transfers.active).remove(&self.id) else {
            return;
        };
        let mut recent = lock(&self.shared.transfers.recent);
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(done.view);
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.gone.cancel();
        self.retire();
    }
}

fn valid_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Keeps offers answerable while held: with none held, offers that need a person are rejected
/// at once instead of waiting for nobody.
pub struct Answerer {
    shared: Arc<Shared>,
}

impl Drop for Answerer {
    fn drop(&mut self) {
        self.shared.transfers.answerers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl NodeHandle {
    /// Push files and folders to a peer. Paths that cannot be read fail here, before anything
    /// is offered.
    pub async fn send(&self, peer: &PeerId, paths: &[PathBuf]) -> anyhow::Result<TransferTask> {
        let manifest = read_sources(paths).await?;
        Ok(self.start_send_as(peer, manifest, None, None, Some(paths.to_vec())))
    }

    /// Push the same files and folders to several peers: relayed (each recipient forwards
    /// what it verified to the next, so the sender uploads once; see `relay`). Each is
    /// accepted or rejected on its own and has a transfer view of its own here, all with the
    /// same `group`. The sources are read and hashed once, before anything is offered.
    pub async fn send_group(&self, peers: &[PeerId], paths: &[PathBuf]) -> anyhow::Result<GroupTask> {
        self.send_to(peers, paths, true).await
    }

    /// As [`NodeHandle::send_group`]; with `relayed` false (or one recipient) as parallel
    /// uploads instead, one connection per recipient.
    pub async fn send_to(&self, peers: &[PeerId], paths: &[PathBuf], relayed: bool) -> anyhow::Result<GroupTask> {
        let prepared = self.prepare_send(paths).await?;
        self.send_prepared(peers, prepared, relayed)
    }

    /// Read and hash what is to be sent, before (or while) the recipients are looked up: for a
    /// tree of many small files this is time the send would otherwise wait.
    pub async fn prepare_send(&self, paths: &[PathBuf]) -> anyhow::Result<Prepared> {
        Ok(Prepared(read_sources(paths).await?, paths.to_vec()))
    }

    /// As [`NodeHandle::send_to`], with what [`NodeHandle::prepare_send`] read.
    pub fn send_prepared(&self, peers: &[PeerId], prepared: Prepared, relayed: bool) -> anyhow::Result<GroupTask> {
        if peers.is_empty() {
            anyhow::bail!("no recipients");
        }
        let Prepared(manifest, paths) = prepared;
        let group = new_id();
        if !relayed || peers.len() < 2 {
            let tasks = peers
                .iter()
                .map(|peer| {
                    let task = self.start_send_as(peer, manifest.clone(), Some(group.clone()), None, Some(paths.clone()));
                    (peer.clone(), task)
                })
                .collect();
            return Ok(GroupTask { id: group, tasks });
        }
        let shared = &self.shared;
        let ctxs: Vec<Arc<Ctx>> = peers
            .iter()
            .map(|peer| {
                Arc::new(Ctx::new(
                    shared,
                    None,
                    peer.clone(),
                    peer_nick(shared, peer),
                    Direction::Send,
                    Some(group.clone()),
                ))
            })
            .collect();
        let mut results = Vec::new();
        let mut tasks = Vec::new();
        for ctx in &ctxs {
            *lock(&ctx.sources) = Some(paths.clone());
            let (tx, rx) = oneshot::channel();
            results.push(tx);
            let join = shared.tracker.spawn(async move {
                rx.await
                    .unwrap_or_else(|_| Err(TransferError::failed("the relayed send ended abnormally")))
            });
            tasks.push((ctx.peer.clone(), TransferTask { id: ctx.id.clone(), join }));
        }
        shared
            .tracker
            .spawn(relay::send(shared.clone(), group.clone(), manifest, ctxs, results));
        Ok(GroupTask { id: group, tasks })
    }

    /// Start a plain send; `id`: the transfer it resumes, `sources`: the local paths it was
    /// read from (stored for a resume).
    fn start_send_as(
        &self,
        peer: &PeerId,
        manifest: source::Manifest,
        group: Option<String>,
        id: Option<&str>,
        sources: Option<Vec<PathBuf>>,
    ) -> TransferTask {
        let shared = self.shared.clone();
        let nick = peer_nick(&shared, peer);
        let ctx = Ctx::new(&shared, id, peer.clone(), nick, Direction::Send, group);
        *lock(&ctx.sources) = sources;
        // Named while it connects, not only once offered.
        let name = manifest.label();
        ctx.update(|v| v.name = name);
        let id = ctx.id.clone();
        let join = shared.tracker.spawn(async move {
            let result = match connect(&ctx.shared, &ctx.peer).await {
                Ok(conn) => send::run(&ctx, conn, &manifest, send::Outgoing::plain()).await,
                Err(e) => Err(e),
            };
            ctx.report(&result).await;
            result
        });
        TransferTask { id, join }
    }

    /// Running transfers, then recently finished ones (newest last).
    pub fn transfers(&self) -> Vec<TransferView> {
        let mut running: Vec<TransferView> = lock(&self.shared.transfers.active).values().map(|a| a.view.clone()).collect();
        running.sort_by(|a, b| a.started_ms.cmp(&b.started_ms).then_with(|| a.transfer.cmp(&b.transfer)));
        let mut all: Vec<TransferView> = lock(&self.shared.transfers.recent).iter().cloned().collect();
        all.extend(running);
        all
    }

    /// The full id of the running (or paused) transfer `spec` names (an id or a prefix of at
    /// least 4): one transfer, or a send to several peers by its group id (the id every hop
    /// knows it by).
    pub fn find_transfer(&self, spec: &str) -> Result<String, String> {
        let active = lock(&self.shared.transfers.active);
        let paused: Vec<String> = lock(&self.shared.transfers.recent)
            .iter()
            .filter(|v| v.state == TransferState::Paused)
            .map(|v| v.transfer.clone())
            .collect();
        let mut ids: Vec<&String> = active.keys().chain(paused.iter()).collect();
        for a in active.values() {
            if let Some(g) = &a.view.group
                && !ids.contains(&g)
            {
                ids.push(g);
            }
        }
        find_id(ids.into_iter(), spec, "transfer", "is running or paused (see `lanyard transfers`)")
    }

    /// Offers waiting for an answer, oldest first.
    pub fn offers(&self) -> Vec<OfferView> {
        self.shared.transfers.offers.views()
    }

    /// A page of a waiting offer's manifest (at most 1,000 entries); `None` if no such offer.
    pub async fn offer_items(&self, id: &str, offset: usize, limit: usize) -> Option<Vec<OfferItem>> {
        let manifest = self.shared.transfers.offers.manifest(id)?;
        let limit = limit.min(offers::MAX_OFFER_PAGE);
        // The names are in the spool file: read them off the async workers.
        let page = tokio::task::spawn_blocking(move || manifest.page(offset, limit)).await.ok()?;
        match page {
            Ok(items) => Some(items.into_iter().map(OfferItem::from).collect()),
            Err(e) => {
                tracing::warn!("cannot read an offer's names back: {e}");
                None
            }
        }
    }

    /// Bytes charged to the node's manifest budget now, and the most ever charged at once.
    #[doc(hidden)]
    pub fn manifest_budget_use(&self) -> (usize, usize) {
        self.shared.transfers.budget.usage()
    }

    /// The full id of the waiting offer `spec` names (an id or a prefix of at least 4).
    pub fn find_offer(&self, spec: &str) -> Result<String, String> {
        self.shared.transfers.offers.find(spec)
    }

    /// List a folder of a peer's shares ("" for the list of shares): its first
    /// `limits::LISTING_KEPT` entries.
    pub async fn list(&self, peer: &PeerId, path: &str) -> Result<Vec<ShareEntry>, TransferError> {
        Ok(self.list_counted(peer, path).await?.entries)
    }

    /// As [`NodeHandle::list`], also counting the entries beyond those kept.
    pub async fn list_counted(&self, peer: &PeerId, path: &str) -> Result<PeerListing, TransferError> {
        let conn = connect(&self.shared, peer).await?;
        pull::list(&self.shared, conn, path).await
    }

    /// Pull paths from a peer's shares into `to` (default: the download dir).
    pub async fn get(&self, peer: &PeerId, paths: &[String], to: Option<PathBuf>) -> anyhow::Result<TransferTask> {
        if paths.is_empty() || paths.len() > wire::MAX_GET_PATHS {
            anyhow::bail!("give 1 to {} paths", wire::MAX_GET_PATHS);
        }
        let shared = self.shared.clone();
        let dest = to.unwrap_or_else(|| shared.config.download_dir.clone());
        let nick = peer_nick(&shared, peer);
        let ctx = Ctx::new(&shared, None, peer.clone(), nick, Direction::Receive, None);
        ctx.note(|v| v.saved_to = Some(dest.display().to_string()));
        let id = ctx.id.clone();
        let paths = paths.to_vec();
        let join = shared.tracker.spawn(async move {
            let result = match connect(&ctx.shared, &ctx.peer).await {
                Ok(conn) => pull::get(&ctx, conn, paths, dest).await,
                Err(e) => Err(e),
            };
            ctx.report(&result).await;
            result
        });
        Ok(TransferTask { id, join })
    }

    /// Stop a running transfer, or a paused one for good; both ends remove its partial data.
    /// False if no such transfer.
    pub fn cancel_transfer(&self, id: &str) -> bool {
        if self.cancel_running(id) {
            return true;
        }
        resume::cancel(&self.shared, id)
    }

    /// Resume a paused send now, without waiting to see its peer online. `Err` says why not.
    pub fn resume_transfer(&self, id: &str) -> Result<String, String> {
        resume::now(&self.shared, id)
    }

    fn cancel_running(&self, id: &str) -> bool {
        let active = lock(&self.shared.transfers.active);
        if let Some(a) = active.get(id) {
            a.cancel.cancel();
            return true;
        }
        // A group id: every transfer of that send to several peers.
        let mut any = false;
        for a in active.values().filter(|a| a.view.group.as_deref() == Some(id)) {
            a.cancel.cancel();
            any = true;
        }
        any
    }

    /// Answer an offer announced by `Event::Offer`; `always` also trusts the peer from now on.
    pub async fn answer_offer(&self, id: &str, accept: bool, always: bool) -> bool {
        let Some((peer, tx)) = self.shared.transfers.offers.take(id) else {
            return false;
        };
        if accept
            && always
            && let Err(e) = self.set_trusted(&peer, true).await
        {
            tracing::warn!("cannot record trust: {e:#}");
        }
        // A person took this peer's offer: it has standing from now on (see `limits`).
        if accept && let Some(p) = self.shared.peers().get_mut(&peer) {
            p.earned = true;
        }
        self.shared.emit(Event::OfferClosed {
            transfer: id.to_string(),
            reason: if accept { "accepted" } else { "rejected" }.into(),
        });
        tx.send(accept).is_ok()
    }

    /// Declare that a face will answer offers for as long as the guard lives.
    pub fn answer_offers(&self) -> Answerer {
        self.shared.transfers.answerers.fetch_add(1, Ordering::SeqCst);
        Answerer {
            shared: self.shared.clone(),
        }
    }

    /// Test hook: the next file streamed by this node (either direction) breaks its
    /// connection after `bytes` bytes, as a crash or a pulled cable would.
    #[doc(hidden)]
    pub fn inject_disconnect_after(&self, bytes: u64) {
        *lock(&self.shared.transfers.fault) = Some(Fault::Disconnect(bytes.max(1)));
    }

    /// Test hook: the next file this node receives stops being read after `bytes` bytes until
    /// the returned token is cancelled (a receiver that falls behind; the sender's writes block).
    #[doc(hidden)]
    pub fn inject_hold_after(&self, bytes: u64) -> CancellationToken {
        let release = CancellationToken::new();
        *lock(&self.shared.transfers.hold_release) = Some(release.clone());
        *lock(&self.shared.transfers.fault) = Some(Fault::Hold(bytes.max(1)));
        release
    }

    /// Test hook: the next file this node sends has its byte at `offset` (from where the send
    /// starts) flipped on the way out, as a bad disk or bad memory would: after encryption the
    /// record is authentic, so only the receiver's chunk check can catch it.
    #[doc(hidden)]
    pub fn inject_corrupt_at(&self, offset: u64) {
        *lock(&self.shared.transfers.fault) = Some(Fault::Corrupt(offset));
    }

    /// Test hook: assume the download folder's file system has `bytes` free (`None`: ask it).
    #[doc(hidden)]
    pub fn pretend_free_space(&self, bytes: Option<u64>) {
        self.shared.transfers.space.pretend_free(bytes);
    }

    /// Test hook: the next file this node sends or receives stops moving after `bytes` bytes
    /// (until the transfer is cancelled or stalls).
    #[doc(hidden)]
    pub fn inject_stall_after(&self, bytes: u64) {
        *lock(&self.shared.transfers.fault) = Some(Fault::Stall(bytes.max(1)));
    }
}

fn peer_nick(shared: &Shared, peer: &PeerId) -> String {
    shared.peers().get(peer).map(|p| p.nick.clone()).unwrap_or_default()
}

/// Open a transfer connection of its own to `peer`.
async fn connect(shared: &Arc<Shared>, peer: &PeerId) -> Result<SecureConn, TransferError> {
    // A peer known from an earlier run may be listening somewhere else now: give its control
    // connection a moment to come up, which brings its current address.
    let node = NodeHandle { shared: shared.clone() };
    if !node.is_online(peer) {
        node.wait_online(peer, PEER_ONLINE_WAIT).await;
    }
    dial_any(shared, peer, Vec::new()).await
}

/// A transfer connection to `peer` at the first of `addrs`, then of the addresses we know for
/// it, that answers with its key.
pub(crate) async fn dial_any(
    shared: &Arc<Shared>,
    peer: &PeerId,
    mut addrs: Vec<std::net::SocketAddr>,
) -> Result<SecureConn, TransferError> {
    for a in shared.peers().get(peer).map(|p| p.dial_addrs.clone()).unwrap_or_default() {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let mut last = format!("no known address for peer {}", peer.short());
    for addr in addrs {
        match crate::node::conn::dial(shared, addr, Some(peer), Purpose::Transfer).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(TransferError::Unreachable(last))
}

/// Tell a transfer connection we won't serve why, then close it. Its unread offer is read and
/// dropped for a moment first: closing on unread data resets the connection, and the reset can
/// overtake the reason (bounded in time and in how many at once).
pub(crate) async fn refuse(shared: &Shared, mut conn: SecureConn, refusal: Refusal) {
    let _ = tokio::time::timeout(
        REFUSAL_DRAIN,
        conn.writer.send(&TransferMsg::Error {
            code: Reason::Busy,
            text: Some(refusal.reason().into()),
        }),
    )
    .await;
    let Ok(_draining) = shared.draining.clone().try_acquire_owned() else {
        return;
    };
    let _ = tokio::time::timeout(REFUSAL_DRAIN, conn.writer.shutdown()).await;
    let drain = async {
        while let Ok(chunk) = conn.reader.read_some(usize::MAX).await {
            if chunk.is_empty() {
                break;
            }
        }
    };
    tokio::select! {
        _ = shared.cancel.cancelled() => {}
        _ = tokio::time::timeout(REFUSAL_DRAIN, drain) => {}
    }
}

/// A transfer connection from a peer: an offer to receive, or a list/get on our shares.
pub(crate) async fn serve_incoming(shared: Arc<Shared>, mut conn: SecureConn, slot: Slot) {
    let first = tokio::select! {
        _ = shared.cancel.cancelled() => return,
        _ = slot.evict.cancelled() => return refuse(&shared, conn, Refusal::Full(Pool::Transfer)).await,
        r = tokio::time::timeout(FIRST_FRAME_TIMEOUT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)) => r,
    };
    let from = conn.remote.addr;
    let msg = match first {
        Ok(Ok(Some(msg))) => msg,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::info!("dropped transfer connection from {from}: {e}"),
        Err(_) => return tracing::info!("dropped transfer connection from {from}: said nothing"),
    };
    let peer = conn.remote.id.clone();
    let nick = conn.remote.hello.nick.clone();
    // The connection's slot knows when it last moved and whether it must make room.
    let watched = |mut ctx: Ctx| {
        ctx.deadline = Arc::new(deadline::Deadline::new(shared.config.stall_timeout, slot.activity.clone()));
        ctx.evict = slot.evict.clone();
        ctx.parking = Some(slot.parking());
        ctx
    };
    match msg {
        TransferMsg::Offer {
            transfer,
            items,
            bytes,
            relay,
            origin,
        } => {
            // Another peer of a relay chain re-attaches us: the receive it replaces (stuck
            // behind a relay that died or stalled) stops first and lets go of its partial files.
            // Only a relayed offer can do that (a plain send never takes over a transfer).
            let relayed = origin.is_some() || !relay.is_empty();
            if let Some(gone) = relayed.then(|| shared.transfers.supersede(&transfer)).flatten() {
                tracing::info!("transfer {transfer}: re-attached by {}", peer.short());
                tokio::select! {
                    _ = gone.cancelled() => {}
                    _ = tokio::time::sleep(crate::limits::REATTACH_WAIT) => {}
                    _ = shared.cancel.cancelled() => return,
                }
            }
            let ctx = watched(Ctx::new(&shared, Some(&transfer), peer, nick, Direction::Receive, None));
            let dest = shared.config.download_dir.clone();
            ctx.note(|v| v.saved_to = Some(dest.display().to_string()));
            let header = receive::Header {
                items,
                bytes,
                relay,
                origin,
            };
            let result = receive::run(&ctx, conn, header, &dest, receive::Decision::Ask).await;
            // The connection is closed: its slot is free before the end is reported and stored.
            drop(slot);
            relay::tell_origin(&ctx, &result);
            log_end(&ctx, &result);
            ctx.report(&result).await;
        }
        TransferMsg::List { path } => pull::serve_list(&shared, conn, &path).await,
        TransferMsg::Get { transfer, paths } => {
            let ctx = watched(Ctx::new(&shared, Some(&transfer), peer, nick, Direction::Send, None));
            let result = pull::serve_get(&ctx, conn, paths).await;
            drop(slot);
            log_end(&ctx, &result);
            ctx.report(&result).await;
        }
        other => {
            tracing::info!(
                "dropped transfer connection from {from}: unexpected first message {}",
                msg_name(&other)
            );
        }
    }
}

fn log_end(ctx: &Ctx, result: &Result<Outcome, TransferError>) {
    match result {
        Ok(o) if o.all_ok() => tracing::info!(
            "transfer {} with {}: {} verified",
            ctx.id,
            ctx.peer.short(),
            plural(o.files, "file")
        ),
        Ok(o) => tracing::info!(
            "transfer {} with {}: {} failed",
            ctx.id,
            ctx.peer.short(),
            plural(o.failed_count(), "file")
        ),
        Err(e) => tracing::info!("transfer {} with {}: {e}", ctx.id, ctx.peer.short()),
    }
}

/// A message's kind, for logs and protocol errors (never its hostile contents).
pub(crate) fn msg_name(m: &TransferMsg) -> &'static str {
    match m {
        TransferMsg::Offer { .. } => "offer",
        TransferMsg::Items { .. } => "items",
        TransferMsg::List { .. } => "list",
        TransferMsg::Get { .. } => "get",
        TransferMsg::Listing { .. } => "listing",
        TransferMsg::Accept { .. } => "accept",
        TransferMsg::Reject { .. } => "reject",
        TransferMsg::FileStart { .. } => "file_start",
        TransferMsg::Data { .. } => "data",
        TransferMsg::Hashes { .. } => "hashes",
        TransferMsg::FileEnd => "file_end",
        TransferMsg::File { .. } => "file",
        TransferMsg::Relayed { .. } => "relayed",
        TransferMsg::RelayDone => "relay_done",
        TransferMsg::FileAbort { .. } => "file_abort",
        TransferMsg::FileOk { .. } => "file_ok",
        TransferMsg::FileFailed { .. } => "file_failed",
        TransferMsg::Done => "done",
        TransferMsg::Cancel { .. } => "cancel",
        TransferMsg::Error { .. } => "error",
    }
}

/// Ask the faces about an offer: `Ok` when accepted, else the code and words the sender is
/// told (nobody can answer, nobody does in time, or the transfer is cancelled meanwhile).
/// `origin`: the peer that started a relayed send, shown as the offer's sender (the relay that
/// passed it on as `via`).
async fn ask(ctx: &Ctx, bytes: u64, manifest: Arc<manifest::Manifest>, origin: Option<&PeerId>) -> Result<(), (Reason, String)> {
    let reg = &ctx.shared.transfers;
    let rejected = || (Reason::Rejected, String::new());
    if reg.answerers.load(Ordering::SeqCst) == 0 {
        return Err(rejected());
    }
    let first = {
        let m = manifest.clone();
        tokio::task::spawn_blocking(move || m.page(0, offers::OFFER_NAMES)).await
    };
    let names = match first {
        Ok(Ok(items)) => items.into_iter().map(|i| i.path).collect(),
        _ => return Err(rejected()),
    };
    let (tx, rx) = oneshot::channel();
    let now = unix_now_ms();
    let sender = origin.unwrap_or(&ctx.peer);
    let view = OfferView {
        transfer: ctx.id.clone(),
        peer: sender.clone(),
        nick: if origin.is_some() {
            peer_nick(&ctx.shared, sender)
        } else {
            ctx.nick.clone()
        },
        host: ctx.shared.peers().get(sender).map(|p| p.host.clone()).unwrap_or_default(),
        via: origin.map(|_| ctx.nick.clone()),
        files: manifest.len() as u32,
        bytes,
        names,
        received_ms: now,
        expires_ms: now + OFFER_ANSWER_TIMEOUT.as_millis() as u64,
    };
    // Past a cap of waiting offers: no room to wait, as no slot would be.
    reg.offers
        .insert(view.clone(), manifest, tx, ctx.parking.clone())
        .map_err(|why| (Reason::Busy, why.to_string()))?;
    ctx.update(|v| {
        v.state = TransferState::Waiting;
        v.files = view.files;
        v.total = bytes;
    });
    ctx.emit(Event::Offer(view));
    // A person decides: the offer's own deadline, not the stall limit, bounds this wait.
    ctx.deadline.hold(OFFER_ANSWER_TIMEOUT + ANSWER_GRACE);
    let answer = tokio::select! {
        // Answered through `answer_offer`, which closed the offer.
        r = rx => if r.unwrap_or(false) { Ok(()) } else { Err(rejected()) },
        _ = tokio::time::sleep(OFFER_ANSWER_TIMEOUT) => {
            forget_offer(ctx, "expired");
            Err((
                Reason::Expired,
                format!("nobody answered within {} minutes", OFFER_ANSWER_TIMEOUT.as_secs() / 60),
            ))
        }
        _ = ctx.cancel.cancelled() => {
            forget_offer(ctx, "cancelled");
            Err(rejected())
        }
        _ = ctx.shared.cancel.cancelled() => Err(rejected()),
    };
    ctx.deadline.release();
    if answer.is_ok() {
        ctx.set_state(TransferState::Running);
    }
    answer
}

/// Drop an offer nobody will answer any more, telling the faces why.
fn forget_offer(ctx: &Ctx, reason: &str) {
    if ctx.shared.transfers.offers.remove(&ctx.id) {
        ctx.emit(Event::OfferClosed {
            transfer: ctx.id.clone(),
            reason: reason.to_string(),
        });
    }
}

pub(crate) use expire::at_start as expire_partials;
pub(crate) use resume::load as load_records;

/// Unix nanoseconds of a file's modification time (0 when the platform has none).
pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The top-level name of a manifest path.
pub(crate) fn top_of(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn vouches_and_verdicts_are_for_the_recipients_of_that_offer_only() {
        let reg = Registry::default();
        let id = || Identity::generate().unwrap().id().clone();
        let (carol, mallory) = (id(), id());
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        lock(&reg.sending).insert(
            "00000000000000aa".into(),
            RelayedSend {
                digest: [7; 32],
                recipients: vec![carol.clone()],
                verdicts: tx,
            },
        );
        assert_eq!(reg.vouch_for("00000000000000aa", &carol), Some([7; 32]));
        assert_eq!(reg.vouch_for("00000000000000aa", &mallory), None);
        assert_eq!(reg.vouch_for("00000000000000bb", &carol), None);
        let verified = || wire::Report::Finished {
            files: 1,
            bytes: 45,
            failed: 0,
            reason: None,
            saved_as: Vec::new(),
        };
        // A non-recipient's word, and a recipient's on another offer, are not heard.
        reg.verdict(&mallory, "00000000000000aa", &[7; 32], verified());
        reg.verdict(&carol, "00000000000000aa", &[8; 32], verified());
        assert!(rx.try_recv().is_err());
        reg.verdict(&carol, "00000000000000aa", &[7; 32], verified());
        assert_eq!(rx.try_recv().ok(), Some((carol, verified())));
    }
}
