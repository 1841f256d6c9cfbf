//! TLS for `chorus/4`: each endpoint proves its ed25519 node key.
//!
//! Every node presents a self-signed X.509 certificate whose subject public key is its ed25519
//! node key. No certificate authority is involved: what a dialer checks is that the key in the
//! server's certificate *is* the node id it meant to reach, and that the handshake signature
//! verifies under that key (TLS 1.3 CertificateVerify), which proves possession of the secret.
//! The server accepts any such client certificate and learns the client's node id from it;
//! licensing decisions bind to that id.

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};
use protocol::wire::ALPN;
use protocol::{Identity, NodeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::TransportError;

/// Server name put in every certificate and sent in SNI. Identity comes from the key, not
/// from this name.
pub const SERVER_NAME: &str = "chorus.node";

/// A node's certificate and key in the forms rustls wants.
pub(crate) struct CertifiedIdentity {
    pub(crate) certificate: CertificateDer<'static>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

impl CertifiedIdentity {
    pub(crate) fn new(identity: &Identity) -> Result<Self, TransportError> {
        let key = PrivatePkcs8KeyDer::from(identity.to_pkcs8_der().to_vec());
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(|error| TransportError::Tls(format!("node key: {error}")))?;
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .map_err(|error| TransportError::Tls(format!("certificate params: {error}")))?;
        let certificate = params
            .self_signed(&key_pair)
            .map_err(|error| TransportError::Tls(format!("self-signing: {error}")))?;
        Ok(Self {
            certificate: certificate.der().clone(),
            key,
        })
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ed25519 node id in a certificate, if it carries an ed25519 key.
pub fn node_id_of_certificate(certificate: &[u8]) -> Result<NodeId, rustls::Error> {
    let (rest, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    if !rest.is_empty() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ));
    }
    let key = parsed.public_key();
    if key.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(NotEd25519))),
        ));
    }
    let bytes: [u8; 32] = key
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    Ok(NodeId(bytes))
}

/// A certificate whose key is not ed25519, so it names no node.
#[derive(Debug, thiserror::Error)]
#[error("certificate key is not ed25519")]
struct NotEd25519;

/// Verifies a TLS 1.3 handshake signature under the certificate's ed25519 key.
fn verify_handshake_signature(
    message: &[u8],
    certificate: &CertificateDer<'_>,
    signed: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if signed.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::NoSignatureSchemesInCommon,
        ));
    }
    let node = node_id_of_certificate(certificate)?;
    let key = VerifyingKey::from_bytes(node.as_bytes())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let signature = Signature::from_slice(signed.signature())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))?;
    key.verify_strict(message, &signature)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))?;
    Ok(HandshakeSignatureValid::assertion())
}

/// Dialer side: the server must be the node we expect.
#[derive(Debug)]
struct ExpectNode(NodeId);

impl ServerCertVerifier for ExpectNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = node_id_of_certificate(end_entity)?;
        if found != self.0 {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Server side: any client with an ed25519 node certificate; its id is read after the handshake.
#[derive(Debug)]
struct AnyNode;

impl ClientCertVerifier for AnyNode {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        node_id_of_certificate(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

pub(crate) fn server_crypto(
    certified: &CertifiedIdentity,
) -> Result<rustls::ServerConfig, TransportError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TransportError::Tls(error.to_string()))?
        .with_client_cert_verifier(Arc::new(AnyNode))
        .with_single_cert(vec![certified.certificate.clone()], certified.key_der())
        .map_err(|error| TransportError::Tls(error.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

pub(crate) fn client_crypto(
    certified: &CertifiedIdentity,
    expected: NodeId,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TransportError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TransportError::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExpectNode(expected)))
        .with_client_auth_cert(vec![certified.certificate.clone()], certified.key_der())
        .map_err(|error| TransportError::Tls(error.to_string()))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_node_key() {
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let certified = CertifiedIdentity::new(&identity).unwrap();
        assert_eq!(
            node_id_of_certificate(&certified.certificate).unwrap(),
            identity.node_id()
        );
        assert!(node_id_of_certificate(b"not a certificate").is_err());
        let mut trailing = certified.certificate.to_vec();
        trailing.push(0);
        assert!(node_id_of_certificate(&trailing).is_err());
    }
}
