//! The read-only HTTP server of `octo-budget serve`: a small synchronous
//! server (tiny_http) with a pool of workers, each with its own ledger
//! connection, and one thread that reads new transcript lines into the
//! ledger every `--ingest-every`. Answers are built from the same core
//! and serde types as `report --json` and `status --json` ([`api`]) and a
//! server-rendered dashboard ([`dashboard`]). Nothing here writes
//! budgets.yaml, records a halt or a warning, or runs for any other
//! command.

pub mod api;
pub mod dashboard;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use tiny_http::{Header, Method, Request, Response};

use crate::commands::Context;
use crate::error::{Error, Result};
use octo_budget::ledger::Ledger;
use octo_budget::transcript::discover::{discover, Unreadable};
use octo_budget::Loaded;

/// Worker threads answering requests (each holds a ledger connection).
const WORKERS: usize = 8;
/// Connections the kernel queues before `serve` accepts them.
const BACKLOG: i32 = 1024;
/// How long a request waits for a ledger another process is writing.
const BUSY: Duration = Duration::from_secs(10);

/// What `serve` was started with.
pub struct Settings {
    pub listen: SocketAddr,
    /// The bearer token every request but /healthz must carry.
    pub token: Option<String>,
    /// Zero: never read transcripts.
    pub ingest_every: Duration,
    /// `--now`: answer as of this instant (tests), else the clock.
    pub fixed_now: Option<DateTime<Utc>>,
}

/// What every worker shares.
pub struct State {
    pub ctx: Arc<Context>,
    /// budgets.yaml as last loaded, and its modification time then.
    config: Mutex<(Option<SystemTime>, Arc<Loaded>)>,
    config_path: PathBuf,
    pub settings: Settings,
    /// What the last ingest could not read (its count is in the answers).
    pub unreadable: Mutex<Vec<Unreadable>>,
    pub templates: minijinja::Environment<'static>,
}

impl State {
    pub fn now(&self) -> DateTime<Utc> {
        self.settings.fixed_now.unwrap_or_else(Utc::now)
    }

    /// budgets.yaml as it is now: loaded again when the file changed (a
    /// file that no longer loads is said on stderr and the previous one
    /// kept), so that answers follow the file as the commands do.
    pub fn loaded(&self) -> Arc<Loaded> {
        let mtime = modified(&self.config_path);
        let mut cur = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if mtime != cur.0 {
            cur.0 = mtime;
            match self.ctx.load() {
                Ok(l) => cur.1 = Arc::new(l),
                Err(e) => eprintln!(
                    "octo-budget serve: budgets.yaml changed but does not load, the previous one stays in use: {e}"
                ),
            }
        }
        Arc::clone(&cur.1)
    }

    pub fn unreadable(&self) -> Vec<Unreadable> {
        self.unreadable
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }
}

pub struct Server {
    http: Arc<tiny_http::Server>,
    state: Arc<State>,
    /// The ledger of budgets.yaml at the start (a changed `ledger:` needs
    /// a restart).
    ledger_path: PathBuf,
    /// One connection per worker, opened one after another before the
    /// first request (opened at once, under load, they waited on each
    /// other for seconds).
    ledgers: Vec<Ledger>,
}

impl Server {
    /// Reads what is new into the ledger, then binds the address.
    pub fn start(ctx: Arc<Context>, loaded: Loaded, settings: Settings) -> Result<Server> {
        let ledger_path = ctx.locations.ledger_path(&loaded.config);
        let mut ledger = Ledger::open(&ledger_path, BUSY)?;
        let mut unreadable = Vec::new();
        if !settings.ingest_every.is_zero() {
            unreadable = ctx.ingest_all(&loaded, &mut ledger, false)?.unreadable;
        }
        drop(ledger);
        let ledgers = (0..WORKERS)
            .map(|_| Ledger::open(&ledger_path, BUSY))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let cannot = |source| Error::Io {
            context: format!("cannot listen on {}", settings.listen),
            source,
        };
        let listener = std::net::TcpListener::bind(settings.listen).map_err(cannot)?;
        // std listens with a backlog of 128: a burst of new connections
        // beyond it waits for SYN retransmits (1 s, 3 s, 7 s). Listening
        // again raises it (Linux caps it at net.core.somaxconn).
        // SAFETY: listen(2) on the socket this function owns.
        unsafe {
            libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), BACKLOG);
        }
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| cannot(std::io::Error::other(e.to_string())))?;
        let config_path = loaded.config.path.clone();
        let state = Arc::new(State {
            ctx,
            config: Mutex::new((modified(&config_path), Arc::new(loaded))),
            config_path,
            settings,
            unreadable: Mutex::new(unreadable),
            templates: dashboard::templates(),
        });
        Ok(Server {
            http: Arc::new(http),
            state,
            ledger_path,
            ledgers,
        })
    }

    /// Serves until the process is ended.
    pub fn run(self) {
        let addr = self
            .http
            .server_addr()
            .to_ip()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // The first line on stdout: where it listens (port 0 picks one).
        println!("octo-budget serve: listening on http://{addr}/");
        if !self.state.settings.ingest_every.is_zero() {
            let state = Arc::clone(&self.state);
            let path = self.ledger_path.clone();
            std::thread::spawn(move || ingest_loop(&state, &path));
        }
        let mut workers = Vec::new();
        for ledger in self.ledgers {
            let http = Arc::clone(&self.http);
            let state = Arc::clone(&self.state);
            let path = self.ledger_path.clone();
            workers.push(std::thread::spawn(move || {
                worker(&http, &state, &path, ledger)
            }));
        }
        for w in workers {
            let _ = w.join();
        }
    }
}

/// Reads new transcript lines every `--ingest-every`; a failed run is
/// said on stderr and tried again next time. Unlike the commands' ingest
/// it leaves checkpoints to SQLite's automatic (passive) one: a
/// truncating checkpoint every few seconds made the workers' reads wait
/// on the log's reset (seconds at p99 under load, see bench/README.md).
fn ingest_loop(state: &State, path: &Path) {
    let mut ledger: Option<Ledger> = None;
    loop {
        std::thread::sleep(state.settings.ingest_every);
        if ledger.is_none() {
            match Ledger::open(path, BUSY) {
                Ok(l) => ledger = Some(l),
                Err(e) => {
                    eprintln!("octo-budget serve: reading transcripts: {e}");
                    continue;
                }
            }
        }
        let Some(l) = ledger.as_mut() else { continue };
        match ingest_once(state, l) {
            Ok(unreadable) => {
                if let Ok(mut u) = state.unreadable.lock() {
                    *u = unreadable;
                }
            }
            Err(e) => {
                eprintln!("octo-budget serve: reading transcripts: {e}");
                ledger = None;
            }
        }
    }
}

/// One ingest of every transcript (and, for a team ledger, a sync with
/// the team's server): what could not be read.
fn ingest_once(state: &State, ledger: &mut Ledger) -> Result<Vec<Unreadable>> {
    let loaded = state.loaded();
    let found = discover(&state.ctx.locations.claude_dirs(&loaded.config));
    let (mut stats, _) = octo_budget::ledger::ingest::ingest_until(
        ledger,
        &found.files,
        &mut octo_budget::ledger::ingest::NoProgress,
        None,
    )?;
    let mut unreadable = found.unreadable;
    unreadable.append(&mut stats.unreadable);
    // A team ledger: send what this machine read, take the team's.
    state
        .ctx
        .sync_team(&loaded.config, ledger, crate::commands::TEAM_WAIT)?;
    Ok(unreadable)
}

fn worker(http: &tiny_http::Server, state: &State, path: &Path, ledger: Ledger) {
    let mut ledger = Some(ledger);
    while let Ok(req) = http.recv() {
        if ledger.is_none() {
            match Ledger::open(path, BUSY) {
                Ok(l) => ledger = Some(l),
                Err(e) => eprintln!("octo-budget serve: opening the ledger: {e}"),
            }
        }
        // A panic answers 500 (the hook in main says it on stderr) and
        // leaves the worker serving.
        let reply = match &ledger {
            Some(l) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(state, l, &req)))
                    .unwrap_or_else(|_| {
                        Reply::error(500, "internal error (the server's log says more)")
                    })
            }
            None => Reply::error(503, "the ledger cannot be opened"),
        };
        respond(req, reply);
    }
}

/// An answer: status, content type and body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub const JSON: &str = "application/json";

impl Reply {
    pub fn json(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type: JSON,
            body,
        }
    }

    /// `{"error": {"status": .., "message": ..}}`.
    pub fn error(status: u16, message: &str) -> Reply {
        let doc = serde_json::json!({"error": {"status": status, "message": message}});
        let mut body = Vec::new();
        let _ = crate::output::json::pretty(&mut body, &doc);
        Reply {
            status,
            content_type: JSON,
            body,
        }
    }

    /// A failure that is not the client's: details go to the log, never
    /// into the answer (they may name files).
    pub fn internal(e: &dyn std::fmt::Display) -> Reply {
        eprintln!("octo-budget serve: {e}");
        Reply::error(500, "internal error (the server's log says more)")
    }
}

fn answer(state: &State, ledger: &Ledger, req: &Request) -> Reply {
    let url = req.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Reply::error(
            405,
            "only GET and HEAD are served (the server is read-only)",
        );
    }
    if path != "/healthz" && !authorized(state, req) {
        return Reply::error(
            401,
            "a bearer token is required (Authorization: Bearer <token>)",
        );
    }
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["healthz"] => api::healthz(ledger),
        ["api", "v1", "report"] => api::report(state, ledger, query),
        ["api", "v1", "arms", arm, "status"] => api::status(state, ledger, arm, query),
        ["api", "v1", "arms", arm, "budget"] => api::budget(state, ledger, arm, query),
        [""] => dashboard::page(state, ledger, query, false),
        ["live"] => dashboard::page(state, ledger, query, true),
        ["assets", name] => dashboard::asset(name),
        _ => Reply::error(404, "no such page"),
    }
}

/// True when no token is set, or the request carries it (compared in
/// constant time).
fn authorized(state: &State, req: &Request) -> bool {
    let Some(token) = &state.settings.token else {
        return true;
    };
    req.headers()
        .iter()
        .filter(|h| h.field.equiv("Authorization"))
        .any(|h| {
            let v = h.value.as_str();
            let given = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
                .trim();
            same_token(given.as_bytes(), token.as_bytes())
        })
}

/// `given == token` in time that depends only on the token's length (not
/// on where `given` first differs, nor on its length).
fn same_token(given: &[u8], token: &[u8]) -> bool {
    let mut same = given.len().ct_eq(&token.len());
    for (i, t) in token.iter().enumerate() {
        same &= given.get(i).copied().unwrap_or(0).ct_eq(t);
    }
    bool::from(same)
}

fn respond(req: Request, reply: Reply) {
    let mut headers = vec![
        header("Content-Type", reply.content_type),
        header("Cache-Control", "no-store"),
        header("X-Content-Type-Options", "nosniff"),
        header("Referrer-Policy", "no-referrer"),
        header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    ];
    if reply.status == 401 {
        headers.push(header("WWW-Authenticate", "Bearer"));
    }
    if reply.status == 405 {
        headers.push(header("Allow", "GET, HEAD"));
    }
    // tiny_http sends no body for HEAD.
    let len = reply.body.len();
    let resp = Response::new(
        tiny_http::StatusCode(reply.status),
        headers,
        &reply.body[..],
        Some(len),
        None,
    )
    // The length is known: say it, never chunk (tiny_http chunks bodies
    // over 32 KiB by default).
    .with_chunked_threshold(usize::MAX);
    // A client that went away is not the server's problem.
    let _ = req.respond(resp);
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("a valid header")
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_are_equal_only_when_every_byte_and_the_length_are() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cres", b"s3cret"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"s3cret\0", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
        assert!(!same_token(b"S3cret", b"s3cret"));
    }
}
