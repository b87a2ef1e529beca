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
