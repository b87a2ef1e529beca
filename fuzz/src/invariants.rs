//! What must hold for any input a peer can send. The fuzz targets (`fuzz/fuzz_targets/`) and the
//! property tests (`tests/props.rs`, which includes this file) both call these, so each
//! invariant is written once and checked by both means. A broken invariant panics.
//!
//! The name rules are restated here independently of `file_names.rs` (`safe_component`), so the
//! checks compare two statements of the rule instead of trusting the one under test.

use std::fmt::Debug;
use std::fs;
use std::path::{Component, Path, PathBuf};

use lanyard::fuzzing;
use lanyard::fuzzing::net::frame::{self, FrameError, LEN_BYTES};
use lanyard::fuzzing::net::wire::{
    CHAT_ID_LEN, ControlMsg, Hello, MAX_CHAT_TEXT, MAX_HINT_ADDR_BYTES, MAX_HINT_ADDRS, MAX_NICK_BYTES, MAX_PEER_HINTS, MAX_SOFTWARE_BYTES,
    valid_chat_id,
};
use lanyard::fuzzing::share::{Resolved, ShareError, Shares};
use lanyard::fuzzing::transfer::file_names::{MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_PATH_BYTES, check_component, check_relative};
use lanyard::fuzzing::transfer::wire::{Item, MAX_REASON_BYTES, TransferMsg, bounded};
use lanyard::limits::CHAT_REFUSAL_BYTES;
use lanyard::text::{is_clean, is_hostile};
use serde::Serialize;
use serde::de::DeserializeOwned;

// ---- frames and messages ----

/// A header's length is taken exactly when within the bound, and refused otherwise.
pub fn frame_header(header: [u8; LEN_BYTES], max: usize) {
    let announced = u32::from_be_bytes(header) as usize;
    match frame::body_len(header, max) {
        Ok(len) => assert!(len == announced && len <= max, "{len} of {announced} under {max}"),
        Err(FrameError::TooLarge { len, max: m }) => assert!(len == announced && len > max && m == max),
        Err(e) => panic!("a header can only be too large, not {e}"),
    }
}

/// `msg` encodes into one frame that announces its own length, decodes back to itself, and
/// encodes again to the same bytes.
pub fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(msg: &T) {
    let mut buf = Vec::new();
    frame::encode(msg, &mut buf).expect("a decoded message encodes");
    let header: [u8; LEN_BYTES] = buf[..LEN_BYTES].try_into().expect("a header");
    assert_eq!(u32::from_be_bytes(header) as usize, buf.len() - LEN_BYTES);
    let back: T = frame::decode(&buf[LEN_BYTES..]).expect("an encoded message decodes");
    assert_eq!(&back, msg);
    let mut again = Vec::new();
    frame::encode(&back, &mut again).expect("encodes again");
    assert_eq!(again, buf, "encoding is not a fixpoint");
}

/// Whatever a body holds: either refused, or a message that round-trips.
pub fn body<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) -> Option<T> {
    let msg = frame::decode::<T>(bytes).ok()?;
    round_trip(&msg);
    Some(msg)
}

/// A control message that passes `validate` respects every limit of `net/wire.rs`, and one
/// that breaks a limit is refused.
pub fn control_msg(msg: &ControlMsg) {
    round_trip(msg);
    let within = match msg {
        ControlMsg::Chat { id, text, .. } => chat_id(id) && text.len() <= MAX_CHAT_TEXT,
        ControlMsg::ChatAck { id } => chat_id(id),
        ControlMsg::ChatRefused { id, reason } => chat_id(id) && reason.len() <= CHAT_REFUSAL_BYTES,
        ControlMsg::Nick { nick } => !nick.is_empty() && nick.len() <= MAX_NICK_BYTES,
        ControlMsg::Peers { peers } => {
            peers.len() <= MAX_PEER_HINTS
                && peers
                    .iter()
                    .all(|p| p.addrs.len() <= MAX_HINT_ADDRS && p.addrs.iter().all(|a| a.len() <= MAX_HINT_ADDR_BYTES))
        }
        ControlMsg::Vouch { transfer, digest } => transfer.len() <= 64 && digest.len() == 32,
        ControlMsg::VouchRequest { transfer } => transfer.len() <= 64,
        ControlMsg::Cancelled { transfer, .. } => transfer.len() <= 64,
        ControlMsg::Verdict {
            transfer, digest, reason, ..
        } => transfer.len() <= 64 && digest.len() == 32 && reason.as_ref().is_none_or(|r| r.len() <= MAX_REASON_BYTES),
        ControlMsg::Ping | ControlMsg::Bye { .. } | ControlMsg::Unknown => true,
    };
    match msg.validate() {
        Ok(()) => assert!(within, "validated but over a limit: {}", summary(msg)),
        Err(why) => {
            assert!(!within, "refused ({why}) although within every limit: {}", summary(msg));
            one_clean_line(&why);
        }
    }
}

/// A chat id, restated: 128 bits as lowercase hex.
fn chat_id(id: &str) -> bool {
    let ok = id.len() == CHAT_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    assert_eq!(ok, valid_chat_id(id), "{id:?}");
    ok
}

/// A hello passes `validate` exactly when its lengths are within the limits.
pub fn hello(h: &Hello) {
    round_trip(h);
    let within =
        !h.nick.is_empty() && h.nick.len() <= MAX_NICK_BYTES && h.host.len() <= MAX_NICK_BYTES && h.software.len() <= MAX_SOFTWARE_BYTES;
    assert_eq!(h.validate().is_ok(), within, "{h:?}");
}

/// A transfer message round-trips; the names and reasons in it are checked as the receiver
/// checks them.
pub fn transfer_msg(msg: &TransferMsg) {
    round_trip(msg);
    match msg {
        TransferMsg::Items { items } => offer(items),
        TransferMsg::FileOk { saved_as: Some(name), .. } => relative_name(name),
        TransferMsg::Reject { text: Some(reason), .. }
        | TransferMsg::Cancel { text: Some(reason), .. }
        | TransferMsg::FileAbort { text: Some(reason), .. }
        | TransferMsg::FileFailed { text: Some(reason), .. }
        | TransferMsg::Error { text: Some(reason), .. } => {
            let b = bounded(reason);
            assert!(b.len() <= MAX_REASON_BYTES && reason.starts_with(&b));
            assert!(reason.len() > MAX_REASON_BYTES || b == *reason);
            assert!(b.len() + 4 > MAX_REASON_BYTES.min(reason.len()), "cut more than a char");
        }
        _ => {}
    }
}

/// Debug of a message, short enough for a panic message.
fn summary<T: Debug>(msg: &T) -> String {
    let s = format!("{msg:?}");
    s.chars().take(300).collect()
}

/// Text we may print or send back: one line, nothing hostile.
fn one_clean_line(s: &str) {
    assert!(is_clean(s) && !s.contains('\n'), "{s:?}");
}

// ---- names from peers ----

/// Windows device names, restated: the part before the first dot, without trailing spaces.
fn windows_device(c: &str) -> bool {
    let stem = c.split('.').next().unwrap_or(c).trim_end_matches(' ').to_ascii_uppercase();
    let numbered = |p: &str| {
        stem.strip_prefix(p)
            .is_some_and(|n| matches!(n, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"))
    };
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$") || numbered("COM") || numbered("LPT")
}

/// The rule for one component of a received name, restated: safe on Linux, macOS and Windows.
pub fn safe_component(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_COMPONENT_BYTES
        && c != "."
        && c != ".."
        && !c.contains(['/', '\\', ':'])
        && !c.chars().any(is_hostile)
        && !c.starts_with(char::is_whitespace)
        && !c.ends_with(char::is_whitespace)
        && !c.ends_with('.')
        && !windows_device(c)
}

/// A name a peer sends for a file: accepted exactly when every component is safe and the whole
/// is within the limits; once accepted it is relative, unchanged, and stays under any root.
pub fn relative_name(path: &str) {
    let comps: Vec<&str> = path.split('/').collect();
    let safe = path.len() <= MAX_PATH_BYTES && comps.len() <= MAX_DEPTH && comps.iter().all(|c| safe_component(c));
    match check_relative(path) {
        Ok(rel) => {
            assert!(safe, "accepted an unsafe name {path:?}");
            assert!(rel.is_relative() && rel.to_str() == Some(path), "{path:?} became {rel:?}");
            assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{rel:?}");
            assert_eq!(rel.components().count(), comps.len());
            assert!(stays_under(Path::new("/downloads"), &rel), "{rel:?}");
        }
        Err(e) => {
            assert!(!safe, "refused a safe name {path:?}: {e}");
            let msg = e.to_string();
            one_clean_line(&msg);
            // The name is cut to 80 characters, each escaped to at most 10.
            assert!(msg.len() < 1200, "error of {} bytes", msg.len());
        }
    }
    // One component: the same answer either way.
    if !path.contains('/') {
        assert_eq!(check_component(path).is_ok(), check_relative(path).is_ok(), "{path:?}");
    }
}

/// `root.join(rel)`, with `..` taken lexically, is still inside `root`.
fn stays_under(root: &Path, rel: &Path) -> bool {
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    out.starts_with(root) && out != root
}

/// A fresh name for an accepted component is accepted too, within the length limit, and a
/// taken candidate is never handed out: by the candidates' order (the first `taken_first` it
/// asks about are taken) and in the folder `dir` itself, asked of its handle.
pub fn free_name(dir: &Path, name: &str, taken_first: u32) {
    if check_component(name).is_err() {
        return;
    }
    let asked = std::cell::RefCell::new(Vec::new());
    let picked = fuzzing::free_name_by(name, |c| {
        let mut asked = asked.borrow_mut();
        asked.push(c.to_owned());
        asked.len() > taken_first as usize
    });
    let asked = asked.into_inner();
    assert!(picked.len() <= MAX_COMPONENT_BYTES, "{} bytes", picked.len());
    assert!(check_component(&picked).is_ok(), "free_name_by({name:?}) gave {picked:?}");
    if taken_first == 0 {
        assert_eq!(picked, name, "a free name was changed");
    } else {
        assert!(
            asked[..taken_first as usize].iter().all(|c| *c != picked),
            "handed out a taken name"
        );
    }
    let placed = fuzzing::free_name_in(dir, name).expect("the folder opens");
    assert!(placed.len() <= MAX_COMPONENT_BYTES, "{} bytes", placed.len());
    assert!(check_component(&placed).is_ok(), "free_name_in({name:?}) gave {placed:?}");
    assert!(
        fs::symlink_metadata(dir.join(&placed)).is_err(),
        "handed out {placed:?}, which is there"
    );
    if fs::symlink_metadata(dir.join(name)).is_err() {
        assert_eq!(placed, name, "a free name was changed");
    }
}

/// The folder an accepted path's components lead to, walked by handle below `root` (and with
/// `create`, made), is exactly `root` joined with them: nothing on the way went through a link.
/// A refusal is one clean line.
pub fn walk(root: &Path, path: &str, create: bool) {
    let Ok(rel) = check_relative(path) else {
        return;
    };
    let comps: Vec<&str> = rel.iter().map(|c| c.to_str().expect("checked names are UTF-8")).collect();
    match fuzzing::walk_below(root, &comps, create) {
        Ok(dir) => {
            use std::os::fd::AsRawFd;
            let at = fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).expect("the handle's path");
            let want = fs::canonicalize(root).expect("the root").join(&rel);
            assert_eq!(at, want, "the walk of {path:?} ended elsewhere");
        }
        Err(e) => one_clean_line(&e.to_string()),
    }
}

/// A manifest is accepted exactly when every path is an accepted name, none is offered twice,
/// no file is also a folder of another path, and nothing claims the partial-files folder; an
/// accepted one comes back as the components of each path, unchanged.
pub fn offer(items: &[Item]) {
    let names_ok = items.iter().all(|i| check_relative(&i.path).is_ok());
    let mut paths: Vec<&str> = items.iter().map(|i| i.path.as_str()).collect();
    paths.sort_unstable();
    let unique = paths.windows(2).all(|w| w[0] != w[1]);
    let files: std::collections::HashSet<&str> = items.iter().filter(|i| !i.dir).map(|i| i.path.as_str()).collect();
    let no_file_as_folder = items
        .iter()
        .all(|i| i.path.match_indices('/').all(|(at, _)| !files.contains(&i.path[..at])));
    let no_partial = items.iter().all(|i| i.path.split('/').next() != Some(fuzzing::PARTIAL_DIR));
    let should = names_ok && unique && no_file_as_folder && no_partial;
    match fuzzing::validate_offer(items) {
        Ok(comps) => {
            assert!(should, "accepted {}", summary(&items));
            assert_eq!(comps.len(), items.len());
            for (c, i) in comps.iter().zip(items) {
                assert_eq!(c.join("/"), i.path);
                assert!(c.iter().all(|c| safe_component(c)));
                assert!(stays_under(Path::new("/downloads"), &c.iter().collect::<PathBuf>()));
            }
        }
        Err(why) => {
            assert!(!should, "refused ({why}) {}", summary(&items));
            one_clean_line(&why);
        }
    }
}

// ---- shares ----

/// A shared tree with traps: links inside and out, a cycle, a dangling link, a second share of
/// the same base name. Kept alive by the returned `TempDir`.
pub struct ShareFixture {
    pub _tmp: tempfile::TempDir,
    pub shares: Shares,
    /// Canonical roots by share name.
    pub roots: Vec<(String, PathBuf)>,
    /// Canonical folder outside every share, holding a secret.
    pub outside: PathBuf,
}

pub fn share_fixture() -> ShareFixture {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let t = tmp.path();
    let docs = t.join("docs");
    let other = t.join("other/docs");
    let secret = t.join("secret");
    for d in [docs.join("sub/deeper"), docs.join("empty"), other.clone(), secret.clone()] {
        fs::create_dir_all(d).expect("mkdir");
    }
    for (f, body) in [
        (docs.join("a.txt"), "abc"),
        (docs.join("sub/c.txt"), "cc"),
        (docs.join("sub/deeper/d.txt"), "dddd"),
        (docs.join("CON"), "device?"),
        (docs.join("two words.txt"), ""),
        (other.join("b.txt"), "b"),
        (secret.join("key"), "s3cret"),
    ] {
        fs::write(f, body).expect("write");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let links: [(&str, PathBuf); 8] = [
            ("../secret", docs.join("out")),
            ("/etc", docs.join("etc")),
            ("sub", docs.join("in")),
            ("..", docs.join("sub/up")),
            ("../..", docs.join("sub/up2")),
            ("missing", docs.join("dangling")),
            ("loop", docs.join("loop")),
            ("../../secret/key", docs.join("sub/key")),
        ];
        for (target, at) in links {
            symlink(target, at).expect("symlink");
        }
    }
    let shares = Shares::new(&[docs, other]).expect("shares");
    let roots = shares.iter().map(|(n, p)| (n.to_owned(), p.to_path_buf())).collect();
    let outside = fs::canonicalize(&secret).expect("canonical");
    ShareFixture {
        _tmp: tmp,
        shares,
        roots,
        outside,
    }
}

/// A request resolves inside its share or not at all; errors name only what was asked.
pub fn share_request(fx: &ShareFixture, path: &str) {
    match fx.shares.resolve(path) {
        Ok(Resolved::Root) => assert!(path.is_empty() || path == "/", "{path:?} is the root"),
        Ok(Resolved::Path { share, full }) => {
            let root = &fx.roots.iter().find(|(n, _)| *n == share).expect("a known share").1;
            assert!(full.starts_with(root), "{path:?} escaped to {full:?}");
            assert!(!full.starts_with(&fx.outside), "{path:?} reached {full:?}");
            assert_eq!(fs::canonicalize(&full).ok().as_ref(), Some(&full), "not canonical");
            let comps: Vec<&str> = path.trim_end_matches('/').split('/').collect();
            assert!(
                comps.iter().all(|c| !matches!(*c, "" | "." | "..") && !c.contains('\\')),
                "{path:?}"
            );
            assert!(!path.chars().any(is_hostile));
            // What is listed can be fetched, and stays inside too.
            if let Ok(entries) = fx.shares.list(path) {
                for e in entries {
                    assert!(!e.name.is_empty() && !e.name.contains(['/', '\\']) && is_clean(&e.name), "{e:?}");
                    let child = format!("{}/{}", path.trim_end_matches('/'), e.name);
                    match fx.shares.resolve(&child) {
                        Ok(Resolved::Path { full, .. }) => assert!(full.starts_with(root)),
                        other => panic!("listed {child:?} does not resolve: {other:?}"),
                    }
                }
            }
            if let Ok(walk) = fx.shares.walk_limited(path, 200) {
                assert!(
                    walk.files
                        .iter()
                        .all(|f| f.full.starts_with(root) && !f.full.starts_with(&fx.outside))
                );
            }
        }
        Err(e) => {
            let msg = e.to_string();
            one_clean_line(&msg);
            // The path is cut to 120 characters, each escaped to at most 10.
            assert!(msg.len() < 1500, "error of {} bytes", msg.len());
            let local = fx.outside.to_string_lossy();
            assert!(path.contains(&*local) || !msg.contains(&*local), "leaked a local path: {msg}");
            if let ShareError::OutsideShare(p) | ShareError::NotFound(p) | ShareError::NotShared(p) = &e {
                assert!(path.contains(p.as_str()) || p.is_empty());
            }
        }
    }
}
