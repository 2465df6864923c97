//! Traces: Ironcrest's `tracing` spans (requests, authentication, the gateway, SSH, SFTP,
//! schedulers, S3, health checks) exported as OpenTelemetry spans over OTLP when
//! `telemetry.tracing.enabled` (docs/tracing.md). The log output keeps its own filter: the exporter
//! sees the debug-level spans whether the log shows them or not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ironcrest_api::{RequestIds, TraceContext};
use ironcrest_config::{OtlpProtocol, SamplerKind, TracingConfig};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Span, SpanData, SpanProcessor};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// The provider exporting spans in batches, on a thread of its own. Shut it down when the
/// server stops: that exports what is still queued.
///
/// With `grpc`, call it inside a Tokio runtime (tonic's channel lives there).
pub fn provider(config: &TracingConfig) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(config))
        .with_span_processor(RequestIdAttributes)
        .with_batch_exporter(exporter(config)?)
        .build())
}

/// The layer that turns spans into OpenTelemetry spans, for `provider`'s tracer.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    // Per span, only what a reader of the trace uses: no thread, target or source location
    // attributes, no busy/idle timing (each costs time on every request).
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("ironcrest"))
        .with_threads(false)
        .with_target(false)
        .with_location(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(exported))
}

/// How the API reads and writes a request's trace context: W3C `traceparent` and
/// `tracestate`, when traces are exported.
pub fn trace_context(config: &TracingConfig) -> Option<TraceContext> {
    config
        .enabled
        .then(|| Arc::new(TraceContextPropagator::new()) as TraceContext)
}

/// Ironcrest's own spans, debug ones included, and its warnings and errors (they become
/// span events); nothing of the libraries beneath. Info events are left to the log: the
/// request's own line would repeat what its span already holds, at a cost on every request.
fn exported(metadata: &Metadata<'_>) -> bool {
    let lowest = if metadata.is_span() {
        Level::DEBUG
    } else {
        Level::WARN
    };
    metadata.target().starts_with("ironcrest") && *metadata.level() <= lowest
}

fn sampler(config: &TracingConfig) -> Sampler {
    let own = match config.sampler {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::Ratio => Sampler::TraceIdRatioBased(config.ratio),
    };
    if config.parent_based {
        Sampler::ParentBased(Box::new(own))
    } else {
        own
    }
}

fn exporter(config: &TracingConfig) -> anyhow::Result<SpanExporter> {
    let endpoint = config.endpoint().trim_end_matches('/');
    let headers = config
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_string()));
    let exporter = match config.protocol {
        OtlpProtocol::Http => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_headers(headers.collect::<HashMap<_, _>>())
            .build(),
        OtlpProtocol::Grpc => {
            let mut metadata = HeaderMap::new();
            for (name, value) in headers {
                let value = HeaderValue::from_str(&value)
                    .with_context(|| format!("tracing.headers.{name} is not a header value"))?;
                metadata.insert(HeaderName::from_bytes(name.as_bytes())?, value);
            }
            let mut builder = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_metadata(MetadataMap::from_headers(metadata));
            if endpoint.starts_with("https://") {
                // The system's CAs, as the HTTP exporter uses.
                builder = builder.with_tls_config(ClientTlsConfig::new().with_native_roots());
            }
            builder.build()
        }
    };
    exporter.context("cannot set up the OTLP exporter")
}

/// Puts a request's ids (`request.id`, `correlation.id`) on every span beneath the request's
/// own span: the API leaves them in that span's context, which its descendants inherit. The
/// request's span itself carries them as fields already; it is the one whose parent is
/// remote or absent.
#[derive(Debug)]
struct RequestIdAttributes;

impl SpanProcessor for RequestIdAttributes {
    fn on_start(&self, span: &mut Span, parent: &Context) {
        use opentelemetry::trace::Span as _;
        let below_a_local_span =
            parent.has_active_span() && !parent.span().span_context().is_remote();
        if let (true, Some(ids)) = (below_a_local_span, parent.get::<RequestIds>()) {
            span.set_attribute(KeyValue::new("request.id", ids.request_id.clone()));
            span.set_attribute(KeyValue::new("correlation.id", ids.correlation_id.clone()));
        }
    }

    fn on_end(&self, _: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SamplingDecision, ShouldSample};

    use super::*;

    fn config(yaml: &str) -> TracingConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    /// A request's parent from a `traceparent` with or without the sampled flag.
    fn remote_parent(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from(0x00f067aa0ba902b7),
            flags,
            true,
            TraceState::default(),
        ))
    }

    fn decision(config: &TracingConfig, parent: Option<&Context>) -> SamplingDecision {
        let trace_id = TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736);
        sampler(config)
            .should_sample(parent, trace_id, "request", &SpanKind::Server, &[], &[])
            .decision
    }

    #[test]
    fn the_sampler_is_the_configured_one() {
        use SamplingDecision::{Drop, RecordAndSample};
        let sampled = remote_parent(true);
        let unsampled = remote_parent(false);
        let cases = [
            ("{}", None, RecordAndSample),
            ("{}", Some(&unsampled), Drop),
            ("sampler: always_off", None, Drop),
            ("sampler: always_off", Some(&sampled), RecordAndSample),
            (
                "{sampler: always_off, parent_based: false}",
                Some(&sampled),
                Drop,
            ),
            (
                "{sampler: always_on, parent_based: false}",
                Some(&unsampled),
                RecordAndSample,
            ),
            ("{sampler: ratio, ratio: 0}", None, Drop),
            ("{sampler: ratio, ratio: 1}", None, RecordAndSample),
            (
                "{sampler: ratio, ratio: 0}",
                Some(&sampled),
                RecordAndSample,
            ),
        ];
        for (yaml, parent, expected) in cases {
            assert_eq!(
                decision(&config(yaml), parent),
                expected,
                "{yaml} with parent {parent:?}"
            );
        }
    }

    #[tokio::test]
    async fn both_protocols_build_their_exporter() {
        for yaml in [
            "{}",
            "{endpoint: 'https://collector.example:4318/', headers: {authorization: Bearer x}}",
            "protocol: grpc",
            "{protocol: grpc, endpoint: 'https://collector.example:4317', headers: {x-tenant: hpc}}",
        ] {
            let config = config(yaml);
            assert!(config.problems("tracing").is_empty(), "{yaml}");
            let exporter = exporter(&config);
            assert!(exporter.is_ok(), "{yaml}: {:?}", exporter.err());
        }
    }

    #[tokio::test]
    async fn a_grpc_header_value_that_cannot_be_sent_is_refused() {
        let config = config("{protocol: grpc, headers: {authorization: \"a\\nb\"}}");
        let err = exporter(&config).unwrap_err();
        assert!(
            format!("{err:#}").contains("tracing.headers.authorization"),
            "{err:#}"
        );
    }

    #[test]
    fn ironcrests_spans_below_a_request_carry_its_ids() {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        use tracing_subscriber::layer::SubscriberExt;

        let exported = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(RequestIdAttributes)
            .with_simple_exporter(exported.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", request.id = "r-1");
            let ids = RequestIds {
                request_id: "r-1".into(),
                correlation_id: "c-1".into(),
            };
            request.set_parent(Context::new().with_value(ids)).unwrap();
            request.in_scope(|| {
                tracing::debug_span!("ssh.command").in_scope(|| {
                    tracing::debug_span!("sftp.stat").in_scope(|| {});
                    tracing::trace_span!("too.fine").in_scope(|| {});
                    tracing::info_span!(target: "russh::client", "library").in_scope(|| {});
                });
            });
        });
        let spans = exported.get_finished_spans().unwrap();
        let names: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
        assert_eq!(names, ["sftp.stat", "ssh.command", "request"]);
        let attribute = |span: &SpanData, key: &str| -> Vec<String> {
            span.attributes
                .iter()
                .filter(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
                .collect()
        };
        for span in &spans {
            assert_eq!(attribute(span, "request.id"), ["r-1"], "{}", span.name);
        }
        assert_eq!(attribute(&spans[0], "correlation.id"), ["c-1"]);
        assert_eq!(attribute(&spans[1], "correlation.id"), ["c-1"]);
        // The request's own span has its ids as fields (once), the log's names.
        assert!(attribute(&spans[2], "correlation.id").is_empty());
        assert_eq!(spans[0].parent_span_id, spans[1].span_context.span_id());
        assert_eq!(spans[1].parent_span_id, spans[2].span_context.span_id());
    }
}
