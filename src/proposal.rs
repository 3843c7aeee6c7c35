//! A budgets.yaml proposed from the ledger (`octo-budget init`).
//!
//! Every response of the window (default: the last 90 days) is placed by
//! the `cwd` its records carry (a record without one takes its session's
//! first cwd), never by the transcript folder name, which cannot be decoded
//! (`/a/my_proj` and `/a/my-proj` encode the same). Each cwd is folded into
//! its repository:
//!
//! 1. where the folder exists on this machine, the nearest ancestor (the
//!    folder itself included, found by walking the recorded path upwards,
//!    so a symlinked path keeps its recorded form) holding `.git`, other
//!    than `/` and `$HOME` (a dotfiles repository owns nothing by itself);
//! 2. else the folder the session was started in (its earliest cwd), when
//!    the cwd lies within it (and it is not `/` or `$HOME`);
//! 3. else the cwd itself.
//!
//! A folder found by rule 2 or 3 that lies inside another proposed folder
//! is left to it (its spend is the outer arm's by the longest-prefix rule);
//! a git top level is always its own arm, so a repository nested inside
//! another stays apart. Folders that are one directory on this machine
//! (a symlink and its target) become one arm with both paths.
//!
//! The proposal is validated by the config loader before it is written or
//! printed, and its spend figures come from the same attribution `report`
//! uses, on the proposed arms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::attribution::{is_within, Attributor};
use crate::budget::local_midnight;
use crate::config::{normalise_path, Action, Arm, Caps, Policy};
use crate::ledger::query::Filter;
use crate::ledger::{Result, Store};
use crate::model::Group;
use crate::money::{Micros, Picos};
use crate::pricing::PriceTable;
use crate::spend::{Engine, Owner};

/// The window when `--since` is not given.
pub const DEFAULT_DAYS: i64 = 90;
/// The smallest suggested monthly cap, in dollars.
pub const FLOOR_USD: i64 = 10;
/// Suggested caps are 1.5 x the highest 30-day spend, rounded up to one of
/// these (in tenths) times a power of ten.
const NICE_TENTHS: [i64; 9] = [10, 15, 20, 25, 30, 40, 50, 60, 80];

/// The proposal for the window from `since` (a local date in `zone`) to
/// `now`, from what `ledger` holds. `home` is never an arm by itself.
pub fn propose(
    ledger: &dyn Store,
    prices: &PriceTable,
    now: DateTime<Utc>,
    zone: Tz,
    since: NaiveDate,
    home: Option<&str>,
) -> Result<Proposal> {
    let start = local_midnight(zone, since);
    let end = now + Duration::milliseconds(1);
    let groups = ledger.groups(start, end, &Filter::default())?;
    let places = ledger.places()?;
    let sessions: Vec<&str> = groups.iter().map(|g| g.session_id.as_str()).collect();
    let first = ledger.first_cwds(&sessions)?;
    let home = home.map(normalise_path);
    // Where a group ran: its record's cwd, else its session's first one.
    let cwd_of = |g: &Group| {
        let place = places.get(&g.place_id)?;
        let start_cwd = first.get(&g.session_id).map(String::as_str);
        let cwd = if place.cwd.is_empty() {
            start_cwd
        } else {
            Some(place.cwd.as_str())
        };
        Some((cwd.filter(|c| c.starts_with('/')), start_cwd, place))
    };

    // The folder proposed for each group.
    let mut roots: BTreeMap<String, bool> = BTreeMap::new(); // folder -> is a git top level
    for g in &groups {
        if let Some((Some(c), start_cwd, _)) = cwd_of(g) {
            let (root, git) = repository(&normalise_path(c), start_cwd, home.as_deref());
            let e = roots.entry(root).or_insert(false);
            *e |= git;
        }
    }
    let arms = propose_arms(&roots);

    // The spend of each proposed arm, attributed exactly as `report` will.
    let config_arms: Vec<Arm> = arms
        .iter()
        .map(|a| Arm {
            name: a.name.clone(),
            paths: a.paths.clone(),
            caps: Caps::default(),
            policy: Policy {
                grace_pct: 110,
                action: Action::Warn,
                alert_at_pct: 80,
            },
            branch_caps: Vec::new(),
        })
        .collect();
    let attributor = Attributor::new(&config_arms);
    let mut engine = Engine::new(ledger, &attributor, prices, now);
    let mut spend: Vec<ArmSpend> = vec![ArmSpend::default(); arms.len()];
    let mut unattributed = Picos::default();
    let mut no_cwd: BTreeMap<String, Picos> = BTreeMap::new(); // transcript folder -> spend
    engine.each(start, end, &Filter::default(), &|_| true, |g, owner, c| {
        if let Some((None, _, place)) = cwd_of(g) {
            *no_cwd.entry(place.project.clone()).or_default() += c;
        }
        match owner {
            Owner::Arm(i) => {
                let s = &mut spend[i];
                s.total += c;
                *s.by_day.entry(g.day).or_default() += c;
                s.sessions.insert(g.session_id.clone());
            }
            Owner::Unattributed => unattributed += c,
        }
    })?;

    Ok(Proposal {
        zone,
        since,
        today: now.with_timezone(&zone).date_naive(),
        arms,
        spend,
        unattributed: unattributed.to_micros(),
        no_cwd,
        ledger: None,
        claude_dirs: Vec::new(),
    })
}

/// The repository folder of `cwd` (see the module comment) and whether it
/// is a git top level.
pub fn repository(cwd: &str, session_start: Option<&str>, home: Option<&str>) -> (String, bool) {
    let excluded = |p: &str| p == "/" || Some(p) == home;
    if let Some(top) = git_top(cwd, &excluded) {
        return (top, true);
    }
    if let Some(s) = session_start.map(normalise_path) {
        if is_within(cwd, &s) && !excluded(&s) {
            return match git_top(&s, &excluded) {
                Some(top) => (top, true),
                None => (s, false),
            };
        }
    }
    (cwd.to_owned(), false)
}

/// The nearest ancestor of `dir` (itself included, lexically, so the
/// recorded form of a symlinked path is kept) that holds `.git`, when
/// `dir` exists here.
fn git_top(dir: &str, excluded: &dyn Fn(&str) -> bool) -> Option<String> {
    if !Path::new(dir).is_dir() {
        return None;
    }
    let mut cur = dir.to_owned();
    loop {
        if excluded(&cur) {
            return None;
        }
        if Path::new(&cur).join(".git").exists() {
            return Some(cur);
        }
        let parent = Path::new(&cur).parent()?.to_string_lossy().into_owned();
        cur = parent;
    }
}

/// One proposed arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedArm {
    pub name: String,
    pub paths: Vec<String>,
    pub git: bool,
}

/// What a proposed arm spent in the window.
#[derive(Debug, Clone, Default)]
pub struct ArmSpend {
    pub total: Picos,
    pub by_day: BTreeMap<NaiveDate, Picos>,
    pub sessions: BTreeSet<String>,
}

/// Arms from the proposed folders: folders inside another one are left to
/// it unless they are git top levels; folders that are the same directory
/// here are one arm; names are the last path component, made unique.
pub fn propose_arms(roots: &BTreeMap<String, bool>) -> Vec<ProposedArm> {
    let kept: Vec<(&String, bool)> = roots
        .iter()
        .filter(|(p, git)| {
            **git
                || !roots
                    .keys()
                    .any(|other| other != *p && is_within(p.as_str(), other))
        })
        .map(|(p, g)| (p, *g))
        .collect();
    // One arm per directory on this machine (a symlink and its target).
    let mut by_dir: BTreeMap<String, ProposedArm> = BTreeMap::new();
    for (p, git) in kept {
        let key = std::fs::canonicalize(p)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| p.clone());
        let arm = by_dir.entry(key).or_insert_with(|| ProposedArm {
            name: String::new(),
            paths: Vec::new(),
            git,
        });
        arm.paths.push(p.clone());
        arm.git |= git;
    }
    // The directory's own path first (it names the arm), then the others.
    let mut arms: Vec<ProposedArm> = by_dir
        .into_iter()
        .map(|(dir, mut a)| {
            a.paths.sort_by_key(|p| (*p != dir, p.clone()));
            a
        })
        .collect();
    arms.sort_by(|a, b| a.paths.cmp(&b.paths));
    name_arms(&mut arms);
    arms
}

/// The last component of an arm's first path; on a collision, the parent's
/// name joined with `-`; then `-2`, `-3`, ... until unique.
fn name_arms(arms: &mut [ProposedArm]) {
    let base = |p: &str, depth: usize| -> String {
        let comps: Vec<&str> = p.split('/').filter(|c| !c.trim().is_empty()).collect();
        if comps.is_empty() {
            return "root".into();
        }
        let from = comps.len().saturating_sub(depth);
        // budgets.yaml trims names: so do we, before making them unique.
        let n = comps[from..].join("-").trim().to_owned();
        if n.is_empty() {
            "arm".into()
        } else {
            n
        }
    };
    let reserved = |n: &str| n == "unattributed" || n == "total";
    let mut names: Vec<String> = arms.iter().map(|a| base(&a.paths[0], 1)).collect();
    let count = |names: &[String], n: &str| names.iter().filter(|x| *x == n).count();
    let snapshot = names.clone();
    for (i, a) in arms.iter().enumerate() {
        if count(&snapshot, &names[i]) > 1 || reserved(&names[i]) {
            names[i] = base(&a.paths[0], 2);
        }
    }
    let mut used: BTreeSet<String> = BTreeSet::new();
    for (a, n) in arms.iter_mut().zip(names) {
        let mut name = n.clone();
        let mut k = 2;
        while used.contains(&name) || reserved(&name) {
            name = format!("{n}-{k}");
            k += 1;
        }
        used.insert(name.clone());
        a.name = name;
    }
}

/// 1.5 x `spend`, rounded up to a round number (10, 15, 20, 25, 30, 40,
/// 50, 60, 80 x a power of ten dollars), never below [`FLOOR_USD`].
pub fn suggested_cap(spend: Micros) -> Micros {
    let target = spend.0.saturating_mul(3) / 2;
    let mut decade = FLOOR_USD.saturating_mul(Micros::PER_DOLLAR) / 10;
    loop {
        for t in NICE_TENTHS {
            let c = decade.saturating_mul(t);
            if c >= target {
                return Micros(c);
            }
        }
        if decade > i64::MAX / 100 {
            return Micros(decade.saturating_mul(100));
        }
        decade *= 10;
    }
}

/// The highest spend of any 30 consecutive days.
fn highest_30_days(by_day: &BTreeMap<NaiveDate, Picos>) -> Micros {
    by_day
        .keys()
        .map(|d| {
            by_day
                .range(*d..*d + Duration::days(30))
                .map(|(_, c)| *c)
                .sum::<Picos>()
                .to_micros()
        })
        .max()
        .unwrap_or_default()
}

/// A proposal: the arms, what each spent, and what the file says about
/// the ledger and transcript folders.
pub struct Proposal {
    pub zone: Tz,
    pub since: NaiveDate,
    pub today: NaiveDate,
    pub arms: Vec<ProposedArm>,
    pub spend: Vec<ArmSpend>,
    pub unattributed: Micros,
    /// Spend of records without a cwd, per transcript folder.
    pub no_cwd: BTreeMap<String, Picos>,
    /// `ledger:` and `claude_dirs:` to write (the flags that named them).
    pub ledger: Option<PathBuf>,
    pub claude_dirs: Vec<PathBuf>,
}

/// A YAML string: JSON's double-quoted form is a valid YAML double-quoted
/// scalar, exact for any text (spaces, `#`, `:`, quotes, backslashes).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A cap in dollars as YAML: `10`, `1500`, `0.45`.
fn dollars(m: Micros) -> String {
    let p = m.plain();
    let p = p.trim_end_matches('0').trim_end_matches('.');
    p.to_owned()
}

/// The proposal as budgets.yaml text.
pub fn render(p: &Proposal) -> String {
    let mut s = String::new();
    let days = (p.today - p.since).num_days();
    s.push_str(&format!(
        "# budgets.yaml proposed by `octo-budget init` on {} from the spend in\n\
         # Claude Code transcripts since {} ({days} days): one arm per repository\n\
         # that spent, found from the `cwd` recorded in the transcripts.\n\
         # Review the names and caps, then: octo-budget hook install --statusline\n\
         #\n\
         # monthly_usd_cap is a suggestion: the arm's highest spend in any 30 days\n\
         # of that window x 1.5, rounded up to 10, 15, 20, 25, 30, 40, 50, 60 or 80\n\
         # x a power of ten dollars, and never below ${FLOOR_USD}.\n\n",
        p.today, p.since
    ));
    s.push_str("# The IANA time zone in which days, weeks (Monday start) and months start.\n");
    s.push_str(&format!("timezone: {}\n", q(p.zone.name())));
    if !p.claude_dirs.is_empty() {
        s.push_str("\n# Where the transcripts were read from (--claude-dir).\nclaude_dirs:\n");
        for d in &p.claude_dirs {
            s.push_str(&format!("  - {}\n", q(&d.to_string_lossy())));
        }
    }
    if let Some(l) = &p.ledger {
        s.push_str(&format!(
            "\n# octo-budget's ledger (--ledger).\nledger: {}\n",
            q(&l.to_string_lossy())
        ));
    }
    s.push('\n');
    if p.arms.is_empty() {
        s.push_str(
            "# No repository spent in this window: add arms by hand (see README).\n\
             # octo-budget refuses to run until this lists an arm or `total:` has a cap.\n\
             budgets: []\n",
        );
    } else {
        s.push_str(
            "# One entry per arm. Spend belongs to the arm whose path is the longest\n\
             # path-boundary prefix of the folder Claude Code ran in.\n\
             budgets:\n",
        );
    }
    for (a, sp) in p.arms.iter().zip(&p.spend) {
        let top = highest_30_days(&sp.by_day);
        let cap = suggested_cap(top);
        let n = sp.sessions.len();
        s.push_str(&format!(
            "  # {} since {}, {} at most in 30 days, {n} session{}.\n",
            sp.total.to_micros(),
            p.since,
            top,
            if n == 1 { "" } else { "s" }
        ));
        s.push_str("  # The arm's name (unique): `report --arm NAME`, alerts, the status line.\n");
        s.push_str(&format!("  - arm: {}\n", q(&a.name)));
        let what = if a.git {
            "The repository (its git top level); its subfolders belong to it."
        } else {
            "The folder sessions were started in (not a git repository here);\n    # its subfolders belong to it."
        };
        if a.paths.len() == 1 {
            s.push_str(&format!("    # {what}\n    path: {}\n", q(&a.paths[0])));
        } else {
            s.push_str(&format!(
                "    # {what} The same folder was recorded under several\n    # paths (a symlink), so the arm has them all.\n    paths:\n"
            ));
            for path in &a.paths {
                s.push_str(&format!("      - {}\n", q(path)));
            }
        }
        s.push_str(&format!(
            "    # Dollars per calendar month (suggested: {} x 1.5, rounded up).\n    monthly_usd_cap: {}\n",
            top,
            dollars(cap)
        ));
        s.push_str(
            "    # warn: warn at the cap, never block. Change to hard_stop to refuse\n    # gated tools at cap x grace_pct/100 (default 110%).\n    action_on_breach: warn\n",
        );
    }
    if p.unattributed.0 > 0 {
        s.push_str(&format!(
            "\n# Not in any arm above: {} of spend since {}.\n",
            p.unattributed, p.since
        ));
        if !p.no_cwd.is_empty() {
            let folders: Vec<String> = p
                .no_cwd
                .iter()
                .map(|(f, c)| format!("{f} ({})", c.to_micros()))
                .collect();
            s.push_str(&format!(
                "# Of it, records without any cwd, in transcript folders {}.\n\
                 # Folder names cannot be decoded into paths (/a/my_proj and /a/my-proj\n\
                 # encode the same), so add those repositories by hand.\n",
                folders.join(", ").replace('\n', " ")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(d: i64) -> Micros {
        Micros(d * Micros::PER_DOLLAR)
    }

    #[test]
    fn caps_are_one_and_a_half_times_rounded_up_with_a_floor() {
        assert_eq!(suggested_cap(Micros(0)), m(10));
        assert_eq!(suggested_cap(m(6)), m(10)); // 9 -> floor 10
        assert_eq!(suggested_cap(m(7)), m(15)); // 10.5
        assert_eq!(suggested_cap(m(40)), m(60));
        assert_eq!(suggested_cap(m(812)), m(1500)); // 1218
        assert_eq!(suggested_cap(m(1000)), m(1500));
        assert_eq!(suggested_cap(Micros(1_000_000_001)), m(2000)); // a micro-dollar over 1500
        assert_eq!(suggested_cap(Micros(999_999_999)), m(1500));
        assert_eq!(suggested_cap(m(5400)), m(10000)); // 8100
        assert_eq!(suggested_cap(Micros(5_333_333_333)), m(8000)); // 7999.99
    }

    #[test]
    fn yaml_strings_are_exact() {
        for s in [
            "/a/my proj",
            "/a/my.proj",
            "/a/my_proj",
            "/a/-x",
            "/a/it's \"q\"",
            "/a/x: y #z",
            "/a/back\\slash",
            "/a/tab\tnl",
            "~",
            "yes",
            "null",
            "/a/émoji 🚀",
        ] {
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&q(s)).unwrap();
            assert_eq!(v.as_str(), Some(s), "{s:?}");
        }
    }

    #[test]
    fn dollars_are_plain_numbers() {
        assert_eq!(dollars(m(10)), "10");
        assert_eq!(dollars(m(1500)), "1500");
        assert_eq!(dollars(Micros(450_000)), "0.45");
    }

    #[test]
    fn folders_fold_and_names_are_unique() {
        let mut roots = BTreeMap::new();
        roots.insert("/x/acme".to_owned(), false);
        roots.insert("/x/acme/api".to_owned(), false); // inside acme: folded
        roots.insert("/x/acme/vendor/lib".to_owned(), true); // a git repo: kept
        roots.insert("/x/one/api".to_owned(), false);
        roots.insert("/x/two/api".to_owned(), false);
        roots.insert("/y/total".to_owned(), false);
        let arms = propose_arms(&roots);
        let got: Vec<(&str, &str)> = arms
            .iter()
            .map(|a| (a.name.as_str(), a.paths[0].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("acme", "/x/acme"),
                ("lib", "/x/acme/vendor/lib"),
                ("one-api", "/x/one/api"),
                ("two-api", "/x/two/api"),
                ("y-total", "/y/total"),
            ]
        );
    }

    #[test]
    fn names_are_trimmed_before_they_are_made_unique() {
        let mut roots = BTreeMap::new();
        roots.insert("/n/a/x".to_owned(), false);
        roots.insert("/n/b/x ".to_owned(), false);
        roots.insert("/n/c/ ".to_owned(), false);
        let names: Vec<String> = propose_arms(&roots).into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["a-x", "b-x", "c"]);
    }

    #[test]
    fn repository_rules() {
        // Nothing exists under /nonexistent: the session's start folder
        // when the cwd is within it, else the cwd.
        let r = repository("/nonexistent/a/src", Some("/nonexistent/a"), None);
        assert_eq!(r, ("/nonexistent/a".to_owned(), false));
        let r = repository("/nonexistent/b/api", Some("/nonexistent/a"), None);
        assert_eq!(r, ("/nonexistent/b/api".to_owned(), false));
        let r = repository(
            "/nonexistent/h/x",
            Some("/nonexistent/h"),
            Some("/nonexistent/h"),
        );
        assert_eq!(r, ("/nonexistent/h/x".to_owned(), false));
    }
}
