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

/// Lines one peer may have stored with us per [`CHAT_RATE_WINDOW`] (a token bucket: a burst of
/// this many, refilled evenly over the window). A line beyond is not stored: the sender is told
/// "too many messages, try later" (`ChatRefused`) and shows it as failed. Generous: a script's
/// burst or an offline queue flushed at reconnect must pass; the size budgets bound the disk.
pub const CHAT_RATE_LINES: u32 = 3000;
/// Bytes of chat text one peer may have stored with us per [`CHAT_RATE_WINDOW`]; same bucket
/// and same refusal as [`CHAT_RATE_LINES`].
pub const CHAT_RATE_BYTES: u64 = 8 * 1024 * 1024;
/// The window both chat rates refill over.
pub const CHAT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Bytes of text the `#all` room keeps from all senders together: past it the oldest received
/// room lines are deleted (trimmed to 7/8 of this, so not on every line). Ours are never trimmed.
pub const CHAT_ROOM_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of text the room keeps from one sender: past it that sender's oldest room lines go
/// first, so one flooder pushes out its own lines before anyone else's.
pub const CHAT_ROOM_BYTES_PER_PEER: u64 = 2 * 1024 * 1024;
/// Bytes of received text kept in one direct conversation with a known peer (trusted, seen in an
/// earlier run, or spoken to by us). A direct line is never trimmed: past this it is refused
/// ("no room left for your messages").
pub const CHAT_DIRECT_BYTES: u64 = 64 * 1024 * 1024;
/// The same for a stranger: a key first seen in this run, untrusted, whom we never wrote to.
pub const CHAT_STRANGER_BYTES: u64 = 256 * 1024;
/// Bytes of direct lines all strangers together may have stored in one run (identities are free:
/// a budget per key alone would not bound the database). Past it, strangers' lines are refused.
pub const CHAT_STRANGERS_BYTES: u64 = 4 * 1024 * 1024;
/// Longest refusal reason a peer may send us; a longer one ends its connection.
pub const CHAT_REFUSAL_BYTES: usize = 200;
/// Lines in one `history` reply: a face pages with a cursor, the node never reads a whole
/// conversation at once.
pub const HISTORY_PAGE: usize = 500;
/// A peer row whose key completed one handshake and was never seen again (untrusted, no direct
/// conversation) is deleted this long (seconds) after it was last seen.
pub const ONE_TIME_PEER_AGE: u64 = 24 * 3600;
/// How often a running node deletes expired peer rows (besides at start). One cheap DELETE.
pub const PEER_PRUNE_EVERY: Duration = Duration::from_secs(3600);

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
