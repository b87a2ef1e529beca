//! Every budget a peer can run into, in one place: what one machine on the LAN may cost this
//! node in connections, time, memory, disk and database rows. A hostile lab is the design case:
//! identities are free to create, so a budget per key alone is never enough — each one below
//! says what it bounds and what happens at the bound (and what the other side is told).
//!
//! Imports nothing from the crate, so every layer can use it.

use std::time::Duration;

// == Connections and deadlines ==

// == Offers and manifests ==

// == Disk ==

/// Free space an accepted offer must leave on the download folder's file system, at least
/// (see [`DISK_MARGIN_PERCENT`]). An offer that would eat into it is refused before anything
/// is written, and the sender is told: "not enough disk space on <nick>: needs X, Y free".
pub const DISK_MARGIN_MIN: u64 = 64 << 20;
/// …or this share of the offer's bytes (in percent) when that is more: file system overhead
/// grows with what is written.
pub const DISK_MARGIN_PERCENT: u64 = 1;
/// Partial files (and the resume records of their folders) untouched this long belong to
/// transfers nobody resumed: removed when the node starts and before each transfer into the
/// same folder. A resume after that starts again from zero.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

// == Chat and the database ==

// == Names and keys ==

/// Keeps `Duration` in use while sections are empty.
#[allow(dead_code)]
const _UNUSED: Duration = Duration::ZERO;
