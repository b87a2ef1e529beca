//! The house keeps its layers (ARCHITECTURE.md): each top-level module imports only the ones
//! below it, and the faces only the node's public API.

use std::collections::BTreeSet;
use std::path::Path;

/// What each module may import from the crate.
const ALLOWED: &[(&str, &[&str])] = &[
    ("text", &[]),
    // Budgets: imports nothing, and every layer may read them.
    ("limits", &[]),
    // Named tasks and waiting for them: imports nothing.
    ("tasks", &[]),
    // Why things end: imports nothing, shared by the wire and the node.
    ("reason", &[]),
    ("identity", &["limits", "text"]),
    ("net", &["identity", "limits", "reason", "tasks", "text"]),
    ("store", &["identity", "limits", "text"]),
    ("node", &["identity", "limits", "net", "reason", "store", "tasks", "text"]),
    ("config", &["limits", "node", "text"]),
    ("cli", &["config", "node", "text", "ui"]),
    ("ui", &["config", "node", "text"]),
    ("main", &["config", "cli", "text"]),
    ("fuzzing", &["identity", "net", "node", "reason", "tasks"]),
];

fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules `text` names as `crate::x` or `lanyard::x`, anywhere in the file: a test
/// module that reaches upward is as much a smell as code that does.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "lanyard::"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // Doc links and comments count too: a comment that points upward is a smell.
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let module = module_of(&file, &src);
        if module == "lib" {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(m, _)| *m == module)
            .unwrap_or_else(|| panic!("{module} is not in the layer table of tests/layers.rs"))
            .1;
        let text = std::fs::read_to_string(&file).unwrap();
        for import in imports(&text) {
            if import != module && !allowed.contains(&import.as_str()) {
                bad.push(format!("{} imports {import}", file.display()));
            }
        }
    }
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

/// The parts of `node` a face may name: the face API and what it re-exports, the control
/// socket, the event stream and the snapshot.
const FACE_API: &[&str] = &["api", "control", "events", "snapshot"];

/// Every `node::NAME` in `text` whose NAME is not one of `FACE_API`, with its line.
fn node_internals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices("node::") {
            // `node::` inside another name (`inode::`) is not the module.
            let before = line[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[i + "node::".len()..];
            // `node::{…}` names items of `node` itself: never the face API.
            let name: String = if rest.starts_with('{') {
                "{".into()
            } else {
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
            };
            if !FACE_API.contains(&name.as_str()) {
                out.push(format!("line {}: node::{name}", n + 1));
            }
        }
    }
    out
}

#[test]
fn faces_stay_off_the_node_internals() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src/main.rs")];
    for face in ["src/cli", "src/ui"] {
        rust_files(&root.join(face), &mut files);
    }
    let mut bad = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for internal in node_internals(&text) {
            bad.push(format!("{} {internal}", file.display()));
        }
        for internal in ["Shared", "shared."] {
            if text.contains(internal) {
                bad.push(format!("{} uses {internal}", file.display()));
            }
        }
    }
    assert!(bad.is_empty(), "faces reach into the node:\n{}", bad.join("\n"));
}

#[test]
fn the_internals_check_sees_what_it_forbids() {
    assert_eq!(node_internals("use crate::node::api::{Reply, Request};"), Vec::<String>::new());
    assert_eq!(node_internals("crate::node::control::Client"), Vec::<String>::new());
    assert_eq!(node_internals("use crate::node::transfer::wire::Item;"), ["line 1: node::transfer"]);
    assert_eq!(node_internals("x\nuse crate::node::{PeerId, Event};"), ["line 2: node::{"]);
    assert_eq!(node_internals("let n = crate::node::conn::dial;"), ["line 1: node::conn"]);
    assert_eq!(node_internals("inode::x"), Vec::<String>::new());
}

/// The names `text` gives in backticks, each reduced to its last path segment without `.rs`
/// or a trailing `/`: `transfer/held.rs`, `held` and [`held`] all name `held`.
fn named_in(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|span| {
            let span = span.trim_end_matches('/').trim_end_matches(".rs");
            let last = span.rsplit(['/', ':']).next().unwrap_or(span);
            last.to_string()
        })
        .collect()
}

/// The `//!` lines of a file.
fn module_doc(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n")
}

/// ARCHITECTURE.md's code map, one entry per top-level item (`src/node/`, `src/text.rs`, ...)
/// with everything under it.
fn code_map(architecture: &str) -> Vec<(String, String)> {
    let start = architecture.find("## Code map").expect("ARCHITECTURE.md has a code map");
    let map = &architecture[start..];
    let map = &map[..map[1..].find("\n## ").map_or(map.len(), |i| i + 1)];
    let mut out: Vec<(String, String)> = Vec::new();
    for line in map.lines() {
        if let Some(rest) = line.strip_prefix("- `") {
            let head = rest.split('`').next().unwrap_or_default().to_string();
            out.push((head, String::new()));
        }
        if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// What is missing for one file under src/: its name in its parent module's `//!` doc, and in
/// ARCHITECTURE.md under the code map's entry for its top-level module.
fn unlisted(rel: &str, parent_doc: Option<&str>, map: &[(String, String)]) -> Vec<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let name = match parts.as_slice() {
        [.., dir, "mod.rs"] => dir.to_string(),
        [.., file] => file.trim_end_matches(".rs").to_string(),
        [] => return Vec::new(),
    };
    let mut missing = Vec::new();
    if let Some(doc) = parent_doc
        && !named_in(doc).contains(&name)
    {
        missing.push(format!("src/{rel} is not named in its module's //! doc"));
    }
    // A module's entry is `src/x/` or `src/x.rs`, whichever way its files lie.
    let module = parts[0].trim_end_matches(".rs");
    let top = if parts.len() == 1 {
        format!("src/{}", parts[0])
    } else {
        format!("src/{module}/")
    };
    let entry = map
        .iter()
        .find(|(head, _)| [format!("src/{module}/"), format!("src/{module}.rs")].contains(head));
    match entry {
        Some((_, body)) if parts.len() == 1 || named_in(body).contains(&name) => {}
        Some(_) => missing.push(format!("src/{rel} is not named under `{top}` in ARCHITECTURE.md's code map")),
        None => missing.push(format!("`{top}` has no entry in ARCHITECTURE.md's code map")),
    }
    missing
}

/// Every file under src/ is named in its module's `//!` doc (files right under src/ in lib.rs's)
/// and in ARCHITECTURE.md's code map, so neither list drifts from the tree.
#[test]
fn every_source_file_is_on_the_maps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let map = code_map(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut missing = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if rel == "lib.rs" {
            continue;
        }
        // The module this file belongs to: `dir/mod.rs` or `dir.rs` beside it (for a `mod.rs`,
        // one folder up); lib.rs for what sits right under src/ (main.rs is the binary's root).
        let dir = match rel.strip_suffix("/mod.rs") {
            Some(module) => Path::new(module).parent().unwrap().to_path_buf(),
            None => Path::new(&rel).parent().unwrap().to_path_buf(),
        };
        let parent_doc = if rel == "main.rs" {
            None
        } else if dir.as_os_str().is_empty() {
            Some(module_doc(&src.join("lib.rs")))
        } else {
            let beside = src.join(&dir).with_extension("rs");
            Some(module_doc(&if beside.exists() { beside } else { src.join(&dir).join("mod.rs") }))
        };
        missing.extend(unlisted(&rel, parent_doc.as_deref(), &map));
    }
    assert!(missing.is_empty(), "files missing from the maps:\n{}", missing.join("\n"));
}

#[test]
fn the_map_check_sees_a_missing_file() {
    let map = code_map("## Code map\n\n- `src/node/` — meaning.\n  - `known.rs` — remembered peers.\n\n## Invariants\n");
    assert!(unlisted("node/known.rs", Some("//! Its files: `known`."), &map).is_empty());
    assert_eq!(unlisted("node/nick.rs", Some("//! `known`"), &map).len(), 2);
    assert_eq!(
        unlisted("tasks.rs", Some("//! - `tasks`: named tasks."), &map),
        ["`src/tasks.rs` has no entry in ARCHITECTURE.md's code map"]
    );
}
