//! hello-filter: adds a header whose name and value come from its config to every
//! response, and to requests on their way upstream when `on_request` is set. Copy this
//! crate to start a filter (see README.md and docs/filter-guide.md).
//!
//! Config (JSON; every field optional):
//! `{"header": "x-hello", "value": "hello from weft", "on_request": false}`

use serde::Deserialize;
use weft_sdk::prelude::*;

/// The filter's configuration: the `config:` of its entry in Weft's config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The header's name.
    pub header: String,
    /// The header's value.
    pub value: String,
    /// Whether to add it to requests sent upstream too.
    pub on_request: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header: "x-hello".to_string(),
            value: "hello from weft".to_string(),
            on_request: false,
        }
    }
}

impl Config {
    /// What serde cannot check: the header name must be a valid HTTP token.
    fn validate(&self) -> Result<(), String> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if self.header.is_empty() || !self.header.bytes().all(token) {
            return Err(format!(
                "config: header: {:?} is not a header name",
                self.header
            ));
        }
        if self
            .value
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            return Err("config: value: control characters are not allowed".to_string());
        }
        Ok(())
    }
}

proxy_wasm::main! {{
    register();
}}

/// Registers the filter's root context; `main!` above calls it in the wasm module, and
/// tests call it through `weft_sdk::testing::Host::new(register)`.
pub fn register() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::<Root>::default());
}

/// The root context: one per filter instance (per worker on Weft). It reads the config.
#[derive(Default)]
struct Root {
    config: Config,
    responses: Option<Metric>,
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
        self.config = config;
        self.responses = Some(Metric::counter("hello_filter_responses"));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hello {
            config: self.config.clone(),
            responses: self.responses,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Hello {
    config: Config,
    responses: Option<Metric>,
}

impl Context for Hello {}

impl HttpContext for Hello {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.config.on_request {
            Request::set_header(&self.config.header, &self.config.value);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        Response::set_header(&self.config.header, &self.config.value);
        if let Some(responses) = self.responses {
            responses.inc();
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests;
