//! The keymap: a pure function from a key and where the user is to what it means. Every binding
//! the help overlay lists comes from [`BINDINGS`], so help and behaviour can't drift apart.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::input::Edit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Peers,
    Chat,
    Local,
    Remote,
    Transfers,
}

impl Pane {
    pub const ORDER: [Pane; 5] = [Pane::Peers, Pane::Chat, Pane::Local, Pane::Remote, Pane::Transfers];

    pub fn next(self) -> Pane {
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        Self::ORDER[(i + 1) % Self::ORDER.len()]
    }

    pub fn prev(self) -> Pane {
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        Self::ORDER[(i + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }
}

/// Where keys go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Pane(Pane),
    /// Typing a chat line.
    Typing,
    /// Typing a filter for a list.
    Filter,
    /// Typing HOST:PORT for a new peer.
    AddPeer,
    Offer,
    Help,
    /// A question with yes / no (sending pasted paths).
    Confirm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextPane,
    PrevPane,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Peers: open the conversation and type; files: open the folder; chat: start typing.
    Enter,
    Back,
    Mark,
    SendFiles,
    GetFiles,
    Filter,
    ToggleHidden,
    AddPeer,
    Trust,
    Cancel,
    Retry,
    Refresh,
    Help,
    Escape,
    Edit(Edit),
    Submit,
    Accept,
    Reject,
    Always,
    Nothing,
}

/// What `key` means in `ctx`.
pub fn action(ctx: Context, key: KeyEvent) -> Action {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if ctrl && key.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    match ctx {
        Context::Typing | Context::Filter | Context::AddPeer => editing(ctx, key, ctrl, alt),
        Context::Offer => match key.code {
            KeyCode::Char('y') => Action::Accept,
            KeyCode::Char('n') => Action::Reject,
            KeyCode::Char('a') => Action::Always,
            KeyCode::Up | KeyCode::Char('k') => Action::Up,
            KeyCode::Down | KeyCode::Char('j') => Action::Down,
            KeyCode::PageUp => Action::PageUp,
            KeyCode::PageDown => Action::PageDown,
            KeyCode::Esc => Action::Escape,
            _ => Action::Nothing,
        },
        Context::Confirm => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => Action::Accept,
            KeyCode::Char('n') | KeyCode::Esc => Action::Escape,
            _ => Action::Nothing,
        },
        Context::Help => match key.code {
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => Action::Escape,
            KeyCode::Up | KeyCode::Char('k') => Action::Up,
            KeyCode::Down | KeyCode::Char('j') => Action::Down,
            _ => Action::Nothing,
        },
        Context::Pane(pane) => browsing(pane, key),
    }
}

fn editing(ctx: Context, key: KeyEvent, ctrl: bool, alt: bool) -> Action {
    let edit = |e| Action::Edit(e);
    match key.code {
        KeyCode::Enter => Action::Submit,
        KeyCode::Esc => Action::Escape,
        KeyCode::Left if ctrl || alt => edit(Edit::WordLeft),
        KeyCode::Right if ctrl || alt => edit(Edit::WordRight),
        KeyCode::Left => edit(Edit::Left),
        KeyCode::Right => edit(Edit::Right),
        KeyCode::Home => edit(Edit::Home),
        KeyCode::End => edit(Edit::End),
        KeyCode::Backspace if ctrl || alt => edit(Edit::DeleteWord),
        KeyCode::Backspace => edit(Edit::Backspace),
        KeyCode::Delete => edit(Edit::Delete),
        KeyCode::Up if ctx == Context::Typing => edit(Edit::Older),
        KeyCode::Down if ctx == Context::Typing => edit(Edit::Newer),
        KeyCode::PageUp if ctx == Context::Typing => Action::PageUp,
        KeyCode::PageDown if ctx == Context::Typing => Action::PageDown,
        KeyCode::Char('w') if ctrl => edit(Edit::DeleteWord),
        KeyCode::Char('u') if ctrl => edit(Edit::DeleteToStart),
        KeyCode::Char('k') if ctrl => edit(Edit::DeleteToEnd),
        KeyCode::Char('a') if ctrl => edit(Edit::Home),
        KeyCode::Char('e') if ctrl => edit(Edit::End),
        KeyCode::Char(c) if !ctrl => edit(Edit::Insert(c)),
        KeyCode::Tab if ctx == Context::Typing => Action::NextPane,
        KeyCode::BackTab if ctx == Context::Typing => Action::PrevPane,
        _ => Action::Nothing,
    }
}

fn browsing(pane: Pane, key: KeyEvent) -> Action {
    let files = matches!(pane, Pane::Local | Pane::Remote);
    match key.code {
        KeyCode::Tab => Action::NextPane,
        KeyCode::BackTab => Action::PrevPane,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home => Action::Home,
        KeyCode::End => Action::End,
        KeyCode::Esc => Action::Escape,
        KeyCode::Enter => Action::Enter,
        KeyCode::Right | KeyCode::Char('l') if files => Action::Enter,
        KeyCode::Left | KeyCode::Char('h') | KeyCode::Backspace if files => Action::Back,
        KeyCode::Char(' ') if files || pane == Pane::Peers => Action::Mark,
        KeyCode::Char('/') if files || pane == Pane::Peers => Action::Filter,
        KeyCode::Char('s') if pane == Pane::Local => Action::SendFiles,
        KeyCode::Char('.') if pane == Pane::Local => Action::ToggleHidden,
        KeyCode::Char('g') if pane == Pane::Remote => Action::GetFiles,
        KeyCode::Char('r') if pane == Pane::Remote => Action::Refresh,
        KeyCode::Char('+') if pane == Pane::Peers => Action::AddPeer,
        KeyCode::Char('t') if pane == Pane::Peers => Action::Trust,
        KeyCode::Char('i') if pane == Pane::Chat => Action::Enter,
        KeyCode::Char('x') if pane == Pane::Transfers => Action::Cancel,
        KeyCode::Char('r') if pane == Pane::Transfers => Action::Retry,
        _ => Action::Nothing,
    }
}

/// Every binding, for the help overlay: (keys, where, what).
pub const BINDINGS: &[(&str, &str, &str)] = &[
    ("Tab / Shift-Tab", "not typing", "next / previous pane"),
    ("↑ ↓  k j", "lists", "move"),
    ("PgUp PgDn Home End", "lists", "move by a page / to the ends"),
    ("Enter", "Peers", "open that conversation and type in it"),
    ("Enter / i", "Chat", "type a message"),
    ("Enter / Esc", "typing", "send / stop typing (the draft is kept)"),
    ("← → Home End", "typing", "move the cursor (Ctrl or Alt: by word)"),
    ("Ctrl-W / Ctrl-U / Ctrl-K", "typing", "delete a word / to the start / to the end"),
    ("↑ ↓", "typing", "earlier lines you sent"),
    ("Enter → l", "file columns", "open folder"),
    ("← h Backspace", "file columns", "parent folder"),
    ("Space", "file columns, Peers", "mark or unmark (several files; several peers)"),
    (
        "s",
        "local column",
        "send marked entries (or the one under the cursor) to the selected or marked peers",
    ),
    ("g", "remote column", "get marked entries (or the one under the cursor)"),
    ("r", "remote column", "list this folder again"),
    ("y / n / a", "offer", "accept / reject / always accept from this peer"),
    ("x / r", "Transfers", "cancel / retry or resume"),
    ("Enter", "Transfers", "offer: answer it · transfer: details"),
    ("/", "lists", "type to filter; Esc clears"),
    (".", "local column", "show or hide hidden files"),
    ("+ / t", "Peers", "add a peer by HOST:PORT / trust or untrust"),
    ("?", "not typing", "this help; Esc closes"),
    ("q", "not typing", "quit (Ctrl-C always quits)"),
    ("mouse", "anywhere", "click focuses and selects, the wheel scrolls"),
];

/// The keys shown in the footer for a context.
pub fn footer(ctx: Context) -> &'static [(&'static str, &'static str)] {
    match ctx {
        Context::Pane(Pane::Peers) => &[
            ("Enter", "chat"),
            ("Space", "mark"),
            ("+", "add"),
            ("t", "trust"),
            ("/", "filter"),
            ("Tab", "next"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Context::Pane(Pane::Chat) => &[("Enter", "type"), ("↑↓", "scroll"), ("Tab", "next"), ("?", "help"), ("q", "quit")],
        Context::Pane(Pane::Local) => &[
            ("Enter", "open"),
            ("←", "up"),
            ("Space", "mark"),
            ("s", "send"),
            (".", "hidden"),
            ("/", "filter"),
            ("Tab", "next"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Context::Pane(Pane::Remote) => &[
            ("Enter", "open"),
            ("←", "up"),
            ("Space", "mark"),
            ("g", "get"),
            ("r", "refresh"),
            ("/", "filter"),
            ("Tab", "next"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Context::Pane(Pane::Transfers) => &[
            ("x", "cancel"),
            ("r", "retry"),
            ("Enter", "answer offer"),
            ("Tab", "next"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Context::Typing => &[
            ("Enter", "send"),
            ("Esc", "stop typing"),
            ("↑", "earlier"),
            ("Ctrl-W", "delete word"),
            ("Tab", "next pane"),
        ],
        Context::Filter => &[("Enter", "keep filter"), ("Esc", "clear")],
        Context::AddPeer => &[("Enter", "add"), ("Esc", "cancel")],
        Context::Offer => &[("y", "accept"), ("n", "reject"), ("a", "always"), ("↑↓", "names"), ("Esc", "later")],
        Context::Help => &[("Esc", "close")],
        Context::Confirm => &[("y", "yes"), ("n", "no")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn the_same_key_means_what_the_pane_says() {
        assert_eq!(action(Context::Pane(Pane::Local), key(KeyCode::Char('s'))), Action::SendFiles);
        assert_eq!(action(Context::Pane(Pane::Remote), key(KeyCode::Char('s'))), Action::Nothing);
        assert_eq!(action(Context::Pane(Pane::Remote), key(KeyCode::Char('r'))), Action::Refresh);
        assert_eq!(action(Context::Pane(Pane::Transfers), key(KeyCode::Char('r'))), Action::Retry);
        assert_eq!(action(Context::Pane(Pane::Local), key(KeyCode::Left)), Action::Back);
        assert_eq!(action(Context::Pane(Pane::Peers), key(KeyCode::Char(' '))), Action::Mark);
        assert_eq!(action(Context::Pane(Pane::Chat), key(KeyCode::Char('q'))), Action::Quit);
    }

    #[test]
    fn typing_takes_every_printable_key_and_ctrl_c_always_quits() {
        assert_eq!(action(Context::Typing, key(KeyCode::Char('q'))), Action::Edit(Edit::Insert('q')));
        assert_eq!(action(Context::Typing, key(KeyCode::Char('?'))), Action::Edit(Edit::Insert('?')));
        assert_eq!(action(Context::Typing, key(KeyCode::Up)), Action::Edit(Edit::Older));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for ctx in [Context::Typing, Context::Help, Context::Offer, Context::Pane(Pane::Local)] {
            assert_eq!(action(ctx, ctrl_c), Action::Quit);
        }
        let ctrl_w = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(action(Context::Typing, ctrl_w), Action::Edit(Edit::DeleteWord));
    }

    #[test]
    fn tab_walks_the_panes_in_the_briefs_order() {
        let mut p = Pane::Peers;
        let mut seen = vec![p];
        for _ in 0..4 {
            p = p.next();
            seen.push(p);
        }
        assert_eq!(seen, Pane::ORDER);
        assert_eq!(Pane::Peers.prev(), Pane::Transfers);
    }
}
