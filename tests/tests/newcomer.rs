//! The README's first five minutes, as a newcomer runs them on a fresh machine: `paas server`
//! started from an empty folder with no settings but its two ports, then `paas login`,
//! `paas apps:create` and `git push paas main`. Every other test passes absolute paths and
//! picks its base images; this one passes nothing, so relative defaults are what it tests.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use paas_tests::developer::Developer;
use paas_tests::{free_port, paas_bin, wait_until};

/// The server, killed when the test ends however it ends; its log is kept for failures.
struct Server {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the app's containers and images, also when the test fails before `apps:destroy`.
/// The newcomer's server uses the default `paas` network, which `.ci/run` does not sweep.
struct AppCleanup(String);

impl Drop for AppCleanup {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            Command::new("docker").args(args).stdout(Stdio::piped()).stderr(Stdio::null()).output()
        };
        let label = format!("label=io.paas.app={}", self.0);
        if let Ok(out) = docker(&["ps", "-aq", "--filter", &label]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        let reference = format!("reference=paas/app-{}", self.0);
        if let Ok(out) = docker(&["images", "-q", "--filter", &reference]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rmi", "-f", id]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_path_deploys_by_git_push() {
    let cwd = tempfile::tempdir().unwrap();
    let (api, router) = (free_port(), free_port());
    let mut command = Command::new(paas_bin());
    command.arg("server").current_dir(cwd.path());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("PAAS_") || key == "DATABASE_URL" {
            command.env_remove(&*key);
        }
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .env("PAAS_LISTEN", format!("127.0.0.1:{api}"))
        .env("PAAS_ROUTER_LISTEN", format!("127.0.0.1:{router}"))
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server { child, log };

    // The token is printed once, with the command to log in.
    let (found, token) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, token)) = line.split_once("--token ") {
                let _ = found.send(token.trim().to_string());
            }
        }
    });
    let token = token
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no token printed; the server said:\n{}", server.log()));
    let url = format!("http://127.0.0.1:{api}");

    let dev = Developer::of(&url, &token, "python-stdlib");
    let app = format!("newcomer-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let _cleanup = AppCleanup(app.clone());
    dev.paas(&["apps:create", &app]).success();
    let push = dev.git(&["push", "paas", "main"]).text();
    assert!(push.contains("remote: -----> Released v"), "{push}\nserver log:\n{}", server.log());
    assert!(push.contains("Using base image"), "the build says which base image: {push}");

    // State landed under ./data of the folder it was started in, nowhere else.
    let data = cwd.path().join("data");
    assert!(data.join("paas.db").is_file());
    assert!(data.join("repos").join(format!("{app}.git")).join("HEAD").is_file());
    assert!(!data.join("repos").join("data").exists(), "a repository nested under a relative path");

    let http = reqwest::Client::new();
    let host = format!("{app}.localhost");
    wait_until("the app answers through the router", Duration::from_secs(30), || async {
        let response =
            http.get(format!("http://127.0.0.1:{router}/")).header("host", &host).send().await;
        match response {
            Ok(response) if response.status().is_success() => {
                response.text().await.is_ok_and(|body| body.contains("python-stdlib"))
            }
            _ => false,
        }
    })
    .await;

    dev.paas(&["apps:destroy", "-a", &app, "--confirm", &app]).success();
}
