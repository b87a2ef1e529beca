//! Budgets across connections: a lock-out attempt by throwaway keys while an honest peer chats
//! and sends, and the progress deadline of a transfer that stops moving. Attackers speak the
//! real preamble, Noise handshake and frames, from their own loopback addresses (127.0.0.x), so
//! the budget per address is the one under test.
//!
//! Figures: `cargo test --test lockout -- --nocapture` prints one `lockout:` line per attack.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::PATIENCE as WAIT;
use lanyard::fuzzing::net::secure::{self, SecureConn};
use lanyard::fuzzing::net::wire::{Hello, Purpose};
use lanyard::fuzzing::transfer::wire::{MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::identity::Identity;
use lanyard::limits::{MAX_INCOMING_TRANSFERS, MAX_TRANSFERS_PER_ADDRESS, NEWCOMER_SHARE};
use lanyard::node::api::TransferError;
use lanyard::node::api::{ChatTarget, NodeConfig, NodeHandle};
use lanyard::node::events::Event;
use tokio::net::TcpSocket;

/// Connections the attacker keeps open (or trying) at once.
const ATTACKERS: usize = 100;
const HONEST: usize = 10;

async fn node(nick: &str, dir: &Path, tweak: impl FnOnce(&mut NodeConfig)) -> NodeHandle {
    let mut config = NodeConfig::local(nick, dir.join(nick));
    config.download_dir = dir.join(nick).join("downloads");
    tweak(&mut config);
    NodeHandle::start(config).await.unwrap()
}

fn hello() -> Hello {
    common::mallory_hello()
}

/// A transfer connection from `src` with a key made for it.
async fn throwaway(target: SocketAddr, src: IpAddr) -> std::io::Result<Option<SecureConn>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let sock = socket.connect(target).await?;
    let me = Identity::generate().map_err(std::io::Error::other)?;
    Ok(secure::connect(sock, &me, &hello(), Purpose::Transfer, None).await.ok())
}

/// How one attacker connection ended, as the attacker saw it.
#[derive(Default)]
struct Tally {
    opened: AtomicUsize,
    refused: AtomicUsize,
    /// Of those refused: ended to make room for a known peer.
    evicted: AtomicUsize,
    stalled: AtomicUsize,
    closed: AtomicUsize,
    other: std::sync::Mutex<Vec<String>>,
}

/// Keep `ATTACKERS` throwaway connections open from `sources` addresses until `stop`; each
/// sends an offer header and then nothing (or, without `offer`, nothing at all). Returns the
/// most slots the victim gave newcomers at once.
/// `victim`: the node in this process, whose slots are sampled (none when it runs elsewhere).
async fn attack(
    target: SocketAddr,
    victim: Option<NodeHandle>,
    sources: Vec<IpAddr>,
    offer: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> usize {
    let open = Arc::new(tokio::sync::Semaphore::new(ATTACKERS));
    let mut readers = tokio::task::JoinSet::new();
    let mut held_max = 0;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let permit = open.clone().acquire_owned().await.unwrap();
        let src = sources[n % sources.len()];
        n += 1;
        let Ok(Some(mut conn)) = throwaway(target, src).await else {
            continue;
        };
        if tally.opened.fetch_add(1, Ordering::Relaxed) + 1 == ATTACKERS {
            // For a script watching from outside (tests/netns/lockout.sh).
            println!("attacker: {ATTACKERS} opened");
        }
        if offer {
            let header = TransferMsg::Offer {
                transfer: format!("{n:016x}"),
                items: 1,
                bytes: 10,
                relay: vec![],
                origin: None,
            };
            let _ = conn.writer.send(&header).await;
        }
        if let Some(victim) = &victim {
            held_max = held_max.max(victim.slot_counts().newcomer_transfers);
        }
        let tally = tally.clone();
        let (mut reader, writer) = (conn.reader, conn.writer);
        readers.spawn(async move {
            // Held open, never closed from this side: only the victim ends it.
            let _held = (permit, writer);
            let answer = tokio::time::timeout(WAIT, reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)).await;
            match answer {
                Ok(Ok(Some(TransferMsg::Error {
                    code: lanyard::reason::Reason::Busy,
                    text: Some(message),
                }))) => {
                    // Only a connection that was let in can be made to give way.
                    if message == "busy: all transfer slots are in use" {
                        tally.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    tally.refused.fetch_add(1, Ordering::Relaxed)
                }
                Ok(Ok(Some(TransferMsg::Error {
                    code: lanyard::reason::Reason::Stalled,
                    ..
                }))) => tally.stalled.fetch_add(1, Ordering::Relaxed),
                Ok(Ok(None)) | Ok(Err(_)) if !offer => tally.closed.fetch_add(1, Ordering::Relaxed),
                other => {
                    tally.other.lock().unwrap().push(format!("{other:?}"));
                    0
                }
            };
        });
    }
    // Every connection the attacker still holds ends on the victim's deadlines.
    tokio::time::timeout(WAIT, async { while readers.join_next().await.is_some() {} })
        .await
        .expect("every attacker connection ends by the victim's deadline");
    held_max
}

/// `stall`: the victim's stall limit, long enough that the attacker (a few dozen handshakes a
/// second in a debug build) can fill what it may hold.
async fn lockout(test: &str, src: Vec<IpAddr>, offer: bool, stall: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let sources = src.len();
    let shares_honest_address = src.contains(&IpAddr::from([127, 0, 0, 1]));
    // Is 127.0.0.x usable as a source here?
    if throwaway("127.0.0.1:9".parse().unwrap(), src[0])
        .await
        .is_err_and(|e| e.kind() == std::io::ErrorKind::AddrNotAvailable)
    {
        return common::skip(test, "cannot bind 127.0.0.x as a source address");
    }
    let victim = node("victim", dir.path(), |c| {
        c.accept_all = true;
        c.stall_timeout = stall;
    })
    .await;
    let honest = node("honest", dir.path(), |_| {}).await;
    let to = honest.resolve(&victim.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    // A person at the victim wrote to the honest peer: it has standing there (being connected
    // earns none).
    assert!(victim.wait_online(honest.id(), WAIT).await);
    let hi = victim.say(&ChatTarget::Peer(honest.id().clone()), "hi").await.unwrap();
    assert!(victim.wait_delivered(&hi, WAIT).await.unwrap());
    let file = dir.path().join("report.bin");
    std::fs::write(&file, vec![7u8; 200_000]).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let target = victim.listen_addr().unwrap();
    let attacker = tokio::spawn(attack(target, Some(victim.clone()), src, offer, stop.clone(), tally.clone()));
    // Let the attack take what it can before the honest peer starts.
    let until = tokio::time::Instant::now() + WAIT;
    while tally.opened.load(Ordering::Relaxed) < ATTACKERS && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Newcomers get a share of each address, and of the pool.
    let bound = (MAX_TRANSFERS_PER_ADDRESS / NEWCOMER_SHARE * sources).min(MAX_INCOMING_TRANSFERS / NEWCOMER_SHARE);
    // The attack really holds all a newcomer may before the honest peer starts; else the honest
    // peer's success below would prove nothing.
    let until = tokio::time::Instant::now() + WAIT;
    while victim.slot_counts().newcomer_transfers < bound && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        victim.slot_counts().newcomer_transfers,
        bound,
        "the attack holds the newcomers' share of slots"
    );

    let (mut sent, mut said) = (0, 0);
    let mut failures = Vec::new();
    for i in 0..HONEST {
        match honest.send(&to, std::slice::from_ref(&file)).await.unwrap().wait().await {
            Ok(o) if o.all_ok() => sent += 1,
            other => failures.push(format!("send {i}: {other:?}")),
        }
        let id = honest
            .say(&ChatTarget::Peer(victim.id().clone()), &format!("line {i}"))
            .await
            .unwrap();
        if honest.wait_delivered(&id, WAIT).await.unwrap() {
            said += 1;
        } else {
            failures.push(format!("chat line {i} not delivered"));
        }
    }
    // A peer the victim has never seen gets in too.
    let newcomer = node("newcomer", dir.path(), |_| {}).await;
    let newcomer_in = newcomer.resolve(&victim.listen_addr().unwrap().to_string(), WAIT).await.is_ok();

    stop.store(true, Ordering::Relaxed);
    let held_max = attacker.await.unwrap();
    let t = &tally;
    println!(
        "lockout: {test}: attacker {} connections ({ATTACKERS} at once from {sources} address(es), {}), at most {held_max} slots held at once (of {MAX_INCOMING_TRANSFERS}); {} refused with a reason ({} of them evicted for a known peer), {} ended by the stall deadline, {} closed; honest: sends {sent}/{HONEST}, chat {said}/{HONEST}, newcomer got in: {newcomer_in}",
        t.opened.load(Ordering::Relaxed),
        if offer {
            "each an offer header, then nothing"
        } else {
            "each silent after the handshake"
        },
        t.refused.load(Ordering::Relaxed),
        t.evicted.load(Ordering::Relaxed),
        t.stalled.load(Ordering::Relaxed),
        t.closed.load(Ordering::Relaxed),
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(newcomer_in, "a new peer connects during the attack");
    let other = t.other.lock().unwrap();
    assert!(other.is_empty(), "attacker connections that ended without a reason: {other:?}");
    assert!(t.refused.load(Ordering::Relaxed) > 0, "the attacker is told it is refused");
    assert!(held_max <= bound, "held {held_max}, bound {bound}");
    assert_eq!(victim.slot_counts().transfer, 0, "every slot is free again");
    if shares_honest_address {
        // The newcomers' share of the address leaves the rest to the honest peer: its sends
        // went through above without waiting for the attacker's deadline.
        assert!(held_max <= MAX_TRANSFERS_PER_ADDRESS / NEWCOMER_SHARE, "held {held_max}");
    }
}

#[tokio::test]
async fn stalled_offers_from_one_machine_do_not_lock_out_an_honest_peer() {
    lockout(
        "stalled_offers_from_one_machine_do_not_lock_out_an_honest_peer",
        others(1),
        true,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn stalled_offers_from_many_addresses_do_not_lock_out_an_honest_peer() {
    lockout(
        "stalled_offers_from_many_addresses_do_not_lock_out_an_honest_peer",
        others(50),
        true,
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test]
async fn silent_transfer_connections_do_not_lock_out_an_honest_peer() {
    lockout(
        "silent_transfer_connections_do_not_lock_out_an_honest_peer",
        others(1),
        false,
        Duration::from_secs(5),
    )
    .await;
}

/// The attacker shares the honest peer's address (a shared machine): the honest peer's
/// connections evict the attacker's idle ones, which are told "busy".
#[tokio::test]
async fn stalled_offers_from_the_honest_peers_own_address_give_way_to_it() {
    let test = "stalled_offers_from_the_honest_peers_own_address_give_way_to_it";
    lockout(test, vec![IpAddr::from([127, 0, 0, 1])], true, Duration::from_secs(5)).await;
}

/// Loopback addresses other than the honest peers' 127.0.0.1.
fn others(n: usize) -> Vec<IpAddr> {
    (0..n).map(|i| IpAddr::from([127, 0, 0, 2 + i as u8])).collect()
}

fn partials(downloads: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(downloads.join(".lanyard-partial")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The end of transfer `id` as `events` reports it: the error message.
async fn error_of(events: &mut lanyard::node::events::Subscription, id: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::Error { transfer, message, .. }) if transfer == id => return message,
                Ok(Event::Done { transfer, .. } | Event::Cancelled { transfer, .. }) if transfer == id => {
                    panic!("transfer {id} did not fail")
                }
                Ok(_) | Err(lanyard::node::events::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("the transfer ends")
}

/// One side stops moving data mid-file: both end with "nothing moved", the receiver keeps what
/// it got, and sending again resumes from there.
async fn stall_mid_file(sender_stalls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let short = |c: &mut NodeConfig| c.stall_timeout = Duration::from_secs(2);
    let a = node("ada", dir.path(), short).await;
    let b = node("bob", dir.path(), |c| {
        short(c);
        c.accept_all = true;
    })
    .await;
    let downloads = b.config().download_dir.clone();
    let bob = a.resolve(&b.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let file = dir.path().join("big.bin");
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    if sender_stalls {
        a.inject_stall_after(1 << 20);
    } else {
        b.inject_stall_after(1 << 20);
    }
    let mut events = b.subscribe();
    let task = a.send(&bob, std::slice::from_ref(&file)).await.unwrap();
    let id = task.id.clone();
    let sender_err = task.wait().await.unwrap_err();
    let receiver_err = error_of(&mut events, &id).await;
    println!("sender: {sender_err}\nreceiver: {receiver_err}");
    assert!(
        matches!(sender_err, TransferError::PeerLost(..) | TransferError::Failed(..)),
        "{sender_err:?}"
    );
    assert!(sender_err.to_string().contains("nothing moved for 2 s"), "{sender_err}");
    assert!(receiver_err.contains("nothing moved for 2 s"), "{receiver_err}");
    assert_eq!(partials(&downloads).len(), 1, "the partial data is kept");
    assert!(!downloads.join("big.bin").exists());

    let again = a.send(&bob, std::slice::from_ref(&file)).await.unwrap().wait().await.unwrap();
    assert!(again.all_ok(), "{again:?}");
    assert!(again.resumed >= 1 << 20, "resumed from the partial: {again:?}");
    assert_eq!(std::fs::read(downloads.join("big.bin")).unwrap(), data);
}

#[tokio::test]
async fn a_sender_that_stops_mid_file_ends_by_deadline_and_the_partial_is_kept() {
    stall_mid_file(true).await;
}

#[tokio::test]
async fn a_receiver_that_stops_reading_ends_by_deadline_and_the_partial_is_kept() {
    stall_mid_file(false).await;
}

/// A sender past its own budget hears why, in one line, not "disconnected".
#[tokio::test]
async fn a_refused_send_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let victim = node("victim", dir.path(), |_| {}).await;
    // Someone answers offers, but not yet: each waits for a person (holding no slot).
    let _answerer = victim.answer_offers();
    let honest = node("honest", dir.path(), |_| {}).await;
    let to = honest.resolve(&victim.listen_addr().unwrap().to_string(), WAIT).await.unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, b"hello").unwrap();
    let mut events = victim.subscribe();
    let mut waiting = Vec::new();
    for _ in 0..lanyard::limits::MAX_WAITING_OFFERS_PER_KEY {
        waiting.push(honest.send(&to, std::slice::from_ref(&file)).await.unwrap());
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(Event::Offer(_)) = events.recv().await {
                    return;
                }
            }
        })
        .await
        .expect("the offer waits for an answer");
    }
    let err = honest
        .send(&to, std::slice::from_ref(&file))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), lanyard::node::api::Reason::Busy);
    assert_eq!(err.to_string(), "rejected: busy (victim: \"too many of your offers are waiting\")");
    for offer in victim.offers() {
        victim.answer_offer(&offer.transfer, false, false).await;
    }
    for task in waiting {
        assert!(matches!(task.wait().await, Err(TransferError::Rejected(..))));
    }
}

/// Control connections past the budget of their address are told why in a goodbye.
#[tokio::test]
async fn control_connections_past_the_address_budget_are_told_why() {
    use lanyard::fuzzing::net::wire::{ByeReason, ControlMsg, MAX_CONTROL_FRAME};
    use lanyard::limits::MAX_CONTROL_PER_ADDRESS;
    let dir = tempfile::tempdir().unwrap();
    let src = others(1)[0];
    if throwaway("127.0.0.1:9".parse().unwrap(), src)
        .await
        .is_err_and(|e| e.kind() == std::io::ErrorKind::AddrNotAvailable)
    {
        return common::skip("control_connections_past_the_address_budget_are_told_why", "cannot bind 127.0.0.x");
    }
    let victim = node("victim", dir.path(), |_| {}).await;
    let target = victim.listen_addr().unwrap();
    let dial = || async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(src, 0)).unwrap();
        let sock = socket.connect(target).await.unwrap();
        let me = Identity::generate().unwrap();
        secure::connect(sock, &me, &hello(), Purpose::Control, None).await.unwrap()
    };
    // Throwaway keys: newcomers, whose share of an address is what they can fill.
    let share = MAX_CONTROL_PER_ADDRESS / lanyard::limits::NEWCOMER_SHARE;
    let mut kept = Vec::new();
    let until = tokio::time::Instant::now() + WAIT;
    while victim.slot_counts().control < share {
        if kept.len() < share {
            kept.push(dial().await);
        } else {
            assert!(tokio::time::Instant::now() < until, "the victim registers them all");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut extra = dial().await;
    let bye = tokio::time::timeout(WAIT, extra.reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME))
        .await
        .expect("the node answers");
    assert!(
        matches!(
            bye,
            Ok(Some(ControlMsg::Bye {
                reason: ByeReason::TooManyFromAddress
            }))
        ),
        "{bye:?}"
    );
    // Another address is not affected.
    let honest = node("honest", dir.path(), |_| {}).await;
    honest.resolve(&target.to_string(), WAIT).await.unwrap();
}

/// The attacker machine of `tests/netns/lockout.sh`: throwaway keys, each an offer header and
/// then nothing, `ATTACKERS` at once, at `LOCKOUT_TARGET` until `LOCKOUT_STOP_FILE` exists;
/// then waits for the target to end every connection it still holds, and prints a tally.
#[tokio::test]
#[ignore = "run by tests/netns/lockout.sh in a namespace"]
async fn remote_attack() {
    let (Ok(target), Ok(stop_file)) = (std::env::var("LOCKOUT_TARGET"), std::env::var("LOCKOUT_STOP_FILE")) else {
        return common::skip("remote_attack", "LOCKOUT_TARGET and LOCKOUT_STOP_FILE are not set");
    };
    let target: SocketAddr = target.parse().expect("LOCKOUT_TARGET is IP:PORT");
    let stop = Arc::new(AtomicBool::new(false));
    let watch = stop.clone();
    tokio::spawn(async move {
        while !Path::new(&stop_file).exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        watch.store(true, Ordering::Relaxed);
    });
    let tally = Arc::new(Tally::default());
    let any = IpAddr::from([0, 0, 0, 0]);
    attack(target, None, vec![any], true, stop, tally.clone()).await;
    println!(
        "attack: opened={} refused={} evicted={} stalled={} closed={} other={}",
        tally.opened.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.evicted.load(Ordering::Relaxed),
        tally.stalled.load(Ordering::Relaxed),
        tally.closed.load(Ordering::Relaxed),
        tally.other.lock().unwrap().len()
    );
}
