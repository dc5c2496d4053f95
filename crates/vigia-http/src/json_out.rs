//! JSON written by hand, for the responses that dominate the server's CPU: a page of 50
//! incidents is about 33 KB of JSON, and through serde every one of its 1,500 keys is escaped
//! and every field goes through a generic call. A type implements [`WriteJson`] by writing its
//! fields in the order its `Serialize` derive would; tests compare the two byte for byte, so a
//! client cannot tell which produced a body.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use vigia_domain::Timestamp;

/// A value that writes itself as JSON, exactly as serde_json would serialize it.
pub trait WriteJson {
    fn write_json(&self, out: &mut JsonWriter<'_>);
}

/// Appends JSON to a buffer. Keys and punctuation are written as literal fragments
/// ([`raw`](Self::raw)); values through the typed methods, which escape and format the way
/// serde_json does.
pub struct JsonWriter<'a>(&'a mut Vec<u8>);

impl<'a> JsonWriter<'a> {
    pub fn new(buffer: &'a mut Vec<u8>) -> Self {
        Self(buffer)
    }

    /// A literal fragment: punctuation and keys, e.g. `,"title":`. Written as is.
    pub fn raw(&mut self, fragment: &str) {
        self.0.extend_from_slice(fragment.as_bytes());
    }

    pub fn null(&mut self) {
        self.raw("null");
    }

    pub fn bool(&mut self, value: bool) {
        self.raw(if value { "true" } else { "false" });
    }

    pub fn i64(&mut self, value: i64) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Finite numbers in their shortest round-trip form (`1.0`, `-33.45`, `1e+21`); NaN and the
    /// infinities, which JSON cannot express, as `null`.
    pub fn f64(&mut self, value: f64) {
        if value.is_finite() {
            self.0
                .extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
        } else {
            self.null();
        }
    }

    /// A string, quoted and escaped: `"` and `\`, and control characters (`\n`, `\t`, ...,
    /// others as `\u001f`). Everything else, non-ASCII included, is copied as is.
    pub fn str(&mut self, value: &str) {
        let out = &mut *self.0;
        let bytes = value.as_bytes();
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        let mut clean_from = 0;
        let mut i = 0;
        while i < bytes.len() {
            // Eight bytes at a time while none of them needs an escape.
            if let Some(chunk) = bytes.get(i..i + 8) {
                let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
                if !needs_escape(word) {
                    i += 8;
                    continue;
                }
            }
            let byte = bytes[i];
            let escape = ESCAPES[byte as usize];
            if escape != 0 {
                out.extend_from_slice(&bytes[clean_from..i]);
                write_escape(out, byte, escape);
                clean_from = i + 1;
            }
            i += 1;
        }
        out.extend_from_slice(&bytes[clean_from..]);
        out.push(b'"');
    }

    /// An RFC 3339 date-time string, as [`Timestamp`]'s `Serialize` writes it.
    pub fn timestamp(&mut self, value: Timestamp) {
        value.with_rfc3339(|text| self.str(text));
    }

    pub fn opt_i64(&mut self, value: Option<i64>) {
        match value {
            Some(v) => self.i64(v),
            None => self.null(),
        }
    }

    pub fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }

    pub fn opt_timestamp(&mut self, value: Option<Timestamp>) {
        match value {
            Some(v) => self.timestamp(v),
            None => self.null(),
        }
    }

    /// `[a,b,...]`.
    pub fn array<T: WriteJson>(&mut self, items: &[T]) {
        self.raw("[");
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.raw(",");
            }
            item.write_json(self);
        }
        self.raw("]");
    }
}

/// Whether any of the eight bytes of `word` is below 0x20, `"` or `\` (bit tricks from
/// "Bit Twiddling Hacks": a byte is zero in `x` iff its high bit survives `(x - 0x01..) & !x`).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * b'"' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    let has_quote = quote.wrapping_sub(ONES) & !quote;
    let has_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | has_quote | has_backslash) & HIGH != 0
}

/// For each byte: 0 if it is written as is, the letter of its short escape (`n` for `\n`), or
/// `u` for `\u00XX`. The same table as serde_json's.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

fn write_escape(out: &mut Vec<u8>, byte: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

// The buffer a worker thread encodes its next response in.
thread_local! {
    static NEXT_BODY: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Room a fresh body buffer gets beyond the size of the thread's last response.
const BODY_SLACK: usize = 1024;

/// A response body produced by `encode`, in a buffer sized like the thread's previous response
/// and handed to the response without a copy. Growing a fresh buffer by doubling copied a 33 KB
/// page of incidents about twice over; encoding in a reused buffer and copying out cost one
/// copy. The next buffer is allocated (not touched) at the size this one reached.
pub(crate) fn body<E>(encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Bytes, E> {
    let mut body = NEXT_BODY.take();
    body.clear();
    let encoded = encode(&mut body);
    NEXT_BODY.set(Vec::with_capacity(body.len() + BODY_SLACK));
    encoded.map(|()| Bytes::from(body))
}

/// A JSON response written by its [`WriteJson`] implementation (the counterpart of
/// [`crate::extract::Json`] for hand-written types).
#[derive(Debug)]
pub struct Written<T>(pub T);

impl<T: WriteJson> IntoResponse for Written<T> {
    fn into_response(self) -> Response {
        let body = body(|buffer| {
            self.0.write_json(&mut JsonWriter::new(buffer));
            Ok::<_, std::convert::Infallible>(())
        });
        let Ok(body) = body;
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn written(write: impl FnOnce(&mut JsonWriter<'_>)) -> String {
        let mut buffer = Vec::new();
        write(&mut JsonWriter::new(&mut buffer));
        String::from_utf8(buffer).expect("the writer produces UTF-8")
    }

    fn serde(value: impl serde::Serialize) -> String {
        serde_json::to_string(&value).expect("serializable")
    }

    #[test]
    fn every_single_character_is_escaped_as_serde_json_escapes_it() {
        for c in (0u32..0x200).chain([0x2028, 0x2029, 0xfeff, 0x1f600]) {
            let Some(c) = char::from_u32(c) else { continue };
            // Alone, and at every position of a chunk of eight.
            for at in 0..10 {
                let mut text: String = "abcdefghij".into();
                text.insert(at, c);
                assert_eq!(
                    written(|w| w.str(&text)),
                    serde(&text),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn random_strings_are_escaped_as_serde_json_escapes_them() {
        let alphabet: Vec<char> = "aé\"\\\n\t\r\u{1}\u{1f} ñ€😀/<>&'\u{7f}\u{8}\u{c}z0"
            .chars()
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..5_000 {
            let len = rng.random_range(0..40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            assert_eq!(written(|w| w.str(&text)), serde(&text), "{text:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for v in [0, 1, -1, 42, i64::MAX, i64::MIN, 1_000_000] {
            assert_eq!(written(|w| w.i64(v)), serde(v));
        }
        for v in [
            0.0,
            -0.0,
            1.0,
            -33.4489,
            -70.6693,
            1e21,
            1e-7,
            0.1 + 0.2,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(written(|w| w.f64(v)), serde(v), "{v}");
        }
    }

    #[test]
    fn timestamps_and_options_are_written_as_serde_json_writes_them() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        assert_eq!(written(|w| w.timestamp(t)), serde(t));
        assert_eq!(written(|w| w.opt_timestamp(None)), serde(None::<Timestamp>));
        assert_eq!(written(|w| w.opt_i64(Some(5))), serde(Some(5)));
        assert_eq!(written(|w| w.opt_str(None)), serde(None::<&str>));
        assert_eq!(written(|w| w.bool(true)), serde(true));
    }

    #[test]
    fn a_body_reuses_nothing_from_the_previous_one() {
        let first = body(|b| {
            b.extend_from_slice(b"first body");
            Ok::<_, ()>(())
        })
        .expect("infallible");
        let second = body(|b| {
            b.extend_from_slice(b"2");
            Ok::<_, ()>(())
        })
        .expect("infallible");
        assert_eq!(&first[..], b"first body");
        assert_eq!(&second[..], b"2");
    }
}
