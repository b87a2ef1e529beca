//! When to look for peers over mDNS. Looking is not free: a browsing mdns-sd daemon walks its
//! cache of every other node's records at each wake-up, and wakes for each record's refresh
//! timers, so in a lab of 100 an idle node spent 0.2 % of a core on it (the lab: 22 %; without
//! browsing: 1.7 %). So a node looks when it starts, and whenever it has no peer at all; once it
//! has been in the lab for [`SETTLE`], it stops, and newcomers reach it by their own search (it
//! keeps answering and announcing) and by peer exchange. Every [`SWEEP_EVERY`] it looks again
//! for [`SWEEP_FOR`], so two groups that never met (a switch that came up late) still merge.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How long a node looks after it starts, or after it found itself alone.
const SETTLE: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(600);
const SWEEP_FOR: Duration = Duration::from_secs(20);

pub(crate) async fn schedule(shared: Arc<Shared>) {
    let mut changed = shared.changed.subscribe();
    let mut look_for = SETTLE;
    loop {
        // Looking now.
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(look_for) => {}
        }
        if shared.peers().online_count() == 0 {
            look_for = SETTLE;
            continue;
        }
        set_browsing(&shared, false).await;
        let sweep_at = tokio::time::Instant::now() + SWEEP_EVERY;
        let lonely = loop {
            changed.borrow_and_update();
            if shared.peers().online_count() == 0 {
                break true;
            }
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(sweep_at) => break false,
            }
        };
        if lonely {
            tracing::info!("no peer left: looking for peers over mDNS again");
        }
        set_browsing(&shared, true).await;
        look_for = if lonely { SETTLE } else { SWEEP_FOR };
    }
}

async fn set_browsing(shared: &Shared, on: bool) {
    let mut discovery = shared.discovery.lock().await;
    let Some(d) = discovery.as_mut() else { return };
    if on {
        if let Err(e) = d.browse() {
            tracing::warn!("{e:#}");
        }
        return;
    }
    d.stop_browsing();
    drop(discovery);
    // A peer that leaves from now on must not be dialled for the rest of the session.
    shared.peers().forget_mdns_presence();
}
