//! HTTPS for LocalSend: the accept loop (our own, so each request knows the certificate its
//! client presented), bounded body reads, JSON answers, and one request as a client.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::tasks::Tasks;
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::cert::fingerprint;
use super::dto::ErrorBody;
use crate::limits::{LOCALSEND_HEADER_TIMEOUT, MAX_LOCALSEND_CONNECTIONS};

/// Who sent a request: its address, and the fingerprint of the certificate it presented.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub fingerprint: Option<String>,
}

pub type Reply = Response<Full<Bytes>>;

/// Serve HTTPS on `listener` until `cancel`: each request goes to `handle` with its client.
pub async fn serve<H, F>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, cancel: CancellationToken, tracker: Tasks, handle: H)
where
    H: Fn(Request<Incoming>, Arc<Client>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_LOCALSEND_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (tcp, addr) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("LocalSend accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, handle, cancel) = (acceptor.clone(), handle.clone(), cancel.clone());
        tracker.spawn("localsend::request", async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let stream = match tokio::time::timeout(LOCALSEND_HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!("LocalSend TLS from {addr}: {e}"),
                Err(_) => return tracing::debug!("LocalSend TLS from {addr}: too slow"),
            };
            let client = Arc::new(Client {
                addr,
                fingerprint: stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| fingerprint(c)),
            });
            let service = hyper::service::service_fn(move |req| {
                let (handle, client) = (handle.clone(), client.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(req, client).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(LOCALSEND_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { tracing::debug!("LocalSend connection from {addr}: {e}") },
                _ = cancel.cancelled() => {}
            }
        });
    }
}

/// A request body up to `max` bytes; `Err(true)` when it is larger (nothing more is read),
/// `Err(false)` when it broke off.
pub async fn read_body(body: Incoming, max: usize) -> Result<Bytes, bool> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(e.downcast_ref::<http_body_util::LengthLimitError>().is_some()),
    }
}

pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// An error answer: `{"message": …}`, as LocalSend writes them.
pub fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    json(status, &ErrorBody { message: message.into() })
}

pub fn empty(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// An HTTPS connection to a device: ours presented, theirs pinned (see `tls::client_config`).
pub struct Connection {
    pub sender: hyper::client::conn::http1::SendRequest<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>,
    /// The fingerprint of the certificate the device presented.
    pub fingerprint: String,
    pub addr: SocketAddr,
}

/// Connect to `addr` (from the local address `from`, if given).
pub async fn connect(
    addr: SocketAddr,
    from: Option<std::net::IpAddr>,
    config: Arc<rustls::ClientConfig>,
    pinned: &super::tls::Pinned,
    tracker: &Tasks,
) -> Result<Connection> {
    let dial = async {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(ip) = from {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(addr).await
    };
    let tcp: TcpStream = tokio::time::timeout(LOCALSEND_HEADER_TIMEOUT, dial)
        .await
        .map_err(|_| anyhow!("{addr} did not answer"))?
        .with_context(|| format!("cannot reach {addr}"))?;
    let _ = tcp.set_nodelay(true);
    // Devices are known by fingerprint, never by name: the name here is a placeholder rustls needs.
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio::time::timeout(
        LOCALSEND_HEADER_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| anyhow!("{addr}: TLS handshake timed out"))?
    .with_context(|| format!("TLS with {addr}"))?;
    let Some(fingerprint) = pinned.seen.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        bail!("{addr} presented no certificate");
    };
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.context("HTTP")?;
    tracker.spawn("localsend::client_conn", async move {
        let _ = conn.await;
    });
    Ok(Connection { sender, fingerprint, addr })
}

pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

impl Connection {
    /// One request; the answer's status and body (read up to the JSON bound).
    pub async fn request(&mut self, method: hyper::Method, path_and_query: &str, body: Body) -> Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(body)?;
        self.sender.ready().await.context("connection closed")?;
        let resp = self.sender.send_request(req).await.context("request failed")?;
        let status = resp.status();
        let body = read_body(resp.into_body(), crate::limits::MAX_LOCALSEND_JSON)
            .await
            .map_err(|big| anyhow!(if big { "answer too large" } else { "answer broke off" }))?;
        Ok((status, body))
    }
}

/// A body fed through a channel (a file read on another task), with its exact length
/// announced (`Content-Length`, which 1.17 receivers expect).
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    len: u64,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

/// A body of exactly `len` bytes sent through the returned channel (at most `depth` chunks
/// queued).
pub fn channel(len: u64, depth: usize) -> (tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, Body) {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel(depth);
    (tx, ChannelBody { rx, len }.boxed())
}
