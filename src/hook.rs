//! octo-budget's entries in a Claude Code settings.json, as pure functions
//! of JSON values: install merges a PreToolUse group (matcher built from
//! the gated tools plus the file and shell tools self-protection needs, or
//! every tool when some arm can be halted) and a UserPromptSubmit group
//! (and, when some arm can be halted, a PostToolUse group that ends a
//! halted session after a subagent returns), each running `<abs binary>
//! check --config <abs config>` with a short timeout and `"onFailure":
//! "block"`. Every other key and hook is kept as it was, in its order.
//! Installing twice changes nothing; installing with another config
//! replaces octo-budget's entries in place. Uninstall removes octo-budget's
//! own entries and nothing else. Reading and writing the file is the
//! `hook install` command's job.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

/// The hook's timeout in settings.json, in seconds (`check` answers within
/// its own 5 s deadline).
pub const TIMEOUT_S: u64 = 10;

/// Tools the PreToolUse matcher always covers: self-protection must see
/// edits of budgets.yaml and the ledger.
pub const PROTECT_TOOLS: [&str; 5] = ["Edit", "Write", "MultiEdit", "NotebookEdit", "Bash"];

/// The events octo-budget installs entries for.
pub const EVENTS: [&str; 2] = ["PreToolUse", "UserPromptSubmit"];

/// The event added when some arm can be halted: measured on Claude Code
/// 2.1.328, a halt answered inside a subagent ends only the subagent; a
/// PostToolUse answer `{"continue": false}` after its Agent call ends the
/// whole session before the parent's next request.
pub const HALT_EVENT: &str = "PostToolUse";

/// Settings as written: pretty JSON and a final newline.
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A shell command line: each word quoted when it needs to be.
pub fn command_line(exe: &str, args: &[String]) -> String {
    std::iter::once(exe)
        .chain(args.iter().map(String::as_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` as one word for a POSIX shell (`shlex`): unchanged when it holds
/// only safe characters, else quoted. A NUL, which no path or argument can
/// hold, is dropped.
pub fn shell_quote(s: &str) -> String {
    let s = s.replace('\0', "");
    shlex::try_quote(&s)
        .map(|q| q.into_owned())
        .unwrap_or_default()
}

/// Splits a command line into words the way a POSIX shell would for plain
/// words, quotes and backslashes (`shlex`); a line with an unterminated
/// quote has no words.
pub fn shell_words(s: &str) -> Vec<String> {
    shlex::split(s).unwrap_or_default()
}

/// True when a hook handler is octo-budget's: a command whose program
/// (after any `VAR=value` prefixes) is a file named `octo-budget` and that
/// runs its `check` subcommand.
pub fn is_own_handler(handler: &Value) -> bool {
    let Some(cmd) = handler.get("command").and_then(Value::as_str) else {
        return false;
    };
    let words = shell_words(cmd);
    let mut it = words
        .iter()
        .skip_while(|w| w.contains('=') && !w.starts_with('/'));
    let Some(program) = it.next() else {
        return false;
    };
    let is_ours = Path::new(program)
        .file_name()
        .is_some_and(|n| n == "octo-budget");
    is_ours && it.any(|w| w == "check")
}

/// The PreToolUse matcher for `config`: every tool (`*`) when some arm or
/// the total can halt the agent (the kill switch must see cheap tools
/// too), else [`matcher`] of the gated tools.
pub fn matcher_for(config: &crate::config::Config) -> String {
    if config.can_halt() {
        "*".to_owned()
    } else {
        matcher(&config.gate.tools)
    }
}

/// The PreToolUse matcher: the gated tools and the self-protection tools,
/// joined with `|`. Exact names stay a plain list; when a `*`, `?` or `[`
/// pattern is among them, the whole matcher becomes an anchored regex
/// (`^(Agent|mcp__.*|...)$`), which is how Claude Code reads a matcher with
/// other characters than letters, digits, `_`, `-`, `|` and `,`.
pub fn matcher(gated: &[String]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for t in gated.iter().map(String::as_str).chain(PROTECT_TOOLS) {
        if !names.contains(&t) {
            names.push(t);
        }
    }
    let plain = |t: &&str| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if names.iter().all(plain) {
        return names.join("|");
    }
    let alts: Vec<String> = names.iter().map(|t| glob_to_regex(t)).collect();
    format!("^({})$", alts.join("|"))
}

/// A glob (`*`, `?`, `[...]`, `[!...]`) as a regex; everything else is
/// matched literally.
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    // Open `{a,b}` alternations (globset's, which the gate matches with).
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                depth += 1;
                out.push('(');
            }
            ',' if depth > 0 => out.push('|'),
            '}' if depth > 0 => {
                depth -= 1;
                out.push(')');
            }
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push('^');
                }
                for k in chars.by_ref() {
                    if k == '\\' {
                        out.push('\\');
                    }
                    out.push(k);
                    if k == ']' {
                        break;
                    }
                }
            }
            c if "\\.+()|{}^$/".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A command hook handler as octo-budget writes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub command: &'a str,
    pub timeout: u64,
    pub on_failure: &'static str,
}

/// A group of handlers for one event (`matcher` only for tool events).
#[derive(Debug, Serialize)]
pub struct Group<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<&'a str>,
    pub hooks: Vec<Handler<'a>>,
}

/// `statusLine` as octo-budget writes it.
#[derive(Debug, Serialize)]
pub struct StatusLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub command: &'a str,
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("plain structs serialize")
}

/// The group octo-budget installs for `event`.
fn own_group(event: &str, command: &str, matcher: &str) -> Value {
    let matcher = match event {
        "PreToolUse" => Some(matcher),
        HALT_EVENT => Some("*"),
        _ => None,
    };
    to_value(&Group {
        matcher,
        hooks: vec![Handler {
            kind: "command",
            command,
            timeout: TIMEOUT_S,
            on_failure: "block",
        }],
    })
}

/// Where octo-budget's handlers are: (event, group index, handler index).
pub fn find_own(settings: &Value) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let Some(hooks) = settings.get("hooks").and_then(Value::as_object) else {
        return out;
    };
    for (event, groups) in hooks {
        for (gi, g) in groups.as_array().into_iter().flatten().enumerate() {
            for (hi, h) in g
                .get("hooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if is_own_handler(h) {
                    out.push((event.clone(), gi, hi));
                }
            }
        }
    }
    out
}

/// Checks the shape of `hooks` before changing it: an object of arrays of
/// objects whose `hooks` are arrays. Anything else is refused rather than
/// rewritten.
fn check_shape(settings: &Value) -> std::result::Result<(), String> {
    let Some(obj) = settings.as_object() else {
        return Err("not a JSON object".into());
    };
    let Some(hooks) = obj.get("hooks") else {
        return Ok(());
    };
    let Some(hooks) = hooks.as_object() else {
        return Err("\"hooks\" is not an object".into());
    };
    for (event, groups) in hooks {
        let Some(groups) = groups.as_array() else {
            return Err(format!("\"hooks.{event}\" is not an array"));
        };
        for g in groups {
            if !g.is_object() {
                return Err(format!("an entry of \"hooks.{event}\" is not an object"));
            }
            if g.get("hooks").is_some_and(|h| !h.is_array()) {
                return Err(format!(
                    "\"hooks\" of an entry of \"hooks.{event}\" is not an array"
                ));
            }
        }
    }
    Ok(())
}

/// Removes octo-budget's handlers from one event's groups. A group left
/// without handlers is dropped. Returns how many handlers were removed and
/// the index (in the result) where the first removed group stood.
fn strip_event(groups: &mut Vec<Value>) -> (usize, Option<usize>) {
    let mut removed = 0;
    let mut first_at = None;
    let mut kept = Vec::with_capacity(groups.len());
    for mut g in std::mem::take(groups) {
        let mut had_own = false;
        if let Some(hs) = g.get_mut("hooks").and_then(Value::as_array_mut) {
            let before = hs.len();
            hs.retain(|h| !is_own_handler(h));
            had_own = hs.len() < before;
            removed += before - hs.len();
        }
        if had_own && first_at.is_none() {
            first_at = Some(kept.len());
        }
        let empty = g
            .get("hooks")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if !(had_own && empty) {
            kept.push(g);
        }
    }
    *groups = kept;
    (removed, first_at)
}

/// `settings` with octo-budget's entries installed: each event's own
/// handlers are replaced by one group at the place the first of them stood
/// (appended when there was none). Every other key, hook and order is kept.
///
/// With `halting` (some arm can be halted) a PostToolUse entry for every
/// tool is installed too (see [`HALT_EVENT`]); without it an own
/// PostToolUse entry is removed.
pub fn merge(
    mut settings: Value,
    command: &str,
    matcher: &str,
    halting: bool,
) -> std::result::Result<Value, String> {
    let events: Vec<&str> = EVENTS
        .iter()
        .copied()
        .chain(halting.then_some(HALT_EVENT))
        .collect();
    check_shape(&settings)?;
    let obj = settings.as_object_mut().ok_or("not a JSON object")?;
    let hooks = obj
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    let hooks = hooks.as_object_mut().ok_or("\"hooks\" is not an object")?;
    // Own handlers under other events (none are installed there) go too.
    let others: Vec<String> = hooks
        .keys()
        .filter(|k| !events.contains(&k.as_str()))
        .cloned()
        .collect();
    for event in others {
        strip_and_drop_empty(hooks, &event);
    }
    for event in events {
        let groups = hooks
            .entry(event)
            .or_insert_with(|| Value::Array(Vec::new()));
        let groups = groups
            .as_array_mut()
            .ok_or_else(|| format!("\"hooks.{event}\" is not an array"))?;
        let (_, at) = strip_event(groups);
        let group = own_group(event, command, matcher);
        match at {
            Some(i) => groups.insert(i, group),
            None => groups.push(group),
        }
    }
    Ok(settings)
}

/// Removes `event` when stripping our handlers left it empty.
fn strip_and_drop_empty(hooks: &mut Map<String, Value>, event: &str) -> usize {
    let Some(groups) = hooks.get_mut(event).and_then(Value::as_array_mut) else {
        return 0;
    };
    let (removed, _) = strip_event(groups);
    if removed > 0 && groups.is_empty() {
        hooks.shift_remove(event);
    }
    removed
}

/// `settings` without octo-budget's handlers, and how many were removed.
/// Groups, events and the `hooks` key left empty by the removal go too;
/// nothing else changes.
pub fn remove(mut settings: Value) -> std::result::Result<(Value, usize), String> {
    check_shape(&settings)?;
    let obj = settings.as_object_mut().ok_or("not a JSON object")?;
    let Some(hooks) = obj.get_mut("hooks").and_then(Value::as_object_mut) else {
        return Ok((settings, 0));
    };
    let events: Vec<String> = hooks.keys().cloned().collect();
    let removed: usize = events.iter().map(|e| strip_and_drop_empty(hooks, e)).sum();
    if removed > 0 && hooks.is_empty() {
        obj.shift_remove("hooks");
    }
    Ok((settings, removed))
}

/// True when a `statusLine` setting is octo-budget's: a command whose
/// program is a file named `octo-budget` running `statusline`.
pub fn is_own_statusline(setting: &Value) -> bool {
    let Some(cmd) = setting.get("command").and_then(Value::as_str) else {
        return false;
    };
    let words = shell_words(cmd);
    let mut it = words
        .iter()
        .skip_while(|w| w.contains('=') && !w.starts_with('/'));
    let is_ours = it
        .next()
        .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == "octo-budget"));
    is_ours && it.any(|w| w == "statusline")
}

/// `settings` with `statusLine` running `command`: set where there is
/// none, replaced where it is octo-budget's (in place), and replaced where
/// it is another program's only with `force`.
pub fn merge_statusline(
    mut settings: Value,
    command: &str,
    force: bool,
) -> std::result::Result<Value, String> {
    let obj = settings.as_object_mut().ok_or("not a JSON object")?;
    if let Some(existing) = obj.get("statusLine") {
        if !force && !is_own_statusline(existing) {
            return Err(format!(
                "a statusLine is already set ({}); pass --force to replace it, or leave out --statusline",
                serde_json::to_string(existing).unwrap_or_default()
            ));
        }
    }
    obj.insert(
        "statusLine".into(),
        to_value(&StatusLine {
            kind: "command",
            command,
        }),
    );
    Ok(settings)
}

/// `settings` without octo-budget's `statusLine` (another program's is
/// kept), and whether one was removed.
pub fn remove_statusline(mut settings: Value) -> (Value, bool) {
    let removed = match settings.as_object_mut() {
        Some(obj) if obj.get("statusLine").is_some_and(is_own_statusline) => {
            obj.shift_remove("statusLine");
            true
        }
        _ => false,
    };
    (settings, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statusline_is_set_only_where_free_or_ours_or_forced() {
        let ours = "/opt/bin/octo-budget statusline --color always --config /c.yaml";
        let other =
            json!({"theme": "dark", "statusLine": {"type": "command", "command": "~/bin/ccline"}});
        // Free: added; again: unchanged (idempotent).
        let once = merge_statusline(json!({"theme": "dark"}), ours, false).unwrap();
        assert_eq!(once["statusLine"]["command"], ours);
        assert_eq!(merge_statusline(once.clone(), ours, false).unwrap(), once);
        // Another program's: refused without --force, replaced with it.
        assert!(merge_statusline(other.clone(), ours, false).is_err());
        let forced = merge_statusline(other.clone(), ours, true).unwrap();
        assert_eq!(forced["statusLine"]["command"], ours);
        // Ours with another config: replaced in place, key order kept.
        let moved = merge_statusline(
            json!({"statusLine": {"type": "command", "command": "/old/octo-budget statusline"}, "z": 1}),
            ours,
            false,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&moved).unwrap(),
            format!("{{\"statusLine\":{{\"type\":\"command\",\"command\":\"{ours}\"}},\"z\":1}}")
        );
        // Removal takes only ours.
        assert_eq!(remove_statusline(other.clone()), (other, false));
        let (left, removed) = remove_statusline(once);
        assert!(removed);
        assert_eq!(left, json!({"theme": "dark"}));
        assert!(!is_own_statusline(
            &json!({"command": "/opt/bin/octo-budget check"})
        ));
        assert!(is_own_statusline(
            &json!({"command": "'/my dir/octo-budget' statusline"})
        ));
    }

    const CMD: &str = "/opt/bin/octo-budget check --config /etc/ob/budgets.yaml";

    fn default_matcher() -> String {
        matcher(
            &crate::config::DEFAULT_GATED_TOOLS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn matcher_is_plain_names_or_an_anchored_regex() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            matcher(&names(&["Agent", "Task"])),
            "Agent|Task|Edit|Write|MultiEdit|NotebookEdit|Bash"
        );
        assert_eq!(
            default_matcher(),
            "^(Agent|Task|WebSearch|WebFetch|mcp__.*|Edit|Write|MultiEdit|NotebookEdit|Bash)$"
        );
        // A gated tool that is also protected appears once.
        assert_eq!(
            matcher(&names(&["Bash"])),
            "Bash|Edit|Write|MultiEdit|NotebookEdit"
        );
        assert_eq!(
            glob_to_regex("mcp__play?ight__[!x]*"),
            "mcp__play.ight__[^x].*"
        );
        assert_eq!(glob_to_regex("a.b"), "a\\.b");
        // An alternation, as the gate (globset) reads it.
        assert_eq!(glob_to_regex("mcp__{a,b}__*"), "mcp__(a|b)__.*");
    }

    #[test]
    fn quoting_round_trips_through_shell_words() {
        assert_eq!(shell_quote("/usr/bin/octo-budget"), "/usr/bin/octo-budget");
        assert_eq!(
            shell_words(&shell_quote("/my dir/it's.yaml")),
            vec!["/my dir/it's.yaml"]
        );
        let line = command_line(
            "/my dir/octo-budget",
            &["check".into(), "--config".into(), "/a b/'q'.yaml".into()],
        );
        assert_eq!(
            shell_words(&line),
            vec!["/my dir/octo-budget", "check", "--config", "/a b/'q'.yaml"]
        );
        assert_eq!(
            shell_words(r#"a "b \"c\"" d\ e"#),
            vec!["a", "b \"c\"", "d e"]
        );
    }

    #[test]
    fn own_handlers_are_recognised() {
        let h = |c: &str| json!({"type": "command", "command": c});
        assert!(is_own_handler(&h(CMD)));
        assert!(is_own_handler(&h("'/my dir/octo-budget' check")));
        assert!(is_own_handler(&h(
            "RUST_LOG=1 octo-budget check --config x"
        )));
        assert!(!is_own_handler(&h("/opt/bin/octo-budget report")));
        assert!(!is_own_handler(&h("/opt/bin/other-tool check")));
        assert!(!is_own_handler(&h("echo octo-budget check")));
        assert!(!is_own_handler(
            &json!({"type": "http", "url": "https://x"})
        ));
    }

    #[test]
    fn install_into_empty_settings_adds_both_events() {
        let m = default_matcher();
        let v = merge(json!({}), CMD, &m, false).unwrap();
        assert_eq!(
            v,
            json!({"hooks": {
                "PreToolUse": [{"matcher": m, "hooks": [{"type": "command", "command": CMD, "timeout": 10, "onFailure": "block"}]}],
                "UserPromptSubmit": [{"hooks": [{"type": "command", "command": CMD, "timeout": 10, "onFailure": "block"}]}]
            }})
        );
    }

    #[test]
    fn install_keeps_everything_else_in_order_and_is_idempotent() {
        let before = json!({
            "model": "opus",
            "hooks": {
                "PostToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "prettier -w"}]}],
                "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}]
            },
            "permissions": {"allow": ["Bash(npm test)"]}
        });
        let once = merge(before.clone(), CMD, "Agent", false).unwrap();
        let twice = merge(once.clone(), CMD, "Agent", false).unwrap();
        assert_eq!(render(&once), render(&twice));
        let keys: Vec<&String> = once.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["model", "hooks", "permissions"]);
        let events: Vec<&String> = once["hooks"].as_object().unwrap().keys().collect();
        assert_eq!(events, ["PostToolUse", "PreToolUse", "UserPromptSubmit"]);
        assert_eq!(
            once["hooks"]["PreToolUse"][0],
            before["hooks"]["PreToolUse"][0]
        );
        assert_eq!(once["hooks"]["PreToolUse"][1]["matcher"], "Agent");
        assert_eq!(once["hooks"]["PostToolUse"], before["hooks"]["PostToolUse"]);
        // Uninstall gives back exactly what was there.
        let (back, n) = remove(twice).unwrap();
        assert_eq!(n, 2);
        assert_eq!(render(&back), render(&before));
    }

    #[test]
    fn reinstall_replaces_own_entries_in_place() {
        let old = "/old/octo-budget check --config /old/budgets.yaml";
        let before = json!({"hooks": {"PreToolUse": [
            {"matcher": "Agent", "hooks": [{"type": "command", "command": old}]},
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
        ]}});
        let after = merge(before, CMD, "Agent|Task", false).unwrap();
        let pre = after["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0]["hooks"][0]["command"], CMD);
        assert_eq!(pre[0]["matcher"], "Agent|Task");
        assert_eq!(pre[1]["hooks"][0]["command"], "guard.sh");
        assert_eq!(find_own(&after).len(), 2);
    }

    #[test]
    fn halting_adds_a_post_tool_use_entry_and_removes_it_again() {
        let before = json!({"hooks": {"PostToolUse": [
            {"matcher": "Write", "hooks": [{"type": "command", "command": "prettier -w"}]}
        ]}});
        let on = merge(before.clone(), CMD, "*", true).unwrap();
        assert_eq!(
            on["hooks"]["PostToolUse"],
            json!([
                {"matcher": "Write", "hooks": [{"type": "command", "command": "prettier -w"}]},
                {"matcher": "*", "hooks": [{"type": "command", "command": CMD, "timeout": 10, "onFailure": "block"}]}
            ])
        );
        assert_eq!(find_own(&on).len(), 3);
        assert_eq!(
            render(&merge(on.clone(), CMD, "*", true).unwrap()),
            render(&on)
        );
        let off = merge(on, CMD, "Agent", false).unwrap();
        assert_eq!(off["hooks"]["PostToolUse"], before["hooks"]["PostToolUse"]);
        assert_eq!(find_own(&off).len(), 2);
    }

    #[test]
    fn own_handler_sharing_a_group_is_removed_alone() {
        let before = json!({"hooks": {"PreToolUse": [
            {"matcher": "Agent", "hooks": [
                {"type": "command", "command": "log.sh"},
                {"type": "command", "command": CMD}
            ]}
        ]}, "env": {"A": "1"}});
        let (after, n) = remove(before).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            after,
            json!({"hooks": {"PreToolUse": [{"matcher": "Agent", "hooks": [{"type": "command", "command": "log.sh"}]}]}, "env": {"A": "1"}})
        );
    }

    #[test]
    fn remove_without_own_entries_changes_nothing() {
        let before = json!({"hooks": {}, "x": [1, 2]});
        let (after, n) = remove(before.clone()).unwrap();
        assert_eq!(n, 0);
        assert_eq!(render(&after), render(&before));
    }

    #[test]
    fn malformed_hooks_are_refused() {
        assert!(merge(json!({"hooks": []}), CMD, "Agent", false).is_err());
        assert!(merge(json!({"hooks": {"PreToolUse": {}}}), CMD, "Agent", false).is_err());
        assert!(remove(json!({"hooks": {"PreToolUse": [{"hooks": "x"}]}})).is_err());
        assert!(merge(json!([1]), CMD, "Agent", false).is_err());
    }
}
