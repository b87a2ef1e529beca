//! The face API: snapshot + numbered events, the same calls over the control socket, paged
//! history and unread counts, send-to-many. In-process nodes on 127.0.0.1 (no multicast).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestNode, connect};
use lanyard::node::api::{ChatTarget, Page};
use lanyard::node::api::{NodeConfig, NodeHandle, ROOM, TransferState};
use lanyard::node::api::{Reply, Request};
use lanyard::node::control::{Client, serve_socket};
use lanyard::node::events::{Event, RecvError, Subscription};

/// Only stops a hang; every wait below is for an event.
const PATIENCE: Duration = Duration::from_secs(120);

async fn until<T>(events: &mut Subscription, what: &str, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(t) = f(&e) {
                        return t;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("node stopped while waiting for {what}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.unwrap_or_else(|_| panic!("no {what}"))
}

#[tokio::test]
async fn a_snapshot_then_the_events_after_it_give_the_whole_picture() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    connect(&mut ada, &mut bob).await;

    let mut events = ada.node.subscribe();
    let snap = ada.node.snapshot().await.unwrap();
    assert_eq!(snap.me.nick, "ada");
    assert_eq!(snap.conversations[0].conversation, ROOM, "#all comes first, even when empty");
    let peer = snap.peers.iter().find(|p| p.id == bob.id()).expect("bob is listed");
    assert!(peer.online);
    assert!(snap.transfers.is_empty() && snap.offers.is_empty());

    // Events after the snapshot are numbered past it, in order.
    let id = bob.node.say(&ChatTarget::Peer(ada.id()), "hi ada").await.unwrap();
    let mut last = snap.seq;
    let unread = tokio::time::timeout(PATIENCE, async {
        loop {
            let e = events.next().await.unwrap();
            assert!(e.seq > last, "sequence numbers grow");
            last = e.seq;
            if let Event::ChatReceived { id: got, unread, .. } = e.event
                && got == id
            {
                return unread;
            }
        }
    })
    .await
    .expect("the line arrives");
    assert_eq!(unread, 1);

    let snap = ada.node.snapshot().await.unwrap();
    assert!(snap.seq >= last);
    let conv = snap
        .conversations
        .iter()
        .find(|c| c.conversation == bob.id().as_str())
        .expect("bob's conversation");
    assert_eq!(conv.unread, 1);
    assert_eq!(conv.last.as_ref().unwrap().text, "hi ada");
    assert_eq!(snap.peers.iter().find(|p| p.id == bob.id()).unwrap().unread, 1);

    ada.node.mark_read(bob.id().as_str()).await.unwrap();
    until(&mut events, "chat_read", |e| matches!(e, Event::ChatRead { .. }).then_some(())).await;
    assert!(ada.node.unread().is_empty());
    // Kept across a restart.
    let bob_id = bob.id();
    let dir = ada.stop().await;
    let ada = TestNode::start_in("ada", dir).await;
    let snap = ada.node.snapshot().await.unwrap();
    let conv = snap.conversations.iter().find(|c| c.conversation == bob_id.as_str()).unwrap();
    assert_eq!(conv.unread, 0);
}

#[tokio::test]
async fn our_lines_report_sent_then_delivered() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    connect(&mut ada, &mut bob).await;
    let mut events = ada.node.subscribe();
    let id = ada.node.say(&ChatTarget::Peer(bob.id()), "one").await.unwrap();
    let mut seen = Vec::new();
    until(&mut events, "delivery", |e| {
        match e {
            Event::ChatQueued { id: i, .. } if *i == id => seen.push("queued"),
            Event::ChatSent { ids, .. } if ids.contains(&id) => seen.push("sent"),
            Event::ChatDelivered { id: i, .. } if *i == id => return Some(()),
            _ => {}
        }
        None
    })
    .await;
    assert_eq!(seen, ["queued", "sent"]);
}

#[tokio::test]
async fn history_pages_before_and_after_a_line() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    connect(&mut ada, &mut bob).await;
    let to_bob = ChatTarget::Peer(bob.id());
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(ada.node.say(&to_bob, &format!("line {i}")).await.unwrap());
    }
    let conv = bob.id().to_string();
    let texts = |v: Vec<lanyard::node::api::ChatEntry>| v.into_iter().map(|e| e.text).collect::<Vec<_>>();
    assert_eq!(
        texts(ada.node.history_page(&conv, Page::Last, 3).await.unwrap()),
        ["line 7", "line 8", "line 9"]
    );
    assert_eq!(
        texts(ada.node.history_page(&conv, Page::Before(&ids[7]), 3).await.unwrap()),
        ["line 4", "line 5", "line 6"]
    );
    assert_eq!(
        texts(ada.node.history_page(&conv, Page::After(&ids[2]), 2).await.unwrap()),
        ["line 3", "line 4"]
    );
    assert!(ada.node.history_page(&conv, Page::Before(&ids[0]), 5).await.unwrap().is_empty());
    // An id that is not a line of this conversation is an error, not an empty page.
    let err = ada.node.history_page(&conv, Page::After("nope"), 5).await.unwrap_err().to_string();
    assert!(err.contains("no message nope in the conversation with bob"), "{err}");
}

#[tokio::test]
async fn the_control_socket_serves_snapshots_events_and_calls() {
    let mut ada = TestNode::start("ada").await;
    let mut bob = TestNode::start("bob").await;
    connect(&mut ada, &mut bob).await;
    serve_socket(ada.node.clone()).await.unwrap();
    let client = Client::attach(&ada.node.config().data_dir).await.unwrap();
    assert!(client.is_remote());

    let mut snapshot = None;
    client
        .run(Request::Snapshot, |r| {
            if let Reply::Snapshot(s) = r {
                snapshot = Some(s);
            }
        })
        .await
        .unwrap();
    let snapshot = snapshot.expect("a snapshot");
    assert!(snapshot.peers.iter().any(|p| p.id == bob.id() && p.online));

    // A subscription streams the running node's events to another process's face.
    let mut stream = client.request(Request::Subscribe).await.unwrap();
    let live = match tokio::time::timeout(PATIENCE, stream.recv()).await.unwrap() {
        Some(Reply::Subscribed { seq }) => seq,
        other => panic!("unexpected {other:?}"),
    };
    let text = "through the socket";
    bob.node.say(&ChatTarget::Peer(ada.id()), text).await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.recv().await {
                Some(Reply::Event(e)) => {
                    assert!(e.seq > live);
                    if let Event::ChatReceived { text: t, .. } = &e.event
                        && t == text
                    {
                        return;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("the line reaches the socket's subscriber");

    // Calls: trust through the socket shows in the node.
    client
        .run(
            Request::Trust {
                peer: "bob".into(),
                trusted: true,
            },
            |_| {},
        )
        .await
        .unwrap();
    assert!(ada.node.peer(&bob.id()).unwrap().trusted);
    let err = client.run(Request::Cancel { transfer: "abcdef".into() }, |_| {}).await.unwrap_err();
    let kind = err.downcast_ref::<lanyard::node::api::Failure>().map(|f| f.kind);
    assert_eq!(kind, Some(lanyard::node::api::FailKind::NotFound), "{err:#}");
    assert!(
        err.to_string().starts_with("no transfer \"abcdef\""),
        "the words a person reads stay: {err}"
    );
}

#[tokio::test]
async fn send_to_many_is_one_call_with_a_result_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("many");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..1500 {
        std::fs::write(src.join(format!("f{i:04}")), format!("{i}")).unwrap();
    }
    let start = |nick: &str, accept_all: bool| {
        let mut c = NodeConfig::local(nick, dir.path().join(nick).join("data"));
        c.download_dir = dir.path().join(nick).join("downloads");
        c.accept_all = accept_all;
        NodeHandle::start(c)
    };
    let ada = start("ada", false).await.unwrap();
    let bob = start("bob", true).await.unwrap();
    let cy = start("cy", true).await.unwrap();
    let mut ids = Vec::new();
    for n in [&bob, &cy] {
        ids.push(ada.resolve(&n.listen_addr().unwrap().to_string(), PATIENCE).await.unwrap());
    }
    let mut at_bob = bob.subscribe();
    let mut events = ada.subscribe();
    let group = ada.send_group(&ids, std::slice::from_ref(&src)).await.unwrap();
    let gid = group.id.clone();
    let results = group.wait().await;
    assert_eq!(results.len(), 2);
    for (peer, r) in &results {
        let o = r.as_ref().unwrap_or_else(|e| panic!("{peer}: {e}"));
        assert!(o.all_ok());
        assert_eq!(o.files, 1500);
    }
    // Each recipient's transfer carries the group, and the node keeps both views.
    let views = ada.transfers();
    assert_eq!(views.iter().filter(|v| v.group.as_deref() == Some(gid.as_str())).count(), 2);
    assert!(views.iter().all(|v| v.state == TransferState::Done && v.percent == 100));
    let mut started = HashSet::new();
    while let Ok(Some(e)) = events.try_next() {
        if let Event::TransferStarted(v) = e.event {
            assert_eq!(v.group.as_deref(), Some(gid.as_str()));
            started.insert(v.peer);
        }
    }
    assert_eq!(started.len(), 2);

    // The receiver's stream carries the files in batches, not one event each.
    let (mut files, mut batches) = (0, 0);
    while let Ok(Some(e)) = at_bob.try_next() {
        if let Event::FilesReceived { files: f, .. } = e.event {
            files += f.len();
            batches += 1;
        }
    }
    assert_eq!(files, 1500);
    assert!(batches < 100, "{batches} events for 1500 files");
}

#[tokio::test]
async fn discovered_and_lost_peers_are_reported_once_each() {
    use lanyard::fuzzing::net::discovery::DiscoveryEvent;
    let ada = TestNode::start("ada").await;
    let bob = TestNode::start("bob").await;
    let mut events = ada.node.subscribe();
    let found = DiscoveryEvent::Found {
        id: bob.id(),
        nick: "bob".into(),
        host: "lab-2".into(),
        addrs: vec![bob.node.listen_addr().unwrap()],
    };
    // mDNS resolves a peer several times (IPv6, then IPv4): one report.
    ada.node.discovered(found.clone());
    ada.node.discovered(found);
    let mut discovered = 0;
    until(&mut events, "peer_up", |e| match e {
        Event::PeerDiscovered { id, .. } if *id == bob.id() => {
            discovered += 1;
            None
        }
        Event::PeerUp { id, .. } if *id == bob.id() => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(discovered, 1);
    assert!(ada.node.peers().iter().any(|p| p.id == bob.id() && p.discovered && p.online));
    ada.node.discovered(DiscoveryEvent::Lost { id: bob.id() });
    until(&mut events, "peer_lost", |e| {
        matches!(e, Event::PeerLost { id } if *id == bob.id()).then_some(())
    })
    .await;
    assert!(ada.node.peers().iter().any(|p| p.id == bob.id() && !p.discovered));
}

#[tokio::test]
async fn add_peer_waiting_answers_with_the_peer_or_why_not() {
    let ada = TestNode::start("ada").await;
    let bob = TestNode::start("bob").await;
    let client = Client::Local(ada.node.clone());
    let mut found = Vec::new();
    client
        .run(
            Request::AddPeer {
                addr: bob.addr(),
                wait: true,
            },
            |r| {
                if let Reply::Peers { peers, .. } = r {
                    found = peers;
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), [bob.id()]);
    // A port nothing listens on: refused, and said so with the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = client
        .run(
            Request::AddPeer {
                addr: closed.to_string(),
                wait: true,
            },
            |_| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("no answer from {closed}: ")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
}
