//! What a face does with transfers ([`NodeHandle`]'s transfer calls): send, get, list, answer
//! offers, cancel and resume.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::ctx::Ctx;
use super::dial::{connect, peer_nick};
use super::error::{Direction, Outcome, TransferError};
use super::ids::{find_id, new_id};
use super::offers::{self, OfferItem, OfferView};
use super::progress::{TransferState, TransferView};
use super::pull::{self, PeerListing};
use super::source::{self, read_sources};
use super::{relay, resume, send, wire};
use crate::identity::PeerId;
use crate::node::peers::FindError;
use crate::node::share::ShareEntry;
use crate::node::{Event, NodeHandle, Shared, lock};

/// A transfer started by this node.
pub struct TransferTask {
    pub id: String,
    join: JoinHandle<Result<Outcome, TransferError>>,
}

/// Files and folders read and hashed, ready to offer ([`NodeHandle::prepare_send`]), with the
/// paths they were read from (kept with the transfer, to offer them again after a restart).
pub struct Prepared(source::SendManifest, Vec<PathBuf>);

impl Prepared {
    /// The hash of the whole offer (names, sizes, roots): what it holds, whatever the times.
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.0.digest()
    }

    /// Bytes of all its files.
    pub(crate) fn bytes(&self) -> u64 {
        self.0.bytes
    }

    /// Its files (folders not counted).
    pub(crate) fn files(&self) -> u32 {
        self.0.items.iter().filter(|i| !i.dir).count() as u32
    }
}

/// A push to several peers ([`NodeHandle::send_group`]).
pub struct GroupTask {
    pub id: String,
    /// One transfer per recipient.
    pub tasks: Vec<(PeerId, TransferTask)>,
}

impl GroupTask {
    /// Every recipient's result, in the order given.
    pub async fn wait(self) -> Vec<(PeerId, Result<Outcome, TransferError>)> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for (peer, task) in self.tasks {
            out.push((peer, task.wait().await));
        }
        out
    }
}

impl TransferTask {
    pub async fn wait(self) -> Result<Outcome, TransferError> {
        self.join
            .await
            .unwrap_or_else(|e| Err(TransferError::failed(format!("transfer task ended abnormally: {e}"))))
    }
}

/// Keeps offers answerable while held: with none held, offers that need a person are rejected
/// at once instead of waiting for nobody.
pub struct Answerer {
    shared: Arc<Shared>,
}

impl Drop for Answerer {
    fn drop(&mut self) {
        self.shared.transfers.answerers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl NodeHandle {
    /// Push files and folders to a peer. Paths that cannot be read fail here, before anything
    /// is offered.
    pub async fn send(&self, peer: &PeerId, paths: &[PathBuf]) -> anyhow::Result<TransferTask> {
        let manifest = read_sources(paths).await?;
        Ok(self.start_send_as(peer, manifest, None, None, Some(paths.to_vec())))
    }

    /// Push the same files and folders to several peers: relayed (each recipient forwards
    /// what it verified to the next, so the sender uploads once; see `relay`). Each is
    /// accepted or rejected on its own and has a transfer view of its own here, all with the
    /// same `group`. The sources are read and hashed once, before anything is offered.
    pub async fn send_group(&self, peers: &[PeerId], paths: &[PathBuf]) -> anyhow::Result<GroupTask> {
        self.send_to(peers, paths, true).await
    }

    /// As [`NodeHandle::send_group`]; with `relayed` false (or one recipient) as parallel
    /// uploads instead, one connection per recipient.
    pub async fn send_to(&self, peers: &[PeerId], paths: &[PathBuf], relayed: bool) -> anyhow::Result<GroupTask> {
        let prepared = self.prepare_send(paths).await?;
        self.send_prepared(peers, prepared, relayed)
    }

    /// Read and hash what is to be sent, before (or while) the recipients are looked up: for a
    /// tree of many small files this is time the send would otherwise wait.
    pub async fn prepare_send(&self, paths: &[PathBuf]) -> anyhow::Result<Prepared> {
        Ok(Prepared(read_sources(paths).await?, paths.to_vec()))
    }

    /// As [`NodeHandle::send_to`], with what [`NodeHandle::prepare_send`] read.
    pub fn send_prepared(&self, peers: &[PeerId], prepared: Prepared, relayed: bool) -> anyhow::Result<GroupTask> {
        if peers.is_empty() {
            anyhow::bail!("no recipients");
        }
        let Prepared(manifest, paths) = prepared;
        let group = new_id();
        if !relayed || peers.len() < 2 {
            let tasks = peers
                .iter()
                .map(|peer| {
                    let task = self.start_send_as(peer, manifest.clone(), Some(group.clone()), None, Some(paths.clone()));
                    (peer.clone(), task)
                })
                .collect();
            return Ok(GroupTask { id: group, tasks });
        }
        Ok(self.start_relay(peers, manifest, Some(paths), None))
    }

    /// One relayed send to `peers` (at least one): a view per recipient, all in one group.
    /// `sources`: the local paths it was read from (kept for a resume); `deposit`: the name the
    /// offers deposit it under instead of offering files.
    fn start_relay(
        &self,
        peers: &[PeerId],
        manifest: source::SendManifest,
        sources: Option<Vec<PathBuf>>,
        deposit: Option<String>,
    ) -> GroupTask {
        let shared = &self.shared;
        let group = new_id();
        let mut ctxs = Vec::new();
        let mut results = Vec::new();
        let mut tasks = Vec::new();
        for peer in peers {
            let ctx = Arc::new(Ctx::new(
                shared,
                None,
                peer.clone(),
                peer_nick(shared, peer),
                Direction::Send,
                Some(group.clone()),
            ));
            *lock(&ctx.sources) = sources.clone();
            let (tx, rx) = oneshot::channel();
            results.push(tx);
            let join = shared.tracker.spawn("transfer::relay_recipient", async move {
                rx.await
                    .unwrap_or_else(|_| Err(TransferError::failed("the relayed send ended abnormally")))
            });
            tasks.push((ctx.peer.clone(), TransferTask { id: ctx.id.clone(), join }));
            ctxs.push(ctx);
        }
        shared.tracker.spawn(
            "transfer::relay",
            relay::send(shared.clone(), group.clone(), manifest, ctxs, results, deposit),
        );
        GroupTask { id: group, tasks }
    }

    /// Deposit what `prepared` read on `peers` under `name` (see `crate::node::locker`): one
    /// relayed send whose offers are `Deposit`s. Not resumable as a send (a resume would offer
    /// plain files): the owner's node deposits again instead.
    pub(crate) fn send_deposit(&self, peers: &[PeerId], prepared: &Prepared, name: &str) -> GroupTask {
        self.start_relay(peers, prepared.0.clone(), None, Some(name.to_string()))
    }

    /// Start a plain send; `id`: the transfer it resumes, `sources`: the local paths it was
    /// read from (stored for a resume).
    pub(super) fn start_send_as(
        &self,
        peer: &PeerId,
        manifest: source::SendManifest,
        group: Option<String>,
        id: Option<&str>,
        sources: Option<Vec<PathBuf>>,
    ) -> TransferTask {
        let shared = self.shared.clone();
        let nick = peer_nick(&shared, peer);
        let ctx = Ctx::new(&shared, id, peer.clone(), nick, Direction::Send, group);
        ctx.started_as_resume
            .store(id.is_some_and(|i| i == ctx.id), std::sync::atomic::Ordering::Relaxed);
        *lock(&ctx.sources) = sources;
        // Named while it connects, not only once offered.
        let name = manifest.label();
        ctx.update(|v| v.name = name);
        let id = ctx.id.clone();
        let join = shared.tracker.spawn("transfer::send", async move {
            ctx.store_start().await;
            let result = match connect(&ctx.shared, &ctx.peer).await {
                Ok(conn) => send::run(&ctx, conn, &manifest, send::Outgoing::plain()).await,
                Err(e) => Err(e),
            };
            ctx.report(&result).await;
            result
        });
        TransferTask { id, join }
    }

    /// Running transfers, then recently finished ones (newest last).
    pub fn transfers(&self) -> Vec<TransferView> {
        let mut running: Vec<TransferView> = lock(&self.shared.transfers.active).values().map(|a| a.view.clone()).collect();
        running.sort_by(|a, b| a.started_ms.cmp(&b.started_ms).then_with(|| a.transfer.cmp(&b.transfer)));
        let mut all: Vec<TransferView> = lock(&self.shared.transfers.recent).iter().cloned().collect();
        all.extend(running);
        all
    }

    /// The full id of the running (or paused) transfer `spec` names (an id or a prefix of at
    /// least 4): one transfer, or a send to several peers by its group id (the id every hop
    /// knows it by).
    pub fn find_transfer(&self, spec: &str) -> Result<String, FindError> {
        let active = lock(&self.shared.transfers.active);
        let paused: Vec<String> = lock(&self.shared.transfers.recent)
            .iter()
            .filter(|v| v.state == TransferState::Paused)
            .map(|v| v.transfer.clone())
            .collect();
        let mut ids: Vec<&String> = active.keys().chain(paused.iter()).collect();
        for a in active.values() {
            if let Some(g) = &a.view.group
                && !ids.contains(&g)
            {
                ids.push(g);
            }
        }
        find_id(ids.into_iter(), spec, "transfer", "is running or paused (see `lanyard transfers`)")
    }

    /// Offers waiting for an answer, oldest first.
    pub fn offers(&self) -> Vec<OfferView> {
        self.shared.transfers.offers.views()
    }

    /// A page of a waiting offer's manifest (at most 1,000 entries); `None` if no such offer.
    pub async fn offer_items(&self, id: &str, offset: usize, limit: usize) -> Option<Vec<OfferItem>> {
        let manifest = self.shared.transfers.offers.manifest(id)?;
        let limit = limit.min(offers::MAX_OFFER_PAGE);
        // The names are in the spool file: read them off the async workers.
        let page = tokio::task::spawn_blocking(move || manifest.page(offset, limit)).await.ok()?;
        match page {
            Ok(items) => Some(items.into_iter().map(OfferItem::from).collect()),
            Err(e) => {
                tracing::warn!("cannot read an offer's names back: {e}");
                None
            }
        }
    }

    /// Bytes charged to the node's manifest budget now, and the most ever charged at once.
    #[doc(hidden)]
    pub fn manifest_budget_use(&self) -> (usize, usize) {
        self.shared.transfers.budget.usage()
    }

    /// The full id of the waiting offer `spec` names (an id or a prefix of at least 4).
    pub fn find_offer(&self, spec: &str) -> Result<String, FindError> {
        self.shared.transfers.offers.find(spec)
    }

    /// List a folder of a peer's shares ("" for the list of shares): its first
    /// `limits::LISTING_KEPT` entries.
    pub async fn list(&self, peer: &PeerId, path: &str) -> Result<Vec<ShareEntry>, TransferError> {
        Ok(self.list_counted(peer, path).await?.entries)
    }

    /// As [`NodeHandle::list`], also counting the entries beyond those kept.
    pub async fn list_counted(&self, peer: &PeerId, path: &str) -> Result<PeerListing, TransferError> {
        let conn = connect(&self.shared, peer).await?;
        pull::list(&self.shared, conn, path).await
    }

    /// Pull paths from a peer's shares into `to` (default: the download dir).
    pub async fn get(&self, peer: &PeerId, paths: &[String], to: Option<PathBuf>) -> anyhow::Result<TransferTask> {
        if paths.is_empty() || paths.len() > wire::MAX_GET_PATHS {
            anyhow::bail!("give 1 to {} paths", wire::MAX_GET_PATHS);
        }
        let shared = self.shared.clone();
        let dest = to.unwrap_or_else(|| shared.config.download_dir.clone());
        let nick = peer_nick(&shared, peer);
        let ctx = Ctx::new(&shared, None, peer.clone(), nick, Direction::Receive, None);
        ctx.no_resume.store(true, std::sync::atomic::Ordering::Relaxed);
        ctx.note(|v| v.saved_to = Some(dest.display().to_string()));
        let id = ctx.id.clone();
        let paths = paths.to_vec();
        let join = shared.tracker.spawn("transfer::get", async move {
            let result = match connect(&ctx.shared, &ctx.peer).await {
                Ok(conn) => pull::get(&ctx, conn, paths, dest).await,
                Err(e) => Err(e),
            };
            ctx.report(&result).await;
            result
        });
        Ok(TransferTask { id, join })
    }

    /// Stop a running transfer, or a paused one for good; both ends remove its partial data.
    /// False if no such transfer.
    pub fn cancel_transfer(&self, id: &str) -> bool {
        if self.cancel_running(id) {
            return true;
        }
        resume::cancel(&self.shared, id)
    }

    /// Resume a paused send now, without waiting to see its peer online. `Err`: no such
    /// paused transfer (`NotFound`), or one this node cannot resume (`Unavailable`: a receive
    /// goes on when its sender sends again; a send whose sources are not known).
    pub fn resume_transfer(&self, id: &str) -> Result<String, crate::node::api::Failure> {
        resume::now(&self.shared, id)
    }

    fn cancel_running(&self, id: &str) -> bool {
        let active = lock(&self.shared.transfers.active);
        if let Some(a) = active.get(id) {
            a.cancel.cancel();
            return true;
        }
        // A group id: every transfer of that send to several peers.
        let mut any = false;
        for a in active.values().filter(|a| a.view.group.as_deref() == Some(id)) {
            a.cancel.cancel();
            any = true;
        }
        any
    }

    /// Answer an offer announced by `Event::Offer`; `always` also trusts the peer from now on.
    pub async fn answer_offer(&self, id: &str, accept: bool, always: bool) -> bool {
        let Some((peer, tx)) = self.shared.transfers.offers.take(id) else {
            return false;
        };
        if accept
            && always
            && let Err(e) = self.set_trusted(&peer, true).await
        {
            tracing::warn!("cannot record trust: {e:#}");
        }
        // A person took this peer's offer: it has standing from now on (see `limits`).
        if accept && let Some(p) = self.shared.peers().get_mut(&peer) {
            p.earned = true;
        }
        self.shared.emit(Event::OfferClosed {
            transfer: id.to_string(),
            reason: if accept { "accepted" } else { "rejected" }.into(),
        });
        tx.send(accept).is_ok()
    }

    /// Declare that a face will answer offers for as long as the guard lives.
    pub fn answer_offers(&self) -> Answerer {
        self.shared.transfers.answerers.fetch_add(1, Ordering::SeqCst);
        Answerer {
            shared: self.shared.clone(),
        }
    }
}
