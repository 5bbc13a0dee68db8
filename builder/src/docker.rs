//! Builds through the Docker Engine API's classic builder (no BuildKit: Docker 20.10 here, and
//! no frontend image to pull), streaming its output into the build log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::config::LOCAL_PYTHONS;
use crate::dockerfile::{CA_BUILD_ARG, CA_CONTEXT_FILE, GENERATED_DOCKERFILE};
use crate::error::STACK_HINT;
use crate::log::MAX_LINE;
use crate::{
    BaseImages, BuildError, BuildLog, BuildPlan, BuilderConfig, ImageRole, ImageSource, Kind,
    ProcessSource, context, hints,
};

/// Lines of log kept in an error's `log_tail`.
const TAIL: usize = 30;

/// One build: which app, which build, which source tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The app's name: lowercase letters, digits and hyphens (it becomes part of the tag).
    pub app: String,
    pub build_id: i64,
    /// A checkout of the commit to build.
    pub source_dir: PathBuf,
    /// Build this folder of the checkout instead of its root (monorepos; `PAAS_APP_BASE`).
    /// Relative, and inside `source_dir`.
    pub base_dir: Option<PathBuf>,
    /// The app's config vars: build args for Dockerfile apps (those it declares), build-time
    /// environment for detected ones, which never reaches the image's `ENV` or history.
    pub config: BTreeMap<String, String>,
    pub commit: Option<String>,
    /// Set when several paas servers share one Docker engine: each tags its images under
    /// `paas/NAMESPACE/`, so two apps of one name never overwrite each other's builds.
    pub namespace: Option<String>,
}

impl BuildRequest {
    pub fn new(
        app: impl Into<String>,
        build_id: i64,
        source_dir: impl Into<PathBuf>,
    ) -> BuildRequest {
        BuildRequest {
            app: app.into(),
            build_id,
            source_dir: source_dir.into(),
            base_dir: None,
            config: BTreeMap::new(),
            commit: None,
            namespace: None,
        }
    }

    /// The image's tag: `paas/app-NAME:bID`, or `paas/NAMESPACE/app-NAME:bID`.
    pub fn image_tag(&self) -> String {
        app_image_tag(self.namespace.as_deref(), &self.app, self.build_id)
    }

    /// The directory to build: `source_dir`, or `base_dir` inside it.
    pub fn app_dir(&self) -> Result<PathBuf, BuildError> {
        let Some(base) = &self.base_dir else {
            return Ok(self.source_dir.clone());
        };
        let inside = !base.as_os_str().is_empty()
            && base.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(BuildError::InvalidRequest(format!(
                "base directory {:?} must be a relative path inside the repository, like \
                 `backend`",
                base.display().to_string()
            )));
        }
        let dir = self.source_dir.join(base);
        let real = dir.canonicalize().map_err(|_| {
            BuildError::InvalidRequest(format!(
                "base directory {} does not exist in the repository (PAAS_APP_BASE)",
                base.display()
            ))
        })?;
        let root =
            self.source_dir.canonicalize().map_err(|e| BuildError::io(&self.source_dir, e))?;
        // A symlinked base directory must not lead out of the checkout.
        if !real.starts_with(&root) || !real.is_dir() {
            return Err(BuildError::InvalidRequest(format!(
                "base directory {} is not a directory inside the repository",
                base.display()
            )));
        }
        Ok(dir)
    }

    fn check(&self) -> Result<(), BuildError> {
        let app = &self.app;
        let valid = !app.is_empty()
            && app.len() <= 63
            && app.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !app.starts_with('-')
            && !app.ends_with('-')
            && !app.contains("--");
        if !valid {
            return Err(BuildError::InvalidRequest(format!(
                "app name {app:?} cannot name an image: use lowercase letters, digits and \
                 single hyphens"
            )));
        }
        if self.build_id < 0 {
            return Err(BuildError::InvalidRequest(format!(
                "build id {} is negative",
                self.build_id
            )));
        }
        Ok(())
    }
}

/// The image tag of build `build_id` for `app`: `paas/app-shop:b42`, under
/// `paas/NAMESPACE/` when several servers share an engine. Build ids are unique across apps,
/// so another app's build promoted here gets a tag of its own.
pub fn app_image_tag(namespace: Option<&str>, app: &str, build_id: i64) -> String {
    match namespace {
        Some(namespace) => format!("paas/{namespace}/app-{app}:b{build_id}"),
        None => format!("paas/app-{app}:b{build_id}"),
    }
}

/// A successful build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    /// The tag, e.g. `paas/app-shop:b42`.
    pub image: String,
    /// The image id (`sha256:…`).
    pub id: String,
    /// Bytes, as Docker reports it (shared layers included).
    pub size: u64,
    /// `python`, `node`, …, or `dockerfile`.
    pub kind: String,
    /// Process type → command; an empty command means the image's own ENTRYPOINT/CMD.
    pub process_types: BTreeMap<String, String>,
    /// Routes, volumes and jobs the app declares, for the server to apply on release.
    pub manifest: crate::AppManifest,
    pub duration: Duration,
}

/// Builds images on one Docker engine.
#[derive(Debug, Clone)]
pub struct Builder {
    docker: Docker,
    config: BuilderConfig,
}

impl Builder {
    /// Connects to the engine `DOCKER_HOST` names (the local socket by default) and agrees on
    /// an API version it speaks.
    pub async fn connect(config: BuilderConfig) -> Result<Builder, BuildError> {
        let docker = Docker::connect_with_defaults()?;
        Builder::with_docker(docker, config).await
    }

    /// Uses an existing client (its API version is negotiated again).
    pub async fn with_docker(docker: Docker, config: BuilderConfig) -> Result<Builder, BuildError> {
        // bollard's default two-minute request timeout would cut long builds short; the
        // build's own limit is enforced around the whole build instead.
        let docker = docker
            .with_timeout(config.timeout + Duration::from_secs(60))
            .negotiate_version()
            .await?;
        Ok(Builder { docker, config })
    }

    pub fn config(&self) -> &BuilderConfig {
        &self.config
    }

    /// Builds `req` into an image, writing every line to `log` (which it does not close).
    /// On failure no container is left behind and no image is tagged.
    pub async fn build(
        &self,
        req: &BuildRequest,
        log: &BuildLog,
    ) -> Result<BuiltImage, BuildError> {
        let started = Instant::now();
        let running = Arc::new(Mutex::new(None));
        let limit = self.config.timeout;
        let mut tries = 0;
        let result = loop {
            tries += 1;
            let result =
                match tokio::time::timeout(limit, self.run(req, log, &running, started)).await {
                    Ok(result) => result,
                    Err(_) => Err(BuildError::TimedOut { limit, log_tail: log.tail(TAIL) }),
                };
            match &result {
                Err(error) if tries == 1 && lost_cached_layer(error) => {
                    log.step("Docker lost a cached layer mid-build (an image was removed meanwhile); building again");
                }
                _ => break result,
            }
        };
        if let Err(error) = &result {
            let leftover = running.lock().ok().and_then(|mut r| r.take());
            if let Some(container) = leftover {
                self.remove_container(&container).await;
            }
            log.error(format!("Build failed: {error}"));
            tracing::info!(app = %req.app, build = req.build_id, code = error.code(), "build failed: {error}");
        }
        result
    }

    /// Gives `image` a second name, `tag` (`repo:tag`): the same image id under another
    /// app's name, so each app's image is removed only with its own releases.
    pub async fn tag_image(&self, image: &str, tag: &str) -> Result<(), BuildError> {
        let (repo, tag) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
        self.docker.tag_image(image, Some(options)).await?;
        Ok(())
    }

    /// Pushes `image` (`repo:tag`) to `registry` (`HOST:PORT`) as `registry/repo:tag` and
    /// returns it by digest, `registry/repo@sha256:…`: what Swarm's nodes pull, the same
    /// bytes on every node whatever happens to the tag later.
    pub async fn push(&self, image: &str, registry: &str) -> Result<String, BuildError> {
        let failed = |message: String| BuildError::Push { registry: registry.to_string(), message };
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let remote = format!("{registry}/{repo}");
        let options = TagImageOptionsBuilder::default().repo(&remote).tag(tag).build();
        self.docker.tag_image(image, Some(options)).await?;
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        // No credentials: the registry is the operator's own, on their network.
        let mut pushed =
            self.docker.push_image(&remote, Some(options), Some(DockerCredentials::default()));
        while let Some(progress) = pushed.next().await {
            let progress = progress.map_err(|e| failed(e.to_string()))?;
            if let Some(error) = progress.error_detail.and_then(|e| e.message) {
                return Err(failed(error));
            }
        }
        let inspect = self.docker.inspect_image(&format!("{remote}:{tag}")).await?;
        let prefix = format!("{remote}@");
        inspect
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|digest| digest.starts_with(&prefix))
            .ok_or_else(|| failed("the registry reported no digest".to_string()))
    }

    /// The id (`sha256:…`) of an image, by name.
    pub async fn image_id(&self, image: &str) -> Result<String, BuildError> {
        Ok(self.docker.inspect_image(image).await?.id.unwrap_or_default())
    }

    /// Removes an image this builder made (e.g. an old build's), keeping shared layers.
    pub async fn remove_image(&self, image: &str) -> Result<(), BuildError> {
        let options = RemoveImageOptionsBuilder::default().build();
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn run(
        &self,
        req: &BuildRequest,
        log: &BuildLog,
        running: &Arc<Mutex<Option<String>>>,
        started: Instant,
    ) -> Result<BuiltImage, BuildError> {
        req.check()?;
        let dir = req.app_dir()?;
        let tag = req.image_tag();
        let commit = req
            .commit
            .as_deref()
            .map(|c| format!(", commit {}", c.get(..7).unwrap_or(c)))
            .unwrap_or_default();
        let base =
            req.base_dir.as_ref().map(|b| format!(" from {}/", b.display())).unwrap_or_default();
        log.step(format!("Building {} (build {}{commit}){base}", req.app, req.build_id));

        let images = self.base_images().await?;
        let plan = detect(&dir, &images, &req.config, log).await?;
        let inject = self.injects_ca(&plan);
        let ca = self.ca_bundle(&plan, inject, log).await?;
        let mut args = build_args(&plan, &req.config, log);
        if ca.is_some() && plan.build_args.iter().any(|a| a == CA_BUILD_ARG) {
            // Set after the config vars are logged: this is paas's value, not a config var.
            args.insert(CA_BUILD_ARG.to_string(), CA_CONTEXT_FILE.to_string());
        }
        let arg_names: Vec<String> = args.keys().cloned().collect();
        let mut labels = BTreeMap::from([
            ("io.paas.app".to_string(), req.app.clone()),
            ("io.paas.build".to_string(), req.build_id.to_string()),
            ("io.paas.kind".to_string(), plan.kind.to_string()),
        ]);
        if let Some(commit) = &req.commit {
            labels.insert("io.paas.commit".to_string(), commit.clone());
        }
        let recipe = match crate::generate_dockerfile(&plan, &arg_names, ca.is_some(), &labels) {
            Some(generated) => Recipe::Generated(generated),
            None => {
                let path = plan.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into());
                if inject {
                    let root = dir.clone();
                    let own = path.clone();
                    let (text, ignore) = tokio::task::spawn_blocking(move || {
                        Ok::<_, BuildError>((
                            crate::files::read(&root, &own)?.unwrap_or_default(),
                            crate::files::read(&root, ".dockerignore")?,
                        ))
                    })
                    .await
                    .map_err(|e| {
                        BuildError::failed(format!("reading the Dockerfile stopped: {e}"), "")
                    })??;
                    Recipe::Injected { path, text: crate::dockerfile::inject_ca(&text).0, ignore }
                } else {
                    Recipe::Own(path)
                }
            }
        };

        self.ensure_images(&plan, log).await?;

        let context = pack(dir.clone(), recipe.clone(), ca).await?;
        log.step(format!(
            "Sending build context ({} files, {})",
            context.files,
            human_size(context.bytes)
        ));

        let dockerfile = match &recipe {
            Recipe::Own(path) => path.as_str(),
            Recipe::Generated(_) | Recipe::Injected { .. } => GENERATED_DOCKERFILE,
        };
        let buildargs: HashMap<String, String> = args.into_iter().collect();
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(&tag)
            .rm(true)
            // Intermediate containers go even when a step fails.
            .forcerm(true)
            .buildargs(&buildargs)
            .version(BuilderVersion::BuilderV1);
        if !matches!(recipe, Recipe::Generated(_)) {
            // The daemon adds these as a final step; generated Dockerfiles carry them already.
            let labels: HashMap<String, String> = labels.into_iter().collect();
            options = options.labels(&labels);
        }
        let options = options.build();
        log.step("Building image");
        let body = bollard::body_try_stream(file_chunks(tokio::fs::File::from_std(context.file)));
        let mut stream = self.docker.build_image(options, None, Some(body));
        let mut output = Output::new(&plan, log, running);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        output.text(&text);
                    }
                    if let Some(status) = info.status {
                        output.text(&format!("{status}\n"));
                    }
                }
                Err(e) => {
                    output.flush();
                    let error = failure(e, &output.step, log);
                    let hint = hints::Failure {
                        plan: &plan,
                        ca_file: self.config.ca_file.as_deref(),
                        ca_injected: inject,
                        step: &output.step,
                        output: &output.step_output(),
                        message: &error.to_string(),
                    }
                    .hint();
                    return Err(error.with_hint(hint));
                }
            }
        }
        output.flush();

        let inspect = self.docker.inspect_image(&tag).await?;
        let id = inspect.id.unwrap_or_default();
        let size = inspect.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        if plan.process_types.get("web").is_some_and(String::is_empty) {
            let has_command = inspect.config.as_ref().is_some_and(|c| {
                c.cmd.as_ref().is_some_and(|v| !v.is_empty())
                    || c.entrypoint.as_ref().is_some_and(|v| !v.is_empty())
            });
            if !has_command {
                let _ = self.remove_image(&tag).await;
                return Err(BuildError::NoProcessTypes { kind: "Dockerfile".into() });
            }
        }
        log_process_types(&plan, log);
        let duration = started.elapsed();
        log.step(format!("Built {tag} ({}) in {:.1}s", human_size(size), duration.as_secs_f64()));
        Ok(BuiltImage {
            image: tag,
            id,
            size,
            kind: plan.kind.to_string(),
            process_types: plan.process_types,
            manifest: plan.manifest,
            duration,
        })
    }

    /// Whether the CA bundle goes into the app's own Dockerfile after every `FROM`: with
    /// `PAAS_BUILD_CA_INJECT=1`, or when every image it starts from is a paas stack image
    /// (ours, so trusting the server's CA in them is what `build.sh` would have done). Not
    /// when the Dockerfile takes the bundle itself through `PAAS_CA_FILE`.
    fn injects_ca(&self, plan: &BuildPlan) -> bool {
        let stack_only =
            !plan.images.is_empty() && plan.images.iter().all(|image| image.starts_with("paas/"));
        plan.kind == Kind::Dockerfile
            && self.config.ca_file.is_some()
            && !plan.build_args.iter().any(|a| a == CA_BUILD_ARG)
            && (self.config.ca_inject || stack_only)
    }

    /// The CA bundle `PAAS_BUILD_CA_FILE` names, when set, and what the build does with it.
    async fn ca_bundle(
        &self,
        plan: &BuildPlan,
        inject: bool,
        log: &BuildLog,
    ) -> Result<Option<Vec<u8>>, BuildError> {
        let declared = plan.build_args.iter().any(|a| a == CA_BUILD_ARG);
        let Some(path) = &self.config.ca_file else {
            if declared {
                log.info(format!(
                    "Note: the Dockerfile declares {CA_BUILD_ARG}, but PAAS_BUILD_CA_FILE is not \
                     set on this server, so there is no {CA_CONTEXT_FILE} in the build context"
                ));
            }
            return Ok(None);
        };
        let bundle = read_ca_bundle(path).await?;
        let dockerfile = plan.dockerfile.as_deref().unwrap_or("Dockerfile");
        match plan.kind {
            Kind::Dockerfile if inject => log.info(format!(
                "Trusting the CA bundle in PAAS_BUILD_CA_FILE in every build step: paas adds it \
                 after each FROM of {dockerfile} ({}), as build args the image does not keep; \
                 Docker's line numbers count the {} lines added after each FROM",
                if self.config.ca_inject {
                    "PAAS_BUILD_CA_INJECT=1"
                } else {
                    "it starts from paas stack images"
                },
                crate::dockerfile::inject_ca("").1,
            )),
            Kind::Dockerfile if declared => log.info(format!(
                "The CA bundle PAAS_BUILD_CA_FILE names is in the build context as \
                 {CA_CONTEXT_FILE}; build arg {CA_BUILD_ARG} names it"
            )),
            Kind::Dockerfile => log.info(format!(
                "Note: the CA bundle PAAS_BUILD_CA_FILE names is in the build context as \
                 {CA_CONTEXT_FILE}; the Dockerfile trusts it only if it copies it in: {}",
                hints::DOCKERFILE_CA_LINES
            )),
            _ => log.info(format!(
                "Trusting the CA bundle in PAAS_BUILD_CA_FILE ({}) in every build step and in \
                 the image",
                path.display()
            )),
        }
        Ok(Some(bundle))
    }

    /// The base images for this build. With `auto`, the engine is asked now which local
    /// images it has, so one built after the server started is used from the next build on.
    async fn base_images(&self) -> Result<BaseImages, BuildError> {
        let mut images = self.config.base_images.clone();
        if images.source != ImageSource::Auto {
            return Ok(images);
        }
        for role in ImageRole::ALL {
            if self.has_image(role.local_image()).await? {
                images.found_locally.insert(role);
            }
        }
        for (minor, suite) in LOCAL_PYTHONS {
            if self.has_image(&format!("paas/python:{suite}")).await?
                && self.has_image(&format!("paas/python-build:{suite}")).await?
            {
                images.local_pythons.insert(minor);
            }
        }
        Ok(images)
    }

    async fn has_image(&self, image: &str) -> Result<bool, BuildError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes sure every base image is here, pulling those that may be pulled.
    async fn ensure_images(&self, plan: &BuildPlan, log: &BuildLog) -> Result<(), BuildError> {
        for image in &plan.images {
            match self.docker.inspect_image(image).await {
                Ok(_) => continue,
                Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(e.into()),
            }
            // The paas/* stack images exist in no registry: only build.sh makes them.
            if image.starts_with("paas/") {
                return Err(BuildError::BaseImageMissing {
                    image: image.clone(),
                    hint: STACK_HINT.to_string(),
                });
            }
            log.step(format!("Pulling {image}"));
            let options = CreateImageOptionsBuilder::default()
                .from_image(image)
                // An untagged name would pull every tag.
                .tag(if has_tag(image) { "" } else { "latest" })
                .build();
            let mut pull = self.docker.create_image(Some(options), None, None);
            while let Some(item) = pull.next().await {
                match item {
                    Ok(info) => {
                        if let Some(status) = info.status.filter(|s| s.starts_with("Status:")) {
                            log.info(status);
                        }
                    }
                    Err(e) => {
                        return Err(BuildError::BaseImageMissing {
                            image: image.clone(),
                            hint: format!("pulling it failed ({e}); {STACK_HINT}"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => tracing::info!(container = id, "removed a build container left running"),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => tracing::warn!(container = id, "cannot remove build container: {e}"),
        }
    }
}

/// Plans the build of `dir` (on a blocking thread: it reads files) and logs what was detected.
async fn detect(
    dir: &Path,
    images: &BaseImages,
    config: &BTreeMap<String, String>,
    log: &BuildLog,
) -> Result<BuildPlan, BuildError> {
    let dir = dir.to_path_buf();
    let for_plan = images.clone();
    let mut plan = tokio::task::spawn_blocking(move || crate::plan(&dir, &for_plan))
        .await
        .map_err(|e| BuildError::failed(format!("detection stopped unexpectedly: {e}"), ""))??;
    plan.apply_config(config);
    log.step(plan.detected_line());
    if let Some(runtime) = &plan.runtime {
        log.info(runtime);
    }
    for image in &plan.images {
        if let Some(why) = images.explain(image) {
            log.info(why);
        }
    }
    for note in &plan.notes {
        log.info(format!("Note: {note}"));
    }
    for warning in &plan.warnings {
        log.error(format!("Warning: {warning}"));
    }
    Ok(plan)
}

/// The Dockerfile the daemon builds with.
#[derive(Debug, Clone)]
enum Recipe {
    /// Generated from a detected app's plan.
    Generated(String),
    /// The app's own, at this path in the context.
    Own(String),
    /// The app's own (at `path`) with the CA bundle added, and its `.dockerignore` if any.
    Injected { path: String, text: String, ignore: Option<String> },
}

/// Packs the build context (on a blocking thread): the app's files, and the generated
/// Dockerfile and the CA bundle when there are.
async fn pack(
    dir: PathBuf,
    recipe: Recipe,
    ca: Option<Vec<u8>>,
) -> Result<context::Context, BuildError> {
    tokio::task::spawn_blocking(move || {
        // A `.dockerignore` that names the Dockerfile the daemon builds with makes the daemon
        // drop it after reading, so `COPY . ./` does not copy it into the image.
        let (dockerfile, ignore, own) = match &recipe {
            Recipe::Generated(text) => {
                (Some(text), Some(format!(".dockerignore\n{GENERATED_DOCKERFILE}\n")), None)
            }
            Recipe::Own(path) => (None, None, Some(path)),
            Recipe::Injected { path, text, ignore } => {
                let ignore = match ignore {
                    Some(own) => format!("{own}\n{GENERATED_DOCKERFILE}\n"),
                    None => format!(".dockerignore\n{GENERATED_DOCKERFILE}\n"),
                };
                (Some(text), Some(ignore), Some(path))
            }
        };
        let mut extra: Vec<(&str, &[u8])> = Vec::new();
        if let Some(text) = dockerfile {
            extra.push((GENERATED_DOCKERFILE, text.as_bytes()));
        }
        if let Some(ignore) = &ignore {
            extra.push((".dockerignore", ignore.as_bytes()));
        }
        if let Some(ca) = &ca {
            extra.push((CA_CONTEXT_FILE, ca));
        }
        // As with the docker CLI, an app's own Dockerfile is sent even if it ignores itself.
        let always: Vec<&str> = match own {
            Some(path) => vec![path.as_str(), ".dockerignore"],
            None => Vec::new(),
        };
        context::write(&dir, &extra, &always)
    })
    .await
    .map_err(|e| {
        BuildError::failed(format!("packing the build context stopped unexpectedly: {e}"), "")
    })?
}

/// Reads the CA bundle and checks that it holds a PEM certificate: a wrong file would
/// otherwise end up in every image's trust store.
async fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, BuildError> {
    const PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let bundle = tokio::fs::read(path).await.map_err(|e| BuildError::io(path, e))?;
    if !bundle.windows(PEM.len()).any(|w| w == PEM) {
        let why = "PAAS_BUILD_CA_FILE must name a PEM bundle (-----BEGIN CERTIFICATE-----)";
        return Err(BuildError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        ));
    }
    Ok(bundle)
}

/// Config vars the build sees: for a Dockerfile only the ARGs it declares (the classic builder
/// warns about the rest); for detected builds every var that is a valid variable name.
fn build_args(
    plan: &BuildPlan,
    config: &BTreeMap<String, String>,
    log: &BuildLog,
) -> BTreeMap<String, String> {
    let mut args: BTreeMap<String, String> = config
        .iter()
        .filter(|(key, _)| match plan.kind {
            Kind::Dockerfile => plan.build_args.contains(key),
            _ => is_variable_name(key) && !plan.shielded_config.contains(&key.as_str()),
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let shielded: Vec<&str> =
        plan.shielded_config.iter().copied().filter(|key| config.contains_key(*key)).collect();
    if !shielded.is_empty() {
        log.info(format!(
            "Config vars not passed to the build steps, since they would change the {} the \
             build runs with (the app still gets them): {}",
            plan.kind.title(),
            shielded.join(", ")
        ));
    }
    if !args.is_empty() {
        let names: Vec<&str> = args.keys().map(String::as_str).collect();
        let how =
            if plan.kind == Kind::Dockerfile { "build args" } else { "build-time environment" };
        log.info(format!("Config vars passed as {how}: {}", names.join(", ")));
    }
    if !plan.build_config.is_empty() {
        let names: Vec<&str> = plan.build_config.keys().map(String::as_str).collect();
        let shadowed: Vec<&str> =
            names.iter().copied().filter(|name| args.contains_key(*name)).collect();
        let mut line =
            format!("heroku.yml's build.config passed as build args: {}", names.join(", "));
        if !shadowed.is_empty() {
            line.push_str(&format!(
                " (in place of the config vars {}, as on Heroku)",
                shadowed.join(", ")
            ));
        }
        log.info(line);
        args.extend(plan.build_config.clone());
    }
    args
}

fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `python:3.12-slim` and `repo@sha256:…` have a tag or digest; `localhost:5000/app` does not.
fn has_tag(image: &str) -> bool {
    image.contains('@') || image.rsplit('/').next().is_some_and(|last| last.contains(':'))
}

/// The build's output, turned into log lines: Docker's text indented under our steps, with a
/// step header when the install or build command starts.
struct Output<'a> {
    log: &'a BuildLog,
    running: &'a Arc<Mutex<Option<String>>>,
    partial: String,
    /// The instruction now running, e.g. `RUN npm ci`.
    step: String,
    /// `RUN …` instructions of the plan, and the step header each gets in the log.
    headers: Vec<(String, String)>,
    /// The running step's last lines of output, for hints when it fails.
    step_tail: VecDeque<String>,
    /// The running step's first line about an untrusted certificate, which retries may push
    /// out of the tail.
    step_cert: Option<String>,
    /// The line being received is longer than the log keeps, and its start is logged.
    overlong: bool,
}

/// Lines of a step's output kept for hints.
const STEP_TAIL: usize = 40;

impl<'a> Output<'a> {
    fn new(plan: &BuildPlan, log: &'a BuildLog, running: &'a Arc<Mutex<Option<String>>>) -> Self {
        let keyed = |install: &crate::Install| match install.files.as_slice() {
            [] => String::new(),
            files => format!(" ({})", files.join(", ")),
        };
        let mut headers = Vec::new();
        if let Some(install) = plan.apt_install() {
            let header = format!("Installing Debian packages: {}", plan.apt_packages.join(" "));
            headers.push((format!("RUN {install}"), header));
        }
        if let Some(client) = &plan.client {
            if let Some(install) = &client.install {
                let header = format!("Installing the client's dependencies{}", keyed(install));
                headers.push((format!("RUN {}", install.command), header));
            }
            let run = format!("RUN {}", client.build_step());
            headers.push((run, format!("Building the client: {}", client.build)));
        }
        if let Some(install) = &plan.install {
            let header = format!("Installing dependencies{}", keyed(install));
            headers.push((format!("RUN {}", install.command), header));
        }
        for step in plan
            .pre_install
            .iter()
            .map(String::as_str)
            .chain(plan.build.iter().flat_map(|b| b.lines()))
        {
            let header = match plan.step_words.get(step) {
                Some(words) => words.header.clone(),
                None => format!("Running build command: {step}"),
            };
            headers.push((format!("RUN {step}"), header));
        }
        Output {
            log,
            running,
            partial: String::new(),
            step: String::new(),
            headers,
            step_tail: VecDeque::new(),
            step_cert: None,
            overlong: false,
        }
    }

    /// The failing step's output as hints read it: the certificate line first, if any.
    fn step_output(&self) -> Vec<String> {
        let cert = self.step_cert.iter().filter(|line| !self.step_tail.contains(line));
        cert.chain(&self.step_tail).cloned().collect()
    }

    fn remember(&mut self, line: &str) {
        if self.step_cert.is_none() && hints::untrusted_certificate(line) {
            self.step_cert = Some(line.to_string());
        }
        if self.step_tail.len() == STEP_TAIL {
            self.step_tail.pop_front();
        }
        self.step_tail.push_back(line.to_string());
    }

    fn text(&mut self, text: &str) {
        // The daemon colours step stderr red with ANSI escapes; the log is plain text.
        self.partial.push_str(&strip_ansi(text));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            // The end of a line already logged as cut.
            if !std::mem::take(&mut self.overlong) {
                self.line(line.trim_end());
            }
        }
        // A line with no end in sight: the log keeps only its start anyway, so log that
        // now and drop the rest as it comes, rather than hold it all in memory.
        if self.partial.len() > MAX_LINE {
            let start = std::mem::take(&mut self.partial);
            if !std::mem::replace(&mut self.overlong, true) {
                self.line(&start);
            }
        }
    }

    fn flush(&mut self) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.trim().is_empty() && !std::mem::take(&mut self.overlong) {
            self.line(rest.trim_end());
        }
    }

    fn line(&mut self, line: &str) {
        if let Some((_, instruction)) = line.strip_prefix("Step ").and_then(|l| l.split_once(" : "))
        {
            self.step = instruction.trim().to_string();
            self.step_tail.clear();
            self.step_cert = None;
            if let Some((_, header)) = self.headers.iter().find(|(run, _)| *run == self.step) {
                self.log.step(header);
            }
        } else if let Some(id) = line.trim().strip_prefix("---> Running in ") {
            if let Ok(mut running) = self.running.lock() {
                *running = Some(id.trim().to_string());
            }
        } else if line.starts_with("Removing intermediate container") {
            if let Ok(mut running) = self.running.lock() {
                *running = None;
            }
            return; // noise
        } else if !line.trim_start().starts_with("---> ") {
            self.remember(line);
        }
        self.log.info(line);
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// What a build error means for the developer.
fn failure(error: DockerError, step: &str, log: &BuildLog) -> BuildError {
    let log_tail = log.tail(TAIL);
    let message = match &error {
        DockerError::DockerStreamError { error } => error.clone(),
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        _ => return BuildError::Docker(error),
    };
    // The classic builder's words for a failed RUN.
    if let Some(code) = message
        .split("returned a non-zero code:")
        .nth(1)
        .and_then(|rest| rest.trim().parse::<i64>().ok())
    {
        return BuildError::StepFailed {
            step: step.to_string(),
            exit_code: code,
            log_tail,
            hint: None,
        };
    }
    let lower = message.to_lowercase();
    if lower.contains("dockerfile parse error")
        || lower.contains("unknown instruction")
        || lower.contains("failed to parse dockerfile")
        || lower.contains("cannot locate specified dockerfile")
    {
        return BuildError::Dockerfile { message };
    }
    BuildError::failed(message, log_tail)
}

fn log_process_types(plan: &BuildPlan, log: &BuildLog) {
    log.step("Discovering process types");
    let mut by_source: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, source) in &plan.process_sources {
        let source = match source {
            ProcessSource::Procfile => "Procfile declares types",
            ProcessSource::PaasToml => "paas.toml declares types",
            ProcessSource::HerokuYml => "heroku.yml declares types",
            ProcessSource::Inferred => "Default types for this app",
            ProcessSource::Image => "The image's CMD runs",
        };
        by_source.entry(source.to_string()).or_default().push(name);
    }
    for (source, names) in by_source {
        log.info(format!("{source:<27}-> {}", names.join(", ")));
    }
}

/// The context file as a stream of chunks for the request body.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    })
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Docker 20.10 removes an untagged layer when the last image on it goes, also while a build
/// has just chosen it from its cache; the build then fails to find it (when it reads the
/// layer, sets it as the next one's parent, or copies into it). Building again picks (or
/// makes) another.
fn lost_cached_layer(error: &BuildError) -> bool {
    let BuildError::Failed { message, .. } = error else { return false };
    message.contains("failed to get digest")
        || message.contains("unknown parent image ID")
        || message.contains("failed to get destination image")
        || (message.contains("no such file or directory") && message.contains("imagedb"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_layer_removed_mid_build_is_recognised() {
        let lost = BuildError::failed(
            "failed to get destination image \"sha256:85e2\": No such image: sha256:85e2",
            "",
        );
        assert!(lost_cached_layer(&lost));
        assert!(!lost_cached_layer(&BuildError::failed("COPY failed: no source files", "")));
    }

    #[test]
    fn requests_are_checked() {
        let mut req = BuildRequest::new("shop-2", 42, "/nonexistent");
        assert_eq!(req.image_tag(), "paas/app-shop-2:b42");
        assert!(req.check().is_ok());
        for bad in ["Shop", "-x", "a--b", "", "a_b", "x-"] {
            req.app = bad.into();
            assert!(req.check().is_err(), "{bad}");
        }
        let dir = crate::providers::test_support::tree(&[("backend/app.py", "")]);
        let mut req = BuildRequest::new("x", 1, dir.path());
        req.base_dir = Some("backend".into());
        assert_eq!(req.app_dir().unwrap(), dir.path().join("backend"));
        for bad in ["../etc", "/etc", "missing", "backend/app.py", ""] {
            req.base_dir = Some(bad.into());
            assert!(req.app_dir().is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_from_the_daemon() {
        let log = BuildLog::new();
        log.info("Step 3/5 : RUN false");
        let step = failure(
            DockerError::DockerStreamError {
                error: "The command '/bin/sh -c false' returned a non-zero code: 3".into(),
            },
            "RUN false",
            &log,
        );
        assert!(
            matches!(&step, BuildError::StepFailed { exit_code: 3, step, log_tail, .. } if step == "RUN false" && log_tail.contains("Step 3/5")),
            "{step:?}"
        );
        let syntax = failure(
            DockerError::DockerResponseServerError {
                status_code: 400,
                message: "dockerfile parse error line 2: unknown instruction: RUNN".into(),
            },
            "",
            &log,
        );
        assert!(matches!(syntax, BuildError::Dockerfile { .. }), "{syntax:?}");
        assert!(has_tag("python:3.12-slim") && !has_tag("localhost:5000/app"));
        assert_eq!(strip_ansi("\u{1b}[91mwarning\n\u{1b}[0mok"), "warning\nok");
        assert_eq!(human_size(126_000_000), "126.0 MB");
        assert!(
            is_variable_name("SECRET_KEY") && !is_variable_name("1X") && !is_variable_name("A-B")
        );
    }

    #[test]
    fn a_line_without_end_is_not_held_in_memory() {
        let plan = BuildPlan::detected(Kind::Shell, "img".into());
        let log = BuildLog::new();
        let running = Arc::new(Mutex::new(None));
        let mut output = Output::new(&plan, &log, &running);
        let chunk = "y".repeat(64 * 1024);
        for _ in 0..1_000 {
            output.text(&chunk);
            assert!(output.partial.len() <= MAX_LINE + chunk.len());
        }
        output.text("the end of it\nnext line\n");
        output.flush();
        let lines = log.lines();
        assert_eq!(lines.len(), 2, "{:?}", lines.iter().map(String::len).collect::<Vec<_>>());
        assert!(lines[0].ends_with("[line cut at 16 KiB]"));
        assert_eq!(lines[1], "       next line");
    }
}
