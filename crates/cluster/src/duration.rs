//! Durations as kind and Kubernetes write them (Go's `time.ParseDuration`): `0s`, `90s`,
//! `5m`, `1m30s`, `1.5h`, `250ms`.

use std::time::Duration;

/// Parses a Go duration string. A bare `0` is allowed, as Go allows it; negative durations
/// are refused (nothing here waits a negative time).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: use a number and a unit, e.g. 30s, 5m, 1m30s");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let secs = |s| parse_duration(s).unwrap().as_secs_f64();
        assert_eq!(secs("0"), 0.0);
        assert_eq!(secs("0s"), 0.0);
        assert_eq!(secs("40s"), 40.0);
        assert_eq!(secs("5m"), 300.0);
        assert_eq!(secs("1m30s"), 90.0);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("250ms"), 0.25);
        assert_eq!(secs("2h45m"), 9900.0);
    }

    #[test]
    fn refuses_what_go_refuses() {
        for s in ["", "5", "s", "5x", "-5s", "1..5s", "5 s", "m5"] {
            let err = parse_duration(s).unwrap_err();
            assert!(err.contains("invalid duration"), "{s}: {err}");
        }
    }
}
