//! What an app declares about how it runs, beside how it is built: routes by path, volumes
//! and scheduled jobs, from `paas.toml` (and `cron` from Dokku's `app.json`). The builder
//! reads and checks them against the build's process types; the server applies them when
//! the build is released.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::BuildError;

/// A section left out is `None`: what the CLI set stays. A section given is the app's whole
/// list from this release on (volumes excepted: they are only ever added, never removed by a
/// deploy, since removing one deletes its files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppManifest {
    /// Path prefix → process type (`"/ws/" = "channels"`).
    pub routes: Option<BTreeMap<String, String>>,
    /// Volume name → mount path (`media = "/app/media"`).
    pub volumes: Option<BTreeMap<String, String>>,
    pub cron: Option<Vec<CronEntry>>,
}

/// One scheduled job: five cron fields in UTC and a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronEntry {
    pub schedule: String,
    pub command: String,
}

impl AppManifest {
    pub fn is_empty(&self) -> bool {
        self.routes.is_none() && self.volumes.is_none() && self.cron.is_none()
    }

    /// Checks what only the build knows: that routed types are process types of this build,
    /// and not `web` (which gets the rest) or `release`. The server checks the rest (paths,
    /// schedules) before releasing.
    pub(crate) fn check(&self, process_types: &BTreeMap<String, String>) -> Result<(), BuildError> {
        for (prefix, process_type) in self.routes.iter().flatten() {
            let problem = if ["web", "release"].contains(&process_type.as_str()) {
                Some(format!("{process_type} cannot take a route (web gets every other path)"))
            } else if !process_types.contains_key(process_type) {
                let known: Vec<&str> =
                    process_types.keys().map(String::as_str).filter(|t| *t != "release").collect();
                Some(format!(
                    "there is no process type {process_type:?} (this build has: {})",
                    known.join(", ")
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(BuildError::manifest(
                    "paas.toml",
                    format!("[routes] {prefix:?} = {process_type:?}: {problem}"),
                ));
            }
        }
        Ok(())
    }
}

/// The `cron` list of Dokku's `app.json`; its other keys are not read, nor keys of a job
/// paas has no use for (Dokku's newer `concurrency_policy`, say).
#[derive(Deserialize)]
struct AppJson {
    #[serde(default)]
    cron: Option<Vec<AppJsonJob>>,
}

#[derive(Deserialize)]
struct AppJsonJob {
    command: String,
    schedule: String,
}

/// The `cron` list of an `app.json`'s text.
pub(crate) fn app_json_cron(text: &str) -> Result<Option<Vec<CronEntry>>, BuildError> {
    let parsed: AppJson = serde_json::from_str(text).map_err(|e| {
        BuildError::manifest(
            "app.json",
            format!("{e} (cron: [{{\"command\": …, \"schedule\": …}}])"),
        )
    })?;
    Ok(parsed.cron.map(|jobs| {
        jobs.into_iter().map(|j| CronEntry { schedule: j.schedule, command: j.command }).collect()
    }))
}

#[cfg(test)]
mod tests {
    use crate::providers::test_support::tree;
    use crate::{BaseImages, plan};

    #[test]
    fn paas_toml_declares_routes_volumes_and_jobs() {
        let dir = tree(&[
            ("app.py", ""),
            ("Procfile", "web: python app.py\nchannels: daphne app.asgi:application\n"),
            (
                "paas.toml",
                "[routes]\n\"/ws/\" = \"channels\"\n\n[volumes]\nmedia = \"/app/media\"\n\n\
                 [[cron]]\nschedule = \"0 11 * * *\"\ncommand = \"python manage.py run_daily_tasks\"\n",
            ),
        ]);
        let plan = plan(dir.path(), &BaseImages::local()).unwrap();
        let manifest = plan.manifest;
        assert_eq!(manifest.routes.unwrap()["/ws/"], "channels");
        assert_eq!(manifest.volumes.unwrap()["media"], "/app/media");
        let cron = manifest.cron.unwrap();
        assert_eq!(cron[0].schedule, "0 11 * * *");
        assert_eq!(cron[0].command, "python manage.py run_daily_tasks");
    }

    #[test]
    fn app_json_gives_the_jobs_unless_paas_toml_does() {
        let job = r#"{"name": "x", "cron": [{"command": "python tick.py", "schedule": "*/5 * * * *", "concurrency_policy": "allow"}]}"#;
        let dir = tree(&[("app.py", ""), ("app.json", job)]);
        let from_app_json = plan(dir.path(), &BaseImages::local()).unwrap();
        assert_eq!(from_app_json.manifest.cron.unwrap()[0].command, "python tick.py");
        assert_eq!(from_app_json.manifest.routes, None, "a section not given is not given");

        let both = tree(&[
            ("app.py", ""),
            ("app.json", job),
            ("paas.toml", "[[cron]]\nschedule = \"@daily\"\ncommand = \"python daily.py\"\n"),
        ]);
        let plan = plan(both.path(), &BaseImages::local()).unwrap();
        assert_eq!(plan.manifest.cron.unwrap()[0].command, "python daily.py");
        assert!(
            plan.notes.iter().any(|n| n.contains("app.json's cron is not read")),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn a_route_to_a_type_the_build_lacks_is_refused() {
        let cases = [
            (
                "[routes]\n\"/ws/\" = \"channels\"\n",
                "there is no process type \"channels\" (this build has: web)",
            ),
            ("[routes]\n\"/api/\" = \"web\"\n", "web cannot take a route"),
            ("[cron]\nschedule = 1\n", "paas.toml"),
        ];
        for (toml, expected) in cases {
            let dir =
                tree(&[("app.py", ""), ("Procfile", "web: python app.py\n"), ("paas.toml", toml)]);
            let error = plan(dir.path(), &BaseImages::local()).unwrap_err().to_string();
            assert!(error.contains(expected), "{toml}: {error}");
        }
        let dir = tree(&[("app.py", ""), ("app.json", "{\"cron\": {}}")]);
        let error = plan(dir.path(), &BaseImages::local()).unwrap_err().to_string();
        assert!(error.contains("app.json"), "{error}");
    }
}
