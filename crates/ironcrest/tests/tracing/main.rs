//! Traces of a real server in front of the dev environment's cluster, exported over
//! OTLP/HTTP to a stand-in collector (`otlp_receiver`). A test binary of its own: the
//! exporter sits in the process's global subscriber, installed once for all these tests.

// Shared with the integration tests, of which this binary uses a part.
#[allow(dead_code)]
#[path = "../integration/harness.rs"]
mod harness;
mod otlp_receiver;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use harness::{SYSTEM, TestServer, user_token};
use ironcrest_config::{LoggerConfig, TracingConfig};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_receiver::{OtlpReceiver, ReceivedSpan};

/// The caller's trace and span, as its `traceparent` names them.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

struct Exporting {
    receiver: OtlpReceiver,
    provider: SdkTracerProvider,
}

/// The process's exporter, sending to the receiver, as `serve` installs it.
fn exporting() -> &'static Exporting {
    static EXPORTING: OnceLock<Exporting> = OnceLock::new();
    EXPORTING.get_or_init(|| {
        let receiver = OtlpReceiver::start();
        let logger = LoggerConfig {
            level: "warn".into(),
            ..LoggerConfig::default()
        };
        let provider = ironcrest::init_logging(&logger, &tracing_config(&receiver.url))
            .unwrap()
            .expect("tracing is enabled");
        Exporting { receiver, provider }
    })
}

fn tracing_config(endpoint: &str) -> TracingConfig {
    TracingConfig {
        enabled: true,
        endpoint: Some(endpoint.into()),
        ..TracingConfig::default()
    }
}

async fn traced_server() -> TestServer {
    let tracing = tracing_config(&exporting().receiver.url);
    TestServer::start_with(|config| config.telemetry.tracing = tracing).await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The spans received of the trace `trace_id` (hex) once `done` holds of them: the
/// exporter is flushed and the receiver asked again, a bounded number of times.
async fn received(trace_id: &str, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
    let exporting = exporting();
    let mut spans = Vec::new();
    for _ in 0..100 {
        let provider = exporting.provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap()
            .expect("the export is accepted");
        spans = exporting
            .receiver
            .spans(|span| hex(&span.trace_id) == trace_id);
        if done(&spans) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
    panic!("trace {trace_id} never arrived whole; received {names:?}");
}

/// `traceparent`'s trace id, span id and flags, checked for W3C's shape.
fn traceparent(response: &reqwest::Response) -> (String, String, String) {
    let value = response.headers()["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{value}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_below_the_callers_span() {
    let server = traced_server().await;
    let token = user_token().await;
    let response = server
        .http
        .get(format!(
            "{}/filesystem/{SYSTEM}/ops/ls?path=/home/fireuser",
            server.url
        ))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .header("tracestate", "hpc=eiger")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (trace_id, request_span, flags) = traceparent(&response);
    assert_eq!(trace_id, CALLER_TRACE);
    assert_ne!(request_span, CALLER_SPAN);
    assert_eq!(flags, "01");
    assert_eq!(response.headers()["tracestate"], "hpc=eiger");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    let named = |spans: &[ReceivedSpan], name: &str| spans.iter().any(|s| s.span.name == name);
    let is_remote_work =
        |s: &ReceivedSpan| s.span.name == "ssh.command" || s.span.name.starts_with("sftp.");
    let spans = received(CALLER_TRACE, |spans| {
        spans.iter().any(|s| hex(&s.span.span_id) == request_span)
            && ["authenticate", "gateway.admit", "ssh.pool.acquire"]
                .iter()
                .all(|name| named(spans, name))
            && spans.iter().any(is_remote_work)
    })
    .await;

    let request = spans
        .iter()
        .find(|s| hex(&s.span.span_id) == request_span)
        .unwrap();
    assert_eq!(request.span.name, "GET /filesystem/{system_name}/ops/ls");
    assert_eq!(request.span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&request.span.parent_span_id), CALLER_SPAN);
    assert_eq!(request.service, "ironcrest");
    let attribute = |span: &ReceivedSpan, key| span.attribute(key);
    assert_eq!(attribute(request, "request.id"), Some(request_id.clone()));
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/filesystem/{system_name}/ops/ls")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(request, "ironcrest.system").as_deref(),
        Some(SYSTEM)
    );
    assert_eq!(
        attribute(request, "route.family").as_deref(),
        Some("filesystem-read")
    );

    // Every other span descends from the request's and carries its ids.
    let parents: HashMap<String, String> = spans
        .iter()
        .map(|s| (hex(&s.span.span_id), hex(&s.span.parent_span_id)))
        .collect();
    for span in spans
        .iter()
        .filter(|s| hex(&s.span.span_id) != request_span)
    {
        let mut ancestor = hex(&span.span.parent_span_id);
        for _ in 0..parents.len() {
            if ancestor == request_span {
                break;
            }
            ancestor = parents.get(&ancestor).cloned().unwrap_or_default();
        }
        assert_eq!(
            ancestor, request_span,
            "{} is not below the request",
            span.span.name
        );
        assert_eq!(
            attribute(span, "request.id"),
            Some(request_id.clone()),
            "{}",
            span.span.name
        );
        assert!(
            attribute(span, "correlation.id").is_some(),
            "{}",
            span.span.name
        );
    }
    for name in ["authenticate", "gateway.admit"] {
        let span = spans.iter().find(|s| s.span.name == name).unwrap();
        assert_eq!(hex(&span.span.parent_span_id), request_span, "{name}");
    }
    let authenticate = spans
        .iter()
        .find(|s| s.span.name == "authenticate")
        .unwrap();
    assert_eq!(
        attribute(authenticate, "auth.method").as_deref(),
        Some("bearer")
    );
    let command = spans.iter().find(|s| is_remote_work(s)).unwrap();
    assert_eq!(attribute(command, "ssh.user").as_deref(), Some("fireuser"));

    // Neither the token nor the user's path is in any attribute.
    for span in &spans {
        for kv in &span.span.attributes {
            let value = format!("{:?}", kv.value);
            assert!(!value.contains(&token), "{}: {}", span.span.name, kv.key);
            assert!(
                !value.contains("/home/fireuser"),
                "{}: {}",
                span.span.name,
                kv.key
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_starts_a_trace_of_its_own() {
    let server = traced_server().await;
    let token = user_token().await;
    for malformed in [
        "00-xyz-bad-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let response = server
            .http
            .get(format!("{}/status/systems", server.url))
            .bearer_auth(&token)
            .header("traceparent", malformed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{malformed}");
        let (trace_id, request_span, _) = traceparent(&response);
        assert_ne!(trace_id, "0".repeat(32));
        let spans = received(&trace_id, |spans| {
            spans.iter().any(|s| hex(&s.span.span_id) == request_span)
        })
        .await;
        let request = spans
            .iter()
            .find(|s| hex(&s.span.span_id) == request_span)
            .unwrap();
        assert_eq!(request.span.name, "GET /status/systems");
        assert!(request.span.parent_span_id.is_empty(), "{malformed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tracing_off_the_callers_trace_context_is_left_alone() {
    let exporting = exporting();
    // The process exports (another server's configuration turned it on), this server not.
    let server = TestServer::start().await;
    let token = user_token().await;
    let response = server
        .http
        .get(format!("{}/status/systems", server.url))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("traceparent").is_none());
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    // Its request span still reaches the process's exporter: in a trace of its own.
    let mut request = Vec::new();
    for _ in 0..100 {
        let provider = exporting.provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap()
            .expect("the export is accepted");
        request = exporting.receiver.spans(|span| {
            span.name == "request"
                && span.attributes.iter().any(|kv| {
                    kv.key == "request.id" && format!("{:?}", kv.value).contains(&request_id)
                })
        });
        if !request.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let [request] = request.as_slice() else {
        panic!("the request's span never arrived: {request:?}");
    };
    assert_ne!(hex(&request.span.trace_id), CALLER_TRACE);
    assert!(request.span.parent_span_id.is_empty());
}
