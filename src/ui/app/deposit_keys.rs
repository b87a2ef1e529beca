//! The locker in the TUI: `d` in the local column deposits what is picked (after asking how
//! many copies), the Deposits column (the right column of Files, `L`) lists my deposits as the
//! node reports them, and `g` there retrieves one into the download dir.

use super::*;

/// Copies a deposit asks for unless the person says otherwise (as `lanyard deposit`).
pub const DEFAULT_REPLICAS: &str = "2";

/// What each holder's copy of a deposit is, as the Deposits column marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Verified, and its holder is online.
    Verified,
    /// Verified when last heard of; its holder is offline.
    Offline,
    /// Lost or corrupted: it no longer counts.
    Lost,
}

impl Health {
    pub fn mark(self) -> &'static str {
        match self {
            Health::Verified => "✓",
            Health::Offline => "◌",
            Health::Lost => "✗",
        }
    }
}

impl App {
    /// The right column of Files shows my deposits (else the selected peer's shares).
    pub(super) fn column(&self, pane: Pane) -> Pane {
        match pane {
            Pane::Remote | Pane::Deposits if self.locker => Pane::Deposits,
            Pane::Remote | Pane::Deposits => Pane::Remote,
            other => other,
        }
    }

    /// A holder's copy: verified (its holder online, as the peer list says now), offline, or
    /// lost.
    pub fn health(&self, h: &HolderView) -> Health {
        if !h.verified {
            return Health::Lost;
        }
        let online = match self.peers.iter().find(|p| p.id.as_str() == h.id) {
            Some(p) => p.online,
            None => h.online,
        };
        if online { Health::Verified } else { Health::Offline }
    }

    /// A holder's name as the screen shows it (its nick may be anything: drawn through
    /// `printable` by the view).
    pub fn holder_name(&self, h: &HolderView) -> String {
        match PeerId::parse(&h.id) {
            Some(id) if self.peers.iter().any(|p| p.id == id) => self.peer_name(&id),
            _ if !h.nick.is_empty() => h.nick.clone(),
            _ => h.id.chars().take(8).collect(),
        }
    }

    pub(super) fn set_deposits(&mut self, deposits: Vec<DepositView>) {
        self.deposits = deposits;
        self.deposit_cursor = self.deposit_cursor.min(self.deposits.len().saturating_sub(1));
    }

    pub(super) fn toggle_locker(&mut self) -> Vec<Cmd> {
        self.locker = !self.locker;
        if matches!(self.focus, Pane::Remote | Pane::Deposits) {
            self.focus = self.column(self.focus);
        }
        if self.locker { Vec::new() } else { self.show_remote() }
    }

    /// `d` in the local column: ask how many copies, for what is picked.
    pub(super) fn ask_deposit(&mut self) -> Vec<Cmd> {
        let paths = self.local.chosen_paths();
        if paths.is_empty() {
            self.say("nothing to deposit here");
            return Vec::new();
        }
        self.replicas = Line::default();
        self.replicas.paste(DEFAULT_REPLICAS);
        self.overlay = Some(Overlay::Deposit { paths, error: None });
        Vec::new()
    }

    pub(super) fn replicas_key(&mut self, act: Action) -> Vec<Cmd> {
        match act {
            Action::Escape => {
                self.overlay = None;
                self.say("nothing deposited");
                Vec::new()
            }
            Action::Edit(e) => {
                self.replicas.edit(e);
                if let Some(Overlay::Deposit { error, .. }) = &mut self.overlay {
                    *error = None;
                }
                Vec::new()
            }
            Action::Submit => {
                let typed = self.replicas.value().trim().to_string();
                let replicas = match typed.parse::<u32>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        if let Some(Overlay::Deposit { error, .. }) = &mut self.overlay {
                            *error = Some("how many copies: a number, 1 or more".into());
                        }
                        return Vec::new();
                    }
                };
                let Some(Overlay::Deposit { paths, .. }) = self.overlay.take() else {
                    return Vec::new();
                };
                self.say(format!(
                    "depositing {} with {} each",
                    crate::text::plural(paths.len(), "item"),
                    crate::text::plural(replicas, "copy")
                ));
                self.local.list.marked.clear();
                // The column that shows how it goes.
                self.locker = true;
                if self.focus == Pane::Remote {
                    self.focus = Pane::Deposits;
                }
                let request = Request::Deposit {
                    paths,
                    replicas,
                    to: Vec::new(),
                };
                vec![self.call(request, Pending::Plain("deposit"))]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn deposits_key(&mut self, act: Action) -> Vec<Cmd> {
        match act {
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => {
                self.deposit_cursor = moved(self.deposit_cursor, self.deposits.len(), act, self.page());
                Vec::new()
            }
            Action::GetFiles => {
                let Some(d) = self.deposits.get(self.deposit_cursor) else {
                    self.say("no deposit to retrieve");
                    return Vec::new();
                };
                let (id, name) = (d.id.clone(), d.name.clone());
                self.say(format!("retrieving {}", printable(&name)));
                let request = Request::Retrieve { deposit: id, to: None };
                vec![self.call(request, Pending::Plain("retrieve"))]
            }
            Action::Refresh => vec![self.call(Request::Deposits, Pending::Plain("deposits"))],
            _ => Vec::new(),
        }
    }

    /// What a deposit did, for the status line.
    pub(super) fn deposited(&mut self, r: &DepositReport) {
        let name = printable(&r.deposit.name).into_owned();
        let copies = format!("{} of {}", r.deposit.replicas_verified, r.deposit.replicas_wanted);
        let mut text = if r.note.is_empty() {
            format!("{name}: {copies} copies verified")
        } else {
            format!("{name}: {} ({copies} verified)", printable(&r.note))
        };
        if !r.refused.is_empty() {
            text.push_str(&format!("; {}", printable(&r.refused.join("; "))));
        }
        self.say(text);
    }

    pub(super) fn retrieved(&mut self, r: &Retrieved) {
        let whole = if r.outcome.all_ok() { "" } else { " (not whole)" };
        self.say(format!(
            "{} retrieved from {} into {}{whole}",
            printable(&r.name),
            printable(&r.from),
            printable(&r.saved_to)
        ));
    }
}
