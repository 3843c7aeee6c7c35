//! `octo-budget report`: spend per arm (or per model, day, session or git
//! branch).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Result};
use chrono::{Duration, NaiveDate};

use super::{print_notices, Context};
use crate::budget::{tier, Period, PeriodKind, Tier};
use crate::cli::{ByArg, PeriodArg, ReportArgs, UsageError};
use crate::exit;
use crate::ledger::query::Filter;
use crate::money::Micros;
use crate::output;
use crate::spend::{Owner, Pricer, Resolver, Tally};

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

impl Row {
    pub fn spent_pct(&self) -> Option<f64> {
        self.cap
            .and_then(|c| Micros::percent_of(self.tally.spent(), c))
    }
}

/// Everything a report shows.
pub struct Report {
    pub period: Period,
    pub timezone: chrono_tz::Tz,
    pub arms: Vec<Row>,
    pub unattributed: Option<Row>,
    pub total: Row,
    pub breakdown: Option<(ByArg, Vec<Row>)>,
    pub unpriced: BTreeMap<String, Tally>,
    pub skipped_lines: u64,
    /// Transcript files and folders this run could not read.
    pub unreadable: Vec<crate::transcript::discover::Unreadable>,
    pub prices_effective_from: NaiveDate,
}

impl Report {
    fn breakdown_costs(&self) -> Vec<crate::money::Picos> {
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
}

pub fn run(ctx: &Context, args: &ReportArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let cfg = &loaded.config;
    let tz = cfg.timezone;
    if let Some(a) = &args.arm {
        if a != "unattributed" && cfg.arm(a).is_none() {
            bail!(super::unknown_arm(cfg, a));
        }
    }
    // Usage mistakes are said before the ledger is opened or read.
    let period = match (args.since, args.until) {
        (None, None) => {
            let kind = match args.period {
                PeriodArg::Day => PeriodKind::Day,
                PeriodArg::Week => PeriodKind::Week,
                PeriodArg::Month => PeriodKind::Month,
                PeriodArg::All => PeriodKind::All,
            };
            Period::containing(kind, ctx.now, tz)
        }
        (since, until) => {
            let today = ctx.now.with_timezone(&tz).date_naive();
            let until = until.unwrap_or(today);
            let since = since.unwrap_or(NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date"));
            if since > until {
                bail!(UsageError(format!(
                    "--since {since} is after --until {until}"
                )));
            }
            Period::dates(since, until, tz)
        }
    };
    let mut ledger = ctx.open_ledger(cfg, std::time::Duration::from_secs(30))?;
    let ingested = ctx.ingest_all(&loaded, &mut ledger, !args.json && !args.csv)?;
    // Spend up to now: a report "as of --now" ignores later records.
    let window = period.until(ctx.now + Duration::milliseconds(1));
    // Per branch, the window's responses are read (the rollup has no
    // branch); every other breakdown reads the rollup.
    let filter = Filter {
        by_branch: args.by == ByArg::Branch,
        ..Filter::default()
    };
    let groups = ledger.groups(window.start, window.end, &filter)?;
    let places = ledger.places()?;
    let session_cwds = ledger.session_cwds(&groups, &places)?;
    let resolver = Resolver {
        attributor: &loaded.attributor,
        places: &places,
        session_cwds: &session_cwds,
    };
    let mut pricer = Pricer::new(loaded.prices());

    let wanted = |o: Owner| match &args.arm {
        None => true,
        Some(name) if name == "unattributed" => o == Owner::Unattributed,
        Some(name) => matches!(o, Owner::Arm(i) if cfg.arms[i].name == *name),
    };
    let mut per_arm: Vec<Tally> = vec![Tally::default(); cfg.arms.len()];
    let mut unattributed = Tally::default();
    let mut breakdown: BTreeMap<String, Tally> = BTreeMap::new();
    for g in &groups {
        let owner = resolver.owner(g.place_id, &g.session_id);
        if !wanted(owner) {
            continue;
        }
        let c = pricer.cost(g);
        match owner {
            Owner::Arm(i) => per_arm[i].add(g, c),
            Owner::Unattributed => unattributed.add(g, c),
        }
        let key = match args.by {
            ByArg::Arm | ByArg::Day => continue,
            ByArg::Model => g.model.clone(),
            ByArg::Kind => if g.unwritten {
                "unwritten"
            } else {
                "transcribed"
            }
            .into(),
            ByArg::Session => {
                if g.session_id.is_empty() {
                    "(none)".into()
                } else {
                    g.session_id.clone()
                }
            }
            ByArg::Branch => {
                if g.branch.is_empty() {
                    "(no branch)".into()
                } else {
                    g.branch.clone()
                }
            }
        };
        breakdown.entry(key).or_default().add(g, c);
    }
    // A breakdown by day must use local days: the rollup's groups are UTC
    // days, so re-read by local day boundaries.
    let breakdown = match args.by {
        ByArg::Arm => None,
        ByArg::Day => Some(by_local_day(
            &ledger,
            &window,
            tz,
            &resolver,
            loaded.prices(),
            &wanted,
        )?),
        ByArg::Model | ByArg::Session | ByArg::Branch | ByArg::Kind => Some(
            breakdown
                .into_iter()
                .map(|(k, t)| Row {
                    label: k,
                    kind: RowKind::Breakdown,
                    cap: None,
                    tier: None,
                    tally: t,
                })
                .collect(),
        ),
    };
    let cap_of = |a: &crate::config::Arm| match period.kind {
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
    let unattributed = if wanted(Owner::Unattributed) {
        total.merge(&unattributed);
        Some(Row {
            label: "unattributed".into(),
            kind: RowKind::Unattributed,
            cap: None,
            tier: None,
            tally: unattributed,
        })
    } else {
        None
    };
    let report = Report {
        period,
        timezone: tz,
        arms,
        unattributed,
        total: Row {
            label: "total".into(),
            kind: RowKind::Total,
            cap: None,
            tier: None,
            tally: total,
        },
        breakdown: breakdown.map(|rows| (args.by, rows)),
        unpriced: pricer.unpriced,
        skipped_lines: ledger.skipped_lines()?,
        unreadable: ingested.unreadable,
        prices_effective_from: loaded.prices().effective_from,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        output::json::report(&mut out, &report)?;
    } else if args.csv {
        output::csv::report(&mut out, &report)?;
    } else {
        let color = ctx.color(std::io::IsTerminal::is_terminal(&std::io::stdout()));
        output::table::report(&mut out, &report, color)?;
    }
    out.flush()?;
    Ok(exit::OK)
}

/// Spend per local calendar day of `window`, one ledger read per day.
fn by_local_day(
    ledger: &crate::ledger::Ledger,
    window: &Period,
    tz: chrono_tz::Tz,
    resolver: &Resolver<'_>,
    prices: &crate::pricing::PriceTable,
    wanted: &dyn Fn(Owner) -> bool,
) -> Result<Vec<Row>> {
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
    let mut pricer = Pricer::new(prices);
    while day <= last_day {
        let p = Period::dates(day, day, tz);
        let (from, to) = (p.start.max(window.start), p.end.min(window.end));
        let mut t = Tally::default();
        for g in ledger.groups(from, to, &Filter::default())? {
            if wanted(resolver.owner(g.place_id, &g.session_id)) {
                let c = pricer.cost(&g);
                t.add(&g, c);
            }
        }
        if t.messages > 0 || t.cost.0 != 0 {
            rows.push(Row {
                label: day.to_string(),
                kind: RowKind::Breakdown,
                cap: None,
                tier: None,
                tally: t,
            });
        }
        day = day.succ_opt().expect("a next day");
    }
    Ok(rows)
}
