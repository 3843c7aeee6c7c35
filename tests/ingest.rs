//! Incremental ingest on a copy of the hand-checked fixture tree: what is
//! re-read, what is added, and that nothing is counted twice. Expected
//! numbers come from fixtures/README.md (worked out by hand).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;
use serde_json::Value;

/// November totals of the fixture tree (fixtures/README.md).
const TOTAL_MICROS: i64 = 1_142_583;
const TOTAL_MESSAGES: u64 = 23;
const UNATTRIBUTED_MICROS: i64 = 67_000;
/// Transcript files in the tree (tool-results, *.meta.json and the
/// workflow journal are not transcripts).
const TRANSCRIPTS: usize = 11;

const SCRATCH: &str = "-work-scratch-tools/s-scratch-1.jsonl";

fn arm_micros(doc: &Value, name: &str) -> i64 {
    let a = doc["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == name)
        .expect("arm");
    micros(&a["cost_usd"])
}

fn ingest(env: &Env) -> String {
    let out = env.run(&["ingest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new Haiku 4.5 response in the scratch folder (unattributed):
/// 1,000 in x $1 + 1,000 out x $5 = 6,000 micro-dollars.
fn scratch_response(id: &str) -> String {
    assistant(
        "s-scratch-1",
        "/work/scratch/tools",
        id,
        &format!("req_{id}"),
        "2026-11-27T18:00:00.000Z",
        "claude-haiku-4-5-20251001",
        usage(1000, 1000),
    )
}
const SCRATCH_RESPONSE_MICROS: i64 = 6_000;

/// The first run reads every transcript; a second run reads nothing and
/// reports identical totals.
#[test]
fn second_run_rereads_nothing() {
    let env = Env::with_fixtures();
    let first = ingest(&env);
    assert!(
        first.starts_with(&format!(
            "ingested {TRANSCRIPTS} of {TRANSCRIPTS} transcript files"
        )),
        "{first}"
    );
    let a = env.report_json(&[]);
    let second = ingest(&env);
    assert!(
        second.starts_with(&format!(
            "ingested 0 of {TRANSCRIPTS} transcript files (0 bytes, 0 responses"
        )),
        "{second}"
    );
    let b = env.report_json(&[]);
    assert_eq!(a, b);
    assert_eq!(micros(&b["totals"]["cost_usd"]), TOTAL_MICROS);
}

/// Appended lines add only the new spend: a new response is added once, and
/// an appended copy of a response already counted (another content block
/// of msg_web_01, fast Opus 4.6) adds nothing.
#[test]
fn append_adds_only_the_new_spend() {
    let env = Env::with_fixtures();
    assert_eq!(
        micros(&env.report_json(&[])["totals"]["cost_usd"]),
        TOTAL_MICROS
    );
    env.append(SCRATCH, &[scratch_response("msg_scr_new")]);
    let mut dup = serde_json::from_str::<Value>(
        fs::read_to_string(env.transcript("-work-clients-acme-web/s-web-1.jsonl"))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    dup["uuid"] = "a-w1-01-block2".into();
    dup["message"]["content"] = serde_json::json!([{"type": "text", "text": "another block"}]);
    env.append("-work-clients-acme-web/s-web-1.jsonl", &[dup.to_string()]);

    let out = ingest(&env);
    assert!(
        out.starts_with(&format!("ingested 2 of {TRANSCRIPTS} transcript files")),
        "{out}"
    );
    let doc = env.report_json(&[]);
    assert_eq!(
        micros(&doc["unattributed"]["cost_usd"]),
        UNATTRIBUTED_MICROS + SCRATCH_RESPONSE_MICROS
    );
    assert_eq!(arm_micros(&doc, "acme-web"), 320_500);
    assert_eq!(
        micros(&doc["totals"]["cost_usd"]),
        TOTAL_MICROS + SCRATCH_RESPONSE_MICROS
    );
    assert_eq!(doc["totals"]["messages"], TOTAL_MESSAGES + 1);
}

/// The partial last line of s-beta-1.jsonl is neither counted nor skipped
/// as malformed; once the rest of it is written it counts (Haiku 4.5:
/// 10,000 in x $1 + 2,000 out x $5 = 20,000 micro-dollars).
#[test]
fn partial_last_line_counts_once_completed() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    assert_eq!(arm_micros(&doc, "beta"), 183_000);
    assert_eq!(doc["skipped_lines"], 5);
    // Not yet: a second run must not count it either.
    let doc = env.report_json(&[]);
    assert_eq!(arm_micros(&doc, "beta"), 183_000);

    env.append_raw(
        "-work-clients-beta/s-beta-1.jsonl",
        br#"ting"}],"stop_reason":"end_turn","usage":{"input_tokens":10000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2000}},"uuid":"a-b1-03","timestamp":"2026-11-16T10:06:00.000Z"}
"#,
    );
    let doc = env.report_json(&[]);
    assert_eq!(arm_micros(&doc, "beta"), 203_000);
    assert_eq!(doc["skipped_lines"], 5);
    assert_eq!(micros(&doc["totals"]["cost_usd"]), TOTAL_MICROS + 20_000);
    assert_eq!(doc["totals"]["messages"], TOTAL_MESSAGES + 1);
}

/// A file truncated below the point already read is re-read from the start:
/// its new line counts, the lines still in it are not counted twice, and
/// the spend of the lines cut away stays in the ledger.
#[test]
fn truncated_file_is_reread_from_the_start() {
    let env = Env::with_fixtures();
    env.report_json(&[]);
    let path = env.transcript(SCRATCH);
    let old = fs::read_to_string(&path).unwrap();
    let first_two: Vec<&str> = old.lines().take(2).collect();
    let new = format!(
        "{}\n{}\n",
        first_two.join("\n"),
        scratch_response("msg_scr_after_cut")
    );
    assert!(new.len() < old.len(), "the test must shrink the file");
    let ino = fs::metadata(&path).unwrap().ino();
    fs::write(&path, new).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().ino(), ino);

    let doc = env.report_json(&[]);
    assert_eq!(
        micros(&doc["unattributed"]["cost_usd"]),
        UNATTRIBUTED_MICROS + SCRATCH_RESPONSE_MICROS
    );
    assert_eq!(doc["unattributed"]["messages"], 3);
    assert_eq!(doc["skipped_lines"], 5);
}

/// A file rewritten in place (same inode, longer, different first bytes)
/// is re-read from the start: a response written before the old read
/// position counts, and the old ones are not counted twice.
#[test]
fn rewritten_file_is_reread_from_the_start() {
    let env = Env::with_fixtures();
    env.report_json(&[]);
    let path = env.transcript(SCRATCH);
    let old = fs::read_to_string(&path).unwrap();
    let ino = fs::metadata(&path).unwrap().ino();
    fs::write(
        &path,
        format!("{}\n{old}", scratch_response("msg_scr_rewritten")),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        ino,
        "rewritten in place"
    );

    let doc = env.report_json(&[]);
    assert_eq!(
        micros(&doc["unattributed"]["cost_usd"]),
        UNATTRIBUTED_MICROS + SCRATCH_RESPONSE_MICROS
    );
    assert_eq!(doc["unattributed"]["messages"], 3);
    assert_eq!(doc["skipped_lines"], 5);
}

/// A file replaced by another (a new inode, as an editor or Claude Code's
/// rewrite leaves it) is re-read from the start without double counting.
#[test]
fn replaced_file_is_reread_from_the_start() {
    let env = Env::with_fixtures();
    env.report_json(&[]);
    let path = env.transcript(SCRATCH);
    let old = fs::read_to_string(&path).unwrap();
    let ino = fs::metadata(&path).unwrap().ino();
    let tmp = path.with_extension("tmp");
    fs::write(
        &tmp,
        format!("{}\n{old}", scratch_response("msg_scr_replaced")),
    )
    .unwrap();
    fs::rename(&tmp, &path).unwrap();
    assert_ne!(fs::metadata(&path).unwrap().ino(), ino, "a new inode");

    let doc = env.report_json(&[]);
    assert_eq!(
        micros(&doc["unattributed"]["cost_usd"]),
        UNATTRIBUTED_MICROS + SCRATCH_RESPONSE_MICROS
    );
    assert_eq!(doc["unattributed"]["messages"], 3);
    assert_eq!(
        micros(&doc["totals"]["cost_usd"]),
        TOTAL_MICROS + SCRATCH_RESPONSE_MICROS
    );
    assert_eq!(doc["skipped_lines"], 5);
}

/// A transcript deleted after it was read (Claude Code's cleanup) keeps its
/// spend in the ledger, and so does a deleted subagent file.
#[test]
fn deleted_transcript_keeps_its_spend() {
    let env = Env::with_fixtures();
    let before = env.report_json(&[]);
    fs::remove_file(env.transcript(SCRATCH)).unwrap();
    fs::remove_file(env.transcript("-work-clients-acme/s-acme-1/subagents/agent-a1b2c3.jsonl"))
        .unwrap();
    let after = env.report_json(&[]);
    assert_eq!(
        micros(&after["unattributed"]["cost_usd"]),
        UNATTRIBUTED_MICROS
    );
    assert_eq!(arm_micros(&after, "acme"), 532_083);
    assert_eq!(before, after);
    let out = ingest(&env);
    assert!(
        out.starts_with(&format!(
            "ingested 0 of {} transcript files",
            TRANSCRIPTS - 2
        )),
        "{out}"
    );
}

/// Reading the same tree through two config dirs (a symlink to it) or
/// twice in one run counts every response once.
#[test]
fn overlapping_claude_dirs_count_once() {
    let env = Env::with_fixtures();
    let link = env.path().join("claude-link");
    std::os::unix::fs::symlink(&env.claude, &link).unwrap();
    let out = env
        .cmd()
        .args(["report", "--json", "--claude-dir"])
        .arg(&env.claude)
        .arg("--claude-dir")
        .arg(&link)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(micros(&doc["totals"]["cost_usd"]), TOTAL_MICROS);
    assert_eq!(doc["totals"]["messages"], TOTAL_MESSAGES);
}
