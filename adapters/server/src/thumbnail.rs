//! Small previews for the dashboard: a JPEG at most [`THUMBNAIL_SIZE`]
//! pixels wide or high, made once from an image download and cached, and a
//! generic placeholder PNG for everything else (videos, files).

use std::io::Cursor;
use std::path::Path;
use std::sync::LazyLock;

use image::{ImageFormat, ImageReader, Limits, Rgb, RgbImage};

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 320;
/// Largest decoded image accepted (keeps a hostile file from exhausting memory).
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Why a thumbnail could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The source image or the cache file could not be read or written.
    #[error("reading {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an image this build decodes, or is too large.
    #[error("decoding image: {0}")]
    Image(#[from] image::ImageError),
}

/// Makes (or reuses) the cached thumbnail of `source` at `cached`; returns the JPEG bytes.
pub fn thumbnail(source: &Path, cached: &Path) -> Result<Vec<u8>, ThumbnailError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ThumbnailError::Io { path, source }
    };
    if let Ok(bytes) = std::fs::read(cached) {
        return Ok(bytes);
    }
    let mut reader = ImageReader::open(source)
        .map_err(io(source))?
        .with_guessed_format()
        .map_err(io(source))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode()?;
    let small = image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE).to_rgb8();
    let mut bytes = Vec::new();
    small.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)?;
    if let Some(dir) = cached.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // Written under a temporary name and renamed, so a reader never sees half a file.
    let partial = cached.with_extension("partial");
    std::fs::write(&partial, &bytes).map_err(io(&partial))?;
    std::fs::rename(&partial, cached).map_err(io(cached))?;
    Ok(bytes)
}

/// A grey 16:9 PNG with a light "play" triangle, for downloads that are not images.
pub fn placeholder_png() -> &'static [u8] {
    static PLACEHOLDER: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let (width, height) = (THUMBNAIL_SIZE, THUMBNAIL_SIZE * 9 / 16);
        let (cx, cy) = (width as i64 / 2, height as i64 / 2);
        let image = RgbImage::from_fn(width, height, |x, y| {
            let (dx, dy) = (x as i64 - cx + 12, (y as i64 - cy).abs());
            // A right-pointing triangle 36 px wide, 48 px high.
            if (0..36).contains(&dx) && dy * 36 <= (36 - dx) * 24 {
                Rgb([235, 235, 235])
            } else {
                Rgb([72, 76, 84])
            }
        });
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .expect("encoding a PNG in memory");
        bytes
    });
    &PLACEHOLDER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_shrink_and_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("big.png");
        RgbImage::from_pixel(1000, 500, Rgb([200, 10, 10]))
            .save(&source)
            .unwrap();
        let cached = dir.path().join("thumbs/1.jpg");
        let bytes = thumbnail(&source, &cached).unwrap();
        let small = image::load_from_memory(&bytes).unwrap();
        assert_eq!((small.width(), small.height()), (320, 160));
        std::fs::remove_file(&source).unwrap();
        assert_eq!(
            thumbnail(&source, &cached).unwrap(),
            bytes,
            "served from the cache"
        );
    }

    #[test]
    fn non_images_fail_and_placeholder_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("clip.mp4");
        std::fs::write(&source, b"not an image at all").unwrap();
        assert!(thumbnail(&source, &dir.path().join("t.jpg")).is_err());
        let png = image::load_from_memory(placeholder_png()).unwrap();
        assert_eq!(png.width(), THUMBNAIL_SIZE);
    }
}
