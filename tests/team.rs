//! A team ledger on a REAL PostgreSQL server (#11), which each test starts
//! itself: Debian's `postgresql` package (`initdb` and `pg_ctl` on a temp
//! dir, run as the `postgres` user when the tests run as root, a free port
//! on 127.0.0.1), removed afterwards. Without server binaries the tests
//! are skipped with a message, except with `CI=true`, where that is a
//! failure (`.ci/run` installs the package).
//!
//! Hosts are simulated by `OCTO_BUDGET_HOST` and separate Claude dirs in
//! one sealed environment (each host keeps its own working copy).

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assistant, copy_tree, repo_path, usage, Env, Totals};
use serde_json::{json, Value};

/// A PostgreSQL server of our own, stopped and removed on drop.
struct Pg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
    /// More `postgres -c` settings (TLS).
    extra: String,
}

/// The server binaries' folder: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` holding `initdb`.
fn bindir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && p.join("initdb").is_file() && p.join("pg_ctl").is_file() {
            return Some(p);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// A line on the real stderr (not captured by the test harness, so that a
/// skip is seen in a plain `cargo test`).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// Starts a server, or None (after saying why) when this machine has
    /// no server binaries and this is not CI.
    fn start() -> Option<Pg> {
        let Some(bin) = bindir() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no PostgreSQL server binaries (initdb, pg_ctl) were found: install Debian's `postgresql` package");
            }
            say("tests/team.rs: skipped: no PostgreSQL server binaries (install Debian's `postgresql` package)");
            return None;
        };
        let as_root = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("octo-budget-pg")
            .tempdir()
            .unwrap();
        if as_root {
            // initdb and postgres refuse to run as root.
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let pg = Pg {
            bin,
            dir,
            port: free_port(),
            as_root,
            extra: String::new(),
        };
        let data = pg.data();
        let out = pg
            .tool("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.up();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        };
        c.env_remove("PGDATA").current_dir(self.dir.path());
        c
    }

    fn up(&self) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60{}",
                self.port,
                self.dir.path().display(),
                self.extra
            ))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn uri(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL as the superuser through `psql`.
    fn psql(&self, sql: &str) -> String {
        let out = self
            .tool("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn postgres_ids() -> (u32, u32) {
    let text = fs::read_to_string("/etc/passwd").unwrap();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&"postgres") && f.len() > 3 {
            return (f[2].parse().unwrap(), f[3].parse().unwrap());
        }
    }
    panic!("running as root, and no `postgres` user to run the server as");
}

/// One machine of the team: its own Claude dir and host name, the shared
/// sealed HOME (each host name keeps its own working copy under it).
struct Host<'a> {
    env: &'a Env,
    name: &'a str,
    claude: PathBuf,
    ledger: String,
}

impl Host<'_> {
    fn cmd(&self) -> Command {
        let mut c = self.env.sealed(assert_cmd::cargo::cargo_bin("octo-budget"));
        c.env("OCTO_BUDGET_HOST", self.name)
            .env("CLAUDE_CONFIG_DIR", &self.claude)
            .args(["--config", self.env.config.to_str().unwrap()])
            .args(["--ledger", &self.ledger])
            .args(["--now", &self.env.now]);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn report(&self) -> Value {
        let out = self.run(&["report", "--json"]);
        assert!(
            out.status.success(),
            "report on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn host<'a>(env: &'a Env, pg: &Pg, name: &'a str) -> Host<'a> {
    let claude = env.path().join(format!("claude-{name}"));
    fs::create_dir_all(claude.join("projects")).unwrap();
    Host {
        env,
        name,
        claude,
        ledger: pg.uri(),
    }
}

/// Every arm's totals and the grand total of a `report --json`.
fn totals(v: &Value) -> Vec<(String, Totals)> {
    let mut out: Vec<(String, Totals)> = v["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["arm"].as_str().unwrap_or("?").to_string(), Totals::of(a)))
        .collect();
    out.push(("total".into(), Totals::of(&v["totals"])));
    out
}

/// The fixture tree read by one machine into a plain SQLite ledger: the
/// figures a team must reach.
fn single_machine(env: &Env, claude: &Path) -> Value {
    let out = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .env("CLAUDE_CONFIG_DIR", claude)
        .args(["--config", env.config.to_str().unwrap()])
        .args([
            "--ledger",
            env.path().join("single.sqlite").to_str().unwrap(),
        ])
        .args(["--now", &env.now, "report", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Splits fixtures/claude between two hosts by project folder: `a` gets
/// acme's and gamma's, `b` the rest plus a COPY of one of acme's files
/// (a copied transcript).
fn split_fixtures(a: &Host, b: &Host) {
    let projects = repo_path("fixtures/claude/projects");
    for e in fs::read_dir(&projects).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        let to = if name == "-work-clients-acme" || name == "-work-clients-gamma" {
            &a.claude
        } else {
            &b.claude
        };
        copy_tree(&e.path(), &to.join("projects").join(&name));
    }
    let copy = b.claude.join("projects/-work-clients-acme");
    fs::create_dir_all(&copy).unwrap();
    fs::copy(
        projects.join("-work-clients-acme/s-acme-2.jsonl"),
        copy.join("s-acme-2.jsonl"),
    )
    .unwrap();
}

fn fixture_env() -> Env {
    let mut env = Env::new();
    fs::copy(repo_path("budgets.example.yaml"), &env.config).unwrap();
    env.now = common::FIXTURES_NOW.into();
    env
}

// Proves: two hosts ingesting the halves of the fixture tree at once (10
// processes) give the exact totals of the whole tree as one machine reads
// it, and the transcript present on both hosts counts once; a third host
// connects through the server's Unix socket (`host=` in the URI).
#[test]
fn two_hosts_ingesting_at_once_reach_the_whole_trees_totals() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, b, c) = (
        host(&env, &pg, "a"),
        host(&env, &pg, "b"),
        host(&env, &pg, "c"),
    );
    split_fixtures(&a, &b);
    let mut kids = Vec::new();
    for i in 0..10 {
        let h = if i % 2 == 0 { &a } else { &b };
        kids.push(
            h.cmd()
                .args(["ingest", "--quiet"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ingest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let whole = single_machine(&env, &repo_path("fixtures/claude"));
    // Host c has no transcripts: it sees only what the server holds (and
    // reaches it through the server's Unix socket).
    let c = Host {
        ledger: format!(
            "postgresql:///postgres?host={}&port={}&user=postgres",
            pg.dir.path().display(),
            pg.port
        ),
        ..c
    };
    assert_eq!(totals(&c.report()), totals(&whole));
    assert_eq!(totals(&a.report()), totals(&whole));
    assert_eq!(totals(&b.report()), totals(&whole));
    let rows = pg.psql("SELECT count(*) FROM octo_budget_responses");
    let copied = pg.psql(
        "SELECT count(DISTINCT host) FROM octo_budget_responses WHERE session_id = 's-acme-2'",
    );
    assert_eq!(
        copied, "1",
        "the copied transcript's rows are one set, written by one host"
    );
    assert!(rows.parse::<i64>().unwrap() > 0);

    // `hook install` works against the team ledger and writes its URI
    // (which holds no password) into settings.json.
    let settings = env.path().join("settings.json");
    let out = a
        .cmd()
        .args(["hook", "install", "--settings"])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = fs::read_to_string(&settings).unwrap();
    assert!(written.contains(&pg.uri()), "{written}");
}

fn prompt(session: &str, cwd: &str, transcript: &Path) -> String {
    json!({
        "session_id": session,
        "transcript_path": transcript,
        "cwd": cwd,
        "permission_mode": "default",
        "hook_event_name": "UserPromptSubmit",
        "prompt": "go on",
    })
    .to_string()
}

fn check(cmd: &mut Command, input: &str) -> (Output, Duration) {
    let t = Instant::now();
    let mut child = cmd
        .arg("check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::feed(child.stdin.take(), input.as_bytes());
    let out = child.wait_with_output().unwrap();
    (out, t.elapsed())
}

// Proves: `check` on host b refuses a prompt in acme when the TEAM's acme
// spend (read on host a, arriving after b cached its own past days) is
// past its hard stop, although b's own
// transcripts alone keep acme under it (shown by the same check on a
// one-machine ledger, which allows).
#[test]
fn check_on_one_host_blocks_on_the_teams_spend() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, b) = (host(&env, &pg, "a"), host(&env, &pg, "b"));
    split_fixtures(&a, &b);
    let transcript = b.claude.join("projects/-work-clients-acme/s-b-new.jsonl");
    let input = prompt("s-b-new", "/work/clients/acme", &transcript);

    let mut alone = env.sealed(assert_cmd::cargo::cargo_bin("octo-budget"));
    alone
        .env("CLAUDE_CONFIG_DIR", &b.claude)
        .args(["--config", env.config.to_str().unwrap()])
        .args([
            "--ledger",
            env.path().join("b-alone.sqlite").to_str().unwrap(),
        ])
        .args(["--now", &env.now]);
    let (out, _) = check(&mut alone, &input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "b alone is under acme's hard stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Before a sends anything, b's team check allows too (and b's ledger
    // caches the priced spend of the past days it read).
    let (out, _) = check(&mut b.cmd(), &input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    // a's past days arrive at b's next sync and replace what b cached.
    let (out, _) = check(b.cmd().env("OCTO_BUDGET_TEAM_CACHE_MS", "0"), &input);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("acme"));
}

// Proves: a team's budgets.yaml that names the server (`ledger:` a URI,
// no --ledger) has its validated config kept in this host's working copy
// of the team ledger, and the hook reads it from there: an entry there
// that says otherwise is what the next call obeys. No default ledger is
// created on the way.
#[test]
fn a_team_config_is_kept_in_the_hosts_working_copy() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let yaml = fs::read_to_string(&env.config).unwrap();
    let line = "ledger: target/octo-budget-example.sqlite";
    assert!(yaml.contains(line));
    env.write_config(&yaml.replace(line, &format!("ledger: {}", pg.uri())));
    let b = host(&env, &pg, "b");
    split_fixtures(&host(&env, &pg, "a"), &b);
    let transcript = b.claude.join("projects/-work-clients-acme/s-b-new.jsonl");
    let input = prompt("s-b-new", "/work/clients/acme", &transcript);
    let hook = || {
        let mut c = env.sealed(assert_cmd::cargo::cargo_bin("octo-budget"));
        c.env("OCTO_BUDGET_HOST", "b")
            .env("CLAUDE_CONFIG_DIR", &b.claude)
            .args(["--config", env.config.to_str().unwrap()])
            .args(["--now", &env.now]);
        check(&mut c, &input).0
    };
    for _ in 0..2 {
        let out = hook();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let team_dir = env.home.join(".local/share/octo-budget/team");
    let copies: Vec<PathBuf> = fs::read_dir(&team_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(!env
        .home
        .join(".local/share/octo-budget/ledger.sqlite")
        .exists());
    let copy = rusqlite::Connection::open(&copies[0]).unwrap();
    let stored: Vec<String> = copy
        .prepare("SELECT config FROM config_cache")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 1, "the config is stored in the working copy");
    // Every arm's caps at $0.01 in the stored entry only:
    // the next call, reading it, refuses the prompt (acme is over $0.01).
    let tiny = with_tiny_caps(&stored[0]);
    copy.execute("UPDATE config_cache SET config = ?1", [&tiny])
        .unwrap();
    drop(copy);
    let out = hook();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the stored entry is what the call obeys: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `stored` (a config as the ledger keeps it) with every cap in its
/// `caps` arrays set to 10,000 micro-dollars ($0.01).
fn with_tiny_caps(stored: &str) -> String {
    let mut v: Value = serde_json::from_str(stored).unwrap();
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "caps" {
                        if let Value::Array(a) = x {
                            for c in a.iter_mut().filter(|c| !c.is_null()) {
                                *c = Value::from(10_000);
                            }
                        }
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v.to_string()
}

// Proves: with the server stopped, `check` answers from the working copy
// within the cache bound, and past it refuses within its deadline
// with a reason naming the server (never the password), `report` and
// `alerts` exit 4 with one line; what was read meanwhile goes up on the
// next run once the server is back, and the totals are exact.
#[test]
fn server_down_refuses_then_catches_up_exactly() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, c) = (host(&env, &pg, "a"), host(&env, &pg, "c"));
    copy_tree(&repo_path("fixtures/claude"), &a.claude);
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    pg.down();

    // New spend on a while the server is down.
    let rel = "projects/-work-clients-beta/s-down.jsonl";
    let mut f = fs::File::create(a.claude.join(rel)).unwrap();
    for i in 0..3 {
        let line = assistant(
            "s-down",
            "/work/clients/beta",
            &format!("msg_down_{i}"),
            &format!("req_down_{i}"),
            "2026-11-27T10:00:00Z",
            "claude-sonnet-4-5",
            usage(1000, 500),
        );
        writeln!(f, "{line}").unwrap();
    }
    drop(f);

    let input = prompt("s-down", "/work/clients/beta", &a.claude.join(rel));
    // Within the cache bound (here a minute), `check` answers from the
    // working copy without the server: beta is under its caps.
    let (out, _) = check(a.cmd().env("OCTO_BUDGET_TEAM_CACHE_MS", "60000"), &input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Past it (0: always sync), the server is needed.
    let (out, took) = check(
        a.cmd()
            .env("PGPASSWORD", "sekrit-pw")
            .env("OCTO_BUDGET_TEAM_CACHE_MS", "0"),
        &input,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(took < Duration::from_secs(6), "check took {took:?}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", pg.port)),
        "names the server: {err}"
    );
    assert!(!err.contains("sekrit"), "never the password: {err}");

    let out = a.run(&["report"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(common::one_stderr_line(&out).contains("team ledger"));
    let out = a.run(&["alerts", "--quiet"]);
    assert_eq!(out.status.code(), Some(4));
    common::one_stderr_line(&out);

    pg.up();
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    let whole = single_machine(&env, &a.claude);
    assert_eq!(totals(&c.report()), totals(&whole));
    // And again: nothing is counted twice by a later run.
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    assert_eq!(totals(&c.report()), totals(&whole));
}

// Proves: alerts run on two hosts (at once, and again later) say each
// event once across the team: exactly the events one machine says. And a
// server schema newer than the binary is refused.
#[test]
fn alerts_say_each_event_once_across_hosts() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, b) = (host(&env, &pg, "a"), host(&env, &pg, "b"));
    copy_tree(&repo_path("fixtures/claude"), &a.claude);
    copy_tree(&repo_path("fixtures/claude"), &b.claude);
    let mut kids = Vec::new();
    for h in [&a, &b, &a, &b] {
        kids.push(
            h.cmd()
                .args(["alerts", "--quiet"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let mut said: Vec<String> = Vec::new();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
        said.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    for h in [&a, &b] {
        let out = h.run(&["alerts", "--quiet"]);
        assert!(out.status.success());
        said.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    let one = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .env("CLAUDE_CONFIG_DIR", &a.claude)
        .args(["--config", env.config.to_str().unwrap()])
        .args(["--ledger", env.path().join("one.sqlite").to_str().unwrap()])
        .args(["--now", &env.now, "alerts", "--quiet"])
        .output()
        .unwrap();
    let mut expected: Vec<String> = String::from_utf8_lossy(&one.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!expected.is_empty(), "the fixtures cross caps");
    said.sort();
    expected.sort();
    assert_eq!(said, expected);

    // A server whose schema a newer octo-budget wrote is refused (exit 4).
    pg.psql("UPDATE octo_budget_meta SET value = '99' WHERE key = 'schema_version'");
    let out = a.run(&["report"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(common::one_stderr_line(&out).contains("schema version 99 is newer"));
}

// Proves: ingests killed at several points leave the server's ledger
// consistent: a later run reaches the exact totals of the tree.
#[test]
fn an_ingest_killed_midway_leaves_the_team_ledger_consistent() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, c) = (host(&env, &pg, "a"), host(&env, &pg, "c"));
    let mut rng = common::Lcg::new(11);
    for f in 0..120 {
        let rel = format!("projects/-work-clients-acme/s-gen-{f}.jsonl");
        let mut lines = String::new();
        for i in 0..60 {
            let ts = format!(
                "2026-11-{:02}T{:02}:{:02}:00Z",
                1 + rng.range(0, 25),
                rng.range(0, 24),
                rng.range(0, 60)
            );
            lines.push_str(&assistant(
                &format!("s-gen-{f}"),
                "/work/clients/acme",
                &format!("msg_{f}_{i}"),
                &format!("req_{f}_{i}"),
                &ts,
                "claude-sonnet-4-5",
                usage(rng.range(1, 5000), rng.range(1, 2000)),
            ));
            lines.push('\n');
        }
        let p = a.claude.join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, lines).unwrap();
    }
    for delay in [30, 80, 150, 300] {
        let mut k = a
            .cmd()
            .args(["ingest", "--quiet"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = k.kill();
        let _ = k.wait();
    }
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    let whole = single_machine(&env, &a.claude);
    assert_eq!(totals(&c.report()), totals(&whole));
}

// Proves: a role with SELECT only runs `report` and `status` (it reads the
// team's spend; its own rows stay in its working copy), and the password
// comes from ~/.pgpass (libpq's format, mode 0600), never from the URI: a
// URI holding one is refused, by `hook install` too, which writes nothing.
#[test]
fn a_read_only_role_reports_and_passwords_stay_out_of_files() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let a = host(&env, &pg, "a");
    copy_tree(&repo_path("fixtures/claude"), &a.claude);
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    pg.psql("CREATE ROLE ob_reader LOGIN PASSWORD 'reader-pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ob_reader");
    // Password authentication for the reader (trust for the superuser).
    let hba = pg.data().join("pg_hba.conf");
    let old = fs::read_to_string(&hba).unwrap();
    fs::write(
        &hba,
        format!("host all ob_reader 127.0.0.1/32 scram-sha-256\n{old}"),
    )
    .unwrap();
    pg.psql("SELECT pg_reload_conf()");

    let pgpass = env.home.join(".pgpass");
    fs::write(
        &pgpass,
        format!("127.0.0.1:{}:postgres:ob_reader:reader-pw\n", pg.port),
    )
    .unwrap();
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
    let reader = Host {
        env: &env,
        name: "r",
        claude: env.path().join("claude-r"),
        ledger: format!("postgres://ob_reader@127.0.0.1:{}/postgres", pg.port),
    };
    fs::create_dir_all(reader.claude.join("projects")).unwrap();
    let whole = single_machine(&env, &a.claude);
    assert_eq!(totals(&reader.report()), totals(&whole));
    let out = reader.run(&["status", "--arm", "acme", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "block");

    // Without the password file the reader cannot log in: exit 4.
    fs::remove_file(&pgpass).unwrap();
    assert_eq!(reader.run(&["report"]).status.code(), Some(4));

    let settings = env.path().join("settings.json");
    let with_pw = format!(
        "postgres://ob_reader:reader-pw@127.0.0.1:{}/postgres",
        pg.port
    );
    let installer = Host {
        ledger: with_pw,
        ..a
    };
    let out = installer
        .cmd()
        .args(["hook", "install", "--settings"])
        .arg(&settings)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("reader-pw"));
    assert!(!settings.exists());
}

// Proves: Claude Code's own totals (`cost-state`, the requests it never
// writes as responses) reach the team too: a session on host a and its
// `--fork-session` on host b (which copies the parent's responses and
// carries the parent's totals) give the team the totals one machine
// holding both files reaches, unwritten requests included.
#[test]
fn cost_states_and_forks_across_hosts_count_as_on_one_machine() {
    let Some(pg) = Pg::start() else { return };
    let mut env = fixture_env();
    env.now = "2026-11-30T12:00:00Z".into();
    let (a, b, c) = (
        host(&env, &pg, "a"),
        host(&env, &pg, "b"),
        host(&env, &pg, "c"),
    );
    let from = repo_path("fixtures/coststate/projects/-work-e2e-repo");
    for (h, file) in [(&a, "parent.jsonl"), (&b, "fork.jsonl")] {
        let dir = h.claude.join("projects/-work-e2e-repo");
        fs::create_dir_all(&dir).unwrap();
        fs::copy(from.join(file), dir.join(file)).unwrap();
    }
    assert!(a.run(&["ingest", "--quiet"]).status.success());
    assert!(b.run(&["ingest", "--quiet"]).status.success());
    let whole = single_machine(&env, &repo_path("fixtures/coststate"));
    let team = c.report();
    assert_eq!(totals(&team), totals(&whole));
    assert_eq!(team["totals"]["cost_usd"], whole["totals"]["cost_usd"]);
    assert_eq!(team["totals"]["unwritten"], whole["totals"]["unwritten"]);
    assert!(
        whole["totals"]["unwritten"]["cost_usd"].as_f64().unwrap() > 0.0,
        "the fixture has unwritten requests"
    );
    // Host a, which read only the parent, learns the fork's share too.
    assert_eq!(totals(&a.report()), totals(&whole));
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `name` (`name.crt`, `name.key` in `dir`).
fn authority(dir: &Path, name: &str) -> PathBuf {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
        dir,
    );
    dir.join(crt)
}

/// A server certificate for 127.0.0.1 signed by the authority `ca`.
fn server_certificate(dir: &Path, ca: &str) -> (PathBuf, PathBuf) {
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
        dir,
    );
    (dir.join("server.crt"), dir.join("server.key"))
}

// Proves: TLS works. The server accepts only TLS connections (pg_hba
// `hostssl`); `sslmode=disable` is refused (exit 4), `require` encrypts,
// `verify-full` with the authority that signed the server's certificate
// as `sslrootcert` connects, and with another authority is refused.
#[test]
fn tls_connections_and_certificate_checks() {
    let Some(mut pg) = Pg::start() else { return };
    if Command::new("openssl").arg("version").output().is_err() {
        say("tests/team.rs: TLS case skipped: no openssl command to make a certificate");
        return;
    }
    let env = fixture_env();
    let ca = authority(pg.dir.path(), "team-ca");
    let (crt, key) = server_certificate(pg.dir.path(), "team-ca");
    let other = authority(env.path(), "other-ca");
    if pg.as_root {
        let (uid, gid) = postgres_ids();
        for f in [&crt, &key] {
            std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
        }
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let hba = pg.data().join("pg_hba.conf");
    fs::write(&hba, "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n").unwrap();
    pg.down();
    pg.extra = format!(
        " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        crt.display(),
        key.display()
    );
    pg.up();
    let a = host(&env, &pg, "a");
    copy_tree(&repo_path("fixtures/claude"), &a.claude);
    let with = |query: &str| Host {
        env: &env,
        name: "a",
        claude: a.claude.clone(),
        ledger: format!("{}?{query}", pg.uri()),
    };
    let plain = with("sslmode=disable").run(&["ingest", "--quiet"]);
    assert_eq!(
        plain.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let out = with("sslmode=require").run(&["ingest", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = with(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let whole = single_machine(&env, &a.claude);
    assert_eq!(totals(&verified.report()), totals(&whole));
    let wrong = with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.display()
    ));
    let out = wrong.run(&["report"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Proves (no server needed): a password in budgets.yaml's `ledger:` URI is
// refused as a config error (exit 3, file and key named, the password not
// repeated); one given with --ledger is a usage error (exit 2).
#[test]
fn a_password_in_the_ledger_uri_is_refused() {
    let env = Env::new();
    let arm = "budgets:\n  - arm: a\n    path: /work/a\n    monthly_usd_cap: 10\n";
    env.write_config(&format!(
        "timezone: UTC\nledger: postgresql://octo:hunter2@db.example/octo_budget\n{arm}"
    ));
    let out = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .args(["--config", env.config.to_str().unwrap(), "report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = common::one_stderr_line(&out);
    assert!(
        err.contains("budgets.yaml") && err.contains("ledger") && err.contains("PGPASSWORD"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    env.write_config(&format!("timezone: UTC\n{arm}"));
    let out = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .args(["--config", env.config.to_str().unwrap()])
        .args([
            "--ledger",
            "postgres://db.example/octo_budget?password=hunter2",
            "report",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!common::one_stderr_line(&out).contains("hunter2"));
}

// Proves: with `--command`, each event is delivered once across the team
// too: two hosts' runs at once pipe exactly the events one machine says.
#[test]
fn alerts_command_delivers_each_event_once_across_hosts() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, b) = (host(&env, &pg, "a"), host(&env, &pg, "b"));
    copy_tree(&repo_path("fixtures/claude"), &a.claude);
    copy_tree(&repo_path("fixtures/claude"), &b.claude);
    let sink = env.path().join("delivered.txt");
    let command = format!("cat >> {}", sink.display());
    let kids: Vec<_> = [&a, &b, &a, &b]
        .iter()
        .map(|h| {
            h.cmd()
                .args(["alerts", "--quiet", "--command", &command])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let one = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .env("CLAUDE_CONFIG_DIR", &a.claude)
        .args(["--config", env.config.to_str().unwrap()])
        .args(["--ledger", env.path().join("one.sqlite").to_str().unwrap()])
        .args(["--now", &env.now, "alerts", "--quiet"])
        .output()
        .unwrap();
    let mut expected: Vec<String> = String::from_utf8_lossy(&one.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut got: Vec<String> = fs::read_to_string(&sink)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!expected.is_empty());
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

// Proves: `serve` on one host answers the team's spend (#17): host b's
// half of the fixtures, sent by b's `report`, shows in a's served report
// after a's next ingest run (which syncs), reaching the whole tree's
// totals, and the served report is what a's `report --json` prints.
#[test]
fn serve_on_one_host_answers_the_teams_spend() {
    let Some(pg) = Pg::start() else { return };
    let env = fixture_env();
    let (a, b) = (host(&env, &pg, "a"), host(&env, &pg, "b"));
    split_fixtures(&a, &b);
    let whole = single_machine(&env, &repo_path("fixtures/claude"));

    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = a
        .cmd()
        .args(["serve", "--listen", "127.0.0.1:0", "--ingest-every", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _serving = Killed(child);
    let base = line
        .trim()
        .strip_prefix("octo-budget serve: listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    let served = || -> String {
        ureq::get(&format!("{base}/api/v1/report"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let first: Value = serde_json::from_str(&served()).unwrap();
    assert_ne!(totals(&first), totals(&whole), "a alone has half the tree");

    b.report();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let body = served();
        if totals(&serde_json::from_str(&body).unwrap()) == totals(&whole) {
            break body;
        }
        assert!(Instant::now() < deadline, "b's spend never served: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = a.run(&["report", "--json"]);
    assert!(out.status.success());
    assert_eq!(body, String::from_utf8(out.stdout).unwrap());
}
