//! The pages the router answers with itself, when no app can.

use bytes::Bytes;
use hyper::StatusCode;

pub(crate) struct Page {
    pub status: StatusCode,
    pub body: Bytes,
}

/// An HTML error page; `detail` may hold user input and is escaped.
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str, request_id: &str) -> Page {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;\
         padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}code{{color:#555}}</style></head>\
         <body><h1>{title}</h1><p>{detail}</p><p><code>{code} · request {request_id}</code></p>\
         </body></html>\n",
        code = status.as_u16(),
        title = escape(title),
        detail = escape(detail),
        request_id = escape(request_id),
    );
    Page { status, body: Bytes::from(body) }
}

pub(crate) fn unknown_host(host: &str, request_id: &str) -> Page {
    error_page(
        StatusCode::NOT_FOUND,
        "No such app",
        &format!(
            "There is no app at {host}. Check the address, or add it as a domain of your app."
        ),
        request_id,
    )
}

pub(crate) fn no_backends(app: &str, process_type: &str, request_id: &str) -> Page {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Application not running",
        &format!(
            "{app} has no {process_type} processes running. Deploy it, or scale it up with \
             `paas ps:scale {process_type}=1 -a {app}`."
        ),
        request_id,
    )
}

pub(crate) fn bad_gateway(app: &str, request_id: &str) -> Page {
    error_page(
        StatusCode::BAD_GATEWAY,
        "Application error",
        &format!("{app} did not answer properly. `paas logs -a {app}` shows what it said."),
        request_id,
    )
}

pub(crate) fn timeout(app: &str, request_id: &str) -> Page {
    error_page(
        StatusCode::GATEWAY_TIMEOUT,
        "Application timed out",
        &format!("{app} took too long to answer."),
        request_id,
    )
}

pub(crate) fn too_large(limit: u64, request_id: &str) -> Page {
    error_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request too large",
        &format!("Request bodies are limited to {limit} bytes."),
        request_id,
    )
}

pub(crate) fn bad_request(detail: &str, request_id: &str) -> Page {
    error_page(StatusCode::BAD_REQUEST, "Bad request", detail, request_id)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_escape_user_input() {
        let page = super::unknown_host("<script>alert(1)</script>", "abc");
        let body = String::from_utf8(page.body.to_vec()).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
    }
}
