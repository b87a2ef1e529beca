//! The Node: everything that happens on the network. Faces (TUI, one-shot commands, `serve
//! --json`, tests) hold a [`NodeHandle`], call its methods and subscribe to its [`Event`]s.
//!
//! Its files: `handle` ([`NodeHandle`]: start, peers, nick, shutdown), `api` (the face API as
//! data), `control` (the control socket), `events`, `snapshot`, `peers` (the peer table),
//! `names` (names people type and see), `nick` (the nick kept in the data dir), `known`
//! (remembered peers), `conn` (connection tasks), `slots` (who may hold a connection), `dials`
//! (the gate every discovered dial passes), `browse` (when to query mDNS), `exchange` (peer
//! exchange), `share` (shared folders), `portable` (`id export`/`id import`), `alone` (the hint
//! when no peer turns up), `doctor` (what the network checks mean), `tally` (counts tests wait
//! on); `chat/`, `transfer/`, `locker/` and `localsend/` are modules of their own.

mod alone;
pub mod api;
mod browse;
pub(crate) mod chat;
pub(crate) mod conn;
pub mod control;
mod dials;
pub(crate) mod doctor;
pub mod events;
mod exchange;
mod handle;
mod known;
pub(crate) mod localsend;
pub(crate) mod locker;
pub(crate) mod names;
pub(crate) mod nick;
pub(crate) mod peers;
mod portable;
pub(crate) mod share;
mod slots;
pub mod snapshot;
mod tally;
pub(crate) mod transfer;

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

pub(crate) use crate::identity::PeerId;
use crate::identity::{Identity, ensure_private_dir};
use crate::net::discovery::{Discovery, DiscoveryEvent};
use crate::net::wire::{Hello, MAX_NICK_BYTES};
use crate::store::Store;
pub(crate) use chat::{ChatEntry, ROOM};
use events::Emitter;
pub(crate) use events::{Envelope, Event, ReceivedFile, RecvError};
pub(crate) use handle::NodeHandle;
pub(crate) use peers::PeerInfo;
use peers::PeerTable;
pub(crate) use snapshot::Snapshot;
use transfer::Registry;
pub(crate) use transfer::{OfferView, TransferView};

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
    /// Browse with mDNS. Off in tests outside network namespaces, whose nodes would otherwise
    /// find (and be found by) every lanyard on the real LAN.
    pub mdns: bool,
    /// Also announce ourselves over mDNS (only meaningful with `mdns` and `listen`).
    pub advertise: bool,
    pub accept_all: bool,
    /// What peers' chat may cost this node, and when one-time keys are forgotten.
    pub db_budget: chat::DbBudget,
    /// A transfer that moves no byte for this long ends (`limits::TRANSFER_STALL`).
    pub stall_timeout: Duration,
    /// A control connection that reads or writes nothing for this long is dropped
    /// (`limits::CONTROL_IDLE_LIMIT`; tests shorten it).
    pub control_idle_limit: Duration,
    /// Offer paused sends again by itself once their peers are online (a node that keeps
    /// running: `serve`, the TUI); a one-shot command leaves them to the next such node.
    pub resume: bool,
    /// What this node holds for others, and when its own deposits are repaired.
    pub locker: locker::LockerConfig,
    /// Speak LocalSend v2 (see `localsend`); `None`: not at all.
    pub localsend: Option<localsend::LocalSendConfig>,
    /// Test hook: as a relay, flip a byte of the forwarded segment with this number.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub corrupt_forward: Option<u64>,
    /// Test hook: as a relay, lie instead of forwarding (see [`RelayTamper`]).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub relay_tamper: Option<RelayTamper>,
}

/// Test hook: what a hostile relay does with the chain it is handed, for the tests that show a
/// sender believes none of it.
#[cfg(feature = "test-hooks")]
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
            control_idle_limit: crate::limits::CONTROL_IDLE_LIMIT,
            resume: false,
            locker: locker::LockerConfig::default(),
            localsend: None,
            #[cfg(feature = "test-hooks")]
            corrupt_forward: None,
            #[cfg(feature = "test-hooks")]
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
    pub tracker: crate::tasks::Tasks,
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
    /// LocalSend, when on.
    pub(crate) localsend: Option<localsend::LocalSend>,
    /// Bumped whenever the peer table or a manual target changes in a way a waiter
    /// ([`NodeHandle::resolve`], [`NodeHandle::wait_online`]) may care about: they sleep on it
    /// instead of polling.
    pub(crate) changed: watch::Sender<u64>,
    /// The data dir's lock: taken at start, dropped by [`NodeHandle::shutdown`] once every task
    /// has ended (not when the last handle goes, which a face may keep for a while).
    lock: Mutex<Option<File>>,
    /// What tests wait on to know something did not happen (see `tally`).
    pub(crate) tally: tally::Tally,
    /// The locker's state in memory: budget held for deposits arriving, our deposits as faces
    /// were last told them.
    pub(crate) locker: Arc<locker::State>,
}

/// Run blocking work (the database, the disk) off the async workers.
///
/// On a multi-threaded runtime the work runs right here after this thread hands its async duties
/// to another (`block_in_place`): no hop to a pool thread and back, which on this machine class
/// doubled chat's round trip. Elsewhere (single-threaded test runtimes) it goes to the blocking
/// pool.
///
/// At most [`crate::limits::BLOCKING_CALLS`] run at once in the process; the rest wait here, as
/// tasks. All of this work takes the database's one lock, so more at once would only park more
/// threads on it: each call in `block_in_place` holds a thread, the runtime starts another to
/// carry on, and a chat flood over a hundred connections then ran on as many threads, each with
/// its stack and its allocator cache.
pub(crate) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(crate::limits::BLOCKING_CALLS);
    let _turn = TURNS.acquire().await.map_err(|e| anyhow::anyhow!("{e}"))?;
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
