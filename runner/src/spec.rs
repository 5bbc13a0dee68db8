//! What to run, and how a spec becomes a container's name, labels, environment and command.
//! Pure functions, no Docker: the unit tests below pin every rule.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::RunError;

/// Set on every container paas manages; `list`, `events` and `remove_strays` look for it.
pub const LABEL_MANAGED: &str = "io.paas.managed";
pub const LABEL_APP: &str = "io.paas.app";
/// The release number, digits only (`3`, not `v3`).
pub const LABEL_RELEASE: &str = "io.paas.release";
/// The process type (`web`, `worker`, `release`, `run`).
pub const LABEL_PROCESS: &str = "io.paas.process";
/// The instance number within the type, from 1.
pub const LABEL_INDEX: &str = "io.paas.index";
/// The port the process listens on (`PORT`), when it has one.
pub const LABEL_PORT: &str = "io.paas.port";
/// The Docker network the runner put it on: runners on different networks (a test server
/// next to a real one) never see, adopt or remove each other's containers.
pub const LABEL_NETWORK: &str = "io.paas.network";
/// `true` on one-off containers (release phase, `paas run`), which are never restarted.
pub const LABEL_ONE_OFF: &str = "io.paas.one-off";

/// One process to run: which release of which app, which type and instance, from which image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// The app's name: lowercase letters, digits and single hyphens.
    pub app: String,
    /// The release number; the process sees it as `PAAS_RELEASE=v3`.
    pub release: i64,
    /// `web`, `worker`, … (letters, digits, `-`, `_`).
    pub process_type: String,
    /// The instance number within the type, from 1: `web.1`, `web.2`.
    pub index: u32,
    /// A local image, e.g. `paas/app-shop:b42`.
    pub image: String,
    /// The command, run through `/bin/sh -c`. `None` or empty: the image's own CMD (Dockerfile
    /// apps). The image's ENTRYPOINT, if any, stays in front either way.
    pub command: Option<String>,
    /// The release's config vars. `PORT` and `PAAS_*` are set by the runner and win.
    pub env: BTreeMap<String, String>,
    /// The port the process must listen on, given to it as `PORT` (the `web` type).
    pub port: Option<u16>,
    /// Memory limit; `None`: the runner's default.
    pub memory_mb: Option<u64>,
    /// App networks to join besides the paas network: where the add-ons attached to the app
    /// are (see [`crate::Runner::app_network`]). Empty for an app without add-ons.
    #[serde(default)]
    pub networks: Vec<String>,
    /// The app's persistent volumes, mounted in this process.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
}

/// One of an app's named volumes (see [`crate::Runner::app_volume`]) and where it is
/// mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name within the app: `media`.
    pub name: String,
    /// An absolute path in the container: `/app/media`.
    pub path: String,
}

impl ProcessSpec {
    pub fn new(
        app: impl Into<String>,
        release: i64,
        process_type: impl Into<String>,
        index: u32,
        image: impl Into<String>,
    ) -> ProcessSpec {
        ProcessSpec {
            app: app.into(),
            release,
            process_type: process_type.into(),
            index,
            image: image.into(),
            command: None,
            env: BTreeMap::new(),
            port: None,
            memory_mb: None,
            networks: Vec::new(),
            volumes: Vec::new(),
        }
    }

    /// `web.1`: what the process is called in `paas ps` and log prefixes.
    pub fn process_name(&self) -> String {
        format!("{}.{}", self.process_type, self.index)
    }

    /// Rejects what Docker would reject later with a worse message, or what would break the
    /// labels `list` reads back. Error messages name env vars, never their values.
    pub(crate) fn check(&self) -> Result<(), RunError> {
        let app = &self.app;
        let valid_app = !app.is_empty()
            && app.len() <= 63
            && app.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !app.starts_with('-')
            && !app.ends_with('-')
            && !app.contains("--");
        if !valid_app {
            return Err(RunError::InvalidSpec(format!(
                "app name {app:?}: use lowercase letters, digits and single hyphens"
            )));
        }
        let kind = &self.process_type;
        if kind.is_empty()
            || kind.len() > 63
            || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(RunError::InvalidSpec(format!(
                "process type {kind:?} must be letters, digits, `-` or `_` (like `web`)"
            )));
        }
        if self.release < 0 {
            return Err(RunError::InvalidSpec(format!("release {} is negative", self.release)));
        }
        if self.image.trim().is_empty() {
            return Err(RunError::InvalidSpec("no image to run".into()));
        }
        if self.port == Some(0) {
            return Err(RunError::InvalidSpec("PORT 0 cannot be health-checked".into()));
        }
        if self.memory_mb == Some(0) {
            return Err(RunError::InvalidSpec("a memory limit of 0 MB".into()));
        }
        if self.command.as_deref().is_some_and(|c| c.contains('\0')) {
            return Err(RunError::InvalidSpec("the command contains a NUL byte".into()));
        }
        for volume in &self.volumes {
            let name_ok = !volume.name.is_empty()
                && volume
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !name_ok || !volume.path.starts_with('/') || volume.path.contains('\0') {
                return Err(RunError::InvalidSpec(format!(
                    "volume {:?} at {:?}: a name of lowercase letters, digits, - and _, at an \
                     absolute path",
                    volume.name, volume.path
                )));
            }
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(RunError::InvalidSpec(format!(
                    "config var name {key:?} cannot be passed to a process"
                )));
            }
            if value.contains('\0') {
                return Err(RunError::InvalidSpec(format!("config var {key} contains a NUL byte")));
            }
        }
        Ok(())
    }

    /// A fresh container name: `paas-shop-web.1-v3-1a2b3c`. The random tail lets the old and
    /// the new container of one slot (or a retried start) exist side by side.
    pub(crate) fn container_name(&self) -> String {
        let tail = rand::random::<u32>() & 0x00ff_ffff;
        format!("paas-{}-{}-v{}-{tail:06x}", self.app, self.process_name(), self.release)
    }

    /// Everything `list` needs to rebuild the process from Docker alone.
    pub(crate) fn labels(&self, network: &str, one_off: bool) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_APP.to_string(), self.app.clone()),
            (LABEL_RELEASE.to_string(), self.release.to_string()),
            (LABEL_PROCESS.to_string(), self.process_type.clone()),
            (LABEL_INDEX.to_string(), self.index.to_string()),
            (LABEL_NETWORK.to_string(), network.to_string()),
        ]);
        if let Some(port) = self.port {
            labels.insert(LABEL_PORT.to_string(), port.to_string());
        }
        if one_off {
            labels.insert(LABEL_ONE_OFF.to_string(), "true".to_string());
        }
        labels
    }

    /// `KEY=value` pairs: the config vars, then `PORT` and `PAAS_*`, which override config
    /// vars of the same name (as Heroku's `PORT` does).
    pub(crate) fn env(&self) -> Vec<String> {
        let mut env = self.env.clone();
        if let Some(port) = self.port {
            env.insert("PORT".into(), port.to_string());
        }
        env.insert("PAAS_APP".into(), self.app.clone());
        env.insert("PAAS_RELEASE".into(), format!("v{}", self.release));
        env.insert("PAAS_PROCESS".into(), self.process_name());
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The container's `Cmd`: `None` keeps the image's; otherwise `/bin/sh -c COMMAND`, with
    /// `exec` in front of a simple command so the app itself gets `docker stop`'s SIGTERM
    /// (the shell, which would not pass it on, is replaced).
    pub(crate) fn cmd(&self) -> Option<Vec<String>> {
        let command = self.command.as_deref().map(str::trim).filter(|c| !c.is_empty())?;
        let command = if is_simple_command(command) {
            format!("exec {command}")
        } else {
            command.to_string()
        };
        Some(vec!["/bin/sh".into(), "-c".into(), command])
    }
}

/// A single command the shell can `exec`: no lists, pipes, redirections or subshells, not
/// already `exec …`, and not starting with a `VAR=value` assignment (`exec` would take the
/// assignment for the program's name). The builder's generated CMD follows the same rule.
fn is_simple_command(command: &str) -> bool {
    let first = command.split_whitespace().next().unwrap_or_default();
    !command.contains(['\n', ';', '&', '|', '(', ')', '<', '>', '`', '{', '}'])
        && first != "exec"
        && !first.contains('=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProcessSpec {
        let mut spec = ProcessSpec::new("shop-2", 3, "web", 1, "paas/app-shop-2:b7");
        spec.port = Some(5000);
        spec.env.insert("DATABASE_URL".into(), "postgres://secret@db/shop".into());
        spec
    }

    #[test]
    fn names_are_readable_and_unique() {
        let spec = spec();
        assert_eq!(spec.process_name(), "web.1");
        let name = spec.container_name();
        let tail = name.strip_prefix("paas-shop-2-web.1-v3-").unwrap();
        assert!(tail.len() == 6 && tail.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        assert_ne!(spec.container_name(), spec.container_name());
    }

    #[test]
    fn labels_describe_the_process() {
        let labels = spec().labels("paas", false);
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_APP], "shop-2");
        assert_eq!(labels[LABEL_RELEASE], "3");
        assert_eq!(labels[LABEL_PROCESS], "web");
        assert_eq!(labels[LABEL_INDEX], "1");
        assert_eq!(labels[LABEL_PORT], "5000");
        assert_eq!(labels[LABEL_NETWORK], "paas");
        assert!(!labels.contains_key(LABEL_ONE_OFF));
        let mut worker = spec();
        worker.port = None;
        let labels = worker.labels("paas-test", true);
        assert!(!labels.contains_key(LABEL_PORT));
        assert_eq!(labels[LABEL_ONE_OFF], "true");
        assert_eq!(labels[LABEL_NETWORK], "paas-test");
    }

    #[test]
    fn env_has_config_vars_and_paas_vars_that_win() {
        let mut spec = spec();
        spec.env.insert("PORT".into(), "80".into());
        spec.env.insert("PAAS_APP".into(), "spoofed".into());
        assert_eq!(
            spec.env(),
            [
                "DATABASE_URL=postgres://secret@db/shop",
                "PAAS_APP=shop-2",
                "PAAS_PROCESS=web.1",
                "PAAS_RELEASE=v3",
                "PORT=5000",
            ]
        );
        spec.port = None;
        spec.env.remove("PORT");
        assert!(!spec.env().iter().any(|e| e.starts_with("PORT=")));
    }

    #[test]
    fn commands_run_through_the_shell_and_simple_ones_are_execed() {
        let mut spec = spec();
        assert_eq!(spec.cmd(), None);
        spec.command = Some("  ".into());
        assert_eq!(spec.cmd(), None, "empty means the image's CMD");
        spec.command = Some("gunicorn app:app --bind 0.0.0.0:$PORT".into());
        assert_eq!(
            spec.cmd().unwrap(),
            ["/bin/sh", "-c", "exec gunicorn app:app --bind 0.0.0.0:$PORT"]
        );
        for kept in [
            "cd web && python app.py",
            "python a.py; python b.py",
            "exec node server.js",
            "FOO=1 python app.py",
            "yes | head",
        ] {
            spec.command = Some(kept.into());
            assert_eq!(spec.cmd().unwrap()[2], kept);
        }
    }

    #[test]
    fn specs_are_checked() {
        assert!(spec().check().is_ok());
        let bad: &[fn(&mut ProcessSpec)] = &[
            |s| s.app = "Shop".into(),
            |s| s.app = "a--b".into(),
            |s| s.app = "-a".into(),
            |s| s.app = String::new(),
            |s| s.process_type = "we b".into(),
            |s| s.process_type = String::new(),
            |s| s.release = -1,
            |s| s.image = " ".into(),
            |s| s.port = Some(0),
            |s| s.memory_mb = Some(0),
            |s| s.command = Some("a\0b".into()),
            |s| drop(s.env.insert("A=B".into(), "x".into())),
            |s| drop(s.env.insert(String::new(), "x".into())),
        ];
        for (i, mutate) in bad.iter().enumerate() {
            let mut spec = spec();
            mutate(&mut spec);
            assert!(spec.check().is_err(), "case {i}: {spec:?}");
        }
        let mut secret = spec();
        secret.env.insert("TOKEN".into(), "hunter2\0".into());
        let message = secret.check().unwrap_err().to_string();
        assert!(message.contains("TOKEN") && !message.contains("hunter2"), "{message}");
    }
}
