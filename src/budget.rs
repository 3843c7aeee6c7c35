//! Budget rules: calendar periods in the config's zone, tiers, forecasts.
//! Pure: `now` and the zone come in as arguments.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::{Action, Policy};
use crate::money::Micros;

/// How bad it is, ordered so that the worst of several caps is the `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Ok,
    Alert,
    Warn,
    HardStop,
    /// At the hard stop of a `stop` arm (or a halting session cap or burn
    /// rate): the next call halts the agent.
    Stop,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Ok => "ok",
            Tier::Alert => "alert",
            Tier::Warn => "warn",
            Tier::HardStop => "hard_stop",
            Tier::Stop => "stop",
        }
    }
}

/// The tier of `spent` against `cap` under Octorato's rules, with
/// `alert_at_pct` below the cap:
/// - at or over `cap * grace_pct / 100` on a hard_stop arm: hard_stop
///   (on a stop arm: stop);
/// - at or over the cap: warn (alert on alert-only arms);
/// - at or over `alert_at_pct` percent of the cap: alert (0 turns this off);
/// - otherwise ok.
pub fn tier(spent: Micros, cap: Micros, policy: &Policy) -> Tier {
    if policy.action.has_hard_stop() && spent >= hard_stop_at(cap, policy) {
        return if policy.action == Action::Stop {
            Tier::Stop
        } else {
            Tier::HardStop
        };
    }
    if spent >= cap {
        return if policy.action == Action::Alert {
            Tier::Alert
        } else {
            Tier::Warn
        };
    }
    if policy.alert_at_pct > 0 && spent >= cap.scale_pct(policy.alert_at_pct) {
        return Tier::Alert;
    }
    Tier::Ok
}

/// Where a hard_stop (or stop) arm is stopped: the cap times its grace.
pub fn hard_stop_at(cap: Micros, policy: &Policy) -> Micros {
    cap.scale_pct(policy.grace_pct)
}

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

/// The linear projection of this period's spend to its end, once at least
/// a day of it has passed (a first day's spend says little about a month).
/// `None` when there is not yet enough history.
pub fn forecast(spent: Micros, period: &Period, now: DateTime<Utc>) -> Option<Micros> {
    let elapsed = (now.min(period.end) - period.start).num_seconds();
    let total = (period.end - period.start).num_seconds();
    if elapsed < 24 * 3600 || total <= 0 || elapsed <= 0 {
        return None;
    }
    Some(Micros(
        (spent.0 as i128 * total as i128 / elapsed as i128) as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn pol(action: Action) -> Policy {
        Policy {
            grace_pct: 110,
            action,
            alert_at_pct: 80,
        }
    }

    #[test]
    fn tiers_follow_octorato() {
        let cap = Micros(1_000_000_000);
        let hs = pol(Action::HardStop);
        assert_eq!(tier(Micros(799_999_999), cap, &hs), Tier::Ok);
        assert_eq!(tier(Micros(800_000_000), cap, &hs), Tier::Alert);
        assert_eq!(tier(Micros(1_000_000_000), cap, &hs), Tier::Warn);
        assert_eq!(tier(Micros(1_099_999_999), cap, &hs), Tier::Warn);
        assert_eq!(tier(Micros(1_100_000_000), cap, &hs), Tier::HardStop);
        // stop arms: the same tiers below the hard stop, stop at it.
        let st = pol(Action::Stop);
        assert_eq!(tier(Micros(799_999_999), cap, &st), Tier::Ok);
        assert_eq!(tier(Micros(800_000_000), cap, &st), Tier::Alert);
        assert_eq!(tier(Micros(1_099_999_999), cap, &st), Tier::Warn);
        assert_eq!(tier(Micros(1_100_000_000), cap, &st), Tier::Stop);
        // warn arms never reach hard_stop; alert arms never pass alert.
        assert_eq!(
            tier(Micros(5_000_000_000), cap, &pol(Action::Warn)),
            Tier::Warn
        );
        assert_eq!(
            tier(Micros(5_000_000_000), cap, &pol(Action::Alert)),
            Tier::Alert
        );
        // alert_at_pct 0 turns the early alert off.
        let quiet = Policy {
            alert_at_pct: 0,
            ..hs
        };
        assert_eq!(tier(Micros(999_000_000), cap, &quiet), Tier::Ok);
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

    #[test]
    fn forecast_waits_a_day_then_projects_linearly() {
        let m = Period::containing(PeriodKind::Month, at("2026-11-10T00:00:00Z"), Tz::UTC);
        assert_eq!(forecast(Micros(100), &m, at("2026-11-01T12:00:00Z")), None);
        // 10 of 30 days: x3.
        assert_eq!(
            forecast(Micros(300_000_000), &m, at("2026-11-11T00:00:00Z")),
            Some(Micros(900_000_000))
        );
    }
}
