//! The Deposits column (the right column of Files, `L`): my deposits as the node reports them,
//! each on two lines: its name, copies verified of wanted and size; then a mark per holder's
//! copy (✓ verified, ◌ its holder offline, ✗ lost) with the holder's name.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::{Theme, bytes, clean, fit, pane_focused, styled};
use crate::node::api::DepositView;
use crate::ui::app::{App, Health};
use crate::ui::keys::Pane;

/// The widest a holder's name is in a row of holders.
const HOLDER_NAME: usize = 14;

pub fn column(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let focused = pane_focused(app, Pane::Deposits);
    let width = area.width as usize;
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let verified = app.deposits.iter().filter(|d| d.replicas_verified >= d.replicas_wanted).count();
    let title = match app.deposits.len() {
        0 => " my deposits ".to_string(),
        n => format!(" my deposits: {verified} of {n} with every copy "),
    };
    frame.render_widget(
        Paragraph::new(styled(fit(&title, width), if focused { theme.focus } else { theme.dim })),
        head,
    );
    if app.deposits.is_empty() {
        let empty = "none yet: d in the local column deposits what is marked";
        frame.render_widget(Paragraph::new(styled(fit(&format!(" {empty}"), width), theme.dim)), body);
        return;
    }
    let items: Vec<ListItem> = app.deposits.iter().map(|d| item(app, theme, d, width)).collect();
    let widget = List::new(items).highlight_style(if focused { theme.selected } else { theme.title });
    let mut state = ListState::default().with_selected(Some(app.deposit_cursor));
    frame.render_stateful_widget(widget, body, &mut state);
}

fn item<'a>(app: &App, theme: &Theme, d: &DepositView, width: usize) -> ListItem<'a> {
    let copies = format!("{}/{}", d.replicas_verified, d.replicas_wanted);
    let size = bytes(d.bytes);
    let tail = format!(" {copies} {size}");
    let name = clean(&d.name, width.saturating_sub(tail.width() + 1));
    let pad = width.saturating_sub(1 + name.width() + tail.width());
    let short = d.replicas_verified < d.replicas_wanted;
    let first = Line::from(vec![
        Span::raw(" "),
        styled(name, theme.title),
        Span::raw(" ".repeat(pad)),
        styled(format!(" {copies}"), if short { theme.warn } else { theme.ok }),
        styled(format!(" {size}"), theme.dim),
    ]);
    let mut holders = vec![Span::raw("  ")];
    let mut used = 2;
    for (i, h) in d.holders.iter().enumerate() {
        let health = app.health(h);
        let name = clean(&app.holder_name(h), HOLDER_NAME);
        let cell = format!("{} {name} ", health.mark());
        let rest = d.holders.len() - i;
        if used + cell.width() > width {
            holders.push(styled(fit(&format!("+{rest}"), width.saturating_sub(used)), theme.dim));
            break;
        }
        used += cell.width();
        let style = match health {
            Health::Verified => theme.ok,
            Health::Offline => theme.dim,
            Health::Lost => theme.warn,
        };
        holders.push(styled(cell, style));
    }
    if d.holders.is_empty() {
        holders.push(styled("no copy yet".into(), theme.warn));
    }
    ListItem::new(vec![first, Line::from(holders)])
}
