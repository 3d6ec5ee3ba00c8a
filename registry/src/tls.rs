//! HTTPS between nodes, vendors and the registry.
//!
//! What a node installs is trusted because of the signed metadata, not the
//! channel, so TLS here protects something else: the vendor tokens and
//! enrolment tokens sent to the registry, and what a fleet's traffic says
//! about its stalls. Hence one rule, enforced on both ends: plain HTTP only
//! on loopback (a registry and its node or vendor on one machine, or a TLS
//! proxy in front of it). Off loopback the registry serves HTTPS with a
//! certificate from files, and clients verify it against the system's
//! roots plus, for a private fleet, a CA the operator provisions.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} holds no PEM {expected}: {detail}")]
    Pem {
        what: String,
        expected: &'static str,
        detail: String,
    },
    #[error("{what} is not usable for TLS: {detail}")]
    Config { what: String, detail: String },
    #[error(
        "{url}: refusing to send {sending} over plain HTTP to another machine, where anyone on the way can read it; use https://{host_and_rest}"
    )]
    PlainHttp {
        url: String,
        sending: &'static str,
        host_and_rest: String,
    },
}

/// Both crypto backends are compiled in (wasmtime's HTTP client brings
/// ring, oci-client aws-lc-rs), so rustls cannot pick a default: name it.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Whether `url` names this machine: an address in 127.0.0.0/8, `::1`, or
/// `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Refuses `url` when it would carry `sending` (a token, say) in clear
/// off this machine. Checked before anything is sent.
pub fn require_private(url: &Url, sending: &'static str) -> Result<(), TlsError> {
    if url.scheme() == "http" && !is_loopback(url) {
        let text = url.as_str();
        return Err(TlsError::PlainHttp {
            url: text.to_string(),
            sending,
            host_and_rest: text.trim_start_matches("http://").to_string(),
        });
    }
    Ok(())
}

/// The PEM certificates in `bytes`, at least one.
fn certificates(bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_string(),
            expected: "certificate",
            detail: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_string(),
            expected: "certificate",
            detail: "no `-----BEGIN CERTIFICATE-----` block".into(),
        });
    }
    Ok(certificates)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The registry's side: its certificate chain and key, from PEM files.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

/// How long a client may take to finish its TLS handshake, so connections
/// that never do cannot pile up.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

impl ServerTls {
    /// `certificate`: the server's certificate then its intermediates;
    /// `key`: its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_files(certificate: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let chain = certificates(
            &read(certificate, "the TLS certificate")?,
            &certificate.display().to_string(),
        )?;
        let key_bytes = read(key, "the TLS key")?;
        let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
            what: key.display().to_string(),
            expected: "private key",
            detail: e.to_string(),
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                what: "the TLS library".into(),
                detail: e.to_string(),
            })?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| TlsError::Config {
                what: format!("{} with {}", certificate.display(), key.display()),
                detail: format!("{e} (is the key the certificate's?)"),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

/// A client's side: which certificate authorities it believes.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    /// The provisioned CA's PEM, for clients built on other stacks
    /// (oci-client's reqwest).
    extra_pem: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("provisioned_ca", &self.extra_pem.is_some())
            .finish()
    }
}

/// The system's roots (`/etc/ssl/certs` and the like), read once: a
/// machine without them can still use a provisioned CA.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!("a system root certificate was skipped: {error}");
        }
        found.certs
    })
}

impl ClientTls {
    /// Trusts the system's roots only: a registry with a public certificate.
    pub fn system() -> ClientTls {
        // Without a certificate of our own the only failure left is the
        // provider lacking every safe protocol version, which aws-lc-rs
        // does not.
        Self::build(None, "").expect("aws-lc-rs supports TLS 1.2 and 1.3")
    }

    /// Trusts the system's roots and the CA certificates in `pem` (a
    /// private fleet's own CA). `what` names where they came from.
    pub fn with_ca(pem: &[u8], what: &str) -> Result<ClientTls, TlsError> {
        Self::build(Some(pem), what)
    }

    /// [`ClientTls::with_ca`] when there is a CA, else [`ClientTls::system`].
    pub fn with_optional_ca(pem: Option<&[u8]>, what: &str) -> Result<ClientTls, TlsError> {
        match pem {
            Some(pem) => Self::with_ca(pem, what),
            None => Ok(Self::system()),
        }
    }

    fn build(pem: Option<&[u8]>, what: &str) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        // A bad system certificate must not keep the node off its registry.
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(pem) = pem {
            for certificate in certificates(pem, what)? {
                roots.add(certificate).map_err(|e| TlsError::Config {
                    what: what.to_string(),
                    detail: e.to_string(),
                })?;
            }
        }
        // ALPN is set by the connector (`enable_http1`).
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config {
                what: "the TLS library".into(),
                detail: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
            extra_pem: pem.map(Arc::from),
        })
    }

    /// A hyper connector for `http://` (loopback) and `https://` URLs.
    pub fn connector(
        &self,
        connect_timeout: Duration,
    ) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }

    /// The provisioned CA for oci-client, which builds its own TLS stack.
    pub(crate) fn oci_certificates(&self) -> Vec<oci_client::client::Certificate> {
        self.extra_pem
            .iter()
            .map(|pem| oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: pem.to_vec(),
            })
            .collect()
    }
}

/// What to do when the registry's certificate is not trusted.
pub const UNTRUSTED_CERTIFICATE: &str = "the registry's HTTPS certificate is not signed by a CA \
this machine trusts. If the fleet uses its own CA, give its certificate (nodes: `outpost trust \
init ... --ca <ca.pem>`; vendors: `outpost vendor publish --registry-ca <ca.pem>`); otherwise \
the registry needs a certificate from a public CA, or someone is in the middle";

/// Whether a connection error's text says the peer's certificate was
/// refused (for any reason).
pub fn is_untrusted_certificate(text: &str) -> bool {
    text.contains("invalid peer certificate")
}

/// What to check when the certificate was refused for another reason than
/// its issuer.
const REFUSED_CERTIFICATE: &str = "the registry's HTTPS certificate was refused. Check that \
the address is the name in its certificate and that the certificate has not expired; a clock \
far off makes a good certificate look expired or not yet valid";

/// Why a connection to `url` failed, in words: the chain of `error`'s
/// causes, and what to do next.
pub fn connect_failure(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.contains("UnknownIssuer") {
        format!("{UNTRUSTED_CERTIFICATE} ({text})")
    } else if is_untrusted_certificate(&text) {
        format!("{REFUSED_CERTIFICATE} ({text})")
    } else {
        format!("cannot connect ({text}); check the address and that the registry is running")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_carry_a_token_in_clear() {
        for here in [
            "http://127.0.0.1:7272/",
            "http://127.8.9.10/",
            "http://[::1]:7272/",
            "http://LOCALHOST:7272/",
            "https://registry.example/",
            "https://192.0.2.7/",
        ] {
            let url = Url::parse(here).expect("url");
            require_private(&url, "a token").expect(here);
        }
        for elsewhere in [
            "http://192.0.2.7:7272/",
            "http://registry.example/",
            "http://localhost.registry.example/",
            "http://[2001:db8::1]/",
            "http://0.0.0.0:7272/",
        ] {
            let url = Url::parse(elsewhere).expect("url");
            let refused = require_private(&url, "a token").expect_err(elsewhere);
            assert!(refused.to_string().contains("https://"), "{refused}");
        }
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_by_name() {
        for text in ["", "not a certificate", "-----BEGIN CERTIFICATE-----\n!!\n"] {
            let refused = ClientTls::with_ca(text.as_bytes(), "ca.pem").expect_err(text);
            assert!(refused.to_string().starts_with("ca.pem"), "{refused}");
        }
    }
}
