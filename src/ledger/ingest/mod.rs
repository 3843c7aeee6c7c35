//! Incremental ingest: transcripts -> de-duplicated responses in the ledger.
//!
//! Per file the ledger keeps (device, inode), size, mtime, ctime, the offset
//! after the last complete line and a hash of its first bytes and of the
//! bytes just before that offset. A file is one file whatever path reaches
//! it: it is found in the ledger by (device, inode) first, by path second,
//! and read once per run. An unchanged file costs one `stat`; an appended
//! file is read from its offset; a truncated, rewritten or replaced file is
//! read again from the start, which de-duplication makes safe. A file whose
//! ctime moved while its size and mtime did not (a rewrite that restored
//! the mtime, or a chmod) is read again from the start too: its bytes may
//! have changed anywhere, not only in the head and tail the hash covers.
//!
//! Files are parsed in parallel; one writer applies the results in
//! transactions that each carry the responses, the rollup and the file
//! offsets together, so a process killed mid-ingest leaves a consistent
//! ledger and the next run reaches the same totals. Applying a response is
//! idempotent (merging keeps the largest value of each field), and a file's
//! result is applied only if nobody else advanced that file meanwhile, so
//! many processes may ingest at once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use rusqlite::OptionalExtension;

use super::{Ledger, LedgerError, Result};
use crate::transcript::discover::{FileStat, TranscriptFile, Unreadable};
use crate::transcript::parse::{
    envelope_branch, envelope_cwd, parse_line, parse_line_ref, Line, LineRef, ResponseRef,
    SessionCwd,
};
use crate::transcript::reader::{for_each_line_until, read_head};
use crate::transcript::{Advisor, CostState, Usage};

mod bound;
mod remote;
mod writer;

pub(crate) use remote::apply_remote;
pub use remote::{RemoteBatch, RemoteCost, RemoteResponse, RemoteSession};
use writer::Writer;

/// How many leading bytes identify a file's content.
const HEAD_LEN: u64 = 4096;

/// What one ingest did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestStats {
    pub files_seen: usize,
    pub files_read: usize,
    pub bytes_read: u64,
    pub responses: usize,
    pub skipped_lines: u64,
    /// Files that could not be stat'ed, opened or read (vanished,
    /// permissions, ...), with the reason; read again on the next run.
    pub unreadable: Vec<Unreadable>,
}

/// Progress of a running ingest, for a progress bar.
pub trait Progress {
    fn start(&mut self, files: usize, bytes: u64);
    fn advance(&mut self, bytes: u64);
    fn finish(&mut self);
}

/// For callers that show no progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: usize, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// A file's identity and size as `stat` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    dev: i64,
    ino: i64,
    size: i64,
    mtime_ns: i64,
    /// -1 when unknown (a row written before the ledger kept ctimes).
    ctime_ns: i64,
}

impl From<FileStat> for Meta {
    /// The ledger keeps `stat`'s numbers as SQLite integers (i64).
    fn from(st: FileStat) -> Meta {
        Meta {
            dev: st.dev as i64,
            ino: st.ino as i64,
            size: st.size as i64,
            mtime_ns: st.mtime_ns,
            ctime_ns: st.ctime_ns,
        }
    }
}

/// What the ledger knew of a file when we planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    meta: Meta,
    offset: i64,
    head_len: i64,
    head_hash: i64,
    skipped: i64,
}

/// `SELECT` of a `files` row's columns, in the order [`Known::of_row`]
/// reads them, with the rest of the statement appended.
macro_rules! select_files {
    ($rest:literal) => {
        concat!(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, offset, head_len, head_hash, skipped_lines FROM files",
            $rest
        )
    };
}

/// A file's row by its path: planning reads it, and the write transaction
/// reads it again (one statement for both: a hook call prepares it once).
const FILE_BY_PATH: &str = select_files!(" WHERE path = ?1");

impl Known {
    /// A row that `select_files!` selects: the file's path and what the ledger knows of it.
    fn of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Known)> {
        Ok((
            r.get(0)?,
            Known {
                meta: Meta {
                    dev: r.get(1)?,
                    ino: r.get(2)?,
                    size: r.get(3)?,
                    mtime_ns: r.get(4)?,
                    ctime_ns: r.get(5)?,
                },
                offset: r.get(6)?,
                head_len: r.get(7)?,
                head_hash: r.get(8)?,
                skipped: r.get(9)?,
            },
        ))
    }
}

struct Work {
    file: TranscriptFile,
    key: String,
    meta: Meta,
    known: Option<Known>,
}

/// A response as a file's read hands it to the writer: the strings most
/// of a file's responses share (session, cwd, branch, model) are one
/// allocation per file ([`Shared`]), not one per response, and the writer
/// knows a repeated one by its pointer.
#[derive(Debug, Clone)]
struct FileResponse {
    message_id: String,
    /// Empty when the record has no `requestId`.
    request_id: String,
    session_id: Option<Arc<str>>,
    cwd: Option<Arc<str>>,
    /// Its own `gitBranch`, else its session's latest in the file before
    /// it (None: the writer takes the ledger's).
    branch: Option<Arc<str>>,
    model: Arc<str>,
    ts_ms: i64,
    sidechain: bool,
    fast: bool,
    us_geo: bool,
    usage: Usage,
    advisors: Vec<Advisor>,
}

/// One file's strings that many of its responses share.
#[derive(Default)]
struct Shared(std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>);

impl Shared {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&a));
        a
    }
}

/// One file read: what to write for it.
struct FileResult {
    key: String,
    project: String,
    meta: Meta,
    known: Option<Known>,
    /// Read from the start (new, truncated, rewritten or replaced file).
    reset: bool,
    end: i64,
    head_len: i64,
    head_hash: i64,
    responses: Vec<FileResponse>,
    /// Per session, the cwd of its earliest record in this file.
    session_cwds: Vec<SessionCwd>,
    /// Per session, the branch of its latest response in this file (by
    /// timestamp) that named one.
    session_branches: FastMap<String, (String, i64)>,
    /// `cost-state` records, each with the timestamp of the latest
    /// response before it in the file (the end of the run it closes).
    cost_states: Vec<(CostState, i64)>,
    skipped: u64,
    bytes: u64,
}

/// Brings the ledger up to date with `files`.
pub fn ingest(
    ledger: &mut Ledger,
    files: &[TranscriptFile],
    progress: &mut dyn Progress,
) -> Result<IngestStats> {
    ingest_until(ledger, files, progress, None).map(|(stats, _)| stats)
}

/// When a bounded ingest stops reading: at `until`, but only once some
/// bytes were read in this run, so that every run makes progress.
struct Stop {
    until: Option<Instant>,
    progressed: AtomicBool,
    stopped: AtomicBool,
}

impl Stop {
    /// Before a file is started.
    fn before_file(&self) -> bool {
        self.past(self.progressed.load(Ordering::Relaxed))
    }

    /// After a chunk of a file was handed out (which counts as progress).
    fn after_chunk(&self) -> bool {
        self.past(self.progressed.swap(true, Ordering::Relaxed))
    }

    fn past(&self, progressed: bool) -> bool {
        let past = progressed && self.until.is_some_and(|u| Instant::now() >= u);
        if past {
            self.stopped.store(true, Ordering::Relaxed);
        }
        past
    }
}

/// Brings the ledger up to date with `files`, stopping at `until` (when
/// given) with what was read so far committed: a bounded run commits in
/// chunks of rows (never as one large transaction), and files it did not
/// finish are continued from their offsets by the next run. Returns true
/// when everything was read.
pub fn ingest_until(
    ledger: &mut Ledger,
    files: &[TranscriptFile],
    progress: &mut dyn Progress,
    until: Option<Instant>,
) -> Result<(IngestStats, bool)> {
    run(ledger, files, progress, until, u64::MAX)
}

/// Like [`ingest`], reading only files whose new bytes fit in
/// `max_new_bytes` together (smallest first); the others wait for the next
/// run. For calls that must stay quick whatever a session has written.
pub fn ingest_within(
    ledger: &mut Ledger,
    files: &[TranscriptFile],
    progress: &mut dyn Progress,
    max_new_bytes: u64,
) -> Result<IngestStats> {
    run(ledger, files, progress, None, max_new_bytes).map(|(stats, _)| stats)
}

fn run(
    ledger: &mut Ledger,
    files: &[TranscriptFile],
    progress: &mut dyn Progress,
    until: Option<Instant>,
    max_new_bytes: u64,
) -> Result<(IngestStats, bool)> {
    let mut stats = IngestStats::default();
    let stop = Stop {
        until,
        progressed: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
    };
    let mut work = plan(ledger, files, &mut stats)?;
    if max_new_bytes < u64::MAX {
        let new_bytes = |w: &Work| match w.known {
            Some(k) if w.meta.size >= k.offset => (w.meta.size - k.offset) as u64,
            _ => w.meta.size.max(0) as u64,
        };
        work.sort_by_key(new_bytes);
        let mut budget = max_new_bytes;
        work.retain(|w| {
            let n = new_bytes(w);
            let fits = n <= budget;
            if fits {
                budget -= n;
            }
            fits
        });
    }
    if work.is_empty() {
        return Ok((stats, true));
    }
    let total_bytes: u64 = work
        .iter()
        .map(|w| (w.meta.size - w.known.map_or(0, |k| k.offset)).max(0) as u64)
        .sum();
    progress.start(work.len(), total_bytes);
    // A first load in one transaction is fastest, but only a run that may
    // take as long as it needs can afford it.
    let expect_many = until.is_none();
    let small = work.len() == 1 || total_bytes < (4 << 20);
    // Held until the load's commit is done (its indexes are built then).
    let _memory = (!small).then(KeptMemory::start);
    let finished = if small {
        // Small jobs (the hook's): no threads.
        let mut writer = Writer::new(ledger);
        let mut out = Ok(());
        for w in &work {
            if stop.before_file() {
                break;
            }
            match read_file(w, &stop) {
                Ok(r) => {
                    progress.advance(r.bytes);
                    if let Err(e) = writer.apply(r, &mut stats, false) {
                        out = Err(e);
                        break;
                    }
                }
                // Vanished or unreadable: said, and tried again next run.
                Err(e) => stats.unreadable.push(unreadable(&w.file.path, &e)),
            }
        }
        finish(writer, out)
    } else {
        parallel(&work, ledger, &mut stats, progress, &stop, expect_many)
    };
    progress.finish();
    finished?;
    Ok((stats, !stop.stopped.load(Ordering::Relaxed)))
}

/// A first load into an empty ledger, written through a rollback journal
/// instead of the write-ahead log. In WAL mode every page of the load is
/// written twice (to the log, then by the checkpoint that folds the log
/// into the database, with a sync of each); a rollback journal keeps a
/// copy only of the pages the transaction overwrites, and pages past the
/// file's size at its start (all the load's rows and indexes) are not
/// copied at all: they are written once, and a process killed half-way
/// leaves a hot journal that the next process to open the ledger rolls
/// back (to the empty ledger it was).
///
/// Leaving WAL mode needs the file to itself: SQLite refuses at once
/// ("busy", not waited for here) while another connection has the ledger
/// open, and the load then runs in WAL mode as any other. While the load
/// runs, other processes (hooks) read the empty ledger it started from,
/// as in WAL mode, except while it writes its pages to the file (a cache
/// spill, the commit), when they wait for the lock as they wait for any
/// writer; nothing changes what they decide (a gated `check` on a ledger
/// that has not read its history refuses until it can read it). Every
/// process that opens the ledger puts it back in WAL mode if it finds it
/// in another (`schema::use_wal`), so a load killed before
/// [`RollbackJournal::back_to_wal`] leaves nothing behind.
struct RollbackJournal;

impl RollbackJournal {
    /// Switches the ledger to a rollback journal if it holds no responses
    /// and no other connection has it open.
    fn for_first_load(ledger: &Ledger) -> Option<RollbackJournal> {
        let conn = &ledger.conn;
        let empty = conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM responses)", [], |r| {
                r.get::<_, bool>(0)
            })
            .unwrap_or(false);
        if !empty {
            return None;
        }
        let switched = ledger
            .without_waiting(|| {
                conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
                    r.get::<_, String>(0)
                })
            })
            .is_ok_and(|mode| mode.is_ok_and(|mode| mode.eq_ignore_ascii_case("delete")));
        if !switched {
            return None;
        }
        // A rollback journal is only as safe as its syncs: FULL syncs the
        // journal before the database file is overwritten (NORMAL may not,
        // and a power cut could then leave a ledger that cannot be rolled
        // back). The journal of an empty ledger's load is a few pages.
        let journal = RollbackJournal;
        if conn.execute_batch("PRAGMA synchronous = FULL").is_err() {
            journal.back_to_wal(ledger);
            return None;
        }
        Some(journal)
    }

    /// Back to WAL mode (and its NORMAL syncs), waiting for other
    /// processes' locks as the ledger does; if that fails, the next process
    /// that opens the ledger switches it.
    fn back_to_wal(self, ledger: &Ledger) {
        let _ = super::schema::use_wal(ledger);
        let _ = ledger.conn.execute_batch("PRAGMA synchronous = NORMAL");
    }
}

/// The writer's commit of what was applied, or its error.
fn finish(writer: Writer<'_>, applied: Result<()>) -> Result<()> {
    match applied {
        Ok(()) => writer.finish(),
        Err(e) => {
            drop(writer);
            Err(e)
        }
    }
}

/// Parser threads read the files, and this thread writes what they read.
fn parallel(
    work: &[Work],
    ledger: &mut Ledger,
    stats: &mut IngestStats,
    progress: &mut dyn Progress,
    stop: &Stop,
    expect_many: bool,
) -> Result<()> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(work.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<std::result::Result<FileResult, Unreadable>>(256);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            let parser = move || loop {
                if stop.before_file() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(w) = work.get(i) else { break };
                let r = read_file(w, stop).map_err(|e| unreadable(&w.file.path, &e));
                if tx.send(r).is_err() {
                    break; // the writer stopped
                }
            };
            std::thread::Builder::new()
                .name("octo-budget-parse".into())
                .spawn_scoped(s, parser)
                .map_err(|e| LedgerError::Io {
                    path: ledger.path().to_path_buf(),
                    error: e,
                })?;
        }
        drop(tx);
        // While the parsers read their first files: a first load's
        // journal, and the writer.
        let journal = if expect_many {
            RollbackJournal::for_first_load(ledger)
        } else {
            None
        };
        let mut writer = Writer::new(ledger);
        let applied = receive(rx, &mut writer, stats, progress, stop, expect_many);
        let finished = finish(writer, applied);
        if let Some(journal) = journal {
            journal.back_to_wal(ledger);
        }
        finished
    })
}

/// Applies the parsers' results as they come. Returning drops `rx`: a
/// parser still running stops at its next result.
fn receive(
    rx: mpsc::Receiver<std::result::Result<FileResult, Unreadable>>,
    writer: &mut Writer<'_>,
    stats: &mut IngestStats,
    progress: &mut dyn Progress,
    stop: &Stop,
    expect_many: bool,
) -> Result<()> {
    let mut applied = false;
    for r in rx {
        if applied && stop.before_file() {
            // Past the deadline (and one file applied, so that every run
            // makes progress): what is still queued is read again by the
            // next run (its offsets were not advanced).
            break;
        }
        match r {
            Ok(r) => {
                progress.advance(r.bytes);
                writer.apply(r, stats, expect_many)?;
                applied = true;
            }
            Err(u) => stats.unreadable.push(u),
        }
    }
    Ok(())
}

/// While a large ingest runs, the allocator keeps the memory it frees.
///
/// glibc gives the top of a heap back to the system as soon as 128 KiB of
/// it are free and grows it again by little more than each request; a
/// large ingest frees and allocates file results, buffers and SQLite's
/// pages all the time, so the same memory was returned and faulted in
/// again (zeroed by the kernel) over and over: with the heap grown 64 MiB
/// at a time, trimmed only past 256 MiB free and blocks up to 32 MiB
/// taken from it (not mapped for each), a first load of the benchmark
/// tree took 3-9% less CPU time. The documented defaults are set again
/// when it ends (a long-lived process, the resident helper, then returns
/// what it no longer uses). These settings are the process's: two large
/// ingests at once in one process would only change each other's speed.
struct KeptMemory;

impl KeptMemory {
    fn start() -> KeptMemory {
        set_allocator(64 << 20, 256 << 20, 32 << 20);
        KeptMemory
    }
}

impl Drop for KeptMemory {
    fn drop(&mut self) {
        set_allocator(128 << 10, 128 << 10, 128 << 10);
    }
}

/// glibc's top pad, trim threshold and mmap threshold (elsewhere: nothing).
fn set_allocator(top_pad: i32, trim: i32, mmap: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's tunables; any value is
    // accepted or refused (0) without other effect.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, top_pad);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (top_pad, trim, mmap);
}

fn unreadable(path: &Path, e: &std::io::Error) -> Unreadable {
    Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Decides which files need reading (one `stat` each), largest first. The
/// same file under several paths (a symlinked Claude dir, a hardlink, the
/// hook's `transcript_path` spelled another way) is planned once, under
/// the path the ledger already knows it by.
fn plan(ledger: &Ledger, files: &[TranscriptFile], stats: &mut IngestStats) -> Result<Vec<Work>> {
    let mut found: Vec<(&TranscriptFile, Meta)> = Vec::with_capacity(files.len());
    let mut seen: std::collections::HashSet<(i64, i64), foldhash::fast::RandomState> =
        Default::default();
    seen.reserve(files.len());
    for f in files {
        // The scan's `stat` when it made one (the same call, through the
        // file's folder), else one now.
        let meta = match f.stat {
            Some(st) => Meta::from(st),
            None => match stat(&f.path) {
                Ok(meta) => meta,
                Err(u) => {
                    stats.unreadable.push(u);
                    continue;
                }
            },
        };
        if seen.insert((meta.dev, meta.ino)) {
            found.push((f, meta));
        }
    }
    stats.files_seen = found.len();
    let known_files = KnownFiles::load(ledger, &found)?;
    let mut work = Vec::new();
    for (f, meta) in found {
        let (key, known) = known_files.find(&f.path, &meta);
        if known.is_some_and(|k| k.meta == meta) {
            continue; // unchanged
        }
        work.push(Work {
            file: f.clone(),
            key: key.into_owned(),
            meta,
            known,
        });
    }
    work.sort_by_key(|w| std::cmp::Reverse(w.meta.size - w.known.map_or(0, |k| k.offset)));
    Ok(work)
}

/// A regular file's [`Meta`], following links.
fn stat(path: &Path) -> std::result::Result<Meta, Unreadable> {
    let md = std::fs::metadata(path).map_err(|e| unreadable(path, &e))?;
    if !md.is_file() {
        return Err(Unreadable {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    Ok(Meta::from(FileStat::of_metadata(&md)))
}

/// What the ledger knows of some files, by (device, inode) and by path.
struct KnownFiles {
    /// Rows in the order read (by path for a full scan).
    rows: Vec<(String, Known)>,
    /// Per (device, inode), its first row and whether others share it.
    by_inode: FastMap<(i64, i64), (usize, bool)>,
    /// Per path, its row: built when first needed (a file the ledger
    /// does not know by its inode, or an inode under several paths).
    by_path: std::cell::OnceCell<FastMap<String, usize>>,
}

impl KnownFiles {
    /// One query per file for a few (the hook's), one query for all when
    /// there are many (a full scan).
    fn load(ledger: &Ledger, files: &[(&TranscriptFile, Meta)]) -> Result<KnownFiles> {
        let row = Known::of_row;
        let mut rows = Vec::with_capacity(files.len());
        if files.len() > 64 {
            let mut st = ledger
                .conn
                .prepare_cached(select_files!(""))
                .map_err(|e| ledger.err(e))?;
            let it = st.query_map([], row).map_err(|e| ledger.err(e))?;
            for r in it {
                rows.push(r.map_err(|e| ledger.err(e))?);
            }
        } else {
            let mut by_path = ledger
                .conn
                .prepare_cached(FILE_BY_PATH)
                .map_err(|e| ledger.err(e))?;
            let mut by_inode = ledger
                .conn
                .prepare_cached(select_files!(" WHERE dev = ?1 AND ino = ?2 ORDER BY path"))
                .map_err(|e| ledger.err(e))?;
            for (f, meta) in files {
                let it = by_inode
                    .query_map([meta.dev, meta.ino], row)
                    .map_err(|e| ledger.err(e))?;
                for r in it {
                    rows.push(r.map_err(|e| ledger.err(e))?);
                }
                if let Some(r) = by_path
                    .query_row([path_key(&f.path)], row)
                    .optional()
                    .map_err(|e| ledger.err(e))?
                {
                    rows.push(r);
                }
            }
        }
        let mut by_inode: FastMap<(i64, i64), (usize, bool)> = FastMap::default();
        by_inode.reserve(rows.len());
        for (i, (path, k)) in rows.iter().enumerate() {
            by_inode
                .entry((k.meta.dev, k.meta.ino))
                .and_modify(|(first, shared)| *shared |= rows[*first].0 != *path)
                .or_insert((i, false));
        }
        Ok(KnownFiles {
            rows,
            by_inode,
            by_path: std::cell::OnceCell::new(),
        })
    }

    /// The row of `path`.
    fn of_path(&self, path: &str) -> Option<&(String, Known)> {
        let by_path = self.by_path.get_or_init(|| {
            let mut m = FastMap::default();
            m.reserve(self.rows.len());
            for (i, (p, _)) in self.rows.iter().enumerate() {
                m.insert(p.clone(), i);
            }
            m
        });
        by_path.get(path).map(|&i| &self.rows[i])
    }

    /// The ledger's key and knowledge of a file: the row of the same
    /// (device, inode) under whatever path it was read (this path's own
    /// row first), else the row of this path (a file replaced there).
    fn find(&self, path: &Path, meta: &Meta) -> (Cow<'_, str>, Option<Known>) {
        // As `path_key` (`to_str` is the fast check of the usual case).
        let key = path
            .to_str()
            .map_or_else(|| path.to_string_lossy(), Cow::Borrowed);
        let same_inode = |k: &Known| (k.meta.dev, k.meta.ino) == (meta.dev, meta.ino);
        if let Some(&(i, shared)) = self.by_inode.get(&(meta.dev, meta.ino)) {
            let (p, k) = &self.rows[i];
            if *p == key {
                return (Cow::Owned(key.into_owned()), Some(*k));
            }
            if shared {
                if let Some((_, k)) = self.of_path(&key).filter(|(_, k)| same_inode(k)) {
                    return (Cow::Owned(key.into_owned()), Some(*k));
                }
            }
            return (Cow::Borrowed(p), Some(*k));
        }
        let known = self.of_path(&key).map(|(_, k)| *k);
        (Cow::Owned(key.into_owned()), known)
    }
}

fn path_key(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A HashMap with a fast, non-cryptographic hasher (keys are our own data).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn key_hash(message_id: &str, request_id: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(message_id.as_bytes());
    h.update(&[0x1f]);
    h.update(request_id.as_bytes());
    h.digest()
}

fn hash(bytes: &[u8]) -> i64 {
    xxhash_rust::xxh3::xxh3_64(bytes) as i64
}

/// What identifies the part of a file already read: its first bytes and
/// the (up to [`HEAD_LEN`]) bytes just before `offset`. The head alone
/// misses a file truncated (or rewritten) and grown past `offset` again
/// before the next run: resuming there would start mid-line and lose lines.
fn identity(f: &mut File, head: &[u8], offset: u64) -> std::io::Result<i64> {
    use std::io::{Read, Seek, SeekFrom};
    let tail_len = HEAD_LEN.min(offset);
    f.seek(SeekFrom::Start(offset - tail_len))?;
    let mut bytes = head.to_vec();
    f.take(tail_len).read_to_end(&mut bytes)?;
    Ok(hash(&bytes))
}

/// Reads a file's new complete lines (all of it when it is new or was
/// truncated, rewritten or replaced), or as many as `stop` allows.
fn read_file(w: &Work, stop: &Stop) -> std::io::Result<FileResult> {
    let mut f = File::open(&w.file.path)?;
    let mut start = 0i64;
    if let Some(k) = w.known {
        let same_file = k.meta.dev == w.meta.dev && k.meta.ino == w.meta.ino;
        // Size and mtime as they were but the ctime moved: rewritten in
        // place with its mtime put back (or only chmod'ed). The head and
        // tail hashes cover 8 KiB; the change may be anywhere else, so
        // read it all again (de-duplication keeps that exact).
        let rewritten_in_place = k.meta.ctime_ns >= 0
            && k.meta.ctime_ns != w.meta.ctime_ns
            && k.meta.size == w.meta.size
            && k.meta.mtime_ns == w.meta.mtime_ns;
        if same_file && !rewritten_in_place && w.meta.size >= k.offset {
            let head = read_head(&mut f, k.head_len as usize)?;
            if head.len() as i64 == k.head_len
                && identity(&mut f, &head, k.offset as u64)? == k.head_hash
            {
                start = k.offset;
            }
        }
    }
    let reset = start == 0;
    let mut responses: Vec<FileResponse> = Vec::new();
    let mut shared = Shared::default();
    // Copies of one response within the file (one line per content block)
    // merge here already, by a hash of their key; a collision only leaves
    // two copies for the writer to merge.
    let mut index: FastMap<u64, usize> = FastMap::default();
    let mut session_cwds: Vec<SessionCwd> = Vec::new();
    let mut file_has_cwd = false;
    let mut note_cwd = |session: &str, cwd: &str, ts_ms: i64| match session_cwds
        .iter_mut()
        .find(|o| o.session_id == session)
    {
        Some(o) if (ts_ms, cwd) < (o.ts_ms, o.cwd.as_str()) => {
            o.cwd = cwd.to_owned();
            o.ts_ms = ts_ms;
        }
        Some(_) => {}
        None => session_cwds.push(SessionCwd {
            session_id: session.to_owned(),
            cwd: cwd.to_owned(),
            ts_ms,
        }),
    };
    // A response without a branch takes its session's latest branch known
    // at that point of the file (else, at apply, the ledger's).
    let mut last_branch: FastMap<String, String> = FastMap::default();
    let mut session_branches: FastMap<String, (String, i64)> = FastMap::default();
    let mut note_branch =
        |session: &str, branch: &str, ts_ms: i64| match session_branches.get_mut(session) {
            Some(e) if ts_ms >= e.1 => {
                if e.0 != branch {
                    branch.clone_into(&mut e.0);
                }
                e.1 = ts_ms;
            }
            Some(_) => {}
            None => {
                session_branches.insert(session.to_owned(), (branch.to_owned(), ts_ms));
            }
        };
    // Records without cost are parsed for their branch only until one has
    // been seen in this read (a prompt before the session's first response).
    let mut looked_for_branch = false;
    let mut skipped = 0u64;
    let mut cost_states: Vec<(CostState, Option<i64>)> = Vec::new();
    let mut latest_ts: Option<i64> = None;
    let (end, stopped) = for_each_line_until(
        &mut f,
        start as u64,
        || stop.after_chunk(),
        |line, _offset| match parse_line_ref(line) {
            LineRef::Response(r) => {
                let session = r.session_id.as_deref().unwrap_or("");
                let branch = match r.branch.as_deref() {
                    Some(b) => {
                        match last_branch.get_mut(session) {
                            Some(last) if last != b => b.clone_into(last),
                            Some(_) => {}
                            None => {
                                last_branch.insert(session.to_owned(), b.to_owned());
                            }
                        }
                        if !session.is_empty() {
                            note_branch(session, b, r.ts_ms);
                        }
                        looked_for_branch = true;
                        Some(b)
                    }
                    None => last_branch.get(session).map(String::as_str),
                };
                latest_ts = latest_ts.max(Some(r.ts_ms));
                if let (Some(s), Some(c)) = (&r.session_id, &r.cwd) {
                    note_cwd(s, c, r.ts_ms);
                    file_has_cwd = true;
                }
                let key = key_hash(&r.message_id, &r.request_id);
                match index.get(&key) {
                    Some(&i)
                        if responses[i].message_id == r.message_id
                            && responses[i].request_id == r.request_id =>
                    {
                        merge(&mut responses[i], &r, branch, &mut shared)
                    }
                    found => {
                        let owned = FileResponse {
                            session_id: r.session_id.as_deref().map(|s| shared.get(s)),
                            cwd: r.cwd.as_deref().map(|c| shared.get(c)),
                            branch: branch.map(|b| shared.get(b)),
                            model: shared.get(&r.model),
                            message_id: r.message_id.into_owned(),
                            request_id: r.request_id.into_owned(),
                            ts_ms: r.ts_ms,
                            sidechain: r.sidechain,
                            fast: r.fast,
                            us_geo: r.us_geo,
                            usage: r.usage,
                            advisors: r.advisors,
                        };
                        if found.is_none() {
                            index.insert(key, responses.len());
                        }
                        responses.push(owned);
                    }
                }
            }
            LineRef::NoCost => {
                if !looked_for_branch {
                    if let Some((session, branch, ts_ms)) = envelope_branch(line) {
                        looked_for_branch = true;
                        if let Some(b) = branch {
                            note_branch(&session, &b, ts_ms);
                            last_branch.insert(session, b);
                        }
                    }
                }
                if !file_has_cwd {
                    if let Some(sc) = envelope_cwd(line) {
                        note_cwd(&sc.session_id, &sc.cwd, sc.ts_ms);
                        file_has_cwd = true;
                    }
                }
            }
            LineRef::CostState(c) => cost_states.push((c, latest_ts)),
            LineRef::Malformed(_) => skipped += 1,
        },
    )?;
    let end = end as i64;
    // A cost-state read with no response before it in these bytes (the
    // rest were read earlier, e.g. by the hook): its run ended at the
    // latest response in the bytes before them.
    let earlier = if start > 0 && cost_states.iter().any(|(_, t)| t.is_none()) {
        latest_response_before(&mut f, start as u64)?
    } else {
        None
    };
    let cost_states = cost_states
        .into_iter()
        .map(|(c, t)| {
            let end = t.or(earlier).unwrap_or(c.start_ms).max(c.start_ms);
            (c, end)
        })
        .collect();
    let mut meta = w.meta;
    if stopped {
        // Read only up to `end`: recorded as the file's size, so the next
        // run sees a change and continues from there.
        meta.size = end;
    }
    let (head_len, head_hash) = {
        let head = read_head(&mut f, HEAD_LEN.min(end as u64) as usize)?;
        (head.len() as i64, identity(&mut f, &head, end as u64)?)
    };
    Ok(FileResult {
        key: w.key.clone(),
        project: w.file.project.clone(),
        meta,
        known: w.known,
        reset,
        end,
        head_len,
        head_hash,
        responses,
        session_cwds,
        session_branches,
        cost_states,
        skipped,
        bytes: (end - start).max(0) as u64,
    })
}

/// The timestamp of the latest response in a file's first `until` bytes.
fn latest_response_before(f: &mut File, until: u64) -> std::io::Result<Option<i64>> {
    let mut latest = None;
    let past = std::cell::Cell::new(false);
    for_each_line_until(
        f,
        0,
        || past.get(),
        |line, offset| {
            // `offset` is where the line starts.
            if offset >= until {
                past.set(true);
            } else if let Line::Response(r) = parse_line(line) {
                latest = latest.max(Some(r.ts_ms));
            }
        },
    )?;
    Ok(latest)
}

/// Merges a duplicate of a response (whose branch, its own or its
/// session's latest, is `branch`) into the first copy seen.
fn merge(
    into: &mut FileResponse,
    dup: &ResponseRef<'_>,
    branch: Option<&str>,
    shared: &mut Shared,
) {
    into.usage = into.usage.max(&dup.usage);
    into.sidechain &= dup.sidechain;
    if into.cwd.is_none() {
        into.cwd = dup.cwd.as_deref().map(|c| shared.get(c));
    }
    if into.session_id.is_none() {
        into.session_id = dup.session_id.as_deref().map(|s| shared.get(s));
    }
    if into.branch.is_none() {
        into.branch = branch.map(|b| shared.get(b));
    }
    for (i, a) in dup.advisors.iter().enumerate() {
        match into.advisors.get_mut(i) {
            Some(mine) if mine.model == a.model => mine.usage = mine.usage.max(&a.usage),
            Some(_) => {}
            None => into.advisors.push(a.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that vanished between the scan and the read, and one that
    /// is a folder named like a transcript, are reported, not skipped
    /// silently; the readable file beside them is read.
    #[test]
    fn vanished_and_odd_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(
            &dir.path().join("l.sqlite"),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let ok = dir.path().join("ok.jsonl");
        std::fs::write(
            &ok,
            "{\"type\":\"assistant\",\"timestamp\":\"2026-11-02T10:00:00Z\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{\"input_tokens\":1}}}\n",
        )
        .unwrap();
        let folder = dir.path().join("folder.jsonl");
        std::fs::create_dir(&folder).unwrap();
        let file = |path: std::path::PathBuf| TranscriptFile {
            path,
            project: "-p".into(),
            stat: None,
        };
        let files = [
            file(ok),
            file(dir.path().join("vanished.jsonl")),
            file(folder),
        ];
        let stats = ingest(&mut ledger, &files, &mut NoProgress).unwrap();
        assert_eq!((stats.files_read, stats.responses), (1, 1));
        let mut why: Vec<String> = stats
            .unreadable
            .iter()
            .map(|u| {
                format!(
                    "{}: {}",
                    u.path.file_name().unwrap().to_string_lossy(),
                    u.reason
                )
            })
            .collect();
        why.sort();
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(
            why[0].starts_with("folder.jsonl: not a regular file"),
            "{why:?}"
        );
        assert!(
            why[1].starts_with("vanished.jsonl: No such file"),
            "{why:?}"
        );
    }

    /// A connection's places grow as other connections add places (it
    /// reads only the rows added since its last read), and a place whose
    /// real path the writer fills in later reads the same before and after.
    #[test]
    fn places_read_again_only_from_the_last_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let wait = std::time::Duration::from_secs(5);
        let mut writer = Ledger::open(&path, wait).unwrap();
        let reader = Ledger::open(&path, wait).unwrap();
        let line = |id: &str, cwd: &str| {
            format!("{{\"type\":\"assistant\",\"cwd\":\"{cwd}\",\"sessionId\":\"s\",\"timestamp\":\"2026-11-02T10:00:00Z\",\"message\":{{\"id\":\"{id}\",\"model\":\"x\",\"usage\":{{\"input_tokens\":1}}}}}}\n")
        };
        let transcript = dir.path().join("t.jsonl");
        let add = |writer: &mut Ledger, text: &str| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&transcript)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
            let file = TranscriptFile {
                path: transcript.clone(),
                project: "-p".into(),
                stat: None,
            };
            ingest(writer, &[file], &mut NoProgress).unwrap();
        };
        let cwds = |l: &Ledger| {
            let mut v: Vec<String> = l
                .places()
                .unwrap()
                .values()
                .map(|p| p.cwd.clone())
                .collect();
            v.sort();
            v
        };
        add(&mut writer, &line("m1", "/w/a"));
        assert_eq!(cwds(&reader), ["/w/a"]);
        add(&mut writer, &line("m2", "/w/b"));
        add(&mut writer, &line("m3", "/w/a"));
        assert_eq!(cwds(&reader), ["/w/a", "/w/b"]);
        let before = reader.places().unwrap();
        // An older ledger's place without its real path, filled in when
        // the place is seen again: read as the live real path either way.
        writer
            .conn
            .execute("UPDATE places SET real_cwd = NULL WHERE cwd = '/w/b'", [])
            .unwrap();
        let fresh = Ledger::open(&path, wait).unwrap();
        assert_eq!(fresh.places().unwrap(), before);
        add(&mut writer, &line("m4", "/w/b"));
        assert_eq!(reader.places().unwrap(), before);
        assert_eq!(Ledger::open(&path, wait).unwrap().places().unwrap(), before);
    }
}
