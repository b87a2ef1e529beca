//! Text for people. Text from the network is hostile: nicks, messages and file names may carry
//! terminal escape sequences, control characters, bidi overrides or invisible characters. They
//! are stored as received and neutralised here, wherever they are printed; names that become
//! files and our own nick are refused if they hold any of them. [`is_hostile`] is the one set of
//! such characters that every check and every display uses.
//!
//! Also here: the small helpers that make counts and sizes read right (`1 file`, `2.00 MiB`).

use std::borrow::Cow;
use std::fmt::Display;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// True for characters that must never reach a terminal, a file name or a nick verbatim:
///
/// - C0 and C1 controls and DEL: escape sequences, cursor moves, bells (U+009B alone is a CSI
///   to many terminals).
/// - Bidi marks, embeddings, overrides and isolates: they reorder what is displayed ("Trojan
///   Source"), so `ok\u{202e}fdp.exe` shows as `okexe.pdf`.
/// - Zero-width and other invisible characters (joiners, word joiner, BOM, soft hyphen, tags,
///   Hangul fillers, the combining grapheme joiner): `carol\u{200b}` would look exactly like
///   `carol`. Every character of general category Cf (format) belongs here, so a format
///   character added to Unicode later is covered too.
/// - Line and paragraph separators: a line break a single-line display does not expect.
///
/// The zero-width joiner goes too, although emoji sequences use it: telling an emoji sequence
/// from a disguise is subtle, and a visible escape in an emoji is harmless. Variation selectors
/// (U+FE00–U+FE0F) stay: emoji need them and they cannot hide or reorder anything.
pub fn is_hostile(c: char) -> bool {
    // Below the soft hyphen only the controls are hostile: the common case stays cheap.
    if c < '\u{ad}' {
        return c.is_control();
    }
    matches!(c,
        // Bidi marks, embeddings, overrides, isolates.
        '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // Zero-width and invisible format characters.
        | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}' | '\u{180e}'
        | '\u{fff9}'..='\u{fffb}'
        // Invisible although not Cf: combining grapheme joiner, Hangul fillers, tags (some
        // unassigned, which no table would call Cf).
        | '\u{034f}' | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' | '\u{e0000}'..='\u{e007f}'
        // Line and paragraph separators.
        | '\u{2028}' | '\u{2029}'
    ) || c.is_control()
        || c.general_category() == GeneralCategory::Format
}

/// True if `s` has no [`is_hostile`] character.
pub fn is_clean(s: &str) -> bool {
    !s.chars().any(is_hostile)
}

/// `s` with every [`is_hostile`] character shown as a visible escape (`\u{1b}`, `\u{200b}`),
/// so it can't move the cursor, recolour the screen, reorder the line or pass for other text.
pub fn printable(s: &str) -> Cow<'_, str> {
    if is_clean(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hostile(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error or status for one line: newlines become spaces, then [`printable`].
pub fn one_line(s: &str) -> String {
    printable(&s.replace(['\n', '\r'], " ")).into_owned()
}

/// A hostile string made safe and cut to `max_chars` for a one-line message (`…` marks a cut).
pub fn shown(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", printable(&s[..cut])),
        None => printable(s).into_owned(),
    }
}

/// `1 file`, `2 files`, `0 files`: a count with its noun, for nouns whose plural adds an "s".
pub fn plural<N: Copy + Display + TryInto<u64>>(n: N, noun: &str) -> String {
    let one = n.try_into().is_ok_and(|n: u64| n == 1);
    format!("{n} {noun}{}", if one { "" } else { "s" })
}

/// Why an I/O operation failed, as a person reads it: `no such file or directory`, not
/// `No such file or directory (os error 2)`.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" (os error ") {
        Some(at) if s.ends_with(')') => &s[..at],
        _ => &s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A byte count for people, in binary units: `4 B`, `2.00 KiB`, `412.00 MiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_hostile(chars: impl IntoIterator<Item = char>) {
        for c in chars {
            assert!(is_hostile(c), "U+{:04X} should be hostile", c as u32);
            let shown = printable(&format!("a{c}b")).into_owned();
            assert_eq!(shown, format!("a\\u{{{:x}}}b", c as u32));
            assert!(is_clean(&shown), "{shown:?}");
        }
    }

    #[test]
    fn controls_are_hostile() {
        all_hostile(('\0'..='\u{1f}').chain(['\u{7f}']).chain('\u{80}'..='\u{9f}'));
        assert_eq!(printable("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(printable("a\u{7}b\u{9b}c"), "a\\u{7}b\\u{9b}c");
        assert_eq!(printable("line\nbreak\ttab"), "line\\u{a}break\\u{9}tab");
    }

    #[test]
    fn bidi_controls_are_hostile() {
        all_hostile(
            ['\u{200e}', '\u{200f}', '\u{061c}']
                .into_iter()
                .chain('\u{202a}'..='\u{202e}')
                .chain('\u{2066}'..='\u{2069}'),
        );
        assert_eq!(printable("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
    }

    #[test]
    fn invisible_characters_are_hostile() {
        all_hostile(
            ('\u{200b}'..='\u{200d}')
                .chain('\u{2060}'..='\u{2064}')
                .chain(['\u{feff}', '\u{ad}', '\u{180e}', '\u{034f}'])
                .chain(['\u{115f}', '\u{1160}', '\u{3164}', '\u{ffa0}'])
                .chain('\u{fff9}'..='\u{fffb}')
                .chain('\u{e0000}'..='\u{e007f}'),
        );
        assert_eq!(printable("carol\u{200b}"), "carol\\u{200b}");
        assert_ne!(printable("carol\u{200b}"), printable("carol"));
    }

    #[test]
    fn line_separators_and_other_format_characters_are_hostile() {
        // U+2028/9 are Zl/Zp; the rest are Cf without a name in the list above.
        all_hostile([
            '\u{2028}',
            '\u{2029}',
            '\u{0600}',
            '\u{06dd}',
            '\u{206a}',
            '\u{206f}',
            '\u{110bd}',
            '\u{13430}',
            '\u{1d173}',
        ]);
    }

    #[test]
    fn ordinary_text_and_emoji_stay() {
        for s in [
            "ada",
            "résumé 日本 🎉",
            "ñ\u{a0}x",            // no-break space
            "❤\u{fe0f} ✌\u{fe0e}", // variation selectors
            "e\u{301}",            // combining accent
            "עברית العربية",       // right-to-left letters, no overrides
            "\u{1f1eb}\u{1f1f7}",  // regional indicators: a flag
            "\u{1f44d}\u{1f3fd}",  // skin tone modifier
        ] {
            assert!(is_clean(s), "{s:?}");
            assert!(matches!(printable(s), Cow::Borrowed(_)), "{s:?}");
        }
        // An emoji ZWJ sequence shows its joiners: harmless, and no disguise gets through.
        assert_eq!(printable("\u{1f469}\u{200d}\u{1f4bb}"), "\u{1f469}\\u{200d}\u{1f4bb}");
        assert_eq!(printable(""), "");
    }

    #[test]
    fn one_line_has_no_line_breaks() {
        let s = one_line("a\nb\r\u{1b}\u{2028}c");
        assert!(!s.contains(['\n', '\r', '\u{1b}', '\u{2028}']), "{s:?}");
        assert!(s.starts_with("a b "), "{s:?}");
    }

    #[test]
    fn counts_and_sizes_read_right() {
        assert_eq!(plural(1u32, "file"), "1 file");
        assert_eq!(plural(0usize, "file"), "0 files");
        assert_eq!(plural(2u64, "recipient"), "2 recipients");
        assert_eq!(human_bytes(1), "1 B");
        assert_eq!(human_bytes(2048), "2.00 KiB");
        assert_eq!(human_bytes(412 << 20), "412.00 MiB");
        let missing = std::fs::metadata("/nonexistent/lanyard-test").unwrap_err();
        assert_eq!(io_reason(&missing), "no such file or directory");
        assert_eq!(io_reason(&std::io::Error::other("Odd thing")), "odd thing");
    }
}
