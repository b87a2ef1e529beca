//! Connection slots: who may hold a connection to this node, and who gives way. The policy is
//! stated in `crate::limits` (section "Connections and deadlines"); this is its bookkeeping —
//! handshakes in progress per address, and established connections per pool, address, key and
//! standing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::lock;
use crate::identity::PeerId;
use crate::limits::{
    MAX_CONTROL_CONNECTIONS, MAX_CONTROL_PER_ADDRESS, MAX_INCOMING_TRANSFERS, MAX_PENDING_PER_ADDRESS, MAX_TRANSFERS_PER_ADDRESS,
    NEWCOMER_SHARE,
};
use crate::net::wire::ByeReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    Control,
    Transfer,
}

impl Pool {
    fn capacity(self) -> usize {
        match self {
            Pool::Control => MAX_CONTROL_CONNECTIONS,
            Pool::Transfer => MAX_INCOMING_TRANSFERS,
        }
    }

    fn per_address(self) -> usize {
        match self {
            Pool::Control => MAX_CONTROL_PER_ADDRESS,
            Pool::Transfer => MAX_TRANSFERS_PER_ADDRESS,
        }
    }

    fn per_peer(self) -> usize {
        match self {
            // One per peer is the peer table's business (duplicates are settled there).
            Pool::Control => usize::MAX,
            Pool::Transfer => crate::limits::MAX_TRANSFERS_PER_KEY,
        }
    }
}

/// Why a connection was refused: told to the peer, one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Full(Pool),
    NewcomersFull(Pool),
    FromAddress,
    FromPeer,
}

impl Refusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Full(Pool::Control) => "busy: all connection slots are in use",
            Refusal::Full(Pool::Transfer) => "busy: all transfer slots are in use",
            Refusal::NewcomersFull(Pool::Control) => "busy: all connection slots for new peers are in use",
            Refusal::NewcomersFull(Pool::Transfer) => "busy: all transfer slots for new peers are in use",
            Refusal::FromAddress => "too many connections from your address",
            Refusal::FromPeer => "too many transfers from you",
        }
    }

    /// The goodbye that tells a refused control connection why.
    pub(crate) fn bye(self) -> ByeReason {
        match self {
            Refusal::FromAddress | Refusal::FromPeer => ByeReason::TooManyFromAddress,
            Refusal::Full(_) | Refusal::NewcomersFull(_) => ByeReason::Busy,
        }
    }
}

/// Milliseconds since the first call: a clock an atomic can hold.
pub(crate) fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// When a connection last moved a byte: the stall deadline reads it, and eviction picks the
/// newcomer idle longest.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<AtomicU64>);

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity(Arc::new(AtomicU64::new(now_ms())))
    }

    pub(crate) fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn last_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Held {
    key: u64,
    pool: Pool,
    ip: IpAddr,
    peer: PeerId,
    newcomer: bool,
    /// Told to make room; no longer counted (it ends within its own teardown).
    evicted: bool,
    evict: CancellationToken,
    activity: Activity,
    /// Waiting for a person's answer to its offer: not counted in any pool (the wait is
    /// bounded by the caps of waiting offers instead, see `transfer::offers`).
    parked: bool,
}

impl Held {
    /// Still takes room in its pool.
    fn counts(&self) -> bool {
        !self.evicted && !self.parked
    }
}

struct Pending {
    key: u64,
    ip: IpAddr,
    evict: CancellationToken,
}

#[derive(Default)]
pub(crate) struct Slots {
    held: Mutex<Vec<Held>>,
    pending: Mutex<VecDeque<Pending>>,
    next: AtomicU64,
}

/// An established connection's slot; freed when dropped. `evict` is raised when a known peer
/// needs the slot: the holder ends, telling its peer "busy".
pub(crate) struct Slot {
    slots: Arc<Slots>,
    key: u64,
    pub evict: CancellationToken,
    pub activity: Activity,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.slots.held).retain(|h| h.key != self.key);
    }
}

impl Slot {
    /// A handle that can set this slot aside while its connection waits for a person.
    pub(crate) fn parking(&self) -> Parking {
        let held = lock(&self.slots.held);
        let me = held.iter().find(|h| h.key == self.key);
        Parking {
            slots: self.slots.clone(),
            key: self.key,
            ip: me.map(|h| h.ip),
            newcomer: me.is_some_and(|h| h.newcomer),
        }
    }
}

/// Where a slot's connection comes from, and the way to set the slot aside while it waits.
#[derive(Clone)]
pub(crate) struct Parking {
    slots: Arc<Slots>,
    key: u64,
    pub ip: Option<IpAddr>,
    pub newcomer: bool,
}

impl Parking {
    /// Free the slot for others until the guard is dropped; then it counts again, whatever
    /// the pool holds by then (a person answered: that connection goes on).
    pub(crate) fn park(&self) -> Parked {
        self.set(true);
        Parked(self.clone())
    }

    fn set(&self, parked: bool) {
        if let Some(h) = lock(&self.slots.held).iter_mut().find(|h| h.key == self.key) {
            h.parked = parked;
        }
    }
}

/// A slot set aside; counted again when dropped.
pub(crate) struct Parked(Parking);

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Which held slots a cap counts.
type Within<'a> = &'a dyn Fn(&Held) -> bool;

/// A handshake in progress; `evict` is raised when newer ones need its place.
pub(crate) struct PendingSlot {
    slots: Arc<Slots>,
    key: u64,
    pub evict: CancellationToken,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        lock(&self.slots.pending).retain(|p| p.key != self.key);
    }
}

/// Slots in use, for tests and figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotCounts {
    pub control: usize,
    /// Control slots held by newcomers.
    pub newcomer_control: usize,
    pub transfer: usize,
    /// Transfer slots held by newcomers.
    pub newcomer_transfers: usize,
    pub pending: usize,
}

impl Slots {
    fn key(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Register a handshake from `ip`, making room if that address (or everyone) has too many
    /// in progress: the oldest of that address goes first, else the oldest of the address with
    /// the most.
    pub(crate) fn begin_handshake(self: &Arc<Self>, ip: IpAddr, limit: usize) -> PendingSlot {
        let key = self.key();
        let evict = CancellationToken::new();
        let mut pending = lock(&self.pending);
        pending.push_back(Pending {
            key,
            ip,
            evict: evict.clone(),
        });
        let mine = pending.iter().filter(|p| p.ip == ip).count();
        let victim = if mine > MAX_PENDING_PER_ADDRESS {
            Some(ip)
        } else if pending.len() > limit {
            let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
            for p in pending.iter() {
                *per_ip.entry(p.ip).or_default() += 1;
            }
            per_ip.into_iter().max_by_key(|(_, n)| *n).map(|(ip, _)| ip)
        } else {
            None
        };
        if let Some(victim) = victim
            && let Some(at) = pending.iter().position(|p| p.ip == victim)
            && let Some(p) = pending.remove(at)
        {
            p.evict.cancel();
        }
        PendingSlot {
            slots: self.clone(),
            key,
            evict,
        }
    }

    /// A slot in `pool` for `peer` at `ip`, or why not. Where a known peer meets a full
    /// address or a full pool, the newcomer that moved nothing for the longest there gives way
    /// (transfers only: a newcomer's control connection would just dial again, and the newcomer
    /// share already keeps half of that pool for known peers).
    pub(crate) fn take(self: &Arc<Self>, pool: Pool, ip: IpAddr, peer: &PeerId, newcomer: bool) -> Result<Slot, Refusal> {
        let mut held = lock(&self.held);
        let count = |held: &[Held], f: &dyn Fn(&Held) -> bool| held.iter().filter(|h| h.pool == pool && h.counts() && f(h)).count();
        if count(&held, &|h| &h.peer == peer) >= pool.per_peer() {
            return Err(Refusal::FromPeer);
        }
        if newcomer && count(&held, &|h| h.newcomer) >= pool.capacity() / NEWCOMER_SHARE {
            return Err(Refusal::NewcomersFull(pool));
        }
        if newcomer && count(&held, &|h| h.newcomer && h.ip == ip) >= pool.per_address() / NEWCOMER_SHARE {
            return Err(Refusal::FromAddress);
        }
        let full: [(Within, usize, Refusal); 2] = [
            (&|h| h.ip == ip, pool.per_address(), Refusal::FromAddress),
            (&|_| true, pool.capacity(), Refusal::Full(pool)),
        ];
        for (within, cap, refusal) in full {
            if count(&held, within) < cap {
                continue;
            }
            let idlest = held
                .iter_mut()
                .filter(|h| pool == Pool::Transfer && !newcomer && h.pool == pool && h.counts() && h.newcomer && within(h))
                .min_by_key(|h| h.activity.last_ms());
            match idlest {
                Some(h) => {
                    h.evicted = true;
                    h.evict.cancel();
                }
                None => return Err(refusal),
            }
        }
        let key = self.key();
        let evict = CancellationToken::new();
        let activity = Activity::new();
        held.push(Held {
            key,
            pool,
            ip,
            peer: peer.clone(),
            newcomer,
            evicted: false,
            evict: evict.clone(),
            activity: activity.clone(),
            parked: false,
        });
        Ok(Slot {
            slots: self.clone(),
            key,
            evict,
            activity,
        })
    }

    pub(crate) fn counts(&self) -> SlotCounts {
        let held = lock(&self.held);
        let live = || held.iter().filter(|h| h.counts());
        SlotCounts {
            control: live().filter(|h| h.pool == Pool::Control).count(),
            newcomer_control: live().filter(|h| h.newcomer && h.pool == Pool::Control).count(),
            transfer: live().filter(|h| h.pool == Pool::Transfer).count(),
            newcomer_transfers: live().filter(|h| h.newcomer && h.pool == Pool::Transfer).count(),
            pending: lock(&self.pending).len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_TRANSFERS_PER_KEY;

    fn peer(n: u8) -> PeerId {
        PeerId::from_public_key(&[n; 32])
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn one_address_is_capped_and_a_known_peer_evicts_the_idlest_newcomer() {
        let slots = Arc::new(Slots::default());
        let mut held = Vec::new();
        // Newcomers from many addresses fill their share of the transfer pool.
        for n in 0..(MAX_INCOMING_TRANSFERS / NEWCOMER_SHARE) {
            let a = ip((n / 4) as u8);
            held.push(slots.take(Pool::Transfer, a, &peer(n as u8), true).unwrap());
        }
        assert_eq!(
            slots.take(Pool::Transfer, ip(200), &peer(200), true).err(),
            Some(Refusal::NewcomersFull(Pool::Transfer))
        );
        // Known peers fill the rest.
        for n in 0..(MAX_INCOMING_TRANSFERS - MAX_INCOMING_TRANSFERS / NEWCOMER_SHARE) {
            held.push(
                slots
                    .take(Pool::Transfer, ip(100 + (n / 8) as u8), &peer(100 + n as u8), false)
                    .unwrap(),
            );
        }
        assert_eq!(slots.counts().transfer, MAX_INCOMING_TRANSFERS);
        // One more known peer: the idlest newcomer makes room.
        let first = held[0].evict.clone();
        let more = slots.take(Pool::Transfer, ip(250), &peer(250), false).unwrap();
        assert!(first.is_cancelled());
        assert_eq!(slots.counts().transfer, MAX_INCOMING_TRANSFERS);
        drop(more);
        // Per address, whatever the keys.
        let slots = Arc::new(Slots::default());
        let mut keep = Vec::new();
        for n in 0..MAX_TRANSFERS_PER_ADDRESS {
            keep.push(slots.take(Pool::Transfer, ip(1), &peer(n as u8), false).unwrap());
        }
        assert_eq!(
            slots.take(Pool::Transfer, ip(1), &peer(99), false).err(),
            Some(Refusal::FromAddress)
        );
        assert!(slots.take(Pool::Transfer, ip(2), &peer(99), false).is_ok());
        // Newcomers from one address get their share of its cap; known peers the rest, and
        // at a full address a known peer makes an idle newcomer give way.
        let slots = Arc::new(Slots::default());
        let share = MAX_TRANSFERS_PER_ADDRESS / NEWCOMER_SHARE;
        let newcomers: Vec<_> = (0..share)
            .map(|n| slots.take(Pool::Transfer, ip(1), &peer(n as u8), true).unwrap())
            .collect();
        assert_eq!(slots.take(Pool::Transfer, ip(1), &peer(98), true).err(), Some(Refusal::FromAddress));
        let known: Vec<_> = (share..MAX_TRANSFERS_PER_ADDRESS)
            .map(|n| slots.take(Pool::Transfer, ip(1), &peer(n as u8), false).unwrap())
            .collect();
        assert!(newcomers.iter().all(|s| !s.evict.is_cancelled()));
        let _more = slots.take(Pool::Transfer, ip(1), &peer(99), false).unwrap();
        assert_eq!(newcomers.iter().filter(|s| s.evict.is_cancelled()).count(), 1);
        drop(known);
        // The same share of control slots, per address and in all.
        let slots = Arc::new(Slots::default());
        let share = MAX_CONTROL_PER_ADDRESS / NEWCOMER_SHARE;
        let _held: Vec<_> = (0..share)
            .map(|n| slots.take(Pool::Control, ip(1), &peer(n as u8), true).unwrap())
            .collect();
        assert_eq!(slots.take(Pool::Control, ip(1), &peer(200), true).err(), Some(Refusal::FromAddress));
        assert!(slots.take(Pool::Control, ip(1), &peer(201), false).is_ok());
    }

    #[test]
    fn a_parked_slot_counts_in_no_pool_until_it_is_taken_back() {
        let slots = Arc::new(Slots::default());
        let held: Vec<_> = (0..MAX_TRANSFERS_PER_KEY)
            .map(|n| slots.take(Pool::Transfer, ip(n as u8), &peer(1), true).unwrap())
            .collect();
        assert_eq!(slots.take(Pool::Transfer, ip(50), &peer(1), true).err(), Some(Refusal::FromPeer));
        let parked = held[0].parking().park();
        assert_eq!(slots.counts().transfer, MAX_TRANSFERS_PER_KEY - 1);
        let more = slots.take(Pool::Transfer, ip(50), &peer(1), true).unwrap();
        drop(parked);
        assert_eq!(slots.counts().transfer, MAX_TRANSFERS_PER_KEY + 1, "an answered offer goes on");
        drop(more);
    }

    #[test]
    fn handshakes_from_one_address_evict_their_own_oldest() {
        let slots = Arc::new(Slots::default());
        let other = slots.begin_handshake(ip(9), 64);
        let mine: Vec<_> = (0..=MAX_PENDING_PER_ADDRESS).map(|_| slots.begin_handshake(ip(1), 64)).collect();
        assert!(mine[0].evict.is_cancelled());
        assert!(!mine[1].evict.is_cancelled());
        assert!(!other.evict.is_cancelled());
        // All slots taken: the address with the most gives way, not the other one.
        let more: Vec<_> = (0..8).map(|n| slots.begin_handshake(ip(20 + n), 16)).collect();
        assert!(!other.evict.is_cancelled());
        assert!(more.iter().all(|p| !p.evict.is_cancelled()));
    }
}
