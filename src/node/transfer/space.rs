//! Disk space for what we accept. An offer is taken only if its bytes (less what a resume
//! already holds) fit in the free space of the file system it lands on, after what the
//! transfers already running there will still write, with a margin left free.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::limits::{DISK_MARGIN_MIN, DISK_MARGIN_PERCENT};
use crate::node::lock;
use crate::text::human_bytes;

/// What running receives will still write, per file system; and a test's stand-in for the
/// free space.
#[derive(Default)]
pub(crate) struct Space {
    promised: Mutex<Vec<(u64, Arc<AtomicU64>)>>,
    /// Test hook: free bytes to assume instead of asking the file system.
    pretend_free: Mutex<Option<u64>>,
}

/// Bytes one transfer may still write; given back as they are written, and all of it when
/// dropped.
pub(crate) struct Reservation {
    shared: Arc<crate::node::Shared>,
    left: Arc<AtomicU64>,
}

impl Reservation {
    /// `n` bytes were written.
    pub(crate) fn written(&self, n: u64) {
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(l.saturating_sub(n)));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.shared.transfers.space.promised).retain(|(_, l)| !Arc::ptr_eq(l, &self.left));
    }
}

/// The free space kept on top of what a transfer needs: file system overhead grows with it,
/// and a disk filled to the last byte hurts everything else on the machine.
pub(crate) fn margin(needed: u64) -> u64 {
    DISK_MARGIN_MIN.max(needed / 100 * DISK_MARGIN_PERCENT)
}

impl Space {
    #[cfg(feature = "test-hooks")]
    pub(crate) fn pretend_free(&self, bytes: Option<u64>) {
        *lock(&self.pretend_free) = bytes;
    }

    /// Promise `needed` bytes on the file system of `dir`, or say why not (a line for the
    /// sender and for our own faces, naming `me`).
    pub(crate) fn reserve(shared: &Arc<crate::node::Shared>, dir: BorrowedFd<'_>, needed: u64, me: &str) -> Result<Reservation, String> {
        let space = &shared.transfers.space;
        let dev = rustix::fs::fstat(dir).map(|s| s.st_dev).unwrap_or(0);
        let free = match *lock(&space.pretend_free) {
            Some(free) => free,
            None => match rustix::fs::fstatvfs(dir) {
                Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
                Err(e) => {
                    // Unknown: the writes themselves will say if it does not fit.
                    tracing::warn!("cannot tell the free space of the download folder: {e}");
                    u64::MAX
                }
            },
        };
        let mut promised = lock(&space.promised);
        let others: u64 = promised
            .iter()
            .filter(|(d, _)| *d == dev)
            .map(|(_, l)| l.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add);
        let free = free.saturating_sub(others);
        let keep = margin(needed);
        if needed > 0 && needed.saturating_add(keep) > free {
            let running = if others > 0 {
                format!(" after the {} promised to running transfers", human_bytes(others))
            } else {
                String::new()
            };
            return Err(format!(
                "not enough disk space on {me}: needs {} (and {} kept free), {} free{running}",
                human_bytes(needed),
                human_bytes(keep),
                human_bytes(free)
            ));
        }
        let left = Arc::new(AtomicU64::new(needed));
        promised.push((dev, left.clone()));
        Ok(Reservation {
            shared: shared.clone(),
            left,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_floor_or_a_share_of_the_transfer() {
        assert_eq!(margin(0), DISK_MARGIN_MIN);
        assert_eq!(margin(1 << 20), DISK_MARGIN_MIN);
        let big = 1u64 << 40;
        assert_eq!(margin(big), big / 100 * DISK_MARGIN_PERCENT);
        assert!(margin(u64::MAX) < u64::MAX);
    }
}
