//! Pull end to end: list and get from a peer's shares, in-process on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};

use common::{PATIENCE as WAIT, start_node};
use lanyard::node::api::EntryKind;
use lanyard::node::api::TransferError;
use lanyard::node::api::{NodeConfig, NodeHandle};

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

struct Pair {
    sharer: NodeHandle,
    client: NodeHandle,
    share: PathBuf,
    outside: PathBuf,
    _dirs: Vec<tempfile::TempDir>,
}

/// A sharer sharing "pub" (with a file, a tree, and links pointing in and out), and a client.
async fn pair() -> Pair {
    let root = tempfile::tempdir().unwrap();
    let share = root.path().join("pub");
    let outside = root.path().join("secret.txt");
    write(&outside, b"secret");
    write(&share.join("hello.txt"), b"hello");
    write(&share.join("tree/a/deep.bin"), &pattern(3 << 20, 1));
    write(&share.join("tree/b.txt"), b"b");
    std::fs::create_dir_all(share.join("tree/empty")).unwrap();
    std::os::unix::fs::symlink(&outside, share.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(share.join("hello.txt"), share.join("inside-link.txt")).unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let mut c1 = NodeConfig::local("sharer", d1.path().join("data"));
    c1.shares = vec![share.clone()];
    let sharer = NodeHandle::start(c1).await.unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let c2 = NodeConfig::local("client", d2.path().join("data"));
    let client = NodeHandle::start(c2).await.unwrap();
    Pair {
        sharer,
        client,
        share,
        outside,
        _dirs: vec![root, d1, d2],
    }
}

#[tokio::test]
async fn list_shows_the_shares_and_nothing_outside() {
    let p = pair().await;
    let id = p.client.resolve(&p.sharer.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let root = p.client.list(&id, "").await.unwrap();
    assert_eq!(root.len(), 1);
    assert_eq!((root[0].name.as_str(), root[0].kind), ("pub", EntryKind::Dir));
    let entries = p.client.list(&id, "pub").await.unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["tree", "hello.txt", "inside-link.txt"], "the link out is not listed");
    let hello = entries.iter().find(|e| e.name == "hello.txt").unwrap();
    assert_eq!((hello.kind, hello.size), (EntryKind::File, 5));
    assert!(hello.modified.is_some());
    for bad in ["pub/../", "../etc", "/etc", "pub/leak.txt", "nope", "pub/tree/../../x"] {
        let err = p.client.list(&id, bad).await.unwrap_err();
        assert!(matches!(err, TransferError::Failed(..)), "{bad}: {err:?}");
        assert!(!err.to_string().contains(&*p.share.to_string_lossy()), "no local path leaks: {err}");
    }
    let _ = &p.outside;
}

#[tokio::test]
async fn get_pulls_files_and_folders_verified() {
    let p = pair().await;
    let to = tempfile::tempdir().unwrap();
    let id = p.client.resolve(&p.sharer.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let paths = vec!["pub/hello.txt".to_string(), "pub/tree".to_string()];
    let outcome = p
        .client
        .get(&id, &paths, Some(to.path().to_path_buf()))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(outcome.all_ok(), "{:?}", outcome.failed);
    assert_eq!(outcome.files, 3);
    assert_eq!(std::fs::read(to.path().join("hello.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(to.path().join("tree/a/deep.bin")).unwrap(), pattern(3 << 20, 1));
    assert!(to.path().join("tree/empty").is_dir());
}

#[tokio::test]
async fn get_refuses_anything_outside_a_share() {
    let p = pair().await;
    let to = tempfile::tempdir().unwrap();
    let id = p.client.resolve(&p.sharer.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    for bad in ["pub/leak.txt", "../secret.txt", "/etc/passwd", "pub/../secret.txt", "pub/nope"] {
        let task = p.client.get(&id, &[bad.to_string()], Some(to.path().to_path_buf())).await.unwrap();
        let err = task.wait().await.unwrap_err();
        assert!(matches!(err, TransferError::Failed(..)), "{bad}: {err:?}");
    }
    assert_eq!(
        std::fs::read_dir(to.path())
            .unwrap()
            .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count(),
        0
    );
}

#[tokio::test]
async fn get_resumes_after_a_cut() {
    let p = pair().await;
    let to = tempfile::tempdir().unwrap();
    let id = p.client.resolve(&p.sharer.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let paths = vec!["pub/tree/a/deep.bin".to_string()];
    p.sharer.inject_disconnect_after(1 << 20);
    let err = p
        .client
        .get(&id, &paths, Some(to.path().to_path_buf()))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::PeerLost(..)), "{err:?}");
    assert!(!to.path().join("deep.bin").exists());
    let outcome = p
        .client
        .get(&id, &paths, Some(to.path().to_path_buf()))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(outcome.all_ok());
    assert!(outcome.resumed >= 1 << 20, "resumed {} bytes", outcome.resumed);
    assert_eq!(std::fs::read(to.path().join("deep.bin")).unwrap(), pattern(3 << 20, 1));
}

#[tokio::test]
async fn a_node_without_shares_says_so() {
    let d1 = tempfile::tempdir().unwrap();
    let a = NodeHandle::start(NodeConfig::local("a", d1.path().join("a"))).await.unwrap();
    let b = NodeHandle::start(NodeConfig::local("b", d1.path().join("b"))).await.unwrap();
    let id = a.resolve(&b.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let err = a.list(&id, "").await.unwrap_err();
    assert!(err.to_string().contains("nothing is shared"), "{err}");
}

#[tokio::test]
async fn a_peer_back_on_another_port_is_listed_at_its_new_address() {
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join("pub/hello.txt"), b"hello");
    let sharer_config = |port: u16| {
        let mut c = NodeConfig::local("sharer", root.path().join("sharer"));
        c.shares = vec![root.path().join("pub")];
        c.listen = Some(([127, 0, 0, 1], port).into());
        c
    };
    let sharer = NodeHandle::start(sharer_config(0)).await.unwrap();
    let client = NodeHandle::start(NodeConfig::local("client", root.path().join("client")))
        .await
        .unwrap();
    let old = sharer.listen_addr().unwrap().to_string();
    let id = client.resolve(&old, WAIT).await.unwrap();
    client.shutdown().await;
    sharer.shutdown().await;
    drop((client, sharer));

    // The sharer comes back on another port; the client (restarted) still remembers the old one
    // and is told the new one by --peer. Asking by nick at once must not dial the stale address.
    let sharer = start_node(sharer_config(0)).await;
    let mut c = NodeConfig::local("client", root.path().join("client"));
    c.manual_peers = vec![sharer.listen_addr().unwrap().to_string()];
    let client = start_node(c).await;
    assert_eq!(client.resolve("sharer", WAIT).await.unwrap(), id);
    let entries = client.list(&id, "pub").await.expect("listed at the new address");
    assert!(entries.iter().any(|e| e.name == "hello.txt"), "{entries:?}");
}

#[tokio::test]
async fn a_huge_folder_is_listed_in_part_and_the_rest_counted() {
    use lanyard::limits::LISTING_KEPT;
    let p = pair().await;
    let big = p.share.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..LISTING_KEPT + 7 {
        std::fs::File::create(big.join(format!("{i:06}.txt"))).unwrap();
    }
    let id = p.client.resolve(&p.sharer.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let listing = p.client.list_counted(&id, "pub/big").await.unwrap();
    assert_eq!(listing.entries.len(), LISTING_KEPT, "the node keeps a bounded number");
    assert_eq!(listing.omitted, 7, "and counts the rest");
    assert_eq!(listing.entries[0].name, "000000.txt", "the first ones, in the peer's order");
}
