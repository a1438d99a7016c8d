//! Times on the command line: ISO 8601, or an age.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};

/// `text` as a time: an ISO 8601 timestamp (`2026-12-04T10:00:00Z`, any
/// offset) or an age before `now` (`30s`, `15m`, `2h`, `7d`).
pub(crate) fn parse_time(text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(SystemTime::from(timestamp));
    }
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow!("`{text}` is neither an ISO 8601 time nor an age such as 2h or 7d"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => bail!("`{text}`: an age ends in s, m, h or d"),
    };
    now.checked_sub(Duration::from_secs(seconds))
        .ok_or_else(|| anyhow!("`{text}` is before 1970"))
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
        for (age, secs) in [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604_800)] {
            assert_eq!(
                parse_time(age, now).ok(),
                Some(now - Duration::from_secs(secs)),
                "{age}"
            );
        }
        for bad in ["", "yesterday", "2w", "h", "-2h", "2026-13-01T00:00:00Z"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert_eq!(
            iso(UNIX_EPOCH + Duration::from_secs(1_796_378_400)),
            "2026-12-04T10:00:00Z"
        );
    }
}
