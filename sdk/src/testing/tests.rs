//! The harness end to end: a small filter defined here, driven through every part of the
//! harness a filter test uses, with the SDK's helpers on the filter side.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};
use serde::Deserialize;

use super::{CallResponse, Host};
use crate::http::{Request, Response};
use crate::local::LocalResponse;
use crate::metrics::Metric;
use crate::{config, property, time};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProbeConfig {
    header: String,
    deny_path: String,
    auth_cluster: String,
    tick_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Metrics {
    requests: Metric,
    last_tick: Metric,
    body_sizes: Metric,
}

#[derive(Default)]
struct ProbeRoot {
    config: ProbeConfig,
    metrics: Option<Metrics>,
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        if !config::load_into(&mut self.config) {
            return false;
        }
        self.metrics = Some(Metrics {
            requests: Metric::counter("probe_requests"),
            last_tick: Metric::gauge("probe_last_tick_secs"),
            body_sizes: Metric::histogram("probe_body_sizes"),
        });
        if self.config.tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(self.config.tick_ms));
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(m) = self.metrics {
            m.last_tick.record(time::unix_secs());
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProbeHttp {
            config: self.config.clone(),
            metrics: self.metrics.expect("configured"),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ProbeHttp {
    config: ProbeConfig,
    metrics: Metrics,
}

impl ProbeHttp {
    /// Counts requests in shared data with compare-and-swap.
    fn count_hit(&self) {
        loop {
            let (value, cas) = self.get_shared_data("hits");
            let n: u64 = value
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            let next = (n + 1).to_string();
            match self.set_shared_data("hits", Some(next.as_bytes()), cas) {
                Ok(()) => return,
                Err(Status::CasMismatch) => continue,
                Err(other) => panic!("{other:?}"),
            }
        }
    }
}

impl Context for ProbeHttp {
    fn on_http_call_response(&mut self, _: u32, headers: usize, body_size: usize, _: usize) {
        if headers == 0 {
            LocalResponse::new(503).body("auth unavailable").send();
            return;
        }
        let status = self.get_http_call_response_header(":status");
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        if status.as_deref() == Some("200") {
            Request::set_header("x-auth", &String::from_utf8_lossy(&body));
            self.resume_http_request();
        } else {
            LocalResponse::new(401)
                .header("WWW-Authenticate", "Bearer")
                .send();
        }
    }
}

impl HttpContext for ProbeHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.metrics.requests.inc();
        self.count_hit();
        if Request::path().as_deref() == Some(self.config.deny_path.as_str()) {
            return LocalResponse::new(403)
                .header("X-Reason", "denied")
                .body("no")
                .send();
        }
        if let Some(cluster) = Request::query_param("cluster") {
            property::set_cluster(&cluster);
        }
        if let Some(user) = Request::cookie("user") {
            Request::set_header("X-User", &user);
        }
        if let Some(addr) = property::string("source.address") {
            Request::add_header("x-client", &addr);
        }
        Request::remove_header("X-Drop");
        log::info!("request to {}", Request::path().unwrap_or_default());
        if !self.config.auth_cluster.is_empty() {
            let call = self.dispatch_http_call(
                &self.config.auth_cluster,
                vec![
                    (":method", "GET"),
                    (":path", "/check"),
                    (":authority", "auth"),
                ],
                Some(b"who?"),
                vec![],
                Duration::from_millis(250),
            );
            return match call {
                Ok(_) => Action::Pause,
                Err(status) => LocalResponse::new(500).body(format!("{status:?}")).send(),
            };
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        self.metrics.body_sizes.record(size as u64);
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        self.set_http_request_body(0, size, &body.to_ascii_uppercase());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if !self.config.header.is_empty() {
            Response::set_header(&self.config.header, "yes");
        }
        Response::add_header("X-Millis", &time::unix_millis().to_string());
        Action::Continue
    }
}

fn register() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::<ProbeRoot>::default());
}

fn get(path: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "example.com"),
        (":scheme", "http"),
    ]
}

#[test]
fn a_bad_config_is_refused_with_one_line_naming_the_field() {
    let mut host = Host::new(register);
    assert!(!host.configure(r#"{"tick_ms": "soon"}"#));
    let logs = host.logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].level, LogLevel::Error);
    assert!(
        logs[0]
            .message
            .starts_with("config: tick_ms: invalid type: string"),
        "{logs:?}"
    );
    // A later good config is accepted (a reload).
    assert!(host.configure(""));
}

#[test]
fn headers_cookies_query_and_properties() {
    let mut host = Host::new(register);
    host.set_property("plugin_name", "probe");
    assert!(host.configure(r#"{"header": "X-Probe"}"#));
    let mut http = host.http();
    http.set_property("source.address", "10.0.0.7:5000");
    let mut headers = get("/a?cluster=blue&x=1");
    headers.extend([("Cookie", "theme=dark; user=ann"), ("x-drop", "1")]);
    assert_eq!(http.request_headers(&headers, true), Action::Continue);
    assert_eq!(http.request_header("x-user").as_deref(), Some("ann"));
    assert_eq!(
        http.request_header("X-Client").as_deref(),
        Some("10.0.0.7:5000")
    );
    assert_eq!(http.request_header("x-drop"), None);
    assert_eq!(http.cluster().as_deref(), Some("blue"));
    assert_eq!(http.property("plugin_name"), Some(b"probe".to_vec()));

    assert_eq!(
        http.response_headers(&[(":status", "200"), ("x-probe", "old")], false),
        Action::Continue
    );
    assert_eq!(http.response_header("x-probe").as_deref(), Some("yes"));
    let millis = (super::state::START_NANOS / 1_000_000).to_string();
    assert_eq!(http.response_header("x-millis"), Some(millis));
    assert!(host.logged("request to /a"));
    http.finish();
    assert_eq!(host.metric("probe_requests"), Some(1));
}

#[test]
fn local_replies_are_recorded() {
    let mut host = Host::new(register);
    assert!(host.configure(r#"{"deny_path": "/admin"}"#));
    let mut http = host.http();
    assert_eq!(http.request_headers(&get("/admin?x"), true), Action::Pause);
    let reply = http.local_reply().expect("a local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("x-reason").as_deref(), Some("denied"));
    assert_eq!(reply.body_text(), "no");
    assert_eq!(reply.grpc_status, None);
}

#[test]
fn http_calls_round_trip() {
    let mut host = Host::new(register);
    host.set_clusters(&["auth"]);
    assert!(host.configure(r#"{"auth_cluster": "auth"}"#));

    let mut ok = host.http();
    assert_eq!(ok.request_headers(&get("/"), true), Action::Pause);
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, "auth");
    assert_eq!(call.header(":path").as_deref(), Some("/check"));
    assert_eq!(call.body, b"who?");
    assert_eq!(call.timeout, Duration::from_millis(250));
    assert_eq!(call.context_id, ok.id());
    host.respond(call.token, CallResponse::new(200).body("ann"));
    assert_eq!(ok.request_header("x-auth").as_deref(), Some("ann"));
    assert_eq!(ok.request_resumes(), 1);
    assert!(host.http_calls().is_empty());

    let mut denied = host.http();
    assert_eq!(denied.request_headers(&get("/"), true), Action::Pause);
    let token = host.http_calls()[0].token;
    host.respond(token, CallResponse::new(403));
    assert_eq!(denied.local_reply().unwrap().status, 401);
    assert_eq!(denied.request_resumes(), 0);

    let mut failed = host.http();
    failed.request_headers(&get("/"), true);
    let token = host.http_calls()[0].token;
    host.respond(token, CallResponse::failed());
    assert_eq!(failed.local_reply().unwrap().status, 503);
}

#[test]
fn an_unknown_cluster_is_bad_argument() {
    let mut host = Host::new(register);
    host.set_clusters(&["auth"]);
    assert!(host.configure(r#"{"auth_cluster": "nope"}"#));
    let mut http = host.http();
    assert_eq!(http.request_headers(&get("/"), true), Action::Pause);
    let reply = http.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body_text().as_str()),
        (500, "BadArgument")
    );
    assert!(host.http_calls().is_empty());
}

#[test]
fn bodies_are_held_while_paused_and_rewritten() {
    let mut host = Host::new(register);
    assert!(host.configure("{}"));
    let mut http = host.http();
    http.request_headers(&get("/upload"), false);
    assert_eq!(http.request_body(b"abc", false), Action::Pause);
    assert_eq!(http.forwarded_request_body(), b"");
    assert_eq!(http.request_body(b"def", true), Action::Continue);
    assert_eq!(http.forwarded_request_body(), b"ABCDEF");
    assert_eq!(host.histogram("probe_body_sizes"), Some(vec![6]));
}

#[test]
fn shared_data_counts_with_cas() {
    let mut host = Host::new(register);
    assert!(host.configure("{}"));
    for _ in 0..2 {
        host.http().request_headers(&get("/"), true);
    }
    assert_eq!(host.shared_data("hits"), Some((b"2".to_vec(), 2)));
    // Another VM writes in between: the token moves on.
    host.set_shared_data("hits", "10");
    host.http().request_headers(&get("/"), true);
    assert_eq!(host.shared_data("hits"), Some((b"11".to_vec(), 4)));

    // The host answers a stale token with CAS_MISMATCH, as Weft and Envoy do.
    let (_, cas) = hostcalls::get_shared_data("hits").unwrap();
    assert_eq!(cas, Some(4));
    assert_eq!(
        hostcalls::set_shared_data("hits", Some(b"x"), Some(3)),
        Err(Status::CasMismatch)
    );
    assert_eq!(
        hostcalls::set_shared_data("hits", Some(b"x"), Some(4)),
        Ok(())
    );
    assert_eq!(hostcalls::get_shared_data("missing").unwrap(), (None, None));
}

#[test]
fn the_clock_and_ticks_are_under_the_tests_control() {
    let mut host = Host::new(register);
    assert!(host.configure(r#"{"tick_ms": 1000}"#));
    assert_eq!(host.tick_period(), Some(Duration::from_secs(1)));
    let start = time_secs(&host);
    assert_eq!(host.advance(Duration::from_millis(3500)), 3);
    assert_eq!(host.metric("probe_last_tick_secs"), Some(start as i64 + 3));
    assert_eq!(time_secs(&host), start + 3);
    assert_eq!(host.advance(Duration::from_millis(500)), 1);
    host.set_time(std::time::UNIX_EPOCH + Duration::from_secs(42));
    host.tick();
    assert_eq!(host.metric("probe_last_tick_secs"), Some(42));
    assert_eq!(
        host.metrics(),
        vec![
            ("probe_requests".to_string(), MetricType::Counter),
            ("probe_last_tick_secs".to_string(), MetricType::Gauge),
            ("probe_body_sizes".to_string(), MetricType::Histogram),
        ]
    );
}

fn time_secs(host: &Host) -> u64 {
    host.now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn counters_only_go_up_and_histograms_cannot_be_read() {
    let _host = Host::new(register);
    let c = hostcalls::define_metric(MetricType::Counter, "c").unwrap();
    assert_eq!(hostcalls::increment_metric(c, -1), Err(Status::BadArgument));
    hostcalls::record_metric(c, 5).unwrap();
    hostcalls::record_metric(c, 3).unwrap();
    assert_eq!(hostcalls::get_metric(c), Ok(5));
    let h = hostcalls::define_metric(MetricType::Histogram, "h").unwrap();
    assert_eq!(hostcalls::get_metric(h), Err(Status::BadArgument));
    assert_eq!(hostcalls::get_metric(99), Err(Status::NotFound));
}

#[test]
fn a_thread_can_start_a_new_host_after_dropping_one() {
    let mut host = Host::new(register);
    assert!(host.configure("{}"));
    host.http().request_headers(&get("/"), true);
    drop(host);
    let mut host = Host::new(register);
    assert!(host.configure("{}"));
    assert_eq!(host.shared_data("hits"), None);
    assert_eq!(host.metric("probe_requests"), Some(0));
}

#[test]
#[should_panic(expected = "one weft_sdk::testing::Host at a time per thread")]
fn two_hosts_at_once_are_refused() {
    let _a = Host::new(register);
    let _b = Host::new(register);
}
