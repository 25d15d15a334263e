//! Go's `time.Time.String()` for a UTC time: `2009-11-10 23:00:00.5 +0000 UTC`, the
//! nanoseconds trimmed of trailing zeros. kube-proxy's health answers and agnhost's
//! `/echo?msg=` replies carry it, and clients parse it back.

use chrono::{DateTime, Utc};

/// `t` as Go prints it.
pub fn go_time(t: DateTime<Utc>) -> String {
    let nanos = format!("{:09}", t.timestamp_subsec_nanos());
    let fraction = nanos.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!("{}{dot}{fraction} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Go's zero `time.Time`, as it prints: `0001-01-01 00:00:00 +0000 UTC`.
pub fn go_zero_time() -> String {
    let zero = chrono::NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
        .and_utc();
    go_time(zero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn prints_as_go_does() {
        let t = Utc.with_ymd_and_hms(2009, 11, 10, 23, 0, 0).unwrap();
        assert_eq!(go_time(t), "2009-11-10 23:00:00 +0000 UTC");
        let half = t + chrono::Duration::milliseconds(500);
        assert_eq!(go_time(half), "2009-11-10 23:00:00.5 +0000 UTC");
        let nano = t + chrono::Duration::nanoseconds(3);
        assert_eq!(go_time(nano), "2009-11-10 23:00:00.000000003 +0000 UTC");
        assert_eq!(go_zero_time(), "0001-01-01 00:00:00 +0000 UTC");
    }
}
