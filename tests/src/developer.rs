//! A developer at their machine: a home with a paas login and git settings of its own, and a
//! git checkout of a fixture app, driving the real `git` and `paas` binaries.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::{TestServer, paas_bin};

/// A developer's machine: a home with the paas login and git settings, and a checkout.
pub struct Developer {
    pub home: PathBuf,
    pub checkout: PathBuf,
    _dir: TempDir,
}

impl Developer {
    /// Logs in to `server` and makes a git checkout of `fixture` with one commit.
    pub fn new(server: &TestServer, fixture: &str) -> Developer {
        Developer::of(&server.url, &server.token, fixture)
    }

    /// [`Developer::new`] for the server at `url`.
    pub fn of(url: &str, token: &str, fixture: &str) -> Developer {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let checkout = dir.path().join("checkout");
        std::fs::create_dir_all(&home).unwrap();
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(fixture), &checkout);
        let developer = Developer { home, checkout, _dir: dir };
        developer.paas(&["login", url, "--token", token]).success();
        developer.git(&["init", "-q", "-b", "main"]).success();
        developer.commit("First version");
        developer
    }

    /// Logs in again, to `server` restarted on new ports.
    pub fn logged_in_to(self, server: &TestServer) -> Developer {
        self.paas(&["login", &server.url, "--token", &server.token]).success();
        self
    }

    pub fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.checkout)
            .env("HOME", &self.home)
            .env("PAAS_CONFIG_DIR", self.home.join("paas-config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env_remove("PAAS_URL")
            .env_remove("PAAS_TOKEN")
            .env_remove("PAAS_APP")
            .stdin(Stdio::null());
        command
    }

    pub fn git(&self, args: &[&str]) -> Run {
        Run::of(self.command(Path::new("git"), args), args)
    }

    pub fn paas(&self, args: &[&str]) -> Run {
        Run::of(self.command(&paas_bin(), args), args)
    }

    /// `paas ARGS` with a standard input that stays open and silent (as cron or a CI runner
    /// may hand it down), or `None` if it did not finish within `limit`.
    pub fn paas_with_open_stdin(&self, args: &[&str], limit: std::time::Duration) -> Option<Run> {
        let mut command = self.command(&paas_bin(), args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let open = child.stdin.take();
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        drop(open);
        Some(Run { output: child.wait_with_output().unwrap(), what: args.join(" ") })
    }

    /// `paas ARGS` with `input` piped to its standard input.
    pub fn paas_fed(&self, args: &[&str], input: Vec<u8>) -> Run {
        use std::io::Write;
        let mut command = self.command(&paas_bin(), args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        Run { output, what: args.join(" ") }
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]).success();
        self.git(&["commit", "-q", "-m", message]).success();
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).success().trim().to_string()
    }

    pub fn write(&self, file: &str, contents: &str) {
        std::fs::write(self.checkout.join(file), contents).unwrap();
    }

    /// Replaces `from` with `to` in a file of the checkout.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.checkout.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(path, text.replace(from, to)).unwrap();
    }
}

/// A finished command: its output as a person sees it.
pub struct Run {
    output: Output,
    what: String,
}

impl Run {
    pub fn of(mut command: Command, args: &[&str]) -> Run {
        Run { output: command.output().unwrap(), what: args.join(" ") }
    }

    pub fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    pub fn success(self) -> String {
        assert!(self.output.status.success(), "`{}` failed:\n{}", self.what, self.text());
        self.text()
    }

    pub fn failure(self) -> String {
        assert!(
            !self.output.status.success(),
            "`{}` should have failed:\n{}",
            self.what,
            self.text()
        );
        self.text()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Developer {
    /// Starts a git command, in a process group of its own, without waiting for it.
    pub fn git_spawn(&self, args: &[&str]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        self.command(Path::new("git"), args)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}
