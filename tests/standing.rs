//! Standing is earned, and waiting costs no slot: throwaway keys that open a control session
//! first (which once made them "known"), then offers that wait for a person, or that grab the
//! control slots, while a trusted peer and a known peer (one the victim wrote to) chat and send.
//! Attackers speak the real preamble, Noise handshake and frames from their own loopback
//! addresses (127.0.0.x), so the shares per address are the ones under test.
//!
//! Figures: `cargo test --test standing -- --nocapture` prints one `standing:` line per attack.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{FileNode, PATIENCE};
use lanyard::fuzzing::net::secure::{self, SecureConn};
use lanyard::fuzzing::net::wire::Purpose;
use lanyard::fuzzing::transfer::wire::{Item, MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::identity::{Identity, PeerId};
use lanyard::limits::{
    MAX_CONTROL_CONNECTIONS, MAX_CONTROL_PER_ADDRESS, MAX_NEWCOMER_WAITING_OFFERS, MAX_WAITING_OFFERS_PER_ADDRESS,
    MAX_WAITING_OFFERS_PER_KEY, NEWCOMER_SHARE,
};
use lanyard::node::api::{ChatTarget, NodeConfig, NodeHandle};
use tokio::net::TcpSocket;

fn sources(first: u8, n: u8) -> Vec<IpAddr> {
    (first..first + n).map(|i| IpAddr::from([127, 0, 0, i])).collect()
}

/// A connection to `target` from `src` as `me`, or why not.
async fn hostile(target: SocketAddr, src: IpAddr, me: &Identity, purpose: Purpose) -> std::io::Result<SecureConn> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let sock = socket.connect(target).await?;
    secure::connect(sock, me, &common::mallory_hello(), purpose, None)
        .await
        .map_err(std::io::Error::other)
}

/// Whether 127.0.0.x source addresses work here (else the test says SKIP).
async fn loopback_sources(test: &str) -> bool {
    let socket = TcpSocket::new_v4().unwrap();
    match socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))) {
        Ok(()) => true,
        Err(e) => {
            common::skip(test, &format!("cannot bind 127.0.0.2 as a source address: {e}"));
            false
        }
    }
}

/// An offer of one 1-byte file.
async fn tiny_offer(conn: &mut SecureConn, transfer: &str) -> bool {
    let header = TransferMsg::Offer {
        transfer: transfer.into(),
        items: 1,
        bytes: 1,
        relay: vec![],
        origin: None,
    };
    let item = Item {
        path: format!("junk-{transfer}.bin"),
        size: 1,
        mtime: 1,
        dir: false,
        root: serde_bytes::ByteBuf::from(vec![0u8; 32]),
    };
    conn.writer.send(&header).await.is_ok() && conn.writer.send(&TransferMsg::Items { items: vec![item] }).await.is_ok()
}

/// The victim, a peer it trusts, a peer it wrote to (both on 127.0.0.1), and a file to send.
struct Lab {
    victim: FileNode,
    trusted: NodeHandle,
    known: NodeHandle,
    trusted_id: PeerId,
    known_id: PeerId,
    /// The honest peers' data dirs, and the file.
    dir: tempfile::TempDir,
}

impl Lab {
    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("report.txt")
    }

    /// The honest peers dial the victim (again).
    async fn link(&self) {
        let at = self.victim.handle.listen_addr().unwrap().to_string();
        for node in [&self.trusted, &self.known] {
            node.resolve(&at, PATIENCE).await.unwrap();
            assert!(self.victim.handle.wait_online(node.id(), PATIENCE).await);
        }
    }
}

async fn lab() -> Lab {
    let victim = common::file_node("victim", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.txt"), b"the report").unwrap();
    let config = |nick: &str| NodeConfig::local(nick, dir.path().join(nick));
    let trusted = common::start_node(config("trusted")).await;
    let known = common::start_node(config("known")).await;
    let (trusted_id, known_id) = (trusted.id().clone(), known.id().clone());
    let lab = Lab {
        victim,
        trusted,
        known,
        trusted_id,
        known_id,
        dir,
    };
    lab.link().await;
    let victim = &lab.victim.handle;
    victim.set_trusted(&lab.trusted_id, true).await.unwrap();
    // A person here wrote to it: standing earned.
    let line = victim.say(&ChatTarget::Peer(lab.known_id.clone()), "hi").await.unwrap();
    assert!(victim.wait_delivered(&line, PATIENCE).await.unwrap());
    lab
}

/// `from` says a line to the victim and sends it a file (the victim answers a known peer's
/// offer as a person would); returns (chat, send) times.
async fn honest_round(lab: &Lab, from: &NodeHandle) -> (Duration, Duration) {
    let victim = lab.victim.handle.id().clone();
    let t = Instant::now();
    let line = from.say(&ChatTarget::Peer(victim.clone()), "still here").await.unwrap();
    assert!(
        from.wait_delivered(&line, PATIENCE).await.unwrap(),
        "{}'s line is delivered",
        from.nick()
    );
    let said = t.elapsed();
    let t = Instant::now();
    let task = from.send(&victim, &[lab.file()]).await.unwrap();
    if from.id() == &lab.known_id {
        // Polled, not read from events: the attack may have made the stream lag.
        let wait = async {
            loop {
                let mine = lab.victim.handle.offers().into_iter().find(|o| o.peer == lab.known_id);
                match mine {
                    Some(o) => return o.transfer,
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        };
        let offer = tokio::time::timeout(PATIENCE, wait).await.expect("the known peer's offer is shown");
        assert!(lab.victim.handle.answer_offer(&offer, true, false).await);
    }
    let outcome = tokio::time::timeout(PATIENCE, task.wait()).await.unwrap();
    assert!(outcome.as_ref().is_ok_and(|o| o.all_ok()), "{}'s send: {outcome:?}", from.nick());
    (said, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_offers_from_throwaway_keys_hold_no_slot() {
    const TEST: &str = "waiting_offers_from_throwaway_keys_hold_no_slot";
    if !loopback_sources(TEST).await {
        return;
    }
    let lab = lab().await;
    let victim = &lab.victim.handle;
    let _answerer = victim.answer_offers();
    let target = victim.listen_addr().unwrap();

    // 10 keys on 5 addresses: each opens a control session, then as many waiting 1-byte offers
    // as it is let. Each offer's connection is held open; what the victim says on it is kept.
    let (keys, addrs, per_key) = (10, sources(2, 5), 8);
    let mut sessions = Vec::new();
    let mut offers = tokio::task::JoinSet::new();
    let refused = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for k in 0..keys {
        let me = Identity::generate().unwrap();
        let src = addrs[k % addrs.len()];
        sessions.push(hostile(target, src, &me, Purpose::Control).await.expect("a control session"));
        for j in 0..per_key {
            let mut conn = hostile(target, src, &me, Purpose::Transfer).await.expect("a transfer connection");
            let refused = refused.clone();
            offers.spawn(async move {
                if tiny_offer(&mut conn, &format!("{k:08x}{j:08x}")).await {
                    let said = conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME).await;
                    refused.lock().unwrap().push(format!("{said:?}"));
                }
                // Never closed from this side.
                std::future::pending::<()>().await;
            });
        }
    }
    let attempts = keys * per_key;
    // Every attempt is either shown as waiting or refused (told why), and the refused ones let
    // go of their slots.
    common::until("every offer waits or is refused", || {
        victim.offers().len() + refused.lock().unwrap().len() == attempts && victim.slot_counts().transfer == 0
    })
    .await;
    let waiting = victim.offers().len();
    let refused = refused.lock().unwrap().clone();
    let slots = victim.slot_counts();
    let cap = MAX_NEWCOMER_WAITING_OFFERS
        .min(MAX_WAITING_OFFERS_PER_ADDRESS * addrs.len())
        .min(MAX_WAITING_OFFERS_PER_KEY * keys);
    assert!(waiting <= cap, "{waiting} waiting, cap {cap}");
    assert!(waiting > 0 && !refused.is_empty(), "{waiting} waiting, refused {refused:?}");
    assert!(
        refused.iter().all(|r| r.contains("Reject") || r.contains("Error")),
        "every refused sender is told why: {refused:?}"
    );

    let (t_say, t_send) = honest_round(&lab, &lab.trusted).await;
    let (k_say, k_send) = honest_round(&lab, &lab.known).await;
    println!(
        "standing: {keys} throwaway keys on {} addresses, each a control session then {per_key} waiting 1-byte offers: {waiting} wait (cap {cap}), {} refused, transfer slots held {}; trusted peer: say {t_say:?}, send {t_send:?}; known peer: say {k_say:?}, send {k_send:?} (person answered at once)",
        addrs.len(),
        refused.len(),
        slots.transfer,
    );
    assert_eq!(victim.offers().len(), waiting, "the waiting offers are still there");
    offers.abort_all();
    drop(sessions);
    lab.victim.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwaway_keys_cannot_take_the_control_slots_of_known_peers() {
    const TEST: &str = "throwaway_keys_cannot_take_the_control_slots_of_known_peers";
    if !loopback_sources(TEST).await {
        return;
    }
    let lab = lab().await;
    let victim = lab.victim.handle.clone();
    let victim = &victim;
    let _answerer = victim.answer_offers();
    let target = victim.listen_addr().unwrap();
    // The honest peers come back during the attack, as after a restart.
    let mut lab = lab;
    for node in [&lab.trusted, &lab.known] {
        node.shutdown().await;
        wait_offline(victim, node.id()).await;
    }

    // 530 keys from 8 addresses, each holding a control session, 32 handshakes at a time.
    let (keys, addrs) = (530, sources(20, 8));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    for k in 0..keys {
        let (src, gate) = (addrs[k % addrs.len()], gate.clone());
        tasks.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            let me = Identity::generate().unwrap();
            // Held open; a refused one is closed by the victim after its goodbye.
            hostile(target, src, &me, Purpose::Control).await.ok()
        });
    }
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        held.extend(r.unwrap());
    }
    let attack = started.elapsed();

    let slots = victim.slot_counts();
    let share = MAX_CONTROL_CONNECTIONS / NEWCOMER_SHARE;
    assert!(
        slots.newcomer_control <= share.min(addrs.len() * MAX_CONTROL_PER_ADDRESS / NEWCOMER_SHARE),
        "{slots:?}"
    );

    // The trusted and the known peer come back and get through.
    for (nick, node) in [("trusted", &mut lab.trusted), ("known", &mut lab.known)] {
        // The old handle goes first: it holds the data dir until dropped.
        drop(std::mem::replace(node, lab.victim.handle.clone()));
        *node = common::start_node(NodeConfig::local(nick, lab.dir.path().join(nick))).await;
    }
    lab.link().await;
    let (t_say, t_send) = honest_round(&lab, &lab.trusted).await;
    let (k_say, k_send) = honest_round(&lab, &lab.known).await;
    println!(
        "standing: {keys} throwaway keys from {} addresses grabbing control slots ({attack:?}): {} control slots held, {} by newcomers (share {share}); trusted peer: say {t_say:?}, send {t_send:?}; known peer: say {k_say:?}, send {k_send:?}",
        addrs.len(),
        slots.control,
        slots.newcomer_control,
    );
    drop(held);
    lab.victim.handle.shutdown().await;
}

/// Wait until the victim sees `id` gone.
async fn wait_offline(victim: &NodeHandle, id: &PeerId) {
    common::until("the peer is offline", || !victim.is_online(id)).await;
}
