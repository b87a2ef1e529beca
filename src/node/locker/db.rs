//! The locker's tables (created in `store.rs`'s migrations): `held` (what this node holds for
//! owners) and `deposits` / `deposit_holders` (what this node deposited, and where).

use rusqlite::{OptionalExtension, params};

use super::Usage;
use crate::identity::PeerId;
use crate::node::transfer::wire::Wanted;
use crate::store::Store;

/// One deposit held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub owner: PeerId,
    pub id: String,
    pub name: String,
    pub bytes: u64,
    pub files: u32,
    pub digest: [u8; 32],
    pub stored_ms: u64,
    pub renewed_ms: u64,
    pub verified_ms: u64,
    /// How many copies its owner last said it wants (0: not said yet).
    pub replicas: u32,
}

/// A count or a time, stored as SQLite's integer.
fn u64_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)? as u64)
}

/// A content hash (a row written by this module always has 32 bytes there).
fn digest_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<[u8; 32]> {
    let d: Vec<u8> = r.get(i)?;
    Ok(d.try_into().unwrap_or([0; 32]))
}

fn held_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Held> {
    let owner: String = r.get(0)?;
    Ok(Held {
        owner: PeerId::parse(&owner).unwrap_or_else(|| PeerId::from_public_key(&[])),
        id: r.get(1)?,
        name: r.get(2)?,
        bytes: u64_at(r, 3)?,
        files: u64_at(r, 4)? as u32,
        digest: digest_at(r, 5)?,
        stored_ms: u64_at(r, 6)?,
        renewed_ms: u64_at(r, 7)?,
        verified_ms: u64_at(r, 8)?,
        replicas: u64_at(r, 9)? as u32,
    })
}

const HELD_COLUMNS: &str = "owner, id, name, bytes, files, digest, stored_ms, renewed_ms, verified_ms, replicas";

/// What `owner`'s deposits use here, and all deposits.
pub fn usage(store: &Store, owner: &PeerId) -> rusqlite::Result<Usage> {
    let c = store.lock();
    let owner: i64 = c.query_row("SELECT COALESCE(SUM(bytes), 0) FROM held WHERE owner = ?1", [owner.as_str()], |r| {
        r.get(0)
    })?;
    let total: i64 = c.query_row("SELECT COALESCE(SUM(bytes), 0) FROM held", [], |r| r.get(0))?;
    Ok(Usage {
        owner: owner as u64,
        total: total as u64,
    })
}

/// Record a deposit held whole (a version held before under the same id is replaced).
pub fn put_held(store: &Store, h: &Held) -> rusqlite::Result<()> {
    store.lock().execute(
        &format!("INSERT OR REPLACE INTO held ({HELD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            h.owner.as_str(),
            h.id,
            h.name,
            h.bytes as i64,
            h.files as i64,
            h.digest.as_slice(),
            h.stored_ms as i64,
            h.renewed_ms as i64,
            h.verified_ms as i64,
            h.replicas as i64
        ],
    )?;
    Ok(())
}

/// Every deposit held here (`owner`: only that owner's), oldest first.
pub fn held(store: &Store, owner: Option<&PeerId>) -> rusqlite::Result<Vec<Held>> {
    let c = store.lock();
    let mut q = c.prepare(&format!(
        "SELECT {HELD_COLUMNS} FROM held WHERE ?1 IS NULL OR owner = ?1 ORDER BY stored_ms, id"
    ))?;
    let rows = q.query_map([owner.map(PeerId::as_str)], held_row)?;
    rows.collect()
}

/// The deposit of `owner` that `spec` names: its id, or its name (the newest version).
pub fn find_held(store: &Store, owner: &PeerId, spec: &str) -> rusqlite::Result<Option<Held>> {
    store
        .lock()
        .query_row(
            &format!("SELECT {HELD_COLUMNS} FROM held WHERE owner = ?1 AND (id = ?2 OR name = ?2) ORDER BY stored_ms DESC LIMIT 1"),
            params![owner.as_str(), spec],
            held_row,
        )
        .optional()
}

/// Forget a held deposit (its files are deleted by the caller).
pub fn remove_held(store: &Store, owner: &PeerId, id: &str) -> rusqlite::Result<()> {
    store
        .lock()
        .execute("DELETE FROM held WHERE owner = ?1 AND id = ?2", params![owner.as_str(), id])?;
    Ok(())
}

/// Its owner asked about it: it lives another `DEPOSIT_EXPIRY`.
pub fn renew(store: &Store, owner: &PeerId, now_ms: u64) -> rusqlite::Result<()> {
    store.lock().execute(
        "UPDATE held SET renewed_ms = ?2 WHERE owner = ?1",
        params![owner.as_str(), now_ms as i64],
    )?;
    Ok(())
}

/// Its owner said how many copies it wants of these (only its own deposits change).
pub fn set_wanted(store: &Store, owner: &PeerId, wanted: &[Wanted]) -> rusqlite::Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let mut c = store.lock();
    let tx = c.transaction()?;
    for w in wanted {
        tx.execute(
            "UPDATE held SET replicas = ?3 WHERE owner = ?1 AND id = ?2",
            params![owner.as_str(), w.id, w.replicas as i64],
        )?;
    }
    tx.commit()
}

/// How many copies we want of each of our deposits `peer` holds (at most `max`).
pub fn wanted_on(store: &Store, peer: &PeerId, max: usize) -> rusqlite::Result<Vec<Wanted>> {
    let c = store.lock();
    let mut q = c.prepare(
        "SELECT d.id, d.replicas FROM deposits d JOIN deposit_holders h ON h.deposit = d.id
         WHERE h.peer = ?1 AND d.replicas > 0 ORDER BY d.id LIMIT ?2",
    )?;
    let rows = q.query_map(params![peer.as_str(), max as i64], |r| {
        Ok(Wanted {
            id: r.get(0)?,
            replicas: u64_at(r, 1)? as u32,
        })
    })?;
    rows.collect()
}

/// It was read back whole and matched.
pub fn verified(store: &Store, owner: &PeerId, id: &str, now_ms: u64) -> rusqlite::Result<()> {
    store.lock().execute(
        "UPDATE held SET verified_ms = ?3 WHERE owner = ?1 AND id = ?2",
        params![owner.as_str(), id, now_ms as i64],
    )?;
    Ok(())
}

/// One of this node's own deposits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub id: String,
    pub name: String,
    pub bytes: u64,
    pub files: u32,
    pub digest: [u8; 32],
    pub replicas: u32,
    pub created_ms: u64,
    /// (holder, verified, when it was last verified).
    pub holders: Vec<(PeerId, bool, u64)>,
}

pub fn put_deposit(store: &Store, d: &Deposit) -> rusqlite::Result<()> {
    let mut c = store.lock();
    let tx = c.transaction()?;
    tx.execute(
        "INSERT INTO deposits (id, name, bytes, files, digest, replicas, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET replicas = excluded.replicas",
        params![
            d.id,
            d.name,
            d.bytes as i64,
            d.files as i64,
            d.digest.as_slice(),
            d.replicas as i64,
            d.created_ms as i64
        ],
    )?;
    for (peer, ok, when) in &d.holders {
        tx.execute(
            "INSERT INTO deposit_holders (deposit, peer, verified, verified_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (deposit, peer) DO UPDATE SET verified = excluded.verified,
                 verified_ms = MAX(verified_ms, excluded.verified_ms)",
            params![d.id, peer.as_str(), *ok as i64, *when as i64],
        )?;
    }
    tx.commit()
}

pub fn remove_holder(store: &Store, deposit: &str, peer: &PeerId) -> rusqlite::Result<()> {
    store.lock().execute(
        "DELETE FROM deposit_holders WHERE deposit = ?1 AND peer = ?2",
        params![deposit, peer.as_str()],
    )?;
    Ok(())
}

pub fn remove_deposit(store: &Store, id: &str) -> rusqlite::Result<()> {
    store.lock().execute("DELETE FROM deposits WHERE id = ?1", [id])?;
    Ok(())
}

/// Every deposit of this node, oldest first, with its holders.
pub fn deposits(store: &Store) -> rusqlite::Result<Vec<Deposit>> {
    let c = store.lock();
    let mut q = c.prepare("SELECT id, name, bytes, files, digest, replicas, created_ms FROM deposits ORDER BY created_ms, id")?;
    let mut out: Vec<Deposit> = q
        .query_map([], |r| {
            Ok(Deposit {
                id: r.get(0)?,
                name: r.get(1)?,
                bytes: u64_at(r, 2)?,
                files: u64_at(r, 3)? as u32,
                digest: digest_at(r, 4)?,
                replicas: u64_at(r, 5)? as u32,
                created_ms: u64_at(r, 6)?,
                holders: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut h = c.prepare("SELECT peer, verified, verified_ms FROM deposit_holders WHERE deposit = ?1 ORDER BY peer")?;
    for d in &mut out {
        d.holders = h
            .query_map([&d.id], |r| Ok((r.get::<_, String>(0)?, u64_at(r, 1)? != 0, u64_at(r, 2)?)))?
            .filter_map(|r| r.ok())
            .filter_map(|(p, ok, when)| PeerId::parse(&p).map(|p| (p, ok, when)))
            .collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_public_key(&[n; 32])
    }

    #[test]
    fn usage_is_per_owner_and_in_all() {
        let s = Store::open_in_memory().unwrap();
        let h = |owner: u8, id: &str, bytes: u64| Held {
            owner: peer(owner),
            id: id.into(),
            name: "n".into(),
            bytes,
            files: 1,
            digest: [0; 32],
            stored_ms: 1,
            renewed_ms: 1,
            verified_ms: 1,
            replicas: 0,
        };
        put_held(&s, &h(1, "a", 10)).unwrap();
        put_held(&s, &h(1, "b", 5)).unwrap();
        put_held(&s, &h(2, "c", 100)).unwrap();
        assert_eq!(usage(&s, &peer(1)).unwrap(), Usage { owner: 15, total: 115 });
        assert_eq!(usage(&s, &peer(3)).unwrap(), Usage { owner: 0, total: 115 });
        // The owner check: another key finds nothing, by id or by name.
        assert!(find_held(&s, &peer(2), "a").unwrap().is_none());
        assert!(find_held(&s, &peer(1), "a").unwrap().is_some());
        assert_eq!(held(&s, Some(&peer(1))).unwrap().len(), 2);
        remove_held(&s, &peer(1), "a").unwrap();
        assert_eq!(usage(&s, &peer(1)).unwrap().owner, 5);
    }

    #[test]
    fn a_deposit_keeps_its_holders() {
        let s = Store::open_in_memory().unwrap();
        let mut d = Deposit {
            id: "x".into(),
            name: "n".into(),
            bytes: 1,
            files: 1,
            digest: [1; 32],
            replicas: 2,
            created_ms: 5,
            holders: vec![(peer(1), true, 9), (peer(2), false, 0)],
        };
        put_deposit(&s, &d).unwrap();
        d.replicas = 3;
        d.holders = vec![(peer(2), true, 10)];
        put_deposit(&s, &d).unwrap();
        let got = deposits(&s).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].replicas, 3);
        assert_eq!(got[0].holders.iter().filter(|h| h.1).count(), 2);
        remove_deposit(&s, "x").unwrap();
        assert!(deposits(&s).unwrap().is_empty());
    }
}
