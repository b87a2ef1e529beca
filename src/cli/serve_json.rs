//! `serve --json`: a contract of its own for scripts, versioned, documented in
//! `docs/serve-json.md`, and mapped here from the node's events (which may change freely).
//!
//! Every line is one JSON object with `v` (this format's version), `event`, `seq` (the node's
//! event number; it only grows, and only a `lagged` line says events were lost) and
//! `ts_ms` (Unix milliseconds when it was written). Fields are only ever added within a version.

use serde::Serialize;
use serde_json::{Value, json};

use super::output::{json, json_value_line, unix_now_ms};
use crate::node::api::PeerId;
use crate::node::events::{Envelope, Event};

/// The version of this format.
pub const VERSION: u64 = 1;

/// The lines for one event (none for events scripts don't see; several for a batch of files).
pub fn lines(envelope: &Envelope) -> Vec<String> {
    if let Event::FilesReceived { transfer, peer, files } = &envelope.event {
        let ts_ms = unix_now_ms();
        return files
            .iter()
            .map(|f| {
                json(&FileReceivedLine {
                    event: "file_received",
                    path: &f.path,
                    peer,
                    seq: envelope.seq,
                    size: f.size,
                    transfer,
                    ts_ms,
                    v: VERSION,
                })
            })
            .collect();
    }
    objects(&envelope.event)
        .into_iter()
        .map(|(name, mut body)| {
            if let Value::Object(map) = &mut body {
                map.insert("v".into(), VERSION.into());
                map.insert("event".into(), name.into());
                map.insert("seq".into(), envelope.seq.into());
            }
            json_value_line(body)
        })
        .collect()
}

/// One `file_received` line, written straight from a struct: a batch holds up to hundreds of
/// files, and a JSON map built per file cost more than receiving the file. The fields are in
/// the order every other line's map writes them (sorted), so the line is the same.
#[derive(Serialize)]
struct FileReceivedLine<'a> {
    event: &'static str,
    path: &'a str,
    peer: &'a PeerId,
    seq: u64,
    size: u64,
    transfer: &'a str,
    ts_ms: u64,
    v: u64,
}

/// A line saying `missed` events were dropped because stdout was too slow.
pub fn lagged(missed: u64) -> String {
    json_value_line(json!({ "v": VERSION, "event": "lagged", "missed": missed }))
}

fn objects(event: &Event) -> Vec<(&'static str, Value)> {
    let one = |name, v| vec![(name, v)];
    match event {
        Event::Listening { id, nick, addr } => one("listening", json!({ "id": id, "nick": nick, "addr": addr })),
        Event::PeerDiscovered { id, nick, host } => one("peer_discovered", json!({ "id": id, "nick": nick, "host": host })),
        Event::PeerLost { id } => one("peer_lost", json!({ "id": id })),
        Event::LocalSendDevice { device: d } => one(
            "localsend_device",
            json!({ "alias": d.alias, "model": d.model, "type": d.kind, "fingerprint": d.fingerprint, "verified": d.verified, "addr": d.addr }),
        ),
        Event::PeerUp { id, nick, host, addr } => one("peer_up", json!({ "id": id, "nick": nick, "host": host, "addr": addr })),
        Event::PeerDown { id, nick, reason } => one("peer_down", json!({ "id": id, "nick": nick, "reason": reason })),
        Event::PeerRenamed { id, old, new } => one("peer_renamed", json!({ "id": id, "old": old, "new": new })),
        Event::PeerForgotten { id } => one("peer_forgotten", json!({ "id": id })),
        Event::TrustChanged { id, trusted } => one("trust_changed", json!({ "id": id, "trusted": trusted })),
        Event::Warning { message } => one("warning", json!({ "message": message })),
        Event::Deposit {
            deposit,
            name,
            change,
            peer,
        } => one(
            "deposit",
            json!({ "deposit": deposit, "name": name, "change": change, "peer": peer }),
        ),
        Event::ChatReceived {
            id,
            from,
            nick,
            room,
            text,
            sent_ms,
            ..
        } => one(
            "chat_received",
            json!({ "id": id, "from": from, "nick": nick, "room": room, "text": text, "sent_ms": sent_ms }),
        ),
        Event::ChatQueued {
            id,
            to,
            recipients,
            text,
            sent_ms,
        } => one(
            "chat_queued",
            json!({ "id": id, "to": to, "recipients": recipients, "text": text, "sent_ms": sent_ms }),
        ),
        Event::ChatSent { to, ids } => one("chat_sent", json!({ "to": to, "ids": ids })),
        Event::ChatRequeued { to, ids } => one("chat_requeued", json!({ "to": to, "ids": ids })),
        Event::ChatDelivered { id, to } => one("chat_delivered", json!({ "id": id, "to": to })),
        Event::ChatRefused { id, to, reason } => one("chat_refused", json!({ "id": id, "to": to, "reason": reason })),
        Event::ChatRead { conversation } => one("chat_read", json!({ "conversation": conversation })),
        Event::Offer(o) => one(
            "offer",
            json!({
                "transfer": o.transfer, "peer": o.peer, "nick": o.nick, "host": o.host, "via": o.via,
                "files": o.files, "bytes": o.bytes, "names": o.names, "expires_ms": o.expires_ms,
                "accept": format!("lanyard accept {}", o.transfer),
                "reject": format!("lanyard reject {}", o.transfer),
            }),
        ),
        Event::OfferClosed { transfer, reason } => one("offer_closed", json!({ "transfer": transfer, "reason": reason })),
        Event::TransferStarted(t) => one(
            "transfer_started",
            json!({
                "transfer": t.transfer, "peer": t.peer, "nick": t.nick, "direction": t.direction,
                "group": t.group, "state": t.state,
            }),
        ),
        // The end of a transfer is its own line (done / error / cancelled).
        Event::Progress(p) if p.state.is_finished() => Vec::new(),
        Event::Progress(p) => one(
            "progress",
            json!({
                "transfer": p.transfer, "peer": p.peer, "direction": p.direction, "state": p.state,
                "file": p.file, "file_bytes": p.file_bytes, "file_size": p.file_size,
                "files_done": p.files_done, "files": p.files, "bytes": p.bytes, "total": p.total,
                "percent": p.percent, "rate": p.rate, "eta_secs": p.eta_secs, "resumed": p.resumed,
                "group": p.group, "name": p.name, "via": p.via,
            }),
        ),
        // Written by `lines` directly.
        Event::FilesReceived { .. } => Vec::new(),
        // The whole record again, for screens; each change is its own `deposit` line.
        Event::Deposits { .. } => Vec::new(),
        Event::Done {
            transfer,
            peer,
            direction,
            files,
            bytes,
            failed,
        } => one(
            "done",
            json!({
                "transfer": transfer, "peer": peer, "direction": direction,
                "files": files, "bytes": bytes, "failed": failed,
            }),
        ),
        Event::Error {
            transfer,
            peer,
            direction,
            message,
            code,
        } => one(
            "error",
            json!({ "transfer": transfer, "peer": peer, "direction": direction, "message": message, "code": code }),
        ),
        Event::Cancelled {
            transfer,
            peer,
            direction,
            reason,
            code,
        } => one(
            "cancelled",
            json!({ "transfer": transfer, "peer": peer, "direction": direction, "reason": reason, "code": code }),
        ),
    }
}

/// Whether a transfer state is one scripts see as `progress` (kept for the docs' sake: every
/// state but the finished ones).
#[cfg(test)]
fn shown_as_progress(state: crate::node::api::TransferState) -> bool {
    !state.is_finished()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::api::{Direction, PeerId, TransferState};
    use crate::node::events::ReceivedFile;

    fn peer() -> PeerId {
        PeerId::parse("aaaaaaaaaaaaaaaa").expect("a valid id")
    }

    #[test]
    fn every_line_is_versioned_and_numbered() {
        let line = &lines(&Envelope {
            seq: 7,
            event: Event::PeerLost { id: peer() },
        })[0];
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["event"], "peer_lost");
        assert!(v["ts_ms"].is_u64());
        assert!(line.contains("\"event\":\"peer_lost\""), "scripts grep for this: {line}");
    }

    #[test]
    fn a_batch_of_received_files_is_one_line_each() {
        let files = (0..3)
            .map(|i| ReceivedFile {
                path: format!("/d/{i}"),
                size: i,
            })
            .collect();
        let out = lines(&Envelope {
            seq: 1,
            event: Event::FilesReceived {
                transfer: "t".into(),
                peer: peer(),
                files,
            },
        });
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|l| l.contains("\"event\":\"file_received\"")));
        // The same line a JSON map would give: the same keys, in the same (sorted) order.
        let v: Value = serde_json::from_str(&out[2]).unwrap();
        let ts = v["ts_ms"].as_u64().unwrap();
        let map = json!({
            "transfer": "t", "peer": peer(), "path": "/d/2", "size": 2,
            "v": VERSION, "event": "file_received", "seq": 1, "ts_ms": ts,
        });
        assert_eq!(out[2], map.to_string());
    }

    #[test]
    fn finished_views_are_not_progress() {
        assert!(shown_as_progress(TransferState::Running));
        assert!(!shown_as_progress(TransferState::Done));
        let done = Event::Done {
            transfer: "t".into(),
            peer: peer(),
            direction: Direction::Send,
            files: 1,
            bytes: 2,
            failed: 0,
        };
        assert!(lines(&Envelope { seq: 1, event: done })[0].contains("\"event\":\"done\""));
    }
}
