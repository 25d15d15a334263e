//! The `containerLogs` query, as the API server passes a PodLogOptions on. No I/O.

use std::time::{Duration, SystemTime};

/// What part of a log to send, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep sending what is appended until the container stops.
    pub follow: bool,
    /// The previous instance's log (after a restart).
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// Only what was written since then.
    pub since: Option<Since>,
    /// Each line prefixed with the time it was written.
    pub timestamps: bool,
}

/// `sinceSeconds` (relative to the request) or `sinceTime` (absolute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Seconds(u64),
    Time(SystemTime),
}

impl Since {
    /// The cutoff instant for a request made at `now`.
    pub fn cutoff(self, now: SystemTime) -> SystemTime {
        match self {
            Since::Seconds(s) => now
                .checked_sub(Duration::from_secs(s))
                .unwrap_or(SystemTime::UNIX_EPOCH)
                .max(SystemTime::UNIX_EPOCH),
            Since::Time(t) => t,
        }
    }
}

impl LogOptions {
    /// Parses the query; `Err` is the message of a 400.
    pub fn from_query(query: &str) -> Result<LogOptions, String> {
        let mut opts = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "follow" => opts.follow = flag(&key, &value)?,
                "previous" => opts.previous = flag(&key, &value)?,
                "timestamps" => opts.timestamps = flag(&key, &value)?,
                "tailLines" => opts.tail_lines = Some(number(&key, &value, 0)?),
                "limitBytes" => opts.limit_bytes = Some(number(&key, &value, 1)?),
                "sinceSeconds" => since_seconds = Some(number(&key, &value, 1)?),
                "sinceTime" => {
                    let t = chrono::DateTime::parse_from_rfc3339(&value)
                        .map_err(|e| format!("invalid sinceTime {value:?}: {e}"))?;
                    let t: SystemTime = t.with_timezone(&chrono::Utc).into();
                    since_time = Some(t);
                }
                _ => {}
            }
        }
        opts.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(s), None) => Some(Since::Seconds(s)),
            (None, Some(t)) => Some(Since::Time(t)),
            (None, None) => None,
        };
        Ok(opts)
    }
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("invalid {key} {value:?}: must be true or false")),
    }
}

fn number(key: &str, value: &str, min: u64) -> Result<u64, String> {
    match value.parse::<i64>() {
        Ok(n) if n >= min as i64 => Ok(n as u64),
        Ok(_) => Err(format!("{key}: must be greater than or equal to {min}")),
        Err(_) => Err(format!("invalid {key} {value:?}: not an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_kube_apiserver_sends() {
        let o = LogOptions::from_query(
            "follow=true&previous=false&tailLines=10&limitBytes=500&sinceSeconds=60&timestamps=true",
        )
        .unwrap();
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                previous: false,
                tail_lines: Some(10),
                limit_bytes: Some(500),
                since: Some(Since::Seconds(60)),
                timestamps: true,
            }
        );
        assert_eq!(LogOptions::from_query("").unwrap(), LogOptions::default());
        let o = LogOptions::from_query("sinceTime=2026-01-02T03%3A04%3A05Z").unwrap();
        let want = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        assert_eq!(o.since, Some(Since::Time(want)));
        assert_eq!(
            LogOptions::from_query("tailLines=0").unwrap().tail_lines,
            Some(0)
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for q in [
            "tailLines=-1",
            "tailLines=x",
            "limitBytes=0",
            "sinceSeconds=0",
            "sinceTime=yesterday",
            "follow=maybe",
            "sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z",
            "timestamps=maybe",
        ] {
            assert!(LogOptions::from_query(q).is_err(), "{q}");
        }
        assert!(
            !LogOptions::from_query("timestamps=false")
                .unwrap()
                .timestamps
        );
    }

    #[test]
    fn cutoffs() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            Since::Seconds(60).cutoff(now),
            SystemTime::UNIX_EPOCH + Duration::from_secs(940)
        );
        assert_eq!(Since::Seconds(5000).cutoff(now), SystemTime::UNIX_EPOCH);
    }
}
