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
use lanyard::fuzzing::net::secure::SecureConn;
use lanyard::fuzzing::transfer::wire::{ITEMS_FRAME_BYTES, Item, MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::identity::Identity;
use lanyard::limits::{MANIFEST_BUDGET, MANIFEST_NEWCOMER_SHARE, MANIFEST_PEER_SHARE};
use lanyard::node::api::{NodeConfig, NodeHandle};
use lanyard::node::events::Event;

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
async fn fates(events: &mut lanyard::node::events::Subscription, offers: usize) -> std::collections::HashMap<String, String> {
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
async fn offered(events: &mut lanyard::node::events::Subscription) -> String {
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

/// A transfer connection as `me` from `src` (a 127.0.0.x address: one lab machine each).
async fn dial_from(node: &NodeHandle, me: &Identity, src: std::net::IpAddr) -> SecureConn {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(src, 0)).expect("bind a 127.0.0.x source");
    let sock = socket.connect(node.listen_addr().unwrap()).await.expect("connect");
    lanyard::fuzzing::net::secure::connect(
        sock,
        me,
        &common::mallory_hello(),
        lanyard::fuzzing::net::wire::Purpose::Transfer,
        Some(node.id()),
    )
    .await
    .expect("handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_over_the_budget_are_refused_with_a_reason_and_the_node_still_serves() {
    const TEST: &str = "offers_over_the_budget_are_refused_with_a_reason_and_the_node_still_serves";
    let src = |n: u8| std::net::IpAddr::from([127, 0, 0, n]);
    if tokio::net::TcpSocket::new_v4()
        .unwrap()
        .bind(std::net::SocketAddr::new(src(2), 0))
        .is_err()
    {
        return common::skip(TEST, "cannot bind 127.0.0.x as a source address");
    }
    let dir = tempfile::tempdir().unwrap();
    let victim = node(dir.path(), false).await;
    let _answerer = victim.answer_offers();
    let mut events = victim.subscribe();
    // A trusted peer and a known one (a person at the victim wrote to it), on 127.0.0.1.
    let mut trusted = TestNode::start("trusted").await;
    let mut known = TestNode::start("known").await;
    for peer in [&mut trusted, &mut known] {
        peer.node.add_peer(&victim.listen_addr().unwrap().to_string());
        peer.expect_up(victim.id()).await;
    }
    victim.set_trusted(&trusted.id(), true).await.unwrap();
    let hi = victim.say(&lanyard::node::api::ChatTarget::Peer(known.id()), "hi").await.unwrap();
    assert!(victim.wait_delivered(&hi, PATIENCE).await.unwrap());

    // Two offers of 100,000 long names from two throwaway keys on one address: each alone fits,
    // both do not.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..2 {
        let mut conn = dial_from(&victim, &Identity::generate().unwrap(), src(2)).await;
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
    assert_eq!(fates[&transfer_id(refused)], "rejected: too many offers from your address");
    assert_eq!(
        answer(&mut conns[refused].as_mut().expect("both offers were made").0).await,
        Some(TransferMsg::Reject {
            code: lanyard::reason::Reason::Rejected,
            text: Some("too many offers from your address".into())
        })
    );
    // Another address is refused too: newcomers together have had their share.
    let mut other = dial_from(&victim, &Identity::generate().unwrap(), src(3)).await;
    offer(&mut other, &transfer_id(3)).await;
    assert_eq!(
        answer(&mut other).await,
        Some(TransferMsg::Reject {
            code: lanyard::reason::Reason::Rejected,
            text: Some("busy: too many offers waiting".into())
        })
    );
    let (now, peak) = victim.manifest_budget_use();
    println!("budget: {now} bytes charged, {peak} at most (of {MANIFEST_BUDGET}; newcomers {MANIFEST_NEWCOMER_SHARE})");
    assert!(peak <= MANIFEST_NEWCOMER_SHARE && now > 0, "{now} / {peak}");

    // Peers with standing still get their files across: the trusted one without a question,
    // the known one once a person accepts.
    let src_dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(src_dir.path().join(format!("f{i}.txt")), b"hi").unwrap();
    }
    let t = std::time::Instant::now();
    let task = trusted.node.send(victim.id(), &[src_dir.path().to_path_buf()]).await.unwrap();
    let outcome = tokio::time::timeout(PATIENCE, task.wait()).await.unwrap().unwrap();
    assert!(outcome.all_ok(), "{outcome:?}");
    let trusted_took = t.elapsed();
    let t = std::time::Instant::now();
    let task = known.node.send(victim.id(), &[src_dir.path().join("f0.txt")]).await.unwrap();
    let id = offered(&mut events).await;
    assert!(victim.answer_offer(&id, true, false).await);
    let outcome = tokio::time::timeout(PATIENCE, task.wait()).await.unwrap().unwrap();
    assert!(outcome.all_ok(), "{outcome:?}");
    println!(
        "offer budget: 2 offers of {ITEMS} long names from one address, 1 from another: 1 waits, 2 refused; trusted peer's 10-file send {trusted_took:?}, known peer's send {:?} (answered at once)",
        t.elapsed()
    );
    drop(other);

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

    // A withdrawn offer gives its budget back.
    drop((one, two));
    budget_released(&victim).await;
    victim.shutdown().await;
}

/// One offer of the largest size fits a peer's share, and the share is under the node's budget.
fn item_cost_fits_one_offer() -> bool {
    let largest = lanyard::fuzzing::transfer::wire::MAX_MANIFEST_BYTES
        + lanyard::fuzzing::transfer::wire::MAX_ITEMS * lanyard::limits::MANIFEST_ITEM_COST;
    largest <= MANIFEST_PEER_SHARE && largest <= MANIFEST_NEWCOMER_SHARE && MANIFEST_NEWCOMER_SHARE < MANIFEST_BUDGET
}
