//! The node-wide budget for received manifests: what offers waiting for an answer and running
//! receives may cost in memory, in all, per peer, per address and for newcomers together. A
//! manifest is charged as it arrives (for every announced item first, then for each name before
//! it is kept), and the charge is given back when the offer ends, however it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::identity::PeerId;
use crate::limits::{MANIFEST_ADDRESS_SHARE, MANIFEST_BUDGET, MANIFEST_NEWCOMER_SHARE, MANIFEST_PEER_SHARE};
use crate::node::slots::Parking;
use crate::node::{Shared, lock};

/// Why a charge was refused; the text goes to the sender.
pub(crate) const BUSY: &str = "busy: too many offers waiting";
pub(crate) const TOO_MANY_FROM_YOU: &str = "too many offers from you";
pub(crate) const TOO_MANY_FROM_ADDRESS: &str = "too many offers from your address";

#[derive(Default)]
pub(crate) struct Budget {
    used: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    total: usize,
    peak: usize,
    /// Charged to newcomers together (see `limits`, "Connections").
    newcomers: usize,
    peers: HashMap<PeerId, usize>,
    addresses: HashMap<IpAddr, usize>,
}

/// Whom a charge is for: the key, and where its connection comes from and with what standing.
#[derive(Clone)]
pub(crate) struct Payer {
    pub peer: PeerId,
    pub ip: Option<IpAddr>,
    pub newcomer: bool,
}

impl Payer {
    /// The sender of an offer that came on the connection `from` (none: a pull of ours, with
    /// standing).
    pub fn of(peer: &PeerId, from: Option<&Parking>) -> Payer {
        Payer {
            peer: peer.clone(),
            ip: from.and_then(|f| f.ip),
            newcomer: from.is_some_and(|f| f.newcomer),
        }
    }
}

impl Budget {
    /// (bytes charged now, the most ever charged at once).
    pub fn usage(&self) -> (usize, usize) {
        let used = lock(&self.used);
        (used.total, used.peak)
    }

    fn add(&self, who: &Payer, bytes: usize) -> Result<(), &'static str> {
        self.grow(who, 0, bytes)
    }

    /// Charge `more` to a charge holding `held`; if that goes over, give up `held` as well, in
    /// the same step: the offer is refused, and what it held is free for the others at once
    /// (two offers racing for the last bytes must not both be refused).
    fn grow(&self, who: &Payer, held: usize, bytes: usize) -> Result<(), &'static str> {
        let mut used = lock(&self.used);
        let over = Self::over(&used, who, bytes);
        if over.is_err() {
            drop(used);
            self.release(who, held);
            return over;
        }
        used.total += bytes;
        used.peak = used.peak.max(used.total);
        if who.newcomer {
            used.newcomers += bytes;
        }
        *used.peers.entry(who.peer.clone()).or_default() += bytes;
        if let Some(ip) = who.ip {
            *used.addresses.entry(ip).or_default() += bytes;
        }
        Ok(())
    }

    fn over(used: &Used, who: &Payer, bytes: usize) -> Result<(), &'static str> {
        let mine = used.peers.get(&who.peer).copied().unwrap_or(0);
        if mine.saturating_add(bytes) > MANIFEST_PEER_SHARE {
            return Err(TOO_MANY_FROM_YOU);
        }
        let address = who.ip.and_then(|ip| used.addresses.get(&ip)).copied().unwrap_or(0);
        if address.saturating_add(bytes) > MANIFEST_ADDRESS_SHARE {
            return Err(TOO_MANY_FROM_ADDRESS);
        }
        if who.newcomer && used.newcomers.saturating_add(bytes) > MANIFEST_NEWCOMER_SHARE {
            return Err(BUSY);
        }
        if used.total.saturating_add(bytes) > MANIFEST_BUDGET {
            return Err(BUSY);
        }
        Ok(())
    }

    fn release(&self, who: &Payer, bytes: usize) {
        let mut used = lock(&self.used);
        used.total = used.total.saturating_sub(bytes);
        if who.newcomer {
            used.newcomers = used.newcomers.saturating_sub(bytes);
        }
        if let Some(mine) = used.peers.get_mut(&who.peer) {
            *mine = mine.saturating_sub(bytes);
            if *mine == 0 {
                used.peers.remove(&who.peer);
            }
        }
        if let Some(ip) = who.ip
            && let Some(theirs) = used.addresses.get_mut(&ip)
        {
            *theirs = theirs.saturating_sub(bytes);
            if *theirs == 0 {
                used.addresses.remove(&ip);
            }
        }
    }
}

/// One manifest's share of the budget; given back when dropped.
pub(crate) struct Charge {
    shared: Arc<Shared>,
    who: Payer,
    bytes: usize,
}

impl Charge {
    /// Charge `bytes` to `who`, or say why not.
    pub fn take(shared: &Arc<Shared>, who: Payer, bytes: usize) -> Result<Charge, &'static str> {
        shared.transfers.budget.add(&who, bytes)?;
        Ok(Charge {
            shared: shared.clone(),
            who,
            bytes,
        })
    }

    /// Charge `more`, or say why not. A charge that cannot grow is given up whole (its offer
    /// is refused).
    pub fn grow(&mut self, more: usize) -> Result<(), &'static str> {
        let held = std::mem::take(&mut self.bytes);
        self.shared.transfers.budget.grow(&self.who, held, more)?;
        self.bytes = held + more;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.shared.transfers.budget.release(&self.who, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payer(n: u8, ip: u8, newcomer: bool) -> Payer {
        Payer {
            peer: PeerId::from_public_key(&[n; 32]),
            ip: Some(IpAddr::from([10, 0, 0, ip])),
            newcomer,
        }
    }

    #[test]
    fn the_budget_holds_per_peer_per_address_for_newcomers_and_in_all() {
        let budget = Budget::default();
        let (a, b, c) = (payer(1, 1, false), payer(2, 2, false), payer(3, 3, false));
        assert_eq!(budget.add(&a, MANIFEST_PEER_SHARE), Ok(()));
        assert_eq!(budget.add(&a, 1), Err(TOO_MANY_FROM_YOU));
        assert_eq!(
            budget.add(&payer(4, 1, false), 1),
            Err(TOO_MANY_FROM_ADDRESS),
            "another key, same address"
        );
        let rest = MANIFEST_BUDGET - MANIFEST_PEER_SHARE;
        assert_eq!(budget.add(&b, rest), Ok(()));
        assert_eq!(budget.add(&c, 1), Err(BUSY), "the node is full");
        budget.release(&a, MANIFEST_PEER_SHARE);
        assert_eq!(budget.add(&c, 1), Ok(()));
        assert_eq!(budget.usage(), (rest + 1, MANIFEST_BUDGET));
        assert_eq!(budget.grow(&b, rest, 1 << 30), Err(TOO_MANY_FROM_YOU));
        assert_eq!(budget.usage().0, 1, "a charge that cannot grow is given up whole");
        budget.release(&c, 1);
        assert_eq!(budget.usage().0, 0);
        let used = lock(&budget.used);
        assert!(used.peers.is_empty() && used.addresses.is_empty(), "no rows left behind");
        drop(used);
        // Newcomers from two addresses cannot take what is kept for peers with standing.
        let half = MANIFEST_NEWCOMER_SHARE / 2 + 1;
        assert_eq!(budget.add(&payer(5, 5, true), half), Ok(()));
        assert_eq!(budget.add(&payer(6, 6, true), half), Err(BUSY));
        assert_eq!(budget.add(&payer(7, 7, false), MANIFEST_BUDGET - MANIFEST_NEWCOMER_SHARE), Ok(()));
        budget.release(&payer(5, 5, true), half);
        assert_eq!(lock(&budget.used).newcomers, 0);
    }
}
