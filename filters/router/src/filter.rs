//! The proxy-wasm glue: the root context compiles the config, and each request's context
//! finds the first matching rule in the request-headers phase and carries out its action.

use std::rc::Rc;

use weft_sdk::prelude::*;

use crate::config::Config;
use crate::matcher::RequestView;
use crate::rng::{self, Rng};
use crate::route::{self, Needs, Route, RouteAction};

/// One per VM (per worker on Weft).
#[derive(Default)]
pub struct RouterRoot {
    context_id: u32,
    routes: Rc<Vec<Route>>,
    needs: Needs,
    rng: Rng,
    metrics: Option<Metrics>,
}

#[derive(Clone, Copy)]
struct Metrics {
    matched: Metric,
    unmatched: Metric,
}

impl RouterRoot {
    pub fn new(context_id: u32) -> RouterRoot {
        RouterRoot {
            context_id,
            ..RouterRoot::default()
        }
    }
}

impl Context for RouterRoot {}

impl RootContext for RouterRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = config::load::<Config>() else {
            return false;
        };
        let routes = match config.compile() {
            Ok(routes) => routes,
            Err(e) => {
                error!("{e}");
                return false;
            }
        };
        let nanos = weft_sdk::time::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        self.rng.reseed(rng::seed(nanos, self.context_id));
        info!("router: {} rules", routes.len());
        self.needs = Needs::of(&routes);
        self.routes = Rc::new(routes);
        self.metrics = Some(Metrics {
            matched: Metric::counter("router_matched"),
            unmatched: Metric::counter("router_unmatched"),
        });
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RouterHttp {
            routes: self.routes.clone(),
            needs: self.needs,
            rng: self.rng.clone(),
            metrics: self.metrics,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct RouterHttp {
    routes: Rc<Vec<Route>>,
    needs: Needs,
    rng: Rng,
    metrics: Option<Metrics>,
}

impl Context for RouterHttp {}

impl RouterHttp {
    /// The headers the rules can look at: `:method` and `:path` alone (each read only when
    /// a rule, or the debug log, uses it), or every header when a rule looks at others.
    fn request_head(&self) -> Vec<(String, String)> {
        if self.needs.all_headers {
            return Request::headers();
        }
        let debug = weft_sdk::log::log_enabled!(weft_sdk::log::Level::Debug);
        let mut head = Vec::with_capacity(2);
        for (wanted, name) in [(self.needs.method, ":method"), (self.needs.path, ":path")] {
            if wanted || debug {
                if let Some(value) = Request::header(name) {
                    head.push((name.to_string(), value));
                }
            }
        }
        head
    }
}

impl HttpContext for RouterHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.routes.is_empty() {
            return Action::Continue;
        }
        let req = RequestView::new(self.request_head());
        let Some(route) = route::select(&self.routes, &req) else {
            debug!(
                "no rule matched {} {}: weft's routes decide",
                req.method(),
                req.path()
            );
            self.metrics.inspect(|m| m.unmatched.inc());
            return Action::Continue;
        };
        self.metrics.inspect(|m| m.matched.inc());
        match &route.action {
            RouteAction::Forward(forward) => {
                let cluster = forward.target.choose(&req, || self.rng.next_u64());
                debug!(
                    "rule {}: {} {} -> {cluster}",
                    route.name,
                    req.method(),
                    req.path()
                );
                property::set_cluster(cluster);
                if let Some(path) = forward.new_path(&req) {
                    Request::set_header(":path", &path);
                }
                if let Some(host) = &forward.host_rewrite {
                    Request::set_header(":authority", host);
                }
                Action::Continue
            }
            RouteAction::Redirect(redirect) => LocalResponse::new(redirect.status)
                .header("location", &redirect.location(&req))
                .send(),
            RouteAction::Direct(direct) => {
                let mut reply = LocalResponse::new(direct.status);
                if !direct.body.is_empty() {
                    reply = reply
                        .header("content-type", &direct.content_type)
                        .body(direct.body.as_bytes());
                }
                reply.send()
            }
        }
    }
}
