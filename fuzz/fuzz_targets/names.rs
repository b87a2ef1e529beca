//! Names from peers: accepted exactly when safe, never leading out of the download folder (also
//! through links already there: the folders are walked by handle as a receive walks them), and
//! the free names chosen for them are accepted too.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use lanyard_fuzz::invariants;
use libfuzzer_sys::fuzz_target;

/// A download folder with a link out, a link inside a folder, and names already taken.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &ROOT
        .get_or_init(|| {
            let tmp = tempfile::tempdir().expect("temp dir");
            let root = tmp.path().join("Downloads");
            fs::create_dir_all(root.join("dir/sub")).expect("mkdir");
            for f in ["file", "x.txt", "x (1).txt", "a"] {
                fs::write(root.join(f), b"").expect("write");
            }
            std::os::unix::fs::symlink(tmp.path(), root.join("link")).expect("symlink");
            std::os::unix::fs::symlink("/etc", root.join("dir/etc")).expect("symlink");
            (tmp, root)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Some((&taken, rest)) = data.split_first() else {
        return;
    };
    let name = String::from_utf8_lossy(rest);
    invariants::relative_name(&name);
    invariants::walk(root(), &name, false);
    invariants::free_name(root(), &name, u32::from(taken % 4));
});
