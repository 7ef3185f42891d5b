//! Logs and traces for both binaries.
//!
//! Logs are text or JSON lines, filtered by `RUST_LOG` (default `info`, with the noisy SQL
//! statement logs turned down).
//!
//! Traces are exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads the other standard
//! `OTEL_*` variables itself (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` or `http/json`,
//! headers, timeout, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_SERVICE_NAME`...). A trace follows one
//! piece of work across processes: the API's HTTP request span, then the worker's `run` or
//! `chat` span (its parent carried in the job as a W3C `traceparent`), then one `node` span per
//! node execution. Without the variable nothing changes: no job carries a `traceparent`, and
//! the node spans are disabled at their call site (their target is off for the log layer), so
//! they cost a relaxed atomic load each.

use std::{collections::HashMap, sync::OnceLock};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, filter::Targets, fmt, prelude::*};

use crate::config::LogFormat;

/// The target of spans that exist only to be exported (one per node execution): off in the
/// logs, on for the exporter.
pub const TRACE_TARGET: &str = "llmops::trace";

/// The spans the exporter sends: the API's (its request span and the handlers' spans inside
/// it, so the handler that queues a job is in the trace), the worker's job spans and
/// [`TRACE_TARGET`].
const EXPORTED: [&str; 3] = [TRACE_TARGET, "llmops_api", "llmops_worker::jobs"];

const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,apalis=warn,apalis_core=warn";

/// Whether traces are exported (set once, by [`init`]).
static EXPORTING: OnceLock<bool> = OnceLock::new();

/// Flushes and stops the trace exporter when dropped (at the end of `main`).
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace exporter shutdown: {error}");
        }
    }
}

/// Installs the log layer and, when an OTLP endpoint is configured, the trace exporter.
/// `service` names the process in traces unless `OTEL_SERVICE_NAME` says otherwise.
pub fn init(format: LogFormat, service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
        .add_directive(
            format!("{TRACE_TARGET}=off")
                .parse()
                .expect("a valid directive"),
        );
    let logs = match format {
        LogFormat::Text => fmt::layer().with_filter(filter).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
    };
    let provider = exporter_configured()
        .then(|| tracer_provider(service))
        .flatten();
    let traces = provider.as_ref().map(|provider| {
        let targets = EXPORTED.iter().fold(Targets::new(), |t, target| {
            t.with_target(*target, tracing::Level::INFO)
        });
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(targets)
    });
    // A second init (tests building several apps in one process) keeps the first.
    if tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok()
    {
        let _ = EXPORTING.set(provider.is_some());
    }
    Telemetry { provider }
}

/// The variables whose presence turns the trace exporter on.
pub const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

fn exporter_configured() -> bool {
    ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

fn tracer_provider(service: &'static str) -> Option<SdkTracerProvider> {
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            // Tracing is an aid: a bad exporter setting is reported, the process still serves.
            eprintln!("traces are not exported: {error}");
            return None;
        }
    };
    let resource = match std::env::var("OTEL_SERVICE_NAME") {
        Ok(_) => Resource::builder().build(),
        Err(_) => Resource::builder().with_service_name(service).build(),
    };
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

fn exporting() -> bool {
    EXPORTING.get().copied().unwrap_or(false)
}

/// The current span's context as a W3C `traceparent`, to carry in a job; `None` when traces
/// are not exported (the job then serializes exactly as before).
pub fn traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` (not yet entered) a child of the span a job's `traceparent` names.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| exporting()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if let Err(error) = span.set_parent(parent) {
        tracing::debug!(%error, "trace parent not set");
    }
}
