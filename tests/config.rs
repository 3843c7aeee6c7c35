//! budgets.yaml as the real binary reads it: what must never load as
//! "no budgets" or "no cap", files that are not files, sizes and nesting
//! that must not hang, amounts that must not overflow, and a config of
//! 20,000 arms.
//!
//! Spend is written with claude-haiku-4-5 input tokens ($1 per million), so
//! one token is exactly one micro-dollar.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::Env;
use serde_json::{json, Value};

const ACME: &str = "/x/acme";
const SID: &str = "11111111-aaaa-bbbb-cccc-000000000001";
/// A guard against a hang in these tests (not a timing assertion: every
/// run here takes well under a second when it works).
const GUARD: Duration = Duration::from_secs(60);

/// Spends `micros` in responses of at most $10 (10M tokens, the most one
/// usage field may hold).
fn spend(env: &Env, cwd: &str, id: &str, micros: u64) {
    let lines = common::spend_lines(SID, cwd, id, "2026-11-20T10:00:00.000Z", micros);
    env.append(&format!("-x-acme/{SID}.jsonl"), &lines);
}

fn agent(env: &Env, cwd: &str) -> String {
    json!({
        "session_id": SID,
        "transcript_path": env.transcript(&format!("-x-acme/{SID}.jsonl")),
        "cwd": cwd,
        "hook_event_name": "PreToolUse",
        "tool_name": "Agent",
        "tool_input": {"description": "explore", "prompt": "look"},
    })
    .to_string()
}

/// The sealed command of [`Env::std_cmd`], with `config` as `--config`.
fn run_with(env: &Env, config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("octo-budget"));
    c.env_clear()
        .env("HOME", &env.home)
        .env("CLAUDE_CONFIG_DIR", &env.claude)
        .env("TZ", &env.tz)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(env.path())
        .args(["--config", config.to_str().unwrap()])
        .args(["--ledger", env.ledger.to_str().unwrap()])
        .args(["--now", &env.now])
        .args(args);
    assert_cmd::Command::from_std(c)
        .write_stdin(stdin.to_owned())
        .timeout(GUARD)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `check` refuses, `report`, `status` and `alerts` exit 3; each says
/// `says` in one line on stderr.
#[track_caller]
fn refused_everywhere(env: &Env, config: &Path, says: &str) {
    let o = run_with(env, config, &["check"], &agent(env, ACME));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "check: {e}");
    assert!(
        e.starts_with("octo-budget: cannot check the budget (") && e.contains(says),
        "check: expected {says:?} in {e}"
    );
    for args in [
        &["report"][..],
        &["report", "--json"],
        &["status", "--arm", "acme"],
        &["alerts", "--quiet"],
    ] {
        let o = run_with(env, config, args, "");
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(
            e.starts_with("octo-budget: ") && e.contains(says),
            "{args:?}: expected {says:?} in {e}"
        );
        assert!(o.stdout.is_empty(), "{args:?} printed a report");
    }
}

const ACME_HARD_STOP: &str = "timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 10\n    grace_pct: 100\n    action_on_breach: hard_stop\n";

// Proves (issue 15, item 1): an empty or comment-only file, `---`, a bare
// `budgets:`, a file cut short before its arms and /dev/null are refused
// (exit 3; check refuses), never read as "no budgets", while the arm is far
// over its hard stop.
#[test]
fn empty_or_truncated_config_is_refused_not_read_as_no_budgets() {
    let env = Env::new();
    env.write_config(ACME_HARD_STOP);
    spend(&env, ACME, "m1", 20_000_000); // $20 of a $10 hard stop
    let o = run_with(&env, &env.config, &["check"], &agent(&env, ACME));
    assert_eq!(o.status.code(), Some(2), "the complete file blocks");

    let cases: &[(&str, &str)] = &[
        ("", "holds no settings"),
        ("\n\n", "holds no settings"),
        (
            "# budgets for the team\n# (to be filled in)\n",
            "holds no settings",
        ),
        ("---\n", "holds no settings"),
        ("budgets:\n", "budgets.yaml:1:1: budgets: left empty"),
        // A save cut short before `budgets:` (or inside the first arm's key).
        ("timezone: UTC\n", "no arm and no `total:` cap"),
        (
            "timezone: UTC\nbudgets: []\n",
            "budgets.yaml:2:1: budgets: no arm",
        ),
        (
            "timezone: UTC\ngate:\n  on_error: deny\n",
            "no arm and no `total:` cap",
        ),
    ];
    for (text, says) in cases {
        env.write_config(text);
        refused_everywhere(&env, &env.config, says);
    }
    // What a truncated save leaves at each line of the real file, up to
    // its first arm: never a config that allows the call. (A cut after an
    // arm's first line is a valid, smaller config: README says so.)
    let mut cut = String::new();
    for line in ACME_HARD_STOP.lines().take(3) {
        env.write_config(&cut);
        let o = run_with(&env, &env.config, &["check"], &agent(&env, ACME));
        assert_eq!(o.status.code(), Some(2), "cut to {cut:?}: {}", stderr(&o));
        cut.push_str(line);
        cut.push('\n');
    }
    refused_everywhere(&env, Path::new("/dev/null"), "/dev/null: is a device");
}

// Proves (item 1): what a config without arms may legitimately be: a team
// total cap alone is enforced.
#[test]
fn a_total_cap_alone_is_a_valid_config() {
    let env = Env::new();
    env.write_config("timezone: UTC\ntotal:\n  daily_usd_cap: 10\n  grace_pct: 100\n  action_on_breach: hard_stop\n");
    spend(&env, ACME, "m1", 20_000_000);
    let o = run_with(&env, &env.config, &["check"], &agent(&env, ACME));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("daily"), "{}", stderr(&o));
}

// Proves (item 7): a cap key left empty or null is an error naming the
// file, line and key, for arms, `default:` and `total:`; it never means
// "no cap".
#[test]
fn cap_left_empty_or_null_is_an_error_naming_file_line_and_key() {
    let env = Env::new();
    spend(&env, ACME, "m1", 20_000_000);
    let cases = [
        (
            "budgets:\n  - arm: acme\n    path: /x/acme\n    action_on_breach: hard_stop\n    monthly_usd_cap:\n",
            "budgets.yaml:5:5: budgets[0].monthly_usd_cap: left empty",
        ),
        (
            "budgets:\n  - arm: acme\n    path: /x/acme\n    daily_usd_cap: null\n",
            "budgets.yaml:4:5: budgets[0].daily_usd_cap: left empty",
        ),
        (
            "default:\n  weekly_usd_cap: ~\nbudgets:\n  - arm: acme\n",
            "budgets.yaml:2:3: default.weekly_usd_cap: left empty",
        ),
        (
            "budgets:\n  - arm: acme\ntotal:\n  monthly_usd_cap:\n  daily_usd_cap: 5\n",
            "budgets.yaml:4:3: total.monthly_usd_cap: left empty",
        ),
        (
            "budgets:\n  - arm: acme\n    session_usd_cap: \n    max_usd_per_hour: 1\n",
            "budgets.yaml:3:5: budgets[0].session_usd_cap: left empty",
        ),
        (
            "budgets:\n  - arm: acme\n    max_usd_per_hour: null\n",
            "budgets.yaml:3:5: budgets[0].max_usd_per_hour: left empty",
        ),
    ];
    for (text, says) in cases {
        env.write_config(text);
        refused_everywhere(&env, &env.config, says);
    }
}

// Proves (item 5): a cap of $1e12 at grace 1000 % (which wrapped to a
// negative hard-stop amount and blocked at $0.53) is refused naming the
// key; the largest cap accepted, $1e9 at 1000 %, has an exact, positive
// hard stop and $0.53 is nowhere near it.
#[test]
fn caps_too_large_to_scale_are_refused_and_the_largest_is_exact() {
    let env = Env::new();
    spend(&env, ACME, "m1", 530_000); // $0.53
    env.write_config("budgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 1e12\n    grace_pct: 1000\n    action_on_breach: hard_stop\n");
    refused_everywhere(
        &env,
        &env.config,
        "budgets.yaml:4:5: budgets[0].monthly_usd_cap: 1000000000000 is larger than any amount",
    );
    env.write_config("budgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 1000000000\n    grace_pct: 1000\n    action_on_breach: hard_stop\n");
    let o = run_with(&env, &env.config, &["check"], &agent(&env, ACME));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run_with(
        &env,
        &env.config,
        &["status", "--arm", "acme", "--json"],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"], "allow", "{v}");
    let m = &v["caps"][0];
    assert_eq!(m["tier"], "ok", "{v}");
    assert_eq!(m["hard_stop_at_usd"].as_f64(), Some(1e10), "{v}");
    let o = run_with(&env, &env.config, &["alerts", "--all"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("HARD_STOP") && !out.contains("WARN"), "{out}");
}

// Proves (item 11): a FIFO, a device, a folder, a file over 4 MiB and a
// deeply nested file are refused at once with a clear error: nothing
// blocks on a FIFO, reads /dev/zero forever or parses for a minute.
#[test]
fn config_that_is_not_a_small_regular_file_is_refused() {
    let env = Env::new();
    let fifo = env.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    refused_everywhere(
        &env,
        &fifo,
        "fifo.yaml: is a FIFO: budgets.yaml must be a regular file",
    );
    refused_everywhere(&env, Path::new("/dev/zero"), "/dev/zero: is a device");
    refused_everywhere(&env, env.path(), "is a folder");
    // A symlink to a FIFO is a FIFO.
    let link = env.path().join("link.yaml");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    refused_everywhere(&env, &link, "link.yaml: is a FIFO");

    let mut big = String::from("budgets:\n  - arm: acme\n");
    while big.len() <= 4 << 20 {
        big.push_str("# padding padding padding padding padding padding padding\n");
    }
    env.write_config(&big);
    refused_everywhere(&env, &env.config, "bytes is larger than the 4194304 bytes");

    // 200 KB of nested brackets took the YAML parser ~50 s.
    let deep = format!("budgets: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    env.write_config(&deep);
    refused_everywhere(&env, &env.config, "line 1: nested deeper than 32 levels");
}

// Proves (item 22): a UTF-8 byte order mark before the first key is
// accepted (it gave "more than one document"), and the file is enforced.
#[test]
fn byte_order_mark_before_the_first_key_is_accepted() {
    let env = Env::new();
    env.write_config(&format!("\u{feff}{ACME_HARD_STOP}"));
    spend(&env, ACME, "m1", 20_000_000);
    let o = run_with(&env, &env.config, &["check"], &agent(&env, ACME));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("acme"), "{}", stderr(&o));
    let r = env.report_json(&[]);
    assert_eq!(r["arms"][0]["arm"], "acme");
    assert_eq!(common::micros(&r["arms"][0]["cost_usd"]), 20_000_000);
}

/// 20,000 arms: `arm{i}` owns `/w/arm{i}` with a monthly cap of $10.
fn many_arms(n: usize) -> String {
    let mut s = String::from(
        "timezone: UTC\ndefault:\n  action_on_breach: hard_stop\n  grace_pct: 100\nbudgets:\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "  - arm: arm{i}\n    path: /w/arm{i}\n    monthly_usd_cap: 10\n"
        ));
    }
    s
}

// Proves (item 15): a config of 20,000 arms still validates correctly
// (duplicates found at its far end, with their line) and attributes work
// to the right arm (the longest path wins). Speed is measured by hand
// (README, "Configuration"), not asserted here.
#[test]
fn twenty_thousand_arms_validate_and_attribute_correctly() {
    const N: usize = 20_000;
    let env = Env::new();
    let mut cfg = many_arms(N);
    // A nested arm: /w/arm19999/sub belongs to "sub", not arm19999.
    cfg.push_str("  - arm: sub\n    path: /w/arm19999/sub\n");
    env.write_config(&cfg);
    let last = format!("/w/arm{}", N - 1);
    spend(&env, &format!("{last}/src"), "m1", 20_000_000);
    spend(&env, "/w/arm19999/sub/x", "m2", 1_000_000);
    let o = run_with(&env, &env.config, &["check"], &agent(&env, &last));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("arm19999"), "{}", stderr(&o));
    let o = run_with(&env, &env.config, &["check"], &agent(&env, "/w/arm0"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run_with(
        &env,
        &env.config,
        &["check"],
        &agent(&env, "/w/arm19999/sub/y"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = env.report_json(&[]);
    let arms = r["arms"].as_array().unwrap();
    assert_eq!(arms.len(), N + 1);
    assert_eq!(common::micros(&arms[N - 1]["cost_usd"]), 20_000_000);
    assert_eq!(common::micros(&arms[N]["cost_usd"]), 1_000_000);

    // Duplicates at the far end are still found, with their line: the
    // header is 5 lines, each arm 3.
    let line = 5 + 3 * N + 1;
    env.write_config(&format!("{}  - arm: arm7\n", many_arms(N)));
    refused_everywhere(
        &env,
        &env.config,
        &format!("budgets.yaml:{line}:5: budgets[{N}].arm: duplicate arm \"arm7\""),
    );
    env.write_config(&format!(
        "{}  - arm: late\n    paths: [/w/new, /w/arm3/]\n",
        many_arms(N)
    ));
    refused_everywhere(
        &env,
        &env.config,
        &format!(
            "budgets.yaml:{}:5: budgets[{N}].paths: path /w/arm3 is already arm \"arm3\"'s",
            line + 1
        ),
    );
}
