//! Connection tasks: the accept loop, dialling (manual and discovered peers), and the control
//! session that runs for as long as a peer is connected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::dials::{Outcome, Verdict};
use super::peers::{LiveConn, Registered};
use super::slots::{Pool, Refusal, Slot};
use super::transfer::wire::Report;
use super::{Event, Shared, chat, exchange, lock};
use crate::identity::PeerId;
use crate::limits::{CONNECT_TIMEOUT, HINT_TTL, MAX_CANDIDATES, MAX_PENDING_HANDSHAKES, MIN_DISCOVERED_PORT};
use crate::net::discovery::DiscoveryEvent;
use crate::net::frame::FrameError;
use crate::net::secure::{self, CONTROL_GONE_AFTER, HANDSHAKE_TIMEOUT, HandshakeError, Remote, SecureConn};
use crate::net::wire::{ByeReason, ControlMsg, MAX_CONTROL_FRAME, MAX_NICK_BYTES, Purpose};
use crate::store::{StoredPeer, unix_now};

/// A vanished machine is the kernel's to notice (`SecureWriter::watch_as_control`); our own ping
/// only proves the peer's process still runs, so it is rare, and sent only when nothing else was.
const PING_EVERY: Duration = Duration::from_secs(30);
const CONTROL_QUEUE: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// After a duplicate's goodbye, how long the winning connection gets to show up before the peer
/// counts as down.
const DUPLICATE_GRACE: Duration = Duration::from_secs(3);
/// How long a goodbye may take to write before the connection is simply dropped.
const GOODBYE_LIMIT: Duration = Duration::from_millis(500);

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((sock, addr)) => {
                shared.tracker.spawn("conn::incoming", handle_incoming(shared.clone(), sock, addr));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle_incoming(shared: Arc<Shared>, sock: TcpStream, addr: SocketAddr) {
    let pending = shared.slots.begin_handshake(addr.ip(), MAX_PENDING_HANDSHAKES);
    let hello = shared.hello();
    let result = tokio::select! {
        _ = shared.cancel.cancelled() => None,
        _ = pending.evict.cancelled() => Some(Err("evicted: too many handshakes in progress".to_string())),
        r = timeout(HANDSHAKE_TIMEOUT, secure::accept(sock, &shared.identity, &hello)) => Some(match r {
            Err(_) => Err(HandshakeError::Timeout.to_string()),
            Ok(r) => r.map_err(|e| e.to_string()),
        }),
    };
    drop(pending);
    match result {
        None => {}
        Some(Err(reason)) => tracing::info!("dropped connection from {addr}: {reason}"),
        Some(Ok(conn)) => match conn.purpose {
            Purpose::Control => {
                run_control(shared, conn).await;
            }
            // A slot before anything is recorded: a refused throwaway key leaves no trace.
            Purpose::Transfer => match take_slot(&shared, Pool::Transfer, &conn.remote) {
                Err(refusal) => crate::node::transfer::refuse(&shared, conn, refusal).await,
                Ok(slot) => match pin_and_record(&shared, &conn.remote) {
                    Ok(()) => crate::node::transfer::serve_incoming(shared, conn, slot).await,
                    Err(reason) => tracing::warn!("refused transfer connection from {addr}: {reason}"),
                },
            },
        },
    }
}

/// A slot in `pool` for this peer, ranked by its standing (see `limits`); a refusal is also
/// told to the faces (at most once a minute).
pub(crate) fn take_slot(shared: &Shared, pool: Pool, remote: &Remote) -> Result<Slot, Refusal> {
    let newcomer = shared.peers().get(&remote.id).is_none_or(|p| !p.has_standing());
    let taken = shared.slots.take(pool, remote.addr.ip(), &remote.id, newcomer);
    if let Err(refusal) = taken {
        shared.warn_full(remote, refusal.reason());
    }
    taken
}

/// Dial one address and complete the handshake.
pub(crate) async fn dial(
    shared: &Shared,
    addr: SocketAddr,
    expect: Option<&PeerId>,
    purpose: Purpose,
) -> Result<SecureConn, HandshakeError> {
    let sock = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => return Err(HandshakeError::Timeout),
        Ok(r) => r.map_err(HandshakeError::Io)?,
    };
    match timeout(
        HANDSHAKE_TIMEOUT,
        secure::connect(sock, &shared.identity, &shared.hello(), purpose, expect),
    )
    .await
    {
        Err(_) => Err(HandshakeError::Timeout),
        Ok(r) => r,
    }
}

/// Refuse a peer whose id is pinned to a different key (which, since ids are key hashes, only a
/// forged or corrupted record could produce), then remember it.
fn pin_and_record(shared: &Shared, remote: &Remote) -> Result<(), String> {
    match shared.store.pinned_key(&remote.id) {
        Ok(Some(key)) if key != remote.public_key => {
            return Err(format!("peer {} presented a key different from the one pinned for it", remote.id));
        }
        Err(e) => return Err(format!("database: {e}")),
        _ => {}
    }
    let listen_addr = remote.hello.listen_port.map(|p| SocketAddr::new(remote.addr.ip(), p).to_string());
    let record = StoredPeer {
        id: remote.id.clone(),
        public_key: remote.public_key.clone(),
        nick: remote.hello.nick.clone(),
        host: remote.hello.host.clone(),
        listen_addr,
        last_seen: Some(unix_now()),
        trusted: false,
    };
    shared
        .store
        .upsert_peer(&record, &remote.addr.to_string())
        .map_err(|e| format!("database: {e}"))
}

/// The control session with one peer: registers the connection, then reads until the peer
/// leaves, goes silent, misbehaves, or the node shuts down. Returns why it was refused, if it
/// was ("busy: …", by the peer or by our own budget), so a dialler waits longer before trying
/// again.
pub(crate) async fn run_control(shared: Arc<Shared>, conn: SecureConn) -> Option<String> {
    let SecureConn {
        mut reader,
        mut writer,
        remote,
        ..
    } = conn;
    let id = remote.id.clone();
    let _slot = match take_slot(&shared, Pool::Control, &remote) {
        Ok(slot) => slot,
        Err(refusal) => {
            let _ = timeout(GOODBYE_LIMIT, async {
                let _ = writer.send(&ControlMsg::Bye { reason: refusal.bye() }).await;
                writer.shutdown().await;
            })
            .await;
            return Some(format!("not connected here: {}", refusal.reason()));
        }
    };
    let recorded = {
        let (s, r) = (shared.clone(), remote.clone());
        super::off_thread(move || pin_and_record(&s, &r))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    };
    if let Err(reason) = recorded {
        tracing::warn!("refused {}: {reason}", remote.addr);
        shared.emit(Event::Warning {
            message: format!("refused connection from {}: {reason}", remote.addr),
        });
        writer.shutdown().await;
        return None;
    }

    if let Err(e) = writer.watch_as_control() {
        tracing::debug!("keepalive for {}: {e}", remote.addr);
    }
    let conn_id = shared.next_id();
    let (tx, mut rx) = mpsc::channel::<ControlMsg>(CONTROL_QUEUE);
    let cancel = shared.cancel.child_token();
    let replaced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let live = LiveConn {
        conn_id,
        tx: tx.clone(),
        session: remote.hello.session,
        channel: remote.channel,
        addr: remote.addr,
        cancel: cancel.clone(),
        replaced: replaced.clone(),
        listens: remote.hello.listen_port.is_some(),
    };
    let (registered, old_nick) = {
        let mut table = shared.peers();
        let peer = table.entry(&id);
        let old_nick = std::mem::replace(&mut peer.nick, remote.hello.nick.clone());
        // Seen over mDNS before its key answered: faces hear of it now, by the name it proved.
        let discovered = (!peer.is_proven() && peer.mdns_present).then(|| Event::PeerDiscovered {
            id: id.clone(),
            nick: remote.hello.nick.clone(),
            host: remote.hello.host.clone(),
        });
        peer.public_key = remote.public_key.clone();
        peer.host = remote.hello.host.clone();
        peer.last_seen = Some(unix_now());
        if let Some(port) = remote.hello.listen_port {
            let addr = SocketAddr::new(remote.addr.ip(), port);
            peer.dial_addrs.retain(|a| a != &addr);
            peer.dial_addrs.insert(0, addr);
        }
        // A remembered dial that made this connection is over (see `known::dial_one`).
        peer.dialing_remembered = false;
        let registered = table.register(&id, live);
        shared.tally.control_registered();
        if let Some(event) = discovered {
            shared.emit(event);
        }
        // Told under the table's lock, as every up and down is: a connection that registers in
        // between must not get its "up" out before this one's, or faces end on the wrong state.
        if registered == Registered::Up {
            shared.emit(Event::PeerUp {
                id: id.clone(),
                nick: remote.hello.nick.clone(),
                host: remote.hello.host.clone(),
                addr: remote.addr.to_string(),
            });
        }
        (registered, old_nick)
    };
    shared.touch();
    match registered {
        Registered::Duplicate => {
            tracing::debug!("closing duplicate connection to {id:?}");
            // The one kept may be dead on the far side without our knowing (a blip cut it there):
            // a ping on it brings the far kernel's reset now rather than at the next keepalive.
            if let Some(kept) = shared.peers().sender(&id) {
                let _ = kept.try_send(ControlMsg::Ping);
            }
            let _ = writer
                .send(&ControlMsg::Bye {
                    reason: ByeReason::Duplicate,
                })
                .await;
            writer.shutdown().await;
            return None;
        }
        Registered::Twin => {
            tracing::warn!(
                "{} connected from {} as a session another node with its key replaced: refused",
                id.short(),
                remote.addr
            );
            let _ = writer
                .send(&ControlMsg::Bye {
                    reason: ByeReason::SameIdentity,
                })
                .await;
            writer.shutdown().await;
            return None;
        }
        Registered::Up | Registered::Replaced(_) => {}
    }
    if remote.hello.listen_port.is_some() {
        for list in exchange::lists_for(&shared, &id, remote.addr) {
            // A full queue means the peer doesn't read; the silence limit deals with that.
            let _ = tx.try_send(list);
        }
    }
    let inbox = chat::connection_up(&shared, &id, remote.addr.ip(), conn_id, tx.clone(), cancel.clone());
    crate::node::transfer::cancels_connection_up(&shared, &id, &tx);
    if !old_nick.is_empty() && old_nick != remote.hello.nick {
        shared.emit(Event::PeerRenamed {
            id: id.clone(),
            old: old_nick,
            new: remote.hello.nick.clone(),
        });
    }

    let writer_cancel = cancel.clone();
    let node_cancel = shared.cancel.clone();
    let idle_limit = shared.config.control_idle_limit;
    let writer_task = shared.tracker.spawn("conn::writer", async move {
        let mut ping_at = tokio::time::Instant::now() + PING_EVERY;
        loop {
            let queued = tokio::select! {
                biased;
                _ = writer_cancel.cancelled() => break,
                msg = rx.recv() => match msg {
                    None => break,
                    Some(msg) => {
                        // Drain what else is queued into the same records: bursts cost one write.
                        let mut r = writer.queue_frame(&msg);
                        while r.is_ok() && let Ok(more) = rx.try_recv() {
                            r = writer.queue_frame(&more);
                        }
                        r
                    }
                },
                _ = tokio::time::sleep_until(ping_at) => writer.queue_frame(&ControlMsg::Ping),
            };
            // A peer that stops reading must not hold this task (and its connection slot): the
            // write gives way to cancellation and to the same silence limit as reads.
            let written = queued.is_ok()
                && tokio::select! {
                    biased;
                    _ = writer_cancel.cancelled() => false,
                    r = timeout(idle_limit, writer.flush()) => matches!(r, Ok(Ok(()))),
                };
            if !written {
                break;
            }
            ping_at = tokio::time::Instant::now() + PING_EVERY;
        }
        let reason = if replaced.load(std::sync::atomic::Ordering::Relaxed) && !node_cancel.is_cancelled() {
            ByeReason::Duplicate
        } else {
            ByeReason::Leaving
        };
        let _ = timeout(GOODBYE_LIMIT, async {
            let _ = writer.send(&ControlMsg::Bye { reason }).await;
            writer.shutdown().await;
        })
        .await;
    });

    let mut quiet = false;
    // Gone without a goodbye (crash, cable, sleep): worth dialling again for a while.
    let mut lost = false;
    let mut refused = None;
    let reason = loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => break match inbox.failure() {
                Some(reason) => {
                    tracing::warn!("dropping connection to {} ({}): {reason}", remote.addr, id.short());
                    reason
                }
                None if shared.cancel.is_cancelled() => "shutting down".to_string(),
                None => "replaced".to_string(),
            },
            r = timeout(idle_limit, reader.read_frame::<ControlMsg>(MAX_CONTROL_FRAME)) => r,
        };
        match read {
            Err(_) => {
                lost = true;
                break format!("no sign of life for {} s", idle_limit.as_secs());
            }
            Ok(Ok(None)) => {
                lost = true;
                break "connection closed".to_string();
            }
            // The kernel's probes went unanswered: the machine is gone, not the program stuck.
            Ok(Err(FrameError::Io(e))) if e.kind() == std::io::ErrorKind::TimedOut => {
                lost = true;
                break format!("no sign of life for {} s", CONTROL_GONE_AFTER.as_secs());
            }
            Ok(Err(FrameError::Io(e)))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                lost = true;
                break "connection closed".to_string();
            }
            Ok(Err(e)) => {
                tracing::warn!("dropping connection to {} ({}): {e}", remote.addr, id.short());
                break format!("protocol error: {e}");
            }
            Ok(Ok(Some(msg))) => match msg.validate().map(|()| msg) {
                Err(e) => {
                    tracing::warn!("dropping connection to {} ({}): {e}", remote.addr, id.short());
                    break format!("protocol error: {e}");
                }
                Ok(msg) => match msg {
                    ControlMsg::Ping | ControlMsg::Unknown => {}
                    ControlMsg::Peers { peers } => exchange::receive(&shared, &id, remote.addr, peers),
                    ControlMsg::Vouch { transfer, digest } => shared.transfers.vouch(&id, transfer, &digest),
                    ControlMsg::Cancelled { transfer, code } => crate::node::transfer::cancel_heard(&shared, &id, &transfer, code),
                    ControlMsg::VouchRequest { transfer } => {
                        let digest = shared.transfers.vouch_for(&transfer, &id);
                        let tx = shared.peers().sender(&id);
                        if let (Some(digest), Some(tx)) = (digest, tx) {
                            let _ = tx.try_send(ControlMsg::vouch(transfer, &digest));
                        }
                    }
                    ControlMsg::Verdict {
                        transfer,
                        digest,
                        finished,
                        files,
                        bytes,
                        failed,
                        code,
                        reason,
                    } => {
                        let report = if finished {
                            Report::Finished {
                                files,
                                bytes,
                                failed,
                                reason,
                                saved_as: Vec::new(),
                            }
                        } else {
                            Report::Failed {
                                code: code.unwrap_or(crate::reason::Reason::Other),
                                reason: reason.unwrap_or_else(|| "it ended early".into()),
                            }
                        };
                        shared.transfers.verdict(&id, &transfer, &digest, report);
                    }
                    ControlMsg::Chat {
                        id: line,
                        room,
                        sent_ms,
                        text,
                    } => {
                        let pushed = tokio::select! {
                            _ = cancel.cancelled() => continue,
                            pushed = inbox.push_line(line, room, sent_ms, text) => pushed,
                        };
                        if let Err(e) = pushed {
                            tracing::warn!("dropping connection to {} ({}): {e}", remote.addr, id.short());
                            break e;
                        }
                    }
                    ControlMsg::ChatAck { id: line } => {
                        if let Err(e) = inbox.push(chat::Incoming::Ack(line)) {
                            tracing::warn!("dropping connection to {} ({}): {e}", remote.addr, id.short());
                            break e;
                        }
                    }
                    ControlMsg::ChatRefused { id: line, reason } => {
                        if let Err(e) = inbox.push(chat::Incoming::Refused(line, reason)) {
                            tracing::warn!("dropping connection to {} ({}): {e}", remote.addr, id.short());
                            break e;
                        }
                    }
                    ControlMsg::Bye { reason } => {
                        quiet = reason == ByeReason::Duplicate;
                        if let Some(why) = reason.refusal() {
                            tracing::warn!("{} ({}) refused the connection: {why}", remote.addr, id.short());
                            if reason == ByeReason::SameIdentity {
                                // Not this peer's business alone: every face hears it.
                                shared.emit(Event::Warning {
                                    message: format!("{} refused us: {why}", crate::text::printable(&remote.hello.nick)),
                                });
                            }
                            refused = Some(why.to_string());
                            break format!("refused: {why}");
                        }
                        break "left".to_string();
                    }
                    ControlMsg::Nick { nick } => {
                        // Same bound as the nick in the handshake; its characters are neutralised
                        // wherever it is printed, not here.
                        if nick.is_empty() || nick.len() > MAX_NICK_BYTES {
                            tracing::warn!("dropping connection to {}: nick of {} bytes", id.short(), nick.len());
                            break format!("protocol error: nick must be 1 to {MAX_NICK_BYTES} bytes");
                        }
                        // A peer forgotten meanwhile stays forgotten until it connects again.
                        let Some(old) = shared.peers().get_mut(&id).map(|p| std::mem::replace(&mut p.nick, nick.clone())) else {
                            continue;
                        };
                        shared.touch();
                        if old != nick {
                            shared.emit(Event::PeerRenamed {
                                id: id.clone(),
                                old,
                                new: nick,
                            });
                        }
                    }
                },
            },
        }
    };
    cancel.cancel();
    drop(tx);
    // The table and subscribers learn at once; the goodbye is best effort and bounded.
    chat::connection_down(&shared, &id, conn_id).await;
    // Last seen is when it left, not when it came: how long it has been away decides when it is
    // no longer listed.
    let now = unix_now();
    let mut unsettled = None;
    let (nick, known, redial, verify) = {
        let mut table = shared.peers();
        let nick = table.get(&id).map(|p| p.nick.clone()).unwrap_or_default();
        let down = table.unregister(&id, conn_id, quiet);
        // Counted from here, before this connection's slot goes: a test that sees the slots
        // settled and nothing unsettled knows no late "down" can come.
        if !down && quiet {
            unsettled = Some(shared.tally.duplicate_unsettled());
        }
        if down {
            shared.emit(Event::PeerDown {
                id: id.clone(),
                nick: nick.clone(),
                reason: reason.clone(),
            });
        }
        match table.get_mut(&id) {
            None => (nick, false, false, false),
            Some(p) => {
                p.last_seen = Some(now);
                // Gone without a goodbye and not back by another connection: dial it for a while
                // even if nothing else names it, and ask mDNS whether its record still holds.
                let gone = lost && p.conn.is_none() && !shared.cancel.is_cancelled();
                let redial = gone && remote.hello.listen_port.is_some() && !p.dial_addrs.is_empty();
                if redial {
                    p.hinted_until = Some(std::time::Instant::now() + HINT_TTL);
                }
                let start = redial && !std::mem::replace(&mut p.dialer_running, true);
                (nick, true, start, gone && p.mdns_present)
            }
        }
    };
    if redial {
        spawn_dialler(&shared, id.clone());
    }
    if verify {
        let (shared, id) = (shared.clone(), id.clone());
        shared.tracker.clone().spawn("conn::verify_advert", async move {
            if let Some(d) = shared.discovery.lock().await.as_ref() {
                d.verify(&id);
            }
        });
    }
    if known {
        let (s, peer) = (shared.clone(), id.clone());
        if let Ok(Err(e)) = super::off_thread(move || s.store.seen(&peer, now)).await {
            tracing::warn!("cannot record when {} was last seen: {e}", id.short());
        }
    }
    shared.touch();
    let abort = writer_task.abort_handle();
    if timeout(GOODBYE_LIMIT * 2, writer_task).await.is_err() {
        abort.abort();
    }
    if let Some(unsettled) = unsettled {
        let shared2 = shared.clone();
        shared.tracker.spawn("conn::unsettled", async move {
            let _unsettled = unsettled;
            tokio::select! {
                _ = shared2.cancel.cancelled() => {}
                _ = tokio::time::sleep(DUPLICATE_GRACE) => {
                    let mut table = shared2.peers();
                    if table.settle(&id) {
                        shared2.emit(Event::PeerDown { id, nick, reason: "left".into() });
                    }
                }
            }
        });
    }
    refused
}

/// A dialler whose peer is connected looks again at most this often without being told of a
/// change (a safety net: every change of the peer table wakes it at once).
const IDLE_RECHECK: Duration = Duration::from_secs(120);

/// Until the peer table changes (true), `at_most` passes (true), or the node shuts down (false).
/// An idle lab costs nothing: diallers of connected peers sleep here, not in a poll.
async fn until_change(shared: &Shared, changed: &mut tokio::sync::watch::Receiver<u64>, at_most: Duration) -> bool {
    tokio::select! {
        _ = shared.cancel.cancelled() => false,
        _ = changed.changed() => true,
        _ = tokio::time::sleep(at_most) => true,
    }
}

/// Sleep, unless the node shuts down first (then false).
async fn pause(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        _ = shared.cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Keep a connection to a `--peer HOST:PORT` target for the node's life. The key that answers
/// there first is pinned to the address; a different one later is refused (before we say who we
/// are) with a warning naming both, until the user forgets the pinned peer.
pub(crate) async fn maintain_manual(shared: Arc<Shared>, target: String) {
    let mut backoff = BACKOFF_MIN;
    // The changed key already warned about: a dialler retrying every few seconds says it once.
    let mut warned: Option<Vec<u8>> = None;
    // Subscribed before each look, so a change between the look and the wait is not missed.
    let mut changed = shared.changed.subscribe();
    loop {
        if shared.cancel.is_cancelled() {
            return;
        }
        changed.borrow_and_update();
        let known = lock(&shared.manual).get(&target).and_then(|t| t.id.clone());
        if known.as_ref().is_some_and(|id| shared.peers().is_online(id)) {
            if !until_change(&shared, &mut changed, IDLE_RECHECK).await {
                return;
            }
            continue;
        }
        let pinned = {
            let (s, t) = (shared.clone(), target.clone());
            match super::off_thread(move || s.store.address_pin(&t)).await {
                Ok(Ok(pin)) => pin,
                Ok(Err(e)) | Err(e) => {
                    note_manual(&shared, &target, None, Some(format!("database: {e}")));
                    None
                }
            }
        };
        let addrs: Vec<SocketAddr> = match timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(target.as_str())).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                note_manual(&shared, &target, None, Some(format!("cannot resolve: {e}")));
                Vec::new()
            }
            Err(_) => {
                note_manual(&shared, &target, None, Some("name lookup timed out".into()));
                Vec::new()
            }
        };
        let mut last_err = None;
        for addr in addrs {
            let expect = pinned.as_ref().map(|(id, _)| id);
            match dial(&shared, addr, expect, Purpose::Control).await {
                Ok(conn) => {
                    let checked = {
                        let (s, t, r) = (shared.clone(), target.clone(), conn.remote.clone());
                        super::off_thread(move || s.store.check_address_pin(&t, &r.id, &r.public_key)).await
                    };
                    match checked {
                        Ok(Ok(Ok(first))) => {
                            if first {
                                tracing::info!(
                                    "--peer {target}: pinned key {}",
                                    crate::identity::fingerprint(&conn.remote.public_key)
                                );
                            }
                            note_manual(&shared, &target, Some(conn.remote.id.clone()), None);
                            last_err = None;
                            backoff = BACKOFF_MIN;
                            warned = None;
                            if let Some(why) = run_control(shared.clone(), conn).await {
                                note_manual(&shared, &target, None, Some(why));
                                backoff = BACKOFF_MAX;
                            }
                        }
                        Ok(Ok(Err(old))) => {
                            let message = key_changed(&shared, &target, &old, &conn.remote.id, &conn.remote.public_key, &mut warned);
                            note_refused(&shared, &target, &old.0, message);
                            last_err = None;
                        }
                        Ok(Err(e)) | Err(e) => last_err = Some(format!("database: {e}")),
                    }
                    break;
                }
                Err(HandshakeError::IdMismatch { got, got_key, .. }) if let Some(old) = &pinned => {
                    let message = key_changed(&shared, &target, old, &got, &got_key, &mut warned);
                    note_refused(&shared, &target, &old.0, message);
                    last_err = None;
                    break;
                }
                Err(HandshakeError::SelfConnection) => {
                    tracing::info!("--peer {target} is this node itself; not dialling it");
                    note_manual(&shared, &target, None, Some("that address is this node itself".into()));
                    return;
                }
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        if let Some(err) = last_err {
            let first = lock(&shared.manual).get(&target).is_some_and(|t| t.attempts == 0);
            if first {
                tracing::warn!("cannot reach --peer {target}: {err} (will keep trying)");
            }
            note_manual(&shared, &target, None, Some(err));
        }
        let wake = lock(&shared.manual).get(&target).map(|t| t.wake.clone()).unwrap_or_default();
        tokio::select! {
            alive = pause(&shared, backoff) => if !alive { return },
            _ = wake.notified() => backoff = BACKOFF_MIN,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Another key answered at `target`, where `pinned` is pinned.
fn note_refused(shared: &Shared, target: &str, pinned: &PeerId, message: String) {
    if let Some(t) = lock(&shared.manual).get_mut(target) {
        t.refused_for = Some(pinned.clone());
    }
    note_manual(shared, target, None, Some(message));
}

/// `id` was forgotten: the addresses that refused another key for its sake dial again now, and
/// a command waiting on one waits for that dial rather than failing on the refusal.
pub(crate) fn pin_forgotten(shared: &Shared, id: &PeerId) {
    let mut manual = lock(&shared.manual);
    for t in manual.values_mut().filter(|t| t.refused_for.as_ref() == Some(id)) {
        t.refused_for = None;
        t.last_error = None;
        t.attempts = 0;
        t.wake.notify_one();
    }
    drop(manual);
    shared.touch();
}

/// A key other than the pinned one answered at `target`: the refusal, told to faces once per key
/// (as ssh does, with both fingerprints and the way out).
fn key_changed(
    shared: &Shared,
    target: &str,
    old: &(PeerId, Vec<u8>),
    new_id: &PeerId,
    new_key: &[u8],
    warned: &mut Option<Vec<u8>>,
) -> String {
    use crate::identity::fingerprint;
    // The way out names the address: it works even once the old peer's row has expired.
    let message = format!(
        "the key at {target} changed: was {} (id {}), now {} (id {}); refused. If this is expected, run `lanyard forget {target}`",
        fingerprint(&old.1),
        old.0.short(),
        fingerprint(new_key),
        new_id.short(),
    );
    if warned.as_deref() != Some(new_key) {
        *warned = Some(new_key.to_vec());
        tracing::warn!("{message}");
        shared.emit(Event::Warning { message: message.clone() });
    }
    message
}

fn note_manual(shared: &Shared, target: &str, id: Option<PeerId>, error: Option<String>) {
    let mut manual = lock(&shared.manual);
    let t = manual.entry(target.to_string()).or_default();
    if id.is_some() {
        t.id = id;
        t.refused_for = None;
    }
    t.attempts += 1;
    t.last_error = error;
    drop(manual);
    shared.touch();
}

/// Fold mDNS events into the peer table and start a dialler for every new peer.
pub(crate) async fn on_discovery(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<DiscoveryEvent>) {
    loop {
        let event = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        match event {
            DiscoveryEvent::Found { id, nick, addrs, .. } => {
                let addrs: Vec<SocketAddr> = addrs.into_iter().filter(|a| a.port() >= MIN_DISCOVERED_PORT).collect();
                if addrs.is_empty() {
                    continue;
                }
                let (start, news, changed) = {
                    let mut table = shared.peers();
                    // A record is a claim: a peer no key answered for yet is held as a candidate
                    // (bounded, like the names in lists), and its nick is not taken until its key
                    // says it in a handshake.
                    // Its share is that of the address it names first: the one dialled first.
                    if !table.admit_claim(&id, addrs[0].ip(), MAX_CANDIDATES, std::time::Instant::now()) {
                        tracing::debug!("ignoring the mDNS record of {} ({nick:?}): too many unconfirmed peers", id.short());
                        continue;
                    }
                    let peer = table.entry(&id);
                    // Faces hear of a known peer once per appearance, not per mDNS resolution;
                    // of a new one when its key answers (see `run_control`).
                    let news = (peer.is_proven() && !peer.mdns_present && peer.conn.is_none()).then(|| Event::PeerDiscovered {
                        id: id.clone(),
                        nick: peer.nick.clone(),
                        host: peer.host.clone(),
                    });
                    let before = peer.dial_addrs.clone();
                    for a in addrs.into_iter().rev() {
                        peer.dial_addrs.retain(|x| x != &a);
                        peer.dial_addrs.insert(0, a);
                    }
                    peer.dial_addrs.truncate(8);
                    let changed = !std::mem::replace(&mut peer.mdns_present, true) || before != peer.dial_addrs;
                    (!std::mem::replace(&mut peer.dialer_running, true), news, changed)
                };
                // A record announced again unchanged (every minute, by every peer) wakes nobody.
                if changed || start {
                    shared.touch();
                }
                if let Some(event) = news {
                    shared.emit(event);
                }
                if start {
                    spawn_dialler(&shared, id);
                }
            }
            DiscoveryEvent::Lost { id } => {
                let was_present = match shared.peers().get_mut_for_discovery(&id) {
                    Some(p) => std::mem::replace(&mut p.mdns_present, false),
                    None => false,
                };
                if was_present {
                    shared.emit(Event::PeerLost { id });
                }
            }
        }
    }
}

/// Start [`maintain_peer`] for a peer whose `dialer_running` the caller just set. A plain function:
/// the dialler runs control sessions, which start diallers, and a future can't contain itself.
pub(crate) fn spawn_dialler(shared: &Arc<Shared>, id: PeerId) {
    let dialler: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(maintain_peer(shared.clone(), id));
    shared.tracker.spawn("conn::dialler", dialler);
}

/// Dial a peer until connected, and again whenever the connection drops, for as long as it is
/// wanted: its mDNS record is present, or another peer named it (or its connection broke)
/// recently. The id it was found under must be the key that answers.
async fn maintain_peer(shared: Arc<Shared>, id: PeerId) {
    let mut backoff = BACKOFF_MIN;
    let mut changed = shared.changed.subscribe();
    loop {
        changed.borrow_and_update();
        // A `--peer` dialler owns this peer: a second dial from this side would race it.
        let manual = lock(&shared.manual).values().any(|t| t.id.as_ref() == Some(&id));
        let (busy, from_mdns, addrs) = {
            let mut table = shared.peers();
            // Forgotten: a later record or list naming it starts a new dialler.
            let Some(peer) = table.get_mut(&id) else { return };
            let online = peer.conn.is_some();
            if !online && !peer.wanted(std::time::Instant::now()) || shared.cancel.is_cancelled() {
                peer.dialer_running = false;
                peer.hinted_until = None;
                // Only ever named by others and never answered: not worth a row.
                if peer.is_candidate() {
                    table.remove(&id);
                }
                return;
            }
            (
                online || peer.dialing_remembered || manual,
                peer.mdns_present,
                peer.dial_addrs.clone(),
            )
        };
        if busy {
            // Connected (by us or to us), or another dial is on it: wait for that to change.
            if !until_change(&shared, &mut changed, IDLE_RECHECK).await {
                return;
            }
            continue;
        }
        // Names from lists are dialled a few at a time, so a long (or hostile) list can't open
        // hundreds of sockets at once; mDNS records name peers on our own link.
        let permit = if from_mdns {
            None
        } else {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                p = shared.hinted_dials.clone().acquire_owned() => p.ok(),
            }
        };
        let mut connected = None;
        // Every address asked of the gate (see `dials`); the earliest a held one may go.
        let (mut dialled, mut held_until) = (false, None);
        for addr in addrs {
            match lock(&shared.dial_gate).ask(addr, &id, std::time::Instant::now()) {
                Verdict::Go => dialled = true,
                Verdict::Later(t) => {
                    held_until = Some(held_until.map_or(t, |h: std::time::Instant| h.min(t)));
                    continue;
                }
            }
            let result = dial(&shared, addr, Some(&id), Purpose::Control).await;
            let outcome = Outcome::of(&result, &id, shared.identity.id());
            lock(&shared.dial_gate).outcome(addr, outcome, std::time::Instant::now());
            match result {
                Ok(conn) => {
                    connected = Some(conn);
                    break;
                }
                Err(e @ HandshakeError::IdMismatch { .. }) if from_mdns => {
                    tracing::warn!("{addr}: {e}");
                    shared.emit(Event::Warning {
                        message: format!("{addr}: {e}"),
                    });
                }
                // A list can be stale (or made up): its wrong addresses are no alarm.
                Err(e) => tracing::debug!("dial {addr} for {}: {e}", id.short()),
            }
        }
        drop(permit);
        if !dialled && let Some(until) = held_until {
            // Held back by the gate, not failed: try when it lets us, with no back-off added.
            let wait = until.saturating_duration_since(std::time::Instant::now());
            if !pause(&shared, wait.max(Duration::from_millis(10))).await {
                return;
            }
            continue;
        }
        if let Some(conn) = connected {
            backoff = BACKOFF_MIN;
            // Refused as busy: no sooner than the longest backoff.
            if run_control(shared.clone(), conn).await.is_some() && !pause(&shared, BACKOFF_MAX).await {
                return;
            }
            continue;
        }
        if !pause(&shared, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
