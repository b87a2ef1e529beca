//! One running transfer as both ends see it ([`Ctx`]): its row in the registry, how it is
//! stopped, and how its end is reported and stored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::error::{Direction, Outcome, TransferError};
use super::ids::{new_id, valid_id};
use super::progress::{self, TransferState, TransferView};
use super::records::RECENT;
use super::registry::Active;
use super::stream::cancel_code;
use super::{cancels, deadline, records, resume};
use crate::identity::PeerId;
use crate::node::slots::Activity;
use crate::node::{Event, Shared, lock};
use crate::reason::Reason;
use crate::store::unix_now_ms;

/// One running transfer as both ends see it: who, which way, and how to stop it.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub id: String,
    pub peer: PeerId,
    pub nick: String,
    pub direction: Direction,
    pub group: Option<String>,
    pub cancel: CancellationToken,
    /// When the transfer counts as stalled.
    pub deadline: Arc<deadline::Deadline>,
    /// Raised when a known peer needs this (newcomer's) connection slot.
    pub evict: CancellationToken,
    /// The incoming connection's slot, set aside while its offer waits for a person.
    pub parking: Option<crate::node::slots::Parking>,
    /// Raised when another peer of a relay chain takes this receive over.
    pub supersede: CancellationToken,
    /// Raised when this context is dropped.
    pub(super) gone: CancellationToken,
    /// Raised when the peer tells over its control connection that it cancelled this one.
    pub peer_cancel: CancellationToken,
    /// Which context this is: a receive re-attached under the same id is another one, whose
    /// entry the one it replaced must not retire.
    pub(super) serial: u64,
    /// Receive of an offer a relay passed on: who started the send and vouched for the offer
    /// with this digest (it hears our verdict directly).
    pub vouched: std::sync::OnceLock<(PeerId, [u8; 32])>,
    /// Receive of a deposit taken into the locker: what is recorded once it is whole.
    pub deposit: std::sync::OnceLock<crate::node::locker::Admitted>,
    /// An outgoing send of local paths: those paths, stored with it for a resume.
    pub(super) sources: Mutex<Option<Vec<PathBuf>>>,
    /// A stopped receive: where the partial files it keeps are.
    pub(super) partials: Mutex<Option<records::Partials>>,
    /// Resumed only by the person doing it again (a pull): never listed as paused.
    pub(super) no_resume: AtomicBool,
    /// A paused send offered again.
    pub(super) started_as_resume: AtomicBool,
    /// With a LocalSend device: it has no control connection to hear a cancel on later.
    pub(super) foreign: AtomicBool,
}

impl Ctx {
    pub(super) fn new(
        shared: &Arc<Shared>,
        wanted_id: Option<&str>,
        peer: PeerId,
        nick: String,
        direction: Direction,
        group: Option<String>,
    ) -> Ctx {
        let cancel = CancellationToken::new();
        let (supersede, gone, peer_cancel) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
        let ctx = {
            let mut active = lock(&shared.transfers.active);
            let usable = wanted_id.filter(|w| valid_id(w) && !active.contains_key(*w)).map(str::to_string);
            let id = usable.unwrap_or_else(|| {
                loop {
                    let candidate = new_id();
                    if !active.contains_key(&candidate) {
                        break candidate;
                    }
                }
            });
            let ctx = Ctx {
                shared: shared.clone(),
                id,
                peer,
                nick,
                direction,
                group,
                cancel: cancel.clone(),
                deadline: Arc::new(deadline::Deadline::new(shared.config.stall_timeout, Activity::new())),
                evict: CancellationToken::new(),
                parking: None,
                supersede: supersede.clone(),
                gone: gone.clone(),
                peer_cancel: peer_cancel.clone(),
                serial: {
                    static NEXT: AtomicU64 = AtomicU64::new(0);
                    NEXT.fetch_add(1, Ordering::Relaxed)
                },
                vouched: std::sync::OnceLock::new(),
                deposit: std::sync::OnceLock::new(),
                sources: Mutex::new(None),
                partials: Mutex::new(None),
                no_resume: AtomicBool::new(false),
                started_as_resume: AtomicBool::new(false),
                foreign: AtomicBool::new(false),
            };
            let mut view = TransferView::new(&ctx, TransferState::Connecting);
            if direction == Direction::Receive {
                view.state = TransferState::Running;
            }
            active.insert(
                ctx.id.clone(),
                Active {
                    cancel,
                    supersede,
                    gone,
                    peer_cancel,
                    serial: ctx.serial,
                    view,
                },
            );
            ctx
        };
        // A paused transfer that comes back (offered again) is listed once, as running.
        lock(&shared.transfers.recent).retain(|v| v.transfer != ctx.id);
        ctx.emit(Event::TransferStarted(ctx.view()));
        ctx
    }

    pub(super) fn emit(&self, event: Event) {
        self.shared.emit(event);
    }

    /// The transfer's id on the wire: its group's for a send to several peers, so that every
    /// hop of a relayed send (and every recipient of a parallel one) knows it by one id.
    pub(crate) fn wire_id(&self) -> String {
        self.group.clone().unwrap_or_else(|| self.id.clone())
    }

    /// Our entry among the running transfers (not another context's under the same id).
    fn mine<'a>(&self, active: &'a mut HashMap<String, Active>) -> Option<&'a mut Active> {
        active.get_mut(&self.id).filter(|a| a.serial == self.serial)
    }

    /// The transfer's current view; once it ended, the one it ended with.
    pub(crate) fn view(&self) -> TransferView {
        if let Some(a) = self.mine(&mut lock(&self.shared.transfers.active)) {
            return a.view.clone();
        }
        lock(&self.shared.transfers.recent)
            .iter()
            .rev()
            .find(|v| v.transfer == self.id && v.direction == self.direction)
            .cloned()
            .unwrap_or_else(|| TransferView::new(self, TransferState::Running))
    }

    /// Change the view and tell the faces (the registry and the event agree: both change under
    /// the registry's lock).
    pub(crate) fn update(&self, change: impl FnOnce(&mut TransferView)) {
        let mut active = lock(&self.shared.transfers.active);
        if let Some(a) = self.mine(&mut active) {
            change(&mut a.view);
            self.shared.emit(Event::Progress(a.view.clone()));
        }
    }

    /// Change the view even after it ended (then the one among the recent ones): what a relay
    /// says of a recipient may arrive after the recipient's own word ended its row.
    pub(crate) fn amend(&self, change: impl FnOnce(&mut TransferView)) {
        {
            let mut active = lock(&self.shared.transfers.active);
            if let Some(a) = self.mine(&mut active) {
                change(&mut a.view);
                self.shared.emit(Event::Progress(a.view.clone()));
                return;
            }
        }
        let mut recent = lock(&self.shared.transfers.recent);
        if let Some(v) = recent.iter_mut().rev().find(|v| v.transfer == self.id) {
            change(v);
            self.shared.emit(Event::Progress(v.clone()));
        }
    }

    /// Change the view without telling the faces now (the next update carries it).
    pub(crate) fn note(&self, change: impl FnOnce(&mut TransferView)) {
        if let Some(a) = self.mine(&mut lock(&self.shared.transfers.active)) {
            change(&mut a.view);
        }
    }

    pub(crate) fn set_state(&self, state: TransferState) {
        self.update(|v| v.state = state);
    }

    /// A stopped receive keeps these partial files (dropped if it is cancelled for good).
    pub(crate) fn keep_partials(&self, dir: PathBuf, names: Vec<String>) {
        *lock(&self.partials) = Some(records::Partials::new(dir, names));
    }

    /// Whether this transfer, ended this way, waits to be resumed: stopped at either end, or
    /// its peer gone (when this node resumes by itself). Only a side that a resume starts from
    /// or comes to pauses: a send of local paths (offered again) and a receive of an offer (the
    /// sender offers it again). A relay's leg to the peer behind it, the serving side of a pull
    /// and the pulling side (a person runs `get` again) end instead, saying what they keep.
    pub(super) fn pauses(&self, e: &TransferError) -> bool {
        let resumable = match self.direction {
            Direction::Send => lock(&self.sources).is_some(),
            Direction::Receive => !self.no_resume.load(Ordering::Relaxed),
        };
        resumable
            && match e {
                TransferError::Stopped(_) => true,
                TransferError::PeerLost(Reason::ConnectionLost | Reason::Stalled, _) => self.shared.config.resume,
                // A paused send offered again whose peer could not be reached (gone again, or
                // not listening yet): still paused, it is offered again when the peer is back.
                TransferError::Unreachable(_) => self.resuming() && self.shared.config.resume,
                _ => false,
            }
    }

    /// Whether this is a paused send offered again (it came back under its stored id).
    fn resuming(&self) -> bool {
        self.direction == Direction::Send && self.started_as_resume.load(Ordering::Relaxed)
    }

    /// Store the transfer as it starts, with what a resume needs: a node killed mid-way (no
    /// word, no end stored) lists it after a restart and offers it again.
    pub(super) async fn store_start(&self) {
        self.store_view(self.view()).await;
    }

    /// Keep the transfer's view and what a resume needs in the database.
    async fn store_view(&self, view: TransferView) {
        let sources = lock(&self.sources).clone();
        let partials = lock(&self.partials).clone();
        let (shared, saved) = (self.shared.clone(), view.clone());
        let stored = crate::node::off_thread(move || records::save(&shared.store, &saved, sources.as_deref(), partials.as_ref())).await;
        if let Err(e) | Ok(Err(e)) = stored {
            tracing::warn!("cannot store transfer {}: {e:#}", view.transfer);
        }
    }

    /// Report the end of the transfer to subscribers, once, and store it; the view moves to
    /// the recent list. A send that pauses is offered again once its peer is back.
    pub(super) async fn report(&self, result: &Result<Outcome, TransferError>) {
        self.end_view(result);
        // Ended: listed among the recent ones from now on, before anyone hears of the end (a
        // cancel that follows it at once finds a paused transfer there, not a running one).
        let view = self.view();
        self.retire();
        // The view's peer: on an offer a relay passed on, who started the send, as in its rows.
        let (transfer, peer, direction) = (self.id.clone(), view.peer.clone(), self.direction);
        // Stored before anyone hears of the end: a cancel of the paused transfer, sent on seeing
        // the event, reads its partial files from this record (and must not be overwritten by it).
        self.store(view).await;
        // Cancelled here: the peer may not have heard it (the link was cut, its node down), and
        // would keep its partial data for a resume that never comes. It is told again, over its
        // control connection, now and once it is back.
        if let Err(TransferError::Cancelled(code, _)) = result
            && *code == cancel_code(self.direction)
            && !self.foreign.load(Ordering::Relaxed)
        {
            cancels::tell(&self.shared, &self.peer, &self.wire_id(), None);
        }
        self.emit(match result {
            Ok(o) => Event::Done {
                transfer,
                peer,
                direction,
                files: o.files,
                bytes: o.bytes,
                failed: o.failed_count() as u32,
            },
            Err(e @ TransferError::Cancelled(..)) => Event::Cancelled {
                transfer,
                peer,
                direction,
                reason: e.to_string(),
                code: e.reason(),
            },
            Err(e) => Event::Error {
                transfer,
                peer,
                direction,
                message: e.to_string(),
                code: e.reason(),
            },
        });
    }

    /// Keep the transfer's view (and what a resume needs) in the database; a paused send is
    /// offered again once its peer is back, and a finished one ends paused sends of the same.
    pub(super) async fn store(&self, view: TransferView) {
        self.store_view(view.clone()).await;
        let sources = lock(&self.sources).clone();
        let Some(sources) = sources else { return };
        match view.state {
            TransferState::Paused if self.shared.config.resume && !self.shared.cancel.is_cancelled() => {
                resume::schedule(&self.shared, view, sources);
            }
            TransferState::Done => resume::sent_again(&self.shared, &self.peer, &sources),
            _ => {}
        }
    }
}

impl Ctx {
    /// Show the transfer as it ended: state, why, and what arrived where.
    pub(crate) fn end_view(&self, result: &Result<Outcome, TransferError>) {
        self.update(|v| {
            let (state, message) = match result {
                Ok(o) if o.all_ok() => (TransferState::Done, None),
                Ok(o) => (
                    TransferState::Done,
                    Some(format!(
                        "{} of {} did not arrive",
                        o.failed_count(),
                        o.failed_count() + o.files as usize
                    )),
                ),
                Err(e @ TransferError::Rejected(..)) => (TransferState::Rejected, Some(e.to_string())),
                Err(e @ TransferError::Cancelled(..)) => (TransferState::Cancelled, Some(e.to_string())),
                Err(e) if self.pauses(e) => (TransferState::Paused, Some(e.to_string())),
                Err(e) => (TransferState::Failed, Some(e.to_string())),
            };
            v.state = state;
            v.message = message;
            v.reason = result.as_ref().err().map(TransferError::reason);
            v.ended_ms = Some(unix_now_ms());
            v.eta_secs = None;
            v.rate = if state == TransferState::Done { v.rate } else { 0 };
            if let Ok(o) = result {
                v.failed = o.failed_count() as u32;
                if v.files == 0 {
                    v.files = o.files + v.failed;
                }
                v.files_done = v.files;
                v.bytes = v.bytes.max(o.bytes);
                v.percent = if v.failed == 0 { 100 } else { v.percent };
                v.failures = o.failed.iter().take(progress::FAILURES_SHOWN).cloned().collect();
                v.saved_as = saved_top(v.saved_to.as_deref(), &o.saved);
            }
        });
    }
}

/// Where the one top-level file or folder of a receive was saved, when all of `saved` lies
/// under one name in `dir`.
pub(super) fn saved_top(dir: Option<&str>, saved: &[PathBuf]) -> Option<String> {
    let dir = std::path::Path::new(dir?);
    let top = |p: &PathBuf| p.strip_prefix(dir).ok()?.components().next().map(|c| c.as_os_str().to_owned());
    let first = top(saved.first()?)?;
    saved
        .iter()
        .all(|p| top(p).as_ref() == Some(&first))
        .then(|| dir.join(first).display().to_string())
}

impl Ctx {
    /// Move the transfer from the running ones to the recent ones (once).
    pub(super) fn retire(&self) {
        let done = {
            let mut active = lock(&self.shared.transfers.active);
            // Only our own entry: after a re-attach the id may be another context's now.
            if active.get(&self.id).is_none_or(|a| a.serial != self.serial) {
                return;
            }
            active.remove(&self.id)
        };
        let Some(done) = done else {
            return;
        };
        let mut recent = lock(&self.shared.transfers.recent);
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(done.view);
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.retire();
        self.gone.cancel();
    }
}

impl TransferView {
    pub(super) fn new(ctx: &Ctx, state: TransferState) -> TransferView {
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
