//! The keymap: one table, [`BINDINGS`], of every key, where it works, what it does and how help
//! explains it. [`action`] dispatches by reading that table, and the help overlay and the footer
//! are drawn from it, so what the screen teaches is what the keys do.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::input::Edit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Peers,
    Chat,
    Local,
    Remote,
    Transfers,
    /// The locker: my deposits, in the right column of Files in place of a peer's shares.
    Deposits,
}

impl Pane {
    pub const ORDER: [Pane; 5] = [Pane::Peers, Pane::Chat, Pane::Local, Pane::Remote, Pane::Transfers];

    /// Tab and Shift-Tab: the Deposits column stands where the Remote one does.
    pub fn next(self) -> Pane {
        let at = if self == Pane::Deposits { Pane::Remote } else { self };
        let i = Self::ORDER.iter().position(|p| *p == at).unwrap_or(0);
        Self::ORDER[(i + 1) % Self::ORDER.len()]
    }

    pub fn prev(self) -> Pane {
        let at = if self == Pane::Deposits { Pane::Remote } else { self };
        let i = Self::ORDER.iter().position(|p| *p == at).unwrap_or(0);
        Self::ORDER[(i + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }

    /// The number key that focuses it, shown in its title (both file columns are Files, 3).
    pub fn number(self) -> u8 {
        match self {
            Pane::Peers => 1,
            Pane::Chat => 2,
            Pane::Local | Pane::Remote | Pane::Deposits => 3,
            Pane::Transfers => 4,
        }
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
    /// Typing HOST[:PORT] for a new peer.
    AddPeer,
    /// Typing the PIN a LocalSend device asks for.
    Pin,
    Offer,
    /// Reading help, or a transfer's details (scrolled and closed alike).
    Help,
    /// A question with yes / no (a send to several peers, sending dropped paths).
    Confirm,
    /// Typing how many copies a deposit asks for.
    Replicas,
}

impl Context {
    /// Every context, for checks over the whole table.
    pub const ALL: [Context; 14] = [
        Context::Pane(Pane::Peers),
        Context::Pane(Pane::Chat),
        Context::Pane(Pane::Local),
        Context::Pane(Pane::Remote),
        Context::Pane(Pane::Transfers),
        Context::Pane(Pane::Deposits),
        Context::Typing,
        Context::Filter,
        Context::AddPeer,
        Context::Pin,
        Context::Offer,
        Context::Help,
        Context::Confirm,
        Context::Replicas,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextPane,
    PrevPane,
    Focus(Pane),
    /// The offers waiting for an answer.
    Offers,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Peers: open the conversation and type; files: open the folder; chat: start typing;
    /// Transfers: answer the offer under the cursor, or show the transfer's details.
    Enter,
    Back,
    Mark,
    SendFiles,
    GetFiles,
    /// The local column: deposit what is picked in the locker.
    Deposit,
    /// The right column of Files: my deposits, or the selected peer's shares.
    Locker,
    Filter,
    ToggleHidden,
    /// The local column: to the download dir, and back to where it was.
    DownloadDir,
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

/// Which modifier a key needs (Shift is part of the character: `D`, `?`, `+`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mods {
    None,
    Ctrl,
    Alt,
}

/// One key of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Plain(KeyCode, Mods),
    /// Any character without Ctrl (typing).
    AnyChar,
}

impl Key {
    fn matches(self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match self {
            Key::AnyChar => matches!(key.code, KeyCode::Char(_)) && !ctrl,
            Key::Plain(code, mods) => {
                let code_matches = code == key.code
                    || (code == KeyCode::BackTab && key.code == KeyCode::Tab && key.modifiers.contains(KeyModifiers::SHIFT));
                code_matches
                    && match mods {
                        Mods::None => !ctrl && !alt,
                        Mods::Ctrl => ctrl,
                        Mods::Alt => alt && !ctrl,
                    }
            }
        }
    }

    /// How the key is written in help and the footer.
    pub fn label(self) -> String {
        let Key::Plain(code, mods) = self else {
            return "a-z…".into();
        };
        let name = match code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) if mods == Mods::None => c.to_string(),
            KeyCode::Char(c) => c.to_ascii_uppercase().to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Backspace => "Backspace".into(),
            KeyCode::Delete => "Del".into(),
            other => other.to_string(),
        };
        match mods {
            Mods::None => name,
            Mods::Ctrl => format!("Ctrl-{name}"),
            Mods::Alt => format!("Alt-{name}"),
        }
    }
}

/// Where a binding works; also the heading it is listed under in help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every pane, not typing.
    Browsing,
    /// Moving in any pane (lists, and the chat's lines).
    Moving,
    Pane(Pane),
    /// Both file columns.
    Files,
    /// The Files pane, whatever its right column shows.
    FilesPane,
    /// Peers and both file columns.
    Marking,
    Typing,
    /// Every line being typed: chat, filter, address.
    Editing,
    Filter,
    AddPeer,
    Pin,
    Offer,
    Confirm,
    Replicas,
    Help,
    /// Everywhere, typing too.
    Always,
}

impl Scope {
    pub fn applies(self, ctx: Context) -> bool {
        match (self, ctx) {
            (Scope::Always, _) => true,
            (Scope::Browsing | Scope::Moving, Context::Pane(_)) => true,
            (Scope::Pane(p), Context::Pane(q)) => p == q,
            (Scope::Files, Context::Pane(p)) => matches!(p, Pane::Local | Pane::Remote),
            (Scope::FilesPane, Context::Pane(p)) => matches!(p, Pane::Local | Pane::Remote | Pane::Deposits),
            (Scope::Marking, Context::Pane(p)) => matches!(p, Pane::Peers | Pane::Local | Pane::Remote),
            (Scope::Editing, c) => matches!(
                c,
                Context::Typing | Context::Filter | Context::AddPeer | Context::Pin | Context::Replicas
            ),
            (Scope::Typing, Context::Typing)
            | (Scope::Filter, Context::Filter)
            | (Scope::AddPeer, Context::AddPeer)
            | (Scope::Pin, Context::Pin)
            | (Scope::Offer, Context::Offer)
            | (Scope::Confirm, Context::Confirm)
            | (Scope::Replicas, Context::Replicas)
            | (Scope::Help, Context::Help) => true,
            _ => false,
        }
    }

    /// The help heading.
    pub fn heading(self) -> &'static str {
        match self {
            Scope::Browsing => "Anywhere (not typing)",
            Scope::Moving => "Lists and the chat",
            Scope::Pane(Pane::Peers) => "Peers (1)",
            Scope::Pane(Pane::Chat) => "Chat (2)",
            Scope::Pane(Pane::Local) => "Local column (3, left)",
            Scope::Pane(Pane::Remote) => "Remote column (3, right: a peer's shares)",
            Scope::Pane(Pane::Transfers) => "Transfers (4)",
            Scope::Pane(Pane::Deposits) => "Deposits (3, right: my files kept on other machines)",
            Scope::Files => "Both file columns",
            Scope::FilesPane => "Files (3)",
            Scope::Marking => "Peers and file columns",
            Scope::Typing => "Typing a chat line",
            Scope::Editing => "Typing anything (chat, filter, address, PIN)",
            Scope::Filter => "Typing a filter",
            Scope::AddPeer => "Adding a peer",
            Scope::Pin => "A LocalSend device's PIN",
            Scope::Offer => "Offer dialog",
            Scope::Confirm => "A question (y/n)",
            Scope::Replicas => "Depositing: how many copies",
            Scope::Help => "This help, and a transfer's details",
            Scope::Always => "Always",
        }
    }
}

/// A key (or a few that do the same), where it works, what it does, and its words for help and
/// for the footer (`short`; empty: not in the footer).
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub scope: Scope,
    pub action: Action,
    pub help: &'static str,
    pub short: &'static str,
}

const fn k(code: KeyCode) -> Key {
    Key::Plain(code, Mods::None)
}

const fn c(ch: char) -> Key {
    Key::Plain(KeyCode::Char(ch), Mods::None)
}

const fn ctrl(ch: char) -> Key {
    Key::Plain(KeyCode::Char(ch), Mods::Ctrl)
}

const fn b(keys: &'static [Key], scope: Scope, action: Action, help: &'static str, short: &'static str) -> Binding {
    Binding {
        keys,
        scope,
        action,
        help,
        short,
    }
}

use Scope as S;

/// Every binding, in the order help lists them (grouped by scope) and dispatch tries them.
pub const BINDINGS: &[Binding] = &[
    // Peers
    b(
        &[k(KeyCode::Enter)],
        S::Pane(Pane::Peers),
        Action::Enter,
        "open that conversation and type in it",
        "chat",
    ),
    b(
        &[c('+')],
        S::Pane(Pane::Peers),
        Action::AddPeer,
        "add a peer by HOST[:PORT] (port 7717 if not given)",
        "add",
    ),
    b(
        &[c('t')],
        S::Pane(Pane::Peers),
        Action::Trust,
        "trust or untrust: its files are accepted without asking",
        "trust",
    ),
    // Chat
    b(
        &[k(KeyCode::Enter), c('i')],
        S::Pane(Pane::Chat),
        Action::Enter,
        "type a message",
        "type",
    ),
    // Local column
    b(
        &[c('s')],
        S::Pane(Pane::Local),
        Action::SendFiles,
        "send the marked entries (or the one under the cursor) to the marked peers, else to the selected one",
        "send",
    ),
    b(
        &[c('d')],
        S::Pane(Pane::Local),
        Action::Deposit,
        "deposit the marked entries (or the one under the cursor) in the locker: verified copies kept for you on other machines (asks how many)",
        "deposit",
    ),
    b(
        &[c('D')],
        S::Pane(Pane::Local),
        Action::DownloadDir,
        "go to the download dir, and back",
        "downloads",
    ),
    b(
        &[c('r')],
        S::Pane(Pane::Local),
        Action::Refresh,
        "read this folder again (it also follows changes by itself)",
        "",
    ),
    b(
        &[c('.')],
        S::Pane(Pane::Local),
        Action::ToggleHidden,
        "show or hide hidden files",
        "hidden",
    ),
    // Remote column
    b(
        &[c('g')],
        S::Pane(Pane::Remote),
        Action::GetFiles,
        "get the marked entries (or the one under the cursor)",
        "get",
    ),
    b(
        &[c('r')],
        S::Pane(Pane::Remote),
        Action::Refresh,
        "list this folder again",
        "refresh",
    ),
    // Deposits
    b(
        &[c('g')],
        S::Pane(Pane::Deposits),
        Action::GetFiles,
        "retrieve the deposit under the cursor into the download dir (a name taken gets \" (1)\")",
        "retrieve",
    ),
    b(
        &[c('r')],
        S::Pane(Pane::Deposits),
        Action::Refresh,
        "ask the holders online again what they keep",
        "refresh",
    ),
    // Both columns
    b(
        &[k(KeyCode::Enter), k(KeyCode::Right), c('l')],
        S::Files,
        Action::Enter,
        "open the folder",
        "open",
    ),
    b(
        &[k(KeyCode::Left), c('h'), k(KeyCode::Backspace)],
        S::Files,
        Action::Back,
        "the parent folder",
        "up",
    ),
    // Marking and filtering
    b(
        &[c(' ')],
        S::Marking,
        Action::Mark,
        "mark or unmark (several files; several peers for one send)",
        "mark",
    ),
    b(&[c('/')], S::Marking, Action::Filter, "type to filter; Esc clears", "filter"),
    b(&[k(KeyCode::Esc)], S::Marking, Action::Escape, "clear the filter", ""),
    b(
        &[c('L')],
        S::FilesPane,
        Action::Locker,
        "the right column: my deposits (the locker), or the selected peer's shares",
        "locker",
    ),
    // Transfers
    b(
        &[c('x')],
        S::Pane(Pane::Transfers),
        Action::Cancel,
        "cancel the transfer under the cursor",
        "cancel",
    ),
    b(
        &[c('r')],
        S::Pane(Pane::Transfers),
        Action::Retry,
        "retry or resume it (what arrived is kept)",
        "retry",
    ),
    b(
        &[k(KeyCode::Enter)],
        S::Pane(Pane::Transfers),
        Action::Enter,
        "answer the offer under the cursor; on a transfer, its details: every recipient, the files that failed, the whole message",
        "open",
    ),
    // Moving
    b(&[k(KeyCode::Up), c('k')], S::Moving, Action::Up, "up (the chat: older lines)", ""),
    b(&[k(KeyCode::Down), c('j')], S::Moving, Action::Down, "down", ""),
    b(&[k(KeyCode::PageUp)], S::Moving, Action::PageUp, "a page up", ""),
    b(&[k(KeyCode::PageDown)], S::Moving, Action::PageDown, "a page down", ""),
    b(&[k(KeyCode::Home)], S::Moving, Action::Home, "to the top", ""),
    b(
        &[k(KeyCode::End)],
        S::Moving,
        Action::End,
        "to the end (the chat: follow new lines)",
        "",
    ),
    // Typing
    b(
        &[k(KeyCode::Enter)],
        S::Typing,
        Action::Submit,
        "send the line (/nick NAME changes your nick)",
        "send",
    ),
    b(
        &[k(KeyCode::Up)],
        S::Typing,
        Action::Edit(Edit::Older),
        "an earlier line you sent",
        "earlier",
    ),
    b(
        &[k(KeyCode::Down)],
        S::Typing,
        Action::Edit(Edit::Newer),
        "a later line you sent",
        "",
    ),
    b(&[k(KeyCode::PageUp)], S::Typing, Action::PageUp, "scroll the chat a page up", ""),
    b(
        &[k(KeyCode::PageDown)],
        S::Typing,
        Action::PageDown,
        "scroll the chat a page down",
        "",
    ),
    b(
        &[k(KeyCode::Tab)],
        S::Typing,
        Action::NextPane,
        "next pane (the draft is kept)",
        "next pane",
    ),
    b(&[k(KeyCode::BackTab)], S::Typing, Action::PrevPane, "previous pane", ""),
    b(&[k(KeyCode::Enter)], S::Filter, Action::Submit, "keep the filter", "keep filter"),
    b(&[k(KeyCode::Enter)], S::AddPeer, Action::Submit, "connect", "connect"),
    b(&[k(KeyCode::Enter)], S::Pin, Action::Submit, "send again with this PIN", "send"),
    // Any line being typed
    b(
        &[k(KeyCode::Esc)],
        S::Editing,
        Action::Escape,
        "stop typing (a chat draft is kept; a filter is cleared)",
        "stop",
    ),
    b(
        &[Key::Plain(KeyCode::Left, Mods::Ctrl), Key::Plain(KeyCode::Left, Mods::Alt)],
        S::Editing,
        Action::Edit(Edit::WordLeft),
        "a word left",
        "",
    ),
    b(
        &[Key::Plain(KeyCode::Right, Mods::Ctrl), Key::Plain(KeyCode::Right, Mods::Alt)],
        S::Editing,
        Action::Edit(Edit::WordRight),
        "a word right",
        "",
    ),
    b(&[k(KeyCode::Left)], S::Editing, Action::Edit(Edit::Left), "a character left", ""),
    b(&[k(KeyCode::Right)], S::Editing, Action::Edit(Edit::Right), "a character right", ""),
    b(
        &[k(KeyCode::Home), ctrl('a')],
        S::Editing,
        Action::Edit(Edit::Home),
        "to the start",
        "",
    ),
    b(&[k(KeyCode::End), ctrl('e')], S::Editing, Action::Edit(Edit::End), "to the end", ""),
    b(
        &[
            ctrl('w'),
            Key::Plain(KeyCode::Backspace, Mods::Ctrl),
            Key::Plain(KeyCode::Backspace, Mods::Alt),
        ],
        S::Editing,
        Action::Edit(Edit::DeleteWord),
        "delete the word before the cursor",
        "delete word",
    ),
    b(
        &[k(KeyCode::Backspace)],
        S::Editing,
        Action::Edit(Edit::Backspace),
        "delete the character before",
        "",
    ),
    b(
        &[k(KeyCode::Delete)],
        S::Editing,
        Action::Edit(Edit::Delete),
        "delete the character under",
        "",
    ),
    b(
        &[ctrl('u')],
        S::Editing,
        Action::Edit(Edit::DeleteToStart),
        "delete to the start",
        "",
    ),
    b(&[ctrl('k')], S::Editing, Action::Edit(Edit::DeleteToEnd), "delete to the end", ""),
    b(
        &[Key::AnyChar],
        S::Editing,
        Action::Edit(Edit::Insert(' ')),
        "typed as text (q and ? too)",
        "",
    ),
    // Offer dialog
    b(
        &[c('y')],
        S::Offer,
        Action::Accept,
        "accept: the files go to the download dir",
        "accept",
    ),
    b(&[c('n')], S::Offer, Action::Reject, "reject", "reject"),
    b(
        &[c('a')],
        S::Offer,
        Action::Always,
        "accept, and always accept from this peer",
        "always",
    ),
    b(&[k(KeyCode::Up), c('k')], S::Offer, Action::Up, "scroll the names up", "names"),
    b(&[k(KeyCode::Down), c('j')], S::Offer, Action::Down, "scroll the names down", ""),
    b(&[k(KeyCode::PageUp)], S::Offer, Action::PageUp, "a page of names up", ""),
    b(&[k(KeyCode::PageDown)], S::Offer, Action::PageDown, "a page of names down", ""),
    b(
        &[k(KeyCode::Esc)],
        S::Offer,
        Action::Escape,
        "later: it waits in Transfers (o brings it back)",
        "later",
    ),
    // How many copies
    b(
        &[k(KeyCode::Enter)],
        S::Replicas,
        Action::Submit,
        "deposit with that many copies",
        "deposit",
    ),
    // A question
    b(&[c('y'), k(KeyCode::Enter)], S::Confirm, Action::Accept, "yes", "yes"),
    b(&[c('n'), k(KeyCode::Esc)], S::Confirm, Action::Escape, "no", "no"),
    // Help
    b(&[k(KeyCode::Up), c('k')], S::Help, Action::Up, "scroll up", "scroll"),
    b(&[k(KeyCode::Down), c('j')], S::Help, Action::Down, "scroll down", ""),
    b(&[k(KeyCode::PageUp)], S::Help, Action::PageUp, "a page up", "page"),
    b(&[k(KeyCode::PageDown)], S::Help, Action::PageDown, "a page down", ""),
    b(&[k(KeyCode::Home)], S::Help, Action::Home, "to the top", "top/end"),
    b(&[k(KeyCode::End)], S::Help, Action::End, "to the end", ""),
    b(&[k(KeyCode::Esc), c('?'), c('q')], S::Help, Action::Escape, "close", "close"),
    // Anywhere
    b(&[c('1')], S::Browsing, Action::Focus(Pane::Peers), "focus Peers", ""),
    b(&[c('2')], S::Browsing, Action::Focus(Pane::Chat), "focus Chat", ""),
    b(&[c('3')], S::Browsing, Action::Focus(Pane::Local), "focus Files", ""),
    b(&[c('4')], S::Browsing, Action::Focus(Pane::Transfers), "focus Transfers", ""),
    b(
        &[k(KeyCode::Tab)],
        S::Browsing,
        Action::NextPane,
        "next pane: Peers, Chat, Local, Remote, Transfers",
        "next",
    ),
    b(&[k(KeyCode::BackTab)], S::Browsing, Action::PrevPane, "previous pane", ""),
    b(&[c('o')], S::Browsing, Action::Offers, "the offers waiting for your answer", ""),
    b(&[c('?')], S::Browsing, Action::Help, "this help", "help"),
    b(&[c('q')], S::Browsing, Action::Quit, "quit", "quit"),
    b(&[ctrl('c')], S::Always, Action::Quit, "quit, also while typing", ""),
];

/// What `key` means in `ctx`: the first binding of the table that works there and has the key.
pub fn action(ctx: Context, key: KeyEvent) -> Action {
    for binding in BINDINGS.iter().filter(|b| b.scope.applies(ctx)) {
        if let Some(k) = binding.keys.iter().find(|k| k.matches(&key)) {
            return match (k, key.code) {
                (Key::AnyChar, KeyCode::Char(ch)) => Action::Edit(Edit::Insert(ch)),
                _ => binding.action,
            };
        }
    }
    Action::Nothing
}

/// The keys shown in the footer for a context: what is particular to it first, then what
/// works everywhere; each as (its first key, a word).
pub fn footer(ctx: Context) -> Vec<(String, &'static Binding)> {
    let shown = |b: &&Binding| !b.short.is_empty() && b.scope.applies(ctx);
    let general = |b: &Binding| matches!(b.scope, Scope::Browsing | Scope::Moving | Scope::Always);
    let specific = BINDINGS.iter().filter(shown).filter(|b| !general(b));
    let rest = BINDINGS.iter().filter(shown).filter(|b| general(b));
    specific.chain(rest).map(|b| (b.keys[0].label(), b)).collect()
}

/// A binding's keys as help writes them: `↑ k`.
pub fn keys_label(binding: &Binding) -> String {
    binding.keys.iter().map(|k| k.label()).collect::<Vec<_>>().join(" ")
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
        assert_eq!(action(Context::Pane(Pane::Local), key(KeyCode::Char('r'))), Action::Refresh);
        assert_eq!(action(Context::Pane(Pane::Transfers), key(KeyCode::Char('r'))), Action::Retry);
        assert_eq!(action(Context::Pane(Pane::Local), key(KeyCode::Left)), Action::Back);
        assert_eq!(action(Context::Pane(Pane::Peers), key(KeyCode::Char(' '))), Action::Mark);
        assert_eq!(action(Context::Pane(Pane::Chat), key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(
            action(Context::Pane(Pane::Chat), key(KeyCode::Char('3'))),
            Action::Focus(Pane::Local)
        );
        assert_eq!(action(Context::Pane(Pane::Local), key(KeyCode::Char('o'))), Action::Offers);
        let shift_d = KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT);
        assert_eq!(action(Context::Pane(Pane::Local), shift_d), Action::DownloadDir);
        assert_eq!(action(Context::Help, key(KeyCode::End)), Action::End);
        assert_eq!(action(Context::Help, key(KeyCode::PageDown)), Action::PageDown);
        let shift_tab = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(action(Context::Pane(Pane::Peers), shift_tab), Action::PrevPane);
    }

    #[test]
    fn typing_takes_every_printable_key_and_ctrl_c_always_quits() {
        assert_eq!(action(Context::Typing, key(KeyCode::Char('q'))), Action::Edit(Edit::Insert('q')));
        assert_eq!(action(Context::Typing, key(KeyCode::Char('?'))), Action::Edit(Edit::Insert('?')));
        assert_eq!(action(Context::Typing, key(KeyCode::Char('3'))), Action::Edit(Edit::Insert('3')));
        assert_eq!(action(Context::Typing, key(KeyCode::Up)), Action::Edit(Edit::Older));
        assert_eq!(action(Context::Filter, key(KeyCode::Up)), Action::Nothing);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for ctx in Context::ALL {
            assert_eq!(action(ctx, ctrl_c), Action::Quit, "{ctx:?}");
        }
        let ctrl_w = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(action(Context::Typing, ctrl_w), Action::Edit(Edit::DeleteWord));
        let alt_left = KeyEvent::new(KeyCode::Left, KeyModifiers::ALT);
        assert_eq!(action(Context::AddPeer, alt_left), Action::Edit(Edit::WordLeft));
    }

    /// Dispatch and help read one table; this makes sure no row of it is dead: in every
    /// context where a binding works, each of its keys does what the row says (no earlier row
    /// takes the key), so nothing help lists is a lie.
    #[test]
    fn every_binding_help_lists_is_what_its_keys_do() {
        for ctx in Context::ALL {
            for binding in BINDINGS.iter().filter(|b| b.scope.applies(ctx)) {
                for k in binding.keys {
                    let event = match *k {
                        Key::Plain(code, Mods::None) => KeyEvent::new(code, KeyModifiers::NONE),
                        Key::Plain(code, Mods::Ctrl) => KeyEvent::new(code, KeyModifiers::CONTROL),
                        Key::Plain(code, Mods::Alt) => KeyEvent::new(code, KeyModifiers::ALT),
                        Key::AnyChar => KeyEvent::new(KeyCode::Char('z'), KeyModifiers::NONE),
                    };
                    let want = match *k {
                        Key::AnyChar => Action::Edit(Edit::Insert('z')),
                        _ => binding.action,
                    };
                    assert_eq!(action(ctx, event), want, "{} in {ctx:?} ({})", k.label(), binding.help);
                }
            }
        }
    }

    #[test]
    fn every_context_can_be_left_and_the_footer_shows_its_own_keys_first() {
        for ctx in Context::ALL {
            let leaves = BINDINGS
                .iter()
                .any(|b| b.scope.applies(ctx) && matches!(b.action, Action::Escape | Action::Quit | Action::NextPane));
            assert!(leaves, "{ctx:?}");
        }
        let local: Vec<String> = footer(Context::Pane(Pane::Local)).into_iter().map(|(k, _)| k).collect();
        assert_eq!(local.first().map(String::as_str), Some("s"), "{local:?}");
        assert_eq!(local.last().map(String::as_str), Some("q"), "{local:?}");
        assert_eq!(keys_label(&BINDINGS[0]), "Enter");
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
