//! Money: exact integer arithmetic, never summed as floating point.
//!
//! Costs are accumulated in [`Picos`] (10^-12 dollars) so that per-token
//! rates such as $0.01 per million tokens stay exact, and are rounded once,
//! to [`Micros`] (10^-6 dollars), when a total is shown or compared.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Picodollars: the unit costs are summed in. `i128` cannot overflow for
/// any token count a transcript can hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Picos(pub i128);

impl Picos {
    pub const PER_MICRO: i128 = 1_000_000;

    /// Rounds half away from zero to whole micro-dollars.
    pub fn to_micros(self) -> Micros {
        let half = Self::PER_MICRO / 2;
        let v = if self.0 >= 0 {
            (self.0 + half) / Self::PER_MICRO
        } else {
            (self.0 - half) / Self::PER_MICRO
        };
        Micros(i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN }))
    }
}

impl Add for Picos {
    type Output = Picos;
    fn add(self, o: Picos) -> Picos {
        Picos(self.0 + o.0)
    }
}

impl AddAssign for Picos {
    fn add_assign(&mut self, o: Picos) {
        self.0 += o.0;
    }
}

impl std::iter::Sum for Picos {
    fn sum<I: Iterator<Item = Picos>>(iter: I) -> Picos {
        iter.fold(Picos(0), |a, b| a + b)
    }
}

/// Micro-dollars: the unit every total, cap and decision uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    pub const PER_DOLLAR: i64 = 1_000_000;

    /// Converts a configuration number (already validated as finite and
    /// non-negative) to micro-dollars, rounding to the nearest micro-dollar.
    pub fn from_f64_dollars(d: f64) -> Micros {
        // The common case without formatting (the price table converts
        // hundreds of rates on every run): a value below $1,000,000 whose
        // micro-dollars are within 0.001 of a whole number. There one ULP
        // of `d * 1e6` is below 2^-13, so the decimal below rounds to the
        // same whole number (`fast_path_agrees` checks it).
        if (0.0..1e6).contains(&d) {
            let scaled = d * 1e6;
            let whole = scaled.round();
            if (scaled - whole).abs() < 1e-3 {
                return Micros(whole as i64);
            }
        }
        // Go through the shortest decimal representation so that 0.1 stays
        // exactly 100_000 micro-dollars.
        let s = format!("{d}");
        parse_dollars(&s).map(Micros).unwrap_or_else(|| {
            // Values too large for i64 micro-dollars saturate.
            Micros(if d > 0.0 { i64::MAX } else { 0 })
        })
    }

    /// `part` as a percentage of `self`, with one decimal place of precision.
    pub fn percent_of(part: Micros, whole: Micros) -> Option<f64> {
        if whole.0 <= 0 {
            return None;
        }
        // Integer tenths of a percent, then one division for display.
        let tenths = (part.0 as i128 * 1000) / whole.0 as i128;
        Some(tenths as f64 / 10.0)
    }

    /// `self * pct / 100`, exact to the micro-dollar (rounded down), in
    /// `i128`; a result beyond `i64` saturates (never wraps to a negative
    /// amount). Config validation keeps caps far below that.
    pub fn scale_pct(self, pct: u32) -> Micros {
        let v = (self.0 as i128 * pct as i128) / 100;
        Micros(i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN }))
    }

    pub fn saturating_sub(self, o: Micros) -> Micros {
        Micros(self.0.saturating_sub(o.0))
    }

    /// `$1,234.56` (cents, thousands separators).
    pub fn display_cents(self) -> String {
        let neg = self.0 < 0;
        let abs = (self.0 as i128).abs();
        let cents = (abs + 5_000) / 10_000;
        let dollars = cents / 100;
        let c = cents % 100;
        format!(
            "{}${}.{:02}",
            if neg { "-" } else { "" },
            group_thousands(dollars as u128),
            c
        )
    }

    /// `$1234.56` (cents, no separators), for one-line alerts.
    pub fn dollars_cents(self) -> String {
        self.display_cents().replace(',', "")
    }

    /// `1234.567891` (micro-dollar precision, no separators), for CSV.
    pub fn plain(self) -> String {
        let neg = self.0 < 0;
        let abs = (self.0 as i128).abs();
        format!(
            "{}{}.{:06}",
            if neg { "-" } else { "" },
            abs / Self::PER_DOLLAR as i128,
            abs % Self::PER_DOLLAR as i128
        )
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_cents())
    }
}

impl Add for Micros {
    type Output = Micros;
    fn add(self, o: Micros) -> Micros {
        Micros(self.0.saturating_add(o.0))
    }
}

impl Sub for Micros {
    type Output = Micros;
    fn sub(self, o: Micros) -> Micros {
        Micros(self.0.saturating_sub(o.0))
    }
}

impl AddAssign for Micros {
    fn add_assign(&mut self, o: Micros) {
        self.0 = self.0.saturating_add(o.0);
    }
}

/// Rounds parts of a sum so that the rounded parts add up to the rounded
/// sum (largest remainder): every part gets its whole `unit`s
/// (picodollars per unit), and the units still missing from `total_units`
/// go one each to the parts with the largest remainders (ties: the earlier
/// part).
fn apportion(parts: &[Picos], unit: i128, total_units: i128) -> Vec<i128> {
    let mut shares: Vec<i128> = parts.iter().map(|p| p.0.div_euclid(unit)).collect();
    let mut left = total_units - shares.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (parts[a].0.rem_euclid(unit), parts[b].0.rem_euclid(unit));
        rb.cmp(&ra).then(a.cmp(&b))
    });
    for i in order {
        if left <= 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares
}

/// `parts` in micro-dollars, adding up exactly to their sum rounded once
/// (as the total's `cost_usd` is).
pub fn apportion_micros(parts: &[Picos]) -> Vec<Micros> {
    let total = parts.iter().copied().sum::<Picos>().to_micros();
    apportion(parts, Picos::PER_MICRO, total.0 as i128)
        .into_iter()
        .map(|m| Micros(m as i64))
        .collect()
}

/// `parts` in whole cents (as micro-dollars), adding up exactly to their
/// sum as [`Micros::display_cents`] shows it.
pub fn apportion_cents(parts: &[Picos]) -> Vec<Micros> {
    const CENT: i64 = 10_000;
    let total = parts.iter().copied().sum::<Picos>().to_micros();
    let cents = (total.0 as i128 + CENT as i128 / 2).div_euclid(CENT as i128);
    apportion(parts, Picos::PER_MICRO * CENT as i128, cents)
        .into_iter()
        .map(|c| Micros(c as i64 * CENT))
        .collect()
}

/// `1234567` -> `1,234,567` (non-negative numbers).
pub fn group_thousands(n: impl Into<u128>) -> String {
    let n: u128 = n.into();
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Parses a plain decimal dollar amount ("12", "12.5", "0.000001") into
/// micro-dollars, exactly. More than six decimals are rounded half up.
fn parse_dollars(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int_v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    let round_up = frac_digits.len() > 6 && frac_digits[6] >= 5;
    frac_digits.resize(6, 0);
    let mut frac_v: i128 = 0;
    for d in frac_digits.iter().take(6) {
        frac_v = frac_v * 10 + *d as i128;
    }
    let mut v = int_v.checked_mul(1_000_000)?.checked_add(frac_v)?;
    if round_up {
        v += 1;
    }
    if neg {
        v = -v;
    }
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decimal route `from_f64_dollars` takes when its shortcut does
    /// not apply.
    fn by_decimal(d: f64) -> Micros {
        Micros(parse_dollars(&format!("{d}")).unwrap_or(if d > 0.0 { i64::MAX } else { 0 }))
    }

    #[test]
    fn fast_path_agrees() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut values = vec![
            0.0,
            0.1,
            0.3,
            1.25,
            18.75,
            0.000_000_5,
            0.000_000_499_9,
            0.000_001_5,
            999_999.999_999,
            1e6,
            2e9,
            1e-10,
        ];
        for _ in 0..200_000 {
            let r = next();
            // Decimals with 0 to 9 places, and arbitrary doubles.
            let places = (r % 10) as i32;
            let mantissa = (next() % 10_000_000_000_000) as f64;
            values.push(mantissa / 10f64.powi(places + 3));
            values.push(f64::from_bits(next() % 0x4130_0000_0000_0000));
        }
        for d in values {
            assert_eq!(Micros::from_f64_dollars(d), by_decimal(d), "{d}");
        }
    }

    #[test]
    fn rounds_picos_half_away_from_zero() {
        assert_eq!(Picos(499_999).to_micros(), Micros(0));
        assert_eq!(Picos(500_000).to_micros(), Micros(1));
        assert_eq!(Picos(-500_000).to_micros(), Micros(-1));
        assert_eq!(Picos(3_000_000_000_000).to_micros(), Micros(3_000_000));
    }

    #[test]
    fn displays_cents_with_separators() {
        assert_eq!(Micros(1_123_400_000).to_string(), "$1,123.40");
        assert_eq!(Micros(0).to_string(), "$0.00");
        assert_eq!(Micros(4_999).to_string(), "$0.00");
        assert_eq!(Micros(5_000).to_string(), "$0.01");
        assert_eq!(Micros(1_000_000_000_000).to_string(), "$1,000,000.00");
        assert_eq!(Micros(-2_500_000).to_string(), "-$2.50");
    }

    #[test]
    fn dollars_cents_has_no_separators() {
        assert_eq!(Micros(1_012_304_999).dollars_cents(), "$1012.30");
        assert_eq!(Micros(1_000_000_000_000).dollars_cents(), "$1000000.00");
        assert_eq!(Micros(-2_500_000).dollars_cents(), "-$2.50");
    }

    #[test]
    fn plain_keeps_micro_precision() {
        assert_eq!(Micros(1_234_567_891).plain(), "1234.567891");
        assert_eq!(Micros(9).plain(), "0.000009");
    }

    #[test]
    fn parses_decimal_dollars_exactly() {
        assert_eq!(parse_dollars("0.1"), Some(100_000));
        assert_eq!(parse_dollars("1000"), Some(1_000_000_000));
        assert_eq!(parse_dollars("0.0000015"), Some(2));
        assert_eq!(parse_dollars("abc"), None);
        assert_eq!(Micros::from_f64_dollars(0.1), Micros(100_000));
        assert_eq!(Micros::from_f64_dollars(1e-7), Micros(0));
    }

    #[test]
    fn percent_and_scale_are_integer_based() {
        assert_eq!(
            Micros::percent_of(Micros(1_012_300_000), Micros(1_000_000_000)),
            Some(101.2)
        );
        assert_eq!(Micros::percent_of(Micros(1), Micros(0)), None);
        assert_eq!(Micros(1_000_000_000).scale_pct(110), Micros(1_100_000_000));
    }

    #[test]
    fn apportioned_parts_add_up_to_the_rounded_sum() {
        // Three parts of 0.4 micro-dollars: 0 each on their own, 1 together.
        let p = [Picos(400_000), Picos(400_000), Picos(400_000)];
        assert_eq!(apportion_micros(&p), vec![Micros(1), Micros(0), Micros(0)]);
        // The largest remainder gets the unit, whatever its place.
        let p = [Picos(1_300_000), Picos(2_450_000), Picos(700_000)];
        // 1.3 + 2.45 + 0.7 = 4.45 -> 4: floors 1, 2, 0 and one more for 0.7.
        assert_eq!(apportion_micros(&p), vec![Micros(1), Micros(2), Micros(1)]);
        // Exact parts are left alone.
        let p = [Picos(5_000_000), Picos(7_000_000)];
        assert_eq!(apportion_micros(&p), vec![Micros(5), Micros(7)]);
        // Cents: 0.4 cents three times shows $0.01 in total, on one row.
        let p = [
            Picos(4_000_400_000),
            Picos(4_000_400_000),
            Picos(4_001_400_000),
        ];
        assert_eq!(
            apportion_cents(&p),
            vec![Micros(0), Micros(0), Micros(10_000)]
        );
        assert!(apportion_micros(&[]).is_empty());
    }

    #[test]
    fn scale_pct_does_not_wrap() {
        // $1e12 at 1000 %: 1e19 micro-dollars does not fit in i64; it used
        // to wrap to a negative hard-stop amount.
        let cap = Micros(1_000_000_000_000 * Micros::PER_DOLLAR);
        assert_eq!(cap.scale_pct(1000), Micros(i64::MAX));
        assert_eq!(Micros(i64::MAX).scale_pct(u32::MAX), Micros(i64::MAX));
        // The largest cap config accepts ($1e9) at the largest grace: exact.
        let cap = Micros(1_000_000_000 * Micros::PER_DOLLAR);
        assert_eq!(
            cap.scale_pct(1000),
            Micros(10_000_000_000 * Micros::PER_DOLLAR)
        );
    }
}
