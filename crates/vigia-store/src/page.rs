//! Cursor pagination shared by every list.

use base64::Engine;
use serde::Serialize;

/// An opaque position in a list ordered by id: clients pass back what they were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    pub fn encode(self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{}", self.0))
    }

    /// `None` for anything this server did not produce.
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        text.strip_prefix("v1:")?.parse().ok().map(Self)
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
