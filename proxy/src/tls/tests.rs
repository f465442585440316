use super::*;
use crate::config::raw::TlsCertificateConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A self-signed certificate for `names`, written as PEM into `dir` as `<file>.pem` and
/// `<file>.key`; returns the DER of the certificate.
fn cert(dir: &Path, file: &str, names: &[&str]) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(names).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

fn entry(file: &str, names: &[&str]) -> TlsCertificateConfig {
    TlsCertificateConfig {
        cert: format!("{file}.pem"),
        key: format!("{file}.key"),
        server_names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn raw(certificates: Vec<TlsCertificateConfig>) -> TlsConfig {
    serde_json::from_value(serde_json::json!({ "certificates": [] }))
        .map(|mut c: TlsConfig| {
            c.certificates = certificates;
            c
        })
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn sni_picks_exact_then_wildcard_then_the_first_certificate() {
    let dir = temp_dir("sni");
    let a = cert(&dir, "a", &["a.test"]);
    let wild = cert(&dir, "wild", &["*.b.test"]);
    let settings = TlsSettings::load(
        &raw(vec![entry("a", &["a.test"]), entry("wild", &["*.b.test"])]),
        &dir,
    )
    .unwrap();
    assert_eq!(settings.files.len(), 4);
    let mut resolver = SniResolver::default();
    // Rebuild a resolver like load() does to look at picks directly.
    for (file, names) in [("a", vec!["a.test"]), ("wild", vec!["*.b.test"])] {
        let chain = CertificateDer::pem_file_iter(dir.join(format!("{file}.pem")))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{file}.key"))).unwrap();
        let certified = Arc::new(CertifiedKey::new(
            chain,
            provider::sign::any_supported_type(&key).unwrap(),
        ));
        for name in names {
            resolver.add(name, certified.clone()).unwrap();
        }
        resolver.default.get_or_insert(certified);
    }
    let picked = |sni: Option<&str>| resolver.pick(sni).unwrap().cert[0].as_ref().to_vec();
    assert_eq!(picked(Some("a.test")), a.clone());
    assert_eq!(picked(Some("A.TEST")), a.clone());
    assert_eq!(picked(Some("x.b.test")), wild.clone());
    // One label only, and the bare domain is not covered by the wildcard.
    assert_eq!(picked(Some("y.x.b.test")), a.clone());
    assert_eq!(picked(Some("b.test")), a.clone());
    assert_eq!(picked(None), a.clone());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_field_and_the_file() {
    let dir = temp_dir("errors");
    cert(&dir, "a", &["a.test"]);
    cert(&dir, "b", &["b.test"]);
    let err = TlsSettings::load(&raw(vec![entry("missing", &[])]), &dir).unwrap_err();
    assert_eq!(err.0, ".certificates[0].cert");
    assert!(err.1.contains("missing.pem"), "{}", err.1);

    // a's certificate with b's key.
    let mut mixed = entry("a", &[]);
    mixed.key = "b.key".into();
    let err = TlsSettings::load(&raw(vec![mixed]), &dir).unwrap_err();
    assert_eq!(err.0, ".certificates[0].key");
    assert!(err.1.contains("is not the key of"), "{}", err.1);

    let err = TlsSettings::load(&raw(vec![entry("a", &["bad name!"])]), &dir).unwrap_err();
    assert_eq!(err.0, ".certificates[0].server_names[0]");

    let err = TlsSettings::load(&raw(vec![]), &dir).unwrap_err();
    assert_eq!(err.0, ".certificates");

    let mut old = raw(vec![entry("a", &[])]);
    old.min_version = "1.1".into();
    assert_eq!(TlsSettings::load(&old, &dir).unwrap_err().0, ".min_version");
    let mut alpn = raw(vec![entry("a", &[])]);
    alpn.alpn = vec!["h3".into()];
    assert_eq!(TlsSettings::load(&alpn, &dir).unwrap_err().0, ".alpn[0]");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA (`ca.pem`) and a revocation list it signed (`crl.pem`) revoking serial 7.
fn ca_and_crl(dir: &Path) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), params.self_signed(&key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(params, key);
    std::fs::write(dir.join("crl.pem"), super::test_pki::crl_pem(&issuer, &[7])).unwrap();
}

#[test]
fn client_revocation_lists_load_and_errors_name_the_field() {
    let dir = temp_dir("crl");
    cert(&dir, "a", &["a.test"]);
    ca_and_crl(&dir);
    let with = |ca: Option<&str>, crl: Option<&str>| {
        let mut raw = raw(vec![entry("a", &[])]);
        raw.client_ca = ca.map(String::from);
        raw.client_crl = crl.map(String::from);
        TlsSettings::load(&raw, &dir)
    };
    let settings = with(Some("ca.pem"), Some("crl.pem")).unwrap();
    assert!(
        settings.files.contains(&dir.join("crl.pem")),
        "the reload watcher follows the list: {:?}",
        settings.files
    );

    let err = with(None, Some("crl.pem")).unwrap_err();
    assert_eq!(err.0, ".client_crl");
    assert!(err.1.contains("set client_ca"), "{}", err.1);
    let err = with(Some("ca.pem"), Some("missing.pem")).unwrap_err();
    assert_eq!(err.0, ".client_crl");
    assert!(err.1.contains("missing.pem"), "{}", err.1);
    // A certificate where a list should be.
    let err = with(Some("ca.pem"), Some("ca.pem")).unwrap_err();
    assert_eq!(err.0, ".client_crl");
    assert!(
        err.1.contains("ca.pem") && err.1.contains("no certificate revocation list"),
        "{}",
        err.1
    );
    // A list that does not parse.
    std::fs::write(
        dir.join("bad.pem"),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let err = with(Some("ca.pem"), Some("bad.pem")).unwrap_err();
    assert_eq!(err.0, ".client_crl");
    assert!(
        err.1.contains("bad.pem") && err.1.contains("not a usable"),
        "{}",
        err.1
    );
    // A list where the CAs should be.
    let err = with(Some("crl.pem"), None).unwrap_err();
    assert_eq!(err.0, ".client_ca");
    let _ = std::fs::remove_dir_all(&dir);
}
