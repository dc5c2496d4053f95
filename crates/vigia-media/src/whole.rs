//! Whether a file that is still landing already holds a whole image, from its first and last
//! bytes only: a JPEG ends with its end-of-image marker, a PNG with its `IEND` chunk, a GIF
//! with its trailer, a WebP at the length its RIFF header announces. A file being written in
//! place (copied, uploaded in several steps) is analysed once it looks whole, not half-way.

/// Enough of a file's start to know its type and a WebP's announced length.
pub const HEAD_BYTES: usize = 12;
/// Enough of a file's end for every trailer checked.
pub const TAIL_BYTES: usize = 12;

/// What the ends of a file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    /// An image type whose end is where it should be.
    Yes,
    /// An image type that does not end yet (or an empty file): more bytes are coming, or it
    /// was cut short.
    No,
    /// Not a type known here: nothing can be said from its ends.
    Unknown,
}

/// `head`: the file's first bytes (up to [`HEAD_BYTES`]), `tail`: its last (up to
/// [`TAIL_BYTES`]), `len`: its size.
pub fn looks_whole(head: &[u8], tail: &[u8], len: u64) -> Whole {
    if len == 0 {
        return Whole::No;
    }
    let ends = |trailer: &[u8]| {
        if tail.ends_with(trailer) {
            Whole::Yes
        } else {
            Whole::No
        }
    };
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ends(&[0xFF, 0xD9])
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        ends(&[b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82])
    } else if head.starts_with(b"GIF8") {
        ends(&[0x3B])
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        let announced = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len >= u64::from(announced) + 8 {
            Whole::Yes
        } else {
            Whole::No
        }
    } else if len < HEAD_BYTES as u64 {
        // Too short to say what it will be.
        Whole::No
    } else {
        Whole::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(bytes: &[u8]) -> Whole {
        let head = &bytes[..bytes.len().min(HEAD_BYTES)];
        let tail = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        looks_whole(head, tail, bytes.len() as u64)
    }

    #[test]
    fn a_jpeg_or_png_cut_short_is_not_whole_and_the_full_one_is() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1];
        jpeg.extend_from_slice(&[7; 100]);
        assert_eq!(ends(&jpeg), Whole::No);
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(ends(&jpeg), Whole::Yes);

        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&[1; 50]);
        assert_eq!(ends(&png), Whole::No);
        png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
        assert_eq!(ends(&png), Whole::Yes);
    }

    #[test]
    fn a_webp_is_whole_at_the_length_its_header_announces() {
        let mut webp = b"RIFF".to_vec();
        webp.extend_from_slice(&20u32.to_le_bytes());
        webp.extend_from_slice(b"WEBPVP8 ");
        assert_eq!(ends(&webp), Whole::No);
        webp.extend_from_slice(&[0; 12]);
        assert_eq!(ends(&webp), Whole::Yes);
    }

    #[test]
    fn an_empty_file_is_not_whole_and_text_is_unknown() {
        assert_eq!(ends(b""), Whole::No);
        assert_eq!(ends(b"GIF89a...;"), Whole::Yes);
        assert_eq!(ends(b"hello, this is text"), Whole::Unknown);
    }
}
