//! Every budget a peer can run into, in one place: what one machine on the LAN may cost this
//! node in connections, time, memory, disk and database rows. A hostile lab is the design case:
//! identities are free to create, so a budget per key alone is never enough — each one below
//! says what it bounds and what happens at the bound (and what the other side is told).
//!
//! Imports nothing from the crate, so every layer can use it.

use std::time::Duration;

// == Connections and deadlines ==

// == Offers and manifests ==

/// Manifest bytes the node holds at once for offers it receives (waiting for an answer or
/// running, pulls included), counted as names arrive: each item costs its name's length plus
/// [`MANIFEST_ITEM_COST`]. An offer that would go over is refused before more of it is taken,
/// and the sender is told "busy: too many offers waiting".
pub const MANIFEST_BUDGET: usize = 192 << 20;
/// One peer's share of [`MANIFEST_BUDGET`]: room for one offer of the largest size (64 MiB of
/// names in 100,000 items), not two. Beyond, the sender is told "too many offers from you".
pub const MANIFEST_PEER_SHARE: usize = 128 << 20;
/// What a received item costs in memory besides its name while its offer waits or runs (its
/// record, resume slot and partial-file reservation): charged to the budget for every item the
/// offer announces, before any name arrives.
pub const MANIFEST_ITEM_COST: usize = 512;
/// How long a receiver that refused an offer mid-manifest (budget spent, a bad name) keeps
/// reading what the sender still sends, so that the refusal reaches it instead of a reset.
pub const REFUSAL_DRAIN: Duration = Duration::from_secs(10);
/// Entries of one peer listing the node keeps for a face; the rest are counted, not kept
/// ("N more not shown").
pub const LISTING_KEPT: usize = 10_000;
/// Files an outcome lists by name (saved, and failed with their reasons); the rest are counted.
pub const OUTCOME_LISTED: usize = 1000;

// == Disk ==

// == Chat and the database ==

// == Names and keys ==
