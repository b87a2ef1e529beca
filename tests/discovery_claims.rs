//! Discovery claims are claims: an mDNS record names an id, a nick and addresses, and anyone can
//! send one. A peer so named is neither listed nor a namesake before its key answered, and the
//! dials such records cause are gated per address and in all (`src/node/dials.rs`).
//!
//! Records are fed through `NodeHandle::discovered` (what mDNS feeds after parsing) and
//! `lanyard::fuzzing::mdns_record` (the parsing); the "hosts" they name are listeners this test
//! owns on 127.0.0.2–5, which count the connections they get and answer like an ssh server.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PATIENCE, TestNode, connect};
use lanyard::fuzzing::net::discovery::DiscoveryEvent;
use lanyard::identity::PeerId;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A host that does not speak lanyard: it takes each connection, says it is ssh, and closes.
/// Remembers when each came.
struct Trap {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl Trap {
    async fn on(ip: &str) -> Trap {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind a loopback address");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                seen.lock().unwrap().push(Instant::now());
                tokio::spawn(async move {
                    let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
                });
            }
        });
        Trap { addr, accepted }
    }

    fn count(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    fn times(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count() < n {
            assert!(Instant::now() < deadline, "only {} of {n} dials came", self.count());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A well-formed id nobody has (a real key would take long to make hundreds of times in a debug
/// build; a made-up id is what a forger sends anyway).
fn made_up_id() -> PeerId {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    let s: String = (0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    PeerId::parse(&s).expect("a well-formed id")
}

fn forged(id: &PeerId, nick: &str, addrs: Vec<SocketAddr>) -> DiscoveryEvent {
    DiscoveryEvent::Found {
        id: id.clone(),
        nick: nick.into(),
        host: "lab-9".into(),
        addrs,
    }
}

#[tokio::test]
async fn a_forged_record_naming_carol_does_not_make_carol_ambiguous() {
    let mut ada = TestNode::start("ada").await;
    let mut carol = TestNode::start("carol").await;
    connect(&mut ada, &mut carol).await;
    let trap = Trap::on("127.0.0.2").await;
    let fake = made_up_id();
    ada.node.discovered(forged(&fake, "carol", vec![trap.addr]));
    // The record was taken in: its address was dialled (and did not answer as lanyard).
    trap.wait_for(1).await;
    let found = ada.node.resolve("carol", Duration::ZERO).await.expect("carol is one peer");
    assert_eq!(found, carol.id());
    let peers = ada.node.peers();
    assert!(peers.iter().all(|p| p.id != fake), "the claim is not listed: {peers:?}");
    let carols: Vec<_> = peers.iter().filter(|p| p.nick == "carol").collect();
    assert_eq!(carols.len(), 1, "{carols:?}");
    assert_eq!(carols[0].label, "carol", "no disambiguation needed");
    assert_eq!(ada.node.unconfirmed_peers(), 1);
}

#[tokio::test]
async fn five_hundred_forged_records_list_nobody_and_dial_a_host_within_the_rates() {
    let ada = TestNode::start("ada").await;
    let mut traps = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        traps.push(Trap::on(ip).await);
    }
    let addrs: Vec<SocketAddr> = traps.iter().map(|t| t.addr).collect();
    let start = Instant::now();
    for i in 0..500 {
        ada.node.discovered(forged(&made_up_id(), &format!("fake{i}"), addrs.clone()));
    }
    traps[0].wait_for(1).await;
    // The window is the measurement: dials counted over 10 s of the attack.
    let window = Duration::from_secs(10);
    tokio::time::sleep(window.saturating_sub(start.elapsed())).await;
    let secs = start.elapsed().as_secs_f64();
    let counts: Vec<usize> = traps.iter().map(Trap::count).collect();
    let total: usize = counts.iter().sum();
    let listed = ada.node.peers().len();
    let held = ada.node.unconfirmed_peers();
    println!(
        "500 forged records x 4 addresses: {held} held unconfirmed, {listed} listed; dials in {secs:.1} s per host {counts:?}, {total} in all"
    );
    assert_eq!(listed, 0, "no claim is listed");
    assert!(held <= 256, "{held}");
    for (c, t) in counts.iter().zip(&traps) {
        // At most one per 0.5 s per address, the first at once.
        assert!((*c as f64) <= 2.0 * secs + 1.0, "{c} dials to {} in {secs:.1} s", t.addr);
    }
    assert!((total as f64) <= 20.0 * secs + 20.0, "{total} dials in {secs:.1} s");
}

#[tokio::test]
async fn a_record_naming_loopback_is_not_dialled() {
    let ada = TestNode::start("ada").await;
    let trap = Trap::on("127.0.0.1").await;
    let id = made_up_id();
    let v = lanyard::fuzzing::net::wire::PROTOCOL_VERSION.to_string();
    let txt = [("v", v.as_str()), ("id", id.as_str()), ("nick", "carol")];
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let lan: IpAddr = "10.99.0.7".parse().unwrap();
    // A LAN record for this machine's loopback: nothing to dial.
    assert_eq!(lanyard::fuzzing::mdns_record(trap.addr.port(), &[loopback], &txt), None);
    // Beside a LAN address, the loopback one is dropped.
    match lanyard::fuzzing::mdns_record(trap.addr.port(), &[lan, loopback], &txt) {
        Some(DiscoveryEvent::Found { addrs, .. }) => assert_eq!(addrs, vec![SocketAddr::new(lan, trap.addr.port())]),
        other => panic!("{other:?}"),
    }
    // A well-known port is not lanyard's.
    assert_eq!(lanyard::fuzzing::mdns_record(22, &[lan], &txt), None);
    // What reaches the node is dialled: the trap would have counted it (the check can fail).
    ada.node.discovered(forged(&id, "carol", vec![trap.addr]));
    trap.wait_for(1).await;
}

#[tokio::test]
async fn a_host_that_does_not_speak_lanyard_is_dialled_less_and_less_often() {
    let ada = TestNode::start("ada").await;
    let trap = Trap::on("127.0.0.2").await;
    // Fifty made-up peers all "at" one ssh server.
    for i in 0..50 {
        ada.node.discovered(forged(&made_up_id(), &format!("fake{i}"), vec![trap.addr]));
    }
    trap.wait_for(4).await;
    let at = trap.times();
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    println!("50 made-up peers at one non-lanyard port: dials at gaps {gaps:.2?} s");
    // 1 s, then 2 s, then 4 s (the back-off doubling; a loaded machine only makes them longer).
    assert!(gaps[0] >= 0.9, "{gaps:?}");
    assert!(gaps[1] >= 1.8 && gaps[2] >= 3.6, "{gaps:?}");
    assert!(at.len() <= 5, "{} dials", at.len());
}
