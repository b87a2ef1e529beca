//! Transfers kept in the database, so that a restart forgets none: each transfer's last view
//! (direction, peer, state, bytes done, why it ended), what an outgoing send was made of (the
//! paths given, to offer them again), and what a stopped receive keeps (its partial files, to
//! drop them if it is cancelled for good). The newest [`KEPT`] are listed after a restart; a
//! paused one is kept however old until it ends.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::error::Direction;
use super::progress::{TransferState, TransferView};
use crate::store::{Store, unix_now_ms};

/// Finished transfers kept for faces to review.
pub(super) const RECENT: usize = 200;

/// Finished transfers kept (and listed) across restarts.
pub(crate) const KEPT: usize = 200;
/// Partial file names a stopped receive records for a later cancel; beyond, they expire.
const PARTIALS_KEPT: usize = 10_000;

/// One stored transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub view: TransferView,
    /// An outgoing send of local paths: those paths (what is offered again on a resume).
    pub sources: Option<Vec<PathBuf>>,
    /// A stopped receive: where its partial files are.
    pub partials: Option<Partials>,
}

/// A stopped receive's partial files: names in one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Partials {
    pub dir: PathBuf,
    pub names: Vec<String>,
}

impl Partials {
    pub fn new(dir: PathBuf, mut names: Vec<String>) -> Partials {
        names.truncate(PARTIALS_KEPT);
        Partials { dir, names }
    }

    /// Remove them (a paused receive cancelled for good). Only plain names inside the folder.
    pub fn remove(&self) {
        for name in &self.names {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                continue;
            }
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        // The folder goes once empty, as after a running cancel.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Save a transfer's view; `sources` and `partials` only replace what is stored when given.
pub(crate) fn save(store: &Store, view: &TransferView, sources: Option<&[PathBuf]>, partials: Option<&Partials>) -> anyhow::Result<()> {
    let json = serde_json::to_string(view)?;
    let sources = sources.map(serde_json::to_string).transpose()?;
    let partials = partials.map(serde_json::to_string).transpose()?;
    let db = store.lock();
    db.execute(
        "INSERT INTO transfer_records (id, state, sources, partials, view, updated_ms, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM transfer_records))
         ON CONFLICT (id) DO UPDATE SET state = ?2, sources = COALESCE(?3, sources),
             partials = COALESCE(?4, partials), view = ?5, updated_ms = ?6, seq = excluded.seq",
        params![view.transfer, state_name(view.state), sources, partials, json, unix_now_ms() as i64],
    )?;
    // Beyond the newest KEPT, only paused ones stay (they still have to end).
    db.execute(
        "DELETE FROM transfer_records WHERE state != 'paused' AND id NOT IN
             (SELECT id FROM transfer_records ORDER BY seq DESC LIMIT ?1)",
        [KEPT as i64],
    )?;
    Ok(())
}

/// Receives other than `except` that left partial files this one goes on from (`names` in
/// `dir`): they no longer own them (a cancel of one must not drop the data another uses), and
/// their views are returned, to be ended.
pub(crate) fn taken_over(store: &Store, dir: &Path, names: &[String], except: &str) -> anyhow::Result<Vec<TransferView>> {
    let mut ended = Vec::new();
    for r in load(store)? {
        let Some(p) = &r.partials else { continue };
        let ours = r.view.direction == Direction::Receive
            && r.view.transfer != except
            && matches!(r.view.state, TransferState::Paused | TransferState::Failed)
            && p.dir == dir
            && p.names.iter().any(|n| names.contains(n));
        if ours {
            store
                .lock()
                .execute("UPDATE transfer_records SET partials = NULL WHERE id = ?1", [&r.view.transfer])?;
            ended.push(r.view);
        }
    }
    Ok(ended)
}

/// The stored transfers, oldest first: the newest [`KEPT`] and every paused one. A view that
/// no longer parses (written by another version) is skipped.
pub(crate) fn load(store: &Store) -> anyhow::Result<Vec<Record>> {
    let db = store.lock();
    let mut stmt = db.prepare(
        "SELECT view, sources, partials FROM transfer_records
         WHERE state = 'paused' OR id IN (SELECT id FROM transfer_records ORDER BY seq DESC LIMIT ?1)
         ORDER BY seq",
    )?;
    let rows = stmt.query_map([KEPT as i64], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (view, sources, partials) = row?;
        let Ok(view) = serde_json::from_str::<TransferView>(&view) else {
            continue;
        };
        out.push(Record {
            view,
            sources: sources.and_then(|s| serde_json::from_str(&s).ok()),
            partials: partials.and_then(|s| serde_json::from_str(&s).ok()),
        });
    }
    Ok(out)
}

/// One stored transfer.
pub(crate) fn get(store: &Store, id: &str) -> anyhow::Result<Option<Record>> {
    let db = store.lock();
    let row = db
        .query_row("SELECT view, sources, partials FROM transfer_records WHERE id = ?1", [id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    let Some((view, sources, partials)) = row else {
        return Ok(None);
    };
    Ok(Some(Record {
        view: serde_json::from_str(&view)?,
        sources: sources.and_then(|s| serde_json::from_str(&s).ok()),
        partials: partials.and_then(|s| serde_json::from_str(&s).ok()),
    }))
}

fn state_name(state: TransferState) -> &'static str {
    match state {
        TransferState::Connecting => "connecting",
        TransferState::Waiting => "waiting",
        TransferState::Running => "running",
        TransferState::Done => "done",
        TransferState::Failed => "failed",
        TransferState::Rejected => "rejected",
        TransferState::Cancelled => "cancelled",
        TransferState::Paused => "paused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PeerId;
    use crate::node::transfer::Direction;
    use crate::reason::Reason;

    fn view(id: &str, state: TransferState) -> TransferView {
        TransferView {
            transfer: id.into(),
            peer: PeerId::parse("aaaaaaaaaaaaaaaa").unwrap(),
            nick: "bob".into(),
            direction: Direction::Send,
            group: None,
            state,
            file: "big.bin".into(),
            file_bytes: 5,
            file_size: 10,
            files_done: 0,
            files: 1,
            bytes: 5,
            resumed: 0,
            total: 10,
            percent: 50,
            rate: 0,
            eta_secs: None,
            failed: 0,
            message: None,
            reason: (state == TransferState::Paused).then_some(Reason::Stopped),
            saved_to: None,
            name: "big.bin".into(),
            via: None,
            saved_as: None,
            failures: Vec::new(),
            started_ms: 1,
            ended_ms: None,
        }
    }

    #[test]
    fn a_record_keeps_its_sources_and_partials_across_updates() {
        let store = Store::open_in_memory().unwrap();
        let paths = vec![PathBuf::from("/home/ada/big.bin")];
        save(&store, &view("t1", TransferState::Running), Some(&paths), None).unwrap();
        let parts = Partials::new(PathBuf::from("/dl/.lanyard-partial"), vec!["k.part".into()]);
        save(&store, &view("t1", TransferState::Paused), None, Some(&parts)).unwrap();
        let r = get(&store, "t1").unwrap().unwrap();
        assert_eq!(r.view.state, TransferState::Paused);
        assert_eq!(r.view.reason, Some(Reason::Stopped));
        assert_eq!(r.sources, Some(paths));
        assert_eq!(r.partials, Some(parts));
        assert_eq!(load(&store).unwrap().len(), 1);
        assert!(get(&store, "nope").unwrap().is_none());
    }

    #[test]
    fn the_newest_finished_ones_are_kept_and_every_paused_one() {
        let store = Store::open_in_memory().unwrap();
        save(&store, &view("paused", TransferState::Paused), None, None).unwrap();
        for i in 0..KEPT + 20 {
            save(&store, &view(&format!("d{i:04}"), TransferState::Done), None, None).unwrap();
        }
        let all = load(&store).unwrap();
        assert_eq!(all.len(), KEPT + 1);
        assert!(all.iter().any(|r| r.view.transfer == "paused"));
        assert!(all.iter().all(|r| r.view.transfer != "d0000"), "the oldest finished went");
        assert!(all.iter().any(|r| r.view.transfer == format!("d{:04}", KEPT + 19)));
    }

    #[test]
    fn removing_partials_stays_inside_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".lanyard-partial");
        std::fs::create_dir(&partial).unwrap();
        std::fs::write(partial.join("k.part"), b"x").unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        Partials::new(partial.clone(), vec!["k.part".into(), "../keep".into(), "..".into()]).remove();
        assert!(!partial.exists());
        assert!(dir.path().join("keep").exists());
    }
}
