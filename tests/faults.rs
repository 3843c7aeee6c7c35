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
    (
        "claude-sonnet-4-5-20250929",
        [3_000_000, 15_000_000, 3_750_000, 300_000],
    ),
    (
        "claude-haiku-4-5",
        [1_000_000, 5_000_000, 1_250_000, 100_000],
    ),
    (
        "claude-opus-4-6",
        [5_000_000, 25_000_000, 6_250_000, 500_000],
    ),
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
        let e =
            self.responses
                .entry((msg.into(), req.into()))
                .or_insert((model, cwd.into(), [0; 4]));
        assert_eq!(
            (e.0, e.1.as_str()),
            (model, cwd),
            "a test reused {msg} for another model or cwd"
        );
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
            picos += tok
                .iter()
                .zip(rates)
                .map(|(n, r)| *n as i128 * r)
                .sum::<i128>();
            t.messages += 1;
            t.input += tok[0];
            t.output += tok[1];
            t.cache_write_5m += tok[2];
            t.cache_read += tok[3];
        }
        assert_eq!(
            picos % 1_000_000,
            0,
            "test data must cost whole micro-dollars"
        );
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
    [
        rng.range(1, 20_000),
        rng.range(10, 4_000),
        rng.range(0, 5_000) * 4,
        rng.range(0, 7_000) * 10,
    ]
}

fn usage_json(t: Tokens) -> Value {
    json!({"input_tokens": t[0], "output_tokens": t[1], "cache_creation_input_tokens": t[2],
           "cache_read_input_tokens": t[3], "service_tier": "standard"})
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An assistant line with `pad` bytes of text content.
#[allow(clippy::too_many_arguments)]
fn assistant_line(
    session: &str,
    cwd: &str,
    msg: &str,
    req: &str,
    ts_ms: i64,
    model: usize,
    t: Tokens,
    pad: usize,
) -> String {
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
fn response_lines(
    rng: &mut Lcg,
    out: &mut Vec<String>,
    expect: &mut Expect,
    session: &str,
    cwd: &str,
    msg: &str,
    req: &str,
    ts_ms: i64,
    pad: (u64, u64),
) {
    let model = rng.range(0, MODELS.len() as u64) as usize;
    let t = random_tokens(rng);
    if rng.chance(25) {
        let snap = [t[0], 3, t[2], t[3]];
        out.push(assistant_line(
            session,
            cwd,
            msg,
            req,
            ts_ms,
            model,
            snap,
            rng.range(pad.0, pad.1) as usize,
        ));
    }
    for _ in 0..rng.range(1, 3) {
        out.push(assistant_line(
            session,
            cwd,
            msg,
            req,
            ts_ms,
            model,
            t,
            rng.range(pad.0, pad.1) as usize,
        ));
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
        let projects = [
            ("-x-acme", "/x/acme"),
            ("-x-beta", "/x/beta"),
            ("-x-other", "/x/other"),
        ];
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
                lines.push(
                    json!({"type": "user", "cwd": cwd, "sessionId": session, "timestamp": ts(base + r as i64 * 7_000),
                                  "message": {"role": "user", "content": "y".repeat(rng.range(pad.0, pad.1) as usize)}})
                    .to_string(),
                );
                let (msg, req) = (format!("msg_{seed}_{i}_{r}"), format!("req_{seed}_{i}_{r}"));
                response_lines(
                    &mut rng,
                    &mut lines,
                    &mut expect,
                    &session,
                    cwd,
                    &msg,
                    &req,
                    base + r as i64 * 7_000 + 3_000,
                    pad,
                );
            }
            files.push((format!("{project}/{session}.jsonl"), lines));
        }
        Corpus { files, expect }
    }

    /// Writes a growing part of each file: `shown[i]` whole lines so far,
    /// plus `partial[i]` bytes of the next line (a line being written).
    /// `fraction_pct` of what is not yet shown is added, with a partial
    /// line left at the end of some files; 100 writes everything.
    fn reveal(
        &self,
        env: &Env,
        rng: &mut Lcg,
        shown: &mut [usize],
        partial: &mut [usize],
        fraction_pct: u64,
    ) {
        for (i, (rel, lines)) in self.files.iter().enumerate() {
            let remaining = lines.len() - shown[i];
            let add = if fraction_pct >= 100 {
                remaining
            } else {
                (remaining as u64 * rng.range(0, fraction_pct + 1) / 100) as usize
            };
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
    let out = env
        .cmd_with_ledger(ledger)
        .args(["report", "--json", "--period", "all"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
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
    report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == name)
        .unwrap_or_else(|| panic!("arm {name} in {report}"))
}

/// Asserts that a report's total, arms and unattributed rows are exactly
/// what `expect` says.
fn assert_report_is(report: &Value, expect: &Expect) {
    assert_eq!(Totals::of(&report["totals"]), expect.totals(), "totals");
    assert_eq!(
        Totals::of(arm(report, "acme")),
        expect.totals_where(|c| c == "/x/acme"),
        "arm acme"
    );
    assert_eq!(
        Totals::of(arm(report, "beta")),
        expect.totals_where(|c| c == "/x/beta"),
        "arm beta"
    );
    assert_eq!(
        Totals::of(&report["unattributed"]),
        expect.totals_where(|c| c == "/x/other"),
        "unattributed"
    );
}

/// Reads the ledger directly and checks that it is internally consistent:
/// the rollup holds exactly the sums of the counted responses, and no file
/// offset points past the end of its transcript.
fn assert_ledger_consistent(ledger: &Path) {
    if !ledger.exists() {
        return;
    }
    // Read-write (never created): a ledger whose writer was killed needs its
    // WAL recovered, which a read-only connection may refuse to do.
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
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
    assert_eq!(
        responses,
        rollup,
        "rollup out of step with responses in {}",
        ledger.display()
    );
    let mut st = conn.prepare("SELECT path, offset FROM files").unwrap();
    let rows: Vec<(String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (path, offset) in rows {
        if let Ok(md) = fs::metadata(&path) {
            assert!(
                offset as u64 <= md.len(),
                "{path}: offset {offset} past the end ({})",
                md.len()
            );
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
    eprintln!(
        "generated {} files, {bytes} bytes, {} responses",
        corpus.files.len(),
        corpus.expect.responses.len()
    );

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
        interrupted += usize::from(ingest_killed_after(
            env.std_cmd(),
            delay,
            &format!("round {round}"),
        ));
        assert_ledger_consistent(&env.ledger);
        corpus.reveal(
            &env,
            &mut rng,
            &mut shown,
            &mut partial,
            if round == 9 { 100 } else { 40 },
        );
    }
    eprintln!(
        "clean run {clean_ms} ms; {interrupted} of 10 ingests were killed before they finished"
    );

    let recovered = report_on(&env, &env.ledger, &[]);
    assert_eq!(
        Totals::of(&recovered["totals"]),
        Totals::of(&clean["totals"])
    );
    assert_report_is(&recovered, &corpus.expect);
    assert_eq!(recovered["skipped_lines"], 0);
    assert_ledger_consistent(&env.ledger);
}

// ---- A first load into an empty ledger ---------------------------------------

/// The ledger's journal mode, and whether a rollback journal is left
/// beside it (read without recovering anything: no connection opened).
fn journal_state(ledger: &Path) -> (String, bool) {
    let mut journal = ledger.as_os_str().to_owned();
    journal.push("-journal");
    let left = Path::new(&journal).exists();
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    (mode, left)
}

/// An empty ledger (schema written, nothing read): a report that finds no
/// transcripts.
fn empty_ledger(env: &Env, ledger: &Path) {
    let none = ledger_only_report(env, ledger);
    assert_eq!(Totals::of(&none["totals"]).messages, 0);
}

/// Fault: SIGKILL at varied points of a first load into an empty ledger
/// (written through a rollback journal instead of the WAL: see
/// `ingest::RollbackJournal`). Whatever the moment, the ledger the next
/// process opens is either still empty or holds the whole load, never a
/// part of it, and is consistent; that process puts it back in WAL mode and
/// reaches the exact totals.
#[test]
fn sigkill_during_a_first_load_leaves_it_empty_or_whole() {
    let env = Env::new();
    env.write_config(CONFIG);
    // Large enough (several MiB, many files) to be read in parallel as a
    // first load.
    let corpus = Corpus::generate(5, 120, (60, 120), (200, 900));
    let bytes = corpus.write(&env);
    assert!(bytes > 6 << 20, "{bytes} bytes");
    let clean_ledger = env.path().join("clean.sqlite");
    empty_ledger(&env, &clean_ledger);
    let started = std::time::Instant::now();
    let clean = report_on(&env, &clean_ledger, &[]);
    let clean_ms = (started.elapsed().as_millis() as u64).max(50);
    assert_report_is(&clean, &corpus.expect);
    assert_eq!(journal_state(&clean_ledger), ("wal".to_owned(), false));

    let mut rng = Lcg::new(77);
    let (mut killed, mut hot) = (0, 0);
    for round in 0..8 {
        let ledger = env.path().join(format!("round{round}.sqlite"));
        empty_ledger(&env, &ledger);
        let delay = rng.range(5, clean_ms + 20);
        killed += usize::from(ingest_killed_after(
            env.std_cmd_with_ledger(&ledger),
            delay,
            &format!("round {round}"),
        ));
        let mut journal = ledger.as_os_str().to_owned();
        journal.push("-journal");
        hot += usize::from(Path::new(&journal).exists());
        // What the program finds, before any transcript is read: nothing
        // or everything.
        let found = Totals::of(&ledger_only_report(&env, &ledger)["totals"]);
        assert!(
            found.messages == 0 || found == corpus.expect.totals(),
            "round {round}: a part of the first load survived: {found:?}"
        );
        assert_eq!(
            journal_state(&ledger),
            ("wal".to_owned(), false),
            "round {round}"
        );
        assert_ledger_consistent(&ledger);
        let after = report_on(&env, &ledger, &[]);
        assert_report_is(&after, &corpus.expect);
        assert_eq!(after["skipped_lines"], 0);
        assert_ledger_consistent(&ledger);
    }
    eprintln!(
        "clean first load {clean_ms} ms; {killed} of 8 killed, {hot} left a rollback journal"
    );
}

/// The config plus an arm `over` with a $1 hard cap, and a transcript of
/// one response past it ($2.50 of claude-opus-4-6 output), recorded in
/// Runs `ingest --quiet` with `cmd` and kills it (SIGKILL) after `delay_ms`.
/// True when the kill landed; an ingest that finished first must have
/// succeeded.
fn ingest_killed_after(mut cmd: std::process::Command, delay_ms: u64, what: &str) -> bool {
    let mut child = cmd
        .args(["ingest", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(delay_ms));
    child.kill().unwrap(); // SIGKILL on Unix
    let out = child.wait_with_output().unwrap();
    match out.status.signal() {
        Some(9) => true,
        _ => {
            assert!(
                out.status.success(),
                "{what}: ingest failed ({:?}): {}",
                out.status,
                stderr_of(&out)
            );
            false
        }
    }
}

/// `expect`; returns the transcript's path.
fn with_an_arm_over_its_hard_cap(env: &Env, expect: &mut Expect) -> PathBuf {
    env.write_config(&format!(
        "{CONFIG}  - arm: over\n    path: /x/over\n    monthly_usd_cap: 1\n    action_on_breach: hard_stop\n"
    ));
    let over = env.transcript("-x-over/o1.jsonl");
    let t = [0, 100_000, 0, 0]; // $2.50 of claude-opus-4-6 output: past the $1 cap
    write_lines(
        &over,
        &[assistant_line(
            "o1",
            "/x/over",
            "msg_o_0",
            "req_o_0",
            OCT_1 + 3_600_000 * 24 * 40,
            2,
            t,
            20,
        )],
    );
    expect.record("msg_o_0", "req_o_0", 2, "/x/over", t);
    over
}

/// A first load while other processes have the ledger open: a connection
/// that holds it open keeps it in WAL mode (the load cannot leave WAL mode
/// and does not wait to), and gated checks that arrive during the load
/// never let a call through that the caps forbid: each either refuses
/// because it cannot decide yet or decides on the whole load. The totals
/// are exact either way, and the ledger ends in WAL mode.
#[test]
fn a_first_load_beside_other_processes() {
    let env = Env::new();
    let mut corpus = Corpus::generate(6, 90, (60, 120), (200, 900));
    let over = with_an_arm_over_its_hard_cap(&env, &mut corpus.expect);
    corpus.write(&env);

    // Held open by another connection: the load runs in WAL mode.
    let held = env.path().join("held.sqlite");
    empty_ledger(&env, &held);
    let other = rusqlite::Connection::open(&held).unwrap();
    let _: i64 = other
        .query_row("SELECT count(*) FROM responses", [], |r| r.get(0))
        .unwrap();
    assert_report_is(&report_on(&env, &held, &[]), &corpus.expect);
    let mode: String = other
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(other);
    assert_ledger_consistent(&held);

    // Gated checks while a first load runs on the ledger they read.
    empty_ledger(&env, &env.ledger);
    let load = env
        .std_cmd()
        .args(["report", "--json", "--period", "all"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut checks = Vec::new();
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(20 * i));
        checks.push(spawn_check(&env, None, Some(&hook_input("o1", &over, "/x/over"))).0);
    }
    let out = common::output_within(load, HANG, "the first load");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_report_is(&first, &corpus.expect);
    let mut decided = 0;
    for (i, c) in checks.into_iter().enumerate() {
        let (out, _) = finish_or_fail(c, &format!("check {i} during the first load"));
        let err = stderr_of(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "check {i} let a call through: {err}"
        );
        if !err.contains("cannot check the budget") {
            assert!(err.contains("over"), "check {i}: {err}");
            decided += 1;
        }
    }
    eprintln!("{decided} of 6 checks decided on the loaded ledger, the others refused");
    assert_eq!(journal_state(&env.ledger), ("wal".to_owned(), false));
    assert_ledger_consistent(&env.ledger);
    assert_report_is(&env.report_json(&["--period", "all"]), &corpus.expect);
}

/// A schema 9 ledger (its responses found by the index of the two ids)
/// upgrades to 10 (found by a hash of the message id, computed for every
/// row it holds): read again from the start, every file's responses,
/// duplicates across files included, merge into the rows already there,
/// each (message, request) once, so the totals stay exact.
#[test]
fn a_schema_9_ledger_finds_its_responses_by_hash_after_upgrade() {
    let env = Env::new();
    env.write_config(CONFIG);
    let corpus = Corpus::generate(9, 24, (10, 30), (10, 60));
    corpus.write(&env);
    assert_report_is(&report_on(&env, &env.ledger, &[]), &corpus.expect);
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.execute_batch(
            "DROP INDEX responses_message; ALTER TABLE responses DROP COLUMN message_hash;
             CREATE UNIQUE INDEX responses_key ON responses (message_id, request_id);
             UPDATE files SET size = -1, offset = 0, head_len = 0, head_hash = 0;
             DROP TABLE config_cache;
             PRAGMA user_version = 9;",
        )
        .unwrap();
    }
    let again = report_on(&env, &env.ledger, &[]);
    assert_report_is(&again, &corpus.expect);
    let c = rusqlite::Connection::open(&env.ledger).unwrap();
    let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        one("PRAGMA user_version"),
        octo_budget::ledger::schema::VERSION
    );
    assert_eq!(
        one("SELECT count(*) FROM responses"),
        corpus.expect.responses.len() as i64
    );
    assert_eq!(
        one("SELECT count(*) FROM responses WHERE message_hash = 0"),
        0,
        "every row has its hash"
    );
    assert_eq!(
        one("SELECT count(*) FROM sqlite_master WHERE name IN ('responses_key', 'responses_message')"),
        1
    );
    assert_ledger_consistent(&env.ledger);
}

// ---- Helpers for the smaller tests ------------------------------------------

/// The hook's stdin for a gated tool call (`Agent`) in `cwd`.
fn hook_input(session: &str, transcript: &Path, cwd: &str) -> String {
    json!({"session_id": session, "transcript_path": transcript, "cwd": cwd, "permission_mode": "default",
           "hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_input": {"prompt": "go"},
           "tool_use_id": "toolu_1"})
    .to_string()
}

/// Writes `lines` (each with a newline) as the whole content of `path`.
fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// `n` responses of one session in `cwd`, as lines, recorded in `expect`.
fn session_lines(
    rng: &mut Lcg,
    expect: &mut Expect,
    session: &str,
    cwd: &str,
    ids: std::ops::Range<u64>,
    pad: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    for r in ids {
        let (msg, req) = (format!("msg_{session}_{r}"), format!("req_{session}_{r}"));
        let model = rng.range(0, MODELS.len() as u64) as usize;
        let t = random_tokens(rng);
        lines.push(assistant_line(
            session,
            cwd,
            &msg,
            &req,
            OCT_1 + r as i64 * 60_000,
            model,
            t,
            pad,
        ));
        expect.record(&msg, &req, model, cwd, t);
    }
    lines
}

/// Asserts the ledger refuses to work, clearly and without damage:
/// `report` and `ingest` exit 4 with one line on stderr that contains
/// `says`, and `check` blocks (exit 2) with a reason that contains it too.
fn assert_ledger_refused(env: &Env, ledger: &Path, hook: &str, says: &str) {
    for cmd in [&["report", "--json"][..], &["ingest", "--quiet"][..]] {
        let out = env.cmd_with_ledger(ledger).args(cmd).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(4), "{cmd:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{cmd:?}: one line, got {err:?}"
        );
        assert!(
            err.contains(says) && err.contains("ledger"),
            "{cmd:?}: {err:?} should say {says:?}"
        );
        assert!(out.stdout.is_empty(), "{cmd:?}: nothing on stdout");
    }
    let out = env
        .cmd_with_ledger(ledger)
        .arg("check")
        .write_stdin(hook.to_owned())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "check must block: {err}");
    assert!(
        err.contains("cannot check the budget") && err.contains(says),
        "check's reason: {err:?}"
    );
}

// ---- Ledger faults -------------------------------------------------------------

/// Fault: the ledger path holds a file that is not SQLite (say, a config
/// file moved to the wrong place). Every command refuses with a clear
/// error, check blocks, and the file is left exactly as it was.
#[test]
fn ledger_that_is_not_sqlite_is_refused_and_left_alone() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut expect = Expect::default();
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(&mut Lcg::new(3), &mut expect, "s1", "/x/acme", 0..5, 40),
    );
    let junk = "this is not a database, it is someone's notes\n".repeat(200);
    fs::write(&env.ledger, &junk).unwrap();
    assert_ledger_refused(
        &env,
        &env.ledger,
        &hook_input("s1", &t, "/x/acme"),
        "not a SQLite database",
    );
    assert_eq!(
        fs::read_to_string(&env.ledger).unwrap(),
        junk,
        "the foreign file was changed"
    );
    // Moved away, a fresh ledger reaches the exact totals.
    fs::rename(&env.ledger, env.path().join("notes.txt")).unwrap();
    assert_report_is(&report_on(&env, &env.ledger, &[]), &expect);
}

/// Fault: the ledger was written by a newer octo-budget (schema version
/// 99). This binary must not read it with its older idea of the tables,
/// nor migrate it "back": it refuses, check blocks, and the ledger keeps
/// its version and rows.
#[test]
fn ledger_with_a_newer_schema_is_refused() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(4);
    let mut expect = Expect::default();
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(&mut rng, &mut expect, "s1", "/x/acme", 0..5, 40),
    );
    assert_report_is(&env.report_json(&["--period", "all"]), &expect);
    let count = |p: &Path| -> (i64, i64) {
        let c = rusqlite::Connection::open(p).unwrap();
        let v = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        (
            v,
            c.query_row("SELECT COUNT(*) FROM responses", [], |r| r.get(0))
                .unwrap(),
        )
    };
    rusqlite::Connection::open(&env.ledger)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    // New lines are waiting: a run that wrote them would change the ledger.
    fs::OpenOptions::new()
        .append(true)
        .open(&t)
        .unwrap()
        .write_all(
            format!(
                "{}\n",
                session_lines(&mut rng, &mut Expect::default(), "s1", "/x/acme", 5..6, 40)[0]
            )
            .as_bytes(),
        )
        .unwrap();
    assert_ledger_refused(&env, &env.ledger, &hook_input("s1", &t, "/x/acme"), "newer");
    assert_eq!(count(&env.ledger), (99, 5));
}

/// Fault: `--ledger` names another program's SQLite database (issue 15,
/// item 20). It is refused (exit 4, check blocks) without a table being
/// added or a byte changed, and the message does not repeat its schema.
/// Databases that say they are someone else's (their own application id,
/// or our schema number over other tables) are refused too; an empty file
/// becomes a ledger.
#[test]
fn foreign_sqlite_database_is_refused_untouched() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut expect = Expect::default();
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(&mut Lcg::new(6), &mut expect, "s1", "/x/acme", 0..3, 40),
    );
    let hook = hook_input("s1", &t, "/x/acme");
    let foreign = [
        "CREATE TABLE customer_secrets (name TEXT, card TEXT); INSERT INTO customer_secrets VALUES ('ann', '4111');",
        "PRAGMA application_id = 1234; PRAGMA user_version = 3; CREATE TABLE files (a);",
        "PRAGMA user_version = 3; CREATE TABLE files (a); CREATE TABLE responses (b);",
    ];
    for (i, sql) in foreign.iter().enumerate() {
        let db = env.path().join(format!("app{i}.db"));
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let before = fs::read(&db).unwrap();
        assert_ledger_refused(&env, &db, &hook, "not an octo-budget ledger");
        let out = env.cmd_with_ledger(&db).arg("report").output().unwrap();
        let err = stderr_of(&out);
        assert!(err.contains(&db.display().to_string()), "{err}");
        for word in ["customer_secrets", "card", "CREATE"] {
            assert!(!err.contains(word), "schema in the message: {err}");
        }
        assert_eq!(fs::read(&db).unwrap(), before, "{sql}: the file changed");
        let mut names: Vec<String> = fs::read_dir(env.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("app{i}.db")))
            .collect();
        names.sort();
        assert_eq!(names, [format!("app{i}.db")], "no -wal/-shm/-journal left");
    }
    // An empty file (say, made by `touch`) is a new ledger.
    let empty = env.path().join("empty.sqlite");
    fs::write(&empty, "").unwrap();
    assert_report_is(&report_on(&env, &empty, &[]), &expect);
}

/// Fault: a ledger written before ledgers were marked (no application id)
/// is still recognised by its tables, and marked as octo-budget's when it
/// is next opened; its schema version does not change.
#[test]
fn ledger_from_before_the_mark_is_recognised_and_marked() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut expect = Expect::default();
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(&mut Lcg::new(7), &mut expect, "s1", "/x/acme", 0..4, 40),
    );
    assert_report_is(&env.report_json(&["--period", "all"]), &expect);
    let ids = |p: &Path| -> (i64, i64) {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row(
                "SELECT user_version, application_id FROM pragma_user_version, pragma_application_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let (version, app) = ids(&env.ledger);
    assert_eq!(app, 0x4F43_5442, "a new ledger is marked");
    // As a ledger from before the mark is.
    rusqlite::Connection::open(&env.ledger)
        .unwrap()
        .execute_batch("PRAGMA application_id = 0")
        .unwrap();
    assert_report_is(&env.report_json(&["--period", "all"]), &expect);
    assert_eq!(ids(&env.ledger), (version, 0x4F43_5442));
}

/// Fault: another program (here a plain SQLite connection, not an
/// octo-budget) holds the ledger's write lock past check's wait (issue 15,
/// item 25). The refusal names the ledger and blames no one in particular.
#[test]
fn busy_ledger_message_is_neutral_and_names_the_ledger() {
    let env = Env::new();
    env.write_config(CONFIG);
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(
            &mut Lcg::new(8),
            &mut Expect::default(),
            "s1",
            "/x/acme",
            0..2,
            40,
        ),
    );
    env.cmd().args(["ingest", "--quiet"]).assert().success();
    write_lines(
        &t,
        &session_lines(
            &mut Lcg::new(8),
            &mut Expect::default(),
            "s1",
            "/x/acme",
            0..3,
            40,
        ),
    );
    let holder = rusqlite::Connection::open(&env.ledger).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM notices;")
        .unwrap();
    let out = env
        .cmd()
        .arg("check")
        .write_stdin(hook_input("s1", &t, "/x/acme"))
        .output()
        .unwrap();
    holder.execute_batch("ROLLBACK").unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "ledger {}: busy (another process held its lock for longer than",
            env.ledger.display()
        )),
        "{err}"
    );
    assert!(!err.contains("another octo-budget"), "{err}");
}

/// Fault: the ledger's folder cannot be created because its parent is a
/// regular file (a typo in `ledger:`, or a file where a folder should be).
/// Root cannot get around this one.
#[test]
fn ledger_whose_parent_is_a_file_is_refused() {
    let env = Env::new();
    env.write_config(CONFIG);
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(
            &mut Lcg::new(5),
            &mut Expect::default(),
            "s1",
            "/x/acme",
            0..3,
            40,
        ),
    );
    let file = env.path().join("not-a-folder");
    fs::write(&file, "x").unwrap();
    let ledger = file.join("ledger.sqlite");
    assert_ledger_refused(
        &env,
        &ledger,
        &hook_input("s1", &t, "/x/acme"),
        "not-a-folder",
    );
    let out = env.cmd_with_ledger(&ledger).arg("report").output().unwrap();
    assert_eq!(
        stderr_of(&out).matches("os error").count(),
        1,
        "the cause once: {}",
        stderr_of(&out)
    );
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

/// Makes `dir` read-only for the commands run through [`RoDir::wrap`], in
/// a way that also binds root: a read-only bind mount in a private mount
/// namespace (`unshare -m`), else the immutable attribute (`chattr +i`).
/// None when this machine allows neither.
struct RoDir {
    dir: PathBuf,
    how: RoHow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RoHow {
    BindMount,
    Immutable,
}

impl RoDir {
    fn new(dir: &Path) -> Option<RoDir> {
        let ok = |c: &mut std::process::Command| {
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let probe = format!(
            "mount --bind -o ro '{0}' '{0}' && ! touch '{0}/.probe'",
            dir.display()
        );
        if ok(std::process::Command::new("unshare").args(["-m", "sh", "-c", &probe])) {
            return Some(RoDir {
                dir: dir.to_path_buf(),
                how: RoHow::BindMount,
            });
        }
        let mut targets = vec![dir.to_path_buf()];
        targets.extend(fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()));
        if targets
            .iter()
            .all(|t| ok(std::process::Command::new("chattr").arg("+i").arg(t)))
        {
            let ro = RoDir {
                dir: dir.to_path_buf(),
                how: RoHow::Immutable,
            };
            if fs::write(dir.join(".probe"), "x").is_err() {
                return Some(ro);
            }
        }
        for t in &targets {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(t)
                .status();
        }
        None
    }

    /// The command line to run `args` (binary first) with `dir` read-only.
    fn wrap(&self, env: &Env, args: Vec<std::ffi::OsString>) -> std::process::Command {
        match self.how {
            RoHow::Immutable => {
                let mut c = env.sealed(&args[0]);
                c.args(&args[1..]);
                c
            }
            RoHow::BindMount => {
                let mut c = env.sealed("unshare");
                c.args([
                    "-m",
                    "sh",
                    "-c",
                    "mount --bind -o ro \"$0\" \"$0\" && exec \"$@\"",
                ])
                .arg(&self.dir)
                .args(args);
                c
            }
        }
    }
}

impl Drop for RoDir {
    fn drop(&mut self) {
        if self.how == RoHow::Immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.dir)
                .status();
            for e in fs::read_dir(&self.dir).unwrap() {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(e.unwrap().path())
                    .status();
            }
        }
    }
}

/// Fault: the ledger (file and folder) is read-only, for root too (a
/// read-only mount, or the immutable attribute), while new transcript
/// lines wait to be recorded. report and ingest fail with a clear error,
/// check blocks, and the ledger keeps exactly its previous totals.
#[test]
fn read_only_ledger_is_refused_and_unchanged() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(6);
    let mut before = Expect::default();
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(&mut rng, &mut before, "s1", "/x/acme", 0..5, 40),
    );
    let dir = env.path().join("ro");
    let ledger = dir.join("ledger.sqlite");
    assert_report_is(&report_on(&env, &ledger, &[]), &before);
    let mut after = before.clone();
    let more = session_lines(&mut rng, &mut after, "s1", "/x/acme", 5..9, 40);
    env.append("-x-acme/s1.jsonl", &more);

    let Some(ro) = RoDir::new(&dir) else {
        eprintln!("SKIPPED read_only_ledger_is_refused_and_unchanged: neither `unshare -m` + mount nor `chattr +i` works here");
        return;
    };
    eprintln!("read-only ledger by {:?}", ro.how);
    for (cmd, code) in [
        (&["report", "--json"][..], 4),
        (&["ingest", "--quiet"][..], 4),
        (&["check"][..], 2),
    ] {
        let mut args = env.bin_args_with_ledger(&ledger);
        args.extend(cmd.iter().map(Into::into));
        let mut c = ro.wrap(&env, args);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        feed(
            child.stdin.take(),
            hook_input("s1", &t, "/x/acme").as_bytes(),
        );
        let out = child.wait_with_output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {err}");
        assert!(
            err.contains("ledger") && err.contains(ledger.to_str().unwrap()),
            "{cmd:?}: {err:?}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{cmd:?}: one line: {err:?}"
        );
        if code == 2 {
            assert!(err.contains("cannot check the budget"), "{err}");
        }
    }
    drop(ro);
    assert_ledger_consistent(&ledger);
    assert_report_is(&ledger_only_report(&env, &ledger), &before);
    assert_report_is(&report_on(&env, &ledger, &[]), &after);
}

/// Fault: SQLite cannot open the ledger's write-ahead log (a folder sits at
/// `ledger.sqlite-wal`, which no user, root included, can write as a
/// file). Like a read-only ledger: refused, check blocks, nothing lost;
/// once the obstacle is gone the next run reaches the exact totals.
#[test]
fn ledger_whose_wal_cannot_be_opened_is_refused() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(7);
    let mut before = Expect::default();
    let t = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &t,
        &session_lines(&mut rng, &mut before, "s1", "/x/acme", 0..5, 40),
    );
    assert_report_is(&env.report_json(&["--period", "all"]), &before);
    let mut after = before.clone();
    env.append(
        "-x-acme/s1.jsonl",
        &session_lines(&mut rng, &mut after, "s1", "/x/acme", 5..9, 40),
    );
    // octo-budget leaves its WAL for the next process; fold it into the
    // database and remove it (as SQLite would on a last close) so that a
    // folder can take its place.
    let wal = env.path().join("ledger.sqlite-wal");
    {
        let c = rusqlite::Connection::open(&env.ledger).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    }
    for f in [&wal, &env.path().join("ledger.sqlite-shm")] {
        if f.exists() {
            fs::remove_file(f).unwrap();
        }
    }
    fs::create_dir(&wal).unwrap();
    assert_ledger_refused(
        &env,
        &env.ledger,
        &hook_input("s1", &t, "/x/acme"),
        "ledger",
    );
    fs::remove_dir(&wal).unwrap();
    assert_ledger_consistent(&env.ledger);
    assert_report_is(&ledger_only_report(&env, &env.ledger), &before);
    assert_report_is(&env.report_json(&["--period", "all"]), &after);
}

/// Fault: the disk fills up while the ledger is written. Simulated with
/// RLIMIT_FSIZE (`ulimit -f` in a `sh` wrapper, SIGXFSZ ignored), which
/// binds root too: every write past the limit fails with EFBIG, so the
/// write-ahead log cannot take the new rows. Nothing may be committed
/// half-way: the ledger still holds exactly the last successful run's
/// totals, and a run with room reaches the exact totals of everything.
#[test]
fn disk_full_while_writing_commits_nothing_half_way() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(8);
    let mut before = Expect::default();
    let small = env.transcript("-x-acme/s0.jsonl");
    write_lines(
        &small,
        &session_lines(&mut rng, &mut before, "s0", "/x/acme", 0..20, 40),
    );
    assert_report_is(&env.report_json(&["--period", "all"]), &before);

    // Enough new rows that their log cannot fit under the limit.
    let mut after = before.clone();
    let big = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &big,
        &session_lines(&mut rng, &mut after, "s1", "/x/acme", 0..3_000, 40),
    );
    write_lines(
        &env.transcript("-x-beta/s2.jsonl"),
        &session_lines(&mut rng, &mut after, "s2", "/x/beta", 0..500, 40),
    );
    let limit_bytes = fs::metadata(&env.ledger).unwrap().len() + 64 * 1024;
    let blocks = limit_bytes.div_ceil(512).to_string(); // sh's `ulimit -f` counts 512-byte blocks
    let limited = |cmd: &[&str], stdin: &str| -> Output {
        let mut c = env.sealed("sh");
        c.args([
            "-c",
            "trap '' XFSZ; ulimit -f \"$0\" && exec \"$@\"",
            &blocks,
        ]);
        c.args(env.bin_args_with_ledger(&env.ledger)).args(cmd);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        feed(child.stdin.take(), stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    let out = limited(&["check"], &hook_input("s1", &big, "/x/acme"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "check must block: {}",
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("cannot check the budget"),
        "{}",
        stderr_of(&out)
    );
    for cmd in [&["ingest", "--quiet"][..], &["report", "--json"][..]] {
        let out = limited(cmd, "");
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(4), "{cmd:?}: {err}");
        assert!(
            err.contains("ledger") && err.trim_end().lines().count() == 1,
            "{cmd:?}: {err:?}"
        );
        assert!(out.stdout.is_empty(), "{cmd:?}: no half report on stdout");
    }
    assert_ledger_consistent(&env.ledger);
    assert_report_is(&ledger_only_report(&env, &env.ledger), &before);
    assert_report_is(&env.report_json(&["--period", "all"]), &after);
    assert_ledger_consistent(&env.ledger);
}

// ---- Corrupt input ---------------------------------------------------------------

/// A costed line whose `input_tokens` is `raw` (any JSON text, or not).
fn with_input_tokens(msg: &str, raw: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"assistant","cwd":"/x/acme","sessionId":"c1","requestId":"req_{msg}","timestamp":"2026-11-02T10:00:00.000Z","message":{{"id":"{msg}","model":"claude-opus-4-6","usage":{{"input_tokens":{raw},"output_tokens":7}}}}}}"#
    )
    .into_bytes()
}

/// Fault: corrupt lines among good ones: invalid UTF-8, a 50 MB single
/// line, deeply nested JSON, NUL bytes, wrong types in usage fields
/// (strings, negatives, floats, exponents, numbers beyond u64 and beyond
/// any plausible count). Each is skipped and counted once, never crashes
/// a run, never stops the lines after it from counting; the largest
/// plausible counts add up without overflow.
#[test]
fn corrupt_lines_are_skipped_and_counted() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(9);
    let mut expect = Expect::default();
    let mut good = session_lines(&mut rng, &mut expect, "c1", "/x/acme", 0..30, 30)
        .into_iter()
        .map(String::into_bytes);
    let mut corrupt: Vec<(&str, Vec<u8>)> = Vec::new();
    corrupt.push((
        "invalid UTF-8",
        b"\xff\xfe\x00garbage \"usage\" \xc3\x28".to_vec(),
    ));
    let mut bad_utf8_in_string = with_input_tokens("m_utf8", "1");
    bad_utf8_in_string.splice(20..20, b"\xed\xa0\x80".iter().copied()); // a lone surrogate
    corrupt.push(("invalid UTF-8 inside a costed record", bad_utf8_in_string));
    let mut huge = br#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m_huge","model":"claude-opus-4-6","usage":{"input_tokens":1},"content":[{"type":"text","text":""#.to_vec();
    huge.resize(huge.len() + 50 * 1024 * 1024, b'z'); // never closed: not JSON
    corrupt.push(("a 50 MB line", huge));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    corrupt.push((
        "deep nesting in a usage field",
        with_input_tokens("m_deep", &deep),
    ));
    corrupt.push(("deep nesting, not an object", deep.clone().into_bytes()));
    corrupt.push(("NUL bytes", vec![0u8; 300]));
    let mut nul_inside = with_input_tokens("m_nul", "1");
    nul_inside.splice(10..10, [0u8, 0, 0]);
    corrupt.push(("NUL bytes inside a costed record", nul_inside));
    for (i, raw) in [
        "\"12\"",
        "-5",
        "1.5",
        "1e3",
        "true",
        "{}",
        "[1]",
        "10000001",
        "1000000000001",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
    ]
    .iter()
    .enumerate()
    {
        corrupt.push((
            "a wrong type or an implausible number in usage",
            with_input_tokens(&format!("m_type{i}"), raw),
        ));
    }
    // Not corrupt, and not counted as skipped: a valid record without
    // cost that nests deeply, and `null` usage fields (absent = 0).
    let deep_user = format!(r#"{{"type":"user","sessionId":"c1","cwd":"/x/acme","x":{deep}}}"#);
    let null_input = String::from_utf8(with_input_tokens("m_null", "null")).unwrap();
    expect.record("m_null", "req_m_null", 2, "/x/acme", [0, 7, 0, 0]);
    // The largest count the parser accepts (README, "Transcripts"), five
    // times: $1,250 of output; one token more is corrupt (above).
    let mut biggest = Vec::new();
    for i in 0..5 {
        let (msg, req) = (format!("m_big{i}"), format!("req_big{i}"));
        let t = [0, 10_000_000, 0, 0];
        biggest.push(assistant_line("c1", "/x/acme", &msg, &req, OCT_1 + i, 2, t, 10).into_bytes());
        expect.record(&msg, &req, 2, "/x/acme", t);
    }

    let mut file = Vec::new();
    let mut push = |l: &[u8]| {
        file.extend_from_slice(l);
        file.push(b'\n');
    };
    for (_, bad) in &corrupt {
        push(&good.next().unwrap());
        push(bad);
    }
    push(deep_user.as_bytes());
    push(null_input.as_bytes());
    for b in &biggest {
        push(b);
    }
    for g in good {
        push(&g); // lines after every fault still count
    }
    let path = env.transcript("-x-acme/c1.jsonl");
    fs::write(&path, &file).unwrap();
    // The end of the file: half a costed line, still being written. Not
    // counted, not skipped: read once it is complete.
    let mut late = Expect::default();
    let tail = session_lines(&mut rng, &mut late, "c1", "/x/acme", 100..101, 30).remove(0);
    env.append_raw("-x-acme/c1.jsonl", &tail.as_bytes()[..tail.len() / 2]);

    let report = env.report_json(&["--period", "all"]);
    assert_report_is(&report, &expect);
    assert_eq!(
        report["skipped_lines"],
        corrupt.len(),
        "one skip per corrupt line: {:?}",
        corrupt.iter().map(|c| c.0).collect::<Vec<_>>()
    );
    // Counted once: another run over the same file adds nothing.
    let again = env.report_json(&["--period", "all"]);
    assert_eq!(again["skipped_lines"], corrupt.len());
    assert_report_is(&again, &expect);
    // The partial line completed, and one more corrupt line appended.
    env.append_raw("-x-acme/c1.jsonl", &tail.as_bytes()[tail.len() / 2..]);
    env.append_raw("-x-acme/c1.jsonl", b"\n{\"usage\": oops}\n");
    for (k, v) in late.responses {
        expect.responses.insert(k, v);
    }
    let last = env.report_json(&["--period", "all"]);
    assert_report_is(&last, &expect);
    assert_eq!(last["skipped_lines"], corrupt.len() + 1);
    assert_ledger_consistent(&env.ledger);
}

// ---- Transcripts that change under the ledger ---------------------------------------

/// Faults: a transcript is truncated; truncated and then grown past the
/// point the ledger had read to before the next run; rewritten in place
/// with different content; rotated (same name, new inode, old lines
/// replayed); and deleted after ingest. The ledger keeps every response it
/// has seen (history outlives the transcripts), counts each once, and
/// never skips a line because it resumed in the middle of one.
#[test]
fn truncated_rewritten_rotated_and_deleted_transcripts() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(10);
    let mut expect = Expect::default();
    let path = env.transcript("-x-acme/t1.jsonl");
    // Lines of ~800 bytes, so the first 4 KiB that identify the file are
    // a few lines and later lines lie beyond them.
    let pad = 600;
    let check = |expect: &Expect, step: &str| {
        let r = env.report_json(&["--period", "all"]);
        assert_eq!(r["skipped_lines"], 0, "{step}: no line skipped");
        assert_eq!(Totals::of(&r["totals"]), expect.totals(), "{step}");
        assert_report_is(&r, expect);
        assert_ledger_consistent(&env.ledger);
    };
    let first = session_lines(&mut rng, &mut expect, "t1", "/x/acme", 0..12, pad);
    write_lines(&path, &first);
    check(&expect, "first ingest");

    // Truncated to its first 8 lines (same inode): nothing is lost or
    // counted twice; a line appended afterwards counts.
    write_lines(&path, &first[..8]);
    check(&expect, "truncated");
    env.append(
        "-x-acme/t1.jsonl",
        &session_lines(&mut rng, &mut expect, "t1", "/x/acme", 12..13, pad),
    );
    check(&expect, "appended after truncation");

    // Truncated to 6 lines, then grown well past the old end before the
    // next run: the first 4 KiB are unchanged, the rest is new.
    let mut kept = first[..6].to_vec();
    let regrown = session_lines(&mut rng, &mut expect, "t1", "/x/acme", 13..30, pad);
    kept.extend(regrown);
    write_lines(&path, &kept);
    check(&expect, "truncated and regrown past the old offset");

    // Rewritten in place (same inode) with different content.
    let rewritten = session_lines(&mut rng, &mut expect, "t1", "/x/acme", 30..40, pad);
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap()
        .write_all((rewritten.join("\n") + "\n").as_bytes())
        .unwrap();
    check(&expect, "rewritten in place");

    // Rotated: a new file (new inode) renamed over the old name, replaying
    // some old lines before new ones.
    let mut rotated = rewritten[..4].to_vec();
    rotated.extend(session_lines(
        &mut rng,
        &mut expect,
        "t1",
        "/x/acme",
        40..45,
        pad,
    ));
    let tmp = env.path().join("t1.jsonl.tmp");
    write_lines(&tmp, &rotated);
    let old_ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
    fs::rename(&tmp, &path).unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
        old_ino
    );
    check(&expect, "rotated");

    // Rotated to a file that starts exactly like the old one and is
    // longer (a copy with lines appended, moved into place).
    let mut copied = rotated.clone();
    copied.extend(session_lines(
        &mut rng,
        &mut expect,
        "t1",
        "/x/acme",
        45..48,
        pad,
    ));
    write_lines(&tmp, &copied);
    fs::rename(&tmp, &path).unwrap();
    check(&expect, "replaced by a longer copy");

    // Deleted after ingest (Claude Code's cleanup): the history stays.
    fs::remove_file(&path).unwrap();
    check(&expect, "deleted");
    // A new session in its place still adds up.
    write_lines(
        &path,
        &session_lines(&mut rng, &mut expect, "t1", "/x/acme", 48..50, pad),
    );
    check(&expect, "recreated");
}

// ---- Many processes at once -------------------------------------------------------

/// Fault: 36 processes (two waves of 18: `check` hooks, `report --json`
/// and `ingest`) run at once on one ledger while a writer appends to the
/// transcripts the hooks read, each line in two writes (so readers see
/// half-written lines), with duplicates of earlier responses among them.
/// No process fails or times out on the lock, every check gives the
/// answer the caps call for (acme: allow; over, already past its hard
/// cap: block with the budget reason, not an error), and the final totals
/// are exactly what was written, each response once.
#[test]
fn concurrent_checks_reports_and_ingests_while_appending() {
    let env = Env::new();
    let mut expect = Expect::default();
    let over = with_an_arm_over_its_hard_cap(&env, &mut expect);
    let live = env.transcript("-x-acme/live.jsonl");
    write_lines(
        &live,
        &session_lines(
            &mut Lcg::new(11),
            &mut expect,
            "live",
            "/x/acme",
            0..20,
            100,
        ),
    );
    assert_report_is(&env.report_json(&["--period", "all"]), &expect);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, live, over) = (stop.clone(), live.clone(), over.clone());
        std::thread::spawn(move || {
            let mut rng = Lcg::new(12);
            let mut written = Expect::default();
            let mut sent: Vec<(String, u64, usize, Tokens)> = Vec::new();
            let mut r = 1_000u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || r < 1_100 {
                let (path, session, cwd) = if r.is_multiple_of(5) {
                    (&over, "o1", "/x/over")
                } else {
                    (&live, "live", "/x/acme")
                };
                // Every fourth line repeats an earlier response of this file
                // with a larger output (a later copy of the same response).
                let earlier: Vec<usize> =
                    (0..sent.len()).filter(|i| sent[*i].0 == session).collect();
                let line = if r.is_multiple_of(4) && !earlier.is_empty() {
                    let e = &mut sent[earlier[rng.range(0, earlier.len() as u64) as usize]];
                    e.3[1] += rng.range(1, 100);
                    let (msg, req) = (
                        format!("msg_{}_{}", e.0, e.1),
                        format!("req_{}_{}", e.0, e.1),
                    );
                    written.record(&msg, &req, e.2, cwd, e.3);
                    assistant_line(
                        &e.0,
                        cwd,
                        &msg,
                        &req,
                        OCT_1 + e.1 as i64 * 60_000,
                        e.2,
                        e.3,
                        50,
                    )
                } else {
                    let model = rng.range(0, MODELS.len() as u64) as usize;
                    let tok = random_tokens(&mut rng);
                    let (msg, req) = (format!("msg_{session}_{r}"), format!("req_{session}_{r}"));
                    written.record(&msg, &req, model, cwd, tok);
                    sent.push((session.to_owned(), r, model, tok));
                    assistant_line(
                        session,
                        cwd,
                        &msg,
                        &req,
                        OCT_1 + r as i64 * 60_000,
                        model,
                        tok,
                        50,
                    )
                };
                let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
                let cut = rng.range(1, line.len() as u64) as usize;
                f.write_all(&line.as_bytes()[..cut]).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                f.write_all(&line.as_bytes()[cut..]).unwrap();
                f.write_all(b"\n").unwrap();
                r += 1;
            }
            written
        })
    };

    let mut checks = 0;
    for wave in 0..2 {
        let mut children: Vec<(&str, Child)> = Vec::new();
        for i in 0..18 {
            let (kind, args, stdin): (&str, &[&str], String) = match i % 6 {
                0 | 3 => (
                    "check acme",
                    &["check"],
                    hook_input("live", &live, "/x/acme"),
                ),
                1 if i < 9 => ("check over", &["check"], hook_input("o1", &over, "/x/over")),
                1 | 4 => (
                    "report",
                    &["report", "--json", "--period", "all"],
                    String::new(),
                ),
                2 => ("ingest", &["ingest", "--quiet"], String::new()),
                _ => (
                    "check acme",
                    &["check"],
                    hook_input("live", &live, "/x/acme"),
                ),
            };
            let mut child = env
                .std_cmd()
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            feed(child.stdin.take(), stdin.as_bytes());
            children.push((kind, child));
        }
        for (kind, child) in children {
            let out = child.wait_with_output().unwrap();
            let (err, code) = (stderr_of(&out), out.status.code());
            let what = format!("wave {wave}, {kind}: exit {code:?}, stderr {err:?}");
            match kind {
                "check acme" => {
                    checks += 1;
                    assert_eq!((code, err.as_str()), (Some(0), ""), "{what}");
                }
                "check over" => {
                    checks += 1;
                    assert_eq!(code, Some(2), "{what}");
                    assert!(
                        err.contains("over") && !err.contains("cannot check the budget"),
                        "{what}"
                    );
                }
                "report" => {
                    assert_eq!((code, err.as_str()), (Some(0), ""), "{what}");
                    let r: Value = serde_json::from_slice(&out.stdout)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(
                        r["skipped_lines"], 0,
                        "{what}: a half-written line was counted as malformed"
                    );
                    assert!(
                        Totals::of(&r["totals"]).messages >= expect.totals().messages,
                        "{what}: lost history"
                    );
                }
                _ => assert_eq!(
                    (code, err.as_str(), out.stdout.is_empty()),
                    (Some(0), "", true),
                    "{what}"
                ),
            }
        }
    }
    assert!(checks >= 16);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (k, (model, cwd, tok)) in writer.join().unwrap().responses {
        let (msg, req) = k;
        expect.record(&msg, &req, model, &cwd, tok);
    }
    let last = env.report_json(&["--period", "all"]);
    assert_eq!(last["skipped_lines"], 0);
    assert_report_is(&last, &expect);
    assert_eq!(
        Totals::of(arm(&last, "over")),
        expect.totals_where(|c| c == "/x/over")
    );
    assert_ledger_consistent(&env.ledger);
}

// ---- The hook under limits, hangs and signals (issue 15, items 10-14) ------

/// The most any check below may take before the test calls it a hang: far
/// above the 5 s deadline, so only a check that does not answer at all
/// fails (this is no timing assertion).
const HANG: Duration = Duration::from_secs(40);

/// Waits for `child` (started at `started`) at most [`HANG`], killing it
/// (and failing) if it hangs; returns its output and logs how long it took.
fn finish_or_fail((child, started): (Child, std::time::Instant), what: &str) -> (Output, Duration) {
    let out = common::output_within(child, HANG, &format!("{what}: check"));
    let took = started.elapsed();
    eprintln!(
        "{what}: answered {:?} after {took:?}: {}",
        out.status.code(),
        stderr_of(&out).trim_end()
    );
    (out, took)
}

/// Waits until process `pid` catches signal `sig` (its handlers are
/// installed), as /proc says, so that a signal sent next reaches them.
fn wait_until_catching(pid: u32, sig: i32) {
    for _ in 0..2_000 {
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(mask) = status.lines().find_map(|l| l.strip_prefix("SigCgt:")) {
                let mask = u64::from_str_radix(mask.trim(), 16).unwrap();
                if mask & (1 << (sig - 1)) != 0 {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("process {pid} never caught signal {sig}");
}

/// Waits until process `pid`'s main thread is blocked reading its stdin
/// (`check` has loaded its config and waits for the hook input), as
/// /proc/PID/syscall says.
fn wait_until_reading_stdin(pid: u32) {
    let reading = format!("{} 0x0 ", libc::SYS_read);
    for _ in 0..2_000 {
        if fs::read_to_string(format!("/proc/{pid}/syscall")).is_ok_and(|s| s.starts_with(&reading))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("process {pid} never waited for its stdin");
}

/// `check` on `env`'s ledger (with `config`, else `env.config`), with
/// `stdin` written (and closed) or, when None, a stdin left open that
/// nothing is written to.
fn spawn_check(
    env: &Env,
    config: Option<&Path>,
    stdin: Option<&str>,
) -> (
    (Child, std::time::Instant),
    Option<std::process::ChildStdin>,
) {
    let started = std::time::Instant::now();
    let mut child = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .arg("--config")
        .arg(config.unwrap_or(&env.config))
        .arg("--ledger")
        .arg(&env.ledger)
        .args(["--now", &env.now, "check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take();
    if let Some(text) = stdin {
        feed(input.take(), text.as_bytes());
    }
    ((child, started), input)
}

#[track_caller]
fn assert_refused_with(out: &Output, says: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "must refuse: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(
        err.contains("cannot check the budget")
            && err.contains(says)
            && err.contains("refusing the call"),
        "{err:?} should say {says:?}"
    );
}

/// Fault (item 10): a file-size limit (RLIMIT_FSIZE, which binds root too)
/// with SIGXFSZ at its default action, which would kill the process with
/// exit 153 and no reason. `check` refuses (exit 2) with the ledger's
/// reason, `ingest` fails with exit 4, and the ledger keeps exactly its
/// previous totals.
#[test]
fn file_size_limit_is_an_error_with_a_reason_not_a_kill() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(10);
    let mut before = Expect::default();
    write_lines(
        &env.transcript("-x-acme/s0.jsonl"),
        &session_lines(&mut rng, &mut before, "s0", "/x/acme", 0..20, 40),
    );
    assert_report_is(&env.report_json(&["--period", "all"]), &before);
    let mut after = before.clone();
    let big = env.transcript("-x-acme/s1.jsonl");
    write_lines(
        &big,
        &session_lines(&mut rng, &mut after, "s1", "/x/acme", 0..3_000, 40),
    );
    let limit = fs::metadata(&env.ledger).unwrap().len() + 64 * 1024;
    let limited = |args: &[&str], stdin: &str| -> Output {
        let mut c = env.std_cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn().unwrap();
        feed(child.stdin.take(), stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    let out = limited(&["check"], &hook_input("s1", &big, "/x/acme"));
    assert_eq!(
        out.status.signal(),
        None,
        "killed by a signal: {:?}",
        out.status
    );
    assert_refused_with(&out, "ledger");
    let out = limited(&["ingest", "--quiet"], "");
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("ledger"), "{}", stderr_of(&out));
    assert_ledger_consistent(&env.ledger);
    assert_report_is(&ledger_only_report(&env, &env.ledger), &before);
    assert_report_is(&env.report_json(&["--period", "all"]), &after);
}

/// Faults (item 11): what would make `check` wait forever: a FIFO as the
/// config that no process writes to, the ledger locked exclusively by
/// another process, and a hook stdin that is never closed. Each answers:
/// refusal (exit 2 with a reason) while the config is unknown or says
/// nothing; with `on_error: allow` loaded before the hang, the deadline
/// allows, saying so: it answers from what is already known, without
/// loading the config again.
#[test]
fn the_deadline_holds_whatever_hangs() {
    let env = Env::new();
    env.write_config(CONFIG);
    let mut rng = Lcg::new(11);
    let mut expect = Expect::default();
    let t = env.transcript("-x-acme/s0.jsonl");
    write_lines(
        &t,
        &session_lines(&mut rng, &mut expect, "s0", "/x/acme", 0..20, 40),
    );
    env.cmd().args(["ingest", "--quiet"]).assert().success();
    let hook = hook_input("s0", &t, "/x/acme");

    // A FIFO as the config.
    let fifo = env.path().join("fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (fifo_check, _) = spawn_check(&env, Some(&fifo), Some(&hook));

    // The ledger locked exclusively by this (another) process. Taken
    // before the calls below start: a call that waits for its stdin has
    // the ledger open already (it looked its config up there).
    let conn = rusqlite::Connection::open(&env.ledger).unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let (locked, _) = spawn_check(&env, None, Some(&hook));

    // Stdin never closed: with the default config, and with on_error: allow.
    let (open_stdin, _keep1) = spawn_check(&env, None, None);
    let allow_cfg = env.path().join("allow.yaml");
    fs::write(&allow_cfg, format!("{CONFIG}gate:\n  on_error: allow\n")).unwrap();
    let (open_stdin_allow, _keep2) = spawn_check(&env, Some(&allow_cfg), None);

    let (out, _) = finish_or_fail(fifo_check, "FIFO config");
    assert_refused_with(&out, "");
    let (out, _) = finish_or_fail(open_stdin, "stdin never closed");
    assert_refused_with(&out, "no answer within 5 s");
    let (out, _) = finish_or_fail(open_stdin_allow, "stdin never closed, on_error: allow");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no answer within 5 s")
            && stderr_of(&out)
                .contains("allowing the call because budgets.yaml sets gate.on_error: allow"),
        "{}",
        stderr_of(&out)
    );
    let (out, _) = finish_or_fail(locked, "ledger locked");
    assert_refused_with(&out, "");
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);
    assert_report_is(&ledger_only_report(&env, &env.ledger), &expect);
}

/// Fault (item 14): SIGTERM (what Claude Code sends at the hook's timeout)
/// or SIGHUP while `check` works (here: waits for its stdin). It answers 2
/// with a reason naming the signal, not 143 or 129; with `on_error: allow`
/// it answers 0 and says so.
#[test]
fn sigterm_or_sighup_during_check_answer_with_a_reason() {
    signals_during_check_answer(
        &[(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")],
        |name| format!("stopped by {name}"),
    );
}

/// Fault: `check` crashes while it works (here: while it waits for its
/// stdin, the signal sent from outside). Claude Code lets the tool run when
/// a hook dies of a signal, so a crash answers as any failure does: 2 with
/// the signal named, 0 with `on_error: allow`.
#[test]
fn a_crash_during_check_answers_as_a_failure() {
    signals_during_check_answer(
        &[
            (libc::SIGSEGV, "SIGSEGV"),
            (libc::SIGBUS, "SIGBUS"),
            (libc::SIGILL, "SIGILL"),
            (libc::SIGFPE, "SIGFPE"),
            (libc::SIGABRT, "SIGABRT"),
        ],
        |name| format!("crashed: {name}"),
    );
}

/// Sends each signal to a `check` waiting for its stdin, with the default
/// config and with `on_error: allow`: the answer names it (`reason`) and
/// refuses (2), or allows (0) and says so.
fn signals_during_check_answer(signals: &[(i32, &str)], reason: impl Fn(&str) -> String) {
    let env = Env::new();
    env.write_config(CONFIG);
    let allow_cfg = env.path().join("allow.yaml");
    fs::write(&allow_cfg, format!("{CONFIG}gate:\n  on_error: allow\n")).unwrap();
    for &(sig, name) in signals {
        for allow in [false, true] {
            let config = allow.then_some(allow_cfg.as_path());
            let (child, _keep) = spawn_check(&env, config, None);
            let pid = child.0.id();
            wait_until_catching(pid, sig);
            wait_until_reading_stdin(pid);
            // SAFETY: sending a signal to our own child.
            assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
            let (out, _) = finish_or_fail(child, name);
            let err = stderr_of(&out);
            assert!(err.contains(&reason(name)), "{err}");
            if allow {
                assert_eq!(out.status.code(), Some(0), "{err}");
                assert!(err.contains("allowing the call"), "{err}");
            } else {
                assert_refused_with(&out, &reason(name));
            }
        }
    }
}

/// Fault: memory runs out (an address-space limit, as `ulimit -v` sets)
/// while `check` parses a large hook input: room for the 60 MiB read, not
/// for the parsed copy of its one long string. Rust aborts on an
/// allocation that fails; the abort is a crash, and the call is refused,
/// not let through.
#[test]
fn memory_that_runs_out_during_check_refuses_the_call() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    env.write_config(CONFIG);
    // The address space `check` holds while it waits for its input, plus
    // 100 MiB: the input (read into 64 MiB) fits, its string parsed does not.
    let (probe, _keep) = spawn_check(&env, None, None);
    let pid = probe.0.id();
    wait_until_reading_stdin(pid);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/PID/status");
    let (mut child, _) = probe;
    child.kill().unwrap();
    child.wait().unwrap();
    let limit = (kib << 10) + (100 << 20);
    let mut cmd = env.sealed(assert_cmd::cargo::cargo_bin("octo-budget"));
    cmd.arg("--config")
        .arg(&env.config)
        .arg("--ledger")
        .arg(&env.ledger)
        .args(["--now", &env.now, "check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &rl) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut input =
        br#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":""#.to_vec();
    input.resize(60 << 20, b'a');
    input.extend_from_slice(br#""}}"#);
    feed(child.stdin.take(), &input);
    let (out, _) = finish_or_fail((child, started), "the memory limit");
    // Rust says what failed first ("memory allocation of N bytes failed");
    // the answer is the last line.
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("octo-budget: cannot check the budget (crashed: SIGABRT")
            && last.contains("refusing the call"),
        "{err}"
    );
}

/// Fault (item 12): a ledger that has never read a large history, with a
/// hook that may read for only a moment per call (`--history-budget-ms 1`,
/// standing in for a history too large for the 5 s deadline). Every call
/// commits what it read, so progress outlives it: each refusal says that
/// history is still being read and that `octo-budget ingest` finishes it,
/// the ledger grows from call to call, and once all is read the check
/// decides and the ledger holds exactly the generated totals. A second
/// ledger is finished by `ingest` after one refused call.
#[test]
fn a_first_read_of_a_large_history_is_committed_call_by_call() {
    let env = Env::new();
    env.write_config(CONFIG);
    let corpus = Corpus::generate(12, 90, (70, 200), (10, 150));
    let bytes = corpus.write(&env);
    let (rel, _) = &corpus.files[0];
    let hook = hook_input("s12-0000", &env.transcript(rel), "/x/acme");
    let read_so_far = |ledger: &Path| -> (i64, i64) {
        if !ledger.exists() {
            return (0, 0);
        }
        let conn = rusqlite::Connection::open(ledger).unwrap();
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(offset), 0) FROM files",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let bounded = |ledger: &Path| -> Output {
        env.cmd_with_ledger(ledger)
            .args(["--history-budget-ms", "1", "check"])
            .write_stdin(hook.clone())
            .output()
            .unwrap()
    };
    let mut refusals = 0;
    let mut last = (0, 0);
    loop {
        let out = bounded(&env.ledger);
        assert_ledger_consistent(&env.ledger);
        let now = read_so_far(&env.ledger);
        if out.status.code() == Some(0) {
            break;
        }
        assert_refused_with(&out, "still reading the transcript history");
        assert!(stderr_of(&out).contains("`octo-budget ingest` finishes it"));
        assert!(
            now.1 > last.1,
            "no progress after refusal {refusals}: {now:?}"
        );
        last = now;
        refusals += 1;
        assert!(refusals < 2_000, "never finished");
    }
    eprintln!(
        "{bytes} bytes in {} files read over {refusals} refused calls",
        corpus.files.len()
    );
    assert!(refusals >= 1, "the first call cannot read it all");
    assert_report_is(&ledger_only_report(&env, &env.ledger), &corpus.expect);
    // Now read: later calls read only their session and allow at once.
    assert_eq!(bounded(&env.ledger).status.code(), Some(0));

    let other = env.path().join("other.sqlite");
    assert_refused_with(&bounded(&other), "still reading the transcript history");
    env.cmd_with_ledger(&other)
        .args(["ingest", "--quiet"])
        .assert()
        .success();
    assert_eq!(bounded(&other).status.code(), Some(0));
    assert_report_is(&ledger_only_report(&env, &other), &corpus.expect);
    assert_ledger_consistent(&other);
}
