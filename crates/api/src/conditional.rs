//! Conditional GETs (RFC 9110 §13): the read routes that clients poll — job lists, job
//! info and metadata, `ops/ls`, `ops/stat` and `status/*` — answer with a strong `ETag`,
//! a hash of their body, and answer a request whose `If-None-Match` names it with
//! `304 Not Modified` and no body.
//!
//! The tag is taken from the answer the handler built, so it is exactly as fresh as that
//! answer: where the handler serves a cached answer (the jobs cache, the userinfo cache,
//! the health results), a matching poll costs no remote command; elsewhere the handler
//! still asks the cluster and the 304 saves only the body's transfer.

use axum::body::Body;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use headers::{ETag, HeaderMapExt, IfNoneMatch};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Answers are the caller's own: no shared cache may keep them, and a client revalidates
/// before reusing one.
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");

/// Bytes of the body's SHA-256 in a tag: 128 bits, collisions are out of reach.
const TAG_BYTES: usize = 16;

/// `axum::routing::get(handler)`, answered conditionally.
pub fn get<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(handler).layer(from_fn(answer))
}

/// Tags a `200` answer to a GET (or HEAD) and turns it into a `304` when the request's
/// `If-None-Match` names the tag (weak comparison, `*` matches any). Other answers pass
/// untouched. A malformed `If-None-Match` is ignored, as if absent: the client gets the
/// full answer, which is what it would get without the condition.
async fn answer(request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let condition = request.headers().typed_get::<IfNoneMatch>();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // These answers are JSON serialised in one buffer: collecting it copies nothing.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "the answer's body could not be read");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            let message = String::new();
            return ApiError::Http { status, message }.into_response();
        }
    };
    let tag = entity_tag(&body);
    parts.headers.typed_insert(tag.clone());
    parts.headers.insert(header::CACHE_CONTROL, CACHE_CONTROL);
    if condition.is_some_and(|condition| !condition.precondition_passes(&tag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        // A 304 carries the validators and caching headers of the 200, not its content's.
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(body))
}

/// The strong tag of a body: `"` + the first 128 bits of its SHA-256 in base64url + `"`.
pub fn entity_tag(body: &[u8]) -> ETag {
    let digest = Sha256::digest(body);
    let text = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..TAG_BYTES]));
    text.parse().expect("base64url in quotes is an entity tag")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_strong_quoted_and_depends_only_on_the_body() {
        let tag = entity_tag(b"{\"jobs\":[]}");
        assert_eq!(tag, entity_tag(b"{\"jobs\":[]}"));
        assert_ne!(tag, entity_tag(b"{\"jobs\":[ ]}"));
        let mut headers = axum::http::HeaderMap::new();
        headers.typed_insert(tag);
        let text = headers[header::ETAG].to_str().unwrap();
        assert!(text.starts_with('"') && text.ends_with('"'), "{text}");
        assert_eq!(text.len(), 2 + 22, "{text}");
    }
}
