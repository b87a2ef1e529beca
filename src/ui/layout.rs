//! Where each pane goes on the screen: one pure function of the terminal size and the focused
//! pane, used by the view to draw and by `update` to know what a mouse click hit.

use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};

use super::keys::Pane;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub peers: Rect,
    pub chat: Rect,
    /// The Files block, around both columns.
    pub files: Rect,
    pub local: Rect,
    pub remote: Rect,
    pub transfers: Rect,
    pub footer: Rect,
}

impl Areas {
    pub fn new(screen: Rect, focus: Pane) -> Areas {
        let [main, footer] = Layout::vertical([Constraint::Min(6), Constraint::Length(1)]).areas(screen);
        // The focused band gets the room; the others keep enough to stay useful.
        let (top, files, transfers) = match focus {
            Pane::Peers | Pane::Chat => (5, 3, 2),
            Pane::Local | Pane::Remote | Pane::Deposits => (3, 5, 2),
            Pane::Transfers => (3, 3, 4),
        };
        let [top_area, files_area, transfers_area] =
            Layout::vertical([Constraint::Fill(top), Constraint::Fill(files), Constraint::Fill(transfers)]).areas(main);
        let peers_width = (top_area.width / 3).clamp(18, 34);
        let [peers, chat] = Layout::horizontal([Constraint::Length(peers_width), Constraint::Min(10)]).areas(top_area);
        // Inside the Files border: the two columns, the focused one wider on a narrow screen.
        let inner = Rect {
            x: files_area.x + 1,
            y: files_area.y + 1,
            width: files_area.width.saturating_sub(2),
            height: files_area.height.saturating_sub(2),
        };
        let (l, r) = match (focus, inner.width < 100) {
            (Pane::Local, true) => (3, 2),
            (Pane::Remote | Pane::Deposits, true) => (2, 3),
            _ => (1, 1),
        };
        let [local, remote] = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Fill(l), Constraint::Fill(r)])
            .areas(inner);
        Areas {
            peers,
            chat,
            files: files_area,
            local,
            remote,
            transfers: transfers_area,
            footer,
        }
    }

    pub fn rect(&self, pane: Pane) -> Rect {
        match pane {
            Pane::Peers => self.peers,
            Pane::Chat => self.chat,
            Pane::Local => self.local,
            // The right column shows one or the other.
            Pane::Remote | Pane::Deposits => self.remote,
            Pane::Transfers => self.transfers,
        }
    }

    /// The pane under a point (the Files border counts as the nearer column).
    pub fn pane_at(&self, at: Position) -> Option<Pane> {
        for pane in Pane::ORDER {
            if self.rect(pane).contains(at) {
                return Some(pane);
            }
        }
        if self.files.contains(at) {
            return Some(if at.x < self.remote.x { Pane::Local } else { Pane::Remote });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pane_has_room_at_80_by_24_and_clicks_find_it() {
        for focus in Pane::ORDER {
            let a = Areas::new(Rect::new(0, 0, 80, 24), focus);
            for pane in Pane::ORDER {
                let r = a.rect(pane);
                assert!(r.width >= 10 && r.height >= 3, "{pane:?} with {focus:?} focused: {r:?}");
                let mid = Position::new(r.x + r.width / 2, r.y + r.height / 2);
                assert_eq!(a.pane_at(mid), Some(pane));
            }
            assert_eq!(a.footer.y, 23);
        }
    }
}
