//! The archive keys other programs' archive entries become: one mapping,
//! so an imported entry and the item a subscription later lists agree.

/// The mediadl archive key of an entry of a yt-dlp `--download-archive`
/// file (`"{extractor key, lower case} {id}"`).
///
/// The general `video` platform keys every yt-dlp item `video:{entry}`;
/// TikTok items are keyed `tiktok:{id}` by both TikTok downloaders, so a
/// `tiktok` entry maps there and a TikTok subscription skips it. `None`
/// when the line is not an archive entry.
pub fn ytdlp_key(entry: &str) -> Option<String> {
    let (extractor, id) = split_ytdlp_entry(entry)?;
    Some(match extractor {
        "tiktok" => format!("tiktok:{id}"),
        _ => format!("video:{extractor} {id}"),
    })
}

/// The extractor and the id of a yt-dlp archive entry: a lower-case
/// extractor name, one space, a non-empty id without white space.
pub fn split_ytdlp_entry(entry: &str) -> Option<(&str, &str)> {
    let (extractor, id) = entry.split_once(' ')?;
    let extractor_ok = !extractor.is_empty()
        && extractor.len() <= 64
        && extractor
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b':');
    let id_ok = !id.is_empty() && id.len() <= 512 && !id.chars().any(char::is_whitespace);
    (extractor_ok && id_ok).then_some((extractor, id))
}

/// The mediadl archive key of an entry of a gallery-dl archive database
/// (`{category}` followed by the extractor's formatted `archive_fmt`).
///
/// Instagram's `archive_fmt` is `{media_id}`, the same pk both Instagram
/// downloaders key their items on, so `instagram3141…` becomes
/// `instagram:3141…`. Every other entry is kept whole under the general
/// `gallery` platform: `gallery:twitter1234567890_1`. `None` for an
/// empty entry.
pub fn gallerydl_key(entry: &str) -> Option<String> {
    if entry.trim().is_empty() || entry.len() > 2048 {
        return None;
    }
    Some(match instagram_media_id(entry) {
        Some(id) => format!("instagram:{id}"),
        None => format!("gallery:{entry}"),
    })
}

/// The media id of an Instagram entry (`instagram` and digits only).
pub(crate) fn instagram_media_id(entry: &str) -> Option<&str> {
    entry
        .strip_prefix("instagram")
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ytdlp_entries_map_to_video_keys_except_tiktok() {
        let cases = [
            ("youtube dQw4w9WgXcQ", Some("video:youtube dQw4w9WgXcQ")),
            ("generic video", Some("video:generic video")),
            ("tiktok 7301234567890", Some("tiktok:7301234567890")),
            ("vimeo 12345", Some("video:vimeo 12345")),
            ("", None),
            ("youtube", None),
            ("YouTube abc", None),
            ("youtube a b", None),
            ("youtube ", None),
            ("root:$6$salt$hash:19000:0:99999:7:::", None),
        ];
        for (entry, want) in cases {
            assert_eq!(ytdlp_key(entry).as_deref(), want, "{entry:?}");
        }
    }

    #[test]
    fn gallerydl_entries_map_to_gallery_keys_except_instagram() {
        let cases = [
            (
                "instagram3141592653589793238",
                Some("instagram:3141592653589793238"),
            ),
            ("twitter1234567890_1", Some("gallery:twitter1234567890_1")),
            ("instagramabc", Some("gallery:instagramabc")),
            ("instagram", Some("gallery:instagram")),
            (
                "generichttp://127.0.0.1/a.jpg",
                Some("gallery:generichttp://127.0.0.1/a.jpg"),
            ),
            ("  ", None),
        ];
        for (entry, want) in cases {
            assert_eq!(gallerydl_key(entry).as_deref(), want, "{entry:?}");
        }
    }
}
