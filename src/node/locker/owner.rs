//! The owner's side, as `NodeHandle` calls: deposit, list, retrieve, drop; and the holder's
//! own view of what it holds.
//!
//! What holders list to our key is the truth the owner's record is checked against: a survey
//! of the peers online (each lists only our deposits) marks each holder's copy verified or
//! lost, adopts copies the record lacks (the record rebuilt on another machine after `lanyard
//! id import`), and drops copies no longer wanted (a dropped deposit, an old version, a holder
//! that came back after it was replaced).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::db::{self, Deposit};
use super::placement;
use crate::identity::PeerId;
use crate::limits::MAX_REPLICAS;
use crate::node::api::{FailKind, Failure};
use crate::node::transfer::Outcome;
use crate::node::transfer::held::{self, unix_ms};
use crate::node::transfer::wire::HeldEntry;
use crate::node::{NodeHandle, off_thread};
use crate::text::printable;

/// How long a node that has just started waits for the lab to connect before it surveys it.
const LAB_WAIT: Duration = Duration::from_secs(5);

/// One holder of one of our deposits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    pub id: String,
    pub nick: String,
    pub online: bool,
    /// Unix seconds it was last connected (for one offline now).
    pub last_seen: Option<u64>,
    /// Its copy was verified whole: when it took it, or by its own read-back since.
    pub verified: bool,
    /// When, Unix ms (0: never).
    pub last_verified_ms: u64,
}

/// One of our deposits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositView {
    pub id: String,
    pub name: String,
    pub bytes: u64,
    pub files: u32,
    /// The hash of its whole content (names, sizes, file hashes), hex.
    pub hash: String,
    pub replicas_wanted: u32,
    pub replicas_verified: u32,
    pub holders: Vec<HolderView>,
    pub created_ms: u64,
}

/// What a deposit did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositReport {
    pub deposit: DepositView,
    /// It has as many verified copies as it asked for.
    pub complete: bool,
    /// Holders that would not or could not take it, and why.
    pub refused: Vec<String>,
    /// What changed, for a person ("placed on bob, carol", "already held: replicas 2 → 3").
    pub note: String,
}

/// A deposit this node holds for an owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldView {
    pub owner: String,
    pub owner_nick: String,
    pub id: String,
    pub name: String,
    pub bytes: u64,
    pub files: u32,
    pub stored_ms: u64,
    pub renewed_ms: u64,
    pub verified_ms: u64,
}

/// Everything this node holds, and its budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldReport {
    pub held: Vec<HeldView>,
    pub policy: String,
    pub per_owner: u64,
    pub total: u64,
    pub used: u64,
}

/// A retrieve's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrieved {
    pub id: String,
    pub name: String,
    /// The holder it finally came from.
    pub from: String,
    /// Where it is now (a free name when the name was taken: "proj (1)").
    pub saved_to: String,
    pub outcome: Outcome,
    /// Holders tried before, and why they did not serve it all.
    pub skipped: Vec<String>,
}

fn not_found(spec: &str) -> anyhow::Error {
    Failure {
        kind: FailKind::NotFound,
        message: format!("no such deposit: {}", printable(spec)),
    }
    .into()
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_of(e: &HeldEntry) -> [u8; 32] {
    e.digest.as_slice().try_into().unwrap_or([0; 32])
}

impl NodeHandle {
    /// A one-shot command's node has only just started: give the lab a moment to connect.
    async fn lab(&self) {
        if self.listen_addr().is_none() {
            self.wait_room_settled(LAB_WAIT).await;
        }
    }

    fn online(&self) -> Vec<PeerId> {
        self.shared.peers().list().into_iter().filter(|p| p.online).map(|p| p.id).collect()
    }

    /// What each online peer holds for us (a peer that does not answer is left out).
    async fn survey(&self) -> HashMap<PeerId, Vec<HeldEntry>> {
        self.survey_of(self.online()).await
    }

    /// What each of `peers` holds for us; each is told how many copies we want of what it
    /// holds.
    async fn survey_of(&self, peers: Vec<PeerId>) -> HashMap<PeerId, Vec<HeldEntry>> {
        let mut asks = JoinSet::new();
        for peer in peers {
            let shared = self.shared.clone();
            asks.spawn(async move {
                let r = held::list_at(&shared, &peer).await;
                (peer, r)
            });
        }
        let mut out = HashMap::new();
        while let Some(done) = asks.join_next().await {
            match done {
                Ok((peer, Ok(entries))) => {
                    out.insert(peer, entries);
                }
                Ok((peer, Err(e))) => tracing::info!("locker: {} did not list our deposits: {e}", peer.short()),
                Err(_) => {}
            }
        }
        out
    }

    async fn load(&self) -> Result<Vec<Deposit>> {
        let shared = self.shared.clone();
        Ok(off_thread(move || db::deposits(&shared.store)).await??)
    }

    async fn save(&self, d: &Deposit) -> Result<()> {
        let (shared, d) = (self.shared.clone(), d.clone());
        off_thread(move || db::put_deposit(&shared.store, &d)).await??;
        self.publish().await;
        Ok(())
    }

    /// Our deposits as recorded, without asking any holder (the snapshot's).
    pub(crate) async fn deposit_views(&self) -> Result<Vec<DepositView>> {
        Ok(self
            .load()
            .await?
            .iter()
            .filter(|d| d.replicas > 0)
            .map(|d| self.view_of(d))
            .collect())
    }

    /// Tell every face our deposits as recorded now, if that changed since they were told.
    pub(crate) async fn publish(&self) {
        // Held from the read to the send, so that two publishers cannot send their lists out
        // of order.
        let mut last = self.shared.locker.published.lock().await;
        let Ok(views) = self.deposit_views().await else { return };
        if last.as_ref() == Some(&views) {
            return;
        }
        *last = Some(views.clone());
        self.shared.emit(crate::node::Event::Deposits { deposits: views });
    }

    /// Check our record against what the lab holds for us (see the module's doc); the record
    /// as it is then.
    pub(crate) async fn reconcile_deposits(&self) -> Result<Vec<Deposit>> {
        self.lab().await;
        let survey = self.survey().await;
        let record = self.shared.locker.record.lock().await;
        let mut deps = self.load().await?;
        let now = unix_ms();
        let mut drops: Vec<(PeerId, String)> = Vec::new();
        let mut found: HashMap<String, (HeldEntry, Vec<(PeerId, u64)>)> = HashMap::new();
        for (peer, entries) in &survey {
            for e in entries {
                match deps.iter_mut().find(|d| d.id == e.id) {
                    Some(d) if d.replicas == 0 => drops.push((peer.clone(), e.id.clone())),
                    Some(d) => {
                        let good = digest_of(e) == d.digest;
                        let verified = d.holders.iter().filter(|h| h.1).count() as u32;
                        match d.holders.iter_mut().find(|h| &h.0 == peer) {
                            Some(h) => *h = (peer.clone(), good, if good { e.verified_ms } else { h.2 }),
                            None if good && verified < d.replicas => d.holders.push((peer.clone(), true, e.verified_ms)),
                            // A copy no longer wanted: a holder back after it was replaced.
                            None => drops.push((peer.clone(), e.id.clone())),
                        }
                    }
                    None => {
                        let (first, holders) = found.entry(e.id.clone()).or_insert_with(|| (e.clone(), Vec::new()));
                        // The count its owner last told any of them (one away then may lag).
                        first.replicas = first.replicas.max(e.replicas);
                        holders.push((peer.clone(), e.verified_ms));
                    }
                }
            }
        }
        // A holder that answered without listing a copy it had: lost.
        for d in &mut deps {
            for h in &mut d.holders {
                if survey.get(&h.0).is_some_and(|entries| !entries.iter().any(|e| e.id == d.id)) {
                    h.1 = false;
                }
            }
        }
        // Deposits only holders know of (this identity used on another machine before).
        for (id, (e, holders)) in found {
            let copies = holders.len() as u32;
            let told = e.replicas.min(MAX_REPLICAS);
            deps.push(Deposit {
                id,
                name: e.name.clone(),
                bytes: e.bytes,
                files: e.files,
                digest: digest_of(&e),
                // As many copies as its owner wants, which may be more than are found now.
                replicas: if told > 0 { told } else { copies.max(1) },
                created_ms: now,
                holders: holders.into_iter().map(|(p, when)| (p, true, when)).collect(),
            });
        }
        for d in &deps {
            self.save(d).await?;
        }
        drop(record);
        for (peer, id) in drops {
            self.drop_copy(&peer, &id).await;
        }
        self.forget_dropped().await?;
        self.load().await
    }

    /// Ask `peer` to drop its copy of deposit `id`; forgotten as its holder once it did.
    async fn drop_copy(&self, peer: &PeerId, id: &str) -> bool {
        match held::drop_at(&self.shared, peer, id).await {
            Ok(_) => {
                let (shared, peer, id) = (self.shared.clone(), peer.clone(), id.to_string());
                let _ = off_thread(move || db::remove_holder(&shared.store, &id, &peer)).await;
                self.publish().await;
                true
            }
            Err(e) => {
                tracing::info!("locker: {} did not drop deposit {id}: {e}", peer.short());
                false
            }
        }
    }

    /// Deposits dropped (or replaced by a newer version) whose every copy is gone.
    async fn forget_dropped(&self) -> Result<()> {
        for d in self.load().await? {
            if d.replicas == 0 && d.holders.is_empty() {
                let shared = self.shared.clone();
                off_thread(move || db::remove_deposit(&shared.store, &d.id)).await??;
            }
        }
        self.publish().await;
        Ok(())
    }

    fn view_of(&self, d: &Deposit) -> DepositView {
        let peers = self.shared.peers().list();
        let holders = d
            .holders
            .iter()
            .map(|(id, verified, when)| {
                let p = peers.iter().find(|p| &p.id == id);
                HolderView {
                    id: id.as_str().to_string(),
                    nick: p.map(|p| p.nick.clone()).unwrap_or_default(),
                    online: p.is_some_and(|p| p.online),
                    last_seen: p.and_then(|p| p.last_seen),
                    verified: *verified,
                    last_verified_ms: *when,
                }
            })
            .collect();
        DepositView {
            id: d.id.clone(),
            name: d.name.clone(),
            bytes: d.bytes,
            files: d.files,
            hash: hex(&d.digest),
            replicas_wanted: d.replicas,
            replicas_verified: d.holders.iter().filter(|h| h.1).count() as u32,
            holders,
            created_ms: d.created_ms,
        }
    }

    fn nick_of(&self, peer: &PeerId) -> String {
        let nick = self.shared.peers().get(peer).map(|p| p.nick.clone()).unwrap_or_default();
        if nick.is_empty() {
            peer.short().to_string()
        } else {
            printable(&nick).into_owned()
        }
    }

    /// Our deposits, checked against what the holders online list.
    pub async fn deposits(&self) -> Result<Vec<DepositView>> {
        let deps = self.reconcile_deposits().await?;
        Ok(deps.iter().filter(|d| d.replicas > 0).map(|d| self.view_of(d)).collect())
    }

    /// Deposit `path` with `replicas` verified copies: on `to` if given, else on the online
    /// peers its id ranks first. The same name and content again only changes the replica
    /// count; other content is a new version, and the old one is dropped once the new one has
    /// its copies.
    pub async fn deposit(&self, path: &Path, replicas: u32, to: &[PeerId]) -> Result<DepositReport> {
        if replicas == 0 || replicas > MAX_REPLICAS {
            bail!("--replicas must be 1 to {MAX_REPLICAS}");
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("cannot deposit \"{}\": it has no name", printable(&path.to_string_lossy())))?
            .to_string();
        crate::node::transfer::file_names::check_component(&name).map_err(|e| anyhow!("cannot deposit \"{}\": {e}", printable(&name)))?;
        let prepared = self.prepare_send(&[path.to_path_buf()]).await?;
        let digest = prepared.digest();
        let me = self.shared.identity.id().clone();
        let id = super::deposit_id(&me, &name, &digest);
        let deps = self.reconcile_deposits().await?;
        let mut d = deps.iter().find(|d| d.id == id).cloned().unwrap_or(Deposit {
            id: id.clone(),
            name: name.clone(),
            bytes: prepared.bytes(),
            files: prepared.files(),
            digest,
            replicas,
            created_ms: unix_ms(),
            holders: Vec::new(),
        });
        let before = d.replicas;
        let known = deps.iter().any(|x| x.id == id && x.replicas > 0);
        d.replicas = replicas;
        d.holders.retain(|h| h.1);
        let mut refused = Vec::new();
        let mut placed = Vec::new();
        let mut tried: Vec<PeerId> = d.holders.iter().map(|h| h.0.clone()).collect();
        let pool = if to.is_empty() { self.online() } else { to.to_vec() };
        let ranked = placement::rank(&id, &pool);
        while (d.holders.len() as u32) < replicas {
            let need = replicas as usize - d.holders.len();
            let next: Vec<PeerId> = ranked.iter().filter(|p| !tried.contains(p)).take(need).cloned().collect();
            if next.is_empty() {
                break;
            }
            tried.extend(next.iter().cloned());
            let group = self.send_deposit(&next, &prepared, &name);
            for (peer, result) in group.wait().await {
                match result {
                    Ok(o) if o.all_ok() => {
                        self.shared.emit(crate::node::Event::Deposit {
                            deposit: id.clone(),
                            name: name.clone(),
                            change: "placed".into(),
                            peer: peer.clone(),
                        });
                        d.holders.push((peer.clone(), true, unix_ms()));
                        placed.push(self.nick_of(&peer));
                    }
                    Ok(o) => refused.push(format!("{}: {} of its files did not arrive", self.nick_of(&peer), o.failed_count())),
                    Err(e) => refused.push(format!("{}: {e}", self.nick_of(&peer))),
                }
            }
            self.save(&d).await?;
        }
        // Fewer wanted: the copies its id ranks last go.
        let mut dropped = Vec::new();
        while d.holders.len() as u32 > replicas {
            let order = placement::rank(&id, &d.holders.iter().map(|h| h.0.clone()).collect::<Vec<_>>());
            let Some(last) = order.last().cloned() else { break };
            if !self.drop_copy(&last, &id).await {
                break;
            }
            d.holders.retain(|h| h.0 != last);
            dropped.push(self.nick_of(&last));
        }
        self.save(&d).await?;
        // The holders keep how many copies are wanted (for a record rebuilt from them).
        let holders: Vec<PeerId> = d.holders.iter().map(|h| h.0.clone()).collect();
        self.survey_of(holders).await;
        let complete = d.holders.len() as u32 >= replicas;
        if complete {
            // The older versions of this name go once this one has all its copies.
            for old in deps.iter().filter(|x| x.name == name && x.id != id && x.replicas > 0) {
                let mut old = old.clone();
                old.replicas = 0;
                self.save(&old).await?;
                for (peer, _, _) in &old.holders {
                    self.drop_copy(peer, &old.id).await;
                }
            }
            self.forget_dropped().await?;
        }
        let mut note = Vec::new();
        if known && before != replicas {
            note.push(format!("already deposited: replicas {before} → {replicas}"));
        } else if known && placed.is_empty() && dropped.is_empty() {
            note.push("already deposited: nothing to change".to_string());
        }
        if !placed.is_empty() {
            note.push(format!("placed on {}", placed.join(", ")));
        }
        if !dropped.is_empty() {
            note.push(format!("dropped from {}", dropped.join(", ")));
        }
        let d = self.load().await?.into_iter().find(|x| x.id == id).unwrap_or(d);
        Ok(DepositReport {
            deposit: self.view_of(&d),
            complete,
            refused,
            note: note.join("; "),
        })
    }

    /// The deposit `spec` names among ours: an id (or a prefix of at least 4), or a name (its
    /// newest version).
    fn find_deposit<'a>(deps: &'a [Deposit], spec: &str) -> Option<&'a Deposit> {
        let live = || deps.iter().filter(|d| d.replicas > 0);
        live()
            .find(|d| d.id == spec)
            .or_else(|| live().filter(|d| d.name == spec).max_by_key(|d| d.created_ms))
            .or_else(|| {
                let mut by_prefix = live().filter(|d| spec.len() >= 4 && d.id.starts_with(spec));
                let one = by_prefix.next();
                by_prefix.next().is_none().then_some(one).flatten()
            })
    }

    /// Remove deposit `spec` from every holder online; one offline keeps its copy until it is
    /// back (then it is dropped) or it expires.
    pub async fn drop_deposit(&self, spec: &str) -> Result<String> {
        let deps = self.reconcile_deposits().await?;
        let Some(d) = Self::find_deposit(&deps, spec).cloned() else {
            return Err(not_found(spec));
        };
        let mut gone = d.clone();
        gone.replicas = 0;
        self.save(&gone).await?;
        let mut left = Vec::new();
        for (peer, _, _) in &d.holders {
            if !self.drop_copy(peer, &d.id).await {
                left.push(self.nick_of(peer));
            }
        }
        self.forget_dropped().await?;
        Ok(if left.is_empty() {
            format!("dropped {} from every holder", printable(&d.name))
        } else {
            format!(
                "dropped {}; {} still hold a copy, dropped when they are back",
                printable(&d.name),
                left.join(", ")
            )
        })
    }

    /// Bring deposit `spec` back into `to` (default: the download dir) from any holder online,
    /// verified against its recorded content; a holder that fails part-way is left for the
    /// next, which resumes from the verified part.
    pub async fn retrieve(&self, spec: &str, to: Option<PathBuf>) -> Result<Retrieved> {
        let deps = self.reconcile_deposits().await?;
        let Some(d) = Self::find_deposit(&deps, spec).cloned() else {
            return Err(not_found(spec));
        };
        let dest = to.unwrap_or_else(|| self.shared.config.download_dir.clone());
        let online = self.online();
        let mut order: Vec<(PeerId, bool)> = d
            .holders
            .iter()
            .map(|h| (h.0.clone(), h.1))
            .filter(|h| online.contains(&h.0))
            .collect();
        // Verified copies first, then the rest in placement order.
        let ranked = placement::rank(&d.id, &order.iter().map(|h| h.0.clone()).collect::<Vec<_>>());
        order.sort_by_key(|(p, ok)| (!ok, ranked.iter().position(|r| r == p)));
        let mut skipped = Vec::new();
        for (peer, _) in order {
            match held::fetch_from(&self.shared, &peer, &d.id, d.digest, &dest).await {
                Ok(outcome) if outcome.all_ok() => {
                    let top = outcome
                        .saved
                        .first()
                        .and_then(|p| p.strip_prefix(&dest).ok())
                        .and_then(|rel| rel.components().next())
                        .map(|c| dest.join(c))
                        .unwrap_or_else(|| dest.clone());
                    return Ok(Retrieved {
                        id: d.id.clone(),
                        name: d.name.clone(),
                        from: self.nick_of(&peer),
                        saved_to: top.display().to_string(),
                        outcome,
                        skipped,
                    });
                }
                Ok(o) => skipped.push(format!("{}: {} files did not arrive", self.nick_of(&peer), o.failed_count())),
                Err(e) => skipped.push(format!("{}: {e}", self.nick_of(&peer))),
            }
        }
        if skipped.is_empty() {
            bail!(Failure {
                kind: FailKind::Unreachable,
                message: format!("no holder of {} is online", printable(&d.name)),
            });
        }
        bail!("could not retrieve {}: {}", printable(&d.name), skipped.join("; "))
    }

    /// What this node holds for others, and its budgets.
    pub async fn held(&self) -> Result<HeldReport> {
        let shared = self.shared.clone();
        let rows = off_thread(move || {
            held::expire(&shared, unix_ms());
            db::held(&shared.store, None)
        })
        .await??;
        let used = rows.iter().map(|h| h.bytes).sum();
        let held = rows
            .into_iter()
            .map(|h| HeldView {
                owner_nick: self.shared.peers().get(&h.owner).map(|p| p.nick.clone()).unwrap_or_default(),
                owner: h.owner.as_str().to_string(),
                id: h.id,
                name: h.name,
                bytes: h.bytes,
                files: h.files,
                stored_ms: h.stored_ms,
                renewed_ms: h.renewed_ms,
                verified_ms: h.verified_ms,
            })
            .collect();
        let c = &self.shared.config.locker;
        Ok(HeldReport {
            held,
            policy: c.policy.as_str().into(),
            per_owner: c.per_owner,
            total: c.total,
            used,
        })
    }

    /// Free what this node holds: deposit `spec` (an id or a prefix of at least 4), or every
    /// deposit of the owner `spec` names (its id, a prefix of at least 4, or its nick). How
    /// many were dropped.
    pub async fn drop_held(&self, spec: &str) -> Result<u32> {
        let nicks: HashMap<PeerId, String> = self.shared.peers().list().into_iter().map(|p| (p.id, p.nick)).collect();
        let (shared, asked) = (self.shared.clone(), spec.to_string());
        let n = off_thread(move || {
            let spec = asked;
            let rows = db::held(&shared.store, None)?;
            let prefix = |s: &str| spec.len() >= 4 && s.starts_with(spec.as_str());
            let mut n = 0;
            for h in rows
                .iter()
                .filter(|h| h.id == spec || prefix(&h.id) || prefix(h.owner.as_str()) || nicks.get(&h.owner).is_some_and(|n| *n == spec))
            {
                held::forget(&shared, h);
                n += 1;
            }
            Ok::<u32, rusqlite::Error>(n)
        })
        .await??;
        if n == 0 {
            return Err(not_found(spec));
        }
        Ok(n)
    }
}
