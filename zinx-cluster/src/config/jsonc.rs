//! JSON with `//` line comments, as the Go original's articles write their
//! configuration files, and positions for messages.
//!
//! Comments are blanked out rather than removed, so every line and column
//! after them stays where the user sees it in an editor.

use std::borrow::Cow;

/// `text` with every `//` comment (outside strings, up to the end of its
/// line) replaced by spaces of the same byte length, and a leading UTF-8 byte
/// order mark dropped (editors hide it, serde_json rejects it).
///
/// Line breaks are kept, so a position in the result is the same position in
/// `text`. Block comments (`/* */`) are not supported.
pub(super) fn strip_line_comments(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text.contains("//") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // Lexer state: inside a string literal (and just after its backslash), or
    // inside a comment. A `/` outside a string is never valid JSON, so this
    // only changes text that would not parse anyway.
    let mut in_string = false;
    let mut escaped = false;
    let mut in_comment = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                out.push('\n');
            } else {
                out.extend(std::iter::repeat_n(' ', c.len_utf8()));
            }
        } else if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            in_comment = true;
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The column a person sees (in characters, from 1) of serde_json's
/// `column` (in bytes) on `line` (from 1) of `text`.
///
/// serde_json counts bytes, so a line holding a Chinese name before the
/// error would otherwise point far to the right of it.
pub(super) fn char_column(text: &str, line: usize, byte_column: usize) -> usize {
    match text.split('\n').nth(line.saturating_sub(1)) {
        Some(l) => l
            .char_indices()
            .take_while(|(i, _)| *i < byte_column)
            .count(),
        None => byte_column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_comments_is_borrowed_unchanged() {
        let text = r#"{"a": [1, 2]}"#;
        assert!(matches!(strip_line_comments(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn comments_become_spaces_of_the_same_length() {
        let text = "{ // 节点\n\"a\": 1 // x\n}";
        let out = strip_line_comments(text);
        assert_eq!(out.len(), text.len());
        // `{` then 10 spaces: `// ` is 3 bytes, `节点` 6.
        assert_eq!(out, format!("{{{}\n\"a\": 1     \n}}", " ".repeat(10)));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).ok(),
            Some(serde_json::json!({"a": 1}))
        );
    }

    #[test]
    fn slashes_inside_strings_are_kept() {
        let text = r#"{"url": "http://x//y", "q": "a\"//b", "e": "\\"} // end"#;
        let out = strip_line_comments(text);
        assert_eq!(
            out,
            r#"{"url": "http://x//y", "q": "a\"//b", "e": "\\"}       "#
        );
    }

    #[test]
    fn comment_at_end_of_file_and_crlf() {
        assert_eq!(strip_line_comments("1 //"), "1   ");
        assert_eq!(strip_line_comments("1 // c\r\n"), "1      \n");
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        assert_eq!(strip_line_comments("\u{feff}{}"), "{}");
    }

    #[test]
    fn char_column_counts_characters() {
        let text = "{\n\"名字\": x}";
        // serde_json reports the `x` at byte column 11 of line 2.
        assert_eq!(char_column(text, 2, 11), 7);
        assert_eq!(char_column(text, 1, 1), 1);
        assert_eq!(char_column(text, 9, 4), 4);
    }
}
