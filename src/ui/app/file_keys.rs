//! The Local and Remote panes' keys: browsing, sending what is picked to the marked (or
//! selected) peers, and getting from a peer's shares.

use super::*;

impl App {
    pub(super) fn local_key(&mut self, act: Action) -> Vec<Cmd> {
        let page = self.page();
        if navigate(&mut self.local.list, act, page) {
            return Vec::new();
        }
        match act {
            Action::ToggleHidden => self.local.toggle_hidden(),
            Action::Enter => return self.local.open().map(Cmd::ListLocal).into_iter().collect(),
            Action::Back => return self.local.parent().map(Cmd::ListLocal).into_iter().collect(),
            Action::Refresh => return vec![Cmd::ListLocal(self.local.dir.clone())],
            Action::DownloadDir => {
                let Some(downloads) = self.me.as_ref().map(|m| PathBuf::from(&m.download_dir)) else {
                    return Vec::new();
                };
                return self.local.toggle_place(downloads).map(Cmd::ListLocal).into_iter().collect();
            }
            Action::SendFiles => {
                let paths = self.local.chosen_paths();
                return self.send_paths(paths, false);
            }
            Action::Deposit => return self.ask_deposit(),
            _ => {}
        }
        Vec::new()
    }

    /// The peers a send goes to: the marked ones, else the selected one.
    pub fn recipients(&self) -> Vec<PeerId> {
        if !self.marked_peers.is_empty() {
            let mut v: Vec<PeerId> = self.marked_peers.iter().cloned().collect();
            v.sort_by_key(|p| self.peer_name(p).to_lowercase());
            return v;
        }
        self.selected_id().map(|id| vec![id]).unwrap_or_default()
    }

    /// Who a send would reach, for a person: `bob, carol` (at most `width` columns; the rest
    /// counted), or None when nobody is chosen.
    pub fn recipients_text(&self, width: usize) -> Option<String> {
        let names: Vec<String> = self
            .recipients()
            .iter()
            .map(|p| crate::ui::view::middle(&printable(&self.peer_name(p)), width.min(NAME_IN_LIST)))
            .collect();
        names_within(&names, width)
    }

    /// A send from the local column or a drop: to one selected peer at once; to several, or
    /// dropped paths, after a question that names them.
    pub(super) fn send_paths(&mut self, paths: Vec<PathBuf>, dropped: bool) -> Vec<Cmd> {
        let peers = self.recipients();
        if peers.is_empty() {
            self.say("select a peer (or mark several with Space in Peers) to send to");
            return Vec::new();
        }
        if paths.is_empty() {
            self.say("nothing to send here");
            return Vec::new();
        }
        if peers.len() > 1 || dropped {
            self.overlay = Some(Overlay::ConfirmSend { paths, peers, dropped });
            return Vec::new();
        }
        self.start_send(paths, peers)
    }

    pub(super) fn start_send(&mut self, paths: Vec<PathBuf>, peers: Vec<PeerId>) -> Vec<Cmd> {
        let names: Vec<String> = peers.iter().map(|p| self.peer_name(p)).collect();
        self.say(format!(
            "sending {} to {}",
            crate::text::plural(paths.len(), "item"),
            names.join(", ")
        ));
        // Started: the marks are used up, so the next `s` goes where the screen then says.
        self.local.list.marked.clear();
        self.marked_peers.clear();
        // Several marked peers: relayed through them, one upload from here (unless
        // --no-relay).
        let request = Request::Send {
            peers: peers.iter().map(|p| p.to_string()).collect(),
            paths,
            relay: self.relay,
            pin: None,
        };
        vec![self.call(request.clone(), Pending::Transfer(request))]
    }

    /// Show the selected peer's shares in the remote column (listed if not yet).
    pub(super) fn show_remote(&mut self) -> Vec<Cmd> {
        let Some(peer) = self.selected_peer().map(|p| p.id.to_string()) else {
            self.remote = Remote::default();
            return Vec::new();
        };
        if self.remote.peer.as_deref() == Some(peer.as_str()) {
            return Vec::new();
        }
        if self.remote.show(&peer, "") {
            self.list_remote(peer, String::new())
        } else {
            Vec::new()
        }
    }

    pub(super) fn list_remote(&mut self, peer: String, path: String) -> Vec<Cmd> {
        let request = Request::List {
            peer: peer.clone(),
            path: path.clone(),
        };
        vec![self.call(request, Pending::Listing { peer, path })]
    }

    pub(super) fn remote_key(&mut self, act: Action) -> Vec<Cmd> {
        let page = self.page();
        if navigate(&mut self.remote.list, act, page) {
            return Vec::new();
        }
        match act {
            Action::Enter => {
                if let Some((peer, path)) = self.remote.open() {
                    return self.list_remote(peer, path);
                }
            }
            Action::Back => {
                if let Some((peer, path)) = self.remote.parent() {
                    return self.list_remote(peer, path);
                }
            }
            Action::Refresh => {
                if let Some((peer, path)) = self.remote.refresh() {
                    return self.list_remote(peer, path);
                }
            }
            Action::GetFiles => {
                let Some(peer) = self.remote.peer.clone() else { return Vec::new() };
                let paths = self.remote.chosen_paths();
                if paths.is_empty() {
                    return Vec::new();
                }
                self.remote.list.marked.clear();
                self.say(format!("getting {}", crate::text::plural(paths.len(), "item")));
                let request = Request::Get { peer, paths, to: None };
                return vec![self.call(request.clone(), Pending::Transfer(request))];
            }
            _ => {}
        }
        Vec::new()
    }
}

/// Names joined with ", " within `width` columns, the ones that do not fit counted (`bob,
/// carol +3`); None for no names.
pub(super) fn names_within(names: &[String], width: usize) -> Option<String> {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        let rest = names.len() - i - 1;
        let sep = if i == 0 { "" } else { ", " };
        let tail = if rest > 0 { format!(" +{rest}") } else { String::new() };
        if i > 0 && out.width() + sep.width() + name.width() + tail.width() > width {
            out.push_str(&format!(" +{}", names.len() - i));
            return Some(out);
        }
        out.push_str(sep);
        out.push_str(name);
    }
    (!out.is_empty()).then_some(out)
}
