//! Folders by handle. The download folder is opened once; every folder below it is reached, and
//! created, relative to an open handle of its parent and never through a symbolic link. A link
//! swapped in between a check and a write has no path walk left to redirect: what is written
//! lands in the folder the handle holds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, fsync, mkdirat, openat, statat};
use rustix::io::Errno;

use crate::text::printable;

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// Folders we create: the user's umask decides, as for any folder a program makes.
pub(crate) const NEW_DIR: Mode = Mode::from_raw_mode(0o777);

/// Open a folder the user chose (the download folder: trusted, and it may well be a link).
pub(crate) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// What sits at `name` in `dir`, without following a link.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &str) -> Option<(FileType, u64)> {
    let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some((FileType::from_raw_mode(st.st_mode), st.st_size as u64))
}

/// Open the folder `name` inside `parent`, creating it with `create` if it is missing (its new
/// entry made durable in `parent`). A link or a file in the way is refused.
pub(crate) fn open_dir(parent: BorrowedFd<'_>, name: &str, create: Option<Mode>) -> io::Result<OwnedFd> {
    if let Some(mode) = create {
        match mkdirat(parent, name, mode) {
            Ok(()) => fsync(parent)?,
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(e @ (Errno::LOOP | Errno::NOTDIR)) => Err(match kind_at(parent, name) {
            Some((FileType::Symlink, _)) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "refusing to go through the symbolic link \"{}\": it could lead outside the download folder",
                    printable(name)
                ),
            ),
            Some(_) => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("a file is in the way of the folder \"{}\"", printable(name)),
            ),
            None => e.into(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The folder `rel` below `root`, one component at a time, creating what is missing when
/// `create` is set. An empty `rel` is `root` itself.
pub(crate) fn walk<'a>(root: BorrowedFd<'_>, rel: impl IntoIterator<Item = &'a str>, create: bool) -> io::Result<OwnedFd> {
    let mut dir = root.try_clone_to_owned()?;
    for name in rel {
        dir = open_dir(dir.as_fd(), name, create.then_some(NEW_DIR))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walking_creates_folders_and_refuses_links_and_files() {
        let outside = tempfile::tempdir().unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        let root = open_root(root_dir.path()).unwrap();
        walk(root.as_fd(), ["a", "b"], true).unwrap();
        assert!(root_dir.path().join("a/b").is_dir());
        // Already there: opened, not an error.
        walk(root.as_fd(), ["a", "b"], true).unwrap();
        // Not there and not to be created.
        assert_eq!(walk(root.as_fd(), ["x"], false).unwrap_err().kind(), io::ErrorKind::NotFound);

        std::os::unix::fs::symlink(outside.path(), root_dir.path().join("a/link")).unwrap();
        let err = walk(root.as_fd(), ["a", "link", "sub"], true).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!outside.path().join("sub").exists());

        fs::write(root_dir.path().join("f"), b"file").unwrap();
        let err = walk(root.as_fd(), ["f", "sub"], true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
    }

    #[test]
    fn a_handle_keeps_its_folder_when_a_link_replaces_the_path() {
        let outside = tempfile::tempdir().unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        let root = open_root(root_dir.path()).unwrap();
        let sub = walk(root.as_fd(), ["sub"], true).unwrap();
        // Someone moves the folder away and plants a link to elsewhere under its name.
        fs::rename(root_dir.path().join("sub"), root_dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root_dir.path().join("sub")).unwrap();
        let f = openat(
            sub.as_fd(),
            "x",
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        drop(f);
        assert!(root_dir.path().join("moved/x").exists());
        assert!(!outside.path().join("x").exists());
    }
}
