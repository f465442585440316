//! Verifying an upstream's certificate by identity rather than by server name: the chain
//! must lead to a trusted CA (as usual), and the certificate must carry one of the
//! configured identities as a DNS or URI subject alternative name. Service meshes name
//! workloads this way (a SPIFFE id in a URI SAN), where the endpoint's address or host
//! name is not in the certificate at all.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use super::PeerIdentity;

/// Accepts a certificate that chains to `roots` and names one of `allowed`.
#[derive(Debug)]
pub struct SanVerifier {
    roots: Arc<RootCertStore>,
    allowed: Vec<String>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SanVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        allowed: Vec<String>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> SanVerifier {
        SanVerifier {
            roots,
            allowed,
            algorithms,
        }
    }

    /// Whether the certificate (DER) carries one of the allowed identities.
    fn names_one(&self, der: &[u8]) -> bool {
        PeerIdentity::from_der(der).is_some_and(|id| {
            id.uri_sans
                .iter()
                .chain(&id.dns_sans)
                .any(|name| self.allowed.contains(name))
        })
    }
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.names_one(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
