//! Chat end to end: real nodes in one process on 127.0.0.1, no mDNS.

mod common;

use std::path::Path;

use common::{PATIENCE, start_node};
use lanyard::cli::output::{history_line, json_line};
use lanyard::fuzzing::net::secure::{self, SecureConn};
use lanyard::fuzzing::net::wire::{ControlMsg, Hello, MAX_CHAT_TEXT, Purpose};
use lanyard::identity::{Identity, PeerId};
use lanyard::node::api::{ChatTarget, Delivery, NodeConfig, NodeHandle, ROOM};
use lanyard::node::events::Event;
use tempfile::TempDir;

async fn start(nick: &str, dir: &Path) -> NodeHandle {
    start_node(NodeConfig::local(nick, dir.to_path_buf())).await
}

/// `a` dials `b`; returns once each sees the other online.
async fn connect(a: &NodeHandle, b: &NodeHandle) {
    a.add_peer(&b.listen_addr().unwrap().to_string());
    assert!(a.wait_online(b.id(), PATIENCE).await, "{} never saw {} online", a.nick(), b.nick());
    assert!(b.wait_online(a.id(), PATIENCE).await, "{} never saw {} online", b.nick(), a.nick());
}

/// ada and bob on data dirs of their own, connected; the dirs come back for restarts.
async fn ada_and_bob() -> (NodeHandle, NodeHandle, TempDir, TempDir) {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ada = start("ada", da.path()).await;
    let bob = start("bob", db.path()).await;
    connect(&ada, &bob).await;
    (ada, bob, da, db)
}

/// Shut `peer` down and wait until `watcher` reports it offline.
async fn stop_and_wait_offline(watcher: &NodeHandle, peer: NodeHandle) {
    let id = peer.id().clone();
    let mut events = watcher.subscribe();
    stop(peer).await;
    wait_down(watcher, &mut events, &id).await;
}

/// Until `watcher` (whose `events` were subscribed before the peer could go) has `id` offline.
async fn wait_down(watcher: &NodeHandle, events: &mut lanyard::node::events::Subscription, id: &PeerId) {
    let down = async {
        while watcher.is_online(id) {
            match events.recv().await {
                Ok(_) | Err(lanyard::node::events::RecvError::Lagged(_)) => {}
                Err(lanyard::node::events::RecvError::Closed) => panic!("event stream ended"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, down)
        .await
        .unwrap_or_else(|_| panic!("{} never went offline", id.short()));
}

async fn stop(node: NodeHandle) {
    node.shutdown().await;
    drop(node);
}

async fn delivered(node: &NodeHandle, id: &str) {
    assert!(node.wait_delivered(id, PATIENCE).await.unwrap(), "message {id} not delivered");
    assert_eq!(node.delivery(id).await.unwrap(), Delivery::Delivered);
}

/// The next chat line `events` reports: (id, from, room, text).
async fn next_line(events: &mut lanyard::node::events::Subscription) -> (String, PeerId, bool, String) {
    loop {
        match tokio::time::timeout(PATIENCE, events.recv()).await.expect("no chat line arrived") {
            Ok(Event::ChatReceived { id, from, room, text, .. }) => return (id, from, room, text),
            Ok(_) => {}
            Err(e) => panic!("event stream: {e}"),
        }
    }
}

async fn texts(node: &NodeHandle, conversation: &str) -> Vec<String> {
    node.history(conversation, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_message_is_delivered_and_acknowledged() {
    let (ada, bob, _da, _db) = ada_and_bob().await;
    let mut at_bob = bob.subscribe();
    let mut at_ada = ada.subscribe();

    let id = ada.say(&ChatTarget::Peer(bob.id().clone()), "hello bob").await.unwrap();
    delivered(&ada, &id).await;
    assert_eq!(
        next_line(&mut at_bob).await,
        (id.clone(), ada.id().clone(), false, "hello bob".to_string())
    );
    let mut saw = (false, false);
    while !(saw.0 && saw.1) {
        match tokio::time::timeout(PATIENCE, at_ada.recv()).await.unwrap().unwrap() {
            Event::ChatQueued { id: q, to, .. } if q == id => saw.0 = to == bob.id().as_str(),
            Event::ChatDelivered { id: d, to } if d == id => saw.1 = &to == bob.id(),
            _ => {}
        }
    }

    let mine = ada.history(bob.id().as_str(), 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].outgoing);
    assert_eq!(mine[0].state, Some(Delivery::Delivered));
    let theirs = bob.history(ada.id().as_str(), 10).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(
        (theirs[0].id.as_str(), theirs[0].nick.as_str(), theirs[0].outgoing),
        (id.as_str(), "ada", false)
    );

    // And the other way, on the same connection.
    let back = bob.say(&ChatTarget::Peer(ada.id().clone()), "hi ada").await.unwrap();
    delivered(&bob, &back).await;
    assert_eq!(texts(&ada, bob.id().as_str()).await, ["hello bob", "hi ada"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_reaches_every_online_peer() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ada = start("ada", dirs[0].path()).await;
    let bob = start("bob", dirs[1].path()).await;
    let cy = start("cy", dirs[2].path()).await;
    connect(&ada, &bob).await;
    connect(&ada, &cy).await;
    let (mut at_bob, mut at_cy) = (bob.subscribe(), cy.subscribe());

    let id = ada.say(&ChatTarget::Room, "hello all").await.unwrap();
    delivered(&ada, &id).await;
    for events in [&mut at_bob, &mut at_cy] {
        assert_eq!(
            next_line(events).await,
            (id.clone(), ada.id().clone(), true, "hello all".to_string())
        );
    }
    let entry = &ada.history(ROOM, 10).await.unwrap()[0];
    assert!(entry.room && entry.outgoing);
    let mut to: Vec<_> = entry.recipients.iter().map(|r| (r.peer.clone(), r.state)).collect();
    to.sort();
    let mut want = vec![(bob.id().clone(), Delivery::Delivered), (cy.id().clone(), Delivery::Delivered)];
    want.sort();
    assert_eq!(to, want);
    assert_eq!(texts(&bob, ROOM).await, ["hello all"]);
    assert_eq!(texts(&cy, ROOM).await, ["hello all"]);
    assert!(texts(&bob, ada.id().as_str()).await.is_empty(), "a room line is not a direct one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_with_nobody_online_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let ada = start("ada", d.path()).await;
    let err = ada.say(&ChatTarget::Room, "anyone?").await.unwrap_err().to_string();
    assert!(err.contains("nobody is online"), "{err}");
    let stranger = Identity::generate().unwrap().id().clone();
    let err = ada.say(&ChatTarget::Peer(stranger), "hi").await.unwrap_err().to_string();
    assert!(err.contains("unknown peer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_for_an_offline_peer_survives_its_restart() {
    let (ada, bob, _da, db) = ada_and_bob().await;
    let bob_id = bob.id().clone();
    stop_and_wait_offline(&ada, bob).await;

    let mut ids: Vec<String> = Vec::new();
    for i in 0..3 {
        ids.push(
            ada.say(&ChatTarget::Peer(bob_id.clone()), &format!("while you were out {i}"))
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        assert_eq!(ada.delivery(id).await.unwrap(), Delivery::Queued);
    }

    let bob = start("bob", db.path()).await;
    let mut at_bob = bob.subscribe();
    connect(&bob, &ada).await;
    for id in &ids {
        delivered(&ada, id).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let (got, _, _, text) = next_line(&mut at_bob).await;
        assert_eq!((&got, text), (id, format!("while you were out {i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_a_restart_of_the_sender() {
    let (ada, bob, da, db) = ada_and_bob().await;
    let bob_id = bob.id().clone();
    stop_and_wait_offline(&ada, bob).await;
    let id = ada.say(&ChatTarget::Peer(bob_id.clone()), "kept across restarts").await.unwrap();
    stop(ada).await;

    // Both come back (ada on a new port); bob dials her.
    let ada = start("ada", da.path()).await;
    assert_eq!(ada.delivery(&id).await.unwrap(), Delivery::Queued);
    let bob = start("bob", db.path()).await;
    let mut at_bob = bob.subscribe();
    connect(&bob, &ada).await;
    delivered(&ada, &id).await;
    assert_eq!(next_line(&mut at_bob).await.3, "kept across restarts");
    assert_eq!(texts(&bob, ada.id().as_str()).await, ["kept across restarts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_message_is_acknowledged_but_not_shown_twice() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ada = start("ada", da.path()).await;
    let bob = start("bob", db.path()).await;
    let mut at_bob = bob.subscribe();
    connect(&ada, &bob).await;
    let bob_id = bob.id().clone();
    let first = ada.say(&ChatTarget::Peer(bob_id.clone()), "once").await.unwrap();
    delivered(&ada, &first).await;
    assert_eq!(next_line(&mut at_bob).await.0, first);
    stop(ada).await;

    // As if the ack had been lost: ada's record says the line never got through.
    {
        let db = rusqlite::Connection::open(da.path().join("lanyard.sqlite3")).unwrap();
        assert_eq!(db.execute("UPDATE deliveries SET state = 'queued'", []).unwrap(), 1);
    }
    let ada = start("ada", da.path()).await;
    assert_eq!(ada.delivery(&first).await.unwrap(), Delivery::Queued);
    connect(&ada, &bob).await;
    delivered(&ada, &first).await;
    // The resend went first, on the same ordered connection: the next line bob reports must be
    // the marker, not `once` again.
    let marker = ada.say(&ChatTarget::Peer(bob_id), "marker").await.unwrap();
    delivered(&ada, &marker).await;
    assert_eq!(next_line(&mut at_bob).await.0, marker);
    assert_eq!(texts(&bob, ada.id().as_str()).await, ["once", "marker"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_senders_order_is_kept_across_a_reconnect() {
    let (ada, bob, _da, db) = ada_and_bob().await;
    let bob_id = bob.id().clone();
    let to_bob = ChatTarget::Peer(bob_id.clone());
    let mut ids = Vec::new();
    // Live, then queued while bob is away, then more while the queue is being flushed.
    for i in 0..300 {
        ids.push(ada.say(&to_bob, &format!("{i}")).await.unwrap());
    }
    stop_and_wait_offline(&ada, bob).await;
    for i in 300..600 {
        ids.push(ada.say(&to_bob, &format!("{i}")).await.unwrap());
    }
    let bob = start("bob", db.path()).await;
    bob.add_peer(&ada.listen_addr().unwrap().to_string());
    for i in 600..900 {
        ids.push(ada.say(&to_bob, &format!("{i}")).await.unwrap());
    }
    for id in &ids {
        delivered(&ada, id).await;
    }
    let want: Vec<String> = (0..900).map(|i| i.to_string()).collect();
    assert_eq!(texts(&bob, ada.id().as_str()).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_text_is_refused_and_the_limit_itself_is_fine() {
    let (ada, bob, _da, _db) = ada_and_bob().await;
    let to_bob = ChatTarget::Peer(bob.id().clone());
    let err = ada.say(&to_bob, &"x".repeat(MAX_CHAT_TEXT + 1)).await.unwrap_err().to_string();
    assert!(err.contains("too long") && err.contains("16 KiB"), "{err}");
    assert!(texts(&ada, bob.id().as_str()).await.is_empty(), "a refused line is not stored");
    let id = ada.say(&to_bob, &"é".repeat(MAX_CHAT_TEXT / 2)).await.unwrap();
    delivered(&ada, &id).await;
}

/// A peer we control completely: handshake done, frames by hand.
async fn rogue(target: &NodeHandle, nick: &str) -> (SecureConn, PeerId) {
    let identity = Identity::generate().unwrap();
    let sock = tokio::net::TcpStream::connect(target.listen_addr().unwrap()).await.unwrap();
    let hello = Hello {
        nick: nick.into(),
        host: "rogue".into(),
        listen_port: None,
        software: "test".into(),
        session: 1,
    };
    let conn = secure::connect(sock, &identity, &hello, Purpose::Control, Some(target.id()))
        .await
        .unwrap();
    let id = identity.id().clone();
    assert!(target.wait_online(&id, PATIENCE).await, "the rogue never came up");
    (conn, id)
}

/// Read until the node closes the connection; panics if it never does.
async fn closed(conn: &mut SecureConn) {
    loop {
        match tokio::time::timeout(PATIENCE, conn.reader.read_frame::<ControlMsg>(1 << 16)).await {
            Err(_) => panic!("the connection stayed open"),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chat_frame_drops_only_that_connection() {
    let (ada, bob, _da, _db) = ada_and_bob().await;

    let bad_frames = [
        ControlMsg::Chat {
            id: "not-an-id".into(),
            room: false,
            sent_ms: 0,
            text: "hi".into(),
        },
        ControlMsg::Chat {
            id: "A".repeat(32),
            room: false,
            sent_ms: 0,
            text: "hi".into(),
        },
        ControlMsg::Chat {
            id: "0".repeat(32),
            room: true,
            sent_ms: u64::MAX,
            text: "x".repeat(MAX_CHAT_TEXT + 1),
        },
        ControlMsg::ChatAck { id: "../../etc".into() },
    ];
    for frame in bad_frames {
        let (mut conn, rogue_id) = rogue(&bob, "mallory").await;
        conn.writer.send(&frame).await.unwrap();
        closed(&mut conn).await;
        assert!(bob.history(rogue_id.as_str(), 10).await.unwrap().is_empty());
        assert!(bob.history(ROOM, 10).await.unwrap().is_empty());
    }
    // bob carries on.
    assert!(bob.is_online(ada.id()));
    let id = ada.say(&ChatTarget::Peer(bob.id().clone()), "still here?").await.unwrap();
    delivered(&ada, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_are_stored_as_received_and_neutralised_when_printed() {
    let d = tempfile::tempdir().unwrap();
    let bob = start("bob", d.path()).await;
    let nick = "mal\u{1b}[31mlory\u{7}";
    let text = "hi\u{1b}]0;owned\u{7}\u{1b}[2J\r\nsecond line \u{202e}txt.exe\u{9b}";
    let (mut conn, rogue_id) = rogue(&bob, nick).await;
    let mut events = bob.subscribe();
    let id = "0123456789abcdef0123456789abcdef".to_string();
    conn.writer
        .send(&ControlMsg::Chat {
            id: id.clone(),
            room: false,
            sent_ms: 1,
            text: text.into(),
        })
        .await
        .unwrap();
    // Acknowledged only once stored.
    loop {
        match tokio::time::timeout(PATIENCE, conn.reader.read_frame::<ControlMsg>(1 << 16))
            .await
            .unwrap()
            .unwrap()
        {
            Some(ControlMsg::ChatAck { id: acked }) => {
                assert_eq!(acked, id);
                break;
            }
            Some(_) => {}
            None => panic!("closed before the ack"),
        }
    }
    assert_eq!(next_line(&mut events).await.3, text);
    let stored = bob.history(rogue_id.as_str(), 10).await.unwrap();
    assert_eq!(
        (stored[0].nick.as_str(), stored[0].text.as_str()),
        (nick, text),
        "stored as received"
    );

    let line = history_line(&stored[0]);
    assert!(!line.chars().any(|c| c.is_control() || c == '\u{202e}'), "{line:?}");
    assert!(line.contains("mal\\u{1b}[31mlory\\u{7}: hi\\u{1b}]0;owned"), "{line}");
    let json = json_line(&stored[0]);
    assert!(!json.chars().any(|c| c.is_control() || c == '\u{202e}'), "{json:?}");
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((back["nick"].as_str(), back["text"].as_str()), (Some(nick), Some(text)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_catches_up_a_peer_that_was_away_oldest_first() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ada = start("ada", dirs[0].path()).await;
    let bob = start("bob", dirs[1].path()).await;
    let cy = start("cy", dirs[2].path()).await;
    connect(&ada, &bob).await;
    connect(&ada, &cy).await;
    let cy_id = cy.id().clone();
    stop_and_wait_offline(&ada, cy).await;

    // Said while cy is away: delivered to bob at once (that is what `say` waits for), queued for cy.
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = ada.say(&ChatTarget::Room, &format!("while cy was out {i}")).await.unwrap();
        assert!(ada.wait_delivered(&id, PATIENCE).await.unwrap(), "bob has {id}");
        assert_eq!(ada.delivery(&id).await.unwrap(), Delivery::Queued, "cy has not");
        ids.push(id);
    }
    let entry = ada.history(ROOM, 10).await.unwrap().pop().unwrap();
    assert_eq!(entry.recipients.len(), 2, "cy counts among the recipients");
    assert_eq!(entry.delivery_mark().as_deref(), Some("… 1/2"));

    // cy comes back: the lines arrive, oldest first, and count as delivered to cy too.
    let cy = start("cy", dirs[2].path()).await;
    let mut at_cy = cy.subscribe();
    connect(&cy, &ada).await;
    for (i, id) in ids.iter().enumerate() {
        let (got, from, room, text) = next_line(&mut at_cy).await;
        assert_eq!((&got, &from, room, text), (id, ada.id(), true, format!("while cy was out {i}")));
    }
    // With cy online again, delivered means to cy as well.
    for id in &ids {
        delivered(&ada, id).await;
    }
    let entry = ada.history(ROOM, 10).await.unwrap().pop().unwrap();
    assert!(entry.recipients.iter().any(|r| r.peer == cy_id && r.state == Delivery::Delivered));
    assert_eq!(entry.delivery_mark().as_deref(), Some("✓✓"));
}
