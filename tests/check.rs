//! `octo-budget check` (the Claude Code hook) and `status`, run as the real
//! binary on real hook JSON against ledgers built from fixture transcripts.
//!
//! Spend is written with claude-haiku-4-5 input tokens ($1 per million), so
//! one token is exactly one micro-dollar and every amount below is exact.

mod common;

use std::process::Output;

use common::{assistant, feed, Env};
use serde_json::{json, Value};

const MODEL: &str = "claude-haiku-4-5";
const ACME: &str = "/x/acme";
const SID: &str = "11111111-aaaa-bbbb-cccc-000000000001";

/// Responses costing exactly `micros` micro-dollars together, as lines
/// (joined by newlines) of at most $10 each: 10M input tokens is the most
/// one usage field may hold.
fn spend(session: &str, cwd: &str, id: &str, ts: &str, micros: u64) -> String {
    let line = |id: &str, tokens: u64| {
        assistant(
            session,
            cwd,
            id,
            &format!("req_{id}"),
            ts,
            MODEL,
            json!({"input_tokens": tokens, "output_tokens": 0}),
        )
    };
    if micros <= 10_000_000 {
        return line(id, micros);
    }
    let mut lines = Vec::new();
    let mut left = micros;
    while left > 0 {
        let part = left.min(10_000_000);
        lines.push(line(&format!("{id}-{}", lines.len()), part));
        left -= part;
    }
    lines.join("\n")
}

/// The same, as a subagent's line (sidechain, agentId, the parent's sessionId).
fn sub_spend(session: &str, cwd: &str, id: &str, ts: &str, micros: u64) -> String {
    let mut v: Value = serde_json::from_str(&spend(session, cwd, id, ts, micros)).unwrap();
    v["isSidechain"] = json!(true);
    v["agentId"] = json!("a1b2c3");
    v.to_string()
}

fn dollars(d: u64) -> u64 {
    d * 1_000_000
}

/// The session transcript's path relative to `projects/`.
fn session_rel(session: &str) -> String {
    format!("-x-acme/{session}.jsonl")
}

/// PreToolUse hook input.
fn pre_tool(env: &Env, session: &str, cwd: &str, tool: &str, input: Value) -> String {
    json!({
        "session_id": session,
        "transcript_path": env.transcript(&session_rel(session)),
        "cwd": cwd,
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": input,
        "tool_use_id": "toolu_01",
    })
    .to_string()
}

fn agent(env: &Env, cwd: &str) -> String {
    pre_tool(
        env,
        SID,
        cwd,
        "Agent",
        json!({"description": "explore", "prompt": "look", "subagent_type": "Explore"}),
    )
}

fn prompt(env: &Env, session: &str, cwd: &str) -> String {
    json!({
        "session_id": session,
        "transcript_path": env.transcript(&session_rel(session)),
        "cwd": cwd,
        "hook_event_name": "UserPromptSubmit",
        "prompt": "keep going",
    })
    .to_string()
}

fn check(env: &Env, stdin: &str) -> Output {
    env.cmd()
        .arg("check")
        .write_stdin(stdin.to_owned())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn assert_allowed_silently(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert_eq!(stdout(o), "", "expected no hook JSON");
}

#[track_caller]
fn assert_blocked(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    assert_eq!(e.trim_end().lines().count(), 1, "one line on stderr: {e}");
    e.trim_end().to_owned()
}

/// The kill switch's answer: exit 0, nothing on stderr, and on stdout one
/// line of exactly this hook JSON (the tool refused and the agent halted)
/// with `reason` in both places.
#[track_caller]
fn assert_halted_with(o: &Output, reason: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    assert_eq!(stderr(o), "");
    let out = stdout(o);
    assert!(
        out.ends_with('\n') && out.trim_end().lines().count() == 1,
        "one line: {out}"
    );
    let v: Value = serde_json::from_str(out.trim_end()).expect("hook JSON on stdout");
    assert_eq!(
        v,
        json!({
            "continue": false,
            "stopReason": reason,
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        })
    );
}

/// The same, whatever the reason; returns it.
#[track_caller]
fn assert_halted(o: &Output) -> String {
    let v: Value = serde_json::from_str(stdout(o).trim_end()).unwrap_or_else(|_| {
        panic!(
            "exit {:?}, stdout {:?}, stderr {:?}",
            o.status.code(),
            stdout(o),
            stderr(o)
        )
    });
    let reason = v["stopReason"].as_str().expect("a stopReason").to_owned();
    assert_halted_with(o, &reason);
    reason
}

/// The systemMessage of an allowed call with a warning.
#[track_caller]
fn warning_of(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    let v: Value = serde_json::from_str(stdout(o).trim()).expect("hook JSON on stdout");
    v["systemMessage"]
        .as_str()
        .expect("a systemMessage")
        .to_owned()
}

/// An env whose arm "acme" (/x/acme) has a monthly cap of $1,000 with the
/// given action, and `micros` spent this month in session SID.
fn acme(action: &str, micros: u64) -> Env {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 1000\n    grace_pct: 110\n    action_on_breach: {action}\n"
    ));
    if micros > 0 {
        env.append(
            &session_rel(SID),
            &[spend(
                SID,
                ACME,
                "msg_1",
                "2026-11-20T10:00:00.000Z",
                micros,
            )],
        );
    }
    env
}

// ---- Tiers and actions ----------------------------------------------------------

// Proves: a hard_stop arm past cap x grace refuses a gated tool with exit 2
// and exactly the one-line reason the issue specifies (ingesting the
// hook's own transcript first: nothing was ingested before).
#[test]
fn hard_stop_refuses_gated_tool_with_the_documented_message() {
    let env = acme("hard_stop", 1_123_400_000);
    let o = check(&env, &agent(&env, "/x/acme/api"));
    assert_eq!(
        assert_blocked(&o),
        "octo-budget: arm \"acme\" has spent $1,123.40 of its $1,000.00 monthly cap (hard stop at 110%, $1,100.00); \
         Agent refused until 2026-12-01 or until the cap is raised in budgets.yaml"
    );
    assert_eq!(stdout(&o), "");
}

// Proves: exactly at cap x grace is already a hard stop; one micro-dollar
// below it is only a warning.
#[test]
fn hard_stop_starts_exactly_at_cap_times_grace() {
    let env = acme("hard_stop", 1_099_999_999);
    let msg = warning_of(&check(&env, &agent(&env, ACME)));
    assert!(
        msg.contains("arm \"acme\"")
            && msg.contains("monthly")
            && msg.contains("hard stop at $1,100.00"),
        "{msg}"
    );
    env.append(
        &session_rel(SID),
        &[spend(SID, ACME, "msg_2", "2026-11-20T10:01:00.000Z", 1)],
    );
    assert_blocked(&check(&env, &agent(&env, ACME)));
}

// Proves: at warn the call is allowed with a systemMessage, said once per
// arm, cap, period and tier; a new tier (alert -> warn) is said again.
#[test]
fn warnings_are_given_once_per_tier() {
    let env = acme("hard_stop", 850_000_000); // 85%: alert (alert_at_pct 80)
    let first = warning_of(&check(&env, &agent(&env, ACME)));
    assert!(
        first.contains("85.0%") && first.contains("$1,000.00 monthly cap"),
        "{first}"
    );
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    assert_allowed_silently(&check(&env, &prompt(&env, SID, ACME)));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "msg_2",
            "2026-11-20T10:05:00.000Z",
            200_000_000,
        )],
    );
    let second = warning_of(&check(&env, &agent(&env, ACME)));
    assert!(
        second.contains("105.0%") && second.contains("$1,050.00 spent"),
        "{second}"
    );
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
}

// Proves: arms whose action is warn or alert are never blocked, however far
// over the cap, and say so in their warning.
#[test]
fn warn_and_alert_arms_are_never_blocked() {
    for action in ["warn", "alert"] {
        let env = acme(action, 5_000_000_000);
        let msg = warning_of(&check(&env, &agent(&env, ACME)));
        assert!(
            msg.contains("500.0%") && msg.contains(&format!("{action} arms are not blocked")),
            "{action}: {msg}"
        );
        assert_allowed_silently(&check(&env, &agent(&env, ACME)));
        assert_allowed_silently(&check(&env, &prompt(&env, SID, ACME)));
    }
}

// Proves: below alert_at_pct a gated call is allowed without any output.
#[test]
fn under_the_alert_threshold_is_silent() {
    let env = acme("hard_stop", 799_999_999);
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
}

// ---- Tools and events -------------------------------------------------------------

// Proves: every default gated tool (Agent, Task, WebSearch, WebFetch, any
// mcp__ tool) is refused at hard stop, and non-gated tools (including
// TaskCreate, which only a regex matcher would confuse with Task) run.
#[test]
fn default_gated_and_non_gated_tools() {
    let env = acme("hard_stop", dollars(1_200));
    for tool in [
        "Agent",
        "Task",
        "WebSearch",
        "WebFetch",
        "mcp__playwright__browser_click",
        "mcp__github__create_issue",
    ] {
        let e = assert_blocked(&check(&env, &pre_tool(&env, SID, ACME, tool, json!({}))));
        assert!(
            e.contains(&format!("; {tool} refused until 2026-12-01")),
            "{tool}: {e}"
        );
    }
    for (tool, input) in [
        ("Bash", json!({"command": "cargo test"})),
        ("Read", json!({"file_path": "/x/acme/src/main.rs"})),
        (
            "Edit",
            json!({"file_path": "/x/acme/src/main.rs", "old_string": "a", "new_string": "b"}),
        ),
        ("Grep", json!({"pattern": "budget"})),
        ("TaskCreate", json!({})),
        ("mcp_single_underscore", json!({})),
    ] {
        assert_allowed_silently(&check(&env, &pre_tool(&env, SID, ACME, tool, input)));
    }
}

// Proves: `gate: {tools: [...]}` replaces the default list (names and globs).
#[test]
fn gated_tools_are_configurable() {
    let env = acme("hard_stop", dollars(1_200));
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("gate:\n  tools: [Bash, \"mcp__playwright__*\"]\n");
    env.write_config(&cfg);
    assert_blocked(&check(
        &env,
        &pre_tool(&env, SID, ACME, "Bash", json!({"command": "ls"})),
    ));
    assert_blocked(&check(
        &env,
        &pre_tool(&env, SID, ACME, "mcp__playwright__navigate", json!({})),
    ));
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, SID, ACME, "mcp__github__x", json!({})),
    ));
}

// Proves: a UserPromptSubmit at hard stop is refused (exit 2, the prompt
// named in the reason); Stop and SubagentStop (where exit 2 would keep
// Claude working) are allowed, and so is PostToolUse (the kill switch's
// entry: silent unless a session is halted, see
// post_tool_use_ends_a_halted_session); any other event is refused, even
// on an arm with nothing spent, because check decides only the events it
// knows.
#[test]
fn user_prompt_is_refused_at_hard_stop_and_other_events_are_not_decided() {
    let env = acme("hard_stop", dollars(1_200));
    let e = assert_blocked(&check(&env, &prompt(&env, SID, ACME)));
    assert!(e.contains("this prompt refused until 2026-12-01"), "{e}");
    for event in ["Stop", "SubagentStop"] {
        let stdin = json!({"session_id": SID, "cwd": ACME, "hook_event_name": event}).to_string();
        assert_allowed_silently(&check(&env, &stdin));
    }
    let post = json!({"session_id": SID, "cwd": ACME, "hook_event_name": "PostToolUse", "tool_name": "Agent"});
    assert_allowed_silently(&check(&env, &post.to_string()));
    let idle = acme("hard_stop", 0);
    for event in ["SessionStart", "Notification", "PreCompact"] {
        let stdin =
            json!({"session_id": SID, "cwd": ACME, "hook_event_name": event, "tool_name": "Agent"})
                .to_string();
        let e = assert_blocked(&check(&idle, &stdin));
        assert!(
            e.contains("decides only PreToolUse and UserPromptSubmit") && e.contains(event),
            "{e}"
        );
    }
}

// Proves: a prompt reads what other sessions wrote since their last hook
// call. Session A asks a gated tool under the cap (allowed, and the ledger
// has then read all history), then spends past the hard stop with no tool
// call after it, so no hook of A reads that spend. A NEW session's first
// prompt, whose own transcript does not exist yet, is refused; a gated
// tool call of another new session was not enough to see it (tool calls
// read their own session only), which is why the prompt reads them all.
#[test]
fn a_prompt_sees_spend_other_sessions_wrote_after_their_last_hook_call() {
    let env = acme("hard_stop", dollars(500));
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "msg_late",
            "2026-11-20T11:00:00.000Z",
            dollars(700),
        )],
    );
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, "s-other", ACME, "Agent", json!({})),
    ));
    let e = assert_blocked(&check(&env, &prompt(&env, "s-new", ACME)));
    assert!(
        e.contains("has spent $1,200.00") && e.contains("this prompt refused"),
        "{e}"
    );
}

// Proves (issue 15, item 2): hook JSON without hook_event_name, with an
// unknown spelling of one, or a PreToolUse without a tool name or without
// a tool_input object, is refused with its reason on an arm
// that would allow a well-formed call; `on_error: allow` lets it through,
// saying so.
#[test]
fn hook_input_without_a_known_event_or_shape_is_refused() {
    let env = acme("hard_stop", 0);
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    let good: Value = serde_json::from_str(&agent(&env, ACME)).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = good.clone();
        f(v.as_object_mut().unwrap());
        v.to_string()
    };
    let cases = [
        (
            with(&|m| {
                m.remove("hook_event_name");
            }),
            "no hook_event_name",
        ),
        (
            with(&|m| {
                m.insert("hook_event_name".into(), json!("pretooluse"));
            }),
            "not \"pretooluse\"",
        ),
        (
            with(&|m| {
                m.insert("hook_event_name".into(), json!(7));
            }),
            "hook_event_name is not a string",
        ),
        (
            with(&|m| {
                m.remove("tool_name");
            }),
            "PreToolUse hook input has no tool_name",
        ),
        (
            with(&|m| {
                m.insert("tool_name".into(), json!(""));
            }),
            "PreToolUse hook input has no tool_name",
        ),
        (
            with(&|m| {
                m.insert("tool_input".into(), json!("rm -rf /"));
            }),
            "tool_input is missing or not an object",
        ),
        (
            with(&|m| {
                m.remove("tool_input");
            }),
            "tool_input is missing or not an object",
        ),
        (
            with(&|m| {
                m.insert("tool_name".into(), json!(["Agent"]));
            }),
            "has no tool_name",
        ),
        (
            with(&|m| {
                m.insert("cwd".into(), json!(42));
            }),
            "stdin is not Claude Code hook JSON",
        ),
    ];
    for (stdin, reason) in &cases {
        assert_fails_closed(&check(&env, stdin), reason);
    }
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("gate:\n  on_error: allow\n");
    env.write_config(&cfg);
    for (stdin, reason) in &cases {
        let o = check(&env, stdin);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(reason) && stderr(&o).contains("allowing the call"),
            "{}",
            stderr(&o)
        );
    }
}

// ---- Which arm ----------------------------------------------------------------------

// Proves: the arm comes from stdin `cwd` by longest path-boundary prefix
// (/x/acme-web is not /x/acme), falls back to $CLAUDE_PROJECT_DIR when
// stdin has no cwd, and work no arm owns is allowed.
#[test]
fn arm_from_cwd_then_project_dir_and_no_arm_is_allowed() {
    let env = acme("hard_stop", dollars(1_200));
    assert_allowed_silently(&check(&env, &agent(&env, "/x/acme-web")));
    assert_allowed_silently(&check(&env, &agent(&env, "/elsewhere")));
    // No cwd, and a session the ledger does not know: CLAUDE_PROJECT_DIR.
    let no_cwd = json!({"session_id": "unknown", "hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_input": {}}).to_string();
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    let o = env
        .cmd()
        .arg("check")
        .env("CLAUDE_PROJECT_DIR", "/x/acme/sub")
        .write_stdin(no_cwd.clone())
        .output()
        .unwrap();
    assert_blocked(&o);
    let o = env
        .cmd()
        .arg("check")
        .env("CLAUDE_PROJECT_DIR", "/elsewhere")
        .write_stdin(no_cwd)
        .output()
        .unwrap();
    assert_allowed_silently(&o);
}

// Proves (issue 15, item 9): a call with no cwd and no CLAUDE_PROJECT_DIR
// takes its session's folder from the ledger (its transcript read first);
// for a session the ledger does not know, only the team total can apply:
// with a total cap it decides by the total, without one it refuses.
#[test]
fn no_cwd_takes_the_session_folder_from_the_ledger_else_the_total() {
    let env = acme("hard_stop", dollars(1_200));
    let input = |session: &str| {
        json!({"session_id": session, "transcript_path": env.transcript(&session_rel(session)),
               "hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_input": {}})
        .to_string()
    };
    // The session's own transcript says it runs in /x/acme (over its cap).
    let e = assert_blocked(&check(&env, &input(SID)));
    assert!(e.contains("arm \"acme\" has spent $1,200.00"), "{e}");
    // A session nobody has seen, no total cap: nothing to decide by.
    assert_fails_closed(&check(&env, &input("unknown")), "cannot tell which arm");
    // With a team total: decided by it ($1,200 of $5,000: allowed; of
    // $1,000: refused).
    let base = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&format!("{base}total:\n  monthly_usd_cap: 5000\n"));
    assert_allowed_silently(&check(&env, &input("unknown")));
    env.write_config(&format!(
        "{base}total:\n  monthly_usd_cap: 1000\n  action_on_breach: hard_stop\n"
    ));
    let e = assert_blocked(&check(&env, &input("unknown")));
    assert!(e.contains("the team (all arms together)"), "{e}");
}

// ---- Total cap, burn rate, session cap --------------------------------------------------

// Proves: the team total gates every arm and unattributed work, counting
// spend of all arms and of unattributed work together.
#[test]
fn total_cap_gates_every_arm_and_unattributed_work() {
    let env = Env::new();
    env.write_config(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n  - arm: beta\n    path: /x/beta\n\
         total:\n  daily_usd_cap: 100\n  grace_pct: 100\n  action_on_breach: hard_stop\n",
    );
    env.append(
        "-x-acme/s1.jsonl",
        &[spend(
            "s1",
            "/x/acme",
            "m1",
            "2026-11-20T08:00:00.000Z",
            dollars(40),
        )],
    );
    env.append(
        "-x-beta/s2.jsonl",
        &[spend(
            "s2",
            "/x/beta",
            "m2",
            "2026-11-20T09:00:00.000Z",
            dollars(40),
        )],
    );
    // Yesterday's spend is not today's.
    env.append(
        "-x-beta/s2.jsonl",
        &[spend(
            "s2",
            "/x/beta",
            "m0",
            "2026-11-19T23:59:59.999Z",
            dollars(50),
        )],
    );
    env.append(
        "-tmp/s3.jsonl",
        &[spend(
            "s3",
            "/tmp",
            "m3",
            "2026-11-20T10:00:00.000Z",
            dollars(19),
        )],
    );
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    // $99 of $100: allowed, with a warning (alert tier) for the team.
    let msg = warning_of(&check(&env, &agent(&env, "/x/acme")));
    assert!(
        msg.contains("the team (all arms together)") && msg.contains("99.0%"),
        "{msg}"
    );
    env.append(
        "-tmp/s3.jsonl",
        &[spend(
            "s3",
            "/tmp",
            "m4",
            "2026-11-20T11:00:00.000Z",
            dollars(1),
        )],
    );
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    for cwd in ["/x/acme", "/x/beta", "/tmp"] {
        let e = assert_blocked(&check(&env, &agent(&env, cwd)));
        assert!(
            e.contains("the team (all arms together) has spent $100.00 of its $100.00 daily cap")
                && e.contains("until 2026-11-21"),
            "{e}"
        );
    }
}

// Proves: spend in the trailing 60 minutes above max_usd_per_hour on a
// hard_stop arm halts the agent (the exact halt JSON, exit 0), for gated
// and ungated tools alike; the halt stays on that session after the spend
// leaves the window, until a prompt of the session passes the check; a new
// session runs as soon as the hourly spend has fallen.
#[test]
fn burn_rate_on_a_hard_stop_arm_halts_until_the_hourly_spend_falls() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 10000\n    max_usd_per_hour: 5\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[
            spend(SID, ACME, "m1", "2026-11-20T11:10:00.000Z", dollars(3)),
            spend(SID, ACME, "m2", "2026-11-20T11:50:00.000Z", 2_000_001),
        ],
    );
    let reason = |what: &str| {
        format!(
            "octo-budget: arm \"acme\" has spent $5.00 in the last hour, over its $5.00 per hour limit; \
             the agent is halted ({what} refused) until the last hour's spend falls below the limit \
             or until the cap is raised in budgets.yaml"
        )
    };
    assert_halted_with(&check(&env, &agent(&env, ACME)), &reason("Agent"));
    let read = pre_tool(&env, SID, ACME, "Read", json!({"file_path": "/x/acme/a"}));
    assert_halted_with(&check(&env, &read), &reason("Read"));
    // At 12:10:00.001 the 11:10 response is more than an hour old: a new
    // session runs, but the halted one stays halted...
    env.now = "2026-11-20T12:10:00.001Z".into();
    let other = "33333333-aaaa-bbbb-cccc-000000000003";
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, other, ACME, "Agent", json!({})),
    ));
    assert_halted_with(&check(&env, &read), &reason("Read"));
    // ...until a prompt of its own passes the check.
    assert_allowed_silently(&check(&env, &prompt(&env, SID, ACME)));
    assert_allowed_silently(&check(&env, &read));
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
}

// Proves: the burn-rate limit is a ceiling: spend of exactly
// max_usd_per_hour in the trailing hour is allowed; one micro-dollar more is
// refused.
#[test]
fn burn_rate_at_exactly_the_limit_is_allowed() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    max_usd_per_hour: 5\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T11:30:00.000Z",
            dollars(5),
        )],
    );
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.append(
        &session_rel(SID),
        &[spend(SID, ACME, "m2", "2026-11-20T11:31:00.000Z", 1)],
    );
    assert!(assert_halted(&check(&env, &agent(&env, ACME))).contains("has spent $5.00"));
}

// Proves: session_usd_cap counts the session's subagents (their own files
// under <session>/subagents/ carry the parent's sessionId) and, on a
// hard_stop arm, halts only that session (Bash too); another session of
// the same arm still runs.
#[test]
fn session_cap_counts_subagents_and_only_blocks_that_session() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    session_usd_cap: 10\n    grace_pct: 100\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T10:00:00.000Z",
            dollars(6),
        )],
    );
    let other = "22222222-aaaa-bbbb-cccc-000000000002";
    env.append(
        &session_rel(other),
        &[spend(
            other,
            ACME,
            "m9",
            "2026-11-20T10:00:00.000Z",
            dollars(1),
        )],
    );
    // Without the subagent: $6 of $10 (60%), nothing to say.
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.append(
        &format!("-x-acme/{SID}/subagents/agent-a1b2c3.jsonl"),
        &[sub_spend(
            SID,
            ACME,
            "m2",
            "2026-11-20T10:30:00.000Z",
            dollars(4),
        )],
    );
    assert_halted_with(
        &check(&env, &pre_tool(&env, SID, ACME, "Bash", json!({"command": "make"}))),
        "octo-budget: session 11111111 of arm \"acme\" has spent $10.00 of its $10.00 session cap \
         (hard stop at 100%, $10.00); the agent is halted (Bash refused) for the rest of this session \
         or until the cap is raised in budgets.yaml",
    );
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, other, ACME, "Agent", json!({})),
    ));
}

// ---- Periods in the config's zone ------------------------------------------------------

// Proves: daily and monthly periods follow `timezone:`, not UTC: spend at
// 23:30 on Nov 30 in New York (04:30 UTC on Dec 1) counts against Nov 30's
// day and November's month, and stops counting at local midnight.
#[test]
fn period_boundary_in_new_york() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: America/New_York\nbudgets:\n  - arm: acme\n    path: {ACME}\n    daily_usd_cap: 10\n    monthly_usd_cap: 20\n    grace_pct: 100\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[
            spend(SID, ACME, "m1", "2026-12-01T04:30:00.000Z", dollars(12)), // Nov 30 23:30 EST
            spend(SID, ACME, "m0", "2026-11-02T12:00:00.000Z", dollars(9)),
        ],
    );
    let mut run = |now: &str| {
        env.now = now.into();
        check(&env, &agent(&env, ACME))
    };
    // 23:50 New York time on Nov 30: the day is the worst cap (120%).
    let e = assert_blocked(&run("2026-12-01T04:50:00Z"));
    assert!(
        e.contains("$12.00 of its $10.00 daily cap") && e.contains("until 2026-12-01"),
        "{e}"
    );
    // 00:10 on Dec 1 in New York (05:10 UTC): a new day and a new month.
    assert_allowed_silently(&run("2026-12-01T05:10:00Z"));
    // Same UTC day as the spend, but the day before in New York.
    assert_allowed_silently(&run("2026-12-01T04:29:59Z"));
    // The month's numbers, in New York time.
    env.now = "2026-12-01T04:50:00Z".into();
    let o = env
        .cmd()
        .args(["status", "--arm", "acme", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = v["caps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cap"] == "monthly")
        .unwrap()
        .clone();
    assert_eq!(common::micros(&m["spent_usd"]), 21_000_000);
    assert_eq!(m["period_start"], "2026-11-01T00:00:00-04:00");
    assert_eq!(m["resets"], "2026-12-01T00:00:00-05:00");
    assert_eq!(m["tier"], "hard_stop");
}

// ---- Self-protection -------------------------------------------------------------------

// Proves: edits of the budgets.yaml in use or of the ledger (and its -wal
// file), through any file tool or a Bash command naming either, are
// refused for every arm and for no arm, whatever the tier; reading them and
// editing other files is allowed.
#[test]
fn self_protection_refuses_edits_of_config_and_ledger() {
    let env = acme("warn", 0);
    let cfg = env.config.to_str().unwrap().to_owned();
    let led = env.ledger.to_str().unwrap().to_owned();
    let cases = [
        (
            "Edit",
            json!({"file_path": cfg, "old_string": "1000", "new_string": "9999"}),
        ),
        ("Write", json!({"file_path": cfg, "content": "budgets: []"})),
        ("MultiEdit", json!({"file_path": cfg, "edits": []})),
        ("Write", json!({"file_path": led, "content": ""})),
        (
            "Write",
            json!({"file_path": format!("{led}-wal"), "content": ""}),
        ),
        (
            "NotebookEdit",
            json!({"notebook_path": led, "new_source": "x"}),
        ),
        (
            "Bash",
            json!({"command": "sed -i s/1000/99999/ budgets.yaml"}),
        ),
        (
            "Bash",
            json!({"command": format!("python3 - <<'EOF'\nopen('{cfg}','w').write('')\nEOF")}),
        ),
        ("Bash", json!({"command": format!("rm -f {led}")})),
        (
            "Bash",
            json!({"command": "sqlite3 ledger.sqlite 'DELETE FROM responses'"}),
        ),
    ];
    for cwd in [ACME, "/elsewhere"] {
        for (tool, input) in &cases {
            let e = assert_blocked(&check(&env, &pre_tool(&env, SID, cwd, tool, input.clone())));
            assert!(
                e.contains(&format!("octo-budget: {tool} of ")) && e.contains("refused"),
                "{tool}: {e}"
            );
        }
    }
    // A relative path resolved against the call's cwd.
    let rel = pre_tool(
        &env,
        SID,
        env.path().to_str().unwrap(),
        "Edit",
        json!({"file_path": "budgets.yaml"}),
    );
    assert_blocked(&check(&env, &rel));
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, SID, ACME, "Read", json!({"file_path": cfg})),
    ));
    assert_allowed_silently(&check(
        &env,
        &pre_tool(
            &env,
            SID,
            ACME,
            "Write",
            json!({"file_path": "/x/acme/budget.md"}),
        ),
    ));
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, SID, ACME, "Bash", json!({"command": "git status"})),
    ));
}

// Proves (issue 15, items 3, 4 and 26): the transcripts (Claude dir's
// `projects/`), the config's and the ledger's folders as a whole, and hard
// links to the config are protected, from file tools and Bash alike; Bash
// commands that only read the config, the ledger or the transcripts are
// allowed, and so is Claude Code's auto memory under `projects/`.
#[test]
fn self_protection_covers_transcripts_folders_and_hard_links_and_allows_reads() {
    let env = acme("warn", 0);
    let dir = env.path().to_str().unwrap().to_owned();
    let cfg = env.config.to_str().unwrap().to_owned();
    let projects = env.claude.join("projects");
    let transcript = env.append(
        &session_rel(SID),
        &[spend(SID, ACME, "m1", "2026-11-20T10:00:00.000Z", 5)],
    );
    let t = transcript.to_str().unwrap().to_owned();
    let p = projects.to_str().unwrap().to_owned();
    let link = env.home.join("notes.txt");
    std::fs::hard_link(&env.config, &link).unwrap();
    let l = link.to_str().unwrap().to_owned();
    let refused = [
        ("Write", json!({"file_path": t, "content": ""})),
        (
            "Edit",
            json!({"file_path": t, "old_string": "5", "new_string": "0"}),
        ),
        (
            "Write",
            json!({"file_path": format!("{p}/-x-acme/fake.jsonl"), "content": ""}),
        ),
        ("Write", json!({"file_path": l, "content": "budgets: []"})),
        (
            "Bash",
            json!({"command": format!("sed -i 's/\"input_tokens\":5/\"input_tokens\":0/' {t}")}),
        ),
        ("Bash", json!({"command": format!("rm -rf {p}")})),
        (
            "Bash",
            json!({"command": format!("cp /tmp/x.jsonl {p}/-x-acme/")}),
        ),
        (
            "Bash",
            json!({"command": format!("cp -r /tmp/evil/. {dir}")}),
        ),
        (
            "Bash",
            json!({"command": format!("rsync -a /tmp/evil/ {dir}/")}),
        ),
        (
            "Bash",
            json!({"command": format!("tar -C {dir} -xf /tmp/evil.tar")}),
        ),
        ("Bash", json!({"command": format!("mv {dir} /tmp/gone")})),
        (
            "Bash",
            json!({"command": format!("find {dir} -name '*.sqlite*' -delete")}),
        ),
        (
            "Bash",
            json!({"command": format!("ln {cfg} /tmp/innocent")}),
        ),
        (
            "Bash",
            json!({"command": format!("echo 'budgets: []' >> {l}")}),
        ),
        (
            "Bash",
            json!({"command": format!("cat /tmp/empty > {cfg}")}),
        ),
    ];
    for (tool, input) in &refused {
        let e = assert_blocked(&check(
            &env,
            &pre_tool(&env, SID, ACME, tool, input.clone()),
        ));
        assert!(
            e.contains(&format!("octo-budget: {tool} of ")) && e.contains("refused"),
            "{tool} {input}: {e}"
        );
    }
    let allowed = [
        ("Bash", json!({"command": format!("cat {cfg}")})),
        (
            "Bash",
            json!({"command": format!("grep -n monthly_usd_cap {cfg} | head -3")}),
        ),
        (
            "Bash",
            json!({"command": format!("tail -n 1 {t} | jq .message.usage")}),
        ),
        (
            "Bash",
            json!({"command": format!("wc -l {p}/-x-acme/*.jsonl > /tmp/count.txt")}),
        ),
        ("Bash", json!({"command": format!("ls -la {dir}")})),
        (
            "Write",
            json!({"file_path": format!("{p}/-x-acme/memory/MEMORY.md"), "content": "notes"}),
        ),
    ];
    for (tool, input) in &allowed {
        assert_allowed_silently(&check(
            &env,
            &pre_tool(&env, SID, ACME, tool, input.clone()),
        ));
    }
}

// Proves (issue 15, item 18): a warning whose output cannot be written
// (stdout on a full device) is not recorded as given: the next call shows
// it, and only then is it given once.
#[test]
fn a_warning_that_could_not_be_printed_is_shown_again() {
    let env = acme("warn", dollars(900));
    let mut child = env
        .std_cmd()
        .arg("check")
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(agent(&env, ACME).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let w = warning_of(&check(&env, &agent(&env, ACME)));
    assert!(
        w.contains("is at 90.0% of its $1,000.00 monthly cap"),
        "{w}"
    );
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
}

// ---- Failures --------------------------------------------------------------------------

#[track_caller]
fn assert_fails_closed(o: &Output, reason: &str) {
    let e = assert_blocked(o);
    assert!(
        e.starts_with("octo-budget: cannot check the budget ("),
        "{e}"
    );
    assert!(e.contains(reason), "expected {reason:?} in: {e}");
    assert!(e.contains("refusing the call"), "{e}");
}

// Proves: a missing config fails closed: exit 2 with the reason, never 1.
#[test]
fn missing_config_blocks() {
    let env = Env::new(); // no budgets.yaml written
    assert_fails_closed(&check(&env, &agent(&env, ACME)), "budgets.yaml");
}

// Proves: a broken config (bad YAML, unknown key) fails closed with the
// file and line, for tool calls and prompts alike.
#[test]
fn broken_config_blocks() {
    let env = Env::new();
    env.write_config("budgets:\n  - arm: acme\n    montly_usd_cap: 5\n");
    assert_fails_closed(&check(&env, &agent(&env, ACME)), "budgets.yaml:3:");
    env.write_config("budgets: [\n");
    assert_fails_closed(&check(&env, &prompt(&env, SID, ACME)), "budgets.yaml");
    // Even a tool that is not gated: nothing can be decided without a config.
    assert_fails_closed(
        &check(&env, &pre_tool(&env, SID, ACME, "Read", json!({}))),
        "budgets.yaml",
    );
}

// Proves: a ledger that is not SQLite fails closed, and with
// `on_error: allow` fails open, saying so on stderr.
#[test]
fn garbage_ledger_blocks_or_allows_as_configured() {
    let env = acme("hard_stop", dollars(1));
    std::fs::write(&env.ledger, vec![0x5a_u8; 8192]).unwrap();
    assert_fails_closed(
        &check(&env, &agent(&env, ACME)),
        "not an octo-budget ledger",
    );
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("gate:\n  on_error: allow\n");
    env.write_config(&cfg);
    let o = check(&env, &agent(&env, ACME));
    assert_eq!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(
        e.contains("not an octo-budget ledger")
            && e.contains("allowing the call because budgets.yaml sets gate.on_error: allow"),
        "{e}"
    );
}

// Proves: malformed stdin (not JSON, truncated JSON, empty, a JSON array)
// fails closed; with `on_error: allow` it fails open and says so.
#[test]
fn malformed_stdin_blocks_or_allows_as_configured() {
    let env = acme("hard_stop", 0);
    let full = agent(&env, ACME);
    let inputs = [
        "not json at all".to_owned(),
        full[..full.len() / 2].to_owned(),
        String::new(),
        "[1,2]".to_owned(),
    ];
    for input in &inputs {
        assert_fails_closed(&check(&env, input), "stdin is not Claude Code hook JSON");
    }
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("gate:\n  on_error: allow\n");
    env.write_config(&cfg);
    for input in &inputs {
        let o = check(&env, input);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("allowing the call"), "{}", stderr(&o));
    }
}

// Proves: a ledger locked by another writer beyond check's own wait fails
// closed with "busy" (and the deadline answers before the hook's timeout).
#[test]
fn ledger_lock_held_too_long_blocks() {
    let env = acme("hard_stop", dollars(1));
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m2",
            "2026-11-20T10:10:00.000Z",
            dollars(1),
        )],
    );
    let conn = rusqlite::Connection::open(&env.ledger).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM notices;")
        .unwrap();
    assert_fails_closed(&check(&env, &agent(&env, ACME)), "busy");
    conn.execute_batch("ROLLBACK").unwrap();
}

// Proves: a transcript path that does not exist or cannot be read does not
// hide the ledger's spend (the check still decides from what it has).
#[test]
fn missing_transcript_path_still_decides_from_the_ledger() {
    let env = acme("hard_stop", dollars(1_200));
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    let stdin =
        json!({"session_id": "gone", "transcript_path": "/nonexistent/x.jsonl", "cwd": ACME,
                       "hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_input": {}})
        .to_string();
    let o = check(&env, &stdin);
    assert_ne!(o.status.code(), Some(1));
    assert_blocked(&o);
}

// ---- Concurrency -------------------------------------------------------------------------

// Proves: 24 checks running at once while another thread appends to the
// transcript they all ingest all answer 0 or 2 with a budget reason (never
// 1, never an error), and the ledger ends with exactly what was written.
#[test]
fn concurrent_checks_while_the_transcript_grows() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 100\n    grace_pct: 100\n    alert_at_pct: 0\n    action_on_breach: hard_stop\n"
    ));
    let path = env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m0",
            "2026-11-20T09:00:00.000Z",
            1_000_001,
        )],
    );
    let stdin = agent(&env, ACME);
    let lines = 200u64;
    let each = 1_000_003u64; // $1.000003: 200 of them pass the $100 cap
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            for i in 0..lines {
                let line = spend(
                    SID,
                    ACME,
                    &format!("w{i}"),
                    "2026-11-20T10:00:00.000Z",
                    each,
                ) + "\n";
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                // Half a line, then the rest: readers must never count a partial line.
                let (a, b) = line.as_bytes().split_at(line.len() / 2);
                f.write_all(a).unwrap();
                f.flush().unwrap();
                f.write_all(b).unwrap();
                // Spread the appends over the time the checks run.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let children: Vec<_> = (0..24)
        .map(|_| {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("octo-budget"));
            let probe = env.cmd(); // for its arguments and environment
            c.args(probe.get_args()).arg("check");
            c.env_clear();
            for (k, v) in probe.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c.current_dir(env.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            feed(child.stdin.take(), stdin.as_bytes());
            child
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    writer.join().unwrap();
    for o in &outputs {
        match o.status.code() {
            Some(0) => assert_eq!(
                stdout(o),
                "",
                "alert_at_pct 0 and under the cap: no warning; stderr {}",
                stderr(o)
            ),
            Some(2) => {
                let e = stderr(o);
                assert!(
                    e.contains("arm \"acme\" has spent") && e.contains("monthly cap"),
                    "a budget block, not an error: {e}"
                );
            }
            other => panic!("exit {other:?}: {}", stderr(o)),
        }
    }
    // Afterwards the hook blocks, and the ledger holds exactly what was written.
    assert_blocked(&check(&env, &stdin));
    let r = env.report_json(&[]);
    let expected = 1_000_001 + lines as i64 * each as i64;
    assert_eq!(common::micros(&r["totals"]["cost_usd"]), expected);
    assert_eq!(r["totals"]["messages"], json!(lines + 1));
}

// ---- status --------------------------------------------------------------------------------

// Proves: `status --arm --json` prints every cap's limit, spent, remaining,
// reset and over flag and the decision check would make, without stdin.
#[test]
fn status_json_shows_every_cap_and_the_decision() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 1000\n    daily_usd_cap: 100\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[
            spend(SID, ACME, "m1", "2026-11-20T10:00:00.000Z", 123_456_789),
            spend(SID, ACME, "m2", "2026-11-03T10:00:00.000Z", dollars(500)),
        ],
    );
    let o = env
        .cmd()
        .args(["status", "--arm", "acme", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["arm"], "acme");
    assert_eq!(v["decision"], "block");
    assert_eq!(v["over_budget"], true);
    let caps = v["caps"].as_array().unwrap();
    let cap = |k: &str| {
        caps.iter()
            .find(|c| c["cap"] == k)
            .unwrap_or_else(|| panic!("no {k} cap in {v}"))
    };
    let m = cap("monthly");
    assert_eq!(common::micros(&m["limit_usd"]), 1_000_000_000);
    assert_eq!(common::micros(&m["spent_usd"]), 623_456_789);
    assert_eq!(common::micros(&m["remaining_usd"]), 376_543_211);
    assert_eq!(m["over"], false);
    assert_eq!(m["tier"], "ok");
    assert_eq!(m["resets"], "2026-12-01T00:00:00+00:00");
    let d = cap("daily");
    assert_eq!(common::micros(&d["spent_usd"]), 123_456_789);
    assert_eq!(common::micros(&d["remaining_usd"]), 0);
    assert_eq!(d["over"], true);
    assert_eq!(d["tier"], "hard_stop");
    assert_eq!(common::micros(&d["hard_stop_at_usd"]), 110_000_000);
    assert_eq!(d["resets"], "2026-11-21T00:00:00+00:00");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("$123.46 of its $100.00 daily cap"),
        "{v}"
    );
}

// Proves: `status --cwd DIR` finds the arm by directory and prints a table
// and the decision; a directory no arm owns says so and allows.
#[test]
fn status_by_cwd_prints_the_table_and_decision() {
    let env = acme("hard_stop", dollars(900));
    let o = env
        .cmd()
        .args(["status", "--cwd", "/x/acme/web"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("arm: acme\n"), "{out}");
    assert!(
        out.contains("$1,000.00")
            && out.contains("$900.00")
            && out.contains("$100.00")
            && out.contains("alert"),
        "{out}"
    );
    assert!(out.contains("decision: warn"), "{out}");
    let o = env
        .cmd()
        .args(["status", "--cwd", "/nowhere"])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("(none: no arm owns this directory)") && out.contains("decision: allow"),
        "{out}"
    );
}

// Proves: the burn-rate warning of a warn arm is said once per clock hour,
// not on every call (its trailing window moves with every call).
#[test]
fn burn_rate_warning_is_not_repeated_on_every_call() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    max_usd_per_hour: 5\n    action_on_breach: warn\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T11:50:00.000Z",
            dollars(6),
        )],
    );
    env.now = "2026-11-20T12:00:00Z".into();
    let msg = warning_of(&check(&env, &agent(&env, ACME)));
    assert!(
        msg.contains("hourly cap") && msg.contains("$6.00 spent"),
        "{msg}"
    );
    env.now = "2026-11-20T12:00:01Z".into();
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.now = "2026-11-20T12:20:00Z".into();
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
}

// Proves: the first check on a ledger that has never read anything (the
// hook wired by hand, no `hook install` or `ingest`) reads all history, so
// spend from the arm's other sessions counts from the very first call.
#[test]
fn first_check_on_an_empty_ledger_reads_all_history() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 10\n    grace_pct: 100\n    action_on_breach: hard_stop\n"
    ));
    // $12 spent by an earlier session; this session's transcript is empty.
    env.append(
        &session_rel("old-session"),
        &[spend(
            "old-session",
            ACME,
            "m_old",
            "2026-11-02T10:00:00.000Z",
            dollars(12),
        )],
    );
    std::fs::write(env.transcript(&session_rel(SID)), "").unwrap();
    assert!(!env.ledger.exists());
    let e = assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(
        e.contains("has spent $12.00 of its $10.00 monthly cap"),
        "{e}"
    );
}

// ---- The kill switch --------------------------------------------------------------------------

/// The halt reason of arm acme's monthly cap ($1,000, grace 110%) at
/// `spent`, refusing `what`.
fn acme_monthly_halt(spent: &str, what: &str) -> String {
    format!(
        "octo-budget: arm \"acme\" has spent {spent} of its $1,000.00 monthly cap (hard stop at 110%, $1,100.00); \
         the agent is halted ({what} refused) until 2026-12-01 or until the cap is raised in budgets.yaml"
    )
}

// Proves: at cap x grace a stop arm halts every PreToolUse call, gated or
// not (Agent, WebSearch, an MCP tool, Bash, Read, Edit, Grep), with exit 0
// and exactly the halt JSON, and refuses a prompt with exit 2 and the same
// reason naming the prompt.
#[test]
fn stop_arm_halts_every_tool_and_refuses_prompts_at_the_hard_stop() {
    let env = acme("stop", 1_123_400_000);
    for (tool, input) in [
        ("Agent", json!({"prompt": "look"})),
        ("WebSearch", json!({"query": "x"})),
        ("mcp__github__create_issue", json!({})),
        ("Bash", json!({"command": "cargo test"})),
        ("Read", json!({"file_path": "/x/acme/src/main.rs"})),
        (
            "Edit",
            json!({"file_path": "/x/acme/src/main.rs", "old_string": "a", "new_string": "b"}),
        ),
        ("Grep", json!({"pattern": "budget"})),
    ] {
        assert_halted_with(
            &check(&env, &pre_tool(&env, SID, "/x/acme/api", tool, input)),
            &acme_monthly_halt("$1,123.40", tool),
        );
    }
    assert_eq!(
        assert_blocked(&check(&env, &prompt(&env, SID, ACME))),
        acme_monthly_halt("$1,123.40", "this prompt")
    );
    // Another session of the arm is halted too (a calendar cap is the arm's).
    let other = "22222222-aaaa-bbbb-cccc-000000000002";
    assert_halted(&check(
        &env,
        &pre_tool(&env, other, ACME, "Read", json!({})),
    ));
}

// Proves: below its hard stop a stop arm behaves like a hard_stop arm: the
// same warning once per tier on gated calls, ungated tools run silently,
// and one micro-dollar more (exactly cap x grace) halts.
#[test]
fn stop_arm_below_the_hard_stop_warns_like_hard_stop() {
    for action in ["hard_stop", "stop"] {
        let env = acme(action, 1_099_999_999);
        let msg = warning_of(&check(&env, &agent(&env, ACME)));
        let next = if action == "stop" {
            "the agent is halted at $1,100.00"
        } else {
            "hard stop at $1,100.00"
        };
        assert_eq!(
            msg,
            format!(
                "octo-budget: arm \"acme\" is at 109.9% of its $1,000.00 monthly cap ($1,100.00 spent; {next})"
            ),
            "{action}"
        );
        assert_allowed_silently(&check(&env, &agent(&env, ACME)));
        assert_allowed_silently(&check(
            &env,
            &pre_tool(&env, SID, ACME, "Bash", json!({"command": "ls"})),
        ));
        assert_allowed_silently(&check(&env, &prompt(&env, SID, ACME)));
    }
    let env = acme("stop", 1_099_999_999);
    env.append(
        &session_rel(SID),
        &[spend(SID, ACME, "msg_2", "2026-11-20T10:01:00.000Z", 1)],
    );
    assert_halted_with(
        &check(
            &env,
            &pre_tool(&env, SID, ACME, "Bash", json!({"command": "ls"})),
        ),
        &acme_monthly_halt("$1,100.00", "Bash"),
    );
}

// Proves: on a hard_stop arm that can halt (it has a burn rate), the
// monthly hard stop still only refuses gated tools with exit 2; ungated
// tools run, because the burn rate is under its limit.
#[test]
fn hard_stop_calendar_cap_still_refuses_only_gated_tools() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 1000\n    max_usd_per_hour: 5000\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T11:30:00.000Z",
            dollars(1_200),
        )],
    );
    let e = assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(e.contains("; Agent refused until 2026-12-01"), "{e}");
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, SID, ACME, "Bash", json!({"command": "git status"})),
    ));
}

// Proves: a burn-rate breach on a stop arm halts with the burn-rate reason.
#[test]
fn burn_rate_on_a_stop_arm_halts() {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 10000\n    max_usd_per_hour: 5\n    action_on_breach: stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T11:59:00.000Z",
            5_000_001,
        )],
    );
    assert_halted_with(
        &check(&env, &pre_tool(&env, SID, ACME, "Grep", json!({"pattern": "x"}))),
        "octo-budget: arm \"acme\" has spent $5.00 in the last hour, over its $5.00 per hour limit; \
         the agent is halted (Grep refused) until the last hour's spend falls below the limit \
         or until the cap is raised in budgets.yaml",
    );
}

// Proves: a `total:` cap with stop halts the sessions of every arm, warn
// and alert arms included, and of work no arm owns, with the team's reason.
#[test]
fn total_with_stop_halts_every_arm() {
    let env = Env::new();
    env.write_config(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n    action_on_breach: warn\n  - arm: beta\n    path: /x/beta\n    action_on_breach: alert\n\
         total:\n  daily_usd_cap: 100\n  grace_pct: 100\n  action_on_breach: stop\n",
    );
    env.append(
        "-x-acme/s1.jsonl",
        &[spend(
            "s1",
            "/x/acme",
            "m1",
            "2026-11-20T08:00:00.000Z",
            dollars(99),
        )],
    );
    // $99 of $100: gated calls warn, ungated ones run.
    assert!(warning_of(&check(&env, &agent(&env, "/x/beta"))).contains("the team"));
    assert_allowed_silently(&check(
        &env,
        &pre_tool(&env, SID, "/x/beta", "Bash", json!({"command": "ls"})),
    ));
    env.append(
        "-tmp/s3.jsonl",
        &[spend(
            "s3",
            "/tmp",
            "m3",
            "2026-11-20T10:00:00.000Z",
            dollars(1),
        )],
    );
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    for (i, cwd) in ["/x/acme", "/x/beta", "/tmp"].iter().enumerate() {
        let sid = format!("session-{i}");
        assert_halted_with(
            &check(
                &env,
                &pre_tool(&env, &sid, cwd, "Bash", json!({"command": "ls"})),
            ),
            "octo-budget: the team (all arms together) has spent $100.00 of its $100.00 daily cap \
             (hard stop at 100%, $100.00); the agent is halted (Bash refused) until 2026-11-21 \
             or until the cap is raised in budgets.yaml",
        );
    }
}

// Proves: warn and alert arms are never halted, whatever their session cap
// and burn rate: ungated tools run silently, gated ones warn.
#[test]
fn warn_and_alert_arms_are_never_halted() {
    for action in ["warn", "alert"] {
        let env = Env::new();
        env.write_config(&format!(
            "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 10\n    session_usd_cap: 1\n    max_usd_per_hour: 1\n    action_on_breach: {action}\n"
        ));
        env.append(
            &session_rel(SID),
            &[spend(
                SID,
                ACME,
                "m1",
                "2026-11-20T11:59:00.000Z",
                dollars(50),
            )],
        );
        assert_allowed_silently(&check(
            &env,
            &pre_tool(&env, SID, ACME, "Bash", json!({"command": "ls"})),
        ));
        let msg = warning_of(&check(&env, &agent(&env, ACME)));
        assert!(
            msg.contains(&format!("{action} arms are not blocked")),
            "{msg}"
        );
        assert_eq!(check(&env, &prompt(&env, SID, ACME)).status.code(), Some(0));
    }
}

// Proves: self-protection refusals stay exit-2 refusals on a halted arm
// (never the halt JSON), for Bash and Edit alike.
#[test]
fn self_protection_stays_a_refusal_on_a_halted_arm() {
    let env = acme("stop", dollars(1_200));
    let cfg = env.config.to_str().unwrap().to_owned();
    for (tool, input) in [
        (
            "Edit",
            json!({"file_path": cfg, "old_string": "1000", "new_string": "9"}),
        ),
        ("Bash", json!({"command": "sed -i s/1000/9/ budgets.yaml"})),
    ] {
        let o = check(&env, &pre_tool(&env, SID, ACME, tool, input));
        let e = assert_blocked(&o);
        assert!(e.contains(&format!("octo-budget: {tool} of ")), "{e}");
        assert_eq!(stdout(&o), "");
    }
}

/// PreToolUse input from inside a subagent: `agent_id`/`agent_type`, the
/// PARENT's session id and transcript path (as Claude Code 2.1.328 sends).
fn sub_tool(env: &Env, tool: &str) -> String {
    let mut v: Value = serde_json::from_str(&pre_tool(env, SID, ACME, tool, json!({}))).unwrap();
    v["agent_id"] = json!("a1b2c3");
    v["agent_type"] = json!("Explore");
    v.to_string()
}

// Proves: once a session is halted, calls from its subagents are halted
// too, also after the spend that caused it left the burn-rate window; a
// subagent's prompt does not lift the halt; the parent's own prompt that
// passes the check does.
#[test]
fn a_halt_covers_the_sessions_subagents_until_its_own_prompt_passes() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    max_usd_per_hour: 5\n    action_on_breach: stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T11:30:00.000Z",
            dollars(6),
        )],
    );
    let reason = |what: &str| {
        format!(
            "octo-budget: arm \"acme\" has spent $6.00 in the last hour, over its $5.00 per hour limit; \
             the agent is halted ({what} refused) until the last hour's spend falls below the limit \
             or until the cap is raised in budgets.yaml"
        )
    };
    // The breach is first seen inside a subagent: it halts there.
    assert_halted_with(&check(&env, &sub_tool(&env, "Read")), &reason("Read"));
    // An hour later the spend is out of the window, but the session stays halted.
    env.now = "2026-11-20T12:31:00Z".into();
    assert_halted_with(&check(&env, &sub_tool(&env, "Bash")), &reason("Bash"));
    assert_halted_with(&check(&env, &agent(&env, ACME)), &reason("Agent"));
    let mut sub_prompt: Value = serde_json::from_str(&prompt(&env, SID, ACME)).unwrap();
    sub_prompt["agent_id"] = json!("a1b2c3");
    assert_eq!(
        assert_blocked(&check(&env, &sub_prompt.to_string())),
        reason("this prompt")
    );
    assert_halted(&check(&env, &sub_tool(&env, "Read")));
    // The parent's prompt passes (the hour has gone by) and lifts the halt.
    assert_allowed_silently(&check(&env, &prompt(&env, SID, ACME)));
    assert_allowed_silently(&check(&env, &sub_tool(&env, "Read")));
}

/// `status --arm acme --json [--exit-code]` parsed, with its exit code.
fn status_json(env: &Env, extra: &[&str]) -> (Value, Option<i32>) {
    let o = env
        .cmd()
        .args(["status", "--arm", "acme", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("status --json: {} {}", stdout(&o), stderr(&o)));
    (v, o.status.code())
}

// Proves: status says `stop` (decision, tier, the cap's tier) where the
// next call would halt, `block` at a hard_stop arm's hard stop, and
// `--exit-code` exits 8, 7 or 0 accordingly (0 without the flag).
#[test]
fn status_says_stop_and_exit_code_tells_scripts() {
    let env = acme("stop", 1_123_400_000);
    let (v, code) = status_json(&env, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(v["decision"], "stop");
    assert_eq!(v["tier"], "stop");
    assert_eq!(v["over_budget"], true);
    assert_eq!(v["session_halted"], false);
    assert_eq!(
        v["reason"],
        acme_monthly_halt("$1,123.40", "tool calls and prompts")
    );
    let m = &v["caps"][0];
    assert_eq!(
        (m["cap"].as_str(), m["tier"].as_str()),
        (Some("monthly"), Some("stop"))
    );
    assert_eq!(m["action"], "stop");
    assert_eq!(common::micros(&m["hard_stop_at_usd"]), 1_100_000_000);
    assert_eq!(status_json(&env, &["--exit-code"]).1, Some(8));
    let o = env
        .cmd()
        .args(["status", "--arm", "acme"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("decision: stop\n"), "{}", stdout(&o));
    assert!(stdout(&o).contains("┆ stop ┆"), "{}", stdout(&o));

    let env = acme("hard_stop", 1_123_400_000);
    let (v, code) = status_json(&env, &["--exit-code"]);
    assert_eq!((v["decision"].as_str(), code), (Some("block"), Some(7)));
    let env = acme("stop", 1_099_999_999);
    let (v, code) = status_json(&env, &["--exit-code"]);
    assert_eq!((v["decision"].as_str(), code), (Some("warn"), Some(0)));
    assert_eq!(v["tier"], "warn");
    let env = acme("warn", 5_000_000_000);
    assert_eq!(status_json(&env, &["--exit-code"]).1, Some(0));
}

// Proves: `status --session ID` says when that session is halted by the
// kill switch (a recorded halt), also after the cause has gone.
#[test]
fn status_shows_a_halted_session() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    max_usd_per_hour: 5\n    action_on_breach: hard_stop\n"
    ));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "m1",
            "2026-11-20T11:30:00.000Z",
            dollars(6),
        )],
    );
    assert_eq!(
        status_json(&env, &["--session", SID]).0["session_halted"],
        false
    );
    assert_halted(&check(&env, &agent(&env, ACME)));
    env.now = "2026-11-20T13:00:00Z".into();
    let (v, code) = status_json(&env, &["--session", SID, "--exit-code"]);
    assert_eq!(v["session_halted"], true);
    assert_eq!((v["decision"].as_str(), code), (Some("allow"), Some(0)));
    let o = env
        .cmd()
        .args(["status", "--arm", "acme", "--session", SID])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains(&format!(
            "session {SID} is halted (arm \"acme\" has spent $6.00 in the last hour, over its $5.00 per hour limit); \
             its tool calls stay halted until a prompt of it passes the check"
        )),
        "{}",
        stdout(&o)
    );
}

// Proves: a batch of tool calls checked at once (Claude Code runs matching
// hooks in parallel) on a halted arm all answer the halt, each naming its
// own tool, and the ledger records the session's halt exactly once.
#[test]
fn concurrent_calls_all_halt_and_record_one_halt() {
    let env = acme("stop", dollars(1_200));
    env.cmd().arg("ingest").arg("--quiet").assert().success();
    let tools = ["Bash", "Read", "Grep", "Edit", "Agent", "Glob"];
    let children: Vec<_> = (0..12)
        .map(|i| {
            let mut c = env.std_cmd();
            c.arg("check")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            let stdin = pre_tool(&env, SID, ACME, tools[i % tools.len()], json!({}));
            feed(child.stdin.take(), stdin.as_bytes());
            (i, child)
        })
        .collect();
    for (i, child) in children {
        let o = child.wait_with_output().unwrap();
        assert_halted_with(&o, &acme_monthly_halt("$1,200.00", tools[i % tools.len()]));
    }
    let conn = rusqlite::Connection::open(&env.ledger).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT session_id FROM halts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, [SID]);
}

/// PostToolUse input (the tool has run).
fn post_tool(env: &Env, session: &str, tool: &str) -> String {
    let mut v: Value =
        serde_json::from_str(&pre_tool(env, session, ACME, tool, json!({}))).unwrap();
    v["hook_event_name"] = json!("PostToolUse");
    v["tool_response"] = json!({"result": "done"});
    v.to_string()
}

// Proves: PostToolUse (installed when an arm can halt) ends a halted
// session with exactly `{"continue": false, "stopReason": ...}` and exit 0
// (a halt inside a subagent ends only the subagent; this ends the session
// when its Agent call returns); it says nothing for a session that is not
// halted, even on an arm past its hard stop (PreToolUse decides that).
#[test]
fn post_tool_use_ends_a_halted_session() {
    let env = acme("stop", dollars(1_200));
    let other = "22222222-aaaa-bbbb-cccc-000000000002";
    assert_allowed_silently(&check(&env, &post_tool(&env, SID, "Agent")));
    // A subagent's call halts the session...
    assert_halted(&check(&env, &sub_tool(&env, "Bash")));
    // ...and the parent's Agent call, when it returns, ends the session.
    let o = check(&env, &post_tool(&env, SID, "Agent"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let v: Value = serde_json::from_str(stdout(&o).trim_end()).unwrap();
    assert_eq!(
        v,
        json!({"continue": false, "stopReason":
            "octo-budget: arm \"acme\" has spent $1,200.00 of its $1,000.00 monthly cap (hard stop at 110%, $1,100.00); \
             the agent is halted until 2026-12-01 or until the cap is raised in budgets.yaml"})
    );
    assert_allowed_silently(&check(&env, &post_tool(&env, other, "Agent")));
    // A config that cannot halt never answers PostToolUse.
    let env = acme("hard_stop", dollars(1_200));
    assert_allowed_silently(&check(&env, &post_tool(&env, SID, "Agent")));
}

// ---- The spend cache (schema 9) ---------------------------------------------------

// Proves: `check` prices past days once and keeps them in the ledger, but a
// response that arrives later with an earlier day's timestamp (here in the
// session's own transcript, 2026-11-12 while the cached days end on
// 2026-11-20) counts at once: its ingest drops the cached figure, so the
// refusal names the exact new total ($900 + $250 = $1,150).
#[test]
fn a_late_response_for_a_past_day_counts_at_the_next_call() {
    let env = acme("hard_stop", 0);
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "msg_1",
            "2026-11-10T10:00:00.000Z",
            dollars(900),
        )],
    );
    let msg = warning_of(&check(&env, &agent(&env, ACME)));
    assert!(msg.contains("$900.00"), "{msg}");
    // The month's past days (up to 2026-11-20, UTC) are cached: $900.
    let cached: Vec<(i64, String)> = rusqlite::Connection::open(&env.ledger)
        .unwrap()
        .prepare("SELECT upto_ms, picos FROM spend_cache")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let upto = chrono::DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").unwrap();
    assert!(
        cached.contains(&(upto.timestamp_millis(), "900000000000000".into())),
        "{cached:?}"
    );
    // A second call uses the cached past days: same figure, no new warning.
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "msg_2",
            "2026-11-12T09:00:00.000Z",
            dollars(250),
        )],
    );
    let reason = assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(
        reason.contains("has spent $1,150.00 of its $1,000.00 monthly cap"),
        "{reason}"
    );
}

// Proves: a cached figure is kept per price table: after a `prices:`
// override doubles the model's input rate, the same past spend ($600) is
// priced again ($1,200) and refused, without any new transcript bytes.
#[test]
fn a_price_override_reprices_the_cached_past() {
    let env = acme("hard_stop", 0);
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "msg_1",
            "2026-11-03T10:00:00.000Z",
            dollars(600),
        )],
    );
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: 1000\n    grace_pct: 110\n    action_on_breach: hard_stop\nprices:\n  {MODEL}:\n    input: 2\n    output: 10\n"
    ));
    let reason = assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(reason.contains("has spent $1,200.00"), "{reason}");
}

// Proves: a figure cached under one attribution is not used under another:
// once budgets.yaml gives the arm a second path, the spend recorded there
// on a past day ($700, read by `report` into the same ledger) joins the
// arm's $500 and the call is refused at $1,200.
#[test]
fn an_arm_path_change_reattributes_the_cached_past() {
    let env = acme("hard_stop", 0);
    env.append(
        &session_rel(SID),
        &[spend(
            SID,
            ACME,
            "msg_1",
            "2026-11-03T10:00:00.000Z",
            dollars(500),
        )],
    );
    let other = "22222222-aaaa-bbbb-cccc-000000000002";
    env.append(
        &format!("-x-beta/{other}.jsonl"),
        &[spend(
            other,
            "/x/beta",
            "msg_9",
            "2026-11-04T10:00:00.000Z",
            dollars(700),
        )],
    );
    assert_eq!(
        env.cmd()
            .args(["report", "--json"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    paths: [{ACME}, /x/beta]\n    monthly_usd_cap: 1000\n    grace_pct: 110\n    action_on_breach: hard_stop\n"
    ));
    let reason = assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(reason.contains("has spent $1,200.00"), "{reason}");
}

// ---- The config as the ledger keeps it ---------------------------------------

/// The configs `ledger` keeps for the hook.
fn cached_configs(ledger: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(ledger).unwrap();
    let mut st = c
        .prepare("SELECT config FROM config_cache ORDER BY rowid")
        .unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// Replaces every config `ledger` keeps with `config`.
fn set_cached_configs(ledger: &std::path::Path, config: &str) {
    let c = rusqlite::Connection::open(ledger).unwrap();
    c.execute("UPDATE config_cache SET config = ?1", [config])
        .unwrap();
}

// Proves: the hook keeps the validated config in the ledger and uses it
// for the same budgets.yaml bytes (a stored entry that says otherwise is
// what the next call obeys), an edit of the file takes effect on the very
// next call whatever is stored, putting the old bytes back finds the old
// entry, and an entry that cannot be read is parsed around.
#[test]
fn the_hook_reads_budgets_yaml_from_the_ledger_until_the_file_changes() {
    let env = acme("hard_stop", 1_123_400_000);
    let original = std::fs::read_to_string(&env.config).unwrap();
    // The first call creates the ledger; the second stores the config in it.
    assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(cached_configs(&env.ledger).is_empty());
    assert_blocked(&check(&env, &agent(&env, ACME)));
    let stored = cached_configs(&env.ledger);
    assert_eq!(stored.len(), 1, "one config stored: {stored:?}");
    assert!(stored[0].contains("\"acme\""), "{}", stored[0]);

    // The entry is what the call obeys: $2,000 stored, $1,000 in the file.
    set_cached_configs(&env.ledger, &stored[0].replace("1000000000", "2000000000"));
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));

    // An edit (here: only the grace) is read at once, and stored too.
    env.write_config(&original.replace("grace_pct: 110", "grace_pct: 100"));
    assert_blocked(&check(&env, &agent(&env, ACME)));
    assert_eq!(cached_configs(&env.ledger).len(), 2);

    // The first bytes again: the first entry (as tampered above).
    env.write_config(&original);
    assert_allowed_silently(&check(&env, &agent(&env, ACME)));

    // An entry that is not a stored config: the file is parsed.
    set_cached_configs(&env.ledger, "{\"not\": \"a config\"}");
    assert_blocked(&check(&env, &agent(&env, ACME)));
    set_cached_configs(&env.ledger, "");
    assert_blocked(&check(&env, &agent(&env, ACME)));
}

// Proves: a budgets.yaml that names its own ledger (`ledger:`, relative
// to the file) has its config kept in, and read from, that ledger, not the
// default one, even when the default one exists and holds an entry for the
// very same bytes.
#[test]
fn a_config_naming_its_ledger_is_kept_in_that_ledger() {
    let env = acme("hard_stop", 1_123_400_000);
    let yaml = std::fs::read_to_string(&env.config).unwrap() + "ledger: own.sqlite\n";
    env.write_config(&yaml);
    let own = env.path().join("own.sqlite");
    let default = env.home.join(".local/share/octo-budget/ledger.sqlite");
    // The default ledger, named by --ledger, stores this file's config; a
    // $2,000 cap there instead of the file's $1,000.
    for _ in 0..2 {
        assert_blocked(
            &env.cmd_with_ledger(&default)
                .arg("check")
                .write_stdin(agent(&env, ACME))
                .output()
                .unwrap(),
        );
    }
    let stored = cached_configs(&default);
    assert_eq!(stored.len(), 1);
    set_cached_configs(&default, &stored[0].replace("1000000000", "2000000000"));
    // Without --ledger: the file's own ledger, so the file's $1,000.
    let hook = || {
        let mut c =
            assert_cmd::Command::from_std(env.sealed(assert_cmd::cargo::cargo_bin("octo-budget")));
        c.args([
            "--config",
            env.config.to_str().unwrap(),
            "--now",
            &env.now,
            "check",
        ])
        .write_stdin(agent(&env, ACME))
        .output()
        .unwrap()
    };
    for _ in 0..2 {
        assert_blocked(&hook());
    }
    let stored = cached_configs(&own);
    assert_eq!(stored.len(), 1, "stored in the config's own ledger");
    // ... and read from there: a $2,000 entry there is what the call obeys.
    set_cached_configs(&own, &stored[0].replace("1000000000", "2000000000"));
    assert_allowed_silently(&hook());
    assert_eq!(cached_configs(&default).len(), 1);
}

// Proves: a budgets.yaml that does not validate is refused on every call
// and never stored; only the ledger the call uses keeps configs.
#[test]
fn a_broken_budgets_yaml_is_never_stored() {
    let env = acme("hard_stop", 1_123_400_000);
    for _ in 0..2 {
        assert_blocked(&check(&env, &agent(&env, ACME)));
    }
    env.write_config("budgets:\n  - arm: acme\n    monthly_usd_cap: -5\n    path: /x/acme\n");
    for _ in 0..2 {
        let o = check(&env, &agent(&env, ACME));
        assert!(assert_blocked(&o).contains("cannot check the budget"));
    }
    assert_eq!(cached_configs(&env.ledger).len(), 1);
}

// Proves: the ledger keeps the 8 newest configs, not one per edit ever made.
#[test]
fn the_ledger_keeps_only_the_newest_configs() {
    let env = acme("hard_stop", 0);
    for cap in 1..=12 {
        env.write_config(&format!(
            "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n    monthly_usd_cap: {cap}\n"
        ));
        assert_allowed_silently(&check(&env, &agent(&env, ACME)));
    }
    let kept = cached_configs(&env.ledger);
    assert_eq!(kept.len(), 8);
    assert!(
        kept[7].contains("12000000"),
        "the newest is kept: {}",
        kept[7]
    );
}

// Proves: a ledger of the schema before the config cache (10) is not
// migrated while the config is looked up (the lookup is skipped: the file
// is parsed), then migrated by the call as before, and the next call
// stores the config.
#[test]
fn a_ledger_to_migrate_is_migrated_after_the_config_is_loaded() {
    let env = acme("hard_stop", 1_123_400_000);
    assert_blocked(&check(&env, &agent(&env, ACME)));
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.execute_batch("DROP TABLE config_cache; PRAGMA user_version = 10;")
            .unwrap();
    }
    assert_blocked(&check(&env, &agent(&env, ACME)));
    assert!(cached_configs(&env.ledger).is_empty());
    assert_blocked(&check(&env, &agent(&env, ACME)));
    assert_eq!(cached_configs(&env.ledger).len(), 1);
}
