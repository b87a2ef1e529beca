//! The Chat pane: the selected conversation (its lines and the transfers with that peer, by
//! time) above the input line. Only the rows that fit are laid out, however long the history.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::{Theme, block, bytes, pane_focused, styled};
use crate::node::api::{ChatEntry, Delivery, Direction, ROOM, TransferState, TransferView};
use crate::text::printable;
use crate::ui::app::App;
use crate::ui::keys::Pane;

/// One item of a conversation, in time order.
enum Item<'a> {
    Chat(&'a ChatEntry),
    Transfer(&'a TransferView),
}

impl Item<'_> {
    fn when(&self) -> u64 {
        match self {
            Item::Chat(e) if e.outgoing => e.sent_ms,
            Item::Chat(e) => e.received_ms,
            Item::Transfer(t) => t.ended_ms.unwrap_or(t.started_ms),
        }
    }
}

pub fn chat(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let conversation = app.selected_conversation();
    let focused = pane_focused(app, Pane::Chat);
    let who = match app.selected_peer() {
        Some(p) => {
            let state = if p.online { "online" } else { "offline" };
            vec![
                styled(" [2] Chat ".into(), theme.title),
                styled(super::clean(&app.peer_name(&p.id), 24), theme.peer),
                styled(format!(" {state} "), if p.online { theme.online } else { theme.offline }),
            ]
        }
        None => match app.selected_device() {
            Some(d) => vec![
                styled(" [2] Chat ".into(), theme.title),
                styled(super::clean(&d.alias, 24), theme.peer),
                styled(" LocalSend ".into(), theme.dim),
            ],
            None => vec![styled(" [2] Chat ".into(), theme.title), styled("#all ".into(), theme.peer)],
        },
    };
    let outer = block(Line::from(who), focused || app.typing, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let [history_area, input_area] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);

    let conv = app.conversation(&conversation);
    let scroll = conv.map_or(0, |c| c.scroll);
    let width = history_area.width as usize;
    let height = history_area.height as usize;
    // Only the tail that can show: every item takes at least a row (a 10,000-line history costs
    // what the screen holds, not its length).
    let lines: &[ChatEntry] = conv.map_or(&[], |c| &c.lines[c.lines.len().saturating_sub(scroll + height)..]);
    let mut items: Vec<Item> = lines.iter().map(Item::Chat).collect();
    if conversation != ROOM {
        let since = match (items.first(), lines.len() < conv.map_or(0, |c| c.lines.len())) {
            (Some(first), true) => first.when(),
            _ => 0,
        };
        items.extend(
            app.transfers
                .iter()
                .filter(|t| t.peer.as_str() == conversation)
                .map(Item::Transfer)
                .filter(|t| t.when() >= since),
        );
        items.sort_by_key(|i| i.when());
    }
    // The sender column: as wide as the widest name shown, at most NAME_COLUMN.
    let name_width = items
        .iter()
        .map(|i| match i {
            Item::Chat(e) => sender(app, e).width(),
            Item::Transfer(_) => 0,
        })
        .max()
        .unwrap_or(0)
        .min(NAME_COLUMN);
    // From the newest item back, wrap until the pane is full (skipping `scroll` items).
    let mut rows: Vec<Line> = Vec::new();
    for item in items.iter().rev().skip(scroll) {
        let (pieces, indent) = render(app, item, theme, name_width);
        let mut wrapped = wrap(pieces, width, indent);
        wrapped.append(&mut rows);
        rows = wrapped;
        if rows.len() >= height {
            break;
        }
    }
    if rows.len() > height {
        rows.drain(..rows.len() - height);
    }
    let alone = app.alone_note.as_ref().filter(|_| !app.peers.iter().any(|p| p.online));
    if let (true, true, Some(note)) = (items.is_empty(), conversation == ROOM, alone) {
        rows = wrap(
            vec![Piece::split(vec![styled(format!(" {}", printable(note)), theme.status)])],
            width,
            1,
        );
        rows.truncate(height);
    } else if items.is_empty() {
        let hint = if conversation == ROOM {
            " say something to everyone online"
        } else {
            " no messages yet"
        };
        rows.push(Line::from(styled(hint.into(), theme.dim)));
    }
    if scroll > 0 {
        rows.push(Line::from(styled(format!(" ↓ {scroll} newer (End to follow)"), theme.status)));
        if rows.len() > height {
            rows.remove(0);
        }
    }
    frame.render_widget(Paragraph::new(rows), history_area);

    // The input line: its draft, scrolled to keep the cursor in view.
    let draft = conv.map(|c| &c.draft);
    let prompt = "› ";
    let room = (input_area.width as usize).saturating_sub(prompt.width() + 1);
    let (text, cursor) = match draft {
        Some(d) => {
            let scroll = d.input.visual_scroll(room);
            let shown: String = skip_columns(d.value(), scroll, room);
            (shown, d.input.visual_cursor().saturating_sub(scroll))
        }
        None => (String::new(), 0),
    };
    let placeholder = draft.is_none_or(|d| d.is_empty()) && !app.typing;
    let line = if placeholder {
        Line::from(vec![styled(prompt.into(), theme.dim), styled("Enter to type".into(), theme.dim)])
    } else {
        Line::from(vec![styled(prompt.into(), theme.focus), Span::raw(printable(&text).into_owned())])
    };
    frame.render_widget(Paragraph::new(line), input_area);
    if app.typing && app.overlay.is_none() {
        frame.set_cursor_position(Position::new(input_area.x + (prompt.width() + cursor) as u16, input_area.y));
    }
}

/// The text after the first `skip` columns, at most `width` columns of it.
fn skip_columns(s: &str, skip: usize, width: usize) -> String {
    let mut col = 0;
    let mut out = String::new();
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if col >= skip && col + w <= skip + width {
            out.push(c);
        }
        col += w;
    }
    out
}

/// A room line received this long after it was said is marked late.
const LATE_AFTER_MS: u64 = 60_000;

/// The widest a sender's name is drawn: a longer one is shortened in the middle.
const NAME_COLUMN: usize = 14;

/// Who said a line, as the sender column shows it.
fn sender(app: &App, e: &ChatEntry) -> String {
    if e.outgoing {
        "you".to_string()
    } else {
        super::middle(&printable(&app.peer_name(&e.from)), NAME_COLUMN)
    }
}

/// A run of styled text for `wrap`; a `whole` one moves to the next row rather than split
/// (a delivery mark with the word before it).
struct Piece<'a> {
    spans: Vec<Span<'a>>,
    whole: bool,
}

impl<'a> Piece<'a> {
    fn split(spans: Vec<Span<'a>>) -> Piece<'a> {
        Piece { spans, whole: false }
    }
}

/// An item's pieces, and the column its wrapped rows start at (under its text).
fn render<'a>(app: &App, item: &Item, theme: &Theme, name_width: usize) -> (Vec<Piece<'a>>, usize) {
    match item {
        Item::Chat(e) => {
            let time = clock(if e.outgoing { e.sent_ms } else { e.received_ms });
            let style = if e.outgoing { theme.me } else { theme.peer };
            let name = sender(app, e);
            let pad = " ".repeat(name_width.saturating_sub(name.width()));
            let head = vec![
                styled(format!("{time} "), theme.dim),
                styled(format!("{pad}{name}"), style),
                Span::raw(": "),
            ];
            let indent = 6 + name_width.max(name.width()) + 2;
            let text = printable(&e.text.replace(['\n', '\r'], " ")).into_owned();
            let mark = match (e.state, e.delivery_mark()) {
                (Some(state), Some(mark)) => {
                    let style = match state {
                        Delivery::Delivered => theme.ok,
                        Delivery::Refused => theme.warn,
                        _ => theme.dim,
                    };
                    Some(styled(format!(" {mark}"), style))
                }
                _ => None,
            };
            let mut pieces = vec![Piece::split(head)];
            match mark {
                // The mark keeps the last word with it, so it never sits on a row alone.
                Some(mark) => {
                    let (body, last) = match text.rsplit_once(' ') {
                        Some((body, last)) => (format!("{body} "), last.to_string()),
                        None => (String::new(), text),
                    };
                    pieces.push(Piece::split(vec![Span::raw(body)]));
                    pieces.push(Piece {
                        spans: vec![Span::raw(last), mark],
                        whole: true,
                    });
                }
                None => pieces.push(Piece::split(vec![Span::raw(text)])),
            }
            // A room line that caught up with us after we were away says when it was said.
            if e.room && !e.outgoing && e.received_ms > e.sent_ms + LATE_AFTER_MS {
                pieces.push(Piece {
                    spans: vec![styled(format!(" late, said {}", clock(e.sent_ms)), theme.dim)],
                    whole: true,
                });
            }
            (pieces, indent)
        }
        Item::Transfer(t) => {
            let time = clock(t.ended_ms.unwrap_or(t.started_ms));
            let what = if t.files <= 1 && !t.file.is_empty() {
                printable(&t.file).into_owned()
            } else {
                crate::text::plural(t.files, "file")
            };
            let (text, style): (String, Style) = match (t.direction, t.state) {
                (Direction::Send, TransferState::Done) if t.failed == 0 => (format!("sent {what}, {} ✓✓", bytes(t.total)), theme.ok),
                (Direction::Receive, TransferState::Done) if t.failed == 0 => {
                    let to = t.saved_to.as_deref().map(|d| format!(" → {}", printable(d))).unwrap_or_default();
                    (format!("received {what}, {}{to}", bytes(t.total)), theme.ok)
                }
                (_, s) if s.is_finished() => {
                    let m = t.message.as_deref().map(|m| printable(m).into_owned()).unwrap_or_default();
                    (format!("{what}: {m}"), theme.warn)
                }
                (_, TransferState::Connecting) => (format!("{what}: connecting…"), theme.dim),
                (Direction::Send, TransferState::Waiting) => (format!("offered {what}, waiting for an answer"), theme.dim),
                (Direction::Receive, TransferState::Waiting) => (format!("offers {what}, waiting for your answer"), theme.status),
                (Direction::Send, _) => (format!("sending {what}… {}%", t.percent), theme.dim),
                (Direction::Receive, _) => (format!("receiving {what}… {}%", t.percent), theme.dim),
            };
            let spans = vec![styled(format!("{time} "), theme.dim), styled(format!("⇅ {text}"), style)];
            (vec![Piece::split(spans)], 8)
        }
    }
}

/// Lay pieces out in rows of at most `width` columns, rows after the first starting at
/// `indent` (by character: chat text rarely has the long words that would make word wrapping
/// matter, and a URL stays whole per row).
fn wrap<'a>(pieces: Vec<Piece<'a>>, width: usize, indent: usize) -> Vec<Line<'a>> {
    let width = width.max(1);
    // A pane too narrow for the indent wraps from the edge.
    let indent = if indent * 2 > width { 0 } else { indent };
    let mut rows: Vec<Vec<Span<'a>>> = vec![Vec::new()];
    let mut col = 0;
    let new_row = |rows: &mut Vec<Vec<Span<'a>>>, col: &mut usize| {
        rows.push(if indent > 0 {
            vec![Span::raw(" ".repeat(indent))]
        } else {
            Vec::new()
        });
        *col = indent;
    };
    for piece in pieces {
        let piece_width: usize = piece.spans.iter().map(|s| s.content.width()).sum();
        if piece.whole && col > indent && col + piece_width > width && indent + piece_width <= width {
            new_row(&mut rows, &mut col);
        }
        for span in piece.spans {
            let mut part = String::new();
            for c in span.content.chars() {
                let w = c.width().unwrap_or(0);
                if col + w > width {
                    if !part.is_empty()
                        && let Some(row) = rows.last_mut()
                    {
                        row.push(Span::styled(std::mem::take(&mut part), span.style));
                    }
                    new_row(&mut rows, &mut col);
                    if c == ' ' {
                        continue;
                    }
                }
                part.push(c);
                col += w;
            }
            if !part.is_empty()
                && let Some(row) = rows.last_mut()
            {
                row.push(Span::styled(part, span.style));
            }
        }
    }
    rows.into_iter().map(Line::from).collect()
}

/// `HH:MM`, local time is unknown here, so UTC like `history` prints.
fn clock(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()[11..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn a_delivery_mark_takes_its_last_word_to_the_next_row() {
        let pieces = vec![
            Piece::split(vec![Span::raw("10:00 bob: ")]),
            Piece::split(vec![Span::raw("see you at ")]),
            Piece {
                spans: vec![Span::raw("ten"), Span::raw(" ✓✓")],
                whole: true,
            },
        ];
        let rows = text(&wrap(pieces, 24, 11));
        assert_eq!(
            rows.iter().map(|r| r.trim_end()).collect::<Vec<_>>(),
            ["10:00 bob: see you at", "           ten ✓✓"]
        );
        for row in &rows {
            assert!(row.width() <= 24);
        }
    }

    #[test]
    fn long_names_lose_their_middle() {
        assert_eq!(super::super::middle("ada", 14), "ada");
        let long = "a-really-long-nickname-of-48-bytes-for-testing!!";
        let short = super::super::middle(long, 14);
        assert_eq!(short.width(), 14);
        assert!(
            short.starts_with("a-real") && short.ends_with("ng!!") && short.contains('…'),
            "{short}"
        );
    }
}
