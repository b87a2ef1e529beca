//! The receiving end of a stream of files (a push from a peer, or what we asked for with
//! `Get`): read the manifest, decide, prepare the partial files, then take each file into its
//! partial, verify it, and place it. Socket reads and disk writes overlap through a short
//! channel to a blocking writer thread, so memory stays flat whatever the file size.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::place::{self, Plan};
use super::progress::Meter;
use super::send::{CHUNK, PIPE_DEPTH, Stop, io_stop, next, say_stop};
use super::wire::{Item, MAX_ITEMS, MAX_MANIFEST_BYTES, MAX_RESUME_ENTRIES, MAX_SEGMENT, TransferMsg, bounded};
use super::{Ctx, Fault, Outcome, TransferError, ask, msg_name};
use crate::net::secure::{SecureConn, SecureReader, SecureWriter};
use crate::node::Event;
use crate::ui::text::printable;

/// What the offer's first frame announced.
pub(crate) struct Header {
    pub items: u32,
    pub bytes: u64,
}

pub(crate) enum Decision {
    /// Accept-all, a trusted peer, or a person's answer.
    Ask,
    /// We asked for these files ourselves.
    Accept,
}

/// Names of the first few items, for an offer event.
const OFFER_NAMES: usize = 10;

pub(crate) async fn run(ctx: &Ctx, conn: SecureConn, header: Header, dest: &Path, decision: Decision) -> Result<Outcome, TransferError> {
    let SecureConn {
        mut reader, mut writer, ..
    } = conn;
    let mut plan = None;
    let result = exchange(ctx, &mut reader, &mut writer, header, dest, decision, &mut plan).await;
    match result {
        Ok(outcome) => {
            writer.shutdown().await;
            Ok(outcome)
        }
        Err(stop) => {
            if let (Some(plan), Stop::CancelledHere | Stop::CancelledByPeer(_)) = (&plan, &stop) {
                plan.cancel();
            }
            say_stop(&mut writer, &stop).await;
            writer.shutdown().await;
            Err(stop.into_error(ctx))
        }
    }
}

fn protocol(what: &str) -> Stop {
    Stop::Failed(format!("protocol error: {what}"))
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
    let mut items: Vec<Item> = Vec::with_capacity(n.min(4096));
    let mut name_bytes = 0usize;
    while items.len() < n {
        match next(ctx, reader, None).await? {
            TransferMsg::Items { items: more } => {
                if more.is_empty() || more.len() > n - items.len() {
                    return Err(protocol("manifest does not match the announced count"));
                }
                name_bytes += more.iter().map(|i| i.path.len()).sum::<usize>();
                if name_bytes > MAX_MANIFEST_BYTES {
                    return Err(protocol("manifest names over the size limit"));
                }
                items.extend(more);
            }
            other => return Err(protocol(&format!("unexpected {} in the manifest", msg_name(&other)))),
        }
    }
    let total = items.iter().try_fold(0u64, |acc, i| acc.checked_add(i.size));
    if total != Some(header.bytes) || items.iter().any(|i| i.dir && i.size != 0) {
        return Err(protocol("manifest sizes do not add up"));
    }
    let comps = match place::validate(&items) {
        Ok(c) => c,
        Err(reason) => {
            let _ = writer.send(&TransferMsg::Reject { reason: bounded(&reason) }).await;
            return Err(Stop::Rejected(reason));
        }
    };
    let accept = match decision {
        Decision::Accept => true,
        Decision::Ask => {
            let trusted = ctx.shared.peers().get(&ctx.peer).is_some_and(|p| p.trusted);
            ctx.shared.config.accept_all
                || trusted
                || ask(
                    ctx,
                    n as u32,
                    header.bytes,
                    items.iter().take(OFFER_NAMES).map(|i| i.path.clone()).collect(),
                )
                .await
        }
    };
    if !accept {
        let _ = writer.send(&TransferMsg::Reject { reason: "rejected".into() }).await;
        return Err(Stop::Rejected("rejected".into()));
    }

    let plan = plan_out.insert(Plan::prepare(&ctx.shared, &ctx.peer, dest, &items, comps).map_err(Stop::Failed)?);
    let mut resume = Vec::new();
    for (i, slot) in plan.slots.iter_mut().enumerate() {
        if slot.offset > 0 {
            if resume.len() < MAX_RESUME_ENTRIES {
                resume.push((i as u32, slot.offset));
            } else {
                slot.offset = 0;
                slot.existing = None;
            }
        }
    }
    writer.send(&TransferMsg::Accept { resume }).await.map_err(io_stop)?;

    let mut meter = Meter::new(ctx, n as u32, header.bytes);
    let mut verdicts: Vec<Option<Result<PathBuf, String>>> = vec![None; n];
    for (i, slot) in verdicts.iter_mut().enumerate() {
        if plan.slots[i].dir {
            let verdict = plan.make_dir(i).map_err(|e| format!("cannot create folder: {e}"));
            tell(writer, i, &verdict).await?;
            *slot = Some(verdict);
            meter.end_file(ctx);
        }
    }
    let mut fault = ctx.shared.transfers.take_fault();
    loop {
        match next(ctx, reader, None).await? {
            TransferMsg::FileStart { index, offset } => {
                let i = index as usize;
                let expected = plan.slots.get(i).map(|s| (s.dir, s.offset));
                if expected != Some((false, offset)) || verdicts[i].is_some() {
                    return Err(protocol("bad file start"));
                }
                let item = &items[i];
                meter.start_file(&item.path, item.size, offset);
                let verdict = match take_file(ctx, reader, plan, i, item, &mut meter, &mut fault).await? {
                    Taken::Verified => match plan.place(i) {
                        Ok(path) => {
                            ctx.emit(Event::FileReceived {
                                transfer: ctx.id.clone(),
                                peer: ctx.peer.clone(),
                                path: path.to_string_lossy().into_owned(),
                                size: item.size,
                            });
                            Ok(path)
                        }
                        Err(e) => Err(format!("cannot place it: {e}")),
                    },
                    Taken::Mismatch => {
                        if plan.slots[i].existing.is_none() {
                            plan.discard(i);
                        }
                        Err("it failed verification (BLAKE3 mismatch); the received data was discarded".into())
                    }
                    Taken::Aborted(reason) => {
                        plan.discard(i);
                        Err(reason)
                    }
                };
                tell(writer, i, &verdict).await?;
                verdicts[i] = Some(verdict);
                meter.end_file(ctx);
            }
            TransferMsg::Done => break,
            other => return Err(protocol(&format!("unexpected {}", msg_name(&other)))),
        }
    }
    let mut outcome = Outcome {
        transfer: ctx.id.clone(),
        resumed: plan.slots.iter().map(|s| s.offset).sum(),
        ..Outcome::default()
    };
    let mut ok = Vec::with_capacity(n);
    for (item, verdict) in items.iter().zip(verdicts) {
        match verdict {
            Some(Ok(path)) => {
                ok.push(true);
                if !item.dir {
                    outcome.files += 1;
                    outcome.bytes += item.size;
                    outcome.saved.push(path);
                }
            }
            Some(Err(reason)) => {
                ok.push(false);
                outcome.failed.push((item.path.clone(), reason));
            }
            None => {
                ok.push(false);
                outcome.failed.push((item.path.clone(), "it was not sent".into()));
            }
        }
    }
    plan.finish(&ok);
    Ok(outcome)
}

async fn tell(writer: &mut SecureWriter, i: usize, verdict: &Result<PathBuf, String>) -> Result<(), Stop> {
    let msg = match verdict {
        Ok(_) => TransferMsg::FileOk { index: i as u32 },
        Err(reason) => TransferMsg::FileFailed {
            index: i as u32,
            reason: bounded(reason),
        },
    };
    writer.send(&msg).await.map_err(io_stop)
}

enum Taken {
    Verified,
    Mismatch,
    Aborted(String),
}

/// Take one file's segments into its partial file (or just hash what an earlier attempt
/// placed) and compare the hashes. Returns only once the disk writer has finished, so no
/// write to the partial file can outlive this transfer and meet a resume.
async fn take_file(
    ctx: &Ctx,
    reader: &mut SecureReader,
    plan: &Plan,
    i: usize,
    item: &Item,
    meter: &mut Meter,
    fault: &mut Option<Fault>,
) -> Result<Taken, Stop> {
    let slot = &plan.slots[i];
    let (path, read_only) = match &slot.existing {
        Some(p) => (p.clone(), true),
        None => (slot.partial.clone(), false),
    };
    let offset = slot.offset;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(PIPE_DEPTH);
    let (free_tx, free_rx) = std::sync::mpsc::channel();
    let disk = tokio::task::spawn_blocking(move || write_partial(&path, offset, read_only, rx, free_tx));
    let fed = feed(ctx, reader, i, item.size - offset, tx, free_rx, meter, fault).await;
    let written = disk.await;
    let name = printable(&item.path).into_owned();
    let disk_failure = |detail: String| Stop::Failed(format!("cannot write \"{name}\": {detail}"));
    match (fed, written) {
        (Err(Stop::Quiet), Ok(Err(e))) | (Ok(Fed::End(_)), Ok(Err(e))) => Err(disk_failure(e.to_string())),
        (Err(Stop::Quiet), _) => Err(disk_failure("the writer stopped".into())),
        (Err(stop), _) => Err(stop),
        (Ok(Fed::Aborted(reason)), _) => Ok(Taken::Aborted(format!("the sender gave up on it: {reason}"))),
        (Ok(Fed::End(theirs)), Ok(Ok(ours))) => Ok(if theirs.as_slice() == ours.as_bytes() {
            Taken::Verified
        } else {
            Taken::Mismatch
        }),
        (Ok(Fed::End(_)), Err(e)) => Err(disk_failure(e.to_string())),
    }
}

enum Fed {
    End(serde_bytes::ByteBuf),
    Aborted(String),
}

/// Read one file's segments and hand them to the disk writer. `Stop::Quiet` means the writer
/// went away (its own error says why) — or a test hook cut the connection.
#[allow(clippy::too_many_arguments)]
async fn feed(
    ctx: &Ctx,
    reader: &mut SecureReader,
    i: usize,
    mut remaining: u64,
    tx: mpsc::Sender<Vec<u8>>,
    free_rx: std::sync::mpsc::Receiver<Vec<u8>>,
    meter: &mut Meter,
    fault: &mut Option<Fault>,
) -> Result<Fed, Stop> {
    let mut taken = 0u64;
    loop {
        match next(ctx, reader, None).await? {
            TransferMsg::Data { len } => {
                if len == 0 || len > MAX_SEGMENT || len > remaining {
                    return Err(protocol("bad data segment"));
                }
                let mut buf = free_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                buf.clear();
                let mut left = len as usize;
                while left > 0 {
                    let chunk = tokio::select! {
                        c = reader.read_some(left) => c.map_err(io_stop)?,
                        _ = ctx.cancel.cancelled() => return Err(Stop::CancelledHere),
                        _ = ctx.shared.cancel.cancelled() => return Err(Stop::Failed("this node is shutting down".into())),
                    };
                    if chunk.is_empty() {
                        return Err(Stop::Failed(format!("{} disconnected", printable(&ctx.nick))));
                    }
                    buf.extend_from_slice(chunk);
                    left -= chunk.len();
                }
                remaining -= len;
                taken += len;
                meter.advance(ctx, len);
                if tx.send(buf).await.is_err() {
                    return Err(Stop::Quiet);
                }
                if let Some(Fault::Disconnect(limit)) = *fault
                    && taken >= limit
                {
                    *fault = None;
                    return Err(Stop::Failed("connection cut by a test hook".into()));
                }
            }
            TransferMsg::FileEnd { blake3 } => {
                if remaining != 0 {
                    return Err(protocol("file ended early"));
                }
                return Ok(Fed::End(blake3));
            }
            TransferMsg::FileAbort { index, reason } if index as usize == i => {
                meter.skip(remaining);
                return Ok(Fed::Aborted(bounded(&reason)));
            }
            other => return Err(protocol(&format!("unexpected {} inside a file", msg_name(&other)))),
        }
    }
}

/// The blocking half: hash what is already there, then append and hash what arrives.
/// `read_only`: the file was placed by an earlier attempt and is only verified.
fn write_partial(
    path: &Path,
    offset: u64,
    read_only: bool,
    rx: mpsc::Receiver<Vec<u8>>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
) -> std::io::Result<blake3::Hash> {
    let mut rx = rx;
    let mut file = if read_only {
        File::open(path)?
    } else {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK.min(offset as usize)];
    let mut left = offset;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    drop(buf);
    if !read_only {
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
    }
    while let Some(buf) = rx.blocking_recv() {
        if read_only {
            return Err(std::io::Error::other("unexpected data for a file already complete"));
        }
        file.write_all(&buf)?;
        hasher.update(&buf);
        let _ = free.send(buf);
    }
    Ok(hasher.finalize())
}
