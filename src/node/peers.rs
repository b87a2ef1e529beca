//! The peer table: everything known about other nodes, and which control connection is live.
//! Pure bookkeeping (no I/O) so that the tricky rules — which of two simultaneous connections
//! survives, when a peer counts as up or down — are unit-tested.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::names::Named;
use crate::identity::{PeerId, fingerprint};
use crate::net::wire::ControlMsg;
use crate::store::unix_now;

/// A peer offline this long (seconds), untrusted and without a conversation with us, is no longer
/// listed, and is dropped from the store at the next start: a lab sees many one-off machines and
/// re-created identities, and a list full of them hides the peers that matter.
pub const FORGET_AFTER: u64 = 24 * 3600;

/// A live control connection as the table sees it.
#[derive(Debug, Clone)]
pub struct LiveConn {
    pub conn_id: u64,
    pub tx: mpsc::Sender<ControlMsg>,
    /// The peer's session (see `Hello::session`) and this connection's name at both ends.
    pub session: u64,
    pub channel: u64,
    pub addr: SocketAddr,
    pub cancel: CancellationToken,
    /// Set just before `cancel` when another connection takes over: its goodbye then says
    /// "duplicate" rather than "leaving".
    pub replaced: Arc<AtomicBool>,
    /// The peer accepts connections (a one-shot command doesn't): worth naming to others.
    pub listens: bool,
}

#[derive(Debug, Default)]
pub struct PeerState {
    pub public_key: Vec<u8>,
    pub nick: String,
    pub host: String,
    /// Where it can be dialled: mDNS addresses, the manual address, its listen port seen on an
    /// incoming connection.
    pub dial_addrs: Vec<SocketAddr>,
    pub mdns_present: bool,
    /// Dial it until then although mDNS doesn't list it: another peer named it (peer exchange),
    /// or its connection broke without a goodbye.
    pub hinted_until: Option<Instant>,
    pub dialer_running: bool,
    /// Its remembered address is being dialled (once, at start): other dialers wait for the
    /// outcome rather than open a second connection from this side, which the two ends may not
    /// settle on the same way.
    pub dialing_remembered: bool,
    pub conn: Option<LiveConn>,
    /// Whether subscribers were told it's up: the one source of truth for up/down events.
    pub announced: bool,
    pub trusted: bool,
    pub last_seen: Option<u64>,
    /// We have a direct conversation with it: kept however long it stays away.
    pub chatted: bool,
    /// Standing earned (besides trust): a person here wrote to it or accepted its offer, or its
    /// key was first seen long ago (`limits::STANDING_AFTER`). Ahead of newcomers for slots.
    pub earned: bool,
}

impl PeerState {
    /// Known only from a claim (an mDNS record, another peer's list): no key has answered for it
    /// yet, so it has no name here and is not listed.
    pub fn is_candidate(&self) -> bool {
        self.public_key.is_empty() && self.conn.is_none()
    }

    /// Listed as online: connected, or between a duplicate connection's goodbye and the winning
    /// connection's arrival (subscribers were told it is up and not that it went down; a list
    /// that said otherwise would flicker a peer offline that never left).
    fn shown_online(&self) -> bool {
        self.conn.is_some() || self.announced
    }

    /// Its key answered a handshake (now or in an earlier run).
    pub fn is_proven(&self) -> bool {
        !self.public_key.is_empty()
    }

    /// Gone and never more than a passing key: offline, untrusted, no conversation, no standing.
    /// Its nick no longer makes a live peer's ambiguous (an impostor that left ends the
    /// ambiguity it made); it is still listed, told apart from its namesakes, until it is stale.
    fn faded(&self) -> bool {
        self.conn.is_none() && !self.trusted && !self.chatted && !self.earned
    }

    /// Ahead of newcomers for slots and waiting offers (see `crate::limits`, "Connections").
    pub fn has_standing(&self) -> bool {
        self.trusted || self.earned
    }

    /// Worth a dialler: mDNS lists it, or a hint (or a broken connection) is recent.
    pub fn wanted(&self, now: Instant) -> bool {
        self.mdns_present || self.hinted_until.is_some_and(|t| t > now)
    }

    fn named<'a>(&'a self, id: &'a PeerId) -> Named<'a> {
        Named {
            id,
            nick: &self.nick,
            host: &self.host,
            proven: !self.public_key.is_empty(),
        }
    }

    /// Offline for over [`FORGET_AFTER`], untrusted, and nothing said between us.
    fn stale(&self, now: u64) -> bool {
        self.conn.is_none() && !self.trusted && !self.chatted && self.last_seen.is_some_and(|seen| seen.saturating_add(FORGET_AFTER) < now)
    }
}

/// A peer as faces see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: PeerId,
    pub short_id: String,
    pub nick: String,
    /// The nick as lists show it: with `@host` or `#shortid` when the nick alone could mislead
    /// (another listed peer's nick, shaped like an id; see `names`). Typed back as PEER, it names
    /// this peer.
    #[serde(default)]
    pub label: String,
    pub host: String,
    pub online: bool,
    /// Where it accepts connections (usable as HOST:PORT), else where its connection comes from.
    pub addr: Option<String>,
    pub fingerprint: String,
    pub trusted: bool,
    /// Unix seconds of the last connection, for offline peers.
    pub last_seen: Option<u64>,
    /// Its mDNS record is present (seen on the LAN, connected or not).
    pub discovered: bool,
    /// Unread lines in its conversation.
    pub unread: u32,
    /// Transfers with it running now.
    pub transfers: u32,
}

/// Why a name found no single peer (the message is for a person).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// Nobody by that name (yet: it may still be discovered).
    #[error("{0}")]
    Unknown(String),
    /// Several peers answer to it: waiting won't help.
    #[error("{0}")]
    Ambiguous(String),
}

/// What registering a new connection did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    /// First connection: the peer just came up.
    Up,
    /// It replaced an older connection (which the caller must close); no event.
    Replaced(u64),
    /// An existing connection wins; the caller closes the new one as a duplicate.
    Duplicate,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    pub me: Option<PeerId>,
    peers: HashMap<PeerId, PeerState>,
}

impl PeerTable {
    pub fn new(me: PeerId) -> Self {
        PeerTable {
            me: Some(me),
            peers: HashMap::new(),
        }
    }

    pub fn get(&self, id: &PeerId) -> Option<&PeerState> {
        self.peers.get(id)
    }

    /// The entry of a peer we already know; discovery must not create entries on removal.
    pub fn get_mut_for_discovery(&mut self, id: &PeerId) -> Option<&mut PeerState> {
        self.peers.get_mut(id)
    }

    /// The entry of a peer we know, without bringing back one that was forgotten meanwhile.
    pub fn get_mut(&mut self, id: &PeerId) -> Option<&mut PeerState> {
        self.peers.get_mut(id)
    }

    /// Forget a peer; the caller closes its connection, if any.
    pub fn remove(&mut self, id: &PeerId) -> Option<PeerState> {
        self.peers.remove(id)
    }

    pub fn entry(&mut self, id: &PeerId) -> &mut PeerState {
        self.peers.entry(id.clone()).or_default()
    }

    pub fn ids(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Peers known only from other peers' lists: never connected, never seen over mDNS.
    pub fn candidates(&self) -> usize {
        self.peers.values().filter(|p| p.is_candidate()).count()
    }

    pub fn online_count(&self) -> usize {
        self.peers.values().filter(|p| p.shown_online()).count()
    }

    /// mDNS stopped browsing: no record will be reported gone, so none may keep a peer present.
    pub fn forget_mdns_presence(&mut self) {
        for p in self.peers.values_mut() {
            p.mdns_present = false;
        }
    }

    pub fn is_online(&self, id: &PeerId) -> bool {
        self.peers.get(id).is_some_and(|p| p.conn.is_some())
    }

    pub fn sender(&self, id: &PeerId) -> Option<mpsc::Sender<ControlMsg>> {
        self.peers.get(id)?.conn.as_ref().map(|c| c.tx.clone())
    }

    /// Decide whether `conn` becomes the peer's live connection. A connection from a new session
    /// of the peer replaces the old one (it restarted: the old one is stale). Two connections
    /// between the same two runs (both dialled at once, or a second dial from one side) are
    /// settled by their channel names, which both ends share: the smaller is kept. The rule
    /// needs no clock and no order, so both ends keep the same one however late either learns
    /// of either connection.
    pub fn register(&mut self, id: &PeerId, conn: LiveConn) -> Registered {
        let peer = self.entry(id);
        let Some(existing) = &peer.conn else {
            peer.conn = Some(conn);
            return if std::mem::replace(&mut peer.announced, true) {
                Registered::Replaced(0)
            } else {
                Registered::Up
            };
        };
        let new_wins = conn.session != existing.session || conn.channel < existing.channel;
        if new_wins {
            let old = peer.conn.replace(conn).map(|c| {
                c.replaced.store(true, Ordering::Relaxed);
                c.cancel.cancel();
                c.conn_id
            });
            Registered::Replaced(old.unwrap_or(0))
        } else {
            Registered::Duplicate
        }
    }

    /// A connection ended. Returns true when the peer is now down and subscribers must be told
    /// (with `quiet`, the caller defers that decision: a duplicate's goodbye).
    pub fn unregister(&mut self, id: &PeerId, conn_id: u64, quiet: bool) -> bool {
        let Some(peer) = self.peers.get_mut(id) else { return false };
        if peer.conn.as_ref().is_none_or(|c| c.conn_id != conn_id) {
            return false;
        }
        peer.conn = None;
        if quiet {
            return false;
        }
        std::mem::replace(&mut peer.announced, false)
    }

    /// After a quiet unregister: down now if no other connection took over meanwhile.
    pub fn settle(&mut self, id: &PeerId) -> bool {
        match self.peers.get_mut(id) {
            Some(peer) if peer.conn.is_none() => std::mem::replace(&mut peer.announced, false),
            _ => false,
        }
    }

    pub fn info(&self, id: &PeerId) -> Option<PeerInfo> {
        let mut info = self.info_without_label(id)?;
        info.label = self.label_among(id, &self.named_at(unix_now(), false));
        Some(info)
    }

    /// How `id` is shown among `named` (see [`super::names::label`]).
    fn label_among(&self, id: &PeerId, named: &[Named]) -> String {
        match self.peers.get(id) {
            Some(p) => super::names::label(p.named(id), named),
            None => String::new(),
        }
    }

    /// The peers that names are looked up and told apart among: those whose key answered, not
    /// stale, and (unless `faded` too) not faded. A claim alone names nobody.
    fn named_at(&self, now: u64, faded: bool) -> Vec<Named<'_>> {
        self.peers
            .iter()
            .filter(|(_, p)| p.is_proven() && !p.stale(now) && (faded || !p.faded()))
            .map(|(id, p)| p.named(id))
            .collect()
    }

    fn info_without_label(&self, id: &PeerId) -> Option<PeerInfo> {
        let p = self.peers.get(id)?;
        Some(PeerInfo {
            id: id.clone(),
            short_id: id.short().to_string(),
            nick: p.nick.clone(),
            label: String::new(),
            host: p.host.clone(),
            online: p.shown_online(),
            addr: p
                .dial_addrs
                .first()
                .copied()
                .or_else(|| p.conn.as_ref().map(|c| c.addr))
                .map(|a| a.to_string()),
            fingerprint: if p.public_key.is_empty() {
                String::new()
            } else {
                fingerprint(&p.public_key)
            },
            trusted: p.trusted,
            last_seen: p.last_seen,
            discovered: p.mdns_present,
            unread: 0,
            transfers: 0,
        })
    }

    /// Every peer with a name that is not stale: online first, then by nick.
    pub fn list(&self) -> Vec<PeerInfo> {
        self.list_at(unix_now())
    }

    fn list_at(&self, now: u64) -> Vec<PeerInfo> {
        let named = self.named_at(now, false);
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.nick.is_empty() && p.is_proven() && !p.stale(now))
            .filter_map(|(id, _)| {
                let mut info = self.info_without_label(id)?;
                info.label = self.label_among(id, &named);
                Some(info)
            })
            .collect();
        out.sort_by(|a, b| {
            b.online
                .cmp(&a.online)
                .then_with(|| a.nick.to_lowercase().cmp(&b.nick.to_lowercase()))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Resolve what a user typed (see [`super::names`]). Only an exact id reaches a stale peer or
    /// one known only from a claim: an old identity, or a made-up record, must not make a live
    /// nick ambiguous. A faded peer (see [`PeerState::faded`]) is found only when no other is.
    pub fn find(&self, spec: &str) -> Result<PeerId, FindError> {
        self.find_at(spec, unix_now())
    }

    fn find_at(&self, spec: &str, now: u64) -> Result<PeerId, FindError> {
        if let Some(id) = PeerId::parse(spec)
            && self.peers.contains_key(&id)
        {
            return Ok(id);
        }
        match super::names::resolve(spec, &self.named_at(now, false)) {
            Err(FindError::Unknown(_)) => super::names::resolve(spec, &self.named_at(now, true)),
            found => found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    /// Connection `conn_id` of the peer's run `session`, named `channel` at both ends.
    fn conn(conn_id: u64, session: u64, channel: u64) -> LiveConn {
        let (tx, _rx) = mpsc::channel(1);
        LiveConn {
            conn_id,
            tx,
            session,
            channel,
            addr: "127.0.0.1:1".parse().unwrap(),
            cancel: CancellationToken::new(),
            replaced: Arc::default(),
            listens: true,
        }
    }

    fn two_ids() -> (PeerId, PeerId) {
        let a = Identity::generate().unwrap().id().clone();
        let b = Identity::generate().unwrap().id().clone();
        if a < b { (a, b) } else { (b, a) }
    }

    #[test]
    fn two_connections_between_the_same_runs_settle_on_the_same_one_at_both_ends() {
        let (a, b) = two_ids();
        // Connections 1 and 2 (channels 70 and 30) between run 5 of `a` and run 9 of `b`; each
        // side sees them in a different order, and however late: no clock is involved.
        for (first, second) in [((1, 70), (2, 30)), ((2, 30), (1, 70))] {
            let mut at_a = PeerTable::new(a.clone());
            at_a.register(&b, conn(first.0, 9, first.1));
            at_a.register(&b, conn(second.0, 9, second.1));
            let mut at_b = PeerTable::new(b.clone());
            at_b.register(&a, conn(second.0, 5, second.1));
            at_b.register(&a, conn(first.0, 5, first.1));
            assert_eq!(at_a.get(&b).unwrap().conn.as_ref().unwrap().conn_id, 2);
            assert_eq!(at_b.get(&a).unwrap().conn.as_ref().unwrap().conn_id, 2);
        }
        let mut t = PeerTable::new(a.clone());
        assert_eq!(t.register(&b, conn(1, 9, 70)), Registered::Up);
        assert_eq!(t.register(&b, conn(2, 9, 30)), Registered::Replaced(1));
        assert_eq!(t.register(&b, conn(3, 9, 50)), Registered::Duplicate);
    }

    #[test]
    fn a_connection_from_a_new_run_replaces_the_old_one() {
        let (a, b) = two_ids();
        let mut t = PeerTable::new(a);
        t.register(&b, conn(1, 9, 10));
        assert_eq!(t.register(&b, conn(2, 10, 99)), Registered::Replaced(1), "the peer restarted");
    }

    #[test]
    fn a_peer_stays_listed_online_while_its_duplicate_connection_gives_way() {
        let (me, other) = two_ids();
        let mut t = PeerTable::new(me);
        t.register(&other, conn(1, 1, 1));
        assert!(!t.unregister(&other, 1, true), "a duplicate's goodbye defers the verdict");
        assert!(t.info(&other).unwrap().online, "no down was announced: still listed online");
        assert_eq!(t.online_count(), 1);
        assert!(!t.is_online(&other), "but nothing can be sent over a connection that is gone");
        assert!(t.settle(&other), "no winning connection came: now it is down");
        assert!(!t.info(&other).unwrap().online);
        assert_eq!(t.online_count(), 0);
    }

    #[test]
    fn up_and_down_are_announced_once() {
        let (me, other) = two_ids();
        let mut t = PeerTable::new(me);
        assert_eq!(t.register(&other, conn(1, 1, 1)), Registered::Up);
        assert!(!t.unregister(&other, 99, false), "a stale connection id changes nothing");
        assert!(t.unregister(&other, 1, false));
        assert!(!t.unregister(&other, 1, false));
        t.register(&other, conn(2, 1, 1));
        assert!(!t.unregister(&other, 2, true), "quiet: deferred");
        assert!(t.settle(&other));
        assert!(!t.settle(&other));
    }

    #[test]
    fn find_by_nick_prefix_and_ambiguity() {
        let (a, b) = two_ids();
        let mut t = PeerTable::new(Identity::generate().unwrap().id().clone());
        for (id, nick) in [(&a, "Ada"), (&b, "ada")] {
            let e = t.entry(id);
            e.nick = nick.into();
            e.public_key = vec![1];
        }
        assert!(matches!(t.find("ada"), Err(FindError::Ambiguous(_))));
        assert_eq!(t.find(&a.as_str()[..6]).unwrap(), a);
        assert_eq!(t.find(a.as_str()).unwrap(), a);
        assert!(t.find("nobody").is_err());
    }

    #[test]
    fn stale_peers_are_neither_listed_nor_found_by_nick() {
        let (old, new) = two_ids();
        let now = 10 * FORGET_AFTER;
        let mut t = PeerTable::new(Identity::generate().unwrap().id().clone());
        for (id, seen) in [(&old, now - FORGET_AFTER - 1), (&new, now - 60)] {
            let e = t.entry(id);
            e.nick = "ada".into();
            e.public_key = vec![1];
            e.last_seen = Some(seen);
        }
        let listed = |t: &PeerTable| t.list_at(now).into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(listed(&t), vec![new.clone()]);
        assert_eq!(t.find_at("ada", now).unwrap(), new, "the stale namesake does not make it ambiguous");
        assert_eq!(t.find_at(old.as_str(), now).unwrap(), old, "an exact id still reaches it");
        // Trust, a conversation, or a live connection keep it listed.
        t.entry(&old).trusted = true;
        assert_eq!(listed(&t).len(), 2);
        t.entry(&old).trusted = false;
        t.entry(&old).chatted = true;
        assert_eq!(listed(&t).len(), 2);
        t.entry(&old).chatted = false;
        t.register(&old, conn(1, 1, 1));
        assert_eq!(listed(&t).len(), 2);
    }

    #[test]
    fn a_claim_alone_is_neither_listed_nor_a_namesake() {
        let (carol, forged) = two_ids();
        let mut t = PeerTable::new(Identity::generate().unwrap().id().clone());
        let e = t.entry(&carol);
        e.nick = "carol".into();
        e.public_key = vec![1];
        t.register(&carol, conn(1, 1, 1));
        // An mDNS record or a list named `forged`: no key answered for it.
        t.entry(&forged).nick = "carol".into();
        assert_eq!(t.find("carol").unwrap(), carol);
        assert_eq!(t.list().into_iter().map(|p| p.id).collect::<Vec<_>>(), vec![carol.clone()]);
        assert_eq!(t.info(&carol).unwrap().label, "carol");
        assert_eq!(t.candidates(), 1);
        assert_eq!(t.find(forged.as_str()).unwrap(), forged, "its exact id still names it");
    }

    #[test]
    fn an_ambiguity_ends_when_the_impostor_is_gone() {
        let (carol, impostor) = two_ids();
        let mut t = PeerTable::new(Identity::generate().unwrap().id().clone());
        for (id, host, n) in [(&carol, "lab-1", 1), (&impostor, "lab-2", 2)] {
            let e = t.entry(id);
            e.nick = "carol".into();
            e.host = host.into();
            e.public_key = vec![n];
            e.last_seen = Some(unix_now());
            t.register(id, conn(n.into(), 1, 1));
        }
        assert!(matches!(t.find("carol"), Err(FindError::Ambiguous(_))));
        // The impostor leaves: offline, never trusted, nothing said between us.
        t.unregister(&impostor, 2, false);
        assert_eq!(t.find("carol").unwrap(), carol);
        let labels: Vec<(PeerId, String)> = t.list().into_iter().map(|p| (p.id, p.label)).collect();
        assert!(labels.contains(&(carol.clone(), "carol".into())), "{labels:?}");
        assert!(
            labels.contains(&(impostor.clone(), "carol@lab-2".into())),
            "still told apart: {labels:?}"
        );
        assert_eq!(t.find("carol@lab-2").unwrap(), impostor, "and still reachable by its label");
        // Alone, a faded peer is still found by its nick.
        t.unregister(&carol, 1, false);
        t.entry(&carol).trusted = true;
        assert_eq!(t.find("carol").unwrap(), carol, "a trusted namesake keeps it");
        t.entry(&carol).trusted = false;
        t.entry(&carol).nick = "carol2".into();
        assert_eq!(t.find("carol").unwrap(), impostor);
        // Namesakes with trust or a conversation stay ambiguous, offline or not.
        t.entry(&carol).nick = "carol".into();
        t.entry(&carol).trusted = true;
        t.entry(&impostor).chatted = true;
        assert!(matches!(t.find("carol"), Err(FindError::Ambiguous(_))));
    }
}
