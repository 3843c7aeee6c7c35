//! JSON output of `report` and `status`. The shapes here are a contract
//! (README, "JSON output"): each is a serde type, serialized as declared.

use std::io::{self, Write};

use octo_budget::budget::{CapState, PeriodKind, Tier};
use octo_budget::model::Usage;
use octo_budget::money::Micros;
use octo_budget::report::{Report, Row};
use octo_budget::spend::Tally;
use serde::{Serialize, Serializer};

/// Dollars as a JSON number with micro-dollar precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usd(pub Micros);

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Parsed from the exact decimal, so that the shortest float that
        // reads back as it is printed: no binary rounding shows.
        s.serialize_f64(self.0.plain().parse::<f64>().unwrap_or(0.0))
    }
}

/// Token counts of a row.
#[derive(Debug, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

impl Tokens {
    pub fn of(t: &Tally) -> Tokens {
        Tokens::from(&t.usage)
    }
}

impl From<&Usage> for Tokens {
    fn from(u: &Usage) -> Tokens {
        Tokens {
            input: u.input,
            output: u.output,
            cache_write_5m: u.cache_write_5m,
            cache_write_1h: u.cache_write_1h,
            cache_read: u.cache_read,
        }
    }
}

/// The sums every row of a report carries.
#[derive(Debug, Serialize)]
pub struct Sums {
    pub cost_usd: Usd,
    pub messages: i64,
    pub sessions: usize,
    pub tokens: Tokens,
    pub web_search_requests: u64,
    /// The part of the above from requests Claude Code counted
    /// (cost-state) but never wrote as responses.
    pub unwritten: Unwritten,
}

/// `unwritten` of a row.
#[derive(Debug, Serialize)]
pub struct Unwritten {
    pub cost_usd: Usd,
    pub tokens: Tokens,
    pub web_search_requests: u64,
}

impl Sums {
    fn of(t: &Tally, cost: Micros) -> Sums {
        Sums {
            cost_usd: Usd(cost),
            messages: t.messages,
            sessions: t.sessions.len(),
            tokens: Tokens::of(t),
            web_search_requests: t.usage.web_search,
            unwritten: Unwritten {
                cost_usd: Usd(t.unwritten_cost.to_micros()),
                tokens: Tokens::from(&t.unwritten),
                web_search_requests: t.unwritten.web_search,
            },
        }
    }
}

/// `period`: `start` and `end` are null for all time.
#[derive(Debug, Serialize)]
pub struct PeriodDoc {
    pub kind: &'static str,
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ArmRow {
    pub arm: String,
    #[serde(flatten)]
    pub sums: Sums,
    pub cap_usd: Option<Usd>,
    pub spent_pct: Option<f64>,
    pub tier: Option<Tier>,
}

#[derive(Debug, Serialize)]
pub struct BreakdownRow {
    pub key: String,
    #[serde(flatten)]
    pub sums: Sums,
}

#[derive(Debug, Serialize)]
pub struct Breakdown {
    pub by: &'static str,
    pub rows: Vec<BreakdownRow>,
}

#[derive(Debug, Serialize)]
pub struct UnpricedModel {
    pub model: String,
    pub messages: i64,
    pub tokens: Tokens,
    pub priced_as_usd: Usd,
}

#[derive(Debug, Serialize)]
pub struct PricesDoc {
    pub effective_from: String,
}

/// `report --json`.
#[derive(Debug, Serialize)]
pub struct ReportDoc {
    pub period: PeriodDoc,
    pub timezone: &'static str,
    pub arms: Vec<ArmRow>,
    pub unattributed: Option<Sums>,
    pub totals: Sums,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    pub unpriced_models: Vec<UnpricedModel>,
    pub skipped_lines: u64,
    pub unreadable_files: usize,
    pub prices: PricesDoc,
}

impl ReportDoc {
    pub fn of(r: &Report) -> ReportDoc {
        let tz = r.timezone;
        let period = match r.period.kind {
            PeriodKind::All => PeriodDoc {
                kind: "all",
                start: None,
                end: None,
            },
            kind => PeriodDoc {
                kind: kind.as_str(),
                start: Some(r.period.start.with_timezone(&tz).to_rfc3339()),
                end: Some(r.period.end.with_timezone(&tz).to_rfc3339()),
            },
        };
        let arm_row = |row: &Row| ArmRow {
            arm: row.label.clone(),
            sums: Sums::of(&row.tally, row.tally.spent()),
            cap_usd: row.cap.map(Usd),
            spent_pct: row.spent_pct(),
            tier: row.tier,
        };
        // Rows add up to `totals.cost_usd` exactly (largest remainder).
        let breakdown = r.breakdown.as_ref().map(|(by, rows)| Breakdown {
            by: by.as_str(),
            rows: rows
                .iter()
                .zip(r.breakdown_micros())
                .map(|(row, spent)| BreakdownRow {
                    key: row.label.clone(),
                    sums: Sums::of(&row.tally, spent),
                })
                .collect(),
        });
        ReportDoc {
            period,
            timezone: tz.name(),
            arms: r.arms.iter().map(arm_row).collect(),
            unattributed: r
                .unattributed
                .as_ref()
                .map(|u| Sums::of(&u.tally, u.tally.spent())),
            totals: Sums::of(&r.total.tally, r.total.tally.spent()),
            breakdown,
            unpriced_models: r
                .unpriced
                .iter()
                .map(|(model, t)| UnpricedModel {
                    model: model.clone(),
                    messages: t.messages,
                    tokens: Tokens::of(t),
                    priced_as_usd: Usd(t.spent()),
                })
                .collect(),
            skipped_lines: r.skipped_lines,
            unreadable_files: r.unreadable.len(),
            prices: PricesDoc {
                effective_from: r.prices_effective_from.to_string(),
            },
        }
    }
}

pub fn report(out: &mut impl Write, r: &Report) -> io::Result<()> {
    pretty(out, &ReportDoc::of(r))
}

/// One cap in `status --json`.
#[derive(Debug, Serialize)]
pub struct CapDoc {
    pub scope: String,
    pub branch: Option<String>,
    pub cap: &'static str,
    pub limit_usd: Usd,
    pub spent_usd: Usd,
    pub remaining_usd: Usd,
    pub spent_pct: Option<f64>,
    pub tier: Tier,
    pub action: &'static str,
    pub hard_stop_at_usd: Option<Usd>,
    pub period_start: String,
    pub resets: Option<String>,
    pub over: bool,
}

impl CapDoc {
    pub fn of(c: &CapState, tz: chrono_tz::Tz) -> CapDoc {
        CapDoc {
            scope: c.scope.owner().to_owned(),
            branch: c.scope.branch().map(str::to_owned),
            cap: c.kind.as_str(),
            limit_usd: Usd(c.limit),
            spent_usd: Usd(c.spent),
            remaining_usd: Usd(c.remaining()),
            spent_pct: Micros::percent_of(c.spent, c.limit),
            tier: c.tier,
            action: c.policy.action.as_str(),
            hard_stop_at_usd: c.hard_stop_at().map(Usd),
            period_start: c.period.start.with_timezone(&tz).to_rfc3339(),
            resets: c.resets().map(|r| r.with_timezone(&tz).to_rfc3339()),
            over: c.spent >= c.limit,
        }
    }
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub arm: Option<String>,
    pub now: String,
    pub timezone: &'static str,
    pub decision: &'static str,
    pub over_budget: bool,
    pub session_halted: bool,
    pub tier: Tier,
    pub reason: Option<String>,
    pub caps: Vec<CapDoc>,
    /// The branch whose cap is evaluated (`--branch`, else the session's).
    pub branch: Option<String>,
    pub branch_cap: Option<CapDoc>,
    pub unreadable_files: usize,
}

/// `v` as pretty JSON and a newline.
pub fn pretty(out: &mut impl Write, v: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_is_exact_to_the_micro_dollar() {
        let s = |m| serde_json::to_string(&Usd(Micros(m))).unwrap();
        assert_eq!(s(1_123_400_000), "1123.4");
        assert_eq!(s(27_856), "0.027856");
        assert_eq!(s(0), "0.0");
    }
}
