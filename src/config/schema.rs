//! budgets.yaml as written: the serde schema of the file, before
//! validation turns it into a [`super::Config`]. Every key may be left out,
//! but a key that is present must have a value (see `nonnull`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Action, Caps, OnError, Policy};
use crate::money::Micros;
use crate::pricing::table::RowSpec;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    // Every key may be left out, but a key that is present must have a
    // value: `budgets:` or `monthly_usd_cap:` left empty (null) is an
    // error, never "no budgets" or "no cap" (see `nonnull`).
    #[serde(default, deserialize_with = "nonnull::budgets")]
    pub(super) budgets: Option<Vec<RawArm>>,
    #[serde(default, deserialize_with = "nonnull::default")]
    pub(super) default: Option<RawLimits>,
    #[serde(default)]
    pub(super) spend_json: Option<serde_yaml_ng::Value>,
    #[serde(default, deserialize_with = "nonnull::timezone")]
    pub(super) timezone: Option<String>,
    #[serde(default, deserialize_with = "nonnull::claude_dirs")]
    pub(super) claude_dirs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nonnull::ledger")]
    pub(super) ledger: Option<String>,
    #[serde(default, deserialize_with = "nonnull::prices")]
    pub(super) prices: Option<BTreeMap<String, RowSpec>>,
    #[serde(default, deserialize_with = "nonnull::total")]
    pub(super) total: Option<RawLimits>,
    #[serde(default, deserialize_with = "nonnull::gate")]
    pub(super) gate: Option<RawGate>,
    #[serde(default, deserialize_with = "nonnull::alerts")]
    pub(super) alerts: Option<RawAlerts>,
    #[serde(default, deserialize_with = "nonnull::trunk_branches")]
    pub(super) trunk_branches: Option<Vec<String>>,
}

impl RawFile {
    /// True when the document holds no key at all (empty, comments only,
    /// `---`, `~`).
    pub(super) fn is_empty(&self) -> bool {
        self.budgets.is_none()
            && self.default.is_none()
            && self.spend_json.is_none()
            && self.timezone.is_none()
            && self.claude_dirs.is_none()
            && self.ledger.is_none()
            && self.prices.is_none()
            && self.total.is_none()
            && self.gate.is_none()
            && self.alerts.is_none()
            && self.trunk_branches.is_none()
    }
}

/// A key that is present must have a value: `key:` with nothing after it
/// (or `null`, `~`) is an error, for every key. Used with
/// `#[serde(default)]`, so that a key left out is still `None`.
mod nonnull {
    use serde::{Deserialize, Deserializer};

    pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
        key: &str,
    ) -> Result<Option<T>, D::Error> {
        match Option::<T>::deserialize(d)? {
            Some(v) => Ok(Some(v)),
            // `serde_error` says which key (its path) was left empty.
            None => Err(serde::de::Error::custom(format!("empty key `{key}`"))),
        }
    }

    macro_rules! keys {
        ($($key:ident)*) => {$(
            pub fn $key<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
                d: D,
            ) -> Result<Option<T>, D::Error> {
                present(d, stringify!($key))
            }
        )*};
    }

    keys!(budgets default timezone claude_dirs ledger prices total gate alerts monthly_usd_cap weekly_usd_cap daily_usd_cap session_usd_cap max_usd_per_hour grace_pct action_on_breach alert_at_pct path paths tools on_error spike_mad spike_min_usd unattributed_pct unattributed_min_usd branch_usd_cap branch_caps trunk_branches);
}

/// Caps and policy, as an arm, the `default:` block or `total:` has them.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default, deserialize_with = "nonnull::monthly_usd_cap")]
    pub(super) monthly_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::weekly_usd_cap")]
    pub(super) weekly_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::daily_usd_cap")]
    pub(super) daily_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::session_usd_cap")]
    pub(super) session_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::max_usd_per_hour")]
    pub(super) max_usd_per_hour: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::branch_usd_cap")]
    pub(super) branch_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::branch_caps")]
    pub(super) branch_caps: Option<serde_yaml_ng::Mapping>,
    #[serde(default, deserialize_with = "nonnull::grace_pct")]
    pub(super) grace_pct: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::action_on_breach")]
    pub(super) action_on_breach: Option<Action>,
    #[serde(default, deserialize_with = "nonnull::alert_at_pct")]
    pub(super) alert_at_pct: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArm {
    pub(super) arm: String,
    #[serde(default, deserialize_with = "nonnull::path")]
    pub(super) path: Option<String>,
    #[serde(default, deserialize_with = "nonnull::paths")]
    pub(super) paths: Option<Vec<String>>,
    // The fields of `RawLimits`, spelled out: serde's `flatten` would lose
    // the line numbers of errors inside an arm.
    #[serde(default, deserialize_with = "nonnull::monthly_usd_cap")]
    pub(super) monthly_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::weekly_usd_cap")]
    pub(super) weekly_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::daily_usd_cap")]
    pub(super) daily_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::session_usd_cap")]
    pub(super) session_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::max_usd_per_hour")]
    pub(super) max_usd_per_hour: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::branch_usd_cap")]
    pub(super) branch_usd_cap: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::branch_caps")]
    pub(super) branch_caps: Option<serde_yaml_ng::Mapping>,
    #[serde(default, deserialize_with = "nonnull::grace_pct")]
    pub(super) grace_pct: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::action_on_breach")]
    pub(super) action_on_breach: Option<Action>,
    #[serde(default, deserialize_with = "nonnull::alert_at_pct")]
    pub(super) alert_at_pct: Option<f64>,
}

impl RawArm {
    pub(super) fn limits(&self) -> RawLimits {
        RawLimits {
            monthly_usd_cap: self.monthly_usd_cap,
            weekly_usd_cap: self.weekly_usd_cap,
            daily_usd_cap: self.daily_usd_cap,
            session_usd_cap: self.session_usd_cap,
            max_usd_per_hour: self.max_usd_per_hour,
            branch_usd_cap: self.branch_usd_cap,
            branch_caps: self.branch_caps.clone(),
            grace_pct: self.grace_pct,
            action_on_breach: self.action_on_breach,
            alert_at_pct: self.alert_at_pct,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGate {
    #[serde(default, deserialize_with = "nonnull::tools")]
    pub(super) tools: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nonnull::on_error")]
    pub(super) on_error: Option<OnError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    #[serde(default, deserialize_with = "nonnull::spike_mad")]
    pub(super) spike_mad: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::spike_min_usd")]
    pub(super) spike_min_usd: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::unattributed_pct")]
    pub(super) unattributed_pct: Option<f64>,
    #[serde(default, deserialize_with = "nonnull::unattributed_min_usd")]
    pub(super) unattributed_min_usd: Option<f64>,
}

/// Every key the file may hold, for "did you mean" suggestions.
pub(super) const ARM_KEYS: &[&str] = &[
    "arm",
    "path",
    "paths",
    "monthly_usd_cap",
    "weekly_usd_cap",
    "daily_usd_cap",
    "session_usd_cap",
    "max_usd_per_hour",
    "branch_usd_cap",
    "branch_caps",
    "grace_pct",
    "action_on_breach",
    "alert_at_pct",
];

impl RawLimits {
    pub(super) fn or(&self, d: &RawLimits) -> RawLimits {
        RawLimits {
            monthly_usd_cap: self.monthly_usd_cap.or(d.monthly_usd_cap),
            weekly_usd_cap: self.weekly_usd_cap.or(d.weekly_usd_cap),
            daily_usd_cap: self.daily_usd_cap.or(d.daily_usd_cap),
            session_usd_cap: self.session_usd_cap.or(d.session_usd_cap),
            max_usd_per_hour: self.max_usd_per_hour.or(d.max_usd_per_hour),
            branch_usd_cap: self.branch_usd_cap.or(d.branch_usd_cap),
            branch_caps: self.branch_caps.clone().or_else(|| d.branch_caps.clone()),
            grace_pct: self.grace_pct.or(d.grace_pct),
            action_on_breach: self.action_on_breach.or(d.action_on_breach),
            alert_at_pct: self.alert_at_pct.or(d.alert_at_pct),
        }
    }

    pub(super) fn caps(&self) -> Caps {
        let m = |v: Option<f64>| v.map(Micros::from_f64_dollars);
        Caps {
            monthly: m(self.monthly_usd_cap),
            weekly: m(self.weekly_usd_cap),
            daily: m(self.daily_usd_cap),
            session: m(self.session_usd_cap),
            per_hour: m(self.max_usd_per_hour),
            branch: m(self.branch_usd_cap),
        }
    }

    pub(super) fn policy(&self) -> Policy {
        Policy {
            grace_pct: self.grace_pct.map(|g| g.round() as u32).unwrap_or(110),
            action: self.action_on_breach.unwrap_or_default(),
            alert_at_pct: self.alert_at_pct.map(|g| g.round() as u32).unwrap_or(80),
        }
    }
}
