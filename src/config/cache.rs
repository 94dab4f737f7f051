//! `[cache]`: the TTL rules every cache tier follows.

use std::time::Duration;

use serde::Deserialize;

use super::Extra;
use super::collect::Collector;
use crate::token::lookup::CacheSettings;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCache {
    max_entries: Option<String>,
    ttl: Option<String>,
    negative_ttl: Option<String>,
    refresh_ahead: Option<String>,
    stale_if_error: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

pub(super) fn validate(c: &mut Collector, raw: RawCache) -> CacheSettings {
    let d = CacheSettings::default();
    let max_entries = c.number("cache.max_entries", raw.max_entries.as_deref(), d.max_entries);
    let ttl = c.duration("cache.ttl", raw.ttl.as_deref(), d.ttl);
    let negative_ttl = c.duration("cache.negative_ttl", raw.negative_ttl.as_deref(), d.negative_ttl);
    let refresh_ahead = c.number("cache.refresh_ahead", raw.refresh_ahead.as_deref(), d.refresh_ahead);
    if !(0.0..1.0).contains(&refresh_ahead) {
        c.err("cache.refresh_ahead", "must be at least 0 (off) and below 1");
    }
    let stale_if_error = c.duration("cache.stale_if_error", raw.stale_if_error.as_deref(), Duration::ZERO);
    CacheSettings {
        max_entries,
        ttl,
        negative_ttl,
        refresh_ahead,
        stale_if_error,
    }
}
