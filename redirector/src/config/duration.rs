//! Durations as operators write them, in flags and in the config file
//! alike: a plain number is seconds (`10`, `0.5`), anything else is
//! humantime (`5s`, `250ms`, `24h`). Every value is bounded, so no later
//! `Instant + Duration` can overflow and panic.

use std::time::Duration;

/// The longest duration any setting accepts: a year. Longer ones are
/// typos, and would overflow the clock arithmetic of timers.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "`{0}` is not a duration: write seconds (\"10\", \"0.5\") or e.g. \"5s\", \"250ms\", \"24h\""
    )]
    Syntax(String),
    #[error("`{0}` is longer than a year")]
    TooLong(String),
    #[error("`{0}` must be more than zero")]
    Zero(String),
}

/// Any duration from zero to [`MAX`].
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    let d = if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(DurationError::Syntax(s.to_owned()));
        }
        if secs > MAX.as_secs_f64() {
            return Err(DurationError::TooLong(s.to_owned()));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(t).map_err(|_| DurationError::Syntax(s.to_owned()))?
    };
    if d > MAX {
        return Err(DurationError::TooLong(s.to_owned()));
    }
    Ok(d)
}

/// A duration that must be more than zero (timeouts).
pub fn parse_positive(s: &str) -> Result<Duration, DurationError> {
    match parse(s)? {
        Duration::ZERO => Err(DurationError::Zero(s.to_owned())),
        d => Ok(d),
    }
}

/// A clap value parser for [`parse`]: clap names the flag in its error.
pub fn flag(s: &str) -> Result<Duration, String> {
    parse(s).map_err(|e| e.to_string())
}

/// A clap value parser for [`parse_positive`].
pub fn positive_flag(s: &str) -> Result<Duration, String> {
    parse_positive(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_humantime() {
        for (text, want) in [
            ("10", Duration::from_secs(10)),
            ("0.5", Duration::from_millis(500)),
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("250ms", Duration::from_millis(250)),
            ("24h", Duration::from_secs(86_400)),
            (" 1m ", Duration::from_secs(60)),
            ("365d", MAX),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn out_of_range_values_are_errors_not_panics() {
        for bad in ["inf", "-inf", "NaN", "-1", "soon", "", "5 parsecs"] {
            assert!(matches!(parse(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        for long in ["1e20", "1e30", "31536001", "366d", "1000y"] {
            assert!(
                matches!(parse(long), Err(DurationError::TooLong(_))),
                "{long}"
            );
        }
        assert_eq!(parse_positive("0"), Err(DurationError::Zero("0".into())));
        assert_eq!(parse_positive("0s"), Err(DurationError::Zero("0s".into())));
        assert!(flag("inf").unwrap_err().contains("not a duration"));
    }
}
