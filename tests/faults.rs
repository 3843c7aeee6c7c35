//! The fault harness (issue 6). Each test states the fault it injects, then
//! proves the exact totals afterwards. Expected totals are computed here,
//! from what the test wrote, independently of the program: every response
//! is keyed by (message id, request id), duplicates keep the largest value
//! of each field, and costs come from the list prices (reference/prices.md)
//! in picodollars, chosen so that every response costs whole micro-dollars.
//!
//! Tests run as root in CI, so no fault here relies on permission bits.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Two arms with caps no test reaches; `/x/other` belongs to no arm.
const CONFIG: &str = "\
timezone: UTC
budgets:
  - arm: acme
    path: /x/acme
    monthly_usd_cap: 1000000
  - arm: beta
    path: /x/beta
    monthly_usd_cap: 1000000
";

/// Priced models: (id as transcripts spell it, picodollars per token of
/// input, output, 5-minute cache write, cache read), from prices.md.
const MODELS: [(&str, [i128; 4]); 3] = [
    ("claude-sonnet-4-5-20250929", [3_000_000, 15_000_000, 3_750_000, 300_000]),
    ("claude-haiku-4-5", [1_000_000, 5_000_000, 1_250_000, 100_000]),
    ("claude-opus-4-6", [5_000_000, 25_000_000, 6_250_000, 500_000]),
];

/// Tokens of one response: input, output, cache writes (5-minute), cache reads.
type Tokens = [u64; 4];

/// The expected ledger content, from what a test wrote.
#[derive(Default, Clone)]
struct Expect {
    /// (message id, request id) -> (model index, cwd, tokens merged by max).
    responses: HashMap<(String, String), (usize, String, Tokens)>,
}

impl Expect {
    fn record(&mut self, msg: &str, req: &str, model: usize, cwd: &str, t: Tokens) {
        let e = self.responses.entry((msg.into(), req.into())).or_insert((model, cwd.into(), [0; 4]));
        assert_eq!((e.0, e.1.as_str()), (model, cwd), "a test reused {msg} for another model or cwd");
        for (a, b) in e.2.iter_mut().zip(t) {
            *a = (*a).max(b);
        }
    }

    /// Totals over the responses whose cwd satisfies `keep`.
    fn totals_where(&self, keep: impl Fn(&str) -> bool) -> Totals {
        let mut t = Totals::default();
        let mut picos: i128 = 0;
        for (model, cwd, tok) in self.responses.values() {
            if !keep(cwd) {
                continue;
            }
            let rates = MODELS[*model].1;
            picos += tok.iter().zip(rates).map(|(n, r)| *n as i128 * r).sum::<i128>();
            t.messages += 1;
            t.input += tok[0];
            t.output += tok[1];
            t.cache_write_5m += tok[2];
            t.cache_read += tok[3];
        }
        assert_eq!(picos % 1_000_000, 0, "test data must cost whole micro-dollars");
        t.cost_micros = i64::try_from(picos / 1_000_000).unwrap();
        t
    }

    fn totals(&self) -> Totals {
        self.totals_where(|_| true)
    }
}

/// Random tokens that cost whole micro-dollars at every model of
/// [`MODELS`] (cache writes in fours, reads in tens) and keep the prompt
/// under 100k tokens (no long-context tier).
fn random_tokens(rng: &mut Lcg) -> Tokens {
    [rng.range(1, 20_000), rng.range(10, 4_000), rng.range(0, 5_000) * 4, rng.range(0, 7_000) * 10]
}

fn usage_json(t: Tokens) -> Value {
    json!({"input_tokens": t[0], "output_tokens": t[1], "cache_creation_input_tokens": t[2],
           "cache_read_input_tokens": t[3], "service_tier": "standard"})
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An assistant line with `pad` bytes of text content.
#[allow(clippy::too_many_arguments)]
fn assistant_line(session: &str, cwd: &str, msg: &str, req: &str, ts_ms: i64, model: usize, t: Tokens, pad: usize) -> String {
    json!({
        "parentUuid": null, "isSidechain": false, "type": "assistant", "cwd": cwd, "sessionId": session,
        "version": "2.1.90", "requestId": req, "timestamp": ts(ts_ms), "uuid": format!("u-{msg}-{pad}"),
        "message": {"id": msg, "type": "message", "role": "assistant", "model": MODELS[model].0,
                    "content": [{"type": "text", "text": "x".repeat(pad)}], "usage": usage_json(t)}
    })
    .to_string()
}

/// 2026-10-01T00:00:00Z.
const OCT_1: i64 = 1_790_812_800_000;

/// One generated response written as Claude Code writes it: sometimes an
/// early streaming snapshot with a placeholder `output_tokens: 3`, then
/// one line per content block carrying the same final usage.
#[allow(clippy::too_many_arguments)]
fn response_lines(rng: &mut Lcg, out: &mut Vec<String>, expect: &mut Expect, session: &str, cwd: &str, msg: &str, req: &str, ts_ms: i64, pad: (u64, u64)) {
    let model = rng.range(0, MODELS.len() as u64) as usize;
    let t = random_tokens(rng);
    if rng.chance(25) {
        let snap = [t[0], 3, t[2], t[3]];
        out.push(assistant_line(session, cwd, msg, req, ts_ms, model, snap, rng.range(pad.0, pad.1) as usize));
    }
    for _ in 0..rng.range(1, 3) {
        out.push(assistant_line(session, cwd, msg, req, ts_ms, model, t, rng.range(pad.0, pad.1) as usize));
    }
    expect.record(msg, req, model, cwd, t);
}

/// A generated profile: transcript files (relative to `projects/`) and
/// what they must add up to.
struct Corpus {
    files: Vec<(String, Vec<String>)>,
    expect: Expect,
}

impl Corpus {
    /// `n_files` sessions over three projects; about a third of them start
    /// by replaying a prefix of an earlier session of the same project
    /// verbatim (a resumed session), so duplicates span files.
    fn generate(seed: u64, n_files: usize, responses: (u64, u64), pad: (u64, u64)) -> Corpus {
        let mut rng = Lcg::new(seed);
        let projects = [("-x-acme", "/x/acme"), ("-x-beta", "/x/beta"), ("-x-other", "/x/other")];
        let mut files: Vec<(String, Vec<String>)> = Vec::new();
        let mut expect = Expect::default();
        for i in 0..n_files {
            let p = i % projects.len();
            let (project, cwd) = projects[p];
            let session = format!("s{seed}-{i:04}");
            let mut lines = Vec::new();
            if i >= projects.len() && rng.chance(33) {
                let j = p + projects.len() * rng.range(0, (i / projects.len()) as u64) as usize;
                let earlier = &files[j].1;
                let k = rng.range(1, earlier.len() as u64 + 1) as usize;
                lines.extend(earlier[..k].iter().cloned());
            }
            let base = OCT_1 + i as i64 * 2 * 3_600_000;
            for r in 0..rng.range(responses.0, responses.1) {
                lines.push(json!({"type": "user", "cwd": cwd, "sessionId": session, "timestamp": ts(base + r as i64 * 7_000),
                                  "message": {"role": "user", "content": "y".repeat(rng.range(pad.0, pad.1) as usize)}})
                .to_string());
                let (msg, req) = (format!("msg_{seed}_{i}_{r}"), format!("req_{seed}_{i}_{r}"));
                response_lines(&mut rng, &mut lines, &mut expect, &session, cwd, &msg, &req, base + r as i64 * 7_000 + 3_000, pad);
            }
            files.push((format!("{project}/{session}.jsonl"), lines));
        }
        Corpus { files, expect }
    }

    /// Writes a growing part of each file: `shown[i]` whole lines so far,
    /// plus `partial[i]` bytes of the next line (a line being written).
    /// `fraction_pct` of what is not yet shown is added, with a partial
    /// line left at the end of some files; 100 writes everything.
    fn reveal(&self, env: &Env, rng: &mut Lcg, shown: &mut [usize], partial: &mut [usize], fraction_pct: u64) {
        for (i, (rel, lines)) in self.files.iter().enumerate() {
            let remaining = lines.len() - shown[i];
            let add = if fraction_pct >= 100 { remaining } else { (remaining as u64 * rng.range(0, fraction_pct + 1) / 100) as usize };
            let mut bytes = Vec::new();
            for l in &lines[shown[i]..shown[i] + add] {
                bytes.extend_from_slice(&l.as_bytes()[partial[i]..]);
                bytes.push(b'\n');
                partial[i] = 0;
            }
            shown[i] += add;
            if shown[i] < lines.len() && fraction_pct < 100 && rng.chance(30) {
                let next = lines[shown[i]].as_bytes();
                let cut = rng.range(partial[i] as u64, next.len() as u64) as usize;
                bytes.extend_from_slice(&next[partial[i]..cut]);
                partial[i] = cut;
            }
            env.append_raw(rel, &bytes);
        }
    }

    fn write(&self, env: &Env) -> u64 {
        let mut bytes = 0;
        for (rel, lines) in &self.files {
            let mut text = lines.join("\n");
            text.push('\n');
            bytes += text.len() as u64;
            fs::write(env.transcript(rel), text).unwrap();
        }
        bytes
    }
}

/// `report --json` (period `all`) on `ledger`, with its exit status checked.
fn report_on(env: &Env, ledger: &Path, extra: &[&str]) -> Value {
    let out = env.cmd_with_ledger(ledger).args(["report", "--json", "--period", "all"]).args(extra).output().unwrap();
    assert!(out.status.success(), "report failed ({:?}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("report --json is JSON")
}

/// The report of what the ledger holds, without reading any transcript:
/// `--claude-dir` points at an empty folder.
fn ledger_only_report(env: &Env, ledger: &Path) -> Value {
    let empty = env.path().join("no-transcripts");
    fs::create_dir_all(&empty).unwrap();
    report_on(env, ledger, &["--claude-dir", empty.to_str().unwrap()])
}

fn arm<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["arms"].as_array().unwrap().iter().find(|a| a["arm"] == name).unwrap_or_else(|| panic!("arm {name} in {report}"))
}

/// Asserts that a report's total, arms and unattributed rows are exactly
/// what `expect` says.
fn assert_report_is(report: &Value, expect: &Expect) {
    assert_eq!(Totals::of(&report["totals"]), expect.totals(), "totals");
    assert_eq!(Totals::of(arm(report, "acme")), expect.totals_where(|c| c == "/x/acme"), "arm acme");
    assert_eq!(Totals::of(arm(report, "beta")), expect.totals_where(|c| c == "/x/beta"), "arm beta");
    assert_eq!(Totals::of(&report["unattributed"]), expect.totals_where(|c| c == "/x/other"), "unattributed");
}

/// Reads the ledger directly and checks that it is internally consistent:
/// the rollup holds exactly the sums of the counted responses, and no file
/// offset points past the end of its transcript.
fn assert_ledger_consistent(ledger: &Path) {
    if !ledger.exists() {
        return;
    }
    let conn = rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    if version == 0 {
        return; // killed before the schema was committed
    }
    let sums = |sql: &str| -> [i64; 7] {
        conn.query_row(sql, [], |r| {
            let mut a = [0i64; 7];
            for (i, v) in a.iter_mut().enumerate() {
                *v = r.get(i)?;
            }
            Ok(a)
        })
        .unwrap()
    };
    let responses = sums(
        "SELECT COALESCE(SUM(NOT advisor), 0), COALESCE(SUM(input), 0), COALESCE(SUM(output), 0), COALESCE(SUM(cache_write_5m), 0),
                COALESCE(SUM(cache_write_1h), 0), COALESCE(SUM(cache_read), 0), COALESCE(SUM(web_search), 0)
         FROM responses WHERE counted",
    );
    let rollup = sums(
        "SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(input), 0), COALESCE(SUM(output), 0), COALESCE(SUM(cache_write_5m), 0),
                COALESCE(SUM(cache_write_1h), 0), COALESCE(SUM(cache_read), 0), COALESCE(SUM(web_search), 0)
         FROM rollup",
    );
    assert_eq!(responses, rollup, "rollup out of step with responses in {}", ledger.display());
    let mut st = conn.prepare("SELECT path, offset FROM files").unwrap();
    let rows: Vec<(String, i64)> = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    for (path, offset) in rows {
        if let Ok(md) = fs::metadata(&path) {
            assert!(offset as u64 <= md.len(), "{path}: offset {offset} past the end ({})", md.len());
        }
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---- SIGKILL during a large ingest ------------------------------------------

/// Fault: the process is killed with SIGKILL (no destructors, no rollback
/// by the program) at varied points of a large cold ingest, ten times on
/// the same ledger. After every kill the ledger is consistent; the next
/// full run reaches exactly the totals of a clean run on a fresh ledger,
/// which are exactly the totals of the generated data.
#[test]
fn sigkill_during_large_ingest_then_exact_totals() {
    let env = Env::new();
    env.write_config(CONFIG);
    let corpus = Corpus::generate(1, 240, (70, 200), (10, 150));
    let bytes = corpus.write(&env);
    eprintln!("generated {} files, {bytes} bytes, {} responses", corpus.files.len(), corpus.expect.responses.len());

    // The clean run first, on a fresh ledger, over all the data. How long
    // it takes spreads the kills below over every phase of an ingest
    // (planning, parsing, writing, committing).
    let fresh = env.path().join("fresh.sqlite");
    let started = std::time::Instant::now();
    let clean = report_on(&env, &fresh, &[]);
    let clean_ms = (started.elapsed().as_millis() as u64).max(50);
    assert_report_is(&clean, &corpus.expect);
    assert_eq!(clean["skipped_lines"], 0);

    // The killed runs see the same data arrive in steps, as Claude Code
    // writes it: about half at first, more (with lines cut in the middle)
    // after each kill, so that every run has work to be killed in.
    let projects = env.claude.join("projects");
    fs::remove_dir_all(&projects).unwrap();
    fs::create_dir_all(&projects).unwrap();
    let mut rng = Lcg::new(42);
    let n = corpus.files.len();
    let (mut shown, mut partial) = (vec![0; n], vec![0; n]);
    corpus.reveal(&env, &mut rng, &mut shown, &mut partial, 90);
    let mut interrupted = 0;
    for round in 0..10 {
        let delay = rng.range(10, clean_ms);
        let mut child: Child = env
            .std_cmd()
            .args(["ingest", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL on Unix
        let out = child.wait_with_output().unwrap();
        match out.status.signal() {
            Some(9) => interrupted += 1,
            _ => assert!(out.status.success(), "round {round}: ingest failed ({:?}): {}", out.status, stderr_of(&out)),
        }
        assert_ledger_consistent(&env.ledger);
        corpus.reveal(&env, &mut rng, &mut shown, &mut partial, if round == 9 { 100 } else { 40 });
    }
    eprintln!("clean run {clean_ms} ms; {interrupted} of 10 ingests were killed before they finished");

    let recovered = report_on(&env, &env.ledger, &[]);
    assert_eq!(Totals::of(&recovered["totals"]), Totals::of(&clean["totals"]));
    assert_report_is(&recovered, &corpus.expect);
    assert_eq!(recovered["skipped_lines"], 0);
    assert_ledger_consistent(&env.ledger);
}
