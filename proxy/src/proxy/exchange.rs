//! One request/response exchange as the access log and the metrics see it. It is finished
//! exactly once, when dropped: after the response body ended, failed, or the client left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{HeaderValue, Method, Version};

use super::body::RequestStats;
use super::conn::ConnContext;
use crate::snapshot::Snapshot;

/// The route label of requests routed by a filter (`weft.cluster`).
pub const FILTER_ROUTE: &str = "(filter)";

pub struct Exchange {
    start: Instant,
    conn: Arc<ConnContext>,
    snapshot: Arc<Snapshot>,
    pub method: Method,
    /// The request path for the access log (empty when the listener logs none).
    pub path: String,
    pub version: Version,
    pub request_id: Option<HeaderValue>,
    /// Matched route and which of its targets (weighted cluster) was used.
    pub route: Option<(usize, usize)>,
    /// The cluster a filter chose through the routing contract (`weft.cluster`).
    pub filter_routed: Option<usize>,
    pub cluster: Option<usize>,
    pub upstream: Option<SocketAddr>,
    pub status: u16,
    pub request: Arc<RequestStats>,
    pub bytes_out: u64,
    /// The response body's length when known up front (hyper stops polling a sized body
    /// once that many bytes are written, so its end is never seen as a frame).
    pub expected_len: Option<u64>,
    pub response_complete: bool,
    pub response_failed: bool,
    /// The request's filter chain, finished (on_log, on_done, on_delete) with the exchange.
    pub filters: Option<super::filters::FilterRun>,
    /// A request body still on its way through the filters once the response started.
    pub request_pump: Option<super::pump::RequestPump>,
    /// Counted against the cluster's circuit breaker until the exchange ends.
    pub admitted: Option<crate::cluster::ActiveRequest>,
    /// Counted as in flight to its endpoint until the exchange ends (`/clusters`).
    pub on_endpoint: Option<crate::cluster::ActiveRequest>,
}

impl Exchange {
    /// Boxed: the exchange goes from the request path into the response body, and a box
    /// moves as a pointer where the exchange itself is several hundred bytes.
    pub fn start(
        conn: Arc<ConnContext>,
        snapshot: Arc<Snapshot>,
        parts: &http::request::Parts,
    ) -> Box<Self> {
        conn.activity.request_started();
        let path = if snapshot.config.listeners[conn.listener].access_log {
            parts.uri.path().to_string()
        } else {
            String::new()
        };
        Box::new(Exchange {
            start: Instant::now(),
            conn,
            snapshot,
            method: parts.method.clone(),
            path,
            version: parts.version,
            request_id: None,
            route: None,
            filter_routed: None,
            cluster: None,
            upstream: None,
            status: 0,
            request: Arc::default(),
            bytes_out: 0,
            expected_len: None,
            response_complete: false,
            response_failed: false,
            filters: None,
            request_pump: None,
            admitted: None,
            on_endpoint: None,
        })
    }
}

impl Exchange {
    /// Moves a still-uploading request body along (driven by the response body).
    pub fn drive_request_pump(&mut self, cx: &mut std::task::Context<'_>) {
        let (Some(pump), Some(run)) = (self.request_pump.as_mut(), self.filters.as_mut()) else {
            return;
        };
        match pump.poll(run, cx) {
            std::task::Poll::Pending => {}
            std::task::Poll::Ready(Ok(())) => self.request_pump = None,
            std::task::Poll::Ready(Err(stop)) => {
                tracing::warn!(
                    ?stop,
                    "a filter stopped the request body after the response started"
                );
                self.request_pump = None;
            }
        }
    }

    /// Runs response trailers through the filters' trailers phase (unchanged without
    /// filters, or when the body already went through them: `filtered`). The body's end is
    /// taken first: what filters held of the body goes before.
    pub fn filter_response_trailers(
        &mut self,
        trailers: http_body::Frame<bytes::Bytes>,
        filtered: bool,
    ) -> Result<http_body::Frame<bytes::Bytes>, super::BoxError> {
        let Some(run) = self.filters.as_mut().filter(|_| !filtered) else {
            return Ok(trailers);
        };
        let map = trailers.into_trailers().unwrap_or_default();
        run.trailers(false, map)
            .map(http_body::Frame::trailers)
            .map_err(|stop| {
                self.response_failed = true;
                tracing::error!(
                    ?stop,
                    "a filter stopped the response trailers; cutting the response"
                );
                super::BoxError::from(format!("response trailers stopped by a filter: {stop:?}"))
            })
    }

    /// Runs response body data through the filters' body phases (unchanged without filters,
    /// or when the body already went through them: `filtered`). A filter failure or reply
    /// cuts the response: its head is already on its way.
    pub fn filter_response_body(
        &mut self,
        data: bytes::Bytes,
        end_of_stream: bool,
        filtered: bool,
    ) -> Result<Option<bytes::Bytes>, super::BoxError> {
        let Some(run) = self.filters.as_mut().filter(|_| !filtered) else {
            return Ok((!data.is_empty()).then_some(data));
        };
        run.body(false, data, end_of_stream).map_err(|stop| {
            self.response_failed = true;
            tracing::error!(
                ?stop,
                "a filter stopped the response body; cutting the response"
            );
            super::BoxError::from(format!("response body stopped by a filter: {stop:?}"))
        })
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(filters) = self.filters.as_mut() {
            filters.finish();
        }
        let listener = &self.snapshot.listeners[self.conn.listener];
        let counters = match (self.route, self.filter_routed) {
            (_, Some(cluster)) => &listener.filter_routed[cluster],
            (Some((route, target)), None) => &listener.routes[route].targets[target],
            (None, None) => &listener.metrics.no_route,
        };
        // Status 0: the client went away before any response; it is in the access log
        // (outcome downstream_closed) but has no status class to count under.
        if self.status != 0 {
            counters.record(self.status);
        }
        let elapsed = self.start.elapsed();
        let bytes_in = self.request.bytes.load(Ordering::Relaxed);
        listener.metrics.duration.observe(elapsed.as_secs_f64());
        listener.metrics.rx_bytes.inc_by(bytes_in);
        listener.metrics.tx_bytes.inc_by(self.bytes_out);
        self.conn.activity.request_done();

        if !self.snapshot.config.listeners[self.conn.listener].access_log {
            return;
        }
        let route = match (self.route, self.filter_routed) {
            (_, Some(_)) => FILTER_ROUTE,
            (Some((r, _)), None) => &*listener.routes[r].name,
            (None, None) => "-",
        };
        let cluster = self
            .cluster
            .map(|c| self.snapshot.config.clusters[c].name.as_str())
            .unwrap_or("-");
        let upstream = self.upstream.map(|u| u.to_string());
        let request_id = self
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        // Complete, failed mid-body, or abandoned by the client before the end.
        let outcome = if self.response_failed {
            "response_failed"
        } else if self.response_complete
            || self.expected_len == Some(self.bytes_out)
            || self.method == Method::HEAD
        {
            "complete"
        } else {
            "downstream_closed"
        };
        tracing::info!(
            target: "weft::access",
            listener = &*listener.name,
            method = %self.method,
            path = %self.path,
            protocol = ?self.version,
            status = self.status,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            route,
            cluster,
            upstream = upstream.as_deref().unwrap_or("-"),
            bytes_in,
            bytes_out = self.bytes_out,
            request_id,
            peer = %self.conn.peer,
            outcome,
            "access"
        );
    }
}
