//! `octo-budget alerts`: the cron job. Ingests, evaluates every arm's
//! monthly, weekly and daily caps (and the team total's) for the periods
//! containing `--now`, spikes and unattributed spend, and says each new
//! event once (see `ledger::outbox` for how "once" holds under
//! concurrency). Rules are in `crate::alerts`, lines in
//! `output::alert_line`; docs/alerts.md is the user's guide.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use chrono::{DateTime, Duration as Days, Utc};
use wait_timeout::ChildExt as _;

use super::evaluate::{CapKind, CapState, Evaluator, Scope as CapScope, Which};
use super::{print_notices, Context, Loaded};
use crate::alerts::{self, Event, Level, Scope};
use crate::budget::{forecast, Period, PeriodKind};
use crate::cli::AlertsArgs;
use crate::exit;
use crate::ledger::outbox::{AlertWrites, Queued};
use crate::ledger::query::Filter;
use crate::ledger::Ledger;
use crate::money::{Micros, Picos};
use crate::output::alert_line;
use crate::spend::{Owner, Pricer, Resolver};

/// How long `alerts` waits for other processes' ledger locks.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// A delivery lease: a run that died holding an event gives it up after
/// this long (well above the longest `--command-timeout`, 300 s).
const LEASE: Duration = Duration::from_secs(600);

pub fn run(ctx: &Context, args: &AlertsArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    if !args.quiet {
        print_notices(&loaded.config);
    }
    let tz = loaded.config.timezone;
    let mut ledger = ctx.open_ledger(&loaded.config, LOCK_WAIT)?;
    ctx.ingest_all(&loaded, &mut ledger, false)?;
    let events = evaluate(&loaded, &ledger, ctx.now)?;
    let ts = alert_line::timestamp(ctx.now, tz);
    let render = |e: &Event| {
        if args.json {
            alert_line::json(&ts, e).to_string()
        } else {
            alert_line::text(&ts, e)
        }
    };
    let mut out = std::io::stdout().lock();

    if args.all {
        for e in &events.state {
            writeln!(out, "{}", render(e))?;
        }
        out.flush()?;
        return Ok(exit::OK);
    }

    let new = &events.new;
    let keys = alerts::keys_of(new);
    let now_ms = ctx.now.timestamp_millis();
    let Some(command) = &args.command else {
        // Record before printing: of concurrent runs, only the one whose
        // transaction recorded an event prints it.
        let say = ledger.claim_alerts(&keys, now_ms, |known| {
            let plan = alerts::plan(new, known);
            let mut given = plan.implied;
            given.extend(plan.say.iter().map(|&i| new[i].key()));
            (
                AlertWrites {
                    given,
                    queue: Vec::new(),
                },
                plan.say,
            )
        })?;
        for &i in &say {
            writeln!(out, "{}", render(&new[i]))?;
        }
        if say.is_empty() && !args.quiet && !args.json {
            writeln!(out, "{ts} no new alerts")?;
        }
        out.flush()?;
        return Ok(exit::OK);
    };

    ledger.claim_alerts(&keys, now_ms, |known| {
        let plan = alerts::plan(new, known);
        let queue = plan
            .say
            .iter()
            .map(|&i| Queued {
                key: new[i].key(),
                text: alert_line::text(&ts, &new[i]),
                json: alert_line::json(&ts, &new[i]).to_string(),
            })
            .collect();
        (
            AlertWrites {
                given: plan.implied,
                queue,
            },
            (),
        )
    })?;
    let timeout = Duration::from_secs(args.command_timeout);
    let (sent, failed) = deliver(&mut ledger, command, timeout, args.json, now_ms)?;
    if !args.quiet && failed == 0 {
        if sent == 0 {
            writeln!(out, "{ts} no new alerts")?;
        } else {
            writeln!(out, "{ts} sent {sent} alert(s) to --command")?;
        }
    }
    out.flush()?;
    if failed > 0 {
        let waiting = ledger.pending_deliveries()?;
        eprintln!(
            "octo-budget: alerts: --command failed for {failed} event(s); {waiting} event(s) kept for the next run (sent {sent})"
        );
        return Ok(exit::DELIVERY);
    }
    Ok(exit::OK)
}

/// What `alerts` found at `now`.
struct Found {
    /// Every cap's state (OK included) and the unattributed share, for
    /// `--all`.
    state: Vec<Event>,
    /// Candidate events: crossed levels, forecasts, spikes, unattributed.
    new: Vec<Event>,
}

fn evaluate(loaded: &Loaded, ledger: &Ledger, now: DateTime<Utc>) -> Result<Found> {
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
            let scope = match &c.scope {
                CapScope::Arm(a) => Scope::Arm(a.clone()),
                CapScope::Total => Scope::Total,
                CapScope::Branch { arm, branch } => Scope::Branch {
                    arm: arm.clone(),
                    branch: branch.clone(),
                    name: format!("{arm}@{branch}"),
                },
            };
            // A branch cap covers all time: no forecast, no reset; said
            // once per level ever.
            let all_time = c.kind == CapKind::Branch;
            let projection = if all_time {
                None
            } else {
                forecast(c.spent, &c.period, now)
            };
            let e = Event {
                level: alerts::cap_level(c.spent, c.limit, &c.policy),
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
            if let Some(p) = alerts::forecast_passes(c.spent, projection, c.limit, &c.policy) {
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
    let previous: Vec<_> = (1..=alerts::BASELINE_DAYS as i64)
        .rev()
        .map(|n| today - Days::days(n))
        .filter(|d| first_day.is_some_and(|f| *d >= f))
        .collect();
    let mut daily: Vec<Vec<Micros>> = vec![Vec::new(); cfg.arms.len()];
    for d in &previous {
        let (per_arm, _) = spend_by_owner(loaded, ledger, &Period::dates(*d, *d, tz), now)?;
        for (i, m) in per_arm.into_iter().enumerate() {
            daily[i].push(m);
        }
    }
    let day = Period::containing(PeriodKind::Day, now, tz);
    let (today_spend, _) = spend_by_owner(loaded, ledger, &day, now)?;
    let month = Period::containing(PeriodKind::Month, now, tz);
    let (month_arms, month_unattributed) = spend_by_owner(loaded, ledger, &month, now)?;

    for (i, arm) in cfg.arms.iter().enumerate() {
        let before = state.len();
        cap_events(
            eval.caps(Some(i), None)?
                .into_iter()
                .filter(|c| matches!(c.scope, CapScope::Arm(_)))
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
        if let Some(s) = alerts::spike(today_spend[i], &daily[i], &cfg.alerts) {
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
        level: if alerts::unattributed_alarming(month_unattributed, all, &cfg.alerts) {
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

/// Spend in `period` up to `now`, per arm (config order) and unattributed.
fn spend_by_owner(
    loaded: &Loaded,
    ledger: &Ledger,
    period: &Period,
    now: DateTime<Utc>,
) -> Result<(Vec<Micros>, Micros)> {
    let window = period.until(now + Days::milliseconds(1));
    let groups = ledger.groups(window.start, window.end, &Filter::default())?;
    let places = ledger.places()?;
    let session_cwds: HashMap<String, String> = ledger.session_cwds(&groups, &places)?;
    let resolver = Resolver {
        attributor: &loaded.attributor,
        places: &places,
        session_cwds: &session_cwds,
    };
    let mut pricer = Pricer::new(loaded.prices());
    let mut per_arm = vec![Picos(0); loaded.config.arms.len()];
    let mut unattributed = Picos(0);
    for g in &groups {
        let c = pricer.cost(g);
        match resolver.owner(g.place_id, &g.session_id) {
            Owner::Arm(i) => per_arm[i] += c,
            Owner::Unattributed => unattributed += c,
        }
    }
    Ok((
        per_arm.into_iter().map(Picos::to_micros).collect(),
        unattributed.to_micros(),
    ))
}

/// Pipes each waiting event to `command`, one run of it per event, and
/// records the event as sent only when it exits 0. Returns (sent, failed).
fn deliver(
    ledger: &mut Ledger,
    command: &str,
    timeout: Duration,
    json: bool,
    now_ms: i64,
) -> Result<(usize, usize)> {
    let wall_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    let me = format!("{}-{}", std::process::id(), wall_ms());
    let (mut sent, mut failed) = (0, 0);
    let mut tried = Vec::new();
    while let Some(d) = ledger.lease_delivery(&me, wall_ms(), LEASE.as_millis() as i64, &tried)? {
        tried.push(d.id);
        let line = if json { &d.json } else { &d.text };
        match run_command(command, line, &d.key.level, timeout) {
            Ok(()) => {
                ledger.delivered(&d, now_ms)?;
                sent += 1;
            }
            Err(reason) => {
                eprintln!(
                    "octo-budget: alerts: --command {reason} for {} {} {}; kept for the next run",
                    d.key.level, d.key.scope, d.key.cap
                );
                ledger.delivery_failed(&d, &me, &reason)?;
                failed += 1;
            }
        }
    }
    Ok((sent, failed))
}

/// Runs `sh -c command` with `line` on stdin. The command's stdout is
/// discarded (cron would mail it); its stderr is ours. It runs in its own
/// process group: when it is still running at `timeout`, the whole group
/// is killed, so that nothing it started in the background is left
/// holding our stderr (cron's pipe) open.
fn run_command(
    command: &str,
    line: &str,
    level: &str,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("OCTO_BUDGET_ALERT_LEVEL", level)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start ({e})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input may close it: not an error.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
    }
    match child.wait_timeout(timeout) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("exited with {status}")),
        Ok(None) => {
            kill_group(&mut child);
            Err(format!(
                "did not finish within {} s (it and the processes it started were killed)",
                timeout.as_secs()
            ))
        }
        Err(e) => {
            kill_group(&mut child);
            Err(format!("could not be waited for ({e})"))
        }
    }
}

/// Kills `child`'s process group (its id: it leads it) and reaps it. The
/// group is signalled before `child` is reaped, so its id cannot have been
/// reused by then.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: killpg only sends a signal; ESRCH (the group is gone) is
        // fine.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
