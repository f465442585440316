//! The mock host's state, one per thread (cargo runs each test on its own thread, and the
//! proxy-wasm dispatcher is thread-local too), and the host semantics the host functions
//! in `abi.rs` apply to it: Weft's, so that a filter sees the statuses a real host gives.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use proxy_wasm::types::{LogLevel, MetricType, Status};

use super::{CallResponse, HttpCall, LocalReply, LogLine};

/// 2023-11-14T22:13:20Z: the clock's start, so that tests are repeatable.
pub(crate) const START_NANOS: u64 = 1_700_000_000 * 1_000_000_000;

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on this thread's host state. Never call into the filter inside `f`.
pub(crate) fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// A header map as a list of pairs; names are kept lowercase.
pub(crate) type Map = Vec<(String, String)>;

/// One body direction of an HTTP context.
#[derive(Debug, Default)]
pub(crate) struct Body {
    /// What the filter has been shown and not yet let through (held while it pauses).
    pub held: Vec<u8>,
    /// What the filter let through.
    pub forwarded: Vec<u8>,
}

/// One HTTP context: the request and response as the filter sees and changes them.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub request_headers: Map,
    pub request_trailers: Map,
    pub response_headers: Map,
    pub response_trailers: Map,
    pub request_body: Body,
    pub response_body: Body,
    /// Properties of this request: set by the test or by the filter.
    pub properties: HashMap<String, Vec<u8>>,
    pub local_reply: Option<LocalReply>,
    pub resumed_request: u32,
    pub resumed_response: u32,
    pub closed: bool,
}

#[derive(Debug)]
pub(crate) struct Metric {
    pub name: String,
    pub kind: MetricType,
    pub value: i64,
    pub samples: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub now_nanos: u64,
    pub log_level: LogLevel,
    pub logs: Vec<LogLine>,
    /// The context host functions act on.
    pub current: u32,
    pub root: u32,
    pub next_id: u32,
    pub streams: BTreeMap<u32, Stream>,
    /// The body buffer of the running body callback: `Some(true)` for the request.
    pub body_callback: Option<bool>,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub properties: HashMap<String, Vec<u8>>,
    pub clusters: Option<Vec<String>>,
    pub tick_period: Option<Duration>,
    pub next_tick_nanos: u64,
    pub calls: BTreeMap<u32, HttpCall>,
    pub next_token: u32,
    /// The response of the http call whose callback is running.
    pub call_response: Option<CallResponse>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub queues: Vec<(String, VecDeque<Vec<u8>>)>,
    pub metrics: Vec<Metric>,
    /// A `Host` exists on this thread.
    pub in_use: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            now_nanos: START_NANOS,
            log_level: LogLevel::Trace,
            logs: Vec::new(),
            current: 0,
            root: 0,
            next_id: 1,
            streams: BTreeMap::new(),
            body_callback: None,
            vm_config: Vec::new(),
            plugin_config: Vec::new(),
            properties: HashMap::new(),
            clusters: None,
            tick_period: None,
            next_tick_nanos: 0,
            calls: BTreeMap::new(),
            next_token: 1,
            call_response: None,
            shared: HashMap::new(),
            queues: Vec::new(),
            metrics: Vec::new(),
            in_use: false,
        }
    }
}

/// The key a property path (segments joined by NUL) is stored under: segments joined by
/// `.`, as the test names them.
pub(crate) fn property_key(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).replace('\0', ".")
}

/// A header name as hosts keep it (lowercase), or BAD_ARGUMENT for a name no host takes.
pub(crate) fn header_name(name: &str) -> Result<String, Status> {
    let body = name.strip_prefix(':').unwrap_or(name);
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if body.is_empty() || !body.bytes().all(token) {
        return Err(Status::BadArgument);
    }
    Ok(name.to_ascii_lowercase())
}

impl State {
    pub fn stream(&mut self, id: u32) -> &mut Stream {
        self.streams
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no HTTP context {id}"))
    }

    /// The header map `map` (ABI number) of the current context. NOT_FOUND where there is
    /// none, as on Weft: request and response maps outside an HTTP context, http-call maps
    /// outside `on_http_call_response`, gRPC metadata always.
    pub fn map(&mut self, map: u32) -> Result<&mut Map, Status> {
        let current = self.current;
        match map {
            0..=3 => {
                let stream = self.streams.get_mut(&current).ok_or(Status::NotFound)?;
                Ok(match map {
                    0 => &mut stream.request_headers,
                    1 => &mut stream.request_trailers,
                    2 => &mut stream.response_headers,
                    _ => &mut stream.response_trailers,
                })
            }
            6 | 7 => {
                let response = self.call_response.as_mut().ok_or(Status::NotFound)?;
                Ok(if map == 6 {
                    &mut response.headers
                } else {
                    &mut response.trailers
                })
            }
            4 | 5 => Err(Status::NotFound),
            _ => Err(Status::BadArgument),
        }
    }

    /// The buffer `kind` (ABI number) as the current callback sees it.
    pub fn buffer(&mut self, kind: u32) -> Result<Vec<u8>, Status> {
        match kind {
            0 | 1 => self.body_mut(kind).map(|b| b.clone()),
            4 => self
                .call_response
                .as_ref()
                .map(|r| r.body.clone())
                .ok_or(Status::NotFound),
            6 => Ok(self.vm_config.clone()),
            7 => Ok(self.plugin_config.clone()),
            2 | 3 | 5 | 8 => Err(Status::NotFound),
            _ => Err(Status::BadArgument),
        }
    }

    /// The body data of the running body callback, if `kind` names it.
    pub fn body_mut(&mut self, kind: u32) -> Result<&mut Vec<u8>, Status> {
        let request = match kind {
            0 => true,
            1 => false,
            _ => return Err(Status::BadArgument),
        };
        if self.body_callback != Some(request) {
            return Err(Status::NotFound);
        }
        let stream = self.stream(self.current);
        Ok(if request {
            &mut stream.request_body.held
        } else {
            &mut stream.response_body.held
        })
    }

    pub fn get_property(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let key = property_key(raw);
        self.streams
            .get(&self.current)
            .and_then(|s| s.properties.get(&key))
            .or_else(|| self.properties.get(&key))
            .cloned()
    }

    /// Stores a property for the current request; NOT_FOUND outside an HTTP context, as
    /// on Weft.
    pub fn set_property(&mut self, raw: &[u8], value: Vec<u8>) -> Status {
        let current = self.current;
        match self.streams.get_mut(&current) {
            Some(stream) => {
                stream.properties.insert(property_key(raw), value);
                Status::Ok
            }
            None => Status::NotFound,
        }
    }

    /// Shared data as on Weft and Envoy: a value's CAS token starts at 1 and grows with
    /// each write; a write with token 0 is unconditional, any other must match.
    pub fn set_shared(&mut self, key: String, value: Vec<u8>, cas: u32) -> Status {
        match self.shared.get_mut(&key) {
            Some((current, token)) => {
                if cas != 0 && cas != *token {
                    return Status::CasMismatch;
                }
                *current = value;
                *token = token.wrapping_add(1).max(1);
            }
            None => {
                self.shared.insert(key, (value, 1));
            }
        }
        Status::Ok
    }

    /// A metric's id, defined on first use; BAD_ARGUMENT when the name is taken by a
    /// metric of another type (as on Weft).
    pub fn define_metric(&mut self, kind: MetricType, name: &str) -> Result<u32, Status> {
        if let Some(i) = self.metrics.iter().position(|m| m.name == name) {
            return if self.metrics[i].kind == kind {
                Ok(i as u32)
            } else {
                Err(Status::BadArgument)
            };
        }
        self.metrics.push(Metric {
            name: name.to_string(),
            kind,
            value: 0,
            samples: Vec::new(),
        });
        Ok(self.metrics.len() as u32 - 1)
    }

    pub fn metric(&mut self, id: u32) -> Result<&mut Metric, Status> {
        self.metrics.get_mut(id as usize).ok_or(Status::NotFound)
    }

    /// Records an http call after the checks Weft and Envoy make: `:method`, `:path` and
    /// `:authority` are required, and the cluster must exist (when the test named the
    /// clusters).
    pub fn http_call(&mut self, mut call: HttpCall) -> Result<u32, Status> {
        for required in [":method", ":path", ":authority"] {
            if !call.headers.iter().any(|(k, _)| k == required) {
                return Err(Status::BadArgument);
            }
        }
        if let Some(clusters) = &self.clusters {
            if !clusters.contains(&call.cluster) {
                return Err(Status::BadArgument);
            }
        }
        let token = self.next_token;
        self.next_token += 1;
        call.token = token;
        call.context_id = self.current;
        self.calls.insert(token, call);
        Ok(token)
    }

    pub fn queue(&mut self, name: &str) -> u32 {
        match self.queues.iter().position(|(n, _)| n == name) {
            Some(i) => i as u32 + 1,
            None => {
                self.queues.push((name.to_string(), VecDeque::new()));
                self.queues.len() as u32
            }
        }
    }

    pub fn queue_by_id(&mut self, id: u32) -> Result<&mut VecDeque<Vec<u8>>, Status> {
        let i = (id as usize).checked_sub(1).ok_or(Status::NotFound)?;
        self.queues
            .get_mut(i)
            .map(|(_, q)| q)
            .ok_or(Status::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_compare_and_swap() {
        let mut s = State::default();
        assert_eq!(s.set_shared("k".into(), b"1".to_vec(), 0), Status::Ok);
        assert_eq!(s.shared["k"], (b"1".to_vec(), 1));
        assert_eq!(s.set_shared("k".into(), b"2".to_vec(), 1), Status::Ok);
        assert_eq!(
            s.set_shared("k".into(), b"3".to_vec(), 1),
            Status::CasMismatch
        );
        assert_eq!(s.shared["k"], (b"2".to_vec(), 2));
        assert_eq!(s.set_shared("k".into(), b"4".to_vec(), 0), Status::Ok);
        assert_eq!(s.shared["k"].1, 3);
    }

    #[test]
    fn header_names_are_lowercased_and_checked() {
        assert_eq!(header_name("X-Foo").unwrap(), "x-foo");
        assert_eq!(header_name(":path").unwrap(), ":path");
        assert_eq!(header_name("bad name"), Err(Status::BadArgument));
        assert_eq!(header_name(""), Err(Status::BadArgument));
    }

    #[test]
    fn metrics_are_defined_once_per_name_and_type() {
        let mut s = State::default();
        let a = s.define_metric(MetricType::Counter, "a").unwrap();
        assert_eq!(s.define_metric(MetricType::Counter, "a"), Ok(a));
        assert_eq!(
            s.define_metric(MetricType::Gauge, "a"),
            Err(Status::BadArgument)
        );
        assert_eq!(s.metric(99).err(), Some(Status::NotFound));
    }
}
