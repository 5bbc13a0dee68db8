//! The build context: a tar of the app's directory as the daemon will see it.
//!
//! `.git` is never sent, `.dockerignore` is applied here (as the docker CLI does), and the
//! headers are normalised (owner root, fixed times) so the same files give the same layers
//! whoever checked them out and when.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use tar::{Builder, EntryType, Header, HeaderMode};

use crate::BuildError;
use crate::ignore::Dockerignore;

/// A context written to a temporary file, ready to stream.
pub(crate) struct Context {
    pub file: File,
    pub files: usize,
    pub bytes: u64,
}

/// Tars `dir` into a temporary file. `extra` files (a generated Dockerfile, …) are added at
/// the root and win over app files of the same name; `always` names app files sent even when
/// `.dockerignore` leaves them out (the Dockerfile and `.dockerignore` itself, as with the
/// docker CLI).
pub(crate) fn write(
    dir: &Path,
    extra: &[(&str, &[u8])],
    always: &[&str],
) -> Result<Context, BuildError> {
    // Read as every other app file is: a `.dockerignore` linked to /dev/zero or out of the
    // app is refused, not read.
    let root = dir.canonicalize().map_err(|e| BuildError::io(dir, e))?;
    let ignore = crate::files::read(&root, ".dockerignore")?
        .map(|text| Dockerignore::parse(&text))
        .unwrap_or_default();
    let file = tempfile::tempfile().map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    let mut walk =
        Walk { root: dir, ignore: &ignore, extra, always, tar: Builder::new(file), files: 0 };
    walk.tar.mode(HeaderMode::Deterministic);
    walk.tar.follow_symlinks(false);
    walk.dir("")?;
    for (name, contents) in extra {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        walk.tar.append_data(&mut header, name, *contents).map_err(|e| BuildError::io(*name, e))?;
        walk.files += 1;
    }
    let files = walk.files;
    let mut file = walk.tar.into_inner().map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    file.flush().map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    let bytes = file
        .seek(SeekFrom::End(0))
        .and_then(|end| file.seek(SeekFrom::Start(0)).map(|_| end))
        .map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    Ok(Context { file, files, bytes })
}

struct Walk<'a> {
    root: &'a Path,
    ignore: &'a Dockerignore,
    extra: &'a [(&'a str, &'a [u8])],
    always: &'a [&'a str],
    tar: Builder<File>,
    files: usize,
}

impl Walk<'_> {
    fn dir(&mut self, rel: &str) -> Result<(), BuildError> {
        let path = self.root.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .map_err(|e| BuildError::io(&path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| BuildError::io(&path, e))?;
        // Sorted, so the same tree always gives the same tar.
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if self.extra.iter().any(|(extra, _)| *extra == rel) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| BuildError::io(entry.path(), e))?;
            let excluded = self.ignore.excludes(&rel) && !self.always.contains(&rel.as_str());
            if kind.is_dir() {
                if excluded && !self.ignore.has_exceptions() {
                    continue;
                }
                if !excluded {
                    self.append(&entry.path(), &rel)?;
                }
                self.dir(&rel)?;
            } else if (kind.is_file() || kind.is_symlink()) && !excluded {
                self.append(&entry.path(), &rel)?;
                self.files += 1;
            }
            // Sockets, fifos and devices have no place in an image's source.
        }
        Ok(())
    }

    fn append(&mut self, path: &Path, rel: &str) -> Result<(), BuildError> {
        self.tar.append_path_with_name(path, rel).map_err(|e| BuildError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::tree;

    fn names(context: Context) -> Vec<String> {
        let mut archive = tar::Archive::new(context.file);
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn git_and_ignored_files_stay_home() {
        let dir = tree(&[
            (".git/HEAD", "ref"),
            ("sub/.git", "gitdir: x"),
            (".dockerignore", "*.log\nnode_modules\nsecret/\n!secret/public.txt\nDockerfile\n"),
            ("Dockerfile", "FROM scratch\n"),
            ("app.py", ""),
            ("debug.log", ""),
            ("node_modules/x/index.js", ""),
            ("secret/key", ""),
            ("secret/public.txt", ""),
            ("sub/main.py", ""),
            (".paas.Dockerfile", "the app's own, replaced"),
        ]);
        let context = write(
            dir.path(),
            &[(".paas.Dockerfile", b"FROM x\n")],
            &["Dockerfile", ".dockerignore"],
        )
        .unwrap();
        assert_eq!(context.files, 6);
        assert!(context.bytes > 0);
        let names = names(context);
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "app.py",
                "secret/public.txt",
                "sub",
                "sub/main.py",
                ".paas.Dockerfile"
            ],
        );
    }

    #[test]
    fn a_dockerignore_out_of_the_app_is_refused_unread() {
        let dir = tree(&[("app.py", "")]);
        // /dev/zero never ends: reading it would never return.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(".dockerignore")).unwrap();
        let error = write(dir.path(), &[], &[]).err().expect("refused");
        assert!(error.to_string().starts_with(".dockerignore is a symlink"), "{error}");

        // The symlinks themselves still travel as symlinks, never as their targets.
        std::fs::remove_file(dir.path().join(".dockerignore")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("Procfile")).unwrap();
        let context = write(dir.path(), &[], &[]).unwrap();
        let mut archive = tar::Archive::new(context.file);
        let procfile = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("Procfile"))
            .unwrap();
        assert_eq!(procfile.header().entry_type(), EntryType::Symlink);
        assert_eq!(procfile.size(), 0);
    }
}
