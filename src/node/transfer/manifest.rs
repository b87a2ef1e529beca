//! A received manifest, held compactly. Names (and files' roots) go to a spool file in the data dir as they
//! arrive — unlinked from the start, so it goes away with its last handle, also after a crash —
//! and memory keeps one small record per item ([`Entry`], 24 bytes). The whole is charged to
//! the node's manifest budget until dropped. Faces page through the names; the receiving
//! transfer reads them in pages when it needs them. Every read and write here is blocking: call
//! it off the async workers.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::budget::Charge;
use super::file_names::PARTIAL_DIR;
use super::file_names::{MAX_PATH_BYTES, check_relative_str};
use super::wire::{Item, MAX_FILE_BYTES, OfferDigest};
use crate::limits::MANIFEST_ITEM_COST;
use crate::text::printable;

/// One item, without its name (which is `len` bytes at `at` in the spool, followed for a file
/// by its 32-byte root).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub size: u64,
    pub mtime: u64,
    /// A manifest's names are at most `MAX_MANIFEST_BYTES` in all, so 32 bits address them.
    at: u32,
    len: u16,
    pub dir: bool,
}

/// Bytes of root after an entry's name in the spool.
fn root_len(e: &Entry) -> u64 {
    if e.dir { 0 } else { 32 }
}

/// Names read per page when the whole manifest is walked.
const PAGE: usize = 4096;

/// Why a manifest cannot be taken.
pub(crate) enum ManifestRefusal {
    /// The budget is spent, or a name is refused: the text goes to the sender.
    Refused(String),
    /// A pull answered with something not asked for: the peer breaks the protocol.
    NotAsked(String),
    /// Our own disk failed.
    Io(io::Error),
}

impl From<io::Error> for ManifestRefusal {
    fn from(e: io::Error) -> Self {
        ManifestRefusal::Io(e)
    }
}

pub(crate) struct ReceivedManifest {
    spool: File,
    entries: Vec<Entry>,
    /// Bytes of names written so far.
    end: u64,
    charge: Charge,
}

impl ReceivedManifest {
    /// An empty manifest for `items` items, charged for each of them already.
    pub fn new(data_dir: &Path, items: usize, charge: Charge) -> io::Result<ReceivedManifest> {
        Ok(ReceivedManifest {
            spool: tempfile::tempfile_in(data_dir)?,
            entries: Vec::with_capacity(items.min(PAGE)),
            end: 0,
            charge,
        })
    }

    /// Charge for one `Items` frame's names, then spool them. A name longer than any path we
    /// take is refused here, before it is kept.
    pub fn append(&mut self, items: Vec<Item>) -> Result<(), ManifestRefusal> {
        let mut names = Vec::with_capacity(items.iter().map(|i| i.path.len()).sum());
        for item in &items {
            if item.path.len() > MAX_PATH_BYTES {
                return Err(ManifestRefusal::Refused(refusal(&item.path)));
            }
        }
        for item in &items {
            if item.size > MAX_FILE_BYTES {
                return Err(ManifestRefusal::Refused(format!(
                    "\"{}\" is over {} TiB, more than one transfer carries",
                    printable(&item.path),
                    MAX_FILE_BYTES >> 40
                )));
            }
            if item.root.len() != if item.dir { 0 } else { 32 } {
                return Err(ManifestRefusal::Refused("an item without a proper BLAKE3 root".into()));
            }
        }
        let bytes: usize = items.iter().map(|i| i.path.len()).sum();
        self.charge.grow(bytes).map_err(|why| ManifestRefusal::Refused(why.into()))?;
        self.entries.reserve(items.len());
        for item in items {
            self.entries.push(Entry {
                size: item.size,
                mtime: item.mtime,
                at: u32::try_from(self.end + names.len() as u64).map_err(|_| io::Error::other("manifest too large"))?,
                len: item.path.len() as u16,
                dir: item.dir,
            });
            names.extend_from_slice(item.path.as_bytes());
            names.extend_from_slice(&item.root);
        }
        self.spool.write_all_at(&names, self.end)?;
        self.end += names.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Items `offset..offset + limit` (fewer at the end), names read back from the spool.
    pub fn page(&self, offset: usize, limit: usize) -> io::Result<Vec<Item>> {
        let end = offset.saturating_add(limit).min(self.entries.len());
        let Some(slice) = self.entries.get(offset..end).filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        let from = slice[0].at as u64;
        let last = slice[slice.len() - 1];
        let mut buf = vec![0u8; (last.at as u64 + last.len as u64 + root_len(&last) - from) as usize];
        self.spool.read_exact_at(&mut buf, from)?;
        slice
            .iter()
            .map(|e| {
                let at = (e.at as u64 - from) as usize;
                let end = at + e.len as usize;
                let path = String::from_utf8(buf[at..end].to_vec()).map_err(io::Error::other)?;
                let root = buf[end..end + root_len(e) as usize].to_vec();
                Ok(Item {
                    path,
                    size: e.size,
                    mtime: e.mtime,
                    dir: e.dir,
                    root: serde_bytes::ByteBuf::from(root),
                })
            })
            .collect()
    }

    /// The paths of items `offset..offset + limit` (fewer at the end).
    pub fn paths(&self, offset: usize, limit: usize) -> io::Result<Vec<String>> {
        let end = offset.saturating_add(limit).min(self.entries.len());
        let mut paths = Vec::with_capacity(end.saturating_sub(offset));
        let walked = self.each_raw_in(offset..end, |_, path, _| {
            paths.push(path.to_string());
            Ok(())
        });
        match walked {
            Ok(()) => Ok(paths),
            Err(ManifestRefusal::Io(e)) => Err(e),
            Err(ManifestRefusal::Refused(why) | ManifestRefusal::NotAsked(why)) => Err(io::Error::other(why)),
        }
    }

    /// Every item's entry, name and root, read a page at a time into one buffer and lent out
    /// (no allocation per item: validation and the digest walk 100,000 of them).
    fn each_raw(&self, f: impl FnMut(&Entry, &str, &[u8]) -> Result<(), ManifestRefusal>) -> Result<(), ManifestRefusal> {
        self.each_raw_in(0..self.entries.len(), f)
    }

    /// [`ReceivedManifest::each_raw`] of the items in `range` (which must be within the manifest).
    fn each_raw_in(
        &self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(&Entry, &str, &[u8]) -> Result<(), ManifestRefusal>,
    ) -> Result<(), ManifestRefusal> {
        let mut buf = Vec::new();
        let entries = self.entries.get(range).unwrap_or_default();
        for page in entries.chunks(PAGE) {
            let from = page[0].at as u64;
            let last = page[page.len() - 1];
            buf.resize((last.at as u64 + last.len as u64 + root_len(&last) - from) as usize, 0);
            self.spool.read_exact_at(&mut buf, from)?;
            for e in page {
                let at = (e.at as u64 - from) as usize;
                let end = at + e.len as usize;
                let path = std::str::from_utf8(&buf[at..end]).map_err(io::Error::other)?;
                f(e, path, &buf[end..end + root_len(e) as usize])?;
            }
        }
        Ok(())
    }

    /// Check every path: safe names, no duplicates, nothing that is both a file and a folder,
    /// and (for a pull) only under the top-level names asked for. Holds a 16-byte hash per
    /// path, not the paths.
    pub fn validate(&self, allowed: Option<&[String]>) -> Result<(), ManifestRefusal> {
        validate_with(|f| self.each_raw(|e, path, _| f(path, e.dir)), self.entries.len(), allowed)
    }

    /// Every item with its name, read a page at a time (never the whole spool in one buffer
    /// beside the names it becomes).
    pub fn items(&self) -> io::Result<Vec<Item>> {
        let mut items = Vec::with_capacity(self.entries.len());
        let mut offset = 0;
        while offset < self.entries.len() {
            items.extend(self.page(offset, PAGE)?);
            offset += PAGE;
        }
        Ok(items)
    }

    /// A hash of the whole offer (names, sizes, roots): recognises the same offer of the same
    /// transfer when it comes again from another peer of a relay chain.
    /// With it, what the offer is as a person names it (`progress::Label`), in the same walk.
    pub fn digest_and_label(&self) -> io::Result<([u8; 32], String)> {
        let mut h = OfferDigest::default();
        let mut label = super::progress::Label::default();
        let walked = self.each_raw(|e, path, root| {
            h.add_parts(path, e.size, e.dir, root);
            label.add(path, e.dir);
            Ok(())
        });
        match walked {
            Ok(()) => Ok((h.finish(), label.finish())),
            Err(ManifestRefusal::Io(e)) => Err(e),
            Err(ManifestRefusal::Refused(why) | ManifestRefusal::NotAsked(why)) => Err(io::Error::other(why)),
        }
    }

    /// The paths of items `which` (in that order).
    pub fn names(&self, which: &[usize]) -> io::Result<Vec<String>> {
        which
            .iter()
            .map(|&i| Ok(self.page(i, 1)?.pop().map(|item| item.path).unwrap_or_default()))
            .collect()
    }
}

/// What the budget is charged for each item an offer announces, before any name arrives.
/// The checks of [`ReceivedManifest::validate`] over items walked by `walk` (twice), wherever they are
/// held: the spool, or a slice (the fuzz targets and property tests).
fn validate_with(
    mut walk: impl FnMut(&mut dyn FnMut(&str, bool) -> Result<(), ManifestRefusal>) -> Result<(), ManifestRefusal>,
    count: usize,
    allowed: Option<&[String]>,
) -> Result<(), ManifestRefusal> {
    let mut seen = HashSet::with_capacity(count);
    let mut files = HashSet::new();
    walk(&mut |path, dir| {
        // Once checked, a path's '/'-separated parts are its components: no empty, "." or ".."
        // part, so the path itself is the key.
        check_relative_str(path).map_err(|e| ManifestRefusal::Refused(e.to_string()))?;
        let top = path.split('/').next();
        if top == Some(PARTIAL_DIR) {
            return Err(ManifestRefusal::Refused(format!(
                "refused name \"{PARTIAL_DIR}\": it is reserved for partial files"
            )));
        }
        if let Some(allowed) = allowed
            && !allowed.iter().any(|a| top == Some(a.as_str()))
        {
            // A server may only answer a pull with what was asked for.
            return Err(ManifestRefusal::NotAsked(format!(
                "the peer offered {:?}, which was not asked for",
                printable(path)
            )));
        }
        let key = hash(path);
        if !seen.insert(key) {
            return Err(ManifestRefusal::Refused(format!("\"{}\" is offered twice", printable(path))));
        }
        if !dir {
            files.insert(key);
        }
        Ok(())
    })?;
    drop(seen);
    walk(&mut |path, _| {
        for (at, _) in path.match_indices('/') {
            let prefix = &path[..at];
            if files.contains(&hash(prefix)) {
                return Err(ManifestRefusal::Refused(format!(
                    "\"{}\" is offered both as a file and as a folder",
                    printable(prefix)
                )));
            }
        }
        Ok(())
    })
}

/// [`ReceivedManifest::validate`] of items held in memory: each path's components, or why the offer is
/// refused. For the fuzz targets and property tests, which have no spool.
#[cfg(feature = "test-hooks")]
pub(crate) fn validate_items(items: &[Item]) -> Result<Vec<Vec<String>>, String> {
    let mut walk = |f: &mut dyn FnMut(&str, bool) -> Result<(), ManifestRefusal>| items.iter().try_for_each(|i| f(&i.path, i.dir));
    match validate_with(&mut walk, items.len(), None) {
        Ok(()) => Ok(items.iter().map(|i| i.path.split('/').map(str::to_string).collect()).collect()),
        Err(ManifestRefusal::Refused(why) | ManifestRefusal::NotAsked(why)) => Err(why),
        Err(ManifestRefusal::Io(e)) => Err(e.to_string()),
    }
}

pub(crate) fn item_charge(items: usize) -> usize {
    items.saturating_mul(MANIFEST_ITEM_COST)
}

fn refusal(path: &str) -> String {
    match check_relative_str(path) {
        Err(e) => e.to_string(),
        Ok(()) => format!("refused name \"{}\"", printable(path)),
    }
}

fn hash(path: &str) -> [u8; 16] {
    let h = blake3::hash(path.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.as_bytes()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeConfig;

    fn item(path: &str, dir: bool) -> Item {
        Item {
            path: path.into(),
            size: if dir { 0 } else { 1 },
            mtime: 0,
            dir,
            root: serde_bytes::ByteBuf::from(if dir { vec![] } else { vec![9u8; 32] }),
        }
    }

    async fn with_manifest(items: Vec<Item>, check: impl FnOnce(Result<&ReceivedManifest, ManifestRefusal>)) {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::node::NodeHandle::start(NodeConfig::local("m", dir.path().join("data")))
            .await
            .unwrap();
        let charge = Charge::take(
            &node.shared,
            crate::node::transfer::budget::Payer::of(node.id(), None),
            item_charge(items.len()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut m = ReceivedManifest::new(dir.path(), items.len(), charge).unwrap();
        // In two frames, so names cross a frame boundary.
        let mut items = items;
        let rest = items.split_off(items.len() / 2);
        let result = m.append(items).and_then(|()| m.append(rest)).map(|()| &m);
        check(result);
        node.shutdown().await;
    }

    #[tokio::test]
    async fn hostile_or_inconsistent_offers_are_refused() {
        for bad in [
            vec![item("../x", false)],
            vec![item("/etc/passwd", false)],
            vec![item("a/../../x", false)],
            vec![item("C:/x", false)],
            vec![item("a\u{1b}[2J", false)],
            vec![item("NUL", false)],
            vec![item(".lanyard-partial/x", false)],
            vec![item("a", false), item("a", false)],
            vec![item("a", false), item("a/b", false)],
            vec![item("a/b/c", false), item("a/b", false)],
            vec![item("", false)],
            vec![item(&"x/".repeat(3000), false)],
        ] {
            with_manifest(bad.clone(), |m| {
                assert!(m.is_err() || m.ok().is_some_and(|m| m.validate(None).is_err()), "{bad:?}")
            })
            .await;
        }
    }

    #[tokio::test]
    async fn names_come_back_as_offered() {
        let items = vec![item("d/a.txt", false), item("d/e", true), item("é 日本.pdf", false)];
        with_manifest(items.clone(), |m| {
            let m = m.ok().expect("taken");
            assert!(m.validate(None).is_ok());
            assert!(m.validate(Some(&["d".into()])).is_err(), "not asked for");
            assert_eq!(m.page(0, 10).unwrap(), items);
            assert_eq!(m.page(1, 1).unwrap(), items[1..2]);
            assert!(m.page(3, 10).unwrap().is_empty());
            assert_eq!(m.names(&[2, 0]).unwrap(), ["é 日本.pdf", "d/a.txt"]);
            assert_eq!(m.paths(1, 10).unwrap(), ["d/e", "é 日本.pdf"]);
            assert!(m.paths(3, 10).unwrap().is_empty());
            assert_eq!(m.items().unwrap(), items);
            let digest = {
                let mut h = OfferDigest::default();
                items.iter().for_each(|i| h.add(i));
                h.finish()
            };
            assert_eq!(
                m.digest_and_label().unwrap().0,
                digest,
                "the same digest from the spool as from the items"
            );
        })
        .await;
    }
}
