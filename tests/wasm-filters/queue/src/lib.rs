//! `queue`: passes request paths from HTTP contexts to the root context through a shared
//! queue, and keeps a log of them in shared data.
//!
//! - Root `on_configure`: `register_shared_queue("fixture_queue")`, remembers the id (logged
//!   at info level as `queue filter: registered fixture_queue as <id>`), returns true.
//! - HTTP `on_http_request_headers`: `resolve_shared_queue("", "fixture_queue")` (empty
//!   vm_id), then `enqueue_shared_queue(id, Some(<:path bytes>))` (an absent `:path`
//!   enqueues an empty item). Sets request header `x-queue-enqueue` to `ok`, `not_found`
//!   (queue did not resolve) or `error:<Status>` (enqueue failed). Continue.
//! - Root `on_queue_ready(queue_id)`: dequeues items from `queue_id` until it is empty and,
//!   for each item, appends `<item>\n` to shared-data key `queue.log` (UTF-8 lossy; CAS loop,
//!   retry on CasMismatch, at most 1000 attempts; failures logged at warn level).
//! - HTTP `on_http_response_headers`: sets response header `x-queue-log-len` to the number
//!   of lines in `queue.log` right now (count of `\n`; `0` if absent). Whether this
//!   request's own path is already counted depends on when the host delivers
//!   `on_queue_ready`, so tests should poll (e.g. with later requests) rather than expect an
//!   exact number from one response.

use log::{info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(QueueRoot { queue_id: None }) });
}}

const QUEUE: &str = "fixture_queue";
const LOG_KEY: &str = "queue.log";
const MAX_ATTEMPTS: usize = 1000;

/// Appends `line` and a newline to the text stored under `key`.
fn cas_append_line(ctx: &dyn Context, key: &str, line: &str) -> Result<(), Status> {
    for _ in 0..MAX_ATTEMPTS {
        let (value, cas) = ctx.get_shared_data(key);
        let mut text = value.unwrap_or_default();
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        match ctx.set_shared_data(key, Some(&text), cas) {
            Ok(()) => return Ok(()),
            Err(Status::CasMismatch) => continue,
            Err(status) => return Err(status),
        }
    }
    Err(Status::CasMismatch)
}

struct QueueRoot {
    queue_id: Option<u32>,
}

impl Context for QueueRoot {}

impl RootContext for QueueRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let id = self.register_shared_queue(QUEUE);
        info!("queue filter: registered {QUEUE} as {id}");
        self.queue_id = Some(id);
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        loop {
            match self.dequeue_shared_queue(queue_id) {
                Ok(Some(item)) => {
                    let line = String::from_utf8_lossy(&item);
                    if let Err(status) = cas_append_line(self, LOG_KEY, &line) {
                        warn!("queue filter: appending to {LOG_KEY} failed: {status:?}");
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    warn!("queue filter: dequeue from {queue_id} failed: {status:?}");
                    break;
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(QueueHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct QueueHttp;

impl Context for QueueHttp {}

impl HttpContext for QueueHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let outcome = match self.resolve_shared_queue("", QUEUE) {
            None => "not_found".to_owned(),
            Some(id) => match self.enqueue_shared_queue(id, Some(path.as_bytes())) {
                Ok(()) => "ok".to_owned(),
                Err(status) => format!("error:{status:?}"),
            },
        };
        self.set_http_request_header("x-queue-enqueue", Some(&outcome));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (value, _cas) = self.get_shared_data(LOG_KEY);
        let lines = value.map_or(0, |v| v.iter().filter(|&&b| b == b'\n').count());
        self.set_http_response_header("x-queue-log-len", Some(&lines.to_string()));
        Action::Continue
    }
}
