//! The local control socket: one node per data dir, and every other process started on that
//! data dir (a one-shot command, a TUI that attaches) speaks the whole face API
//! ([`super::api`]) to it over `control.sock` (owner-only), so a `say` from a script lands in
//! the running node's history and the TUI can attach to a running `serve`.
//!
//! Each client connection carries one [`Request`] and gets a stream of [`Reply`] frames that
//! ends with `Done` or `Failed`; a client that hangs up stops its request (a transfer it started
//! is the node's and carries on).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::api::{FailKind, Failure, Reply, Request, execute};
use super::{AlreadyRunning, NodeConfig, NodeHandle};
use crate::net::frame;

pub const SOCKET_NAME: &str = "control.sock";
/// Requests and replies are local but still bounded: a confused client can't make us allocate.
/// A snapshot with long last lines in many conversations is the largest reply.
const MAX_LOCAL_FRAME: usize = 16 << 20;

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
    tracker.spawn("control::accept", async move {
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
            node.shared.tracker.clone().spawn("control::request", async move {
                let (mut rd, mut wr) = stream.into_split();
                let request = match frame::read::<Request, _>(&mut rd, MAX_LOCAL_FRAME).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = frame::write(
                            &mut wr,
                            &Reply::Failed {
                                kind: FailKind::Invalid,
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

/// A face's way to the node: the one running on the data dir, or one of its own.
pub enum Client {
    /// A node already runs on this data dir: talk to it over its socket.
    Remote(PathBuf),
    /// This process runs the node (a one-shot command's own, or the TUI's).
    Local(NodeHandle),
}

impl Client {
    /// Attach to the node running on `config`'s data dir, or start one with `config` for as
    /// long as the client lives.
    pub async fn open(config: NodeConfig) -> Result<Client> {
        let path = socket_path(&config.data_dir);
        for attempt in 0..20 {
            if UnixStream::connect(&path).await.is_ok() {
                let client = Client::Remote(path);
                // A nick given to any command sticks, also when a node already runs.
                if let Some(nick) = config.nick {
                    client.run(Request::SetNick { nick }, |_| {}).await?;
                }
                return Ok(client);
            }
            match NodeHandle::start(config.clone()).await {
                Ok(node) => return Ok(Client::Local(node)),
                // Locked but no socket yet: a node is starting (or a one-shot runs); wait a bit.
                Err(e) if e.downcast_ref::<AlreadyRunning>().is_some() && attempt < 19 => {
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

    /// Attach to the node running on `data_dir`; an error that says so when none runs.
    pub async fn attach(data_dir: &Path) -> Result<Client> {
        let path = socket_path(data_dir);
        match UnixStream::connect(&path).await {
            Ok(_) => Ok(Client::Remote(path)),
            Err(_) => bail!(
                "no lanyard node is running on data dir {} (start `lanyard serve` or `lanyard`)",
                data_dir.display()
            ),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Client::Remote(_))
    }

    /// Run a request; replies arrive on the returned channel, ending with Done or Failed.
    pub async fn request(&self, request: Request) -> Result<mpsc::Receiver<Reply>> {
        let (tx, rx) = mpsc::channel(64);
        match self {
            Client::Local(node) => {
                let node = node.clone();
                tokio::spawn(async move { execute(&node, request, &tx).await });
            }
            Client::Remote(path) => {
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
                                        kind: FailKind::Other,
                                        message: "the running node closed the control socket".into(),
                                    })
                                    .await;
                                break;
                            }
                            Err(e) => {
                                let _ = tx
                                    .send(Reply::Failed {
                                        kind: FailKind::Other,
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

    /// Run a request to its end, feeding each reply to `show`: Ok on Done, Failed as a
    /// [`Failure`] (its message is the error's text).
    pub async fn run(&self, request: Request, mut show: impl FnMut(Reply)) -> Result<()> {
        let mut rx = self.request(request).await?;
        while let Some(reply) = rx.recv().await {
            match reply {
                Reply::Done => return Ok(()),
                Reply::Failed { kind, message } => return Err(Failure { kind, message }.into()),
                other => show(other),
            }
        }
        bail!("the request ended without an answer")
    }

    /// Stop this client's own node (an attached client leaves the running node alone).
    pub async fn close(self) {
        if let Client::Local(node) = self {
            node.shutdown().await;
        }
    }
}
