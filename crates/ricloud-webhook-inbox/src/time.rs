//! The times an operator types to select events (`--since 2h`, the
//! console's filters) and writes them back, read and written by jiff:
//! ISO 8601 times, and ages and durations in jiff's friendly format (`30s`,
//! `15m`, `2h`, `7d`, `1h 30m`, with days of 24 hours). One reading for the
//! CLI and the console.

use std::time::{Duration, SystemTime};

/// Why a time or duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Neither an ISO 8601 time nor an age.
    #[error("`{0}` is neither an ISO 8601 time nor an age such as 2h or 7d")]
    NotATime(String),
    /// Not a duration in jiff's friendly format, or a negative one.
    #[error("`{0}` is not a duration such as 30s, 500ms, 2h or 7d")]
    NotADuration(String),
}

/// `text` as a time: an ISO 8601 timestamp (`2026-12-04T10:00:00Z`, any
/// offset) or an age before `now` (`30s`, `15m`, `2h`, `7d`).
///
/// # Errors
/// [`TimeError`] naming what `text` is not.
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, TimeError> {
    if let Ok(timestamp) = text.trim().parse::<jiff::Timestamp>() {
        return Ok(SystemTime::from(timestamp));
    }
    let age = parse_duration(text).map_err(|_| TimeError::NotATime(text.to_owned()))?;
    // An age further back than the system's clock reaches is no time either.
    now.checked_sub(age)
        .ok_or_else(|| TimeError::NotATime(text.to_owned()))
}

/// `text` as a non-negative duration in jiff's friendly format (`30s`,
/// `500ms`, `2h`, `7d`; a day is 24 hours).
///
/// # Errors
/// [`TimeError::NotADuration`].
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let refused = || TimeError::NotADuration(text.to_owned());
    let span: jiff::Span = text.trim().parse().map_err(|_| refused())?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| refused())?;
    Duration::try_from(signed).map_err(|_| refused())
}

/// `time` in ISO 8601 UTC, to the second (`?` for a time jiff cannot show).
pub fn iso(time: SystemTime) -> String {
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
