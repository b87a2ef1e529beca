//! The receiving end of a stream of files (a push from a peer, or what we asked for with
//! `Get`): read the manifest, decide, prepare the partial files, then take each file into its
//! partial, verify it, and place it. Socket reads and disk writes overlap through a short
//! channel to a blocking writer thread, so memory stays flat whatever the file size.

use std::path::Path;
use std::sync::Arc;

use blake3::hazmat::ChainingValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ask::ask;
use super::budget::{Charge, Payer};
use super::chunks::{Layout, cvs_from_bytes, root_of};
use super::ctx::Ctx;
use super::disk::{Cmd, DiskStop, Verdict, disk_loop};
use super::error::{Outcome, TransferError};
use super::file_names::MAX_PATH_BYTES;
use super::hooks::Fault;
use super::manifest::{Entry, ManifestRefusal, ReceivedManifest, item_charge};
use super::meter::Meter;
use super::placing::Plan;
use super::relay;
use super::stream::{CHUNK, PIPE_DEPTH, Stop, interrupted, io_stop, moving, next, say_stop, stalled_text, waiting, who};
use super::tap::Tap;
use super::wire::msg_name;
use super::wire::{Hop, Item, MAX_ITEMS, MAX_MANIFEST_BYTES, MAX_RESUME_ENTRIES, MAX_SEGMENT, Reason, Report, TransferMsg, bounded};
use crate::identity::PeerId;
use crate::limits::{MANIFEST_REFUSAL_DRAIN, OUTCOME_LISTED};
use crate::net::secure::{SecureConn, SecureReader, SecureWriter};
use crate::node::{Event, ReceivedFile};
use crate::text::{human_bytes, printable};

/// What the offer's first frame announced.
pub(crate) struct Header {
    pub items: u32,
    pub bytes: u64,
    /// The peers to forward to (a relayed send).
    pub relay: Vec<Hop>,
    /// Who started the send, on an offer a relay passes on.
    pub origin: Option<String>,
    /// A deposit's name: kept in the locker for its owner, not put in the download dir.
    pub deposit: Option<String>,
}

pub(crate) enum Decision {
    /// Accept-all, a trusted peer, or a person's answer.
    Ask,
    /// We asked for these ourselves: accepted, but only items under these top-level names
    /// (`None`: anything, for a request of the whole share list).
    Requested(Option<Vec<String>>),
    /// We fetched one of our deposits: accepted only if the offer is exactly the content with
    /// this digest (a holder whose copy changed serves something else, and is refused).
    Fetched([u8; 32]),
}

pub(crate) async fn run(ctx: &Ctx, conn: SecureConn, header: Header, dest: &Path, decision: Decision) -> Result<Outcome, TransferError> {
    let SecureConn {
        mut reader, mut writer, ..
    } = conn;
    ctx.deadline.moved();
    let mut plan = None;
    let pull = matches!(decision, Decision::Requested(_) | Decision::Fetched(_));
    let result = exchange(ctx, &mut reader, &mut writer, header, dest, decision, &mut plan).await;
    match result {
        Ok(outcome) => {
            writer.shutdown().await;
            Ok(outcome)
        }
        Err(stop) => {
            if let (Some(plan), Stop::CancelledHere | Stop::CancelledByPeer(_)) = (&mut plan, &stop) {
                plan.cancel();
            }
            say_stop(ctx, &mut writer, &stop).await;
            let _ = tokio::time::timeout(CANCEL_DRAIN, writer.shutdown()).await;
            let drain = match stop {
                Stop::CancelledHere => Some(CANCEL_DRAIN),
                // Refused mid-manifest: the sender reads our answer only once its names are out.
                Stop::Refused(..) => Some(MANIFEST_REFUSAL_DRAIN),
                _ => None,
            };
            if let Some(limit) = drain {
                // The sender may be mid-write: closing on it now would reset the connection
                // before it reads why, and it would report a lost connection instead of the
                // cancel or refusal. Read what it still sends until it closes (bounded).
                let drain = async {
                    while let Ok(chunk) = reader.read_some(usize::MAX).await {
                        if chunk.is_empty() {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(limit, drain).await;
            }
            let kept = plan.as_ref().map_or(0, Plan::partial_bytes);
            if kept > 0
                && let Some(plan) = &plan
            {
                let (dir, names) = plan.partial_files();
                ctx.keep_partials(dir, names);
            }
            match stop {
                Stop::Lost => Err(TransferError::PeerLost(
                    Reason::ConnectionLost,
                    lost_sender(ctx, "(connection lost)", kept, pull),
                )),
                Stop::Stalled => Err(TransferError::PeerLost(
                    Reason::Stalled,
                    lost_sender(ctx, &format!("({})", stalled_text(ctx)), kept, pull),
                )),
                Stop::StoppedHere => Err(TransferError::Stopped(format!(
                    "stopped: this lanyard is quitting{}",
                    kept_text(kept)
                ))),
                Stop::PeerFailed(Reason::Stopped, _) => {
                    Err(TransferError::Stopped(format!("{}'s lanyard stopped{}", who(ctx), kept_text(kept))))
                }
                stop => Err(stop.into_error(ctx)),
            }
        }
    }
}

/// How long a receiver that cancelled waits for the sender to hear it and close.
const CANCEL_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// The sender went away (`how`): say so, and what a resume will start from.
fn lost_sender(ctx: &Ctx, how: &str, kept: u64, pull: bool) -> String {
    let who = who(ctx);
    if kept == 0 {
        return format!("{who} stopped sending {how}");
    }
    let again = if pull { "getting it again" } else { "sending again" };
    format!(
        "{who} stopped sending {how}; the {} received so far are kept — {again} resumes",
        human_bytes(kept)
    )
}

/// What a stopped receive keeps for its resume, as the end of a sentence.
fn kept_text(kept: u64) -> String {
    match kept {
        0 => String::new(),
        n => format!("; {} kept for a resume", human_bytes(n)),
    }
}

fn protocol(what: &str) -> Stop {
    Stop::Protocol(format!("protocol error: {what}"))
}

async fn exchange(
    ctx: &Ctx,
    reader: &mut SecureReader,
    writer: &mut SecureWriter,
    header: Header,
    dest: &Path,
    decision: Decision,
    plan_out: &mut Option<Plan>,
) -> Result<Outcome, Stop> {
    let n = header.items as usize;
    if n > MAX_ITEMS {
        return Err(protocol(&format!("offer of {n} items is over the limit of {MAX_ITEMS}")));
    }
    // Shared, not copied, with the offer list that faces page through.
    let manifest = Arc::new(take_manifest(ctx, reader, writer, n).await?);
    tracing::debug!("transfer {}: manifest of {n} items in", ctx.id);
    let entries = manifest.entries();
    let total = entries.iter().try_fold(0u64, |acc, e| acc.checked_add(e.size));
    if total != Some(header.bytes) || entries.iter().any(|e| e.dir && e.size != 0) {
        return Err(protocol("manifest sizes do not add up"));
    }
    let allowed = match (&decision, &header.deposit) {
        (Decision::Requested(Some(allowed)), _) => Some(allowed.clone()),
        // A deposit is what its name says: one top-level item of that name.
        (Decision::Ask, Some(name)) => Some(vec![name.clone()]),
        _ => None,
    };
    match blocking(&manifest, move |m| m.validate(allowed.as_deref())).await? {
        Ok(()) => {}
        Err(ManifestRefusal::Refused(reason)) => return Err(refuse(ctx, writer, Reason::Rejected, &reason).await),
        // A server may only answer a pull with what was asked for, not fill the download dir.
        Err(ManifestRefusal::NotAsked(what)) => return Err(protocol(&what)),
        Err(ManifestRefusal::Io(e)) => return Err(spool_failed(e)),
    }
    if let Err(e) = relay::check_hops(&header.relay, ctx.shared.identity.id(), &ctx.peer) {
        return Err(protocol(&e));
    }
    let (content, name) = blocking(&manifest, |m| m.digest_and_label()).await?.map_err(spool_failed)?;
    let digest = super::wire::vouched_digest(content, header.deposit.as_deref());
    ctx.note(|v| v.name = name);
    // An offer a relay passes on is taken as the sender's only if the sender vouched for it:
    // a relay can forward what it was given, not offer something else in its name.
    let origin = match header.origin.as_deref() {
        Some(o) if o != ctx.peer.as_str() => {
            let Some(id) = PeerId::parse(o) else {
                return Err(protocol("malformed origin"));
            };
            let who = super::dial::peer_nick(&ctx.shared, &id);
            let who = if who.is_empty() {
                id.short().to_string()
            } else {
                printable(&who).into_owned()
            };
            let control = ctx.shared.peers().sender(&id);
            match ctx.shared.transfers.vouch_of(&id, &ctx.id, control).await {
                Some(d) if d == digest => {
                    // Shown as the sender's (as its offer is), through the relay.
                    let relay = super::stream::who(ctx);
                    let nick = super::dial::peer_nick(&ctx.shared, &id);
                    let _ = ctx.vouched.set((id.clone(), digest));
                    // Carried by the next update (the question, or the first bytes): a progress
                    // line now would show a re-attached receive at 0 bytes before its resume.
                    ctx.note(|v| {
                        v.peer = id.clone();
                        v.nick = nick;
                        v.via = Some(relay);
                    });
                    Some(id)
                }
                Some(_) => {
                    let why = format!(
                        "the offer {} passed on differs from what {who} sent: refused",
                        super::stream::who(ctx)
                    );
                    return Err(refuse(ctx, writer, Reason::Rejected, &why).await);
                }
                None => {
                    let why = format!("{} {who}, who started it: refused", relay::UNCONFIRMED);
                    return Err(refuse(ctx, writer, Reason::Unconfirmed, &why).await);
                }
            }
        }
        _ => None,
    };
    let mut deposit_dest = None;
    let accept = match decision {
        Decision::Requested(_) => Ok(()),
        Decision::Fetched(want) if want == content => Ok(()),
        Decision::Fetched(_) => Err((Reason::Rejected, format!("{}'s copy is not what was deposited", who(ctx)))),
        Decision::Ask if header.deposit.is_some() => {
            let owner = origin.as_ref().unwrap_or(&ctx.peer).clone();
            let name = header.deposit.clone().unwrap_or_default();
            let files = entries.iter().filter(|e| !e.dir).count() as u32;
            let (shared, bytes) = (ctx.shared.clone(), header.bytes);
            let admitted = tokio::task::spawn_blocking(move || super::held::admit(&shared, &owner, &name, content, bytes, files))
                .await
                .map_err(|_| Stop::Failed("cannot hold the deposit".into()))?;
            match admitted {
                Ok(admitted) => {
                    let held = &admitted.held;
                    deposit_dest = Some(crate::node::locker::deposit_dir(&ctx.shared.config.data_dir, &held.owner, &held.id));
                    let _ = ctx.deposit.set(admitted);
                    Ok(())
                }
                Err(why) => Err(why),
            }
        }
        Decision::Ask => {
            // Trust follows the peer that started the send, not the relay that passes it on.
            let sender = origin.as_ref().unwrap_or(&ctx.peer);
            let trusted = ctx.shared.peers().get(sender).is_some_and(|p| p.trusted);
            // The same offer of a transfer taken before, now from another peer of its chain
            // (its relay went away): taken again without asking.
            let reattached = ctx.shared.transfers.was_accepted(&ctx.id, &digest);
            if ctx.shared.config.accept_all || trusted || reattached {
                Ok(())
            } else {
                // While a person decides, the sender may give up: watch the connection too.
                tokio::select! {
                    answer = ask(ctx, header.bytes, manifest.clone(), origin.as_ref()) => answer,
                    msg = next(ctx, reader, None) => {
                        super::ask::forget_offer(ctx, "withdrawn");
                        return Err(match msg {
                            Err(stop) => stop,
                            Ok(other) => protocol(&format!("unexpected {} before the answer", msg_name(&other))),
                        });
                    }
                }
            }
        }
    };
    if let Err((code, reason)) = accept {
        return Err(refuse(ctx, writer, code, &reason).await);
    }
    ctx.shared.transfers.remember_accepted(&ctx.id, digest);
    let dest = deposit_dest.as_deref().unwrap_or(dest);

    // Database look-ups, a stat per item, and in a resumed folder a hash of each file found
    // under its name: off the async workers, and (reading what an earlier attempt placed may
    // take a while) not a stall while the sender waits for the answer.
    ctx.deadline.hold(crate::limits::OFFER_ANSWER_TIMEOUT);
    let prepared = {
        let (shared, dest, m) = (ctx.shared.clone(), dest.to_path_buf(), manifest.clone());
        tokio::task::spawn_blocking(move || Plan::prepare(&shared, &dest, &m))
            .await
            .map_err(|_| Stop::Failed("preparing the transfer failed".into()))?
    };
    ctx.deadline.release();
    let plan = plan_out.insert(prepared.map_err(Stop::Failed)?);
    if let Err(reason) = plan.reserve(&ctx.shared.nick()) {
        return Err(refuse(ctx, writer, Reason::NoSpace, &reason).await);
    }
    let mut resume = Vec::new();
    for (i, slot) in plan.slots.iter_mut().enumerate() {
        // A partial file holds verified chunks only; a torn last write is cut back to a chunk.
        if slot.existing.is_none() {
            slot.offset = Layout::of(slot.size).floor(slot.offset);
        }
        if slot.offset > 0 {
            if resume.len() < MAX_RESUME_ENTRIES {
                resume.push((i as u32, slot.offset));
            } else {
                slot.offset = 0;
                slot.existing = None;
            }
        }
    }
    moving(ctx, async { writer.send(&TransferMsg::Accept { resume }).await.map_err(io_stop) }).await?;
    tracing::debug!("transfer {}: accepted", ctx.id);

    let (dir, names) = plan.resumed_partials();
    super::resume::taken_over(&ctx.shared, &ctx.id, dir, names);
    let expected: Vec<(bool, u64)> = plan.slots.iter().map(|s| (s.dir, s.offset)).collect();
    let resumed = expected.iter().map(|e| e.1).sum();
    let mut meter = Meter::new(ctx, n as u32, header.bytes);
    let mut tally = Tally::new(ctx, n, resumed);
    // Folders are made as the sender reaches them, on the disk thread: nothing is created
    // for an offer whose data never comes.

    // The disk thread owns the plan while files arrive: it writes, hashes, verifies and
    // places, so the next file is read from the socket while the last one is finished.
    let Some(plan) = plan_out.take() else {
        return Err(Stop::Failed("internal error: no plan".into()));
    };
    let (tx, rx) = mpsc::channel::<Vec<Cmd>>(PIPE_DEPTH);
    let (vtx, mut vrx) = mpsc::unbounded_channel();
    let (free_tx, free_rx) = super::stream::spares();
    // A relay: what it verifies goes on to the chain behind it while it comes in.
    let forwarding = CancellationToken::new();
    let (tap, reports) = if header.relay.is_empty() {
        (None, None)
    } else {
        #[cfg(feature = "test-hooks")]
        let corrupt = ctx.shared.config.corrupt_forward;
        #[cfg(not(feature = "test-hooks"))]
        let corrupt = None;
        let tap = Arc::new(Tap::new(corrupt));
        let origin = header.origin.clone().unwrap_or_else(|| ctx.peer.as_str().to_string());
        let reports = relay::start_forward(
            ctx,
            origin,
            header.relay.clone(),
            manifest.clone(),
            tap.clone(),
            forwarding.clone(),
            header.deposit.clone(),
        );
        (Some(tap), Some(reports))
    };
    let disk_tap = tap.clone();
    let relayed = header.origin.as_deref().is_some_and(|o| o != ctx.peer.as_str());
    let from = who(ctx);
    let disk = tokio::task::spawn_blocking(move || disk_loop(plan, rx, vtx, free_tx, disk_tap, relayed, from));
    let mut feed = Feed {
        entries,
        names: Names {
            manifest: manifest.clone(),
            first: 0,
            page: Vec::new(),
        },
        dest,
        expected: &expected,
        tally: &mut tally,
        meter: &mut meter,
        free_rx,
        told: 0,
        batch: Vec::new(),
        batch_bytes: 0,
        received: Vec::new(),
        reported: std::time::Instant::now(),
        reports,
    };
    let streamed = feed.stream(ctx, reader, writer, tx, &mut vrx).await;
    let (plan, failure) = disk
        .await
        .map_err(|e| Stop::Disk(Reason::DiskError, format!("the disk writer failed: {e}")))?;
    tracing::debug!("transfer {}: stream and disk done", ctx.id);
    let plan = plan_out.insert(plan);
    let stopped = match failure {
        Some(DiskStop::Io(i, e)) => Err(disk_failure(ctx, &plan.offered(i), &e, plan.partial_bytes())),
        Some(DiskStop::Corrupt { index, chunk, kept }) => Err(Stop::Corrupt(corrupt_text(ctx, &plan.offered(index), chunk, kept))),
        None => streamed,
    };
    if let Some(tap) = &tap {
        match &stopped {
            // Our sender cancelled the send: for the chain behind us too.
            Err(Stop::CancelledByPeer(_)) => tap.cancelled(),
            // The chain behind us ends with us if we end early; our sender re-attaches it.
            _ => tap.end(
                stopped
                    .as_ref()
                    .err()
                    .map(|_| format!("the relay {} lost its own sender", printable(&ctx.shared.nick()))),
            ),
        }
        if stopped.is_err() {
            forwarding.cancel();
        }
    }
    stopped?;
    while let Ok(verdict) = vrx.try_recv() {
        feed.on_verdict(ctx, writer, verdict)?;
    }
    feed.report_received(ctx);
    let reports = feed.reports.take();
    // Before the last verdicts go out: the sender's user may look at the download folder as
    // soon as they arrive, and the plan's clean-up below must not wait on anything.
    let ok = tally.finish(&manifest).await?;
    moving(ctx, async { writer.flush().await.map_err(io_stop) }).await?;
    plan.finish(&ok);
    if let Some(mut reports) = reports {
        // Our own files are in: our row says so now, not once the last peer behind us answers.
        let ours = Ok(tally.outcome.clone());
        ctx.end_view(&ours);
        // Our own files are in; the sender waits for the peers behind us. Their progress keeps
        // this alive; a quiet spell (a big file synced far down the chain) may last as long as
        // a sender waits for its last verdicts.
        ctx.deadline.hold(crate::limits::LAST_VERDICTS_WAIT);
        let passed_on = async {
            while let Some((peer, report)) = waiting(ctx, reports.recv()).await? {
                let msg = TransferMsg::Relayed { peer, report };
                moving(ctx, async { writer.send(&msg).await.map_err(io_stop) }).await?;
            }
            moving(ctx, async { writer.send(&TransferMsg::RelayDone).await.map_err(io_stop) }).await
        };
        // Whatever ends this wait (a stop here, the sender gone), our copy is verified: this
        // receive is done, and its row stays so (the legs behind us are rows of their own).
        if let Err(stop) = passed_on.await {
            say_stop(ctx, writer, &stop).await;
            tracing::info!("transfer {}: verified here; the chain behind us was not seen to its end", ctx.id);
        }
    }
    Ok(tally.outcome)
}

/// What both ends say of a chunk that failed verification: which, where it came from, what is
/// kept.
fn corrupt_text(ctx: &Ctx, path: &str, chunk: u64, kept: u64) -> String {
    format!(
        "chunk {chunk} of \"{}\" failed verification: the data from {} was corrupted; the {} verified before it are kept",
        printable(path),
        who(ctx),
        human_bytes(kept)
    )
}

/// Take the manifest that follows an offer's header: charged to the node's budget (for every
/// announced item at once, then for each frame's names before they are kept) and spooled. An
/// offer the budget cannot hold is refused with the reason, not dropped.
async fn take_manifest(ctx: &Ctx, reader: &mut SecureReader, writer: &mut SecureWriter, n: usize) -> Result<ReceivedManifest, Stop> {
    let charge = match Charge::take(&ctx.shared, Payer::of(&ctx.peer, ctx.parking.as_ref()), item_charge(n)) {
        Ok(charge) => charge,
        // Over the manifest budget: a no to this offer, as when its names push it over.
        Err(why) => return Err(refuse(ctx, writer, Reason::Rejected, why).await),
    };
    let data_dir = ctx.shared.config.data_dir.clone();
    let mut manifest = tokio::task::spawn_blocking(move || ReceivedManifest::new(&data_dir, n, charge))
        .await
        .map_err(|_| Stop::Failed("cannot hold the offer".into()))?
        .map_err(spool_failed)?;
    let mut name_bytes = 0usize;
    while manifest.len() < n {
        match next(ctx, reader, None).await? {
            TransferMsg::Items { items: more } => {
                if more.is_empty() || more.len() > n - manifest.len() {
                    return Err(protocol("manifest does not match the announced count"));
                }
                name_bytes += more.iter().map(|i| i.path.len()).sum::<usize>();
                if name_bytes > MAX_MANIFEST_BYTES {
                    return Err(protocol("manifest names over the size limit"));
                }
                let (back, appended) = tokio::task::spawn_blocking(move || {
                    let r = manifest.append(more);
                    (manifest, r)
                })
                .await
                .map_err(|_| Stop::Failed("cannot hold the offer".into()))?;
                manifest = back;
                match appended {
                    Ok(()) => {}
                    Err(ManifestRefusal::Refused(why) | ManifestRefusal::NotAsked(why)) => {
                        return Err(refuse(ctx, writer, Reason::Rejected, &why).await);
                    }
                    Err(ManifestRefusal::Io(e)) => return Err(spool_failed(e)),
                }
            }
            other => return Err(protocol(&format!("unexpected {} in the manifest", msg_name(&other)))),
        }
    }
    Ok(manifest)
}

/// Refuse the offer, telling the sender why.
/// Tell the sender why the offer is not taken (bounded by the stall limit: a sender that
/// doesn't read must not hold us), and stop.
async fn refuse(ctx: &Ctx, writer: &mut SecureWriter, code: Reason, why: &str) -> Stop {
    // A plain no needs no words; any other refusal says why, as our own words.
    let text = (!why.is_empty()).then(|| bounded(why));
    let reject = TransferMsg::Reject { code, text };
    let _ = moving(ctx, async { writer.send(&reject).await.map_err(io_stop) }).await;
    Stop::Refused(code, why.to_string())
}

fn spool_failed(e: std::io::Error) -> Stop {
    tracing::warn!("cannot spool an offer's names to the data dir: {e}");
    Stop::Failed("cannot hold the offer (disk error)".into())
}

/// Run `f` on the manifest off the async workers.
async fn blocking<T: Send + 'static>(
    manifest: &Arc<ReceivedManifest>,
    f: impl FnOnce(&ReceivedManifest) -> T + Send + 'static,
) -> Result<T, Stop> {
    let m = manifest.clone();
    tokio::task::spawn_blocking(move || f(&m))
        .await
        .map_err(|_| Stop::Failed("preparing the transfer failed".into()))
}

/// The outcome as verdicts come in: counts for every item, names for at most
/// [`OUTCOME_LISTED`] of each kind, and one byte per item for what is still to come.
struct Tally {
    outcome: Outcome,
    /// 0: no verdict yet, 1: arrived, 2: failed.
    fate: Vec<u8>,
}

impl Tally {
    fn new(ctx: &Ctx, n: usize, resumed: u64) -> Tally {
        Tally {
            outcome: Outcome {
                transfer: ctx.id.clone(),
                resumed,
                ..Outcome::default()
            },
            fate: vec![0; n],
        }
    }

    fn note(&mut self, verdict: Verdict, entry: &Entry) {
        let o = &mut self.outcome;
        match verdict.result {
            Ok(path) => {
                self.fate[verdict.index] = 1;
                if !entry.dir {
                    o.files += 1;
                    o.bytes += entry.size;
                    if o.saved.len() < OUTCOME_LISTED {
                        o.saved.push(path);
                    }
                }
            }
            Err((code, reason)) => {
                self.fate[verdict.index] = 2;
                o.fail(verdict.offered, code, reason);
            }
        }
    }

    /// Count what never came as failed (named up to the list's bound); which items arrived.
    async fn finish(&mut self, manifest: &Arc<ReceivedManifest>) -> Result<Vec<bool>, Stop> {
        let unsent: Vec<usize> = (0..self.fate.len()).filter(|&i| self.fate[i] == 0).collect();
        let named = OUTCOME_LISTED.saturating_sub(self.outcome.failed.len()).min(unsent.len());
        let which = unsent[..named].to_vec();
        let names = blocking(manifest, move |m| m.names(&which)).await?.map_err(spool_failed)?;
        for name in names {
            self.outcome.fail(name, Reason::Other, "it was not sent".into());
        }
        self.outcome.failed_omitted += (unsent.len() - named) as u32;
        Ok(self.fate.iter().map(|&f| f == 1).collect())
    }
}

/// Why the disk thread stopped, for both ends: a full disk says whose, and what is kept.
fn disk_failure(ctx: &Ctx, path: &str, e: &std::io::Error, kept: u64) -> Stop {
    if e.kind() == std::io::ErrorKind::StorageFull {
        let kept = match kept {
            0 => String::new(),
            n => format!("; the {} received are kept for a resume", human_bytes(n)),
        };
        return Stop::Disk(
            Reason::DiskFull,
            format!(
                "disk full on {}: cannot write \"{}\"{kept}",
                printable(&ctx.shared.nick()),
                printable(path)
            ),
        );
    }
    Stop::Disk(Reason::DiskError, format!("cannot write \"{}\": {e}", printable(path)))
}

/// Queue a verdict for the sender (flushed in batches: the sender only waits for them at the
/// end).
fn tell(writer: &mut SecureWriter, verdict: &Verdict, dest: &Path) -> Result<(), Stop> {
    let index = verdict.index as u32;
    let msg = match &verdict.result {
        Ok(path) => TransferMsg::FileOk {
            index,
            saved_as: saved_as(path, dest, &verdict.offered),
        },
        Err((code, reason)) => TransferMsg::FileFailed {
            index,
            code: *code,
            text: Some(bounded(reason)),
        },
    };
    writer.queue_frame(&msg).map_err(io_stop)
}

/// Where a placed item is relative to `dest`, if not where it was offered: the sender's user
/// wants to know that `report.pdf` became `report (1).pdf`. Nothing longer than a name the
/// sender would accept.
fn saved_as(path: &Path, dest: &Path, offered: &str) -> Option<String> {
    let rel = path.strip_prefix(dest).ok()?.to_str()?;
    (rel != offered && rel.len() <= MAX_PATH_BYTES).then(|| rel.to_string())
}

/// The names of the files being received, read from the spool a page at a time (files are
/// usually sent in order).
struct Names {
    manifest: Arc<ReceivedManifest>,
    first: usize,
    page: Vec<Item>,
}

/// Names read ahead for the progress view.
const NAMES_PAGE: usize = 256;

impl Names {
    /// Item `i` with its name and root.
    async fn get(&mut self, i: usize) -> Result<Item, Stop> {
        if i < self.first || i >= self.first + self.page.len() {
            self.page = blocking(&self.manifest, move |m| m.page(i, NAMES_PAGE))
                .await?
                .map_err(spool_failed)?;
            self.first = i;
        }
        self.page
            .get(i - self.first)
            .cloned()
            .ok_or_else(|| Stop::Failed("cannot read the offer back".into()))
    }
}

/// Verdicts queued between flushes.
const TELL_BATCH: usize = 1024;

/// The socket side of receiving: frames in, commands to the disk thread out.
struct Feed<'a> {
    entries: &'a [Entry],
    names: Names,
    /// The download folder, which `FileOk` names are relative to.
    dest: &'a Path,
    expected: &'a [(bool, u64)],
    tally: &'a mut Tally,
    meter: &'a mut Meter,
    free_rx: super::stream::SpareRx,
    told: usize,
    /// Commands gathered for one hand-over to the disk thread: many small files per wake-up.
    batch: Vec<Cmd>,
    batch_bytes: usize,
    /// Files placed and not yet reported: one event per batch, not per file.
    received: Vec<ReceivedFile>,
    reported: std::time::Instant,
    /// A relay's reports on the peers behind it, to pass upstream.
    reports: Option<mpsc::UnboundedReceiver<(String, Report)>>,
}

/// Placed files are reported at most this often, or when this many have gathered.
const RECEIVED_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const RECEIVED_BATCH: usize = 512;

/// Commands per hand-over at most.
const CMD_BATCH: usize = 256;

impl Feed<'_> {
    fn on_verdict(&mut self, ctx: &Ctx, writer: &mut SecureWriter, verdict: Verdict) -> Result<(), Stop> {
        let entry = self
            .entries
            .get(verdict.index)
            .copied()
            .ok_or_else(|| Stop::Failed("internal error: bad verdict".into()))?;
        if entry.dir {
            self.meter.end_file(ctx);
        } else if let Ok(path) = &verdict.result {
            self.received.push(ReceivedFile {
                path: path.to_string_lossy().into_owned(),
                size: entry.size,
            });
            if self.received.len() >= RECEIVED_BATCH || self.reported.elapsed() >= RECEIVED_EVERY {
                self.report_received(ctx);
            }
        }
        tell(writer, &verdict, self.dest)?;
        self.tally.note(verdict, &entry);
        self.told += 1;
        Ok(())
    }

    fn report_received(&mut self, ctx: &Ctx) {
        self.reported = std::time::Instant::now();
        if self.received.is_empty() {
            return;
        }
        ctx.emit(Event::FilesReceived {
            transfer: ctx.id.clone(),
            peer: ctx.peer.clone(),
            files: std::mem::take(&mut self.received),
        });
    }

    /// Queue a command; hand the batch over when it is big, or when `now` (the socket has
    /// nothing more buffered, so the disk thread should not wait for us).
    async fn push(&mut self, tx: &mpsc::Sender<Vec<Cmd>>, cmd: Cmd, now: bool) -> Result<(), Stop> {
        if let Cmd::Data(d) = &cmd {
            self.batch_bytes += d.len();
        }
        self.batch.push(cmd);
        if now || self.batch_bytes >= CHUNK || self.batch.len() >= CMD_BATCH {
            return self.hand_over(tx).await;
        }
        Ok(())
    }

    async fn hand_over(&mut self, tx: &mpsc::Sender<Vec<Cmd>>) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        tx.send(std::mem::take(&mut self.batch)).await.map_err(|_| Stop::Quiet)
    }

    /// Until `Done`. `Stop::Quiet` means the disk thread went away (its own error says why).
    /// Whatever else stops it, files already complete are still handed over to be placed.
    async fn stream(
        &mut self,
        ctx: &Ctx,
        reader: &mut SecureReader,
        writer: &mut SecureWriter,
        tx: mpsc::Sender<Vec<Cmd>>,
        vrx: &mut mpsc::UnboundedReceiver<Verdict>,
    ) -> Result<(), Stop> {
        let result = self.stream_files(ctx, reader, writer, &tx, vrx).await;
        if !matches!(result, Err(Stop::Quiet)) {
            let _ = self.hand_over(&tx).await;
        }
        result
    }

    async fn stream_files(
        &mut self,
        ctx: &Ctx,
        reader: &mut SecureReader,
        writer: &mut SecureWriter,
        tx: &mpsc::Sender<Vec<Cmd>>,
        vrx: &mut mpsc::UnboundedReceiver<Verdict>,
    ) -> Result<(), Stop> {
        let mut fault = ctx.shared.transfers.faults.take();
        let mut started = vec![false; self.entries.len()];
        loop {
            while let Ok(verdict) = vrx.try_recv() {
                self.on_verdict(ctx, writer, verdict)?;
            }
            while let Some(Ok((peer, report))) = self.reports.as_mut().map(|r| r.try_recv()) {
                writer.queue_frame(&TransferMsg::Relayed { peer, report }).map_err(io_stop)?;
                self.told += 1;
            }
            if self.told >= TELL_BATCH {
                moving(ctx, async { writer.flush().await.map_err(io_stop) }).await?;
                self.told = 0;
            }
            match next(ctx, reader, None).await? {
                TransferMsg::FileStart { index, offset } => {
                    let (i, size) = self.start(ctx, reader, tx, &mut started, index, offset, true).await?;
                    self.file(ctx, reader, tx, i, offset, size, &mut fault).await?;
                    self.meter.end_file(ctx);
                }
                TransferMsg::File { index, offset, len } => {
                    let (_, size) = self.start(ctx, reader, tx, &mut started, index, offset, false).await?;
                    if len != size - offset || len > MAX_SEGMENT {
                        return Err(protocol("bad whole file"));
                    }
                    if len > 0 {
                        self.segment(ctx, reader, tx, len, 0, &mut fault).await?;
                    }
                    let now = reader.buffered() == 0;
                    self.push(tx, Cmd::End, now).await?;
                    self.meter.end_file(ctx);
                }
                TransferMsg::Done => return self.push(tx, Cmd::Dirs { below: self.entries.len() }, true).await,
                other => return Err(protocol(&format!("unexpected {}", msg_name(&other)))),
            }
        }
    }

    /// A file begins (`FileStart`, or `File` when `list` is false, which no file with a hash
    /// list may use): check it, take its hashes, and open it on the disk thread. Returns its
    /// index and size.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &mut self,
        ctx: &Ctx,
        reader: &mut SecureReader,
        tx: &mpsc::Sender<Vec<Cmd>>,
        started: &mut [bool],
        index: u32,
        offset: u64,
        list: bool,
    ) -> Result<(usize, u64), Stop> {
        let i = index as usize;
        if self.expected.get(i) != Some(&(false, offset)) || started[i] {
            return Err(protocol("bad file start"));
        }
        started[i] = true;
        // The sender went past every folder before this file.
        self.push(tx, Cmd::Dirs { below: i }, false).await?;
        let size = self.entries[i].size;
        let item = self.names.get(i).await?;
        let layout = Layout::of(size);
        let cvs = match layout.count() {
            0 => Vec::new(),
            // One chunk: checked against the root itself.
            1 => cvs_from_bytes(&item.root).unwrap_or_default(),
            _ if !list => return Err(protocol("a whole-file frame for a file of several chunks")),
            _ => take_hashes(ctx, reader, &layout).await?,
        };
        if root_of(&layout, &cvs).as_ref().map(|r| r.as_slice()) != Some(item.root.as_slice()) {
            return Err(protocol(&format!(
                "the hashes of \"{}\" do not match its root",
                printable(&item.path)
            )));
        }
        self.meter.start_file(&item.path, size, offset);
        let cvs = Arc::new(cvs);
        self.push(
            tx,
            Cmd::Open {
                index: i,
                offset,
                size,
                cvs,
            },
            false,
        )
        .await?;
        Ok((i, size))
    }

    /// One file's segments, up to its `FileEnd` or `FileAbort`.
    #[allow(clippy::too_many_arguments)]
    async fn file(
        &mut self,
        ctx: &Ctx,
        reader: &mut SecureReader,
        tx: &mpsc::Sender<Vec<Cmd>>,
        i: usize,
        offset: u64,
        size: u64,
        fault: &mut Option<Fault>,
    ) -> Result<(), Stop> {
        let mut taken = 0u64;
        let mut remaining = size - offset;
        let chunk_len = Layout::of(size).chunk_len();
        loop {
            match next(ctx, reader, None).await? {
                TransferMsg::Data { len } => {
                    let in_chunk = (offset + taken) % chunk_len;
                    if len == 0 || len > MAX_SEGMENT || len > remaining || in_chunk + len > chunk_len {
                        return Err(protocol("bad data segment"));
                    }
                    self.segment(ctx, reader, tx, len, taken, fault).await?;
                    remaining -= len;
                    taken += len;
                }
                TransferMsg::FileEnd => {
                    if remaining != 0 {
                        return Err(protocol("file ended early"));
                    }
                    let now = reader.buffered() == 0;
                    return self.push(tx, Cmd::End, now).await;
                }
                TransferMsg::FileAbort { index, code, text } if index as usize == i => {
                    self.meter.skip(remaining);
                    let now = reader.buffered() == 0;
                    let reason = match text {
                        Some(t) => format!("{}: {}", who(ctx), bounded(&t)),
                        None => format!("{} could not send it ({code})", who(ctx)),
                    };
                    return self.push(tx, Cmd::Abort { reason }, now).await;
                }
                other => return Err(protocol(&format!("unexpected {} inside a file", msg_name(&other)))),
            }
        }
    }

    /// The `len` raw bytes of one segment (checked by the caller), to the disk thread;
    /// `taken` bytes of this file came before it.
    async fn segment(
        &mut self,
        ctx: &Ctx,
        reader: &mut SecureReader,
        tx: &mpsc::Sender<Vec<Cmd>>,
        len: u64,
        taken: u64,
        fault: &mut Option<Fault>,
    ) -> Result<(), Stop> {
        let mut buf = match self.free_rx.try_recv() {
            Ok(b) if b.capacity() >= len as usize => b,
            _ => Vec::with_capacity(len as usize),
        };
        buf.clear();
        tokio::select! {
            c = reader.read_exact_into(&mut buf, len as usize) => c.map_err(io_stop)?,
            stop = interrupted(ctx) => return Err(stop),
        };
        ctx.deadline.moved();
        let taken = taken + len;
        self.meter.advance(ctx, len);
        let now = reader.buffered() == 0;
        self.push(tx, Cmd::Data(buf), now).await?;
        match *fault {
            Some(Fault::Disconnect(limit)) if taken >= limit => {
                *fault = None;
                // As a pulled cable would: nothing said, each end sees the other go.
                Err(Stop::Lost)
            }
            // A receiver that stops reading (hung, or hostile) until the transfer ends.
            Some(Fault::Stall(limit)) if taken >= limit => {
                *fault = None;
                let _ = self.hand_over(tx).await;
                Err(interrupted(ctx).await)
            }
            // One that falls behind until the test lets it go on.
            Some(Fault::Hold(limit)) if taken >= limit => {
                *fault = None;
                let release = ctx.shared.transfers.faults.hold_release();
                ctx.deadline.hold(crate::limits::OFFER_ANSWER_TIMEOUT);
                let held = waiting(ctx, release.cancelled()).await;
                ctx.deadline.release();
                held
            }
            _ => Ok(()),
        }
    }
}

/// A file's chunk hashes, from the `Hashes` frames that follow its `FileStart`: exactly as many
/// as it has chunks (which its size, bounded by the offer's checks, fixes).
async fn take_hashes(ctx: &Ctx, reader: &mut SecureReader, layout: &Layout) -> Result<Vec<ChainingValue>, Stop> {
    let count = layout.count() as usize;
    let mut cvs = Vec::with_capacity(count);
    while cvs.len() < count {
        match next(ctx, reader, None).await? {
            TransferMsg::Hashes { cvs: bytes } => match cvs_from_bytes(&bytes) {
                Some(more) if !more.is_empty() && more.len() <= count - cvs.len() => cvs.extend(more),
                _ => return Err(protocol("bad hash list")),
            },
            other => return Err(protocol(&format!("unexpected {} before a file's hashes", msg_name(&other)))),
        }
    }
    Ok(cvs)
}
