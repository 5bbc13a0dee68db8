//! `heroku.yml`: the manifest of Heroku's container stack, read as Heroku reads it.
//!
//! ```yaml
//! build:
//!   docker:
//!     web: Dockerfile          # the Dockerfile each process type's image is built from
//!   config:
//!     DJANGO_ENV: production   # build args
//! release:
//!   image: web
//!   command:
//!     - python manage.py migrate
//! run:
//!   web: gunicorn app.wsgi     # else the image's own CMD
//!   worker:
//!     command:
//!       - celery -A app worker
//!     image: web
//! ```
//!
//! paas builds one image per release, so every process type must name the same Dockerfile
//! (one multi-stage Dockerfile does what several did). `setup` is read by Heroku only when an
//! app is created from the manifest; here it is reported and left alone.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::BuildError;
use crate::procfile::check_command;

const FILE: &str = "heroku.yml";

/// What `heroku.yml` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HerokuYml {
    /// The Dockerfile, relative to the app's root.
    pub dockerfile: String,
    /// `build.config`: build args, values as the YAML wrote them.
    pub build_config: BTreeMap<String, String>,
    /// Process type → shell command; empty for "the image's own CMD". `release` is the
    /// release phase.
    pub processes: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    setup: Option<serde_yaml::Value>,
    build: Option<Build>,
    release: Option<Release>,
    #[serde(default)]
    run: BTreeMap<String, Run>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Build {
    #[serde(default)]
    docker: BTreeMap<String, String>,
    #[serde(default)]
    config: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    image: Option<String>,
    command: Command,
}

/// A command as a string (run by `/bin/sh -c`) or a list of words (run as they are).
#[derive(Deserialize)]
#[serde(untagged)]
enum Command {
    Shell(String),
    Words(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Run {
    Command(Command),
    Full { command: Command, image: Option<String> },
}

impl Command {
    /// As one shell command line: a list's words are quoted, so they reach the program as
    /// they were written.
    fn shell(&self) -> String {
        match self {
            Command::Shell(line) => line.trim().to_string(),
            // Heroku's lists most often hold one whole command line (`- ./manage.py migrate`),
            // which runs as the shell would run it.
            Command::Words(words) if words.len() == 1 => words[0].trim().to_string(),
            Command::Words(words) => {
                words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
            }
        }
    }
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

fn error(message: impl Into<String>) -> BuildError {
    BuildError::manifest(FILE, message.into())
}

/// Reads `heroku.yml`'s text.
pub(crate) fn parse(text: &str) -> Result<HerokuYml, BuildError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let manifest: Manifest = serde_yaml::from_str(text).map_err(|e| error(e.to_string()))?;
    let mut notes = Vec::new();
    if manifest.setup.is_some() {
        notes.push(
            "heroku.yml's `setup` section is not read (Heroku reads it only when an app is \
             created from it): create add-ons with `paas addons:create` and set config with \
             `paas config:set`"
                .to_string(),
        );
    }

    let build = manifest.build.ok_or_else(|| {
        error("has no `build` section: add `build: docker: web: Dockerfile` to build the app's Dockerfile")
    })?;
    let mut dockerfiles = build.docker.values().map(|d| d.trim()).collect::<Vec<_>>();
    dockerfiles.sort_unstable();
    dockerfiles.dedup();
    let dockerfile = match dockerfiles.as_slice() {
        [] => return Err(error("`build.docker` names no Dockerfile (e.g. `web: Dockerfile`)")),
        [one] => one.to_string(),
        several => {
            return Err(error(format!(
                "`build.docker` names {} different Dockerfiles ({}); paas builds one image per \
                 release, so every process type must use the same Dockerfile: join them as the \
                 stages of one Dockerfile and choose each type's command under `run`",
                several.len(),
                several.join(", ")
            )));
        }
    };
    check_dockerfile_path(&dockerfile)?;

    let mut build_config = BTreeMap::new();
    for (name, value) in build.config {
        let value = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(error(format!(
                    "`build.config.{name}` must be a string, number or boolean"
                )));
            }
        };
        build_config.insert(name, value);
    }

    let mut processes: BTreeMap<String, String> =
        build.docker.keys().map(|name| (name.clone(), String::new())).collect();
    let known_image = |image: &Option<String>, whose: &str| match image {
        Some(image) if !build.docker.contains_key(image) => {
            Err(error(format!("{whose} uses image `{image}`, which `build.docker` does not build")))
        }
        _ => Ok(()),
    };
    for (name, run) in &manifest.run {
        let command = match run {
            Run::Command(command) => command,
            Run::Full { command, image } => {
                known_image(image, &format!("`run.{name}`"))?;
                command
            }
        };
        processes.insert(name.clone(), command.shell());
    }
    if let Some(release) = &manifest.release {
        known_image(&release.image, "`release`")?;
        processes.insert("release".to_string(), release.command.shell());
    }
    for (name, command) in &processes {
        let bad_name = name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bad_name {
            return Err(error(format!(
                "process type {name:?} must be letters, digits, `-` or `_` (like `web`)"
            )));
        }
        let from_run = manifest.run.contains_key(name) || name == "release";
        if from_run && command.is_empty() {
            return Err(error(format!("`{name}` has an empty command")));
        }
        check_command(name, command).map_err(error)?;
    }
    Ok(HerokuYml { dockerfile, build_config, processes, notes })
}

/// A Dockerfile path inside the app: relative, without `..` (the files are read through the
/// app's root all the same; this gives the clearer message).
fn check_dockerfile_path(path: &str) -> Result<(), BuildError> {
    let inside = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|part| part != "..")
        && !path.contains(['\0', '\n']);
    if inside {
        Ok(())
    } else {
        Err(error(format!(
            "`build.docker` names {path:?}; give a path inside the app, like `Dockerfile` or \
             `docker/web.Dockerfile`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_heroku_container_stack_manifest() {
        let manifest = parse(
            "setup:\n  addons:\n    - plan: heroku-postgresql\n\
             build:\n  docker:\n    web: Dockerfile\n    worker: Dockerfile\n  config:\n    \
             DJANGO_ENV: production\n    WORKERS: 3\n\
             release:\n  image: web\n  command:\n    - ./manage.py migrate --noinput\n\
             run:\n  web: gunicorn app.wsgi\n  clock:\n    command:\n      - python\n      - \
             clock.py\n      - it's\n    image: worker\n",
        )
        .unwrap();
        assert_eq!(manifest.dockerfile, "Dockerfile");
        assert_eq!(manifest.build_config["DJANGO_ENV"], "production");
        assert_eq!(manifest.build_config["WORKERS"], "3");
        assert_eq!(manifest.processes["web"], "gunicorn app.wsgi");
        // In build.docker without a `run` entry: the image's own CMD.
        assert_eq!(manifest.processes["worker"], "");
        assert_eq!(manifest.processes["clock"], r"python clock.py 'it'\''s'");
        assert_eq!(manifest.processes["release"], "./manage.py migrate --noinput");
        assert!(manifest.notes[0].contains("`setup` section is not read"), "{:?}", manifest.notes);
    }

    #[test]
    fn refuses_what_it_cannot_build_with_the_reason() {
        let cases = [
            ("run:\n  web: x\n", "has no `build` section"),
            ("build:\n  docker: {}\n", "names no Dockerfile"),
            (
                "build:\n  docker:\n    web: Dockerfile\n    worker: worker/Dockerfile\n",
                "2 different Dockerfiles (Dockerfile, worker/Dockerfile)",
            ),
            ("build:\n  docker:\n    web: ../Dockerfile\n", "a path inside the app"),
            ("build:\n  docker:\n    web: /etc/passwd\n", "a path inside the app"),
            (
                "build:\n  docker:\n    web: Dockerfile\nrelease:\n  image: worker\n  command: [x]\n",
                "`release` uses image `worker`",
            ),
            ("build:\n  docker:\n    web: Dockerfile\nbuld: {}\n", "unknown field `buld`"),
            (
                "build:\n  docker:\n    web: Dockerfile\nrun:\n  web: ''\n",
                "`web` has an empty command",
            ),
            ("build:\n  docker:\n    web bad: Dockerfile\n", "process type \"web bad\""),
            ("build: [\n", "heroku.yml"),
        ];
        for (text, expected) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(message.contains("heroku.yml"), "{message}");
        }
    }
}
