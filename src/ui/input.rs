//! A line being typed: editing (through `tui-input`), and the lines sent before it for ↑/↓.

use tui_input::{Input, InputRequest};

/// Lines kept for ↑ recall.
const HISTORY: usize = 100;

#[derive(Debug, Default, Clone)]
pub struct Line {
    pub input: Input,
    /// Sent lines, oldest first.
    history: Vec<String>,
    /// Where ↑/↓ is in `history` (None: editing the draft).
    recalled: Option<usize>,
    /// The draft put aside while recalling.
    parked: Option<String>,
}

/// An editing action, from the keymap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Insert(char),
    Left,
    Right,
    WordLeft,
    WordRight,
    Home,
    End,
    Backspace,
    Delete,
    DeleteWord,
    DeleteToStart,
    DeleteToEnd,
    Older,
    Newer,
}

impl Line {
    pub fn value(&self) -> &str {
        self.input.value()
    }

    pub fn is_empty(&self) -> bool {
        self.input.value().is_empty()
    }

    pub fn edit(&mut self, edit: Edit) {
        let request = match edit {
            Edit::Insert(c) => InputRequest::InsertChar(c),
            Edit::Left => InputRequest::GoToPrevChar,
            Edit::Right => InputRequest::GoToNextChar,
            Edit::WordLeft => InputRequest::GoToPrevWord,
            Edit::WordRight => InputRequest::GoToNextWord,
            Edit::Home => InputRequest::GoToStart,
            Edit::End => InputRequest::GoToEnd,
            Edit::Backspace => InputRequest::DeletePrevChar,
            Edit::Delete => InputRequest::DeleteNextChar,
            Edit::DeleteWord => InputRequest::DeletePrevWord,
            Edit::DeleteToStart => InputRequest::DeleteFromStart,
            Edit::DeleteToEnd => InputRequest::DeleteTillEnd,
            Edit::Older => return self.recall(true),
            Edit::Newer => return self.recall(false),
        };
        self.input.handle(request);
    }

    /// Paste text (newlines become spaces: one line is one message).
    pub fn paste(&mut self, text: &str) {
        for c in text.chars() {
            let c = if c == '\n' || c == '\r' { ' ' } else { c };
            self.input.handle(InputRequest::InsertChar(c));
        }
    }

    fn recall(&mut self, older: bool) {
        if self.history.is_empty() {
            return;
        }
        let next = match (self.recalled, older) {
            (None, true) => Some(self.history.len() - 1),
            (None, false) => return,
            (Some(0), true) => Some(0),
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        if self.recalled.is_none() {
            self.parked = Some(self.input.value().to_string());
        }
        self.recalled = next;
        let text = match next {
            Some(i) => self.history[i].clone(),
            None => self.parked.take().unwrap_or_default(),
        };
        self.input = Input::new(text);
    }

    /// The line is sent: it goes to the history and the input empties.
    pub fn take(&mut self) -> String {
        let text = self.input.value_and_reset();
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        self.recalled = None;
        self.parked = None;
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> Line {
        let mut l = Line::default();
        for c in s.chars() {
            l.edit(Edit::Insert(c));
        }
        l
    }

    #[test]
    fn editing_moves_by_characters_and_words() {
        let mut l = typed("héllo wörld 🎉");
        l.edit(Edit::DeleteWord);
        assert_eq!(l.value(), "héllo wörld ");
        l.edit(Edit::Home);
        l.edit(Edit::Delete);
        assert_eq!(l.value(), "éllo wörld ");
        l.edit(Edit::End);
        l.edit(Edit::Backspace);
        l.edit(Edit::WordLeft);
        l.edit(Edit::DeleteToEnd);
        assert_eq!(l.value(), "éllo ");
    }

    #[test]
    fn up_recalls_sent_lines_and_down_returns_to_the_draft() {
        let mut l = typed("one");
        assert_eq!(l.take(), "one");
        l.paste("two\nlines");
        assert_eq!(l.take(), "two lines");
        l.paste("draft");
        l.edit(Edit::Older);
        assert_eq!(l.value(), "two lines");
        l.edit(Edit::Older);
        l.edit(Edit::Older);
        assert_eq!(l.value(), "one");
        l.edit(Edit::Newer);
        l.edit(Edit::Newer);
        assert_eq!(l.value(), "draft");
    }
}
