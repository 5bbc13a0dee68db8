//! The builder against the real Docker engine, on the offline `paas/* stack` base images
//! (`bash deploy/stack/build.sh` makes them): every fixture app builds into an image whose
//! container answers HTTP on $PORT; the dependency layer is reused after a code change; bad
//! input fails with a clear message and leaves no container behind.
//!
//! Tests run in parallel: each uses its own app name (so its own tags) and removes the images
//! and containers it made, even when it fails.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use futures_util::StreamExt;
use paas_builder::{
    BaseImages, BuildError, BuildLog, BuildRequest, Builder, BuilderConfig, BuiltImage, ImageRole,
};

const PORT: u16 = 5000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The test setup's settings: the local stack images, never the process environment.
fn settings() -> BuilderConfig {
    BuilderConfig {
        base_images: BaseImages::local(),
        ca_file: None,
        ca_inject: false,
        timeout: Duration::from_secs(600),
    }
}

/// The host's CA bundle: on this project's machines it includes the CA of the proxy that
/// re-signs TLS, so builds that fetch from PyPI need it.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// [`settings`] with `PAAS_BUILD_CA_FILE` set to the host's bundle.
fn with_ca() -> BuilderConfig {
    BuilderConfig { ca_file: Some(HOST_CA_BUNDLE.into()), ..settings() }
}

fn unique_app(what: &str) -> String {
    format!("t-{what}-{:08x}", rand::random::<u32>())
}

async fn docker() -> Docker {
    Docker::connect_with_defaults().unwrap().negotiate_version().await.unwrap()
}

/// Removes what a test made when it goes out of scope, also on panic. Uses the docker CLI,
/// since Drop cannot await.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
    /// Untagged build layers to remove, parents before children (as the log lists them).
    layers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = std::process::Command::new("docker")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        for id in &self.containers {
            docker(&["rm", "--force", "--volumes", id]);
        }
        // --no-prune: a parent layer with no other child yet may be the cache hit of a build
        // running in parallel, which fails if the layer goes. Layers go child first.
        for image in self.images.iter().rev().chain(self.layers.iter().rev()) {
            docker(&["rmi", "--no-prune", image]);
        }
    }
}

/// Builds `req` with `config`; the image's tag is cleaned up with `cleanup`.
async fn build_with(
    config: BuilderConfig,
    req: &BuildRequest,
    cleanup: &mut Cleanup,
) -> (Result<BuiltImage, BuildError>, BuildLog) {
    cleanup.images.push(req.image_tag());
    let builder = Builder::connect(config).await.unwrap();
    let log = BuildLog::new();
    let result = builder.build(req, &log).await;
    log.close();
    (result, log)
}

async fn build_ok(req: &BuildRequest, cleanup: &mut Cleanup) -> (BuiltImage, BuildLog) {
    build_ok_with(settings(), req, cleanup).await
}

async fn build_ok_with(
    config: BuilderConfig,
    req: &BuildRequest,
    cleanup: &mut Cleanup,
) -> (BuiltImage, BuildLog) {
    let (result, log) = build_with(config, req, cleanup).await;
    match result {
        Ok(image) => (image, log),
        Err(e) => panic!("build of {} failed: {e}\n{}", req.app, log.text()),
    }
}

/// Starts `command` (the image's own CMD when empty) in a container of `image` with
/// PORT=5000, as the runner will, and returns the container's id.
async fn start(docker: &Docker, image: &str, command: &str, cleanup: &mut Cleanup) -> String {
    start_with_env(docker, image, command, &[], cleanup).await
}

/// [`start`] with more environment (`KEY=value`), as config vars are at run time.
async fn start_with_env(
    docker: &Docker,
    image: &str,
    command: &str,
    env: &[&str],
    cleanup: &mut Cleanup,
) -> String {
    let cmd = (!command.is_empty())
        .then(|| vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()]);
    let mut env: Vec<String> = env.iter().map(|e| e.to_string()).collect();
    env.push(format!("PORT={PORT}"));
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        env: Some(env),
        cmd,
        labels: Some([("io.paas.test".to_string(), "builder".to_string())].into()),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    cleanup.containers.push(id.clone());
    docker.start_container(&id, None).await.unwrap();
    id
}

/// A running web process: its container's IP on the default bridge, reachable from the host.
async fn serve(docker: &Docker, image: &BuiltImage, cleanup: &mut Cleanup) -> String {
    serve_with_env(docker, image, &[], cleanup).await
}

async fn serve_with_env(
    docker: &Docker,
    image: &BuiltImage,
    env: &[&str],
    cleanup: &mut Cleanup,
) -> String {
    let id = start_with_env(docker, &image.image, &image.process_types["web"], env, cleanup).await;
    let inspect = docker.inspect_container(&id, None).await.unwrap();
    inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|networks| {
            networks.into_values().filter_map(|n| n.ip_address).find(|ip| !ip.is_empty())
        })
        .expect("container has a bridge IP")
}

/// Waits until the web process answers `GET path` and returns the body.
async fn get(ip: &str, path: &str) -> String {
    let url = format!("http://{ip}:{PORT}{path}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => {
                return response.text().await.unwrap();
            }
            Ok(response) if Instant::now() > deadline => {
                panic!("{url} answered {}", response.status())
            }
            Err(e) if Instant::now() > deadline => panic!("{url} did not answer: {e}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Builds a fixture, runs its web process and returns (image, log, body of GET /).
async fn build_and_serve(
    req: &BuildRequest,
    cleanup: &mut Cleanup,
) -> (BuiltImage, BuildLog, String) {
    let (image, log) = build_ok(req, cleanup).await;
    let docker = docker().await;
    let labels = docker.inspect_image(&image.image).await.unwrap().config.unwrap().labels.unwrap();
    assert_eq!(labels["io.paas.app"], req.app);
    assert_eq!(labels["io.paas.build"], req.build_id.to_string());
    let ip = serve(&docker, &image, cleanup).await;
    let body = get(&ip, "/").await;
    (image, log, body)
}

fn assert_log(log: &BuildLog, needle: &str) {
    let text = log.text();
    assert!(text.contains(needle), "{needle:?} not in the build log:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stdlib_app() {
    let mut cleanup = Cleanup::default();
    let mut req = BuildRequest::new(unique_app("py"), 1, fixture("python-stdlib"));
    req.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(image.kind, "python");
    assert_eq!(image.image, format!("paas/app-{}:b1", req.app));
    assert!(image.size > 0 && image.id.starts_with("sha256:"));
    assert_eq!(image.process_types["web"], "python app.py");
    assert!(body.contains("\"app\": \"python-stdlib\""), "{body}");
    // .dockerignore kept local.env out of the image.
    assert!(body.contains("\"dockerignored_file_present\": false"), "{body}");
    assert_log(&log, "-----> Python app detected");
    assert_log(&log, "-----> Installing dependencies (requirements.txt)");
    // .python-version asks for 3.13: Debian trixie's.
    assert_log(
        &log,
        "Using Python 3.13 from paas/python:trixie (Debian trixie), as .python-version asks",
    );
    assert_log(&log, ", commit 0123456)");
    let labels =
        docker().await.inspect_image(&image.image).await.unwrap().config.unwrap().labels.unwrap();
    assert_eq!(labels["io.paas.commit"], req.commit.clone().unwrap());
}

/// `--base-images auto`, the default: the engine is asked at build time, and the local stack
/// images it has are used (Docker cannot pull here, so an official image would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_base_images_use_the_local_stack() {
    let mut cleanup = Cleanup::default();
    let config = BuilderConfig { base_images: BaseImages::auto(), ..settings() };
    let req = BuildRequest::new(unique_app("auto"), 1, fixture("python-stdlib"));
    let (image, log) = build_ok_with(config, &req, &mut cleanup).await;
    assert_eq!(image.kind, "python");
    for local in ["paas/python:trixie", "paas/python-build:trixie"] {
        assert_log(&log, &format!("Using base image {local} (found locally; --base-images auto)"));
    }
    let ip = serve(&docker().await, &image, &mut cleanup).await;
    assert!(get(&ip, "/").await.contains("\"app\": \"python-stdlib\""));
}

/// An Aptfile's Debian packages are in the image that runs (from Debian's mirror).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aptfile_packages_are_installed() {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app("apt"), 1, fixture("python-aptfile"));
    let (_, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_log(&log, "-----> Installing Debian packages: jq");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body["jq"].as_str().unwrap().starts_with("jq-1."), "{body}");
}

/// A Python app with a Node.js client (Heroku's nodejs then python buildpacks): the client is
/// built in a Node.js stage, its output lands in the Python image, Node.js and node_modules
/// do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_app_with_a_node_client() {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app("py-client"), 1, fixture("python-client"));
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(image.kind, "python");
    assert!(body.contains("<p>Built by node v"), "{body}");
    assert_log(&log, "a Node.js client in client/ is built first (cd client && npm run build)");
    assert_log(&log, "-----> Building the client: cd client && npm run build");
    let ip = serve(&docker().await, &image, &mut cleanup).await;
    let facts: serde_json::Value = serde_json::from_str(&get(&ip, "/facts").await).unwrap();
    assert_eq!(facts, serde_json::json!({"node_in_image": false, "node_modules": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_app_without_dependencies() {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app("node"), 2, fixture("node"));
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(image.kind, "node");
    // The start script runs node directly: no npm between the app and its signals.
    assert_eq!(image.process_types["web"], "node server.js");
    assert!(body.starts_with("hello from node v"), "{body}");
    assert_log(&log, "-----> Node.js app detected");
    assert_log(&log, "package.json declares no dependencies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_shaped_app_with_a_release_process() {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app("django"), 3, fixture("django"));
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(body, "hello from the django-shaped app\n");
    assert_log(&log, "-----> Python app detected (Django)");
    assert_log(&log, "Procfile declares types    -> release, web");
    assert_eq!(image.process_types["release"], "python manage.py migrate");

    // The release phase runs as a one-off container of the image and must exit 0.
    let docker = docker().await;
    let id = start(&docker, &image.image, &image.process_types["release"], &mut cleanup).await;
    let exit = docker.wait_container(&id, None).next().await.unwrap().unwrap();
    assert_eq!(exit.status_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_site() {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app("static"), 4, fixture("static"));
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(image.kind, "static");
    assert!(body.contains("hello from a static site"), "{body}");
    assert_log(&log, "-----> Static HTML app detected");
    let ip = serve(&docker().await, &image, &mut cleanup).await;
    assert!(get(&ip, "/css/site.css").await.contains("font-family"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_app_gets_config_as_build_args() {
    let mut cleanup = Cleanup::default();
    let mut req = BuildRequest::new(unique_app("df"), 5, fixture("dockerfile"));
    req.config = BTreeMap::from([
        ("GREETING".to_string(), "hello from a config var".to_string()),
        ("DATABASE_URL".to_string(), "postgres://not-declared".to_string()),
    ]);
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(image.kind, "dockerfile");
    // No Procfile: the image's own CMD is the web process.
    assert_eq!(image.process_types["web"], "");
    assert_eq!(body, "hello from a config var\n");
    assert_log(&log, "-----> Dockerfile detected");
    // Only the ARG the Dockerfile declares is passed, and it is not baked into ENV.
    assert_log(&log, "Config vars passed as build args: GREETING");
    assert!(!log.text().contains("DATABASE_URL"));
    let config = docker().await.inspect_image(&image.image).await.unwrap().config.unwrap();
    assert!(!config.env.unwrap_or_default().iter().any(|e| e.starts_with("GREETING=")));
}

/// What `docker history --no-trunc IMAGE` shows: every layer's command and comment.
async fn history(docker: &Docker, image: &str) -> String {
    let layers = docker.image_history(image).await.unwrap();
    layers.iter().map(|layer| format!("{} {}\n", layer.created_by, layer.comment)).collect()
}

fn random_value(what: &str) -> String {
    format!("{what}-{:016x}", rand::random::<u64>())
}

/// A detected app's build step sees the config vars, but the image it makes does not carry
/// them: the classic builder records the build args of each RUN in the history, so those
/// steps run in a stage that is not the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_values_stay_out_of_a_detected_apps_history() {
    let mut cleanup = Cleanup::default();
    let dir = scratch_copy("python-stdlib");
    // A build step that needs a config var, as collectstatic may.
    let build = "[build]\ncommand = 'test -n \"$BUILD_SECRET\" && echo built > built.txt'\n";
    std::fs::write(dir.path().join("paas.toml"), build).unwrap();
    let secret = random_value("secret");
    let mut req = BuildRequest::new(unique_app("history"), 1, dir.path());
    req.config = BTreeMap::from([("BUILD_SECRET".to_string(), secret.clone())]);
    let (image, log) = build_ok(&req, &mut cleanup).await;
    assert_log(&log, "Config vars passed as build-time environment: BUILD_SECRET");
    assert_log(&log, "-----> Running build command: test -n");
    assert!(!log.text().contains(&secret));

    let docker = docker().await;
    let history = history(&docker, &image.image).await;
    assert!(!history.contains(&secret), "{history}");
    // The step ran in the build stage; the image has only its output.
    assert!(!history.contains("BUILD_SECRET"), "{history}");
    // The build step's output made it into the image.
    let built = "grep -qx built /app/built.txt";
    assert_eq!(run_to_exit(&docker, &image.image, built, &mut cleanup).await, 0);
}

/// A Dockerfile gets as build args only the config vars it declares; one it uses in a stage
/// before the last leaves no trace in the image's history either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerfile_gets_only_the_config_vars_it_declares() {
    let mut cleanup = Cleanup::default();
    let dir = app_dir(&[(
        "Dockerfile",
        "FROM paas/stack:bookworm AS build\nARG DECLARED_VAR\n\
         RUN test -n \"$DECLARED_VAR\" && echo seen > /seen\n\
         FROM paas/stack:bookworm\nCOPY --from=build /seen /seen\nCMD [\"sleep\", \"infinity\"]\n",
    )]);
    let (declared, undeclared) = (random_value("declared"), random_value("undeclared"));
    let mut req = BuildRequest::new(unique_app("df-args"), 1, dir.path());
    req.config = BTreeMap::from([
        ("DECLARED_VAR".to_string(), declared.clone()),
        ("UNDECLARED_VAR".to_string(), undeclared.clone()),
    ]);
    let (image, log) = build_ok(&req, &mut cleanup).await;
    assert_log(&log, "Config vars passed as build args: DECLARED_VAR\n");
    // Not passed: the classic builder would warn that it was not consumed.
    let text = log.text();
    assert!(!text.contains("UNDECLARED_VAR"), "{text}");
    assert!(!text.contains(&declared) && !text.contains(&undeclared), "{text}");

    let docker = docker().await;
    assert_eq!(run_to_exit(&docker, &image.image, "test -f /seen", &mut cleanup).await, 0);
    let history = history(&docker, &image.image).await;
    assert!(!history.contains(&declared) && !history.contains(&undeclared), "{history}");
    assert!(!history.contains("UNDECLARED_VAR"), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monorepo_subdirectory() {
    let mut cleanup = Cleanup::default();
    let mut req = BuildRequest::new(unique_app("mono"), 6, fixture("monorepo"));
    req.base_dir = Some("backend".into());
    let (image, log, body) = build_and_serve(&req, &mut cleanup).await;
    assert_eq!(image.process_types["web"], "python -m api");
    assert_eq!(body, "hello from the monorepo backend (frontend in the image: False)\n");
    assert_log(&log, " from backend/");

    // The repository root is not an app by itself.
    let root = BuildRequest::new(unique_app("mono-root"), 7, fixture("monorepo"));
    let (result, _) = build_with(settings(), &root, &mut cleanup).await;
    assert!(matches!(result, Err(BuildError::NoAppDetected { .. })), "{result:?}");
}

/// Copies a fixture to a scratch directory the test may change.
fn scratch_copy(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture(name), dir.path());
    dir
}

/// The log line right after `Step N/M : RUN <command>`: `---> Using cache` when reused.
fn after_step(log: &BuildLog, command: &str) -> String {
    let lines = log.lines();
    let at = lines
        .iter()
        .position(|l| l.contains(" : RUN ") && l.contains(command))
        .unwrap_or_else(|| panic!("no RUN {command} step in\n{}", log.text()));
    lines.get(at + 1).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_change_reuses_the_dependency_layer() {
    let mut cleanup = Cleanup::default();
    let dir = scratch_copy("python-vendored");
    // A fresh requirements.txt, so the first build really installs.
    let nonce = format!("# cache test {:016x}\n", rand::random::<u64>());
    let requirements = dir.path().join("requirements.txt");
    let text = std::fs::read_to_string(&requirements).unwrap();
    std::fs::write(&requirements, format!("{text}{nonce}")).unwrap();
    let app = unique_app("cache");
    let install = "pip install -r requirements.txt";

    let (cold, cold_log) = build_ok(&BuildRequest::new(&app, 1, dir.path()), &mut cleanup).await;
    assert!(!after_step(&cold_log, install).contains("Using cache"), "{}", cold_log.text());

    let source = dir.path().join("app.py");
    let code = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, code.replace("version 1", "version 2")).unwrap();
    let (warm, warm_log) = build_ok(&BuildRequest::new(&app, 2, dir.path()), &mut cleanup).await;
    assert!(after_step(&warm_log, install).contains("---> Using cache"), "{}", warm_log.text());
    assert_log(&warm_log, "-----> Installing dependencies (requirements.txt, wheels/)");
    assert!(
        warm.duration < cold.duration,
        "rebuild took {:?}, first build {:?}",
        warm.duration,
        cold.duration
    );
    eprintln!("cold build {:?}, warm build {:?}", cold.duration, warm.duration);

    // The new code is in the new image, with the dependency installed.
    let docker = docker().await;
    let ip = serve(&docker, &warm, &mut cleanup).await;
    assert_eq!(get(&ip, "/").await, "hello, python-vendored (version 2)\n");

    // The build stage's layers are unique to this test's requirements.txt: remove them too.
    forget_layers(&cold_log, &mut cleanup).await;
}

/// Has `cleanup` remove the build stage's dependency layers, which removing the image's tag
/// leaves behind, so the next run installs again: the install step and the COPY steps of the
/// files it is keyed on, to the end of the stage. Only those: the layers before them (base
/// image, CA bundle, ENV) are shared with builds running in parallel, while these are keyed
/// on the test's own files.
async fn forget_layers(log: &BuildLog, cleanup: &mut Cleanup) {
    let lines = log.lines();
    let Some(install) = lines.iter().position(|l| l.starts_with("-----> Installing dependencies"))
    else {
        return;
    };
    let mut start = install;
    while let Some(step) = lines[..start].iter().rposition(|l| is_step(l, "")) {
        if !is_step(&lines[step], "COPY [") || lines[step].contains(".paas-ca.pem") {
            break;
        }
        start = step;
    }
    forget_layers_after(&lines[start..], cleanup).await;
}

/// `Step N/M : INSTRUCTION…` lines of the classic builder.
fn is_step(line: &str, instruction: &str) -> bool {
    line.trim_start().starts_with("Step ") && line.contains(&format!(" : {instruction}"))
}

/// The layers printed in `lines` up to the next stage, never a tagged image (base images'
/// ids appear in the log as well).
async fn forget_layers_after(lines: &[String], cleanup: &mut Cleanup) {
    let docker = docker().await;
    let stage = lines.iter().skip(1).take_while(|l| !is_step(l, "FROM "));
    for id in layer_ids(stage) {
        let tags = docker.inspect_image(&id).await.ok().and_then(|i| i.repo_tags);
        if tags.is_some_and(|t| t.is_empty()) {
            cleanup.layers.push(id);
        }
    }
}

/// Every layer id the classic builder printed (`---> 1a2b3c4d5e6f`) in `lines`.
fn layer_ids<'a>(lines: impl Iterator<Item = &'a String>) -> Vec<String> {
    lines
        .filter_map(|l| l.trim().strip_prefix("---> "))
        .filter(|id| id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

/// Every container the classic builder started for a step (`---> Running in …`) is gone.
async fn assert_no_build_containers(log: &BuildLog) {
    let docker = docker().await;
    let ids: Vec<String> = log
        .lines()
        .iter()
        .filter_map(|l| l.trim().strip_prefix("---> Running in ").map(str::to_string))
        .collect();
    for id in ids {
        // The daemon removes them as the build ends; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while docker.inspect_container(&id, None).await.is_ok() {
            assert!(Instant::now() < deadline, "build container {id} was left behind");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

/// A build that must fail: returns its error and log after checking nothing was left.
async fn failed_build(
    what: &str,
    files: &[(&str, &str)],
    config: BuilderConfig,
) -> (BuildError, BuildLog) {
    let dir = app_dir(files);
    let req = BuildRequest::new(unique_app(what), 1, dir.path());
    failed_request(&req, config).await
}

/// [`failed_build`] of a prepared request.
async fn failed_request(req: &BuildRequest, config: BuilderConfig) -> (BuildError, BuildLog) {
    let what = &req.app;
    let mut cleanup = Cleanup::default();
    let (result, log) = build_with(config, req, &mut cleanup).await;
    let error = result.err().unwrap_or_else(|| panic!("{what} built:\n{}", log.text()));
    assert_log(&log, " !     Build failed: ");
    assert_no_build_containers(&log).await;
    let tagged = docker().await.inspect_image(&req.image_tag()).await;
    assert!(tagged.is_err(), "a failed build tagged {}", req.image_tag());
    (error, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_detectable_app() {
    let (error, _) = failed_build("none", &[("README.md", "just words")], settings()).await;
    assert!(matches!(error, BuildError::NoAppDetected { .. }), "{error:?}");
    assert!(error.to_string().contains("Procfile"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_procfile() {
    let files = [("app.py", "print('hi')\n"), ("Procfile", "# ok\nweb python app.py\n")];
    let (error, log) = failed_build("procfile", &files, settings()).await;
    assert!(matches!(error, BuildError::Procfile { line: 2, .. }), "{error:?}");
    assert_log(&log, "Procfile line 2: expected `name: command`");
}

/// `.paas.toml` is not read; the build log says where paas looks instead.
#[test]
fn a_dotted_paas_toml_is_pointed_out() {
    let dir = app_dir(&[("app.py", ""), ("Procfile", "web: python app.py\n"), (".paas.toml", "")]);
    let plan = paas_builder::plan(dir.path(), &BaseImages::local()).unwrap();
    let note = "found .paas.toml; paas reads paas.toml (no dot)";
    assert!(plan.notes.iter().any(|n| n.contains(note)), "{:?}", plan.notes);
    std::fs::write(dir.path().join("paas.toml"), "").unwrap();
    let plan = paas_builder::plan(dir.path(), &BaseImages::local()).unwrap();
    assert!(!plan.notes.iter().any(|n| n.contains(".paas.toml")), "{:?}", plan.notes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_install_command() {
    // pip, offline, asked for a package that is nowhere: a real failing install.
    let files = [
        ("requirements.txt", "--no-index\nthis-package-does-not-exist==1.0\n"),
        ("app.py", "print('hi')\n"),
    ];
    let (error, log) = failed_build("install", &files, settings()).await;
    match &error {
        BuildError::StepFailed { step, exit_code, log_tail, .. } => {
            assert!(step.contains("pip install -r requirements.txt"), "{step}");
            assert_ne!(*exit_code, 0);
            assert!(log_tail.contains("this-package-does-not-exist"), "{log_tail}");
        }
        other => panic!("expected a failed step, got {other:?}"),
    }
    assert_log(&log, "build step failed with exit code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_syntax_error() {
    let files = [("Dockerfile", "FROM paas/stack:bookworm\nRUNN echo hi\n")];
    let (error, _) = failed_build("syntax", &files, settings()).await;
    assert!(matches!(error, BuildError::Dockerfile { .. }), "{error:?}");
    assert!(error.to_string().contains("RUNN"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_base_image_names_the_offline_build() {
    let mut config = settings();
    config.base_images.overrides.insert(ImageRole::Python, "paas/no-such-image:bookworm".into());
    let (error, _) = failed_build("base", &[("app.py", "")], config).await;
    assert!(matches!(error, BuildError::BaseImageMissing { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("paas/no-such-image:bookworm"), "{message}");
    assert!(message.contains("bash deploy/stack/build.sh"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_stops_the_build_and_its_container() {
    let mut config = settings();
    config.timeout = Duration::from_secs(4);
    let files = [("Dockerfile", "FROM paas/stack:bookworm\nRUN echo started && sleep 60\n")];
    let started = Instant::now();
    let (error, log) = failed_build("timeout", &files, config).await;
    assert!(matches!(error, BuildError::TimedOut { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_log(&log, "---> Running in ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_bundle_is_trusted_by_build_steps_and_kept() {
    let mut cleanup = Cleanup::default();
    let dir = app_dir(&[
        ("Procfile", "web: sleep infinity\n"),
        (
            "paas.toml",
            "[build]\ncommand = 'grep -q \"BEGIN CERTIFICATE\" \"$SSL_CERT_FILE\" && \
             test \"$PIP_CERT\" = \"$SSL_CERT_FILE\"'\n",
        ),
    ]);
    let ca = dir.path().join("proxy-ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let mut config = settings();
    config.ca_file = Some(ca);
    let req = BuildRequest::new(unique_app("ca"), 1, dir.path());
    let (result, log) = build_with(config, &req, &mut cleanup).await;
    let image = result.unwrap_or_else(|e| panic!("{e}\n{}", log.text()));
    assert_eq!(image.kind, "shell");
    assert_log(&log, "-----> Running build command: grep -q");
    let env = docker().await.inspect_image(&image.image).await.unwrap().config.unwrap().env;
    assert!(env.unwrap_or_default().contains(&"SSL_CERT_FILE=/etc/paas/ca.pem".to_string()));
    // The system trust store has it too, for tools that read only that (apt).
    let docker = docker().await;
    let check = "grep -q MIIB /etc/ssl/certs/ca-certificates.crt";
    assert_eq!(run_to_exit(&docker, &image.image, check, &mut cleanup).await, 0);

    // A file that is not a PEM bundle is refused before anything is built.
    let mut config = settings();
    config.ca_file = Some(dir.path().join("Procfile"));
    let (error, _) = failed_build("bad-ca", &[("app.py", "")], config).await;
    assert!(error.to_string().contains("PAAS_BUILD_CA_FILE must name a PEM bundle"), "{error}");
}

/// Runs `command` in a one-off container of `image` and returns its exit code.
async fn run_to_exit(docker: &Docker, image: &str, command: &str, cleanup: &mut Cleanup) -> i64 {
    let id = start(docker, image, command, cleanup).await;
    let exit = docker.wait_container(&id, None).next().await.unwrap();
    // A non-zero exit comes back as an error that carries the code.
    match exit {
        Ok(response) => response.status_code,
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
        Err(e) => panic!("waiting for {command:?}: {e}"),
    }
}

/// Builds a Python fixture whose dependencies come from PyPI and checks what its page says.
async fn python_fixture_from_pypi(fixture_name: &str, keyed_on: &str) -> serde_json::Value {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app(fixture_name), 1, fixture(fixture_name));
    let (image, log) = build_ok_with(with_ca(), &req, &mut cleanup).await;
    // The build stage's layers too, so that the next run installs from PyPI again.
    forget_layers(&log, &mut cleanup).await;
    assert_log(&log, &format!("-----> Installing dependencies ({keyed_on})"));
    assert_eq!(image.process_types["web"], "python main.py");
    let ip = serve(&docker().await, &image, &mut cleanup).await;
    let body: serde_json::Value = serde_json::from_str(&get(&ip, "/").await).unwrap();
    // The installer ran in the build stage only.
    assert_eq!(body["installer_in_venv"], false, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipenv_app_from_pypi() {
    let body = python_fixture_from_pypi("python-pipenv", "Pipfile, Pipfile.lock").await;
    assert_eq!(body["six"], "1.17.0", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_app_from_pypi() {
    let body = python_fixture_from_pypi("python-uv", "pyproject.toml, uv.lock").await;
    assert_eq!(body["idna"], "3.10", "{body}");
}

/// A Dockerfile build finds the bundle in its context and the build arg naming it; with the
/// documented two lines, curl and pip reach PyPI while building and the app does at run time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerfile_app_uses_the_ca_bundle() {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app("df-ca"), 1, fixture("dockerfile-ca"));
    let (image, log) = build_ok_with(with_ca(), &req, &mut cleanup).await;
    assert_log(&log, "in the build context as .paas-ca.pem; build arg PAAS_CA_FILE names it");
    assert!(!log.text().contains("Config vars passed"), "PAAS_CA_FILE is not a config var");
    let ip = serve(&docker().await, &image, &mut cleanup).await;
    let body: serde_json::Value = serde_json::from_str(&get(&ip, "/").await).unwrap();
    assert_eq!(body["six"], "1.17.0", "{body}");
    assert_eq!(body["https"], 200, "{body}");

    // Without PAAS_BUILD_CA_FILE the bundle is not there, and the error says why.
    let req = BuildRequest::new(unique_app("df-no-ca"), 1, fixture("dockerfile-ca"));
    let (error, log) = failed_request(&req, settings()).await;
    assert!(error.to_string().contains("does not set it"), "{error}");
    assert_log(&log, "PAAS_BUILD_CA_FILE is not set on this server");
}

/// A Dockerfile on a base paas did not build reaches PyPI through the proxy only with
/// PAAS_BUILD_CA_INJECT=1, which adds the bundle after its FROM; without it the failure
/// names both ways out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_injection_into_a_dockerfile_on_another_base() {
    let mut cleanup = Cleanup::default();
    // Any image not named paas/*: a second name for the local Python image.
    let base = format!("paas-test/other-{:08x}:base", rand::random::<u32>());
    let tagged = std::process::Command::new("docker")
        .args(["tag", "paas/python:bookworm", &base])
        .status()
        .unwrap();
    assert!(tagged.success());
    cleanup.images.push(base.clone());
    // The echo makes the step new to Docker's cache, so it runs.
    let dockerfile = format!(
        "FROM {base}\nRUN python3 -c \"import urllib.request as r; \
         print('PyPI answered', r.urlopen('https://pypi.org/simple/six/').status)\" \
         && echo {base}\nCMD [\"python3\", \"-m\", \"http.server\"]\n"
    );
    let files = [("Dockerfile", dockerfile.as_str())];

    let (error, log) = failed_build("ca-other", &files, with_ca()).await;
    assert!(error.to_string().contains("CERTIFICATE_VERIFY_FAILED"), "{error}");
    assert_log(&log, "the Dockerfile trusts it only if it copies it in");

    let dir = app_dir(&files);
    let req = BuildRequest::new(unique_app("ca-inject"), 1, dir.path());
    let config = BuilderConfig { ca_inject: true, ..with_ca() };
    let (image, log) = build_ok_with(config, &req, &mut cleanup).await;
    assert_log(&log, "paas adds it after each FROM of Dockerfile (PAAS_BUILD_CA_INJECT=1)");
    assert_log(&log, "PyPI answered 200");
    // The image's environment is the Dockerfile's own: the bundle was the build's.
    let inspect = docker().await.inspect_image(&image.image).await.unwrap();
    let env = inspect.config.unwrap().env.unwrap_or_default();
    assert!(!env.iter().any(|e| e.starts_with("SSL_CERT_FILE")), "{env:?}");
}

/// Each Python version Debian ships has its own pair of images: the app gets the one it asks
/// for, the default (Heroku's, 3.14) without a file, and a version no image has fails the
/// build naming those there are, before anything is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_versions_pick_their_debian_suite() {
    let mut cleanup = Cleanup::default();
    let docker = docker().await;
    for (file, minor) in [(Some("3.11\n"), 11), (Some("# ours\n3.13\n"), 13), (None, 14)] {
        let mut files = vec![("requirements.txt", "")];
        files.extend(file.map(|version| (".python-version", version)));
        let dir = app_dir(&files);
        let req = BuildRequest::new(unique_app("pyver"), 1, dir.path());
        let (image, log) = build_ok(&req, &mut cleanup).await;
        let check =
            format!("python -c 'import sys; sys.exit(sys.version_info[:2] != (3, {minor}))'");
        assert_eq!(run_to_exit(&docker, &image.image, &check, &mut cleanup).await, 0, "3.{minor}");
        if file.is_none() {
            assert_log(&log, "Warning: no Python version is named");
            assert_log(
                &log,
                "Using Python 3.14 from paas/python:forky (Debian forky), the default",
            );
        }
    }

    let (error, log) =
        failed_build("pyver-none", &[(".python-version", "3.12\n"), ("app.py", "")], settings())
            .await;
    assert_eq!(error.code(), "python_version_unavailable");
    assert_log(&log, "its local images have Python 3.11, 3.13, 3.14");
    let (error, _) =
        failed_build("pyver-eol", &[("runtime.txt", "python-3.9.1\n"), ("app.py", "")], settings())
            .await;
    assert_eq!(error.code(), "python_version");
    assert!(error.to_string().contains("end of life"), "{error}");
}

/// Heroku's hooks run in the build stage with the config vars: bin/pre_compile before the
/// install, bin/post_compile after; one that fails is named, with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_hooks_run_and_a_failing_one_is_named() {
    let mut cleanup = Cleanup::default();
    let files = [
        ("requirements.txt", ""),
        ("app.py", ""),
        // Heroku's hooks get BUILD_DIR and CACHE_DIR; deleting the cache harms nothing.
        (
            "bin/pre_compile",
            "#!/bin/sh\nset -e\ntest \"$BUILD_DIR\" = /app\necho \"$GREETING\" > pre.txt\n",
        ),
        (
            "bin/post_compile",
            "#!/bin/sh\nset -e\ntest -f pre.txt\ncp pre.txt post.txt\nrm -rf \"${CACHE_DIR:?}\"\n",
        ),
    ];
    let dir = app_dir(&files);
    let mut req = BuildRequest::new(unique_app("hooks"), 1, dir.path());
    req.config = BTreeMap::from([("GREETING".to_string(), "hello".to_string())]);
    let (image, log) = build_ok(&req, &mut cleanup).await;
    assert_log(&log, "-----> Running bin/pre_compile hook");
    assert_log(&log, "-----> Running bin/post_compile hook");
    let docker = docker().await;
    let check = "grep -qx hello /app/pre.txt && grep -qx hello /app/post.txt";
    assert_eq!(run_to_exit(&docker, &image.image, check, &mut cleanup).await, 0);

    let files = [
        ("requirements.txt", ""),
        ("app.py", ""),
        ("bin/post_compile", "#!/bin/sh\necho 'Some post_compile error!' >&2\nexit 3\n"),
    ];
    let (error, log) = failed_build("hook-fails", &files, settings()).await;
    assert_log(&log, "Some post_compile error!");
    let hint = error.hint().unwrap_or_default();
    assert!(hint.starts_with("bin/post_compile exited with an error"), "{error}");
}

/// Config vars that would point the build's Python elsewhere never reach the build steps,
/// and the log says so; the build runs as if they were not set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interpreter_config_vars_stay_out_of_the_build() {
    let mut cleanup = Cleanup::default();
    let files = [
        ("requirements.txt", ""),
        ("app.py", ""),
        (
            "bin/post_compile",
            "#!/bin/sh\nset -e\npython -c 'import json'\necho \"$KEPT\" > kept.txt\n",
        ),
    ];
    let dir = app_dir(&files);
    let mut req = BuildRequest::new(unique_app("shield"), 1, dir.path());
    req.config = ["PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PATH"]
        .iter()
        .map(|var| (var.to_string(), "/invalid-path".to_string()))
        .chain([("KEPT".to_string(), "yes".to_string())])
        .collect();
    let (image, log) = build_ok(&req, &mut cleanup).await;
    assert_log(
        &log,
        "Config vars not passed to the build steps, since they would change the Python the \
         build runs with (the app still gets them): PATH, PYTHONHOME, PYTHONPATH, VIRTUAL_ENV",
    );
    let check = "grep -qx yes /app/kept.txt";
    assert_eq!(run_to_exit(&docker().await, &image.image, check, &mut cleanup).await, 0);
}

/// A uv.lock that no longer matches pyproject.toml fails the install (uv's `--locked`)
/// rather than installing what the lock says and leaving a dependency out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_uv_lock_fails_the_install() {
    let pyproject = "[project]\nname = \"stale\"\nversion = \"0\"\nrequires-python = \">=3.13\"\n\
                     dependencies = [\"idna\"]\n";
    let lock = "version = 1\nrevision = 2\nrequires-python = \">=3.13\"\n\n[[package]]\n\
                name = \"stale\"\nversion = \"0\"\nsource = { virtual = \".\" }\n";
    let files = [
        ("pyproject.toml", pyproject),
        ("uv.lock", lock),
        (".python-version", "3.13\n"),
        ("main.py", ""),
    ];
    let (error, log) = failed_build("uv-stale", &files, with_ca()).await;
    assert!(matches!(error, BuildError::StepFailed { .. }), "{error:?}");
    assert_log(&log, "--locked");
}

/// A package from the app's own folder (uv's `[tool.uv.sources]` path, Poetry's `develop`
/// path dependency, Pipenv's editable `path`): the install runs on the whole tree, installs
/// it, and the app imports it. Each fixture's lock was made by its own tool.
async fn local_path_dependency(fixture_name: &str) {
    let mut cleanup = Cleanup::default();
    let req = BuildRequest::new(unique_app(fixture_name), 1, fixture(fixture_name));
    let (image, log) = build_ok_with(with_ca(), &req, &mut cleanup).await;
    forget_layers(&log, &mut cleanup).await;
    assert_log(&log, "Using Python 3.13 from paas/python:trixie");
    assert_eq!(image.process_types["web"], "python main.py");
    let ip = serve(&docker().await, &image, &mut cleanup).await;
    assert!(get(&ip, "/").await.contains("hello from a local package"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_installs_a_local_path_dependency() {
    local_path_dependency("python-uv-local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poetry_installs_a_local_path_dependency() {
    local_path_dependency("python-poetry-local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipenv_installs_a_local_path_dependency() {
    local_path_dependency("python-pipenv-local").await;
}
