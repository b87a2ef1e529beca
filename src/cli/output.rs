//! How the faces print: JSON lines for machines, aligned tables for people. Text from peers goes
//! through [`printable`] on the way to a terminal; JSON escapes it by itself.

use serde::Serialize;

use crate::node::api::{ChatEntry, Device, Direction, OfferView, PeerInfo, Reason, TransferState, TransferView};
use crate::text::{human_bytes, is_clean, is_hostile, plural, printable};

/// Unix milliseconds now.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One JSON object per line, with a millisecond timestamp added.
pub fn json_line<T: Serialize>(value: &T) -> String {
    json_value_line(serde_json::to_value(value).unwrap_or(serde_json::Value::Null))
}

/// [`json_line`] for a value already built.
pub fn json_value_line(mut v: serde_json::Value) -> String {
    if let serde_json::Value::Object(map) = &mut v {
        map.insert("ts_ms".into(), unix_now_ms().into());
    }
    escape_beyond_json(&v.to_string())
}

/// Any value as one line of JSON, safe to show raw (see [`escape_beyond_json`]).
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    escape_beyond_json(&serde_json::to_string(value).unwrap_or_default())
}

/// serde_json escapes C0 controls only; the rest of [`is_hostile`] (C1 controls: U+009B is a
/// CSI to many terminals; bidi overrides; invisible characters) would reach a terminal that
/// shows the line raw. Outside strings JSON has no such characters, so escaping them everywhere
/// keeps the same JSON value.
fn escape_beyond_json(json: &str) -> String {
    if is_clean(json) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_hostile(c) {
            // JSON escapes UTF-16 units: a tag character (U+E00xx) takes a surrogate pair.
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{:04x}", unit));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Columns padded by character count (not bytes), after neutralising.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| printable(c).into_owned()).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

pub fn peers_table(peers: &[PeerInfo]) -> String {
    if peers.is_empty() {
        return "no peers found (on a network that blocks multicast, add one with --peer HOST:PORT)".into();
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                // A node before labels sends none.
                if p.label.is_empty() { p.nick.clone() } else { p.label.clone() },
                p.host.clone(),
                p.short_id.clone(),
                if p.online { "online".into() } else { "offline".into() },
                p.addr.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["NICK", "HOST", "ID", "STATE", "ADDRESS"], &rows)
}

/// `lanyard peers --json`: the peers, then each LocalSend device as an object marked
/// `"localsend": true` (its alias as `nick`, its derived id as `id`).
pub fn peers_json(peers: &[PeerInfo], devices: &[Device]) -> String {
    let mut all: Vec<serde_json::Value> = peers.iter().filter_map(|p| serde_json::to_value(p).ok()).collect();
    all.extend(devices.iter().map(|d| {
        serde_json::json!({
            "localsend": true, "id": crate::node::api::device_id(&d.fingerprint), "nick": d.alias,
            "model": d.model, "type": d.kind, "fingerprint": d.fingerprint, "verified": d.verified, "addr": d.addr,
        })
    }));
    json(&all)
}

/// The first 8 hex digits of a device's fingerprint, with `?` when only claimed.
pub fn short_fingerprint(d: &Device) -> String {
    let short: String = d.fingerprint.chars().take(8).collect();
    if d.verified { short } else { format!("{short}?") }
}

pub fn localsend_table(devices: &[Device]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                printable(&d.alias).into_owned(),
                printable(d.model.as_deref().unwrap_or("")).into_owned(),
                d.kind.clone(),
                short_fingerprint(d),
                d.addr.clone(),
            ]
        })
        .collect();
    table(&["LOCALSEND", "MODEL", "TYPE", "FINGERPRINT", "ADDRESS"], &rows)
}

/// " via bob" for an offer a relay passed on.
pub fn via(o: &OfferView) -> String {
    o.via.as_deref().map(|v| format!(" via {}", printable(v))).unwrap_or_default()
}

/// A waiting offer, and how to answer it.
pub fn offer_text(o: &OfferView) -> String {
    let mut names: Vec<String> = o.names.iter().map(|n| printable(n).into_owned()).collect();
    if (o.names.len() as u32) < o.files {
        names.push("…".into());
    }
    let left = o.expires_ms.saturating_sub(unix_now_ms()) / 1000;
    format!(
        "offer {} from {} ({}, {}){}: {}, {}\n  {}\n  accept: lanyard accept {}    reject: lanyard reject {}    (declined in {left} s)",
        o.transfer,
        printable(&o.nick),
        printable(&o.host),
        o.peer.short(),
        via(o),
        plural(u64::from(o.files), "file"),
        human_bytes(o.bytes),
        names.join(", "),
        o.transfer,
        o.transfer,
    )
}

/// Running and recent transfers, one row each.
pub fn transfers_table(transfers: &[TransferView]) -> String {
    let rows: Vec<Vec<String>> = transfers
        .iter()
        .map(|t| {
            let way = match t.direction {
                Direction::Send => "to",
                Direction::Receive => "from",
            };
            let state = match t.state {
                TransferState::Connecting => "connecting",
                TransferState::Waiting => "waiting",
                TransferState::Running => "running",
                TransferState::Done if t.failed == 0 => "done",
                TransferState::Done => "partly done",
                TransferState::Failed => "failed",
                TransferState::Rejected => "rejected",
                TransferState::Cancelled => "cancelled",
                TransferState::Paused => "paused",
            };
            let rate = if t.state == TransferState::Running {
                format!("{}/s", human_bytes(t.rate))
            } else {
                String::new()
            };
            let via = t.via.as_ref().map(|v| format!(" via {v}")).unwrap_or_default();
            vec![
                t.transfer.clone(),
                format!("{way} {}{via}", t.nick),
                t.name.clone(),
                state.to_string(),
                format!("{}/{}", t.files_done, t.files),
                format!("{} of {}", human_bytes(t.bytes), human_bytes(t.total)),
                format!("{}%", t.percent),
                rate,
                transfer_note(t),
            ]
        })
        .collect();
    table(&["TRANSFER", "PEER", "WHAT", "STATE", "FILES", "BYTES", "", "RATE", "NOTE"], &rows)
}

/// What a transfer's row adds to its state, without saying the state twice: where a receive
/// was saved, who said no or cancelled, why it failed.
fn transfer_note(t: &TransferView) -> String {
    // Neutralised with the rest of the table.
    let message = t.message.clone().unwrap_or_default();
    match t.state {
        TransferState::Done if t.failed == 0 && t.direction == Direction::Receive => t
            .saved_as
            .as_ref()
            .or(t.saved_to.as_ref())
            .map(|p| format!("→ {p}"))
            .unwrap_or_default(),
        // A plain no says who said it; any other refusal is said by the node's own text.
        TransferState::Rejected if matches!(t.reason, Some(Reason::Rejected) | None) => {
            let more = message
                .strip_prefix("rejected")
                .unwrap_or(&message)
                .trim_start_matches([':', ';', ' ']);
            let said = match t.direction {
                Direction::Send => format!("{} said no", t.nick),
                Direction::Receive => "you said no".into(),
            };
            if more.is_empty() { said } else { format!("{said}: {more}") }
        }
        // A cancel at this end is ours; one from the peer names it ("ada cancelled big.bin").
        TransferState::Cancelled => match (t.direction, t.reason) {
            (Direction::Send, Some(Reason::CancelledBySender)) | (Direction::Receive, Some(Reason::CancelledByReceiver)) | (_, None) => {
                "by you".into()
            }
            _ => message,
        },
        _ => message,
    }
}

/// RFC 3339 in UTC to the second (`2026-11-21T17:33:05Z`) from Unix milliseconds.
fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `YYYY-MM-DD HH:MM` in UTC from Unix milliseconds: history lines and listings.
pub fn utc_minute(ms: u64) -> String {
    rfc3339(ms)[..16].replacen('T', " ", 1)
}

/// `HH:MM:SS` in UTC, now: the time of a log line.
pub fn utc_clock_now() -> String {
    rfc3339(unix_now_ms())[11..19].to_string()
}

/// One history line for people: `time  nick: text  mark`, where the mark of our own lines is
/// `…` queued, `✓` sent, `✓✓` delivered (a room line: delivered to everyone; else a count).
/// Everything from a peer is neutralised; a multi-line text stays on one line.
pub fn history_line(e: &ChatEntry) -> String {
    let mark = e.delivery_mark().map(|m| format!("  {m}")).unwrap_or_default();
    let time = utc_minute(if e.outgoing { e.sent_ms } else { e.received_ms });
    format!("{time}  {}: {}{mark}", printable(&e.nick), printable(&e.text))
}

/// Write one line of a command's output. A reader that went away (`lanyard offers | head`)
/// ends the command quietly and successfully, as a closed pipe ends other Unix tools; any
/// other failure to write is one line on stderr.
pub fn line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if is_closed_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("lanyard: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// The reader of our output went away.
pub fn is_closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::api::{Delivery, PeerId, Recipient};

    fn entry(nick: &str, text: &str, state: Option<Delivery>) -> ChatEntry {
        let peer = PeerId::parse("abcdefghijklmnop").unwrap();
        ChatEntry {
            id: "0".repeat(32),
            conversation: peer.to_string(),
            from: peer.clone(),
            nick: nick.into(),
            outgoing: state.is_some(),
            room: false,
            sent_ms: 86_400_000 + 3_600_000 + 60_000,
            received_ms: 86_400_000 + 3_600_000 + 60_000,
            text: text.into(),
            state,
            recipients: state
                .map(|state| Recipient {
                    peer,
                    state,
                    reason: Some("too many messages".into()),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn transfer_rows_say_each_thing_once_and_name_who_and_what() {
        let peer = PeerId::parse("abcdefghijklmnop").unwrap();
        let view = |direction, state, message: Option<&str>| TransferView {
            transfer: "00000000000000aa".into(),
            peer: peer.clone(),
            nick: "carol".into(),
            direction,
            group: None,
            state,
            file: "big.bin".into(),
            file_bytes: 0,
            file_size: 45,
            files_done: 1,
            files: 1,
            bytes: 45,
            resumed: 0,
            total: 45,
            percent: 100,
            rate: 0,
            eta_secs: None,
            failed: 0,
            message: message.map(str::to_string),
            saved_to: Some("/dl".into()),
            name: "big.bin".into(),
            via: Some("bob".into()),
            saved_as: Some("/dl/big (1).bin".into()),
            failures: Vec::new(),
            reason: None,
            started_ms: 0,
            ended_ms: None,
        };
        use {Direction::*, TransferState::*};
        let coded = |direction, state, message: &str, code| TransferView {
            reason: Some(code),
            ..view(direction, state, Some(message))
        };
        assert_eq!(transfer_note(&coded(Send, Rejected, "rejected", Reason::Rejected)), "carol said no");
        assert_eq!(
            transfer_note(&coded(Send, Rejected, "rejected; carol says: not now", Reason::Rejected)),
            "carol said no: carol says: not now"
        );
        assert_eq!(
            transfer_note(&coded(Send, Rejected, "expired: nobody answered in time", Reason::Expired)),
            "expired: nobody answered in time"
        );
        assert_eq!(
            transfer_note(&coded(Send, Cancelled, "cancelled", Reason::CancelledBySender)),
            "by you"
        );
        assert_eq!(
            transfer_note(&coded(Receive, Cancelled, "ada cancelled big.bin", Reason::CancelledBySender)),
            "ada cancelled big.bin"
        );
        assert_eq!(transfer_note(&view(Receive, Done, None)), "→ /dl/big (1).bin");
        let table = transfers_table(&[view(Receive, Done, None)]);
        assert!(table.contains("from carol via bob") && table.contains("big.bin"), "{table}");
    }

    #[test]
    fn history_lines_neutralise_and_mark() {
        let evil = entry("ev\u{1b}]0;pwned\u{7}il", "hi\u{1b}[2J\nthere\u{202e}", None);
        let line = history_line(&evil);
        assert!(!line.chars().any(|c| c.is_control() || c == '\u{202e}'), "{line:?}");
        assert!(
            line.starts_with("1970-01-02 01:01  ev\\u{1b}]0;pwned\\u{7}il: hi\\u{1b}[2J"),
            "{line}"
        );
        assert!(history_line(&entry("me", "x", Some(Delivery::Delivered))).ends_with("x  ✓✓"));
        assert!(history_line(&entry("me", "x", Some(Delivery::Sent))).ends_with("x  ✓"));
        assert!(history_line(&entry("me", "x", Some(Delivery::Queued))).ends_with("x  …"));
        assert!(history_line(&entry("me", "x", Some(Delivery::Refused))).ends_with("x  ✗ refused: too many messages"));
        let json = json_line(&evil);
        assert!(!json.chars().any(|c| c.is_control() || c == '\u{202e}'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["text"], evil.text, "JSON keeps the text as received");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc_minute(1_767_225_599_000), "2025-12-31 23:59");
        assert_eq!(utc_minute(1_763_733_600_000), "2025-11-21 14:00");
        assert_eq!(utc_clock_now().len(), 8);
    }

    #[test]
    fn table_aligns_and_neutralises() {
        let t = table(
            &["A", "B"],
            &[vec!["é\u{1b}[2J".into(), "x".into()], vec!["long name".into(), "y".into()]],
        );
        assert!(!t.contains('\u{1b}'));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find('B'), lines[2].find('y'));
    }

    #[test]
    fn json_lines_escape_control_characters() {
        #[derive(Serialize)]
        struct E {
            nick: String,
        }
        let line = json_line(&E {
            nick: "a\u{1b}[31m\nb".into(),
        });
        assert!(!line.contains('\u{1b}') && !line.contains('\n'));
        assert!(line.contains("ts_ms"));
    }

    #[test]
    fn json_lines_escape_the_whole_hostile_set_and_keep_the_value() {
        #[derive(Serialize)]
        struct E {
            nick: String,
        }
        let nick = "carol\u{200b}\u{9b}\u{202e}\u{e0041}\u{ad}🎉".to_string();
        let line = json_line(&E { nick: nick.clone() });
        assert!(crate::text::is_clean(&line), "{line}");
        assert!(line.contains("\\u200b") && line.contains("\\udb40\\udc41"), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["nick"], nick);
        let array = json(&[E { nick: nick.clone() }]);
        assert!(crate::text::is_clean(&array), "{array}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&array).unwrap()[0]["nick"], nick);
    }
}
