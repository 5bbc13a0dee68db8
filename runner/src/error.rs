//! Why a process did not start, did not become healthy or could not be stopped, in words the
//! app's developer (or the operator) can act on.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec itself is unusable: bad app name, env var name, …
    #[error("{0}")]
    InvalidSpec(String),

    #[error("image {image} is not on this Docker host (was the build pruned?)")]
    ImageMissing { image: String },

    #[error("container {container} does not exist")]
    NotFound { container: String },

    /// The container stopped while it was expected to run (during a health check).
    #[error("{process} exited{} before it became healthy", exit_suffix(*exit_code, *oom_killed))]
    Exited {
        process: String,
        exit_code: Option<i64>,
        oom_killed: bool,
        /// The container's last log lines, for the deploy log.
        log_tail: String,
    },

    #[error("{process} did not become healthy: {reason}")]
    Unhealthy { process: String, reason: String, log_tail: String },

    #[error("{process} ran longer than its limit of {}s and was stopped", limit.as_secs())]
    TimedOut { process: String, limit: Duration },

    /// The paas network exists under a driver that cannot carry app containers.
    #[error("Docker network {name}: {message}")]
    Network { name: String, message: String },

    /// The Swarm scheduler cannot work on this engine.
    #[error("Docker Swarm: {0}")]
    Swarm(String),

    #[error("Docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

fn exit_suffix(exit_code: Option<i64>, oom_killed: bool) -> String {
    match (exit_code, oom_killed) {
        (_, true) => " (killed: out of memory)".to_string(),
        (Some(code), false) => format!(" with code {code}"),
        (None, false) => String::new(),
    }
}

impl RunError {
    /// A stable, machine-readable code for the API's error shape.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::InvalidSpec(_) => "invalid_process_spec",
            RunError::ImageMissing { .. } => "image_missing",
            RunError::NotFound { .. } => "process_not_found",
            RunError::Exited { .. } => "process_exited",
            RunError::Unhealthy { .. } => "process_unhealthy",
            RunError::TimedOut { .. } => "process_timed_out",
            RunError::Network { .. } => "docker_network",
            RunError::Swarm(_) => "docker_swarm",
            RunError::Docker(_) => "docker",
        }
    }

    /// True when the app (its code, its config) is at fault rather than the platform.
    pub fn is_app_error(&self) -> bool {
        matches!(
            self,
            RunError::InvalidSpec(_)
                | RunError::Exited { .. }
                | RunError::Unhealthy { .. }
                | RunError::TimedOut { .. }
        )
    }

    /// The container's last log lines, when the error has them.
    pub fn log_tail(&self) -> Option<&str> {
        match self {
            RunError::Exited { log_tail, .. } | RunError::Unhealthy { log_tail, .. } => {
                Some(log_tail)
            }
            _ => None,
        }
    }
}

/// True when Docker answered 404 (no such container, image or network).
pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    status(error) == Some(404)
}

pub(crate) fn status(error: &bollard::errors::Error) -> Option<u16> {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened() {
        let exited = RunError::Exited {
            process: "web.1".into(),
            exit_code: Some(3),
            oom_killed: false,
            log_tail: "boom".into(),
        };
        assert_eq!(exited.to_string(), "web.1 exited with code 3 before it became healthy");
        assert_eq!(exited.code(), "process_exited");
        assert_eq!(exited.log_tail(), Some("boom"));
        assert!(exited.is_app_error());
        let oom = RunError::Exited {
            process: "web.1".into(),
            exit_code: Some(137),
            oom_killed: true,
            log_tail: String::new(),
        };
        assert!(oom.to_string().contains("out of memory"), "{oom}");
        let missing = RunError::ImageMissing { image: "paas/app-x:b1".into() };
        assert!(!missing.is_app_error() && missing.log_tail().is_none());
    }
}
