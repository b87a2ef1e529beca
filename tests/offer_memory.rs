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

use common::PATIENCE;
use lanyard::identity::Identity;
use lanyard::net::secure::{self, SecureConn};
use lanyard::net::wire::{Hello, Purpose};
use lanyard::node::transfer::wire::{ITEMS_FRAME_BYTES, Item, MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::node::{Event, NodeConfig, NodeHandle};
use tokio::net::TcpStream;

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
    let me = Identity::generate().unwrap();
    let hello = Hello {
        nick: "mallory".into(),
        host: "evil".into(),
        listen_port: None,
        software: "test".into(),
        session: 1,
    };
    let sock = TcpStream::connect(node.listen_addr().unwrap()).await.unwrap();
    secure::connect(sock, &me, &hello, Purpose::Transfer, Some(node.id()))
        .await
        .unwrap()
}

/// Send an offer of `ITEMS` long names (1 byte each), built frame by frame so the client holds
/// one frame at a time. Stops early (false) if the node stops reading.
async fn offer(conn: &mut SecureConn, transfer: &str) -> bool {
    let header = TransferMsg::Offer {
        transfer: transfer.into(),
        items: ITEMS,
        bytes: ITEMS as u64,
    };
    if conn.writer.send(&header).await.is_err() {
        return false;
    }
    let mut i = 0;
    while i < ITEMS {
        let mut items = Vec::new();
        let mut bytes = 0;
        while i < ITEMS && bytes < ITEMS_FRAME_BYTES {
            let path = name(i);
            bytes += path.len();
            items.push(Item {
                path,
                size: 1,
                mtime: 1,
                dir: false,
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
            let got = if accept_all || !sent {
                answer(&mut conn).await
            } else {
                None
            };
            (conn, sent, got)
        });
    }
    let mut outcomes = Vec::new();
    let mut conns = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (conn, sent, got) = done.unwrap();
        outcomes.push(match got {
            Some(TransferMsg::Accept { .. }) => "accepted".to_string(),
            Some(TransferMsg::Reject { reason }) => format!("rejected: {reason}"),
            Some(TransferMsg::Error { message }) => format!("error: {message}"),
            Some(other) => format!("{other:?}"),
            None if sent => "sent".to_string(),
            None => "closed".to_string(),
        });
        conns.push(conn);
    }
    if !accept_all {
        // Every offer fully sent is waiting (or was refused on the way): wait for the node to
        // have announced or dropped each.
        let expected = outcomes.iter().filter(|o| *o == "sent").count();
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while seen < expected && tokio::time::Instant::now() < deadline {
            if let Ok(Ok(Event::Offer(_))) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await
            {
                seen += 1;
            }
        }
    }
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
    for (offers, accept_all) in [(1, false), (1, true), (4, false), (4, true)] {
        let (peak, outcomes) = scenario(offers, accept_all).await;
        let kind = if accept_all { "accepted" } else { "waiting" };
        println!(
            "{offers} offer(s) of {ITEMS} long names, {kind}: peak RSS {} MiB; {outcomes:?}",
            peak / 1024
        );
    }
}
