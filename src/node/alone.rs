//! A serving node that finds nobody says once what usually stands in the way, instead of
//! leaving an empty peer list to explain itself.

use std::sync::Arc;
use std::time::Duration;

use super::{Event, Shared};

/// How long a node may be alone after it starts before it says what to check.
pub const ALONE_AFTER: Duration = Duration::from_secs(10);

/// Waits [`ALONE_AFTER`]; if no peer came online by then, one [`Event::Warning`] with the hint.
pub(crate) async fn hint_if_alone(shared: Arc<Shared>) {
    let mut changed = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + ALONE_AFTER;
    loop {
        changed.borrow_and_update();
        if shared.peers().online_count() > 0 {
            return;
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let port = shared.listen_addr.map_or(0, |a| a.port());
    let message = hint(shared.config.mdns, !shared.config.manual_peers.is_empty(), port);
    shared.emit(Event::Warning { message });
}

fn hint(mdns: bool, manual_peers: bool, port: u16) -> String {
    let secs = ALONE_AFTER.as_secs();
    let tcp = format!("TCP port {port}");
    let doctor = "`lanyard doctor` checks what it can from this machine";
    match (mdns, manual_peers) {
        (true, _) => format!(
            "no peer found in {secs} s: check that the firewall, here and on the other machines, lets multicast DNS \
             (UDP port 5353) and {tcp} through; where multicast cannot pass, name one machine with --peer HOST:PORT; {doctor}"
        ),
        (false, true) => format!(
            "no peer found in {secs} s: check that each --peer address is right and that the firewall lets {tcp} \
             (and the port of each --peer) through; {doctor}"
        ),
        (false, false) => format!(
            "no peer found in {secs} s: mDNS is off (--no-mdns), so only a --peer HOST:PORT finds others (or a peer \
             that dials this machine's {tcp}); {doctor}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_what_to_check() {
        let with_mdns = hint(true, false, 7718);
        for part in ["UDP port 5353", "TCP port 7718", "--peer HOST:PORT", "lanyard doctor"] {
            assert!(with_mdns.contains(part), "{part}: {with_mdns}");
        }
        assert!(hint(false, false, 7717).contains("mDNS is off"));
        assert!(hint(false, true, 7717).contains("each --peer address"));
    }
}
