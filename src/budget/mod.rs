//! Budget rules: calendar periods in the config's zone ([`period`]),
//! tiers, forecasts, and every cap of an arm at an instant ([`caps`]).
//! Pure apart from the ledger reads of `caps`: `now` and the zone come in
//! as arguments.

pub mod caps;
pub mod period;

pub use caps::{CapKind, CapState, Evaluator, Which};
pub use period::{local_midnight, Period, PeriodKind};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Action, Policy};
use crate::money::Micros;

/// Whose cap or event: an arm, one git branch of an arm, the team total,
/// or (alerts only) the spend no arm owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Arm(String),
    Total,
    Unattributed,
    /// One branch of an arm (a branch cap); `name` is `<arm>@<branch>`
    /// (git branch names hold no spaces, so an alert line's name stays one
    /// field). Build it with [`Scope::branch_of`].
    Branch {
        arm: String,
        branch: String,
        name: String,
    },
}

impl Scope {
    /// The scope of `branch` on `arm`.
    pub fn branch_of(arm: &str, branch: &str) -> Scope {
        Scope::Branch {
            arm: arm.to_owned(),
            branch: branch.to_owned(),
            name: format!("{arm}@{branch}"),
        }
    }

    /// As alert lines show it (a branch: `<arm>@<branch>`).
    pub fn name(&self) -> &str {
        match self {
            Scope::Arm(a) => a,
            Scope::Total => "total",
            Scope::Unattributed => "unattributed",
            Scope::Branch { name, .. } => name,
        }
    }

    /// The arm (or "total", "unattributed"); a branch's arm. What caps are
    /// shown and remembered under.
    pub fn owner(&self) -> &str {
        match self {
            Scope::Branch { arm, .. } => arm,
            other => other.name(),
        }
    }

    /// A branch scope's branch.
    pub fn branch(&self) -> Option<&str> {
        match self {
            Scope::Branch { branch, .. } => Some(branch),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Arm(_) => "arm",
            Scope::Total => "total",
            Scope::Unattributed => "unattributed",
            Scope::Branch { .. } => "branch",
        }
    }

    /// As the ledger remembers it (an arm may be called "total").
    pub fn key(&self) -> String {
        match self {
            Scope::Arm(a) => format!("arm:{a}"),
            Scope::Total => "total".into(),
            Scope::Unattributed => "unattributed".into(),
            Scope::Branch { arm, branch, .. } => {
                format!("branch:{}", serde_json::json!([arm, branch]))
            }
        }
    }
}

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

/// The marks on the way to a cap that spend has reached, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Crossed {
    Nothing,
    /// `alert_at_pct` of the cap.
    AlertAt,
    /// The cap itself.
    Cap,
    /// The hard stop (the cap times its grace) of a hard_stop or stop arm.
    HardStop,
}

/// The highest mark `spent` has reached against `cap`, the one rule behind
/// tiers (`check`, `status`, `report`) and alert levels:
/// - at or over `cap * grace_pct / 100` on a hard_stop or stop arm: the
///   hard stop;
/// - at or over the cap: the cap;
/// - at or over `alert_at_pct` percent of the cap: the alert mark (0 turns
///   it off);
/// - otherwise nothing.
pub fn crossed(spent: Micros, cap: Micros, policy: &Policy) -> Crossed {
    if policy.action.has_hard_stop() && spent >= hard_stop_at(cap, policy) {
        Crossed::HardStop
    } else if spent >= cap {
        Crossed::Cap
    } else if policy.alert_at_pct > 0 && spent >= cap.scale_pct(policy.alert_at_pct) {
        Crossed::AlertAt
    } else {
        Crossed::Nothing
    }
}

/// The tier of `spent` against `cap` under Octorato's rules: what
/// [`crossed`] reached, as the arm's action enforces it (the hard stop of
/// a stop arm is `stop`; the cap of an alert-only arm is `alert`).
pub fn tier(spent: Micros, cap: Micros, policy: &Policy) -> Tier {
    match crossed(spent, cap, policy) {
        Crossed::HardStop if policy.action == Action::Stop => Tier::Stop,
        Crossed::HardStop => Tier::HardStop,
        Crossed::Cap if policy.action == Action::Alert => Tier::Alert,
        Crossed::Cap => Tier::Warn,
        Crossed::AlertAt => Tier::Alert,
        Crossed::Nothing => Tier::Ok,
    }
}

/// Where a hard_stop (or stop) arm is stopped: the cap times its grace.
pub fn hard_stop_at(cap: Micros, policy: &Policy) -> Micros {
    cap.scale_pct(policy.grace_pct)
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
    fn forecast_waits_a_day_then_projects_linearly() {
        let m = Period::containing(
            PeriodKind::Month,
            at("2026-11-10T00:00:00Z"),
            chrono_tz::Tz::UTC,
        );
        assert_eq!(forecast(Micros(100), &m, at("2026-11-01T12:00:00Z")), None);
        // 10 of 30 days: x3.
        assert_eq!(
            forecast(Micros(300_000_000), &m, at("2026-11-11T00:00:00Z")),
            Some(Micros(900_000_000))
        );
    }
}
