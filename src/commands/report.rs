//! `octo-budget report`: spend per arm (or per model, day, session or git
//! branch).

use std::io::Write;

use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDate, Utc};

use super::{print_notices, Context, Loaded};
use crate::cli::{ByArg, PeriodArg, ReportArgs};
use crate::exit;
use crate::output;
use octo_budget::budget::{Period, PeriodKind};
use octo_budget::report::{build, By, Request};
use octo_budget::spend::Owner;
use octo_budget::transcript::discover::discover;

pub fn run(ctx: &Context, args: &ReportArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let cfg = &loaded.config;
    // Usage mistakes are said before the ledger is opened or read.
    let req = request(&loaded, ctx.now, args)?;
    // The scan of the transcripts starts first; the ledger is opened (a
    // new one created) while it runs. On an unchanged tree the report is
    // the work left after the scan: it is built from the ledger while the
    // scan runs too, and kept if the ingest then read nothing and no other
    // process wrote to the ledger since (`data_version`): the ledger was
    // the same throughout. (Not with a team ledger: its sync writes after
    // the scan.)
    let team = ctx.locations.team_ledger(cfg).is_some();
    let (found, opened) = std::thread::scope(|s| {
        let scan = s.spawn(|| discover(&ctx.locations.claude_dirs(cfg)));
        let opened = ctx
            .open_ledger(cfg, std::time::Duration::from_secs(30))
            .map(|ledger| {
                let early = (!team)
                    .then(|| {
                        let version = ledger.data_version().ok()?;
                        let report = build(&loaded, &ledger, ctx.now, &req).ok()?;
                        Some((version, report))
                    })
                    .flatten();
                (ledger, early)
            });
        let found = scan.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (found, opened)
    });
    let (mut ledger, early) = opened?;
    let ingested = ctx.ingest_scanned(&loaded, &mut ledger, found, !args.json && !args.csv)?;
    let mut report = match early {
        Some((version, report))
            if ingested.files_read == 0 && ledger.data_version()? == version =>
        {
            report
        }
        _ => build(&loaded, &ledger, ctx.now, &req)?,
    };
    report.unreadable = ingested.unreadable;
    // Stdout is line-buffered: one write for the whole report, not per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
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

/// What `args` ask for as of `now`: the owner, the period and the
/// breakdown (`serve`'s /api/v1/report asks the same way). An unknown
/// `--arm` or `--since` after `--until` is a usage error.
pub fn request(loaded: &Loaded, now: DateTime<Utc>, args: &ReportArgs) -> Result<Request> {
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
    let period = match (args.since, args.until) {
        (None, None) => {
            let kind = match args.period {
                PeriodArg::Day => PeriodKind::Day,
                PeriodArg::Week => PeriodKind::Week,
                PeriodArg::Month => PeriodKind::Month,
                PeriodArg::All => PeriodKind::All,
            };
            Period::containing(kind, now, tz)
        }
        (since, until) => {
            let today = now.with_timezone(&tz).date_naive();
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
    let by = match args.by {
        ByArg::Arm => By::Arm,
        ByArg::Model => By::Model,
        ByArg::Day => By::Day,
        ByArg::Session => By::Session,
        ByArg::Branch => By::Branch,
        ByArg::Kind => By::Kind,
    };
    Ok(Request { period, by, only })
}
