//! Chat: direct conversations and the `#all` room, delivered, queued and kept.
//!
//! Everything goes through the database. Saying a line stores it with a queued delivery row per
//! recipient; each control connection runs a pump that sends that peer's queued rows in order
//! and marks them sent; the receiver commits the line, then acknowledges, and the ack marks the
//! row delivered. A connection that ends puts its unacknowledged rows back in the queue, and the
//! next connection's pump resends them — the receiver de-duplicates by (sender, id). So one code
//! path covers online delivery, the offline queue, restarts on either side, and drops before the
//! ack; and since one pump per peer sends in queue order over one ordered stream, each sender's
//! order holds.
//!
//! Its files: `mod.rs` (saying, pumping, receiving, history), `db` (its SQL), `budget` (what a
//! peer's chat may cost: rates, and the lines in flight).

pub mod budget;
pub mod db;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::RngCore;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Event, NodeHandle, Shared, lock, off_thread};
use crate::identity::PeerId;
use crate::net::wire::{ControlMsg, MAX_CHAT_TEXT};
use crate::store::{unix_now, unix_now_ms};
pub use budget::{DbBudget, InFlightPeaks};
pub use db::{ChatEntry, Delivery, Page, ROOM, Recipient};

/// Rows a pump takes from the queue at once.
const BATCH: usize = 256;
/// Lines sent and not yet acknowledged on one connection. With both directions bounded like
/// this, a connection's writer queue (1024 frames) never fills with chat and acks, so its reader
/// never blocks on sending an ack.
const WINDOW: usize = 256;
/// How long a one-shot's own node waits, after the first peer connected, for others before
/// saying something to `#all`.
const ROOM_SETTLE: Duration = Duration::from_millis(500);

/// Where a line goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTarget {
    Peer(PeerId),
    /// Every peer online at the moment it is said, and every other known peer when it comes
    /// back.
    Room,
}

impl ChatTarget {
    /// The conversation it belongs to: the peer's id, or `#all`.
    pub fn conversation(&self) -> &str {
        match self {
            ChatTarget::Peer(id) => id.as_str(),
            ChatTarget::Room => ROOM,
        }
    }
}

/// Chat's share of the node's state.
#[derive(Default)]
pub(crate) struct Chat {
    /// Per peer: "new lines are queued" for whichever pump serves it.
    wake: Mutex<HashMap<PeerId, Arc<Notify>>>,
    /// Some line was delivered: `wait_delivered` callers look again.
    delivered: Notify,
    /// Held while a pump checks that its connection is still the live one and takes a batch,
    /// and while a new pump requeues what older connections had in flight: so no row is ever
    /// left marked sent on a connection that was already replaced.
    take: Mutex<()>,
    /// Received lines not read yet, per conversation (kept here so that a burst of lines does
    /// not count rows again for each one).
    unread: Mutex<HashMap<String, u32>>,
    /// Every peer's chat rate (see `budget`).
    rates: Mutex<budget::Rates>,
    /// Lines read from connections and not yet answered (see `budget::InFlight`).
    in_flight: Arc<budget::InFlight>,
    /// When this node started (Unix seconds): keys first seen since are strangers.
    started: AtomicU64,
}

impl Chat {
    fn wake(&self, peer: &PeerId) -> Arc<Notify> {
        lock(&self.wake).entry(peer.clone()).or_default().clone()
    }

    fn kick(&self, peer: &PeerId) {
        self.wake(peer).notify_one();
    }
}

pub fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    data_encoding::HEXLOWER.encode(&bytes)
}

/// Refuse what we won't send, with a message a person can act on.
pub fn check_text(text: &str) -> Result<()> {
    if text.is_empty() {
        bail!("empty message: nothing to say");
    }
    if text.len() > MAX_CHAT_TEXT {
        bail!(
            "message too long: {} bytes; the limit is {MAX_CHAT_TEXT} bytes (16 KiB) — send it as a file instead",
            text.len()
        );
    }
    Ok(())
}

impl NodeHandle {
    /// The most each share of the chat lines in flight has held since the node started (see
    /// `crate::limits::CHAT_IN_FLIGHT_BYTES`): what a flood cost in memory, for tests and figures.
    pub fn chat_in_flight_peaks(&self) -> InFlightPeaks {
        self.shared.chat.in_flight.peaks()
    }

    /// Store a line for `to` and start delivering it. Returns its id once it is stored (queued);
    /// see [`NodeHandle::wait_delivered`].
    pub async fn say(&self, to: &ChatTarget, text: &str) -> Result<String> {
        check_text(text)?;
        let shared = &self.shared;
        let recipients: Vec<PeerId> = match to {
            ChatTarget::Peer(id) if id == self.id() => bail!("that is this node itself"),
            ChatTarget::Peer(id) => {
                if shared.peers().get(id).is_none_or(|p| p.public_key.is_empty()) {
                    bail!("unknown peer {id}: it has never been connected (try `lanyard peers`)");
                }
                vec![id.clone()]
            }
            // Everyone online hears it now; every other peer this node has met (it holds their
            // key) hears it when it comes back, in queue order, as the direct outbox does.
            ChatTarget::Room => {
                let t = shared.peers();
                let mut known: Vec<PeerId> = t
                    .ids()
                    .filter(|id| t.is_online(id) || t.get(id).is_some_and(|p| !p.public_key.is_empty()))
                    .cloned()
                    .collect();
                known.sort();
                known
            }
        };
        if recipients.is_empty() {
            bail!("nobody is online in {ROOM}");
        }
        let id = new_message_id();
        let now = unix_now_ms();
        {
            let (shared, id, conversation, text, recipients) = (
                shared.clone(),
                id.clone(),
                to.conversation().to_string(),
                text.to_string(),
                recipients.clone(),
            );
            let room = *to == ChatTarget::Room;
            off_thread(move || {
                let nick = shared.nick();
                let line = db::NewMessage {
                    id: &id,
                    conversation: &conversation,
                    sender: shared.identity.id(),
                    sender_nick: &nick,
                    room,
                    sent_ms: now,
                    received_ms: now,
                    text: &text,
                };
                db::insert_outgoing(&mut shared.store.lock(), &line, &recipients)
            })
            .await?
            .context("cannot store the message")?;
        }
        // A conversation keeps the peer listed however long it stays away (peers::FORGET_AFTER),
        // and one a person here took part in gives it standing (see `limits`).
        if let ChatTarget::Peer(id) = to
            && let Some(p) = shared.peers().get_mut(id)
        {
            p.chatted = true;
            p.earned = true;
        }
        shared.emit(Event::ChatQueued {
            id: id.clone(),
            to: to.conversation().to_string(),
            recipients: recipients.clone(),
            text: text.to_string(),
            sent_ms: now,
        });
        for peer in &recipients {
            shared.chat.kick(peer);
        }
        Ok(id)
    }

    /// Wait until every recipient of our line `id` acknowledged it. False on timeout or when the
    /// node shuts down first; the line stays queued either way.
    pub async fn wait_delivered(&self, id: &str, wait: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a delivery between the look and the wait is seen.
            let notified = self.shared.chat.delivered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let recipients = self.recipients(id).await?;
            // A room line also waits for peers that are away (they get it when they come
            // back): settled here means answered by everyone reachable now.
            let reachable: Vec<Recipient> = recipients
                .iter()
                .filter(|r| matches!(r.state, Delivery::Delivered | Delivery::Refused) || self.is_online(&r.peer))
                .cloned()
                .collect();
            match db::overall(&reachable) {
                Some(Delivery::Delivered) => return Ok(true),
                Some(Delivery::Refused) => bail!("{}", refusals(self, &reachable)),
                _ => {}
            }
            tokio::select! {
                _ = self.shared.cancel.cancelled() => return Ok(false),
                r = tokio::time::timeout_at(deadline, notified) => if r.is_err() { return Ok(false) },
            }
        }
    }

    /// Where our line `id` stands (the least advanced recipient).
    pub async fn delivery(&self, id: &str) -> Result<Delivery> {
        Ok(db::overall(&self.recipients(id).await?).unwrap_or(Delivery::Queued))
    }

    /// Every recipient of our line `id` and where it stands for each.
    async fn recipients(&self, id: &str) -> Result<Vec<Recipient>> {
        let (shared, line) = (self.shared.clone(), id.to_string());
        off_thread(move || db::recipients(&shared.store.lock(), shared.identity.id(), &line))
            .await??
            .with_context(|| format!("no message {id} was sent from here"))
    }

    /// The last `limit` lines of a conversation (a peer id, or `#all`), oldest first.
    pub async fn history(&self, conversation: &str, limit: usize) -> Result<Vec<ChatEntry>> {
        self.history_page(conversation, Page::Last, limit).await
    }

    /// Up to `limit` lines of a conversation before or after a line (by id), oldest first. An
    /// error when that line is not in this conversation.
    pub async fn history_page(&self, conversation: &str, page: Page<'_>, limit: usize) -> Result<Vec<ChatEntry>> {
        let (shared, conv) = (self.shared.clone(), conversation.to_string());
        let (kind, cursor) = match page {
            Page::Last => (0, None),
            Page::First => (1, None),
            Page::Before(id) => (2, Some(id.to_string())),
            Page::After(id) => (3, Some(id.to_string())),
        };
        let found = off_thread(move || {
            let id = cursor.as_deref().unwrap_or_default();
            let page = match kind {
                0 => Page::Last,
                1 => Page::First,
                2 => Page::Before(id),
                _ => Page::After(id),
            };
            db::history_page(&shared.store.lock(), &conv, page, limit)
        })
        .await??;
        match (found, page) {
            (Some(lines), _) => Ok(lines),
            (None, Page::Before(id) | Page::After(id)) => {
                bail!(
                    "no message {} in the conversation with {}",
                    crate::text::printable(id),
                    self.peer_label(conversation)
                )
            }
            (None, _) => Ok(Vec::new()),
        }
    }

    /// Everything in a conversation so far counts as read (its unread count drops to 0).
    pub async fn mark_read(&self, conversation: &str) -> Result<()> {
        let (shared, conv) = (self.shared.clone(), conversation.to_string());
        // The mark and the count change together (a line stored meanwhile is either before
        // both or after both): the same lock orders them against `Link::store_lines`.
        let had = off_thread(move || {
            let mut unread = lock(&shared.chat.unread);
            db::mark_read(&shared.store.lock(), &conv)?;
            Ok::<_, rusqlite::Error>(unread.remove(&conv).unwrap_or(0))
        })
        .await??;
        if had > 0 {
            self.shared.emit(Event::ChatRead {
                conversation: conversation.to_string(),
            });
        }
        Ok(())
    }

    /// Unread lines per conversation (only those with some).
    pub fn unread(&self) -> HashMap<String, u32> {
        lock(&self.shared.chat.unread).clone()
    }

    /// The newest line of every conversation, with its unread count.
    pub async fn conversations(&self) -> Result<Vec<(ChatEntry, u32)>> {
        let shared = self.shared.clone();
        let lines = off_thread(move || db::last_lines(&shared.store.lock())).await??;
        let unread = self.unread();
        Ok(lines
            .into_iter()
            .map(|e| {
                let n = unread.get(&e.conversation).copied().unwrap_or(0);
                (e, n)
            })
            .collect())
    }

    /// Until some peer is online (at most `wait`), then a little longer for the rest to join.
    pub async fn wait_room_settled(&self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if self.peers().iter().any(|p| p.online) {
                break;
            }
            if !self.wait_change(&mut changed, deadline).await {
                return;
            }
        }
        tokio::time::sleep(ROOM_SETTLE).await;
    }

    /// How to name a conversation to a person: `#all`, or a peer's nick and short id.
    pub fn peer_label(&self, conversation: &str) -> String {
        match PeerId::parse(conversation).and_then(|id| self.peer(&id)) {
            Some(p) => format!("{} ({})", p.nick, p.short_id),
            None => conversation.to_string(),
        }
    }

    /// What a user typed as a chat target: `#all`, or a PEER for [`NodeHandle::resolve`].
    pub async fn resolve_chat(&self, spec: &str, wait: Duration) -> Result<ChatTarget> {
        if spec == ROOM {
            return Ok(ChatTarget::Room);
        }
        self.resolve(spec, wait).await.map(ChatTarget::Peer)
    }
}

/// "bob refused: too many messages, try later", for each recipient that refused.
fn refusals(node: &NodeHandle, recipients: &[Recipient]) -> String {
    let said: Vec<String> = recipients
        .iter()
        .filter(|r| r.state == Delivery::Refused)
        .map(|r| {
            let reason = crate::text::printable(r.reason.as_deref().unwrap_or("no reason given")).into_owned();
            format!("{} refused: {reason}", node.peer_label(r.peer.as_str()))
        })
        .collect();
    said.join("; ")
}

/// Whether `conn_id` is `peer`'s live control connection.
fn is_current(shared: &Shared, peer: &PeerId, conn_id: u64) -> bool {
    shared
        .peers()
        .get(peer)
        .and_then(|p| p.conn.as_ref())
        .is_some_and(|c| c.conn_id == conn_id)
}

/// A control connection ended: what it had in flight goes back to the queue, for the next one.
pub(crate) async fn connection_down(shared: &Arc<Shared>, peer: &PeerId, conn_id: u64) {
    let (s, p) = (shared.clone(), peer.clone());
    match off_thread(move || db::requeue(&s.store.lock(), &p, Some(conn_id))).await {
        Ok(Ok(ids)) if ids.is_empty() => {}
        Ok(Ok(ids)) => {
            shared.emit(Event::ChatRequeued { to: peer.clone(), ids });
            shared.chat.kick(peer);
        }
        Ok(Err(e)) => tracing::warn!("chat: cannot requeue lines for {}: {e}", peer.short()),
        Err(e) => tracing::warn!("chat: cannot requeue lines for {}: {e}", peer.short()),
    }
}

/// Send `peer`'s queued lines on connection `conn_id`, oldest first, for as long as it is the
/// live one.
async fn pump(
    shared: Arc<Shared>,
    peer: PeerId,
    conn_id: u64,
    tx: mpsc::Sender<ControlMsg>,
    cancel: CancellationToken,
    window: Arc<Semaphore>,
) {
    let wake = shared.chat.wake(&peer);
    let requeued = {
        let (s, p, c) = (shared.clone(), peer.clone(), cancel.clone());
        off_thread(move || {
            let _take = lock(&s.chat.take);
            // A newer connection may already have taken rows: requeueing them would strand them.
            if c.is_cancelled() || !is_current(&s, &p, conn_id) {
                return None;
            }
            // Anything an older connection sent without an ack is resent here, ahead of newer
            // lines.
            Some(db::requeue(&s.store.lock(), &p, None))
        })
        .await
    };
    match requeued {
        Ok(None) | Err(_) => return,
        Ok(Some(Ok(ids))) if ids.is_empty() => {}
        Ok(Some(Ok(ids))) => shared.emit(Event::ChatRequeued { to: peer.clone(), ids }),
        Ok(Some(Err(e))) => tracing::warn!("chat: cannot requeue lines for {}: {e}", peer.short()),
    }
    loop {
        let batch = {
            let (s, p, c) = (shared.clone(), peer.clone(), cancel.clone());
            off_thread(move || {
                let _take = lock(&s.chat.take);
                if c.is_cancelled() || !is_current(&s, &p, conn_id) {
                    return None;
                }
                Some(db::take_batch(&mut s.store.lock(), s.identity.id(), &p, conn_id, BATCH))
            })
            .await
        };
        let batch = match batch {
            Ok(Some(Ok(b))) => b,
            Ok(None) | Err(_) => {
                // A wake-up this pump swallowed belongs to the connection that replaced it.
                wake.notify_one();
                return;
            }
            Ok(Some(Err(e))) => {
                // Rows stay queued; the next connection tries again.
                tracing::warn!("chat: cannot read the queue for {}: {e}", peer.short());
                return;
            }
        };
        if !batch.is_empty() {
            shared.emit(Event::ChatSent {
                to: peer.clone(),
                ids: batch.iter().map(|l| l.id.clone()).collect(),
            });
        }
        if batch.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => continue,
            }
        }
        for line in batch {
            let sent = tokio::select! {
                _ = cancel.cancelled() => false,
                permit = window.acquire() => match permit {
                    Ok(p) => {
                        // Given back by the ack, not when this scope ends.
                        p.forget();
                        let msg = ControlMsg::Chat { id: line.id, room: line.room, sent_ms: line.sent_ms, text: line.text };
                        tx.send(msg).await.is_ok()
                    }
                    Err(_) => false,
                },
            };
            if !sent {
                // Taken rows stay marked sent on this connection; its end requeues them.
                return;
            }
        }
    }
}

/// What a control connection's reader hands to chat.
pub(crate) enum Incoming {
    /// A peer's line (already validated).
    Line(Line),
    /// The peer acknowledged our line.
    Ack(String),
    /// The peer refused our line (id, its reason).
    Refused(String, String),
}

/// A peer's chat line as it came.
pub(crate) struct Line {
    pub id: String,
    pub room: bool,
    pub sent_ms: u64,
    pub text: String,
    /// Its share of the lines in flight, held until it is answered.
    charge: budget::Charge,
}

/// Lines and acks waiting to be stored, per connection. An honest peer never has more than
/// WINDOW lines and WINDOW acks outstanding; one that sends more is cut off rather than queued.
const INBOX: usize = 4 * WINDOW;

/// A connection's way into chat: its reader pushes, a task of its own stores in batches (one
/// transaction per burst, off the async workers) and acknowledges in order.
pub(crate) struct Inbox {
    tx: mpsc::Sender<Incoming>,
    failed: Arc<Mutex<Option<String>>>,
    shared: Arc<Shared>,
    peer: PeerId,
    ip: std::net::IpAddr,
}

impl Inbox {
    /// Hand over a line once it fits in the lines in flight (see `budget::InFlight`): until
    /// then the connection is not read further, so its sender waits on its own TCP window.
    pub async fn push_line(&self, id: String, room: bool, sent_ms: u64, text: String) -> Result<(), String> {
        let stranger = self.shared.peers().get(&self.peer).is_none_or(|p| !p.has_standing());
        let bytes = text.len() + id.len() + crate::limits::CHAT_LINE_COST;
        let chat = &self.shared.chat;
        let charge = chat.in_flight.take(&self.shared.config.db_budget, self.ip, stranger, bytes).await;
        self.push(Incoming::Line(Line {
            id,
            room,
            sent_ms,
            text,
            charge,
        }))
    }

    /// Hand over without waiting; an error ends the connection.
    pub fn push(&self, item: Incoming) -> Result<(), String> {
        self.tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "protocol error: the peer sends more than its window".to_string(),
            mpsc::error::TrySendError::Closed(_) => self.failure().unwrap_or_else(|| "chat stopped".into()),
        })
    }

    /// Why chat ended this connection, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failed).clone()
    }
}

/// A control connection just became `peer`'s live one: start sending it the queue, and storing
/// what it sends. `cancel` ends the connection; chat cancels it (saying why through the inbox)
/// when storing fails or the peer misbehaves.
pub(crate) fn connection_up(
    shared: &Arc<Shared>,
    peer: &PeerId,
    ip: std::net::IpAddr,
    conn_id: u64,
    tx: mpsc::Sender<ControlMsg>,
    cancel: CancellationToken,
) -> Inbox {
    let window = Arc::new(Semaphore::new(WINDOW));
    shared.tracker.spawn(
        "chat::pump",
        pump(shared.clone(), peer.clone(), conn_id, tx.clone(), cancel.clone(), window.clone()),
    );
    let (in_tx, in_rx) = mpsc::channel(INBOX);
    let failed = Arc::new(Mutex::new(None));
    let link = Link {
        shared: shared.clone(),
        peer: peer.clone(),
        ip,
        conn_id,
        tx,
        window,
    };
    let fail = failed.clone();
    shared.tracker.spawn("chat::receive", async move {
        if let Err(reason) = link.receive(in_rx, &cancel).await {
            *lock(&fail) = Some(reason);
            cancel.cancel();
        }
    });
    Inbox {
        tx: in_tx,
        failed,
        shared: shared.clone(),
        peer: peer.clone(),
        ip,
    }
}

/// One connection, as the storing side of chat sees it.
struct Link {
    shared: Arc<Shared>,
    peer: PeerId,
    /// Where the connection comes from: the chat rates per address draw on it.
    ip: std::net::IpAddr,
    conn_id: u64,
    tx: mpsc::Sender<ControlMsg>,
    window: Arc<Semaphore>,
}

/// Store a peer's lines within its chat budget and rates (blocking); each line's verdict and
/// its conversation's unread count after it (0 for a line not stored).
fn store_within(
    s: &Shared,
    from: &PeerId,
    sender: &budget::Sender,
    new: &[db::NewMessage],
) -> rusqlite::Result<(Vec<db::Verdict>, Vec<u32>)> {
    let quota = db::Quota {
        me: s.identity.id(),
        from,
        session_start: s.chat.started.load(Ordering::Relaxed),
        budget: &s.config.db_budget,
    };
    let at = Instant::now();
    let rate = |bytes| lock(&s.chat.rates).take(&s.config.db_budget, sender, bytes, at);
    // Stored and counted as unread together (see `mark_read`).
    let mut unread = lock(&s.chat.unread);
    let fresh = db::insert_incoming_within(&mut s.store.lock(), new, &quota, rate)?;
    let counts = new
        .iter()
        .zip(&fresh)
        .map(|(m, f)| {
            if *f != db::Verdict::Stored {
                return 0;
            }
            let n = unread.entry(m.conversation.to_string()).or_default();
            *n = n.saturating_add(1);
            *n
        })
        .collect();
    Ok((fresh, counts))
}

/// A line from a device that speaks another protocol (a LocalSend text message): stored and
/// shown like a stranger's chat line, within the same budgets and rates; it has no connection
/// to acknowledge it on. `Ok(false)`: refused over a budget.
pub(crate) async fn receive_foreign(
    shared: &Arc<Shared>,
    from: &PeerId,
    nick: &str,
    ip: std::net::IpAddr,
    text: String,
) -> Result<bool, String> {
    let sender = budget::Sender {
        peer: from.clone(),
        ip: Some(ip),
        stranger: true,
    };
    let (s, from_id, nick_owned) = (shared.clone(), from.clone(), nick.to_string());
    let id = new_message_id();
    let sent_ms = unix_now_ms();
    let line_text = text.clone();
    let line_id = id.clone();
    let stored = off_thread(move || {
        let new = [db::NewMessage {
            id: &line_id,
            conversation: from_id.as_str(),
            sender: &from_id,
            sender_nick: &nick_owned,
            room: false,
            sent_ms,
            received_ms: sent_ms,
            text: &line_text,
        }];
        let (fresh, counts) = store_within(&s, &from_id, &sender, &new)?;
        Ok::<_, rusqlite::Error>((fresh.first() == Some(&db::Verdict::Stored)).then_some(counts[0]))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot store a chat line: {e}"))?;
    let Some(unread) = stored else { return Ok(false) };
    shared.emit(Event::ChatReceived {
        id,
        from: from.clone(),
        nick: nick.to_string(),
        room: false,
        text,
        sent_ms,
        unread,
    });
    Ok(true)
}

impl Link {
    async fn receive(&self, mut rx: mpsc::Receiver<Incoming>, cancel: &CancellationToken) -> Result<(), String> {
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => return Ok(()),
                },
            };
            let mut lines = Vec::new();
            let mut acks = Vec::new();
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Incoming::Line(line) => lines.push(line),
                    Incoming::Ack(id) => acks.push((id, None)),
                    Incoming::Refused(id, reason) => acks.push((id, Some(reason))),
                }
                if lines.len() + acks.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !lines.is_empty() {
                self.store_lines(lines).await?;
            }
            if !acks.is_empty() {
                self.record_acks(acks).await;
            }
        }
    }

    /// Store a burst of the peer's lines in one transaction, then acknowledge each, in order.
    /// A failure ends the connection: the sender then requeues these lines and everything after
    /// them, in order, for the next one.
    async fn store_lines(&self, lines: Vec<Line>) -> Result<(), String> {
        let shared = &self.shared;
        // A connection being replaced may still deliver a few frames; taking them could put them
        // out of order with what the new one resends. Unacked, they come again on the live one.
        if !is_current(shared, &self.peer, self.conn_id) {
            return Ok(());
        }
        let (nick, stranger) = shared
            .peers()
            .get(&self.peer)
            .map(|p| (p.nick.clone(), !p.has_standing()))
            .unwrap_or((String::new(), true));
        let sender = budget::Sender {
            peer: self.peer.clone(),
            ip: Some(self.ip),
            stranger,
        };
        let stored = {
            let (s, from, nick) = (shared.clone(), self.peer.clone(), nick.clone());
            off_thread(move || {
                let now = unix_now_ms();
                let new: Vec<db::NewMessage> = lines
                    .iter()
                    .map(|l| db::NewMessage {
                        id: &l.id,
                        conversation: if l.room { ROOM } else { from.as_str() },
                        sender: &from,
                        sender_nick: &nick,
                        room: l.room,
                        sent_ms: l.sent_ms,
                        received_ms: now,
                        text: &l.text,
                    })
                    .collect();
                let (fresh, counts) = store_within(&s, &from, &sender, &new)?;
                drop(new);
                Ok::<_, rusqlite::Error>((lines, fresh, counts))
            })
            .await
        };
        let (lines, fresh, counts) = match stored {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("cannot store a chat line: {e}")),
            Err(e) => return Err(format!("cannot store a chat line: {e}")),
        };
        // A direct conversation keeps the peer listed however long it stays away: marked once
        // per burst, not per line.
        if lines.iter().zip(&fresh).any(|(l, f)| *f == db::Verdict::Stored && !l.room)
            && let Some(p) = shared.peers().get_mut(&self.peer)
        {
            p.chatted = true;
        }
        let refused = fresh.iter().filter(|f| matches!(f, db::Verdict::Refused(_))).count();
        if refused > 0 {
            tracing::info!("chat: refused {refused} lines from {} (over its budget)", self.peer.short());
        }
        // Committed before the acks go out: nothing acknowledged can be lost.
        // Each line's charge is given back as its answer is queued (the end of this loop's turn).
        for (
            (
                Line {
                    id,
                    room,
                    sent_ms,
                    text,
                    charge,
                },
                fresh,
            ),
            unread,
        ) in lines.into_iter().zip(fresh).zip(counts)
        {
            let answer = match fresh {
                db::Verdict::Refused(reason) => ControlMsg::ChatRefused {
                    id,
                    reason: reason.to_string(),
                },
                db::Verdict::Repeat => ControlMsg::ChatAck { id },
                db::Verdict::Stored => {
                    shared.emit(Event::ChatReceived {
                        id: id.clone(),
                        from: self.peer.clone(),
                        nick: nick.clone(),
                        room,
                        text,
                        sent_ms,
                        unread,
                    });
                    ControlMsg::ChatAck { id }
                }
            };
            // A sender that keeps to its window can never fill this queue; one that doesn't (or
            // that stopped reading) is cut off rather than allowed to block this connection.
            self.tx
                .try_send(answer)
                .map_err(|_| "protocol error: the peer does not read its acknowledgements".to_string())?;
            drop(charge);
        }
        Ok(())
    }

    /// The peer acknowledged (reason `None`) or refused these lines of ours.
    async fn record_acks(&self, ids: Vec<(String, Option<String>)>) {
        let marked = {
            let (s, peer) = (self.shared.clone(), self.peer.clone());
            off_thread(move || {
                let now = unix_now_ms();
                let me = s.identity.id().clone();
                db::mark_answered_batch(&mut s.store.lock(), &me, &peer, &ids, now).map(|m| (ids, m))
            })
            .await
        };
        let (ids, marked) = match marked {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return tracing::warn!("chat: cannot record acks from {}: {e}", self.peer.short()),
            Err(e) => return tracing::warn!("chat: cannot record acks from {}: {e}", self.peer.short()),
        };
        let mut any = false;
        for ((id, refused), sent_on) in ids.into_iter().zip(marked) {
            // Repeated, or for a line we never sent it: nothing to do.
            let Some(sent_on) = sent_on else { continue };
            if sent_on == Some(self.conn_id) {
                self.window.add_permits(1);
            }
            let to = self.peer.clone();
            self.shared.emit(match refused {
                None => Event::ChatDelivered { id, to },
                Some(reason) => Event::ChatRefused { id, to, reason },
            });
            any = true;
        }
        if any {
            self.shared.chat.delivered.notify_waiters();
        }
    }
}

/// At start: no connection survived, so nothing is in flight; and the unread counts.
pub(crate) fn load(shared: &Shared) -> Result<()> {
    shared.chat.started.store(unix_now(), Ordering::Relaxed);
    let store = shared.store.lock();
    db::requeue_all(&store)?;
    *lock(&shared.chat.unread) = db::unread_counts(&store)?.into_iter().collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_distinct() {
        let a = new_message_id();
        assert!(crate::net::wire::valid_chat_id(&a), "{a}");
        assert_ne!(a, new_message_id());
    }

    #[test]
    fn text_bounds() {
        assert!(check_text("hi").is_ok());
        assert!(check_text(&"x".repeat(MAX_CHAT_TEXT)).is_ok());
        let err = check_text(&"x".repeat(MAX_CHAT_TEXT + 1)).unwrap_err().to_string();
        assert!(err.contains("too long") && err.contains("16 KiB"), "{err}");
        assert!(check_text("").is_err());
    }
}
