//! TLS the way LocalSend uses it: no certificate authority, no host names. A device is its
//! certificate's fingerprint; a client checks the server's against the fingerprint it expects
//! inside the handshake, and a server asks for (but, unlike 1.18, does not require) the
//! client's, whose fingerprint is then the client's identity. The handshake's own signature
//! check proves the peer holds the certificate's key.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::cert::{DeviceCert, fingerprint, same_fingerprint};

// ring's suites: ring is the crypto the rest of lanyard uses (aws-lc-rs, with the
// post-quantum groups, is a large C build); LocalSend's apps offer no post-quantum group either.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn key_of(cert: &DeviceCert) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()))
}

/// The handshake signatures: checked with ring's algorithms, the same on both sides.
macro_rules! handshake_signatures {
    ($algorithms:tt) => {
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(m, c, d, &self.$algorithms)
        }

        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(m, c, d, &self.$algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.$algorithms.supported_schemes()
        }
    };
}

/// Any client certificate, or none: its fingerprint is read after the handshake.
#[derive(Debug)]
struct AnyClient(WebPkiSupportedAlgorithms);

impl ClientCertVerifier for AnyClient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!(0);
}

/// The server side: our certificate, client certificates asked for, HTTP/1.1.
pub fn server_config(cert: &DeviceCert) -> Result<Arc<rustls::ServerConfig>> {
    let p = provider();
    let algorithms = p.signature_verification_algorithms;
    let mut config = rustls::ServerConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(Arc::new(AnyClient(algorithms)))
        .with_single_cert(vec![CertificateDer::from(cert.cert.clone())], key_of(cert))
        .context("the LocalSend certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server's certificate must hash to `expected`; with none expected (a device reached by
/// address), any is taken and its fingerprint kept in `seen` for the caller to pin.
#[derive(Debug)]
pub struct Pinned {
    expected: Option<String>,
    pub seen: Mutex<Option<String>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if let Some(expected) = &self.expected
            && !same_fingerprint(expected, &got)
        {
            return Err(rustls::Error::General(format!(
                "the device's certificate is not the one it announced (fingerprint {}…, expected {}…)",
                &got[..8],
                expected.get(..8).unwrap_or(expected)
            )));
        }
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(algorithms);
}

/// The client side: our certificate presented, the server's pinned to `expected`.
pub fn client_config(cert: &DeviceCert, expected: Option<&str>) -> Result<(Arc<rustls::ClientConfig>, Arc<Pinned>)> {
    let p = provider();
    let pinned = Arc::new(Pinned {
        expected: expected.map(str::to_string),
        seen: Mutex::new(None),
        algorithms: p.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(pinned.clone())
        .with_client_auth_cert(vec![CertificateDer::from(cert.cert.clone())], key_of(cert))
        .context("the LocalSend certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), pinned))
}
