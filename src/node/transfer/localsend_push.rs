//! Sending to a LocalSend device: files and folders walked and hashed (SHA-256, which 1.18
//! receivers check), one `prepare-upload` the device's person answers, then each accepted file
//! uploaded with a progress row like any send. Cancelled here: the device is told (`cancel`);
//! cancelled there: its `cancel` reaches our server and stops this.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio::io::AsyncReadExt;

use super::ctx::Ctx;
use super::error::{Direction, Outcome, TransferError};
use super::meter::Meter;
use super::progress::TransferState;
use crate::limits::MAX_LOCALSEND_FILES;
use crate::net::localsend::dto::{FileDto, PrepareAnswer, PrepareUpload, encode};
use crate::net::localsend::server::{Connection, channel, full};
use crate::node::localsend::{Device, device_id};
use crate::node::{Shared, off_thread};
use crate::reason::Reason;

/// How long a broken upload waits for the receiver's word that it cancelled.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// Bytes read from disk per chunk of an upload.
const CHUNK: usize = 256 * 1024;

struct Source {
    path: PathBuf,
    /// '/'-separated, relative: a folder's files keep their place under its name.
    name: String,
    size: u64,
    sha256: String,
}

/// Every regular file under `paths` (links are not followed), hashed.
fn walk(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = paths
        .iter()
        .map(|p| {
            (
                p.clone(),
                p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            )
        })
        .collect();
    stack.reverse();
    while let Some((path, name)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok())
                .map(|e| (e.path(), format!("{name}/{}", e.file_name().to_string_lossy())))
                .collect();
            entries.sort();
            entries.reverse();
            stack.extend(entries);
        } else if meta.is_file() {
            if out.len() >= MAX_LOCALSEND_FILES {
                return Err(format!(
                    "more than {MAX_LOCALSEND_FILES} files: LocalSend devices take fewer at once"
                ));
            }
            let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
            }
            let sha256 = crate::net::localsend::cert::hex_upper(hash.finish().as_ref()).to_ascii_lowercase();
            out.push(Source {
                path,
                name,
                size: meta.len(),
                sha256,
            });
        }
    }
    Ok(out)
}

/// Start sending `paths` to `device`; the transfer's id, and its end.
pub(crate) fn push(
    shared: &Arc<Shared>,
    device: Device,
    paths: Vec<PathBuf>,
    pin: Option<String>,
) -> (String, tokio::task::JoinHandle<Result<Outcome, TransferError>>) {
    let ctx = Ctx::new(
        shared,
        None,
        device_id(&device.fingerprint),
        device.alias.clone(),
        Direction::Send,
        None,
    );
    ctx.foreign.store(true, Ordering::Relaxed);
    let id = ctx.id.clone();
    let task = shared.tracker.spawn("transfer::localsend_push", async move {
        let result = run(&ctx, &device, paths, pin).await;
        ctx.report(&result).await;
        result
    });
    (id, task)
}

fn status_refusal(status: StatusCode, body: &[u8], pin_given: bool) -> TransferError {
    let said = serde_json::from_slice::<crate::net::localsend::dto::ErrorBody>(body)
        .map(|e| e.message)
        .unwrap_or_default();
    match status.as_u16() {
        401 if pin_given => TransferError::Rejected(Reason::Refused, "the device refused the PIN".into()),
        401 => TransferError::Rejected(Reason::Refused, "the device wants a PIN: give it with --pin".into()),
        403 => TransferError::Rejected(Reason::Rejected, "declined".into()),
        409 => TransferError::Rejected(
            Reason::Busy,
            "busy: another transfer runs there (ask them to finish it, or press Done)".into(),
        ),
        429 => TransferError::Rejected(Reason::Refused, "too many wrong PINs: the device refuses for now".into()),
        _ => TransferError::Failed(
            Reason::Other,
            format!("the device answered {status}: {}", crate::text::printable(&said)),
        ),
    }
}

async fn run(ctx: &Ctx, device: &Device, paths: Vec<PathBuf>, pin: Option<String>) -> Result<Outcome, TransferError> {
    let shared = ctx.shared.clone();
    let Some(ls) = shared.localsend.as_ref() else {
        return Err(TransferError::Unreachable("LocalSend is off here".into()));
    };
    let to: std::net::SocketAddr = device
        .addr
        .parse()
        .map_err(|_| TransferError::Unreachable(format!("no address for {}", crate::text::printable(&device.alias))))?;
    ctx.set_state(TransferState::Connecting);
    let sources = off_thread(move || walk(&paths))
        .await
        .map_err(TransferError::failed)?
        .map_err(TransferError::failed)?;
    if sources.is_empty() {
        return Err(TransferError::failed("no files to send"));
    }
    let total: u64 = sources.iter().map(|s| s.size).sum();
    let mut label = super::progress::Label::default();
    for s in &sources {
        label.add(&s.name, false);
    }
    ctx.note(|v| {
        v.name = label.finish();
        v.files = sources.len() as u32;
        v.total = total;
    });
    let mut conn = crate::node::localsend::open(&shared, to, Some(&device.fingerprint))
        .await
        .map_err(|e| TransferError::Unreachable(format!("{e:#}")))?;
    let mut info = ls.info(&shared.nick());
    info.port = Some(ls.port);
    info.protocol = Some("https".into());
    let files: BTreeMap<String, FileDto> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format!("f{i}");
            (
                id.clone(),
                FileDto {
                    id,
                    file_name: s.name.clone(),
                    size: s.size,
                    file_type: "application/octet-stream".into(),
                    sha256: Some(s.sha256.clone()),
                    preview: None,
                    metadata: None,
                },
            )
        })
        .collect();
    let body = serde_json::to_vec(&PrepareUpload { info, files }).map_err(TransferError::failed)?;
    let query = pin.as_deref().map(|p| format!("?pin={}", encode(p))).unwrap_or_default();
    ctx.set_state(TransferState::Waiting);
    // The person there decides: no deadline but theirs. Cancelled here meanwhile: dropping the
    // request withdraws the offer.
    let uri = format!("/api/localsend/v2/prepare-upload{query}");
    let answer = tokio::select! {
        r = conn.request(Method::POST, &uri, full(body)) => r,
        _ = ctx.cancel.cancelled() => return Err(TransferError::Cancelled(Reason::CancelledBySender, "cancelled here".into())),
    };
    let (status, body) = answer.map_err(|e| TransferError::PeerLost(Reason::ConnectionLost, format!("{e:#}")))?;
    let mut outcome = Outcome {
        transfer: ctx.id.clone(),
        ..Outcome::default()
    };
    if status == StatusCode::NO_CONTENT {
        for s in &sources {
            outcome.fail(s.name.clone(), Reason::Rejected, "not accepted".into());
        }
        return Ok(outcome);
    }
    if status != StatusCode::OK {
        return Err(status_refusal(status, &body, pin.is_some()));
    }
    let answer: PrepareAnswer =
        serde_json::from_slice(&body).map_err(|e| TransferError::Protocol(Reason::Protocol, format!("the device's answer: {e}")))?;
    ls.outgoing_started(&answer.session_id, to.ip(), ctx.peer_cancel.clone());
    let result = upload_all(ctx, &mut conn, (to, &device.fingerprint), &answer, &sources, total, &mut outcome).await;
    ls.outgoing_ended(&answer.session_id);
    result.map(|()| outcome)
}

async fn upload_all(
    ctx: &Ctx,
    conn: &mut Connection,
    (to, fingerprint): (std::net::SocketAddr, &str),
    answer: &PrepareAnswer,
    sources: &[Source],
    total: u64,
    outcome: &mut Outcome,
) -> Result<(), TransferError> {
    let mut meter = Meter::new(ctx, sources.len() as u32, total);
    for (i, s) in sources.iter().enumerate() {
        let id = format!("f{i}");
        let Some(token) = answer.files.get(&id) else {
            outcome.fail(s.name.clone(), Reason::Rejected, "not accepted".into());
            meter.skip(s.size);
            meter.end_file(ctx);
            continue;
        };
        meter.start_file(&s.name, s.size, 0);
        let (tx, body) = channel(s.size, 4);
        let path = s.path.clone();
        let (moved_tx, mut moved) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let reader = tokio::spawn(async move {
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => return drop(tx.send(Err(e)).await),
            };
            loop {
                let mut buf = vec![0u8; CHUNK];
                match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                            return;
                        }
                        let _ = moved_tx.send(n);
                    }
                    Err(e) => return drop(tx.send(Err(e)).await),
                }
            }
        });
        let q = format!(
            "/api/localsend/v2/upload?sessionId={}&fileId={}&token={}",
            encode(&answer.session_id),
            encode(&id),
            encode(token)
        );
        let request = conn.request(Method::POST, &q, body);
        tokio::pin!(request);
        let result = loop {
            tokio::select! {
                r = &mut request => break r,
                Some(n) = moved.recv() => meter.advance(ctx, n as u64),
                _ = ctx.cancel.cancelled() => {
                    crate::node::localsend::tell_cancel(&ctx.shared, to, fingerprint, &answer.session_id).await;
                    reader.abort();
                    return Err(TransferError::Cancelled(Reason::CancelledBySender, "cancelled here".into()));
                }
                _ = ctx.peer_cancel.cancelled() => {
                    reader.abort();
                    return Err(TransferError::Cancelled(
                        Reason::CancelledByReceiver,
                        format!("{} cancelled", crate::text::printable(&ctx.nick)),
                    ));
                }
            }
        };
        reader.abort();
        while let Ok(n) = moved.try_recv() {
            meter.advance(ctx, n as u64);
        }
        // A receiver that cancels ends the upload first (closed, or 409/403) and says why just
        // after, on our API: a moment's wait tells its cancel from a lost connection or a
        // refused file.
        let ended = match &result {
            Ok((status, _)) => matches!(*status, StatusCode::CONFLICT | StatusCode::FORBIDDEN),
            Err(_) => true,
        };
        if ended {
            let _ = tokio::time::timeout(CANCEL_GRACE, ctx.peer_cancel.cancelled()).await;
        }
        if ctx.peer_cancel.is_cancelled() {
            return Err(TransferError::Cancelled(
                Reason::CancelledByReceiver,
                format!("{} cancelled", crate::text::printable(&ctx.nick)),
            ));
        }
        match result {
            Ok((StatusCode::OK, _)) => {
                outcome.files += 1;
                outcome.bytes += s.size;
            }
            Ok((status, body)) => {
                let said = serde_json::from_slice::<crate::net::localsend::dto::ErrorBody>(&body)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| status.to_string());
                let code = if status == StatusCode::UNPROCESSABLE_ENTITY {
                    Reason::BadData
                } else {
                    Reason::Refused
                };
                let said = crate::text::printable(&said);
                outcome.fail(s.name.clone(), code, format!("the device refused it: {said}"));
            }
            Err(e) => return Err(TransferError::PeerLost(Reason::ConnectionLost, format!("{e:#}"))),
        }
        meter.end_file(ctx);
    }
    Ok(())
}
