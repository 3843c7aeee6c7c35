//! The one line `octo-budget statusline` prints under Claude Code's prompt:
//! `acme $812.40/$1,000 monthly (81% alert) | session $3.12 | $4.10/h`.

use octo_budget::budget::Tier;
use octo_budget::budget::{CapKind, CapState, Scope};
use octo_budget::money::Micros;

/// What the line shows.
pub struct StatusLine<'a> {
    /// The arm that owns the session's folder.
    pub arm: Option<&'a str>,
    /// The tightest cap (highest tier, then highest percent), if any.
    pub tightest: Option<&'a CapState>,
    /// The session's spend, when the input named a session.
    pub session: Option<Micros>,
    /// The last hour's spend, when the arm has a `max_usd_per_hour`.
    pub burn: Option<Micros>,
}

/// The cap to show: the worst tier, then the largest share of its limit.
pub fn tightest(caps: &[CapState]) -> Option<&CapState> {
    caps.iter().max_by_key(|c| {
        (
            c.tier,
            (c.spent.0 as i128 * 1000) / c.limit.0.max(1) as i128,
        )
    })
}

/// `$1,000` for whole dollars, else `$0.45`.
pub fn cap_money(m: Micros) -> String {
    if m.0 % Micros::PER_DOLLAR == 0 {
        let s = m.display_cents();
        s.trim_end_matches(".00").to_owned()
    } else {
        m.display_cents()
    }
}

fn tier_word(t: Tier) -> &'static str {
    match t {
        Tier::Ok => "",
        Tier::Alert => " alert",
        Tier::Warn => " warn",
        Tier::HardStop => " hard stop",
        Tier::Stop => " halted",
    }
}

/// ANSI colour of a tier (the report table's colours).
fn tier_colour(t: Tier) -> &'static str {
    match t {
        Tier::Ok => "\x1b[32m",
        Tier::Alert => "\x1b[93m",
        Tier::Warn => "\x1b[33m",
        Tier::HardStop | Tier::Stop => "\x1b[1;31m",
    }
}

impl StatusLine<'_> {
    /// The tier the line is coloured by.
    pub fn tier(&self) -> Tier {
        self.tightest.map_or(Tier::Ok, |c| c.tier)
    }

    pub fn render(&self, colour: bool) -> String {
        let name = self.arm.unwrap_or("no arm");
        let head = match self.tightest {
            Some(c) => {
                let whose = match &c.scope {
                    Scope::Total => "team ",
                    Scope::Arm(_) | Scope::Unattributed => "",
                    Scope::Branch { .. } => "branch ",
                };
                let pct = (c.spent.0 as i128 * 100) / c.limit.0.max(1) as i128;
                let kind = match c.kind {
                    CapKind::Hourly => "per hour",
                    k => k.as_str(),
                };
                format!(
                    "{name} {whose}{}/{} {kind} ({pct}%{})",
                    c.spent.display_cents(),
                    cap_money(c.limit),
                    tier_word(c.tier)
                )
            }
            None if self.arm.is_none() => "no arm owns this folder".to_owned(),
            None => format!("{name} (no cap)"),
        };
        let head = if colour {
            format!("{}{head}\x1b[0m", tier_colour(self.tier()))
        } else {
            head
        };
        let mut parts = vec![head];
        if let Some(s) = self.session {
            parts.push(format!("session {}", s.display_cents()));
        }
        if let Some(b) = self.burn {
            parts.push(format!("{}/h", b.display_cents()));
        }
        // One line whatever an arm name holds.
        parts.join(" | ").replace(['\n', '\r'], " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use octo_budget::budget::{Period, PeriodKind};
    use octo_budget::config::{Action, Policy};

    fn cap(kind: CapKind, spent: i64, limit: i64, tier: Tier) -> CapState {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        CapState {
            scope: Scope::Arm("acme".into()),
            kind,
            limit: Micros(limit),
            spent: Micros(spent),
            policy: Policy {
                grace_pct: 110,
                action: Action::Warn,
                alert_at_pct: 80,
            },
            tier,
            period: Period {
                kind: PeriodKind::Month,
                start: t,
                end: t,
            },
        }
    }

    #[test]
    fn the_example_line() {
        let c = cap(CapKind::Monthly, 812_400_000, 1_000_000_000, Tier::Alert);
        let line = StatusLine {
            arm: Some("acme"),
            tightest: Some(&c),
            session: Some(Micros(3_120_000)),
            burn: Some(Micros(4_100_000)),
        };
        assert_eq!(
            line.render(false),
            "acme $812.40/$1,000 monthly (81% alert) | session $3.12 | $4.10/h"
        );
        assert_eq!(
            line.render(true),
            "\x1b[93macme $812.40/$1,000 monthly (81% alert)\x1b[0m | session $3.12 | $4.10/h"
        );
    }

    #[test]
    fn team_caps_and_no_arm() {
        let mut c = cap(CapKind::Weekly, 4_100_000_000, 5_000_000_000, Tier::Alert);
        c.scope = Scope::Total;
        let line = StatusLine {
            arm: Some("acme"),
            tightest: Some(&c),
            session: None,
            burn: None,
        };
        assert_eq!(
            line.render(false),
            "acme team $4,100.00/$5,000 weekly (82% alert)"
        );
        let none = StatusLine {
            arm: None,
            tightest: None,
            session: Some(Micros(10_000)),
            burn: None,
        };
        assert_eq!(
            none.render(true),
            "\x1b[32mno arm owns this folder\x1b[0m | session $0.01"
        );
    }

    #[test]
    fn tightest_is_worst_tier_then_largest_share() {
        let caps = [
            cap(CapKind::Monthly, 90, 100, Tier::Alert),
            cap(CapKind::Daily, 95, 100, Tier::Alert),
            cap(CapKind::Weekly, 50, 100, Tier::Ok),
        ];
        assert_eq!(tightest(&caps).unwrap().kind, CapKind::Daily);
        let caps = [
            cap(CapKind::Monthly, 120, 100, Tier::Warn),
            cap(CapKind::Hourly, 130, 100, Tier::HardStop),
        ];
        assert_eq!(tightest(&caps).unwrap().kind, CapKind::Hourly);
        assert!(tightest(&[]).is_none());
    }

    #[test]
    fn caps_in_whole_dollars_drop_the_cents() {
        assert_eq!(cap_money(Micros(1_000_000_000)), "$1,000");
        assert_eq!(cap_money(Micros(450_000)), "$0.45");
        assert_eq!(cap_money(Micros(0)), "$0");
    }
}
