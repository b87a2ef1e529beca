//! The Transfers pane's keys and the offer overlay's: cancelling, resuming, answering offers.

use super::*;

impl App {
    /// Rows of the Transfers pane: waiting offers first, then transfers.
    pub fn transfer_rows(&self) -> usize {
        self.offers.len() + self.transfers.len()
    }

    pub(super) fn transfers_key(&mut self, act: Action) -> Vec<Cmd> {
        let n = self.transfer_rows();
        match act {
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => {
                self.transfer_cursor = moved(self.transfer_cursor, n, act, self.page());
                Vec::new()
            }
            Action::Enter if self.transfer_cursor < self.offers.len() => {
                // Bring this offer to the front and answer it.
                if let Some(o) = self.offers.remove(self.transfer_cursor) {
                    self.deferred.remove(&o.transfer);
                    self.offers.push_front(o);
                }
                self.overlay = Some(Overlay::Offer { scroll: 0 });
                Vec::new()
            }
            Action::Enter => {
                if let Some(t) = self.current_transfer() {
                    self.overlay = Some(Overlay::Transfer {
                        id: t.transfer.clone(),
                        scroll: 0,
                    });
                }
                Vec::new()
            }
            Action::Cancel => match self.current_transfer() {
                // A paused one is cancelled for good (its partial data goes).
                Some(t) if !t.state.is_finished() || t.state == crate::node::api::TransferState::Paused => {
                    let request = Request::Cancel {
                        transfer: t.transfer.clone(),
                    };
                    vec![self.call(request, Pending::Plain("cancel"))]
                }
                Some(_) => {
                    self.say("that transfer has already ended");
                    Vec::new()
                }
                None => Vec::new(),
            },
            Action::Retry => match self.current_transfer().cloned() {
                Some(t) if !t.state.is_finished() => {
                    self.say("that transfer is still running");
                    Vec::new()
                }
                Some(t) if t.state == crate::node::api::TransferState::Paused => {
                    let request = Request::Resume {
                        transfer: t.transfer.clone(),
                    };
                    vec![self.call(request, Pending::Plain("resume"))]
                }
                Some(t) => match self.retryable.get(&t.transfer).cloned() {
                    Some(request) => {
                        self.say("again: what arrived already is kept, the rest resumes");
                        vec![self.call(request.clone(), Pending::Transfer(request))]
                    }
                    None => {
                        self.say("only a send or get started in this window can be retried here");
                        Vec::new()
                    }
                },
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    pub fn current_transfer(&self) -> Option<&TransferView> {
        self.transfer_cursor
            .checked_sub(self.offers.len())
            .and_then(|i| self.transfers.get(i))
    }

    pub(super) fn offer_key(&mut self, act: Action) -> Vec<Cmd> {
        let Some(offer) = self.offers.front().cloned() else {
            self.overlay = None;
            return Vec::new();
        };
        let answer = |accept, always| Request::Answer {
            offer: offer.transfer.clone(),
            accept,
            always,
        };
        let cmd = match act {
            Action::Accept => self.call(answer(true, false), Pending::Plain("accept")),
            Action::Reject => self.call(answer(false, false), Pending::Plain("reject")),
            Action::Always => self.call(answer(true, true), Pending::Plain("accept")),
            Action::Escape => {
                // Put aside: it stays waiting (and answerable from Transfers) until it expires.
                self.deferred.insert(offer.transfer.clone());
                if let Some(o) = self.offers.pop_front() {
                    self.offers.push_back(o);
                }
                self.overlay = None;
                return self.open_offer_if_any();
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown => {
                if let Some(Overlay::Offer { scroll }) = &mut self.overlay {
                    *scroll = match act {
                        Action::Up => scroll.saturating_sub(1),
                        Action::Down => (*scroll + 1).min(offer.names.len().saturating_sub(1)),
                        Action::PageUp => scroll.saturating_sub(5),
                        _ => (*scroll + 5).min(offer.names.len().saturating_sub(1)),
                    };
                }
                return Vec::new();
            }
            _ => return Vec::new(),
        };
        // The node's offer_closed removes it; until then the dialog moves on.
        self.offers.pop_front();
        self.overlay = None;
        let mut cmds = vec![cmd];
        cmds.extend(self.open_offer_if_any());
        cmds
    }

    /// `o`: the oldest waiting offer, also one put aside.
    pub(super) fn show_offers(&mut self) -> Vec<Cmd> {
        let Some(front) = self.offers.front().map(|o| o.transfer.clone()) else {
            self.say("no offers are waiting");
            return Vec::new();
        };
        self.deferred.remove(&front);
        self.overlay = Some(Overlay::Offer { scroll: 0 });
        Vec::new()
    }

    /// Show the next offer that was not put aside, unless something else is open.
    pub(super) fn open_offer_if_any(&mut self) -> Vec<Cmd> {
        // Someone typing keeps the keyboard: the offer waits (and says so) until they stop.
        if self.typing || self.filtering {
            if let Some(o) = self.offers.iter().find(|o| !self.deferred.contains(&o.transfer)) {
                let text = format!(
                    "{} offers {} — Esc to stop typing and answer",
                    self.peer_name(&o.peer),
                    crate::text::plural(o.files, "file")
                );
                self.say(text);
            }
            return Vec::new();
        }
        if self.overlay.is_none() && self.offers.iter().any(|o| !self.deferred.contains(&o.transfer)) {
            while let Some(front) = self.offers.front() {
                if !self.deferred.contains(&front.transfer) {
                    break;
                }
                self.offers.rotate_left(1);
            }
            self.overlay = Some(Overlay::Offer { scroll: 0 });
            self.typing = false;
        }
        Vec::new()
    }
}
