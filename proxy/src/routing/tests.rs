use super::*;
use crate::config::load_str;

fn routes(yaml_routes: &str) -> Vec<Route> {
    let text = format!(
        "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n{yaml_routes}\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.1:1\"]\n"
    );
    load_str("t", &text).unwrap().listeners.remove(0).routes
}

fn pick(routes: &[Route], method: &str, uri: &str, headers: &[(&str, &str)]) -> Option<String> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let authority = request_authority(&parts);
    let host = request_host(authority.as_ref().and_then(|a| a.to_str().ok()));
    let head = RequestHead::new(&parts, &host);
    select(routes, &head).map(|i| routes[i].name.clone())
}

#[test]
fn host_exact_and_wildcard() {
    let r = routes(
        "      - { name: exact, match: { host: API.example.com }, cluster: c }\n      - { name: wild, match: { host: '*.example.com' }, cluster: c }\n      - { name: any, match: { host: '*' }, cluster: c }",
    );
    assert_eq!(
        pick(&r, "GET", "/", &[("host", "api.example.com:8080")]).unwrap(),
        "exact"
    );
    assert_eq!(
        pick(&r, "GET", "http://Api.Example.com/x", &[]).unwrap(),
        "exact"
    );
    assert_eq!(
        pick(&r, "GET", "/", &[("host", "www.example.com")]).unwrap(),
        "wild"
    );
    assert_eq!(
        pick(&r, "GET", "/", &[("host", "example.com")]).unwrap(),
        "any"
    );
    assert_eq!(
        pick(&r, "GET", "/", &[("host", "[::1]:80")]).unwrap(),
        "any"
    );
}

#[test]
fn host_without_fallback_does_not_match() {
    let r = routes("      - { name: exact, match: { host: a.test }, cluster: c }");
    assert_eq!(pick(&r, "GET", "/", &[("host", "b.test")]), None);
    assert_eq!(pick(&r, "GET", "/", &[]), None);
}

#[test]
fn path_kinds() {
    let r = routes(
        "      - { name: exact, match: { path: { exact: /a } }, cluster: c }\n      - { name: regex, match: { path: { regex: '/users/[0-9]+' } }, cluster: c }\n      - { name: prefix, match: { path: { prefix: /a } }, cluster: c }",
    );
    assert_eq!(pick(&r, "GET", "/a", &[]).unwrap(), "exact");
    assert_eq!(pick(&r, "GET", "/a?x=1", &[]).unwrap(), "exact");
    assert_eq!(pick(&r, "GET", "/ab", &[]).unwrap(), "prefix");
    assert_eq!(pick(&r, "GET", "/users/42", &[]).unwrap(), "regex");
    // A regex must match the whole path.
    assert_eq!(pick(&r, "GET", "/users/42/x", &[]), None);
    assert_eq!(pick(&r, "GET", "/b", &[]), None);
}

#[test]
fn methods_headers_query() {
    let r = routes(
        "      - { name: post, match: { methods: [post, PUT] }, cluster: c }\n      - { name: hdr, match: { headers: [ { name: X-Env, exact: prod } ] }, cluster: c }\n      - { name: hre, match: { headers: [ { name: x-ver, regex: 'v[2-3]' } ] }, cluster: c }\n      - { name: absent, match: { headers: [ { name: x-debug, present: false } ], query: [ { name: q, present: true } ] }, cluster: c }\n      - { name: qexact, match: { query: [ { name: 'user id', exact: 'a b' } ] }, cluster: c }\n      - { name: qre, match: { query: [ { name: n, regex: '[0-9]+' } ] }, cluster: c }",
    );
    assert_eq!(pick(&r, "POST", "/", &[]).unwrap(), "post");
    assert_eq!(pick(&r, "GET", "/", &[("x-env", "prod")]).unwrap(), "hdr");
    assert_eq!(
        pick(&r, "GET", "/", &[("x-env", "dev"), ("x-env", "prod")]).unwrap(),
        "hdr"
    );
    assert_eq!(pick(&r, "GET", "/", &[("x-ver", "v3")]).unwrap(), "hre");
    assert_eq!(pick(&r, "GET", "/", &[("x-ver", "v33")]), None);
    assert_eq!(pick(&r, "GET", "/?q", &[]).unwrap(), "absent");
    assert_eq!(pick(&r, "GET", "/?q=1", &[("x-debug", "1")]), None);
    assert_eq!(pick(&r, "GET", "/?user%20id=a+b", &[]).unwrap(), "qexact");
    assert_eq!(pick(&r, "GET", "/?a=1&n=12", &[]).unwrap(), "qre");
    assert_eq!(pick(&r, "GET", "/?n=12a", &[]), None);
}

#[test]
fn first_match_wins() {
    let r = routes(
        "      - { name: one, match: { path: { prefix: / } }, cluster: c }\n      - { name: two, match: { path: { prefix: /a } }, cluster: c }",
    );
    assert_eq!(pick(&r, "GET", "/a", &[]).unwrap(), "one");
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b+c"), "a b c");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
    assert_eq!(percent_decode("plain"), "plain");
}
