//! The access-log line: what the filter learnt about one request, written as one JSON
//! object with the configured fields in the configured order. A value the filter does
//! not have (no route, no `user-agent`, ...) is `null`.

use std::fmt::Write;

use crate::config::Field;
use crate::ids::write_hex;
use crate::trace::Span;

/// What is known about a request when it ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Request start, nanoseconds since the Unix epoch.
    pub start_nanos: Option<u64>,
    /// Request start to response end, nanoseconds.
    pub duration_nanos: Option<u64>,
    /// `:method`.
    pub method: Option<String>,
    /// `:path` with the query string.
    pub path: Option<String>,
    /// `:authority`.
    pub authority: Option<String>,
    /// `:scheme`.
    pub scheme: Option<String>,
    /// `request.protocol`.
    pub protocol: Option<String>,
    /// The response status.
    pub status: Option<u16>,
    /// Request body bytes seen.
    pub bytes_in: u64,
    /// Response body bytes seen.
    pub bytes_out: u64,
    /// `route_name`.
    pub route: Option<String>,
    /// `cluster_name`.
    pub cluster: Option<String>,
    /// `upstream.address`.
    pub upstream: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// The trace context.
    pub span: Option<Span>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `referer`.
    pub referer: Option<String>,
    /// `source.address`.
    pub source_address: Option<String>,
    /// `listener_name`.
    pub listener: Option<String>,
}

impl Record {
    /// The JSON line with `fields`, in that order.
    pub fn to_json(&self, fields: &[Field]) -> String {
        let mut out = String::with_capacity(64 + 32 * fields.len());
        out.push('{');
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(field.key());
            out.push_str("\":");
            self.write_value(*field, &mut out);
        }
        out.push('}');
        out
    }

    fn write_value(&self, field: Field, out: &mut String) {
        let (path, query) = match self.path.as_deref() {
            Some(p) => match p.split_once('?') {
                Some((path, query)) => (Some(path), Some(query)),
                None => (Some(p), None),
            },
            None => (None, None),
        };
        let span = self.span.as_ref();
        match field {
            Field::StartTime => match self.start_nanos {
                Some(nanos) => {
                    out.push('"');
                    rfc3339_millis(nanos, out);
                    out.push('"');
                }
                None => out.push_str("null"),
            },
            Field::Method => string(out, self.method.as_deref()),
            Field::Path => string(out, path),
            Field::Query => string(out, query),
            Field::Authority => string(out, self.authority.as_deref()),
            Field::Scheme => string(out, self.scheme.as_deref()),
            Field::Protocol => string(out, self.protocol.as_deref()),
            Field::Status => number(out, self.status),
            Field::DurationMs => match self.duration_nanos {
                // Milliseconds with three decimals (microseconds).
                Some(n) => {
                    let micros = n / 1000;
                    let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
                }
                None => out.push_str("null"),
            },
            Field::BytesIn => number(out, Some(self.bytes_in)),
            Field::BytesOut => number(out, Some(self.bytes_out)),
            Field::Route => string(out, self.route.as_deref()),
            Field::Cluster => string(out, self.cluster.as_deref()),
            Field::Upstream => string(out, self.upstream.as_deref()),
            Field::RequestId => string(out, self.request_id.as_deref()),
            Field::TraceId => {
                let mut buf = [0; 32];
                string(out, span.map(|s| write_hex(&s.trace_id, &mut buf)))
            }
            Field::SpanId => {
                let mut buf = [0; 16];
                string(out, span.map(|s| write_hex(&s.span_id, &mut buf)))
            }
            Field::ParentSpanId => {
                let mut buf = [0; 16];
                let parent = span.and_then(|s| s.parent_id);
                string(out, parent.as_ref().map(|p| write_hex(p, &mut buf)))
            }
            Field::Sampled => match span {
                Some(s) => out.push_str(if s.sampled() { "true" } else { "false" }),
                None => out.push_str("null"),
            },
            Field::UserAgent => string(out, self.user_agent.as_deref()),
            Field::Referer => string(out, self.referer.as_deref()),
            Field::SourceAddress => string(out, self.source_address.as_deref()),
            Field::Listener => string(out, self.listener.as_deref()),
        }
    }
}

fn number(out: &mut String, value: Option<impl std::fmt::Display>) {
    match value {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("null"),
    }
}

/// A JSON string (escaped as JSON requires), or `null`.
fn string(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("null");
        return;
    };
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `nanos` since the Unix epoch.
pub fn rfc3339_millis(nanos: u64, out: &mut String) {
    let secs = nanos / 1_000_000_000;
    let millis = nanos / 1_000_000 % 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// The Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Count from 0000-03-01, so that a leap day is the last day of its "year", in eras of
    // 400 years (146 097 days).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
