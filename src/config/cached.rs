//! A validated config as stored in the ledger, so that the hook (`check`,
//! `statusline`), which starts a process before every tool call, does not
//! parse budgets.yaml's YAML on every call: a third of such a call's
//! instructions on a 40-arm file.
//!
//! An entry is found by [`key`]: a 128-bit hash of everything
//! [`Config::parse`] reads (the file's bytes, its path as given and made
//! absolute, the home folder, the local time zone) and of this build's
//! source code, so an entry is used only by the very code that wrote it,
//! for the very input it parsed. A file that changes by one byte, moves, or
//! is read by another build of octo-budget is parsed again. Only a config
//! that validated is ever stored; a broken file is an error on every call,
//! as before.
//!
//! The stored form is JSON with every number as an integer: `f64` fields
//! (`prices:` rates, `spike_mad`) are stored as their bit patterns, so
//! nothing is rounded on the way back.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{
    glob_matcher, Action, AlertSettings, Arm, BranchCap, Caps, Config, Gate, OnError, PathContext,
    Policy, Total,
};
use crate::money::Micros;
use crate::pricing::table::{LongContextSpec, RowSpec};

/// The version of the stored form (part of the key).
const FORMAT: u32 = 1;

/// A hash of this build's source code and lock file (`build.rs`).
const SOURCE: &str = env!("OCTO_BUDGET_SOURCE_HASH");

/// The cache key of `text`, read from `path`, parsed under `ctx`.
pub fn key(text: &str, path: &Path, ctx: &PathContext) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(&FORMAT.to_le_bytes());
    field(SOURCE.as_bytes());
    field(path.as_os_str().as_encoded_bytes());
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    field(abs.as_os_str().as_encoded_bytes());
    match &ctx.home {
        Some(home) => field(home.as_os_str().as_encoded_bytes()),
        None => field(b"\0no home"),
    }
    match ctx.local_zone {
        Some(tz) => field(tz.name().as_bytes()),
        None => field(b"\0no zone"),
    }
    field(text.as_bytes());
    h.digest128().to_le_bytes()
}

/// The ledger that budgets.yaml's `text` (at `path`) names with `ledger:`,
/// read without parsing the YAML, so that the hook can look its config up
/// in that ledger (a team's config names its server: the ledger is then
/// that server's local copy). None when the file names none, or names it
/// in any form but the plain one (`ledger: value`, at the start of a line,
/// quoted or not, without escapes; once). This is a guess only: what is
/// found in the ledger it names is used when the parsed or stored config
/// names that same ledger, and is otherwise as good as a miss.
pub fn configured_ledger(text: &str, path: &Path, ctx: &PathContext) -> Option<PathBuf> {
    let raw = ledger_line(text)?;
    Some(ctx.ledger_setting(raw, &super::validate::folder_of(path)))
}

/// The value of a file's single top-level `ledger:` line, unquoted.
fn ledger_line(text: &str) -> Option<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut found = None;
    let mut content = false;
    let mut just_found = false;
    for line in text.lines() {
        // A document marker after the first content: more than one
        // document, which the parse refuses.
        if line.starts_with("---") || line.starts_with("...") {
            if content {
                return None;
            }
            continue;
        }
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // An indented line right after it continues the value.
        if std::mem::take(&mut just_found) && t.len() < line.len() {
            return None;
        }
        content = true;
        let Some(rest) = line.strip_prefix("ledger:") else {
            continue;
        };
        just_found = true;
        if found.is_some() || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            return None;
        }
        found = Some(scalar(rest)?);
    }
    found
}

/// A plain or quoted one-line YAML scalar without escapes, comment removed.
fn scalar(rest: &str) -> Option<&str> {
    let v = rest.trim();
    let (v, after) = match v.chars().next()? {
        q @ ('\'' | '"') => {
            let inner = &v[1..];
            let end = inner.find(q)?;
            let value = &inner[..end];
            if value.contains('\\') || inner[end + 1..].starts_with(q) {
                return None;
            }
            (value, &inner[end + 1..])
        }
        // Anything YAML reads otherwise (aliases, tags, block scalars,
        // flow collections, directives, ...).
        '&' | '*' | '!' | '|' | '>' | '[' | '{' | '%' | '@' | '`' | '-' | '?' | ':' | ',' | '#' => {
            return None
        }
        _ => {
            let v = match v.find(" #").or_else(|| v.find("\t#")) {
                Some(i) => v[..i].trim_end(),
                None => v,
            };
            // ": " would start a mapping.
            if v.contains(": ") || v.ends_with(':') {
                return None;
            }
            (v, "")
        }
    };
    let after = after.trim();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    // YAML's nulls (and an empty value) name no ledger.
    match v {
        "" | "~" | "null" | "Null" | "NULL" => None,
        v => Some(v),
    }
}

/// The stored form of `cfg`; None when it cannot be stored exactly (a path
/// that is not UTF-8, or a float that is not finite).
pub fn encode(cfg: &Config) -> Option<String> {
    serde_json::to_string(&Stored::of(cfg)?).ok()
}

/// The config stored as `text` (see [`encode`]), for the file at `path`.
/// None when `text` is not such a form (written by another format).
pub fn decode(text: &str, path: &Path) -> Option<Config> {
    serde_json::from_str::<Stored>(text).ok()?.config(path)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    timezone: String,
    arms: Vec<StoredArm>,
    total: Option<(StoredCaps, StoredPolicy)>,
    gate_tools: Vec<String>,
    gate_allows_on_error: bool,
    /// spike_mad (bits), spike_min, unattributed_pct, unattributed_min.
    alerts: (u64, i64, u32, i64),
    prices: Vec<(String, StoredRow)>,
    claude_dirs: Vec<String>,
    ledger: Option<String>,
    trunk_branches: Vec<String>,
    notices: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredArm {
    name: String,
    paths: Vec<String>,
    caps: StoredCaps,
    policy: StoredPolicy,
    /// (glob, cap) in file order; the matcher is compiled again.
    branch_caps: Vec<(String, i64)>,
}

/// monthly, weekly, daily, session, per_hour, branch.
type StoredCaps = [Option<i64>; 6];

/// grace_pct, action, alert_at_pct.
type StoredPolicy = (u32, String, u32);

/// A `prices:` row; every float as its bits.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRow {
    ids: Vec<String>,
    input: u64,
    output: u64,
    cache_write_5m: Option<u64>,
    cache_write_1h: Option<u64>,
    cache_read: Option<u64>,
    long_context: Option<StoredLongContext>,
    fast: Option<u64>,
    us_geo: Option<u64>,
    effective_from: Option<NaiveDate>,
    source: Option<String>,
}

/// above_prompt_tokens, then input, output, cache_write_5m, cache_write_1h,
/// cache_read as in [`StoredRow`].
type StoredLongContext = (u64, u64, u64, Option<u64>, Option<u64>, Option<u64>);

/// A float's bits, if it is finite (what validation lets through).
fn bits(f: f64) -> Option<u64> {
    f.is_finite().then(|| f.to_bits())
}

fn opt_bits(f: Option<f64>) -> Option<Option<u64>> {
    f.map_or(Some(None), |f| bits(f).map(Some))
}

fn float(b: u64) -> Option<f64> {
    let f = f64::from_bits(b);
    f.is_finite().then_some(f)
}

fn opt_float(b: Option<u64>) -> Option<Option<f64>> {
    b.map_or(Some(None), |b| float(b).map(Some))
}

fn utf8(p: &Path) -> Option<String> {
    p.to_str().map(str::to_owned)
}

fn caps_of(c: &Caps) -> StoredCaps {
    [
        c.monthly, c.weekly, c.daily, c.session, c.per_hour, c.branch,
    ]
    .map(|m| m.map(|m| m.0))
}

fn caps(s: &StoredCaps) -> Caps {
    let [monthly, weekly, daily, session, per_hour, branch] = s.map(|m| m.map(Micros));
    Caps {
        monthly,
        weekly,
        daily,
        session,
        per_hour,
        branch,
    }
}

fn policy_of(p: &Policy) -> StoredPolicy {
    (p.grace_pct, p.action.as_str().to_owned(), p.alert_at_pct)
}

fn policy(s: &StoredPolicy) -> Option<Policy> {
    let action = [Action::Alert, Action::Warn, Action::HardStop, Action::Stop]
        .into_iter()
        .find(|a| a.as_str() == s.1)?;
    Some(Policy {
        grace_pct: s.0,
        action,
        alert_at_pct: s.2,
    })
}

impl StoredRow {
    fn of(r: &RowSpec) -> Option<StoredRow> {
        let long_context = match &r.long_context {
            Some(l) => Some((
                l.above_prompt_tokens,
                bits(l.input)?,
                bits(l.output)?,
                opt_bits(l.cache_write_5m)?,
                opt_bits(l.cache_write_1h)?,
                opt_bits(l.cache_read)?,
            )),
            None => None,
        };
        Some(StoredRow {
            ids: r.ids.clone(),
            input: bits(r.input)?,
            output: bits(r.output)?,
            cache_write_5m: opt_bits(r.cache_write_5m)?,
            cache_write_1h: opt_bits(r.cache_write_1h)?,
            cache_read: opt_bits(r.cache_read)?,
            long_context,
            fast: opt_bits(r.fast)?,
            us_geo: opt_bits(r.us_geo)?,
            effective_from: r.effective_from,
            source: r.source.clone(),
        })
    }

    fn row(&self) -> Option<RowSpec> {
        let long_context = match &self.long_context {
            Some((above, i, o, w5, w1, r)) => Some(LongContextSpec {
                above_prompt_tokens: *above,
                input: float(*i)?,
                output: float(*o)?,
                cache_write_5m: opt_float(*w5)?,
                cache_write_1h: opt_float(*w1)?,
                cache_read: opt_float(*r)?,
            }),
            None => None,
        };
        Some(RowSpec {
            ids: self.ids.clone(),
            input: float(self.input)?,
            output: float(self.output)?,
            cache_write_5m: opt_float(self.cache_write_5m)?,
            cache_write_1h: opt_float(self.cache_write_1h)?,
            cache_read: opt_float(self.cache_read)?,
            long_context,
            fast: opt_float(self.fast)?,
            us_geo: opt_float(self.us_geo)?,
            effective_from: self.effective_from,
            source: self.source.clone(),
        })
    }
}

impl Stored {
    fn of(cfg: &Config) -> Option<Stored> {
        let arms = cfg
            .arms
            .iter()
            .map(|a| StoredArm {
                name: a.name.clone(),
                paths: a.paths.clone(),
                caps: caps_of(&a.caps),
                policy: policy_of(&a.policy),
                branch_caps: a
                    .branch_caps
                    .iter()
                    .map(|b| (b.glob.clone(), b.cap.0))
                    .collect(),
            })
            .collect();
        let a = &cfg.alerts;
        Some(Stored {
            timezone: cfg.timezone.name().to_owned(),
            arms,
            total: cfg
                .total
                .as_ref()
                .map(|t| (caps_of(&t.caps), policy_of(&t.policy))),
            gate_tools: cfg.gate.tools.clone(),
            gate_allows_on_error: cfg.gate.on_error == OnError::Allow,
            alerts: (
                bits(a.spike_mad)?,
                a.spike_min.0,
                a.unattributed_pct,
                a.unattributed_min.0,
            ),
            prices: cfg
                .prices
                .iter()
                .map(|(k, r)| Some((k.clone(), StoredRow::of(r)?)))
                .collect::<Option<_>>()?,
            claude_dirs: cfg
                .claude_dirs
                .iter()
                .map(|p| utf8(p))
                .collect::<Option<_>>()?,
            ledger: match &cfg.ledger {
                Some(p) => Some(utf8(p)?),
                None => None,
            },
            trunk_branches: cfg.trunk_branches.clone(),
            notices: cfg.notices.clone(),
        })
    }

    fn config(self, path: &Path) -> Option<Config> {
        let mut arms = Vec::with_capacity(self.arms.len());
        for a in self.arms {
            let branch_caps = a
                .branch_caps
                .into_iter()
                .map(|(glob, cap)| {
                    Some(BranchCap {
                        pattern: glob_matcher(&glob).ok()?,
                        glob,
                        cap: Micros(cap),
                    })
                })
                .collect::<Option<_>>()?;
            arms.push(Arm {
                name: a.name,
                paths: a.paths,
                caps: caps(&a.caps),
                policy: policy(&a.policy)?,
                branch_caps,
            });
        }
        let total = match &self.total {
            Some((c, p)) => Some(Total {
                caps: caps(c),
                policy: policy(p)?,
            }),
            None => None,
        };
        let (spike_mad, spike_min, unattributed_pct, unattributed_min) = self.alerts;
        Some(Config {
            path: path.to_path_buf(),
            timezone: self.timezone.parse().ok()?,
            arms,
            total,
            gate: Gate {
                tools: self.gate_tools,
                on_error: if self.gate_allows_on_error {
                    OnError::Allow
                } else {
                    OnError::Deny
                },
            },
            alerts: AlertSettings {
                spike_mad: float(spike_mad)?,
                spike_min: Micros(spike_min),
                unattributed_pct,
                unattributed_min: Micros(unattributed_min),
            },
            prices: self
                .prices
                .into_iter()
                .map(|(k, r)| Some((k, r.row()?)))
                .collect::<Option<_>>()?,
            claude_dirs: self.claude_dirs.into_iter().map(PathBuf::from).collect(),
            ledger: self.ledger.map(PathBuf::from),
            trunk_branches: self.trunk_branches,
            notices: self.notices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PathContext {
        PathContext {
            home: Some(PathBuf::from("/home/dev")),
            local_zone: Some(chrono_tz::Europe::Paris),
        }
    }

    /// The ledger a file names is read from its plain `ledger:` line as
    /// the parse reads it (expanded, relative to the file, a URI as is);
    /// every other form is no guess at all.
    #[test]
    fn the_named_ledger_is_read_from_a_plain_line_only() {
        let at = Path::new("/etc/ob/budgets.yaml");
        let named = |text: &str| configured_ledger(text, at, &ctx());
        let parsed = |text: &str| {
            Config::parse(
                &format!("{text}total:\n  monthly_usd_cap: 10\n"),
                at,
                &ctx(),
            )
            .unwrap()
            .ledger
        };
        for text in [
            "ledger: /var/ob/l.sqlite\n",
            "ledger: ~/l.sqlite  # mine\n",
            "ledger: 'rel/l.sqlite'\n",
            "---\n# team\nledger: \"postgres://ob@db.internal/budgets\"\ntimezone: UTC\n",
            "ledger:\tpostgresql://db/x?sslmode=disable\n",
        ] {
            assert_eq!(named(text), parsed(text), "{text:?}");
            assert!(named(text).is_some(), "{text:?}");
        }
        assert_eq!(
            named("ledger: ~/l.sqlite\n"),
            Some(PathBuf::from("/home/dev/l.sqlite"))
        );
        assert_eq!(
            named("ledger: rel/l.sqlite\n"),
            Some(PathBuf::from("/etc/ob/rel/l.sqlite"))
        );
        for text in [
            "timezone: UTC\n",
            "ledger:\n",
            "ledger: ~\n",
            "ledger: null\n",
            "ledger: # none\n",
            "ledger: /a\nledger: /b\n",
            "ledger: /a\n  /b\n",
            "ledger: \"/a\\tb\"\n",
            "ledger: 'it''s'\n",
            "ledger: *anchor\n",
            "ledger: >\n  /a\n",
            "ledger: [/a]\n",
            "ledger: a: b\n",
            "ledger: /a\n---\nledger: /b\n",
            "gate:\n  ledger: /a\n",
            "ledgers: /a\n",
            "{ledger: /a}\n",
        ] {
            assert_eq!(named(text), None, "{text:?}");
        }
    }

    /// Every field of the config, compared one by one (`Config` has no
    /// `PartialEq`: a compiled glob has none).
    fn assert_same(a: &Config, b: &Config) {
        assert_eq!(a.path, b.path);
        assert_eq!(a.timezone, b.timezone);
        assert_eq!(a.arms, b.arms);
        for (x, y) in a.arms.iter().zip(&b.arms) {
            for (p, q) in x.branch_caps.iter().zip(&y.branch_caps) {
                for branch in ["fix/a", "feat/x/y", "main", "fix", "release-1"] {
                    assert_eq!(p.pattern.is_match(branch), q.pattern.is_match(branch));
                }
            }
        }
        assert_eq!(a.total, b.total);
        assert_eq!(a.gate, b.gate);
        assert_eq!(a.alerts, b.alerts);
        assert_eq!(a.prices, b.prices);
        for ((_, x), (_, y)) in a.prices.iter().zip(&b.prices) {
            assert_eq!(x.input.to_bits(), y.input.to_bits());
        }
        assert_eq!(a.claude_dirs, b.claude_dirs);
        assert_eq!(a.ledger, b.ledger);
        assert_eq!(a.trunk_branches, b.trunk_branches);
        assert_eq!(a.notices, b.notices);
    }

    /// A file that uses every key the stored form has a field for.
    const EVERY_KEY: &str = "\
spend_json: ~/octorato/spend.json
timezone: America/New_York
ledger: ~/ledgers/team.sqlite
claude_dirs: [~/.claude, /srv/claude]
trunk_branches: [main, release]
gate:
  tools: [Agent, \"mcp__*\", \"Ta?k\"]
  on_error: allow
alerts:
  spike_mad: 3.3
  spike_min_usd: 12.34
  unattributed_pct: 7
  unattributed_min_usd: 0.1
prices:
  claude-opus-9:
    input: 15.1
    output: 75.000001
    cache_write_5m: 18.75
    cache_read: 1.5
    long_context: {above_prompt_tokens: 200000, input: 30.3, output: 112.5}
    fast: 6
    effective_from: 2026-01-02
default:
  grace_pct: 120
  action_on_breach: hard_stop
  alert_at_pct: 70
  branch_caps: {\"fix/*\": 0.5}
total:
  monthly_usd_cap: 5000
  weekly_usd_cap: 1500.25
  action_on_breach: alert
budgets:
  - arm: acme
    monthly_usd_cap: 1000
    daily_usd_cap: 90.999999
    session_usd_cap: 20
    max_usd_per_hour: 7.5
    branch_usd_cap: 3
    action_on_breach: stop
    paths: [~/github/acme, ../acme-web/]
  - arm: beta
    weekly_usd_cap: 300
    grace_pct: 100
    action_on_breach: warn
    path: $HOME/beta
    branch_caps: {\"feat/{x,y}/*\": 1.25, \"*\": 0.75}
";

    #[test]
    fn a_stored_config_is_the_config_that_was_parsed() {
        let path = Path::new("/etc/ob/budgets.yaml");
        let parsed = Config::parse(EVERY_KEY, path, &ctx()).unwrap();
        assert!(parsed.total.is_some() && !parsed.prices.is_empty());
        assert!(parsed.arms.iter().any(|a| a.branch_caps.len() == 2));
        assert!(!parsed.notices.is_empty());
        let stored = encode(&parsed).unwrap();
        let back = decode(&stored, path).unwrap();
        assert_same(&parsed, &back);
        assert_eq!(encode(&back).unwrap(), stored);
        // The example file too.
        let example = include_str!("../../budgets.example.yaml");
        let parsed = Config::parse(example, path, &ctx()).unwrap();
        assert_same(&parsed, &decode(&encode(&parsed).unwrap(), path).unwrap());
    }

    #[test]
    fn the_key_changes_with_every_input() {
        let path = Path::new("/etc/ob/budgets.yaml");
        let base = key(EVERY_KEY, path, &ctx());
        assert_eq!(base, key(EVERY_KEY, path, &ctx()));
        let mut one_byte = EVERY_KEY.to_owned();
        one_byte.push(' ');
        let other_home = PathContext {
            home: Some(PathBuf::from("/home/other")),
            ..ctx()
        };
        let no_home = PathContext {
            home: None,
            ..ctx()
        };
        let other_zone = PathContext {
            local_zone: Some(chrono_tz::UTC),
            ..ctx()
        };
        let others = [
            key(&one_byte, path, &ctx()),
            key(EVERY_KEY, Path::new("/etc/ob/other.yaml"), &ctx()),
            key(EVERY_KEY, path, &other_home),
            key(EVERY_KEY, path, &no_home),
            key(EVERY_KEY, path, &other_zone),
        ];
        for k in others {
            assert_ne!(k, base);
        }
    }

    #[test]
    fn a_form_it_cannot_read_is_no_config() {
        let path = Path::new("/etc/ob/budgets.yaml");
        let parsed = Config::parse(EVERY_KEY, path, &ctx()).unwrap();
        let stored = encode(&parsed).unwrap();
        assert!(decode("", path).is_none());
        assert!(decode("{}", path).is_none());
        assert!(decode(&stored.replace("\"stop\"", "\"halt\""), path).is_none());
        assert!(decode(&stored.replace("\"timezone\"", "\"zone\""), path).is_none());
        let extra = stored.replacen('{', "{\"new_field\":1,", 1);
        assert!(decode(&extra, path).is_none());
    }
}
