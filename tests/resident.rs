//! `check --resident` and `statusline --resident`: the resident helper
//! (README, "The resident helper"). Each test has its own XDG_RUNTIME_DIR
//! (`Env::run`), so its own helper, and ends it.
//!
//! Spend is claude-haiku-4-5 input tokens ($1 per million): one token is
//! one micro-dollar.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::{json, Value};

const ACME: &str = "/x/acme";
const ZETA: &str = "/x/zeta";
const S1: &str = "11111111-aaaa-bbbb-cccc-000000000001";
const S2: &str = "22222222-aaaa-bbbb-cccc-000000000002";

/// acme ($10 a month) refuses gated tools over its cap; zeta ($10 a month)
/// halts the agent. No grace: the hard stop is at the cap.
const CONFIG: &str = "timezone: UTC
budgets:
  - arm: acme
    path: /x/acme
    monthly_usd_cap: 10
    grace_pct: 100
    action_on_breach: hard_stop
  - arm: zeta
    path: /x/zeta
    monthly_usd_cap: 10
    grace_pct: 100
    action_on_breach: stop
";

/// A sealed environment with a runtime folder of its own (the helper's
/// socket goes there); its helper is ended when it is dropped.
struct Sealed {
    env: Env,
    run: PathBuf,
}

impl Sealed {
    fn new() -> Sealed {
        let env = Env::new();
        env.write_config(CONFIG);
        let run = env.run.clone();
        Sealed { env, run }
    }

    fn rel(session: &str, cwd: &str) -> String {
        format!("{}/{session}.jsonl", cwd.replace('/', "-"))
    }

    /// Appends responses costing `micros` together to the session's
    /// transcript.
    fn spend(&self, session: &str, cwd: &str, id: &str, micros: u64) {
        let lines = common::spend_lines(session, cwd, id, "2026-11-20T11:00:00.000Z", micros);
        self.env.append(&Self::rel(session, cwd), &lines);
    }

    fn hook(&self, session: &str, cwd: &str, event: &str, tool: &str) -> String {
        let mut v = json!({
            "session_id": session,
            "transcript_path": self.env.transcript(&Self::rel(session, cwd)),
            "cwd": cwd,
            "hook_event_name": event,
        });
        match event {
            "UserPromptSubmit" => v["prompt"] = json!("go on"),
            _ => {
                v["tool_name"] = json!(tool);
                v["tool_input"] = json!({"file_path": format!("{cwd}/a")});
            }
        }
        v.to_string()
    }

    fn live(&self, command: &str, resident: bool, stdin: &str) -> Output {
        let mut c = self.env.cmd();
        c.arg(command);
        if resident {
            c.arg("--resident");
        }
        c.write_stdin(stdin.to_owned()).output().unwrap()
    }

    /// The helper's socket (there is one when a helper listens).
    fn socket(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.run.join("octo-budget"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "sock"))
    }

    /// Waits for the helper the first `--resident` call starts.
    fn wait_for_helper(&self) -> u32 {
        let start = Instant::now();
        loop {
            if let (Some(_), Some(pid)) = (self.socket(), self.helper_pid()) {
                return pid;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no helper started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The helper serving this environment: the process whose command line
    /// names a socket in its runtime folder.
    fn helper_pid(&self) -> Option<u32> {
        let needle = self.run.to_string_lossy().into_owned();
        std::fs::read_dir("/proc").ok()?.find_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(" resident ") && cmdline.contains(&needle)).then_some(pid)
        })
    }

    fn wait_gone(&self, pid: u32) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for the test process to reap it.
            if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if let Some(pid) = self.helper_pid() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// What a call answered: exit code, stdout, stderr.
type Said = (Option<i32>, String, String);

fn said(o: &Output) -> Said {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A step of [`scenario`].
enum Step {
    /// Responses costing this much: session, cwd, id, micro-dollars.
    Spend(&'static str, &'static str, &'static str, u64),
    /// A call: what it is, the command, the hook event (or "status" for
    /// the status line's JSON, or "junk"), session, cwd, tool.
    Call(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ),
}

const STEPS: &[Step] = &[
    Step::Spend(S1, ACME, "a1", 1_000_000),
    // The first call: no helper yet (answered in process, a helper started).
    Step::Call("read", "check", "PreToolUse", S1, ACME, "Read"),
    Step::Call("agent at $1", "check", "PreToolUse", S1, ACME, "Agent"),
    Step::Spend(S1, ACME, "a2", 7_500_000),
    Step::Call(
        "agent at $8.50 (warned)",
        "check",
        "PreToolUse",
        S1,
        ACME,
        "Agent",
    ),
    Step::Call(
        "agent at $8.50 again (said once)",
        "check",
        "PreToolUse",
        S1,
        ACME,
        "Agent",
    ),
    Step::Call("status line at $8.50", "statusline", "status", S1, ACME, ""),
    Step::Spend(S1, ACME, "a3", 2_000_000),
    Step::Call(
        "agent at $10.50 (blocked)",
        "check",
        "PreToolUse",
        S1,
        ACME,
        "Agent",
    ),
    Step::Call("read at $10.50", "check", "PreToolUse", S1, ACME, "Read"),
    Step::Call(
        "prompt at $10.50",
        "check",
        "UserPromptSubmit",
        S1,
        ACME,
        "",
    ),
    Step::Call(
        "status line at $10.50",
        "statusline",
        "status",
        S1,
        ACME,
        "",
    ),
    Step::Spend(S2, ZETA, "z1", 11_000_000),
    Step::Call(
        "zeta read at $11 (halted)",
        "check",
        "PreToolUse",
        S2,
        ZETA,
        "Read",
    ),
    Step::Call(
        "zeta after the tool (stopped)",
        "check",
        "PostToolUse",
        S2,
        ZETA,
        "Read",
    ),
    Step::Call("not hook JSON", "check", "junk", S1, ACME, ""),
];

/// [`STEPS`] answered in process or by a helper: (what was done, the
/// answer) per call.
fn scenario(resident: bool) -> (Vec<(String, Said)>, Sealed) {
    let s = Sealed::new();
    let mut out = Vec::new();
    for step in STEPS {
        match *step {
            Step::Spend(session, cwd, id, micros) => s.spend(session, cwd, id, micros),
            Step::Call(what, command, event, session, cwd, tool) => {
                let stdin = match event {
                    "status" => json!({"session_id": session, "cwd": cwd,
                        "transcript_path": s.env.transcript(&Sealed::rel(session, cwd))})
                    .to_string(),
                    "junk" => "[1]".into(),
                    _ => s.hook(session, cwd, event, tool),
                };
                out.push((what.to_owned(), said(&s.live(command, resident, &stdin))));
                if resident && out.len() == 1 {
                    s.wait_for_helper();
                }
            }
        }
    }
    (out, s)
}

// Proves: a helper gives every answer a process of its own gives, call for
// call, with the same spend in both ledgers: allowed, warned (once: the
// helper records the warning only after the client showed it), blocked,
// prompt refused, halted, stopped after the tool, refused input, and the
// status line; and that the helper did answer (it holds the ledger open).
#[test]
fn the_helper_answers_as_the_process_itself_would() {
    let (alone, _a) = scenario(false);
    let (helped, h) = scenario(true);
    for ((what, a), (_, b)) in alone.iter().zip(&helped) {
        assert_eq!(a, b, "{what}: in process vs by the helper");
    }
    let codes: Vec<Option<i32>> = alone.iter().map(|(_, (c, _, _))| *c).collect();
    assert_eq!(
        codes,
        [0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 2].map(Some).to_vec(),
        "{alone:#?}"
    );
    assert!(alone[2].1 .1.contains("systemMessage"), "{alone:#?}");
    assert_eq!(alone[3].1 .1, "", "a warning is said once");
    assert!(alone[9].1 .1.contains("\"continue\":false"), "{alone:#?}");
    let pid = h.helper_pid().expect("the helper still runs");
    let holds_ledger = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target == h.env.ledger);
    assert!(holds_ledger, "the helper has the ledger open");
}

/// The socket the helper of the binary under test listens on (its name
/// is the executable's device, inode and mtime), its folder made as the
/// client makes it (mode 0700).
fn socket_of_binary(run: &Path) -> PathBuf {
    let dir = run.join("octo-budget");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let m = std::fs::metadata(assert_cmd::cargo::cargo_bin("octo-budget")).unwrap();
    dir.join(format!(
        "{:x}-{:x}-{:x}.{:x}.sock",
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

// Proves: a program that listens on the helper's socket and answers "allow"
// to everything is not believed (it does not run octo-budget's executable):
// a call over the cap is still refused, by the client itself.
#[test]
fn an_impostor_on_the_socket_lets_nothing_through() {
    let s = Sealed::new();
    s.spend(S1, ACME, "a1", 10_500_000);
    let listener = UnixListener::bind(socket_of_binary(&s.run)).unwrap();
    let served = std::thread::spawn(move || {
        use std::io::Write;
        listener.set_nonblocking(false).unwrap();
        let Ok((mut c, _)) = listener.accept() else {
            return false;
        };
        let allow =
            serde_json::to_vec(&json!({"code": 0, "stdout": "", "stderr": "", "warned": false}))
                .unwrap();
        let mut frame = vec![b'R'];
        frame.extend_from_slice(&(allow.len() as u32).to_le_bytes());
        frame.extend_from_slice(&allow);
        let _ = c.write_all(&frame);
        true
    });
    let o = s.live("check", true, &s.hook(S1, ACME, "PreToolUse", "Agent"));
    assert_eq!(o.status.code(), Some(2), "{:?}", said(&o));
    assert!(said(&o).2.contains("has spent $10.50"), "{:?}", said(&o));
    assert!(served.join().unwrap(), "the client did connect to it");
}

// Proves: a helper killed (SIGKILL) between calls costs nothing: the next
// call answers in its own process, as it should, and starts a new helper,
// which answers the call after it.
#[test]
fn a_killed_helper_is_replaced() {
    let s = Sealed::new();
    s.spend(S1, ACME, "a1", 10_500_000);
    let agent = s.hook(S1, ACME, "PreToolUse", "Agent");
    assert_eq!(s.live("check", true, &agent).status.code(), Some(2));
    let first = s.wait_for_helper();
    std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(s.wait_gone(first));
    assert!(s.socket().is_some(), "a dead helper leaves its socket");
    let o = s.live("check", true, &agent);
    assert_eq!(o.status.code(), Some(2), "{:?}", said(&o));
    let second = s.wait_for_helper();
    assert_ne!(first, second);
    assert_eq!(s.live("check", true, &agent).status.code(), Some(2));
}

// Proves: the helper reads budgets.yaml on every call (a raised cap lets
// the next call through), and a ledger deleted and made again is not
// answered from the old file the helper kept open: the new ledger gets
// the session's spend.
#[test]
fn the_helper_follows_the_config_and_a_new_ledger() {
    let s = Sealed::new();
    s.spend(S1, ACME, "a1", 10_500_000);
    let agent = s.hook(S1, ACME, "PreToolUse", "Agent");
    assert_eq!(s.live("check", true, &agent).status.code(), Some(2));
    s.wait_for_helper();
    assert_eq!(s.live("check", true, &agent).status.code(), Some(2));
    s.env
        .write_config(&CONFIG.replacen("monthly_usd_cap: 10\n", "monthly_usd_cap: 20\n", 1));
    let o = s.live("check", true, &agent);
    assert_eq!(o.status.code(), Some(0), "{:?}", said(&o));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = s.env.ledger.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    // The new ledger reads all history on its first gated call.
    let o = s.live("check", true, &agent);
    assert_eq!(o.status.code(), Some(0), "{:?}", said(&o));
    let report: Value = serde_json::from_slice(
        &s.env
            .cmd()
            .args(["report", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        common::micros(&report["totals"]["cost_usd"]),
        10_500_000,
        "{report}"
    );
}

// Proves: a helper ends when its socket is removed (and when another
// helper's replaces it), so a deleted runtime folder leaves no process.
#[test]
fn a_helper_ends_when_its_socket_goes() {
    let s = Sealed::new();
    let read = s.hook(S1, ACME, "PreToolUse", "Read");
    assert_eq!(s.live("check", true, &read).status.code(), Some(0));
    let pid = s.wait_for_helper();
    std::fs::remove_file(s.socket().unwrap()).unwrap();
    assert!(s.wait_gone(pid), "the helper is still running");
}

// Proves: a helper that accepts no more connections (its queue full, as
// when it is stuck) does not hold a call up: the call does not wait to
// connect (it would wait until its 5 s deadline) and answers in its own
// process, with the budget's reason.
#[test]
fn a_full_queue_on_the_socket_holds_no_call_up() {
    use std::os::fd::AsRawFd;
    let s = Sealed::new();
    s.spend(S1, ACME, "a1", 10_500_000);
    let sock = socket_of_binary(&s.run);
    let listener = UnixListener::bind(&sock).unwrap();
    // SAFETY: listen(2) on a socket this test owns, to shrink its queue.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    // Fill the queue: connections nobody accepts, until one would block.
    let mut queued = Vec::new();
    loop {
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, b) in addr
            .sun_path
            .iter_mut()
            .zip(sock.as_os_str().as_encoded_bytes())
        {
            *d = *b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: a valid socket and a sockaddr_un of its full size.
        let rc = unsafe { libc::connect(fd, (&raw const addr).cast(), len) };
        queued.push(fd);
        if rc != 0 {
            break;
        }
        assert!(queued.len() < 1000, "the queue never filled");
    }
    let o = s.live("check", true, &s.hook(S1, ACME, "PreToolUse", "Agent"));
    assert_eq!(o.status.code(), Some(2), "{:?}", said(&o));
    assert!(said(&o).2.contains("has spent $10.50"), "{:?}", said(&o));
    // Waiting to connect, the deadline would have answered ("no answer
    // within 5 s").
    assert!(!said(&o).2.contains("no answer"), "{:?}", said(&o));
    for fd in queued {
        // SAFETY: closing descriptors this test opened.
        unsafe { libc::close(fd) };
    }
}

// Proves: with a team ledger (which the helper leaves to the calling
// process: a connection to the server is per process), a gated call through
// --resident is answered exactly as a call of its own: here the server
// cannot be reached (nothing listens on port 1), so it is refused, with
// that reason, however many calls come.
#[test]
fn a_team_ledgers_calls_are_left_to_the_calling_process() {
    let s = Sealed::new();
    s.env.write_config(&format!(
        "ledger: postgres://octo@127.0.0.1:1/octo\n{CONFIG}"
    ));
    let agent = s.hook(S1, ACME, "PreToolUse", "Agent");
    // The config's `ledger:` (the harness's --ledger would override it).
    let call = |resident: bool| {
        let mut c = assert_cmd::Command::from_std(
            s.env.sealed(assert_cmd::cargo::cargo_bin("octo-budget")),
        );
        let config = s.env.config.to_str().unwrap();
        c.args(["--config", config, "--now", &s.env.now, "check"]);
        if resident {
            c.arg("--resident");
        }
        said(&c.write_stdin(agent.clone()).output().unwrap())
    };
    let alone = call(false);
    assert_eq!(alone.0, Some(2), "{alone:?}");
    assert!(
        alone.2.contains("team ledger") && alone.2.contains("cannot connect"),
        "{alone:?}"
    );
    call(true);
    s.wait_for_helper();
    for _ in 0..2 {
        assert_eq!(call(true), alone);
    }
}
