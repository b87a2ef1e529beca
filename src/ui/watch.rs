//! The local column follows its folder: the OS reports changes (inotify through the `notify`
//! crate), a thread of ours lets a burst settle, then tells the loop once
//! ([`Msg::LocalChanged`]), which lists the folder again off the UI thread.
//!
//! Opening or reading a file is not a change: our own listing opens the folder, so counting
//! it would list the folder for ever.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::app::Msg;

/// A burst of changes (a copy writing, an unpacked archive) is listed once it is this quiet.
const SETTLE: Duration = Duration::from_millis(150);
/// …but a folder that never goes quiet is still listed this often.
const AT_MOST: Duration = Duration::from_millis(1000);

/// The watch on the folder the local column shows (none where the OS gives no watches: then
/// `r` still lists it again).
pub struct FolderWatch {
    watcher: Option<RecommendedWatcher>,
    dir: Arc<Mutex<Option<PathBuf>>>,
}

impl FolderWatch {
    pub fn new(tx: mpsc::Sender<Msg>) -> FolderWatch {
        let dir: Arc<Mutex<Option<PathBuf>>> = Arc::new(Mutex::new(None));
        let (changes, settle) = std_mpsc::channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event
                && !matches!(e.kind, EventKind::Access(_))
            {
                let _ = changes.send(());
            }
        })
        .ok();
        let shown = dir.clone();
        std::thread::spawn(move || {
            while settle.recv().is_ok() {
                let first = Instant::now();
                while first.elapsed() < AT_MOST && settle.recv_timeout(SETTLE).is_ok() {}
                let Some(dir) = shown.lock().ok().and_then(|d| d.clone()) else {
                    continue;
                };
                if tx.blocking_send(Msg::LocalChanged(dir)).is_err() {
                    return;
                }
            }
        });
        FolderWatch { watcher, dir }
    }

    /// Watch `dir` instead of the folder watched so far (touches the disk: call it off the UI
    /// thread).
    pub fn follow(&mut self, dir: &Path) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        let Ok(mut current) = self.dir.lock() else { return };
        if current.as_deref() == Some(dir) {
            return;
        }
        if let Some(old) = current.take() {
            let _ = watcher.unwatch(&old);
        }
        if watcher.watch(dir, RecursiveMode::NonRecursive).is_ok() {
            *current = Some(dir.to_path_buf());
        }
    }
}
