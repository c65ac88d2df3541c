//! Small previews for the dashboard: a JPEG at most [`THUMBNAIL_SIZE`]
//! pixels wide or high, made once from an image download and cached, and a
//! generic placeholder PNG for everything else (videos, files, images too
//! large or broken to preview).
//!
//! Decoding is the expensive part, so it is bounded three ways: a
//! [`Thumbnailer`] decodes at most a few images at once (the rest wait),
//! an image whose header declares more than [`MAX_PIXELS`] is refused
//! before any pixel is decoded (and the decoder's own limits back that
//! up), and every outcome is cached on disk (`<id>.jpg`, or `<id>.none`
//! for an image that cannot be previewed) so a repeated request decodes
//! nothing.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use async_trait::async_trait;
use image::{DynamicImage, ImageFormat, ImageReader, Limits, Rgb, RgbImage};
use mediadl::downloads::DerivedMedia;
use tokio::sync::Semaphore;

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 320;
/// Most pixels of an image that is decoded for a thumbnail (a 40-megapixel
/// photo; about 160 MB as RGBA).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Longest side decoded, whatever the pixel count.
const MAX_SIDE: u32 = 20_000;
/// Most memory one decoder may allocate.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

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
    /// The header declares more pixels than [`MAX_PIXELS`].
    #[error("image of {width}x{height} pixels is larger than {MAX_PIXELS} pixels")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The file is not an image this build decodes, or exceeds the decoder's limits.
    #[error("decoding image: {0}")]
    Image(#[from] image::ImageError),
}

impl ThumbnailError {
    /// Whether trying again later could succeed (an I/O problem); an image
    /// that is too large or undecodable stays so.
    fn is_lasting(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ThumbnailError + use<> {
    let path = path.display().to_string();
    move |source| ThumbnailError::Io { path, source }
}

/// Decodes `source`, refusing it from its header when it is too large.
fn decode_bounded(source: &Path) -> Result<DynamicImage, ThumbnailError> {
    let open = || -> Result<ImageReader<_>, ThumbnailError> {
        ImageReader::open(source)
            .map_err(io_error(source))?
            .with_guessed_format()
            .map_err(io_error(source))
    };
    // Reads only as far as the dimensions.
    let (width, height) = open()?.into_dimensions()?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ThumbnailError::TooLarge { width, height });
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    Ok(reader.decode()?)
}

/// Makes the thumbnail of `source` and stores it at `cached`; returns the JPEG bytes.
pub fn make_thumbnail(source: &Path, cached: &Path) -> Result<Vec<u8>, ThumbnailError> {
    let image = decode_bounded(source)?;
    let small = image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE).to_rgb8();
    drop(image);
    let mut bytes = Vec::new();
    small.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)?;
    write_atomically(cached, &bytes)?;
    Ok(bytes)
}

/// Writes under a temporary name and renames, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ThumbnailError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(io_error(&partial))?;
    std::fs::rename(&partial, path).map_err(io_error(path))
}

/// The cached outcome for one download.
enum Cached {
    Thumbnail(Vec<u8>),
    NoPreview,
}

/// Makes and caches thumbnails with a bounded number of decodes at once.
#[derive(Debug)]
pub struct Thumbnailer {
    dir: PathBuf,
    decoding: Semaphore,
}

impl Thumbnailer {
    /// Thumbnails cached in `dir`, at most `concurrency` decoded at once.
    pub fn new(dir: PathBuf, concurrency: usize) -> Self {
        Self {
            dir,
            decoding: Semaphore::new(concurrency.max(1)),
        }
    }

    /// At most the machine's cores, and no more than two: one decode is
    /// up to `MAX_DECODE_BYTES`.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
    }

    fn jpeg_path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id}.jpg"))
    }

    fn no_preview_path(&self, id: i64) -> PathBuf {
        self.dir.join(format!("{id}.none"))
    }

    async fn cached(&self, id: i64) -> Option<Cached> {
        if let Ok(bytes) = tokio::fs::read(self.jpeg_path(id)).await {
            return Some(Cached::Thumbnail(bytes));
        }
        tokio::fs::try_exists(self.no_preview_path(id))
            .await
            .ok()
            .filter(|exists| *exists)
            .map(|_| Cached::NoPreview)
    }

    /// The JPEG thumbnail of download `id` whose image is `source`, or
    /// `None` when it cannot be previewed (serve [`placeholder_png`]).
    pub async fn thumbnail(&self, id: i64, source: PathBuf) -> Option<Vec<u8>> {
        let cached = match self.cached(id).await {
            Some(cached) => cached,
            None => {
                let _permit = self.decoding.acquire().await.ok()?;
                // Another request may have made it while this one waited.
                match self.cached(id).await {
                    Some(cached) => cached,
                    None => self.make(id, source).await,
                }
            }
        };
        match cached {
            Cached::Thumbnail(bytes) => Some(bytes),
            Cached::NoPreview => None,
        }
    }

    async fn make(&self, id: i64, source: PathBuf) -> Cached {
        let target = self.jpeg_path(id);
        let made = tokio::task::spawn_blocking(move || make_thumbnail(&source, &target)).await;
        match made {
            Ok(Ok(bytes)) => Cached::Thumbnail(bytes),
            Ok(Err(err)) => {
                tracing::debug!(target: "mediadl_server::thumbnail", id, error = %err, "no preview");
                if err.is_lasting() {
                    let marker = self.no_preview_path(id);
                    let _ =
                        tokio::task::spawn_blocking(move || write_atomically(&marker, b"")).await;
                }
                Cached::NoPreview
            }
            Err(err) => {
                tracing::warn!(target: "mediadl_server::thumbnail", id, error = %err, "thumbnail task failed");
                Cached::NoPreview
            }
        }
    }
}

#[async_trait]
impl DerivedMedia for Thumbnailer {
    /// Removes what is cached for download `id` (when its file is deleted).
    async fn forget(&self, id: i64) {
        for path in [self.jpeg_path(id), self.no_preview_path(id)] {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
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
    fn images_shrink() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("big.png");
        RgbImage::from_pixel(1000, 500, Rgb([200, 10, 10]))
            .save(&source)
            .unwrap();
        let cached = dir.path().join("thumbs/1.jpg");
        let bytes = make_thumbnail(&source, &cached).unwrap();
        let small = image::load_from_memory(&bytes).unwrap();
        assert_eq!((small.width(), small.height()), (320, 160));
        assert_eq!(std::fs::read(&cached).unwrap(), bytes);
    }

    /// A PNG whose header declares `width` x `height` but carries no pixels.
    fn declared_png(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &[][..]), (b"IEND", &[][..])] {
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(data);
            png.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
            png.extend_from_slice(&chunk);
            png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
        }
        png
    }

    #[test]
    fn a_huge_declared_size_is_refused_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("huge.png");
        std::fs::write(&source, declared_png(30_000, 30_000)).unwrap();
        let err = make_thumbnail(&source, &dir.path().join("t.jpg")).unwrap_err();
        assert!(
            matches!(
                err,
                ThumbnailError::TooLarge {
                    width: 30_000,
                    height: 30_000
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn outcomes_are_cached_including_no_preview() {
        let dir = tempfile::tempdir().unwrap();
        let thumbnails = Thumbnailer::new(dir.path().join("thumbs"), 1);
        let image = dir.path().join("a.png");
        RgbImage::from_pixel(64, 64, Rgb([0, 0, 255]))
            .save(&image)
            .unwrap();
        let first = thumbnails.thumbnail(1, image.clone()).await.unwrap();
        std::fs::remove_file(&image).unwrap();
        assert_eq!(
            thumbnails.thumbnail(1, image.clone()).await.unwrap(),
            first,
            "served from the cache"
        );

        let broken = dir.path().join("b.png");
        std::fs::write(&broken, declared_png(30_000, 30_000)).unwrap();
        assert!(thumbnails.thumbnail(2, broken.clone()).await.is_none());
        assert!(
            dir.path().join("thumbs/2.none").exists(),
            "the refusal is cached"
        );
        // Even a decodable image under that id now stays unpreviewed: nothing is decoded again.
        RgbImage::from_pixel(8, 8, Rgb([0, 0, 0]))
            .save(&broken)
            .unwrap();
        assert!(thumbnails.thumbnail(2, broken).await.is_none());

        thumbnails.forget(1).await;
        thumbnails.forget(2).await;
        assert!(!dir.path().join("thumbs/1.jpg").exists());
        assert!(!dir.path().join("thumbs/2.none").exists());
    }

    #[test]
    fn non_images_fail_and_placeholder_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("clip.mp4");
        std::fs::write(&source, b"not an image at all").unwrap();
        assert!(make_thumbnail(&source, &dir.path().join("t.jpg")).is_err());
        let png = image::load_from_memory(placeholder_png()).unwrap();
        assert_eq!(png.width(), THUMBNAIL_SIZE);
    }
}
