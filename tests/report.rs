//! `octo-budget report` on a copy of the hand-checked fixture tree.
//!
//! Every expected number below comes from fixtures/README.md, where it is
//! worked out by hand (tokens x $/MTok); none was copied from the program's
//! output.

mod common;

use common::*;
use serde_json::Value;

/// Hand-worked expectations for one row (fixtures/README.md, "November 2026").
struct Want {
    name: &'static str,
    micros: i64,
    messages: u64,
    sessions: u64,
    /// input, output, cache_write_5m, cache_write_1h, cache_read
    tokens: [u64; 5],
    web_search: u64,
}

const ACME: Want = Want {
    name: "acme",
    micros: 532_083,
    messages: 13,
    sessions: 2,
    tokens: [16_711, 13_650, 14_000, 12_000, 549_990],
    web_search: 0,
};
const ACME_WEB: Want = Want {
    name: "acme-web",
    micros: 320_500,
    messages: 3,
    sessions: 1,
    tokens: [8_000, 2_900, 0, 4_000, 0],
    web_search: 0,
};
const BETA: Want = Want {
    name: "beta",
    micros: 183_000,
    messages: 3,
    sessions: 2,
    tokens: [7_000, 4_000, 0, 0, 0],
    web_search: 3,
};
const GAMMA: Want = Want {
    name: "gamma",
    micros: 40_000,
    messages: 2,
    sessions: 1,
    tokens: [14_000, 2_800, 0, 0, 0],
    web_search: 0,
};
const UNATTRIBUTED: Want = Want {
    name: "unattributed",
    micros: 67_000,
    messages: 2,
    sessions: 1,
    tokens: [23_000, 5_000, 0, 0, 10_000],
    web_search: 0,
};
const TOTAL: Want = Want {
    name: "total",
    micros: 1_142_583,
    messages: 23,
    sessions: 6,
    tokens: [68_711, 28_350, 14_000, 16_000, 559_990],
    web_search: 3,
};
/// The one October response (acme, 2026-10-31T23:30Z): 10,000 in + 10,000
/// out of Sonnet 4.5 = 30,000 + 150,000 micro-dollars.
const OCTOBER_MICROS: i64 = 180_000;

fn check(row: &Value, want: &Want) {
    let n = want.name;
    assert_eq!(micros(&row["cost_usd"]), want.micros, "{n}: cost_usd");
    assert_eq!(row["messages"], want.messages, "{n}: messages");
    assert_eq!(row["sessions"], want.sessions, "{n}: sessions");
    let t = &row["tokens"];
    let got = [
        "input",
        "output",
        "cache_write_5m",
        "cache_write_1h",
        "cache_read",
    ]
    .map(|k| t[k].as_u64().unwrap());
    assert_eq!(got, want.tokens, "{n}: tokens");
    assert_eq!(
        row["web_search_requests"], want.web_search,
        "{n}: web_search_requests"
    );
}

fn arm<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == name)
        .unwrap_or_else(|| panic!("no arm {name} in {doc}"))
}

fn breakdown(doc: &Value) -> Vec<(String, i64, u64)> {
    doc["breakdown"]["rows"]
        .as_array()
        .expect("breakdown rows")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                micros(&r["cost_usd"]),
                r["messages"].as_u64().unwrap(),
            )
        })
        .collect()
}

// ---- The month ------------------------------------------------------------------

/// Each arm's November spend, tokens, responses and sessions are exactly the
/// hand-worked figures: de-duplication, subagent layouts, attribution by cwd
/// (hyphenated arm, cwd change, session/folder fallback) and pricing
/// (cache split, long context, fast mode, web search, advisor) all at once.
#[test]
fn november_per_arm_matches_the_hand_worked_table() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    for want in [&ACME, &ACME_WEB, &BETA, &GAMMA] {
        check(arm(&doc, want.name), want);
    }
    let names: Vec<&str> = doc["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["arm"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "acme-web", "beta", "gamma"]);
}

/// The same hand-worked figures when the fixtures are read as part of a
/// large first load (over 4 MiB: parsed in parallel into an empty ledger,
/// which takes the bulk path with its own lookups and index rebuild). The
/// padding is a transcript of user lines only, which costs nothing.
#[test]
fn a_large_first_load_gives_the_same_figures() {
    let env = Env::with_fixtures();
    let filler: Vec<String> = (0..5_000)
        .map(|i| {
            user(
                "pad",
                "/work/clients/acme",
                "2026-11-03T10:00:00.000Z",
                &format!("{i} {}", "x".repeat(1_000)),
            )
        })
        .collect();
    env.append("-work-clients-acme/padding.jsonl", &filler);
    let doc = env.report_json(&[]);
    for want in [&ACME, &ACME_WEB, &BETA, &GAMMA] {
        check(arm(&doc, want.name), want);
    }
    check(&doc["unattributed"], &UNATTRIBUTED);
    check(&doc["totals"], &TOTAL);
    // A second run on the loaded ledger (the normal path) agrees.
    let again = env.report_json(&[]);
    assert_eq!(again["totals"], doc["totals"]);
}

/// Spend in a folder no arm owns is unattributed; the totals are the sum of
/// every row (sessions counted once even when a session spans two arms).
#[test]
fn unattributed_and_totals() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    check(&doc["unattributed"], &UNATTRIBUTED);
    check(&doc["totals"], &TOTAL);
}

/// Caps, percentages and tiers follow Octorato's rules with alert_at_pct:
/// acme (hard_stop, 110%) is over 0.495 -> hard_stop; acme-web (warn) is over
/// its cap -> warn; beta (hard_stop, 120%) is at 91.5% -> alert; gamma
/// (alert-only) at 4% -> ok.
#[test]
fn caps_percentages_and_tiers() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    for (name, cap, pct, tier) in [
        ("acme", 450_000, 118.2, "hard_stop"),
        ("acme-web", 300_000, 106.8, "warn"),
        ("beta", 200_000, 91.5, "alert"),
        ("gamma", 1_000_000, 4.0, "ok"),
    ] {
        let a = arm(&doc, name);
        assert_eq!(micros(&a["cap_usd"]), cap, "{name} cap");
        assert_eq!(a["spent_pct"].as_f64(), Some(pct), "{name} spent_pct");
        assert_eq!(a["tier"], tier, "{name} tier");
    }
}

/// The unknown model is priced at the dearest known rates ($15/$75 per
/// MTok: 1,000 in + 1,000 out = $0.09), never $0, and listed by name.
#[test]
fn unknown_model_is_priced_at_the_dearest_rates_and_listed() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    let unpriced = doc["unpriced_models"].as_array().unwrap();
    assert_eq!(unpriced.len(), 1, "{unpriced:?}");
    let u = &unpriced[0];
    assert_eq!(u["model"], "claude-nova-7");
    assert_eq!(u["messages"], 1);
    assert_eq!(u["tokens"]["input"], 1000);
    assert_eq!(u["tokens"]["output"], 1000);
    let by_model = breakdown(&env.report_json(&["--by", "model"]));
    assert!(
        by_model.contains(&("claude-nova-7".into(), 90_000, 1)),
        "{by_model:?}"
    );
}

/// The five broken lines of s-beta-1.jsonl are skipped and counted (the
/// partial last line is not one of them); the report names its price table.
#[test]
fn skipped_lines_and_price_table_date() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    assert_eq!(doc["skipped_lines"], 5);
    assert_eq!(doc["prices"]["effective_from"], "2026-11-01");
}

/// The month is the calendar month of --now in the config's zone, and it
/// moves with the zone: at UTC+14 the October response (23:30 UTC on Oct
/// 31) is already November 1 and joins acme's month.
#[test]
fn period_is_the_month_in_the_config_zone() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    assert_eq!(doc["timezone"], "UTC");
    assert_eq!(doc["period"]["kind"], "month");
    assert_eq!(doc["period"]["start"], "2026-11-01T00:00:00+00:00");
    assert_eq!(doc["period"]["end"], "2026-12-01T00:00:00+00:00");

    let yaml = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("timezone: UTC", "timezone: Pacific/Kiritimati");
    env.write_config(&yaml);
    let doc = env.report_json(&[]);
    assert_eq!(doc["timezone"], "Pacific/Kiritimati");
    assert_eq!(doc["period"]["start"], "2026-11-01T00:00:00+14:00");
    assert_eq!(doc["period"]["end"], "2026-12-01T00:00:00+14:00");
    assert_eq!(
        micros(&arm(&doc, "acme")["cost_usd"]),
        ACME.micros + OCTOBER_MICROS
    );
    assert_eq!(
        micros(&doc["totals"]["cost_usd"]),
        TOTAL.micros + OCTOBER_MICROS
    );
}

// ---- The JSON contract ------------------------------------------------------------

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn assert_tally_types(v: &Value, what: &str) {
    let cost = &v["cost_usd"];
    assert!(cost.is_number(), "{what}.cost_usd is a number: {cost}");
    // Dollars with micro-dollar precision: at most six decimals.
    let text = cost.to_string();
    assert!(
        text.split_once('.').is_none_or(|(_, f)| f.len() <= 6),
        "{what}.cost_usd {text}"
    );
    assert!(
        v["messages"].is_u64() && v["sessions"].is_u64() && v["web_search_requests"].is_u64(),
        "{what}: {v}"
    );
    assert_eq!(
        keys(&v["tokens"]),
        [
            "cache_read",
            "cache_write_1h",
            "cache_write_5m",
            "input",
            "output"
        ],
        "{what}.tokens"
    );
    for (_, n) in v["tokens"].as_object().unwrap() {
        assert!(n.is_u64(), "{what}.tokens: {n}");
    }
    let u = &v["unwritten"];
    assert_eq!(
        keys(u),
        ["cost_usd", "tokens", "web_search_requests"],
        "{what}.unwritten"
    );
    assert!(
        u["cost_usd"].is_number()
            && u["web_search_requests"].is_u64()
            && keys(&u["tokens"]) == keys(&v["tokens"]),
        "{what}.unwritten: {u}"
    );
}

/// `report --json` has exactly the documented fields with the documented
/// types: arms with caps and tiers, unattributed and totals without caps,
/// unpriced_models, skipped_lines and prices.effective_from.
#[test]
fn json_contract_field_names_and_types() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&[]);
    for k in [
        "period",
        "timezone",
        "arms",
        "unattributed",
        "totals",
        "unpriced_models",
        "skipped_lines",
        "prices",
    ] {
        assert!(
            doc.get(k).is_some(),
            "top-level key {k} missing: {:?}",
            keys(&doc)
        );
    }
    assert_eq!(keys(&doc["period"]), ["end", "kind", "start"]);
    assert!(doc["period"]["start"].is_string() && doc["period"]["end"].is_string());
    assert!(doc["timezone"].is_string());
    for a in doc["arms"].as_array().unwrap() {
        assert_eq!(
            keys(a),
            [
                "arm",
                "cap_usd",
                "cost_usd",
                "messages",
                "sessions",
                "spent_pct",
                "tier",
                "tokens",
                "unwritten",
                "web_search_requests"
            ]
        );
        assert!(
            a["arm"].is_string()
                && a["cap_usd"].is_number()
                && a["spent_pct"].is_number()
                && a["tier"].is_string()
        );
        assert_tally_types(a, a["arm"].as_str().unwrap());
    }
    for (what, v) in [
        ("unattributed", &doc["unattributed"]),
        ("totals", &doc["totals"]),
    ] {
        assert_eq!(
            keys(v),
            [
                "cost_usd",
                "messages",
                "sessions",
                "tokens",
                "unwritten",
                "web_search_requests"
            ],
            "{what}"
        );
        assert_tally_types(v, what);
    }
    for u in doc["unpriced_models"].as_array().unwrap() {
        assert!(
            u["model"].is_string() && u["messages"].is_u64() && u["tokens"].is_object(),
            "{u}"
        );
    }
    assert!(doc["skipped_lines"].is_u64());
    assert!(doc["prices"]["effective_from"].is_string());
}

/// An arm without a cap for the period still has the keys, as null.
#[test]
fn json_arm_without_a_cap_has_null_cap_pct_and_tier() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--period", "week"]);
    let a = arm(&doc, "acme");
    assert!(
        a["cap_usd"].is_null() && a["spent_pct"].is_null() && a["tier"].is_null(),
        "{a}"
    );
}

// ---- CSV and table ---------------------------------------------------------------------

/// `--csv`: a header, one row per arm, unattributed, then the total, with
/// dollars at micro-dollar precision.
#[test]
fn csv_rows() {
    let env = Env::with_fixtures();
    let out = env.run(&["report", "--csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "arm",
            "kind",
            "cost_usd",
            "cap_usd",
            "spent_pct",
            "tier",
            "sessions",
            "messages",
            "input",
            "output",
            "cache_write_5m",
            "cache_write_1h",
            "cache_read",
            "web_search_requests"
        ]
    );
    assert_eq!(rows.len(), 7, "{text}");
    assert_eq!(
        rows[1],
        [
            "acme",
            "arm",
            "0.532083",
            "0.450000",
            "118.2",
            "hard_stop",
            "2",
            "13",
            "16711",
            "13650",
            "14000",
            "12000",
            "549990",
            "0"
        ]
    );
    assert_eq!(
        rows[2][..6],
        ["acme-web", "arm", "0.320500", "0.300000", "106.8", "warn"]
    );
    assert_eq!(
        rows[3][..6],
        ["beta", "arm", "0.183000", "0.200000", "91.5", "alert"]
    );
    assert_eq!(
        rows[4][..6],
        ["gamma", "arm", "0.040000", "1.000000", "4.0", "ok"]
    );
    assert_eq!(
        rows[5][..6],
        ["unattributed", "unattributed", "0.067000", "", "", ""]
    );
    assert_eq!(
        rows[6],
        [
            "total", "total", "1.142583", "", "", "", "6", "23", "68711", "28350", "14000",
            "16000", "559990", "3"
        ]
    );
}

/// The terminal table names the period and zone, shows each arm's tier and
/// dollars, and says what was unpriced, skipped and which prices were used.
#[test]
fn table_output() {
    let env = Env::with_fixtures();
    let out = env.run(&["report"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "period: month 2026-11-01 to 2026-11-30 (time zone UTC)",
        "hard_stop",
        "$0.53",
        "$0.45",
        "118.2",
        "acme-web",
        "unattributed",
        "$1.14",
        "68,711",
        "559,990",
        "unpriced model claude-nova-7",
        "skipped lines: 5",
        "prices: list prices as of 2026-11-01",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

// ---- Breakdowns ----------------------------------------------------------------------

/// `--by model`: each raw model id with its hand-worked spend; the advisor's
/// Opus tokens land on claude-opus-4-6 without adding a response.
#[test]
fn by_model() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--by", "model"]);
    assert_eq!(doc["breakdown"]["by"], "model");
    let mut rows = breakdown(&doc);
    rows.sort();
    assert_eq!(
        rows,
        [
            ("claude-3-5-haiku-20241022".to_owned(), 16_000, 1),
            ("claude-3-5-sonnet-20241022".to_owned(), 24_000, 1),
            ("claude-haiku-4-5-20251001".to_owned(), 79_900, 7),
            ("claude-nova-7".to_owned(), 90_000, 1),
            ("claude-opus-4-6".to_owned(), 310_000, 2),
            ("claude-sonnet-4-5-20250929".to_owned(), 612_183, 10),
            ("claude-sonnet-4-6".to_owned(), 10_500, 1),
        ]
    );
    assert_eq!(micros(&doc["totals"]["cost_usd"]), TOTAL.micros);
}

/// `--by day`: local days with their hand-worked spend.
#[test]
fn by_day() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--by", "day"]);
    assert_eq!(
        breakdown(&doc),
        [
            ("2026-11-02".to_owned(), 514_533, 11),
            ("2026-11-03".to_owned(), 18_000, 1),
            ("2026-11-05".to_owned(), 320_500, 3),
            ("2026-11-10".to_owned(), 17_550, 2),
            ("2026-11-16".to_owned(), 165_000, 2),
            ("2026-11-23".to_owned(), 40_000, 2),
            ("2026-11-25".to_owned(), 40_000, 1),
            ("2026-11-27".to_owned(), 27_000, 1),
        ]
    );
}

/// `--by session`: subagent files count in their parent's session; the
/// resumed session's replayed lines stay in s-acme-1.
#[test]
fn by_session() {
    let env = Env::with_fixtures();
    let mut rows = breakdown(&env.report_json(&["--by", "session"]));
    rows.sort();
    assert_eq!(
        rows,
        [
            ("s-acme-1".to_owned(), 532_533, 12),
            ("s-acme-2".to_owned(), 17_550, 2),
            ("s-beta-1".to_owned(), 165_000, 2),
            ("s-gamma-1".to_owned(), 40_000, 2),
            ("s-scratch-1".to_owned(), 67_000, 2),
            ("s-web-1".to_owned(), 320_500, 3),
        ]
    );
}

/// `--arm NAME` shows that arm only; `--arm unattributed` only the
/// remainder; an unknown arm is a usage error (exit 2) with a suggestion.
#[test]
fn arm_filter() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--arm", "acme-web"]);
    assert_eq!(doc["arms"].as_array().unwrap().len(), 1);
    check(arm(&doc, "acme-web"), &ACME_WEB);
    assert!(doc["unattributed"].is_null());
    assert_eq!(micros(&doc["totals"]["cost_usd"]), ACME_WEB.micros);

    let doc = env.report_json(&["--arm", "unattributed"]);
    assert!(doc["arms"].as_array().unwrap().is_empty());
    check(&doc["unattributed"], &UNATTRIBUTED);
    assert_eq!(micros(&doc["totals"]["cost_usd"]), UNATTRIBUTED.micros);

    let out = env.run(&["report", "--arm", "acme-api"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_stderr_line(&out);
    assert!(
        e.contains("--arm \"acme-api\"") && e.contains("has no such arm (did you mean"),
        "{e}"
    );
    let out = env.run(&["status", "--arm", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_stderr_line(&out);
    assert!(
        e.contains("--arm \"nobody\"") && e.contains("has no such arm"),
        "{e}"
    );
}

// ---- Periods --------------------------------------------------------------------------

/// `--period day`: only that local day, against the daily cap where the arm
/// has one (gamma: $0.04 of $0.50 on Nov 23 = 8.0%).
#[test]
fn period_day() {
    let mut env = Env::with_fixtures();
    env.now = "2026-11-27T18:00:00Z".into();
    let doc = env.report_json(&["--period", "day"]);
    assert_eq!(doc["period"]["kind"], "day");
    assert_eq!(doc["period"]["start"], "2026-11-27T00:00:00+00:00");
    assert_eq!(doc["period"]["end"], "2026-11-28T00:00:00+00:00");
    assert_eq!(micros(&doc["totals"]["cost_usd"]), 27_000);
    assert_eq!(micros(&doc["unattributed"]["cost_usd"]), 27_000);

    env.now = "2026-11-23T12:00:00Z".into();
    let doc = env.report_json(&["--period", "day"]);
    let g = arm(&doc, "gamma");
    assert_eq!(micros(&g["cost_usd"]), GAMMA.micros);
    assert_eq!(micros(&g["cap_usd"]), 500_000);
    assert_eq!(g["spent_pct"].as_f64(), Some(8.0));
    assert_eq!(g["tier"], "ok");
    assert_eq!(micros(&doc["totals"]["cost_usd"]), GAMMA.micros);
}

/// `--period week`: the ISO week (Monday Nov 23 to Sunday Nov 29) holds
/// gamma's Nov 23 and the scratch Nov 25 and 27 spend.
#[test]
fn period_week() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--period", "week"]);
    assert_eq!(doc["period"]["kind"], "week");
    assert_eq!(doc["period"]["start"], "2026-11-23T00:00:00+00:00");
    assert_eq!(doc["period"]["end"], "2026-11-30T00:00:00+00:00");
    assert_eq!(
        micros(&doc["totals"]["cost_usd"]),
        GAMMA.micros + UNATTRIBUTED.micros
    );
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), 0);
}

/// `--period all` adds the October response to acme and the totals.
#[test]
fn period_all() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--period", "all"]);
    assert_eq!(doc["period"]["kind"], "all");
    assert_eq!(
        micros(&arm(&doc, "acme")["cost_usd"]),
        ACME.micros + OCTOBER_MICROS
    );
    assert_eq!(arm(&doc, "acme")["sessions"], 3);
    assert_eq!(
        micros(&doc["totals"]["cost_usd"]),
        TOTAL.micros + OCTOBER_MICROS
    );
    assert_eq!(doc["totals"]["messages"], TOTAL.messages + 1);
}

/// `--since/--until` take inclusive local dates.
#[test]
fn since_until() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--since", "2026-10-31", "--until", "2026-10-31"]);
    assert_eq!(doc["period"]["start"], "2026-10-31T00:00:00+00:00");
    assert_eq!(doc["period"]["end"], "2026-11-01T00:00:00+00:00");
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), OCTOBER_MICROS);
    assert_eq!(micros(&doc["totals"]["cost_usd"]), OCTOBER_MICROS);

    // Nov 2 (acme's day) and Nov 3 (the cwd change into beta).
    let doc = env.report_json(&["--since", "2026-11-02", "--until", "2026-11-03"]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), 514_533);
    assert_eq!(micros(&arm(&doc, "beta")["cost_usd"]), 18_000);
    assert_eq!(micros(&doc["totals"]["cost_usd"]), 532_533);

    // --since after --until is a usage error (exit 2, not a config error),
    // said before the ledger is opened: nothing is created or read.
    let fresh = Env::with_fixtures();
    let out = fresh.run(&["report", "--since", "2026-11-05", "--until", "2026-11-04"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_stderr_line(&out),
        "octo-budget: --since 2026-11-05 is after --until 2026-11-04"
    );
    assert!(out.stdout.is_empty());
    assert!(!fresh.ledger.exists(), "the ledger was created");

    // --since alone runs to today (--now).
    let doc = env.report_json(&["--since", "2026-11-20"]);
    assert_eq!(
        micros(&doc["totals"]["cost_usd"]),
        GAMMA.micros + UNATTRIBUTED.micros
    );
}

// ---- Cases of the fixture tree, one at a time -----------------------------------------

/// Where a subagent's own file is gone, the progress line in the parent's
/// file is the only record of its first response and still counts (17,000);
/// its second response (3,500) lived only in the deleted file.
#[test]
fn progress_line_counts_when_the_subagent_file_is_gone() {
    let env = Env::with_fixtures();
    std::fs::remove_file(
        env.transcript("-work-clients-acme/s-acme-1/subagents/agent-a1b2c3.jsonl"),
    )
    .unwrap();
    let doc = env.report_json(&[]);
    assert_eq!(micros(&arm(&doc, "acme")["cost_usd"]), ACME.micros - 3_500);
    assert_eq!(arm(&doc, "acme")["messages"], ACME.messages - 1);
}

/// The files that are not transcripts (tool-results, *.meta.json, a
/// workflow journal) each hold a million-token Opus 4.1 line: if any were
/// read, the totals would be off by $90 or more.
#[test]
fn non_transcript_files_are_not_counted() {
    let env = Env::with_fixtures();
    let doc = env.report_json(&["--period", "all"]);
    assert!(micros(&doc["totals"]["cost_usd"]) < 2_000_000);
    let models = breakdown(&env.report_json(&["--by", "model", "--period", "all"]));
    assert!(
        models.iter().all(|(m, _, _)| m != "claude-opus-4-1"),
        "{models:?}"
    );
}

// ---- Errors ----------------------------------------------------------------------------

fn config_error(env: &Env, yaml: &str) -> String {
    env.write_config(yaml);
    let out = env.run(&["report"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let line = one_stderr_line(&out);
    assert!(
        line.contains(env.config.to_str().unwrap()),
        "names the file: {line}"
    );
    line
}

/// An unknown key exits 3 naming file:line and the key, and suggests the
/// nearest known key.
#[test]
fn config_unknown_key_suggests_the_nearest() {
    let env = Env::with_fixtures();
    let line = config_error(
        &env,
        "budgets:\n  - arm: acme\n    path: /work/clients/acme\n    montly_usd_cap: 5\n",
    );
    assert!(line.contains("budgets.yaml:4:"), "{line}");
    assert!(
        line.contains("montly_usd_cap") && line.contains("did you mean \"monthly_usd_cap\""),
        "{line}"
    );
}

/// A wrong type exits 3 naming file:line and the key.
#[test]
fn config_wrong_type() {
    let env = Env::with_fixtures();
    let line = config_error(&env, "budgets:\n  - arm: acme\n    monthly_usd_cap: lots\n");
    assert!(
        line.contains("budgets.yaml:3:") && line.contains("budgets[0].monthly_usd_cap"),
        "{line}"
    );
}

/// A negative cap exits 3 naming file:line and the key.
#[test]
fn config_negative_cap() {
    let env = Env::with_fixtures();
    let line = config_error(
        &env,
        "budgets:\n  - arm: acme\n    path: /a\n  - arm: beta\n    monthly_usd_cap: -5\n",
    );
    assert!(
        line.contains("budgets.yaml:5:") && line.contains("budgets[1].monthly_usd_cap"),
        "{line}"
    );
}

/// A duplicate arm exits 3 naming file:line and the key.
#[test]
fn config_duplicate_arm() {
    let env = Env::with_fixtures();
    let line = config_error(
        &env,
        "budgets:\n  - arm: acme\n    path: /a\n  - arm: acme\n    path: /b\n",
    );
    assert!(
        line.contains("budgets.yaml:4:")
            && line.contains("budgets[1].arm")
            && line.contains("duplicate"),
        "{line}"
    );
}

/// A path claimed by two arms (after normalisation) exits 3 naming
/// file:line and the key.
#[test]
fn config_duplicate_path() {
    let env = Env::with_fixtures();
    let line = config_error(
        &env,
        "budgets:\n  - arm: acme\n    path: /a\n  - arm: beta\n    path: /a/\n",
    );
    assert!(
        line.contains("budgets.yaml:5:") && line.contains("budgets[1].path"),
        "{line}"
    );
}

/// A time zone that is not an IANA name exits 3 naming file:line and the key.
#[test]
fn config_bad_time_zone() {
    let env = Env::with_fixtures();
    let line = config_error(&env, "# zone\ntimezone: Europe/Pariss\nbudgets: []\n");
    assert!(
        line.contains("budgets.yaml:2:")
            && line.contains("timezone")
            && line.contains("Europe/Paris\""),
        "{line}"
    );
}

/// A config file that does not exist exits 3 with one line naming it (the
/// reason said once).
#[test]
fn config_missing() {
    let env = Env::with_fixtures();
    std::fs::remove_file(&env.config).unwrap();
    let out = env.run(&["report"]);
    assert_eq!(out.status.code(), Some(3));
    let line = one_stderr_line(&out);
    assert!(line.contains(env.config.to_str().unwrap()), "{line}");
    assert_eq!(line.matches("No such file").count(), 1, "{line}");
}

/// A ledger that is not SQLite exits 4 with one line naming it, and is left
/// as it was.
#[test]
fn ledger_not_sqlite() {
    let env = Env::with_fixtures();
    let junk = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&env.ledger, &junk).unwrap();
    let out = env.run(&["report"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = one_stderr_line(&out);
    assert!(
        line.contains(env.ledger.to_str().unwrap()) && line.contains("not"),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&env.ledger).unwrap(), junk);
}

// Proves: an advisor iteration is billed at its own model's normal rates,
// even when the executor ran in fast mode (the fast multiplier is the
// executor's), while the executor's own tokens take the multiplier.
#[test]
fn fast_executor_does_not_make_its_advisor_fast() {
    let env = Env::new();
    env.write_config("timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n");
    let usage = serde_json::json!({
        "input_tokens": 1000, "output_tokens": 100, "speed": "fast",
        "iterations": [
            {"type": "message", "input_tokens": 1000, "output_tokens": 100},
            {"type": "advisor_message", "model": "claude-opus-4-6", "input_tokens": 2000, "output_tokens": 200}
        ]
    });
    env.append(
        "-x-acme/s1.jsonl",
        &[assistant(
            "s1",
            "/x/acme",
            "msg_1",
            "req_1",
            "2026-11-10T10:00:00.000Z",
            "claude-opus-4-6",
            usage,
        )],
    );
    let doc = env.report_json(&[]);
    // Executor: (1000 x $5 + 100 x $25) per MTok = 7,500 micro-dollars, x6 fast = 45,000.
    // Advisor: (2000 x $5 + 200 x $25) per MTok = 15,000 micro-dollars, not fast.
    assert_eq!(exact_micros(&doc["arms"][0]["cost_usd"]), 60_000);
    // One response: the advisor iteration is part of it.
    assert_eq!(doc["arms"][0]["messages"], 1);
    assert_eq!(doc["arms"][0]["tokens"]["input"], 3000);
}

// Proves: a record without cwd takes its session's cwd from the session's
// earliest record, whichever file is read first (files are read largest
// first, so the later, bigger file with another cwd is read before it).
#[test]
fn a_line_without_cwd_takes_the_cwd_of_its_sessions_earliest_record() {
    let env = Env::new();
    env.write_config(
        "timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n  - arm: beta\n    path: /x/beta\n",
    );
    // The session starts in acme (a small file)...
    env.append(
        "-x-acme/s1.jsonl",
        &[user("s1", "/x/acme", "2026-11-10T09:00:00.000Z", "start")],
    );
    // ...and later works in beta (a bigger file read first), where one
    // response has no cwd.
    let mut lines: Vec<String> = (0..50)
        .map(|i| {
            user(
                "s1",
                "/x/beta",
                "2026-11-10T10:00:00.000Z",
                &format!("later {i} {}", "x".repeat(200)),
            )
        })
        .collect();
    let mut no_cwd: Value = serde_json::from_str(&assistant(
        "s1",
        "/x/beta",
        "msg_nocwd",
        "req_1",
        "2026-11-10T10:05:00.000Z",
        "claude-haiku-4-5",
        usage(1_000_000, 0),
    ))
    .unwrap();
    no_cwd.as_object_mut().unwrap().remove("cwd");
    lines.push(no_cwd.to_string());
    env.append("-x-beta/s1-resumed.jsonl", &lines);
    let doc = env.report_json(&[]);
    // $1 (1M haiku input tokens) goes to acme, where the session began.
    assert_eq!(exact_micros(&arm(&doc, "acme")["cost_usd"]), 1_000_000);
    assert_eq!(exact_micros(&arm(&doc, "beta")["cost_usd"]), 0);
}

// ---- Breakdown rows add up to the total ---------------------------------------------------

/// Three responses whose costs are not whole micro-dollars or cents (cache
/// reads at 0.08, 0.1 and 0.3 micro-dollars per token), one per model,
/// session and day:
///
/// | row | model | tokens | cost (micro-dollars) |
/// |---|---|---|---|
/// | 1 | claude-3-5-haiku, s-a, Nov 10 | 50,005 | 4,000.4 |
/// | 2 | claude-haiku-4-5, s-b, Nov 11 | 40,004 | 4,000.4 |
/// | 3 | claude-sonnet-4-5, s-c, Nov 12 | 13,338 | 4,001.4 |
///
/// The total is 12,002.2, shown as 12,002 micro-dollars and $0.01. Rounded
/// one by one the rows were 4,000 + 4,000 + 4,001 = 12,001 and $0.00 three
/// times. Apportioned by largest remainder: in micro-dollars the one missing
/// unit goes to the first of the equal remainders (row 1: 4,001, 4,000,
/// 4,001); in cents the cent goes to row 3 (0.40014 of a cent).
fn fractional_rows() -> Env {
    let env = Env::new();
    env.write_config("timezone: UTC\nbudgets:\n  - arm: acme\n    path: /x/acme\n");
    for (session, model, day, tokens) in [
        ("s-a", "claude-3-5-haiku", "10", 50_005u64),
        ("s-b", "claude-haiku-4-5", "11", 40_004),
        ("s-c", "claude-sonnet-4-5", "12", 13_338),
    ] {
        env.append(
            &format!("-x-acme/{session}.jsonl"),
            &[assistant(
                session,
                "/x/acme",
                &format!("msg_{session}"),
                &format!("req_{session}"),
                &format!("2026-11-{day}T10:00:00.000Z"),
                model,
                serde_json::json!({"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": tokens}),
            )],
        );
    }
    env
}

#[test]
fn breakdown_rows_add_up_to_the_total_in_json_csv_and_table() {
    let env = fractional_rows();
    for by in ["model", "session", "day"] {
        let doc = env.report_json(&["--by", by]);
        assert_eq!(micros(&doc["totals"]["cost_usd"]), 12_002, "{by}");
        let rows: Vec<i64> = doc["breakdown"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| micros(&r["cost_usd"]))
            .collect();
        assert_eq!(rows, [4_001, 4_000, 4_001], "--by {by} --json");

        let out = env.run(&["report", "--by", by, "--csv"]);
        assert!(out.status.success());
        let csv = String::from_utf8(out.stdout).unwrap();
        let costs: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap())
            .collect();
        assert_eq!(
            costs,
            ["0.004001", "0.004000", "0.004001", "0.012002"],
            "--by {by} --csv: {csv}"
        );

        let out = env.run(&["report", "--by", by]);
        assert!(out.status.success());
        let table = String::from_utf8(out.stdout).unwrap();
        let spent: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with('│') && !l.contains(" spent "))
            .map(|l| l.split('┆').nth(1).unwrap().trim())
            .collect();
        assert_eq!(
            spent,
            ["$0.00", "$0.00", "$0.01", "$0.01"],
            "--by {by} table:\n{table}"
        );
    }
}

/// A report on an unchanged tree is built while the transcripts are
/// scanned; it is kept only when the scan found nothing new. A response
/// appended since the last report, or read into the ledger by another
/// command since, shows in the next report: 10,000 in + 10,000 out of
/// Sonnet 4.5 = 30,000 + 150,000 micro-dollars for acme each.
#[test]
fn the_next_report_shows_what_changed_since() {
    let env = Env::with_fixtures();
    let before = env.report_json(&["--period", "all"]);
    assert_eq!(env.report_json(&["--period", "all"]), before);
    let line = |id: &str| {
        assistant(
            "s-new",
            "/work/clients/acme",
            id,
            &format!("r-{id}"),
            "2026-11-20T10:00:00.000Z",
            "claude-sonnet-4-5-20250929",
            usage(10_000, 10_000),
        )
    };
    env.append("-work-clients-acme/s-new.jsonl", &[line("m-new-1")]);
    let after = env.report_json(&["--period", "all"]);
    let acme = |doc: &Value| micros(&arm(doc, "acme")["cost_usd"]);
    assert_eq!(acme(&after), acme(&before) + 180_000);
    assert_eq!(
        micros(&after["totals"]["cost_usd"]),
        micros(&before["totals"]["cost_usd"]) + 180_000
    );
    // Read into the ledger by another command first: the report built
    // during the scan (nothing new for it) has it.
    env.append("-work-clients-acme/s-new.jsonl", &[line("m-new-2")]);
    let out = env.run(&["ingest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let month = env.report_json(&[]);
    assert_eq!(acme(&month), ACME.micros + 360_000);
}
