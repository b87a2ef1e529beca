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

/// Keeps `Duration` in use while sections are empty.
#[allow(dead_code)]
const _UNUSED: Duration = Duration::ZERO;
