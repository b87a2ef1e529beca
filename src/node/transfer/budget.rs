//! The node-wide budget for received manifests: what offers waiting for an answer and running
//! receives may cost in memory, in all and per peer. A manifest is charged as it arrives (for
//! every announced item first, then for each name before it is kept), and the charge is given
//! back when the offer ends, however it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::identity::PeerId;
use crate::limits::{MANIFEST_BUDGET, MANIFEST_PEER_SHARE};
use crate::node::{Shared, lock};

/// Why a charge was refused; the text goes to the sender.
pub(crate) const BUSY: &str = "busy: too many offers waiting";
pub(crate) const TOO_MANY_FROM_YOU: &str = "too many offers from you";

#[derive(Default)]
pub(crate) struct Budget {
    used: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    total: usize,
    peak: usize,
    peers: HashMap<PeerId, usize>,
}

impl Budget {
    /// (bytes charged now, the most ever charged at once).
    pub fn usage(&self) -> (usize, usize) {
        let used = lock(&self.used);
        (used.total, used.peak)
    }

    fn add(&self, peer: &PeerId, bytes: usize) -> Result<(), &'static str> {
        self.grow(peer, 0, bytes)
    }

    /// Charge `more` to a charge holding `held`; if that goes over, give up `held` as well, in
    /// the same step: the offer is refused, and what it held is free for the others at once
    /// (two offers racing for the last bytes must not both be refused).
    fn grow(&self, peer: &PeerId, held: usize, bytes: usize) -> Result<(), &'static str> {
        let mut used = lock(&self.used);
        let over = Self::over(&used, peer, bytes);
        if over.is_err() {
            drop(used);
            self.release(peer, held);
            return over;
        }
        let mine = used.peers.get(peer).copied().unwrap_or(0);
        used.total += bytes;
        used.peak = used.peak.max(used.total);
        *used.peers.entry(peer.clone()).or_default() = mine + bytes;
        Ok(())
    }

    fn over(used: &Used, peer: &PeerId, bytes: usize) -> Result<(), &'static str> {
        let mine = used.peers.get(peer).copied().unwrap_or(0);
        if mine.saturating_add(bytes) > MANIFEST_PEER_SHARE {
            return Err(TOO_MANY_FROM_YOU);
        }
        if used.total.saturating_add(bytes) > MANIFEST_BUDGET {
            return Err(BUSY);
        }
        Ok(())
    }

    fn release(&self, peer: &PeerId, bytes: usize) {
        let mut used = lock(&self.used);
        used.total = used.total.saturating_sub(bytes);
        if let Some(mine) = used.peers.get_mut(peer) {
            *mine = mine.saturating_sub(bytes);
            if *mine == 0 {
                used.peers.remove(peer);
            }
        }
    }
}

/// One manifest's share of the budget; given back when dropped.
pub(crate) struct Charge {
    shared: Arc<Shared>,
    peer: PeerId,
    bytes: usize,
}

impl Charge {
    /// Charge `bytes` to `peer`, or say why not.
    pub fn take(shared: &Arc<Shared>, peer: &PeerId, bytes: usize) -> Result<Charge, &'static str> {
        shared.transfers.budget.add(peer, bytes)?;
        Ok(Charge {
            shared: shared.clone(),
            peer: peer.clone(),
            bytes,
        })
    }

    /// Charge `more`, or say why not. A charge that cannot grow is given up whole (its offer
    /// is refused).
    pub fn grow(&mut self, more: usize) -> Result<(), &'static str> {
        let held = std::mem::take(&mut self.bytes);
        self.shared.transfers.budget.grow(&self.peer, held, more)?;
        self.bytes = held + more;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.shared.transfers.budget.release(&self.peer, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_per_peer_and_in_all() {
        let budget = Budget::default();
        let (a, b, c) = (
            PeerId::from_public_key(&[1; 32]),
            PeerId::from_public_key(&[2; 32]),
            PeerId::from_public_key(&[3; 32]),
        );
        assert_eq!(budget.add(&a, MANIFEST_PEER_SHARE), Ok(()));
        assert_eq!(budget.add(&a, 1), Err(TOO_MANY_FROM_YOU));
        let rest = MANIFEST_BUDGET - MANIFEST_PEER_SHARE;
        assert_eq!(budget.add(&b, rest), Ok(()));
        assert_eq!(budget.add(&c, 1), Err(BUSY), "a newcomer finds the node full");
        budget.release(&a, MANIFEST_PEER_SHARE);
        assert_eq!(budget.add(&c, 1), Ok(()));
        assert_eq!(budget.usage(), (rest + 1, MANIFEST_BUDGET));
        assert_eq!(budget.grow(&b, rest, 1 << 30), Err(TOO_MANY_FROM_YOU));
        assert_eq!(budget.usage().0, 1, "a charge that cannot grow is given up whole");
        budget.release(&c, 1);
        assert_eq!(budget.usage().0, 0);
        assert!(lock(&budget.used).peers.is_empty(), "no peer rows left behind");
    }
}
