//! DNS refresh: a cluster endpoint written as `hostname:port` stands for every address the
//! hostname resolves to (see `config::resolve`). Every `dns_refresh_rate` the hostnames of
//! each such cluster are looked up again; when the set of addresses differs from the one
//! serving, the config is reloaded (the reload resolves them again and rebuilds the
//! clusters). A failed lookup keeps the addresses serving, as Envoy does, and is logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Reloader;
use crate::config::raw::ClusterConfig;
use crate::config::resolve::{self, Lookup};

/// How often the refresher looks at the config when no cluster has hostnames (a reload
/// may add one).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What a new lookup of a cluster's hostnames says.
#[derive(Debug, PartialEq)]
enum Answer {
    Same,
    Changed(Vec<SocketAddr>),
    Failed(String),
}

fn check(raw: &ClusterConfig, serving: &[SocketAddr], lookup: Lookup<'_>) -> Answer {
    match resolve::cluster_endpoints(raw, lookup) {
        Ok(resolved) if resolved.addresses == serving => Answer::Same,
        Ok(resolved) => Answer::Changed(resolved.addresses),
        Err(errors) => Answer::Failed(
            errors
                .into_iter()
                .map(|(i, message)| format!("endpoints[{i}]: {message}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// Starts the refresher on the current runtime; it runs for the life of the process.
pub fn spawn(reloader: Arc<Reloader>) {
    tokio::spawn(run(reloader));
}

async fn run(reloader: Arc<Reloader>) {
    // When each cluster (by name) is next due.
    let mut due: HashMap<String, Instant> = HashMap::new();
    loop {
        let snapshot = reloader.shared.snapshot();
        let config = &snapshot.config;
        let now = Instant::now();
        let mut next = now + IDLE_CHECK;
        let mut changed = Vec::new();
        for (cluster, raw) in config.clusters.iter().zip(&config.raw.clusters) {
            let Some(rate) = cluster.dns_refresh else {
                continue;
            };
            let at = *due.entry(cluster.name.clone()).or_insert(now + rate);
            if at > now {
                next = next.min(at);
                continue;
            }
            let (raw, serving) = (raw.clone(), cluster.endpoints.clone());
            let answer =
                tokio::task::spawn_blocking(move || check(&raw, &serving, &resolve::system_lookup))
                    .await
                    .unwrap_or_else(|join| Answer::Failed(join.to_string()));
            match answer {
                Answer::Same => {}
                Answer::Changed(addresses) => {
                    tracing::info!(cluster = %cluster.name, ?addresses, "DNS answer changed");
                    changed.push(cluster.name.clone());
                }
                Answer::Failed(error) => {
                    tracing::warn!(cluster = %cluster.name, %error, "DNS refresh failed; keeping the addresses serving");
                }
            }
            let again = Instant::now() + rate;
            due.insert(cluster.name.clone(), again);
            next = next.min(again);
        }
        due.retain(|name, _| config.clusters.iter().any(|c| &c.name == name));
        drop(snapshot);
        if !changed.is_empty()
            && let Err(errors) = reloader.reload("DNS change").await
        {
            tracing::warn!(clusters = ?changed, %errors, "reload after a DNS change failed");
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_different_set_of_addresses_is_a_change() {
        let raw: ClusterConfig =
            serde_norway::from_str("{name: c, endpoints: [\"svc:80\", \"127.0.0.1:9\"]}").unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let serving = [
            addr("10.0.0.1:80"),
            addr("10.0.0.2:80"),
            addr("127.0.0.1:9"),
        ];
        // The same addresses in another order: no change.
        let same = |_: &str| Ok(vec![addr("10.0.0.2:80"), addr("10.0.0.1:80")]);
        assert_eq!(check(&raw, &serving, &same), Answer::Same);
        let moved = |_: &str| Ok(vec![addr("10.0.0.3:80")]);
        assert_eq!(
            check(&raw, &serving, &moved),
            Answer::Changed(vec![addr("10.0.0.3:80"), addr("127.0.0.1:9")])
        );
        let down = |_: &str| Err(std::io::Error::other("SERVFAIL"));
        match check(&raw, &serving, &down) {
            Answer::Failed(error) => assert!(
                error.contains("endpoints[0]: cannot resolve \"svc:80\": SERVFAIL"),
                "{error}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
