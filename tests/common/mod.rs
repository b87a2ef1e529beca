//! Helpers for in-process tests: real nodes on 127.0.0.1, mDNS off (multicast never leaves the
//! machine from a test outside a namespace).
#![allow(dead_code)]

use std::time::Duration;

use lanyard::identity::PeerId;
use lanyard::node::{Event, NodeConfig, NodeHandle};
use tempfile::TempDir;

pub struct TestNode {
    pub node: NodeHandle,
    pub events: lanyard::node::Subscription,
    pub dir: TempDir,
}

impl TestNode {
    pub async fn start(nick: &str) -> TestNode {
        Self::start_in(nick, tempfile::tempdir().expect("tempdir")).await
    }

    /// Start (or restart) a node on an existing data dir.
    pub async fn start_in(nick: &str, dir: TempDir) -> TestNode {
        let config = NodeConfig::local(nick, dir.path().to_path_buf());
        let node = NodeHandle::start(config).await.expect("node starts");
        let events = node.subscribe();
        TestNode { node, events, dir }
    }

    pub fn addr(&self) -> String {
        self.node.listen_addr().expect("listening").to_string()
    }

    pub fn id(&self) -> PeerId {
        self.node.id().clone()
    }

    /// The first event matching `pred` within `secs`, if any.
    pub async fn next_event(&mut self, secs: u64, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(e) if pred(&e) => return Some(e),
                    Ok(_) | Err(lanyard::node::RecvError::Lagged(_)) => {}
                    Err(lanyard::node::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(secs), wait).await.ok().flatten()
    }

    /// Wait for the first event matching `pred`, failing the test after `secs`.
    pub async fn expect_event(&mut self, secs: u64, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.next_event(secs, pred)
            .await
            .unwrap_or_else(|| panic!("no {what} within {secs} s"))
    }

    pub async fn expect_up(&mut self, id: &PeerId) -> Event {
        self.expect_event(10, "peer_up", |e| matches!(e, Event::PeerUp { id: i, .. } if i == id))
            .await
    }

    pub async fn expect_down(&mut self, id: &PeerId, secs: u64) -> Event {
        self.expect_event(secs, "peer_down", |e| matches!(e, Event::PeerDown { id: i, .. } if i == id))
            .await
    }

    /// Shut down and hand back the data dir, for a restart.
    pub async fn stop(self) -> TempDir {
        self.node.shutdown().await;
        self.dir
    }
}

/// Connect `a` to `b` by address and wait until both see each other.
pub async fn connect(a: &mut TestNode, b: &mut TestNode) {
    a.node.add_peer(&b.addr());
    let (ida, idb) = (a.id(), b.id());
    a.expect_up(&idb).await;
    b.expect_up(&ida).await;
}
