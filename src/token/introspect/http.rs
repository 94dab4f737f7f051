//! The identity provider's HTTP client: awc over rustls (aws-lc-rs, Mozilla's roots plus `idp.ca_file`), no
//! redirects, a body limit and one deadline per exchange. awc is not `Send`, so an `IdpHttp` lives on one thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::http::StatusCode;
use awc::http::header::HeaderMap;

use crate::token::IdpError;

/// Why the TLS setup is unusable; reported at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("idp.ca_file ({path}): {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("idp.ca_file ({0}): no certificates in it")]
    NoCertificates(PathBuf),
    #[error("idp.ca_file ({path}): {source}")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// rustls with the aws-lc-rs provider, Mozilla's roots and the operator's extra CA file.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca = |source| TlsError::CaFile {
            path: path.to_path_buf(),
            source,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(ca)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(ca)?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificates(path.to_path_buf()));
        }
        for cert in certs {
            roots.add(cert).map_err(|source| TlsError::BadCertificate {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Everything an `IdpHttp` needs, checked and `Send`: built where start-up errors can be reported, then turned
/// into the client on the thread that will use it.
#[derive(Clone)]
pub struct HttpSetup {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_connections: usize,
    pub max_response_bytes: usize,
}

impl HttpSetup {
    pub fn new(
        ca_file: Option<&Path>,
        timeout: Duration,
        max_connections: usize,
        max_response_bytes: usize,
    ) -> Result<HttpSetup, TlsError> {
        Ok(HttpSetup {
            tls: Arc::new(tls_config(ca_file)?),
            timeout,
            max_connections,
            max_response_bytes,
        })
    }

    pub fn client(&self) -> IdpHttp {
        let connector = awc::Connector::new()
            .rustls_0_23(self.tls.clone())
            .timeout(self.timeout)
            .limit(self.max_connections.max(1));
        let client = awc::Client::builder()
            .connector(connector)
            // The deadline of each exchange is enforced around it; this is only a backstop.
            .timeout(self.timeout.max(Duration::from_secs(1)) * 2)
            .disable_redirects()
            .add_default_header((
                awc::http::header::USER_AGENT,
                concat!("tokengate/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        IdpHttp {
            client,
            max_response_bytes: self.max_response_bytes,
        }
    }
}

/// An answer, body read in full (within the limit).
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct IdpHttp {
    client: awc::Client,
    max_response_bytes: usize,
}

impl IdpHttp {
    /// GET with a body limit of its own (discovery documents and key sets can be larger than introspections).
    pub async fn get(&self, url: &str, limit: usize, deadline: Instant) -> Result<Response, IdpError> {
        let req = self
            .client
            .get(url)
            .insert_header((awc::http::header::ACCEPT, "application/json"));
        exchange(req.send(), limit, deadline).await
    }

    /// A form POST (`application/x-www-form-urlencoded`) with an optional `Authorization` header.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        authorization: Option<&str>,
        deadline: Instant,
    ) -> Result<Response, IdpError> {
        let mut req = self
            .client
            .post(url)
            .insert_header((awc::http::header::ACCEPT, "application/json"));
        if let Some(a) = authorization {
            req = req.insert_header((awc::http::header::AUTHORIZATION, a));
        }
        exchange(req.send_form(&form), self.max_response_bytes, deadline).await
    }
}

/// One deadline for the whole exchange, body included: a body dripped byte by byte must not hold a check.
async fn exchange<F, S>(send: F, limit: usize, deadline: Instant) -> Result<Response, IdpError>
where
    F: std::future::Future<Output = Result<awc::ClientResponse<S>, awc::error::SendRequestError>>,
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>,
{
    let fut = async {
        let mut resp = send.await.map_err(send_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.body().limit(limit).await.map_err(|e| match e {
            awc::error::PayloadError::Overflow => IdpError::ResponseTooLarge,
            other => IdpError::unreachable(format_args!("reading the response: {other}")),
        })?;
        Ok(Response { status, headers, body })
    };
    tokio::time::timeout_at(deadline.into(), fut)
        .await
        .map_err(|_| IdpError::Timeout)?
}

fn send_error(e: awc::error::SendRequestError) -> IdpError {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => IdpError::Timeout,
        E::Connect(c) => IdpError::unreachable(c),
        other => IdpError::unreachable(other),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Logs the plain-http warning for a URL the operator gave us (or discovery named).
pub fn warn_if_plain_http(what: &str, raw: &str) {
    if let Ok(url) = url::Url::parse(raw)
        && url.scheme() == "http"
        && !is_loopback(&url)
    {
        log::warn!(
            "{what} {raw} uses plain http to a non-loopback host: tokens and credentials cross the network unencrypted"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(tls_config(Some(&empty)), Err(TlsError::NoCertificates(_))));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            tls_config(Some(&garbage))
                .unwrap_err()
                .to_string()
                .starts_with("idp.ca_file")
        );
        assert!(tls_config(None).is_ok(), "Mozilla's roots alone");
    }

    #[test]
    fn loopback_hosts() {
        for (url, want) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost", true),
            ("http://[::1]:1", true),
            ("http://10.0.0.1", false),
            ("http://zitadel.example.com", false),
        ] {
            assert_eq!(is_loopback(&url::Url::parse(url).unwrap()), want, "{url}");
        }
    }
}
