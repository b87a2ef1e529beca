//! The Node: everything that happens on the network. Faces (TUI, one-shot commands, `serve
//! --json`, tests) hold a [`NodeHandle`], call its methods and subscribe to its [`Event`]s.

mod alone;
pub mod api;
mod browse;
pub mod chat;
pub(crate) mod conn;
pub mod control;
mod dials;
pub mod doctor;
pub mod events;
mod exchange;
pub mod names;
pub mod nick;
pub mod peers;
mod places;
pub mod share;
mod slots;
mod snapshot;
pub mod transfer;

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::identity::PeerId;
use crate::identity::{Identity, ensure_private_dir};
use crate::net::discovery::{Advert, Discovery, DiscoveryEvent};
use crate::net::wire::{Hello, MAX_NICK_BYTES};
use crate::store::{DB_FILE, Store};
pub use chat::{ChatEntry, ChatTarget, Delivery, ROOM};
use events::Emitter;
pub use events::{Envelope, Event, Lagged, ReceivedFile, RecvError, Subscription};
pub use peers::PeerInfo;
use peers::PeerTable;
pub use share::{EntryKind, ShareEntry};
pub use slots::SlotCounts;
pub use snapshot::{ConversationView, Me, Snapshot};
use transfer::Registry;
pub use transfer::{
    Direction, GroupTask, OfferItem, OfferView, Outcome, Prepared, Reason, TransferError, TransferState, TransferTask, TransferView,
};

pub const DEFAULT_PORT: u16 = 7717;
/// How often a waiter for a peer looks again even without a change signalled.
const RECHECK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// A nick given for this run: stored in the data dir for the next ones. `None`: the stored
    /// nick, else the default (see [`nick`]).
    pub nick: Option<String>,
    pub data_dir: PathBuf,
    pub download_dir: PathBuf,
    pub shares: Vec<PathBuf>,
    /// Where to accept connections; `None` for a node that only dials (one-shot commands).
    pub listen: Option<SocketAddr>,
    /// When `listen`'s port is taken, try up to this many ports after it (a second user's node
    /// on the same machine); 0 makes a taken port an error.
    pub listen_fallback: u16,
    pub manual_peers: Vec<String>,
    /// Browse with mDNS. Off in tests outside network namespaces: see DEVELOPERS.md.
    pub mdns: bool,
    /// Also announce ourselves over mDNS (only meaningful with `mdns` and `listen`).
    pub advertise: bool,
    pub accept_all: bool,
    /// What peers' chat may cost this node, and when one-time keys are forgotten.
    pub db_budget: chat::DbBudget,
    /// A transfer that moves no byte for this long ends (`limits::TRANSFER_STALL`).
    pub stall_timeout: Duration,
    /// Offer paused sends again by itself once their peers are online (a node that keeps
    /// running: `serve`, the TUI); a one-shot command leaves them to the next such node.
    pub resume: bool,
    /// Test hook: as a relay, flip a byte of the forwarded segment with this number.
    #[doc(hidden)]
    pub corrupt_forward: Option<u64>,
    /// Test hook: as a relay, lie instead of forwarding (see [`RelayTamper`]).
    #[doc(hidden)]
    pub relay_tamper: Option<RelayTamper>,
}

/// Test hook: what a hostile relay does with the chain it is handed, for the tests that show a
/// sender believes none of it.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum RelayTamper {
    /// Forward nothing; report every peer behind it verified.
    ClaimVerified,
    /// Forward nothing; report every peer behind it failed, with this code and these words.
    ClaimFailed(crate::reason::Reason, String),
    /// Forward the offer to this peer instead of the chain it was given.
    Redirect(PeerId),
}

impl NodeConfig {
    /// A node on 127.0.0.1 with a free port, no multicast: what in-process tests run.
    pub fn local(nick: &str, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            nick: Some(nick.to_string()),
            download_dir: data_dir.join("downloads"),
            data_dir,
            shares: Vec::new(),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            listen_fallback: 0,
            manual_peers: Vec::new(),
            mdns: false,
            advertise: false,
            accept_all: false,
            db_budget: chat::DbBudget::default(),
            stall_timeout: crate::limits::TRANSFER_STALL,
            resume: false,
            corrupt_forward: None,
            relay_tamper: None,
        }
    }
}

/// Check a nick we are about to use ourselves.
pub fn validate_nick(nick: &str) -> Result<()> {
    if nick.trim().is_empty() || nick.len() > MAX_NICK_BYTES {
        bail!("nick must be 1 to {MAX_NICK_BYTES} bytes");
    }
    if !crate::text::is_clean(nick) {
        bail!(
            "nick must not contain control characters, bidi marks or invisible characters: {}",
            crate::text::printable(nick)
        );
    }
    Ok(())
}

/// State of a `--peer HOST:PORT` target.
#[derive(Debug, Default, Clone)]
struct ManualTarget {
    id: Option<PeerId>,
    last_error: Option<String>,
    attempts: u64,
    /// The peer pinned to this address while another key answers there: forgetting it wakes
    /// the dialler at once (see `conn::pin_forgotten`).
    refused_for: Option<PeerId>,
    wake: Arc<tokio::sync::Notify>,
}

pub(crate) struct Shared {
    pub identity: Identity,
    pub config: NodeConfig,
    pub host: String,
    /// This run of the node (see `Hello::session`).
    session: u64,
    nick: Mutex<String>,
    pub peers: Mutex<PeerTable>,
    pub events: Emitter,
    pub store: Store,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub listen_addr: Option<SocketAddr>,
    pub(crate) slots: Arc<slots::Slots>,
    /// Refused connections being told why (see `limits::REFUSAL_DRAIN`).
    pub(crate) draining: Arc<Semaphore>,
    full_warned: Mutex<Option<std::time::Instant>>,
    /// Dials of peers known only from other peers' lists (see `exchange`).
    pub hinted_dials: Arc<Semaphore>,
    /// The gate every dial of a discovered peer passes (see `dials`).
    pub(crate) dial_gate: Mutex<dials::DialGate>,
    next_id: AtomicU64,
    manual: Mutex<HashMap<String, ManualTarget>>,
    /// Where discovery results go: mDNS feeds it, and so can [`NodeHandle::discovered`].
    discovered: mpsc::UnboundedSender<DiscoveryEvent>,
    pub(crate) discovery: tokio::sync::Mutex<Option<Discovery>>,
    pub(crate) chat: chat::Chat,
    pub transfers: Registry,
    /// Bumped whenever the peer table or a manual target changes in a way a waiter
    /// ([`NodeHandle::resolve`], [`NodeHandle::wait_online`]) may care about: they sleep on it
    /// instead of polling.
    pub(crate) changed: watch::Sender<u64>,
    _lock: File,
}

/// Run blocking work (the database, the disk) off the async workers.
///
/// On a multi-threaded runtime the work runs right here after this thread hands its async duties
/// to another (`block_in_place`): no hop to a pool thread and back, which on this machine class
/// doubled chat's round trip. Elsewhere (single-threaded test runtimes) it goes to the blocking
/// pool.
pub(crate) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        return Ok(tokio::task::block_in_place(work));
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow::anyhow!("a background task failed: {e}"))
}

/// A poisoned lock only means another task panicked mid-update of plain bookkeeping: go on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Wake whoever waits for a peer to appear, connect or answer ([`NodeHandle::resolve`]).
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A connection refused for want of a slot: said to faces at most once a minute (a lab past
    /// the limit would otherwise say it hundreds of times).
    pub(crate) fn warn_full(&self, remote: &crate::net::secure::Remote, reason: &str) {
        tracing::warn!("refused {} ({}): {reason}", remote.addr, remote.id.short());
        let now = std::time::Instant::now();
        let mut last = lock(&self.full_warned);
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
            *last = Some(now);
            self.emit(Event::Warning {
                message: format!(
                    "refused a connection from {} ({reason}); more refusals are not reported for a minute",
                    remote.addr
                ),
            });
        }
    }

    pub fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    pub fn peers(&self) -> MutexGuard<'_, PeerTable> {
        lock(&self.peers)
    }

    pub fn nick(&self) -> String {
        lock(&self.nick).clone()
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn hello(&self) -> Hello {
        Hello {
            nick: self.nick(),
            host: self.host.clone(),
            listen_port: self.listen_addr.map(|a| a.port()),
            software: concat!("lanyard ", env!("CARGO_PKG_VERSION")).to_string(),
            session: self.session,
        }
    }
}

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

        let table = places::load_table(&store, identity.id(), config.db_budget.one_time_peer_age)?;

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
            tracker: TaskTracker::new(),
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
            changed: watch::channel(0).0,
            _lock: lock_file,
        });
        chat::load(&shared)?;
        transfer::load_records(&shared)?;
        let handle = NodeHandle { shared: shared.clone() };

        if let Some(listener) = listener {
            shared.tracker.spawn(conn::accept_loop(shared.clone(), listener));
        }
        shared.tracker.spawn(conn::on_discovery(shared.clone(), discovered_rx));
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
            shared.tracker.spawn(browse::schedule(shared.clone()));
        }
        for target in shared.config.manual_peers.clone() {
            handle.add_peer(&target);
        }
        shared.tracker.spawn(places::dial_remembered(shared.clone()));
        shared.tracker.spawn(places::prune_periodically(shared.clone()));
        shared.tracker.spawn(transfer::expire_partials(shared.clone()));
        if shared.config.advertise && listen_addr.is_some() {
            shared.tracker.spawn(alone::hint_if_alone(shared.clone()));
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
            .spawn(conn::maintain_manual(self.shared.clone(), target.to_string()));
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
    async fn wait_change(&self, changed: &mut watch::Receiver<u64>, deadline: tokio::time::Instant) -> bool {
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

    /// Say goodbye to every peer, withdraw the mDNS record, and wait (briefly) for tasks to end.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        if let Some(d) = self.shared.discovery.lock().await.take() {
            d.shutdown().await;
        }
        self.shared.tracker.close();
        // Running transfers finish the write under way and tell their peers they stop
        // (`limits::FINISH_WRITE`, then up to 2 s to say it).
        let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.tracker.wait()).await;
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

fn looks_like_address(spec: &str) -> bool {
    spec.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// This data dir's node id and fingerprint (created on first use), without starting a node.
pub fn identity_of(data_dir: &std::path::Path) -> Result<(PeerId, String)> {
    let dir = ensure_private_dir(data_dir)?;
    let identity = Identity::load_or_create(&dir)?;
    Ok((identity.id().clone(), identity.fingerprint()))
}

/// Another node holds the data dir.
#[derive(Debug, thiserror::Error)]
#[error("another lanyard node is already running on data dir {}", data_dir.display())]
pub struct AlreadyRunning {
    pub data_dir: PathBuf,
}

/// One node per data dir: an exclusive lock held for the node's life (released by the OS even
/// when the process is killed).
fn take_lock(data_dir: &std::path::Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("lock");
    // Owner-only from the start, as everything in the data dir (`make_files_private` comes
    // after the lock is taken).
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AlreadyRunning {
            data_dir: data_dir.to_path_buf(),
        }
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        // Cut by bytes, as the handshake bounds it, without hostile characters.
        .map(|h| nick::usable(&h))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_from_nicks() {
        assert!(looks_like_address("127.0.0.1:7717"));
        assert!(looks_like_address("lab-3.local:7717"));
        assert!(looks_like_address("[::1]:7717"));
        assert!(!looks_like_address("ada"));
        assert!(!looks_like_address("ada:"));
        assert!(!looks_like_address(":7717"));
    }

    #[test]
    fn own_nick_is_checked() {
        assert!(validate_nick("ada").is_ok());
        assert!(validate_nick("").is_err());
        assert!(validate_nick("a\u{1b}[31m").is_err());
        for hidden in ["carol\u{200b}", "\u{202e}ada", "bob\u{200f}", "x\u{feff}", "\u{3164}", "a\u{e0041}"] {
            let err = validate_nick(hidden).unwrap_err().to_string();
            assert!(crate::text::is_clean(&err), "{err}");
        }
        assert!(validate_nick("zoë 🎉").is_ok());
        assert!(validate_nick(&"x".repeat(65)).is_err());
    }
}
