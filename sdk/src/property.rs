//! Properties: what the host knows about the request, the connection, the plugin and the
//! node (`request.path`, `source.address`, `plugin_name`, ...; docs/filter-guide.md lists
//! the ones Weft has), and values a filter sets for later filters.
//!
//! Paths are written with dots, as in Envoy's docs: `"source.address"` is the path
//! `["source", "address"]`. Values are bytes encoded as Envoy does (strings raw, integers
//! 8-byte little-endian); [`string`] and [`int`] decode them.

use proxy_wasm::hostcalls;

/// The property a filter sets in the request-headers phase to choose the cluster the
/// request goes to (Weft's routing contract).
pub const CLUSTER: &str = "weft.cluster";

fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// The raw value of a property, `None` when the host has none.
pub fn bytes(path: &str) -> Option<Vec<u8>> {
    hostcalls::get_property(segments(path)).ok().flatten()
}

/// A property as UTF-8 text (`None` when missing or not UTF-8).
pub fn string(path: &str) -> Option<String> {
    bytes(path).and_then(|b| String::from_utf8(b).ok())
}

/// An integer property: 8 bytes little-endian as Envoy and Weft give them, or decimal
/// text as some hosts (Kong) do.
pub fn int(path: &str) -> Option<i64> {
    decode_int(&bytes(path)?)
}

fn decode_int(value: &[u8]) -> Option<i64> {
    match <[u8; 8]>::try_from(value) {
        Ok(raw) => Some(i64::from_le_bytes(raw)),
        Err(_) => std::str::from_utf8(value).ok()?.trim().parse().ok(),
    }
}

/// Sets a property for the rest of this request (later filters and phases read it).
pub fn set(path: &str, value: &[u8]) {
    // The SDK panics on any status but Ok, so there is nothing to hand back.
    let _ = hostcalls::set_property(segments(path), Some(value));
}

/// Sends this request to the cluster `name` (Weft's routing contract: call it in the
/// request-headers phase; a name that is not a cluster answers 500).
pub fn set_cluster(name: &str) {
    set(CLUSTER, name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_decode_from_envoy_bytes_and_from_text() {
        assert_eq!(decode_int(&8080i64.to_le_bytes()), Some(8080));
        assert_eq!(decode_int(&(-1i64).to_le_bytes()), Some(-1));
        assert_eq!(decode_int(b"443"), Some(443));
        assert_eq!(decode_int(b"4x3"), None);
        assert_eq!(decode_int(b""), None);
    }

    #[test]
    fn dotted_paths_split_into_segments() {
        assert_eq!(segments("source.address"), ["source", "address"]);
        assert_eq!(segments("plugin_name"), ["plugin_name"]);
    }
}
