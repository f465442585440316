//! The proxy-wasm contexts: the root context reads the config and holds what a VM
//! shares between its requests (metric handles, the id generator); a request's context
//! rewrites `traceparent` and `x-request-id` on the way in, adds the configured response
//! headers on the way out, and in `on_log` counts the request, records its latency and
//! writes the access-log line.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use weft_sdk::prelude::*;

use crate::access_log::Record;
use crate::config::{Config, Field, HeaderValue};
use crate::ids::{Rng, write_hex};
use crate::stats::Stats;
use crate::trace::{Origin, Span, TRACEPARENT_LEN};

/// What a VM's requests share.
#[derive(Debug)]
struct Shared {
    config: Config,
    stats: Option<RefCell<Stats>>,
    rng: RefCell<Rng>,
}

fn now_nanos() -> u64 {
    weft_sdk::time::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// === impl Root ===

/// The root context: one per VM (on Weft one per worker and filter entry).
#[derive(Debug)]
pub struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
}

impl Root {
    /// The root context with this id.
    pub fn new(context_id: u32) -> Root {
        Root {
            context_id,
            shared: None,
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = config::load::<Config>() else {
            return false;
        };
        if let Err(e) = config.validate() {
            error!("{e}");
            return false;
        }
        let stats = config
            .metrics
            .enabled
            .then(|| RefCell::new(Stats::new(&config.metrics.prefix, config.metrics.status)));
        let seed = now_nanos() ^ u64::from(self.context_id).rotate_left(32);
        self.shared = Some(Rc::new(Shared {
            config,
            stats,
            rng: RefCell::new(Rng::new(seed)),
        }));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            shared: self.shared.clone()?,
            context_id,
            arrived_nanos: None,
            record: Record::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

// === impl Stream ===

/// One request.
struct Stream {
    shared: Rc<Shared>,
    context_id: u32,
    /// The host clock when the request headers reached this filter.
    arrived_nanos: Option<u64>,
    record: Record,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let now = now_nanos();
        self.arrived_nanos = Some(now);
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        let mut rng = shared.rng.borrow_mut();
        rng.stir(now ^ u64::from(self.context_id).rotate_left(32));

        if config.trace.enabled {
            let incoming = Request::header("traceparent");
            let (span, origin) =
                Span::next(incoming.as_deref(), &mut rng, config.trace.sampling_rate);
            // `tracestate` is left as it came.
            let mut buf = [0; TRACEPARENT_LEN];
            Request::set_header("traceparent", span.write_traceparent(&mut buf));
            if let Some(stats) = &shared.stats {
                let stats = stats.borrow();
                match origin {
                    Origin::Continued => stats.trace_continued.inc(),
                    Origin::Started => stats.trace_started.inc(),
                    Origin::Replaced(_) => {
                        stats.trace_started.inc();
                        stats.trace_invalid.inc();
                    }
                }
            }
            self.record.span = Some(span);
        }

        let mut request_id = Request::header("x-request-id").filter(|v| !v.is_empty());
        if request_id.is_none() && config.request_id.generate {
            let id = rng.uuid_v4();
            Request::set_header("x-request-id", &id);
            if let Some(stats) = &shared.stats {
                stats.borrow().request_id_generated.inc();
            }
            request_id = Some(id);
        }
        self.record.request_id = request_id;

        if config.access_log.enabled {
            self.capture_request_fields(&config.access_log.fields);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _: bool) -> Action {
        self.record.bytes_in += body_size as u64;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.record.status = Response::header(":status").and_then(|s| s.parse().ok());
        let span = self.record.span.as_ref();
        let (mut trace_id, mut span_id) = ([0; 32], [0; 16]);
        let mut traceparent = [0; TRACEPARENT_LEN];
        for (name, value) in &self.shared.config.response_headers {
            let value = match value {
                HeaderValue::TraceId => span.map(|s| write_hex(&s.trace_id, &mut trace_id)),
                HeaderValue::SpanId => span.map(|s| write_hex(&s.span_id, &mut span_id)),
                HeaderValue::Traceparent => span.map(|s| s.write_traceparent(&mut traceparent)),
                HeaderValue::RequestId => self.record.request_id.as_deref(),
            };
            if let Some(value) = value {
                Response::set_header(name, value);
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _: bool) -> Action {
        self.record.bytes_out += body_size as u64;
        Action::Continue
    }

    fn on_log(&mut self) {
        let log = &self.shared.config.access_log;
        if self.shared.stats.is_none() && !log.enabled {
            return;
        }
        let now = now_nanos();
        let start = property::int("request.time")
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0)
            .or(self.arrived_nanos);
        let duration = start.map(|s| now.saturating_sub(s));
        // The status the client got (a later filter may have changed the one seen here).
        let status = property::int("response.code")
            .and_then(|c| u16::try_from(c).ok())
            .or(self.record.status);
        let route = property::string("route_name");
        let cluster = property::string("cluster_name");

        if let Some(stats) = &self.shared.stats {
            // Whole milliseconds, rounded up: a bucket `le=N` then holds exactly the
            // requests that took at most N ms.
            let ms = duration.map_or(0, |d| d.div_ceil(1_000_000));
            stats
                .borrow_mut()
                .record(route.as_deref(), cluster.as_deref(), status, ms);
        }

        let log = &self.shared.config.access_log;
        if !log.enabled {
            return;
        }
        let sampled = self.record.span.as_ref().is_none_or(Span::sampled);
        if log.sampled_only && !sampled {
            return;
        }
        let record = &mut self.record;
        record.start_nanos = start;
        record.duration_nanos = duration;
        record.status = status;
        record.route = route;
        record.cluster = cluster;
        for field in &log.fields {
            match field {
                Field::Protocol => record.protocol = property::string("request.protocol"),
                Field::Upstream => record.upstream = property::string("upstream.address"),
                Field::SourceAddress => record.source_address = property::string("source.address"),
                Field::Listener => record.listener = property::string("listener_name"),
                _ => {}
            }
        }
        info!("{}", record.to_json(&log.fields));
    }
}

impl Stream {
    /// Reads the request headers the access log names (the request as it reached this
    /// filter; later filters may change it).
    fn capture_request_fields(&mut self, fields: &[Field]) {
        let record = &mut self.record;
        for field in fields {
            match field {
                Field::Method => record.method = Request::header(":method"),
                Field::Path | Field::Query if record.path.is_none() => {
                    record.path = Request::header(":path")
                }
                Field::Authority => record.authority = Request::header(":authority"),
                Field::Scheme => record.scheme = Request::header(":scheme"),
                Field::UserAgent => record.user_agent = Request::header("user-agent"),
                Field::Referer => record.referer = Request::header("referer"),
                _ => {}
            }
        }
    }
}
