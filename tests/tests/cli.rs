//! A new user's walk through the CLI, with the built `paas` binary as both server and client.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use paas_tests::{Db, ServerProcess, both_databases, database_url, free_port, paas_bin};

both_databases!(new_user_walkthrough, what_the_cli_sends_is_checked);

async fn start_server(dir: &Path, database_url: &str) -> ServerProcess {
    ServerProcess::start(dir, database_url, &paas_tests::test_network(), None).await
}

/// Runs `paas ARGS` in `cwd` as a user whose config lives in `home`.
fn paas(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(paas_bin())
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("PAAS_CONFIG_DIR", home.join("paas-config"))
        .env_remove("PAAS_URL")
        .env_remove("PAAS_TOKEN")
        .env_remove("PAAS_APP")
        .stdin(Stdio::null())
        .output()
        .expect("run paas")
}

/// Asserts success; returns stdout and stderr together, as a person sees them.
fn ok(output: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "command failed:\n{text}");
    text
}

fn fails(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "command should have failed:\n{stderr}");
    assert!(stderr.starts_with("error: ") || stderr.contains("\nerror: "), "{stderr}");
    stderr
}

fn git(cwd: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(cwd).output().expect("git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_string()
}

async fn new_user_walkthrough(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &database_url(db, &dir).await).await;
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let token = token.trim();
    let home: PathBuf = dir.path().join("home");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);

    // Before logging in, commands say how to log in.
    let err = fails(paas(&home, &repo, &["apps"]));
    assert!(err.contains("paas login"), "{err}");
    let err = fails(paas(&home, &repo, &["login", &server.url, "--token", "paas_wrong"]));
    assert!(err.contains("invalid API token"), "{err}");

    let out = ok(paas(&home, &repo, &["login", &server.url, "--token", token]));
    assert!(out.contains("Logged in to") && out.contains("admin"), "{out}");
    let credentials = home.join("paas-config/credentials.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials must be private");
    }

    let out = ok(paas(&home, &repo, &["apps:create", "walkthrough"]));
    assert!(out.contains("Creating app walkthrough... done"), "{out}");
    let remote = git(&repo, &["remote", "get-url", "paas"]);
    assert_eq!(remote.trim(), format!("{}/walkthrough.git", server.url));

    // From here the app comes from the git remote, as with Heroku.
    let out = ok(paas(&home, &repo, &["config:set", "A=1", "B=two words"]));
    assert!(out.contains("Setting A, B on walkthrough... done, v2"), "{out}");
    assert!(out.contains("B: two words"), "{out}");
    let out = ok(paas(&home, &repo, &["config:unset", "A"]));
    assert!(out.contains("done, v3"), "{out}");
    let out = ok(paas(&home, &repo, &["config:get", "B"]));
    assert_eq!(out, "two words\n");
    let out = ok(paas(&home, &repo, &["config", "--shell"]));
    assert!(out.contains("B='two words'") && !out.contains("A="), "{out}");

    let out = ok(paas(&home, &repo, &["releases"]));
    assert!(out.contains("=== walkthrough Releases - Current: v3"), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('v')).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("v3") && lines[0].contains("Remove A config vars"), "{out}");
    assert!(lines[1].starts_with("v2") && lines[1].contains("Set A, B config vars"), "{out}");
    assert!(lines[2].starts_with("v1") && lines[2].contains("Initial release"), "{out}");

    // Nothing to scale before the first deploy, as on Heroku.
    let err = fails(paas(&home, &repo, &["ps:scale", "web=2"]));
    assert!(err.contains("Couldn't find that process type"), "{err}");
    let out = ok(paas(&home, &repo, &["apps:info"]));
    assert!(out.contains("=== walkthrough") && out.contains("v3"), "{out}");

    // Mistakes get the server's message and a non-zero exit.
    let err = fails(paas(&home, &repo, &["config:set", "NOEQUALS"]));
    assert!(err.contains("is not KEY=value"), "{err}");
    let err = fails(paas(&home, &repo, &["config:set", "BAD-KEY=1"]));
    assert!(err.contains("not a valid config var name"), "{err}");
    let err = fails(paas(&home, &repo, &["apps:create", "Bad--Name"]));
    assert!(err.contains("not a valid app name"), "{err}");
    let err = fails(paas(&home, &repo, &["apps:info", "-a", "ghost"]));
    assert!(err.contains("app ghost not found"), "{err}");
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let err = fails(paas(&home, &outside, &["releases"]));
    assert!(err.contains("-a APP"), "{err}");

    // Destroying needs confirmation, then removes the app and the remote.
    let err = fails(paas(&home, &repo, &["apps:destroy"]));
    assert!(err.contains("--confirm walkthrough"), "{err}");
    let out = ok(paas(&home, &repo, &["apps:destroy", "--confirm", "walkthrough"]));
    assert!(out.contains("Destroyed walkthrough"), "{out}");
    assert!(!git(&repo, &["remote"]).contains("paas"));
    let out = ok(paas(&home, &repo, &["apps"]));
    assert!(out.contains("No apps yet"), "{out}");

    // Environment variables override the stored login, for scripts.
    let output = Command::new(paas_bin())
        .args(["apps"])
        .current_dir(&repo)
        .env("HOME", &home)
        .env("PAAS_CONFIG_DIR", dir.path().join("nowhere"))
        .env("PAAS_URL", &server.url)
        .env("PAAS_TOKEN", token)
        .output()
        .unwrap();
    ok(output);
}

/// App names and other path parts never steer a request elsewhere: names are checked as the
/// server checks them, and every path part is percent-encoded.
async fn what_the_cli_sends_is_checked(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &database_url(db, &dir).await).await;
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let home: PathBuf = dir.path().join("home");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    ok(paas(&home, &cwd, &["login", &server.url, "--token", token.trim()]));
    ok(paas(&home, &cwd, &["apps:create", "victim", "--no-remote"]));
    let victim_lives = || {
        let out = ok(paas(&home, &cwd, &["apps"]));
        assert!(out.contains("victim"), "victim was destroyed:\n{out}");
    };

    for args in [
        vec!["apps:destroy", "--confirm", "x/../victim", "-a", "x/../victim"],
        vec!["apps:destroy", "--confirm", "x/../victim"],
        vec!["config", "-a", "../apps"],
        vec!["releases", "-a", "victim/releases/.."],
        vec!["ps:scale", "-a", "Victim", "web=1"],
    ] {
        let err = fails(paas(&home, &cwd, &args));
        assert!(err.contains("is not a valid app name"), "{args:?}: {err}");
        victim_lives();
    }
    // Other path parts are sent as one segment each, so `..` is a value, not a way up.
    let err = fails(paas(&home, &cwd, &["domains:remove", "-a", "victim", "../../victim"]));
    assert!(err.contains("not found"), "{err}");
    victim_lives();
    let err = fails(paas(&home, &cwd, &["releases:info", "-a", "victim", "../.."]));
    assert!(err.contains("is not a release version"), "{err}");
    let err = fails(paas(&home, &cwd, &["apps:destroy", "-a", "victim", "--confirm", "victim2"]));
    assert!(err.contains("does not match"), "{err}");
    victim_lives();

    // A change that changes nothing makes no release, and says so.
    let out = ok(paas(&home, &cwd, &["config:set", "-a", "victim", "A=1"]));
    assert!(out.contains("done, v2"), "{out}");
    let out = ok(paas(&home, &cwd, &["config:set", "-a", "victim", "A=1"]));
    assert!(out.contains("No change: A already has that value; victim stays at v2"), "{out}");
    let out = ok(paas(&home, &cwd, &["config:unset", "-a", "victim", "NOT_SET"]));
    assert!(out.contains("No change: NOT_SET is not set; victim stays at v2"), "{out}");

    // A release that changed many vars is one table row of sensible width; releases:info has
    // the whole description.
    let pairs: Vec<String> = (0..40).map(|i| format!("LONG_NAME_{i:02}=x")).collect();
    let mut args = vec!["config:set", "-a", "victim"];
    args.extend(pairs.iter().map(String::as_str));
    ok(paas(&home, &cwd, &args));
    let out = ok(paas(&home, &cwd, &["releases", "-a", "victim"]));
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 140, "rows of {widest} characters:\n{out}");
    assert!(out.contains("Set LONG_NAME_00, LONG_NAME_01") && out.contains('…'), "{out}");
    let out = ok(paas(&home, &cwd, &["releases:info", "-a", "victim", "v3"]));
    assert!(out.contains("LONG_NAME_39 config vars"), "{out}");
}

/// A backend that answers every request with `body`, one connection at a time.
fn fixed_backend(body: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

#[tokio::test]
async fn standalone_router_serves_and_reloads_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (fixed_backend("one"), fixed_backend("two"));
    let table = dir.path().join("routes.json");
    let write_table = |backend: std::net::SocketAddr| {
        let json = format!(
            r#"{{"routes": [{{"app": "demo", "hosts": ["demo.example.com"], "backends": ["{backend}"]}}]}}"#
        );
        std::fs::write(&table, json).unwrap();
    };
    write_table(one);
    let port = free_port();
    let child = Command::new(paas_bin())
        .args(["router", "--router-listen", &format!("127.0.0.1:{port}"), "--table"])
        .arg(&table)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let router = ServerProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
        router: ([127, 0, 0, 1], port).into(),
        network: None,
    };
    let fetch = || async {
        let response = reqwest::Client::new()
            .get(&router.url)
            .header("host", "demo.example.com")
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while fetch().await.as_deref() != Some("one") {
        assert!(Instant::now() < deadline, "router did not serve the table");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A broken file on reload keeps the current table.
    std::fs::write(&table, "{not json").unwrap();
    let hup = |pid: u32| Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(hup(router.child.id()).success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fetch().await.as_deref(), Some("one"));
    // A good one is taken.
    write_table(two);
    assert!(hup(router.child.id()).success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch().await.as_deref() != Some("two") {
        assert!(Instant::now() < deadline, "router did not reload the table");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `paas server` takes settings from a TOML file under the flags and environment variables;
/// `--print-config` shows the merged result, where each came from, the password redacted.
#[test]
fn server_settings_merge_a_config_file_under_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("paas.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:1\"\nrouter_listen = \"127.0.0.1:9999\"\n\
         database_url = \"postgres://paas:hunter2@db/paas\"\nkeep_releases = 3\n\
         router_trusted_proxies = [\"10.0.0.0/8\", \"192.168.0.1\"]\n",
    )
    .unwrap();
    let print = |extra: &[&str]| {
        let mut command = Command::new(paas_bin());
        command.args(["server", "--config"]).arg(&file).args(extra).arg("--print-config");
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("PAAS_") || key == "DATABASE_URL" {
                command.env_remove(key);
            }
        }
        command.env("PAAS_LISTEN", "127.0.0.1:7777").output().unwrap()
    };
    let out = print(&["--keep-releases", "9"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "listen = \"127.0.0.1:7777\"  # $PAAS_LISTEN",
        "router_listen = \"127.0.0.1:9999\"  # config file",
        "database_url = \"postgres://paas:***@db/paas\"  # config file",
        "keep_releases = \"9\"  # flag",
        "router_trusted_proxies = \"10.0.0.0/8,192.168.0.1\"  # config file",
        "domain = \"localhost\"  # default",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");

    std::fs::write(&file, "router-listen = \"127.0.0.1:9999\"\n").unwrap();
    let out = print(&[]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(error.contains("unknown setting \"router-listen\""), "{error}");
}
