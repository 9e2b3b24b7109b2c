//! Human-friendly units in the configuration: durations (`"30s"`, `"5m"`, via
//! humantime) and byte sizes (`1048576`, `"512KiB"`, `"256MiB"`, `"1GB"`).
//!
//! Both parsers return a message fit to follow the key name in a problem report, so
//! `validate` can say `server.request_timeout: invalid duration "fast" (...)`.

use std::time::Duration;

/// Parses a human duration such as `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`.
///
/// A bare number is refused on purpose: `timeout = 10` could mean seconds or
/// milliseconds, and guessing wrong is worse than asking.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid duration {text:?}: add a unit, e.g. \"{trimmed}s\" or \"{trimmed}ms\""
        ));
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("invalid duration {text:?} ({e}; write e.g. \"30s\", \"5m\", \"1h\")"))
}

/// Parses a byte size: an integer number of bytes, or an integer followed by a unit
/// (`B`, `KB`, `MB`, `GB`, `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` are
/// powers of 1024; units are case-insensitive, a space before the unit is allowed).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let bad = || {
        format!(
            "invalid size {text:?}: write bytes (1048576) or a number with a unit (\"512KiB\", \"256MiB\", \"1GB\")"
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Renders a byte count the way a person would write it in the config.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_accept_human_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn durations_refuse_words_and_bare_numbers() {
        let err = parse_duration("fast").unwrap_err();
        assert!(err.contains("invalid duration \"fast\""), "{err}");
        let err = parse_duration("10").unwrap_err();
        assert!(err.contains("\"10s\""), "{err}");
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_accept_bytes_and_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
    }

    #[test]
    fn sizes_refuse_garbage_and_overflow() {
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18446744073709551615TiB").is_err());
    }

    proptest! {
        #[test]
        fn size_format_round_trips(bytes in 0u64..(1u64 << 50)) {
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn size_parser_never_panics(text in ".{0,24}") {
            let _ = parse_size(&text);
            let _ = parse_duration(&text);
        }
    }
}
