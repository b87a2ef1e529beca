//! Chat's tables (created by the store's second migration): `messages`, every line sent or
//! received, and `deliveries`, one row per recipient of an outgoing line — the outbox and its
//! delivery state in one. Each function is one transaction, so a crash leaves either the old or
//! the new state.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::budget;
use crate::identity::PeerId;

/// The room every online peer receives.
pub const ROOM: &str = "#all";

/// Where one outgoing line stands for one recipient. Ordered: the least advanced recipient
/// decides a room message's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Stored, waiting for a connection to the recipient.
    Queued,
    /// Written to the recipient's connection, not yet acknowledged.
    Sent,
    /// The recipient would not store it (over one of its budgets; the reason is kept). Final:
    /// never resent. A room line with one refusal and the rest delivered shows this.
    Refused,
    /// The recipient stored it and said so.
    Delivered,
}

impl Delivery {
    fn from_sql(s: &str) -> Delivery {
        match s {
            "delivered" => Delivery::Delivered,
            "sent" => Delivery::Sent,
            "refused" => Delivery::Refused,
            _ => Delivery::Queued,
        }
    }
}

/// A message as history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEntry {
    pub id: String,
    /// The peer id of a direct conversation, or `#all`.
    pub conversation: String,
    pub from: PeerId,
    /// The sender's nick when the line was stored.
    pub nick: String,
    pub outgoing: bool,
    pub room: bool,
    /// The sender's clock, Unix milliseconds.
    pub sent_ms: u64,
    /// Our clock when it was stored (the send time, for our own lines).
    pub received_ms: u64,
    pub text: String,
    /// Outgoing only: the least advanced recipient's state.
    pub state: Option<Delivery>,
    /// Outgoing only: every recipient and its state.
    pub recipients: Vec<Recipient>,
}

impl ChatEntry {
    /// How our line stands, for a person: `…` queued, `✓` sent, `✓✓` delivered (a room line:
    /// to everyone; else a count), `✗ refused: why` (the reason neutralised). `None` for a
    /// peer's line.
    pub fn delivery_mark(&self) -> Option<String> {
        let state = self.state?;
        let glyph = match state {
            Delivery::Queued => "…",
            Delivery::Sent => "✓",
            Delivery::Delivered => "✓✓",
            Delivery::Refused => {
                let why = self
                    .recipients
                    .iter()
                    .find_map(|r| r.reason.as_deref())
                    .unwrap_or("no reason given");
                return Some(format!("✗ refused: {}", crate::text::printable(why)));
            }
        };
        let done = self.recipients.iter().filter(|r| r.state == Delivery::Delivered).count();
        Some(if self.recipients.len() > 1 && state != Delivery::Delivered {
            format!("{glyph} {done}/{}", self.recipients.len())
        } else {
            glyph.to_string()
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub peer: PeerId,
    pub state: Delivery,
    /// Why it refused the line (its words: hostile text), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A line to write, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    pub room: bool,
    pub sent_ms: u64,
    pub text: String,
}

/// A line to store.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub conversation: &'a str,
    pub sender: &'a PeerId,
    pub sender_nick: &'a str,
    pub room: bool,
    pub sent_ms: u64,
    pub received_ms: u64,
    pub text: &'a str,
}

/// SQLite integers are signed; a peer's clock value is clamped rather than refused.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One row in `messages`; false when this sender's id is already there.
fn insert_message(c: &Connection, m: &NewMessage, outgoing: bool) -> rusqlite::Result<bool> {
    let changed = c.execute(
        "INSERT OR IGNORE INTO messages (id, conversation, sender, sender_nick, outgoing, room, sent_ms, received_ms, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            m.id,
            m.conversation,
            m.sender.as_str(),
            m.sender_nick,
            outgoing,
            m.room,
            ms(m.sent_ms),
            ms(m.received_ms),
            m.text
        ],
    )?;
    Ok(changed == 1)
}

/// Store our own line with a queued delivery row per recipient, in recipient order.
pub fn insert_outgoing(c: &mut Connection, m: &NewMessage, recipients: &[PeerId]) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    // Our ids are 128 random bits: a clash would be a bug, never a resend.
    if !insert_message(&tx, m, true)? {
        return Err(rusqlite::Error::StatementChangedRows(0));
    }
    let n = tx.last_insert_rowid();
    for peer in recipients {
        tx.execute(
            "INSERT INTO deliveries (message, peer, state) VALUES (?1, ?2, 'queued')",
            params![n, peer.as_str()],
        )?;
    }
    tx.commit()
}

/// Store a peer's line. False when this sender's id is already stored: a resend, not to be
/// shown again (but acknowledged again).
#[cfg(test)]
pub fn insert_incoming(c: &Connection, m: &NewMessage) -> rusqlite::Result<bool> {
    insert_message(c, m, false)
}

/// What became of one of a peer's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stored now.
    Stored,
    /// Stored before (a resend): acknowledged again, not shown again.
    Repeat,
    /// Not stored, for this reason (told to the sender).
    Refused(&'static str),
}

/// Who sends a burst, and what it may store (see [`budget::DbBudget`]).
pub struct Quota<'a> {
    pub me: &'a PeerId,
    pub from: &'a PeerId,
    /// When this node started (Unix seconds): a key first seen since is new.
    pub session_start: u64,
    pub budget: &'a budget::DbBudget,
}

/// Store a burst of `from`'s lines in one transaction, each within its budgets: `rate` spends
/// the sender's allowance for one fresh line of that many bytes (false: too fast). Room lines
/// past the room's budgets push out the oldest received room lines; a direct line past its
/// conversation's budget is refused.
pub fn insert_incoming_within(
    c: &mut Connection,
    lines: &[NewMessage],
    q: &Quota,
    mut rate: impl FnMut(usize) -> bool,
) -> rusqlite::Result<Vec<Verdict>> {
    let tx = c.transaction()?;
    let stranger = is_stranger(&tx, q.me, q.from, q.session_start)?;
    let cap = if stranger { q.budget.stranger_bytes } else { q.budget.direct_bytes };
    let mut direct = usage(&tx, q.from.as_str(), q.from)?;
    let mut strangers = if stranger {
        strangers_usage(&tx, q.me, q.session_start)?
    } else {
        0
    };
    let mut room = false;
    let mut out = Vec::with_capacity(lines.len());
    {
        let mut exists = tx.prepare_cached("SELECT 1 FROM messages WHERE sender = ?1 AND id = ?2")?;
        for m in lines {
            if exists.exists(params![m.sender.as_str(), m.id])? {
                out.push(Verdict::Repeat);
                continue;
            }
            let len = m.text.len() as u64;
            if !m.room && (direct + len > cap || (stranger && strangers + len > q.budget.strangers_bytes)) {
                out.push(Verdict::Refused(budget::NO_ROOM));
                continue;
            }
            if !rate(m.text.len()) {
                out.push(Verdict::Refused(budget::TOO_FAST));
                continue;
            }
            if m.room {
                room = true;
            } else {
                direct += len;
                strangers += len;
            }
            insert_message(&tx, m, false)?;
            out.push(Verdict::Stored);
        }
    }
    if room {
        trim_room(&tx, q, stranger)?;
    }
    tx.commit()?;
    Ok(out)
}

/// Bytes of text `sender` has stored in `conversation`.
fn usage(c: &Connection, conversation: &str, sender: &PeerId) -> rusqlite::Result<u64> {
    let bytes: Option<i64> = c
        .prepare_cached("SELECT bytes FROM chat_usage WHERE conversation = ?1 AND sender = ?2")?
        .query_row([conversation, sender.as_str()], |r| r.get(0))
        .optional()?;
    Ok(bytes.unwrap_or(0).max(0) as u64)
}

/// A key first seen in this run, untrusted, that we never wrote to (or one we have no row for).
fn is_stranger(c: &Connection, me: &PeerId, peer: &PeerId, session_start: u64) -> rusqlite::Result<bool> {
    let row: Option<(bool, Option<i64>)> = c
        .prepare_cached("SELECT trusted, first_seen FROM peers WHERE id = ?1")?
        .query_row([peer.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => true,
        Some((true, _)) | Some((_, None)) => false,
        Some((false, Some(first))) => first >= ms(session_start) && usage(c, peer.as_str(), me)? == 0,
    })
}

/// Bytes every stranger together has stored in direct conversations with us.
fn strangers_usage(c: &Connection, me: &PeerId, session_start: u64) -> rusqlite::Result<u64> {
    let bytes: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(u.bytes), 0) FROM chat_usage u JOIN peers p ON p.id = u.sender
         WHERE u.conversation = u.sender AND p.trusted = 0 AND p.first_seen >= ?1
            AND NOT EXISTS (SELECT 1 FROM chat_usage o WHERE o.conversation = p.id AND o.sender = ?2 AND o.lines > 0)",
        )?
        .query_row(params![ms(session_start), me.as_str()], |r| r.get(0))?;
    Ok(bytes.max(0) as u64)
}

/// Strangers as SQL sees them (see [`is_stranger`]): `?3` is the session start, `?4` our id.
const STRANGERS: &str = "SELECT p.id FROM peers p WHERE p.trusted = 0 AND p.first_seen >= ?3
    AND NOT EXISTS (SELECT 1 FROM chat_usage o WHERE o.conversation = p.id AND o.sender = ?4 AND o.lines > 0)";

/// Keep the room within its budgets: `q.from`'s share first, then strangers' together (a
/// stranger's line only), then everyone's — strangers' lines first, and another sender's only
/// for a line from a peer with standing: an honest line is never trimmed to make room for a
/// stranger's. Trims to 7/8 of a budget, so a steady stream trims in batches rather than line by
/// line.
fn trim_room(c: &Connection, q: &Quota, stranger: bool) -> rusqlite::Result<usize> {
    let mut trimmed = 0;
    let mine = usage(c, ROOM, q.from)?;
    if mine > q.budget.room_bytes_per_peer {
        trimmed += trim_oldest(c, q, Some(q.from), false, mine - q.budget.room_bytes_per_peer / 8 * 7)?;
    }
    let strangers = room_usage(c, q, true)?;
    if stranger && strangers > q.budget.strangers_room_bytes {
        trimmed += trim_oldest(c, q, None, true, strangers - q.budget.strangers_room_bytes / 8 * 7)?;
    }
    let all = room_usage(c, q, false)?;
    if all > q.budget.room_bytes {
        let over = all - q.budget.room_bytes / 8 * 7;
        let freed = trim_oldest(c, q, None, true, over)?;
        trimmed += freed;
        if !stranger {
            let all = room_usage(c, q, false)?;
            if all > q.budget.room_bytes / 8 * 7 {
                trimmed += trim_oldest(c, q, None, false, all - q.budget.room_bytes / 8 * 7)?;
            }
        }
    }
    if trimmed > 0 {
        tracing::debug!("chat: trimmed {trimmed} old lines of {ROOM}");
    }
    Ok(trimmed)
}

/// Bytes of received room lines (of strangers only, or everyone's).
fn room_usage(c: &Connection, q: &Quota, strangers: bool) -> rusqlite::Result<u64> {
    let all: i64 = c
        .prepare_cached(&format!(
            "SELECT COALESCE(SUM(bytes), 0) FROM chat_usage WHERE conversation = ?1 AND sender != ?2
                AND (?5 = 0 OR sender IN ({STRANGERS}))"
        ))?
        .query_row(params![ROOM, q.me.as_str(), ms(q.session_start), q.me.as_str(), strangers], |r| {
            r.get(0)
        })?;
    Ok(all.max(0) as u64)
}

/// Delete the oldest received room lines (of `sender`, of strangers, or anyone's) worth at
/// least `bytes`.
fn trim_oldest(c: &Connection, q: &Quota, sender: Option<&PeerId>, strangers: bool, bytes: u64) -> rusqlite::Result<usize> {
    let sender = sender.map(|s| s.as_str());
    let only = format!("conversation = ?1 AND outgoing = 0 AND (?2 IS NULL OR sender = ?2) AND (?5 = 0 OR sender IN ({STRANGERS}))");
    let args = params![ROOM, sender, ms(q.session_start), q.me.as_str(), strangers];
    let last = {
        let mut select = c.prepare_cached(&format!(
            "SELECT n, length(CAST(text AS BLOB)) FROM messages WHERE {only} ORDER BY n"
        ))?;
        let mut rows = select.query(args)?;
        let (mut freed, mut last) = (0u64, None);
        while freed < bytes
            && let Some(row) = rows.next()?
        {
            last = Some(row.get::<_, i64>(0)?);
            freed += row.get::<_, i64>(1)?.max(0) as u64;
        }
        last
    };
    let Some(last) = last else { return Ok(0) };
    c.prepare_cached(&format!("DELETE FROM messages WHERE {only} AND n <= ?6"))?
        .execute(params![ROOM, sender, ms(q.session_start), q.me.as_str(), strangers, last])
}

/// `mark_delivered` (reason `None`) or `mark_refused` for a burst of answers, in one
/// transaction.
pub fn mark_answered_batch(
    c: &mut Connection,
    me: &PeerId,
    peer: &PeerId,
    answers: &[(String, Option<String>)],
    now_ms: u64,
) -> rusqlite::Result<Vec<Option<Option<u64>>>> {
    let tx = c.transaction()?;
    let marked = answers
        .iter()
        .map(|(id, refused)| answered(&tx, me, peer, id, now_ms, refused.as_deref()))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(marked)
}

/// Up to `limit` queued lines for `peer`, oldest first, now marked sent on connection `conn`.
/// Only lines `me` wrote: after an identity change, older lines could never be acknowledged
/// (acks match by sender) and would use up the window.
pub fn take_batch(c: &mut Connection, me: &PeerId, peer: &PeerId, conn: u64, limit: usize) -> rusqlite::Result<Vec<Outgoing>> {
    let tx = c.transaction()?;
    let mut out = Vec::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT d.seq, m.id, m.room, m.sent_ms, m.text FROM deliveries d JOIN messages m ON m.n = d.message
             WHERE d.peer = ?1 AND d.state = 'queued' AND m.sender = ?3 ORDER BY d.seq LIMIT ?2",
        )?;
        let mut mark = tx.prepare_cached("UPDATE deliveries SET state = 'sent', conn = ?2 WHERE seq = ?1")?;
        let rows = select.query_map(params![peer.as_str(), limit as i64, me.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Outgoing {
                    id: r.get(1)?,
                    room: r.get(2)?,
                    sent_ms: r.get::<_, i64>(3)?.max(0) as u64,
                    text: r.get(4)?,
                },
            ))
        })?;
        for row in rows {
            let (seq, line) = row?;
            mark.execute(params![seq, ms(conn)])?;
            out.push(line);
        }
    }
    tx.commit()?;
    Ok(out)
}

/// Lines sent to `peer` but not acknowledged go back to the queue: those sent on connection
/// `conn`, or with `None` every one. The receiver de-duplicates, so a resend is safe.
/// Returns the ids of the lines requeued, in queue order.
pub fn requeue(c: &Connection, peer: &PeerId, conn: Option<u64>) -> rusqlite::Result<Vec<String>> {
    // -1 never is a connection number: `None` means every connection.
    let conn = conn.map_or(-1, ms);
    let mut select = c.prepare_cached(
        "SELECT m.id FROM deliveries d JOIN messages m ON m.n = d.message
         WHERE d.peer = ?1 AND d.state = 'sent' AND (?2 = -1 OR d.conn = ?2) ORDER BY d.seq",
    )?;
    let ids = select
        .query_map(params![peer.as_str(), conn], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    if !ids.is_empty() {
        c.execute(
            "UPDATE deliveries SET state = 'queued', conn = NULL WHERE peer = ?1 AND state = 'sent' AND (?2 = -1 OR conn = ?2)",
            params![peer.as_str(), conn],
        )?;
    }
    Ok(ids)
}

/// At start: no connection survives a restart, so nothing is in flight.
pub fn requeue_all(c: &Connection) -> rusqlite::Result<usize> {
    c.execute("UPDATE deliveries SET state = 'queued', conn = NULL WHERE state = 'sent'", [])
}

/// `peer` acknowledged our (`me`'s) line `id`. When that is news, returns the connection it was
/// last sent on (`Some(None)` if it was still queued); `None` for a repeated or unknown ack.
#[cfg(test)]
pub fn mark_delivered(c: &Connection, me: &PeerId, peer: &PeerId, id: &str, now_ms: u64) -> rusqlite::Result<Option<Option<u64>>> {
    answered(c, me, peer, id, now_ms, None)
}

/// `peer` refused our line `id` for `reason`; returns as `mark_delivered` does.
#[cfg(test)]
pub fn mark_refused(
    c: &Connection,
    me: &PeerId,
    peer: &PeerId,
    id: &str,
    reason: &str,
    now_ms: u64,
) -> rusqlite::Result<Option<Option<u64>>> {
    answered(c, me, peer, id, now_ms, Some(reason))
}

/// The recipient's answer (an ack, or a refusal with its reason) settles the line for it.
fn answered(
    c: &Connection,
    me: &PeerId,
    peer: &PeerId,
    id: &str,
    now_ms: u64,
    refused: Option<&str>,
) -> rusqlite::Result<Option<Option<u64>>> {
    let row: Option<(i64, String, Option<i64>)> = c
        .query_row(
            "SELECT d.seq, d.state, d.conn FROM deliveries d JOIN messages m ON m.n = d.message
             WHERE m.sender = ?3 AND m.id = ?1 AND m.outgoing = 1 AND d.peer = ?2",
            params![id, peer.as_str(), me.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, state, conn)) = row else { return Ok(None) };
    if matches!(Delivery::from_sql(&state), Delivery::Delivered | Delivery::Refused) {
        return Ok(None);
    }
    c.execute(
        "UPDATE deliveries SET state = ?3, conn = NULL, delivered_ms = ?2, reason = ?4 WHERE seq = ?1",
        params![seq, ms(now_ms), if refused.is_some() { "refused" } else { "delivered" }, refused],
    )?;
    Ok(Some(conn.map(|c| c as u64)))
}

/// Our (`me`'s) line `id`: every recipient's state, or `None` if there is no such outgoing line.
pub fn recipients(c: &Connection, me: &PeerId, id: &str) -> rusqlite::Result<Option<Vec<Recipient>>> {
    // By (sender, id): the unique index answers it without a scan.
    let n: Option<i64> = c
        .query_row(
            "SELECT n FROM messages WHERE sender = ?1 AND id = ?2 AND outgoing = 1",
            [me.as_str(), id],
            |r| r.get(0),
        )
        .optional()?;
    match n {
        None => Ok(None),
        Some(n) => recipients_of(c, n).map(Some),
    }
}

fn recipients_of(c: &Connection, n: i64) -> rusqlite::Result<Vec<Recipient>> {
    let mut stmt = c.prepare_cached("SELECT peer, state, reason FROM deliveries WHERE message = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([n], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (peer, state, reason) = row?;
        if let Some(peer) = PeerId::parse(&peer) {
            out.push(Recipient {
                peer,
                state: Delivery::from_sql(&state),
                reason,
            });
        }
    }
    Ok(out)
}

/// The least advanced recipient's state: a room line is delivered once everyone has it.
pub fn overall(recipients: &[Recipient]) -> Option<Delivery> {
    recipients.iter().map(|r| r.state).min()
}

/// Which part of a conversation to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page<'a> {
    /// The newest lines.
    Last,
    /// The oldest lines (reading from the start).
    First,
    /// The lines just before this message id (scrolling back).
    Before(&'a str),
    /// The lines just after this message id (catching up).
    After(&'a str),
}

const ENTRY_COLUMNS: &str = "n, id, conversation, sender, sender_nick, outgoing, room, sent_ms, received_ms, text";

/// The last `limit` lines of a conversation, oldest first.
#[cfg(test)]
pub fn history(c: &Connection, conversation: &str, limit: usize) -> rusqlite::Result<Vec<ChatEntry>> {
    Ok(history_page(c, conversation, Page::Last, limit)?.unwrap_or_default())
}

/// Up to `limit` lines of a conversation around a cursor, oldest first. `None` when the cursor
/// is not a line of this conversation.
pub fn history_page(c: &Connection, conversation: &str, page: Page, limit: usize) -> rusqlite::Result<Option<Vec<ChatEntry>>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let cursor = match page {
        Page::Last | Page::First => None,
        Page::Before(id) | Page::After(id) => {
            // Ids are unique per sender only: in the room a peer can reuse another's. Before
            // takes its first line and After its last, so paging on always moves on (it may skip
            // what lies between the two, never go round).
            let sql = if matches!(page, Page::After(_)) {
                "SELECT MAX(n) FROM messages WHERE id = ?1 AND conversation = ?2"
            } else {
                "SELECT MIN(n) FROM messages WHERE id = ?1 AND conversation = ?2"
            };
            let n: Option<i64> = c.query_row(sql, params![id, conversation], |r| r.get(0))?;
            match n {
                Some(n) => Some(n),
                None => return Ok(None),
            }
        }
    };
    let (sql, arg) = match page {
        Page::Last => (
            format!("SELECT {ENTRY_COLUMNS} FROM messages WHERE conversation = ?1 AND n < ?3 ORDER BY n DESC LIMIT ?2"),
            i64::MAX,
        ),
        Page::Before(_) => (
            format!("SELECT {ENTRY_COLUMNS} FROM messages WHERE conversation = ?1 AND n < ?3 ORDER BY n DESC LIMIT ?2"),
            cursor.unwrap_or(0),
        ),
        Page::After(_) | Page::First => (
            format!("SELECT {ENTRY_COLUMNS} FROM messages WHERE conversation = ?1 AND n > ?3 ORDER BY n ASC LIMIT ?2"),
            cursor.unwrap_or(0),
        ),
    };
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![conversation, limit, arg], entry_row)?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(e) = with_recipients(c, row?)? {
            out.push(e);
        }
    }
    if !matches!(page, Page::After(_) | Page::First) {
        out.reverse();
    }
    Ok(Some(out))
}

/// The newest line of every conversation.
pub fn last_lines(c: &Connection) -> rusqlite::Result<Vec<ChatEntry>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM messages WHERE n IN (SELECT MAX(n) FROM messages GROUP BY conversation) ORDER BY n"
    ))?;
    let rows = stmt.query_map([], entry_row)?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(e) = with_recipients(c, row?)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Received lines after each conversation's read mark.
pub fn unread_counts(c: &Connection) -> rusqlite::Result<Vec<(String, u32)>> {
    let mut stmt = c.prepare_cached(
        "SELECT m.conversation, COUNT(*) FROM messages m LEFT JOIN read_marks r ON r.conversation = m.conversation
         WHERE m.outgoing = 0 AND m.n > COALESCE(r.n, 0) GROUP BY m.conversation",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    rows.map(|r| r.map(|(conv, n)| (conv, u32::try_from(n).unwrap_or(u32::MAX))))
        .collect()
}

/// Everything in `conversation` so far counts as read.
pub fn mark_read(c: &Connection, conversation: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO read_marks (conversation, n) SELECT ?1, COALESCE(MAX(n), 0) FROM messages WHERE conversation = ?1
         ON CONFLICT(conversation) DO UPDATE SET n = excluded.n",
        [conversation],
    )?;
    Ok(())
}

type EntryRow = (i64, String, String, String, String, bool, bool, i64, i64, String);

fn entry_row(r: &rusqlite::Row) -> rusqlite::Result<EntryRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn with_recipients(c: &Connection, row: EntryRow) -> rusqlite::Result<Option<ChatEntry>> {
    let (n, id, conversation, sender, nick, outgoing, room, sent_ms, received_ms, text) = row;
    // A row we can't parse was not written by us; skip it rather than fail.
    let Some(from) = PeerId::parse(&sender) else { return Ok(None) };
    let recipients = if outgoing { recipients_of(c, n)? } else { Vec::new() };
    Ok(Some(ChatEntry {
        id,
        conversation,
        from,
        nick,
        outgoing,
        room,
        sent_ms: sent_ms.max(0) as u64,
        received_ms: received_ms.max(0) as u64,
        text,
        state: if outgoing { overall(&recipients) } else { None },
        recipients,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::store::Store;

    fn id() -> PeerId {
        Identity::generate().unwrap().id().clone()
    }

    fn line<'a>(id: &'a str, conversation: &'a str, sender: &'a PeerId, text: &'a str) -> NewMessage<'a> {
        NewMessage {
            id,
            conversation,
            sender,
            sender_nick: "me",
            room: false,
            sent_ms: 1,
            received_ms: 1,
            text,
        }
    }

    #[test]
    fn outbox_goes_queued_sent_delivered_in_order() {
        let store = Store::open_in_memory().unwrap();
        let (me, bob) = (id(), id());
        let mut c = store.lock();
        for (i, text) in ["one", "two", "three"].iter().enumerate() {
            let mid = format!("{i:032x}");
            insert_outgoing(&mut c, &line(&mid, bob.as_str(), &me, text), std::slice::from_ref(&bob)).unwrap();
        }
        let batch = take_batch(&mut c, &me, &bob, 7, 2).unwrap();
        assert_eq!(batch.iter().map(|o| o.text.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(overall(&recipients(&c, &me, &batch[0].id).unwrap().unwrap()), Some(Delivery::Sent));
        assert_eq!(mark_delivered(&c, &me, &bob, &batch[0].id, 5).unwrap(), Some(Some(7)));
        assert_eq!(
            mark_delivered(&c, &me, &bob, &batch[0].id, 5).unwrap(),
            None,
            "a repeated ack is no news"
        );
        assert_eq!(
            mark_delivered(&c, &me, &me, &batch[1].id, 5).unwrap(),
            None,
            "only the recipient acks"
        );
        // The connection drops: "two" goes back, ahead of "three".
        assert!(requeue(&c, &bob, Some(8)).unwrap().is_empty(), "another connection's lines stay");
        assert_eq!(requeue(&c, &bob, Some(7)).unwrap().len(), 1);
        let again = take_batch(&mut c, &me, &bob, 9, 10).unwrap();
        assert_eq!(again.iter().map(|o| o.text.as_str()).collect::<Vec<_>>(), ["two", "three"]);
        assert_eq!(requeue_all(&c).unwrap(), 2);
        let h = history(&c, bob.as_str(), 10).unwrap();
        assert_eq!(
            h.iter().map(|e| e.state).collect::<Vec<_>>(),
            [Some(Delivery::Delivered), Some(Delivery::Queued), Some(Delivery::Queued)]
        );
        assert_eq!(history(&c, bob.as_str(), 1).unwrap()[0].text, "three", "the limit keeps the newest");
    }

    #[test]
    fn incoming_is_deduplicated_per_sender() {
        let store = Store::open_in_memory().unwrap();
        let (ada, eve) = (id(), id());
        let c = store.lock();
        let mid = "ab".repeat(16);
        assert!(insert_incoming(&c, &line(&mid, ada.as_str(), &ada, "hi")).unwrap());
        assert!(!insert_incoming(&c, &line(&mid, ada.as_str(), &ada, "changed")).unwrap());
        // Another sender reusing the id can't suppress or overwrite ada's line.
        assert!(insert_incoming(&c, &line(&mid, eve.as_str(), &eve, "spoof")).unwrap());
        let h = history(&c, ada.as_str(), 10).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].text, "hi");
        assert_eq!(h[0].state, None);
        // An incoming line is never mistaken for one of ours.
        assert_eq!(mark_delivered(&c, &ada, &ada, &mid, 1).unwrap(), None);
        assert_eq!(recipients(&c, &ada, &mid).unwrap(), None);
    }

    #[test]
    fn budgets_refuse_direct_lines_and_trim_the_room_oldest_first() {
        let store = Store::open_in_memory().unwrap();
        let (me, eve, carol) = (id(), id(), id());
        let mut c = store.lock();
        for (p, first) in [(&eve, 1000), (&carol, 1000)] {
            c.execute(
                "INSERT INTO peers (id, public_key, nick, first_seen, connections) VALUES (?1, x'00', 'n', ?2, 1)",
                params![p.as_str(), first],
            )
            .unwrap();
        }
        let budget = budget::DbBudget {
            stranger_bytes: 10,
            strangers_bytes: 12,
            room_bytes: 150,
            room_bytes_per_peer: 80,
            ..budget::DbBudget::default()
        };
        let quota = |from| Quota {
            me: &me,
            from,
            session_start: 500,
            budget: &budget,
        };
        let ids: Vec<String> = (0..20).map(|i| format!("{i:032x}")).collect();
        let direct = [
            line(&ids[0], eve.as_str(), &eve, "12345"),
            line(&ids[1], eve.as_str(), &eve, "123456"),
        ];
        let v = insert_incoming_within(&mut c, &direct, &quota(&eve), |_| true).unwrap();
        assert_eq!(v, [Verdict::Stored, Verdict::Refused(budget::NO_ROOM)], "a stranger's budget");
        let again = insert_incoming_within(&mut c, &direct[..1], &quota(&eve), |_| false).unwrap();
        assert_eq!(again, [Verdict::Repeat], "a resend is acknowledged whatever the rate");
        let carols = [line(&ids[2], carol.as_str(), &carol, "1234567890")];
        let v = insert_incoming_within(&mut c, &carols, &quota(&carol), |_| true).unwrap();
        assert_eq!(v, [Verdict::Refused(budget::NO_ROOM)], "all strangers together");
        let v = insert_incoming_within(&mut c, &carols, &quota(&carol), |_| false).unwrap();
        assert_eq!(v, [Verdict::Refused(budget::NO_ROOM)]);

        let text = "r".repeat(20);
        let mut room: Vec<NewMessage> = (3..13).map(|i| line(&ids[i], ROOM, &eve, &text)).collect();
        room.iter_mut().for_each(|m| m.room = true);
        let v = insert_incoming_within(&mut c, &room, &quota(&eve), |_| true).unwrap();
        assert!(v.iter().all(|v| *v == Verdict::Stored));
        let kept: Vec<String> = history(&c, ROOM, 100).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(kept, ids[10..13], "eve's share of the room, newest kept, trimmed to 7/8");
        let mut fast = line(&ids[13], ROOM, &eve, "x");
        fast.room = true;
        let v = insert_incoming_within(&mut c, &[fast], &quota(&eve), |_| false).unwrap();
        assert_eq!(v, [Verdict::Refused(budget::TOO_FAST)]);
    }

    #[test]
    fn a_reused_id_in_the_room_never_sends_paging_round() {
        let store = Store::open_in_memory().unwrap();
        let (ada, eve) = (id(), id());
        let c = store.lock();
        let dup = "ab".repeat(16);
        let ids: Vec<String> = (0..4).map(|i| format!("{i:032x}")).collect();
        for (mid, from) in [(&ids[0], &ada), (&dup, &ada), (&ids[1], &ada), (&dup, &eve), (&ids[2], &ada)] {
            let mut m = line(mid, ROOM, from, mid);
            m.room = true;
            assert!(insert_incoming(&c, &m).unwrap());
        }
        let after = history_page(&c, ROOM, Page::After(&dup), 10).unwrap().unwrap();
        assert_eq!(after.iter().map(|e| &e.id).collect::<Vec<_>>(), [&ids[2]]);
        let before = history_page(&c, ROOM, Page::Before(&dup), 10).unwrap().unwrap();
        assert_eq!(before.iter().map(|e| &e.id).collect::<Vec<_>>(), [&ids[0]]);
    }

    #[test]
    fn unknown_cursor_is_none_and_refusal_is_final() {
        let store = Store::open_in_memory().unwrap();
        let (me, bob) = (id(), id());
        let mut c = store.lock();
        assert_eq!(history_page(&c, bob.as_str(), Page::Before("nope"), 10).unwrap(), None);
        let mid = "ef".repeat(16);
        insert_outgoing(&mut c, &line(&mid, bob.as_str(), &me, "hi"), std::slice::from_ref(&bob)).unwrap();
        take_batch(&mut c, &me, &bob, 1, 10).unwrap();
        assert_eq!(mark_refused(&c, &me, &bob, &mid, "full", 1).unwrap(), Some(Some(1)));
        assert_eq!(mark_delivered(&c, &me, &bob, &mid, 1).unwrap(), None, "a refusal is final");
        assert!(requeue(&c, &bob, None).unwrap().is_empty(), "and never resent");
        let e = &history(&c, bob.as_str(), 1).unwrap()[0];
        assert_eq!(e.state, Some(Delivery::Refused));
        assert_eq!(e.delivery_mark().unwrap(), "✗ refused: full");
        assert_eq!(history_page(&c, bob.as_str(), Page::First, 10).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn room_line_is_delivered_when_everyone_has_it() {
        let store = Store::open_in_memory().unwrap();
        let (me, a, b) = (id(), id(), id());
        let mut c = store.lock();
        let mid = "cd".repeat(16);
        let mut m = line(&mid, ROOM, &me, "all");
        m.room = true;
        insert_outgoing(&mut c, &m, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(mark_delivered(&c, &me, &a, &mid, 1).unwrap(), Some(None));
        assert_eq!(overall(&recipients(&c, &me, &mid).unwrap().unwrap()), Some(Delivery::Queued));
        mark_delivered(&c, &me, &b, &mid, 1).unwrap();
        assert_eq!(overall(&recipients(&c, &me, &mid).unwrap().unwrap()), Some(Delivery::Delivered));
        assert!(history(&c, ROOM, 10).unwrap()[0].room);
    }
}
