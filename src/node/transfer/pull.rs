//! Pull, both ends: `List` answers with a listing of one folder of our shares; `Get` answers
//! with an offer of exactly the requested files, streamed like a push. Only what lies inside a
//! share can be listed or read (`crate::node::share` enforces it); errors name only what the peer
//! asked for, never our local paths.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::ctx::Ctx;
use super::error::{Outcome, TransferError};
use super::receive::{self, Decision, Header};
use super::send;
use super::source;
use super::wire::msg_name;
use super::wire::{LIST_FRAME_ENTRIES, MAX_GET_PATHS, MAX_LIST_ENTRIES, MAX_TRANSFER_FRAME, Reason, TransferMsg, bounded};
use crate::limits::{LISTING_KEPT, PULL_ANSWER_TIMEOUT};
use crate::net::secure::{SecureConn, SecureWriter};
use crate::node::Shared;
use crate::node::share::{ShareEntry, Shares};
use crate::text::printable;

async fn refuse(writer: &mut SecureWriter, message: &str) {
    let _ = tokio::time::timeout(REFUSE_LIMIT, async {
        let msg = TransferMsg::Error {
            code: Reason::Refused,
            text: Some(bounded(message)),
        };
        let _ = writer.send(&msg).await;
        writer.shutdown().await;
    })
    .await;
}

/// How long telling a peer why its request fails may take.
const REFUSE_LIMIT: Duration = Duration::from_secs(5);

fn shares_of(shared: &Shared) -> Result<Shares, String> {
    if shared.config.shares.is_empty() {
        return Err("nothing is shared here".into());
    }
    Shares::new(&shared.config.shares).map_err(|e| {
        tracing::warn!("cannot serve shares: {e}");
        "the shared folders are unavailable".to_string()
    })
}

/// The peer's answer to a request it would not serve: its code, and its words as its own.
fn peer_error(conn: &SecureConn, code: Reason, text: Option<String>) -> TransferError {
    let nick = &conn.remote.hello.nick;
    let who = if nick.is_empty() {
        conn.remote.id.short().to_string()
    } else {
        printable(nick).into_owned()
    };
    match text {
        Some(t) => TransferError::Failed(code, format!("{who}: {}", printable(&bounded(&t)))),
        None => TransferError::Failed(code, format!("{who} refused ({code})")),
    }
}

fn failed(msg: impl Into<String>) -> TransferError {
    TransferError::Failed(Reason::Other, msg.into())
}

/// A folder of a peer's shares as the node keeps it for a face: the first
/// [`LISTING_KEPT`] entries (in the peer's order: folders first, then by name), and how many
/// more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerListing {
    pub entries: Vec<ShareEntry>,
    /// Entries the peer listed beyond those kept: counted, not held.
    pub omitted: u64,
}

/// Client: the listing of `path` on the peer.
pub(crate) async fn list(shared: &Arc<Shared>, mut conn: SecureConn, path: &str) -> Result<PeerListing, TransferError> {
    conn.writer
        .send(&TransferMsg::List { path: path.to_string() })
        .await
        .map_err(|e| failed(format!("connection lost: {e}")))?;
    let mut out = PeerListing::default();
    let mut seen = 0usize;
    // Even empty frames count: a peer that says "more" forever gets nowhere.
    for frames in 0.. {
        if frames > MAX_LIST_ENTRIES / LIST_FRAME_ENTRIES + 1 {
            return Err(TransferError::Protocol(
                Reason::Protocol,
                "protocol error: the listing does not end".into(),
            ));
        }
        let frame = tokio::select! {
            _ = shared.cancel.cancelled() => return Err(TransferError::Stopped("stopped: this lanyard is quitting".into())),
            r = tokio::time::timeout(PULL_ANSWER_TIMEOUT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)) => r,
        };
        match frame {
            Err(_) => return Err(failed("the peer did not answer")),
            Ok(Err(e)) => return Err(failed(format!("connection lost: {e}"))),
            Ok(Ok(None)) => return Err(failed("the peer closed the connection")),
            Ok(Ok(Some(TransferMsg::Listing { entries, more }))) => {
                seen += entries.len();
                if seen > MAX_LIST_ENTRIES {
                    return Err(TransferError::Protocol(
                        Reason::Protocol,
                        format!("listing has more than {MAX_LIST_ENTRIES} entries"),
                    ));
                }
                let room = LISTING_KEPT.saturating_sub(out.entries.len());
                out.omitted += entries.len().saturating_sub(room) as u64;
                out.entries.extend(entries.into_iter().take(room));
                if !more {
                    break;
                }
            }
            Ok(Ok(Some(TransferMsg::Error { code, text }))) => return Err(peer_error(&conn, code, text)),
            Ok(Ok(Some(other))) => return Err(unexpected(&other)),
        }
    }
    conn.writer.shutdown().await;
    Ok(out)
}

/// What the answer to a `Get` of `paths` may contain at its top level: each path's last
/// component (the share serves an entry under its own name); anything for the share list.
fn top_level_names(paths: &[String]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for p in paths {
        match p.trim_end_matches('/').rsplit('/').next() {
            Some(last) if !last.is_empty() => names.push(last.to_string()),
            _ => return None,
        }
    }
    Some(names)
}

/// Server: answer a `List`.
pub(crate) async fn serve_list(shared: &Arc<Shared>, mut conn: SecureConn, path: &str) {
    let shares = match shares_of(shared) {
        Ok(s) => s,
        Err(e) => return refuse(&mut conn.writer, &e).await,
    };
    let path = path.to_string();
    let listed = tokio::task::spawn_blocking(move || shares.list(&path).map_err(|e| e.to_string())).await;
    let entries = match listed {
        Ok(Ok(entries)) => entries,
        Ok(Err(e)) => return refuse(&mut conn.writer, &e).await,
        Err(_) => return refuse(&mut conn.writer, "listing failed").await,
    };
    // A reader that stops reading ends the listing after the stall limit per frame.
    let stall = shared.config.stall_timeout;
    let mut chunks = entries.chunks(LIST_FRAME_ENTRIES).peekable();
    if chunks.peek().is_none() {
        let empty = TransferMsg::Listing {
            entries: Vec::new(),
            more: false,
        };
        let _ = tokio::time::timeout(stall, conn.writer.send(&empty)).await;
    }
    while let Some(chunk) = chunks.next() {
        let more = chunks.peek().is_some();
        let frame = TransferMsg::Listing {
            entries: chunk.to_vec(),
            more,
        };
        if !matches!(tokio::time::timeout(stall, conn.writer.send(&frame)).await, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(stall, conn.writer.shutdown()).await;
}

/// Client: ask for `paths` and receive them into `dest`.
pub(crate) async fn get(ctx: &Ctx, mut conn: SecureConn, paths: Vec<String>, dest: PathBuf) -> Result<Outcome, TransferError> {
    let allowed = top_level_names(&paths);
    conn.writer
        .send(&TransferMsg::Get {
            transfer: ctx.id.clone(),
            paths,
        })
        .await
        .map_err(|e| failed(format!("connection lost: {e}")))?;
    let first = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(TransferError::Cancelled(Reason::CancelledByReceiver, "cancelled".into())),
        _ = ctx.shared.cancel.cancelled() => return Err(TransferError::Stopped("stopped: this lanyard is quitting".into())),
        r = tokio::time::timeout(PULL_ANSWER_TIMEOUT, conn.reader.read_frame::<TransferMsg>(MAX_TRANSFER_FRAME)) => r,
    };
    match first {
        Err(_) => Err(failed("the peer did not answer")),
        Ok(Err(e)) => Err(failed(format!("connection lost: {e}"))),
        Ok(Ok(None)) => Err(failed("the peer closed the connection")),
        Ok(Ok(Some(TransferMsg::Offer { items, bytes, .. }))) => {
            receive::run(
                ctx,
                conn,
                Header {
                    items,
                    bytes,
                    relay: Vec::new(),
                    origin: None,
                    deposit: None,
                },
                &dest,
                Decision::Requested(allowed),
            )
            .await
        }
        Ok(Ok(Some(TransferMsg::Error { code, text }))) => Err(peer_error(&conn, code, text)),
        Ok(Ok(Some(other))) => Err(unexpected(&other)),
    }
}

fn unexpected(msg: &TransferMsg) -> TransferError {
    TransferError::Protocol(Reason::Protocol, format!("protocol error: unexpected {}", msg_name(msg)))
}

/// Server: answer a `Get` with an offer of exactly those paths.
pub(crate) async fn serve_get(ctx: &Ctx, mut conn: SecureConn, paths: Vec<String>) -> Result<Outcome, TransferError> {
    if paths.is_empty() || paths.len() > MAX_GET_PATHS {
        let msg = format!("ask for 1 to {MAX_GET_PATHS} paths");
        refuse(&mut conn.writer, &msg).await;
        return Err(TransferError::Failed(Reason::Refused, msg));
    }
    let shares = match shares_of(&ctx.shared) {
        Ok(s) => s,
        Err(e) => {
            refuse(&mut conn.writer, &e).await;
            return Err(TransferError::Failed(Reason::Refused, e));
        }
    };
    let built = tokio::task::spawn_blocking(move || source::from_share(&shares, &paths)).await;
    let manifest = match built {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            refuse(&mut conn.writer, &e).await;
            return Err(TransferError::Failed(Reason::Refused, e));
        }
        Err(_) => {
            refuse(&mut conn.writer, "cannot read the shares").await;
            return Err(failed("cannot read the shares"));
        }
    };
    send::run(ctx, conn, &manifest, send::Outgoing::plain()).await
}

#[cfg(test)]
mod tests {
    use super::top_level_names;

    #[test]
    fn a_pull_accepts_only_what_it_asked_for() {
        let asked = |p: &[&str]| top_level_names(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            asked(&["docs/report.pdf", "docs/photos/"]),
            Some(vec!["report.pdf".into(), "photos".into()])
        );
        assert_eq!(asked(&["docs"]), Some(vec!["docs".into()]));
        assert_eq!(asked(&[""]), None, "the whole share list: anything under a share name");
    }
}
