//! W3C trace context for events: the traceparent of the span that appended an event is stored
//! in its metadata, and a subscriber handling the event makes that span the parent of its own,
//! so one lead's journey across agents is one connected trace.
//!
//! With no OpenTelemetry layer installed (no endpoint configured) the current span has no valid
//! span context and nothing here allocates.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C `traceparent` of a span context: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
pub fn format_traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Parses a W3C `traceparent` (version 00); `None` when malformed or all-zero ids.
pub fn parse_traceparent(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version != "00"
        || trace_id.len() != 32
        || span_id.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    let is_hex = |text: &str| {
        text.bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    };
    if !(is_hex(trace_id) && is_hex(span_id) && is_hex(flags)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// The traceparent of the current tracing span, when an OpenTelemetry layer gives it a valid
/// span context.
pub fn current_traceparent() -> Option<String> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context
        .is_valid()
        .then(|| format_traceparent(span_context))
}

/// Makes the span whose traceparent was stored the parent of `span` (a no-op for a missing or
/// malformed traceparent, or when no OpenTelemetry layer is installed).
pub fn set_parent_from(span: &tracing::Span, traceparent: Option<&str>) {
    if span.is_none() {
        return;
    }
    if let Some(parent) = traceparent.and_then(parse_traceparent) {
        // An error only says the span was already started without this layer; nothing to do.
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
}

/// Makes `span` (a command's, not yet started) continue the trace of a stream's latest event:
/// when the caller's span is not already in that trace, the event's span becomes `span`'s
/// parent and the caller's span a link, so the caller (a scheduled job, say) still leads to
/// the command. A no-op without a stored traceparent or without an OpenTelemetry layer.
pub fn continue_stream_trace(span: &tracing::Span, latest_traceparent: Option<&str>) {
    if span.is_none() {
        return;
    }
    let Some(latest) = latest_traceparent.and_then(parse_traceparent) else {
        return;
    };
    let caller = tracing::Span::current().context();
    let caller_span = caller.span();
    let caller = caller_span.span_context();
    if caller.is_valid() && caller.trace_id() == latest.trace_id() {
        // Already in the stream's trace (a subscriber handling one of its events).
        return;
    }
    if span
        .set_parent(Context::new().with_remote_span_context(latest))
        .is_ok()
        && caller.is_valid()
    {
        span.add_link(caller.clone());
    }
}

/// The span a subscriber handles one event in: a child of the span that appended the event
/// (its stored traceparent), linked to the subscription batch that is current.
pub fn handle_event_span(
    event: &crate::envelope::RecordedEvent,
    traceparent: &str,
) -> tracing::Span {
    let batch = tracing::Span::current();
    let span = tracing::info_span!(
        "handle_event",
        event_type = %event.event_type,
        stream_id = %event.stream_id,
        global_position = event.global_position
    );
    set_parent_from(&span, Some(traceparent));
    let batch_context = batch.context();
    let batch_span = batch_context.span();
    if batch_span.span_context().is_valid() {
        span.add_link(batch_span.span_context().clone());
    }
    span
}

/// Stamps the current span's traceparent on each event about to be appended, when there is a
/// valid current span context; otherwise each event keeps the one it was given (for example
/// copied from its cause).
pub fn stamp_traceparent(events: &mut [crate::envelope::NewEvent]) {
    if let Some(traceparent) = current_traceparent() {
        for event in events {
            event.metadata.traceparent = Some(traceparent.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_and_bad_ones_are_refused() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = parse_traceparent(text).expect("valid");
        assert_eq!(format_traceparent(&context), text);
        for (bad, why) in [
            ("", "empty"),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "zero trace",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "zero span",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                "short trace",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "upper case",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "extra part",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                "not hex",
            ),
        ] {
            assert!(parse_traceparent(bad).is_none(), "{why}: {bad}");
        }
    }

    #[test]
    fn without_a_layer_there_is_no_traceparent() {
        let span = tracing::info_span!("no_layer");
        let _entered = span.enter();
        assert_eq!(current_traceparent(), None);
    }
}
