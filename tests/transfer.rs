//! Push and pull end to end between in-process nodes on 127.0.0.1 (no multicast).

mod common;

use std::path::PathBuf;

use common::{FileNode as Node, PATIENCE as WAIT, file_node as node, link, partials, pattern, start_node, tmpfs, until, wait_for, write};
use lanyard::node::api::NodeConfig;
use lanyard::node::api::{Direction, TransferError, TransferState};
use lanyard::node::events::Event;

async fn accepting(nick: &str) -> Node {
    node(nick, |c| c.accept_all = true).await
}

#[tokio::test]
async fn push_files_and_folder_trees_verified() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("projet été");
    write(&tree.join("notes/日本語 🎉.txt"), "héllo".as_bytes());
    write(&tree.join("empty.bin"), b"");
    write(&tree.join("big.bin"), &pattern(3 << 20, 1));
    std::fs::create_dir_all(tree.join("nothing/inside")).unwrap();
    let single = src.path().join("report.pdf");
    write(&single, &pattern(1000, 2));
    let empty = src.path().join("zero");
    write(&empty, b"");

    let bob = link(&a, &b).await;
    let task = a.handle.send(&bob, &[tree.clone(), single.clone(), empty.clone()]).await.unwrap();
    let outcome = task.wait().await.unwrap();
    assert!(outcome.all_ok(), "{:?}", outcome.failed);
    assert_eq!(outcome.files, 5);
    assert!(outcome.saved_as.is_empty(), "all saved as offered: {:?}", outcome.saved_as);

    let got = b.downloads.join("projet été");
    assert_eq!(std::fs::read(got.join("notes/日本語 🎉.txt")).unwrap(), "héllo".as_bytes());
    assert_eq!(std::fs::read(got.join("empty.bin")).unwrap(), b"");
    assert_eq!(std::fs::read(got.join("big.bin")).unwrap(), pattern(3 << 20, 1));
    assert!(got.join("nothing/inside").is_dir());
    assert_eq!(std::fs::read(b.downloads.join("report.pdf")).unwrap(), pattern(1000, 2));
    assert_eq!(std::fs::read(b.downloads.join("zero")).unwrap(), b"");
    assert!(partials(&b.downloads).is_empty(), "no partial file is left behind");
    assert!(!b.downloads.join(".lanyard-partial").exists(), "nor an empty partial folder");
    // Modes as a browser download gets them: 0666 / 0777 less the umask.
    let umask = umask();
    let mode = |p: &std::path::Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
    for file in [got.join("big.bin"), got.join("empty.bin"), b.downloads.join("report.pdf")] {
        assert_eq!(mode(&file), 0o666 & !umask, "{}", file.display());
    }
    assert_eq!(mode(&got.join("notes")), 0o777 & !umask);
}

/// This process's umask, as the kernel reports it.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:")).expect("a Umask line");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

#[tokio::test]
async fn existing_files_are_never_overwritten() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("report.tar.gz");
    write(&file, b"new");
    let folder = src.path().join("proj");
    write(&folder.join("a.txt"), b"a");
    write(&b.downloads.join("report.tar.gz"), b"old");
    write(&b.downloads.join("proj/a.txt"), b"old a");
    let bob = link(&a, &b).await;
    for n in 1..=2 {
        let outcome = a
            .handle
            .send(&bob, &[file.clone(), folder.clone()])
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert!(outcome.all_ok());
        // The sender learns the names chosen, once per top-level item.
        assert_eq!(
            outcome.saved_as,
            vec![
                ("report.tar.gz".to_string(), format!("report ({n}).tar.gz")),
                ("proj".to_string(), format!("proj ({n})"))
            ]
        );
    }
    assert_eq!(std::fs::read(b.downloads.join("report.tar.gz")).unwrap(), b"old");
    assert_eq!(std::fs::read(b.downloads.join("report (1).tar.gz")).unwrap(), b"new");
    assert_eq!(std::fs::read(b.downloads.join("report (2).tar.gz")).unwrap(), b"new");
    assert_eq!(std::fs::read(b.downloads.join("proj/a.txt")).unwrap(), b"old a");
    assert_eq!(std::fs::read(b.downloads.join("proj (1)/a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(b.downloads.join("proj (2)/a.txt")).unwrap(), b"a");
}

#[tokio::test]
async fn offers_are_rejected_without_accept_all_or_an_answer() {
    let a = node("ada", |_| {}).await;
    let b = node("bob", |_| {}).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("x.txt");
    write(&file, b"x");
    let bob = link(&a, &b).await;
    let err = a
        .handle
        .send(&bob, std::slice::from_ref(&file))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TransferError::Rejected(lanyard::node::api::Reason::Rejected, "rejected".into())
    );
    assert!(!b.downloads.join("x.txt").exists());

    // With a face that answers: no, then yes-always (trust), then no question at all.
    let _answerer = b.handle.answer_offers();
    let mut events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = wait_for(&mut events, |e| match e {
        Event::Offer(o) if o.files == 1 && o.names == ["x.txt"] => Some(o.transfer.clone()),
        _ => None,
    })
    .await;
    assert!(b.handle.answer_offer(&id, false, false).await);
    assert!(matches!(task.wait().await, Err(TransferError::Rejected(..))));

    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = wait_for(&mut events, |e| match e {
        Event::Offer(o) => Some(o.transfer.clone()),
        _ => None,
    })
    .await;
    assert!(b.handle.answer_offer(&id, true, true).await);
    assert!(task.wait().await.unwrap().all_ok());
    assert!(
        a.handle
            .send(&bob, std::slice::from_ref(&file))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap()
            .all_ok(),
        "trusted now"
    );
    assert!(b.downloads.join("x (1).txt").exists());
}

#[tokio::test]
async fn several_transfers_at_once_in_both_directions() {
    let a = accepting("ada").await;
    let b = accepting("bob").await;
    let c = accepting("cy").await;
    let src = tempfile::tempdir().unwrap();
    let one = src.path().join("one.bin");
    let two = src.path().join("two.bin");
    write(&one, &pattern(2 << 20, 3));
    write(&two, &pattern(1 << 20, 4));
    let bob = link(&a, &b).await;
    let cy = link(&a, &c).await;
    let ada = link(&b, &a).await;
    let t1 = a.handle.send(&bob, std::slice::from_ref(&one)).await.unwrap();
    let t2 = a.handle.send(&bob, std::slice::from_ref(&two)).await.unwrap();
    let t3 = b.handle.send(&ada, std::slice::from_ref(&two)).await.unwrap();
    let t4 = a.handle.send(&cy, std::slice::from_ref(&one)).await.unwrap();
    let (r1, r2, r3, r4) = tokio::join!(t1.wait(), t2.wait(), t3.wait(), t4.wait());
    for r in [r1, r2, r3, r4] {
        assert!(r.unwrap().all_ok());
    }
    assert_eq!(std::fs::read(b.downloads.join("one.bin")).unwrap(), pattern(2 << 20, 3));
    assert_eq!(std::fs::read(b.downloads.join("two.bin")).unwrap(), pattern(1 << 20, 4));
    assert_eq!(std::fs::read(a.downloads.join("two.bin")).unwrap(), pattern(1 << 20, 4));
    assert_eq!(std::fs::read(c.downloads.join("one.bin")).unwrap(), pattern(2 << 20, 3));
}

/// A random cut point in [1, len), reported so a failure can be replayed.
fn cut_point(len: u64) -> u64 {
    let n = rand::random::<u64>() % (len - 1) + 1;
    eprintln!("cutting after {n} bytes");
    n
}

async fn resume_after_cut(cut_on_sender: bool) {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let len = 5 << 20;
    let file = src.path().join("movie.mp4");
    write(&file, &pattern(len, 5));
    let bob = link(&a, &b).await;
    let n = cut_point(len as u64);
    if cut_on_sender {
        a.handle.inject_disconnect_after(n);
    } else {
        b.handle.inject_disconnect_after(n);
    }
    let mut b_events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    let err = task.wait().await.unwrap_err();
    // The side whose own hook cut the connection only knows it stopped; the other lost its peer.
    assert!(matches!(err, TransferError::PeerLost(..) | TransferError::Failed(..)), "{err:?}");
    let message = wait_for(&mut b_events, |e| match e {
        Event::Error { transfer, message, .. } if *transfer == id => Some(message.clone()),
        _ => None,
    })
    .await;
    eprintln!("receiver: {message}");
    assert!(!b.downloads.join("movie.mp4").exists(), "nothing under the final name");
    let parts = partials(&b.downloads);
    assert_eq!(parts.len(), 1, "the partial file is kept for a resume");
    let held = std::fs::metadata(&parts[0]).unwrap().len();
    // The receiver may have had the whole body (cut after the last segment, before the hash).
    assert!(held > 0 && held <= len as u64);
    // Each end says who went away and that sending again resumes, not a socket error.
    if cut_on_sender {
        assert_eq!(
            message,
            format!(
                "ada stopped sending (connection lost); the {} received so far are kept — sending again resumes",
                lanyard::text::human_bytes(held)
            )
        );
    } else {
        assert_eq!(err.to_string(), "bob stopped receiving (connection lost); sending again resumes");
    }

    let mut events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    let first = wait_for(&mut events, |e| match e {
        Event::Progress(p) if p.transfer == id && p.direction == Direction::Receive => Some(p.clone()),
        _ => None,
    })
    .await;
    assert!(first.bytes >= held, "progress counts the {held} bytes held");
    let outcome = task.wait().await.unwrap();
    assert!(outcome.all_ok());
    assert_eq!(outcome.resumed, held, "the second attempt starts from the bytes held");
    assert_eq!(std::fs::read(b.downloads.join("movie.mp4")).unwrap(), pattern(len, 5));
    assert!(partials(&b.downloads).is_empty());
    assert!(!b.downloads.join(".lanyard-partial").exists());
}

#[tokio::test]
async fn push_resumes_after_the_sender_drops_mid_file() {
    resume_after_cut(true).await;
}

#[tokio::test]
async fn push_resumes_after_the_receiver_drops_mid_file() {
    resume_after_cut(false).await;
}

#[tokio::test]
async fn a_folder_resumes_into_the_same_folder_after_a_sender_restart() {
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("proj");
    write(&tree.join("1.bin"), &pattern(1 << 20, 6));
    write(&tree.join("2.bin"), &pattern(3 << 20, 7));
    write(&tree.join("3.bin"), &pattern(10, 8));
    let data = tempfile::tempdir().unwrap();
    let config = NodeConfig::local("ada", data.path().to_path_buf());
    let a = start_node(config.clone()).await;
    let bob = a.resolve(&b.handle.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    // 1.bin arrives whole, 2.bin is cut: the sender "crashes" and comes back.
    a.inject_disconnect_after(2 << 20);
    let outcome = a.send(&bob, std::slice::from_ref(&tree)).await.unwrap().wait().await;
    assert!(outcome.is_err());
    a.shutdown().await;
    drop(a);
    let a = start_node(config).await;
    let bob = a.resolve(&b.handle.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let outcome = a.send(&bob, std::slice::from_ref(&tree)).await.unwrap().wait().await.unwrap();
    assert!(outcome.all_ok(), "{:?}", outcome.failed);
    for (name, data) in [
        ("1.bin", pattern(1 << 20, 6)),
        ("2.bin", pattern(3 << 20, 7)),
        ("3.bin", pattern(10, 8)),
    ] {
        assert_eq!(std::fs::read(b.downloads.join("proj").join(name)).unwrap(), data);
    }
    assert!(!b.downloads.join("proj (1)").exists(), "the resumed folder keeps its first name");
    assert!(
        !b.downloads.join("proj/1 (1).bin").exists(),
        "1.bin was verified again, not copied again"
    );
    // Once complete, a new push of the same folder is a new copy.
    let outcome = a.send(&bob, std::slice::from_ref(&tree)).await.unwrap().wait().await.unwrap();
    assert!(outcome.all_ok());
    assert!(b.downloads.join("proj (1)/2.bin").exists());
}

#[tokio::test]
async fn a_resumed_folder_finds_a_file_placed_under_a_free_name() {
    let b = accepting("bob").await;
    let a = node("ada", |_| {}).await;
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    let files = [
        ("a.bin", pattern(10, 21)),
        ("m.bin", pattern(4 << 20, 22)),
        ("z.bin", b"0123456789".to_vec()),
        ("zz.bin", pattern(6 << 20, 23)),
    ];
    for (name, data) in &files {
        write(&tree.join(name), data);
    }
    let bob = link(&a, &b).await;
    let send = |cut: Option<u64>| {
        if let Some(bytes) = cut {
            a.handle.inject_disconnect_after(bytes);
        }
        let (a, bob, tree) = (a.handle.clone(), bob.clone(), tree.clone());
        async move { a.send(&bob, &[tree]).await.unwrap().wait().await }
    };
    // a.bin arrives (the folder is made), m.bin is cut.
    assert!(send(Some(1 << 20)).await.is_err());
    until("a.bin placed", || b.downloads.join("tree/a.bin").exists()).await;
    // Meanwhile someone puts their own z.bin, of the same size, into the folder.
    let theirs = b.downloads.join("tree/z.bin");
    write(&theirs, b"not theirs");
    // m.bin is completed, z.bin goes in under a free name, zz.bin is cut.
    assert!(send(Some(9 << 19)).await.is_err());
    until("z.bin placed", || b.downloads.join("tree/z (1).bin").exists()).await;
    assert_eq!(std::fs::read(b.downloads.join("tree/z (1).bin")).unwrap(), b"0123456789");
    // The last attempt finds z.bin where it went: verified, not sent again, and the file under
    // its name is not taken for it.
    let outcome = send(None).await.unwrap();
    assert!(outcome.all_ok(), "{:?}", outcome.failed);
    assert!(!b.downloads.join("tree/z (2).bin").exists(), "z.bin was not sent again");
    assert_eq!(std::fs::read(&theirs).unwrap(), b"not theirs");
    for (name, data) in files.iter().filter(|(n, _)| *n != "z.bin") {
        assert_eq!(&std::fs::read(b.downloads.join("tree").join(name)).unwrap(), data, "{name}");
    }
    assert!(!b.downloads.join("tree (1)").exists(), "the resumed folder keeps its first name");
}

async fn cancel_mid_file(from_sender: bool) {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, &pattern(4 << 20, 9));
    let bob = link(&a, &b).await;
    a.handle.inject_stall_after(1 << 20);
    let mut events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    wait_for(&mut events, |e| match e {
        Event::Progress(p) if p.transfer == id => Some(()),
        _ => None,
    })
    .await;
    if from_sender {
        assert!(a.handle.cancel_transfer(&id));
    } else {
        assert!(b.handle.cancel_transfer(&id), "the receiver knows the transfer by the same id");
    }
    let err = task.wait().await.unwrap_err();
    assert!(matches!(err, TransferError::Cancelled(..)), "{err:?}");
    let reason = wait_for(&mut events, |e| match e {
        Event::Cancelled { transfer, reason, .. } if *transfer == id => Some(reason.clone()),
        Event::Error { transfer, message, .. } if *transfer == id => panic!("receiver saw an error: {message}"),
        _ => None,
    })
    .await;
    assert!(!reason.is_empty());
    assert!(partials(&b.downloads).is_empty(), "cancel removes the partial data");
    assert!(!b.downloads.join(".lanyard-partial").exists(), "and the folder it was in");
    assert!(!b.downloads.join("big.bin").exists());
}

#[tokio::test]
async fn the_sender_can_cancel_mid_file() {
    cancel_mid_file(true).await;
}

#[tokio::test]
async fn the_receiver_can_cancel_mid_file() {
    cancel_mid_file(false).await;
}

#[tokio::test]
async fn a_source_that_changes_or_vanishes_fails_alone() {
    let a = node("ada", |_| {}).await;
    let b = node("bob", |_| {}).await;
    let _answerer = b.handle.answer_offers();
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("d");
    write(&tree.join("changes.txt"), b"before");
    write(&tree.join("keeps.txt"), b"same");
    write(&tree.join("vanishes.txt"), b"here");
    let bob = link(&a, &b).await;
    let mut events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&tree)).await.unwrap();
    let id = wait_for(&mut events, |e| match e {
        Event::Offer(o) => Some(o.transfer.clone()),
        _ => None,
    })
    .await;
    write(&tree.join("changes.txt"), b"after, and longer");
    std::fs::remove_file(tree.join("vanishes.txt")).unwrap();
    assert!(b.handle.answer_offer(&id, true, false).await);
    let outcome = task.wait().await.unwrap();
    assert_eq!(outcome.files, 1);
    let mut failed = outcome.failed.clone();
    failed.sort();
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0].0.ends_with("changes.txt") && failed[0].1.contains("changed"),
        "{failed:?}"
    );
    assert!(
        failed[1].0.ends_with("vanishes.txt") && failed[1].1.contains("vanished"),
        "{failed:?}"
    );
    assert_eq!(std::fs::read(b.downloads.join("d/keeps.txt")).unwrap(), b"same");
    assert!(!b.downloads.join("d/changes.txt").exists());
    assert!(partials(&b.downloads).is_empty());
}

#[tokio::test]
async fn a_vanished_peer_is_a_clear_error() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("f");
    write(&file, b"f");
    let bob = link(&a, &b).await;
    b.handle.shutdown().await;
    let err = a.handle.send(&bob, &[file]).await.unwrap().wait().await.unwrap_err();
    assert!(
        err.to_string().contains("cannot connect") || err.to_string().contains("bob stopped receiving (connection lost)"),
        "{err}"
    );
}

#[tokio::test]
async fn control_traffic_flows_while_a_transfer_is_stalled() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, &pattern(3 << 20, 11));
    let bob = link(&a, &b).await;
    a.handle.inject_stall_after(1 << 20);
    let mut b_events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    wait_for(&mut b_events, |e| match e {
        Event::Progress(p) if p.transfer == id => Some(()),
        _ => None,
    })
    .await;
    // The file is stuck mid-way on its own connection; the control connection is not.
    let mut a_events = a.handle.subscribe();
    b.handle.set_nick("robert").await.unwrap();
    let new = wait_for(&mut a_events, |e| match e {
        Event::PeerRenamed { new, .. } => Some(new.clone()),
        _ => None,
    })
    .await;
    assert_eq!(new, "robert");
    assert!(a.handle.cancel_transfer(&id));
    assert!(matches!(task.wait().await, Err(TransferError::Cancelled(..))));
}

/// Root only (a download dir on a read-only tmpfs): SKIP without, FAIL without in CI.
#[tokio::test]
async fn an_unwritable_download_dir_is_a_clear_error() {
    let Some(mnt) = tmpfs("an_unwritable_download_dir_is_a_clear_error", "size=1m,ro") else {
        return;
    };
    let a = node("ada", |_| {}).await;
    let b = node("bob", |c| {
        c.accept_all = true;
        c.download_dir = mnt.path().to_path_buf();
    })
    .await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("x.txt");
    write(&file, b"x");
    let bob = link(&a, &b).await;
    let err = a.handle.send(&bob, &[file]).await.unwrap().wait().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Read-only file system") && !msg.contains(&*mnt.path().to_string_lossy()),
        "{msg}"
    );
}

#[tokio::test]
async fn a_sender_can_cancel_an_offer_still_waiting_for_an_answer() {
    let a = node("ada", |_| {}).await;
    let b = node("bob", |_| {}).await;
    let _answerer = b.handle.answer_offers();
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("x.txt");
    write(&file, b"x");
    let bob = link(&a, &b).await;
    let mut events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = wait_for(&mut events, |e| match e {
        Event::Offer(o) => Some(o.transfer.clone()),
        _ => None,
    })
    .await;
    assert!(a.handle.cancel_transfer(&id));
    assert!(matches!(task.wait().await, Err(TransferError::Cancelled(..))));
    wait_for(&mut events, |e| match e {
        Event::Cancelled { transfer, .. } if *transfer == id => Some(()),
        _ => None,
    })
    .await;
    assert!(!b.handle.answer_offer(&id, true, false).await, "the offer is gone");
}

#[tokio::test]
async fn a_missing_local_path_is_named_before_anything_is_offered() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let bob = link(&a, &b).await;
    // An error from `send` itself: no transfer was started, so nothing reached bob.
    let err = a.handle.send(&bob, &[PathBuf::from("no/such/nope.pdf")]).await.err().unwrap();
    assert_eq!(format!("{err:#}"), "cannot send \"no/such/nope.pdf\": no such file or directory");
    assert!(!b.downloads.exists() || std::fs::read_dir(&b.downloads).unwrap().next().is_none());
}

#[tokio::test]
async fn the_partial_folder_goes_once_empty_and_stays_while_not() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("f.txt");
    write(&file, b"f");
    let bob = link(&a, &b).await;
    // Someone else's partial data (another node sharing this download dir, an older run).
    let stray = b.downloads.join(".lanyard-partial/someone-else.part");
    write(&stray, b"half");
    let send = || async {
        a.handle
            .send(&bob, std::slice::from_ref(&file))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap()
    };
    assert!(send().await.all_ok());
    assert_eq!(std::fs::read(&stray).unwrap(), b"half", "never touched");
    std::fs::remove_file(&stray).unwrap();
    assert!(send().await.all_ok());
    assert!(!b.downloads.join(".lanyard-partial").exists());
    assert!(b.downloads.join("f (1).txt").exists());
}

/// What `Event::Error` says of a transfer on this node.
async fn error_of(rx: &mut lanyard::node::events::Subscription) -> String {
    wait_for(rx, |e| match e {
        Event::Error { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn an_offer_that_does_not_fit_is_refused_with_the_reason_on_both_sides() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, &pattern(1 << 20, 3));
    let bob = link(&a, &b).await;
    // 1 MiB and the 64 MiB kept free do not fit in 32 MiB.
    b.handle.pretend_free_space(Some(32 << 20));
    let mut b_events = b.handle.subscribe();
    let err = a
        .handle
        .send(&bob, std::slice::from_ref(&file))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Rejected(..)), "{err:?}");
    let expected = "not enough disk space on bob: needs 1.00 MiB (and 64.00 MiB kept free), 32.00 MiB free";
    assert_eq!(err.reason(), lanyard::node::api::Reason::NoSpace);
    assert_eq!(err.to_string(), format!("rejected: not enough free space (bob: \"{expected}\")"));
    assert!(error_of(&mut b_events).await.contains(expected));
    assert!(!b.downloads.exists() || std::fs::read_dir(&b.downloads).unwrap().next().is_none());

    b.handle.pretend_free_space(Some(66 << 20));
    assert!(a.handle.send(&bob, &[file]).await.unwrap().wait().await.unwrap().all_ok());
}

/// Root only (a real tmpfs smaller than the offer): SKIP without, FAIL without in CI.
#[tokio::test]
async fn the_real_free_space_is_what_is_checked() {
    let Some(mnt) = tmpfs("the_real_free_space_is_what_is_checked", "size=8m") else {
        return;
    };
    let a = node("ada", |_| {}).await;
    let b = node("bob", |c| {
        c.accept_all = true;
        c.download_dir = mnt.path().join("in");
    })
    .await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("f.bin");
    write(&file, &pattern(4 << 20, 4));
    let bob = link(&a, &b).await;
    let err = a.handle.send(&bob, &[file]).await.unwrap().wait().await.unwrap_err();
    assert!(err.to_string().contains("not enough disk space on bob: needs 4.00 MiB"), "{err}");
}

/// Root only (a tiny tmpfs as the download dir): SKIP without, FAIL without in CI.
#[tokio::test]
async fn disk_full_fails_the_transfer_on_both_sides_and_the_node_carries_on() {
    let Some(mnt) = tmpfs("disk_full_fails_the_transfer_on_both_sides_and_the_node_carries_on", "size=2m") else {
        return;
    };
    let a = node("ada", |_| {}).await;
    let downloads = mnt.path().join("in");
    let b = node("bob", |c| {
        c.accept_all = true;
        c.download_dir = downloads.clone();
    })
    .await;
    // As if the space were there when the offer came, and gone by the time the bytes are.
    b.handle.pretend_free_space(Some(u64::MAX));
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("big.bin");
    write(&big, &pattern(4 << 20, 10));
    let bob = link(&a, &b).await;
    let mut b_events = b.handle.subscribe();
    let err = a.handle.send(&bob, &[big]).await.unwrap().wait().await.unwrap_err();
    assert_eq!(err.reason(), lanyard::node::api::Reason::DiskFull, "{err}");
    assert!(
        err.to_string()
            .starts_with("bob's disk is full (bob: \"disk full on bob: cannot write \"big.bin\""),
        "{err}"
    );
    let here = error_of(&mut b_events).await;
    assert!(here.starts_with("disk full on bob: cannot write \"big.bin\"; the "), "{here}");
    assert!(here.ends_with(" received are kept for a resume"), "{here}");
    // Kept for a resume; freeing its space lets the node take the next transfer.
    let kept = partials(&downloads);
    assert_eq!(kept.len(), 1);
    std::fs::remove_file(&kept[0]).unwrap();
    let small = src.path().join("small.txt");
    write(&small, b"fits");
    assert!(a.handle.send(&bob, &[small]).await.unwrap().wait().await.unwrap().all_ok());
    assert_eq!(std::fs::read(downloads.join("small.txt")).unwrap(), b"fits");
}

#[tokio::test]
async fn partials_nobody_resumed_expire_at_start_up() {
    let a = node("ada", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let config = || {
        let mut c = NodeConfig::local("bob", dir.path().join("data"));
        c.download_dir = downloads.clone();
        c.accept_all = true;
        c
    };
    let b = start_node(config()).await;
    let bob = a.handle.resolve(&b.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    // A folder cut mid-file: its partial file and its folder's resume record stay.
    let src = tempfile::tempdir().unwrap();
    write(&src.path().join("tree/a.bin"), &pattern(3 << 20, 5));
    a.handle.inject_disconnect_after(1 << 20);
    let tree = src.path().join("tree");
    let mut b_events = b.subscribe();
    assert!(
        a.handle
            .send(&bob, std::slice::from_ref(&tree))
            .await
            .unwrap()
            .wait()
            .await
            .is_err()
    );
    error_of(&mut b_events).await;
    b.shutdown().await;
    drop(b);
    let old = partials(&downloads);
    assert_eq!(old.len(), 1);

    // A day and more later (the clock moved back on them instead), and someone's fresh one.
    let two_days = std::time::Duration::from_secs(2 * 24 * 3600);
    let then = std::time::SystemTime::now() - two_days;
    std::fs::File::options()
        .write(true)
        .open(&old[0])
        .unwrap()
        .set_modified(then)
        .unwrap();
    let fresh = downloads.join(".lanyard-partial/fresh.part");
    write(&fresh, b"half");
    let db = dir.path().join("data").join(lanyard::store::DB_FILE);
    let groups = || -> i64 {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT count(*) FROM transfer_groups", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(groups(), 1);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE transfer_groups SET updated = updated - ?1", [two_days.as_secs() as i64])
        .unwrap();

    let b = start_node(config()).await;
    until("the old partial removed", || !old[0].exists()).await;
    until("the old resume record removed", || groups() == 0).await;
    assert_eq!(std::fs::read(&fresh).unwrap(), b"half", "a fresh partial stays");
    // Nothing to resume from: the folder comes again, whole, beside the old one.
    let bob = a.handle.resolve(&b.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let outcome = a.handle.send(&bob, &[tree]).await.unwrap().wait().await.unwrap();
    assert!(outcome.all_ok());
    assert_eq!(outcome.resumed, 0);
    assert_eq!(outcome.saved_as, vec![("tree".to_string(), "tree (1)".to_string())]);
}

#[tokio::test]
async fn both_rows_name_the_file_and_the_receive_says_where_it_was_saved() {
    let a = node("ada", |_| {}).await;
    let b = accepting("bob").await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, b"the file");
    write(&b.downloads.join("big.bin"), b"someone else's");
    let bob = link(&a, &b).await;
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    assert!(task.wait().await.unwrap().all_ok());
    let sent = a.handle.transfers().into_iter().find(|t| t.transfer == id).unwrap();
    assert_eq!((sent.name.as_str(), sent.via.as_deref()), ("big.bin", None));
    // The receiver's row ends done; its last state reaches the registry as the task ends.
    until("bob's row is done", || {
        b.handle
            .transfers()
            .iter()
            .any(|t| t.direction == Direction::Receive && t.state == TransferState::Done)
    })
    .await;
    let got = b
        .handle
        .transfers()
        .into_iter()
        .find(|t| t.direction == Direction::Receive)
        .unwrap();
    assert_eq!(got.name, "big.bin");
    assert_eq!(got.saved_as, Some(b.downloads.join("big (1).bin").display().to_string()));
}

/// A sender whose data goes bad before it is sealed (its disk, its memory, or on purpose): the
/// connection is authenticated, so the receiver's chunk check pins it on the sender. That file
/// ends at once, "bad data from carol" on both sides, never as a stall; the transfer goes on.
#[tokio::test]
async fn a_corrupted_chunk_from_a_direct_sender_is_bad_data_from_that_sender() {
    let ada = accepting("ada").await;
    let carol = accepting("carol").await;
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("image.bin");
    std::fs::write(&big, pattern(6 << 20, 3)).unwrap();
    let to_ada = link(&carol, &ada).await;
    let mut ada_events = ada.handle.subscribe();
    // One byte in the fourth chunk (chunk 3).
    carol.handle.inject_corrupt_at((3 << 20) + 5);
    let started = std::time::Instant::now();
    let sent = carol.handle.send(&to_ada, std::slice::from_ref(&big)).await.unwrap().wait().await;
    let outcome = sent.expect("the transfer itself ends");
    let failed = wait_for(&mut ada_events, |e| match e {
        Event::Done {
            direction: Direction::Receive,
            failed,
            ..
        } => Some(*failed),
        _ => None,
    })
    .await;
    let took = started.elapsed();
    println!("carol: {:?} ({} ms)", outcome.failed, took.as_millis());
    assert_eq!(failed, 1, "ada's receive counts the file as failed");
    assert_eq!(outcome.files, 0);
    let [(path, why)] = outcome.failed.as_slice() else {
        panic!("{outcome:?}")
    };
    assert_eq!(path, "image.bin");
    assert!(why.starts_with("bad data from carol: chunk 3 did not match its hash"), "{why}");
    assert!(!ada.downloads.join("image.bin").exists(), "nothing unverified is placed");
    assert!(took < lanyard::limits::TRANSFER_STALL, "ended by the check, not the stall deadline");
}
