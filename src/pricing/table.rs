//! The price table: embedded rows plus the user's `prices:` overrides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use serde::Deserialize;

use super::model::normalise;
use crate::money::Micros;

/// The embedded table, compiled into the binary: its text (hashed into
/// the table's identity) and `embedded_spec()`, the same rows as Rust code
/// that build.rs generates from it (no run parses YAML for them).
const EMBEDDED: &str = include_str!("prices.yaml");
include!(concat!(env!("OUT_DIR"), "/embedded_prices.rs"));

/// Rates in picodollars per token, which is the same number as
/// micro-dollars per million tokens ($3/MTok = 3_000_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    pub input: i64,
    pub output: i64,
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
    pub cache_read: i64,
}

impl Rates {
    /// The dearest of each rate across `rows`.
    fn max(&self, o: &Rates) -> Rates {
        Rates {
            input: self.input.max(o.input),
            output: self.output.max(o.output),
            cache_write_5m: self.cache_write_5m.max(o.cache_write_5m),
            cache_write_1h: self.cache_write_1h.max(o.cache_write_1h),
            cache_read: self.cache_read.max(o.cache_read),
        }
    }
}

/// A multiplier held as millionths (1.1 = 1_100_000), so it stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multiplier(pub i64);

impl Multiplier {
    pub const ONE: Multiplier = Multiplier(1_000_000);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongContext {
    pub above_prompt_tokens: u64,
    pub rates: Rates,
}

/// One row of the table: the rates of some models from a date on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    pub ids: Vec<String>,
    pub rates: Rates,
    pub long_context: Option<LongContext>,
    pub fast: Multiplier,
    pub us_geo: Multiplier,
    pub effective_from: NaiveDate,
    pub source: String,
}

/// The rows that apply to one model, newest `effective_from` last.
#[derive(Debug, Clone)]
pub struct ModelPrices {
    pub rows: Vec<PriceRow>,
}

impl ModelPrices {
    /// The newest row not later than `day`, or the oldest row for responses
    /// older than every row.
    pub fn at(&self, day: NaiveDate) -> &PriceRow {
        self.rows
            .iter()
            .rev()
            .find(|r| r.effective_from <= day)
            .unwrap_or(&self.rows[0])
    }
}

/// A row as written in prices.yaml or in budgets.yaml's `prices:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    #[serde(default)]
    pub ids: Vec<String>,
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub long_context: Option<LongContextSpec>,
    #[serde(default)]
    pub fast: Option<f64>,
    #[serde(default)]
    pub us_geo: Option<f64>,
    #[serde(default)]
    pub effective_from: Option<NaiveDate>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextSpec {
    pub above_prompt_tokens: u64,
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub cache_read: Option<f64>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSpec {
    effective_from: NaiveDate,
    web_search_per_1000: f64,
    models: Vec<RowSpec>,
}

/// The long-context thresholds the ledger keeps prompt sizes apart at.
pub const PROMPT_THRESHOLDS: [u64; 2] = [100_000, 200_000];

fn rate(d: f64) -> i64 {
    Micros::from_f64_dollars(d).0
}

/// Rates from input/output and optional cache rates; missing cache rates
/// follow Anthropic's multipliers on the input price (1.25x, 2x, 0.1x).
fn rates_of(input: f64, output: f64, w5: Option<f64>, w1: Option<f64>, r: Option<f64>) -> Rates {
    let i = rate(input);
    Rates {
        input: i,
        output: rate(output),
        cache_write_5m: w5.map(rate).unwrap_or(i * 5 / 4),
        cache_write_1h: w1.map(rate).unwrap_or(i * 2),
        cache_read: r.map(rate).unwrap_or(i / 10),
    }
}

impl RowSpec {
    /// Checks the numbers of a row; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let mut nums = vec![("input", Some(self.input)), ("output", Some(self.output))];
        nums.extend([
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("cache_read", self.cache_read),
            ("fast", self.fast),
            ("us_geo", self.us_geo),
        ]);
        if let Some(lc) = &self.long_context {
            if !PROMPT_THRESHOLDS.contains(&lc.above_prompt_tokens) {
                return Err(format!(
                    "long_context.above_prompt_tokens must be one of {PROMPT_THRESHOLDS:?}, not {}",
                    lc.above_prompt_tokens
                ));
            }
            nums.extend([
                ("long_context.input", Some(lc.input)),
                ("long_context.output", Some(lc.output)),
                ("long_context.cache_write_5m", lc.cache_write_5m),
                ("long_context.cache_write_1h", lc.cache_write_1h),
                ("long_context.cache_read", lc.cache_read),
            ]);
        }
        for (name, v) in nums {
            if let Some(v) = v {
                if !v.is_finite() || !(0.0..=1_000_000.0).contains(&v) {
                    return Err(format!(
                        "{name} must be a non-negative number of dollars, not {v}"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn to_row(
        &self,
        ids: Vec<String>,
        default_from: NaiveDate,
        default_source: &str,
    ) -> PriceRow {
        PriceRow {
            ids,
            rates: rates_of(
                self.input,
                self.output,
                self.cache_write_5m,
                self.cache_write_1h,
                self.cache_read,
            ),
            long_context: self.long_context.as_ref().map(|lc| LongContext {
                above_prompt_tokens: lc.above_prompt_tokens,
                rates: rates_of(
                    lc.input,
                    lc.output,
                    lc.cache_write_5m,
                    lc.cache_write_1h,
                    lc.cache_read,
                ),
            }),
            fast: self
                .fast
                .map(|f| Multiplier(rate(f)))
                .unwrap_or(Multiplier::ONE),
            us_geo: self
                .us_geo
                .map(|f| Multiplier(rate(f)))
                .unwrap_or(Multiplier::ONE),
            effective_from: self.effective_from.unwrap_or(default_from),
            source: self
                .source
                .clone()
                .unwrap_or_else(|| default_source.to_owned()),
        }
    }
}

/// The table a run prices with.
#[derive(Debug)]
pub struct PriceTable {
    pub effective_from: NaiveDate,
    /// Picodollars per web search request.
    pub web_search: i64,
    /// Embedded rows by normalised id.
    by_id: HashMap<String, ModelPrices>,
    /// User overrides by normalised model prefix, longest first.
    overrides: Vec<(String, ModelPrices)>,
    /// The dearest known rates: what an unknown model is priced at.
    dearest: Arc<ModelPrices>,
    /// Each model name's answer, found once (a report prices thousands of
    /// groups of a few models); shared, not copied, on every later ask.
    cache: Mutex<HashMap<String, Option<Arc<ModelPrices>>>>,
    /// A hash of the embedded table and the overrides: spend priced with
    /// another table is never taken from the ledger's cache.
    identity: u64,
}

impl PriceTable {
    /// The embedded table with `overrides` (model prefix -> row) on top.
    pub fn new(overrides: &[(String, RowSpec)]) -> PriceTable {
        let spec = embedded_spec();
        let mut by_id: HashMap<String, ModelPrices> = HashMap::new();
        let mut dearest = Rates::default();
        for row in &spec.models {
            let r = row.to_row(row.ids.clone(), spec.effective_from, "embedded");
            dearest = dearest.max(&r.rates);
            for id in &row.ids {
                by_id
                    .entry(id.clone())
                    .or_insert_with(|| ModelPrices { rows: vec![] })
                    .rows
                    .push(r.clone());
            }
        }
        for prices in by_id.values_mut() {
            prices.rows.sort_by_key(|r| r.effective_from);
        }
        let mut ov: Vec<(String, ModelPrices)> = overrides
            .iter()
            .map(|(prefix, spec_row)| {
                let norm = normalise(prefix);
                let row =
                    spec_row.to_row(vec![norm.clone()], NaiveDate::MIN, "budgets.yaml prices:");
                (norm, ModelPrices { rows: vec![row] })
            })
            .collect();
        ov.sort_by_key(|o| std::cmp::Reverse(o.0.len()));
        let identity = xxhash_rust::xxh3::xxh3_64(format!("{EMBEDDED}\n{ov:?}").as_bytes());
        PriceTable {
            identity,
            effective_from: spec.effective_from,
            // Dollars per 1,000 requests -> picodollars per request.
            web_search: rate(spec.web_search_per_1000) * 1_000_000 / 1000,
            by_id,
            overrides: ov,
            dearest: Arc::new(ModelPrices {
                rows: vec![PriceRow {
                    ids: vec!["(dearest known rates)".into()],
                    rates: dearest,
                    long_context: None,
                    fast: Multiplier::ONE,
                    us_geo: Multiplier::ONE,
                    effective_from: NaiveDate::MIN,
                    source: "unknown model: priced at the dearest known rates".into(),
                }],
            }),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Identifies the rates this table prices with (the embedded table and
    /// the overrides).
    pub fn identity(&self) -> u64 {
        self.identity
    }

    /// The prices of a model as written in a transcript, or `None` when the
    /// table does not know it.
    pub fn lookup(&self, raw_model: &str) -> Option<Arc<ModelPrices>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache.get(raw_model) {
            return hit.clone();
        }
        let found = self.find(&normalise(raw_model)).map(Arc::new);
        cache.insert(raw_model.to_owned(), found.clone());
        found
    }

    /// The prices a model is charged at in budgets: its own, or the dearest
    /// known rates when the table does not know it.
    pub fn for_budget(&self, raw_model: &str) -> (Arc<ModelPrices>, bool) {
        match self.lookup(raw_model) {
            Some(p) => (p, true),
            None => (Arc::clone(&self.dearest), false),
        }
    }

    fn find(&self, norm: &str) -> Option<ModelPrices> {
        for (key, prices) in &self.overrides {
            if override_matches(key, norm) {
                return Some(prices.clone());
            }
        }
        if let Some(p) = self.by_id.get(norm) {
            return Some(p.clone());
        }
        // "claude-sonnet-4-5-thinking" is Sonnet 4.5; "claude-opus-4-9" is
        // not Opus 4: a suffix that starts with a digit is another version.
        let mut best: Option<(&String, &ModelPrices)> = None;
        for (id, p) in &self.by_id {
            if let Some(rest) = norm.strip_prefix(id.as_str()) {
                let ok = rest.starts_with('-')
                    && rest[1..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic());
                if ok && best.is_none_or(|(b, _)| id.len() > b.len()) {
                    best = Some((id, p));
                }
            }
        }
        best.map(|(_, p)| p.clone())
    }
}

/// Whether a `prices:` key covers a (normalised) model id, on family
/// boundaries: the id itself; a variant of it (`-` then a letter:
/// `claude-sonnet-4-5` covers `claude-sonnet-4-5-thinking`); and, for a
/// key that does not end in a version number (`claude-opus`, `claude`),
/// every id below it at a `-`. A key that ends in a version covers no other
/// version: `claude-opus-4` is not `claude-opus-4-1` or `claude-opus-4-6`.
fn override_matches(key: &str, id: &str) -> bool {
    let Some(rest) = id.strip_prefix(key) else {
        return false;
    };
    let Some(after) = rest.strip_prefix('-') else {
        return rest.is_empty();
    };
    let ends_in_version = key.chars().last().is_some_and(|c| c.is_ascii_digit());
    !ends_in_version
        || after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// build.rs's code builds exactly the rows that parsing prices.yaml
    /// gives (every field, f64s to the bit), and every row is valid.
    #[test]
    fn generated_rows_equal_the_yaml() {
        let parsed: TableSpec = serde_yaml_ng::from_str(EMBEDDED).unwrap();
        let generated = embedded_spec();
        assert_eq!(generated, parsed);
        assert!(!generated.models.is_empty());
        for row in &generated.models {
            row.validate().unwrap();
            assert!(!row.ids.is_empty() && row.source.is_some() && row.effective_from.is_some());
        }
    }

    #[test]
    fn embedded_table_loads_and_covers_prices_md() {
        let t = PriceTable::new(&[]);
        for (model, input, output, w5, w1, read) in [
            ("claude-opus-4-1-20250805", 15.0, 75.0, 18.75, 30.0, 1.5),
            ("claude-opus-4-6", 5.0, 25.0, 6.25, 10.0, 0.5),
            ("claude-opus-5-5", 4.0, 20.0, 5.0, 8.0, 0.2),
            ("claude-sonnet-4-5-20250929", 3.0, 15.0, 3.75, 6.0, 0.3),
            ("claude-3-7-sonnet-20250219", 3.0, 15.0, 3.75, 6.0, 0.3),
            ("claude-sonnet-5", 2.0, 10.0, 2.5, 4.0, 0.2),
            ("claude-haiku-4-5-20251001", 1.0, 5.0, 1.25, 2.0, 0.1),
            ("claude-3-5-haiku-20241022", 0.8, 4.0, 1.0, 1.6, 0.08),
            ("claude-3-haiku-20240307", 0.25, 1.25, 0.3, 0.5, 0.03),
            ("claude-3-opus-20240229", 15.0, 75.0, 18.75, 30.0, 1.5),
            ("claude-haiku-5-5", 0.1, 0.5, 0.125, 0.2, 0.01),
            ("claude-mythos-5", 10.0, 50.0, 12.5, 20.0, 1.0),
            ("claude-fable-5-1", 10.0, 50.0, 12.5, 20.0, 0.25),
            ("claude-fable-5-2", 8.0, 40.0, 10.0, 16.0, 0.2),
        ] {
            let p = t.lookup(model).unwrap_or_else(|| panic!("{model} missing"));
            let r = p.at(day("2026-11-01")).rates;
            let want = rates_of(input, output, Some(w5), Some(w1), Some(read));
            assert_eq!(r, want, "{model}");
        }
    }

    #[test]
    fn rows_change_on_their_effective_date() {
        let t = PriceTable::new(&[]);
        let p = t.lookup("claude-sonnet-5-5").unwrap();
        assert_eq!(p.at(day("2026-10-06")).rates.cache_read, 200_000);
        assert_eq!(p.at(day("2026-10-07")).rates.cache_read, 100_000);
        // Older than every row: the oldest row applies.
        assert_eq!(p.at(day("2020-01-01")).rates.cache_read, 200_000);
    }

    #[test]
    fn unknown_models_are_not_guessed() {
        let t = PriceTable::new(&[]);
        assert!(t.lookup("claude-opus-4-9").is_none());
        assert!(t.lookup("gpt-5").is_none());
        assert!(t.lookup("claude-sonnet-4-5-thinking").is_some());
        let (p, known) = t.for_budget("gpt-5");
        assert!(!known);
        assert_eq!(p.rows[0].rates.output, 75_000_000);
    }

    #[test]
    fn overrides_win_by_longest_prefix() {
        let spec: RowSpec = serde_yaml_ng::from_str("input: 1\noutput: 2").unwrap();
        let t = PriceTable::new(&[("claude-opus".into(), spec)]);
        let r = t
            .lookup("claude-opus-4-6")
            .unwrap()
            .at(day("2026-11-01"))
            .rates;
        assert_eq!(
            (r.input, r.output, r.cache_write_5m, r.cache_read),
            (1_000_000, 2_000_000, 1_250_000, 100_000)
        );
    }

    #[test]
    fn overrides_match_on_family_boundaries() {
        let spec: RowSpec = serde_yaml_ng::from_str("input: 1\noutput: 2").unwrap();
        let t = PriceTable::new(&[("claude-opus-4".into(), spec)]);
        let input = |m: &str| t.lookup(m).map(|p| p.at(day("2026-11-01")).rates.input);
        assert_eq!(input("claude-opus-4"), Some(1_000_000));
        assert_eq!(input("claude-opus-4-20250514"), Some(1_000_000));
        assert_eq!(input("claude-opus-4-thinking"), Some(1_000_000));
        // Other versions keep the embedded rates.
        assert_eq!(input("claude-opus-4-1-20250805"), Some(15_000_000));
        assert_eq!(input("claude-opus-4-6"), Some(5_000_000));
        assert!(!override_matches("claude-opus-4", "claude-opus-45"));
        assert!(override_matches("claude", "claude-opus-4-6"));
        assert!(!override_matches("claude-3-5", "claude-3-5-1"));
        assert!(override_matches("claude-3-5", "claude-3-5-sonnet"));
    }

    #[test]
    fn bad_long_context_threshold_is_rejected() {
        let spec: RowSpec = serde_yaml_ng::from_str(
            "input: 1\noutput: 2\nlong_context: {above_prompt_tokens: 150000, input: 2, output: 4}",
        )
        .unwrap();
        assert!(spec.validate().unwrap_err().contains("above_prompt_tokens"));
    }
}
