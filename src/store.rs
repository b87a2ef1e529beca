//! The database in the data dir (SQLite): known peers and settings here; chat history and the
//! outbox in the chat module of the node; transfer records later. WAL mode with synchronous=FULL:
//! a commit survives the process being killed and the power being cut.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use crate::identity::PeerId;

/// Schema steps, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE peers (
        id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL,
        nick TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        last_addr TEXT,
        listen_addr TEXT,
        last_seen INTEGER,
        trusted INTEGER NOT NULL DEFAULT 0
    );",
    // Chat (src/node/chat): every message sent or received, and one delivery row per recipient
    // of an outgoing message. Incoming ids are unique per sender only: a peer can't suppress
    // another's message by reusing its id.
    "CREATE TABLE messages (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        conversation TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_nick TEXT NOT NULL,
        outgoing INTEGER NOT NULL,
        room INTEGER NOT NULL,
        sent_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (sender, id)
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, n);
    CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message INTEGER NOT NULL REFERENCES messages (n),
        peer TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'delivered')),
        conn INTEGER,
        delivered_ms INTEGER,
        UNIQUE (message, peer)
    );
    CREATE INDEX deliveries_by_peer ON deliveries (peer, state, seq);",
    // Transfers (meant as the third step; see the transfer branch's notes on renumbering).
    "CREATE TABLE transfer_groups (
        key TEXT PRIMARY KEY,
        dir TEXT NOT NULL,
        updated INTEGER NOT NULL
    );
    CREATE TABLE transfer_files (
        key TEXT PRIMARY KEY,
        group_key TEXT NOT NULL,
        path TEXT NOT NULL
    );
    CREATE INDEX transfer_files_group ON transfer_files (group_key);",
    // Chat read marks (the last message `n` read in each conversation) and message look-up by
    // id for paging history.
    "CREATE TABLE read_marks (
        conversation TEXT PRIMARY KEY,
        n INTEGER NOT NULL
    );
    CREATE INDEX messages_by_id ON messages (id);",
    // Small values the node keeps between runs (the nick): see `Store::setting`.
    "CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // The key that answered first at each address given as HOST:PORT (`--peer`, `+`, a PEER):
    // see `Store::check_address_pin`.
    "CREATE TABLE address_pins (
        target TEXT PRIMARY KEY,
        peer TEXT NOT NULL,
        public_key BLOB NOT NULL
    );
    CREATE INDEX address_pins_by_peer ON address_pins (peer);",
    // Growth budgets (what a peer may cost in rows; see `limits`). Peers: when a key was first seen and how many control
    // connections it made, so a key seen once expires sooner (rows from before count as seen
    // twice: they are not throwaways). Deliveries gain a refused state and its reason (SQLite
    // can't alter a CHECK, so the table is copied). chat_usage: bytes and lines stored per
    // conversation and sender, kept by triggers, so a budget check is one key look-up.
    "ALTER TABLE peers ADD COLUMN first_seen INTEGER;
    ALTER TABLE peers ADD COLUMN connections INTEGER NOT NULL DEFAULT 2;
    CREATE TABLE deliveries_v2 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message INTEGER NOT NULL REFERENCES messages (n),
        peer TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'delivered', 'refused')),
        conn INTEGER,
        delivered_ms INTEGER,
        reason TEXT,
        UNIQUE (message, peer)
    );
    INSERT INTO deliveries_v2 (seq, message, peer, state, conn, delivered_ms)
        SELECT seq, message, peer, state, conn, delivered_ms FROM deliveries;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v2 RENAME TO deliveries;
    CREATE INDEX deliveries_by_peer ON deliveries (peer, state, seq);
    CREATE TABLE chat_usage (
        conversation TEXT NOT NULL,
        sender TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        lines INTEGER NOT NULL,
        PRIMARY KEY (conversation, sender)
    ) WITHOUT ROWID;
    INSERT INTO chat_usage SELECT conversation, sender, SUM(length(CAST(text AS BLOB))), COUNT(*)
        FROM messages GROUP BY conversation, sender;
    CREATE TRIGGER chat_usage_insert AFTER INSERT ON messages BEGIN
        INSERT OR IGNORE INTO chat_usage (conversation, sender, bytes, lines) VALUES (new.conversation, new.sender, 0, 0);
        UPDATE chat_usage SET bytes = bytes + length(CAST(new.text AS BLOB)), lines = lines + 1
            WHERE conversation = new.conversation AND sender = new.sender;
    END;
    CREATE TRIGGER chat_usage_delete AFTER DELETE ON messages BEGIN
        UPDATE chat_usage SET bytes = bytes - length(CAST(old.text AS BLOB)), lines = lines - 1
            WHERE conversation = old.conversation AND sender = old.sender;
    END;",
    // Placed files are no longer recorded one by one (a resume finds them under their names in
    // the folder recorded in transfer_groups, and verifies them)...
    "DROP TABLE transfer_files;",
    // ...except those placed under another name than their own (a free name, because theirs was
    // taken: by a file put there meanwhile, or on a file system that folds case).
    "CREATE TABLE transfer_renamed (
        key TEXT PRIMARY KEY,
        group_key TEXT NOT NULL,
        path TEXT NOT NULL
    );
    CREATE INDEX transfer_renamed_group ON transfer_renamed (group_key);",
    // Every transfer's last view, so that a restart lists them and resumes the paused ones
    // (src/node/transfer/records.rs); `seq` orders them by their last change.
    "CREATE TABLE transfer_records (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        sources TEXT,
        partials TEXT,
        view TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX transfer_records_seq ON transfer_records (seq);",
    // The locker (src/node/locker/db.rs): what this node holds for owners (`held`), and what
    // it deposited itself and where (`deposits`, `deposit_holders`).
    "CREATE TABLE held (
        owner TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        files INTEGER NOT NULL,
        digest BLOB NOT NULL,
        stored_ms INTEGER NOT NULL,
        renewed_ms INTEGER NOT NULL,
        verified_ms INTEGER NOT NULL,
        PRIMARY KEY (owner, id)
    );
    CREATE TABLE deposits (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        files INTEGER NOT NULL,
        digest BLOB NOT NULL,
        replicas INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE deposit_holders (
        deposit TEXT NOT NULL REFERENCES deposits (id) ON DELETE CASCADE,
        peer TEXT NOT NULL,
        verified INTEGER NOT NULL,
        verified_ms INTEGER NOT NULL,
        PRIMARY KEY (deposit, peer)
    );",
    // A holder keeps how many copies a deposit's owner wants, for an owner's record rebuilt
    // from holders (src/node/locker/db.rs).
    "ALTER TABLE held ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0;",
];

/// The step of the growth budgets, which the migration test starts from.
#[cfg(test)]
const GROWTH_STEP: usize = 6;

/// The database's file name in the data dir.
pub const DB_FILE: &str = "lanyard.sqlite3";

pub struct Store {
    conn: Mutex<Connection>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPeer {
    pub id: PeerId,
    pub public_key: Vec<u8>,
    pub nick: String,
    pub host: String,
    pub listen_addr: Option<String>,
    pub last_seen: Option<u64>,
    pub trusted: bool,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        // Owner-only from the start: SQLite gives its journal files the database file's mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot open database {}", path.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Switching a new database to WAL can report "locked" at once, without waiting, while
        // another process opens it too: try again for as long as the busy timeout.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Err(e) = conn.pragma_update(None, "journal_mode", "WAL") {
            let busy = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            if !busy || std::time::Instant::now() >= deadline {
                return Err(e.into());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // FULL: a commit is on the disk once it returns (the WAL is fsynced at every commit), so
        // a line we acknowledged survives a power cut, not only a killed process. Chat commits
        // one transaction per burst of lines, so this costs one fsync per burst, not per line.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Store { conn: Mutex::new(conn) };
        store.migrate()?;
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store> {
        let store = Store {
            conn: Mutex::new(Connection::open_in_memory()?),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Apply the steps not yet applied, one write transaction each, reading the version inside
    /// it: two processes opening one data dir at once (`serve` starting while `lanyard id`
    /// runs) then take turns, and neither applies a step the other already did.
    fn migrate(&self) -> Result<()> {
        let conn = self.lock();
        loop {
            conn.execute_batch("BEGIN IMMEDIATE").context("database migration")?;
            let applied = (|| -> Result<bool> {
                let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                if done > MIGRATIONS.len() {
                    anyhow::bail!("the database was written by a newer lanyard (schema {done}); update lanyard");
                }
                let Some(step) = MIGRATIONS.get(done) else {
                    return Ok(false);
                };
                conn.execute_batch(&format!("{step} PRAGMA user_version = {};", done + 1))
                    .context("database migration")?;
                Ok(true)
            })();
            match applied {
                Ok(more) => {
                    conn.execute_batch("COMMIT").context("database migration")?;
                    if !more {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
    }

    /// The connection, for modules that keep their own tables here. A poisoned lock only means
    /// another thread panicked mid-call; SQLite itself stays consistent, so carry on.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pinned key of a peer, if it was seen before.
    pub fn pinned_key(&self, id: &PeerId) -> Result<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .query_row("SELECT public_key FROM peers WHERE id = ?1", [id.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// Record a control connection with the peer (one more in its count; the first is its
    /// first sighting).
    pub fn upsert_peer(&self, p: &StoredPeer, last_addr: &str) -> Result<()> {
        self.lock().execute(
            "INSERT INTO peers (id, public_key, nick, host, last_addr, listen_addr, last_seen, first_seen, connections)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)
             ON CONFLICT(id) DO UPDATE SET nick = excluded.nick, host = excluded.host, last_addr = excluded.last_addr,
                listen_addr = COALESCE(excluded.listen_addr, peers.listen_addr), last_seen = excluded.last_seen,
                connections = peers.connections + 1",
            params![
                p.id.as_str(),
                p.public_key,
                p.nick,
                p.host,
                last_addr,
                p.listen_addr,
                p.last_seen.map(|s| s as i64)
            ],
        )?;
        Ok(())
    }

    /// False when no such peer is stored (it never completed a handshake with us).
    pub fn set_trusted(&self, id: &PeerId, trusted: bool) -> Result<bool> {
        let n = self
            .lock()
            .execute("UPDATE peers SET trusted = ?2 WHERE id = ?1", params![id.as_str(), trusted])?;
        Ok(n > 0)
    }

    /// A connection with the peer ended at `when` (Unix seconds).
    pub fn seen(&self, id: &PeerId, when: u64) -> Result<()> {
        self.lock()
            .execute("UPDATE peers SET last_seen = ?2 WHERE id = ?1", params![id.as_str(), when as i64])?;
        Ok(())
    }

    /// Drop a peer's record and so its pinned key, and the addresses pinned to it; its chat
    /// history stays. False if none of these was stored.
    pub fn forget_peer(&self, id: &PeerId) -> Result<bool> {
        let conn = self.lock();
        let pins = conn.execute("DELETE FROM address_pins WHERE peer = ?1", [id.as_str()])?;
        Ok(conn.execute("DELETE FROM peers WHERE id = ?1", [id.as_str()])? + pins > 0)
    }

    /// The peer pinned to an address given as HOST:PORT, if any.
    pub fn address_pin(&self, target: &str) -> Result<Option<(PeerId, Vec<u8>)>> {
        let row: Option<(String, Vec<u8>)> = self
            .lock()
            .query_row("SELECT peer, public_key FROM address_pins WHERE target = ?1", [target], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(row.and_then(|(id, key)| Some((PeerId::parse(&id)?, key))))
    }

    /// The key that answered at `target`: pinned there on first use (true); after that, false
    /// when it is the pinned one, and the pinned peer when it is not.
    pub fn check_address_pin(&self, target: &str, id: &PeerId, key: &[u8]) -> Result<Result<bool, (PeerId, Vec<u8>)>> {
        let conn = self.lock();
        let pinned: Option<(String, Vec<u8>)> = conn
            .query_row("SELECT peer, public_key FROM address_pins WHERE target = ?1", [target], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match pinned {
            Some((_, old)) if old == key => Ok(Ok(false)),
            Some((old_id, old)) => match PeerId::parse(&old_id) {
                Some(old_id) => Ok(Err((old_id, old))),
                // Not written by us: as good as no pin.
                None => {
                    conn.execute("DELETE FROM address_pins WHERE target = ?1", [target])?;
                    Self::pin(&conn, target, id, key).map(Ok)
                }
            },
            None => Self::pin(&conn, target, id, key).map(Ok),
        }
    }

    fn pin(conn: &Connection, target: &str, id: &PeerId, key: &[u8]) -> Result<bool> {
        conn.execute(
            "INSERT INTO address_pins (target, peer, public_key) VALUES (?1, ?2, ?3)",
            params![target, id.as_str(), key],
        )?;
        Ok(true)
    }

    /// Drop the peers nobody would miss: untrusted, without a direct conversation or a pinned
    /// address, and not seen since `seen_before` — or, for a key that made one connection only, since `once_before`
    /// (Unix seconds). `keep` (those online now) stay whatever their age. Returns who went.
    pub fn prune_peers(&self, seen_before: u64, once_before: u64, keep: &dyn Fn(&PeerId) -> bool) -> Result<Vec<PeerId>> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut gone = Vec::new();
        {
            let mut select = tx.prepare(
                "SELECT id FROM peers WHERE trusted = 0 AND (last_seen < ?1 OR (connections <= 1 AND last_seen < ?2))
                    AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.conversation = peers.id)
                    AND NOT EXISTS (SELECT 1 FROM address_pins WHERE address_pins.peer = peers.id)",
            )?;
            let mut delete = tx.prepare("DELETE FROM peers WHERE id = ?1")?;
            let ids = select.query_map([seen_before as i64, once_before as i64], |r| r.get::<_, String>(0))?;
            for id in ids {
                let id = id?;
                let parsed = PeerId::parse(&id);
                if parsed.as_ref().is_some_and(keep) {
                    continue;
                }
                delete.execute([&id])?;
                gone.extend(parsed);
            }
        }
        tx.commit()?;
        Ok(gone)
    }

    /// The stored peers that have a direct conversation with us.
    pub fn peers_with_history(&self) -> Result<Vec<PeerId>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id FROM peers WHERE EXISTS (SELECT 1 FROM messages WHERE messages.conversation = peers.id)")?;
        let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in ids {
            out.extend(PeerId::parse(&id?));
        }
        Ok(out)
    }

    /// Peers with standing besides trust: we (`me`) wrote in their direct conversation, or their
    /// key was first seen before `seen_before` (Unix seconds).
    pub fn peers_with_standing(&self, me: &PeerId, seen_before: u64) -> Result<Vec<PeerId>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id FROM peers WHERE first_seen < ?2
                OR EXISTS (SELECT 1 FROM chat_usage u WHERE u.conversation = peers.id AND u.sender = ?1 AND u.lines > 0)",
        )?;
        let ids = stmt.query_map(params![me.as_str(), seen_before as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in ids {
            out.extend(PeerId::parse(&id?));
        }
        Ok(out)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .lock()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.lock().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    pub fn peers(&self) -> Result<Vec<StoredPeer>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id, public_key, nick, host, listen_addr, last_seen, trusted FROM peers")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, public_key, nick, host, listen_addr, last_seen, trusted) = row?;
            // A row we can't parse was not written by us; skip it rather than fail the node.
            if let Some(id) = PeerId::parse(&id) {
                out.push(StoredPeer {
                    id,
                    public_key,
                    nick,
                    host,
                    listen_addr,
                    last_seen: last_seen.map(|s| s as u64),
                    trusted,
                });
            }
        }
        Ok(out)
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn processes_opening_one_new_database_at_once_each_get_it_whole() {
        // `serve` starting while another command opens the same data dir: every opener must see
        // the whole schema, and no step may run twice ("table already exists").
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DB_FILE);
            let openers: Vec<_> = (0..6)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Store::open(&path).map(|_| ()).map_err(|e| format!("{e:#}")))
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap();
            }
            let store = Store::open(&path).unwrap();
            let version: usize = store.lock().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(version, MIGRATIONS.len());
        }
    }

    #[test]
    fn peers_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let ident = Identity::generate().unwrap();
        let p = StoredPeer {
            id: ident.id().clone(),
            public_key: ident.public_key().to_vec(),
            nick: "ada".into(),
            host: "lab1".into(),
            listen_addr: Some("10.0.0.1:7717".into()),
            last_seen: Some(5),
            trusted: false,
        };
        {
            let s = Store::open(&path).unwrap();
            s.upsert_peer(&p, "10.0.0.1:5555").unwrap();
            s.set_trusted(&p.id, true).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let got = s.peers().unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].trusted);
        assert_eq!(s.pinned_key(&p.id).unwrap().unwrap(), p.public_key);
    }

    fn peer(nick: &str, last_seen: u64) -> StoredPeer {
        let ident = Identity::generate().unwrap();
        StoredPeer {
            id: ident.id().clone(),
            public_key: ident.public_key().to_vec(),
            nick: nick.into(),
            host: "h".into(),
            listen_addr: None,
            last_seen: Some(last_seen),
            trusted: false,
        }
    }

    #[test]
    fn only_forgettable_peers_are_pruned() {
        let s = Store::open_in_memory().unwrap();
        let [old, trusted, chatted, recent] = [peer("old", 10), peer("trusted", 10), peer("chatted", 10), peer("recent", 1000)];
        for p in [&old, &trusted, &chatted, &recent] {
            s.upsert_peer(p, "10.0.0.1:1").unwrap();
        }
        s.set_trusted(&trusted.id, true).unwrap();
        s.lock()
            .execute(
                "INSERT INTO messages (id, conversation, sender, sender_nick, outgoing, room, sent_ms, received_ms, text)
                 VALUES ('m', ?1, ?1, 'chatted', 0, 0, 0, 0, 'hi')",
                [chatted.id.as_str()],
            )
            .unwrap();
        assert_eq!(s.peers_with_history().unwrap(), vec![chatted.id.clone()]);
        assert_eq!(s.prune_peers(500, 0, &|_| false).unwrap(), vec![old.id.clone()]);
        let mut left: Vec<String> = s.peers().unwrap().into_iter().map(|p| p.nick).collect();
        left.sort();
        assert_eq!(left, ["chatted", "recent", "trusted"]);
        assert!(s.pinned_key(&old.id).unwrap().is_none());
    }

    #[test]
    fn forget_and_trust_report_whether_the_peer_was_stored() {
        let s = Store::open_in_memory().unwrap();
        let p = peer("ada", 5);
        assert!(!s.set_trusted(&p.id, true).unwrap());
        assert!(!s.forget_peer(&p.id).unwrap());
        s.upsert_peer(&p, "10.0.0.1:1").unwrap();
        assert!(s.set_trusted(&p.id, true).unwrap());
        s.seen(&p.id, 99).unwrap();
        assert_eq!(s.peers().unwrap()[0].last_seen, Some(99));
        assert!(s.forget_peer(&p.id).unwrap());
        assert!(s.peers().unwrap().is_empty());
    }

    #[test]
    fn the_growth_migration_keeps_deliveries_and_counts_usage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            // Everything before the growth step.
            assert!(MIGRATIONS[GROWTH_STEP].contains("chat_usage"));
            for step in &MIGRATIONS[..GROWTH_STEP] {
                c.execute_batch(step).unwrap();
            }
            c.execute_batch(&format!("PRAGMA user_version = {GROWTH_STEP};")).unwrap();
            c.execute_batch(
                "
                 INSERT INTO peers (id, public_key, nick) VALUES ('p', x'00', 'old');
                 INSERT INTO messages (id, conversation, sender, sender_nick, outgoing, room, sent_ms, received_ms, text)
                    VALUES ('m', 'p', 'me', 'me', 1, 0, 0, 0, 'héllo');
                 INSERT INTO deliveries (message, peer, state) VALUES (1, 'p', 'sent');",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let c = s.lock();
        let state: String = c
            .query_row("SELECT state FROM deliveries WHERE peer = 'p'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(state, "sent");
        c.execute("UPDATE deliveries SET state = 'refused', reason = 'full' WHERE peer = 'p'", [])
            .unwrap();
        let usage: (i64, i64) = c
            .query_row(
                "SELECT bytes, lines FROM chat_usage WHERE conversation = 'p' AND sender = 'me'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(usage, (6, 1), "bytes, not characters");
        let (first, n): (Option<i64>, i64) = c
            .query_row("SELECT first_seen, connections FROM peers WHERE id = 'p'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((first, n), (None, 2), "a peer from before counts as seen twice");
        c.execute("DELETE FROM messages", []).unwrap_err();
        c.execute("DELETE FROM deliveries", []).unwrap();
        c.execute("DELETE FROM messages", []).unwrap();
        let bytes: i64 = c.query_row("SELECT bytes FROM chat_usage", [], |r| r.get(0)).unwrap();
        assert_eq!(bytes, 0, "the triggers follow deletes");
    }

    #[test]
    fn keys_seen_once_go_sooner_and_online_ones_stay() {
        let s = Store::open_in_memory().unwrap();
        let [once, twice, online, pinned] = [peer("once", 0), peer("twice", 0), peer("online", 0), peer("pinned", 0)];
        for p in [&once, &twice, &twice, &online, &pinned] {
            s.upsert_peer(p, "10.0.0.1:1").unwrap();
        }
        for p in [&once, &twice, &online, &pinned] {
            s.seen(&p.id, 100).unwrap();
        }
        s.check_address_pin("10.0.0.9:7717", &pinned.id, &pinned.public_key)
            .unwrap()
            .unwrap();
        // Nobody is a day old; all four are over the one-time age.
        assert_eq!(s.prune_peers(50, 200, &|id| id == &online.id).unwrap(), vec![once.id.clone()]);
        assert_eq!(s.peers().unwrap().len(), 3);
    }

    #[test]
    fn an_address_keeps_its_first_key_until_its_peer_is_forgotten() {
        let s = Store::open_in_memory().unwrap();
        let (first, second) = (peer("ada", 1), peer("mallory", 1));
        let at = "10.0.0.7:7717";
        assert_eq!(s.address_pin(at).unwrap(), None);
        assert_eq!(s.check_address_pin(at, &first.id, &first.public_key).unwrap(), Ok(true));
        assert_eq!(s.check_address_pin(at, &first.id, &first.public_key).unwrap(), Ok(false));
        assert_eq!(
            s.check_address_pin(at, &second.id, &second.public_key).unwrap(),
            Err((first.id.clone(), first.public_key.clone()))
        );
        assert_eq!(
            s.check_address_pin("10.0.0.8:7717", &second.id, &second.public_key).unwrap(),
            Ok(true)
        );
        assert!(s.forget_peer(&first.id).unwrap(), "a pin alone is something to forget");
        assert_eq!(s.address_pin(at).unwrap(), None);
        assert_eq!(s.check_address_pin(at, &second.id, &second.public_key).unwrap(), Ok(true));
        assert_eq!(s.address_pin(at).unwrap(), Some((second.id.clone(), second.public_key.clone())));
    }

    #[test]
    fn settings_round_trip() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.setting("nick").unwrap(), None);
        s.set_setting("nick", "ada").unwrap();
        s.set_setting("nick", "bob").unwrap();
        assert_eq!(s.setting("nick").unwrap().as_deref(), Some("bob"));
    }
}
