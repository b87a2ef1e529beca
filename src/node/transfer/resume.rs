//! Paused transfers: listed across restarts, and an outgoing send offered again by itself once
//! its peer is online (the receiver finds its partial data, only the missing chunks move), or
//! at once when a person asks (`r`). A paused transfer cancelled for good drops its partial data.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::error::Direction;
use super::progress::{TransferState, TransferView};
use super::records::RECENT;
use super::records::{self, Partials};
use super::source::read_sources;
use crate::node::Event;
use crate::node::api::{FailKind, Failure};
use crate::node::{NodeHandle, Shared, lock};
use crate::reason::Reason;
use crate::store::unix_now_ms;
use crate::text::printable;

/// How long a paused send waits for its peer before it looks again (it also wakes when any
/// peer changes, through `wait_online`).
const LOOK_AGAIN: Duration = Duration::from_secs(60);

/// A paused outgoing send waiting for its peer.
pub(crate) struct Paused {
    sources: Vec<PathBuf>,
    peer: crate::identity::PeerId,
    now: Arc<Notify>,
    stop: CancellationToken,
}

/// At start: list what earlier runs did, a transfer cut off by a crash as paused; offer the
/// paused sends again when their peers come (if this node resumes by itself).
pub(crate) fn load(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let stored = records::load(&shared.store)?;
    let mut recent = Vec::new();
    for mut r in stored {
        if !r.view.state.is_finished() {
            // The node went away without a word (killed, power cut): what it had is kept.
            r.view.state = TransferState::Paused;
            r.view.reason = Some(Reason::Stopped);
            r.view.message = Some("interrupted: lanyard stopped".into());
            r.view.rate = 0;
            r.view.eta_secs = None;
        }
        if r.view.state == TransferState::Paused
            && r.view.direction == Direction::Send
            && let Some(sources) = r.sources.clone()
            && shared.config.resume
        {
            schedule(shared, r.view.clone(), sources);
        }
        recent.push(r.view);
    }
    let mut kept = lock(&shared.transfers.recent);
    for view in recent.into_iter().rev().take(RECENT).rev() {
        kept.push_back(view);
    }
    Ok(())
}

/// Offer `view`'s send of `sources` again once its peer is online (or a person says so).
pub(crate) fn schedule(shared: &Arc<Shared>, view: TransferView, sources: Vec<PathBuf>) {
    let now = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    lock(&shared.transfers.paused).insert(
        view.transfer.clone(),
        Paused {
            sources: sources.clone(),
            peer: view.peer.clone(),
            now: now.clone(),
            stop: stop.clone(),
        },
    );
    let shared = shared.clone();
    shared.clone().tracker.spawn("transfer::resume_offers", async move {
        let node = NodeHandle { shared: shared.clone() };
        loop {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                _ = stop.cancelled() => return,
                _ = now.notified() => break,
                online = node.wait_online(&view.peer, LOOK_AGAIN) => if online { break },
            }
        }
        if lock(&shared.transfers.paused).remove(&view.transfer).is_none() {
            return;
        }
        tracing::info!("transfer {}: resuming the send to {}", view.transfer, view.peer.short());
        match read_sources(&sources).await {
            Ok(manifest) => {
                node.start_send_as(&view.peer, manifest, view.group.clone(), Some(&view.transfer), Some(sources));
            }
            // The files are gone or unreadable: the send ends here, saying which, and the
            // receiver hears it (its partial data is of no use now).
            Err(e) => {
                super::cancels::tell(
                    &shared,
                    &view.peer,
                    view.group.as_deref().unwrap_or(&view.transfer),
                    Some(Reason::SourceChanged),
                );
                let mut ended = view;
                ended.state = TransferState::Failed;
                ended.reason = Some(Reason::SourceChanged);
                ended.message = Some(format!("cannot resume: {}", printable(&format!("{e:#}"))));
                ended.ended_ms = Some(unix_now_ms());
                end(&shared, ended, None).await;
            }
        }
    });
}

/// Replace a paused transfer's listed view with its end, store it and tell the faces.
async fn end(shared: &Arc<Shared>, view: TransferView, partials: Option<Partials>) {
    {
        let mut recent = lock(&shared.transfers.recent);
        recent.retain(|v| v.transfer != view.transfer);
        recent.push_back(view.clone());
    }
    let (store_shared, saved) = (shared.clone(), view.clone());
    let _ = crate::node::off_thread(move || {
        if let Some(p) = partials {
            p.remove();
        }
        records::save(&store_shared.store, &saved, None, None)
    })
    .await;
    shared.emit(Event::Progress(view.clone()));
    let (transfer, peer, direction) = (view.transfer.clone(), view.peer.clone(), view.direction);
    let message = view.message.clone().unwrap_or_default();
    shared.emit(match view.state {
        TransferState::Cancelled => Event::Cancelled {
            transfer,
            peer,
            direction,
            reason: message,
            code: view.reason.unwrap_or(Reason::Other),
        },
        _ => Event::Error {
            transfer,
            peer,
            direction,
            message,
            code: view.reason.unwrap_or(Reason::Other),
        },
    });
}

/// Whether a listed transfer that ended here may still hold data for a resume: paused, or a
/// receive that failed (its sender went away mid-way: a relay lost its own sender, say) and
/// kept its partial data for the sender to offer it again. Its peer can still end it for good.
pub(crate) fn kept(v: &TransferView) -> bool {
    v.state == TransferState::Paused || (v.state == TransferState::Failed && v.direction == Direction::Receive)
}

/// The listed view of a paused transfer.
fn paused_view(shared: &Shared, id: &str) -> Option<TransferView> {
    lock(&shared.transfers.recent)
        .iter()
        .rev()
        .find(|v| v.transfer == id || v.group.as_deref() == Some(id))
        .filter(|v| v.state == TransferState::Paused)
        .cloned()
}

/// Cancel a paused transfer for good: it is not offered again, and a receive's partial data
/// goes; the peer is told (now or when it is back), so that its side ends too. False if `id`
/// names no paused transfer.
pub(crate) fn cancel(shared: &Arc<Shared>, id: &str) -> bool {
    let Some(view) = paused_view(shared, id) else {
        return false;
    };
    super::cancels::tell(shared, &view.peer, view.group.as_deref().unwrap_or(&view.transfer), None);
    let code = super::stream::cancel_code(view.direction);
    end_paused(shared, view, TransferState::Cancelled, code, "cancelled".into());
    true
}

/// The peer cancelled transfer `id`, paused or kept here (see [`kept`]) (`code` None), or ended
/// it for good for `code` (told over its control connection): it ends here too, and a
/// receive's partial data goes.
pub(crate) fn cancel_by_peer(shared: &Arc<Shared>, id: &str, code: Option<Reason>) {
    let view = lock(&shared.transfers.recent)
        .iter()
        .rev()
        .find(|v| v.transfer == id || v.group.as_deref() == Some(id))
        .filter(|v| kept(v))
        .cloned();
    let Some(view) = view else {
        return;
    };
    let who = if view.nick.is_empty() {
        view.peer.short().to_string()
    } else {
        printable(&view.nick).into_owned()
    };
    let name = printable(&view.name).into_owned();
    let (state, code, text) = match code {
        None => (
            TransferState::Cancelled,
            super::cancels::peer_code(view.direction),
            format!("{who} cancelled {name}"),
        ),
        Some(Reason::SourceChanged) => (
            TransferState::Failed,
            Reason::SourceChanged,
            format!("{who} cannot resume {name}: what it sent changed or vanished"),
        ),
        Some(code) => (TransferState::Failed, code, format!("{who} cannot resume {name}")),
    };
    end_paused(shared, view, state, code, text);
}

/// End paused transfer `view` for good (`state`, `code`, `message`), dropping a receive's
/// partial data.
fn end_paused(shared: &Arc<Shared>, mut view: TransferView, state: TransferState, code: Reason, message: String) {
    if let Some(p) = lock(&shared.transfers.paused).remove(&view.transfer) {
        p.stop.cancel();
    }
    view.state = state;
    view.reason = Some(code);
    view.message = Some(message);
    view.ended_ms = Some(unix_now_ms());
    let shared = shared.clone();
    shared.clone().tracker.spawn("transfer::end_paused", async move {
        let partials = match records::get(&shared.store, &view.transfer) {
            Ok(Some(r)) => r.partials,
            _ => None,
        };
        end(&shared, view, partials).await;
    });
}

/// Resume a paused send now. `Err` says why it cannot be (a receive waits for its sender).
pub(crate) fn now(shared: &Shared, id: &str) -> Result<String, Failure> {
    let Some(view) = paused_view(shared, id) else {
        return Err(Failure {
            kind: FailKind::NotFound,
            message: format!("no paused transfer {id:?} (see `lanyard transfers`)"),
        });
    };
    if let Some(p) = lock(&shared.transfers.paused).get(&view.transfer) {
        p.now.notify_one();
        return Ok(format!("resuming {}", view.transfer));
    }
    let message = match view.direction {
        Direction::Receive => format!(
            "{} resumes when {} sends it again",
            view.transfer,
            if view.nick.is_empty() {
                view.peer.short().to_string()
            } else {
                printable(&view.nick).into_owned()
            }
        ),
        Direction::Send => format!("{} cannot be resumed from here: what it sent is not known", view.transfer),
    };
    Err(Failure {
        kind: FailKind::Unavailable,
        message,
    })
}

/// A send of `sources` to `peer` finished: paused sends of the same (listed now, or stored by
/// an earlier run) are done with, not offered again: the person sent it again by hand.
pub(crate) fn sent_again(shared: &Arc<Shared>, peer: &crate::identity::PeerId, sources: &[PathBuf]) {
    {
        let mut paused = lock(&shared.transfers.paused);
        paused.retain(|_, p| {
            let same = p.peer == *peer && p.sources == sources;
            if same {
                p.stop.cancel();
            }
            !same
        });
    }
    let (shared, peer, sources) = (shared.clone(), peer.clone(), sources.to_vec());
    shared.clone().tracker.spawn("transfer::sent_again", async move {
        let store = shared.clone();
        let stored = crate::node::off_thread(move || records::load(&store.store)).await;
        let Ok(Ok(stored)) = stored else { return };
        for r in stored {
            let same = r.view.direction == Direction::Send && r.view.peer == peer && r.sources.as_deref() == Some(&sources);
            if !same || r.view.state.is_finished() && r.view.state != TransferState::Paused {
                continue;
            }
            let mut view = r.view;
            view.state = TransferState::Failed;
            view.reason = Some(Reason::Other);
            view.message = Some("sent again in another transfer".into());
            view.ended_ms = Some(unix_now_ms());
            end(&shared, view, None).await;
        }
    });
}
