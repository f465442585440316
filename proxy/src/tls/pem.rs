//! Reading the PEM files TLS settings name: certificate chains, private keys, CA bundles.
//! Listener and upstream TLS share these, so a bad file reads the same wherever it is
//! named. Every error starts with the file's path.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::crypto::ring as provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A PEM file read whole: parsing works on these bytes, so what is hashed (to notice a
/// change on reload) is exactly what was parsed.
#[derive(Debug)]
pub struct PemFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl PemFile {
    /// Reads `base_dir.join(file)`.
    pub fn read(base_dir: &Path, file: &str) -> Result<PemFile, String> {
        let path = base_dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(PemFile { path, bytes }),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Every certificate in the file, in order; an error when there is none.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        self.all("no certificate in it")
    }

    /// The first private key in the file (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| self.problem(e))
    }

    /// Every certificate revocation list in the file (`X509 CRL` blocks); an error when
    /// there is none.
    pub fn crls(&self) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
        self.all("no certificate revocation list (X509 CRL) in it")
    }

    /// Reads the revocation lists of `file`, when there is one: the file (to watch and
    /// hash) and its lists; no file and no lists without it.
    pub fn read_crls(
        base_dir: &Path,
        file: Option<&str>,
    ) -> Result<(Option<PemFile>, Vec<CertificateRevocationListDer<'static>>), String> {
        let Some(file) = file else {
            return Ok((None, Vec::new()));
        };
        let crl = PemFile::read(base_dir, file)?;
        let crls = crl.crls()?;
        Ok((Some(crl), crls))
    }

    /// The problem with a list of this file that a rustls verifier refused to build with
    /// (its builders' `InvalidCrl`, which names no file).
    pub fn unusable_crl(&self, error: impl std::fmt::Debug) -> String {
        self.problem(format!(
            "not a usable certificate revocation list ({error:?})"
        ))
    }

    /// Every block of one kind in the file, in order; `none` is the error when there is
    /// none.
    fn all<T: PemObject>(&self, none: &str) -> Result<Vec<T>, String> {
        let items = T::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.problem(e))?;
        if items.is_empty() {
            return Err(self.problem(none));
        }
        Ok(items)
    }

    /// The file's certificates as trust anchors.
    pub fn root_store(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        for ca in self.certificates()? {
            roots
                .add(ca)
                .map_err(|e| self.problem(format!("not a usable CA certificate: {e}")))?;
        }
        Ok(roots)
    }

    fn problem(&self, what: impl std::fmt::Display) -> String {
        format!("{}: {what}", self.path.display())
    }
}

/// Which of the two files of a certificate a [`certified_key`] error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Certificate,
    Key,
}

/// A certificate chain with its private key, checked to belong together.
pub fn certified_key(cert: &PemFile, key: &PemFile) -> Result<CertifiedKey, (Part, String)> {
    let chain = cert
        .certificates()
        .map_err(|message| (Part::Certificate, message))?;
    let private = key.private_key().map_err(|message| (Part::Key, message))?;
    let signing = provider::sign::any_supported_type(&private)
        .map_err(|e| (Part::Key, key.problem(format!("unsupported key: {e}"))))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        let message = format!(
            "{} is not the key of {}: {e}",
            key.path.display(),
            cert.path.display()
        );
        (Part::Key, message)
    })?;
    Ok(certified)
}
