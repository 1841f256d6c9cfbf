//! Cover art: a picture from a file's tags (or uploaded for an album or artist) becomes a few
//! JPEGs of set sizes, each stored as a content-addressed blob and served immutable.
//!
//! Decoding is bounded: at most [`SOURCE_BYTES_MAX`] of input, [`SOURCE_EDGE_MAX`] pixels a
//! side and [`SOURCE_PIXELS_MAX`] in all, read from the header before anything is decoded (a
//! small file claiming a huge canvas is refused before the canvas, or a progressive JPEG's
//! coefficients, are allocated), and [`DECODE_ALLOC_MAX`] for the `image` crate's own
//! accounting. Each size is made from the next larger one, so the full picture is read once.
//! The pictures are never upscaled: a 500-pixel cover gives 128, 300 and 500.
//!
//! Stored pictures are blobs of [`IMAGE_MAGIC`] followed by the JPEG, so an id naming an
//! audio chunk (random-looking sealed bytes) can never be served as a picture.

use std::io::Cursor;

use image::{ImageReader, Limits};

/// The sizes made (the longer side, in pixels), smallest first.
pub const EDGES: [u32; 4] = [128, 300, 600, 1200];
/// Largest picture accepted, in bytes.
pub const SOURCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest side accepted, in pixels.
pub const SOURCE_EDGE_MAX: u32 = 8192;
/// Most pixels accepted (4096 x 4096): what bounds the decoder's working memory.
pub const SOURCE_PIXELS_MAX: u64 = 4096 * 4096;
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
/// picture's own size when it is smaller than the largest), as JPEGs, smallest first. The
/// picture is turned as its EXIF orientation says and laid on white where it is transparent.
/// A decoder that panics on a hostile file is an unreadable picture, not a failed request.
pub fn prepare(source: &[u8]) -> Result<Vec<Sized>, ArtworkError> {
    if source.len() > SOURCE_BYTES_MAX {
        return Err(ArtworkError::TooLarge);
    }
    std::panic::catch_unwind(|| prepare_checked(source)).unwrap_or_else(|_| {
        Err(ArtworkError::Unreadable(
            "the decoder failed on this file".into(),
        ))
    })
}

fn prepare_checked(source: &[u8]) -> Result<Vec<Sized>, ArtworkError> {
    use image::{DynamicImage, ImageDecoder};
    let unreadable = |error: &dyn std::fmt::Display| ArtworkError::Unreadable(error.to_string());
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|error| unreadable(&error))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(SOURCE_EDGE_MAX);
    limits.max_image_height = Some(SOURCE_EDGE_MAX);
    limits.max_alloc = Some(DECODE_ALLOC_MAX);
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(|error| unreadable(&error))?;
    // The picture itself counts against the decoder's budget too (as `decode` would do).
    limits
        .reserve(decoder.total_bytes())
        .map_err(|error| unreadable(&error))?;
    decoder
        .set_limits(limits)
        .map_err(|error| unreadable(&error))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ArtworkError::Unreadable("the picture is empty".into()));
    }
    // Decoders keep more than the pixels (a progressive JPEG keeps every coefficient), so
    // the area is bounded before decoding, not only the allocation of the result.
    if u64::from(width) * u64::from(height) > SOURCE_PIXELS_MAX {
        return Err(ArtworkError::Unreadable(format!(
            "{width} x {height} is more than {SOURCE_PIXELS_MAX} pixels"
        )));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|error| unreadable(&error))?;
    picture.apply_orientation(orientation);
    let rgb = if picture.color().has_alpha() {
        let rgba = picture.into_rgba8();
        image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0;
            let over_white =
                |c: u8| ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a))) / 255) as u8;
            image::Rgb([over_white(r), over_white(g), over_white(b)])
        })
    } else {
        picture.into_rgb8()
    };
    let (width, height) = rgb.dimensions();
    let longest = width.max(height);
    let mut edges: Vec<u32> = EDGES.iter().copied().filter(|&e| e < longest).collect();
    if edges.len() < EDGES.len() {
        edges.push(longest.min(EDGES[EDGES.len() - 1]));
    }
    // Largest first, each made from the one before: one pass over the full picture.
    // Each shape from the full picture's, so rounding does not build up.
    let shape = |edge: u32| {
        if width >= height {
            (
                edge,
                (u64::from(height) * u64::from(edge) / u64::from(width)).max(1) as u32,
            )
        } else {
            (
                (u64::from(width) * u64::from(edge) / u64::from(height)).max(1) as u32,
                edge,
            )
        }
    };
    let mut current = rgb;
    let mut sizes = Vec::with_capacity(edges.len());
    for &edge in edges.iter().rev() {
        if edge < current.width().max(current.height()) {
            let (new_w, new_h) = shape(edge);
            current = image::imageops::thumbnail(&current, new_w, new_h);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
            .encode_image(&current)
            .map_err(|error| unreadable(&error))?;
        sizes.push(Sized { edge, jpeg });
    }
    sizes.reverse();
    Ok(sizes)
}

/// What every stored picture blob starts with, before its JPEG.
pub const IMAGE_MAGIC: &[u8; 16] = b"chorus-image-v1\n";

/// A picture's blob: [`IMAGE_MAGIC`], then the JPEG.
pub fn to_blob(jpeg: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(IMAGE_MAGIC.len() + jpeg.len());
    blob.extend_from_slice(IMAGE_MAGIC);
    blob.extend_from_slice(jpeg);
    blob
}

/// The JPEG in a picture's blob, `None` for any other blob (an audio chunk, lyrics).
pub fn from_blob(blob: &[u8]) -> Option<&[u8]> {
    blob.strip_prefix(IMAGE_MAGIC.as_slice())
        .filter(|jpeg| is_jpeg(jpeg))
}

/// Whether `bytes` start as a JPEG does.
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
    fn transparency_is_laid_on_white_and_blobs_are_marked() {
        let picture = image::RgbaImage::from_pixel(10, 10, image::Rgba([0, 0, 0, 0]));
        let mut png = Vec::new();
        picture
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let sizes = prepare(&png).unwrap();
        let decoded = image::load_from_memory(&sizes[0].jpeg).unwrap().to_rgb8();
        assert!(decoded.get_pixel(5, 5).0.iter().all(|&c| c > 240));
        let blob = to_blob(&sizes[0].jpeg);
        assert_eq!(from_blob(&blob), Some(sizes[0].jpeg.as_slice()));
        assert_eq!(
            from_blob(&sizes[0].jpeg),
            None,
            "a bare JPEG is not a picture blob"
        );
        assert_eq!(from_blob(&[0xFF, 0xD8, 0xFF, 1]), None);
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
        // Within each side's limit, past the area: refused from the header.
        let wide = image::GrayImage::new(8000, 2200);
        let mut png = Vec::new();
        wide.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(matches!(prepare(&png), Err(ArtworkError::Unreadable(_))));
    }
}
