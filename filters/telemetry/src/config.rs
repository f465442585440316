//! The filter's configuration (the `config:` of its entry in Weft's config), read with
//! `weft_sdk::config` and then checked for what serde cannot say: the sampling rate's
//! range, the metric prefix's characters, response header names.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole configuration. Every field has a default, so `{}` (or no config) turns on
/// metrics, the access log, trace context and request ids.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Counters and the latency histogram.
    pub metrics: MetricsConfig,
    /// The JSON access-log line.
    pub access_log: AccessLogConfig,
    /// W3C trace context (`traceparent`).
    pub trace: TraceConfig,
    /// `x-request-id`.
    pub request_id: RequestIdConfig,
    /// Response headers to add: header name → what it carries.
    pub response_headers: BTreeMap<String, HeaderValue>,
}

/// `metrics`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether to count requests at all.
    pub enabled: bool,
    /// The first segment of every metric name.
    pub prefix: String,
    /// Count per status class (`2xx`) or per status code (`404`).
    pub status: StatusDetail,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            prefix: "telemetry".to_string(),
            status: StatusDetail::Class,
        }
    }
}

/// How finely responses are counted.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StatusDetail {
    /// `rq_2xx`, `rq_4xx`, ...
    #[default]
    Class,
    /// `rq_200`, `rq_404`, ...
    Code,
}

/// `access_log`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    /// Whether to log a line per request.
    pub enabled: bool,
    /// The fields of the line, in this order.
    pub fields: Vec<Field>,
    /// Log only requests whose trace is sampled.
    pub sampled_only: bool,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            fields: Field::DEFAULT.to_vec(),
            sampled_only: false,
        }
    }
}

/// A field of the access-log line; its JSON key is its name here.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Request start, RFC 3339 UTC with milliseconds.
    StartTime,
    /// `:method`.
    Method,
    /// `:path` without the query string.
    Path,
    /// The query string (without `?`), `null` when there is none.
    Query,
    /// `:authority` (Host).
    Authority,
    /// `:scheme`.
    Scheme,
    /// `HTTP/1.1`, `HTTP/2.0` (property `request.protocol`).
    Protocol,
    /// Response status (a number).
    Status,
    /// Request start to response end, milliseconds (a number, microsecond precision).
    DurationMs,
    /// Request body bytes.
    BytesIn,
    /// Response body bytes.
    BytesOut,
    /// Route name (property `route_name`).
    Route,
    /// Cluster name (property `cluster_name`).
    Cluster,
    /// The upstream endpoint `ip:port` (property `upstream.address`).
    Upstream,
    /// `x-request-id`.
    RequestId,
    /// The trace id.
    TraceId,
    /// The span id this filter gave the upstream request.
    SpanId,
    /// The caller's span id from an incoming `traceparent`.
    ParentSpanId,
    /// Whether the trace is sampled (a boolean).
    Sampled,
    /// `user-agent`.
    UserAgent,
    /// `referer`.
    Referer,
    /// The client `ip:port` (property `source.address`).
    SourceAddress,
    /// The listener's name (property `listener_name`).
    Listener,
}

impl Field {
    /// The fields logged when the config names none.
    pub const DEFAULT: &[Field] = &[
        Field::StartTime,
        Field::Method,
        Field::Path,
        Field::Authority,
        Field::Status,
        Field::DurationMs,
        Field::BytesOut,
        Field::Route,
        Field::Cluster,
        Field::Upstream,
        Field::RequestId,
        Field::TraceId,
        Field::UserAgent,
        Field::SourceAddress,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Field::StartTime => "start_time",
            Field::Method => "method",
            Field::Path => "path",
            Field::Query => "query",
            Field::Authority => "authority",
            Field::Scheme => "scheme",
            Field::Protocol => "protocol",
            Field::Status => "status",
            Field::DurationMs => "duration_ms",
            Field::BytesIn => "bytes_in",
            Field::BytesOut => "bytes_out",
            Field::Route => "route",
            Field::Cluster => "cluster",
            Field::Upstream => "upstream",
            Field::RequestId => "request_id",
            Field::TraceId => "trace_id",
            Field::SpanId => "span_id",
            Field::ParentSpanId => "parent_span_id",
            Field::Sampled => "sampled",
            Field::UserAgent => "user_agent",
            Field::Referer => "referer",
            Field::SourceAddress => "source_address",
            Field::Listener => "listener",
        }
    }
}

/// `trace`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// Whether to read and rewrite `traceparent`.
    pub enabled: bool,
    /// The share of new traces marked sampled, 0 to 1 (an incoming trace keeps its flag).
    pub sampling_rate: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            enabled: true,
            sampling_rate: 1.0,
        }
    }
}

/// `request_id`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdConfig {
    /// Set a new `x-request-id` (UUID v4 form) on requests that have none.
    pub generate: bool,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig { generate: true }
    }
}

/// What a configured response header carries.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeaderValue {
    /// The trace id (32 hex digits).
    TraceId,
    /// The span id sent upstream (16 hex digits).
    SpanId,
    /// The `traceparent` sent upstream.
    Traceparent,
    /// The request's `x-request-id`.
    RequestId,
}

impl Config {
    /// What serde cannot check. The error reads as weft-sdk's config errors do:
    /// `config: FIELD: what is wrong`.
    pub fn validate(&self) -> Result<(), String> {
        let rate = self.trace.sampling_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!(
                "config: trace.sampling_rate: must be between 0 and 1, got {rate}"
            ));
        }
        let prefix = &self.metrics.prefix;
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if prefix.is_empty()
            || !prefix
                .split('.')
                .all(|s| !s.is_empty() && s.bytes().all(word))
        {
            return Err(format!(
                "config: metrics.prefix: {prefix:?} must be words of letters, digits and `_`, joined by `.`"
            ));
        }
        for (i, field) in self.access_log.fields.iter().enumerate() {
            if self.access_log.fields[..i].contains(field) {
                return Err(format!(
                    "config: access_log.fields[{i}]: `{}` is listed twice",
                    field.key()
                ));
            }
        }
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        for name in self.response_headers.keys() {
            if name.is_empty() || !name.bytes().all(token) {
                return Err(format!(
                    "config: response_headers.{name}: not a header name"
                ));
            }
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "config: response_headers.{name}: write header names in lowercase"
                ));
            }
        }
        Ok(())
    }
}
