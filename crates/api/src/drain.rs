//! Keep-alive safety for responses given before the request body was read (a 401 from the
//! token check, a 400 from validation, a 413): the rest of the body is read and dropped,
//! up to a bound, before the response goes out. Without it hyper closes a connection whose
//! body is still arriving, the kernel answers the client's next bytes with a reset, and a
//! pooled client (httpx) reports "Server disconnected without sending a response".

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tokio::sync::Mutex;

/// How much of an unread body is read and dropped; past it the connection is closed.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;
/// How long the rest of a body may take to arrive before the connection is closed instead.
const DRAIN_TIME: Duration = Duration::from_secs(2);

pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    if !has_body(&request) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Mutex::new(body));
    let handler_side = shared.clone();
    let stream = futures::stream::unfold(handler_side, |body| async move {
        let frame = body.lock().await.frame().await;
        match frame {
            None => None,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Some((Ok::<_, axum::Error>(data), body)),
                // Trailers end the data a handler reads.
                Err(_) => None,
            },
            Some(Err(error)) => Some((Err(error), body)),
        }
    });
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(stream)))
        .await;
    let mut body = shared.lock().await;
    if !body.is_end_stream() && !drain(&mut body).await {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether the request says it carries a body.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length != "0")
}

/// Reads the rest of `body` within the bounds; `false` if it did not end within them.
async fn drain(body: &mut Body) -> bool {
    let mut read = 0u64;
    let finished = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
        }
        true
    })
    .await;
    finished.unwrap_or(false)
}
