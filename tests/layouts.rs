//! Every transcript, once: every layout under `projects/` is read, a whole
//! final line without its newline counts once, the same file reached under
//! several paths is one file, `check` reads its session's files in every
//! layout on every call, unreadable files are counted and shown, arm paths
//! match cwds through symlinks. The tree is a copy of fixtures/layouts,
//! whose figures are worked out by hand in fixtures/README.md; symlinks and
//! hardlinks are made by the tests.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::{json, Value};

/// fixtures/README.md, "fixtures/layouts".
const ACME_MICROS: i64 = 37_600;
const ZETA_MICROS: i64 = 11_000;
const TOTAL_MICROS: i64 = 48_600;
const TOTAL_MESSAGES: u64 = 9;
/// loose.jsonl, s-chat/chat.jsonl, s-main.jsonl, agent-flat1.jsonl,
/// agent-wf.jsonl, future/deeper/new-layout.jsonl, s-zeta.jsonl.
const TRANSCRIPTS: usize = 7;

const CONFIG: &str = "timezone: UTC
budgets:
  - arm: acme
    path: /work/clients/acme
    monthly_usd_cap: 1
  - arm: zeta
    path: /work/clients/zeta
    monthly_usd_cap: 1
";

const NOW: &str = "2026-11-28T00:00:00Z";
const HAIKU: &str = "claude-haiku-4-5-20251001";

fn layouts_env() -> Env {
    let mut env = Env::new();
    copy_tree(&repo_path("fixtures/layouts"), &env.claude);
    env.write_config(CONFIG);
    env.now = NOW.into();
    env
}

fn arm<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == name)
        .expect("arm")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `report --json` with these `--claude-dir`s (instead of CLAUDE_CONFIG_DIR).
fn report_dirs(env: &Env, dirs: &[&Path]) -> Value {
    let mut c = env.cmd();
    c.args(["report", "--json"]);
    for d in dirs {
        c.arg("--claude-dir").arg(d);
    }
    serde_json::from_str(&ok(&c.output().unwrap())).unwrap()
}

fn assert_fixture_totals(doc: &Value) {
    assert_eq!(micros(&arm(doc, "acme")["cost_usd"]), ACME_MICROS, "{doc}");
    assert_eq!(arm(doc, "acme")["messages"], 7);
    assert_eq!(arm(doc, "acme")["sessions"], 3);
    assert_eq!(micros(&arm(doc, "zeta")["cost_usd"]), ZETA_MICROS);
    assert_eq!(arm(doc, "zeta")["messages"], 2);
    assert_eq!(micros(&doc["totals"]["cost_usd"]), TOTAL_MICROS);
    assert_eq!(doc["totals"]["messages"], TOTAL_MESSAGES);
    assert_eq!(doc["skipped_lines"], 1);
}

/// A Haiku 4.5 response of `input` tokens: `input` micro-dollars.
fn haiku(session: &str, cwd: &str, id: &str, input: u64) -> String {
    assistant(
        session,
        cwd,
        id,
        &format!("req_{id}"),
        "2026-11-20T10:00:00.000Z",
        HAIKU,
        json!({"input_tokens": input, "output_tokens": 0}),
    )
}

fn hook(session: &str, transcript: &Path, cwd: &str, tool: &str) -> String {
    json!({
        "session_id": session,
        "transcript_path": transcript,
        "cwd": cwd,
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": {},
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

/// Every layout counts: a file directly under projects/, a session folder
/// with chat.jsonl, flat agent files, workflow subagents, a folder layout
/// nobody has seen yet, and the whole final line without a newline; the
/// workflow journal, memory/ and tool-results/ are not read.
#[test]
fn every_layout_is_read() {
    let env = layouts_env();
    let out = ok(&env.run(&["ingest"]));
    assert!(
        out.starts_with(&format!(
            "ingested {TRANSCRIPTS} of {TRANSCRIPTS} transcript files"
        )),
        "{out}"
    );
    assert!(
        out.contains(", 1 malformed lines skipped, 0 unreadable)"),
        "{out}"
    );
    let doc = env.report_json(&[]);
    assert_fixture_totals(&doc);
    assert_eq!(doc["unreadable_files"], 0);
}

/// `--claude-dir` may name the projects/ folder itself.
#[test]
fn a_projects_folder_may_be_named_directly() {
    let env = layouts_env();
    let doc = report_dirs(&env, &[&env.claude.join("projects")]);
    assert_fixture_totals(&doc);
}

/// The final line of s-main.jsonl has no newline but is a whole JSON
/// object: it counts (msg_lay_tail, 1,000 µ$) once; the newline arriving
/// later adds nothing; a line after it counts.
#[test]
fn a_whole_final_line_counts_once() {
    let env = layouts_env();
    assert_fixture_totals(&env.report_json(&[]));
    env.append_raw("-work-clients-acme/s-main.jsonl", b"\n");
    let out = ok(&env.run(&["ingest"]));
    assert!(
        out.starts_with("ingested 1 of 7 transcript files (1 bytes, 0 responses"),
        "{out}"
    );
    assert_fixture_totals(&env.report_json(&[]));
    env.append(
        "-work-clients-acme/s-main.jsonl",
        &[haiku(
            "s-main",
            "/work/clients/acme",
            "msg_after_tail",
            2_000,
        )],
    );
    let doc = env.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), ACME_MICROS + 2_000);
    assert_eq!(arm(&doc, "acme")["messages"], 8);
}

/// One file is one file: the tree read through the real dir, a symlink to
/// it, and a second Claude dir holding a hardlink of s-zeta.jsonl counts
/// everything once, the malformed line once and the line without any id
/// once; then the hook reads the file through the symlink (another
/// spelling of the same file) and nothing doubles (#15 item 23).
#[test]
fn the_same_file_under_several_paths_is_read_once() {
    let env = layouts_env();
    let link = env.path().join("claude-link");
    std::os::unix::fs::symlink(&env.claude, &link).unwrap();
    let other = env.path().join("config-claude");
    let zeta = "projects/-work-clients-zeta/s-zeta.jsonl";
    fs::create_dir_all(other.join("projects/-work-clients-zeta")).unwrap();
    fs::hard_link(env.claude.join(zeta), other.join(zeta)).unwrap();

    let doc = report_dirs(&env, &[&env.claude, &link, &other]);
    assert_fixture_totals(&doc);

    // New bytes, then the hook reads them through the link's spelling: a
    // new response and a malformed line, each counted once.
    env.append(
        "-work-clients-zeta/s-zeta.jsonl",
        &[
            haiku("s-zeta", "/work/clients/zeta", "msg_zeta_2", 500),
            "{broken".into(),
        ],
    );
    let out = check(
        &env,
        &hook("s-zeta", &link.join(zeta), "/work/clients/zeta", "Agent"),
    );
    ok(&out);
    let doc = report_dirs(&env, &[&env.claude, &link, &other]);
    assert_eq!(micros(&arm(&doc, "zeta")["cost_usd"]), ZETA_MICROS + 500);
    assert_eq!(arm(&doc, "zeta")["messages"], 3);
    assert_eq!(doc["skipped_lines"], 2);
    let out = ok(&env
        .cmd()
        .arg("ingest")
        .arg("--claude-dir")
        .arg(&other)
        .output()
        .unwrap());
    assert!(out.starts_with("ingested 0 of 1 transcript files"), "{out}");
}

/// `check` reads what belongs to its session in every layout: a response
/// appended to the flat agent-flat1.jsonl (which carries s-main's
/// sessionId) pushes s-main over its session cap. s-main so far: 18,000 +
/// 1,000 + 6,000 + 6,000 + 600 = 31,600 µ$; cap $0.04; +10,000 = 41,600.
#[test]
fn check_reads_flat_agents_of_its_session() {
    let env = layouts_env();
    env.write_config(
        "timezone: UTC
budgets:
  - arm: acme
    path: /work/clients/acme
    session_usd_cap: 0.04
    action_on_breach: hard_stop
    grace_pct: 100
",
    );
    ok(&env.run(&["ingest"]));
    let main = env.transcript("-work-clients-acme/s-main.jsonl");
    let input = hook("s-main", &main, "/work/clients/acme", "Agent");
    ok(&check(&env, &input));
    let mut flat: Value = serde_json::from_str(&haiku(
        "s-main",
        "/work/clients/acme",
        "msg_flat_more",
        10_000,
    ))
    .unwrap();
    flat["isSidechain"] = json!(true);
    flat["agentId"] = json!("flat1");
    env.append("-work-clients-acme/agent-flat1.jsonl", &[flat.to_string()]);
    // A session cap on a hard_stop arm halts the session (the kill switch).
    let out = check(&env, &input);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let halt: Value = serde_json::from_slice(&out.stdout).expect("hook JSON");
    assert_eq!(halt["continue"], json!(false), "{halt}");
    let reason = halt["stopReason"].as_str().unwrap_or_default();
    assert!(reason.contains("session s-main"), "{reason}");
}

/// A call for a tool the gate lets through (Read) still reads the
/// session's new bytes: the response is in the ledger before the agent
/// can rewrite its transcript, and a rewritten copy with zero usage does
/// not lower it (#15 item 3).
#[test]
fn an_ungated_call_reads_the_session_so_a_rewrite_cannot_lower_it() {
    let env = layouts_env();
    ok(&env.run(&["ingest"]));
    let rel = "-work-clients-acme/s-new.jsonl";
    let line = haiku("s-new", "/work/clients/acme", "msg_hidden", 50_000);
    let path = env.append(rel, std::slice::from_ref(&line));
    let out = check(&env, &hook("s-new", &path, "/work/clients/acme", "Read"));
    assert_eq!(out.status.code(), Some(0));
    // The agent replaces the file with a zero-usage copy of the response.
    let zeroed = line.replace("\"input_tokens\":50000", "\"input_tokens\":0");
    assert_ne!(zeroed, line);
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, format!("{zeroed}\n")).unwrap();
    fs::rename(&tmp, &path).unwrap();
    let doc = env.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), ACME_MICROS + 50_000);
}

/// A rewrite that keeps inode, size and mtime (a middle line changed, far
/// from the 4 KiB head and the 4 KiB before the read offset, and the mtime
/// put back) is read again: the ctime moved (#15 item 8). The rewritten
/// response raises output from 1000 to 9000 tokens (Haiku: +40,000 µ$).
#[test]
fn a_rewrite_keeping_inode_size_and_mtime_is_read_again() {
    let env = layouts_env();
    let rel = "-work-clients-acme/s-pad.jsonl";
    let pad = |i: usize| {
        json!({"type": "user", "sessionId": "s-pad", "cwd": "/work/clients/acme",
               "message": {"content": format!("{i}{}", "x".repeat(1000))}})
        .to_string()
    };
    let mut lines: Vec<String> = (0..6).map(pad).collect();
    lines.push(assistant(
        "s-pad",
        "/work/clients/acme",
        "msg_mid",
        "req_mid",
        "2026-11-20T10:00:00.000Z",
        HAIKU,
        json!({"input_tokens": 0, "output_tokens": 1000}),
    ));
    lines.extend((6..12).map(pad));
    let path = env.append(rel, &lines);
    let doc = env.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), ACME_MICROS + 5_000);

    let md = fs::metadata(&path).unwrap();
    let before = fs::read_to_string(&path).unwrap();
    let after = before.replace("\"output_tokens\":1000", "\"output_tokens\":9000");
    assert_eq!(before.len(), after.len());
    // ctime has the kernel's coarse clock: let it move on.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut &f, after.as_bytes()).unwrap();
    f.set_modified(md.modified().unwrap()).unwrap();
    drop(f);
    let md2 = fs::metadata(&path).unwrap();
    assert_eq!(
        (md.ino(), md.size(), md.mtime(), md.mtime_nsec()),
        (md2.ino(), md2.size(), md2.mtime(), md2.mtime_nsec())
    );
    let doc = env.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), ACME_MICROS + 45_000);
    assert_eq!(arm(&doc, "acme")["messages"], 8);
}

/// Files that cannot be read are counted and shown (report JSON and
/// footer, ingest's line and stderr, status), never skipped silently: a
/// dangling symlink (unreadable as root too) and, where permissions bind
/// (not as root, which reads a chmod 000 file anyway), a file without read
/// permission.
#[test]
fn unreadable_files_are_counted_and_shown() {
    let env = layouts_env();
    let dangling = env.transcript("-work-clients-acme/s-gone.jsonl");
    std::os::unix::fs::symlink(env.path().join("nowhere.jsonl"), &dangling).unwrap();
    let mut expected = 1;
    let locked = env.append(
        "-work-clients-acme/s-locked.jsonl",
        &[haiku("s-locked", "/work/clients/acme", "msg_locked", 1)],
    );
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if fs::File::open(&locked).is_err() {
        expected += 1; // not root: the permission case applies
    } else {
        fs::remove_file(&locked).unwrap(); // root reads it: leave it out
    }

    let out = env.run(&["ingest"]);
    let stdout = ok(&out);
    assert!(
        stdout.contains(&format!(", {expected} unreadable)")),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read {}", dangling.display())),
        "{stderr}"
    );
    let doc = env.report_json(&[]);
    assert_eq!(doc["unreadable_files"], expected);
    assert_fixture_totals(&doc);
    let table = ok(&env.run(&["report"]));
    assert!(
        table.contains(&format!("unreadable: {expected} transcript file")),
        "{table}"
    );
    let status = ok(&env.run(&["status", "--arm", "acme"]));
    assert!(status.contains("unreadable: "), "{status}");
    let status: Value =
        serde_json::from_str(&ok(&env.run(&["status", "--arm", "acme", "--json"]))).unwrap();
    assert_eq!(status["unreadable_files"], expected);
}

/// An arm path and a cwd are the same place when one reaches the other
/// through a symlink on this machine, both ways round; a path that does
/// not exist here is compared as text.
#[test]
fn arm_paths_and_cwds_match_through_symlinks() {
    let env = Env::new();
    let real = env.path().join("real-acme");
    let link = env.path().join("link-acme");
    fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let real_s = real.to_str().unwrap();
    let link_s = link.to_str().unwrap();
    // The arm names the link; the transcript ran in the real folder.
    env.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {link_s}\n"
    ));
    env.append("-p/s1.jsonl", &[haiku("s1", real_s, "msg_real", 1_000)]);
    let doc = env.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), 1_000, "{doc}");
    // The arm names the real folder; the transcript ran in the link.
    let env2 = Env::new();
    env2.write_config(&format!(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: {real_s}\n"
    ));
    env2.append("-p/s2.jsonl", &[haiku("s2", link_s, "msg_link", 2_000)]);
    env2.append(
        "-p/s3.jsonl",
        &[haiku(
            "s3",
            &format!("{link_s}-not-here"),
            "msg_text",
            4_000,
        )],
    );
    let doc = env2.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), 2_000, "{doc}");
    assert_eq!(micros(&doc["unattributed"]["cost_usd"]), 4_000);
    // status --cwd through the link finds the arm too.
    let status: Value = serde_json::from_str(&ok(&env2
        .cmd()
        .args(["status", "--json", "--cwd", link_s])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(status["arm"], "acme");
}

/// A ledger of schema 3 (files keyed by path only; here with the same file
/// recorded under two paths, as a symlinked Claude dir left it) upgrades
/// without recounting: same totals, the doubled skipped line counted once.
/// Schemas 7 (branches) and 8 (cost-state records) read the files on disk
/// once more from their start; de-duplication counts nothing twice.
#[test]
fn a_schema_3_ledger_upgrades_without_recounting() {
    let env = layouts_env();
    assert_fixture_totals(&env.report_json(&[]));
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.execute_batch(common::ROLLUP_BEFORE_12).unwrap();
        c.execute_batch(
            "DROP INDEX responses_message; ALTER TABLE responses DROP COLUMN message_hash;
             CREATE UNIQUE INDEX responses_key ON responses (message_id, request_id);
             DROP INDEX files_inode;
             DROP INDEX responses_branch;
             ALTER TABLE responses DROP COLUMN branch;
             DROP TABLE session_branches;
             DROP TABLE cost_states;
             DROP TABLE unwritten;
             DROP TABLE session_links;
             DROP TABLE spend_cache;
             DROP TABLE config_cache;
             DROP TABLE halts;
             DROP TABLE meta;
             ALTER TABLE files DROP COLUMN ctime_ns;
             ALTER TABLE places DROP COLUMN real_cwd;
             INSERT INTO files SELECT '/elsewhere/s-zeta.jsonl', project, dev, ino, size, mtime_ns,
                 offset, head_len, head_hash, skipped_lines FROM files WHERE path LIKE '%s-zeta.jsonl';
             PRAGMA user_version = 3;",
        )
        .unwrap();
        let skipped: i64 = c
            .query_row("SELECT SUM(skipped_lines) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(skipped, 2, "the old ledger's doubled count");
    }
    let out = ok(&env.run(&["ingest"]));
    assert!(
        out.starts_with(&format!(
            "ingested {TRANSCRIPTS} of {TRANSCRIPTS} transcript files ("
        )) && !out.contains("(0 bytes")
            && out.contains(" 1 malformed lines skipped"),
        "{out}"
    );
    assert_fixture_totals(&env.report_json(&[]));
    let out = ok(&env.run(&["ingest"]));
    assert!(
        out.starts_with(&format!("ingested 0 of {TRANSCRIPTS} transcript files")),
        "{out}"
    );
}

/// A call that enforces nothing reads at most 16 MiB of new bytes (smallest
/// files first), so it stays quick whatever a session wrote; the rest is
/// read by the next gated call.
#[test]
fn an_ungated_call_reads_a_bounded_amount() {
    let env = layouts_env();
    ok(&env.run(&["ingest"]));
    let cwd = "/work/clients/acme";
    let big = env.transcript("-work-clients-acme/s-big.jsonl");
    let pad = json!({"type": "user", "sessionId": "s-big", "cwd": cwd,
                     "message": {"content": "x".repeat(1 << 20)}})
    .to_string();
    let mut lines: Vec<String> = vec![pad; 17];
    lines.push(haiku("s-big", cwd, "msg_big", 7_000));
    env.append("-work-clients-acme/s-big.jsonl", &lines);
    let sub = "-work-clients-acme/s-big/subagents/agent-small.jsonl";
    env.append(sub, &[haiku("s-big", cwd, "msg_small", 3_000)]);
    let counted = |id: &str| -> i64 {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.query_row(
            "SELECT COUNT(*) FROM responses WHERE message_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let out = check(&env, &hook("s-big", &big, cwd, "Read"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!((counted("msg_small"), counted("msg_big")), (1, 0));
    ok(&check(&env, &hook("s-big", &big, cwd, "Agent")));
    assert_eq!(counted("msg_big"), 1);
}
