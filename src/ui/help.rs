//! The help overlay's text, laid out for a width: the keymap table grouped by where the keys
//! work, each description wrapped under its own column, then a legend of every symbol the
//! screen draws. Plain data, so `update` knows how far help scrolls and the view only paints.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::keys::{BINDINGS, Scope, keys_label};

/// The keys column's width at most: wider key lists wrap within it.
const KEYS_COLUMN: usize = 14;

/// What a piece of a help row is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Heading,
    Keys,
    Text,
    Symbol,
}

pub type Row = Vec<(Part, String)>;

/// Every symbol the panes draw, with what it means.
pub const LEGEND: &[(&str, &str)] = &[
    ("●", "online"),
    ("○", "offline"),
    ("◌", "found on the network, not connected yet"),
    ("★", "trusted: files accepted without asking"),
    ("⇅", "a transfer with this peer is running"),
    ("+", "marked (Space)"),
    ("3", "unread lines"),
    ("…", "queued: waits for the peer"),
    ("✓", "sent"),
    ("✓✓", "delivered"),
    ("✓ 3/5", "a room line delivered to 3 of 5"),
    ("late", "a room line that reached you after you were away"),
    ("✗", "refused, with the reason"),
    ("→ ←", "sending / receiving"),
    ("?", "an offer waits for your answer"),
    ("█░", "progress"),
    ("▸", "just received (in the download dir)"),
    ("✓ ◌ ✗", "a deposit's copy: verified / its holder offline / lost"),
    ("2/3", "a deposit's copies verified / wanted"),
];

/// The overlay's place on a screen of `width`×`height`.
pub fn area(width: u16, height: u16) -> Rect {
    let screen = Rect::new(0, 0, width, height);
    let [row] = Layout::vertical([Constraint::Length(height.saturating_sub(2))])
        .flex(Flex::Center)
        .areas(screen);
    let [area] = Layout::horizontal([Constraint::Length(90.min(width))])
        .flex(Flex::Center)
        .areas(row);
    area
}

/// Rows inside the overlay's border, for a screen of `width`×`height`: (width, rows).
pub fn inner(width: u16, height: u16) -> (usize, usize) {
    let a = area(width, height);
    (a.width.saturating_sub(2) as usize, a.height.saturating_sub(2) as usize)
}

/// How far help can scroll on this screen: its last row at the bottom, the "more" mark aside.
pub fn max_scroll(width: u16, height: u16) -> usize {
    let (w, h) = inner(width, height);
    rows(w).len().saturating_sub(h)
}

/// The whole help, laid out for `width` columns.
pub fn rows(width: usize) -> Vec<Row> {
    let keys_w = BINDINGS
        .iter()
        .map(|b| keys_label(b).width())
        .max()
        .unwrap_or(8)
        .min(KEYS_COLUMN)
        .min(width / 3)
        + 2;
    let text_w = width.saturating_sub(keys_w + 1).max(8);
    let mut out: Vec<Row> = Vec::new();
    let mut scope: Option<Scope> = None;
    // Grouped by scope, each group where it first appears in the table.
    let mut order: Vec<Scope> = Vec::new();
    for b in BINDINGS {
        if !order.contains(&b.scope) {
            order.push(b.scope);
        }
    }
    for group in order {
        for b in BINDINGS.iter().filter(|b| b.scope == group) {
            if scope != Some(group) {
                if !out.is_empty() {
                    out.push(Vec::new());
                }
                out.push(vec![(
                    Part::Heading,
                    fit_keys(group.heading(), width.saturating_sub(1)).trim_end().to_string(),
                )]);
                scope = Some(group);
            }
            // Both columns wrap, each under itself.
            let keys = wrap(&keys_label(b), keys_w.saturating_sub(1));
            let text = wrap(b.help, text_w);
            for i in 0..keys.len().max(text.len()) {
                let k = keys.get(i).map_or(String::new(), |k| k.clone());
                let t = text.get(i).cloned().unwrap_or_default();
                out.push(vec![(Part::Keys, fit_keys(&k, keys_w)), (Part::Text, t)]);
            }
        }
    }
    out.push(Vec::new());
    out.push(vec![(Part::Heading, " What the symbols mean".to_string())]);
    // The legend flows: as many "symbol meaning" pairs on a row as fit.
    let mut row: Row = Vec::new();
    let mut used = 0;
    for (symbol, meaning) in LEGEND {
        let cell = symbol.width() + 1 + meaning.width() + 3;
        if used > 0 && used + cell > width {
            out.push(std::mem::take(&mut row));
            used = 0;
        }
        let meaning = fit_keys(meaning, width.saturating_sub(symbol.width() + 4));
        row.push((Part::Symbol, format!(" {symbol}")));
        row.push((Part::Text, format!("{}  ", meaning.trim_end())));
        used += cell;
    }
    if !row.is_empty() {
        out.push(row);
    }
    out
}

/// The keys column: padded, or cut with … when a label is wider than the column.
fn fit_keys(label: &str, width: usize) -> String {
    let mut s = String::new();
    let mut used = 0;
    for ch in label.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w > width.saturating_sub(1) {
            s.push('…');
            used += 1;
            break;
        }
        s.push(ch);
        used += w;
    }
    format!(" {s}{}", " ".repeat(width.saturating_sub(used)))
}

/// Words into rows of at most `width` columns (a word longer than a row is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut rows = vec![String::new()];
    for word in text.split(' ') {
        let last = rows.last_mut().map_or(0, |r| r.width());
        if last > 0 && last + 1 + word.width() > width {
            rows.push(String::new());
        }
        if let Some(r) = rows.last_mut() {
            if !r.is_empty() {
                r.push(' ');
            }
            r.push_str(word);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_wrap_under_their_own_column_and_every_row_fits() {
        for width in [40, 76, 88] {
            let all = rows(width);
            for row in &all {
                let w: usize = row.iter().map(|(_, s)| s.width()).sum();
                assert!(w <= width + 2, "{w} > {width}: {row:?}");
            }
            // A continuation row starts with blanks as wide as the keys column.
            let cont = all
                .iter()
                .find(|r| r.len() == 2 && r[0].0 == Part::Keys && r[0].1.trim().is_empty())
                .expect("some description wraps at this width");
            assert!(cont[0].1.len() > 2, "{cont:?}");
        }
        let text: String = rows(76).iter().flatten().map(|(_, s)| s.as_str()).collect();
        for (symbol, _) in LEGEND {
            assert!(text.contains(symbol), "{symbol}");
        }
        assert!(max_scroll(80, 24) > 0, "at 80x24 help is longer than the screen");
    }
}
