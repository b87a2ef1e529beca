//! Where received bytes live. Each file is written to a partial file in a hidden folder inside
//! the destination (same file system, so placing it is a link, not a copy) and appears under
//! its final name only once verified, under a name that did not exist before: nothing is ever
//! overwritten, nothing half-written ever sits under a final name.
//!
//! Resume: a partial file is named after a key of (sender, destination, path, size, source
//! mtime, and the rest of its folder), so offering the same thing again finds it. A folder
//! keeps the top-level name it was given on the first attempt (recorded in the store), and
//! files of it already placed then are verified again instead of sent again.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::manifest::Manifest;
use super::names::{create_dirs_safely, free_name};
use super::{lock, new_id};
use crate::identity::PeerId;
use crate::node::Shared;
use crate::store::unix_now;

pub(crate) const PARTIAL_DIR: &str = ".lanyard-partial";
/// Attempts at a free name before giving up (each loses a race to another writer).
const PLACE_ATTEMPTS: usize = 100;

struct Group {
    key: String,
    folder: bool,
    /// The folder's name in the destination (folders only).
    dir_name: String,
    /// An earlier attempt at this folder chose `dir_name`. Only then can files of it be
    /// partly or wholly here already: a new folder skips the look for every file.
    earlier: bool,
}

pub(crate) struct Slot {
    key: String,
    pub partial: PathBuf,
    /// Bytes already held (the whole file when `existing` is set).
    pub offset: u64,
    /// A file placed by an earlier attempt at this same folder, to be verified again.
    pub existing: Option<PathBuf>,
    group: usize,
    pub dir: bool,
    reserved: bool,
}

pub(crate) struct Plan {
    shared: Arc<Shared>,
    /// Where the names are: a slot holds none.
    manifest: Arc<Manifest>,
    dest: PathBuf,
    groups: Vec<Group>,
    pub slots: Vec<Slot>,
    /// Placed files of folders, not yet recorded: written in batches, one transaction each,
    /// because a commit per file would cost more than a small file's transfer. A crash loses
    /// at most the batches not yet written (this one, and any queued while the recorder
    /// commits the last), whose files a resume then sends again (under free names).
    unrecorded: Vec<Record>,
    /// Writes the batches on its own thread, so the disk thread goes on placing files
    /// meanwhile; batches that queue up while it commits go in one transaction.
    recorder: Option<Recorder>,
    /// The folder the last file went to (relative, full), already checked and created.
    last_dir: Option<(PathBuf, PathBuf)>,
}

/// Placed files recorded per transaction.
const RECORD_BATCH: usize = 256;

fn key_of(parts: &[&[u8]]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h
}

/// The destination folder and its partial folder, created if missing. The destination is the
/// user's choice and trusted; the partial folder must be a real folder, not a planted link.
fn partial_dir(dest: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dest)?;
    let dir = dest.join(PARTIAL_DIR);
    // Owner-only: other users of the machine have no business in half-received files.
    match std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.file_type().is_symlink() {
        return Err(io::Error::other(format!("{} is not a folder", dir.display())));
    }
    Ok(dir)
}

impl Plan {
    pub(crate) fn prepare(shared: &Arc<Shared>, sender: &PeerId, dest: &Path, manifest: &Arc<Manifest>) -> Result<Plan, String> {
        // The names, held only while the plan is made: afterwards they are read back from the
        // manifest's spool when a file is placed.
        let items = manifest.items().map_err(|e| format!("cannot read the offer back: {e}"))?;
        // The message goes to the peer too: it names no local path (the log does).
        let partials = partial_dir(dest).map_err(|e| {
            tracing::warn!("cannot use download folder {}: {e}", dest.display());
            format!("cannot use the download folder: {e}")
        })?;
        let dest_bytes = dest.to_string_lossy().into_owned();
        // Groups by top-level name, in order of appearance (an offer may have 100,000 of them:
        // a map keeps this linear).
        let mut tops: Vec<(String, Vec<usize>)> = Vec::new();
        let mut top_index: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let top = super::top_of(&item.path);
            match top_index.get(top) {
                Some(&t) => tops[t].1.push(i),
                None => {
                    top_index.insert(top, tops.len());
                    tops.push((top.to_string(), vec![i]));
                }
            }
        }
        let mut plan = Plan {
            shared: shared.clone(),
            manifest: manifest.clone(),
            dest: dest.to_path_buf(),
            groups: Vec::new(),
            slots: Vec::new(),
            unrecorded: Vec::new(),
            recorder: None,
            last_dir: None,
        };
        let mut group_of = vec![0usize; items.len()];
        for (top, members) in &tops {
            let mut h = key_of(&[
                b"lanyard-group-v1",
                sender.as_str().as_bytes(),
                dest_bytes.as_bytes(),
                top.as_bytes(),
            ]);
            for &i in members {
                let it = &items[i];
                h.update(it.path.as_bytes());
                h.update(&[0]);
                h.update(&it.size.to_le_bytes());
                h.update(&it.mtime.to_le_bytes());
                h.update(&[it.dir as u8]);
                group_of[i] = plan.groups.len();
            }
            let key = h.finalize().to_hex().to_string();
            let folder = members.iter().any(|&i| items[i].dir || items[i].path.contains('/'));
            let (dir_name, earlier) = if folder {
                plan.folder_dir(&key, top)?
            } else {
                (String::new(), false)
            };
            plan.groups.push(Group {
                key,
                folder,
                dir_name,
                earlier,
            });
        }
        for (i, item) in items.iter().enumerate() {
            let group = &plan.groups[group_of[i]];
            let mut key = key_of(&[group.key.as_bytes(), item.path.as_bytes()]);
            key.update(&item.size.to_le_bytes());
            key.update(&item.mtime.to_le_bytes());
            let mut key = key.finalize().to_hex().to_string();
            let mut reserved = false;
            let (mut offset, mut existing) = (0, None);
            if !item.dir {
                let mut in_use = lock(&shared.transfers.partials);
                if !in_use.insert(key.clone()) {
                    // The same file is arriving on another connection right now: no resume.
                    key = format!("{key}-{}", new_id());
                    in_use.insert(key.clone());
                }
                reserved = true;
            }
            let partial = partials.join(format!("{key}.part"));
            if !item.dir && (!group.folder || group.earlier) {
                if group.folder
                    && let Some(done) = plan.done_path(&key)
                    && fs::symlink_metadata(&done).is_ok_and(|m| m.is_file() && m.len() == item.size)
                {
                    offset = item.size;
                    existing = Some(done);
                } else if let Ok(meta) = fs::symlink_metadata(&partial)
                    && meta.is_file()
                    && meta.len() <= item.size
                {
                    offset = meta.len();
                }
            }
            plan.slots.push(Slot {
                key,
                partial,
                offset,
                existing,
                group: group_of[i],
                dir: item.dir,
                reserved,
            });
        }
        // Again, now that our partial files are reserved: a transfer that ended meanwhile may
        // have removed the folder as empty (see `Drop`), and none will from now on.
        partial_dir(dest).map_err(|e| format!("cannot use the download folder: {e}"))?;
        Ok(plan)
    }

    /// Create the partial folder again if it went away (another process sharing this download
    /// folder may remove it when its own transfers end and it looks empty).
    pub(crate) fn ensure_partial_dir(&self) -> io::Result<()> {
        partial_dir(&self.dest).map(drop)
    }

    /// The folder a top-level folder lands in: the one an earlier attempt chose, if it is
    /// still there (true), else a new one under a free name (false).
    fn folder_dir(&self, key: &str, top: &str) -> Result<(String, bool), String> {
        let db = |e: rusqlite::Error| format!("database: {e}");
        let known: Option<String> = self
            .shared
            .store
            .lock()
            .query_row("SELECT dir FROM transfer_groups WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if let Some(dir) = known
            && fs::symlink_metadata(self.dest.join(&dir)).is_ok_and(|m| m.is_dir() && !m.file_type().is_symlink())
        {
            return Ok((dir, true));
        }
        for _ in 0..PLACE_ATTEMPTS {
            let name = free_name(&self.dest, top, |_| false);
            match fs::create_dir(self.dest.join(&name)) {
                Ok(()) => {
                    self.shared
                        .store
                        .lock()
                        .execute(
                            "INSERT OR REPLACE INTO transfer_groups (key, dir, updated) VALUES (?1, ?2, ?3)",
                            params![key, name, unix_now() as i64],
                        )
                        .map_err(db)?;
                    return Ok((name, false));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create folder \"{}\": {e}", crate::text::printable(&name))),
            }
        }
        Err(format!("no free name for folder \"{}\"", crate::text::printable(top)))
    }

    fn done_path(&self, key: &str) -> Option<PathBuf> {
        let rel: Option<String> = self
            .shared
            .store
            .lock()
            .query_row("SELECT path FROM transfer_files WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ok()
            .flatten();
        rel.map(|r| self.dest.join(r))
    }

    /// Item `i`'s path as offered: what the sender knows it by. (Read back from the spool;
    /// empty if that fails, which `target` reports.)
    pub(crate) fn offered(&self, i: usize) -> String {
        self.manifest.names(&[i]).ok().and_then(|mut n| n.pop()).unwrap_or_default()
    }

    /// Item `i`'s path components (checked when the manifest was validated, so a split on '/'
    /// gives them).
    fn comps(&self, i: usize) -> io::Result<Vec<String>> {
        let name = self.manifest.names(&[i])?.pop().unwrap_or_default();
        Ok(name.split('/').map(str::to_string).collect())
    }

    /// The folder (relative to the destination) where item `i` lands, and its own name.
    fn target(&self, i: usize) -> io::Result<(PathBuf, String, usize)> {
        let comps = self.comps(i)?;
        let group = &self.groups[self.slots[i].group];
        let last = comps.last().cloned().unwrap_or_default();
        if !group.folder {
            return Ok((PathBuf::new(), last, comps.len()));
        }
        let mut dir = PathBuf::from(&group.dir_name);
        if comps.len() > 1 {
            dir.extend(&comps[1..comps.len() - 1]);
        }
        Ok((dir, last, comps.len()))
    }

    /// Recreate a folder item.
    pub(crate) fn make_dir(&self, i: usize) -> io::Result<PathBuf> {
        let (dir, last, depth) = self.target(i)?;
        let rel = if depth == 1 { dir } else { dir.join(last) };
        create_dirs_safely(&self.dest, &rel)
    }

    /// Put a verified file under a free final name; returns where it went.
    pub(crate) fn place(&mut self, i: usize) -> io::Result<PathBuf> {
        if let Some(existing) = self.slots[i].existing.clone() {
            return Ok(existing);
        }
        let (dir_rel, name, _) = self.target(i)?;
        // Files of one folder arrive together: check and create their folder once.
        let dir = match &self.last_dir {
            Some((rel, full)) if *rel == dir_rel => full.clone(),
            _ => {
                let full = create_dirs_safely(&self.dest, &dir_rel)?;
                self.last_dir = Some((dir_rel, full.clone()));
                full
            }
        };
        let partial = self.slots[i].partial.clone();
        let mut placed = None;
        for attempt in 0..PLACE_ATTEMPTS {
            // The name as sent first (usually free: the rename itself says if not).
            let candidate = match attempt {
                0 => dir.join(&name),
                _ => dir.join(free_name(&dir, &name, |_| false)),
            };
            // Both fail if the name exists: the no-overwrite step, atomic.
            match rename_noreplace(&partial, &candidate) {
                Ok(()) => {
                    placed = Some(candidate);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => {}
            }
            match fs::hard_link(&partial, &candidate) {
                Ok(()) => {
                    let _ = fs::remove_file(&partial);
                    placed = Some(candidate);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => {
                    // File systems without hard links: rename, under the node's lock so no other
                    // transfer of ours can take the name between the check and the rename.
                    let _guard = lock(&self.shared.transfers.placing);
                    if fs::symlink_metadata(&candidate).is_ok() {
                        continue;
                    }
                    fs::rename(&partial, &candidate)?;
                    placed = Some(candidate);
                    break;
                }
            }
        }
        let placed = placed.ok_or_else(|| io::Error::other(format!("no free name for \"{}\"", crate::text::printable(&name))))?;
        let group = &self.groups[self.slots[i].group];
        if group.folder
            && let Ok(rel) = placed.strip_prefix(&self.dest)
        {
            self.unrecorded
                .push((self.slots[i].key.clone(), group.key.clone(), rel.to_string_lossy().into_owned()));
            if self.unrecorded.len() >= RECORD_BATCH {
                self.record();
            }
        }
        self.slots[i].existing = Some(placed.clone());
        Ok(placed)
    }

    /// Hand the unrecorded batch to the recorder thread (started on first use).
    fn record(&mut self) {
        if self.unrecorded.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.unrecorded);
        if self.recorder.is_none() {
            self.recorder = Recorder::start(self.shared.clone());
        }
        let unsent = match &self.recorder {
            Some(recorder) => recorder.send(batch).err(),
            None => Some(batch),
        };
        if let Some(unsent) = unsent {
            // No thread (it could not start, or died): record here.
            write_records(&self.shared, &unsent);
        }
    }

    /// Every batch handed over is in the database (before anything that reads or deletes
    /// those records).
    fn settle(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.finish();
        }
    }

    /// Drop the bytes of a file that can never be completed as offered (hash mismatch, changed
    /// source).
    pub(crate) fn discard(&self, i: usize) {
        let _ = fs::remove_file(&self.slots[i].partial);
    }

    /// Bytes waiting in partial files for a resume: what an interrupted transfer keeps.
    pub(crate) fn partial_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| !s.dir && s.existing.is_none())
            .filter_map(|s| fs::symlink_metadata(&s.partial).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }

    /// After the last file: folders whose every item arrived need no resume record any more.
    pub(crate) fn finish(&mut self, ok: &[bool]) {
        self.record();
        self.settle();
        for (g, group) in self.groups.iter().enumerate() {
            let complete = self.slots.iter().zip(ok).filter(|(s, _)| s.group == g).all(|(_, ok)| *ok);
            if complete && group.folder {
                self.forget_group(&group.key);
            }
        }
    }

    /// Cancelled: remove every partial file and forget the folders' resume records.
    pub(crate) fn cancel(&mut self) {
        self.unrecorded.clear();
        self.settle();
        for slot in &self.slots {
            if !slot.dir && slot.existing.is_none() {
                let _ = fs::remove_file(&slot.partial);
            }
        }
        for group in &self.groups {
            self.forget_group(&group.key);
        }
    }

    fn forget_group(&self, key: &str) {
        let db = self.shared.store.lock();
        let _ = db.execute("DELETE FROM transfer_files WHERE group_key = ?1", [key]);
        let _ = db.execute("DELETE FROM transfer_groups WHERE key = ?1", [key]);
    }
}

type Record = (String, String, String);

/// Record placed files (key, group, path), one transaction.
fn write_records(shared: &Shared, records: &[Record]) {
    if records.is_empty() {
        return;
    }
    let mut db = shared.store.lock();
    let result = (|| -> rusqlite::Result<()> {
        let tx = db.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO transfer_files (key, group_key, path) VALUES (?1, ?2, ?3)")?;
            for (key, group, path) in records {
                stmt.execute(params![key, group, path])?;
            }
        }
        tx.commit()
    })();
    if let Err(e) = result {
        tracing::warn!("cannot record received files for resume: {e}");
    }
}

/// A thread that writes resume records as the disk thread hands them over.
struct Recorder {
    tx: std::sync::mpsc::Sender<Vec<Record>>,
    thread: std::thread::JoinHandle<()>,
}

impl Recorder {
    fn start(shared: Arc<Shared>) -> Option<Recorder> {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Record>>();
        let thread = std::thread::Builder::new()
            .name("lanyard-record".into())
            .spawn(move || {
                while let Ok(mut records) = rx.recv() {
                    // Whatever queued up meanwhile joins this transaction.
                    while let Ok(more) = rx.try_recv() {
                        records.extend(more);
                    }
                    write_records(&shared, &records);
                }
            })
            .map_err(|e| tracing::warn!("cannot start the resume recorder: {e}"))
            .ok()?;
        Some(Recorder { tx, thread })
    }

    fn send(&self, batch: Vec<Record>) -> Result<(), Vec<Record>> {
        self.tx.send(batch).map_err(|e| e.0)
    }

    /// Wait until every batch sent is written.
    fn finish(self) {
        drop(self.tx);
        if self.thread.join().is_err() {
            tracing::warn!("the resume recorder failed; some received files may be sent again on a resume");
        }
    }
}

/// Rename that refuses to replace an existing name (Linux `renameat2(RENAME_NOREPLACE)`): one
/// step instead of link + unlink. Errors other than `AlreadyExists` mean "not supported here".
#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(from.as_os_str().as_bytes())?;
    let to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE) };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

impl Drop for Plan {
    fn drop(&mut self) {
        self.record();
        self.settle();
        let mut in_use = lock(&self.shared.transfers.partials);
        for slot in self.slots.iter().filter(|s| s.reserved) {
            in_use.remove(&slot.key);
        }
        // No empty hidden folder left behind once nothing partial is in it. Only while no
        // transfer of this node holds a reservation (under the lock `prepare` reserves with, so
        // a starting transfer either sees it gone and recreates it, or keeps it); `remove_dir`
        // leaves it alone if any file is in it.
        if in_use.is_empty() {
            let _ = fs::remove_dir(self.dest.join(PARTIAL_DIR));
        }
    }
}
