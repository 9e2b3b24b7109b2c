//! Simulated-data time: epoch milliseconds internally, and the four timestamp shapes
//! ThingSpace sends on the wire (see UPSTREAM.md), each used where the seed pages
//! show it.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

pub(crate) const SECOND_MS: i64 = 1_000;
pub(crate) const HOUR_MS: i64 = 3_600 * SECOND_MS;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// Epoch milliseconds of a UTC midnight. Invalid dates give 0 (only constants are
/// passed here).
pub(crate) fn ms_from_ymd(y: i32, m: u32, d: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map_or(0, |dt| dt.and_utc().timestamp_millis())
}

/// The instant the simulated data "ends": every generated event is before it. Fixed,
/// never the wall clock, so the same seed gives the same data on any day.
pub(crate) fn data_now_ms() -> i64 {
    ms_from_ymd(2024, 6, 1)
}

/// The earliest instant of any generated event.
pub(crate) fn data_start_ms() -> i64 {
    ms_from_ymd(2019, 1, 1)
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// Fraction digits as Go prints them: trailing zeros trimmed, none when zero.
fn go_fraction(ms: i64) -> String {
    let frac = ms.rem_euclid(1_000);
    if frac == 0 {
        return String::new();
    }
    let s = format!(".{frac:03}");
    s.trim_end_matches('0').to_string()
}

/// `2020-10-22T19:35:07.753Z` (check-in `timeCompleted`).
pub(crate) fn iso_millis_z(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `2022-10-05T21:05:01.19Z` / `2022-10-06T18:35:00Z` (campaign report times; Go's
/// RFC3339Nano with trailing zeros trimmed).
pub(crate) fn iso_trimmed_z(ms: i64) -> String {
    format!(
        "{}{}Z",
        utc(ms).format("%Y-%m-%dT%H:%M:%S"),
        go_fraction(ms)
    )
}

/// `2022-01-26 03:45:01.608 +0000 UTC` (Go's default `time.Time` format).
pub(crate) fn go_default(ms: i64) -> String {
    format!(
        "{}{} +0000 UTC",
        utc(ms).format("%Y-%m-%d %H:%M:%S"),
        go_fraction(ms)
    )
}

/// `2015-12-17T13:56:13-05:00` (provisioning `occurredAt`); offset 0 is written `Z`.
pub(crate) fn rfc3339_offset(ms: i64, offset_minutes: i32) -> String {
    let Some(offset) = FixedOffset::east_opt(offset_minutes * 60) else {
        return utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    };
    if offset_minutes == 0 {
        return utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    offset
        .from_utc_datetime(&utc(ms).naive_utc())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `2022-01-25` (upgrade-history `startDate`).
pub(crate) fn date_only(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d").to_string()
}

/// `06 Oct 22 18:05 UTC`, as the seed's human-readable reasons write dates.
pub(crate) fn reason_date(ms: i64) -> String {
    utc(ms).format("%d %b %y %H:%M UTC").to_string()
}

/// Parses a request timestamp: RFC 3339 (any offset), or a zone-less date-time or a
/// bare date taken as UTC. Returns epoch milliseconds.
pub(crate) fn parse_request_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(dt.and_utc().timestamp_millis());
    }
    if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z UTC") {
        return Some(dt.timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_seed_pages() {
        let t = parse_request_time("2020-10-22T19:35:07.753Z").unwrap_or_default();
        assert_eq!(iso_millis_z(t), "2020-10-22T19:35:07.753Z");
        let t = parse_request_time("2022-01-04T02:45:00.670Z").unwrap_or_default();
        assert_eq!(go_default(t), "2022-01-04 02:45:00.67 +0000 UTC");
        assert_eq!(iso_trimmed_z(t), "2022-01-04T02:45:00.67Z");
        assert_eq!(date_only(t), "2022-01-04");
        let t = parse_request_time("2015-12-17T13:56:13-05:00").unwrap_or_default();
        assert_eq!(rfc3339_offset(t, -300), "2015-12-17T13:56:13-05:00");
        assert_eq!(rfc3339_offset(t, 0), "2015-12-17T18:56:13Z");
        let t = parse_request_time("2022-10-06T18:35:00Z").unwrap_or_default();
        assert_eq!(iso_trimmed_z(t), "2022-10-06T18:35:00Z");
        assert_eq!(reason_date(t), "06 Oct 22 18:35 UTC");
        assert_eq!(
            parse_request_time("2022-01-26 03:45:01.608 +0000 UTC"),
            parse_request_time("2022-01-26T03:45:01.608Z")
        );
        assert_eq!(
            parse_request_time("2022-01-25"),
            Some(ms_from_ymd(2022, 1, 25))
        );
        assert_eq!(parse_request_time("yesterday"), None);
    }
}
