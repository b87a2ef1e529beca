//! The locker on a transfer connection (what it means: `crate::node::locker`). A holder takes
//! a `Deposit` offer into its deposit store ([`admit`], then [`stored`]), and answers
//! `HeldList`, `Fetch` and `DropDeposit` for the key the connection was authenticated with,
//! and only about that key's deposits: any other key hears "no such deposit", as for an id
//! that never existed. The owner's ends of those requests are here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::ctx::Ctx;
use super::error::{Outcome, TransferError};
use super::file_names::{PARTIAL_DIR, check_component};
use super::receive::{self, Decision, Header};
use super::send;
use super::source::SendManifest;
use super::wire::{HeldEntry, MAX_TRANSFER_FRAME, Reason, TransferMsg, Wanted, bounded, msg_name};
use crate::identity::PeerId;
use crate::limits::{DEPOSIT_EXPIRY, HELD_FRAME_ENTRIES, MAX_HELD_PER_OWNER, MAX_REPLICAS, PULL_ANSWER_TIMEOUT};
use crate::net::secure::{SecureConn, SecureWriter};
use crate::node::Shared;
use crate::node::locker::db::{self, Held};
use crate::node::locker::{self, Usage};
use crate::text::printable;

/// What a holder answers for a deposit it does not hold for this key.
pub(crate) const NO_SUCH_DEPOSIT: &str = "no such deposit";

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whether `owner` may leave a deposit of `bytes` named `name` here; if so, its store folder
/// is ready (owner-only, a version held before under the same id removed), and the record to
/// keep once it is whole comes back with the room it holds meanwhile (deposits arriving count
/// against the budgets: two offers at once cannot both take the last room). Runs on a
/// blocking thread.
pub(crate) fn admit(
    shared: &Arc<Shared>,
    owner: &PeerId,
    name: &str,
    digest: [u8; 32],
    bytes: u64,
    files: u32,
) -> Result<locker::Admitted, (Reason, String)> {
    let me = shared.nick();
    check_component(name).map_err(|e| (Reason::Rejected, format!("a deposit's name: {e}")))?;
    let trusted = shared.peers().get(owner).is_some_and(|p| p.trusted);
    let config = &shared.config.locker;
    locker::admits(config.policy, trusted, &me).map_err(|e| (Reason::Rejected, e))?;
    let failed = |e: &dyn std::fmt::Display| {
        tracing::warn!("locker: {e}");
        (Reason::DiskError, format!("{} cannot hold deposits now", printable(&me)))
    };
    expire(shared, unix_ms());
    let id = locker::deposit_id(owner, name, &digest);
    let store = &shared.store;
    let mut arriving = shared.locker.arriving();
    let again = db::find_held(store, owner, &id).map_err(|e| failed(&e))?;
    let held = db::usage(store, owner).map_err(|e| failed(&e))?;
    let coming = arriving.usage(owner);
    let mut used = Usage {
        owner: held.owner.saturating_add(coming.owner),
        total: held.total.saturating_add(coming.total),
    };
    if let Some(old) = &again {
        // The same deposit again (its owner lost its record of it): it replaces itself.
        used = Usage {
            owner: used.owner - old.bytes.min(used.owner),
            total: used.total - old.bytes.min(used.total),
        };
    }
    locker::fits(config, used, bytes, &me).map_err(|e| (Reason::Rejected, e))?;
    let reservation = arriving.hold(&shared.locker, owner, bytes);
    drop(arriving);
    let dir = locker::deposit_dir(&shared.config.data_dir, owner, &id);
    if again.is_some() {
        db::remove_held(store, owner, &id).map_err(|e| failed(&e))?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    make_private_dirs(&shared.config.data_dir, &dir).map_err(|e| failed(&e))?;
    let now = unix_ms();
    Ok(locker::Admitted {
        held: Held {
            owner: owner.clone(),
            id,
            name: name.to_string(),
            bytes,
            files,
            digest,
            stored_ms: now,
            renewed_ms: now,
            verified_ms: now,
            replicas: 0,
        },
        reservation,
    })
}

/// `dir` and the folders between the data dir and it, each owner-only.
fn make_private_dirs(data_dir: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mut at = dir.to_path_buf();
    while at != data_dir && at.starts_with(data_dir) {
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o700))?;
        if !at.pop() {
            break;
        }
    }
    Ok(())
}

/// Delete deposits nobody renewed for [`DEPOSIT_EXPIRY`].
pub(crate) fn expire(shared: &Shared, now_ms: u64) {
    let limit = now_ms.saturating_sub(DEPOSIT_EXPIRY.as_millis() as u64);
    let Ok(all) = db::held(&shared.store, None) else { return };
    for h in all.into_iter().filter(|h| h.renewed_ms < limit) {
        tracing::info!("locker: deposit {} of {} expired", h.id, h.owner.short());
        forget(shared, &h);
    }
}

/// Delete a held deposit, files and record.
pub(crate) fn forget(shared: &Shared, h: &Held) {
    let _ = std::fs::remove_dir_all(locker::deposit_dir(&shared.config.data_dir, &h.owner, &h.id));
    if let Err(e) = db::remove_held(&shared.store, &h.owner, &h.id) {
        tracing::warn!("locker: cannot forget deposit {}: {e}", h.id);
    }
    shared.emit(deposit_event(h, "dropped"));
}

/// What faces hear of a change to one held deposit.
fn deposit_event(h: &Held, change: &str) -> crate::node::Event {
    crate::node::Event::Deposit {
        deposit: h.id.clone(),
        name: h.name.clone(),
        change: change.into(),
        peer: h.owner.clone(),
    }
}

/// A deposit receive ended: kept (owner-only files, recorded) if every file arrived.
pub(crate) async fn stored(ctx: &Ctx, result: &Result<Outcome, TransferError>) {
    let Some(admitted) = ctx.deposit.get() else { return };
    if !matches!(result, Ok(o) if o.all_ok()) {
        admitted.reservation.release();
        return;
    }
    let held = admitted.held.clone();
    let shared = ctx.shared.clone();
    let kept = crate::node::off_thread(move || {
        let dir = locker::deposit_dir(&shared.config.data_dir, &held.owner, &held.id);
        owner_only(&dir)?;
        db::put_held(&shared.store, &held).map_err(std::io::Error::other)?;
        tracing::info!("locker: holding deposit {} for {}", held.id, held.owner.short());
        shared.emit(deposit_event(&held, "held"));
        Ok::<(), std::io::Error>(())
    })
    .await;
    // Counted as held now (or not kept at all).
    admitted.reservation.release();
    if let Err(e) | Ok(Err(e)) = kept.map_err(std::io::Error::other) {
        tracing::warn!("locker: cannot record a deposit: {e}");
    }
}

/// Every file below `dir` readable by its user only (links are not followed).
fn owner_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700))?;
            owner_only(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// What a deposit lookup found, or the refusal told to the peer: its own words when the
/// deposit is not there for it, "cannot read the deposit" when the disk or the task failed.
async fn found_or_refuse<T, E1, E2>(
    writer: &mut SecureWriter,
    found: Result<Result<Result<T, String>, E1>, E2>,
) -> Result<T, TransferError> {
    match found {
        Ok(Ok(Ok(found))) => Ok(found),
        Ok(Ok(Err(why))) => {
            refuse(writer, Reason::Refused, &why).await;
            Err(TransferError::Failed(Reason::Refused, why))
        }
        _ => {
            refuse(writer, Reason::DiskError, "cannot read the deposit").await;
            Err(TransferError::Failed(Reason::DiskError, "cannot read the deposit".into()))
        }
    }
}

async fn refuse(writer: &mut SecureWriter, code: Reason, message: &str) {
    let _ = tokio::time::timeout(PULL_ANSWER_TIMEOUT, async {
        let _ = writer
            .send(&TransferMsg::Error {
                code,
                text: Some(bounded(message)),
            })
            .await;
        writer.shutdown().await;
    })
    .await;
}

/// Holder: the deposits this connection's key owns here (which renews them), after keeping
/// how many copies it wants of each (`wanted`: only its own deposits can change).
pub(crate) async fn serve_list(shared: &Arc<Shared>, mut conn: SecureConn, wanted: Vec<Wanted>) {
    if wanted.len() > MAX_HELD_PER_OWNER || wanted.iter().any(|w| w.replicas == 0 || w.replicas > MAX_REPLICAS) {
        return refuse(&mut conn.writer, Reason::Protocol, "protocol error: copies wanted out of bounds").await;
    }
    let owner = conn.remote.id.clone();
    let listed = {
        let shared = shared.clone();
        crate::node::off_thread(move || {
            db::renew(&shared.store, &owner, unix_ms())?;
            db::set_wanted(&shared.store, &owner, &wanted)?;
            db::held(&shared.store, Some(&owner))
        })
        .await
    };
    let entries: Vec<HeldEntry> = match listed {
        Ok(Ok(all)) => all.into_iter().take(MAX_HELD_PER_OWNER).map(entry_of).collect(),
        _ => return refuse(&mut conn.writer, Reason::DiskError, "cannot read the deposits held here").await,
    };
    let stall = shared.config.stall_timeout;
    let mut chunks = entries.chunks(HELD_FRAME_ENTRIES).peekable();
    if chunks.peek().is_none() {
        let empty = TransferMsg::HeldListing {
            entries: Vec::new(),
            more: false,
        };
        let _ = tokio::time::timeout(stall, conn.writer.send(&empty)).await;
    }
    while let Some(chunk) = chunks.next() {
        let frame = TransferMsg::HeldListing {
            entries: chunk.to_vec(),
            more: chunks.peek().is_some(),
        };
        if !matches!(tokio::time::timeout(stall, conn.writer.send(&frame)).await, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(stall, conn.writer.shutdown()).await;
}

fn entry_of(h: Held) -> HeldEntry {
    HeldEntry {
        id: h.id,
        name: h.name,
        bytes: h.bytes,
        files: h.files,
        digest: serde_bytes::ByteBuf::from(h.digest.to_vec()),
        verified_ms: h.verified_ms,
        replicas: h.replicas,
    }
}

/// Holder: delete this key's deposit `spec` (an id, or every version of a name).
pub(crate) async fn serve_drop(shared: &Arc<Shared>, mut conn: SecureConn, spec: &str) {
    let owner = conn.remote.id.clone();
    let (s, spec) = (shared.clone(), spec.to_string());
    let dropped = crate::node::off_thread(move || {
        let all = db::held(&s.store, Some(&owner))?;
        let mut n = 0u32;
        for h in all.iter().filter(|h| h.id == spec || h.name == spec) {
            forget(&s, h);
            n += 1;
        }
        Ok::<u32, rusqlite::Error>(n)
    })
    .await;
    match dropped {
        Ok(Ok(count)) => {
            let _ = tokio::time::timeout(PULL_ANSWER_TIMEOUT, conn.writer.send(&TransferMsg::Dropped { count })).await;
            let _ = tokio::time::timeout(PULL_ANSWER_TIMEOUT, conn.writer.shutdown()).await;
        }
        _ => refuse(&mut conn.writer, Reason::DiskError, "cannot drop deposits here now").await,
    }
}

/// The top-level entries of a held deposit's folder: what its offer is made of.
fn held_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() != PARTIAL_DIR {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Read a held deposit back whole: its offer, if it still hashes to what was deposited.
/// `Ok(None)`: it does not (lost or damaged).
pub(crate) fn read_back(shared: &Shared, h: &Held) -> anyhow::Result<Option<SendManifest>> {
    let dir = locker::deposit_dir(&shared.config.data_dir, &h.owner, &h.id);
    let paths = match held_paths(&dir) {
        Ok(p) if !p.is_empty() => p,
        _ => return Ok(None),
    };
    let m = match super::source::from_local(&paths, &Arc::default()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("locker: cannot read deposit {} back: {e:#}", h.id);
            return Ok(None);
        }
    };
    Ok((m.digest() == h.digest).then_some(m))
}

/// Holder: send this key's deposit `spec` back as an offer (after reading it back whole: a
/// damaged copy is dropped, and the owner hears so).
pub(crate) async fn serve_fetch(ctx: &Ctx, mut conn: SecureConn, spec: &str) -> Result<Outcome, TransferError> {
    let owner = conn.remote.id.clone();
    let (shared, spec) = (ctx.shared.clone(), spec.to_string());
    let found = crate::node::off_thread(move || {
        let Some(h) = db::find_held(&shared.store, &owner, &spec)? else {
            return Ok(Err(NO_SUCH_DEPOSIT.to_string()));
        };
        match read_back(&shared, &h)? {
            Some(m) => {
                let _ = db::verified(&shared.store, &h.owner, &h.id, unix_ms());
                Ok(Ok(m))
            }
            None => {
                tracing::warn!("locker: deposit {} of {} is damaged: dropped", h.id, h.owner.short());
                forget(&shared, &h);
                Ok::<_, anyhow::Error>(Err(format!("{}'s copy of it was damaged", printable(&shared.nick()))))
            }
        }
    })
    .await;
    let manifest = found_or_refuse(&mut conn.writer, found).await?;
    send::run(ctx, conn, &manifest, send::Outgoing::plain()).await
}

fn failed(msg: impl Into<String>) -> TransferError {
    TransferError::Failed(Reason::Other, msg.into())
}

fn peer_words(conn: &SecureConn, code: Reason, text: Option<String>) -> TransferError {
    let text = text.map(|t| printable(&bounded(&t)).into_owned());
    match text {
        Some(t) if t == NO_SUCH_DEPOSIT => TransferError::Failed(Reason::Refused, t),
        Some(t) => TransferError::Failed(code, format!("{}: {t}", printable(&conn.remote.hello.nick))),
        None => TransferError::Failed(code, format!("{} refused ({code})", printable(&conn.remote.hello.nick))),
    }
}

/// Read the next frame of an answer (bounded in time and size).
async fn answer(shared: &Shared, conn: &mut SecureConn) -> Result<TransferMsg, TransferError> {
    let frame = tokio::select! {
        _ = shared.cancel.cancelled() => return Err(TransferError::Stopped("stopped: this lanyard is quitting".into())),
        r = tokio::time::timeout(PULL_ANSWER_TIMEOUT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)) => r,
    };
    match frame {
        Err(_) => Err(failed("the peer did not answer")),
        Ok(Err(e)) => Err(failed(format!("connection lost: {e}"))),
        Ok(Ok(None)) => Err(failed("the peer closed the connection")),
        Ok(Ok(Some(TransferMsg::Error { code, text }))) => Err(peer_words(conn, code, text)),
        Ok(Ok(Some(msg))) => Ok(msg),
    }
}

fn unexpected(msg: &TransferMsg) -> TransferError {
    TransferError::Protocol(Reason::Protocol, format!("protocol error: unexpected {}", msg_name(msg)))
}

/// Owner: what the peer holds for us (checked, at most [`MAX_HELD_PER_OWNER`]), telling it
/// how many copies we want of what it holds.
pub(crate) async fn list(shared: &Arc<Shared>, mut conn: SecureConn, wanted: Vec<Wanted>) -> Result<Vec<HeldEntry>, TransferError> {
    conn.writer
        .send(&TransferMsg::HeldList { wanted })
        .await
        .map_err(|e| failed(format!("connection lost: {e}")))?;
    let mut out = Vec::new();
    for frames in 0.. {
        if frames > MAX_HELD_PER_OWNER / HELD_FRAME_ENTRIES + 1 {
            return Err(TransferError::Protocol(
                Reason::Protocol,
                "protocol error: the listing does not end".into(),
            ));
        }
        match answer(shared, &mut conn).await? {
            TransferMsg::HeldListing { entries, more } => {
                if entries.len() > HELD_FRAME_ENTRIES || out.len() + entries.len() > MAX_HELD_PER_OWNER {
                    return Err(TransferError::Protocol(
                        Reason::Protocol,
                        "protocol error: listing over its bound".into(),
                    ));
                }
                for e in entries {
                    e.validate()
                        .map_err(|e| TransferError::Protocol(Reason::Protocol, format!("protocol error: {e}")))?;
                    out.push(e);
                }
                if !more {
                    break;
                }
            }
            other => return Err(unexpected(&other)),
        }
    }
    conn.writer.shutdown().await;
    Ok(out)
}

/// Owner: drop deposit `spec` on the peer; how many it dropped.
pub(crate) async fn drop_on(shared: &Arc<Shared>, mut conn: SecureConn, spec: &str) -> Result<u32, TransferError> {
    conn.writer
        .send(&TransferMsg::DropDeposit { deposit: spec.to_string() })
        .await
        .map_err(|e| failed(format!("connection lost: {e}")))?;
    match answer(shared, &mut conn).await? {
        TransferMsg::Dropped { count } => {
            conn.writer.shutdown().await;
            Ok(count)
        }
        other => Err(unexpected(&other)),
    }
}

/// Owner: fetch deposit `id`, whose content hashes to `digest`, into `dest`.
pub(crate) async fn fetch(ctx: &Ctx, mut conn: SecureConn, id: &str, digest: [u8; 32], dest: &Path) -> Result<Outcome, TransferError> {
    conn.writer
        .send(&TransferMsg::Fetch {
            transfer: ctx.id.clone(),
            deposit: id.to_string(),
        })
        .await
        .map_err(|e| failed(format!("connection lost: {e}")))?;
    match answer(&ctx.shared, &mut conn).await? {
        TransferMsg::Offer { items, bytes, .. } => {
            let header = Header {
                items,
                bytes,
                relay: Vec::new(),
                origin: None,
                deposit: None,
            };
            receive::run(ctx, conn, header, dest, Decision::Fetched(digest)).await
        }
        other => Err(unexpected(&other)),
    }
}

/// Owner: what `peer` holds for us.
pub(crate) async fn list_at(shared: &Arc<Shared>, peer: &PeerId) -> Result<Vec<HeldEntry>, TransferError> {
    let wanted = {
        let (s, p) = (shared.clone(), peer.clone());
        crate::node::off_thread(move || db::wanted_on(&s.store, &p, MAX_HELD_PER_OWNER)).await
    };
    let conn = super::dial::connect(shared, peer).await?;
    list(shared, conn, wanted.ok().and_then(Result::ok).unwrap_or_default()).await
}

/// Owner: drop deposit `spec` on `peer`.
pub(crate) async fn drop_at(shared: &Arc<Shared>, peer: &PeerId, spec: &str) -> Result<u32, TransferError> {
    let conn = super::dial::connect(shared, peer).await?;
    drop_on(shared, conn, spec).await
}

/// Owner: fetch deposit `id` (content `digest`) from `peer` into `dest`, as a transfer of its
/// own (shown like a `get`). Partial files stay in `dest` when it fails part-way: fetching the
/// same deposit from another holder into the same folder resumes from them (a partial file is
/// known by its content, not by who sent it).
pub(crate) async fn fetch_from(
    shared: &Arc<Shared>,
    peer: &PeerId,
    id: &str,
    digest: [u8; 32],
    dest: &Path,
) -> Result<Outcome, TransferError> {
    let nick = super::dial::peer_nick(shared, peer);
    let ctx = Ctx::new(shared, None, peer.clone(), nick, super::error::Direction::Receive, None);
    ctx.no_resume.store(true, std::sync::atomic::Ordering::Relaxed);
    ctx.note(|v| v.saved_to = Some(dest.display().to_string()));
    let result = match super::dial::connect(shared, peer).await {
        Ok(conn) => fetch(&ctx, conn, id, digest, dest).await,
        Err(e) => Err(e),
    };
    ctx.report(&result).await;
    result
}

/// Holder: copy this key's deposit `spec` to `to` (holder to holder), answering how it went.
/// `ctx` is this end's transfer (its peer, the owner, for the log); the copy to `to` is a send
/// of its own.
pub(crate) async fn serve_replicate(ctx: &Ctx, mut conn: SecureConn, spec: &str, to: super::wire::Hop) -> Result<Outcome, TransferError> {
    let owner = conn.remote.id.clone();
    if let Err(e) = super::relay::check_hops(std::slice::from_ref(&to), ctx.shared.identity.id(), &owner) {
        refuse(&mut conn.writer, Reason::Protocol, &e).await;
        return Err(TransferError::Protocol(Reason::Protocol, e));
    }
    let (shared, asked) = (ctx.shared.clone(), spec.to_string());
    let found = crate::node::off_thread(move || {
        let Some(h) = db::find_held(&shared.store, &owner, &asked)? else {
            return Ok(Err(NO_SUCH_DEPOSIT.to_string()));
        };
        match read_back(&shared, &h)? {
            Some(m) => Ok(Ok((h, m))),
            None => {
                forget(&shared, &h);
                Ok::<_, anyhow::Error>(Err(format!("{}'s copy of it was damaged", printable(&shared.nick()))))
            }
        }
    })
    .await;
    let (h, manifest) = found_or_refuse(&mut conn.writer, found).await?;
    let Some(target) = PeerId::parse(&to.id) else {
        return Err(TransferError::Protocol(Reason::Protocol, "malformed peer id".into()));
    };
    let nick = super::dial::peer_nick(&ctx.shared, &target);
    // Known on the wire by the id the owner vouched for (this end's own id is taken by `ctx`).
    let leg = Ctx::new(&ctx.shared, None, target, nick, super::error::Direction::Send, Some(ctx.id.clone()));
    let out = send::Outgoing {
        relay: Vec::new(),
        origin: Some(h.owner.as_str().to_string()),
        reports: None,
        producer: send::Producer::Files,
        deposit: Some(h.name.clone()),
    };
    let result = match super::relay::connect_hop(&ctx.shared, &to).await {
        Ok(c) => send::run(&leg, c, &manifest, out).await,
        Err(e) => Err(e),
    };
    leg.report(&result).await;
    let answer = match &result {
        Ok(o) if o.all_ok() => TransferMsg::Replicated {
            files: o.files,
            bytes: o.bytes,
        },
        Ok(o) => TransferMsg::Error {
            code: Reason::Other,
            text: Some(bounded(&format!("{} files did not arrive", o.failed_count()))),
        },
        Err(e) => TransferMsg::Error {
            code: e.reason(),
            text: Some(bounded(&e.to_string())),
        },
    };
    let _ = tokio::time::timeout(PULL_ANSWER_TIMEOUT, async {
        let _ = conn.writer.send(&answer).await;
        conn.writer.shutdown().await;
    })
    .await;
    result
}

/// Owner: have `from` copy deposit `id` (named `name`, content `digest`) to `to`. `to` hears
/// our vouch for the copy first, over its control connection, as for a relayed send.
pub(crate) async fn replicate(
    shared: &Arc<Shared>,
    from: &PeerId,
    to: &PeerId,
    id: &str,
    name: &str,
    digest: [u8; 32],
) -> Result<(), TransferError> {
    let group = super::ids::new_id();
    let vouch = crate::net::wire::ControlMsg::vouch(group.clone(), &super::wire::vouched_digest(digest, Some(name)));
    let Some(tx) = shared.peers().sender(to) else {
        return Err(TransferError::Unreachable(format!("{} is not connected", to.short())));
    };
    if tx.send(vouch).await.is_err() {
        return Err(TransferError::Unreachable(format!("{} went away", to.short())));
    }
    let mut conn = super::dial::connect(shared, from).await?;
    conn.writer
        .send(&TransferMsg::Replicate {
            transfer: group,
            deposit: id.to_string(),
            to: super::relay::hop_of(shared, to),
        })
        .await
        .map_err(|e| failed(format!("connection lost: {e}")))?;
    // The copy runs while we wait: as long as a transfer may stall, then some.
    let wait = shared.config.stall_timeout * 4 + PULL_ANSWER_TIMEOUT;
    let frame = tokio::select! {
        _ = shared.cancel.cancelled() => return Err(TransferError::Stopped("stopped: this lanyard is quitting".into())),
        r = tokio::time::timeout(wait, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)) => r,
    };
    match frame {
        Err(_) => Err(failed("the holder did not say how the copy went")),
        Ok(Err(e)) => Err(failed(format!("connection lost: {e}"))),
        Ok(Ok(None)) => Err(failed("the holder closed the connection")),
        Ok(Ok(Some(TransferMsg::Replicated { .. }))) => Ok(()),
        Ok(Ok(Some(TransferMsg::Error { code, text }))) => Err(peer_words(&conn, code, text)),
        Ok(Ok(Some(other))) => Err(unexpected(&other)),
    }
}
