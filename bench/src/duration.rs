//! Durations written the way people type them on a command line.

use std::time::Duration;

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds (`10`, `1.5`).
///
/// # Errors
/// When the number is not a finite non-negative decimal or the unit is not
/// one of `ms`, `s`, `m`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` does not start with a number"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        other => anyhow::bail!("unknown duration unit `{other}`; use ms, s or m"),
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| anyhow::anyhow!("`{text}` is not a usable duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(
            parse_duration("10s").expect("test value"),
            Duration::from_secs(10)
        );
        assert_eq!(
            parse_duration("10").expect("test value"),
            Duration::from_secs(10)
        );
        assert_eq!(
            parse_duration("250ms").expect("test value"),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration("2m").expect("test value"),
            Duration::from_secs(120)
        );
        assert_eq!(
            parse_duration("1.5s").expect("test value"),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
