//! Go: modules downloaded in a layer keyed on go.mod/go.sum, static binaries built in a
//! toolchain stage and run on a plain OS image.

use super::{App, Provider, leading_version};
use crate::config::Requested;
use crate::{BaseImages, BuildError, BuildPlan, ImageRole, Install, Kind, Stage};

pub(crate) struct Go;

impl Provider for Go {
    fn detect(&self, app: &App) -> bool {
        app.is_file("go.mod")
    }

    fn plan(&self, app: &App, images: &BaseImages) -> Result<BuildPlan, BuildError> {
        let go_mod = app.read("go.mod")?.unwrap_or_default();
        let directive = |name: &str| {
            go_mod.lines().find_map(|line| {
                let rest = line.trim().strip_prefix(name)?;
                rest.starts_with([' ', '\t']).then(|| rest.trim().to_string())
            })
        };
        let module = directive("module").ok_or_else(|| {
            BuildError::manifest("go.mod", "has no `module` line (run `go mod init NAME`)")
        })?;
        let requested = directive("go")
            .and_then(|v| leading_version(&v, 2))
            .map(|version| Requested { version, source: "go.mod".into() });
        let toolchain = images.choose(ImageRole::Go, requested.as_ref());
        let runtime = images.choose(ImageRole::Stack, None);
        let mut plan = BuildPlan::detected(Kind::Go, runtime.image);
        plan.runtime = toolchain.note;
        plan.build_stage = Some(Stage { image: toolchain.image, keep: Vec::new() });
        plan.env.insert("CGO_ENABLED".into(), "0".into());

        if app.is_dir("vendor") {
            plan.notes.push("vendor/ holds the dependencies: nothing to download".into());
        } else if app.is_file("go.sum") {
            plan.install = Some(Install {
                command: "go mod download".into(),
                files: app.existing(&["go.mod", "go.sum"])?,
                whole_tree: false,
            });
        } else {
            plan.notes.push("no go.sum: the module has no dependencies to download".into());
        }

        // Binaries are named as `go build` names them: after the package's directory, or the
        // module's last path element for the root package.
        if has_main(app, "")? {
            let name = binary_name(&module);
            plan.build = Some(format!("go build -trimpath -o /app/bin/{name} ."));
            plan.infer("web", format!("/app/bin/{name}"));
        } else {
            let mut commands = Vec::new();
            for dir in app.list("cmd") {
                if has_main(app, &format!("cmd/{dir}"))? {
                    commands.push(dir);
                }
            }
            if !commands.is_empty() {
                plan.build = Some("go build -trimpath -o /app/bin/ ./cmd/...".into());
                let web = ["web", "server", "api"]
                    .iter()
                    .find_map(|want| commands.iter().find(|c| c == want))
                    .unwrap_or(&commands[0]);
                plan.infer("web", format!("/app/bin/{web}"));
                if commands.len() > 1 {
                    plan.notes.push(format!(
                        "several commands in cmd/ ({}); web runs {web}, declare others in a \
                         Procfile (e.g. `worker: /app/bin/NAME`)",
                        commands.join(", ")
                    ));
                }
            }
        }
        Ok(plan)
    }
}

/// Whether `dir` holds a `package main` .go file.
fn has_main(app: &App, dir: &str) -> Result<bool, BuildError> {
    for name in app.list(dir) {
        if !name.ends_with(".go") || name.ends_with("_test.go") {
            continue;
        }
        let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let Some(text) = app.read(&path)? else {
            continue;
        };
        if text.lines().any(|l| l.trim() == "package main") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `github.com/acme/shop/v2` → `shop`.
fn binary_name(module: &str) -> String {
    let mut parts = module.trim_matches('"').rsplit('/');
    let last = parts.next().unwrap_or("app");
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].chars().all(|c| c.is_ascii_digit());
    let name = if is_major { parts.next().unwrap_or(last) } else { last };
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if clean.is_empty() { "app".into() } else { clean }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::plan_of;

    #[test]
    fn root_main_package() {
        let p = plan_of(
            &[
                ("go.mod", "module github.com/acme/shop/v2\n\ngo 1.22.1\n"),
                ("go.sum", ""),
                ("main.go", "package main\nfunc main() {}\n"),
            ],
            &BaseImages::official(),
        )
        .unwrap();
        assert_eq!(p.process_types["web"], "/app/bin/shop");
        assert_eq!(p.build_stage.as_ref().unwrap().image, "golang:1.22-bookworm");
        assert_eq!(p.base_image.as_deref(), Some("debian:bookworm-slim"));
        assert_eq!(p.install.unwrap().files, ["go.mod", "go.sum"]);
    }

    #[test]
    fn commands_under_cmd() {
        let p = plan_of(
            &[
                ("go.mod", "module example.com/svc\n"),
                ("cmd/worker/main.go", "package main\n"),
                ("cmd/server/main.go", "package main\n"),
                ("lib/lib.go", "package lib\n"),
            ],
            &BaseImages::local(),
        )
        .unwrap();
        assert_eq!(p.process_types["web"], "/app/bin/server");
        assert_eq!(p.install, None);
        assert_eq!(p.base_image.as_deref(), Some("paas/stack:bookworm"));
        assert_eq!(p.build_stage.unwrap().image, "paas/go:bookworm");
    }
}
