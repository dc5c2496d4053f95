//! What an uploaded file really is, from its first bytes: the file name and the declared
//! content type are the uploader's claims, the magic bytes are the file's.

use serde::{Deserialize, Serialize};

use crate::validation::FieldError;

/// How many leading bytes [`classify`] looks at; pass at least this many (or the whole file).
pub const SNIFF_PREFIX_LEN: usize = 512;

/// A file type Vigía accepts as an attachment. Travels as its MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllowedMedia {
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/gif")]
    Gif,
    #[serde(rename = "image/webp")]
    Webp,
    /// What iPhones take photos in.
    #[serde(rename = "image/heic")]
    Heic,
    #[serde(rename = "image/avif")]
    Avif,
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "video/mp4")]
    Mp4,
    /// What iPhones record video in (`.mov`).
    #[serde(rename = "video/quicktime")]
    QuickTime,
    #[serde(rename = "video/webm")]
    Webm,
    #[serde(rename = "video/x-matroska")]
    Matroska,
    /// UTF-8 text without NUL bytes.
    #[serde(rename = "text/plain")]
    Text,
}

/// The broad family of a media type, which decides how it is previewed and analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Document,
}

impl AllowedMedia {
    /// Every accepted type.
    pub const ALL: [AllowedMedia; 12] = [
        AllowedMedia::Jpeg,
        AllowedMedia::Png,
        AllowedMedia::Gif,
        AllowedMedia::Webp,
        AllowedMedia::Heic,
        AllowedMedia::Avif,
        AllowedMedia::Pdf,
        AllowedMedia::Mp4,
        AllowedMedia::QuickTime,
        AllowedMedia::Webm,
        AllowedMedia::Matroska,
        AllowedMedia::Text,
    ];

    /// The MIME type to store and serve the file with.
    pub fn mime(self) -> &'static str {
        match self {
            AllowedMedia::Jpeg => "image/jpeg",
            AllowedMedia::Png => "image/png",
            AllowedMedia::Gif => "image/gif",
            AllowedMedia::Webp => "image/webp",
            AllowedMedia::Heic => "image/heic",
            AllowedMedia::Avif => "image/avif",
            AllowedMedia::Pdf => "application/pdf",
            AllowedMedia::Mp4 => "video/mp4",
            AllowedMedia::QuickTime => "video/quicktime",
            AllowedMedia::Webm => "video/webm",
            AllowedMedia::Matroska => "video/x-matroska",
            AllowedMedia::Text => "text/plain",
        }
    }

    /// The extension to store and serve the file under, whatever the upload was called.
    pub fn extension(self) -> &'static str {
        match self {
            AllowedMedia::Jpeg => "jpg",
            AllowedMedia::Png => "png",
            AllowedMedia::Gif => "gif",
            AllowedMedia::Webp => "webp",
            AllowedMedia::Heic => "heic",
            AllowedMedia::Avif => "avif",
            AllowedMedia::Pdf => "pdf",
            AllowedMedia::Mp4 => "mp4",
            AllowedMedia::QuickTime => "mov",
            AllowedMedia::Webm => "webm",
            AllowedMedia::Matroska => "mkv",
            AllowedMedia::Text => "txt",
        }
    }

    /// Whether it is an image, a video or a document.
    pub fn kind(self) -> MediaKind {
        match self {
            AllowedMedia::Jpeg
            | AllowedMedia::Png
            | AllowedMedia::Gif
            | AllowedMedia::Webp
            | AllowedMedia::Heic
            | AllowedMedia::Avif => MediaKind::Image,
            AllowedMedia::Mp4
            | AllowedMedia::QuickTime
            | AllowedMedia::Webm
            | AllowedMedia::Matroska => MediaKind::Video,
            AllowedMedia::Pdf | AllowedMedia::Text => MediaKind::Document,
        }
    }

    /// The type with this MIME type, if it is accepted.
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.mime().eq_ignore_ascii_case(mime.trim()))
    }
}

/// A kind of program, refused whatever the upload claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Executable {
    /// `\x7fELF`: Linux and most Unix binaries.
    Elf,
    /// `MZ`: Windows and DOS programs and libraries.
    WindowsPe,
    /// Mach-O, thin or universal: macOS and iOS binaries (and Java classes, which share `CAFEBABE`).
    MachO,
    /// `#!`: a script for some interpreter.
    Script,
}

impl Executable {
    /// A phrase for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Executable::Elf => "an ELF (Linux) program",
            Executable::WindowsPe => "a Windows program",
            Executable::MachO => "a macOS program",
            Executable::Script => "a script (it starts with #!)",
        }
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SniffedType {
    Media(AllowedMedia),
    Executable(Executable),
}

/// Why an upload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is empty")]
    Empty,
    #[error("programs are not accepted as attachments, and this file is {}", .0.describe())]
    Executable(Executable),
    #[error(
        "this type of file is not accepted: attach a photo (JPEG, PNG, GIF, WebP, HEIC, AVIF), a video (MP4, MOV, WebM, MKV), a PDF or plain text"
    )]
    Unknown,
}

impl SniffError {
    /// The error as a field error (for a 422 naming the upload field).
    pub fn field_error(&self, field: &str) -> FieldError {
        FieldError::new(field, self.to_string())
    }
}

/// What `prefix` (the first bytes of a file) is, by its magic bytes; `None` when unknown.
/// Programs are recognised before anything else, so a script never passes for text.
pub fn sniff(prefix: &[u8]) -> Option<SniffedType> {
    if let Some(program) = sniff_executable(prefix) {
        return Some(SniffedType::Executable(program));
    }
    sniff_media(prefix).map(SniffedType::Media)
}

/// The accepted type of a file from its first bytes, or why it is refused. The file's name
/// plays no part: an ELF binary called `photo.jpg` is still refused as a program.
pub fn classify(prefix: &[u8]) -> Result<AllowedMedia, SniffError> {
    if prefix.is_empty() {
        return Err(SniffError::Empty);
    }
    match sniff(prefix) {
        Some(SniffedType::Media(media)) => Ok(media),
        Some(SniffedType::Executable(program)) => Err(SniffError::Executable(program)),
        None => Err(SniffError::Unknown),
    }
}

fn sniff_executable(p: &[u8]) -> Option<Executable> {
    const MACH_O: [[u8; 4]; 5] = [
        [0xFE, 0xED, 0xFA, 0xCE],
        [0xFE, 0xED, 0xFA, 0xCF],
        [0xCE, 0xFA, 0xED, 0xFE],
        [0xCF, 0xFA, 0xED, 0xFE],
        [0xCA, 0xFE, 0xBA, 0xBE],
    ];
    if p.starts_with(b"\x7fELF") {
        Some(Executable::Elf)
    } else if p.starts_with(b"MZ") {
        Some(Executable::WindowsPe)
    } else if MACH_O.iter().any(|magic| p.starts_with(magic)) {
        Some(Executable::MachO)
    } else if p.starts_with(b"#!") {
        Some(Executable::Script)
    } else {
        None
    }
}

fn sniff_media(p: &[u8]) -> Option<AllowedMedia> {
    if p.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(AllowedMedia::Jpeg)
    } else if p.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(AllowedMedia::Png)
    } else if p.starts_with(b"GIF87a") || p.starts_with(b"GIF89a") {
        Some(AllowedMedia::Gif)
    } else if p.starts_with(b"RIFF") && p.get(8..12) == Some(b"WEBP") {
        Some(AllowedMedia::Webp)
    } else if p.starts_with(b"%PDF-") {
        Some(AllowedMedia::Pdf)
    } else if p.get(4..8) == Some(b"ftyp") {
        sniff_iso_media(p)
    } else if p.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        sniff_matroska(p)
    } else if is_text(p) {
        Some(AllowedMedia::Text)
    } else {
        None
    }
}

/// ISO base media files (MP4, QuickTime, HEIF, AVIF) name their flavour in the `ftyp` box:
/// a major brand, then compatible brands. The first brand we know decides.
fn sniff_iso_media(p: &[u8]) -> Option<AllowedMedia> {
    let major = p.get(8..12)?;
    let declared = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
    let box_end = declared.clamp(12, p.len());
    let compatible = p.get(16..box_end).unwrap_or_default().chunks_exact(4);
    let brands: Vec<&[u8]> = std::iter::once(major).chain(compatible).collect();
    if matches!(major, b"M4A " | b"M4B " | b"M4P ") {
        return None; // audio only
    }
    let specific = brands.iter().find_map(|brand| match *brand {
        b"avif" | b"avis" => Some(AllowedMedia::Avif),
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs" => {
            Some(AllowedMedia::Heic)
        }
        b"qt  " => Some(AllowedMedia::QuickTime),
        b"isom" | b"iso2" | b"iso3" | b"iso4" | b"iso5" | b"iso6" | b"iso8" | b"iso9" | b"mp41"
        | b"mp42" | b"avc1" | b"M4V " | b"M4VH" | b"M4VP" | b"dash" | b"mmp4" | b"MSNV"
        | b"3gp4" | b"3gp5" | b"3gp6" | b"3gp7" | b"3g2a" | b"3g2b" | b"3g2c" => {
            Some(AllowedMedia::Mp4)
        }
        _ => None,
    });
    // `mif1` and `msf1` only say "some HEIF image (sequence)"; AVIF files carry them too.
    specific.or_else(|| {
        brands
            .iter()
            .any(|b| matches!(*b, b"mif1" | b"msf1"))
            .then_some(AllowedMedia::Heic)
    })
}

/// Matroska and WebM share the EBML header; its `DocType` element tells them apart.
fn sniff_matroska(p: &[u8]) -> Option<AllowedMedia> {
    let header = &p[..p.len().min(64)];
    let doc_type = header
        .windows(2)
        .position(|w| w == [0x42, 0x82])
        .and_then(|at| {
            let size = *header.get(at + 2)?;
            // A one-byte EBML size has its top bit set; longer sizes do not occur for doc types.
            let len = usize::from(size & 0x7F);
            (size & 0x80 != 0)
                .then(|| header.get(at + 3..at + 3 + len))
                .flatten()
        })?;
    match doc_type {
        b"webm" => Some(AllowedMedia::Webm),
        b"matroska" => Some(AllowedMedia::Matroska),
        _ => None,
    }
}

/// UTF-8 (a character cut off by the end of the prefix is fine) without NUL bytes or the
/// control characters that only binary files contain.
fn is_text(p: &[u8]) -> bool {
    let valid_utf8 = match std::str::from_utf8(p) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    };
    let binary_control = |b: &u8| matches!(b, 0x00..=0x08 | 0x0E..=0x1A | 0x1C..=0x1F | 0x7F);
    !p.is_empty() && valid_utf8 && !p.iter().any(binary_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut b = (size as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(major);
        b.extend_from_slice(&[0, 0, 0, 0]);
        compatible.iter().for_each(|c| b.extend_from_slice(*c));
        b.extend_from_slice(b"\0\0\0\x08free");
        b
    }

    fn ebml(doc_type: &[u8]) -> Vec<u8> {
        let mut b = vec![
            0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82,
        ];
        b.push(0x80 | doc_type.len() as u8);
        b.extend_from_slice(doc_type);
        b
    }

    #[test]
    fn images_documents_and_videos_are_recognised_by_their_magic_bytes() {
        let cases: Vec<(Vec<u8>, AllowedMedia)> = vec![
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec(), AllowedMedia::Jpeg),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), AllowedMedia::Png),
            (b"GIF89a\x01\0\x01\0".to_vec(), AllowedMedia::Gif),
            (b"RIFF\x24\0\0\0WEBPVP8 ".to_vec(), AllowedMedia::Webp),
            (b"%PDF-1.7\n%\xE2\xE3\xCF\xD3".to_vec(), AllowedMedia::Pdf),
            (
                ftyp(b"isom", &[b"isom", b"iso2", b"mp41"]),
                AllowedMedia::Mp4,
            ),
            (ftyp(b"qt  ", &[b"qt  "]), AllowedMedia::QuickTime),
            (ftyp(b"heic", &[b"mif1", b"heic"]), AllowedMedia::Heic),
            (ftyp(b"mif1", &[b"mif1", b"heic"]), AllowedMedia::Heic),
            (
                ftyp(b"avif", &[b"avif", b"mif1", b"miaf"]),
                AllowedMedia::Avif,
            ),
            (ftyp(b"XYZW", &[b"mp42"]), AllowedMedia::Mp4),
            (ebml(b"webm"), AllowedMedia::Webm),
            (ebml(b"matroska"), AllowedMedia::Matroska),
            (
                "Informe: la puerta no cierra.\r\n".as_bytes().to_vec(),
                AllowedMedia::Text,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                classify(&bytes),
                Ok(expected),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn an_elf_binary_named_like_a_photo_is_refused_as_a_program() {
        let upload_name = "foto_del_baño.jpg";
        let bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
        let error = classify(bytes).expect_err(upload_name);
        assert_eq!(error, SniffError::Executable(Executable::Elf));
        assert_eq!(
            error.field_error("file").to_string(),
            "file: programs are not accepted as attachments, and this file is an ELF (Linux) program"
        );
    }

    #[test]
    fn every_kind_of_program_is_refused_even_when_it_is_text() {
        let programs: [(&[u8], Executable); 5] = [
            (b"MZ\x90\0\x03\0\0\0", Executable::WindowsPe),
            (b"\xCF\xFA\xED\xFE\x07\0\0\x01", Executable::MachO),
            (b"\xCA\xFE\xBA\xBE\0\0\0\x02", Executable::MachO),
            (b"#!/bin/sh\nrm -rf /\n", Executable::Script),
            (b"\x7fELF", Executable::Elf),
        ];
        for (bytes, program) in programs {
            assert_eq!(sniff(bytes), Some(SniffedType::Executable(program)));
            assert_eq!(classify(bytes), Err(SniffError::Executable(program)));
        }
    }

    #[test]
    fn unknown_and_audio_files_are_refused() {
        let refused: [&[u8]; 6] = [
            b"PK\x03\x04\x14\0\0\0",
            b"RIFF\x24\0\0\0WAVEfmt ",
            &[0x00, 0x01, 0x02, 0x03],
            b"text with a \0 NUL",
            b"\xC3\x28 invalid utf-8",
            &[
                0x1A, 0x45, 0xDF, 0xA3, 0x42, 0x82, 0x84, b'a', b'b', b'c', b'd',
            ],
        ];
        for bytes in refused {
            assert_eq!(classify(bytes), Err(SniffError::Unknown), "{bytes:?}");
        }
        assert_eq!(
            classify(&ftyp(b"M4A ", &[b"M4A ", b"mp42", b"isom"])),
            Err(SniffError::Unknown)
        );
        assert_eq!(classify(&[]), Err(SniffError::Empty));
    }

    #[test]
    fn text_cut_in_the_middle_of_a_character_is_still_text() {
        let text = "Ñandú en el patio".as_bytes();
        assert_eq!(classify(&text[..text.len() - 1]), Ok(AllowedMedia::Text)); // ú cut in half
        assert_eq!(classify(&text[..2]), Ok(AllowedMedia::Text));
    }

    #[test]
    fn each_accepted_type_has_a_mime_type_and_an_extension() {
        for media in AllowedMedia::ALL {
            assert_eq!(AllowedMedia::from_mime(media.mime()), Some(media));
            let json = serde_json::to_string(&media).expect("serializes");
            assert_eq!(json, format!("\"{}\"", media.mime()));
            assert!(!media.extension().is_empty() && !media.extension().starts_with('.'));
        }
        assert_eq!(AllowedMedia::QuickTime.extension(), "mov");
        assert_eq!(AllowedMedia::Heic.kind(), MediaKind::Image);
        assert_eq!(AllowedMedia::from_mime("application/x-msdownload"), None);
    }
}
