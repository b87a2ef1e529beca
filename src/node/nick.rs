//! The nick kept in the data dir. A nick given once (`--nick`, `LANYARD_NICK`, the config file)
//! is stored and stays until changed, so `serve --nick ada` and a later one-shot command on the
//! same data dir show peers one name, not a rename and back.
//!
//! It lives in the database's `settings` table rather than in a file of its own: written in one
//! transaction like everything else the node remembers (no half-written file after a crash, no
//! second atomic-write path to get right), and readable by `lanyard id` while a node runs on the
//! data dir (a WAL reader does not wait for the writer).

use std::path::Path;

use anyhow::Result;

use super::validate_nick;
use crate::net::wire::MAX_NICK_BYTES;
use crate::store::{DB_FILE, Store};

const KEY: &str = "nick";

/// The nick in force: `given` (stored for the next runs), else the stored one, else the default.
pub(crate) fn settle(store: &Store, given: Option<&str>) -> Result<String> {
    let stored = store.setting(KEY)?;
    if let Some(nick) = given {
        validate_nick(nick)?;
        if stored.as_deref() != Some(nick) {
            store.set_setting(KEY, nick)?;
        }
        return Ok(nick.to_string());
    }
    match stored {
        Some(nick) if validate_nick(&nick).is_ok() => Ok(nick),
        Some(bad) => {
            // Only a hand-edited database gets here; a name is not worth refusing to start over.
            tracing::warn!("ignoring the stored nick {}: not a valid nick", crate::text::printable(&bad));
            Ok(default_nick())
        }
        None => Ok(default_nick()),
    }
}

pub(crate) fn keep(store: &Store, nick: &str) -> Result<()> {
    store.set_setting(KEY, nick)
}

/// The nick a node on `data_dir` goes by, with `given` stored as a node start would store it:
/// for a face that shows the nick without starting a node (`lanyard id`).
pub fn nick_in(data_dir: &Path, given: Option<&str>) -> Result<String> {
    if let Some(nick) = given {
        validate_nick(nick)?;
    }
    settle(&Store::open(&data_dir.join(DB_FILE))?, given)
}

/// The user name, else the host name, else "lanyard".
pub fn default_nick() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).ok();
    default_from(user.as_deref(), &super::hostname())
}

fn default_from(user: Option<&str>, host: &str) -> String {
    [user.unwrap_or_default(), host]
        .into_iter()
        .map(usable)
        .find(|n| validate_nick(n).is_ok())
        .unwrap_or_else(|| "lanyard".to_string())
}

/// Without control characters, cut to the wire's bound on a character boundary.
pub(crate) fn usable(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().filter(|c| !crate::text::is_hostile(*c)) {
        if out.len() + c.len_utf8() > MAX_NICK_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_user_then_host_then_lanyard() {
        assert_eq!(default_from(Some("ada"), "lab-3"), "ada");
        assert_eq!(default_from(None, "lab-3"), "lab-3");
        assert_eq!(default_from(Some(" \u{7}"), "lab-3\n"), "lab-3");
        assert_eq!(default_from(Some(""), ""), "lanyard");
        let long = default_from(Some(&"é".repeat(100)), "");
        assert!(long.len() <= MAX_NICK_BYTES && validate_nick(&long).is_ok());
    }

    #[test]
    fn a_given_nick_stays_until_another_is_given() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(settle(&store, None).unwrap(), default_nick());
        assert_eq!(settle(&store, Some("ada")).unwrap(), "ada");
        assert_eq!(settle(&store, None).unwrap(), "ada");
        assert!(settle(&store, Some("")).is_err());
        assert_eq!(settle(&store, None).unwrap(), "ada", "a refused nick is not stored");
        keep(&store, "bob").unwrap();
        assert_eq!(settle(&store, None).unwrap(), "bob");
    }

    #[test]
    fn a_bad_stored_nick_falls_back_to_the_default() {
        let store = Store::open_in_memory().unwrap();
        store.set_setting(KEY, "\u{1b}[31m").unwrap();
        assert_eq!(settle(&store, None).unwrap(), default_nick());
    }
}
