//! `octo-budget hook install|uninstall` on real settings files, run as the
//! real binary in a sealed environment.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::Env;
use serde_json::{json, Value};

const CONFIG: &str = "budgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 100\n";

fn env() -> Env {
    let env = Env::new();
    env.write_config(CONFIG);
    env
}

fn run(env: &Env, args: &[&str]) -> Output {
    env.cmd().arg("hook").args(args).output().unwrap()
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn binary() -> String {
    fs::canonicalize(assert_cmd::cargo::cargo_bin("octo-budget"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The command line install writes for `env`.
fn expected_command(env: &Env) -> String {
    let cfg = fs::canonicalize(&env.config).unwrap();
    let led = fs::canonicalize(env.ledger.parent().unwrap())
        .unwrap()
        .join("ledger.sqlite");
    format!(
        "{} check --resident --config {} --ledger {}",
        binary(),
        cfg.display(),
        led.display()
    )
}

const MATCHER: &str =
    "^(Agent|Task|WebSearch|WebFetch|mcp__.*|Edit|Write|MultiEdit|NotebookEdit|Bash)$";

fn own(command: &str) -> Value {
    json!({"type": "command", "command": command, "timeout": 10, "onFailure": "block"})
}

/// A settings.json a user already has: other hooks, other keys.
fn existing() -> Value {
    json!({
        "$schema": "https://json.schemastore.org/claude-code-settings.json",
        "model": "opus",
        "env": {"FOO": "1"},
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 5}]}],
            "PostToolUse": [{"matcher": "Write|Edit", "hooks": [{"type": "command", "command": "prettier --write"}]}]
        },
        "permissions": {"allow": ["Bash(npm test)"], "deny": []}
    })
}

// Proves: install into an existing settings.json appends octo-budget's
// PreToolUse group (matcher from the gated tools plus the self-protection
// tools) and UserPromptSubmit group, with the binary's absolute path, the
// absolute --config (and the --ledger it was given), timeout 10 and
// onFailure block, keeping every other key, hook and their order.
#[test]
fn install_merges_into_existing_settings() {
    let env = env();
    let settings = env.path().join("settings.json");
    fs::write(
        &settings,
        serde_json::to_string_pretty(&existing()).unwrap(),
    )
    .unwrap();
    let o = run(&env, &["install", "--settings", settings.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.starts_with("installed octo-budget's hook in ") && out.lines().count() == 1,
        "{out}"
    );
    let cmd = expected_command(&env);
    let mut want = existing();
    want["hooks"]["PreToolUse"]
        .as_array_mut()
        .unwrap()
        .push(json!({"matcher": MATCHER, "hooks": [own(&cmd)]}));
    want["hooks"]["UserPromptSubmit"] = json!([{"hooks": [own(&cmd)]}]);
    let got = read(&settings);
    assert_eq!(got, want);
    // Order is kept too (Value equality ignores it).
    assert_eq!(
        got.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["$schema", "model", "env", "hooks", "permissions"]
    );
    assert_eq!(
        got["hooks"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["PreToolUse", "PostToolUse", "UserPromptSubmit"]
    );
}

// Proves: installing twice changes nothing (byte for byte, no rewrite),
// and uninstall then restores exactly the settings the user had.
#[test]
fn install_is_idempotent_and_uninstall_restores_the_original() {
    let env = env();
    let settings = env.path().join("settings.json");
    let original = serde_json::to_string_pretty(&existing()).unwrap() + "\n";
    fs::write(&settings, &original).unwrap();
    let s = settings.to_str().unwrap();
    assert!(run(&env, &["install", "--settings", s]).status.success());
    let once = fs::read(&settings).unwrap();
    let o = run(&env, &["install", "--settings", s]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("nothing changed"), "{:?}", text(&o));
    assert_eq!(fs::read(&settings).unwrap(), once);
    let o = run(&env, &["uninstall", "--settings", s]);
    assert!(o.status.success());
    assert_eq!(
        text(&o).0.trim(),
        format!(
            "removed 2 octo-budget hook entries from {}",
            fs::canonicalize(&settings).unwrap().display()
        )
    );
    assert_eq!(fs::read_to_string(&settings).unwrap(), original);
    // Uninstalling again finds nothing and changes nothing.
    let o = run(&env, &["uninstall", "--settings", s]);
    assert!(o.status.success() && text(&o).0.contains("nothing changed"));
    assert_eq!(fs::read_to_string(&settings).unwrap(), original);
}

// Proves: re-installing with another config replaces octo-budget's own
// entries in place (even an old one without onFailure, written by hand)
// and leaves a hook sharing their group alone.
#[test]
fn reinstall_with_another_config_updates_own_entries_in_place() {
    let env = env();
    let settings = env.path().join("settings.json");
    fs::write(
        &settings,
        json!({"hooks": {
            "PreToolUse": [
                {"matcher": "Agent|Task", "hooks": [{"type": "command", "command": "/usr/local/bin/octo-budget check", "timeout": 30}]},
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
            ],
            "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "log-prompt.sh"}, {"type": "command", "command": "octo-budget check"}]}]
        }})
        .to_string(),
    )
    .unwrap();
    let o = run(&env, &["install", "--settings", settings.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.starts_with("updated "), "{:?}", text(&o));
    let cmd = expected_command(&env);
    assert_eq!(
        read(&settings),
        json!({"hooks": {
            "PreToolUse": [
                {"matcher": MATCHER, "hooks": [own(&cmd)]},
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
            ],
            "UserPromptSubmit": [
                {"hooks": [own(&cmd)]},
                {"hooks": [{"type": "command", "command": "log-prompt.sh"}]}
            ]
        }})
    );
}

// Proves: `--project DIR` writes DIR/.claude/settings.json, creating the
// folders; the default target is $CLAUDE_CONFIG_DIR/settings.json, and
// ~/.claude/settings.json without it (--user).
#[test]
fn targets_project_user_and_claude_config_dir() {
    let env = env();
    let proj = env.path().join("repo");
    fs::create_dir_all(&proj).unwrap();
    assert!(run(&env, &["install", "--project", proj.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        read(&proj.join(".claude/settings.json"))["hooks"]["PreToolUse"][0]["matcher"],
        MATCHER
    );
    // Default: the sealed CLAUDE_CONFIG_DIR.
    assert!(run(&env, &["install"]).status.success());
    assert!(read(&env.claude.join("settings.json"))["hooks"]["UserPromptSubmit"].is_array());
    // Without CLAUDE_CONFIG_DIR, --user means ~/.claude/settings.json.
    let o = env
        .cmd()
        .env_remove("CLAUDE_CONFIG_DIR")
        .args(["hook", "install", "--user"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(read(&env.home.join(".claude/settings.json"))["hooks"]["PreToolUse"].is_array());
}

// Proves: an existing file that is not valid JSON (or not an object, or
// with a malformed "hooks") is refused with one line and never overwritten.
#[test]
fn invalid_settings_are_refused_and_left_alone() {
    let env = env();
    let settings = env.path().join("settings.json");
    for bad in [
        "{\"model\": \"opus\",",
        "[1, 2]",
        "{\"hooks\": [\"x\"]}",
        "{\"hooks\": {\"PreToolUse\": {}}}",
    ] {
        fs::write(&settings, bad).unwrap();
        for action in ["install", "uninstall"] {
            let o = run(&env, &[action, "--settings", settings.to_str().unwrap()]);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(5), "{action} {bad}: {out} {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("nothing was changed"), "{err}");
            assert_eq!(fs::read_to_string(&settings).unwrap(), bad);
        }
    }
}

// Proves: --dry-run prints the resulting JSON and writes nothing (no file
// is created either).
#[test]
fn dry_run_shows_and_writes_nothing() {
    let env = env();
    let settings = env.path().join("new").join("settings.json");
    let o = run(
        &env,
        &[
            "install",
            "--settings",
            settings.to_str().unwrap(),
            "--dry-run",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let shown: Value = serde_json::from_str(&out).expect("the resulting JSON on stdout");
    assert_eq!(
        shown["hooks"]["PreToolUse"][0]["hooks"][0],
        own(&expected_command(&env))
    );
    assert!(err.contains("dry run, nothing written"), "{err}");
    assert!(!settings.exists() && !settings.parent().unwrap().exists());
    // Uninstall --dry-run on an installed file shows it without the entries.
    fs::create_dir_all(settings.parent().unwrap()).unwrap();
    fs::write(&settings, &out).unwrap();
    let o = run(
        &env,
        &[
            "uninstall",
            "--settings",
            settings.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        json!({})
    );
    assert_eq!(fs::read_to_string(&settings).unwrap(), out);
}

// Proves: writing keeps the file's permissions, leaves no temporary file
// behind, and updates the target of a symlinked settings.json (the link
// stays a link).
#[test]
fn atomic_write_keeps_permissions_and_symlinks() {
    let env = env();
    let real_dir = env.path().join("dotfiles");
    fs::create_dir_all(&real_dir).unwrap();
    let real = real_dir.join("settings.json");
    fs::write(&real, "{\"model\": \"opus\"}").unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let link = env.path().join("settings.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(
        run(&env, &["install", "--settings", link.to_str().unwrap()])
            .status
            .success()
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(read(&real)["model"], "opus");
    assert!(read(&real)["hooks"]["PreToolUse"].is_array());
    let leftovers: Vec<PathBuf> = fs::read_dir(&real_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &real)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// Proves: paths with spaces and quotes are quoted for the shell, so the
// command Claude Code runs finds the config; and the installed command
// really works as the hook (refuses at hard stop, allows otherwise).
#[test]
fn installed_command_runs_as_the_hook() {
    let env = Env::new();
    let cfg_dir = env.path().join("my budgets");
    fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("team's.yaml");
    fs::write(
        &cfg,
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 1\n    grace_pct: 100\n    action_on_breach: hard_stop\n",
    )
    .unwrap();
    let settings = env.path().join("settings.json");
    // The harness passes its own --config, so this one goes by environment.
    let mut c = assert_cmd::Command::cargo_bin("octo-budget").unwrap();
    c.env_clear()
        .env("HOME", &env.home)
        .env("CLAUDE_CONFIG_DIR", &env.claude)
        .env("OCTO_BUDGET_CONFIG", &cfg)
        .env("OCTO_BUDGET_LEDGER", &env.ledger)
        .current_dir(env.path());
    let o = c
        .args(["hook", "install", "--settings", settings.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let command = read(&settings)["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    // Quoted (the run through a shell below proves how).
    assert!(command.contains("'"), "quoted: {command}");
    let transcript = env.append(
        "-x-acme/s1.jsonl",
        &[common::assistant(
            "s1",
            "/x/acme",
            "m1",
            "r1",
            "2026-11-20T10:00:00.000Z",
            "claude-haiku-4-5",
            json!({"input_tokens": 2_000_000, "output_tokens": 0}),
        )],
    );
    let hook_input = |tool: &str| {
        json!({"session_id": "s1", "transcript_path": transcript, "cwd": "/x/acme",
               "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": {}})
        .to_string()
    };
    // Run it the way Claude Code does: through a shell, with a clean environment.
    let sh = |tool: &str| {
        let mut c = assert_cmd::Command::new("/bin/sh");
        c.env_clear()
            .env("HOME", &env.home)
            .env("CLAUDE_CONFIG_DIR", &env.claude)
            .env("XDG_RUNTIME_DIR", &env.run)
            .env("OCTO_BUDGET_NOW", common::NOW)
            .args(["-c", &command])
            .write_stdin(hook_input(tool))
            .output()
            .unwrap()
    };
    let o = sh("Agent");
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(
        text(&o)
            .1
            .contains("arm \"acme\" has spent $2.00 of its $1.00 monthly cap"),
        "{:?}",
        text(&o)
    );
    let o = sh("Read");
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

// Proves: install refuses (exit 3, nothing written) when the config does
// not load: a hook pointing at a broken config would refuse every call.
#[test]
fn install_refuses_a_broken_config() {
    let env = Env::new();
    env.write_config("budgets:\n  - arm: acme\n    montly_usd_cap: 5\n");
    let settings = env.path().join("settings.json");
    let o = run(&env, &["install", "--settings", settings.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(text(&o).1.contains("montly_usd_cap"));
    assert!(!settings.exists());
}

// Proves: install reads the transcripts already on disk into the ledger,
// so the first hook call already sees the arm's history (a session whose
// own transcript is not the one that spent the money is still blocked).
#[test]
fn install_warms_the_ledger_with_existing_history() {
    let env = Env::new();
    env.write_config(
        "budgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 1\n    grace_pct: 100\n    action_on_breach: hard_stop\n",
    );
    // $2 spent by an earlier session (2M haiku input tokens).
    env.append(
        "-x-acme/old-session.jsonl",
        &[common::assistant(
            "old-session",
            "/x/acme",
            "msg_old",
            "req_old",
            "2026-11-10T10:00:00.000Z",
            "claude-haiku-4-5",
            common::usage(2_000_000, 0),
        )],
    );
    let settings = env.path().join("settings.json");
    let out = run(&env, &["install", "--settings", settings.to_str().unwrap()]);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("(1 of 1 transcript files read)"), "{err}");
    // A new session's hook call: its own transcript holds nothing yet.
    let new_session = env.transcript("-x-acme/new-session.jsonl");
    fs::write(&new_session, "").unwrap();
    let input = json!({"session_id": "new-session", "transcript_path": new_session,
        "cwd": "/x/acme", "hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_input": {}});
    let out = env
        .cmd()
        .arg("check")
        .write_stdin(input.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}

// Proves: the PreToolUse matcher is every tool (`*`), with a PostToolUse
// entry for every tool, while some arm or the total can halt the agent
// (stop; a hard_stop arm with max_usd_per_hour or session_usd_cap; total
// with stop), and the gated tools (no PostToolUse) otherwise;
// re-running install after each config change switches it both ways,
// replacing octo-budget's own entries (never a second copy) and keeping
// the user's hook; --dry-run shows the new matcher and writes nothing.
#[test]
fn matcher_follows_whether_some_arm_can_halt() {
    let env = env();
    let settings = env.path().join("settings.json");
    fs::write(
        &settings,
        json!({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}]}})
            .to_string(),
    )
    .unwrap();
    let s = settings.to_str().unwrap();
    let matcher_after = |yaml: &str| -> String {
        env.write_config(yaml);
        let o = run(&env, &["install", "--settings", s]);
        assert!(o.status.success(), "{:?}", text(&o));
        let v = read(&settings);
        let pre = v["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2, "{v}");
        assert_eq!(pre[0]["hooks"][0]["command"], "guard.sh");
        assert_eq!(pre[0]["matcher"], "Bash");
        assert_eq!(pre[1]["hooks"], json!([own(&expected_command(&env))]));
        assert_eq!(v["hooks"]["UserPromptSubmit"].as_array().unwrap().len(), 1);
        let m = pre[1]["matcher"].as_str().unwrap().to_owned();
        // The PostToolUse entry (ending a session halted inside a subagent)
        // comes and goes with the `*` matcher.
        let post = &v["hooks"]["PostToolUse"];
        if m == "*" {
            assert_eq!(
                post,
                &json!([{"matcher": "*", "hooks": [own(&expected_command(&env))]}])
            );
        } else {
            assert!(post.is_null(), "{v}");
        }
        m
    };
    let arm = "budgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 100\n";
    assert_eq!(
        matcher_after(&format!("{arm}    action_on_breach: stop\n")),
        "*"
    );
    assert_eq!(
        matcher_after(&format!("{arm}    action_on_breach: hard_stop\n")),
        MATCHER
    );
    assert_eq!(
        matcher_after(&format!(
            "{arm}    action_on_breach: hard_stop\n    max_usd_per_hour: 20\n"
        )),
        "*"
    );
    assert_eq!(
        matcher_after(&format!(
            "{arm}    action_on_breach: warn\n    max_usd_per_hour: 20\n"
        )),
        MATCHER
    );
    assert_eq!(
        matcher_after(&format!("default:\n  action_on_breach: stop\n{arm}")),
        "*"
    );
    assert_eq!(
        matcher_after(&format!(
            "default:\n  action_on_breach: hard_stop\n  session_usd_cap: 5\n{arm}"
        )),
        "*"
    );
    assert_eq!(
        matcher_after(&format!(
            "{arm}total:\n  daily_usd_cap: 50\n  action_on_breach: stop\n"
        )),
        "*"
    );
    assert_eq!(matcher_after(CONFIG), MATCHER);
    // --dry-run shows the switch and leaves the file alone.
    let before = fs::read(&settings).unwrap();
    env.write_config(&format!("{arm}    action_on_breach: stop\n"));
    let o = run(&env, &["install", "--settings", s, "--dry-run"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["hooks"]["PreToolUse"][1]["matcher"], "*");
    assert!(err.contains("PreToolUse matcher \"*\""), "{err}");
    assert_eq!(fs::read(&settings).unwrap(), before);
}

/// The binary in the sealed environment, run from `cwd`, with the harness's
/// ledger and clock but no `--config`.
fn without_config(env: &Env, cwd: &Path) -> std::process::Command {
    let mut c = env.sealed(assert_cmd::cargo::cargo_bin("octo-budget"));
    c.current_dir(cwd)
        .args(["--ledger", env.ledger.to_str().unwrap()])
        .args(["--now", &env.now]);
    c
}

// Proves (issue 15, item 4): `hook install` run in a repository that holds
// a budgets.yaml does not install it unless --config names it (exit 2,
// nothing written, the message says how to proceed); named, it installs.
// The user's own config is accepted from its own folder.
#[test]
fn install_refuses_a_config_found_in_the_current_folder() {
    let env = env();
    let repo = env.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    fs::write(repo.join("budgets.yaml"), CONFIG).unwrap();
    let settings = env.path().join("settings.json");
    let s = settings.to_str().unwrap();
    let o = without_config(&env, &repo)
        .args(["hook", "install", "--settings", s])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out} {err}");
    let found = fs::canonicalize(&repo).unwrap().join("budgets.yaml");
    assert!(
        err.contains(&format!(
            "not using {} found in the current folder",
            found.display()
        )) && err.contains(&format!(
            "octo-budget --config {} hook install",
            found.display()
        )) && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!settings.exists());
    // Named explicitly (even relatively), it is used.
    let o = without_config(&env, &repo)
        .args([
            "--config",
            "budgets.yaml",
            "hook",
            "install",
            "--settings",
            s,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let command = read(&settings)["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        command.contains(&format!("--config {}", found.display())),
        "{command}"
    );
    // The user's own config, from its own folder.
    let own = env.path().join("xdg").join("octo-budget");
    fs::create_dir_all(&own).unwrap();
    fs::write(own.join("budgets.yaml"), CONFIG).unwrap();
    let o = without_config(&env, &own)
        .env("XDG_CONFIG_HOME", env.path().join("xdg"))
        .args(["hook", "install", "--settings", s])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

/// Runs `hook <args>`, failing (not hanging) when it does not end.
fn run_bounded(env: &Env, args: &[&str]) -> Output {
    let child = env
        .std_cmd()
        .arg("hook")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::output_within(
        child,
        std::time::Duration::from_secs(60),
        &format!("hook {args:?}"),
    )
}

// Proves (issue 15, item 16): a settings path that is a FIFO (reading it
// would wait for a writer forever) or a folder is refused at once with
// one line (exit 5), for install and uninstall, and left as it was.
#[test]
fn settings_that_are_not_a_regular_file_are_refused() {
    let env = env();
    let fifo = env.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let folder = env.path().join("folder.json");
    fs::create_dir(&folder).unwrap();
    // A link to the FIFO is no better.
    let link = env.path().join("link.json");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&folder, "a folder"), (&link, "a FIFO")] {
        for action in ["install", "uninstall"] {
            let o = run_bounded(&env, &[action, "--settings", path.to_str().unwrap()]);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(5), "{action} {path:?}: {out} {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains(&format!("{kind}, not a regular file"))
                    && err.contains("nothing was changed"),
                "{err}"
            );
        }
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_dir(&folder).unwrap().count(), 0);
}

// Proves (issue 15, item 19): a settings.json that is a dangling symlink
// (a dotfiles link whose target is not there yet) keeps its link: the
// target is created (with its folder), and uninstall goes through the link
// too. A symlink loop is refused.
#[test]
fn a_dangling_symlink_gets_its_target_written_and_stays_a_link() {
    let env = env();
    let link = env.path().join("settings.json");
    // Relative target, in a folder that does not exist yet.
    std::os::unix::fs::symlink("dotfiles/claude/settings.json", &link).unwrap();
    let target = env.path().join("dotfiles/claude/settings.json");
    let o = run(&env, &["install", "--settings", link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("dotfiles/claude/settings.json")
    );
    let cmd = expected_command(&env);
    assert_eq!(
        read(&target)["hooks"]["UserPromptSubmit"][0]["hooks"][0],
        own(&cmd)
    );
    assert!(
        text(&o).0.starts_with(&format!(
            "installed octo-budget's hook in {} ",
            fs::canonicalize(&target).unwrap().display()
        )),
        "{:?}",
        text(&o)
    );
    // A chain of links, the last one dangling.
    let first = env.path().join("first.json");
    let second = env.path().join("second.json");
    std::os::unix::fs::symlink(&second, &first).unwrap();
    std::os::unix::fs::symlink(env.path().join("third.json"), &second).unwrap();
    let o = run(&env, &["install", "--settings", first.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(fs::symlink_metadata(&first)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(&second)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(read(&env.path().join("third.json"))["hooks"]["PreToolUse"].is_array());
    // Uninstall through the link empties the target and keeps the link.
    let o = run(&env, &["uninstall", "--settings", link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read(&target), json!({}));
    // A loop has no file to write: refused, the links left alone.
    let a = env.path().join("a.json");
    let b = env.path().join("b.json");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let o = run(&env, &["install", "--settings", a.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out} {err}");
    assert!(err.contains("symbolic links"), "{err}");
    assert_eq!(fs::read_link(&a).unwrap(), b);
}

// Proves (issue 15, item 21): installing into settings with
// "disableAllHooks": true writes the entries but does not claim they are
// active: the one summary line says they will not run until the key is
// removed. Without the key (or with false) nothing of the sort is said.
#[test]
fn install_says_when_all_hooks_are_disabled() {
    let env = env();
    let settings = env.path().join("settings.json");
    let s = settings.to_str().unwrap();
    fs::write(&settings, "{\"disableAllHooks\": true}").unwrap();
    let o = run(&env, &["install", "--settings", s]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(&format!(
            "it will NOT run: {} has \"disableAllHooks\": true, so Claude Code runs no hooks until that key is removed",
            fs::canonicalize(&settings).unwrap().display()
        )),
        "{out}"
    );
    assert_eq!(read(&settings)["disableAllHooks"], true);
    assert!(read(&settings)["hooks"]["PreToolUse"].is_array());
    // Installing again: nothing changes, and it still says so.
    let (out, _) = text(&run(&env, &["install", "--settings", s]));
    assert!(
        out.contains("nothing changed") && out.contains("will NOT run"),
        "{out}"
    );
    // Hooks enabled: no such words.
    fs::write(&settings, "{\"disableAllHooks\": false}").unwrap();
    let (out, _) = text(&run(&env, &["install", "--settings", s]));
    assert!(
        out.starts_with("installed ") && !out.contains("NOT run"),
        "{out}"
    );
}
