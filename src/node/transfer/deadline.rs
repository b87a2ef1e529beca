//! The progress deadline of one transfer: it ends when no byte moved for the node's stall limit
//! (`limits::TRANSFER_STALL`), except while it waits for a person's answer, which has a
//! deadline of its own. Both halves of a transfer (the one streaming, the one collecting
//! verdicts) share it, so one half moving keeps the other's wait alive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::node::slots::{Activity, now_ms};

pub(crate) struct Deadline {
    activity: Activity,
    limit: Duration,
    /// Until then (in `now_ms` time) the stall limit does not apply: a person decides.
    held_until: AtomicU64,
}

impl Deadline {
    pub(crate) fn new(limit: Duration, activity: Activity) -> Deadline {
        Deadline {
            activity,
            limit,
            held_until: AtomicU64::new(0),
        }
    }

    /// Bytes moved: the stall clock starts again.
    pub(crate) fn moved(&self) {
        self.activity.touch();
    }

    /// Wait on a person for up to `d`: no stall until then.
    pub(crate) fn hold(&self, d: Duration) {
        self.held_until.store(now_ms() + d.as_millis() as u64, Ordering::Relaxed);
    }

    /// The person answered: the stall clock runs again, from now.
    pub(crate) fn release(&self) {
        self.held_until.store(0, Ordering::Relaxed);
        self.moved();
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    fn due_ms(&self) -> u64 {
        (self.activity.last_ms() + self.limit.as_millis() as u64).max(self.held_until.load(Ordering::Relaxed))
    }

    /// Resolves once nothing moved for the limit (and nobody is being waited on).
    pub(crate) async fn passed(&self) {
        loop {
            let (now, due) = (now_ms(), self.due_ms());
            if now >= due {
                return;
            }
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
    }
}
