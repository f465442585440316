//! TLS with rustls (ring as the crypto provider): termination on listeners (here) and
//! TLS to upstream clusters ([`upstream`]).
//!
//! A listener's `tls` block is read when the config is validated: every certificate and
//! key file is parsed, each key is checked against its certificate, and the result is one
//! `rustls::ServerConfig` that picks the certificate by the client's SNI. It lives in the
//! snapshot, so a reload (the watcher follows the certificate files too) makes new
//! connections use new certificates while open ones keep theirs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::raw::TlsConfig;

mod pem;
mod san;
#[cfg(test)]
pub(crate) mod test_pki;
pub mod upstream;

use pem::PemFile;
pub use upstream::UpstreamTls;

/// A listener's TLS, ready to accept with.
#[derive(Debug)]
pub struct TlsSettings {
    pub server_config: Arc<ServerConfig>,
    pub handshake_timeout: Duration,
    /// The certificate and key files, for the reload watcher.
    pub files: Vec<PathBuf>,
}

/// What a failed load is about: the field below `tls` (like `.certificates[1].key`) and
/// the problem.
type LoadError = (String, String);

impl TlsSettings {
    /// Reads and checks the listener's TLS config; relative paths are taken from
    /// `base_dir`.
    pub fn load(raw: &TlsConfig, base_dir: &Path) -> Result<TlsSettings, LoadError> {
        if raw.certificates.is_empty() {
            return Err((
                ".certificates".to_string(),
                "at least one certificate is required".to_string(),
            ));
        }
        let mut files = Vec::new();
        let mut resolver = SniResolver::default();
        for (i, entry) in raw.certificates.iter().enumerate() {
            let field = |name: &str| format!(".certificates[{i}].{name}");
            let cert = PemFile::read(base_dir, &entry.cert).map_err(|e| (field("cert"), e))?;
            let key = PemFile::read(base_dir, &entry.key).map_err(|e| (field("key"), e))?;
            let certified = pem::certified_key(&cert, &key).map_err(|(part, message)| {
                let name = match part {
                    pem::Part::Certificate => "cert",
                    pem::Part::Key => "key",
                };
                (field(name), message)
            })?;
            let certified = Arc::new(certified);
            for (j, name) in entry.server_names.iter().enumerate() {
                resolver
                    .add(name, certified.clone())
                    .map_err(|message| (field(&format!("server_names[{j}]")), message))?;
            }
            resolver.default.get_or_insert(certified);
            files.push(cert.path);
            files.push(key.path);
        }
        let versions =
            versions_from(&raw.min_version).map_err(|e| (".min_version".to_string(), e))?;
        for (i, protocol) in raw.alpn.iter().enumerate() {
            if protocol != "h2" && protocol != "http/1.1" {
                return Err((
                    format!(".alpn[{i}]"),
                    format!("{protocol:?}: weft serves \"h2\" and \"http/1.1\""),
                ));
            }
        }
        let builder = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(versions)
            .map_err(|e| (String::new(), e.to_string()))?;
        if raw.client_crl.is_some() && raw.client_ca.is_none() {
            return Err((
                ".client_crl".to_string(),
                "revocation lists apply to client certificates: set client_ca too".to_string(),
            ));
        }
        let (crl, crls) = PemFile::read_crls(base_dir, raw.client_crl.as_deref())
            .map_err(|e| (".client_crl".to_string(), e))?;
        let builder = match &raw.client_ca {
            None => builder.with_no_client_auth(),
            Some(file) => {
                let ca =
                    PemFile::read(base_dir, file).map_err(|e| (".client_ca".to_string(), e))?;
                let verifier =
                    client_verifier(&ca, raw.require_client_certificate, crls, crl.as_ref())?;
                files.push(ca.path);
                files.extend(crl.map(|crl| crl.path));
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = raw.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(TlsSettings {
            server_config: Arc::new(config),
            handshake_timeout: raw.handshake_timeout.0,
            files,
        })
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The TLS versions from `min_version` ("1.2" or "1.3") up.
fn versions_from(
    min_version: &str,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
    match min_version {
        "1.2" => Ok(rustls::ALL_VERSIONS),
        "1.3" => Ok(TLS13_ONLY),
        other => Err(format!(
            "{other:?} is not a TLS version weft accepts (\"1.2\" or \"1.3\")"
        )),
    }
}

/// Verifies client certificates against the CAs in `ca_file` (mTLS), and, with `crls` (read
/// from `crl_file`), their revocation: every certificate of the chain below the CA must be
/// covered by one of the lists (as Envoy's default), and one they revoke is refused.
fn client_verifier(
    ca_file: &PemFile,
    required: bool,
    crls: Vec<rustls_pki_types::CertificateRevocationListDer<'static>>,
    crl_file: Option<&PemFile>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, LoadError> {
    let ca_problem = |e: String| (".client_ca".to_string(), e);
    let roots = ca_file.root_store().map_err(ca_problem)?;
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(provider::default_provider()),
    )
    .with_crls(crls);
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| match (e, crl_file) {
        (rustls::server::VerifierBuilderError::InvalidCrl(e), Some(file)) => {
            (".client_crl".to_string(), file.unusable_crl(e))
        }
        (e, _) => ca_problem(format!("{}: {e}", ca_file.path.display())),
    })
}

/// Picks a certificate by SNI: an exact name first, then the longest `*.suffix`, else the
/// default (the first certificate).
#[derive(Debug, Default)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// (".example.com", key) for `*.example.com`.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn add(&mut self, name: &str, key: Arc<CertifiedKey>) -> Result<(), String> {
        let name = name.trim().to_ascii_lowercase();
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        match name.strip_prefix("*.") {
            Some(suffix) if valid(suffix) => {
                self.wildcard.push((format!(".{suffix}"), key));
                self.wildcard
                    .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
                Ok(())
            }
            None if valid(&name) => {
                self.exact.insert(name, key);
                Ok(())
            }
            _ => Err(format!(
                "{name:?} is not a host name (a.example.com) or a wildcard (*.example.com)"
            )),
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni.map(str::to_ascii_lowercase) {
            if let Some(key) = self.exact.get(&name) {
                return Some(key.clone());
            }
            // A wildcard covers exactly one label: *.example.com is a.example.com, not
            // a.b.example.com.
            let found = self.wildcard.iter().find(|(suffix, _)| {
                name.strip_suffix(suffix.as_str())
                    .is_some_and(|label| !label.is_empty() && !label.contains('.'))
            });
            if let Some((_, key)) = found {
                return Some(key.clone());
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// What a request knows of its connection's TLS.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub version: &'static str,
    /// The client certificate's identity, when the client sent one (it was verified
    /// against `client_ca` during the handshake).
    pub peer: Option<PeerIdentity>,
}

/// Who the client certificate says the client is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject as RFC 4514 text (`CN=web, O=example`).
    pub subject: String,
    /// URI subject alternative names (a SPIFFE id is one: `spiffe://trust/ns/a/sa/web`).
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
}

impl PeerIdentity {
    /// Reads the identity out of a DER certificate; None when it does not parse (the
    /// handshake verified it, so that does not happen in practice).
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut identity = PeerIdentity {
            subject: cert.subject().to_string(),
            ..PeerIdentity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => identity.uri_sans.push(uri.to_string()),
                    GeneralName::DNSName(dns) => identity.dns_sans.push(dns.to_string()),
                    _ => {}
                }
            }
        }
        Some(identity)
    }
}

impl TlsInfo {
    pub fn of(connection: &rustls::ServerConnection) -> TlsInfo {
        TlsInfo {
            sni: connection.server_name().map(str::to_string),
            alpn: connection
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            version: match connection.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "unknown",
            },
            peer: connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| PeerIdentity::from_der(leaf.as_ref())),
        }
    }
}

#[cfg(test)]
mod tests;
