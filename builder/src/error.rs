//! Why a build did not produce an image, in words the app's developer can act on.

use std::path::PathBuf;
use std::time::Duration;

/// The command that builds the offline base images; named in every missing-image error.
pub(crate) const STACK_HINT: &str = "run `bash deploy/stack/build.sh` to build the paas/* stack images offline; \
     PAAS_BASE_IMAGES=auto (the default) then uses them";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no app detected in {dir}: add a Dockerfile, or the file that marks your language \
         (requirements.txt or pyproject.toml, package.json, go.mod, Gemfile, index.html), or a \
         Procfile that says how to start the app (`web: ./start.sh`)"
    )]
    NoAppDetected { dir: PathBuf },

    #[error("Procfile line {line}: {message}")]
    Procfile { line: usize, message: String },

    #[error(
        "no process types: this {kind} app has no Procfile and paas cannot tell how to start it; \
         add a Procfile next to your code with a line like `web: python app.py`"
    )]
    NoProcessTypes { kind: String },

    /// A file the detection reads (package.json, paas.toml, …) is malformed.
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },

    /// A file paas would read is a symlink out of the app, a device or a pipe: refused
    /// unread, and the message says nothing of what it points to.
    #[error("{file} {reason}")]
    FileRefused { file: String, reason: String },

    /// A Python app asks for something paas (like Heroku) will not build: a Python version
    /// past its end of life, two package managers, a Pipfile without its lock, …
    #[error("{message}")]
    Python { code: &'static str, message: String },

    /// The request itself is unusable: bad app name, base directory outside the source, …
    #[error("{0}")]
    InvalidRequest(String),

    #[error("base image {image} is not on this Docker host and could not be pulled: {hint}")]
    BaseImageMissing { image: String, hint: String },

    #[error("the Dockerfile is invalid: {message}")]
    Dockerfile { message: String },

    #[error("build step failed with exit code {exit_code}: {step}{}", on_next_line(hint))]
    StepFailed {
        step: String,
        exit_code: i64,
        /// The last lines of the build log, for a short error report.
        log_tail: String,
        /// What to do about it, when the output says (an untrusted certificate, Django's
        /// collectstatic); also the last line of the message.
        hint: Option<String>,
    },

    #[error("the build failed: {message}{}", on_next_line(hint))]
    Failed { message: String, log_tail: String, hint: Option<String> },

    #[error("the build took longer than its limit of {}s and was stopped", limit.as_secs())]
    TimedOut { limit: Duration, log_tail: String },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot push the image to the registry {registry}: {message}")]
    Push { registry: String, message: String },

    #[error("Docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

impl BuildError {
    /// A stable, machine-readable code for the API's error shape.
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::NoAppDetected { .. } => "no_app_detected",
            BuildError::Procfile { .. } => "bad_procfile",
            BuildError::NoProcessTypes { .. } => "no_process_types",
            BuildError::Manifest { .. } => "bad_manifest",
            BuildError::FileRefused { .. } => "file_refused",
            BuildError::Python { code, .. } => code,
            BuildError::InvalidRequest(_) => "invalid_build_request",
            BuildError::BaseImageMissing { .. } => "base_image_missing",
            BuildError::Dockerfile { .. } => "bad_dockerfile",
            BuildError::StepFailed { .. } => "build_step_failed",
            BuildError::Failed { .. } => "build_failed",
            BuildError::TimedOut { .. } => "build_timed_out",
            BuildError::Io { .. } => "io",
            BuildError::Push { .. } => "registry_push_failed",
            BuildError::Docker(_) => "docker",
        }
    }

    /// True when the app (its files or its Dockerfile) is at fault rather than the platform.
    pub fn is_app_error(&self) -> bool {
        !matches!(
            self,
            BuildError::Io { .. }
                | BuildError::Docker(_)
                | BuildError::BaseImageMissing { .. }
                | BuildError::Push { .. }
        )
    }

    /// What the developer or operator can do about the failure, when paas can tell.
    pub fn hint(&self) -> Option<&str> {
        match self {
            BuildError::StepFailed { hint, .. } | BuildError::Failed { hint, .. } => {
                hint.as_deref()
            }
            _ => None,
        }
    }

    /// The same error with `hint` added, where the error can carry one.
    pub(crate) fn with_hint(mut self, new: Option<String>) -> BuildError {
        if let BuildError::StepFailed { hint, .. } | BuildError::Failed { hint, .. } = &mut self {
            *hint = new.or(hint.take());
        }
        self
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> BuildError {
        BuildError::Io { path: path.into(), source }
    }

    pub(crate) fn manifest(file: impl Into<String>, message: impl std::fmt::Display) -> BuildError {
        BuildError::Manifest { file: file.into(), message: message.to_string() }
    }

    pub(crate) fn refused(file: impl Into<String>, reason: impl Into<String>) -> BuildError {
        BuildError::FileRefused { file: file.into(), reason: reason.into() }
    }

    /// A failure with no hint (yet).
    pub(crate) fn failed(message: impl Into<String>, log_tail: impl Into<String>) -> BuildError {
        BuildError::Failed { message: message.into(), log_tail: log_tail.into(), hint: None }
    }
}

/// The hint on a line of its own, so the log's last line is what to do.
fn on_next_line(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\n{h}")).unwrap_or_default()
}
