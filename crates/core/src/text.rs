//! Text from a container made safe for the user's terminal: control characters — the escape
//! sequences that move the cursor, rewrite the title, set the clipboard or hide text — are
//! shown in caret notation instead of being obeyed, and characters that reorder or hide text
//! are shown as `\u{…}`.

use std::borrow::Cow;

/// `text` with every control character but the tab made visible: `ESC` becomes `^[`, `DEL`
/// `^?`, and the C1 controls (which some terminals obey like `ESC` sequences) `\x9b`-style;
/// so do the characters that reorder or hide text, `\u{202e}`-style.
/// Text without control characters is returned as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escaping) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !needs_escaping(c) => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

fn needs_escaping(c: char) -> bool {
    (c != '\t' && c.is_control()) || reorders_or_hides(c)
}

/// Characters that reorder the text around them or take no space (Trojan Source): a line
/// could read differently on the screen than it is.
fn reorders_or_hides(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}' // zero-width space, joiners, direction marks
        | '\u{202a}'..='\u{202e}' // bidirectional embeddings and overrides
        | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidirectional isolates
        | '\u{feff}' // zero-width no-break space
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        // Clear the screen, set the window title, then a C1 CSI and a carriage return.
        let hostile = "ok\x1b[2J\x1b]0;pwned\x07 \u{9b}31m\rdone\x7f";
        assert_eq!(printable(hostile), "ok^[[2J^[]0;pwned^G \\x9b31m^Mdone^?");
    }

    #[test]
    fn reordering_and_invisible_characters_are_shown() {
        let hostile = "ok\u{202e}gnp.exe\u{2066}x\u{200b}y\u{feff}";
        assert_eq!(
            printable(hostile),
            "ok\\u{202e}gnp.exe\\u{2066}x\\u{200b}y\\u{feff}"
        );
    }

    #[test]
    fn plain_text_and_tabs_pass_untouched() {
        let text = "fixed\tcalc.py — ✓";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
    }
}
