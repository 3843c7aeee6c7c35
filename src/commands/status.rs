//! `octo-budget status`: every cap of an arm, its spend and the decision
//! `check` would make for a gated tool or a prompt, without hook input
//! (`stop` where the agent would be halted); `--exit-code` says it in the
//! exit status, for scripts that start agents.

use std::io::Write;

use octo_budget::budget::caps::{verdict, Verdict};
use octo_budget::budget::{Evaluator, Which};

use super::{absolute, print_notices, Context, Loaded};
use crate::cli::StatusArgs;
use crate::error::Result;
use crate::exit;
use crate::output::status::{self, Status};
use chrono::{DateTime, Utc};
use octo_budget::ledger::Store;
use octo_budget::transcript::discover::Unreadable;

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
    let (code, rendered) = evaluate(
        &loaded,
        &ledger,
        ctx.now,
        arm,
        args.session.as_deref(),
        args.branch.as_deref(),
        &ingested.unreadable,
        |view| {
            let mut buf = Vec::new();
            let written = if args.json {
                status::json(&mut buf, view)
            } else {
                status::text(&mut buf, view)
            };
            let code = match view.verdict {
                Verdict::Stop(_) if args.exit_code => exit::HALTED,
                Verdict::Block(_) if args.exit_code => exit::BLOCKED,
                _ => exit::OK,
            };
            written.map(|()| (code, buf))
        },
    )??;
    let mut out = std::io::stdout().lock();
    out.write_all(&rendered)?;
    out.flush()?;
    Ok(code)
}

/// Every cap of `arm` (with `session`'s cap, and the branch cap of
/// `branch`, else of the session's latest branch), the decision and the
/// session's halt, as a [`Status`] handed to `f`: what `status` prints and
/// `serve` answers.
#[allow(clippy::too_many_arguments)]
pub fn evaluate<R>(
    loaded: &Loaded,
    ledger: &dyn Store,
    now: DateTime<Utc>,
    arm: Option<usize>,
    session: Option<&str>,
    branch: Option<&str>,
    unreadable: &[Unreadable],
    f: impl FnOnce(&Status<'_>) -> R,
) -> Result<R> {
    let cfg = &loaded.config;
    let eval = Evaluator {
        loaded,
        ledger,
        now,
    };
    let mut caps = eval.caps(arm, session)?;
    // The branch cap: of --branch, else of the session's latest branch.
    let branch = match (branch, session) {
        (Some(b), _) => Some(b.to_owned()),
        (None, Some(s)) => ledger.session_branch(s)?,
        (None, None) => None,
    };
    let branch_cap = eval.branch_cap(arm, branch.as_deref(), Which::All)?;
    caps.extend(branch_cap.clone());
    // A session the kill switch halted: its tool calls stay halted until a
    // prompt of its own passes the check.
    let halted = match session {
        Some(s) if cfg.can_halt() => ledger.halt(s)?,
        _ => None,
    };
    let view = Status {
        arm: arm.map(|i| cfg.arms[i].name.as_str()),
        now,
        timezone: cfg.timezone,
        caps: &caps,
        verdict: verdict(&caps),
        session,
        halted: halted.as_ref(),
        branch: branch.as_deref(),
        branch_cap: branch_cap.as_ref(),
        unreadable,
    };
    Ok(f(&view))
}
