//! A relay's memory while it forwards a big file: what it holds is bounded by its pipes and
//! spare buffers (`limits::SPARE_SEGMENTS`), not by the file's size. Alone in its test binary:
//! it reads the process's RSS, which other tests running beside it would move.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{file_node, link};

/// The forwarded file: big enough that holding it would show well above the pipes' few MiB.
const FILE_MIB: usize = 96;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_holds_a_few_segments_of_a_big_file_not_the_file() {
    let accept = |c: &mut lanyard::node::NodeConfig| c.accept_all = true;
    let (ada, bob, carol) = (
        file_node("ada", accept).await,
        file_node("bob", accept).await,
        file_node("carol", accept).await,
    );
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("big.bin");
    {
        // Written a MiB at a time: the test itself must not hold the file either.
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..FILE_MIB {
            f.write_all(&common::pattern(1 << 20, i as u64)).unwrap();
        }
    }
    let ids = vec![link(&ada, &bob).await, link(&ada, &carol).await];

    let before = rss_kib();
    let (peak, sampling) = (Arc::new(AtomicU64::new(before)), Arc::new(AtomicBool::new(true)));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let group = ada.handle.send_group(&ids, std::slice::from_ref(&path)).await.unwrap();
    for (peer, result) in group.wait().await {
        let outcome = result.unwrap_or_else(|e| panic!("{peer}: {e}"));
        assert!(outcome.all_ok(), "{peer}: {:?}", outcome.failed);
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    for n in [&bob, &carol] {
        let got = std::fs::metadata(n.downloads.join("big.bin")).unwrap().len();
        assert_eq!(got, (FILE_MIB << 20) as u64);
    }
    // Three nodes in this process: the sender's reading pipe, bob's receive and his forward to
    // carol, carol's receive, each a few 1 MiB segments. Holding the forwarded file (as a relay
    // once did) is FILE_MIB more.
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before) / 1024;
    eprintln!(
        "RSS {} MiB before, grew {grew} MiB while {FILE_MIB} MiB were relayed",
        before / 1024
    );
    assert!(
        grew < (FILE_MIB / 2) as u64,
        "the process grew {grew} MiB while a relay forwarded {FILE_MIB} MiB"
    );
}
