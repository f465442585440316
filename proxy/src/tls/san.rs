//! Verifying an upstream's certificate by identity rather than by server name: the chain
//! must lead to a trusted CA (as usual), and the certificate must carry one of the
//! configured identities as a DNS or URI subject alternative name. Service meshes name
//! workloads this way (a SPIFFE id in a URI SAN), where the endpoint's address or host
//! name is not in the certificate at all.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use super::PeerIdentity;

/// Accepts a certificate that the usual verifier accepts but for its server name (the
/// chain, and revocation when it has lists), and that names one of `allowed`.
#[derive(Debug)]
pub struct SanVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    allowed: Vec<String>,
}

impl SanVerifier {
    pub fn new(webpki: Arc<WebPkiServerVerifier>, allowed: Vec<String>) -> SanVerifier {
        SanVerifier { webpki, allowed }
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
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // The server name is checked last, after the chain and revocation: a certificate
        // refused only for it is judged by its identities instead.
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_)
            | Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(other) => return Err(other),
        }
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
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
