//! `peers --scan`: LocalSend devices whose multicast does not reach us (blocked, another
//! VLAN's group), found as LocalSend's own "legacy" discovery finds them — a register POST to
//! every host of each interface's /24, on LocalSend's port and ours, a few at a time, briefly
//! each. Loopback is 127.0.0.1 alone. Only on demand: a scan touches every machine around.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Device, LANYARD_MODEL};
use crate::limits::{LOCALSEND_SCAN_AT_ONCE, LOCALSEND_SCAN_MAX_TARGETS, LOCALSEND_SCAN_PER_SEC, LOCALSEND_SCAN_TIMEOUT};
use crate::net::localsend::cert::same_fingerprint;
use crate::node::Shared;

/// The addresses a scan probes, given each interface's IPv4 address and netmask: the hosts of
/// its network narrowed to its /24 (never wider), ours left out; a loopback interface gives
/// 127.0.0.1 alone (a device beside us on another port). Each on every port of `ports`, at
/// most [`LOCALSEND_SCAN_MAX_TARGETS`].
pub(crate) fn targets(interfaces: &[(Ipv4Addr, Ipv4Addr)], ports: &[u16]) -> Vec<SocketAddr> {
    let mut hosts: Vec<Ipv4Addr> = Vec::new();
    for &(ip, mask) in interfaces {
        if ip.is_loopback() {
            hosts.push(Ipv4Addr::LOCALHOST);
            continue;
        }
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            continue;
        }
        let prefix = u32::from(mask).leading_ones().max(24);
        if prefix >= 31 {
            continue;
        }
        let net_mask = u32::MAX << (32 - prefix);
        let net = u32::from(ip) & net_mask;
        let broadcast = net | !net_mask;
        hosts.extend((net + 1..broadcast).map(Ipv4Addr::from).filter(|h| *h != ip));
    }
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|h| seen.insert(*h));
    let mut ports: Vec<u16> = ports.iter().copied().filter(|p| *p != 0).collect();
    ports.sort_unstable();
    ports.dedup();
    hosts
        .into_iter()
        .flat_map(|h| ports.iter().map(move |p| SocketAddr::new(IpAddr::V4(h), *p)))
        .take(LOCALSEND_SCAN_MAX_TARGETS)
        .collect()
}

/// This machine's IPv4 addresses with their netmasks.
fn interfaces() -> Vec<(Ipv4Addr, Ipv4Addr)> {
    match if_addrs::get_if_addrs() {
        Ok(all) => all
            .into_iter()
            .filter_map(|i| match i.addr {
                if_addrs::IfAddr::V4(v4) => Some((v4.ip, v4.netmask)),
                if_addrs::IfAddr::V6(_) => None,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list this machine's addresses to scan: {e}");
            Vec::new()
        }
    }
}

/// Probe every target, paced; the LocalSend devices that answered (lanyard nodes are not
/// listed as such: mDNS and peer exchange find those).
pub(crate) async fn scan(shared: &Arc<Shared>) -> anyhow::Result<Vec<Device>> {
    let Some(ls) = shared.localsend.as_ref() else {
        anyhow::bail!("LocalSend is off here (--no-localsend): there is nothing to scan for")
    };
    let configured = shared.config.localsend.as_ref().map_or(0, |c| c.listen.port());
    // Not the port ours moved to when the configured one was taken: others are on theirs.
    let targets = targets(&interfaces(), &[crate::net::localsend::DEFAULT_PORT, configured]);
    let mut mine = ls.info(&shared.nick());
    mine.port = Some(ls.port);
    mine.protocol = Some("https".into());
    let mine = Arc::new(mine);
    let gap = Duration::from_secs(1) / LOCALSEND_SCAN_PER_SEC;
    let mut next = tokio::time::Instant::now();
    let mut running = JoinSet::new();
    let mut found = Vec::new();
    let take = |r: Result<Option<Device>, tokio::task::JoinError>, found: &mut Vec<Device>| {
        if let Ok(Some(d)) = r {
            found.push(d);
        }
    };
    for to in targets {
        while running.len() >= LOCALSEND_SCAN_AT_ONCE {
            let Some(r) = running.join_next().await else { break };
            take(r, &mut found);
        }
        tokio::time::sleep_until(next).await;
        next += gap;
        let (s, mine) = (shared.clone(), mine.clone());
        running.spawn(async move {
            let answered = tokio::time::timeout(LOCALSEND_SCAN_TIMEOUT, super::send::exchange(&s, to, None, &mine)).await;
            let device = match answered {
                Ok(Ok(d)) => d,
                _ => return None,
            };
            let ours = s
                .localsend
                .as_ref()
                .is_some_and(|ls| same_fingerprint(&device.fingerprint, &ls.cert.fingerprint));
            if ours || device.model.as_deref() == Some(LANYARD_MODEL) {
                return None;
            }
            super::remember(&s, device.clone());
            Some(device)
        });
    }
    while let Some(r) = running.join_next().await {
        take(r, &mut found);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_covers_each_interfaces_24_and_loopback_is_127_0_0_1_alone() {
        let lo = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(255, 0, 0, 0));
        // A /16 is narrowed to our /24; ourselves, the network and the broadcast are left out.
        let wide = (Ipv4Addr::new(10, 99, 7, 20), Ipv4Addr::new(255, 255, 0, 0));
        let t = targets(&[lo, wide], &[53317, 53317, 0]);
        assert_eq!(t.len(), 1 + 253);
        assert_eq!(t[0], "127.0.0.1:53317".parse().unwrap());
        assert!(
            t[1..]
                .iter()
                .all(|a| matches!(a.ip(), IpAddr::V4(v) if v.octets()[..3] == [10, 99, 7]))
        );
        for left_out in ["10.99.7.0:53317", "10.99.7.20:53317", "10.99.7.255:53317"] {
            assert!(!t.contains(&left_out.parse().unwrap()), "{left_out}");
        }
        // A narrower net stays narrow; two ports double it; a point-to-point /32 gives none.
        let narrow = (Ipv4Addr::new(192, 168, 1, 5), Ipv4Addr::new(255, 255, 255, 252));
        let p2p = (Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(255, 255, 255, 255));
        let t = targets(&[narrow, p2p], &[53317, 7718]);
        assert_eq!(t, ["192.168.1.6:7718".parse().unwrap(), "192.168.1.6:53317".parse().unwrap()]);
        // The same /24 from two interfaces counts once; the bound holds.
        let twice = targets(&[wide, (Ipv4Addr::new(10, 99, 7, 21), Ipv4Addr::new(255, 255, 255, 0))], &[1]);
        assert_eq!(twice.len(), 254);
        let many: Vec<_> = (0..40u8)
            .map(|i| (Ipv4Addr::new(10, i, 0, 1), Ipv4Addr::new(255, 255, 255, 0)))
            .collect();
        assert_eq!(targets(&many, &[1]).len(), LOCALSEND_SCAN_MAX_TARGETS);
    }
}
