//! Memory under a storm: what a burst of logins or of large images costs the server, measured
//! on this test process (nextest runs each test in a process of its own, server included).

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use vigia_domain::users::Role;

use crate::attachments::{setup, upload};
use crate::helpers::{Backend, spawn_app};

const MB: u64 = 1024 * 1024;

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
}

/// Resident memory now, in bytes.
fn rss() -> u64 {
    status_field("VmRSS:")
}

/// The most resident memory since [`reset_peak`].
fn peak() -> u64 {
    status_field("VmHWM:")
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_leaves_the_servers_memory_where_it_was() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let user = app.user(Role::Reporter).await;
    let storm =
        |n: usize| join_all((0..n).map(|_| app.login(&user.email, "not-the-password-at-all")));
    // Warm up: the server's own first allocations.
    for reply in storm(2).await {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss();
    for reply in storm(32).await {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss();
    let grown = after.saturating_sub(before);
    // Argon2id takes 19 MiB per hash: 32 at once, each in memory of its own, left hundreds of
    // MB in the allocator's arenas.
    assert!(
        grown < 16 * MB,
        "32 failed logins grew the resident memory by {} MB ({} → {} MB)",
        grown / MB,
        before / MB,
        after / MB
    );
}

/// A black RGB PNG of `width`×`height`, written by hand so that a huge one costs little to make:
/// its pixels (all zero) are one deflate block of back-references.
fn black_png(width: u32, height: u32) -> Vec<u8> {
    let raw = u64::from(height) * (u64::from(width) * 3 + 1);
    let mut zlib = vec![0x78, 0x01];
    let mut bits = Bits::default();
    bits.put(0b11, 3); // the last block, fixed Huffman codes
    bits.code(0b0011_0000, 8); // literal 0
    let mut left = raw - 1;
    while left >= 258 {
        bits.code(0b1100_0101, 8); // length 258
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0b0011_0000, 8);
    }
    bits.code(0, 7); // end of block
    zlib.extend(bits.finish());
    let adler = ((raw % 65_521) << 16) | 1;
    zlib.extend_from_slice(&(adler as u32).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(png: &mut Vec<u8>, name: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(name);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let table: Vec<u32> = (0..256u32)
        .map(|n| {
            (0..8).fold(n, |c, _| {
                if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            })
        })
        .collect();
    !bytes.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// A deflate bit stream, least significant bit first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    count: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.count;
        self.count += count;
        while self.count >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.count -= 8;
        }
    }

    /// A Huffman code, which deflate writes most significant bit first.
    fn code(&mut self, code: u64, count: u32) {
        let reversed = (0..count).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, count);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

#[test]
fn the_hand_made_png_decodes_to_the_promised_pixels() {
    let image = image::load_from_memory(&black_png(301, 7)).expect("a valid PNG");
    assert_eq!((image.width(), image.height()), (301, 7));
    assert!(image.to_rgb8().pixels().all(|p| p.0 == [0, 0, 0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_above_the_pixel_budget_is_kept_without_a_thumbnail_and_never_decoded() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let s = setup(&app, "private").await;
    // 1.5 MB of PNG, 243 MB of pixels.
    let huge = black_png(9000, 9000);
    reset_peak();
    let before = rss();
    let reply = upload(
        &app,
        &s.reporter.token,
        s.incident,
        "grande.png",
        "image/png",
        &huge,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert!(reply.body["thumbnail_url"].is_null(), "{:?}", reply.body);
    let grown = peak().saturating_sub(before);
    assert!(
        grown < 64 * MB,
        "the upload took {} MB at its peak",
        grown / MB
    );
    let stored = app
        .client
        .get(format!(
            "{}{}",
            app.url,
            reply.body["url"].as_str().expect("url")
        ))
        .bearer_auth(&s.reporter.token)
        .send()
        .await
        .expect("download");
    assert_eq!(
        stored.bytes().await.expect("bytes").len(),
        huge.len(),
        "the image itself is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_storm_decodes_no_more_than_two_images_at_a_time() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let s = setup(&app, "private").await;
    // 27 MB of pixels each, within the budget: every one gets a thumbnail.
    let image = black_png(3000, 3000);
    let decoded = 3000 * 3000 * 3;
    reset_peak();
    let before = rss();
    let names: Vec<String> = (0..8).map(|i| format!("foto-{i}.png")).collect();
    let replies = join_all(names.iter().map(|name| {
        upload(
            &app,
            &s.reporter.token,
            s.incident,
            name,
            "image/png",
            &image,
        )
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert!(reply.body["thumbnail_url"].is_string(), "{:?}", reply.body);
    }
    let grown = peak().saturating_sub(before);
    assert!(
        grown < 4 * decoded,
        "8 uploads of {} MB of pixels took {} MB at their peak",
        decoded / MB,
        grown / MB
    );
}
