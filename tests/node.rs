//! Several nodes in one process over loopback: connections, presence, liveness, one node per
//! data dir, and the identity across restarts.

mod common;

use std::time::{Duration, Instant};

use common::{PATIENCE, TestNode, connect, start_node};
use lanyard::node::api::{NodeConfig, NodeHandle};
use lanyard::node::events::Event;

#[tokio::test]
async fn three_nodes_see_each_other_by_nick_and_id() {
    let mut a = TestNode::start("ada").await;
    let mut b = TestNode::start("bob").await;
    let mut c = TestNode::start("cyd").await;
    connect(&mut a, &mut b).await;
    connect(&mut b, &mut c).await;
    connect(&mut c, &mut a).await;
    for (n, others) in [(&a, [&b, &c]), (&b, [&a, &c]), (&c, [&a, &b])] {
        let peers = n.node.peers();
        assert_eq!(peers.len(), 2, "{peers:?}");
        for o in others {
            let p = peers.iter().find(|p| p.id == o.id()).expect("listed");
            assert!(p.online);
            assert_eq!(p.nick, o.node.nick());
            assert_eq!(p.addr.as_deref(), Some(o.addr().as_str()), "listed at its listen address");
        }
    }
}

#[tokio::test]
async fn clean_exit_is_down_at_once_and_reconnect_is_up_again() {
    let mut a = TestNode::start("ada").await;
    let mut b = TestNode::start("bob").await;
    let port = b.node.listen_addr().unwrap().port();
    connect(&mut a, &mut b).await;
    let b_id = b.id();
    let started = Instant::now();
    let dir = b.stop().await;
    // "At once" is what the goodbye gives: the reason says it came, not a silence timeout.
    let down = a.expect_down(&b_id).await;
    assert!(matches!(&down, Event::PeerDown { reason, .. } if reason == "left"), "{down:?}");
    println!("clean exit seen as down after {:?}", started.elapsed());
    assert!(!a.node.peers()[0].online);

    // The same data dir comes back on the same port: same id, and a's dialler finds it again.
    let mut config = NodeConfig::local("bob", dir.path().to_path_buf());
    config.listen = Some(([127, 0, 0, 1], port).into());
    let b2 = start_node(config).await;
    assert_eq!(b2.id(), &b_id, "identity survives a restart");
    a.expect_up(&b_id).await;
    b2.shutdown().await;
    drop(dir);
}

#[tokio::test]
async fn simultaneous_dials_leave_one_connection_and_no_flapping() {
    let mut a = TestNode::start("ada").await;
    let mut b = TestNode::start("bob").await;
    // Both dial each other at the same moment.
    a.node.add_peer(&b.addr());
    b.node.add_peer(&a.addr());
    let (ida, idb) = (a.id(), b.id());
    a.expect_up(&idb).await;
    b.expect_up(&ida).await;
    // Settled: each side has taken in both connections and kept one, and has no closed duplicate
    // whose peer is still to be judged up or down (each side counts those until it has judged).
    let settled = |n: &TestNode| {
        let t = n.node.tally();
        t.control_registered >= 2 && n.node.slot_counts().control == 1 && t.duplicates_unsettled == 0
    };
    common::until("the duplicate connection closed and settled", || settled(&a) && settled(&b)).await;
    for (n, other) in [(&mut a, &idb), (&mut b, &ida)] {
        let flap: Vec<Event> = n
            .queued()
            .into_iter()
            .filter(|e| matches!(e, Event::PeerDown { .. } | Event::PeerUp { .. }))
            .collect();
        assert!(flap.is_empty(), "no down/up after the duplicate was closed: {flap:?}");
        assert!(n.node.is_online(other));
    }
}

#[tokio::test]
async fn a_silent_peer_is_declared_down() {
    use lanyard::fuzzing::net::secure;
    use lanyard::fuzzing::net::wire::{Hello, Purpose};
    use lanyard::identity::Identity;

    // A peer that completes the handshake and then says nothing while its socket stays up, as a
    // stuck process would (a cut link is the kernel's keepalive to find: tests/netns/liveness.sh).
    // The silence limit (90 s: rare pings are what keep an idle lab idle) made short here.
    let mut a = TestNode::start_with("ada", |c| c.control_idle_limit = Duration::from_secs(3)).await;
    let ghost = Identity::generate().unwrap();
    let sock = tokio::net::TcpStream::connect(a.addr()).await.unwrap();
    let hello = Hello {
        nick: "ghost".into(),
        host: "h".into(),
        listen_port: None,
        software: "test".into(),
        session: 1,
    };
    let conn = secure::connect(sock, &ghost, &hello, Purpose::Control, None).await.unwrap();
    a.expect_up(ghost.id()).await;
    let started = Instant::now();
    let down = a.expect_down(ghost.id()).await;
    println!("silent peer down after {:?}: {down:?}", started.elapsed());
    // Found by the silence limit (the reason names it), not by TCP giving up much later.
    assert!(
        matches!(&down, Event::PeerDown { reason, .. } if reason == "no sign of life for 3 s"),
        "{down:?}"
    );
    drop(conn);
}

#[tokio::test]
async fn renames_reach_subscribers() {
    let mut a = TestNode::start("ada").await;
    let mut b = TestNode::start("bob").await;
    connect(&mut a, &mut b).await;
    b.node.set_nick("robert").await.unwrap();
    let e = a.expect_event("peer_renamed", |e| matches!(e, Event::PeerRenamed { .. })).await;
    assert!(
        matches!(&e, Event::PeerRenamed { old, new, .. } if old == "bob" && new == "robert"),
        "{e:?}"
    );
    assert_eq!(a.node.peers()[0].nick, "robert");
}

#[tokio::test]
async fn one_node_per_data_dir() {
    let a = TestNode::start("ada").await;
    let err = NodeHandle::start(NodeConfig::local("again", a.dir.path().to_path_buf()))
        .await
        .err()
        .expect("refused");
    assert!(err.downcast_ref::<lanyard::node::api::AlreadyRunning>().is_some(), "{err:#}");
}

/// Shutdown returns once every task of the node has ended and the data dir is free: a node
/// started next takes it at once, even while a face still holds the old handle.
#[tokio::test]
async fn shutdown_frees_the_data_dir() {
    let a = TestNode::start("ada").await;
    assert_eq!(a.node.shutdown().await, Vec::<&str>::new(), "every task ended");
    let again = NodeHandle::start(NodeConfig::local("again", a.dir.path().to_path_buf()))
        .await
        .expect("the data dir is free after shutdown");
    assert_eq!(again.shutdown().await, Vec::<&str>::new(), "every task ended");
}

/// A task that does not end is named by shutdown, which gives up on it only after its limit
/// and then frees the data dir.
#[tokio::test]
async fn shutdown_names_a_task_that_does_not_end() {
    let a = TestNode::start("ada").await;
    let release = a.node.spawn_stuck_task();
    let late = a.node.shutdown_within(Duration::from_millis(300)).await;
    assert_eq!(late, ["test::stuck"], "only the stuck task is left");
    let again = NodeHandle::start(NodeConfig::local("again", a.dir.path().to_path_buf()))
        .await
        .expect("the data dir is free once shutdown gave up");
    release.cancel();
    assert_eq!(again.shutdown().await, Vec::<&str>::new(), "every task ended");
}

#[tokio::test]
async fn peers_resolve_by_nick_prefix_and_address() {
    let mut a = TestNode::start("ada").await;
    let mut b = TestNode::start("bob").await;
    connect(&mut a, &mut b).await;
    let wait = PATIENCE;
    assert_eq!(a.node.resolve("BOB", wait).await.unwrap(), b.id());
    assert_eq!(a.node.resolve(&b.id().as_str()[..5], wait).await.unwrap(), b.id());
    assert_eq!(a.node.resolve(&b.addr(), wait).await.unwrap(), b.id());
    let err = a.node.resolve("nobody", Duration::from_millis(200)).await.unwrap_err();
    assert!(err.to_string().contains("no peer called"), "{err}");
    let err = a.node.resolve("127.0.0.1:1", wait).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach 127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn a_peer_pointing_at_itself_is_ignored() {
    let mut a = TestNode::start("ada").await;
    a.node.add_peer(&a.addr());
    let err = a.node.resolve(&a.addr(), PATIENCE).await.unwrap_err();
    assert!(err.to_string().contains("this node itself"), "{err}");
    assert!(a.node.peers().is_empty());
    // Nor was it announced as a peer: of what the node said so far, nothing is about a peer
    // (the resolve above returned only after the attempt was over).
    while let Some(envelope) = a.events.try_next().expect("the event stream is open") {
        assert!(
            !matches!(envelope.event, Event::PeerDiscovered { .. } | Event::PeerUp { .. }),
            "this node was announced as a peer of its own: {:?}",
            envelope.event
        );
    }
}

#[tokio::test]
async fn an_advertised_id_that_the_answering_key_does_not_match_is_refused() {
    use lanyard::fuzzing::net::discovery::DiscoveryEvent;
    use lanyard::identity::Identity;

    let mut a = TestNode::start("ada").await;
    let honest = TestNode::start("bob").await;
    // Someone advertises bob's address under an id that is not bob's key.
    let claimed = Identity::generate().unwrap().id().clone();
    let addr = honest.node.listen_addr().unwrap();
    a.node.discovered(DiscoveryEvent::Found {
        id: claimed.clone(),
        nick: "bob".into(),
        host: "h".into(),
        addrs: vec![addr],
    });
    let warning = a.expect_event("a spoofing warning", |e| matches!(e, Event::Warning { .. })).await;
    assert!(format!("{warning:?}").contains("refused"), "{warning:?}");
    assert!(!a.node.is_online(&claimed));
    assert!(!a.node.is_online(&honest.id()), "nothing connected under either id");

    // The genuine record connects.
    a.node.discovered(DiscoveryEvent::Found {
        id: honest.id(),
        nick: "bob".into(),
        host: "h".into(),
        addrs: vec![addr],
    });
    a.expect_up(&honest.id()).await;
}
