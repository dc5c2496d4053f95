//! Cursor pagination shared by every list.

use serde::Serialize;

/// A position in a list ordered by id: clients pass back what they were given. Written as
/// exactly 16 lowercase hexadecimal digits (the id's 64 bits), so that the OpenAPI document
/// can describe every cursor the server accepts with one pattern ([`Cursor::PATTERN`]); any
/// string of that form is a position, anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    /// Every string [`Cursor::decode`] accepts, and only those.
    pub const PATTERN: &'static str = "^[0-9a-f]{16}$";

    pub fn encode(self) -> String {
        format!("{:016x}", self.0 as u64)
    }

    /// `None` for anything not of the form [`Cursor::encode`] writes.
    pub fn decode(raw: &str) -> Option<Self> {
        if raw.len() != 16 || !raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        u64::from_str_radix(raw, 16)
            .ok()
            .map(|bits| Self(bits as i64))
    }
}

/// One page of a list and where the next one starts.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only tells that more exist.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|last| Cursor(id(last)).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// The page size asked for, clamped to what the server allows.
pub fn clamp_limit(limit: Option<u32>) -> usize {
    limit.unwrap_or(50).clamp(1, 200) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(Cursor::decode(&Cursor(42).encode()), Some(Cursor(42)));
        assert_eq!(Cursor::decode("42"), None);
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode("+00000000000002a"), None);
        assert_eq!(Cursor::decode("000000000000002A"), None);
        assert_eq!(Cursor::decode("000000000000002a"), Some(Cursor(42)));
        assert_eq!(Cursor::decode(&Cursor(-1).encode()), Some(Cursor(-1)));
    }

    #[test]
    fn a_page_knows_whether_more_rows_follow() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(
            page.next_cursor.as_deref().and_then(Cursor::decode),
            Some(Cursor(2))
        );
        assert!(Page::from_rows(vec![1, 2], 2, |n| *n).next_cursor.is_none());
    }
}
