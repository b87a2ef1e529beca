//! Peer exchange: connected peers name the peers they know, so one path into the lab is enough;
//! and a peer that names made-up peers costs the node bounded work.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{PATIENCE, TestNode, start_node};
use lanyard::fuzzing::net::secure;
use lanyard::fuzzing::net::wire::{ControlMsg, Hello, MAX_PEER_HINTS, PeerHint, Purpose};
use lanyard::identity::Identity;
use lanyard::node::api::NodeConfig;
use lanyard::node::events::Event;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// A node that knows only `--peer target`.
async fn start_pointed_at(nick: &str, target: &TestNode) -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = NodeConfig::local(nick, dir.path().to_path_buf());
    config.manual_peers = vec![target.addr()];
    let node = start_node(config).await;
    let events = node.subscribe();
    TestNode { node, events, dir }
}

#[tokio::test]
async fn one_known_peer_leads_to_the_whole_chain() {
    // a <- b <- c <- d: each knows only the one before it, nobody has mDNS.
    let a = TestNode::start("ada").await;
    let mut b = start_pointed_at("bob", &a).await;
    b.expect_up(&a.id()).await;
    let mut c = start_pointed_at("cyd", &b).await;
    c.expect_up(&b.id()).await;
    let d = start_pointed_at("dee", &c).await;
    // d learns of b and a from the lists; a and b learn of c and d by their dials.
    for (who, others) in [(&d, [&a, &b, &c]), (&a, [&b, &c, &d]), (&b, [&a, &c, &d]), (&c, [&a, &b, &d])] {
        for other in others {
            assert!(
                who.node.wait_online(&other.id(), PATIENCE).await,
                "{} never saw {}",
                who.node.nick(),
                other.node.nick()
            );
        }
    }
    for node in [&a, &b, &c, &d] {
        let online = node.node.peers().iter().filter(|p| p.online).count();
        assert_eq!(online, 3, "{} sees {online} of 3", node.node.nick());
        assert_eq!(node.node.unconfirmed_peers(), 0, "every name was confirmed");
    }
}

/// A well-formed id nobody has (a real key would take long to make 5,000 times in a debug build).
fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    (0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[tokio::test]
async fn made_up_peers_cost_bounded_work() {
    let mut a = TestNode::start("ada").await;
    // Where the made-up peers "are": listeners on 16 addresses (one dial at a time goes to one
    // port, and two a second to one address) that take connections and never answer, so each
    // dial holds a socket until its handshake times out. We count them.
    let (open, peak, total) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut trap_addrs = Vec::new();
    for host in 2..18 {
        let trap = TcpListener::bind(format!("127.0.0.{host}:0")).await.unwrap();
        trap_addrs.push(trap.local_addr().unwrap().to_string());
        let (open, peak, total) = (open.clone(), peak.clone(), total.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = trap.accept().await {
                total.fetch_add(1, Ordering::SeqCst);
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }

    let me = Identity::generate().unwrap();
    let hello = Hello {
        nick: "mallory".into(),
        host: "h".into(),
        listen_port: Some(1),
        software: "test".into(),
        session: 1,
    };
    let sock = TcpStream::connect(a.addr()).await.unwrap();
    let mut conn = secure::connect(sock, &me, &hello, Purpose::Control, Some(&a.id())).await.unwrap();
    a.expect_up(me.id()).await;
    // 40 full lists of made-up peers: 5,120 names, twenty times what a node holds.
    for _ in 0..40 {
        let peers = (0..MAX_PEER_HINTS)
            .map(|i| PeerHint {
                id: random_id(),
                addrs: vec![trap_addrs[i % trap_addrs.len()].clone()],
            })
            .collect();
        conn.writer.send(&ControlMsg::Peers { peers }).await.unwrap();
    }
    // Frames are handled in order: once this line is in, every list before it was taken in.
    conn.writer
        .send(&ControlMsg::Chat {
            id: "0123456789abcdef0123456789abcdef".into(),
            room: false,
            sent_ms: 0,
            text: "marker".into(),
        })
        .await
        .unwrap();
    a.expect_event(
        "the marker line",
        |e| matches!(e, Event::ChatReceived { text, .. } if text == "marker"),
    )
    .await;
    let held = a.node.unconfirmed_peers();
    println!("names held: {held}");
    assert!(held > 0 && held <= 256, "names held: {held}");
    assert!(
        a.node.peers().iter().all(|p| p.nick == "mallory" || p.online),
        "made-up peers are never listed"
    );

    // Two rounds of dials into the trap: never more than a handful at once.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while total.load(Ordering::SeqCst) < 16 {
        assert!(tokio::time::Instant::now() < deadline, "the node never dialled the named peers");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let peak = peak.load(Ordering::SeqCst);
    println!(
        "dials into the trap: {} so far, at most {peak} at once",
        total.load(Ordering::SeqCst)
    );
    assert!(peak <= 8, "{peak} dials of made-up peers at once");

    // The node serves real peers meanwhile.
    let mut real = TestNode::start("real").await;
    common::connect(&mut real, &mut a).await;
}
