//! Images on a board, kept per room by the SHA-256 of their bytes (content-addressed: the same
//! image posted twice is kept once). What a board may hold, how its bytes are recognised, and
//! the hash that names it; the web endpoints are in `web/blobs.rs`, the storage in each backend.

use std::fmt;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// An image type a board may hold. SVG is not one: an SVG opened on its own runs its script
/// with the server's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/webp`.
    Webp,
    /// `image/gif`.
    Gif,
}

impl ImageType {
    /// Every type a board may hold.
    pub const ALL: [ImageType; 4] = [
        ImageType::Png,
        ImageType::Jpeg,
        ImageType::Webp,
        ImageType::Gif,
    ];

    /// The type a `Content-Type` value names (its parameters and case aside); `None` for any
    /// type outside [`ImageType::ALL`].
    pub fn from_content_type(value: &str) -> Option<ImageType> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        Self::ALL
            .into_iter()
            .find(|t| t.mime().eq_ignore_ascii_case(essence))
    }

    /// Its media type, as it is stored and served (never the client's own spelling).
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }

    /// Whether `bytes` begin as every image of this type does (its magic bytes). A browser
    /// told `nosniff` renders what it is told; this keeps what it is told true.
    pub fn begins(self, bytes: &[u8]) -> bool {
        match self {
            ImageType::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            ImageType::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            ImageType::Gif => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
            // RIFF, the container's length (any), WEBP.
            ImageType::Webp => {
                bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP"
            }
        }
    }

    /// The width and height the image's header gives, as a browser will decode it; `None`
    /// when the header is not where this type has it (the bytes are not such an image).
    pub fn size(self, bytes: &[u8]) -> Option<(u32, u32)> {
        let be16 = |i: usize| {
            Some(u32::from(u16::from_be_bytes([
                *bytes.get(i)?,
                *bytes.get(i + 1)?,
            ])))
        };
        let le16 = |i: usize| {
            Some(u32::from(u16::from_le_bytes([
                *bytes.get(i)?,
                *bytes.get(i + 1)?,
            ])))
        };
        let le24 = |i: usize| {
            Some(u32::from_le_bytes([
                *bytes.get(i)?,
                *bytes.get(i + 1)?,
                *bytes.get(i + 2)?,
                0,
            ]))
        };
        match self {
            // The first chunk is IHDR: width and height, 4 bytes each, big-endian.
            ImageType::Png => {
                if bytes.get(12..16)? != b"IHDR" {
                    return None;
                }
                let word =
                    |i: usize| Some(u32::from_be_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
                Some((word(16)?, word(20)?))
            }
            // The logical screen, little-endian.
            ImageType::Gif => Some((le16(6)?, le16(8)?)),
            ImageType::Webp => match bytes.get(12..16)? {
                b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
                b"VP8L" => {
                    let b = bytes.get(21..25)?;
                    let w = 1 + (u32::from(b[0]) | (u32::from(b[1] & 0x3f) << 8));
                    let h = 1
                        + ((u32::from(b[1]) >> 6)
                            | (u32::from(b[2]) << 2)
                            | (u32::from(b[3] & 0x0f) << 10));
                    Some((w, h))
                }
                b"VP8X" => Some((1 + le24(24)?, 1 + le24(27)?)),
                _ => None,
            },
            // The first start-of-frame segment, past the segments before it.
            ImageType::Jpeg => {
                let mut i = 2;
                loop {
                    if *bytes.get(i)? != 0xFF {
                        return None;
                    }
                    let marker = *bytes.get(i + 1)?;
                    match marker {
                        // Fill bytes.
                        0xFF => i += 1,
                        // Segments without a length.
                        0x01 | 0xD0..=0xD7 => i += 2,
                        0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                            return Some((be16(i + 7)?, be16(i + 5)?));
                        }
                        _ => i += 2 + usize::try_from(be16(i + 2)?).ok()?,
                    }
                }
            }
        }
    }

    /// The refusal of bytes declared as this type that do not begin as it does.
    pub fn not_this(self) -> &'static str {
        match self {
            ImageType::Png => "the bytes are not a PNG image (image/png)",
            ImageType::Jpeg => "the bytes are not a JPEG image (image/jpeg)",
            ImageType::Webp => "the bytes are not a WebP image (image/webp)",
            ImageType::Gif => "the bytes are not a GIF image (image/gif)",
        }
    }
}

/// The SHA-256 of an image's bytes is its name within its room; the protocol's type, so that
/// the ops that place an image and the endpoints that keep it name it alike.
pub use kokuban_protocol::BlobHash;

/// The hash of `bytes`.
pub fn hash_of(bytes: &[u8]) -> BlobHash {
    BlobHash(Sha256::digest(bytes).into())
}

/// An image of a room: its bytes, their type, and their hash. Built only from bytes whose hash
/// it holds and whose type they begin as (or read back from where such a one was stored).
#[derive(Clone)]
pub struct Blob {
    /// The SHA-256 of `bytes`.
    pub hash: BlobHash,
    /// Its type.
    pub kind: ImageType,
    /// The image.
    pub bytes: Bytes,
}

impl fmt::Debug for Blob {
    // Megabytes of image do not belong in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("hash", &self.hash)
            .field("kind", &self.kind)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// What became of an image handed to a room's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStored {
    /// Kept now, and counted in the room's budget.
    Stored,
    /// The room held these bytes already: nothing was written or counted again.
    Known,
    /// Kept, it would take the room's images past their budget: nothing was written.
    OverBudget,
    /// No such room (never created, or expired).
    NoRoom,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_the_sha256_in_lowercase_hex_and_reads_back_from_either_case() {
        let hash = hash_of(b"abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hash.to_string(), hex);
        assert_eq!(BlobHash::parse(hex).ok(), Some(hash));
        assert_eq!(BlobHash::parse(&hex.to_uppercase()).ok(), Some(hash));
        assert_eq!(BlobHash(hash.0), hash);
    }

    #[test]
    fn a_hash_of_another_length_or_with_other_characters_does_not_parse() {
        for bad in [
            "",
            "abc",
            &"a".repeat(63),
            &"a".repeat(65),
            &format!("{}g", "a".repeat(63)),
            &format!("{}é", "a".repeat(62)),
            &format!("+{}", "a".repeat(63)),
        ] {
            assert_eq!(BlobHash::parse(bad).ok(), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_four_raster_types_are_allowed_whatever_their_spelling() {
        assert_eq!(
            ImageType::from_content_type("image/png"),
            Some(ImageType::Png)
        );
        assert_eq!(
            ImageType::from_content_type(" IMAGE/JPEG ; q=1"),
            Some(ImageType::Jpeg)
        );
        for refused in ["image/svg+xml", "text/html", "image/png2", "", "image/*"] {
            assert_eq!(ImageType::from_content_type(refused), None, "{refused}");
        }
    }

    #[test]
    fn each_type_is_recognised_by_its_magic_bytes_only() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let gif = b"GIF89a\x01\0\x01\0";
        let webp = b"RIFF\x24\0\0\0WEBPVP8 ";
        let jpeg = b"\xFF\xD8\xFF\xE0\0\x10JFIF";
        assert!(ImageType::Png.begins(png));
        assert!(ImageType::Gif.begins(gif));
        assert!(ImageType::Gif.begins(b"GIF87a"));
        assert!(ImageType::Webp.begins(webp));
        assert!(ImageType::Jpeg.begins(jpeg));
        assert!(!ImageType::Png.begins(gif));
        assert!(!ImageType::Webp.begins(b"RIFF\x24\0\0\0WAVEfmt "));
        assert!(!ImageType::Webp.begins(b"RIFF"));
        assert!(!ImageType::Jpeg.begins(b"\xFF\xD8"));
        assert!(!ImageType::Png.begins(b""));
    }

    /// The sizes browsers will decode, read from each type's header.
    #[test]
    fn sizes_are_read_from_each_types_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(640u32.to_be_bytes());
        png.extend(480u32.to_be_bytes());
        assert_eq!(ImageType::Png.size(&png), Some((640, 480)));
        assert_eq!(ImageType::Png.size(&png[..20]), None);
        let gif = b"GIF89a\x80\x02\xe0\x01";
        assert_eq!(ImageType::Gif.size(gif), Some((640, 480)));
        // A JPEG: SOI, an APP0 segment of 16 bytes, then SOF0 (precision, height, width).
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        jpeg.extend([0; 14]);
        jpeg.extend([0xFF, 0xC0, 0, 17, 8, 0x01, 0xE0, 0x02, 0x80]);
        assert_eq!(ImageType::Jpeg.size(&jpeg), Some((640, 480)));
        assert_eq!(ImageType::Jpeg.size(&jpeg[..10]), None);
        // WebP, lossy and extended.
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        vp8.extend([0, 0, 0, 0x9d, 0x01, 0x2a]);
        vp8.extend(640u16.to_le_bytes());
        vp8.extend(480u16.to_le_bytes());
        assert_eq!(ImageType::Webp.size(&vp8), Some((640, 480)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        vp8x.extend([0x7f, 0x02, 0, 0xdf, 0x01, 0]);
        assert_eq!(ImageType::Webp.size(&vp8x), Some((640, 480)));
    }
}
