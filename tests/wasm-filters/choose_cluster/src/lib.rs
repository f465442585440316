//! `choose_cluster`: the routing contract. `on_http_request_headers` reads request header
//! `x-route-to`; when present, sets the property `weft.cluster` (path `["weft",
//! "cluster"]`) to its value, which makes weft send the request to that cluster. Continue.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ChooseRoot) });
}}

struct ChooseRoot;

impl Context for ChooseRoot {}

impl RootContext for ChooseRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ChooseHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ChooseHttp;

impl Context for ChooseHttp {}

impl HttpContext for ChooseHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(cluster) = self.get_http_request_header("x-route-to") {
            self.set_property(vec!["weft", "cluster"], Some(cluster.as_bytes()));
        }
        Action::Continue
    }
}
