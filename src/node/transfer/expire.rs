//! Partial files nobody came back for. A transfer that ends without finishing keeps its partial
//! files (and its folders' resume records) so that the same transfer again resumes; after
//! [`PARTIAL_MAX_AGE`] untouched they are removed: when the node starts, and before each
//! transfer into the same folder.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::params;
use rustix::fs::{AtFlags, FileType, unlinkat};

use super::dirs::{kind_at, open_dir, open_root};
use super::file_names::PARTIAL_DIR;
use crate::limits::PARTIAL_MAX_AGE;
use crate::node::{Shared, lock};
use crate::store::unix_now;

/// At start-up: the download folder's old partial files and every old resume record.
pub(crate) async fn at_start(shared: Arc<Shared>) {
    let _ = tokio::task::spawn_blocking(move || {
        let dest = shared.config.download_dir.clone();
        match open_root(&dest) {
            Ok(root) => maybe_expire(&shared, &dest, &root),
            // No download folder yet: nothing partial in it, but the records may be old.
            Err(_) => expire_records(&shared, PARTIAL_MAX_AGE),
        }
    })
    .await;
}

/// Remove what is older than [`PARTIAL_MAX_AGE`] in the destination open as `root`.
pub(crate) fn maybe_expire(shared: &Arc<Shared>, dest: &Path, root: &OwnedFd) {
    let removed = expire_partials(shared, root, PARTIAL_MAX_AGE);
    if removed > 0 {
        tracing::info!(
            "removed {removed} partial file(s) older than {} from {}",
            humantime::format_duration(PARTIAL_MAX_AGE),
            dest.display()
        );
    }
    expire_records(shared, PARTIAL_MAX_AGE);
}

/// Partial files not written for `max_age` and not in use by a transfer of this node;
/// returns how many went.
fn expire_partials(shared: &Shared, root: &OwnedFd, max_age: Duration) -> usize {
    // Never created here: no partial folder, nothing to expire.
    if kind_at(root.as_fd(), PARTIAL_DIR).is_none() {
        return 0;
    }
    let Ok(partials) = open_dir(root.as_fd(), PARTIAL_DIR, None) else {
        return 0;
    };
    let Ok(mut dir) = rustix::fs::Dir::read_from(&partials) else {
        return 0;
    };
    let cutoff = SystemTime::now().checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff = cutoff
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut old = Vec::new();
    while let Some(Ok(entry)) = dir.read() {
        let Ok(name) = entry.file_name().to_str() else { continue };
        let Some(key) = name.strip_suffix(".part") else { continue };
        let Ok(st) = rustix::fs::statat(partials.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_mtime < cutoff {
            old.push((key.to_string(), name.to_string()));
        }
    }
    let in_use = lock(&shared.transfers.partials);
    let mut removed = 0;
    for (key, name) in old {
        if !in_use.contains(&key) && unlinkat(partials.as_fd(), name.as_str(), AtFlags::empty()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Resume records of folders not used for `max_age`, and of their renamed files.
fn expire_records(shared: &Shared, max_age: Duration) {
    let cutoff = unix_now().saturating_sub(max_age.as_secs()) as i64;
    let db = shared.store.lock();
    let result = db
        .execute("DELETE FROM transfer_groups WHERE updated < ?1", params![cutoff])
        .and_then(|_| {
            db.execute(
                "DELETE FROM transfer_renamed WHERE group_key NOT IN (SELECT key FROM transfer_groups)",
                [],
            )
        });
    if let Err(e) = result {
        tracing::warn!("cannot expire old resume records: {e}");
    }
}
