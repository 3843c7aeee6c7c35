//! `octo-budget alerts`: each event once, periods rolling over in the
//! config's zone, spikes, forecasts, unattributed spend, concurrency and
//! `--command` delivery. Spend is written with claude-haiku-4-5 input
//! tokens ($1 per million), so a token is a micro-dollar.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use serde_json::Value;

static MSG: AtomicU64 = AtomicU64::new(0);

/// An RFC 3339 instant (any offset) as a transcript timestamp (UTC, Z).
fn utc(ts: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Spends `cents` in `cwd` at `ts`, in responses of at most $10 (10M
/// input tokens: the most one usage field may hold).
fn spend(env: &Env, cwd: &str, ts: &str, cents: u64) {
    let project = cwd.replace('/', "-");
    let mut tokens = cents * 10_000;
    let mut lines = Vec::new();
    while tokens > 0 || lines.is_empty() {
        let n = MSG.fetch_add(1, Ordering::SeqCst);
        let part = tokens.min(10_000_000);
        tokens -= part;
        lines.push(assistant(
            "s1",
            cwd,
            &format!("msg_{n}"),
            &format!("req_{n}"),
            &utc(ts),
            "claude-haiku-4-5",
            usage(part, 0),
        ));
    }
    env.append(&format!("{project}/s1.jsonl"), &lines);
}

fn dollars(d: u64) -> u64 {
    d * 100
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

fn alerts(env: &mut Env, now: &str, extra: &[&str]) -> Run {
    env.now = now.into();
    let out = env.cmd().arg("alerts").args(extra).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `alerts --quiet` at `now`: exit 0, and the lines it printed.
fn new_lines(env: &mut Env, now: &str) -> Vec<String> {
    let r = alerts(env, now, &["--quiet"]);
    assert_eq!(r.code, 0, "alerts failed: {}", r.stderr);
    r.lines().into_iter().map(str::to_owned).collect()
}

/// Spike alerts off (a floor no test reaches), for tests about other things.
const NO_SPIKES: &str = "alerts:\n  spike_min_usd: 1000000\n";

#[test]
fn each_level_fires_once_through_a_month_and_a_new_month_starts_fresh() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: acme\n    path: /w/acme\n    monthly_usd_cap: 1000\n    action_on_breach: hard_stop\n"
    ));
    spend(&env, "/w/acme", "2026-11-02T10:00:00Z", dollars(400));
    // 40%, projected $800: nothing.
    assert!(new_lines(&mut env, "2026-11-16T00:00:00Z").is_empty());
    let r = alerts(&mut env, "2026-11-16T00:00:00Z", &[]);
    assert_eq!(r.stdout, "2026-11-16T00:00:00Z no new alerts\n");

    spend(&env, "/w/acme", "2026-11-28T23:00:00Z", dollars(410));
    assert_eq!(
        new_lines(&mut env, "2026-11-29T00:00:00Z"),
        ["2026-11-29T00:00:00Z ALERT acme monthly spent=$810.00 cap=$1000.00 pct=81.0 forecast=$867.86 resets=2026-12-01"]
    );
    assert!(new_lines(&mut env, "2026-11-29T00:00:00Z").is_empty());
    assert!(new_lines(&mut env, "2026-11-29T00:05:00Z").is_empty());

    spend(&env, "/w/acme", "2026-11-29T05:00:00Z", dollars(200));
    assert_eq!(
        new_lines(&mut env, "2026-11-29T06:00:00Z"),
        ["2026-11-29T06:00:00Z WARN acme monthly spent=$1010.00 cap=$1000.00 pct=101.0 forecast=$1072.57 resets=2026-12-01"]
    );
    assert!(new_lines(&mut env, "2026-11-29T06:05:00Z").is_empty());

    spend(&env, "/w/acme", "2026-11-29T07:00:00Z", dollars(100));
    let l = new_lines(&mut env, "2026-11-29T08:00:00Z");
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with(
            "2026-11-29T08:00:00Z HARD_STOP acme monthly spent=$1110.00 cap=$1000.00 pct=111.0"
        ),
        "{l:?}"
    );
    assert!(new_lines(&mut env, "2026-11-30T23:59:00Z").is_empty());

    // December: a new period, so ALERT again (no forecast on its first day).
    spend(&env, "/w/acme", "2026-12-01T01:00:00Z", dollars(850));
    assert_eq!(
        new_lines(&mut env, "2026-12-01T12:00:00Z"),
        ["2026-12-01T12:00:00Z ALERT acme monthly spent=$850.00 cap=$1000.00 pct=85.0 resets=2027-01-01"]
    );
    assert!(new_lines(&mut env, "2026-12-01T12:05:00Z").is_empty());
}

#[test]
fn a_jump_past_several_levels_is_said_once_as_the_highest() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: acme\n    path: /w/acme\n    monthly_usd_cap: 100\n    action_on_breach: hard_stop\n"
    ));
    spend(&env, "/w/acme", "2026-11-29T01:00:00Z", dollars(120));
    let l = new_lines(&mut env, "2026-11-29T02:00:00Z");
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].contains(" HARD_STOP acme monthly spent=$120.00"),
        "{l:?}"
    );
    assert!(new_lines(&mut env, "2026-11-29T03:00:00Z").is_empty());
}

#[test]
fn days_and_iso_weeks_roll_over_at_local_midnight() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: America/New_York\n{NO_SPIKES}budgets:\n  - arm: d\n    path: /w/d\n    daily_usd_cap: 50\n  - arm: w\n    path: /w/w\n    weekly_usd_cap: 100\n"
    ));
    // 23:30 in New York is already the next day in UTC.
    spend(&env, "/w/d", "2026-11-20T23:30:00-05:00", dollars(60));
    assert_eq!(
        new_lines(&mut env, "2026-11-20T23:45:00-05:00"),
        ["2026-11-20T23:45:00-05:00 WARN d daily spent=$60.00 cap=$50.00 pct=120.0 resets=2026-11-21"]
    );
    // Past local midnight the day is new and empty (a UTC day would still
    // hold the $60).
    assert!(new_lines(&mut env, "2026-11-21T00:10:00-05:00").is_empty());
    spend(&env, "/w/d", "2026-11-21T00:20:00-05:00", dollars(55));
    assert_eq!(
        new_lines(&mut env, "2026-11-21T00:30:00-05:00"),
        ["2026-11-21T00:30:00-05:00 WARN d daily spent=$55.00 cap=$50.00 pct=110.0 resets=2026-11-22"]
    );
    assert!(new_lines(&mut env, "2026-11-21T00:35:00-05:00").is_empty());

    // Sunday 23:00 local is Monday in UTC; the ISO week is local.
    spend(&env, "/w/w", "2026-11-22T23:00:00-05:00", dollars(120));
    let l = new_lines(&mut env, "2026-11-22T23:30:00-05:00");
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with(
            "2026-11-22T23:30:00-05:00 WARN w weekly spent=$120.00 cap=$100.00 pct=120.0"
        ),
        "{l:?}"
    );
    assert!(l[0].ends_with(" resets=2026-11-23"), "{l:?}");
    assert!(new_lines(&mut env, "2026-11-23T00:30:00-05:00").is_empty());
    spend(&env, "/w/w", "2026-11-23T01:00:00-05:00", dollars(110));
    let l = new_lines(&mut env, "2026-11-23T02:00:00-05:00");
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with("2026-11-23T02:00:00-05:00 WARN w weekly spent=$110.00"),
        "{l:?}"
    );
    assert!(l[0].ends_with(" resets=2026-11-30"), "{l:?}");
}

/// 14 previous days for three arms, then today's spend.
fn spike_history(env: &Env, steady_today: u64, jumpy_today: u64, tiny_today: u64) {
    let jumpy = [10, 12, 9, 11, 10, 8, 10, 11, 9, 10, 12, 10, 9, 11];
    for (i, j) in jumpy.iter().enumerate() {
        let ts = format!("2026-11-{:02}T15:00:00Z", 6 + i);
        spend(env, "/w/steady", &ts, dollars(30));
        spend(env, "/w/jumpy", &ts, dollars(*j));
        spend(env, "/w/tiny", &ts, 10);
    }
    spend(env, "/w/steady", "2026-11-20T09:00:00Z", steady_today);
    spend(env, "/w/jumpy", "2026-11-20T09:00:00Z", jumpy_today);
    spend(env, "/w/tiny", "2026-11-20T09:00:00Z", tiny_today);
}

const SPIKE_ARMS: &str = "budgets:\n  - arm: steady\n    path: /w/steady\n  - arm: jumpy\n    path: /w/jumpy\n  - arm: tiny\n    path: /w/tiny\n";

#[test]
fn spikes_fire_on_a_real_jump_not_on_a_steady_or_tiny_arm() {
    let mut env = Env::new();
    env.write_config(&format!("timezone: UTC\n{SPIKE_ARMS}"));
    // steady: $45 against $30 every day (under the $20 floor);
    // jumpy: $100 against ~$10; tiny: $5 against $0.10 (50x, but tiny).
    spike_history(&env, dollars(45), dollars(100), dollars(5));
    assert_eq!(
        new_lines(&mut env, "2026-11-20T12:00:00Z"),
        ["2026-11-20T12:00:00Z SPIKE jumpy daily spent=$100.00 median=$10.00 mad=$1.00 threshold=$30.00 resets=2026-11-21"]
    );
    assert!(new_lines(&mut env, "2026-11-20T12:05:00Z").is_empty());
}

#[test]
fn spike_threshold_and_floor_are_configurable() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nalerts:\n  spike_mad: 5\n  spike_min_usd: 2\n{SPIKE_ARMS}"
    ));
    spike_history(&env, dollars(45), dollars(12), dollars(5));
    let l = new_lines(&mut env, "2026-11-20T12:00:00Z");
    // steady: 45 > 30 + $2; jumpy: 12 is under 10 + max(5 x $1, $2);
    // tiny: 5 > 0.10 + $2.
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(
        l[0].contains(" SPIKE steady daily spent=$45.00 median=$30.00 mad=$0.00 threshold=$32.00"),
        "{l:?}"
    );
    assert!(
        l[1].contains(" SPIKE tiny daily spent=$5.00 median=$0.10 mad=$0.00 threshold=$2.10"),
        "{l:?}"
    );
}

#[test]
fn forecast_fires_when_and_only_when_the_projection_passes_the_cap() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: acme\n    path: /w/acme\n    monthly_usd_cap: 1000\n    action_on_breach: hard_stop\n"
    ));
    // The first day says nothing about the month ($100 in 12 h).
    spend(&env, "/w/acme", "2026-11-01T06:00:00Z", dollars(100));
    assert!(new_lines(&mut env, "2026-11-01T12:00:00Z").is_empty());
    // 10 days of 30: $300 projects to $900.
    spend(&env, "/w/acme", "2026-11-10T12:00:00Z", dollars(200));
    assert!(new_lines(&mut env, "2026-11-11T00:00:00Z").is_empty());
    // $340 projects to $1020: past the cap.
    spend(&env, "/w/acme", "2026-11-10T18:00:00Z", dollars(40));
    assert_eq!(
        new_lines(&mut env, "2026-11-11T00:00:00Z"),
        ["2026-11-11T00:00:00Z FORECAST acme monthly spent=$340.00 cap=$1000.00 pct=34.0 forecast=$1020.00 passes=WARN resets=2026-12-01"]
    );
    assert!(new_lines(&mut env, "2026-11-11T00:05:00Z").is_empty());
    // 15 days: $540 projects to $1080, still the same tier: nothing.
    spend(&env, "/w/acme", "2026-11-15T12:00:00Z", dollars(200));
    assert!(new_lines(&mut env, "2026-11-16T00:00:00Z").is_empty());
    // $560 projects to $1120: past the hard stop ($1100), a new tier.
    spend(&env, "/w/acme", "2026-11-15T13:00:00Z", dollars(20));
    assert_eq!(
        new_lines(&mut env, "2026-11-16T00:00:00Z"),
        ["2026-11-16T00:00:00Z FORECAST acme monthly spent=$560.00 cap=$1000.00 pct=56.0 forecast=$1120.00 passes=HARD_STOP resets=2026-12-01"]
    );
    assert!(new_lines(&mut env, "2026-11-16T00:05:00Z").is_empty());
}

#[test]
fn unattributed_spend_gets_its_own_line_above_share_and_minimum() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: acme\n    path: /w/acme\n"
    ));
    spend(&env, "/w/acme", "2026-11-10T10:00:00Z", dollars(100));
    spend(&env, "/elsewhere", "2026-11-10T10:00:00Z", dollars(3));
    // 2.9% and under $5: nothing.
    assert!(new_lines(&mut env, "2026-11-20T12:00:00Z").is_empty());
    spend(&env, "/elsewhere", "2026-11-11T10:00:00Z", dollars(47));
    assert_eq!(
        new_lines(&mut env, "2026-11-20T12:00:00Z"),
        ["2026-11-20T12:00:00Z UNATTRIBUTED unattributed monthly spent=$50.00 total=$150.00 pct=33.3 resets=2026-12-01"]
    );
    assert!(new_lines(&mut env, "2026-11-20T12:05:00Z").is_empty());
}

#[test]
fn json_lines_carry_the_same_fields() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: America/New_York\n{NO_SPIKES}budgets:\n  - arm: acme\n    path: /w/acme\n    monthly_usd_cap: 1000\n    action_on_breach: hard_stop\n"
    ));
    spend(
        &env,
        "/w/acme",
        "2026-11-18T10:00:00Z",
        dollars(1000) + 1230,
    );
    let r = alerts(&mut env, "2026-11-20T10:00:00-05:00", &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = r.lines();
    assert_eq!(lines.len(), 2, "{lines:?}"); // WARN, and the forecast past the hard stop
    let warn: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(warn["ts"], "2026-11-20T10:00:00-05:00");
    assert_eq!(warn["level"], "WARN");
    assert_eq!(warn["scope"], "arm");
    assert_eq!(warn["name"], "acme");
    assert_eq!(warn["period"], "monthly");
    assert_eq!(warn["resets"], "2026-12-01");
    assert_eq!(micros(&warn["spent_usd"]), 1_012_300_000);
    assert_eq!(micros(&warn["cap_usd"]), 1_000_000_000);
    assert_eq!(warn["pct"].as_f64(), Some(101.2));
    assert_eq!(warn["action"], "hard_stop");
    let fc: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(fc["level"], "FORECAST");
    assert_eq!(fc["passes"], "HARD_STOP");
    // Nothing new: --json prints nothing at all.
    let r = alerts(&mut env, "2026-11-20T10:05:00-05:00", &["--json"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

#[test]
fn all_prints_every_state_and_records_nothing() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: acme\n    path: /w/acme\n    monthly_usd_cap: 100\n    daily_usd_cap: 50\n  - arm: beta\n    path: /w/beta\n"
    ));
    spend(&env, "/w/acme", "2026-11-20T10:00:00Z", dollars(30));
    spend(&env, "/w/acme", "2026-11-10T10:00:00Z", dollars(75));
    spend(&env, "/w/beta", "2026-11-10T10:00:00Z", dollars(7));
    let r = alerts(&mut env, "2026-11-20T12:00:00Z", &["--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let l = r.lines();
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(
        l[0].starts_with(
            "2026-11-20T12:00:00Z WARN acme monthly spent=$105.00 cap=$100.00 pct=105.0"
        ),
        "{l:?}"
    );
    assert_eq!(
        l[1],
        "2026-11-20T12:00:00Z OK acme daily spent=$30.00 cap=$50.00 pct=60.0 resets=2026-11-21"
    );
    assert!(
        l[2].starts_with("2026-11-20T12:00:00Z OK beta monthly spent=$7.00 forecast="),
        "{l:?}"
    );
    assert_eq!(l[3], "2026-11-20T12:00:00Z OK unattributed monthly spent=$0.00 total=$112.00 pct=0.0 resets=2026-12-01");
    // --all recorded nothing: the WARN is still new.
    let l = new_lines(&mut env, "2026-11-20T12:00:00Z");
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].contains(" WARN acme monthly "), "{l:?}");
    // --all only reads: it cannot be combined with --command.
    assert_eq!(
        alerts(
            &mut env,
            "2026-11-20T12:00:00Z",
            &["--all", "--command", "true"]
        )
        .code,
        2
    );
}

/// Three arms over their caps, for the concurrency tests.
fn three_breaches(env: &Env) {
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: a\n    path: /w/a\n    monthly_usd_cap: 10\n  - arm: b\n    path: /w/b\n    monthly_usd_cap: 10\n  - arm: c\n    path: /w/c\n    monthly_usd_cap: 10\n"
    ));
    for arm in ["a", "b", "c"] {
        spend(
            env,
            &format!("/w/{arm}"),
            "2026-11-20T10:00:00Z",
            dollars(11),
        );
    }
}

/// Starts `n` runs of `alerts args` at once; returns their outputs.
fn concurrent(env: &Env, n: usize, args: &[&str]) -> Vec<std::process::Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            env.std_cmd()
                .arg("alerts")
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn concurrent_runs_print_each_event_once() {
    let mut env = Env::new();
    three_breaches(&env);
    env.now = "2026-11-20T12:00:00Z".into();
    let outs = concurrent(&env, 4, &["--quiet"]);
    let mut lines = Vec::new();
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        lines.extend(
            String::from_utf8(o.stdout.clone())
                .unwrap()
                .lines()
                .map(str::to_owned),
        );
    }
    lines.sort();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, arm) in lines.iter().zip(["a", "b", "c"]) {
        assert!(line.contains(&format!(" WARN {arm} monthly ")), "{lines:?}");
    }
    assert!(new_lines(&mut env, "2026-11-20T12:05:00Z").is_empty());
}

#[test]
fn a_failing_command_keeps_the_event_for_the_next_run() {
    let mut env = Env::new();
    three_breaches(&env);
    let sent = env.path().join("sent.txt");
    let r = alerts(
        &mut env,
        "2026-11-20T12:00:00Z",
        &["--quiet", "--command", "cat >/dev/null; exit 3"],
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("kept for the next run"), "{}", r.stderr);
    assert!(
        r.stderr.lines().all(|l| l.starts_with("octo-budget: ")),
        "{}",
        r.stderr
    );
    // A plain run does not print them either: they are waiting for delivery.
    assert!(new_lines(&mut env, "2026-11-20T12:01:00Z").is_empty());

    let cmd = format!("cat >> '{}'", sent.display());
    let r = alerts(&mut env, "2026-11-20T12:05:00Z", &["--command", &cmd]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "2026-11-20T12:05:00Z sent 3 alert(s) to --command\n"
    );
    let got = std::fs::read_to_string(&sent).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 3, "{got}");
    // Lines carry the time the event was found.
    assert!(
        lines[0].starts_with("2026-11-20T12:00:00Z WARN a monthly spent=$11.00 cap=$10.00"),
        "{got}"
    );

    let r = alerts(
        &mut env,
        "2026-11-20T12:10:00Z",
        &["--quiet", "--command", &cmd],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&sent).unwrap(), got);
}

#[test]
fn concurrent_command_runs_send_each_event_once() {
    let mut env = Env::new();
    three_breaches(&env);
    let sent = env.path().join("sent.jsonl");
    let cmd = format!("cat >> '{}'", sent.display());
    env.now = "2026-11-20T12:00:00Z".into();
    for o in concurrent(&env, 4, &["--quiet", "--json", "--command", &cmd]) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.is_empty());
    }
    let got = std::fs::read_to_string(&sent).unwrap();
    let mut names: Vec<String> = got
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"], "{got}");
}

#[test]
fn cannot_run_means_a_documented_code_and_one_line() {
    let mut env = Env::new();
    env.write_config("budgets:\n  - arm: a\n    monthly_usd_cap: -1\n");
    let r = alerts(&mut env, "2026-11-20T12:00:00Z", &["--quiet"]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("octo-budget: ") && r.stderr.contains("monthly_usd_cap"),
        "{}",
        r.stderr
    );

    let mut env = Env::new();
    env.write_config("budgets:\n  - arm: a\n");
    std::fs::write(
        &env.ledger,
        b"this is not a database, it is a text file of some length....",
    )
    .unwrap();
    let r = alerts(&mut env, "2026-11-20T12:00:00Z", &["--quiet"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn the_team_total_has_its_own_lines() {
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}total:\n  monthly_usd_cap: 100\nbudgets:\n  - arm: a\n    path: /w/a\n  - arm: total\n    path: /w/t\n    monthly_usd_cap: 1000\n"
    ));
    spend(&env, "/w/a", "2026-11-20T10:00:00Z", dollars(60));
    spend(&env, "/w/t", "2026-11-20T10:00:00Z", dollars(60));
    let l = new_lines(&mut env, "2026-11-20T12:00:00Z");
    // The team's cap, not the arm that happens to be called "total".
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with(
            "2026-11-20T12:00:00Z WARN total monthly spent=$120.00 cap=$100.00 pct=120.0"
        ),
        "{l:?}"
    );
    let r = alerts(&mut env, "2026-11-20T12:05:00Z", &["--json"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let r = alerts(&mut env, "2026-11-20T12:05:00Z", &["--all", "--json"]);
    let scopes: Vec<(String, String)> = r
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["scope"].as_str().unwrap().to_owned(),
                v["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        scopes,
        [
            s("arm", "a"),
            s("arm", "total"),
            s("total", "total"),
            s("unattributed", "unattributed")
        ]
    );
}

// Proves (issue 15, item 17): an empty or blank `--command` (an unset
// variable in a crontab) is a usage error, exit 2, and records nothing:
// the events are still there for the next run with a real command.
#[test]
fn an_empty_command_is_a_usage_error_and_keeps_the_events() {
    let mut env = Env::new();
    three_breaches(&env);
    for blank in ["", "   ", "\t\n"] {
        let r = alerts(
            &mut env,
            "2026-11-20T12:00:00Z",
            &["--quiet", "--command", blank],
        );
        assert_eq!(r.code, 2, "{blank:?}: {}", r.stderr);
        assert!(r.stderr.contains("the command is empty"), "{}", r.stderr);
        assert_eq!(r.stdout, "");
    }
    let sent = env.path().join("sent.txt");
    let cmd = format!("cat >> '{}'", sent.display());
    let r = alerts(&mut env, "2026-11-20T12:05:00Z", &["--command", &cmd]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = std::fs::read_to_string(&sent).unwrap();
    assert_eq!(got.lines().count(), 3, "{got}");
    assert!(
        got.starts_with("2026-11-20T12:05:00Z WARN a monthly "),
        "{got}"
    );
}

/// Whether process `pid` is still running (a zombie waiting to be reaped
/// is not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

// Proves (issue 15, item 13): a `--command` still running at its timeout
// is killed together with what it started: a background `sleep` that
// holds stderr (cron's pipe) open is gone when `alerts` returns, so the
// pipe reaches its end; the event is kept for the next run.
#[test]
fn a_hanging_command_is_killed_with_every_process_it_started() {
    use std::io::Read;
    let mut env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\n{NO_SPIKES}budgets:\n  - arm: a\n    path: /w/a\n    monthly_usd_cap: 10\n"
    ));
    spend(&env, "/w/a", "2026-11-20T10:00:00Z", dollars(11));
    let pidfile = env.path().join("sleep.pid");
    // The background sleep inherits the command's stderr; sh waits for it.
    let cmd = format!("sleep 600 & echo $! > '{}'; wait", pidfile.display());
    env.now = "2026-11-20T12:00:00Z".into();
    let mut child = env
        .std_cmd()
        .args([
            "alerts",
            "--quiet",
            "--command-timeout",
            // Long enough for sh to start the sleep and write its pid on a
            // loaded machine (1 s was not, now and then).
            "5",
            "--command",
            &cmd,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let status = child.wait().unwrap();
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The pipe ends only once every process holding it has exited; a
    // surviving sleep would hold it for 600 s.
    let Ok(err) = rx.recv_timeout(std::time::Duration::from_secs(120)) else {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        panic!("stderr still open after alerts returned: the background sleep survived");
    };
    assert!(!running(pid), "the background sleep {pid} still runs");
    assert_eq!(status.code(), Some(6), "{err}");
    assert!(
        err.contains("--command did not finish within 5 s")
            && err.contains("kept for the next run"),
        "{err}"
    );
    // Kept: a working command gets it next time.
    let r = alerts(
        &mut env,
        "2026-11-20T12:05:00Z",
        &["--command", "cat >/dev/null"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "2026-11-20T12:05:00Z sent 1 alert(s) to --command\n"
    );
}
