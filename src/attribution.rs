//! Which arm a piece of work belongs to, from the directory it ran in.
//!
//! The owner of a `cwd` is the arm with the longest path that is a
//! path-boundary prefix of it: `/x/acme` owns `/x/acme/api` but not
//! `/x/acme-web`. Records without a `cwd` are matched by their transcript
//! folder name, which is the launch directory with every character that is
//! not a letter or digit replaced by `-`.

use std::collections::HashMap;

use crate::config::Arm;

/// Maps directories to arm indexes (into `Config::arms`).
#[derive(Debug, Clone)]
pub struct Attributor {
    /// Path -> arm index (the first arm to list a path keeps it). Hashed
    /// with foldhash: a lookup per folder of every place on every hook
    /// call (the keys are the config's own paths).
    paths: HashMap<String, usize, foldhash::fast::RandomState>,
    /// (encoded path, arm index), longest first.
    encoded: Vec<(String, usize)>,
}

impl Attributor {
    /// O(n log n) in the number of paths.
    pub fn new(arms: &[Arm]) -> Attributor {
        let mut sorted: Vec<(String, usize)> = arms
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.paths.iter().map(move |p| (p.clone(), i)))
            .collect();
        sorted.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let encoded = sorted
            .iter()
            .map(|(p, i)| (encode_project(p), *i))
            .collect();
        let mut paths = HashMap::with_capacity_and_hasher(sorted.len(), Default::default());
        for (p, i) in arms
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.paths.iter().map(move |p| (p, i)))
        {
            paths.entry(p.clone()).or_insert(i);
        }
        Attributor { paths, encoded }
    }

    /// Identifies the mapping (every path and encoded folder name with its
    /// arm): spend attributed under another mapping is never taken from
    /// the ledger's cache.
    pub fn identity(&self) -> u64 {
        let mut paths: Vec<(&String, &usize)> = self.paths.iter().collect();
        paths.sort();
        xxhash_rust::xxh3::xxh3_64(format!("{paths:?}\n{:?}", self.encoded).as_bytes())
    }

    /// Like [`Attributor::new`], and each arm path that `real_path` resolves
    /// to another spelling (a symlink on this machine) owns that spelling
    /// too, unless an arm lists it. The caller does the I/O; this stays
    /// pure. O(n log n) in the number of paths.
    pub fn with_real_paths(arms: &[Arm], real_path: impl Fn(&str) -> Option<String>) -> Attributor {
        let mut a = Attributor::new(arms);
        // Longest arm path first: of two arm paths that resolve to the
        // same folder, the longer one keeps it.
        let mut listed: Vec<(&String, usize)> = arms
            .iter()
            .enumerate()
            .flat_map(|(i, arm)| arm.paths.iter().map(move |p| (p, i)))
            .collect();
        listed.sort_by(|x, y| y.0.len().cmp(&x.0.len()).then_with(|| x.0.cmp(y.0)));
        let extra: Vec<(String, usize)> = listed
            .into_iter()
            .filter_map(|(p, i)| real_path(p).map(|r| (r, i)))
            .filter(|(r, _)| !a.paths.contains_key(r))
            .collect();
        if !extra.is_empty() {
            a.encoded
                .extend(extra.iter().map(|(p, i)| (encode_project(p), *i)));
            a.encoded
                .sort_by(|x, y| y.0.len().cmp(&x.0.len()).then_with(|| x.0.cmp(&y.0)));
            for (p, i) in extra {
                a.paths.entry(p).or_insert(i);
            }
        }
        a
    }

    /// The arm that owns `cwd`, if any: `cwd` itself and then each folder
    /// above it is looked up, so the longest arm path wins in O(depth).
    pub fn by_cwd(&self, cwd: &str) -> Option<usize> {
        let mut dir = cwd.trim_end_matches('/');
        loop {
            if let Some(&i) = self.paths.get(dir) {
                return Some(i);
            }
            let at = dir.rfind('/')?;
            dir = dir[..at].trim_end_matches('/');
            if dir.is_empty() {
                // Above the top folder: the root owns every absolute path.
                return self.paths.get("/").copied();
            }
        }
    }

    /// The arm for a transcript folder name (`-home-u-acme-api`), used only
    /// when a record has no `cwd`. The folder encodes the launch directory,
    /// so an arm owns it when its encoded path is a prefix that ends at a
    /// former separator (`-`) or the end.
    pub fn by_project(&self, project: &str) -> Option<usize> {
        self.encoded
            .iter()
            .find(|(enc, _)| {
                project == enc
                    || project
                        .strip_prefix(enc.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .map(|(_, i)| *i)
    }
}

/// True when `path` is `root` or lies below it.
pub fn is_within(path: &str, root: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Claude Code's folder name for a directory: every character that is not
/// an ASCII letter or digit becomes `-` (no collapsing, case kept).
pub fn encode_project(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Caps, Policy};

    fn arms(paths: &[&[&str]]) -> Vec<Arm> {
        paths
            .iter()
            .enumerate()
            .map(|(i, ps)| Arm {
                name: format!("arm{i}"),
                paths: ps.iter().map(|s| s.to_string()).collect(),
                caps: Caps::default(),
                policy: Policy {
                    grace_pct: 110,
                    action: crate::config::Action::Warn,
                    alert_at_pct: 80,
                },
                branch_caps: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn longest_path_boundary_prefix_wins() {
        let a = Attributor::new(&arms(&[
            &["/x/acme"],
            &["/x/acme-web"],
            &["/x/acme/legacy"],
        ]));
        assert_eq!(a.by_cwd("/x/acme"), Some(0));
        assert_eq!(a.by_cwd("/x/acme/api"), Some(0));
        assert_eq!(a.by_cwd("/x/acme/"), Some(0));
        assert_eq!(a.by_cwd("/x/acme-web/src"), Some(1));
        assert_eq!(a.by_cwd("/x/acme/legacy/app"), Some(2));
        assert_eq!(a.by_cwd("/x/acmeish"), None);
        assert_eq!(a.by_cwd("/x"), None);
        assert_eq!(a.by_cwd("/x//acme/api"), None); // not normalised here
        assert_eq!(a.by_cwd("x/acme"), None);
        assert_eq!(a.by_cwd(""), None);
        let root = Attributor::new(&arms(&[&["/"], &["/x/acme"]]));
        assert_eq!(root.by_cwd("/x/acme/api"), Some(1));
        assert_eq!(root.by_cwd("/y"), Some(0));
        assert_eq!(root.by_cwd("//y"), Some(0));
        assert_eq!(root.by_cwd("y"), None);
    }

    #[test]
    fn project_folder_fallback_respects_boundaries() {
        let a = Attributor::new(&arms(&[&["/x/acme"], &["/x/acme-web"]]));
        assert_eq!(a.by_project("-x-acme"), Some(0));
        assert_eq!(a.by_project("-x-acme-api"), Some(0));
        // Longest first: "-x-acme-web" is acme-web's, not acme's.
        assert_eq!(a.by_project("-x-acme-web"), Some(1));
        assert_eq!(a.by_project("-x-acmeish"), None);
    }

    #[test]
    fn real_paths_of_arm_paths_are_owned_too() {
        let a = Attributor::with_real_paths(&arms(&[&["/home/u/acme"], &["/data"]]), |p| {
            (p == "/home/u/acme").then(|| "/data/acme".to_owned())
        });
        assert_eq!(a.by_cwd("/home/u/acme/src"), Some(0));
        // The longer real path wins over the arm that owns its parent.
        assert_eq!(a.by_cwd("/data/acme/src"), Some(0));
        assert_eq!(a.by_cwd("/data/other"), Some(1));
        // The folder-name fallback knows both spellings.
        assert_eq!(a.by_project("-data-acme-src"), Some(0));
        assert_eq!(a.by_project("-home-u-acme"), Some(0));
        assert_eq!(a.by_project("-data-other"), Some(1));
    }

    #[test]
    fn encodes_like_claude_code() {
        assert_eq!(encode_project("/a/my_proj.v2"), "-a-my-proj-v2");
    }
}
