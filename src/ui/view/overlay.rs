//! What opens over the panes: the offer dialog, help, adding a peer, confirming a dropped file.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Position, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::lists::{group_progress, home_short, state_text, what_text};
use super::{Theme, block, bytes, clean, styled};
use crate::node::api::{Direction, TransferState, TransferView};
use crate::text::{plural, printable};
use crate::ui::app::{App, Overlay};
use crate::ui::help::{self, Part};

/// A bordered box over the panes at `area`, titled: the space inside it.
fn dialog(frame: &mut Frame, theme: &Theme, area: Rect, title: &str) -> Rect {
    frame.render_widget(Clear, area);
    let b = block(styled(title.into(), theme.title), true, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    inner
}

/// A dialog's lines, the second being typed into (`› …`), the cursor on it at `cursor`.
fn typed_lines(frame: &mut Frame, inner: Rect, text: Vec<Line>, cursor: usize) {
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
    let x = inner.x + 2 + cursor.min((inner.width as usize).saturating_sub(3)) as u16;
    frame.set_cursor_position(Position::new(x, inner.y + 1));
}

pub fn overlay(frame: &mut Frame, app: &App, theme: &Theme) {
    let screen = frame.area();
    match &app.overlay {
        None => {}
        Some(Overlay::Help { scroll }) => help(frame, theme, screen, *scroll),
        Some(Overlay::Offer { scroll }) => offer(frame, app, theme, screen, *scroll),
        Some(Overlay::AddPeer { trying, error }) => {
            let inner = dialog(frame, theme, centered(screen, 60, 6), " Add a peer ");
            let width = inner.width as usize;
            let below = match (trying, error) {
                (_, Some(e)) => Line::from(styled(clean(e, width), theme.warn)),
                (Some(addr), None) => Line::from(styled(clean(&format!("connecting to {addr}…"), width), theme.dim)),
                (None, None) => Line::from(styled("Enter connects · Esc closes".into(), theme.dim)),
            };
            let text = vec![
                Line::from(styled("HOST or HOST:PORT of a lanyard (port 7717 if not given):".into(), theme.dim)),
                Line::from(format!("› {}", clean(app.add_peer.value(), width.saturating_sub(3)))),
                below,
            ];
            typed_lines(frame, inner, text, app.add_peer.input.visual_cursor());
        }
        Some(Overlay::Pin { paths, device, wrong }) => {
            let inner = dialog(frame, theme, centered(screen, 60, 6), " PIN ");
            let width = inner.width as usize;
            let asked = if *wrong {
                format!("{} refused that PIN; the PIN it shows:", app.peer_name(device))
            } else {
                format!("{} wants the PIN it shows:", app.peer_name(device))
            };
            let what = format!("to send {} · Enter sends · Esc gives up", plural(paths.len() as u64, "item"));
            // Typed, not shown: a PIN is read off the device's screen by whoever stands there.
            let text = vec![
                Line::from(styled(clean(&asked, width), if *wrong { theme.warn } else { theme.dim })),
                Line::from(format!(
                    "› {}",
                    "•".repeat(app.pin.value().chars().count().min(width.saturating_sub(3)))
                )),
                Line::from(styled(clean(&what, width), theme.dim)),
            ];
            typed_lines(frame, inner, text, app.pin.input.visual_cursor());
        }
        Some(Overlay::Transfer { id, scroll }) => transfer(frame, app, theme, screen, id, *scroll),
        Some(Overlay::Deposit { paths, error }) => {
            let area = centered(screen, 64, (paths.len().min(6) + 6) as u16);
            frame.render_widget(Clear, area);
            let b = block(styled(" Deposit in the locker ".into(), theme.title), true, theme);
            let inner = b.inner(area);
            frame.render_widget(b, area);
            let width = inner.width as usize;
            let mut lines = vec![Line::from(styled(
                clean(
                    &format!("{}: verified copies kept for you on other machines", plural(paths.len(), "item")),
                    width,
                ),
                theme.marked,
            ))];
            lines.extend(
                paths
                    .iter()
                    .take(5)
                    .map(|p| Line::from(clean(&home_short(app, &p.display().to_string()), width))),
            );
            if paths.len() > 5 {
                lines.push(Line::from(format!("… and {} more", paths.len() - 5)));
            }
            let prompt = "how many copies: ";
            lines.push(Line::from(format!(
                "{prompt}{}",
                clean(app.replicas.value(), width.saturating_sub(prompt.len()))
            )));
            let cursor_row = lines.len() - 1;
            lines.push(match error {
                Some(e) => Line::from(styled(clean(e, width), theme.warn)),
                None => Line::from(styled("Enter deposits · Esc cancels".into(), theme.dim)),
            });
            frame.render_widget(Paragraph::new(lines), inner);
            let x = inner.x + (prompt.len() + app.replicas.input.visual_cursor()).min(width.saturating_sub(1)) as u16;
            frame.set_cursor_position(Position::new(x, inner.y + cursor_row as u16));
        }
        Some(Overlay::ConfirmSend { paths, peers, dropped }) => {
            let area = centered(screen, 64, (paths.len().min(6) + 5) as u16);
            frame.render_widget(Clear, area);
            let title = if *dropped {
                " Send dropped files? "
            } else {
                " Send to several peers? "
            };
            let b = block(styled(title.into(), theme.title), true, theme);
            let inner = b.inner(area);
            frame.render_widget(b, area);
            let width = inner.width as usize;
            let names: Vec<String> = peers.iter().map(|p| app.peer_name(p)).collect();
            let question = format!(
                "send {} to {}? y/n",
                crate::text::plural(paths.len(), if *dropped { "file" } else { "item" }),
                names.join(", ")
            );
            let mut lines = vec![Line::from(styled(clean(&question, width * 2), theme.marked))];
            lines.extend(paths.iter().take(5).map(|p| Line::from(clean(&p.display().to_string(), width))));
            if paths.len() > 5 {
                lines.push(Line::from(format!("… and {} more", paths.len() - 5)));
            }
            lines.push(Line::from(styled("y send · n cancel".into(), theme.dim)));
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        }
        Some(Overlay::ConfirmQuit { running }) => {
            let area = centered(screen, 60, 5);
            frame.render_widget(Clear, area);
            let b = block(styled(" Quit? ".into(), theme.title), true, theme);
            let inner = b.inner(area);
            frame.render_widget(b, area);
            let lines = vec![
                Line::from(format!(
                    "{} running — pause them and quit?",
                    crate::text::plural(*running as u64, "transfer")
                )),
                Line::from(styled("they resume when lanyard runs again · y quit · n stay".into(), theme.dim)),
            ];
            frame.render_widget(Paragraph::new(lines), inner);
        }
    }
}

fn offer(frame: &mut Frame, app: &App, theme: &Theme, screen: Rect, scroll: usize) {
    let Some(o) = app.offers.front() else { return };
    let height = (o.names.len() as u16 + 8).clamp(9, screen.height.saturating_sub(2).max(9));
    let area = centered(screen, 64, height);
    frame.render_widget(Clear, area);
    let title = format!(" Incoming files: offer 1 of {} ", app.offers.len());
    let b = block(styled(title, theme.title), true, theme);
    let saved = app.me.as_ref().map_or("the download dir", |m| m.download_dir.as_str());
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let width = inner.width as usize;
    let mut host = if o.host.is_empty() {
        String::new()
    } else {
        format!(" on {}", o.host)
    };
    if let Some(via) = &o.via {
        host = format!("{host} via {via}");
    }
    let mut lines = vec![
        Line::from(vec![
            styled(clean(&app.peer_name(&o.peer), 24), theme.peer),
            styled(clean(&format!("{host} ({})", o.peer.short()), width / 2), theme.dim),
        ]),
        Line::from(format!(
            "offers {}, {} in all",
            crate::text::plural(o.files, "file"),
            bytes(o.bytes)
        )),
        Line::from(styled(clean(&format!("accepted files go to {saved}"), width), theme.dim)),
        Line::from(""),
    ];
    let room = (inner.height as usize).saturating_sub(lines.len() + 2);
    for name in o.names.iter().skip(scroll).take(room) {
        lines.push(Line::from(format!("  {}", clean(name, width.saturating_sub(2)))));
    }
    let listed = o.names.len() as u32;
    if listed < o.files {
        lines.push(Line::from(styled(format!("  … and {} more", o.files - listed), theme.dim)));
    }
    let more = if app.offers.len() > 1 {
        format!("   ({} more waiting)", app.offers.len() - 1)
    } else {
        String::new()
    };
    let keys = Line::from(vec![
        styled(" y ".into(), theme.key),
        styled(" accept  ".into(), theme.dim),
        styled(" n ".into(), theme.key),
        styled(" reject  ".into(), theme.dim),
        styled(" a ".into(), theme.key),
        styled(" always from this peer  ".into(), theme.dim),
        styled(" Esc ".into(), theme.key),
        styled(format!(" later{more}"), theme.dim),
    ]);
    let [body, foot] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), body);
    frame.render_widget(Paragraph::new(keys), foot);
}

fn help(frame: &mut Frame, theme: &Theme, screen: Rect, scroll: usize) {
    let area = help::area(screen.width, screen.height);
    frame.render_widget(Clear, area);
    let (width, height) = help::inner(screen.width, screen.height);
    let rows = help::rows(width);
    let scroll = scroll.min(rows.len().saturating_sub(height));
    let mut b = block(
        styled(" Keys — ↑↓ PgUp PgDn Home End scroll, Esc closes ".into(), theme.title),
        true,
        theme,
    );
    if scroll + height < rows.len() {
        b = b.title_bottom(Line::from(styled(" more below ↓ ".into(), theme.status)).right_aligned());
    }
    if scroll > 0 {
        b = b.title_bottom(Line::from(styled(" ↑ more above ".into(), theme.dim)).left_aligned());
    }
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let lines: Vec<Line> = rows
        .into_iter()
        .skip(scroll)
        .take(height)
        .map(|row| {
            Line::from(
                row.into_iter()
                    .map(|(part, text)| {
                        let style = match part {
                            Part::Heading => theme.focus,
                            Part::Keys => theme.title,
                            Part::Symbol => theme.status,
                            Part::Text => ratatui::style::Style::new(),
                        };
                        styled(text, style)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn centered(screen: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(screen.height))])
        .flex(Flex::Center)
        .areas(screen);
    let [area] = Layout::horizontal([Constraint::Length(width.min(screen.width))])
        .flex(Flex::Center)
        .areas(row);
    area
}

/// One transfer in full: what, with whom, where it stands; for a send to several peers every
/// recipient; the files that failed and why; the whole message (wrapped, never cut).
fn transfer(frame: &mut Frame, app: &App, theme: &Theme, screen: Rect, id: &str, scroll: usize) {
    let Some(t) = app.transfers.iter().find(|t| t.transfer == id) else {
        return;
    };
    let area = centered(screen, 76, screen.height.saturating_sub(4).max(8));
    frame.render_widget(Clear, area);
    let title = format!(" {} ", clean(&what_text(t), 60));
    let b = block(styled(title, theme.title), true, theme);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let text = |s: &str| printable(s).into_owned();
    let mut lines = Vec::new();
    let (arrow, way) = match t.direction {
        Direction::Send => ("→", "to"),
        Direction::Receive => ("←", "from"),
    };
    let mut who = format!("{arrow} {way} {}", app.peer_name(&t.peer));
    if let (Some(via), Direction::Receive) = (&t.via, t.direction) {
        who.push_str(&format!(" via {}", text(via)));
    }
    lines.push(Line::from(styled(who, theme.peer)));
    lines.push(Line::from(styled(
        format!("{} in {} · {}", bytes(t.total), plural(t.files, "file"), t.transfer),
        theme.dim,
    )));
    let members: Vec<&TransferView> = match &t.group {
        Some(g) => app.transfers.iter().filter(|m| m.group.as_deref() == Some(g)).collect(),
        None => vec![t],
    };
    if members.len() > 1 {
        let (done, percent) = group_progress(&members);
        lines.push(Line::from(""));
        lines.push(Line::from(styled(
            format!("to {} peers: {done} done, {percent}%", members.len()),
            theme.title,
        )));
        for m in &members {
            lines.push(Line::from(format!("  {}: {}", app.peer_name(&m.peer), state_text(app, m))));
        }
    } else {
        lines.push(Line::from(""));
        // A failure's whole message follows below.
        let state = match t.state {
            TransferState::Failed => "failed".to_string(),
            _ => state_text(app, t),
        };
        lines.push(Line::from(state));
    }
    lines.push(Line::from(""));
    if !t.file.is_empty() && !t.state.is_finished() {
        lines.push(Line::from(format!("now: {}", text(&t.file))));
    }
    lines.push(Line::from(format!(
        "{} of {} verified{}",
        t.files_done.saturating_sub(t.failed),
        plural(t.files, "file"),
        if t.failed > 0 {
            format!(", {} failed", t.failed)
        } else {
            String::new()
        }
    )));
    for crate::node::api::FileFailure { path, reason: why, .. } in &t.failures {
        lines.push(Line::from(styled(format!("  ✗ {}: {}", text(path), text(why)), theme.warn)));
    }
    if (t.failures.len() as u32) < t.failed {
        lines.push(Line::from(format!("  … and {} more", t.failed - t.failures.len() as u32)));
    }
    if let Some(place) = t.saved_as.as_ref().or(t.saved_to.as_ref()) {
        lines.push(Line::from(format!("saved as {}", text(&home_short(app, place)))));
    }
    if let Some(m) = &t.message {
        lines.push(Line::from(""));
        lines.push(Line::from(styled(text(m), theme.warn)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(styled("↑↓ PgUp PgDn Home scroll · Esc close".into(), theme.dim)));
    let para = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((scroll.min(u16::MAX as usize) as u16, 0));
    frame.render_widget(para, inner);
}
