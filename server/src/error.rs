//! One error type for every operation, and its JSON shape on the wire:
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use paas_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but asks for something invalid (bad name, bad value).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    /// The request body is over [`crate::api::MAX_BODY_BYTES`].
    #[error("the request body is over the limit of {} MiB", crate::api::MAX_BODY_BYTES >> 20)]
    TooLarge,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
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
            Error::MethodNotAllowed => "method_not_allowed",
            Error::BuildFailed { code, .. } => code,
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) | Error::Store(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::BuildFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) | Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Error {
        match rejection {
            JsonRejection::JsonDataError(e) => Error::invalid("invalid_body", e.body_text()),
            // Axum says "length limit exceeded" with a 413; the message says which limit.
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge,
            other => Error::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Error {
        Error::invalid("invalid_query", rejection.body_text())
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let message = self.public_message();
        let body = Json(serde_json::json!({
            "error": { "code": self.code(), "message": message }
        }));
        let mut response = (self.status(), body).into_response();
        if matches!(self, Error::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"paas\""),
            );
        }
        response
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large() {
        use axum::extract::FromRequest;
        let body = vec![b' '; crate::api::MAX_BODY_BYTES + 1];
        let request = axum::http::Request::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let rejection = Json::<serde_json::Value>::from_request(request, &()).await.unwrap_err();
        let error = Error::from(rejection);
        assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error.code(), "payload_too_large");
        assert_eq!(error.to_string(), "the request body is over the limit of 2 MiB");
    }
}
