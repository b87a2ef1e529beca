//! How the faces print: JSON lines for machines, aligned tables for people. Text from peers goes
//! through [`printable`] on the way to a terminal; JSON escapes it by itself.

use serde::Serialize;

use crate::node::PeerInfo;
use crate::store::unix_now_ms;
use crate::ui::text::printable;

/// One JSON object per line, with a millisecond timestamp added.
pub fn json_line<T: Serialize>(value: &T) -> String {
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut v {
        map.insert("ts_ms".into(), unix_now_ms().into());
    }
    v.to_string()
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
                p.nick.clone(),
                p.host.clone(),
                p.short_id.clone(),
                if p.online { "online".into() } else { "offline".into() },
                p.addr.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["NICK", "HOST", "ID", "STATE", "ADDRESS"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
