//! `octo-budget statusline`: the command for Claude Code's `statusLine`
//! setting. Claude Code writes one JSON object on stdin at each refresh
//! (`session_id`, `transcript_path`, `cwd`, `workspace.current_dir` /
//! `project_dir`, `model`, `cost`, ...) and shows the first line printed.
//!
//! It costs what `check` costs: the same ledger update (only the session's
//! new bytes) and the same cap evaluation. It never breaks the UI: any
//! failure, panic or hang prints one short `octo-budget: ...` line and
//! exits 0 (a hang: an alarm at [`DEADLINE`]).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use octo_budget::budget::Period;
use octo_budget::budget::{CapKind, Evaluator};
use octo_budget::config::normalise_path;
use serde_json::Value;

use super::{guard, Context, LiveLedger, Loaded};
use crate::error::{Error, Result};
use crate::exit;
use crate::output::status_line::{tightest, StatusLine};
use octo_budget::config::ConfigError;

/// How long a refresh may take before it prints what it knows (nothing)
/// and exits.
pub const DEADLINE: Duration = Duration::from_secs(3);
/// How long it waits for another process's ledger lock.
const LOCK_WAIT: Duration = Duration::from_millis(1_000);
/// The most one refresh spends reading history into a ledger that has not
/// read it all yet (what it read is kept; the next refresh continues).
const HISTORY_BUDGET: Duration = Duration::from_millis(1_500);
/// The most stdin it reads (the status JSON is a few hundred bytes).
const MAX_STDIN: u64 = 1 << 20;
/// The longest error line (the status line is one terminal row).
const MAX_ERROR: usize = 100;

/// The fields of the status JSON that are used; any may be missing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StatusInput {
    pub session_id: Option<String>,
    pub transcript_path: Option<PathBuf>,
    /// `cwd`, else `workspace.current_dir`, else `workspace.project_dir`.
    pub cwd: Option<String>,
}

impl StatusInput {
    pub fn parse(bytes: &[u8]) -> Result<StatusInput> {
        let v: Value = serde_json::from_slice(bytes).map_err(|_| {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                Error::Undecided("no status JSON on stdin".into())
            } else {
                Error::Undecided("stdin is not Claude Code status JSON".into())
            }
        })?;
        if !v.is_object() {
            return Err(Error::Undecided(
                "stdin is not Claude Code status JSON".into(),
            ));
        }
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let ws = v.get("workspace");
        Ok(StatusInput {
            session_id: text(v.get("session_id")),
            transcript_path: text(v.get("transcript_path")).map(PathBuf::from),
            cwd: text(v.get("cwd"))
                .or_else(|| text(ws.and_then(|w| w.get("current_dir"))))
                .or_else(|| text(ws.and_then(|w| w.get("project_dir")))),
        })
    }
}

/// Whether the line was printed (by the normal path or the deadline).
static PRINTED: AtomicBool = AtomicBool::new(false);
/// What the deadline prints (its seconds are [`DEADLINE`]'s).
const LATE: &[u8] = b"octo-budget: no answer within 3 s (is `octo-budget ingest` needed?)\n";

/// Prints the line (or the error line) and returns 0, whatever happens;
/// with `resident`, the resident helper computes it when it can.
pub fn run(ctx: &Context, resident: bool) -> u8 {
    std::panic::set_hook(Box::new(|_| {}));
    arm_deadline();
    let line = if resident {
        std::panic::catch_unwind(|| super::resident::statusline(ctx))
            .unwrap_or_else(|_| error_line("internal error"))
    } else {
        in_process(ctx, None)
    };
    emit(&line);
    exit::OK
}

/// The line, computed in this process from stdin (or `input`, read
/// already).
pub fn in_process(ctx: &Context, input: Option<Result<Vec<u8>>>) -> String {
    let tty = std::io::stdout().is_terminal();
    let computed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let input = input.unwrap_or_else(read_input);
        line(ctx, input, ctx.load_live(), tty)
    }));
    match computed {
        Ok(l) => l,
        Err(_) => error_line("internal error"),
    }
}

/// The status JSON on stdin (at most [`MAX_STDIN`] bytes).
pub fn read_input() -> Result<Vec<u8>> {
    super::read_stdin(MAX_STDIN, "stdin")
}

/// The line for the status JSON `input`, with the config loaded (and the
/// ledger opened on the way), coloured for a terminal when `tty`; a
/// failure is an error line.
pub fn line(
    ctx: &Context,
    input: Result<Vec<u8>>,
    loaded: std::result::Result<(Loaded, Option<LiveLedger>), ConfigError>,
    tty: bool,
) -> String {
    match compute(ctx, input, loaded, tty) {
        Ok(l) => l,
        Err(e) => error_line(&e.to_string()),
    }
}

/// An alarm (SIGALRM) at [`DEADLINE`] prints [`LATE`] and exits 0, unless
/// the line is being printed already. An alarm rather than a watchdog
/// thread: nothing to start on every refresh.
fn arm_deadline() {
    guard::install(libc::SIGALRM, on_alarm);
    guard::alarm_in(DEADLINE);
}

/// Only async-signal-safe work: an atomic swap, write(2), _exit(2).
extern "C" fn on_alarm(_: libc::c_int) {
    if PRINTED.swap(true, Ordering::SeqCst) {
        return; // the normal path is printing: it finishes and exits
    }
    guard::write_all(1, LATE);
    // SAFETY: _exit is async-signal-safe and ends every thread.
    unsafe { libc::_exit(exit::OK as libc::c_int) }
}

/// Prints `line` once (unless the deadline printed already); a closed
/// stdout is ignored.
fn emit(line: &str) {
    if !PRINTED.swap(true, Ordering::SeqCst) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn error_line(msg: &str) -> String {
    let mut s = format!("octo-budget: {}", msg.replace(['\n', '\r'], " "));
    if s.len() > MAX_ERROR {
        let mut cut = MAX_ERROR - 1;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn compute(
    ctx: &Context,
    input: Result<Vec<u8>>,
    loaded: std::result::Result<(Loaded, Option<LiveLedger>), ConfigError>,
    tty: bool,
) -> Result<String> {
    let input = StatusInput::parse(&input?)?;
    let (loaded, mut early) = loaded?;
    let cfg = &loaded.config;
    let cwd = input.cwd.clone().or_else(|| {
        ctx.env
            .claude_project_dir
            .as_ref()
            .or(ctx.env.cwd.as_ref())
            .map(|p| p.to_string_lossy().into_owned())
    });
    let arm = cwd
        .as_deref()
        .filter(|c| c.starts_with('/'))
        .and_then(|c| loaded.attributor().by_cwd(&normalise_path(c)));
    let ledger_path = super::absolute(&ctx.locations.ledger_path(cfg), ctx);
    let mut ledger = super::reuse_or_open(&mut early, &ledger_path, LOCK_WAIT)?;
    // As `check` does: history first on a ledger that has not read it all
    // (committed as it goes, so the next refresh continues), else only the
    // session's new bytes.
    if !ledger.history_read()? {
        let until = ctx.started + HISTORY_BUDGET;
        let (_, complete) = ctx.ingest_all_until(&loaded, &mut ledger, Some(until))?;
        if !complete {
            return Err(Error::Undecided(
                "reading history; `octo-budget ingest` finishes it".into(),
            ));
        }
    } else if let Some(t) = input.transcript_path.as_deref() {
        if Path::new(t).is_file() {
            ctx.ingest_session(&mut ledger, t, input.session_id.as_deref())?;
        }
        ctx.sync_team_unless_fresh(cfg, &mut ledger, std::time::Duration::from_secs(2))?;
    }
    let eval = Evaluator {
        loaded: &loaded,
        ledger: &*ledger,
        now: ctx.now,
    };
    let session = input.session_id.as_deref();
    let caps = eval.caps(arm, session)?;
    let session_spend = match (session, caps.iter().find(|c| c.kind == CapKind::Session)) {
        (_, Some(c)) => Some(c.spent),
        (Some(s), None) => Some(eval.engine().of_all(&Period::whole(), Some(s))?),
        (None, None) => None,
    };
    let burn = caps
        .iter()
        .find(|c| c.kind == CapKind::Hourly)
        .map(|c| c.spent);
    let status = StatusLine {
        arm: arm.map(|i| cfg.arms[i].name.as_str()),
        tightest: tightest(&caps),
        session: session_spend,
        burn,
    };
    Ok(status.render(ctx.color(tty)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_fields_and_fallbacks() {
        let full = br#"{"session_id":"s1","transcript_path":"/t/s1.jsonl","cwd":"/w/a",
            "workspace":{"current_dir":"/w/b","project_dir":"/w/c"},"model":{"id":"x"}}"#;
        let i = StatusInput::parse(full).unwrap();
        assert_eq!(i.session_id.as_deref(), Some("s1"));
        assert_eq!(i.transcript_path, Some(PathBuf::from("/t/s1.jsonl")));
        assert_eq!(i.cwd.as_deref(), Some("/w/a"));
        let ws = StatusInput::parse(br#"{"workspace":{"current_dir":"/w/b"}}"#).unwrap();
        assert_eq!(ws.cwd.as_deref(), Some("/w/b"));
        let pd = StatusInput::parse(br#"{"cwd":"","workspace":{"project_dir":"/w/c"}}"#).unwrap();
        assert_eq!(pd.cwd.as_deref(), Some("/w/c"));
        // Wrong types count as missing, not as an error.
        let odd = StatusInput::parse(br#"{"session_id":5,"cwd":null,"workspace":[]}"#).unwrap();
        assert_eq!(odd, StatusInput::default());
        assert!(StatusInput::parse(b"[1]").is_err());
        assert!(StatusInput::parse(b"\xff\xfe").is_err());
        assert!(StatusInput::parse(b"").is_err());
    }

    #[test]
    fn the_late_line_names_the_deadline() {
        let late = std::str::from_utf8(LATE).unwrap();
        assert!(late.contains(&format!("within {} s", DEADLINE.as_secs())));
        assert!(late.ends_with('\n') && late.trim_end().len() <= MAX_ERROR);
    }

    #[test]
    fn error_lines_are_short_and_single() {
        let long = "x".repeat(500) + "\nmore";
        let l = error_line(&long);
        assert!(l.chars().count() <= MAX_ERROR);
        assert!(!l.contains('\n'));
        assert!(l.starts_with("octo-budget: "));
    }
}
