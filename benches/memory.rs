//! Does a node's memory go back after a burst? Prints figures, never asserts. The node under
//! test is a real `lanyard serve` process (the binary in `LANYARD_BIN`, else this build's), so
//! its RSS is its own; the attackers and the honest peer run here. Three bursts, one after the
//! other, each followed by 30 s of quiet:
//!
//! - flood: 128 throwaway keys from 127.0.0.2–9 (16 each) each send `FLOOD_LINES` (900) `#all`
//!   lines of 16 KiB without waiting for answers, while a trusted peer says one line;
//! - offers: `OFFER_ROUNDS` (4) throwaway keys one after the other each offer 100,000 names of
//!   ~650 bytes (64 MiB of names), accepted (the node runs with `--accept-all`), then hang up;
//! - transfer: the trusted peer sends a 1 GiB file (`TRANSFER_MIB`).
//!
//! For each: RSS before, its peak (sampled every 50 ms, with the most threads the node ran), at
//! the end, 30 s later (`SETTLE_S`), and what the node wrote to disk (`/proc/PID/io`
//! write_bytes). Linux only (it reads /proc and binds 127.0.0.x source addresses). `benches/memory.sh` runs it for each allocator candidate.
//!
//! Run: `cargo bench --bench memory` (the environment, e.g. `MALLOC_ARENA_MAX`, is passed on to
//! the node).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lanyard::fuzzing::net::secure;
use lanyard::fuzzing::net::wire::{ControlMsg, Hello, MAX_CONTROL_FRAME, Purpose};
use lanyard::fuzzing::new_message_id;
use lanyard::fuzzing::transfer::wire::{ITEMS_FRAME_BYTES, Item, MAX_TRANSFER_FRAME, TransferMsg};
use lanyard::identity::Identity;
use lanyard::limits::MAX_CHAT_TEXT;
use lanyard::node::api::{ChatTarget, NodeConfig, NodeHandle};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

const PATIENCE: Duration = Duration::from_secs(300);

fn count(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A number in /proc/PID/status (sizes there are in KiB).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Bytes the process caused to be written to storage.
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn hello() -> Hello {
    Hello {
        nick: "mallory".into(),
        host: "evil".into(),
        listen_port: None,
        software: "bench".into(),
        session: 1,
    }
}

struct Victim {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    data: PathBuf,
    downloads: PathBuf,
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_victim(bin: &Path, dir: &Path) -> Victim {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (data, downloads) = (dir.join("victim"), dir.join("victim-downloads"));
    let child = Command::new(bin)
        .env("LANYARD_NO_LOCALSEND", "1")
        .args([
            "serve",
            "--no-mdns",
            "--accept-all",
            "--nick",
            "victim",
            "--port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--download-dir")
        .arg(&downloads)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node under test");
    let pid = child.id();
    Victim {
        child,
        pid,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        data,
        downloads,
    }
}

/// Run `burst` while sampling the victim's RSS, then wait, and print the figures.
async fn phase(name: &str, victim: &Victim, burst: impl std::future::Future<Output = String>) {
    let pid = victim.pid;
    let settle = Duration::from_secs(count("SETTLE_S", 30));
    let before = rss(pid);
    let written_before = written(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let threads = Arc::new(AtomicU64::new(status_kib(pid, "Threads:")));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, threads, running) = (peak.clone(), threads.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                threads.fetch_max(status_kib(pid, "Threads:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let what = burst.await;
    let took = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let end = rss(pid);
    tokio::time::sleep(settle).await;
    let after = rss(pid);
    println!(
        "{name}: RSS before {} MiB, peak {} MiB, at the end {} MiB, {} s later {} MiB; written to disk {} MiB; threads at most {}; {what} in {:.1} s",
        mib(before),
        mib(peak.load(Ordering::Relaxed).max(end)),
        mib(end),
        settle.as_secs(),
        mib(after),
        (written(pid) - written_before) >> 20,
        threads.load(Ordering::Relaxed),
        took.as_secs_f64(),
    );
}

/// One throwaway key from `src`: `lines` room lines of 16 KiB at once; the answers it got.
async fn flooder(target: SocketAddr, src: IpAddr, lines: u64, gate: Arc<Semaphore>) -> Option<(u64, u64)> {
    let turn = gate.acquire_owned().await.ok()?;
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(src, 0)).ok()?;
    let sock = socket.connect(target).await.ok()?;
    let me = Identity::generate().ok()?;
    let conn = secure::connect(sock, &me, &hello(), Purpose::Control, None).await.ok()?;
    drop(turn);
    let (mut reader, mut writer) = (conn.reader, conn.writer);
    let sending = tokio::spawn(async move {
        let text = "x".repeat(MAX_CHAT_TEXT);
        for _ in 0..lines {
            let line = ControlMsg::Chat {
                id: new_message_id(),
                room: true,
                sent_ms: 1,
                text: text.clone(),
            };
            writer.send(&line).await.ok()?;
        }
        Some(writer)
    });
    let (mut acked, mut refused) = (0, 0);
    while acked + refused < lines {
        match reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME).await.ok()?? {
            ControlMsg::ChatAck { .. } => acked += 1,
            ControlMsg::ChatRefused { .. } => refused += 1,
            ControlMsg::Bye { .. } => break,
            _ => {}
        }
    }
    drop(sending.await);
    Some((acked, refused))
}

async fn flood(victim: &Victim, trusted: &NodeHandle, victim_id: &lanyard::identity::PeerId) -> String {
    let lines = count("FLOOD_LINES", 900);
    let gate = Arc::new(Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for k in 0..128u8 {
        set.spawn(flooder(victim.addr, IpAddr::from([127, 0, 0, 2 + k % 8]), lines, gate.clone()));
    }
    let t = Instant::now();
    let delivered = match trusted.say(&ChatTarget::Peer(victim_id.clone()), "an honest line").await {
        Ok(id) => match trusted.wait_delivered(&id, PATIENCE).await {
            Ok(true) => format!("delivered in {:.2} s", t.elapsed().as_secs_f64()),
            _ => "NOT delivered".to_string(),
        },
        Err(e) => format!("not said: {e}"),
    };
    let (mut acked, mut refused, mut cut) = (0, 0, 0);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Some((a, r))) => (acked, refused) = (acked + a, refused + r),
            _ => cut += 1,
        }
    }
    format!(
        "128 keys x {lines} lines of 16 KiB from 8 addresses: {acked} acknowledged, {refused} refused, {cut} flooders cut off; the trusted peer's line {delivered}"
    )
}

/// A throwaway key offers 100,000 long names; the node accepts; the key hangs up.
async fn big_offer(victim: &Victim, round: u8) -> bool {
    let Ok(socket) = TcpSocket::new_v4() else {
        return false;
    };
    if socket.bind(SocketAddr::from(([127, 0, 0, 20 + round], 0))).is_err() {
        return false;
    }
    let Ok(sock) = socket.connect(victim.addr).await else {
        return false;
    };
    let Ok(me) = Identity::generate() else { return false };
    let Ok(mut conn) = secure::connect(sock, &me, &hello(), Purpose::Transfer, None).await else {
        return false;
    };
    let count: u32 = 100_000;
    let header = TransferMsg::Offer {
        transfer: format!("{:032x}", 0xbe_u128 << 64 | u128::from(round)),
        items: count,
        bytes: u64::from(count),
        relay: vec![],
        origin: None,
    };
    if conn.writer.send(&header).await.is_err() {
        return false;
    }
    let mut i = 0;
    while i < count {
        let mut items = Vec::new();
        let mut bytes = 0;
        while i < count && bytes < ITEMS_FRAME_BYTES {
            let path = format!("top/{}/{}/{i:08}-{}", "a".repeat(200), "b".repeat(200), "c".repeat(240));
            bytes += path.len();
            items.push(Item {
                path,
                size: 1,
                mtime: 1,
                dir: false,
                root: serde_bytes::ByteBuf::from(vec![0u8; 32]),
            });
            i += 1;
        }
        if conn.writer.send(&TransferMsg::Items { items }).await.is_err() {
            return false;
        }
    }
    let answer = tokio::time::timeout(PATIENCE, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)).await;
    match answer {
        Ok(Ok(Some(TransferMsg::Accept { .. }))) => true,
        other => {
            println!("offer {round}: not accepted: {other:?}");
            false
        }
    }
}

async fn offers(victim: &Victim) -> String {
    let rounds = count("OFFER_ROUNDS", 4) as u8;
    let mut accepted = 0;
    for round in 0..rounds {
        accepted += u32::from(big_offer(victim, round).await);
    }
    format!("{rounds} offers of 100,000 names, one after the other: {accepted} accepted")
}

async fn transfer(victim: &Victim, trusted: &NodeHandle, victim_id: &lanyard::identity::PeerId, dir: &Path) -> String {
    let size = count("TRANSFER_MIB", 1024) << 20;
    let file = dir.join("big.bin");
    // Sparse: reading it costs no disk; the node under test writes every byte.
    std::fs::File::create(&file).and_then(|f| f.set_len(size)).expect("a big file");
    let outcome = match trusted.send(victim_id, std::slice::from_ref(&file)).await {
        Ok(task) => match task.wait().await {
            Ok(o) if o.all_ok() => "verified".to_string(),
            Ok(o) => format!("FAILED: {:?}", o.failed),
            Err(e) => format!("FAILED: {e}"),
        },
        Err(e) => format!("FAILED: {e}"),
    };
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(victim.downloads.join("big.bin"));
    format!("{} MiB sent by the trusted peer: {outcome}", size >> 20)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::net::UdpSocket::bind("127.0.0.2:0").is_err() {
        println!("SKIP memory bench: cannot bind 127.0.0.x source addresses (Linux loopback needed)");
        return;
    }
    let bin = std::env::var_os("LANYARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lanyard")));
    let dir = tempfile::tempdir().expect("a scratch dir");
    let victim = start_victim(&bin, dir.path());
    let mut config = NodeConfig::local("trusted", dir.path().join("trusted"));
    config.download_dir = dir.path().join("trusted-downloads");
    let trusted = NodeHandle::start(config).await.expect("start the trusted peer");
    let victim_id = {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match trusted.resolve(&victim.addr.to_string(), Duration::from_secs(5)).await {
                Ok(id) => break id,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => panic!("the node under test never answered: {e}"),
            }
        }
    };
    let trust = Command::new(&bin)
        .args(["trust", trusted.id().as_str()])
        .arg("--data-dir")
        .arg(&victim.data)
        .output()
        .expect("run lanyard trust");
    assert!(trust.status.success(), "trust: {}", String::from_utf8_lossy(&trust.stderr));
    println!(
        "memory: {} (MALLOC_ARENA_MAX={}), idle RSS {} MiB",
        bin.display(),
        std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".into()),
        mib(rss(victim.pid))
    );
    phase("flood", &victim, flood(&victim, &trusted, &victim_id)).await;
    phase("offers", &victim, offers(&victim)).await;
    phase("transfer", &victim, transfer(&victim, &trusted, &victim_id, dir.path())).await;
    trusted.shutdown().await;
}
