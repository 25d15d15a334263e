//! CronJob schedules: the standard five-field syntax and the `@hourly`-style descriptors that
//! kube-controller-manager accepts (robfig/cron's `ParseStandard`), evaluated in UTC.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed `spec.schedule`.
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses a schedule; the error is the reason it is not one.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let trimmed = text.trim();
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
        }
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {trimmed}",
                trimmed.split_whitespace().count()
            ));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map(Schedule)
            .map_err(|e| e.to_string())
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&t, false).ok()
    }

    /// The latest scheduled time in `(after, now]`, and how many there were (the controller
    /// runs only the latest and warns when many were missed).
    pub fn latest_due(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, usize) {
        let mut latest = None;
        let mut count = 0;
        for t in self.0.iter_after(after) {
            if t > now {
                break;
            }
            latest = Some(t);
            count += 1;
            // Upstream gives up counting after 100 misses too.
            if count > 100 {
                break;
            }
        }
        (latest, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, h, m, s).unwrap()
    }

    #[test]
    fn five_fields_and_descriptors_parse() {
        for ok in [
            "*/1 * * * *",
            "0 3 * * 1-5",
            "@hourly",
            "@daily",
            "15,45 */2 1 JAN-MAR SUN",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "TZ=UTC * * * * *",
            "hello",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_minute_is_due_on_the_minute() {
        let s = Schedule::parse("*/1 * * * *").unwrap();
        assert_eq!(s.next_after(at(10, 0, 0)), Some(at(10, 1, 0)));
        assert_eq!(s.next_after(at(10, 0, 30)), Some(at(10, 1, 0)));
        assert_eq!(s.latest_due(at(10, 0, 30), at(10, 0, 59)), (None, 0));
        assert_eq!(
            s.latest_due(at(10, 0, 30), at(10, 3, 10)),
            (Some(at(10, 3, 0)), 3)
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_as_vixie_cron() {
        // 2026-01-05 is a Monday: "the 1st, or any Monday".
        let s = Schedule::parse("0 0 1 * 1").unwrap();
        assert_eq!(
            s.next_after(at(0, 0, 0) - chrono::Duration::days(1)),
            Some(at(0, 0, 0))
        );
    }
}
