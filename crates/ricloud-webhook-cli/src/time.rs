//! Times and durations on the command line, read and written by jiff:
//! ISO 8601 times, and durations in jiff's friendly format (`30s`, `15m`,
//! `2h`, `7d`, `1h 30m`, with days of 24 hours).

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};

/// `text` as a time: an ISO 8601 timestamp (`2026-12-04T10:00:00Z`, any
/// offset) or an age before `now` (`30s`, `15m`, `2h`, `7d`).
pub(crate) fn parse_time(text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(SystemTime::from(timestamp));
    }
    let age = parse_duration(text).with_context(|| {
        format!("`{text}` is neither an ISO 8601 time nor an age such as 2h or 7d")
    })?;
    now.checked_sub(age)
        .ok_or_else(|| anyhow!("`{text}` is before 1970"))
}

/// `text` as a non-negative duration in jiff's friendly format (`30s`,
/// `500ms`, `2h`, `7d`; a day is 24 hours).
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let span: jiff::Span = text.trim().parse()?;
    let signed = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())?;
    Duration::try_from(signed).map_err(|_| anyhow!("`{text}` is negative"))
}

/// `time` in ISO 8601 UTC, to the second.
pub(crate) fn iso(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map_or_else(|_| "?".to_owned(), |t| format!("{t:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_and_ages() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            parse_time("2026-12-04T10:00:00Z", now).ok(),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_378_400))
        );
        assert_eq!(
            parse_time("2026-12-04T11:00:00+01:00", now).ok(),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_378_400))
        );
        for (age, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("2h", 7200),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1h 30m", 5400),
        ] {
            assert_eq!(
                parse_time(age, now).ok(),
                Some(now - Duration::from_secs(secs)),
                "{age}"
            );
        }
        for bad in ["", "yesterday", "h", "-2h", "2026-13-01T00:00:00Z", "3mo"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert_eq!(
            iso(UNIX_EPOCH + Duration::from_secs(1_796_378_400)),
            "2026-12-04T10:00:00Z"
        );
    }
}
