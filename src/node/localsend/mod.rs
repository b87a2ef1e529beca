//! LocalSend devices as this node sees them: the HTTPS API they send to (register, info,
//! prepare-upload, upload, cancel), a single session slot with per-file tokens bound to the
//! sender's address, the PIN, and what a device's offer becomes here — one of our receives
//! (`transfer::localsend`) or, for a text message, a chat line. Bytes, TLS and JSON are
//! `net::localsend`'s.
//!
//! Its files: `mod.rs` (starting it, the devices heard of), `receive` (the routes, the session
//! slot, tokens, the PIN), `discovery` (our announcement, answering theirs), `send` (reaching a
//! device: register, telling a cancel).

mod discovery;
mod receive;
mod send;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::identity::PeerId;
/// LocalSend's port (TCP for its API, UDP for its group), for the config's default.
pub use crate::net::localsend::DEFAULT_PORT;
use crate::net::localsend::cert::DeviceCert;
use crate::net::localsend::dto::{DeviceInfo, VERSION};
use crate::node::Shared;

/// The device model we announce, by which lanyard nodes tell each other apart from LocalSend
/// devices.
pub(crate) const LANYARD_MODEL: &str = "lanyard";

/// What a node does for LocalSend (off: `None` in `NodeConfig`).
#[derive(Debug, Clone)]
pub struct LocalSendConfig {
    /// Where the HTTPS API listens; the port taken, a free one is used instead (and said).
    pub listen: SocketAddr,
    /// A PIN senders must give (`?pin=`).
    pub pin: Option<String>,
    /// Announce on, and listen to, LocalSend's multicast group. Only where multicast may be
    /// used at all (with mDNS: off outside a test's own network namespaces).
    pub multicast: bool,
}

/// A LocalSend device, as it described itself. Every string is as received: neutralise it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Device {
    pub alias: String,
    pub model: Option<String>,
    /// One of LocalSend's device types (unknown ones read as desktop).
    pub kind: String,
    /// SHA-256 of its certificate, uppercase hex.
    pub fingerprint: String,
    /// The fingerprint is the one its TLS certificate hashes to (not merely claimed in JSON).
    pub verified: bool,
    /// Where it was last heard from.
    pub addr: String,
    /// Unix milliseconds.
    pub seen_ms: u64,
}

/// The node's LocalSend state.
pub(crate) struct LocalSend {
    pub cert: DeviceCert,
    pub port: u16,
    pub pin: Option<String>,
    slot: Mutex<receive::Slot>,
    pins: Mutex<receive::PinTries>,
    devices: Mutex<HashMap<String, Device>>,
    /// Our sends by the device's session id: its address, and what its `cancel` raises.
    outgoing: Mutex<HashMap<String, (IpAddr, tokio_util::sync::CancellationToken)>>,
}

/// The id a device's transfers and chat lines are filed under: derived from its fingerprint,
/// in the same space as lanyard ids (but no lanyard key hashes to it).
pub fn device_id(fingerprint: &str) -> PeerId {
    PeerId::from_public_key(format!("localsend {}", fingerprint.to_ascii_uppercase()).as_bytes())
}

/// Take the port (or a free one when it is taken) and the certificate, before the node starts.
pub(crate) async fn bind(data_dir: &std::path::Path, config: &LocalSendConfig) -> Result<(LocalSend, TcpListener, Option<u16>)> {
    let cert = DeviceCert::load_or_create(data_dir)?;
    let (listener, moved_from) = match TcpListener::bind(config.listen).await {
        Ok(l) => (l, None),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && config.listen.port() != 0 => {
            let any = SocketAddr::new(config.listen.ip(), 0);
            (
                TcpListener::bind(any).await.with_context(|| format!("cannot listen on {any}"))?,
                Some(config.listen.port()),
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen for LocalSend on {}", config.listen)),
    };
    let port = listener.local_addr()?.port();
    Ok((
        LocalSend {
            cert,
            port,
            pin: config.pin.clone(),
            slot: Mutex::new(receive::Slot::Free),
            pins: Mutex::default(),
            devices: Mutex::default(),
            outgoing: Mutex::default(),
        },
        listener,
        moved_from,
    ))
}

/// Serve the API until the node stops.
pub(crate) fn start(shared: &Arc<Shared>, listener: TcpListener) -> Result<()> {
    let Some(ls) = &shared.localsend else { return Ok(()) };
    let tls = crate::net::localsend::tls::server_config(&ls.cert)?;
    let s = shared.clone();
    shared.tracker.spawn(
        "localsend::server",
        crate::net::localsend::server::serve(
            listener,
            tls,
            shared.cancel.child_token(),
            shared.tracker.clone(),
            move |req, client| receive::route(s.clone(), req, client),
        ),
    );
    if shared.config.localsend.as_ref().is_some_and(|c| c.multicast) {
        shared.tracker.spawn("localsend::discovery", discovery::run(shared.clone()));
    }
    Ok(())
}

impl LocalSend {
    /// How we describe ourselves (without port and protocol: what `info` and `register` answer).
    pub fn info(&self, nick: &str) -> DeviceInfo {
        DeviceInfo {
            alias: nick.to_string(),
            version: VERSION.into(),
            device_model: Some(LANYARD_MODEL.into()),
            device_type: Some("desktop".into()),
            fingerprint: self.cert.fingerprint.clone(),
            port: None,
            protocol: None,
            download: false,
        }
    }

    /// Remember a device, the least recently heard going first past the bound. A fingerprint
    /// once proven by a certificate is not taken over by a mere claim of it.
    /// True when it is new, or says something new about itself (worth telling the faces).
    pub fn remember(&self, device: Device) -> bool {
        let mut devices = crate::node::lock(&self.devices);
        let key = device.fingerprint.to_ascii_uppercase();
        if let Some(known) = devices.get(&key) {
            if known.verified && !device.verified {
                return false;
            }
            let same = Device {
                seen_ms: known.seen_ms,
                ..device.clone()
            };
            if same == *known {
                devices.insert(key, device);
                return false;
            }
        }
        if !devices.contains_key(&key)
            && devices.len() >= crate::limits::MAX_LOCALSEND_DEVICES
            && let Some(oldest) = devices.iter().min_by_key(|(_, d)| d.seen_ms).map(|(k, _)| k.clone())
        {
            devices.remove(&oldest);
        }
        devices.insert(key, device);
        true
    }

    pub fn outgoing_started(&self, session: &str, ip: IpAddr, cancel: tokio_util::sync::CancellationToken) {
        crate::node::lock(&self.outgoing).insert(session.to_string(), (ip, cancel));
    }

    pub fn outgoing_ended(&self, session: &str) {
        crate::node::lock(&self.outgoing).remove(session);
    }

    /// The device `spec` names: its alias exactly, its id (see [`device_id`]) or a prefix of
    /// its fingerprint of at least 8 digits; `None` when none or several match.
    pub fn find(&self, spec: &str) -> Option<Device> {
        let devices = crate::node::lock(&self.devices);
        let hit = |d: &&Device| {
            d.alias == spec
                || device_id(&d.fingerprint).as_str() == spec
                || (spec.len() >= 8 && d.fingerprint.to_ascii_uppercase().starts_with(&spec.to_ascii_uppercase()))
        };
        let mut found = devices.values().filter(hit);
        let one = found.next()?.clone();
        found.next().is_none().then_some(one)
    }

    pub fn devices(&self) -> Vec<Device> {
        let mut v: Vec<Device> = crate::node::lock(&self.devices).values().cloned().collect();
        v.sort_by(|a, b| a.alias.cmp(&b.alias).then_with(|| a.fingerprint.cmp(&b.fingerprint)));
        v
    }
}

/// What a face sees of LocalSend: our port and fingerprint, and the devices heard of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalSendView {
    pub port: u16,
    pub fingerprint: String,
    pub devices: Vec<Device>,
}

pub(crate) use send::{open, tell_cancel};

impl crate::node::NodeHandle {
    /// Register with the LocalSend API at `addr` (a device reached by address, multicast
    /// blocked): its certificate, whatever it is, is the device's from now on.
    pub async fn localsend_register(&self, addr: SocketAddr) -> Result<Device> {
        let Some(ls) = self.shared.localsend.as_ref() else {
            anyhow::bail!("LocalSend is off")
        };
        let mut mine = ls.info(&self.shared.nick());
        mine.port = Some(ls.port);
        mine.protocol = Some("https".into());
        send::register(&self.shared, addr, None, &mine).await
    }

    /// The LocalSend device `spec` names, if LocalSend is on and one does.
    pub fn localsend_device(&self, spec: &str) -> Option<Device> {
        self.shared.localsend.as_ref()?.find(spec)
    }

    /// Send `paths` to a LocalSend device: the transfer's id (its progress rows carry it) and
    /// its end.
    pub fn localsend_send(
        &self,
        device: Device,
        paths: Vec<std::path::PathBuf>,
        pin: Option<String>,
    ) -> (
        String,
        tokio::task::JoinHandle<Result<crate::node::transfer::Outcome, crate::node::transfer::TransferError>>,
    ) {
        crate::node::transfer::localsend_push(&self.shared, device, paths, pin)
    }

    /// LocalSend's state here; `None` when it is off.
    pub fn localsend(&self) -> Option<LocalSendView> {
        self.shared.localsend.as_ref().map(|ls| LocalSendView {
            port: ls.port,
            fingerprint: ls.cert.fingerprint.clone(),
            devices: ls.devices(),
        })
    }
}

/// Remember a device, telling the faces when that changed anything.
pub(crate) fn remember(shared: &Shared, device: Device) {
    if let Some(ls) = shared.localsend.as_ref()
        && ls.remember(device.clone())
    {
        shared.emit(crate::node::Event::LocalSendDevice { device });
    }
}

/// A device's address as kept.
fn addr_text(ip: IpAddr, port: Option<u16>) -> String {
    SocketAddr::new(ip, port.unwrap_or(crate::net::localsend::DEFAULT_PORT)).to_string()
}
