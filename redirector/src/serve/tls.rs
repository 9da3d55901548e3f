//! TLS for the public listener (rustls), with ALPN offering HTTP/2 and
//! HTTP/1.1.

use std::{path::Path, sync::Arc};

use anyhow::{Context as _, Result, bail};
use rustls::{
    CipherSuite,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio_rustls::TlsAcceptor;

/// An acceptor for the certificate chain and key in these PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificates from {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{}: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key from {}", key.display()))?;
    // aws-lc-rs rather than ring for the handshake: its P-256 signing and
    // X25519 are the assembly OpenSSL's are (bench http, TLS table).
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // AES-128-GCM first, whatever the client's order: TLS 1.3's mandatory
    // suite, whose SHA-256 key schedule runs on the CPU's SHA extensions;
    // x86 has none for SHA-384, whose schedule in software took user CPU
    // per handshake from 194 to 270 µs (bench http, TLS, pinned). Clients
    // that offer only other suites still get them.
    provider
        .cipher_suites
        .sort_by_key(|s| !is_aes_128_gcm(s.suite()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not fit together")?;
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn is_aes_128_gcm(suite: CipherSuite) -> bool {
    matches!(
        suite,
        CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}
