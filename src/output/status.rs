//! `status`: every cap of an arm as a table (or `--json`), the decision
//! `check` would make and why.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use comfy_table::{presets, Table};
use octo_budget::budget::caps::{worst_tier, Verdict};
use octo_budget::budget::CapState;
use octo_budget::ledger::halts::Halt;
use octo_budget::money::Micros;
use octo_budget::transcript::discover::Unreadable;

use super::hook_reply;
use super::json::{pretty, CapDoc, StatusDoc};

/// What `status` shows.
pub struct Status<'a> {
    pub arm: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub timezone: Tz,
    pub caps: &'a [CapState],
    pub verdict: Verdict<'a>,
    pub session: Option<&'a str>,
    /// The session's halt, when the kill switch halted it.
    pub halted: Option<&'a Halt>,
    /// The branch whose cap is evaluated, and that cap (also in `caps`).
    pub branch: Option<&'a str>,
    pub branch_cap: Option<&'a CapState>,
    pub unreadable: &'a [Unreadable],
}

impl Status<'_> {
    /// The one-line reason of the decision, as `check` would say it.
    pub fn reason(&self) -> Option<String> {
        let tz = self.timezone;
        match self.verdict {
            Verdict::Stop(c) => {
                let (head, tail) = hook_reply::halt_parts(c, tz, self.session);
                Some(hook_reply::halt_reason(
                    &head,
                    "tool calls and prompts",
                    &tail,
                ))
            }
            Verdict::Block(c) => Some(hook_reply::block_reason(c, "gated tools", tz, self.session)),
            Verdict::Warn(c) => Some(hook_reply::warning(c, self.session)),
            Verdict::Allow => None,
        }
    }

    pub fn doc(&self) -> StatusDoc {
        let tz = self.timezone;
        StatusDoc {
            arm: self.arm.map(str::to_owned),
            now: self.now.with_timezone(&tz).to_rfc3339(),
            timezone: tz.name(),
            decision: self.verdict.as_str(),
            over_budget: matches!(self.verdict, Verdict::Block(_) | Verdict::Stop(_)),
            session_halted: self.halted.is_some(),
            tier: worst_tier(self.caps),
            reason: self.reason(),
            caps: self.caps.iter().map(|c| CapDoc::of(c, tz)).collect(),
            branch: self.branch.map(str::to_owned),
            branch_cap: self.branch_cap.map(|c| CapDoc::of(c, tz)),
            unreadable_files: self.unreadable.len(),
        }
    }
}

pub fn json(out: &mut impl Write, s: &Status<'_>) -> io::Result<()> {
    pretty(out, &s.doc())
}

pub fn text(out: &mut impl Write, s: &Status<'_>) -> io::Result<()> {
    let tz = s.timezone;
    writeln!(
        out,
        "arm: {}",
        s.arm.unwrap_or("(none: no arm owns this directory)")
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
    for c in s.caps {
        t.add_row([
            c.scope.owner().to_owned(),
            match c.scope.branch() {
                Some(b) => format!("branch {b}"),
                None => c.kind.as_str().to_owned(),
            },
            c.limit.to_string(),
            c.spent.to_string(),
            c.remaining().to_string(),
            Micros::percent_of(c.spent, c.limit)
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
    if s.caps.is_empty() {
        writeln!(out, "no caps apply")?;
    } else {
        writeln!(out, "{t}")?;
    }
    writeln!(out, "decision: {}", s.verdict.as_str())?;
    if let Some(r) = s.reason() {
        writeln!(out, "{r}")?;
    }
    if let (Some(h), Some(session)) = (s.halted, s.session) {
        writeln!(
            out,
            "session {session} is halted ({}); its tool calls stay halted until a prompt of it passes the check",
            h.head.trim_start_matches("octo-budget: ")
        )?;
    }
    if let Some(first) = s.unreadable.first() {
        writeln!(
            out,
            "unreadable: {} transcript file(s) or folder(s) could not be read, their spend is missing (first: {}: {})",
            s.unreadable.len(),
            first.path.display(),
            first.reason
        )?;
    }
    Ok(())
}
