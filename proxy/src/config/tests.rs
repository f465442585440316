use super::*;

fn errors(text: &str) -> Vec<String> {
    match load_str("test.yaml", text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

const CLUSTER: &str = "clusters:\n  - name: api\n    endpoints: [\"127.0.0.1:9000\"]\n";

#[test]
fn embedded_default_is_valid() {
    let config = embedded_default();
    assert_eq!(config.listeners[0].address.to_string(), "127.0.0.1:8080");
    assert_eq!(config.admin.unwrap().to_string(), "127.0.0.1:9901");
    assert!(config.demo_upstream.is_some());
    let modules: Vec<_> = config.listeners[0]
        .filters
        .iter()
        .map(|f| f.module.display().to_string())
        .collect();
    if crate::wasm::builtin::complete() {
        assert_eq!(
            modules,
            [
                "builtin:telemetry",
                "builtin:ratelimit",
                "builtin:auth",
                "builtin:router"
            ]
        );
    } else {
        assert_eq!(modules, ["builtin:hello"]);
    }
    // The minimal default is valid in every build.
    load_str(EMBEDDED_SOURCE, EMBEDDED_DEFAULT_MINIMAL).unwrap();
}

#[test]
fn unknown_builtin_filter_is_named() {
    let text = "listeners:\n  - name: a\n    address: 127.0.0.1:0\n    filters:\n      - { name: f, module: 'builtin:nope' }\n    routes: []\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            r#"test.yaml: listeners[0].filters[0].module: no built-in filter named "nope" (there are: hello"#
        ),
        "{errors:?}"
    );
}

#[test]
fn unknown_cluster_names_the_route() {
    let text = format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: api\n      - cluster: nope\n{CLUSTER}"
    );
    assert_eq!(
        errors(&text),
        vec![r#"test.yaml: listeners[0].routes[1].cluster: no cluster named "nope""#]
    );
}

#[test]
fn unknown_field_has_line_and_path() {
    let text = "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: api\n        match:\n          path: { prefx: /a }\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("test.yaml:7:19: listeners[0].routes[0].match.path: unknown field `prefx`, expected one of `exact`, `prefix`, `regex`"),
        "{}",
        errs[0]
    );
}

#[test]
fn type_error_has_path() {
    let text = "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    limits:\n      max_request_headers: lots\n    routes: []\n";
    let errs = errors(text);
    assert!(
        errs[0].contains("listeners[0].limits.max_request_headers: invalid type"),
        "{}",
        errs[0]
    );
}

#[test]
fn all_errors_are_listed() {
    let text = format!(
        "listeners:\n  - name: main\n    address: nowhere\n    limits: {{ max_connections: 0, idle_timeout: 5x }}\n    routes: []\n{CLUSTER}"
    );
    // The duration is a parse error, so it stops parsing first.
    assert_eq!(errors(&text).len(), 1);
    assert!(errors(&text)[0].contains("invalid duration unit"));

    let text = format!(
        "listeners:\n  - name: main\n    address: nowhere\n    limits: {{ max_connections: 0 }}\n    routes:\n      - match: {{ path: {{ regex: \"(\" }} }}\n        cluster: api\n      - direct_response: {{ status: 1000 }}\n      - cluster: api\n        redirect: {{ host: x }}\n{CLUSTER}"
    );
    let errs = errors(&text);
    let expected = [
        r#"test.yaml: listeners[0].address: "nowhere" has no port: write host:port"#,
        "test.yaml: listeners[0].limits.max_connections: must be greater than 0",
        "test.yaml: listeners[0].routes[0].match.path.regex: invalid regex \"(\"",
        "test.yaml: listeners[0].routes[1].direct_response.status: 1000 is not an HTTP status code (100-599)",
        "test.yaml: listeners[0].routes[2]: a route needs exactly one of cluster, weighted_clusters, direct_response, redirect (found 2)",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for (got, want) in errs.iter().zip(expected) {
        assert!(got.starts_with(want), "got {got:?}, want {want:?}");
    }
}

#[test]
fn duplicate_names_and_bad_matchers() {
    let text = format!(
        "listeners:\n  - name: a\n    address: 127.0.0.1:7001\n    routes:\n      - name: r\n        match: {{ host: 'api.*', methods: [GET, 'B@D'], headers: [{{ name: x }}] }}\n        cluster: api\n      - name: r\n        weighted_clusters: [{{ cluster: api, weight: 0 }}]\n  - name: a\n    address: 127.0.0.1:7001\n    routes: []\n{CLUSTER}  - name: api\n    endpoints: []\n"
    );
    let errs = errors(&text).join("\n");
    for want in [
        "clusters[1].name: duplicate cluster name \"api\"",
        "clusters[1].endpoints: needs at least one endpoint",
        "listeners[0].routes[0].match.host: \"api.*\": '*' is only allowed as the first label",
        "listeners[0].routes[0].match.methods[1]: \"B@D\" is not an HTTP method",
        "listeners[0].routes[0].match.headers[0]: needs exactly one of exact, regex, present",
        "listeners[0].routes[1].name: duplicate route name \"r\"",
        "listeners[0].routes[1].weighted_clusters: the weights add up to 0",
        "listeners[1].name: duplicate listener name \"a\"",
        "listeners[1].address: 127.0.0.1:7001 is already used by listeners[0]",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
}

#[test]
fn redirect_prefix_rewrite_needs_prefix_match() {
    let text = "listeners:\n  - name: a\n    address: 127.0.0.1:0\n    routes:\n      - redirect: { prefix_rewrite: /b, status: 200 }\n";
    let errs = errors(text).join("\n");
    assert!(
        errs.contains("routes[0].redirect.status: must be one of 301"),
        "{errs}"
    );
    assert!(
        errs.contains("routes[0].redirect.prefix_rewrite: needs a prefix path match"),
        "{errs}"
    );
}

#[test]
fn hostnames_resolve() {
    let text = "listeners:\n  - name: a\n    address: localhost:0\n    routes: []\nclusters:\n  - name: c\n    endpoints: [\"localhost:9000\"]\n";
    let config = load_str("t", text).unwrap();
    assert!(config.clusters[0].endpoints[0].ip().is_loopback());
}

#[test]
fn missing_file_is_named() {
    let err = load_file(std::path::Path::new("/nonexistent/weft.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/weft.yaml: cannot read config file")
    );
}

#[test]
fn peer_tests_name_a_certificate_field() {
    let text = format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ peer: [ {{ name: uri_san, exact: 'spiffe://a/b' }}, {{ name: email, present: true }} ] }}\n        cluster: api\n{CLUSTER}"
    );
    assert_eq!(
        errors(&text),
        vec![
            r#"test.yaml: listeners[0].routes[0].match.peer[1].name: "email": a peer test is on uri_san, dns_san or subject"#
        ]
    );
}

#[test]
fn outlier_detection_and_circuit_breaker_errors_name_the_field() {
    let cluster = |extra: &str| {
        format!(
            "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: api\n{CLUSTER}{extra}"
        )
    };
    let found = errors(&cluster(
        "    outlier_detection: { consecutive_5xx: 0, base_ejection_time: 10s, max_ejection_time: 5s, max_ejection_percent: 101 }\n    circuit_breakers: { max_connections: 0, retry_budget: { budget_percent: 120 } }\n",
    ));
    for expected in [
        "clusters[0].outlier_detection.max_ejection_time: 5s is shorter than base_ejection_time (10s)",
        "clusters[0].outlier_detection.max_ejection_percent: must be between 0 and 100",
        "clusters[0].circuit_breakers.max_connections: must be at least 1",
        "clusters[0].circuit_breakers.retry_budget.budget_percent: must be between 0 and 100",
    ] {
        assert!(
            found.iter().any(|e| e.ends_with(expected)),
            "no {expected:?} in {found:#?}"
        );
    }
    let found = errors(&cluster("    outlier_detection: { consecutive_5xx: 0 }\n"));
    assert!(
        found.iter().any(|e| e.contains("clusters[0].outlier_detection: consecutive_5xx and consecutive_gateway_failure are both 0")),
        "{found:#?}"
    );
    // The defaults are Envoy's.
    let config = load_str("test.yaml", &cluster("    outlier_detection: {}\n")).unwrap();
    let outlier = config.clusters[0].outlier_detection.clone().unwrap();
    assert_eq!(outlier.consecutive_5xx, 5);
    assert_eq!(
        outlier.base_ejection_time,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(outlier.max_ejection_percent, 10);
    assert_eq!(config.clusters[0].breakers.max_pending_requests, 1024);
}

#[test]
fn cluster_tls_errors_name_the_cluster_field_and_the_file() {
    let text = "listeners:\n  - name: a\n    address: 127.0.0.1:0\n    routes: []\nclusters:\n  - name: plain\n    endpoints: [\"127.0.0.1:9000\"]\n  - name: secure\n    endpoints: [\"127.0.0.1:9001\"]\n    tls: { ca_file: no-such-ca.pem }\n";
    let dir = crate::tls::test_pki::TestDir::new("config-tls");
    let errs = match load_str_in("test.yaml", text, dir.path()) {
        Ok(_) => panic!("a missing CA file was accepted"),
        Err(e) => e.to_string(),
    };
    let want = format!(
        "test.yaml: clusters[1].tls.ca_file: {}: ",
        dir.path().join("no-such-ca.pem").display()
    );
    assert!(errs.starts_with(&want), "{errs}");
}

#[test]
fn one_address_cannot_be_verified_as_two_server_names() {
    let dir = crate::tls::test_pki::TestDir::new("config-tls-names");
    crate::tls::test_pki::TestCa::new(&dir);
    let cluster = |endpoints: &str, sni: &str| {
        format!(
            "listeners:\n  - name: a\n    address: 127.0.0.1:0\n    routes: []\nclusters:\n  - name: c\n    endpoints: [{endpoints}]\n    tls: {{ ca_file: ca.pem{sni} }}\n"
        )
    };
    let text = cluster("\"localhost:9000\", \"127.0.0.1:9000\"", "");
    let errs = match load_str_in("test.yaml", &text, dir.path()) {
        Ok(_) => panic!("two names for one address were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        errs.starts_with(
            "test.yaml: clusters[0].endpoints[1]: 127.0.0.1:9000 is also endpoints[0]"
        ),
        "{errs}"
    );
    // With one sni for all of them, they agree.
    let config = load_str_in(
        "test.yaml",
        &cluster("\"localhost:9000\", \"127.0.0.1:9000\"", ", sni: api.test"),
        dir.path(),
    )
    .unwrap();
    let tls = config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.server_names[0].to_str(), "api.test");
    // A hostname endpoint is verified as that name by default.
    let config = load_str_in("test.yaml", &cluster("\"localhost:9000\"", ""), dir.path()).unwrap();
    let tls = config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.server_names[0].to_str(), "localhost");
    let _ = std::fs::remove_dir_all(dir.path());
}
