//! `octo-budget init`: writes (or prints) the budgets.yaml that
//! `octo_budget::proposal` proposes from the ledger, after checking that
//! it loads. It never overwrites a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Duration;
use chrono_tz::Tz;
use octo_budget::attribution::Attributor;
use octo_budget::config::Config;
use octo_budget::money::Picos;
use octo_budget::proposal::{propose, render, DEFAULT_DAYS};

use super::{absolute, Context, Loaded};
use crate::cli::InitArgs;
use crate::error::{Error, IoContext as _, Result};
use crate::exit;

pub fn run(ctx: &Context, args: &InitArgs) -> Result<u8> {
    let zone = match &args.timezone {
        Some(z) => z.parse::<Tz>().map_err(|_| {
            Error::Usage(format!(
                "--timezone: {z:?} is not an IANA time zone (e.g. Europe/Paris)"
            ))
        })?,
        None => ctx.local_zone().unwrap_or(Tz::UTC),
    };
    let target = target_path(ctx)?;
    if !args.print && target.symlink_metadata().is_ok() {
        eprintln!(
            "octo-budget: {} already exists; init never overwrites it (move it away, or run `octo-budget init --print` to see a proposal)",
            target.display()
        );
        return Ok(exit::CONFIG);
    }
    let today = ctx.now.with_timezone(&zone).date_naive();
    let since = args
        .since
        .unwrap_or_else(|| today - Duration::days(DEFAULT_DAYS));
    if since > today {
        return Err(Error::Usage(format!(
            "--since {since} is after today ({today})"
        )));
    }
    // The ledger with no config: no arms, the default transcript folders.
    let empty = Config::unconfigured(&target, &ctx.path_context());
    let loaded = Loaded::with_attributor(empty, Attributor::new(&[]));
    let mut ledger = ctx.open_ledger(&loaded.config, std::time::Duration::from_secs(60))?;
    ctx.ingest_all(&loaded, &mut ledger, true)?;

    let home = ctx
        .env
        .home
        .as_ref()
        .map(|h| h.to_string_lossy().into_owned());
    let mut proposal = propose(
        &ledger,
        loaded.prices(),
        ctx.now,
        zone,
        since,
        home.as_deref(),
    )?;
    proposal.ledger = ctx.global.ledger.as_ref().map(|l| {
        match l.to_str().filter(|s| octo_budget::ledger::team::is_uri(s)) {
            // A team ledger's URI as given (it holds no password).
            Some(uri) => PathBuf::from(uri.trim()),
            None => absolute(l, ctx),
        }
    });
    proposal.claude_dirs = ctx
        .global
        .claude_dirs
        .iter()
        .map(|d| absolute(d, ctx))
        .collect();
    let text = render(&proposal);
    // The proposal must load as it is, with the paths as recorded. One
    // without arms lists nothing to enforce, which no command accepts
    // (README, "Configuration"): it is a template to fill in, and said so.
    let check = if proposal.arms.is_empty() {
        eprintln!(
            "octo-budget: note: no repository spent since {since}: the file lists no arm, and octo-budget refuses to run (check refuses every call) until you add one or a `total:` cap"
        );
        None
    } else {
        Some(
            Config::parse(&text, &target, &ctx.path_context()).map_err(|e| {
                Error::Internal(format!("the proposed budgets.yaml does not load ({e})"))
            })?,
        )
    };
    for (a, loaded) in proposal.arms.iter().zip(check.iter().flat_map(|c| &c.arms)) {
        for p in a.paths.iter().filter(|p| !loaded.paths.contains(p)) {
            eprintln!(
                "octo-budget: note: the path {p:?} of arm {:?} cannot be written exactly in budgets.yaml (it begins or ends with white space); its spend stays unattributed",
                a.name
            );
        }
    }
    if args.print {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(exit::OK);
    }
    match write_new(&target, text.as_bytes())? {
        false => {
            eprintln!(
                "octo-budget: {} already exists; init never overwrites it",
                target.display()
            );
            Ok(exit::CONFIG)
        }
        true => {
            println!(
                "wrote {} with {} arm{} (spend since {since}: {} in arms, {} unattributed); review the caps, then run: octo-budget hook install --statusline",
                target.display(),
                proposal.arms.len(),
                if proposal.arms.len() == 1 { "" } else { "s" },
                proposal
                    .spend
                    .iter()
                    .map(|s| s.total)
                    .sum::<Picos>()
                    .to_micros(),
                proposal.unattributed
            );
            let local = ctx.env.cwd.clone().unwrap_or_default().join("budgets.yaml");
            if ctx.global.config.is_none() && local.is_file() {
                eprintln!(
                    "octo-budget: note: {} exists and is read first when octo-budget runs in {}",
                    local.display(),
                    local.parent().unwrap_or(Path::new(".")).display()
                );
            }
            Ok(exit::OK)
        }
    }
}

/// `--config` (or `$OCTO_BUDGET_CONFIG`), else
/// `$XDG_CONFIG_HOME/octo-budget/budgets.yaml`: the file `report` reads
/// when no `./budgets.yaml` is in the way.
fn target_path(ctx: &Context) -> Result<PathBuf> {
    if let Some(p) = &ctx.global.config {
        return Ok(absolute(p, ctx));
    }
    ctx.locations.user_config().ok_or_else(|| {
        Error::Usage("neither HOME nor XDG_CONFIG_HOME is set; pass --config PATH".into())
    })
}

/// Writes `bytes` to a new file at `path` (its folder created), atomically
/// and never over an existing file: false when one is there.
fn write_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .context(|| format!("cannot write {}", path.display()))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error).context(|| format!("cannot write {}", path.display())),
    }
}
