//! The integration-test harness: a sealed environment per test (its own
//! HOME, CLAUDE_CONFIG_DIR, TZ, config, ledger and clock) and builders for
//! transcript lines. Every test runs the real binary.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The default `--now` of tests: late in November 2026 (UTC).
pub const NOW: &str = "2026-11-20T12:00:00Z";

pub struct Env {
    pub dir: TempDir,
    pub home: PathBuf,
    /// The Claude Code config dir (CLAUDE_CONFIG_DIR).
    pub claude: PathBuf,
    pub config: PathBuf,
    pub ledger: PathBuf,
    /// XDG_RUNTIME_DIR: where a resident helper's socket goes (a helper
    /// that `check --resident` starts ends once this folder is removed).
    pub run: PathBuf,
    pub now: String,
    pub tz: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let claude = dir.path().join("claude");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(claude.join("projects")).unwrap();
        let config = dir.path().join("budgets.yaml");
        let ledger = dir.path().join("ledger.sqlite");
        let run = dir.path().join("run");
        fs::create_dir_all(&run).unwrap();
        Env {
            dir,
            home,
            claude,
            config,
            ledger,
            run,
            now: NOW.into(),
            tz: "UTC".into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_config(&self, yaml: &str) -> &Self {
        fs::write(&self.config, yaml).unwrap();
        self
    }

    /// A transcript path under `projects/`, with its folders created.
    pub fn transcript(&self, rel: &str) -> PathBuf {
        let p = self.claude.join("projects").join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    /// Appends complete lines (each followed by a newline).
    pub fn append(&self, rel: &str, lines: &[String]) -> PathBuf {
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        self.append_raw(rel, &bytes)
    }

    /// Appends raw bytes (no newline added).
    pub fn append_raw(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.transcript(rel);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        f.write_all(bytes).unwrap();
        p
    }

    /// The binary with a sealed environment: nothing from the developer's
    /// machine leaks in. Config, ledger and clock are passed by flags.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// The same sealed command as [`Env::cmd`], as a `std::process::Command`
    /// (which can be spawned, e.g. to start several runs at once).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = self.sealed(assert_cmd::cargo::cargo_bin("octo-budget"));
        c.args(["--config", self.config.to_str().unwrap()])
            .args(["--ledger", self.ledger.to_str().unwrap()])
            .args(["--now", &self.now]);
        c
    }

    /// `report --json` parsed.
    pub fn report_json(&self, extra: &[&str]) -> Value {
        let out = self
            .cmd()
            .arg("report")
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("report --json is JSON")
    }
}

/// An assistant line. `usage` is the `message.usage` object.
pub fn assistant(
    session: &str,
    cwd: &str,
    msg_id: &str,
    req_id: &str,
    ts: &str,
    model: &str,
    usage: Value,
) -> String {
    json!({
        "parentUuid": null,
        "isSidechain": false,
        "type": "assistant",
        "cwd": cwd,
        "sessionId": session,
        "version": "2.1.90",
        "requestId": req_id,
        "timestamp": ts,
        "uuid": format!("u-{msg_id}-{req_id}"),
        "message": {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "ok"}], "usage": usage}
    })
    .to_string()
}

/// Responses costing `micros` together, at `ts`, as lines of at most $10
/// each of claude-haiku-4-5 input tokens ($1 per million; 10M tokens is the
/// most one usage field may hold). Their ids are `{id}-0`, `{id}-1`, ...
pub fn spend_lines(session: &str, cwd: &str, id: &str, ts: &str, micros: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut left = micros;
    while left > 0 {
        let part = left.min(10_000_000);
        let id = format!("{id}-{}", lines.len());
        lines.push(assistant(
            session,
            cwd,
            &id,
            &format!("req_{id}"),
            ts,
            "claude-haiku-4-5",
            json!({"input_tokens": part, "output_tokens": 0}),
        ));
        left -= part;
    }
    lines
}

/// A user line (no cost).
pub fn user(session: &str, cwd: &str, ts: &str, text: &str) -> String {
    json!({"type": "user", "cwd": cwd, "sessionId": session, "timestamp": ts,
           "message": {"role": "user", "content": text}})
    .to_string()
}

/// `{"input_tokens": i, "output_tokens": o}`.
pub fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output})
}

/// Dollars from a JSON number, as integer micro-dollars.
pub fn micros(v: &Value) -> i64 {
    (v.as_f64().expect("a number") * 1e6).round() as i64
}

/// SQL that gives a ledger the rollup it had before schema 12 (no branch
/// column; the branch index on `responses`): the rows summed over their
/// branches, for tests that simulate an older ledger.
pub const ROLLUP_BEFORE_12: &str = "
    CREATE TABLE rollup_11 (
        bucket INTEGER NOT NULL, place_id INTEGER NOT NULL, session_id TEXT NOT NULL, model TEXT NOT NULL,
        fast INTEGER NOT NULL, us_geo INTEGER NOT NULL, class INTEGER NOT NULL, messages INTEGER NOT NULL,
        input INTEGER NOT NULL, output INTEGER NOT NULL, cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL, cache_read INTEGER NOT NULL, web_search INTEGER NOT NULL,
        PRIMARY KEY (place_id, bucket, session_id, model, fast, us_geo, class)
    ) WITHOUT ROWID;
    INSERT INTO rollup_11
    SELECT bucket, place_id, session_id, model, fast, us_geo, class, SUM(messages), SUM(input), SUM(output),
           SUM(cache_write_5m), SUM(cache_write_1h), SUM(cache_read), SUM(web_search)
    FROM rollup GROUP BY place_id, bucket, session_id, model, fast, us_geo, class;
    DROP TABLE rollup;
    ALTER TABLE rollup_11 RENAME TO rollup;
    CREATE INDEX rollup_bucket ON rollup (bucket);
    CREATE INDEX rollup_session ON rollup (session_id);
    CREATE INDEX responses_branch ON responses (branch, ts_ms);
";

// ---- The hand-checked fixture tree (fixtures/claude) ------------------------

/// The instant the fixture expectations (fixtures/README.md) are taken at:
/// after every November 2026 response.
pub const FIXTURES_NOW: &str = "2026-11-28T00:00:00Z";

/// The repository's own files (fixtures, example config).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Copies the directory tree `from` into `to` (created if needed).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

impl Env {
    /// A sealed environment holding a COPY of fixtures/claude as its Claude
    /// Code config dir and budgets.example.yaml as its config, at
    /// [`FIXTURES_NOW`]. Tests may change the copy freely.
    pub fn with_fixtures() -> Env {
        let mut env = Env::new();
        copy_tree(&repo_path("fixtures/claude"), &env.claude);
        fs::copy(repo_path("budgets.example.yaml"), &env.config).unwrap();
        env.now = FIXTURES_NOW.into();
        env
    }

    /// Runs the binary with `args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }
}

/// The one line a failing command printed on stderr (asserting it is one).
pub fn one_stderr_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err:?}");
    lines[0].to_owned()
}

// ---- Additions for the fault harness (tests/faults.rs) ---------------------

impl Env {
    /// The binary's path followed by the sealed global flags, with another
    /// ledger than `self.ledger` (for comparing against a fresh ledger).
    pub fn bin_args_with_ledger(&self, ledger: &Path) -> Vec<std::ffi::OsString> {
        vec![
            assert_cmd::cargo::cargo_bin("octo-budget").into_os_string(),
            "--config".into(),
            self.config.clone().into_os_string(),
            "--ledger".into(),
            ledger.to_path_buf().into_os_string(),
            "--now".into(),
            self.now.clone().into(),
        ]
    }

    /// `program` with the sealed environment of [`Env::cmd`] but no
    /// arguments: for running the binary under a wrapper (`sh -c`), or as
    /// a child that the test kills or runs many of at once.
    pub fn sealed(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.env_clear()
            .env("HOME", &self.home)
            .env("CLAUDE_CONFIG_DIR", &self.claude)
            .env("TZ", &self.tz)
            .env("XDG_RUNTIME_DIR", &self.run)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.path());
        c
    }

    /// The binary as a `std::process::Command` (spawnable, killable) with
    /// the sealed environment and global flags, on `ledger`.
    pub fn std_cmd_with_ledger(&self, ledger: &Path) -> std::process::Command {
        let mut args = self.bin_args_with_ledger(ledger).into_iter();
        let mut c = self.sealed(args.next().expect("the binary"));
        c.args(args);
        c
    }

    /// The binary (assert_cmd) on another ledger than `self.ledger`.
    pub fn cmd_with_ledger(&self, ledger: &Path) -> Command {
        Command::from_std(self.std_cmd_with_ledger(ledger))
    }
}

/// What a report's `totals` (or an arm's row) says, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub messages: i64,
    pub cost_micros: i64,
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

impl Totals {
    /// Reads a `totals`/arm object of `report --json`.
    pub fn of(v: &Value) -> Totals {
        let t = &v["tokens"];
        let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("tokens.{k} in {v}"));
        Totals {
            messages: v["messages"].as_i64().expect("messages"),
            cost_micros: exact_micros(&v["cost_usd"]),
            input: n("input"),
            output: n("output"),
            cache_write_5m: n("cache_write_5m"),
            cache_write_1h: n("cache_write_1h"),
            cache_read: n("cache_read"),
        }
    }
}

/// Dollars from a JSON number, as integer micro-dollars, parsed from its
/// decimal text (no binary rounding).
pub fn exact_micros(v: &Value) -> i64 {
    let s = v.to_string();
    assert!(v.is_number(), "not a number: {s}");
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r.to_owned()),
        None => (false, s),
    };
    assert!(!s.contains(['e', 'E']), "dollars in exponent form: {s}");
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    assert!(frac.len() <= 6, "more than micro-dollar precision: {s}");
    let m =
        whole.parse::<i64>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<i64>().unwrap();
    if neg {
        -m
    } else {
        m
    }
}

/// A small deterministic pseudo-random generator (Knuth's 64-bit LCG), so
/// generated fault data is the same on every run.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 16
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo);
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }
}

/// Writes `bytes` to a child's stdin and closes it. A child that answered
/// before reading its input (a refusal decided first) has closed the pipe:
/// that is its answer, not a failure of the test, which checks the exit.
pub fn feed(stdin: Option<std::process::ChildStdin>, bytes: &[u8]) {
    let mut stdin = stdin.expect("the child's stdin is piped");
    match stdin.write_all(bytes) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("cannot write the child's stdin: {e}"),
    }
}

/// The output of `child`, which must end within `limit`: one that hangs
/// is killed and the test fails saying `what` (a hang is a failure, not a
/// timing assertion: `limit` is far above any answer's deadline).
pub fn output_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    use wait_timeout::ChildExt;
    if child.wait_timeout(limit).unwrap().is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not end within {limit:?}");
    }
    child.wait_with_output().unwrap()
}
