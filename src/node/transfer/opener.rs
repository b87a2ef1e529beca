//! Opening the files of an offer to read them (to hash, to send), folder by folder, confined
//! to the shares they were offered from.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::text::io_reason;

/// Opens files to be sent relative to their folder, kept open while the files that follow are
/// in it too: a tree's files come folder by folder, and resolving every whole path again cost
/// a tenth of a small-file send's CPU. One per thread that reads sources.
#[derive(Default)]
pub(crate) struct Opener {
    dir: Option<(PathBuf, OwnedFd)>,
}

impl Opener {
    /// Open a file to be sent. For a share, the open file must still lie inside one of its
    /// roots: asked of the open descriptor, so no link swapped in along the path can change the
    /// answer.
    pub fn open(&mut self, path: &Path, confine: Option<&[PathBuf]>) -> std::result::Result<File, String> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return confined(File::open(path).map_err(open_failed)?, path, confine);
        };
        if self.dir.as_ref().is_none_or(|(p, _)| p != parent) {
            // The folder as the path names it now (following links, as opening the whole path
            // would); a folder that cannot be opened is reported by the file's own open.
            self.dir = rustix::fs::open(parent, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .ok()
                .map(|fd| (parent.to_path_buf(), fd));
        }
        let file = match &self.dir {
            Some((_, dir)) => rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map(File::from)
                .map_err(|e| open_failed(e.into()))?,
            None => File::open(path).map_err(open_failed)?,
        };
        confined(file, path, confine)
    }
}

fn open_failed(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it vanished after it was offered".to_string(),
        _ => format!("cannot read it: {}", io_reason(&e)),
    }
}

/// `file`, opened from `path`, if it lies inside one of `confine`'s roots (when given).
fn confined(file: File, path: &Path, confine: Option<&[PathBuf]>) -> std::result::Result<File, String> {
    if let Some(roots) = confine {
        let real = opened_path(&file, path).map_err(|e| format!("cannot read it: {e}"))?;
        if !roots.iter().any(|root| real.starts_with(root)) {
            return Err("it is no longer inside the share".to_string());
        }
    }
    Ok(file)
}

#[cfg(target_os = "linux")]
fn opened_path(file: &File, _path: &Path) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &File, path: &Path) -> std::io::Result<PathBuf> {
    path.canonicalize()
}
