//! HTTPS with rustls: certificate loading, the server configuration, and
//! reloading the certificate on SIGHUP without a restart.
//!
//! Only TLS 1.2 and 1.3 (rustls has no older versions), only
//! forward-secret AEAD cipher suites (ECDHE with AES-GCM or ChaCha20-Poly1305,
//! which is all the ring provider offers), ALPN h2 and http/1.1 (added by
//! actix-web).

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// A certificate or key that cannot be used, naming the file and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct TlsError {
    pub file: String,
    pub problem: String,
}

fn tls_error(file: &Path, problem: impl Into<String>) -> TlsError {
    TlsError {
        file: file.display().to_string(),
        problem: problem.into(),
    }
}

/// The crypto provider Custos uses (installed once at start).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs the process-wide default provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads and checks a certificate chain and its private key.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_bytes = std::fs::read(&files.cert)
        .map_err(|e| tls_error(&files.cert, format!("cannot read the certificate: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            tls_error(
                &files.cert,
                format!("is not a valid PEM certificate chain: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(tls_error(&files.cert, "contains no PEM certificate"));
    }
    let key_bytes = std::fs::read(&files.key)
        .map_err(|e| tls_error(&files.key, format!("cannot read the private key: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        tls_error(
            &files.key,
            format!("is not a PEM private key (PKCS#8, RSA or SEC1): {e}"),
        )
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| tls_error(&files.key, format!("is not a usable private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(tls_error(
            &files.key,
            format!("does not match the certificate in {}", files.cert.display()),
        )),
    }
}

/// Serves whichever certificate was loaded last.
#[derive(Debug)]
pub struct ReloadableCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(Self {
            files: files.clone(),
            current: RwLock::new(Arc::new(load_certified_key(files)?)),
        })
    }

    /// Loads the files again; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(load_certified_key(&self.files)?);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(current) => Some(current.clone()),
            Err(poisoned) => Some(poisoned.into_inner().clone()),
        }
    }
}

/// The rustls configuration: TLS 1.2 and 1.3, the provider's forward-secret
/// AEAD suites, certificates from `resolver`.
pub fn server_config(resolver: Arc<ReloadableCert>) -> Result<rustls::ServerConfig, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    // Keep only AEAD suites with ephemeral key exchange (all TLS 1.3 suites
    // qualify; for 1.2 the ECDHE_* GCM/ChaCha20 ones).
    provider.cipher_suites.retain(|suite| match suite {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(s) => {
            let name = format!("{:?}", s.common.suite);
            name.contains("ECDHE") && (name.contains("GCM") || name.contains("CHACHA20"))
        }
    });
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError {
            file: "rustls".into(),
            problem: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(config)
}
