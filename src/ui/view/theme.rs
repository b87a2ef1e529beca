//! Colours, or none: `NO_COLOR` (any value) turns every colour off and leaves only bold, dim and
//! reverse, so the UI reads the same on a monochrome terminal.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub focus: Style,
    pub dim: Style,
    pub key: Style,
    pub status: Style,
    pub selected: Style,
    pub marked: Style,
    pub online: Style,
    pub offline: Style,
    pub me: Style,
    pub peer: Style,
    pub unread: Style,
    pub warn: Style,
    pub ok: Style,
    pub title: Style,
}

impl Theme {
    pub fn from_env() -> Theme {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            Theme::mono()
        } else {
            Theme::colour()
        }
    }

    pub fn colour() -> Theme {
        Theme {
            focus: Style::new().fg(Color::Cyan),
            dim: Style::new().fg(Color::DarkGray),
            key: Style::new().fg(Color::Black).bg(Color::Cyan),
            status: Style::new().fg(Color::Yellow),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            marked: Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            online: Style::new().fg(Color::Green),
            offline: Style::new().fg(Color::DarkGray),
            me: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            peer: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            unread: Style::new().fg(Color::Black).bg(Color::Yellow),
            warn: Style::new().fg(Color::Red),
            ok: Style::new().fg(Color::Green),
            title: Style::new().add_modifier(Modifier::BOLD),
        }
    }

    pub fn mono() -> Theme {
        let plain = Style::new();
        Theme {
            focus: plain.add_modifier(Modifier::BOLD),
            dim: plain.add_modifier(Modifier::DIM),
            key: plain.add_modifier(Modifier::REVERSED),
            status: plain.add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            marked: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            online: plain,
            offline: plain.add_modifier(Modifier::DIM),
            me: plain.add_modifier(Modifier::BOLD),
            peer: plain.add_modifier(Modifier::BOLD),
            unread: plain.add_modifier(Modifier::REVERSED),
            warn: plain.add_modifier(Modifier::BOLD),
            ok: plain,
            title: plain.add_modifier(Modifier::BOLD),
        }
    }
}
