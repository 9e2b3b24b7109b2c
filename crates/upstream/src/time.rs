//! Timestamp parsing: every shape the upstream sends becomes one UTC instant.
//!
//! ThingSpace mixes at least four shapes, sometimes within one response:
//!
//! | shape | example | source |
//! | --- | --- | --- |
//! | RFC 3339, UTC | `2020-10-22T19:35:07.753Z` | check-ins, campaign reports |
//! | Go's `time.Time.String()` | `2022-01-26 03:45:01.608 +0000 UTC` | device details, upgrades |
//! | RFC 3339 with offset | `2015-12-17T13:56:13-05:00` | provisioning history |
//! | date only | `2022-01-25` | upgrade `startDate` |
//!
//! A small hand-written scanner handles them (and their near relatives: a space
//! instead of `T`, 1 to 9 fractional digits, `+hhmm`/`+hh:mm`/`+hh` offsets, Go's zone
//! abbreviation and its ` m=+0.000` monotonic-clock suffix) rather than a cascade of
//! chrono format strings: chrono's `%.f` and `%z` each accept only some of these
//! spellings, and one scanner makes the accepted grammar explicit in one place.
//!
//! Decisions:
//! - The numeric offset is authoritative; a Go zone abbreviation after it (`EST`,
//!   `UTC`, `+03`) is ignored, because abbreviations are ambiguous (`IST`, `CST`).
//! - A bare abbreviation without an offset is accepted only for `UTC`/`GMT`.
//! - A date-time with no zone at all is taken as UTC: every ThingSpace example is
//!   UTC and Go services print zone-less layouts from UTC clocks.
//! - More than 9 fractional digits are truncated to nanoseconds, not rejected.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// One UTC instant; every timestamp shape the upstream sends becomes this.
pub type Timestamp = DateTime<Utc>;

/// Parses `2020-10-22T19:35:07.753Z`, `2022-01-26 03:45:01.608 +0000 UTC`,
/// `2015-12-17T13:56:13-05:00` and the date-only `2022-01-25` (midnight UTC).
/// `None` for anything else (callers decide whether that is an error).
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = strip_monotonic(s.trim());
    let (date, rest) = scan_date(s)?;
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, rest) = scan_time(rest)?;
    let offset = scan_zone(rest)?;
    offset
        .from_local_datetime(&NaiveDateTime::new(date, time))
        .single()
        .map(|local| local.with_timezone(&Utc))
}

/// Parses a `YYYY-MM-DD` date, also accepting a full timestamp (its UTC date).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let trimmed = s.trim();
    match scan_date(trimmed) {
        Some((date, "")) => Some(date),
        _ => parse_timestamp(trimmed).map(|t| t.date_naive()),
    }
}

/// Go appends the monotonic clock reading (` m=+0.000012345`) when a `time.Time`
/// taken from `time.Now()` is printed; it carries no wall-clock information.
fn strip_monotonic(s: &str) -> &str {
    match s.rfind(" m=") {
        Some(at) => {
            let tail = &s[at + 3..];
            let number = tail.strip_prefix(['+', '-']).unwrap_or(tail);
            let well_formed =
                !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if well_formed { s[..at].trim_end() } else { s }
        }
        None => s,
    }
}

/// Exactly `n` ASCII digits at the start of `s`, as a number, and the rest.
fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

fn expect(s: &str, c: char) -> Option<&str> {
    s.strip_prefix(c)
}

/// `YYYY-MM-DD` at the start of `s`.
fn scan_date(s: &str) -> Option<(NaiveDate, &str)> {
    let (year, s) = digits(s, 4)?;
    let (month, s) = digits(expect(s, '-')?, 2)?;
    let (day, s) = digits(expect(s, '-')?, 2)?;
    let year = i32::try_from(year).ok()?;
    Some((NaiveDate::from_ymd_opt(year, month, day)?, s))
}

/// `hh:mm:ss[.fraction]` at the start of `s`. A leap second (`:60`) is kept the
/// way chrono represents it (second 59 with nanoseconds past one billion).
fn scan_time(s: &str) -> Option<(NaiveTime, &str)> {
    let (hour, s) = digits(s, 2)?;
    let (minute, s) = digits(expect(s, ':')?, 2)?;
    let (second, mut s) = digits(expect(s, ':')?, 2)?;
    let mut nanos = 0u32;
    if let Some(frac) = s.strip_prefix(['.', ',']) {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        // Keep at most nanosecond precision; pad shorter fractions (`.67` = 670 ms).
        for (i, b) in frac
            .bytes()
            .take(9)
            .take_while(u8::is_ascii_digit)
            .enumerate()
        {
            nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
        }
        s = &frac[len..];
    }
    let time = if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + nanos)?
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?
    };
    Some((time, s))
}

/// What follows the time: nothing, `Z`, a numeric offset optionally followed by a
/// zone abbreviation (Go), or a bare `UTC`/`GMT`.
fn scan_zone(s: &str) -> Option<FixedOffset> {
    let utc = FixedOffset::east_opt(0)?;
    let s = s.trim_start();
    if s.is_empty() || s == "Z" || s == "z" {
        return Some(utc);
    }
    if s.eq_ignore_ascii_case("UTC") || s.eq_ignore_ascii_case("GMT") {
        return Some(utc);
    }
    let (sign, s) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (hours, s) = digits(s, 2)?;
    let s = s.strip_prefix(':').unwrap_or(s);
    let (minutes, s) = match digits(s, 2) {
        Some((m, rest)) => (m, rest),
        None => (0, s),
    };
    if minutes >= 60 {
        return None;
    }
    let abbreviation = s.trim_start();
    if !(s.is_empty() || (s.len() > abbreviation.len() && is_abbreviation(abbreviation))) {
        return None;
    }
    let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    FixedOffset::east_opt(sign * seconds)
}

/// Go prints the zone's abbreviation (`UTC`, `EST`) or, for zones without one, a
/// numeric one (`+03`, `-0330`).
fn is_abbreviation(s: &str) -> bool {
    (1..=8).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{DateTime, SecondsFormat, Timelike};
    use proptest::prelude::*;

    use super::*;

    fn utc(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_four_documented_shapes() {
        assert_eq!(
            parse_timestamp("2020-10-22T19:35:07.753Z"),
            Some(utc("2020-10-22T19:35:07.753Z"))
        );
        assert_eq!(
            parse_timestamp("2022-01-26 03:45:01.608 +0000 UTC"),
            Some(utc("2022-01-26T03:45:01.608Z"))
        );
        assert_eq!(
            parse_timestamp("2015-12-17T13:56:13-05:00"),
            Some(utc("2015-12-17T18:56:13Z"))
        );
        assert_eq!(
            parse_timestamp("2022-01-25"),
            Some(utc("2022-01-25T00:00:00Z"))
        );
    }

    #[test]
    fn go_variants() {
        let want = Some(utc("2022-01-04T02:45:00.670Z"));
        assert_eq!(parse_timestamp("2022-01-04 02:45:00.67 +0000 UTC"), want);
        assert_eq!(
            parse_timestamp("2022-01-04 02:45:00.67 +0000 UTC m=+0.000123"),
            want
        );
        assert_eq!(parse_timestamp("2022-01-03 21:45:00.67 -0500 EST"), want);
        assert_eq!(parse_timestamp("2022-01-04 05:45:00.67 +0300 +03"), want);
        assert_eq!(
            parse_timestamp("2022-01-04 02:45:00 +0000 UTC"),
            Some(utc("2022-01-04T02:45:00Z"))
        );
        assert_eq!(
            parse_timestamp("2022-01-04 08:15:00.67 +05:30"),
            want,
            "colon offset after a space"
        );
    }

    #[test]
    fn near_relatives() {
        let want = Some(utc("2020-10-22T19:35:07.1Z"));
        assert_eq!(parse_timestamp("2020-10-22 19:35:07.1Z"), want);
        assert_eq!(parse_timestamp("  2020-10-22t19:35:07.100000000z "), want);
        assert_eq!(
            parse_timestamp("2020-10-22T19:35:07.1000000009Z"),
            want,
            "truncated"
        );
        assert_eq!(
            parse_timestamp("2020-10-22T19:35:07.1"),
            want,
            "zone-less is UTC"
        );
        assert_eq!(parse_timestamp("2020-10-22T19:35:07.1 UTC"), want);
        assert_eq!(parse_timestamp("2020-10-22T21:35:07.1+02"), want);
        assert_eq!(parse_timestamp("2020-10-22T21:35:07.1+0200"), want);
        assert_eq!(
            parse_timestamp("2016-12-31T23:59:60Z").map(|t| t.nanosecond()),
            Some(1_000_000_000),
            "leap second"
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "N/A",
            "2022",
            "2022-13-01",
            "2022-02-30",
            "2022-01-25T",
            "2022-01-25T25:00:00Z",
            "2022-01-25T10:00Z",
            "2022-01-25T10:00:00.Z",
            "2022-01-25T10:00:00 EST",
            "2022-01-25T10:00:00+25:00",
            "2022-01-25T10:00:00+05:60",
            "2022-01-25T10:00:00Zjunk",
            "2022-01-25T10:00:00 +0000 UTC extra",
            "1643168701",
            "2022-01-2é",
            "２０２２-01-25",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s:?}");
        }
    }

    #[test]
    fn dates() {
        let d = NaiveDate::from_ymd_opt(2022, 1, 25);
        assert_eq!(parse_date("2022-01-25"), d);
        assert_eq!(parse_date(" 2022-01-25 "), d);
        assert_eq!(parse_date("2022-01-25T23:00:00Z"), d);
        assert_eq!(
            parse_date("2022-01-25 20:00:00 -0500 EST"),
            NaiveDate::from_ymd_opt(2022, 1, 26)
        );
        assert_eq!(parse_date("N/A"), None);
        assert_eq!(parse_date("2022-01-32"), None);
    }

    /// Go's `.999999999` layout: trailing zeros trimmed, no dot for whole seconds.
    fn go_fraction(nanos: u32) -> String {
        if nanos == 0 {
            return String::new();
        }
        let digits = format!("{nanos:09}");
        format!(".{}", digits.trim_end_matches('0'))
    }

    fn instant() -> impl Strategy<Value = Timestamp> {
        // 1900-01-01 .. 2199-12-31, millisecond precision.
        (-2_208_988_800_000i64..7_258_032_000_000i64)
            .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
    }

    fn offset() -> impl Strategy<Value = FixedOffset> {
        (-(23 * 60 + 59)..=(23 * 60 + 59)).prop_map(|m: i32| FixedOffset::east_opt(m * 60).unwrap())
    }

    proptest! {
        #[test]
        fn rfc3339_utc_round_trips(t in instant(), trimmed in any::<bool>()) {
            let s = if trimmed {
                format!("{}{}Z", t.format("%Y-%m-%dT%H:%M:%S"), go_fraction(t.nanosecond()))
            } else {
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            };
            prop_assert_eq!(parse_timestamp(&s), Some(t), "{}", s);
        }

        #[test]
        fn go_default_round_trips(t in instant(), off in offset(), abbr in "(UTC|EST|CEST|\\+03|-0330)", mono in any::<bool>()) {
            let local = t.with_timezone(&off);
            let mut s = format!(
                "{}{} {} {}",
                local.format("%Y-%m-%d %H:%M:%S"),
                go_fraction(local.nanosecond()),
                local.format("%z"),
                abbr
            );
            if mono {
                s.push_str(" m=+3.141592653");
            }
            prop_assert_eq!(parse_timestamp(&s), Some(t), "{}", s);
        }

        #[test]
        fn rfc3339_offset_round_trips(t in instant(), off in offset(), space in any::<bool>()) {
            let mut s = t.with_timezone(&off).to_rfc3339_opts(SecondsFormat::Millis, false);
            if space {
                s = s.replacen('T', " ", 1);
            }
            prop_assert_eq!(parse_timestamp(&s), Some(t), "{}", s);
        }

        #[test]
        fn date_only_is_utc_midnight(t in instant()) {
            let s = t.format("%Y-%m-%d").to_string();
            let midnight = t.date_naive().and_time(NaiveTime::MIN).and_utc();
            prop_assert_eq!(parse_timestamp(&s), Some(midnight));
            prop_assert_eq!(parse_date(&s), Some(t.date_naive()));
        }

        #[test]
        fn any_fraction_length(secs in 0i64..4_102_444_800, nanos in 0u32..1_000_000_000, len in 1usize..=9) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let s = format!("{}.{}Z", t.format("%Y-%m-%dT%H:%M:%S"), &format!("{nanos:09}")[..len]);
            let kept = nanos / 10u32.pow(9 - len as u32) * 10u32.pow(9 - len as u32);
            prop_assert_eq!(parse_timestamp(&s), Some(t.with_nanosecond(kept).unwrap()), "{}", s);
        }

        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse_timestamp(&s);
            let _ = parse_date(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})? ?[-+Z]?[0-9:]{0,6} ?[A-Za-z+0-9]{0,5}( m=[-+]?[0-9.]{0,4})?") {
            let _ = parse_timestamp(&s);
            let _ = parse_date(&s);
        }
    }
}
