//! The cost of tokens, exactly, in picodollars.
//!
//! ```text
//! rates  = the model's row for the day (long-context rates above its threshold)
//! cost   = input*I + output*O + write5m*W5 + write1h*W1 + read*R
//! cost  *= fast multiplier (speed == fast) * us multiplier (inference_geo == us)
//! cost  += web_search_requests * $0.01
//! ```
//! Cost is linear in the tokens for a fixed (row, prompt class, flags), so
//! the sum of many responses' tokens costs exactly the sum of their costs.

use super::table::{Multiplier, PriceRow, PROMPT_THRESHOLDS};
use crate::money::Picos;
use crate::transcript::Usage;

/// Which side of each long-context threshold a request's prompt was on.
/// The ledger keeps requests of different classes apart so a long-context
/// surcharge can be applied to whole requests after the fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptClass(pub u8);

impl PromptClass {
    /// 0: prompt <= 100k, 1: <= 200k, 2: above 200k tokens.
    pub fn of(prompt_tokens: u64) -> PromptClass {
        PromptClass(
            PROMPT_THRESHOLDS
                .iter()
                .filter(|t| prompt_tokens > **t)
                .count() as u8,
        )
    }

    /// True when every prompt of this class is above `threshold`.
    pub fn above(self, threshold: u64) -> bool {
        PROMPT_THRESHOLDS
            .iter()
            .position(|t| *t == threshold)
            .is_some_and(|i| self.0 as usize > i)
    }
}

/// The cost of `usage` (one response, or the sum of many of one class and
/// with the same flags) at `row`.
pub fn cost(
    row: &PriceRow,
    usage: &Usage,
    class: PromptClass,
    fast: bool,
    us_geo: bool,
    web_search: i64,
) -> Picos {
    let rates = match &row.long_context {
        Some(lc) if class.above(lc.above_prompt_tokens) => lc.rates,
        _ => row.rates,
    };
    let t = |n: u64, r: i64| n as i128 * r as i128;
    let mut p = t(usage.input, rates.input)
        + t(usage.output, rates.output)
        + t(usage.cache_write_5m, rates.cache_write_5m)
        + t(usage.cache_write_1h, rates.cache_write_1h)
        + t(usage.cache_read, rates.cache_read);
    let scale = |p: i128, m: Multiplier| p * m.0 as i128 / Multiplier::ONE.0 as i128;
    if fast {
        p = scale(p, row.fast);
    }
    if us_geo {
        p = scale(p, row.us_geo);
    }
    Picos(p + usage.web_search as i128 * web_search as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;
    use chrono::NaiveDate;

    fn priced(model: &str, u: Usage, fast: bool, geo: bool) -> i64 {
        let t = PriceTable::new(&[]);
        let row = t
            .lookup(model)
            .unwrap()
            .at(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())
            .clone();
        cost(
            &row,
            &u,
            PromptClass::of(u.prompt_tokens()),
            fast,
            geo,
            t.web_search,
        )
        .to_micros()
        .0
    }

    fn u(input: u64, output: u64, w5: u64, w1: u64, read: u64) -> Usage {
        Usage {
            input,
            output,
            cache_write_5m: w5,
            cache_write_1h: w1,
            cache_read: read,
            web_search: 0,
        }
    }

    #[test]
    fn classes_split_at_the_thresholds() {
        assert_eq!(PromptClass::of(100_000), PromptClass(0));
        assert_eq!(PromptClass::of(100_001), PromptClass(1));
        assert_eq!(PromptClass::of(200_000), PromptClass(1));
        assert_eq!(PromptClass::of(200_001), PromptClass(2));
        assert!(PromptClass(2).above(200_000) && !PromptClass(1).above(200_000));
        assert!(PromptClass(1).above(100_000) && !PromptClass(0).above(100_000));
    }

    #[test]
    fn sonnet_4_5_under_and_over_200k() {
        // 3*$3 + 2849*$6 + 9493*$0.30 + 527*$15 per MTok
        // = 9 + 17094 + 2847.9 + 7905 = 27855.9 micro-dollars.
        assert_eq!(
            priced("claude-sonnet-4-5", u(3, 527, 0, 2849, 9493), false, false),
            27_856
        );
        // 150k read + 50_001 input = 200_001 prompt: every token at long rates.
        // 50_001*$6 + 150_000*$0.60 + 1000*$22.50 = 300006 + 90000 + 22500.
        assert_eq!(
            priced(
                "claude-sonnet-4-5",
                u(50_001, 1000, 0, 0, 150_000),
                false,
                false
            ),
            412_506
        );
        // Sonnet 4.6 has no surcharge: 50_001*$3 + 150_000*$0.3 + 1000*$15.
        assert_eq!(
            priced(
                "claude-sonnet-4-6",
                u(50_001, 1000, 0, 0, 150_000),
                false,
                false
            ),
            210_003
        );
    }

    #[test]
    fn fast_mode_and_us_geo_multiply_the_request() {
        // opus-4-6: 1000*$5 + 100*$25 = 7500 micro-dollars; fast x6 = 45000.
        assert_eq!(
            priced("claude-opus-4-6", u(1000, 100, 0, 0, 0), true, false),
            45_000
        );
        // US-only x1.1 on top: 49500.
        assert_eq!(
            priced("claude-opus-4-6", u(1000, 100, 0, 0, 0), true, true),
            49_500
        );
        // opus-4-5 has no fast multiplier in the table: 7500.
        assert_eq!(
            priced("claude-opus-4-5", u(1000, 100, 0, 0, 0), true, true),
            7_500
        );
    }

    #[test]
    fn haiku_5_5_tier_by_prompt_size() {
        // <= 100k: 100_000*$0.10 = 10000; > 100k: 100_001*$0.50 = 50000.5
        assert_eq!(
            priced("claude-haiku-5-5", u(100_000, 0, 0, 0, 0), false, false),
            10_000
        );
        assert_eq!(
            priced("claude-haiku-5-5", u(100_001, 0, 0, 0, 0), false, false),
            50_001
        );
    }

    #[test]
    fn web_search_is_a_cent_a_request_on_top() {
        let mut x = u(0, 0, 0, 0, 0);
        x.web_search = 3;
        assert_eq!(priced("claude-sonnet-4-5", x, true, false), 30_000);
    }
}
