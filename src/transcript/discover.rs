//! Finds transcript files under Claude Code config directories: every
//! `*.jsonl` under `projects/` at any depth, so a layout Claude Code
//! introduces later is read too, leaving out only what is known not to be
//! a transcript. Files and folders that cannot be read are reported, never
//! skipped silently.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// One transcript file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptFile {
    pub path: PathBuf,
    /// The encoded launch folder name (`projects/<project>/...`), used to
    /// attribute lines that carry no `cwd`; empty for a file directly under
    /// `projects/`.
    pub project: String,
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
        let walk = WalkDir::new(&canonical)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| !(e.file_type().is_dir() && skipped_folder(e.file_name())));
        for entry in walk {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.unreadable.push(Unreadable {
                        path: e
                            .path()
                            .map_or_else(|| canonical.clone(), Path::to_path_buf),
                        reason: e
                            .io_error()
                            .map_or_else(|| e.to_string(), |io| io.to_string()),
                    });
                    continue;
                }
            };
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(&canonical) else {
                continue;
            };
            let Some(project) = transcript_project(rel) else {
                continue;
            };
            let ft = entry.file_type();
            if ft.is_symlink() {
                // A linked file is read through its link; a dangling link
                // is reported. Linked folders are not followed (only the
                // Claude dir or `projects/` itself may be a link).
                match std::fs::metadata(path) {
                    Ok(md) if md.is_file() => {}
                    Ok(md) if md.is_dir() => continue,
                    Ok(_) => {
                        out.unreadable.push(Unreadable {
                            path: path.to_path_buf(),
                            reason: "not a regular file".into(),
                        });
                        continue;
                    }
                    Err(e) => {
                        out.unreadable.push(Unreadable {
                            path: path.to_path_buf(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                }
            } else if ft.is_dir() {
                continue; // a folder named *.jsonl: its files are walked
            } else if !ft.is_file() {
                out.unreadable.push(Unreadable {
                    path: path.to_path_buf(),
                    reason: "not a regular file".into(),
                });
                continue;
            }
            out.files.push(TranscriptFile {
                path: path.to_path_buf(),
                project,
            });
        }
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
    out
}

/// Folders that hold no transcripts: `<session>/tool-results/` (tool
/// output) and `memory/`.
fn skipped_folder(name: &std::ffi::OsStr) -> bool {
    name == "tool-results" || name == "memory"
}

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
    if dirs
        .iter()
        .any(|d| *d == b"tool-results" || *d == b"memory")
    {
        return None;
    }
    if *file == b"journal.jsonl" && dirs.iter().any(|d| *d == b"subagents") {
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
}
