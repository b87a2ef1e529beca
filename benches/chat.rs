//! Chat figures (prints, never asserts on time): two nodes in this process on 127.0.0.1, no
//! mDNS, one control connection between them.
//!
//! - round trip: `say` → delivered (stored on both sides, acked), one line at a time, 1,000
//!   lines: p50 / p99 / max.
//! - burst: 10,000 lines said back to back, then wait until every one is delivered: lines per
//!   second, and how many the receiver is missing (must be 0) or has out of order.
//!
//! Run: `cargo bench --bench chat` (ROUND_TRIPS and BURST override the counts). The data dirs are
//! made by `tempfile` (TMPDIR): put them on a disk, not a tmpfs, to measure the fsyncs
//! (synchronous=FULL: one per committed transaction).

use std::time::{Duration, Instant};

use lanyard::node::api::DbBudget;
use lanyard::node::api::{ChatTarget, NodeConfig, NodeHandle};

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn run() -> anyhow::Result<()> {
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    // A burst is a flood by the budgets' measure: lift the rate and size budgets, to measure the
    // pipeline (the database commits, the window, the acks) rather than the refusals.
    let open = |nick: &str, dir: &std::path::Path| {
        let mut config = NodeConfig::local(nick, dir.to_path_buf());
        config.db_budget = DbBudget::lifted();
        config
    };
    let ada = NodeHandle::start(open("ada", da.path())).await?;
    let bob = NodeHandle::start(open("bob", db.path())).await?;
    ada.add_peer(&bob.listen_addr().expect("bob listens").to_string());
    anyhow::ensure!(ada.wait_online(bob.id(), Duration::from_secs(10)).await, "no connection");
    let to_bob = ChatTarget::Peer(bob.id().clone());
    let patience = Duration::from_secs(60);

    // Warm up the connection, the statement cache and the allocator.
    for i in 0..50 {
        let id = ada.say(&to_bob, &format!("warm-up {i}")).await?;
        ada.wait_delivered(&id, patience).await?;
    }

    let n = count("ROUND_TRIPS", 1000);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let id = ada.say(&to_bob, &format!("round trip {i}")).await?;
        anyhow::ensure!(ada.wait_delivered(&id, patience).await?, "round trip {i} not delivered");
        times.push(t0.elapsed());
    }
    times.sort();
    println!(
        "round trip say→delivered, {n} lines: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );

    let n = count("BURST", 10_000);
    let before = bob.history(ada.id().as_str(), usize::MAX).await?.len();
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(ada.say(&to_bob, &format!("burst {i}")).await?);
    }
    let stored = t0.elapsed();
    for id in &ids {
        anyhow::ensure!(ada.wait_delivered(id, patience).await?, "burst line {id} not delivered");
    }
    let all = t0.elapsed();
    let got: Vec<String> = bob
        .history(ada.id().as_str(), usize::MAX)
        .await?
        .into_iter()
        .skip(before)
        .map(|e| e.text)
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("burst {i}")).collect();
    let lost = want.iter().filter(|w| !got.contains(w)).count();
    let in_order = got == want;
    println!(
        "burst of {n} lines: all delivered in {:.3} s = {:.0} lines/s (said and stored in {:.3} s = {:.0} lines/s); \
         received {}, lost {lost}, in order: {in_order}",
        all.as_secs_f64(),
        n as f64 / all.as_secs_f64(),
        stored.as_secs_f64(),
        n as f64 / stored.as_secs_f64(),
        got.len()
    );

    ada.shutdown().await;
    bob.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}
