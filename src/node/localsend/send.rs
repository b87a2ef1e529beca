//! Reaching a LocalSend device as a client: our certificate presented, theirs pinned.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Result, bail};
use hyper::{Method, StatusCode};

use super::Device;
use crate::net::localsend::dto::DeviceInfo;
use crate::net::localsend::server::{Connection, connect, full};
use crate::net::localsend::tls::client_config;
use crate::node::Shared;
use crate::store::unix_now_ms;

/// A connection to the device at `to`, whose certificate must hash to `fingerprint` (any, if
/// none is expected: then the one it presented is the device's from now on).
pub(crate) async fn open(shared: &Shared, to: SocketAddr, fingerprint: Option<&str>) -> Result<Connection> {
    let Some(ls) = shared.localsend.as_ref() else {
        bail!("LocalSend is off")
    };
    let (config, pinned) = client_config(&ls.cert, fingerprint)?;
    connect(to, None, config, &pinned, &shared.tracker).await
}

/// Register with the device at `to`: it learns us, we learn it (recorded as verified: its
/// certificate answered to its fingerprint).
pub(crate) async fn register(shared: &Arc<Shared>, to: SocketAddr, fingerprint: Option<&str>, mine: &DeviceInfo) -> Result<Device> {
    let device = exchange(shared, to, fingerprint, mine).await?;
    super::remember(shared, device.clone());
    Ok(device)
}

/// Register with the device at `to`, and what it says of itself (not yet remembered).
pub(crate) async fn exchange(shared: &Shared, to: SocketAddr, fingerprint: Option<&str>, mine: &DeviceInfo) -> Result<Device> {
    let mut conn = open(shared, to, fingerprint).await?;
    let (status, body) = conn
        .request(Method::POST, "/api/localsend/v2/register", full(serde_json::to_vec(mine)?))
        .await?;
    if status != StatusCode::OK {
        bail!("register answered {status}");
    }
    let info: DeviceInfo = serde_json::from_slice(&body)?;
    let device = Device {
        alias: info.alias.clone(),
        model: info.device_model.clone(),
        kind: info.kind().to_string(),
        fingerprint: conn.fingerprint.clone(),
        verified: true,
        addr: to.to_string(),
        seen_ms: unix_now_ms(),
    };
    Ok(device)
}

/// Tell the device at `to` that the session `session` is cancelled, on a connection of its own
/// (the upload's is busy), before that upload stops: the other side then ends it as cancelled,
/// not as a broken upload.
pub(crate) async fn tell_cancel(shared: &Shared, to: SocketAddr, fingerprint: &str, session: &str) {
    let q = format!("/api/localsend/v2/cancel?sessionId={}", crate::net::localsend::dto::encode(session));
    let tell = async {
        let mut c = open(shared, to, Some(fingerprint)).await?;
        c.request(Method::POST, &q, full(bytes::Bytes::new())).await
    };
    if let Ok(Err(e)) = tokio::time::timeout(crate::limits::LOCALSEND_HEADER_TIMEOUT, tell).await {
        tracing::debug!("telling {to} of the cancel: {e:#}");
    }
}
