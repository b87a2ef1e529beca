//! The locker: files deposited on several machines for their owner, retrieved later from any
//! of them.
//!
//! A **holder** keeps deposits in its data dir (`locker/OWNER/ID/`, owner-only), never in the
//! download dir or a share. A deposit arrives as a `Deposit` offer (a relayed send whose
//! offers say so): taken without asking a person when the owner is allowed (`deposits =
//! "anyone" | "trusted" | "none"`) and the budgets hold, refused up front with the numbers
//! otherwise. Listing, fetching and dropping answer only the key that owns the deposit — the
//! key the connection was authenticated with; to any other key a deposit does not exist (the
//! same answer as an unknown id).
//!
//! An **owner** records its deposits in its database (`db.rs`), places them by rendezvous
//! hashing over the peers online (`placement`), and can rebuild that record from what holders
//! list to its key (after `lanyard id import` on another machine).
//!
//! The wire ends (what a holder answers on a transfer connection, and how an owner asks) are
//! in `transfer/held.rs`; this module is the meaning.
//!
//! Its files: `mod.rs` (ids, policy, budgets and their refusals), `placement` (rendezvous
//! hashing), `db` (its tables), `owner` (the owner's calls on `NodeHandle`), `repair` (a holder's
//! scrub, an owner's repair of lost copies).

pub(crate) mod db;
mod owner;
pub mod placement;
pub(crate) mod repair;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::PeerId;
use crate::limits::{DEPOSIT_PER_OWNER, DEPOSIT_REPAIR_AFTER, DEPOSIT_TOTAL, SCRUB_AGE, SCRUB_EVERY};

pub use owner::{DepositReport, DepositView, HeldReport, HeldView, HolderView, Retrieved};

/// Whose deposits a node holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Any peer's (within the budgets).
    #[default]
    Anyone,
    /// Only trusted peers'.
    Trusted,
    /// None: deposit offers are refused.
    None,
}

/// A deposit policy that is none of the three (the words as given, shown inert).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deposits must be \"anyone\", \"trusted\" or \"none\", not \"{}\"", crate::text::printable(.0))]
pub struct BadPolicy(pub String);

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, BadPolicy> {
        match s {
            "anyone" => Ok(Policy::Anyone),
            "trusted" => Ok(Policy::Trusted),
            "none" => Ok(Policy::None),
            other => Err(BadPolicy(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Anyone => "anyone",
            Policy::Trusted => "trusted",
            Policy::None => "none",
        }
    }
}

/// What a node holds for others, and when its own deposits are repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockerConfig {
    pub policy: Policy,
    /// Bytes one owner's deposits may take here.
    pub per_owner: u64,
    /// Bytes every owner's deposits may take here in all.
    pub total: u64,
    /// A holder of one of our deposits away longer than this is replaced.
    pub repair_after: Duration,
    /// How often a held deposit is re-read at most, and how old its last check must be.
    pub scrub_every: Duration,
    pub scrub_age: Duration,
}

impl Default for LockerConfig {
    fn default() -> LockerConfig {
        LockerConfig {
            policy: Policy::Anyone,
            per_owner: DEPOSIT_PER_OWNER,
            total: DEPOSIT_TOTAL,
            repair_after: DEPOSIT_REPAIR_AFTER,
            scrub_every: SCRUB_EVERY,
            scrub_age: SCRUB_AGE,
        }
    }
}

/// The folder every deposit held here lies under.
pub(crate) fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("locker")
}

/// Where the deposit `id` of `owner` is held (both are checked forms: base32 and hex).
pub(crate) fn deposit_dir(data_dir: &Path, owner: &PeerId, id: &str) -> PathBuf {
    store_dir(data_dir).join(owner.as_str()).join(id)
}

/// A deposit's id: one owner's one content under one name. The same name and content give the
/// same id (a deposit made again only changes its replica count); other content under the
/// name is another version.
pub fn deposit_id(owner: &PeerId, name: &str, digest: &[u8; 32]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"lanyard-deposit-id-v1");
    for part in [owner.as_str().as_bytes(), name.as_bytes()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(digest);
    h.finalize().to_hex()[..crate::node::transfer::wire::DEPOSIT_ID_LEN].to_string()
}

/// What one owner's deposits use here, and all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub owner: u64,
    pub total: u64,
}

/// A budget as a person says it: "2 GiB", "1.8 GiB", "512 MiB".
pub fn budget_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while unit + 1 < UNITS.len() && n >= scale << 10 {
        scale <<= 10;
        unit += 1;
    }
    if n.is_multiple_of(scale) {
        format!("{} {}", n / scale, UNITS[unit])
    } else {
        let tenths = ((n as u128 * 10 + scale as u128 / 2) / scale as u128) as u64;
        if tenths.is_multiple_of(10) {
            format!("{} {}", tenths / 10, UNITS[unit])
        } else {
            format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
        }
    }
}

/// Whether a deposit of `bytes` fits the budgets, given what is used; the refusal names the
/// numbers, as the depositor's user reads them ("bob holds at most 2 GiB for you; 1.8 GiB
/// used").
pub fn fits(config: &LockerConfig, used: Usage, bytes: u64, holder: &str) -> Result<(), String> {
    let holder = crate::text::printable(holder);
    if used.owner.saturating_add(bytes) > config.per_owner {
        return Err(format!(
            "{holder} holds at most {} for you; {} used",
            budget_bytes(config.per_owner),
            budget_bytes(used.owner)
        ));
    }
    if used.total.saturating_add(bytes) > config.total {
        return Err(format!(
            "{holder} holds at most {} of deposits in all; {} used",
            budget_bytes(config.total),
            budget_bytes(used.total)
        ));
    }
    Ok(())
}

/// The locker's state in memory (in `Shared`).
#[derive(Default)]
pub(crate) struct State {
    arriving: Mutex<Arriving>,
    /// Held while our record is read, changed and written back (a survey's merge, a repair's
    /// change of holders): two of them at once would each write back what the other removed.
    pub(crate) record: tokio::sync::Mutex<()>,
    /// Our deposits as faces were last told them (`Event::Deposits`), to tell only changes.
    pub(crate) published: tokio::sync::Mutex<Option<Vec<DepositView>>>,
}

/// Deposits admitted and still arriving: what each owner's promise takes from the budgets until
/// it is recorded (or fails), so that offers admitted at once cannot together pass them.
#[derive(Default)]
pub(crate) struct Arriving {
    next: u64,
    by: HashMap<u64, (PeerId, u64)>,
}

impl State {
    /// The book of deposits arriving, held while a new one is checked and entered in it.
    pub(crate) fn arriving(&self) -> MutexGuard<'_, Arriving> {
        crate::node::lock(&self.arriving)
    }
}

impl Arriving {
    /// What deposits arriving take: `owner`'s, and everyone's.
    pub(crate) fn usage(&self, owner: &PeerId) -> Usage {
        let mut u = Usage::default();
        for (who, bytes) in self.by.values() {
            u.total = u.total.saturating_add(*bytes);
            if who == owner {
                u.owner = u.owner.saturating_add(*bytes);
            }
        }
        u
    }

    /// Enter `bytes` for `owner`; they count until the reservation is released or dropped.
    pub(crate) fn hold(&mut self, state: &Arc<State>, owner: &PeerId, bytes: u64) -> Reservation {
        self.next += 1;
        self.by.insert(self.next, (owner.clone(), bytes));
        Reservation {
            state: state.clone(),
            token: self.next,
        }
    }
}

/// Room promised to one deposit arriving.
pub(crate) struct Reservation {
    state: Arc<State>,
    token: u64,
}

impl Reservation {
    /// Its bytes are recorded as held now (or it failed): they no longer count as arriving.
    pub(crate) fn release(&self) {
        self.state.arriving().by.remove(&self.token);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({})", self.token)
    }
}

/// A deposit admitted: the record to keep once it is whole, and the room it holds meanwhile.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub held: db::Held,
    pub reservation: Reservation,
}

/// Whether `owner` may deposit here at all; the refusal says why.
pub fn admits(policy: Policy, trusted: bool, holder: &str) -> Result<(), String> {
    let holder = crate::text::printable(holder);
    match policy {
        Policy::Anyone => Ok(()),
        Policy::Trusted if trusted => Ok(()),
        Policy::Trusted => Err(format!("{holder} holds deposits only for peers it trusts")),
        Policy::None => Err(format!("{holder} holds no deposits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_public_key(&[n; 32])
    }

    #[test]
    fn budgets_refuse_with_the_numbers() {
        let c = LockerConfig {
            per_owner: 2 << 30,
            total: 3 << 30,
            ..LockerConfig::default()
        };
        let used = Usage {
            owner: 1932735283, // 1.8 GiB
            total: 1932735283,
        };
        assert!(fits(&c, used, 100 << 20, "bob").is_ok());
        let e = fits(&c, used, 300 << 20, "bob").unwrap_err();
        assert_eq!(e, "bob holds at most 2 GiB for you; 1.8 GiB used");
        let others = Usage {
            owner: 0,
            total: (3 << 30) - 10,
        };
        assert!(fits(&c, others, 11, "bob").unwrap_err().contains("in all"));
        assert!(fits(&c, others, 10, "bob").is_ok());
        // Hostile nick in the refusal stays inert.
        assert!(!fits(&c, used, 1 << 30, "b\u{1b}[2Job").unwrap_err().contains('\u{1b}'));
    }

    #[test]
    fn deposits_arriving_count_until_released() {
        let state = Arc::new(State::default());
        let c = LockerConfig {
            per_owner: 100,
            total: 150,
            ..LockerConfig::default()
        };
        // Two offers at once: the second sees the first's promise and is refused.
        let first = {
            let mut book = state.arriving();
            assert!(fits(&c, book.usage(&peer(1)), 60, "bob").is_ok());
            book.hold(&state, &peer(1), 60)
        };
        {
            let book = state.arriving();
            assert_eq!(book.usage(&peer(1)), Usage { owner: 60, total: 60 });
            assert_eq!(book.usage(&peer(2)), Usage { owner: 0, total: 60 });
            assert_eq!(
                fits(&c, book.usage(&peer(1)), 60, "bob").unwrap_err(),
                "bob holds at most 100 B for you; 60 B used"
            );
        }
        let other = state.arriving().hold(&state, &peer(2), 80);
        assert!(
            fits(&c, state.arriving().usage(&peer(3)), 20, "bob")
                .unwrap_err()
                .contains("in all")
        );
        // Recorded (or failed): the room is free again, once.
        first.release();
        assert_eq!(state.arriving().usage(&peer(1)), Usage { owner: 0, total: 80 });
        drop(first);
        drop(other);
        assert_eq!(state.arriving().usage(&peer(2)), Usage::default());
    }

    #[test]
    fn budgets_read_as_a_person_says_them() {
        assert_eq!(budget_bytes(2 << 30), "2 GiB");
        assert_eq!(budget_bytes(1932735283), "1.8 GiB");
        assert_eq!(budget_bytes(1 << 20), "1 MiB");
        assert_eq!(budget_bytes(0), "0 B");
        assert_eq!(budget_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn policy_decides_who_may_deposit() {
        assert!(admits(Policy::Anyone, false, "bob").is_ok());
        assert!(admits(Policy::Trusted, true, "bob").is_ok());
        assert!(admits(Policy::Trusted, false, "bob").is_err());
        assert_eq!(admits(Policy::None, true, "bob").unwrap_err(), "bob holds no deposits");
        assert_eq!(Policy::parse("trusted"), Ok(Policy::Trusted));
        assert!(Policy::parse("everyone").is_err());
    }

    #[test]
    fn a_deposit_id_is_owner_name_and_content() {
        let d = [7u8; 32];
        let id = deposit_id(&peer(1), "report.pdf", &d);
        assert_eq!(id.len(), 32);
        assert_eq!(id, deposit_id(&peer(1), "report.pdf", &d));
        assert_ne!(id, deposit_id(&peer(2), "report.pdf", &d), "another owner");
        assert_ne!(id, deposit_id(&peer(1), "report2.pdf", &d), "another name");
        assert_ne!(id, deposit_id(&peer(1), "report.pdf", &[8u8; 32]), "another version");
    }
}
