//! TLS at the edge: certificates handed to the router as data, picked by SNI, swapped in
//! atomically like the route table; and the answers to ACME challenges, which the router
//! serves but never asks for (the control plane runs the ACME client).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::table::host_key;

/// The protocol an ACME server offers when it validates a TLS-ALPN-01 challenge (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// What the router needs for HTTPS: plain, serialisable data, like the [`RouteTable`]
/// (crate::RouteTable), so a router in another process can be fed it from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsTable {
    /// Certificates served by SNI: an exact name before a `*.` wildcard covering it.
    #[serde(default)]
    pub certificates: Vec<CertificatePem>,
    /// HTTP-01 answers: token → key authorization, served at
    /// `/.well-known/acme-challenge/TOKEN` on any host.
    #[serde(default)]
    pub http01: BTreeMap<String, String>,
    /// TLS-ALPN-01 validation certificates, shown only to a handshake offering `acme-tls/1`.
    #[serde(default)]
    pub alpn01: Vec<CertificatePem>,
}

/// One certificate chain and its private key, in PEM, for the hostnames it is served for.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatePem {
    /// Names matched against SNI, case-insensitively: `shop.example.com`, `*.example.com`.
    pub hosts: Vec<String>,
    /// The leaf first, then its intermediates.
    pub chain: String,
    pub key: String,
}

impl std::fmt::Debug for CertificatePem {
    // Never print a private key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificatePem").field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate for {hosts}: {reason}")]
    Certificate { hosts: String, reason: String },
}

impl CertificatePem {
    /// Checks the PEM and that the key belongs to the certificate.
    pub fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        let (chain, key) = self.parts()?;
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Certificate {
            hosts: self.hosts.join(", "),
            reason: format!("the key does not fit the certificate: {e}"),
        })
    }

    /// A TLS-ALPN-01 validation certificate: its critical `acmeIdentifier` extension is one
    /// no certificate parser knows, so the key is loaded without checking it against it.
    fn challenge_key(&self) -> Result<CertifiedKey, TlsError> {
        let (chain, key) = self.parts()?;
        let signing = provider().key_provider.load_private_key(key).map_err(|e| {
            TlsError::Certificate { hosts: self.hosts.join(", "), reason: e.to_string() }
        })?;
        Ok(CertifiedKey::new(chain, signing))
    }

    fn parts(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let fail = |reason: String| TlsError::Certificate { hosts: self.hosts.join(", "), reason };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.chain.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("the certificate is not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(fail("no certificate in the PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key.as_bytes())
            .map_err(|e| fail(format!("the key is not a PEM private key: {e}")))?;
        Ok((chain, key))
    }
}

pub(crate) fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A [`TlsTable`] ready for handshakes.
#[derive(Default)]
pub(crate) struct CompiledTls {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` → keyed by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    alpn01: HashMap<String, Arc<CertifiedKey>>,
    http01: HashMap<String, String>,
}

impl CompiledTls {
    /// Compiles `table`; a certificate that cannot be used is left out, with the reason
    /// returned, so one bad certificate never takes the others down.
    pub(crate) fn compile(table: &TlsTable) -> (CompiledTls, Vec<TlsError>) {
        let mut compiled = CompiledTls::default();
        let mut errors = Vec::new();
        for pem in &table.certificates {
            match pem.certified_key() {
                Ok(key) => {
                    let key = Arc::new(key);
                    for host in &pem.hosts {
                        let host = host_key(host);
                        let (map, name) = match host.strip_prefix("*.") {
                            Some(parent) => (&mut compiled.wildcard, parent.to_string()),
                            None => (&mut compiled.exact, host),
                        };
                        // The first certificate listed for a name wins.
                        map.entry(name).or_insert_with(|| key.clone());
                    }
                }
                Err(err) => errors.push(err),
            }
        }
        for pem in &table.alpn01 {
            match pem.challenge_key() {
                Ok(key) => {
                    let key = Arc::new(key);
                    for host in &pem.hosts {
                        compiled.alpn01.insert(host_key(host), key.clone());
                    }
                }
                Err(err) => errors.push(err),
            }
        }
        compiled.http01 = table.http01.iter().map(|(t, k)| (t.clone(), k.clone())).collect();
        (compiled, errors)
    }

    /// The most specific certificate for `host`: its own, else a wildcard one level up.
    pub(crate) fn certificate(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        let host = host_key(host);
        self.exact
            .get(&host)
            .or_else(|| host.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)))
    }

    /// The key authorization for an HTTP-01 `token`.
    pub(crate) fn http01(&self, token: &str) -> Option<&str> {
        self.http01.get(token).map(String::as_str)
    }
}

/// Picks the certificate for each handshake from the router's current TLS table.
pub(crate) struct Resolver {
    pub(crate) shared: Arc<crate::Shared>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let tls = self.shared.tls();
        let acme = hello.alpn().is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // A validation handshake gets the challenge certificate or nothing.
            return tls.alpn01.get(&host_key(name)).cloned();
        }
        tls.certificate(name).cloned()
    }
}

/// The rustls settings of the HTTPS listener: certificates from `resolver`, HTTP/2 first.
pub(crate) fn server_config(resolver: Resolver) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(config)
}
