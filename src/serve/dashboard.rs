//! The dashboard at `/`: one row per arm (a bar against each cap, its
//! tier, burn rate, forecast and 30 days of spend as an inline SVG chart),
//! the team total, unattributed spend, the month's most expensive sessions
//! and branches, and the price table's date. Rendered on the server
//! (minijinja templates compiled into the binary); `/live` is the same
//! without the page around it, which the page's script fetches every few
//! seconds. No outside resource: the CSS and the script are served from
//! `/assets/`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Reply, State};
use octo_budget::budget::caps::worst_tier;
use octo_budget::budget::{forecast, CapState, Evaluator, Period, PeriodKind, Scope, Tier};
use octo_budget::ledger::query::Filter;
use octo_budget::ledger::Ledger;
use octo_budget::money::Micros;
use octo_budget::report::{build, By, Request};
use octo_budget::spend::{Owner, Tally};
use octo_budget::Loaded;

const PAGE: &str = include_str!("assets/page.html");
const LIVE: &str = include_str!("assets/live.html");
const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// Days in the spend chart.
const DAYS: usize = 30;
/// Rows in the most-expensive lists.
const TOP: usize = 8;

pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", PAGE)
        .expect("page.html is a valid template");
    env.add_template("live.html", LIVE)
        .expect("live.html is a valid template");
    env
}

pub fn asset(name: &str) -> Reply {
    let (content_type, body) = match name {
        "app.css" => ("text/css; charset=utf-8", CSS),
        "app.js" => ("text/javascript; charset=utf-8", JS),
        _ => return Reply::error(404, "no such asset"),
    };
    Reply {
        status: 200,
        content_type,
        body: body.as_bytes().to_vec(),
    }
}

/// `/` (the whole page) or `/live` (its live part).
pub fn page(state: &State, ledger: &Ledger, query: &str, live: bool) -> Reply {
    if !query.is_empty() {
        return Reply::error(400, "the dashboard takes no parameters");
    }
    let view = match view(state, ledger) {
        Ok(v) => v,
        Err(e) => return Reply::internal(&e),
    };
    let name = if live { "live.html" } else { "page.html" };
    let rendered = state
        .templates
        .get_template(name)
        .and_then(|t| t.render(minijinja::context! { d => view }));
    match rendered {
        Ok(html) => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: html.into_bytes(),
        },
        Err(e) => Reply::internal(&e),
    }
}

#[derive(Debug, Serialize)]
pub struct View {
    pub now: String,
    pub timezone: &'static str,
    pub month: String,
    pub prices_date: String,
    pub arms: Vec<ArmView>,
    pub total: ArmView,
    pub unattributed: ArmView,
    pub sessions: Vec<Top>,
    pub branches: Vec<Top>,
    pub unreadable: usize,
}

#[derive(Debug, Serialize)]
pub struct ArmView {
    pub name: String,
    pub action: String,
    pub tier: Tier,
    pub month: String,
    pub forecast: Option<String>,
    pub burn: String,
    pub caps: Vec<CapView>,
    pub chart: Chart,
}

#[derive(Debug, Serialize)]
pub struct CapView {
    pub kind: &'static str,
    pub limit: String,
    pub spent: String,
    pub pct: String,
    /// The bar's width in percent of its track (at most 100).
    pub width: String,
    pub tier: Tier,
}

#[derive(Debug, Serialize)]
pub struct Chart {
    pub bars: Vec<Bar>,
    pub max: String,
    pub first: String,
    pub last: String,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub x: u32,
    pub y: String,
    pub h: String,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct Top {
    pub key: String,
    pub cost: String,
}

fn view(state: &State, ledger: &Ledger) -> octo_budget::ledger::Result<View> {
    let loaded = &*state.loaded();
    let cfg = &loaded.config;
    let tz = cfg.timezone;
    let now = state.now();
    let eval = Evaluator {
        loaded,
        ledger,
        now,
    };
    let mut engine = eval.engine();
    let month = Period::containing(PeriodKind::Month, now, tz);
    let n = cfg.arms.len();
    let by_month = engine.by_owner(&month, n)?;
    let by_hour = engine.by_owner(&Period::trailing_hour(now), n)?;
    let days = per_day(loaded, ledger, now, n)?;
    let owner_row = |name: String,
                     action: String,
                     caps: &[CapState],
                     spent: &Tally,
                     hour: &Tally,
                     days: &[Micros]| ArmView {
        name,
        action,
        tier: worst_tier(caps),
        month: spent.spent().to_string(),
        forecast: forecast(spent.spent(), &month, now).map(|m| m.to_string()),
        burn: format!("{}/h", hour.spent()),
        caps: caps.iter().map(cap_view).collect(),
        chart: chart(days, now, tz),
    };
    let mut arms = Vec::new();
    for (i, a) in cfg.arms.iter().enumerate() {
        let caps: Vec<CapState> = eval
            .caps(Some(i), None)?
            .into_iter()
            .filter(|c| matches!(c.scope, Scope::Arm(_)))
            .collect();
        arms.push(owner_row(
            a.name.clone(),
            a.policy.action.as_str().to_owned(),
            &caps,
            &by_month.arms[i],
            &by_hour.arms[i],
            &days[i],
        ));
    }
    let total_caps: Vec<CapState> = eval
        .caps(None, None)?
        .into_iter()
        .filter(|c| c.scope == Scope::Total)
        .collect();
    let mut all_month = by_month.unattributed.clone();
    let mut all_hour = by_hour.unattributed.clone();
    for i in 0..n {
        all_month.merge(&by_month.arms[i]);
        all_hour.merge(&by_hour.arms[i]);
    }
    let all_days: Vec<Micros> = (0..DAYS)
        .map(|d| days.iter().fold(Micros(0), |s, o| s + o[d]))
        .collect();
    let total = owner_row(
        "total".into(),
        cfg.total
            .as_ref()
            .map(|t| t.policy.action.as_str().to_owned())
            .unwrap_or_default(),
        &total_caps,
        &all_month,
        &all_hour,
        &all_days,
    );
    let unattributed = owner_row(
        "unattributed".into(),
        String::new(),
        &[],
        &by_month.unattributed,
        &by_hour.unattributed,
        &days[n],
    );
    let top = |by: By| -> octo_budget::ledger::Result<Vec<Top>> {
        let r = build(
            loaded,
            ledger,
            now,
            &Request {
                period: month,
                by,
                only: None,
            },
        )?;
        let mut rows: Vec<(Micros, String)> = r
            .breakdown
            .map(|(_, rows)| {
                rows.into_iter()
                    .map(|row| (row.tally.spent(), row.label))
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(rows
            .into_iter()
            .filter(|(c, _)| c.0 > 0)
            .take(TOP)
            .map(|(c, key)| Top {
                key,
                cost: c.to_string(),
            })
            .collect())
    };
    Ok(View {
        now: now
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        timezone: tz.name(),
        month: now.with_timezone(&tz).format("%B %Y").to_string(),
        prices_date: loaded.prices().effective_from.to_string(),
        arms,
        total,
        unattributed,
        sessions: top(By::Session)?,
        branches: top(By::Branch)?,
        unreadable: state.unreadable().len(),
    })
}

/// Spend per owner (arms, then unattributed last) per local day, the last
/// [`DAYS`] days up to now, oldest first.
fn per_day(
    loaded: &Loaded,
    ledger: &Ledger,
    now: DateTime<Utc>,
    arms: usize,
) -> octo_budget::ledger::Result<Vec<Vec<Micros>>> {
    let tz = loaded.config.timezone;
    let mut engine =
        octo_budget::spend::Engine::new(ledger, loaded.attributor(), loaded.prices(), now);
    let today = now.with_timezone(&tz).date_naive();
    let mut out = vec![vec![Micros(0); DAYS]; arms + 1];
    let days = (0..DAYS)
        .rev()
        .map(|back| today - Duration::days(back as i64));
    for (d, day) in days.enumerate() {
        let p = engine.window(&Period::dates(day, day, tz));
        if p.end <= p.start {
            continue;
        }
        let mut tallies: BTreeMap<usize, Tally> = BTreeMap::new();
        engine.each(p.start, p.end, &Filter::default(), &|_| true, |g, o, c| {
            let k = match o {
                Owner::Arm(i) if i < arms => i,
                _ => arms,
            };
            tallies.entry(k).or_default().add(g, c);
        })?;
        for (k, t) in tallies {
            out[k][d] = t.spent();
        }
    }
    Ok(out)
}

fn cap_view(c: &CapState) -> CapView {
    let pct = Micros::percent_of(c.spent, c.limit).unwrap_or(0.0);
    CapView {
        kind: c.kind.as_str(),
        limit: c.limit.to_string(),
        spent: c.spent.to_string(),
        pct: format!("{pct:.0}%"),
        width: format!("{:.1}", pct.clamp(0.0, 100.0)),
        tier: c.tier,
    }
}

/// A bar chart of `days` (oldest first) in a 300x60 box.
fn chart(days: &[Micros], now: DateTime<Utc>, tz: chrono_tz::Tz) -> Chart {
    let max = days.iter().copied().max().unwrap_or(Micros(0));
    let today = now.with_timezone(&tz).date_naive();
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let h = if max.0 > 0 {
                (v.0 as f64 / max.0 as f64 * 58.0).max(if v.0 > 0 { 1.0 } else { 0.0 })
            } else {
                0.0
            };
            let day = today - Duration::days((days.len() - 1 - i) as i64);
            Bar {
                x: i as u32 * 10,
                y: format!("{:.1}", 60.0 - h),
                h: format!("{h:.1}"),
                title: format!("{day}: {v}"),
            }
        })
        .collect();
    Chart {
        bars,
        max: max.to_string(),
        first: (today - Duration::days(days.len() as i64 - 1))
            .format("%b %-d")
            .to_string(),
        last: today.format("%b %-d").to_string(),
    }
}
