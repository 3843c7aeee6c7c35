//! The events `alerts` finds at an instant: every calendar cap's level and
//! forecast, spikes against each arm's daily baseline, and the share of
//! spend no arm owns. Which of them are new is [`super::plan`]'s business.

use chrono::{DateTime, Duration as Days, Utc};

use super::{Event, Level, Scope};
use crate::budget::{forecast, CapKind, CapState, Evaluator, Period, PeriodKind, Which};
use crate::ledger::{Result, Store};
use crate::money::Micros;
use crate::Loaded;

/// What `alerts` found at `now`.
pub struct Found {
    /// Every cap's state (OK included) and the unattributed share, for
    /// `--all`.
    pub state: Vec<Event>,
    /// Candidate events: crossed levels, forecasts, spikes, unattributed.
    pub new: Vec<Event>,
}

/// Every cap's state and the candidate events at `now`.
pub fn found(loaded: &Loaded, ledger: &dyn Store, now: DateTime<Utc>) -> Result<Found> {
    let cfg = &loaded.config;
    let tz = cfg.timezone;
    let eval = Evaluator {
        loaded,
        ledger,
        now,
    };
    let mut state = Vec::new();
    let mut new = Vec::new();
    let cap_events = |caps: Vec<CapState>, state: &mut Vec<Event>, new: &mut Vec<Event>| {
        for c in caps {
            let period = match c.kind {
                CapKind::Monthly => "monthly",
                CapKind::Weekly => "weekly",
                CapKind::Daily => "daily",
                CapKind::Branch => "branch",
                CapKind::Session | CapKind::Hourly => continue,
            };
            let scope = c.scope.clone();
            // A branch cap covers all time: no forecast, no reset; said
            // once per level ever.
            let all_time = c.kind == CapKind::Branch;
            let projection = if all_time {
                None
            } else {
                forecast(c.spent, &c.period, now)
            };
            let e = Event {
                level: super::cap_level(c.spent, c.limit, &c.policy),
                scope,
                period,
                period_start: if all_time {
                    String::new()
                } else {
                    c.period.start.with_timezone(&tz).to_rfc3339()
                },
                resets: if all_time {
                    chrono::NaiveDate::MAX
                } else {
                    c.period.end_date(tz)
                },
                spent: c.spent,
                cap: Some(c.limit),
                action: Some(c.policy.action),
                forecast: projection,
                projects: None,
                spike: None,
                total: None,
            };
            if e.level != Level::Ok {
                new.push(e.clone());
            }
            if let Some(p) = super::forecast_passes(c.spent, projection, c.limit, &c.policy) {
                new.push(Event {
                    level: Level::Forecast,
                    projects: Some(p),
                    ..e.clone()
                });
            }
            state.push(e);
        }
    };

    // Spend per local day (the previous 14 and today) and this month, by
    // owner, each read once for all arms.
    let today = now.with_timezone(&tz).date_naive();
    let first_day = ledger
        .time_span()?
        .map(|(first, _)| first.with_timezone(&tz).date_naive());
    let previous: Vec<_> = (1..=super::BASELINE_DAYS as i64)
        .rev()
        .map(|n| today - Days::days(n))
        .filter(|d| first_day.is_some_and(|f| *d >= f))
        .collect();
    let mut spend = eval.engine();
    let n = cfg.arms.len();
    let mut daily: Vec<Vec<Micros>> = vec![Vec::new(); n];
    for d in &previous {
        let per = spend.by_owner(&Period::dates(*d, *d, tz), n)?;
        for (i, t) in per.arms.iter().enumerate() {
            daily[i].push(t.spent());
        }
    }
    let day = Period::containing(PeriodKind::Day, now, tz);
    let today_spend: Vec<Micros> = spend
        .by_owner(&day, n)?
        .arms
        .iter()
        .map(|t| t.spent())
        .collect();
    let month = Period::containing(PeriodKind::Month, now, tz);
    let month_spend = spend.by_owner(&month, n)?;
    let month_arms: Vec<Micros> = month_spend.arms.iter().map(|t| t.spent()).collect();
    let month_unattributed = month_spend.unattributed.spent();

    for (i, arm) in cfg.arms.iter().enumerate() {
        let before = state.len();
        cap_events(
            eval.caps(Some(i), None)?
                .into_iter()
                .filter(|c| matches!(c.scope, Scope::Arm(_)))
                .collect(),
            &mut state,
            &mut new,
        );
        if state.len() == before {
            // An arm without calendar caps still has a line in --all.
            state.push(Event {
                level: Level::Ok,
                scope: Scope::Arm(arm.name.clone()),
                period: "monthly",
                period_start: month.start.with_timezone(&tz).to_rfc3339(),
                resets: month.end_date(tz),
                spent: month_arms[i],
                cap: None,
                action: Some(arm.policy.action),
                forecast: forecast(month_arms[i], &month, now),
                projects: None,
                spike: None,
                total: None,
            });
        }
        // Each capped branch of the arm that has spend.
        if arm.caps.branch.is_some() || !arm.branch_caps.is_empty() {
            let mut branch_caps = Vec::new();
            for b in eval.arm_branches(i)? {
                if let Some(c) = eval.branch_cap(Some(i), Some(&b), Which::All)? {
                    branch_caps.push(c);
                }
            }
            cap_events(branch_caps, &mut state, &mut new);
        }
        if let Some(s) = super::spike(today_spend[i], &daily[i], &cfg.alerts) {
            new.push(Event {
                level: Level::Spike,
                scope: Scope::Arm(arm.name.clone()),
                period: "daily",
                period_start: day.start.with_timezone(&tz).to_rfc3339(),
                resets: day.end_date(tz),
                spent: today_spend[i],
                cap: None,
                action: Some(arm.policy.action),
                forecast: None,
                projects: None,
                spike: Some(s),
                total: None,
            });
        }
    }
    if cfg.total.is_some() {
        cap_events(eval.caps(None, None)?, &mut state, &mut new);
    }
    let all = month_arms.iter().fold(month_unattributed, |a, b| a + *b);
    let unattributed = Event {
        level: if super::unattributed_alarming(month_unattributed, all, &cfg.alerts) {
            Level::Unattributed
        } else {
            Level::Ok
        },
        scope: Scope::Unattributed,
        period: "monthly",
        period_start: month.start.with_timezone(&tz).to_rfc3339(),
        resets: month.end_date(tz),
        spent: month_unattributed,
        cap: None,
        action: None,
        forecast: None,
        projects: None,
        spike: None,
        total: Some(all),
    };
    if unattributed.level != Level::Ok {
        new.push(unattributed.clone());
    }
    state.push(unattributed);
    Ok(Found { state, new })
}
