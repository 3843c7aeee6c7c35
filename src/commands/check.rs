//! `octo-budget check`: the PreToolUse / UserPromptSubmit hook.
//!
//! Exit 0 allows (possibly with a one-time warning in hook JSON on stdout);
//! exit 2 blocks with a one-line reason on stderr; exit 0 with hook JSON
//! that denies the call and says `continue: false` halts the agent (the
//! kill switch). Every failure blocks too, unless `gate: {on_error:
//! allow}`; `check` never exits 1.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::evaluate::{Evaluator, Which};
use super::Context;
use crate::budget::Tier;
use crate::config::{normalise_path, OnError};
use crate::exit;
use crate::ledger::notices::NoticeKey;
use crate::output::hook_reply;

/// How long `check` waits for another process's ledger lock.
pub const LOCK_WAIT: Duration = Duration::from_millis(2_500);
/// `check` answers within this, whatever happens (the installed hook's
/// timeout is 10 s).
pub const DEADLINE: Duration = Duration::from_secs(5);
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
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Warn(String),
    Block(String),
    /// Refuse the tool call and halt the agent (PreToolUse only).
    Halt(String),
}

/// Runs the hook: reads stdin, decides, prints, returns the exit code.
pub fn run(ctx: &Context) -> u8 {
    let mut input = Vec::new();
    let stdin_result = std::io::stdin().take(MAX_STDIN).read_to_end(&mut input);
    let outcome = stdin_result
        .map_err(anyhow::Error::from)
        .and_then(|_| decide(ctx, &input));
    match outcome {
        Ok(Decision::Allow) => exit::OK,
        Ok(Decision::Warn(msg)) => {
            println!("{}", hook_reply::system_message(&msg));
            exit::OK
        }
        Ok(Decision::Block(reason)) => {
            eprintln!("{reason}");
            exit::BLOCK
        }
        Ok(Decision::Halt(reason)) => {
            println!("{}", hook_reply::halt(&reason));
            exit::OK
        }
        Err(e) => fail(ctx, &e),
    }
}

/// What a failure does: refuse (the default) or allow when the config says
/// `on_error: allow` (which needs a config that loads).
pub fn fail(ctx: &Context, e: &anyhow::Error) -> u8 {
    let reason = format!("{e:#}").replace('\n', " ");
    let allow = ctx
        .load()
        .map(|l| l.config.gate.on_error == OnError::Allow)
        .unwrap_or(false);
    if allow {
        eprintln!("octo-budget: cannot check the budget ({reason}); allowing the call because budgets.yaml sets gate.on_error: allow");
        exit::OK
    } else {
        eprintln!("octo-budget: cannot check the budget ({reason}); refusing the call until this is fixed (or set gate.on_error: allow in budgets.yaml)");
        exit::BLOCK
    }
}

fn decide(ctx: &Context, stdin: &[u8]) -> Result<Decision> {
    let loaded = ctx.load()?;
    let cfg = &loaded.config;
    let hook: HookInput =
        serde_json::from_slice(stdin).context("stdin is not Claude Code hook JSON")?;
    let event = hook.hook_event_name.as_deref().unwrap_or("");
    let tool = hook.tool_name.as_deref().unwrap_or("");
    let (is_prompt, what) = match event {
        "PreToolUse" => (false, tool.to_owned()),
        "UserPromptSubmit" => (true, "this prompt".to_owned()),
        _ => return Ok(Decision::Allow),
    };
    let cwd = hook.cwd.clone().filter(|c| !c.is_empty()).or_else(|| {
        ctx.env
            .claude_project_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    });
    let config_path = absolute(&cfg.path, ctx);
    let ledger_path = absolute(&ctx.ledger_path(cfg), ctx);
    if !is_prompt {
        if let Some(reason) = self_protection(
            tool,
            hook.tool_input.as_ref(),
            cwd.as_deref(),
            &config_path,
            &ledger_path,
        ) {
            return Ok(Decision::Block(reason));
        }
    }
    let is_gated = is_prompt || gated(tool, &cfg.gate.tools);
    // Once some arm or the total can halt the agent, every call of every
    // session is looked at (a halted session must stop whatever it runs);
    // otherwise a tool the gate does not list needs nothing more.
    let halting_config = cfg.can_halt();
    if !is_gated && !halting_config {
        return Ok(Decision::Allow);
    }
    let arm = cwd
        .as_deref()
        .and_then(|c| loaded.attributor.by_cwd(&normalise_path(c)));
    if arm.is_none() && cfg.total.is_none() && !halting_config {
        return Ok(Decision::Allow); // no arm and no team cap: nothing to enforce
    }
    let mut ledger = crate::ledger::Ledger::open(&ledger_path, LOCK_WAIT)?;
    if !ledger.has_read_any_file()? {
        // A ledger that has never read anything (the hook was wired by hand,
        // without `hook install` or `ingest`): read all history once, or
        // every other session's spend would be missing from the caps.
        ctx.ingest_all(&loaded, &mut ledger, false)?;
    } else if let Some(t) = hook
        .transcript_path
        .as_deref()
        .filter(|t| !t.as_os_str().is_empty())
    {
        ctx.ingest_session(&mut ledger, t, hook.session_id.as_deref())?;
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
    let eval = Evaluator {
        loaded: &loaded,
        ledger: &ledger,
        now: ctx.now,
    };
    let which = if is_gated { Which::All } else { Which::Halting };
    let caps = eval.caps_of(arm, session, which)?;
    if let Some(c) = super::evaluate::halting(&caps) {
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
    if let Some(c) = super::evaluate::blocking(&caps) {
        return Ok(Decision::Block(hook_reply::block_reason(
            c,
            &what,
            cfg.timezone,
            session,
        )));
    }
    // A warning once per arm, cap, period and tier.
    for c in caps.iter().filter(|c| c.tier >= Tier::Alert) {
        // The burn rate's window moves with every call: key it by the clock
        // hour instead, or its warning would repeat on every call.
        let key_start = match c.kind {
            crate::commands::evaluate::CapKind::Hourly => {
                ctx.now
                    - chrono::Duration::milliseconds(
                        ctx.now.timestamp_millis().rem_euclid(3_600_000),
                    )
            }
            _ => c.period.start,
        };
        let period_start = key_start.with_timezone(&cfg.timezone).to_rfc3339();
        let session_scope;
        let scope = match (c.kind, session) {
            (crate::commands::evaluate::CapKind::Session, Some(s)) => {
                session_scope = format!("{}/{s}", c.scope.name());
                session_scope.as_str()
            }
            _ => c.scope.name(),
        };
        let key = NoticeKey {
            channel: "hook",
            scope,
            cap: c.kind.as_str(),
            period_start: &period_start,
            level: c.tier.as_str(),
        };
        if ledger.notice_given(&key)? {
            continue;
        }
        if ledger.record_notice(&key, ctx.now.timestamp_millis())? {
            return Ok(Decision::Warn(hook_reply::warning(c, session)));
        }
    }
    Ok(Decision::Allow)
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

fn absolute(p: &Path, ctx: &Context) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        ctx.env.cwd.clone().unwrap_or_default().join(p)
    };
    PathBuf::from(normalise_path(&abs.to_string_lossy()))
}

/// True when `tool` matches one of the gate's names or `*` patterns.
pub fn gated(tool: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| p == tool || glob::Pattern::new(p).is_ok_and(|g| g.matches(tool)))
}

const FILE_TOOLS: [&str; 4] = ["Edit", "Write", "MultiEdit", "NotebookEdit"];

/// Refuses edits of the config or the ledger, whatever the arm and tier:
/// the agent runs as the same user as the gate.
pub fn self_protection(
    tool: &str,
    input: Option<&serde_json::Value>,
    cwd: Option<&str>,
    config: &Path,
    ledger: &Path,
) -> Option<String> {
    let protected = protected_forms(config, ledger);
    let refuse = |target: &str| {
        Some(format!(
            "octo-budget: {tool} of {target} refused: agents may not change the budget config ({}) or ledger ({}); ask a person to do it",
            config.display(),
            ledger.display()
        ))
    };
    if FILE_TOOLS.contains(&tool) {
        let input = input?;
        let target = ["file_path", "notebook_path", "path"]
            .iter()
            .find_map(|k| input.get(*k).and_then(|v| v.as_str()))?;
        let abs = if target.starts_with('/') {
            normalise_path(target)
        } else {
            normalise_path(&format!("{}/{target}", cwd.unwrap_or("/")))
        };
        let canonical = std::fs::canonicalize(&abs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| abs.clone());
        let hit = protected.full.iter().any(|p| {
            abs == *p
                || canonical == *p
                || abs.starts_with(&format!("{}-", p))
                || canonical.starts_with(&format!("{}-", p))
        });
        return if hit { refuse(&abs) } else { None };
    }
    if tool == "Bash" {
        let cmd = input?.get("command")?.as_str()?;
        let named = protected
            .full
            .iter()
            .chain(protected.names.iter())
            .find(|p| cmd.contains(p.as_str()))?;
        return refuse(named);
    }
    None
}

struct Protected {
    /// Absolute (and canonical) paths of the config and the ledger.
    full: Vec<String>,
    /// Their file names, as a shell command may name them from their folder.
    names: Vec<String>,
}

fn protected_forms(config: &Path, ledger: &Path) -> Protected {
    let mut full = Vec::new();
    let mut names = Vec::new();
    for p in [config, ledger] {
        let s = p.to_string_lossy().into_owned();
        if let Ok(c) = std::fs::canonicalize(p) {
            let c = c.to_string_lossy().into_owned();
            if c != s {
                full.push(c);
            }
        }
        full.push(s);
        if let Some(n) = p.file_name() {
            names.push(n.to_string_lossy().into_owned());
        }
    }
    Protected { full, names }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gate_patterns_match_names_and_globs() {
        let pats: Vec<String> = ["Agent", "Task", "mcp__*"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(gated("Agent", &pats));
        assert!(gated("mcp__playwright__click", &pats));
        assert!(!gated("TaskCreate", &pats));
        assert!(!gated("Bash", &pats));
    }

    #[test]
    fn edits_of_config_or_ledger_are_refused() {
        let cfg = Path::new("/home/u/.config/octo-budget/budgets.yaml");
        let led = Path::new("/home/u/.local/share/octo-budget/ledger.sqlite");
        let edit = |p: &str| {
            self_protection(
                "Edit",
                Some(&json!({"file_path": p})),
                Some("/home/u/.config/octo-budget"),
                cfg,
                led,
            )
        };
        assert!(edit("/home/u/.config/octo-budget/budgets.yaml").is_some());
        assert!(edit("budgets.yaml").is_some()); // relative to cwd
        assert!(edit("/home/u/.local/share/octo-budget/ledger.sqlite-wal").is_some());
        assert!(edit("/home/u/project/src/main.rs").is_none());
        let bash = |c: &str| self_protection("Bash", Some(&json!({"command": c})), None, cfg, led);
        assert!(bash("sed -i s/1000/9999/ budgets.yaml").is_some());
        assert!(bash("rm /home/u/.local/share/octo-budget/ledger.sqlite").is_some());
        assert!(bash("cargo test").is_none());
        assert!(
            self_protection("Read", Some(&json!({"file_path": cfg})), None, cfg, led).is_none()
        );
    }
}
