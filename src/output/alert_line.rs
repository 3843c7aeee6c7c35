//! `alerts` lines: one per event, as text or as one JSON object. Never
//! anything from a transcript: names, money, dates and levels only.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use octo_budget::alerts::Event;
use serde::Serialize;

use crate::output::json::Usd;

/// `--now` in the config's zone, to the second.
pub fn timestamp(now: DateTime<Utc>, tz: Tz) -> String {
    now.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2026-11-20T10:00:00-05:00 WARN acme monthly spent=$1012.30
/// cap=$1000.00 pct=101.2 forecast=$1650.00 resets=2026-12-01`.
pub fn text(ts: &str, e: &Event) -> String {
    let mut s = format!(
        "{ts} {} {} {} spent={}",
        e.level.as_str(),
        e.scope.name(),
        e.period,
        e.spent.dollars_cents()
    );
    if let Some(c) = e.cap {
        s.push_str(&format!(" cap={}", c.dollars_cents()));
    }
    if let Some(t) = e.total {
        s.push_str(&format!(" total={}", t.dollars_cents()));
    }
    if let Some(p) = e.pct() {
        s.push_str(&format!(" pct={p:.1}"));
    }
    if let Some(f) = e.forecast {
        s.push_str(&format!(" forecast={}", f.dollars_cents()));
    }
    if let Some(p) = e.projects {
        s.push_str(&format!(" passes={}", p.as_str()));
    }
    if let Some(sp) = &e.spike {
        s.push_str(&format!(
            " median={} mad={} threshold={}",
            sp.baseline.median.dollars_cents(),
            sp.baseline.mad.dollars_cents(),
            sp.threshold.dollars_cents()
        ));
    }
    s.push_str(&format!(" resets={}", resets(e)));
    s
}

/// The date a cap resets; `never` for a branch cap.
fn resets(e: &Event) -> String {
    match e.scope.branch() {
        Some(_) => "never".into(),
        None => e.resets.to_string(),
    }
}

/// The same fields as one JSON object (absent ones are null): `alerts
/// --json`.
#[derive(Debug, Serialize)]
pub struct AlertDoc<'a> {
    pub ts: &'a str,
    pub level: &'static str,
    pub scope: &'static str,
    pub name: &'a str,
    pub branch: Option<&'a str>,
    pub period: &'static str,
    pub period_start: &'a str,
    pub resets: String,
    pub spent_usd: Usd,
    pub cap_usd: Option<Usd>,
    pub total_usd: Option<Usd>,
    pub pct: Option<f64>,
    pub forecast_usd: Option<Usd>,
    pub passes: Option<&'static str>,
    pub action: Option<&'static str>,
    pub median_usd: Option<Usd>,
    pub mad_usd: Option<Usd>,
    pub threshold_usd: Option<Usd>,
}

pub fn doc<'a>(ts: &'a str, e: &'a Event) -> AlertDoc<'a> {
    AlertDoc {
        ts,
        level: e.level.as_str(),
        scope: e.scope.kind(),
        name: e.scope.name(),
        branch: e.scope.branch(),
        period: e.period,
        period_start: &e.period_start,
        resets: resets(e),
        spent_usd: Usd(e.spent),
        cap_usd: e.cap.map(Usd),
        total_usd: e.total.map(Usd),
        pct: e.pct(),
        forecast_usd: e.forecast.map(Usd),
        passes: e.projects.map(|p| p.as_str()),
        action: e.action.map(|a| a.as_str()),
        median_usd: e.spike.map(|s| Usd(s.baseline.median)),
        mad_usd: e.spike.map(|s| Usd(s.baseline.mad)),
        threshold_usd: e.spike.map(|s| Usd(s.threshold)),
    }
}

/// [`doc`] as one line of JSON.
pub fn json(ts: &str, e: &Event) -> String {
    serde_json::to_string(&doc(ts, e)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use octo_budget::alerts::{Level, Scope};
    use octo_budget::config::Action;
    use octo_budget::money::Micros;

    #[test]
    fn text_line_matches_the_documented_shape() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-20T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ts = timestamp(now, tz);
        let e = Event {
            level: Level::Warn,
            scope: Scope::Arm("acme".into()),
            period: "monthly",
            period_start: "2026-11-01T00:00:00-04:00".into(),
            resets: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            spent: Micros(1_012_300_000),
            cap: Some(Micros(1_000_000_000)),
            action: Some(Action::HardStop),
            forecast: Some(Micros(1_650_000_000)),
            projects: None,
            spike: None,
            total: None,
        };
        assert_eq!(
            text(&ts, &e),
            "2026-11-20T10:00:00-05:00 WARN acme monthly spent=$1012.30 cap=$1000.00 pct=101.2 forecast=$1650.00 resets=2026-12-01"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&ts, &e)).unwrap();
        assert_eq!(j["spent_usd"].to_string(), "1012.3");
        assert_eq!(j["pct"].as_f64(), Some(101.2));
        assert_eq!(j["action"], "hard_stop");
        assert!(j["median_usd"].is_null());
    }
}
