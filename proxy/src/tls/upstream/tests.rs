use super::*;

use crate::tls::test_pki::{TestCa, TestDir as Dir};

/// Writes `ca.pem`, and `<name>.pem` + `<name>.key` for each of `clients`; returns the CA.
fn pki(dir: &Dir, clients: &[&str]) -> TestCa {
    let ca = TestCa::new(dir);
    for name in clients {
        ca.issue(dir, name);
    }
    ca
}

fn config(yaml: &str) -> UpstreamTlsConfig {
    serde_norway::from_str(yaml).unwrap()
}

fn load(dir: &Dir, yaml: &str) -> Result<UpstreamTls, LoadError> {
    UpstreamTls::load(
        &config(yaml),
        UpstreamProtocol::Http1,
        &["127.0.0.1:443"],
        dir.path(),
    )
}

#[test]
fn a_missing_ca_file_names_the_field_and_the_file() {
    let dir = Dir::new("upstream-tls-missing");
    let (field, message) = load(&dir, "ca_file: nope.pem").unwrap_err();
    assert_eq!(field, ".ca_file");
    assert!(message.contains("nope.pem"), "{message}");
}

#[test]
fn a_bad_pem_names_the_field_and_the_file() {
    let dir = Dir::new("upstream-tls-bad-pem");
    pki(&dir, &["web"]);
    dir.write("garbage.pem", "not PEM at all\n");
    let (field, message) = load(&dir, "ca_file: garbage.pem").unwrap_err();
    assert_eq!(field, ".ca_file");
    assert!(
        message.contains("garbage.pem: no certificate in it"),
        "{message}"
    );

    let (field, message) = load(
        &dir,
        "{ca_file: ca.pem, certificate: web.pem, key: garbage.pem}",
    )
    .unwrap_err();
    assert_eq!(field, ".key");
    assert!(message.contains("garbage.pem"), "{message}");
}

#[test]
fn certificate_and_key_go_together_and_must_match() {
    let dir = Dir::new("upstream-tls-pair");
    pki(&dir, &["web", "db"]);
    let (field, message) = load(&dir, "{ca_file: ca.pem, key: web.key}").unwrap_err();
    assert_eq!(
        (field.as_str(), message.as_str()),
        (".key", "needs a certificate too")
    );
    let (field, _) = load(&dir, "{ca_file: ca.pem, certificate: web.pem}").unwrap_err();
    assert_eq!(field, ".certificate");
    let (field, message) =
        load(&dir, "{ca_file: ca.pem, certificate: web.pem, key: db.key}").unwrap_err();
    assert_eq!(field, ".key");
    assert!(message.contains("is not the key of"), "{message}");
    let tls = load(
        &dir,
        "{ca_file: ca.pem, certificate: web.pem, key: web.key}",
    )
    .unwrap();
    assert!(tls.client_config.client_auth_cert_resolver.has_certs());
    assert_eq!(tls.files.len(), 3);
}

#[test]
fn alpn_follows_the_protocol_unless_given() {
    let dir = Dir::new("upstream-tls-alpn");
    pki(&dir, &[]);
    let raw = config("ca_file: ca.pem");
    let load_as = |protocol| UpstreamTls::load(&raw, protocol, &["127.0.0.1:1"], dir.path());
    let h1 = load_as(UpstreamProtocol::Http1).unwrap();
    assert_eq!(h1.client_config.alpn_protocols, [b"http/1.1".to_vec()]);
    let h2 = load_as(UpstreamProtocol::Http2).unwrap();
    assert_eq!(h2.client_config.alpn_protocols, [b"h2".to_vec()]);
    assert_eq!(h2.protocol_alpn, "h2");

    let (field, _) = load(&dir, "{ca_file: ca.pem, alpn: [h3]}").unwrap_err();
    assert_eq!(field, ".alpn[0]");
    let (field, message) = load(&dir, "{ca_file: ca.pem, alpn: [h2]}").unwrap_err();
    assert_eq!(field, ".alpn");
    assert!(message.contains("\"http/1.1\""), "{message}");
    let none = load(&dir, "{ca_file: ca.pem, alpn: []}").unwrap();
    assert!(none.client_config.alpn_protocols.is_empty());
}

#[test]
fn server_names_come_from_sni_or_the_endpoint() {
    let dir = Dir::new("upstream-tls-names");
    pki(&dir, &[]);
    let endpoints = ["api.internal:8443", "10.0.0.7:443", "[::1]:443"];
    let load_with = |yaml: &str| {
        UpstreamTls::load(
            &config(yaml),
            UpstreamProtocol::Http1,
            &endpoints,
            dir.path(),
        )
    };
    let names: Vec<String> = load_with("ca_file: ca.pem")
        .unwrap()
        .server_names
        .iter()
        .map(|n| n.to_str().into_owned())
        .collect();
    assert_eq!(names, ["api.internal", "10.0.0.7", "::1"]);
    let tls = load_with("{ca_file: ca.pem, sni: api.test}").unwrap();
    assert!(tls.server_names.iter().all(|n| n.to_str() == "api.test"));

    let (field, _) = load_with("{ca_file: ca.pem, sni: \"bad name\"}").unwrap_err();
    assert_eq!(field, ".sni");
    let (field, message) = UpstreamTls::load(
        &config("ca_file: ca.pem"),
        UpstreamProtocol::Http1,
        &["under_score!:80"],
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(field, ".sni");
    assert!(message.starts_with("endpoints[0]:"), "{message}");
}

#[test]
fn new_file_contents_or_settings_make_a_different_value() {
    let dir = Dir::new("upstream-tls-rotate");
    let ca = pki(&dir, &["web"]);
    let yaml = "{ca_file: ca.pem, certificate: web.pem, key: web.key}";
    let before = load(&dir, yaml).unwrap();
    assert!(before == load(&dir, yaml).unwrap());
    // The client certificate rotated: same paths, new contents.
    ca.issue(&dir, "web");
    assert!(before != load(&dir, yaml).unwrap());
    let sni = |name: &str| load(&dir, &format!("{{ca_file: ca.pem, sni: {name}}}")).unwrap();
    assert!(sni("a.test") != sni("b.test"));
    let alpn = |list: &str| load(&dir, &format!("{{ca_file: ca.pem, alpn: {list}}}")).unwrap();
    assert!(alpn("[]") != alpn("[http/1.1]"));
}

#[test]
fn subject_alt_names_to_match_must_not_be_empty_and_count_as_settings() {
    let dir = Dir::new("upstream-tls-san");
    pki(&dir, &[]);
    let (field, message) = load(
        &dir,
        "{ca_file: ca.pem, match_subject_alt_names: [spiffe://a/b, \"\"]}",
    )
    .unwrap_err();
    assert_eq!(field, ".match_subject_alt_names[1]");
    assert!(message.contains("empty"), "{message}");

    let by_a = load(
        &dir,
        "{ca_file: ca.pem, match_subject_alt_names: [spiffe://a]}",
    )
    .unwrap();
    let by_b = load(
        &dir,
        "{ca_file: ca.pem, match_subject_alt_names: [spiffe://b]}",
    )
    .unwrap();
    let by_name = load(&dir, "{ca_file: ca.pem}").unwrap();
    assert!(by_a != by_b && by_a != by_name);
    assert!(
        by_a == load(
            &dir,
            "{ca_file: ca.pem, match_subject_alt_names: [spiffe://a]}"
        )
        .unwrap()
    );
}

#[test]
fn revocation_lists_load_count_in_the_value_and_errors_name_the_field() {
    let dir = Dir::new("upstream-tls-crl");
    let ca = pki(&dir, &[]);
    ca.write_crl(&dir, "crl.pem", &[7]);
    let yaml = "{ca_file: ca.pem, crl_file: crl.pem}";
    let before = load(&dir, yaml).unwrap();
    assert!(before.files.contains(&dir.path().join("crl.pem")));
    // Another list: a different value, so a reload makes the cluster new.
    ca.write_crl(&dir, "crl.pem", &[7, 8]);
    assert!(before != load(&dir, yaml).unwrap());
    // With identities to match too.
    load(
        &dir,
        "{ca_file: ca.pem, crl_file: crl.pem, match_subject_alt_names: [a.test]}",
    )
    .unwrap();

    let (field, message) = load(&dir, "{ca_file: ca.pem, crl_file: nope.pem}").unwrap_err();
    assert_eq!(field, ".crl_file");
    assert!(message.contains("nope.pem"), "{message}");
    let (field, message) = load(&dir, "{ca_file: ca.pem, crl_file: ca.pem}").unwrap_err();
    assert_eq!(field, ".crl_file");
    assert!(
        message.contains("no certificate revocation list"),
        "{message}"
    );
    dir.write(
        "bad.pem",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    let (field, message) = load(&dir, "{ca_file: ca.pem, crl_file: bad.pem}").unwrap_err();
    assert_eq!(field, ".crl_file");
    assert!(
        message.contains("bad.pem") && message.contains("not a usable"),
        "{message}"
    );
}

#[test]
fn min_version_is_checked_and_counts_in_the_value() {
    let dir = Dir::new("upstream-tls-min-version");
    pki(&dir, &[]);
    let default = load(&dir, "ca_file: ca.pem").unwrap();
    let strict = load(&dir, "{ca_file: ca.pem, min_version: \"1.3\"}").unwrap();
    assert!(default != strict);
    let (field, message) = load(&dir, "{ca_file: ca.pem, min_version: \"1.1\"}").unwrap_err();
    assert_eq!(field, ".min_version");
    assert!(message.contains("\"1.1\""), "{message}");
}
