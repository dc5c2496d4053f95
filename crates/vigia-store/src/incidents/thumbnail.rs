//! Thumbnails of attached images, within a memory budget. Decoding needs the whole bitmap in
//! memory (a 230 KB PNG of 9000×9000 pixels decodes to 243 MB), so an image is measured from
//! its header first: one above [`THUMBNAIL_MAX_PIXELS`] (or whose bitmap would exceed
//! [`MAX_DECODED_BYTES`]) is stored without a thumbnail, never decoded. And at most
//! [`THUMBNAIL_DECODES`] images are read back and decoded at a time, whatever the number of
//! uploads: the rest wait their turn. Decoding runs on as many threads of its own, long-lived,
//! so that what a decode frees stays with its thread for the next one (on tokio's blocking
//! pool, each new thread's allocator arena would keep a bitmap of its own).

use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use anyhow::Context;
use image::ImageDecoder;
use tokio::sync::Semaphore;
use vigia_domain::incidents::AllowedMedia;

use crate::objects::{ObjectKey, Objects};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_PX: u32 = 320;

/// The largest image, in pixels, that gets a thumbnail: 24 megapixels (6000×4000, a 24 MP
/// camera; phones take 12 MP). Larger images are kept, without a thumbnail.
pub const THUMBNAIL_MAX_PIXELS: u64 = 24_000_000;

/// The largest decoded bitmap: 24 MP at 4 bytes per pixel (a 16-bit or RGBA image of that
/// many pixels is over it, and gets no thumbnail).
pub const MAX_DECODED_BYTES: u64 = THUMBNAIL_MAX_PIXELS * 4;

/// Images decoded at the same time, in the whole process.
pub const THUMBNAIL_DECODES: usize = 2;

fn turns() -> Arc<Semaphore> {
    static TURNS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TURNS
        .get_or_init(|| Arc::new(Semaphore::new(THUMBNAIL_DECODES)))
        .clone()
}

type Job = Box<dyn FnOnce() + Send>;

/// The decoding threads' queue (never longer than the free turns).
fn decoders() -> &'static mpsc::Sender<Job> {
    static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..THUMBNAIL_DECODES {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vigia-thumbnail-{n}"))
                .spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a thumbnail thread");
            }
        }
        queue
    })
}

/// Reads the image at `key` back and makes its thumbnail on a decoding thread, once one of the
/// [`THUMBNAIL_DECODES`] turns is free (the turn is held until the decode ends, even if the
/// caller goes away). `None` when the image gets no thumbnail.
pub(super) async fn render(
    objects: &Objects,
    key: &ObjectKey,
    media: AllowedMedia,
) -> anyhow::Result<Option<Vec<u8>>> {
    let turn = turns().acquire_owned().await?;
    let bytes = objects
        .get(key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the stored image is missing"))?;
    let (done, made) = tokio::sync::oneshot::channel();
    decoders()
        .send(Box::new(move || {
            let thumb = thumbnail(media, &bytes);
            drop(bytes);
            drop(turn);
            let _ = done.send(thumb);
        }))
        .map_err(|_| anyhow::anyhow!("no thumbnail thread is running"))?;
    made.await?
}

/// A PNG thumbnail of an image at most [`THUMBNAIL_MAX_PX`] on its longest side; `None` for
/// other media, for images above the pixel budget, and for formats not decoded here (HEIC,
/// AVIF); an error for images that cannot be decoded. CPU-bound: call it on a blocking thread.
pub fn thumbnail(media: AllowedMedia, bytes: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let format = match media {
        AllowedMedia::Jpeg => image::ImageFormat::Jpeg,
        AllowedMedia::Png => image::ImageFormat::Png,
        AllowedMedia::Gif => image::ImageFormat::Gif,
        AllowedMedia::Webp => image::ImageFormat::WebP,
        _ => return Ok(None),
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    // The bitmap, and what the decoder needs beside it.
    limits.max_alloc = Some(MAX_DECODED_BYTES + 32 * 1024 * 1024);
    reader.limits(limits);
    // Reads the header only.
    let decoder = reader.into_decoder().context("cannot decode the image")?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > THUMBNAIL_MAX_PIXELS
        || decoder.total_bytes() > MAX_DECODED_BYTES
    {
        tracing::info!(
            width,
            height,
            "image above the thumbnail budget: no thumbnail"
        );
        return Ok(None);
    }
    let decoded = image::DynamicImage::from_decoder(decoder).context("cannot decode the image")?;
    let small = if decoded.width() <= THUMBNAIL_MAX_PX && decoded.height() <= THUMBNAIL_MAX_PX {
        decoded
    } else {
        decoded.thumbnail(THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX)
    };
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(small.to_rgba8())
        .write_to(Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode the thumbnail")?;
    Ok(Some(png))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(image)
            .write_to(Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    /// A PNG whose header says `width`×`height` RGB, followed by only one row of its pixels:
    /// what an image costs to decode shows in its first bytes.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut full = png(1, 1);
        // IHDR's width and height follow the 8-byte signature, the chunk length and its name.
        full[16..20].copy_from_slice(&width.to_be_bytes());
        full[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&full[12..29]);
        full[29..33].copy_from_slice(&crc.to_be_bytes());
        full
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn thumbnails_fit_in_320_pixels_and_keep_the_aspect_ratio() {
        let thumb = thumbnail(AllowedMedia::Png, &png(800, 400))
            .expect("thumbnail")
            .expect("an image");
        let decoded = image::load_from_memory(&thumb).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (320, 160));
        let small = thumbnail(AllowedMedia::Png, &png(20, 10))
            .expect("thumbnail")
            .expect("an image");
        let decoded = image::load_from_memory(&small).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (20, 10));
    }

    #[test]
    fn only_decodable_images_get_thumbnails() {
        assert_eq!(thumbnail(AllowedMedia::Pdf, b"%PDF-1.7").expect("ok"), None);
        assert!(thumbnail(AllowedMedia::Png, b"\x89PNG\r\n\x1a\nbroken").is_err());
        assert!(
            thumbnail(AllowedMedia::Png, &png_header(2000, 2000)).is_err(),
            "within the budget, a truncated image is decoded, and fails"
        );
    }

    #[test]
    fn an_image_above_the_pixel_budget_gets_no_thumbnail_and_is_never_decoded() {
        // 9000×9000 would be 243 MB decoded; its pixels are not even there to decode.
        assert_eq!(
            thumbnail(AllowedMedia::Png, &png_header(9000, 9000)).expect("not decoded"),
            None
        );
        assert_eq!(
            thumbnail(AllowedMedia::Png, &png_header(6001, 4000)).expect("not decoded"),
            None
        );
    }
}
