//! `[log]`: the log format and the decision log (one line per check).

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
    pub decisions: DecisionLog,
}

/// `log.decisions`, `log.decisions_sample_allowed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionLog {
    pub enabled: bool,
    /// The share of allowed checks that get a line; denials always do.
    pub sample_allowed: f64,
}

impl Default for DecisionLog {
    fn default() -> Self {
        DecisionLog {
            enabled: true,
            sample_allowed: 1.0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLog {
    format: Option<String>,
    decisions: Option<String>,
    decisions_sample_allowed: Option<String>,
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
    let enabled = c.boolean_or("log.decisions", raw.decisions.as_deref(), true);
    let sample_allowed = c.number(
        "log.decisions_sample_allowed",
        raw.decisions_sample_allowed.as_deref(),
        1.0f64,
    );
    if !(0.0..=1.0).contains(&sample_allowed) {
        c.err("log.decisions_sample_allowed", "must be between 0 and 1");
    }
    LogConfig {
        format,
        decisions: DecisionLog {
            enabled,
            sample_allowed,
        },
    }
}
