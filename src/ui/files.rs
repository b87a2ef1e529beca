//! The two file columns' state: the local folder (listed off the UI thread) and the selected
//! peer's shares (listed lazily through the node, each folder once, kept until refreshed).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::node::api::{EntryKind, ShareEntry};

/// One row of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub dir: bool,
    pub size: u64,
}

/// A list with a cursor, marks and a filter: what both columns share.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub cursor: usize,
    pub marked: HashSet<String>,
    pub filter: String,
    pub error: Option<String>,
    pub loading: bool,
}

impl Listing {
    /// The rows shown: the filter applied (case-insensitive substring).
    pub fn visible(&self) -> Vec<&Entry> {
        let f = self.filter.to_lowercase();
        self.entries
            .iter()
            .filter(|e| f.is_empty() || e.name.to_lowercase().contains(&f))
            .collect()
    }

    pub fn current(&self) -> Option<&Entry> {
        self.visible().get(self.cursor).copied()
    }

    pub fn move_by(&mut self, delta: isize) {
        let n = self.visible().len();
        if n == 0 {
            self.cursor = 0;
            return;
        }
        self.cursor = (self.cursor as isize + delta).clamp(0, n as isize - 1) as usize;
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.visible().len().saturating_sub(1);
    }

    pub fn toggle_mark(&mut self) {
        if let Some(name) = self.current().map(|e| e.name.clone())
            && !self.marked.remove(&name)
        {
            self.marked.insert(name);
        }
        self.move_by(1);
    }

    /// The marked names, or the one under the cursor.
    pub fn chosen(&self) -> Vec<String> {
        if self.marked.is_empty() {
            self.current().map(|e| vec![e.name.clone()]).unwrap_or_default()
        } else {
            let mut v: Vec<String> = self.marked.iter().cloned().collect();
            v.sort();
            v
        }
    }

    /// New contents; the cursor stays on the same name when it is still there.
    pub fn set(&mut self, mut entries: Vec<Entry>) {
        let keep = self.current().map(|e| e.name.clone());
        sort(&mut entries);
        self.entries = entries;
        self.loading = false;
        self.error = None;
        self.marked.retain(|m| self.entries.iter().any(|e| &e.name == m));
        self.cursor = keep.and_then(|k| self.visible().iter().position(|e| e.name == k)).unwrap_or(0);
    }

    fn reset(&mut self) {
        self.entries.clear();
        self.cursor = 0;
        self.marked.clear();
        self.filter.clear();
        self.error = None;
        self.loading = true;
    }
}

/// Folders first, then by name (case-insensitive).
fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase())));
}

/// The local column.
#[derive(Debug, Clone)]
pub struct Local {
    pub dir: PathBuf,
    pub show_hidden: bool,
    pub list: Listing,
    /// Everything read, hidden files too; `list` shows what `show_hidden` allows.
    all: Vec<Entry>,
    /// Where `D` returns to from the download dir.
    back: Option<PathBuf>,
    /// What arrived lately (newest last), highlighted where the column shows it.
    fresh: VecDeque<PathBuf>,
}

/// Received paths remembered for highlighting.
const FRESH: usize = 64;

impl Local {
    pub fn new(dir: PathBuf) -> Local {
        Local {
            dir,
            show_hidden: false,
            list: Listing {
                loading: true,
                ..Listing::default()
            },
            all: Vec::new(),
            back: None,
            fresh: VecDeque::new(),
        }
    }

    /// Go to `place` (the download dir), or back from it to where the column was; returns the
    /// folder to list.
    pub fn toggle_place(&mut self, place: PathBuf) -> Option<PathBuf> {
        let to = match self.back.take() {
            Some(back) if self.dir == place => back,
            _ => {
                self.back = Some(self.dir.clone());
                place
            }
        };
        if to == self.dir {
            return None;
        }
        self.dir = to;
        self.list.reset();
        Some(self.dir.clone())
    }

    /// Something was just received into `dir` under `name`: it stands out when shown.
    pub fn received(&mut self, path: PathBuf) {
        if self.fresh.contains(&path) {
            return;
        }
        if self.fresh.len() == FRESH {
            self.fresh.pop_front();
        }
        self.fresh.push_back(path);
    }

    /// Whether the entry `name` of the folder shown was just received.
    pub fn is_fresh(&self, name: &str) -> bool {
        !self.fresh.is_empty()
            && self
                .fresh
                .iter()
                .any(|p| p.parent() == Some(&self.dir) && p.file_name().is_some_and(|n| n == name))
    }

    /// A listing of `dir` arrived (stale ones, for a folder left meanwhile, are dropped).
    pub fn listed(&mut self, dir: &Path, result: Result<Vec<Entry>, String>) {
        if dir != self.dir {
            return;
        }
        match result {
            Ok(all) => {
                self.all = all;
                self.refilter();
            }
            Err(e) => {
                self.all.clear();
                self.list.set(Vec::new());
                self.list.error = Some(e);
            }
        }
    }

    pub fn toggle_hidden(&mut self) {
        self.show_hidden = !self.show_hidden;
        self.refilter();
    }

    fn refilter(&mut self) {
        let shown = self
            .all
            .iter()
            .filter(|e| self.show_hidden || !e.name.starts_with('.'))
            .cloned()
            .collect();
        self.list.set(shown);
    }

    /// Enter the folder under the cursor; returns the folder to list.
    pub fn open(&mut self) -> Option<PathBuf> {
        let e = self.list.current()?;
        if !e.dir {
            return None;
        }
        self.dir = self.dir.join(&e.name);
        self.list.reset();
        Some(self.dir.clone())
    }

    pub fn parent(&mut self) -> Option<PathBuf> {
        let parent = self.dir.parent()?.to_path_buf();
        self.dir = parent;
        self.list.reset();
        Some(self.dir.clone())
    }

    /// The chosen entries as paths.
    pub fn chosen_paths(&self) -> Vec<PathBuf> {
        self.list.chosen().into_iter().map(|n| self.dir.join(n)).collect()
    }
}

/// Read a local folder (off the UI thread). Names that are not UTF-8 are shown lossily.
pub fn read_local(dir: &Path) -> Result<Vec<Entry>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| crate::text::io_reason(&e))?;
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Links to folders count as folders, as a shell's `cd` would take them.
        let meta = std::fs::metadata(entry.path()).or_else(|_| entry.metadata());
        let (dir, size) = match meta {
            Ok(m) => (m.is_dir(), if m.is_dir() { 0 } else { m.len() }),
            Err(_) => (false, 0),
        };
        out.push(Entry { name, dir, size });
    }
    Ok(out)
}

/// The remote column: one peer's shares, folder by folder.
#[derive(Debug, Default, Clone)]
pub struct Remote {
    /// Whose shares: a peer id, or None when no peer is selected.
    pub peer: Option<String>,
    /// The folder shown, "" for the list of shares.
    pub path: String,
    pub list: Listing,
    /// Folders already listed, kept until refreshed.
    cache: HashMap<(String, String), Vec<Entry>>,
}

impl Remote {
    /// Show `peer`'s folder `path`; returns true when it must be asked for.
    pub fn show(&mut self, peer: &str, path: &str) -> bool {
        self.peer = Some(peer.to_string());
        self.path = path.to_string();
        self.list.reset();
        match self.cache.get(&(peer.to_string(), path.to_string())).cloned() {
            Some(entries) => {
                self.list.set(entries);
                false
            }
            None => true,
        }
    }

    pub fn listed(&mut self, peer: &str, path: &str, result: Result<Vec<ShareEntry>, String>) {
        let current = self.peer.as_deref() == Some(peer) && self.path == path;
        match result {
            Ok(entries) => {
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .map(|e| Entry {
                        dir: e.kind == EntryKind::Dir,
                        name: e.name,
                        size: e.size,
                    })
                    .collect();
                self.cache.insert((peer.to_string(), path.to_string()), entries.clone());
                if current {
                    self.list.set(entries);
                }
            }
            Err(e) if current => {
                self.list.set(Vec::new());
                self.list.error = Some(e);
            }
            Err(_) => {}
        }
    }

    /// Forget what was listed of this folder; returns it to ask again.
    pub fn refresh(&mut self) -> Option<(String, String)> {
        let peer = self.peer.clone()?;
        self.cache.remove(&(peer.clone(), self.path.clone()));
        self.list.reset();
        Some((peer, self.path.clone()))
    }

    pub fn open(&mut self) -> Option<(String, String)> {
        let e = self.list.current()?;
        if !e.dir {
            return None;
        }
        let path = join(&self.path, &e.name);
        let peer = self.peer.clone()?;
        self.show(&peer, &path).then_some((peer, path))
    }

    pub fn parent(&mut self) -> Option<(String, String)> {
        if self.path.is_empty() {
            return None;
        }
        let path = match self.path.rsplit_once('/') {
            Some((up, _)) => up.to_string(),
            None => String::new(),
        };
        let peer = self.peer.clone()?;
        self.show(&peer, &path).then_some((peer, path))
    }

    /// The chosen entries as share paths (`docs/sub/a.pdf`).
    pub fn chosen_paths(&self) -> Vec<String> {
        self.list.chosen().into_iter().map(|n| join(&self.path, &n)).collect()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, dir: bool) -> Entry {
        Entry {
            name: name.into(),
            dir,
            size: 1,
        }
    }

    #[test]
    fn folders_first_filter_marks_and_cursor_kept() {
        let mut l = Listing::default();
        l.set(vec![e("b.txt", false), e("Zed", true), e("a.pdf", false), e(".hidden", false)]);
        let names: Vec<&str> = l.visible().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Zed", ".hidden", "a.pdf", "b.txt"]);
        l.move_by(2);
        l.toggle_mark();
        l.toggle_mark();
        assert_eq!(l.chosen(), ["a.pdf", "b.txt"]);
        l.filter = "B.T".into();
        l.home();
        assert_eq!(l.current().unwrap().name, "b.txt");
        l.filter.clear();
        l.set(vec![e("b.txt", false), e("c", false)]);
        assert_eq!(l.chosen(), ["b.txt"], "marks of vanished names go");
    }

    #[test]
    fn local_hides_dot_files_until_asked() {
        let mut local = Local::new(PathBuf::from("/x"));
        local.listed(Path::new("/x"), Ok(vec![e(".git", true), e("src", true)]));
        assert_eq!(local.list.visible().len(), 1);
        local.toggle_hidden();
        assert_eq!(local.list.visible().len(), 2);
        local.listed(Path::new("/elsewhere"), Ok(vec![]));
        assert_eq!(local.list.visible().len(), 2, "a stale listing is dropped");
        assert_eq!(local.parent(), Some(PathBuf::from("/")));
    }

    #[test]
    fn d_goes_to_the_download_dir_and_back_and_fresh_names_stand_out() {
        let mut local = Local::new(PathBuf::from("/home/ada/lab"));
        let downloads = PathBuf::from("/home/ada/Downloads/lanyard");
        assert_eq!(local.toggle_place(downloads.clone()), Some(downloads.clone()));
        local.received(downloads.join("report.pdf"));
        assert!(local.is_fresh("report.pdf") && !local.is_fresh("other.pdf"));
        assert_eq!(local.toggle_place(downloads.clone()), Some(PathBuf::from("/home/ada/lab")));
        assert!(!local.is_fresh("report.pdf"), "only in the folder it arrived in");
        for i in 0..100 {
            local.received(downloads.join(format!("f{i}")));
        }
        assert_eq!(local.fresh.len(), FRESH, "bounded");
    }

    #[test]
    fn remote_folders_are_listed_once_and_kept() {
        let mut r = Remote::default();
        assert!(r.show("ada", ""));
        let docs = ShareEntry {
            name: "docs".into(),
            kind: EntryKind::Dir,
            size: 0,
            modified: None,
        };
        r.listed("ada", "", Ok(vec![docs]));
        assert_eq!(r.open(), Some(("ada".into(), "docs".into())));
        r.listed("ada", "docs", Err("no such folder".into()));
        assert_eq!(r.list.error.as_deref(), Some("no such folder"));
        assert_eq!(r.parent(), None, "the share list is kept: no new request");
        assert_eq!(r.list.visible().len(), 1);
        assert_eq!(r.refresh(), Some(("ada".into(), "".into())));
    }
}
