//! Cover art: a picture from a file's tags (or uploaded for an album or artist) becomes a few
//! JPEGs of set sizes, each stored as a content-addressed blob and served immutable.
//!
//! Decoding is bounded: at most [`SOURCE_BYTES_MAX`] of input, [`SOURCE_EDGE_MAX`] pixels a
//! side and [`DECODE_ALLOC_MAX`] bytes of decoder memory (the `image` crate enforces the
//! last two while it decodes, so a small file claiming a huge canvas is refused before the
//! canvas is allocated). The pictures are never upscaled: a 500-pixel cover gives 128, 300
//! and 500.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{ImageReader, Limits};

/// The sizes made (the longer side, in pixels), smallest first.
pub const EDGES: [u32; 4] = [128, 300, 600, 1200];
/// Largest picture accepted, in bytes.
pub const SOURCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest side accepted, in pixels.
pub const SOURCE_EDGE_MAX: u32 = 8192;
/// Most memory the decoder may allocate.
pub const DECODE_ALLOC_MAX: u64 = 256 * 1024 * 1024;
/// JPEG quality of the sizes made.
pub const JPEG_QUALITY: u8 = 85;

/// Why a picture was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArtworkError {
    /// More than [`SOURCE_BYTES_MAX`] bytes.
    #[error("pictures are at most {SOURCE_BYTES_MAX} bytes")]
    TooLarge,
    /// Not a JPEG, PNG, WebP, GIF or BMP this decoder reads, or damaged, or over the limits.
    #[error("not a picture this server reads (JPEG, PNG, WebP, GIF, BMP): {0}")]
    Unreadable(String),
}

/// One size of a picture: its longer side and the JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sized {
    /// Longer side, pixels.
    pub edge: u32,
    /// The JPEG.
    pub jpeg: Vec<u8>,
}

/// Decodes `source` and makes each of [`EDGES`] that is not larger than the picture (and the
/// picture's own size when it is smaller than the largest), as JPEGs, smallest first.
pub fn prepare(source: &[u8]) -> Result<Vec<Sized>, ArtworkError> {
    if source.len() > SOURCE_BYTES_MAX {
        return Err(ArtworkError::TooLarge);
    }
    let unreadable = |error: &dyn std::fmt::Display| ArtworkError::Unreadable(error.to_string());
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|error| unreadable(&error))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(SOURCE_EDGE_MAX);
    limits.max_image_height = Some(SOURCE_EDGE_MAX);
    limits.max_alloc = Some(DECODE_ALLOC_MAX);
    reader.limits(limits);
    let picture = reader.decode().map_err(|error| unreadable(&error))?;
    let (width, height) = (picture.width(), picture.height());
    if width == 0 || height == 0 {
        return Err(ArtworkError::Unreadable("the picture is empty".into()));
    }
    let longest = width.max(height);
    let mut edges: Vec<u32> = EDGES.iter().copied().filter(|&e| e < longest).collect();
    if edges.len() < EDGES.len() {
        edges.push(longest.min(EDGES[EDGES.len() - 1]));
    }
    let rgb = picture.to_rgb8();
    let mut sizes = Vec::with_capacity(edges.len());
    for edge in edges {
        let scaled = if edge == longest {
            rgb.clone()
        } else {
            let (w, h) = if width >= height {
                (
                    edge,
                    (u64::from(height) * u64::from(edge) / u64::from(width)).max(1) as u32,
                )
            } else {
                (
                    (u64::from(width) * u64::from(edge) / u64::from(height)).max(1) as u32,
                    edge,
                )
            };
            image::imageops::resize(&rgb, w, h, FilterType::CatmullRom)
        };
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
            .encode_image(&scaled)
            .map_err(|error| unreadable(&error))?;
        sizes.push(Sized { edge, jpeg });
    }
    Ok(sizes)
}

/// Whether `bytes` start as a JPEG does (what the image route checks before serving a blob,
/// so that an id naming an audio chunk is not served as a picture).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Vec::new();
        picture
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    fn dimensions(jpeg: &[u8]) -> (u32, u32) {
        let picture = image::load_from_memory(jpeg).unwrap();
        (picture.width(), picture.height())
    }

    #[test]
    fn a_large_picture_gives_every_size_keeping_its_shape() {
        let sizes = prepare(&png(1600, 800)).unwrap();
        let edges: Vec<u32> = sizes.iter().map(|sized| sized.edge).collect();
        assert_eq!(edges, EDGES);
        assert!(sizes.iter().all(|sized| is_jpeg(&sized.jpeg)));
        assert_eq!(dimensions(&sizes[1].jpeg), (300, 150));
        assert_eq!(dimensions(&sizes[3].jpeg), (1200, 600));
    }

    #[test]
    fn a_small_picture_is_not_upscaled() {
        let sizes = prepare(&png(200, 500)).unwrap();
        let edges: Vec<u32> = sizes.iter().map(|sized| sized.edge).collect();
        assert_eq!(edges, [128, 300, 500]);
        assert_eq!(dimensions(&sizes[2].jpeg), (200, 500));
        assert_eq!(dimensions(&sizes[0].jpeg), (51, 128));
    }

    #[test]
    fn garbage_and_bombs_are_refused() {
        assert!(matches!(
            prepare(b"not a picture"),
            Err(ArtworkError::Unreadable(_))
        ));
        let mut truncated = png(64, 64);
        truncated.truncate(truncated.len() / 2);
        assert!(prepare(&truncated).is_err());
        // A PNG header claiming 100000 x 100000 pixels: refused before allocating.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(prepare(&bomb).is_err());
        assert!(matches!(
            prepare(&vec![0; SOURCE_BYTES_MAX + 1]),
            Err(ArtworkError::TooLarge)
        ));
    }
}
