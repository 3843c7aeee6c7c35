//! What `check` says to Claude Code: a one-line reason on stderr with exit
//! 2 (block), hook JSON with a `systemMessage` on stdout (allow, with a
//! warning), or hook JSON that refuses the call and halts the agent (exit
//! 0). Claude Code caps hook output at 10,000 characters.

use chrono_tz::Tz;
use octo_budget::budget::{CapKind, CapState, Scope};
use serde::Serialize;

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
        (Scope::Branch { arm, branch, .. }, _) => format!("branch {branch:?} of arm {arm:?}"),
        (Scope::Total, _) => "the team (all arms together)".into(),
        (Scope::Unattributed, _) => "spend no arm owns".into(),
    }
}

/// The reason a call is refused: what was spent, against which cap, what
/// is refused and until when.
pub fn block_reason(c: &CapState, what: &str, tz: Tz, session: Option<&str>) -> String {
    clip(format!(
        "octo-budget: {}; {what} refused {} or until the cap is raised in budgets.yaml",
        spent(c, session),
        until(c, tz)
    ))
}

/// The reason of a halt in two parts, before and after what is refused
/// (the parts are recorded, so later calls of the halted session say
/// what they refuse): `octo-budget: <what was spent>` and `<until when> or
/// until the cap is raised in budgets.yaml`.
pub fn halt_parts(c: &CapState, tz: Tz, session: Option<&str>) -> (String, String) {
    (
        format!("octo-budget: {}", spent(c, session)),
        format!(
            "{} or until the cap is raised in budgets.yaml",
            until(c, tz)
        ),
    )
}

/// The one-line reason of a halt: `<head>; the agent is halted (<what>
/// refused) <tail>`.
pub fn halt_reason(head: &str, what: &str, tail: &str) -> String {
    clip(format!(
        "{head}; the agent is halted ({what} refused) {tail}"
    ))
}

/// The same without a refused call (a session ended after a tool ran):
/// `<head>; the agent is halted <tail>`.
pub fn halted_reason(head: &str, tail: &str) -> String {
    clip(format!("{head}; the agent is halted {tail}"))
}

fn until(c: &CapState, tz: Tz) -> String {
    match c.kind {
        CapKind::Session => "for the rest of this session".to_owned(),
        CapKind::Branch => "on this branch".to_owned(),
        CapKind::Hourly => "until the last hour's spend falls below the limit".to_owned(),
        _ => format!(
            "until {}",
            c.resets()
                .map(|r| r.with_timezone(&tz).format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        ),
    }
}

fn spent(c: &CapState, session: Option<&str>) -> String {
    match c.kind {
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
    }
}

/// Hook JSON on stdout: see Claude Code's hook output fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_specific_output: Option<PreToolUseOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_message: Option<String>,
}

/// `hookSpecificOutput` of a PreToolUse reply.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreToolUseOutput {
    pub hook_event_name: &'static str,
    pub permission_decision: &'static str,
    pub permission_decision_reason: String,
}

impl Reply {
    fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Hook JSON that ends the session after a tool ran (PostToolUse).
pub fn stop(reason: &str) -> String {
    Reply {
        continue_: Some(false),
        stop_reason: Some(clip(reason.to_owned())),
        hook_specific_output: None,
        system_message: None,
    }
    .line()
}

/// Hook JSON that refuses a PreToolUse call AND halts the agent: measured
/// on Claude Code 2.1.328, `continue: false` alone lets the tool run first
/// and a refusal alone lets the agent go on; together the tool is refused
/// and the session ends with no further model request.
pub fn halt(reason: &str) -> String {
    let reason = clip(reason.to_owned());
    Reply {
        continue_: Some(false),
        stop_reason: Some(reason.clone()),
        hook_specific_output: Some(PreToolUseOutput {
            hook_event_name: "PreToolUse",
            permission_decision: "deny",
            permission_decision_reason: reason,
        }),
        system_message: None,
    }
    .line()
}

/// A one-line warning for a cap at alert or warn.
pub fn warning(c: &CapState, session: Option<&str>) -> String {
    let pct = octo_budget::money::Micros::percent_of(c.spent, c.limit).unwrap_or(100.0);
    let next = match c.hard_stop_at() {
        Some(h) if c.halts() => format!("the agent is halted at {h}"),
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
    Reply {
        continue_: None,
        stop_reason: None,
        hook_specific_output: None,
        system_message: Some(clip(message.to_owned())),
    }
    .line()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn halt_denies_the_call_and_stops_the_agent_with_one_reason() {
        let v: serde_json::Value = serde_json::from_str(&halt("r\nx")).unwrap();
        assert_eq!(
            v,
            json!({"continue": false, "stopReason": "r x", "hookSpecificOutput": {
                "hookEventName": "PreToolUse", "permissionDecision": "deny",
                "permissionDecisionReason": "r x"}})
        );
        assert_eq!(
            halt_reason("octo-budget: A", "Bash", "until B"),
            "octo-budget: A; the agent is halted (Bash refused) until B"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stop("r")).unwrap(),
            json!({"continue": false, "stopReason": "r"})
        );
        let long = halt(&"x".repeat(20_000));
        assert!(long.len() < 2 * MAX_LEN + 200, "{}", long.len());
    }
}
