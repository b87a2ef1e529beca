//! Relayed sends between in-process nodes on 127.0.0.1 (no multicast): a chain of recipients,
//! each forwarding what it verified; a relay that dies, one that corrupts data.

mod common;

use std::path::{Path, PathBuf};

use common::{FileNode as Node, PATIENCE as WAIT, file_node, link, pattern};
use lanyard::node::api::NodeConfig;
use lanyard::node::api::{Direction, TransferError, TransferView};
use lanyard::node::events::Event;

/// Every node here takes offers without asking, unless a test says otherwise.
async fn node(nick: &str, tweak: impl FnOnce(&mut NodeConfig)) -> Node {
    file_node(nick, |c| {
        c.accept_all = true;
        tweak(c)
    })
    .await
}

/// A folder of a few small files, an empty folder and one big file of `big` bytes.
fn tree(root: &Path, big: usize) -> PathBuf {
    let top = root.join("course");
    std::fs::create_dir_all(top.join("notes/empty")).unwrap();
    for i in 0..5 {
        std::fs::write(top.join(format!("notes/n{i}.txt")), pattern(100 + i * 1000, i as u64)).unwrap();
    }
    std::fs::write(top.join("image.bin"), pattern(big, 99)).unwrap();
    top
}

fn same_tree(a: &Path, b: &Path) {
    for entry in walk(a) {
        let rel = entry.strip_prefix(a).unwrap();
        let other = b.join(rel);
        if entry.is_dir() {
            assert!(other.is_dir(), "{} is missing", other.display());
        } else {
            assert!(
                std::fs::read(&entry).unwrap() == std::fs::read(&other).unwrap_or_default(),
                "{} differs",
                rel.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// The receives a node ran, newest last.
fn receives(n: &Node) -> Vec<TransferView> {
    n.handle
        .transfers()
        .into_iter()
        .filter(|t| t.direction == Direction::Receive)
        .collect()
}

#[tokio::test]
async fn a_relayed_send_goes_down_the_chain_and_every_recipient_verifies_it() {
    let (ada, bob, carol, dave) = (
        node("ada", |_| {}).await,
        node("bob", |_| {}).await,
        node("carol", |_| {}).await,
        node("dave", |_| {}).await,
    );
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path(), (5 << 20) + 123);
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await, link(&ada, &dave).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&top)).await.unwrap();
    let group_id = group.id.clone();
    for (peer, result) in group.wait().await {
        let outcome = result.unwrap_or_else(|e| panic!("{peer}: {e}"));
        assert!(outcome.all_ok(), "{peer}: {:?}", outcome.failed);
        assert_eq!(outcome.files, 6);
    }
    for n in [&bob, &carol, &dave] {
        same_tree(&top, &n.downloads.join("course"));
    }
    // One upload from the sender: bob got it from ada, carol from bob, dave from carol, all
    // under the one transfer id.
    // Each row names the sender and the relay it came through, as its offer did.
    let from = |n: &Node| receives(n).into_iter().map(|t| (t.peer, t.via, t.transfer)).collect::<Vec<_>>();
    let ada_id = ada.handle.id().clone();
    assert_eq!(from(&bob), vec![(ada_id.clone(), None, group_id.clone())]);
    assert_eq!(from(&carol), vec![(ada_id.clone(), Some("bob".into()), group_id.clone())]);
    assert_eq!(from(&dave), vec![(ada_id.clone(), Some("carol".into()), group_id.clone())]);
    for n in [&bob, &carol, &dave] {
        let row = receives(n).pop().unwrap();
        assert_eq!(row.name, "course/ (6 files)");
        assert_eq!(row.saved_as, Some(n.downloads.join("course").display().to_string()));
    }
    // The sender shows each recipient, all of one group, finished.
    let views: Vec<TransferView> = ada
        .handle
        .transfers()
        .into_iter()
        .filter(|t| t.group.as_deref() == Some(&group_id))
        .collect();
    assert_eq!(views.len(), 3);
    assert!(views.iter().all(|v| v.percent == 100 && v.failed == 0), "{views:?}");
    assert!(views.iter().all(|v| v.name == "course/ (6 files)"), "{views:?}");
    // Bob is ada's direct peer; she hears of carol and dave through him (the chain behind bob).
    let via: Vec<Option<String>> = ids
        .iter()
        .map(|id| views.iter().find(|v| &v.peer == id).unwrap().via.clone())
        .collect();
    assert_eq!(via, vec![None, Some("bob".into()), Some("bob".into())]);
}

/// The views of a send `group` at the sender, in the order of `ids`.
fn rows(n: &Node, group: &str, ids: &[lanyard::node::api::PeerId]) -> Vec<TransferView> {
    let views: Vec<TransferView> = n
        .handle
        .transfers()
        .into_iter()
        .filter(|t| t.group.as_deref() == Some(group))
        .collect();
    ids.iter().filter_map(|id| views.iter().find(|v| &v.peer == id).cloned()).collect()
}

#[tokio::test]
async fn a_recipient_that_verified_shows_done_at_once_while_the_one_behind_it_still_receives() {
    use lanyard::node::api::TransferState;
    let (ada, bob) = (node("ada", |_| {}).await, node("bob", |_| {}).await);
    // Carol stops taking data after 1 MiB: the chain behind bob is still running.
    let carol = node("carol", |_| {}).await;
    carol.handle.inject_stall_after(1 << 20);
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path(), 6 << 20);
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&top)).await.unwrap();
    let id = group.id.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let at_ada = rows(&ada, &id, &ids);
        let bobs_own = receives(&bob).pop();
        let bob_done = at_ada.first().is_some_and(|v| v.state == TransferState::Done);
        let carol_running = at_ada
            .get(1)
            .is_some_and(|v| v.state == TransferState::Running && v.via.as_deref() == Some("bob"));
        let bob_row_done = bobs_own.is_some_and(|v| v.state == TransferState::Done && v.percent == 100);
        if bob_done && carol_running && bob_row_done {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "ada: {at_ada:?}\nbob: {:?}", receives(&bob));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ada.handle.cancel_transfer(&id));
    let results = group.wait().await;
    assert!(results[0].1.as_ref().is_ok_and(|o| o.all_ok()), "{:?}", results[0].1);
    assert!(results[1].1.is_err(), "{:?}", results[1].1);
}

#[tokio::test]
async fn a_relay_that_says_a_recipient_verified_is_not_believed() {
    use lanyard::fuzzing::RelayTamper;
    let ada = node("ada", |_| {}).await;
    let mallory = node("mallory", |c| c.relay_tamper = Some(RelayTamper::ClaimVerified)).await;
    // Dave takes nothing without a person, and nobody is there: whatever reaches him, he refuses.
    let dave = node("dave", |c| c.accept_all = false).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("exam.pdf");
    std::fs::write(&file, b"forty-five bytes of an exam nobody should see").unwrap();
    let ids = vec![link(&ada, &mallory).await, link(&ada, &dave).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&file)).await.unwrap();
    let id = group.id.clone();
    let results = group.wait().await;
    assert!(results[0].1.as_ref().is_ok_and(|o| o.all_ok()), "{:?}", results[0].1);
    // Mallory said dave verified it; dave, asked directly, said no.
    assert!(matches!(&results[1].1, Err(TransferError::Rejected(..))), "{:?}", results[1].1);
    assert!(!dave.downloads.join("exam.pdf").exists());
    let dave_row = rows(&ada, &id, &ids).pop().unwrap();
    assert_ne!(dave_row.state, lanyard::node::api::TransferState::Done, "{dave_row:?}");
}

#[tokio::test]
async fn a_relays_report_of_a_recipients_failure_is_shown_as_the_relays_and_the_recipient_is_served_directly() {
    use lanyard::fuzzing::RelayTamper;
    let ada = node("ada", |_| {}).await;
    let forged = "disk full on dave: no space left".to_string();
    let mallory = node("mallory", |c| {
        c.relay_tamper = Some(RelayTamper::ClaimFailed(lanyard::node::api::Reason::DiskFull, forged))
    })
    .await;
    let dave = node("dave", |_| {}).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("exam.pdf");
    std::fs::write(&file, b"the exam").unwrap();
    let ids = vec![link(&ada, &mallory).await, link(&ada, &dave).await];
    let mut events = ada.handle.subscribe();
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&file)).await.unwrap();
    let results = group.wait().await;
    for (peer, r) in &results {
        assert!(r.as_ref().is_ok_and(|o| o.all_ok()), "{peer}: {r:?}");
    }
    assert_eq!(std::fs::read(dave.downloads.join("exam.pdf")).unwrap(), b"the exam");
    // Dave got it from ada herself, not through mallory.
    assert_eq!(receives(&dave).pop().unwrap().via, None);
    let mut attributed = false;
    while let Ok(Ok(event)) = tokio::time::timeout(std::time::Duration::from_millis(10), events.recv()).await {
        if let Event::Progress(v) = event {
            attributed |= v.peer == ids[1] && v.message.as_deref() == Some("mallory says: disk full on dave: no space left");
        }
    }
    assert!(attributed, "dave's row never showed mallory's words as mallory's");
}

#[tokio::test]
async fn a_relay_cannot_bring_in_a_peer_the_sender_did_not_send_to() {
    use lanyard::fuzzing::RelayTamper;
    let (ada, dave) = (node("ada", |_| {}).await, node("dave", |_| {}).await);
    // Bob trusts ada and would take anything she sends; ada sends him nothing.
    let bob = node("bob", |c| c.accept_all = false).await;
    let bob_id = link(&ada, &bob).await;
    let ada_at_bob = link(&bob, &ada).await;
    bob.handle.set_trusted(&ada_at_bob, true).await.unwrap();
    let mallory = node("mallory", |c| c.relay_tamper = Some(RelayTamper::Redirect(bob_id))).await;
    link(&mallory, &bob).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("exam.pdf");
    std::fs::write(&file, b"the exam").unwrap();
    let ids = vec![link(&ada, &mallory).await, link(&ada, &dave).await];
    let results = ada.handle.send_group(&ids, std::slice::from_ref(&file)).await.unwrap().wait().await;
    for (peer, r) in &results {
        assert!(r.as_ref().is_ok_and(|o| o.all_ok()), "{peer}: {r:?}");
    }
    assert_eq!(std::fs::read(dave.downloads.join("exam.pdf")).unwrap(), b"the exam");
    // Mallory passed ada's offer to bob; ada would not vouch for it to him, so he refused it.
    assert!(!bob.downloads.join("exam.pdf").exists());
    let bobs = receives(&bob);
    assert!(
        bobs.iter().all(|t| t
            .message
            .as_deref()
            .is_some_and(|m| m.contains("cannot confirm this offer with ada"))),
        "{bobs:?}"
    );
    assert!(!bobs.is_empty(), "mallory never reached bob: the test shows nothing");
}

#[tokio::test]
async fn a_peer_that_rejects_is_skipped_and_those_behind_it_still_get_everything() {
    let (ada, bob, dave) = (node("ada", |_| {}).await, node("bob", |_| {}).await, node("dave", |_| {}).await);
    // No face answers carol's offers: she rejects.
    let carol = node("carol", |c| c.accept_all = false).await;
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path(), 3 << 20);
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await, link(&ada, &dave).await];
    let results = ada.handle.send_group(&ids, std::slice::from_ref(&top)).await.unwrap().wait().await;
    assert!(results[0].1.as_ref().is_ok_and(|o| o.all_ok()), "{:?}", results[0].1);
    assert!(matches!(&results[1].1, Err(TransferError::Rejected(..))), "{:?}", results[1].1);
    assert!(results[2].1.as_ref().is_ok_and(|o| o.all_ok()), "{:?}", results[2].1);
    same_tree(&top, &dave.downloads.join("course"));
    assert!(!carol.downloads.join("course").exists());
    // Dave was served by bob, carol's place in the chain skipped (the offer is ada's).
    assert_eq!(receives(&dave)[0].peer, *ada.handle.id());
    assert_eq!(receives(&dave)[0].via.as_deref(), Some("bob"));
}

#[tokio::test]
async fn when_a_middle_relay_dies_the_peers_behind_it_are_reattached_and_resume() {
    let (ada, bob, dave) = (node("ada", |_| {}).await, node("bob", |_| {}).await, node("dave", |_| {}).await);
    let carol = node("carol", |_| {}).await;
    // Carol stops taking data after 6 MiB (and forwards what she verified), so the transfer is
    // surely mid-way when she dies.
    carol.handle.inject_stall_after(6 << 20);
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path(), 24 << 20);
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await, link(&ada, &dave).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&top)).await.unwrap();
    // Dave has some of the big file (from carol) on disk ...
    until_holding(&dave, "dave holds 2 MiB from carol").await;
    // ... when carol dies.
    carol.handle.shutdown().await;
    let results = group.wait().await;
    assert!(results[0].1.as_ref().is_ok_and(|o| o.all_ok()), "bob: {:?}", results[0].1);
    // Carol's line says what happened mid-way, and that she could not be reached again.
    let carol_err = results[1].1.as_ref().expect_err("carol failed").to_string();
    assert!(
        carol_err.contains("bob says: carol's lanyard stopped; sending again resumes (sending again: cannot connect"),
        "{carol_err}"
    );
    assert!(results[2].1.as_ref().is_ok_and(|o| o.all_ok()), "dave: {:?}", results[2].1);
    same_tree(&top, &dave.downloads.join("course"));
    // Dave's last receive came from bob (re-attached) and resumed what carol had passed on.
    let last = receives(&dave).pop().unwrap();
    assert_eq!((&last.peer, last.via.as_deref()), (ada.handle.id(), Some("bob")));
    assert!(last.resumed >= 1 << 20, "resumed {} bytes", last.resumed);
}

#[tokio::test]
async fn a_relay_that_corrupts_a_chunk_is_caught_at_that_chunk() {
    let ada = node("ada", |_| {}).await;
    // Bob flips a byte of the third segment he forwards.
    let bob = node("bob", |c| c.corrupt_forward = Some(2)).await;
    let (carol, dave) = (node("carol", |_| {}).await, node("dave", |_| {}).await);
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("image.bin");
    std::fs::write(&big, pattern(12 << 20, 7)).unwrap();
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await, link(&ada, &dave).await];
    let mut carol_events = carol.handle.subscribe();
    let results = ada.handle.send_group(&ids, std::slice::from_ref(&big)).await.unwrap().wait().await;
    for (peer, r) in &results {
        assert!(r.as_ref().is_ok_and(|o| o.all_ok()), "{peer}: {r:?}");
    }
    let want = std::fs::read(&big).unwrap();
    for n in [&bob, &carol, &dave] {
        assert!(std::fs::read(n.downloads.join("image.bin")).unwrap() == want);
    }
    // Carol caught it at chunk 2, kept the two chunks before it, and resumed from them.
    let caught = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Event::Error { message, .. }) = carol_events.recv().await {
                break message;
            }
        }
    })
    .await
    .expect("carol reports the bad chunk");
    assert!(caught.contains("chunk 2 of \"image.bin\" failed verification"), "{caught}");
    assert!(caught.contains("from bob"), "{caught}");
    let last = receives(&carol).pop().unwrap();
    assert_eq!(last.resumed, 2 << 20, "{last:?}");
}

#[tokio::test]
async fn when_a_middle_relay_stalls_the_peers_behind_it_still_get_everything() {
    let short = |c: &mut NodeConfig| c.stall_timeout = std::time::Duration::from_secs(3);
    let (ada, bob, dave) = (node("ada", short).await, node("bob", short).await, node("dave", short).await);
    let carol = node("carol", short).await;
    // Carol stops moving data after 4 MiB and never recovers (hung, not gone).
    carol.handle.inject_stall_after(4 << 20);
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path(), 16 << 20);
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await, link(&ada, &dave).await];
    let results = ada.handle.send_group(&ids, std::slice::from_ref(&top)).await.unwrap().wait().await;
    assert!(results[0].1.as_ref().is_ok_and(|o| o.all_ok()), "bob: {:?}", results[0].1);
    assert!(results[2].1.as_ref().is_ok_and(|o| o.all_ok()), "dave: {:?}", results[2].1);
    same_tree(&top, &dave.downloads.join("course"));
    // Carol's end names the stall, whichever of her two streams it hit.
    match &results[1].1 {
        Err(e) => assert!(e.to_string().contains("nothing moved"), "{e}"),
        Ok(o) => assert!(o.all_ok(), "carol recovered, all of it: {o:?}"),
    }
}

#[tokio::test]
async fn a_relay_cannot_offer_anything_but_what_the_sender_vouched_for() {
    use lanyard::fuzzing::transfer::wire::{Item, MAX_TRANSFER_FRAME, TransferMsg};
    let (ada, bob, dave) = (node("ada", |_| {}).await, node("bob", |_| {}).await, node("dave", |_| {}).await);
    let src = tempfile::tempdir().unwrap();
    let real = src.path().join("exam.pdf");
    std::fs::write(&real, b"the real exam").unwrap();
    let ids = vec![link(&ada, &bob).await, link(&ada, &dave).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&real)).await.unwrap();
    let transfer = group.id.clone();
    for (peer, r) in group.wait().await {
        assert!(r.is_ok_and(|o| o.all_ok()), "{peer}");
    }
    // Mallory, a relay of no standing, offers dave other content under the same transfer in
    // ada's name; then something ada never vouched for at all.
    let forged = b"a forged exam";
    let offers = [
        (transfer.clone(), "differs from what ada sent"),
        ("00000000000000ff".to_string(), "cannot confirm this offer with ada"),
    ];
    for (id, why) in offers {
        let mut conn = common::dial_transfer_as(&dave.handle, &lanyard::identity::Identity::generate().unwrap()).await;
        let offer = TransferMsg::Offer {
            transfer: id,
            items: 1,
            bytes: forged.len() as u64,
            relay: vec![],
            origin: Some(ada.handle.id().as_str().to_string()),
        };
        conn.writer.send(&offer).await.unwrap();
        let items = vec![Item {
            path: "exam.pdf".into(),
            size: forged.len() as u64,
            mtime: 1,
            dir: false,
            root: serde_bytes::ByteBuf::from(blake3::hash(forged).as_bytes().to_vec()),
        }];
        conn.writer.send(&TransferMsg::Items { items }).await.unwrap();
        let answer = tokio::time::timeout(WAIT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME))
            .await
            .expect("dave answers")
            .unwrap();
        match answer {
            Some(TransferMsg::Reject { text: Some(reason), .. }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read(dave.downloads.join("exam.pdf")).unwrap(), b"the real exam");
    assert!(!dave.downloads.join("exam (1).pdf").exists());
}

#[tokio::test]
async fn the_group_id_cancels_a_relayed_send_for_every_recipient() {
    let (ada, bob, carol) = (node("ada", |_| {}).await, node("bob", |_| {}).await, node("carol", |_| {}).await);
    // Bob stops taking data early, so the send is surely running when it is cancelled.
    bob.handle.inject_stall_after(1 << 20);
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path(), 8 << 20);
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&top)).await.unwrap();
    let id = ada.handle.find_transfer(&group.id[..6]).unwrap();
    assert_eq!(id, group.id);
    assert!(ada.handle.cancel_transfer(&id));
    for (peer, r) in group.wait().await {
        assert!(matches!(r, Err(TransferError::Cancelled(..))), "{peer}: {r:?}");
    }
}

/// Until one partial file of `n` holds 2 MiB.
async fn until_holding(n: &Node, what: &str) {
    let partials = n.downloads.join(".lanyard-partial");
    common::until(what, || {
        std::fs::read_dir(&partials)
            .map(|rd| rd.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() >= 2 << 20)))
            .unwrap_or(false)
    })
    .await;
}

/// Bytes of partial data a node holds for receives not finished.
fn partial_bytes(n: &Node) -> u64 {
    std::fs::read_dir(n.downloads.join(".lanyard-partial"))
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Ada sends a file of `mib` MiB to bob and carol, relayed (bob passes it on to carol); back
/// once carol holds 2 MiB of it from bob. The source's folder, its path, and the send.
async fn relayed_to_carol(ada: &Node, bob: &Node, carol: &Node, mib: usize) -> (tempfile::TempDir, PathBuf, lanyard::node::api::GroupTask) {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("image.bin");
    std::fs::write(&big, pattern(mib << 20, mib as u64)).unwrap();
    let ids = vec![link(ada, bob).await, link(ada, carol).await];
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&big)).await.unwrap();
    until_holding(carol, "carol holds 2 MiB from bob").await;
    (src, big, group)
}

#[tokio::test]
async fn a_relay_that_cancels_its_own_receive_leaves_the_peers_behind_it_to_the_sender() {
    use lanyard::node::api::TransferState;
    use lanyard::reason::Reason;
    let (ada, bob, carol) = (node("ada", |_| {}).await, node("bob", |_| {}).await, node("carol", |_| {}).await);
    // Bob stops reading after 4 MiB (forwarding what he verified) until he cancels.
    let _held = bob.handle.inject_hold_after(4 << 20);
    let (_src, big, group) = relayed_to_carol(&ada, &bob, &carol, 16).await;
    assert!(bob.handle.cancel_transfer(&group.id));
    let results = group.wait().await;
    assert!(
        matches!(&results[0].1, Err(TransferError::Cancelled(Reason::CancelledByReceiver, _))),
        "bob: {:?}",
        results[0].1
    );
    // Carol, behind him, is served by ada directly and resumes what bob had passed on.
    assert!(results[1].1.as_ref().is_ok_and(|o| o.all_ok()), "carol: {:?}", results[1].1);
    // And the sender says so, as for a send to one peer.
    assert!(
        results[1].1.as_ref().is_ok_and(|o| o.resumed >= 2 << 20),
        "carol: {:?}",
        results[1].1
    );
    assert!(std::fs::read(carol.downloads.join("image.bin")).unwrap() == std::fs::read(&big).unwrap());
    let last = receives(&carol).pop().unwrap();
    assert!(last.resumed >= 2 << 20, "{last:?}");
    // Bob's cancel dropped his partial data; carol has none left either.
    assert_eq!(receives(&bob).pop().unwrap().state, TransferState::Cancelled);
    assert_eq!((partial_bytes(&bob), partial_bytes(&carol)), (0, 0));
}

#[tokio::test]
async fn a_senders_cancel_reaches_the_chain_behind_the_relay_and_no_partial_data_stays() {
    use lanyard::node::api::TransferState;
    use lanyard::reason::Reason;
    let (ada, bob, carol) = (node("ada", |_| {}).await, node("bob", |_| {}).await, node("carol", |_| {}).await);
    let (_src, _big, group) = relayed_to_carol(&ada, &bob, &carol, 64).await;
    assert!(ada.handle.cancel_transfer(&group.id));
    for (peer, r) in group.wait().await {
        assert!(matches!(r, Err(TransferError::Cancelled(..))), "{peer}: {r:?}");
    }
    // Both receives end as the sender's cancel, and drop what they held (a receive that
    // ended another way first, its relay gone, hears the cancel over its control connection).
    for n in [&bob, &carol] {
        common::until("the receive is cancelled", || {
            receives(n).last().is_some_and(|r| r.state == TransferState::Cancelled)
        })
        .await;
        let r = receives(n).pop().unwrap();
        assert_eq!(
            (r.state, r.reason),
            (TransferState::Cancelled, Some(Reason::CancelledBySender)),
            "{r:?}"
        );
        common::until("no partial data", || partial_bytes(n) == 0).await;
    }
}

#[tokio::test]
async fn a_sender_that_quits_mid_way_pauses_every_recipient_at_once() {
    use lanyard::node::api::TransferState;
    use lanyard::reason::Reason;
    let (ada, bob, carol) = (
        node("ada", |c| c.resume = true).await,
        node("bob", |_| {}).await,
        node("carol", |_| {}).await,
    );
    // Bob stops reading after 4 MiB: the send is surely mid-way when ada quits.
    let held = bob.handle.inject_hold_after(4 << 20);
    let (_src, _big, group) = relayed_to_carol(&ada, &bob, &carol, 16).await;
    let started = std::time::Instant::now();
    ada.handle.shutdown().await;
    // No second round, no dial of anyone, no wait for a verdict once the node stops: its own
    // tasks end within the few seconds a stop takes to tell the peer (not the 30 s shutdown waits
    // at most for a task that hangs).
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    for (peer, r) in group.wait().await {
        assert!(matches!(&r, Err(TransferError::Stopped(_))), "{peer}: {r:?}");
    }
    // Bob reads again: his receive and the one he passed on to carol end with their partial
    // data kept for the resume (and the runtime's end at the test's close waits for no
    // producer left blocked on bob's copy). Bob, who read nothing while ada stopped, could not
    // hear why (her words wait behind full buffers she gave up on): he sees the connection lost.
    held.cancel();
    for (name, n) in [("bob", &bob), ("carol", &carol)] {
        common::until("the receive ends", || receives(n).last().is_some_and(|r| r.state.is_finished())).await;
        let r = receives(n).pop().unwrap();
        assert!(
            !matches!(r.state, TransferState::Cancelled | TransferState::Done) && r.reason != Some(Reason::Tampered),
            "{name}: {r:?}"
        );
        assert!(partial_bytes(n) > 0, "{name}: no partial data kept");
    }
}
