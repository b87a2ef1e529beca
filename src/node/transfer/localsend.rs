//! A LocalSend offer as one of our receives: the same manifest budget, name checks, offer
//! question (dialog, `offers`, `accept`, `--accept-all`), free-space promise, partial files and
//! no-overwrite placement, progress row and stored end as an offer from a lanyard peer. Only
//! the bytes differ: whole files over HTTP, checked by size and (when the sender gives it)
//! SHA-256 instead of BLAKE3 chunks. The HTTP side is `node::localsend`.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::budget::{Charge, Payer};
use super::ctx::Ctx;
use super::error::{Direction, Outcome, TransferError};
use super::manifest::{ManifestRefusal, ReceivedManifest, item_charge};
use super::meter::Meter;
use super::placing::Plan;
use super::progress::TransferState;
use super::wire::Item;
use crate::identity::PeerId;
use crate::node::{Event, ReceivedFile, Shared, lock, off_thread};
use crate::reason::Reason;

/// Why an offer was not taken, as the sender is told.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The names or sizes are refused: 400.
    Bad(String),
    /// Nobody said yes, or someone said no: 403.
    Declined(String),
    /// Over a budget or a cap of waiting offers: 409 (what LocalSend says for busy).
    Busy(String),
    /// No room, or our own disk failed: 500.
    Failed(String),
}

/// One file of the offer: name as offered, size, and the SHA-256 it must have if given.
pub(crate) struct Wanted {
    pub name: String,
    pub size: u64,
    pub sha256: Option<[u8; 32]>,
    /// When the sender says the file was last changed.
    pub modified: Option<std::time::SystemTime>,
}

/// A file's end: 0 none yet, 1 placed, 2 failed.
const PENDING: u8 = 0;
const PLACED: u8 = 1;
const FAILED: u8 = 2;

/// An accepted LocalSend offer while its files arrive.
pub(crate) struct Receive {
    ctx: Ctx,
    plan: Mutex<Option<Plan>>,
    files: Vec<Wanted>,
    fate: Mutex<Vec<u8>>,
    outcome: Mutex<Outcome>,
    meter: Mutex<Meter>,
    /// Raised when the last file has its fate, or the receive ended otherwise.
    done: Notify,
    ended: std::sync::atomic::AtomicBool,
    /// When bytes last came (Unix ms), and uploads in flight (each watches its own stall).
    last: std::sync::atomic::AtomicU64,
    uploading: std::sync::atomic::AtomicU32,
    /// Cancelled here: raised once the sender was told (or could not be), so an upload in
    /// flight is answered only after — the sender hears why before its upload ends.
    told: CancellationToken,
}

/// Why one upload failed: its HTTP status and words.
pub(crate) struct UploadError {
    pub status: u16,
    pub message: String,
    /// The file's failure as lanyard's own transfers name it.
    pub code: Reason,
}

fn upload_error(status: u16, message: impl Into<String>) -> UploadError {
    let code = match status {
        408 => Reason::Stalled,
        409 => Reason::CancelledByReceiver,
        400 | 422 => Reason::BadData,
        _ => Reason::DiskError,
    };
    UploadError {
        status,
        message: message.into(),
        code,
    }
}

/// Put the offer to the person (or take it under `--accept-all`), within every budget a
/// lanyard peer's offer meets; `withdrawn` ends when the sender gives up waiting.
pub(crate) async fn offer(
    shared: &Arc<Shared>,
    peer: PeerId,
    nick: String,
    ip: IpAddr,
    files: Vec<Wanted>,
    withdrawn: impl std::future::Future<Output = ()>,
) -> Result<Arc<Receive>, Refused> {
    let n = files.len();
    let payer = Payer {
        peer: peer.clone(),
        ip: Some(ip),
        newcomer: true,
    };
    let charge = Charge::take(shared, payer, item_charge(n)).map_err(|why| Refused::Busy(why.into()))?;
    // LocalSend has no resume: each file gets a key of its own, so no earlier partial file or
    // placed folder is taken for it.
    let items: Vec<Item> = files
        .iter()
        .map(|f| Item {
            path: f.name.clone(),
            size: f.size,
            mtime: 0,
            dir: false,
            root: serde_bytes::ByteBuf::from(rand::random::<[u8; 32]>().to_vec()),
        })
        .collect();
    let bytes = files
        .iter()
        .try_fold(0u64, |a, f| a.checked_add(f.size))
        .ok_or_else(|| Refused::Bad("sizes overflow".into()))?;
    let data_dir = shared.config.data_dir.clone();
    let manifest = off_thread(move || -> Result<(ReceivedManifest, String), Refused> {
        let mut m = ReceivedManifest::new(&data_dir, n, charge).map_err(|e| Refused::Failed(e.to_string()))?;
        let refused = |r: ManifestRefusal| match r {
            ManifestRefusal::Refused(why) | ManifestRefusal::NotAsked(why) => Refused::Bad(why),
            ManifestRefusal::Io(e) => Refused::Failed(e.to_string()),
        };
        m.append(items).map_err(refused)?;
        m.validate(None).map_err(refused)?;
        let (_, label) = m.digest_and_label().map_err(|e| Refused::Failed(e.to_string()))?;
        Ok((m, label))
    })
    .await
    .map_err(|e| Refused::Failed(e.to_string()))??;
    let (manifest, label) = (Arc::new(manifest.0), manifest.1);
    let ctx = Ctx::new(shared, None, peer, nick, Direction::Receive, None);
    ctx.foreign.store(true, Ordering::Relaxed);
    let dest = shared.config.download_dir.clone();
    ctx.note(|v| {
        v.saved_to = Some(dest.display().to_string());
        v.name = label;
    });
    if !shared.config.accept_all {
        let answer = tokio::select! {
            a = super::ask::ask(&ctx, bytes, manifest.clone(), None) => a,
            _ = withdrawn => {
                super::ask::forget_offer(&ctx, "withdrawn");
                Err((Reason::CancelledBySender, "withdrawn before the answer".into()))
            }
        };
        if let Err((code, why)) = answer {
            let text = if why.is_empty() {
                super::stream::refused_text(code).to_string()
            } else {
                why
            };
            ctx.report(&Err(TransferError::Rejected(code, text.clone()))).await;
            return Err(match code {
                Reason::Busy => Refused::Busy(text),
                _ => Refused::Declined(text),
            });
        }
    }
    let prepared = {
        let (s, d, m) = (shared.clone(), dest.clone(), manifest.clone());
        off_thread(move || Plan::prepare(&s, &d, &m))
            .await
            .map_err(|e| e.to_string())
            .and_then(|p| p)
    };
    let mut plan = match prepared {
        Ok(p) => p,
        Err(why) => {
            ctx.report(&Err(TransferError::Disk(Reason::DiskError, why.clone()))).await;
            return Err(Refused::Failed(why));
        }
    };
    if let Err(why) = plan.reserve(&shared.nick()) {
        ctx.report(&Err(TransferError::Rejected(Reason::NoSpace, why.clone()))).await;
        return Err(Refused::Failed(why));
    }
    let meter = Meter::new(&ctx, n as u32, bytes);
    ctx.set_state(TransferState::Running);
    let outcome = Outcome {
        transfer: ctx.id.clone(),
        ..Outcome::default()
    };
    Ok(Arc::new(Receive {
        ctx,
        plan: Mutex::new(Some(plan)),
        fate: Mutex::new(vec![PENDING; n]),
        files,
        outcome: Mutex::new(outcome),
        meter: Mutex::new(meter),
        done: Notify::new(),
        ended: false.into(),
        last: crate::store::unix_now_ms().into(),
        uploading: 0.into(),
        told: CancellationToken::new(),
    }))
}

impl Receive {
    /// Raised when someone here cancels it (`lanyard cancel`, the TUI) or the node stops.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.ctx.cancel.cancelled()
    }

    /// The sender was told of our cancel (or cannot be).
    pub fn told(&self) {
        self.told.cancel();
    }

    /// Cancel it from here (the sender asked to).
    pub fn cancel_now(&self) {
        self.ctx.cancel.cancel();
    }

    /// Ends when no upload is in flight and none came for the stall limit.
    pub async fn stalled(&self) {
        let limit = self.ctx.shared.config.stall_timeout;
        loop {
            tokio::time::sleep(limit / 4).await;
            let idle = crate::store::unix_now_ms().saturating_sub(self.last.load(Ordering::Relaxed));
            if self.uploading.load(Ordering::SeqCst) == 0 && idle >= limit.as_millis() as u64 {
                return;
            }
        }
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Every file has its fate (or the receive ended).
    pub async fn finished(&self) {
        loop {
            let notified = self.done.notified();
            if self.is_ended() || lock(&self.fate).iter().all(|&f| f != PENDING) {
                return;
            }
            notified.await;
        }
    }

    /// Take file `i`'s bytes from `body` into its partial file, and place it once its size (and
    /// SHA-256, if given) match. A file gets one upload: a failed one stays failed.
    pub async fn upload<B>(self: &Arc<Self>, i: usize, mut body: B) -> Result<(), UploadError>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let wanted = &self.files[i];
        let name = wanted.name.clone();
        {
            let mut m = lock(&self.meter);
            m.start_file(&name, wanted.size, 0);
        }
        self.uploading.fetch_add(1, Ordering::SeqCst);
        let result = self.take(i, &mut body).await;
        self.last.store(crate::store::unix_now_ms(), Ordering::Relaxed);
        self.uploading.fetch_sub(1, Ordering::SeqCst);
        let mut fate = PLACED;
        match &result {
            Ok(path) => {
                lock(&self.outcome).files += 1;
                lock(&self.outcome).bytes += wanted.size;
                if lock(&self.outcome).saved.len() < crate::limits::OUTCOME_LISTED {
                    lock(&self.outcome).saved.push(path.clone());
                }
                self.ctx.emit(Event::FilesReceived {
                    transfer: self.ctx.id.clone(),
                    peer: self.ctx.peer.clone(),
                    files: vec![ReceivedFile {
                        path: path.to_string_lossy().into_owned(),
                        size: wanted.size,
                    }],
                });
            }
            Err(e) => {
                fate = FAILED;
                lock(&self.outcome).fail(name.clone(), e.code, e.message.clone());
                let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(plan) = plan.as_ref() {
                    plan.discard(i);
                }
            }
        }
        lock(&self.fate)[i] = fate;
        lock(&self.meter).end_file(&self.ctx);
        self.done.notify_waiters();
        result.map(drop)
    }

    async fn take<B>(self: &Arc<Self>, i: usize, body: &mut B) -> Result<std::path::PathBuf, UploadError>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        use http_body_util::BodyExt;
        let wanted = &self.files[i];
        let me = self.clone();
        let file = off_thread(move || match lock(&me.plan).as_mut() {
            Some(plan) => plan.open_partial(i, true),
            None => Err(std::io::Error::other("the transfer ended")),
        })
        .await
        .map_err(|e| upload_error(500, e.to_string()))?
        .map_err(|e| upload_error(500, format!("cannot write: {e}")))?;
        // Frames are TLS records (16 KiB): one write to the blocking pool each would cost more
        // than the bytes; a MiB at a time.
        let mut file = tokio::io::BufWriter::with_capacity(crate::limits::LOCALSEND_UPLOAD_BUFFER, tokio::fs::File::from_std(file));
        // Hashed only when there is a hash to check (1.17 and others send none).
        let mut hash = wanted.sha256.map(|_| ring::digest::Context::new(&ring::digest::SHA256));
        let mut got = 0u64;
        loop {
            let frame = tokio::select! {
                f = body.frame() => f,
                _ = self.ctx.cancel.cancelled() => {
                    let _ = tokio::time::timeout(crate::limits::LOCALSEND_HEADER_TIMEOUT, self.told.cancelled()).await;
                    return Err(upload_error(409, "cancelled by the receiver"));
                }
                _ = tokio::time::sleep(self.ctx.shared.config.stall_timeout) => {
                    return Err(upload_error(408, "stalled: no bytes for too long"));
                }
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| UploadError {
                code: Reason::ConnectionLost,
                ..upload_error(400, format!("the upload broke off: {e}"))
            })?;
            let Ok(data) = frame.into_data() else { continue };
            got = got.saturating_add(data.len() as u64);
            if got > wanted.size {
                return Err(upload_error(400, format!("more than the {} bytes offered", wanted.size)));
            }
            if let Some(h) = hash.as_mut() {
                h.update(&data);
            }
            file.write_all(&data)
                .await
                .map_err(|e| upload_error(500, format!("cannot write: {e}")))?;
            if let Some(plan) = lock(&self.plan).as_ref() {
                plan.written(data.len() as u64);
            }
            self.ctx.deadline.moved();
            lock(&self.meter).advance(&self.ctx, data.len() as u64);
        }
        if got != wanted.size {
            return Err(upload_error(400, format!("{got} bytes of the {} offered", wanted.size)));
        }
        if let (Some(expected), Some(hash)) = (wanted.sha256, hash)
            && hash.finish().as_ref() != expected
        {
            return Err(upload_error(422, "SHA-256 does not match"));
        }
        file.flush().await.map_err(|e| upload_error(500, e.to_string()))?;
        let file = file.into_inner().into_std().await;
        let me = self.clone();
        let modified = wanted.modified;
        off_thread(move || -> std::io::Result<std::path::PathBuf> {
            if let Some(t) = modified {
                // The file's own time, as a copy keeps it; a clock the filesystem refuses
                // leaves the time of arrival.
                let _ = file.set_modified(t);
            }
            file.sync_all()?;
            let mut plan = lock(&me.plan);
            let plan = plan.as_mut().ok_or_else(|| std::io::Error::other("the transfer ended"))?;
            let placed = plan.place(i)?;
            plan.sync_placed()?;
            Ok(placed)
        })
        .await
        .map_err(|e| upload_error(500, e.to_string()))?
        .map_err(|e| upload_error(500, format!("cannot place: {e}")))
    }

    /// The end: every file had its fate (`None`), or it was cancelled (`Some(code)`: by whom),
    /// or it stopped for `Some(Reason::Stalled)`. Told once; partial files go unless it ended
    /// with every file's fate known.
    pub async fn end(&self, stop: Option<Reason>) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        self.done.notify_waiters();
        let plan = lock(&self.plan).take();
        let fate = lock(&self.fate).clone();
        if let Some(mut plan) = plan {
            let _ = off_thread(move || {
                match stop {
                    None => plan.finish(&fate.iter().map(|&f| f == PLACED).collect::<Vec<_>>()),
                    Some(_) => plan.cancel(),
                }
                drop(plan);
            })
            .await;
        }
        let mut outcome = lock(&self.outcome).clone();
        let result = match stop {
            None => {
                for (i, f) in lock(&self.fate).iter().enumerate() {
                    if *f == PENDING {
                        outcome.fail(self.files[i].name.clone(), Reason::ConnectionLost, "it was not sent".into());
                    }
                }
                Ok(outcome)
            }
            Some(Reason::CancelledByReceiver) => Err(TransferError::Cancelled(Reason::CancelledByReceiver, "cancelled here".into())),
            Some(Reason::CancelledBySender) => Err(TransferError::Cancelled(
                Reason::CancelledBySender,
                format!("{} cancelled", crate::text::printable(&self.ctx.nick)),
            )),
            Some(code) => Err(TransferError::PeerLost(
                code,
                format!("{} stopped sending", crate::text::printable(&self.ctx.nick)),
            )),
        };
        self.ctx.report(&result).await;
    }
}
