//! `resume_on_tick`: a paused request resumed by a timer, the way Envoy filters do it.
//!
//! - root `on_configure`: tick period 20 ms.
//! - HTTP `on_http_request_headers`: sets request header `x-paused-by-tick: 1`, records
//!   its context id in a list shared with the root context (same VM), returns Pause.
//! - root `on_tick`: for each recorded context, `set_effective_context(id)` then
//!   `resume_http_request()`; clears the list.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(ResumeRoot { paused: Rc::default() })
    });
}}

struct ResumeRoot {
    paused: Rc<RefCell<Vec<u32>>>,
}

impl Context for ResumeRoot {}

impl RootContext for ResumeRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.set_tick_period(Duration::from_millis(20));
        true
    }

    fn on_tick(&mut self) {
        for id in self.paused.borrow_mut().drain(..) {
            hostcalls::set_effective_context(id).unwrap();
            hostcalls::resume_http_request().unwrap();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ResumeHttp {
            id: context_id,
            paused: self.paused.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ResumeHttp {
    id: u32,
    paused: Rc<RefCell<Vec<u32>>>,
}

impl Context for ResumeHttp {}

impl HttpContext for ResumeHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_request_header("x-paused-by-tick", Some("1"));
        self.paused.borrow_mut().push(self.id);
        Action::Pause
    }
}
