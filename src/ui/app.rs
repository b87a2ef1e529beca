//! The TUI's state and its one `update`: every key, node event and reply goes through
//! [`App::update`], which changes the state and returns what to do as data ([`Cmd`]s the loop
//! carries out). Nothing here touches the terminal, the disk or the network.
//!
//! Each pane's keys are beside it: `app/peer_keys`, `app/chat_keys`, `app/file_keys`,
//! `app/transfer_keys`, `app/deposit_keys` (the locker: `d`, the Deposits column, `g` there).

mod chat_keys;
mod deposit_keys;
mod file_keys;
mod peer_keys;
mod transfer_keys;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ratatui::crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};
use unicode_width::UnicodeWidthStr;

use super::files::{Entry, Local, Remote};
use super::input::Line;
use super::keys::{Action, Context, Pane, action};
use super::layout::Areas;
pub use deposit_keys::Health;

use crate::node::api::{
    ChatEntry, Delivery, DepositReport, DepositView, Device, HISTORY_PAGE, HolderView, Named, OfferView, PeerId, PeerInfo, ROOM, Reason,
    Recipient, Reply, Request, Retrieved, TransferState, TransferView, device_id, label,
};
use crate::node::events::{Envelope, Event};
use crate::node::snapshot::{Me, Snapshot};
use crate::text::printable;

/// Lines kept per conversation in memory (older ones are in the store).
const KEEP_LINES: usize = 5_000;
/// Finished transfers shown (the node keeps its own recent list).
const KEEP_FINISHED: usize = 200;
/// The widest a peer's name is in a list of recipients.
const NAME_IN_LIST: usize = 20;
/// How long a status line stays.
const STATUS_FOR: Duration = Duration::from_secs(6);

/// Something that happened, for `update`.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    /// Time passes (statuses expire, "fading" rows age).
    Tick(Duration),
    Focus(bool),
    Snapshot(Box<Snapshot>),
    Node(Envelope),
    /// The event stream dropped events: take a new snapshot.
    Lagged,
    /// A reply to the call `tag` started.
    Reply {
        tag: u64,
        reply: Reply,
    },
    /// A local folder was read.
    Local {
        dir: PathBuf,
        result: Result<Vec<Entry>, String>,
    },
    /// Something changed in this local folder (the watcher's word, debounced).
    LocalChanged(PathBuf),
    /// The node went away (an attached UI whose `serve` stopped).
    NodeGone(String),
}

/// What the loop must do for `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Run a request against the node; its replies come back as `Msg::Reply { tag }`.
    Call {
        tag: u64,
        request: Request,
    },
    ListLocal(PathBuf),
    Bell,
    Quit,
}

/// What a call was for, to know what its replies mean.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Snapshot,
    /// The newest page of a conversation (replies come in chunks, oldest first).
    History(String),
    /// An older page, before what is loaded.
    Older(String),
    Listing {
        peer: String,
        path: String,
    },
    /// Our new nick.
    Nick(String),
    /// A peer added with `+`, at this address.
    AddPeer(String),
    /// A send or get started here: remembered so that `r` can run it again.
    Transfer(Request),
    /// Anything else: its Note or error goes to the status line.
    Plain(&'static str),
}

/// A conversation as the UI holds it.
#[derive(Debug, Default, Clone)]
pub struct Conversation {
    pub lines: Vec<ChatEntry>,
    pub loaded: bool,
    pub draft: Line,
    /// Lines scrolled up from the newest (0: following the end).
    pub scroll: usize,
    pub unread: u32,
    /// The store holds nothing older than what is loaded.
    pub complete: bool,
    /// An older page is on its way.
    pub fetching: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    /// The oldest waiting offer, names scrolled.
    Offer {
        scroll: usize,
    },
    /// Typing HOST[:PORT]; while a connection is tried, the address; after a failure, why.
    AddPeer {
        trying: Option<String>,
        error: Option<String>,
    },
    /// Send these paths to these peers? (a send to several peers, or files dropped on the
    /// terminal; what is asked is exactly what is sent).
    ConfirmSend {
        paths: Vec<PathBuf>,
        peers: Vec<PeerId>,
        dropped: bool,
    },
    /// Quit with this many transfers running (they pause, and resume when lanyard runs again)?
    ConfirmQuit {
        running: usize,
    },
    /// One transfer in full: every recipient, the files, the whole of a failure (scrolls).
    Transfer {
        id: String,
        scroll: usize,
    },
    /// A LocalSend device wants a PIN for these paths (`wrong`: it refused the one given).
    Pin {
        paths: Vec<PathBuf>,
        device: PeerId,
        wrong: bool,
    },
    /// Deposit these paths: how many copies (typed in `App::replicas`)?
    Deposit {
        paths: Vec<PathBuf>,
        error: Option<String>,
    },
}

pub struct App {
    pub me: Option<Me>,
    pub seq: u64,
    pub attached: bool,
    pub peers: Vec<PeerInfo>,
    /// LocalSend devices heard of: rows below the peers, targets of a send.
    pub localsend: Vec<Device>,
    /// 0 is `#all`; i is `peers[i - 1]`, then the devices after the peers.
    pub peer_cursor: usize,
    pub peer_filter: String,
    pub marked_peers: HashSet<PeerId>,
    pub conversations: HashMap<String, Conversation>,
    /// Running first, then finished (newest first among them).
    pub transfers: Vec<TransferView>,
    pub transfer_cursor: usize,
    pub offers: VecDeque<OfferView>,
    /// A send to several marked peers is relayed through them (`--no-relay`: parallel).
    pub relay: bool,
    /// Offers the user put aside with Esc (they stay waiting, shown in Transfers).
    pub deferred: HashSet<String>,
    pub focus: Pane,
    pub typing: bool,
    /// Where Esc returns to after typing (Peers, when Enter there opened the conversation).
    typing_from: Option<Pane>,
    pub filtering: bool,
    pub overlay: Option<Overlay>,
    pub add_peer: Line,
    /// The PIN being typed for a LocalSend device.
    pub pin: Line,
    pub local: Local,
    pub remote: Remote,
    /// The right column of Files shows my deposits rather than a peer's shares.
    pub locker: bool,
    /// My deposits as the node last reported them (snapshot, then `Deposits` events).
    pub deposits: Vec<DepositView>,
    pub deposit_cursor: usize,
    /// How many copies a deposit asks for, as typed.
    pub replicas: Line,
    pub status: Option<(String, Duration)>,
    /// The last warning that came while no peer was online (what to check when nobody shows
    /// up is longer than a status line): shown in the empty `#all` until a peer is online.
    pub alone_note: Option<String>,
    /// Time since start (from ticks), for statuses and fading.
    pub clock: Duration,
    pub size: (u16, u16),
    pub terminal_focused: bool,
    pub bell: bool,
    /// The home folder, shown as `~` in paths (read once: the view reads no environment).
    pub home: Option<String>,
    pub quit: bool,
    next_tag: u64,
    pending: HashMap<u64, Pending>,
    /// Transfer id → the request that started it here.
    retryable: HashMap<String, Request>,
    /// Sends a device refused for want of a PIN before the request that started them was
    /// known here (the row's event came before the call's first reply).
    pin_wanted: HashSet<String>,
    /// History chunks of a call, gathered until it is done.
    history_chunks: HashMap<u64, Vec<ChatEntry>>,
}

impl App {
    pub fn new(cwd: PathBuf, attached: bool, bell: bool) -> App {
        App {
            home: std::env::var("HOME").ok().filter(|h| !h.is_empty() && h != "/"),
            relay: true,
            me: None,
            seq: 0,
            attached,
            peers: Vec::new(),
            localsend: Vec::new(),
            peer_cursor: 0,
            peer_filter: String::new(),
            marked_peers: HashSet::new(),
            conversations: HashMap::new(),
            transfers: Vec::new(),
            transfer_cursor: 0,
            offers: VecDeque::new(),
            deferred: HashSet::new(),
            focus: Pane::Peers,
            typing: false,
            typing_from: None,
            filtering: false,
            overlay: None,
            add_peer: Line::default(),
            pin: Line::default(),
            local: Local::new(cwd),
            remote: Remote::default(),
            locker: false,
            deposits: Vec::new(),
            deposit_cursor: 0,
            replicas: Line::default(),
            status: None,
            alone_note: None,
            clock: Duration::ZERO,
            size: (80, 24),
            terminal_focused: true,
            bell,
            quit: false,
            next_tag: 1,
            pending: HashMap::new(),
            retryable: HashMap::new(),
            pin_wanted: HashSet::new(),
            history_chunks: HashMap::new(),
        }
    }

    /// What to do first: take the picture and list the working folder.
    pub fn start(&mut self) -> Vec<Cmd> {
        let mut cmds = vec![self.call(Request::Snapshot, Pending::Snapshot)];
        cmds.push(Cmd::ListLocal(self.local.dir.clone()));
        cmds
    }

    fn call(&mut self, request: Request, why: Pending) -> Cmd {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, why);
        Cmd::Call { tag, request }
    }

    /// Something the face that started the node has to tell (the port it listens on moved).
    pub fn note(&mut self, text: impl Into<String>) {
        self.say(text);
    }

    fn say(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), self.clock + STATUS_FOR));
    }

    /// The conversation a pending call loads (tests answer it).
    #[cfg(test)]
    pub fn pending_history(&self, tag: u64) -> Option<String> {
        match self.pending.get(&tag) {
            Some(Pending::History(c)) => Some(c.clone()),
            _ => None,
        }
    }

    /// Where keys go now.
    pub fn context(&self) -> Context {
        match &self.overlay {
            // Read, scrolled and closed as help is.
            Some(Overlay::Help { .. } | Overlay::Transfer { .. }) => Context::Help,
            Some(Overlay::Offer { .. }) => Context::Offer,
            Some(Overlay::AddPeer { .. }) => Context::AddPeer,
            Some(Overlay::Pin { .. }) => Context::Pin,
            Some(Overlay::ConfirmSend { .. } | Overlay::ConfirmQuit { .. }) => Context::Confirm,
            Some(Overlay::Deposit { .. }) => Context::Replicas,
            None if self.filtering => Context::Filter,
            None if self.typing => Context::Typing,
            None => Context::Pane(self.focus),
        }
    }

    // ---- what the view reads ----

    /// Peers shown, in order, with the filter applied (`#all` is not among them).
    pub fn visible_peers(&self) -> Vec<&PeerInfo> {
        let f = self.peer_filter.to_lowercase();
        self.peers
            .iter()
            .filter(|p| f.is_empty() || p.nick.to_lowercase().contains(&f) || p.host.to_lowercase().contains(&f) || p.short_id.contains(&f))
            .collect()
    }

    /// The selected conversation: `#all` or a peer id.
    pub fn selected_conversation(&self) -> String {
        match self.peer_cursor {
            0 => ROOM.to_string(),
            _ => self.selected_id().map(|id| id.to_string()).unwrap_or_else(|| ROOM.to_string()),
        }
    }

    pub fn selected_peer(&self) -> Option<&PeerInfo> {
        match self.peer_cursor {
            0 => None,
            i => self.visible_peers().get(i - 1).copied(),
        }
    }

    /// LocalSend devices shown, in order, with the filter applied.
    pub fn visible_devices(&self) -> Vec<&Device> {
        let f = self.peer_filter.to_lowercase();
        self.localsend
            .iter()
            .filter(|d| f.is_empty() || d.alias.to_lowercase().contains(&f))
            .collect()
    }

    /// The LocalSend device under the cursor (its rows follow the peers').
    pub fn selected_device(&self) -> Option<&Device> {
        let i = self.peer_cursor.checked_sub(1 + self.visible_peers().len())?;
        self.visible_devices().get(i).copied()
    }

    /// Rows in the Peers list: `#all`, the peers, the devices.
    pub fn peer_rows(&self) -> usize {
        1 + self.visible_peers().len() + self.visible_devices().len()
    }

    /// The id the row under the cursor is known by: a peer's, or a device's (`device_id`).
    pub fn selected_id(&self) -> Option<PeerId> {
        match self.selected_peer() {
            Some(p) => Some(p.id.clone()),
            None => self.selected_device().map(|d| device_id(&d.fingerprint)),
        }
    }

    /// A peer's name as people should see it: the nick, plus what tells it apart when it could
    /// mislead (another peer's nick, shaped like an id): see `api::label`.
    pub fn peer_name(&self, id: &PeerId) -> String {
        let Some(p) = self.peers.iter().find(|p| &p.id == id) else {
            return match self.localsend.iter().find(|d| &device_id(&d.fingerprint) == id) {
                Some(d) => d.alias.clone(),
                None => id.short().to_string(),
            };
        };
        let all: Vec<Named> = self.peers.iter().map(Named::of).collect();
        label(Named::of(p), &all)
    }

    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversations.get(id)
    }

    pub fn unread(&self, conversation: &str) -> u32 {
        self.conversations.get(conversation).map_or(0, |c| c.unread)
    }

    /// Peers with a transfer running now (derived from the transfers, for the ⇅ mark).
    pub fn busy_peers(&self) -> HashSet<&PeerId> {
        self.transfers.iter().filter(|t| !t.state.is_finished()).map(|t| &t.peer).collect()
    }

    pub fn status_text(&self) -> Option<&str> {
        self.status
            .as_ref()
            .filter(|(_, until)| *until > self.clock)
            .map(|(s, _)| s.as_str())
    }

    // ---- update ----

    pub fn update(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Mouse(m) => self.on_mouse(m),
            Msg::Paste(text) => self.on_paste(&text),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Msg::Tick(now) => {
                self.clock = now;
                Vec::new()
            }
            Msg::Focus(focused) => {
                self.terminal_focused = focused;
                if focused { self.mark_selected_read() } else { Vec::new() }
            }
            Msg::Snapshot(s) => self.on_snapshot(*s),
            Msg::Node(e) => self.on_event(e),
            Msg::Lagged => vec![self.call(Request::Snapshot, Pending::Snapshot)],
            Msg::Reply { tag, reply } => self.on_reply(tag, reply),
            Msg::Local { dir, result } => {
                self.local.listed(&dir, result);
                Vec::new()
            }
            Msg::LocalChanged(dir) if dir == self.local.dir => vec![Cmd::ListLocal(dir)],
            Msg::LocalChanged(_) => Vec::new(),
            Msg::NodeGone(why) => {
                self.say(format!("the node stopped: {why}"));
                self.quit = true;
                vec![Cmd::Quit]
            }
        }
    }

    fn on_snapshot(&mut self, s: Snapshot) -> Vec<Cmd> {
        self.seq = s.seq;
        let selected = self.selected_conversation();
        self.me = Some(s.me);
        self.peers = s.peers;
        self.localsend = s.localsend;
        self.sort_peers();
        for c in s.conversations {
            let conv = self.conversations.entry(c.conversation.clone()).or_default();
            conv.unread = c.unread;
        }
        for p in &self.peers {
            self.conversations.entry(p.id.to_string()).or_default().unread = p.unread;
        }
        self.transfers = s.transfers;
        self.sort_transfers();
        self.set_deposits(s.deposits);
        self.offers = s.offers.into_iter().collect();
        self.offers.retain(|o| !self.deferred.contains(&o.transfer));
        self.reselect(&selected);
        let mut cmds = self.open_offer_if_any();
        cmds.extend(self.ensure_loaded());
        if self.terminal_focused {
            cmds.extend(self.mark_selected_read());
        }
        cmds
    }

    fn on_event(&mut self, e: Envelope) -> Vec<Cmd> {
        // Already in the snapshot (applying it again would be harmless, but this is cheaper).
        if e.seq <= self.seq {
            return Vec::new();
        }
        self.seq = e.seq;
        let selected = self.selected_conversation();
        // Only these reorder the Peers list (a progress event, hundreds a second, does not).
        let peers_changed = matches!(
            e.event,
            Event::PeerUp { .. }
                | Event::PeerDown { .. }
                | Event::PeerDiscovered { .. }
                | Event::PeerRenamed { .. }
                | Event::PeerForgotten { .. }
        );
        let mut cmds = Vec::new();
        match e.event {
            Event::PeerUp { id, nick, host, addr } => {
                let p = self.peer_mut(&id);
                p.nick = nick;
                p.host = host;
                p.online = true;
                p.addr = Some(addr);
            }
            Event::PeerDown { id, .. } => {
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
                    p.online = false;
                }
            }
            Event::PeerDiscovered { id, nick, host } => {
                let p = self.peer_mut(&id);
                if p.nick.is_empty() {
                    p.nick = nick;
                    p.host = host;
                }
                p.discovered = true;
            }
            Event::PeerLost { id } => {
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
                    p.discovered = false;
                }
            }
            Event::PeerRenamed { id, new, .. } => self.peer_mut(&id).nick = new,
            Event::PeerForgotten { id } => {
                self.peers.retain(|p| p.id != id);
                self.marked_peers.remove(&id);
            }
            Event::TrustChanged { id, trusted } => self.peer_mut(&id).trusted = trusted,
            Event::Warning { message } => {
                if !self.peers.iter().any(|p| p.online) {
                    self.alone_note = Some(message.clone());
                }
                self.say(message)
            }
            Event::Listening { .. } | Event::Deposit { .. } => {}
            Event::Deposits { deposits } => self.set_deposits(deposits),
            Event::LocalSendDevice { device } => {
                match self
                    .localsend
                    .iter_mut()
                    .find(|d| d.fingerprint.eq_ignore_ascii_case(&device.fingerprint))
                {
                    Some(known) => *known = device,
                    None => self.localsend.push(device),
                }
                self.localsend
                    .sort_by(|a, b| a.alias.cmp(&b.alias).then_with(|| a.fingerprint.cmp(&b.fingerprint)));
            }
            Event::ChatReceived {
                id,
                from,
                nick,
                room,
                text,
                sent_ms,
                unread,
            } => {
                let conversation = if room { ROOM.to_string() } else { from.to_string() };
                let entry = ChatEntry {
                    id,
                    conversation: conversation.clone(),
                    from,
                    nick,
                    outgoing: false,
                    room,
                    sent_ms,
                    received_ms: now_ms(),
                    text,
                    state: None,
                    recipients: Vec::new(),
                };
                let conv = self.conversations.entry(conversation.clone()).or_default();
                push_line(conv, entry);
                conv.unread = unread;
                if conversation == selected && self.terminal_focused {
                    cmds.extend(self.mark_selected_read());
                } else if self.bell && !self.terminal_focused {
                    cmds.push(Cmd::Bell);
                }
            }
            Event::ChatQueued {
                id,
                to,
                recipients,
                text,
                sent_ms,
            } => {
                let (me, nick) = match &self.me {
                    Some(m) => (m.id.clone(), m.nick.clone()),
                    None => return cmds,
                };
                let conv = self.conversations.entry(to.clone()).or_default();
                if conv.lines.iter().all(|l| l.id != id) {
                    let recipients: Vec<Recipient> = recipients
                        .into_iter()
                        .map(|peer| Recipient {
                            peer,
                            state: Delivery::Queued,
                            reason: None,
                        })
                        .collect();
                    push_line(
                        conv,
                        ChatEntry {
                            id,
                            room: to == ROOM,
                            conversation: to,
                            from: me,
                            nick,
                            outgoing: true,
                            sent_ms,
                            received_ms: sent_ms,
                            text,
                            state: Some(Delivery::Queued),
                            recipients,
                        },
                    );
                }
            }
            Event::ChatSent { to, ids } => self.set_delivery(&to, &ids, Delivery::Sent, None),
            Event::ChatRequeued { to, ids } => self.set_delivery(&to, &ids, Delivery::Queued, None),
            Event::ChatDelivered { id, to } => self.set_delivery(&to, std::slice::from_ref(&id), Delivery::Delivered, None),
            Event::ChatRefused { id, to, reason } => {
                self.say(format!("{} refused: {reason}", self.peer_name(&to)));
                self.set_delivery(&to, std::slice::from_ref(&id), Delivery::Refused, Some(reason));
            }
            Event::ChatRead { conversation } => {
                if let Some(c) = self.conversations.get_mut(&conversation) {
                    c.unread = 0;
                }
            }
            Event::Offer(o) => {
                if self.offers.iter().all(|x| x.transfer != o.transfer) {
                    self.offers.push_back(o);
                }
                cmds.extend(self.open_offer_if_any());
                if self.bell && !self.terminal_focused {
                    cmds.push(Cmd::Bell);
                }
            }
            Event::OfferClosed { transfer, .. } => {
                self.offers.retain(|o| o.transfer != transfer);
                self.deferred.remove(&transfer);
                if matches!(self.overlay, Some(Overlay::Offer { .. })) {
                    self.overlay = None;
                    cmds.extend(self.open_offer_if_any());
                }
            }
            Event::TransferStarted(t) | Event::Progress(t) => self.upsert_transfer(t),
            Event::FilesReceived { files, .. } => {
                let downloads = self.me.as_ref().map(|m| PathBuf::from(&m.download_dir));
                for f in files {
                    let path = PathBuf::from(&f.path);
                    // A received folder stands out in the download dir under its own name.
                    let top = downloads
                        .as_ref()
                        .and_then(|d| Some(d.join(path.strip_prefix(d).ok()?.components().next()?)));
                    if let Some(top) = top.filter(|t| *t != path) {
                        self.local.received(top);
                    }
                    self.local.received(path);
                }
            }
            Event::Done { .. } | Event::Error { .. } | Event::Cancelled { .. } => {}
        }
        if peers_changed {
            self.sort_peers();
            self.reselect(&selected);
        }
        cmds
    }

    fn on_reply(&mut self, tag: u64, reply: Reply) -> Vec<Cmd> {
        let finished = matches!(reply, Reply::Done | Reply::Failed { .. });
        let Some(why) = (if finished {
            self.pending.remove(&tag)
        } else {
            self.pending.get(&tag).cloned()
        }) else {
            return Vec::new();
        };
        let mut cmds = Vec::new();
        match (why, reply) {
            (Pending::Snapshot, Reply::Snapshot(s)) => cmds.extend(self.on_snapshot(*s)),
            (Pending::History(_) | Pending::Older(_), Reply::History { entries }) => {
                self.history_chunks.entry(tag).or_default().extend(entries);
            }
            (Pending::History(conv), Reply::Done) => {
                let entries = self.history_chunks.remove(&tag).unwrap_or_default();
                let c = self.conversations.entry(conv).or_default();
                c.complete = entries.len() < HISTORY_PAGE;
                // Lines that arrived as events meanwhile are kept, after the stored ones.
                let known: HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
                let newer: Vec<ChatEntry> = c.lines.drain(..).filter(|l| !known.contains(&l.id)).collect();
                c.lines = entries;
                c.lines.extend(newer);
                c.loaded = true;
            }
            (Pending::Older(conv), Reply::Done) => {
                let mut older = self.history_chunks.remove(&tag).unwrap_or_default();
                let c = self.conversations.entry(conv).or_default();
                c.fetching = false;
                c.complete = older.len() < HISTORY_PAGE;
                older.append(&mut c.lines);
                c.lines = older;
            }
            (Pending::Listing { peer, path }, Reply::Listing { entries, .. }) => self.remote.listed(&peer, &path, Ok(entries)),
            (Pending::Listing { peer, path }, Reply::Failed { message, .. }) => self.remote.listed(&peer, &path, Err(message)),
            (Pending::Older(conv), Reply::Failed { .. }) => {
                // The line it paged from is gone (the room trims its oldest lines): so is
                // everything before it.
                self.history_chunks.remove(&tag);
                let c = self.conversations.entry(conv).or_default();
                c.fetching = false;
                c.complete = true;
            }
            (Pending::History(_), Reply::Failed { message, .. }) => {
                self.history_chunks.remove(&tag);
                self.say(message);
            }
            (Pending::Transfer(request), Reply::Progress { progress, .. }) => {
                let wanted = self.pin_wanted.remove(&progress.transfer);
                self.retryable.insert(progress.transfer.clone(), request);
                if wanted {
                    self.ask_pin(&progress.transfer, &progress.peer);
                }
            }
            (Pending::Transfer(_), Reply::NotDelivered { peer, error }) => self.say(format!("{peer}: {error}")),
            (Pending::Transfer(_), Reply::Failed { message, .. }) => self.say(message),
            (Pending::Nick(nick), Reply::Done) => {
                self.say(format!("you are {} now", printable(&nick)));
                if let Some(me) = &mut self.me {
                    me.nick = nick;
                }
            }
            (Pending::AddPeer(addr), Reply::Peers { peers, .. }) => self.added_peer(&addr, Ok(peers)),
            (Pending::AddPeer(addr), Reply::Failed { message, .. }) => self.added_peer(&addr, Err(message)),
            (_, Reply::Deposited(r)) => self.deposited(&r),
            (_, Reply::Retrieved(r)) => self.retrieved(&r),
            (_, Reply::Deposits { deposits }) => self.set_deposits(deposits),
            (_, Reply::Note { text }) => self.say(text),
            (_, Reply::Failed { message, .. }) => self.say(message),
            _ => {}
        }
        cmds
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let act = action(self.context(), key);
        self.act(act)
    }

    /// Carry out an action in the current context.
    pub fn act(&mut self, act: Action) -> Vec<Cmd> {
        let ctx = self.context();
        match (ctx, act) {
            (_, Action::Quit) => {
                // Our own node stops with the TUI: running transfers pause, so ask first (a second
                // quit, Ctrl-C again, goes). Attached to a `serve`, they carry on there.
                let running = self.transfers.iter().filter(|t| !t.state.is_finished()).count();
                let asked = matches!(self.overlay, Some(Overlay::ConfirmQuit { .. }));
                if running > 0 && !self.attached && !asked {
                    self.overlay = Some(Overlay::ConfirmQuit { running });
                    return Vec::new();
                }
                self.quit = true;
                vec![Cmd::Quit]
            }
            (_, Action::Help) => {
                self.overlay = Some(Overlay::Help { scroll: 0 });
                Vec::new()
            }
            (Context::Help, Action::Escape) => {
                self.overlay = None;
                self.open_offer_if_any()
            }
            (Context::Help, act) => {
                let max = super::help::max_scroll(self.size.0, self.size.1);
                let page = super::help::inner(self.size.0, self.size.1).1.saturating_sub(1).max(1);
                let (scroll, max) = match &mut self.overlay {
                    Some(Overlay::Help { scroll }) => (scroll, Some(max)),
                    // Its length is the view's to know: scrolled past the end it shows blank.
                    Some(Overlay::Transfer { scroll, .. }) => (scroll, None),
                    _ => return Vec::new(),
                };
                *scroll = match act {
                    Action::Up => scroll.saturating_sub(1),
                    Action::Down => *scroll + 1,
                    Action::PageUp => scroll.saturating_sub(page),
                    Action::PageDown => *scroll + page,
                    Action::Home => 0,
                    Action::End => max.unwrap_or(*scroll),
                    _ => *scroll,
                }
                .min(max.unwrap_or(usize::MAX));
                Vec::new()
            }
            (Context::Offer, _) => self.offer_key(act),
            (Context::Confirm, Action::Accept) => match self.overlay.take() {
                Some(Overlay::ConfirmSend { paths, peers, .. }) => self.start_send(paths, peers),
                Some(Overlay::ConfirmQuit { .. }) => {
                    self.quit = true;
                    vec![Cmd::Quit]
                }
                _ => Vec::new(),
            },
            (Context::Confirm, Action::Escape) => {
                if let Some(Overlay::ConfirmSend { .. }) = self.overlay.take() {
                    self.say("nothing sent");
                }
                Vec::new()
            }
            (Context::AddPeer, act) => self.add_peer_key(act),
            (Context::Pin, act) => self.pin_key(act),
            (Context::Replicas, act) => self.replicas_key(act),
            (Context::Filter, act) => {
                self.filter_key(act);
                self.open_offer_if_any()
            }
            (Context::Typing, act) => self.typing_key(act),
            (_, Action::NextPane) => self.focus_on(self.focus.next()),
            (_, Action::PrevPane) => self.focus_on(self.focus.prev()),
            (_, Action::Focus(pane)) => self.focus_on(pane),
            (_, Action::Offers) => self.show_offers(),
            (Context::Pane(pane), act) => self.pane_key(pane, act),
            _ => Vec::new(),
        }
    }

    fn focus_on(&mut self, pane: Pane) -> Vec<Cmd> {
        let pane = self.column(pane);
        self.focus = pane;
        self.typing = false;
        self.typing_from = None;
        self.filtering = false;
        let mut cmds = if pane == Pane::Remote { self.show_remote() } else { Vec::new() };
        cmds.extend(self.open_offer_if_any());
        cmds
    }

    fn pane_key(&mut self, pane: Pane, act: Action) -> Vec<Cmd> {
        match (pane, act) {
            (_, Action::Escape) => {
                self.clear_filter(pane);
                Vec::new()
            }
            (Pane::Peers, Action::Filter) | (Pane::Local, Action::Filter) | (Pane::Remote, Action::Filter) => {
                self.filtering = true;
                Vec::new()
            }
            (Pane::Local | Pane::Remote | Pane::Deposits, Action::Locker) => self.toggle_locker(),
            (Pane::Peers, _) => self.peers_key(act),
            (Pane::Chat, _) => self.chat_key(act),
            (Pane::Local, _) => self.local_key(act),
            (Pane::Remote, _) => self.remote_key(act),
            (Pane::Transfers, _) => self.transfers_key(act),
            (Pane::Deposits, _) => self.deposits_key(act),
        }
    }

    fn page(&self) -> usize {
        (self.size.1 as usize / 3).max(1)
    }

    fn clear_filter(&mut self, pane: Pane) {
        match pane {
            Pane::Peers => self.peer_filter.clear(),
            Pane::Local => self.local.list.filter.clear(),
            Pane::Remote => self.remote.list.filter.clear(),
            _ => {}
        }
    }

    fn filter_key(&mut self, act: Action) {
        let filter = match self.focus {
            Pane::Peers => &mut self.peer_filter,
            Pane::Local => &mut self.local.list.filter,
            Pane::Remote => &mut self.remote.list.filter,
            _ => {
                self.filtering = false;
                return;
            }
        };
        match act {
            Action::Edit(super::input::Edit::Insert(c)) => filter.push(c),
            Action::Edit(super::input::Edit::Backspace) => {
                filter.pop();
            }
            Action::Submit => self.filtering = false,
            Action::Escape => {
                filter.clear();
                self.filtering = false;
            }
            _ => {}
        }
        match self.focus {
            Pane::Peers => self.peer_cursor = 0,
            Pane::Local => self.local.list.home(),
            Pane::Remote => self.remote.list.home(),
            _ => {}
        }
    }

    fn on_paste(&mut self, text: &str) -> Vec<Cmd> {
        match self.context() {
            Context::Typing => {
                let conv = self.selected_conversation();
                self.conversations.entry(conv).or_default().draft.paste(text);
            }
            Context::AddPeer => self.add_peer.paste(text.trim()),
            Context::Pin => self.pin.paste(text.trim()),
            Context::Pane(_) => {
                // A file dropped on the terminal arrives as its path, pasted.
                let paths: Vec<PathBuf> = text
                    .lines()
                    .map(|l| PathBuf::from(unquote(l.trim())))
                    .filter(|p| !p.as_os_str().is_empty() && p.is_absolute() && p.exists())
                    .collect();
                if paths.is_empty() {
                    self.say("pasted text is not a path to a file here");
                } else if self.recipients().is_empty() {
                    self.say("select a peer first, then drop files to send them");
                } else {
                    return self.send_paths(paths, true);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_mouse(&mut self, m: MouseEvent) -> Vec<Cmd> {
        if self.overlay.is_some() {
            return Vec::new();
        }
        let areas = Areas::new(Rect::new(0, 0, self.size.0, self.size.1), self.focus);
        let at = Position::new(m.column, m.row);
        let Some(pane) = areas.pane_at(at).map(|p| self.column(p)) else {
            return Vec::new();
        };
        match m.kind {
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let act = if m.kind == MouseEventKind::ScrollUp {
                    Action::Up
                } else {
                    Action::Down
                };
                let (focus, typing) = (self.focus, self.typing);
                self.focus = pane;
                self.typing = false;
                let cmds = self.pane_key(pane, act);
                self.focus = focus;
                self.typing = typing;
                cmds
            }
            MouseEventKind::Down(MouseButton::Left) => {
                let mut cmds = self.focus_on(pane);
                // The row clicked: below the border (panes) or the title row (file columns),
                // plus how far the list was scrolled to keep its cursor in view (as drawn).
                let rect = areas.rect(pane);
                let row = m.row.saturating_sub(rect.y + 1) as usize;
                let rows = match pane {
                    Pane::Local | Pane::Remote | Pane::Deposits => rect.height.saturating_sub(1),
                    _ => rect.height.saturating_sub(2),
                } as usize;
                let at = |cursor: usize| cursor.saturating_sub(rows.saturating_sub(1)) + row;
                match pane {
                    Pane::Peers => {
                        self.peer_cursor = at(self.peer_cursor).min(self.peer_rows() - 1);
                        cmds.extend(self.on_selection_changed());
                    }
                    Pane::Local => {
                        let n = self.local.list.visible().len();
                        self.local.list.cursor = at(self.local.list.cursor).min(n.saturating_sub(1));
                    }
                    Pane::Remote => {
                        let n = self.remote.list.visible().len();
                        self.remote.list.cursor = at(self.remote.list.cursor).min(n.saturating_sub(1));
                    }
                    Pane::Transfers => self.transfer_cursor = at(self.transfer_cursor).min(self.transfer_rows().saturating_sub(1)),
                    // Two lines a deposit: its name, then its holders.
                    Pane::Deposits => {
                        let first = self.deposit_cursor.saturating_sub(rows.saturating_sub(2) / 2);
                        self.deposit_cursor = (first + row / 2).min(self.deposits.len().saturating_sub(1));
                    }
                    Pane::Chat => self.typing = true,
                }
                cmds
            }
            _ => Vec::new(),
        }
    }

    /// The selection in Peers moved: load that conversation, mark it read, and follow it in the
    /// remote column.
    fn on_selection_changed(&mut self) -> Vec<Cmd> {
        let mut cmds = self.ensure_loaded();
        cmds.extend(self.mark_selected_read());
        if self.remote.peer.is_some() || self.focus == Pane::Remote {
            cmds.extend(self.show_remote());
        }
        cmds
    }

    fn ensure_loaded(&mut self) -> Vec<Cmd> {
        let conv = self.selected_conversation();
        let c = self.conversations.entry(conv.clone()).or_default();
        if c.loaded {
            return Vec::new();
        }
        c.loaded = true;
        let request = Request::History {
            peer: conv.clone(),
            limit: Some(HISTORY_PAGE),
            before: None,
            after: None,
            first: false,
        };
        vec![self.call(request, Pending::History(conv))]
    }

    fn mark_selected_read(&mut self) -> Vec<Cmd> {
        let conv = self.selected_conversation();
        match self.conversations.get_mut(&conv) {
            Some(c) if c.unread > 0 => {
                c.unread = 0;
                vec![self.call(Request::MarkRead { peer: conv }, Pending::Plain("mark read"))]
            }
            _ => Vec::new(),
        }
    }

    fn peer_mut(&mut self, id: &PeerId) -> &mut PeerInfo {
        if let Some(i) = self.peers.iter().position(|p| &p.id == id) {
            return &mut self.peers[i];
        }
        self.peers.push(PeerInfo {
            id: id.clone(),
            short_id: id.short().to_string(),
            nick: String::new(),
            // Drawn through `peer_name`, which follows renames; this field is for one-shot lists.
            label: String::new(),
            host: String::new(),
            online: false,
            addr: None,
            fingerprint: String::new(),
            trusted: false,
            last_seen: None,
            discovered: false,
            unread: 0,
            transfers: 0,
        });
        let last = self.peers.len() - 1;
        &mut self.peers[last]
    }

    /// Online first, then by nick.
    fn sort_peers(&mut self) {
        self.peers.retain(|p| !p.nick.is_empty());
        self.peers.sort_by(|a, b| {
            b.online
                .cmp(&a.online)
                .then_with(|| a.nick.to_lowercase().cmp(&b.nick.to_lowercase()))
                .then_with(|| a.id.cmp(&b.id))
        });
    }

    /// Keep the cursor on the same conversation after the list changed order.
    fn reselect(&mut self, conversation: &str) {
        if conversation == ROOM {
            self.peer_cursor = 0;
            return;
        }
        let peers = self.visible_peers();
        if let Some(i) = peers.iter().position(|p| p.id.as_str() == conversation) {
            self.peer_cursor = i + 1;
        } else if let Some(i) = self
            .visible_devices()
            .iter()
            .position(|d| device_id(&d.fingerprint).as_str() == conversation)
        {
            self.peer_cursor = 1 + peers.len() + i;
        } else {
            self.peer_cursor = self.peer_cursor.min(self.peer_rows() - 1);
        }
    }

    fn set_delivery(&mut self, to: &PeerId, ids: &[String], state: Delivery, reason: Option<String>) {
        let ids: HashSet<&String> = ids.iter().collect();
        for conv in [to.to_string(), ROOM.to_string()] {
            let Some(c) = self.conversations.get_mut(&conv) else { continue };
            for line in c.lines.iter_mut().rev().filter(|l| l.outgoing && ids.contains(&l.id)) {
                for r in line.recipients.iter_mut().filter(|r| &r.peer == to) {
                    // Delivered and refused are final; a late "sent" must not undo them.
                    if !matches!(r.state, Delivery::Delivered | Delivery::Refused) {
                        r.state = state;
                        r.reason = reason.clone();
                    }
                }
                line.state = line.recipients.iter().map(|r| r.state).min();
            }
        }
    }

    fn upsert_transfer(&mut self, t: TransferView) {
        // A send a LocalSend device refused for want of a PIN: ask for it (once the request
        // that started it here is known).
        let (id, peer) = (t.transfer.clone(), t.peer.clone());
        let wants_pin =
            t.direction == crate::node::api::Direction::Send && t.state == TransferState::Rejected && t.reason == Some(Reason::PinRequired);
        // Progress keeps a row's place; only a new row or one that just finished moves.
        let moved = match self.transfers.iter_mut().find(|x| x.transfer == t.transfer) {
            Some(x) => {
                let finished = !x.state.is_finished() && t.state.is_finished();
                *x = t;
                finished
            }
            None => {
                self.transfers.push(t);
                true
            }
        };
        if !moved {
            return;
        }
        if wants_pin {
            if self.retryable.contains_key(&id) {
                self.ask_pin(&id, &peer);
            } else if self.pin_wanted.len() < KEEP_FINISHED {
                // Bounded: a send another face started here never gets its request.
                self.pin_wanted.insert(id);
            }
        }
        self.sort_transfers();
        let running = self.transfers.iter().filter(|t| !t.state.is_finished()).count();
        self.transfers.truncate(running + KEEP_FINISHED);
    }

    /// Running first (oldest first), then finished (newest first).
    fn sort_transfers(&mut self) {
        self.transfers.sort_by(|a, b| {
            let (fa, fb) = (a.state.is_finished(), b.state.is_finished());
            fa.cmp(&fb).then_with(|| {
                if fa {
                    b.ended_ms.cmp(&a.ended_ms)
                } else {
                    a.started_ms.cmp(&b.started_ms)
                }
            })
        });
        let rows = self.transfer_rows();
        self.transfer_cursor = self.transfer_cursor.min(rows.saturating_sub(1));
    }
}

fn push_line(conv: &mut Conversation, entry: ChatEntry) {
    conv.lines.push(entry);
    if conv.lines.len() > KEEP_LINES {
        let extra = conv.lines.len() - KEEP_LINES;
        conv.lines.drain(..extra);
    }
    // Someone reading back keeps their place.
    if conv.scroll > 0 {
        conv.scroll += 1;
    }
}

/// Moving and marking in a file column; false for any other action.
fn navigate(list: &mut super::files::Listing, act: Action, page: usize) -> bool {
    let page = page as isize;
    match act {
        Action::Up => list.move_by(-1),
        Action::Down => list.move_by(1),
        Action::PageUp => list.move_by(-page),
        Action::PageDown => list.move_by(page),
        Action::Home => list.home(),
        Action::End => list.end(),
        Action::Mark => list.toggle_mark(),
        _ => return false,
    }
    true
}

fn moved(cursor: usize, n: usize, act: Action, page: usize) -> usize {
    if n == 0 {
        return 0;
    }
    match act {
        Action::Up => cursor.saturating_sub(1),
        Action::Down => (cursor + 1).min(n - 1),
        Action::PageUp => cursor.saturating_sub(page),
        Action::PageDown => (cursor + page).min(n - 1),
        Action::Home => 0,
        Action::End => n - 1,
        _ => cursor.min(n - 1),
    }
}

/// A dropped file's path may come quoted (`'/a b/c.pdf'`) or with `file://`.
fn unquote(s: &str) -> &str {
    let s = s.strip_prefix("file://").unwrap_or(s);
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
        .unwrap_or(s)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
