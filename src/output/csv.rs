//! CSV output of `report`: one row per arm (or breakdown key), then
//! unattributed and total.

use std::io::{self, Write};

use octo_budget::report::{By, Report};

pub fn report(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let first = match &r.breakdown {
        // `kind` is the second column's name (the kind of row).
        Some((By::Kind, _)) => "request_kind".into(),
        Some((by, _)) => by.as_str().to_owned(),
        None => "arm".into(),
    };
    w.write_record([
        first.as_str(),
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
        "web_search_requests",
    ])?;
    for (row, spent) in r.printed_rows(r.breakdown_micros()) {
        let u = &row.tally.usage;
        let kind = row.kind.as_str();
        w.write_record([
            row.label.clone(),
            kind.into(),
            spent.plain(),
            row.cap.map(|c| c.plain()).unwrap_or_default(),
            row.spent_pct()
                .map(|p| format!("{p:.1}"))
                .unwrap_or_default(),
            row.tier.map(|t| t.as_str().to_owned()).unwrap_or_default(),
            row.tally.sessions.len().to_string(),
            row.tally.messages.to_string(),
            u.input.to_string(),
            u.output.to_string(),
            u.cache_write_5m.to_string(),
            u.cache_write_1h.to_string(),
            u.cache_read.to_string(),
            u.web_search.to_string(),
        ])?;
    }
    w.flush()
}
