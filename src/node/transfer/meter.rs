//! A transfer's progress while bytes move: reported at most ten times a second however many
//! chunks or files go by.

use std::time::{Duration, Instant};

use super::ctx::Ctx;
use super::progress::{TransferState, TransferView};

const EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Meter {
    started: Instant,
    moved: u64,
    last: Option<Instant>,
    /// What was last published, to keep what the meter does not own (state, saved_to).
    p: TransferView,
}

impl Meter {
    pub fn new(ctx: &Ctx, files: u32, total: u64) -> Meter {
        let mut p = ctx.view();
        p.state = TransferState::Running;
        p.files = files;
        p.total = total;
        // From zero: the same view may run a second time (a recipient re-attached in a later
        // round of a relayed send).
        (p.bytes, p.resumed, p.files_done, p.file_bytes) = (0, 0, 0, 0);
        // Nor what an earlier round said of it (why it failed then).
        p.message = None;
        (p.rate, p.eta_secs) = (0, None);
        Meter {
            p,
            started: Instant::now(),
            moved: 0,
            last: None,
        }
    }

    pub fn start_file(&mut self, name: &str, size: u64, offset: u64) {
        self.p.file = name.to_string();
        self.p.file_size = size;
        self.p.file_bytes = offset;
        self.p.bytes = self.p.bytes.saturating_add(offset);
        self.p.resumed = self.p.resumed.saturating_add(offset);
    }

    /// Bytes moved; reports when the last report is old enough.
    pub fn advance(&mut self, ctx: &Ctx, n: u64) {
        self.p.file_bytes = self.p.file_bytes.saturating_add(n);
        self.p.bytes = self.p.bytes.saturating_add(n);
        self.moved = self.moved.saturating_add(n);
        self.maybe_emit(ctx, false);
    }

    /// A file or folder is done (whatever its fate); the last one always reports.
    pub fn end_file(&mut self, ctx: &Ctx) {
        self.p.files_done = self.p.files_done.saturating_add(1);
        let last = self.p.files_done >= self.p.files;
        self.maybe_emit(ctx, last);
    }

    /// Skip the rest of a file that will not be moved (aborted or failed).
    pub fn skip(&mut self, remaining: u64) {
        self.p.bytes = self.p.bytes.saturating_add(remaining);
    }

    fn maybe_emit(&mut self, ctx: &Ctx, force: bool) {
        let now = Instant::now();
        if !force && self.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64();
        self.p.rate = if secs > 0.0 { (self.moved as f64 / secs) as u64 } else { 0 };
        self.p.percent = percent(self.p.bytes, self.p.total);
        self.p.eta_secs = match self.p.rate {
            0 => None,
            r => Some(self.p.total.saturating_sub(self.p.bytes) / r),
        };
        let p = &self.p;
        ctx.update(|v| {
            v.state = TransferState::Running;
            v.file.clone_from(&p.file);
            v.file_bytes = p.file_bytes;
            v.file_size = p.file_size;
            v.files_done = p.files_done;
            v.files = p.files;
            v.bytes = p.bytes;
            v.resumed = p.resumed;
            v.total = p.total;
            v.percent = p.percent;
            v.rate = p.rate;
            v.eta_secs = p.eta_secs;
        });
    }
}

fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    ((done.min(total) as u128 * 100) / total as u128) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_bounded() {
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(5, 10), 50);
        assert_eq!(percent(u64::MAX, 10), 100);
        assert_eq!(percent(u64::MAX / 2, u64::MAX), 49);
    }
}
