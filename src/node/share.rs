//! The folders given with `--share`, served read-only to peers.
//!
//! Peers see a virtual tree: the root lists one directory per share, and "docs/sub/file.txt"
//! means "sub/file.txt" inside the share named "docs". Every request is resolved to a
//! canonical path and must stay inside its share's canonical root, so neither `..` nor a
//! symlink that someone put in a shared folder can expose anything else.
//!
//! Error messages only ever mention the path the peer asked for, never our local paths:
//! they may be sent back to the peer.

use crate::limits::{MAX_SHARE_REQUEST_BYTES, MAX_WALK_ENTRIES};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// How much of a peer-supplied path is repeated in an error message.
const SHOWN_CHARS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EntryKind {
    Dir,
    File,
}

/// One line of a directory listing sent to a peer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShareEntry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes for files, 0 for directories.
    pub size: u64,
    /// Last modification, in seconds since the Unix epoch, when the platform knows it.
    pub modified: Option<u64>,
}

/// Where a requested path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The virtual root that lists the shares.
    Root,
    /// Something inside the share `share`; `full` is canonical and inside the share's root.
    Path { share: String, full: PathBuf },
}

/// One file to send for a `walk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkFile {
    /// Path to recreate on the receiving side, '/'-separated, starting with the requested
    /// entry's own name ("sub/a.txt" for a request of "docs/sub").
    pub rel: String,
    /// Canonical local path to read from.
    pub full: PathBuf,
    pub size: u64,
}

/// Everything under a requested path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    pub files: Vec<WalkFile>,
    /// Directories with nothing to send inside, listed so the receiver recreates them.
    /// Same form as `WalkFile::rel`.
    pub empty_dirs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("cannot share {}: {reason}", shown(&.dir.to_string_lossy()))]
    BadShareDir { dir: PathBuf, reason: String },
    #[error("\"{}\" is not a shared folder", shown(.0))]
    NotShared(String),
    #[error("\"{}\" not found", shown(.0))]
    NotFound(String),
    #[error("\"{}\" leads outside the shared folder", shown(.0))]
    OutsideShare(String),
    #[error("\"{}\" is not a directory", shown(.0))]
    NotADirectory(String),
    #[error("refused path \"{}\": {reason}", shown(.path))]
    InvalidPath { path: String, reason: &'static str },
    #[error("\"{}\" has more than {limit} entries", shown(.path))]
    TooManyEntries { path: String, limit: usize },
    #[error("cannot read \"{}\": {error}", shown(.path))]
    Io { path: String, error: io::Error },
}

/// Characters a name must not have to be listed or served: the one hostile set, so that what
/// a peer lists, its receiver's name checks accept.
use crate::text::is_hostile as is_dangerous_char;

/// A peer-supplied path made safe and short for a one-line message.
fn shown(s: &str) -> String {
    crate::text::shown(s, SHOWN_CHARS)
}

/// Names we are willing to show and serve. A name a peer could not ask for (see
/// `split_request`) is left out of listings too, so what is listed can always be fetched.
fn servable_name(name: &str) -> bool {
    let windows_drive = cfg!(windows) && name.contains(':');
    !(name.is_empty() || name.contains(['/', '\\']) || name.chars().any(is_dangerous_char) || windows_drive)
}

/// Split a request into its components, refusing anything that could climb or confuse.
fn split_request(path: &str) -> Result<Vec<&str>, ShareError> {
    let invalid = |reason| ShareError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() || path == "/" {
        return Ok(Vec::new());
    }
    if path.len() > MAX_SHARE_REQUEST_BYTES {
        return Err(invalid("too long"));
    }
    if path.starts_with(['/', '\\']) {
        return Err(invalid("absolute paths are not allowed"));
    }
    // "docs/sub/" is what tab completion produces; it means the same as "docs/sub".
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let mut comps = Vec::new();
    for c in trimmed.split('/') {
        if c.is_empty() {
            return Err(invalid("empty components are not allowed"));
        }
        if c == "." || c == ".." {
            return Err(invalid("\".\" and \"..\" are not allowed"));
        }
        if c.contains('\\') {
            return Err(invalid("backslashes are not allowed"));
        }
        if c.chars().any(is_dangerous_char) {
            return Err(invalid("control characters are not allowed"));
        }
        // On Windows "C:x" pushed onto a path would replace the share root with drive C.
        if cfg!(windows) && c.contains(':') {
            return Err(invalid("':' is not allowed"));
        }
        comps.push(c);
    }
    Ok(comps)
}

/// A missing path and a path through a file are both "not found" to the peer.
fn io_error(path: &str, error: io::Error) -> ShareError {
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ShareError::NotFound(path.to_owned()),
        _ => ShareError::Io {
            path: path.to_owned(),
            error,
        },
    }
}

fn unix_seconds(meta: &fs::Metadata) -> Option<u64> {
    let modified = meta.modified().ok()?;
    modified.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Dirs first, then by name ignoring case, then exactly, so the order is total and stable.
fn sort_entries<T>(items: &mut [T], key: impl Fn(&T) -> (EntryKind, &str)) {
    items.sort_by_cached_key(|item| {
        let (kind, name) = key(item);
        (kind == EntryKind::File, name.to_lowercase(), name.to_owned())
    });
}

/// A directory entry that passed the servability and symlink rules.
struct Child {
    name: String,
    /// Canonical: the parent is canonical and this is not a link, or the link's resolved target.
    path: PathBuf,
    kind: EntryKind,
    meta: fs::Metadata,
}

/// Look at one entry of a directory inside `root`, or `None` if it is not to be shown.
/// `dir` must be canonical, so that joining a non-link name onto it stays canonical.
fn inspect(root: &Path, dir: &Path, entry: &fs::DirEntry) -> Option<Child> {
    let name = entry.file_name().into_string().ok()?;
    if !servable_name(&name) {
        return None;
    }
    let file_type = entry.file_type().ok()?;
    let (path, meta) = if file_type.is_symlink() {
        // Dangling links fail to canonicalize and are dropped along with outward ones.
        let target = fs::canonicalize(entry.path()).ok()?;
        if !target.starts_with(root) {
            return None;
        }
        let meta = fs::metadata(&target).ok()?;
        (target, meta)
    } else {
        (dir.join(&name), entry.metadata().ok()?)
    };
    // Sockets, fifos and devices: reading them could block forever or never end.
    let kind = if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else {
        return None;
    };
    Some(Child { name, path, kind, meta })
}

/// Read and filter a directory, refusing up front if it alone would blow the entry budget.
fn read_children(root: &Path, dir: &Path, shown_as: &str, budget: usize) -> Result<Vec<Child>, ShareError> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(shown_as, e))? {
        let entry = entry.map_err(|e| io_error(shown_as, e))?;
        if let Some(child) = inspect(root, dir, &entry) {
            if children.len() >= budget {
                return Err(ShareError::TooManyEntries {
                    path: shown_as.to_owned(),
                    limit: MAX_WALK_ENTRIES,
                });
            }
            children.push(child);
        }
    }
    sort_entries(&mut children, |c| (c.kind, c.name.as_str()));
    Ok(children)
}

/// The shared folders, by share name.
#[derive(Debug, Clone, Default)]
pub struct Shares {
    /// Share name -> canonical root directory.
    roots: BTreeMap<String, PathBuf>,
}

impl Shares {
    /// Build from the `--share` directories; each must exist and be a directory. Share names
    /// are the directories' final components, made unique with " (2)", " (3)"…
    /// The same directory given twice is shared once.
    pub fn new(dirs: &[PathBuf]) -> Result<Shares, ShareError> {
        let mut roots: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in dirs {
            let bad = |reason: String| ShareError::BadShareDir { dir: dir.clone(), reason };
            let canonical = fs::canonicalize(dir).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => bad("no such directory".into()),
                _ => bad(e.to_string()),
            })?;
            let meta = fs::metadata(&canonical).map_err(|e| bad(e.to_string()))?;
            if !meta.is_dir() {
                return Err(bad("not a directory".into()));
            }
            if roots.values().any(|r| *r == canonical) {
                continue;
            }
            let base = share_base_name(&canonical);
            let mut name = base.clone();
            let mut n = 2;
            while roots.contains_key(&name) {
                name = format!("{base} ({n})");
                n += 1;
            }
            roots.insert(name, canonical);
        }
        Ok(Shares { roots })
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Share names with their canonical roots, sorted by name (for telling the user what
    /// is being shared).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.roots.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }

    /// Resolve a path requested by a peer. "" or "/" is the virtual root; "docs/sub/file.txt"
    /// is "sub/file.txt" in share "docs". One trailing '/' is ignored. `..`, absolute paths,
    /// backslashes, empty components and control characters are refused; the result is
    /// canonicalized and must lie inside the share's canonical root, so a symlink may be
    /// followed only as long as it stays inside the share.
    ///
    /// The check is made now; a local user swapping in a link between this call and the
    /// read is out of scope (that needs openat-style APIs that std does not offer).
    pub fn resolve(&self, path: &str) -> Result<Resolved, ShareError> {
        let comps = split_request(path)?;
        let Some((share, rest)) = comps.split_first() else {
            return Ok(Resolved::Root);
        };
        let root = self.roots.get(*share).ok_or_else(|| ShareError::NotShared((*share).to_owned()))?;
        let mut full = root.clone();
        full.extend(rest);
        let canonical = fs::canonicalize(&full).map_err(|e| io_error(path, e))?;
        if !canonical.starts_with(root) {
            return Err(ShareError::OutsideShare(path.to_owned()));
        }
        Ok(Resolved::Path {
            share: (*share).to_owned(),
            full: canonical,
        })
    }

    fn root_of(&self, share: &str) -> Result<&Path, ShareError> {
        self.roots
            .get(share)
            .map(PathBuf::as_path)
            .ok_or_else(|| ShareError::NotShared(share.to_owned()))
    }

    /// List a directory: directories first, then by name. Symlinks leading outside the share
    /// (or nowhere), sockets, fifos, devices, and names that are not valid UTF-8 or contain
    /// control characters or backslashes are left out. Links inside the share are shown as
    /// what they point to.
    pub fn list(&self, path: &str) -> Result<Vec<ShareEntry>, ShareError> {
        let (share, full) = match self.resolve(path)? {
            Resolved::Root => {
                let mut entries: Vec<ShareEntry> = self
                    .roots
                    .iter()
                    .map(|(name, root)| ShareEntry {
                        name: name.clone(),
                        kind: EntryKind::Dir,
                        size: 0,
                        modified: fs::metadata(root).ok().as_ref().and_then(unix_seconds),
                    })
                    .collect();
                sort_entries(&mut entries, |e| (e.kind, e.name.as_str()));
                return Ok(entries);
            }
            Resolved::Path { share, full } => (share, full),
        };
        let root = self.root_of(&share)?;
        let meta = fs::metadata(&full).map_err(|e| io_error(path, e))?;
        if !meta.is_dir() {
            return Err(ShareError::NotADirectory(path.to_owned()));
        }
        let children = read_children(root, &full, path, MAX_WALK_ENTRIES)?;
        Ok(children
            .into_iter()
            .map(|c| ShareEntry {
                size: match c.kind {
                    EntryKind::File => c.meta.len(),
                    EntryKind::Dir => 0,
                },
                modified: unix_seconds(&c.meta),
                name: c.name,
                kind: c.kind,
            })
            .collect())
    }

    /// Everything under a requested path, as files to send plus the empty directories to
    /// recreate. Paths start with the requested entry's own name ("sub/a.txt" for "docs/sub");
    /// the virtual root walks every share, each under its share name. The same rules as
    /// `list` decide what is included; a link back to a directory being walked is skipped, so
    /// link cycles end. At most MAX_WALK_ENTRIES files and directories, an error beyond.
    #[cfg(test)]
    pub fn walk(&self, path: &str) -> Result<Walk, ShareError> {
        self.walk_limited(path, MAX_WALK_ENTRIES)
    }

    pub fn walk_limited(&self, path: &str, limit: usize) -> Result<Walk, ShareError> {
        let mut walker = Walker {
            walk: Walk::default(),
            count: 0,
            limit,
            request: path,
        };
        match self.resolve(path)? {
            Resolved::Root => {
                for (name, root) in &self.roots {
                    walker.dir(root, root, name.clone(), "")?;
                }
            }
            Resolved::Path { share, full } => {
                let root = self.root_of(&share)?;
                // Named as requested, not after a link's target: "docs/link.txt" arrives as
                // "link.txt" even if it points at "real.txt".
                let trimmed = path.strip_suffix('/').unwrap_or(path);
                let (parent, own_name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
                let meta = fs::metadata(&full).map_err(|e| io_error(path, e))?;
                if meta.is_dir() {
                    walker.dir(root, &full, own_name.to_owned(), parent)?;
                } else if meta.is_file() {
                    walker.count()?;
                    walker.walk.files.push(WalkFile {
                        rel: own_name.to_owned(),
                        full,
                        size: meta.len(),
                    });
                } else {
                    // Not listed either, so to the peer it does not exist.
                    return Err(ShareError::NotFound(path.to_owned()));
                }
            }
        }
        Ok(walker.walk)
    }
}

/// The last component of a canonical share root, made safe to use as a share name.
fn share_base_name(root: &Path) -> String {
    let raw = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if is_dangerous_char(c) || c == '\\' || c == '/' || (cfg!(windows) && c == ':') {
                '_'
            } else {
                c
            }
        })
        .collect();
    // "/" or "C:\" have no final component.
    if name.is_empty() { "root".to_owned() } else { name }
}

/// State of one `walk`.
struct Walker<'a> {
    walk: Walk,
    count: usize,
    limit: usize,
    request: &'a str,
}

/// A directory being walked: its remaining children, and whether anything inside was sent.
struct Frame {
    dir: PathBuf,
    rel: String,
    children: std::vec::IntoIter<Child>,
    sent_something: bool,
}

impl Walker<'_> {
    fn too_many(&self) -> ShareError {
        ShareError::TooManyEntries {
            path: self.request.to_owned(),
            limit: self.limit,
        }
    }

    fn count(&mut self) -> Result<(), ShareError> {
        if self.count >= self.limit {
            return Err(self.too_many());
        }
        self.count += 1;
        Ok(())
    }

    /// How a directory is named in errors: the peer's view of it, never our local path.
    fn shown_as(base: &str, rel: &str) -> String {
        if base.is_empty() { rel.to_owned() } else { format!("{base}/{rel}") }
    }

    fn open(&mut self, root: &Path, dir: PathBuf, rel: String, base: &str) -> Result<Frame, ShareError> {
        self.count()?;
        let budget = self.limit - self.count;
        let children = read_children(root, &dir, &Self::shown_as(base, &rel), budget).map_err(|e| match e {
            ShareError::TooManyEntries { .. } => self.too_many(),
            other => other,
        })?;
        Ok(Frame {
            dir,
            rel,
            children: children.into_iter(),
            sent_something: false,
        })
    }

    /// Depth-first over `dir`, with an explicit stack so deep trees cannot overflow ours.
    /// `base` is the requested path's parent, used only to name directories in errors.
    fn dir(&mut self, root: &Path, dir: &Path, rel: String, base: &str) -> Result<(), ShareError> {
        let first = self.open(root, dir.to_path_buf(), rel, base)?;
        let mut stack = vec![first];
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.children.next() else {
                if let Some(done) = stack.pop()
                    && !done.sent_something
                {
                    self.walk.empty_dirs.push(done.rel);
                }
                continue;
            };
            let rel = format!("{}/{}", top.rel, child.name);
            match child.kind {
                EntryKind::File => {
                    top.sent_something = true;
                    self.count()?;
                    self.walk.files.push(WalkFile {
                        rel,
                        full: child.path,
                        size: child.meta.len(),
                    });
                }
                EntryKind::Dir => {
                    // Only a link can lead back to a directory we are inside of.
                    if stack.iter().any(|f| f.dir == child.path) {
                        continue;
                    }
                    let frame = self.open(root, child.path, rel, base)?;
                    if let Some(parent) = stack.last_mut() {
                        parent.sent_something = true;
                    }
                    stack.push(frame);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A share "docs" with:
    ///   a.txt (3 bytes), B.txt, sub/c.txt, sub/deeper/d.txt, empty/, zdir/inner-empty/
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let docs = tmp.path().join("docs");
        fs::create_dir_all(docs.join("sub/deeper")).unwrap();
        fs::create_dir_all(docs.join("empty")).unwrap();
        fs::create_dir_all(docs.join("zdir/inner-empty")).unwrap();
        fs::write(docs.join("a.txt"), b"abc").unwrap();
        fs::write(docs.join("B.txt"), b"").unwrap();
        fs::write(docs.join("sub/c.txt"), b"cc").unwrap();
        fs::write(docs.join("sub/deeper/d.txt"), b"dddd").unwrap();
        (tmp, docs)
    }

    fn names(entries: &[ShareEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn rels(walk: &Walk) -> Vec<&str> {
        walk.files.iter().map(|f| f.rel.as_str()).collect()
    }

    #[test]
    fn new_requires_existing_directories() {
        let (tmp, docs) = tree();
        let missing = tmp.path().join("missing");
        let err = Shares::new(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(err, ShareError::BadShareDir { .. }));
        assert!(err.to_string().contains("no such directory"), "{err}");

        let err = Shares::new(&[docs.join("a.txt")]).unwrap_err();
        assert!(err.to_string().ends_with("not a directory"), "{err}");

        assert!(Shares::new(&[]).unwrap().is_empty());
        assert!(!Shares::new(&[docs]).unwrap().is_empty());
    }

    #[test]
    fn share_names_are_made_unique() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["one/docs", "two/docs", "three/docs", "four/docs (2)"]
            .iter()
            .map(|d| tmp.path().join(d))
            .collect();
        for d in &dirs {
            fs::create_dir_all(d).unwrap();
        }
        let shares = Shares::new(&dirs).unwrap();
        let mut got: Vec<&str> = shares.iter().map(|(n, _)| n).collect();
        got.sort();
        assert_eq!(got, ["docs", "docs (2)", "docs (2) (2)", "docs (3)"]);
        assert_eq!(names(&shares.list("").unwrap()), got);

        // The same directory twice, however spelled, is shared once.
        let again = tmp.path().join("one/../one/docs");
        let shares = Shares::new(&[dirs[0].clone(), again]).unwrap();
        assert_eq!(shares.iter().count(), 1);
    }

    #[test]
    fn root_listing_shows_the_shares() {
        let (tmp, docs) = tree();
        let music = tmp.path().join("Music");
        fs::create_dir(&music).unwrap();
        let shares = Shares::new(&[music, docs]).unwrap();
        for root in ["", "/"] {
            assert_eq!(shares.resolve(root).unwrap(), Resolved::Root);
            let entries = shares.list(root).unwrap();
            assert_eq!(names(&entries), ["docs", "Music"]);
            assert!(entries.iter().all(|e| e.kind == EntryKind::Dir && e.size == 0));
            assert!(entries.iter().all(|e| e.modified.is_some()));
        }
    }

    #[test]
    fn nested_listing_is_sorted_dirs_first() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(&[docs]).unwrap();
        let entries = shares.list("docs").unwrap();
        assert_eq!(names(&entries), ["empty", "sub", "zdir", "a.txt", "B.txt"]);
        let a = &entries[3];
        assert_eq!((a.kind, a.size), (EntryKind::File, 3));
        assert!(a.modified.is_some());
        assert_eq!(shares.list("docs/").unwrap(), entries);

        let sub = shares.list("docs/sub").unwrap();
        assert_eq!(names(&sub), ["deeper", "c.txt"]);
        assert_eq!(sub[0].kind, EntryKind::Dir);
        assert_eq!(names(&shares.list("docs/sub/deeper").unwrap()), ["d.txt"]);
        assert!(shares.list("docs/empty").unwrap().is_empty());
    }

    #[test]
    fn listing_a_file_is_not_a_directory() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(&[docs]).unwrap();
        assert!(matches!(shares.list("docs/a.txt"), Err(ShareError::NotADirectory(p)) if p == "docs/a.txt"));
    }

    #[test]
    fn a_file_path_resolves_canonically() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(std::slice::from_ref(&docs)).unwrap();
        let canonical = fs::canonicalize(&docs).unwrap();
        assert_eq!(
            shares.resolve("docs/sub/c.txt").unwrap(),
            Resolved::Path {
                share: "docs".into(),
                full: canonical.join("sub").join("c.txt"),
            }
        );
        assert_eq!(
            shares.resolve("docs").unwrap(),
            Resolved::Path {
                share: "docs".into(),
                full: canonical,
            }
        );
    }

    #[test]
    fn missing_paths_are_not_found() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(&[docs]).unwrap();
        for path in ["docs/nope.txt", "docs/sub/nope/x", "docs/a.txt/x"] {
            assert!(
                matches!(shares.resolve(path), Err(ShareError::NotFound(ref p)) if p == path),
                "{path}: {:?}",
                shares.resolve(path)
            );
            assert!(matches!(shares.list(path), Err(ShareError::NotFound(_))));
            assert!(matches!(shares.walk(path), Err(ShareError::NotFound(_))));
        }
        assert!(matches!(shares.resolve("nosuch/x"), Err(ShareError::NotShared(s)) if s == "nosuch"));
        assert_eq!(shares.list("docs/nope.txt").unwrap_err().to_string(), "\"docs/nope.txt\" not found");
    }

    #[test]
    fn traversal_and_odd_requests_are_refused() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(&[docs]).unwrap();
        for path in [
            "..",
            "../etc/passwd",
            "docs/..",
            "docs/../..",
            "docs/sub/../../x",
            "docs/./a.txt",
            ".",
            "/etc/passwd",
            "/docs",
            "//docs",
            "\\docs",
            "docs\\..\\..",
            "docs//a.txt",
            "docs/sub//",
            "docs/a\u{1b}[2J",
            "docs/a\0b",
            "docs/ok\u{202e}fdp.exe",
        ] {
            let err = shares.resolve(path).unwrap_err();
            assert!(matches!(err, ShareError::InvalidPath { .. }), "{path:?}: {err:?}");
            assert!(shares.list(path).is_err(), "{path:?}");
            assert!(shares.walk(path).is_err(), "{path:?}");
            let msg = err.to_string();
            assert!(!msg.chars().any(is_dangerous_char), "{msg:?}");
        }
        let huge = format!("docs/{}", "x/".repeat(3000));
        assert!(matches!(shares.resolve(&huge), Err(ShareError::InvalidPath { .. })));
        assert!(shares.resolve(&huge).unwrap_err().to_string().len() < 300);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_share_are_refused() {
        use std::os::unix::fs::symlink;
        let (tmp, docs) = tree();
        let outside = tmp.path().join("secret");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("key"), b"s3cret").unwrap();
        symlink("/etc", docs.join("etc")).unwrap();
        symlink(&outside, docs.join("secret-dir")).unwrap();
        symlink(outside.join("key"), docs.join("sub/key")).unwrap();
        symlink("../../secret/key", docs.join("sub/relative-key")).unwrap();
        symlink(docs.join("gone"), docs.join("dangling")).unwrap();
        let shares = Shares::new(&[docs]).unwrap();

        for path in [
            "docs/etc",
            "docs/etc/passwd",
            "docs/secret-dir",
            "docs/secret-dir/key",
            "docs/sub/key",
            "docs/sub/relative-key",
        ] {
            assert!(
                matches!(shares.resolve(path), Err(ShareError::OutsideShare(ref p)) if p == path),
                "{path}: {:?}",
                shares.resolve(path)
            );
            assert!(shares.list(path).is_err());
            assert!(shares.walk(path).is_err());
        }
        assert!(matches!(shares.resolve("docs/dangling"), Err(ShareError::NotFound(_))));

        assert_eq!(names(&shares.list("docs").unwrap()), ["empty", "sub", "zdir", "a.txt", "B.txt"]);
        assert_eq!(names(&shares.list("docs/sub").unwrap()), ["deeper", "c.txt"]);
        let all = shares.walk("").unwrap();
        assert!(all.files.iter().all(|f| !f.rel.contains("key") && !f.rel.contains("etc")));
        assert_eq!(all.files.len(), 4);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_inside_the_share_are_followed() {
        use std::os::unix::fs::symlink;
        let (_tmp, docs) = tree();
        symlink("sub", docs.join("sub-link")).unwrap();
        symlink(docs.join("a.txt"), docs.join("sub/a-link.txt")).unwrap();
        let shares = Shares::new(std::slice::from_ref(&docs)).unwrap();
        let canonical = fs::canonicalize(&docs).unwrap();

        assert_eq!(
            shares.resolve("docs/sub-link/c.txt").unwrap(),
            Resolved::Path {
                share: "docs".into(),
                full: canonical.join("sub/c.txt"),
            }
        );
        let entries = shares.list("docs").unwrap();
        assert_eq!(names(&entries), ["empty", "sub", "sub-link", "zdir", "a.txt", "B.txt"]);
        assert_eq!(entries[2].kind, EntryKind::Dir);
        let sub = shares.list("docs/sub").unwrap();
        assert_eq!(names(&sub), ["deeper", "a-link.txt", "c.txt"]);
        assert_eq!((sub[1].kind, sub[1].size), (EntryKind::File, 3));

        // Requested through a link, the file keeps the name it was asked by.
        let walk = shares.walk("docs/sub/a-link.txt").unwrap();
        assert_eq!(rels(&walk), ["a-link.txt"]);
        assert_eq!(walk.files[0].full, canonical.join("a.txt"));

        let walk = shares.walk("docs/sub-link").unwrap();
        assert_eq!(rels(&walk), ["sub-link/deeper/d.txt", "sub-link/a-link.txt", "sub-link/c.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn walk_survives_link_cycles() {
        use std::os::unix::fs::symlink;
        let (_tmp, docs) = tree();
        symlink("..", docs.join("sub/up")).unwrap();
        symlink(".", docs.join("sub/deeper/here")).unwrap();
        let shares = Shares::new(&[docs]).unwrap();
        let walk = shares.walk("docs").unwrap();
        assert_eq!(rels(&walk), ["docs/sub/deeper/d.txt", "docs/sub/c.txt", "docs/a.txt", "docs/B.txt"]);
        assert_eq!(walk.empty_dirs, ["docs/empty", "docs/zdir/inner-empty"]);
    }

    #[test]
    fn walk_a_tree_with_empty_dirs() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(std::slice::from_ref(&docs)).unwrap();
        let canonical = fs::canonicalize(&docs).unwrap();

        let walk = shares.walk("docs").unwrap();
        assert_eq!(rels(&walk), ["docs/sub/deeper/d.txt", "docs/sub/c.txt", "docs/a.txt", "docs/B.txt"]);
        assert_eq!(walk.empty_dirs, ["docs/empty", "docs/zdir/inner-empty"]);
        let d = &walk.files[0];
        assert_eq!((d.size, &d.full), (4, &canonical.join("sub/deeper/d.txt")));

        let walk = shares.walk("docs/sub").unwrap();
        assert_eq!(rels(&walk), ["sub/deeper/d.txt", "sub/c.txt"]);
        assert!(walk.empty_dirs.is_empty());

        let walk = shares.walk("docs/empty/").unwrap();
        assert!(walk.files.is_empty());
        assert_eq!(walk.empty_dirs, ["empty"]);

        let walk = shares.walk("docs/zdir").unwrap();
        assert_eq!(walk.empty_dirs, ["zdir/inner-empty"]);

        let walk = shares.walk("docs/a.txt").unwrap();
        assert_eq!(
            walk.files,
            [WalkFile {
                rel: "a.txt".into(),
                full: canonical.join("a.txt"),
                size: 3
            }]
        );
        assert!(walk.empty_dirs.is_empty());
    }

    #[test]
    fn walk_of_the_root_covers_every_share() {
        let (tmp, docs) = tree();
        let other = tmp.path().join("other");
        fs::create_dir(&other).unwrap();
        let shares = Shares::new(&[other, docs]).unwrap();
        let walk = shares.walk("").unwrap();
        assert_eq!(walk.files.len(), 4);
        assert!(walk.files.iter().all(|f| f.rel.starts_with("docs/")));
        assert_eq!(walk.empty_dirs, ["docs/empty", "docs/zdir/inner-empty", "other"]);
    }

    #[test]
    fn walk_is_bounded() {
        let (_tmp, docs) = tree();
        let shares = Shares::new(&[docs]).unwrap();
        // docs, empty, sub, deeper, zdir, inner-empty: 6 dirs and 4 files.
        assert!(shares.walk_limited("docs", 10).is_ok());
        for limit in [0, 1, 5, 9] {
            let err = shares.walk_limited("docs", limit).unwrap_err();
            assert!(
                matches!(err, ShareError::TooManyEntries { limit: l, .. } if l == limit),
                "{limit}: {err:?}"
            );
        }
        assert!(shares.walk_limited("docs/a.txt", 0).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn sockets_and_odd_names_are_not_listed() {
        let (_tmp, docs) = tree();
        let _socket = std::os::unix::net::UnixListener::bind(docs.join("sock")).unwrap();
        fs::write(docs.join("esc\u{1b}[2J"), b"").unwrap();
        fs::write(docs.join("back\\slash"), b"").unwrap();
        let shares = Shares::new(&[docs]).unwrap();
        assert_eq!(names(&shares.list("docs").unwrap()), ["empty", "sub", "zdir", "a.txt", "B.txt"]);
        assert_eq!(shares.walk("docs").unwrap().files.len(), 4);
        assert!(matches!(shares.walk("docs/sock"), Err(ShareError::NotFound(_))));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn non_utf8_names_are_not_listed() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let (_tmp, docs) = tree();
        fs::write(docs.join(OsStr::from_bytes(b"bad\xff.txt")), b"").unwrap();
        let shares = Shares::new(&[docs]).unwrap();
        assert_eq!(names(&shares.list("docs").unwrap()).len(), 5);
        assert_eq!(shares.walk("docs").unwrap().files.len(), 4);
    }

    #[test]
    fn share_names_are_sanitised() {
        assert_eq!(share_base_name(Path::new("/x/a\u{1b}b")), "a_b");
        assert_eq!(share_base_name(Path::new("/")), "root");
        assert_eq!(share_base_name(Path::new("/home/me/Docs")), "Docs");
    }

    #[test]
    fn error_messages_are_one_safe_line() {
        let errors = [
            ShareError::NotFound("a\u{1b}]0;pwned\u{7}".into()),
            ShareError::OutsideShare("x\u{202e}y".into()),
            ShareError::NotShared("\u{9b}31m".into()),
            ShareError::NotADirectory("a\nb".into()),
            ShareError::Io {
                path: "p\rq".into(),
                error: io::Error::from(io::ErrorKind::PermissionDenied),
            },
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(!msg.chars().any(is_dangerous_char), "{msg:?}");
        }
        assert_eq!(
            ShareError::OutsideShare("docs/etc".into()).to_string(),
            "\"docs/etc\" leads outside the shared folder"
        );
    }
}
