//! `lanyard history`: a conversation streamed to stdout page by page (the node answers at most
//! a page per call), oldest first, so memory stays flat however long the conversation is.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::output;
use crate::config::Config;
use crate::node::api::ChatEntry;
use crate::node::api::{HISTORY_PAGE, Reply, Request};
use crate::node::control::Client;

/// Where a page starts.
enum Cursor {
    First,
    Last,
    Before(String),
    After(String),
}

pub async fn run(
    config: &Config,
    peer: String,
    limit: Option<usize>,
    before: Option<String>,
    after: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let client = Client::open(config.browsing_node()).await?;
    let mut pager = Pager {
        client: &client,
        peer,
        json,
        out: std::io::stdout().lock(),
    };
    let result = match (before, after, limit) {
        (Some(_), Some(_), _) => Err(anyhow::anyhow!("give --before or --after, not both")),
        (None, after, None) => pager.forward(after.map_or(Cursor::First, Cursor::After), usize::MAX, None).await,
        (None, Some(after), Some(n)) => pager.forward(Cursor::After(after), n, None).await,
        (before, None, limit) => pager.last(before, limit.unwrap_or(usize::MAX)).await,
    };
    client.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

struct Pager<'a> {
    client: &'a Client,
    peer: String,
    json: bool,
    out: std::io::StdoutLock<'static>,
}

impl Pager<'_> {
    /// One call: at most `limit` (and a page of) lines from `cursor`, oldest first.
    async fn page(&self, cursor: &Cursor, limit: usize) -> Result<Vec<ChatEntry>> {
        let (before, after) = match cursor {
            Cursor::Before(id) => (Some(id.clone()), None),
            Cursor::After(id) => (None, Some(id.clone())),
            Cursor::First | Cursor::Last => (None, None),
        };
        let request = Request::History {
            peer: self.peer.clone(),
            limit: Some(limit.min(HISTORY_PAGE)),
            before,
            after,
            first: matches!(cursor, Cursor::First),
        };
        let mut lines = Vec::new();
        self.client
            .run(request, |reply| {
                if let Reply::History { entries } = reply {
                    lines.extend(entries);
                }
            })
            .await?;
        Ok(lines)
    }

    /// Print lines; false once stdout is closed (`| head` ends the listing, not with a panic).
    fn print(&mut self, lines: &[ChatEntry]) -> bool {
        lines.iter().all(|e| {
            let line = if self.json { output::json_line(e) } else { output::history_line(e) };
            writeln!(self.out, "{line}").is_ok()
        })
    }

    /// Print up to `n` lines from `cursor` on, page by page, ending after the line `end` if
    /// given.
    async fn forward(&mut self, mut cursor: Cursor, mut n: usize, end: Option<&str>) -> Result<()> {
        while n > 0 {
            let mut lines = self.page(&cursor, n).await?;
            let full = lines.len() == n.min(HISTORY_PAGE);
            let at_end = end.and_then(|end| lines.iter().position(|e| e.id == end));
            if let Some(i) = at_end {
                lines.truncate(i + 1);
            }
            n -= lines.len();
            if !self.print(&lines) {
                return Ok(());
            }
            let Some(last) = lines.last() else { return Ok(()) };
            if at_end.is_some() || !full {
                return Ok(());
            }
            let next = Cursor::After(last.id.clone());
            if matches!((&cursor, &next), (Cursor::After(a), Cursor::After(b)) if a == b) {
                // Two lines share this id (a peer reused another's): paging would go round.
                bail!("two lines of this conversation have id {}; cannot page past it", last.id);
            }
            cursor = next;
        }
        Ok(())
    }

    /// Print the last `n` lines (before the line `before`, if given), oldest first: walk back a
    /// page at a time to where they start, holding one page, then print forward from there.
    async fn last(&mut self, before: Option<String>, n: usize) -> Result<()> {
        let mut cursor = before.map_or(Cursor::Last, Cursor::Before);
        let (mut left, mut end) = (n, None::<String>);
        let start = loop {
            let want = left.min(HISTORY_PAGE);
            if want == 0 {
                return Ok(());
            }
            let page = self.page(&cursor, want).await?;
            if end.is_none() {
                end = page.last().map(|e| e.id.clone());
            }
            left -= page.len();
            match page.first() {
                None => break page,
                Some(_) if left == 0 || page.len() < want => break page,
                Some(first) => cursor = Cursor::Before(first.id.clone()),
            }
        };
        let Some(last) = start.last() else { return Ok(()) };
        if !self.print(&start) || end.as_deref() == Some(last.id.as_str()) {
            return Ok(());
        }
        self.forward(Cursor::After(last.id.clone()), usize::MAX, end.as_deref()).await
    }
}
