//! The list panes: Peers, the two file columns, Transfers.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::{Theme, bar, block, bytes, clean, duration, fit, pane_focused, styled};
use crate::node::api::{Direction, ROOM, Reason, TransferState, TransferView};
use crate::ui::app::App;
use crate::ui::files::Listing;
use crate::ui::keys::Pane;
use crate::ui::layout::Areas;

pub fn peers(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let focused = pane_focused(app, Pane::Peers);
    let width = area.width.saturating_sub(2) as usize;
    let online = app.peers.iter().filter(|p| p.online).count();
    let mut title = vec![styled(" [1] Peers ".into(), theme.title)];
    // Marks matter more than the count while they are set: they say who the next send reaches.
    if app.marked_peers.is_empty() {
        title.push(styled(format!("{online} online "), theme.dim));
    } else {
        title.push(styled(format!("{} marked ", app.marked_peers.len()), theme.marked));
    }
    if !app.peer_filter.is_empty() || (app.filtering && app.focus == Pane::Peers) {
        title.push(styled(format!("/{} ", clean(&app.peer_filter, 12)), theme.status));
    }
    let mut items = Vec::new();
    let room_unread = app.unread(ROOM);
    items.push(ListItem::new(Line::from(row_with_badge(
        vec![styled("#all".into(), theme.title), styled("  everyone online".into(), theme.dim)],
        room_unread,
        width,
        theme,
    ))));
    let busy = app.busy_peers();
    for p in app.visible_peers() {
        let marked = app.marked_peers.contains(&p.id);
        let dot = if p.online {
            styled("● ".into(), theme.online)
        } else if p.discovered {
            styled("◌ ".into(), theme.dim)
        } else {
            styled("○ ".into(), theme.offline)
        };
        let name_style = if p.online { theme.peer } else { theme.offline };
        let mut spans = vec![
            styled(if marked { "+".into() } else { " ".into() }, theme.marked),
            dot,
            styled(clean(&app.peer_name(&p.id), width.saturating_sub(12).max(4)), name_style),
        ];
        if p.trusted {
            spans.push(styled(" ★".into(), theme.status));
        }
        if busy.contains(&p.id) {
            spans.push(styled(" ⇅".into(), theme.focus));
        }
        // Host and short id when there is room: two "ada"s are told apart at a glance.
        let used: usize = spans.iter().map(|s| s.content.width()).sum();
        let detail = format!(" {} {}", clean(&p.host, 12), p.short_id);
        if used + detail.width() + 4 <= width {
            spans.push(styled(detail, theme.dim));
        }
        items.push(ListItem::new(Line::from(row_with_badge(
            spans,
            app.unread(p.id.as_str()),
            width,
            theme,
        ))));
    }
    // LocalSend devices: phones and laptops running LocalSend, marked as such.
    for d in app.visible_devices() {
        let marked = app.marked_peers.contains(&crate::node::api::device_id(&d.fingerprint));
        let mut spans = vec![
            styled(if marked { "+".into() } else { " ".into() }, theme.marked),
            styled(" ⌁ ".into(), theme.dim),
            styled(clean(&d.alias, (width / 2).max(4)), theme.peer),
        ];
        let detail = format!(
            " LocalSend {} {} {}",
            d.kind,
            clean(d.model.as_deref().unwrap_or(""), 12),
            d.fingerprint.chars().take(8).collect::<String>() + if d.verified { "" } else { "?" }
        );
        let used: usize = spans.iter().map(|s| s.content.width()).sum();
        spans.push(styled(fit(&detail, width.saturating_sub(used)), theme.dim));
        items.push(ListItem::new(Line::from(spans)));
    }
    if app.peers.is_empty() && app.localsend.is_empty() {
        items.push(ListItem::new(Line::from(styled(" looking… (+ adds HOST:PORT)".into(), theme.dim))));
    }
    let list = List::new(items)
        .block(block(Line::from(title), focused, theme))
        .highlight_style(if focused { theme.selected } else { theme.title });
    let mut state = ListState::default().with_selected(Some(app.peer_cursor));
    frame.render_stateful_widget(list, area, &mut state);
}

/// A row with an unread count at its right edge.
fn row_with_badge<'a>(mut spans: Vec<Span<'a>>, unread: u32, width: usize, theme: &Theme) -> Vec<Span<'a>> {
    if unread > 0 {
        let badge = format!(" {unread} ");
        let used: usize = spans.iter().map(|s| s.content.width()).sum();
        let pad = width.saturating_sub(used + badge.width());
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(styled(badge, theme.unread));
    }
    spans
}

pub fn files(frame: &mut Frame, app: &App, theme: &Theme, areas: &Areas) {
    let focused = app.overlay.is_none() && matches!(app.focus, Pane::Local | Pane::Remote | Pane::Deposits);
    // Who `s` sends to, always in sight: the marked peers, else the selected one.
    let mut title = vec![styled(" [3] Files ".into(), theme.title)];
    let room = (areas.files.width as usize).saturating_sub(30);
    match app.recipients_text(room) {
        Some(names) => title.push(styled(format!("· s sends to {names} "), theme.marked)),
        None => title.push(styled("· s: pick a peer first ".into(), theme.dim)),
    }
    frame.render_widget(block(Line::from(title), focused, theme), areas.files);
    let in_downloads = app
        .me
        .as_ref()
        .is_some_and(|m| app.local.dir.as_os_str() == m.download_dir.as_str());
    let local_title = if in_downloads {
        format!(" downloads: {} ", app.local.dir.display())
    } else {
        format!(" {} ", app.local.dir.display())
    };
    column(
        frame,
        app,
        theme,
        areas.local,
        Pane::Local,
        &local_title,
        &app.local.list,
        "an empty folder",
    );
    if app.locker {
        return super::deposits::column(frame, app, theme, areas.remote);
    }
    let selected = app.selected_peer().map(|p| p.id.clone());
    let shown = app.remote.peer.as_deref().and_then(crate::node::api::PeerId::parse);
    let (title, empty) = match (shown, selected) {
        (Some(id), Some(sel)) if id == sel => {
            let who = app.peer_name(&id);
            let path = if app.remote.path.is_empty() {
                "shares".to_string()
            } else {
                app.remote.path.clone()
            };
            (format!(" {who}: {path} "), format!("{who} shares nothing"))
        }
        // Listed lazily: a peer's shares are asked for when this column is entered.
        (_, Some(sel)) => (
            format!(" {} ", app.peer_name(&sel)),
            format!("Tab here to browse what {} shares", app.peer_name(&sel)),
        ),
        (_, None) => (" no peer selected ".to_string(), "select a peer to see what it shares".to_string()),
    };
    let empty = fit(&empty, areas.remote.width.saturating_sub(1) as usize);
    column(frame, app, theme, areas.remote, Pane::Remote, &title, &app.remote.list, &empty);
}

#[allow(clippy::too_many_arguments)]
fn column(frame: &mut Frame, app: &App, theme: &Theme, area: Rect, pane: Pane, title: &str, list: &Listing, empty: &str) {
    let focused = pane_focused(app, pane);
    let width = area.width as usize;
    let [head, body] =
        ratatui::layout::Layout::vertical([ratatui::layout::Constraint::Length(1), ratatui::layout::Constraint::Min(0)]).areas(area);
    let mut head_spans = vec![styled(
        clean(title, width.saturating_sub(14)),
        if focused { theme.focus } else { theme.dim },
    )];
    if !list.filter.is_empty() || (app.filtering && app.focus == pane) {
        head_spans.push(styled(format!(" /{}", clean(&list.filter, 10)), theme.status));
    }
    if pane == Pane::Local && app.local.show_hidden {
        head_spans.push(styled(" +hidden".into(), theme.dim));
    }
    frame.render_widget(Paragraph::new(Line::from(head_spans)), head);
    let message = if list.loading {
        Some(("listing…".to_string(), theme.dim))
    } else if let Some(e) = &list.error {
        Some((clean(e, width), theme.warn))
    } else if list.visible().is_empty() {
        Some((
            if list.filter.is_empty() {
                empty.to_string()
            } else {
                "nothing matches".to_string()
            },
            theme.dim,
        ))
    } else {
        None
    };
    if let Some((text, style)) = message {
        frame.render_widget(Paragraph::new(styled(format!(" {text}"), style)), body);
        return;
    }
    let items: Vec<ListItem> = list
        .visible()
        .iter()
        .map(|e| {
            let fresh = pane == Pane::Local && app.local.is_fresh(&e.name);
            let mark = match (list.marked.contains(&e.name), fresh) {
                (true, _) => "+",
                (false, true) => "▸",
                _ => " ",
            };
            let size = if e.dir { "dir".to_string() } else { bytes(e.size) };
            let name_width = width.saturating_sub(size.width() + 4);
            let name = if e.dir {
                format!("{}/", clean(&e.name, name_width.saturating_sub(1)))
            } else {
                clean(&e.name, name_width)
            };
            let pad = width.saturating_sub(name.width() + size.width() + 3);
            let style = match (fresh, e.dir) {
                (true, _) => theme.ok,
                (false, true) => theme.title,
                _ => ratatui::style::Style::new(),
            };
            ListItem::new(Line::from(vec![
                styled(mark.into(), theme.marked),
                styled(name, style),
                Span::raw(" ".repeat(pad)),
                styled(size, theme.dim),
            ]))
        })
        .collect();
    let widget = List::new(items).highlight_style(if focused { theme.selected } else { theme.title });
    let mut state = ListState::default().with_selected(Some(list.cursor));
    frame.render_stateful_widget(widget, body, &mut state);
}

pub fn transfers(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let focused = pane_focused(app, Pane::Transfers);
    let running = app.transfers.iter().filter(|t| !t.state.is_finished()).count();
    let mut title = vec![styled(" [4] Transfers ".into(), theme.title)];
    if running > 0 {
        title.push(styled(format!("{running} running "), theme.focus));
    }
    if !app.offers.is_empty() {
        title.push(styled(format!("{} offers waiting: o ", app.offers.len()), theme.status));
    }
    // A send to several peers also shows as one: how far the class has got.
    let mut groups: Vec<(&str, Vec<&TransferView>)> = Vec::new();
    for t in app.transfers.iter().filter(|t| t.group.is_some()) {
        let g = t.group.as_deref().unwrap_or_default();
        match groups.iter_mut().find(|(id, _)| *id == g) {
            Some((_, members)) => members.push(t),
            None => groups.push((g, vec![t])),
        }
    }
    for (_, members) in groups
        .iter()
        .filter(|(_, m)| m.len() > 1 && m.iter().any(|t| !t.state.is_finished()))
    {
        let (done, percent) = group_progress(members);
        title.push(styled(
            format!("· to {} peers: {done} done, {percent}% ", members.len()),
            theme.focus,
        ));
    }
    let width = area.width.saturating_sub(2) as usize;
    let mut items = Vec::new();
    for o in &app.offers {
        let text = format!(
            "? {} offers {}, {} — Enter to answer",
            app.peer_name(&o.peer),
            crate::text::plural(o.files, "file"),
            bytes(o.bytes)
        );
        items.push(ListItem::new(styled(clean(&text, width), theme.status)));
    }
    for t in &app.transfers {
        items.push(ListItem::new(transfer_line(app, t, width, theme)));
    }
    if items.is_empty() {
        items.push(ListItem::new(styled(
            " nothing yet: s sends from the local column, g gets from a peer's".into(),
            theme.dim,
        )));
    }
    let list = List::new(items)
        .block(block(Line::from(title), focused, theme))
        .highlight_style(if focused { theme.selected } else { ratatui::style::Style::new() });
    let selected = (app.transfer_rows() > 0).then_some(app.transfer_cursor);
    let mut state = ListState::default().with_selected(selected);
    frame.render_stateful_widget(list, area, &mut state);
}

fn transfer_line<'a>(app: &App, t: &TransferView, width: usize, theme: &Theme) -> Line<'a> {
    let arrow = match t.direction {
        Direction::Send => "→",
        Direction::Receive => "←",
    };
    // The sender's name, and on a receive the relay that passed its offer on, as the offer said.
    let who = match (&t.via, t.direction) {
        (Some(via), Direction::Receive) => format!("{} via {via}", app.peer_name(&t.peer)),
        _ => app.peer_name(&t.peer),
    };
    let what = what_text(t);
    let tail = state_text(app, t);
    let head = format!("{arrow} {} ", clean(&who, 24));
    let tail = clean(&tail, width.saturating_sub(head.width() + 12));
    let name_room = width.saturating_sub(head.width() + tail.width() + 2);
    let name = clean(&what, name_room.max(6));
    let style = match t.state {
        TransferState::Done if t.failed == 0 => theme.ok,
        TransferState::Failed | TransferState::Rejected | TransferState::Done => theme.warn,
        TransferState::Cancelled => theme.dim,
        _ => ratatui::style::Style::new(),
    };
    // Finished rows step back so that running ones catch the eye.
    let fade = if t.state.is_finished() {
        theme.dim
    } else {
        ratatui::style::Style::new()
    };
    let pad = width.saturating_sub(head.width() + name.width() + tail.width() + 1);
    Line::from(vec![
        styled(head, fade),
        styled(name, fade),
        Span::raw(" ".repeat(pad.max(1))),
        styled(fit(&tail, width), style),
    ])
}

/// How far a send to several peers has got: recipients verified, and bytes verified of what all
/// of them are to get (one that has not heard the offer yet counts as nothing done).
pub(super) fn group_progress(members: &[&TransferView]) -> (usize, u64) {
    let done = members.iter().filter(|t| t.state == TransferState::Done && t.failed == 0).count();
    let each = members.iter().map(|m| m.total).max().unwrap_or(0);
    let bytes: u128 = members.iter().map(|m| m.bytes.min(each) as u128).sum();
    let all = each as u128 * members.len() as u128;
    let percent = (bytes * 100).checked_div(all).map_or(100, |p| p as u64);
    (done, percent)
}

/// What a transfer moves, as a person names it.
pub(super) fn what_text(t: &TransferView) -> String {
    if !t.name.is_empty() {
        return t.name.clone();
    }
    match (t.files, t.file.is_empty(), t.state.is_finished()) {
        (0 | 1, false, _) => t.file.clone(),
        (n, false, false) => format!("{} · {}", crate::text::plural(n, "file"), t.file),
        (n, _, _) => crate::text::plural(n, "file"),
    }
}

/// Where a transfer stands, in words: the same in the row and in its details.
pub(super) fn state_text(app: &App, t: &TransferView) -> String {
    let who = app.peer_name(&t.peer);
    let message = t.message.as_deref();
    match t.state {
        TransferState::Connecting => "connecting…".to_string(),
        TransferState::Waiting if t.direction == Direction::Send => format!("waiting for {who} to accept"),
        TransferState::Waiting => "waiting for your answer".to_string(),
        TransferState::Running => {
            let eta = t.eta_secs.map(|s| format!(" ETA {}", duration(s))).unwrap_or_default();
            let files = if t.files > 1 {
                format!("{}/{} ", t.files_done, t.files)
            } else {
                String::new()
            };
            let via = match (&t.via, t.direction) {
                (Some(via), Direction::Send) => format!("via {via} "),
                _ => String::new(),
            };
            let rate = if t.rate > 0 {
                format!(" {}/s", bytes(t.rate))
            } else {
                String::new()
            };
            format!("{via}{files}{} {:>3}%{rate}{eta}", bar(t.percent, 10), t.percent)
        }
        TransferState::Done if t.failed == 0 => match t.direction {
            Direction::Receive => match t.saved_as.as_ref().or(t.saved_to.as_ref()) {
                Some(place) => format!("✓ {} → {}", bytes(t.total), home_short(app, place)),
                None => format!("✓ {}", bytes(t.total)),
            },
            Direction::Send => format!("✓ {} verified", bytes(t.total)),
        },
        TransferState::Done => format!("{} of {} failed", t.failed, t.files),
        TransferState::Paused => format!("paused, {} of {}", bytes(t.bytes), bytes(t.total)),
        // A plain no says who said it; any other refusal (expired, no space, busy, not
        // confirmed) is said by the node's own text.
        TransferState::Rejected if matches!(t.reason, Some(Reason::Rejected) | None) => {
            let more = message
                .and_then(|m| m.strip_prefix("rejected"))
                .map(|m| m.trim_start_matches([':', ';', ' ']))
                .filter(|m| !m.is_empty());
            let said = match t.direction {
                Direction::Send => format!("{who} said no"),
                Direction::Receive => "you said no".to_string(),
            };
            match more {
                Some(m) => format!("{said}: {m}"),
                None => said,
            }
        }
        TransferState::Rejected => message.unwrap_or("not taken").to_string(),
        // A cancel at this end is ours; one from the peer names it ("ada cancelled big.bin").
        TransferState::Cancelled => match (t.direction, t.reason) {
            (Direction::Send, Some(Reason::CancelledBySender)) | (Direction::Receive, Some(Reason::CancelledByReceiver)) | (_, None) => {
                "cancelled by you".to_string()
            }
            _ => message.unwrap_or("cancelled").to_string(),
        },
        TransferState::Failed => match (t.reason, message) {
            // Nothing failed: the same was sent again and its bytes went on in that transfer.
            (Some(Reason::Superseded), Some(m)) => m.to_string(),
            (_, Some(m)) => format!("failed: {m}"),
            (_, None) => "failed".to_string(),
        },
    }
}

/// A path under the home folder as `~/…`.
pub(super) fn home_short(app: &App, path: &str) -> String {
    match app.home.as_deref().and_then(|home| path.strip_prefix(home)) {
        Some(rest) if rest.starts_with('/') => format!("~{rest}"),
        _ => path.to_string(),
    }
}
