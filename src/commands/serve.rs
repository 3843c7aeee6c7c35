//! `octo-budget serve`: the read-only HTTP server (JSON API and dashboard)
//! over the ledger. The flags and the token rule are checked here; the
//! server itself is `crate::serve`.

use std::sync::Arc;

use crate::cli::ServeArgs;
use crate::error::{Error, IoContext, Result};
use crate::exit;
use crate::serve::{Server, Settings};

use super::{print_notices, Context};

pub fn run(ctx: &Context, args: &ServeArgs) -> Result<u8> {
    let loaded = ctx.load()?;
    print_notices(&loaded.config);
    let token = match (&args.token_file, &ctx.env.token) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .context(|| format!("cannot read --token-file {}", file.display()))?;
            Some(non_empty(text.trim(), "--token-file")?)
        }
        (None, Some(t)) => Some(non_empty(t.0.trim(), "OCTO_BUDGET_TOKEN")?),
        (None, None) => None,
    };
    if token.is_none() && !args.listen.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "--listen {}: an address other than a loopback one needs a bearer token (--token-file FILE or OCTO_BUDGET_TOKEN); not started",
            args.listen
        )));
    }
    let settings = Settings {
        listen: args.listen,
        token,
        ingest_every: args.ingest_every,
        fixed_now: ctx.global.now,
    };
    let ctx = Arc::new(Context {
        global: ctx.global.clone(),
        env: ctx.env.clone(),
        now: ctx.now,
        started: ctx.started,
        locations: ctx.locations.clone(),
    });
    Server::start(ctx, loaded, settings)?.run();
    Ok(exit::OK)
}

fn non_empty(token: &str, from: &str) -> Result<String> {
    if token.is_empty() {
        return Err(Error::Usage(format!(
            "{from}: the bearer token is empty; not started"
        )));
    }
    Ok(token.to_owned())
}
