//! TLS on the tenant listener (before request step 1): the certificate chain and key of
//! `server.tls_cert_file` / `tls_key_file`, served to every handshake through a resolver whose
//! certificate is swapped when SIGHUP reads the files again (a failed read keeps the old one). HTTP/2
//! and HTTP/1.1 are offered by ALPN.

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::sync::Arc;

/// The certificate in force and where it is read from.
pub struct Certs {
    cert: String,
    key: String,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

fn read(cert: &str, key: &str) -> Result<CertifiedKey, String> {
    pingora::tls::install_default_crypto_provider();
    let (chain, key) = match pingora::tls::load_certs_and_key_files(cert, key) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(format!("{cert} / {key}: no certificate or no private key found")),
        Err(e) => return Err(format!("{cert} / {key}: {e}")),
    };
    if chain.is_empty() {
        return Err(format!("{cert}: no certificate found"));
    }
    let provider = CryptoProvider::get_default().ok_or("no TLS crypto provider")?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    let pair = CertifiedKey::new(chain, signer);
    // A key of another certificate (a rotation caught halfway) would fail every handshake.
    pair.keys_match()
        .map_err(|e| format!("{cert}: the private key does not belong to this certificate: {e}"))?;
    Ok(pair)
}

impl Certs {
    /// Reads the certificate chain and key (start-up: a failure is a configuration problem).
    pub fn load(cert: &str, key: &str) -> Result<Certs, String> {
        let current = ArcSwap::from_pointee(read(cert, key)?);
        Ok(Certs {
            cert: cert.to_string(),
            key: key.to_string(),
            current,
        })
    }

    /// Reads the files again (SIGHUP); on failure the certificate in force stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = read(&self.cert, &self.key)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

/// Serves the certificate in force to every handshake.
#[derive(Debug)]
pub struct Resolver(pub Arc<Certs>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}
