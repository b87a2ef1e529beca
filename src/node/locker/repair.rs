//! Keeping deposits alive. A holder re-reads what it holds now and then ([`scrub`]: one deposit
//! at a time, the one checked longest ago); a copy that no longer hashes to what was deposited
//! is deleted. An owner's node that keeps running checks its deposits ([`keep_deposits`]): a
//! holder gone longer than `deposit_repair_after`, or whose copy is lost, is replaced by a copy
//! from a healthy holder to a new one (the owner uploads nothing), so that the wanted number of
//! verified copies stays; the replaced holder's copy is dropped once it is back (`reconcile`).
//!
//! Both wake on a timer only while there is something to look after: the scrub while this node
//! holds anything, the check while it has deposits (and then its first look is the database).

use std::sync::Arc;
use std::time::Duration;

use super::db;
use super::placement;
use crate::identity::PeerId;
use crate::limits::{REPAIR_CHECK_MAX, REPAIR_CHECK_MIN};
use crate::node::transfer::held::{self, unix_ms};
use crate::node::{NodeHandle, Shared, off_thread};

/// How often an owner's node checks its deposits, for a repair delay of `after`.
pub(crate) fn check_every(after: Duration) -> Duration {
    (after / 2).clamp(REPAIR_CHECK_MIN, REPAIR_CHECK_MAX)
}

/// Re-read one held deposit per `scrub_every`, while anything is held.
pub(crate) async fn scrub(shared: Arc<Shared>) {
    let every = shared.config.locker.scrub_every;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let s = shared.clone();
        let _ = off_thread(move || scrub_one(&s)).await;
    }
}

/// Check the deposit verified longest ago, if that was over `scrub_age` ago.
fn scrub_one(shared: &Shared) {
    let now = unix_ms();
    held::expire(shared, now);
    let Ok(all) = db::held(&shared.store, None) else { return };
    let age = shared.config.locker.scrub_age.as_millis() as u64;
    let Some(h) = all
        .into_iter()
        .filter(|h| h.verified_ms.saturating_add(age) <= now)
        .min_by_key(|h| h.verified_ms)
    else {
        return;
    };
    match held::read_back(shared, &h) {
        Ok(Some(_)) => {
            let _ = db::verified(&shared.store, &h.owner, &h.id, unix_ms());
        }
        Ok(None) => {
            tracing::warn!("locker: deposit {} of {} failed its check: dropped", h.id, h.owner.short());
            held::forget(shared, &h);
        }
        Err(e) => tracing::warn!("locker: cannot check deposit {}: {e:#}", h.id),
    }
}

/// Check our deposits every [`check_every`] while this node runs.
pub(crate) async fn keep_deposits(node: NodeHandle) {
    let shared = node.shared.clone();
    let every = check_every(shared.config.locker.repair_after);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let s = shared.clone();
        let any = off_thread(move || db::deposits(&s.store).map(|d| !d.is_empty())).await;
        if !matches!(any, Ok(Ok(true))) {
            continue;
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = node.repair() => if let Err(e) = r {
                tracing::warn!("locker: checking deposits failed: {e:#}");
            },
        }
    }
}

impl NodeHandle {
    /// One check of our deposits: what each holder online lists, then a copy from a healthy
    /// holder for every copy lost or away too long.
    pub(crate) async fn repair(&self) -> anyhow::Result<()> {
        let deps = self.reconcile_deposits().await?;
        let after = self.shared.config.locker.repair_after.as_secs();
        let now_s = unix_ms() / 1000;
        let peers = self.shared.peers().list();
        let online: Vec<PeerId> = peers.iter().filter(|p| p.online).map(|p| p.id.clone()).collect();
        for mut d in deps.into_iter().filter(|d| d.replicas > 0) {
            let away_briefly = |id: &PeerId| {
                let seen = peers.iter().find(|p| &p.id == id).and_then(|p| p.last_seen);
                seen.is_some_and(|s| now_s.saturating_sub(s) < after)
            };
            let healthy: Vec<PeerId> = d
                .holders
                .iter()
                .filter(|h| h.1 && online.contains(&h.0))
                .map(|h| h.0.clone())
                .collect();
            // Away, but not for long: its copy still counts.
            let waiting = d
                .holders
                .iter()
                .filter(|h| h.1 && !online.contains(&h.0) && away_briefly(&h.0))
                .count();
            // Lost its copy, or away too long.
            let replaced: Vec<PeerId> = d
                .holders
                .iter()
                .filter(|h| !h.1 || (!online.contains(&h.0) && !away_briefly(&h.0)))
                .map(|h| h.0.clone())
                .collect();
            let have = healthy.len() + waiting;
            if have >= d.replicas as usize {
                continue;
            }
            let Some(source) = healthy.first().cloned() else {
                tracing::warn!("locker: no holder of deposit {} is online to copy it from", d.id);
                continue;
            };
            let candidates: Vec<PeerId> = online.iter().filter(|p| !d.holders.iter().any(|h| &h.0 == *p)).cloned().collect();
            let mut need = d.replicas as usize - have;
            let mut added = 0;
            for target in placement::rank(&d.id, &candidates) {
                if need == 0 {
                    break;
                }
                match held::replicate(&self.shared, &source, &target, &d.id, &d.name, d.digest).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::info!("locker: copying deposit {} to {} failed: {e}", d.id, target.short());
                        continue;
                    }
                }
                // Its own word, to our key, that it holds the content.
                let listed = held::list_at(&self.shared, &target).await.unwrap_or_default();
                if !listed.iter().any(|e| e.id == d.id && e.digest.as_slice() == d.digest) {
                    continue;
                }
                tracing::info!("locker: deposit {} copied from {} to {}", d.id, source.short(), target.short());
                self.shared.emit(crate::node::Event::Deposit {
                    deposit: d.id.clone(),
                    name: d.name.clone(),
                    change: "copied".into(),
                    peer: target.clone(),
                });
                d.holders.push((target, true, unix_ms()));
                need -= 1;
                added += 1;
            }
            // The holders replaced are forgotten: back, they drop their copy.
            let _record = self.shared.locker.record.lock().await;
            for gone in replaced.iter().take(added) {
                d.holders.retain(|h| &h.0 != gone);
                let (s, id, gone) = (self.shared.clone(), d.id.clone(), gone.clone());
                off_thread(move || db::remove_holder(&s.store, &id, &gone)).await??;
            }
            let s = self.shared.clone();
            off_thread(move || db::put_deposit(&s.store, &d)).await??;
            self.publish().await;
        }
        Ok(())
    }
}
