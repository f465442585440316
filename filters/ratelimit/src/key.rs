//! The key value a rule counts a request under.

/// The IP of `ip:port`, `[v6]:port` or a bare address (Weft gives `source.address` as
/// `ip:port`; other hosts may give the address alone).
pub fn client_ip(address: &str) -> &str {
    &address[client_ip_range(address)]
}

/// [`client_ip`] taken out of an owned address, reusing its allocation.
pub fn into_client_ip(mut address: String) -> String {
    let range = client_ip_range(&address);
    address.truncate(range.end);
    address.drain(..range.start);
    address
}

/// Where the IP is in `address`.
fn client_ip_range(address: &str) -> std::ops::Range<usize> {
    if let Some(rest) = address.strip_prefix('[') {
        let end = rest.find(']').unwrap_or(rest.len());
        return 1..1 + end;
    }
    match address.rsplit_once(':') {
        // One colon: IPv4 (or a name) with a port. More: a bare IPv6 address.
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            0..ip.len()
        }
        _ => 0..address.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_addresses_give_the_same_ip() {
        for a in [
            "10.0.0.1:5000",
            "[::1]:5000",
            "[::1",
            "::1",
            "host",
            "10.0.0.1:x",
            "",
        ] {
            assert_eq!(into_client_ip(a.to_string()), client_ip(a), "{a}");
        }
        assert_eq!(into_client_ip("[fe80::1]:443".into()), "fe80::1");
    }
}
