//! Refused configs: each error names the field, in the log line `on_configure` leaves.

use weft_sdk::testing::Host;

/// Configures a fresh host with `config`, expects a refusal, and returns the error lines.
fn refused(config: &str) -> String {
    let mut host = Host::new(crate::register);
    assert!(!host.configure(config), "accepted: {config}");
    let lines: Vec<String> = host.logs().into_iter().map(|l| l.message).collect();
    lines.join("\n")
}

#[test]
fn errors_name_the_field() {
    for (config, expected) in [
        (
            r#"{"routes": [{"match": {"path": {"prefx": "/a"}}, "cluster": "a"}]}"#,
            "config: routes[0].match.path: unknown variant `prefx`",
        ),
        (
            r#"{"routes": [{"cluster": "a", "clusters": 1}]}"#,
            "config: routes[0].clusters: unknown field `clusters`",
        ),
        (
            r#"{"routes": [{"cluster": "a"}, {"match": {}}]}"#,
            "config: routes[1]: exactly one of cluster, weighted_clusters, redirect, direct_response is needed",
        ),
        (
            r#"{"routes": [{"cluster": "a", "direct_response": {"status": 200}}]}"#,
            "config: routes[0]: exactly one of",
        ),
        (
            r#"{"routes": [{"weighted_clusters": [{"cluster": "a", "weight": 0}, {"cluster": "b", "weight": 0}]}]}"#,
            "config: routes[0].weighted_clusters: the weights must sum to more than 0",
        ),
        (
            r#"{"routes": [{"weighted_clusters": []}]}"#,
            "config: routes[0].weighted_clusters: at least one cluster is needed",
        ),
        (
            r#"{"routes": [{"weighted_clusters": [{"cluster": "a", "weight": -1}]}]}"#,
            "config: routes[0].weighted_clusters[0].weight: invalid value: integer `-1`",
        ),
        (
            r#"{"routes": [{"match": {"path": {"regex": "/users/[0-9+"}}, "cluster": "a"}]}"#,
            "config: routes[0].match.path.regex: ",
        ),
        (
            r#"{"routes": [{"match": {"headers": [{"name": "x", "regex": "("}]}, "cluster": "a"}]}"#,
            "config: routes[0].match.headers[0].regex: ",
        ),
        (
            r#"{"routes": [{"match": {"headers": [{"name": "x", "exact": "a", "present": true}]}, "cluster": "a"}]}"#,
            "config: routes[0].match.headers[0]: exactly one of exact, prefix, regex, present is needed",
        ),
        (
            r#"{"routes": [{"match": {"headers": [{"name": "bad name", "present": true}]}, "cluster": "a"}]}"#,
            "config: routes[0].match.headers[0].name: \"bad name\" is not a header name",
        ),
        (
            r#"{"routes": [{"match": {"query": [{"name": "q"}]}, "cluster": "a"}]}"#,
            "config: routes[0].match.query[0]: exactly one of",
        ),
        (
            r#"{"routes": [{"match": {"methods": ["GE T"]}, "cluster": "a"}]}"#,
            "config: routes[0].match.methods[0]: \"GE T\" is not a method",
        ),
        (
            r#"{"routes": [{"match": {"path": {"exact": "/a"}}, "cluster": "a", "prefix_rewrite": "/b"}]}"#,
            "config: routes[0].prefix_rewrite: needs a prefix path match",
        ),
        (
            r#"{"routes": [{"match": {"path": {"prefix": "/a"}}, "cluster": "a", "prefix_rewrite": "b"}]}"#,
            "config: routes[0].prefix_rewrite: \"b\" is not a path",
        ),
        (
            r#"{"routes": [{"match": {"path": {"prefix": "a"}}, "cluster": "a"}]}"#,
            "config: routes[0].match.path.prefix: \"a\" is not a path",
        ),
        (
            r#"{"routes": [{"direct_response": {"status": 200}, "host_rewrite": "x"}]}"#,
            "config: routes[0].host_rewrite: only goes with cluster or weighted_clusters",
        ),
        (
            r#"{"routes": [{"cluster": "a", "host_rewrite": "a/b"}]}"#,
            "config: routes[0].host_rewrite: \"a/b\" is not a host[:port]",
        ),
        (
            r#"{"routes": [{"cluster": "a", "sticky": {"cookie": "s"}}]}"#,
            "config: routes[0].sticky: only goes with weighted_clusters",
        ),
        (
            r#"{"routes": [{"weighted_clusters": [{"cluster": "a", "weight": 1}], "sticky": {"header": "a b"}}]}"#,
            "config: routes[0].sticky: not a cookie or header name",
        ),
        (
            r#"{"routes": [{"cluster": ""}]}"#,
            "config: routes[0].cluster: a cluster name is needed",
        ),
        (
            r#"{"routes": [{"redirect": {"status": 200}}]}"#,
            "config: routes[0].redirect.status: 200 is not a redirect status",
        ),
        (
            r#"{"routes": [{"redirect": {"scheme": "ftp"}}]}"#,
            "config: routes[0].redirect.scheme: \"ftp\": http or https",
        ),
        (
            r#"{"routes": [{"redirect": {"path": "/a", "prefix_rewrite": "/b"}}]}"#,
            "config: routes[0].redirect: path and prefix_rewrite exclude each other",
        ),
        (
            r#"{"routes": [{"redirect": {"prefix_rewrite": "/b"}}]}"#,
            "config: routes[0].redirect.prefix_rewrite: needs a prefix path match",
        ),
        (
            r#"{"routes": [{"direct_response": {"status": 99}}]}"#,
            "config: routes[0].direct_response.status: 99 is not a final HTTP status",
        ),
        (
            r#"{"routes": [{"direct_response": {"body": "x"}}]}"#,
            "config: routes[0].direct_response: missing field `status`",
        ),
        (
            r#"{"routes": {}}"#,
            "config: routes: invalid type: map, expected a sequence",
        ),
    ] {
        let logs = refused(config);
        assert!(
            logs.contains(expected),
            "{config}\n  expected: {expected}\n  logged: {logs}"
        );
    }
}

#[test]
fn the_sample_config_in_the_readme_is_accepted() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```json\n").expect("a json block in README.md") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let mut host = Host::new(crate::register);
    assert!(
        host.configure(&readme[start..end]),
        "{}",
        &readme[start..end]
    );
}
