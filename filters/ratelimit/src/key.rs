//! The key value a rule counts a request under.

/// The IP of `ip:port`, `[v6]:port` or a bare address (Weft gives `source.address` as
/// `ip:port`; other hosts may give the address alone).
pub fn client_ip(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match address.rsplit_once(':') {
        // One colon: IPv4 (or a name) with a port. More: a bare IPv6 address.
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}
