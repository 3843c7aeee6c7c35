//! The report model: spend per arm (with its cap and tier for the period),
//! unattributed spend and the total, optionally broken down by model, local
//! day, session or git branch. Built from the ledger through the spend engine;
//! rendered by the binary's `output` (table, JSON, CSV).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::budget::{tier, Period, PeriodKind, Tier};
use crate::ledger::query::Filter;
use crate::ledger::{Result, Store};
use crate::money::{Micros, Picos};
use crate::spend::{Engine, Owner, Tally};
use crate::transcript::discover::Unreadable;
use crate::Loaded;

/// What the rows break spend down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Arm,
    Model,
    Day,
    Session,
    Branch,
    /// Transcribed responses vs. requests Claude Code counted but never
    /// wrote.
    Kind,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Arm => "arm",
            By::Model => "model",
            By::Day => "day",
            By::Session => "session",
            By::Branch => "branch",
            By::Kind => "kind",
        }
    }
}

/// A row of the report: an arm, unattributed spend, or the total.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub kind: RowKind,
    pub cap: Option<Micros>,
    pub tier: Option<Tier>,
    pub tally: Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Arm,
    Unattributed,
    Total,
    Breakdown,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Arm => "arm",
            RowKind::Unattributed => "unattributed",
            RowKind::Total => "total",
            RowKind::Breakdown => "breakdown",
        }
    }
}

impl Row {
    pub fn spent_pct(&self) -> Option<f64> {
        self.cap
            .and_then(|c| Micros::percent_of(self.tally.spent(), c))
    }

    fn of(label: String, kind: RowKind, tally: Tally) -> Row {
        Row {
            label,
            kind,
            cap: None,
            tier: None,
            tally,
        }
    }
}

/// Everything a report shows.
pub struct Report {
    pub period: Period,
    pub timezone: chrono_tz::Tz,
    pub arms: Vec<Row>,
    pub unattributed: Option<Row>,
    pub total: Row,
    pub breakdown: Option<(By, Vec<Row>)>,
    pub unpriced: BTreeMap<String, Tally>,
    pub skipped_lines: u64,
    /// Transcript files and folders this run could not read.
    pub unreadable: Vec<Unreadable>,
    pub prices_effective_from: NaiveDate,
}

impl Report {
    fn breakdown_costs(&self) -> Vec<Picos> {
        self.breakdown
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(|r| r.tally.cost))
            .collect()
    }

    /// The breakdown rows' spend in micro-dollars, apportioned (largest
    /// remainder) so that the rows add up exactly to their total rounded
    /// once, as `totals.cost_usd` is: `--json` and `--csv`.
    pub fn breakdown_micros(&self) -> Vec<Micros> {
        crate::money::apportion_micros(&self.breakdown_costs())
    }

    /// The same in whole cents, adding up to the total as the table shows
    /// it.
    pub fn breakdown_cents(&self) -> Vec<Micros> {
        crate::money::apportion_cents(&self.breakdown_costs())
    }

    /// The rows a table or CSV prints, each with the amount to print, the
    /// total last. Breakdown rows take `breakdown` (their apportioned
    /// amounts, [`Self::breakdown_micros`] or [`Self::breakdown_cents`]) so
    /// that they add up to the total; arm rows are each rounded once (they
    /// are compared with their caps).
    pub fn printed_rows(&self, breakdown: Vec<Micros>) -> Vec<(&Row, Micros)> {
        let mut rows: Vec<(&Row, Micros)> = match &self.breakdown {
            Some((_, rows)) => rows.iter().zip(breakdown).collect(),
            None => self
                .arms
                .iter()
                .chain(self.unattributed.iter())
                .map(|row| (row, row.tally.spent()))
                .collect(),
        };
        rows.push((&self.total, self.total.tally.spent()));
        rows
    }
}

/// What to report.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub period: Period,
    pub by: By,
    /// Only this owner's spend (`None`: everyone's).
    pub only: Option<Owner>,
}

/// The report of `req` as of `now`. `unreadable` is left empty (the
/// caller knows what its ingest could not read).
pub fn build(
    loaded: &Loaded,
    ledger: &dyn Store,
    now: DateTime<Utc>,
    req: &Request,
) -> Result<Report> {
    let cfg = &loaded.config;
    let tz = cfg.timezone;
    let wanted = |o: Owner| req.only.is_none_or(|only| only == o);
    let mut engine = Engine::new(ledger, loaded.attributor(), loaded.prices(), now);
    let window = engine.window(&req.period);
    let mut per_arm: Vec<Tally> = vec![Tally::default(); cfg.arms.len()];
    let mut unattributed = Tally::default();
    let mut breakdown: BTreeMap<String, Tally> = BTreeMap::new();
    // Per branch, the window's responses are read (the rollup has no
    // branch); every other breakdown reads the rollup.
    let filter = Filter {
        by_branch: req.by == By::Branch,
        ..Filter::default()
    };
    engine.each(window.start, window.end, &filter, &wanted, |g, owner, c| {
        match owner {
            Owner::Arm(i) => per_arm[i].add(g, c),
            Owner::Unattributed => unattributed.add(g, c),
        }
        let key = match req.by {
            By::Arm | By::Day => return,
            By::Model => g.model.clone(),
            By::Session if g.session_id.is_empty() => "(none)".into(),
            By::Session => g.session_id.clone(),
            By::Branch if g.branch.is_empty() => "(no branch)".into(),
            By::Branch => g.branch.clone(),
            By::Kind if g.unwritten => "unwritten".into(),
            By::Kind => "transcribed".into(),
        };
        breakdown.entry(key).or_default().add(g, c);
    })?;
    // A breakdown by day must use local days: the rollup's groups are UTC
    // days, so re-read by local day boundaries.
    let breakdown = match req.by {
        By::Arm => None,
        By::Day => Some(by_local_day(loaded, ledger, now, &window, &wanted)?),
        By::Model | By::Session | By::Branch | By::Kind => Some(
            breakdown
                .into_iter()
                .map(|(k, t)| Row::of(k, RowKind::Breakdown, t))
                .collect(),
        ),
    };
    let cap_of = |a: &crate::config::Arm| match req.period.kind {
        PeriodKind::Month => a.caps.monthly,
        PeriodKind::Week => a.caps.weekly,
        PeriodKind::Day => a.caps.daily,
        PeriodKind::All | PeriodKind::Custom => None,
    };
    let mut total = Tally::default();
    let mut arms = Vec::new();
    for (i, a) in cfg.arms.iter().enumerate() {
        if !wanted(Owner::Arm(i)) {
            continue;
        }
        let t = std::mem::take(&mut per_arm[i]);
        total.merge(&t);
        let cap = cap_of(a);
        arms.push(Row {
            label: a.name.clone(),
            kind: RowKind::Arm,
            cap,
            tier: cap.map(|c| tier(t.spent(), c, &a.policy)),
            tally: t,
        });
    }
    let unattributed = wanted(Owner::Unattributed).then(|| {
        total.merge(&unattributed);
        Row::of("unattributed".into(), RowKind::Unattributed, unattributed)
    });
    Ok(Report {
        period: req.period,
        timezone: tz,
        arms,
        unattributed,
        total: Row::of("total".into(), RowKind::Total, total),
        breakdown: breakdown.map(|rows| (req.by, rows)),
        unpriced: engine.unpriced(),
        skipped_lines: ledger.skipped_lines()?,
        unreadable: Vec::new(),
        prices_effective_from: loaded.prices().effective_from,
    })
}

/// Spend per local calendar day of `window`, one ledger read per day.
/// (Its own engine: the models it finds unpriced are listed already.)
fn by_local_day(
    loaded: &Loaded,
    ledger: &dyn Store,
    now: DateTime<Utc>,
    window: &Period,
    wanted: &dyn Fn(Owner) -> bool,
) -> Result<Vec<Row>> {
    let tz = loaded.config.timezone;
    let mut engine = Engine::new(ledger, loaded.attributor(), loaded.prices(), now);
    let mut rows = Vec::new();
    let Some((first, last)) = ledger.time_span()? else {
        return Ok(rows);
    };
    let start = window.start.max(first);
    let end = window.end.min(last + Duration::milliseconds(1));
    if end <= start {
        return Ok(rows);
    }
    let mut day = start.with_timezone(&tz).date_naive();
    let last_day = (end - Duration::milliseconds(1))
        .with_timezone(&tz)
        .date_naive();
    while day <= last_day {
        let p = Period::dates(day, day, tz);
        let (from, to) = (p.start.max(window.start), p.end.min(window.end));
        let mut t = Tally::default();
        engine.each(from, to, &Filter::default(), wanted, |g, _, c| t.add(g, c))?;
        if t.messages > 0 || t.cost.0 != 0 {
            rows.push(Row::of(day.to_string(), RowKind::Breakdown, t));
        }
        day = day.succ_opt().expect("a next day");
    }
    Ok(rows)
}
