//! The pages that update live, over server-sent events: a deploy's log (each line's number
//! is its event id, so a viewer that reconnects, or comes back to the page, goes on from
//! where it was rather than from the start) and the app's own logs.
//!
//! Lines go out as JSON strings: a log line may hold a `\r`, which the event-stream format
//! would take for a line break.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use paas_server::core::{LogQuery, Paas};
use serde::Deserialize;

use crate::page;
use crate::session::SignedIn;

fn sse(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn line_event(line: &str) -> Event {
    Event::default().json_data(line).unwrap_or_else(|_| Event::default().data("?"))
}

#[derive(Deserialize)]
pub(crate) struct From {
    /// The first line wanted, when the page has shown the ones before.
    from: Option<u64>,
}

/// `GET /apps/{app}/deploy/stream`: the app's live deploy log from line `Last-Event-ID` (or
/// `?from=`), then `event: done` with how it ended.
pub(crate) async fn deploy_log(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(query): Query<From>,
    headers: HeaderMap,
) -> Response {
    let app = match paas.app_for(&signed_in.actor, &name).await {
        Ok(app) => app,
        Err(err) => return page::error_page(None, &err),
    };
    let Some(live) = paas.live_deploy(&app) else {
        let done = Event::default().event("done").data("no deploy is running");
        return sse(futures_util::stream::iter([done]));
    };
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let from = resume.or(query.from).unwrap_or(0);
    let lines = futures_util::stream::unfold(live.log.subscribe_from(from), |mut sub| async move {
        let line = sub.next().await?;
        let event = line_event(&line).id(sub.position().to_string());
        Some((event, sub))
    });
    let done = futures_util::stream::once(async move {
        let outcome = match live.outcome() {
            Some(Ok(version)) => format!("Released v{version}"),
            Some(Err(message)) => format!("Failed: {message}"),
            None => "ended".to_string(),
        };
        Event::default().event("done").data(outcome)
    });
    sse(lines.chain(done))
}

#[derive(Deserialize)]
pub(crate) struct Filter {
    ps: Option<String>,
}

/// `GET /apps/{app}/logs/stream?ps=web`: the app's recent output, then live lines.
pub(crate) async fn app_logs(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let app = match paas.app_for(&signed_in.actor, &name).await {
        Ok(app) => app,
        Err(err) => return page::error_page(None, &err),
    };
    let ps = filter.ps.filter(|p| !p.is_empty());
    let query = LogQuery { tail: true, ps, num: Some(200) };
    match paas.logs(&app, &query).await {
        Ok(lines) => sse(lines.map(|line| line_event(line.trim_end_matches('\n')))),
        Err(err) => page::error_page(None, &err),
    }
}
