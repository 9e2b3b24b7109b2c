//! Pagination shared by the endpoints: the `lastSeenDeviceId` walk ([`follow_cursor`]
//! over [`CursorPage`]s, checked by [`Cursor`]) that the campaign report and the
//! device-details chunks follow, and the [`MAX_PAGES`] bound. The streams themselves
//! are `Client` methods beside their endpoint in `endpoints/`; provisioning history
//! pages by time, so its pager is in `endpoints/provisioning.rs`. This module depends
//! on neither `client` nor any endpoint.
//!
//! A broken upstream must never make a stream hang or loop: a page that does not
//! advance its cursor, or says `hasMoreData` with nothing in it, ends the stream with
//! [`UpstreamError::Pagination`], and [`MAX_PAGES`] bounds any stream as a last resort.
//! Checks run *before* a page's items are yielded, so a repeated page never shows up
//! as duplicates downstream.

use std::cmp::Ordering;

use async_stream::try_stream;
use futures::stream::Stream;

use crate::error::{Endpoint, UpstreamError};

/// Most pages one stream will fetch (100 million campaign devices, 50 million
/// provisioning events): far past any real report, small enough to end a runaway.
pub(crate) const MAX_PAGES: u64 = 100_000;

/// A [`UpstreamError::Pagination`] of `endpoint`.
pub(crate) fn pagination(endpoint: Endpoint, reason: impl Into<String>) -> UpstreamError {
    UpstreamError::Pagination {
        endpoint,
        reason: reason.into(),
    }
}

/// Orders device ids the way the upstream pages them: numerically for digit
/// strings (so `"0"` sorts first and leading zeros do not matter), else as text.
fn compare_ids(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        let a = a.trim_start_matches('0');
        let b = b.trim_start_matches('0');
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

/// The `lastSeenDeviceId` cursor of one paginated report.
#[derive(Debug)]
pub(crate) struct Cursor {
    endpoint: Endpoint,
    last_seen: Option<String>,
    pages: u64,
}

impl Cursor {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            last_seen: None,
            pages: 0,
        }
    }

    /// The cursor for the next request (`None` = first page, sent as `0`).
    pub(crate) fn last_seen(&self) -> Option<&str> {
        self.last_seen.as_deref()
    }

    /// Checks one page against the request it answered; `Ok(true)` means fetch more.
    /// `reported` is the page's `lastSeenDeviceId`, `last_item` its last device id
    /// (used when the upstream omits the cursor).
    pub(crate) fn advance(
        &mut self,
        has_more: bool,
        reported: Option<&str>,
        last_item: Option<&str>,
        len: usize,
    ) -> Result<bool, UpstreamError> {
        self.pages += 1;
        if !has_more {
            return Ok(false);
        }
        if len == 0 {
            return Err(pagination(self.endpoint, "hasMoreData with an empty page"));
        }
        if self.pages >= MAX_PAGES {
            return Err(pagination(
                self.endpoint,
                format!("more than {MAX_PAGES} pages"),
            ));
        }
        let Some(next) = reported.or(last_item) else {
            return Err(pagination(
                self.endpoint,
                "hasMoreData without a lastSeenDeviceId",
            ));
        };
        let current = self.last_seen.as_deref().unwrap_or("0");
        // Devices come in ascending id order, so the cursor must strictly grow; this
        // also rules out cycles, not only a repeated cursor.
        if compare_ids(next, current) != Ordering::Greater {
            return Err(pagination(
                self.endpoint,
                format!("lastSeenDeviceId {next} does not advance past {current}"),
            ));
        }
        self.last_seen = Some(next.to_owned());
        Ok(true)
    }
}

/// One page of a `lastSeenDeviceId` report, as [`follow_cursor`] reads it.
pub(crate) struct CursorPage<T> {
    /// The page's `hasMoreData`.
    pub(crate) has_more: bool,
    /// The page's `lastSeenDeviceId`.
    pub(crate) reported: Option<String>,
    pub(crate) items: Vec<T>,
}

/// Every item of one `lastSeenDeviceId` report, page after page: `fetch(last_seen)`
/// asks for the page after a cursor (`None` = the first), `id` is an item's device id
/// (the cursor when the upstream omits one). Each page passes [`Cursor::advance`]
/// before its items are yielded; the first error ends the stream.
pub(crate) fn follow_cursor<'a, T, F, Fut>(
    endpoint: Endpoint,
    id: fn(&T) -> &str,
    fetch: F,
) -> impl Stream<Item = Result<T, UpstreamError>> + Send + 'a
where
    T: Send + 'a,
    F: Fn(Option<String>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<CursorPage<T>, UpstreamError>> + Send + 'a,
{
    try_stream! {
        let mut cursor = Cursor::new(endpoint);
        loop {
            let page = fetch(cursor.last_seen().map(str::to_owned)).await?;
            let more = cursor.advance(
                page.has_more,
                page.reported.as_deref(),
                page.items.last().map(id),
                page.items.len(),
            )?;
            for item in page.items {
                yield item;
            }
            if !more {
                break;
            }
        }
    }
}

#[cfg(test)]
#[path = "paging_tests.rs"]
mod tests;
