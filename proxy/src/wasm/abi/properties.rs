//! Properties: proxy_get_property, proxy_set_property. Paths are segments joined by NUL
//! (`request\0path`); values are encoded as Envoy does: strings as raw bytes, integers as
//! 8-byte little-endian, booleans as one byte, timestamps in nanoseconds since the epoch.
//! docs/abi-support.md lists the supported paths. `proxy_set_property` stores a value that
//! later `proxy_get_property` calls for the same path return during that request.

use std::time::UNIX_EPOCH;

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::Status;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, HostState>,
         path_ptr: u32,
         path_len: u32,
         value_ptr_out: u32,
         value_size_out: u32| {
            status_code((|| {
                let raw = memory::read(&mut c, path_ptr, path_len)?;
                let value = lookup(c.data(), &raw).ok_or(Status::NotFound)?;
                memory::return_bytes(&mut c, &value, value_ptr_out, value_size_out)?;
                Ok(Status::Ok)
            })())
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

fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn text(s: impl AsRef<str>) -> Vec<u8> {
    s.as_ref().as_bytes().to_vec()
}

/// The value of a property, or `None` when weft has no such property (or none here).
pub fn lookup(state: &HostState, raw_path: &[u8]) -> Option<Vec<u8>> {
    let plugin = &state.plugin;
    let path = String::from_utf8_lossy(raw_path).replace('\0', ".");
    let plugin_value = match path.as_str() {
        "plugin_name" => Some(text(&plugin.name)),
        "plugin_root_id" => Some(text(&plugin.root_id)),
        "plugin_vm_id" => Some(text(&plugin.vm_id)),
        "node.id" => Some(text(&plugin.node.id)),
        "node.cluster" => Some(text(&plugin.node.cluster)),
        "node.metadata" => Some(text(&plugin.node.metadata_json)),
        other => other.strip_prefix("node.metadata.").and_then(|key| {
            plugin
                .node
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        }),
    };
    if plugin_value.is_some() {
        return plugin_value;
    }
    let stream = state.stream.as_ref()?;
    if let Some((_, v)) = stream.filter_state.iter().find(|(k, _)| k == raw_path) {
        return Some(v.clone());
    }
    let request = &stream.request;
    let info = &stream.info;
    let header = |name: &str| request.headers.get(name).map(|v| v.as_bytes().to_vec());
    Some(match path.as_str() {
        "request.path" => text(request.uri.path_and_query().map_or("/", |p| p.as_str())),
        "request.url_path" => text(request.uri.path()),
        "request.host" => request
            .uri
            .authority()
            .map(|a| text(a.as_str()))
            .or_else(|| header("host"))?,
        "request.scheme" => text(request.uri.scheme_str().unwrap_or(if info.tls.is_some() {
            "https"
        } else {
            "http"
        })),
        "request.method" => text(request.method.as_str()),
        "request.query" => text(request.uri.query().unwrap_or("")),
        "request.referer" => header("referer")?,
        "request.useragent" => header("user-agent")?,
        "request.id" => header("x-request-id")?,
        "request.protocol" => text(format!("{:?}", info.protocol)),
        "request.time" => int(info.start.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i64),
        "response.code" => int(i64::from(stream.response.as_ref()?.status.as_u16())),
        "source.address" => text(info.peer.to_string()),
        "source.port" => int(i64::from(info.peer.port())),
        "destination.address" => text(info.local?.to_string()),
        "destination.port" => int(i64::from(info.local?.port())),
        "connection.mtls" => vec![u8::from(
            info.tls.as_ref().is_some_and(|t| t.peer.is_some()),
        )],
        "connection.subject_peer_certificate" => text(&info.tls.as_ref()?.peer.as_ref()?.subject),
        "connection.uri_san_peer_certificate" => {
            text(info.tls.as_ref()?.peer.as_ref()?.uri_sans.first()?)
        }
        "connection.dns_san_peer_certificate" => {
            text(info.tls.as_ref()?.peer.as_ref()?.dns_sans.first()?)
        }
        "connection.tls_version" => text(info.tls.as_ref()?.version),
        "connection.requested_server_name" => text(info.tls.as_ref()?.sni.as_deref()?),
        "connection.id" => int(info.connection_id as i64),
        "upstream.address" => text(stream.upstream?.to_string()),
        "upstream.port" => int(i64::from(stream.upstream?.port())),
        "listener_name" | "xds.listener_name" => text(&*info.listener),
        "route_name" | "xds.route_name" => text(stream.route.as_deref()?),
        "cluster_name" | "xds.cluster_name" => text(stream.cluster.as_deref()?),
        _ => return None,
    })
}
