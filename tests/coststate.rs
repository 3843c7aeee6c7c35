//! Untranscribed spend (issue #10): Claude Code's own totals (`cost-state`
//! records) add the requests it never writes as responses, counted once.
//!
//! Hand-checked: claude-haiku-4-5 at $1 input, $5 output, $1.25 5-minute
//! writes per million tokens and $0.01 per web search, so 1 input token is
//! 1 micro-dollar, 1 output token 5, 1 5-minute write 1.25 (fixtures use
//! multiples of 4) and 1 search 10,000. The shapes of the records are those
//! Claude Code 2.1.328 writes (tests/e2e/README.md): a `cost-state` line with
//! no timestamp or cwd, `startTime` in ms, totals per model.

mod common;

use common::*;
use serde_json::{json, Value};

const MODEL: &str = "claude-haiku-4-5";
const ACME: &str = "/x/acme";

fn env_with(extra: &str) -> Env {
    let env = Env::new();
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {ACME}\n{extra}"
    ));
    env
}

fn ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
}

/// A `cost-state` line: `[input, output, 5m writes, searches]` per model.
fn cost_state(session: &str, start: &str, models: &[(&str, [u64; 4])]) -> String {
    let mut mu = serde_json::Map::new();
    for (m, [i, o, w5, ws]) in models {
        mu.insert(
            (*m).to_owned(),
            json!({"inputTokens": i, "outputTokens": o, "thinkingTokens": 0,
                   "cacheReadInputTokens": 0, "cacheCreationInputTokens": w5,
                   "cacheCreationEphemeral5mInputTokens": w5, "cacheCreationEphemeral1hInputTokens": 0,
                   "webSearchRequests": ws, "costUSD": 0.0}),
        );
    }
    json!({"type": "cost-state", "sessionId": session, "totalCostUSD": 0.0, "totalDuration": 1000,
           "startTime": ms(start), "modelUsage": mu, "hasUnknownModelCost": false})
    .to_string()
}

fn resp(session: &str, id: &str, ts: &str, input: u64, output: u64) -> String {
    assistant(
        session,
        ACME,
        id,
        &format!("req_{id}"),
        ts,
        MODEL,
        usage(input, output),
    )
}

fn acme(doc: &Value) -> &Value {
    doc["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == "acme")
        .unwrap()
}

/// (cost in micro-dollars, input, output, 5m writes, web searches) of a
/// tally, and the same of its unwritten part.
fn figures(t: &Value) -> ([i64; 5], [i64; 5]) {
    let f = |v: &Value| {
        [
            micros(&v["cost_usd"]),
            v["tokens"]["input"].as_i64().unwrap(),
            v["tokens"]["output"].as_i64().unwrap(),
            v["tokens"]["cache_write_5m"].as_i64().unwrap(),
            v["web_search_requests"].as_i64().unwrap(),
        ]
    };
    (f(t), f(&t["unwritten"]))
}

// Proves: a cost-state above the transcribed responses (main and subagent
// file) adds the difference per kind (tokens and a web search) to the
// session's arm, once, however often the files are read; `--by kind`
// splits it; responses stay the transcribed ones.
//
// Transcribed: main 1,000 in + 1,000 out (6,000) and 2,000 in + 500 out
// (4,500), subagent 1,000 in (1,000): 4,000 in, 1,500 out = 11,500.
// cost-state: 10,000 in, 3,000 out, 4,000 5m writes, 1 search.
// Unwritten: 6,000 in (6,000) + 1,500 out (7,500) + 4,000 writes (5,000) +
// 1 search (10,000) = 28,500. Total 40,000 = what Claude Code counted.
#[test]
fn cost_state_above_the_transcribed_adds_the_difference_once() {
    let env = env_with("");
    let s = "s-above";
    env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            user(s, ACME, "2026-11-10T10:00:00.000Z", "go"),
            resp(s, "m1", "2026-11-10T10:00:01.000Z", 1000, 1000),
            resp(s, "m2", "2026-11-10T10:00:05.000Z", 2000, 500),
            cost_state(
                s,
                "2026-11-10T09:59:59.000Z",
                &[(MODEL, [10_000, 3_000, 4_000, 1])],
            ),
        ],
    );
    let mut sub: Value =
        serde_json::from_str(&resp(s, "m3", "2026-11-10T10:00:03.000Z", 1000, 0)).unwrap();
    sub["isSidechain"] = json!(true);
    sub["agentId"] = json!("a1");
    env.append(
        &format!("-x-acme/{s}/subagents/agent-a1.jsonl"),
        &[sub.to_string()],
    );
    for _ in 0..2 {
        let doc = env.report_json(&[]);
        let (all, unwritten) = figures(acme(&doc));
        assert_eq!(all, [40_000, 10_000, 3_000, 4_000, 1]);
        assert_eq!(unwritten, [28_500, 6_000, 1_500, 4_000, 1]);
        assert_eq!(acme(&doc)["messages"], 3);
        assert_eq!(figures(&doc["totals"]).0, all);
    }
    let doc = env.report_json(&["--by", "kind"]);
    assert_eq!(doc["breakdown"]["by"], "kind");
    let rows: Vec<(String, i64)> = doc["breakdown"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                micros(&r["cost_usd"]),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("transcribed".to_string(), 11_500),
            ("unwritten".to_string(), 28_500)
        ]
    );
    // A period that ends before the run does not see it.
    let doc = env.report_json(&["--since", "2026-11-01", "--until", "2026-11-09"]);
    assert_eq!(figures(acme(&doc)).0, [0; 5]);
}

// Proves: the caps count it. The transcribed $0.0115 is under a $0.02
// monthly hard stop ($0.022 at 110%), the whole $0.04 is over: `check`
// refuses a gated tool, and `status` shows the whole spend.
#[test]
fn check_and_status_count_unwritten_spend() {
    let env = env_with("    monthly_usd_cap: 0.02\n    action_on_breach: hard_stop\n");
    let s = "s-caps";
    let rel = format!("-x-acme/{s}.jsonl");
    env.append(
        &rel,
        &[
            resp(s, "c1", "2026-11-10T10:00:01.000Z", 4000, 1500),
            cost_state(
                s,
                "2026-11-10T09:59:59.000Z",
                &[(MODEL, [10_000, 3_000, 4_000, 1])],
            ),
        ],
    );
    let hook = json!({
        "session_id": s, "transcript_path": env.transcript(&rel), "cwd": ACME,
        "permission_mode": "default", "hook_event_name": "PreToolUse",
        "tool_name": "WebSearch", "tool_input": {"query": "x"}, "tool_use_id": "toolu_01",
    });
    let out = env
        .cmd()
        .arg("check")
        .write_stdin(hook.to_string())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd()
        .args(["status", "--json", "--cwd", ACME])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0.04"), "status: {text}");
}

// Proves: cost-state is cumulative across `--resume` (same startTime): the
// latest counts, not the sum. Run 1: 1,000 in transcribed, cost-state 1,500
// (500 unwritten). While run 2 is running (its response written, no new
// cost-state yet) the earlier 500 stays: 1,500 + 2,000 = 3,500. Run 2 ends:
// cost-state 4,000 = 1,500 + 2,000 + 500 new unwritten: 4,000 in all (the
// sum of the two cost-states would say 5,500).
#[test]
fn resume_is_cumulative_and_a_running_session_is_not_counted_twice() {
    let env = env_with("");
    let s = "s-resume";
    let rel = format!("-x-acme/{s}.jsonl");
    let start = "2026-11-10T09:59:59.000Z";
    env.append(
        &rel,
        &[
            resp(s, "r1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state(s, start, &[(MODEL, [1_500, 0, 0, 0])]),
        ],
    );
    assert_eq!(figures(acme(&env.report_json(&[]))).0[..2], [1_500, 1_500]);
    env.append(
        &rel,
        &[
            user(s, ACME, "2026-11-10T11:00:00.000Z", "go on"),
            resp(s, "r2", "2026-11-10T11:00:01.000Z", 2000, 0),
        ],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (3_500, 500));
    env.append(&rel, &[cost_state(s, start, &[(MODEL, [4_000, 0, 0, 0])])]);
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (4_000, 1_000));
}

// Proves: a fork (`--resume --fork-session`: a new session file that starts
// with copies of the parent's responses, its cost-state carrying the
// parent's totals, same startTime) counts the parent once. Parent: 1,000 in
// transcribed, cost-state 1,500. Fork: the copy, 1,000 in of its own,
// cost-state 3,000 (= 1,500 + 1,000 + 500 unwritten). All: 3,000 in
// (summing the two cost-states would say 4,500).
#[test]
fn a_fork_counts_its_parent_once() {
    let env = env_with("");
    let start = "2026-11-10T09:59:59.000Z";
    env.append(
        "-x-acme/parent.jsonl",
        &[
            resp("parent", "f1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state("parent", start, &[(MODEL, [1_500, 0, 0, 0])]),
        ],
    );
    env.append(
        "-x-acme/fork.jsonl",
        &[
            resp("fork", "f1", "2026-11-10T10:00:01.000Z", 1000, 0),
            user("fork", ACME, "2026-11-10T10:30:00.000Z", "fork"),
            resp("fork", "f2", "2026-11-10T10:30:01.000Z", 1000, 0),
            cost_state("fork", start, &[(MODEL, [3_000, 0, 0, 0])]),
        ],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (3_000, 1_000));
}

// Proves: a run killed before it wrote its totals (SIGKILL) counts its
// transcribed responses only; when it is resumed Claude Code starts a new
// count (new startTime, only the resumed run's requests), and the killed
// run's responses are not taken off it. Killed: 1,000 in. Resumed: 2,000 in
// transcribed, cost-state 2,500. All: 3,500 in, 500 unwritten.
#[test]
fn a_killed_run_then_a_new_count() {
    let env = env_with("");
    let s = "s-killed";
    let rel = format!("-x-acme/{s}.jsonl");
    env.append(&rel, &[resp(s, "k1", "2026-11-10T10:00:01.000Z", 1000, 0)]);
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (1_000, 0));
    env.append(
        &rel,
        &[
            user(s, ACME, "2026-11-10T12:00:00.000Z", "go on"),
            resp(s, "k2", "2026-11-10T12:00:01.000Z", 2000, 0),
            cost_state(s, "2026-11-10T11:59:59.000Z", &[(MODEL, [2_500, 0, 0, 0])]),
        ],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (3_500, 500));
}

// Proves: a cost-state below the transcribed responses in a kind adds
// nothing in that kind (never negative), and still adds what it shows above
// them in another kind and for another model (by its normalised id).
// Transcribed: 1,000 in + 1,000 out = 6,000. cost-state: 500 in, 2,000 out,
// and 100 in of claude-haiku-4-5-20251001 (the same model): 0 in + 1,000 out
// (5,000) unwritten. All: 11,000.
#[test]
fn a_cost_state_below_the_transcribed_is_never_negative() {
    let env = env_with("");
    let s = "s-below";
    env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            resp(s, "b1", "2026-11-10T10:00:01.000Z", 1000, 1000),
            cost_state(
                s,
                "2026-11-10T09:59:59.000Z",
                &[
                    (MODEL, [500, 2_000, 0, 0]),
                    ("claude-haiku-4-5-20251001", [100, 0, 0, 0]),
                ],
            ),
        ],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!(all, [11_000, 1_000, 2_000, 0, 0]);
    assert_eq!(unwritten, [5_000, 0, 1_000, 0, 0]);
}

// Proves: the unwritten spend is in the ledger: it survives the deletion of
// the transcripts (Claude Code's cleanup).
#[test]
fn unwritten_spend_survives_transcript_deletion() {
    let env = env_with("");
    let s = "s-deleted";
    let p = env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            resp(s, "d1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state(s, "2026-11-10T09:59:59.000Z", &[(MODEL, [3_000, 0, 0, 0])]),
        ],
    );
    assert_eq!(figures(acme(&env.report_json(&[]))).0[0], 3_000);
    std::fs::remove_file(p).unwrap();
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (3_000, 2_000));
}

// Proves: a ledger of schema 7 (it read the session file, and its
// cost-state, without keeping it) finds the totals on its upgrade: the
// session files are read again once, and nothing counts twice.
#[test]
fn an_older_ledger_finds_cost_states_on_upgrade() {
    let env = env_with("");
    let s = "s-old";
    env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            resp(s, "o1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state(s, "2026-11-10T09:59:59.000Z", &[(MODEL, [3_000, 0, 0, 0])]),
        ],
    );
    assert_eq!(figures(acme(&env.report_json(&[]))).0[0], 3_000);
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.execute_batch(
            "DROP INDEX responses_message; ALTER TABLE responses DROP COLUMN message_hash;
             CREATE UNIQUE INDEX responses_key ON responses (message_id, request_id);
             DROP TABLE cost_states; DROP TABLE unwritten; DROP TABLE session_links;
             DROP TABLE spend_cache; DELETE FROM meta WHERE key = 'rollup_gen';
             DROP TABLE config_cache;
             PRAGMA user_version = 7;",
        )
        .unwrap();
    }
    for _ in 0..2 {
        let doc = env.report_json(&[]);
        let (all, unwritten) = figures(acme(&doc));
        assert_eq!((all[0], unwritten[0]), (3_000, 2_000));
        assert_eq!(acme(&doc)["messages"], 1);
    }
}

// Proves: each run's unwritten part stays in the period it ran in. Run 1
// on Nov 10: 1,000 in transcribed, cost-state 1,500 (500 unwritten). Resumed
// on Nov 12: 2,000 in transcribed, cost-state 4,000 (500 more unwritten).
// Nov 10 shows 1,500 (500 unwritten), Nov 12 2,500 (500 unwritten), the
// month 4,000 (1,000 unwritten); Nov 10 does not change when the session is
// resumed.
#[test]
fn each_run_keeps_its_day() {
    let env = env_with("");
    let s = "s-days";
    let rel = format!("-x-acme/{s}.jsonl");
    let start = "2026-11-10T09:59:59.000Z";
    env.append(
        &rel,
        &[
            resp(s, "y1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state(s, start, &[(MODEL, [1_500, 0, 0, 0])]),
        ],
    );
    let day = |d: &str| {
        let (all, unwritten) = figures(acme(&env.report_json(&["--since", d, "--until", d])));
        (all[0], unwritten[0])
    };
    assert_eq!(day("2026-11-10"), (1_500, 500));
    env.append(
        &rel,
        &[
            user(s, ACME, "2026-11-12T09:00:00.000Z", "go on"),
            resp(s, "y2", "2026-11-12T09:00:01.000Z", 2000, 0),
            cost_state(s, start, &[(MODEL, [4_000, 0, 0, 0])]),
        ],
    );
    assert_eq!(day("2026-11-10"), (1_500, 500));
    assert_eq!(day("2026-11-12"), (2_500, 500));
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (4_000, 1_000));
}

// Proves: the difference is recomputed when more of the session's
// responses arrive: a subagent file read after the cost-state (its 1,000 in
// were in Claude Code's total all along) lowers the unwritten part, the
// total stays 3,000.
#[test]
fn a_late_subagent_file_lowers_the_unwritten_part() {
    let env = env_with("");
    let s = "s-late";
    env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            resp(s, "l1", "2026-11-10T10:00:01.000Z", 1000, 0),
            resp(s, "l2", "2026-11-10T10:00:09.000Z", 500, 0),
            cost_state(s, "2026-11-10T09:59:59.000Z", &[(MODEL, [3_000, 0, 0, 0])]),
        ],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (3_000, 1_500));
    let mut sub: Value =
        serde_json::from_str(&resp(s, "l3", "2026-11-10T10:00:05.000Z", 1000, 0)).unwrap();
    sub["isSidechain"] = json!(true);
    env.append(
        &format!("-x-acme/{s}/subagents/agent-b.jsonl"),
        &[sub.to_string()],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (3_000, 500));
}

// Proves: a run's unwritten part belongs to its session's branch (`report
// --by branch`, and so branch caps). Transcribed on feat/x: 1,000 in;
// cost-state 3,000: feat/x has 3,000.
#[test]
fn unwritten_spend_is_on_the_sessions_branch() {
    let env = env_with("");
    let s = "s-branch";
    let mut r: Value =
        serde_json::from_str(&resp(s, "g1", "2026-11-10T10:00:01.000Z", 1000, 0)).unwrap();
    r["gitBranch"] = json!("feat/x");
    env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            r.to_string(),
            cost_state(s, "2026-11-10T09:59:59.000Z", &[(MODEL, [3_000, 0, 0, 0])]),
        ],
    );
    let doc = env.report_json(&["--by", "branch"]);
    let rows: Vec<(String, i64, i64)> = doc["breakdown"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                micros(&r["cost_usd"]),
                micros(&r["unwritten"]["cost_usd"]),
            )
        })
        .collect();
    assert_eq!(rows, [("feat/x".to_string(), 3_000, 2_000)]);
}

// Proves, on what the real Claude Code 2.1.328 wrote (fixtures/coststate,
// its README has the mock's bill): a session with an auto-compaction and a
// WebSearch, `--resume`d, then forked, is counted as billed, $0.239029,
// with the compaction and WebSearch's own request as its unwritten part,
// whichever file is read first (the fork's copies carry its session id).
#[test]
fn claude_code_2_1_328_resume_and_fork() {
    for order in [["parent", "fork"], ["fork", "parent"]] {
        let mut env = env_with("");
        env.write_config("timezone: UTC\nbudgets:\n  - arm: e2e\n    path: /work/e2e/repo\n");
        env.now = "2026-11-30T12:00:00Z".into();
        let dir = "-work-e2e-repo";
        for name in order {
            let text = std::fs::read_to_string(repo_path(&format!(
                "fixtures/coststate/projects/{dir}/{name}.jsonl"
            )))
            .unwrap();
            env.append_raw(&format!("{dir}/{name}.jsonl"), text.as_bytes());
            // Read one file before the other exists.
            assert_eq!(env.run(&["ingest"]).status.code(), Some(0));
        }
        let doc = env.report_json(&["--period", "all"]);
        let arm = doc["arms"][0].clone();
        assert_eq!(arm["arm"], "e2e");
        assert_eq!(micros(&arm["cost_usd"]), 239_029, "{order:?}: {arm}");
        assert_eq!(micros(&arm["unwritten"]["cost_usd"]), 138_733, "{order:?}");
        assert_eq!(
            arm["tokens"],
            json!({"input": 2937, "output": 3840, "cache_write_5m": 12832,
                   "cache_write_1h": 5068, "cache_read": 280300})
        );
        assert_eq!(
            arm["unwritten"]["tokens"],
            json!({"input": 2725, "output": 2965, "cache_write_5m": 11184,
                   "cache_write_1h": 3321, "cache_read": 47390})
        );
        assert_eq!(arm["web_search_requests"], 1);
        assert_eq!(arm["messages"], 5);
    }
}

// Proves: a fork still running (no cost-state yet) whose file is read
// before its parent's holds the rows of the copied responses under its own
// session id; the parent's cost-state still finds them. Parent: 1,000 in,
// cost-state 1,500. Fork (running): the copy, 1,000 in of its own. All:
// 2,500 (counting the copy as unwritten too would say 3,500).
#[test]
fn a_running_fork_read_first_counts_the_parent_once() {
    let env = env_with("");
    env.append(
        "-x-acme/fork.jsonl",
        &[
            resp("fork", "q1", "2026-11-10T10:00:01.000Z", 1000, 0),
            resp("fork", "q2", "2026-11-10T10:30:01.000Z", 1000, 0),
        ],
    );
    assert_eq!(env.run(&["ingest"]).status.code(), Some(0));
    env.append(
        "-x-acme/parent.jsonl",
        &[
            resp("parent", "q1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state(
                "parent",
                "2026-11-10T09:59:59.000Z",
                &[(MODEL, [1_500, 0, 0, 0])],
            ),
        ],
    );
    let (all, unwritten) = figures(acme(&env.report_json(&[])));
    assert_eq!((all[0], unwritten[0]), (2_500, 500));
}

// Proves: `report --by kind --csv` names its first column `request_kind`
// (the second, `kind`, is the kind of row) and splits the spend.
#[test]
fn by_kind_csv() {
    let env = env_with("");
    let s = "s-csv";
    env.append(
        &format!("-x-acme/{s}.jsonl"),
        &[
            resp(s, "v1", "2026-11-10T10:00:01.000Z", 1000, 0),
            cost_state(s, "2026-11-10T09:59:59.000Z", &[(MODEL, [3_000, 0, 0, 1])]),
        ],
    );
    let out = env
        .cmd()
        .args(["report", "--by", "kind", "--csv"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("request_kind,kind,cost_usd,"),
        "{text}"
    );
    assert!(
        lines[1] == "transcribed,breakdown,0.001000,,,,1,1,1000,0,0,0,0,0",
        "{text}"
    );
    assert!(
        lines[2] == "unwritten,breakdown,0.012000,,,,0,0,2000,0,0,0,0,1",
        "{text}"
    );
    assert!(lines[3].starts_with("total,total,0.013000,"), "{text}");
}

// Proves: a cost-state read after `check` cached the past days' spend
// (schema 9) counts at the next call: the run it closes ended on 2026-11-10,
// a cached day, and the change of its unwritten part drops the cached
// figure in the same ingest. First the transcribed $0.0115 alone (under the
// $0.022 hard stop: allowed, twice), then the whole $0.04 (refused).
#[test]
fn a_cost_state_for_a_cached_day_counts_at_the_next_call() {
    let env = env_with("    monthly_usd_cap: 0.02\n    action_on_breach: hard_stop\n");
    let s = "s-late";
    let rel = format!("-x-acme/{s}.jsonl");
    env.append(
        &rel,
        &[resp(s, "c1", "2026-11-10T10:00:01.000Z", 4000, 1500)],
    );
    let hook = json!({
        "session_id": s, "transcript_path": env.transcript(&rel), "cwd": ACME,
        "permission_mode": "default", "hook_event_name": "PreToolUse",
        "tool_name": "WebSearch", "tool_input": {"query": "x"}, "tool_use_id": "toolu_01",
    });
    let check = || {
        env.cmd()
            .arg("check")
            .write_stdin(hook.to_string())
            .output()
            .unwrap()
    };
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An earlier count with nothing unwritten, read alone: the ledger gets
    // the session's place without a cwd now, so the arm's places (part of
    // the cached figure's key) do not change at the next step.
    env.append(
        &rel,
        &[cost_state(
            s,
            "2026-11-01T00:00:00.000Z",
            &[(MODEL, [0, 0, 0, 0])],
        )],
    );
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.append(
        &rel,
        &[cost_state(
            s,
            "2026-11-10T09:59:59.000Z",
            &[(MODEL, [10_000, 3_000, 4_000, 1])],
        )],
    );
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has spent $0.04 "), "{err}");
}

// Proves: a cost-state read in a later run than its session's responses
// (the usual case: Claude Code writes it when the process exits, after
// the hooks and cron have read the responses) lands on the session's arm,
// not on an unattributed place. Transcribed: 1,000 in, 1,000 out; the
// cost-state: 3,000 in, 1,000 out: 2,000 in unwritten, all on acme.
#[test]
fn a_cost_state_read_after_its_responses_lands_on_the_sessions_arm() {
    let env = env_with("");
    let s = "s-late-state";
    let rel = format!("-x-acme/{s}.jsonl");
    env.append(
        &rel,
        &[
            user(s, ACME, "2026-11-10T10:00:00.000Z", "go"),
            resp(s, "m1", "2026-11-10T10:00:01.000Z", 1000, 1000),
        ],
    );
    let doc = env.report_json(&[]);
    assert_eq!(figures(acme(&doc)).0[1], 1_000);
    env.append(
        &rel,
        &[cost_state(
            s,
            "2026-11-10T09:59:59.000Z",
            &[(MODEL, [3_000, 1_000, 0, 0])],
        )],
    );
    let doc = env.report_json(&[]);
    let (all, unwritten) = figures(acme(&doc));
    assert_eq!(all[1], 3_000, "{doc:#}");
    assert_eq!(unwritten[1], 2_000, "{doc:#}");
    assert_eq!(
        figures(&doc["totals"]).0,
        all,
        "nothing unattributed: {doc:#}"
    );
}
