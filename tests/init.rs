//! `octo-budget init`: the proposed budgets.yaml loads as it is and
//! attributes spend exactly as a hand-written config does; repositories
//! are found from the records' cwd (git top levels, session start folders,
//! nested repositories, symlinks, odd characters); an existing file is
//! never overwritten.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{assistant, exact_micros, Env, Totals};
use serde_json::{json, Value};

/// The proposal `init --print` makes for `env`.
fn proposal(env: &Env, extra: &[&str]) -> String {
    let out = env
        .cmd()
        .arg("init")
        .arg("--print")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// arm name -> its paths, from a budgets.yaml.
fn arms_of(yaml: &str) -> BTreeMap<String, Vec<String>> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let mut out = BTreeMap::new();
    for a in v["budgets"].as_sequence().unwrap() {
        let name = a["arm"].as_str().unwrap().to_owned();
        let paths: Vec<String> = match a.get("paths") {
            Some(ps) => ps
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect(),
            None => vec![a["path"].as_str().unwrap().to_owned()],
        };
        out.insert(name, paths);
    }
    out
}

/// arm -> cost in micro-dollars from `report --json`.
fn costs(report: &Value) -> BTreeMap<String, i64> {
    report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["arm"].as_str().unwrap().to_owned(),
                exact_micros(&a["cost_usd"]),
            )
        })
        .collect()
}

#[test]
fn fixture_proposal_attributes_as_the_hand_written_config() {
    let env = Env::with_fixtures();
    // The hand-written config (budgets.example.yaml) first.
    let hand = env.report_json(&[]);
    let hand_arms: BTreeMap<String, Totals> = hand["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["arm"].as_str().unwrap().to_owned(), Totals::of(a)))
        .collect();
    let text = proposal(&env, &[]);
    // From the records' cwd: acme-web's sessions ran in its src folder,
    // beta/api (a cd inside a session started in acme) folds into beta,
    // gamma's records carry no cwd at all and are left out, with a note.
    assert_eq!(
        arms_of(&text),
        BTreeMap::from([
            ("acme".into(), vec!["/work/clients/acme".to_owned()]),
            ("src".into(), vec!["/work/clients/acme-web/src".to_owned()]),
            ("beta".into(), vec!["/work/clients/beta".to_owned()]),
            ("tools".into(), vec!["/work/scratch/tools".to_owned()]),
        ])
    );
    assert!(text.contains("-work-clients-gamma ($0.04)"), "{text}");
    assert!(text.contains("action_on_breach: warn"));
    assert!(text.contains("timezone: \"UTC\""), "{text}");
    // Spend since 2026-08-30 includes acme's October session: $0.71, and
    // every suggested cap is the $10 floor at these amounts.
    assert!(text.contains("# $0.71 since 2026-08-30"), "{text}");
    assert_eq!(text.matches("monthly_usd_cap: 10\n").count(), 4);

    fs::write(&env.config, &text).unwrap();
    let proposed = env.report_json(&[]);
    let got = costs(&proposed);
    // fixtures/README.md: acme 532,083, acme-web 320,500, beta 183,000;
    // scratch/tools (unattributed there) 67,000; gamma 40,000 left over.
    assert_eq!(
        got,
        BTreeMap::from([
            ("acme".into(), 532_083),
            ("src".into(), 320_500),
            ("beta".into(), 183_000),
            ("tools".into(), 67_000),
        ])
    );
    assert_eq!(exact_micros(&proposed["unattributed"]["cost_usd"]), 40_000);
    // Row for row the same as the hand-written arms, tokens included.
    let by_name: BTreeMap<String, Totals> = proposed["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["arm"].as_str().unwrap().to_owned(), Totals::of(a)))
        .collect();
    assert_eq!(by_name["acme"], hand_arms["acme"]);
    assert_eq!(by_name["src"], hand_arms["acme-web"]);
    assert_eq!(by_name["beta"], hand_arms["beta"]);
    assert_eq!(Totals::of(&proposed["totals"]), Totals::of(&hand["totals"]));
}

/// One assistant line of `out` output tokens of Sonnet 4.5 ($15 per
/// million: `out` x 15 micro-dollars).
fn spend(env: &Env, session: &str, cwd: &Path, out: u64, n: &mut u32) {
    *n += 1;
    let line = assistant(
        session,
        cwd.to_str().unwrap(),
        &format!("msg_{n}"),
        &format!("req_{n}"),
        "2026-11-10T10:00:00.000Z",
        "claude-sonnet-4-5-20250929",
        json!({"input_tokens": 0, "output_tokens": out}),
    );
    env.append(&format!("p/{session}.jsonl"), &[line]);
}

#[test]
fn repositories_nested_symlinked_and_oddly_named() {
    let env = Env::new();
    let w = env.path().join("w");
    let acme = w.join("acme corp.v2_x-y");
    let lib = acme.join("vendor").join("lib");
    let odd = w.join("it's: \"q\" #1");
    let real = w.join("real-repo");
    let link = w.join("link");
    let plain = w.join("plain");
    let wt = w.join("worktree");
    for d in [
        acme.join(".git"),
        acme.join("src").join("deep"),
        lib.join(".git"),
        odd.join(".git"),
        real.join(".git"),
        real.join("sub"),
        plain.join("sub"),
        wt.join("x"),
    ] {
        fs::create_dir_all(d).unwrap();
    }
    // A linked worktree has a .git FILE.
    fs::write(wt.join(".git"), "gitdir: /elsewhere\n").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let gone = Path::new("/nonexistent-octo-budget-test/proj");

    let mut n = 0;
    // acme: a session in the repository, one in a subfolder of it.
    spend(&env, "s1", &acme, 1_000, &mut n);
    spend(&env, "s2", &acme.join("src").join("deep"), 2_000, &mut n);
    // An independent repository nested inside acme.
    spend(&env, "s3", &lib, 3_000, &mut n);
    spend(&env, "s4", &odd, 4_000, &mut n);
    // One repository reached by its real path and through a symlink.
    spend(&env, "s5", &real, 5_000, &mut n);
    spend(&env, "s6", &link.join("sub"), 6_000, &mut n);
    // No git: the folder the session started in owns its subfolders.
    spend(&env, "s7", &plain, 7_000, &mut n);
    spend(&env, "s7", &plain.join("sub"), 8_000, &mut n);
    // Not on this machine: the session's first cwd.
    spend(&env, "s8", gone, 9_000, &mut n);
    spend(&env, "s8", &gone.join("api"), 10_000, &mut n);
    spend(&env, "s9", &wt.join("x"), 11_000, &mut n);

    let text = proposal(&env, &[]);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    assert_eq!(
        arms_of(&text),
        BTreeMap::from([
            ("acme corp.v2_x-y".into(), vec![s(&acme)]),
            ("lib".into(), vec![s(&lib)]),
            ("it's: \"q\" #1".into(), vec![s(&odd)]),
            ("real-repo".into(), vec![s(&real), s(&link)]),
            ("plain".into(), vec![s(&plain)]),
            ("proj".into(), vec![s(gone)]),
            ("worktree".into(), vec![s(&wt)]),
        ]),
        "{text}"
    );
    fs::write(&env.config, &text).unwrap();
    let report = env.report_json(&["--period", "all"]);
    assert_eq!(
        costs(&report),
        BTreeMap::from([
            ("acme corp.v2_x-y".into(), 15 * 3_000),
            ("lib".into(), 15 * 3_000),
            ("it's: \"q\" #1".into(), 15 * 4_000),
            ("real-repo".into(), 15 * 11_000),
            ("plain".into(), 15 * 15_000),
            ("proj".into(), 15 * 19_000),
            ("worktree".into(), 15 * 11_000),
        ])
    );
    assert_eq!(exact_micros(&report["unattributed"]["cost_usd"]), 0);
}

#[test]
fn same_names_are_told_apart() {
    let env = Env::new();
    let mut n = 0;
    spend(&env, "a", Path::new("/nonexistent-ob/one/api"), 100, &mut n);
    spend(&env, "b", Path::new("/nonexistent-ob/two/api"), 100, &mut n);
    let arms = arms_of(&proposal(&env, &[]));
    assert_eq!(
        arms.keys().collect::<Vec<_>>(),
        ["one-api", "two-api"],
        "{arms:?}"
    );
}

#[test]
fn window_and_time_zone() {
    let env = Env::new();
    let old = assistant(
        "old",
        "/nonexistent-ob/old",
        "m_old",
        "r_old",
        "2026-08-01T10:00:00.000Z", // 111 days before NOW
        "claude-sonnet-4-5-20250929",
        json!({"output_tokens": 100}),
    );
    env.append("p/old.jsonl", &[old]);
    let mut n = 0;
    spend(&env, "new", Path::new("/nonexistent-ob/new"), 100, &mut n);
    let names = |t: &str| arms_of(t).into_keys().collect::<Vec<_>>();
    assert_eq!(names(&proposal(&env, &[])), ["new"]);
    assert_eq!(
        names(&proposal(&env, &["--since", "2026-07-31"])),
        ["new", "old"]
    );
    let t = proposal(&env, &["--timezone", "America/Sao_Paulo"]);
    assert!(t.contains("timezone: \"America/Sao_Paulo\""), "{t}");
    let bad = env.run(&["init", "--print", "--timezone", "Mars/Base"]);
    assert_eq!(bad.status.code(), Some(2)); // a usage mistake, not a config error
    assert!(common::one_stderr_line(&bad).contains("Mars/Base"));
    // A window that starts after today (NOW is 2026-11-20): a usage mistake.
    let late = env.run(&["init", "--print", "--since", "2026-11-21"]);
    assert_eq!(late.status.code(), Some(2));
    assert!(
        common::one_stderr_line(&late).contains("--since 2026-11-21 is after today (2026-11-20)")
    );
}

#[test]
fn the_suggested_cap_is_the_highest_30_days_times_one_and_a_half() {
    let env = Env::new();
    // 2026-10-01: $30 (2,000,000 output tokens); 2026-11-15: $60.
    for (i, (day, out)) in [("2026-10-01", 2_000_000u64), ("2026-11-15", 4_000_000)]
        .iter()
        .enumerate()
    {
        let l = assistant(
            "s",
            "/nonexistent-ob/big",
            &format!("m{i}"),
            &format!("r{i}"),
            &format!("{day}T10:00:00.000Z"),
            "claude-sonnet-4-5-20250929",
            json!({"output_tokens": out}),
        );
        env.append("p/s.jsonl", &[l]);
    }
    // The days are 45 apart: no 30 days hold both; $60 x 1.5 = $90 -> 100.
    let t = proposal(&env, &[]);
    assert!(t.contains("monthly_usd_cap: 100\n"), "{t}");
    assert!(t.contains("# $90.00 since"), "{t}");
}

#[test]
fn writes_the_default_path_once_and_never_overwrites() {
    let env = Env::new();
    let mut n = 0;
    spend(&env, "s", Path::new("/nonexistent-ob/acme"), 100, &mut n);
    let bin = assert_cmd::cargo::cargo_bin("octo-budget");
    let init = || {
        env.sealed(&bin)
            .args([
                "--ledger",
                env.ledger.to_str().unwrap(),
                "--now",
                &env.now,
                "init",
            ])
            .output()
            .unwrap()
    };
    let out = init();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = env.home.join(".config/octo-budget/budgets.yaml");
    let text = fs::read_to_string(&written).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(written.to_str().unwrap()));
    assert_eq!(arms_of(&text).into_keys().collect::<Vec<_>>(), ["acme"]);
    // `report` without --config finds it.
    let rep = env
        .sealed(&bin)
        .args(["--ledger", env.ledger.to_str().unwrap(), "--now", &env.now])
        .args(["report", "--json"])
        .output()
        .unwrap();
    assert!(rep.status.success());
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(rep["arms"][0]["arm"], "acme");
    assert_eq!(exact_micros(&rep["arms"][0]["cost_usd"]), 1_500);

    // Again: refused with exit 3, the file untouched.
    fs::write(&written, "# mine\n").unwrap();
    let again = init();
    assert_eq!(again.status.code(), Some(3));
    assert!(common::one_stderr_line(&again).contains("already exists"));
    assert_eq!(fs::read_to_string(&written).unwrap(), "# mine\n");

    // --config names the file to write; an existing one is refused too.
    let fresh = env.path().join("sub dir").join("b.yaml");
    let out = env
        .sealed(&bin)
        .args([
            "--config",
            fresh.to_str().unwrap(),
            "--ledger",
            env.ledger.to_str().unwrap(),
        ])
        .args(["--now", &env.now, "init"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(fs::read_to_string(&fresh)
        .unwrap()
        .contains("monthly_usd_cap"));
    env.write_config("# existing\n");
    let out = env.run(&["init"]);
    assert_eq!(out.status.code(), Some(3));
}

// Proves: a folder whose name ends in white space (budgets.yaml trims
// paths) is still proposed under a valid, unique name, and init says its
// spend cannot be attributed instead of failing.
#[test]
fn a_path_budgets_yaml_cannot_hold_is_named() {
    let env = Env::new();
    let mut n = 0;
    spend(&env, "a", Path::new("/nonexistent-ob/x"), 100, &mut n);
    spend(&env, "b", Path::new("/nonexistent-ob/y/x "), 100, &mut n);
    let out = env.run(&["init", "--print"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        arms_of(&text).into_keys().collect::<Vec<_>>(),
        ["nonexistent-ob-x", "y-x"]
    );
    assert!(common::one_stderr_line(&out).contains("cannot be written exactly"));
}

// Proves: with no spend to propose from, init writes a template that lists
// no arm and says that octo-budget refuses to run until an arm (or a total
// cap) is added; the template is refused like any config with nothing to
// enforce (issue 15, item 1), never read as "no budgets".
#[test]
fn no_spend_writes_a_template_that_is_refused_until_filled_in() {
    let env = Env::new();
    let target = env.path().join("new.yaml");
    let cfg = ["--config", target.to_str().unwrap()];
    let out = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .args(cfg)
        .args(["--ledger", env.ledger.to_str().unwrap(), "--now", &env.now])
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("lists no arm, and octo-budget refuses to run"));
    let text = fs::read_to_string(&target).unwrap();
    assert!(text.contains("budgets: []"), "{text}");
    let rep = env
        .sealed(assert_cmd::cargo::cargo_bin("octo-budget"))
        .args(cfg)
        .args(["--ledger", env.ledger.to_str().unwrap(), "--now", &env.now])
        .arg("report")
        .output()
        .unwrap();
    assert_eq!(rep.status.code(), Some(3));
    assert!(common::one_stderr_line(&rep).contains("no arm and no `total:` cap"));
}
