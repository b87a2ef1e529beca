//! A transfer connection from a peer: refused with a reason, or served by what its first
//! message asks for (an offer to receive, a list or a get on our shares).

use std::sync::Arc;

use super::ctx::Ctx;
use super::error::{Direction, Outcome, TransferError};
use super::wire::{MAX_TRANSFER_FRAME, TransferMsg, msg_name};
use super::{deadline, held, pull, receive, relay};
use crate::limits::{FIRST_FRAME_TIMEOUT, REFUSAL_DRAIN};
use crate::net::secure::SecureConn;
use crate::node::Shared;
use crate::node::slots::{Pool, Refusal, Slot};
use crate::reason::Reason;
use crate::text::plural;

/// Tell a transfer connection we won't serve why, then close it. Its unread offer is read and
/// dropped for a moment first: closing on unread data resets the connection, and the reset can
/// overtake the reason (bounded in time and in how many at once).
pub(crate) async fn refuse(shared: &Shared, mut conn: SecureConn, refusal: Refusal) {
    let _ = tokio::time::timeout(
        REFUSAL_DRAIN,
        conn.writer.send(&TransferMsg::Error {
            code: Reason::Busy,
            text: Some(refusal.reason().into()),
        }),
    )
    .await;
    let Ok(_draining) = shared.draining.clone().try_acquire_owned() else {
        return;
    };
    let _ = tokio::time::timeout(REFUSAL_DRAIN, conn.writer.shutdown()).await;
    let drain = async {
        while let Ok(chunk) = conn.reader.read_some(usize::MAX).await {
            if chunk.is_empty() {
                break;
            }
        }
    };
    tokio::select! {
        _ = shared.cancel.cancelled() => {}
        _ = tokio::time::timeout(REFUSAL_DRAIN, drain) => {}
    }
}

/// A transfer connection from a peer: an offer to receive, or a list/get on our shares.
pub(crate) async fn serve_incoming(shared: Arc<Shared>, mut conn: SecureConn, slot: Slot) {
    let first = tokio::select! {
        _ = shared.cancel.cancelled() => return,
        _ = slot.evict.cancelled() => return refuse(&shared, conn, Refusal::Full(Pool::Transfer)).await,
        r = tokio::time::timeout(FIRST_FRAME_TIMEOUT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)) => r,
    };
    let from = conn.remote.addr;
    let msg = match first {
        Ok(Ok(Some(msg))) => msg,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::info!("dropped transfer connection from {from}: {e}"),
        Err(_) => return tracing::info!("dropped transfer connection from {from}: said nothing"),
    };
    let peer = conn.remote.id.clone();
    let nick = conn.remote.hello.nick.clone();
    // The connection's slot knows when it last moved and whether it must make room.
    let watched = |ctx: Ctx| watch(&shared, &slot, ctx);
    match msg {
        TransferMsg::Offer {
            transfer,
            items,
            bytes,
            relay,
            origin,
        } => {
            let header = receive::Header {
                items,
                bytes,
                relay,
                origin,
                deposit: None,
            };
            receive_offer(&shared, conn, slot, &transfer, header).await;
        }
        TransferMsg::Deposit {
            transfer,
            items,
            bytes,
            relay,
            origin,
            name,
        } => {
            let header = receive::Header {
                items,
                bytes,
                relay,
                origin,
                deposit: Some(name),
            };
            receive_offer(&shared, conn, slot, &transfer, header).await;
        }
        TransferMsg::HeldList { wanted } => held::serve_list(&shared, conn, wanted).await,
        TransferMsg::Replicate { transfer, deposit, to } => {
            let ctx = watched(Ctx::new(&shared, Some(&transfer), peer, nick, Direction::Send, None));
            let result = held::serve_replicate(&ctx, conn, &deposit, to).await;
            ended(&ctx, slot, &result).await;
        }
        TransferMsg::DropDeposit { deposit } => held::serve_drop(&shared, conn, &deposit).await,
        TransferMsg::Fetch { transfer, deposit } => {
            let ctx = watched(Ctx::new(&shared, Some(&transfer), peer, nick, Direction::Send, None));
            let result = held::serve_fetch(&ctx, conn, &deposit).await;
            ended(&ctx, slot, &result).await;
        }
        TransferMsg::List { path } => pull::serve_list(&shared, conn, &path).await,
        TransferMsg::Get { transfer, paths } => {
            let ctx = watched(Ctx::new(&shared, Some(&transfer), peer, nick, Direction::Send, None));
            let result = pull::serve_get(&ctx, conn, paths).await;
            ended(&ctx, slot, &result).await;
        }
        other => {
            tracing::info!(
                "dropped transfer connection from {from}: unexpected first message {}",
                msg_name(&other)
            );
        }
    }
}

/// A send served on a peer's connection ended: its slot is free before the end is reported.
async fn ended(ctx: &Ctx, slot: Slot, result: &Result<Outcome, TransferError>) {
    drop(slot);
    log_end(ctx, result);
    ctx.report(result).await;
}

/// The connection's slot knows when it last moved and whether it must make room.
fn watch(shared: &Shared, slot: &Slot, mut ctx: Ctx) -> Ctx {
    ctx.deadline = Arc::new(deadline::Deadline::new(shared.config.stall_timeout, slot.activity.clone()));
    ctx.evict = slot.evict.clone();
    ctx.parking = Some(slot.parking());
    ctx
}

/// An offer to receive (into the download dir, or a deposit into the locker).
async fn receive_offer(shared: &Arc<Shared>, conn: SecureConn, slot: Slot, transfer: &str, header: receive::Header) {
    let peer = conn.remote.id.clone();
    let nick = conn.remote.hello.nick.clone();
    // Another peer of a relay chain re-attaches us: the receive it replaces (stuck behind a
    // relay that died or stalled) stops first and lets go of its partial files. Only a relayed
    // offer can do that (a plain send never takes over a transfer).
    let relayed = header.origin.is_some() || !header.relay.is_empty();
    if let Some(gone) = relayed.then(|| shared.transfers.supersede(transfer)).flatten() {
        tracing::info!("transfer {transfer}: re-attached by {}", peer.short());
        tokio::select! {
            _ = gone.cancelled() => {}
            _ = tokio::time::sleep(crate::limits::REATTACH_WAIT) => {}
            _ = shared.cancel.cancelled() => return,
        }
    }
    let ctx = watch(
        shared,
        &slot,
        Ctx::new(shared, Some(transfer), peer, nick, Direction::Receive, None),
    );
    let dest = shared.config.download_dir.clone();
    if header.deposit.is_some() {
        ctx.no_resume.store(true, std::sync::atomic::Ordering::Relaxed);
        let store = crate::node::locker::store_dir(&shared.config.data_dir);
        ctx.note(|v| v.saved_to = Some(store.display().to_string()));
    } else {
        ctx.note(|v| v.saved_to = Some(dest.display().to_string()));
    }
    let result = receive::run(&ctx, conn, header, &dest, receive::Decision::Ask).await;
    // The connection is closed: its slot is free before the end is reported and stored.
    drop(slot);
    held::stored(&ctx, &result).await;
    relay::tell_origin(&ctx, &result);
    log_end(&ctx, &result);
    ctx.report(&result).await;
}

pub(super) fn log_end(ctx: &Ctx, result: &Result<Outcome, TransferError>) {
    match result {
        Ok(o) if o.all_ok() => tracing::info!(
            "transfer {} with {}: {} verified",
            ctx.id,
            ctx.peer.short(),
            plural(o.files, "file")
        ),
        Ok(o) => tracing::info!(
            "transfer {} with {}: {} failed",
            ctx.id,
            ctx.peer.short(),
            plural(o.failed_count(), "file")
        ),
        Err(e) => tracing::info!("transfer {} with {}: {e}", ctx.id, ctx.peer.short()),
    }
}
