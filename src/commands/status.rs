//! `octo-budget status`: every cap of an arm, its spend and the decision
//! `check` would make for a gated tool or a prompt, without hook input
//! (`stop` where the agent would be halted); `--exit-code` says it in the
//! exit status, for scripts that start agents.

use std::io::Write;

use anyhow::{bail, Result};
use comfy_table::{presets, Table};
use serde_json::json;

use super::evaluate::{CapState, Evaluator};
use super::{print_notices, Context};
use crate::budget::Tier;
use crate::cli::StatusArgs;
use crate::exit;
use crate::output::hook_reply;
use crate::output::json::usd;

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let cfg = &loaded.config;
    let arm = match (&args.arm, &args.cwd) {
        (Some(name), _) => match cfg.arms.iter().position(|a| a.name == *name) {
            Some(i) => Some(i),
            None => bail!(super::unknown_arm(cfg, name)),
        },
        (None, Some(dir)) => {
            let abs = if dir.is_absolute() {
                dir.clone()
            } else {
                ctx.env.cwd.clone().unwrap_or_default().join(dir)
            };
            loaded.arm_of_dir(&abs.to_string_lossy())
        }
        (None, None) => {
            let here = ctx.env.cwd.clone().unwrap_or_default();
            loaded.arm_of_dir(&here.to_string_lossy())
        }
    };
    let mut ledger = ctx.open_ledger(cfg, std::time::Duration::from_secs(30))?;
    let ingested = ctx.ingest_all(&loaded, &mut ledger, !args.json)?;
    let eval = Evaluator {
        loaded: &loaded,
        ledger: &ledger,
        now: ctx.now,
    };
    let mut caps = eval.caps(arm, args.session.as_deref())?;
    // The branch cap: of --branch, else of the session's latest branch.
    let branch = match (&args.branch, args.session.as_deref()) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(s)) => ledger.session_branch(s)?,
        (None, None) => None,
    };
    let branch_cap = eval.branch_cap(arm, branch.as_deref(), super::evaluate::Which::All)?;
    caps.extend(branch_cap.clone());
    let worst = caps.iter().map(|c| c.tier).max().unwrap_or(Tier::Ok);
    let blocking = super::evaluate::blocking(&caps);
    let halting = super::evaluate::halting(&caps);
    // A session the kill switch halted: its tool calls stay halted until a
    // prompt of its own passes the check.
    let halted = match args.session.as_deref() {
        Some(s) if cfg.can_halt() => ledger.halt(s)?,
        _ => None,
    };
    let (decision, reason) = match (halting, blocking) {
        (Some(c), _) => {
            let (head, tail) = hook_reply::halt_parts(c, cfg.timezone, args.session.as_deref());
            (
                "stop",
                Some(hook_reply::halt_reason(
                    &head,
                    "tool calls and prompts",
                    &tail,
                )),
            )
        }
        (None, Some(c)) => (
            "block",
            Some(hook_reply::block_reason(
                c,
                "gated tools",
                cfg.timezone,
                args.session.as_deref(),
            )),
        ),
        (None, None) if worst >= Tier::Alert => (
            "warn",
            caps.iter()
                .find(|c| c.tier == worst)
                .map(|c| hook_reply::warning(c, args.session.as_deref())),
        ),
        (None, None) => ("allow", None),
    };
    let arm_name = arm.map(|i| cfg.arms[i].name.clone());
    let tz = cfg.timezone;
    let mut out = std::io::stdout().lock();
    if args.json {
        let caps_json: Vec<_> = caps.iter().map(|c| cap_json(c, tz)).collect();
        let doc = json!({
            "arm": arm_name,
            "now": ctx.now.with_timezone(&tz).to_rfc3339(),
            "timezone": tz.name(),
            "decision": decision,
            "over_budget": decision == "block" || decision == "stop",
            "session_halted": halted.is_some(),
            "tier": worst.as_str(),
            "reason": reason,
            "caps": caps_json,
            "branch": branch,
            "branch_cap": branch_cap.as_ref().map(|c| cap_json(c, tz)),
            "unreadable_files": ingested.unreadable.len(),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "arm: {}",
            arm_name
                .as_deref()
                .unwrap_or("(none: no arm owns this directory)")
        )?;
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED).force_no_tty();
        t.set_header([
            "scope",
            "cap",
            "limit",
            "spent",
            "remaining",
            "%",
            "tier",
            "hard stop at",
            "resets",
        ]);
        for c in &caps {
            t.add_row([
                c.scope.name().to_owned(),
                match c.scope.branch() {
                    Some(b) => format!("branch {b}"),
                    None => c.kind.as_str().to_owned(),
                },
                c.limit.to_string(),
                c.spent.to_string(),
                c.remaining().to_string(),
                crate::money::Micros::percent_of(c.spent, c.limit)
                    .map(|p| format!("{p:.1}"))
                    .unwrap_or_default(),
                c.tier.as_str().to_owned(),
                c.hard_stop_at()
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "never".into()),
                c.resets()
                    .map(|r| r.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "never".into()),
            ]);
        }
        if caps.is_empty() {
            writeln!(out, "no caps apply")?;
        } else {
            writeln!(out, "{t}")?;
        }
        writeln!(out, "decision: {decision}")?;
        if let Some(r) = &reason {
            writeln!(out, "{r}")?;
        }
        if let (Some(h), Some(s)) = (&halted, &args.session) {
            writeln!(
                out,
                "session {s} is halted ({}); its tool calls stay halted until a prompt of it passes the check",
                h.head.trim_start_matches("octo-budget: ")
            )?;
        }
        if let Some(first) = ingested.unreadable.first() {
            writeln!(
                out,
                "unreadable: {} transcript file(s) or folder(s) could not be read, their spend is missing (first: {}: {})",
                ingested.unreadable.len(),
                first.path.display(),
                first.reason
            )?;
        }
    }
    Ok(match decision {
        "stop" if args.exit_code => exit::HALTED,
        "block" if args.exit_code => exit::BLOCKED,
        _ => exit::OK,
    })
}

fn cap_json(c: &CapState, tz: chrono_tz::Tz) -> serde_json::Value {
    json!({
        "scope": c.scope.name(),
        "branch": c.scope.branch(),
        "cap": c.kind.as_str(),
        "limit_usd": usd(c.limit),
        "spent_usd": usd(c.spent),
        "remaining_usd": usd(c.remaining()),
        "spent_pct": crate::money::Micros::percent_of(c.spent, c.limit),
        "tier": c.tier.as_str(),
        "action": c.policy.action.as_str(),
        "hard_stop_at_usd": c.hard_stop_at().map(usd),
        "period_start": c.period.start.with_timezone(&tz).to_rfc3339(),
        "resets": c.resets().map(|r| r.with_timezone(&tz).to_rfc3339()),
        "over": c.spent >= c.limit,
    })
}
