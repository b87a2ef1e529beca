//! Where received bytes live. Each file is written to a partial file in a hidden folder inside
//! the destination (same file system, so placing it is a link, not a copy) and appears under
//! its final name only once verified, under a name that did not exist before: nothing is ever
//! overwritten, nothing half-written ever sits under a final name.
//!
//! Resume: a partial file is named after a key of (destination, path, size, BLAKE3 root, and the
//! rest of its folder), so offering the same thing again finds it — from any sender: a peer
//! re-attached to another relay of a chain resumes what the first one passed on, and the
//! chunks it holds were verified against the same root. A folder
//! keeps the top-level name it was given on the first attempt (recorded in the store), and
//! files of it already placed then — found under their own names in that folder — are
//! verified again instead of sent again. Only a file placed under another name than its own is
//! recorded (a record per file cost more than a small file's whole transfer).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, fsync, linkat, mkdirat, openat, renameat, unlinkat};
use rustix::io::Errno;

use super::dirs::{NEW_DIR, kind_at, open_dir, open_root, walk};
use super::file_names::{PARTIAL_DIR, free_name_at};
use super::ids::new_id;
use super::manifest::ReceivedManifest;
use super::space::{Reservation, Space};
use crate::node::Shared;
use crate::node::lock;
use crate::store::unix_now;

/// After a partial file's key, in its name.
const PARTIAL_SUFFIX: &str = ".part";
/// Attempts at a free name before giving up (each loses a race to another writer).
const PLACE_ATTEMPTS: usize = 100;

struct Group {
    key: String,
    folder: bool,
    /// The top-level name as offered.
    top: String,
    /// The folder's name in the destination (folders only), once it exists: it is created
    /// when its first item arrives, not when the offer is accepted.
    dir_name: Option<String>,
    /// An earlier attempt at this folder chose `dir_name`. Only then can files of it be
    /// partly or wholly here already: a new folder skips the look for every file.
    earlier: bool,
}

pub(crate) struct Slot {
    /// The partial file's name in the partial folder: its key and [`PARTIAL_SUFFIX`] (empty for
    /// a folder).
    partial: String,
    /// The size offered.
    pub size: u64,
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
    manifest: Arc<ReceivedManifest>,
    dest: PathBuf,
    /// The destination, opened once: everything below it is reached through this handle.
    root: OwnedFd,
    /// The partial folder inside it.
    partials: OwnedFd,
    groups: Vec<Group>,
    pub slots: Vec<Slot>,
    /// The names of a run of items, read from the spool together: the disk thread names
    /// every file two or three times, in order, and one read per file would cost more than
    /// a small file's own write.
    names: RefCell<NamePage>,
    /// The folder the last file went to (relative), already checked, created and open.
    last_dir: Option<(PathBuf, OwnedFd)>,
    /// A file was placed in `last_dir` since it was last fsynced.
    unsynced: bool,
    /// Folder items made so far (they come in manifest order, as the sender reaches them).
    dirs_made: usize,
    /// The space promised to this transfer (see `reserve`).
    space: Option<Reservation>,
}

/// Names read from the spool at once (see `Plan::with_name`).
const NAME_PAGE: usize = 256;

#[derive(Default)]
struct NamePage {
    first: usize,
    names: Vec<String>,
}

fn key_of(parts: &[&[u8]]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h
}

/// The partial folder inside the destination, created if missing: a real folder, owner-only
/// (other users of the machine have no business in half-received files), never a planted link.
fn partial_dir(root: &OwnedFd) -> io::Result<OwnedFd> {
    open_dir(root.as_fd(), PARTIAL_DIR, Some(Mode::from_raw_mode(0o700)))
}

/// Where an earlier attempt at a folder put item `path` (relative to the destination), unless it
/// was renamed: under the folder it chose, by its own name. A file found there counts as
/// received only if it [`holds`] the offered bytes: someone may have put another file there, or
/// changed ours.
fn placed_path(group: &Group, path: &str) -> Option<String> {
    let (_, rest) = path.split_once('/')?;
    Some(format!("{}/{rest}", group.dir_name.as_deref()?))
}

/// Whether the file at `rel` (below `root`, reached through handles, never a link) holds exactly
/// the bytes whose BLAKE3 hash is `hash`.
fn holds(root: &OwnedFd, rel: &str, hash: &[u8]) -> bool {
    let comps: Vec<&str> = rel.split('/').collect();
    let Some((name, dirs)) = comps.split_last() else {
        return false;
    };
    let Ok(dir) = walk(root.as_fd(), dirs.iter().copied(), false) else {
        return false;
    };
    let Ok(fd) = openat(&dir, *name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) else {
        return false;
    };
    let mut h = blake3::Hasher::new();
    h.update_reader(File::from(fd)).is_ok() && h.finalize().as_bytes().as_slice() == hash
}

/// The content key a partial file's name starts with (before a "-id" that keeps two arrivals of
/// the same file apart, and before [`PARTIAL_SUFFIX`]).
fn content_key(partial: &str) -> &str {
    partial.split(['-', '.']).next().unwrap_or(partial)
}

/// A database error, as an I/O error of the step that needed it.
fn db_err(e: rusqlite::Error) -> io::Error {
    io::Error::other(format!("database: {e}"))
}

impl Plan {
    pub(crate) fn prepare(shared: &Arc<Shared>, dest: &Path, manifest: &Arc<ReceivedManifest>) -> Result<Plan, String> {
        // The names, held only while the plan is made: afterwards they are read back from the
        // manifest's spool when a file is placed.
        let items = manifest.items().map_err(|e| format!("cannot read the offer back: {e}"))?;
        // The message goes to the peer too: it names no local path (the log does).
        let cannot = |e: io::Error| {
            tracing::warn!("cannot use download folder {}: {e}", dest.display());
            format!("cannot use the download folder: {e}")
        };
        // The destination is the user's choice and trusted; from here on, only handles.
        fs::create_dir_all(dest).map_err(cannot)?;
        let root = open_root(dest).map_err(cannot)?;
        let partials = partial_dir(&root).map_err(cannot)?;
        super::expire::maybe_expire(shared, dest, &root);
        let dest_bytes = dest.to_string_lossy().into_owned();
        // Groups by top-level name, in order of appearance (an offer may have 100,000 of them:
        // a map keeps this linear).
        let mut tops: Vec<(String, Vec<usize>)> = Vec::new();
        let mut top_index: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let top = super::file_names::top_of(&item.path);
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
            root,
            partials,
            groups: Vec::new(),
            slots: Vec::new(),
            names: RefCell::default(),
            last_dir: None,
            unsynced: false,
            dirs_made: 0,
            space: None,
        };
        let mut group_of = vec![0usize; items.len()];
        for (top, members) in &tops {
            let mut h = key_of(&[b"lanyard-group-v2", dest_bytes.as_bytes(), top.as_bytes()]);
            for &i in members {
                let it = &items[i];
                h.update(it.path.as_bytes());
                h.update(&[0]);
                h.update(&it.size.to_le_bytes());
                h.update(&it.root);
                h.update(&[it.dir as u8]);
                group_of[i] = plan.groups.len();
            }
            let key = h.finalize().to_hex().to_string();
            let folder = members.iter().any(|&i| items[i].dir || items[i].path.contains('/'));
            let earlier = if folder {
                plan.earlier_dir(&key).map_err(|e| e.to_string())?
            } else {
                None
            };
            plan.groups.push(Group {
                key,
                folder,
                top: top.clone(),
                earlier: earlier.is_some(),
                dir_name: earlier,
            });
        }
        // Each file's partial name, reserved for this transfer under one hold of the lock.
        let mut partials: Vec<Option<String>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                (!item.dir).then(|| {
                    let mut key = key_of(&[plan.groups[group_of[i]].key.as_bytes(), item.path.as_bytes()]);
                    key.update(&item.size.to_le_bytes());
                    key.update(&item.root);
                    key.finalize().to_hex().to_string()
                })
            })
            .collect();
        {
            let mut in_use = lock(&shared.transfers.partials);
            for key in partials.iter_mut().flatten() {
                if !in_use.insert(key.clone()) {
                    // The same file is arriving on another connection right now: no resume.
                    *key = format!("{key}-{}", new_id());
                    in_use.insert(key.clone());
                }
                key.push_str(PARTIAL_SUFFIX);
            }
        }
        // Files of a resumed folder that an earlier attempt placed under another name.
        let mut renamed: HashMap<String, String> = HashMap::new();
        for group in plan.groups.iter().filter(|g| g.earlier) {
            renamed.extend(plan.renamed_in(&group.key).map_err(|e| e.to_string())?);
        }
        plan.slots.reserve_exact(items.len());
        for (i, (item, partial)) in items.iter().zip(partials).enumerate() {
            let group = &plan.groups[group_of[i]];
            let (mut offset, mut existing) = (0, None);
            if let Some(partial) = &partial
                && (!group.folder || group.earlier)
            {
                // Looks only: what is found is opened later by handle, never following a link.
                // Found where it was placed (recorded if renamed), it counts as received only if it
                // still holds the offered bytes: hashed here, once, before the offer is taken.
                if group.folder
                    && let Some(done) = renamed
                        .get(content_key(partial))
                        .cloned()
                        .or_else(|| placed_path(group, &item.path))
                    && kind_at(plan.root.as_fd(), &done).is_some_and(|(t, len)| t == FileType::RegularFile && len == item.size)
                    && holds(&plan.root, &done, &item.root)
                {
                    offset = item.size;
                    existing = Some(plan.dest.join(done));
                } else if let Some((FileType::RegularFile, len)) = kind_at(plan.partials.as_fd(), partial)
                    && len <= item.size
                {
                    offset = len;
                }
            }
            plan.slots.push(Slot {
                reserved: partial.is_some(),
                partial: partial.unwrap_or_default(),
                size: item.size,
                offset,
                existing,
                group: group_of[i],
                dir: item.dir,
            });
        }
        // Again, now that our partial files are reserved: a transfer that ended meanwhile may
        // have removed the folder as empty (see `Drop`), and none will from now on.
        plan.partials = partial_dir(&plan.root).map_err(cannot)?;
        Ok(plan)
    }

    /// Promise the bytes still to come on the destination's file system, or say why not.
    pub(crate) fn reserve(&mut self, me: &str) -> Result<(), String> {
        let needed = self
            .slots
            .iter()
            .filter(|s| !s.dir && s.existing.is_none())
            .map(|s| s.size - s.offset)
            .fold(0, u64::saturating_add);
        self.space = Some(Space::reserve(&self.shared, self.root.as_fd(), needed, me)?);
        Ok(())
    }

    /// `n` more bytes are on disk.
    pub(crate) fn written(&self, n: u64) {
        if let Some(space) = &self.space {
            space.written(n);
        }
    }

    /// The folder an earlier attempt at this group chose, if it is still there.
    fn earlier_dir(&self, key: &str) -> io::Result<Option<String>> {
        let db = self.shared.store.lock();
        let known: Option<String> = db
            .query_row("SELECT dir FROM transfer_groups WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        let Some(dir) = known else { return Ok(None) };
        if !kind_at(self.root.as_fd(), &dir).is_some_and(|(t, _)| t == FileType::Directory) {
            return Ok(None);
        }
        // In use again: its records expire a day from now, not from the first attempt.
        db.execute(
            "UPDATE transfer_groups SET updated = ?2 WHERE key = ?1",
            params![key, unix_now() as i64],
        )
        .map_err(db_err)?;
        Ok(Some(dir))
    }

    /// The files of group `key` an earlier attempt placed under another name: content key →
    /// path (relative to the destination).
    fn renamed_in(&self, key: &str) -> io::Result<Vec<(String, String)>> {
        let db = self.shared.store.lock();
        let mut stmt = db
            .prepare_cached("SELECT key, path FROM transfer_renamed WHERE group_key = ?1")
            .map_err(db_err)?;
        let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// The folder a top-level folder lands in: the one an earlier attempt chose, or, when its
    /// first item arrives, a new one under a free name (recorded for a resume).
    fn group_dir(&mut self, g: usize) -> io::Result<String> {
        if let Some(dir) = &self.groups[g].dir_name {
            return Ok(dir.clone());
        }
        let top = self.groups[g].top.clone();
        for _ in 0..PLACE_ATTEMPTS {
            let name = free_name_at(self.root.as_fd(), &top);
            match mkdirat(self.root.as_fd(), name.as_str(), NEW_DIR) {
                Ok(()) => {
                    fsync(self.root.as_fd())?;
                    self.shared
                        .store
                        .lock()
                        .execute(
                            "INSERT OR REPLACE INTO transfer_groups (key, dir, updated) VALUES (?1, ?2, ?3)",
                            params![self.groups[g].key, name, unix_now() as i64],
                        )
                        .map_err(db_err)?;
                    self.groups[g].dir_name = Some(name.clone());
                    return Ok(name);
                }
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!("cannot create folder \"{}\": {e}", crate::text::printable(&name)),
                    ));
                }
            }
        }
        Err(io::Error::other(format!(
            "no free name for folder \"{}\"",
            crate::text::printable(&top)
        )))
    }

    /// `f` of item `i`'s path as offered, read back from the spool a page at a time.
    fn with_name<R>(&self, i: usize, f: impl FnOnce(&str) -> R) -> io::Result<R> {
        let mut page = self.names.borrow_mut();
        if i < page.first || i >= page.first + page.names.len() {
            *page = NamePage {
                first: i,
                names: self.manifest.paths(i, NAME_PAGE)?,
            };
        }
        let name = page
            .names
            .get(i - page.first)
            .ok_or_else(|| io::Error::other("cannot read the offer back"))?;
        Ok(f(name))
    }

    /// Item `i`'s path as offered: what the sender knows it by. (Empty if the spool cannot be
    /// read, which `target` reports.)
    pub(crate) fn offered(&self, i: usize) -> String {
        self.with_name(i, str::to_owned).unwrap_or_default()
    }

    /// Where item `i` lands: the folders between its top-level name and its own name (its
    /// path's components, checked when the manifest was validated, so a split on '/' gives
    /// them), its own name, and its depth in the offer.
    fn parts(&self, i: usize) -> io::Result<(PathBuf, String, usize)> {
        self.with_name(i, |path| {
            let comps: Vec<&str> = path.split('/').collect();
            let n = comps.len();
            let middle: PathBuf = comps.get(1..n.saturating_sub(1)).unwrap_or_default().iter().collect();
            (middle, comps.last().copied().unwrap_or_default().to_string(), n)
        })
    }

    /// The folder (relative to the destination) where item `i` lands, its own name, and its
    /// depth in the offer; the group's folder is created here if it is not yet.
    fn target(&mut self, i: usize) -> io::Result<(PathBuf, String, usize)> {
        let (middle, last, n) = self.parts(i)?;
        let g = self.slots[i].group;
        if !self.groups[g].folder {
            return Ok((PathBuf::new(), last, n));
        }
        let mut dir = PathBuf::from(self.group_dir(g)?);
        if !middle.as_os_str().is_empty() {
            dir.push(middle);
        }
        Ok((dir, last, n))
    }

    /// The folder where item `i` lands, created and open (the last one is kept: files of one
    /// folder arrive together).
    fn open_target(&mut self, i: usize) -> io::Result<(PathBuf, String)> {
        let (rel, name, _) = self.target(i)?;
        if self.last_dir.as_ref().is_none_or(|(r, _)| *r != rel) {
            self.sync_placed()?;
            let comps: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
            let fd = walk(self.root.as_fd(), comps, true)?;
            self.last_dir = Some((rel.clone(), fd));
        }
        Ok((rel, name))
    }

    /// Create the folder items the sender has gone past (all before item `below`), each
    /// with its verdict.
    pub(crate) fn make_dirs(&mut self, below: usize) -> Vec<(usize, Result<PathBuf, String>)> {
        let mut out = Vec::new();
        while self.dirs_made < below.min(self.slots.len()) {
            let i = self.dirs_made;
            self.dirs_made += 1;
            if self.slots[i].dir {
                out.push((i, self.make_dir(i).map_err(|e| format!("cannot create folder: {e}"))));
            }
        }
        out
    }

    /// Recreate a folder item.
    fn make_dir(&mut self, i: usize) -> io::Result<PathBuf> {
        let (dir, last, depth) = self.target(i)?;
        let rel = if depth == 1 { dir } else { dir.join(last) };
        let comps: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        walk(self.root.as_fd(), comps, true)?;
        Ok(self.dest.join(rel))
    }

    /// The folder of item `i` exists (created now if not): called when its first byte comes.
    pub(crate) fn ready_folder(&mut self, i: usize) -> io::Result<()> {
        self.open_target(i).map(drop)
    }

    /// Open item `i`'s partial file for writing, from zero (`truncate`) or to go on.
    pub(crate) fn open_partial(&mut self, i: usize, truncate: bool) -> io::Result<File> {
        let mut flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if truncate {
            flags |= OFlags::TRUNC;
        }
        // What a browser download gets (0666 less the umask, applied by the kernel): the
        // partial keeps its mode when it is linked into place, and until then it sits in the
        // owner-only partial folder.
        let mode = Mode::from_raw_mode(0o666);
        let name = self.slots[i].partial.as_str();
        let fd = match openat(self.partials.as_fd(), name, flags, mode) {
            // The partial folder went away (another process sharing this download folder
            // removes it when its own transfers end and it looks empty): create it again.
            Err(Errno::NOENT) => {
                self.partials = partial_dir(&self.root)?;
                openat(self.partials.as_fd(), self.slots[i].partial.as_str(), flags, mode)?
            }
            other => other?,
        };
        Ok(File::from(fd))
    }

    /// Open the copy of item `i` an earlier attempt placed, to verify it.
    pub(crate) fn open_existing(&self, i: usize) -> io::Result<File> {
        let missing = || io::Error::from(io::ErrorKind::NotFound);
        let path = self.slots[i].existing.as_ref().ok_or_else(missing)?;
        let rel = path.strip_prefix(&self.dest).map_err(|_| missing())?;
        let comps: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        let (name, dirs) = comps.split_last().ok_or_else(missing)?;
        let dir = walk(self.root.as_fd(), dirs.iter().copied(), false)?;
        let fd = openat(
            dir.as_fd(),
            *name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Make the bytes of these verified files durable: the file's own fsync for one, the file
    /// system's (`syncfs`) for a batch, which costs about as much as one fsync.
    pub(crate) fn sync_files(&self, files: &[(usize, File)]) -> io::Result<()> {
        match files {
            [] => Ok(()),
            [(_, one)] => one.sync_all(),
            _ => Ok(rustix::fs::syncfs(&self.partials)?),
        }
    }

    /// Put a verified file, its bytes made durable by [`Plan::sync_files`], under a free final
    /// name; returns where it went. Nothing half-written ever has a final name; the name itself
    /// is durable after [`Plan::sync_placed`], which must come before the sender hears of it.
    pub(crate) fn place(&mut self, i: usize) -> io::Result<PathBuf> {
        if let Some(existing) = self.slots[i].existing.clone() {
            return Ok(existing);
        }
        let (dir_rel, name) = self.open_target(i)?;
        let Some((_, dir)) = &self.last_dir else {
            return Err(io::Error::other("internal error: no open folder"));
        };
        let placed = place_at(&self.shared.transfers.placing, &self.partials, &self.slots[i].partial, dir, &name)?;
        self.unsynced = true;
        let rel = dir_rel.join(&placed);
        let group = &self.groups[self.slots[i].group];
        if placed != name && group.folder {
            // Rare (its own name was taken), so written here and now: a resume of this folder
            // must find it where it went, not take what sits under its name for it.
            let recorded = self.shared.store.lock().execute(
                "INSERT OR REPLACE INTO transfer_renamed (key, group_key, path) VALUES (?1, ?2, ?3)",
                params![content_key(&self.slots[i].partial), group.key, rel.to_string_lossy()],
            );
            if let Err(e) = recorded {
                tracing::warn!("cannot record a renamed file for resume: {e}");
            }
        }
        let full = self.dest.join(rel);
        self.slots[i].existing = Some(full.clone());
        Ok(full)
    }

    /// Make the names of the files placed so far durable (fsync their folder).
    pub(crate) fn sync_placed(&mut self) -> io::Result<()> {
        if let Some((_, dir)) = &self.last_dir
            && self.unsynced
        {
            fsync(dir)?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Drop the bytes of a file that can never be completed as offered (hash mismatch, changed
    /// source).
    pub(crate) fn discard(&self, i: usize) {
        let _ = unlinkat(self.partials.as_fd(), self.slots[i].partial.as_str(), AtFlags::empty());
    }

    /// Bytes waiting in partial files for a resume: what an interrupted transfer keeps.
    pub(crate) fn partial_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| !s.dir && s.existing.is_none())
            .filter_map(|s| kind_at(self.partials.as_fd(), &s.partial))
            .filter(|(t, _)| *t == FileType::RegularFile)
            .map(|(_, len)| len)
            .sum()
    }

    /// Where this transfer's partial files are, and their names (kept by a stopped receive,
    /// for a cancel after a restart).
    pub(crate) fn partial_files(&self) -> (PathBuf, Vec<String>) {
        let names = self
            .slots
            .iter()
            .filter(|s| !s.dir && s.existing.is_none() && !s.partial.is_empty())
            .map(|s| s.partial.clone())
            .collect();
        (self.dest.join(PARTIAL_DIR), names)
    }

    /// The partial files this transfer goes on from (bytes an earlier one left).
    pub(crate) fn resumed_partials(&self) -> (PathBuf, Vec<String>) {
        let names = self
            .slots
            .iter()
            .filter(|s| !s.dir && s.existing.is_none() && s.offset > 0 && !s.partial.is_empty())
            .map(|s| s.partial.clone())
            .collect();
        (self.dest.join(PARTIAL_DIR), names)
    }

    /// After the last file: folders whose every item arrived need no resume record any more.
    pub(crate) fn finish(&mut self, ok: &[bool]) {
        for (g, group) in self.groups.iter().enumerate() {
            let complete = self.slots.iter().zip(ok).filter(|(s, _)| s.group == g).all(|(_, ok)| *ok);
            if complete && group.folder {
                self.forget_group(&group.key);
            }
        }
    }

    /// Cancelled: remove every partial file and forget the folders' resume records.
    pub(crate) fn cancel(&mut self) {
        for i in 0..self.slots.len() {
            if !self.slots[i].dir && self.slots[i].existing.is_none() {
                self.discard(i);
            }
        }
        for group in &self.groups {
            self.forget_group(&group.key);
        }
    }

    fn forget_group(&self, key: &str) {
        let db = self.shared.store.lock();
        let _ = db.execute("DELETE FROM transfer_renamed WHERE group_key = ?1", [key]);
        let _ = db.execute("DELETE FROM transfer_groups WHERE key = ?1", [key]);
    }
}

/// Move the partial file `partial` (in `partials`) into `dir` under `name`, or under a free
/// name like it if that is taken; never over an existing file. Returns the name it got.
fn place_at(placing: &std::sync::Mutex<()>, partials: &OwnedFd, partial: &str, dir: &OwnedFd, name: &str) -> io::Result<String> {
    for attempt in 0..PLACE_ATTEMPTS {
        // The name as sent first (usually free: the rename itself says if not).
        let candidate = match attempt {
            0 => name.to_string(),
            _ => free_name_at(dir.as_fd(), name),
        };
        // Both fail if the name exists: the no-overwrite step, atomic.
        match rename_noreplace(partials, partial, dir, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(Errno::EXIST) => continue,
            Err(_) => {}
        }
        match linkat(partials, partial, dir, candidate.as_str(), AtFlags::empty()) {
            Ok(()) => {
                let _ = unlinkat(partials, partial, AtFlags::empty());
                return Ok(candidate);
            }
            Err(Errno::EXIST) => continue,
            Err(_) => {
                // File systems without hard links: rename, under the node's lock so no other
                // transfer of ours can take the name between the check and the rename.
                let _guard = lock(placing);
                if kind_at(dir.as_fd(), &candidate).is_some() {
                    continue;
                }
                renameat(partials, partial, dir, candidate.as_str())?;
                return Ok(candidate);
            }
        }
    }
    Err(io::Error::other(format!("no free name for \"{}\"", crate::text::printable(name))))
}

/// Rename that refuses to replace an existing name (Linux `renameat2(RENAME_NOREPLACE)`): one
/// step instead of link + unlink. Errors other than `EXIST` mean "not supported here".
#[cfg(target_os = "linux")]
fn rename_noreplace(from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> rustix::io::Result<()> {
    rustix::fs::renameat_with(from_dir, from, to_dir, to, rustix::fs::RenameFlags::NOREPLACE)
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_: &OwnedFd, _: &str, _: &OwnedFd, _: &str) -> rustix::io::Result<()> {
    Err(Errno::NOSYS)
}

impl Drop for Plan {
    fn drop(&mut self) {
        let mut in_use = lock(&self.shared.transfers.partials);
        for slot in self.slots.iter().filter(|s| s.reserved) {
            in_use.remove(slot.partial.strip_suffix(PARTIAL_SUFFIX).unwrap_or(&slot.partial));
        }
        // No empty hidden folder left behind once nothing partial is in it. Only while no
        // transfer of this node holds a reservation (under the lock `prepare` reserves with, so
        // a starting transfer either sees it gone and recreates it, or keeps it); `remove_dir`
        // leaves it alone if any file is in it.
        if in_use.is_empty() {
            let _ = unlinkat(self.root.as_fd(), PARTIAL_DIR, AtFlags::REMOVEDIR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placing_moves_the_partial_under_a_free_name_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let root = open_root(tmp.path()).unwrap();
        let partials = partial_dir(&root).unwrap();
        let dir = walk(root.as_fd(), ["d"], true).unwrap();
        let placing = std::sync::Mutex::new(());
        fs::write(tmp.path().join("d/a.txt"), b"old").unwrap();
        for (part, data) in [("k1.part", "new"), ("k2.part", "newer")] {
            fs::write(tmp.path().join(PARTIAL_DIR).join(part), data).unwrap();
        }
        assert_eq!(place_at(&placing, &partials, "k1.part", &dir, "a.txt").unwrap(), "a (1).txt");
        assert_eq!(place_at(&placing, &partials, "k2.part", &dir, "a.txt").unwrap(), "a (2).txt");
        assert_eq!(fs::read(tmp.path().join("d/a.txt")).unwrap(), b"old");
        assert_eq!(fs::read(tmp.path().join("d/a (1).txt")).unwrap(), b"new");
        assert_eq!(fs::read(tmp.path().join("d/a (2).txt")).unwrap(), b"newer");
        assert_eq!(fs::read_dir(tmp.path().join(PARTIAL_DIR)).unwrap().count(), 0, "moved, not copied");
        // A partial that is not there is an error, not an empty file.
        assert!(place_at(&placing, &partials, "gone.part", &dir, "b.txt").is_err());
        assert!(!tmp.path().join("d/b.txt").exists());
    }
}
