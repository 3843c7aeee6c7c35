//! The terminal table of `report`.

use std::io::{self, Write};

use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use octo_budget::budget::{PeriodKind, Tier};
use octo_budget::money::Micros;
use octo_budget::report::{Report, Row, RowKind};

use super::thousands;

pub fn report(out: &mut impl Write, r: &Report, color: bool) -> io::Result<()> {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if !color {
        t.force_no_tty();
    } else {
        t.enforce_styling();
    }
    let first = match &r.breakdown {
        Some((by, _)) => by.as_str().to_owned(),
        None => "arm".into(),
    };
    t.set_header(
        [
            first.as_str(),
            "spent",
            "cap",
            "%",
            "tier",
            "sessions",
            "responses",
            "input",
            "output",
            "cache writes",
            "cache reads",
        ]
        .into_iter()
        .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
    );
    for (row, spent) in r.printed_rows(r.breakdown_cents()) {
        t.add_row(cells(row, spent, color));
    }
    for i in 1..11 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(if i == 4 {
                CellAlignment::Left
            } else {
                CellAlignment::Right
            });
        }
    }
    writeln!(out, "{}", period_line(r))?;
    writeln!(out, "{t}")?;
    for (model, tally) in &r.unpriced {
        writeln!(
            out,
            "unpriced model {model}: {} response{}, {} tokens, priced at the dearest known rates ({})",
            tally.messages,
            if tally.messages == 1 { "" } else { "s" },
            thousands(tally.usage.input + tally.usage.output + tally.usage.cache_write_5m + tally.usage.cache_write_1h + tally.usage.cache_read),
            tally.spent()
        )?;
    }
    if r.skipped_lines > 0 {
        writeln!(
            out,
            "skipped lines: {} (malformed transcript lines, not counted)",
            thousands(r.skipped_lines)
        )?;
    }
    if let Some(first) = r.unreadable.first() {
        writeln!(
            out,
            "unreadable: {} transcript file{} or folder{} could not be read, their spend is missing (first: {}: {})",
            thousands(r.unreadable.len() as u64),
            if r.unreadable.len() == 1 { "" } else { "s" },
            if r.unreadable.len() == 1 { "" } else { "s" },
            first.path.display(),
            first.reason
        )?;
    }
    if r.total.tally.unwritten_cost.0 != 0 {
        writeln!(
            out,
            "unwritten requests: {} of the total (counted by Claude Code, never written as responses; --by kind)",
            r.total.tally.unwritten_cost.to_micros()
        )?;
    }
    writeln!(
        out,
        "prices: list prices as of {}; spend is an estimate (see README)",
        r.prices_effective_from
    )?;
    Ok(())
}

fn period_line(r: &Report) -> String {
    let tz = r.timezone;
    match r.period.kind {
        PeriodKind::All => format!("period: all time (time zone {tz})"),
        kind => format!(
            "period: {} {} to {} (time zone {tz})",
            kind.as_str(),
            r.period.start.with_timezone(&tz).format("%Y-%m-%d"),
            (r.period.end - chrono::Duration::milliseconds(1))
                .with_timezone(&tz)
                .format("%Y-%m-%d"),
        ),
    }
}

fn cells(row: &Row, spent: Micros, color: bool) -> Vec<Cell> {
    let u = &row.tally.usage;
    let mut name = Cell::new(&row.label);
    if row.kind == RowKind::Total {
        name = name.add_attribute(Attribute::Bold);
    }
    let tier = match row.tier {
        Some(t) => {
            let c = Cell::new(t.as_str());
            if color {
                c.fg(match t {
                    Tier::Ok => Color::Green,
                    Tier::Alert => Color::Yellow,
                    Tier::Warn => Color::DarkYellow,
                    Tier::HardStop | Tier::Stop => Color::Red,
                })
            } else {
                c
            }
        }
        None => Cell::new(""),
    };
    vec![
        name,
        Cell::new(spent.to_string()),
        Cell::new(row.cap.map(|c| c.to_string()).unwrap_or_default()),
        Cell::new(
            row.spent_pct()
                .map(|p| format!("{p:.1}"))
                .unwrap_or_default(),
        ),
        tier,
        Cell::new(thousands(row.tally.sessions.len() as u64)),
        Cell::new(thousands(row.tally.messages.max(0) as u64)),
        Cell::new(thousands(u.input)),
        Cell::new(thousands(u.output)),
        Cell::new(thousands(u.cache_write_5m + u.cache_write_1h)),
        Cell::new(thousands(u.cache_read)),
    ]
}
