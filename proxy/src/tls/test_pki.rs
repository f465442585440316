//! Test certificates for unit tests: a CA and certificates it signs, made with rcgen at
//! test time and written as PEM files into a temporary directory.

use std::path::{Path, PathBuf};

/// A temporary directory, removed on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("weft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.0.join(file), text).unwrap();
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate revocation list (PEM) from `issuer` revoking the serial numbers `revoked`.
pub fn crl_pem(issuer: &rcgen::Issuer<'static, rcgen::KeyPair>, revoked: &[u64]) -> String {
    rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2036, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(*serial),
                revocation_time: rcgen::date_time_ymd(2026, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
    .pem()
    .unwrap()
}

/// A CA whose certificate is `ca.pem` in a test directory.
pub struct TestCa(rcgen::Issuer<'static, rcgen::KeyPair>);

impl TestCa {
    /// Makes a CA and writes its certificate to `dir/ca.pem`.
    pub fn new(dir: &TestDir) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        dir.write("ca.pem", &params.self_signed(&key).unwrap().pem());
        TestCa(rcgen::Issuer::new(params, key))
    }

    /// Writes `file`: a revocation list from this CA revoking the serial numbers `revoked`.
    pub fn write_crl(&self, dir: &TestDir, file: &str, revoked: &[u64]) {
        dir.write(file, &crl_pem(&self.0, revoked));
    }

    /// Writes `<name>.pem` and `<name>.key`: a certificate for `<name>.test` that this CA
    /// signed, and its key.
    pub fn issue(&self, dir: &TestDir, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.test")])
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        dir.write(&format!("{name}.pem"), &cert.pem());
        dir.write(&format!("{name}.key"), &key.serialize_pem());
    }
}
