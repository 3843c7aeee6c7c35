//! A team ledger on PostgreSQL (13 or later): one budget for every machine.
//!
//! Each machine keeps a local SQLite ledger as its working copy (a cache
//! per server and host name): it reads its own transcripts into it exactly
//! as a one-machine ledger does (file positions stay per host), and every
//! command then *syncs* it with the server in one round trip: the rows it
//! changed since the last sync go up (`INSERT ... ON CONFLICT DO UPDATE
//! SET x = GREATEST(...)`: merge by maximum per field, as SQLite does), and
//! every row any machine wrote since this one last looked comes down and
//! is merged into the cache the same way. So `report`, `check`, `status`
//! and `alerts` read the team's spend through the same [`Store`] code as a
//! single machine, a response present on two machines counts once, and a
//! response read while the server was down stays marked in the cache and
//! goes up on the next successful sync (nothing lost; merging by maximum
//! makes a repeat count nothing twice).
//!
//! Changes are found by triggers on the cache's `responses`, `sessions`,
//! `cost_states` and `session_links` (tables `team_pending*`, created in a
//! cache only, outside the SQLite schema's version). What comes down is found by the writing transaction's id: each
//! server row keeps `wxid` (the `xid8` of the transaction that last raised
//! it), and a sync asks for rows with `wxid >= ` the `xmin` of the previous
//! sync's snapshot (every transaction below it had finished, so nothing is
//! missed; a row seen twice merges to the same values).
//!
//! Alert events are claimed on the server (`octo_budget_notices`, a unique
//! key): of all machines, only the one whose insert wins says an event.
//!
//! `check` and `statusline` skip the sync while the cache's last one is
//! younger than a bound the binary passes ([`synced_within`]): connecting
//! alone costs more than their budget.
//!
//! [`Store`]: super::Store

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls};
use rusqlite::params;

use super::ingest::{apply_remote, RemoteBatch, RemoteCost, RemoteResponse, RemoteSession};
use super::outbox::AlertKey;
use super::{Ledger, LedgerError, Result};
use crate::transcript::Usage;

/// The newest server schema this binary writes and understands.
pub const VERSION: i64 = 1;

/// `pg_advisory_xact_lock` key held while the schema is created or
/// migrated ("OCTB").
const MIGRATION_LOCK: i64 = 0x4F43_5442;

/// Rows sent per statement.
const CHUNK: usize = 4000;

const MIGRATIONS: &[&str] = &[
    // 1: responses and cost-states (merged by maximum), session cwds,
    // sessions sharing responses, alert claims.
    "
    CREATE TABLE octo_budget_responses (
        message_id text NOT NULL,
        request_id text NOT NULL,
        session_id text NOT NULL,
        cwd text NOT NULL,
        project text NOT NULL,
        model text NOT NULL,
        ts_ms bigint NOT NULL,
        branch text NOT NULL,
        sidechain boolean NOT NULL,
        fast boolean NOT NULL,
        us_geo boolean NOT NULL,
        advisor boolean NOT NULL,
        input bigint NOT NULL,
        output bigint NOT NULL,
        cache_write_5m bigint NOT NULL,
        cache_write_1h bigint NOT NULL,
        cache_read bigint NOT NULL,
        web_search bigint NOT NULL,
        host text NOT NULL,
        wxid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        PRIMARY KEY (message_id, request_id)
    );
    CREATE INDEX octo_budget_responses_wxid ON octo_budget_responses (wxid);
    CREATE TABLE octo_budget_sessions (
        session_id text PRIMARY KEY,
        cwd text NOT NULL,
        first_ts bigint NOT NULL,
        wxid xid8 NOT NULL DEFAULT pg_current_xact_id()
    );
    CREATE INDEX octo_budget_sessions_wxid ON octo_budget_sessions (wxid);
    CREATE TABLE octo_budget_cost_states (
        session_id text NOT NULL,
        start_ms bigint NOT NULL,
        model text NOT NULL,
        end_ms bigint NOT NULL,
        cwd text NOT NULL,
        project text NOT NULL,
        input bigint NOT NULL,
        output bigint NOT NULL,
        cache_write_5m bigint NOT NULL,
        cache_write_1h bigint NOT NULL,
        cache_read bigint NOT NULL,
        web_search bigint NOT NULL,
        wxid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        PRIMARY KEY (start_ms, session_id, model, end_ms)
    );
    CREATE INDEX octo_budget_cost_states_wxid ON octo_budget_cost_states (wxid);
    CREATE TABLE octo_budget_session_links (
        a text NOT NULL,
        b text NOT NULL,
        wxid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        PRIMARY KEY (a, b)
    );
    CREATE INDEX octo_budget_session_links_wxid ON octo_budget_session_links (wxid);
    CREATE TABLE octo_budget_notices (
        scope text NOT NULL,
        cap text NOT NULL,
        period_start text NOT NULL,
        level text NOT NULL,
        host text NOT NULL,
        created_ms bigint NOT NULL,
        PRIMARY KEY (scope, cap, period_start, level)
    );
    ",
];

/// The cache's own tables and triggers (a one-machine ledger has none).
const CACHE_TABLES: &str = "
    CREATE TABLE team_pending (id INTEGER PRIMARY KEY);
    CREATE TABLE team_pending_sessions (session_id TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE team_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TRIGGER team_responses_insert AFTER INSERT ON responses
        BEGIN INSERT OR IGNORE INTO team_pending (id) VALUES (NEW.id); END;
    CREATE TRIGGER team_responses_update AFTER UPDATE ON responses
        BEGIN INSERT OR IGNORE INTO team_pending (id) VALUES (NEW.id); END;
    CREATE TRIGGER team_sessions_insert AFTER INSERT ON sessions
        BEGIN INSERT OR IGNORE INTO team_pending_sessions (session_id) VALUES (NEW.session_id); END;
    CREATE TRIGGER team_sessions_update AFTER UPDATE ON sessions
        BEGIN INSERT OR IGNORE INTO team_pending_sessions (session_id) VALUES (NEW.session_id); END;
    CREATE TABLE team_pending_costs (
        session_id TEXT NOT NULL, start_ms INTEGER NOT NULL, model TEXT NOT NULL, end_ms INTEGER NOT NULL,
        PRIMARY KEY (start_ms, session_id, model, end_ms)
    ) WITHOUT ROWID;
    CREATE TABLE team_pending_links (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
    CREATE TRIGGER team_costs_insert AFTER INSERT ON cost_states
        BEGIN INSERT OR IGNORE INTO team_pending_costs VALUES (NEW.session_id, NEW.start_ms, NEW.model, NEW.end_ms); END;
    CREATE TRIGGER team_costs_update AFTER UPDATE ON cost_states
        BEGIN INSERT OR IGNORE INTO team_pending_costs VALUES (NEW.session_id, NEW.start_ms, NEW.model, NEW.end_ms); END;
    CREATE TRIGGER team_links_insert AFTER INSERT ON session_links
        BEGIN INSERT OR IGNORE INTO team_pending_links (a, b) VALUES (NEW.a, NEW.b); END;
    INSERT INTO team_pending (id) SELECT id FROM responses;
    INSERT INTO team_pending_sessions (session_id) SELECT session_id FROM sessions;
    INSERT INTO team_pending_costs SELECT session_id, start_ms, model, end_ms FROM cost_states;
    INSERT INTO team_pending_links SELECT a, b FROM session_links;
";

/// True for a ledger value that names a PostgreSQL server.
pub fn is_uri(s: &str) -> bool {
    let l = s.trim_start().to_ascii_lowercase();
    l.starts_with("postgres://") || l.starts_with("postgresql://")
}

/// How the connection is encrypted (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// `disable`: plain TCP.
    Disable,
    /// `prefer` (libpq's default) or `require`: TLS when the server offers
    /// it (`require`: only), the certificate not verified (as libpq does
    /// without a root certificate).
    Encrypt { required: bool },
    /// `verify-ca`, `verify-full`: TLS, the certificate verified against
    /// `sslrootcert` (or the system's roots) and the host name.
    Verify,
}

/// A parsed team ledger URI (never holding a password).
#[derive(Debug, Clone)]
pub struct TeamUri {
    config: Config,
    tls: Tls,
    root_cert: Option<PathBuf>,
    /// The URI as given, to name the server in messages.
    pub display: String,
}

impl TeamUri {
    /// Parses a `postgres://` or `postgresql://` URI in libpq's syntax.
    /// A password in it is refused: it belongs in `PGPASSWORD` or
    /// `~/.pgpass`, not in budgets.yaml or settings.json.
    pub fn parse(uri: &str) -> std::result::Result<TeamUri, String> {
        let uri = uri.trim();
        let (base, query) = match uri.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (uri, None),
        };
        let rest = base.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Err(password_refused());
            }
        }
        let mut tls = Tls::Encrypt { required: false };
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "password" => return Err(password_refused()),
                "sslmode" => {
                    tls = match v.as_str() {
                        "disable" => Tls::Disable,
                        "allow" | "prefer" => Tls::Encrypt { required: false },
                        "require" => Tls::Encrypt { required: true },
                        "verify-ca" | "verify-full" => Tls::Verify,
                        other => return Err(format!("unknown sslmode `{other}` (disable, allow, prefer, require, verify-ca, verify-full)")),
                    };
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(v)),
                // libpq's client-certificate and password-file options are
                // not supported: say so rather than ignore them.
                "sslcert" | "sslkey" | "passfile" | "service" => {
                    return Err(format!("`{k}` is not supported in a team ledger URI"))
                }
                _ => kept.push(pair),
            }
        }
        let mut plain = base.to_string();
        if !kept.is_empty() {
            plain.push('?');
            plain.push_str(&kept.join("&"));
        }
        let config = Config::from_str(&plain).map_err(|e| e.to_string())?;
        if config.get_password().is_some() {
            return Err(password_refused());
        }
        Ok(TeamUri {
            config,
            tls,
            root_cert,
            display: uri.to_string(),
        })
    }

    /// The (host, port, database, user) that `~/.pgpass` is matched
    /// against, with libpq's defaults filled in from `user`.
    pub fn pgpass_key(&self, default_user: &str) -> (String, u16, String, String) {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(_)) | None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or(default_user).to_string();
        let db = self.config.get_dbname().unwrap_or(&user).to_string();
        (host, port, db, user)
    }
}

fn password_refused() -> String {
    "a password in the ledger URI is refused: put it in PGPASSWORD or ~/.pgpass (never in budgets.yaml or settings.json)".into()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password for (host, port, database, user) in the text of a
/// `~/.pgpass` file, as libpq reads it: one `host:port:database:user:password`
/// per line, `*` matching anything, `\:` and `\\` escaping, `#` comments,
/// the first matching line winning.
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim_start().starts_with('#') || line.is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let hit = |pat: &str, v: &str| pat == "*" || pat == v;
        if hit(&fields[0], host)
            && hit(&fields[1], &port)
            && hit(&fields[2], db)
            && hit(&fields[3], user)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// True when this working copy synced with its server at most `within_ms`
/// before `now_ms` (wall clock): `check` then answers from it (the team's
/// spend at most that old, this machine's own up to date).
pub fn synced_within(ledger: &Ledger, now_ms: i64, within_ms: i64) -> Result<bool> {
    if within_ms <= 0 {
        return Ok(false);
    }
    let last: Option<String> = ledger
        .conn
        .query_row(
            "SELECT value FROM team_state WHERE key = 'synced_ms'",
            [],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows | rusqlite::Error::SqliteFailure(..) => Ok(None),
            e => Err(e),
        })
        .map_err(|e| ledger.err(e))?;
    Ok(last
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|t| t <= now_ms && now_ms - t < within_ms))
}

/// What a sync moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub sent: usize,
    pub received: usize,
}

/// A connection to a team ledger.
pub struct Team {
    client: Client,
    server: String,
    host: String,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("server", &self.server)
            .finish()
    }
}

fn server_err(server: &str, detail: impl std::fmt::Display) -> LedgerError {
    LedgerError::Server {
        server: server.to_string(),
        detail: detail.to_string(),
    }
}

/// A PostgreSQL error as one line: the server's message when there is one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                let t = inner.to_string();
                if !s.contains(&t) {
                    s.push_str(": ");
                    s.push_str(&t);
                }
                src = inner.source();
            }
            s
        }
    }
}

fn code_of(e: &postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

impl Team {
    /// Connects, waiting at most `timeout` for the server; `password`
    /// from `PGPASSWORD` or `~/.pgpass`, `host` names this machine.
    pub fn connect(
        uri: &TeamUri,
        password: Option<&str>,
        default_user: &str,
        host: &str,
        timeout: Duration,
    ) -> Result<Team> {
        let server = uri.display.clone();
        let mut config = uri.config.clone();
        if config.get_user().is_none() {
            config.user(default_user);
        }
        if config.get_hosts().is_empty() {
            let socket = Path::new("/var/run/postgresql");
            if socket.is_dir() {
                config.host_path(socket);
            } else {
                config.host("localhost");
            }
        }
        if let Some(p) = password {
            config.password(p);
        }
        config.connect_timeout(timeout);
        config.application_name("octo-budget");
        let client = match uri.tls {
            Tls::Disable => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                config.connect(NoTls)
            }
            Tls::Encrypt { required } => {
                config.ssl_mode(if required {
                    postgres::config::SslMode::Require
                } else {
                    postgres::config::SslMode::Prefer
                });
                config.connect(tls_connector(None, false).map_err(|e| server_err(&server, e))?)
            }
            Tls::Verify => {
                config.ssl_mode(postgres::config::SslMode::Require);
                config.connect(
                    tls_connector(uri.root_cert.as_deref(), true)
                        .map_err(|e| server_err(&server, e))?,
                )
            }
        }
        .map_err(|e| server_err(&server, format!("cannot connect: {}", describe(&e))))?;
        Ok(Team {
            client,
            server,
            host: host.to_string(),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    fn err(&self, e: postgres::Error) -> LedgerError {
        server_err(&self.server, describe(&e))
    }

    /// Creates or migrates the server's schema under an advisory lock (so
    /// that machines starting together do it once); a newer schema than
    /// this binary knows is refused.
    pub fn migrate(&mut self) -> Result<()> {
        let server = self.server.clone();
        let err = |e: postgres::Error| server_err(&server, describe(&e));
        let mut tx = self.client.transaction().map_err(err)?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS octo_budget_meta (key text PRIMARY KEY, value text NOT NULL)"
        ))
        .map_err(err)?;
        let found: i64 = tx
            .query_opt(
                "SELECT value FROM octo_budget_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(err)?
            .map(|r| r.get::<_, String>(0).parse().unwrap_or(i64::MAX))
            .unwrap_or(0);
        if found > VERSION {
            return Err(too_new(&server, found));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let target = i as i64 + 1;
            if found < target {
                tx.batch_execute(sql).map_err(err)?;
                tx.execute(
                    "INSERT INTO octo_budget_meta (key, value) VALUES ('schema_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&target.to_string()],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Sends what the cache changed since the last sync and merges what the
    /// team wrote since then into it, holding the cache's write lock (one
    /// sync at a time per cache). One round trip when fewer than 4,000 rows
    /// changed here.
    /// `now_ms` (the wall clock) is recorded as the time of this sync (see
    /// [`synced_within`]).
    pub fn sync(&mut self, ledger: &mut Ledger, now_ms: i64) -> Result<SyncStats> {
        let conn_err = |l: &Ledger, e| l.err(e);
        ledger
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| conn_err(ledger, e))?;
        let res = self.sync_in_tx(ledger).and_then(|s| {
            ledger
                .conn
                .execute(
                    "INSERT INTO team_state (key, value) VALUES ('synced_ms', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [now_ms.to_string()],
                )
                .map_err(|e| ledger.err(e))?;
            Ok(s)
        });
        match res {
            Ok(s) => {
                if let Err(e) = ledger.conn.execute_batch("COMMIT") {
                    let _ = ledger.conn.execute_batch("ROLLBACK");
                    return Err(ledger.err(e));
                }
                // A large read from the server leaves a long WAL that every
                // later process (the hook) would read on opening.
                ledger.checkpoint_if_large();
                Ok(s)
            }
            Err(e) => {
                let _ = ledger.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn sync_in_tx(&mut self, ledger: &mut Ledger) -> Result<SyncStats> {
        let fresh: bool = ledger
            .conn
            .query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'team_pending')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| ledger.err(e))?;
        if fresh {
            // Everything read before this cache became one is sent.
            ledger
                .conn
                .execute_batch(CACHE_TABLES)
                .map_err(|e| ledger.err(e))?;
        }
        let cursor: String = ledger
            .conn
            .query_row(
                "SELECT value FROM team_state WHERE key = 'cursor'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok("0".to_string()),
                e => Err(e),
            })
            .map_err(|e| ledger.err(e))?;
        let mut stats = SyncStats::default();
        let mut read_only = false;
        let mut migrated = false;
        let mut retries = 0;
        loop {
            let (batch, more) = if read_only {
                (RemoteBatch::default(), false)
            } else {
                pending(ledger)?
            };
            let pull = !more;
            // Nothing to send: the plain read (a read-only role's only one).
            let result = if batch.is_empty() {
                self.pull_only(&cursor)
            } else {
                self.exchange(&batch, pull.then_some(cursor.as_str()))
            };
            let answer = match result {
                Ok(a) => a,
                Err(e) if !migrated && matches!(code_of(&e), Some("42P01")) => {
                    // No schema yet (undefined_table): create it, then retry.
                    self.migrate()?;
                    migrated = true;
                    continue;
                }
                Err(e) if !read_only && matches!(code_of(&e), Some("42501")) => {
                    // A read-only role (insufficient_privilege): only read;
                    // this machine's rows stay marked for a role that may write.
                    read_only = true;
                    continue;
                }
                Err(e) if retries < 5 && matches!(code_of(&e), Some("40P01") | Some("40001")) => {
                    // Deadlock or serialization failure: nothing was written.
                    retries += 1;
                    continue;
                }
                Err(e) => return Err(self.err(e)),
            };
            if answer.version > VERSION {
                return Err(too_new(&self.server, answer.version));
            }
            if answer.version < VERSION && !migrated {
                self.migrate()?;
                migrated = true;
                continue;
            }
            if !read_only {
                mark_sent(ledger, &batch)?;
                stats.sent += batch.len();
            }
            if pull {
                stats.received += answer.batch.len();
                let before = pending_keys(ledger)?;
                apply_remote(ledger, answer.batch)?;
                // What came down is on the server already: only what was
                // waiting before (a read-only role's own rows) stays marked.
                forget_new_marks(ledger, &before)?;
                ledger
                    .conn
                    .execute(
                        "INSERT INTO team_state (key, value) VALUES ('cursor', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        [&answer.cursor],
                    )
                    .map_err(|e| ledger.err(e))?;
                return Ok(stats);
            }
        }
    }

    /// One statement: upsert `batch`, and (with `cursor`) read back
    /// everything written at or after it.
    fn exchange(
        &mut self,
        batch: &RemoteBatch,
        cursor: Option<&str>,
    ) -> std::result::Result<Answer, postgres::Error> {
        let rows = &batch.responses;
        let col = |f: fn(&RemoteResponse) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let int = |f: fn(&RemoteResponse) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let flag = |f: fn(&RemoteResponse) -> bool| rows.iter().map(f).collect::<Vec<bool>>();
        let (mid, rid, sid, cwd, project, model, branch) = (
            col(|r| &r.message_id),
            col(|r| &r.request_id),
            col(|r| &r.session_id),
            col(|r| &r.cwd),
            col(|r| &r.project),
            col(|r| &r.model),
            col(|r| &r.branch),
        );
        let ts = int(|r| r.ts_ms);
        let (side, fast, geo, adv) = (
            flag(|r| r.sidechain),
            flag(|r| r.fast),
            flag(|r| r.us_geo),
            flag(|r| r.advisor),
        );
        let tok = tokens(rows.iter().map(|r| &r.usage));
        let s = &batch.sessions;
        let s_id: Vec<&str> = s.iter().map(|s| s.session_id.as_str()).collect();
        let s_cwd: Vec<&str> = s.iter().map(|s| s.cwd.as_str()).collect();
        let s_ts: Vec<i64> = s.iter().map(|s| s.first_ts).collect();
        let c = &batch.costs;
        let c_sid: Vec<&str> = c.iter().map(|c| c.session_id.as_str()).collect();
        let c_start: Vec<i64> = c.iter().map(|c| c.start_ms).collect();
        let c_model: Vec<&str> = c.iter().map(|c| c.model.as_str()).collect();
        let c_end: Vec<i64> = c.iter().map(|c| c.end_ms).collect();
        let c_cwd: Vec<&str> = c.iter().map(|c| c.cwd.as_str()).collect();
        let c_project: Vec<&str> = c.iter().map(|c| c.project.as_str()).collect();
        let c_tok = tokens(c.iter().map(|c| &c.usage));
        let l_a: Vec<&str> = batch.links.iter().map(|l| l.0.as_str()).collect();
        let l_b: Vec<&str> = batch.links.iter().map(|l| l.1.as_str()).collect();
        let pull = cursor.is_some();
        let cursor = cursor.unwrap_or("0");
        let host = self.host.as_str();
        let t = Type::TEXT_ARRAY;
        let i = Type::INT8_ARRAY;
        let b = Type::BOOL_ARRAY;
        let params: [(&(dyn ToSql + Sync), Type); 38] = [
            (&mid, t.clone()),
            (&rid, t.clone()),
            (&sid, t.clone()),
            (&cwd, t.clone()),
            (&project, t.clone()),
            (&model, t.clone()),
            (&ts, i.clone()),
            (&branch, t.clone()),
            (&side, b.clone()),
            (&fast, b.clone()),
            (&geo, b.clone()),
            (&adv, b.clone()),
            (&tok[0], i.clone()),
            (&tok[1], i.clone()),
            (&tok[2], i.clone()),
            (&tok[3], i.clone()),
            (&tok[4], i.clone()),
            (&tok[5], i.clone()),
            (&host, Type::TEXT),
            (&s_id, t.clone()),
            (&s_cwd, t.clone()),
            (&s_ts, i.clone()),
            (&cursor, Type::TEXT),
            (&pull, Type::BOOL),
            (&c_sid, t.clone()),
            (&c_start, i.clone()),
            (&c_model, t.clone()),
            (&c_end, i.clone()),
            (&c_cwd, t.clone()),
            (&c_project, t.clone()),
            (&c_tok[0], i.clone()),
            (&c_tok[1], i.clone()),
            (&c_tok[2], i.clone()),
            (&c_tok[3], i.clone()),
            (&c_tok[4], i.clone()),
            (&c_tok[5], i.clone()),
            (&l_a, t.clone()),
            (&l_b, t.clone()),
        ];
        let got = self.client.query_typed(&sync_sql(), &params)?;
        Ok(answer_of(got))
    }

    /// The read alone (nothing to send, or a role that may only read).
    fn pull_only(&mut self, cursor: &str) -> std::result::Result<Answer, postgres::Error> {
        let got = self
            .client
            .query_typed(&pull_sql(), &[(&cursor, Type::TEXT), (&true, Type::BOOL)])?;
        Ok(answer_of(got))
    }
}

/// The six token columns of some usages, as arrays.
fn tokens<'a>(usages: impl Iterator<Item = &'a Usage>) -> [Vec<i64>; 6] {
    let mut out: [Vec<i64>; 6] = Default::default();
    for u in usages {
        for (col, v) in out.iter_mut().zip([
            u.input,
            u.output,
            u.cache_write_5m,
            u.cache_write_1h,
            u.cache_read,
            u.web_search,
        ]) {
            col.push(v as i64);
        }
    }
    out
}

fn usage_of(r: &postgres::Row, first: usize) -> Usage {
    let t = |i: usize| r.get::<_, Option<i64>>(first + i).unwrap_or(0).max(0) as u64;
    Usage {
        input: t(0),
        output: t(1),
        cache_write_5m: t(2),
        cache_write_1h: t(3),
        cache_read: t(4),
        web_search: t(5),
    }
}

fn answer_of(got: Vec<postgres::Row>) -> Answer {
    let mut answer = Answer {
        version: 0,
        cursor: "0".into(),
        batch: RemoteBatch::default(),
    };
    let text = |r: &postgres::Row, i: usize| r.get::<_, Option<String>>(i).unwrap_or_default();
    let int = |r: &postgres::Row, i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0);
    let flag = |r: &postgres::Row, i: usize| r.get::<_, Option<bool>>(i).unwrap_or(false);
    for r in got {
        let kind: i32 = r.get(0);
        match kind {
            0 => {
                answer.version = text(&r, 1).parse().unwrap_or(0);
                answer.cursor = text(&r, 2);
            }
            1 => answer.batch.responses.push(RemoteResponse {
                message_id: text(&r, 1),
                request_id: text(&r, 2),
                session_id: text(&r, 3),
                cwd: text(&r, 4),
                project: text(&r, 5),
                model: text(&r, 6),
                branch: text(&r, 7),
                ts_ms: int(&r, 8),
                sidechain: flag(&r, 9),
                fast: flag(&r, 10),
                us_geo: flag(&r, 11),
                advisor: flag(&r, 12),
                usage: usage_of(&r, 13),
            }),
            2 => answer.batch.sessions.push(RemoteSession {
                session_id: text(&r, 3),
                cwd: text(&r, 4),
                first_ts: int(&r, 8),
            }),
            3 => answer.batch.costs.push(RemoteCost {
                session_id: text(&r, 3),
                cwd: text(&r, 4),
                project: text(&r, 5),
                model: text(&r, 6),
                start_ms: int(&r, 8),
                end_ms: int(&r, 19),
                usage: usage_of(&r, 13),
            }),
            _ => answer.batch.links.push((text(&r, 3), text(&r, 4))),
        }
    }
    answer
}

impl Team {
    /// Which of `keys` some machine of the team has claimed already.
    pub fn alerts_known(&mut self, keys: &[AlertKey]) -> Result<HashSet<AlertKey>> {
        let (scope, cap, start, level) = key_columns(keys);
        let rows = self
            .client
            .query_typed(
                "SELECT n.scope, n.cap, n.period_start, n.level
                 FROM octo_budget_notices n
                 JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k (scope, cap, period_start, level)
                   USING (scope, cap, period_start, level)",
                &[
                    (&scope, Type::TEXT_ARRAY),
                    (&cap, Type::TEXT_ARRAY),
                    (&start, Type::TEXT_ARRAY),
                    (&level, Type::TEXT_ARRAY),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(key_of).collect())
    }

    /// Claims `keys` for this machine: returns those whose unique insert
    /// won (no other machine, and no earlier run, had claimed them).
    pub fn claim_alerts(&mut self, keys: &[AlertKey], now_ms: i64) -> Result<HashSet<AlertKey>> {
        let (scope, cap, start, level) = key_columns(keys);
        let host = self.host.clone();
        let rows = self
            .client
            .query_typed(
                "INSERT INTO octo_budget_notices (scope, cap, period_start, level, host, created_ms)
                 SELECT k.*, $5, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k
                 ON CONFLICT DO NOTHING
                 RETURNING scope, cap, period_start, level",
                &[
                    (&scope, Type::TEXT_ARRAY),
                    (&cap, Type::TEXT_ARRAY),
                    (&start, Type::TEXT_ARRAY),
                    (&level, Type::TEXT_ARRAY),
                    (&host, Type::TEXT),
                    (&now_ms, Type::INT8),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(key_of).collect())
    }
}

fn key_columns(keys: &[AlertKey]) -> (Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>) {
    (
        keys.iter().map(|k| k.scope.as_str()).collect(),
        keys.iter().map(|k| k.cap.as_str()).collect(),
        keys.iter().map(|k| k.period_start.as_str()).collect(),
        keys.iter().map(|k| k.level.as_str()).collect(),
    )
}

fn key_of(r: &postgres::Row) -> AlertKey {
    AlertKey {
        scope: r.get(0),
        cap: r.get(1),
        period_start: r.get(2),
        level: r.get(3),
    }
}

fn too_new(server: &str, found: i64) -> LedgerError {
    LedgerError::TooNew {
        path: PathBuf::from(server),
        found,
        supported: VERSION,
    }
}

struct Answer {
    version: i64,
    cursor: String,
    batch: RemoteBatch,
}

/// The columns every row of a sync's answer has: kind (0 the header, 1 a
/// response, 2 a session, 3 a cost-state, 4 a session link), seven texts,
/// a timestamp, four flags, six token counts and a second timestamp.
const NULLS_AFTER_KIND: &str =
    "NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
       NULL::int8, NULL::bool, NULL::bool, NULL::bool, NULL::bool,
       NULL::int8, NULL::int8, NULL::int8, NULL::int8, NULL::int8, NULL::int8, NULL::int8";

/// Reading back, at or after the cursor `$23` when `$24`: one arm of the
/// answer per table.
fn pulls() -> String {
    "
UNION ALL
SELECT 1, message_id, request_id, session_id, cwd, project, model, branch, ts_ms, sidechain, fast, us_geo, advisor,
       input, output, cache_write_5m, cache_write_1h, cache_read, web_search, NULL
FROM octo_budget_responses WHERE $24 AND wxid >= $23::xid8
UNION ALL
SELECT 2, NULL, NULL, session_id, cwd, NULL, NULL, NULL, first_ts, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM octo_budget_sessions WHERE $24 AND wxid >= $23::xid8
UNION ALL
SELECT 3, NULL, NULL, session_id, cwd, project, model, NULL, start_ms, NULL, NULL, NULL, NULL,
       input, output, cache_write_5m, cache_write_1h, cache_read, web_search, end_ms
FROM octo_budget_cost_states WHERE $24 AND wxid >= $23::xid8
UNION ALL
SELECT 4, NULL, NULL, a, b, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM octo_budget_session_links WHERE $24 AND wxid >= $23::xid8
"
    .to_string()
}

/// The header row: the server's schema version and the snapshot's xmin
/// (the next cursor).
const HEADER: &str = "SELECT 0, (SELECT value FROM octo_budget_meta WHERE key = 'schema_version'),
       pg_snapshot_xmin(pg_current_snapshot())::text";

/// The read alone; `$1`/`$2` stand for the cursor and the flag.
fn pull_sql() -> String {
    format!(
        "{HEADER}, {}\n{}",
        &NULLS_AFTER_KIND["NULL::text, NULL::text, ".len()..],
        pulls()
    )
    .replace("$23", "$1")
    .replace("$24", "$2")
}

/// The sync statement: the upserts are data-modifying CTEs, so sending,
/// reading back and the schema version are one round trip. The `WHERE` of
/// each `DO UPDATE` leaves a row that nothing raises untouched (its `wxid`
/// stays, so it is not sent to everybody again).
fn sync_sql() -> String {
    format!(
        "{UPSERTS}\n{HEADER}, {}\n{}",
        &NULLS_AFTER_KIND["NULL::text, NULL::text, ".len()..],
        pulls()
    )
}

const UPSERTS: &str = "
WITH up AS (
    INSERT INTO octo_budget_responses AS t (message_id, request_id, session_id, cwd, project, model, ts_ms, branch,
        sidechain, fast, us_geo, advisor, input, output, cache_write_5m, cache_write_1h, cache_read, web_search, host)
    SELECT u.*, $19 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
        $8::text[], $9::bool[], $10::bool[], $11::bool[], $12::bool[], $13::int8[], $14::int8[], $15::int8[],
        $16::int8[], $17::int8[], $18::int8[]) AS u
    ON CONFLICT (message_id, request_id) DO UPDATE SET
        input = GREATEST(t.input, excluded.input),
        output = GREATEST(t.output, excluded.output),
        cache_write_5m = GREATEST(t.cache_write_5m, excluded.cache_write_5m),
        cache_write_1h = GREATEST(t.cache_write_1h, excluded.cache_write_1h),
        cache_read = GREATEST(t.cache_read, excluded.cache_read),
        web_search = GREATEST(t.web_search, excluded.web_search),
        sidechain = t.sidechain AND excluded.sidechain,
        branch = CASE WHEN t.branch = '' THEN excluded.branch ELSE t.branch END,
        wxid = pg_current_xact_id()
    WHERE excluded.input > t.input OR excluded.output > t.output
       OR excluded.cache_write_5m > t.cache_write_5m OR excluded.cache_write_1h > t.cache_write_1h
       OR excluded.cache_read > t.cache_read OR excluded.web_search > t.web_search
       OR (t.sidechain AND NOT excluded.sidechain) OR (t.branch = '' AND excluded.branch <> '')
    RETURNING 1
), ses AS (
    INSERT INTO octo_budget_sessions AS t (session_id, cwd, first_ts)
    SELECT * FROM unnest($20::text[], $21::text[], $22::int8[])
    ON CONFLICT (session_id) DO UPDATE SET cwd = excluded.cwd, first_ts = excluded.first_ts,
        wxid = pg_current_xact_id()
    WHERE (excluded.first_ts, excluded.cwd) < (t.first_ts, t.cwd)
    RETURNING 1
), cost AS (
    INSERT INTO octo_budget_cost_states AS t (session_id, start_ms, model, end_ms, cwd, project,
        input, output, cache_write_5m, cache_write_1h, cache_read, web_search)
    SELECT * FROM unnest($25::text[], $26::int8[], $27::text[], $28::int8[], $29::text[], $30::text[],
        $31::int8[], $32::int8[], $33::int8[], $34::int8[], $35::int8[], $36::int8[])
    ON CONFLICT (start_ms, session_id, model, end_ms) DO UPDATE SET
        input = GREATEST(t.input, excluded.input),
        output = GREATEST(t.output, excluded.output),
        cache_write_5m = GREATEST(t.cache_write_5m, excluded.cache_write_5m),
        cache_write_1h = GREATEST(t.cache_write_1h, excluded.cache_write_1h),
        cache_read = GREATEST(t.cache_read, excluded.cache_read),
        web_search = GREATEST(t.web_search, excluded.web_search),
        wxid = pg_current_xact_id()
    WHERE excluded.input > t.input OR excluded.output > t.output
       OR excluded.cache_write_5m > t.cache_write_5m OR excluded.cache_write_1h > t.cache_write_1h
       OR excluded.cache_read > t.cache_read OR excluded.web_search > t.web_search
    RETURNING 1
), link AS (
    INSERT INTO octo_budget_session_links (a, b)
    SELECT * FROM unnest($37::text[], $38::text[])
    ON CONFLICT DO NOTHING
    RETURNING 1
)";

/// The cache's changed rows not yet sent (at most [`CHUNK`] responses),
/// sorted by key (concurrent upserts in one order do not deadlock), and
/// whether more are waiting.
fn pending(ledger: &Ledger) -> Result<(RemoteBatch, bool)> {
    let err = |e| ledger.err(e);
    let mut st = ledger
        .conn
        .prepare_cached(
            "SELECT r.message_id, r.request_id, r.session_id, p.cwd, p.project, r.model, r.branch, r.ts_ms,
                    r.sidechain, r.fast, r.us_geo, r.advisor,
                    r.input, r.output, r.cache_write_5m, r.cache_write_1h, r.cache_read, r.web_search
             FROM team_pending q JOIN responses r ON r.id = q.id JOIN places p ON p.id = r.place_id
             ORDER BY q.id LIMIT ?1",
        )
        .map_err(err)?;
    let mut rows = st
        .query_map([CHUNK as i64 + 1], |r| {
            Ok(RemoteResponse {
                message_id: r.get(0)?,
                request_id: r.get(1)?,
                session_id: r.get(2)?,
                cwd: r.get(3)?,
                project: r.get(4)?,
                model: r.get(5)?,
                branch: r.get(6)?,
                ts_ms: r.get(7)?,
                sidechain: r.get(8)?,
                fast: r.get(9)?,
                us_geo: r.get(10)?,
                advisor: r.get(11)?,
                usage: super::usage_at(r, 12)?,
            })
        })
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(err)?;
    let more = rows.len() > CHUNK;
    rows.truncate(CHUNK);
    rows.sort_by(|a, b| (&a.message_id, &a.request_id).cmp(&(&b.message_id, &b.request_id)));
    let mut batch = RemoteBatch {
        responses: rows,
        ..RemoteBatch::default()
    };
    if more {
        return Ok((batch, true));
    }
    let mut st = ledger
        .conn
        .prepare_cached(
            "SELECT s.session_id, s.cwd, s.first_ts FROM team_pending_sessions q
             JOIN sessions s ON s.session_id = q.session_id ORDER BY s.session_id",
        )
        .map_err(err)?;
    batch.sessions = st
        .query_map([], |r| {
            Ok(RemoteSession {
                session_id: r.get(0)?,
                cwd: r.get(1)?,
                first_ts: r.get(2)?,
            })
        })
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(err)?;
    let mut st = ledger
        .conn
        .prepare_cached(
            "SELECT c.session_id, c.start_ms, c.model, c.end_ms, p.cwd, p.project,
                    c.input, c.output, c.cache_write_5m, c.cache_write_1h, c.cache_read, c.web_search
             FROM team_pending_costs q
             JOIN cost_states c ON c.session_id = q.session_id AND c.start_ms = q.start_ms
                  AND c.model = q.model AND c.end_ms = q.end_ms
             JOIN places p ON p.id = c.place_id
             ORDER BY c.start_ms, c.session_id, c.model, c.end_ms",
        )
        .map_err(err)?;
    batch.costs = st
        .query_map([], |r| {
            Ok(RemoteCost {
                session_id: r.get(0)?,
                start_ms: r.get(1)?,
                model: r.get(2)?,
                end_ms: r.get(3)?,
                cwd: r.get(4)?,
                project: r.get(5)?,
                usage: super::usage_at(r, 6)?,
            })
        })
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(err)?;
    let mut st = ledger
        .conn
        .prepare_cached("SELECT a, b FROM team_pending_links ORDER BY a, b")
        .map_err(err)?;
    batch.links = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(err)?;
    Ok((batch, false))
}

/// The marks waiting before a read is applied.
struct Marks {
    responses: HashSet<i64>,
    others: i64,
}

fn pending_keys(ledger: &Ledger) -> Result<Marks> {
    let err = |e| ledger.err(e);
    let mut st = ledger
        .conn
        .prepare_cached("SELECT id FROM team_pending")
        .map_err(err)?;
    let responses = st
        .query_map([], |r| r.get(0))
        .and_then(|it| it.collect::<std::result::Result<HashSet<i64>, _>>())
        .map_err(err)?;
    let others: i64 = ledger
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM team_pending_sessions) + (SELECT count(*) FROM team_pending_costs)
                  + (SELECT count(*) FROM team_pending_links)",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    Ok(Marks { responses, others })
}

/// Drops the marks that applying the server's rows added (they are on the
/// server already). When nothing else was waiting (every writer's case
/// after its upserts), all marks go.
fn forget_new_marks(ledger: &Ledger, before: &Marks) -> Result<()> {
    let err = |e| ledger.err(e);
    if before.responses.is_empty() && before.others == 0 {
        return ledger
            .conn
            .execute_batch(
                "DELETE FROM team_pending; DELETE FROM team_pending_sessions;
                 DELETE FROM team_pending_costs; DELETE FROM team_pending_links",
            )
            .map_err(err);
    }
    // A read-only role's own rows wait for a role that may write; the
    // server's rows it merged (rarely the same keys) are sent again then,
    // which merges to the same values.
    let now = pending_keys(ledger)?;
    let mut del = ledger
        .conn
        .prepare_cached("DELETE FROM team_pending WHERE id = ?1")
        .map_err(err)?;
    for id in now.responses.difference(&before.responses) {
        del.execute([id]).map_err(err)?;
    }
    Ok(())
}

fn mark_sent(ledger: &Ledger, batch: &RemoteBatch) -> Result<()> {
    let err = |e| ledger.err(e);
    let mut del = ledger
        .conn
        .prepare_cached(
            "DELETE FROM team_pending WHERE id IN
                (SELECT id FROM responses WHERE message_hash = ?3 AND message_id = ?1 AND request_id = ?2)",
        )
        .map_err(err)?;
    for r in &batch.responses {
        let hash = super::schema::message_hash(&r.message_id);
        del.execute(params![r.message_id, r.request_id, hash])
            .map_err(err)?;
    }
    let mut del = ledger
        .conn
        .prepare_cached("DELETE FROM team_pending_sessions WHERE session_id = ?1")
        .map_err(err)?;
    for s in &batch.sessions {
        del.execute([&s.session_id]).map_err(err)?;
    }
    let mut del = ledger
        .conn
        .prepare_cached(
            "DELETE FROM team_pending_costs WHERE session_id = ?1 AND start_ms = ?2 AND model = ?3 AND end_ms = ?4",
        )
        .map_err(err)?;
    for c in &batch.costs {
        del.execute(params![c.session_id, c.start_ms, c.model, c.end_ms])
            .map_err(err)?;
    }
    let mut del = ledger
        .conn
        .prepare_cached("DELETE FROM team_pending_links WHERE a = ?1 AND b = ?2")
        .map_err(err)?;
    for (a, b) in &batch.links {
        del.execute([a, b]).map_err(err)?;
    }
    Ok(())
}

/// The TLS connector: with `verify`, the server's certificate must chain
/// to `root_cert` (else the system's roots) and name the host.
fn tls_connector(
    root_cert: Option<&Path>,
    verify: bool,
) -> std::result::Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                for cert in rustls_pki_types_pem(&pem)? {
                    roots.add(cert).map_err(|e| e.to_string())?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn rustls_pki_types_pem(
    pem: &[u8],
) -> std::result::Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert: {e:?}"))
}

/// `sslmode=require`/`prefer`: encrypted, the certificate not checked (as
/// libpq without a root certificate); signatures are still verified.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_recognised_and_passwords_refused() {
        assert!(is_uri("postgres://h/db"));
        assert!(is_uri("postgresql://h/db"));
        assert!(!is_uri("/var/lib/ledger.sqlite"));
        let u = TeamUri::parse("postgresql://ob@db.example:6543/budget?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
            .unwrap();
        assert_eq!(u.tls, Tls::Verify);
        assert_eq!(u.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            u.pgpass_key("me"),
            ("db.example".into(), 6543, "budget".into(), "ob".into())
        );
        let sock = TeamUri::parse("postgresql:///budget?host=/var/run/postgresql").unwrap();
        assert_eq!(
            sock.pgpass_key("me"),
            ("localhost".into(), 5432, "budget".into(), "me".into())
        );
        assert!(TeamUri::parse("postgres://ob:secret@h/db")
            .unwrap_err()
            .contains("PGPASSWORD"));
        assert!(TeamUri::parse("postgres://h/db?password=secret").is_err());
        assert!(TeamUri::parse("postgres://h/db?sslmode=bogus").is_err());
        assert_eq!(
            TeamUri::parse("postgres://h/db?sslmode=disable")
                .unwrap()
                .tls,
            Tls::Disable
        );
    }

    #[test]
    fn pgpass_follows_libpq() {
        let text =
            "# comment\nother:5432:*:ob:no\ndb\\:x:*:budget:ob:p\\:w\\\\d\n*:*:*:ob:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "db:x", 5432, "budget", "ob").as_deref(),
            Some("p:w\\d")
        );
        assert_eq!(
            pgpass_lookup(text, "db", 1, "x", "ob").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            pgpass_lookup(text, "other", 5432, "x", "ob").as_deref(),
            Some("no")
        );
        assert_eq!(
            pgpass_lookup(text, "other", 5433, "x", "ob").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup(text, "db", 5432, "x", "someone"), None);
    }
}
