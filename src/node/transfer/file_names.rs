//! Names that arrive from the network, and where received files may land.
//!
//! A peer chooses the names of the files it pushes to us, so every name is
//! hostile until checked: it could climb out of the download folder (`..`,
//! absolute paths, drive prefixes), smuggle terminal escape sequences into our
//! output, disguise an extension with a bidi override, or name a Windows
//! device. The rules are the same on every platform so that a name accepted on
//! Linux is also safe when the same code runs on Windows, and vice versa.
//!
//! Where a checked name lands is decided by folder handle: `dirs` walks and creates the folders,
//! `free_name_at` picks a free name in the folder a file is then placed in.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::limits::{MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_PATH_BYTES};
use crate::text::is_hostile;

/// How many numbered candidates `free_name_by` tries before falling back to a time-based suffix.
const MAX_NUMBERED_CANDIDATES: u32 = 100_000;

/// How much of a hostile name is shown in an error message; enough to recognise it, not enough
/// to flood the terminal with a 4 KiB name.
const SHOWN_CHARS: usize = 80;

/// Why a name from a peer was refused. The `String`s hold the name exactly as received (so
/// tests and callers can compare it); `Display` neutralises it before printing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("refused name \"\": it is empty")]
    Empty,
    #[error("refused name \"{}\": absolute paths and drive prefixes are not allowed", shown(.0))]
    Absolute(String),
    #[error("refused name \"{}\": parent-directory components are not allowed", shown(.0))]
    ParentDir(String),
    #[error(
        "refused name \"{}\": control, bidirectional and invisible characters are not allowed",
        shown(.0)
    )]
    ControlChar(String),
    #[error("refused name \"{}\": it uses a device name reserved by Windows", shown(.0))]
    Reserved(String),
    #[error("refused name \"{}\": {len} bytes is over the {max}-byte limit", shown(.name))]
    TooLong { name: String, len: usize, max: usize },
    #[error("refused name \"{}\": {depth} levels deep is over the limit of {max}", shown(.name))]
    TooDeep { name: String, depth: usize, max: usize },
    #[error("refused name \"{}\": {reason}", shown(.name))]
    InvalidComponent { name: String, reason: &'static str },
}

/// A hostile name made safe and short enough for a one-line error message.
fn shown(name: &str) -> String {
    crate::text::shown(name, SHOWN_CHARS)
}

/// What is wrong with one component, before we know which name to blame in the message
/// (the component itself for `check_component`, the whole path for `check_relative`).
enum Problem {
    Empty,
    TooLong(usize),
    ParentDir,
    ControlChar,
    Reserved,
    Invalid(&'static str),
}

impl Problem {
    fn into_error(self, name: &str) -> NameError {
        let name = name.to_owned();
        match self {
            Problem::Empty => NameError::Empty,
            Problem::TooLong(len) => NameError::TooLong {
                name,
                len,
                max: MAX_COMPONENT_BYTES,
            },
            Problem::ParentDir => NameError::ParentDir(name),
            Problem::ControlChar => NameError::ControlChar(name),
            Problem::Reserved => NameError::Reserved(name),
            Problem::Invalid(reason) => NameError::InvalidComponent { name, reason },
        }
    }
}

fn component_problem(c: &str) -> Option<Problem> {
    if c.is_empty() {
        return Some(Problem::Empty);
    }
    if c.len() > MAX_COMPONENT_BYTES {
        return Some(Problem::TooLong(c.len()));
    }
    if c == ".." {
        return Some(Problem::ParentDir);
    }
    if c == "." {
        return Some(Problem::Invalid("\".\" components are not allowed"));
    }
    // Before the separator checks, so NUL and escapes are reported as what they are.
    if c.chars().any(is_hostile) {
        return Some(Problem::ControlChar);
    }
    if c.contains('/') {
        return Some(Problem::Invalid("'/' is not allowed inside a name"));
    }
    if c.contains('\\') {
        // Windows would treat the backslash as a separator, so "a\..\b" is a traversal
        // attempt and deserves to be called one.
        if c.split('\\').any(|part| part == "..") {
            return Some(Problem::ParentDir);
        }
        return Some(Problem::Invalid("backslashes are not allowed"));
    }
    if c.contains(':') {
        // Drive prefixes ("C:") and NTFS alternate data streams ("a:stream") both use ':'.
        return Some(Problem::Invalid("':' is not allowed"));
    }
    if c.starts_with(char::is_whitespace) || c.ends_with(char::is_whitespace) {
        // Windows silently strips trailing spaces, so "a.exe " would become "a.exe"; leading
        // whitespace mostly serves to make two names look alike.
        return Some(Problem::Invalid("leading or trailing whitespace is not allowed"));
    }
    if c.ends_with('.') {
        // Windows silently strips trailing dots as well.
        return Some(Problem::Invalid("a trailing dot is not allowed"));
    }
    if is_windows_device_name(c) {
        return Some(Problem::Reserved);
    }
    None
}

/// Windows opens a device instead of a file for these names, whatever the extension
/// ("nul.txt" is NUL) and ignoring spaces before the extension ("CON .txt").
fn is_windows_device_name(c: &str) -> bool {
    let stem = c.split('.').next().unwrap_or(c).trim_end_matches(' ');
    const PLAIN: [&str; 6] = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];
    if PLAIN.iter().any(|d| stem.eq_ignore_ascii_case(d)) {
        return true;
    }
    let mut chars = stem.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let rest = chars.as_str();
    (prefix.eq_ignore_ascii_case("COM") || prefix.eq_ignore_ascii_case("LPT"))
        && matches!(rest, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
}

/// Validate one path component from a peer and return it unchanged if safe.
pub fn check_component(name: &str) -> Result<&str, NameError> {
    match component_problem(name) {
        Some(problem) => Err(problem.into_error(name)),
        None => Ok(name),
    }
}

fn has_drive_prefix(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Validate a whole relative path "a/b/c.txt" from a peer into a relative PathBuf.
///
/// Errors name the whole path, since that is what the user needs to recognise.
pub fn check_relative(path: &str) -> Result<PathBuf, NameError> {
    check_relative_str(path)?;
    // Its '/'-separated parts are exactly its components: none is empty, ".", or "..".
    Ok(PathBuf::from(path))
}

/// [`check_relative`] without building the path: what a manifest's validation calls for each
/// of up to 100,000 names.
pub fn check_relative_str(path: &str) -> Result<(), NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(NameError::TooLong {
            name: path.to_owned(),
            len: path.len(),
            max: MAX_PATH_BYTES,
        });
    }
    if path.starts_with(['/', '\\']) || has_drive_prefix(path) {
        return Err(NameError::Absolute(path.to_owned()));
    }
    let depth = path.split('/').count();
    if depth > MAX_DEPTH {
        return Err(NameError::TooDeep {
            name: path.to_owned(),
            depth,
            max: MAX_DEPTH,
        });
    }
    for c in path.split('/') {
        if c.is_empty() {
            return Err(NameError::InvalidComponent {
                name: path.to_owned(),
                reason: "empty components (\"a//b\" or a trailing '/') are not allowed",
            });
        }
        if let Some(problem) = component_problem(c) {
            return Err(problem.into_error(path));
        }
    }
    Ok(())
}

/// Split `name` into the part that gets the " (n)" counter and the extension that follows it.
///
/// Only the last extension counts ("v1.2.3 notes.txt" -> "v1.2.3 notes (1).txt"), except that a
/// ".tar" before it stays with it ("archive.tar.gz" -> "archive (1).tar.gz"). Leading dots
/// belong to the stem, so ".bashrc" has no extension. A "last extension" with whitespace in it,
/// or longer than 16 bytes, is prose rather than an extension ("Notes. Final version").
fn split_extension(name: &str) -> (&str, &str) {
    let lead = name.len() - name.trim_start_matches('.').len();
    let Some(dot) = name[lead..].rfind('.').map(|d| lead + d) else {
        return (name, "");
    };
    let ext = &name[dot + 1..];
    if ext.is_empty() || ext.len() > 16 || ext.contains(char::is_whitespace) {
        return (name, "");
    }
    let mut cut = dot;
    if let Some(prev) = name[lead..dot].rfind('.').map(|d| lead + d)
        && name[prev + 1..dot].eq_ignore_ascii_case("tar")
    {
        cut = prev;
    }
    name.split_at(cut)
}

/// Longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Assemble stem + suffix + extension within MAX_COMPONENT_BYTES, shortening the stem only.
fn fit(stem: &str, ext: &str, suffix: &str) -> String {
    // An extension that leaves less than a few characters for the stem is treated as part of
    // the stem, so there is always something left to shorten.
    const MIN_STEM_ROOM: usize = 16;
    let (stem, ext): (Cow<'_, str>, &str) = if suffix.len() + ext.len() + MIN_STEM_ROOM > MAX_COMPONENT_BYTES {
        (Cow::Owned(format!("{stem}{ext}")), "")
    } else {
        (Cow::Borrowed(stem), ext)
    };
    let room = MAX_COMPONENT_BYTES.saturating_sub(suffix.len() + ext.len());
    format!("{}{suffix}{ext}", truncate_to(&stem, room))
}

/// First free name in the folder open as `dir` for `name`: "report.pdf", then "report (1).pdf",
/// "report (2).pdf"… A candidate is taken if anything is at it, a dangling link included (asked
/// of the handle, so the answer is about the folder the file is then placed in by the same
/// handle, whatever happens to its path). The result never exceeds `MAX_COMPONENT_BYTES`;
/// `name` is expected to have passed `check_component` already.
///
/// A hint, not a reservation: the file is created exclusively, and a name taken meanwhile is
/// picked again. A candidate whose existence cannot be checked is offered as free, so that the
/// creation reports the real error.
#[cfg(unix)]
pub(crate) fn free_name_at(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> String {
    use rustix::fs::{AtFlags, statat};
    free_name_by(name, |candidate| statat(dir, candidate, AtFlags::SYMLINK_NOFOLLOW).is_err())
}

/// The first candidate for `name` that `is_free` accepts, in the order `free_name_at` tries
/// them.
pub(crate) fn free_name_by(name: &str, is_free: impl Fn(&str) -> bool) -> String {
    let (stem, ext) = split_extension(name);
    let first = fit(stem, ext, "");
    if is_free(&first) {
        return first;
    }
    for n in 1..=MAX_NUMBERED_CANDIDATES {
        let candidate = fit(stem, ext, &format!(" ({n})"));
        if is_free(&candidate) {
            return candidate;
        }
    }
    // Only a predicate that refuses everything gets here; don't loop forever, hand back
    // something that is almost certainly unused and let create_new have the last word.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    fit(stem, ext, &format!(" ({nanos:x}-{})", std::process::id()))
}

/// The top-level name of a manifest path.
pub(crate) fn top_of(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// The hidden folder of partial files in a download folder: no received name may start with it.
pub(crate) const PARTIAL_DIR: &str = ".lanyard-partial";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::printable;
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::fs;
    use std::path::Path;

    /// `free_name_at` in the folder at `d`, as placing asks it.
    fn free_in(d: &Path, name: &str) -> String {
        use std::os::fd::AsFd;
        free_name_at(super::super::dirs::open_root(d).unwrap().as_fd(), name)
    }

    fn refused(name: &str) -> NameError {
        check_relative(name).expect_err(name)
    }

    #[test]
    fn hostile_paths_are_refused() {
        let catalogue = [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "\\\\server\\share",
            "C:\\x",
            "c:x",
            "a\\..\\b",
            "CON",
            "nul.txt",
            "com1",
            "x\u{1b}[2J",
            "ok\u{202e}fdp.exe",
            "a\0b",
            "",
            ".",
            "..",
            "a//b",
            "a/",
            "trailing.",
            "trailing ",
            " leading",
            "dir/trailing./x",
            "a:stream",
            "x/C:",
            "bell\u{7}",
            "del\u{7f}",
            "csi\u{9b}2J",
            "lri\u{2066}x",
            "tab\tname",
            "new\nline",
        ];
        for name in catalogue {
            assert!(check_relative(name).is_err(), "accepted {name:?}");
            // Every hostile name must also be refused as a single component.
            assert!(check_component(name).is_err(), "component accepted {name:?}");
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(refused("../x"), NameError::ParentDir("../x".into()));
        assert_eq!(refused("a/../../x"), NameError::ParentDir("a/../../x".into()));
        assert_eq!(refused("a\\..\\b"), NameError::ParentDir("a\\..\\b".into()));
        assert_eq!(refused(".."), NameError::ParentDir("..".into()));
        assert_eq!(refused("/etc/passwd"), NameError::Absolute("/etc/passwd".into()));
        assert_eq!(refused("\\\\server\\share"), NameError::Absolute("\\\\server\\share".into()));
        assert_eq!(refused("C:\\x"), NameError::Absolute("C:\\x".into()));
        assert_eq!(refused("c:x"), NameError::Absolute("c:x".into()));
        assert_eq!(refused("CON"), NameError::Reserved("CON".into()));
        assert_eq!(refused("nul.txt"), NameError::Reserved("nul.txt".into()));
        assert_eq!(refused("com1"), NameError::Reserved("com1".into()));
        assert_eq!(refused("docs/Lpt9.tar.gz"), NameError::Reserved("docs/Lpt9.tar.gz".into()));
        assert_eq!(refused("x\u{1b}[2J"), NameError::ControlChar("x\u{1b}[2J".into()));
        assert_eq!(refused("ok\u{202e}fdp.exe"), NameError::ControlChar("ok\u{202e}fdp.exe".into()));
        assert_eq!(refused("a\0b"), NameError::ControlChar("a\0b".into()));
        assert_eq!(refused(""), NameError::Empty);
        assert_eq!(check_component(""), Err(NameError::Empty));
        for name in [".", "a//b", "trailing.", "trailing ", "ab:c", "x/a:b", "a\\b", "x/"] {
            assert!(
                matches!(refused(name), NameError::InvalidComponent { .. }),
                "{name:?}: {:?}",
                refused(name)
            );
        }
    }

    #[test]
    fn windows_device_names_in_all_spellings() {
        for name in [
            "con",
            "Con",
            "PRN",
            "aux",
            "NUL",
            "nul.txt",
            "NUL.tar.gz",
            "CON .txt",
            "COM1",
            "com9",
            "COM0",
            "lpt1",
            "LPT5.log",
            "COM¹",
            "lpt³.txt",
            "CONIN$",
            "conout$",
        ] {
            assert_eq!(check_component(name), Err(NameError::Reserved(name.into())), "{name:?}");
        }
        // Merely starting like a device name is fine.
        for name in ["console", "CONFIG.SYS", "com10", "lpt", "nullable.rs", "auxiliary", "com"] {
            assert_eq!(check_component(name), Ok(name));
        }
    }

    #[test]
    fn ordinary_and_unicode_names_are_fine() {
        for name in [
            "résumé.pdf",
            "日本語.txt",
            "emoji 🎉.png",
            ".bashrc",
            "a b c",
            "archive.tar.gz",
            "...x",
            "-rf",
            "Ünïcödé — dash",
            "x".repeat(MAX_COMPONENT_BYTES).as_str(),
        ] {
            assert_eq!(check_component(name), Ok(name), "{name:?}");
        }
        assert_eq!(
            check_relative("photos/2024/日本語.txt").unwrap(),
            Path::new("photos").join("2024").join("日本語.txt")
        );
        assert_eq!(check_relative("résumé.pdf").unwrap(), PathBuf::from("résumé.pdf"));
    }

    #[test]
    fn length_limits() {
        let long = "x".repeat(300);
        assert_eq!(
            check_component(&long),
            Err(NameError::TooLong {
                name: long.clone(),
                len: 300,
                max: MAX_COMPONENT_BYTES
            })
        );
        assert!(matches!(refused(&format!("a/{long}")), NameError::TooLong { len: 300, .. }));
        // 255 bytes of multi-byte characters is fine, one more byte is not.
        let wide = "é".repeat(127) + "x";
        assert_eq!(wide.len(), 255);
        assert!(check_component(&wide).is_ok());
        assert!(check_component(&(wide + "x")).is_err());

        let components = vec!["y".repeat(200); 25];
        let too_long = components.join("/");
        assert!(too_long.len() > MAX_PATH_BYTES);
        assert!(matches!(refused(&too_long), NameError::TooLong { max: MAX_PATH_BYTES, .. }));
    }

    #[test]
    fn depth_limit() {
        let ok = vec!["d"; MAX_DEPTH].join("/");
        assert!(check_relative(&ok).is_ok());
        let deep = vec!["d"; 100].join("/");
        assert_eq!(
            refused(&deep),
            NameError::TooDeep {
                name: deep.clone(),
                depth: 100,
                max: MAX_DEPTH
            }
        );
    }

    #[test]
    fn error_messages_are_one_safe_line() {
        let hostile = ["x\u{1b}[2J", "ok\u{202e}fdp.exe", "a\0b", "new\nline/..", "../\u{9b}x", "CON\u{1b}"];
        for name in hostile {
            let msg = refused(name).to_string();
            assert!(crate::text::is_clean(&msg), "{msg:?}");
            assert!(msg.starts_with("refused name \""), "{msg}");
        }
        assert_eq!(
            refused("a/../../x").to_string(),
            "refused name \"a/../../x\": parent-directory components are not allowed"
        );
        assert_eq!(
            refused("x\u{1b}[2J").to_string(),
            "refused name \"x\\u{1b}[2J\": control, bidirectional and invisible characters are not allowed"
        );
        // A huge name is cut short in the message.
        let msg = refused(&"z".repeat(5000)).to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains("5000 bytes"), "{msg}");
    }

    #[test]
    fn names_with_bidi_or_invisible_characters_are_refused() {
        // Each would make a name look like another one, or hide what it is.
        for name in [
            "report\u{200f}.pdf",
            "\u{200e}x",
            "ab\u{61c}c",
            "carol\u{200b}.txt",
            "a\u{200d}b",
            "\u{feff}bom",
            "soft\u{ad}hyphen",
            "x\u{2060}y",
            "\u{3164}",
            "fill\u{115f}er",
            "tag\u{e0041}",
            "sep\u{2028}arator",
            "para\u{2029}graph",
            "mongolian\u{180e}vs",
            "cgj\u{34f}",
            "d/inside\u{2066}folder/f",
        ] {
            let err = refused(name);
            assert_eq!(err, NameError::ControlChar(name.into()), "{name:?}");
            assert!(crate::text::is_clean(&err.to_string()), "{err}");
        }
        // Emoji with variation selectors and right-to-left letters are ordinary names.
        for name in ["\u{2764}\u{fe0f}.png", "עברית.txt", "a\u{a0}b"] {
            assert_eq!(check_component(name), Ok(name), "{name:?}");
        }
        assert!(matches!(printable("hello, wörld 🎉"), Cow::Borrowed(_)));
    }

    #[test]
    fn split_extension_rules() {
        assert_eq!(split_extension("report.pdf"), ("report", ".pdf"));
        assert_eq!(split_extension("archive.tar.gz"), ("archive", ".tar.gz"));
        assert_eq!(split_extension("archive.TAR.XZ"), ("archive", ".TAR.XZ"));
        assert_eq!(split_extension("v1.2.3 notes.txt"), ("v1.2.3 notes", ".txt"));
        assert_eq!(split_extension(".bashrc"), (".bashrc", ""));
        assert_eq!(split_extension(".config.json"), (".config", ".json"));
        assert_eq!(split_extension("..x"), ("..x", ""));
        assert_eq!(split_extension(".tar.gz"), (".tar", ".gz"));
        assert_eq!(split_extension("notes"), ("notes", ""));
        assert_eq!(split_extension("Notes. Final version"), ("Notes. Final version", ""));
        assert_eq!(split_extension("a."), ("a.", ""));
    }

    #[test]
    fn free_name_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();

        assert_eq!(free_in(d, "report.pdf"), "report.pdf");
        fs::write(d.join("report.pdf"), b"").unwrap();
        assert_eq!(free_in(d, "report.pdf"), "report (1).pdf");
        fs::write(d.join("report (1).pdf"), b"").unwrap();
        assert_eq!(free_in(d, "report.pdf"), "report (2).pdf");

        fs::write(d.join("archive.tar.gz"), b"").unwrap();
        assert_eq!(free_in(d, "archive.tar.gz"), "archive (1).tar.gz");
        fs::write(d.join(".bashrc"), b"").unwrap();
        assert_eq!(free_in(d, ".bashrc"), ".bashrc (1)");
        fs::create_dir(d.join("notes")).unwrap();
        assert_eq!(free_in(d, "notes"), "notes (1)");
        fs::write(d.join("app-1.2.3.zip"), b"").unwrap();
        assert_eq!(free_in(d, "app-1.2.3.zip"), "app-1.2.3 (1).zip");
    }

    #[cfg(unix)]
    #[test]
    fn free_name_counts_a_dangling_symlink_as_taken() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink(d.join("gone"), d.join("photo.jpg")).unwrap();
        assert!(!d.join("photo.jpg").exists());
        assert_eq!(free_in(d, "photo.jpg"), "photo (1).jpg");
    }

    #[test]
    fn free_names_are_tried_in_order_until_one_is_free() {
        let taken: HashSet<&str> = ["a.txt", "a (1).txt", "a (2).txt"].into();
        let asked = RefCell::new(Vec::new());
        let name = free_name_by("a.txt", |c| {
            asked.borrow_mut().push(c.to_owned());
            !taken.contains(c)
        });
        assert_eq!(name, "a (3).txt");
        assert_eq!(asked.into_inner(), ["a.txt", "a (1).txt", "a (2).txt", "a (3).txt"]);
    }

    #[test]
    fn free_name_gives_up_counting_on_a_predicate_that_refuses_everything() {
        let name = free_name_by("x.txt", |_| false);
        assert!(name.starts_with("x ("), "{name}");
        assert!(name.ends_with(").txt"), "{name}");
        assert!(check_component(&name).is_ok());
    }

    #[test]
    fn free_name_stays_within_the_component_limit() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // 83 three-byte chars + ".txt" is 253 bytes, so " (1)" forces a cut on a char boundary.
        let stem = "日".repeat(83);
        let name = format!("{stem}.txt");
        assert_eq!(name.len(), 253);
        fs::write(d.join(&name), b"").unwrap();
        let next = free_in(d, &name);
        assert!(next.len() <= MAX_COMPONENT_BYTES, "{}", next.len());
        assert!(next.ends_with(" (1).txt"), "{next}");
        assert!(check_component(&next).is_ok());
        fs::write(d.join(&next), b"").unwrap();

        // Keep going until double-digit counters to exercise further shortening.
        let mut last = next;
        for _ in 0..10 {
            last = free_in(d, &name);
            assert!(last.len() <= MAX_COMPONENT_BYTES);
            fs::write(d.join(&last), b"").unwrap();
        }
        assert!(last.ends_with(" (11).txt"), "{last}");

        // An extension that would leave no room for the stem is folded into it.
        let huge_ext = format!("a.{}", "e".repeat(16));
        assert_eq!(split_extension(&huge_ext).1.len(), 17);
        let long_ext = format!("a{}", ".e".repeat(127));
        assert_eq!(long_ext.len(), 255);
        let cand = fit("a", &long_ext[1..], " (1)");
        assert!(cand.len() <= MAX_COMPONENT_BYTES);
        assert!(cand.ends_with(" (1)"), "{cand}");

        // A name over the limit (not checked by the caller) is still brought under it.
        let over = "y".repeat(300);
        let out = free_in(d, &over);
        assert_eq!(out.len(), MAX_COMPONENT_BYTES);
    }
}
