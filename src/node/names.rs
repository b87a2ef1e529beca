//! Names people type and see. Nicks are chosen by their owners, so any peer can pick any nick —
//! another peer's nick, or something shaped like another peer's short id. Ids are hashes of
//! keys and can't be chosen. So the two live in separate spaces:
//!
//! - resolving a PEER: an id prefix of [`MIN_ID_PREFIX`] characters or more is looked up among
//!   ids only and wins over any nick; a shorter one that also matches a nick, or a nick several
//!   peers share, is refused as ambiguous, listing each with what tells it apart;
//!   `NICK@HOST` and `NICK#IDPREFIX` name one of several namesakes. A nick shaped like an id
//!   ([`looks_like_id`]) is reached only that way, never bare: typed bare it stays an id, and
//!   waits for that id's peer to be found rather than reaching whoever chose the name first;
//! - showing a peer: a nick that could be taken for an id, a disambiguated form, or another
//!   listed peer's nick is shown with its host (`nick@host`) or, when the host doesn't tell it
//!   apart, its short id (`nick#3fa2c1d0`) — the same forms resolving accepts;
//! - a nick that mixes scripts (`аda`, Cyrillic а) or is written in one that passes for Latin
//!   (`сое`, all Cyrillic) is shown with them marked ([`script_mark`]): `аda [Cyrillic+Latin]`,
//!   so a look-alike of another peer's nick is told apart at a glance. Typed back with the
//!   mark, it still names that peer.
//!
//! Pure functions over lists, so the rules are unit-tested without a node.

use crate::identity::PeerId;
use crate::limits::{MIN_ID_PREFIX, MIN_SHORT_ID_PREFIX};
use crate::text::printable;

use super::peers::{FindError, PeerInfo};

/// What names one peer.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub id: &'a PeerId,
    pub nick: &'a str,
    pub host: &'a str,
    /// A key that hashes to `id` answered: the id is the peer's own. An id only claimed (an mDNS
    /// record, another peer's list) costs nothing to make up, so it never wins over a nick.
    pub proven: bool,
}

impl<'a> Named<'a> {
    pub fn of(p: &'a PeerInfo) -> Named<'a> {
        Named {
            id: &p.id,
            nick: &p.nick,
            host: &p.host,
            proven: !p.fingerprint.is_empty(),
        }
    }
}

/// Could be (a prefix of) an id: base32, lowercase or not, long enough to be looked up.
fn id_prefix_shaped(s: &str) -> bool {
    (MIN_SHORT_ID_PREFIX..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
}

/// Looks like an id to a reader: the length of a short id or a whole one, letters and digits
/// with at least one digit (`ab3k7xq2`, `3fa2c1d0`). Nicks of letters only are common words and
/// names, and `student42` is no id's length; those are flagged only when they really match a
/// listed id (see [`label`]). So about one short id in five (letters only) is not id-like here:
/// a peer calling itself that is reached bare until the id's owner is known to this node — from
/// then on the id wins.
pub fn looks_like_id(nick: &str) -> bool {
    [MIN_ID_PREFIX, 16].contains(&nick.len()) && nick.bytes().all(|b| b.is_ascii_alphanumeric()) && nick.bytes().any(|b| b.is_ascii_digit())
}

/// The scripts a nick mixes (`Cyrillic+Latin`), or the one script it is written in when that
/// could pass for Latin (its confusable skeleton is plain ASCII: `Cyrillic` for `сое`); `None`
/// for a nick that looks like what it is (ASCII, `zoë`, `小明`, `さくら`, `Ελένη`). Mixing is
/// judged as Unicode's security mechanisms do (UTS #39: Han with kana is one writing system),
/// the names are the scripts', alphabetical.
pub fn script_mark(nick: &str) -> Option<String> {
    use unicode_script::{Script, UnicodeScript};
    use unicode_security::MixedScript;
    if nick.is_ascii() {
        return None;
    }
    let mut scripts: Vec<&'static str> = Vec::new();
    for c in nick.chars() {
        let script = c.script();
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        if !scripts.contains(&script.full_name()) {
            scripts.push(script.full_name());
        }
    }
    scripts.sort_unstable();
    let mixed = !nick.is_single_script();
    let passes_for_latin = || {
        scripts != ["Latin"] && {
            let skeleton: String = unicode_security::skeleton(nick).collect();
            skeleton.is_ascii()
        }
    };
    (mixed || (scripts.len() == 1 && passes_for_latin())).then(|| scripts.join("+"))
}

/// A nick as shown: with its scripts marked when [`script_mark`] has something to say.
pub fn shown(nick: &str) -> String {
    match script_mark(nick) {
        Some(mark) => format!("{nick} [{mark}]"),
        None => nick.to_string(),
    }
}

/// What was typed, without the script mark a label shows (`аda [Cyrillic+Latin]` → `аda`), when
/// the mark is the one its nick gets.
fn without_mark(spec: &str) -> &str {
    let Some((head, mark)) = spec.strip_suffix(']').and_then(|s| s.rsplit_once(" [")) else {
        return spec;
    };
    let nick = head.rfind(['@', '#']).map_or(head, |i| &head[..i]);
    if [nick, head].iter().any(|n| script_mark(n).as_deref() == Some(mark)) {
        head
    } else {
        spec
    }
}

/// Find the one peer `spec` names among `peers` (the listed ones; an exact id of any peer is
/// the caller's to check first).
pub fn resolve(spec: &str, peers: &[Named]) -> Result<PeerId, FindError> {
    let spec = without_mark(spec);
    // A whole id means that key and nothing else: a peer named like it does not stand in for
    // it while the real one is unknown (yet).
    if let Some(id) = PeerId::parse(spec) {
        return match peers.iter().any(|p| p.id == &id) {
            true => Ok(id),
            false => Err(FindError::Unknown(format!("no peer with id {id} is known (yet)"))),
        };
    }
    let lower = spec.to_ascii_lowercase();
    let by_id: Vec<&Named> = if id_prefix_shaped(spec) {
        peers.iter().filter(|p| p.id.as_str().starts_with(&lower)).collect()
    } else {
        Vec::new()
    };
    let proven: Vec<&Named> = by_id.iter().copied().filter(|p| p.proven).collect();
    let mut found: Vec<&Named> = if spec.len() >= MIN_ID_PREFIX && !proven.is_empty() {
        proven
    } else {
        let by_nick = peers.iter().filter(|p| {
            let bare = p.nick.eq_ignore_ascii_case(spec) && !looks_like_id(p.nick);
            !p.nick.is_empty() && (bare || names_one_of_namesakes(spec, p))
        });
        by_id.into_iter().chain(by_nick).collect()
    };
    found.sort_by(|a, b| a.id.cmp(b.id));
    found.dedup_by(|a, b| a.id == b.id);
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(FindError::Unknown(match peers.iter().find(|p| p.nick.eq_ignore_ascii_case(spec)) {
            // An id-like nick: the peer whose id it is may just not be known yet.
            Some(p) => format!(
                "no peer has an id starting with {:?}; a peer calls itself that: type {:?} if you mean it",
                printable(spec),
                printable(&label(*p, &[])),
            ),
            None => format!("no peer called {:?} (try `lanyard peers`, or give HOST:PORT)", printable(spec)),
        })),
        many => Err(FindError::Ambiguous(ambiguous(spec, many))),
    }
}

/// `NICK@HOST` or `NICK#IDPREFIX` naming `p`.
fn names_one_of_namesakes(spec: &str, p: &Named) -> bool {
    let at = spec
        .rsplit_once('@')
        .is_some_and(|(nick, host)| !host.is_empty() && p.nick.eq_ignore_ascii_case(nick) && p.host.eq_ignore_ascii_case(host));
    let hash = spec.rsplit_once('#').is_some_and(|(nick, id)| {
        !id.is_empty() && p.nick.eq_ignore_ascii_case(nick) && p.id.as_str().starts_with(&id.to_ascii_lowercase())
    });
    at || hash
}

fn ambiguous(spec: &str, many: &[&Named]) -> String {
    let each: Vec<String> = many
        .iter()
        .map(|p| match p.host {
            "" => format!("{} ({})", printable(&shown(p.nick)), p.id.short()),
            host => format!("{} ({}, {})", printable(&shown(p.nick)), printable(host), p.id.short()),
        })
        .collect();
    format!(
        "{:?} matches {} peers: {}; use the id (or NICK@HOST)",
        printable(spec),
        many.len(),
        each.join(" and ")
    )
}

/// How to show `p` among `all` (the peers listed with it): its nick, or with a disambiguator
/// when the nick alone could mislead, and its scripts marked when they could (see
/// [`script_mark`]).
pub fn label(p: Named, all: &[Named]) -> String {
    let base = bare_label(p, all);
    match script_mark(p.nick) {
        Some(mark) => format!("{base} [{mark}]"),
        None => base,
    }
}

fn bare_label(p: Named, all: &[Named]) -> String {
    let namesakes: Vec<&Named> = all.iter().filter(|q| q.nick.eq_ignore_ascii_case(p.nick)).collect();
    let lower = p.nick.to_ascii_lowercase();
    let is_someones_id = id_prefix_shaped(p.nick) && all.iter().any(|q| q.id != p.id && q.id.as_str().starts_with(&lower));
    let clear = namesakes.iter().all(|q| q.id == p.id)
        && !looks_like_id(p.nick)
        && PeerId::parse(p.nick).is_none()
        && !is_someones_id
        && !p.nick.contains(['@', '#']);
    if clear {
        return p.nick.to_string();
    }
    let host_tells = !p.host.is_empty() && namesakes.iter().all(|q| q.id == p.id || !q.host.eq_ignore_ascii_case(p.host));
    if host_tells {
        format!("{}@{}", p.nick, p.host)
    } else {
        format!("{}#{}", p.nick, p.id.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn ids(n: usize) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = (0..n).map(|_| Identity::generate().unwrap().id().clone()).collect();
        v.sort();
        v
    }

    fn named<'a>(id: &'a PeerId, nick: &'a str, host: &'a str) -> Named<'a> {
        Named {
            id,
            nick,
            host,
            proven: true,
        }
    }

    #[test]
    fn an_id_only_claimed_never_wins_over_a_nick() {
        let v = ids(1);
        // An mDNS record or another peer's list names an id made up to start with a nick.
        let made_up = PeerId::parse("margaretabcdefgh").unwrap();
        let unproven = Named {
            id: &made_up,
            nick: "",
            host: "",
            proven: false,
        };
        let peers = [named(&v[0], "margaret", "lab-1"), unproven];
        assert!(matches!(resolve("margaret", &peers), Err(FindError::Ambiguous(_))));
        // Alone, it is reachable by its id until a key proves or disproves it.
        assert_eq!(resolve("margaret", &peers[1..]).unwrap(), made_up);
        // An empty PEER names nobody, however many peers have no nick yet.
        assert!(matches!(resolve("", &peers[1..]), Err(FindError::Unknown(_))));
    }

    #[test]
    fn a_nick_shaped_like_an_id_never_wins_over_the_id() {
        let v = ids(2);
        let (victim, impostor) = (&v[0], &v[1]);
        let short = victim.short().to_string();
        let peers = [named(victim, "ada", "lab-1"), named(impostor, &short, "lab-2")];
        assert_eq!(resolve(&short, &peers).unwrap(), *victim);
        assert_eq!(resolve(&short.to_uppercase(), &peers).unwrap(), *victim);
        assert_eq!(resolve(victim.as_str(), &peers).unwrap(), *victim);
        // The impostor is still reachable, by its own id or the disambiguated forms.
        assert_eq!(resolve(impostor.short(), &peers).unwrap(), *impostor);
        assert_eq!(resolve(&format!("{short}@lab-2"), &peers).unwrap(), *impostor);
        assert_eq!(resolve(&format!("{short}#{}", &impostor.as_str()[..4]), &peers).unwrap(), *impostor);
        // Before its peer is known, neither a short id (with a digit: see `looks_like_id`) nor
        // a whole one reaches the impostor.
        let unknown = PeerId::parse("ab3k7xq2mnopqrst").unwrap();
        let err = resolve(unknown.short(), &[named(impostor, unknown.short(), "lab-2")]).unwrap_err();
        assert!(matches!(err, FindError::Unknown(_)), "{err}");
        assert!(err.to_string().contains("ab3k7xq2@lab-2"), "{err}");
        // A whole id is that key or nothing, even before its peer is known.
        let whole = victim.as_str().to_string();
        let peers_without_victim = [named(impostor, &whole, "lab-2")];
        assert!(matches!(resolve(&whole, &peers_without_victim), Err(FindError::Unknown(_))));
        assert_eq!(label(peers_without_victim[0], &peers_without_victim), format!("{whole}@lab-2"));
        // Nor does a longer id-shaped nick.
        let longer = victim.as_str()[..12].to_string();
        let peers = [named(victim, "ada", "lab-1"), named(impostor, &longer, "lab-2")];
        assert_eq!(resolve(&longer, &peers).unwrap(), *victim);
    }

    #[test]
    fn a_short_prefix_that_is_also_a_nick_is_ambiguous() {
        let v = ids(2);
        let four = v[0].as_str()[..4].to_string();
        let peers = [named(&v[0], "ada", "h1"), named(&v[1], &four, "h2")];
        let err = resolve(&four, &peers).unwrap_err();
        assert!(matches!(err, FindError::Ambiguous(_)), "{err}");
        // Alone, a short prefix still works.
        assert_eq!(resolve(&four, &peers[..1]).unwrap(), v[0]);
        // A short prefix that is a peer's own nick is that peer.
        let peers = [named(&v[0], &four, "h1"), named(&v[1], "bob", "h2")];
        assert_eq!(resolve(&four, &peers).unwrap(), v[0]);
    }

    #[test]
    fn namesakes_are_ambiguous_and_listed_and_the_disambiguated_forms_work() {
        let v = ids(3);
        let peers = [
            named(&v[0], "bob", "lab-07"),
            named(&v[1], "Bob", "lab-12"),
            named(&v[2], "ada", "lab-07"),
        ];
        let FindError::Ambiguous(msg) = resolve("bob", &peers).unwrap_err() else {
            panic!("not ambiguous")
        };
        assert!(msg.contains("matches 2 peers"), "{msg}");
        for (p, host) in [(&v[0], "lab-07"), (&v[1], "lab-12")] {
            assert!(msg.contains(host) && msg.contains(p.short()), "{msg}");
        }
        assert_eq!(resolve("bob@lab-07", &peers).unwrap(), v[0]);
        assert_eq!(resolve("BOB@LAB-12", &peers).unwrap(), v[1]);
        assert_eq!(resolve(&format!("bob#{}", v[1].short()), &peers).unwrap(), v[1]);
        assert_eq!(resolve(v[1].short(), &peers).unwrap(), v[1]);
        assert_eq!(resolve("ada", &peers).unwrap(), v[2]);
        assert!(matches!(resolve("bob@lab-99", &peers), Err(FindError::Unknown(_))));
    }

    #[test]
    fn a_nick_shaped_like_a_disambiguated_form_makes_it_ambiguous_not_taken() {
        let v = ids(2);
        let peers = [named(&v[0], "bob", "lab-07"), named(&v[1], "bob@lab-07", "evil")];
        assert!(matches!(resolve("bob@lab-07", &peers), Err(FindError::Ambiguous(_))));
        assert_eq!(resolve("bob", &peers).unwrap(), v[0]);
    }

    #[test]
    fn the_ambiguity_message_is_inert() {
        let v = ids(2);
        let peers = [named(&v[0], "x\u{1b}[2J", "h\u{202e}1"), named(&v[1], "X\u{1b}[2J", "")];
        let msg = resolve("x\u{1b}[2J", &peers).unwrap_err().to_string();
        assert!(crate::text::is_clean(&msg), "{msg:?}");
    }

    #[test]
    fn labels_disambiguate_namesakes_and_id_shaped_nicks_only() {
        let v = ids(5);
        let victim_short = v[0].short().to_string();
        let peers = [
            named(&v[0], "ada", "lab-1"),
            named(&v[1], &victim_short, "lab-2"),
            named(&v[2], "bob", "lab-3"),
            named(&v[3], "BOB", "lab-3"),
            named(&v[4], "margaret", ""),
        ];
        let got: Vec<String> = peers.iter().map(|p| label(*p, &peers)).collect();
        assert_eq!(got[0], "ada");
        assert_eq!(got[1], format!("{victim_short}@lab-2"));
        assert_eq!(got[2], format!("bob#{}", v[2].short()), "same host: the id tells them apart");
        assert_eq!(got[3], format!("BOB#{}", v[3].short()));
        assert_eq!(got[4], "margaret", "a word is not an id");
        // Every label resolves to its own peer.
        for (p, l) in peers.iter().zip(&got) {
            assert_eq!(&resolve(l, &peers).unwrap(), p.id, "{l}");
        }
    }

    #[test]
    fn id_like_and_form_like_nicks_are_marked_even_alone() {
        let v = ids(1);
        for nick in ["3fa2c1d0", "ab3k7xq2", "bob@lab-07", "bob#1234"] {
            assert_eq!(label(named(&v[0], nick, "h"), &[]), format!("{nick}@h"), "{nick}");
        }
        assert_eq!(label(named(&v[0], "3fa2c1d0", ""), &[]), format!("3fa2c1d0#{}", v[0].short()));
        for nick in ["bob", "r2d2", "margaret", "zoë 🎉", "lab-07", "student42", "abcdefghijklmnopq"] {
            assert_eq!(label(named(&v[0], nick, "h"), &[]), nick);
        }
    }

    #[test]
    fn look_alike_nicks_are_shown_with_their_scripts() {
        // "аda": a Cyrillic а, then Latin.
        let fake = "\u{430}da";
        assert_eq!(script_mark(fake).as_deref(), Some("Cyrillic+Latin"));
        // All Cyrillic, and looks like "coe".
        assert_eq!(script_mark("\u{441}\u{43e}\u{435}").as_deref(), Some("Cyrillic"));
        for plain in ["ada", "zoë 🎉", "小明", "さくら", "山田さくら", "Ελένη", "Дмитрий", "r2d2"] {
            assert_eq!(script_mark(plain), None, "{plain}");
        }
        let v = ids(2);
        let peers = [named(&v[0], "ada", "lab-1"), named(&v[1], fake, "lab-2")];
        assert_eq!(label(peers[0], &peers), "ada");
        let shown = label(peers[1], &peers);
        assert_eq!(shown, format!("{fake} [Cyrillic+Latin]"));
        // What is shown is what is typed.
        assert_eq!(resolve(&shown, &peers).unwrap(), v[1]);
        assert_eq!(resolve(fake, &peers).unwrap(), v[1]);
        assert_eq!(resolve("ada", &peers).unwrap(), v[0]);
        // Among namesakes too.
        let peers = [named(&v[0], fake, "lab-1"), named(&v[1], fake, "lab-2")];
        let each: Vec<String> = peers.iter().map(|p| label(*p, &peers)).collect();
        assert_eq!(each[0], format!("{fake}@lab-1 [Cyrillic+Latin]"));
        for (p, l) in peers.iter().zip(&each) {
            assert_eq!(&resolve(l, &peers).unwrap(), p.id, "{l}");
        }
        let FindError::Ambiguous(msg) = resolve(fake, &peers).unwrap_err() else {
            panic!()
        };
        assert!(msg.contains("[Cyrillic+Latin]"), "{msg}");
        // A mark that is not the nick's is part of what was typed.
        assert!(resolve("ada [Cyrillic+Latin]", &[named(&v[0], "ada", "h")]).is_err());
    }
}
