//! The Chat pane's keys: typing a line (and `/nick`), scrolling the open conversation.

use super::*;

impl App {
    /// A key in the Chat pane (not typing).
    pub(super) fn chat_key(&mut self, act: Action) -> Vec<Cmd> {
        match act {
            Action::Enter => {
                self.typing = true;
                self.typing_from = None;
                Vec::new()
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => self.scroll_chat(act),
            _ => Vec::new(),
        }
    }

    pub(super) fn typing_key(&mut self, act: Action) -> Vec<Cmd> {
        let conversation = self.selected_conversation();
        match act {
            Action::Escape => {
                self.typing = false;
                if let Some(back) = self.typing_from.take() {
                    self.focus = back;
                }
                self.open_offer_if_any()
            }
            Action::NextPane => self.focus_on(self.focus.next()),
            Action::PrevPane => self.focus_on(self.focus.prev()),
            Action::PageUp | Action::PageDown => self.scroll_chat(act),
            Action::Edit(e) => {
                self.conversations.entry(conversation).or_default().draft.edit(e);
                Vec::new()
            }
            Action::Submit => {
                let conv = self.conversations.entry(conversation.clone()).or_default();
                if conv.draft.value().trim().is_empty() {
                    return Vec::new();
                }
                if let Some(cmds) = self.nick_command(&conversation) {
                    return cmds;
                }
                let conv = self.conversations.entry(conversation.clone()).or_default();
                let text = conv.draft.take();
                conv.scroll = 0;
                let request = Request::Say {
                    peer: conversation,
                    text,
                    queue: true,
                    timeout_ms: 0,
                };
                vec![self.call(request, Pending::Plain("say"))]
            }
            _ => Vec::new(),
        }
    }

    /// `/nick NAME` typed as a chat line: a new nick (kept in the data dir, told to peers). A
    /// nick that cannot be stays in the input with the reason. None: not a command.
    pub(super) fn nick_command(&mut self, conversation: &str) -> Option<Vec<Cmd>> {
        let conv = self.conversations.entry(conversation.to_string()).or_default();
        let typed = conv.draft.value().trim_start();
        let rest = typed.strip_prefix("/nick")?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        let nick = rest.trim().to_string();
        if nick.is_empty() {
            self.say("/nick NAME changes your nick");
            return Some(Vec::new());
        }
        if let Err(e) = crate::node::api::validate_nick(&nick) {
            self.say(format!("{e} (this one has {} bytes)", nick.len()));
            return Some(Vec::new());
        }
        conv.draft.take();
        Some(vec![self.call(Request::SetNick { nick: nick.clone() }, Pending::Nick(nick))])
    }

    /// Scroll the open conversation; near its oldest loaded line, the page before it is asked for.
    pub(super) fn scroll_chat(&mut self, act: Action) -> Vec<Cmd> {
        let page = self.page();
        let id = self.selected_conversation();
        let conv = self.conversations.entry(id.clone()).or_default();
        // The oldest line stays on screen: scrolling further shows nothing.
        let max = conv.lines.len().saturating_sub(1);
        conv.scroll = match act {
            Action::Up => (conv.scroll + 1).min(max),
            Action::Down => conv.scroll.saturating_sub(1),
            Action::PageUp => (conv.scroll + page).min(max),
            Action::PageDown => conv.scroll.saturating_sub(page),
            Action::Home => max,
            Action::End => 0,
            _ => conv.scroll,
        };
        let near_top = conv.scroll + 2 * page >= conv.lines.len();
        if !near_top || conv.complete || conv.fetching || !conv.loaded {
            return Vec::new();
        }
        let Some(first) = conv.lines.first().map(|l| l.id.clone()) else {
            return Vec::new();
        };
        conv.fetching = true;
        let request = Request::History {
            peer: id.clone(),
            limit: Some(HISTORY_PAGE),
            before: Some(first),
            after: None,
            first: false,
        };
        vec![self.call(request, Pending::Older(id))]
    }
}
