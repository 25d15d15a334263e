//! kube's age formatting: `duration.HumanDuration` and `translateTimestampSince`.

use chrono::{DateTime, Utc};

/// apimachinery's `HumanDuration` of a signed number of whole seconds: precise when young,
/// coarser as it grows (`5s`, `3m2s`, `15m`, `5h3m`, `2d3h`, `40d`, `2y30d`).
pub fn human_duration(seconds: i64) -> String {
    // Up to a second in the future is clock skew, not an error.
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `translateTimestampSince`: the age of an RFC 3339 timestamp, `<unknown>` when unset.
pub fn human_age(created: &str, now: DateTime<Utc>) -> String {
    match parse_time(created) {
        Some(t) => since(t, now),
        None => "<unknown>".to_string(),
    }
}

pub(crate) fn since(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    human_duration((now - t).num_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_table() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 3 * 60, "5h3m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (40 * 86400, "40d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn ages() {
        let now = parse_time("2025-01-10T12:00:00Z").unwrap();
        assert_eq!(human_age("2025-01-10T11:59:55Z", now), "5s");
        assert_eq!(human_age("2025-01-08T09:00:00Z", now), "2d3h");
        assert_eq!(human_age("", now), "<unknown>");
        assert_eq!(human_age("2025-01-10T12:00:00+01:00", now), "60m");
    }
}
