//! The build plan: what detection decided, as a plain value that prints, serializes and
//! renders into a Dockerfile.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::{self, AppManifest, CronEntry};
use crate::providers::{self, App};
use crate::{BaseImages, BuildError, heroku_yml, procfile};

/// What kind of app the tree is, which decides how it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The app's own Dockerfile.
    Dockerfile,
    Python,
    Node,
    Go,
    Ruby,
    Static,
    /// A Procfile and nothing paas recognises: the files on a plain OS image.
    Shell,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dockerfile => "dockerfile",
            Kind::Python => "python",
            Kind::Node => "node",
            Kind::Go => "go",
            Kind::Ruby => "ruby",
            Kind::Static => "static",
            Kind::Shell => "shell",
        }
    }

    /// How the log names it: `-----> Python app detected`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Dockerfile => "Dockerfile",
            Kind::Python => "Python",
            Kind::Node => "Node.js",
            Kind::Go => "Go",
            Kind::Ruby => "Ruby",
            Kind::Static => "Static HTML",
            Kind::Shell => "Procfile-only (shell)",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The dependency install step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Install {
    pub command: String,
    /// The lock and manifest files copied in before `command` runs: the install layer is
    /// rebuilt only when one of them changes. Directories end with `/`.
    pub files: Vec<String>,
    /// The command needs the whole source tree (`pip install .`), so the layer is rebuilt on
    /// every change.
    pub whole_tree: bool,
}

/// A Node.js client built first in a stage of its own, then laid over the source before the
/// app's own build step: a Django monorepo's frontend, as Heroku's nodejs and python
/// buildpacks one after the other do it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientBuild {
    /// The client's folder, `""` for the app's root.
    pub dir: String,
    pub image: String,
    /// Its dependency install, keyed on its manifest and lock file (paths from the root).
    pub install: Option<Install>,
    /// `cd frontend && npm run build`.
    pub build: String,
}

impl ClientBuild {
    /// The build as its stage runs it: its node_modules stay behind, as the app's image needs
    /// only what the build made. (`build` has changed into the client's folder.)
    pub fn build_step(&self) -> String {
        format!("{} && rm -rf node_modules", self.build)
    }
}

/// The stage the install and build steps run in, with the config vars, so that neither the
/// config nor the compilers and caches end up in the image that runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub image: String,
    /// Paths outside `/app` the install step fills (the virtualenv), copied into the runtime
    /// image along with `/app` as the stage left it.
    pub keep: Vec<String>,
}

/// Where a process type's command came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessSource {
    Procfile,
    PaasToml,
    HerokuYml,
    Inferred,
    /// The image's own ENTRYPOINT/CMD (a Dockerfile app without a Procfile).
    Image,
}

impl fmt::Display for ProcessSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcessSource::Procfile => "Procfile",
            ProcessSource::PaasToml => "paas.toml",
            ProcessSource::HerokuYml => "heroku.yml",
            ProcessSource::Inferred => "inferred",
            ProcessSource::Image => "the image's CMD",
        })
    }
}

/// What to build and how to start it. Pure data: [`plan`] makes it without Docker, and
/// [`generate_dockerfile`](crate::generate_dockerfile) renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildPlan {
    pub kind: Kind,
    /// A framework detection recognised (`Django`, `Rails`), for the log.
    pub framework: Option<String>,
    /// The image the app runs on; `None` for Dockerfile apps.
    pub base_image: Option<String>,
    /// Where the install and build steps run; without one, they run in a stage on
    /// `base_image` (see [`generate_dockerfile`](crate::generate_dockerfile)).
    pub build_stage: Option<Stage>,
    /// A Node.js client built before the app (Python apps with a `package.json`).
    pub client: Option<ClientBuild>,
    /// Debian packages from the app's `Aptfile`, installed in every stage but the client's.
    pub apt_packages: Vec<String>,
    /// A step the image that runs needs as well as the build stage, and which needs no config
    /// (enabling Yarn or pnpm for `yarn start`).
    pub runtime_setup: Option<String>,
    /// Which runtime version is used, and why.
    pub runtime: Option<String>,
    /// Non-secret environment set in the image (virtualenv `PATH`, …). Config vars are never
    /// put here: they reach the build steps as build args and the app from the runner.
    pub env: BTreeMap<String, String>,
    pub install: Option<Install>,
    /// A step on the whole tree before the install (Heroku's `bin/pre_compile`).
    pub pre_install: Option<String>,
    /// The build steps, one a line, each its own `RUN` (so a failure names the one that
    /// failed): Django's collectstatic, a `bin/post_compile` hook, paas.toml's command.
    pub build: Option<String>,
    /// Process type → shell command. An empty command means "the image's own
    /// ENTRYPOINT/CMD" (Dockerfile apps without a Procfile).
    pub process_types: BTreeMap<String, String>,
    pub process_sources: BTreeMap<String, ProcessSource>,
    /// The Dockerfile a Dockerfile app is built with, relative to the app's directory.
    pub dockerfile: Option<String>,
    /// Build args that Dockerfile declares: config vars of these names are passed to it.
    pub build_args: Vec<String>,
    /// Build args `heroku.yml` sets (`build.config`); they win over config vars of the same
    /// name, as on Heroku, where the build sees only these.
    pub build_config: BTreeMap<String, String>,
    /// Every image the build starts FROM, checked (and pulled if allowed) before building.
    pub images: Vec<String>,
    /// Routes, volumes and scheduled jobs the app declares, applied when it is released.
    pub manifest: AppManifest,
    /// Things the developer should know: fallbacks taken, overrides applied.
    pub notes: Vec<String>,
    /// Things the developer should change: a deprecated file, an old patch release, a version
    /// substituted. Shown as warnings in the build log.
    pub warnings: Vec<String>,
    /// Config vars the build steps do not get, since they would break the toolchain
    /// (`PYTHONHOME` for Python). The app still gets them when it runs.
    pub shielded_config: Vec<&'static str>,
    /// Notes about inferred process types, shown only if the Procfile does not replace them.
    #[serde(skip)]
    pub(crate) inferred_notes: BTreeMap<String, String>,
    /// A config var that skips a part of the detected build step when set
    /// (`DISABLE_COLLECTSTATIC`), and that part.
    #[serde(skip)]
    pub(crate) build_disabled_by: Option<(&'static str, String)>,
    /// The log's header for a step, and what to say when it fails, where the provider knows
    /// better than the command itself (`bin/post_compile`, NLTK's downloader).
    #[serde(skip)]
    pub(crate) step_words: BTreeMap<String, StepWords>,
}

/// What the log says of a build step, by its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepWords {
    pub header: String,
    pub on_failure: String,
}

/// The Debian packages an `Aptfile` names, one or more a line, `#` comments allowed, as
/// Heroku's apt buildpack reads it.
fn parse_aptfile(text: &str) -> Result<Vec<String>, BuildError> {
    let mut packages = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        for name in line.split_whitespace() {
            // Debian's rule for package names; they go into a shell command.
            let valid = name.len() >= 2
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.')
                });
            if !valid {
                return Err(BuildError::manifest(
                    "Aptfile",
                    format!("line {}: {name:?} is not a Debian package name", number + 1),
                ));
            }
            packages.push(name.to_string());
        }
    }
    Ok(packages)
}

impl BuildPlan {
    /// The step that installs the Aptfile's packages, if it names any.
    pub fn apt_install(&self) -> Option<String> {
        (!self.apt_packages.is_empty()).then(|| {
            format!(
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                 --no-install-recommends {} && rm -rf /var/lib/apt/lists/*",
                self.apt_packages.join(" ")
            )
        })
    }

    /// A plan for a detected app on `base_image`; providers fill in the rest.
    pub(crate) fn detected(kind: Kind, base_image: String) -> BuildPlan {
        BuildPlan {
            kind,
            framework: None,
            base_image: Some(base_image),
            build_stage: None,
            client: None,
            apt_packages: Vec::new(),
            runtime_setup: None,
            runtime: None,
            env: BTreeMap::new(),
            install: None,
            pre_install: None,
            build: None,
            process_types: BTreeMap::new(),
            process_sources: BTreeMap::new(),
            dockerfile: None,
            build_args: Vec::new(),
            build_config: BTreeMap::new(),
            images: Vec::new(),
            manifest: AppManifest::default(),
            notes: Vec::new(),
            warnings: Vec::new(),
            shielded_config: Vec::new(),
            inferred_notes: BTreeMap::new(),
            build_disabled_by: None,
            step_words: BTreeMap::new(),
        }
    }

    /// Applies what the app's config vars decide about the build: `DISABLE_COLLECTSTATIC`
    /// (any value but empty or `0`) skips Django's collectstatic, as on Heroku.
    pub fn apply_config(&mut self, config: &BTreeMap<String, String>) {
        let Some((var, step)) = self.build_disabled_by.take() else {
            return;
        };
        if !config.get(var).is_some_and(|value| !matches!(value.trim(), "" | "0")) {
            self.build_disabled_by = Some((var, step));
            return;
        }
        // The build's other steps still run.
        if let Some(build) = self.build.take() {
            let kept: Vec<&str> = build.lines().filter(|line| *line != step).collect();
            self.build = (!kept.is_empty()).then(|| kept.join("\n"));
        }
        self.notes.push(format!("{var} is set, so `{step}` is skipped"));
    }

    pub(crate) fn infer(&mut self, process: &str, command: impl Into<String>) {
        self.process_types.insert(process.to_string(), command.into());
    }

    /// Infers a process type with a caveat that matters only if it is really used.
    pub(crate) fn infer_with_note(
        &mut self,
        process: &str,
        command: impl Into<String>,
        note: &str,
    ) {
        self.infer(process, command);
        self.inferred_notes.insert(process.to_string(), note.to_string());
    }

    /// `-----> Python app detected (Django)`'s words.
    pub fn detected_line(&self) -> String {
        match (&self.kind, &self.framework) {
            (Kind::Dockerfile, Some(manifest)) => format!("Dockerfile detected ({manifest})"),
            (Kind::Dockerfile, None) => "Dockerfile detected".to_string(),
            (kind, Some(framework)) => format!("{} app detected ({framework})", kind.title()),
            (kind, None) => format!("{} app detected", kind.title()),
        }
    }
}

/// `paas.toml` in the app: overrides for what detection decided.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaasToml {
    #[serde(default)]
    build: BuildOverrides,
    #[serde(default)]
    processes: BTreeMap<String, String>,
    routes: Option<BTreeMap<String, String>>,
    volumes: Option<BTreeMap<String, String>>,
    cron: Option<Vec<CronEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildOverrides {
    base_image: Option<String>,
    build_image: Option<String>,
    install: Option<String>,
    command: Option<String>,
}

/// Looks at the app in `dir` and decides how to build it. Reads files only; no Docker.
pub fn plan(dir: &Path, images: &BaseImages) -> Result<BuildPlan, BuildError> {
    if !dir.is_dir() {
        return Err(BuildError::InvalidRequest(format!("{} is not a directory", dir.display())));
    }
    let app = App::new(dir);
    let overrides: PaasToml = match app.read("paas.toml")? {
        Some(text) => toml::from_str(&text).map_err(|e| BuildError::manifest("paas.toml", e))?,
        None => PaasToml::default(),
    };
    let heroku = app.read("heroku.yml")?.map(|text| heroku_yml::parse(&text)).transpose()?;
    // heroku.yml wins over a Procfile, as on Heroku's container stack.
    let procfile = match &heroku {
        Some(_) => None,
        None => app.read("Procfile")?.map(|text| procfile::parse(&text)).transpose()?,
    };

    let mut plan = if let Some(manifest) = heroku {
        let mut plan = dockerfile_plan(&app, &manifest.dockerfile)?;
        plan.framework = Some(format!("heroku.yml, {}", manifest.dockerfile));
        plan.notes.extend(manifest.notes);
        if app.is_file("Procfile") {
            plan.notes.push(
                "heroku.yml and a Procfile are both here: heroku.yml wins, as on Heroku's \
                 container stack, and the Procfile is not read"
                    .into(),
            );
        }
        plan.build_config = manifest.build_config;
        for (name, command) in manifest.processes {
            plan.process_sources.insert(name.clone(), ProcessSource::HerokuYml);
            plan.process_types.insert(name, command);
        }
        plan
    } else if app.is_file("Dockerfile") {
        dockerfile_plan(&app, "Dockerfile")?
    } else {
        let provider = providers::all()
            .into_iter()
            .find(|p| p.detect(&app))
            .ok_or_else(|| BuildError::NoAppDetected { dir: dir.to_path_buf() })?;
        let mut plan = provider.plan(&app, images)?;
        plan.process_sources =
            plan.process_types.keys().map(|name| (name.clone(), ProcessSource::Inferred)).collect();
        plan
    };

    // As on Heroku, Procfile entries replace inferred ones of the same name; paas.toml's
    // replace both.
    for (source, processes) in [
        (ProcessSource::Procfile, procfile.unwrap_or_default()),
        (ProcessSource::PaasToml, overrides.processes.clone()),
    ] {
        for (name, command) in processes {
            plan.process_sources.insert(name.clone(), source);
            plan.process_types.insert(name, command);
        }
    }
    check_processes(&plan.process_types, &plan.process_sources)?;
    for (name, note) in std::mem::take(&mut plan.inferred_notes) {
        if plan.process_sources.get(&name) == Some(&ProcessSource::Inferred) {
            plan.notes.push(note);
        }
    }
    plan.manifest =
        AppManifest { routes: overrides.routes, volumes: overrides.volumes, cron: overrides.cron };
    if let Some(text) = app.read("app.json")? {
        let cron = manifest::app_json_cron(&text)?;
        match (&plan.manifest.cron, cron) {
            (Some(_), Some(_)) => {
                plan.notes.push("paas.toml has [[cron]], so app.json's cron is not read".into())
            }
            (None, cron) => plan.manifest.cron = cron,
            (Some(_), None) => {}
        }
    }
    plan.manifest.check(&plan.process_types)?;
    apply_build_overrides(&mut plan, overrides.build)?;
    if let Some(text) = app.read("Aptfile")? {
        let packages = parse_aptfile(&text)?;
        match plan.kind {
            Kind::Dockerfile => plan.notes.push(
                "the Aptfile is not read for a Dockerfile app: install packages in the Dockerfile"
                    .into(),
            ),
            Kind::Static => {
                plan.notes.push("the Aptfile is not read: the static site image has no apt".into())
            }
            _ => plan.apt_packages = packages,
        }
    }
    if app.is_file("heroku.yaml") && !app.is_file("heroku.yml") {
        plan.notes.push(
            "found heroku.yaml; paas, like Heroku, reads heroku.yml, so it is ignored".into(),
        );
    }
    if app.is_file(".paas.toml") && !app.is_file("paas.toml") {
        plan.notes.push("found .paas.toml; paas reads paas.toml (no dot), so it is ignored".into());
    }

    if plan.process_types.is_empty() {
        // As on Heroku, an app with nothing to start still builds and releases; the deploy
        // says that nothing serves it and how to add a web process.
        if plan.kind != Kind::Dockerfile {
            plan.notes.push(format!(
                "no process types: this {} app has no Procfile and paas cannot tell how to \
                 start it, so the release will run nothing; add a Procfile next to your code \
                 with a line like `web: python app.py`",
                plan.kind.title()
            ));
        } else {
            plan.process_types.insert("web".into(), String::new());
            plan.process_sources.insert("web".into(), ProcessSource::Image);
        }
    }
    if plan.kind != Kind::Dockerfile {
        plan.images = plan
            .client
            .iter()
            .map(|c| c.image.clone())
            .chain(plan.build_stage.iter().map(|s| s.image.clone()))
            .chain(plan.base_image.clone())
            .collect();
        plan.images.dedup();
    }
    Ok(plan)
}

fn check_processes(
    processes: &BTreeMap<String, String>,
    sources: &BTreeMap<String, ProcessSource>,
) -> Result<(), BuildError> {
    for (name, command) in processes {
        // heroku.yml's types without a `run` entry run the image's CMD; it checked the rest.
        if sources.get(name) == Some(&ProcessSource::HerokuYml) {
            continue;
        }
        let bad_name = name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bad_name || command.trim().is_empty() {
            return Err(BuildError::manifest(
                "paas.toml",
                format!(
                    "[processes] {name:?}: process types are letters, digits, `-` or `_`, each \
                     with a command"
                ),
            ));
        }
        crate::procfile::check_command(name, command)
            .map_err(|why| BuildError::manifest("paas.toml", format!("[processes] {why}")))?;
    }
    Ok(())
}

fn apply_build_overrides(plan: &mut BuildPlan, build: BuildOverrides) -> Result<(), BuildError> {
    let given =
        |value: Option<String>| value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    for command in [&build.install, &build.command].into_iter().flatten() {
        if command.contains('\n') {
            return Err(BuildError::manifest(
                "paas.toml",
                "build commands are one line: chain steps with `&&` or put them in a script",
            ));
        }
    }
    if plan.kind == Kind::Dockerfile {
        if build.base_image.is_some()
            || build.build_image.is_some()
            || build.install.is_some()
            || build.command.is_some()
        {
            plan.notes.push(
                "paas.toml [build] settings are ignored: the Dockerfile decides how this app \
                 is built"
                    .into(),
            );
        }
        return Ok(());
    }
    if let Some(image) = given(build.base_image) {
        plan.notes.push(format!("paas.toml sets the base image to {image}"));
        plan.runtime = None;
        // A build stage on the base image (Node.js, Ruby) follows it.
        if let Some(stage) = &mut plan.build_stage
            && plan.base_image.as_ref() == Some(&stage.image)
        {
            stage.image = image.clone();
        }
        plan.base_image = Some(image);
    }
    if let Some(image) = given(build.build_image) {
        match &mut plan.build_stage {
            Some(stage) => {
                plan.notes.push(format!("paas.toml sets the build image to {image}"));
                stage.image = image;
            }
            None => plan.notes.push(format!(
                "paas.toml's build_image ({image}) is ignored: a {} build has one stage",
                plan.kind
            )),
        }
    }
    if let Some(command) = given(build.install) {
        plan.notes.push("paas.toml sets the install command".into());
        let files = plan.install.take().map(|i| i.files).unwrap_or_default();
        plan.install = Some(Install { whole_tree: files.is_empty(), command, files });
    }
    if let Some(command) = given(build.command) {
        plan.notes.push("paas.toml sets the build command".into());
        plan.build = Some(command);
        plan.build_disabled_by = None;
    }
    Ok(())
}

/// A Dockerfile app: its images and build args come from the Dockerfile itself.
fn dockerfile_plan(app: &App, dockerfile: &str) -> Result<BuildPlan, BuildError> {
    let text = app.read(dockerfile)?.ok_or_else(|| {
        BuildError::manifest("heroku.yml", format!("names {dockerfile}, which is not in the app"))
    })?;
    let instructions = instructions(&text);
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    let mut build_args = Vec::new();
    for (keyword, rest) in &instructions {
        match keyword.as_str() {
            "FROM" => {
                let words: Vec<&str> =
                    rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                if let Some(image) = words.first() {
                    let image = image.to_string();
                    let known_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
                    // Images named through ARGs are resolved by Docker; it reports them.
                    if !known_stage && image != "scratch" && !image.contains('$') {
                        images.push(image);
                    }
                }
                if let [_, as_kw, name] = words.as_slice()
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.push(name.to_string());
                }
            }
            "ARG" => {
                for word in words(rest) {
                    let name = word.split('=').next().unwrap_or_default();
                    if !name.is_empty() && !build_args.iter().any(|a| a == name) {
                        build_args.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    images.dedup();
    Ok(BuildPlan {
        base_image: None,
        dockerfile: Some(dockerfile.to_string()),
        build_args,
        images,
        ..BuildPlan::detected(Kind::Dockerfile, String::new())
    })
}

/// Whitespace-separated words, where quotes keep spaces inside one word:
/// `A="x y" B` → `A=x y`, `B`.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The Dockerfile's instructions as (KEYWORD, arguments), with comments dropped and `\`
/// continuation lines joined. Enough to find FROM and ARG; Docker parses it for real.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let mut parts = full.trim().splitn(2, char::is_whitespace);
        if let Some(keyword) = parts.next().filter(|k| !k.is_empty()) {
            out.push((
                keyword.to_ascii_uppercase(),
                parts.next().unwrap_or_default().trim().to_string(),
            ));
        }
    }
    out
}

impl fmt::Display for BuildPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, label: &str, value: &str| {
            writeln!(f, "{:<13}{value}", format!("{label}:"))
        };
        let kind = match &self.framework {
            Some(framework) => format!("{} ({framework})", self.kind),
            None => self.kind.to_string(),
        };
        row(f, "kind", &kind)?;
        if let Some(dockerfile) = &self.dockerfile {
            row(f, "dockerfile", dockerfile)?;
            if !self.images.is_empty() {
                row(f, "images", &self.images.join(", "))?;
            }
            if !self.build_args.is_empty() {
                row(f, "build args", &self.build_args.join(", "))?;
            }
            if !self.build_config.is_empty() {
                let names: Vec<&str> = self.build_config.keys().map(String::as_str).collect();
                row(f, "build config", &names.join(", "))?;
            }
        }
        if let Some(image) = &self.base_image {
            row(f, "base image", image)?;
        }
        if let Some(stage) = &self.build_stage {
            let keeps = match stage.keep.as_slice() {
                [] => String::new(),
                keep => format!(" (keeps {})", keep.join(", ")),
            };
            row(f, "build stage", &format!("{}{keeps}", stage.image))?;
        }
        if let Some(runtime) = &self.runtime {
            row(f, "runtime", runtime)?;
        }
        if !self.apt_packages.is_empty() {
            row(f, "apt", &self.apt_packages.join(" "))?;
        }
        if let Some(setup) = &self.runtime_setup {
            row(f, "setup", setup)?;
        }
        if let Some(client) = &self.client {
            row(f, "client", &format!("{} (on {})", client.build, client.image))?;
            if let Some(install) = &client.install {
                row(
                    f,
                    "  install",
                    &format!("{} (keyed on {})", install.command, install.files.join(", ")),
                )?;
            }
        }
        match &self.install {
            Some(install) => {
                row(f, "install", &install.command)?;
                let keyed = if install.whole_tree {
                    "the whole source tree (rebuilt on every change)".to_string()
                } else if install.files.is_empty() {
                    "nothing (always cached)".to_string()
                } else {
                    install.files.join(", ")
                };
                row(f, "  keyed on", &keyed)?;
            }
            None if self.kind != Kind::Dockerfile => row(f, "install", "(none)")?,
            None => {}
        }
        if let Some(pre) = &self.pre_install {
            row(f, "pre-install", pre)?;
        }
        for step in self.build.iter().flat_map(|build| build.lines()) {
            row(f, "build", step)?;
        }
        writeln!(f, "processes:")?;
        let width = self.process_types.keys().map(String::len).max().unwrap_or(0);
        for (name, command) in &self.process_types {
            let source = self
                .process_sources
                .get(name)
                .filter(|s| **s != ProcessSource::Image)
                .map(|s| format!("  ({s})"))
                .unwrap_or_default();
            let command = if command.is_empty() { "(the image's ENTRYPOINT/CMD)" } else { command };
            writeln!(f, "  {:<width$}  {command}{source}", format!("{name}:"), width = width + 1)?;
        }
        for (prefix, process_type) in self.manifest.routes.iter().flatten() {
            row(f, "route", &format!("{prefix} -> {process_type}"))?;
        }
        for (name, path) in self.manifest.volumes.iter().flatten() {
            row(f, "volume", &format!("{name} at {path}"))?;
        }
        for job in self.manifest.cron.iter().flatten() {
            row(f, "cron", &format!("{}  {}", job.schedule, job.command))?;
        }
        if !self.notes.is_empty() {
            writeln!(f, "notes:")?;
            for note in &self.notes {
                writeln!(f, "  - {note}")?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(f, "warnings:")?;
            for warning in &self.warnings {
                writeln!(f, "  - {warning}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support;

    fn plan_of(files: &[(&str, &str)]) -> Result<BuildPlan, BuildError> {
        test_support::plan_of(files, &BaseImages::local())
    }

    #[test]
    fn dockerfile_wins_and_declares_its_args() {
        let plan = plan_of(&[
            ("Dockerfile", "# syntax\nARG BASE=1\nFROM paas/python:bookworm AS build\nARG GREETING=\"hi there\" \\\n  OTHER\n\
                            FROM build\nFROM scratch\nCMD [\"x\"]\n"),
            ("requirements.txt", ""),
        ])
        .unwrap();
        assert_eq!(plan.kind, Kind::Dockerfile);
        assert_eq!(plan.images, ["paas/python:bookworm"]);
        assert_eq!(plan.build_args, ["BASE", "GREETING", "OTHER"]);
        assert_eq!(plan.process_types["web"], "");
        assert_eq!(plan.process_sources["web"], ProcessSource::Image);
        assert!(plan.to_string().contains("the image's ENTRYPOINT/CMD"));
    }

    /// `paas.toml`'s commands are held to the Procfile's rule, when the file is read.
    #[test]
    fn paas_toml_commands_that_could_never_start_are_refused() {
        let long = "x".repeat(crate::procfile::MAX_COMMAND_BYTES + 1);
        for (command, says) in [
            ("\"echo a\\u0000b\"".to_string(), "NUL byte"),
            ("\"echo a\\nrm -rf /\"".to_string(), "control character"),
            (format!("\"{long}\""), "commands are limited"),
        ] {
            let toml = format!("[processes]\nworker = {command}\n");
            let err = plan_of(&[("app.py", ""), ("paas.toml", &toml)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("paas.toml") && text.contains(says), "{text}");
        }
        let fine =
            plan_of(&[("app.py", ""), ("paas.toml", "[processes]\nworker = \"python w.py\"\n")]);
        assert_eq!(fine.unwrap().process_types["worker"], "python w.py");
    }

    #[test]
    fn aptfile_packages_are_installed_where_apt_exists() {
        let aptfile = "# GDAL for GeoDjango\nlibgdal-dev gdal-bin\n\njq  # for scripts\n";
        let plan = plan_of(&[("app.py", ""), ("requirements.txt", ""), ("Aptfile", aptfile)]);
        let plan = plan.unwrap();
        assert_eq!(plan.apt_packages, ["libgdal-dev", "gdal-bin", "jq"]);
        let install = plan.apt_install().unwrap();
        assert!(install.contains("--no-install-recommends libgdal-dev gdal-bin jq"), "{install}");
        assert!(plan.to_string().contains("apt:         libgdal-dev gdal-bin jq"), "{plan}");

        let bad = plan_of(&[("app.py", ""), ("Aptfile", "jq\nrm -rf /\n")]).unwrap_err();
        assert!(bad.to_string().contains("line 2: \"-rf\" is not a Debian package name"), "{bad}");
        let bad = plan_of(&[("app.py", ""), ("Aptfile", "jq;reboot\n")]).unwrap_err();
        assert!(matches!(bad, BuildError::Manifest { .. }), "{bad}");

        // Images without apt, and Dockerfiles, which install their own.
        let static_site = plan_of(&[("index.html", ""), ("Aptfile", "jq\n")]).unwrap();
        assert!(static_site.apt_packages.is_empty());
        assert!(static_site.notes.iter().any(|n| n.contains("no apt")));
        let dockerfile = plan_of(&[("Dockerfile", "FROM x\n"), ("Aptfile", "jq\n")]).unwrap();
        assert!(dockerfile.apt_packages.is_empty());
        assert!(dockerfile.notes.iter().any(|n| n.contains("not read for a Dockerfile app")));
    }

    #[test]
    fn procfile_and_paas_toml_override_in_order() {
        let plan = plan_of(&[
            ("app.py", "print('hi')\n"),
            ("Procfile", "web: python serve.py\nworker: python work.py\n"),
            (
                "paas.toml",
                "[build]\ncommand = \"python build.py\"\nbase_image = \"corp/python:3.12\"\n\
                 [processes]\nworker = \"python other.py\"\n",
            ),
        ])
        .unwrap();
        assert_eq!(plan.kind, Kind::Python);
        assert_eq!(plan.process_types["web"], "python serve.py");
        assert_eq!(plan.process_sources["web"], ProcessSource::Procfile);
        assert_eq!(plan.process_types["worker"], "python other.py");
        assert_eq!(plan.process_sources["worker"], ProcessSource::PaasToml);
        assert_eq!(plan.build.as_deref(), Some("python build.py"));
        assert_eq!(plan.base_image.as_deref(), Some("corp/python:3.12"));
        assert!(plan.images.contains(&"corp/python:3.12".to_string()));
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let none = plan_of(&[("README.md", "hello")]).unwrap_err();
        assert!(matches!(none, BuildError::NoAppDetected { .. }));
        assert!(none.to_string().contains("Procfile"), "{none}");

        let procfile = plan_of(&[("app.py", ""), ("Procfile", "web: ok\nnonsense\n")]).unwrap_err();
        assert!(matches!(procfile, BuildError::Procfile { line: 2, .. }), "{procfile}");

        let toml = plan_of(&[("app.py", ""), ("paas.toml", "[build]\nimage = 1\n")]).unwrap_err();
        assert!(toml.to_string().starts_with("paas.toml:"), "{toml}");

        // Nothing to start builds all the same, saying so (as on Heroku).
        let nothing =
            plan_of(&[("index.txt", ""), ("go.mod", "module example.com/lib\n")]).unwrap();
        assert!(nothing.process_types.is_empty());
        assert!(nothing.notes.iter().any(|n| n.contains("add a Procfile")), "{:?}", nothing.notes);
    }

    #[test]
    fn manifests_out_of_the_app_fail_the_build_unread() {
        let parent = test_support::tree(&[
            ("outside/paas.toml", "[processes]\nweb = \"cat /the-secret\"\n"),
            ("app/app.py", ""),
            ("app/config/Procfile", "web: python app.py\n"),
        ]);
        let app = parent.path().join("app");
        let link = |target: &str, name: &str| {
            let _ = std::fs::remove_file(app.join(name));
            std::os::unix::fs::symlink(target, app.join(name)).unwrap();
        };

        // Inside the app, a symlink is followed.
        link("config/Procfile", "Procfile");
        let plan = crate::plan(&app, &BaseImages::local()).unwrap();
        assert_eq!(plan.process_sources["web"], ProcessSource::Procfile);

        link("/etc/passwd", "Procfile");
        let error = crate::plan(&app, &BaseImages::local()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Procfile is a symlink to a path outside the app; paas does not follow it"
        );
        assert_eq!(error.code(), "file_refused");
        std::fs::remove_file(app.join("Procfile")).unwrap();

        link("../outside/paas.toml", "paas.toml");
        let error = crate::plan(&app, &BaseImages::local()).unwrap_err();
        assert!(error.to_string().starts_with("paas.toml is a symlink"), "{error}");
        assert!(!error.to_string().contains("the-secret"), "{error}");
        std::fs::remove_file(app.join("paas.toml")).unwrap();

        for (target, name) in [("/dev/zero", "Aptfile"), ("/etc/hostname", "requirements.txt")] {
            link(target, name);
            let error = crate::plan(&app, &BaseImages::local()).unwrap_err();
            assert!(error.to_string().starts_with(&format!("{name} is a symlink")), "{error}");
            std::fs::remove_file(app.join(name)).unwrap();
        }
    }

    #[test]
    fn plans_print_and_serialize() {
        let plan = plan_of(&[("requirements.txt", "flask==3.0\n"), ("app.py", "")]).unwrap();
        let text = plan.to_string();
        for needle in ["kind:", "python", "install:", "keyed on:  requirements.txt", "web:"] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["kind"], "python");
        assert_eq!(json["process_types"]["web"], "python app.py");
    }
}
