//! What a sender offers: the manifest (paths as the receiver will see them) and where each
//! file is read from. Built from local paths for a push, from a share for a pull.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use blake3::hazmat::ChainingValue;

use anyhow::{Context, Result, anyhow, bail};

use super::chunks::{Layout, root_of};
use super::hashing::{HashFailure, Hashed, Hashing};
use super::wire::{Item, MAX_FILE_BYTES, MAX_ITEMS, MAX_MANIFEST_BYTES, OfferDigest};
use crate::node::share::Shares;
use crate::text::{io_reason, printable};

/// A path the user named that cannot be sent, named as they wrote it.
fn cannot_send(path: &Path, e: &std::io::Error) -> anyhow::Error {
    anyhow!("cannot send \"{}\": {}", printable(&path.to_string_lossy()), io_reason(e))
}

#[derive(Clone)]
pub(crate) struct SendManifest {
    pub items: Vec<Item>,
    /// Where to read each item (None for folders).
    pub sources: Vec<Option<PathBuf>>,
    pub bytes: u64,
    /// For files served from shares: the shares' canonical roots. A file is checked, once open,
    /// to still lie inside one (a link swapped in after the walk must not leak anything).
    pub confine: Option<Vec<PathBuf>>,
    /// Each file's chunk hashes (its root alone for a file of one chunk; none for a folder),
    /// filled by [`SendManifest::hash`].
    pub hashes: Vec<Arc<Vec<ChainingValue>>>,
}

impl SendManifest {
    fn new() -> SendManifest {
        SendManifest {
            items: Vec::new(),
            sources: Vec::new(),
            bytes: 0,
            confine: None,
            hashes: Vec::new(),
        }
    }

    /// What a relay forwards: the items it was offered, read from its own copies as they are
    /// verified (no sources, no hashes: those come with each file).
    pub fn relayed(items: Vec<Item>) -> SendManifest {
        let bytes = items.iter().map(|i| i.size).sum();
        SendManifest {
            sources: vec![None; items.len()],
            items,
            bytes,
            confine: None,
            hashes: Vec::new(),
        }
    }

    /// What is offered, as a person names it (`progress::Label`).
    pub fn label(&self) -> String {
        let mut label = super::progress::Label::default();
        for i in &self.items {
            label.add(&i.path, i.dir);
        }
        label.finish()
    }

    /// What the offer of this manifest hashes to (see `OfferDigest`).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = OfferDigest::default();
        for item in &self.items {
            h.add(item);
        }
        h.finish()
    }

    /// A file, handed to `hashing` (which measures it) as it is listed.
    fn push(&mut self, path: String, source: PathBuf, hashing: &mut Hashing) -> Result<()> {
        self.push_item(path, Some(source.clone()))?;
        hashing.add(self.items.len() - 1, source);
        Ok(())
    }

    /// An empty folder.
    fn push_dir(&mut self, path: String) -> Result<()> {
        self.push_item(path, None)
    }

    /// An item, its size and time (a file's) to be filled in by the hashing, which measures
    /// each file from the descriptor it reads.
    fn push_item(&mut self, path: String, source: Option<PathBuf>) -> Result<()> {
        if self.items.len() >= MAX_ITEMS {
            bail!("more than {MAX_ITEMS} files and folders in one transfer; send them in parts");
        }
        self.items.push(Item {
            dir: source.is_none(),
            path,
            size: 0,
            mtime: 0,
            root: serde_bytes::ByteBuf::new(),
        });
        self.sources.push(source);
        Ok(())
    }

    /// Hash every file (see `hashing`): the roots go into the offer, the chunk hashes before
    /// each file's data. A file that cannot be read fails the whole send here, before anything
    /// is offered.
    pub fn hash(&mut self) -> std::result::Result<(), String> {
        let mut hashing = Hashing::start(self.confine.clone(), Arc::default());
        for (i, source) in self.sources.iter().enumerate() {
            if let Some(path) = source {
                hashing.add(i, path.clone());
            }
        }
        self.take_hashes(hashing.finish())
    }

    /// Put the hashes found into the items, and each file's size and time as it was when
    /// hashed; or say which file could not be hashed, and why.
    fn take_hashes(&mut self, found: Result<Vec<Hashed>, HashFailure>) -> std::result::Result<(), String> {
        let found = found.map_err(|f| match f {
            HashFailure::Unreadable(i, why) => format!("cannot send \"{}\": {why}", printable(&self.items[i].path)),
            HashFailure::Abandoned => "the send was abandoned".to_string(),
            HashFailure::TooBig(i) => format!(
                "\"{}\" is over {} TiB, more than one transfer carries",
                printable(&self.items[i].path),
                MAX_FILE_BYTES >> 40
            ),
        })?;
        // Sizes first: a big file's pieces may come before the piece that measured it.
        for h in &found {
            if let Some((layout, mtime)) = h.measured {
                self.items[h.i].size = layout.size;
                self.items[h.i].mtime = mtime;
            }
        }
        let mut lists: Vec<Vec<ChainingValue>> = vec![Vec::new(); self.items.len()];
        for h in found {
            let count = Layout::of(self.items[h.i].size).count() as usize;
            let list = &mut lists[h.i];
            if list.len() < count {
                list.resize(count, [0; 32]);
            }
            let end = h.first as usize + h.cvs.len();
            list.get_mut(h.first as usize..end).ok_or("hashing failed")?.copy_from_slice(&h.cvs);
        }
        self.hashes = Vec::with_capacity(lists.len());
        for (i, cvs) in lists.into_iter().enumerate() {
            if self.sources[i].is_some() {
                let root = root_of(&Layout::of(self.items[i].size), &cvs).ok_or("hashing failed")?;
                self.items[i].root = serde_bytes::ByteBuf::from(root.to_vec());
            }
            self.hashes.push(Arc::new(cvs));
        }
        self.bytes = self.items.iter().map(|i| i.size).sum();
        Ok(())
    }

    fn check_totals(&self) -> Result<()> {
        let names: usize = self.items.iter().map(|i| i.path.len()).sum();
        if names > MAX_MANIFEST_BYTES {
            bail!(
                "the names in this transfer add up to more than {} MiB; send it in parts",
                MAX_MANIFEST_BYTES >> 20
            );
        }
        Ok(())
    }
}

fn utf8_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no name to send it under", path.display()))?;
    name.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} has a name that is not valid UTF-8", path.display()))
}

/// Files and folders the user named. Folders are walked in name order; symbolic links inside
/// them are followed to files but not to folders (no cycles, no surprise trees).
pub(crate) fn from_local(paths: &[PathBuf], abandoned: &Arc<AtomicBool>) -> Result<SendManifest> {
    if paths.is_empty() {
        bail!("nothing to send");
    }
    let mut m = SendManifest::new();
    let mut tops = HashSet::new();
    // Files are hashed as the walk finds them.
    let mut hashing = Hashing::start(None, abandoned.clone());
    for path in paths {
        let full = fs::canonicalize(path).map_err(|e| cannot_send(path, &e))?;
        let name = utf8_name(&full)?;
        if !tops.insert(name.clone()) {
            bail!("two of the paths are called {name:?}; the receiver could not keep both apart");
        }
        let meta = fs::metadata(&full).map_err(|e| cannot_send(path, &e))?;
        if meta.is_file() {
            m.push(name, full, &mut hashing)?;
        } else if meta.is_dir() {
            walk_local(&mut m, &full, name, &mut hashing, abandoned)?;
        } else {
            bail!(
                "cannot send \"{}\": it is neither a file nor a folder",
                printable(&path.to_string_lossy())
            );
        }
    }
    m.check_totals()?;
    let walked = std::time::Instant::now();
    m.take_hashes(hashing.finish()).map_err(|e| anyhow!(e))?;
    tracing::debug!(
        "{} items, {} bytes hashed {} ms after the walk",
        m.items.len(),
        m.bytes,
        walked.elapsed().as_millis()
    );
    Ok(m)
}

fn walk_local(m: &mut SendManifest, root: &Path, name: String, hashing: &mut Hashing, abandoned: &AtomicBool) -> Result<()> {
    let mut stack = vec![(root.to_path_buf(), name)];
    while let Some((dir, rel)) = stack.pop() {
        if abandoned.load(Ordering::Relaxed) {
            bail!("the send was abandoned");
        }
        let mut entries: Vec<(String, PathBuf, fs::FileType)> = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read folder {}", dir.display()))? {
            let entry = entry.with_context(|| format!("cannot read folder {}", dir.display()))?;
            let path = entry.path();
            // The type the folder listing already gives (a stat only where it gives none).
            let kind = entry.file_type().with_context(|| format!("cannot read {}", path.display()))?;
            entries.push((utf8_name(&path)?, path, kind));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let before = m.items.len();
        let mut subdirs = Vec::new();
        for (child, path, kind) in entries {
            // A link is followed (to a file, never to a folder); a file is measured by the
            // thread that hashes it, from its open descriptor.
            let (file, dir) = if kind.is_symlink() {
                match fs::metadata(&path) {
                    Ok(meta) => (meta.is_file(), false),
                    Err(_) => continue, // a dangling link has nothing to send
                }
            } else {
                (kind.is_file(), kind.is_dir())
            };
            let child_rel = format!("{rel}/{child}");
            if file {
                m.push(child_rel, path, hashing)?;
            } else if dir {
                subdirs.push((path, child_rel));
            }
        }
        if m.items.len() == before && subdirs.is_empty() {
            m.push_dir(rel)?;
        }
        // Reversed so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// The requested paths of a share, each under its own name.
pub(crate) fn from_share(shares: &Shares, paths: &[String]) -> Result<SendManifest, String> {
    let mut m = SendManifest::new();
    m.confine = Some(shares.iter().map(|(_, root)| root.to_path_buf()).collect());
    let mut tops = HashSet::new();
    for path in paths {
        // No offer can carry more than MAX_ITEMS: don't walk (and hold) more than that.
        let walk = shares.walk_limited(path, super::wire::MAX_ITEMS).map_err(|e| e.to_string())?;
        let these: HashSet<String> = walk
            .files
            .iter()
            .map(|f| f.rel.as_str())
            .chain(walk.empty_dirs.iter().map(String::as_str))
            .map(|p| super::file_names::top_of(p).to_string())
            .collect();
        if let Some(twice) = these.iter().find(|t| tops.contains(*t)) {
            return Err(format!("\"{}\" was asked for twice", crate::text::printable(twice)));
        }
        tops.extend(these);
        for f in walk.files {
            // Measured when hashed (below), from the descriptor that is read.
            m.push_item(f.rel, Some(f.full)).map_err(|e| e.to_string())?;
        }
        for d in walk.empty_dirs {
            m.push_dir(d).map_err(|e| e.to_string())?;
        }
    }
    m.check_totals().map_err(|e| e.to_string())?;
    m.hash()?;
    Ok(m)
}

/// Read what is to be sent, off the async workers; a path that can't be read names itself.
/// Dropped before it is done (nobody to send to after all), it stops the walk and the hashing
/// instead of reading a whole tree for nothing.
pub(super) async fn read_sources(paths: &[PathBuf]) -> anyhow::Result<SendManifest> {
    struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let paths = paths.to_vec();
    let stop = StopOnDrop(Arc::default());
    let abandoned = stop.0.clone();
    tokio::task::spawn_blocking(move || from_local(&paths, &abandoned)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tree_lists_files_and_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        fs::create_dir_all(root.join("a/empty")).unwrap();
        fs::write(root.join("a/x.txt"), b"xx").unwrap();
        fs::write(root.join("b.txt"), b"b").unwrap();
        fs::write(dir.path().join("single"), b"").unwrap();
        let m = from_local(&[root.clone(), dir.path().join("single")], &Arc::default()).unwrap();
        let paths: Vec<(&str, bool)> = m.items.iter().map(|i| (i.path.as_str(), i.dir)).collect();
        assert_eq!(
            paths,
            vec![
                ("proj/b.txt", false),
                ("proj/a/x.txt", false),
                ("proj/a/empty", true),
                ("single", false)
            ]
        );
        assert_eq!(m.bytes, 3);
        assert_eq!(m.items[0].root.as_slice(), blake3::hash(b"b").as_bytes());
        assert_eq!(m.items[3].root.as_slice(), blake3::hash(b"").as_bytes());
        assert!(m.items[2].root.is_empty() && m.hashes[2].is_empty());
        assert!(from_local(&[root.clone(), root], &Arc::default()).is_err(), "same name twice");
        let err = from_local(&[PathBuf::from("no/such/missing.pdf")], &Arc::default()).err().unwrap();
        assert_eq!(err.to_string(), "cannot send \"no/such/missing.pdf\": no such file or directory");
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn files_of_many_chunks_get_their_roots_and_chunk_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(37u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
        fs::write(dir.path().join("big"), &data).unwrap();
        fs::write(dir.path().join("small"), b"small").unwrap();
        let m = from_local(&[dir.path().join("big"), dir.path().join("small")], &Arc::default()).unwrap();
        assert_eq!(m.items[0].root.as_slice(), blake3::hash(&data).as_bytes());
        assert_eq!(m.hashes[0].as_slice(), super::super::chunks::cvs_of(&data).as_slice());
        assert_eq!(m.hashes[1].as_slice(), &[*blake3::hash(b"small").as_bytes()]);
    }
}
