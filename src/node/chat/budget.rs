//! What one peer's chat may cost this node (see `crate::limits`, "Chat and the database"): a
//! rate per peer, and bytes stored per conversation. A line over a budget is refused, never
//! stored and then dropped: its sender is told why and shows it as failed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::identity::PeerId;
use crate::limits;

/// Told to a sender whose lines come faster than [`DbBudget::rate_lines`] / `rate_bytes` allow.
pub const TOO_FAST: &str = "too many messages, try later";
/// Told to a sender whose direct conversation with us is at its size budget.
pub const NO_ROOM: &str = "no room left for your messages";

/// The chat and database budgets of one node; [`Default`] is `crate::limits`. Tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbBudget {
    pub rate_lines: u32,
    pub rate_bytes: u64,
    /// The same rates for one address, whatever keys it uses.
    pub address_rate_lines: u32,
    pub address_rate_bytes: u64,
    /// The same rates for all strangers together.
    pub strangers_rate_lines: u32,
    pub strangers_rate_bytes: u64,
    pub rate_window: Duration,
    pub room_bytes: u64,
    pub room_bytes_per_peer: u64,
    /// What strangers' room lines together may keep; trimmed first.
    pub strangers_room_bytes: u64,
    pub direct_bytes: u64,
    pub stranger_bytes: u64,
    pub strangers_bytes: u64,
    /// Bytes of lines in flight (read, not yet answered): node-wide, per address, and for all
    /// strangers together.
    pub in_flight_bytes: usize,
    pub address_in_flight_bytes: usize,
    pub strangers_in_flight_bytes: usize,
    /// Seconds after which a key seen in one connection only is forgotten.
    pub one_time_peer_age: u64,
    pub prune_every: Duration,
}

impl Default for DbBudget {
    fn default() -> Self {
        DbBudget {
            rate_lines: limits::CHAT_RATE_LINES,
            rate_bytes: limits::CHAT_RATE_BYTES,
            address_rate_lines: limits::CHAT_ADDRESS_RATE_LINES,
            address_rate_bytes: limits::CHAT_ADDRESS_RATE_BYTES,
            strangers_rate_lines: limits::CHAT_STRANGERS_RATE_LINES,
            strangers_rate_bytes: limits::CHAT_STRANGERS_RATE_BYTES,
            rate_window: limits::CHAT_RATE_WINDOW,
            room_bytes: limits::CHAT_ROOM_BYTES,
            room_bytes_per_peer: limits::CHAT_ROOM_BYTES_PER_PEER,
            strangers_room_bytes: limits::CHAT_STRANGERS_ROOM_BYTES,
            direct_bytes: limits::CHAT_DIRECT_BYTES,
            stranger_bytes: limits::CHAT_STRANGER_BYTES,
            strangers_bytes: limits::CHAT_STRANGERS_BYTES,
            in_flight_bytes: limits::CHAT_IN_FLIGHT_BYTES,
            address_in_flight_bytes: limits::CHAT_ADDRESS_IN_FLIGHT_BYTES,
            strangers_in_flight_bytes: limits::CHAT_STRANGERS_IN_FLIGHT_BYTES,
            one_time_peer_age: limits::ONE_TIME_PEER_AGE,
            prune_every: limits::PEER_PRUNE_EVERY,
        }
    }
}

impl DbBudget {
    /// No rate and no direct-line limit: for measuring the delivery pipeline (benches) and for
    /// the honest side of tests, never for a node people run. The room is still trimmed, and
    /// what is in flight still bounded (that is memory, and only slows a burst).
    #[doc(hidden)]
    pub fn lifted() -> DbBudget {
        DbBudget {
            rate_lines: u32::MAX,
            rate_bytes: u64::MAX,
            address_rate_lines: u32::MAX,
            address_rate_bytes: u64::MAX,
            strangers_rate_lines: u32::MAX,
            strangers_rate_bytes: u64::MAX,
            direct_bytes: u64::MAX,
            stranger_bytes: u64::MAX,
            strangers_bytes: u64::MAX,
            ..DbBudget::default()
        }
    }
}

/// An allowance: full at first, spent by each stored line, refilled evenly.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    lines: f64,
    bytes: f64,
    at: Instant,
}

impl Bucket {
    fn full(max: (f64, f64), now: Instant) -> Bucket {
        Bucket {
            lines: max.0,
            bytes: max.1,
            at: now,
        }
    }

    fn refill(&mut self, max: (f64, f64), window: Duration, now: Instant) {
        // Connections store on several threads, each with the time it started: an earlier time
        // arriving later must not move the clock back (the span would be refilled twice).
        if now <= self.at {
            return;
        }
        let share = now.saturating_duration_since(self.at).as_secs_f64() / window.as_secs_f64().max(1e-3);
        self.lines = (self.lines + share * max.0).min(max.0);
        self.bytes = (self.bytes + share * max.1).min(max.1);
        self.at = now;
    }

    fn has(&self, bytes: f64) -> bool {
        self.lines >= 1.0 && self.bytes >= bytes
    }

    fn spend(&mut self, bytes: f64) {
        self.lines -= 1.0;
        self.bytes -= bytes;
    }

    fn is_full(&self, max: (f64, f64)) -> bool {
        self.lines >= max.0 && self.bytes >= max.1
    }
}

/// Buckets kept before full (idle) ones are dropped: a full bucket is what a new one would be.
const KEEP_BUCKETS: usize = 1024;

/// Who sends a line, for the rates it spends.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub peer: PeerId,
    pub ip: Option<IpAddr>,
    /// No standing here (see `crate::limits`, "Connections"): spends the strangers' rate too.
    pub stranger: bool,
}

/// Every chat rate: per peer, per address, and all strangers together.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    buckets: HashMap<PeerId, Bucket>,
    addresses: HashMap<IpAddr, Bucket>,
    strangers: Option<Bucket>,
}

/// Refill `key`'s bucket in `map` (made full if new), first dropping full ones when the map
/// is at its size.
fn bucket<'a, K: std::hash::Hash + Eq + Clone>(
    map: &'a mut HashMap<K, Bucket>,
    key: &K,
    max: (f64, f64),
    window: Duration,
    now: Instant,
) -> &'a mut Bucket {
    if map.len() >= KEEP_BUCKETS && !map.contains_key(key) {
        map.retain(|_, b| {
            b.refill(max, window, now);
            !b.is_full(max)
        });
    }
    let b = map.entry(key.clone()).or_insert(Bucket::full(max, now));
    b.refill(max, window, now);
    b
}

impl Rates {
    /// Spend one line of `bytes` from every allowance `who` draws on; false (nothing spent)
    /// when one of them has too little left.
    pub fn take(&mut self, budget: &DbBudget, who: &Sender, bytes: usize, now: Instant) -> bool {
        let window = budget.rate_window;
        let max = |lines: u32, bytes: u64| (f64::from(lines), bytes as f64);
        let bytes = bytes as f64;
        let peer_max = max(budget.rate_lines, budget.rate_bytes);
        if !bucket(&mut self.buckets, &who.peer, peer_max, window, now).has(bytes) {
            return false;
        }
        let address_max = max(budget.address_rate_lines, budget.address_rate_bytes);
        if let Some(ip) = who.ip
            && !bucket(&mut self.addresses, &ip, address_max, window, now).has(bytes)
        {
            return false;
        }
        let strangers_max = max(budget.strangers_rate_lines, budget.strangers_rate_bytes);
        let strangers = self.strangers.get_or_insert(Bucket::full(strangers_max, now));
        strangers.refill(strangers_max, window, now);
        if who.stranger && !strangers.has(bytes) {
            return false;
        }
        if who.stranger {
            strangers.spend(bytes);
        }
        if let Some(ip) = who.ip
            && let Some(b) = self.addresses.get_mut(&ip)
        {
            b.spend(bytes);
        }
        if let Some(b) = self.buckets.get_mut(&who.peer) {
            b.spend(bytes);
        }
        true
    }
}

/// Chat lines in flight: read from a connection, not yet stored and answered (see
/// `crate::limits::CHAT_IN_FLIGHT_BYTES`). A connection's reader takes a [`Charge`] for each line
/// before handing it on, waiting while the line does not fit; the charge is given back when the
/// line has been answered, and waiting readers look again.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    held: Mutex<Held>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct Held {
    all: usize,
    strangers: usize,
    /// Per address: everyone's, and strangers'.
    addresses: HashMap<IpAddr, (usize, usize)>,
    peaks: InFlightPeaks,
}

/// The most each share of the lines in flight has held since the node started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InFlightPeaks {
    /// Bytes node-wide.
    pub all: usize,
    /// Bytes from all strangers together.
    pub strangers: usize,
    /// Bytes from the one address that held the most.
    pub address: usize,
}

/// One line's share of the bytes in flight, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    pool: Arc<InFlight>,
    ip: IpAddr,
    stranger: bool,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.pool.give_back(self.ip, self.stranger, self.bytes);
    }
}

impl InFlight {
    /// Take `bytes` for a line from `ip`, waiting until it fits in every share it draws on.
    pub async fn take(self: &Arc<Self>, budget: &DbBudget, ip: IpAddr, stranger: bool, bytes: usize) -> Charge {
        loop {
            // Registered before looking, so a charge given back in between still wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(budget, ip, stranger, bytes) {
                return Charge {
                    pool: self.clone(),
                    ip,
                    stranger,
                    bytes,
                };
            }
            freed.await;
        }
    }

    fn try_take(&self, budget: &DbBudget, ip: IpAddr, stranger: bool, bytes: usize) -> bool {
        let mut held = crate::node::lock(&self.held);
        let held = &mut *held;
        let (address, address_strangers) = held.addresses.get(&ip).copied().unwrap_or_default();
        // A share that holds nothing takes any one line, so a budget smaller than a line (tests
        // shrink them) slows its senders but never stops them.
        let fits = |used: usize, max: usize| used == 0 || used + bytes <= max;
        let strangers_address_share = budget.address_in_flight_bytes / limits::NEWCOMER_SHARE;
        if !fits(held.all, budget.in_flight_bytes)
            || !fits(address, budget.address_in_flight_bytes)
            || (stranger && (!fits(held.strangers, budget.strangers_in_flight_bytes) || !fits(address_strangers, strangers_address_share)))
        {
            return false;
        }
        held.all += bytes;
        let entry = held.addresses.entry(ip).or_default();
        entry.0 += bytes;
        if stranger {
            held.strangers += bytes;
            entry.1 += bytes;
        }
        let address = entry.0;
        let peaks = &mut held.peaks;
        peaks.all = peaks.all.max(held.all);
        peaks.strangers = peaks.strangers.max(held.strangers);
        peaks.address = peaks.address.max(address);
        true
    }

    fn give_back(&self, ip: IpAddr, stranger: bool, bytes: usize) {
        {
            let mut held = crate::node::lock(&self.held);
            held.all -= bytes;
            if stranger {
                held.strangers -= bytes;
            }
            if let Some(entry) = held.addresses.get_mut(&ip) {
                entry.0 -= bytes;
                if stranger {
                    entry.1 -= bytes;
                }
                if entry.0 == 0 {
                    held.addresses.remove(&ip);
                }
            }
        }
        self.freed.notify_waiters();
    }

    /// The most each share has held.
    pub fn peaks(&self) -> InFlightPeaks {
        crate::node::lock(&self.held).peaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn sender(peer: PeerId, ip: u8, stranger: bool) -> Sender {
        Sender {
            peer,
            ip: Some(IpAddr::from([10, 0, 0, ip])),
            stranger,
        }
    }

    fn key() -> PeerId {
        Identity::generate().unwrap().id().clone()
    }

    #[test]
    fn one_address_and_all_strangers_share_a_rate() {
        let budget = DbBudget {
            rate_lines: 10,
            rate_bytes: 1000,
            address_rate_lines: 15,
            address_rate_bytes: 10_000,
            strangers_rate_lines: 25,
            strangers_rate_bytes: 10_000,
            rate_window: Duration::from_secs(10),
            ..DbBudget::default()
        };
        let mut rates = Rates::default();
        let t0 = Instant::now();
        // Two keys on one address: 15 lines between them, not 20.
        let (a, b) = (sender(key(), 1, true), sender(key(), 1, true));
        assert!((0..10).all(|_| rates.take(&budget, &a, 1, t0)));
        assert!((0..5).all(|_| rates.take(&budget, &b, 1, t0)));
        assert!(!rates.take(&budget, &b, 1, t0), "the address's rate is spent");
        // Strangers from other addresses: 25 lines in all.
        let c = sender(key(), 2, true);
        assert!((0..10).all(|_| rates.take(&budget, &c, 1, t0)));
        assert!(!rates.take(&budget, &sender(key(), 3, true), 1, t0), "all strangers' rate is spent");
        // A peer with standing does not draw on the strangers' rate.
        assert!(rates.take(&budget, &sender(key(), 3, false), 1, t0));
        // A store that started earlier but takes its turn later refills nothing twice.
        let t1 = t0 + Duration::from_secs(1);
        assert!(rates.take(&budget, &sender(key(), 4, true), 1, t1), "a second refills 2.5 lines");
        assert!(rates.take(&budget, &sender(key(), 5, true), 1, t0));
        assert!(!rates.take(&budget, &sender(key(), 6, true), 1, t1), "not 5 lines");
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_refills() {
        let budget = DbBudget {
            rate_lines: 10,
            rate_bytes: 1000,
            rate_window: Duration::from_secs(10),
            ..DbBudget::default()
        };
        let (ada, bob) = (
            Identity::generate().unwrap().id().clone(),
            Identity::generate().unwrap().id().clone(),
        );
        let mut rates = Rates::default();
        let (ada, bob) = (sender(ada, 1, false), sender(bob, 2, false));
        let t0 = Instant::now();
        assert!((0..10).all(|_| rates.take(&budget, &ada, 10, t0)));
        assert!(!rates.take(&budget, &ada, 10, t0), "the 11th line in the window");
        assert!(rates.take(&budget, &bob, 10, t0), "another peer has its own allowance");
        assert!(
            rates.take(&budget, &ada, 10, t0 + Duration::from_secs(1)),
            "a second refills one line"
        );
        assert!(!rates.take(&budget, &bob, 995, t0), "bytes count too");
    }

    #[tokio::test]
    async fn lines_in_flight_wait_for_room_in_every_share() {
        let budget = DbBudget {
            in_flight_bytes: 100,
            address_in_flight_bytes: 60,
            strangers_in_flight_bytes: 50,
            ..DbBudget::default()
        };
        let pool = Arc::new(InFlight::default());
        let (a, b, c) = (
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
            IpAddr::from([10, 0, 0, 3]),
        );
        // A stranger from one address: half of that address's share.
        let first = pool.take(&budget, a, true, 30).await;
        assert!(!pool.try_take(&budget, a, true, 1), "strangers' share of the address");
        // A known peer on the same address still has the rest of the address's share.
        let known = pool.take(&budget, a, false, 30).await;
        assert!(!pool.try_take(&budget, a, false, 1), "the address's share");
        // Strangers from another address: all strangers together hold at most 50.
        let second = pool.take(&budget, b, true, 20).await;
        assert!(!pool.try_take(&budget, c, true, 1), "all strangers' share");
        // Node-wide: 80 held, 20 left for known peers elsewhere.
        let third = pool.take(&budget, c, false, 20).await;
        assert!(!pool.try_take(&budget, c, false, 1), "node-wide");
        // A waiting reader goes on when a line is answered.
        let waiting = {
            let pool = pool.clone();
            let budget = budget.clone();
            tokio::spawn(async move { pool.take(&budget, c, false, 15).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(known);
        let fourth = tokio::time::timeout(Duration::from_secs(60), waiting).await.unwrap().unwrap();
        assert_eq!(
            pool.peaks(),
            InFlightPeaks {
                all: 100,
                strangers: 50,
                address: 60
            }
        );
        drop((first, second, third, fourth));
        let held = crate::node::lock(&pool.held);
        assert_eq!((held.all, held.strangers, held.addresses.len()), (0, 0, 0), "all given back");
    }
}
