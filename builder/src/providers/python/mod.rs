//! Python: pip (requirements.txt), uv, Poetry, Pipenv; Django recognised. The rules follow
//! Heroku's Python buildpack (measured on its own fixtures: `bench/heroku-python.sh`), so an
//! app that moves from Heroku builds the same way or says why not.
//!
//! Dependencies go into a virtualenv at /opt/venv, built in a stage on the build image (which
//! may have a compiler) and copied into the slim runtime image.

pub(crate) mod version;

use super::{App, Provider};
use crate::plan::StepWords;
use crate::{BaseImages, BuildError, BuildPlan, ClientBuild, Install, Kind, Stage};

pub(crate) struct Python;

const VENV: &str = "/opt/venv";
/// Installers (uv, Poetry, Pipenv) get their own virtualenv in the build stage, so neither
/// they nor their dependencies end up in the app's.
const TOOLS: &str = "/opt/paas-tools";
/// The config var that turns Django's collectstatic off, as on Heroku.
const DISABLE_COLLECTSTATIC: &str = "DISABLE_COLLECTSTATIC";
/// Heroku's hooks get a cache folder; this one lasts for the build only.
const HOOK_CACHE: &str = "/tmp/paas-hook-cache";
/// Config vars the build steps do not get: each would change which Python (or which
/// virtualenv) the install runs with, and break it. The app still gets them at run time.
const SHIELDED: [&str; 13] = [
    "PATH",
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_USER",
    "UV_PROJECT_ENVIRONMENT",
    "UV_PYTHON",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];

/// Files that make a tree a Python app even without a dependency manifest.
const MARKERS: [&str; 12] = [
    "requirements.txt",
    "pyproject.toml",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "setup.py",
    "runtime.txt",
    ".python-version",
    "manage.py",
    "main.py",
    "app.py",
];

impl Provider for Python {
    fn detect(&self, app: &App) -> bool {
        app.first_file(&MARKERS).is_some()
    }

    fn plan(&self, app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError> {
        no_installed_python(app)?;
        let manager = Manager::of(app)?;
        let mut warnings = Vec::new();
        let requested = version::requested(app, manager, &mut warnings)?;
        if manager == Manager::Pipenv {
            lock_matches_version(app, requested.as_ref())?;
        }
        let chosen = images.python(requested.as_ref().map(|r| (r.version, r.origin)))?;
        warnings.extend(chosen.warning);
        let mut plan = BuildPlan::detected(Kind::Python, chosen.runtime);
        plan.runtime = Some(chosen.note);
        plan.warnings = warnings;
        plan.shielded_config = SHIELDED.to_vec();
        plan.build_stage = Some(Stage { image: chosen.build, keep: vec![VENV.to_string()] });
        for (key, value) in [
            ("VIRTUAL_ENV", VENV.to_string()),
            ("PATH", format!("{VENV}/bin:$PATH")),
            ("PYTHONUNBUFFERED", "1".to_string()),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1".to_string()),
            ("PIP_NO_CACHE_DIR", "1".to_string()),
        ] {
            plan.env.insert(key.to_string(), value);
        }

        let deps = dependencies(app, manager, &mut plan.notes)?;
        plan.install = Some(deps.install.clone());
        if app.is_file("bin/pre_compile") {
            // It may change any file, so it runs first, on the whole tree.
            plan.pre_install = Some(hook(&mut plan, "pre_compile"));
        }

        if let Some(django) = django(app)? {
            plan.framework = Some("Django".into());
            let chdir = django.dir.as_ref().map(|d| format!(" --chdir {d}")).unwrap_or_default();
            let cd = django.dir.as_ref().map(|d| format!("cd {d} && ")).unwrap_or_default();
            let daphne = django.asgi_app.as_ref().filter(|_| deps.has("daphne"));
            if let Some(asgi) = daphne {
                // Channels apps set ASGI_APPLICATION: gunicorn's WSGI would drop their
                // WebSockets, daphne serves both.
                plan.infer(
                    "web",
                    format!("{cd}daphne --bind 0.0.0.0 --port $PORT --proxy-headers {asgi}"),
                );
            } else if let (Some(wsgi), true) = (&django.wsgi_module, deps.has("gunicorn")) {
                plan.infer("web", format!("gunicorn {wsgi}{chdir}"));
            } else {
                plan.infer_with_note(
                    "web",
                    format!("{cd}python manage.py runserver 0.0.0.0:$PORT --noreload"),
                    "gunicorn is not in your dependencies, so the web process is Django's \
                     development server; add gunicorn for production, or declare `web:` in a \
                     Procfile",
                );
            }
        } else if let Some(script) = app.first_file(&["main.py", "app.py"]) {
            plan.infer("web", format!("python {script}"));
        }
        build_steps(app, &deps, &mut plan)?;
        plan.client = client_build(app, images, &mut plan.notes);
        if let Some(client) = &plan.client {
            let at =
                if client.dir.is_empty() { "the root".into() } else { format!("{}/", client.dir) };
            plan.notes.push(format!(
                "a Node.js client in {at} is built first ({}), and its output is in place \
                 before the build step",
                client.build
            ));
        }
        Ok(plan)
    }
}

/// `bin/pre_compile` or `bin/post_compile`, run as Heroku runs them (made executable, from
/// the app's root, with the config vars, `BUILD_DIR` and `CACHE_DIR`), and named in the log
/// when it fails. The cache folder lasts for the build only: paas caches dependencies in
/// Docker's layers, so nothing a hook leaves there is read.
fn hook(plan: &mut BuildPlan, name: &str) -> String {
    let command = format!(
        "chmod +x bin/{name} && mkdir -p {HOOK_CACHE} && BUILD_DIR=/app CACHE_DIR={HOOK_CACHE} \
         bin/{name}"
    );
    let words = StepWords {
        header: format!("Running bin/{name} hook"),
        on_failure: format!(
            "bin/{name} exited with an error. paas runs it, as Heroku does, to customise the \
             build: fix what it printed above, or remove or rename the script."
        ),
    };
    plan.step_words.insert(command.clone(), words);
    command
}

/// What runs after the install, in Heroku's order: NLTK corpora, Django's collectstatic,
/// `bin/post_compile`.
fn build_steps(app: &App, deps: &Dependencies, plan: &mut BuildPlan) -> Result<(), BuildError> {
    let mut steps = Vec::new();
    if deps.has("nltk") {
        match app.read("nltk.txt")?.map(|text| nltk_download(&text)).transpose()? {
            Some(Some((command, words))) => {
                plan.step_words.insert(command.clone(), words);
                steps.push(command);
            }
            Some(None) => plan.notes.push("nltk.txt names no corpora: none are downloaded".into()),
            None => plan.notes.push(
                "nltk is a dependency but there is no nltk.txt, so no NLTK corpora are \
                 downloaded; list them in nltk.txt, one a line"
                    .into(),
            ),
        }
    }
    if deps.has("django") {
        let manage = find_manage_py(app);
        if app.is_file(".heroku/collectstatic_disabled") {
            plan.notes.push(
                "collectstatic is skipped: .heroku/collectstatic_disabled exists. That file is \
                 deprecated (on Heroku too): delete it and set the config var \
                 DISABLE_COLLECTSTATIC=1 instead"
                    .into(),
            );
        } else if let Some(dir) = manage {
            let cd = if dir.is_empty() { String::new() } else { format!("cd {dir} && ") };
            let step = format!("{cd}python manage.py collectstatic --noinput");
            plan.build_disabled_by = Some((DISABLE_COLLECTSTATIC, step.clone()));
            steps.push(step);
        } else {
            plan.notes.push(
                "collectstatic is not run: Django is a dependency but there is no manage.py".into(),
            );
        }
    }
    if app.is_file("bin/post_compile") {
        steps.push(hook(plan, "post_compile"));
    }
    if !steps.is_empty() {
        plan.build = Some(steps.join("\n"));
    }
    Ok(())
}

/// The NLTK corpora nltk.txt names, downloaded into the virtualenv, where NLTK looks.
/// `None` when it names none.
fn nltk_download(text: &str) -> Result<Option<(String, StepWords)>, BuildError> {
    let mut names = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        for name in line.split_whitespace() {
            // They go into a shell command.
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                return Err(BuildError::manifest(
                    "nltk.txt",
                    format!("line {}: {name:?} is not an NLTK package name", number + 1),
                ));
            }
            names.push(name);
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let names = names.join(" ");
    let words = StepWords {
        header: format!("Downloading NLTK packages: {names}"),
        on_failure: "NLTK's downloader failed: check each name in nltk.txt is in NLTK's index \
                     (the download also needs to reach raw.githubusercontent.com)."
            .into(),
    };
    Ok(Some((format!("python -m nltk.downloader -d {VENV}/nltk_data {names}"), words)))
}

/// The shallowest folder (up to two down) with a `manage.py`, as Heroku looks for it.
fn find_manage_py(app: &App) -> Option<String> {
    let mut level = vec![String::new()];
    for _ in 0..3 {
        if let Some(dir) = level.iter().find(|dir| app.is_file(&join(dir, "manage.py"))) {
            return Some(dir.clone());
        }
        level = level
            .iter()
            .flat_map(|dir| app.list(dir).into_iter().map(move |name| join(dir, &name)))
            // The folder goes into a shell command (`cd backend && …`).
            .filter(|path| path.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)))
            .filter(|path| app.is_dir(path) && !path.ends_with("node_modules"))
            .collect();
    }
    None
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

/// A Python installed into the source (`.heroku/python`) or a committed virtualenv would
/// shadow or clash with the one paas installs: refused, with what to do.
fn no_installed_python(app: &App) -> Result<(), BuildError> {
    if app.is_dir(".heroku/python") {
        return Err(BuildError::Python {
            code: "python_source",
            message: "the app's source has a .heroku/python folder, where Heroku's buildpack \
                      installs Python; it is no part of an app. Delete it from the repository \
                      (`git rm -r --cached .heroku/python`)"
                .into(),
        });
    }
    for venv in [".venv", "venv"] {
        if app.is_file(&format!("{venv}/pyvenv.cfg")) {
            return Err(BuildError::Python {
                code: "python_source",
                message: format!(
                    "the app's source has a virtualenv in {venv}/, which only works on the \
                     machine that made it; paas makes its own. Take it out of the repository: \
                     `git rm -r --cached {venv}`, add `{venv}/` to .gitignore, and commit"
                ),
            });
        }
    }
    Ok(())
}

/// The package manager an app uses, from the one file that says so, as on Heroku.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manager {
    Pip,
    Pipenv,
    Poetry,
    Uv,
    /// No manifest at all: a script on the standard library (Heroku refuses these; paas
    /// builds them, with a bare virtualenv).
    Bare,
}

impl Manager {
    fn of(app: &App) -> Result<Manager, BuildError> {
        let refuse =
            |message: String| BuildError::Python { code: "python_package_manager", message };
        let mut found = Vec::new();
        if app.is_file("Pipfile.lock") {
            found.push((Manager::Pipenv, "Pipfile.lock (Pipenv)"));
        } else if app.is_file("Pipfile") {
            return Err(refuse(
                "Pipfile has no Pipfile.lock, so the versions installed would not be pinned: \
                 run `pipenv lock` and commit Pipfile.lock (and check .gitignore does not \
                 leave it out)"
                    .into(),
            ));
        }
        for (file, manager, name) in [
            ("requirements.txt", Manager::Pip, "requirements.txt (pip)"),
            ("poetry.lock", Manager::Poetry, "poetry.lock (Poetry)"),
            ("uv.lock", Manager::Uv, "uv.lock (uv)"),
        ] {
            if app.is_file(file) {
                found.push((manager, name));
            }
        }
        match found.as_slice() {
            [(manager, _)] => Ok(*manager),
            [] if app.is_file("setup.py") => Err(refuse(
                "setup.py alone does not say how to install the app: add a requirements.txt \
                 holding `-e .` to install it with pip, or use uv (`uv lock`) or Poetry"
                    .into(),
            )),
            [] if app.is_file("pyproject.toml") => Err(refuse(
                "pyproject.toml has no lock file beside it, so paas cannot tell which package \
                 manager installs it: run `uv lock` or `poetry lock` and commit the lock file, \
                 or add a requirements.txt (holding `.` installs this project with pip)"
                    .into(),
            )),
            [] => Ok(Manager::Bare),
            several => {
                let names: Vec<&str> = several.iter().map(|(_, name)| *name).collect();
                Err(refuse(format!(
                    "several package managers' files are here: {}. Keep the one the app uses \
                     and delete the others (one that a tool generates, like a requirements.txt \
                     exported from uv or Poetry, too)",
                    names.join(", ")
                )))
            }
        }
    }
}

/// Pipenv's lock holds the Python it was locked for; an app asking for another would install
/// what was never resolved for it.
fn lock_matches_version(app: &App, requested: Option<&version::Request>) -> Result<(), BuildError> {
    let Some(request) = requested.filter(|r| r.origin != "Pipfile.lock") else {
        return Ok(());
    };
    let Some(locked) = version::pipfile_lock(app)? else {
        return Ok(());
    };
    if locked.minor_string() == request.version.minor_string() {
        return Ok(());
    }
    Err(BuildError::Python {
        code: "python_version",
        message: format!(
            "Pipfile.lock was locked for Python {locked}, but {} asks for {}: make them agree \
             (set python_version under [requires] in the Pipfile and run `pipenv lock`)",
            request.origin, request.version
        ),
    })
}

/// Folders a client usually lives in, looked at first (before, say, a `docs/` site).
const CLIENT_DIRS: [&str; 5] = ["frontend", "client", "web", "ui", "assets"];

/// A Node.js client to build before the Python app: a `package.json` with a `build` script
/// at the root or one folder down (`frontend/`, `client/`). One that paas cannot read is
/// skipped with a note: the Python app builds as it did without it.
fn client_build(app: &App, images: &BaseImages, notes: &mut Vec<String>) -> Option<ClientBuild> {
    let mut dirs: Vec<String> = app.list("").into_iter().filter(|d| app.is_dir(d)).collect();
    // Conventional names first, then the rest in name order; the root before all.
    dirs.sort_by_key(|d| CLIENT_DIRS.iter().position(|c| c == d).unwrap_or(CLIENT_DIRS.len()));
    dirs.insert(0, String::new());
    for dir in dirs {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        if dir == "node_modules" || !app.is_file(&format!("{prefix}package.json")) {
            continue;
        }
        // The name goes into shell commands unquoted.
        if !dir.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            notes.push(format!(
                "{dir}/package.json is not built: rename the folder to letters, digits, -, _ or ."
            ));
            continue;
        }
        let node = match super::node::Node.plan(&app.sub(&dir), images) {
            Ok(node) => node,
            Err(error) => {
                notes.push(format!("{prefix}package.json is not built: {error}"));
                continue;
            }
        };
        let (Some(build), Some(image)) = (node.build, node.base_image) else { continue };
        let in_dir = |command: &str| match dir.as_str() {
            "" => command.to_string(),
            dir => format!("cd {dir} && {command}"),
        };
        let install = node.install.map(|install| Install {
            command: in_dir(&install.command),
            files: install.files.iter().map(|f| format!("{prefix}{f}")).collect(),
            whole_tree: install.whole_tree,
        });
        let build = in_dir(&build);
        return Some(ClientBuild { dir, image, install, build });
    }
    None
}

struct Dependencies {
    install: Install,
    /// The manifests' text, lowercased: to see whether gunicorn or django is a dependency.
    text: String,
}

impl Dependencies {
    /// An install keyed on `files`: its layer is reused until one of them changes.
    fn keyed(command: String, files: Vec<String>, text: &str) -> Dependencies {
        Dependencies {
            install: Install { command, files, whole_tree: false },
            text: without_comments(text),
        }
    }

    /// An install that needs the whole source tree, so it runs on every change.
    fn whole_tree(command: String, text: &str) -> Dependencies {
        Dependencies {
            install: Install { command, files: Vec::new(), whole_tree: true },
            text: without_comments(text),
        }
    }

    /// Whether `package` is among the dependencies (by name, as a word).
    fn has(&self, package: &str) -> bool {
        self.text.match_indices(package).any(|(at, _)| {
            let before = self.text[..at].chars().next_back();
            let after = self.text[at + package.len()..].chars().next();
            let word = |c: Option<char>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            !word(before) && !word(after)
        })
    }
}

fn dependencies(
    app: &App,
    manager: Manager,
    notes: &mut Vec<String>,
) -> Result<Dependencies, BuildError> {
    match manager {
        Manager::Pip => {
            let text = app.read("requirements.txt")?.unwrap_or_default();
            requirements_txt(app, &text, notes)
        }
        Manager::Uv => uv(app),
        Manager::Poetry => poetry(app),
        Manager::Pipenv => pipenv(app),
        Manager::Bare => {
            notes.push(
                "no requirements.txt, Pipfile.lock, poetry.lock or uv.lock: nothing to install \
                 (the standard library only)"
                    .into(),
            );
            Ok(Dependencies::keyed(format!("{} --without-pip", new_venv()), Vec::new(), ""))
        }
    }
}

fn new_venv() -> String {
    format!("python -m venv {VENV}")
}

/// pip, keyed on requirements.txt and the files it names.
fn requirements_txt(
    app: &App,
    text: &str,
    notes: &mut Vec<String>,
) -> Result<Dependencies, BuildError> {
    let venv = new_venv();
    let refs = requirement_files(text);
    if refs.local_source {
        notes.push(
            "requirements.txt installs a local directory, so dependencies are reinstalled on \
             every change; list packages (or wheels) instead to cache them"
                .into(),
        );
        return Ok(Dependencies::whole_tree(
            format!("{venv} && pip install -r requirements.txt"),
            text,
        ));
    }
    let mut files = vec!["requirements.txt".to_string()];
    files.extend(refs.paths.into_iter().filter(|p| {
        let p = p.trim_end_matches('/');
        app.is_file(p) || app.is_dir(p)
    }));
    let mut all_text = text.to_string();
    for file in &files[1..] {
        match app.read(file.trim_end_matches('/')) {
            Ok(more) => {
                all_text.push('\n');
                all_text.push_str(&more.unwrap_or_default());
            }
            Err(refused @ BuildError::FileRefused { .. }) => return Err(refused),
            // A wheel is not text; it is copied in all the same.
            Err(_) => {}
        }
    }
    if !refs.any_requirement {
        notes.push("requirements.txt lists no packages: nothing to install".into());
        // No pip needed: a bare virtualenv keeps the layout (and PATH) the same, offline.
        return Ok(Dependencies::keyed(format!("{venv} --without-pip"), files, &all_text));
    }
    Ok(Dependencies::keyed(format!("{venv} && pip install -r requirements.txt"), files, &all_text))
}

/// uv, from uv.lock, refusing a lock that no longer matches pyproject.toml (`--locked`).
/// Local path dependencies need the whole tree; without them the install is keyed on the
/// two files and the project itself stays in /app, importable from there.
fn uv(app: &App) -> Result<Dependencies, BuildError> {
    // uv must use the venv's interpreter: it would otherwise fetch the Python that
    // .python-version asks for, which the runtime image does not have.
    let sync = format!(
        "{} && {} && UV_PROJECT_ENVIRONMENT={VENV} UV_PYTHON={VENV}/bin/python \
         UV_PYTHON_DOWNLOADS=never {TOOLS}/bin/uv sync --locked --no-default-groups --inexact",
        new_venv(),
        install_tool("uv")
    );
    with_lock(app, "uv.lock", uv_local_source, sync, "--no-install-project")
}

/// Poetry, refusing a lock that no longer matches pyproject.toml (`poetry check --lock`).
fn poetry(app: &App) -> Result<Dependencies, BuildError> {
    // Poetry installs into the virtualenv that VIRTUAL_ENV names: the app's.
    let install = format!(
        "{} && {} && {TOOLS}/bin/poetry check --lock && POETRY_VIRTUALENVS_CREATE=false \
         {TOOLS}/bin/poetry install --only main --no-interaction",
        new_venv(),
        install_tool("poetry")
    );
    with_lock(app, "poetry.lock", poetry_local_source, install, "--no-root")
}

/// uv's or Poetry's `install`: on the whole tree, project included, when the lock has a
/// package from a folder of the app; else keyed on pyproject.toml and the lock, with
/// `skip_project` (the project's code stays in /app, importable from there).
fn with_lock(
    app: &App,
    lock: &str,
    is_local: fn(&toml::Table) -> bool,
    install: String,
    skip_project: &str,
) -> Result<Dependencies, BuildError> {
    let pyproject = app.read("pyproject.toml")?.unwrap_or_default();
    if local_sources(app, lock, is_local)? {
        return Ok(Dependencies::whole_tree(install, &pyproject));
    }
    Ok(Dependencies::keyed(
        format!("{install} {skip_project}"),
        app.existing(&["pyproject.toml", lock])?,
        &pyproject,
    ))
}

/// Pipenv: the lock's hash checked against the Pipfile (`pipenv verify`), then the lock
/// turned into requirements for pip.
fn pipenv(app: &App) -> Result<Dependencies, BuildError> {
    let text = app.read("Pipfile")?.unwrap_or_default();
    let install = format!(
        "{} && {} && {TOOLS}/bin/pipenv verify && {TOOLS}/bin/pipenv requirements > \
         /tmp/requirements.txt && pip install -r /tmp/requirements.txt",
        new_venv(),
        install_tool("pipenv")
    );
    let lock = app.json("Pipfile.lock")?.unwrap_or_default();
    // A package from a folder of the app: `{"path": "./packages/x"}` or a `file` that is no URL.
    let local = lock["default"].as_object().is_some_and(|packages| {
        packages.values().any(|p| {
            p.get("path").is_some()
                || p.get("file").is_some_and(|f| !f.as_str().unwrap_or_default().contains("://"))
        })
    });
    if local {
        return Ok(Dependencies::whole_tree(install, &text));
    }
    Ok(Dependencies::keyed(install, app.existing(&["Pipfile", "Pipfile.lock"])?, &text))
}

/// Whether the lock file installs a package from a folder of the app (other than the
/// project itself), which the install step can only see with the whole tree.
fn local_sources(
    app: &App,
    lock: &str,
    is_local: fn(&toml::Table) -> bool,
) -> Result<bool, BuildError> {
    let Some(lock) = app.toml(lock)? else {
        return Ok(false);
    };
    let packages = lock.get("package").and_then(|p| p.as_array()).cloned().unwrap_or_default();
    Ok(packages.iter().filter_map(|p| p.as_table()).any(is_local))
}

/// uv.lock: `source = { editable = "packages/x" }` (or `directory`, `path`), not `"."`.
fn uv_local_source(package: &toml::Table) -> bool {
    let Some(source) = package.get("source").and_then(|s| s.as_table()) else {
        return false;
    };
    ["editable", "directory", "path"]
        .iter()
        .filter_map(|key| source.get(*key)?.as_str())
        .any(|path| path != ".")
}

/// poetry.lock: `[package.source] type = "directory"` or `"file"`.
fn poetry_local_source(package: &toml::Table) -> bool {
    package
        .get("source")
        .and_then(|s| s.get("type"))
        .and_then(|t| t.as_str())
        .is_some_and(|kind| kind == "directory" || kind == "file")
}

/// Installs `tool` from the package index into the build stage's tools virtualenv.
fn install_tool(tool: &str) -> String {
    format!("python -m venv {TOOLS} && {TOOLS}/bin/pip install {tool}")
}

#[derive(Debug, Default, PartialEq)]
struct RequirementRefs {
    /// Files and directories requirements.txt reads (`-r`, `-c`, `--find-links`, wheel paths),
    /// which must be copied in with it.
    paths: Vec<String>,
    /// Installs a local source tree (`-e .`, `./pkg`), which needs the whole source.
    local_source: bool,
    any_requirement: bool,
}

fn requirement_files(text: &str) -> RequirementRefs {
    let mut refs = RequirementRefs::default();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let option_value = |names: &[&str]| {
            names.iter().find_map(|name| {
                let rest = line.strip_prefix(name)?;
                let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
                (!rest.is_empty()).then(|| rest.to_string())
            })
        };
        if let Some(file) = option_value(&["-r", "--requirement", "-c", "--constraint"]) {
            refs.paths.push(relative(&file));
            continue;
        }
        if let Some(dir) = option_value(&["-f", "--find-links"]) {
            if !dir.contains("://") {
                refs.paths.push(format!("{}/", relative(&dir).trim_end_matches('/')));
            }
            continue;
        }
        if let Some(target) = option_value(&["-e", "--editable"]) {
            if !target.contains("://") && !target.starts_with("git+") {
                refs.local_source = true;
            }
            refs.any_requirement = true;
            continue;
        }
        if line.starts_with('-') {
            continue; // --no-index, --index-url, … take no local files
        }
        refs.any_requirement = true;
        if line.starts_with("./") || line.starts_with("../") || line == "." {
            if line.ends_with(".whl") || line.ends_with(".tar.gz") || line.ends_with(".zip") {
                refs.paths.push(relative(line));
            } else {
                refs.local_source = true;
            }
        }
    }
    refs
}

/// Lowercased, with `#` comments dropped: a comment mentioning gunicorn is not a dependency.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&line.split('#').next().unwrap_or_default().to_lowercase());
        out.push('\n');
    }
    out
}

fn relative(path: &str) -> String {
    path.trim_start_matches("./").to_string()
}

struct Django {
    /// The folder manage.py is in, when it is not the app's root.
    dir: Option<String>,
    /// `mysite.wsgi`, from `WSGI_APPLICATION = "mysite.wsgi.application"`.
    wsgi_module: Option<String>,
    /// `mysite.asgi:application`, from `ASGI_APPLICATION = "mysite.asgi.application"` (Django
    /// Channels), in the form daphne takes.
    asgi_app: Option<String>,
}

/// Django: manage.py in the root or one folder down, and a settings module naming
/// WSGI_APPLICATION or ASGI_APPLICATION.
fn django(app: &App) -> Result<Option<Django>, BuildError> {
    let mut dirs = vec![String::new()];
    dirs.extend(app.list("").into_iter().filter(|d| app.is_dir(d)));
    for dir in dirs {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        if !app.is_file(&format!("{prefix}manage.py")) {
            continue;
        }
        for package in app.list(&dir) {
            let settings = [
                format!("{prefix}{package}/settings.py"),
                format!("{prefix}{package}/settings/__init__.py"),
                format!("{prefix}{package}/settings/base.py"),
                format!("{prefix}{package}/settings/production.py"),
            ];
            for file in settings {
                let Some(text) = app.read(&file)? else {
                    continue;
                };
                // gunicorn takes `module` for an `application`, else `module:callable`.
                let wsgi_module =
                    application_setting(&text, "WSGI_APPLICATION").map(|(module, name)| match name
                        .as_str()
                    {
                        "application" => module,
                        _ => format!("{module}:{name}"),
                    });
                let asgi_app = application_setting(&text, "ASGI_APPLICATION")
                    .map(|(module, name)| format!("{module}:{name}"));
                if wsgi_module.is_some() || asgi_app.is_some() {
                    return Ok(Some(Django {
                        dir: (!dir.is_empty()).then_some(dir),
                        wsgi_module,
                        asgi_app,
                    }));
                }
            }
        }
    }
    Ok(None)
}

/// `SETTING = "mysite.wsgi.application"` → (`mysite.wsgi`, `application`).
fn application_setting(settings: &str, setting: &str) -> Option<(String, String)> {
    settings.lines().find_map(|line| {
        // A trailing comment is no part of it: `X = "a.asgi.application"  # Channels`.
        let line = line.split('#').next().unwrap_or_default();
        let value = line.trim().strip_prefix(setting)?;
        let value = value.trim().strip_prefix('=')?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        let valid = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let (module, name) = value.rsplit_once('.').filter(|_| valid)?;
        (!module.is_empty() && !name.is_empty()).then(|| (module.to_string(), name.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::providers::test_support;

    fn plan_of(files: &[(&str, &str)]) -> BuildPlan {
        test_support::plan_of(files, &BaseImages::official()).unwrap()
    }

    #[test]
    fn requirements_keyed_install_in_a_venv() {
        let p = plan_of(&[
            ("requirements.txt", "-r base.txt\nflask==3.0  # web\n"),
            ("base.txt", "gunicorn\n"),
            ("app.py", ""),
            (".python-version", "3.11.4\n"),
        ]);
        let install = p.install.unwrap();
        assert_eq!(install.files, ["requirements.txt", "base.txt"]);
        assert!(install.command.contains("pip install -r requirements.txt"));
        // Official images keep the exact release.
        assert_eq!(p.base_image.as_deref(), Some("python:3.11.4-slim"));
        assert_eq!(p.build_stage.unwrap().keep, ["/opt/venv"]);
        assert_eq!(p.process_types["web"], "python app.py");
        assert!(p.runtime.unwrap().contains(".python-version"));
    }

    #[test]
    fn stdlib_apps_install_offline() {
        let p = plan_of(&[("requirements.txt", "# stdlib only\n\n"), ("main.py", "")]);
        let install = p.install.unwrap();
        assert!(install.command.ends_with("--without-pip"), "{}", install.command);
        assert_eq!(p.process_types["web"], "python main.py");

        // No manifest at all: a bare virtualenv (Heroku refuses this; paas builds it).
        let p = plan_of(&[("runtime.txt", "python-3.12\n"), ("app.py", "")]);
        assert_eq!(p.base_image.as_deref(), Some("python:3.12-slim"));
        assert!(p.install.unwrap().files.is_empty());
        assert!(p.warnings.iter().any(|w| w.contains("runtime.txt is deprecated")));
    }

    #[test]
    fn vendored_wheels_are_part_of_the_key() {
        let refs = requirement_files("--no-index\n--find-links ./wheels\ngreeting==1.0\n");
        assert_eq!(refs.paths, ["wheels/"]);
        assert!(refs.any_requirement && !refs.local_source);
        assert!(requirement_files("-e .\n").local_source);
        assert!(requirement_files("./mypkg\n").local_source);
        assert_eq!(
            requirement_files("./dist/x-1.0-py3-none-any.whl\n").paths,
            ["dist/x-1.0-py3-none-any.whl"]
        );
        assert!(!requirement_files("# nothing\n--index-url https://x\n").any_requirement);
    }

    #[test]
    fn lock_files_pick_the_installer() {
        let uv = plan_of(&[
            ("pyproject.toml", "[project]\nname='x'\n"),
            ("uv.lock", ""),
            (".python-version", "3.13\n"),
            ("main.py", ""),
        ]);
        let install = uv.install.unwrap();
        // A lock that no longer matches pyproject.toml fails the install.
        assert!(install.command.contains("uv sync --locked --no-default-groups"));
        assert!(install.command.ends_with("--no-install-project"), "{}", install.command);
        assert_eq!(install.files, ["pyproject.toml", "uv.lock"]);

        // Installers live in their own virtualenv; uv keeps to the venv's interpreter.
        assert!(install.command.contains("/opt/paas-tools/bin/pip install uv && "));
        assert!(install.command.contains("UV_PYTHON=/opt/venv/bin/python"));

        let poetry = plan_of(&[("pyproject.toml", ""), ("poetry.lock", ""), ("main.py", "")]);
        let install = poetry.install.unwrap();
        assert!(install.command.contains("/opt/paas-tools/bin/poetry check --lock && "));
        assert!(install.command.contains("/opt/paas-tools/bin/poetry install --only main"));
        assert_eq!(install.files, ["pyproject.toml", "poetry.lock"]);

        let pipenv = plan_of(&[
            ("Pipfile", "[requires]\npython_version = \"3.10\"\n"),
            ("Pipfile.lock", r#"{"_meta": {"requires": {"python_version": "3.10"}}}"#),
            ("main.py", ""),
        ]);
        let install = pipenv.install.unwrap();
        assert!(install.command.contains("/opt/paas-tools/bin/pipenv verify && "));
        assert!(install.command.contains("/opt/paas-tools/bin/pipenv requirements"));
        assert_eq!(install.files, ["Pipfile", "Pipfile.lock"]);
        assert_eq!(pipenv.base_image.as_deref(), Some("python:3.10-slim"));
    }

    fn refusal(files: &[(&str, &str)]) -> String {
        let error = test_support::plan_of(files, &BaseImages::official()).unwrap_err();
        assert!(matches!(error, BuildError::Python { .. }), "{error:?}");
        error.to_string()
    }

    #[test]
    fn exactly_one_package_manager() {
        let several = refusal(&[("requirements.txt", ""), ("uv.lock", ""), ("Pipfile.lock", "{}")]);
        assert!(
            several.contains("Pipfile.lock (Pipenv), requirements.txt (pip), uv.lock (uv)"),
            "{several}"
        );
        assert!(refusal(&[("Pipfile", ""), ("main.py", "")]).contains("run `pipenv lock`"));
        assert!(refusal(&[("setup.py", "")]).contains("`-e .`"));
        assert!(refusal(&[("pyproject.toml", ""), ("main.py", "")]).contains("`uv lock`"));
        // A pyproject.toml beside requirements.txt only configures tools: pip.
        let pip = plan_of(&[("requirements.txt", "six\n"), ("pyproject.toml", "[tool.black]\n")]);
        assert!(pip.install.unwrap().command.contains("pip install -r requirements.txt"));
    }

    #[test]
    fn installed_pythons_in_the_source_are_refused() {
        let heroku = [(".heroku/python/bin/python", ""), ("requirements.txt", "")];
        assert!(refusal(&heroku).contains(".heroku/python"));
        let venv = [(".venv/pyvenv.cfg", ""), (".venv/bin/python", ""), ("requirements.txt", "")];
        assert!(refusal(&venv).contains("git rm -r --cached .venv"));
        // A folder called venv that is no virtualenv is code like any other.
        plan_of(&[("venv/notes.txt", ""), ("requirements.txt", "")]);
    }

    #[test]
    fn a_pipenv_lock_for_another_python_is_refused() {
        let lock = r#"{"_meta": {"requires": {"python_version": "3.12"}}}"#;
        let message = refusal(&[("Pipfile.lock", lock), (".python-version", "3.13\n")]);
        assert!(message.contains("locked for Python 3.12, but .python-version asks for 3.13"));
    }

    #[test]
    fn local_path_dependencies_install_with_the_whole_tree() {
        let uv_lock = "[[package]]\nname = \"app\"\nsource = { editable = \".\" }\n\n\
                       [[package]]\nname = \"local\"\nsource = { editable = \"packages/local\" }\n";
        let p =
            plan_of(&[("pyproject.toml", ""), ("uv.lock", uv_lock), (".python-version", "3.13\n")]);
        let install = p.install.unwrap();
        assert!(install.whole_tree && !install.command.contains("--no-install-project"));
        // The project itself alone keeps the keyed layer.
        let uv_lock = "[[package]]\nname = \"app\"\nsource = { virtual = \".\" }\n";
        let p =
            plan_of(&[("pyproject.toml", ""), ("uv.lock", uv_lock), (".python-version", "3.13\n")]);
        assert!(!p.install.unwrap().whole_tree);

        let poetry_lock = "[[package]]\nname = \"local\"\n[package.source]\ntype = \"directory\"\n\
                           url = \"packages/local\"\n";
        let p = plan_of(&[("pyproject.toml", ""), ("poetry.lock", poetry_lock)]);
        let install = p.install.unwrap();
        assert!(install.whole_tree && !install.command.contains("--no-root"));

        let pipfile_lock =
            r#"{"default": {"local": {"editable": true, "path": "./packages/local"}}}"#;
        let p = plan_of(&[("Pipfile", ""), ("Pipfile.lock", pipfile_lock)]);
        assert!(p.install.unwrap().whole_tree);
        let pipfile_lock = r#"{"default": {"six": {"version": "==1.17.0"}}}"#;
        let p = plan_of(&[("Pipfile", ""), ("Pipfile.lock", pipfile_lock)]);
        assert!(!p.install.unwrap().whole_tree);
    }

    #[test]
    fn interpreter_config_vars_are_kept_from_the_build() {
        let p = plan_of(&[("requirements.txt", ""), ("app.py", "")]);
        for var in ["PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PATH"] {
            assert!(p.shielded_config.contains(&var), "{var}");
        }
    }

    #[test]
    fn hooks_and_nltk_run_in_herokus_order() {
        let p = plan_of(&[
            ("requirements.txt", "nltk\nDjango\n"),
            ("nltk.txt", "stopwords\npunkt\n"),
            ("backend/manage.py", ""),
            ("bin/pre_compile", "echo pre"),
            ("bin/post_compile", "echo post"),
        ]);
        let pre = p.pre_install.as_deref().unwrap();
        assert!(pre.starts_with("chmod +x bin/pre_compile && "), "{pre}");
        assert!(pre.ends_with(" BUILD_DIR=/app CACHE_DIR=/tmp/paas-hook-cache bin/pre_compile"));
        let build = p.build.unwrap();
        let steps: Vec<&str> = build.lines().collect();
        assert_eq!(
            steps,
            [
                "python -m nltk.downloader -d /opt/venv/nltk_data stopwords punkt",
                "cd backend && python manage.py collectstatic --noinput",
                "chmod +x bin/post_compile && mkdir -p /tmp/paas-hook-cache && BUILD_DIR=/app \
                 CACHE_DIR=/tmp/paas-hook-cache bin/post_compile",
            ]
        );
        assert_eq!(p.step_words[steps[2]].header, "Running bin/post_compile hook");

        // nltk.txt without nltk installed is not read; nltk without nltk.txt says so.
        let p = plan_of(&[("requirements.txt", "# nltk later\n"), ("nltk.txt", "x\n")]);
        assert_eq!(p.build, None);
        let p = plan_of(&[("requirements.txt", "nltk\n")]);
        assert!(p.notes.iter().any(|n| n.contains("no nltk.txt")));
        let bad = test_support::plan_of(
            &[("requirements.txt", "nltk\n"), ("nltk.txt", "invalid!\n")],
            &BaseImages::official(),
        );
        assert!(bad.unwrap_err().to_string().contains("\"invalid!\" is not an NLTK package"));
    }

    #[test]
    fn collectstatic_runs_wherever_manage_py_and_django_are() {
        // No settings paas can read, no STATIC_ROOT: it runs all the same, as on Heroku.
        let p = plan_of(&[("requirements.txt", "Django\n"), ("manage.py", "")]);
        assert_eq!(p.build.as_deref(), Some("python manage.py collectstatic --noinput"));
        let p = plan_of(&[("requirements.txt", "Django\n"), ("a/b/manage.py", "")]);
        assert_eq!(p.build.as_deref(), Some("cd a/b && python manage.py collectstatic --noinput"));
        let p = plan_of(&[("requirements.txt", "Django\n")]);
        assert!(p.notes.iter().any(|n| n.contains("no manage.py")));
        // django-environ is not Django.
        let p = plan_of(&[("requirements.txt", "django-environ\n"), ("manage.py", "")]);
        assert_eq!(p.build, None);
        let p = plan_of(&[
            ("requirements.txt", "Django\n"),
            ("manage.py", ""),
            (".heroku/collectstatic_disabled", ""),
        ]);
        assert_eq!(p.build, None);
        assert!(p.notes.iter().any(|n| n.contains("DISABLE_COLLECTSTATIC=1 instead")));

        // DISABLE_COLLECTSTATIC drops collectstatic and keeps the other steps.
        let mut p = plan_of(&[
            ("requirements.txt", "Django\n"),
            ("manage.py", ""),
            ("bin/post_compile", ""),
        ]);
        p.apply_config(&BTreeMap::from([(DISABLE_COLLECTSTATIC.into(), "1".into())]));
        let build = p.build.unwrap();
        assert!(!build.contains("collectstatic") && build.contains("bin/post_compile"), "{build}");
    }

    #[test]
    fn django_uses_gunicorn_when_it_is_a_dependency() {
        let settings =
            "STATIC_ROOT = BASE_DIR / 'static'\nWSGI_APPLICATION = 'mysite.wsgi.application'\n";
        let p = plan_of(&[
            ("requirements.txt", "Django==5.0\ngunicorn\n"),
            ("manage.py", ""),
            ("mysite/settings.py", settings),
        ]);
        assert_eq!(p.framework.as_deref(), Some("Django"));
        assert_eq!(p.process_types["web"], "gunicorn mysite.wsgi");
        assert_eq!(p.build.as_deref(), Some("python manage.py collectstatic --noinput"));

        // One folder down, and without gunicorn: the dev server, and a note saying so.
        let p = plan_of(&[
            ("requirements.txt", "django\n"),
            ("src/manage.py", ""),
            ("src/shop/settings.py", "WSGI_APPLICATION = \"shop.wsgi.application\"\n"),
        ]);
        assert_eq!(
            p.process_types["web"],
            "cd src && python manage.py runserver 0.0.0.0:$PORT --noreload"
        );
        assert!(p.notes.iter().any(|n| n.contains("gunicorn")));
        assert_eq!(p.build.as_deref(), Some("cd src && python manage.py collectstatic --noinput"));
    }

    #[test]
    fn a_node_client_is_built_first() {
        let build = r#"{"scripts": {"build": "vite build"}, "devDependencies": {"vite": "5"}}"#;
        let p = plan_of(&[
            ("requirements.txt", "Django\n"),
            ("app.py", ""),
            ("frontend/package.json", build),
            ("frontend/package-lock.json", "{}"),
        ]);
        let client = p.client.as_ref().unwrap();
        assert_eq!(client.dir, "frontend");
        assert_eq!(client.image, "node:22-slim");
        assert_eq!(client.build, "cd frontend && npm run build");
        assert_eq!(client.build_step(), "cd frontend && npm run build && rm -rf node_modules");
        let install = client.install.as_ref().unwrap();
        assert_eq!(install.command, "cd frontend && npm ci --no-audit --no-fund");
        assert_eq!(install.files, ["frontend/package.json", "frontend/package-lock.json"]);
        assert!(p.images.contains(&"node:22-slim".to_string()), "{:?}", p.images);

        // At the root, and with nothing to install.
        let p = plan_of(&[
            ("requirements.txt", ""),
            ("app.py", ""),
            ("package.json", r#"{"scripts": {"build": "node build.js"}}"#),
        ]);
        let client = p.client.unwrap();
        assert_eq!((client.dir.as_str(), client.build.as_str()), ("", "npm run build"));
        assert_eq!(client.install, None);

        // frontend/ before docs/, though d < f; a package.json paas cannot read is skipped.
        let build = r#"{"scripts": {"build": "node build.js"}}"#;
        let p = plan_of(&[
            ("requirements.txt", ""),
            ("app.py", ""),
            ("docs/package.json", build),
            ("frontend/package.json", build),
        ]);
        assert_eq!(p.client.unwrap().dir, "frontend");
        let p = plan_of(&[
            ("requirements.txt", ""),
            ("app.py", ""),
            ("assets/package.json", "[1, 2]"),
            ("my client/package.json", build),
        ]);
        assert_eq!(p.client, None);
        assert!(p.notes.iter().any(|n| n.starts_with("assets/package.json is not built")));
        assert!(p.notes.iter().any(|n| n.starts_with("my client/package.json is not built")));

        // A package.json without a build script is only tooling: nothing to build.
        let p = plan_of(&[
            ("requirements.txt", ""),
            ("app.py", ""),
            ("package.json", r#"{"scripts": {"lint": "eslint ."}}"#),
        ]);
        assert_eq!(p.client, None);
    }

    #[test]
    fn django_channels_apps_run_on_daphne() {
        let settings = "WSGI_APPLICATION = 'chat.wsgi.application'\n\
                        ASGI_APPLICATION = \"chat.asgi.application\"\n";
        let p = plan_of(&[
            ("requirements.txt", "Django==5.2\nchannels==4.2\ndaphne==4.1\ngunicorn\n"),
            ("backend/manage.py", ""),
            ("backend/chat/settings.py", settings),
        ]);
        assert_eq!(
            p.process_types["web"],
            "cd backend && daphne --bind 0.0.0.0 --port $PORT --proxy-headers chat.asgi:application"
        );

        // ASGI_APPLICATION without daphne installed: gunicorn on the WSGI side, as before.
        let p = plan_of(&[
            ("requirements.txt", "Django==5.2\ngunicorn\n"),
            ("manage.py", ""),
            ("chat/settings.py", settings),
        ]);
        assert_eq!(p.process_types["web"], "gunicorn chat.wsgi");

        // Trailing comments are not part of the setting; a WSGI callable of another name.
        let settings = "WSGI_APPLICATION = 'chat.wsgi.app'  # renamed\n\
                        ASGI_APPLICATION = \"chat.asgi.application\"  # Channels\n";
        let p = plan_of(&[
            ("requirements.txt", "Django\ngunicorn\n"),
            ("manage.py", ""),
            ("chat/settings.py", settings),
        ]);
        assert_eq!(p.process_types["web"], "gunicorn chat.wsgi:app");
        let p = plan_of(&[
            ("requirements.txt", "Django\ndaphne\n"),
            ("manage.py", ""),
            ("chat/settings.py", settings),
        ]);
        let web = &p.process_types["web"];
        assert!(web.ends_with(" chat.asgi:application"), "{web}");

        // Only ASGI_APPLICATION: still Django.
        let p = plan_of(&[
            ("requirements.txt", "Django\ndaphne\n"),
            ("manage.py", ""),
            ("chat/settings.py", "ASGI_APPLICATION = 'chat.routing.application'\n"),
        ]);
        assert_eq!(p.framework.as_deref(), Some("Django"));
        let web = &p.process_types["web"];
        assert_eq!(
            web,
            "daphne --bind 0.0.0.0 --port $PORT --proxy-headers chat.routing:application"
        );
    }

    #[test]
    fn django_in_a_monorepo_with_a_settings_package() {
        let mut p = plan_of(&[
            ("requirements.txt", "Django==5.2\ngunicorn==23.0\n"),
            ("backend/manage.py", ""),
            ("backend/shop/settings/__init__.py", "WSGI_APPLICATION = 'shop.wsgi.application'\n"),
            ("backend/shop/settings/base.py", "STATIC_ROOT = BASE_DIR / 'staticfiles'\n"),
            ("frontend/dist/app.js", ""),
        ]);
        assert_eq!(p.process_types["web"], "gunicorn shop.wsgi --chdir backend");
        let collectstatic = "cd backend && python manage.py collectstatic --noinput";
        assert_eq!(p.build.as_deref(), Some(collectstatic));

        // DISABLE_COLLECTSTATIC=0 keeps it; any other value skips it, with a note.
        let config = |value: &str| BTreeMap::from([(DISABLE_COLLECTSTATIC.into(), value.into())]);
        p.apply_config(&config("0"));
        assert_eq!(p.build.as_deref(), Some(collectstatic));
        p.apply_config(&config("1"));
        assert_eq!(p.build, None);
        assert!(
            p.notes.iter().any(|n| n.contains("DISABLE_COLLECTSTATIC is set")),
            "{:?}",
            p.notes
        );
    }
}
