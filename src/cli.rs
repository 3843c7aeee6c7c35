//! Every flag and every environment variable octo-budget reads, in one
//! place. Nothing else looks at argv or the environment.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// Per-repository budgets for Claude Code: spend reports, a hard-stop hook
/// and alerts, from Claude Code's own transcripts.
#[derive(Debug, Parser)]
#[command(name = "octo-budget", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes, before or after its name. Serialized
/// only to hand a hook call to the resident helper (`check --resident`).
#[derive(Debug, Args, Clone, Serialize, Deserialize)]
pub struct Global {
    /// budgets.yaml to use [default: ./budgets.yaml, then
    /// $XDG_CONFIG_HOME/octo-budget/budgets.yaml]
    #[arg(long, global = true, env = "OCTO_BUDGET_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Ledger file, or a team ledger's postgres:// URI [default: `ledger:`
    /// in budgets.yaml, then $XDG_DATA_HOME/octo-budget/ledger.sqlite]
    #[arg(
        long,
        global = true,
        env = "OCTO_BUDGET_LEDGER",
        value_name = "PATH|URI"
    )]
    pub ledger: Option<PathBuf>,

    /// A Claude Code config directory to read transcripts from (repeatable)
    /// [default: `claude_dirs:`, then $CLAUDE_CONFIG_DIR, then ~/.claude and
    /// ~/.config/claude]
    #[arg(long = "claude-dir", global = true, value_name = "DIR")]
    pub claude_dirs: Vec<PathBuf>,

    /// Evaluate as if it were this instant (RFC 3339) [default: the clock]
    #[arg(long, global = true, env = "OCTO_BUDGET_NOW", value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,

    /// `check` only: the most milliseconds one call spends reading history
    /// into a ledger that has not read it all yet [default and maximum:
    /// 3000] (for tests)
    #[arg(long, global = true, hide = true, value_name = "MS")]
    pub history_budget_ms: Option<u64>,
    /// A team ledger: `check` and `statusline` answer from this machine's
    /// working copy without contacting the server when it synced less than
    /// MS milliseconds ago (0: always sync) [default: 2000]
    #[arg(long, global = true, env = "OCTO_BUDGET_TEAM_CACHE_MS", value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub team_cache_ms: Option<u64>,
    /// Colours in report tables and the status line: auto (on a terminal),
    /// always or never; NO_COLOR (set and non-empty) turns them off
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorArg,
}

/// The commands Claude Code runs on every tool call and every turn, parsed
/// on their own: building the flags of every other subcommand costs more
/// than deciding an ungated tool call takes. Same name, version, about
/// and global flags as [`Cli`], so help, errors and exit codes are the
/// same whichever of the two parses (a test compares them).
#[derive(Debug, Parser)]
#[command(name = "octo-budget", version, about, long_about = None, propagate_version = true)]
pub struct LiveCli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: LiveCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum LiveCommand {
    /// The Claude Code hook: reads the hook's JSON on stdin, exits 2 to block
    Check(LiveArgs),
    /// Claude Code's statusLine command: status JSON on stdin, one line out
    Statusline(LiveArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct LiveArgs {
    /// Hand the call to a resident helper process that keeps the ledger
    /// open (started on the first call, gone after 5 idle minutes); the
    /// same answer, without opening the ledger on every call (README,
    /// "The resident helper")
    #[arg(long)]
    pub resident: bool,
}

impl Cli {
    /// The command line: [`LiveCli`] when it starts with `check` or
    /// `statusline` (as the hooks `hook install` writes do), else the full
    /// parser. Exits on `--help`, `--version` or an error, as clap does.
    pub fn parse_args() -> Cli {
        Cli::try_parse_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    pub fn try_parse_from_args(
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Cli, clap::Error> {
        let args: Vec<std::ffi::OsString> = args.into_iter().collect();
        if matches!(
            args.get(1).and_then(|a| a.to_str()),
            Some("check" | "statusline")
        ) {
            let live = LiveCli::try_parse_from(args)?;
            return Ok(Cli {
                global: live.global,
                command: Command::Live(live.command),
            });
        }
        Cli::try_parse_from(args)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Spend per arm for a period (default: this calendar month)
    Report(ReportArgs),
    /// Bring the ledger up to date without printing a report
    Ingest(IngestArgs),
    /// `check` and `statusline`, which Claude Code runs before every tool
    /// call and after every turn
    #[command(flatten)]
    Live(LiveCommand),
    /// Every cap of an arm and the decision check would make, without stdin
    Status(StatusArgs),
    /// The cron job: print each new budget event once
    Alerts(AlertsArgs),
    /// Install or remove octo-budget's entries in Claude Code settings
    Hook {
        #[command(subcommand)]
        action: HookAction,
    },
    /// Propose a budgets.yaml from the last 90 days of transcripts
    Init(InitArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// The resident helper `check --resident` and `statusline --resident`
    /// start and talk to (not run by hand; README, "The resident helper")
    #[command(hide = true)]
    Resident {
        /// The socket to listen on
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
    },
    /// A read-only HTTP server over the ledger: a JSON budget API and a
    /// live dashboard (see README, "octo-budget serve")
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on; any address but a loopback one
    /// needs a bearer token (--token-file or OCTO_BUDGET_TOKEN); port 0
    /// picks a free port (the first line on stdout says which)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8787")]
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token every request but /healthz must
    /// carry (`Authorization: Bearer <token>`) [default: $OCTO_BUDGET_TOKEN]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// How often to read new transcript lines into the ledger (e.g. 30s,
    /// 2m); 0 never reads them (hooks and cron keep the ledger current)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_every)]
    pub ingest_every: std::time::Duration,
}

fn parse_every(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 2m, 0)"))
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Propose arms for repositories that spent from this local date on
    /// (YYYY-MM-DD) [default: 90 days before --now]
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// The IANA time zone to write [default: $TZ, then the system's zone]
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Print the proposal on stdout instead of writing it
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeriodArg {
    Day,
    Week,
    Month,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ByArg {
    Arm,
    Model,
    Day,
    Session,
    Branch,
    /// Transcribed responses vs. requests Claude Code counted but never wrote
    Kind,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Calendar period containing --now, in the config's time zone
    #[arg(long, value_enum, default_value = "month", conflicts_with_all = ["since", "until"])]
    pub period: PeriodArg,
    /// First local date to include (YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Last local date to include (YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub until: Option<NaiveDate>,
    /// Break spend down by this instead of by arm
    #[arg(long, value_enum, default_value = "arm")]
    pub by: ByArg,
    /// Only this arm (use "unattributed" for spend no arm owns)
    #[arg(long, value_name = "NAME")]
    pub arm: Option<String>,
    /// One JSON object on stdout (see README for the contract)
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV rows on stdout
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Print nothing (errors still go to stderr)
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The arm to show
    #[arg(long, value_name = "NAME", conflicts_with = "cwd")]
    pub arm: Option<String>,
    /// Show the arm that owns this directory
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Also evaluate this session's cap
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Also evaluate this git branch's cap [default: the --session's
    /// latest branch]
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,
    /// Exit 7 when gated tools and prompts would be refused, 8 when the
    /// agent would be halted (0 otherwise)
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Print the current state of every arm instead of only new events
    /// (nothing is recorded or sent)
    #[arg(long, conflicts_with = "command")]
    pub all: bool,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Print nothing when there is nothing new
    #[arg(long, short)]
    pub quiet: bool,
    /// Pipe each new event line to this shell command; the event counts as
    /// sent only when the command exits 0
    #[arg(long, value_name = "CMD", value_parser = parse_command)]
    pub command: Option<String>,
    /// Seconds --command may run for one event before it, and every
    /// process it started, is killed (the event is kept for the next run)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "command",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub command_timeout: u64,
}

/// `--command` must say something: an empty one (an unset variable in a
/// crontab) would "send" every event to nothing.
fn parse_command(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the command is empty (an unset variable?); nothing was sent or recorded, the events wait for the next run".into());
    }
    Ok(s.to_owned())
}

#[derive(Debug, Subcommand)]
pub enum HookAction {
    /// Merge octo-budget's hook entries into a settings.json
    Install(HookTarget),
    /// Remove octo-budget's hook entries (and nothing else)
    Uninstall(HookTarget),
}

#[derive(Debug, Args)]
pub struct HookTarget {
    /// This settings file
    #[arg(long, value_name = "PATH", conflicts_with_all = ["project", "user"])]
    pub settings: Option<PathBuf>,
    /// The project's shared settings: DIR/.claude/settings.json
    #[arg(long, value_name = "DIR", conflicts_with = "user")]
    pub project: Option<PathBuf>,
    /// The user's settings: ~/.claude/settings.json (the default)
    #[arg(long)]
    pub user: bool,
    /// Show the change without writing it
    #[arg(long)]
    pub dry_run: bool,
    /// install: also set Claude Code's statusLine to `octo-budget
    /// statusline`; uninstall: remove only octo-budget's statusLine
    #[arg(long)]
    pub statusline: bool,
    /// install --statusline: replace a statusLine that is not octo-budget's
    #[arg(long, requires = "statusline")]
    pub force: bool,
    /// install: hooks that answer in their own process on every call,
    /// without `--resident` (no helper process stays running)
    #[arg(long)]
    pub no_resident: bool,
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 instant ({e}); e.g. 2026-11-20T10:00:00-05:00"))
}

/// The environment variables octo-budget reads besides its flags' own.
/// Serialized only to hand a hook call to the resident helper.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Environment {
    pub home: Option<PathBuf>,
    /// Where the resident helper's socket goes (else /tmp).
    pub xdg_runtime_dir: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub claude_config_dir: Option<PathBuf>,
    pub claude_project_dir: Option<PathBuf>,
    pub tz: Option<String>,
    pub no_color: bool,
    pub cwd: Option<PathBuf>,
    /// `OCTO_BUDGET_HOST`: this machine's name in a team ledger.
    pub host: Option<String>,
    /// `PGPASSWORD`, `PGPASSFILE`, `PGUSER` (else `USER`): a team ledger's
    /// password and default user, as libpq takes them.
    /// Not sent to the resident helper, which leaves team ledgers to the
    /// calling process.
    #[serde(skip)]
    pub pg_password: Option<String>,
    pub pg_passfile: Option<PathBuf>,
    pub user: Option<String>,
    /// OCTO_BUDGET_TOKEN: `serve`'s bearer token (never sent to the
    /// resident helper).
    #[serde(skip)]
    pub token: Option<Secret>,
}

/// A secret that never shows in `Debug` output.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Environment {
    /// Where things are, by the flags and this environment.
    pub fn locations(&self, global: &Global) -> octo_budget::config::location::Locations {
        octo_budget::config::location::Locations {
            config: global.config.clone(),
            ledger: global.ledger.clone(),
            claude_dirs: global.claude_dirs.clone(),
            home: self.home.clone(),
            xdg_config_home: self.xdg_config_home.clone(),
            xdg_data_home: self.xdg_data_home.clone(),
            claude_config_dir: self.claude_config_dir.clone(),
            cwd: self.cwd.clone(),
            host: self.host_name(),
        }
    }

    /// This machine's name in a team ledger: `$OCTO_BUDGET_HOST`, else the
    /// host name.
    pub fn host_name(&self) -> String {
        if let Some(h) = &self.host {
            return h.trim().to_string();
        }
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is writable for its length; gethostname
        // writes at most that many bytes.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        match rc {
            0 if end > 0 => String::from_utf8_lossy(&buf[..end]).into_owned(),
            _ => "localhost".into(),
        }
    }

    pub fn from_process() -> Environment {
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Environment {
            home: path("HOME"),
            xdg_runtime_dir: path("XDG_RUNTIME_DIR"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            xdg_data_home: path("XDG_DATA_HOME"),
            claude_config_dir: path("CLAUDE_CONFIG_DIR"),
            claude_project_dir: path("CLAUDE_PROJECT_DIR"),
            tz: std::env::var("TZ").ok().filter(|v| !v.is_empty()),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            cwd: std::env::current_dir().ok(),
            host: std::env::var("OCTO_BUDGET_HOST")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            pg_password: std::env::var("PGPASSWORD").ok().filter(|v| !v.is_empty()),
            pg_passfile: path("PGPASSFILE"),
            user: std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .ok()
                .filter(|v| !v.is_empty()),
            token: std::env::var("OCTO_BUDGET_TOKEN").ok().map(Secret),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the full parser makes of `args`: the parsed command line, or
    /// the error's kind and text (help and version are "errors" too).
    fn full(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Ok(cli) => format!("{cli:?}"),
            Err(e) => format!("{:?}: {}", e.kind(), e.render()),
        }
    }

    fn fast(args: &[&str]) -> String {
        match Cli::try_parse_from_args(args.iter().map(std::ffi::OsString::from)) {
            Ok(cli) => format!("{cli:?}"),
            Err(e) => format!("{:?}: {}", e.kind(), e.render()),
        }
    }

    #[test]
    fn the_live_parser_answers_as_the_full_one() {
        let cases: &[&[&str]] = &[
            &["octo-budget", "check"],
            &["octo-budget", "statusline"],
            &[
                "octo-budget",
                "check",
                "--config",
                "/c/b.yaml",
                "--ledger",
                "/l.sqlite",
            ],
            &[
                "octo-budget",
                "check",
                "--claude-dir",
                "/a",
                "--claude-dir",
                "/b",
            ],
            &[
                "octo-budget",
                "statusline",
                "--now",
                "2026-11-28T12:00:00Z",
                "--color",
                "never",
            ],
            &[
                "octo-budget",
                "check",
                "--team-cache-ms",
                "0",
                "--history-budget-ms",
                "5",
            ],
            &["octo-budget", "check", "--resident", "--config", "/c.yaml"],
            &["octo-budget", "statusline", "--resident"],
            &["octo-budget", "--resident", "check"],
            &["octo-budget", "check", "--now", "yesterday"],
            &["octo-budget", "check", "--team-cache-ms", "70000"],
            &["octo-budget", "check", "--bogus"],
            &["octo-budget", "check", "extra"],
            &["octo-budget", "check", "--config"],
            &["octo-budget", "statusline", "--color", "sometimes"],
            &["octo-budget", "check", "--help"],
            &["octo-budget", "statusline", "-h"],
            &["octo-budget", "check", "--version"],
            &["octo-budget", "check", "-V"],
        ];
        for args in cases {
            let expected = full(args);
            assert_eq!(fast(args), expected, "{args:?}");
        }
        // The cases above do reach the live parser, and some of them fail.
        assert!(
            fast(&["octo-budget", "check"]).contains("Live(Check(LiveArgs { resident: false }))")
        );
        assert!(fast(&["octo-budget", "check", "--bogus"]).starts_with("UnknownArgument"));
        assert!(fast(&["octo-budget", "statusline", "--resident"])
            .contains("Statusline(LiveArgs { resident: true })"));
        assert!(fast(&["octo-budget", "check", "--help"]).starts_with("DisplayHelp"));
    }

    #[test]
    fn other_command_lines_go_to_the_full_parser() {
        for args in [
            &["octo-budget", "--config", "/c.yaml", "check"][..],
            &["octo-budget", "report", "--json"],
            &["octo-budget", "--help"],
            &["octo-budget"],
        ] {
            assert_eq!(fast(args), full(args), "{args:?}");
        }
        assert!(fast(&["octo-budget", "--config", "/c.yaml", "check"])
            .contains("Live(Check(LiveArgs { resident: false }))"));
    }
}
