//! TLS from weft to its upstreams, end to end: a real weft whose clusters have a `tls`
//! block, real TLS upstreams (rustls) with certificates made at test time by a test CA.

use std::path::Path;
use std::time::{Duration, Instant};

use weft_e2e::*;

/// A config with one plain listener `main` (routes as YAML list items) and `clusters`.
fn config(routes: &str, clusters: &[String]) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{}",
        listener_yaml("main", "", routes),
        clusters.concat()
    )
}

/// A cluster's `tls` block (YAML for `cluster_yaml`'s extra lines) trusting `dir/ca.pem`.
fn tls(dir: &Path, extra: &str) -> String {
    format!(
        "    tls: {{ ca_file: {}{extra} }}\n",
        dir.join("ca.pem").display()
    )
}

const WEB: &str = "spiffe://weft.test/ns/shop/sa/web";

/// A cluster `name` of `up` with sni `api.test` and the client certificate in
/// `dir/web.pem` and `dir/web.key`.
fn mtls_cluster(name: &str, up: &Upstream, dir: &Path) -> String {
    let path = |ext: &str| dir.join(format!("web.{ext}")).display().to_string();
    let extra = format!(
        ", sni: api.test, certificate: {}, key: {}",
        path("pem"),
        path("key")
    );
    cluster_yaml(name, &[up.addr], &tls(dir, &extra))
}

/// A test CA, and a directory with its certificate as `ca.pem`.
fn trusted_ca() -> (Pki, TempDir) {
    let pki = Pki::new();
    let dir = TempDir::new();
    pki.write_ca(dir.path(), "ca.pem");
    (pki, dir)
}

/// A TLS upstream presenting a certificate for `api.test` that `ca` signed.
async fn upstream(name: &str, ca: &Pki, alpn: &str, client_ca: Option<&Pki>) -> Upstream {
    Upstream::start_tls(name, ca.server_config(&["api.test"], &[alpn], client_ca)).await
}

fn handshake_errors(weft: &Weft, cluster: &str) -> f64 {
    weft.metric(&format!(
        "weft_upstream_tls_handshake_errors_total{{cluster=\"{cluster}\"}}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_by_server_name_or_ip_address() {
    let (pki, dir) = trusted_ca();
    let named = upstream("named", &pki, "http/1.1", None).await;
    let by_ip = Upstream::start_tls(
        "by-ip",
        pki.server_config(&["127.0.0.1"], &["http/1.1"], None),
    )
    .await;
    let weft = Weft::start(
        &config(
            "      - match: { path: { prefix: /ip } }\n        cluster: by-ip\n      - cluster: named\n",
            &[
                cluster_yaml("named", &[named.addr], &tls(dir.path(), ", sni: api.test")),
                cluster_yaml("by-ip", &[by_ip.addr], &tls(dir.path(), "")),
            ],
        ),
        1,
    );
    let client = http1_client();
    let addr = weft.addr("main");

    for path in ["/one", "/two"] {
        let reply = get(&client, addr, path, &[]).await;
        assert_eq!((reply.status, reply.text()), (200, format!("named {path}")));
    }
    // One handshake: the pooled TLS connection carried both requests.
    let sessions = named.tls_sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].sni.as_deref(), Some("api.test"));
    assert_eq!(sessions[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(sessions[0].client_cert, None);
    assert_eq!(named.requests()[0].version, http::Version::HTTP_11);

    // An endpoint written as ip:port, without sni: verified by IP address, no SNI sent.
    let reply = get(&client, addr, "/ip", &[]).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "by-ip /ip"));
    assert_eq!(by_ip.tls_sessions()[0].sni, None);
    assert_eq!(handshake_errors(&weft, "named"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_upstreams_see_the_cluster_client_certificate() {
    let (pki, dir) = trusted_ca();
    let web = pki.client(WEB);
    web.write(dir.path(), "web");
    let up = upstream("up", &pki, "http/1.1", Some(&pki)).await;
    let weft = Weft::start(
        &config(
            "      - match: { path: { prefix: /anonymous } }\n        cluster: anonymous\n      - cluster: web\n",
            &[
                mtls_cluster("web", &up, dir.path()),
                cluster_yaml("anonymous", &[up.addr], &tls(dir.path(), ", sni: api.test")),
            ],
        ),
        1,
    );
    let client = http1_client();
    let reply = get(&client, weft.addr("main"), "/cart", &[]).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "up /cart"));
    let sessions = up.tls_sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].client_cert, Some(web.der()));

    // Without a client certificate the upstream refuses the connection: 502. (With TLS
    // 1.3 the refusal arrives after weft's side of the handshake is done, as the answer
    // to the request: "upstream reset before response".)
    let reply = get(&client, weft.addr("main"), "/anonymous", &[]).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(
        weft.metric(r#"weft_upstream_rq_error_total{cluster="anonymous"}"#),
        1.0
    );
    assert_eq!(up.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_misnamed_certificate_is_a_counted_connect_failure() {
    let (pki, dir) = trusted_ca();
    let other_ca = Pki::new();
    let untrusted = upstream("untrusted", &other_ca, "http/1.1", None).await;
    let misnamed = upstream("misnamed", &pki, "http/1.1", None).await;
    let weft = Weft::start(
        &config(
            "      - match: { path: { prefix: /misnamed } }\n        cluster: misnamed\n      - cluster: untrusted\n        retry_policy: { num_retries: 2, retry_on: [connect_failure], base_interval: 1ms, max_interval: 2ms }\n",
            &[
                cluster_yaml(
                    "untrusted",
                    &[untrusted.addr],
                    &tls(dir.path(), ", sni: api.test"),
                ),
                cluster_yaml(
                    "misnamed",
                    &[misnamed.addr],
                    &tls(dir.path(), ", sni: other.test"),
                ),
            ],
        ),
        1,
    );
    let client = http1_client();
    let addr = weft.addr("main");

    // A certificate from another CA: each attempt fails its handshake, and is retried as
    // a connect failure.
    let reply = get(&client, addr, "/", &[]).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (502, "upstream connect error\n")
    );
    assert_eq!(handshake_errors(&weft, "untrusted"), 3.0);
    assert_eq!(
        weft.metric(r#"weft_upstream_rq_retry_total{cluster="untrusted"}"#),
        2.0
    );
    assert_eq!(
        weft.metric(r#"weft_upstream_cx_connect_errors_total{cluster="untrusted"}"#),
        1.0
    );
    assert_eq!(untrusted.request_count(), 0);

    // A certificate that is not for the cluster's sni.
    let reply = get(&client, addr, "/misnamed", &[]).await;
    assert_eq!(reply.status, 502);
    assert_eq!(handshake_errors(&weft, "misnamed"), 1.0);
    assert_eq!(misnamed.request_count(), 0);
    weft.wait_for_log("TLS handshake (server name other.test) failed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_are_verified_by_their_spiffe_id_when_the_cluster_lists_it() {
    const API: &str = "spiffe://weft.test/ns/shop/sa/api";
    let (pki, dir) = trusted_ca();
    // Certificates that name the workload only: no DNS name, no IP address.
    let api = Upstream::start_tls("api", pki.server_config(&[API], &["http/1.1"], None)).await;
    let impostor = Upstream::start_tls(
        "impostor",
        Pki::new().server_config(&[API], &["http/1.1"], None),
    )
    .await;
    let by_id = |name: &str, up: &Upstream, id: &str| {
        let extra = format!(", match_subject_alt_names: [\"{id}\"]");
        cluster_yaml(name, &[up.addr], &tls(dir.path(), &extra))
    };
    let route = |name: &str| {
        format!("      - match: {{ path: {{ prefix: /{name} }} }}\n        cluster: {name}\n")
    };
    let routes: String = ["api", "other", "impostor", "by-address"]
        .map(route)
        .concat();
    let weft = Weft::start(
        &config(
            &routes,
            &[
                by_id("api", &api, API),
                by_id("other", &api, "spiffe://weft.test/ns/shop/sa/other"),
                by_id("impostor", &impostor, API),
                cluster_yaml("by-address", &[api.addr], &tls(dir.path(), "")),
            ],
        ),
        1,
    );
    let client = http1_client();
    let addr = weft.addr("main");

    let reply = get(&client, addr, "/api", &[]).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "api /api"));
    assert_eq!(handshake_errors(&weft, "api"), 0.0);
    // Another identity, the right one from an untrusted CA, and the usual check by the
    // endpoint's address (which this certificate does not carry): refused.
    for cluster in ["other", "impostor", "by-address"] {
        let reply = get(&client, addr, &format!("/{cluster}"), &[]).await;
        assert_eq!(reply.status, 502, "{cluster}: {}", reply.text());
        assert_eq!(handshake_errors(&weft, cluster), 1.0, "{cluster}");
    }
    assert_eq!(api.request_count(), 1);
    assert_eq!(impostor.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_upstream_certificates_are_refused() {
    let (pki, dir) = trusted_ca();
    let good_cert = pki.issue(&["api.test"]);
    let revoked_cert = pki.issue(&["api.test"]);
    let good = Upstream::start_tls("good", pki.serve(&good_cert, &["http/1.1"], None)).await;
    let revoked =
        Upstream::start_tls("revoked", pki.serve(&revoked_cert, &["http/1.1"], None)).await;
    std::fs::write(dir.path().join("crl.pem"), pki.crl(&[&revoked_cert])).unwrap();
    let crl = format!(", crl_file: {}", dir.path().join("crl.pem").display());
    // By server name, and by identity (the check of the identities replaces the name's,
    // not the revocation's).
    let by_name = |name: &str, up: &Upstream| {
        cluster_yaml(
            name,
            &[up.addr],
            &tls(dir.path(), &format!(", sni: api.test{crl}")),
        )
    };
    let by_id = |name: &str, up: &Upstream| {
        let extra = format!(", match_subject_alt_names: [api.test]{crl}");
        cluster_yaml(name, &[up.addr], &tls(dir.path(), &extra))
    };
    let route = |name: &str| {
        format!("      - match: {{ path: {{ prefix: /{name} }} }}\n        cluster: {name}\n")
    };
    let names = ["name-good", "id-good", "name-revoked", "id-revoked"];
    let weft = Weft::start(
        &config(
            &names.map(route).concat(),
            &[
                by_name("name-good", &good),
                by_id("id-good", &good),
                by_name("name-revoked", &revoked),
                by_id("id-revoked", &revoked),
            ],
        ),
        1,
    );
    let client = http1_client();
    let addr = weft.addr("main");
    for (cluster, status) in [
        ("name-good", 200),
        ("id-good", 200),
        ("name-revoked", 502),
        ("id-revoked", 502),
    ] {
        let reply = get(&client, addr, &format!("/{cluster}"), &[]).await;
        assert_eq!(reply.status, status, "{cluster}: {}", reply.text());
        let errors = if status == 200 { 0.0 } else { 1.0 };
        assert_eq!(handshake_errors(&weft, cluster), errors, "{cluster}");
    }
    assert_eq!(good.request_count(), 2);
    assert_eq!(revoked.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_refuses_an_upstream_below_it() {
    let (pki, dir) = trusted_ca();
    let tls12 = Upstream::start_tls(
        "tls12",
        pki.serve_versions(
            &pki.issue(&["api.test"]),
            &["http/1.1"],
            None,
            &[&rustls::version::TLS12],
        ),
    )
    .await;
    let route = |name: &str| {
        format!("      - match: {{ path: {{ prefix: /{name} }} }}\n        cluster: {name}\n")
    };
    let weft = Weft::start(
        &config(
            &["default", "strict"].map(route).concat(),
            &[
                cluster_yaml(
                    "default",
                    &[tls12.addr],
                    &tls(dir.path(), ", sni: api.test"),
                ),
                cluster_yaml(
                    "strict",
                    &[tls12.addr],
                    &tls(dir.path(), ", sni: api.test, min_version: \"1.3\""),
                ),
            ],
        ),
        1,
    );
    let client = http1_client();
    let addr = weft.addr("main");
    let reply = get(&client, addr, "/default", &[]).await;
    assert_eq!(reply.status, 200, "TLS 1.2 is offered by default");
    let reply = get(&client, addr, "/strict", &[]).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(handshake_errors(&weft, "strict"), 1.0);
    assert_eq!(tls12.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clusters_speak_h2_over_tls() {
    let (pki, dir) = trusted_ca();
    let up = upstream("h2up", &pki, "h2", None).await;
    let cluster = cluster_yaml(
        "h2up",
        &[up.addr],
        &format!(
            "    protocol: http2\n{}",
            tls(dir.path(), ", sni: api.test")
        ),
    );
    let weft = Weft::start(&config("      - cluster: h2up\n", &[cluster]), 1);
    let client = http1_client();
    for path in ["/a", "/b"] {
        let reply = get(&client, weft.addr("main"), path, &[]).await;
        assert_eq!((reply.status, reply.text()), (200, format!("h2up {path}")));
    }
    let sessions = up.tls_sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].alpn.as_deref(), Some(&b"h2"[..]));
    let recorded = up.requests();
    assert!(
        recorded
            .iter()
            .all(|r| r.version == http::Version::HTTP_2 && r.scheme.as_deref() == Some("https")),
        "{recorded:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_probe_over_tls() {
    let (pki, dir) = trusted_ca();
    let other_ca = Pki::new();
    let good = upstream("good", &pki, "http/1.1", None).await;
    let untrusted = upstream("untrusted", &other_ca, "http/1.1", None).await;
    let checked = |name: &str, up: &Upstream| {
        cluster_yaml(
            name,
            &[up.addr],
            &format!(
                "{}    health_check: {{ path: /healthz, interval: 100ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1 }}\n",
                tls(dir.path(), ", sni: api.test")
            ),
        )
    };
    let weft = Weft::start(
        &config(
            "      - cluster: good\n",
            &[checked("good", &good), checked("untrusted", &untrusted)],
        ),
        1,
    );
    let healthy = |name: &str, up: &Upstream| {
        weft.metric(&format!(
            "weft_upstream_endpoint_healthy{{cluster=\"{name}\",endpoint=\"{}\"}}",
            up.addr
        ))
    };
    // The endpoint whose certificate cannot be verified fails its checks...
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthy("untrusted", &untrusted) != 0.0 {
        assert!(Instant::now() < deadline, "{}", weft.logs().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...while the one that speaks TLS with a trusted certificate passes them, over TLS
    // (it speaks nothing else).
    while good.request_count() < 3 {
        assert!(Instant::now() < deadline, "{}", weft.logs().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healthy("good", &good), 1.0);
    assert!(good.requests().iter().all(|r| r.path == "/healthz"));
    assert!(handshake_errors(&weft, "untrusted") >= 1.0);
    assert_eq!(handshake_errors(&weft, "good"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_certificate_is_used_after_the_files_change() {
    let (pki, dir) = trusted_ca();
    let old = pki.client(WEB);
    old.write(dir.path(), "web");
    let up = upstream("up", &pki, "http/1.1", Some(&pki)).await;
    let cluster = mtls_cluster("up", &up, dir.path());
    let weft = Weft::start(&config("      - cluster: up\n", &[cluster]), 1);
    let client = http1_client();
    let addr = weft.addr("main");
    assert_eq!(get(&client, addr, "/", &[]).await.status, 200);
    assert_eq!(up.tls_sessions()[0].client_cert, Some(old.der()));

    // Renewed: new certificate and key written beside the old ones and renamed over them;
    // the watcher reloads, and new connections present the new certificate.
    let new = pki.client(WEB);
    new.renew(dir.path(), "web");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(get(&client, addr, "/", &[]).await.status, 200);
        let last = up.tls_sessions().pop().unwrap();
        if last.client_cert == Some(new.der()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new client certificate is not used: {}",
            weft.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn bad_cluster_tls_config_names_the_field_and_the_file() {
    let err = validate_errors(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: []\nclusters:\n  - name: up\n    endpoints: [\"127.0.0.1:1\"]\n    tls: { ca_file: missing-ca.pem }\n",
    );
    assert!(
        err.contains("clusters[0].tls.ca_file:") && err.contains("missing-ca.pem"),
        "{err}"
    );
}
