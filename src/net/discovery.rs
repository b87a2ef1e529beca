//! mDNS: advertise `_lanyard._tcp.local.` and browse for the others.
//!
//! mdns-sd joins the multicast group on every interface that is up, so the decision to start it
//! at all (`--no-mdns`) is the only guard against multicast leaving a machine; nothing here filters.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use mdns_sd::{ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::identity::PeerId;
use crate::limits::MIN_DISCOVERED_PORT;
use crate::net::wire::{MAX_NICK_BYTES, PROTOCOL_VERSION};

pub const SERVICE_TYPE: &str = "_lanyard._tcp.local.";

/// After registering, our record is announced again this long after the previous time, then
/// every [`REANNOUNCE_EVERY`]: a node that missed the first announcements (a packet lost, a busy
/// machine, a cable plugged in late) hears of us within seconds, and later within minutes.
/// mdns-sd's own schedule stops after the two announcements of RFC 6762 §8.3, and its queries
/// back off to an hour. Rare on purpose: every announcement is received and parsed by every node
/// of the lab (measured at 100 nodes: ~0.2 ms of CPU per packet per node), and peer exchange
/// heals a missed one in seconds as soon as a node has any peer.
const REANNOUNCE_AFTER: [Duration; 4] = [
    Duration::from_secs(3),
    Duration::from_secs(9),
    Duration::from_secs(27),
    Duration::from_secs(81),
];
const REANNOUNCE_EVERY: Duration = Duration::from_secs(300);

/// What we announce about ourselves.
#[derive(Debug, Clone)]
pub struct Advert {
    pub id: PeerId,
    pub nick: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// A peer resolved (again): the addresses are all we know of it so far, IPv4 first.
    Found {
        id: PeerId,
        nick: String,
        host: String,
        addrs: Vec<SocketAddr>,
    },
    /// Its record was withdrawn (goodbye) or expired. Liveness still comes from the connection.
    Lost { id: PeerId },
}

pub struct Discovery {
    daemon: ServiceDaemon,
    registered: Option<String>,
    /// What the re-announcer announces: the record as last registered.
    current: Arc<Mutex<Option<ServiceInfo>>>,
    me: PeerId,
    tx: mpsc::UnboundedSender<DiscoveryEvent>,
    cancel: CancellationToken,
    /// The running browse, if any: cancelling it ends its listener task.
    browsing: Option<CancellationToken>,
}

impl Discovery {
    /// Start browsing (and advertising, when `advert` is given). Events go to `tx` until `cancel`.
    pub fn start(
        me: &PeerId,
        advert: Option<&Advert>,
        tx: mpsc::UnboundedSender<DiscoveryEvent>,
        cancel: CancellationToken,
    ) -> Result<Discovery> {
        let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
        let mut discovery = Discovery {
            daemon,
            registered: None,
            current: Arc::new(Mutex::new(None)),
            me: me.clone(),
            tx,
            cancel: cancel.clone(),
            browsing: None,
        };
        if let Some(advert) = advert {
            discovery.advertise(advert)?;
            tokio::spawn(reannounce(discovery.daemon.clone(), discovery.current.clone(), cancel));
        }
        discovery.browse()?;
        Ok(discovery)
    }

    /// Look for the others: query the LAN (mdns-sd's schedule: after 1, 2, 4 ... s) and report
    /// every record, also the ones already in the cache. Answering others' queries about us
    /// doesn't depend on this.
    pub fn browse(&mut self) -> Result<()> {
        if self.browsing.is_some() {
            return Ok(());
        }
        let events = self.daemon.browse(SERVICE_TYPE).context("cannot browse mDNS")?;
        let stop = self.cancel.child_token();
        self.browsing = Some(stop.clone());
        let (me, tx) = (self.me.clone(), self.tx.clone());
        tokio::spawn(async move {
            // Instance fullname → id, so a removal (which carries only the name) maps back.
            let mut names: HashMap<String, PeerId> = HashMap::new();
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => break,
                    e = events.recv_async() => match e { Ok(e) => e, Err(_) => break },
                };
                let out = match event {
                    ServiceEvent::ServiceResolved(info) => {
                        let Some(found) = parse_resolved(&info.fullname, info.port, &info.addresses, |k| {
                            info.txt_properties.get_property_val_str(k)
                        }) else {
                            continue;
                        };
                        let DiscoveryEvent::Found { id, .. } = &found else { continue };
                        if id == &me {
                            continue;
                        }
                        names.insert(info.fullname.clone(), id.clone());
                        found
                    }
                    ServiceEvent::ServiceRemoved(_, fullname) => match names.remove(&fullname) {
                        Some(id) => DiscoveryEvent::Lost { id },
                        None => continue,
                    },
                    _ => continue,
                };
                if tx.send(out).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    /// Stop looking (we keep answering and announcing). A browsing mdns-sd daemon walks its whole
    /// cache of the others' records on every wake-up, and wakes for each record's refresh timers:
    /// per node a cost that grows with the square of the lab's size (measured at 100 nodes: 0.2 %
    /// of a core per node, idle). A node that is in the lab learns of newcomers from their dials
    /// and from peer exchange instead.
    pub fn stop_browsing(&mut self) {
        if let Some(stop) = self.browsing.take() {
            stop.cancel();
            if let Err(e) = self.daemon.stop_browse(SERVICE_TYPE) {
                tracing::debug!("cannot stop browsing mDNS: {e}");
            }
        }
    }

    /// (Re-)register our record; used at start and when the nick changes. The record's name is
    /// our id, so a change is announced over the old one: no goodbye, peers just update.
    pub fn advertise(&mut self, advert: &Advert) -> Result<()> {
        let props = [
            ("v", PROTOCOL_VERSION.to_string()),
            ("id", advert.id.to_string()),
            ("nick", truncate(&advert.nick, MAX_NICK_BYTES).to_string()),
            ("host", truncate(&advert.host, MAX_NICK_BYTES).to_string()),
        ];
        // Every instance gets a host name of its own: machines (and test namespaces) can share one.
        let host = format!("lanyard-{}.local.", advert.id);
        let info = ServiceInfo::new(SERVICE_TYPE, advert.id.as_str(), &host, "", advert.port, &props[..])
            .context("bad mDNS record")?
            .enable_addr_auto();
        self.registered = Some(info.get_fullname().to_string());
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
        self.daemon.register(info).context("cannot register mDNS service")?;
        Ok(())
    }

    /// Ask whether a peer's record still holds, after its connection broke without a goodbye:
    /// unanswered for ten seconds (RFC 6762 §10.4), the record goes and the peer is
    /// reported lost, instead of lingering for the rest of its lifetime (two minutes).
    pub fn verify(&self, id: &PeerId) {
        if let Err(e) = self.daemon.verify(format!("{id}.{SERVICE_TYPE}"), mdns_sd::VERIFY_TIMEOUT_DEFAULT) {
            tracing::debug!("cannot verify the mDNS record of {}: {e}", id.short());
        }
    }

    /// Withdraw our record (peers get a goodbye) and stop the daemon.
    pub async fn shutdown(self) {
        // The re-announcer must not bring the record back after its goodbye.
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(name) = &self.registered
            && let Ok(rx) = self.daemon.unregister(name)
        {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv_async()).await;
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv_async()).await;
        }
    }
}

/// Announce our record again on a slow schedule (see [`REANNOUNCE_AFTER`]), with a little jitter
/// so that a lab started at one instant doesn't announce in step. Registering the same record
/// again is mdns-sd's way to announce it: no goodbye, no probing.
async fn reannounce(daemon: ServiceDaemon, current: Arc<Mutex<Option<ServiceInfo>>>, cancel: CancellationToken) {
    let schedule = REANNOUNCE_AFTER.into_iter().chain(std::iter::repeat(REANNOUNCE_EVERY));
    for delay in schedule {
        let jitter = delay.mul_f64(rand::random_range(0.0..0.2));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay + jitter) => {}
        }
        let info = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(info) = info
            && let Err(e) = daemon.register(info)
        {
            tracing::debug!("cannot announce our mDNS record again: {e}");
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An address a record from the LAN may name: not loopback (ours, whoever names it), not
/// unspecified, multicast or broadcast.
fn routable(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
}

/// Turn a resolved record into a `Found`, or nothing if it isn't a usable lanyard peer of our
/// protocol version. TXT values are hostile input like anything else from the network.
pub(crate) fn parse_resolved<'a>(
    fullname: &str,
    port: u16,
    addrs: &std::collections::HashSet<ScopedIp>,
    txt: impl Fn(&str) -> Option<&'a str>,
) -> Option<DiscoveryEvent> {
    let version: u16 = txt("v")?.parse().ok()?;
    if version != PROTOCOL_VERSION {
        tracing::info!("ignoring mDNS peer {fullname}: protocol v{version}, we speak v{PROTOCOL_VERSION}");
        return None;
    }
    let id = PeerId::parse(txt("id")?)?;
    let nick = txt("nick").filter(|n| !n.is_empty() && n.len() <= MAX_NICK_BYTES)?.to_string();
    let host = txt("host").filter(|h| h.len() <= MAX_NICK_BYTES).unwrap_or("").to_string();
    // Lanyard listens above the well-known ports: a record naming port 22 is a way to make every
    // node of the lab knock on someone's ssh.
    if port < MIN_DISCOVERED_PORT {
        return None;
    }
    let mut sockets: Vec<SocketAddr> = addrs
        .iter()
        .filter_map(|a| match a {
            // A record on the LAN naming a loopback (or no real) address points each node at
            // itself: a node on this machine is reached at its LAN address like any other.
            ScopedIp::V4(v4) if !routable(IpAddr::V4(*v4.addr())) => None,
            ScopedIp::V6(v6) if !routable(IpAddr::V6(*v6.addr())) => None,
            ScopedIp::V4(v4) => Some(SocketAddr::new(IpAddr::V4(*v4.addr()), port)),
            ScopedIp::V6(v6) => {
                let scope = if v6.addr().is_unicast_link_local() {
                    v6.scope_id().index
                } else {
                    0
                };
                Some(SocketAddr::V6(SocketAddrV6::new(*v6.addr(), port, 0, scope)))
            }
            _ => None,
        })
        .collect();
    // IPv4 first, then global IPv6, then link-local: the order most likely to connect first try.
    sockets.sort_by_key(|s| match s {
        SocketAddr::V4(_) => 0,
        SocketAddr::V6(v6) if v6.scope_id() == 0 => 1,
        SocketAddr::V6(_) => 2,
    });
    sockets.dedup();
    if sockets.is_empty() {
        return None;
    }
    Some(DiscoveryEvent::Found {
        id,
        nick,
        host,
        addrs: sockets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn record(port: u16, ips: &[IpAddr]) -> Option<Vec<SocketAddr>> {
        let id = crate::identity::Identity::generate().unwrap().id().to_string();
        let v = PROTOCOL_VERSION.to_string();
        let addrs: HashSet<ScopedIp> = ips.iter().map(|ip| ScopedIp::from(*ip)).collect();
        let txt = |k: &str| match k {
            "v" => Some(v.as_str()),
            "id" => Some(id.as_str()),
            "nick" => Some("carol"),
            _ => None,
        };
        match parse_resolved("x._lanyard._tcp.local.", port, &addrs, txt)? {
            DiscoveryEvent::Found { addrs, .. } => Some(addrs),
            DiscoveryEvent::Lost { .. } => None,
        }
    }

    #[test]
    fn a_record_naming_loopback_or_a_well_known_port_is_not_dialled() {
        let lan = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 7));
        assert_eq!(record(7717, &[lan]), Some(vec![SocketAddr::new(lan, 7717)]));
        assert_eq!(record(2222, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]), None);
        assert_eq!(record(2222, &[IpAddr::V6(Ipv6Addr::LOCALHOST)]), None);
        assert_eq!(
            record(7717, &[lan, IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::UNSPECIFIED)]),
            Some(vec![SocketAddr::new(lan, 7717)])
        );
        assert_eq!(record(22, &[lan]), None, "someone's ssh");
        assert_eq!(record(0, &[lan]), None);
    }
}
