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
            status_code(memory::return_built(
                &mut c,
                (key_ptr, key_len),
                (ptr_out, size_out),
                |key, state, value| map_of(state, map, |m| Ok(m.get(key, value))),
            ))
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
        memory::with_memory(c, |data, state| {
            let key = memory::slice(data, key_ptr, key_len)?;
            let value = memory::slice(data, value_ptr, value_len)?;
            map_of(state, map, |m| op(m, key, value))
        })?
    })())
}

/// Runs `f` on the map `raw` of the running HTTP context.
fn with_map<R>(
    c: &mut Caller<'_, HostState>,
    raw: u32,
    f: impl FnOnce(&mut dyn HeaderAccess) -> Result<R, Status>,
) -> Result<R, Status> {
    map_of(c.data_mut(), raw, f)
}

/// Runs `f` on the map `raw` of the running HTTP context in `state`.
fn map_of<R>(
    state: &mut HostState,
    raw: u32,
    f: impl FnOnce(&mut dyn HeaderAccess) -> Result<R, Status>,
) -> Result<R, Status> {
    let map = MapType::from_raw(raw).ok_or(Status::BadArgument)?;
    match map {
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => {
            let metadata = state.grpc_metadata.as_mut().ok_or(Status::NotFound)?;
            return f(&mut PairsMap(metadata));
        }
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers => {
            let response = state.call_response.as_mut().ok_or(Status::NotFound)?;
            let pairs = if map == MapType::HttpCallResponseHeaders {
                &mut response.headers
            } else {
                &mut response.trailers
            };
            return f(&mut PairsMap(pairs));
        }
        _ => {}
    }
    let stream = state.stream.as_mut().ok_or(Status::NotFound)?;
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
    /// Appends the value of `key` to `out` (several values joined by `,`); `false` when
    /// the map has no such header.
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> bool;
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

/// Appends `values` joined by `,` to `out`; `false` when there is none.
fn join_into<'a>(values: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) -> bool {
    let mut any = false;
    for v in values {
        if any {
            out.push(b',');
        }
        out.extend_from_slice(v);
        any = true;
    }
    any
}

/// The values of `key` in `headers`, looked up without allocating a `HeaderName` (a key
/// that is no valid name has none).
fn header_values<'a>(
    headers: &'a http::HeaderMap,
    key: &[u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    std::str::from_utf8(key)
        .ok()
        .map(|k| headers.get_all(k).iter().map(HeaderValue::as_bytes))
        .into_iter()
        .flatten()
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
    /// The pseudo-header `key` (`:authority` is the URI's authority, else the `Host`
    /// header); `None` when there is none.
    fn pseudo(&self, key: &[u8]) -> Option<&[u8]> {
        let parts = &self.0.request;
        Some(match key {
            b":method" => parts.method.as_str().as_bytes(),
            b":path" => parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes(),
            b":authority" => match parts.uri.authority() {
                Some(a) => a.as_str().as_bytes(),
                None => parts
                    .headers
                    .get(HOST)
                    .filter(|h| h.to_str().is_ok())?
                    .as_bytes(),
            },
            b":scheme" => parts.uri.scheme_str().unwrap_or("http").as_bytes(),
            _ => return None,
        })
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
            .filter_map(|k| self.pseudo(k).map(|v| (k.to_vec(), v.to_vec())))
            .collect();
        out.extend(regular_pairs(&self.0.request.headers, true));
        out
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        if key.starts_with(b":") {
            return self.pseudo(key).map(|v| out.extend_from_slice(v)).is_some();
        }
        if key.eq_ignore_ascii_case(b"host") {
            return false;
        }
        join_into(header_values(&self.0.request.headers, key), out)
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

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        if key == b":status" {
            out.extend_from_slice(self.0.status.as_str().as_bytes());
            return true;
        }
        join_into(header_values(&self.0.headers, key), out)
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
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        join_into(header_values(self.0, key), out)
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
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        let values = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice());
        join_into(values, out)
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
    fn get(&self, _: &[u8], _: &mut Vec<u8>) -> bool {
        false
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::wasm::state::StreamInfo;

    fn stream(request: http::Request<()>) -> HttpStream {
        let info = StreamInfo {
            listener: Arc::from("main"),
            peer: "127.0.0.1:1000".parse().unwrap(),
            local: None,
            start: std::time::SystemTime::now(),
            protocol: http::Version::HTTP_11,
            request_id: None,
            connection_id: 1,
            tls: None,
        };
        HttpStream::new(request.into_parts().0, info)
    }

    fn get(map: &dyn HeaderAccess, key: &[u8]) -> Option<Vec<u8>> {
        let mut out = b"left over".to_vec();
        out.clear();
        map.get(key, &mut out).then_some(out)
    }

    #[test]
    fn values_are_joined_and_pseudo_headers_come_from_the_head() {
        let mut s = stream(
            http::Request::get("/a?b=1")
                .header("host", "example.com")
                .header("x-many", "1")
                .header("X-Many", "2")
                .body(())
                .unwrap(),
        );
        let map = RequestMap(&mut s);
        assert_eq!(get(&map, b"x-many").as_deref(), Some(&b"1,2"[..]));
        assert_eq!(get(&map, b"X-MANY").as_deref(), Some(&b"1,2"[..]));
        assert_eq!(get(&map, b":path").as_deref(), Some(&b"/a?b=1"[..]));
        assert_eq!(
            get(&map, b":authority").as_deref(),
            Some(&b"example.com"[..])
        );
        assert_eq!(get(&map, b":method").as_deref(), Some(&b"GET"[..]));
        // `Host` is only seen as `:authority`.
        assert_eq!(get(&map, b"host"), None);
        assert_eq!(get(&map, b"x-missing"), None);
        assert_eq!(get(&map, b"bad name"), None);
        assert_eq!(get(&map, b":nope"), None);
    }

    #[test]
    fn response_status_and_pairs_maps() {
        let mut response = http::Response::builder()
            .status(404)
            .header("a", "x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let map = ResponseMap(&mut response);
        assert_eq!(get(&map, b":status").as_deref(), Some(&b"404"[..]));
        assert_eq!(get(&map, b"a").as_deref(), Some(&b"x"[..]));
        let mut pairs = vec![
            (b"K".to_vec(), b"1".to_vec()),
            (b"k".to_vec(), b"2".to_vec()),
        ];
        let map = PairsMap(&mut pairs);
        assert_eq!(get(&map, b"k").as_deref(), Some(&b"1,2"[..]));
        assert_eq!(get(&NoMap, b"k"), None);
    }
}
