use std::path::Path;

use rustls::crypto::ring as provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::tls::test_pki::{TestCa, TestDir};

/// A TLS server on loopback presenting `dir/api.pem` and choosing from `alpn`; it accepts
/// connections until the test ends.
async fn server(dir: &Path, alpn: &[&str]) -> SocketAddr {
    let chain = CertificateDer::pem_file_iter(dir.join("api.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("api.key")).unwrap();
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1];
                    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                }
            });
        }
    });
    addr
}

/// The connector of an http1 cluster at `addr` with sni `api.test` and `tls_extra` in its
/// tls block, and its handshake error counter.
fn connector(dir: &TestDir, addr: SocketAddr, tls_extra: &str) -> (Connector, Counter) {
    let yaml = format!(
        "listeners:\n  - name: a\n    address: 127.0.0.1:0\n    routes: []\nclusters:\n  - name: c\n    endpoints: [\"{addr}\"]\n    tls: {{ ca_file: ca.pem, sni: api.test{tls_extra} }}\n"
    );
    let config = crate::config::load_str_in("test.yaml", &yaml, dir.path()).unwrap();
    let counter = Counter::default();
    (
        Connector::for_cluster(&config.clusters[0], counter.clone()),
        counter,
    )
}

#[tokio::test]
async fn a_trusted_upstream_is_reached_over_tls() {
    let dir = TestDir::new("connect-ok");
    TestCa::new(&dir).issue(&dir, "api");
    let addr = server(dir.path(), &["http/1.1"]).await;
    let (connector, errors) = connector(&dir, addr, "");
    assert_eq!(connector.scheme(), http::uri::Scheme::HTTPS);
    let io = connector.connect(addr).await.unwrap();
    assert!(matches!(io, UpstreamIo::Tls(_)));
    assert_eq!(errors.get(), 0);
}

#[tokio::test]
async fn an_upstream_choosing_another_protocol_is_a_counted_failure() {
    let dir = TestDir::new("connect-alpn");
    TestCa::new(&dir).issue(&dir, "api");
    let addr = server(dir.path(), &["h2"]).await;
    // The http1 cluster offers h2 too, and the server takes it.
    let (connector, errors) = connector(&dir, addr, ", alpn: [h2, http/1.1]");
    let error = connector.connect(addr).await.err().unwrap();
    assert!(
        matches!(&error, ConnectError::Alpn { chosen, wanted: "http/1.1" } if chosen == "h2"),
        "{error:?}"
    );
    assert_eq!(errors.get(), 1);
}
