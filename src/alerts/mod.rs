//! Alert rules: the levels a cap has crossed, what its forecast passes,
//! spikes against a robust baseline, unattributed spend, and which events
//! are new. Pure: spend, caps, settings and what was already said come in
//! as arguments.

pub mod events;

use std::collections::HashSet;

use chrono::NaiveDate;

pub use crate::budget::Scope;
use crate::budget::{crossed, Crossed};
use crate::config::{Action, AlertSettings, Policy};
use crate::ledger::outbox::AlertKey;
use crate::money::Micros;

/// The level of an alert line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Only in `--all`: nothing crossed.
    Ok,
    /// Spend crossed `alert_at_pct` of a cap.
    Alert,
    /// Spend crossed a cap.
    Warn,
    /// Spend crossed a hard_stop arm's grace cap (`check` now blocks).
    HardStop,
    /// This period's projection passes the cap (or the hard stop).
    Forecast,
    /// Today's spend is far above the previous days'.
    Spike,
    /// Spend that no arm owns is a large share of the month.
    Unattributed,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Alert => "ALERT",
            Level::Warn => "WARN",
            Level::HardStop => "HARD_STOP",
            Level::Forecast => "FORECAST",
            Level::Spike => "SPIKE",
            Level::Unattributed => "UNATTRIBUTED",
        }
    }
}

/// The highest level `spent` has reached against `limit` ([`crossed`]).
/// Unlike `budget::tier`, crossing the cap is WARN on alert-only arms too (the
/// line says what happened; whether anything is blocked is `check`'s
/// business).
pub fn cap_level(spent: Micros, limit: Micros, policy: &Policy) -> Level {
    match crossed(spent, limit, policy) {
        Crossed::HardStop => Level::HardStop,
        Crossed::Cap => Level::Warn,
        Crossed::AlertAt => Level::Alert,
        Crossed::Nothing => Level::Ok,
    }
}

/// The levels below `level` that reaching it implies (a jump straight to
/// WARN is said once, as WARN, and ALERT is not said later).
pub fn implied_below(level: Level) -> &'static [Level] {
    match level {
        Level::HardStop => &[Level::Alert, Level::Warn],
        Level::Warn => &[Level::Alert],
        _ => &[],
    }
}

/// What the projection passes that spend has not reached yet: the hard
/// stop of a hard_stop arm (`HardStop`), else the cap (`Warn`). `None`
/// when there is no projection (a period's first day) or it passes
/// nothing new.
pub fn forecast_passes(
    spent: Micros,
    forecast: Option<Micros>,
    limit: Micros,
    policy: &Policy,
) -> Option<Level> {
    let f = forecast?;
    if policy.action.has_hard_stop() {
        let h = limit.scale_pct(policy.grace_pct);
        if spent < h && f >= h {
            return Some(Level::HardStop);
        }
    }
    (spent < limit && f >= limit).then_some(Level::Warn)
}

/// Fewer previous days than this (a young ledger) give no spike baseline.
pub const MIN_BASELINE_DAYS: usize = 7;
/// How many previous days the baseline looks at.
pub const BASELINE_DAYS: u32 = 14;

/// The median and median absolute deviation of daily spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub median: Micros,
    pub mad: Micros,
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        ((v[n / 2 - 1] as i128 + v[n / 2] as i128) / 2) as i64
    }
}

/// The baseline of `days` (the previous days' spend, today excluded), or
/// `None` with fewer than [`MIN_BASELINE_DAYS`].
pub fn baseline(days: &[Micros]) -> Option<Baseline> {
    if days.len() < MIN_BASELINE_DAYS {
        return None;
    }
    let mut v: Vec<i64> = days.iter().map(|d| d.0).collect();
    let m = median(&mut v);
    let mut dev: Vec<i64> = days
        .iter()
        .map(|d| {
            (d.0 as i128 - m as i128)
                .unsigned_abs()
                .min(i64::MAX as u128) as i64
        })
        .collect();
    Some(Baseline {
        median: Micros(m),
        mad: Micros(median(&mut dev)),
    })
}

/// Today is a spike above `median + max(spike_mad * MAD, spike_min)`: far
/// from the usual in the arm's own terms, and by a dollar amount that
/// matters (a steady arm has MAD 0, so the floor is what guards it).
pub fn spike_threshold(b: &Baseline, s: &AlertSettings) -> Micros {
    // spike_mad in thousandths, so the product stays integer.
    let k = (s.spike_mad * 1000.0).round().clamp(0.0, 1e12) as i128;
    let scaled = (b.mad.0 as i128 * k / 1000).min(i64::MAX as i128) as i64;
    b.median + Micros(scaled.max(s.spike_min.0))
}

/// A spike: today's spend and what it was measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spike {
    pub baseline: Baseline,
    pub threshold: Micros,
}

/// `Some` when `today` is a spike against `previous` days.
pub fn spike(today: Micros, previous: &[Micros], s: &AlertSettings) -> Option<Spike> {
    let b = baseline(previous)?;
    let threshold = spike_threshold(&b, s);
    (today > threshold).then_some(Spike {
        baseline: b,
        threshold,
    })
}

/// Unattributed spend deserves a line: above `unattributed_pct` of all
/// spend and at least `unattributed_min`.
pub fn unattributed_alarming(unattributed: Micros, total: Micros, s: &AlertSettings) -> bool {
    total.0 > 0
        && unattributed >= s.unattributed_min
        && unattributed.0 > 0
        && unattributed.0 as i128 * 100 > s.unattributed_pct as i128 * total.0 as i128
}

/// One line: an event, or (with `--all`) a cap's current state.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub level: Level,
    pub scope: Scope,
    /// `monthly`, `weekly` or `daily`; `branch` for a branch cap (all
    /// time: its `period_start` is empty and it never resets).
    pub period: &'static str,
    /// The period's first instant in the config's zone (RFC 3339).
    pub period_start: String,
    /// The local date the period ends (the next one starts).
    pub resets: NaiveDate,
    pub spent: Micros,
    pub cap: Option<Micros>,
    pub action: Option<Action>,
    pub forecast: Option<Micros>,
    /// FORECAST: what the projection passes (WARN: the cap; HARD_STOP:
    /// the hard stop).
    pub projects: Option<Level>,
    pub spike: Option<Spike>,
    /// UNATTRIBUTED: all spend of the period.
    pub total: Option<Micros>,
}

impl Event {
    /// The ledger key: FORECAST is remembered per projected level, so a
    /// forecast is said again only when it gets worse.
    pub fn key(&self) -> AlertKey {
        let level = match (self.level, self.projects) {
            (Level::Forecast, Some(p)) => format!("FORECAST_{}", p.as_str()),
            (l, _) => l.as_str().to_owned(),
        };
        AlertKey {
            scope: self.scope.key(),
            cap: self.period.to_owned(),
            period_start: self.period_start.clone(),
            level,
        }
    }

    /// Keys of the lower levels this event makes moot.
    pub fn implied_keys(&self) -> Vec<AlertKey> {
        let base = self.key();
        let lower: Vec<String> = match (self.level, self.projects) {
            (Level::Forecast, Some(p)) => implied_below(p)
                .iter()
                .filter(|l| **l != Level::Alert)
                .map(|l| format!("FORECAST_{}", l.as_str()))
                .collect(),
            (l, _) => implied_below(l)
                .iter()
                .map(|l| l.as_str().to_owned())
                .collect(),
        };
        lower
            .into_iter()
            .map(|level| AlertKey {
                level,
                ..base.clone()
            })
            .collect()
    }

    /// Spend as a percentage of the cap (or, for UNATTRIBUTED, of all
    /// spend), to a tenth, rounded down.
    pub fn pct(&self) -> Option<f64> {
        match (self.cap, self.total) {
            (Some(c), _) => Micros::percent_of(self.spent, c),
            (None, Some(t)) => Micros::percent_of(self.spent, t),
            _ => None,
        }
    }
}

/// Which events to say now, and which lower levels to record silently.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into the events, in order.
    pub say: Vec<usize>,
    /// Keys of levels made moot by a higher one said now.
    pub implied: Vec<AlertKey>,
}

/// Decides which of `events` are new given the `known` keys: an event is
/// new when its key is unknown; saying it records its lower levels too.
pub fn plan(events: &[Event], known: &HashSet<AlertKey>) -> Plan {
    let mut seen: HashSet<AlertKey> = known.clone();
    let mut p = Plan::default();
    for (i, e) in events.iter().enumerate() {
        if e.level == Level::Ok || !seen.insert(e.key()) {
            continue;
        }
        p.say.push(i);
        for k in e.implied_keys() {
            if seen.insert(k.clone()) {
                p.implied.push(k);
            }
        }
    }
    p
}

/// Every key `plan` may look at for `events`.
pub fn keys_of(events: &[Event]) -> Vec<AlertKey> {
    let mut out = Vec::new();
    for e in events.iter().filter(|e| e.level != Level::Ok) {
        out.push(e.key());
        out.extend(e.implied_keys());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(d: i64) -> Micros {
        Micros(d * Micros::PER_DOLLAR)
    }

    fn pol(action: Action) -> Policy {
        Policy {
            grace_pct: 110,
            action,
            alert_at_pct: 80,
        }
    }

    fn settings() -> AlertSettings {
        AlertSettings {
            spike_mad: 5.0,
            spike_min: usd(20),
            unattributed_pct: 10,
            unattributed_min: usd(5),
        }
    }

    #[test]
    fn cap_levels_by_crossing() {
        let hs = pol(Action::HardStop);
        assert_eq!(cap_level(Micros(799_999_999), usd(1000), &hs), Level::Ok);
        assert_eq!(cap_level(usd(800), usd(1000), &hs), Level::Alert);
        assert_eq!(cap_level(usd(1000), usd(1000), &hs), Level::Warn);
        assert_eq!(cap_level(usd(1100), usd(1000), &hs), Level::HardStop);
        // A stop arm's hard stop (where it is halted) is a HARD_STOP line.
        let st = pol(Action::Stop);
        assert_eq!(cap_level(usd(1099), usd(1000), &st), Level::Warn);
        assert_eq!(cap_level(usd(1100), usd(1000), &st), Level::HardStop);
        assert_eq!(
            cap_level(usd(5000), usd(1000), &pol(Action::Warn)),
            Level::Warn
        );
        // An alert-only arm over its cap: the line says so (nothing blocks).
        assert_eq!(
            cap_level(usd(5000), usd(1000), &pol(Action::Alert)),
            Level::Warn
        );
        let quiet = Policy {
            alert_at_pct: 0,
            ..hs
        };
        assert_eq!(cap_level(usd(999), usd(1000), &quiet), Level::Ok);
    }

    #[test]
    fn forecast_passes_only_what_spend_has_not() {
        let hs = pol(Action::HardStop);
        let w = pol(Action::Warn);
        assert_eq!(
            forecast_passes(usd(300), Some(usd(900)), usd(1000), &w),
            None
        );
        assert_eq!(
            forecast_passes(usd(300), Some(usd(1000)), usd(1000), &w),
            Some(Level::Warn)
        );
        assert_eq!(forecast_passes(usd(300), None, usd(1000), &w), None);
        // Already over the cap: a warn arm has nothing left to forecast.
        assert_eq!(
            forecast_passes(usd(1001), Some(usd(2000)), usd(1000), &w),
            None
        );
        assert_eq!(
            forecast_passes(usd(300), Some(usd(1050)), usd(1000), &hs),
            Some(Level::Warn)
        );
        assert_eq!(
            forecast_passes(usd(300), Some(usd(1100)), usd(1000), &hs),
            Some(Level::HardStop)
        );
        assert_eq!(
            forecast_passes(usd(1050), Some(usd(1200)), usd(1000), &hs),
            Some(Level::HardStop)
        );
        assert_eq!(
            forecast_passes(usd(1100), Some(usd(1200)), usd(1000), &hs),
            None
        );
    }

    #[test]
    fn baseline_is_median_and_mad() {
        let days: Vec<Micros> = [10, 12, 9, 11, 10, 30, 10, 8]
            .iter()
            .map(|d| usd(*d))
            .collect();
        // sorted 8 9 10 10 10 11 12 30 -> median 10; deviations 2 1 0 0 0 1 2 20 -> MAD 1.
        assert_eq!(
            baseline(&days),
            Some(Baseline {
                median: usd(10),
                mad: usd(1)
            })
        );
        // Even count: the midpoint, exactly.
        let days: Vec<Micros> = [1, 2, 3, 4, 5, 6, 7, 8].iter().map(|d| usd(*d)).collect();
        assert_eq!(baseline(&days).unwrap().median, Micros(4_500_000));
        assert_eq!(baseline(&days[..6]), None);
    }

    #[test]
    fn spikes_need_mad_distance_and_the_dollar_floor() {
        let s = settings();
        let noisy: Vec<Micros> = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140]
            .iter()
            .map(|d| usd(*d))
            .collect();
        // median 75, MAD 35: threshold 75 + 175 = 250.
        let b = baseline(&noisy).unwrap();
        assert_eq!(spike_threshold(&b, &s), usd(250));
        assert_eq!(spike(usd(250), &noisy, &s), None);
        assert!(spike(usd(251), &noisy, &s).is_some());
        // A steady arm (MAD 0): only the floor guards it.
        let steady = vec![usd(30); 14];
        assert_eq!(spike(usd(50), &steady, &s), None);
        assert_eq!(
            spike(Micros(50_000_001), &steady, &s).map(|x| x.threshold),
            Some(usd(50))
        );
        // A tiny arm: 50x its usual, but only $5.
        let tiny = vec![Micros(100_000); 14];
        assert_eq!(spike(usd(5), &tiny, &s), None);
        // The floor and factor are settings.
        let s2 = AlertSettings {
            spike_mad: 2.5,
            spike_min: usd(1),
            ..s
        };
        assert!(spike(usd(5), &tiny, &s2).is_some());
        assert_eq!(spike_threshold(&b, &s2), usd(75) + Micros(87_500_000));
    }

    #[test]
    fn unattributed_needs_share_and_minimum() {
        let s = settings();
        assert!(unattributed_alarming(usd(50), usd(150), &s));
        assert!(!unattributed_alarming(usd(10), usd(100), &s)); // exactly 10%: not above
        assert!(unattributed_alarming(Micros(10_000_001), usd(100), &s));
        assert!(!unattributed_alarming(usd(4), usd(8), &s)); // 50%, under $5
        assert!(!unattributed_alarming(Micros(0), Micros(0), &s));
    }

    fn ev(level: Level, projects: Option<Level>) -> Event {
        Event {
            level,
            scope: Scope::Arm("a".into()),
            period: "monthly",
            period_start: "2026-11-01T00:00:00+00:00".into(),
            resets: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            spent: usd(1),
            cap: Some(usd(2)),
            action: Some(Action::HardStop),
            forecast: None,
            projects,
            spike: None,
            total: None,
        }
    }

    #[test]
    fn plan_says_new_levels_once_and_records_lower_ones() {
        let events = vec![
            ev(Level::HardStop, None),
            ev(Level::Forecast, Some(Level::HardStop)),
            ev(Level::Ok, None),
        ];
        let p = plan(&events, &HashSet::new());
        assert_eq!(p.say, vec![0, 1]);
        let implied: Vec<&str> = p.implied.iter().map(|k| k.level.as_str()).collect();
        assert_eq!(implied, vec!["ALERT", "WARN", "FORECAST_WARN"]);
        // Known: nothing to say again.
        let known: HashSet<AlertKey> = keys_of(&events).into_iter().collect();
        assert_eq!(plan(&events, &known), Plan::default());
        // A lower level after a higher one was said: nothing.
        let known: HashSet<AlertKey> = events[0]
            .implied_keys()
            .into_iter()
            .chain([events[0].key()])
            .collect();
        assert_eq!(
            plan(&[ev(Level::Warn, None)], &known).say,
            Vec::<usize>::new()
        );
        // A forecast that gets worse is said again.
        let known: HashSet<AlertKey> = [ev(Level::Forecast, Some(Level::Warn)).key()].into();
        assert_eq!(
            plan(&[ev(Level::Forecast, Some(Level::HardStop))], &known).say,
            vec![0]
        );
        // Other scopes and periods are separate.
        let mut other = ev(Level::Warn, None);
        other.period_start = "2026-12-01T00:00:00+00:00".into();
        let known: HashSet<AlertKey> = [ev(Level::Warn, None).key()].into();
        assert_eq!(plan(&[other], &known).say, vec![0]);
        assert_ne!(Scope::Arm("total".into()).key(), Scope::Total.key());
    }
}
