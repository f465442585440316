//! A cluster's endpoints as addresses: `ip:port` as written, `hostname:port` expanded to
//! every address of the hostname in its `dns_lookup_family` (sorted, so that two lookups
//! giving the same set compare equal). Used when the config is validated, and again by the
//! DNS refresher (`cluster::dns`) to see whether the addresses changed.

use std::net::{SocketAddr, ToSocketAddrs};

use super::raw::{ClusterConfig, DnsLookupFamily, EndpointConfig};

/// Looks a `host:port` up; the system resolver unless a test gives its own.
pub type Lookup<'a> = &'a dyn Fn(&str) -> std::io::Result<Vec<SocketAddr>>;

/// The system resolver (getaddrinfo: /etc/hosts, then DNS).
pub fn system_lookup(text: &str) -> std::io::Result<Vec<SocketAddr>> {
    text.to_socket_addrs().map(Iterator::collect)
}

/// A cluster's endpoints resolved: the addresses with their weights, and whether any was a
/// hostname.
#[derive(Debug, Default, PartialEq)]
pub struct Endpoints {
    pub addresses: Vec<SocketAddr>,
    pub weights: Vec<u32>,
    /// For each address, the index of the endpoint entry it comes from.
    pub written: Vec<usize>,
    pub by_name: bool,
}

/// Resolves every endpoint of `raw`. Errors are (index of the endpoint, message).
pub fn cluster_endpoints(
    raw: &ClusterConfig,
    lookup: Lookup<'_>,
) -> Result<Endpoints, Vec<(usize, String)>> {
    let mut out = Endpoints::default();
    let mut errors = Vec::new();
    for (i, endpoint) in raw.endpoints.iter().enumerate() {
        let (text, weight) = match endpoint {
            EndpointConfig::Address(a) => (a, 1),
            EndpointConfig::Weighted { address, weight } => (address, *weight),
        };
        match endpoint_addresses(text, raw.dns_lookup_family, lookup) {
            Ok((addresses, by_name)) => {
                out.by_name |= by_name;
                out.weights.extend(addresses.iter().map(|_| weight.max(1)));
                out.written.extend(addresses.iter().map(|_| i));
                out.addresses.extend(addresses);
            }
            Err(message) => errors.push((i, message)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The addresses of `ip:port` (itself) or `host:port` (what `lookup` finds, in its order),
/// and whether it was a hostname. Listener, admin and endpoint addresses all go through it.
pub fn addresses(text: &str, lookup: Lookup<'_>) -> Result<(Vec<SocketAddr>, bool), String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((vec![addr], false));
    }
    if !text.contains(':') {
        return Err(format!("{text:?} has no port: write host:port"));
    }
    let found = lookup(text).map_err(|e| format!("cannot resolve {text:?}: {e}"))?;
    Ok((found, true))
}

/// The addresses of one endpoint in `family`, and whether it was a hostname.
fn endpoint_addresses(
    text: &str,
    family: DnsLookupFamily,
    lookup: Lookup<'_>,
) -> Result<(Vec<SocketAddr>, bool), String> {
    let (found, by_name) = addresses(text, lookup)?;
    if !by_name {
        return Ok((found, false));
    }
    let mut addresses: Vec<SocketAddr> = match family {
        DnsLookupFamily::All => found,
        DnsLookupFamily::V4Only => found.into_iter().filter(SocketAddr::is_ipv4).collect(),
        DnsLookupFamily::V6Only => found.into_iter().filter(SocketAddr::is_ipv6).collect(),
        DnsLookupFamily::V4Preferred => {
            let v4: Vec<_> = found.iter().copied().filter(SocketAddr::is_ipv4).collect();
            if v4.is_empty() { found } else { v4 }
        }
    };
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(format!(
            "{text:?} resolved to no address of the dns_lookup_family"
        ));
    }
    Ok((addresses, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> ClusterConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    fn fake(text: &str) -> std::io::Result<Vec<SocketAddr>> {
        match text {
            "svc:80" => Ok(vec![
                "10.0.0.2:80".parse().unwrap(),
                "[fd00::1]:80".parse().unwrap(),
                "10.0.0.1:80".parse().unwrap(),
            ]),
            "v6:80" => Ok(vec!["[fd00::2]:80".parse().unwrap()]),
            _ => Err(std::io::Error::other("no such host")),
        }
    }

    #[test]
    fn hostnames_expand_to_their_addresses_by_family() {
        let raw = cluster(
            "{name: c, endpoints: [\"svc:80\", {address: \"v6:80\", weight: 3}, \"127.0.0.1:9\"]}",
        );
        let resolved = cluster_endpoints(&raw, &fake).unwrap();
        let text: Vec<String> = resolved.addresses.iter().map(|a| a.to_string()).collect();
        // v4_preferred: svc's two IPv4 addresses, sorted; v6 has only IPv6.
        assert_eq!(
            text,
            ["10.0.0.1:80", "10.0.0.2:80", "[fd00::2]:80", "127.0.0.1:9"]
        );
        assert_eq!(resolved.weights, [1, 1, 3, 1]);
        assert_eq!(resolved.written, [0, 0, 1, 2]);
        assert!(resolved.by_name);

        let raw = cluster("{name: c, dns_lookup_family: all, endpoints: [\"svc:80\"]}");
        assert_eq!(cluster_endpoints(&raw, &fake).unwrap().addresses.len(), 3);
        let raw = cluster(
            "{name: c, dns_lookup_family: v4_only, endpoints: [\"v6:80\", \"nope:1\", \"x\"]}",
        );
        let errors = cluster_endpoints(&raw, &fake).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].1.contains("no address of the dns_lookup_family"),
            "{errors:?}"
        );
        assert!(
            errors[1].1.contains("cannot resolve \"nope:1\""),
            "{errors:?}"
        );
        assert!(errors[2].1.contains("has no port"), "{errors:?}");

        let raw = cluster("{name: c, endpoints: [\"127.0.0.1:9\"]}");
        assert!(!cluster_endpoints(&raw, &fake).unwrap().by_name);
    }
}
