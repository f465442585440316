//! Header maps: proxy_get_header_map_pairs, proxy_set_header_map_pairs,
//! proxy_get_header_map_size, proxy_get_header_map_value, proxy_add_header_map_value,
//! proxy_replace_header_map_value, proxy_remove_header_map_value.
//!
//! Filters see the request as Envoy shows it: `:method`, `:path`, `:authority`, `:scheme`
//! first, then the headers (the `Host` header is `:authority`); the response as `:status`
//! then its headers; trailers as they are (in the trailers callbacks; a message without
//! trailers has an empty map, which cannot be written); an http call's response (in
//! `on_http_call_response`) as `:status` then its headers, and its trailers.

use http::header::{HOST, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use wasmtime::Caller;

use super::memory::{self, HostResult, status_code};
use super::types::{MapType, Status, deserialize_map, serialize_map};
use crate::wasm::host::HostFunctions;
use crate::wasm::state::{HostState, HttpStream};

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, HostState>, map: u32, ptr_out: u32, size_out: u32| {
            status_code((|| {
                let pairs = with_map(&mut c, map, |m| Ok(m.pairs()))?;
                let bytes = serialize_map(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
                memory::return_bytes(&mut c, &bytes, ptr_out, size_out)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_get_header_map_size",
        |mut c: Caller<'_, HostState>, map: u32, size_out: u32| {
            status_code((|| {
                let pairs = with_map(&mut c, map, |m| Ok(m.pairs()))?;
                let size =
                    serialize_map(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).len();
                memory::write_u32(&mut c, size_out, size as u32)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_get_header_map_value",
        |mut c: Caller<'_, HostState>,
         map: u32,
         key_ptr: u32,
         key_len: u32,
         ptr_out: u32,
         size_out: u32| {
            status_code((|| {
                let key = memory::read(&mut c, key_ptr, key_len)?;
                let value = with_map(&mut c, map, |m| Ok(m.get(&key)))?;
                match value {
                    Some(v) => {
                        memory::return_bytes(&mut c, &v, ptr_out, size_out)?;
                        Ok(Status::Ok)
                    }
                    None => Ok(Status::NotFound),
                }
            })())
        },
    );
    f.func(
        "env",
        "proxy_add_header_map_value",
        |mut c: Caller<'_, HostState>,
         map: u32,
         key_ptr: u32,
         key_len: u32,
         value_ptr: u32,
         value_len: u32| {
            set_value(
                &mut c,
                map,
                (key_ptr, key_len),
                (value_ptr, value_len),
                |m, k, v| m.add(k, v),
            )
        },
    );
    f.func(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Caller<'_, HostState>,
         map: u32,
         key_ptr: u32,
         key_len: u32,
         value_ptr: u32,
         value_len: u32| {
            set_value(
                &mut c,
                map,
                (key_ptr, key_len),
                (value_ptr, value_len),
                |m, k, v| m.replace(k, v),
            )
        },
    );
    f.func(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, HostState>, map: u32, key_ptr: u32, key_len: u32| {
            status_code((|| {
                let key = memory::read(&mut c, key_ptr, key_len)?;
                with_map(&mut c, map, |m| m.remove(&key))
            })())
        },
    );
    f.func(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Caller<'_, HostState>, map: u32, ptr: u32, size: u32| {
            status_code((|| {
                let bytes = memory::read(&mut c, ptr, size)?;
                let pairs = deserialize_map(&bytes).ok_or(Status::BadArgument)?;
                with_map(&mut c, map, |m| m.set_all(&pairs))
            })())
        },
    );
}

/// Reads a key and a value from the guest and applies `op` to the map `raw`.
fn set_value(
    c: &mut Caller<'_, HostState>,
    map: u32,
    (key_ptr, key_len): (u32, u32),
    (value_ptr, value_len): (u32, u32),
    op: fn(&mut dyn HeaderAccess, &[u8], &[u8]) -> HostResult,
) -> i32 {
    status_code((|| {
        let key = memory::read(c, key_ptr, key_len)?;
        let value = memory::read(c, value_ptr, value_len)?;
        with_map(c, map, |m| op(m, &key, &value))
    })())
}

/// Runs `f` on the map `raw` of the running HTTP context.
fn with_map<R>(
    c: &mut Caller<'_, HostState>,
    raw: u32,
    f: impl FnOnce(&mut dyn HeaderAccess) -> Result<R, Status>,
) -> Result<R, Status> {
    let map = MapType::from_raw(raw).ok_or(Status::BadArgument)?;
    match map {
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => {
            let metadata = c
                .data_mut()
                .grpc_metadata
                .as_mut()
                .ok_or(Status::NotFound)?;
            return f(&mut PairsMap(metadata));
        }
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers => {
            let response = c
                .data_mut()
                .call_response
                .as_mut()
                .ok_or(Status::NotFound)?;
            let pairs = if map == MapType::HttpCallResponseHeaders {
                &mut response.headers
            } else {
                &mut response.trailers
            };
            return f(&mut PairsMap(pairs));
        }
        _ => {}
    }
    let stream = c.data_mut().stream.as_mut().ok_or(Status::NotFound)?;
    match map {
        MapType::RequestHeaders => f(&mut RequestMap(stream)),
        MapType::ResponseHeaders => match stream.response.as_mut() {
            Some(response) => f(&mut ResponseMap(response)),
            None => Err(Status::NotFound),
        },
        MapType::RequestTrailers => match stream.request_trailers.as_mut() {
            Some(trailers) => f(&mut TrailerMap(trailers)),
            None => f(&mut NoMap),
        },
        MapType::ResponseTrailers => match stream.response_trailers.as_mut() {
            Some(trailers) => f(&mut TrailerMap(trailers)),
            None => f(&mut NoMap),
        },
        _ => f(&mut NoMap),
    }
}

/// One header map as the ABI sees it.
trait HeaderAccess {
    fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn add(&mut self, key: &[u8], value: &[u8]) -> HostResult;
    fn replace(&mut self, key: &[u8], value: &[u8]) -> HostResult;
    fn remove(&mut self, key: &[u8]) -> HostResult;
    fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> HostResult;
}

fn name(key: &[u8]) -> Result<HeaderName, Status> {
    HeaderName::from_bytes(key).map_err(|_| Status::BadArgument)
}

fn value(bytes: &[u8]) -> Result<HeaderValue, Status> {
    HeaderValue::from_bytes(bytes).map_err(|_| Status::BadArgument)
}

fn regular_pairs(
    headers: &http::HeaderMap,
    skip_host: bool,
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    headers
        .iter()
        .filter(move |(k, _)| !(skip_host && *k == HOST))
        .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
}

struct RequestMap<'a>(&'a mut HttpStream);

impl RequestMap<'_> {
    fn authority(&self) -> Option<String> {
        let parts = &self.0.request;
        parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
    }

    fn pseudo(&self, key: &[u8]) -> Option<Vec<u8>> {
        let parts = &self.0.request;
        match key {
            b":method" => Some(parts.method.as_str().as_bytes().to_vec()),
            b":path" => Some(
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .as_bytes()
                    .to_vec(),
            ),
            b":authority" => self.authority().map(String::into_bytes),
            b":scheme" => Some(parts.uri.scheme_str().unwrap_or("http").as_bytes().to_vec()),
            _ => None,
        }
    }

    fn set_pseudo(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        let parts = &mut self.0.request;
        let text = std::str::from_utf8(v).map_err(|_| Status::BadArgument)?;
        match key {
            b":method" => parts.method = Method::from_bytes(v).map_err(|_| Status::BadArgument)?,
            b":path" => {
                let mut uri = std::mem::take(&mut parts.uri).into_parts();
                uri.path_and_query = Some(text.parse().map_err(|_| Status::BadArgument)?);
                parts.uri = Uri::from_parts(uri).map_err(|_| Status::BadArgument)?;
            }
            b":authority" => {
                parts.headers.insert(HOST, value(v)?);
                if parts.uri.authority().is_some() {
                    let mut uri = std::mem::take(&mut parts.uri).into_parts();
                    uri.authority = Some(text.parse().map_err(|_| Status::BadArgument)?);
                    parts.uri = Uri::from_parts(uri).map_err(|_| Status::BadArgument)?;
                }
            }
            // The scheme follows the listener; a filter cannot change it.
            b":scheme" => {}
            _ => return Err(Status::BadArgument),
        }
        Ok(Status::Ok)
    }
}

const REQUEST_PSEUDO: [&[u8]; 4] = [b":method", b":path", b":authority", b":scheme"];

impl HeaderAccess for RequestMap<'_> {
    fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<_> = REQUEST_PSEUDO
            .iter()
            .filter_map(|k| self.pseudo(k).map(|v| (k.to_vec(), v)))
            .collect();
        out.extend(regular_pairs(&self.0.request.headers, true));
        out
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key.starts_with(b":") {
            return self.pseudo(key);
        }
        if key.eq_ignore_ascii_case(b"host") {
            return None;
        }
        let values: Vec<&[u8]> = self
            .0
            .request
            .headers
            .get_all(name(key).ok()?)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        (!values.is_empty()).then(|| values.join(&b","[..]))
    }

    fn add(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        if key.starts_with(b":") {
            return self.set_pseudo(key, v);
        }
        self.0.request.headers.append(name(key)?, value(v)?);
        Ok(Status::Ok)
    }

    fn replace(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        if key.starts_with(b":") {
            return self.set_pseudo(key, v);
        }
        self.0.request.headers.insert(name(key)?, value(v)?);
        Ok(Status::Ok)
    }

    fn remove(&mut self, key: &[u8]) -> HostResult {
        if !key.starts_with(b":") {
            self.0.request.headers.remove(name(key)?);
        }
        Ok(Status::Ok)
    }

    fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> HostResult {
        let host = self.0.request.headers.get(HOST).cloned();
        self.0.request.headers.clear();
        if let Some(host) = host {
            self.0.request.headers.insert(HOST, host);
        }
        for (k, v) in pairs {
            self.add(k, v)?;
        }
        Ok(Status::Ok)
    }
}

struct ResponseMap<'a>(&'a mut http::response::Parts);

impl HeaderAccess for ResponseMap<'_> {
    fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = vec![(
            b":status".to_vec(),
            self.0.status.as_str().as_bytes().to_vec(),
        )];
        out.extend(regular_pairs(&self.0.headers, false));
        out
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key == b":status" {
            return Some(self.0.status.as_str().as_bytes().to_vec());
        }
        let values: Vec<&[u8]> = self
            .0
            .headers
            .get_all(name(key).ok()?)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        (!values.is_empty()).then(|| values.join(&b","[..]))
    }

    fn add(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        if key == b":status" {
            return self.replace(key, v);
        }
        self.0.headers.append(name(key)?, value(v)?);
        Ok(Status::Ok)
    }

    fn replace(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        if key == b":status" {
            let code: u16 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Status::BadArgument)?;
            self.0.status = StatusCode::from_u16(code).map_err(|_| Status::BadArgument)?;
            return Ok(Status::Ok);
        }
        self.0.headers.insert(name(key)?, value(v)?);
        Ok(Status::Ok)
    }

    fn remove(&mut self, key: &[u8]) -> HostResult {
        if !key.starts_with(b":") {
            self.0.headers.remove(name(key)?);
        }
        Ok(Status::Ok)
    }

    fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> HostResult {
        self.0.headers.clear();
        for (k, v) in pairs {
            self.add(k, v)?;
        }
        Ok(Status::Ok)
    }
}

/// Trailers (no pseudo-headers).
struct TrailerMap<'a>(&'a mut http::HeaderMap);

impl HeaderAccess for TrailerMap<'_> {
    fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        regular_pairs(self.0, false).collect()
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let values: Vec<&[u8]> = self
            .0
            .get_all(name(key).ok()?)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        (!values.is_empty()).then(|| values.join(&b","[..]))
    }
    fn add(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        self.0.append(name(key)?, value(v)?);
        Ok(Status::Ok)
    }
    fn replace(&mut self, key: &[u8], v: &[u8]) -> HostResult {
        self.0.insert(name(key)?, value(v)?);
        Ok(Status::Ok)
    }
    fn remove(&mut self, key: &[u8]) -> HostResult {
        self.0.remove(name(key)?);
        Ok(Status::Ok)
    }
    fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> HostResult {
        self.0.clear();
        for (k, v) in pairs {
            self.add(k, v)?;
        }
        Ok(Status::Ok)
    }
}

/// A map held as a list of pairs (an http call's response).
struct PairsMap<'a>(&'a mut Vec<(Vec<u8>, Vec<u8>)>);

impl HeaderAccess for PairsMap<'_> {
    fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0.clone()
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let values: Vec<&[u8]> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
            .collect();
        (!values.is_empty()).then(|| values.join(&b","[..]))
    }
    fn add(&mut self, key: &[u8], value: &[u8]) -> HostResult {
        self.0.push((key.to_vec(), value.to_vec()));
        Ok(Status::Ok)
    }
    fn replace(&mut self, key: &[u8], value: &[u8]) -> HostResult {
        self.remove(key)?;
        self.add(key, value)
    }
    fn remove(&mut self, key: &[u8]) -> HostResult {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        Ok(Status::Ok)
    }
    fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> HostResult {
        *self.0 = pairs.to_vec();
        Ok(Status::Ok)
    }
}

/// Maps weft does not provide yet (trailers, gRPC metadata, http-call responses).
struct NoMap;

impl HeaderAccess for NoMap {
    fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
    fn get(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn add(&mut self, _: &[u8], _: &[u8]) -> HostResult {
        Err(Status::BadArgument)
    }
    fn replace(&mut self, _: &[u8], _: &[u8]) -> HostResult {
        Err(Status::BadArgument)
    }
    fn remove(&mut self, _: &[u8]) -> HostResult {
        Err(Status::BadArgument)
    }
    fn set_all(&mut self, _: &[(Vec<u8>, Vec<u8>)]) -> HostResult {
        Err(Status::BadArgument)
    }
}
