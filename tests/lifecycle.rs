//! How transfers end and come back, between in-process nodes on 127.0.0.1: a cancel from
//! either end and a stop are told to the peer with a reason code (never a torn record), a cancel
//! drops the partial data on both ends and a stop keeps it.

mod common;

use std::path::PathBuf;

use common::{FileNode, PATIENCE as WAIT, file_node as node, link, partials, pattern, wait_for, write};
use lanyard::node::api::{FailKind, NodeHandle, Reason, TransferState};
use lanyard::node::api::{TransferError, TransferTask};
use lanyard::node::events::{Event, Subscription};
use tokio_util::sync::CancellationToken;

/// How a transfer ended at one end: (code, words).
async fn end_of(rx: &mut lanyard::node::events::Subscription, id: &str) -> (Reason, String) {
    wait_for(rx, |e| match e {
        Event::Cancelled {
            transfer, reason, code, ..
        } if transfer == id => Some((*code, reason.clone())),
        Event::Error {
            transfer, message, code, ..
        } if transfer == id => Some((*code, message.clone())),
        Event::Done { transfer, .. } if transfer == id => panic!("{id} finished instead"),
        _ => None,
    })
    .await
}

/// Bytes of the running transfer `id` that `node` has moved.
fn moved(node: &NodeHandle, id: &str) -> u64 {
    node.transfers().iter().find(|t| t.transfer == id).map_or(0, |t| t.bytes)
}

/// Until the sender's count stops growing: its socket is full, a write blocked mid-way.
async fn until_blocked(node: &NodeHandle, id: &str) {
    let mut last = u64::MAX;
    tokio::time::timeout(WAIT, async {
        loop {
            let now = moved(node, id);
            if now == last && now > 0 {
                return;
            }
            last = now;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("the sender never blocked");
}

/// A sender (ada), an accepting receiver (bob), and a send of a big file under way whose
/// receiver fell behind after `held` bytes: the sender's socket is full, a write blocked
/// half-way. Bob lets the data flow again when `release` is cancelled.
struct Blocked {
    a: FileNode,
    b: FileNode,
    file: PathBuf,
    _src: tempfile::TempDir,
    task: TransferTask,
    id: String,
    release: CancellationToken,
    b_events: Subscription,
}

const BIG: usize = 48 << 20;

async fn blocked_send(held: u64) -> Blocked {
    let a = node("ada", |_| {}).await;
    let b = node("bob", |c| c.accept_all = true).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, &pattern(BIG, 31));
    let bob = link(&a, &b).await;
    let release = b.handle.inject_hold_after(held);
    let b_events = b.handle.subscribe();
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    until_blocked(&a.handle, &id).await;
    Blocked {
        a,
        b,
        file,
        _src: src,
        task,
        id,
        release,
        b_events,
    }
}

/// The sender cancels while a write of file data is blocked half-way (the receiver fell
/// behind). The write finishes, the cancel follows it between frames: the receiver hears a
/// cancel by ada, not a record that failed authentication, and drops its partial data.
#[tokio::test]
async fn a_sender_cancel_mid_write_is_a_cancel_at_the_receiver() {
    let Blocked {
        a,
        b,
        task,
        id,
        release,
        mut b_events,
        ..
    } = blocked_send(2 << 20).await;
    assert!(a.handle.cancel_transfer(&id));
    // The receiver catches up: what the sender was writing arrives whole, then the cancel.
    release.cancel();
    let err = task.wait().await.unwrap_err();
    assert_eq!(err.reason(), Reason::CancelledBySender, "{err:?}");
    let (code, words) = end_of(&mut b_events, &id).await;
    assert_eq!(code, Reason::CancelledBySender, "{words}");
    assert_eq!(words, "ada cancelled big.bin");
    common::until("the receiver drops its partial data", || partials(&b.downloads).is_empty()).await;
    assert!(!b.downloads.join("big.bin").exists());
    let view = b.handle.transfers().into_iter().find(|t| t.transfer == id).unwrap();
    assert_eq!(
        (view.state, view.reason),
        (TransferState::Cancelled, Some(Reason::CancelledBySender))
    );
}

/// The receiver cancels mid-file: the sender hears it by code and in bob's name, and the
/// receiver's partial data goes.
#[tokio::test]
async fn a_receiver_cancel_is_a_cancel_at_the_sender() {
    let Blocked {
        b,
        task,
        id,
        release,
        mut b_events,
        ..
    } = blocked_send(2 << 20).await;
    assert!(b.handle.cancel_transfer(&id), "the receiver knows the transfer by the same id");
    let (code, _) = end_of(&mut b_events, &id).await;
    assert_eq!(code, Reason::CancelledByReceiver);
    drop(release);
    let err = task.wait().await.unwrap_err();
    assert!(matches!(err, TransferError::Cancelled(Reason::CancelledByReceiver, _)), "{err:?}");
    assert_eq!(err.to_string(), "bob cancelled big.bin");
    common::until("the receiver drops its partial data", || partials(&b.downloads).is_empty()).await;
}

/// The sender's program stops (its node shuts down) mid-file: the receiver hears that ada's
/// lanyard stopped, keeps what it has for a resume, and a later send moves only the rest.
#[tokio::test]
async fn a_stopped_sender_leaves_the_partial_for_a_resume() {
    let Blocked {
        a,
        b,
        file,
        _src: _keep,
        task,
        id,
        release,
        mut b_events,
        ..
    } = blocked_send(4 << 20).await;
    let stopping = {
        let a = a.handle.clone();
        tokio::spawn(async move { a.shutdown().await })
    };
    release.cancel();
    let err = task.wait().await.unwrap_err();
    assert_eq!(err.reason(), Reason::Stopped, "{err:?}");
    stopping.await.unwrap();
    let (code, words) = end_of(&mut b_events, &id).await;
    assert_eq!(code, Reason::Stopped, "{words}");
    assert!(
        words.starts_with("ada's lanyard stopped; ") && words.ends_with(" kept for a resume"),
        "{words}"
    );
    let view = b.handle.transfers().into_iter().find(|t| t.transfer == id).unwrap();
    assert_eq!(view.state, TransferState::Paused);
    let parts = partials(&b.downloads);
    assert_eq!(parts.len(), 1, "the partial file is kept");
    let held = std::fs::metadata(&parts[0]).unwrap().len();
    assert!(held >= 4 << 20, "what was verified is kept: {held}");

    // ada comes back (same file, a new node): only what bob lacks moves.
    let a2 = node("ada", |_| {}).await;
    let bob = link(&a2, &b).await;
    let outcome = a2
        .handle
        .send(&bob, std::slice::from_ref(&file))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(outcome.all_ok());
    assert!(outcome.resumed >= 4 << 20, "resumed {} of the {held} held", outcome.resumed);
    assert_eq!(std::fs::read(b.downloads.join("big.bin")).unwrap(), pattern(BIG, 31));
}

/// A node restarted on the same data dir lists its paused send and offers it again by itself
/// once the receiver is online: the file arrives verified, only the missing part moved.
#[tokio::test]
async fn a_restarted_node_resumes_its_paused_send_by_itself() {
    let data = tempfile::tempdir().unwrap();
    let mut config = lanyard::node::api::NodeConfig::local("ada", data.path().to_path_buf());
    config.resume = true;
    let a = common::start_node(config.clone()).await;
    let b = node("bob", |c| c.accept_all = true).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, &pattern(BIG, 32));
    let bob = a.resolve(&b.handle.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let release = b.handle.inject_hold_after(4 << 20);
    let mut b_events = b.handle.subscribe();
    let task = a.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    until_blocked(&a, &id).await;
    let stopping = {
        let a = a.clone();
        tokio::spawn(async move { a.shutdown().await })
    };
    release.cancel();
    assert_eq!(task.wait().await.unwrap_err().reason(), Reason::Stopped);
    stopping.await.unwrap();
    drop(a);
    assert_eq!(end_of(&mut b_events, &id).await.0, Reason::Stopped);

    // The same data dir again: the send is listed as paused, and goes on by itself.
    config.manual_peers = vec![b.handle.listen_addr().unwrap().to_string()];
    let a = common::start_node(config).await;
    let resumed = wait_for(&mut b_events, |e| match e {
        Event::Done {
            transfer, bytes, failed, ..
        } if *transfer == id => Some((*bytes, *failed)),
        Event::Error { transfer, message, .. } if *transfer == id => panic!("the resume failed: {message}"),
        _ => None,
    })
    .await;
    assert_eq!(resumed, (BIG as u64, 0));
    assert_eq!(std::fs::read(b.downloads.join("big.bin")).unwrap(), pattern(BIG, 32));
    let view = b.handle.transfers().into_iter().find(|t| t.transfer == id).unwrap();
    assert!(view.resumed >= 4 << 20, "only the missing part moved: {} resumed", view.resumed);
    common::until("the sender lists it done", || {
        a.transfers().iter().any(|t| t.transfer == id && t.state == TransferState::Done)
    })
    .await;
}

/// A paused receive cancelled for good (`lanyard cancel` after the sender stopped) drops the
/// partial data it kept.
#[tokio::test]
async fn cancelling_a_paused_receive_drops_its_partial() {
    let Blocked {
        a,
        b,
        task,
        id,
        release,
        mut b_events,
        ..
    } = blocked_send(2 << 20).await;
    let stopping = {
        let a = a.handle.clone();
        tokio::spawn(async move { a.shutdown().await })
    };
    release.cancel();
    let _ = task.wait().await;
    stopping.await.unwrap();
    assert_eq!(end_of(&mut b_events, &id).await.0, Reason::Stopped);
    assert_eq!(partials(&b.downloads).len(), 1);
    assert_eq!(b.handle.find_transfer(&id[..6]), Ok(id.clone()), "a paused one is found by prefix");
    let not_here = b.handle.resume_transfer(&id).unwrap_err();
    assert_eq!(
        not_here.kind,
        FailKind::Unavailable,
        "a receive resumes when its sender sends: {not_here}"
    );
    assert!(b.handle.cancel_transfer(&id));
    let (code, _) = end_of(&mut b_events, &id).await;
    assert_eq!(code, Reason::CancelledByReceiver);
    common::until("the partial goes", || partials(&b.downloads).is_empty()).await;
    let view = b.handle.transfers().into_iter().find(|t| t.transfer == id).unwrap();
    assert_eq!(view.state, TransferState::Cancelled);
    assert!(!b.handle.cancel_transfer(&id), "once");
    let gone = b.handle.resume_transfer(&id).unwrap_err();
    assert_eq!(gone.kind, FailKind::NotFound, "a cancelled one is no longer paused: {gone}");
}

/// The sender cancels while the receiver is cut off (its node is down): the cancel cannot go
/// over the transfer's connection, so it is told over the control connection once the receiver
/// is back, and the receiver drops the partial data it kept for a resume.
#[tokio::test]
async fn a_cancel_while_cut_off_reaches_the_receiver_later() {
    let a = node("ada", |c| c.resume = true).await;
    let b_dir = tempfile::tempdir().unwrap();
    let mut b_config = lanyard::node::api::NodeConfig::local("bob", b_dir.path().join("data"));
    b_config.download_dir = b_dir.path().join("downloads");
    b_config.accept_all = true;
    b_config.resume = true;
    let downloads = b_config.download_dir.clone();
    let b = common::start_node(b_config.clone()).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write(&file, &pattern(BIG, 33));
    let bob = a.handle.resolve(&b.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let release = b.inject_hold_after(2 << 20);
    let task = a.handle.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    until_blocked(&a.handle, &id).await;
    // Bob's node goes away mid-file: both ends pause, bob keeps its partial data.
    let stopping = {
        let b = b.clone();
        tokio::spawn(async move { b.shutdown().await })
    };
    release.cancel();
    assert_eq!(task.wait().await.unwrap_err().reason(), Reason::Stopped);
    stopping.await.unwrap();
    drop(b);
    assert_eq!(partials(&downloads).len(), 1, "bob keeps the partial for a resume");
    common::until("ada lists the send paused", || {
        a.handle
            .transfers()
            .iter()
            .any(|t| t.transfer == id && t.state == TransferState::Paused)
    })
    .await;
    // Ada cancels it while bob is away; nothing can tell bob now.
    assert!(a.handle.cancel_transfer(&id));

    // Bob comes back on the same data dir: he lists the receive paused, then hears the cancel.
    b_config.manual_peers = vec![a.handle.listen_addr().unwrap().to_string()];
    let b = common::start_node(b_config).await;
    common::until("bob drops the partial data", || partials(&downloads).is_empty()).await;
    common::until("bob lists it cancelled by ada", || {
        b.transfers()
            .iter()
            .any(|t| t.transfer == id && t.state == TransferState::Cancelled && t.reason == Some(Reason::CancelledBySender))
    })
    .await;
    assert!(!downloads.join("big.bin").exists());
}
