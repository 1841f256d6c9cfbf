//! TLS for the HTTP API (not QUIC: see [`crate::tls`] for the node-id handshake).
//!
//! - [`server_config`]: the origin's HTTPS configuration from a PEM certificate chain and
//!   key, offering h2 and HTTP/1.1 by ALPN.
//! - [`client_config`]: what every Chorus HTTP client trusts: the system's roots plus one
//!   extra PEM bundle, from [`trust_also`] (the `--ca-cert` flag) or `CHORUS_CA_CERT`.
//! - [`check_origin_url`]: plain `http://` only to loopback, unless the operator says
//!   otherwise (`CHORUS_PLAIN_HTTP=1`, for a private network behind a TLS-terminating proxy).
//! - [`TestAuthority`]: a private certificate authority and a server certificate it signs, for
//!   tests, the devnet and private deployments (`chorus tls init`).

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Environment variable naming an extra PEM bundle of certificate authorities to trust.
pub const CA_CERT_ENV: &str = "CHORUS_CA_CERT";
/// Environment variable that, set to `1`, allows plain `http://` to hosts off loopback.
pub const PLAIN_HTTP_ENV: &str = "CHORUS_PLAIN_HTTP";

/// ALPN protocols the HTTP API speaks, preferred first.
pub fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// ring's suites with AES-128-GCM first, as browsers order them: as strong as needed here and
/// about a third cheaper per byte than AES-256-GCM, which matters for chunk serving.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        use rustls::CipherSuite::*;
        match suite.suite() {
            TLS13_AES_128_GCM_SHA256 => 0,
            TLS13_CHACHA20_POLY1305_SHA256 => 1,
            TLS13_AES_256_GCM_SHA384 => 2,
            _ => 3,
        }
    });
    Arc::new(provider)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(format!("{}: {error}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("{}: {error}", path.display())))?;
    if certificates.is_empty() {
        return Err(invalid(format!(
            "{}: no CERTIFICATE block in this PEM file",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The HTTPS server configuration for a PEM certificate chain (leaf first) and its PEM
/// private key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3; ALPN h2 and HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> io::Result<rustls::ServerConfig> {
    let chain = read_certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| invalid(format!("{}: {error}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| invalid(format!("certificate and key do not fit: {error}")))?;
    config.alpn_protocols = alpn();
    Ok(config)
}

static EXTRA_CA: Mutex<Option<PathBuf>> = Mutex::new(None);
/// The client configuration last built, and the extra bundle it was built with.
type CachedClient = Option<(Option<PathBuf>, Arc<rustls::ClientConfig>)>;
static CLIENT: Mutex<CachedClient> = Mutex::new(None);

/// Trusts the certificate authorities in the PEM file at `path` besides the system's, for
/// every client this process builds from now on (the `--ca-cert` flag). Overrides
/// `CHORUS_CA_CERT`.
pub fn trust_also(path: &Path) {
    *EXTRA_CA.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(path.to_path_buf());
}

/// The extra trusted bundle in force: [`trust_also`]'s, else `CHORUS_CA_CERT`'s.
pub fn extra_ca() -> Option<PathBuf> {
    let set = EXTRA_CA
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    set.or_else(|| {
        std::env::var_os(CA_CERT_ENV)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    })
}

/// The roots every client trusts: the system's (those that parse) plus the bundle at
/// `extra`, which must exist and hold at least one certificate.
pub fn root_store(extra: Option<&Path>) -> io::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system root certificate could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "system root certificates");
    if let Some(path) = extra {
        for certificate in read_certificates(path)? {
            roots.add(certificate).map_err(|error| {
                invalid(format!(
                    "{}: not a usable CA certificate: {error}",
                    path.display()
                ))
            })?;
        }
    }
    Ok(roots)
}

/// The TLS configuration of Chorus HTTP clients: [`root_store`] with [`extra_ca`], TLS 1.2
/// and 1.3, ALPN h2 and HTTP/1.1. Built once per bundle and shared.
pub fn client_config() -> io::Result<Arc<rustls::ClientConfig>> {
    let extra = extra_ca();
    let mut cached = CLIENT.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some((path, config)) = cached.as_ref()
        && *path == extra
    {
        return Ok(config.clone());
    }
    let roots = root_store(extra.as_deref())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn();
    let config = Arc::new(config);
    *cached = Some((extra, config.clone()));
    Ok(config)
}

/// Why an origin URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    #[error("`{0}` is not an http:// or https:// URL")]
    Scheme(String),
    /// Plain HTTP to a host off loopback.
    #[error(
        "`{0}` is plain http:// to a host off loopback: passwords and content keys would cross the network in the clear; use https:// (set CHORUS_PLAIN_HTTP=1 only on a private network you trust)"
    )]
    PlainHttp(String),
}

fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Whether `host` (a name or an IP literal) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Accepts `https://…`, and `http://…` when the host is loopback or `CHORUS_PLAIN_HTTP=1`.
pub fn check_origin_url(url: &str) -> Result<(), UrlError> {
    let allow_plain = std::env::var(PLAIN_HTTP_ENV).is_ok_and(|value| value == "1");
    check_origin_url_with(url, allow_plain)
}

/// [`check_origin_url`] with the plain-HTTP permission given.
pub fn check_origin_url_with(url: &str, allow_plain: bool) -> Result<(), UrlError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(UrlError::Scheme(url.to_string()));
    };
    if allow_plain || is_loopback_host(host_of(rest)) {
        Ok(())
    } else {
        Err(UrlError::PlainHttp(url.to_string()))
    }
}

/// A private certificate authority and one server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestAuthority {
    /// The authority's certificate (give it to clients: `--ca-cert`).
    pub ca_pem: String,
    /// The server's certificate.
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
}

/// File names [`TestAuthority::write`] uses.
pub const CA_FILE: &str = "ca.pem";
/// The server certificate's file name.
pub const CERT_FILE: &str = "cert.pem";
/// The server key's file name.
pub const KEY_FILE: &str = "key.pem";

impl TestAuthority {
    /// A new authority (ECDSA P-256) and a server certificate for `hosts` (DNS names or IP
    /// addresses), valid until 4096. The authority's key is not kept: it signs nothing else.
    pub fn generate(hosts: &[String]) -> io::Result<Self> {
        let failed = |error: rcgen::Error| io::Error::other(error.to_string());
        let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Chorus private CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(failed)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(failed)?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            hosts.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let cert = params.signed_by(&server_key, &issuer).map_err(failed)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: server_key.serialize_pem(),
        })
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` (0600) into `dir`, creating it (0700).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        crate::keyfile::create_private_dir(dir)?;
        crate::keyfile::write_private(&dir.join(CA_FILE), self.ca_pem.as_bytes())?;
        crate::keyfile::write_private(&dir.join(CERT_FILE), self.cert_pem.as_bytes())?;
        crate::keyfile::write_private(&dir.join(KEY_FILE), self.key_pem.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://music.example",
            "http://127.0.0.1:8470",
            "http://127.1.2.3/x",
            "http://[::1]:8470",
            "http://localhost:8470",
            "http://user@127.0.0.1:1",
        ] {
            assert_eq!(check_origin_url_with(ok, false), Ok(()), "{ok}");
        }
        for refused in [
            "http://music.example",
            "http://10.0.0.1:8470",
            "http://127.0.0.1.example.com/",
            "http://[::2]:1",
        ] {
            assert!(
                matches!(
                    check_origin_url_with(refused, false),
                    Err(UrlError::PlainHttp(_))
                ),
                "{refused}"
            );
            assert_eq!(check_origin_url_with(refused, true), Ok(()));
        }
        assert!(matches!(
            check_origin_url_with("ftp://x", true),
            Err(UrlError::Scheme(_))
        ));
    }

    #[test]
    fn a_generated_authority_makes_a_server_config_and_a_trusting_client() {
        let dir = tempfile_dir();
        let authority = TestAuthority::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        authority.write(&dir).unwrap();
        let server = server_config(&dir.join(CERT_FILE), &dir.join(KEY_FILE)).unwrap();
        assert_eq!(server.alpn_protocols, alpn());
        let roots = root_store(Some(&dir.join(CA_FILE))).unwrap();
        assert!(!roots.is_empty());
        // A key that is not the certificate's is refused with a clear error.
        let other = TestAuthority::generate(&["localhost".into()]).unwrap();
        std::fs::write(dir.join("other.pem"), other.key_pem).unwrap();
        let error = server_config(&dir.join(CERT_FILE), &dir.join("other.pem")).unwrap_err();
        assert!(error.to_string().contains("do not fit"), "{error}");
        // A file without certificates is an error, not an empty trust list.
        let error = root_store(Some(&dir.join(KEY_FILE))).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        std::env::temp_dir().join(format!(
            "chorus-https-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ))
    }
}
