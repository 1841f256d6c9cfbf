//! Blank and trimmed text as the API's documented patterns mean them.

/// True when `text` has no character but whitespace as the document's patterns name it:
/// Unicode's White_Space (`char::is_whitespace`) and U+FEFF, spelled out in the patterns so
/// that every regular-expression dialect reads them alike.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_space)
}

/// `text` without leading and trailing whitespace in the sense of [`is_blank`].
pub fn trim_blank(text: &str) -> &str {
    text.trim_matches(is_space)
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_what_the_documents_patterns_call_blank() {
        assert!(is_blank(" \t\u{a0}\u{feff}\u{3000}"));
        assert!(is_blank("\u{85}\u{2028}"));
        assert!(!is_blank(" x "));
        assert_eq!(trim_blank("\u{feff} x\u{85} "), "x");
    }
}
