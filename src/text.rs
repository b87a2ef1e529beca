//! Text from the network is hostile: nicks, messages and file names may carry terminal escape
//! sequences, control characters or bidi overrides. They are stored as received and neutralised
//! here, wherever they are printed.

use std::borrow::Cow;

fn is_dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` with every control character and bidi control shown as a visible escape (`\u{1b}`), so
/// it can't move the cursor, recolour the screen or reorder the line.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_dangerous(c) {
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

/// `1 file`, `2 files`: a count and its noun, for people.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// An I/O error as a person reads it: `no such file or directory`, without the `(os error 2)`.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_neutralised() {
        assert_eq!(printable("ada"), "ada");
        assert_eq!(printable("x\u{1b}[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(printable("a\u{7}b\u{9b}c"), "a\\u{7}b\\u{9b}c");
        assert_eq!(printable("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert_eq!(printable("résumé 日本 🎉"), "résumé 日本 🎉");
        assert!(!one_line("a\nb\r\u{1b}").contains(['\n', '\r', '\u{1b}']));
    }
}
