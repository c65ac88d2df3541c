//! Text placed inside HTML and XML documents (notification emails, the
//! `.nfo` files of media servers), escaped one way everywhere.

/// `text` as character data or an attribute value of HTML or XML: the
/// five markup characters escaped, and the control characters XML 1.0
/// cannot hold at all (all below U+0020 but tab, newline and carriage
/// return, and U+FFFE/U+FFFF) dropped, so stray bytes in a title never
/// make a document unreadable.
///
/// ```
/// assert_eq!(
///     mediadl::markup::escape("Tom & Jerry's <live>\u{1}"),
///     "Tom &amp; Jerry&#39;s &lt;live&gt;"
/// );
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
