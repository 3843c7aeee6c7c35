//! Finds transcript files under Claude Code config directories, in every
//! layout Claude Code has used, and leaves out what is not a transcript.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// One transcript file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptFile {
    pub path: PathBuf,
    /// The encoded launch folder name (`projects/<project>/...`), used to
    /// attribute lines that carry no `cwd`.
    pub project: String,
}

/// All transcripts under `<root>/projects` for each root, sorted by path,
/// each file once even when roots overlap.
pub fn discover(roots: &[PathBuf]) -> Vec<TranscriptFile> {
    let mut out = Vec::new();
    let mut seen_roots = Vec::new();
    for root in roots {
        let projects = root.join("projects");
        let canonical = projects.canonicalize().unwrap_or_else(|_| projects.clone());
        if seen_roots.contains(&canonical) {
            continue;
        }
        seen_roots.push(canonical.clone());
        for entry in WalkDir::new(&canonical)
            .min_depth(2)
            .into_iter()
            .filter_map(Result::ok)
        {
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(&canonical) else {
                continue;
            };
            if let Some(project) = transcript_project(rel) {
                out.push(TranscriptFile {
                    path: path.to_path_buf(),
                    project,
                });
            }
        }
    }
    // Byte order, not `Path`'s component-wise order: the same result for
    // de-duplication at a fraction of the cost on thousands of files.
    out.sort_unstable_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    out.dedup_by(|a, b| a.path.as_os_str() == b.path.as_os_str());
    out
}

/// For a path relative to `projects/`, the project folder if the file is a
/// transcript: `<project>/<session>.jsonl`, `<project>/agent-<id>.jsonl`,
/// `<project>/<session>/subagents/**/agent-<id>.jsonl`. Not transcripts:
/// `tool-results/`, `memory/`, `*.meta.json`, workflow `journal.jsonl`.
pub fn transcript_project(rel: &Path) -> Option<String> {
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    let (project, rest) = parts.split_first()?;
    let file = *rest.last()?;
    if !file.ends_with(".jsonl") {
        return None;
    }
    match rest.len() {
        1 => {}
        _ => {
            // Nested: only subagent transcripts under <session>/subagents/.
            if rest.get(1) != Some(&"subagents") || !file.starts_with("agent-") {
                return None;
            }
            if rest.iter().any(|p| *p == "tool-results" || *p == "memory") {
                return None;
            }
        }
    }
    Some((*project).to_owned())
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
        assert_eq!(p("loose.jsonl"), None);
    }
}
