//! The face API as data: every call a face can make ([`Request`]) and what comes back
//! ([`Reply`]). The same [`execute`] runs a request whether it came over the control socket
//! from another process or from a face holding the node itself, so a one-shot command, the TUI
//! and `serve` can each do everything, also against a node that already runs.
//!
//! A request gets a stream of replies that ends with `Done` or `Failed` (a subscription never
//! ends on its own: its client hangs up).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Envelope, Event, RecvError, Snapshot};
/// Lines a `History` call answers at most: the faces page with it.
/// How long a command waits at exit for blocking threads its stopped node left running.
pub use crate::limits::EXIT_WAIT;
pub use crate::limits::HISTORY_PAGE;
/// An exported identity's largest size (a face reads no more of a file it is given).
pub use crate::limits::MAX_IDENTITY_EXPORT;

// What a face may name besides requests and replies: the types they carry, the handle a face in
// the same process holds, and the few checks a face makes before it asks. Faces reach the node
// only through `api`, `control`, `events` and `snapshot`.
pub use super::chat::{ChatEntry, ChatTarget, DbBudget, Delivery, InFlightPeaks, Page, ROOM, Recipient, check_text};
pub use super::doctor::{Exam, Verdict, examine};
pub use super::handle::NodeHandle;
pub use super::localsend::{Device, LocalSendConfig, LocalSendView, device_id};
pub use super::locker::placement::rank as rank_holders;
pub use super::locker::{DepositReport, DepositView, HeldReport, HeldView, HolderView, Policy as DepositPolicy, Retrieved};
pub use super::names::{Named, label};
pub use super::nick::nick_in;
pub use super::peers::{FindError, PeerInfo};
pub use super::portable::{export_identity, import_identity};
pub use super::share::{EntryKind, ShareEntry};
pub use super::slots::SlotCounts;
pub use super::transfer::{
    Answerer, Direction, FileFailure, GroupTask, OfferItem, OfferView, Outcome, PeerListing, Prepared, Reason, TransferError,
    TransferState, TransferTask, TransferView,
};
pub use super::{AlreadyRunning, DEFAULT_PORT, NodeConfig, identity_of, validate_nick};
pub use crate::identity::PeerId;

/// How long a PEER named by a face may take to be discovered or connected.
const RESOLVE_WAIT: Duration = Duration::from_secs(5);
/// History goes out in replies of about this many bytes, well under the frame bound.
const HISTORY_CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Everything a face draws ([`Reply::Snapshot`]).
    Snapshot,
    /// The event stream from now on ([`Reply::Event`], [`Reply::Lagged`]); until the client
    /// hangs up.
    Subscribe,
    Peers {
        wait_ms: u64,
        /// Scan this machine's /24s for LocalSend devices first (their multicast blocked).
        #[serde(default)]
        scan: bool,
    },
    /// Store a chat line, then (unless `queue`) wait up to `timeout_ms` for its delivery.
    Say {
        peer: String,
        text: String,
        queue: bool,
        timeout_ms: u64,
    },
    /// A page of a conversation's lines (at most `limits::HISTORY_PAGE`, fewer with `limit`):
    /// the newest, the oldest (`first`), or those before / after a line id. A face pages on
    /// with the first (or last) id it got.
    History {
        peer: String,
        limit: Option<usize>,
        #[serde(default)]
        before: Option<String>,
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        first: bool,
    },
    /// Everything in a conversation (`#all` or a PEER) counts as read.
    MarkRead {
        peer: String,
    },
    /// Push absolute `paths` to every peer in `peers` (nick, id prefix or HOST:PORT).
    Send {
        peers: Vec<String>,
        paths: Vec<PathBuf>,
        /// To several peers: relayed through them (false: parallel uploads).
        #[serde(default = "relayed")]
        relay: bool,
        /// The PIN a LocalSend device asks for.
        #[serde(default)]
        pin: Option<String>,
    },
    List {
        peer: String,
        path: String,
    },
    Get {
        peer: String,
        paths: Vec<String>,
        /// Absolute; the node's download dir when absent.
        to: Option<PathBuf>,
    },
    /// Offers waiting for an answer.
    Offers,
    /// A page of a waiting offer's manifest.
    OfferItems {
        offer: String,
        offset: usize,
        limit: usize,
    },
    /// Accept or reject a waiting offer (an id or a prefix); `always` also trusts its sender.
    Answer {
        offer: String,
        accept: bool,
        always: bool,
    },
    Trust {
        peer: String,
        trusted: bool,
    },
    /// Drop a peer's record and pinned key.
    Forget {
        peer: String,
    },
    /// Running and recent transfers.
    Transfers,
    /// Stop a running transfer, or a paused one for good (an id or a prefix); both ends drop
    /// its partial data.
    Cancel {
        transfer: String,
    },
    /// Resume a paused send now (an id or a prefix).
    Resume {
        transfer: String,
    },
    SetNick {
        nick: String,
    },
    /// Deposit absolute `paths` (each one deposit) with `replicas` verified copies, on the
    /// peers `to` names if any.
    Deposit {
        paths: Vec<PathBuf>,
        replicas: u32,
        #[serde(default)]
        to: Vec<String>,
    },
    /// Remove one of our deposits (a name or an id) from its holders.
    DropDeposit {
        deposit: String,
    },
    /// Our deposits, checked with their holders.
    Deposits,
    /// Bring one of our deposits back (a name or an id) into `to` (absolute; the download dir
    /// when absent).
    Retrieve {
        deposit: String,
        to: Option<PathBuf>,
    },
    /// What this node holds for others.
    Held,
    /// Free what this node holds for an owner, or one deposit.
    DropHeld {
        spec: String,
    },
    /// Keep a connection to HOST:PORT. With `wait`, answer once it is connected (`Peers`
    /// with that one peer) or failed (`no answer from HOST:PORT: why`); the node keeps trying
    /// either way.
    AddPeer {
        addr: String,
        #[serde(default)]
        wait: bool,
    },
}

impl Request {
    /// Requests about state only a running node has (its offers and transfers): a one-shot
    /// command's own node could only say "none".
    pub fn needs_running_node(&self) -> bool {
        matches!(
            self,
            Request::Offers
                | Request::OfferItems { .. }
                | Request::Answer { .. }
                | Request::Transfers
                | Request::Cancel { .. }
                | Request::Resume { .. }
                | Request::Subscribe
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Snapshot(Box<Snapshot>),
    /// The subscription is live: every event after `seq` follows. A face takes its snapshot
    /// after this.
    Subscribed {
        seq: u64,
    },
    Event(Envelope),
    /// The subscriber fell behind and missed events: take a new snapshot.
    Lagged {
        missed: u64,
    },
    Peers {
        peers: Vec<PeerInfo>,
        /// LocalSend devices heard of.
        #[serde(default)]
        localsend: Vec<super::localsend::Device>,
    },
    /// The line is stored and queued for delivery.
    Queued {
        id: String,
    },
    /// Every recipient acknowledged it.
    Delivered {
        id: String,
    },
    /// Part of a conversation's history, oldest first; several may follow each other.
    History {
        entries: Vec<ChatEntry>,
    },
    /// Progress of the transfer to or from `peer` (as the user named it).
    Progress {
        peer: String,
        progress: TransferView,
    },
    /// One recipient's or one pull's result.
    Finished {
        peer: String,
        outcome: Outcome,
    },
    /// One recipient could not be served at all.
    NotDelivered {
        peer: String,
        error: String,
    },
    Listing {
        entries: Vec<ShareEntry>,
        /// Entries of the folder beyond those listed (the node keeps a bounded number).
        #[serde(default, skip_serializing_if = "is_zero")]
        omitted: u64,
    },
    Offers {
        offers: Vec<OfferView>,
    },
    OfferItems {
        items: Vec<OfferItem>,
    },
    Transfers {
        transfers: Vec<TransferView>,
    },
    /// One deposit's result.
    Deposited(Box<DepositReport>),
    Deposits {
        deposits: Vec<DepositView>,
    },
    Retrieved(Box<Retrieved>),
    Held(Box<HeldReport>),
    /// What a call did, for a person (`accepted offer 1a2b…`).
    Note {
        text: String,
    },
    /// The request finished; the command exits 0.
    Done,
    /// The request failed with this one-line message; the command exits non-zero. Faces
    /// branch on `kind`, never on the words.
    Failed {
        #[serde(default)]
        kind: FailKind,
        message: String,
    },
}

/// What kind of failure ended a request: what the node's errors tell apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// No peer, offer or transfer by that name (a peer may still turn up).
    NotFound,
    /// The name fits several: waiting won't help, more of the name will.
    Ambiguous,
    /// The peer could not be reached, or did not answer in time.
    Unreachable,
    /// The peer said no (rejected, refused, or stopped it).
    Refused,
    /// The peer (or this node) has no room for it now; later may work.
    Busy,
    /// It exists, but this node cannot do that to it (a paused receive resumes only when its
    /// sender sends again).
    Unavailable,
    /// Another node already runs on the data dir.
    AlreadyRunning,
    /// The request itself could not be read.
    Invalid,
    /// Anything else.
    #[default]
    Other,
}

/// A failure a face is told as it is: its kind and its one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailKind,
    pub message: String,
}

impl FailKind {
    /// The kind of `e`, from the first typed error in its chain.
    pub fn of(e: &anyhow::Error) -> FailKind {
        use super::peers::FindError;
        use super::transfer::TransferError;
        for cause in e.chain() {
            if let Some(f) = cause.downcast_ref::<Failure>() {
                return f.kind;
            }
            if let Some(f) = cause.downcast_ref::<FindError>() {
                return match f {
                    FindError::Unknown(_) => FailKind::NotFound,
                    FindError::Ambiguous(_) => FailKind::Ambiguous,
                };
            }
            if cause.downcast_ref::<super::AlreadyRunning>().is_some() {
                return FailKind::AlreadyRunning;
            }
            if let Some(t) = cause.downcast_ref::<TransferError>() {
                return match t {
                    TransferError::Unreachable(_) => FailKind::Unreachable,
                    TransferError::Rejected(..) => FailKind::Refused,
                    _ if t.reason() == Reason::Busy => FailKind::Busy,
                    _ => FailKind::Other,
                };
            }
        }
        FailKind::Other
    }
}

/// Run one request against a node, streaming replies into `out`; always ends with Done or Failed
/// (unless `out` closes first: its reader left).
pub async fn execute(node: &NodeHandle, request: Request, out: &mpsc::Sender<Reply>) {
    let result = match request {
        Request::Snapshot => match node.snapshot().await {
            Ok(s) => send(out, Reply::Snapshot(Box::new(s))).await,
            Err(e) => Err(e),
        },
        Request::Subscribe => subscribe(node, out).await,
        Request::Peers { wait_ms, scan } => peers(node, wait_ms, scan, out).await,
        Request::Say {
            peer,
            text,
            queue,
            timeout_ms,
        } => say(node, &peer, &text, queue, Duration::from_millis(timeout_ms), out).await,
        Request::History {
            peer,
            limit,
            before,
            after,
            first,
        } => history(node, &peer, limit, before, after, first, out).await,
        Request::MarkRead { peer } => match conversation_of(node, &peer).await {
            Ok(target) => node.mark_read(target.conversation()).await,
            Err(e) => Err(e),
        },
        Request::Send { peers, paths, relay, pin } => send_files(node, peers, paths, relay, pin, out).await,
        Request::List { peer, path } => list(node, &peer, &path, out).await,
        Request::Get { peer, paths, to } => get(node, &peer, paths, to, out).await,
        Request::Offers => send(out, Reply::Offers { offers: node.offers() }).await,
        Request::OfferItems { offer, offset, limit } => match node.find_offer(&offer) {
            Ok(id) => {
                let items = node.offer_items(&id, offset, limit).await.unwrap_or_default();
                send(out, Reply::OfferItems { items }).await
            }
            Err(e) => Err(e.into()),
        },
        Request::Answer { offer, accept, always } => answer(node, &offer, accept, always, out).await,
        Request::Trust { peer, trusted } => trust(node, &peer, trusted, out).await,
        Request::Forget { peer } => forget(node, &peer, out).await,
        Request::Transfers => {
            send(
                out,
                Reply::Transfers {
                    transfers: node.transfers(),
                },
            )
            .await
        }
        Request::Cancel { transfer } => match node.find_transfer(&transfer) {
            Ok(id) => {
                node.cancel_transfer(&id);
                send(
                    out,
                    Reply::Note {
                        text: format!("cancelled transfer {id}"),
                    },
                )
                .await
            }
            Err(e) => Err(e.into()),
        },
        Request::Resume { transfer } => match node
            .find_transfer(&transfer)
            .map_err(anyhow::Error::from)
            .and_then(|id| node.resume_transfer(&id).map_err(anyhow::Error::from))
        {
            Ok(text) => send(out, Reply::Note { text }).await,
            Err(e) => Err(e),
        },
        Request::SetNick { nick } => node.set_nick(&nick).await,
        Request::Deposit { paths, replicas, to } => deposit(node, paths, replicas, to, out).await,
        Request::DropDeposit { deposit } => match node.drop_deposit(&deposit).await {
            Ok(text) => send(out, Reply::Note { text }).await,
            Err(e) => Err(e),
        },
        Request::Deposits => match node.deposits().await {
            Ok(deposits) => send(out, Reply::Deposits { deposits }).await,
            Err(e) => Err(e),
        },
        Request::Retrieve { deposit, to } => match node.retrieve(&deposit, to).await {
            Ok(r) => send(out, Reply::Retrieved(Box::new(r))).await,
            Err(e) => Err(e),
        },
        Request::Held => match node.held().await {
            Ok(h) => send(out, Reply::Held(Box::new(h))).await,
            Err(e) => Err(e),
        },
        Request::DropHeld { spec } => match node.drop_held(&spec).await {
            Ok(n) => {
                let text = format!("dropped {}", crate::text::plural(n, "deposit"));
                send(out, Reply::Note { text }).await
            }
            Err(e) => Err(e),
        },
        Request::AddPeer { addr, wait: false } => {
            node.add_peer(&addr);
            Ok(())
        }
        Request::AddPeer { addr, wait: true } => match node.resolve(&addr, RESOLVE_WAIT).await {
            Ok(id) => {
                let peers = node.peers().into_iter().filter(|p| p.id == id).collect();
                send(
                    out,
                    Reply::Peers {
                        peers,
                        localsend: Vec::new(),
                    },
                )
                .await
            }
            Err(e) => {
                let e = e.to_string();
                let why = match e.strip_prefix(&format!("cannot reach {addr}: ")) {
                    Some(why) => why.to_string(),
                    None => format!("nothing answered within {} s", RESOLVE_WAIT.as_secs()),
                };
                Err(Failure {
                    kind: FailKind::Unreachable,
                    message: format!("no answer from {addr}: {why}"),
                }
                .into())
            }
        },
    };
    let last = match result {
        Ok(()) => Reply::Done,
        Err(e) => Reply::Failed {
            kind: FailKind::of(&e),
            message: format!("{e:#}"),
        },
    };
    let _ = out.send(last).await;
}

/// Deposit each path in turn; fails (after trying them all) if any has fewer verified copies
/// than asked.
async fn deposit(node: &NodeHandle, paths: Vec<PathBuf>, replicas: u32, to: Vec<String>, out: &mpsc::Sender<Reply>) -> Result<()> {
    let mut peers = Vec::new();
    for p in &to {
        peers.push(node.resolve(p, RESOLVE_WAIT).await?);
    }
    let mut short = Vec::new();
    for path in &paths {
        let report = node.deposit(path, replicas, &peers).await?;
        if !report.complete {
            short.push(format!(
                "{}: {} of {replicas} copies verified",
                crate::text::printable(&report.deposit.name),
                report.deposit.replicas_verified
            ));
        }
        send(out, Reply::Deposited(Box::new(report))).await?;
    }
    if !short.is_empty() {
        bail!("not deposited as asked: {}", short.join("; "));
    }
    Ok(())
}

/// Send a reply; an error once the reader left, so that long work stops.
async fn send(out: &mpsc::Sender<Reply>, reply: Reply) -> Result<()> {
    out.send(reply).await.map_err(|_| anyhow!("the client left"))
}

async fn subscribe(node: &NodeHandle, out: &mpsc::Sender<Reply>) -> Result<()> {
    let mut events = node.subscribe();
    send(out, Reply::Subscribed { seq: node.last_seq() }).await?;
    loop {
        let reply = tokio::select! {
            _ = node.cancelled() => return Ok(()),
            e = events.next() => match e {
                Ok(envelope) => Reply::Event(envelope),
                Err(RecvError::Lagged(l)) => Reply::Lagged { missed: l.missed },
                Err(RecvError::Closed) => return Ok(()),
            },
        };
        send(out, reply).await?;
    }
}

async fn peers(node: &NodeHandle, wait_ms: u64, scan: bool, out: &mpsc::Sender<Reply>) -> Result<()> {
    // The wait and the scan side by side: a scan takes seconds of its own.
    let wait = tokio::time::sleep(Duration::from_millis(wait_ms));
    if scan {
        let found = tokio::join!(node.localsend_scan(), wait).0?;
        let text = format!("scan: {} answered", crate::text::plural(found.len(), "LocalSend device"));
        send(out, Reply::Note { text }).await?;
    } else {
        wait.await;
    }
    let localsend = node.localsend().map(|l| l.devices).unwrap_or_default();
    send(
        out,
        Reply::Peers {
            peers: node.peers(),
            localsend,
        },
    )
    .await
}

async fn say(node: &NodeHandle, peer: &str, text: &str, queue: bool, timeout: Duration, out: &mpsc::Sender<Reply>) -> Result<()> {
    super::chat::check_text(text)?;
    let target = node.resolve_chat(peer, RESOLVE_WAIT).await?;
    if target == ChatTarget::Room && node.listen_addr().is_none() {
        // A one-shot's own node has only just started: #all means the peers online now, so give
        // the ones it can reach a moment to connect.
        node.wait_room_settled(RESOLVE_WAIT).await;
    }
    let id = node.say(&target, text).await?;
    send(out, Reply::Queued { id: id.clone() }).await?;
    if queue {
        return Ok(());
    }
    if !node.wait_delivered(&id, timeout).await? {
        bail!("not delivered within {} s; kept in the queue (message {id})", timeout.as_secs_f64());
    }
    send(out, Reply::Delivered { id }).await
}

/// The conversation `peer` names for reading it: a peer's, the room, or a LocalSend device's
/// (its text messages, filed under its id; it is no peer to resolve or write to).
async fn conversation_of(node: &NodeHandle, peer: &str) -> Result<ChatTarget> {
    if let Some(d) = node.localsend_device(peer)
        && let id = super::localsend::device_id(&d.fingerprint)
        && id.as_str() == peer
    {
        return Ok(ChatTarget::Peer(id));
    }
    node.resolve_chat(peer, RESOLVE_WAIT).await
}

async fn history(
    node: &NodeHandle,
    peer: &str,
    limit: Option<usize>,
    before: Option<String>,
    after: Option<String>,
    first: bool,
    out: &mpsc::Sender<Reply>,
) -> Result<()> {
    // A known peer resolves at once, online or not.
    let conversation = conversation_of(node, peer).await?;
    let page = match (&before, &after, first) {
        (Some(_), Some(_), _) => bail!("give --before or --after, not both"),
        (Some(_), None, true) | (None, Some(_), true) => bail!("reading from the first line takes no cursor"),
        (Some(id), None, false) => Page::Before(id),
        (None, Some(id), false) => Page::After(id),
        (None, None, true) => Page::First,
        (None, None, false) => Page::Last,
    };
    // Never a whole conversation at once: the face pages on.
    let limit = limit.unwrap_or(HISTORY_PAGE).min(HISTORY_PAGE);
    let entries = node.history_page(conversation.conversation(), page, limit).await?;
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for e in entries {
        bytes += 512 + e.text.len() + e.nick.len() + 64 * e.recipients.len();
        chunk.push(e);
        if bytes >= HISTORY_CHUNK_BYTES {
            send(
                out,
                Reply::History {
                    entries: std::mem::take(&mut chunk),
                },
            )
            .await?;
            bytes = 0;
        }
    }
    send(out, Reply::History { entries: chunk }).await
}

/// Forward the progress of the transfers `label` names (transfer or group id → what the user
/// called the peer) until `work` ends; then return its result.
async fn with_progress<T>(
    node: &NodeHandle,
    labels: HashMap<String, String>,
    out: &mpsc::Sender<Reply>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut events = node.subscribe();
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return r,
            e = events.recv() => match e {
                Ok(Event::Progress(p)) => {
                    let label = p.group.as_ref().and_then(|g| labels.get(&format!("{g}/{}", p.peer))).or_else(|| labels.get(&p.transfer));
                    if let Some(peer) = label {
                        // Progress is a snapshot: a dropped one is replaced by the next.
                        let _ = out.try_send(Reply::Progress { peer: peer.clone(), progress: p });
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return work.await,
            },
        }
    }
}

fn relayed() -> bool {
    true
}

/// A task that ends with its owner.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send_files(
    node: &NodeHandle,
    specs: Vec<String>,
    paths: Vec<PathBuf>,
    relay: bool,
    pin: Option<String>,
    out: &mpsc::Sender<Reply>,
) -> Result<()> {
    if specs.is_empty() || paths.is_empty() {
        bail!("give at least one peer and one path: lanyard send PEER... -- PATH...");
    }
    // A path that isn't there is a local mistake: say so before looking for anyone.
    for p in &paths {
        if let Err(e) = std::fs::symlink_metadata(p) {
            bail!(
                "cannot send {}: {}",
                crate::text::printable(&p.display().to_string()),
                crate::text::io_reason(&e)
            );
        }
    }
    // Reading and hashing the files and finding the peers wait on different things: side by
    // side. If nobody is found (or this is dropped), the reading stops with it.
    let mut prepared = {
        let (node, paths) = (node.clone(), paths.clone());
        AbortOnDrop(tokio::spawn(async move { node.prepare_send(&paths).await }))
    };
    // LocalSend devices by name: those known now, and those heard of while lanyard peers were
    // looked for.
    let mut devices = Vec::new();
    let (known_devices, lanyard_specs): (Vec<String>, Vec<String>) =
        specs.iter().cloned().partition(|s| node.localsend_device(s).is_some());
    devices.extend(known_devices.into_iter().filter_map(|s| node.localsend_device(&s).map(|d| (s, d))));
    let resolved = resolve_all(node, &lanyard_specs).await;
    let mut recipients: Vec<(String, PeerId)> = Vec::new();
    let mut failed = 0;
    for (spec, r) in lanyard_specs.iter().zip(resolved) {
        match r {
            Ok(id) if recipients.iter().any(|(_, known)| *known == id) => {}
            Ok(id) => recipients.push((spec.clone(), id)),
            Err(_) if node.localsend_device(spec).is_some() => {
                devices.extend(node.localsend_device(spec).map(|d| (spec.clone(), d)));
            }
            Err(e) => {
                failed += 1;
                send(
                    out,
                    Reply::NotDelivered {
                        peer: spec.clone(),
                        error: format!("{e:#}"),
                    },
                )
                .await?;
            }
        }
    }
    if !recipients.is_empty() {
        let ids: Vec<PeerId> = recipients.iter().map(|(_, id)| id.clone()).collect();
        let prepared = (&mut prepared.0).await.map_err(|e| anyhow!("reading the files failed: {e}"))??;
        let group = node.send_prepared(&ids, prepared, relay)?;
        let labels: HashMap<String, String> = recipients
            .iter()
            .map(|(spec, id)| (format!("{}/{id}", group.id), spec.clone()))
            .collect();
        let results = with_progress(node, labels, out, group.wait()).await;
        for ((spec, _), (_, result)) in recipients.iter().zip(results) {
            let reply = match result {
                Ok(outcome) => {
                    failed += usize::from(!outcome.all_ok());
                    Reply::Finished {
                        peer: spec.clone(),
                        outcome,
                    }
                }
                Err(e) => {
                    failed += 1;
                    Reply::NotDelivered {
                        peer: spec.clone(),
                        error: e.to_string(),
                    }
                }
            };
            send(out, reply).await?;
        }
    }
    for (spec, device) in devices {
        let (id, task) = node.localsend_send(device, paths.clone(), pin.clone());
        let labels = HashMap::from([(id, spec.clone())]);
        let result = with_progress(node, labels, out, task).await;
        let reply = match result {
            Ok(Ok(outcome)) => {
                failed += usize::from(!outcome.all_ok());
                Reply::Finished { peer: spec, outcome }
            }
            Ok(Err(e)) => {
                failed += 1;
                Reply::NotDelivered {
                    peer: spec,
                    error: e.to_string(),
                }
            }
            Err(e) => {
                failed += 1;
                Reply::NotDelivered {
                    peer: spec,
                    error: e.to_string(),
                }
            }
        };
        send(out, reply).await?;
    }
    match failed {
        0 => Ok(()),
        n => Err(anyhow!(
            "{n} of {} did not get every file",
            crate::text::plural(specs.len() as u64, "recipient")
        )),
    }
}

/// Resolve every spec side by side (each may wait on discovery), results in the order given.
async fn resolve_all(node: &NodeHandle, specs: &[String]) -> Vec<Result<PeerId>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let (node, spec) = (node.clone(), spec.clone());
        set.spawn(async move { (i, node.resolve(&spec, RESOLVE_WAIT).await) });
    }
    let mut out: Vec<Result<PeerId>> = specs.iter().map(|s| Err(anyhow!("cannot resolve {s}"))).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = r;
        }
    }
    out
}

async fn list(node: &NodeHandle, peer: &str, path: &str, out: &mpsc::Sender<Reply>) -> Result<()> {
    let id = node.resolve(peer, RESOLVE_WAIT).await?;
    let listing = node.list_counted(&id, path).await?;
    send(
        out,
        Reply::Listing {
            entries: listing.entries,
            omitted: listing.omitted,
        },
    )
    .await
}

async fn get(node: &NodeHandle, peer: &str, paths: Vec<String>, to: Option<PathBuf>, out: &mpsc::Sender<Reply>) -> Result<()> {
    let id = node.resolve(peer, RESOLVE_WAIT).await?;
    let task = node.get(&id, &paths, to).await?;
    let labels = HashMap::from([(task.id.clone(), peer.to_string())]);
    let outcome = with_progress(node, labels, out, task.wait()).await?;
    let ok = outcome.all_ok();
    let failed = outcome.failed_count();
    send(
        out,
        Reply::Finished {
            peer: peer.to_string(),
            outcome,
        },
    )
    .await?;
    if !ok {
        bail!("{} did not arrive", crate::text::plural(failed as u64, "file"));
    }
    Ok(())
}

async fn answer(node: &NodeHandle, spec: &str, accept: bool, always: bool, out: &mpsc::Sender<Reply>) -> Result<()> {
    let id = node.find_offer(spec)?;
    let who = node
        .offers()
        .into_iter()
        .find(|o| o.transfer == id)
        .map(|o| crate::text::printable(&o.nick).into_owned())
        .unwrap_or_default();
    if !node.answer_offer(&id, accept, always).await {
        bail!("offer {id} is no longer waiting (its sender gave up, or it was answered)");
    }
    let text = match (accept, always) {
        (true, true) => format!("accepted offer {id} from {who}; files from {who} are accepted from now on"),
        (true, false) => format!("accepted offer {id} from {who}"),
        (false, _) => format!("rejected offer {id} from {who}"),
    };
    send(out, Reply::Note { text }).await
}

async fn trust(node: &NodeHandle, spec: &str, trusted: bool, out: &mpsc::Sender<Reply>) -> Result<()> {
    let id = node.resolve(spec, RESOLVE_WAIT).await?;
    node.set_trusted(&id, trusted).await?;
    let label = node.peer_label(id.as_str());
    let text = if trusted {
        format!("files from {} are accepted without asking", crate::text::printable(&label))
    } else {
        format!("files from {} need an answer again", crate::text::printable(&label))
    };
    send(out, Reply::Note { text }).await
}

async fn forget(node: &NodeHandle, spec: &str, out: &mpsc::Sender<Reply>) -> Result<()> {
    // HOST:PORT names the peer pinned there, which may not answer there any more.
    let id = match node.pinned_at(spec).await? {
        Some(id) => id,
        None => node.resolve(spec, Duration::ZERO).await?,
    };
    let label = node.peer_label(id.as_str());
    if !node.forget(&id).await? {
        bail!("no peer {spec:?} is known");
    }
    send(
        out,
        Reply::Note {
            text: format!("forgot {} and its key", crate::text::printable(&label)),
        },
    )
    .await
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
