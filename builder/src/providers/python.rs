//! Python: pip (requirements.txt), uv, Poetry, Pipenv; Django recognised.
//!
//! Dependencies go into a virtualenv at /opt/venv, built in a stage on the build image (which
//! may have a compiler) and copied into the slim runtime image.

use super::{App, Provider, leading_version, version_file};
use crate::config::Requested;
use crate::{BaseImages, BuildError, BuildPlan, ClientBuild, ImageRole, Install, Kind, Stage};

pub(crate) struct Python;

const VENV: &str = "/opt/venv";
/// Installers (uv, Poetry, Pipenv) get their own virtualenv in the build stage, so neither
/// they nor their dependencies end up in the app's.
const TOOLS: &str = "/opt/paas-tools";
/// The config var that turns Django's collectstatic off, as on Heroku.
const DISABLE_COLLECTSTATIC: &str = "DISABLE_COLLECTSTATIC";

/// Files that make a tree a Python app even without a dependency manifest.
const MARKERS: [&str; 9] = [
    "requirements.txt",
    "pyproject.toml",
    "Pipfile",
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
        let requested = requested_version(app)?;
        let runtime = images.choose(ImageRole::Python, requested.as_ref());
        let build = images.choose(ImageRole::PythonBuild, requested.as_ref());
        let mut plan = BuildPlan::detected(Kind::Python, runtime.image);
        plan.runtime = runtime.note;
        plan.build_stage = Some(Stage { image: build.image, keep: vec![VENV.to_string()] });
        for (key, value) in [
            ("VIRTUAL_ENV", VENV.to_string()),
            ("PATH", format!("{VENV}/bin:$PATH")),
            ("PYTHONUNBUFFERED", "1".to_string()),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1".to_string()),
            ("PIP_NO_CACHE_DIR", "1".to_string()),
        ] {
            plan.env.insert(key.to_string(), value);
        }

        let deps = dependencies(app, &mut plan.notes)?;
        plan.install = Some(deps.install);

        if let Some(django) = django(app)? {
            plan.framework = Some("Django".into());
            let chdir = django.dir.as_ref().map(|d| format!(" --chdir {d}")).unwrap_or_default();
            let cd = django.dir.as_ref().map(|d| format!("cd {d} && ")).unwrap_or_default();
            let daphne = django.asgi_app.as_ref().filter(|_| deps.text.contains("daphne"));
            if let Some(asgi) = daphne {
                // Channels apps set ASGI_APPLICATION: gunicorn's WSGI would drop their
                // WebSockets, daphne serves both.
                plan.infer(
                    "web",
                    format!("{cd}daphne --bind 0.0.0.0 --port $PORT --proxy-headers {asgi}"),
                );
            } else if let (Some(wsgi), true) = (&django.wsgi_module, deps.text.contains("gunicorn"))
            {
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
            if django.static_root && deps.text.contains("django") {
                plan.build = Some(format!("{cd}python manage.py collectstatic --noinput"));
                plan.build_disabled_by = Some(DISABLE_COLLECTSTATIC);
            } else if deps.text.contains("django") {
                plan.notes.push(
                    "collectstatic is not run: the Django settings set no STATIC_ROOT".into(),
                );
            }
        } else if let Some(script) = app.first_file(&["main.py", "app.py"]) {
            plan.infer("web", format!("python {script}"));
        }
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

fn requested_version(app: &App) -> Result<Option<Requested>, BuildError> {
    if let Some(found) = version_file(app, ".python-version", "", 2)? {
        return Ok(Some(found));
    }
    if let Some(found) = version_file(app, "runtime.txt", "python-", 2)? {
        return Ok(Some(found));
    }
    let pipfile = app.toml("Pipfile")?;
    let version = pipfile
        .as_ref()
        .and_then(|t| t.get("requires")?.get("python_version")?.as_str())
        .and_then(|v| leading_version(v, 2));
    Ok(version.map(|version| Requested { version, source: "Pipfile".into() }))
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
}

fn dependencies(app: &App, notes: &mut Vec<String>) -> Result<Dependencies, BuildError> {
    if let Some(text) = app.read("requirements.txt")? {
        return requirements_txt(app, &text, notes);
    }
    let pyproject = app.read("pyproject.toml")?;
    if let Some(text) = &pyproject
        && let Some(deps) = locked_project(app, text)?
    {
        return Ok(deps);
    }
    if let Some(text) = app.read("Pipfile")? {
        return pipfile(app, &text, notes);
    }
    if let Some(text) = &pyproject {
        notes.push(
            "pyproject.toml has no uv.lock or poetry.lock, so the project is installed with \
             `pip install .` on every change; add a lock file or requirements.txt to cache \
             dependencies"
                .into(),
        );
        return Ok(Dependencies::whole_tree(format!("{} && pip install .", new_venv()), text));
    }
    if app.is_file("setup.py") {
        let text = app.read("setup.py")?.unwrap_or_default();
        return Ok(Dependencies::whole_tree(format!("{} && pip install .", new_venv()), &text));
    }
    notes.push("no requirements.txt, pyproject.toml or Pipfile: nothing to install".into());
    Ok(Dependencies::keyed(format!("{} --without-pip", new_venv()), Vec::new(), ""))
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
            Ok(more) => all_text.push_str(&more.unwrap_or_default()),
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

/// uv or Poetry, keyed on pyproject.toml and the lock file; `None` without a lock file.
fn locked_project(app: &App, pyproject: &str) -> Result<Option<Dependencies>, BuildError> {
    let (tool, lock, install) = if app.is_file("uv.lock") {
        // uv must use the venv's interpreter: it would otherwise fetch the Python that
        // .python-version asks for, which the runtime image does not have.
        let sync = format!(
            "UV_PROJECT_ENVIRONMENT={VENV} UV_PYTHON={VENV}/bin/python UV_PYTHON_DOWNLOADS=never \
             {TOOLS}/bin/uv sync --frozen --no-dev --no-install-project --inexact"
        );
        ("uv", "uv.lock", sync)
    } else if app.is_file("poetry.lock") {
        // Poetry installs into the virtualenv that VIRTUAL_ENV names: the app's.
        let install = format!(
            "POETRY_VIRTUALENVS_CREATE=false {TOOLS}/bin/poetry install --only main --no-root \
             --no-interaction"
        );
        ("poetry", "poetry.lock", install)
    } else {
        return Ok(None);
    };
    Ok(Some(Dependencies::keyed(
        format!("{} && {} && {install}", new_venv(), install_tool(tool)),
        app.existing(&["pyproject.toml", lock])?,
        pyproject,
    )))
}

/// Pipenv turns the lock file into requirements for pip; without a lock it locks first.
fn pipfile(app: &App, text: &str, notes: &mut Vec<String>) -> Result<Dependencies, BuildError> {
    let lock = if app.is_file("Pipfile.lock") {
        String::new()
    } else {
        notes.push(
            "Pipfile has no Pipfile.lock: versions are resolved at every dependency install; \
             commit Pipfile.lock to pin them"
                .into(),
        );
        format!(" && {TOOLS}/bin/pipenv lock")
    };
    Ok(Dependencies::keyed(
        format!(
            "{} && {}{lock} && {TOOLS}/bin/pipenv requirements > /tmp/requirements.txt && pip \
             install -r /tmp/requirements.txt",
            new_venv(),
            install_tool("pipenv")
        ),
        app.existing(&["Pipfile", "Pipfile.lock"])?,
        text,
    ))
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
    static_root: bool,
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
                    let static_root =
                        sets_static_root(&text) || settings_package_sets_static_root(app, &file)?;
                    return Ok(Some(Django {
                        dir: (!dir.is_empty()).then_some(dir),
                        wsgi_module,
                        asgi_app,
                        static_root,
                    }));
                }
            }
        }
    }
    Ok(None)
}

fn sets_static_root(settings: &str) -> bool {
    settings.lines().any(|line| line.trim_start().starts_with("STATIC_ROOT"))
}

/// A split `settings/` package often sets STATIC_ROOT in a module other than the one that
/// names WSGI_APPLICATION.
fn settings_package_sets_static_root(app: &App, found_in: &str) -> Result<bool, BuildError> {
    let Some(package) = found_in.strip_suffix(".py").and_then(|f| f.rsplit_once('/')) else {
        return Ok(false);
    };
    let dir = package.0;
    if !dir.ends_with("/settings") {
        return Ok(false);
    }
    for module in app.list(dir).into_iter().filter(|m| m.ends_with(".py")) {
        if app.read(&format!("{dir}/{module}"))?.is_some_and(|text| sets_static_root(&text)) {
            return Ok(true);
        }
    }
    Ok(false)
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
        assert_eq!(p.base_image.as_deref(), Some("python:3.11-slim"));
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

        let p = plan_of(&[("runtime.txt", "python-3.12.1\n"), ("app.py", "")]);
        assert_eq!(p.base_image.as_deref(), Some("python:3.12-slim"));
        assert!(p.install.unwrap().files.is_empty());
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
            ("main.py", ""),
        ]);
        let install = uv.install.unwrap();
        assert!(install.command.contains("uv sync --frozen"));
        assert_eq!(install.files, ["pyproject.toml", "uv.lock"]);

        // Installers live in their own virtualenv; uv keeps to the venv's interpreter.
        assert!(install.command.contains("/opt/paas-tools/bin/pip install uv && "));
        assert!(install.command.contains("UV_PYTHON=/opt/venv/bin/python"));

        let poetry = plan_of(&[("pyproject.toml", ""), ("poetry.lock", ""), ("main.py", "")]);
        let install = poetry.install.unwrap();
        assert!(install.command.contains("/opt/paas-tools/bin/poetry install --only main"));
        assert_eq!(install.files, ["pyproject.toml", "poetry.lock"]);

        let bare = plan_of(&[("pyproject.toml", ""), ("main.py", "")]);
        assert!(bare.install.unwrap().whole_tree);

        let pipenv = plan_of(&[
            ("Pipfile", "[requires]\npython_version = \"3.10\"\n"),
            ("Pipfile.lock", "{}"),
            ("main.py", ""),
        ]);
        let install = pipenv.install.unwrap();
        assert!(install.command.contains("/opt/paas-tools/bin/pipenv requirements"));
        assert!(!install.command.contains("pipenv lock"));
        assert_eq!(install.files, ["Pipfile", "Pipfile.lock"]);
        assert_eq!(pipenv.base_image.as_deref(), Some("python:3.10-slim"));

        // A pyproject.toml that only configures tools does not hide the Pipfile; without a
        // lock file Pipenv locks first, and says so.
        let unlocked = plan_of(&[
            ("Pipfile", "[packages]\nsix = \"*\"\n"),
            ("pyproject.toml", "[tool.black]\n"),
            ("main.py", ""),
        ]);
        let install = unlocked.install.unwrap();
        assert!(install.command.contains("pipenv lock && "), "{}", install.command);
        assert_eq!(install.files, ["Pipfile"]);
        assert!(unlocked.notes.iter().any(|n| n.contains("no Pipfile.lock")));
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
        assert_eq!(p.build, None);
        assert!(p.notes.iter().any(|n| n.contains("no STATIC_ROOT")));
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
