//! `octo-budget alerts`: the cron job. Ingests, evaluates every arm's
//! monthly, weekly and daily caps (and the team total's) for the periods
//! containing `--now`, spikes and unattributed spend, and says each new
//! event once (see `ledger::outbox` for how "once" holds under
//! concurrency). Rules are in `octo_budget::alerts`, lines in
//! `output::alert_line`; docs/alerts.md is the user's guide.

use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use octo_budget::alerts::{self, events::found, Event};
use octo_budget::ledger::outbox::{AlertWrites, Queued};
use octo_budget::ledger::Ledger;
use wait_timeout::ChildExt as _;

use super::{print_notices, Context};
use crate::cli::AlertsArgs;
use crate::error::Result;
use crate::exit;
use crate::output::alert_line;

/// For a team ledger: the events this run says, claimed on the server
/// (those another machine or run claimed first are left out; the lower
/// levels a said event makes moot are claimed with it). None for a
/// one-machine ledger.
fn team_plan(
    ctx: &Context,
    config: &octo_budget::config::Config,
    new: &[Event],
    keys: &[octo_budget::ledger::outbox::AlertKey],
    now_ms: i64,
) -> Result<Option<alerts::Plan>> {
    let known = ctx.with_team(config, super::TEAM_WAIT, |t| t.alerts_known(keys))?;
    let Some(known) = known else {
        return Ok(None);
    };
    let plan = alerts::plan(new, &known);
    let mut want = plan.implied.clone();
    want.extend(plan.say.iter().map(|&i| new[i].key()));
    let won = ctx
        .with_team(config, super::TEAM_WAIT, |t| t.claim_alerts(&want, now_ms))?
        .unwrap_or_default();
    Ok(Some(alerts::Plan {
        say: plan
            .say
            .into_iter()
            .filter(|&i| won.contains(&new[i].key()))
            .collect(),
        implied: plan.implied,
    }))
}

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
    let events = found(&loaded, &ledger, ctx.now)?;
    let ts = alert_line::timestamp(ctx.now, tz);
    let render = |e: &Event| {
        if args.json {
            alert_line::json(&ts, e)
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
    // A team ledger: which events are new is decided on the server, where
    // each is claimed by a unique insert, so that of all machines (and
    // runs) only the one whose insert wins says it; this machine's own
    // record of them follows.
    let team_plan = team_plan(ctx, &loaded.config, new, &keys, now_ms)?;
    let plan_of = |known: &std::collections::HashSet<octo_budget::ledger::outbox::AlertKey>| {
        team_plan
            .clone()
            .unwrap_or_else(|| alerts::plan(new, known))
    };
    let Some(command) = &args.command else {
        // Record before printing: of concurrent runs, only the one whose
        // transaction recorded an event prints it.
        let say = ledger.claim_alerts(&keys, now_ms, |known| {
            let plan = plan_of(known);
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
        let plan = plan_of(known);
        let queue = plan
            .say
            .iter()
            .map(|&i| Queued {
                key: new[i].key(),
                text: alert_line::text(&ts, &new[i]),
                json: alert_line::json(&ts, &new[i]),
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
