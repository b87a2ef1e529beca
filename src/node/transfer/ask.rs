//! Asking a person about an offer, through the faces, within the offer's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::ctx::Ctx;
use super::dial::peer_nick;
use super::manifest::ReceivedManifest;
use super::offers::{self, OfferView};
use super::progress::TransferState;
use crate::identity::PeerId;
use crate::limits::{ANSWER_GRACE, OFFER_ANSWER_TIMEOUT};
use crate::node::Event;
use crate::reason::Reason;
use crate::store::unix_now_ms;

/// Ask the faces about an offer: `Ok` when accepted, else the code and words the sender is
/// told (nobody can answer, nobody does in time, or the transfer is cancelled meanwhile).
/// `origin`: the peer that started a relayed send, shown as the offer's sender (the relay that
/// passed it on as `via`).
pub(super) async fn ask(ctx: &Ctx, bytes: u64, manifest: Arc<ReceivedManifest>, origin: Option<&PeerId>) -> Result<(), (Reason, String)> {
    let reg = &ctx.shared.transfers;
    let rejected = || (Reason::Rejected, String::new());
    if reg.answerers.load(Ordering::SeqCst) == 0 {
        return Err(rejected());
    }
    let first = {
        let m = manifest.clone();
        tokio::task::spawn_blocking(move || m.page(0, offers::OFFER_NAMES)).await
    };
    let names = match first {
        Ok(Ok(items)) => items.into_iter().map(|i| i.path).collect(),
        _ => return Err(rejected()),
    };
    let (tx, rx) = oneshot::channel();
    let now = unix_now_ms();
    let sender = origin.unwrap_or(&ctx.peer);
    let view = OfferView {
        transfer: ctx.id.clone(),
        peer: sender.clone(),
        nick: if origin.is_some() {
            peer_nick(&ctx.shared, sender)
        } else {
            ctx.nick.clone()
        },
        host: ctx.shared.peers().get(sender).map(|p| p.host.clone()).unwrap_or_default(),
        via: origin.map(|_| ctx.nick.clone()),
        files: manifest.len() as u32,
        bytes,
        names,
        received_ms: now,
        expires_ms: now + OFFER_ANSWER_TIMEOUT.as_millis() as u64,
    };
    // Past a cap of waiting offers: no room to wait, as no slot would be.
    reg.offers
        .insert(view.clone(), manifest, tx, ctx.parking.clone())
        .map_err(|why| (Reason::Busy, why.to_string()))?;
    ctx.update(|v| {
        v.state = TransferState::Waiting;
        v.files = view.files;
        v.total = bytes;
    });
    ctx.emit(Event::Offer(view));
    // A person decides: the offer's own deadline, not the stall limit, bounds this wait.
    ctx.deadline.hold(OFFER_ANSWER_TIMEOUT + ANSWER_GRACE);
    let answer = tokio::select! {
        // Answered through `answer_offer`, which closed the offer.
        r = rx => if r.unwrap_or(false) { Ok(()) } else { Err(rejected()) },
        _ = tokio::time::sleep(OFFER_ANSWER_TIMEOUT) => {
            forget_offer(ctx, "expired");
            Err((
                Reason::Expired,
                format!("nobody answered within {} minutes", OFFER_ANSWER_TIMEOUT.as_secs() / 60),
            ))
        }
        _ = ctx.cancel.cancelled() => {
            forget_offer(ctx, "cancelled");
            Err(rejected())
        }
        _ = ctx.shared.cancel.cancelled() => Err(rejected()),
    };
    ctx.deadline.release();
    if answer.is_ok() {
        ctx.set_state(TransferState::Running);
    }
    answer
}

/// Drop an offer nobody will answer any more, telling the faces why.
pub(super) fn forget_offer(ctx: &Ctx, reason: &str) {
    if ctx.shared.transfers.offers.remove(&ctx.id) {
        ctx.emit(Event::OfferClosed {
            transfer: ctx.id.clone(),
            reason: reason.to_string(),
        });
    }
}
