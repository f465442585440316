//! TLS from weft to a cluster's endpoints, and mTLS with a client certificate.
//!
//! A cluster's `tls` block is read when the config is validated: the CA bundle, and the
//! client certificate and key when given, are parsed (the key checked against the
//! certificate), and the result is one `rustls::ClientConfig` for the cluster plus the
//! name each endpoint's certificate is verified against. Verification is always on: the
//! chain must lead to a CA of `ca_file`, and the certificate must be valid for the
//! endpoint's server name (a DNS name, sent as SNI, or an IP address), or, with
//! `match_subject_alt_names`, carry one of the identities listed there (see `san`).
//!
//! The files' contents are part of the value's identity ([`PartialEq`]), so a reload after
//! a rotated client certificate sees a changed cluster and builds new connections with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::ring as provider;
use rustls::sign::SingleCertAndKey;
use rustls_pki_types::ServerName;
use sha2::{Digest, Sha256};

use super::LoadError;
use super::pem::{self, PemFile};
use super::san::SanVerifier;
use crate::config::raw::{UpstreamProtocol, UpstreamTlsConfig};

/// A cluster's TLS, ready to connect with.
#[derive(Debug)]
pub struct UpstreamTls {
    pub client_config: Arc<ClientConfig>,
    /// The name each endpoint is verified as, in the order of the cluster's endpoints.
    pub server_names: Vec<ServerName<'static>>,
    /// The ALPN id of the cluster's protocol: an upstream that picks another one cannot
    /// be spoken to.
    pub protocol_alpn: &'static str,
    /// The CA, certificate and key files, for the reload watcher.
    pub files: Vec<PathBuf>,
    /// A hash of the settings and of the files' contents.
    fingerprint: [u8; 32],
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && self.server_names == other.server_names
            && self.files == other.files
    }
}

impl UpstreamTls {
    /// Reads and checks a cluster's TLS config. `endpoints` are the cluster's endpoint
    /// addresses as written (`host:port` or `ip:port`); relative paths are taken from
    /// `base_dir`.
    pub fn load(
        raw: &UpstreamTlsConfig,
        protocol: UpstreamProtocol,
        endpoints: &[&str],
        base_dir: &Path,
    ) -> Result<UpstreamTls, LoadError> {
        let protocol_alpn = match protocol {
            UpstreamProtocol::Http1 => "http/1.1",
            UpstreamProtocol::Http2 => "h2",
        };
        let alpn = match &raw.alpn {
            None => vec![protocol_alpn.to_string()],
            Some(list) => check_alpn(list, protocol_alpn)?,
        };
        let server_names = server_names(raw.sni.as_deref(), endpoints)?;

        let ca = PemFile::read(base_dir, &raw.ca_file).map_err(|e| field(".ca_file", e))?;
        let roots = ca.root_store().map_err(|e| field(".ca_file", e))?;
        let (crl, crls) = PemFile::read_crls(base_dir, raw.crl_file.as_deref())
            .map_err(|e| field(".crl_file", e))?;
        let client_cert = match (&raw.certificate, &raw.key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(field(".certificate", "needs a key too".to_string()));
            }
            (None, Some(_)) => {
                return Err(field(".key", "needs a certificate too".to_string()));
            }
            (Some(cert), Some(key)) => {
                let cert = PemFile::read(base_dir, cert).map_err(|e| field(".certificate", e))?;
                let key = PemFile::read(base_dir, key).map_err(|e| field(".key", e))?;
                let certified = pem::certified_key(&cert, &key).map_err(|(part, message)| {
                    let name = match part {
                        pem::Part::Certificate => ".certificate",
                        pem::Part::Key => ".key",
                    };
                    field(name, message)
                })?;
                Some((certified, cert, key))
            }
        };

        let mut hash = Sha256::new();
        for text in &alpn {
            hash_part(&mut hash, text.as_bytes());
        }
        let mut files = Vec::new();
        let pem_files = std::iter::once(&ca)
            .chain(
                client_cert
                    .as_ref()
                    .into_iter()
                    .flat_map(|(_, cert, key)| [cert, key]),
            )
            .chain(crl.as_ref());
        for file in pem_files {
            hash_part(&mut hash, file.path.as_os_str().as_encoded_bytes());
            hash_part(&mut hash, &file.bytes);
            files.push(file.path.clone());
        }

        for (i, name) in raw.match_subject_alt_names.iter().enumerate() {
            if name.is_empty() {
                return Err(field(
                    &format!(".match_subject_alt_names[{i}]"),
                    "empty: give a DNS name or a URI (such as a SPIFFE id)".to_string(),
                ));
            }
            hash_part(&mut hash, name.as_bytes());
        }

        let provider = Arc::new(provider::default_provider());
        // The chain, and with `crl_file` the revocation of each certificate below the CA.
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(crls)
            .build()
            .map_err(|e| match (e, &crl) {
                (VerifierBuilderError::InvalidCrl(e), Some(file)) => {
                    field(".crl_file", file.unusable_crl(e))
                }
                (e, _) => field(".ca_file", format!("{}: {e}", ca.path.display())),
            })?;
        let versions =
            super::versions_from(&raw.min_version).map_err(|e| field(".min_version", e))?;
        hash_part(&mut hash, raw.min_version.as_bytes());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| (String::new(), e.to_string()))?;
        let builder = if raw.match_subject_alt_names.is_empty() {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SanVerifier::new(
                    webpki,
                    raw.match_subject_alt_names.clone(),
                )))
        };
        let mut config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((certified, _, _)) => {
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(UpstreamTls {
            client_config: Arc::new(config),
            server_names,
            protocol_alpn,
            files,
            fingerprint: hash.finalize().into(),
        })
    }
}

fn field(name: &str, message: String) -> LoadError {
    (name.to_string(), message)
}

/// Adds one length-prefixed part to a fingerprint (so that parts cannot run together).
fn hash_part(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

/// Checks a written ALPN list: weft speaks `h2` and `http/1.1`, and the cluster's own
/// protocol must be among those offered.
fn check_alpn(list: &[String], protocol_alpn: &str) -> Result<Vec<String>, LoadError> {
    for (i, protocol) in list.iter().enumerate() {
        if protocol != "h2" && protocol != "http/1.1" {
            return Err(field(
                &format!(".alpn[{i}]"),
                format!("{protocol:?}: weft speaks \"h2\" and \"http/1.1\" to upstreams"),
            ));
        }
    }
    if !list.is_empty() && !list.iter().any(|p| p == protocol_alpn) {
        return Err(field(
            ".alpn",
            format!(
                "must include {protocol_alpn:?}, the cluster's protocol (or be empty to offer none)"
            ),
        ));
    }
    Ok(list.to_vec())
}

/// The name each endpoint is verified as: `sni` when given, else the endpoint's hostname,
/// or its IP address for an endpoint written as `ip:port`.
fn server_names(
    sni: Option<&str>,
    endpoints: &[&str],
) -> Result<Vec<ServerName<'static>>, LoadError> {
    if let Some(sni) = sni {
        let name = ServerName::try_from(sni.to_string()).map_err(|e| {
            field(
                ".sni",
                format!("{sni:?} is not a DNS name or an IP address: {e}"),
            )
        })?;
        return Ok(vec![name; endpoints.len()]);
    }
    endpoints
        .iter()
        .enumerate()
        .map(|(i, address)| {
            if let Ok(addr) = address.parse::<SocketAddr>() {
                return Ok(ServerName::IpAddress(addr.ip().into()));
            }
            let host = address.rsplit_once(':').map_or(*address, |(host, _)| host);
            ServerName::try_from(host.to_string()).map_err(|e| {
                field(
                    ".sni",
                    format!(
                        "endpoints[{i}]: {host:?} cannot be verified as a server name ({e}); set sni"
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
