//! The local control socket: one node per data dir, and one-shot commands started on that data
//! dir hand their work to it, so a `say` from a script lands in the running node's history.
//!
//! Each client connection carries one [`Request`] and gets a stream of [`Reply`] frames that ends
//! with `Done` or `Failed`. The same [`execute`] runs the request whether it came over the socket
//! or from a one-shot command that started a node of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::net::frame;
use crate::node::chat::ChatTarget;
use crate::node::share::ShareEntry;
use crate::node::transfer::{Outcome, Progress};
use crate::node::{ChatEntry, NodeHandle, PeerInfo};

pub const SOCKET_NAME: &str = "control.sock";
/// Requests and replies are local but still bounded: a confused client can't make us allocate.
const MAX_LOCAL_FRAME: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Peers {
        wait_ms: u64,
    },
    /// Store a chat line, then (unless `queue`) wait up to `timeout_ms` for its delivery.
    Say {
        peer: String,
        text: String,
        queue: bool,
        timeout_ms: u64,
    },
    History {
        peer: String,
        limit: Option<usize>,
    },
    /// Push absolute `paths` to every peer in `peers` (nick, id prefix or HOST:PORT).
    Send {
        peers: Vec<String>,
        paths: Vec<PathBuf>,
    },
    List {
        peer: String,
        path: String,
    },
    Get {
        peer: String,
        paths: Vec<String>,
        /// Absolute; the node's download dir when absent.
        to: Option<PathBuf>,
    },
}

/// How long a PEER given to `say` or `history` may take to be discovered or connected.
const RESOLVE_WAIT: Duration = Duration::from_secs(5);
/// History goes out in replies of about this many bytes, well under the frame bound.
const HISTORY_CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Peers {
        peers: Vec<PeerInfo>,
    },
    /// The line is stored and queued for delivery.
    Queued {
        id: String,
    },
    /// Every recipient acknowledged it.
    Delivered {
        id: String,
    },
    /// Part of a conversation's history, oldest first; several may follow each other.
    History {
        entries: Vec<ChatEntry>,
    },
    /// Progress of the transfer to or from `peer` (as the user named it).
    Progress {
        peer: String,
        progress: Progress,
    },
    /// One recipient's or one pull's result.
    Finished {
        peer: String,
        outcome: Outcome,
    },
    /// One recipient could not be served at all.
    NotDelivered {
        peer: String,
        error: String,
    },
    Listing {
        entries: Vec<ShareEntry>,
    },
    /// The request finished; the command exits 0.
    Done,
    /// The request failed with this one-line message; the command exits non-zero.
    Failed {
        message: String,
    },
}

/// Run one request against a node, streaming replies into `out`; always ends with Done or Failed.
pub async fn execute(node: &NodeHandle, request: Request, out: &mpsc::Sender<Reply>) {
    let result = match request {
        Request::Peers { wait_ms } => peers(node, wait_ms, out).await,
        Request::Say {
            peer,
            text,
            queue,
            timeout_ms,
        } => say(node, &peer, &text, queue, Duration::from_millis(timeout_ms), out).await,
        Request::History { peer, limit } => history(node, &peer, limit, out).await,
        Request::Send { peers, paths } => super::transfer::send(node, peers, paths, out).await,
        Request::List { peer, path } => super::transfer::list(node, &peer, &path, out).await,
        Request::Get { peer, paths, to } => super::transfer::get(node, &peer, paths, to, out).await,
    };
    let last = match result {
        Ok(()) => Reply::Done,
        Err(e) => Reply::Failed { message: format!("{e:#}") },
    };
    let _ = out.send(last).await;
}

async fn peers(node: &NodeHandle, wait_ms: u64, out: &mpsc::Sender<Reply>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    out.send(Reply::Peers { peers: node.peers() }).await.ok();
    Ok(())
}

async fn say(node: &NodeHandle, peer: &str, text: &str, queue: bool, timeout: Duration, out: &mpsc::Sender<Reply>) -> Result<()> {
    crate::node::chat::check_text(text)?;
    let target = node.resolve_chat(peer, RESOLVE_WAIT).await?;
    if target == ChatTarget::Room && node.listen_addr().is_none() {
        // A one-shot's own node has only just started: #all means the peers online now, so give
        // the ones it can reach a moment to connect.
        node.wait_room_settled(RESOLVE_WAIT).await;
    }
    let id = node.say(&target, text)?;
    out.send(Reply::Queued { id: id.clone() }).await.ok();
    if queue {
        return Ok(());
    }
    if !node.wait_delivered(&id, timeout).await? {
        bail!("not delivered within {} s; kept in the queue (message {id})", timeout.as_secs_f64());
    }
    out.send(Reply::Delivered { id }).await.ok();
    Ok(())
}

async fn history(node: &NodeHandle, peer: &str, limit: Option<usize>, out: &mpsc::Sender<Reply>) -> Result<()> {
    // A known peer resolves at once, online or not.
    let conversation = node.resolve_chat(peer, RESOLVE_WAIT).await?;
    let entries = node.history(conversation.conversation(), limit.unwrap_or(usize::MAX))?;
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for e in entries {
        bytes += 512 + e.text.len() + e.nick.len() + 64 * e.recipients.len();
        chunk.push(e);
        if bytes >= HISTORY_CHUNK_BYTES {
            out.send(Reply::History {
                entries: std::mem::take(&mut chunk),
            })
            .await
            .ok();
            bytes = 0;
        }
    }
    out.send(Reply::History { entries: chunk }).await.ok();
    Ok(())
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Serve the control socket of a running node until it shuts down.
pub async fn serve_socket(node: NodeHandle) -> Result<()> {
    let path = socket_path(&node.config().data_dir);
    // We hold the data dir's lock, so a socket file left here belongs to a node that died.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("cannot create control socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let tracker = node.shared.tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = node.cancelled() => break,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let node = node.clone();
            node.shared.tracker.clone().spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let request = match frame::read::<Request, _>(&mut rd, MAX_LOCAL_FRAME).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = frame::write(
                            &mut wr,
                            &Reply::Failed {
                                message: format!("bad request: {e}"),
                            },
                        )
                        .await;
                        return;
                    }
                };
                let (tx, mut rx) = mpsc::channel(64);
                let worker = node.clone();
                let work = async move {
                    execute(&worker, request, &tx).await;
                };
                let forward = async move {
                    while let Some(reply) = rx.recv().await {
                        if frame::write(&mut wr, &reply).await.is_err() {
                            break;
                        }
                    }
                };
                // The client keeps its end open until it exits: EOF means it is gone.
                let hangup = async move {
                    let mut byte = [0u8; 1];
                    while let Ok(1..) = rd.read(&mut byte).await {}
                };
                // A client that hangs up stops its request: dropping `work` ends what it awaits
                // (a transfer it started is the node's and carries on).
                tokio::select! {
                    _ = async { tokio::join!(work, forward) } => {}
                    _ = hangup => {}
                    _ = node.cancelled() => {}
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

/// Where a one-shot command's work runs.
pub enum Session {
    /// A node already runs on this data dir: talk to it.
    Remote(PathBuf),
    /// None runs: this process runs one for the command's duration.
    Local(NodeHandle),
}

impl Session {
    pub async fn open(config: &Config) -> Result<Session> {
        let path = socket_path(&config.data_dir);
        for attempt in 0..20 {
            if UnixStream::connect(&path).await.is_ok() {
                return Ok(Session::Remote(path));
            }
            match NodeHandle::start(config.browsing_node()).await {
                Ok(node) => return Ok(Session::Local(node)),
                // Locked but no socket yet: a node is starting (or a one-shot runs); wait a bit.
                Err(e) if e.to_string().contains("already running") && attempt < 19 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        bail!(
            "another lanyard is using data dir {} and does not answer",
            config.data_dir.display()
        )
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Session::Remote(_))
    }

    /// Run a request; replies arrive on the returned channel, ending with Done or Failed.
    pub async fn request(&self, request: Request) -> Result<mpsc::Receiver<Reply>> {
        let (tx, rx) = mpsc::channel(64);
        match self {
            Session::Local(node) => {
                let node = node.clone();
                tokio::spawn(async move { execute(&node, request, &tx).await });
            }
            Session::Remote(path) => {
                let stream = UnixStream::connect(path).await.context("lost the running node's control socket")?;
                let (mut rd, mut wr) = stream.into_split();
                frame::write(&mut wr, &request).await?;
                tokio::spawn(async move {
                    let _keep_open = wr;
                    loop {
                        match frame::read::<Reply, _>(&mut rd, MAX_LOCAL_FRAME).await {
                            Ok(Some(reply)) => {
                                if tx.send(reply).await.is_err() {
                                    break;
                                }
                            }
                            Ok(None) => {
                                let _ = tx
                                    .send(Reply::Failed {
                                        message: "the running node closed the control socket".into(),
                                    })
                                    .await;
                                break;
                            }
                            Err(e) => {
                                let _ = tx
                                    .send(Reply::Failed {
                                        message: format!("control socket: {e}"),
                                    })
                                    .await;
                                break;
                            }
                        }
                    }
                });
            }
        }
        Ok(rx)
    }

    pub async fn close(self) {
        if let Session::Local(node) = self {
            node.shutdown().await;
        }
    }
}
