//! Node.js: npm, Yarn or pnpm by lock file; `engines.node` picks the version.

use serde_json::Value;

use super::{App, Provider, leading_version};
use crate::config::Requested;
use crate::{BaseImages, BuildError, BuildPlan, ImageRole, Install, Kind, Stage};

pub(crate) struct Node;

#[derive(Clone, Copy, PartialEq)]
enum Manager {
    Npm,
    Yarn,
    Pnpm,
}

impl Manager {
    fn run(self, script: &str) -> String {
        match self {
            Manager::Npm => format!("npm run {script}"),
            Manager::Yarn => format!("yarn {script}"),
            Manager::Pnpm => format!("pnpm run {script}"),
        }
    }

    /// Makes the manager's command work: corepack ships with the official images, Debian's
    /// node needs a global install.
    fn enable(self) -> &'static str {
        match self {
            Manager::Npm => "true",
            Manager::Yarn => "(corepack enable || npm install -g yarn)",
            Manager::Pnpm => "(corepack enable || npm install -g pnpm)",
        }
    }

    fn start(self) -> &'static str {
        match self {
            Manager::Npm => "npm start",
            Manager::Yarn => "yarn start",
            Manager::Pnpm => "pnpm start",
        }
    }
}

impl Provider for Node {
    fn detect(&self, app: &App) -> bool {
        app.is_file("package.json")
    }

    fn plan(&self, app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError> {
        let package = app.json("package.json")?.unwrap_or(Value::Null);
        if !package.is_object() {
            return Err(BuildError::manifest(
                "package.json",
                "must be a JSON object ({\"name\": …, \"scripts\": …})",
            ));
        }
        let requested = package
            .pointer("/engines/node")
            .and_then(Value::as_str)
            .and_then(engine_major)
            .map(|version| Requested { version, source: "package.json engines.node".into() });
        let image = images.choose(ImageRole::Node, requested.as_ref());
        let mut plan = BuildPlan::detected(Kind::Node, image.image);
        plan.runtime = image.note;

        let (manager, lock) = if app.is_file("pnpm-lock.yaml") {
            (Manager::Pnpm, Some("pnpm-lock.yaml"))
        } else if app.is_file("yarn.lock") {
            (Manager::Yarn, Some("yarn.lock"))
        } else {
            (Manager::Npm, app.first_file(&["package-lock.json", "npm-shrinkwrap.json"]))
        };
        let has_deps = ["dependencies", "devDependencies", "optionalDependencies"]
            .iter()
            .any(|key| package[key].as_object().is_some_and(|deps| !deps.is_empty()));
        if has_deps {
            let command = match (manager, lock) {
                (Manager::Npm, Some(_)) => "npm ci --no-audit --no-fund".to_string(),
                (Manager::Npm, None) => {
                    plan.notes.push(
                        "no package-lock.json: dependency versions are not pinned; commit the \
                         lock file npm writes"
                            .into(),
                    );
                    "npm install --no-audit --no-fund".to_string()
                }
                (Manager::Yarn, _) => {
                    let berry =
                        app.read("yarn.lock")?.is_some_and(|text| text.contains("__metadata:"));
                    let frozen = if berry { "--immutable" } else { "--frozen-lockfile" };
                    format!("{} && yarn install {frozen}", Manager::Yarn.enable())
                }
                (Manager::Pnpm, _) => {
                    format!("{} && pnpm install --frozen-lockfile", Manager::Pnpm.enable())
                }
            };
            let mut files = vec!["package.json".to_string()];
            files.extend(lock.map(str::to_string));
            files.extend(app.existing(&[".npmrc", ".yarnrc", ".yarnrc.yml"])?);
            plan.install = Some(Install { command, files, whole_tree: false });
        } else {
            plan.notes.push("package.json declares no dependencies: nothing to install".into());
        }

        let scripts = &package["scripts"];
        if scripts["build"].is_string() {
            plan.build = Some(manager.run("build"));
        }
        if plan.install.is_some() || plan.build.is_some() {
            // Installed and built in a stage on the same image; node_modules comes over with
            // the app's folder.
            let image = plan.base_image.clone().unwrap_or_default();
            plan.build_stage = Some(Stage { image, keep: Vec::new() });
        }
        if manager != Manager::Npm {
            // For `yarn start` and Procfile commands in the image that runs.
            plan.runtime_setup = Some(manager.enable().to_string());
        }
        if let Some(start) = scripts["start"].as_str() {
            plan.infer("web", start_command(start, manager));
        } else if let Some(main) = package["main"].as_str().filter(|m| app.is_file(m)) {
            plan.infer("web", format!("node {main}"));
        } else if let Some(file) = app.first_file(&["server.js", "index.js", "app.js", "main.js"]) {
            plan.infer("web", format!("node {file}"));
        }
        Ok(plan)
    }
}

/// A start script that is just `node FILE …` runs directly: node is then PID 1's child with
/// no npm in between, so it gets SIGTERM, and the runtime image needs no npm.
fn start_command(script: &str, manager: Manager) -> String {
    let script = script.trim();
    let direct =
        script.starts_with("node ") && super::is_simple_command(script) && !script.contains('$');
    if direct { script.to_string() } else { manager.start().to_string() }
}

/// The major version an `engines.node` range asks for: `20.x`, `^20.1`, `~18` give the number;
/// an open range (`>=18`, `*`) asks for nothing in particular, so the default is used.
fn engine_major(range: &str) -> Option<String> {
    let first = range.split("||").next()?.trim();
    if first.starts_with('>') || first.starts_with('<') || first.is_empty() || first == "*" {
        return None;
    }
    leading_version(first, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support;

    fn plan_of(files: &[(&str, &str)]) -> Result<BuildPlan, BuildError> {
        test_support::plan_of(files, &BaseImages::official())
    }

    #[test]
    fn no_dependencies_no_install_and_node_runs_directly() {
        let p = plan_of(&[(
            "package.json",
            r#"{"name":"x","scripts":{"start":"node server.js"},"engines":{"node":"20.x"}}"#,
        )])
        .unwrap();
        assert_eq!(p.kind, Kind::Node);
        assert_eq!(p.install, None);
        assert_eq!(p.process_types["web"], "node server.js");
        assert_eq!(p.base_image.as_deref(), Some("node:20-slim"));
    }

    #[test]
    fn lock_files_pick_the_manager() {
        let deps = r#"{"dependencies":{"express":"^4"},"scripts":{"build":"tsc","start":"npm run serve && x"}}"#;
        let npm = plan_of(&[("package.json", deps), ("package-lock.json", "{}"), (".npmrc", "")])
            .unwrap();
        let install = npm.install.unwrap();
        assert_eq!(install.command, "npm ci --no-audit --no-fund");
        assert_eq!(install.files, ["package.json", "package-lock.json", ".npmrc"]);
        assert_eq!(npm.build.as_deref(), Some("npm run build"));
        assert_eq!(npm.process_types["web"], "npm start");

        let yarn = plan_of(&[("package.json", deps), ("yarn.lock", "# yarn v1\n")]).unwrap();
        assert!(yarn.install.unwrap().command.ends_with("yarn install --frozen-lockfile"));
        assert_eq!(yarn.build.as_deref(), Some("yarn build"));

        let pnpm = plan_of(&[("package.json", deps), ("pnpm-lock.yaml", "")]).unwrap();
        assert!(pnpm.install.unwrap().command.contains("pnpm install --frozen-lockfile"));
        assert_eq!(pnpm.base_image.as_deref(), Some("node:22-slim"));
    }

    #[test]
    fn entry_points_and_bad_json() {
        let p = plan_of(&[("package.json", r#"{"main":"lib/start.js"}"#), ("lib/start.js", "")])
            .unwrap();
        assert_eq!(p.process_types["web"], "node lib/start.js");
        let p = plan_of(&[("package.json", "{}"), ("index.js", "")]).unwrap();
        assert_eq!(p.process_types["web"], "node index.js");
        let err = plan_of(&[("package.json", "{ nope")]).unwrap_err();
        assert!(err.to_string().starts_with("package.json:"), "{err}");
        assert_eq!(engine_major(">=18"), None);
        assert_eq!(engine_major("^18.17 || ^20").as_deref(), Some("18"));
    }
}
