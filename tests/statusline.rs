//! `octo-budget statusline`: one line per refresh for Claude Code's
//! `statusLine`, for every tier; its JSON input contract; and it never
//! breaks the UI (any error: one short line, exit 0).

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::{assistant, Env};
use serde_json::json;

/// acme at /w/acme with a $1 monthly cap and a $5 hourly limit.
fn config(action: &str) -> String {
    format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: /w/acme\n    monthly_usd_cap: 1\n    max_usd_per_hour: 5\n    action_on_breach: {action}\n    grace_pct: 110\n"
    )
}

/// A response of `out` output tokens of Sonnet 4.5 ($15 per million) in
/// session `s` at `ts`.
fn line(s: &str, n: u32, out: u64, ts: &str) -> String {
    assistant(
        s,
        "/w/acme/src",
        &format!("m{s}{n}"),
        &format!("r{s}{n}"),
        ts,
        "claude-sonnet-4-5-20250929",
        json!({"output_tokens": out}),
    )
}

fn run(env: &Env, stdin: &[u8], extra: &[&str]) -> Output {
    let mut c = env.std_cmd();
    c.arg("statusline")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The one line printed (asserting exit 0, one line, nothing on stderr).
fn one_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(s.lines().count(), 1, "one line: {s:?}");
    assert!(s.ends_with('\n'));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.trim_end().to_owned()
}

fn input(env: &Env, session: &str) -> Vec<u8> {
    let t = env.transcript(&format!("-w-acme/{session}.jsonl"));
    json!({"session_id": session, "transcript_path": t, "cwd": "/w/acme",
           "workspace": {"current_dir": "/w/acme", "project_dir": "/w/acme"},
           "model": {"id": "claude-opus-5-5", "display_name": "Opus 5.5"},
           "cost": {"total_cost_usd": 0.5}})
    .to_string()
    .into_bytes()
}

/// Each tier, with the session's spend and the last hour's burn rate:
/// an older session (2026-11-02) holds `before` output tokens, this one
/// (s1, 11:30 today, within the hour) `now_out`.
fn tier_line(action: &str, before: u64, now_out: u64) -> String {
    let env = Env::new();
    env.write_config(&config(action));
    env.append(
        "-w-acme/s0.jsonl",
        &[line("s0", 1, before, "2026-11-02T10:00:00.000Z")],
    );
    env.append(
        "-w-acme/s1.jsonl",
        &[line("s1", 1, now_out, "2026-11-20T11:30:00.000Z")],
    );
    one_line(&run(&env, &input(&env, "s1"), &[]))
}

#[test]
fn every_tier() {
    // $0.15 + $0.03: 18% of $1, ok; session $0.03; $0.03 in the last hour.
    assert_eq!(
        tier_line("warn", 10_000, 2_000),
        "acme $0.18/$1 monthly (18%) | session $0.03 | $0.03/h"
    );
    // $0.75 + $0.06 = $0.81: alert from 80%.
    assert_eq!(
        tier_line("warn", 50_000, 4_000),
        "acme $0.81/$1 monthly (81% alert) | session $0.06 | $0.06/h"
    );
    // $1.05: over the cap on a warn arm.
    assert_eq!(
        tier_line("warn", 60_000, 10_000),
        "acme $1.05/$1 monthly (105% warn) | session $0.15 | $0.15/h"
    );
    // $1.20 on a hard_stop arm with grace 110%: stopped.
    assert_eq!(
        tier_line("hard_stop", 60_000, 20_000),
        "acme $1.20/$1 monthly (120% hard stop) | session $0.30 | $0.30/h"
    );
    // The burn rate is the tightest when it is the worst tier: $6 in the
    // last hour over a $5 limit on a hard_stop arm (the month: $6.15),
    // which halts the agent (the kill switch).
    let env = Env::new();
    env.write_config(&config("hard_stop").replace("monthly_usd_cap: 1", "monthly_usd_cap: 100"));
    env.append(
        "-w-acme/s1.jsonl",
        &[line("s1", 1, 400_000, "2026-11-20T11:30:00.000Z")],
    );
    assert_eq!(
        one_line(&run(&env, &input(&env, "s1"), &[])),
        "acme $6.00/$5 per hour (120% halted) | session $6.00 | $6.00/h"
    );
    // A stop arm at its hard stop: halted.
    assert_eq!(
        tier_line("stop", 60_000, 20_000),
        "acme $1.20/$1 monthly (120% halted) | session $0.30 | $0.30/h"
    );
}

#[test]
fn reads_the_sessions_new_bytes_like_check() {
    let env = Env::new();
    env.write_config(&config("warn"));
    env.append(
        "-w-acme/s1.jsonl",
        &[line("s1", 1, 10_000, "2026-11-20T11:00:00.000Z")],
    );
    assert!(env.run(&["ingest", "--quiet"]).status.success());
    // Written after the ledger was warm: only the session's file is read.
    env.append(
        "-w-acme/s1.jsonl",
        &[line("s1", 2, 10_000, "2026-11-20T11:10:00.000Z")],
    );
    assert_eq!(
        one_line(&run(&env, &input(&env, "s1"), &[])),
        "acme $0.30/$1 monthly (30%) | session $0.30 | $0.30/h"
    );
}

#[test]
fn input_contract() {
    let env = Env::new();
    env.write_config(&config("warn").replace("    max_usd_per_hour: 5\n", ""));
    env.append(
        "-w-acme/s1.jsonl",
        &[line("s1", 1, 10_000, "2026-11-20T11:00:00.000Z")],
    );
    // workspace only, no session: the arm's cap, no session part, and no
    // burn rate without a limit.
    let ws = json!({"workspace": {"current_dir": "/w/acme/src"}}).to_string();
    assert_eq!(
        one_line(&run(&env, ws.as_bytes(), &[])),
        "acme $0.15/$1 monthly (15%)"
    );
    let pd = json!({"workspace": {"project_dir": "/w/acme"}, "session_id": "s1"}).to_string();
    assert_eq!(
        one_line(&run(&env, pd.as_bytes(), &[])),
        "acme $0.15/$1 monthly (15%) | session $0.15"
    );
    // Nothing at all: the folder it runs in (the test's temp dir) has no arm.
    assert_eq!(one_line(&run(&env, b"{}", &[])), "no arm owns this folder");
    let other = json!({"cwd": "/w/other", "session_id": "nope", "transcript_path": "/does/not/exist.jsonl"})
        .to_string();
    assert_eq!(
        one_line(&run(&env, other.as_bytes(), &[])),
        "no arm owns this folder | session $0.00"
    );
}

#[test]
fn garbage_and_failures_print_one_short_line_and_exit_0() {
    let env = Env::new();
    env.write_config(&config("warn"));
    for bad in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        b"\xff\xfe\x00junk",
        b"{\"cwd\": ",
    ] {
        let l = one_line(&run(&env, bad, &[]));
        assert!(l.starts_with("octo-budget: "), "{l}");
        assert!(l.chars().count() <= 100, "{l}");
    }
    // A broken config is one line too, never a non-zero exit.
    env.write_config("budgets:\n  - arm: acme\n    monthly_cap: 5\n");
    let l = one_line(&run(&env, &input(&env, "s1"), &[]));
    assert!(l.starts_with("octo-budget: "), "{l}");
    // So is a ledger that is not a ledger.
    env.write_config(&config("warn"));
    std::fs::write(&env.ledger, b"this is not SQLite, not at all, no").unwrap();
    let l = one_line(&run(&env, &input(&env, "s1"), &[]));
    assert!(l.starts_with("octo-budget: "), "{l}");
}

#[test]
fn colour_by_tier_only_when_asked_and_never_with_no_color() {
    let env = Env::new();
    env.write_config(&config("hard_stop"));
    env.append(
        "-w-acme/s1.jsonl",
        &[line("s1", 1, 80_000, "2026-11-02T11:00:00.000Z")],
    );
    let inp = input(&env, "s1");
    // Piped (as here): no colour by default.
    assert!(!one_line(&run(&env, &inp, &[])).contains('\x1b'));
    let l = one_line(&run(&env, &inp, &["--color", "always"]));
    assert!(
        l.starts_with("\x1b[1;31macme $1.20/$1 monthly (120% hard stop)\x1b[0m"),
        "{l:?}"
    );
    let mut c = env.std_cmd();
    c.env("NO_COLOR", "1")
        .args(["statusline", "--color", "always"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&inp).unwrap();
    let l = one_line(&child.wait_with_output().unwrap());
    assert!(!l.contains('\x1b'), "{l:?}");
}

/// A refresh that cannot finish (here: stdin is never closed) still
/// prints one short line and exits 0 at the 3 s deadline, and prints
/// nothing else.
#[test]
fn a_hang_prints_one_line_at_the_deadline() {
    let env = Env::new();
    env.write_config(&config("hard_stop"));
    let mut child = env
        .std_cmd()
        .arg("statusline")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let keep_open = child.stdin.take().unwrap();
    let out = common::output_within(
        child,
        std::time::Duration::from_secs(20),
        "statusline with stdin never closed",
    );
    drop(keep_open);
    assert_eq!(
        one_line(&out),
        "octo-budget: no answer within 3 s (is `octo-budget ingest` needed?)"
    );
}
