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

// == Chat and the database ==

// == Names and keys ==

/// An id prefix at least this long (the short id shown in every list) is looked up among ids
/// only and wins over any nick: a peer can't take another's id by choosing a nick, and taking a
/// nick by grinding a key whose id starts with it costs 2^40 keys. A shorter prefix still
/// works, but when it also matches a nick the PEER is refused as ambiguous.
pub const MIN_ID_PREFIX: usize = 8;

/// Id prefixes shorter than this are not looked up at all (too many peers would share them).
pub const MIN_SHORT_ID_PREFIX: usize = 4;

/// Keeps `Duration` in use while sections are empty.
#[allow(dead_code)]
const _UNUSED: Duration = Duration::ZERO;
