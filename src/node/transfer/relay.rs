//! Relayed sends: one upload, however many recipients.
//!
//! The sender connects to the first recipient of a chain and hands it the rest; each recipient
//! forwards what it has verified (read back from its own copy, see `tap`) to the first peer of
//! its rest that accepts, and so on. Every node runs the same [`drive`] over the peers behind
//! it: try them in order; a peer that rejects or cannot be reached is reported and skipped;
//! when the connection to a peer ends before the peers behind it finished, they are re-attached
//! here and resume from what they verified. Reports travel upstream (`Relayed`), so the sender
//! sees every recipient's progress — and what each relay claims of its end: a recipient's end
//! counts only from the recipient itself (its `Verdict` over its own control connection, or our
//! direct connection to it). The sender then runs the chain again (up to
//! `RELAY_ROUNDS` in all) for recipients that ended without everything — behind a relay that
//! corrupted data, say — and they resume too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ctx::Ctx;
use super::error::{Direction, FileFailure, Outcome, TransferError};
use super::manifest::ReceivedManifest;
use super::progress::TransferState;
use super::registry::RelayedSend;
use super::send::{self, Outgoing, Producer};
use super::source::SendManifest;
use super::tap::Tap;
use super::wire::{Hop, MAX_REASON_BYTES, Reason, Report, bounded, file_failure_line};
use crate::identity::PeerId;
use crate::limits::{MAX_HINT_ADDRS, MAX_RELAY_HOPS, RELAY_REPORT_EVERY, RELAY_ROUNDS, VERDICT_WAIT};
use crate::net::secure::SecureConn;
use crate::node::{Shared, lock};
use crate::text::{plural, printable};

/// What a recipient says when no vouch for a relayed offer came (see `receive.rs`).
pub(crate) const UNCONFIRMED: &str = "cannot confirm this offer with";

/// A recipient's final no to the files: not offered again in a later round. (A peer that could
/// not confirm a relayed offer with its sender said no to the relay, not to the files.)
fn said_no(code: Reason) -> bool {
    matches!(code, Reason::Rejected | Reason::Expired | Reason::NoSpace)
}

/// A recipient's own end that is final: it said no, or cancelled (not offered again).
fn final_no(code: Reason) -> bool {
    said_no(code) || code.is_cancel()
}

/// How long the sender waits to queue a vouch on a recipient's control connection.
const VOUCH_SEND_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a chain from the wire is one we can use: a bounded number of hops, each a proper
/// id with a few parseable addresses, none of them us or the peer that sent it.
pub(crate) fn check_hops(hops: &[Hop], me: &PeerId, from: &PeerId) -> Result<(), String> {
    if hops.len() > MAX_RELAY_HOPS {
        return Err(format!(
            "a relay chain of {} peers is over the limit of {MAX_RELAY_HOPS}",
            hops.len()
        ));
    }
    for (k, hop) in hops.iter().enumerate() {
        let id = PeerId::parse(&hop.id).ok_or("a relay chain names a malformed peer id")?;
        if &id == me || &id == from || hops[..k].iter().any(|h| h.id == hop.id) {
            return Err("a relay chain names a peer twice".into());
        }
        if hop.addrs.len() > MAX_HINT_ADDRS || hop.addrs.iter().any(|a| a.len() > 64 || a.parse::<SocketAddr>().is_err()) {
            return Err("a relay chain names a malformed address".into());
        }
    }
    Ok(())
}

/// Who a chain's peers are, and how to talk to each directly.
pub(crate) struct Chain<'a> {
    pub shared: &'a Arc<Shared>,
    pub hops: Vec<Hop>,
    /// Who started the send (named in every offer, so that a recipient can tell a relayed
    /// offer — which may take over one it already receives — from a plain one).
    pub origin: String,
    /// We are a relay: our connections to the peers behind us are transfers of their own here,
    /// each ended as it ends (the sender ends its recipients' transfers once, after the last
    /// round).
    pub relaying: bool,
    /// A deposit's name: every offer of the chain is a `Deposit`.
    pub deposit: Option<String>,
}

/// Run the chain below us until every peer in it has a fate or `stop` is raised. `ctx_for(k)`
/// gives the transfer context for a direct connection to peer `k`; `produce()` a fresh source
/// of data for each connection; `sink(k, report, via)` hears every report: ours on our direct
/// peer (`via` None), and what the direct peer `via` says of the peers behind it.
pub(crate) async fn drive(
    chain: &Chain<'_>,
    m: &SendManifest,
    ctx_for: &mut (dyn FnMut(usize) -> Arc<Ctx> + Send),
    produce: &(dyn Fn() -> Producer + Sync),
    sink: &mut Sink<'_>,
    stop: &CancellationToken,
) {
    let n = chain.hops.len();
    // Whether each peer has its final report.
    let mut fate = vec![false; n];
    while !stop.is_cancelled() {
        let Some(k) = (0..n).find(|&k| !fate[k]) else {
            break;
        };
        let rest: Vec<Hop> = (k + 1..n).filter(|&j| !fate[j]).map(|j| chain.hops[j].clone()).collect();
        let ctx = ctx_for(k);
        let conn = tokio::select! {
            c = connect_hop(chain.shared, &chain.hops[k]) => c,
            _ = stop.cancelled() => break,
        };
        let result = match conn {
            Ok(conn) => run_hop(chain, &ctx, conn, m, rest, produce(), k, &mut fate, sink).await,
            Err(e) => Err(e),
        };
        if chain.relaying {
            ctx.report(&result).await;
        }
        let report = match result {
            Ok(o) => Report::Finished {
                files: o.files,
                bytes: o.bytes,
                failed: o.failed_count() as u32,
                reason: o.failed.first().map(|f| file_failure_line(&f.path, &f.reason)),
                saved_as: o.saved_as,
            },
            // A peer that could not confirm the offer with its sender (its vouch got lost) said
            // no to the relay, not to the files: the sender's next round offers it directly.
            Err(e) => Report::Failed {
                code: e.reason(),
                reason: bounded(&e.to_string()),
            },
        };
        fate[k] = true;
        sink(k, report, None);
    }
}

/// Where a chain's reports go: (peer, report, the direct peer that passed it on).
pub(crate) type Sink<'a> = dyn FnMut(usize, Report, Option<usize>) + Send + 'a;

/// One direct connection of the chain: stream to peer `k`, passing on the peers behind it,
/// and take in their reports while it runs.
#[allow(clippy::too_many_arguments)]
async fn run_hop(
    chain: &Chain<'_>,
    ctx: &Ctx,
    conn: SecureConn,
    m: &SendManifest,
    rest: Vec<Hop>,
    producer: Producer,
    k: usize,
    fate: &mut [bool],
    sink: &mut Sink<'_>,
) -> Result<Outcome, TransferError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = Outgoing {
        relay: rest,
        origin: Some(chain.origin.clone()),
        reports: Some(tx),
        producer,
        deposit: chain.deposit.clone(),
    };
    let run = send::run(ctx, conn, m, out);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(RELAY_REPORT_EVERY);
    let mut accepted = false;
    let mut last = (u64::MAX, u32::MAX);
    // A report on a peer behind ours that has no fate yet (a relay may not report twice); our
    // direct peer's own end (all its verdicts in, over our own connection) as its word.
    let take = |peer: String, report: Report, fate: &mut [bool], sink: &mut Sink<'_>| {
        if peer == chain.hops[k].id {
            return sink(k, report, None);
        }
        let Some(j) = chain.hops.iter().position(|h| h.id == peer).filter(|&j| j > k && !fate[j]) else {
            return;
        };
        if matches!(report, Report::Finished { .. } | Report::Failed { .. }) {
            fate[j] = true;
        }
        sink(j, report, Some(k));
    };
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            Some((peer, report)) = rx.recv() => take(peer, report, fate, sink),
            _ = tick.tick() => {
                // Our direct peer's progress, as the peers behind us report theirs.
                let v = ctx.view();
                if v.state != TransferState::Running {
                    continue;
                }
                if !accepted {
                    accepted = true;
                    sink(k, Report::Accepted { resumed: v.bytes }, None);
                }
                if (v.bytes, v.files_done) != last {
                    last = (v.bytes, v.files_done);
                    sink(k, Report::Progress { bytes: v.bytes, files: v.files_done }, None);
                }
            }
        }
    };
    while let Ok((peer, report)) = rx.try_recv() {
        take(peer, report, fate, sink);
    }
    result
}

/// A transfer connection to a peer of a chain: at the addresses the chain gives, then at any
/// we know ourselves; the key that answers must be the one the chain names.
pub(super) async fn connect_hop(shared: &Arc<Shared>, hop: &Hop) -> Result<SecureConn, TransferError> {
    let Some(id) = PeerId::parse(&hop.id) else {
        return Err(TransferError::Unreachable("malformed peer id".into()));
    };
    let addrs: Vec<SocketAddr> = hop.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    super::dial::dial_any(shared, &id, addrs).await
}

/// The chain entry for a peer we know: its id and where we reach it.
pub(crate) fn hop_of(shared: &Shared, peer: &PeerId) -> Hop {
    let addrs = shared
        .peers()
        .get(peer)
        .map(|p| p.dial_addrs.iter().take(MAX_HINT_ADDRS).map(|a| a.to_string()).collect())
        .unwrap_or_default();
    Hop {
        id: peer.as_str().to_string(),
        addrs,
    }
}

/// The sender's side of a relayed send: the chain over `ctxs` (one per recipient, in order),
/// run again for recipients that ended without everything; each recipient's result goes to
/// its channel once the send is over (and to its view as soon as it is final).
///
/// Only a recipient's own word counts: what our direct connection to it says, or the verdict
/// it sends over its control connection. What a relay says of the peers behind it is a claim:
/// it moves their rows, but a recipient a relay spoke for and that did not confirm it is served
/// directly in the next round, and if that fails too its result says whose words they were.
pub(crate) async fn send(
    shared: Arc<Shared>,
    group: String,
    m: SendManifest,
    ctxs: Vec<Arc<Ctx>>,
    results: Vec<oneshot::Sender<Result<Outcome, TransferError>>>,
    deposit: Option<String>,
) {
    let n = ctxs.len();
    let hops: Vec<Hop> = ctxs.iter().map(|c| hop_of(&shared, &c.peer)).collect();
    let name = m.label();
    for c in &ctxs {
        c.update(|v| v.name.clone_from(&name));
        // Kept from the start: a node killed mid-way offers it again after a restart.
        c.store_start().await;
    }
    // Each recipient hears from us what we offer, so that no relay can offer it anything else
    // (and can ask again while the send runs); each tells us how it ended.
    let digest = super::wire::vouched_digest(m.digest(), deposit.as_deref());
    let (verdict_tx, mut verdicts) = mpsc::channel(4 * n + 8);
    lock(&shared.transfers.sending).insert(
        group.clone(),
        RelayedSend {
            digest,
            recipients: ctxs.iter().map(|c| c.peer.clone()).collect(),
            verdicts: verdict_tx,
        },
    );
    // Forgotten however this ends, also if the task is dropped part-way.
    struct Sending<'a>(&'a Shared, &'a str);
    impl Drop for Sending<'_> {
        fn drop(&mut self) {
            lock(&self.0.transfers.sending).remove(self.1);
        }
    }
    let _sending = Sending(&shared, &group);
    vouch_to_all(&shared, &group, &digest, &ctxs).await;
    let stop = CancellationToken::new();
    // Cancelling any recipient's transfer stops the one stream they all hang on.
    let cancel_all = {
        let tokens: Vec<CancellationToken> = ctxs.iter().map(|c| c.cancel.clone()).collect();
        let stop = stop.clone();
        let ctxs = ctxs.clone();
        tokio::spawn(async move {
            let any = futures_any(tokens.clone());
            tokio::select! {
                _ = any => {
                    for c in &ctxs { c.cancel.cancel(); }
                    stop.cancel();
                }
                _ = stop.cancelled() => {}
            }
        })
    };
    let fates = Mutex::new(Fates::new(n));
    let total = (m.bytes, m.items.len() as u32);
    // A recipient's end reported as soon as it is final, outside the lock on the fates (a
    // report stores the transfer); all of them done before the results go out.
    let early = TaskTracker::new();
    let report_now = |k: usize, ended: Option<Result<Outcome, TransferError>>| {
        if let Some(result) = ended {
            let ctx = ctxs[k].clone();
            early.spawn(async move { ctx.report(&result).await });
        }
    };
    let hear = |peer: PeerId, report: Report| {
        if let Some(k) = ctxs.iter().position(|c| c.peer == peer) {
            let ended = lock(&fates).word(&ctxs[k], k, report, total);
            report_now(k, ended);
        }
    };
    for round in 0..RELAY_ROUNDS {
        let (todo, direct): (Vec<usize>, Vec<usize>) = {
            let f = lock(&fates);
            let todo = (0..n).filter(|&k| f.retry(k)).collect::<Vec<_>>();
            todo.into_iter().partition(|&k| f.claim[k].is_none())
        };
        if (todo.is_empty() && direct.is_empty()) || stop.is_cancelled() {
            break;
        }
        if round > 0 {
            tracing::info!("transfer {group}: round {} for {} recipients", round + 1, todo.len() + direct.len());
        }
        // Those a relay spoke for without their own word: one direct connection each.
        let chains = std::iter::once(todo).chain(direct.into_iter().map(|k| vec![k]));
        for members in chains.filter(|c| !c.is_empty()) {
            let chain = Chain {
                shared: &shared,
                hops: members.iter().map(|&k| hops[k].clone()).collect(),
                origin: shared.identity.id().as_str().to_string(),
                relaying: false,
                deposit: deposit.clone(),
            };
            let mut ctx_for = |j: usize| ctxs[members[j]].clone();
            let produce = || Producer::Files;
            let mut sink = |j: usize, report: Report, via: Option<usize>| {
                let k = members[j];
                let mut f = lock(&fates);
                match via {
                    None => {
                        let ended = f.word(&ctxs[k], k, report, total);
                        drop(f);
                        report_now(k, ended);
                    }
                    Some(v) => f.claim(&ctxs[k], k, &ctxs[members[v]], report, total),
                }
            };
            let run = drive(&chain, &m, &mut ctx_for, &produce, &mut sink, &stop);
            tokio::select! {
                _ = run => {}
                _ = async { while let Some((peer, report)) = verdicts.recv().await { hear(peer, report) } } => {}
            }
        }
        // A recipient a relay spoke for has a moment to say so itself.
        let until = tokio::time::Instant::now() + VERDICT_WAIT;
        while lock(&fates).awaiting() && !stop.is_cancelled() {
            match tokio::time::timeout_at(until, verdicts.recv()).await {
                Ok(Some((peer, report))) => hear(peer, report),
                _ => break,
            }
        }
    }
    stop.cancel();
    let _ = cancel_all.await;
    early.close();
    early.wait().await;
    let mut f = fates.into_inner().unwrap_or_else(|e| e.into_inner());
    for (k, tx) in results.into_iter().enumerate() {
        let result = f.result(&ctxs[k], k, &group);
        if !f.reported[k] {
            ctxs[k].report(&result).await;
        }
        let _ = tx.send(result);
    }
}

/// A recipient of an offer a relay passed on tells the sender that vouched for it, over its own
/// control connection, how it ended here (a re-attached receive leaves that to the one that
/// took over).
pub(crate) fn tell_origin(ctx: &Ctx, result: &Result<Outcome, TransferError>) {
    let Some((origin, digest)) = ctx.vouched.get() else {
        return;
    };
    if ctx.supersede.is_cancelled() {
        return;
    }
    let Some(tx) = ctx.shared.peers().sender(origin) else {
        return tracing::info!("transfer {}: cannot tell {} how it ended (not connected)", ctx.id, origin.short());
    };
    let (finished, files, bytes, failed, code, reason) = match result {
        Ok(o) => (
            true,
            o.files,
            o.bytes,
            o.failed_count() as u32,
            None,
            o.failed.first().map(|f| file_failure_line(&f.path, &f.reason)),
        ),
        Err(e) => (false, 0, 0, 0, Some(e.reason()), Some(bounded(&e.to_string()))),
    };
    let verdict = crate::net::wire::ControlMsg::Verdict {
        transfer: ctx.id.clone(),
        digest: serde_bytes::ByteBuf::from(digest.to_vec()),
        finished,
        files,
        bytes,
        failed,
        code,
        reason,
    };
    if tx.try_send(verdict).is_err() {
        tracing::info!(
            "transfer {}: cannot tell {} how it ended (its queue is full)",
            ctx.id,
            origin.short()
        );
    }
}

/// Tell every recipient what we offer, over its control connection.
async fn vouch_to_all(shared: &Arc<Shared>, group: &str, digest: &[u8; 32], ctxs: &[Arc<Ctx>]) {
    let node = crate::node::NodeHandle { shared: shared.clone() };
    // One moment for all of them, not one each: thirty offline recipients must not cost minutes.
    let settle = tokio::time::Instant::now() + VOUCH_SEND_LIMIT;
    for c in ctxs {
        // A recipient just looked up may still be finishing its control connection's setup:
        // give it a moment, or it gets no vouch (and asks again, or is served directly later).
        if shared.peers().sender(&c.peer).is_none() {
            node.wait_online(&c.peer, settle.saturating_duration_since(tokio::time::Instant::now()))
                .await;
        }
        let control = shared.peers().sender(&c.peer);
        match control {
            Some(tx) => {
                let vouch = crate::net::wire::ControlMsg::vouch(group.to_string(), digest);
                // Bounded, by the same moment as the wait above: a peer that does not read its
                // control connection gets no vouch (and will not take the offer from a relay).
                if !matches!(tokio::time::timeout_at(settle, tx.send(vouch)).await, Ok(Ok(()))) {
                    tracing::info!("transfer {group}: cannot vouch to {} (disconnected)", c.peer.short());
                }
            }
            None => tracing::info!("transfer {group}: cannot vouch to {} (not connected)", c.peer.short()),
        }
    }
}

/// What the sender knows of each recipient of a relayed send.
struct Fates {
    /// Its own last word (`Finished` or `Failed`): from our connection to it, or its verdict.
    word: Vec<Option<Report>>,
    /// What a relay (named) said of its end, with no word of its own yet.
    claim: Vec<Option<(String, Report)>>,
    /// Why it failed first, its code and in its own words (a later round that fails again
    /// adds to the words; the first code says whether the send pauses).
    first_failure: Vec<Option<(Reason, String)>>,
    /// Its view shows the end already (it came while the others went on).
    reported: Vec<bool>,
}

impl Fates {
    fn new(n: usize) -> Fates {
        Fates {
            word: vec![None; n],
            claim: vec![None; n],
            first_failure: vec![None; n],
            reported: vec![false; n],
        }
    }

    /// Whether recipient `k` is worth another round: it neither finished nor said no.
    fn retry(&self, k: usize) -> bool {
        match &self.word[k] {
            Some(Report::Finished { .. }) => false,
            Some(Report::Failed { code, .. }) => !final_no(*code),
            _ => true,
        }
    }

    /// Whether some recipient a relay spoke for has not confirmed it yet.
    fn awaiting(&self) -> bool {
        self.claim.iter().zip(&self.word).any(|(c, w)| c.is_some() && w.is_none())
    }

    /// Recipient `k` speaks for itself; its end to report now, when this word is final.
    fn word(&mut self, ctx: &Ctx, k: usize, report: Report, total: (u64, u32)) -> Option<Result<Outcome, TransferError>> {
        if self.word[k].is_some() && !self.retry(k) {
            return None;
        }
        show(ctx, &report, total, None);
        // What a relay said of it went first: it is part of the story, as the relay's words.
        if let Some((relay, Report::Failed { code, reason })) = &self.claim[k]
            && self.first_failure[k].is_none()
            && matches!(report, Report::Failed { code, .. } if !final_no(code))
        {
            self.first_failure[k] = Some((*code, format!("{relay} says: {}", printable(reason))));
        }
        match &report {
            Report::Accepted { .. } | Report::Progress { .. } => return None,
            // A lost vouch is no failure of the recipient's: it is served directly next round.
            Report::Failed { code, reason } if self.first_failure[k].is_none() && !final_no(*code) && *code != Reason::Unconfirmed => {
                self.first_failure[k] = Some((*code, reason.clone()));
            }
            _ => {}
        }
        self.claim[k] = None;
        self.word[k] = Some(report);
        // Verified, or said no: its row says so at once, whatever the others still do.
        if self.retry(k) {
            return None;
        }
        self.reported[k] = true;
        Some(self.result(ctx, k, ""))
    }

    /// Relay `via` says something of recipient `k`.
    fn claim(&mut self, ctx: &Ctx, k: usize, via: &Ctx, report: Report, total: (u64, u32)) {
        let relay = super::stream::who(via);
        if self.word[k].is_some() {
            // It spoke for itself already (its row may have ended); the relay only tells which
            // way the files went.
            ctx.amend(|v| v.via = Some(relay));
            return;
        }
        show(ctx, &report, total, Some(&relay));
        if let Report::Finished { .. } | Report::Failed { .. } = report {
            self.claim[k] = Some((relay, report));
        }
    }

    /// How it ended with recipient `k`, for the one who started the send.
    fn result(&mut self, ctx: &Ctx, k: usize, group: &str) -> Result<Outcome, TransferError> {
        match self.word[k].clone() {
            Some(Report::Finished {
                files,
                bytes,
                failed,
                reason,
                saved_as,
            }) => {
                let mut o = Outcome {
                    transfer: group.to_string(),
                    files,
                    bytes,
                    saved_as,
                    ..Outcome::default()
                };
                if failed > 0 {
                    // A relay's or a recipient's count and first line: no code comes with them.
                    o.failed.push(FileFailure {
                        path: String::new(),
                        reason: reason.unwrap_or_else(|| "did not arrive".into()),
                        code: Reason::Other,
                    });
                    o.failed_omitted = failed - 1;
                }
                Ok(o)
            }
            Some(Report::Failed { code, reason }) if said_no(code) => Err(TransferError::Rejected(code, reason)),
            Some(Report::Failed { code, reason }) if code.is_cancel() => Err(TransferError::Cancelled(code, reason)),
            // What went wrong first says most (a relay died mid-way, the peer went away); a
            // later round that could not reach the peer again adds to its words, and its code
            // decides: a peer that went away (or stopped) pauses the send, to be offered again
            // when it is back, even if the next round could not reach it.
            Some(Report::Failed { code, reason }) => {
                let last = code;
                let (code, text) = match self.first_failure[k].clone() {
                    Some((first, words)) if words != reason => (first, format!("{words} (sending again: {reason})")),
                    Some((first, _)) => (first, reason),
                    None => (code, reason),
                };
                // This node stopping in a later round pauses it too, whatever went first.
                let code = if last == Reason::Stopped { last } else { code };
                Err(match code {
                    Reason::Stopped => TransferError::Stopped(text),
                    Reason::ConnectionLost | Reason::Stalled => TransferError::PeerLost(code, text),
                    Reason::Unreachable => TransferError::Unreachable(text),
                    _ => TransferError::Failed(code, text),
                })
            }
            _ if ctx.cancel.is_cancelled() => Err(TransferError::Cancelled(Reason::CancelledBySender, "cancelled".into())),
            // Only a relay spoke for it: its words, as its own.
            _ => match self.claim[k].take() {
                Some((relay, claim)) => Err(TransferError::failed(format!(
                    "{relay} says: {}; {} did not confirm it",
                    claim_text(&claim, &super::stream::who(ctx)),
                    super::stream::who(ctx)
                ))),
                None => Err(TransferError::failed("no report came")),
            },
        }
    }
}

/// What a relay's report on a recipient says, in plain words.
fn claim_text(claim: &Report, who: &str) -> String {
    match claim {
        Report::Finished { files, failed: 0, .. } => format!("{who} verified {}", plural(*files, "file")),
        Report::Finished { failed, .. } => format!("{} did not arrive at {who}", plural(*failed, "file")),
        Report::Failed { reason, .. } => printable(reason).into_owned(),
        Report::Accepted { .. } | Report::Progress { .. } => format!("{who} is receiving"),
    }
}

/// Resolves when any of the tokens is cancelled. Its watchers end with it: a send that ends
/// without a cancel must not leave one task per recipient waiting for ever.
async fn futures_any(tokens: Vec<CancellationToken>) {
    struct Watchers(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for Watchers {
        fn drop(&mut self) {
            for w in &self.0 {
                w.abort();
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let _watchers = Watchers(
        tokens
            .into_iter()
            .map(|t| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    t.cancelled().await;
                    let _ = tx.send(()).await;
                })
            })
            .collect(),
    );
    drop(tx);
    let _ = rx.recv().await;
}

/// Show a report on the recipient's view at the sender; `via`: the relay whose words they are.
fn show(ctx: &Ctx, report: &Report, (total, files): (u64, u32), via: Option<&str>) {
    let percent = |bytes: u64| (bytes.min(total) as u128 * 100).checked_div(total as u128).map_or(100, |p| p as u8);
    let via = via.map(str::to_string);
    match *report {
        Report::Accepted { resumed } => ctx.update(|v| {
            v.state = TransferState::Running;
            v.files = files;
            v.total = total;
            v.bytes = v.bytes.max(resumed);
            v.percent = percent(v.bytes);
            v.via = via;
        }),
        Report::Progress { bytes, files: done } => ctx.update(|v| {
            v.state = TransferState::Running;
            v.files = files;
            v.total = total;
            v.bytes = bytes;
            v.files_done = done;
            v.percent = percent(bytes);
            v.via = via;
        }),
        // A recipient's own word on its end keeps the relay it came through.
        Report::Finished { .. } if via.is_none() => {}
        Report::Finished { .. } => ctx.update(|v| v.via = via),
        Report::Failed { ref reason, .. } => {
            let reason = printable(reason).chars().take(MAX_REASON_BYTES).collect::<String>();
            let reason = match &via {
                Some(relay) => format!("{relay} says: {reason}"),
                None => reason,
            };
            ctx.update(|v| {
                v.message = Some(reason);
                if via.is_some() {
                    v.via = via;
                }
            });
        }
    }
}

/// A relay's side: forward what this node verifies (`tap`) to the chain it was handed,
/// reporting on every peer of it upstream through `reports`. Ends when every peer has a fate,
/// or when `stop` is raised (our own sender went away: the peers behind us are then told, and
/// our sender's side re-attaches them).
pub(crate) fn start_forward(
    ctx: &Ctx,
    origin: String,
    hops: Vec<Hop>,
    manifest: Arc<ReceivedManifest>,
    tap: Arc<Tap>,
    stop: CancellationToken,
    deposit: Option<String>,
) -> mpsc::UnboundedReceiver<(String, Report)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = ctx.shared.clone();
    let group = ctx.wire_id();
    shared.clone().tracker.spawn("transfer::relay_forward", async move {
        let items = {
            let m = manifest.clone();
            match tokio::task::spawn_blocking(move || m.items()).await {
                Ok(Ok(items)) => items,
                _ => {
                    for h in &hops {
                        let _ = tx.send((
                            h.id.clone(),
                            Report::Failed {
                                code: Reason::DiskError,
                                reason: "the relay cannot read the offer back".into(),
                            },
                        ));
                    }
                    return;
                }
            }
        };
        let m = SendManifest::relayed(items);
        #[cfg(feature = "test-hooks")]
        let hops = match shared.config.relay_tamper.clone() {
            None => hops,
            Some(crate::node::RelayTamper::Redirect(peer)) => vec![hop_of(&shared, &peer)],
            Some(lie) => {
                for h in &hops {
                    let report = match &lie {
                        crate::node::RelayTamper::ClaimFailed(code, words) => Report::Failed {
                            code: *code,
                            reason: words.clone(),
                        },
                        _ => Report::Finished {
                            files: m.items.iter().filter(|i| !i.dir).count() as u32,
                            bytes: m.bytes,
                            failed: 0,
                            reason: None,
                            saved_as: Vec::new(),
                        },
                    };
                    let _ = tx.send((h.id.clone(), report));
                }
                tap.close();
                return;
            }
        };
        let chain = Chain {
            shared: &shared,
            hops,
            origin,
            relaying: true,
            deposit,
        };
        let mut ctx_for = |k: usize| {
            let peer = PeerId::parse(&chain.hops[k].id).unwrap_or_else(|| PeerId::from_public_key(&[]));
            let nick = super::dial::peer_nick(&shared, &peer);
            Arc::new(Ctx::new(&shared, None, peer, nick, Direction::Send, Some(group.clone())))
        };
        let sizes: Vec<(usize, u64)> = m
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| !i.dir)
            .map(|(k, i)| (k, i.size))
            .collect();
        let produce = || {
            let (tap, sizes) = (tap.clone(), sizes.clone());
            Producer::Custom(Box::new(move |offsets: Vec<u64>, tx, spares| {
                let files = sizes.iter().map(|&(k, size)| (k, size, offsets[k])).collect();
                tap.produce(files, tx, spares);
            }))
        };
        let mut sink = |k: usize, report: Report, _via: Option<usize>| {
            let _ = tx.send((chain.hops[k].id.clone(), report));
        };
        drive(&chain, &m, &mut ctx_for, &produce, &mut sink, &stop).await;
        tap.close();
    });
    rx
}
