//! Drawing: `draw(&App)` reads the state and paints one frame; it never touches the disk or the
//! network and never changes the state. Every string from a peer goes through [`clean`] (hostile
//! characters made visible, then fitted to its cell).
//!
//! Its files: `mod.rs` (the frame, the footer, [`clean`]), `lists` (Peers, the file columns,
//! Transfers), `deposits` (the Deposits column: my deposits, a mark per copy), `chat` (the Chat
//! pane), `overlay` (the offer dialog, help, prompts), `theme` (colours, or none).

mod chat;
mod deposits;
mod lists;
mod overlay;
mod theme;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

pub use theme::Theme;

use super::app::App;
use super::keys::{Action, Pane, footer};
use super::layout::Areas;
use crate::text::printable;

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let areas = Areas::new(frame.area(), app.focus);
    lists::peers(frame, app, theme, areas.peers);
    chat::chat(frame, app, theme, areas.chat);
    lists::files(frame, app, theme, &areas);
    lists::transfers(frame, app, theme, areas.transfers);
    footer_line(frame, app, theme, areas.footer);
    overlay::overlay(frame, app, theme);
}

/// A pane's frame: its title, brighter when focused.
fn block<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused { BorderType::Thick } else { BorderType::Rounded })
        .border_style(if focused { theme.focus } else { theme.dim })
        .title(title)
}

fn footer_line(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let mut spans = Vec::new();
    let mut used = 0;
    for (key, binding) in footer(app.context()) {
        // Before a send, the footer says who gets it.
        let what = match binding.action {
            Action::SendFiles => match app.recipients_text((area.width as usize / 2).max(12)) {
                Some(names) => format!("send to {names}"),
                None => "send (pick a peer)".to_string(),
            },
            _ => binding.short.to_string(),
        };
        // Whole keys only: a narrow terminal shows fewer, `?` lists them all.
        let (k, w) = (format!(" {key} "), format!("{what} "));
        if used + k.width() + w.width() > area.width as usize {
            break;
        }
        used += k.width() + w.width();
        spans.push(Span::styled(k, theme.key));
        spans.push(Span::styled(w, theme.dim));
    }
    if let Some(status) = app.status_text() {
        let room = (area.width as usize).saturating_sub(used + 2);
        if room > 8 {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(fit(&printable(status), room), theme.status));
        }
    } else if app.attached {
        let room = (area.width as usize).saturating_sub(used + 1);
        let note = if room >= 28 { "attached to the running node" } else { "attached" };
        spans.push(Span::styled(format!(" {}", fit(note, room)), theme.dim));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Text from the network, made safe and fitted to `width` columns.
pub fn clean(s: &str, width: usize) -> String {
    fit(&printable(s), width)
}

/// At most `width` columns; a long name keeps its start and its extension (`long-na….pdf`).
pub fn fit(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let ext = s.rfind('.').filter(|&i| i > 0 && s.len() - i <= 8).map(|i| &s[i..]).unwrap_or("");
    let keep_end = if ext.width() + 2 <= width { ext } else { "" };
    let room = width - keep_end.width() - 1;
    let mut head = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        head.push(c);
    }
    format!("{head}…{keep_end}")
}

/// At most `width` columns, the middle given up: `verylon…nick`.
pub fn middle(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let room = width.saturating_sub(1);
    let (head_w, tail_w) = (room - room / 2, room / 2);
    let mut head = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > head_w {
            break;
        }
        used += w;
        head.push(c);
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > tail_w {
            break;
        }
        used += w;
        tail.push(c);
    }
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

/// A plain bar of `width` cells for `percent`.
fn bar(percent: u8, width: usize) -> String {
    let full = width * percent.min(100) as usize / 100;
    format!("{}{}", "█".repeat(full), "░".repeat(width - full))
}

/// `12.3 MiB`.
fn bytes(n: u64) -> String {
    crate::text::human_bytes(n)
}

/// `1:02:03` / `2:03`.
fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn pane_focused(app: &App, pane: Pane) -> bool {
    app.overlay.is_none() && app.focus == pane
}

fn styled(text: String, style: Style) -> Span<'static> {
    Span::styled(text, style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_their_extension_and_widths_hold() {
        assert_eq!(fit("report.pdf", 20), "report.pdf");
        assert_eq!(fit("a-very-long-report-name.pdf", 12), "a-very-….pdf");
        assert_eq!(fit("日本語のファイル名.txt", 10), "日本….txt");
        assert!(fit("日本語のファイル名.txt", 10).width() <= 10);
        assert_eq!(fit("noextension-but-long", 8), "noexten…");
        assert_eq!(clean("evil\u{1b}[2J.pdf", 40), "evil\\u{1b}[2J.pdf");
        assert_eq!(bar(50, 10), "█████░░░░░");
        assert_eq!(duration(3725), "1:02:05");
    }
}
