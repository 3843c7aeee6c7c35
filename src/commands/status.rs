//! `octo-budget status`: every cap of an arm, its spend and the decision
//! `check` would make for a gated tool or a prompt, without hook input
//! (`stop` where the agent would be halted); `--exit-code` says it in the
//! exit status, for scripts that start agents.

use std::io::Write;

use octo_budget::budget::caps::{verdict, Verdict};
use octo_budget::budget::{Evaluator, Which};

use super::{absolute, print_notices, Context};
use crate::cli::StatusArgs;
use crate::error::Result;
use crate::exit;
use crate::output::status::{self, Status};

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let cfg = &loaded.config;
    let arm = match (&args.arm, &args.cwd) {
        (Some(name), _) => match cfg.arms.iter().position(|a| a.name == *name) {
            Some(i) => Some(i),
            None => return Err(super::unknown_arm(cfg, name)),
        },
        (None, Some(dir)) => loaded.arm_of_dir(&absolute(dir, ctx).to_string_lossy()),
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
    let branch_cap = eval.branch_cap(arm, branch.as_deref(), Which::All)?;
    caps.extend(branch_cap.clone());
    // A session the kill switch halted: its tool calls stay halted until a
    // prompt of its own passes the check.
    let halted = match args.session.as_deref() {
        Some(s) if cfg.can_halt() => ledger.halt(s)?,
        _ => None,
    };
    let view = Status {
        arm: arm.map(|i| cfg.arms[i].name.as_str()),
        now: ctx.now,
        timezone: cfg.timezone,
        caps: &caps,
        verdict: verdict(&caps),
        session: args.session.as_deref(),
        halted: halted.as_ref(),
        branch: branch.as_deref(),
        branch_cap: branch_cap.as_ref(),
        unreadable: &ingested.unreadable,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        status::json(&mut out, &view)?;
    } else {
        status::text(&mut out, &view)?;
    }
    out.flush()?;
    Ok(match view.verdict {
        Verdict::Stop(_) if args.exit_code => exit::HALTED,
        Verdict::Block(_) if args.exit_code => exit::BLOCKED,
        _ => exit::OK,
    })
}
