//! `GET /api/v1/feed`: the caller's tenant's audit events as server-sent events.
//!
//! Each event's `id` is the tenant's audit sequence number, so `Last-Event-ID` resumes from the
//! durable log with nothing lost or repeated. Without it the stream starts at the tenant's head
//! (`?after=N` starts after `N`, `?after=0` replays everything). A comment line every 15 s keeps
//! proxies from closing an idle stream. `?target=`, `?principal=` and `?type=` (record kind)
//! filter.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::McpState;
use crate::auth::Principal;

/// Heartbeat interval.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedQuery {
    after: Option<i64>,
    target: Option<String>,
    principal: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "bad_request", "message": message })),
    )
        .into_response()
}

pub(crate) async fn stream(
    State(mcp): State<Arc<McpState>>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad_request(format!("bad feed query: {err}")),
    };
    let resume = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => match text.trim().parse::<i64>() {
            Ok(seq) if seq >= 0 => Some(seq),
            _ => return bad_request(format!("Last-Event-ID `{text}` is not a sequence number")),
        },
        Some(Err(_)) => return bad_request("Last-Event-ID is not ASCII".into()),
    };
    if let Some(after) = query.after
        && after < 0
    {
        return bad_request(format!("after `{after}` is not a sequence number"));
    }
    let tenant = principal.tenant.clone();
    let after = match resume.or(query.after) {
        Some(seq) => seq,
        None => match mcp.context.audit().store().heads().await {
            Ok(heads) => heads
                .iter()
                .find(|h| h.tenant == tenant)
                .map_or(0, |h| h.seq),
            Err(err) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({ "error": "audit_unavailable", "message": err.to_string() })),
                )
                    .into_response();
            }
        },
    };
    // The tenant comes from the verified token, never from the request.
    let subscription = mcp.context.audit().subscribe(&tenant, after);
    let events = futures_util::stream::unfold(
        (subscription, query),
        |(mut subscription, query)| async move {
            loop {
                let event = match subscription.next().await {
                    Ok(event) => event,
                    Err(err) => {
                        tracing::warn!(%err, "feed subscription ended");
                        return None;
                    }
                };
                let keep = query
                    .target
                    .as_ref()
                    .is_none_or(|t| event.record.target.as_ref() == Some(t))
                    && query
                        .principal
                        .as_ref()
                        .is_none_or(|p| &event.record.principal == p)
                    && query
                        .kind
                        .as_ref()
                        .is_none_or(|k| event.record.kind.as_str() == k);
                if !keep {
                    continue;
                }
                let data = serde_json::to_string(&*event).unwrap_or_default();
                let sse = Event::default()
                    .id(event.seq.to_string())
                    .event(event.record.kind.as_str())
                    .data(data);
                return Some((Ok::<Event, Infallible>(sse), (subscription, query)));
            }
        },
    );
    // Open streams end at shutdown, so the server's graceful drain can finish.
    let events =
        futures_util::StreamExt::take_until(events, mcp.shutdown.clone().cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response()
}
