//! JSON output. The shapes here are a contract (README, "JSON output").

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use crate::budget::PeriodKind;
use crate::commands::report::{Report, Row};
use crate::money::Micros;
use crate::spend::Tally;

/// Dollars as a JSON number with micro-dollar precision.
pub fn usd(m: Micros) -> Value {
    // Printed from the exact decimal so that no binary rounding shows.
    serde_json::from_str(&m.plain()).unwrap_or(Value::Null)
}

pub fn tokens(t: &Tally) -> Value {
    let u = &t.usage;
    json!({
        "input": u.input,
        "output": u.output,
        "cache_write_5m": u.cache_write_5m,
        "cache_write_1h": u.cache_write_1h,
        "cache_read": u.cache_read,
    })
}

fn tally_fields(t: &Tally) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("cost_usd".into(), usd(t.spent()));
    m.insert("messages".into(), json!(t.messages));
    m.insert("sessions".into(), json!(t.sessions.len()));
    m.insert("tokens".into(), tokens(t));
    m.insert("web_search_requests".into(), json!(t.usage.web_search));
    // The part of the above from requests Claude Code counted (cost-state)
    // but never wrote as responses.
    let u = &t.unwritten;
    m.insert(
        "unwritten".into(),
        json!({
            "cost_usd": usd(t.unwritten_cost.to_micros()),
            "tokens": {
                "input": u.input,
                "output": u.output,
                "cache_write_5m": u.cache_write_5m,
                "cache_write_1h": u.cache_write_1h,
                "cache_read": u.cache_read,
            },
            "web_search_requests": u.web_search,
        }),
    );
    m
}

fn arm_row(r: &Row) -> Value {
    let mut m = Map::new();
    m.insert("arm".into(), json!(r.label));
    m.extend(tally_fields(&r.tally));
    m.insert("cap_usd".into(), r.cap.map(usd).unwrap_or(Value::Null));
    m.insert(
        "spent_pct".into(),
        r.spent_pct().map(|p| json!(p)).unwrap_or(Value::Null),
    );
    m.insert(
        "tier".into(),
        r.tier.map(|t| json!(t.as_str())).unwrap_or(Value::Null),
    );
    Value::Object(m)
}

pub fn report(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let tz = r.timezone;
    let period = match r.period.kind {
        PeriodKind::All => json!({"kind": "all", "start": null, "end": null}),
        kind => json!({
            "kind": kind.as_str(),
            "start": r.period.start.with_timezone(&tz).to_rfc3339(),
            "end": r.period.end.with_timezone(&tz).to_rfc3339(),
        }),
    };
    let mut doc = Map::new();
    doc.insert("period".into(), period);
    doc.insert("timezone".into(), json!(tz.name()));
    doc.insert(
        "arms".into(),
        Value::Array(r.arms.iter().map(arm_row).collect()),
    );
    doc.insert(
        "unattributed".into(),
        r.unattributed
            .as_ref()
            .map(|u| Value::Object(tally_fields(&u.tally)))
            .unwrap_or(Value::Null),
    );
    doc.insert("totals".into(), Value::Object(tally_fields(&r.total.tally)));
    if let Some((by, rows)) = &r.breakdown {
        // Rows add up to `totals.cost_usd` exactly (largest remainder).
        let shown = r.breakdown_micros();
        let rows: Vec<Value> = rows
            .iter()
            .zip(shown)
            .map(|(row, spent)| {
                let mut m = Map::new();
                m.insert("key".into(), json!(row.label));
                m.extend(tally_fields(&row.tally));
                m.insert("cost_usd".into(), usd(spent));
                Value::Object(m)
            })
            .collect();
        doc.insert(
            "breakdown".into(),
            json!({"by": format!("{by:?}").to_lowercase(), "rows": rows}),
        );
    }
    doc.insert(
        "unpriced_models".into(),
        Value::Array(
            r.unpriced
                .iter()
                .map(|(model, t)| {
                    json!({"model": model, "messages": t.messages, "tokens": tokens(t), "priced_as_usd": usd(t.spent())})
                })
                .collect(),
        ),
    );
    doc.insert("skipped_lines".into(), json!(r.skipped_lines));
    doc.insert("unreadable_files".into(), json!(r.unreadable.len()));
    doc.insert(
        "prices".into(),
        json!({"effective_from": r.prices_effective_from.to_string()}),
    );
    serde_json::to_writer_pretty(&mut *out, &Value::Object(doc))?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_is_exact_to_the_micro_dollar() {
        assert_eq!(usd(Micros(1_123_400_000)).to_string(), "1123.4");
        assert_eq!(usd(Micros(27_856)).to_string(), "0.027856");
        assert_eq!(usd(Micros(0)).to_string(), "0.0");
    }
}
