//! Test certificates: a CA made with rcgen at test time and certificates it signs (no key
//! is committed), as PEM files for weft's config and as rustls configs for test clients
//! and upstreams.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA.
pub struct Pki {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
    pub roots: Arc<RootCertStore>,
}

/// A certificate the CA signed, and its key.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's serial number (unique among the certificates of a test run).
    pub serial: u64,
    pub key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl Issued {
    /// The leaf certificate's DER.
    pub fn der(&self) -> Vec<u8> {
        self.chain[0].as_ref().to_vec()
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }

    /// Writes `<file>.pem` (the certificate) and `<file>.key` into `dir`.
    pub fn write(&self, dir: &Path, file: &str) {
        std::fs::write(dir.join(format!("{file}.pem")), &self.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), &self.key_pem).unwrap();
    }

    /// Replaces `<file>.key` and `<file>.pem` in `dir` as a renewal would: each written
    /// beside the old one, then renamed over it.
    pub fn renew(&self, dir: &Path, file: &str) {
        for (ext, text) in [("key", &self.key_pem), ("pem", &self.cert_pem)] {
            let tmp = dir.join(format!("{file}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(format!("{file}.{ext}"))).unwrap();
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "weft test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        Pki {
            ca_pem: cert.pem(),
            ca: rcgen::Issuer::new(params, key),
            roots: Arc::new(roots),
        }
    }

    /// Writes the CA certificate to `dir/<file>`.
    pub fn write_ca(&self, dir: &Path, file: &str) {
        std::fs::write(dir.join(file), &self.ca_pem).unwrap();
    }

    /// A certificate revocation list from this CA (PEM) revoking `revoked`.
    pub fn crl(&self, revoked: &[&Issued]) -> String {
        rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|issued| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(issued.serial),
                    revocation_time: rcgen::date_time_ymd(2026, 1, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)
        .unwrap()
        .pem()
        .unwrap()
    }

    /// A certificate for `names` (DNS names, IP addresses such as `127.0.0.1`, or URIs
    /// such as a SPIFFE id `spiffe://trust/ns/a/sa/b`).
    pub fn issue(&self, names: &[&str]) -> Issued {
        let (uris, names): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| n.contains("://"));
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(uri.try_into().unwrap()));
        }
        self.sign(params)
    }

    /// Writes `<file>.pem` and `<file>.key` for a certificate with `names` into `dir`;
    /// returns the certificate's DER.
    pub fn leaf(&self, dir: &Path, file: &str, names: &[&str]) -> Vec<u8> {
        let issued = self.issue(names);
        issued.write(dir, file);
        issued.der()
    }

    /// A client certificate whose subject alternative name is the URI `uri`.
    pub fn client(&self, uri: &str) -> Issued {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test client");
        self.sign(params)
    }

    fn sign(&self, mut params: rcgen::CertificateParams) -> Issued {
        static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued {
            chain: vec![cert.der().clone()],
            serial,
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server config presenting a certificate for `names` and offering `alpn`; with
    /// `client_ca`, clients must present a certificate that CA signed.
    pub fn server_config(
        &self,
        names: &[&str],
        alpn: &[&str],
        client_ca: Option<&Pki>,
    ) -> Arc<rustls::ServerConfig> {
        self.serve(&self.issue(names), alpn, client_ca)
    }

    /// A server config presenting `issued` (a certificate this CA signed); as
    /// [`Pki::server_config`] otherwise.
    pub fn serve(
        &self,
        issued: &Issued,
        alpn: &[&str],
        client_ca: Option<&Pki>,
    ) -> Arc<rustls::ServerConfig> {
        self.serve_versions(issued, alpn, client_ca, rustls::DEFAULT_VERSIONS)
    }

    /// As [`Pki::serve`], speaking only the TLS `versions` given.
    pub fn serve_versions(
        &self,
        issued: &Issued,
        alpn: &[&str],
        client_ca: Option<&Pki>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    ca.roots.clone(),
                    provider,
                )
                .build()
                .unwrap(),
            ),
        };
        let mut config = builder
            .with_single_cert(issued.chain.clone(), issued.key())
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}
