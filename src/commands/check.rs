//! `octo-budget check`: the PreToolUse / UserPromptSubmit hook.
//!
//! Exit 0 allows (possibly with a one-time warning in hook JSON on stdout);
//! exit 2 blocks with a one-line reason on stderr; exit 0 with hook JSON
//! that denies the call and says `continue: false` halts the agent (the
//! kill switch). Every failure blocks too, unless `gate: {on_error:
//! allow}`; `check` never exits 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use octo_budget::budget::caps::{blocking, halting};
use octo_budget::budget::Tier;
use octo_budget::budget::{Evaluator, Which};
use octo_budget::config::OnError;
use octo_budget::ledger::notices::NoticeKey;
use octo_budget::protect;
use serde::Deserialize;

use super::{absolute, guard, reuse_or_open, Context, LiveLedger, Loaded};
use crate::error::{Error, Result};
use crate::exit;
use crate::output::hook_reply;

/// How long `check` waits for another process's ledger lock.
pub const LOCK_WAIT: Duration = Duration::from_millis(2_500);
/// `check` answers within this, whatever happens (the installed hook's
/// timeout is 10 s).
pub const DEADLINE: Duration = Duration::from_secs(5);
/// How long a call may read history into a ledger that has not read it
/// all yet, from the start of `check` (leaving time to commit and decide
/// before [`DEADLINE`]).
pub const HISTORY_BUDGET: Duration = Duration::from_millis(3_000);
/// The most stdin `check` reads.
const MAX_STDIN: u64 = 64 << 20;

/// The hook input fields `check` uses.
#[derive(Debug, Deserialize, Default)]
pub struct HookInput {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub transcript_path: Option<PathBuf>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub hook_event_name: Option<String>,
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub tool_input: Option<serde_json::Value>,
    /// Set when the call comes from inside a subagent (whose
    /// `session_id` and `transcript_path` are its parent's).
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// The decision, before it is turned into output and an exit code.
pub enum Decision {
    Allow,
    Warn(Box<Warning>),
    Block(String),
    /// Refuse the tool call and halt the agent (PreToolUse only).
    Halt(String),
    /// End a halted session after a tool ran (PostToolUse only).
    Stop(String),
}

/// A warning to show once: recorded as given only after it was written.
pub struct Warning {
    message: String,
    ledger: LiveLedger,
    scope: String,
    cap: &'static str,
    period_start: String,
    level: &'static str,
    now_ms: i64,
}

impl Warning {
    /// Records the warning as given (once it was shown).
    pub fn record(&self) {
        // A warning that could not be recorded is shown again next time.
        let _ = self.ledger.record_notice(
            &NoticeKey {
                channel: "hook",
                scope: &self.scope,
                cap: self.cap,
                period_start: &self.period_start,
                level: self.level,
            },
            self.now_ms,
        );
    }
}

/// The hook events `check` decides (PreToolUse, UserPromptSubmit, and
/// PostToolUse when some arm can be halted). Everything else is refused,
/// except `Stop` and `SubagentStop`, where a refusal (exit 2) would make Claude
/// Code keep working instead of stopping (see README, "Hook input").
const STOP_EVENTS: [&str; 2] = ["Stop", "SubagentStop"];

/// What `check` answers: the exit code and what it prints, plus the
/// warning to record as given once `stdout` was written.
pub struct Reply {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
    pub warning: Option<Box<Warning>>,
}

/// Runs the hook in this process: loads the config, reads stdin (unless
/// `input` holds it, read already), decides, prints, returns the exit code.
pub fn run(ctx: &Context, input: Option<Result<Vec<u8>>>) -> u8 {
    let reply = match ctx.load_live() {
        Err(e) => failure(&e.into(), false),
        Ok((loaded, early)) => {
            // From here on a failure (or the deadline, or a signal)
            // answers as the config says.
            let allow = on_error_allows(&loaded);
            guard::set_on_error_allow(allow);
            answer(ctx, &loaded, early, input.unwrap_or_else(read_input))
        }
    };
    let warning = reply.warning.is_some();
    let (code, shown) = deliver(reply.code, &reply.stdout, &reply.stderr);
    if let (true, Some(w)) = (shown && warning, reply.warning) {
        w.record();
    }
    code
}

/// Whether the loaded config allows a call `check` cannot decide.
pub fn on_error_allows(loaded: &Loaded) -> bool {
    loaded.config.gate.on_error == OnError::Allow
}

/// The hook input on stdin (at most [`MAX_STDIN`] bytes).
pub fn read_input() -> Result<Vec<u8>> {
    super::read_stdin(MAX_STDIN, "the hook input on stdin")
}

/// The answer to the hook `input`, the config loaded (and `early`, the
/// ledger loading it opened).
pub fn answer(
    ctx: &Context,
    loaded: &Loaded,
    mut early: Option<LiveLedger>,
    input: Result<Vec<u8>>,
) -> Reply {
    let allow = on_error_allows(loaded);
    let decision = input.and_then(|input| decide(ctx, loaded, &input, &mut early));
    let said = |code: u8, stdout: String, stderr: String| Reply {
        code,
        stdout,
        stderr,
        warning: None,
    };
    match decision {
        Ok(Decision::Allow) => said(exit::OK, String::new(), String::new()),
        Ok(Decision::Warn(w)) => Reply {
            code: exit::OK,
            stdout: format!("{}\n", hook_reply::system_message(&w.message)),
            stderr: String::new(),
            warning: Some(w),
        },
        Ok(Decision::Block(reason)) => said(exit::BLOCK, String::new(), format!("{reason}\n")),
        Ok(Decision::Halt(reason)) => said(
            exit::OK,
            format!("{}\n", hook_reply::halt(&reason)),
            String::new(),
        ),
        Ok(Decision::Stop(reason)) => said(
            exit::OK,
            format!("{}\n", hook_reply::stop(&reason)),
            String::new(),
        ),
        Err(e) => failure(&e, allow),
    }
}

/// Gives the answer, unless the deadline or a signal gave one first:
/// claims `code` ([`guard::claim`]) and, when this is the first claim,
/// writes `stdout` and `stderr`. Returns the exit code and whether
/// `stdout` was written in full (a warning is then recorded as given).
pub fn deliver(code: u8, stdout: &str, stderr: &str) -> (u8, bool) {
    let claimed = guard::claim(code);
    if claimed != code {
        return (claimed, false);
    }
    let mut shown = true;
    if !stdout.is_empty() {
        let mut out = std::io::stdout().lock();
        shown = out
            .write_all(stdout.as_bytes())
            .and_then(|()| out.flush())
            .is_ok();
    }
    if !stderr.is_empty() {
        let _ = std::io::stderr().write_all(stderr.as_bytes());
    }
    (code, shown)
}

/// What a failure answers: refuse (the default) or allow when the loaded
/// config says `on_error: allow` (`allow`).
pub fn failure(e: &Error, allow: bool) -> Reply {
    let reason = e.to_string().replace('\n', " ");
    let (code, tail) = if allow {
        (exit::OK, guard::ALLOW_TAIL)
    } else {
        (exit::BLOCK, guard::REFUSE_TAIL)
    };
    Reply {
        code,
        stdout: String::new(),
        stderr: format!("{}{reason}{tail}", guard::HEAD),
        warning: None,
    }
}

/// The failure answer, given now, from what is already known (no config
/// is loaded again here): for a panic.
pub fn fail(e: &Error) -> u8 {
    let reply = failure(e, guard::on_error_allow());
    deliver(reply.code, &reply.stdout, &reply.stderr).0
}

/// The hook input, checked: a known event with the fields it needs
/// (PreToolUse: a non-empty `tool_name` and an object as `tool_input`;
/// UserPromptSubmit: `prompt`, when present, a string). The
/// other fields `check` reads must have their types, or the input is
/// refused as not being hook JSON.
fn validate(raw: &serde_json::Value) -> Result<()> {
    let refuse = |why: &str| Err(Error::Undecided(why.to_owned()));
    let event = match raw.get("hook_event_name") {
        None => return refuse("hook input has no hook_event_name"),
        Some(serde_json::Value::String(e)) => e.as_str(),
        Some(_) => return refuse("hook input's hook_event_name is not a string"),
    };
    match event {
        "PreToolUse" => {
            let tool = raw.get("tool_name").and_then(|t| t.as_str());
            if tool.is_none_or(|t| t.trim().is_empty()) {
                return refuse("PreToolUse hook input has no tool_name (a non-empty string)");
            }
            if !raw.get("tool_input").is_some_and(|i| i.is_object()) {
                return refuse("PreToolUse hook input's tool_input is missing or not an object");
            }
        }
        "UserPromptSubmit" => {
            if raw.get("prompt").is_some_and(|p| !p.is_string()) {
                return refuse("UserPromptSubmit hook input's prompt is not a string");
            }
        }
        // Installed when some arm can be halted: ends a halted session.
        "PostToolUse" => {}
        e if STOP_EVENTS.contains(&e) => {}
        other => {
            return refuse(&format!(
                "octo-budget check decides only PreToolUse and UserPromptSubmit hook events, not {:?}; wire it to those (octo-budget hook install)",
                other.chars().take(64).collect::<String>()
            ))
        }
    }
    Ok(())
}

fn not_hook_json(e: &serde_json::Error) -> Error {
    Error::Undecided(format!("stdin is not Claude Code hook JSON: {e}"))
}

/// `early`: the ledger if [`Context::load_live`] opened it already.
fn decide(
    ctx: &Context,
    loaded: &Loaded,
    stdin: &[u8],
    early: &mut Option<LiveLedger>,
) -> Result<Decision> {
    let cfg = &loaded.config;
    let raw: serde_json::Value = serde_json::from_slice(stdin).map_err(|e| not_hook_json(&e))?;
    if !raw.is_object() {
        return Err(Error::Undecided(
            "stdin is not Claude Code hook JSON (not an object)".into(),
        ));
    }
    validate(&raw)?;
    let hook: HookInput = serde_json::from_value(raw).map_err(|e| not_hook_json(&e))?;
    let event = hook.hook_event_name.as_deref().unwrap_or("");
    let tool = hook.tool_name.as_deref().unwrap_or("");
    let (is_prompt, what) = match event {
        "PreToolUse" => (false, tool.to_owned()),
        "UserPromptSubmit" => (true, "this prompt".to_owned()),
        "PostToolUse" => return Ok(after_tool(ctx, loaded, &hook, early)),
        _ => return Ok(Decision::Allow), // Stop, SubagentStop: never held
    };
    let mut cwd = hook.cwd.clone().filter(|c| !c.is_empty()).or_else(|| {
        ctx.env
            .claude_project_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    });
    let config_path = absolute(&cfg.path, ctx);
    let ledger_path = absolute(&ctx.locations.ledger_path(cfg), ctx);
    if !is_prompt {
        let protected = protect::Protected::new(
            &config_path,
            &ledger_path,
            &ctx.locations
                .transcript_trees(cfg, hook.transcript_path.as_deref()),
            ctx.env.home.as_deref(),
        );
        if let Some(reason) = protected.check(tool, hook.tool_input.as_ref(), cwd.as_deref()) {
            return Ok(Decision::Block(reason));
        }
    }
    let is_gated = is_prompt || cfg.gate.gates(tool);
    // Once some arm or the total can halt the agent, every call of every
    // session is decided (a halted session must stop whatever it runs).
    let halting_config = cfg.can_halt();
    // A tool the gate lets through, when nothing can halt, enforces
    // nothing: its arm is not even looked up.
    let lets_through = !halting_config && !is_gated;
    let mut arm = if lets_through {
        None
    } else {
        cwd.as_deref().and_then(|c| loaded.arm_of_dir(c))
    };
    if lets_through || (!halting_config && cwd.is_some() && arm.is_none() && cfg.total.is_none()) {
        // Nothing to enforce (a tool the gate lets through, or no arm and
        // no team cap), but the session's new bytes are read all the same:
        // a response once in the ledger cannot be lowered by rewriting the
        // transcript later (copies merge by maximum).
        read_session(early, &ledger_path, &hook);
        return Ok(Decision::Allow);
    }
    let mut ledger = reuse_or_open(early, &ledger_path, LOCK_WAIT)?;
    let history_read = ledger.history_read()?;
    if history_read {
        // A team ledger that needs a sync: connect while reading.
        ctx.preconnect_team(cfg, &ledger, TEAM_WAIT);
    }
    if !history_read {
        // A ledger that has not read all history yet (the hook was wired
        // by hand, without `hook install` or `ingest`): read it, committing
        // as it goes, for as long as this call can afford. Every later call
        // continues where this one stopped.
        let until = ctx.started + history_budget(ctx);
        let (_, complete) = ctx.ingest_all_until(loaded, &mut ledger, Some(until))?;
        if !complete {
            return Err(Error::Undecided(
                "the ledger is still reading the transcript history for the first time; each call reads more, and `octo-budget ingest` finishes it now".into(),
            ));
        }
    } else if let Some(t) = hook
        .transcript_path
        .as_deref()
        .filter(|t| !t.as_os_str().is_empty())
    {
        ctx.ingest_session(&mut ledger, t, hook.session_id.as_deref())?;
        if is_prompt {
            // Prompts come at a person's pace: also read what other
            // sessions wrote since their last hook call (a session that
            // ended without a tool call, or spent after its last one, is
            // otherwise seen only by the next `ingest`, `report` or cron
            // run). A stat per transcript plus new bytes, for as long as
            // the call can afford; what is left is read by the next one.
            let until = ctx.started + history_budget(ctx);
            ctx.ingest_all_until(loaded, &mut ledger, Some(until))?;
        }
    }
    if history_read {
        // A team ledger: this session's new responses go up, the team's
        // come down (one round trip; a first read of history synced),
        // unless the working copy synced within --team-cache-ms.
        ctx.sync_team_unless_fresh(cfg, &mut ledger, TEAM_WAIT)?;
    }
    let session = hook.session_id.as_deref();
    // A halted session stays halted, subagents included (they carry the
    // parent's session id), until a prompt of its own passes the check.
    let halt_key = session.filter(|s| !s.is_empty() && halting_config);
    let halted = match halt_key {
        Some(s) => ledger.halt(s)?,
        None => None,
    };
    let own_prompt = is_prompt && hook.agent_id.is_none();
    if let Some(h) = halted.as_ref().filter(|_| !own_prompt) {
        return Ok(halt_decision(
            is_prompt,
            hook_reply::halt_reason(&h.head, &what, &h.tail),
        ));
    }
    if cwd.is_none() {
        // No cwd and no CLAUDE_PROJECT_DIR: the session's own cwd, as the
        // ledger knows it; else only the team total can be enforced.
        cwd = match hook.session_id.as_deref() {
            Some(s) => ledger.session_cwd(s)?,
            None => None,
        };
        arm = cwd.as_deref().and_then(|c| loaded.arm_of_dir(c));
        if cwd.is_none() && cfg.total.is_none() {
            if !is_gated {
                return Ok(Decision::Allow); // only the kill switch looks at it
            }
            return Err(Error::Undecided(
                "cannot tell which arm this call is for: the hook input has no cwd, CLAUDE_PROJECT_DIR is not set and the ledger does not know the session's folder".into(),
            ));
        }
        if arm.is_none() && cfg.total.is_none() && halted.is_none() {
            return Ok(Decision::Allow);
        }
    }
    let eval = Evaluator {
        loaded,
        ledger: &*ledger,
        now: ctx.now,
    };
    let which = if is_gated { Which::All } else { Which::Halting };
    let mut caps = eval.caps_of(arm, session, which)?;
    // The session's branch: that of its latest response (or prompt) that
    // named one, as the ledger knows it after reading the session's new
    // bytes above.
    if arm.is_some_and(|i| cfg.arms[i].caps.branch.is_some() || !cfg.arms[i].branch_caps.is_empty())
    {
        let branch = match session {
            Some(s) => ledger.session_branch(s)?,
            None => None,
        };
        caps.extend(eval.branch_cap(arm, branch.as_deref(), which)?);
    }
    if let Some(c) = halting(&caps) {
        let (head, tail) = hook_reply::halt_parts(c, cfg.timezone, session);
        if let Some(s) = halt_key {
            ledger.record_halt(s, &head, &tail, ctx.now.timestamp_millis())?;
        }
        return Ok(halt_decision(
            is_prompt,
            hook_reply::halt_reason(&head, &what, &tail),
        ));
    }
    if let (Some(_), Some(s)) = (&halted, halt_key) {
        ledger.clear_halt(s)?; // the session's own prompt passed
    }
    if !is_gated {
        return Ok(Decision::Allow);
    }
    if let Some(c) = blocking(&caps) {
        return Ok(Decision::Block(hook_reply::block_reason(
            c,
            &what,
            cfg.timezone,
            session,
        )));
    }
    // A warning once per arm, cap, period and tier.
    for c in caps.iter().filter(|c| c.tier >= Tier::Alert) {
        let (scope, period_start) = c.notice_scope_and_start(ctx.now, cfg.timezone, session);
        let key = NoticeKey {
            channel: "hook",
            scope: &scope,
            cap: c.kind.as_str(),
            period_start: &period_start,
            level: c.tier.as_str(),
        };
        if ledger.notice_given(&key)? {
            continue;
        }
        let message = hook_reply::warning(c, session);
        return Ok(Decision::Warn(Box::new(Warning {
            message,
            ledger,
            cap: c.kind.as_str(),
            level: c.tier.as_str(),
            scope,
            period_start,
            now_ms: ctx.now.timestamp_millis(),
        })));
    }
    Ok(Decision::Allow)
}

/// PostToolUse (installed when some arm can be halted): ends a session the
/// kill switch has halted, whose tool has just run. Measured on Claude Code
/// 2.1.328, a halt answered inside a subagent ends only the subagent; this
/// answer after the parent's Agent call ends the whole session before its
/// next request. It only looks the halt up (no ingest, no caps: PreToolUse
/// decides), and any failure allows: the tool has run already, and the
/// next PreToolUse still halts.
fn after_tool(
    ctx: &Context,
    loaded: &super::Loaded,
    hook: &HookInput,
    early: &mut Option<LiveLedger>,
) -> Decision {
    let cfg = &loaded.config;
    let Some(session) = hook.session_id.as_deref().filter(|s| !s.is_empty()) else {
        return Decision::Allow;
    };
    if !cfg.can_halt() {
        return Decision::Allow;
    }
    let ledger_path = absolute(&ctx.locations.ledger_path(cfg), ctx);
    if !ledger_path.exists() {
        return Decision::Allow;
    }
    let halt =
        reuse_or_open(early, &ledger_path, LOCK_WAIT).and_then(|ledger| ledger.halt(session));
    match halt {
        Ok(Some(h)) => Decision::Stop(hook_reply::halted_reason(&h.head, &h.tail)),
        _ => Decision::Allow,
    }
}

/// A halt: a tool call is denied with `continue: false`; a prompt is
/// refused with exit 2 (Claude Code then makes no request at all).
fn halt_decision(is_prompt: bool, reason: String) -> Decision {
    if is_prompt {
        Decision::Block(reason)
    } else {
        Decision::Halt(reason)
    }
}

/// How long a gated call waits to connect to a team ledger's server
/// (its answer then follows `gate.on_error`, well inside [`DEADLINE`]).
const TEAM_WAIT: Duration = Duration::from_secs(2);

/// How long a call that enforces nothing waits for the ledger's lock.
const READ_ONLY_WAIT: Duration = Duration::from_millis(250);
/// The most new transcript bytes such a call reads (well inside the
/// deadline); a session that wrote more is read by the next gated call.
const READ_ONLY_MAX_BYTES: u64 = 16 << 20;

/// Reads the session's new transcript bytes on a call that enforces
/// nothing. Best effort: the call is allowed whatever happens here (the
/// tool is not gated), and what is not read now (busy ledger, more than
/// [`READ_ONLY_MAX_BYTES`] of new bytes) is read on a later call.
/// A ledger that has never read anything is left to the first gated call,
/// which reads all history.
fn read_session(early: &mut Option<LiveLedger>, ledger_path: &Path, hook: &HookInput) {
    let Some(t) = hook
        .transcript_path
        .as_deref()
        .filter(|t| !t.as_os_str().is_empty())
    else {
        return;
    };
    let Ok(mut ledger) = reuse_or_open(early, ledger_path, READ_ONLY_WAIT) else {
        return;
    };
    if ledger.history_read().unwrap_or(false) {
        let files = octo_budget::transcript::discover::session_files(t, hook.session_id.as_deref());
        let _ = octo_budget::ledger::ingest::ingest_within(
            &mut ledger,
            &files,
            &mut octo_budget::ledger::ingest::NoProgress,
            READ_ONLY_MAX_BYTES,
        );
    }
}

fn history_budget(ctx: &Context) -> Duration {
    ctx.global.history_budget_ms.map_or(HISTORY_BUDGET, |ms| {
        Duration::from_millis(ms).min(HISTORY_BUDGET)
    })
}
