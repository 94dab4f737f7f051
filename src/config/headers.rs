//! `[headers]`: upstream identity header name → claim, merged over the defaults.

use std::collections::BTreeMap;

use super::collect::Collector;
use crate::token::info::{ClaimSource, DEFAULT_HEADERS, HeaderRule, ROLES_PSEUDO_CLAIM};

pub(super) fn validate(c: &mut Collector, table: BTreeMap<String, String>) -> Vec<HeaderRule> {
    let mut merged: BTreeMap<String, (String, String)> = DEFAULT_HEADERS
        .iter()
        .map(|(n, s)| (n.to_ascii_lowercase(), ((*n).to_string(), (*s).to_string())))
        .collect();
    for (name, source) in table {
        merged.insert(name.to_ascii_lowercase(), (name, source));
    }
    let mut out = Vec::new();
    for (display, source) in merged.into_values() {
        let source = source.trim();
        // An empty source switches a default header off.
        if source.is_empty() {
            continue;
        }
        let key = format!("headers.{display}");
        let Ok(name) = actix_web::http::header::HeaderName::try_from(display.as_str()) else {
            c.err(&key, "not a valid header name");
            continue;
        };
        let source = if source == ROLES_PSEUDO_CLAIM {
            ClaimSource::Roles
        } else {
            ClaimSource::Claims(
                source
                    .split('|')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
        };
        out.push(HeaderRule { name, source });
    }
    out
}
