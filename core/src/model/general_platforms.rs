//! Settings of the general platforms: `platforms.video` (any site yt-dlp
//! supports) and `platforms.gallery` (any site gallery-dl supports). They
//! say what to make of a download (format, subtitles, companion files),
//! not how to run the program (`platforms.<p>."yt-dlp"` is
//! [`ProgramSettings`](crate::engines::ProgramSettings)).

use serde::{Deserialize, Serialize};

use super::settings::{InvalidSetting, Settings};

/// The longest pause between requests a setting may ask for.
const MAX_SLEEP_SECONDS: f64 = 600.0;
/// Audio codecs yt-dlp's `--audio-format` knows.
pub const AUDIO_FORMATS: &[&str] = &[
    "best", "aac", "alac", "flac", "m4a", "mp3", "opus", "vorbis", "wav",
];

/// `platforms.video`: what the `video` platform keeps of each video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoSettings {
    /// `best`, `<N>p` (the best with at most N lines, e.g. `1080p`), or
    /// `audio` (the audio only, converted to `audio_format`).
    pub quality: String,
    /// The codec of `quality = "audio"`: one of [`AUDIO_FORMATS`].
    pub audio_format: String,
    /// Subtitle languages to fetch (`en`, `de`, `all`); none when empty.
    pub subtitles: Vec<String>,
    /// Subtitles inside the video file instead of sidecar files (needs ffmpeg).
    pub embed_subtitles: bool,
    /// Keep the video's thumbnail beside it (the poster of media servers).
    pub thumbnail: bool,
    /// Keep yt-dlp's `.info.json` beside each video.
    pub info_json: bool,
    /// Write a Kodi/Jellyfin/Plex `.nfo` beside each video.
    pub nfo: bool,
    /// `episode` (`<episodedetails>`, channels as shows) or `movie` (`<movie>`).
    pub nfo_kind: String,
    /// Set each file's modification time to the video's upload date.
    pub mtime_from_upload_date: bool,
    /// Seconds yt-dlp waits between its requests to the site (`--sleep-requests`).
    pub sleep_requests_seconds: f64,
    /// Most bytes per second of one transfer (`--limit-rate`: `500K`, `4M`); empty for no limit.
    pub limit_rate: String,
    /// List channels without opening each video (`--flat-playlist`):
    /// faster, but many sites then give no upload date, so date windows
    /// cannot apply.
    pub fast_listing: bool,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            quality: "best".into(),
            audio_format: "m4a".into(),
            subtitles: Vec::new(),
            embed_subtitles: false,
            thumbnail: false,
            info_json: true,
            nfo: false,
            nfo_kind: "episode".into(),
            mtime_from_upload_date: true,
            sleep_requests_seconds: 0.0,
            limit_rate: String::new(),
            fast_listing: false,
        }
    }
}

/// What [`VideoSettings::quality`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// The best video and audio there are.
    Best,
    /// The best with at most this many lines.
    UpTo(u32),
    /// The audio only.
    Audio,
}

impl VideoSettings {
    /// `platforms.video` of `settings`, checked.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the `platforms.video.…` field that is wrong.
    pub fn read(settings: &Settings) -> Result<Self, InvalidSetting> {
        let video: Self = settings.platform("video")?;
        video.validate()?;
        Ok(video)
    }

    /// The parsed `quality`.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] on `platforms.video.quality` when it is none of
    /// `best`, `audio`, `<N>p`.
    pub fn quality(&self) -> Result<Quality, InvalidSetting> {
        let text = self.quality.trim().to_ascii_lowercase();
        match text.as_str() {
            "best" | "" => Ok(Quality::Best),
            "audio" => Ok(Quality::Audio),
            other => other
                .strip_suffix('p')
                .and_then(|lines| lines.parse::<u32>().ok())
                .filter(|lines| (100..=10_000).contains(lines))
                .map(Quality::UpTo)
                .ok_or_else(|| {
                    InvalidSetting::new(
                        "platforms.video.quality",
                        format!(
                            "{:?} is not a quality: use \"best\", \"audio\" or a height such as \"1080p\"",
                            self.quality
                        ),
                    )
                }),
        }
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        self.quality()?;
        if !AUDIO_FORMATS.contains(&self.audio_format.as_str()) {
            return Err(InvalidSetting::new(
                "platforms.video.audio_format",
                format!(
                    "{:?} is not one of {}",
                    self.audio_format,
                    AUDIO_FORMATS.join(", ")
                ),
            ));
        }
        for language in &self.subtitles {
            let fine = !language.is_empty()
                && language.len() <= 20
                && language
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !fine {
                return Err(InvalidSetting::new(
                    "platforms.video.subtitles",
                    format!("{language:?} is not a language code (en, pt-BR, all)"),
                ));
            }
        }
        if !matches!(self.nfo_kind.as_str(), "episode" | "movie") {
            return Err(InvalidSetting::new(
                "platforms.video.nfo_kind",
                format!("{:?} is neither \"episode\" nor \"movie\"", self.nfo_kind),
            ));
        }
        sleep_seconds(
            "platforms.video.sleep_requests_seconds",
            self.sleep_requests_seconds,
        )?;
        let rate = self.limit_rate.trim();
        let digits = rate.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
        if !rate.is_empty() && (digits.parse::<f64>().map_or(true, |n| n <= 0.0)) {
            return Err(InvalidSetting::new(
                "platforms.video.limit_rate",
                format!("{rate:?} is not a rate: bytes per second such as 500K or 4M"),
            ));
        }
        Ok(())
    }
}

/// `platforms.gallery`: what the `gallery` platform does for each file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GallerySettings {
    /// Pages no gallery-dl extractor claims go to its generic extractor
    /// (images of any page) instead of failing as unsupported.
    pub generic: bool,
    /// Seconds gallery-dl waits between its requests to the site (`sleep-request`).
    pub sleep_request_seconds: f64,
    /// Keep gallery-dl's own metadata JSON beside each file (`<file>.info.json`).
    pub metadata_json: bool,
}

impl Default for GallerySettings {
    fn default() -> Self {
        Self {
            generic: true,
            sleep_request_seconds: 0.0,
            metadata_json: false,
        }
    }
}

impl GallerySettings {
    /// `platforms.gallery` of `settings`, checked.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the `platforms.gallery.…` field that is wrong.
    pub fn read(settings: &Settings) -> Result<Self, InvalidSetting> {
        let gallery: Self = settings.platform("gallery")?;
        sleep_seconds(
            "platforms.gallery.sleep_request_seconds",
            gallery.sleep_request_seconds,
        )?;
        Ok(gallery)
    }
}

fn sleep_seconds(field: &str, value: f64) -> Result<(), InvalidSetting> {
    if !(0.0..=MAX_SLEEP_SECONDS).contains(&value) {
        return Err(InvalidSetting::new(
            field,
            format!("must be between 0 and {MAX_SLEEP_SECONDS} seconds, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_video(section: serde_json::Value) -> Result<VideoSettings, InvalidSetting> {
        Settings::from_value(&serde_json::json!({"platforms": {"video": section}}))
            .and_then(|settings| VideoSettings::read(&settings))
    }

    #[test]
    fn qualities_parse_and_bad_values_name_their_field() {
        let quality = |text: &str| read_video(serde_json::json!({"quality": text}));
        assert_eq!(quality("best").unwrap().quality().unwrap(), Quality::Best);
        assert_eq!(
            quality("720p").unwrap().quality().unwrap(),
            Quality::UpTo(720)
        );
        assert_eq!(quality("audio").unwrap().quality().unwrap(), Quality::Audio);
        let cases = [
            (
                serde_json::json!({"quality": "huge"}),
                "platforms.video.quality",
            ),
            (
                serde_json::json!({"quality": "5p"}),
                "platforms.video.quality",
            ),
            (
                serde_json::json!({"audio_format": "midi"}),
                "platforms.video.audio_format",
            ),
            (
                serde_json::json!({"subtitles": ["en", "../x"]}),
                "platforms.video.subtitles",
            ),
            (
                serde_json::json!({"nfo_kind": "show"}),
                "platforms.video.nfo_kind",
            ),
            (
                serde_json::json!({"limit_rate": "fast"}),
                "platforms.video.limit_rate",
            ),
            (
                serde_json::json!({"sleep_requests_seconds": -1}),
                "platforms.video.sleep_requests_seconds",
            ),
            (
                serde_json::json!({"thumbnail": "yes"}),
                "platforms.video.thumbnail",
            ),
        ];
        for (section, field) in cases {
            let err = read_video(section.clone()).unwrap_err();
            assert_eq!(err.field, field, "{section}: {err}");
        }
        assert!(
            read_video(serde_json::json!({"limit_rate": "4M", "subtitles": ["pt-BR"]})).is_ok()
        );
    }

    #[test]
    fn gallery_settings_are_checked() {
        let err = Settings::from_value(
            &serde_json::json!({"platforms": {"gallery": {"sleep_request_seconds": 9999}}}),
        )
        .and_then(|settings| GallerySettings::read(&settings))
        .unwrap_err();
        assert_eq!(err.field, "platforms.gallery.sleep_request_seconds");
        assert!(GallerySettings::read(&Settings::default()).unwrap().generic);
    }
}
