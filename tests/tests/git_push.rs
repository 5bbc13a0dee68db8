//! `git push paas main` with the real git client against the real server, Docker and router.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use paas_tests::{Db, TestServer, paas_bin};
use tempfile::TempDir;

/// A developer's machine: a home with the paas login and git settings, and a checkout.
struct Developer {
    home: PathBuf,
    checkout: PathBuf,
    _dir: TempDir,
}

impl Developer {
    /// Logs in to `server` and makes a git checkout of `fixture` with one commit.
    fn new(server: &TestServer, fixture: &str) -> Developer {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let checkout = dir.path().join("checkout");
        std::fs::create_dir_all(&home).unwrap();
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(fixture), &checkout);
        let developer = Developer { home, checkout, _dir: dir };
        developer.paas(&["login", &server.url, "--token", &server.token]).success();
        developer.git(&["init", "-q", "-b", "main"]).success();
        developer.commit("First version");
        developer
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
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

    fn git(&self, args: &[&str]) -> Run {
        Run::of(self.command(Path::new("git"), args), args)
    }

    fn paas(&self, args: &[&str]) -> Run {
        Run::of(self.command(&paas_bin(), args), args)
    }

    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]).success();
        self.git(&["commit", "-q", "-m", message]).success();
        self.head()
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).success().trim().to_string()
    }

    fn write(&self, file: &str, contents: &str) {
        std::fs::write(self.checkout.join(file), contents).unwrap();
    }

    /// Replaces `from` with `to` in a file of the checkout.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.checkout.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(path, text.replace(from, to)).unwrap();
    }
}

/// A finished command: its output as a person sees it.
struct Run {
    output: Output,
    what: String,
}

impl Run {
    fn of(mut command: Command, args: &[&str]) -> Run {
        Run { output: command.output().unwrap(), what: args.join(" ") }
    }

    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    fn success(self) -> String {
        assert!(self.output.status.success(), "`{}` failed:\n{}", self.what, self.text());
        self.text()
    }

    fn failure(self) -> String {
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

async fn body_of(server: &TestServer, host: &str) -> String {
    server.app_request(host, "/").await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_push_deploys_and_refuses_what_it_must() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    let first = dev.head();
    let created = dev.paas(&["apps:create", "shop"]).success();
    assert!(created.contains("Git remote paas now points at"), "{created}");

    // First push: the build and release stream back as `remote:` lines.
    let out = dev.git(&["push", "paas", "main"]).success();
    for expected in [
        "remote: -----> Python app detected",
        "remote: -----> Built paas/app-shop:",
        "remote: -----> Released v2",
        "remote:        http://shop.localhost:",
        "deployed to paas",
        " * [new branch]      main -> main",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    assert!(body_of(&server, "shop.localhost").await.contains("\"app\": \"python-stdlib\""));

    // A change: v3 serves it; the release and build record who pushed what.
    dev.edit("app.py", "\"app\": \"python-stdlib\"", "\"app\": \"shop-v3\"");
    let second = dev.commit("Rename the app");
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("remote: -----> Released v3"), "{out}");
    assert!(body_of(&server, "shop.localhost").await.contains("shop-v3"));
    let releases = server.get_json("/apps/shop/releases").await;
    let v3 = &releases.as_array().unwrap()[0];
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["created_by"], "admin");
    assert_eq!(v3["description"], format!("Deploy {}", &second[..7]));
    let build = server.get_json(&format!("/apps/shop/builds/{}", v3["build_id"])).await;
    assert_eq!(build["source"], "git");
    assert_eq!(build["commit_sha"], second.as_str());
    assert_eq!(build["commit_message"], "Rename the app");

    // A broken app: the push is rejected, the branch stays, v3 keeps serving.
    dev.write("Procfile", "web python app.py\n");
    dev.commit("Break the Procfile");
    let out = dev.git(&["push", "paas", "main"]).failure();
    assert!(out.contains("Procfile"), "{out}");
    assert!(out.contains("remote:  !     Push rejected"), "{out}");
    assert!(out.contains("! [remote rejected] main -> main (pre-receive hook declined)"), "{out}");
    let remote_head = dev.git(&["ls-remote", "paas", "refs/heads/main"]).success();
    assert!(remote_head.starts_with(&second), "{remote_head}");
    assert!(body_of(&server, "shop.localhost").await.contains("shop-v3"));

    // Another branch is refused, naming the branch that deploys.
    let out = dev.git(&["push", "paas", "main:feature"]).failure();
    assert!(out.contains("shop deploys from `main` or `master`"), "{out}");
    assert!(out.contains("git push paas feature:main"), "{out}");

    // The deployed commit again: git has nothing to send; under `master` paas says so.
    dev.git(&["reset", "-q", "--hard", &second]).success();
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("Everything up-to-date"), "{out}");
    let out = dev.git(&["push", "paas", "main:master"]).success();
    assert!(out.contains(&format!("{} is already deployed as v3; nothing to do", &second[..7])));

    // History rewritten: a plain push is refused by git, a force push deploys.
    dev.git(&["reset", "-q", "--hard", &first]).success();
    dev.edit("app.py", "\"app\": \"python-stdlib\"", "\"app\": \"shop-forced\"");
    dev.commit("Start over");
    dev.git(&["push", "paas", "main"]).failure();
    let out = dev.git(&["push", "--force", "paas", "main"]).success();
    assert!(out.contains("remote: -----> Released v4"), "{out}");
    assert!(body_of(&server, "shop.localhost").await.contains("shop-forced"));

    // A bad token: 401 with a realm, so git asks for a password (and here cannot).
    let url = format!("{}/shop.git", server.url.replace("http://", "http://paas:wrong@"));
    let out = dev.git(&["push", &url, "main"]).failure();
    assert!(out.contains("Authentication failed"), "{out}");
    let response =
        server.http.get(format!("{}/shop.git/info/refs?service=git-upload-pack", server.url));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"paas\"");
    let out = dev.git(&["ls-remote", &format!("{}/nope.git", server.url)]).failure();
    assert!(out.contains("There is no app named nope"), "{out}");

    // Clone the deployed code back.
    let clone = dev.checkout.with_file_name("clone");
    let clone_arg = clone.to_str().unwrap();
    dev.git(&["clone", "-q", &format!("{}/shop.git", server.url), clone_arg]).success();
    let app_py = std::fs::read_to_string(clone.join("app.py")).unwrap();
    assert!(app_py.contains("shop-forced"), "{app_py}");

    // A deploy branch of the app's own: only it deploys.
    let out = dev.paas(&["apps:update", "--deploy-branch", "production"]).success();
    assert!(out.contains("Pushes to production now deploy shop"), "{out}");
    dev.write("NOTES", "not deployed\n");
    dev.commit("Notes");
    let out = dev.git(&["push", "paas", "main"]).failure();
    assert!(out.contains("shop deploys from `production`"), "{out}");
    dev.paas(&["apps:update", "--deploy-branch", "no..pe"]).failure();

    // `git:remote` wires another checkout to the app.
    dev.git(&["remote", "remove", "paas"]).success();
    dev.paas(&["git:remote", "-a", "shop"]).success();
    assert!(dev.git(&["remote", "get-url", "paas"]).success().contains("/shop.git"));
}

/// A Dockerfile app whose build takes `seconds` (never cached: a fresh nonce each time), and
/// which answers with `marker`.
fn slow_dockerfile(seconds: u32, marker: &str) -> String {
    let nonce: u64 = rand::random();
    format!(
        "FROM paas/python:bookworm\nRUN echo {nonce} && sleep {seconds}\n\
         RUN echo {marker} > /greeting.txt\nWORKDIR /srv\nCOPY server.py .\n\
         CMD [\"python\", \"server.py\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_queue_and_an_abandoned_push_changes_nothing() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "dockerfile");
    dev.paas(&["apps:create", "queue"]).success();
    dev.git(&["push", "paas", "main"]).success();
    let first = body_of(&server, "queue.localhost").await;

    // Two pushes at once, to main and to master: the second waits, says so, then deploys.
    dev.write("Dockerfile", &slow_dockerfile(3, "a"));
    dev.commit("Slow build a");
    let a = dev.git_spawn(&["push", "paas", "main"]);
    wait_for_build(&server, "queue", 2).await;
    dev.write("Dockerfile", &slow_dockerfile(1, "b"));
    let b_sha = dev.commit("Slow build b");
    let b = dev.git(&["push", "paas", "main:master"]).success();
    assert!(b.contains("Another deploy of queue is in progress; waiting for it"), "{b}");
    assert!(b.contains("Released v4"), "{b}");
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let releases = server.get_json("/apps/queue/releases").await;
    assert_eq!(releases[0]["description"], format!("Deploy {}", &b_sha[..7]));

    // A pusher killed mid-build: the build is abandoned, nothing is released, the branch
    // does not move, and the app serves on.
    let serving = body_of(&server, "queue.localhost").await;
    assert_ne!(serving, first);
    assert_eq!(serving, "b\n");
    dev.write("Dockerfile", &slow_dockerfile(30, "never"));
    dev.commit("Never finishes");
    let mut pusher = dev.git_spawn(&["push", "paas", "main"]);
    let build = wait_for_build(&server, "queue", 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // As a Ctrl-C would: git and its helpers all go.
    let group = format!("-{}", pusher.id());
    Command::new("kill").args(["-9", "--", &group]).status().unwrap();
    let _ = pusher.wait();
    // Noticed at the next keepalive to the pusher, within seconds, though the step is silent.
    let deadline = Instant::now() + Duration::from_secs(20);
    let build = loop {
        let build = server.get_json(&format!("/apps/queue/builds/{build}")).await;
        if build["status"] != "pending" && build["status"] != "building" {
            break build;
        }
        assert!(Instant::now() < deadline, "the abandoned build never ended: {build}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(build["status"], "failed", "{build}");
    assert!(build["error"].as_str().unwrap().contains("interrupted"), "{build}");
    let releases = server.get_json("/apps/queue/releases").await;
    assert_eq!(releases[0]["version"], 4, "no release after the abandoned push");
    let heads = dev.git(&["ls-remote", "paas"]).success();
    assert!(heads.contains(&b_sha), "{heads}");
    assert_eq!(body_of(&server, "queue.localhost").await, serving);
}

impl Developer {
    /// Starts a git command, in a process group of its own, without waiting for it.
    fn git_spawn(&self, args: &[&str]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        self.command(Path::new("git"), args)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Waits until the app has a build number `n` under way or done; its id.
async fn wait_for_build(server: &TestServer, app: &str, n: usize) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let builds = server.get_json(&format!("/apps/{app}/builds")).await;
        let builds = builds.as_array().unwrap();
        if builds.len() >= n {
            return builds[0]["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "build {n} of {app} never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
