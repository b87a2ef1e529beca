//! The locker between in-process nodes on 127.0.0.1 (no multicast): deposits placed on several
//! holders with one upload, listed and retrieved only by their owner, budgets refused up front,
//! a damaged copy skipped.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{FileNode as Node, file_node, link, pattern};
use lanyard::node::NodeConfig;
use lanyard::node::api::{DepositPolicy, rank_holders};
use lanyard::node::api::{FailKind, Failure};

async fn node(nick: &str, tweak: impl FnOnce(&mut NodeConfig)) -> Node {
    file_node(nick, tweak).await
}

fn tree(root: &Path) -> PathBuf {
    let top = root.join("course");
    std::fs::create_dir_all(top.join("notes/empty")).unwrap();
    for i in 0..4 {
        std::fs::write(top.join(format!("notes/n{i}.txt")), pattern(100 + i * 1000, i as u64)).unwrap();
    }
    std::fs::write(top.join("image.bin"), pattern(3 << 20, 99)).unwrap();
    top
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".lanyard-partial") {
                continue;
            }
            if p.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(base, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every regular file below `dir`.
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(regular_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// ada, and the holders `nicks` linked to her.
async fn owner_and_holders(nicks: &[&str]) -> (Node, Vec<Node>) {
    let owner = node("ada", |_| {}).await;
    let mut holders = Vec::new();
    for nick in nicks {
        let h = node(nick, |_| {}).await;
        link(&owner, &h).await;
        holders.push(h);
    }
    (owner, holders)
}

fn locker_of(n: &Node) -> PathBuf {
    n.handle.config().data_dir.join("locker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deposits_are_placed_listed_and_retrieved_by_their_owner_only() {
    let (owner, holders) = owner_and_holders(&["bob", "cy", "dee"]).await;
    let src = tempfile::tempdir().unwrap();
    let top = tree(src.path());

    let report = owner.handle.deposit(&top, 2, &[]).await.unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.deposit.replicas_verified, 2);
    assert_eq!(report.deposit.name, "course");
    let id = report.deposit.id.clone();
    // The copies are where placement puts them, owner-only, and in no download dir.
    let ids: Vec<_> = holders.iter().map(|h| h.handle.id().clone()).collect();
    let chosen = rank_holders(&id, &ids);
    for h in &holders {
        let copy = locker_of(h).join(owner.handle.id().as_str()).join(&id).join("course");
        let holds = chosen[..2].contains(h.handle.id());
        assert_eq!(copy.is_dir(), holds, "{}", h.handle.config().nick.clone().unwrap());
        assert!(regular_files(&h.downloads).is_empty(), "nothing lands in Downloads");
        if holds {
            assert_eq!(files(&copy), files(&top));
            for f in regular_files(&copy) {
                let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", f.display());
            }
            let held = h.handle.held().await.unwrap();
            assert_eq!(held.held.len(), 1);
            assert_eq!(held.used, report.deposit.bytes);
        }
    }

    // Listed with its holders verified.
    let listed = owner.handle.deposits().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].replicas_verified, 2);
    assert!(listed[0].holders.iter().all(|h| h.verified && h.online));

    // The same content again: only the replica count changes.
    let again = owner.handle.deposit(&top, 3, &[]).await.unwrap();
    assert!(again.complete);
    assert_eq!(again.deposit.id, id);
    assert_eq!(again.deposit.replicas_verified, 3);
    assert!(again.note.contains("2 → 3"), "{}", again.note);

    // Retrieved whole, never over what is there.
    let out = tempfile::tempdir().unwrap();
    let got = owner.handle.retrieve("course", Some(out.path().to_path_buf())).await.unwrap();
    assert!(got.outcome.all_ok());
    assert_eq!(files(&out.path().join("course")), files(&top));
    owner.handle.retrieve(&id[..8], Some(out.path().to_path_buf())).await.unwrap();
    assert_eq!(files(&out.path().join("course (1)")), files(&top));

    // Anyone else: no such deposit, by name or by id, even linked to every holder.
    let eve = node("eve", |_| {}).await;
    for h in &holders {
        link(&eve, h).await;
    }
    for spec in ["course", id.as_str()] {
        let e = eve.handle.retrieve(spec, None).await.unwrap_err();
        let f = e.downcast_ref::<Failure>().expect("a failure");
        assert_eq!(f.kind, FailKind::NotFound);
        assert!(f.message.starts_with("no such deposit"), "{}", f.message);
    }
    assert!(eve.handle.deposits().await.unwrap().is_empty());

    // Fewer replicas: the extra copy goes; dropping removes them all.
    let fewer = owner.handle.deposit(&top, 1, &[]).await.unwrap();
    assert_eq!(fewer.deposit.replicas_verified, 1);
    let copies = holders
        .iter()
        .filter(|h| locker_of(h).join(owner.handle.id().as_str()).join(&id).exists())
        .count();
    assert_eq!(copies, 1);
    owner.handle.drop_deposit("course").await.unwrap();
    assert!(owner.handle.deposits().await.unwrap().is_empty());
    for h in &holders {
        assert!(h.handle.held().await.unwrap().held.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposit_over_a_budget_is_refused_up_front_with_the_numbers() {
    let owner = node("ada", |_| {}).await;
    let bob = node("bob", |c| c.locker.per_owner = 2 << 20).await;
    link(&owner, &bob).await;
    let src = tempfile::tempdir().unwrap();
    let small = src.path().join("small.bin");
    std::fs::write(&small, pattern(1 << 20, 1)).unwrap();
    let big = src.path().join("big.bin");
    std::fs::write(&big, pattern(3 << 19, 2)).unwrap();
    assert!(owner.handle.deposit(&small, 1, &[]).await.unwrap().complete);
    let refused = owner.handle.deposit(&big, 1, &[]).await.unwrap();
    assert!(!refused.complete);
    let why = refused.refused.join("\n");
    assert!(why.contains("bob holds at most 2 MiB for you; 1 MiB used"), "{why}");
    assert_eq!(regular_files(&locker_of(&bob)).len(), 1, "nothing of the refused one was written");

    let none = node("cy", |c| c.locker.policy = DepositPolicy::None).await;
    link(&owner, &none).await;
    let r = owner.handle.deposit(&big, 1, &[none.handle.id().clone()]).await.unwrap();
    assert!(r.refused.join("").contains("cy holds no deposits"), "{:?}", r.refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_copy_is_skipped_and_dropped() {
    let (owner, holders) = owner_and_holders(&["bob", "cy"]).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("data.bin");
    std::fs::write(&file, pattern(5 << 20, 7)).unwrap();
    let report = owner.handle.deposit(&file, 2, &[]).await.unwrap();
    assert!(report.complete);
    let id = report.deposit.id;
    // The holder a retrieve asks first has its copy damaged.
    let ids: Vec<_> = holders.iter().map(|h| h.handle.id().clone()).collect();
    let first = rank_holders(&id, &ids)[0].clone();
    let bad = holders.iter().find(|h| *h.handle.id() == first).unwrap();
    let copy = locker_of(bad).join(owner.handle.id().as_str()).join(&id).join("data.bin");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[3 << 20] ^= 1;
    std::fs::write(&copy, bytes).unwrap();

    let out = tempfile::tempdir().unwrap();
    let got = owner.handle.retrieve("data.bin", Some(out.path().to_path_buf())).await.unwrap();
    assert_eq!(std::fs::read(out.path().join("data.bin")).unwrap(), std::fs::read(&file).unwrap());
    assert_eq!(got.skipped.len(), 1, "{:?}", got.skipped);
    assert!(got.skipped[0].contains("damaged"), "{:?}", got.skipped);
    // The damaged copy is gone from its holder, and the owner sees one verified copy.
    assert!(!copy.exists());
    let listed = owner.handle.deposits().await.unwrap();
    assert_eq!(listed[0].replicas_verified, 1);
}

/// The first `Deposits` event whose list `pred` likes (within a generous deadline).
async fn deposits_event(
    events: &mut lanyard::node::events::Subscription,
    pred: impl Fn(&[lanyard::node::api::DepositView]) -> bool,
) -> Vec<lanyard::node::api::DepositView> {
    use lanyard::node::events::{Event, RecvError};
    let wait = async {
        loop {
            match events.recv().await {
                Ok(Event::Deposits { deposits }) if pred(&deposits) => return deposits,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("the node stopped"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("a Deposits event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_snapshot_and_the_events_carry_my_deposits() {
    let (owner, holders) = owner_and_holders(&["bob", "cy"]).await;
    let mut events = owner.handle.subscribe();
    assert!(owner.handle.snapshot().await.unwrap().deposits.is_empty());
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("thesis.pdf");
    std::fs::write(&file, pattern(1 << 20, 3)).unwrap();
    let report = owner.handle.deposit(&file, 2, &[]).await.unwrap();
    assert!(report.complete);
    // Faces are told the copies placed, without asking.
    let both = deposits_event(&mut events, |d| d.len() == 1 && d[0].replicas_verified == 2).await;
    assert_eq!((both[0].id.as_str(), both[0].replicas_wanted), (report.deposit.id.as_str(), 2));
    // The snapshot has the same record: holders, each verified.
    let snap = owner.handle.snapshot().await.unwrap();
    assert_eq!(snap.deposits.len(), 1);
    let d = &snap.deposits[0];
    assert_eq!((d.name.as_str(), d.replicas_wanted, d.replicas_verified), ("thesis.pdf", 2, 2));
    let mut held_by: Vec<String> = d.holders.iter().filter(|h| h.verified).map(|h| h.id.clone()).collect();
    held_by.sort();
    let mut want: Vec<String> = holders.iter().map(|h| h.handle.id().to_string()).collect();
    want.sort();
    assert_eq!(held_by, want);
    // Dropped: the list faces hear is empty again.
    owner.handle.drop_deposit("thesis.pdf").await.unwrap();
    deposits_event(&mut events, |d| d.is_empty()).await;
    assert!(owner.handle.snapshot().await.unwrap().deposits.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deposits_offered_at_once_cannot_together_pass_a_budget() {
    // Two owners at once, and room for one deposit in all.
    let bob = node("bob", |c| c.locker.total = 12 << 20).await;
    let (ada, eve) = (node("ada", |_| {}).await, node("eve", |_| {}).await);
    link(&ada, &bob).await;
    link(&eve, &bob).await;
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (src.path().join("a.bin"), src.path().join("b.bin"));
    std::fs::write(&a, pattern(8 << 20, 1)).unwrap();
    std::fs::write(&b, pattern(8 << 20, 2)).unwrap();
    let to = [bob.handle.id().clone()];
    let (ra, rb) = tokio::join!(ada.handle.deposit(&a, 1, &to), eve.handle.deposit(&b, 1, &to));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Each alone fits; both do not: one is held, the other refused with the numbers.
    assert!(ra.complete != rb.complete, "{ra:?}\n{rb:?}");
    let refused = if ra.complete { &rb } else { &ra };
    assert!(
        refused.refused.join("").contains("bob holds at most 12 MiB of deposits in all"),
        "{:?}",
        refused.refused
    );
    let held = bob.handle.held().await.unwrap();
    assert_eq!(held.held.len(), 1);
    assert!(held.used <= 12 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_rebuilt_from_holders_keeps_the_copies_its_owner_wants() {
    let (owner, holders) = owner_and_holders(&["bob", "cy", "dee"]).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("report.bin");
    std::fs::write(&file, pattern(1 << 20, 5)).unwrap();
    assert!(owner.handle.deposit(&file, 3, &[]).await.unwrap().complete);
    // The same identity on another machine, while one holder is away: two copies found.
    let key = owner.handle.config().data_dir.join("identity.key");
    owner.handle.shutdown().await;
    holders[2].handle.shutdown().await;
    let again = node("ada", |c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::copy(&key, c.data_dir.join("identity.key")).unwrap();
    })
    .await;
    assert_eq!(again.handle.id(), owner.handle.id());
    for h in &holders[..2] {
        link(&again, h).await;
    }
    let listed = again.handle.deposits().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].replicas_verified, 2);
    assert_eq!(listed[0].replicas_wanted, 3, "as its owner asked, not the copies found");
}
