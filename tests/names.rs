//! Names that can't be taken: a nick shaped like another peer's id, two peers with one nick, and
//! a different key answering at a `--peer` address. Real nodes on 127.0.0.1, no mDNS.

mod common;

use std::time::Duration;

use common::{PATIENCE, TestNode, connect};
use lanyard::node::api::{FailKind, Failure, Reply, Request, execute};
use lanyard::node::api::{NodeConfig, NodeHandle};
use lanyard::node::events::Event;

/// Run one face call; its replies, or its failure (kind and one line).
async fn call(node: &NodeHandle, request: Request) -> Result<Vec<Reply>, Failure> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    execute(node, request, &tx).await;
    drop(tx);
    let mut replies = Vec::new();
    while let Some(r) = rx.recv().await {
        match r {
            Reply::Failed { kind, message } => return Err(Failure { kind, message }),
            Reply::Done => return Ok(replies),
            other => replies.push(other),
        }
    }
    panic!("the call ended without Done or Failed")
}

fn say(peer: &str, text: &str) -> Request {
    Request::Say {
        peer: peer.into(),
        text: text.into(),
        queue: false,
        timeout_ms: PATIENCE.as_millis() as u64,
    }
}

fn chat_with(text: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::ChatReceived { text: t, .. } if t == text)
}

#[tokio::test]
async fn lines_typed_to_an_id_reach_that_peer_not_a_peer_nicknamed_like_it() {
    let mut me = TestNode::start("ada").await;
    let mut victim = TestNode::start("bob").await;
    let short = victim.id().short().to_string();
    let mut impostor = TestNode::start(&short).await;
    connect(&mut me, &mut impostor).await;
    connect(&mut me, &mut victim).await;

    call(&me.node, say(&short, "for bob")).await.unwrap();
    victim.expect_event("the line typed to bob's id", chat_with("for bob")).await;
    assert!(
        impostor.next_event(Duration::from_secs(1), chat_with("for bob")).await.is_none(),
        "the impostor got a line typed to another peer's id"
    );
    // The impostor is still reachable under a form that names it alone, and shown with it.
    let shown = me.node.peers().into_iter().find(|p| p.id == impostor.id()).unwrap().label;
    assert_ne!(shown, short, "an id-shaped nick is shown with a disambiguator");
    call(&me.node, say(&shown, "for you")).await.unwrap();
    impostor.expect_event("the line typed to its label", chat_with("for you")).await;
}

#[tokio::test]
async fn two_peers_with_one_nick_are_ambiguous_and_each_can_be_named() {
    let mut me = TestNode::start("ada").await;
    let mut first = TestNode::start("bob").await;
    let mut second = TestNode::start("bob").await;
    connect(&mut me, &mut first).await;
    connect(&mut me, &mut second).await;

    let err = call(&me.node, say("bob", "hello?")).await.unwrap_err();
    assert_eq!(err.kind, FailKind::Ambiguous, "{err}");
    for p in [&first, &second] {
        assert!(err.message.contains(p.id().short()), "{err} does not list {}", p.id().short());
    }
    // Every command taking PEER says the same; none picks one.
    let trust = call(
        &me.node,
        Request::Trust {
            peer: "bob".into(),
            trusted: true,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(trust.kind, FailKind::Ambiguous, "{trust}");

    // Both run on this machine: the host doesn't tell them apart, the id does.
    let by_id = format!("bob#{}", second.id().short());
    call(&me.node, say(&by_id, "to the second")).await.unwrap();
    second.expect_event("the line to bob#id", chat_with("to the second")).await;
    assert!(first.next_event(Duration::from_secs(1), chat_with("to the second")).await.is_none());
    call(&me.node, say(first.id().short(), "to the first")).await.unwrap();
    first.expect_event("the line to the first's id", chat_with("to the first")).await;

    // The same form works wherever PEER is taken.
    let trusted = Request::Trust {
        peer: by_id.clone(),
        trusted: true,
    };
    call(&me.node, trusted).await.unwrap();
    let peers = me.node.peers();
    let trusted_ids: Vec<_> = peers.iter().filter(|p| p.trusted).map(|p| p.id.clone()).collect();
    assert_eq!(trusted_ids, vec![second.id()]);
    let history = Request::History {
        peer: by_id.clone(),
        limit: None,
        before: None,
        after: None,
        first: false,
    };
    let got = call(&me.node, history).await.unwrap();
    assert!(
        got.iter()
            .any(|r| matches!(r, Reply::History { entries } if entries.iter().any(|e| e.text == "to the second"))),
        "{got:?}"
    );
    let listing = Request::List {
        peer: by_id.clone(),
        path: String::new(),
    };
    if let Err(e) = call(&me.node, listing).await {
        assert!(!matches!(e.kind, FailKind::Ambiguous | FailKind::NotFound), "{e}");
    }

    let mut shown: Vec<String> = me.node.peers().into_iter().map(|p| p.label).collect();
    shown.sort();
    let mut expected = vec![format!("bob#{}", first.id().short()), by_id.clone()];
    expected.sort();
    assert_eq!(shown, expected);

    let forget = Request::Forget { peer: by_id.clone() };
    call(&me.node, forget).await.unwrap();
    assert!(me.node.peer(&second.id()).is_none());
    assert!(me.node.peer(&first.id()).is_some());
}

/// A node whose listener is at `addr` (a port another node just left).
async fn start_at(nick: &str, addr: std::net::SocketAddr) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::local(nick, dir.path().to_path_buf());
    config.listen = Some(addr);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // The old listener's port may take a moment to be free again.
    let node = loop {
        match NodeHandle::start(config.clone()).await {
            Ok(n) => break n,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("cannot start at {addr}: {e:#}"),
        }
    };
    let events = node.subscribe();
    TestNode { node, events, dir }
}

#[tokio::test]
async fn a_new_key_behind_a_peer_address_is_refused_until_the_old_one_is_forgotten() {
    let mut me = TestNode::start("ada").await;
    let bob = TestNode::start("bob").await;
    let (bob_id, bob_fp) = (bob.id(), bob.node.fingerprint());
    let target = bob.addr();
    me.node.add_peer(&target);
    me.expect_up(&bob_id).await;

    // bob's machine now answers with another identity on the same port.
    let addr = bob.node.listen_addr().unwrap();
    bob.stop().await;
    me.expect_down(&bob_id).await;
    let mut mallory = start_at("bob", addr).await;
    let mallory_fp = mallory.node.fingerprint();

    let warning = me
        .expect_event(
            "the changed-key warning",
            |e| matches!(e, Event::Warning { message } if message.contains("changed")),
        )
        .await;
    let Event::Warning { message } = warning else { unreachable!() };
    for what in [&target, &bob_fp, &mallory_fp, &format!("lanyard forget {target}")] {
        assert!(message.contains(what.as_str()), "{message} does not name {what}");
    }
    // Refused before we said who we are: the new key never saw us.
    assert!(mallory.node.peers().is_empty(), "{:?}", mallory.node.peers());
    let err = call(&me.node, say(&target, "are you bob?")).await.unwrap_err();
    assert!(err.message.contains("changed"), "{err}");
    assert!(
        mallory
            .next_event(Duration::from_secs(1), chat_with("are you bob?"))
            .await
            .is_none()
    );

    // The pin outlives a restart of the node that made it.
    let dir = me.stop().await;
    let mut me = TestNode::start_in("ada", dir).await;
    me.node.add_peer(&target);
    me.expect_event(
        "the warning again after a restart",
        |e| matches!(e, Event::Warning { message } if message.contains(&mallory_fp)),
    )
    .await;
    assert!(!me.node.is_online(&mallory.id()));

    // Forgetting the old peer (here by the address it was pinned to) lets the new key in.
    let forgot = call(&me.node, Request::Forget { peer: target.clone() }).await.unwrap();
    assert!(
        forgot
            .iter()
            .any(|r| matches!(r, Reply::Note { text } if text.contains(bob_id.short()))),
        "{forgot:?}"
    );
    // At once: the refusal is not held against the address any more, nor does the dialler
    // sleep out its back-off.
    call(&me.node, say(&target, "hello, new key")).await.unwrap();
    mallory.expect_event("the line after forget", chat_with("hello, new key")).await;
    assert!(me.node.is_online(&mallory.id()));
}
