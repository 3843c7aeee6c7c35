//! Subcommands. Each takes the [`Context`] (flags, environment, `now`) and
//! returns an exit code; errors carry their own exit code (see `exit`).

pub mod alerts;
pub mod check;
pub mod docs;
pub mod guard;
pub mod hook;
pub mod ingest;
pub mod init;
pub mod report;
pub mod resident;
pub mod serve;
pub mod status;
pub mod statusline;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use octo_budget::config::location::Locations;
use octo_budget::config::{Config, ConfigError, PathContext};
use octo_budget::ledger::ingest::{IngestStats, Progress};
use octo_budget::ledger::team::{self, Team, TeamUri};
use octo_budget::ledger::Ledger;
use octo_budget::transcript::discover::{discover, session_files, Discovery};
pub use octo_budget::Loaded;

use crate::cli::{Environment, Global};
use crate::error::{Error, Result};
pub use resident::LiveLedger;

/// How long a command waits to connect to a team ledger's server.
pub const TEAM_WAIT: Duration = Duration::from_secs(10);

/// How long `check` and `statusline` answer from a team ledger's working
/// copy after a sync (`--team-cache-ms`).
pub const TEAM_CACHE_MS: u64 = 2_000;

/// The wall clock in milliseconds (the age of a team ledger's last sync).
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// This process's connection to a team ledger (see [`Context::with_team`]),
/// or why a connection started early ([`Context::preconnect_team`]) failed.
struct Conn {
    team: Option<Team>,
    failed: Option<octo_budget::ledger::LedgerError>,
}

static TEAM: std::sync::Mutex<Conn> = std::sync::Mutex::new(Conn {
    team: None,
    failed: None,
});

/// Everything a command knows about its invocation.
pub struct Context {
    pub global: Global,
    pub env: Environment,
    pub now: DateTime<Utc>,
    /// When the invocation started (`check`'s reading budget counts from
    /// here; for a call the resident helper answers, when its client did).
    pub started: Instant,
    /// Where budgets.yaml, the ledger and the transcripts are.
    pub locations: Locations,
}

impl Context {
    /// Whether to colour output that goes to a terminal (`is_terminal`):
    /// `--color`, and never with NO_COLOR.
    pub fn color(&self, is_terminal: bool) -> bool {
        if self.env.no_color {
            return false;
        }
        match self.global.color {
            crate::cli::ColorArg::Always => true,
            crate::cli::ColorArg::Never => false,
            crate::cli::ColorArg::Auto => is_terminal,
        }
    }

    pub fn path_context(&self) -> PathContext {
        PathContext {
            home: self.env.home.clone(),
            local_zone: self.local_zone(),
        }
    }

    /// `TZ` when it names an IANA zone, else the system's zone, else UTC.
    fn local_zone(&self) -> Option<Tz> {
        if let Some(tz) = self
            .env
            .tz
            .as_deref()
            .and_then(|t| t.trim_start_matches(':').parse::<Tz>().ok())
        {
            return Some(tz);
        }
        iana_time_zone::get_timezone()
            .ok()
            .and_then(|n| n.parse().ok())
    }

    pub fn load(&self) -> std::result::Result<Loaded, ConfigError> {
        let path = self.locations.config_path()?;
        Ok(Loaded::new(Config::load(&path, &self.path_context())?))
    }

    /// [`Context::load`] for the hook (`check`, `statusline`), which runs
    /// before every tool call: the config as the ledger stored it when this
    /// build last parsed the same file under the same home and time zone
    /// (`config::cached`), else parsed and stored. Returns the ledger too
    /// when it is the one the config names (see [`reuse_or_open`]), opened on
    /// the way: the ledger looked in is the one `--ledger` (or
    /// `$OCTO_BUDGET_LEDGER`) names, else the one the file's plain
    /// `ledger:` line names (`cached::configured_ledger`, a guess checked
    /// against the config), else the default location. Nothing
    /// here fails that did not fail before: a ledger that is missing, busy,
    /// unreadable or not yet migrated to this build's schema (migrated
    /// later, once the config is known) only means the file is parsed.
    pub fn load_live(&self) -> std::result::Result<(Loaded, Option<LiveLedger>), ConfigError> {
        use octo_budget::config::cached;
        let path = self.locations.config_path()?;
        let text = octo_budget::config::read_bounded(&path)?;
        let pctx = self.path_context();
        let key = cached::key(&text, &path, &pctx);
        // The ledger the file names (checked below, once the config is
        // known), else the default one.
        let named = cached::configured_ledger(&text, &path, &pctx);
        let guess = absolute(&self.locations.ledger_path_with(named.as_deref()), self);
        let ledger = if guess.is_file() {
            resident::open_if_current(&guess, LIVE_OPEN_WAIT)
                .ok()
                .flatten()
        } else {
            None
        };
        // The resident helper remembers the last config it decoded (the
        // key covers the file's text, path, home and zone).
        let remembered = resident::remembered_config(&key);
        let from_memory = remembered.is_some();
        let hit = remembered.or_else(|| {
            ledger
                .as_ref()
                .and_then(|l| l.cached_config(&key).ok().flatten())
                .and_then(|stored| cached::decode(&stored, &path))
        });
        let (config, miss) = match hit {
            Some(c) => (c, false),
            None => (Config::parse(&text, &path, &pctx)?, true),
        };
        if !from_memory {
            resident::remember_config(key, &config);
        }
        let ledger =
            ledger.filter(|_| absolute(&self.locations.ledger_path(&config), self) == guess);
        if let (true, Some(l)) = (miss, &ledger) {
            if let Some(stored) = cached::encode(&config) {
                let _ = l.store_config(&key, &stored);
            }
        }
        Ok((Loaded::new(config), ledger))
    }

    /// The team ledger named by `--ledger`, `$OCTO_BUDGET_LEDGER` or
    /// `ledger:`, if it is a `postgres://` URI (a bad one is a usage error).
    pub fn team_uri(&self, config: &Config) -> Result<Option<TeamUri>> {
        match self.locations.team_ledger(config) {
            Some(uri) => TeamUri::parse(uri)
                .map(Some)
                .map_err(|e| Error::Usage(format!("ledger URI: {e}"))),
            None => Ok(None),
        }
    }

    /// The password for a team ledger: `$PGPASSWORD`, else the first
    /// matching line of `$PGPASSFILE` or `~/.pgpass` (ignored, as libpq
    /// does, when group or others may read it).
    fn team_password(&self, uri: &TeamUri) -> Option<String> {
        if let Some(p) = &self.env.pg_password {
            return Some(p.clone());
        }
        let file = self
            .env
            .pg_passfile
            .clone()
            .or_else(|| self.env.home.as_ref().map(|h| h.join(".pgpass")))?;
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&file).ok()?;
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
        let text = std::fs::read_to_string(&file).ok()?;
        let (host, port, db, user) = uri.pgpass_key(&self.default_pg_user());
        team::pgpass_lookup(&text, &host, port, &db, &user)
    }

    fn default_pg_user(&self) -> String {
        self.env.user.clone().unwrap_or_else(|| "postgres".into())
    }

    /// Runs `f` with this process's connection to the team ledger
    /// (connecting at most once per process, waiting at most `timeout`);
    /// None for a one-machine ledger.
    pub fn with_team<T>(
        &self,
        config: &Config,
        timeout: Duration,
        f: impl FnOnce(&mut Team) -> octo_budget::ledger::Result<T>,
    ) -> Result<Option<T>> {
        let Some(uri) = self.team_uri(config)? else {
            return Ok(None);
        };
        let mut conn = TEAM.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = conn.failed.take() {
            return Err(e.into());
        }
        if conn.team.is_none() {
            let password = self.team_password(&uri);
            conn.team = Some(Team::connect(
                &uri,
                password.as_deref(),
                &self.default_pg_user(),
                &self.locations.host,
                timeout,
            )?);
        }
        let team = conn.team.as_mut().expect("connected above");
        match f(team) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // A failed connection is not reused.
                conn.team = None;
                Err(e.into())
            }
        }
    }

    /// For `check`: starts connecting to the team ledger's server in the
    /// background when the working copy will need a sync, so that the
    /// connection is made while the session's transcript is read. The
    /// next [`Context::with_team`] waits for it (and gets its error).
    pub fn preconnect_team(&self, config: &Config, ledger: &Ledger, timeout: Duration) {
        let Ok(Some(uri)) = self.team_uri(config) else {
            return;
        };
        let within = self.global.team_cache_ms.unwrap_or(TEAM_CACHE_MS) as i64;
        if team::synced_within(ledger, wall_ms(), within).unwrap_or(true) {
            return;
        }
        let password = self.team_password(&uri);
        let user = self.default_pg_user();
        let host = self.locations.host.clone();
        let (held, lock_held) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut conn = TEAM.lock().unwrap_or_else(|p| p.into_inner());
            let _ = held.send(());
            if conn.team.is_none() && conn.failed.is_none() {
                match Team::connect(&uri, password.as_deref(), &user, &host, timeout) {
                    Ok(t) => conn.team = Some(t),
                    Err(e) => conn.failed = Some(e),
                }
            }
        });
        // Only once the thread holds the connection's lock: a later
        // `with_team` then waits for its connection instead of making one.
        let _ = lock_held.recv();
    }

    /// For a team ledger: sends what this machine read and takes what the
    /// team wrote (one round trip; see `ledger::team`).
    pub fn sync_team(
        &self,
        config: &Config,
        ledger: &mut Ledger,
        timeout: Duration,
    ) -> Result<Option<team::SyncStats>> {
        let now_ms = wall_ms();
        self.with_team(config, timeout, |t| t.sync(ledger, now_ms))
    }

    /// The same for `check` and `statusline`, unless the working copy
    /// synced less than `--team-cache-ms` (default 2 s) ago: then they
    /// answer from it (the team's spend at most that old; this machine's
    /// own is read into it on every call and sent with the next sync).
    pub fn sync_team_unless_fresh(
        &self,
        config: &Config,
        ledger: &mut Ledger,
        timeout: Duration,
    ) -> Result<()> {
        if self.locations.team_ledger(config).is_none() {
            return Ok(());
        }
        let within = self.global.team_cache_ms.unwrap_or(TEAM_CACHE_MS) as i64;
        if !team::synced_within(ledger, wall_ms(), within)? {
            self.sync_team(config, ledger, timeout)?;
        }
        Ok(())
    }

    pub fn open_ledger(&self, config: &Config, busy: Duration) -> Result<Ledger> {
        Ok(Ledger::open(&self.locations.ledger_path(config), busy)?)
    }

    /// Discovers every transcript and ingests what is new.
    pub fn ingest_all(
        &self,
        loaded: &Loaded,
        ledger: &mut Ledger,
        show_progress: bool,
    ) -> Result<IngestStats> {
        let found = discover(&self.locations.claude_dirs(&loaded.config));
        self.ingest_scanned(loaded, ledger, found, show_progress)
    }

    /// The same with the transcripts already found (by [`discover`]).
    pub fn ingest_scanned(
        &self,
        loaded: &Loaded,
        ledger: &mut Ledger,
        found: Discovery,
        show_progress: bool,
    ) -> Result<IngestStats> {
        let mut bar = ProgressBar::new(show_progress && std::io::stderr().is_terminal());
        self.ingest_found(loaded, ledger, found, &mut bar, None)
            .map(|(stats, _)| stats)
    }

    /// The same, stopping at `until` with what was read so far committed;
    /// true when everything was read (and the ledger records that).
    pub fn ingest_all_until(
        &self,
        loaded: &Loaded,
        ledger: &mut Ledger,
        until: Option<Instant>,
    ) -> Result<(IngestStats, bool)> {
        self.ingest_discovered(
            loaded,
            ledger,
            &mut octo_budget::ledger::ingest::NoProgress,
            until,
        )
    }

    fn ingest_discovered(
        &self,
        loaded: &Loaded,
        ledger: &mut Ledger,
        progress: &mut dyn octo_budget::ledger::ingest::Progress,
        until: Option<Instant>,
    ) -> Result<(IngestStats, bool)> {
        let found = discover(&self.locations.claude_dirs(&loaded.config));
        self.ingest_found(loaded, ledger, found, progress, until)
    }

    fn ingest_found(
        &self,
        loaded: &Loaded,
        ledger: &mut Ledger,
        found: Discovery,
        progress: &mut dyn octo_budget::ledger::ingest::Progress,
        until: Option<Instant>,
    ) -> Result<(IngestStats, bool)> {
        let (mut stats, complete) =
            octo_budget::ledger::ingest::ingest_until(ledger, &found.files, progress, until)?;
        let mut unreadable = found.unreadable;
        unreadable.append(&mut stats.unreadable);
        stats.unreadable = unreadable;
        if complete {
            if stats.files_read > 0 {
                ledger.checkpoint();
            }
            if !ledger.history_read()? {
                ledger.mark_history_read()?;
            }
        }
        let wait = until.map_or(TEAM_WAIT, |u| {
            u.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(500))
        });
        match until {
            // `check` and `statusline`: within their deadline and cache bound.
            Some(_) => self.sync_team_unless_fresh(&loaded.config, ledger, wait)?,
            None => {
                self.sync_team(&loaded.config, ledger, wait)?;
            }
        }
        Ok((stats, complete))
    }

    /// Ingests only the given transcript and its session's subagents.
    pub fn ingest_session(
        &self,
        ledger: &mut Ledger,
        transcript: &Path,
        session_id: Option<&str>,
    ) -> Result<IngestStats> {
        let files = session_files(transcript, session_id);
        Ok(octo_budget::ledger::ingest::ingest(
            ledger,
            &files,
            &mut octo_budget::ledger::ingest::NoProgress,
        )?)
    }
}

/// How long [`Context::load_live`] waits to open the ledger it looks the
/// config up in (a busy ledger: the file is parsed instead).
const LIVE_OPEN_WAIT: Duration = Duration::from_millis(250);

/// The ledger at `path`, waiting at most `wait` for other processes' locks:
/// `early` (opened by [`Context::load_live`]) when it is that ledger, else
/// opened now (or the resident helper's, kept from its last call).
pub fn reuse_or_open(
    early: &mut Option<LiveLedger>,
    path: &Path,
    wait: Duration,
) -> octo_budget::ledger::Result<LiveLedger> {
    match early.take() {
        Some(mut l) if l.path() == path => {
            l.set_busy(wait)?;
            Ok(l)
        }
        _ => resident::open(path, wait),
    }
}

/// Standard input, at most `max` bytes; `what` names it in the error.
pub fn read_stdin(max: u64, what: &str) -> Result<Vec<u8>> {
    use crate::error::IoContext as _;
    use std::io::Read as _;
    let mut input = Vec::new();
    std::io::stdin()
        .take(max)
        .read_to_end(&mut input)
        .context(|| format!("cannot read {what}"))?;
    Ok(input)
}

/// `p` made absolute against the working folder, `.` and `..` folded
/// (lexically: symlinks stay as they are).
pub fn absolute(p: &Path, ctx: &Context) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        ctx.env.cwd.clone().unwrap_or_default().join(p)
    };
    PathBuf::from(octo_budget::config::normalise_path(&abs.to_string_lossy()))
}

/// A progress bar on stderr, shown only when a scan takes over a second on
/// a terminal.
struct ProgressBar {
    enabled: bool,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
}

impl ProgressBar {
    fn new(enabled: bool) -> ProgressBar {
        ProgressBar {
            enabled,
            started: Instant::now(),
            bar: None,
            total: 0,
            done: 0,
        }
    }
}

impl Progress for ProgressBar {
    fn start(&mut self, _files: usize, bytes: u64) {
        self.started = Instant::now();
        self.total = bytes;
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled {
            return;
        }
        if self.bar.is_none() && self.started.elapsed() > Duration::from_secs(1) {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(self.total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "reading transcripts {bar:30} {binary_bytes}/{binary_total_bytes} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// `--arm NAME` names no arm of the config: a usage error (exit 2) that
/// names the config and suggests the nearest arm (or lists a few).
pub fn unknown_arm(config: &Config, name: &str) -> crate::error::Error {
    let names: Vec<&str> = config.arms.iter().map(|a| a.name.as_str()).collect();
    let hint = match strsim_nearest(name, &names) {
        Some(best) => format!("did you mean {best:?}?"),
        None if names.is_empty() => "it lists none".into(),
        None if names.len() <= 10 => format!("arms: {}", names.join(", ")),
        None => format!("{} arms, e.g. {}", names.len(), names[..10].join(", ")),
    };
    crate::error::Error::Usage(format!(
        "--arm {name:?}: {} has no such arm ({hint})",
        config.path.display()
    ))
}

fn strsim_nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Prints the config's notices (one line each) on stderr.
pub fn print_notices(config: &Config) {
    for n in &config.notices {
        eprintln!("octo-budget: {n}");
    }
}
