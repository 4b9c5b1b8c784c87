//! Keyset paging shared by the lists (users, audit, tenants, messages):
//! limits and opaque cursors.
//!
//! A cursor is base64url of `kind:key`, where `key` is the last row's sort
//! key. The kind ties a cursor to the kind of list (and search) that made it,
//! so a cursor pasted into another list is refused rather than misread.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// One page and the cursor of the next, if there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The requested page size: 1..=200, 50 when absent.
pub fn limit(requested: Option<u32>) -> AppResult<u32> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(AppError::validation("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

pub fn encode(kind: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{key}"))
}

fn invalid() -> AppError {
    AppError::bad_request(
        crate::error::ErrorCode::InvalidCursor,
        "the cursor is malformed or belongs to another list",
    )
}

/// The key of a cursor of `kind`; 400 `invalid_cursor` otherwise.
pub fn decode(kind: &str, cursor: &str) -> AppResult<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (k, key) = text.split_once(':').ok_or_else(invalid)?;
    if k != kind || key.is_empty() {
        return Err(invalid());
    }
    Ok(key.to_string())
}

pub fn decode_uuid(kind: &str, cursor: &str) -> AppResult<uuid::Uuid> {
    uuid::Uuid::parse_str(&decode(kind, cursor)?).map_err(|_| invalid())
}

/// Cuts a page fetched with one row too many: the extra row only says
/// that a next page exists; the cursor is the last row kept.
pub fn page<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(key) } else { None };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_list() {
        let c = encode("u", "0190a0b0-0000-7000-8000-000000000001");
        assert_eq!(decode("u", &c).unwrap(), "0190a0b0-0000-7000-8000-000000000001");
        assert!(decode("a", &c).is_err());
        assert!(decode("u", "!!!").is_err());
        assert!(decode("u", &encode("u", "")).is_err());
        assert!(decode_uuid("u", &encode("u", "nope")).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some(200)).unwrap(), 200);
        assert!(limit(Some(201)).is_err());
        assert!(limit(Some(0)).is_err());
    }

    #[test]
    fn pages_know_whether_more_follow() {
        let p = page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((p.items, p.next_cursor), (vec![1, 2], Some("2".to_string())));
        let p = page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
    }
}
