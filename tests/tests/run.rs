//! `paas run` end to end: a real `paas server` process, an app deployed by `git push`, the
//! real CLI. Output arrives byte for byte whatever its size or shape, stdout and stderr apart,
//! with the command's exit code; a reader that stops makes the command wait, not the server
//! buffer.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use paas_tests::developer::Developer;
use paas_tests::{Db, ServerProcess, paas_bin};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A `paas server` process with `app` deployed from the python-stdlib fixture by `git push`;
/// the server's API token.
async fn deployed(dir: &TempDir, app: &str) -> (ServerProcess, Developer, String) {
    let database = paas_tests::database_url(Db::Sqlite, dir).await;
    let server =
        ServerProcess::start(dir.path(), &database, &paas_tests::test_network(), None).await;
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap().trim().to_string();
    let dev = Developer::of(&server.url, &token, "python-stdlib");
    dev.paas(&["apps:create", app]).success();
    let pushed = dev.git(&["push", "paas", "main"]).success();
    assert!(pushed.contains("Released v2"), "{pushed}");
    (server, dev, token)
}

/// `paas run COMMAND` (one argument, so the shell in the container parses it), its stdin
/// closed.
fn paas_run(dev: &Developer, command: &str) -> Output {
    dev.command(&paas_bin(), &["run", command]).output().unwrap()
}

/// Runs `make` (a shell command that writes to its stdout) in a one-off that keeps what it
/// wrote in a file, prints the file's sha256 on stderr, then the file on stdout, and exits
/// with `code`. Checks that the CLI exits with `code` and printed exactly those bytes; returns
/// them.
fn run_and_compare(dev: &Developer, make: &str, code: i32) -> Vec<u8> {
    let command =
        format!("{make} > /tmp/out && sha256sum < /tmp/out >&2 && cat /tmp/out; exit {code}");
    let started = Instant::now();
    let out = paas_run(dev, &command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{make}: {stderr}");
    let theirs = stderr
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("{make}: no sha256 on stderr: {stderr}"));
    let ours = hex::encode(Sha256::digest(&out.stdout));
    assert_eq!(ours, theirs, "{make}: {} bytes arrived", out.stdout.len());
    eprintln!("{make}: {} bytes in {:?}", out.stdout.len(), started.elapsed());
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paas_run_delivers_output_byte_for_byte_with_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, dev, _) = deployed(&dir, "bytes").await;

    // 50 MB that are not text: past Docker's 10 MB log rotation, with the command's code.
    let noise = run_and_compare(&dev, "head -c 50000000 /dev/urandom", 3);
    assert_eq!(noise.len(), 50_000_000);

    // 2,000,000 numbered lines: none lost, none repeated, in order.
    let lines = run_and_compare(&dev, "seq 1 2000000", 0);
    let expected: String = (1..=2_000_000).map(|n| format!("{n}\n")).collect();
    assert!(lines == expected.as_bytes(), "{} bytes, not {}", lines.len(), expected.len());

    // One 20 MB line with no newline at all: not cut every 16 KiB, not dropped at the end.
    let line = run_and_compare(&dev, "head -c 15000000 /dev/urandom | base64 -w 0", 0);
    assert_eq!(line.len(), 20_000_000);
    assert!(!line.contains(&b'\n'));

    // Output that does not end in a newline, on stdout and stderr apart.
    let command =
        "python3 -c \"import sys; sys.stdout.write('x' * 2000)\"; printf 'no newline' >&2";
    let out = paas_run(&dev, command);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == vec![b'x'; 2000], "{:?}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stderr.ends_with(b"no newline"), "{:?}", String::from_utf8_lossy(&out.stderr));

    dev.paas(&["apps:destroy", "--app", "bytes", "--confirm", "bytes"]).success();
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    line.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

const MB: u64 = 1 << 20;

/// Writes base64 noise as fast as it is read, counting the 64 KB blocks it has written.
// The count is written beside and renamed into place: a reader of a file being rewritten in
// place once saw it empty.
const PRODUCER: &str = "i=0; while true; do head -c 49152 /dev/urandom | base64; i=$((i+1)); echo $i > /tmp/blocks.new; mv /tmp/blocks.new /tmp/blocks; done";

/// How many blocks the one-off of `app` has written so far. `docker exec` gets 10 s: Docker
/// holds up a container killed under the test (by another test run's clean-up, say) until
/// its unread output is read, and the test must fail then, not hang.
fn blocks_written(app: &str) -> u64 {
    let app = format!("label=io.paas.app={app}");
    // `ps` lists a one-off from the moment its container is created; on a loaded machine it
    // can take seconds more to be running, which is all `docker ps` shows.
    let mut id = String::new();
    for _ in 0..40 {
        let ids = std::process::Command::new("docker")
            .args(["ps", "--quiet", "--filter", &app, "--filter", "label=io.paas.one-off=true"])
            .output()
            .unwrap();
        id = String::from_utf8(ids.stdout).unwrap().lines().next().unwrap_or("").to_string();
        if !id.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(!id.is_empty(), "the one-off runs");
    let id = id.as_str();
    let read = "cat /tmp/blocks 2>/dev/null || echo 0";
    let count = std::process::Command::new("timeout")
        .args(["10", "docker", "exec", id, "sh", "-c", read])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&count.stdout);
    assert!(
        count.status.success(),
        "docker exec in {id}: {}",
        String::from_utf8_lossy(&count.stderr)
    );
    text.trim().parse().unwrap()
}

/// With nobody reading, the one-off of `app` soon stops writing, and the server process
/// `pid` does not grow: what is not read waits in the container's pipe. Takes 12 to 30 s.
async fn check_the_producer_waits(app: &str, pid: u32, who: &str) {
    // The buffers on the way (Docker's, the sockets', paas's) fill first; then it stops.
    let mut blocks = blocks_written(app);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = blocks_written(app);
        if now == blocks {
            break;
        }
        assert!(Instant::now() < deadline, "{who}: it goes on writing with nobody reading");
        blocks = now;
    }
    let memory = rss(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (memory_after, blocks_after) = (rss(pid), blocks_written(app));
    eprintln!(
        "{who}: stopped at {blocks} blocks, {blocks_after} after 10 s; server {} then {} MB",
        memory / MB,
        memory_after / MB
    );
    assert!(blocks > 0, "{who}: the one-off wrote nothing");
    assert_eq!(blocks, blocks_after, "{who}: the one-off went on writing with nobody reading");
    assert!(
        memory_after < memory + 16 * MB,
        "{who}: the server grew from {} MB to {} MB while nobody read",
        memory / MB,
        memory_after / MB
    );
}

/// `paas run PRODUCER` whose output nobody reads (`paas run … | sleep 60`).
fn unread_run(dev: &Developer) -> std::process::Child {
    let mut command = dev.command(&paas_bin(), &["run", PRODUCER]);
    command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_makes_the_command_wait_not_the_server_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let (server, dev, token) = deployed(&dir, "slow-reader").await;
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let ps = || async {
        let url = format!("{}/api/v1/apps/slow-reader/ps", server.url);
        let response = http.get(url).bearer_auth(&token).send().await.unwrap();
        response.json::<serde_json::Value>().await.unwrap().as_array().unwrap().len()
    };

    // Through the API: read 4 MB, stop for a while, then read on.
    let url = format!("{}/api/v1/apps/slow-reader/run", server.url);
    let command = serde_json::json!({ "command": PRODUCER });
    let mut response = http.post(url).bearer_auth(&token).json(&command).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut read = 0;
    while read < 4 * MB {
        read += response.chunk().await.unwrap().expect("still streaming").len() as u64;
    }
    check_the_producer_waits("slow-reader", pid, "API").await;
    // The stream goes on where it stopped, in the documented format.
    let mut text = Vec::new();
    while text.len() < 4 * MB as usize {
        text.extend_from_slice(&response.chunk().await.unwrap().expect("still streaming"));
    }
    let whole = text.split(|b| *b == b'\n').skip(1).find(|line| !line.is_empty()).unwrap();
    let event: serde_json::Value = serde_json::from_slice(whole).unwrap();
    assert!(event["out"].is_string(), "{event}");
    assert_eq!(ps().await, 2, "web.1 and the one-off");
    // Hanging up ends the run.
    drop(response);
    paas_tests::wait_until("the abandoned one-off goes", Duration::from_secs(15), || async {
        ps().await == 1
    })
    .await;

    // Through the CLI, whose stdout nobody reads (`paas run … | sleep 60`).
    let mut cli = unread_run(&dev);
    paas_tests::wait_until("the one-off starts", Duration::from_secs(15), || async {
        ps().await == 2
    })
    .await;
    check_the_producer_waits("slow-reader", pid, "CLI").await;
    // The reader goes away (`sleep 60` ends): the CLI fails on the broken pipe, and its
    // one-off goes with it.
    drop(cli.stdout.take());
    let status = cli.wait().unwrap();
    assert!(!status.success(), "{status}");
    paas_tests::wait_until("the one-off of the CLI goes", Duration::from_secs(15), || async {
        ps().await == 1
    })
    .await;

    // Destroyed while a one-off waits for its reader: the run ends first (Docker holds up a
    // container killed while its output is unread), and nothing of the app is left.
    let mut cli = unread_run(&dev);
    paas_tests::wait_until("the one-off starts", Duration::from_secs(15), || async {
        ps().await == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let destroyed = http.delete(format!("{}/api/v1/apps/slow-reader", server.url));
    let destroyed =
        tokio::time::timeout(Duration::from_secs(60), destroyed.bearer_auth(&token).send());
    assert_eq!(destroyed.await.expect("destroy does not hang").unwrap().status(), 204);
    eprintln!("destroyed in {:?}", started.elapsed());
    drop(cli.stdout.take());
    let _ = cli.wait();
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=io.paas.app=slow-reader"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "containers left behind");
}
