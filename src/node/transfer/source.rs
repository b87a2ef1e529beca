//! What a sender offers: the manifest (paths as the receiver will see them) and where each
//! file is read from. Built from local paths for a push, from a share for a pull.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::mtime_ns;
use super::wire::{Item, MAX_ITEMS, MAX_MANIFEST_BYTES};
use crate::node::share::Shares;
use crate::text::{io_reason, printable};

/// A path the user named that cannot be sent, named as they wrote it.
fn cannot_send(path: &Path, e: &std::io::Error) -> anyhow::Error {
    anyhow!("cannot send \"{}\": {}", printable(&path.to_string_lossy()), io_reason(e))
}

#[derive(Clone)]
pub(crate) struct Manifest {
    pub items: Vec<Item>,
    /// Where to read each item (None for folders).
    pub sources: Vec<Option<PathBuf>>,
    pub bytes: u64,
    /// For files served from shares: the shares' canonical roots. A file is checked, once open,
    /// to still lie inside one (a link swapped in after the walk must not leak anything).
    pub confine: Option<Vec<PathBuf>>,
}

impl Manifest {
    fn new() -> Manifest {
        Manifest {
            items: Vec::new(),
            sources: Vec::new(),
            bytes: 0,
            confine: None,
        }
    }

    fn push(&mut self, path: String, source: Option<PathBuf>, size: u64, mtime: u64) -> Result<()> {
        if self.items.len() >= MAX_ITEMS {
            bail!("more than {MAX_ITEMS} files and folders in one transfer; send them in parts");
        }
        self.bytes = self.bytes.saturating_add(size);
        self.items.push(Item {
            dir: source.is_none(),
            path,
            size,
            mtime,
        });
        self.sources.push(source);
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
pub(crate) fn from_local(paths: &[PathBuf]) -> Result<Manifest> {
    if paths.is_empty() {
        bail!("nothing to send");
    }
    let mut m = Manifest::new();
    let mut tops = HashSet::new();
    for path in paths {
        let full = fs::canonicalize(path).map_err(|e| cannot_send(path, &e))?;
        let name = utf8_name(&full)?;
        if !tops.insert(name.clone()) {
            bail!("two of the paths are called {name:?}; the receiver could not keep both apart");
        }
        let meta = fs::metadata(&full).map_err(|e| cannot_send(path, &e))?;
        if meta.is_file() {
            m.push(name, Some(full), meta.len(), mtime_ns(&meta))?;
        } else if meta.is_dir() {
            walk_local(&mut m, &full, name)?;
        } else {
            bail!(
                "cannot send \"{}\": it is neither a file nor a folder",
                printable(&path.to_string_lossy())
            );
        }
    }
    m.check_totals()?;
    Ok(m)
}

fn walk_local(m: &mut Manifest, root: &Path, name: String) -> Result<()> {
    let mut stack = vec![(root.to_path_buf(), name)];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<(String, PathBuf, bool)> = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read folder {}", dir.display()))? {
            let entry = entry.with_context(|| format!("cannot read folder {}", dir.display()))?;
            let path = entry.path();
            // The type the folder listing already gives (a stat only where it gives none).
            let link = entry
                .file_type()
                .with_context(|| format!("cannot read {}", path.display()))?
                .is_symlink();
            entries.push((utf8_name(&path)?, path, link));
        }
        entries.sort();
        let before = m.items.len();
        let mut subdirs = Vec::new();
        for (child, path, link) in entries {
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(_) if link => continue, // a dangling link has nothing to send
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            let child_rel = format!("{rel}/{child}");
            if meta.is_file() {
                m.push(child_rel, Some(path), meta.len(), mtime_ns(&meta))?;
            } else if meta.is_dir() && !link {
                subdirs.push((path, child_rel));
            }
        }
        if m.items.len() == before && subdirs.is_empty() {
            m.push(rel, None, 0, 0)?;
        }
        // Reversed so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// The requested paths of a share, each under its own name.
pub(crate) fn from_share(shares: &Shares, paths: &[String]) -> Result<Manifest, String> {
    let mut m = Manifest::new();
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
            .map(|p| super::top_of(p).to_string())
            .collect();
        if let Some(twice) = these.iter().find(|t| tops.contains(*t)) {
            return Err(format!("\"{}\" was asked for twice", crate::text::printable(twice)));
        }
        tops.extend(these);
        for f in walk.files {
            let meta = fs::metadata(&f.full).map_err(|e| format!("cannot read \"{}\": {e}", crate::text::printable(&f.rel)))?;
            m.push(f.rel, Some(f.full), meta.len(), mtime_ns(&meta))
                .map_err(|e| e.to_string())?;
        }
        for d in walk.empty_dirs {
            m.push(d, None, 0, 0).map_err(|e| e.to_string())?;
        }
    }
    m.check_totals().map_err(|e| e.to_string())?;
    Ok(m)
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
        let m = from_local(&[root.clone(), dir.path().join("single")]).unwrap();
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
        assert!(from_local(&[root.clone(), root]).is_err(), "same name twice");
        let err = from_local(&[PathBuf::from("no/such/missing.pdf")]).err().unwrap();
        assert_eq!(err.to_string(), "cannot send \"no/such/missing.pdf\": no such file or directory");
    }
}
