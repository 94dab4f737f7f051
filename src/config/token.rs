//! `[token]`: where else a bearer token may come from.

use serde::Deserialize;

use super::Extra;
use super::collect::{Collector, non_empty};
use crate::bearer::TokenSources;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawToken {
    cookie: Option<String>,
    header: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

pub(super) fn validate(c: &mut Collector, raw: RawToken) -> TokenSources {
    let header = non_empty(raw.header).map(|h| h.to_ascii_lowercase());
    if let Some(h) = &header
        && actix_web::http::header::HeaderName::try_from(h.as_str()).is_err()
    {
        c.err("token.header", format!("{h:?} is not a valid header name"));
    }
    TokenSources {
        cookie: non_empty(raw.cookie),
        header,
    }
}
