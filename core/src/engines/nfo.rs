//! Kodi/Jellyfin/Plex `.nfo` documents for downloaded videos, from the
//! metadata yt-dlp reports (`--print-to-file after_move:%()j`): the title,
//! the description as the plot, the upload date as the aired date, the
//! channel as the studio (and the show), the thumbnail as the poster.
//!
//! Every value goes through [`crate::markup::escape`], so a title full of
//! `<`, `&` or stray control bytes still gives a document media servers read.

use serde_json::Value;

/// The `.nfo` of one video: `<episodedetails>` for `kind = "episode"`,
/// `<movie>` otherwise.
pub fn document(metadata: &Value, kind: &str) -> String {
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(|value| match value {
                Value::String(text) => Some(text.trim().to_owned()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .filter(|text| !text.is_empty())
    };
    let channel = text("channel")
        .or_else(|| text("uploader"))
        .or_else(|| text("uploader_id"));
    let date = text("upload_date")
        .filter(|date| date.len() == 8 && date.chars().all(|c| c.is_ascii_digit()))
        .map(|date| format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]));
    let root = if kind == "movie" {
        "movie"
    } else {
        "episodedetails"
    };
    let mut fields: Vec<(&str, Option<String>)> = vec![
        ("title", text("title").or_else(|| text("id"))),
        ("plot", text("description")),
    ];
    if root == "movie" {
        fields.push(("premiered", date.clone()));
        fields.push(("year", date.as_ref().map(|d| d[..4].to_owned())));
    } else {
        fields.push(("aired", date.clone()));
        fields.push(("showtitle", channel.clone()));
    }
    fields.push(("studio", channel));
    fields.push((
        "runtime",
        metadata
            .get("duration")
            .and_then(Value::as_f64)
            .map(|seconds| ((seconds / 60.0).round() as u64).max(1).to_string()),
    ));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n");
    out.push_str(&format!("<{root}>\n"));
    for (name, value) in fields {
        if let Some(value) = value {
            out.push_str(&format!(
                "  <{name}>{}</{name}>\n",
                crate::markup::escape(&value)
            ));
        }
    }
    if let Some(thumbnail) = text("thumbnail") {
        out.push_str(&format!(
            "  <thumb aspect=\"poster\">{}</thumb>\n",
            crate::markup::escape(&thumbnail)
        ));
    }
    if let Some(id) = text("id") {
        let source = text("extractor_key")
            .unwrap_or_else(|| "yt-dlp".into())
            .to_lowercase();
        out.push_str(&format!(
            "  <uniqueid type=\"{}\" default=\"true\">{}</uniqueid>\n",
            crate::markup::escape(&source),
            crate::markup::escape(&id)
        ));
    }
    out.push_str(&format!("</{root}>\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_carry_what_media_servers_read_escaped() {
        let metadata = serde_json::json!({
            "id": "dQw4w9WgXcQ", "extractor_key": "Youtube",
            "title": "Tom & Jerry <live>\u{1}", "description": "a \"plot\"",
            "upload_date": "20091025", "channel": "Rick's channel", "duration": 212,
            "thumbnail": "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg?a=1&b=2",
            "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
        });
        let nfo = document(&metadata, "episode");
        for expected in [
            "<episodedetails>",
            "<title>Tom &amp; Jerry &lt;live&gt;</title>",
            "<plot>a &quot;plot&quot;</plot>",
            "<aired>2009-10-25</aired>",
            "<studio>Rick&#39;s channel</studio>",
            "<showtitle>Rick&#39;s channel</showtitle>",
            "<runtime>4</runtime>",
            "<thumb aspect=\"poster\">https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg?a=1&amp;b=2</thumb>",
            "<uniqueid type=\"youtube\" default=\"true\">dQw4w9WgXcQ</uniqueid>",
            "</episodedetails>",
        ] {
            assert!(nfo.contains(expected), "{expected} in {nfo}");
        }
        let movie = document(&metadata, "movie");
        assert!(movie.contains("<movie>") && movie.contains("<premiered>2009-10-25</premiered>"));
        assert!(movie.contains("<year>2009</year>") && !movie.contains("aired"));
    }
}
