//! What a face sees of a transfer: one [`TransferView`] per transfer, kept by the node (for
//! snapshots) and sent whole with every change. While bytes move it is reported at most ten
//! times a second however many chunks or files go by.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Ctx, Direction};
use crate::identity::PeerId;
use crate::reason::Reason;
use crate::store::unix_now_ms;

const EVERY: Duration = Duration::from_millis(100);

/// Failed files a view lists (it travels whole with every change; the outcome has the rest).
pub const FAILURES_SHOWN: usize = 20;

/// What a list of items is, as a person names it: one file by its name, one folder as
/// "project/ (214 files)", several as "a.txt and 2 more (5 files)". Fed in manifest order, where
/// a folder's items follow one another.
#[derive(Default)]
pub(crate) struct Label {
    first: Option<(String, bool)>,
    tops: usize,
    last_top: String,
    files: u32,
}

impl Label {
    pub fn add(&mut self, path: &str, dir: bool) {
        let top = super::top_of(path);
        if !dir {
            self.files += 1;
        }
        if self.first.is_none() {
            self.first = Some((top.to_string(), dir || top.len() < path.len()));
        }
        if self.tops == 0 || top != self.last_top {
            self.tops += 1;
            top.clone_into(&mut self.last_top);
        }
    }

    pub fn finish(self) -> String {
        let Some((first, folder)) = self.first else {
            return "nothing".into();
        };
        let first = if folder { format!("{first}/") } else { first };
        let files = crate::text::plural(self.files, "file");
        match (self.tops, folder) {
            (1, false) => first,
            (1, true) => format!("{first} ({files})"),
            (n, _) => format!("{first} and {} more ({files})", n - 1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Reaching the peer.
    Connecting,
    /// Offered; the receiver has not answered yet.
    Waiting,
    Running,
    /// Finished; `failed` says how many files did not arrive.
    Done,
    Failed,
    Rejected,
    Cancelled,
    /// Stopped with its partial data kept (a program quit at either end): it resumes.
    Paused,
}

impl TransferState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TransferState::Done | TransferState::Failed | TransferState::Rejected | TransferState::Cancelled | TransferState::Paused
        )
    }
}

/// One transfer as a face draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub transfer: String,
    pub peer: PeerId,
    pub nick: String,
    pub direction: Direction,
    /// The send-to-many this transfer is one recipient of.
    pub group: Option<String>,
    pub state: TransferState,
    /// The file being moved, as offered.
    pub file: String,
    pub file_bytes: u64,
    pub file_size: u64,
    pub files_done: u32,
    pub files: u32,
    /// Bytes done overall, counting what a resume did not need to move.
    pub bytes: u64,
    /// Of `bytes`, those a resume did not need to move (already at the receiver).
    #[serde(default)]
    pub resumed: u64,
    pub total: u64,
    pub percent: u8,
    /// Bytes per second moved since the start.
    pub rate: u64,
    pub eta_secs: Option<u64>,
    /// Files that did not arrive (once finished).
    pub failed: u32,
    /// Why it failed, was rejected or cancelled.
    pub message: Option<String>,
    /// The same, as a code (once it ended early).
    #[serde(default)]
    pub reason: Option<Reason>,
    /// Receive: the folder the files land in.
    pub saved_to: Option<String>,
    /// What is moved, as a person names it: "big.bin", "project/ (214 files)".
    #[serde(default)]
    pub name: String,
    /// Send: the relay of the chain this recipient gets the files through (our direct peer in
    /// it); receive: the peer that passed on the offer of `peer`, who started the send (and
    /// vouched for it).
    #[serde(default)]
    pub via: Option<String>,
    /// Receive, finished: where the one file or folder received was saved (a free name when the
    /// offered one was taken: ".../big (1).bin").
    #[serde(default)]
    pub saved_as: Option<String>,
    /// Files that did not arrive and why, the first [`FAILURES_SHOWN`] of them (`failed` counts
    /// them all).
    #[serde(default)]
    pub failures: Vec<(String, String)>,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
}

impl TransferView {
    pub(crate) fn new(ctx: &Ctx, state: TransferState) -> TransferView {
        TransferView {
            transfer: ctx.id.clone(),
            peer: ctx.peer.clone(),
            nick: ctx.nick.clone(),
            direction: ctx.direction,
            group: ctx.group.clone(),
            state,
            file: String::new(),
            file_bytes: 0,
            file_size: 0,
            files_done: 0,
            files: 0,
            bytes: 0,
            resumed: 0,
            total: 0,
            percent: 0,
            rate: 0,
            eta_secs: None,
            failed: 0,
            message: None,
            reason: None,
            saved_to: None,
            name: String::new(),
            via: None,
            saved_as: None,
            failures: Vec::new(),
            started_ms: unix_now_ms(),
            ended_ms: None,
        }
    }
}

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

    fn label(items: &[(&str, bool)]) -> String {
        let mut l = Label::default();
        for (path, dir) in items {
            l.add(path, *dir);
        }
        l.finish()
    }

    #[test]
    fn a_transfer_is_named_as_a_person_would() {
        assert_eq!(label(&[("big.bin", false)]), "big.bin");
        assert_eq!(
            label(&[("project/a.rs", false), ("project/src/b.rs", false), ("project/empty", true)]),
            "project/ (2 files)"
        );
        assert_eq!(label(&[("empty", true)]), "empty/ (0 files)");
        assert_eq!(
            label(&[("a.txt", false), ("b.txt", false), ("c/d", false)]),
            "a.txt and 2 more (3 files)"
        );
        assert_eq!(label(&[("c/d", false), ("a.txt", false)]), "c/ and 1 more (2 files)");
        assert_eq!(label(&[]), "nothing");
    }

    #[test]
    fn percent_is_bounded() {
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(5, 10), 50);
        assert_eq!(percent(u64::MAX, 10), 100);
        assert_eq!(percent(u64::MAX / 2, u64::MAX), 49);
    }
}
