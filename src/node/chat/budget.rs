//! What one peer's chat may cost this node (see `crate::limits`, "Chat and the database"): a
//! rate per peer, and bytes stored per conversation. A line over a budget is refused, never
//! stored and then dropped: its sender is told why and shows it as failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
    pub rate_window: Duration,
    pub room_bytes: u64,
    pub room_bytes_per_peer: u64,
    pub direct_bytes: u64,
    pub stranger_bytes: u64,
    pub strangers_bytes: u64,
    /// Seconds after which a key seen in one connection only is forgotten.
    pub one_time_peer_age: u64,
    pub prune_every: Duration,
}

impl Default for DbBudget {
    fn default() -> Self {
        DbBudget {
            rate_lines: limits::CHAT_RATE_LINES,
            rate_bytes: limits::CHAT_RATE_BYTES,
            rate_window: limits::CHAT_RATE_WINDOW,
            room_bytes: limits::CHAT_ROOM_BYTES,
            room_bytes_per_peer: limits::CHAT_ROOM_BYTES_PER_PEER,
            direct_bytes: limits::CHAT_DIRECT_BYTES,
            stranger_bytes: limits::CHAT_STRANGER_BYTES,
            strangers_bytes: limits::CHAT_STRANGERS_BYTES,
            one_time_peer_age: limits::ONE_TIME_PEER_AGE,
            prune_every: limits::PEER_PRUNE_EVERY,
        }
    }
}

impl DbBudget {
    /// No rate and no direct-line limit: for measuring the delivery pipeline (benches) and for
    /// the honest side of tests, never for a node people run. The room is still trimmed.
    #[doc(hidden)]
    pub fn lifted() -> DbBudget {
        DbBudget {
            rate_lines: u32::MAX,
            rate_bytes: u64::MAX,
            direct_bytes: u64::MAX,
            stranger_bytes: u64::MAX,
            strangers_bytes: u64::MAX,
            ..DbBudget::default()
        }
    }
}

/// A peer's allowance: full at first, spent by each stored line, refilled evenly.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    lines: f64,
    bytes: f64,
    at: Instant,
}

/// Buckets kept before full (idle) ones are dropped: a full bucket is what a new one would be.
const KEEP_BUCKETS: usize = 1024;

/// Every peer's chat rate.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    buckets: HashMap<PeerId, Bucket>,
}

impl Rates {
    /// Spend one line of `bytes` from `peer`'s allowance; false (nothing spent) when too little
    /// is left.
    pub fn take(&mut self, budget: &DbBudget, peer: &PeerId, bytes: usize, now: Instant) -> bool {
        let (max_lines, max_bytes) = (f64::from(budget.rate_lines), budget.rate_bytes as f64);
        let refill = |b: &mut Bucket| {
            let share = now.saturating_duration_since(b.at).as_secs_f64() / budget.rate_window.as_secs_f64().max(1e-3);
            b.lines = (b.lines + share * max_lines).min(max_lines);
            b.bytes = (b.bytes + share * max_bytes).min(max_bytes);
            b.at = now;
        };
        if self.buckets.len() >= KEEP_BUCKETS && !self.buckets.contains_key(peer) {
            self.buckets.retain(|_, b| {
                refill(b);
                b.lines < max_lines || b.bytes < max_bytes
            });
        }
        let b = self.buckets.entry(peer.clone()).or_insert(Bucket {
            lines: max_lines,
            bytes: max_bytes,
            at: now,
        });
        refill(b);
        let bytes = bytes as f64;
        if b.lines < 1.0 || b.bytes < bytes {
            return false;
        }
        b.lines -= 1.0;
        b.bytes -= bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

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
}
