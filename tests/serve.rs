//! `octo-budget serve` (#17) against the real server on a free loopback
//! port: every endpoint, JSON byte-for-byte equal to `report --json` and
//! `status --json` for the same arguments and --now, Entourage's
//! check_budget shape with hand-checked figures, 400/404/405 as JSON, the
//! token rule, the dashboard (each arm and its figure, new spend after a
//! refresh) and that no answer holds a path or the token.

mod common;
#[path = "common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use common::{assistant, usage, Env};
use serde_json::{json, Value};
use server::{get_auth, serve, serve_with, Served};

const HAIKU: &str = "claude-haiku-4-5-20251001";

fn get(s: &Served, path: &str) -> (u16, String) {
    get_auth(s, path, None)
}

fn cli(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An error answer: the status code, and the same code in the JSON.
fn assert_error(s: &Served, path: &str, code: u16) -> String {
    let (status, body) = get(s, path);
    assert_eq!(status, code, "{path}: {body}");
    let v: Value = serde_json::from_str(&body).expect("errors are JSON");
    assert_eq!(v["error"]["status"], code, "{body}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn report_answers_exactly_what_report_json_prints() {
    let env = Env::with_fixtures();
    let s = serve(&env);
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("?period=day", &["--period", "day"]),
        ("?period=week", &["--period", "week"]),
        (
            "?period=month&by=model",
            &["--period", "month", "--by", "model"],
        ),
        (
            "?period=all&by=session",
            &["--period", "all", "--by", "session"],
        ),
        ("?by=branch&arm=acme", &["--by", "branch", "--arm", "acme"]),
        ("?arm=unattributed", &["--arm", "unattributed"]),
        (
            "?since=2026-10-01&until=2026-11-27&by=day",
            &[
                "--since",
                "2026-10-01",
                "--until",
                "2026-11-27",
                "--by",
                "day",
            ],
        ),
        ("?since=2026-11-10", &["--since", "2026-11-10"]),
        // Empty values count as absent.
        ("?period=&since=&until=&by=&arm=", &[]),
    ];
    for (query, args) in cases {
        let (status, body) = get(&s, &format!("/api/v1/report{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        let mut cli_args = vec!["report", "--json"];
        cli_args.extend_from_slice(args);
        assert_eq!(body, cli(&env, &cli_args), "{query}");
    }
    // Not a trivial equality: the fixtures' month has spend for every arm.
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/report").1).unwrap();
    assert_eq!(v["arms"].as_array().unwrap().len(), 4);
    assert!(v["totals"]["cost_usd"].as_f64().unwrap() > 1.0);
}

#[test]
fn status_answers_exactly_what_status_json_prints() {
    let env = Env::with_fixtures();
    let s = serve(&env);
    for arm in ["acme", "acme-web", "beta", "gamma"] {
        let (status, body) = get(&s, &format!("/api/v1/arms/{arm}/status"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, cli(&env, &["status", "--arm", arm, "--json"]));
    }
    let (_, body) = get(&s, "/api/v1/arms/acme/status?session=s-acme-1");
    assert_eq!(
        body,
        cli(
            &env,
            &["status", "--arm", "acme", "--session", "s-acme-1", "--json"]
        )
    );
    let (_, body) = get(&s, "/api/v1/arms/gamma/status?branch=fix%2Flogin");
    assert_eq!(
        body,
        cli(
            &env,
            &[
                "status",
                "--arm",
                "gamma",
                "--branch",
                "fix/login",
                "--json"
            ]
        )
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["branch"], "fix/login");
    assert_eq!(v["branch_cap"]["limit_usd"], 0.5);
}

/// acme: $10 a day, $100 a month, $1 a session, $5 a branch (hard_stop,
/// no grace). Haiku 4.5 input is $1 per million tokens.
const BUDGET: &str = "timezone: UTC
budgets:
  - arm: acme
    path: /w/acme
    daily_usd_cap: 10
    monthly_usd_cap: 100
    session_usd_cap: 1
    branch_usd_cap: 5
    action_on_breach: hard_stop
    grace_pct: 100
  - arm: other
    path: /w/other
";

fn line(session: &str, cwd: &str, id: &str, ts: &str, input: u64, branch: &str) -> String {
    let mut v: Value =
        serde_json::from_str(&assistant(session, cwd, id, id, ts, HAIKU, usage(input, 0))).unwrap();
    v["gitBranch"] = json!(branch);
    v.to_string()
}

fn budget_env() -> Env {
    let env = Env::new();
    env.write_config(BUDGET);
    // Today (Nov 20): s1 $0.40 + $0.20 on feat/x; yesterday: s2 $3.00 on
    // feat/x; earlier this month: s3 $2.00 on main; other: $7.
    env.append(
        "-w-acme/s1.jsonl",
        &[
            line(
                "s1",
                "/w/acme",
                "m1",
                "2026-11-20T09:00:00Z",
                400_000,
                "feat/x",
            ),
            line(
                "s1",
                "/w/acme",
                "m2",
                "2026-11-20T10:00:00Z",
                200_000,
                "feat/x",
            ),
        ],
    );
    env.append(
        "-w-acme/s2.jsonl",
        &[line(
            "s2",
            "/w/acme",
            "m3",
            "2026-11-19T10:00:00Z",
            3_000_000,
            "feat/x",
        )],
    );
    env.append(
        "-w-acme/s3.jsonl",
        &[line(
            "s3",
            "/w/acme",
            "m4",
            "2026-11-03T10:00:00Z",
            2_000_000,
            "main",
        )],
    );
    env.append(
        "-w-other/s4.jsonl",
        &[line(
            "s4",
            "/w/other",
            "m5",
            "2026-11-20T08:00:00Z",
            7_000_000,
            "main",
        )],
    );
    env
}

#[test]
fn budget_has_entourages_check_budget_shape_with_hand_checked_figures() {
    let env = budget_env();
    let s = serve(&env);
    let (status, body) = get(&s, "/api/v1/arms/acme/budget");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    // Entourage's six fields come first, in its order.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys[..6],
        [
            "daily_limit_usd",
            "daily_spent_usd",
            "daily_remaining_usd",
            "task_limit_usd",
            "task_spent_usd",
            "over_budget"
        ]
    );
    assert_eq!(v["daily_limit_usd"], 10.0);
    assert_eq!(v["daily_spent_usd"], 0.6);
    assert_eq!(v["daily_remaining_usd"], 9.4);
    assert_eq!(v["monthly_limit_usd"], 100.0);
    assert_eq!(v["monthly_spent_usd"], 5.6);
    assert_eq!(v["monthly_remaining_usd"], 94.4);
    assert_eq!(v["task"], Value::Null);
    assert_eq!(v["task_limit_usd"], Value::Null);
    assert_eq!(v["over_budget"], false);
    assert_eq!(v["decision"], "allow");

    // s1: under its $1 session cap; its branch feat/x ($3.60 of $5) has
    // more left, so the session is the task.
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/arms/acme/budget?session=s1").1).unwrap();
    assert_eq!(v["task"], json!({"kind": "session", "id": "s1"}));
    assert_eq!(v["task_limit_usd"], 1.0);
    assert_eq!(v["task_spent_usd"], 0.6);
    assert_eq!(v["task_remaining_usd"], 0.4);
    assert_eq!(v["over_budget"], false);

    // s2 spent $3 against its $1 cap: over budget, as status says.
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/arms/acme/budget?session=s2").1).unwrap();
    assert_eq!(v["task_spent_usd"], 3.0);
    assert_eq!(v["task_remaining_usd"], 0.0);
    assert_eq!(v["over_budget"], true);
    let st: Value = serde_json::from_str(&cli(
        &env,
        &["status", "--arm", "acme", "--session", "s2", "--json"],
    ))
    .unwrap();
    assert_eq!(st["over_budget"], true);
    assert_eq!(v["decision"], st["decision"]);

    // A branch alone: its cap.
    let v: Value =
        serde_json::from_str(&get(&s, "/api/v1/arms/acme/budget?branch=feat/x").1).unwrap();
    assert_eq!(v["task"], json!({"kind": "branch", "id": "feat/x"}));
    assert_eq!(v["task_limit_usd"], 5.0);
    assert_eq!(v["task_spent_usd"], 3.6);
    assert_eq!(v["over_budget"], false);

    // An arm without caps: spend, and nulls for the limits.
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/arms/other/budget").1).unwrap();
    assert_eq!(v["daily_limit_usd"], Value::Null);
    assert_eq!(v["daily_spent_usd"], 7.0);
    assert_eq!(v["daily_remaining_usd"], Value::Null);
    assert_eq!(v["monthly_spent_usd"], 7.0);
    assert_eq!(v["over_budget"], false);
}

#[test]
fn mistakes_are_json_errors_with_their_status() {
    let env = Env::with_fixtures();
    let s = serve(&env);
    let m = assert_error(&s, "/api/v1/report?period=year", 400);
    assert!(m.contains("day, week, month, all"), "{m}");
    assert_error(&s, "/api/v1/report?by=colour", 400);
    assert_error(&s, "/api/v1/report?since=yesterday", 400);
    assert_error(&s, "/api/v1/report?period=day&since=2026-11-01", 400);
    assert_error(&s, "/api/v1/report?since=2026-11-10&until=2026-11-01", 400);
    assert_error(&s, "/api/v1/report?colour=red", 400);
    assert_error(&s, "/api/v1/report?period=day&period=week", 400);
    assert_error(&s, "/api/v1/arms/acme/status?sesion=x", 400);
    let m = assert_error(&s, "/api/v1/report?arm=nope", 404);
    assert_eq!(m, "no arm named \"nope\"");
    assert_error(&s, "/api/v1/arms/nope/status", 404);
    assert_error(&s, "/api/v1/arms/nope/budget", 404);
    assert_error(&s, "/api/v1/nothing", 404);
    assert_error(&s, "/assets/other.js", 404);
    // Read-only: other methods are refused.
    match ureq::post(&format!("{}/api/v1/report", s.base)).call() {
        Err(ureq::Error::Status(code, r)) => {
            assert_eq!(code, 405);
            assert_eq!(r.header("Allow"), Some("GET, HEAD"));
        }
        other => panic!("POST answered {other:?}"),
    }
    let (status, body) = get(&s, "/healthz");
    assert_eq!((status, body.trim()), (200, "{\n  \"status\": \"ok\"\n}"));
}

#[test]
fn a_token_guards_everything_but_healthz_and_is_needed_off_loopback() {
    let env = Env::with_fixtures();
    // Off loopback without a token: a usage error, nothing started.
    let out = env.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a bearer token"), "{err}");
    assert!(out.stdout.is_empty());
    // An empty token is no token.
    let empty = env.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let out = env.run(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));

    let token = "s3cret-t0ken-value";
    let file = env.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let by_file = serve_with(&env, &["--token-file", file.to_str().unwrap()], &[]);
    let by_env = serve_with(&env, &[], &[("OCTO_BUDGET_TOKEN", token)]);
    for s in [&by_file, &by_env] {
        for path in ["/api/v1/report", "/api/v1/arms/acme/budget", "/", "/live"] {
            assert_eq!(get(s, path).0, 401, "{path} without a token");
            assert_eq!(
                get_auth(s, path, Some("Bearer s3cret-t0ken-valuf")).0,
                401,
                "{path} with a wrong token"
            );
            assert_eq!(get_auth(s, path, Some(token)).0, 401, "{path}: not Bearer");
            let (status, body) = get_auth(s, path, Some(&format!("Bearer {token}")));
            assert_eq!(status, 200, "{path}");
            assert!(!body.contains(token), "{path} shows the token");
        }
        assert_eq!(get(s, "/healthz").0, 200);
    }
}

#[test]
fn the_dashboard_shows_every_arm_and_new_spend_after_a_refresh() {
    let env = budget_env();
    let s = serve(&env);
    let (status, page) = get(&s, "/");
    assert_eq!(status, 200);
    assert!(page.starts_with("<!doctype html>"));
    // Each arm's row with its month's figure (hand-checked above).
    for (arm, month) in [("acme", "$5.60"), ("other", "$7.00")] {
        let row = row_of(&page, arm);
        assert!(row.contains(month), "{arm}: {row}");
    }
    let acme = row_of(&page, "acme");
    assert!(acme.contains("$0.60 / $10.00"), "the daily bar: {acme}");
    assert!(acme.contains("$5.60 / $100.00"), "the monthly bar: {acme}");
    assert!(page.contains("prices of <span id=\"prices\">2026-"));
    assert!(page.contains("<code title=\"s2\">s2</code> <span class=\"num\">$3.00</span>"));
    // (minijinja escapes "/" in HTML.)
    assert!(page.contains("<code>feat&#x2f;x</code> <span class=\"num\">$3.60</span>"));
    // Nothing from outside: every reference is the server's own.
    for asset in ["/", "/assets/app.css", "/assets/app.js"] {
        let (status, body) = get(&s, asset);
        assert_eq!(status, 200);
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("\"//"),
            "{asset} refers to another site"
        );
    }

    // A new line: within a few ingests the live part shows it.
    env.append(
        "-w-other/s4.jsonl",
        &[line(
            "s4",
            "/w/other",
            "m6",
            "2026-11-20T11:00:00Z",
            1_500_000,
            "main",
        )],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, live) = get(&s, "/live");
        assert!(!live.contains("<html"), "/live is the live part only");
        if row_of(&live, "other").contains("$8.50") {
            break;
        }
        assert!(Instant::now() < deadline, "new spend never shown: {live}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The dashboard's table row of `arm`.
fn row_of<'a>(page: &'a str, arm: &str) -> &'a str {
    let start = page
        .find(&format!("data-arm=\"{arm}\""))
        .unwrap_or_else(|| panic!("no row for {arm}"));
    let end = page[start..].find("</tr>").unwrap() + start;
    &page[start..end]
}

#[test]
fn no_answer_holds_a_path_or_transcript_text() {
    let env = Env::with_fixtures();
    let s = serve(&env);
    let dir = env.path().to_str().unwrap().to_owned();
    for path in [
        "/",
        "/live",
        "/api/v1/report?period=all&by=session",
        "/api/v1/report?by=branch",
        "/api/v1/arms/acme/status?session=s-acme-1",
        "/api/v1/arms/acme/budget?session=s-acme-1",
        "/api/v1/report?arm=nope",
        "/healthz",
    ] {
        let (_, body) = get(&s, path);
        assert!(!body.contains(&dir), "{path} names a local path");
        assert!(
            !body.contains("/work/clients"),
            "{path} names an arm's path"
        );
        assert!(
            !body.contains("Searched the web"),
            "{path} holds transcript text"
        );
    }
}

#[test]
fn a_changed_budgets_yaml_is_answered_from_without_a_restart() {
    let env = budget_env();
    let s = serve(&env);
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/arms/acme/budget").1).unwrap();
    assert_eq!(v["daily_limit_usd"], 10.0);
    // The daily cap drops to $0.50 (today's $0.60 is over it) and an arm
    // is added. (The sleep makes the modification time differ.)
    std::thread::sleep(Duration::from_millis(1100));
    env.write_config(
        &BUDGET
            .replace("daily_usd_cap: 10", "daily_usd_cap: 0.5")
            .replace(
                "  - arm: other\n",
                "  - arm: other\n    daily_usd_cap: 20\n",
            ),
    );
    let (_, body) = get(&s, "/api/v1/arms/acme/status");
    assert_eq!(body, cli(&env, &["status", "--arm", "acme", "--json"]));
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/arms/acme/budget").1).unwrap();
    assert_eq!(v["daily_limit_usd"], 0.5);
    assert_eq!(v["daily_remaining_usd"], 0.0);
    assert_eq!(v["over_budget"], true);
    // A file that no longer loads: the last good one stays in use.
    std::thread::sleep(Duration::from_millis(1100));
    env.write_config("budgets: [");
    let v: Value = serde_json::from_str(&get(&s, "/api/v1/arms/other/budget").1).unwrap();
    assert_eq!(v["daily_limit_usd"], 20.0);
}
