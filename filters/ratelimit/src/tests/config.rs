//! Refused configs: each error names the field, in the log line `on_configure` leaves.

use weft_sdk::testing::Host;

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
            r#"{"rules": [{"key": "client_ip", "limits": [{"requests": 1, "per": "fortnight"}]}]}"#,
            "config: rules[0].limits[0].per: \"fortnight\": second, minute, hour, day",
        ),
        (
            r#"{"rules": [{"key": "ip", "limits": []}]}"#,
            "config: rules[0].key: unknown variant `ip`",
        ),
        (
            r#"{"rules": [{"key": "client_ip", "limits": []}]}"#,
            "config: rules[0].limits: at least one limit is needed",
        ),
        (
            r#"{"rules": [{"key": "client_ip"}]}"#,
            "config: rules[0]: missing field `limits`",
        ),
        (
            r#"{"rules": [{"key": "route", "limits": [{"requests": 0, "per": "second"}]}]}"#,
            "config: rules[0].limits[0].requests: 0: 1 to 1000000000",
        ),
        (
            r#"{"rules": [{"key": "route", "limits": [{"requests": 1, "per": "second", "burst": 0}]}]}"#,
            "config: rules[0].limits[0].burst: 0: 1 to 1000000000",
        ),
        (
            r#"{"rules": [{"key": "route", "limits": [{"requests": 1, "per": "minute"}, {"requests": 5, "per": "60s"}]}]}"#,
            "config: rules[0].limits[1].per: \"60s\": another limit of this rule has the same period",
        ),
        (
            r#"{"rules": [{"key": {"header": "bad header"}, "limits": [{"requests": 1, "per": "second"}]}]}"#,
            "config: rules[0].key.header: \"bad header\" is not a header name",
        ),
        (
            r#"{"rules": [{"name": "a/b", "key": "route", "limits": [{"requests": 1, "per": "second"}]}]}"#,
            "config: rules[0].name: \"a/b\": printable ASCII without spaces or /",
        ),
        (
            r#"{"rules": [{"name": "a", "key": "route", "limits": [{"requests": 1, "per": "second"}]}, {"name": "a", "key": "path", "limits": [{"requests": 1, "per": "second"}]}]}"#,
            "config: rules[1].name: \"a\" is used twice",
        ),
        (
            r#"{"rules": [{"match": {"path": {"prefix": "api"}}, "key": "route", "limits": [{"requests": 1, "per": "second"}]}]}"#,
            "config: rules[0].match.path.prefix: \"api\" is not a path",
        ),
        (
            r#"{"rules": [{"match": {"methods": ["G T"]}, "key": "route", "limits": [{"requests": 1, "per": "second"}]}]}"#,
            "config: rules[0].match.methods[0]: \"G T\" is not a method",
        ),
        (
            r#"{"status": 200}"#,
            "config: status: 200: a 4xx or 5xx status",
        ),
        (r#"{"cas_tries": 0}"#, "config: cas_tries: 0: 1 to 1000"),
        (
            r#"{"domain": "a b"}"#,
            "config: domain: \"a b\": printable ASCII",
        ),
        (r#"{"rule": []}"#, "config: rule: unknown field `rule`"),
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
