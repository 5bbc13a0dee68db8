//! One module per language, each behind [`Provider`]: does this tree look like mine, and if so,
//! how is it built and started. [`plan`](crate::plan) asks them in a fixed order and takes the
//! first that answers yes.

mod go;
mod node;
pub(crate) mod python;
mod ruby;
mod shell;
mod static_site;

use std::path::{Path, PathBuf};

pub(crate) use python::version as python_version;

use crate::config::Requested;
use crate::files::{self, Entry};
use crate::{BaseImages, BuildError, BuildPlan};

pub(crate) trait Provider: Sync {
    /// Cheap: looks only at which files exist.
    fn detect(&self, app: &App) -> bool;
    /// Reads what it needs and describes the build. Process types here are the inferred
    /// ones; the Procfile and paas.toml are merged in by the caller.
    fn plan(&self, app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError>;
}

/// Detection order: the first language that matches wins, as the issue asks; the Procfile-only
/// shell app comes last because every other kind may have a Procfile too.
pub(crate) fn all() -> [&'static dyn Provider; 6] {
    [&python::Python, &node::Node, &go::Go, &ruby::Ruby, &static_site::Static, &shell::Shell]
}

/// Read-only view of the app's directory, with paths relative to it (`/`-separated). Every
/// look goes through [`files`](crate::files), so nothing outside the app is ever read.
pub(crate) struct App {
    /// The app's directory, canonical: the boundary no symlink may cross.
    root: PathBuf,
    /// The folder this view is of, inside `root`: `""`, or `frontend/`.
    prefix: String,
}

impl App {
    pub(crate) fn new(dir: &Path) -> App {
        let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        App { root, prefix: String::new() }
    }

    /// A view of the folder `rel`, whose symlinks may still lead anywhere in the app.
    pub(crate) fn sub(&self, rel: &str) -> App {
        let prefix = match rel {
            "" => self.prefix.clone(),
            rel => format!("{}{rel}/", self.prefix),
        };
        App { root: self.root.clone(), prefix }
    }

    fn entry(&self, rel: &str) -> Entry {
        // An unreadable folder on the way reads as missing here; `read` reports it.
        files::resolve(&self.root, &format!("{}{rel}", self.prefix)).unwrap_or(Entry::Missing)
    }

    /// True for a file, and for what only looks like one: a symlink out of the app, a device
    /// or a pipe. Detection then picks it up and reading it fails with a clear error, rather
    /// than the app building as if it were not there.
    pub(crate) fn is_file(&self, rel: &str) -> bool {
        !matches!(self.entry(rel), Entry::Missing | Entry::Dir(_))
    }

    /// True for a folder inside the app (a symlink out of it is never one).
    pub(crate) fn is_dir(&self, rel: &str) -> bool {
        matches!(self.entry(rel), Entry::Dir(_))
    }

    /// The file's text, `None` when it does not exist.
    pub(crate) fn read(&self, rel: &str) -> Result<Option<String>, BuildError> {
        files::read(&self.root, &format!("{}{rel}", self.prefix))
    }

    pub(crate) fn json(&self, rel: &str) -> Result<Option<serde_json::Value>, BuildError> {
        self.read(rel)?
            .map(|text| serde_json::from_str(&text).map_err(|e| BuildError::manifest(rel, e)))
            .transpose()
    }

    pub(crate) fn toml(&self, rel: &str) -> Result<Option<toml::Table>, BuildError> {
        self.read(rel)?
            .map(|text| text.parse::<toml::Table>().map_err(|e| BuildError::manifest(rel, e)))
            .transpose()
    }

    /// Names of the entries directly in `rel` (`""` for the app's root), sorted; hidden
    /// entries left out.
    pub(crate) fn list(&self, rel: &str) -> Vec<String> {
        let Entry::Dir(dir) = self.entry(rel.trim_end_matches('/')) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The first of `names` that is a file.
    pub(crate) fn first_file<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names.iter().copied().find(|name| self.is_file(name))
    }

    /// `files` that exist, in order: the lock and manifest files an install step is keyed on.
    /// One that is a symlink out of the app, a device or a pipe fails the build here, since
    /// the install step would copy it in.
    pub(crate) fn existing(&self, names: &[&str]) -> Result<Vec<String>, BuildError> {
        let mut found = Vec::new();
        for file in names {
            let rel = format!("{}{file}", self.prefix);
            let entry = self.entry(file);
            if let Some(refused) = files::refusal(&rel, &entry) {
                return Err(refused);
            }
            if matches!(entry, Entry::File(_)) {
                found.push(file.to_string());
            }
        }
        Ok(found)
    }
}

/// A runtime version from a one-line file such as `.python-version` (`3.12.1` → `3.12` with
/// `parts` = 2). `None` when the file is absent or holds something else.
pub(crate) fn version_file(
    app: &App,
    file: &str,
    prefix: &str,
    parts: usize,
) -> Result<Option<Requested>, BuildError> {
    let Some(text) = app.read(file)? else {
        return Ok(None);
    };
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    Ok(first
        .and_then(|line| line.strip_prefix(prefix))
        .and_then(|v| leading_version(v, parts))
        .map(|version| Requested { version, source: file.to_string() }))
}

/// The first `parts` numeric components of a version at the start of `text`:
/// `leading_version("3.12.1", 2)` is `3.12`, `leading_version("20.x", 1)` is `20`.
pub(crate) fn leading_version(text: &str, parts: usize) -> Option<String> {
    let text = text.trim().trim_start_matches(['v', '=', '^', '~', ' ']);
    let numbers: Vec<&str> = text
        .split('.')
        .take(parts)
        .map_while(|part| {
            let digits = part.find(|c: char| !c.is_ascii_digit()).map_or(part, |end| &part[..end]);
            (!digits.is_empty()).then_some(digits)
        })
        .collect();
    (!numbers.is_empty()).then(|| numbers.join("."))
}

/// True when `command` is a single simple command that `exec` can replace the shell with, so
/// the app gets signals directly instead of through `sh`.
pub(crate) fn is_simple_command(command: &str) -> bool {
    !command.contains(['\n', ';', '&', '|', '(', ')', '<', '>', '`'])
        && !command.trim_start().starts_with("exec ")
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    /// The plan for a tree of `files`.
    pub(crate) fn plan_of(
        files: &[(&str, &str)],
        images: &crate::BaseImages,
    ) -> Result<crate::BuildPlan, crate::BuildError> {
        let dir = tree(files);
        crate::plan(dir.path(), images)
    }

    /// Writes `files` (path, contents) into a fresh temporary directory.
    pub(crate) fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), files);
        dir
    }

    pub(crate) fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, contents) in files {
            let path = root.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(path, contents).expect("write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(leading_version("3.12.1", 2).as_deref(), Some("3.12"));
        assert_eq!(leading_version("3", 2).as_deref(), Some("3"));
        assert_eq!(leading_version("20.x", 1).as_deref(), Some("20"));
        assert_eq!(leading_version("^18.2", 1).as_deref(), Some("18"));
        assert_eq!(leading_version("v1.22.3", 2).as_deref(), Some("1.22"));
        assert_eq!(leading_version("latest", 1), None);
        assert!(is_simple_command("gunicorn app.wsgi --log-file -"));
        assert!(!is_simple_command("python manage.py migrate && gunicorn x"));
    }
}
