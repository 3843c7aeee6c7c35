//! `octo-budget report`: spend per arm (or per model, day, session or git
//! branch).

use std::io::Write;

use chrono::NaiveDate;
use octo_budget::budget::{Period, PeriodKind};
use octo_budget::report::{build, By, Request};
use octo_budget::spend::Owner;

use super::{print_notices, Context};
use crate::cli::{ByArg, PeriodArg, ReportArgs};
use crate::error::{Error, Result};
use crate::exit;
use crate::output;

pub fn run(ctx: &Context, args: &ReportArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let cfg = &loaded.config;
    let tz = cfg.timezone;
    let only = match args.arm.as_deref() {
        None => None,
        Some("unattributed") => Some(Owner::Unattributed),
        Some(a) => match cfg.arms.iter().position(|x| x.name == a) {
            Some(i) => Some(Owner::Arm(i)),
            None => return Err(super::unknown_arm(cfg, a)),
        },
    };
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
                return Err(Error::Usage(format!(
                    "--since {since} is after --until {until}"
                )));
            }
            Period::dates(since, until, tz)
        }
    };
    let mut ledger = ctx.open_ledger(cfg, std::time::Duration::from_secs(30))?;
    let ingested = ctx.ingest_all(&loaded, &mut ledger, !args.json && !args.csv)?;
    let by = match args.by {
        ByArg::Arm => By::Arm,
        ByArg::Model => By::Model,
        ByArg::Day => By::Day,
        ByArg::Session => By::Session,
        ByArg::Branch => By::Branch,
        ByArg::Kind => By::Kind,
    };
    let mut report = build(&loaded, &ledger, ctx.now, &Request { period, by, only })?;
    report.unreadable = ingested.unreadable;
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
