//! Calendar periods in the config's zone. Pure: `now` and the zone come
//! in as arguments.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The kinds of period a cap or report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Day,
    Week,
    Month,
    All,
    Custom,
}

impl PeriodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Day => "day",
            PeriodKind::Week => "week",
            PeriodKind::Month => "month",
            PeriodKind::All => "all",
            PeriodKind::Custom => "custom",
        }
    }
}

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub kind: PeriodKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The first instant of a local date (midnight, or the first instant after
/// a DST gap that swallows midnight).
pub fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut t = day.and_time(NaiveTime::MIN);
    for _ in 0..24 * 4 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
    // No zone skips a whole day's first hours; be total anyway.
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

fn first_of_next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).expect("valid first of month")
}

impl Period {
    /// The calendar day, ISO week (Monday start) or month containing `now`
    /// in `tz`; `All` is everything up to the end of time.
    pub fn containing(kind: PeriodKind, now: DateTime<Utc>, tz: Tz) -> Period {
        let today = now.with_timezone(&tz).date_naive();
        let (start, end) = match kind {
            PeriodKind::Day => (today, today.succ_opt().unwrap_or(today)),
            PeriodKind::Week => {
                let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
                (monday, monday + Duration::days(7))
            }
            PeriodKind::Month | PeriodKind::Custom => {
                let first = today.with_day(1).expect("day 1 exists");
                (first, first_of_next_month(first))
            }
            PeriodKind::All => {
                return Period {
                    kind,
                    start: DateTime::<Utc>::MIN_UTC,
                    end: DateTime::<Utc>::MAX_UTC,
                };
            }
        };
        Period {
            kind,
            start: local_midnight(tz, start),
            end: local_midnight(tz, end),
        }
    }

    /// Local dates `since..=until` in `tz`.
    pub fn dates(since: NaiveDate, until: NaiveDate, tz: Tz) -> Period {
        let end = until.succ_opt().unwrap_or(until);
        Period {
            kind: PeriodKind::Custom,
            start: local_midnight(tz, since),
            end: local_midnight(tz, end),
        }
    }

    /// All of time (a session's spend).
    pub fn whole() -> Period {
        Period {
            kind: PeriodKind::All,
            start: DateTime::<Utc>::MIN_UTC,
            end: DateTime::<Utc>::MAX_UTC,
        }
    }

    /// The trailing hour before `now` (burn rate).
    pub fn trailing_hour(now: DateTime<Utc>) -> Period {
        Period {
            kind: PeriodKind::Custom,
            start: now - Duration::hours(1),
            end: now,
        }
    }

    /// The part of the period that has happened by `now`.
    pub fn until(&self, now: DateTime<Utc>) -> Period {
        Period {
            end: self.end.min(now),
            ..*self
        }
    }

    /// The local date the next period starts on (when a cap resets).
    pub fn end_date(&self, tz: Tz) -> NaiveDate {
        self.end.with_timezone(&tz).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn month_week_day_in_a_non_utc_zone() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 2026-12-01T03:00Z is still Nov 30 in New York.
        let now = at("2026-12-01T03:00:00Z");
        let m = Period::containing(PeriodKind::Month, now, tz);
        assert_eq!(m.start, at("2026-11-01T04:00:00Z")); // EDT until Nov 1 02:00
        assert_eq!(m.end, at("2026-12-01T05:00:00Z")); // EST
        let d = Period::containing(PeriodKind::Day, now, tz);
        assert_eq!(d.start, at("2026-11-30T05:00:00Z"));
        assert_eq!(d.end, at("2026-12-01T05:00:00Z"));
        let w = Period::containing(PeriodKind::Week, now, tz);
        assert_eq!(w.start, at("2026-11-30T05:00:00Z")); // Monday Nov 30
        assert_eq!(
            w.end_date(tz),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
        );
    }

    #[test]
    fn iso_week_starts_monday() {
        let w = Period::containing(PeriodKind::Week, at("2026-11-22T12:00:00Z"), Tz::UTC); // a Sunday
        assert_eq!(w.start, at("2026-11-16T00:00:00Z"));
        assert_eq!(w.end, at("2026-11-23T00:00:00Z"));
    }

    #[test]
    fn midnight_in_a_dst_gap_moves_to_the_first_instant() {
        // America/Santiago skipped 2022-09-11 00:00 -> 01:00.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap();
        assert_eq!(local_midnight(tz, d), at("2022-09-11T04:00:00Z"));
    }
}
