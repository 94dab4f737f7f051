//! `[idp]`: the identity provider, tokengate's client authentication at it, and the limits of talking to it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Extra;
use super::collect::{Collector, non_empty};
use crate::secret::Secret;
use crate::token::introspect::IdpSettings;
use crate::token::introspect::credentials::{ClientAuthConfig, SecretSource};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawIdp {
    issuer: Option<String>,
    introspection_endpoint: Option<String>,
    key_file: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    timeout: Option<String>,
    ca_file: Option<String>,
    max_concurrent: Option<String>,
    assertion_reuse: Option<String>,
    max_response_bytes: Option<String>,
    reload_interval: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

fn client_auth(c: &mut Collector, raw: &mut RawIdp) -> Option<ClientAuthConfig> {
    let key_file = non_empty(raw.key_file.take());
    let client_id = non_empty(raw.client_id.take());
    let client_secret = non_empty(raw.client_secret.take());
    let client_secret_file = non_empty(raw.client_secret_file.take());
    match (key_file, client_id, client_secret, client_secret_file) {
        (Some(path), None, None, None) => Some(ClientAuthConfig::KeyFile(PathBuf::from(path))),
        (None, Some(id), Some(secret), None) => Some(ClientAuthConfig::Basic {
            client_id: id,
            secret: SecretSource::Inline(Secret::new(secret)),
        }),
        (None, Some(id), None, Some(path)) => Some(ClientAuthConfig::Basic {
            client_id: id,
            secret: SecretSource::File(PathBuf::from(path)),
        }),
        (None, None, None, None) => {
            c.err(
                "idp.key_file",
                "no client authentication: set idp.key_file (the API application's JSON key) or idp.client_id with idp.client_secret / idp.client_secret_file",
            );
            None
        }
        (Some(_), _, _, _) => {
            c.err(
                "idp.key_file",
                "use either idp.key_file or idp.client_id/idp.client_secret, not both",
            );
            None
        }
        (None, None, _, _) => {
            c.err(
                "idp.client_id",
                "required with idp.client_secret / idp.client_secret_file",
            );
            None
        }
        (None, Some(_), Some(_), Some(_)) => {
            c.err(
                "idp.client_secret",
                "set idp.client_secret or idp.client_secret_file, not both",
            );
            None
        }
        (None, Some(_), None, None) => {
            c.err(
                "idp.client_secret",
                "idp.client_id needs idp.client_secret or idp.client_secret_file",
            );
            None
        }
    }
}

/// `None` when a required setting is missing (the error is recorded).
pub(super) fn validate(c: &mut Collector, mut raw: RawIdp) -> Option<IdpSettings> {
    let issuer = match non_empty(raw.issuer.take()) {
        Some(s) => c.url("idp.issuer", &s).map(|_| s),
        None => {
            c.err(
                "idp.issuer",
                "required: the ZITADEL instance URL, e.g. https://my-instance.zitadel.cloud",
            );
            None
        }
    };
    let introspection_endpoint =
        non_empty(raw.introspection_endpoint.take()).and_then(|s| c.url("idp.introspection_endpoint", &s));
    let auth = client_auth(c, &mut raw);
    let timeout = c.duration("idp.timeout", raw.timeout.as_deref(), Duration::from_secs(3));
    if timeout.is_zero() {
        c.err("idp.timeout", "must be greater than zero");
    }
    let ca_file = non_empty(raw.ca_file.take()).map(PathBuf::from);
    if let Some(path) = &ca_file
        && !path.is_file()
    {
        c.err("idp.ca_file", format!("{} is not a readable file", path.display()));
    }
    let max_concurrent = c.number("idp.max_concurrent", raw.max_concurrent.as_deref(), 64usize);
    if max_concurrent == 0 {
        c.err("idp.max_concurrent", "must be at least 1");
    }
    let assertion_reuse = c.boolean("idp.assertion_reuse", raw.assertion_reuse.as_deref());
    let max_response_bytes = c.number(
        "idp.max_response_bytes",
        raw.max_response_bytes.as_deref(),
        64 * 1024usize,
    );
    let reload_interval = c.duration(
        "idp.reload_interval",
        raw.reload_interval.as_deref(),
        Duration::from_secs(2),
    );
    Some(IdpSettings {
        issuer: issuer?,
        introspection_endpoint,
        auth: auth?,
        timeout,
        ca_file,
        max_concurrent,
        assertion_reuse,
        max_response_bytes,
        reload_interval,
    })
}
