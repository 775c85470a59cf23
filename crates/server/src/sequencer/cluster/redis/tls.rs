//! `rediss://`: the TLS a node speaks to a Redis that requires it (hosted Redis does). A
//! Redis's certificate is checked against the system's CAs, or, when `--redis-ca-file` is
//! given, against the CAs of that file only, as a private deployment signs its own.
//!
//! The same trust serves both kinds of connection: the `redis` crate's (commands) and the
//! subscriber's own ([`resp`](super::resp)).

use std::sync::{Arc, OnceLock};

use redis::{Client, TlsCertificates};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Unreachable;

/// Which CAs a node trusts for `rediss://`.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    /// The CA file's PEM, when one was given; `None`: the system's CAs.
    ca_pem: Option<Arc<[u8]>>,
    /// Built at the first TLS connection (loading the system's CAs costs a few milliseconds
    /// that a node on plain `redis://` never pays).
    config: Arc<OnceLock<Result<Arc<ClientConfig>, String>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trusts = if self.ca_pem.is_some() {
            "the CA file"
        } else {
            "the system's CAs"
        };
        f.debug_struct("Tls").field("trusts", &trusts).finish()
    }
}

/// The certificates of a PEM file (`Err` names what is wrong with it).
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("it is not readable as PEM ({e})"))?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

impl Tls {
    /// Trusting the CAs of `ca_pem` (a PEM file's contents) only, or the system's CAs.
    pub fn new(ca_pem: Option<&[u8]>) -> Result<Tls, String> {
        if let Some(pem) = ca_pem {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate in it is not a usable CA ({e})"))?;
            }
        }
        Ok(Tls {
            ca_pem: ca_pem.map(Arc::from),
            config: Arc::default(),
        })
    }

    /// Whether a CA file was given.
    pub fn has_ca_file(&self) -> bool {
        self.ca_pem.is_some()
    }

    /// A `redis` crate client for `url`, trusting these CAs when the URL is `rediss://`.
    pub fn client(&self, url: &str) -> Result<Client, Unreachable> {
        let bad = |e: redis::RedisError| Unreachable(format!("bad Redis URL: {e}"));
        match &self.ca_pem {
            Some(pem) if is_tls(url) => Client::build_with_tls(
                url,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            )
            .map_err(bad),
            _ => Client::open(url).map_err(bad),
        }
    }

    /// Speaks TLS over `tcp` to the Redis named `host`, checking its certificate.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> Result<TlsStream<TcpStream>, Unreachable> {
        let config = self
            .config
            .get_or_init(|| self.build().map(Arc::new))
            .clone()
            .map_err(Unreachable)?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| Unreachable(format!("{host} is no name a certificate can hold: {e}")))?;
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Unreachable(handshake_failure(&e)))
    }

    fn build(&self) -> Result<ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for cert in certificates(pem)? {
                    roots.add(cert).map_err(|e| e.to_string())?;
                }
            }
            None => {
                // With none loadable the store stays empty: every certificate is then refused,
                // and the refusal says to give the CA with --redis-ca-file.
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// Whether `url` asks for TLS.
pub(crate) fn is_tls(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
}

/// What the operator is told when a TLS handshake fails: a certificate refused is said as such
/// (the start check stops on it); a peer that answered with something other than TLS, as a
/// Redis without TLS.
fn handshake_failure(e: &std::io::Error) -> String {
    failure(e).unwrap_or_else(|| format!("TLS handshake failed: {e}"))
}

/// What a TLS failure means for the operator, if `e` is one (it may also come after the
/// handshake: with TLS 1.3 a server refuses a client's missing certificate only then).
pub(super) fn failure(e: &std::io::Error) -> Option<String> {
    use rustls::AlertDescription as Alert;
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(why) => format!("{CERTIFICATE_REFUSED} ({why:?})"),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("{NOT_TLS} ({e})")
        }
        rustls::Error::AlertReceived(
            Alert::CertificateRequired | Alert::HandshakeFailure | Alert::BadCertificate,
        ) => format!("{CLIENT_CERTIFICATE_ASKED} ({e})"),
        _ => format!("TLS failed: {e}"),
    })
}

/// How a refused certificate starts its message.
pub(super) const CERTIFICATE_REFUSED: &str = "its TLS certificate is not trusted";
/// How an answer that is not TLS starts its message.
const NOT_TLS: &str = "it does not answer in TLS";
/// How a refusal of the node's (missing) client certificate starts its message.
pub(super) const CLIENT_CERTIFICATE_ASKED: &str =
    "it refused the TLS handshake, as a Redis asking clients for a certificate does";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_saying_why() {
        let said = Tls::new(Some(b"not a certificate\n")).unwrap_err();
        assert!(said.contains("no PEM certificate"), "{said}");
        let said = Tls::new(Some(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        ))
        .unwrap_err();
        assert!(said.contains("PEM"), "{said}");
        assert!(Tls::new(None).is_ok());
    }

    #[test]
    fn only_rediss_urls_ask_for_tls() {
        assert!(is_tls("rediss://:pw@h:6380/"));
        assert!(is_tls("REDISS://h:6380"));
        assert!(!is_tls("redis://h:6379/"));
        assert!(!is_tls("redis"));
    }
}
