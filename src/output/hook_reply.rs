//! What `check` says to Claude Code: a one-line reason on stderr with exit
//! 2 (block), or hook JSON with a `systemMessage` on stdout (allow, with a
//! warning). Claude Code caps hook output at 10,000 characters.

use chrono_tz::Tz;
use serde_json::json;

use crate::commands::evaluate::{CapKind, CapState, Scope};

const MAX_LEN: usize = 9_000;

fn clip(mut s: String) -> String {
    if s.len() > MAX_LEN {
        let mut cut = MAX_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s.replace(['\n', '\r'], " ")
}

fn who(c: &CapState, session: Option<&str>) -> String {
    match (&c.scope, c.kind) {
        (Scope::Arm(a), CapKind::Session) => {
            let s = session.unwrap_or("this session");
            let short: String = s.chars().take(8).collect();
            format!("session {short} of arm {a:?}")
        }
        (Scope::Arm(a), _) => format!("arm {a:?}"),
        (Scope::Total, _) => "the team (all arms together)".into(),
    }
}

/// The reason a call is refused: what was spent, against which cap, what
/// is refused and until when.
pub fn block_reason(c: &CapState, what: &str, tz: Tz, session: Option<&str>) -> String {
    let until = match c.kind {
        CapKind::Session => "for the rest of this session".to_owned(),
        CapKind::Hourly => "until the last hour's spend falls below the limit".to_owned(),
        _ => format!(
            "until {}",
            c.resets()
                .map(|r| r.with_timezone(&tz).format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        ),
    };
    let spent = match c.kind {
        CapKind::Hourly => format!(
            "{} has spent {} in the last hour, over its {} per hour limit",
            who(c, session),
            c.spent,
            c.limit
        ),
        kind => format!(
            "{} has spent {} of its {} {} cap (hard stop at {}%, {})",
            who(c, session),
            c.spent,
            c.limit,
            kind.as_str(),
            c.policy.grace_pct,
            c.blocks_at()
        ),
    };
    clip(format!(
        "octo-budget: {spent}; {what} refused {until} or until the cap is raised in budgets.yaml"
    ))
}

/// A one-line warning for a cap at alert or warn.
pub fn warning(c: &CapState, session: Option<&str>) -> String {
    let pct = crate::money::Micros::percent_of(c.spent, c.limit).unwrap_or(100.0);
    let next = match c.hard_stop_at() {
        Some(h) => format!("hard stop at {h}"),
        None => format!("{} arms are not blocked", c.policy.action.as_str()),
    };
    clip(format!(
        "octo-budget: {} is at {pct:.1}% of its {} {} cap ({} spent; {next})",
        who(c, session),
        c.limit,
        c.kind.as_str(),
        c.spent
    ))
}

/// Hook JSON that allows the call and shows `message` to the user.
pub fn system_message(message: &str) -> String {
    json!({ "systemMessage": clip(message.to_owned()) }).to_string()
}
