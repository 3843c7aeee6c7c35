//! The resident helper: `check --resident` and `statusline --resident` hand
//! their call to a helper process (`octo-budget resident`) that keeps the
//! ledger open between calls. A call then costs a process start and one
//! round trip instead of opening the ledger (SQLite reads the schema and
//! the write-ahead log's index, and prepares every statement, on every
//! connection). The helper runs the same code on the same files with the
//! client's flags, environment, working folder and clock: the answer is
//! the one the client would have given itself.
//!
//! One helper per user and executable: a socket in `$XDG_RUNTIME_DIR/
//! octo-budget/` (else `/tmp/octo-budget-<uid>/`), a folder only the user
//! may enter, named after the executable's device, inode and mtime. The
//! first call finds no helper, answers in its own process, then starts one.
//! The helper serves one call at a time and ends after [`IDLE`] without a
//! call, when its socket is removed or replaced, when its executable is
//! replaced, or when a call takes longer than [`STUCK`].
//!
//! Trust: both ends check that the other runs as the same user
//! (`SO_PEERCRED`), and the client checks that the helper runs this very
//! executable (`/proc/<pid>/exe`: device and inode), so that a program
//! listening on the socket cannot answer for it. Anything short of a full
//! answer (no helper, a refusal, a team ledger, a broken connection, a
//! helper that does not start the call within [`FIRST_ANSWER`]) and the
//! client answers in its own process; what the helper did until then (new
//! transcript bytes read into the ledger) is what the client does again.
//! The client keeps its own deadline and signal handlers (`guard`) for the
//! whole call.
//!
//! Protocol (frames: a tag byte, a little-endian u32 length, the bytes):
//!
//! ```text
//! client -> helper  Q  the request: command, flags, environment (no secrets), clock (JSON)
//!                   I  stdin (statusline: right after Q)
//!                   A  the warning in R was shown: record it as given
//! helper -> client  D  declined: answer in your own process
//!                   L  check: the config loaded; 1 byte, 1 if a failure allows
//!                   R  the answer: exit code, stdout, stderr, warned (JSON)
//! ```

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use octo_budget::ledger::Ledger;
use serde::{Deserialize, Serialize};

use super::{check, guard, statusline, Context};
use crate::cli::{Environment, Global};
use crate::error::Result;
use crate::exit;

/// A helper without a call for this long ends.
pub const IDLE: Duration = Duration::from_secs(300);
/// How often an idle helper looks at its socket and executable.
const TICK: Duration = Duration::from_secs(1);
/// A call the helper has worked on for this long means it is stuck (its
/// client answered at its own deadline): the helper ends.
const STUCK: Duration = Duration::from_secs(20);
/// How long a client waits for the helper to start on its call (it may be
/// finishing another one) before answering in its own process.
const FIRST_ANSWER: Duration = Duration::from_millis(1_500);
/// How long the helper waits for a client's next frame.
const CLIENT_WAIT: Duration = Duration::from_secs(2);
/// The largest frame either side accepts (stdin is at most 64 MiB).
const MAX_FRAME: usize = 80 << 20;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Live {
    Check,
    Statusline,
}

/// What a client sends: everything its own process would have used.
#[derive(Serialize, Deserialize)]
struct Request {
    command: Live,
    global: Global,
    env: Environment,
    now: DateTime<Utc>,
    /// Microseconds since the client started (its reading budget counts
    /// from then).
    elapsed_us: u64,
    /// Whether the client's stdout is a terminal (colours).
    tty: bool,
}

/// What the helper answers.
#[derive(Serialize, Deserialize)]
struct Answer {
    code: u8,
    stdout: String,
    stderr: String,
    /// `stdout` is a warning to record as given once shown (frame A).
    warned: bool,
}

// ---------------------------------------------------------------- client

/// `check --resident`: the answer of the helper, else of this process.
pub fn check(ctx: &Context) -> u8 {
    match connect(ctx) {
        Reached::Helper(mut s) => match ask_check(ctx, &mut s) {
            Asked::Answered(code) => code,
            Asked::Declined(input) => {
                // As in a call of its own: until this process has loaded the
                // config, a failure refuses (whatever the helper's said).
                guard::set_on_error_allow(false);
                check::run(ctx, input)
            }
        },
        Reached::Nobody(sock) => {
            let code = check::run(ctx, None);
            start_helper(&sock);
            code
        }
        Reached::Unusable => check::run(ctx, None),
    }
}

/// `statusline --resident`: the line of the helper, else of this process.
pub fn statusline(ctx: &Context) -> String {
    let input = statusline::read_input();
    let Ok(bytes) = &input else {
        return statusline::in_process(ctx, Some(input));
    };
    match connect(ctx) {
        Reached::Helper(mut s) => match ask_statusline(ctx, &mut s, bytes) {
            Some(line) => line,
            None => statusline::in_process(ctx, Some(input)),
        },
        Reached::Nobody(sock) => {
            let line = statusline::in_process(ctx, Some(input));
            start_helper(&sock);
            line
        }
        Reached::Unusable => statusline::in_process(ctx, Some(input)),
    }
}

enum Reached {
    /// A helper running this executable, as this user.
    Helper(UnixStream),
    /// No helper listens on this socket: start one.
    Nobody(PathBuf),
    /// No private folder for the socket, or something else listens on it.
    Unusable,
}

enum Asked {
    Answered(u8),
    /// Answer in this process, with stdin if it was read already.
    Declined(Option<Result<Vec<u8>>>),
}

fn connect(ctx: &Context) -> Reached {
    let Ok(exe) = std::fs::metadata("/proc/self/exe") else {
        return Reached::Unusable;
    };
    let Some(sock) = socket_path(&ctx.env, &exe) else {
        return Reached::Unusable;
    };
    match connect_now(&sock) {
        // A helper that stops reading (a large stdin) is not waited for
        // either.
        Ok(s)
            if runs_this_executable(&s, (exe.dev(), exe.ino()))
                && s.set_nonblocking(false).is_ok()
                && s.set_write_timeout(Some(FIRST_ANSWER)).is_ok() =>
        {
            Reached::Helper(s)
        }
        Ok(_) => Reached::Unusable,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::CONNREFUSED) => Reached::Nobody(sock),
        // EAGAIN: the helper's queue of connections is full (it is stuck).
        Err(_) => Reached::Unusable,
    }
}

/// Connects to `sock` without waiting: a helper that accepts no more
/// connections (its queue full) is not waited for.
fn connect_now(sock: &Path) -> rustix::io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(sock)?)?;
    Ok(UnixStream::from(fd))
}

/// The peer runs as this user, its executable is this one, and it sees
/// the same files (the same mount namespace: paths in the request name
/// the same files there).
fn runs_this_executable(s: &UnixStream, exe: FileId) -> bool {
    let Some(pid) = same_user_peer(s) else {
        return false;
    };
    file_id(Path::new(&format!("/proc/{pid}/exe"))) == Some(exe)
        && file_id(Path::new("/proc/self/ns/mnt"))
            .is_some_and(|ns| file_id(Path::new(&format!("/proc/{pid}/ns/mnt"))) == Some(ns))
}

/// The process at the other end of `s` when it runs as this user
/// (`SO_PEERCRED`); None elsewhere than on Linux, where the helper is then
/// never used.
#[cfg(target_os = "linux")]
fn same_user_peer(s: &UnixStream) -> Option<i32> {
    let cred = rustix::net::sockopt::socket_peercred(s).ok()?;
    (cred.uid == rustix::process::geteuid()).then(|| cred.pid.as_raw_nonzero().get())
}

#[cfg(not(target_os = "linux"))]
fn same_user_peer(_: &UnixStream) -> Option<i32> {
    None
}

fn request(ctx: &Context, command: Live) -> Vec<u8> {
    use std::io::IsTerminal;
    let r = Request {
        command,
        global: ctx.global.clone(),
        env: ctx.env.clone(),
        now: ctx.now,
        elapsed_us: ctx.started.elapsed().as_micros() as u64,
        tty: std::io::stdout().is_terminal(),
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

fn ask_check(ctx: &Context, s: &mut UnixStream) -> Asked {
    if send(s, b'Q', &request(ctx, Live::Check)).is_err()
        || s.set_read_timeout(Some(FIRST_ANSWER)).is_err()
    {
        return Asked::Declined(None);
    }
    match recv(s) {
        Ok((b'L', allow)) => guard::set_on_error_allow(allow == [1]),
        // The config did not load: the answer is the failure's.
        Ok((b'R', body)) => {
            return answered(s, &body).map_or(Asked::Declined(None), Asked::Answered)
        }
        _ => return Asked::Declined(None),
    }
    // stdin only now, as in this process: the config first.
    let input = match check::read_input() {
        Ok(i) => i,
        Err(e) => {
            let r = check::failure(&e, guard::on_error_allow());
            return Asked::Answered(check::deliver(r.code, &r.stdout, &r.stderr).0);
        }
    };
    if send(s, b'I', &input).is_err() || s.set_read_timeout(None).is_err() {
        return Asked::Declined(Some(Ok(input)));
    }
    match recv(s) {
        Ok((b'R', body)) => match answered(s, &body) {
            Some(code) => Asked::Answered(code),
            None => Asked::Declined(Some(Ok(input))),
        },
        _ => Asked::Declined(Some(Ok(input))),
    }
}

/// Gives the helper's answer (see [`check::deliver`]); acknowledges a
/// warning once it was shown. None for an answer that does not parse.
fn answered(s: &mut UnixStream, body: &[u8]) -> Option<u8> {
    let a: Answer = serde_json::from_slice(body).ok()?;
    let (code, shown) = check::deliver(a.code, &a.stdout, &a.stderr);
    if a.warned && shown {
        let _ = send(s, b'A', &[]);
    }
    Some(code)
}

fn ask_statusline(ctx: &Context, s: &mut UnixStream, input: &[u8]) -> Option<String> {
    send(s, b'Q', &request(ctx, Live::Statusline)).ok()?;
    send(s, b'I', input).ok()?;
    s.set_read_timeout(Some(FIRST_ANSWER)).ok()?;
    match recv(s).ok()? {
        (b'R', body) => serde_json::from_slice::<Answer>(&body)
            .ok()
            .map(|a| a.stdout),
        _ => None,
    }
}

/// Starts a helper on `sock`, in the background, in a process group of its
/// own, with no standard streams (Claude Code waits for the hook's to close)
/// and no environment (each call brings its own).
fn start_helper(sock: &Path) {
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    // /proc/self/exe: this very file, even if its path was replaced since.
    let _ = std::process::Command::new("/proc/self/exe")
        .arg0(me)
        .arg("resident")
        .arg("--socket")
        .arg(sock)
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

/// The socket of the helper running `exe`, in a folder of this user's that
/// no one else may enter (made if missing); None when there is none.
fn socket_path(env: &Environment, exe: &std::fs::Metadata) -> Option<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let dir = match env.xdg_runtime_dir.as_ref().filter(|d| d.is_absolute()) {
        Some(d) => d.join("octo-budget"),
        None => PathBuf::from(format!("/tmp/octo-budget-{uid}")),
    };
    let m = match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
            std::fs::symlink_metadata(&dir).ok()?
        }
        m => m.ok()?,
    };
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return None;
    }
    let sock = dir.join(format!(
        "{:x}-{:x}-{:x}.{:x}.sock",
        exe.dev(),
        exe.ino(),
        exe.mtime(),
        exe.mtime_nsec()
    ));
    // A socket's path holds at most 107 bytes.
    (sock.as_os_str().len() <= MAX_SOCKET_PATH).then_some(sock)
}

/// The longest path a Unix socket may have (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

// ---------------------------------------------------------------- helper

/// `octo-budget resident --socket PATH`: serves calls until idle.
pub fn serve(socket: &Path) -> Result<u8> {
    std::panic::set_hook(Box::new(|_| {}));
    guard::ignore(libc::SIGHUP);
    guard::ignore(libc::SIGINT);
    // One helper per socket: the one holding the lock for its life.
    let mut lock_path = socket.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(exit::OK);
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    listener.set_nonblocking(true)?;
    let bound = file_id(socket);
    let exe: FileId = std::fs::metadata("/proc/self/exe").map(|m| (m.dev(), m.ino()))?;
    let exe_path = std::fs::read_link("/proc/self/exe")?;
    KEEPING.store(true, Ordering::SeqCst);
    let start = Instant::now();
    std::thread::spawn(move || watchdog(start));
    let mut last = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                BUSY_SINCE.store(start.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
                let served =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_one(stream)));
                BUSY_SINCE.store(0, Ordering::SeqCst);
                if served.is_err() {
                    // Its client answers in its own process (the connection
                    // closed); this helper, in an unknown state, ends.
                    KEPT.with(|k| k.borrow_mut().take());
                    break;
                }
                last = Instant::now();
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        let replaced = file_id(&exe_path) != Some(exe);
        if last.elapsed() >= IDLE || file_id(socket) != bound || replaced {
            break;
        }
        let mut fds = [rustix::event::PollFd::new(
            &listener,
            rustix::event::PollFlags::IN,
        )];
        let tick = rustix::event::Timespec {
            tv_sec: TICK.as_secs() as _,
            tv_nsec: 0,
        };
        let _ = rustix::event::poll(&mut fds, Some(&tick));
    }
    if file_id(socket) == bound {
        let _ = std::fs::remove_file(socket);
    }
    Ok(exit::OK)
}

/// Milliseconds since the helper started at which its current call
/// started, plus one; 0 while idle.
static BUSY_SINCE: AtomicU64 = AtomicU64::new(0);

/// Ends the helper when a call takes longer than [`STUCK`].
fn watchdog(start: Instant) {
    loop {
        std::thread::sleep(TICK);
        let since = BUSY_SINCE.load(Ordering::SeqCst);
        let now = start.elapsed().as_millis() as u64 + 1;
        if since != 0 && now.saturating_sub(since) > STUCK.as_millis() as u64 {
            // SAFETY: _exit ends the process; nothing is left half-written
            // that SQLite's journal does not undo.
            unsafe { libc::_exit(70) }
        }
    }
}

fn serve_one(mut s: UnixStream) {
    if same_user_peer(&s).is_none()
        || s.set_nonblocking(false).is_err()
        || s.set_read_timeout(Some(CLIENT_WAIT)).is_err()
        || s.set_write_timeout(Some(CLIENT_WAIT)).is_err()
    {
        return;
    }
    let _ = handle(&mut s);
    // Not left in the client's folder between calls.
    let _ = std::env::set_current_dir("/");
}

fn handle(s: &mut UnixStream) -> std::io::Result<()> {
    let req = match recv(s)? {
        (b'Q', body) => serde_json::from_slice::<Request>(&body).ok(),
        _ => None,
    };
    let Some(req) = req else {
        return send(s, b'D', &[]);
    };
    // The client's working folder, for the call: relative paths resolve as
    // they would have in the client.
    let cwd_set = req
        .env
        .cwd
        .as_deref()
        .is_some_and(|d| std::env::set_current_dir(d).is_ok());
    if !cwd_set {
        return send(s, b'D', &[]);
    }
    let ctx = Context {
        locations: req.env.locations(&req.global),
        now: req.now,
        started: Instant::now()
            .checked_sub(Duration::from_micros(req.elapsed_us))
            .unwrap_or_else(Instant::now),
        env: req.env,
        global: req.global,
    };
    let loaded = ctx.load_live();
    // A team ledger keeps a connection to its server per process: its
    // calls are answered by their own processes.
    if let Ok((l, _)) = &loaded {
        if ctx.locations.team_ledger(&l.config).is_some() {
            return send(s, b'D', &[]);
        }
    }
    match req.command {
        Live::Check => {
            let (loaded, early) = match loaded {
                Ok(l) => l,
                Err(e) => {
                    let r = check::failure(&e.into(), false);
                    return reply(s, r.code, r.stdout, r.stderr, false);
                }
            };
            let allow = check::on_error_allows(&loaded);
            send(s, b'L', &[u8::from(allow)])?;
            let (tag, input) = recv(s)?;
            if tag != b'I' {
                return Ok(());
            }
            let r = check::answer(&ctx, &loaded, early, Ok(input));
            reply(s, r.code, r.stdout, r.stderr, r.warning.is_some())?;
            if let Some(w) = r.warning {
                if matches!(recv(s), Ok((b'A', _))) {
                    w.record();
                }
            }
            Ok(())
        }
        Live::Statusline => {
            let (tag, input) = recv(s)?;
            if tag != b'I' {
                return Ok(());
            }
            let line = statusline::line(&ctx, Ok(input), loaded, req.tty);
            reply(s, exit::OK, line, String::new(), false)
        }
    }
}

fn reply(
    s: &mut UnixStream,
    code: u8,
    stdout: String,
    stderr: String,
    warned: bool,
) -> std::io::Result<()> {
    let a = Answer {
        code,
        stdout,
        stderr,
        warned,
    };
    send(s, b'R', &serde_json::to_vec(&a).unwrap_or_default())
}

fn send(s: &mut UnixStream, tag: u8, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(tag);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(body);
    s.write_all(&frame)
}

fn recv(s: &mut UnixStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

// ------------------------------------------------------- the kept ledger

/// Set in the helper: ledgers go back to [`KEPT`] when dropped.
static KEEPING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The helper's open ledger between calls, and the file's identity
    /// when it was opened.
    static KEPT: RefCell<Option<(Ledger, FileId)>> = const { RefCell::new(None) };
}

thread_local! {
    /// The helper's last config, by its key (`config::cached::key`: the
    /// file's text, path, home and time zone).
    static CONFIG: RefCell<Option<([u8; 16], octo_budget::config::Config)>> = const { RefCell::new(None) };
}

/// In the helper, the config last loaded under `key`.
pub fn remembered_config(key: &[u8; 16]) -> Option<octo_budget::config::Config> {
    if !KEEPING.load(Ordering::Relaxed) {
        return None;
    }
    CONFIG.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, config)| config.clone())
    })
}

/// In the helper, keeps `config` as the one loaded under `key`.
pub fn remember_config(key: [u8; 16], config: &octo_budget::config::Config) {
    if KEEPING.load(Ordering::Relaxed) {
        CONFIG.with(|c| *c.borrow_mut() = Some((key, config.clone())));
    }
}

/// A file's device and inode.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A ledger `check` or `statusline` opened. Closed when dropped, except in
/// the resident helper, which keeps it open for its next call.
pub struct LiveLedger {
    ledger: Option<Ledger>,
    id: Option<FileId>,
}

impl LiveLedger {
    fn new(ledger: Ledger) -> LiveLedger {
        let id = if KEEPING.load(Ordering::Relaxed) {
            file_id(ledger.path())
        } else {
            None
        };
        LiveLedger {
            ledger: Some(ledger),
            id,
        }
    }
}

impl std::ops::Deref for LiveLedger {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        self.ledger.as_ref().expect("a ledger until dropped")
    }
}

impl std::ops::DerefMut for LiveLedger {
    fn deref_mut(&mut self) -> &mut Ledger {
        self.ledger.as_mut().expect("a ledger until dropped")
    }
}

impl Drop for LiveLedger {
    fn drop(&mut self) {
        if let (Some(l), Some(id)) = (self.ledger.take(), self.id) {
            if l.is_idle() {
                KEPT.with(|k| *k.borrow_mut() = Some((l, id)));
            }
        }
    }
}

/// The helper's kept ledger when it is the one at `path`: the same file
/// (device and inode), still at this binary's schema version.
fn take_kept(path: &Path, wait: Duration) -> Option<LiveLedger> {
    if !KEEPING.load(Ordering::Relaxed) {
        return None;
    }
    let (mut l, id) = KEPT.with(|k| k.borrow_mut().take())?;
    if l.path() != path || file_id(path) != Some(id) || !l.is_current().unwrap_or(false) {
        return None;
    }
    l.set_busy(wait).ok()?;
    Some(LiveLedger {
        ledger: Some(l),
        id: Some(id),
    })
}

/// [`Ledger::open`], or the helper's kept ledger.
pub fn open(path: &Path, wait: Duration) -> octo_budget::ledger::Result<LiveLedger> {
    if let Some(l) = take_kept(path, wait) {
        return Ok(l);
    }
    Ledger::open(path, wait).map(LiveLedger::new)
}

/// [`Ledger::open_if_current`], or the helper's kept ledger.
pub fn open_if_current(
    path: &Path,
    wait: Duration,
) -> octo_budget::ledger::Result<Option<LiveLedger>> {
    if let Some(l) = take_kept(path, wait) {
        return Ok(Some(l));
    }
    Ok(Ledger::open_if_current(path, wait)?.map(LiveLedger::new))
}
