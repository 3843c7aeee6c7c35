//! Per-task budgets per git branch (#16), on fixtures/branches (see
//! fixtures/README.md, "fixtures/branches", for what each file proves and
//! the hand-checked figures): the branch of each response, `report --by
//! branch`, branch caps in `check` (allow, warn, block, halt), `status
//! --branch`, `alerts` once per branch crossing, and the upgrade of a
//! schema-6 ledger.

mod common;

use std::process::Output;

use common::{assistant, copy_tree, exact_micros, repo_path, usage, Env};
use serde_json::{json, Value};

const CWD: &str = "/work/acme";
const HAIKU: &str = "claude-haiku-4-5-20251001";

/// Branch caps on a hard_stop arm: every branch $1.00 but the trunk ones,
/// `fix/*` $0.50; the hard stop at the cap (grace 100 %), the early alert
/// at 80 %.
const HARD_STOP: &str = "timezone: UTC
budgets:
  - arm: acme
    path: /work/acme
    branch_usd_cap: 1.00
    branch_caps:
      \"fix/*\": 0.50
    action_on_breach: hard_stop
    grace_pct: 100
";

fn env_with(config: &str) -> Env {
    let env = Env::new();
    copy_tree(&repo_path("fixtures/branches"), &env.claude);
    env.write_config(config);
    env
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn session_file(env: &Env, session: &str) -> std::path::PathBuf {
    env.transcript(&format!("-work-acme/{session}.jsonl"))
}

fn hook(env: &Env, session: &str, event: &str, tool: &str) -> String {
    let transcript = session_file(env, session);
    let mut v = json!({
        "session_id": session,
        "transcript_path": transcript,
        "cwd": CWD,
        "hook_event_name": event,
    });
    if event == "PreToolUse" {
        v["tool_name"] = json!(tool);
        v["tool_input"] = json!({});
    } else {
        v["prompt"] = json!("go on");
    }
    v.to_string()
}

fn check(env: &Env, session: &str, tool: &str) -> Output {
    env.cmd()
        .arg("check")
        .write_stdin(hook(env, session, "PreToolUse", tool))
        .output()
        .unwrap()
}

/// The decision `check` made: allow, warn (exit 0 with a systemMessage),
/// block (exit 2) or halt (exit 0 with `continue: false`), and what it said.
fn decision(out: &Output) -> (&'static str, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(2) => ("block", stderr),
        Some(0) if stdout.trim().is_empty() => ("allow", stderr),
        Some(0) => {
            let v: Value = serde_json::from_str(stdout.trim()).expect("hook JSON");
            if v["continue"] == json!(false) {
                ("halt", stdout)
            } else {
                ("warn", stdout)
            }
        }
        other => panic!("check exited {other:?}: {stderr}"),
    }
}

/// `report --by branch --json` rows: key -> (cost in micro-dollars,
/// responses, sessions).
fn by_branch(env: &Env, extra: &[&str]) -> (Vec<(String, i64, i64, usize)>, i64) {
    let mut args = vec!["--by", "branch"];
    args.extend_from_slice(extra);
    let doc = env.report_json(&args);
    assert_eq!(doc["breakdown"]["by"], "branch");
    let rows = doc["breakdown"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                exact_micros(&r["cost_usd"]),
                r["messages"].as_i64().unwrap(),
                r["sessions"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    (rows, exact_micros(&doc["totals"]["cost_usd"]))
}

fn row(key: &str, usd_micros: i64, responses: i64, sessions: usize) -> (String, i64, i64, usize) {
    (key.to_owned(), usd_micros, responses, sessions)
}

/// The fixture's spend per branch, worked out by hand (fixtures/README.md):
/// haiku input at $1 per million tokens.
fn fixture_rows() -> Vec<(String, i64, i64, usize)> {
    vec![
        row("(no branch)", 50_000, 1, 1),
        row("feat/a", 850_000, 2, 1),
        row("feat/c", 100_000, 1, 1),
        row("fix/typo", 500_000, 2, 2),
        row("fix/x", 600_000, 1, 1),
        row("main", 1_200_000, 1, 1),
    ]
}

/// Spend per branch: a branch switch inside a session splits it by each
/// response's own branch; a response without `gitBranch` takes its
/// session's latest branch; a session that never names one is "(no
/// branch)"; one branch over two sessions counts both. Rows add up to the
/// total exactly, in JSON and CSV, and `--arm` keeps to the arm.
#[test]
fn report_by_branch_is_exact_and_adds_up() {
    let env = env_with(HARD_STOP);
    let (rows, total) = by_branch(&env, &[]);
    assert_eq!(rows, fixture_rows());
    assert_eq!(total, 3_300_000);
    assert_eq!(rows.iter().map(|r| r.1).sum::<i64>(), total);
    let (rows, _) = by_branch(&env, &["--arm", "acme", "--period", "all"]);
    assert_eq!(rows, fixture_rows());
    let (rows, total) = by_branch(&env, &["--arm", "unattributed"]);
    assert!(rows.is_empty() && total == 0, "{rows:?}");
    // A period without the fixture's day has no rows.
    let (rows, _) = by_branch(&env, &["--since", "2026-11-21", "--until", "2026-11-21"]);
    assert!(rows.is_empty(), "{rows:?}");
    let csv = ok(&env.run(&["report", "--by", "branch", "--csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("branch,kind,cost_usd,"), "{csv}");
    assert_eq!(lines.len(), 1 + 6 + 1, "{csv}");
    assert!(
        lines.contains(&"fix/typo,breakdown,0.500000,,,,2,2,500000,0,0,0,0,0")
            && lines.contains(&"(no branch),breakdown,0.050000,,,,1,1,50000,0,0,0,0,0")
            && lines.last() == Some(&"total,total,3.300000,,,,6,8,3300000,0,0,0,0,0"),
        "{csv}"
    );
    let table = ok(&env.run(&["report", "--by", "branch"]));
    assert!(
        table.contains("fix/typo") && table.contains("(no branch)"),
        "{table}"
    );
}

/// `check` on each branch, for a gated tool: the trunk branch is not
/// capped; 85 % of the branch cap warns once; a `fix/*` branch at its glob's
/// $0.50 (two sessions together) is blocked; a session that switched from
/// an over-cap branch to a new one is allowed (its latest branch counts);
/// a session without a branch is not capped; a new session whose only
/// record is a prompt on fix/typo is refused at that prompt.
#[test]
fn check_decides_per_branch() {
    let env = env_with(HARD_STOP);
    ok(&env.run(&["ingest"]));
    assert_eq!(decision(&check(&env, "s-main", "Agent")).0, "allow");
    let (d, said) = decision(&check(&env, "s-feat", "Agent"));
    assert_eq!(d, "warn");
    assert!(
        said.contains(
            "branch \\\"feat/a\\\" of arm \\\"acme\\\" is at 85.0% of its $1.00 branch cap"
        ),
        "{said}"
    );
    assert_eq!(
        decision(&check(&env, "s-feat", "Agent")).0,
        "allow",
        "warned once"
    );
    let (d, said) = decision(&check(&env, "s-fix1", "Agent"));
    assert_eq!(d, "block");
    assert!(
        said.contains(
            "branch \"fix/typo\" of arm \"acme\" has spent $0.50 of its $0.50 branch cap"
        ) && said.contains("Agent refused on this branch"),
        "{said}"
    );
    // An ungated tool is not refused on a hard_stop arm.
    assert_eq!(decision(&check(&env, "s-fix1", "Read")).0, "allow");
    assert_eq!(decision(&check(&env, "s-switch", "Agent")).0, "allow");
    assert_eq!(decision(&check(&env, "s-nobranch", "Agent")).0, "allow");
    let prompt = env
        .cmd()
        .arg("check")
        .write_stdin(hook(&env, "s-new", "UserPromptSubmit", ""))
        .output()
        .unwrap();
    let (d, said) = decision(&prompt);
    assert_eq!(d, "block");
    assert!(said.contains("fix/typo"), "{said}");
}

/// A response without `gitBranch` appended after the session was read
/// takes the session's latest branch from the ledger: fix/x's $0.60 would
/// not be blocked on the new line's own (missing) branch, feat/c's $0.10
/// plus the new $0.90 is, at its $1.00 cap.
#[test]
fn a_later_line_without_branch_takes_the_sessions_latest() {
    let env = env_with(HARD_STOP);
    ok(&env.run(&["ingest"]));
    let mut line: Value = serde_json::from_str(&assistant(
        "s-switch",
        CWD,
        "msg_sw3",
        "req_msg_sw3",
        "2026-11-20T11:30:00.000Z",
        HAIKU,
        usage(900_000, 0),
    ))
    .unwrap();
    assert!(line.get("gitBranch").is_none());
    line["version"] = json!("2.1.90");
    env.append("-work-acme/s-switch.jsonl", &[line.to_string()]);
    let (d, said) = decision(&check(&env, "s-switch", "Agent"));
    assert_eq!(d, "block", "{said}");
    assert!(
        said.contains("branch \"feat/c\"") && said.contains("$1.00 of its $1.00"),
        "{said}"
    );
    let (rows, _) = by_branch(&env, &[]);
    assert!(rows.contains(&row("feat/c", 1_000_000, 2, 1)), "{rows:?}");
}

/// `trunk_branches:` replaces the default list: main is capped like any
/// branch ($1.20 over $1.00) once only `release` is trunk.
#[test]
fn trunk_branches_can_be_changed() {
    let env = env_with(&format!("{HARD_STOP}trunk_branches: [release]\n"));
    ok(&env.run(&["ingest"]));
    let (d, said) = decision(&check(&env, "s-main", "Agent"));
    assert_eq!(d, "block");
    assert!(said.contains("branch \"main\""), "{said}");
}

/// A glob names its branches whether or not they are trunk ones: `main`
/// capped at $1.10 by its own entry; the first matching glob wins
/// (`feat/*` at $2 before `*` at $0.10).
#[test]
fn globs_in_file_order() {
    let env = env_with(
        "timezone: UTC
budgets:
  - arm: acme
    path: /work/acme
    branch_caps:
      main: 1.10
      \"feat/*\": 2
      \"*\": 0.10
    action_on_breach: hard_stop
    grace_pct: 100
",
    );
    ok(&env.run(&["ingest"]));
    assert_eq!(decision(&check(&env, "s-main", "Agent")).0, "block");
    assert_eq!(decision(&check(&env, "s-feat", "Agent")).0, "allow");
    assert_eq!(decision(&check(&env, "s-fix1", "Agent")).0, "block");
    assert_eq!(decision(&check(&env, "s-nobranch", "Agent")).0, "allow");
}

/// On a `stop` arm the branch cap halts the agent, on any tool (Read
/// too); below it the session goes on.
#[test]
fn a_stop_arm_halts_at_the_branch_cap() {
    let env = env_with(&HARD_STOP.replace("hard_stop", "stop"));
    ok(&env.run(&["ingest"]));
    let (d, said) = decision(&check(&env, "s-fix1", "Read"));
    assert_eq!(d, "halt", "{said}");
    assert!(said.contains("the agent is halted"), "{said}");
    // Halted until a prompt of its own passes: still halted on a tool.
    assert_eq!(decision(&check(&env, "s-fix1", "Bash")).0, "halt");
    assert_eq!(decision(&check(&env, "s-main", "Read")).0, "allow");
    assert_eq!(decision(&check(&env, "s-switch", "Agent")).0, "allow");
}

/// `status --json --branch NAME` for a script that starts an agent per
/// task; `--session` takes the session's latest branch.
#[test]
fn status_shows_the_branch_cap() {
    let env = env_with(HARD_STOP);
    let status = |args: &[&str]| -> (Value, Option<i32>) {
        let out = env
            .cmd()
            .args(["status", "--json", "--arm", "acme", "--exit-code"])
            .args(args)
            .output()
            .unwrap();
        (
            serde_json::from_slice(&out.stdout).unwrap(),
            out.status.code(),
        )
    };
    let (v, code) = status(&["--branch", "fix/typo"]);
    assert_eq!(v["branch"], "fix/typo");
    assert_eq!(v["decision"], "block");
    assert_eq!(v["over_budget"], true);
    assert_eq!(code, Some(7));
    let cap = &v["branch_cap"];
    assert_eq!(cap["cap"], "branch");
    assert_eq!(cap["branch"], "fix/typo");
    assert_eq!(exact_micros(&cap["limit_usd"]), 500_000);
    assert_eq!(exact_micros(&cap["spent_usd"]), 500_000);
    assert_eq!(cap["resets"], Value::Null);
    let (v, code) = status(&["--branch", "main"]);
    assert_eq!(
        (v["branch_cap"].clone(), v["decision"].clone()),
        (Value::Null, json!("allow"))
    );
    assert_eq!(code, Some(0));
    let (v, _) = status(&["--branch", "feat/new"]);
    assert_eq!(exact_micros(&v["branch_cap"]["spent_usd"]), 0);
    assert_eq!(exact_micros(&v["branch_cap"]["limit_usd"]), 1_000_000);
    let (v, _) = status(&["--session", "s-feat"]);
    assert_eq!(v["branch"], "feat/a");
    assert_eq!(v["decision"], "warn");
    let table = ok(&env.run(&["status", "--arm", "acme", "--branch", "fix/typo"]));
    assert!(
        table.contains("branch fix/typo") && table.contains("decision: block"),
        "{table}"
    );
}

/// `alerts` says each branch crossing once: feat/a at 85 % (ALERT), fix/typo
/// and fix/x at their hard stop; main (trunk) and the branchless session
/// never. A second run says nothing.
#[test]
fn alerts_say_each_branch_once() {
    let env = env_with(HARD_STOP);
    let out = ok(&env.run(&["alerts", "--json"]));
    let mut events: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["scope"], "branch", "{l}");
            assert_eq!(v["resets"], "never", "{l}");
            (
                v["level"].as_str().unwrap().to_owned(),
                v["name"].as_str().unwrap().to_owned(),
                v["branch"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    events.sort();
    let want = |l: &str, b: &str| (l.to_owned(), format!("acme@{b}"), b.to_owned());
    assert_eq!(
        events,
        vec![
            want("ALERT", "feat/a"),
            want("HARD_STOP", "fix/typo"),
            want("HARD_STOP", "fix/x"),
        ]
    );
    assert_eq!(ok(&env.run(&["alerts", "--json"])), "");
    let all = ok(&env.run(&["alerts", "--all"]));
    assert!(
        all.contains(
            " HARD_STOP acme@fix/typo branch spent=$0.50 cap=$0.50 pct=100.0 resets=never"
        ) && all.contains(" OK acme@feat/c branch spent=$0.10 cap=$1.00 pct=10.0 resets=never"),
        "{all}"
    );
}

/// Config mistakes name the key: a branch cap on the team total, a
/// non-number cap, an empty trunk branch.
#[test]
fn branch_keys_are_validated() {
    let env = Env::new();
    let err = |yaml: &str| -> String {
        env.write_config(yaml);
        let out = env.run(&["status"]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err("budgets:\n  - arm: a\ntotal:\n  daily_usd_cap: 1\n  branch_usd_cap: 1\n");
    assert!(e.contains("total.branch_usd_cap"), "{e}");
    let e = err("budgets:\n  - arm: a\n    branch_caps:\n      \"fix/*\": lots\n");
    assert!(
        e.contains("budgets[0].branch_caps") && e.contains("fix/*"),
        "{e}"
    );
    let e = err("budgets:\n  - arm: a\n    branch_usd_cap: -1\n");
    assert!(
        e.contains(":3:") && e.contains("budgets[0].branch_usd_cap"),
        "{e}"
    );
    let e = err("trunk_branches: [main, \"\"]\nbudgets:\n  - arm: a\n");
    assert!(e.contains("trunk_branches[1]"), "{e}");
}

/// A ledger of schema 6 (no branches) upgrades: the files still on disk
/// are read again and give their responses a branch, counting nothing
/// twice; the spend of a transcript already deleted stays, as "(no
/// branch)".
#[test]
fn a_schema_6_ledger_learns_branches_of_files_on_disk() {
    let env = env_with(HARD_STOP);
    ok(&env.run(&["ingest"]));
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.execute_batch(common::ROLLUP_BEFORE_12).unwrap();
        c.execute_batch(
            "DROP INDEX responses_message; ALTER TABLE responses DROP COLUMN message_hash;
             CREATE UNIQUE INDEX responses_key ON responses (message_id, request_id);
             DROP INDEX responses_branch;
             ALTER TABLE responses DROP COLUMN branch;
             DROP TABLE session_branches;
             DROP TABLE cost_states;
             DROP TABLE unwritten;
             DROP TABLE session_links;
             DROP TABLE spend_cache;
             DELETE FROM meta WHERE key = 'rollup_gen';
             DROP TABLE config_cache;
             PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    std::fs::remove_file(session_file(&env, "s-fix2")).unwrap();
    let (rows, total) = by_branch(&env, &[]);
    assert_eq!(total, 3_300_000);
    assert_eq!(
        rows,
        vec![
            row("(no branch)", 250_000, 2, 2),
            row("feat/a", 850_000, 2, 1),
            row("feat/c", 100_000, 1, 1),
            row("fix/typo", 300_000, 1, 1),
            row("fix/x", 600_000, 1, 1),
            row("main", 1_200_000, 1, 1),
        ]
    );
    let version: i64 = rusqlite::Connection::open(&env.ledger)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, octo_budget::ledger::schema::VERSION);
    // Read once: the next run reads nothing.
    let out = ok(&env.run(&["ingest"]));
    assert!(out.starts_with("ingested 0 of "), "{out}");
}

/// A schema 11 ledger (a rollup without branches; per-branch figures read
/// from the responses through their branch index) upgrades to 12: the
/// rollup is computed again per branch from the counted responses, and
/// every figure stays what it was: per branch over all time and for the
/// month, per arm, and the branch cap's decision. The transcripts are
/// gone by then, so the upgraded figures can only come from the ledger.
#[test]
fn a_schema_11_ledger_keeps_its_figures_with_a_rollup_per_branch() {
    let env = env_with(HARD_STOP);
    let all = by_branch(&env, &["--period", "all"]);
    let month = by_branch(&env, &[]);
    let arms = env.report_json(&[]);
    let before = decision(&check(&env, "s-fix2", "Agent"));
    let has_branch = |c: &rusqlite::Connection| -> bool {
        c.query_row(
            "SELECT count(*) FROM pragma_table_info('rollup') WHERE name = 'branch'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    };
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        assert!(has_branch(&c));
        c.execute_batch(common::ROLLUP_BEFORE_12).unwrap();
        c.execute_batch("PRAGMA user_version = 11;").unwrap();
        assert!(!has_branch(&c));
    }
    std::fs::remove_dir_all(&env.claude).unwrap();
    std::fs::create_dir_all(&env.claude).unwrap();
    assert_eq!(by_branch(&env, &["--period", "all"]), all);
    assert_eq!(by_branch(&env, &[]), month);
    assert_eq!(env.report_json(&[])["arms"], arms["arms"]);
    let c = rusqlite::Connection::open(&env.ledger).unwrap();
    let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert!(has_branch(&c));
    assert_eq!(
        one("PRAGMA user_version"),
        octo_budget::ledger::schema::VERSION
    );
    assert_eq!(
        one("SELECT count(*) FROM sqlite_master WHERE name = 'responses_branch'"),
        0
    );
    assert_eq!(
        one("SELECT count(*) FROM sqlite_master WHERE name = 'rollup_branch'"),
        1
    );
    assert_eq!(
        one("SELECT count(DISTINCT branch) FROM rollup"),
        one("SELECT count(DISTINCT branch) FROM responses WHERE counted")
    );
    drop(c);
    assert_eq!(decision(&check(&env, "s-fix2", "Agent")).0, before.0);
}

/// Every row of `rollup`, in key order, as text.
fn rollup_rows(ledger: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(ledger).unwrap();
    let mut st = c
        .prepare(
            "SELECT bucket || '|' || place_id || '|' || session_id || '|' || model || '|' || fast || '|' ||
                    us_geo || '|' || class || '|' || branch || '|' || messages || '|' || input || '|' ||
                    output || '|' || cache_write_5m || '|' || cache_write_1h || '|' || cache_read || '|' ||
                    web_search
             FROM rollup ORDER BY place_id, bucket, session_id, model, fast, us_geo, class, branch",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// Migration 12 computes the rollup from the responses exactly as the
/// writer keeps it: the same rows, field for field, for prompts on each
/// side of both long-context thresholds (100k, 200k tokens), timestamps on
/// each side of a bucket boundary, a branch change within a bucket, a
/// response without a branch, and a sidechain copy that is not counted.
#[test]
fn migration_12_builds_the_rollup_the_writer_keeps() {
    let env = Env::new();
    env.write_config(HARD_STOP);
    let line = |msg: &str, ts: &str, branch: Option<&str>, prompt: u64| {
        // A response without a branch takes its session's latest: the
        // one without is in a session of its own.
        let session = if branch.is_some() {
            "s-m12"
        } else {
            "s-m12-none"
        };
        let mut v: Value = serde_json::from_str(&assistant(
            session,
            CWD,
            msg,
            &format!("req-{msg}"),
            ts,
            HAIKU,
            json!({"input_tokens": prompt / 2, "cache_read_input_tokens": prompt - prompt / 2,
                   "output_tokens": 7}),
        ))
        .unwrap();
        if let Some(b) = branch {
            v["gitBranch"] = json!(b);
        }
        v.to_string()
    };
    let mut lines = vec![
        line("m1", "2026-11-10T10:14:59.999Z", Some("main"), 99_999),
        line("m2", "2026-11-10T10:15:00.000Z", Some("main"), 100_000),
        line("m3", "2026-11-10T10:16:00.000Z", Some("feat/x"), 100_001),
        line("m4", "2026-11-10T10:17:00.000Z", Some("feat/x"), 200_000),
        line("m5", "2026-11-10T10:18:00.000Z", Some("main"), 200_001),
        line("m6", "2026-11-10T23:59:59.999Z", None, 5_000),
    ];
    // A subagent's copy of m1 (same message, another request id, in a
    // sidechain): kept, not counted.
    let mut copy: Value = serde_json::from_str(&lines[0]).unwrap();
    copy["isSidechain"] = json!(true);
    copy["requestId"] = json!("req-m1-copy");
    lines.push(copy.to_string());
    let path = env.transcript("-work-acme/s-m12.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    env.report_json(&["--period", "all"]);
    let kept = rollup_rows(&env.ledger);
    // Each case has rows of its own: three prompt classes, three
    // branches (one none), three buckets.
    let field = |i: usize| -> std::collections::BTreeSet<String> {
        kept.iter()
            .map(|r| r.split('|').nth(i).unwrap().to_owned())
            .collect()
    };
    assert_eq!(field(6).len(), 3, "classes: {kept:#?}");
    assert_eq!(field(7).len(), 3, "branches: {kept:#?}");
    assert_eq!(field(0).len(), 3, "buckets: {kept:#?}");
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        let not_counted: i64 = c
            .query_row(
                "SELECT count(*) FROM responses WHERE NOT counted",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(not_counted, 1, "the sidechain copy");
        c.execute_batch(common::ROLLUP_BEFORE_12).unwrap();
        c.execute_batch("PRAGMA user_version = 11;").unwrap();
    }
    env.report_json(&["--period", "all"]);
    assert_eq!(rollup_rows(&env.ledger), kept);
}
