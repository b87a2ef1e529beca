//! Progress of one transfer, reported as events at most ten times a second however many
//! chunks or files go by.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Ctx, Direction};
use crate::identity::PeerId;
use crate::node::Event;

const EVERY: Duration = Duration::from_millis(100);

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub transfer: String,
    pub peer: PeerId,
    pub direction: Direction,
    /// The file being moved, as offered.
    pub file: String,
    pub file_bytes: u64,
    pub file_size: u64,
    pub files_done: u32,
    pub files: u32,
    /// Bytes done overall, counting what a resume did not need to move.
    pub bytes: u64,
    pub total: u64,
    pub percent: u8,
    /// Bytes per second moved since the start.
    pub rate: u64,
    pub eta_secs: Option<u64>,
}

pub(crate) struct Meter {
    p: Progress,
    started: Instant,
    moved: u64,
    last: Option<Instant>,
}

impl Meter {
    pub fn new(ctx: &Ctx, files: u32, total: u64) -> Meter {
        Meter {
            p: Progress {
                transfer: ctx.id.clone(),
                peer: ctx.peer.clone(),
                direction: ctx.direction,
                file: String::new(),
                file_bytes: 0,
                file_size: 0,
                files_done: 0,
                files,
                bytes: 0,
                total,
                percent: 0,
                rate: 0,
                eta_secs: None,
            },
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
        ctx.emit(Event::Progress(self.p.clone()));
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
