//! The Peers pane's keys: moving, marking, trusting, and adding a peer by its address.

use super::*;

impl App {
    /// A key in the Peers pane.
    pub(super) fn peers_key(&mut self, act: Action) -> Vec<Cmd> {
        match act {
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => {
                let n = self.peer_rows();
                self.peer_cursor = moved(self.peer_cursor, n, act, self.page());
                self.on_selection_changed()
            }
            Action::Enter => {
                self.focus = Pane::Chat;
                self.typing = true;
                self.typing_from = Some(Pane::Peers);
                self.on_selection_changed()
            }
            Action::Mark => {
                if let Some(id) = self.selected_id()
                    && !self.marked_peers.remove(&id)
                {
                    self.marked_peers.insert(id);
                }
                let n = self.peer_rows();
                self.peer_cursor = moved(self.peer_cursor, n, Action::Down, 1);
                self.on_selection_changed()
            }
            Action::AddPeer => {
                self.add_peer = Line::default();
                self.overlay = Some(Overlay::AddPeer { trying: None, error: None });
                Vec::new()
            }
            Action::Trust => match self.selected_peer() {
                Some(p) => {
                    let request = Request::Trust {
                        peer: p.id.to_string(),
                        trusted: !p.trusted,
                    };
                    vec![self.call(request, Pending::Plain("trust"))]
                }
                None if self.selected_device().is_some() => {
                    self.say("a LocalSend device cannot be trusted yet: answer its offers");
                    Vec::new()
                }
                None => {
                    self.say("pick a peer to trust (not #all)");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        }
    }

    /// A send `transfer` to the LocalSend device `device` was refused for want of a PIN: ask
    /// for it, to send the same paths again with it.
    pub(super) fn ask_pin(&mut self, transfer: &str, device: &PeerId) {
        let Some(Request::Send { paths, pin, .. }) = self.retryable.get(transfer) else {
            return;
        };
        // A question already open stays; this refusal is in the Transfers pane.
        if self.overlay.is_some() {
            return;
        }
        self.overlay = Some(Overlay::Pin {
            paths: paths.clone(),
            device: device.clone(),
            wrong: pin.is_some(),
        });
        self.pin = Line::default();
    }

    pub(super) fn pin_key(&mut self, act: Action) -> Vec<Cmd> {
        match act {
            Action::Escape => {
                self.overlay = None;
                self.pin = Line::default();
                Vec::new()
            }
            Action::Edit(e) => {
                self.pin.edit(e);
                Vec::new()
            }
            Action::Submit => {
                let typed = self.pin.value().trim().to_string();
                if typed.is_empty() {
                    return Vec::new();
                }
                let Some(Overlay::Pin { paths, device, .. }) = self.overlay.take() else {
                    return Vec::new();
                };
                self.pin = Line::default();
                self.say(format!("sending again to {} with the PIN", self.peer_name(&device)));
                let request = Request::Send {
                    peers: vec![device.to_string()],
                    paths,
                    relay: self.relay,
                    pin: Some(typed),
                };
                vec![self.call(request.clone(), Pending::Transfer(request))]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn add_peer_key(&mut self, act: Action) -> Vec<Cmd> {
        match act {
            Action::Escape => {
                self.overlay = None;
                Vec::new()
            }
            Action::Edit(e) => {
                self.add_peer.edit(e);
                if let Some(Overlay::AddPeer { error, .. }) = &mut self.overlay {
                    *error = None;
                }
                Vec::new()
            }
            Action::Submit => {
                let typed = self.add_peer.value().trim().to_string();
                let (trying, error) = match with_port(&typed) {
                    Ok(addr) => (Some(addr), None),
                    Err(why) => (None, Some(why)),
                };
                self.overlay = Some(Overlay::AddPeer {
                    trying: trying.clone(),
                    error,
                });
                match trying {
                    Some(addr) => {
                        let request = Request::AddPeer {
                            addr: addr.clone(),
                            wait: true,
                        };
                        vec![self.call(request, Pending::AddPeer(addr))]
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// A peer added with `+` answered: select it; or it did not: say why where it was typed.
    pub(super) fn added_peer(&mut self, addr: &str, result: Result<Vec<PeerInfo>, String>) {
        let waiting = matches!(&self.overlay, Some(Overlay::AddPeer { trying: Some(a), .. }) if a == addr);
        match result {
            Ok(found) => {
                let Some(p) = found.into_iter().next() else { return };
                if !self.peers.iter().any(|x| x.id == p.id) {
                    self.peers.push(p.clone());
                    self.sort_peers();
                }
                if waiting {
                    self.overlay = None;
                    self.add_peer = Line::default();
                }
                self.focus = Pane::Peers;
                self.peer_filter.clear();
                self.reselect(p.id.as_str());
                self.say(format!("{} is connected ({addr})", self.peer_name(&p.id)));
            }
            Err(message) if waiting => {
                self.overlay = Some(Overlay::AddPeer {
                    trying: None,
                    error: Some(message),
                });
            }
            Err(message) => self.say(message),
        }
    }
}

/// HOST[:PORT] as the node dials it: the default port added when none is given (an IPv6
/// address without a port is bracketed first).
pub(super) fn with_port(typed: &str) -> Result<String, String> {
    use std::net::{Ipv6Addr, SocketAddr};
    let port = crate::node::api::DEFAULT_PORT;
    if typed.is_empty() {
        return Err("type the address of a machine running lanyard".into());
    }
    if typed.parse::<SocketAddr>().is_ok() {
        return Ok(typed.to_string());
    }
    if typed.parse::<Ipv6Addr>().is_ok() {
        return Ok(format!("[{typed}]:{port}"));
    }
    if typed.starts_with('[') && typed.ends_with(']') {
        return Ok(format!("{typed}:{port}"));
    }
    match typed.rsplit_once(':') {
        None => Ok(format!("{typed}:{port}")),
        Some((host, p)) if !host.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(typed.to_string()),
        Some(_) => Err(format!("{} is not HOST or HOST:PORT", printable(typed))),
    }
}
