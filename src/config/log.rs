//! `[log]`: the log format.

use serde::Deserialize;

use super::Extra;
use super::collect::{Collector, non_empty};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLog {
    format: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

pub(super) fn validate(c: &mut Collector, raw: RawLog) -> LogConfig {
    let format = match non_empty(raw.format).map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.err("log.format", format!("{other:?} is not text or json"));
            LogFormat::Text
        }
    };
    LogConfig { format }
}
