//! Offers of 100,000 long names from throwaway keys, while the node's memory is measured: the
//! node-wide manifest budget refuses what would go over it with a reason the sender sees, and
//! the node still serves an honest peer.
//!
//! The figures for the note come from the ignored `figures` test (one process per run, peak RSS
//! reset through /proc/self/clear_refs before each scenario):
//!
//! `cargo test --release --test offer_memory -- --ignored --nocapture figures`

mod common;

use std::path::Path;
use std::time::Duration;

use common::{PATIENCE, TestNode};
use lanyard::identity::Identity;
use lanyard::limits::{MANIFEST_BUDGET, MANIFEST_PEER_SHARE};
use lanyard::net::secure::SecureConn;
use lanyard::node::transfer::wire::{ITEMS_FRAME_BYTES, Item, MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::node::{Event, NodeConfig, NodeHandle};

/// Items in one hostile offer, and the length of each name (~660 bytes: 64 MiB in all).
const ITEMS: u32 = 100_000;

/// The `i`th name of an offer: three long components, unique per item.
fn name(i: u32) -> String {
    format!("top/{}/{}/{i:08}-{}", "a".repeat(200), "b".repeat(200), "c".repeat(240))
}

async fn node(dir: &Path, accept_all: bool) -> NodeHandle {
    let mut config = NodeConfig::local("victim", dir.join("data"));
    config.download_dir = dir.join("downloads");
    config.accept_all = accept_all;
    NodeHandle::start(config).await.unwrap()
}

async fn dial(node: &NodeHandle) -> SecureConn {
    dial_as(node, &Identity::generate().unwrap()).await
}

async fn dial_as(node: &NodeHandle, me: &Identity) -> SecureConn {
    common::dial_transfer_as(node, me).await
}

/// Send an offer of `ITEMS` long names (1 byte each), built frame by frame so the client holds
/// one frame at a time. Stops early (false) if the node stops reading.
async fn offer(conn: &mut SecureConn, transfer: &str) -> bool {
    offer_of(conn, transfer, ITEMS).await
}

/// As [`offer`], of `count` items.
async fn offer_of(conn: &mut SecureConn, transfer: &str, count: u32) -> bool {
    let header = TransferMsg::Offer {
        transfer: transfer.into(),
        items: count,
        bytes: count as u64,
        relay: vec![],
        origin: None,
    };
    if conn.writer.send(&header).await.is_err() {
        return false;
    }
    let mut i = 0;
    while i < count {
        let mut items = Vec::new();
        let mut bytes = 0;
        while i < count && bytes < ITEMS_FRAME_BYTES {
            let path = name(i);
            bytes += path.len();
            items.push(Item {
                path,
                size: 1,
                mtime: 1,
                dir: false,
                root: serde_bytes::ByteBuf::from(vec![0u8; 32]),
            });
            i += 1;
        }
        if conn.writer.send(&TransferMsg::Items { items }).await.is_err() {
            return false;
        }
    }
    true
}

/// The next message, or None when the node closed the connection.
async fn answer(conn: &mut SecureConn) -> Option<TransferMsg> {
    tokio::time::timeout(PATIENCE, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME))
        .await
        .expect("the node answers or closes")
        .ok()
        .flatten()
}

/// (VmHWM, VmRSS) of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Start a new peak: the kernel resets VmHWM to the current RSS.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn transfer_id(n: usize) -> String {
    format!("{:016x}", 0xa11ce000u64 + n as u64)
}

/// What became of the next `offers` offers, by transfer id: "waiting" once announced, or the
/// error the transfer ended with.
async fn fates(events: &mut lanyard::node::Subscription, offers: usize) -> std::collections::HashMap<String, String> {
    let mut ended = std::collections::HashMap::new();
    let wait = async {
        while ended.len() < offers {
            match events.recv().await {
                Ok(Event::Offer(o)) => {
                    ended.insert(o.transfer, "waiting".to_string());
                }
                Ok(Event::Error { transfer, message, .. }) => {
                    ended.insert(transfer, message);
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("every offer is announced or ends");
    ended
}

/// `offers` hostile offers at once against a fresh node; returns the peak RSS (KiB) seen once
/// each was either refused, waiting for a person (`accept_all` off) or accepted and stalled.
async fn scenario(offers: usize, accept_all: bool) -> (u64, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let victim = node(dir.path(), accept_all).await;
    let _answerer = victim.answer_offers();
    let mut events = victim.subscribe();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(reset_peak(), "cannot reset the peak RSS");
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..offers {
        let mut conn = dial(&victim).await;
        tasks.spawn(async move {
            let sent = offer(&mut conn, &transfer_id(n)).await;
            // Waiting for a person sends nothing back: the offer is in when the node says so.
            let got = if accept_all || !sent { answer(&mut conn).await } else { None };
            (conn, sent, got)
        });
    }
    let mut outcomes = Vec::new();
    let mut conns = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (conn, sent, got) = done.unwrap();
        outcomes.push(match got {
            Some(TransferMsg::Accept { .. }) => "accepted".to_string(),
            Some(TransferMsg::Reject { text, .. }) => format!("rejected: {}", text.unwrap_or_default()),
            Some(TransferMsg::Error { text, .. }) => format!("error: {}", text.unwrap_or_default()),
            Some(other) => format!("{other:?}"),
            None if sent => "sent".to_string(),
            None => "closed".to_string(),
        });
        conns.push(conn);
    }
    // Accepted ones say so to their sender only.
    let accepted = outcomes.iter().filter(|o| *o == "accepted").count();
    let ended = fates(&mut events, offers - accepted).await;
    println!("  node says: {:?}", ended.values().collect::<Vec<_>>());
    let (peak, _) = rss_kib();
    drop(conns);
    victim.shutdown().await;
    (peak, outcomes)
}

/// Figures for the note; run on its own (see the module doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run explicitly, in release, one at a time"]
async fn figures() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        return common::skip("figures", "/proc/self/clear_refs is not writable");
    }
    let (base, _) = rss_kib();
    println!("baseline RSS {} MiB", base / 1024);
    // OFFER_FIGURES picks scenarios: offers and w (waiting) or a (accepted), as "1w,4a".
    let which = std::env::var("OFFER_FIGURES").unwrap_or_else(|_| "1w,1a,4w,4a".into());
    for spec in which.split(',') {
        let (offers, accept_all) = match spec.split_at(spec.len().saturating_sub(1)) {
            (n, "a") => (n.parse().unwrap_or(1), true),
            (n, _) => (n.parse().unwrap_or(1), false),
        };
        let (peak, outcomes) = scenario(offers, accept_all).await;
        let kind = if accept_all { "accepted" } else { "waiting" };
        println!(
            "{offers} offer(s) of {ITEMS} long names, {kind}: peak RSS {} MiB; {outcomes:?}",
            peak / 1024
        );
    }
}

/// The next offer the node announces.
async fn offered(events: &mut lanyard::node::Subscription) -> String {
    let wait = async {
        loop {
            if let Ok(Event::Offer(o)) = events.recv().await {
                return o.transfer;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("the offer is announced")
}

/// Wait until nothing is charged to the budget any more (every offer ended).
async fn budget_released(node: &NodeHandle) {
    let wait = async {
        while node.manifest_budget_use().0 != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("the budget is given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_over_the_budget_are_refused_with_a_reason_and_the_node_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    let victim = node(dir.path(), false).await;
    let _answerer = victim.answer_offers();
    let mut events = victim.subscribe();
    // Two offers of 100,000 long names from two throwaway keys: each alone fits, both do not.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..2 {
        let mut conn = dial(&victim).await;
        tasks.spawn(async move {
            let sent = offer(&mut conn, &transfer_id(n)).await;
            (n, conn, sent)
        });
    }
    // By offer number: the two finish sending in either order.
    let mut conns: Vec<Option<(SecureConn, bool)>> = vec![None, None];
    // Exactly one of them waits; the other was refused, and its sender reads why.
    let fates = fates(&mut events, 2).await;
    while let Some(done) = tasks.join_next().await {
        let (n, conn, sent) = done.unwrap();
        conns[n] = Some((conn, sent));
    }
    let waiting: Vec<usize> = (0..2).filter(|&n| fates[&transfer_id(n)] == "waiting").collect();
    assert_eq!(waiting.len(), 1, "{fates:?}");
    let waiting = waiting[0];
    let refused = 1 - waiting;
    assert_eq!(fates[&transfer_id(refused)], "rejected: busy: too many offers waiting");
    assert_eq!(
        answer(&mut conns[refused].as_mut().expect("both offers were made").0).await,
        Some(TransferMsg::Reject {
            code: lanyard::reason::Reason::Rejected,
            text: Some("busy: too many offers waiting".into())
        })
    );
    let (now, peak) = victim.manifest_budget_use();
    println!("budget: {now} bytes charged, {peak} at most (of {MANIFEST_BUDGET})");
    assert!(peak <= MANIFEST_BUDGET && now > 0, "{now} / {peak}");

    // Another key takes all but a little of what is left; an honest send that needs more than
    // that little is refused, and its sender is told why in one line.
    let mut honest = TestNode::start("honest").await;
    honest.node.add_peer(&victim.listen_addr().unwrap().to_string());
    honest.expect_up(victim.id()).await;
    let per_item = lanyard::limits::MANIFEST_ITEM_COST + name(0).len();
    let count = ((MANIFEST_BUDGET - now) / per_item) as u32;
    let mut filler = dial(&victim).await;
    assert!(offer_of(&mut filler, &transfer_id(5), count).await);
    offered(&mut events).await;
    let src = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(src.path().join(format!("f{i}.txt")), b"hi").unwrap();
    }
    let task = honest.node.send(victim.id(), &[src.path().to_path_buf()]).await.unwrap();
    let err = tokio::time::timeout(PATIENCE, task.wait()).await.unwrap().unwrap_err();
    assert_eq!(err.reason(), lanyard::node::Reason::Rejected);
    assert_eq!(err.to_string(), "rejected (victim: \"busy: too many offers waiting\")");
    drop(filler);

    // The same key again while its offer waits: over its share.
    drop(conns);
    budget_released(&victim).await;
    let me = Identity::generate().unwrap();
    let mut one = dial_as(&victim, &me).await;
    assert!(offer(&mut one, &transfer_id(10)).await);
    offered(&mut events).await;
    let mut two = dial_as(&victim, &me).await;
    offer(&mut two, &transfer_id(11)).await;
    let refused = answer(&mut two).await;
    assert_eq!(
        refused,
        Some(TransferMsg::Reject {
            code: lanyard::reason::Reason::Rejected,
            text: Some("too many offers from you".into())
        }),
        "after offer {waiting} waited"
    );
    assert!(victim.manifest_budget_use().1 <= MANIFEST_BUDGET);
    assert!(item_cost_fits_one_offer());

    // An honest peer still gets a file across, and a withdrawn offer gives its budget back.
    drop((one, two));
    budget_released(&victim).await;
    std::fs::write(src.path().join("hello.txt"), b"hi").unwrap();
    let task = honest.node.send(victim.id(), &[src.path().join("hello.txt")]).await.unwrap();
    let id = offered(&mut events).await;
    assert!(victim.answer_offer(&id, true, false).await);
    let outcome = tokio::time::timeout(PATIENCE, task.wait()).await.unwrap().unwrap();
    assert!(outcome.all_ok(), "{outcome:?}");
    assert_eq!(std::fs::read(dir.path().join("downloads/hello.txt")).unwrap(), b"hi");
    budget_released(&victim).await;
    victim.shutdown().await;
}

/// One offer of the largest size fits a peer's share, and the share is under the node's budget.
fn item_cost_fits_one_offer() -> bool {
    let largest =
        lanyard::node::transfer::wire::MAX_MANIFEST_BYTES + lanyard::node::transfer::wire::MAX_ITEMS * lanyard::limits::MANIFEST_ITEM_COST;
    largest <= MANIFEST_PEER_SHARE && MANIFEST_PEER_SHARE < MANIFEST_BUDGET
}
