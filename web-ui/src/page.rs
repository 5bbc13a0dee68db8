//! What every page shares: the frame (who is signed in, the CSRF token), rendering, and the
//! pages for errors.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use paas_server::core::Error;

/// The frame of every signed-in page.
pub(crate) struct Layout {
    pub(crate) title: String,
    pub(crate) email: String,
    pub(crate) admin: bool,
    /// The session's CSRF token, for the sign-out form and every other.
    pub(crate) csrf: String,
}

/// A rendered page with `200 OK`.
pub(crate) fn render(page: &impl Template) -> Response {
    render_status(200, page)
}

pub(crate) fn render_status(status: u16, page: &impl Template) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a dashboard page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "this page did not render; the server log says why")
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    layout: Option<Layout>,
    title: String,
    message: String,
}

/// A page that says what went wrong, with the status the API would give.
pub(crate) fn error_page(layout: Option<Layout>, err: &Error) -> Response {
    let status = match err {
        Error::NotFound(_) => 404,
        Error::Forbidden(_) => 403,
        Error::Unauthorized(_) => 401,
        Error::TooManyAttempts { .. } => 429,
        Error::Conflict(_) => 409,
        Error::Invalid { .. } | Error::BuildFailed { .. } => 422,
        Error::BadRequest(_) | Error::TooLarge => 400,
        Error::Unavailable(_) => 503,
        _ => 500,
    };
    let title = if status == 404 { "Not found" } else { "That did not work" };
    let page = MessagePage { layout, title: title.into(), message: err.public_message() };
    render_status(status, &page)
}

/// A plain message page, for what is not an error of the core (a form without its token).
pub(crate) fn message_page(status: u16, message: &str) -> Response {
    let page =
        MessagePage { layout: None, title: "That did not work".into(), message: message.into() };
    render_status(status, &page)
}

/// Percent-encodes `text` for a URL's query or path segment.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// "3 minutes", "2 hours", "5 days": how long ago or how long, roughly.
pub(crate) fn duration(secs: u64) -> String {
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}
