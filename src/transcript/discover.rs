//! Finds transcript files under Claude Code config directories: every
//! `*.jsonl` under `projects/` at any depth, so a layout Claude Code
//! introduces later is read too, leaving out only what is known not to be
//! a transcript. Files and folders that cannot be read are reported, never
//! skipped silently.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use walkdir::WalkDir;

/// One transcript file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptFile {
    pub path: PathBuf,
    /// The encoded launch folder name (`projects/<project>/...`), used to
    /// attribute lines that carry no `cwd`; empty for a file directly under
    /// `projects/`.
    pub project: String,
    /// What `stat` said of the file (through a link) when the scan found
    /// it, if it was a regular file then; `None`: not stat'ed yet.
    pub stat: Option<FileStat>,
}

/// A regular file's identity, size and times as `stat` saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStat {
    /// As `std::fs::Metadata` gives them (`MetadataExt`); the field types of
    /// `struct stat` differ between platforms, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> FileStat {
        FileStat {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: nanos(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: nanos(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }

    /// The same from `std::fs::metadata` (a file found other than by the
    /// scan).
    pub fn of_metadata(md: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime_ns: nanos(md.mtime(), md.mtime_nsec()),
            ctime_ns: nanos(md.ctime(), md.ctime_nsec()),
        }
    }
}

/// Seconds and nanoseconds as nanoseconds (saturating).
fn nanos(s: i64, n: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(n)
}

/// A file or folder under `projects/` that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

/// What a scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub files: Vec<TranscriptFile>,
    pub unreadable: Vec<Unreadable>,
}

/// The `projects/` folder of a root: `<root>/projects`, or the root itself
/// when it is a `projects/` folder (users point tools at it directly).
pub fn projects_dir(root: &Path) -> PathBuf {
    let nested = root.join("projects");
    if !nested.is_dir() && root.file_name().is_some_and(|n| n == "projects") {
        return root.to_path_buf();
    }
    nested
}

/// All transcripts under each root's `projects/` folder, sorted by path,
/// each path once even when roots overlap (the same file under two paths
/// is told apart later, by device and inode).
pub fn discover(roots: &[PathBuf]) -> Discovery {
    let mut out = Discovery::default();
    let mut seen_roots = Vec::new();
    for root in roots {
        let projects = projects_dir(root);
        let Ok(canonical) = projects.canonicalize() else {
            // No projects folder here (the default dirs often do not all
            // exist); one that exists but cannot be resolved is reported.
            if projects.symlink_metadata().is_ok() {
                out.unreadable.push(Unreadable {
                    path: projects.clone(),
                    reason: "cannot resolve the folder".into(),
                });
            }
            continue;
        };
        if seen_roots.contains(&canonical) {
            continue;
        }
        seen_roots.push(canonical.clone());
        let root = match rustix::fs::open(&canonical, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                out.unreadable.push(Unreadable {
                    path: canonical.clone(),
                    reason: std::io::Error::from(e).to_string(),
                });
                continue;
            }
        };
        walk_projects(&canonical, root, &mut out);
    }
    // Byte order, not `Path`'s component-wise order: the same result for
    // de-duplication at a fraction of the cost on thousands of files.
    out.files.sort_unstable_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    out.files
        .dedup_by(|a, b| a.path.as_os_str() == b.path.as_os_str());
    // The walk's threads report in no set order.
    out.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Walks the `projects/` folder open as `root` at `path`: its project
/// folders are shared out among a few threads (the walk is system calls,
/// which run in parallel), their findings appended to `out`.
fn walk_projects(path: &Path, root: OwnedFd, out: &mut Discovery) {
    let mut top = Walk {
        path: path.to_path_buf(),
        project: String::new(),
        subagents: 0,
        out,
    };
    let Some((dir, folders)) = top.list(root) else {
        return;
    };
    let dir = match dir.fd() {
        Ok(fd) => fd,
        Err(e) => {
            top.unreadable(path.to_path_buf(), std::io::Error::from(e).to_string());
            return;
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(folders.len());
    let next = AtomicUsize::new(0);
    let walk = |w: &mut Walk<'_>| {
        while let Some(name) = folders.get(next.fetch_add(1, Ordering::Relaxed)) {
            let opened = rustix::fs::openat(dir, name.as_os_str(), DIR_FLAGS, Mode::empty());
            w.enter(name, opened, 1);
        }
    };
    let found: Vec<Discovery> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                // If no thread can be started, this one walks it all.
                std::thread::Builder::new()
                    .name("octo-budget-scan".into())
                    .spawn_scoped(s, || {
                        let mut found = Discovery::default();
                        walk(&mut Walk {
                            path: path.to_path_buf(),
                            project: String::new(),
                            subagents: 0,
                            out: &mut found,
                        });
                        found
                    })
                    .ok()
            })
            .collect();
        walk(&mut top);
        helpers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for mut f in found {
        out.files.append(&mut f.files);
        out.unreadable.append(&mut f.unreadable);
    }
}

/// How folders are opened: not through a link (only the Claude dir or
/// `projects/` itself may be one, and those are resolved before the walk).
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// Folders deeper than this are opened by their path rather than through
/// their parent's descriptor, so a walk holds at most this many open.
const MAX_OPEN: usize = 32;

/// A walk of one `projects/` folder. Each folder is opened through its
/// parent's descriptor and each file stat'ed through its folder's, so the
/// kernel resolves one name per call instead of the whole path: on a
/// large unchanged tree the walk and its stats are most of `report`'s time.
struct Walk<'a> {
    /// The folder being read.
    path: PathBuf,
    /// Its project: the folder right below `projects/` ('' for that one).
    project: String,
    /// How many of the folders from `projects/` to it are `subagents`.
    subagents: usize,
    out: &'a mut Discovery,
}

impl Walk<'_> {
    fn unreadable(&mut self, path: PathBuf, reason: String) {
        self.out.unreadable.push(Unreadable { path, reason });
    }

    /// Reads the folder open as `fd` (at `depth` below `projects/`): its
    /// transcripts, then its subfolders (except those that hold none).
    fn folder(&mut self, fd: OwnedFd, depth: usize) {
        let Some((dir, folders)) = self.list(fd) else {
            return;
        };
        let parent = (depth < MAX_OPEN).then_some(dir);
        for name in folders {
            let opened = match &parent {
                Some(p) => p.fd().and_then(|p| {
                    rustix::fs::openat(p, name.as_os_str(), DIR_FLAGS, Mode::empty())
                }),
                None => rustix::fs::open(self.path.join(&name), DIR_FLAGS, Mode::empty()),
            };
            self.enter(&name, opened, depth + 1);
        }
    }

    /// Walks subfolder `name` of the current folder, `opened` (at `depth`).
    fn enter(&mut self, name: &OsStr, opened: rustix::io::Result<OwnedFd>, depth: usize) {
        self.path.push(name);
        if depth == 1 {
            self.project = name.to_string_lossy().into_owned();
        }
        let subagents = name == "subagents";
        self.subagents += usize::from(subagents);
        match opened {
            Ok(child) => self.folder(child, depth),
            Err(e) => {
                let reason = std::io::Error::from(e).to_string();
                self.unreadable(self.path.clone(), reason);
            }
        }
        self.subagents -= usize::from(subagents);
        if depth == 1 {
            self.project.clear();
        }
        self.path.pop();
    }

    /// Reads the folder open as `fd`: its transcripts, stat'ed; returns it
    /// and its subfolders to walk, or None if it could not be read.
    fn list(&mut self, fd: OwnedFd) -> Option<(Dir, Vec<OsString>)> {
        let mut entries: Vec<(OsString, FileType)> = Vec::new();
        let mut dir = match Dir::new(fd) {
            Ok(d) => d,
            Err(e) => {
                let reason = std::io::Error::from(e).to_string();
                self.unreadable(self.path.clone(), reason);
                return None;
            }
        };
        while let Some(entry) = dir.read() {
            match entry {
                Ok(e) => {
                    let name = e.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        entries.push((OsStr::from_bytes(name).to_owned(), e.file_type()));
                    }
                }
                Err(e) => {
                    let reason = std::io::Error::from(e).to_string();
                    self.unreadable(self.path.clone(), reason);
                    break;
                }
            }
        }
        let fd = match dir.fd() {
            Ok(fd) => fd,
            Err(e) => {
                let reason = std::io::Error::from(e).to_string();
                self.unreadable(self.path.clone(), reason);
                return None;
            }
        };
        let mut folders = Vec::new();
        for (name, mut ft) in entries {
            if ft == FileType::Unknown {
                // Some file systems do not say: ask (without following).
                match rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => ft = FileType::from_raw_mode(st.st_mode as _),
                    Err(e) => {
                        let reason = std::io::Error::from(e).to_string();
                        self.unreadable(self.path.join(&name), reason);
                        continue;
                    }
                }
            }
            if ft == FileType::Directory {
                if !skipped_folder(&name) {
                    folders.push(name);
                }
                continue;
            }
            if !name.as_bytes().ends_with(b".jsonl") {
                continue;
            }
            // As `transcript_project` says of the path (the folders it
            // leaves out are not walked).
            if self.subagents > 0 && name == SUBAGENTS_JOURNAL {
                continue;
            }
            let project = self.project.clone();
            let path = self.path.join(&name);
            let linked = ft == FileType::Symlink;
            if !linked && ft != FileType::RegularFile {
                self.unreadable(path, "not a regular file".into());
                continue;
            }
            // Through a link for a linked file: it is read through it.
            let stat = match rustix::fs::statat(fd, name.as_os_str(), AtFlags::empty()) {
                Ok(st) if FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile => {
                    Some(FileStat::of(&st))
                }
                // Linked folders are not followed.
                Ok(st)
                    if linked
                        && FileType::from_raw_mode(st.st_mode as _) == FileType::Directory =>
                {
                    continue;
                }
                Ok(_) if linked => {
                    self.unreadable(path, "not a regular file".into());
                    continue;
                }
                // A dangling link is reported.
                Err(e) if linked => {
                    self.unreadable(path, std::io::Error::from(e).to_string());
                    continue;
                }
                // Changed or gone since the folder was read: the ingest
                // stats it again and says why it cannot read it.
                _ => None,
            };
            self.out.files.push(TranscriptFile {
                path,
                project,
                stat,
            });
        }
        Some((dir, folders))
    }
}

/// Folders that hold no transcripts: `<session>/tool-results/` (tool
/// output) and `memory/`.
fn skipped_folder(name: &std::ffi::OsStr) -> bool {
    name == "tool-results" || name == "memory"
}

/// Workflow metadata, not a transcript, wherever it stands below a
/// `subagents/` folder.
const SUBAGENTS_JOURNAL: &str = "journal.jsonl";

/// For a path relative to `projects/`, the project folder if the path names
/// a transcript: any `*.jsonl` at any depth (`<project>/<session>.jsonl`,
/// `<project>/agent-<id>.jsonl`, `<project>/<session>/subagents/**`,
/// `<project>/<session>/chat.jsonl`, a file directly under `projects/`,
/// whose project is empty). Not transcripts: anything under
/// `tool-results/` or `memory/`, and `journal.jsonl` under `subagents/`
/// (workflow metadata); `agent-*.meta.json` does not end in `.jsonl`.
pub fn transcript_project(rel: &Path) -> Option<String> {
    let parts: Vec<&[u8]> = rel.iter().map(|p| p.as_bytes()).collect();
    let (file, dirs) = parts.split_last()?;
    if !file.ends_with(b".jsonl") {
        return None;
    }
    if dirs.iter().any(|d| skipped_folder(OsStr::from_bytes(d))) {
        return None;
    }
    if *file == SUBAGENTS_JOURNAL.as_bytes() && dirs.iter().any(|d| *d == b"subagents") {
        return None;
    }
    Some(
        dirs.first()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
    )
}

/// A session's transcripts, in every layout: the session file itself,
/// everything under its folder (`<project>/<session>/**`: subagents,
/// workflows, later layouts) and the project's flat `agent-*.jsonl`
/// subagent files (they carry the parent's `sessionId`, not its name;
/// those of other sessions cost a `stat` each and add their own spend).
pub fn session_files(transcript: &Path, session_id: Option<&str>) -> Vec<TranscriptFile> {
    let Some(parent) = transcript.parent() else {
        return Vec::new();
    };
    // The project folder is the one right below `projects/`; a transcript
    // elsewhere is taken as `<project>/<file>`.
    let project_dir = transcript
        .ancestors()
        .skip(1)
        .find(|a| a.parent().and_then(Path::file_name) == Some("projects".as_ref()))
        .unwrap_or(parent);
    let projects = project_dir.parent().unwrap_or(project_dir);
    let project = if project_dir.file_name() == Some("projects".as_ref()) {
        String::new() // a file directly under `projects/`, as discover names it
    } else {
        project_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = vec![TranscriptFile {
        path: transcript.to_path_buf(),
        project: project.clone(),
        stat: None,
    }];
    let mut add = |path: &Path| {
        let rel = path.strip_prefix(projects).unwrap_or(path);
        let rel = if project_dir == projects {
            Path::new(&project).join(rel)
        } else {
            rel.to_path_buf()
        };
        if path != transcript && transcript_project(&rel).is_some() {
            out.push(TranscriptFile {
                path: path.to_path_buf(),
                project: project.clone(),
                stat: None,
            });
        }
    };
    let stem = session_id.map(str::to_owned).or_else(|| {
        transcript
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
    });
    let mut folders = Vec::new();
    if let Some(stem) = stem.filter(|s| !s.is_empty() && !s.contains('/') && s != "..") {
        folders.push(project_dir.join(stem));
    }
    if parent != project_dir {
        folders.push(parent.to_path_buf()); // `<project>/<session>/chat.jsonl`
    }
    for folder in folders.iter().filter(|f| f.is_dir()) {
        for e in WalkDir::new(folder)
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir()
                    && (e.file_name() == "tool-results" || e.file_name() == "memory"))
            })
            .filter_map(|e| e.ok())
        {
            if e.file_type().is_file() || e.file_type().is_symlink() {
                add(e.path());
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(project_dir) {
        for e in dir.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            if name.starts_with(b"agent-") && name.ends_with(b".jsonl") {
                add(&e.path());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        transcript_project(Path::new(s))
    }

    #[test]
    fn recognises_every_layout() {
        assert_eq!(p("-x-acme/0b1c.jsonl").as_deref(), Some("-x-acme"));
        assert_eq!(p("-x-acme/agent-1.jsonl").as_deref(), Some("-x-acme"));
        assert_eq!(
            p("-x-acme/0b1c/subagents/agent-2.jsonl").as_deref(),
            Some("-x-acme")
        );
        assert_eq!(
            p("-x-acme/0b1c/subagents/workflows/wf1/agent-3.jsonl").as_deref(),
            Some("-x-acme")
        );
        // Layouts of other tools' test trees, and any later one.
        assert_eq!(p("-x-acme/0b1c/chat.jsonl").as_deref(), Some("-x-acme"));
        assert_eq!(p("-x-acme/a/b/c/d.jsonl").as_deref(), Some("-x-acme"));
        assert_eq!(p("loose.jsonl").as_deref(), Some(""));
    }

    #[test]
    fn skips_what_is_not_a_transcript() {
        assert_eq!(p("-x-acme/0b1c/tool-results/out.jsonl"), None);
        assert_eq!(p("-x-acme/memory/notes.jsonl"), None);
        assert_eq!(
            p("-x-acme/0b1c/subagents/workflows/wf1/journal.jsonl"),
            None
        );
        assert_eq!(p("-x-acme/0b1c/subagents/agent-2.meta.json"), None);
        assert_eq!(p("-x-acme/notes.txt"), None);
    }

    #[test]
    fn a_projects_folder_may_be_named_directly() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("claude").join("projects");
        std::fs::create_dir_all(projects.join("-x")).unwrap();
        std::fs::write(projects.join("-x/s.jsonl"), "{}\n").unwrap();
        for root in [dir.path().join("claude"), projects.clone()] {
            let d = discover(&[root]);
            assert_eq!(d.files.len(), 1);
            assert_eq!(d.files[0].project, "-x");
        }
    }

    #[test]
    fn dangling_links_and_odd_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects");
        std::fs::create_dir_all(projects.join("-x")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), projects.join("-x/s.jsonl")).unwrap();
        std::fs::write(dir.path().join("real.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.jsonl"), projects.join("-x/t.jsonl"))
            .unwrap();
        let d = discover(&[dir.path().to_path_buf()]);
        assert_eq!(d.files.len(), 1, "{d:?}");
        assert!(d.files[0].path.ends_with("-x/t.jsonl"));
        assert_eq!(d.unreadable.len(), 1);
        assert!(d.unreadable[0].path.ends_with("-x/s.jsonl"));
    }

    #[test]
    fn the_scan_stats_each_file_as_std_does() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects");
        std::fs::create_dir_all(projects.join("-x/s1/subagents")).unwrap();
        std::fs::write(projects.join("-x/s1.jsonl"), "{}\n").unwrap();
        std::fs::write(projects.join("-x/s1/subagents/agent-a.jsonl"), "{}\n{}\n").unwrap();
        std::fs::write(dir.path().join("real.jsonl"), "{}\n{}\n{}\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.jsonl"), projects.join("-x/t.jsonl"))
            .unwrap();
        let d = discover(&[dir.path().to_path_buf()]);
        assert_eq!(d.files.len(), 3, "{d:?}");
        for f in &d.files {
            let md = std::fs::metadata(&f.path).unwrap();
            let st = f.stat.expect("stat'ed by the scan");
            assert_eq!(
                (st.dev, st.ino, st.size),
                (md.dev(), md.ino(), md.size()),
                "{f:?}"
            );
            assert_eq!(st.mtime_ns, md.mtime() * 1_000_000_000 + md.mtime_nsec());
            assert_eq!(st.ctime_ns, md.ctime() * 1_000_000_000 + md.ctime_nsec());
        }
        // The link is stat'ed through: the target's size.
        let t = d
            .files
            .iter()
            .find(|f| f.path.ends_with("t.jsonl"))
            .unwrap();
        assert_eq!(t.stat.unwrap().size, 9);
    }

    #[test]
    fn linked_folders_are_not_followed_and_odd_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects");
        std::fs::create_dir_all(projects.join("-x/s1/tool-results")).unwrap();
        std::fs::create_dir_all(projects.join("-x/memory")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join("elsewhere/a.jsonl"), "{}\n").unwrap();
        std::fs::write(projects.join("-x/s1/tool-results/o.jsonl"), "{}\n").unwrap();
        std::fs::write(projects.join("-x/memory/m.jsonl"), "{}\n").unwrap();
        std::fs::write(projects.join("-x/s1/chat.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), projects.join("-x/linked"))
            .unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), projects.join("-x/l.jsonl"))
            .unwrap();
        let fifo = projects.join("-x/p.jsonl");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let d = discover(std::slice::from_ref(&projects));
        let files: Vec<_> = d.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(files, [projects.join("-x/s1/chat.jsonl")], "{d:?}");
        assert_eq!(d.unreadable.len(), 1, "{d:?}");
        assert_eq!(d.unreadable[0].path, fifo);
        assert_eq!(d.unreadable[0].reason, "not a regular file");
    }

    /// The walk applies `transcript_project`'s rule: every `*.jsonl` it
    /// finds is one the rule accepts, with the project the rule gives, and
    /// it finds every one the rule accepts.
    #[test]
    fn the_walk_finds_what_transcript_project_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects");
        let files = [
            "loose.jsonl",
            "-x-acme/0b1c.jsonl",
            "-x-acme/agent-1.jsonl",
            "-x-acme/0b1c/subagents/agent-2.jsonl",
            "-x-acme/0b1c/subagents/journal.jsonl",
            "-x-acme/0b1c/subagents/workflows/wf1/agent-3.jsonl",
            "-x-acme/0b1c/subagents/workflows/wf1/journal.jsonl",
            "-x-acme/0b1c/journal.jsonl",
            "-x-acme/0b1c/chat.jsonl",
            "-x-acme/0b1c/tool-results/out.jsonl",
            "-x-acme/memory/notes.jsonl",
            "-x-acme/a/b/c/d.jsonl",
            "-x-acme/a/b/memory/e.jsonl",
            "-x-acme/0b1c/subagents/agent-2.meta.json",
            "-y/s.jsonl",
            "-y/notes.txt",
        ];
        for f in files {
            let path = projects.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "{}\n").unwrap();
        }
        let d = discover(&[dir.path().to_path_buf()]);
        let got: Vec<(String, String)> = d
            .files
            .iter()
            .map(|f| {
                let rel = f.path.strip_prefix(&projects).unwrap();
                (rel.to_string_lossy().into_owned(), f.project.clone())
            })
            .collect();
        let mut want: Vec<(String, String)> = files
            .iter()
            .filter_map(|f| p(f).map(|project| (f.to_string(), project)))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(got.iter().any(|(f, _)| f == "-x-acme/0b1c/journal.jsonl"));
        assert!(d.unreadable.is_empty(), "{d:?}");
    }
}
