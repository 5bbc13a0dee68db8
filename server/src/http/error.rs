//! The core's errors on the wire: an HTTP status and the JSON shape
//! `{"error": {"code": "...", "message": "..."}}`, also for axum's own rejections.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::core::Error;

impl Error {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::BuildFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) | Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
        if let Error::TooManyAttempts { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large() {
        use axum::extract::FromRequest;
        let body = vec![b' '; crate::wire::MAX_BODY_BYTES + 1];
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
