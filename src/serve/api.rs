//! The JSON API: `/api/v1/report` answers exactly what `report --json`
//! prints for the same arguments, `/api/v1/arms/{arm}/status` what
//! `status --json` prints (both through the commands' own request and
//! evaluation code and the same serde types), `/api/v1/arms/{arm}/budget`
//! Entourage's `check_budget` shape, and `/healthz`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use clap::ValueEnum;
use serde::Serialize;

use super::{Reply, State};
use crate::cli::{ByArg, PeriodArg, ReportArgs};
use crate::commands::{report as report_cmd, status as status_cmd};
use crate::error::Error;
use crate::output::json::{pretty, Usd};
use octo_budget::budget::caps::{CapKind, Verdict};
use octo_budget::budget::{Evaluator, Period, PeriodKind, Scope, Tier};
use octo_budget::ledger::{Ledger, Store};
use octo_budget::money::Micros;
use octo_budget::Loaded;

/// The query's parameters: only `allowed` ones, each at most once; an
/// empty value counts as absent.
fn params(query: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, Reply> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(Reply::error(
                400,
                &format!(
                    "unknown parameter {k:?} (this endpoint takes {})",
                    allowed.join(", ")
                ),
            ));
        }
        if out.contains_key(k.as_ref()) {
            return Err(Reply::error(400, &format!("parameter {k:?} given twice")));
        }
        if !v.is_empty() {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(out)
}

fn value<T: ValueEnum>(q: &BTreeMap<String, String>, key: &str) -> Result<Option<T>, Reply> {
    let Some(v) = q.get(key) else {
        return Ok(None);
    };
    T::from_str(v, false).map(Some).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        Reply::error(
            400,
            &format!("{key}={v:?}: must be one of {}", names.join(", ")),
        )
    })
}

fn date(q: &BTreeMap<String, String>, key: &str) -> Result<Option<NaiveDate>, Reply> {
    q.get(key)
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| Reply::error(400, &format!("{key}={v:?}: not a date (YYYY-MM-DD)")))
        })
        .transpose()
}

fn arm_index(loaded: &Loaded, arm: &str) -> Result<usize, Reply> {
    loaded
        .config
        .arms
        .iter()
        .position(|a| a.name == arm)
        .ok_or_else(|| Reply::error(404, &format!("no arm named {arm:?}")))
}

fn failed(e: Error) -> Reply {
    match e {
        Error::Usage(m) => Reply::error(400, &m),
        other => Reply::internal(&other),
    }
}

fn json_of(v: &impl Serialize) -> Reply {
    let mut body = Vec::new();
    match pretty(&mut body, v) {
        Ok(()) => Reply::json(body),
        Err(e) => Reply::internal(&e),
    }
}

/// `GET /healthz`: 200 while the ledger answers.
pub fn healthz(ledger: &Ledger) -> Reply {
    match ledger.history_read() {
        Ok(_) => json_of(&serde_json::json!({"status": "ok"})),
        Err(e) => {
            eprintln!("octo-budget serve: healthz: {e}");
            Reply::error(503, "the ledger cannot be read")
        }
    }
}

/// `GET /api/v1/report?period=&since=&until=&by=&arm=`.
pub fn report(state: &State, ledger: &Ledger, query: &str) -> Reply {
    match report_doc(state, ledger, query) {
        Ok(r) | Err(r) => r,
    }
}

fn report_doc(state: &State, ledger: &Ledger, query: &str) -> Result<Reply, Reply> {
    let q = params(query, &["period", "since", "until", "by", "arm"])?;
    let period = value::<PeriodArg>(&q, "period")?;
    let (since, until) = (date(&q, "since")?, date(&q, "until")?);
    if period.is_some() && (since.is_some() || until.is_some()) {
        return Err(Reply::error(
            400,
            "period cannot be combined with since or until",
        ));
    }
    let loaded = state.loaded();
    let arm = q.get("arm").cloned();
    if let Some(a) = arm.as_deref().filter(|a| *a != "unattributed") {
        arm_index(&loaded, a)?;
    }
    let args = ReportArgs {
        period: period.unwrap_or(PeriodArg::Month),
        since,
        until,
        by: value::<ByArg>(&q, "by")?.unwrap_or(ByArg::Arm),
        arm,
        json: true,
        csv: false,
    };
    let now = state.now();
    let req = report_cmd::request(&loaded, now, &args).map_err(failed)?;
    let mut report =
        octo_budget::report::build(&loaded, ledger, now, &req).map_err(|e| Reply::internal(&e))?;
    report.unreadable = state.unreadable();
    let mut body = Vec::new();
    crate::output::json::report(&mut body, &report).map_err(|e| Reply::internal(&e))?;
    Ok(Reply::json(body))
}

/// `GET /api/v1/arms/{arm}/status?session=&branch=`.
pub fn status(state: &State, ledger: &Ledger, arm: &str, query: &str) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let q = params(query, &["session", "branch"])?;
        let loaded = state.loaded();
        let i = arm_index(&loaded, arm)?;
        let unreadable = state.unreadable();
        let doc = status_cmd::evaluate(
            &loaded,
            ledger,
            state.now(),
            Some(i),
            q.get("session").map(String::as_str),
            q.get("branch").map(String::as_str),
            &unreadable,
            |view| view.doc(),
        )
        .map_err(failed)?;
        Ok(json_of(&doc))
    };
    match run() {
        Ok(r) | Err(r) => r,
    }
}

/// `GET /api/v1/arms/{arm}/budget`: Entourage's `check_budget` fields
/// first, then octo-budget's.
#[derive(Debug, Serialize)]
pub struct BudgetDoc {
    pub daily_limit_usd: Option<Usd>,
    pub daily_spent_usd: Usd,
    pub daily_remaining_usd: Option<Usd>,
    pub task_limit_usd: Option<Usd>,
    pub task_spent_usd: Option<Usd>,
    /// True when `check` refuses gated tools and prompts (or halts).
    pub over_budget: bool,
    pub task_remaining_usd: Option<Usd>,
    /// What the task is: `{"kind": "session"|"branch", "id": ..}`.
    pub task: Option<TaskDoc>,
    pub monthly_limit_usd: Option<Usd>,
    pub monthly_spent_usd: Usd,
    pub monthly_remaining_usd: Option<Usd>,
    pub arm: String,
    pub now: String,
    pub decision: &'static str,
    pub tier: Tier,
}

#[derive(Debug, Serialize)]
pub struct TaskDoc {
    pub kind: &'static str,
    pub id: String,
}

/// `GET /api/v1/arms/{arm}/budget?session=&branch=`.
pub fn budget(state: &State, ledger: &Ledger, arm: &str, query: &str) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let q = params(query, &["session", "branch"])?;
        let loaded = state.loaded();
        let i = arm_index(&loaded, arm)?;
        let now = state.now();
        let unreadable = state.unreadable();
        let doc = status_cmd::evaluate(
            &loaded,
            ledger,
            now,
            Some(i),
            q.get("session").map(String::as_str),
            q.get("branch").map(String::as_str),
            &unreadable,
            |view| budget_doc(&loaded, ledger, i, view),
        )
        .map_err(failed)?
        .map_err(|e| Reply::internal(&e))?;
        Ok(json_of(&doc))
    };
    match run() {
        Ok(r) | Err(r) => r,
    }
}

fn budget_doc(
    loaded: &Loaded,
    ledger: &dyn Store,
    arm: usize,
    view: &crate::output::status::Status<'_>,
) -> octo_budget::ledger::Result<BudgetDoc> {
    let tz = loaded.config.timezone;
    let eval = Evaluator {
        loaded,
        ledger,
        now: view.now,
    };
    let mut engine = eval.engine();
    let own = |kind: CapKind| {
        view.caps
            .iter()
            .find(|c| c.kind == kind && matches!(c.scope, Scope::Arm(_)))
    };
    let mut calendar = |kind: CapKind, period: PeriodKind| match own(kind) {
        Some(c) => Ok((Some(c.limit), c.spent)),
        None => engine
            .of_arm(&Period::containing(period, view.now, tz), arm)
            .map(|s| (None, s)),
    };
    let (daily_limit, daily_spent) = calendar(CapKind::Daily, PeriodKind::Day)?;
    let (monthly_limit, monthly_spent) = calendar(CapKind::Monthly, PeriodKind::Month)?;
    let remaining =
        |l: Option<Micros>, s: Micros| l.map(|l| Usd(l.saturating_sub(s).max(Micros(0))));
    // The task: the session's cap or the branch's, whichever has less
    // left; without a cap, the session's (else the branch's) spend.
    let capped = view
        .caps
        .iter()
        .filter(|c| matches!(c.kind, CapKind::Session | CapKind::Branch))
        .min_by_key(|c| c.remaining());
    let (task, task_limit, task_spent) = match (capped, view.session, view.branch) {
        (Some(c), _, _) => {
            let task = match c.kind {
                CapKind::Session => TaskDoc {
                    kind: "session",
                    id: view.session.unwrap_or_default().to_owned(),
                },
                _ => TaskDoc {
                    kind: "branch",
                    id: c.scope.branch().unwrap_or_default().to_owned(),
                },
            };
            (Some(task), Some(c.limit), Some(c.spent))
        }
        (None, Some(s), _) => {
            let spent = engine.of_all(&Period::whole(), Some(s))?;
            let task = TaskDoc {
                kind: "session",
                id: s.to_owned(),
            };
            (Some(task), None, Some(spent))
        }
        (None, None, Some(b)) => {
            let spent = engine.of_arm_on(&Period::whole(), arm, Some(b))?;
            let task = TaskDoc {
                kind: "branch",
                id: b.to_owned(),
            };
            (Some(task), None, Some(spent))
        }
        (None, None, None) => (None, None, None),
    };
    Ok(BudgetDoc {
        daily_limit_usd: daily_limit.map(Usd),
        daily_spent_usd: Usd(daily_spent),
        daily_remaining_usd: remaining(daily_limit, daily_spent),
        task_limit_usd: task_limit.map(Usd),
        task_spent_usd: task_spent.map(Usd),
        over_budget: matches!(view.verdict, Verdict::Block(_) | Verdict::Stop(_)),
        task_remaining_usd: task_spent.and_then(|s| remaining(task_limit, s)),
        task,
        monthly_limit_usd: monthly_limit.map(Usd),
        monthly_spent_usd: Usd(monthly_spent),
        monthly_remaining_usd: remaining(monthly_limit, monthly_spent),
        arm: loaded.config.arms[arm].name.clone(),
        now: view.now.with_timezone(&tz).to_rfc3339(),
        decision: view.verdict.as_str(),
        tier: octo_budget::budget::caps::worst_tier(view.caps),
    })
}
