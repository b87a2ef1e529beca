//! The handle every face holds ([`NodeHandle`]): starting and stopping a node, who it is, its
//! peers (resolving, waiting for, trusting and forgetting them) and the snapshot a face draws
//! from. Chat and transfers add their own calls (`chat`, `transfer::api`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::events::{Emitter, Event, Subscription};
use super::peers::PeerInfo;
use super::slots::SlotCounts;
use super::snapshot::{ConversationView, Me, Snapshot};
use super::transfer::Registry;
use super::{
    ManualTarget, NodeConfig, RECHECK, ROOM, Shared, alone, browse, chat, conn, dials, hostname, known, lock, looks_like_address, nick,
    off_thread, peers, take_lock, transfer, validate_nick,
};
use crate::identity::{Identity, PeerId, ensure_private_dir};
use crate::limits::{SHUTDOWN_LIMIT, SHUTDOWN_WARN};
use crate::net::discovery::{Advert, Discovery, DiscoveryEvent};
use crate::store::{DB_FILE, Store};

/// The handle every face holds. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) shared: Arc<Shared>,
}

impl NodeHandle {
    /// Start a node: take the data dir's lock, load the identity and database, listen, discover.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle> {
        if let Some(nick) = &config.nick {
            validate_nick(nick)?;
        }
        let data_dir = ensure_private_dir(&config.data_dir)?;
        let lock_file = take_lock(&data_dir)?;
        let identity = Identity::load_or_create(&data_dir)?;
        let store = Store::open(&data_dir.join(DB_FILE))?;
        // Journals an older version made readable by others are closed now they exist.
        crate::identity::make_files_private(&data_dir)?;
        let nick = nick::settle(&store, config.nick.as_deref())?;

        let listener = match config.listen {
            Some(addr) => Some(listen(addr, config.listen_fallback).await?),
            None => None,
        };
        let listen_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let localsend = match &config.localsend {
            Some(c) => Some(super::localsend::bind(&data_dir, c).await?),
            None => None,
        };
        let (localsend, localsend_listener, localsend_moved) = match localsend {
            Some((state, listener, moved)) => (Some(state), Some(listener), moved),
            None => (None, None, None),
        };

        let table = known::load_table(&store, identity.id(), config.db_budget.one_time_peer_age)?;

        let (discovered, discovered_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            host: hostname(),
            session: rand::random_range(1..u64::MAX),
            nick: Mutex::new(nick),
            identity,
            config,
            peers: Mutex::new(table),
            events: Emitter::new(),
            store,
            cancel: CancellationToken::new(),
            tracker: crate::tasks::Tasks::default(),
            listen_addr,
            slots: Arc::default(),
            draining: Arc::new(Semaphore::new(crate::limits::MAX_REFUSALS_DRAINING)),
            full_warned: Mutex::new(None),
            hinted_dials: Arc::new(Semaphore::new(crate::limits::MAX_HINTED_DIALS)),
            dial_gate: Mutex::new(dials::DialGate::new(std::time::Instant::now())),
            next_id: AtomicU64::new(1),
            manual: Mutex::new(HashMap::new()),
            discovered,
            discovery: tokio::sync::Mutex::new(None),
            chat: chat::Chat::default(),
            transfers: Registry::default(),
            localsend,
            changed: watch::channel(0).0,
            lock: Mutex::new(Some(lock_file)),
            tally: Default::default(),
            locker: Default::default(),
        });
        chat::load(&shared)?;
        transfer::load_records(&shared)?;
        let handle = NodeHandle { shared: shared.clone() };

        if let Some(listener) = listener {
            shared.tracker.spawn("conn::accept", conn::accept_loop(shared.clone(), listener));
        }
        shared
            .tracker
            .spawn("conn::discovered", conn::on_discovery(shared.clone(), discovered_rx));
        if let Some(listener) = localsend_listener {
            super::localsend::start(&shared, listener)?;
            if let (Some(from), Some(ls)) = (localsend_moved, &shared.localsend) {
                // Said in serve's log (`localsend()`), not as a warning event: a second user's
                // node on this machine always moves, and says so once, for its own port.
                tracing::warn!("LocalSend port {from} taken: listening on {}", ls.port);
            }
        }
        if shared.config.mdns {
            let advert = match (shared.config.advertise, listen_addr) {
                (true, Some(addr)) => Some(Advert {
                    id: shared.identity.id().clone(),
                    nick: shared.nick(),
                    host: shared.host.clone(),
                    port: addr.port(),
                }),
                _ => None,
            };
            let discovery = Discovery::start(
                shared.identity.id(),
                advert.as_ref(),
                shared.discovered.clone(),
                shared.cancel.child_token(),
            )?;
            *shared.discovery.lock().await = Some(discovery);
            shared.tracker.spawn("browse::schedule", browse::schedule(shared.clone()));
        }
        for target in shared.config.manual_peers.clone() {
            handle.add_peer(&target);
        }
        shared
            .tracker
            .spawn("known::dial_remembered", known::dial_remembered(shared.clone()));
        shared.tracker.spawn("known::prune", known::prune_periodically(shared.clone()));
        shared.tracker.spawn("transfer::expire", transfer::expire_partials(shared.clone()));
        // A node that keeps running keeps its deposits alive, and checks what it holds.
        if listen_addr.is_some() {
            shared
                .tracker
                .spawn("locker::keep_deposits", super::locker::repair::keep_deposits(handle.clone()));
            shared.tracker.spawn("locker::scrub", super::locker::repair::scrub(shared.clone()));
        }
        if shared.config.advertise && listen_addr.is_some() {
            shared.tracker.spawn("alone::hint", alone::hint_if_alone(shared.clone()));
        }
        if let Some(addr) = listen_addr {
            shared.emit(Event::Listening {
                id: shared.identity.id().clone(),
                nick: shared.nick(),
                addr: addr.to_string(),
            });
        }
        Ok(handle)
    }

    pub fn id(&self) -> &PeerId {
        self.shared.identity.id()
    }

    pub fn fingerprint(&self) -> String {
        self.shared.identity.fingerprint()
    }

    pub fn nick(&self) -> String {
        self.shared.nick()
    }

    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.shared.listen_addr
    }

    /// What to tell the user when the port asked for was taken and the node listens on another.
    pub fn port_moved(&self) -> Option<String> {
        let wanted = self.shared.config.listen?.port();
        let actual = self.listen_addr()?.port();
        (wanted != 0 && wanted != actual).then(|| {
            format!(
                "port {wanted} is taken (another lanyard on this machine?): listening on {actual} instead; \
                 mDNS tells peers, and a --peer needs HOST:{actual}"
            )
        })
    }

    /// Connection slots in use now (tests and figures; see `limits`).
    #[doc(hidden)]
    pub fn slot_counts(&self) -> SlotCounts {
        self.shared.slots.counts()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// The event stream from now on. Subscribe, then take a [`snapshot`](Self::snapshot), then
    /// apply every event after the snapshot's `seq`.
    pub fn subscribe(&self) -> Subscription {
        self.shared.events.subscribe()
    }

    /// The number of the last event sent.
    pub fn last_seq(&self) -> u64 {
        self.shared.events.seq()
    }

    /// Every known peer, online first, with its unread lines and running transfers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut peers = self.shared.peers().list();
        let unread = self.unread();
        let busy = self.shared.transfers.running_per_peer();
        for p in &mut peers {
            p.unread = unread.get(p.id.as_str()).copied().unwrap_or(0);
            p.transfers = busy.get(&p.id).copied().unwrap_or(0);
        }
        peers
    }

    pub fn peer(&self, id: &PeerId) -> Option<PeerInfo> {
        self.shared.peers().info(id)
    }

    pub fn is_online(&self, id: &PeerId) -> bool {
        self.shared.peers().is_online(id)
    }

    /// Peers that other peers named (peer exchange) and that have not answered yet: not listed,
    /// not stored, at most `limits::MAX_CANDIDATES`. For diagnostics and tests.
    pub fn unconfirmed_peers(&self) -> usize {
        self.shared.peers().candidates()
    }

    /// Keep a connection to HOST:PORT (redialled when it drops), for networks without multicast.
    pub fn add_peer(&self, target: &str) {
        let mut manual = lock(&self.shared.manual);
        if manual.contains_key(target) {
            return;
        }
        manual.insert(target.to_string(), ManualTarget::default());
        self.shared
            .tracker
            .spawn("conn::manual", conn::maintain_manual(self.shared.clone(), target.to_string()));
    }

    /// Feed a discovery result, as mDNS does: the node dials the peer and refuses it unless the
    /// key that answers matches the advertised id.
    pub fn discovered(&self, event: DiscoveryEvent) {
        let _ = self.shared.discovered.send(event);
    }

    /// Resolve what a user typed as PEER — nick, id prefix or HOST:PORT — waiting up to `wait`
    /// for it to be discovered or connected.
    pub async fn resolve(&self, spec: &str, wait: Duration) -> Result<PeerId> {
        let deadline = tokio::time::Instant::now() + wait;
        let is_address = looks_like_address(spec);
        // Subscribed before the first look, so no change between a look and the wait is missed.
        let mut changed = self.shared.changed.subscribe();
        if is_address {
            self.add_peer(spec);
        }
        loop {
            changed.borrow_and_update();
            if is_address {
                let target = lock(&self.shared.manual).get(spec).cloned().unwrap_or_default();
                // The id is known once the handshake is done, a moment before the connection
                // is registered with the peer's address: wait for that too.
                if let Some(id) = target.id
                    && self.is_online(&id)
                {
                    return Ok(id);
                }
                if let (Some(err), true) = (&target.last_error, target.attempts > 0) {
                    bail!("cannot reach {spec}: {err}");
                }
            } else {
                match self.shared.peers().find(spec) {
                    Ok(id) => return Ok(id),
                    Err(e @ peers::FindError::Ambiguous(_)) => return Err(e.into()),
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.into()),
                    Err(peers::FindError::Unknown(_)) => {}
                }
            }
            if !self.wait_change(&mut changed, deadline).await {
                bail!("timed out waiting for {spec}");
            }
        }
    }

    /// Wait until `id` has a live connection.
    pub async fn wait_online(&self, id: &PeerId, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if self.is_online(id) {
                return true;
            }
            if !self.wait_change(&mut changed, deadline).await {
                return false;
            }
        }
    }

    /// Until the peer table or a manual target changes (true), or `deadline` passes (false).
    /// A slow re-check backs the signal up, so a change nobody signalled delays a waiter
    /// rather than strands it.
    pub(super) async fn wait_change(&self, changed: &mut watch::Receiver<u64>, deadline: tokio::time::Instant) -> bool {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        let until = deadline.min(now + RECHECK);
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(until) => {}
            _ = self.shared.cancel.cancelled() => return false,
        }
        true
    }

    /// Change our nick: kept in the data dir, told to every connected peer and re-advertised.
    pub async fn set_nick(&self, nick: &str) -> Result<()> {
        validate_nick(nick)?;
        {
            let (shared, nick) = (self.shared.clone(), nick.to_string());
            off_thread(move || nick::keep(&shared.store, &nick)).await??;
        }
        // Kept either way; peers hear of it only when it changed.
        if std::mem::replace(&mut *lock(&self.shared.nick), nick.to_string()) == nick {
            return Ok(());
        }
        let senders: Vec<_> = {
            let t = self.shared.peers();
            t.ids().filter_map(|id| t.sender(id)).collect()
        };
        for tx in senders {
            let _ = tx.send(crate::net::wire::ControlMsg::Nick { nick: nick.to_string() }).await;
        }
        if let (Some(d), Some(addr)) = (self.shared.discovery.lock().await.as_mut(), self.shared.listen_addr) {
            d.advertise(&Advert {
                id: self.id().clone(),
                nick: nick.to_string(),
                host: self.shared.host.clone(),
                port: addr.port(),
            })?;
        }
        Ok(())
    }

    /// Resolves once shutdown has begun.
    pub async fn cancelled(&self) {
        self.shared.cancel.cancelled().await
    }

    /// Say goodbye to every peer, withdraw the mDNS record, wait for every task to end, then
    /// release the data dir's lock (so a node started on it next finds it free). Returns the
    /// names of the tasks that had not ended by `limits::SHUTDOWN_LIMIT` (empty when all did);
    /// those are also logged, by name.
    pub async fn shutdown(&self) -> Vec<&'static str> {
        self.shutdown_for(SHUTDOWN_LIMIT).await
    }

    /// Test hook: shut down, giving the tasks `limit` to end (see [`NodeHandle::shutdown`]).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn shutdown_within(&self, limit: Duration) -> Vec<&'static str> {
        self.shutdown_for(limit).await
    }

    /// Test hook: a task of the node that ignores shutdown until the returned token is
    /// cancelled, for the test that shows shutdown names what it left running.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn spawn_stuck_task(&self) -> CancellationToken {
        let release = CancellationToken::new();
        let r = release.clone();
        self.shared.tracker.spawn("test::stuck", async move { r.cancelled().await });
        release
    }

    async fn shutdown_for(&self, limit: Duration) -> Vec<&'static str> {
        self.shared.cancel.cancel();
        if let Some(d) = self.shared.discovery.lock().await.take() {
            d.shutdown().await;
        }
        let tasks = &self.shared.tracker;
        tasks.close();
        // Running transfers finish the write under way and tell their peers they stop
        // (`limits::FINISH_WRITE`, then up to 2 s to say it): all should be over within
        // `SHUTDOWN_WARN`. The lock stays held while any task runs, so no second node writes
        // beside it; the ones that take longer are named, and waited for up to `limit`: a
        // person who quits gets the terminal back even if a task hangs (it is named, and the
        // process's exit ends it).
        let started = tokio::time::Instant::now();
        let deadline = started + limit;
        let mut late = Vec::new();
        loop {
            let until = deadline.min(tokio::time::Instant::now() + SHUTDOWN_WARN);
            if tokio::time::timeout_at(until, tasks.wait()).await.is_ok() {
                break;
            }
            late = tasks.running();
            let waited = started.elapsed().as_secs();
            let names = crate::tasks::summary(&late);
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("shutting down: these tasks of the node did not end within {waited} s, left running: {names}");
                break;
            }
            tracing::warn!(
                "shutting down: these tasks of the node still run after {waited} s (the data dir stays locked until they end): {names}"
            );
        }
        drop(lock(&self.shared.lock).take());
        late
    }
}

/// Bind `addr`; when its port is taken, the first free one of the `fallback` ports after it.
async fn listen(addr: SocketAddr, fallback: u16) -> Result<TcpListener> {
    let mut error = match TcpListener::bind(addr).await {
        Ok(listener) => return Ok(listener),
        Err(e) => e,
    };
    let mut last = addr.port();
    for port in (1..=fallback).map_while(|i| addr.port().checked_add(i)) {
        if addr.port() == 0 || error.kind() != std::io::ErrorKind::AddrInUse {
            break;
        }
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) => (error, last) = (e, port),
        }
    }
    Err(error).with_context(|| match (addr.port(), last) {
        (0, _) => format!("cannot listen on {addr}"),
        (port, last) if last > port => format!("cannot listen on port {port} nor on any up to {last} (all taken?)"),
        (port, _) => {
            format!("cannot listen on port {port} (another program uses it? pick one with --port, or --port 0 for any free port)")
        }
    })
}

/// Trusting and forgetting peers.
impl NodeHandle {
    /// Drop a peer's record and pinned key from the store, and the peer from the table, now. A
    /// live connection to it is closed, so a forgotten peer that is still around is pinned
    /// afresh on its next connection. Its chat history stays. False if it was not known.
    pub async fn forget(&self, id: &PeerId) -> Result<bool> {
        if id == self.id() {
            bail!("that is this node itself");
        }
        let stored = {
            let (shared, id) = (self.shared.clone(), id.clone());
            off_thread(move || shared.store.forget_peer(&id)).await??
        };
        let removed = {
            let mut table = self.shared.peers();
            let removed = table.remove(id);
            // The connection's own end finds no entry and stays silent: say it here, once, under
            // the lock, so a connection that comes right back is told after this.
            if let Some(p) = &removed {
                if let Some(c) = &p.conn {
                    c.cancel.cancel();
                }
                if p.announced {
                    self.shared.emit(Event::PeerDown {
                        id: id.clone(),
                        nick: p.nick.clone(),
                        reason: "forgotten".into(),
                    });
                }
            }
            removed
        };
        conn::pin_forgotten(&self.shared, id);
        let known = stored || removed.is_some();
        if known {
            self.shared.touch();
            self.shared.emit(Event::PeerForgotten { id: id.clone() });
        }
        Ok(known)
    }

    /// Auto-accept files from a peer (or stop), kept in the store.
    /// The peer whose key is pinned to `spec` when it is a HOST:PORT given before.
    pub async fn pinned_at(&self, spec: &str) -> Result<Option<PeerId>> {
        if !super::looks_like_address(spec) {
            return Ok(None);
        }
        let (shared, target) = (self.shared.clone(), spec.to_string());
        Ok(off_thread(move || shared.store.address_pin(&target)).await??.map(|(id, _)| id))
    }

    pub async fn set_trusted(&self, id: &PeerId, trusted: bool) -> Result<()> {
        let stored = {
            let (shared, peer) = (self.shared.clone(), id.clone());
            off_thread(move || shared.store.set_trusted(&peer, trusted)).await??
        };
        if !stored {
            bail!("unknown peer {id}: it has never connected");
        }
        if let Some(p) = self.shared.peers().get_mut(id) {
            p.trusted = trusted;
        }
        self.shared.touch();
        self.shared.emit(Event::TrustChanged { id: id.clone(), trusted });
        Ok(())
    }
}

impl NodeHandle {
    /// Everything a face draws, as of event `seq`.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        // Read before the state: an event that lands meanwhile is both in the state and applied
        // again by the face, which is harmless (events carry state); the reverse would lose it.
        let seq = self.shared.events.seq();
        let config = &self.shared.config;
        let me = Me {
            id: self.id().clone(),
            fingerprint: self.fingerprint(),
            nick: self.nick(),
            host: self.shared.host.clone(),
            listen: self.listen_addr().map(|a| a.to_string()),
            download_dir: config.download_dir.display().to_string(),
            shares: config.shares.iter().map(|s| s.display().to_string()).collect(),
            mdns: config.mdns,
        };
        let mut conversations: Vec<ConversationView> = self
            .conversations()
            .await?
            .into_iter()
            .map(|(last, unread)| ConversationView {
                conversation: last.conversation.clone(),
                last: Some(last),
                unread,
            })
            .collect();
        conversations.sort_by(|a, b| {
            let when = |c: &ConversationView| c.last.as_ref().map_or(0, |l| l.received_ms);
            (b.conversation == ROOM)
                .cmp(&(a.conversation == ROOM))
                .then_with(|| when(b).cmp(&when(a)))
        });
        if conversations.first().is_none_or(|c| c.conversation != ROOM) {
            conversations.insert(
                0,
                ConversationView {
                    conversation: ROOM.to_string(),
                    last: None,
                    unread: 0,
                },
            );
        }
        Ok(Snapshot {
            seq,
            me,
            peers: self.peers(),
            conversations,
            transfers: self.transfers(),
            offers: self.offers(),
            localsend: self.localsend().map(|l| l.devices).unwrap_or_default(),
            deposits: self.deposit_views().await?,
        })
    }
}
