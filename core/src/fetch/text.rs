//! Text of fetched pages in the encoding they declare, so a forum written in
//! windows-1252, ISO-8859-x or Shift_JIS keeps its titles and folder names
//! instead of U+FFFD.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How far into a page browsers look for a `<meta>` charset (the HTML
/// standard's prescan).
const PRESCAN_BYTES: usize = 1024;

/// Decodes an HTML page the way browsers do: a byte-order mark, else the
/// `charset` of `content_type`, else a `<meta charset>` or `<meta
/// http-equiv="Content-Type" content="…; charset=…">` in its first 1,024
/// bytes, else UTF-8 — or windows-1252 when the bytes are not UTF-8 (what
/// browsers assume for undeclared legacy pages). Labels are read per the
/// Encoding Standard (`latin1`, `iso-8859-1` and `ascii` mean windows-1252;
/// `sjis` means Shift_JIS).
pub fn decode_html(body: &[u8], content_type: Option<&str>) -> String {
    let declared = content_type
        .and_then(charset_parameter)
        .or_else(|| meta_charset(&body[..body.len().min(PRESCAN_BYTES)]));
    let encoding = match declared {
        // A page cannot really be UTF-16 if its `<meta>` could be read as ASCII.
        Some(encoding) if encoding.output_encoding() == UTF_8 => UTF_8,
        Some(encoding) => encoding,
        None if std::str::from_utf8(body).is_ok() => UTF_8,
        None => WINDOWS_1252,
    };
    // `decode` lets a BOM override the declaration, as browsers do.
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// The encoding named by a `charset=` parameter in `text` (a Content-Type
/// value or a `<meta>` tag), if it names one the Encoding Standard knows.
fn charset_parameter(text: &str) -> Option<&'static Encoding> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("charset")?;
    let rest = lower[at + "charset".len()..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let rest = rest.trim_start_matches(['"', '\'']);
    let end = rest
        .find(|c: char| {
            c == '"' || c == '\'' || c == ';' || c == '>' || c.is_whitespace() || c == '/'
        })
        .unwrap_or(rest.len());
    Encoding::for_label(&rest.as_bytes()[..end])
}

/// The charset a `<meta>` tag in `head` declares, if any.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    // The prescan only needs ASCII: every charset declaration is ASCII.
    let text = String::from_utf8_lossy(head);
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<meta") {
        let tag_start = from + start;
        let tag_end = lower[tag_start..]
            .find('>')
            .map_or(lower.len(), |end| tag_start + end);
        if let Some(encoding) = charset_parameter(&lower[tag_start..tag_end]) {
            return Some(encoding);
        }
        from = tag_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_pages_decode_from_the_header_or_their_meta_tag() {
        // "Café – Grüße" in windows-1252, "日本語" in Shift_JIS, "Ελλάδα" in ISO-8859-7.
        let cafe = b"<title>Caf\xe9 \x96 Gr\xfc\xdfe</title>";
        let nihongo = b"\x93\xfa\x96\x7b\x8c\xea";
        let greek = b"\xc5\xeb\xeb\xdc\xe4\xe1";
        let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
            (
                cafe.to_vec(),
                Some("text/html; charset=windows-1252"),
                "Café – Grüße",
            ),
            (
                cafe.to_vec(),
                Some("text/html; charset=\"ISO-8859-1\""),
                "Café – Grüße",
            ),
            (
                [b"<meta charset=\"windows-1252\">".as_slice(), cafe].concat(),
                Some("text/html"),
                "Café – Grüße",
            ),
            (
                [
                    b"<META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=Shift_JIS\">"
                        .as_slice(),
                    nihongo,
                ]
                .concat(),
                None,
                "日本語",
            ),
            (
                [b"<meta charset=iso-8859-7>".as_slice(), greek].concat(),
                None,
                "Ελλάδα",
            ),
            // Undeclared and not UTF-8: windows-1252, as browsers assume.
            (cafe.to_vec(), None, "Café – Grüße"),
            // Undeclared UTF-8, and a BOM that overrides a wrong header.
            ("Grüße 日本".as_bytes().to_vec(), None, "Grüße 日本"),
            (
                [b"\xef\xbb\xbf".as_slice(), "Grüße".as_bytes()].concat(),
                Some("text/html; charset=windows-1252"),
                "Grüße",
            ),
            // An unknown label falls back to the bytes' own shape.
            (
                "Grüße".as_bytes().to_vec(),
                Some("text/html; charset=no-such-thing"),
                "Grüße",
            ),
        ];
        for (body, content_type, expected) in cases {
            let text = decode_html(&body, content_type);
            assert!(text.contains(expected), "{content_type:?}: {text:?}");
            assert!(!text.contains('\u{fffd}'), "{content_type:?}: {text:?}");
        }
    }

    #[test]
    fn a_meta_charset_after_the_prescan_window_is_not_read() {
        let mut body = vec![b' '; PRESCAN_BYTES];
        body.extend_from_slice(b"<meta charset=\"shift_jis\">\x93\xfa");
        // Not UTF-8 and undeclared within 1,024 bytes: windows-1252.
        assert!(decode_html(&body, None).ends_with("\u{201c}\u{fa}"));
    }
}
