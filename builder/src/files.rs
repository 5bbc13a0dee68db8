//! Reading the pushed tree's files without ever leaving it.
//!
//! The tree is untrusted: its `Procfile` may be a symlink to `/etc/passwd`, its
//! `.dockerignore` one to `/dev/zero`. Paths are resolved here one component at a time,
//! following symlinks only while they stay inside the app's directory and never looking at
//! anything outside it, so a build's outcome does not even tell whether a host path exists.
//! Only regular files are opened, and no more than [`MAX_FILE`] bytes of them are read.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::BuildError;

/// Files paas reads (manifests, settings, `.dockerignore`) are hand-written and small; a
/// bigger one is refused rather than read into memory.
pub(crate) const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Symlinks followed for one path before giving up, as the kernel does.
const MAX_LINKS: usize = 40;

/// What a relative path of the app names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Missing,
    /// The real, symlink-free path.
    Dir(PathBuf),
    File(PathBuf),
    /// A pipe, socket or device: never opened (a pipe would block the build forever).
    Special,
    /// The path leads out of the app: through the symlink named (relative to the app), or
    /// through `..` when `None`.
    Outside {
        link: Option<String>,
    },
}

enum Step {
    Up,
    Name(OsString),
}

/// The steps of a relative path; `.` and any root are dropped (callers check for roots).
fn steps(path: &Path) -> VecDeque<Step> {
    path.components()
        .filter_map(|c| match c {
            Component::ParentDir => Some(Step::Up),
            Component::Normal(name) => Some(Step::Name(name.to_os_string())),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Resolves `rel` (relative, `/`-separated) inside `root`, which must be canonical. Only
/// paths under `root` are ever looked at.
pub(crate) fn resolve(root: &Path, rel: &str) -> Result<Entry, BuildError> {
    if Path::new(rel).has_root() {
        return Ok(Entry::Outside { link: None });
    }
    let mut todo = steps(Path::new(rel));
    // Where we are, relative to `root`, with no symlink in it.
    let mut at = PathBuf::new();
    let mut last_link = None;
    let mut links = 0;
    while let Some(step) = todo.pop_front() {
        let name = match step {
            Step::Up => {
                if !at.pop() {
                    return Ok(Entry::Outside { link: last_link });
                }
                continue;
            }
            Step::Name(name) => name,
        };
        let here = at.join(&name);
        let full = root.join(&here);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => return Ok(Entry::Missing),
            Err(e) => return Err(BuildError::io(full, e)),
        };
        if meta.is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(BuildError::refused(rel, "goes through too many symlinks"));
            }
            let link = here.to_string_lossy().into_owned();
            let target = std::fs::read_link(&full).map_err(|e| BuildError::io(&full, e))?;
            let mut target_steps = if target.has_root() {
                // An absolute link may still name a place in the app.
                match target.strip_prefix(root) {
                    Ok(inside) => {
                        at = PathBuf::new();
                        steps(inside)
                    }
                    Err(_) => return Ok(Entry::Outside { link: Some(link) }),
                }
            } else {
                steps(&target)
            };
            // The target replaces the link, relative to the folder the link is in.
            target_steps.append(&mut todo);
            todo = target_steps;
            last_link = Some(link);
            continue;
        }
        at = here;
        if !todo.is_empty() && !meta.is_dir() {
            return Ok(Entry::Missing);
        }
        if todo.is_empty() {
            return Ok(if meta.is_dir() {
                Entry::Dir(full)
            } else if meta.is_file() {
                Entry::File(full)
            } else {
                Entry::Special
            });
        }
    }
    // An empty path, or one that came back to the root.
    Ok(Entry::Dir(root.join(at)))
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

/// The refusal for an entry paas will not read; `None` for files and folders.
pub(crate) fn refusal(rel: &str, entry: &Entry) -> Option<BuildError> {
    let reason = match entry {
        Entry::Missing | Entry::Dir(_) | Entry::File(_) => return None,
        Entry::Special => {
            "is not a regular file (a device, pipe or socket); paas does not read it".to_string()
        }
        Entry::Outside { link: Some(link) } if link == rel => {
            "is a symlink to a path outside the app; paas does not follow it".to_string()
        }
        Entry::Outside { link: Some(link) } => format!(
            "is reached through {link}, a symlink to a path outside the app; paas does not \
             follow it"
        ),
        Entry::Outside { link: None } => "is outside the app; paas does not read it".to_string(),
    };
    Some(BuildError::refused(rel, reason))
}

/// The text of `rel`, `None` when it does not exist or is a folder. A symlink out of the
/// app, a device or pipe, a file over [`MAX_FILE`] or one that is not UTF-8 is an error
/// that names the file and says nothing of its content.
pub(crate) fn read(root: &Path, rel: &str) -> Result<Option<String>, BuildError> {
    let entry = resolve(root, rel)?;
    if let Some(refused) = refusal(rel, &entry) {
        return Err(refused);
    }
    let Entry::File(path) = entry else {
        return Ok(None);
    };
    let file = std::fs::File::open(&path).map_err(|e| BuildError::io(&path, e))?;
    let mut bytes = Vec::new();
    // The cap holds while reading: the size the file reported is no promise.
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| BuildError::io(&path, e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(BuildError::manifest(
            rel,
            format!("is larger than {} MiB, too large for paas to read", MAX_FILE >> 20),
        ));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| BuildError::manifest(rel, "is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::providers::test_support::tree;

    /// An app folder inside a parent that holds a secret file beside it.
    fn app_beside_a_secret() -> (tempfile::TempDir, PathBuf) {
        let parent = tree(&[("outside/secret.txt", "the host's secret\n"), ("app/app.py", "")]);
        let app = parent.path().join("app").canonicalize().unwrap();
        (parent, app)
    }

    fn refused(result: Result<Option<String>, BuildError>) -> String {
        let error = result.expect_err("refused");
        assert!(matches!(error, BuildError::FileRefused { .. }), "{error:?}");
        let message = error.to_string();
        assert!(!message.contains("the host's secret") && !message.contains("root:"), "{message}");
        message
    }

    #[test]
    fn symlinks_out_of_the_app_are_not_followed() {
        let (parent, app) = app_beside_a_secret();
        symlink("/etc/passwd", app.join("Procfile")).unwrap();
        symlink("../outside/secret.txt", app.join("paas.toml")).unwrap();
        symlink(parent.path().join("outside"), app.join("frontend")).unwrap();
        symlink("../../../../../../../../etc/passwd", app.join("runtime.txt")).unwrap();
        symlink("/nowhere/at/all", app.join("Aptfile")).unwrap();

        let message = refused(read(&app, "Procfile"));
        assert_eq!(
            message,
            "Procfile is a symlink to a path outside the app; paas does not follow it"
        );
        refused(read(&app, "paas.toml"));
        refused(read(&app, "runtime.txt"));
        // Whether the target exists makes no difference: it is never looked at.
        refused(read(&app, "Aptfile"));
        let message = refused(read(&app, "frontend/secret.txt"));
        assert!(message.contains("through frontend, a symlink"), "{message}");
        assert_eq!(
            resolve(&app, "frontend").unwrap(),
            Entry::Outside { link: Some("frontend".into()) }
        );
        refused(read(&app, "../outside/secret.txt"));
        refused(read(&app, "/etc/passwd"));
    }

    #[test]
    fn devices_and_pipes_are_not_opened() {
        let (_parent, app) = app_beside_a_secret();
        symlink("/dev/zero", app.join(".dockerignore")).unwrap();
        refused(read(&app, ".dockerignore"));
        let fifo = std::process::Command::new("mkfifo").arg(app.join("Procfile")).status();
        assert!(fifo.unwrap().success());
        let message = refused(read(&app, "Procfile"));
        assert!(message.contains("not a regular file"), "{message}");
    }

    #[test]
    fn symlinks_inside_the_app_still_work() {
        let (_parent, app) = app_beside_a_secret();
        tree_write(&app, &[("config/Procfile.prod", "web: python app.py\n")]);
        symlink("config/Procfile.prod", app.join("Procfile")).unwrap();
        symlink(app.join("config"), app.join("settings")).unwrap();
        symlink("../config/./Procfile.prod", app.join("config/again")).unwrap();
        let expected = Some("web: python app.py\n".to_string());
        assert_eq!(read(&app, "Procfile").unwrap(), expected);
        assert_eq!(read(&app, "settings/Procfile.prod").unwrap(), expected);
        assert_eq!(read(&app, "config/again").unwrap(), expected);
        assert_eq!(read(&app, "missing.txt").unwrap(), None);
        assert_eq!(read(&app, "app.py/x").unwrap(), None);
        assert_eq!(read(&app, "config").unwrap(), None);

        symlink("loop", app.join("loop")).unwrap();
        assert!(read(&app, "loop").unwrap_err().to_string().contains("too many symlinks"));
    }

    #[test]
    fn reading_stops_at_the_cap() {
        let (_parent, app) = app_beside_a_secret();
        let big = "x".repeat(MAX_FILE as usize + 1);
        tree_write(&app, &[("package.json", &big)]);
        let error = read(&app, "package.json").unwrap_err();
        assert!(error.to_string().contains("too large"), "{error}");
    }

    fn tree_write(root: &Path, files: &[(&str, &str)]) {
        crate::providers::test_support::write(root, files);
    }
}
