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
