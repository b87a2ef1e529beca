//! Every budget a peer can run into, in one place: what one machine on the LAN may cost this
//! node in connections, time, memory, disk and database rows. A hostile lab is the design case:
//! identities are free to create, so a budget per key alone is never enough — each one below
//! says what it bounds and what happens at the bound (and what the other side is told).
//!
//! Imports nothing from the crate, so every layer can use it.

use std::time::Duration;

// == What one message may carry ==
//
// Checked before memory is taken for the thing limited; past any of them the message is a
// protocol error that ends its connection (never the node), with the reason logged.
/// Largest frame on a transfer connection; a bigger manifest or listing is split.
pub const MAX_TRANSFER_FRAME: usize = 1 << 20;
/// Files and folders in one offer.
pub const MAX_ITEMS: usize = 100_000;
/// Sum of the path lengths of one manifest: bounds what a receiver holds in memory for it.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;
/// Largest raw segment after a `Data` frame.
pub const MAX_SEGMENT: u64 = 1 << 20;
/// Paths in one `Get`.
pub const MAX_GET_PATHS: usize = 1000;
/// Entries of a listing the client will hold.
pub const MAX_LIST_ENTRIES: usize = 100_000;
/// Resume offsets in one `Accept`; files beyond start from zero.
pub const MAX_RESUME_ENTRIES: usize = 50_000;
/// Longest reason or error text we pass along.
pub const MAX_REASON_BYTES: usize = 512;
/// Longest request path we look at, matching Linux's PATH_MAX.
pub const MAX_SHARE_REQUEST_BYTES: usize = 4096;
/// Most entries `walk` (and `list`) will produce; a bound on the work and memory one request
/// can cost us.
pub const MAX_WALK_ENTRIES: usize = 1_000_000;
/// Largest CBOR frame on a control connection (chat lines are far below this).
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;
pub const MAX_NICK_BYTES: usize = 64;
pub const MAX_SOFTWARE_BYTES: usize = 64;
/// Largest chat text, in bytes of UTF-8. Refused when saying, and a protocol error on receipt.
pub const MAX_CHAT_TEXT: usize = 16 * 1024;
/// Peers named in one `Peers` message; a node with more sends several.
pub const MAX_PEER_HINTS: usize = 128;
/// Addresses given for one peer in a `Peers` message.
pub const MAX_HINT_ADDRS: usize = 4;
/// Longest text form of one such address (`[IPv6%scope]:port` fits with room to spare).
pub const MAX_HINT_ADDR_BYTES: usize = 64;
/// Largest handshake payload (the hello inside Noise); a bigger one ends the handshake.
pub const MAX_HELLO: usize = 1024;
/// Longest single component we accept; the common limit of Linux, macOS and Windows file systems.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest relative path we accept, matching Linux's PATH_MAX.
pub const MAX_PATH_BYTES: usize = 4096;
/// Deepest relative path we accept; far beyond real trees, low enough to bound the work per name.
pub const MAX_DEPTH: usize = 64;

// == Connections and deadlines ==
//
// Slots. Every connection that completed its handshake holds a slot in one of two pools until
// it ends: control (one per peer, either direction) or incoming transfer (one per push, list or
// get a peer started). A connection is refused — the peer is told why, in a `Bye` or a transfer
// `Error`, before the close — when its pool, its source address or (for transfers) its key
// already holds its share. Ahead of newcomers come peers with standing: trusted, or a conversation
// a person here took part in (we wrote to it, or accepted an offer from it), or a key first seen
// over [`STANDING_AFTER`] ago. Being connected, or one control session, earns nothing: keys are
// free. Newcomers together may hold at most a share of each pool, and from one address a share
// of that address's cap; when a pool is full, a known peer's transfer connection evicts the
// newcomer's that moved nothing for the longest (told "busy"), so throwaway keys can delay honest
// peers but never lock them out. Control connections are not evicted: the newcomer shares alone
// keep half of that pool for known peers. An offer waiting for a person's answer holds no slot
// (its connection is set aside until the answer; see [`MAX_WAITING_OFFERS`]).

/// Control connections at once (incoming and dialled). Past it: "busy: all connection slots are
/// in use".
pub const MAX_CONTROL_CONNECTIONS: usize = 512;
/// Incoming transfer connections at once (pushes to us, lists and gets of our shares). Past
/// it, a known peer evicts an idle newcomer; a newcomer is told "busy: all transfer slots are
/// in use".
pub const MAX_INCOMING_TRANSFERS: usize = 64;
/// Newcomers (see above) together may hold at most 1/`NEWCOMER_SHARE` of each pool (past it:
/// "busy: … for new peers"), and from one address 1/`NEWCOMER_SHARE` of the per-address cap
/// (past it: "too many connections from your address").
pub const NEWCOMER_SHARE: usize = 2;
/// A key first seen this long ago has standing (see above), whatever else it did.
pub const STANDING_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// Offers waiting for a person's answer, in all; past it: "busy: too many offers waiting for an
/// answer". Each holds its connection open but no slot, and costs its manifest's charge.
pub const MAX_WAITING_OFFERS: usize = 128;
/// The share of [`MAX_WAITING_OFFERS`] newcomers together may use (same refusal).
pub const MAX_NEWCOMER_WAITING_OFFERS: usize = 32;
/// Offers waiting from one key; past it: "too many of your offers are waiting".
pub const MAX_WAITING_OFFERS_PER_KEY: usize = 4;
/// Offers waiting from one address, whatever its keys; past it: "too many offers from your
/// address are waiting".
pub const MAX_WAITING_OFFERS_PER_ADDRESS: usize = 8;
/// Control connections from one IP address. Generous: several nodes may share an address (a
/// shared server, in-process tests on 127.0.0.1). Past it: "too many connections from your
/// address".
pub const MAX_CONTROL_PER_ADDRESS: usize = 64;
/// Incoming transfer connections from one IP address (whatever keys it uses). Past it: "too
/// many connections from your address".
pub const MAX_TRANSFERS_PER_ADDRESS: usize = 16;
/// Handshakes in progress from one IP address; one more evicts that address's oldest, so one
/// machine can't take the handshake slots ([`MAX_PENDING_HANDSHAKES`]) from others. When
/// all are taken, a new one evicts the oldest of the address with the most in progress.
pub const MAX_PENDING_PER_ADDRESS: usize = 16;
/// After telling a refused transfer connection why, how long its unread offer is read and
/// dropped (so the close does not reset the connection before the reason arrives).
pub const REFUSAL_DRAIN: Duration = Duration::from_secs(2);
/// Refused connections being drained at once; past it, closed at once.
pub const MAX_REFUSALS_DRAINING: usize = 64;

// Deadlines. Every wait on a peer has one: the handshake ([`HANDSHAKE_TIMEOUT`]), a
// transfer connection's first message ([`FIRST_FRAME_TIMEOUT`]), a person's answer to
// an offer ([`OFFER_ANSWER_TIMEOUT`], then the sender is told "expired"), a control
// connection's silence ([`CONTROL_IDLE_LIMIT`]), and everything else on a transfer connection —
// manifest, verdicts, file data, listings — by progress:

/// A transfer (push or pull, either end) in which no byte moves for this long ends, on both
/// sides, with "nothing moved for N s"; partial data is kept and the same transfer resumes.
/// Only the waits for a person's answer are exempt (they have their own deadline).
/// `NodeConfig::stall_timeout` overrides it (tests).
pub const TRANSFER_STALL: Duration = Duration::from_secs(30);
/// A transfer that is cancelled or stopped while a write is under way lets that write finish
/// for at most this long, so the reason can follow it between frames; a write that cannot
/// finish in time is given up and the connection just closes (the peer sees it lost).
pub const FINISH_WRITE: Duration = Duration::from_secs(2);
/// Shutdown waits this long for the node's tasks before it names the ones still running (and
/// again after each such wait).
pub const SHUTDOWN_WARN: Duration = Duration::from_secs(5);
/// Shutdown waits at most this long for the node's tasks in all, then names the ones left
/// running and releases the data dir: a person who quits gets the terminal back.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
/// How much longer than the receiver's own answer deadline a sender waits for the answer.
pub const ANSWER_GRACE: Duration = Duration::from_secs(30);
/// After its last byte, how long a sender waits for the verdicts on the last files: the
/// receiver verifies, syncs and places them first, which for a big file on a slow disk can take
/// longer than the stall limit.
pub const LAST_VERDICTS_WAIT: Duration = Duration::from_secs(300);
/// Handshakes in progress at once; a newcomer past this evicts the oldest, so idle connections
/// can't lock real peers out.
pub const MAX_PENDING_HANDSHAKES: usize = 64;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Silence longer than this (several missed pings) means the peer's process is stuck.
pub const CONTROL_IDLE_LIMIT: Duration = Duration::from_secs(90);
/// How long a peer may take to answer a list or get request.
pub const PULL_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// A peer that doesn't finish the handshake in this time is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A transfer connection must say what it wants this soon; then it is closed (unanswered).
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an offer waits for a person to answer; then it expires and the sender is told
/// "expired: nobody answered within 5 minutes".
pub const OFFER_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
/// Incoming transfer connections one peer may have open at once (a slot each, see `slots`).
pub const MAX_TRANSFERS_PER_KEY: usize = 8;

// == Offers and manifests ==

/// Manifest bytes the node holds at once for offers it receives (waiting for an answer or
/// running, pulls included), counted as names arrive: each item costs its name's length plus
/// [`MANIFEST_ITEM_COST`]. An offer that would go over is refused before more of it is taken,
/// and the sender is told "busy: too many offers waiting".
pub const MANIFEST_BUDGET: usize = 192 << 20;
/// One peer's share of [`MANIFEST_BUDGET`]: room for one offer of the largest size (64 MiB of
/// names in 100,000 items), not two. Beyond, the sender is told "too many offers from you".
pub const MANIFEST_PEER_SHARE: usize = 128 << 20;
/// One address's share of [`MANIFEST_BUDGET`], whatever keys it uses: again one offer of the
/// largest size. Beyond: "too many offers from your address".
pub const MANIFEST_ADDRESS_SHARE: usize = 128 << 20;
/// What newcomers (see "Connections") together may hold of [`MANIFEST_BUDGET`]: one offer of
/// the largest size, so the rest (64 MiB) stays for peers with standing however many throwaway
/// keys and addresses offer. Beyond: "busy: too many offers waiting".
pub const MANIFEST_NEWCOMER_SHARE: usize = 128 << 20;
/// What a received item costs in memory besides its name while its offer waits or runs (its
/// record, resume slot and partial-file reservation): charged to the budget for every item the
/// offer announces, before any name arrives.
pub const MANIFEST_ITEM_COST: usize = 512;
/// How long a receiver that refused an offer mid-manifest (budget spent, a bad name) keeps
/// reading what the sender still sends, so that the refusal reaches it instead of a reset.
pub const MANIFEST_REFUSAL_DRAIN: Duration = Duration::from_secs(10);
/// Entries of one peer listing the node keeps for a face; the rest are counted, not kept
/// ("N more not shown").
pub const LISTING_KEPT: usize = 10_000;
/// Files an outcome lists by name (saved, and failed with their reasons); the rest are counted.
pub const OUTCOME_LISTED: usize = 1000;

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

// == Peer exchange ==
/// How long a peer named in a list (or one whose connection broke) is dialled without news.
pub const HINT_TTL: Duration = Duration::from_secs(60);
/// Peers known only from claims (lists and mDNS records: no key has answered for them yet) held
/// at once. Past this, a claim from a source (the address a record names first, the peer that
/// sent a list) holding fewer takes the place of the oldest claim of the source holding the
/// most; any other is ignored until some are confirmed or expire. So one forger's flood pushes
/// out its own claims, never keeps an honest record out.
pub const MAX_CANDIDATES: usize = 256;
/// Dials of peers known only from lists in flight at once.
pub const MAX_HINTED_DIALS: usize = 8;

// == Dials of discovered peers ==
//
// An mDNS record and a peer's list are claims: anyone can send one, naming any id, nick and
// address. A peer so named is neither listed nor given its nick (nor counted as a namesake) before
// its key answered a handshake, and it counts against [`MAX_CANDIDATES`] until then. Every dial
// of such a peer (and of a peer whose connection broke) passes one gate (`node/dials.rs`):

/// At most one dial per this to one IP address, whatever the port or the id claimed (2 a second).
pub const DIAL_SPACING_PER_ADDRESS: Duration = Duration::from_millis(500);
/// Dials a second in all (a bucket of as many, so a lab found at once is dialled at once).
pub const DIAL_RATE: u32 = 20;
/// A port that did not answer as lanyard (refused, silent, another protocol) is dialled again
/// after this, doubling with every failure in a row up to [`DIAL_BACKOFF_MAX`].
pub const DIAL_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Where a lanyard key answered, dials expecting another id wait this long: that claim was
/// shown false already.
pub const DIAL_ANSWERED_HOLD: Duration = Duration::from_secs(60);
/// Addresses the gate remembers; past it, the ones no longer holding anything back are
/// forgotten, and a new address waits if none is.
pub const DIAL_ADDRS_KEPT: usize = 4096;
/// Ports below this (ssh, http, …) are never dialled for a discovered peer: lanyard listens
/// above it (7717 unless told otherwise), and a list naming port 22 is a way to make us knock on
/// someone's ssh. `--peer HOST:PORT` may name any port.
pub const MIN_DISCOVERED_PORT: u16 = 1024;

// == Chat and the database ==

/// Lines one peer may have stored with us per [`CHAT_RATE_WINDOW`] (a token bucket: a burst of
/// this many, refilled evenly over the window). A line beyond is not stored: the sender is told
/// "too many messages, try later" (`ChatRefused`) and shows it as failed. Generous: a script's
/// burst or an offline queue flushed at reconnect must pass; the size budgets bound the disk.
pub const CHAT_RATE_LINES: u32 = 3000;
/// Bytes of chat text one peer may have stored with us per [`CHAT_RATE_WINDOW`]; same bucket
/// and same refusal as [`CHAT_RATE_LINES`].
pub const CHAT_RATE_BYTES: u64 = 8 * 1024 * 1024;
/// Lines and bytes one address may have stored with us per [`CHAT_RATE_WINDOW`], whatever keys
/// it uses (twice a key's: a shared machine may run two nodes). Same refusal.
pub const CHAT_ADDRESS_RATE_LINES: u32 = 2 * CHAT_RATE_LINES;
pub const CHAT_ADDRESS_RATE_BYTES: u64 = 2 * CHAT_RATE_BYTES;
/// Lines and bytes all strangers together (peers without standing, see "Connections") may have
/// stored with us per [`CHAT_RATE_WINDOW`]: identities and addresses are cheap, so this is what
/// bounds a flood from many keys on many machines (what it acknowledges and writes to disk).
/// Same refusal; peers with standing never draw on it.
pub const CHAT_STRANGERS_RATE_LINES: u32 = CHAT_RATE_LINES;
pub const CHAT_STRANGERS_RATE_BYTES: u64 = CHAT_RATE_BYTES;
/// Bytes of chat lines in flight — read from peers' connections and not yet stored and answered —
/// node-wide. Each line counts its text plus [`CHAT_LINE_COST`]. At the bound the connection
/// whose line does not fit is not read any further until lines ahead of it are answered: its
/// sender's own TCP window then holds the rest (nothing is refused or lost, it only waits).
/// Without it, each connection could queue its whole window of 16 KiB lines, all at once.
pub const CHAT_IN_FLIGHT_BYTES: usize = 16 << 20;
/// The same for one address, whatever keys it uses.
pub const CHAT_ADDRESS_IN_FLIGHT_BYTES: usize = 4 << 20;
/// The same for all strangers together (see [`CHAT_STRANGERS_RATE_LINES`]), so their flood keeps
/// the rest of [`CHAT_IN_FLIGHT_BYTES`] for peers with standing; strangers from one address
/// may use 1/[`NEWCOMER_SHARE`] of that address's share.
pub const CHAT_STRANGERS_IN_FLIGHT_BYTES: usize = 4 << 20;
/// What a line in flight costs besides its text (its id, record and queue slot).
pub const CHAT_LINE_COST: usize = 256;
/// Blocking calls (the database, off the async workers) running at once in the process; more
/// wait their turn as tasks. They all take the database's one lock, so more at once would only
/// park threads on it (each with its stack and allocator cache: a flood over a hundred
/// connections held a hundred threads).
pub const BLOCKING_CALLS: usize = 2;
/// The window both chat rates refill over.
pub const CHAT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Bytes of text the `#all` room keeps from all senders together: past it the oldest received
/// room lines are deleted (trimmed to 7/8 of this, so not on every line), strangers' first.
/// Ours are never trimmed.
pub const CHAT_ROOM_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of text the room keeps from one sender: past it that sender's oldest room lines go
/// first, so one flooder pushes out its own lines before anyone else's.
pub const CHAT_ROOM_BYTES_PER_PEER: u64 = 2 * 1024 * 1024;
/// Bytes of room text all strangers together keep (see [`CHAT_STRANGER_BYTES`]): past it their
/// oldest room lines go, and the room's own budget trims strangers' lines before anyone
/// else's. A line from a peer with standing is never trimmed to make room for a stranger's.
pub const CHAT_STRANGERS_ROOM_BYTES: u64 = 4 * 1024 * 1024;
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

// == Verified chunks and relays ==
//
// A file travels in chunks each checked on arrival against a hash list that is itself checked
// against the file's BLAKE3 root from the offer (`node/transfer/chunks.rs`). A chunk that fails
// ends the connection it came on, at that chunk; what was verified before it is kept.

/// Chunks are `2^MIN_CHUNK_LOG` bytes (1 MiB) unless a file would then have more than
/// [`TARGET_CHUNKS`]; then they double, up to `2^MAX_CHUNK_LOG` (16 MiB). A receiver holds one
/// chunk of the file being received in memory until it is verified.
pub const MIN_CHUNK_LOG: u32 = 20;
pub const MAX_CHUNK_LOG: u32 = 24;
/// Chunks per file before chunks grow: bounds a file's hash list to 2 MiB (32 bytes a chunk).
pub const TARGET_CHUNKS: u64 = 65_536;
/// Segment buffers (1 MiB each) a transfer keeps for reuse once they were written to disk or
/// sent; more are freed at once. With the short pipes between the socket and the disk (or the
/// reading thread, or a relay's copy) this bounds the file data one transfer holds in memory,
/// whatever the file's size: without it, a relay kept every segment it forwarded until the
/// transfer ended (a 64 MiB file cost 64 MiB).
pub const SPARE_SEGMENTS: usize = 8;
/// Largest file in an offer (1 TiB, where the hash list reaches 2 MiB): a bigger one is refused
/// with the offer ("a file over 1 TiB").
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Hashes in one `Hashes` frame (512 KiB, under the frame limit); a longer list is split.
pub const HASHES_PER_FRAME: usize = 16_384;
/// Recipients of one relayed send: the chain an offer carries. More is a protocol error.
pub const MAX_RELAY_HOPS: usize = 255;
/// How often a relay reports the progress of the peers behind it upstream (their progress in
/// the sender's view is this stale at most).
pub const RELAY_REPORT_EVERY: Duration = Duration::from_millis(500);
/// Times the sender starts the chain again for recipients that ended without every file (their
/// relay died, stalled or corrupted data): each time they resume from what they verified.
pub const RELAY_ROUNDS: usize = 3;
/// How long an offer that re-attaches a peer waits for that peer's earlier receive of the same
/// transfer to end (it is told to stop at once; this bounds a stuck disk).
pub const REATTACH_WAIT: Duration = Duration::from_secs(30);
/// How long the recipient of an offer a relay passes on waits for the sender's vouch for it (it
/// is sent over the control connection as the send starts, so normally it is already there).
/// Without it the offer is refused: "cannot confirm this offer with <sender>".
pub const VOUCH_WAIT: Duration = Duration::from_secs(10);
/// How long the sender of a relayed send waits, once a relay reported on a recipient, for that
/// recipient's own verdict over its control connection (it sends it as its receive ends, so an
/// honest chain needs a moment); without it, the relay's words are a claim and the recipient is
/// served directly.
pub const VERDICT_WAIT: Duration = Duration::from_secs(10);
/// Vouches a node keeps (the newest; each is an id and a hash).
pub const VOUCHES_KEPT: usize = 256;

// == Names and keys ==

/// An id prefix at least this long (the short id shown in every list) is looked up among ids
/// only and wins over any nick: a peer can't take another's id by choosing a nick, and taking a
/// nick by grinding a key whose id starts with it costs 2^40 keys. A shorter prefix still
/// works, but when it also matches a nick the PEER is refused as ambiguous.
pub const MIN_ID_PREFIX: usize = 8;

/// Id prefixes shorter than this are not looked up at all (too many peers would share them).
pub const MIN_SHORT_ID_PREFIX: usize = 4;

// == The locker: deposits held for their owners ==
//
// A holder takes a deposit without asking a person, so what it may cost is bounded here: per
// owner, in all, and never past the free-space margin transfers keep anyway (`space.rs`). An
// offer over a budget is refused before anything moves, with the numbers
// ("bob holds at most 2 GiB for you; 1.8 GiB used").

/// What one owner's deposits may take on a holder, unless its config says otherwise.
pub const DEPOSIT_PER_OWNER: u64 = 2 << 30;
/// What every owner's deposits may take on a holder in all, unless its config says otherwise.
pub const DEPOSIT_TOTAL: u64 = 20 << 30;
/// A held copy its owner did not renew for this long (its owner's node lists its deposits at
/// a holder now and then, which renews them) is deleted.
pub const DEPOSIT_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Deposits one owner may keep on one holder: a listing is bounded by it.
pub const MAX_HELD_PER_OWNER: usize = 1000;
/// Deposits in one `HeldListing` frame (each is a name of at most 255 bytes and a few numbers).
pub const HELD_FRAME_ENTRIES: usize = 200;
/// Replicas a deposit may ask for.
pub const MAX_REPLICAS: u32 = 16;
/// How long a holder that went away may stay away before the owner's node copies its deposits
/// to another holder (config `deposit_repair_after`, env `LANYARD_DEPOSIT_REPAIR_AFTER`).
pub const DEPOSIT_REPAIR_AFTER: Duration = Duration::from_secs(3600);
/// A holder re-reads one held deposit whole at most this often (a scrub, paced to cost little:
/// one deposit at a time), the one verified longest ago, once it was last verified over
/// [`SCRUB_AGE`] ago. A copy that no longer hashes to what was deposited is deleted, and its
/// owner's node replaces it.
pub const SCRUB_EVERY: Duration = Duration::from_secs(600);
pub const SCRUB_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often an owner's running node checks its deposits at most (and at least: half the
/// repair delay, within these bounds). A node with no deposits only looks at its database.
pub const REPAIR_CHECK_MIN: Duration = Duration::from_secs(1);
pub const REPAIR_CHECK_MAX: Duration = Duration::from_secs(60);
/// An exported identity is a few hundred bytes: a file bigger than this is not one (read no
/// further).
pub const MAX_IDENTITY_EXPORT: usize = 64 << 10;

// == LocalSend ==
//
// A LocalSend device is a stranger on the LAN speaking HTTPS and JSON: every body is read up to
// a bound before it is parsed, and its offers go through the same manifest budget, offer caps,
// name checks and free-space promise as a lanyard peer's.
/// Largest JSON body of a LocalSend request (register, prepare-upload); past it: 413 and the
/// body is not read on. The official app reads them whole with no bound.
pub const MAX_LOCALSEND_JSON: usize = 1 << 20;
/// Files in one LocalSend offer; more: 400.
pub const MAX_LOCALSEND_FILES: usize = 10_000;
/// Longest text message (the `preview` of a text offer) shown as a chat line.
pub const MAX_LOCALSEND_TEXT: usize = MAX_CHAT_TEXT;
/// Wrong PINs one IP address may give before it gets 429 until it gives the right one; the
/// addresses remembered (the oldest forgotten first), so a flood of addresses costs nothing more.
pub const LOCALSEND_PIN_TRIES: u32 = 3;
pub const LOCALSEND_PIN_ADDRESSES: usize = 200;
/// LocalSend devices remembered from announcements and registers; the least recently heard
/// goes first.
pub const MAX_LOCALSEND_DEVICES: usize = 256;
/// Announcements answered (a register POST each) per second, in all: a flood of spoofed
/// datagrams makes us dial at most this often.
pub const LOCALSEND_ANSWERS_PER_SEC: u32 = 20;
/// Longest a LocalSend request may take to send its headers; an idle keep-alive connection
/// is closed after it too.
pub const LOCALSEND_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// LocalSend connections served at once; more wait in the kernel's backlog.
pub const MAX_LOCALSEND_CONNECTIONS: usize = 64;
