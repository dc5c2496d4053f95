//! An image's bytes → upright RGB pixels, or the reason it cannot be read.

use std::io::Cursor;

use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// How much an image may ask for before it is decoded.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Width × height above which an image is refused from its header (no decode).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 24_000_000,
        }
    }
}

/// Why an image cannot be analysed. The message is shown to people and stored with the result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not an image Vigía can read (JPEG, PNG, GIF or WebP expected)")]
    UnknownFormat,
    #[error("the file is {actual} but its name says .{extension}")]
    NameMismatch { actual: String, extension: String },
    #[error("image too large: {width}×{height} ({megapixels} MP) exceeds {limit_mp} MP")]
    TooLarge {
        width: u32,
        height: u32,
        megapixels: u64,
        limit_mp: u64,
    },
    #[error("the image is damaged or truncated: {0}")]
    Corrupt(String),
}

/// Decoded, upright pixels.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    /// What the content really is (from its magic bytes), e.g. `image/jpeg`.
    pub mime: &'static str,
    /// Whether an EXIF orientation other than "normal" was applied.
    pub rotated: bool,
}

fn mime_of(format: ImageFormat) -> Option<&'static str> {
    Some(match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::Gif => "image/gif",
        ImageFormat::WebP => "image/webp",
        _ => return None,
    })
}

fn extension_matches(format: ImageFormat, extension: &str) -> bool {
    let ext = extension.to_ascii_lowercase();
    match format {
        ImageFormat::Jpeg => matches!(ext.as_str(), "jpg" | "jpeg" | "jpe" | "jfif"),
        ImageFormat::Png => ext == "png",
        ImageFormat::Gif => ext == "gif",
        ImageFormat::WebP => ext == "webp",
        _ => false,
    }
}

/// The image type of `bytes` from its magic bytes, when it is one Vigía reads.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    image::guess_format(bytes).ok().and_then(mime_of)
}

/// Decodes `bytes`. When `file_name` has an image extension, the content must be of that type
/// (a PNG named `.jpg` is refused: the uploader's claim and the file disagree).
pub fn decode(
    bytes: &[u8],
    file_name: Option<&str>,
    limits: DecodeLimits,
) -> Result<DecodedImage, DecodeError> {
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    let mime = mime_of(format).ok_or(DecodeError::UnknownFormat)?;
    if let Some(extension) = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext)
        .filter(|ext| {
            ["jpg", "jpeg", "jpe", "jfif", "png", "gif", "webp"]
                .contains(&ext.to_ascii_lowercase().as_str())
        })
        && !extension_matches(format, extension)
    {
        return Err(DecodeError::NameMismatch {
            actual: mime.to_owned(),
            extension: extension.to_owned(),
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(DecodeError::Corrupt(
            "the JPEG ends before its end-of-image marker".to_owned(),
        ));
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            megapixels: pixels.div_ceil(1_000_000),
            limit_mp: limits.max_pixels / 1_000_000,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let rotated = orientation != image::metadata::Orientation::NoTransforms;
    image.apply_orientation(orientation);
    Ok(DecodedImage {
        rgb: image.into_rgb8(),
        mime,
        rotated,
    })
}

/// Whether a JPEG's end-of-image marker (`FF D9`) follows its last start-of-scan (`FF DA`):
/// the decoder fills a truncated file's missing rows with grey instead of failing.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| {
        bytes
            .windows(2)
            .rposition(|w| w[0] == 0xFF && w[1] == marker)
    };
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).expect("encode");
        out.into_inner()
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(width, height, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).expect("encode");
        out.into_inner()
    }

    #[test]
    fn a_jpeg_decodes_to_its_pixels() {
        let decoded =
            decode(&jpeg(64, 48), Some("a.jpg"), DecodeLimits::default()).expect("decodes");
        assert_eq!(decoded.rgb.dimensions(), (64, 48));
        assert_eq!(decoded.mime, "image/jpeg");
        assert!(!decoded.rotated);
    }

    #[test]
    fn a_png_named_jpg_is_refused_naming_both() {
        let error =
            decode(&png(8, 8), Some("capture.jpg"), DecodeLimits::default()).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "the file is image/png but its name says .jpg"
        );
    }

    #[test]
    fn a_png_without_a_claiming_name_decodes() {
        assert!(decode(&png(8, 8), Some("capture"), DecodeLimits::default()).is_ok());
    }

    #[test]
    fn a_truncated_jpeg_is_reported_as_damaged() {
        let bytes = jpeg(320, 240);
        let result = decode(
            &bytes[..bytes.len() / 2],
            Some("a.jpg"),
            DecodeLimits::default(),
        );
        assert_eq!(
            result.err(),
            Some(DecodeError::Corrupt(
                "the JPEG ends before its end-of-image marker".into()
            ))
        );
    }

    #[test]
    fn text_is_not_an_image() {
        let error =
            decode(b"hello, I am not a picture", None, DecodeLimits::default()).expect_err("text");
        assert_eq!(error, DecodeError::UnknownFormat);
    }

    #[test]
    fn an_image_over_the_pixel_budget_is_refused_from_its_header() {
        // 8000×6250 = 50 MP announced by a header; refused before any pixel is decoded.
        let error = decode(&png(8000, 6250), None, DecodeLimits::default()).expect_err("too large");
        assert_eq!(
            error.to_string(),
            "image too large: 8000×6250 (50 MP) exceeds 24 MP"
        );
    }

    #[test]
    fn exif_orientation_6_turns_the_image_upright() {
        // A 40×20 JPEG with an APP1 Exif segment saying "rotate 90° clockwise".
        let plain = jpeg(40, 20);
        let exif: [u8; 36] = [
            0xFF, 0xE1, 0x00, 0x22, b'E', b'x', b'i', b'f', 0, 0, // APP1, segment length 34
            b'M', b'M', 0x00, 0x2A, 0, 0, 0, 8, // TIFF header, big endian, IFD at 8
            0, 1, // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation (SHORT) = 6
            0, 0, 0, 0, // no next IFD
        ];
        let mut bytes = plain[..2].to_vec();
        bytes.extend_from_slice(&exif);
        bytes.extend_from_slice(&plain[2..]);
        let decoded = decode(&bytes, None, DecodeLimits::default()).expect("decodes");
        assert!(decoded.rotated);
        assert_eq!(decoded.rgb.dimensions(), (20, 40));
    }
}
