//! TLS termination end to end: a real weft with certificates generated at test time (a test
//! CA and leaf certificates from rcgen, see `weft_e2e::Pki`), real TLS clients (rustls).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use weft_e2e::*;

/// What a TLS client saw of one request.
struct Seen {
    status: u16,
    body: String,
    server_cert: Vec<u8>,
    alpn: Option<Vec<u8>>,
    version: http::Version,
}

/// One request over a new TLS connection with SNI `sni`, offering `alpn`.
async fn tls_get(
    addr: SocketAddr,
    roots: &Arc<RootCertStore>,
    sni: &str,
    alpn: &[&[u8]],
    path: &str,
) -> Seen {
    tls_request(addr, roots, sni, alpn, path, None)
        .await
        .expect("TLS handshake and request")
}

/// One request over a new TLS connection, optionally with a client certificate; an error
/// when the handshake or the request fails.
async fn tls_request(
    addr: SocketAddr,
    roots: &Arc<RootCertStore>,
    sni: &str,
    alpn: &[&[u8]],
    path: &str,
    client: Option<&Issued>,
) -> Result<Seen, String> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots.clone());
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                c.chain.clone(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(c.key_der.clone().into()),
            )
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = stream.get_ref();
    let server_cert = session.peer_certificates().unwrap()[0].as_ref().to_vec();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let req = http::Request::get(format!("https://{sni}{path}"))
        .header("host", sni)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let io = TokioIo::new(stream);
    let res = if alpn.as_deref() == Some(b"h2") {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await
    };
    // With TLS 1.3 a refused client certificate shows only when the server answers.
    let res = res.map_err(|e| format!("request: {e}"))?;
    let status = res.status().as_u16();
    let version = res.version();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Ok(Seen {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        server_cert,
        alpn,
        version,
    })
}

fn tls_config(dir: &Path, upstream: &Upstream, extra: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{ cert: {d}/a.pem, key: {d}/a.key, server_names: [a.test] }}\n        - {{ cert: {d}/b.pem, key: {d}/b.key, server_names: [\"*.b.test\"] }}\n{extra}    routes:\n      - cluster: up\nclusters:\n{}",
        cluster_yaml("up", &[upstream.addr], ""),
        d = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_terminates_with_sni_alpn_and_forwarded_proto() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let a = pki.leaf(dir.path(), "a", &["a.test"]);
    let b = pki.leaf(dir.path(), "b", &["*.b.test"]);
    let up = Upstream::start("up").await;
    let weft = Weft::start(&tls_config(dir.path(), &up, ""), 2);
    let addr = weft.addr("main");

    // SNI picks the certificate; HTTP/1.1 when the client offers only that.
    let seen = tls_get(addr, &pki.roots, "a.test", &[b"http/1.1"], "/one").await;
    assert_eq!((seen.status, seen.body.as_str()), (200, "up /one"));
    assert_eq!(seen.server_cert, a);
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let seen = tls_get(addr, &pki.roots, "x.b.test", &[b"h2", b"http/1.1"], "/two").await;
    assert_eq!(seen.server_cert, b);
    // ALPN h2: the request goes over HTTP/2.
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!((seen.status, seen.body.as_str()), (200, "up /two"));
    // An unknown name gets the first certificate (whose name the client then refuses).
    let seen = tls_get(addr, &pki.roots, "a.test", &[], "/three").await;
    assert_eq!(seen.server_cert, a);

    let recorded = up.requests();
    assert!(
        recorded
            .iter()
            .all(|r| r.headers["x-forwarded-proto"] == "https"),
        "{recorded:?}"
    );
    // Plain HTTP on the TLS port is a failed handshake, counted.
    let raw = raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(raw.statuses().is_empty(), "{}", raw.text());
    assert_eq!(
        weft.metric("weft_downstream_tls_handshake_errors_total{listener=\"main\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::new();
    let dir = TempDir::new();
    pki.leaf(dir.path(), "a", &["a.test"]);
    pki.leaf(dir.path(), "b", &["*.b.test"]);
    let up = Upstream::start("up").await;
    let weft = Weft::start(
        &tls_config(dir.path(), &up, "      handshake_timeout: 300ms\n"),
        1,
    );
    let mut tcp = TcpStream::connect(weft.addr("main")).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_are_served_after_the_files_change() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let old = pki.leaf(dir.path(), "a", &["a.test"]);
    pki.leaf(dir.path(), "b", &["*.b.test"]);
    let up = Upstream::start("up").await;
    let weft = Weft::start(&tls_config(dir.path(), &up, ""), 1);
    let addr = weft.addr("main");
    assert_eq!(
        tls_get(addr, &pki.roots, "a.test", &[], "/")
            .await
            .server_cert,
        old
    );

    // Renew: new key and certificate written in place of the old ones (the watcher
    // reloads); new handshakes get the new certificate.
    let renewed = pki.issue(&["a.test"]);
    renewed.renew(dir.path(), "a");
    let new = renewed.der();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = tls_get(addr, &pki.roots, "a.test", &[], "/").await;
        assert_eq!(seen.status, 200);
        if seen.server_cert == new {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served: {}",
            weft.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A listener that requires (or, with `required: false`, accepts) client certificates from
/// the test CA and routes by the certificate's SPIFFE id.
fn mtls_config(dir: &Path, pki: &Pki, upstream: &Upstream, required: bool) -> String {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{ cert: {d}/a.pem, key: {d}/a.key }}\n      client_ca: {d}/ca.pem\n      require_client_certificate: {required}\n    routes:\n      - match: {{ peer: [ {{ name: uri_san, exact: \"spiffe://weft.test/ns/shop/sa/web\" }} ] }}\n        cluster: up\n      - direct_response: {{ status: 403, body: \"not web\\n\" }}\nclusters:\n{}",
        cluster_yaml("up", &[upstream.addr], ""),
        d = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_verifies_client_certificates_and_routes_by_spiffe_id() {
    let pki = Pki::new();
    let dir = TempDir::new();
    pki.leaf(dir.path(), "a", &["a.test"]);
    let up = Upstream::start("up").await;
    let weft = Weft::start(&mtls_config(dir.path(), &pki, &up, true), 1);
    let addr = weft.addr("main");
    let web = pki.client("spiffe://weft.test/ns/shop/sa/web");
    let db = pki.client("spiffe://weft.test/ns/shop/sa/db");

    let seen = tls_request(addr, &pki.roots, "a.test", &[], "/cart", Some(&web))
        .await
        .unwrap();
    assert_eq!((seen.status, seen.body.as_str()), (200, "up /cart"));
    let seen = tls_request(addr, &pki.roots, "a.test", &[], "/cart", Some(&db))
        .await
        .unwrap();
    assert_eq!((seen.status, seen.body.as_str()), (403, "not web\n"));
    // No client certificate: refused in the handshake.
    let refused = tls_request(addr, &pki.roots, "a.test", &[], "/cart", None).await;
    assert!(
        refused.is_err(),
        "a client without a certificate got through"
    );
    // A certificate from another CA: refused too.
    let other = Pki::new().client("spiffe://weft.test/ns/shop/sa/web");
    let refused = tls_request(addr, &pki.roots, "a.test", &[], "/cart", Some(&other)).await;
    assert!(
        refused.is_err(),
        "a certificate from another CA got through"
    );
    assert_eq!(up.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_are_verified_when_sent() {
    let pki = Pki::new();
    let dir = TempDir::new();
    pki.leaf(dir.path(), "a", &["a.test"]);
    let up = Upstream::start("up").await;
    let weft = Weft::start(&mtls_config(dir.path(), &pki, &up, false), 1);
    let addr = weft.addr("main");
    let web = pki.client("spiffe://weft.test/ns/shop/sa/web");
    let anonymous = tls_request(addr, &pki.roots, "a.test", &[], "/", None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 403);
    let seen = tls_request(addr, &pki.roots, "a.test", &[], "/", Some(&web))
        .await
        .unwrap();
    assert_eq!(seen.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_client_certificates_are_refused() {
    let pki = Pki::new();
    let dir = TempDir::new();
    pki.leaf(dir.path(), "a", &["a.test"]);
    let up = Upstream::start("up").await;
    let web = pki.client("spiffe://weft.test/ns/shop/sa/web");
    let stolen = pki.client("spiffe://weft.test/ns/shop/sa/web");
    std::fs::write(dir.path().join("crl.pem"), pki.crl(&[&stolen])).unwrap();
    let config = mtls_config(dir.path(), &pki, &up, true).replace(
        "      require_client_certificate: true\n",
        &format!(
            "      require_client_certificate: true\n      client_crl: {}/crl.pem\n",
            dir.path().display()
        ),
    );
    assert!(config.contains("client_crl"), "{config}");
    let weft = Weft::start(&config, 1);
    let addr = weft.addr("main");

    let seen = tls_request(addr, &pki.roots, "a.test", &[], "/cart", Some(&web))
        .await
        .unwrap();
    assert_eq!(seen.status, 200, "a certificate the list does not revoke");
    let refused = tls_request(addr, &pki.roots, "a.test", &[], "/cart", Some(&stolen)).await;
    assert!(
        refused.is_err(),
        "a revoked certificate got through: {:?}",
        refused.map(|s| s.status)
    );
    assert_eq!(up.request_count(), 1);
}

#[test]
fn bad_tls_config_names_the_field() {
    let err = validate_errors(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    tls:\n      certificates:\n        - { cert: missing.pem, key: missing.key }\n    routes: []\n",
    );
    assert!(
        err.contains("listeners[0].tls.certificates[0].cert:") && err.contains("missing.pem"),
        "{err}"
    );
}
