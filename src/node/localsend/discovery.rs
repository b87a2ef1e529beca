//! Finding LocalSend devices and being found: our announcement on the multicast group (a burst
//! at start), and each device's announcement answered by registering with it over HTTPS, its
//! certificate pinned to the fingerprint it announced (as 1.18 does). Only with multicast on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Device, LANYARD_MODEL, addr_text};
use crate::limits::LOCALSEND_ANSWERS_PER_SEC;
use crate::net::localsend::cert::same_fingerprint;
use crate::net::localsend::dto::{Announcement, DeviceInfo};
use crate::net::localsend::multicast::Multicast;
use crate::node::Shared;
use crate::store::unix_now_ms;

/// When our announcement goes out after start: LocalSend's own burst.
const BURST: [Duration; 3] = [Duration::from_millis(100), Duration::from_millis(500), Duration::from_secs(2)];

/// Our announcement: how we describe ourselves, with our port, and the flag that asks for
/// answers.
fn announcement(shared: &Shared, announce: bool) -> Option<Announcement> {
    let ls = shared.localsend.as_ref()?;
    let mut info = ls.info(&shared.nick());
    info.port = Some(ls.port);
    info.protocol = Some("https".into());
    Some(Announcement {
        info,
        announce: Some(announce),
        announcement: Some(announce),
    })
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(ls) = shared.localsend.as_ref() else { return };
    let group = match Multicast::open(crate::net::localsend::DEFAULT_PORT) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::warn!("LocalSend discovery is off: {e:#}");
            return;
        }
    };
    let burst = {
        let (shared, group) = (shared.clone(), group.clone());
        async move {
            let start = tokio::time::Instant::now();
            for at in BURST {
                tokio::time::sleep_until(start + at).await;
                if let Some(a) = announcement(&shared, true)
                    && let Err(e) = group.send(&a).await
                {
                    tracing::debug!("LocalSend announcement: {e:#}");
                }
            }
        }
    };
    shared.tracker.spawn("localsend::announce", burst);
    let mut window = (Instant::now(), 0u32);
    loop {
        let (a, from) = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = group.recv() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!("LocalSend multicast: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if same_fingerprint(&a.info.fingerprint, &ls.cert.fingerprint) || a.info.fingerprint.is_empty() {
            continue;
        }
        // Another lanyard: a peer that mDNS finds, not a LocalSend device to list twice. (A
        // device that claims to be one only hides itself.)
        if a.info.device_model.as_deref() == Some(LANYARD_MODEL) {
            continue;
        }
        // Known only by claim until its certificate answers to the fingerprint.
        super::remember(&shared, claimed(&a.info, from));
        if !a.wants_answer() {
            continue;
        }
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            window = (now, 0);
        }
        if window.1 >= LOCALSEND_ANSWERS_PER_SEC {
            continue;
        }
        window.1 += 1;
        let (s, group) = (shared.clone(), group.clone());
        shared.tracker.spawn("localsend::answer", async move {
            let Some(mine) = announcement(&s, false) else { return };
            let port = a.info.port.unwrap_or(crate::net::localsend::DEFAULT_PORT);
            let to = SocketAddr::new(from.ip(), port);
            if let Err(e) = super::send::register(&s, to, Some(&a.info.fingerprint), &mine.info).await {
                // As 1.17 does: a device whose API we cannot reach (plain HTTP, none, a
                // firewall) hears us on the group instead, in a reply that asks for none.
                tracing::debug!("LocalSend register with {to}: {e:#}; answering on the group");
                if let Err(e) = group.send(&mine).await {
                    tracing::debug!("LocalSend multicast reply: {e:#}");
                }
            }
        });
    }
}

fn claimed(info: &DeviceInfo, from: SocketAddr) -> Device {
    Device {
        alias: info.alias.clone(),
        model: info.device_model.clone(),
        kind: info.kind().to_string(),
        fingerprint: info.fingerprint.clone(),
        verified: false,
        addr: addr_text(from.ip(), info.port),
        seen_ms: unix_now_ms(),
    }
}
