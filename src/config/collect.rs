//! Reading raw configuration text into typed values while collecting every problem, so that all of them are
//! reported at once, each with its key.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::{ConfigError, Extra};

pub(super) struct Collector(pub(super) Vec<ConfigError>);

impl Collector {
    pub(super) fn err(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigError::new(key, message));
    }
    pub(super) fn unknown(&mut self, section: &str, extra: &Extra) {
        let mut names: Vec<&String> = extra.keys().collect();
        names.sort();
        for name in names {
            // TOKENGATE_CONFIG names the file and reaches us through the environment source.
            if section.is_empty() && name == "config" {
                continue;
            }
            let key = if section.is_empty() {
                name.clone()
            } else {
                format!("{section}.{name}")
            };
            self.err(&key, "unknown key");
        }
    }
    pub(super) fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|| {
                self.err(key, format!("{text:?} is not a duration (e.g. \"3s\", \"500ms\")"));
                default
            }),
        }
    }
    pub(super) fn number<T: std::str::FromStr>(&mut self, key: &str, raw: Option<&str>, default: T) -> T {
        match raw {
            None => default,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                self.err(key, format!("{text:?} is not a valid number"));
                default
            }),
        }
    }
    pub(super) fn boolean(&mut self, key: &str, raw: Option<&str>) -> bool {
        self.boolean_or(key, raw, false)
    }
    pub(super) fn boolean_or(&mut self, key: &str, raw: Option<&str>, default: bool) -> bool {
        match raw.map(|s| s.trim().to_ascii_lowercase()) {
            None => default,
            Some(s) if s == "true" => true,
            Some(s) if s == "false" => false,
            Some(s) => {
                self.err(key, format!("{s:?} is not true or false"));
                default
            }
        }
    }
    pub(super) fn addr(&mut self, key: &str, raw: &str) -> Option<SocketAddr> {
        raw.trim()
            .parse()
            .map_err(|_| self.err(key, format!("{raw:?} is not an address like 0.0.0.0:8080")))
            .ok()
    }
    pub(super) fn url(&mut self, key: &str, raw: &str) -> Option<Url> {
        match Url::parse(raw.trim()) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
            Ok(_) => {
                self.err(key, "must be an http:// or https:// URL");
                None
            }
            Err(e) => {
                self.err(key, format!("{raw:?} is not a URL: {e}"));
                None
            }
        }
    }
}

/// `"3s"`, `"500ms"`, `"1m 30s"`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).ok()
}

pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub(super) fn clean_list(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
