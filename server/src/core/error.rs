//! One error type for every operation of the core, with a stable code for each kind. How it
//! looks on the wire is the front ends' business (`http::error`).

use paas_runner::RunError;
use paas_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but asks for something invalid (bad name, bad value).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    /// The request body is over [`crate::wire::MAX_BODY_BYTES`].
    #[error("the request body is over the limit of {} MiB", crate::wire::MAX_BODY_BYTES >> 20)]
    TooLarge,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but this needs more (an admin, the app's owner). Never used for an app the
    /// caller cannot see: that is [`Error::NotFound`], so names do not leak.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed sign-ins: from one address, or for one account (then locked).
    #[error("{message}")]
    TooManyAttempts { message: String, retry_after_secs: u64 },
    #[error("this route does not take that HTTP method")]
    MethodNotAllowed,
    /// A build ended in failure; its log is kept with the build.
    #[error("build {build_id} failed: {message}")]
    BuildFailed { build_id: i64, code: &'static str, message: String },
    /// Something paas needs is not there (Docker, most often).
    #[error("{0}")]
    Unavailable(String),
    /// A failure of paas's own machinery (a git process, a file): logged, not detailed to
    /// clients.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Error {
        Error::Invalid { code, message: message.into() }
    }

    /// `what` needs Docker, which paas could not reach when it started.
    pub fn docker_unavailable(what: &str) -> Error {
        Error::Unavailable(format!(
            "{what} need Docker, and the Docker engine was not reachable when paas started \
             (check DOCKER_HOST and that dockerd runs, then restart paas)"
        ))
    }

    /// The stable, machine-readable code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::BadRequest(_) => "bad_request",
            Error::TooLarge => "payload_too_large",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::TooManyAttempts { .. } => "too_many_attempts",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::BuildFailed { code, .. } => code,
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) | Error::Store(_) => "internal",
        }
    }
}

/// The runner's errors: the app's own (an image without the command, a process that never
/// answers) are the caller's to fix; the rest mean Docker is not there for paas.
impl From<RunError> for Error {
    fn from(err: RunError) -> Error {
        if err.is_app_error() {
            Error::invalid(err.code(), err.to_string())
        } else {
            Error::Unavailable(err.to_string())
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Error {
        match err {
            StoreError::NotFound(what) => Error::NotFound(what),
            StoreError::Conflict(message) => Error::Conflict(message),
            other => Error::Store(other),
        }
    }
}

impl Error {
    /// What a client may read: the message, or for paas's own failures (paths, a git
    /// process's stderr, SQL) a pointer to the server log, where the details go.
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(err) => {
                tracing::error!(error = %err, "request failed");
                INTERNAL.to_string()
            }
            Error::Internal(err) => {
                tracing::error!(error = %err, "request failed");
                INTERNAL.to_string()
            }
            other => other.to_string(),
        }
    }
}

const INTERNAL: &str = "internal error; the server log has the details";

pub type Result<T, E = Error> = std::result::Result<T, E>;
