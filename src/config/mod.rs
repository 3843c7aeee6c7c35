//! budgets.yaml: the configuration the rest of octo-budget reads (this
//! file), the file as written ([`schema`]), loading and validation
//! ([`validate`]), where the file, the ledger and the transcripts are
//! ([`location`]), and the validated config as the ledger keeps it for the
//! hook ([`cached`]).
//!
//! Octorato's file loads unchanged (`budgets:`, `default:`, `spend_json`);
//! everything else is an extension. Validation is strict: an unknown key, a
//! wrong type, a negative cap, a duplicate arm or path, or a bad time zone
//! is an error naming the file, line and key. A broken config is never
//! read as "no budgets".

pub mod cached;
pub mod location;
mod schema;
mod validate;

use std::path::PathBuf;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::money::Micros;
use crate::pricing::table::RowSpec;

pub use validate::{
    normalise_path, read_bounded, PathContext, MAX_CONFIG_BYTES, MAX_FLOW_DEPTH, MAX_USD,
};

/// What a breach does (Octorato's `action_on_breach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Alert,
    #[default]
    Warn,
    HardStop,
    /// Like `hard_stop` below the hard stop; at it, the agent is halted
    /// (every tool call and prompt), not only refused gated tools.
    Stop,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Warn => "warn",
            Action::HardStop => "hard_stop",
            Action::Stop => "stop",
        }
    }

    /// True for the actions that stop work at cap x grace_pct/100.
    pub fn has_hard_stop(self) -> bool {
        matches!(self, Action::HardStop | Action::Stop)
    }
}

/// What `check` does when it cannot decide (`gate: {on_error: ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Deny,
    Allow,
}

/// The caps one arm (or the team total) can have. Any combination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub monthly: Option<Micros>,
    pub weekly: Option<Micros>,
    pub daily: Option<Micros>,
    pub session: Option<Micros>,
    /// Burn rate: spend in the trailing 60 minutes.
    pub per_hour: Option<Micros>,
    /// Every branch of the arm but the trunk ones, over all time
    /// (`branch_usd_cap`).
    pub branch: Option<Micros>,
}

/// The rules every cap of an arm shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub grace_pct: u32,
    pub action: Action,
    pub alert_at_pct: u32,
}

/// True when some cap of `caps` can halt the agent under `policy`: any cap
/// of a `stop` arm (or total) at its hard stop, and the session cap and
/// burn rate of a `hard_stop` arm.
pub fn can_halt(caps: &Caps, policy: &Policy) -> bool {
    match policy.action {
        Action::Stop => *caps != Caps::default(),
        Action::HardStop => caps.session.is_some() || caps.per_hour.is_some(),
        Action::Alert | Action::Warn => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub name: String,
    /// Absolute, normalised repository paths (need not exist here).
    pub paths: Vec<String>,
    pub caps: Caps,
    pub policy: Policy,
    /// `branch_caps:`: branch globs with their own cap, in file order.
    pub branch_caps: Vec<BranchCap>,
}

/// A branch glob and its cap (`branch_caps: {"fix/*": 0.5}`).
#[derive(Debug, Clone)]
pub struct BranchCap {
    pub glob: String,
    /// `glob` compiled (`globset`; `*` matches `/` too).
    pub pattern: globset::GlobMatcher,
    pub cap: Micros,
}

impl PartialEq for BranchCap {
    fn eq(&self, o: &BranchCap) -> bool {
        self.glob == o.glob && self.cap == o.cap
    }
}

impl Eq for BranchCap {}

/// The branches `branch_usd_cap` leaves alone unless `trunk_branches:`
/// says otherwise.
pub const DEFAULT_TRUNK_BRANCHES: [&str; 4] = ["main", "master", "trunk", "develop"];

impl Arm {
    /// True when some cap of the arm can halt the agent (see [`can_halt`];
    /// `branch_caps` too on a `stop` arm).
    pub fn can_halt(&self) -> bool {
        can_halt(&self.caps, &self.policy)
            || (self.policy.action == Action::Stop && !self.branch_caps.is_empty())
    }

    /// The cap of `branch` on this arm, and the glob that gave it (None:
    /// `branch_usd_cap`): the first `branch_caps` glob that matches it;
    /// else `branch_usd_cap` unless it is a trunk branch. No branch (''),
    /// no cap.
    pub fn branch_cap<'a>(
        &'a self,
        branch: &str,
        trunk: &[String],
    ) -> Option<(Micros, Option<&'a str>)> {
        if branch.is_empty() {
            return None;
        }
        if let Some(b) = self.branch_caps.iter().find(|b| b.pattern.is_match(branch)) {
            return Some((b.cap, Some(b.glob.as_str())));
        }
        if trunk.iter().any(|t| t == branch) {
            return None;
        }
        self.caps.branch.map(|c| (c, None))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Total {
    pub caps: Caps,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Exact tool names or `*` globs.
    pub tools: Vec<String>,
    pub on_error: OnError,
}

impl Gate {
    /// True when the gate holds `tool`: one of its names, or a `*` pattern
    /// that matches it.
    pub fn gates(&self, tool: &str) -> bool {
        self.tools.iter().any(|p| tool_matches(p, tool))
    }
}

/// Whether the gate's pattern `p` holds `tool`. A name without glob
/// characters is compared as it is and `prefix*` (the common pattern:
/// `mcp__*`) by its prefix, without building a matcher (the hook decides
/// this on every call); any other pattern through [`tool_pattern`].
fn tool_matches(p: &str, tool: &str) -> bool {
    const GLOB: &[char] = &['*', '?', '[', ']', '{', '}'];
    if p == tool {
        return true;
    }
    if !p.contains(GLOB) {
        return false;
    }
    if let Some(prefix) = p.strip_suffix('*').filter(|pre| !pre.contains(GLOB)) {
        return tool.starts_with(prefix);
    }
    tool_pattern(p).is_some_and(|g| g.is_match(tool))
}

/// A tool-name pattern (`globset`): `*` and `?` match any characters
/// (tool names hold no path separators), `[...]` a class. `None` when it
/// is not a valid pattern.
pub fn tool_pattern(p: &str) -> Option<globset::GlobMatcher> {
    glob_matcher(p).ok()
}

/// A tool-name or branch glob (`globset`): `*` and `?` match any
/// characters, `/` included; `[...]` a class, `{a,b}` either; a backslash
/// is itself (as in the hook's matcher, `hook::glob_to_regex`).
fn glob_matcher(p: &str) -> Result<globset::GlobMatcher, globset::Error> {
    globset::GlobBuilder::new(p)
        .literal_separator(false)
        .backslash_escape(false)
        .build()
        .map(|g| g.compile_matcher())
}

pub const DEFAULT_GATED_TOOLS: [&str; 5] = ["Agent", "Task", "WebSearch", "WebFetch", "mcp__*"];

#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// A day is a spike when it exceeds median + spike_mad * MAD of the
    /// previous 14 days...
    pub spike_mad: f64,
    /// ...and is at least this many dollars above the median.
    pub spike_min: Micros,
    /// Unattributed spend gets its own line above this share of the total...
    pub unattributed_pct: u32,
    /// ...and this many dollars.
    pub unattributed_min: Micros,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            spike_mad: 5.0,
            spike_min: Micros(20 * Micros::PER_DOLLAR),
            unattributed_pct: 10,
            unattributed_min: Micros(5 * Micros::PER_DOLLAR),
        }
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub timezone: Tz,
    pub arms: Vec<Arm>,
    pub total: Option<Total>,
    pub gate: Gate,
    pub alerts: AlertSettings,
    pub prices: Vec<(String, RowSpec)>,
    pub claude_dirs: Vec<PathBuf>,
    pub ledger: Option<PathBuf>,
    /// Branches `branch_usd_cap` does not cap (`trunk_branches:`).
    pub trunk_branches: Vec<String>,
    /// One-line notices for stderr (e.g. an ignored Octorato key).
    pub notices: Vec<String>,
}

/// A config error: where and what.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error(
        "no budgets.yaml found (looked at {tried}); pass --config PATH or set OCTO_BUDGET_CONFIG"
    )]
    NotFound { tried: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts of `tool_matches` answer as the full glob matcher does.
    #[test]
    fn tool_matches_agrees_with_the_glob_matcher() {
        let patterns = [
            "Agent",
            "mcp__*",
            "mcp__github__*",
            "Web*",
            "*",
            "Bash(*)",
            "Ta?k",
            "[AT]*",
            "{Agent,Task}",
            "mcp__*__search",
            "a\\b*",
            "",
        ];
        let tools = [
            "Agent",
            "Task",
            "mcp__github__search",
            "mcp__",
            "mcp_x",
            "WebFetch",
            "Web",
            "Bash(ls)",
            "agent",
            "a\\bc",
            "Read",
            "",
        ];
        for p in patterns {
            for t in tools {
                let want = p == t || tool_pattern(p).is_some_and(|g| g.is_match(t));
                assert_eq!(tool_matches(p, t), want, "pattern {p:?}, tool {t:?}");
            }
        }
    }
}
