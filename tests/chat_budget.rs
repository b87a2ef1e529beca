//! What one peer's chat may cost another: a flood is refused or trimmed and the
//! database stays within its budget while honest peers still get through; keys seen once are
//! forgotten; history comes out whole through the CLI, page by page.
//!
//! Figures (`cargo test --test chat_budget -- --nocapture`, FLOOD_ROOM_LINES=N for a bigger
//! flood): each flood test prints the receiver's database growth and the lines stored vs sent.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{PATIENCE, start_node};
use lanyard::node::api::DbBudget;
use lanyard::node::api::{ChatTarget, NodeConfig, NodeHandle, ROOM};
use lanyard::node::events::Event;

fn config(nick: &str, dir: &Path, budget: DbBudget) -> NodeConfig {
    let mut c = NodeConfig::local(nick, dir.to_path_buf());
    c.db_budget = budget;
    c
}

/// The database's files (main file and its write-ahead log) in a data dir, in bytes.
fn db_bytes(dir: &Path) -> u64 {
    ["lanyard.sqlite3", "lanyard.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn connect(a: &NodeHandle, b: &NodeHandle) {
    a.add_peer(&b.listen_addr().unwrap().to_string());
    assert!(a.wait_online(b.id(), PATIENCE).await, "no connection");
    assert!(b.wait_online(a.id(), PATIENCE).await, "no connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stays_within_the_budget_and_honest_lines_get_through() {
    let root = tempfile::tempdir().unwrap();
    let room_bytes = 512 * 1024;
    // The size budgets under test, not the rates.
    let bob_budget = DbBudget {
        rate_lines: u32::MAX,
        rate_bytes: u64::MAX,
        address_rate_lines: u32::MAX,
        address_rate_bytes: u64::MAX,
        strangers_rate_lines: u32::MAX,
        strangers_rate_bytes: u64::MAX,
        room_bytes,
        room_bytes_per_peer: 128 * 1024,
        stranger_bytes: 64 * 1024,
        strangers_bytes: 128 * 1024,
        ..DbBudget::default()
    };
    let bob = start_node(config("bob", &root.path().join("bob"), bob_budget)).await;
    let eve = start_node(config("eve", &root.path().join("eve"), DbBudget::lifted())).await;
    let carol = start_node(config("carol", &root.path().join("carol"), DbBudget::lifted())).await;
    connect(&eve, &bob).await;
    connect(&carol, &bob).await;
    // Bob talks to carol first: she is no stranger to him.
    let hi = bob.say(&ChatTarget::Peer(carol.id().clone()), "hi carol").await.unwrap();
    assert!(bob.wait_delivered(&hi, PATIENCE).await.unwrap());
    let carol_early = carol.say(&ChatTarget::Room, "carol, before the flood").await.unwrap();
    assert!(carol.wait_delivered(&carol_early, PATIENCE).await.unwrap());

    let before = db_bytes(&root.path().join("bob"));
    let line = "x".repeat(16 * 1024 - 8);
    // FLOOD_ROOM_LINES / FLOOD_DIRECT_LINES make it bigger, for the figures.
    let count = |var: &str, default: usize| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (room_lines, direct_lines) = (count("FLOOD_ROOM_LINES", 2000), count("FLOOD_DIRECT_LINES", 200));
    let mut last_room = String::new();
    for i in 0..room_lines {
        last_room = eve.say(&ChatTarget::Room, &format!("{i} {line}")).await.unwrap();
    }
    let to_bob = ChatTarget::Peer(bob.id().clone());
    let mut direct = Vec::new();
    for i in 0..direct_lines {
        direct.push(eve.say(&to_bob, &format!("{i} {line}")).await.unwrap());
    }
    // Room lines are stored (the oldest pushed out); direct ones past the stranger budget are
    // refused, and the sender is told so.
    assert!(eve.wait_delivered(&last_room, PATIENCE).await.unwrap());
    let err = eve.wait_delivered(direct.last().unwrap(), PATIENCE).await.unwrap_err().to_string();
    assert!(err.contains("refused: no room left for your messages"), "{err}");

    // Honest lines still get through, after the flood.
    let carol_room = carol.say(&ChatTarget::Room, "carol, after the flood").await.unwrap();
    let carol_direct = carol.say(&ChatTarget::Peer(bob.id().clone()), "carol to bob").await.unwrap();
    assert!(carol.wait_delivered(&carol_room, PATIENCE).await.unwrap());
    assert!(carol.wait_delivered(&carol_direct, PATIENCE).await.unwrap());

    let room = bob.history(ROOM, usize::MAX).await.unwrap();
    let stored_room = room.iter().filter(|e| &e.from == eve.id()).count();
    let room_text: u64 = room.iter().map(|e| e.text.len() as u64).sum();
    assert!(room_text <= room_bytes, "the room keeps {room_text} bytes");
    assert!(
        room.iter().any(|e| e.text == "carol, before the flood"),
        "a flooder pushes out its own lines first"
    );
    assert!(room.iter().any(|e| e.text == "carol, after the flood"));
    let stored_direct = bob.history(eve.id().as_str(), usize::MAX).await.unwrap().len();
    assert!(stored_direct * line.len() <= 64 * 1024, "{stored_direct} direct lines kept");
    assert!(
        bob.history(carol.id().as_str(), 10)
            .await
            .unwrap()
            .iter()
            .any(|e| e.text == "carol to bob")
    );

    let after = db_bytes(&root.path().join("bob"));
    let sent = (room_lines + direct_lines) as u64 * (line.len() as u64 + 5);
    println!(
        "flood of {room_lines} room + {direct_lines} direct lines of 16 KiB ({sent} bytes of text): bob's database {before} -> {after} bytes \
         (+{}); stored {stored_room} room lines, {stored_direct} direct",
        after.saturating_sub(before)
    );
    // The budgets (640 KiB of text) plus SQLite's own: the write-ahead log (checkpointed at
    // ~4 MiB) and pages freed by trimming, which are reused rather than returned.
    assert!(
        after.saturating_sub(before) < 8 * 1024 * 1024,
        "bob's database grew by {}",
        after - before
    );
    for n in [bob, eve, carol] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_is_refused_and_told_why_while_others_get_through() {
    let root = tempfile::tempdir().unwrap();
    let budget = DbBudget {
        rate_lines: 50,
        rate_window: Duration::from_secs(3600),
        ..DbBudget::default()
    };
    let bob = start_node(config("bob", &root.path().join("bob"), budget)).await;
    let eve = start_node(config("eve", &root.path().join("eve"), DbBudget::lifted())).await;
    let carol = start_node(config("carol", &root.path().join("carol"), DbBudget::lifted())).await;
    connect(&eve, &bob).await;
    connect(&carol, &bob).await;
    let mut at_eve = eve.subscribe();
    let to_bob = ChatTarget::Peer(bob.id().clone());
    let sent = 300;
    let mut ids = Vec::new();
    for i in 0..sent {
        ids.push(eve.say(&to_bob, &format!("line {i}")).await.unwrap());
    }
    let err = eve.wait_delivered(ids.last().unwrap(), PATIENCE).await.unwrap_err().to_string();
    assert!(
        err.contains("bob") && err.contains("refused: too many messages, try later"),
        "{err}"
    );
    // The face hears it as an event too (the TUI shows the line failed).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, at_eve.recv())
            .await
            .expect("no refusal event")
            .unwrap()
        {
            Event::ChatRefused { reason, to, .. } => {
                assert_eq!(&to, bob.id());
                assert_eq!(reason, "too many messages, try later");
                break;
            }
            _ => continue,
        }
    }
    // Nothing acknowledged was dropped: what eve saw delivered is what bob stored, in order.
    let stored: Vec<String> = bob
        .history(eve.id().as_str(), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(stored.len(), 50, "the burst allowance, no more");
    let mut delivered = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if eve.delivery(id).await.unwrap() == lanyard::node::api::Delivery::Delivered {
            delivered.push(format!("line {i}"));
        }
    }
    assert_eq!(stored, delivered);
    println!(
        "rate flood: {sent} lines sent, {} stored, {} refused",
        stored.len(),
        sent - stored.len()
    );

    let ok = carol.say(&to_bob, "carol is not eve").await.unwrap();
    assert!(
        carol.wait_delivered(&ok, PATIENCE).await.unwrap(),
        "another peer has its own allowance"
    );
    for n in [bob, eve, carol] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_seen_once_are_forgotten_and_others_kept() {
    let root = tempfile::tempdir().unwrap();
    let budget = DbBudget {
        one_time_peer_age: 1,
        prune_every: Duration::from_millis(300),
        ..DbBudget::default()
    };
    let bob = start_node(config("bob", &root.path().join("bob"), budget)).await;
    let known = |id: &lanyard::identity::PeerId| bob.peers().iter().any(|p| &p.id == id);
    // Carol comes twice, dave once but is trusted; both before eve's one visit.
    let carol_dir = root.path().join("carol");
    for _ in 0..2 {
        let carol = start_node(NodeConfig::local("carol", carol_dir.clone())).await;
        connect(&carol, &bob).await;
        carol.shutdown().await;
    }
    let carol_id = lanyard::node::api::identity_of(&carol_dir).unwrap().0;
    let dave = start_node(NodeConfig::local("dave", root.path().join("dave"))).await;
    connect(&dave, &bob).await;
    bob.set_trusted(dave.id(), true).await.unwrap();
    let dave_id = dave.id().clone();
    dave.shutdown().await;
    let eve = start_node(NodeConfig::local("eve", root.path().join("eve"))).await;
    connect(&eve, &bob).await;
    let eve_id = eve.id().clone();
    let mut at_bob = bob.subscribe();
    // Online past the age (several prunes meanwhile): kept.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(known(&eve_id), "a peer online now is never forgotten");
    eve.shutdown().await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, at_bob.recv())
            .await
            .expect("eve's key was never forgotten")
            .unwrap()
        {
            Event::PeerForgotten { id } if id == eve_id => break,
            Event::PeerForgotten { id } => panic!("{id} was forgotten, not only eve"),
            _ => continue,
        }
    }
    assert!(!known(&eve_id));
    assert!(bob.peers().iter().any(|p| p.id == carol_id), "a key seen twice stays");
    assert!(bob.peers().iter().any(|p| p.id == dave_id), "a trusted key stays");
    // And in the store: a restart does not bring eve back.
    let dir = root.path().join("bob");
    bob.shutdown().await;
    drop(bob);
    let bob = start_node(NodeConfig::local("bob", dir)).await;
    assert!(bob.peers().iter().all(|p| p.id != eve_id));
    assert_eq!(bob.peers().len(), 2);
    bob.shutdown().await;
}
