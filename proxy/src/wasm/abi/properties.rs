//! Properties: proxy_get_property, proxy_set_property. Paths are segments joined by NUL
//! (`request\0path`); values are encoded as Envoy does: strings as raw bytes, integers as
//! 8-byte little-endian, booleans as one byte, timestamps in nanoseconds since the epoch.
//! docs/abi-support.md lists the supported paths. `proxy_set_property` stores a value that
//! later `proxy_get_property` calls for the same path return during that request.

use std::io::Write as _;
use std::time::UNIX_EPOCH;

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::Status;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::{HostState, HttpStream};

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, HostState>,
         path_ptr: u32,
         path_len: u32,
         value_ptr_out: u32,
         value_size_out: u32| {
            status_code(memory::return_built(
                &mut c,
                (path_ptr, path_len),
                (value_ptr_out, value_size_out),
                |raw, state, value| Ok(lookup(state, raw, value)),
            ))
        },
    );
    f.func(
        "env",
        "proxy_set_property",
        |mut c: Caller<'_, HostState>,
         path_ptr: u32,
         path_len: u32,
         value_ptr: u32,
         value_len: u32| {
            status_code((|| {
                let path = memory::read(&mut c, path_ptr, path_len)?;
                let value = memory::read(&mut c, value_ptr, value_len)?;
                let stream = c.data_mut().stream.as_mut().ok_or(Status::NotFound)?;
                match stream.filter_state.iter_mut().find(|(k, _)| *k == path) {
                    Some((_, v)) => *v = value,
                    None => stream.filter_state.push((path, value)),
                }
                Ok(Status::Ok)
            })())
        },
    );
}

/// The longest path written with dots on the stack; a longer one (only a long
/// `node.metadata.KEY` can be) is copied to the heap.
const SHORT_PATH: usize = 128;

/// Appends the value of a property to `out`; `false` when weft has no such property (or
/// none here). `raw_path` is the path as the guest gives it, segments joined by NUL.
pub fn lookup(state: &HostState, raw_path: &[u8], out: &mut Vec<u8>) -> bool {
    let mut short = [0u8; SHORT_PATH];
    let long;
    let dotted: &[u8] = if raw_path.len() <= SHORT_PATH {
        let buf = &mut short[..raw_path.len()];
        for (d, &b) in buf.iter_mut().zip(raw_path) {
            *d = if b == 0 { b'.' } else { b };
        }
        buf
    } else {
        long = raw_path
            .iter()
            .map(|&b| if b == 0 { b'.' } else { b })
            .collect::<Vec<u8>>();
        &long
    };
    // A path that is not UTF-8 names no property of weft's, only what a filter set.
    let path = std::str::from_utf8(dotted).unwrap_or("");
    if plugin_value(state, path, out) {
        return true;
    }
    let Some(stream) = state.stream.as_ref() else {
        return false;
    };
    if let Some((_, v)) = stream.filter_state.iter().find(|(k, _)| k == raw_path) {
        out.extend_from_slice(v);
        return true;
    }
    stream_value(stream, path, out).is_some()
}

/// What the plugin and the node say about themselves.
fn plugin_value(state: &HostState, path: &str, out: &mut Vec<u8>) -> bool {
    let plugin = &state.plugin;
    let text = match path {
        "plugin_name" => plugin.name.as_bytes(),
        "plugin_root_id" => plugin.root_id.as_bytes(),
        "plugin_vm_id" => plugin.vm_id.as_bytes(),
        "node.id" => plugin.node.id.as_bytes(),
        "node.cluster" => plugin.node.cluster.as_bytes(),
        "node.metadata" => plugin.node.metadata_json.as_bytes(),
        other => {
            let Some(value) = other.strip_prefix("node.metadata.").and_then(|key| {
                plugin
                    .node
                    .metadata
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_slice())
            }) else {
                return false;
            };
            value
        }
    };
    out.extend_from_slice(text);
    true
}

/// What the request, its connection and its route say; `None` when there is no such
/// property or no value for it here.
fn stream_value(stream: &HttpStream, path: &str, out: &mut Vec<u8>) -> Option<()> {
    let request = &stream.request;
    let info = &stream.info;
    let text = |out: &mut Vec<u8>, s: &str| out.extend_from_slice(s.as_bytes());
    let int = |out: &mut Vec<u8>, v: i64| out.extend_from_slice(&v.to_le_bytes());
    // Formatting into a Vec cannot fail.
    let display = |out: &mut Vec<u8>, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{v}");
    };
    let header = |name: &str| request.headers.get(name).map(|v| v.as_bytes());
    match path {
        "request.path" => text(
            out,
            request.uri.path_and_query().map_or("/", |p| p.as_str()),
        ),
        "request.url_path" => text(out, request.uri.path()),
        "request.host" => out.extend_from_slice(
            request
                .uri
                .authority()
                .map(|a| a.as_str().as_bytes())
                .or_else(|| header("host"))?,
        ),
        "request.scheme" => text(
            out,
            request
                .uri
                .scheme_str()
                .unwrap_or(if info.tls.is_some() { "https" } else { "http" }),
        ),
        "request.method" => text(out, request.method.as_str()),
        "request.query" => text(out, request.uri.query().unwrap_or("")),
        "request.referer" => out.extend_from_slice(header("referer")?),
        "request.useragent" => out.extend_from_slice(header("user-agent")?),
        "request.id" => out.extend_from_slice(header("x-request-id")?),
        "request.protocol" => display(out, &format_args!("{:?}", info.protocol)),
        "request.time" => int(
            out,
            info.start.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i64,
        ),
        "response.code" => int(out, i64::from(stream.response.as_ref()?.status.as_u16())),
        "source.address" => display(out, &info.peer),
        "source.port" => int(out, i64::from(info.peer.port())),
        "destination.address" => display(out, &info.local?),
        "destination.port" => int(out, i64::from(info.local?.port())),
        "connection.mtls" => out.push(u8::from(
            info.tls.as_ref().is_some_and(|t| t.peer.is_some()),
        )),
        "connection.subject_peer_certificate" => {
            text(out, &info.tls.as_ref()?.peer.as_ref()?.subject)
        }
        "connection.uri_san_peer_certificate" => {
            text(out, info.tls.as_ref()?.peer.as_ref()?.uri_sans.first()?)
        }
        "connection.dns_san_peer_certificate" => {
            text(out, info.tls.as_ref()?.peer.as_ref()?.dns_sans.first()?)
        }
        "connection.tls_version" => text(out, info.tls.as_ref()?.version),
        "connection.requested_server_name" => text(out, info.tls.as_ref()?.sni.as_deref()?),
        "connection.id" => int(out, info.connection_id as i64),
        "upstream.address" => display(out, &stream.upstream?),
        "upstream.port" => int(out, i64::from(stream.upstream?.port())),
        "listener_name" | "xds.listener_name" => text(out, &info.listener),
        "route_name" | "xds.route_name" => text(out, stream.route.as_deref()?),
        "cluster_name" | "xds.cluster_name" => text(out, stream.cluster.as_deref()?),
        _ => return None,
    }
    Some(())
}
