//! `hook install --statusline`, shell completions and the man page,
//! `--color`, and a quiet exit when stdout's reader goes away.

mod common;

use std::fs;
use std::process::Stdio;

use common::Env;
use serde_json::{json, Value};

const CONFIG: &str = "budgets:\n  - arm: acme\n    path: /x/acme\n    monthly_usd_cap: 100\n";

fn read(p: &std::path::Path) -> Value {
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

// Proves: --statusline sets statusLine to the binary's `statusline` with
// the same flags as the hook; again changes nothing; another program's
// statusLine is refused (nothing written) unless --force; uninstall
// removes ours and keeps everything else.
#[test]
fn hook_install_statusline() {
    let env = Env::new();
    env.write_config(CONFIG);
    let settings = env.path().join("settings.json");
    let s = settings.to_str().unwrap();
    fs::write(&settings, r#"{"model": "opus"}"#).unwrap();
    let o = env.run(&["hook", "install", "--statusline", "--settings", s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read(&settings);
    let bin = fs::canonicalize(assert_cmd::cargo::cargo_bin("octo-budget")).unwrap();
    let cfg = fs::canonicalize(&env.config).unwrap();
    let led = fs::canonicalize(env.path()).unwrap().join("ledger.sqlite");
    assert_eq!(
        got["statusLine"],
        json!({"type": "command", "command": format!(
            "{} statusline --color always --resident --config {} --ledger {}",
            bin.display(), cfg.display(), led.display())})
    );
    assert!(got["hooks"]["PreToolUse"].is_array());
    let once = fs::read(&settings).unwrap();
    let again = env.run(&["hook", "install", "--statusline", "--settings", s]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing changed"));
    assert_eq!(fs::read(&settings).unwrap(), once);

    // The installed command works as Claude Code runs it (via sh -c).
    let cmd = got["statusLine"]["command"].as_str().unwrap();
    let mut sh = env.sealed("sh");
    sh.args(["-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = sh.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"cwd": "/x/acme"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("acme $0.00/$100 monthly (0%)"), "{line:?}");

    // Uninstall: ours goes, the rest stays.
    let o = env.run(&["hook", "uninstall", "--settings", s]);
    assert!(o.status.success());
    assert_eq!(read(&settings), json!({"model": "opus"}));

    // Another program's statusLine: refused without --force.
    let theirs = json!({"statusLine": {"type": "command", "command": "~/bin/ccline"}});
    fs::write(&settings, theirs.to_string()).unwrap();
    let o = env.run(&["hook", "install", "--statusline", "--settings", s]);
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(read(&settings), theirs);
    // uninstall never takes another program's statusLine.
    let o = env.run(&["hook", "uninstall", "--statusline", "--settings", s]);
    assert!(o.status.success());
    assert_eq!(read(&settings), theirs);
    let o = env.run(&[
        "hook",
        "install",
        "--statusline",
        "--force",
        "--settings",
        s,
    ]);
    assert!(o.status.success());
    let got = read(&settings);
    assert!(got["statusLine"]["command"]
        .as_str()
        .unwrap()
        .contains(" statusline "));
    // uninstall --statusline: only the status line goes, the hooks stay.
    let o = env.run(&["hook", "uninstall", "--statusline", "--settings", s]);
    assert!(o.status.success());
    let got = read(&settings);
    assert!(got.get("statusLine").is_none());
    assert!(got["hooks"]["UserPromptSubmit"].is_array());
}

#[test]
fn completions_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = env.run(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let s = String::from_utf8(o.stdout).unwrap();
        for sub in ["report", "statusline", "init", "alerts", "completions"] {
            assert!(s.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(s.contains("color"), "{shell}");
    }
    let o = env.run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_page() {
    let env = Env::new();
    let o = env.run(&["man"]);
    assert!(o.status.success());
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(s.starts_with(".ie"), "roff: {}", &s[..40.min(s.len())]);
    assert!(s.contains(".TH octo-budget 1"));
    for sub in [
        ".SH \"OCTO-BUDGET REPORT\"",
        ".SH \"OCTO-BUDGET STATUSLINE\"",
        ".SH \"OCTO-BUDGET INIT\"",
        ".SH \"OCTO-BUDGET HOOK INSTALL\"",
    ] {
        assert!(s.contains(sub), "man page lacks {sub}");
    }
    assert!(s.contains("\\-\\-since"));
    assert!(s.contains("\\-\\-statusline"));
}

/// `report` with the fixture tree, its table as text.
fn report_table(env: &Env, args: &[&str], no_color: bool) -> String {
    let mut c = env.std_cmd();
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let o = c.arg("report").args(args).output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn color_flag_and_no_color() {
    let env = Env::with_fixtures();
    assert!(!report_table(&env, &[], false).contains('\x1b'));
    assert!(!report_table(&env, &["--color", "never"], false).contains('\x1b'));
    let coloured = report_table(&env, &["--color", "always"], false);
    assert!(coloured.contains("\x1b["), "{coloured}");
    assert!(!report_table(&env, &["--color", "always"], true).contains('\x1b'));
    let o = env.run(&["report", "--color", "sometimes"]);
    assert_eq!(o.status.code(), Some(2));
}

// Proves: a reader that went away (`report | head`) is not an error:
// exit 0 and nothing on stderr, for the table, JSON, CSV and the commands
// that print with println!.
#[test]
fn closed_stdout_exits_quietly() {
    let env = Env::with_fixtures();
    for args in [
        &["report"][..],
        &["report", "--json"],
        &["report", "--csv", "--by", "day"],
        &["ingest"],
        &["status", "--arm", "acme"],
        &["completions", "bash"],
        &["man"],
        &["alerts", "--all"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // every write now fails with EPIPE
        let o = env
            .std_cmd()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).into_owned()
            ),
            (Some(0), String::new()),
            "{args:?}"
        );
    }
}
