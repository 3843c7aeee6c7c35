//! `octo-budget ingest`: bring the ledger up to date (cron, warm-up).

use super::{print_notices, Context};
use crate::cli::IngestArgs;
use crate::error::Result;
use crate::exit;

pub fn run(ctx: &Context, args: &IngestArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let mut ledger = ctx.open_ledger(&loaded.config, std::time::Duration::from_secs(60))?;
    let started = std::time::Instant::now();
    let s = ctx.ingest_all(&loaded, &mut ledger, !args.quiet)?;
    if !args.quiet {
        for u in &s.unreadable {
            eprintln!(
                "octo-budget: cannot read {}: {}",
                u.path.display(),
                u.reason
            );
        }
        println!(
            "ingested {} of {} transcript files ({} bytes, {} responses, {} malformed lines skipped, {} unreadable) in {:.2}s into {}",
            s.files_read,
            s.files_seen,
            s.bytes_read,
            s.responses,
            s.skipped_lines,
            s.unreadable.len(),
            started.elapsed().as_secs_f64(),
            ledger.path().display()
        );
    }
    Ok(exit::OK)
}
